//! A suite's `Release` file (the SHA-256 of each index it lists) and a
//! `Packages` index (one stanza per binary package).

use sha2::{Digest, Sha256};

use crate::control;
use crate::error::DebianError;
use crate::relation::{self, Relation};
use crate::version::Version;

/// `dists/SUITE/Release`.
#[derive(Debug, Clone)]
pub struct Release {
    /// The file's name, for messages.
    pub file: String,
    /// `(path relative to dists/SUITE/, sha256 hex, size)`.
    pub sha256: Vec<(String, String, u64)>,
}

impl Release {
    pub fn parse(file: &str, text: &str) -> Result<Release, DebianError> {
        let stanzas = control::parse(file, text)?;
        let Some(first) = stanzas.first() else {
            return Err(DebianError::Syntax {
                file: file.to_owned(),
                line: 1,
                reason: "empty Release file".into(),
            });
        };
        let mut sha256 = Vec::new();
        for line in first.get("SHA256").unwrap_or("").lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [hash, size, path] = parts[..] {
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    if let Ok(size) = size.parse() {
                        sha256.push((path.to_owned(), hash.to_ascii_lowercase(), size));
                    }
                }
            }
        }
        Ok(Release {
            file: file.to_owned(),
            sha256,
        })
    }

    /// Check that `data` is the index at `path` (relative to the suite).
    pub fn verify(&self, path: &str, data: &[u8]) -> Result<(), DebianError> {
        let Some((_, expected, _)) = self.sha256.iter().find(|(p, _, _)| p == path) else {
            return Err(DebianError::NotInRelease {
                file: self.file.clone(),
                path: path.to_owned(),
            });
        };
        let actual = hex::encode(Sha256::digest(data));
        if &actual != expected {
            return Err(DebianError::IndexMismatch {
                path: path.to_owned(),
                release: self.file.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Whether the suite lists `path`.
    pub fn lists(&self, path: &str) -> bool {
        self.sha256.iter().any(|(p, _, _)| p == path)
    }
}

/// One binary package of an index.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: Version,
    /// The version as written.
    pub version_text: String,
    pub architecture: String,
    /// Path relative to the archive root (`pool/main/...`).
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub depends: Vec<Vec<Relation>>,
    pub pre_depends: Vec<Vec<Relation>>,
    /// Virtual packages provided (with their version when versioned).
    pub provides: Vec<Relation>,
    pub essential: bool,
    pub priority: String,
}

/// A parsed `Packages` index.
#[derive(Debug, Clone, Default)]
pub struct Packages {
    pub packages: Vec<Package>,
}

impl Packages {
    pub fn parse(file: &str, text: &str) -> Result<Packages, DebianError> {
        let mut packages = Vec::new();
        for st in control::parse(file, text)? {
            let field = |name: &str| -> Result<String, DebianError> {
                st.get(name)
                    .map(str::to_owned)
                    .ok_or_else(|| DebianError::Syntax {
                        file: file.to_owned(),
                        line: st.line,
                        reason: format!("stanza without `{name}:`"),
                    })
            };
            let rel = |name: &str| -> Result<Vec<Vec<Relation>>, DebianError> {
                relation::parse(st.get(name).unwrap_or("")).map_err(|reason| DebianError::Syntax {
                    file: file.to_owned(),
                    line: st.line,
                    reason: format!("{name}: {reason}"),
                })
            };
            let version_text = field("Version")?;
            let sha256 = field("SHA256")?.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DebianError::Syntax {
                    file: file.to_owned(),
                    line: st.line,
                    reason: format!("SHA256: `{sha256}` is not 64 hex digits"),
                });
            }
            packages.push(Package {
                name: field("Package")?,
                version: Version::parse(&version_text),
                version_text,
                architecture: st.get("Architecture").unwrap_or("all").to_owned(),
                filename: field("Filename")?,
                sha256,
                size: st.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                depends: rel("Depends")?,
                pre_depends: rel("Pre-Depends")?,
                provides: rel("Provides")?.into_iter().flatten().collect(),
                essential: st
                    .get("Essential")
                    .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
                priority: st.get("Priority").unwrap_or("optional").to_owned(),
            });
        }
        Ok(Packages { packages })
    }

    /// Add the packages of another index (another component or suite).
    pub fn extend(&mut self, other: Packages) {
        self.packages.extend(other.packages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lists_and_verifies_indexes() {
        let data = b"Package: a\n";
        let sum = hex::encode(Sha256::digest(data));
        let text = format!(
            "Origin: Debian\nSuite: stable\nMD5Sum:\n 0123 1 main/x\nSHA256:\n {sum} {} main/binary-amd64/Packages\n {} 5 main/binary-amd64/Packages.xz\n",
            data.len(),
            "0".repeat(64)
        );
        let r = Release::parse("Release", &text).unwrap();
        assert!(r.lists("main/binary-amd64/Packages.xz"));
        r.verify("main/binary-amd64/Packages", data).unwrap();
        let e = r.verify("main/binary-amd64/Packages.xz", data).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let e = r.verify("contrib/x", data).unwrap_err();
        assert!(e.to_string().contains("no entry for contrib/x"), "{e}");
    }

    #[test]
    fn packages_parse() {
        let text = "Package: mawk\nVersion: 1.3.4.20200120-3.1\nArchitecture: amd64\nProvides: awk\nPre-Depends: libc6 (>= 2.14)\nPriority: required\nFilename: pool/main/m/mawk/mawk_1.3.4.20200120-3.1_amd64.deb\nSize: 12\nSHA256: "
            .to_owned()
            + &"a".repeat(64)
            + "\n\nPackage: dash\nVersion: 0.5.12-2\nEssential: yes\nFilename: pool/d.deb\nSHA256: "
            + &"b".repeat(64)
            + "\n";
        let p = Packages::parse("Packages", &text).unwrap();
        assert_eq!(p.packages.len(), 2);
        assert_eq!(p.packages[0].provides[0].name, "awk");
        assert_eq!(p.packages[0].pre_depends[0][0].name, "libc6");
        assert!(p.packages[1].essential);
        let e = Packages::parse("Packages", "Package: x\nVersion: 1\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("Packages:1: stanza without `SHA256:`"),
            "{e}"
        );
    }
}

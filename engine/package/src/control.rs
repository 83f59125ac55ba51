//! A package's control stanza, as `dpkg` and `opkg` read it
//! (deb-control(5)): `Package`, `Version`, `Architecture`, `Maintainer`,
//! `Installed-Size`, `Depends`, `Section`, `Priority`, `Description`, in
//! that order.

use crate::PackageError;

/// Which package format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Debian's `.deb`: `ar` of `debian-binary`, `control.tar.xz`, `data.tar.xz`.
    Deb,
    /// opkg's `.ipk`: `ar` of `debian-binary`, `control.tar.gz`, `data.tar.gz`.
    Ipk,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Deb => "deb",
            Format::Ipk => "ipk",
        }
    }
}

/// One package's control data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub maintainer: String,
    /// Sum of the file sizes, in KiB, rounded up.
    pub installed_size: u64,
    /// (package, exact version) of each runtime dependency, in order.
    pub depends: Vec<(String, String)>,
    /// The synopsis (first line of `Description`).
    pub summary: String,
    /// Further lines of `Description`.
    pub details: Vec<String>,
}

impl Control {
    /// The stanza, every line ending in `\n`.
    pub fn stanza(&self) -> String {
        let mut s = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: {}\nInstalled-Size: {}\n",
            self.package, self.version, self.architecture, self.maintainer, self.installed_size
        );
        if !self.depends.is_empty() {
            let deps: Vec<String> = self
                .depends
                .iter()
                .map(|(p, v)| format!("{p} (= {v})"))
                .collect();
            s += &format!("Depends: {}\n", deps.join(", "));
        }
        s += "Section: misc\nPriority: optional\n";
        s += &format!("Description: {}\n", one_line(&self.summary));
        for d in &self.details {
            let d = one_line(d);
            s += &format!(" {}\n", if d.is_empty() { "." } else { &d });
        }
        s
    }

    /// `<package>_<version without epoch>_<architecture>.<ext>`.
    pub fn file_name(&self, format: Format) -> String {
        let v = self
            .version
            .split_once(':')
            .map_or(self.version.as_str(), |(_, v)| v);
        format!(
            "{}_{v}_{}.{}",
            self.package,
            self.architecture,
            format.extension()
        )
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A package name made from an element name: `.yaml`/`.bst` dropped,
/// lowercased, `/` and `_` and other characters outside `[a-z0-9+.-]`
/// become `-` (`libs/Zlib_ng.yaml` → `libs-zlib-ng`).
pub fn package_name(element: &str) -> String {
    let base = element
        .strip_suffix(".yaml")
        .or_else(|| element.strip_suffix(".bst"))
        .unwrap_or(element);
    let mut n: String = base
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while n.starts_with(['-', '+', '.']) {
        n.remove(0);
    }
    if n.len() < 2 {
        n = format!("cas-{n}");
    }
    n
}

/// Whether `name` is a valid package name (deb-control(5)): at least two
/// characters of `[a-z0-9+.-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), PackageError> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PackageError::Invalid(format!(
            "`{name}` is not a package name: two or more of a-z 0-9 + . -, starting with a letter or digit"
        )))
    }
}

/// Whether `v` is a valid version (deb-version(7)): `[epoch:]upstream[-revision]`,
/// the upstream part starting with a digit.
pub fn check_version(v: &str) -> Result<(), PackageError> {
    let bad = |why: &str| {
        Err(PackageError::Invalid(format!(
            "`{v}` is not a package version: {why}"
        )))
    };
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if epoch.is_some_and(|e| e.is_empty() || !e.chars().all(|c| c.is_ascii_digit())) {
        return bad("the epoch before `:` must be digits");
    }
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return bad("it must start with a digit");
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-' | ':'))
    {
        return bad("only letters, digits and . + ~ - : are allowed");
    }
    if rest.ends_with('-') {
        return bad("the revision after `-` is empty");
    }
    Ok(())
}

/// The version of an element without one: `0+cas.` and the first 12 hex
/// digits of its key (a new build of other inputs is another version).
pub fn default_version(key_hex: &str) -> String {
    format!("0+cas.{}", &key_hex[..12.min(key_hex.len())])
}

/// Debian's architecture name for a cas `build-arch`.
pub fn debian_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "i386" | "i486" | "i586" | "i686" | "x86" => "i386",
        "armv7" | "armv7l" | "armhf" | "arm" => "armhf",
        "ppc64le" | "powerpc64le" => "ppc64el",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_the_golden_stanza() {
        assert_eq!(package_name("libs/Zlib_ng.yaml"), "libs-zlib-ng");
        assert_eq!(package_name("a.yaml"), "cas-a");
        assert_eq!(package_name("_x.bst"), "cas-x");
        for n in ["libs-zlib-ng", "cas-a", "g++"] {
            check_name(n).unwrap();
        }
        for n in ["a", "-ab", "Ab", "a_b"] {
            assert!(check_name(n).is_err(), "{n}");
        }
        for v in ["1.0", "2:1.2.3-1", "0+cas.0123456789ab", "1.0~rc1"] {
            check_version(v).unwrap();
        }
        for v in ["", "v1", "1.0 beta", "x:1", "1.0-"] {
            assert!(check_version(v).is_err(), "{v}");
        }
        let c = Control {
            package: "cas-a".into(),
            version: "1:1.0-1".into(),
            architecture: "amd64".into(),
            maintainer: "cas <cas@localhost>".into(),
            installed_size: 17,
            depends: vec![("cas-o".into(), "0+cas.0123456789ab".into())],
            summary: "A,  the program".into(),
            details: vec!["built by cas".into(), String::new()],
        };
        assert_eq!(
            c.stanza(),
            "Package: cas-a\nVersion: 1:1.0-1\nArchitecture: amd64\nMaintainer: cas <cas@localhost>\n\
             Installed-Size: 17\nDepends: cas-o (= 0+cas.0123456789ab)\nSection: misc\n\
             Priority: optional\nDescription: A, the program\n built by cas\n .\n"
        );
        assert_eq!(c.file_name(Format::Ipk), "cas-a_1.0-1_amd64.ipk");
    }
}

//! Licences and the corresponding source.
//!
//! An element declares its licence with `license:` (an SPDX expression,
//! checked with the `spdx` crate); a Debian package's comes from its
//! copyright file when that is machine-readable (DEP-5): the `License:`
//! of every `Files:` stanza, Debian's short names mapped to SPDX
//! identifiers, those SPDX does not know kept as `LicenseRef-` with their
//! text. Anything else is `None` (NOASSERTION), never guessed.
//! [`write_legal_info`] writes `cas legal-info`'s directory.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::SbomError;
use crate::model::Closure;

/// A licence as an SPDX expression, with the text of each `LicenseRef-`
/// it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub expression: String,
    /// The distinct `Copyright:` lines of the file's `Files:` stanzas.
    pub copyright: Option<String>,
    /// `(LicenseRef-…, name as written, text)`.
    pub refs: Vec<(String, String, String)>,
}

/// Check a declared `license:`: a valid SPDX expression, returned in the
/// crate's canonical spelling.
pub fn check_declared(element: &str, expression: &str) -> Result<String, SbomError> {
    spdx::Expression::parse(expression)
        .map(|_| expression.trim().to_string())
        .map_err(|e| SbomError::License {
            element: element.to_string(),
            expression: expression.to_string(),
            reason: e.to_string(),
        })
}

/// Debian's short names whose SPDX identifier is not the name itself.
const DEBIAN_NAMES: &[(&str, &str)] = &[
    ("expat", "MIT"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd-4-clause", "BSD-4-Clause"),
    ("zlib", "Zlib"),
    ("artistic", "Artistic-1.0"),
    ("artistic-2", "Artistic-2.0"),
    ("psf-2", "PSF-2.0"),
    ("mpl-1.1", "MPL-1.1"),
    ("mpl-2.0", "MPL-2.0"),
    ("apache-2", "Apache-2.0"),
    ("cc0", "CC0-1.0"),
    ("isc", "ISC"),
    ("ftl", "FTL"),
    ("openssl", "OpenSSL"),
    ("bsl-1.0", "BSL-1.0"),
    ("unicode-dfs-2016", "Unicode-DFS-2016"),
    ("x11", "X11"),
];

/// Debian's exception names (`GPL-3+ with GCC-exception-3.1 exception`).
const DEBIAN_EXCEPTIONS: &[(&str, &str)] = &[
    ("gcc-exception-3.1", "GCC-exception-3.1"),
    ("gcc-exception-2.0", "GCC-exception-2.0"),
    ("autoconf", "Autoconf-exception-generic"),
    ("autoconf-exception", "Autoconf-exception-generic"),
    ("autoconf-exception-3.0", "Autoconf-exception-3.0"),
    ("bison", "Bison-exception-2.2"),
    ("bison-exception-2.2", "Bison-exception-2.2"),
    ("libtool", "Libtool-exception"),
    ("libtool-exception", "Libtool-exception"),
    ("classpath", "Classpath-exception-2.0"),
    ("font", "Font-exception-2.0"),
    ("openssl", "openvpn-openssl-exception"),
];

/// The SPDX identifier of one of Debian's short licence names (`GPL-2+` →
/// `GPL-2.0-or-later`), if it has one.
pub fn spdx_id(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, id)) = DEBIAN_NAMES.iter().find(|(n, _)| *n == lower) {
        return Some((*id).to_string());
    }
    // the GNU families: GPL-2, GPL-2+, LGPL-2.1+, AGPL-3, GFDL-1.3+
    for family in ["gpl", "lgpl", "agpl", "gfdl"] {
        if let Some(rest) = lower.strip_prefix(family).and_then(|r| r.strip_prefix('-')) {
            let (v, later) = match rest.strip_suffix('+') {
                Some(v) => (v, true),
                None => (rest, false),
            };
            let v = if v.contains('.') {
                v.to_string()
            } else {
                format!("{v}.0")
            };
            let id = format!(
                "{}-{v}-{}",
                family.to_ascii_uppercase(),
                if later { "or-later" } else { "only" }
            );
            return spdx::license_id(&id).map(|_| id);
        }
    }
    spdx::license_id(name)
        .map(|l| l.name.to_string())
        .or_else(|| {
            // `Apache-2.0`, `MIT` ... written as SPDX spells them, any case
            spdx::identifiers::LICENSES
                .iter()
                .find(|l| l.0.eq_ignore_ascii_case(name))
                .map(|l| l.0.to_string())
        })
}

fn exception_id(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, id)) = DEBIAN_EXCEPTIONS.iter().find(|(n, _)| *n == lower) {
        return Some((*id).to_string());
    }
    spdx::exception_id(name).map(|e| e.name.to_string())
}

/// `LicenseRef-` of a name SPDX does not know (idstring characters only).
fn license_ref(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("LicenseRef-{id}")
}

/// One `License:` value of a DEP-5 file as an SPDX expression: `or`/`and`
/// (`, and` too), `with X exception`; unknown names as `LicenseRef-`
/// (added to `refs` with `texts`' paragraph).
fn convert(
    value: &str,
    texts: &[(String, String)],
    refs: &mut Vec<(String, String, String)>,
) -> Option<String> {
    let words: Vec<&str> = value
        .split_whitespace()
        .map(|w| w.trim_end_matches(','))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        match w.to_ascii_lowercase().as_str() {
            "or" | "|" => out.push("OR".into()),
            "and" | "&" => out.push("AND".into()),
            "with" => {
                // with NAME exception
                let name = words.get(i + 1)?;
                let id = exception_id(name)?;
                out.push(format!("WITH {id}"));
                i += 1;
                if words
                    .get(i + 1)
                    .is_some_and(|w| w.eq_ignore_ascii_case("exception"))
                {
                    i += 1;
                }
            }
            _ => {
                let id = spdx_id(w).unwrap_or_else(|| {
                    let r = license_ref(w);
                    if !refs.iter().any(|(x, _, _)| *x == r) {
                        let text = texts
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(w))
                            .map_or_else(
                                || format!("{w}: see the package's copyright file"),
                                |(_, t)| t.clone(),
                            );
                        refs.push((r.clone(), w.to_string(), text));
                    }
                    r
                });
                out.push(id);
            }
        }
        i += 1;
    }
    Some(out.join(" "))
}

/// The licence of a package from its copyright file, when the file is
/// machine-readable (DEP-5: a first stanza whose `Format:` names
/// copyright-format 1.0): the distinct `License:` of its `Files:`
/// stanzas, joined with AND. `None` for any other file.
pub fn from_dep5(package: &str, text: &[u8]) -> Option<License> {
    let text = std::str::from_utf8(text).ok()?;
    let stanzas = cas_debian::control::parse(package, text).ok()?;
    let header = stanzas.first()?;
    if !header
        .get("Format")
        .is_some_and(|f| f.contains("copyright-format/1.0"))
    {
        return None;
    }
    // standalone License paragraphs: name → text
    let texts: Vec<(String, String)> = stanzas
        .iter()
        .filter(|s| s.get("Files").is_none())
        .filter_map(|s| {
            let v = s.get("License")?;
            let (name, body) = v.split_once('\n').unwrap_or((v, ""));
            Some((name.trim().to_string(), body.to_string()))
        })
        .collect();
    let mut refs = Vec::new();
    let mut terms: BTreeSet<String> = BTreeSet::new();
    let mut order: Vec<String> = Vec::new();
    let mut holders: Vec<String> = Vec::new();
    for s in stanzas.iter().filter(|s| s.get("Files").is_some()) {
        for line in s.get("Copyright").into_iter().flat_map(str::lines) {
            let line = line.trim();
            if !line.is_empty() && line != "." && !holders.iter().any(|h| h == line) {
                holders.push(line.to_string());
            }
        }
        let Some(v) = s.get("License") else {
            continue;
        };
        let first = v.lines().next().unwrap_or("").trim();
        if first.is_empty() {
            continue;
        }
        let expr = convert(first, &texts, &mut refs)?;
        if terms.insert(expr.clone()) {
            order.push(expr);
        }
    }
    if order.is_empty() {
        return None;
    }
    let expression = if order.len() == 1 {
        order.remove(0)
    } else {
        order
            .iter()
            .map(|e| {
                if e.contains(' ') {
                    format!("({e})")
                } else {
                    e.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // only what the SPDX crate accepts is claimed
    spdx::Expression::parse_mode(&expression, spdx::ParseMode::LAX).ok()?;
    let copyright = (!holders.is_empty()).then(|| holders.join("\n"));
    Some(License {
        expression,
        copyright,
        refs,
    })
}

/// Escape a field of the manifest (tab-separated).
fn field(s: &str) -> String {
    s.replace(['\t', '\n'], " ")
}

/// `cas legal-info`'s directory (created; it must be new or empty):
///
/// - `manifest.tsv`: one row per element and per upstream (package,
///   version, licence, source URL, checksum);
/// - `licenses/`: the licence texts found (declared files, Debian
///   copyright files), one file per package;
/// - `sources/`: every fetched source exactly as fetched (named by its
///   file name, prefixed by its checksum's first 12 hex digits when two
///   differ), git commits as bundles, local sources as their files;
/// - `SHA256SUMS`: the SHA-256 of every file written under `sources/`.
pub fn write_legal_info(
    closure: &Closure,
    dir: &Path,
    target: &str,
) -> Result<LegalReport, SbomError> {
    use sha2::Digest as _;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(SbomError::io(dir))?
            .next()
            .is_some()
    {
        return Err(SbomError::NotEmpty(dir.to_path_buf()));
    }
    let sources = dir.join("sources");
    let licenses = dir.join("licenses");
    for d in [&sources, &licenses] {
        std::fs::create_dir_all(d).map_err(SbomError::io(d))?;
    }
    let shipped = closure.shipped();
    let role = |yes: bool| if yes { "target" } else { "host" };
    let mut manifest =
        String::from("package\tversion\tlicense\tkind\tsource\tchecksum\telements\trole\n");
    let mut sums = String::new();
    let mut report = LegalReport::default();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (i, el) in closure.elements.iter().enumerate() {
        let license = el.license.clone().unwrap_or_else(|| "NOASSERTION".into());
        // an element's "source" is its element file, its identity its key
        let _ = writeln!(
            manifest,
            "{}\t{}\t{}\telement\t{}\tcas-key:{}\t{}\t{}",
            field(&el.name),
            field(&el.version),
            field(&license),
            field(&el.file),
            el.key.to_hex(),
            field(&el.name),
            role(shipped[i])
        );
    }
    for (i, up) in closure.upstreams.iter().enumerate() {
        let users: Vec<&str> = closure
            .elements
            .iter()
            .filter(|e| e.sources.contains(&i))
            .map(|e| e.name.as_str())
            .collect();
        let ships = closure
            .elements
            .iter()
            .zip(&shipped)
            .any(|(e, s)| *s && e.sources.contains(&i));
        let license = up
            .license
            .as_ref()
            .map_or_else(|| "NOASSERTION".to_string(), |l| l.expression.clone());
        let checksum = match (&up.checksum, &up.commit, &up.tree) {
            (Some(c), _, _) => c.to_string(),
            (None, Some(c), _) => format!("git:{c}"),
            (None, None, Some(t)) => format!("blake3:{}", t.digest().to_hex()),
            _ => "NOASSERTION".into(),
        };
        let _ = writeln!(
            manifest,
            "{}\t{}\t{}\t{}\t{}\t{checksum}\t{}\t{}",
            field(&up.name),
            field(&up.version),
            field(&license),
            up.kind,
            field(up.download.as_deref().unwrap_or(&up.written)),
            field(&users.join(",")),
            role(ships)
        );
        // the licence text
        if let Some(text) = up.deb.as_ref().and_then(|d| d.copyright.as_ref()) {
            let f = licenses.join(format!("{}.copyright", safe(&up.name)));
            std::fs::write(&f, text).map_err(SbomError::io(&f))?;
            report.licenses += 1;
        }
        // the source itself
        let mut name = safe(&up.file_name);
        if !names.insert(name.clone()) {
            let tag = checksum.rsplit(':').next().unwrap_or("x");
            name = format!("{}-{name}", &tag[..12.min(tag.len())]);
            names.insert(name.clone());
        }
        let dest = sources.join(&name);
        match up.kind {
            "git" => {
                let commit = up.commit.as_deref().unwrap_or_default();
                let Some(mirror) = &up.path else {
                    return Err(SbomError::NotFetched {
                        what: format!("{} at {commit}", up.written),
                        target: target.to_string(),
                    });
                };
                let dest =
                    sources.join(format!("{name}-{}.bundle", &commit[..12.min(commit.len())]));
                bundle(mirror, commit, &dest)?;
                sums.push_str(&sum_line(&dest, &sources)?);
                report.sources += 1;
            }
            "local" | "patch" => {
                let Some(p) = &up.path else { continue };
                copy_tree(p, &dest)?;
                for entry in walk(&dest)? {
                    sums.push_str(&sum_line(&entry, &sources)?);
                }
                report.sources += 1;
            }
            _ => {
                let Some(p) = &up.path else {
                    return Err(SbomError::NotFetched {
                        what: format!("{} ({})", up.written, checksum),
                        target: target.to_string(),
                    });
                };
                std::fs::copy(p, &dest).map_err(SbomError::io(&dest))?;
                let bytes = std::fs::read(&dest).map_err(SbomError::io(&dest))?;
                // a cached file is checked against its recorded identity
                if let Some(c) = &up.checksum {
                    let got = match c {
                        cas_sources::Checksum::Sha256(_) => {
                            hex::encode(sha2::Sha256::digest(&bytes))
                        }
                        cas_sources::Checksum::Blake3(_) => {
                            blake3::hash(&bytes).to_hex().to_string()
                        }
                    };
                    if got != c.hex() {
                        return Err(SbomError::Verification {
                            file: p.display().to_string(),
                            reason: format!("has {}:{got}, not its recorded {c}", c.algorithm()),
                        });
                    }
                }
                let _ = writeln!(
                    sums,
                    "{}  {name}",
                    hex::encode(sha2::Sha256::digest(&bytes))
                );
                report.sources += 1;
            }
        }
    }
    for (path, text) in [
        (dir.join("manifest.tsv"), manifest.as_bytes()),
        (dir.join("SHA256SUMS"), sums.as_bytes()),
    ] {
        std::fs::write(&path, text).map_err(SbomError::io(&path))?;
    }
    report.packages = closure.elements.len() + closure.upstreams.len();
    Ok(report)
}

/// What [`write_legal_info`] wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct LegalReport {
    pub packages: usize,
    pub sources: usize,
    pub licenses: usize,
}

fn safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        format!("_{s}")
    } else {
        s
    }
}

fn sum_line(path: &Path, base: &Path) -> Result<String, SbomError> {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).map_err(SbomError::io(path))?;
    let rel = path.strip_prefix(base).unwrap_or(path);
    Ok(format!(
        "{}  {}\n",
        hex::encode(sha2::Sha256::digest(&bytes)),
        rel.display()
    ))
}

/// Regular files under `dir` (or `dir` itself), sorted.
fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>, SbomError> {
    let meta = std::fs::symlink_metadata(dir).map_err(SbomError::io(dir))?;
    if meta.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out = Vec::new();
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(SbomError::io(dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for e in entries {
            out.extend(walk(&e)?);
        }
    }
    Ok(out)
}

/// Copy a project file or directory as it is (symlinks as links).
fn copy_tree(from: &Path, to: &Path) -> Result<(), SbomError> {
    let meta = std::fs::symlink_metadata(from).map_err(SbomError::io(from))?;
    if meta.file_type().is_symlink() {
        let t = std::fs::read_link(from).map_err(SbomError::io(from))?;
        std::os::unix::fs::symlink(t, to).map_err(SbomError::io(to))?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(to).map_err(SbomError::io(to))?;
        for e in std::fs::read_dir(from).map_err(SbomError::io(from))? {
            let e = e.map_err(SbomError::io(from))?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else {
        std::fs::copy(from, to).map_err(SbomError::io(to))?;
    }
    Ok(())
}

/// `git bundle` of `commit` from the bare mirror cas fetched it into.
fn bundle(mirror: &Path, commit: &str, dest: &Path) -> Result<(), SbomError> {
    let tmp_ref = "refs/cas-legal-info/bundle";
    let git = |args: &[&str]| -> Result<(), SbomError> {
        let out = cas_sources::host::git()
            .arg("--git-dir")
            .arg(mirror)
            .args(args)
            .output()
            .map_err(SbomError::io(mirror))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SbomError::Io {
                path: mirror.to_path_buf(),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ),
            })
        }
    };
    git(&["update-ref", tmp_ref, commit])?;
    let made = git(&["bundle", "create", &dest.to_string_lossy(), tmp_ref]);
    let _ = git(&["update-ref", "-d", tmp_ref]);
    made
}

#[cfg(test)]
mod tests {
    use super::{from_dep5, spdx_id};

    #[test]
    fn debian_short_names_map_to_spdx_ids() {
        for (debian, spdx) in [
            ("GPL-2", "GPL-2.0-only"),
            ("GPL-2+", "GPL-2.0-or-later"),
            ("LGPL-2.1+", "LGPL-2.1-or-later"),
            ("GFDL-1.3", "GFDL-1.3-only"),
            ("Expat", "MIT"),
            ("BSD-3-clause", "BSD-3-Clause"),
            ("Apache-2.0", "Apache-2.0"),
            ("zlib", "Zlib"),
            ("isc", "ISC"),
        ] {
            assert_eq!(spdx_id(debian).as_deref(), Some(spdx), "{debian}");
        }
        assert_eq!(spdx_id("public-domain"), None);
    }

    #[test]
    fn dep5_files_give_one_expression_and_others_none() {
        let text = "Format: https://example.org/copyright-format/1.0/\n\n\
                    Files: *\nCopyright: 2020 A\nLicense: GPL-3+ with Bison exception\n\n\
                    Files: lib/*\nCopyright: 2021 B\nLicense: LGPL-2.1+ or public-domain\n\n\
                    Files: doc/*\nCopyright: 2020 A\nLicense: GPL-3+ with Bison exception\n\n\
                    License: public-domain\n This is in the public domain.\n";
        let l = from_dep5("p", text.as_bytes()).unwrap();
        assert_eq!(
            l.expression,
            "(GPL-3.0-or-later WITH Bison-exception-2.2) AND (LGPL-2.1-or-later OR LicenseRef-public-domain)"
        );
        assert_eq!(l.refs.len(), 1);
        assert_eq!(l.refs[0].0, "LicenseRef-public-domain");
        assert!(l.refs[0].2.contains("public domain"));
        assert_eq!(l.copyright.as_deref(), Some("2020 A\n2021 B"));
        // not machine-readable: nothing is guessed
        assert!(from_dep5("p", b"This package is GPL-2+.\n").is_none());
    }
}

//! What a Debian binary package says about itself: the fields of its
//! `control` file, and its copyright file
//! (`usr/share/doc/PACKAGE/copyright`), read from the `.deb` as fetched.

use std::io::Read;
use std::path::Path;

use crate::error::SbomError;

/// The fields of a package that an SBOM names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    /// As dpkg writes it, epoch included (`1:2.38.1-5+deb12u3`).
    pub version: String,
    pub architecture: String,
    /// The source package and its version (`Source:`, else the package's own).
    pub source: String,
    pub source_version: String,
    pub maintainer: Option<String>,
    pub homepage: Option<String>,
    pub description: Option<String>,
}

/// A package's control fields and, when it ships one, its copyright file.
#[derive(Debug, Clone)]
pub struct DebInfo {
    pub control: Control,
    pub copyright: Option<Vec<u8>>,
}

fn is_tar_member(name: &str, stem: &str) -> bool {
    name.strip_prefix(stem)
        .is_some_and(|rest| [".tar", ".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2"].contains(&rest))
}

/// Normalised path of a tar member (`./usr/x` → `usr/x`).
fn member_path(entry: &tar::Entry<'_, impl Read>) -> Option<String> {
    let p = entry.path().ok()?;
    let s = p.to_string_lossy();
    Some(s.trim_start_matches("./").trim_end_matches('/').to_string())
}

/// Read the package at `path`: its control fields, and (with
/// `copyright`) its copyright file, following the package's own
/// `usr/share/doc/PACKAGE` symlink once when it points to a sibling
/// directory (`libgcc-s1` → `gcc-12-base`) that the package ships.
pub fn read_deb(path: &Path, copyright: bool) -> Result<DebInfo, SbomError> {
    let bad = |reason: String| SbomError::Deb {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(SbomError::io(path))?;
    let mut control: Option<Control> = None;
    let mut text: Option<Vec<u8>> = None;
    let label = path.display().to_string();
    cas_sources::deb::for_each_member(
        std::io::BufReader::new(file),
        |member, data| {
            let err = |m: String| cas_sources::SourceError::Deb {
                archive: label.clone(),
                message: m,
            };
            if is_tar_member(&member.name, "control") {
                let reader = cas_sources::archive::decompress(data)
                    .map_err(|e| err(format!("cannot decompress {}: {e}", member.name)))?;
                let mut archive = tar::Archive::new(reader.take(64 << 20));
                for entry in archive.entries().map_err(|e| err(e.to_string()))? {
                    let mut entry = entry.map_err(|e| err(e.to_string()))?;
                    if member_path(&entry).as_deref() == Some("control") {
                        let mut s = String::new();
                        entry
                            .read_to_string(&mut s)
                            .map_err(|e| err(format!("control: {e}")))?;
                        control = Some(parse_control(&label, &s).map_err(err)?);
                        break;
                    }
                }
                return Ok(!copyright);
            }
            if copyright && is_tar_member(&member.name, "data") {
                let Some(c) = &control else {
                    return Ok(true);
                };
                let reader = cas_sources::archive::decompress(data)
                    .map_err(|e| err(format!("cannot decompress {}: {e}", member.name)))?;
                text = find_copyright(reader, &c.package).map_err(|e| err(e.to_string()))?;
                return Ok(true);
            }
            Ok(false)
        },
        &label,
    )
    .map_err(|e| bad(e.to_string()))?;
    let control = control.ok_or_else(|| bad("no control file".into()))?;
    Ok(DebInfo {
        control,
        copyright: text,
    })
}

/// The copyright file of `package` in a data archive, through one
/// symlink of its doc directory to a sibling directory.
fn find_copyright(reader: impl Read, package: &str) -> std::io::Result<Option<Vec<u8>>> {
    let own = format!("usr/share/doc/{package}");
    let mut files: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    let mut doc_link: Option<String> = None;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(p) = member_path(&entry) else {
            continue;
        };
        if p == own && entry.header().entry_type().is_symlink() {
            if let Ok(Some(t)) = entry.link_name() {
                let t = t.to_string_lossy().trim_end_matches('/').to_string();
                if !t.contains('/') {
                    doc_link = Some(format!("usr/share/doc/{t}"));
                }
            }
            continue;
        }
        if p.starts_with("usr/share/doc/")
            && p.ends_with("/copyright")
            && entry.header().entry_type().is_file()
            && entry.size() <= 4 << 20
        {
            let mut v = Vec::new();
            entry.read_to_end(&mut v)?;
            if p == format!("{own}/copyright") {
                return Ok(Some(v));
            }
            files.insert(p, v);
        }
    }
    Ok(doc_link.and_then(|d| files.remove(&format!("{d}/copyright"))))
}

fn parse_control(label: &str, text: &str) -> Result<Control, String> {
    let stanza = cas_debian::control::parse_one(label, text).map_err(|e| e.to_string())?;
    let field = |n: &str| stanza.get(n).map(str::to_string);
    let package = field("Package").ok_or("no Package field")?;
    let version = field("Version").ok_or("no Version field")?;
    let architecture = field("Architecture").unwrap_or_else(|| "all".into());
    // `Source: NAME (VERSION)` when the source's version differs
    let (source, source_version) = match stanza.get("Source") {
        Some(s) => match s.split_once('(') {
            Some((n, v)) => (
                n.trim().to_string(),
                v.trim_end_matches(')').trim().to_string(),
            ),
            None => (s.trim().to_string(), version.clone()),
        },
        None => (package.clone(), version.clone()),
    };
    Ok(Control {
        package,
        version,
        architecture,
        source,
        source_version,
        maintainer: field("Maintainer"),
        homepage: field("Homepage"),
        description: stanza
            .get("Description")
            .and_then(|d| d.lines().next())
            .map(str::to_string),
    })
}

/// Name, version and architecture from a pool file name
/// (`NAME_VERSION_ARCH.deb`; the version without its epoch, which file
/// names leave out): what is known of a package that is not fetched.
pub fn from_file_name(file: &str) -> Option<(String, String, String)> {
    let stem = file
        .strip_suffix(".deb")
        .or_else(|| file.strip_suffix(".udeb"))?;
    let mut parts = stem.splitn(3, '_');
    let (n, v, a) = (parts.next()?, parts.next()?, parts.next()?);
    let v = v.replace("%3a", ":").replace("%3A", ":");
    Some((n.to_string(), v, a.to_string()))
}

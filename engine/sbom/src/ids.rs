//! Names every document gives the same thing: an identifier per element
//! and per upstream (SPDX's `SPDXID`, CycloneDX's `bom-ref`), package URLs
//! and suppliers.

use std::collections::HashSet;

use crate::model::{Closure, Upstream};

/// `SPDXRef-` identifiers (letters, digits, `.` and `-`) of every element
/// and upstream, unique, from their names: `elements[i]`, `upstreams[i]`.
pub struct Ids {
    pub elements: Vec<String>,
    pub upstreams: Vec<String>,
}

fn idstring(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

impl Ids {
    pub fn new(c: &Closure) -> Ids {
        let mut used = HashSet::new();
        let mut unique = |base: String| {
            let mut id = base.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}-{n}");
                n += 1;
            }
            id
        };
        let elements = c
            .elements
            .iter()
            .map(|e| unique(format!("SPDXRef-element-{}", idstring(&e.name))))
            .collect();
        let upstreams = c
            .upstreams
            .iter()
            .map(|u| {
                let what = match &u.deb {
                    Some(d) => format!(
                        "deb-{}-{}-{}",
                        d.control.package, d.control.version, d.control.architecture
                    ),
                    None => format!("{}-{}", u.kind, u.file_name),
                };
                unique(format!("SPDXRef-{}", idstring(&what)))
            })
            .collect();
        Ids {
            elements,
            upstreams,
        }
    }
}

/// Percent-encoding of a package URL component (RFC 3986 unreserved kept).
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The package URL of an upstream: `pkg:deb/debian/NAME@VERSION?arch=A`
/// for a Debian package, `pkg:cargo/NAME@VERSION` for a crate,
/// `pkg:generic/NAME@VERSION?checksum=…&download_url=…` for a file,
/// `…?vcs_url=git+URL@COMMIT` for a git commit; none for project files.
pub fn purl(u: &Upstream) -> Option<String> {
    if let Some(d) = &u.deb {
        return Some(format!(
            "pkg:deb/debian/{}@{}?arch={}",
            pct(&d.control.package),
            pct(&d.control.version),
            pct(&d.control.architecture)
        ));
    }
    match u.kind {
        "crate" => Some(format!("pkg:cargo/{}@{}", pct(&u.name), pct(&u.version))),
        "git" => {
            let url = u.download.as_deref().unwrap_or(&u.written);
            Some(format!(
                "pkg:generic/{}@{}?vcs_url={}",
                pct(&u.name),
                pct(&u.version),
                pct(&format!("git+{url}@{}", u.version))
            ))
        }
        "tar" | "remote" => {
            let mut q = Vec::new();
            if let Some(c) = &u.checksum {
                q.push(format!("checksum={}", pct(&c.to_string())));
            }
            if let Some(d) = &u.download {
                q.push(format!("download_url={}", pct(d)));
            }
            Some(format!(
                "pkg:generic/{}@{}?{}",
                pct(&u.name),
                pct(&u.version),
                q.join("&")
            ))
        }
        _ => None,
    }
}

/// Who supplies an upstream: a Debian package's `Maintainer`, else the
/// project that pins it (as Yocto names its distribution).
pub fn supplier(c: &Closure, u: Option<&Upstream>) -> (String, Option<String>) {
    if let Some(m) = u
        .and_then(|u| u.deb.as_ref())
        .and_then(|d| d.control.maintainer.as_deref())
    {
        if let Some((name, rest)) = m.split_once('<') {
            return (
                name.trim().to_string(),
                Some(rest.trim_end_matches('>').trim().to_string()),
            );
        }
        return (m.trim().to_string(), None);
    }
    if u.is_some_and(|u| u.deb.is_some()) {
        return ("Debian".into(), None);
    }
    (c.project.clone(), None)
}

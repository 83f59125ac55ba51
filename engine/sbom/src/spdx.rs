//! The SPDX 2.3 JSON document of a closure (spec/sbom.md, "SPDX").

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::files::{verification_code, File};
use crate::ids::{purl, supplier, Ids};
use crate::model::{Closure, Edge, Upstream};
use crate::time::rfc3339;

const NOASSERTION: &str = "NOASSERTION";

fn spdx_algorithm(c: &cas_sources::Checksum) -> &'static str {
    match c {
        cas_sources::Checksum::Sha256(_) => "SHA256",
        cas_sources::Checksum::Blake3(_) => "BLAKE3",
    }
}

fn supplier_text(c: &Closure, u: Option<&Upstream>) -> String {
    let (name, email) = supplier(c, u);
    let name = name.replace(['(', ')'], "");
    format!("Organization: {name} ({})", email.unwrap_or_default())
}

fn upstream_package(c: &Closure, u: &Upstream, id: &str) -> Value {
    let mut p = json!({
        "SPDXID": id,
        "name": u.name,
        "versionInfo": u.version,
        "supplier": supplier_text(c, Some(u)),
        "downloadLocation": download_location(u),
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": u.license.as_ref().map_or(NOASSERTION, |l| l.expression.as_str()),
        "copyrightText": u.license.as_ref().and_then(|l| l.copyright.as_deref()).unwrap_or(NOASSERTION),
        "packageFileName": u.file_name,
    });
    let m = p.as_object_mut().expect("an object");
    if let Some(ch) = &u.checksum {
        m.insert(
            "checksums".into(),
            json!([{ "algorithm": spdx_algorithm(ch), "checksumValue": ch.hex() }]),
        );
    }
    if let Some(purl) = purl(u) {
        m.insert(
            "externalRefs".into(),
            json!([{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl }]),
        );
    }
    let mut comment = format!("cas {} source {}", u.kind, u.written);
    if let Some(d) = &u.download {
        comment.push_str(&format!(", from {d}"));
    }
    if let Some(t) = &u.tree {
        comment.push_str(&format!(" (tree blake3:{})", t.digest().to_hex()));
    }
    if let Some(d) = &u.deb {
        if d.control.source != d.control.package || d.control.source_version != d.control.version {
            m.insert(
                "sourceInfo".into(),
                json!(format!(
                    "built from the Debian source package {} {}",
                    d.control.source, d.control.source_version
                )),
            );
        }
        if let Some(h) = d.control.homepage.as_ref().filter(|h| is_spdx_location(h)) {
            m.insert("homepage".into(), json!(h));
        }
        if let Some(s) = &d.control.description {
            m.insert("summary".into(), json!(s));
        }
        if !d.from_control {
            comment.push_str(" (not fetched: name and version from the file name)");
        }
        m.insert("primaryPackagePurpose".into(), json!("INSTALL"));
    } else if u.kind != "crate" {
        m.insert("primaryPackagePurpose".into(), json!("SOURCE"));
    } else {
        m.insert("primaryPackagePurpose".into(), json!("LIBRARY"));
    }
    m.insert("comment".into(), json!(comment));
    p
}

/// SPDX's download location of an upstream: its URL (`git+URL@COMMIT`
/// for git) when it has the form SPDX 2.3 defines (its appendix's
/// pattern: a scheme SPDX lists and a host name with a top-level domain),
/// NOASSERTION otherwise (a `file://` URL, an address, a URL unknown),
/// NONE for project files. The URL as written is in the comment either way.
fn download_location(u: &Upstream) -> String {
    let location = match (u.kind, &u.download) {
        ("local" | "patch", _) => return "NONE".into(),
        ("git", Some(d)) => format!("git+{d}@{}", u.version),
        (_, Some(d)) => d.clone(),
        (_, None) => return NOASSERTION.into(),
    };
    if is_spdx_location(&location) {
        location
    } else {
        NOASSERTION.into()
    }
}

/// Whether `s` is a download location of SPDX 2.3's pattern:
/// `[(git|hg|svn|bzr)+](http|https|ssh|git|svn|sftp|ftp)://[USER@]HOST[:PORT][/PATH]`,
/// HOST being labels of letters and digits joined by single `.` or `-`,
/// ending with `.` and 2 to 5 letters.
pub fn is_spdx_location(s: &str) -> bool {
    let s = ["git+", "hg+", "svn+", "bzr+"]
        .iter()
        .find_map(|v| s.strip_prefix(v))
        .unwrap_or(s);
    let Some(rest) = [
        "http://", "https://", "ssh://", "git://", "svn://", "sftp://", "ftp://",
    ]
    .iter()
    .find_map(|p| s.strip_prefix(p)) else {
        return false;
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
    let port_ok = port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    if !port_ok {
        return false;
    }
    let Some((labels, tld)) = host.rsplit_once('.') else {
        return false;
    };
    (2..=5).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && !labels.is_empty()
        && labels
            .split(['.', '-'])
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The document: one package per element and per upstream, the
/// relationships of the graph, with `files` (`--files`) each regular
/// file of the target's output.
pub fn document(c: &Closure, files: Option<&[File]>) -> Value {
    let ids = Ids::new(c);
    let top = c.top();
    let mut packages = Vec::new();
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": ids.elements[c.top],
    })];
    let rel = |a: &str, t: &str, b: &str| json!({ "spdxElementId": a, "relationshipType": t, "relatedSpdxElement": b });
    for (i, e) in c.elements.iter().enumerate() {
        let id = &ids.elements[i];
        let mut p = json!({
            "SPDXID": id,
            "name": e.name,
            "versionInfo": e.version,
            "supplier": supplier_text(c, None),
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": e.license.as_deref().unwrap_or(NOASSERTION),
            "copyrightText": NOASSERTION,
            "builtDate": rfc3339(e.created),
            "comment": format!(
                "cas element of kind {}: key {}, output tree blake3:{}",
                e.kind,
                e.key.to_hex(),
                e.output.digest().to_hex()
            ),
        });
        let m = p.as_object_mut().expect("an object");
        if let Some(d) = &e.description {
            m.insert("summary".into(), json!(d));
        }
        if i == c.top {
            m.insert("primaryPackagePurpose".into(), json!(purpose(e)));
            if let Some(files) = files.filter(|f| !f.is_empty()) {
                m.insert("filesAnalyzed".into(), json!(true));
                m.insert(
                    "packageVerificationCode".into(),
                    json!({ "packageVerificationCodeValue": verification_code(files) }),
                );
            }
        }
        packages.push(p);
        for (edge, d) in &e.edges {
            let d = &ids.elements[*d];
            rels.push(match edge {
                Edge::Contains => rel(id, "CONTAINS", d),
                Edge::BuildTool => rel(d, "BUILD_TOOL_OF", id),
                Edge::Depends => rel(id, "DEPENDS_ON", d),
                Edge::Runtime => rel(d, "RUNTIME_DEPENDENCY_OF", id),
            });
            if *edge == Edge::Runtime {
                // what it needs at run time ships with it: the generic
                // edge too, which NTIA's checker follows
                rels.push(rel(id, "DEPENDS_ON", d));
            }
        }
        for s in &e.sources {
            let s = &ids.upstreams[*s];
            rels.push(if e.imports {
                rel(id, "CONTAINS", s)
            } else {
                rel(id, "GENERATED_FROM", s)
            });
        }
    }
    let mut extracted: BTreeMap<String, Value> = BTreeMap::new();
    // a `LicenseRef-` an element declares: SPDX wants its text, cas has none
    for e in &c.elements {
        for r in e
            .license
            .iter()
            .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '(' || c == ')'))
            .filter(|w| w.starts_with("LicenseRef-"))
        {
            extracted.entry(r.to_string()).or_insert_with(|| {
                json!({
                    "licenseId": r,
                    "name": r.trim_start_matches("LicenseRef-"),
                    "extractedText": format!("{r}: declared by {} (its text is not recorded by cas)", e.name),
                })
            });
        }
    }
    for (i, u) in c.upstreams.iter().enumerate() {
        packages.push(upstream_package(c, u, &ids.upstreams[i]));
        for (r, name, text) in u.license.iter().flat_map(|l| &l.refs) {
            extracted.entry(r.clone()).or_insert_with(|| {
                json!({
                    "licenseId": r,
                    "name": name,
                    "extractedText": if text.trim().is_empty() { format!("{name}: see the package's copyright file") } else { text.clone() },
                })
            });
        }
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}/{}", c.project, top.name),
        "documentNamespace": format!(
            "urn:cas:spdx:{}:{}",
            crate::ids::pct(&c.project),
            top.key.to_hex()
        ),
        "creationInfo": {
            "created": rfc3339(top.created),
            "creators": [
                format!("Tool: cas-{}", c.cas_version),
                format!("Organization: {} ()", c.project.replace(['(', ')'], "")),
            ],
            "comment": format!(
                "From what cas recorded about the build of {} (key {}); the time is its result's.",
                top.name,
                top.key.to_hex()
            ),
        },
        "packages": packages,
        "relationships": rels,
    });
    let m = doc.as_object_mut().expect("an object");
    if let Some(files) = files {
        let mut out = Vec::new();
        for (n, f) in files.iter().enumerate() {
            let id = format!("SPDXRef-file-{}", n + 1);
            let mut v = json!({
                "SPDXID": id,
                "fileName": format!("./{}", f.path),
                "checksums": [
                    { "algorithm": "SHA1", "checksumValue": f.sha1 },
                    { "algorithm": "SHA256", "checksumValue": f.sha256 },
                ],
                "licenseConcluded": NOASSERTION,
                "copyrightText": NOASSERTION,
            });
            if let Some(e) = &f.element {
                v.as_object_mut()
                    .expect("an object")
                    .insert("comment".into(), json!(format!("from {e}")));
            }
            out.push(v);
            if let Some(r) = m.get_mut("relationships").and_then(Value::as_array_mut) {
                r.push(rel(&ids.elements[c.top], "CONTAINS", &id));
            }
        }
        m.insert("files".into(), json!(out));
    }
    if !extracted.is_empty() {
        m.insert(
            "hasExtractedLicensingInfos".into(),
            Value::Array(extracted.into_values().collect()),
        );
    }
    doc
}

/// SPDX's primary purpose of the target: CONTAINER when it contains other
/// elements (a compose, a stack ...), else APPLICATION.
fn purpose(e: &crate::model::Element) -> &'static str {
    if e.edges.iter().any(|(k, _)| *k == Edge::Contains) {
        "CONTAINER"
    } else {
        "APPLICATION"
    }
}

#[cfg(test)]
mod tests {
    use super::is_spdx_location;

    #[test]
    fn download_locations_of_spdx_pattern() {
        for ok in [
            "https://example.org/a.tar.gz",
            "http://ftp.example.org:8080/pool/x.deb",
            "git+https://example.org/r.git@0123",
            "ftp://user@files.example.co/x",
        ] {
            assert!(is_spdx_location(ok), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:4000/files/x.tar",
            "git+file:///tmp/repo@0123",
            "file:///tmp/x",
            "https://localhost/x",
            "https://exa--mple.org/x",
        ] {
            assert!(!is_spdx_location(bad), "{bad}");
        }
    }
}

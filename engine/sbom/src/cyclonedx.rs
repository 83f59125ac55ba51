//! The CycloneDX 1.6 JSON document of a closure (spec/sbom.md,
//! "CycloneDX").

use serde_json::{json, Value};
use sha1::Digest as _;

use crate::files::File;
use crate::ids::{purl, supplier, Ids};
use crate::model::{Closure, Edge, Element, Upstream};
use crate::time::rfc3339;

fn cdx_algorithm(c: &cas_sources::Checksum) -> &'static str {
    match c {
        cas_sources::Checksum::Sha256(_) => "SHA-256",
        cas_sources::Checksum::Blake3(_) => "BLAKE3",
    }
}

/// A name-based (version 5) UUID of `name` in the URL namespace: the
/// document's serial number, a function of the closure.
pub fn uuid5(name: &str) -> String {
    const URL_NS: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    let mut h = sha1::Sha1::new();
    h.update(URL_NS);
    h.update(name.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// Whether `s` can be an `iri-reference` of the schema: a scheme, and
/// no whitespace or character IRIs exclude.
fn is_iri(s: &str) -> bool {
    s.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    }) && !s
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(c))
}

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({ "name": name, "value": value.into() })
}

fn licenses(expression: Option<&str>) -> Option<Value> {
    expression.map(|e| json!([{ "expression": e }]))
}

fn element_component(c: &Closure, e: &Element, id: &str) -> Value {
    let mut v = json!({
        "type": if e.edges.iter().any(|(k, _)| *k == Edge::Contains) { "platform" } else { "application" },
        "bom-ref": id,
        "name": e.name,
        "version": e.version,
        "supplier": { "name": supplier(c, None).0 },
        "properties": [
            prop("cas:kind", e.kind.clone()),
            prop("cas:key", e.key.to_hex()),
            prop("cas:output", format!("blake3:{}", e.output.digest().to_hex())),
            prop("cas:built", rfc3339(e.created)),
        ],
    });
    let m = v.as_object_mut().expect("an object");
    if let Some(d) = &e.description {
        m.insert("description".into(), json!(d));
    }
    if let Some(l) = licenses(e.license.as_deref()) {
        m.insert("licenses".into(), l);
    }
    v
}

fn upstream_component(c: &Closure, u: &Upstream, id: &str) -> Value {
    let (name, email) = supplier(c, Some(u));
    let mut sup = json!({ "name": name });
    // only what the schema's `idn-email` accepts
    let email = email.filter(|e| {
        e.matches('@').count() == 1
            && !e.starts_with('@')
            && !e.ends_with('@')
            && !e.chars().any(char::is_whitespace)
    });
    if let Some(email) = email {
        sup.as_object_mut()
            .expect("an object")
            .insert("contact".into(), json!([{ "email": email }]));
    }
    let mut v = json!({
        "type": if u.deb.is_some() || u.kind == "crate" { "library" } else { "file" },
        "bom-ref": id,
        "name": u.name,
        "version": u.version,
        "supplier": sup,
        "properties": [
            prop("cas:source-kind", u.kind),
            prop("cas:source", u.written.clone()),
            prop("cas:file-name", u.file_name.clone()),
        ],
    });
    let m = v.as_object_mut().expect("an object");
    if let Some(ch) = &u.checksum {
        m.insert(
            "hashes".into(),
            json!([{ "alg": cdx_algorithm(ch), "content": ch.hex() }]),
        );
    }
    if let Some(p) = purl(u) {
        m.insert("purl".into(), json!(p));
    }
    if let Some(l) = licenses(u.license.as_ref().map(|l| l.expression.as_str())) {
        m.insert("licenses".into(), l);
    }
    if let Some(c) = u.license.as_ref().and_then(|l| l.copyright.as_ref()) {
        m.insert("copyright".into(), json!(c));
    }
    let mut refs = Vec::new();
    let download = u.download.as_ref().filter(|d| is_iri(d));
    match (download, u.kind) {
        (Some(d), "git") => {
            refs.push(json!({ "type": "vcs", "url": format!("git+{d}@{}", u.version) }));
        }
        (Some(d), _) => refs.push(json!({ "type": "distribution", "url": d })),
        _ => {}
    }
    if let Some(h) = u
        .deb
        .as_ref()
        .and_then(|d| d.control.homepage.as_ref())
        .filter(|h| is_iri(h))
    {
        refs.push(json!({ "type": "website", "url": h }));
    }
    if !refs.is_empty() {
        m.insert("externalReferences".into(), json!(refs));
    }
    if let Some(d) = &u.deb {
        if let Some(s) = &d.control.description {
            m.insert("description".into(), json!(s));
        }
        if let Some(p) = m.get_mut("properties").and_then(Value::as_array_mut) {
            p.push(prop(
                "cas:deb-source",
                format!("{} {}", d.control.source, d.control.source_version),
            ));
        }
    }
    if let Some(t) = &u.tree {
        if let Some(p) = m.get_mut("properties").and_then(Value::as_array_mut) {
            p.push(prop("cas:tree", format!("blake3:{}", t.digest().to_hex())));
        }
    }
    v
}

/// The document: the target as `metadata.component`, every other element
/// and every upstream as a component, the graph as `dependencies`, with
/// `files` each regular file of the target's output as a `file` component.
pub fn document(c: &Closure, files: Option<&[File]>) -> Value {
    let ids = Ids::new(c);
    let top = c.top();
    let mut components = Vec::new();
    let mut deps = Vec::new();
    for (i, e) in c.elements.iter().enumerate() {
        if i != c.top {
            components.push(element_component(c, e, &ids.elements[i]));
        }
        let mut on: Vec<&str> = Vec::new();
        for (_, d) in &e.edges {
            on.push(&ids.elements[*d]);
        }
        for s in &e.sources {
            on.push(&ids.upstreams[*s]);
        }
        let mut seen = std::collections::HashSet::new();
        on.retain(|x| seen.insert(*x));
        deps.push(json!({ "ref": ids.elements[i], "dependsOn": on }));
    }
    for (i, u) in c.upstreams.iter().enumerate() {
        components.push(upstream_component(c, u, &ids.upstreams[i]));
        deps.push(json!({ "ref": ids.upstreams[i], "dependsOn": [] }));
    }
    if let Some(files) = files {
        for (n, f) in files.iter().enumerate() {
            let mut props = vec![prop("cas:blake3", f.blake3.clone())];
            if let Some(e) = &f.element {
                props.push(prop("cas:element", e.clone()));
            }
            components.push(json!({
                "type": "file",
                "bom-ref": format!("file-{}", n + 1),
                "name": f.path,
                "hashes": [
                    { "alg": "SHA-1", "content": f.sha1 },
                    { "alg": "SHA-256", "content": f.sha256 },
                ],
                "properties": props,
            }));
        }
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!(
            "urn:uuid:{}",
            uuid5(&format!("cas:cyclonedx:{}:{}", top.key.to_hex(), files.is_some()))
        ),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(top.created),
            "tools": { "components": [{ "type": "application", "name": "cas", "version": c.cas_version }] },
            "authors": [{ "name": c.project }],
            "component": element_component(c, top, &ids.elements[c.top]),
            "properties": [prop("cas:project", c.project.clone())],
        },
        "components": components,
        "dependencies": deps,
    })
}

//! The SPDX 3.0.1 JSON-LD document of a closure (spec/sbom.md, "SPDX
//! 3.0"): the same packages and edges as [`crate::spdx`], in SPDX 3's
//! model (elements with IRIs, typed relationships, licences as elements).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::files::File;
use crate::ids::{purl, supplier, Ids};
use crate::model::{Closure, Edge, Upstream};
use crate::spdx::is_spdx_location;
use crate::time::rfc3339;

const CONTEXT: &str = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld";
const CREATION: &str = "_:creationinfo";

fn hash(c: &cas_sources::Checksum) -> Value {
    let alg = match c {
        cas_sources::Checksum::Sha256(_) => "sha256",
        cas_sources::Checksum::Blake3(_) => "blake3",
    };
    json!({ "type": "Hash", "algorithm": alg, "hashValue": c.hex() })
}

/// Elements of the graph, built up in order, each with its IRI.
struct Graph {
    base: String,
    objects: Vec<Value>,
    ids: Vec<String>,
    relationships: usize,
}

impl Graph {
    fn iri(&self, local: &str) -> String {
        format!("{}#{}", self.base, local.trim_start_matches("SPDXRef-"))
    }

    fn push(&mut self, kind: &str, id: String, mut fields: Value) -> String {
        let m = fields.as_object_mut().expect("an object");
        m.insert("type".into(), json!(kind));
        m.insert("spdxId".into(), json!(id));
        m.insert("creationInfo".into(), json!(CREATION));
        self.objects.push(fields);
        self.ids.push(id.clone());
        id
    }

    fn relate(&mut self, from: &str, kind: &str, to: &[String], scope: Option<&str>) {
        self.relationships += 1;
        let id = self.iri(&format!("relationship-{}", self.relationships));
        let mut fields = json!({ "from": from, "relationshipType": kind, "to": to });
        let class = match scope {
            Some(s) => {
                fields
                    .as_object_mut()
                    .expect("an object")
                    .insert("scope".into(), json!(s));
                "LifecycleScopedRelationship"
            }
            None => "Relationship",
        };
        self.push(class, id, fields);
    }
}

fn package(
    g: &mut Graph,
    id: String,
    fields: Value,
    purl: Option<String>,
    download: Option<&str>,
) -> String {
    let mut fields = fields;
    let m = fields.as_object_mut().expect("an object");
    if let Some(p) = purl {
        m.insert("software_packageUrl".into(), json!(p));
    }
    if let Some(d) = download.filter(|d| is_spdx_location(d)) {
        m.insert("software_downloadLocation".into(), json!(d));
    }
    g.push("software_Package", id, fields)
}

/// The document: an `SpdxDocument` whose root is a `software_Sbom` whose
/// root is the target's package.
pub fn document(c: &Closure, files: Option<&[File]>) -> Value {
    let ids = Ids::new(c);
    let top = c.top();
    let base = format!(
        "urn:cas:spdx3:{}:{}",
        crate::ids::pct(&c.project),
        top.key.to_hex()
    );
    let mut g = Graph {
        base,
        objects: Vec::new(),
        ids: Vec::new(),
        relationships: 0,
    };
    let project = g.iri("organization");
    let project = g.push("Organization", project, json!({ "name": c.project }));
    let tool = g.iri("tool");
    let tool = g.push(
        "Tool",
        tool,
        json!({ "name": format!("cas {}", c.cas_version) }),
    );
    // suppliers: the project, and each Debian maintainer once
    let mut suppliers: BTreeMap<String, String> = BTreeMap::new();
    let mut supplier_of = |g: &mut Graph, u: Option<&Upstream>| -> String {
        let (name, email) = supplier(c, u);
        if name == c.project && email.is_none() {
            return project.clone();
        }
        let label = match &email {
            Some(e) => format!("{name} <{e}>"),
            None => name.clone(),
        };
        if let Some(id) = suppliers.get(&label) {
            return id.clone();
        }
        let id = g.iri(&format!("supplier-{}", suppliers.len() + 1));
        let mut fields = json!({ "name": name });
        if let Some(e) = email {
            fields.as_object_mut().expect("an object").insert(
                "externalIdentifier".into(),
                json!([{ "type": "ExternalIdentifier", "externalIdentifierType": "email", "identifier": e }]),
            );
        }
        let id = g.push("Organization", id, fields);
        suppliers.insert(label, id.clone());
        id
    };
    let mut licenses: BTreeMap<String, String> = BTreeMap::new();
    let mut license_of = |g: &mut Graph, expression: &str| -> String {
        if let Some(id) = licenses.get(expression) {
            return id.clone();
        }
        let id = g.iri(&format!("license-{}", licenses.len() + 1));
        let id = g.push(
            "simplelicensing_LicenseExpression",
            id,
            json!({ "simplelicensing_licenseExpression": expression }),
        );
        licenses.insert(expression.to_string(), id.clone());
        id
    };
    let mut element_ids = Vec::new();
    for (i, e) in c.elements.iter().enumerate() {
        let id = g.iri(&ids.elements[i]);
        let sup = supplier_of(&mut g, None);
        let mut fields = json!({
            "name": e.name,
            "software_packageVersion": e.version,
            "suppliedBy": sup,
            "builtTime": rfc3339(e.created),
            "comment": format!(
                "cas element of kind {}: key {}, output tree blake3:{}",
                e.kind,
                e.key.to_hex(),
                e.output.digest().to_hex()
            ),
        });
        if let Some(d) = &e.description {
            fields
                .as_object_mut()
                .expect("an object")
                .insert("summary".into(), json!(d));
        }
        let id = package(&mut g, id, fields, None, None);
        if let Some(l) = &e.license {
            let lic = license_of(&mut g, l);
            g.relate(&id, "hasDeclaredLicense", &[lic], None);
        }
        element_ids.push(id);
    }
    let mut upstream_ids = Vec::new();
    for (i, u) in c.upstreams.iter().enumerate() {
        let id = g.iri(&ids.upstreams[i]);
        let sup = supplier_of(&mut g, Some(u));
        let purpose = match (&u.deb, u.kind) {
            (Some(_), _) => "install",
            (None, "crate") => "library",
            _ => "source",
        };
        let mut fields = json!({
            "name": u.name,
            "software_packageVersion": u.version,
            "suppliedBy": sup,
            "software_primaryPurpose": purpose,
            "comment": format!("cas {} source {}", u.kind, u.written),
        });
        let m = fields.as_object_mut().expect("an object");
        if let Some(ch) = &u.checksum {
            m.insert("verifiedUsing".into(), json!([hash(ch)]));
        }
        if let Some(c) = u.license.as_ref().and_then(|l| l.copyright.as_ref()) {
            m.insert("software_copyrightText".into(), json!(c));
        }
        let download = match (u.kind, &u.download) {
            ("git", Some(d)) => Some(format!("git+{d}@{}", u.version)),
            (_, d) => d.clone(),
        };
        let id = package(&mut g, id, fields, purl(u), download.as_deref());
        if let Some(l) = &u.license {
            let lic = license_of(&mut g, &l.expression);
            g.relate(&id, "hasDeclaredLicense", &[lic], None);
        }
        upstream_ids.push(id);
    }
    for (i, e) in c.elements.iter().enumerate() {
        let id = element_ids[i].clone();
        for (edge, d) in &e.edges {
            let d = vec![element_ids[*d].clone()];
            match edge {
                Edge::Contains => g.relate(&id, "contains", &d, None),
                Edge::BuildTool => g.relate(&id, "usesTool", &d, Some("build")),
                Edge::Depends => g.relate(&id, "dependsOn", &d, None),
                Edge::Runtime => g.relate(&id, "dependsOn", &d, Some("runtime")),
            }
        }
        for s in &e.sources {
            let s = upstream_ids[*s].clone();
            if e.imports {
                g.relate(&id, "contains", &[s], None);
            } else {
                g.relate(&s, "generates", std::slice::from_ref(&id), None);
            }
        }
    }
    if let Some(files) = files {
        let mut contained = Vec::new();
        for (n, f) in files.iter().enumerate() {
            let id = g.iri(&format!("file-{}", n + 1));
            let mut fields = json!({
                "name": format!("./{}", f.path),
                "verifiedUsing": [
                    { "type": "Hash", "algorithm": "sha1", "hashValue": f.sha1 },
                    { "type": "Hash", "algorithm": "sha256", "hashValue": f.sha256 },
                ],
            });
            if let Some(e) = &f.element {
                fields
                    .as_object_mut()
                    .expect("an object")
                    .insert("comment".into(), json!(format!("from {e}")));
            }
            contained.push(g.push("software_File", id, fields));
        }
        if !contained.is_empty() {
            let top_id = element_ids[c.top].clone();
            g.relate(&top_id, "contains", &contained, None);
        }
    }
    let members = g.ids.clone();
    let sbom = g.iri("sbom");
    let sbom = g.push(
        "software_Sbom",
        sbom,
        json!({
            "rootElement": [element_ids[c.top]],
            "element": members,
            "software_sbomType": ["build"],
        }),
    );
    let mut all = vec![sbom.clone()];
    all.extend(members);
    let doc = g.iri("document");
    g.push(
        "SpdxDocument",
        doc,
        json!({
            "name": format!("{}/{}", c.project, top.name),
            "rootElement": [sbom],
            "element": all,
            "profileConformance": ["core", "software", "simpleLicensing"],
        }),
    );
    let mut graph = vec![json!({
        "type": "CreationInfo",
        "@id": CREATION,
        "specVersion": "3.0.1",
        "created": rfc3339(top.created),
        "createdBy": [project],
        "createdUsing": [tool],
        "comment": format!(
            "From what cas recorded about the build of {} (key {}); the time is its result's.",
            top.name,
            top.key.to_hex()
        ),
    })];
    graph.extend(g.objects);
    json!({ "@context": CONTEXT, "@graph": graph })
}

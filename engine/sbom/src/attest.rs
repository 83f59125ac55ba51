//! Provenance: an in-toto Statement v1 whose predicate is SLSA Provenance
//! v1, made from the recorded build of an element, in a DSSE envelope
//! signed with an ed25519 key of `cas keygen` (spec/sbom.md,
//! "Provenance"); and its verification.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use cas_store::remote::{PublicKey, SigningKey};
use cas_store::{Store, TreeDigest};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::error::SbomError;
use crate::files::File;
use crate::model::Closure;
use crate::time::rfc3339;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type of a cas step (a URI naming how to read the build
/// definition: spec/sbom.md).
pub const BUILD_TYPE: &str = "urn:cas:build-type:element:v1";
/// The digest name of a cas output tree (blake3 of its Merkle encoding,
/// spec/store.md); a custom name, as in-toto allows.
pub const TREE_DIGEST: &str = "casTree";
/// Outputs with more regular files than this are attested by their tree
/// digest alone.
pub const MAX_FILE_SUBJECTS: usize = 4096;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// DSSE's pre-authentication encoding of a payload.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The key id securesystemslib gives an ed25519 key by default: the
/// SHA-256 of its canonical JSON (`keytype`, `keyval.public`, `scheme`).
pub fn keyid(key: &PublicKey) -> String {
    let canonical = format!(
        "{{\"keytype\":\"ed25519\",\"keyval\":{{\"public\":\"{key}\"}},\"scheme\":\"ed25519\"}}"
    );
    hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
}

fn digest_of(u: &crate::model::Upstream) -> Option<Value> {
    if let Some(c) = &u.checksum {
        return Some(json!({ c.algorithm(): c.hex() }));
    }
    if let Some(c) = &u.commit {
        return Some(json!({ "gitCommit": c }));
    }
    u.tree.map(|t| json!({ TREE_DIGEST: t.digest().to_hex() }))
}

/// The statement of the target's build. `files`: its output's regular
/// files (subjects beside its tree when there are at most
/// [`MAX_FILE_SUBJECTS`]); `builder`: the signing key's public half
/// (the builder's id names it).
pub fn statement(c: &Closure, files: &[File], builder: &PublicKey) -> Value {
    let top = c.top();
    let mut subject = vec![json!({
        "name": top.name,
        "digest": { TREE_DIGEST: top.output.digest().to_hex(), "dirHash": dir_hash(files) },
    })];
    if files.len() <= MAX_FILE_SUBJECTS {
        for f in files {
            subject.push(json!({ "name": f.path, "digest": { "sha256": f.sha256 } }));
        }
    }
    let mut deps = Vec::new();
    for (i, u) in c.upstreams.iter().enumerate() {
        let users: Vec<&str> = c
            .elements
            .iter()
            .filter(|e| e.sources.contains(&i))
            .map(|e| e.name.as_str())
            .collect();
        let mut d = json!({
            "name": u.file_name,
            "annotations": { "kind": u.kind, "source": u.written, "elements": users },
        });
        let m = d.as_object_mut().expect("an object");
        if let Some(uri) = &u.download {
            m.insert("uri".into(), json!(uri));
        }
        if let Some(dg) = digest_of(u) {
            m.insert("digest".into(), dg);
        }
        deps.push(d);
    }
    for &s in &top.staged {
        let e = &c.elements[s];
        deps.push(json!({
            "name": e.name,
            "digest": { TREE_DIGEST: e.output.digest().to_hex() },
            "annotations": { "kind": e.kind, "key": e.key.to_hex(), "staged": true },
        }));
    }
    let mut external = json!({
        "element": top.name,
        "project": c.project,
        "variables": top.variables,
    });
    if let Some(r) = &c.revision {
        external
            .as_object_mut()
            .expect("an object")
            .insert("revision".into(), json!(r));
    }
    let started = top.created - (top.duration_ms / 1000) as i64;
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": { "key": top.key.to_hex(), "kind": top.kind, "cas": c.cas_version },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": format!("urn:cas:builder:ed25519:{builder}"),
                    "version": { "cas": c.cas_version },
                },
                "metadata": {
                    "invocationId": top.key.to_hex(),
                    "startedOn": rfc3339(started),
                    "finishedOn": rfc3339(top.created),
                },
            },
        },
    })
}

/// in-toto's `dirHash` of a tree: the SHA-256 of `sha256sum`'s lines
/// (`HEX  PATH`) for its regular files in byte order of their paths, as
/// `find . -type f | cut -c3- | LC_ALL=C sort | xargs -r sha256sum |
/// sha256sum` prints it in a checkout.
pub fn dir_hash(files: &[File]) -> String {
    let mut sorted: Vec<&File> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut h = sha2::Sha256::new();
    for f in sorted {
        h.update(format!("{}  {}\n", f.sha256, f.path).as_bytes());
    }
    hex::encode(h.finalize())
}

/// The DSSE envelope of `statement`, signed by `key`.
pub fn envelope(statement: &Value, key: &SigningKey) -> Value {
    let payload = serde_json::to_vec(statement).expect("a JSON value always serialises");
    let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
    json!({
        "payloadType": PAYLOAD_TYPE,
        "payload": b64().encode(&payload),
        "signatures": [{ "keyid": keyid(&key.public()), "sig": b64().encode(sig) }],
    })
}

/// The statement of an envelope one of `trusted` signed; an error when
/// the envelope is malformed, no trusted key signed it, or its payload is
/// not an in-toto statement.
pub fn open(file: &str, bytes: &[u8], trusted: &[PublicKey]) -> Result<Value, SbomError> {
    let bad = |reason: &str| SbomError::Envelope {
        file: file.to_string(),
        reason: reason.to_string(),
    };
    let env: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    let ptype = env["payloadType"]
        .as_str()
        .ok_or_else(|| bad("no payloadType"))?;
    let payload = env["payload"]
        .as_str()
        .and_then(|p| b64().decode(p).ok())
        .ok_or_else(|| bad("no base64 payload"))?;
    let sigs = env["signatures"]
        .as_array()
        .ok_or_else(|| bad("no signatures"))?;
    let message = pae(ptype, &payload);
    let signed = sigs.iter().any(|s| {
        let Some(sig) = s["sig"].as_str().and_then(|x| b64().decode(x).ok()) else {
            return false;
        };
        trusted.iter().any(|k| k.verify(&message, &sig))
    });
    if !signed {
        return Err(SbomError::Verification {
            file: file.to_string(),
            reason: "no signature by a trusted key verifies it".into(),
        });
    }
    if ptype != PAYLOAD_TYPE {
        return Err(bad(&format!("payloadType is {ptype}, not {PAYLOAD_TYPE}")));
    }
    let statement: Value = serde_json::from_slice(&payload).map_err(|e| bad(&e.to_string()))?;
    if statement["_type"] != STATEMENT_TYPE {
        return Err(bad("the payload is not an in-toto Statement v1"));
    }
    Ok(statement)
}

/// The subjects of a statement: name → digests.
pub fn subjects(statement: &Value) -> Vec<(String, BTreeMap<String, String>)> {
    statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let digests = s["digest"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            (s["name"].as_str().unwrap_or_default().to_string(), digests)
        })
        .collect()
}

/// Each subject that `tree` (an output in `store`) does not hold as
/// attested: its tree digest, and each file's SHA-256.
pub fn mismatches_in_store(
    store: &Store,
    tree: &TreeDigest,
    statement: &Value,
) -> Result<Vec<String>, SbomError> {
    let mut files: BTreeMap<String, cas_store::BlobDigest> = BTreeMap::new();
    for (p, e) in store.walk(tree)? {
        if let cas_store::EntryKind::File { digest, .. } = e.kind {
            files.insert(String::from_utf8_lossy(&p).into_owned(), digest);
        }
    }
    let mut out = Vec::new();
    for (name, digests) in subjects(statement) {
        if let Some(t) = digests.get(TREE_DIGEST) {
            if *t != tree.digest().to_hex() {
                out.push(format!("{name}: the output tree is {tree}, not {t}"));
            }
        }
        if let Some(s) = digests.get("sha256") {
            match files.get(&name) {
                None => out.push(format!("{name}: not in the output")),
                Some(b) => {
                    let path = store.blob_path(b);
                    let got = sha256_file(&path)?;
                    if got != *s {
                        out.push(format!("{name}: sha256 {got}, attested {s}"));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Each subject that `dir` (a checkout) does not hold as attested: each
/// file's SHA-256, and the tree's digest (the checkout ingested into
/// `store`, the way a local source is).
pub fn mismatches_in_dir(
    store: &Store,
    dir: &Path,
    statement: &Value,
) -> Result<Vec<String>, SbomError> {
    let mut out = Vec::new();
    let mut checked = 0;
    for (name, digests) in subjects(statement) {
        if let Some(t) = digests.get(TREE_DIGEST) {
            checked += 1;
            let tree = store.ingest(dir, cas_store::IngestMode::Copy)?.tree;
            if tree.digest().to_hex() != *t {
                out.push(format!(
                    "{name}: {} holds the tree {tree}, not {t}",
                    dir.display()
                ));
            }
        }
        let Some(s) = digests.get("sha256") else {
            continue;
        };
        checked += 1;
        let path = dir.join(&name);
        if !path.is_file() {
            out.push(format!("{name}: not in {}", dir.display()));
            continue;
        }
        let got = sha256_file(&path)?;
        if got != *s {
            out.push(format!("{name}: sha256 {got}, attested {s}"));
        }
    }
    if checked == 0 {
        out.push("the attestation has no subject a directory can hold".to_string());
    }
    Ok(out)
}

fn sha256_file(path: &Path) -> Result<String, SbomError> {
    let mut f = std::fs::File::open(path).map_err(SbomError::io(path))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(SbomError::io(path))?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::{keyid, pae};
    use cas_store::remote::PublicKey;

    #[test]
    fn pae_and_keyid_are_dsse_and_securesystemslib_s() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
        // sha256 of {"keytype":"ed25519","keyval":{"public":"3b3b…"},"scheme":"ed25519"}
        let k = PublicKey([0x3b; 32]);
        assert_eq!(
            keyid(&k),
            "322d4f542284f8ead2d1a6c6b9a742c7c5a4d8b216aea827a91eb35a6b1e8331"
        );
    }
}

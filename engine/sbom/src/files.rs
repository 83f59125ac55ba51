//! The regular files of a built output with their SHA-1 and SHA-256 (the
//! digests SPDX and CycloneDX name files by; the store names them by
//! blake3), and the element that put each one there when the output is a
//! compose whose provenance is recorded (the note `compose`).

use cas_store::{EntryKind, Store};
use sha1::Digest as _;

use crate::error::SbomError;
use crate::model::Closure;

/// One regular file of the output.
#[derive(Debug, Clone)]
pub struct File {
    /// Relative to the output's root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub blake3: String,
    pub sha1: String,
    pub sha256: String,
    /// The element whose output it came from (a compose's part).
    pub element: Option<String>,
}

/// Every regular file of the target's output, in the tree's walk order.
pub fn files(store: &Store, c: &Closure) -> Result<Vec<File>, SbomError> {
    let top = c.top();
    let provenance = store
        .note_get(&top.key, cas_builder::provenance::COMPOSE_NOTE)?
        .and_then(|b| cas_builder::provenance::Provenance::decode(&b));
    let mut out = Vec::new();
    for (path, entry) in store.walk(&top.output)? {
        let EntryKind::File { digest, size } = entry.kind else {
            continue;
        };
        let path = String::from_utf8_lossy(&path).into_owned();
        let blob = store.blob_path(&digest);
        let mut f = std::fs::File::open(&blob).map_err(SbomError::io(&blob))?;
        let (mut s1, mut s256) = (sha1::Sha1::new(), sha2::Sha256::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(SbomError::io(&blob))?;
            if n == 0 {
                break;
            }
            s1.update(&buf[..n]);
            s256.update(&buf[..n]);
        }
        let element = provenance.as_ref().and_then(|p| match p.owner(&path) {
            Some(Some(part)) => Some(part.name.clone()),
            Some(None) => Some(top.name.clone()),
            None => None,
        });
        out.push(File {
            path,
            size,
            blake3: digest.to_string(),
            sha1: hex::encode(s1.finalize()),
            sha256: hex::encode(s256.finalize()),
            element,
        });
    }
    Ok(out)
}

/// SPDX's package verification code: SHA-1 of the files' SHA-1s, sorted
/// and concatenated.
pub fn verification_code(files: &[File]) -> String {
    let mut sums: Vec<&str> = files.iter().map(|f| f.sha1.as_str()).collect();
    sums.sort_unstable();
    hex::encode(sha1::Sha1::digest(sums.concat().as_bytes()))
}

//! An Action's input root, from the server's CAS into the worker's store:
//! each Directory becomes a cas tree and each file a store object, so a
//! file this worker has seen before (the SHA-256 it hashed itself, in the
//! digest map) is never downloaded again, and a Directory seen before is
//! not read again (memo per process). Everything read is checked against
//! its SHA-256 as it streams; names are checked as cas checks its own.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use cas_reapi::cache::Sha256Stream;
use cas_reapi::digests::Sha;
use cas_reapi::ReapiRemote;
use cas_store::{BlobDigest, Digest, Entry, IngestMode, Store, Tree, TreeDigest};
use prost::Message;

use crate::error::{Result, WorkerError};

/// The largest Directory message read.
const MAX_DIRECTORY: u64 = 64 << 20;
/// Deeper input roots are refused.
const MAX_DEPTH: usize = 256;

/// Input roots already turned into trees, by Directory digest.
#[derive(Default)]
pub struct Memo {
    trees: HashMap<Sha, TreeDigest>,
    /// The read-only layers input roots are shown through.
    pub layers: crate::lower::LayerCache,
}

pub(crate) struct Fetch<'a> {
    pub store: &'a Store,
    pub remote: &'a ReapiRemote,
    pub memo: &'a mut Memo,
    /// Directory messages read ahead (verified), by digest.
    pub read: HashMap<Sha, Vec<u8>>,
    /// Files downloaded (not found in the store).
    pub downloaded: usize,
    pub downloaded_bytes: u64,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(WorkerError::Invalid(format!(
            "the input root has an entry named {name:?}"
        )));
    }
    Ok(())
}

fn sha_of(d: Option<&re::Digest>, what: &str) -> Result<Sha> {
    d.and_then(Sha::from_proto)
        .ok_or_else(|| WorkerError::Invalid(format!("{what} has no SHA-256 digest")))
}

fn mode_of(props: Option<&re::NodeProperties>, default: u32) -> u32 {
    props
        .and_then(|p| p.unix_mode.as_ref())
        .map_or(default, |m| m.value & 0o7777)
}

impl Fetch<'_> {
    /// The tree of the Directory `sha`, fetched as needed: the Directories
    /// not seen before are read level by level, each level in batches.
    pub(crate) fn tree(&mut self, sha: Sha) -> Result<TreeDigest> {
        let mut level = vec![sha];
        let mut depth = 0;
        while !level.is_empty() && depth <= MAX_DEPTH {
            let want: Vec<Sha> = level
                .iter()
                .filter(|s| !self.read.contains_key(s))
                .filter(|s| {
                    self.memo
                        .trees
                        .get(s)
                        .is_none_or(|t| self.store.get_tree(t).is_err())
                })
                .copied()
                .collect();
            let mut next = Vec::new();
            for (got, bytes) in self.remote.client().read_batch(&want)? {
                if Sha::of_bytes(&bytes) != got {
                    continue; // read again, one by one, and reported there
                }
                if let Ok(dir) = re::Directory::decode(bytes.as_slice()) {
                    next.extend(
                        dir.directories
                            .iter()
                            .filter_map(|d| d.digest.as_ref().and_then(Sha::from_proto)),
                    );
                }
                self.read.insert(got, bytes);
            }
            next.sort_by_key(Sha::hex);
            next.dedup();
            level = next;
            depth += 1;
        }
        self.tree_at(sha, 0)
    }

    fn tree_at(&mut self, sha: Sha, depth: usize) -> Result<TreeDigest> {
        if depth > MAX_DEPTH {
            return Err(WorkerError::Invalid(format!(
                "the input root is deeper than {MAX_DEPTH} directories"
            )));
        }
        if let Some(t) = self.memo.trees.get(&sha) {
            if self.store.get_tree(t).is_ok() {
                return Ok(*t);
            }
        }
        let bytes = match self.read.remove(&sha) {
            Some(b) => b,
            None => self.remote.read_verified(&sha, MAX_DIRECTORY)?,
        };
        let dir = re::Directory::decode(bytes.as_slice())
            .map_err(|e| WorkerError::Invalid(format!("Directory {}: {e}", sha.hex())))?;
        let mut entries = Vec::new();
        for f in &dir.files {
            check_name(&f.name)?;
            let fsha = sha_of(f.digest.as_ref(), &f.name)?;
            let object = self.object(&fsha, &f.name)?;
            let default = if f.is_executable { 0o755 } else { 0o644 };
            entries.push(Entry::file(
                f.name.as_bytes(),
                mode_of(f.node_properties.as_ref(), default),
                BlobDigest(object),
                fsha.size,
            ));
        }
        for s in &dir.symlinks {
            check_name(&s.name)?;
            entries.push(Entry::symlink(s.name.as_bytes(), s.target.as_bytes()));
        }
        for d in &dir.directories {
            check_name(&d.name)?;
            let child = self.tree_at(sha_of(d.digest.as_ref(), &d.name)?, depth + 1)?;
            entries.push(Entry::dir(d.name.as_bytes(), 0o755, child));
        }
        let tree = Tree::new(entries)
            .map_err(|e| WorkerError::Invalid(format!("Directory {}: {e}", sha.hex())))?;
        let t = self.store.put_tree(&tree)?;
        self.memo.trees.insert(sha, t);
        Ok(t)
    }

    /// The store object of the blob `sha`: one this worker hashed before,
    /// else downloaded, verified and stored.
    fn object(&mut self, sha: &Sha, name: &str) -> Result<Digest> {
        let digests = self.remote.digests();
        if let Some(d) = digests.known_object(sha) {
            if self.store.object_path(&d).exists() {
                return Ok(d);
            }
        }
        let tmp_dir = self.store.tmp_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix("worker-")
            .tempfile_in(&tmp_dir)
            .map_err(WorkerError::io("cannot create a file in", &tmp_dir))?;
        let path = tmp.path().to_path_buf();
        let mut h = Sha256Stream::new();
        let mut total = 0u64;
        let mut failed = None;
        let deadline = Instant::now() + Duration::from_secs(600);
        let found = self
            .remote
            .client()
            .read_blob(sha, deadline, &mut |chunk| {
                total += chunk.len() as u64;
                if total > sha.size {
                    return Err(cas_store::RemoteError::Malformed {
                        url: self.remote.url_str().to_string(),
                        digest: format!("sha256 {}", sha.hex()),
                        reason: format!("{name}: more bytes than its digest says"),
                    });
                }
                h.update(chunk);
                if let Err(e) = tmp.write_all(chunk) {
                    failed = Some(e);
                }
                Ok(())
            })?;
        if let Some(e) = failed {
            return Err(WorkerError::io("cannot write", &path)(e));
        }
        if !found {
            return Err(cas_store::RemoteError::Missing {
                url: self.remote.url_str().to_string(),
                digest: format!("sha256 {} ({name})", sha.hex()),
            }
            .into());
        }
        let got = Sha {
            hash: h.finish(),
            size: total,
        };
        if got != *sha {
            return Err(cas_store::RemoteError::Corrupt {
                url: self.remote.url_str().to_string(),
                digest: format!("sha256 {} ({name})", sha.hex()),
                actual: got.hex(),
            }
            .into());
        }
        let (blob, _) = self.store.put_file(&path, IngestMode::Move)?;
        digests.know(blob.digest(), *sha);
        self.downloaded += 1;
        self.downloaded_bytes += total;
        Ok(*blob.digest())
    }
}

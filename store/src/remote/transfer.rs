//! Moving objects and results between a store and a remote: in parallel,
//! verifying every object against its digest on arrival (and before upload),
//! and uploading an action result only after every object it references.

use std::collections::HashSet;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::result::{
    encode_result, sign_result, verify_result_signed, Rejection, SigningKey, Trust,
};
use super::{Remote, RemoteError};
use crate::action_cache::ActionResult;
use crate::blob::{create_tmp_file, hash_file, TmpGuard};
use crate::digest::{ActionKey, Digest, TreeDigest};
use crate::store::Store;
use crate::tree::{EntryKind, Tree};

/// Parallel transfers per operation.
pub const WORKERS: usize = 8;

/// Transfer counters, shared by every transfer of a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub downloaded_objects: AtomicU64,
    pub downloaded_bytes: AtomicU64,
    pub uploaded_objects: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    pub results_fetched: AtomicU64,
    pub results_pushed: AtomicU64,
}

/// A snapshot of [`Counters`] (`cas build --json`: `"transfers"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransferStats {
    pub downloaded_objects: u64,
    pub downloaded_bytes: u64,
    pub uploaded_objects: u64,
    pub uploaded_bytes: u64,
    pub results_fetched: u64,
    pub results_pushed: u64,
}

impl Counters {
    pub fn snapshot(&self) -> TransferStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransferStats {
            downloaded_objects: g(&self.downloaded_objects),
            downloaded_bytes: g(&self.downloaded_bytes),
            uploaded_objects: g(&self.uploaded_objects),
            uploaded_bytes: g(&self.uploaded_bytes),
            results_fetched: g(&self.results_fetched),
            results_pushed: g(&self.results_pushed),
        }
    }
}

/// Run `f` on every item with up to `workers` threads; the first error stops
/// the others from starting new items and is returned.
fn parallel<T: Sync>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<(), RemoteError> + Sync,
) -> Result<(), RemoteError> {
    if items.is_empty() {
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first: Mutex<Option<RemoteError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(item) {
                    failed.store(true, Ordering::Relaxed);
                    let mut slot = first
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if slot.is_none() {
                        *slot = Some(e);
                    }
                    break;
                }
            });
        }
    });
    match first
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn store_err(remote: &dyn Remote) -> impl Fn(crate::error::StoreError) -> RemoteError + '_ {
    move |source| RemoteError::Store {
        url: remote.url().to_string(),
        source: Box::new(source),
    }
}

/// Download one object unless it is local; verify its digest (and, for a
/// tree, its encoding) before it enters the store. `max`: the most bytes it
/// may have ([`super::MAX_TREE_BYTES`] for a tree, [`super::MAX_LOG_BYTES`]
/// for a log or manifest), a ceiling, not its size (blobs of a tree are
/// fetched with their exact size by [`fetch_tree`]).
pub fn fetch_object(
    store: &Store,
    remote: &dyn Remote,
    d: &Digest,
    is_tree: bool,
    max: u64,
    counters: &Counters,
) -> Result<(), RemoteError> {
    let limit = super::Limit::new(max, remote.object_timeout()).interrupted_by(remote.interrupt());
    fetch_within(store, remote, d, is_tree, &limit, counters)
}

/// [`fetch_object`] within `limit`.
fn fetch_within(
    store: &Store,
    remote: &dyn Remote,
    d: &Digest,
    is_tree: bool,
    limit: &super::Limit,
    counters: &Counters,
) -> Result<(), RemoteError> {
    if store.has_object(d) {
        return Ok(());
    }
    let url = || remote.url().to_string();
    let mut guard = TmpGuard::new(store.tmp_path("pull"));
    let mut f: File = create_tmp_file(guard.path()).map_err(store_err(remote))?;
    if !remote.get_object(d, &mut f, limit)? {
        return Err(RemoteError::Missing {
            url: url(),
            digest: d.to_hex(),
        });
    }
    let io = |op, source| RemoteError::Io {
        url: url(),
        op,
        path: guard.path().to_path_buf(),
        source,
    };
    let (actual, size) = hash_file(&mut f).map_err(|e| io("read", e))?;
    if actual != *d {
        return Err(RemoteError::Corrupt {
            url: url(),
            digest: d.to_hex(),
            actual: actual.to_hex(),
        });
    }
    drop(f);
    if is_tree {
        let bytes = std::fs::read(guard.path()).map_err(|e| io("read", e))?;
        Tree::decode(&bytes).map_err(|e| RemoteError::Malformed {
            url: url(),
            digest: d.to_hex(),
            reason: e.to_string(),
        })?;
    }
    store.commit_tmp(&mut guard, d).map_err(store_err(remote))?;
    counters.downloaded_objects.fetch_add(1, Ordering::Relaxed);
    counters.downloaded_bytes.fetch_add(size, Ordering::Relaxed);
    Ok(())
}

/// Make `tree` and everything below it local: missing trees level by level,
/// then every missing blob, all in parallel. Objects already in the store
/// are not downloaded again.
pub fn fetch_tree(
    store: &Store,
    remote: &dyn Remote,
    tree: &TreeDigest,
    counters: &Counters,
) -> Result<(), RemoteError> {
    let _lock = store.lock_shared().map_err(store_err(remote))?;
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut level = vec![tree.0];
    seen.insert(tree.0);
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    let mut seen_blobs: HashSet<Digest> = HashSet::new();
    while !level.is_empty() {
        parallel(&level, WORKERS, |d| {
            fetch_object(store, remote, d, true, super::MAX_TREE_BYTES, counters)
        })?;
        let mut next = Vec::new();
        for d in &level {
            let t = store.get_tree(&TreeDigest(*d)).map_err(store_err(remote))?;
            for e in t.entries {
                match e.kind {
                    EntryKind::Dir { digest } if seen.insert(digest.0) => next.push(digest.0),
                    EntryKind::File { digest, size }
                        if !store.has_object(&digest.0) && seen_blobs.insert(digest.0) =>
                    {
                        blobs.push((digest.0, size));
                    }
                    _ => {}
                }
            }
        }
        level = next;
    }
    // A blob's size is known from its tree entry: exactly that many bytes.
    parallel(&blobs, WORKERS, |(d, size)| {
        let limit = super::Limit::new(*size, remote.object_timeout())
            .exact(true)
            .interrupted_by(remote.interrupt());
        fetch_within(store, remote, d, false, &limit, counters)
    })
}

/// Everything an action result references: its output tree's closure, its
/// log and its manifest.
pub fn fetch_result_objects(
    store: &Store,
    remote: &dyn Remote,
    r: &ActionResult,
    counters: &Counters,
) -> Result<(), RemoteError> {
    fetch_tree(store, remote, &r.output, counters)?;
    let small = [r.log.0, r.manifest.0];
    parallel(&small, 2, |d| {
        fetch_object(store, remote, d, false, super::MAX_LOG_BYTES, counters)
    })
}

/// What a remote says about a key.
#[derive(Debug, Clone)]
pub enum Lookup {
    Miss,
    /// Signed by a trusted key.
    Hit(ActionResult),
    /// Not signed by a trusted key, used because the remote is marked
    /// trust-unsigned (callers say so).
    Unsigned(ActionResult),
    /// There is a result, but it is not used (bad signature, untrusted, ...).
    Rejected(Rejection),
}

/// Ask a remote for the result of `key` and check it against `trust`.
pub fn lookup_result(
    remote: &dyn Remote,
    key: &ActionKey,
    trust: &Trust,
    counters: &Counters,
) -> Result<Lookup, RemoteError> {
    let Some(bytes) = remote.get_action(key)? else {
        return Ok(Lookup::Miss);
    };
    counters.results_fetched.fetch_add(1, Ordering::Relaxed);
    Ok(match verify_result_signed(&bytes, key, trust) {
        Ok((r, true)) => Lookup::Hit(r),
        Ok((r, false)) => Lookup::Unsigned(r),
        Err(rej) => Lookup::Rejected(rej),
    })
}

/// How a push ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The remote already had a result for this key: nothing uploaded.
    AlreadyThere,
    /// Objects (how many were missing) then the result were uploaded.
    Uploaded { objects: usize },
}

/// Upload a result: every missing object first (blobs, then trees; each
/// checked with `has_object` first and verified locally before upload), the
/// action result last, so nobody can see a result whose objects are missing.
pub fn push_result(
    store: &Store,
    remote: &dyn Remote,
    key: &ActionKey,
    r: &ActionResult,
    signer: Option<&SigningKey>,
    counters: &Counters,
) -> Result<Pushed, RemoteError> {
    if remote.has_action(key)? {
        return Ok(Pushed::AlreadyThere);
    }
    let _lock = store.lock_shared().map_err(store_err(remote))?;
    // Trees breadth first; blobs deduplicated.
    let mut trees = vec![r.output.0];
    let mut seen: HashSet<Digest> = HashSet::from([r.output.0]);
    let mut blobs: Vec<Digest> = Vec::new();
    let mut i = 0;
    while i < trees.len() {
        let t = store
            .get_tree(&TreeDigest(trees[i]))
            .map_err(store_err(remote))?;
        for e in t.entries {
            match e.kind {
                EntryKind::Dir { digest } if seen.insert(digest.0) => trees.push(digest.0),
                EntryKind::File { digest, .. } if seen.insert(digest.0) => blobs.push(digest.0),
                _ => {}
            }
        }
        i += 1;
    }
    for d in [r.log.0, r.manifest.0] {
        if seen.insert(d) {
            blobs.push(d);
        }
    }
    let missing = |list: &[Digest]| -> Result<Vec<Digest>, RemoteError> {
        if let Some(batched) = remote.missing_objects(list) {
            return batched;
        }
        let out = Mutex::new(Vec::new());
        parallel(list, WORKERS, |d| {
            if !remote.has_object(d)? {
                out.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(*d);
            }
            Ok(())
        })?;
        Ok(out
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    };
    let upload = |d: &Digest| -> Result<(), RemoteError> {
        let path = store.object_path(d);
        let mut f = File::open(&path).map_err(|source| RemoteError::Io {
            url: remote.url().into(),
            op: "open",
            path: path.clone(),
            source,
        })?;
        let (actual, size) = hash_file(&mut f).map_err(|source| RemoteError::Io {
            url: remote.url().into(),
            op: "read",
            path: path.clone(),
            source,
        })?;
        if actual != *d {
            return Err(RemoteError::Store {
                url: remote.url().into(),
                source: Box::new(crate::error::StoreError::Corrupt {
                    digest: d.to_hex(),
                    actual: actual.to_hex(),
                    path,
                }),
            });
        }
        remote.put_object(d, &path, size)?;
        counters.uploaded_objects.fetch_add(1, Ordering::Relaxed);
        counters.uploaded_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    };
    let missing_blobs = missing(&blobs)?;
    parallel(&missing_blobs, WORKERS, upload)?;
    // Deepest trees first: a tree is never visible before its subtrees.
    let missing_trees = missing(&trees)?;
    let order: Vec<Digest> = trees
        .iter()
        .rev()
        .filter(|d| missing_trees.contains(d))
        .copied()
        .collect();
    for d in &order {
        upload(d)?;
    }
    let bytes = match signer {
        Some(s) => sign_result(key, r, s),
        None => encode_result(key, r),
    };
    let mut objects = trees.clone();
    objects.extend_from_slice(&blobs);
    remote.put_action_objects(key, &bytes, &objects)?;
    counters.results_pushed.fetch_add(1, Ordering::Relaxed);
    Ok(Pushed::Uploaded {
        objects: missing_blobs.len() + order.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::BlobDigest;
    use crate::remote::dir::DirRemote;
    use crate::IngestMode;

    fn project(dir: &std::path::Path) {
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/one"), b"one\n").unwrap();
        std::fs::write(dir.join("a/two"), vec![7u8; 3 << 20]).unwrap();
        std::fs::write(dir.join("three"), b"one\n").unwrap();
        std::os::unix::fs::symlink("three", dir.join("link")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
    }

    #[test]
    fn push_then_fetch_through_a_directory_remote_verifies_everything() {
        let t = tempfile::tempdir().unwrap();
        let a = Store::open(&t.path().join("a")).unwrap();
        let b = Store::open(&t.path().join("b")).unwrap();
        project(&t.path().join("in"));
        let tree = a
            .ingest(&t.path().join("in"), IngestMode::Copy)
            .unwrap()
            .tree;
        let log = a.put_bytes(b"log").unwrap();
        let manifest = a.put_bytes(b"manifest").unwrap();
        let key = ActionKey::from_digest(manifest.0);
        let r = ActionResult {
            output: tree,
            log,
            duration_ms: 5,
            created: 7,
            manifest,
        };
        a.action_put(&key, &r).unwrap();
        let remote = DirRemote::new(&t.path().join("remote")).unwrap();
        let signer = SigningKey::from_seed([3; 32]);
        let c = Counters::default();
        assert!(matches!(
            push_result(&a, &remote, &key, &r, Some(&signer), &c).unwrap(),
            Pushed::Uploaded { .. }
        ));
        assert_eq!(
            push_result(&a, &remote, &key, &r, Some(&signer), &c).unwrap(),
            Pushed::AlreadyThere
        );
        // Unsigned is refused without trust; the signed result is accepted.
        let none = Trust::default();
        assert!(matches!(
            lookup_result(&remote, &key, &none, &c).unwrap(),
            Lookup::Rejected(Rejection::Untrusted(_))
        ));
        let trust = Trust {
            keys: vec![signer.public()],
            unsigned: false,
        };
        let Lookup::Hit(got) = lookup_result(&remote, &key, &trust, &c).unwrap() else {
            panic!("no hit")
        };
        assert_eq!(got, r);
        let c2 = Counters::default();
        fetch_result_objects(&b, &remote, &got, &c2).unwrap();
        b.action_put(&key, &got).unwrap();
        assert!(b.verify(false).unwrap().is_consistent());
        let n = c2.snapshot().downloaded_objects;
        // Fetching again downloads nothing.
        fetch_result_objects(&b, &remote, &got, &c2).unwrap();
        assert_eq!(c2.snapshot().downloaded_objects, n);
    }

    #[test]
    fn a_corrupt_object_on_the_remote_is_refused_and_never_enters_the_store() {
        let t = tempfile::tempdir().unwrap();
        let a = Store::open(&t.path().join("a")).unwrap();
        let b = Store::open(&t.path().join("b")).unwrap();
        project(&t.path().join("in"));
        let tree = a
            .ingest(&t.path().join("in"), IngestMode::Copy)
            .unwrap()
            .tree;
        let remote = DirRemote::new(&t.path().join("remote")).unwrap();
        let manifest = a.put_bytes(b"m").unwrap();
        let r = ActionResult {
            output: tree,
            log: manifest,
            duration_ms: 0,
            created: 0,
            manifest,
        };
        push_result(
            &a,
            &remote,
            &ActionKey::from_digest(manifest.0),
            &r,
            None,
            &Counters::default(),
        )
        .unwrap();
        let one = BlobDigest(Digest::of_bytes(b"one\n"));
        let p = t.path().join("remote/cas").join(one.to_hex());
        std::fs::write(&p, b"evl\n").unwrap();
        let err = fetch_tree(&b, &remote, &tree, &Counters::default()).unwrap_err();
        assert!(
            matches!(&err, RemoteError::Corrupt { digest, .. } if *digest == one.to_hex()),
            "{err}"
        );
        assert!(err.to_string().contains(&one.to_hex()));
        assert!(!b.has_blob(&one));
        assert!(b.verify(false).unwrap().is_consistent());
        // Longer than its tree entry says: cut off at the stated size.
        std::fs::write(&p, b"one\nand more\n").unwrap();
        let err = fetch_tree(&b, &remote, &tree, &Counters::default()).unwrap_err();
        assert!(
            matches!(&err, RemoteError::TooLarge { digest, limit: 4, .. } if *digest == one.to_hex()),
            "{err}"
        );
        assert!(!b.has_blob(&one));
    }
}

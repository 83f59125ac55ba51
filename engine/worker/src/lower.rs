//! Input roots without copies. An Action may write anywhere in its input
//! root, so the root must be private; copying it costs a new inode per file,
//! directory and symlink (a toolchain's tens of thousands) for every Action.
//! Instead the root is an overlay: one read-only layer per top-level
//! directory of the root, cached across Actions (a sysroot's `/usr` is laid
//! out once and shared by every Action that has the same one), and a fresh
//! writable layer on top that receives what the Action changes.
//!
//! The layers show the tree exactly: directories and files with their
//! recorded modes, so a file the Action may write is writable (overlayfs
//! copies it up first; the layer itself is never written). Their files are
//! hardlinks to one private copy per (blob, mode) under `worker/files`,
//! never to the store's read-only objects. `worker/layers` and
//! `worker/files` are a cache of this process: emptied when a worker starts,
//! trimmed to the most recently used layers, safe to delete when no worker
//! runs (spec/store.md).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cas_store::tree::{Entry, EntryKind};
use cas_store::{BlobDigest, Store, TreeDigest};

use crate::error::{Result, WorkerError};

/// The modification time of every file and directory of an input root:
/// REAPI carries none (a cas step's sources lose their archive's times on
/// the way), so all are shown with one time, and `make` finds every target
/// up to date with its inputs rather than some older in random order.
/// BuildStream stages with the same instant, 2011-11-11 11:11:11 UTC.
pub const INPUT_MTIME: i64 = 1_321_009_871;

/// Set `path`'s times to [`INPUT_MTIME`] (a symlink's own, not its target's).
pub(crate) fn set_input_time(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| WorkerError::Invalid(format!("{} contains NUL", path.display())))?;
    let t = libc::timespec {
        tv_sec: INPUT_MTIME,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: a NUL-terminated path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(WorkerError::io("cannot set the times of", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// [`set_input_time`] on everything below `dir` and `dir` itself (a copied
/// root).
pub(crate) fn set_input_times(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io("cannot read", dir))? {
        let entry = entry.map_err(io("cannot read", dir))?;
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            set_input_times(&path)?;
        } else {
            set_input_time(&path)?;
        }
    }
    set_input_time(dir)
}

/// Layers kept between Actions (the least recently used go first).
const KEEP_LAYERS: usize = 64;
/// A root with more top-level directories than this is copied instead
/// (the layer names must fit in one mount's options).
const MAX_TOP_DIRS: usize = 48;

/// What one Action's layered root is made of.
pub(crate) struct LayeredRoot {
    /// The read-only layers, topmost first (their names are disjoint).
    pub layers: Vec<PathBuf>,
    /// The writable layer (top-level files and symlinks are placed there).
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// The layers this worker has laid out, and when each was last used.
#[derive(Default)]
pub struct LayerCache {
    used: HashMap<String, u64>,
    clock: u64,
    /// Set up in this process (earlier processes' leftovers removed).
    ready: Option<bool>,
    /// The exclusive lock on `worker/layers.lock`, held while this lives.
    lock: Option<fs::File>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WorkerError {
    WorkerError::io(what, path)
}

impl LayerCache {
    /// Whether input roots are layered here: overlays work (probed once),
    /// `CAS_WORKER_OVERLAY` is not `0`, and no other worker uses this store's
    /// cache. Otherwise roots are copied.
    fn usable(&mut self, store: &Store) -> bool {
        if let Some(ok) = self.ready {
            return ok;
        }
        let ok = !matches!(
            std::env::var("CAS_WORKER_OVERLAY").as_deref(),
            Ok("0" | "off" | "false" | "no")
        ) && cas_sandbox::overlay_supported(&store.tmp_dir())
            && self.claim(store).is_ok();
        self.ready = Some(ok);
        ok
    }

    /// Take the cache for this process (an exclusive lock held while it
    /// lives) and empty what an earlier process left.
    fn claim(&mut self, store: &Store) -> Result<()> {
        use std::os::fd::AsRawFd;
        let base = store.layout().worker();
        fs::create_dir_all(&base).map_err(io("cannot create", &base))?;
        let lock_path = base.join("layers.lock");
        let lock = fs::File::create(&lock_path).map_err(io("cannot create", &lock_path))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(WorkerError::io("cannot lock", &lock_path)(
                std::io::Error::last_os_error(),
            ));
        }
        for d in [layers_dir(store), files_dir(store)] {
            cas_store::remove_tree(&d)?;
            fs::create_dir_all(&d).map_err(io("cannot create", &d))?;
        }
        self.lock = Some(lock);
        Ok(())
    }

    /// Lay out `tree` as layers plus an empty writable layer in `scratch`,
    /// or `None` where roots are copied instead.
    pub(crate) fn prepare(
        &mut self,
        store: &Store,
        tree: &TreeDigest,
        scratch: &Path,
    ) -> Result<Option<LayeredRoot>> {
        let root = store.get_tree(tree)?;
        let dirs = root
            .entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Dir { .. }))
            .count();
        if dirs == 0 || dirs > MAX_TOP_DIRS || !self.usable(store) {
            return Ok(None);
        }
        let upper = scratch.join("upper");
        let work = scratch.join("work");
        for d in [&upper, &work] {
            fs::create_dir(d).map_err(io("cannot create", d))?;
        }
        self.clock += 1;
        let mut layers = Vec::new();
        for e in &root.entries {
            match &e.kind {
                EntryKind::Dir { digest } => {
                    let key = layer_key(e, digest);
                    let path = layers_dir(store).join(&key);
                    if fs::symlink_metadata(&path).is_err() {
                        build_layer(store, e, digest, &path)?;
                    }
                    self.used.insert(key, self.clock);
                    layers.push(path);
                }
                // Top-level files and symlinks: a few, placed in the
                // writable layer itself.
                _ => place(store, e, &upper.join(os(&e.name)))?,
            }
        }
        self.trim(store)?;
        Ok(Some(LayeredRoot {
            layers,
            upper,
            work,
        }))
    }

    /// Keep the most recently used layers; private file copies no layer
    /// links to any more go with them.
    fn trim(&mut self, store: &Store) -> Result<()> {
        if self.used.len() <= KEEP_LAYERS {
            return Ok(());
        }
        let mut by_age: Vec<(u64, String)> =
            self.used.iter().map(|(k, t)| (*t, k.clone())).collect();
        by_age.sort();
        let drop = by_age.len() - KEEP_LAYERS / 2;
        for (t, key) in by_age.into_iter().take(drop) {
            if t == self.clock {
                continue;
            }
            cas_store::remove_tree(&layers_dir(store).join(&key))?;
            self.used.remove(&key);
        }
        let files = files_dir(store);
        for entry in fs::read_dir(&files).map_err(io("cannot read", &files))? {
            let entry = entry.map_err(io("cannot read", &files))?;
            if entry.metadata().is_ok_and(|m| m.nlink() == 1) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

fn layers_dir(store: &Store) -> PathBuf {
    store.layout().worker().join("layers")
}

fn files_dir(store: &Store) -> PathBuf {
    store.layout().worker().join("files")
}

fn os(name: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(name)
}

/// A layer is named by what it holds: one top-level name, its mode, its tree.
fn layer_key(e: &Entry, digest: &TreeDigest) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"cas-worker-layer 1\0");
    h.update(&(e.name.len() as u64).to_le_bytes());
    h.update(&e.name);
    h.update(&e.mode.to_le_bytes());
    h.update(digest.to_hex().as_bytes());
    h.finalize().to_hex().to_string()
}

/// Lay out `<path>/<name>` = the tree, in a temporary directory renamed
/// into place (a half-built layer is never used).
fn build_layer(store: &Store, e: &Entry, digest: &TreeDigest, path: &Path) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    cas_store::remove_tree(&tmp)?;
    fs::create_dir(&tmp).map_err(io("cannot create", &tmp))?;
    let built = lay_dir(store, &tmp.join(os(&e.name)), digest, e.mode);
    if let Err(err) = built {
        let _ = cas_store::remove_tree(&tmp);
        return Err(err);
    }
    if let Err(err) = fs::rename(&tmp, path) {
        let _ = cas_store::remove_tree(&tmp);
        if fs::symlink_metadata(path).is_err() {
            return Err(WorkerError::io("cannot rename into", path)(err));
        }
    }
    Ok(())
}

fn lay_dir(store: &Store, dir: &Path, tree: &TreeDigest, mode: u32) -> Result<()> {
    fs::create_dir(dir).map_err(io("cannot create", dir))?;
    for e in store.get_tree(tree)?.entries {
        let path = dir.join(os(&e.name));
        match &e.kind {
            EntryKind::Dir { digest } => lay_dir(store, &path, digest, e.mode)?,
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(os(target), &path)
                    .map_err(io("cannot create", &path))?;
                set_input_time(&path)?;
            }
            EntryKind::File { digest, .. } => {
                let copy = private_copy(store, digest, e.mode)?;
                if let Err(err) = fs::hard_link(&copy, &path) {
                    if err.raw_os_error() != Some(libc::EMLINK) {
                        return Err(WorkerError::io("cannot link", &path)(err));
                    }
                    // Too many links to one inode: this one gets its own copy.
                    copy_file(&copy, &path, e.mode)?;
                    set_input_time(&path)?;
                }
            }
        }
    }
    // Last: a directory without write permission is still filled.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io("cannot chmod", dir))?;
    set_input_time(dir)
}

/// Place one entry (file or symlink) at `path`, a private copy.
fn place(store: &Store, e: &Entry, path: &Path) -> Result<()> {
    match &e.kind {
        EntryKind::Symlink { target } => {
            std::os::unix::fs::symlink(os(target), path).map_err(io("cannot create", path))?;
            set_input_time(path)
        }
        EntryKind::File { digest, .. } => {
            copy_file(&store.blob_path(digest), path, e.mode)?;
            set_input_time(path)
        }
        EntryKind::Dir { digest } => lay_dir(store, path, digest, e.mode),
    }
}

/// `worker/files/<blob>.<mode>`: the blob's data as a file of that exact
/// mode (a copy, reflinked where the file system can; the store's own
/// objects stay read-only and are never linked into a layer).
fn private_copy(store: &Store, digest: &BlobDigest, mode: u32) -> Result<PathBuf> {
    let mode = mode & 0o7777;
    let path = files_dir(store).join(format!("{}.{mode:o}", digest.to_hex()));
    if fs::symlink_metadata(&path).is_ok() {
        return Ok(path);
    }
    let object = store.blob_path(digest);
    if !object.exists() {
        return Err(cas_store::StoreError::Missing {
            digest: digest.to_hex(),
        }
        .into());
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    copy_file(&object, &tmp, mode)?;
    set_input_time(&tmp)?;
    fs::rename(&tmp, &path).map_err(io("cannot rename into", &path))?;
    Ok(path)
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<()> {
    // copy_file_range: a reflink where the file system shares extents.
    fs::copy(from, to).map_err(io("cannot copy to", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io("cannot chmod", to))
}

/// What the input root has at a relative path.
pub(crate) enum Found {
    Absent,
    Dir {
        mode: u32,
        empty: bool,
    },
    /// A file or symlink, or a path through one.
    Other,
}

/// Look `rel` up in `tree` (normal components only).
pub(crate) fn lookup(store: &Store, tree: &TreeDigest, rel: &Path) -> Result<Found> {
    let mut current = *tree;
    let mut found = Found::Dir {
        mode: 0o755,
        empty: *tree == TreeDigest::empty(),
    };
    for c in rel.components() {
        let Found::Dir { .. } = found else {
            return Ok(Found::Other);
        };
        use std::os::unix::ffi::OsStrExt;
        let name = c.as_os_str().as_bytes();
        let t = store.get_tree(&current)?;
        let Some(e) = t.entries.iter().find(|e| e.name == name) else {
            return Ok(Found::Absent);
        };
        found = match &e.kind {
            EntryKind::Dir { digest } => {
                current = *digest;
                Found::Dir {
                    mode: e.mode,
                    empty: *digest == TreeDigest::empty(),
                }
            }
            _ => Found::Other,
        };
    }
    Ok(found)
}

/// Make `rel` a directory of the layered root before the run, in the
/// writable layer: directories the input root has keep their modes (an
/// upper directory's attributes are what the merged one shows), new ones
/// are 0755.
pub(crate) fn make_dirs(store: &Store, tree: &TreeDigest, upper: &Path, rel: &Path) -> Result<()> {
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        prefix.push(c);
        let at = upper.join(&prefix);
        if fs::symlink_metadata(&at).is_ok() {
            continue;
        }
        let mode = match lookup(store, tree, &prefix)? {
            Found::Dir { mode, .. } => mode,
            _ => 0o755,
        };
        fs::create_dir(&at).map_err(io("cannot create", &at))?;
        fs::set_permissions(&at, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io("cannot chmod", &at))?;
    }
    Ok(())
}

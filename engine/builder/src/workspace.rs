//! Incremental builds of elements with an open workspace (spec/cli.md,
//! "Workspaces"). Such an element keeps one build directory between builds,
//! `STORE/workspaces/<16 hex>/build` (blake3 of the project root and the
//! element name): before each build the workspace's snapshot (the tree its
//! key was computed from, crate::snapshot) is synced into it, only the files
//! whose content changed, and the files removed from the workspace since the
//! last build are removed (the build's own files stay). So `make` recompiles
//! what changed, and the build sees exactly the bytes its key names even if
//! the workspace is edited meanwhile. One build at a time holds the
//! directory ([`lock`]).
//! `configure-commands` run only when the directory was not prepared by a
//! successful build with the same everything-but-sources (commands,
//! environment, sandbox, dependencies' outputs): any other change starts
//! from an empty directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::keys::KeyInputs;

/// The note marking a result built from a workspace (its directory).
pub const WORKSPACE_NOTE: &str = "workspace";

/// The phase skipped by an incremental build.
pub const CONFIGURE_PHASE: &str = "configure-commands";

/// Where an element's workspace build state lives in the store.
pub fn state_dir(store_root: &Path, project_root: &Path, element: &str) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(project_root.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    h.update(element.as_bytes());
    let hex = h.finalize().to_hex();
    cas_store::Layout::new(store_root)
        .workspaces()
        .join(&hex[..16])
}

/// The persistent build directory in a state directory.
pub fn build_dir(state: &Path) -> PathBuf {
    state.join("build")
}

/// What a prepared build directory was prepared for: the key of the inputs
/// without their sources, hex.
pub(crate) fn preparation(inputs: &KeyInputs) -> String {
    let mut i = inputs.clone();
    i.sources.clear();
    i.key().to_hex()
}

/// Whether the directory was prepared for these inputs (configure may be skipped).
pub(crate) fn incremental(state: &Path, inputs: &KeyInputs) -> bool {
    fs::read_to_string(state.join("prepared")).is_ok_and(|p| p.trim() == preparation(inputs))
}

/// After a successful build: the directory is prepared for these inputs.
pub(crate) fn mark_prepared(state: &Path, inputs: &KeyInputs) -> io::Result<()> {
    fs::write(state.join("prepared"), preparation(inputs) + "\n")
}

/// Make the build directory ready: emptied unless [`incremental`], then the
/// workspace's snapshot `tree` synced into it (crate::snapshot::sync_tree).
/// Returns how many files were written.
pub(crate) fn prepare(
    store: &cas_store::Store,
    state: &Path,
    tree: &cas_store::TreeDigest,
    inputs: &KeyInputs,
) -> io::Result<usize> {
    let build = build_dir(state);
    if !incremental(state, inputs) {
        if fs::symlink_metadata(&build).is_ok() {
            crate::builddir::remove_all(&build)?;
        }
        let _ = fs::remove_file(state.join("sources"));
        let _ = fs::remove_file(state.join("prepared"));
    }
    fs::create_dir_all(&build)?;
    crate::snapshot::sync_tree(store, tree, &build, &state.join("sources"))
}

/// One build at a time per workspace build directory, across processes:
/// an exclusive lock on `STATE/lock`, held until the result is recorded.
/// `waiting` is called once if another build holds it.
pub(crate) fn lock(state: &Path, waiting: &dyn Fn()) -> io::Result<fs::File> {
    fs::create_dir_all(state)?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join("lock"))?;
    use rustix::fs::{flock, FlockOperation};
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        waiting();
        flock(&file, FlockOperation::LockExclusive).map_err(io::Error::from)?;
    }
    Ok(file)
}

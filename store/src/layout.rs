//! The store directory's layout (spec/store.md, "On-disk layout"): one type
//! names every subdirectory, those the store manages and those the engine
//! keeps beside them (builds, probes, junctions, REAPI state, the git
//! mirrors, workspaces, the worker's scratch). No other code joins names
//! onto a store's root.

use std::path::{Path, PathBuf};

/// The paths of one store directory.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    root: &'a Path,
}

impl<'a> Layout<'a> {
    pub fn new(root: &'a Path) -> Layout<'a> {
        Layout { root }
    }
    pub fn root(&self) -> &'a Path {
        self.root
    }
    /// `layout`: the layout's version.
    pub fn version_file(&self) -> PathBuf {
        self.root.join("layout")
    }
    /// `lock`: the store's lock file (shared by builds, exclusive for gc).
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// `ac.sqlite`: action cache, pins, source index.
    pub fn database(&self) -> PathBuf {
        self.root.join("ac.sqlite")
    }
    /// `objects/`: blobs and trees by digest.
    pub fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    /// `tmp/`: scratch on the objects' file system.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// `views/`: materialised read-only views of trees.
    pub fn views(&self) -> PathBuf {
        self.root.join("views")
    }
    /// `locks/`: build locks by action key.
    pub fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }
    /// `builds/`: one directory per attempt at a step.
    pub fn builds(&self) -> PathBuf {
        self.root.join("builds")
    }
    /// `builds/.sysroot`: the empty mount point of layered sysroots.
    pub fn sysroot_mount(&self) -> PathBuf {
        self.builds().join(".sysroot")
    }
    /// `builds/last-failed.json`: the last failed attempt.
    pub fn last_failed(&self) -> PathBuf {
        self.builds().join("last-failed.json")
    }
    /// `builds/failed/`: the failure record of each key that failed.
    pub fn failures(&self) -> PathBuf {
        self.builds().join("failed")
    }
    /// `probes`: remembered probe successes.
    pub fn probes(&self) -> PathBuf {
        self.root.join("probes")
    }
    /// `junctions/`: staged subprojects of BuildStream junctions.
    pub fn junctions(&self) -> PathBuf {
        self.root.join("junctions")
    }
    /// `reapi/`: the digest map of REAPI remotes.
    pub fn reapi(&self) -> PathBuf {
        self.root.join("reapi")
    }
    /// `sources/git/`: bare mirrors of git sources.
    pub fn git_mirrors(&self) -> PathBuf {
        self.root.join("sources").join("git")
    }
    /// `workspaces/`: the persistent build directories of open workspaces.
    pub fn workspaces(&self) -> PathBuf {
        self.root.join("workspaces")
    }
    /// `worker/`: `cas worker`'s actions, layers and files.
    pub fn worker(&self) -> PathBuf {
        self.root.join("worker")
    }
}

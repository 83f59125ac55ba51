//! Durability of objects before a row names them (spec/store.md,
//! "Durability"): a result, a note, a source or a pin is committed only
//! once every object it references is on disk.
//!
//! Two ways there: `syncfs(2)` of the store's file system, which writes out
//! everything dirty on it, whoever wrote it, or `fsync(2)` of exactly the
//! object files a row references and of the directories that name them.
//! When little is dirty on the machine (a build's own steps), one `syncfs`
//! is the cheaper (about 1 ms here, where `fsync`ing a step's 19 files and
//! directories took twice as long in all); when more than [`DIRTY_MAX`] is
//! (another tool just wrote its outputs), a `syncfs` would wait for all of
//! it (30–70 ms measured right after Nix and Bazel had run), and a row over
//! at most [`FSYNC_MAX`] objects is made durable file by file instead.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{BlobDigest, Digest, TreeDigest};
use crate::error::{IoContext, Result};
use crate::store::Store;
use crate::tree::EntryKind;

/// How [`Store::make_durable`] made its objects durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Durable {
    /// Each object file and its directory `fsync`ed.
    EachFile { objects: usize },
    /// One `syncfs` of the store's file system.
    WholeFileSystem,
}

/// Dirty bytes on the machine past which a `syncfs` would mostly write out
/// what others wrote (a build's own steps keep well under it: at most
/// 0.3 MiB measured through a 500-step cold build).
const DIRTY_MAX: u64 = 4 << 20;

/// Bytes waiting to be written out, machine-wide (`Dirty` and `Writeback`
/// of `/proc/meminfo`); `None` when it cannot be read.
fn dirty_bytes() -> Option<u64> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let mut kib = 0;
    let mut found = 0;
    for line in info.lines() {
        if let Some(rest) = line
            .strip_prefix("Dirty:")
            .or_else(|| line.strip_prefix("Writeback:"))
        {
            kib += rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
            found += 1;
        }
    }
    (found == 2).then_some(kib << 10)
}

/// The most objects made durable one by one; past it, a `syncfs`.
pub(crate) const FSYNC_MAX: usize = 256;

impl Store {
    /// `syncfs(2)` on the store's filesystem: makes every object written so far durable.
    pub fn sync(&self) -> Result<()> {
        let root = self.root();
        let f = fs::File::open(root).ctx("open", root)?;
        rustix::fs::syncfs(&f).ctx("syncfs", root)
    }

    /// Make every object of `trees` (each closure: its tree objects and
    /// their blobs) and `blobs` durable: when more than [`DIRTY_MAX`] is
    /// dirty on the machine, each file and the directory that names it
    /// `fsync`ed; otherwise, past [`FSYNC_MAX`] objects, or on any error (an
    /// object that cannot be read is the caller's to find), one
    /// [`Store::sync`]. Objects must be present (callers hold the shared
    /// lock and checked them).
    pub fn make_durable(&self, trees: &[TreeDigest], blobs: &[BlobDigest]) -> Result<Durable> {
        self.make_durable_under(trees, blobs, dirty_bytes())
    }

    /// [`Store::make_durable`] when `dirty` bytes wait to be written out on
    /// the machine (`None`: unknown).
    fn make_durable_under(
        &self,
        trees: &[TreeDigest],
        blobs: &[BlobDigest],
        dirty: Option<u64>,
    ) -> Result<Durable> {
        if dirty.is_some_and(|d| d > DIRTY_MAX) {
            if let Some(files) = self.closure_files(trees, blobs) {
                if self.fsync_each(&files).is_ok() {
                    return Ok(Durable::EachFile {
                        objects: files.len(),
                    });
                }
            }
        }
        self.sync().map(|()| Durable::WholeFileSystem)
    }

    /// The object files of `trees`' closures and of `blobs`; `None` past
    /// [`FSYNC_MAX`] or when a tree cannot be read.
    fn closure_files(&self, trees: &[TreeDigest], blobs: &[BlobDigest]) -> Option<Vec<PathBuf>> {
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut files = Vec::new();
        let mut add = |d: Digest, files: &mut Vec<PathBuf>| -> Option<bool> {
            if !seen.insert(d) {
                return Some(false);
            }
            if files.len() >= FSYNC_MAX {
                return None;
            }
            files.push(self.object_path(&d));
            Some(true)
        };
        for b in blobs {
            add(b.0, &mut files)?;
        }
        let mut stack: Vec<TreeDigest> = Vec::new();
        for t in trees {
            if add(t.0, &mut files)? {
                stack.push(*t);
            }
        }
        while let Some(t) = stack.pop() {
            for e in self.get_tree(&t).ok()?.entries {
                match e.kind {
                    EntryKind::File { digest, .. } => {
                        add(digest.0, &mut files)?;
                    }
                    EntryKind::Dir { digest } => {
                        if add(digest.0, &mut files)? {
                            stack.push(digest);
                        }
                    }
                    EntryKind::Symlink { .. } => {}
                }
            }
        }
        Some(files)
    }

    /// `fsync` each file, then each directory that names one, then the
    /// objects directory (which names those directories). In parallel, up
    /// to [`FSYNC_THREADS`] at once: each waits on the disk, and waits that
    /// overlap share the file system's journal commits and cache flushes.
    fn fsync_each(&self, files: &[PathBuf]) -> std::io::Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut seen: HashSet<&Path> = HashSet::new();
        for f in files {
            if let Some(d) = f.parent() {
                if seen.insert(d) {
                    dirs.push(d.to_path_buf());
                }
            }
        }
        fsync_all(files, false)?;
        fsync_all(&dirs, true)?;
        fsync_all(&[self.objects_dir()], true)
    }
}

/// The most `fsync`s [`Store::make_durable`] has in flight at once.
const FSYNC_THREADS: usize = 8;

/// `fsync` every path (directories when `dir`), several at once; the first
/// error, if any.
fn fsync_all(paths: &[PathBuf], dir: bool) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let one = |p: &Path| -> std::io::Result<()> {
        let mut o = fs::OpenOptions::new();
        o.read(true).custom_flags(
            libc::O_CLOEXEC | libc::O_NOFOLLOW | if dir { libc::O_DIRECTORY } else { 0 },
        );
        o.open(p)?.sync_all()
    };
    let threads = paths.len().min(FSYNC_THREADS);
    if threads <= 1 {
        return paths.iter().try_for_each(|p| one(p));
    }
    let next = AtomicUsize::new(0);
    let work = || -> std::io::Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = paths.get(i) else {
                return Ok(());
            };
            one(p)?;
        }
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        others
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")))
            })
            .chain([mine])
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::IngestMode;

    fn tree_of(store: &Store, dir: &Path, files: usize) -> TreeDigest {
        let d = dir.join("usr/share");
        fs::create_dir_all(&d).unwrap();
        for i in 0..files {
            fs::write(d.join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        store.ingest(dir, IngestMode::Copy).unwrap().tree
    }

    #[test]
    fn a_small_result_is_made_durable_file_by_file_when_much_is_dirty_else_by_syncfs() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let small = tree_of(&store, &t.path().join("small"), 3);
        let log = store.put_bytes(b"log").unwrap();
        // three blobs, three trees (/, usr, usr/share), the log; the log
        // named twice counts once
        let busy = Some(DIRTY_MAX + 1);
        assert_eq!(
            store
                .make_durable_under(&[small], &[log, log], busy)
                .unwrap(),
            Durable::EachFile { objects: 7 }
        );
        // little dirty, or unknown: one syncfs is cheaper
        for quiet in [Some(0), Some(DIRTY_MAX), None] {
            assert_eq!(
                store.make_durable_under(&[small], &[log], quiet).unwrap(),
                Durable::WholeFileSystem
            );
        }
        let large = tree_of(&store, &t.path().join("large"), FSYNC_MAX);
        assert_eq!(
            store.make_durable_under(&[large], &[], busy).unwrap(),
            Durable::WholeFileSystem
        );
    }

    #[test]
    fn an_unreadable_tree_falls_back_to_syncfs() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let tree = tree_of(&store, &t.path().join("d"), 2);
        fs::remove_file(store.object_path(&tree.0)).unwrap();
        assert_eq!(
            store
                .make_durable_under(&[tree], &[], Some(DIRTY_MAX + 1))
                .unwrap(),
            Durable::WholeFileSystem
        );
    }

    #[test]
    fn the_dirty_bytes_of_the_machine_are_read() {
        assert!(
            dirty_bytes().is_some(),
            "/proc/meminfo has Dirty and Writeback"
        );
    }
}

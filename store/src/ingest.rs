//! Ingest a directory into a tree: one parallel walk that hashes and stores
//! each file as it is found (rayon over every directory's entries, all
//! lookups relative to the directory's descriptor), then the tree objects
//! bottom-up.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustix::fs as rfs;

use rayon::prelude::*;

use crate::blob::{file_kind, IngestMode, Stored};
use crate::digest::{BlobDigest, Digest, TreeDigest};
use crate::error::{IoContext, Result, StoreError};
use crate::statcache::StatKey;
use crate::store::Store;
use crate::tree::{Entry, Tree};

/// What an ingest did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    pub tree: TreeDigest,
    /// Regular files (paths) ingested.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Objects (blobs and trees) that were not in the store before.
    pub new_objects: u64,
}

enum Node {
    File {
        mode: u32,
        stored: Stored,
    },
    Symlink {
        target: Vec<u8>,
    },
    Dir {
        mode: u32,
        children: Vec<(Vec<u8>, Node)>,
    },
}

/// One ingest's walk: directories are read through their descriptors
/// (`openat`/`fstatat`, no path lookups from the root), every directory's
/// entries are handled in parallel (rayon), and each file is hashed and
/// stored as soon as it is found, so walking and hashing overlap.
struct Walker<'a> {
    store: &'a Store,
    mode: IngestMode,
    /// Copy mode: the stat cache's entries below the ingested directory.
    cache: HashMap<Vec<u8>, (StatKey, Digest)>,
    /// Copy mode: files hashed now, for the stat cache.
    fresh: Mutex<Vec<(PathBuf, StatKey, Digest)>>,
    paths: AtomicU64,
}

impl Walker<'_> {
    fn dir(&self, path: &Path) -> Result<Vec<(Vec<u8>, Node)>> {
        let fd = rfs::open(
            path,
            rfs::OFlags::RDONLY | rfs::OFlags::DIRECTORY | rfs::OFlags::CLOEXEC,
            rfs::Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .ctx("open directory", path)?;
        let mut names = Vec::new();
        let mut dir = rfs::Dir::read_from(&fd)
            .map_err(std::io::Error::from)
            .ctx("read directory", path)?;
        while let Some(entry) = dir.read() {
            let entry = entry
                .map_err(std::io::Error::from)
                .ctx("read directory", path)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push((name.to_vec(), entry.file_type()));
        }
        names
            .into_par_iter()
            .filter_map(|(name, kind)| match self.entry(&fd, path, &name, kind) {
                Ok(node) => Some(Ok((name, node))),
                // gone since the directory was listed (an editor replacing a
                // file by rename, say): not part of this snapshot, whose
                // digest is of what was read
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    fn entry(
        &self,
        dirfd: &std::os::fd::OwnedFd,
        dir: &Path,
        name: &[u8],
        kind: rfs::FileType,
    ) -> Result<Node> {
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        let cname = std::ffi::CString::new(name)
            .map_err(|_| StoreError::Invalid(format!("{}: NUL in a file name", path.display())))?;
        let kind = match kind {
            rfs::FileType::Unknown => {
                let st = rfs::statat(dirfd, &cname, rfs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(std::io::Error::from)
                    .ctx("stat", &path)?;
                rfs::FileType::from_raw_mode(st.st_mode)
            }
            k => k,
        };
        match kind {
            rfs::FileType::Directory => {
                let st = rfs::statat(dirfd, &cname, rfs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(std::io::Error::from)
                    .ctx("stat", &path)?;
                Ok(Node::Dir {
                    mode: st.st_mode & 0o7777,
                    children: self.dir(&path)?,
                })
            }
            rfs::FileType::Symlink => {
                let target = rfs::readlinkat(dirfd, &cname, Vec::new())
                    .map_err(std::io::Error::from)
                    .ctx("read symlink", &path)?;
                Ok(Node::Symlink {
                    target: target.into_bytes(),
                })
            }
            rfs::FileType::RegularFile => self.file(dirfd, &cname, path),
            _ => {
                let meta = fs::symlink_metadata(&path).ctx("stat", &path)?;
                Err(StoreError::UnsupportedFileType {
                    path,
                    kind: file_kind(&meta),
                })
            }
        }
    }

    fn file(
        &self,
        dirfd: &std::os::fd::OwnedFd,
        name: &std::ffi::CStr,
        path: PathBuf,
    ) -> Result<Node> {
        self.paths.fetch_add(1, Ordering::Relaxed);
        // A file the stat cache knows: one fstatat, and no open if unchanged.
        if let Some((cached, d)) = self.cache.get(path.as_os_str().as_bytes()) {
            if let Ok(st) = rfs::statat(dirfd, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
                let key = StatKey::of_stat(&st);
                if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::RegularFile
                    && *cached == key
                    && self.store.has_object(d)
                {
                    return Ok(Node::File {
                        mode: st.st_mode & 0o7777,
                        stored: Stored {
                            digest: *d,
                            size: key.size,
                            new: false,
                        },
                    });
                }
            }
        }
        // O_NONBLOCK: a file swapped for a FIFO since readdir cannot block us.
        let fd = rfs::openat(
            dirfd,
            name,
            rfs::OFlags::RDONLY
                | rfs::OFlags::NOFOLLOW
                | rfs::OFlags::CLOEXEC
                | rfs::OFlags::NONBLOCK,
            rfs::Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .ctx("open", &path)?;
        let file = fs::File::from(fd);
        let meta = file.metadata().ctx("stat", &path)?;
        let mode = meta.mode() & 0o7777;
        let key = StatKey::of(&meta);
        if !meta.is_file() {
            return Err(StoreError::UnsupportedFileType {
                kind: file_kind(&meta),
                path,
            });
        }
        let stored = self.store.put_opened(file, &meta, &path, self.mode)?;
        if self.mode == IngestMode::Copy {
            self.fresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((path, key, stored.digest));
        }
        Ok(Node::File { mode, stored })
    }
}

impl Store {
    /// Ingest the directory `dir` (its content; the directory's own mode is not recorded).
    pub fn ingest(&self, dir: &Path, mode: IngestMode) -> Result<IngestReport> {
        let _lock = self.lock_shared()?;
        let meta = fs::metadata(dir).ctx("stat", dir)?;
        if !meta.is_dir() {
            return Err(StoreError::Invalid(format!(
                "{}: not a directory",
                dir.display()
            )));
        }
        // Absolute paths: the stat cache is keyed by them.
        let dir = fs::canonicalize(dir).ctx("resolve", dir)?;
        // Copy mode leaves the files in place: unchanged ones are not read again.
        let cache = match mode {
            IngestMode::Copy => self.stat_below(&dir)?,
            IngestMode::Move => HashMap::new(),
        };
        let walker = Walker {
            store: self,
            mode,
            cache,
            fresh: Mutex::new(Vec::new()),
            paths: AtomicU64::new(0),
        };
        let children = walker.dir(&dir)?;
        if mode == IngestMode::Copy {
            let fresh = walker
                .fresh
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh: Vec<(&Path, StatKey, Digest)> = fresh
                .iter()
                .map(|(p, k, d)| (p.as_path(), *k, *d))
                .collect();
            self.stat_record(&fresh)?;
        }
        let mut report = IngestReport {
            tree: TreeDigest::empty(),
            files: walker.paths.into_inner(),
            bytes: 0,
            new_objects: 0,
        };
        report.tree = self.build_tree(children, &mut report)?;
        Ok(report)
    }

    fn build_tree(
        &self,
        children: Vec<(Vec<u8>, Node)>,
        report: &mut IngestReport,
    ) -> Result<TreeDigest> {
        let mut entries = Vec::with_capacity(children.len());
        for (name, node) in children {
            entries.push(match node {
                Node::File { mode, stored: s } => {
                    report.bytes += s.size;
                    if s.new {
                        report.new_objects += 1;
                    }
                    Entry::file(name, mode, BlobDigest(s.digest), s.size)
                }
                Node::Symlink { target } => Entry::symlink(name, target),
                Node::Dir { mode, children } => {
                    let d = self.build_tree(children, report)?;
                    Entry::dir(name, mode, d)
                }
            });
        }
        let tree = Tree::new(entries)?;
        let (d, new) = self.put_tree_inner(&tree)?;
        if new {
            report.new_objects += 1;
        }
        Ok(d)
    }
}

//! Ingest a directory into a tree: walk once, hash and store files in parallel
//! (rayon over files), then write the tree objects bottom-up.

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
        index: usize,
        mode: u32,
    },
    Symlink {
        target: Vec<u8>,
    },
    Dir {
        mode: u32,
        children: Vec<(Vec<u8>, Node)>,
    },
}

#[derive(Default)]
struct Walk {
    /// Distinct inodes to store: first path seen, and its stat.
    files: Vec<PathBuf>,
    stats: Vec<StatKey>,
    inodes: HashMap<(u64, u64), usize>,
    paths: u64,
}

impl Walk {
    fn dir(&mut self, path: &Path) -> Result<Vec<(Vec<u8>, Node)>> {
        let mut children = Vec::new();
        for entry in fs::read_dir(path).ctx("read directory", path)? {
            let entry = entry.ctx("read directory", path)?;
            let p = entry.path();
            let meta = fs::symlink_metadata(&p).ctx("stat", &p)?;
            let name = entry.file_name().as_bytes().to_vec();
            let mode = meta.mode() & 0o7777;
            let t = meta.file_type();
            let node = if t.is_dir() {
                Node::Dir {
                    mode,
                    children: self.dir(&p)?,
                }
            } else if t.is_symlink() {
                let target = fs::read_link(&p).ctx("read symlink", &p)?;
                Node::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            } else if t.is_file() {
                self.paths += 1;
                let key = (meta.dev(), meta.ino());
                let index = match self.inodes.get(&key) {
                    Some(&i) => i,
                    None => {
                        self.files.push(p);
                        self.stats.push(StatKey::of(&meta));
                        self.inodes.insert(key, self.files.len() - 1);
                        self.files.len() - 1
                    }
                };
                Node::File { index, mode }
            } else {
                return Err(StoreError::UnsupportedFileType {
                    path: p,
                    kind: file_kind(&meta),
                });
            };
            children.push((name, node));
        }
        Ok(children)
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
        let mut walk = Walk::default();
        // Absolute paths: the stat cache is keyed by them.
        let dir = fs::canonicalize(dir).ctx("resolve", dir)?;
        let children = walk.dir(&dir)?;
        // Copy mode leaves the files in place: unchanged ones are not read again.
        let cached: Vec<Option<Digest>> = match mode {
            IngestMode::Copy => {
                let keyed: Vec<(PathBuf, StatKey)> = walk
                    .files
                    .iter()
                    .cloned()
                    .zip(walk.stats.iter().copied())
                    .collect();
                self.stat_lookup(&keyed)?
            }
            IngestMode::Move => vec![None; walk.files.len()],
        };
        let stored: Vec<Stored> = walk
            .files
            .par_iter()
            .zip(walk.stats.par_iter())
            .zip(cached.par_iter())
            .map(|((p, st), hit)| match hit {
                Some(d) => Ok(Stored {
                    digest: *d,
                    size: st.size,
                    new: false,
                }),
                None => self.put_file_inner(p, mode),
            })
            .collect::<Result<Vec<_>>>()?;
        if mode == IngestMode::Copy {
            let fresh: Vec<(&Path, StatKey, Digest)> = walk
                .files
                .iter()
                .zip(&walk.stats)
                .zip(&stored)
                .zip(&cached)
                .filter(|(_, hit)| hit.is_none())
                .map(|(((p, st), s), _)| (p.as_path(), *st, s.digest))
                .collect();
            self.stat_record(&fresh)?;
        }
        let mut report = IngestReport {
            tree: TreeDigest::empty(),
            files: walk.paths,
            bytes: 0,
            new_objects: stored.iter().filter(|s| s.new).count() as u64,
        };
        report.tree = self.build_tree(children, &stored, &mut report)?;
        Ok(report)
    }

    fn build_tree(
        &self,
        children: Vec<(Vec<u8>, Node)>,
        stored: &[Stored],
        report: &mut IngestReport,
    ) -> Result<TreeDigest> {
        let mut entries = Vec::with_capacity(children.len());
        for (name, node) in children {
            entries.push(match node {
                Node::File { index, mode } => {
                    let s = stored[index];
                    report.bytes += s.size;
                    Entry::file(name, mode, BlobDigest(s.digest), s.size)
                }
                Node::Symlink { target } => Entry::symlink(name, target),
                Node::Dir { mode, children } => {
                    let d = self.build_tree(children, stored, report)?;
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

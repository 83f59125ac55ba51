//! The source cache: downloaded files kept by checksum, so that a source
//! already there is never fetched again, whatever its URL. The engine
//! implements [`SourceCache`] over the content store; [`DirCache`] is a
//! plain directory implementation. Also [`fetch_source`], the one entry
//! point that makes a source available for staging.

use std::path::{Path, PathBuf};

use crate::checksum::is_well_formed;
use crate::error::{Result, SourceError};
use crate::fetch::{Fetcher, Progress};
use crate::git;
use crate::spec::{Checksum, Source, SourceKind};

/// Downloaded files by checksum. Implementations must be safe to share
/// between threads (parallel fetches).
pub trait SourceCache: Sync {
    /// A readable file with this checksum, if the cache has it.
    fn lookup(&self, checksum: &Checksum) -> Option<PathBuf>;
    /// Keep `file`, already verified to have `checksum`. The file may be
    /// moved (it is a temporary file). Returns the path of the cached file.
    fn insert(&self, checksum: &Checksum, file: &Path) -> Result<PathBuf>;
}

/// A [`SourceCache`] in a directory: `ROOT/<algorithm>/<hex>`.
#[derive(Debug, Clone)]
pub struct DirCache {
    root: PathBuf,
}

impl DirCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirCache { root: root.into() }
    }

    fn path_of(&self, checksum: &Checksum) -> Option<PathBuf> {
        is_well_formed(checksum).then(|| self.root.join(checksum.algorithm()).join(checksum.hex()))
    }
}

impl SourceCache for DirCache {
    fn lookup(&self, checksum: &Checksum) -> Option<PathBuf> {
        let path = self.path_of(checksum)?;
        path.is_file().then_some(path)
    }

    fn insert(&self, checksum: &Checksum, file: &Path) -> Result<PathBuf> {
        let dest = self.path_of(checksum).ok_or_else(|| SourceError::Archive {
            archive: file.display().to_string(),
            message: format!("malformed checksum {checksum}"),
        })?;
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)
            .map_err(|e| SourceError::io("cannot create directory", dir, e))?;
        if std::fs::rename(file, &dest).is_err() {
            // Another filesystem: copy beside the destination, then rename.
            let tmp = tempfile::Builder::new()
                .prefix(".insert-")
                .tempfile_in(dir)
                .map_err(|e| SourceError::io("cannot create a temporary file in", dir, e))?;
            std::fs::copy(file, tmp.path()).map_err(|e| SourceError::io("cannot copy", file, e))?;
            tmp.persist(&dest)
                .map_err(|e| SourceError::io("cannot rename into", &dest, e.error))?;
            let _ = std::fs::remove_file(file);
        }
        Ok(dest)
    }
}

/// What [`fetch_source`] made available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Local and patch sources live in the project: nothing to fetch.
    InProject,
    /// The cached file of a tar, remote or deb source.
    File(PathBuf),
    /// The bare git mirror that holds the commit.
    Git(PathBuf),
    /// Every crate of a cargo source is in the cache.
    Crates,
}

/// Make `source` available for staging: a file in `cache` (downloaded and
/// verified if missing), or the commit in the git mirror. With `offline`,
/// a missing source is an error naming it instead of a network access.
pub fn fetch_source(
    source: &Source,
    fetcher: &Fetcher,
    cache: &dyn SourceCache,
    offline: bool,
    progress: &dyn Progress,
) -> Result<Fetched> {
    match &source.kind {
        SourceKind::Local { .. } | SourceKind::Patch { .. } => Ok(Fetched::InProject),
        SourceKind::Tar { url, checksum, .. }
        | SourceKind::Remote { url, checksum, .. }
        | SourceKind::Deb { url, checksum, .. } => {
            if let Some(path) = cache.lookup(checksum) {
                return Ok(Fetched::File(path));
            }
            if offline {
                return Err(SourceError::Offline {
                    kind: source.kind.name(),
                    url: url.written.clone(),
                });
            }
            let download = fetcher.fetch_verified(url, checksum, progress)?;
            let path = cache.insert(checksum, download.path())?;
            drop(download);
            Ok(Fetched::File(path))
        }
        SourceKind::Git { url, commit, .. } => {
            git::ensure_commit(fetcher, url, commit, offline).map(Fetched::Git)
        }
        SourceKind::Cargo { url, crates, .. } => {
            for c in crates {
                if cache.lookup(&c.checksum).is_some() {
                    continue;
                }
                let url = c.url(url);
                if offline {
                    return Err(SourceError::Offline {
                        kind: source.kind.name(),
                        url: url.written,
                    });
                }
                let download = fetcher.fetch_verified(&url, &c.checksum, progress)?;
                cache.insert(&c.checksum, download.path())?;
            }
            Ok(Fetched::Crates)
        }
    }
}

/// What a fetch of `source` downloads, as one string: two sources with the
/// same fetch identity fetch the same thing into the same place (a checksum
/// names one file in the source cache; a git source is its mirror, named by
/// the resolved URL, at its commit). `None` for sources that are never
/// fetched (`local`, `patch`). Dedup of parallel fetches keys on this.
pub fn fetch_identity(source: &Source) -> Option<String> {
    match &source.kind {
        SourceKind::Tar { checksum, .. }
        | SourceKind::Remote { checksum, .. }
        | SourceKind::Deb { checksum, .. } => Some(checksum.to_string()),
        SourceKind::Git { url, commit, .. } => Some(format!("git {} {commit}", url.resolved)),
        SourceKind::Cargo { crates, .. } => Some(
            crates
                .iter()
                .map(|c| c.checksum.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        SourceKind::Local { .. } | SourceKind::Patch { .. } => None,
    }
}

/// Whether [`fetch_source`] would need the network for `source`
/// (`cas show`: `fetch-needed`).
pub fn needs_fetch(source: &Source, fetcher: &Fetcher, cache: &dyn SourceCache) -> bool {
    match &source.kind {
        SourceKind::Local { .. } | SourceKind::Patch { .. } => false,
        SourceKind::Tar { checksum, .. }
        | SourceKind::Remote { checksum, .. }
        | SourceKind::Deb { checksum, .. } => cache.lookup(checksum).is_none(),
        SourceKind::Git { url, commit, .. } => {
            !git::has_commit(&git::mirror_path(&fetcher.config().git_dir, url), commit)
        }
        SourceKind::Cargo { crates, .. } => {
            crates.iter().any(|c| cache.lookup(&c.checksum).is_none())
        }
    }
}

//! `cas source track`: the new pinned value of a source (a fresh sha256 for
//! tar, remote and deb; the commit of the tracked branch for git). Rewriting
//! the element file is the format crate's job.

use crate::cache::SourceCache;
use crate::checksum::Algorithm;
use crate::error::{Result, SourceError};
use crate::fetch::{Fetcher, Progress};
use crate::git::resolve_track;
use crate::spec::{Checksum, Source, SourceKind};

/// The new value of a tracked source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracked {
    /// The new `sha256:` of a tar, remote or deb source.
    Checksum(Checksum),
    /// The new `commit:` of a git source.
    Commit(String),
}

/// Look upstream for the current content of `source`. Downloads are kept in
/// `cache` (when given) so that the build after tracking fetches nothing.
/// A git source without `track:` is an error naming it (no branch is guessed).
pub fn track(
    source: &Source,
    fetcher: &Fetcher,
    cache: Option<&dyn SourceCache>,
    progress: &dyn Progress,
) -> Result<Tracked> {
    match &source.kind {
        SourceKind::Tar { url, .. }
        | SourceKind::Remote { url, .. }
        | SourceKind::Deb { url, .. } => {
            let download = fetcher.fetch_unverified(url, Algorithm::Sha256, progress)?;
            let checksum = download.checksum.clone();
            if let Some(cache) = cache {
                cache.insert(&checksum, download.path())?;
            }
            Ok(Tracked::Checksum(checksum))
        }
        SourceKind::Git {
            url,
            track: Some(branch),
            ..
        } => resolve_track(&url.resolved, branch).map(Tracked::Commit),
        SourceKind::Git {
            url, track: None, ..
        } => Err(SourceError::Git {
            url: url.written.clone(),
            message: "no `track:` branch to follow".into(),
        }),
        other => Err(SourceError::NothingToTrack { kind: other.name() }),
    }
}

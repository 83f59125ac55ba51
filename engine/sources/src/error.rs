//! The one error type of the crate. Every message names the URL, path or
//! archive member involved, so that the engine can show it as is.

use std::path::PathBuf;

use crate::spec::Checksum;

pub type Result<T, E = SourceError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{url}: unsupported URL scheme (expected http://, https:// or file://)")]
    UnsupportedUrl { url: String },

    #[error("{url}: HTTP status {status}")]
    HttpStatus { url: String, status: u16 },

    #[error("{url}: {message}")]
    Network {
        url: String,
        message: String,
        temporary: bool,
    },

    #[error("{url}: download truncated: got {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },

    #[error(
        "{url}: checksum mismatch: expected {expected}, got {actual} (the download was deleted)"
    )]
    ChecksumMismatch {
        url: String,
        expected: Checksum,
        actual: Checksum,
    },

    #[error("could not fetch {url}:{attempts}")]
    AllCandidatesFailed { url: String, attempts: String },

    #[error("cannot fetch {url}: the alias `{alias}` has no URL of its own (`''` in project.yaml) and no mirror is configured for it; add one to the user configuration: `mirrors: {{{alias}: [URL]}}`")]
    NoMirror { url: String, alias: String },

    #[error("{kind} source {url} is not in the source cache and the network is off (offline); run `cas fetch` while online")]
    Offline { kind: &'static str, url: String },

    #[error("{kind} source {url} ({checksum}) has not been fetched yet")]
    NotFetched {
        kind: &'static str,
        url: String,
        checksum: Checksum,
    },

    #[error("{archive}: refusing member `{member}`: {reason}")]
    UnsafeMember {
        archive: String,
        member: String,
        reason: String,
    },

    #[error("{archive}: {message}")]
    Archive { archive: String, message: String },

    #[error("{archive}: not a valid Debian package: {message}")]
    Deb { archive: String, message: String },

    #[error("patch {patch} does not apply{}:\n{output}", if .hunks.is_empty() { String::new() } else { format!(" ({})", .hunks.join("; ")) })]
    PatchFailed {
        patch: PathBuf,
        hunks: Vec<String>,
        output: String,
    },

    #[error("git {url}: {message}")]
    Git { url: String, message: String },

    #[error("git {url}: commit {commit} not found (not in the local mirror{})", if *.offline { ", and offline" } else { " nor upstream" })]
    CommitNotFound {
        url: String,
        commit: String,
        offline: bool,
    },

    #[error("git {url}: no branch or tag named `{branch}`")]
    TrackNotFound { url: String, branch: String },

    #[error("{kind} source has nothing to track (only tar, remote, deb and git sources have an upstream)")]
    NothingToTrack { kind: &'static str },

    #[error("invalid {name}=`{value}`: {reason}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        reason: String,
    },

    #[error("invalid staging directory `{directory}`: {reason}")]
    InvalidDirectory { directory: String, reason: String },

    #[error("invalid file name `{filename}` for remote source {url}: {reason}")]
    InvalidFilename {
        url: String,
        filename: String,
        reason: String,
    },

    #[error("local source {path}: {message}")]
    LocalTree { path: PathBuf, message: String },
}

impl SourceError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SourceError::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// True for errors that another attempt at the same URL may cure
    /// (connection refused/reset, timeouts, 5xx, 429, truncated bodies).
    pub fn is_temporary(&self) -> bool {
        match self {
            SourceError::Network { temporary, .. } => *temporary,
            SourceError::HttpStatus { status, .. } => *status == 429 || (500..600).contains(status),
            SourceError::Truncated { .. } => true,
            _ => false,
        }
    }
}

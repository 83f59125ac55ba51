//! The one error type of the store. Every message names the path or digest involved.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("action cache database {path}: {context}: {source}")]
    Db {
        context: String,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the file system of the store {path} is full ({free} bytes free): free some space and try again (`cas store gc` removes failed builds' directories first, which needs no free space; `--max-size SIZE` also evicts results)")]
    Full { path: PathBuf, free: u64 },
    #[error("not a digest: {input:?} ({reason}); expected 64 lowercase hex characters")]
    BadDigest { input: String, reason: String },
    #[error("malformed tree {digest}: {reason}")]
    MalformedTree { digest: String, reason: String },
    #[error("object {digest} is missing from the store")]
    Missing { digest: String },
    #[error("object {digest} is corrupt: its content hashes to {actual} ({path})")]
    Corrupt {
        digest: String,
        actual: String,
        path: PathBuf,
    },
    #[error(
        "{path}: cannot store a {kind}: only regular files, directories and symlinks can be stored"
    )]
    UnsupportedFileType { path: PathBuf, kind: &'static str },
    #[error("{}", conflicts_message(conflicts))]
    MergeConflicts {
        conflicts: Vec<crate::view::Conflict>,
    },
    #[error("store {path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("destination {path} exists and is not an empty directory")]
    DestinationNotEmpty { path: PathBuf },
    #[error("reflinks are not supported from the store to {path}: {source}")]
    ReflinkUnsupported {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {path}: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attach the operation and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StoreError::Io {
            op,
            path: path.into(),
            source: e.into(),
        })
    }
}

impl StoreError {}

fn conflicts_message(conflicts: &[crate::view::Conflict]) -> String {
    match conflicts {
        [one] => format!("conflict {one}"),
        many => {
            let mut s = format!("{} conflicts:", many.len());
            for c in many {
                s.push_str(&format!("\n  - {c}"));
            }
            s
        }
    }
}

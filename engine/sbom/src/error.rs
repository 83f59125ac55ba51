//! Errors of the SBOM, licence and provenance crate: each names the
//! element, file or path concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("{elements} not built: run `cas build {target}` first")]
    NotBuilt { elements: String, target: String },
    #[error("{0}")]
    Engine(String),
    #[error("store: {0}")]
    Store(#[from] cas_store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{element}: license `{expression}` is not an SPDX licence expression: {reason}")]
    License {
        element: String,
        expression: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Deb { path: PathBuf, reason: String },
    #[error("{0}: the directory is not empty")]
    NotEmpty(PathBuf),
    #[error("{what} is not in the source cache: run `cas fetch {target}` first")]
    NotFetched { what: String, target: String },
    #[error("{file}: not a DSSE envelope of cas: {reason}")]
    Envelope { file: String, reason: String },
    #[error("{file}: {reason}")]
    Verification { file: String, reason: String },
}

impl SbomError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SbomError {
        let path = path.into();
        move |source| SbomError::Io { path, source }
    }
}

//! Errors of audits.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] cas_store::StoreError),
    #[error(transparent)]
    Build(#[from] cas_builder::BuildError),
    #[error("{what} {digest} is not in the store {store}")]
    NotInStore {
        what: &'static str,
        digest: String,
        store: String,
    },
    #[error("the manifest {digest} is malformed at byte {offset}: {reason}")]
    BadManifest {
        digest: String,
        offset: usize,
        reason: String,
    },
    #[error("{element} is not built: {reason}")]
    NotBuilt { element: String, reason: String },
    #[error("{element} failed to build: {reason}")]
    BuildFailed { element: String, reason: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

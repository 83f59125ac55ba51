//! The worker's errors. An error of one Action becomes that lease's status
//! (the build that sent it sees the message); an error of the session
//! makes the worker reconnect.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Remote(#[from] cas_store::RemoteError),

    #[error(transparent)]
    Store(#[from] cas_store::StoreError),

    #[error(transparent)]
    Sandbox(#[from] cas_sandbox::SandboxError),

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// The Action, its Command or its input root is not acceptable.
    #[error("the action is invalid: {0}")]
    Invalid(String),

    #[error("{0}")]
    Session(String),
}

impl WorkerError {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> WorkerError {
        let path = path.to_path_buf();
        move |source| WorkerError::Io { what, path, source }
    }
}

pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

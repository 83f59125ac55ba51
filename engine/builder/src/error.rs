//! Errors of the build engine. Messages name the element and the paths.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] cas_store::StoreError),
    #[error(transparent)]
    Sandbox(#[from] cas_sandbox::SandboxError),
    #[error("{element}: {source}")]
    Source {
        element: String,
        source: cas_sources::SourceError,
    },
    #[error("{element}: cannot be built: {reasons}")]
    Unsupported { element: String, reasons: String },
    #[error("{element}: its dependencies conflict ({count} path(s)): {message}")]
    Conflict {
        element: String,
        count: usize,
        message: String,
    },
    #[error("{element}: the element has commands but its sysroot has no /bin/sh; add a base element that provides a shell to its build-depends")]
    NoShell { element: String },
    #[error("{element}: {what} `{path}`: {source}")]
    Io {
        element: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{element}: command failed with {status} (phase {phase}): {command}")]
    CommandFailed {
        element: String,
        phase: String,
        command: String,
        status: String,
        /// The command's exit code, when it exited (not killed).
        exit_code: Option<i32>,
    },
    #[error("{element}: interrupted")]
    Interrupted { element: String },
    #[error("{element}: bad split rule `{pattern}`: {message}")]
    SplitRule {
        element: String,
        pattern: String,
        message: String,
    },
    #[error("{element}: {message}")]
    Other { element: String, message: String },
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

pub(crate) fn io(
    element: &str,
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let element = element.to_owned();
    let path = path.into();
    move |source| BuildError::Io {
        element,
        what,
        path,
        source,
    }
}

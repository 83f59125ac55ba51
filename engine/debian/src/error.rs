//! Errors of reading indexes and resolving package sets.

/// What went wrong, naming the file or package concerned.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("{file}:{line}: {reason}")]
    Syntax {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("{file}: no entry for {path} in its SHA256 list")]
    NotInRelease { file: String, path: String },
    #[error("{path}: SHA-256 {actual} does not match {expected} listed in {release}")]
    IndexMismatch {
        path: String,
        release: String,
        expected: String,
        actual: String,
    },
    #[error("unknown package `{name}`{hint}")]
    Unknown { name: String, hint: String },
    #[error("{package} {version} needs `{relation}`, which nothing in the index satisfies{hint}")]
    Unsatisfiable {
        package: String,
        version: String,
        relation: String,
        hint: String,
    },
}

//! `cas-package`: binary packages of built outputs, reproducibly.
//!
//! - [`control`]: a package's control stanza (name, version, architecture,
//!   dependencies), and the rules names and versions must follow.
//! - [`ar`]: the `ar` container both formats use.
//! - [`write`]: a `.deb` or `.ipk` of one output tree: fixed timestamps,
//!   owners and order, so the same tree gives the same bytes.
//! - [`feed`]: a directory of packages with its `Packages` index, for `apt`
//!   (a flat repository) or `opkg`.
//!
//! The crate knows nothing of elements: the command line turns an element
//! and its runtime dependencies into [`control::Control`]s (spec/cli.md).

pub mod ar;
pub mod control;
pub mod feed;
pub mod write;

pub use control::{Control, Format};
pub use write::package;

/// The mtime of every member and entry: `SOURCE_DATE_EPOCH` of builds
/// (1980-01-01, spec/keys.md).
pub const EPOCH: u64 = 315_532_800;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Store(#[from] cas_store::StoreError),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

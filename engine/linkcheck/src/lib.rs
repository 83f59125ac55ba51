//! `cas-linkcheck`: do the ELF files of an output find their libraries?
//!
//! After a build, every `DT_NEEDED` library (and the `PT_INTERP` loader) of
//! an element's ELF files must be found in its *runtime closure*: its own
//! output and the outputs of its runtime dependencies, in the directories
//! the dynamic loader searches (the file's `RUNPATH`/`RPATH`, the
//! `ld.so.conf` of the closure, the usual library directories). A library
//! found only in a build dependency, or nowhere, is a problem: the program
//! would not start where the element is installed (spec/format.md, checks).
//!
//! - [`elf`]: what an ELF file asks of the loader.
//! - [`tree`]: paths of stored trees looked up lazily, and a union of
//!   trees that resolves paths through symlinks.
//! - [`check`]: the check itself, over labelled trees.
//! - [`verdict`]: its result and the recorded encoding (spec/store.md).

pub mod check;
pub mod elf;
pub mod tree;
pub mod verdict;

pub use check::{check, Inputs, Labelled};
pub use tree::Indexes;
pub use verdict::{Found, Problem, Verdict};

/// What can go wrong reading the store.
#[derive(Debug, thiserror::Error)]
pub enum LinkCheckError {
    #[error(transparent)]
    Store(#[from] cas_store::StoreError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("malformed libraries verdict: {0}")]
    Malformed(String),
}

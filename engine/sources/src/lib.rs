//! Sources: fetch, verify, cache and stage what a build needs.
//!
//! - [`spec`]: the data model of sources as written in element files.

pub mod spec;

pub use spec::{Checksum, Source, SourceKind, SourceUrl};

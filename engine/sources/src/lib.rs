//! Sources: fetch, verify, cache and stage what a build needs.
//!
//! - [`spec`]: the data model of sources as written in element files.
//! - [`identity`]: the network-free bytes that build keys hash (spec/sources.md).
//! - [`checksum`]: streaming sha256 / blake3.
//! - [`fetch`]: mirrors, downloads with timeouts, retries, resume, verification.
//! - [`cache`]: the [`SourceCache`] trait, [`DirCache`], [`fetch_source`].
//! - [`archive`]: hostile-safe tar extraction (cap-std), compression detection.
//! - [`zipfile`]: zip archives, staged with the same rules.
//! - [`deb`]: `ar` reader and Debian package extraction.
//! - [`cargo`]: vendoring Rust crates from a registry.
//! - [`git`]: bare mirrors, staging a commit, resolving a tracked branch.
//! - [`host`]: host-side helpers (git, patch) with a clean environment.
//! - [`patch`]: applying patches with `patch(1)`.
//! - [`stage`]: staging any source into a build root.
//! - [`track`]: new pinned values for `cas source track`.
//! - [`error`]: the one error type, [`SourceError`].

pub mod archive;
pub mod cache;
pub mod cargo;
pub mod checksum;
pub mod deb;
pub mod error;
pub mod fetch;
pub mod git;
pub mod host;
pub mod identity;
pub mod patch;
pub mod spec;
pub mod stage;
pub mod track;
pub mod zipfile;

pub use cache::{fetch_identity, fetch_source, needs_fetch, DirCache, Fetched, SourceCache};
pub use checksum::Algorithm;
pub use error::{Result, SourceError};
pub use fetch::{Download, Fetcher, FetcherConfig, Mirrors, NoProgress, Progress};
pub use git::resolve_track;
pub use identity::{identity, identity_digest, BoxError};
pub use spec::{Checksum, Crate, LocalInput, Source, SourceKind, SourceUrl};
pub use stage::{remote_filename, stage_source};
pub use track::{track, Tracked};

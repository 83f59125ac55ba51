//! `cas-store`: the immutable, self-verifying content store (spec/store.md).
//!
//! - [`digest`]: blake3 digests, typed (`BlobDigest`, `TreeDigest`, `ActionKey`).
//! - [`tree`]: the canonical tree encoding.
//! - [`store`]: opening a store, locks ([`lock`]); [`layout`]: the name of
//!   every directory in it.
//! - [`blob`]: immutable objects and their mode variants.
//! - [`walk`]: trees in the store: put, get, walk.
//! - [`ingest`]: a directory → a tree (parallel hashing, move or copy).
//! - [`materialize`]: a tree → a directory (reflink, hardlink or copy).
//! - [`view`]: merging trees and cached read-only views.
//! - [`action_cache`]: action results, pins, source index (SQLite); [`refs`]: named refs;
//!   [`notes`]: named blobs recorded beside a result (not part of its key).
//! - [`verify`], [`gc`]: integrity and garbage collection.
//! - [`archive`]: deterministic tar export, tar import.
//! - [`remote`]: remote artifact caches (HTTP, directory), signed results, transfers.
//!
//! The store knows nothing of elements or YAML.

pub mod action_cache;
pub mod archive;
pub mod blob;
pub mod digest;
mod durable;
pub mod error;
pub mod gc;
pub mod ingest;
mod inventory;
pub mod layout;
pub mod lock;
pub mod materialize;
pub mod memo;
pub mod notes;
pub mod refs;
pub mod remote;
mod statcache;
pub mod stats;
pub mod store;
pub mod tree;
pub mod verify;
pub mod view;
pub mod walk;

pub use action_cache::ActionResult;
pub use blob::IngestMode;
pub use digest::{ActionKey, BlobDigest, Digest, TreeDigest};
pub use durable::Durable;
pub use error::StoreError;
pub use gc::{parse_size, GcOptions, GcReport};
pub use ingest::IngestReport;
pub use layout::Layout;
pub use lock::{KeyLock, StoreLock};
pub use materialize::Method;
pub use memo::MemoHit;
pub use refs::RefEntry;
pub use remote::{Remote, RemoteError};
pub use stats::Stats;
pub use store::Store;
pub use tree::{Entry, EntryKind, Tree};
pub use verify::VerifyReport;
pub use view::{remove_tree, Conflict, Merged, Overwrite, View};

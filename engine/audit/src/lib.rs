//! `cas-audit`: reproducibility audits over the content store.
//!
//! - [`diff`]: two trees, path by path (type, mode, size, digest), and for a
//!   changed file what differs inside it ([`content`]):
//!   - [`text`]: a bounded unified diff;
//!   - [`elf`]: which ELF sections (and symbols) differ;
//!   - [`ar`]: which `ar` members differ (ELF members compared as ELF);
//!   - [`archive`]: tar members and headers, gzip headers and content.
//! - [`check`]: rebuild a step (or its closure) and compare outputs (`cas check`).
//! - [`explain`]: why a key changed, down to the root cause (`cas explain`).
//! - [`challenge`]: compare local outputs with a remote's (`cas challenge`).
//! - [`error`]: the `AuditError` type.
//!
//! Every reader here takes untrusted bytes: nothing panics on malformed input,
//! and every output is bounded in size.

pub mod ar;
pub mod archive;
pub mod challenge;
pub mod check;
pub mod content;
pub mod diff;
pub mod elf;
pub mod error;
pub mod explain;
pub mod text;

pub use error::AuditError;

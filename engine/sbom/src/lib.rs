//! What a product team ships beside its image, made from what cas recorded
//! about a built closure (spec/sbom.md):
//!
//! - [`model`]: the closure as recorded: each element's key, output and
//!   result times, its edges, and every upstream it was made from (sources
//!   with their checksums or commits, Debian packages with their control
//!   fields and copyright files);
//! - [`debian`]: what a `.deb` of the source cache says about itself;
//! - [`ids`]: the names every document gives an element or a source
//!   (identifiers, package URLs, suppliers);
//! - [`files`]: an output's regular files with their SHA-1 and SHA-256;
//! - [`legal`]: licences (declared `license:`, Debian's machine-readable
//!   copyright files) and `cas legal-info`'s manifest and source archive;
//! - [`spdx`]: the SPDX 2.3 JSON document;
//! - [`spdx3`]: the SPDX 3.0.1 JSON-LD document;
//! - [`cyclonedx`]: the CycloneDX 1.6 JSON document;
//! - [`attest`]: the in-toto Statement with the SLSA Provenance v1
//!   predicate, in a DSSE envelope signed with a `cas keygen` key;
//! - [`time`]: result times as RFC 3339 (never the clock).
//!
//! Every document is a function of the closure: the same closure gives the
//! same bytes (JSON objects with sorted members, arrays in closure order).

pub mod attest;
pub mod cyclonedx;
pub mod debian;
pub mod error;
pub mod files;
pub mod ids;
pub mod legal;
pub mod model;
pub mod spdx;
pub mod spdx3;
pub mod time;

pub use error::SbomError;
pub use model::{Closure, Edge, Element, Upstream};

/// A JSON document as cas writes it: pretty-printed, members sorted, one
/// final newline.
pub fn to_bytes(value: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("a JSON value always serialises");
    out.push(b'\n');
    out
}

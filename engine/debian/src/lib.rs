//! Debian's archive, read the way dpkg and APT read it, for pinning package
//! sets (`cas deb lock`, spec/debian.md):
//!
//! - [`control`]: deb822 stanzas (`Field: value`, continuation lines).
//! - [`version`]: version ordering (epoch, upstream, revision; `~` sorts
//!   before everything), and relation operators.
//! - [`relation`]: `Depends:`-style fields: groups of alternatives.
//! - [`index`]: a suite's `Release` (checksums of its indexes) and a
//!   `Packages` index.
//! - [`resolve`]: the `Depends`/`Pre-Depends` closure of requested
//!   packages, every choice deterministic.

pub mod control;
pub mod error;
pub mod index;
pub mod relation;
pub mod resolve;
pub mod version;

pub use error::DebianError;
pub use index::{Package, Packages, Release};
pub use resolve::{resolve, Request, Resolution};
pub use version::Version;

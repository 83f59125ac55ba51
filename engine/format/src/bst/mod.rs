//! BuildStream 2 projects, read next to cas's own format (spec/format.md,
//! "From BuildStream"): `project.conf`, `.bst` elements, options and the
//! directives. Everything here turns BuildStream's shapes into cas's; the
//! rest of the loader is shared.
//!
//! - `expr`: the expressions of `(?)` conditionals
//! - `options`: declared options, values from outside, exported variables
//! - `directives`: `(@)`, `(?)`, composition and list directives
//! - `includes`: the included files of a load
//! - `project`: `project.conf`
//! - `element`: a `.bst` element translated to cas's shape
#![allow(
    clippy::single_match_else,
    reason = "decisions between a value and an error read best as two arms"
)]

mod directives;
mod element;
pub mod expr;
mod includes;
pub mod options;
mod project;

pub(crate) use directives::reject_in_cas_project;
pub(crate) use element::translate;
pub use includes::INCLUDE_BASE;
pub(crate) use includes::{Includes, WithIncludes};
pub use options::Given;
pub(crate) use project::{decode as decode_project, include_fn, BstProject, JunctionRoots};

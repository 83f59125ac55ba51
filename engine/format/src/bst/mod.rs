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

pub(crate) use directives::{apply as apply_list_directives, is_directive, reject_in_cas_project};
pub(crate) use element::{translate, Extra};
pub use includes::INCLUDE_BASE;
pub(crate) use includes::{Includes, WithIncludes};
pub use options::Given;
pub(crate) use project::{decode as decode_project, include_fn, BstProject, JunctionRoots};

use crate::yaml::{Node, Value};

/// BuildStream strips every string value it reads (its `ScalarNode`
/// keeps `value.strip()`): a block scalar's final newline, and the blank
/// lines around it, are not part of the value. Applied to every file of a
/// BuildStream project (project.conf, elements, includes) and to the
/// defaults of the BuildStream kinds, before anything reads them.
pub(crate) fn strip_scalars(node: &mut Node) {
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        match &mut n.value {
            Value::Scalar(s, _) => {
                let t = s.trim();
                if t.len() != s.len() {
                    *s = t.to_string();
                }
            }
            Value::Seq(items) => todo.extend(items.iter_mut()),
            Value::Map(m) => todo.extend(m.entries.iter_mut().map(|(_, v)| v)),
            Value::Null => {}
        }
    }
}

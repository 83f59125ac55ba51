//! cas-format: projects, element files, kinds, variables, the dependency
//! graph and their diagnostics. The format is specified in spec/format.md.
//!
//! - `yaml`: the only YAML code: a spanned node tree over saphyr-parser
//! - `diagnostics`: located errors (miette), all collected in one run
pub mod diagnostics;
pub mod yaml;

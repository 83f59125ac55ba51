//! cas-format: projects, element files, kinds, variables, the dependency
//! graph and their diagnostics. The format is specified in spec/format.md.
//!
//! - [`load`]: the entry point: targets → [`Loaded`] (or all the [`Diagnostics`])
//! - `yaml`: the only YAML code: a spanned node tree over saphyr-parser
//! - `read`: typed reading of that tree, unknown keys, list composition
//! - `project`: `project.yaml`
//! - `kind`: kinds as data (`elements/*.yaml`, project kinds), behaviours
//! - `variables`: `%{name}` expansion, layering, `%{max-jobs}`
//! - `source`: `sources:` entries → `cas_sources::Source`
//! - `element`: element files → [`Element`]
//! - [`settings`]: an element's `config:` as its behaviour reads it, and
//!   what the loader asks of the behaviours ([`Behaviours`])
//! - `data`: plain data and its YAML as BuildStream shows an element (`show --format`)
//! - `graph`: cycles, closures, staging order
//! - `shown`: an element as `show --format` prints it (BuildStream's order and fields)
//! - `diagnostics`: located errors (miette), all collected in one run
//! - `bst`: BuildStream 2 projects (`project.conf`, `.bst`, options, directives)
//! - `workspaces`: open workspaces (`.cas/workspaces.json`): sources replaced by a directory

pub mod bst;
pub mod config;
pub mod data;
pub mod diagnostics;
pub mod edit;
pub mod element;
mod graph;
pub mod kind;
mod load;
pub mod project;
mod read;
pub mod settings;
mod shown;
mod source;
pub mod variables;
pub mod workspaces;
pub mod yaml;

pub use data::Data;
pub use diagnostics::{Diagnostics, Error, FileId, FileSeen, Files, SourceFile, Span};
pub use element::{Checks, DepKind, Element, ElementId, Origin, Public, SandboxConfig, Severity};
pub use kind::{Behaviour, Kind};
pub use load::{
    host_arch, load, load_project, load_with, Input, JunctionSources, LoadOptions, Loaded, Read,
    MAX_FILE_SIZE,
};
pub use project::{Dialect, Project};
pub use settings::{Behaviours, Config, LoadCheck, Setting};
pub use shown::{shown_config, shown_env, shown_vars, DepScope};
pub use source::SOURCE_KINDS;

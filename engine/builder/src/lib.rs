//! `cas-builder`: turning loaded elements into stored outputs.
//!
//! - [`keys`]: action keys and input manifests (spec/keys.md).
//! - [`plan`]: the one place keys are derived: a closure walked in order,
//!   each element and its staged outputs turned into key inputs and a key.
//! - [`kinds`]: behaviours, one module each (a [`kinds::Kind`]), their
//!   registry, and the [`kinds::Stage`] they assemble through.
//! - [`memo`]: the no-op memo of `cas build` (what a load read, unchanged).
//! - [`step`]: one step: cache lookup, staging, sandbox, ingest, record.
//! - [`run`]: a whole run ([`build`]); [`report`]: what it reports.
//! - [`states`]: keys and states without building ([`states()`]), `cas shell`.
//! - [`scheduler`]: the parallel DAG runner.
//! - [`checks`]: checks of built outputs (the libraries check), after the steps.
//! - [`provenance`]: what a compose was made of, recorded with its result.
//! - [`variables_note`]: the variables a step was built with, recorded with its result.
//! - [`record`]: recording built results in the background (group commit).
//! - [`sources`]: the source cache over the store, local-source digests,
//!   and the source vocabulary of the command line.
//! - [`sandbox`]: whether a sandbox runs here, how a shell in one ended.
//! - [`snapshot`]: local sources and workspaces staged from the snapshot their key names.
//! - [`junctions`]: subprojects of BuildStream junctions from fetched sources.
//! - [`sysroot`]: a step's read-only `/`: one merged view, or an overlay of
//!   its dependencies' own views.
//! - [`split`]: split-rule filtering and tree placement (compose, script).
//! - [`builddir`]: build directories and the last failed build.
//! - [`workspace`]: incremental builds of elements with an open workspace.
//! - [`progress`]: progress on stderr.
//! - [`error`]: the crate's error type, [`BuildError`].

pub mod builddir;
pub mod checks;
pub mod error;
mod escape;
pub mod junctions;
pub mod keys;
pub mod kinds;
pub mod memo;
pub mod plan;
pub mod progress;
pub mod provenance;
pub mod record;
pub mod remote;
pub mod remote_exec;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scheduler;
pub mod snapshot;
pub mod sources;
pub mod split;
pub mod states;
pub mod step;
pub mod sysroot;
pub mod variables_note;
pub mod workspace;

pub use error::BuildError;
pub use progress::{ColorChoice, Console, Reporter};
pub use run::{build, BuildOptions, BuildReport, ElementReport};
pub use states::{shell, states, Planned, State};
pub use step::{ElementStatus, Status};

//! The one black-box integration-test binary: every test runs the real `cas`
//! binary on files made in its own temporary directory (see `ctx`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they skip and measured"
)]

mod ctx;

mod audit;
mod bst;
mod bst_conformance;
mod build;
mod buildgrid;
mod cross;
mod format;
mod golden;
mod hostile;
mod hostile_remote;
mod hostile_slow_remote;
mod hostile_sources;
mod hostile_worker;
mod integrity;
mod kinds;
mod noop;
mod reapi;
mod remote;
mod reproducible;
mod sbom;
mod sources;
mod store;
mod systems;
mod toolchain;
mod tracking;
mod workspace;

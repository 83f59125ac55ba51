//! The one black-box integration-test binary: every test runs the real `cas`
//! binary on files made in its own temporary directory (see `ctx`).

mod ctx;

mod build;
mod format;
mod kinds;
mod sources;
mod audit;
mod store;
mod toolchain;
mod remote;

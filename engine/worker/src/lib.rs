//! `cas-worker`: `cas worker`, a bot for a REAPI scheduler that speaks the
//! Remote Workers API (BuildGrid): it takes leases, runs each Action in
//! bubblewrap with its input root as `/`, uploads the outputs and reports
//! the ActionResult. A farm is the scheduler plus one `cas worker` per
//! machine. spec/remote.md, "Workers".
//!
//! - [`bots`]: the Bots API messages and calls.
//! - [`session`]: the bot session loop ([`serve`]): leases in, results out,
//!   reconnecting when the server goes away, terminating on stop.
//! - [`action`]: one Action, run in the sandbox.
//! - [`input`]: an input root from the server's CAS into the store.
//! - [`lower`]: that root shown to the Action as cached read-only layers
//!   under a writable one (an overlay), not copied.
//! - [`error`]: the error type, [`WorkerError`].

pub mod action;
pub mod bots;
pub mod error;
pub mod input;
pub mod lower;
pub mod session;

pub use error::WorkerError;
pub use session::{serve, Options};

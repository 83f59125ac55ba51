//! What the command line needs of the sandbox (spec/sandbox.md): whether
//! one can run here, and how a shell in one ended. Steps run in it through
//! the builder, never directly.

pub use cas_sandbox::{check_available, Exit};

//! `cas-sandbox`: runs a build step's commands inside bubblewrap (`bwrap`).
//!
//! The contract (what a command can see and do) is written down in
//! `spec/sandbox.md`; it is part of what a build key stands for.
//!
//! - [`spec`]: what a sandbox is made of ([`SandboxSpec`], [`Mount`]).
//! - [`layers`]: a sysroot of ordered layers read as one tree ([`Layers`]).
//! - [`overlay`]: mounting those layers as one read-only overlay in the
//!   sandbox's own namespaces ([`overlay_supported`]), or as a writable root
//!   whose changes go to a layer of their own ([`WritableLayer`]).
//! - [`layout`]: how the read-only sysroot and the mount points become
//!   bwrap operations, including mount points the sysroot lacks.
//! - [`args`]: how a spec's `/` is made (the plan both backends follow), and
//!   the complete bwrap command line for it.
//! - [`native`]: the same sandbox made by cas itself with one `clone`, for
//!   builds ([`native::supported`]).
//! - [`run`]: running a command ([`run()`], [`Io`], [`Outcome`]).
//! - [`seccomp`]: the system-call filter every step runs under.
//! - [`cancel`]: stopping running sandboxes from another thread ([`Cancel`]).
//! - [`check`]: preflight checks ([`check_available`], [`check_shell`]).
//! - [`probes`]: probe results remembered per store and kernel.
//! - [`emulator`]: foreign-architecture sysroots through binfmt_misc (qemu-user):
//!   the host's registration, or one cas makes in the sandbox.
//! - [`userns`]: the namespaces cas enters before bwrap (overlay, binfmt_misc).
//! - [`shell`]: how build commands become an argv: one ([`shell_argv`]), or
//!   all of a step in one sandbox ([`script_argv`]).
//! - [`error`]: the error type, [`SandboxError`].

pub mod args;
pub mod cancel;
pub mod check;
pub mod emulator;
pub mod error;
pub mod layers;
pub mod layout;
pub mod native;
pub mod overlay;
pub mod probes;
pub mod run;
pub mod seccomp;
pub mod shell;
pub mod spec;
pub(crate) mod userns;

pub use args::{bwrap_args, Session};
pub use cancel::Cancel;
pub use check::{bwrap_path, check_available, check_shell, check_shell_in};
pub use error::SandboxError;
pub use layers::Layers;
pub use overlay::{overlay_options, overlay_options_with, overlay_supported};
pub use probes::cached as cached_probe;
pub use run::{run, Exit, Io, Outcome};
pub use shell::{failed_command, script_argv, shell_argv, SHELL};
pub use spec::{Mount, SandboxSpec, WritableLayer, DEFAULT_HOSTNAME, UMASK};

//! Everything that can go wrong around a sandbox (not inside it: a command
//! that fails is an [`Outcome`](crate::Outcome), not an error).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bubblewrap (`bwrap`) was not found in PATH ({path}); cas runs every build step in a \
         bwrap sandbox: install it with `apt-get install bubblewrap`"
    )]
    BwrapNotFound { path: String },

    #[error(
        "bwrap ({bwrap}) cannot create a user namespace: {detail}\nenable unprivileged user \
         namespaces (`sysctl -w kernel.unprivileged_userns_clone=1` and a non-zero \
         `user.max_user_namespaces`), or run cas where they are allowed"
    )]
    UsernsDisabled { bwrap: PathBuf, detail: String },

    #[error("bwrap ({bwrap}) does not work here: {detail}")]
    BwrapBroken { bwrap: PathBuf, detail: String },

    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot set up the sandbox's system-call filter: {message}")]
    Seccomp { message: String },

    #[error("waiting for the sandbox (bwrap pid {pid}) failed: {source}")]
    Wait { pid: i32, source: std::io::Error },

    #[error(
        "the sysroot {root} has no usable /bin/sh ({reason}); elements with commands run each \
         one as `sh -e -c`: add an element providing /bin/sh (for example a busybox base) to \
         the build-dependencies"
    )]
    NoShell { root: PathBuf, reason: String },

    #[error("the sysroot {root} does not exist or is not a directory")]
    RootMissing { root: PathBuf },

    #[error("cannot read {path} in the sysroot: {source}")]
    ReadRoot {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot use {host} as the source of the sandbox mount {sandbox}: {source}")]
    MountSource {
        host: PathBuf,
        sandbox: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "the mount point {sandbox} goes through {found}, which is a symbolic link or not a \
         directory in the sysroot {root}; mount points must be real directory paths"
    )]
    MountThroughLink {
        root: PathBuf,
        sandbox: PathBuf,
        found: PathBuf,
    },

    #[error("invalid sandbox path {path}: {why}")]
    InvalidPath { path: PathBuf, why: &'static str },

    #[error("the mount point {path} is given twice")]
    DuplicateMount { path: PathBuf },

    #[error("invalid sandbox environment variable {name:?}: {why}")]
    InvalidEnv { name: String, why: &'static str },

    #[error("a sandbox needs a command to run (the argv is empty)")]
    EmptyArgv,

    #[error(
        "a writable sysroot cannot be made of layers (mount point {root}); give one private \
         copy instead"
    )]
    WritableLayers { root: PathBuf },

    #[error(
        "cannot mount the sysroot's {count} layers as one overlay: {why}; cas shows such \
         sysroots as one merged view instead"
    )]
    OverlayLayers { count: usize, why: String },

    #[error(
        "cannot mount the sysroot overlay on {root} ({source}); set CAS_SANDBOX_OVERLAY=0 to \
         stage merged views instead"
    )]
    Overlay {
        root: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "cannot register the emulator for the foreign sysroot {} in the sandbox's own binfmt_misc: {source}",
        root.display()
    )]
    Emulator {
        root: PathBuf,
        source: std::io::Error,
    },

    #[error("could not set up the sandbox: {message}")]
    Setup { message: String },

    #[error("cannot prepare the sandbox log: {source}")]
    Log { source: std::io::Error },
}

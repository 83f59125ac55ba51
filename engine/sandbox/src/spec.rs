//! What a sandbox is made of. Every field is an input of the build key (except
//! the host paths, which only say where things live on this machine).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::error::SandboxError;

/// The fixed host name inside every sandbox unless a spec says otherwise.
pub const DEFAULT_HOSTNAME: &str = "cas";

/// The umask every command starts with (fixed: it is part of the contract).
pub const UMASK: u32 = 0o022;

/// One bind mount: `host` appears at `sandbox`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// An existing host directory (or file).
    pub host: PathBuf,
    /// Absolute path inside the sandbox. It need not exist in the sysroot.
    pub sandbox: PathBuf,
    /// Writable, or read-only.
    pub writable: bool,
}

impl Mount {
    pub fn writable(host: impl Into<PathBuf>, sandbox: impl Into<PathBuf>) -> Mount {
        Mount {
            host: host.into(),
            sandbox: sandbox.into(),
            writable: true,
        }
    }

    pub fn read_only(host: impl Into<PathBuf>, sandbox: impl Into<PathBuf>) -> Mount {
        Mount {
            host: host.into(),
            sandbox: sandbox.into(),
            writable: false,
        }
    }
}

/// A complete description of one sandbox (see `spec/sandbox.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The sysroot view, shown read-only as `/` (unless `root_writable`).
    /// With `layers`, an empty directory that their union is mounted on,
    /// inside the sandbox's namespaces only.
    pub root: PathBuf,
    /// A sysroot made of several read-only directories (views of dependency
    /// outputs), topmost first, shown as one tree by an overlay mount in a
    /// private user and mount namespace (see [`crate::overlay`]). Empty: the
    /// sysroot is `root` itself.
    pub layers: Vec<PathBuf>,
    /// Bind `root` writable as `/` instead: for a private copy only (compose
    /// integration, script elements with a writable root), never for a view
    /// that shares inodes with the store. Mount points missing from it are
    /// created for the run and removed again afterwards.
    pub root_writable: bool,
    /// Extra binds (build root, install root, ...), applied parents first.
    pub mounts: Vec<Mount>,
    /// The complete environment: nothing else is inherited.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the sandbox (must exist there).
    pub cwd: PathBuf,
    pub hostname: String,
    pub uid: u32,
    pub gid: u32,
    /// false: a private network namespace with only a loopback interface.
    pub network: bool,
    /// An emulator cas registers in the sandbox's own binfmt_misc instance
    /// (a foreign sysroot that no host registration runs; see
    /// [`crate::emulator`]).
    pub binfmt: Option<crate::emulator::Registration>,
    /// With `layers`: the union is mounted writable, every change going
    /// into this layer's `upper` directory (overlayfs's upperdir and workdir,
    /// both empty directories on one file system), and `root` is bound
    /// writable as `/`. The layers themselves are never written. For a
    /// private root that must not cost a copy (the worker's input roots).
    pub upper: Option<WritableLayer>,
}

/// The writable top of a layered root (see [`SandboxSpec::upper`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritableLayer {
    /// Receives every change: new files, copied-up files, whiteouts.
    pub upper: PathBuf,
    /// overlayfs's scratch directory (same file system as `upper`).
    pub work: PathBuf,
}

impl SandboxSpec {
    /// A spec with the defaults: no mounts, empty environment, cwd `/`,
    /// hostname `cas`, uid/gid 0, no network.
    pub fn new(root: impl Into<PathBuf>) -> SandboxSpec {
        SandboxSpec {
            root: root.into(),
            layers: Vec::new(),
            root_writable: false,
            mounts: Vec::new(),
            env: BTreeMap::new(),
            cwd: PathBuf::from("/"),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            uid: 0,
            gid: 0,
            network: false,
            binfmt: None,
            upper: None,
        }
    }

    /// Checks what can be checked without touching the file system.
    pub fn validate(&self) -> Result<(), SandboxError> {
        if self.root_writable && !self.layers.is_empty() {
            return Err(SandboxError::WritableLayers {
                root: self.root.clone(),
            });
        }
        if self.upper.is_some() && (self.layers.is_empty() || self.root_writable) {
            return Err(SandboxError::OverlayLayers {
                count: self.layers.len(),
                why: "a writable layer needs read-only layers below it and an empty root \
                      to mount on"
                    .into(),
            });
        }
        check_sandbox_path(&self.cwd, false)?;
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.mounts {
            check_sandbox_path(&m.sandbox, true)?;
            if !seen.insert(m.sandbox.clone()) {
                return Err(SandboxError::DuplicateMount {
                    path: m.sandbox.clone(),
                });
            }
        }
        for name in self.env.keys() {
            if name.is_empty() {
                return Err(SandboxError::InvalidEnv {
                    name: name.clone(),
                    why: "empty name",
                });
            }
            if name.contains('=') || name.contains('\0') {
                return Err(SandboxError::InvalidEnv {
                    name: name.clone(),
                    why: "contains '=' or NUL",
                });
            }
        }
        for value in self.env.values() {
            if value.contains('\0') {
                return Err(SandboxError::InvalidEnv {
                    name: value.clone(),
                    why: "value contains NUL",
                });
            }
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 || self.hostname.contains('\0') {
            return Err(SandboxError::InvalidPath {
                path: PathBuf::from(&self.hostname),
                why: "a host name has 1 to 64 characters",
            });
        }
        Ok(())
    }
}

/// Paths the sandbox itself provides: mounts may not go there.
pub(crate) const RESERVED: [&str; 2] = ["/proc", "/dev"];

/// A sandbox path is absolute and normal: no `.`, no `..`, no trailing
/// oddities. Mount points additionally may not be `/`, `/proc` or `/dev`.
pub(crate) fn check_sandbox_path(path: &Path, mount_point: bool) -> Result<(), SandboxError> {
    let bad = |why| {
        Err(SandboxError::InvalidPath {
            path: path.to_owned(),
            why,
        })
    };
    if !path.is_absolute() {
        return bad("not absolute");
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return bad("contains NUL");
    }
    for c in path.components() {
        match c {
            Component::RootDir | Component::Normal(_) => {}
            _ => return bad("contains `.` or `..`"),
        }
    }
    if mount_point {
        if path.components().count() == 1 {
            return bad("cannot mount over `/` (it is the sysroot)");
        }
        if RESERVED.iter().any(|r| path.starts_with(r)) {
            return bad("/proc and /dev are provided by the sandbox");
        }
    }
    Ok(())
}

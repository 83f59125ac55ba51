//! The complete bwrap command line for a [`SandboxSpec`]. Its order matters:
//! namespaces and identity, the read-only sysroot ([`crate::layout`]), the
//! mounts parents first, `--remount-ro /`, then the working directory and
//! the command.

use std::ffi::OsString;
use std::path::Path;

use crate::error::SandboxError;
use crate::layers::Layers;
use crate::layout::{plan_layers, plan_root, Op, Target};
use crate::spec::SandboxSpec;

/// How the process that runs the command relates to the caller's terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// `--new-session`: the command cannot reach the caller's terminal
    /// (no TIOCSTI injection, no job control). For builds.
    New,
    /// Keep the caller's session: for interactive shells only.
    Shared,
}

/// The mounts of a sandbox, in the order they must be made (parents first).
#[derive(Clone, Debug)]
pub(crate) enum MountOp {
    Bind {
        host: std::path::PathBuf,
        dest: std::path::PathBuf,
        writable: bool,
    },
    Proc,
    Dev,
    Tmp,
}

impl MountOp {
    pub(crate) fn dest(&self) -> &Path {
        match self {
            MountOp::Bind { dest, .. } => dest,
            MountOp::Proc => Path::new("/proc"),
            MountOp::Dev => Path::new("/dev"),
            MountOp::Tmp => Path::new("/tmp"),
        }
    }
}

/// How a sandbox's `/` is made, whichever backend makes it: bwrap (its
/// command line, [`bwrap_args`]) or cas itself (`crate::native`).
pub(crate) struct Plan {
    /// `spec.root` is bound writable as `/` (else `/` is a tmpfs made
    /// read-only after every mount).
    pub(crate) writable_root: bool,
    /// The read-only sysroot on the tmpfs `/` ([`crate::layout`]).
    pub(crate) root_ops: Vec<Op>,
    /// Then the mounts, parents first.
    pub(crate) mounts: Vec<MountOp>,
}

/// The plan of `spec`'s `/` for running `argv`, checked (see
/// [`SandboxSpec::validate`]; `argv` may not be empty).
pub(crate) fn plan(spec: &SandboxSpec, argv: &[String]) -> Result<Plan, SandboxError> {
    spec.validate()?;
    if argv.is_empty() {
        return Err(SandboxError::EmptyArgv);
    }
    let mut mounts = vec![MountOp::Proc, MountOp::Dev];
    if !spec.mounts.iter().any(|m| m.sandbox == Path::new("/tmp")) {
        mounts.push(MountOp::Tmp);
    }
    let mut targets: Vec<Target> = mounts
        .iter()
        .map(|m| Target {
            path: m.dest().to_owned(),
            dir: true,
        })
        .collect();
    for m in &spec.mounts {
        let meta = std::fs::metadata(&m.host).map_err(|source| SandboxError::MountSource {
            host: m.host.clone(),
            sandbox: m.sandbox.clone(),
            source,
        })?;
        targets.push(Target {
            path: m.sandbox.clone(),
            dir: meta.is_dir(),
        });
        mounts.push(MountOp::Bind {
            host: m.host.clone(),
            dest: m.sandbox.clone(),
            writable: m.writable,
        });
    }
    // Parents before children (a stable sort keeps the given order among
    // mounts of the same depth).
    mounts.sort_by_key(|m| m.dest().components().count());
    let writable_root = spec.root_writable || spec.upper.is_some();
    let root_ops = if writable_root {
        if !spec.root.is_dir() {
            return Err(SandboxError::RootMissing {
                root: spec.root.clone(),
            });
        }
        Vec::new()
    } else if spec.layers.len() == 1 {
        plan_root(&spec.layers[0], &targets)?
    } else if spec.layers.is_empty() {
        plan_root(&spec.root, &targets)?
    } else {
        plan_layers(&spec.root, Layers::new(&spec.layers), &targets)?
    };
    Ok(Plan {
        writable_root,
        root_ops,
        mounts,
    })
}

/// Arguments for bwrap (without the program name), ending with `--` and
/// `argv`. `status_fd`: passed as `--json-status-fd`.
pub fn bwrap_args(
    spec: &SandboxSpec,
    argv: &[String],
    session: Session,
    status_fd: Option<i32>,
) -> Result<Vec<OsString>, SandboxError> {
    let Plan {
        writable_root,
        root_ops,
        mounts,
    } = plan(spec, argv)?;

    let mut a = Args::default();
    a.flag("--unshare-all");
    if spec.network {
        a.flag("--share-net");
    }
    a.flag("--die-with-parent");
    if session == Session::New {
        a.flag("--new-session");
    }
    a.two("--cap-drop", "ALL");
    a.two("--hostname", &spec.hostname);
    a.two("--uid", spec.uid.to_string());
    a.two("--gid", spec.gid.to_string());
    a.flag("--clearenv");
    for (k, v) in &spec.env {
        a.three("--setenv", k, v);
    }
    if writable_root {
        a.three("--bind", &spec.root, "/");
    }
    for op in root_ops {
        match op {
            Op::RoBind { host, dest } => a.three("--ro-bind", host, dest),
            Op::Dir { dest, mode } => {
                a.two("--perms", format!("{mode:04o}"));
                a.two("--dir", dest);
            }
            Op::Symlink { target, dest } => a.three("--symlink", target, dest),
        }
    }
    for m in &mounts {
        match m {
            MountOp::Bind {
                host,
                dest,
                writable,
            } => a.three(if *writable { "--bind" } else { "--ro-bind" }, host, dest),
            MountOp::Proc => {
                a.two("--proc", "/proc");
                for part in crate::native::PROC_HIDDEN {
                    a.three("--ro-bind-try", "/dev/null", format!("/proc/{part}"));
                }
            }
            MountOp::Dev => a.two("--dev", "/dev"),
            MountOp::Tmp => {
                a.two("--perms", "1777");
                a.two("--tmpfs", "/tmp");
            }
        }
    }
    if !writable_root {
        a.two("--remount-ro", "/");
    }
    a.two("--chdir", &spec.cwd);
    if let Some(fd) = status_fd {
        a.two("--json-status-fd", fd.to_string());
    }
    a.flag("--");
    for arg in argv {
        a.flag(arg);
    }
    Ok(a.0)
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, f: impl Into<OsString>) {
        self.0.push(f.into());
    }
    fn two(&mut self, f: &str, v: impl Into<OsString>) {
        self.0.push(f.into());
        self.0.push(v.into());
    }
    fn three(&mut self, f: &str, a: impl Into<OsString>, b: impl Into<OsString>) {
        self.0.push(f.into());
        self.0.push(a.into());
        self.0.push(b.into());
    }
}

/// For messages: the command line as one shell-like string.
pub fn display(program: &Path, args: &[OsString]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        let a = a.to_string_lossy();
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.=:,+".contains(c))
        {
            s.push_str(&a);
        } else {
            s.push('\'');
            s.push_str(&a.replace('\'', "'\\''"));
            s.push('\'');
        }
    }
    s
}

/// The mount points of `spec` that a writable root lacks: the sandbox
/// creates them inside the root, and [`crate::run()`] removes them again
/// after the run. A mount point whose path in the root goes through a
/// symbolic link is refused: the link (left by an earlier step or staged
/// from an output) would lead the mount, and the directories made for it,
/// out of the root to the host's files.
pub(crate) fn missing_mount_points(
    spec: &SandboxSpec,
) -> Result<Vec<std::path::PathBuf>, SandboxError> {
    if !spec.root_writable {
        return Ok(Vec::new());
    }
    let mut points: Vec<&Path> = vec![Path::new("/proc"), Path::new("/dev"), Path::new("/tmp")];
    points.extend(spec.mounts.iter().map(|m| m.sandbox.as_path()));
    let mut missing = Vec::new();
    for p in points {
        let mut acc = std::path::PathBuf::from("/");
        for c in p.components().skip(1) {
            acc.push(c);
            let host = spec.root.join(acc.strip_prefix("/").unwrap_or(&acc));
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(SandboxError::Setup {
                        message: format!(
                            "the mount point {} goes through the symbolic link {} of the \
                             writable root",
                            p.display(),
                            host.display()
                        ),
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    if !missing.contains(&host) {
                        missing.push(host);
                    }
                }
            }
        }
    }
    Ok(missing)
}

//! What the child of [`super::spawn`] reads, prepared before `clone`: the
//! plan of `/` ([`crate::args::plan`]) as [`Step`]s over C strings, the
//! argv, the environment and the id maps.

use std::ffi::{c_char, c_int, CStr, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::child::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use crate::args::{plan, MountOp, Plan};
use crate::error::SandboxError;
use crate::layout::Op;
use crate::overlay::OverlayMount;
use crate::spec::SandboxSpec;

/// Where the sandbox's `/` is built, and where the host's `/` stays
/// reachable while the binds are made (inside a tmpfs mounted on the host's
/// `/tmp` of the sandbox's own mount namespace; see [`child`]).
/// Where cas registers an emulator (crate::userns::mount_binfmt_misc).
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";
pub(super) const NEW_ROOT: &str = "/newroot";
const OLD_ROOT: &str = "/oldroot";

/// The devices of `/dev`, bound from the host's (bwrap's list).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// The links of `/dev` (bwrap's list).
const DEV_LINKS: [(&str, &str); 6] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("/proc/kcore", "core"),
    ("pts/ptmx", "ptmx"),
];
/// Parts of `/proc` that list the host's keys: hidden under a read-only
/// `/dev/null` on a `nodev` mount (bwrap: `--ro-bind-try`).
pub(crate) const PROC_HIDDEN: [&str; 2] = ["keys", "key-users"];
/// Parts of `/proc` a command may read but never write (bwrap's list).
const PROC_READ_ONLY: [&str; 4] = ["sys", "sysrq-trigger", "irq", "bus"];

/// One step of building `/`, with every path already a C string.
pub(super) enum Step {
    /// `mkdir` with `mode` (parents `0755`), then `chmod`: an existing
    /// directory is fine.
    Dir {
        path: CString,
        mode: libc::mode_t,
    },
    Symlink {
        target: CString,
        path: CString,
    },
    /// A bind of `src` on `dest` with the mount attributes `attr`; `dest`
    /// is created (a directory or an empty file, like the source) unless
    /// `create` is false. `optional`: a missing source is skipped.
    Bind {
        src: CString,
        dest: CString,
        attr: u64,
        recursive: bool,
        create: bool,
        optional: bool,
    },
    /// A new file system of `fstype` on `dest` (created with its parents).
    Mount {
        fstype: &'static CStr,
        dest: CString,
        flags: libc::c_ulong,
        data: &'static CStr,
    },
}

/// Everything the child reads, made before `clone`.
pub(super) struct Prepared {
    pub(super) steps: Vec<Step>,
    /// For each step, what an error says it was doing (not read by the child).
    pub(super) what: Vec<String>,
    pub(super) new_session: bool,
    pub(super) uid_map: Vec<u8>,
    pub(super) gid_map: Vec<u8>,
    pub(super) overlay: Option<OverlayMount>,
    pub(super) binfmt: Option<crate::emulator::Registration>,
    pub(super) writable_root: bool,
    pub(super) hostname: CString,
    pub(super) loopback: bool,
    pub(super) cwd: CString,
    pub(super) umask: libc::mode_t,
    pub(super) stdin: c_int,
    pub(super) log: c_int,
    pub(super) report: c_int,
    pub(super) filter: Vec<libc::sock_filter>,
    /// The programs to try, in order (`argv[0]` looked up in `PATH` as
    /// execvp would).
    pub(super) programs: Vec<CString>,
    pub(super) argv: Vec<*const c_char>,
    pub(super) envp: Vec<*const c_char>,
    /// What `argv` and `envp` point into.
    pub(super) _strings: Vec<CString>,
}

/// The stages of the child's work outside [`Step`]s, as reported on the pipe.
#[derive(Clone, Copy)]
#[repr(i32)]
pub(super) enum Stage {
    Lifetime = 1,
    Keyring,
    IdMaps,
    Private,
    Binfmt,
    Overlay,
    NewRoot,
    DetachHost,
    PivotRoot,
    ReadOnlyRoot,
    Hostname,
    Loopback,
    WorkingDirectory,
    Stdio,
    Capabilities,
    Filter,
    Exec,
}

pub(super) const STEP_BASE: i32 = 1000;

fn cstring(bytes: &[u8], what: &Path) -> Result<CString, SandboxError> {
    CString::new(bytes).map_err(|_| SandboxError::Setup {
        message: format!("the path {} contains a NUL byte", what.display()),
    })
}

/// `prefix` + an absolute path inside the sandbox.
fn under(prefix: &str, path: &Path) -> Result<CString, SandboxError> {
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(path.as_os_str().as_bytes());
    cstring(&bytes, path)
}

/// `/oldroot` + a host path with its symbolic links resolved here, as bwrap
/// resolves its sources before it pivots: an absolute link would otherwise
/// be read against the half-built root. The part of the path that does not
/// exist here (below an overlay that only the child mounts) is kept as
/// written.
fn on_host(path: &Path) -> Result<CString, SandboxError> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        if let Ok(mut real) = std::fs::canonicalize(existing) {
            real.extend(rest.iter().rev());
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => break abs.clone(),
        }
    };
    let mut bytes = OLD_ROOT.as_bytes().to_vec();
    bytes.extend_from_slice(resolved.as_os_str().as_bytes());
    cstring(&bytes, path)
}

fn rel(base: &CStr, name: &str) -> CString {
    let mut bytes = base.to_bytes().to_vec();
    bytes.push(b'/');
    bytes.extend_from_slice(name.as_bytes());
    CString::new(bytes).unwrap_or_default()
}

impl Prepared {
    pub(super) fn new(
        spec: &SandboxSpec,
        argv: &[String],
        log: &File,
        stdin: &File,
        report: &OwnedFd,
    ) -> Result<Prepared, SandboxError> {
        let Plan {
            writable_root,
            root_ops,
            mounts,
        } = plan(spec, argv)?;
        let mut steps = Vec::new();
        let mut what = Vec::new();
        let ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        let rw = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if writable_root {
            steps.push(Step::Bind {
                src: on_host(&spec.root)?,
                dest: cstring(NEW_ROOT.as_bytes(), &spec.root)?,
                attr: rw,
                recursive: true,
                create: false,
                optional: false,
            });
            what.push(format!("bind {} as /", spec.root.display()));
        }
        for op in root_ops {
            match op {
                Op::RoBind { host, dest } => {
                    steps.push(Step::Bind {
                        src: on_host(&host)?,
                        dest: under(NEW_ROOT, &dest)?,
                        attr: ro,
                        recursive: true,
                        create: true,
                        optional: false,
                    });
                    what.push(format!(
                        "bind {} read-only at {}",
                        host.display(),
                        dest.display()
                    ));
                }
                Op::Dir { dest, mode } => {
                    steps.push(Step::Dir {
                        path: under(NEW_ROOT, &dest)?,
                        mode: mode as libc::mode_t,
                    });
                    what.push(format!("make the directory {}", dest.display()));
                }
                Op::Symlink { target, dest } => {
                    steps.push(Step::Symlink {
                        target: cstring(target.as_os_str().as_bytes(), &target)?,
                        path: under(NEW_ROOT, &dest)?,
                    });
                    what.push(format!("make the link {}", dest.display()));
                }
            }
        }
        for m in &mounts {
            let dest = under(NEW_ROOT, m.dest())?;
            let shown = m.dest().display().to_string();
            match m {
                MountOp::Bind {
                    host,
                    dest: _,
                    writable,
                } => {
                    steps.push(Step::Bind {
                        src: on_host(host)?,
                        dest,
                        attr: if *writable { rw } else { ro },
                        recursive: true,
                        create: true,
                        optional: false,
                    });
                    what.push(format!("bind {} at {shown}", host.display()));
                }
                MountOp::Proc => {
                    if spec.binfmt.is_some() {
                        // The emulator's registration lives as long as a
                        // mount of the binfmt_misc instance that holds it:
                        // one is kept under the sandbox's /proc, hidden by it.
                        steps.push(Step::Bind {
                            src: cstring(
                                format!("{OLD_ROOT}{BINFMT_MISC}").as_bytes(),
                                Path::new(BINFMT_MISC),
                            )?,
                            dest: dest.clone(),
                            attr: ro | MOUNT_ATTR_NOEXEC,
                            recursive: false,
                            create: true,
                            optional: false,
                        });
                        what.push(format!("keep the emulator's registration under {shown}"));
                    }
                    steps.push(Step::Mount {
                        fstype: c"proc",
                        dest: dest.clone(),
                        flags: libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV,
                        data: c"",
                    });
                    what.push(format!("mount a procfs on {shown}"));
                    // The keys of the user running cas are listed there
                    // (names, owners, sizes): hidden (reading fails).
                    for part in PROC_HIDDEN {
                        steps.push(Step::Bind {
                            src: under(OLD_ROOT, Path::new("/dev/null"))?,
                            dest: rel(&dest, part),
                            attr: ro,
                            recursive: false,
                            create: false,
                            optional: true,
                        });
                        what.push(format!("hide {shown}/{part}"));
                    }
                    for part in PROC_READ_ONLY {
                        let p = rel(&dest, part);
                        steps.push(Step::Bind {
                            src: p.clone(),
                            dest: p,
                            attr: ro,
                            recursive: true,
                            create: false,
                            optional: true,
                        });
                        what.push(format!("make {shown}/{part} read-only"));
                    }
                }
                MountOp::Dev => {
                    steps.push(Step::Mount {
                        fstype: c"tmpfs",
                        dest: dest.clone(),
                        flags: libc::MS_NOSUID | libc::MS_NODEV,
                        data: c"mode=0755",
                    });
                    what.push(format!("mount a tmpfs on {shown}"));
                    for dev in DEVICES {
                        steps.push(Step::Bind {
                            src: under(OLD_ROOT, &Path::new("/dev").join(dev))?,
                            dest: rel(&dest, dev),
                            attr: MOUNT_ATTR_NOSUID,
                            recursive: false,
                            create: true,
                            optional: false,
                        });
                        what.push(format!("bind the host's /dev/{dev} at {shown}/{dev}"));
                    }
                    for dir in ["shm", "pts"] {
                        steps.push(Step::Dir {
                            path: rel(&dest, dir),
                            mode: 0o755,
                        });
                        what.push(format!("make the directory {shown}/{dir}"));
                    }
                    steps.push(Step::Mount {
                        fstype: c"devpts",
                        dest: rel(&dest, "pts"),
                        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                        data: c"newinstance,ptmxmode=0666,mode=620",
                    });
                    what.push(format!("mount a devpts on {shown}/pts"));
                    for (target, name) in DEV_LINKS {
                        steps.push(Step::Symlink {
                            target: CString::new(target).unwrap_or_default(),
                            path: rel(&dest, name),
                        });
                        what.push(format!("make the link {shown}/{name}"));
                    }
                }
                MountOp::Tmp => {
                    steps.push(Step::Mount {
                        fstype: c"tmpfs",
                        dest,
                        flags: libc::MS_NOSUID | libc::MS_NODEV,
                        data: c"mode=1777",
                    });
                    what.push(format!("mount a tmpfs on {shown}"));
                }
            }
        }

        let overlay = OverlayMount::for_spec(spec)?;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };

        // The environment: exactly the spec's, plus PWD (as bwrap sets it).
        let mut strings = Vec::new();
        let bad = |name: &str| SandboxError::Setup {
            message: format!("{name} contains a NUL byte"),
        };
        for a in argv {
            strings.push(CString::new(a.as_bytes()).map_err(|_| bad("an argument"))?);
        }
        let argc = strings.len();
        let mut env = spec.env.clone();
        env.insert("PWD".into(), spec.cwd.display().to_string());
        for (k, v) in &env {
            strings.push(CString::new(format!("{k}={v}")).map_err(|_| bad(k))?);
        }
        let mut argv_ptrs: Vec<*const c_char> =
            strings[..argc].iter().map(|s| s.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp: Vec<*const c_char> = strings[argc..].iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        let program = &argv[0];
        let programs = if program.contains('/') {
            vec![CString::new(program.as_bytes()).map_err(|_| bad("the program"))?]
        } else {
            let path = env
                .get("PATH")
                .map_or("/usr/local/bin:/usr/bin:/bin", |p| p);
            path.split(':')
                .map(|d| if d.is_empty() { "." } else { d })
                .filter_map(|d| CString::new(format!("{d}/{program}")).ok())
                .collect()
        };
        Ok(Prepared {
            steps,
            what,
            new_session: true,
            uid_map: format!("{} {uid} 1\n", spec.uid).into_bytes(),
            gid_map: format!("{} {gid} 1\n", spec.gid).into_bytes(),
            overlay,
            binfmt: spec.binfmt.clone(),
            writable_root,
            hostname: CString::new(spec.hostname.as_bytes()).map_err(|_| bad("the host name"))?,
            loopback: !spec.network,
            cwd: cstring(spec.cwd.as_os_str().as_bytes(), &spec.cwd)?,
            umask: crate::spec::UMASK as libc::mode_t,
            stdin: stdin.as_raw_fd(),
            log: log.as_raw_fd(),
            report: report.as_raw_fd(),
            filter: filter_of(crate::seccomp::program()?),
            programs,
            argv: argv_ptrs,
            envp,
            _strings: strings,
        })
    }

    /// What the child was doing when it reported `stage`.
    pub(super) fn describe(&self, stage: i32, spec: &SandboxSpec, argv: &[String]) -> String {
        let fixed = match stage {
            s if s == Stage::Lifetime as i32 => "tie the sandbox's life to cas's",
            s if s == Stage::Keyring as i32 => "join a session keyring of its own",
            s if s == Stage::IdMaps as i32 => "map the user and group ids",
            s if s == Stage::Private as i32 => "make the mounts private",
            s if s == Stage::Binfmt as i32 => "register the emulator in binfmt_misc",
            s if s == Stage::Overlay as i32 => "mount the layered sysroot",
            s if s == Stage::NewRoot as i32 => "make the new root",
            s if s == Stage::DetachHost as i32 => "detach the host's file systems",
            s if s == Stage::PivotRoot as i32 => "enter the new root",
            s if s == Stage::ReadOnlyRoot as i32 => "make / read-only",
            s if s == Stage::Hostname as i32 => "set the host name",
            s if s == Stage::Loopback as i32 => "bring up the loopback interface",
            s if s == Stage::WorkingDirectory as i32 => {
                return format!("cannot enter the working directory {}", spec.cwd.display());
            }
            s if s == Stage::Stdio as i32 => "connect the log",
            s if s == Stage::Capabilities as i32 => "drop the capabilities",
            s if s == Stage::Filter as i32 => "load the system-call filter",
            s if s == Stage::Exec as i32 => {
                return format!("cannot run {}", argv.first().map_or("", String::as_str));
            }
            s => {
                let i = (s - STEP_BASE) as usize;
                return format!(
                    "cannot {}",
                    self.what
                        .get(i)
                        .map_or("set up the sandbox", String::as_str)
                );
            }
        };
        format!("cannot {fixed}")
    }
}

/// The compiled filter's bytes as the kernel's instructions.
fn filter_of(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect()
}

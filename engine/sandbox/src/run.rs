//! Running one command in a sandbox and waiting for it.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use crate::args::{bwrap_args, Session};
use crate::cancel::{kill, Cancel};
use crate::check::bwrap_path;
use crate::error::SandboxError;
use crate::overlay::OverlayMount;
use crate::spec::SandboxSpec;

/// Where the command's output goes.
#[derive(Debug)]
pub enum Io {
    /// stdout and stderr both appended to this file (open it with
    /// `append(true)`); stdin is `/dev/null`; a new session and process group.
    Log(File),
    /// The caller's stdin/stdout/stderr and terminal session: for `cas shell`.
    /// The caller should ignore SIGINT while it waits, so Ctrl-C reaches the
    /// shell inside and not cas.
    Inherit,
}

/// How the command ended. A command killed by signal N inside the sandbox
/// shows as `Code(128 + N)` (reported by the process that ran it, like a
/// shell's; bwrap's convention); `Signal` means the sandbox itself was
/// killed (its pid 1 with cas's own backend, bwrap with bwrap: cancelled,
/// or from outside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Exit,
    pub started: SystemTime,
    pub ended: SystemTime,
    /// The sandbox was killed through a [`Cancel`] token.
    pub cancelled: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        !self.cancelled && self.status.success()
    }
}

/// The descriptor bwrap writes its JSON status to, in the child.
const STATUS_FD: i32 = 3;
/// The descriptor bwrap reads the seccomp filter from, in the child.
const SECCOMP_FD: i32 = 4;

/// Runs `argv` in the sandbox described by `spec` and waits for it.
/// A command that fails is an `Ok(Outcome)` with a non-zero status; an
/// error means the sandbox could not be set up (its message names why).
pub fn run(
    spec: &SandboxSpec,
    argv: &[String],
    io: Io,
    cancel: &Cancel,
) -> Result<Outcome, SandboxError> {
    let created = crate::args::missing_mount_points(spec)?;
    let outcome = run_inner(spec, argv, io, cancel);
    // A writable root gets back exactly what it had: the mount points the
    // sandbox made in it go again (innermost first; only if still empty).
    // The command may have replaced a made parent with a symbolic link to
    // the host's files: nothing is removed through a link (the sandbox's
    // processes are all gone by now, so nothing changes under this check).
    for path in created.iter().rev() {
        if through_a_link(&spec.root, path) {
            continue;
        }
        if std::fs::remove_dir(path).is_err() {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if m.is_file() && m.len() == 0 {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
    outcome
}

/// Whether `path` (below `root`), or any directory between `root` and it,
/// is a symbolic link or is gone.
fn through_a_link(root: &std::path::Path, path: &std::path::Path) -> bool {
    let Ok(below) = path.strip_prefix(root) else {
        return true;
    };
    let mut at = root.to_path_buf();
    for part in below.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if !m.file_type().is_symlink() => {}
            _ => return true,
        }
    }
    false
}

fn run_inner(
    spec: &SandboxSpec,
    argv: &[String],
    io: Io,
    cancel: &Cancel,
) -> Result<Outcome, SandboxError> {
    // Once cancelled, nothing starts.
    if cancel.is_cancelled() {
        let now = SystemTime::now();
        return Ok(Outcome {
            status: Exit::Signal(libc::SIGKILL),
            started: now,
            ended: now,
            cancelled: true,
        });
    }
    // Builds: cas makes the sandbox itself where the kernel lets it
    // (crate::native); interactive shells, and kernels without what it
    // needs, use bwrap.
    if let Io::Log(file) = &io {
        if crate::native::supported() {
            return crate::native::run(spec, argv, file, cancel);
        }
    }
    let bwrap = bwrap_path()?;
    let interactive = matches!(io, Io::Inherit);
    let session = if interactive {
        Session::Shared
    } else {
        Session::New
    };
    let mut args = bwrap_args(spec, argv, session, Some(STATUS_FD))?;
    // the system-call filter (crate::seccomp), read by bwrap from its fd 4
    let seccomp = crate::seccomp::descriptor()?;
    let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args.splice(at..at, ["--seccomp".into(), SECCOMP_FD.to_string().into()]);
    let started = SystemTime::now();

    let (status_read, status_write) = pipe().map_err(|source| SandboxError::Spawn {
        program: bwrap.clone(),
        source,
    })?;
    let mut cmd = Command::new(&bwrap);
    cmd.args(&args).env_clear().stdin(Stdio::null());
    let mut log_start = None;
    match &io {
        Io::Log(file) => {
            let clone = || {
                file.try_clone()
                    .map_err(|source| SandboxError::Log { source })
            };
            log_start = Some(
                file.metadata()
                    .map_err(|source| SandboxError::Log { source })?
                    .len(),
            );
            cmd.stdout(clone()?).stderr(clone()?);
        }
        Io::Inherit => {
            cmd.stdin(Stdio::inherit());
        }
    }
    // Two or more layers: the process that becomes bwrap mounts their union
    // on `spec.root` first, in namespaces of its own (crate::overlay).
    let overlay = OverlayMount::for_spec(spec)?;
    // A foreign sysroot that no host registration runs: the same process
    // registers the emulator in the sandbox's own binfmt_misc.
    let binfmt = spec.binfmt.clone();
    let namespaces =
        (overlay.is_some() || binfmt.is_some()).then(crate::userns::Namespaces::prepare);
    let write_fd = status_write.as_raw_fd();
    let seccomp_fd = seccomp.as_raw_fd();
    let umask = crate::spec::UMASK as libc::mode_t;
    let group = !interactive;
    // SAFETY: getpid has no preconditions.
    let cas_pid = unsafe { libc::getpid() };
    // SAFETY: the closure only calls async-signal-safe functions.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask);
            if group && libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if write_fd == STATUS_FD {
                if libc::fcntl(STATUS_FD, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(write_fd, STATUS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 clears close-on-exec on the copy (the memfd is at 10 or
            // above: moving the status pipe to 3 did not overwrite it)
            if libc::dup2(seccomp_fd, SECCOMP_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Nothing the caller inherited reaches the sandbox: every
            // descriptor above the filter's is closed at exec.
            cloexec_from(SECCOMP_FD + 1);
            // A session keyring of its own: the caller's (and its tokens)
            // is not the sandbox's, even before the filter denies keyctl.
            libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0usize);
            if group {
                // From here on this process keeps bwrap's process group
                // and bwrap runs in a child of it (see `keep`).
                keep(cas_pid)?;
            }
            if let Some(ns) = &namespaces {
                ns.enter()?;
            }
            if let Some(o) = &overlay {
                o.mount()?;
            }
            if let Some(r) = &binfmt {
                crate::userns::mount_binfmt_misc(Some(r))?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| match spec.layers.len() {
        _ if spec.binfmt.is_some() => SandboxError::Emulator {
            root: spec.root.clone(),
            source,
        },
        0 | 1 => SandboxError::Spawn {
            program: bwrap.clone(),
            source,
        },
        _ => SandboxError::Overlay {
            root: spec.root.clone(),
            source,
        },
    })?;
    drop(status_write);
    let pid = child.id() as i32;
    let mut guard = KillOnDrop {
        child: Some(&mut child),
        pid,
        group,
    };
    cancel.register(pid, group);
    let waited = wait_no_reap(pid);
    let cancelled = cancel.unregister(pid);
    waited.map_err(|source| SandboxError::Wait { pid, source })?;
    let exit = guard
        .reap()
        .map_err(|source| SandboxError::Wait { pid, source })?;
    let ended = SystemTime::now();

    let status = match (exit.code(), exit.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(-1),
    };
    let json = read_status(status_read);
    // bwrap reports `exit-code` only when the command itself ran: without
    // it, setting up the sandbox (mounts, chdir, exec) failed.
    if !cancelled && !json.contains("\"exit-code\"") {
        let message = match (&io, log_start) {
            (Io::Log(file), Some(start)) => bwrap_message(file, start),
            _ => String::new(),
        };
        let message = if message.is_empty() {
            format!(
                "{status} before starting the command (see its messages above); command line: {}",
                crate::args::display(&bwrap, &args)
            )
        } else {
            message
        };
        return Err(SandboxError::Setup { message });
    }
    Ok(Outcome {
        status,
        started,
        ended,
        cancelled,
    })
}

/// keyctl(2): join a new anonymous session keyring.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Marks every descriptor from `first` on close-on-exec (async-signal-safe).
fn cloexec_from(first: i32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: raw syscalls on descriptors of this (forked) process.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) == 0
        {
            return;
        }
        // Kernels before 5.11: one fcntl per possible descriptor.
        let mut limit: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 {
            limit.rlim_cur.min(1 << 16) as i32
        } else {
            1024
        };
        for fd in first..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Set by the keeper's SIGTERM handler.
extern "C" fn kill_group(_: libc::c_int) {
    // SAFETY: kill is async-signal-safe; 0 is this process's own group.
    unsafe {
        libc::kill(0, libc::SIGKILL);
    }
}

/// Splits the forked child in two: the child returns (and goes on to exec
/// bwrap); this process stays as bwrap's keeper and never returns. The
/// keeper dies with cas: when cas's thread ends (even by SIGKILL) the kernel
/// sends the keeper SIGTERM (`PR_SET_PDEATHSIG`), and it kills its whole
/// process group: bwrap, and a bwrap child still waiting in its setup for a
/// parent that is gone (which bwrap's own `--die-with-parent` cannot reach:
/// it is set only after that wait). Otherwise the keeper waits for bwrap and
/// ends the same way (exit code, or the same signal), so callers see bwrap's
/// status. Only async-signal-safe calls: this runs between fork and exec.
unsafe fn keep(cas_pid: libc::pid_t) -> std::io::Result<()> {
    let child = libc::fork();
    if child < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if child == 0 {
        return Ok(());
    }
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = kill_group as *const () as libc::sighandler_t;
    libc::sigemptyset(&raw mut action.sa_mask);
    libc::sigaction(libc::SIGTERM, &raw const action, std::ptr::null_mut());
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    if libc::getppid() != cas_pid {
        kill_group(0);
    }
    // The keeper holds nothing: the end of spawn's error pipe, the log and
    // the status pipe belong to cas and bwrap.
    libc::syscall(
        libc::SYS_close_range,
        0 as libc::c_uint,
        libc::c_uint::MAX,
        0 as libc::c_uint,
    );
    let mut status = 0;
    loop {
        let r = libc::waitpid(child, &raw mut status, 0);
        if r == child {
            break;
        }
        if r < 0 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(127);
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// Kills the sandbox if `run` is left before it was reaped (a panic).
struct KillOnDrop<'a> {
    child: Option<&'a mut std::process::Child>,
    pid: i32,
    group: bool,
}

impl KillOnDrop<'_> {
    fn reap(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self.child.take() {
            Some(c) => c.wait(),
            None => Err(std::io::Error::other("already reaped")),
        }
    }
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            kill(self.pid, self.group);
            let _ = c.wait();
        }
    }
}

/// Waits until `pid` exits, leaving it a zombie so its pid (and process
/// group) cannot be reused while a [`Cancel`] may still signal it.
pub(crate) fn wait_no_reap(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: waitid writes into the zeroed siginfo we own.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &raw mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors, which we then own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// What bwrap wrote to its status descriptor. bwrap has exited and the pid
/// namespace is gone, so no writer is left and reading ends.
fn read_status(fd: OwnedFd) -> String {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut f = File::from(fd);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = f.read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// bwrap's own error lines (`bwrap: ...`) written to the log since `start`.
fn bwrap_message(file: &File, start: u64) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let n = file.read_at(&mut buf, start).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("bwrap: ")).collect();
    lines.join("; ")
}

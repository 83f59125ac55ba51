//! cas's own sandbox maker: the sandbox bwrap would make for the same spec
//! (the same [`crate::args::plan`]: the same `/`, mounts, namespaces,
//! identity, environment, filter), made by one `clone` of the calling thread
//! instead of a forked helper that execs bwrap.
//!
//! Why: a build step used to pay a `fork` of cas (page tables of a large,
//! multi-threaded process copied, then copy-on-write faults in cas while the
//! step ran), an exec of bwrap and bwrap's own fork; together about half of a
//! trivial step (bench/NOTES.md). Here the child shares cas's memory
//! (`CLONE_VM | CLONE_VFORK`, as `posix_spawn` does) and is born in every new
//! namespace at once (`CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | ...`); it
//! builds `/` with the kernel's mount API and execs the command, which is the
//! sandbox's pid 1. The calling thread stays suspended until that exec (or
//! the child's exit), so nothing else touches what the child reads.
//!
//! The child may not allocate, lock or panic: everything it needs (paths as
//! C strings, the argv and environment, the id maps, the filter) is prepared
//! in [`Prepared`] before `clone`, and it calls only system-call wrappers.
//! When a step of its setup fails it writes the step's number and `errno` to
//! a close-on-exec pipe and exits; cas turns them into an error that names
//! the path (`SandboxError::Setup`). A pipe that closes empty means the exec
//! happened.
//!
//! Used for builds (`Io::Log`) when the kernel has what it needs (probed once
//! per process, [`supported`]); `CAS_SANDBOX=bwrap` or an interactive shell
//! uses bwrap. spec/sandbox.md says what both give a command.

use std::ffi::{c_int, c_void};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::cancel::Cancel;
use crate::error::SandboxError;
use crate::run::{Exit, Outcome};
use crate::spec::SandboxSpec;

mod child;
mod prepare;

use child::{child, MountAttr, AT_RECURSIVE, MOUNT_ATTR_RDONLY, OPEN_TREE_CLONE};
use prepare::Prepared;
pub(crate) use prepare::PROC_HIDDEN;

/// Whether this kernel lets cas make its sandboxes itself: new user, mount,
/// pid, network, ipc, uts and cgroup namespaces for an unprivileged child,
/// and the mount API (`open_tree`, `mount_setattr`). Probed once per process
/// with a child that tries them and exits (or taken from a probes file, see
/// [`supported_remembered_in`]); `CAS_SANDBOX=bwrap` says no without
/// probing.
pub fn supported() -> bool {
    *SUPPORTED.get_or_init(|| !told_to_use_bwrap() && probe())
}

/// [`supported`], with a success remembered in the probes file `file`
/// (`crate::probes`: per kernel release and cas version), so that a
/// process that builds does not pay for the probe's child each time.
pub fn supported_remembered_in(file: &std::path::Path) -> bool {
    *SUPPORTED.get_or_init(|| {
        !told_to_use_bwrap()
            && crate::probes::cached(file, "native", || {
                if probe() {
                    Ok(())
                } else {
                    Err("no".into())
                }
            })
            .is_ok()
    })
}

static SUPPORTED: OnceLock<bool> = OnceLock::new();

fn told_to_use_bwrap() -> bool {
    std::env::var_os("CAS_SANDBOX").is_some_and(|v| v == "bwrap")
}

struct ProbeArgs {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

extern "C" fn probe_child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the ProbeArgs the suspended parent keeps alive; only
    // system calls follow.
    unsafe {
        let a = &*(arg as *const ProbeArgs);
        if crate::userns::map_ids(&a.uid_map, &a.gid_map).is_err()
            || libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
        {
            libc::_exit(1);
        }
        let fd = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc".as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
        ) as c_int;
        if fd < 0 {
            libc::_exit(2);
        }
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        if libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        ) != 0
        {
            libc::_exit(3);
        }
        libc::_exit(0)
    }
}

fn probe() -> bool {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let args = ProbeArgs {
        uid_map: format!("0 {uid} 1\n").into_bytes(),
        gid_map: format!("0 {gid} 1\n").into_bytes(),
    };
    let flags = namespaces(false);
    // SAFETY: the child runs probe_child on its own stack and only makes
    // system calls; this thread is suspended until it exits.
    let pid = unsafe { spawn(probe_child, &raw const args as *mut c_void, flags) };
    let Ok(pid) = pid else {
        return false;
    };
    matches!(reap(pid), Ok(status) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

fn namespaces(network: bool) -> c_int {
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    if !network {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

/// The child's stack: it runs only setup system calls.
const STACK: usize = 256 * 1024;

/// An `mmap`ed stack, unmapped when dropped.
struct Stack(*mut c_void, usize);

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns; the child no longer runs on
        // it (it has exec'd or exited).
        unsafe { libc::munmap(self.0, self.1) };
    }
}

/// `clone` of this thread into `f(arg)` with `flags`, sharing memory and
/// suspending this thread until the child execs or exits. Every signal is
/// blocked around it, so no handler of cas runs on the child's stack.
///
/// # Safety
/// `f` may only make system calls and read `arg`, which must stay valid
/// until this returns.
unsafe fn spawn(
    f: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
    flags: c_int,
) -> std::io::Result<libc::pid_t> {
    // The stack with a guard page below it, as posix_spawn makes it: an
    // overflow faults instead of writing into cas's heap.
    let page = 4096;
    let base = libc::mmap(
        std::ptr::null_mut(),
        STACK + page,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
        -1,
        0,
    );
    if base == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let stack = Stack(base, STACK + page);
    if libc::mprotect(base, page, libc::PROT_NONE) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let top = (base as usize + STACK + page) as *mut c_void;
    let mut all: libc::sigset_t = std::mem::zeroed();
    let mut old: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&raw mut all);
    libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
    let pid = libc::clone(
        f,
        top,
        flags | libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
        arg,
    );
    let err = std::io::Error::last_os_error();
    libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
    drop(stack);
    if pid < 0 {
        return Err(err);
    }
    Ok(pid)
}

fn reap(pid: libc::pid_t) -> std::io::Result<c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status we own.
        let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Runs `argv` in the sandbox of `spec`, output to `log`, and waits.
pub(crate) fn run(
    spec: &SandboxSpec,
    argv: &[String],
    log: &File,
    cancel: &Cancel,
) -> Result<Outcome, SandboxError> {
    let started = SystemTime::now();
    let spawn_error = |source| SandboxError::Spawn {
        program: PathBuf::from("the sandbox"),
        source,
    };
    let stdin = File::open("/dev/null").map_err(spawn_error)?;
    let (report_read, report_write) = crate::run::pipe().map_err(spawn_error)?;
    let prepared = Prepared::new(spec, argv, log, &stdin, &report_write)?;
    let flags = namespaces(spec.network);
    // SAFETY: `child` only makes system calls and reads `prepared`, which
    // lives until after the child has exec'd or exited (CLONE_VFORK).
    let pid =
        unsafe { spawn(child, &raw const prepared as *mut c_void, flags) }.map_err(spawn_error)?;
    drop(report_write);
    // CLONE_VFORK: this thread resumes only once the child has exec'd or
    // exited, and a failing child writes its report before it exits, so
    // what there is to read is already there. Never wait for the end of
    // the pipe: another step's child still in its setup holds a copy of
    // its write end (descriptors are copied at clone, closed at exec).
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(report_read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut report = [0u8; 8];
    let n = read_full(&report_read, &mut report);
    if n == report.len() {
        let stage = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
        let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
        let _ = reap(pid);
        let what = prepared.describe(stage, spec, argv);
        return Err(SandboxError::Setup {
            message: format!("{what}: {}", std::io::Error::from_raw_os_error(errno)),
        });
    }
    cancel.register(pid, true);
    let mut guard = KillOnDrop(Some(pid));
    let waited = crate::run::wait_no_reap(pid);
    let cancelled = cancel.unregister(pid);
    waited.map_err(|source| SandboxError::Wait { pid, source })?;
    guard.0 = None;
    let status = reap(pid).map_err(|source| SandboxError::Wait { pid, source })?;
    let ended = SystemTime::now();
    let status = if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(-1)
    };
    Ok(Outcome {
        status,
        started,
        ended,
        cancelled,
    })
}

/// Kills and reaps the sandbox if `run` is left before it was reaped.
struct KillOnDrop(Option<libc::pid_t>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            crate::cancel::kill(pid, true);
            let _ = reap(pid);
        }
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: reads into the rest of `buf`, which we own.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r > 0 {
            n += r as usize;
        } else if r == 0
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
    }
    n
}

//! The child's side: pid 1 of the new namespaces, between `clone` and
//! `exec`. Only system calls on what [`Prepared`] holds: no allocation, no
//! lock, no panic.

use std::ffi::{c_int, c_void, CStr};

use super::prepare::{Prepared, Stage, Step, STEP_BASE};

// The kernel's mount API (linux/mount.h), Linux 5.12 and later.
pub(super) const OPEN_TREE_CLONE: libc::c_uint = 1;
pub(super) const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
pub(super) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(super) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(super) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(super) const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
pub(super) struct MountAttr {
    pub(super) attr_set: u64,
    pub(super) attr_clr: u64,
    pub(super) propagation: u64,
    pub(super) userns_fd: u64,
}

/// Reports `stage` and errno on the pipe and exits (the parent reaps).
unsafe fn fail(p: &Prepared, stage: i32) -> ! {
    let errno = *libc::__errno_location();
    let mut buf = [0u8; 8];
    let (a, b) = buf.split_at_mut(4);
    a.copy_from_slice(&stage.to_ne_bytes());
    b.copy_from_slice(&errno.to_ne_bytes());
    libc::write(p.report, buf.as_ptr().cast(), buf.len());
    libc::_exit(127)
}

/// Creates the missing parents of `path` (mode 0755), without allocating,
/// and refuses (`ELOOP`) a path of which any existing part below the new
/// root, itself included, is a symbolic link: a writable root holds what
/// earlier steps left, and a link there must not lead a mount point, or a
/// directory cas makes, out to the host's files below `/oldroot`.
unsafe fn make_parents(path: &CStr) -> c_int {
    let bytes = path.to_bytes();
    let mut buf = [0u8; 4096];
    if bytes.len() >= buf.len() {
        *libc::__errno_location() = libc::ENAMETOOLONG;
        return -1;
    }
    let (head, _) = buf.split_at_mut(bytes.len());
    head.copy_from_slice(bytes);
    let below = super::prepare::NEW_ROOT.len();
    for i in 1..=bytes.len() {
        // the new root itself is the tmpfs cas mounted
        if i > below && (i == bytes.len() || buf.get(i) == Some(&b'/')) {
            let saved = buf[i];
            buf[i] = 0;
            let mut st: libc::stat = std::mem::zeroed();
            if libc::lstat(buf.as_ptr().cast(), &raw mut st) == 0 {
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    *libc::__errno_location() = libc::ELOOP;
                    return -1;
                }
            } else if i < bytes.len()
                && libc::mkdir(buf.as_ptr().cast(), 0o755) != 0
                && *libc::__errno_location() != libc::EEXIST
            {
                return -1;
            }
            buf[i] = saved;
        }
    }
    0
}

unsafe fn mkdir_exists_ok(path: &CStr, mode: libc::mode_t) -> c_int {
    if libc::mkdir(path.as_ptr(), mode) != 0 && *libc::__errno_location() != libc::EEXIST {
        return -1;
    }
    0
}

/// A bind made with the mount API: the source tree cloned (with its
/// submounts when `recursive`), the attributes set on all of it, then moved
/// into place.
unsafe fn bind(src: &CStr, dest: &CStr, attr: u64, recursive: bool) -> c_int {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let fd = libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, src.as_ptr(), flags) as c_int;
    if fd < 0 {
        return -1;
    }
    let a = MountAttr {
        attr_set: attr,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut at = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        at |= AT_RECURSIVE;
    }
    let mut r = libc::syscall(
        libc::SYS_mount_setattr,
        fd,
        c"".as_ptr(),
        at,
        &raw const a,
        std::mem::size_of::<MountAttr>(),
    );
    if r == 0 {
        r = libc::syscall(
            libc::SYS_move_mount,
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            dest.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
    }
    let errno = *libc::__errno_location();
    libc::close(fd);
    *libc::__errno_location() = errno;
    if r != 0 {
        return -1;
    }
    0
}

unsafe fn step(s: &Step) -> c_int {
    match s {
        Step::Dir { path, mode } => {
            if make_parents(path) != 0 || mkdir_exists_ok(path, *mode) != 0 {
                return -1;
            }
            libc::chmod(path.as_ptr(), *mode)
        }
        Step::Symlink { target, path } => {
            if make_parents(path) != 0 {
                return -1;
            }
            libc::symlink(target.as_ptr(), path.as_ptr())
        }
        Step::Bind {
            src,
            dest,
            attr,
            recursive,
            create,
            optional,
        } => {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(src.as_ptr(), &raw mut st) != 0 {
                if *optional && *libc::__errno_location() == libc::ENOENT {
                    return 0;
                }
                return -1;
            }
            if *optional && !*create && libc::lstat(dest.as_ptr(), &raw mut st) != 0 {
                return 0;
            }
            if *create {
                if make_parents(dest) != 0 {
                    return -1;
                }
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    if mkdir_exists_ok(dest, 0o755) != 0 {
                        return -1;
                    }
                } else {
                    let fd = libc::open(
                        dest.as_ptr(),
                        // never blocks (a FIFO left in a writable root)
                        libc::O_CREAT
                            | libc::O_WRONLY
                            | libc::O_CLOEXEC
                            | libc::O_NOCTTY
                            | libc::O_NOFOLLOW
                            | libc::O_NONBLOCK,
                        0o444,
                    );
                    if fd < 0 {
                        if *libc::__errno_location() != libc::EISDIR {
                            return -1;
                        }
                    } else {
                        libc::close(fd);
                    }
                }
            }
            bind(src, dest, *attr, *recursive)
        }
        Step::Mount {
            fstype,
            dest,
            flags,
            data,
        } => {
            if make_parents(dest) != 0 || mkdir_exists_ok(dest, 0o755) != 0 {
                return -1;
            }
            libc::mount(
                fstype.as_ptr(),
                dest.as_ptr(),
                fstype.as_ptr(),
                *flags,
                data.as_ptr().cast(),
            )
        }
    }
}

/// `struct ifreq` for SIOCGIFFLAGS / SIOCSIFFLAGS.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

unsafe fn loopback_up() -> c_int {
    let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if s < 0 {
        return -1;
    }
    let mut req = IfReq {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[0] = b'l';
    req.name[1] = b'o';
    const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
    const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
    let mut r = libc::ioctl(s, SIOCGIFFLAGS, &raw mut req);
    if r == 0 {
        req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        r = libc::ioctl(s, SIOCSIFFLAGS, &raw mut req);
    }
    let errno = *libc::__errno_location();
    libc::close(s);
    *libc::__errno_location() = errno;
    r
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// No capability at all, now or after exec: the bounding and ambient sets
/// emptied, then the process's own sets.
unsafe fn drop_capabilities() -> c_int {
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return -1;
    }
    // every capability this kernel knows (EINVAL: past the last one)
    for cap in 0..64 {
        if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
            if *libc::__errno_location() == libc::EINVAL {
                break;
            }
            return -1;
        }
    }
    libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL,
        0,
        0,
        0,
    );
    let header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) as c_int
}

unsafe fn load_filter(program: &[libc::sock_filter]) -> c_int {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    libc::prctl(
        libc::PR_SET_SECCOMP,
        libc::SECCOMP_MODE_FILTER,
        &raw const prog,
        0,
        0,
    )
}

/// The child: pid 1 of the new namespaces. Never returns.
pub(super) extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Prepared the suspended parent keeps alive.
    unsafe { setup_and_exec(&*(arg as *const Prepared)) }
}

unsafe fn setup_and_exec(p: &Prepared) -> ! {
    macro_rules! check {
        ($stage:expr, $e:expr) => {
            if $e != 0 {
                fail(p, $stage as i32);
            }
        };
    }
    // Dies with the cas thread that started it (and, as pid 1, takes every
    // process of the sandbox with it). If cas died before this, the report
    // pipe has no reader left: end at once.
    check!(
        Stage::Lifetime,
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0)
    );
    let mut poll = libc::pollfd {
        fd: p.report,
        events: 0,
        revents: 0,
    };
    if libc::poll(&raw mut poll, 1, 0) > 0 && poll.revents & libc::POLLERR != 0 {
        libc::_exit(127);
    }
    if p.new_session && libc::setsid() < 0 {
        fail(p, Stage::Lifetime as i32);
    }
    // A session keyring of its own: the caller's (and its tokens) is not
    // the sandbox's, even before the filter denies keyctl. Where keyctl is
    // not there at all (ENOSYS, or refused by a container's filter) no
    // keyring is reachable from here either.
    if libc::syscall(libc::SYS_keyctl, 1 as libc::c_long, 0usize) < 0 // KEYCTL_JOIN_SESSION_KEYRING
        && !matches!(
            *libc::__errno_location(),
            libc::ENOSYS | libc::EPERM | libc::EACCES
        )
    {
        fail(p, Stage::Keyring as i32);
    }
    libc::umask(0);
    if crate::userns::map_ids(&p.uid_map, &p.gid_map).is_err() {
        fail(p, Stage::IdMaps as i32);
    }
    check!(
        Stage::Private,
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    );
    if let Some(r) = &p.binfmt {
        if crate::userns::mount_binfmt_misc(Some(r)).is_err() {
            fail(p, Stage::Binfmt as i32);
        }
    }
    if let Some(o) = &p.overlay {
        if o.mount().is_err() {
            fail(p, Stage::Overlay as i32);
        }
    }
    // A tmpfs over this namespace's /tmp holds the new root and, once it is
    // the root itself, the host's old root below /oldroot: every bind reads
    // from there (the host's /tmp included: pivot_root moved the tmpfs away).
    check!(
        Stage::NewRoot,
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755".as_ptr().cast(),
        )
    );
    check!(Stage::NewRoot, libc::chdir(c"/tmp".as_ptr()));
    check!(Stage::NewRoot, libc::mkdir(c"newroot".as_ptr(), 0o755));
    check!(Stage::NewRoot, libc::mkdir(c"oldroot".as_ptr(), 0o755));
    check!(
        Stage::NewRoot,
        libc::mount(
            c"tmpfs".as_ptr(),
            c"newroot".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0755".as_ptr().cast(),
        )
    );
    check!(
        Stage::NewRoot,
        libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c"oldroot".as_ptr())
    );
    check!(Stage::NewRoot, libc::chdir(c"/".as_ptr()));
    for (i, s) in p.steps.iter().enumerate() {
        check!(STEP_BASE + i as i32, step(s));
    }
    check!(
        Stage::DetachHost,
        libc::umount2(c"/oldroot".as_ptr(), libc::MNT_DETACH)
    );
    check!(Stage::PivotRoot, libc::chdir(c"/newroot".as_ptr()));
    check!(
        Stage::PivotRoot,
        libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())
    );
    check!(
        Stage::PivotRoot,
        libc::umount2(c".".as_ptr(), libc::MNT_DETACH)
    );
    check!(Stage::PivotRoot, libc::chdir(c"/".as_ptr()));
    if !p.writable_root {
        check!(
            Stage::ReadOnlyRoot,
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT
                    | libc::MS_BIND
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                std::ptr::null(),
            )
        );
    }
    check!(
        Stage::Hostname,
        libc::sethostname(p.hostname.as_ptr(), p.hostname.as_bytes().len())
    );
    if p.loopback {
        check!(Stage::Loopback, loopback_up());
    }
    check!(Stage::WorkingDirectory, libc::chdir(p.cwd.as_ptr()));
    libc::umask(p.umask);
    if libc::dup2(p.stdin, 0) < 0 || libc::dup2(p.log, 1) < 0 || libc::dup2(p.log, 2) < 0 {
        fail(p, Stage::Stdio as i32);
    }
    // Nothing else cas holds reaches the command (the report pipe closes at
    // exec too).
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    check!(
        Stage::Stdio,
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC
        )
    );
    check!(Stage::Capabilities, drop_capabilities());
    check!(Stage::Filter, load_filter(&p.filter));
    // The command starts with default signal handling and nothing blocked.
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&raw mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &raw const none, std::ptr::null_mut());
    let mut denied = false;
    for program in &p.programs {
        libc::execve(program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        match *libc::__errno_location() {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR => {}
            _ => fail(p, Stage::Exec as i32),
        }
    }
    *libc::__errno_location() = if denied { libc::EACCES } else { libc::ENOENT };
    fail(p, Stage::Exec as i32)
}

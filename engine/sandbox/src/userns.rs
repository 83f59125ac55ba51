//! The namespaces cas enters itself before it execs bwrap, for what bwrap
//! 0.8 cannot do: mount a layered sysroot (crate::overlay) and register an
//! emulator in a binfmt_misc instance of the sandbox's own (Linux 6.7 and
//! later give each user namespace that mounts binfmt_misc its own instance,
//! which its descendants use instead of the host's; crate::emulator). The
//! process maps its uid and gid to themselves, so bwrap, nesting its own
//! namespaces inside, sees what it would have seen outside.
//!
//! Everything is prepared before `fork`: the child may not allocate.

use std::io;

use crate::emulator::Registration;

/// A new user and mount namespace, its id maps prepared.
pub(crate) struct Namespaces {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl Namespaces {
    pub(crate) fn prepare() -> Namespaces {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Namespaces {
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }

    /// In the child, after `fork`: unshare the user and mount namespaces and
    /// map the ids. Only async-signal-safe calls.
    ///
    /// # Safety
    /// Call only between `fork` and `exec` of a single-threaded child.
    pub(crate) unsafe fn enter(&self) -> io::Result<()> {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
            return Err(io::Error::last_os_error());
        }
        map_ids(&self.uid_map, &self.gid_map)
    }
}

/// In a process just made in a new user namespace: its id maps written
/// (`setgroups` denied first, as gid_map requires). Only system calls.
///
/// # Safety
/// Call only between `fork`/`clone` and `exec`.
pub(crate) unsafe fn map_ids(uid_map: &[u8], gid_map: &[u8]) -> io::Result<()> {
    // Absent on kernels before 3.19, where gid_map needs no "deny".
    let _ = write_file(c"/proc/self/setgroups", b"deny");
    write_file(c"/proc/self/uid_map", uid_map)?;
    write_file(c"/proc/self/gid_map", gid_map)
}

/// In the child, inside [`Namespaces::enter`]: a binfmt_misc instance of
/// this user namespace on `/proc/sys/fs/binfmt_misc` (of this mount
/// namespace only), and `registration` written into it. On a kernel without
/// per-namespace instances the mount fails (EPERM).
///
/// # Safety
/// Call only between `fork` and `exec` of a single-threaded child.
pub(crate) unsafe fn mount_binfmt_misc(registration: Option<&Registration>) -> io::Result<()> {
    if libc::mount(
        c"binfmt_misc".as_ptr(),
        c"/proc/sys/fs/binfmt_misc".as_ptr(),
        c"binfmt_misc".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        std::ptr::null(),
    ) != 0
    {
        return Err(io::Error::last_os_error());
    }
    if let Some(r) = registration {
        write_file(c"/proc/sys/fs/binfmt_misc/register", &r.line)?;
    }
    Ok(())
}

/// One `write` of `data` to `path` (id maps and registrations must be
/// written at once).
pub(crate) unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let err = io::Error::last_os_error();
    libc::close(fd);
    if n != data.len() as isize {
        return Err(err);
    }
    Ok(())
}

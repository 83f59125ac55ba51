//! The seccomp filter every step runs under (spec/sandbox.md, "System
//! calls"). bwrap loads it (`--seccomp FD`) just before it executes the
//! step's command, after it has made the namespaces and mounts: so the
//! filter costs the sandbox nothing it needs, and everything the step runs
//! inherits it.
//!
//! It is a deny list, in the manner of Flatpak's and Docker's default
//! profiles, of the kernel interfaces a build never needs and an attacker
//! would use to reach outside its sandbox: the kernel keyrings (which are
//! per user, not per namespace: a step could read the caller's tokens),
//! new user namespaces (a way back to mount and the other capabilities the
//! sandbox dropped), io_uring (a second system-call path that seccomp does
//! not see), userfaultfd and perf_event_open (the raw material of kernel
//! exploits), kernel modules, kexec, bpf, and the new mount API. A denied
//! call fails with `EPERM` (`clone3` with `ENOSYS`, so that the C library
//! falls back to `clone`, whose flags this filter can read). The filter
//! covers every ABI a process on this machine can call the kernel with
//! (on x86_64: x86_64, i386 and x32), so a 32-bit `int 0x80` is no way
//! around it.
//!
//! It is compiled with libseccomp, the library Flatpak, Docker and
//! systemd use, which knows every architecture's system-call numbers.

use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};

use crate::error::SandboxError;

/// System calls a step may not make at all, with the reason for each group.
pub const DENIED: &[(&str, &str)] = &[
    // the kernel keyrings: per user, shared with the caller's session
    ("add_key", "keyring"),
    ("keyctl", "keyring"),
    ("request_key", "keyring"),
    // a second system-call path that seccomp does not filter
    ("io_uring_setup", "io_uring"),
    ("io_uring_enter", "io_uring"),
    ("io_uring_register", "io_uring"),
    // raw material of kernel exploits; no build needs them
    ("userfaultfd", "exploit primitive"),
    ("perf_event_open", "exploit primitive"),
    ("bpf", "exploit primitive"),
    ("lookup_dcookie", "exploit primitive"),
    // the kernel itself
    ("init_module", "kernel modules"),
    ("finit_module", "kernel modules"),
    ("delete_module", "kernel modules"),
    ("kexec_load", "kexec"),
    ("kexec_file_load", "kexec"),
    ("reboot", "host control"),
    ("swapon", "host control"),
    ("swapoff", "host control"),
    ("acct", "host control"),
    ("syslog", "host control"),
    ("quotactl", "host control"),
    ("settimeofday", "host control"),
    ("clock_settime", "host control"),
    ("clock_adjtime", "host control"),
    ("adjtimex", "host control"),
    // namespaces and mounts: the sandbox made them; a step makes none
    ("setns", "namespaces"),
    ("mount", "mounts"),
    ("umount2", "mounts"),
    ("pivot_root", "mounts"),
    ("open_tree", "mounts"),
    ("move_mount", "mounts"),
    ("fsopen", "mounts"),
    ("fsconfig", "mounts"),
    ("fsmount", "mounts"),
    ("fspick", "mounts"),
    ("mount_setattr", "mounts"),
    // handles that bypass path permissions
    ("open_by_handle_at", "file handles"),
    // old interfaces with a record of holes
    ("uselib", "obsolete"),
    ("nfsservctl", "obsolete"),
    ("vm86", "obsolete"),
    ("vm86old", "obsolete"),
];

/// `CLONE_NEWUSER`: `unshare` and `clone` with it are denied.
const CLONE_NEWUSER: u64 = 0x1000_0000;
/// ioctl requests that push input into a terminal or the console.
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// The architectures the filter covers on this machine: the native one and
/// the ABIs its kernel also accepts.
fn arches() -> Vec<ScmpArch> {
    match ScmpArch::native() {
        ScmpArch::X8664 => vec![ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32],
        ScmpArch::Aarch64 => vec![ScmpArch::Aarch64, ScmpArch::Arm],
        ScmpArch::Ppc64Le => vec![ScmpArch::Ppc64Le, ScmpArch::Ppc64, ScmpArch::Ppc],
        ScmpArch::S390X => vec![ScmpArch::S390X, ScmpArch::S390],
        native => vec![native],
    }
}

fn build() -> Result<Vec<u8>, String> {
    let e = |what: &str, err: libseccomp::error::SeccompError| format!("{what}: {err}");
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).map_err(|x| e("new filter", x))?;
    // The calls sorted into a binary tree (libseccomp >= 2.5) instead of a
    // list: the same decisions in a few more instructions, but each run of
    // the filter takes a logarithmic path. The kernel runs it for every
    // system call number of every architecture when a sandbox loads it
    // (to find the calls it always allows): 190 µs per sandbox with the
    // list, 47 µs with the tree, measured here (Linux 6.18, x86_64).
    ctx.set_ctl_optimize(2)
        .map_err(|x| e("optimize the filter", x))?;
    for arch in arches() {
        if !ctx.is_arch_present(arch).unwrap_or(false) {
            ctx.add_arch(arch)
                .map_err(|x| e(&format!("add {arch:?}"), x))?;
        }
    }
    let eperm = ScmpAction::Errno(libc::EPERM);
    for (name, _) in DENIED {
        // a call an architecture does not have (vm86 on x86_64 …) is
        // simply not in that architecture's part of the filter
        let Ok(call) = libseccomp::ScmpSyscall::from_name(name) else {
            continue;
        };
        ctx.add_rule(eperm, call)
            .map_err(|x| e(&format!("deny {name}"), x))?;
    }
    // the flags are unshare's first argument everywhere, clone's first
    // except on s390, where clone takes the stack first
    let clone_flags = match ScmpArch::native() {
        ScmpArch::S390 | ScmpArch::S390X => 1,
        _ => 0,
    };
    for (name, arg) in [("unshare", 0), ("clone", clone_flags)] {
        let newuser = ScmpArgCompare::new(
            arg,
            ScmpCompareOp::MaskedEqual(CLONE_NEWUSER),
            CLONE_NEWUSER,
        );
        let call = libseccomp::ScmpSyscall::from_name(name).map_err(|x| e(name, x))?;
        ctx.add_rule_conditional(eperm, call, &[newuser])
            .map_err(|x| e(&format!("deny {name}(CLONE_NEWUSER)"), x))?;
    }
    // Characters pushed into a terminal's input (TIOCSTI) or the console's
    // (TIOCLINUX): with `cas shell` the sandbox shares the caller's
    // terminal, and pushed input would run in the caller's shell after cas
    // ends. Only the low 32 bits of the request are compared (the kernel
    // ignores the rest).
    let ioctl = libseccomp::ScmpSyscall::from_name("ioctl").map_err(|x| e("ioctl", x))?;
    for request in [TIOCSTI, TIOCLINUX] {
        let cmp = ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(0xffff_ffff), request);
        ctx.add_rule_conditional(eperm, ioctl, &[cmp])
            .map_err(|x| e("deny ioctl(TIOCSTI/TIOCLINUX)", x))?;
    }
    // clone3 passes its flags in memory, out of a filter's sight: ENOSYS
    // makes the C library fall back to clone
    if let Ok(call) = libseccomp::ScmpSyscall::from_name("clone3") {
        ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), call)
            .map_err(|x| e("clone3", x))?;
    }
    let file = tempfile::tempfile().map_err(|x| format!("temporary file: {x}"))?;
    ctx.export_bpf(&file).map_err(|x| e("export", x))?;
    let mut file = file;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| std::io::Read::read_to_end(&mut file, &mut bytes))
        .map_err(|x| format!("read the exported filter: {x}"))?;
    Ok(bytes)
}

/// The compiled filter (BPF), built once per process.
pub fn program() -> Result<&'static [u8], SandboxError> {
    static PROGRAM: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    match PROGRAM.get_or_init(build) {
        Ok(bytes) => Ok(bytes),
        Err(message) => Err(SandboxError::Seccomp {
            message: message.clone(),
        }),
    }
}

/// A descriptor holding the filter, positioned at its start, for bwrap's
/// `--seccomp`: an anonymous memory file, closed at exec unless the child
/// moves it into place.
pub fn descriptor() -> Result<OwnedFd, SandboxError> {
    let bytes = program()?;
    let fail = |source: std::io::Error| SandboxError::Seccomp {
        message: format!("cannot pass the filter to bwrap: {source}"),
    };
    // SAFETY: a valid NUL-terminated name and flags; the result is checked.
    let fd = unsafe { libc::memfd_create(c"cas-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    std::io::Write::write_all(&mut file, bytes).map_err(fail)?;
    file.seek(SeekFrom::Start(0)).map_err(fail)?;
    // above the descriptors the child moves into place (3, 4), so that
    // moving one never overwrites this one
    // SAFETY: fcntl on a descriptor this function owns; checked.
    let high = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if high < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_names_only_real_calls_on_this_machine() {
        let bytes = program().expect("filter");
        // struct sock_filter is 8 bytes
        assert!(!bytes.is_empty() && bytes.len() % 8 == 0);
        for name in ["keyctl", "add_key", "request_key", "io_uring_setup", "bpf"] {
            assert!(
                libseccomp::ScmpSyscall::from_name(name).is_ok(),
                "{name} is known"
            );
        }
    }
}

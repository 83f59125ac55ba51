//! Running a sysroot of another architecture: the kernel's `binfmt_misc`
//! runs its ELF files through an emulator (qemu-user), registered by the
//! host (Debian: `qemu-user-static` and `binfmt-support`). Inside the
//! sandbox the emulator's path does not exist, so the registration must
//! carry the fix-binary flag `F` (the kernel opens the interpreter when it
//! is registered). spec/sandbox.md, "Foreign architectures".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// ELF machines and classes: (e_machine, 64-bit, cas architecture name).
pub const MACHINES: &[(u16, bool, &str)] = &[
    (62, true, "x86_64"),
    (3, false, "i686"),
    (183, true, "aarch64"),
    (40, false, "armv7"),
    (243, true, "riscv64"),
    (21, true, "ppc64le"),
    (22, true, "s390x"),
];

/// The cas architecture name of an ELF header's machine and class.
pub fn elf_arch(header: &[u8]) -> Option<&'static str> {
    if header.len() < 20 || !header.starts_with(b"\x7fELF") {
        return None;
    }
    let is_64 = header[4] == 2;
    let little = header[5] == 1;
    let machine = if little {
        u16::from_le_bytes([header[18], header[19]])
    } else {
        u16::from_be_bytes([header[18], header[19]])
    };
    MACHINES
        .iter()
        .find(|(m, b, _)| *m == machine && *b == is_64)
        .map(|(_, _, n)| *n)
}

/// Whether this machine runs `arch` natively (x86_64 runs i686 too).
pub fn runs_natively(arch: &str) -> bool {
    let host = std::env::consts::ARCH;
    arch == host || (host == "x86_64" && arch == "i686") || (host == "aarch64" && arch == "armv7")
}

/// An emulator that runs a foreign sysroot's ELF files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The host's registration name (`qemu-aarch64`), or `cas-<arch>` for
    /// one cas registers itself.
    pub name: String,
    /// Its interpreter, symlinks resolved.
    pub interpreter: PathBuf,
    /// blake3 of the interpreter file, hex: what enters the key.
    pub digest: String,
    /// Whether the interpreter gets the program's own `argv[0]` (flag `P`:
    /// what the program sees, so it is in the key).
    pub preserve_argv0: bool,
    /// `None`: the host's registration runs it. `Some`: no usable host
    /// registration; cas registers the interpreter in the sandbox's own
    /// user namespace (a private binfmt_misc instance, Linux 6.7 and later).
    pub private: Option<Registration>,
}

impl Emulator {
    /// What enters the key after the architecture: the interpreter's digest
    /// and its argv[0] convention. Not the registration's name nor who made
    /// it, so the same qemu gives the same key with or without the host's
    /// registration.
    pub fn key_values(&self) -> [String; 2] {
        [
            self.digest.clone(),
            if self.preserve_argv0 {
                "preserve-argv0"
            } else {
                "replace-argv0"
            }
            .into(),
        ]
    }
}

/// A binfmt_misc registration line that cas writes into the sandbox's own
/// instance (`:name:M:offset:magic:mask:interpreter:flags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub line: Vec<u8>,
}

impl Registration {
    /// The registration of `interpreter` for ELF files of the machine and
    /// class of `header` (qemu's own magic and mask: executables and shared
    /// objects, any OS ABI), with flag `F` and `P` if asked.
    pub fn for_header(
        name: &str,
        header: &[u8],
        interpreter: &Path,
        preserve_argv0: bool,
    ) -> Option<Registration> {
        use std::os::unix::ffi::OsStrExt;
        if header.len() < 20 || !header.starts_with(b"\x7fELF") {
            return None;
        }
        let big = header[5] == 2;
        let mut magic = header[..20].to_vec();
        magic[7..16].fill(0);
        let (ty, ty_mask) = if big {
            ([0, 2], [0xff, 0xfe])
        } else {
            ([2, 0], [0xfe, 0xff])
        };
        magic[16..18].copy_from_slice(&ty);
        let mut mask = vec![0xffu8; 20];
        mask[7] = 0;
        mask[16..18].copy_from_slice(&ty_mask);
        let path = interpreter.as_os_str().as_bytes();
        if path.contains(&b':') || path.contains(&b'\n') || path.len() > 200 {
            return None;
        }
        let mut line = format!(":{name}:M:0:").into_bytes();
        let escape = |line: &mut Vec<u8>, bytes: &[u8]| {
            for b in bytes {
                line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
        };
        escape(&mut line, &magic);
        line.push(b':');
        escape(&mut line, &mask);
        line.push(b':');
        line.extend_from_slice(path);
        line.extend_from_slice(if preserve_argv0 { b":PF" } else { b":F" });
        Some(Registration { line })
    }
}

/// Where registrations are read: `/proc/sys/fs/binfmt_misc`, or
/// `CAS_BINFMT_DIR` (tests).
fn binfmt_dir() -> PathBuf {
    std::env::var_os("CAS_BINFMT_DIR")
        .map_or_else(|| PathBuf::from("/proc/sys/fs/binfmt_misc"), PathBuf::from)
}

struct Entry {
    enabled: bool,
    interpreter: PathBuf,
    flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn parse(text: &str) -> Option<Entry> {
    let mut e = Entry {
        enabled: false,
        interpreter: PathBuf::new(),
        flags: String::new(),
        offset: 0,
        magic: Vec::new(),
        mask: Vec::new(),
    };
    for l in text.lines() {
        if l == "enabled" {
            e.enabled = true;
        } else if let Some(v) = l.strip_prefix("interpreter ") {
            e.interpreter = PathBuf::from(v);
        } else if let Some(v) = l.strip_prefix("flags: ") {
            e.flags = v.to_string();
        } else if let Some(v) = l.strip_prefix("offset ") {
            e.offset = v.parse().ok()?;
        } else if let Some(v) = l.strip_prefix("magic ") {
            e.magic = unhex(v)?;
        } else if let Some(v) = l.strip_prefix("mask ") {
            e.mask = unhex(v)?;
        }
    }
    (!e.magic.is_empty()).then_some(e)
}

fn matches(e: &Entry, header: &[u8]) -> bool {
    e.magic.iter().enumerate().all(|(i, m)| {
        let mask = e.mask.get(i).copied().unwrap_or(0xff);
        header
            .get(e.offset + i)
            .is_some_and(|b| b & mask == m & mask)
    })
}

fn digest_of(path: &Path) -> Option<String> {
    static MEMO: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(d) = memo.lock().ok()?.get(path) {
        return Some(d.clone());
    }
    let mut h = blake3::Hasher::new();
    h.update_mmap(path).ok()?;
    let d = h.finalize().to_hex().to_string();
    memo.lock().ok()?.insert(path.to_path_buf(), d.clone());
    Some(d)
}

/// qemu's name for a cas architecture.
fn qemu_name(arch: &str) -> &str {
    match arch {
        "i686" => "i386",
        "armv7" => "arm",
        a => a,
    }
}

/// Why a foreign sysroot cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEmulator {
    /// No enabled registration matches the ELF header, and cas found no
    /// static qemu-user to register itself.
    Missing,
    /// One matches, without the fix-binary flag (its interpreter would not
    /// be found inside the sandbox), and cas found no static qemu-user.
    NotFixed { name: String },
    /// A static qemu-user is there, but this kernel gives a user namespace
    /// no binfmt_misc instance of its own (Linux < 6.7) and the host
    /// registered none.
    NoPrivateBinfmt { interpreter: PathBuf },
}

impl NoEmulator {
    /// What to tell the user, for a sysroot of `arch`.
    pub fn advice(&self, arch: &str) -> String {
        let q = qemu_name(arch);
        match self {
            NoEmulator::Missing => format!(
                "no emulator for {arch}: install Debian's `qemu-user-static` (cas then registers qemu-{q}-static in the sandbox's own binfmt_misc on Linux 6.7 and later; on older kernels also install `binfmt-support` and run `update-binfmts --enable qemu-{q}`)"
            ),
            NoEmulator::NotFixed { name } => format!(
                "the binfmt_misc registration `{name}` for {arch} lacks the fix-binary flag F, so its interpreter cannot be found inside the sandbox: register it with flags F (Debian's `qemu-user-static` does), or install `qemu-user-static` so that cas can register qemu-{q}-static itself"
            ),
            NoEmulator::NoPrivateBinfmt { interpreter } => format!(
                "{} is installed, but this kernel gives a sandbox no binfmt_misc of its own (Linux 6.7 and later do) and the host registered no emulator for {arch}: install `binfmt-support` and run `update-binfmts --enable qemu-{q}`",
                interpreter.display()
            ),
        }
    }
}

/// The emulator that would run an ELF file starting with `header` (of a
/// foreign architecture `arch`): the host's registration if one matches with
/// flag `F`, else a static qemu-user that cas registers in the sandbox.
pub fn emulator_for(header: &[u8]) -> Result<Emulator, NoEmulator> {
    let why = match host_emulator(header) {
        Ok(e) => return Ok(e),
        Err(why) => why,
    };
    let Some(arch) = elf_arch(header) else {
        return Err(why);
    };
    let Some((interpreter, registered, preserve_argv0)) = static_qemu(qemu_name(arch)) else {
        return Err(why);
    };
    if !private_binfmt_supported() {
        return Err(NoEmulator::NoPrivateBinfmt { interpreter });
    }
    let name = format!("cas-{arch}");
    let (Some(digest), Some(registration)) = (
        digest_of(&interpreter),
        Registration::for_header(&name, header, &registered, preserve_argv0),
    ) else {
        return Err(why);
    };
    Ok(Emulator {
        name,
        interpreter,
        digest,
        preserve_argv0,
        private: Some(registration),
    })
}

fn host_emulator(header: &[u8]) -> Result<Emulator, NoEmulator> {
    let dir = binfmt_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "register" && n != "status")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut not_fixed = None;
    for name in names {
        let Some(e) = std::fs::read_to_string(dir.join(&name))
            .ok()
            .as_deref()
            .and_then(parse)
        else {
            continue;
        };
        if !e.enabled || !matches(&e, header) {
            continue;
        }
        if !e.flags.contains('F') {
            not_fixed.get_or_insert(name);
            continue;
        }
        let interpreter = std::fs::canonicalize(&e.interpreter).unwrap_or(e.interpreter);
        if let Some(digest) = digest_of(&interpreter) {
            return Ok(Emulator {
                name,
                interpreter,
                digest,
                preserve_argv0: e.flags.contains('P'),
                private: None,
            });
        }
    }
    Err(not_fixed.map_or(NoEmulator::Missing, |name| NoEmulator::NotFixed { name }))
}

/// A statically linked `qemu-Q-static`: in `CAS_QEMU_DIR` if set (tests),
/// else in `PATH` and `/usr/bin`. Returns the resolved file, the path to
/// register (Debian's `/usr/libexec/qemu-binfmt/Q-binfmt-P` when it is the
/// same file: qemu then expects the program's argv[0], flag `P`), and
/// whether that is the case.
fn static_qemu(q: &str) -> Option<(PathBuf, PathBuf, bool)> {
    let file = format!("qemu-{q}-static");
    let dirs: Vec<PathBuf> = match std::env::var_os("CAS_QEMU_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/bin")])
            .collect(),
    };
    let found = dirs
        .iter()
        .map(|d| d.join(&file))
        .find(|p| is_static_elf(p))?;
    let resolved = std::fs::canonicalize(&found).ok()?;
    let p_wrapper = PathBuf::from(format!("/usr/libexec/qemu-binfmt/{q}-binfmt-P"));
    if std::env::var_os("CAS_QEMU_DIR").is_none()
        && std::fs::canonicalize(&p_wrapper).is_ok_and(|w| w == resolved)
    {
        return Some((resolved, p_wrapper, true));
    }
    Some((resolved.clone(), resolved, false))
}

/// An ELF executable of this machine without an interpreter (`PT_INTERP`):
/// one the kernel can start inside a sandbox whose files are foreign.
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let Some(arch) = elf_arch(&bytes) else {
        return false;
    };
    if !runs_natively(arch) || bytes[5] != 1 || bytes[4] != 2 {
        return false;
    }
    // 64-bit little-endian program headers: e_phoff at 32, e_phentsize at
    // 54, e_phnum at 56; PT_INTERP is type 3.
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let (Some(phoff), Some(size), Some(num)) = (
        bytes
            .get(32..40)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize),
        u16_at(54),
        u16_at(56),
    ) else {
        return false;
    };
    (0..num as usize).all(|i| {
        bytes
            .get(phoff + i * size as usize..phoff + i * size as usize + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != 3)
    })
}

/// Whether a user namespace gets a binfmt_misc instance of its own here
/// (Linux 6.7 and later): probed once per process, by starting bwrap's
/// `--version` in such a namespace after mounting one.
pub fn private_binfmt_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(bwrap) = crate::check::bwrap_path() else {
            return false;
        };
        let ns = crate::userns::Namespaces::prepare();
        let mut cmd = std::process::Command::new(bwrap);
        cmd.arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: the closure only makes async-signal-safe calls.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                ns.enter()?;
                crate::userns::mount_binfmt_misc(None)
            });
        }
        cmd.status().is_ok_and(|s| s.success())
    })
}

/// For the sysroot made of `layers` (topmost first): the registration cas
/// must make in the sandbox for its `/bin/sh` to run, if it is foreign and
/// no host registration runs it.
pub fn private_registration(layers: &[PathBuf]) -> Option<Registration> {
    let sh =
        crate::check::resolve_in_layers(crate::Layers::new(layers), Path::new(crate::shell::SHELL))
            .ok()?;
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut std::fs::File::open(sh).ok()?, &mut head).ok()?;
    let arch = elf_arch(&head[..n])?;
    if runs_natively(arch) {
        return None;
    }
    emulator_for(&head[..n]).ok()?.private
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_matched_by_magic_and_mask() {
        let e = parse("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n").unwrap();
        let mut arm = vec![
            0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 183, 0,
        ];
        assert!(matches(&e, &arm));
        assert_eq!(elf_arch(&arm), Some("aarch64"));
        arm[18] = 62;
        assert!(!matches(&e, &arm));
        assert_eq!(elf_arch(&arm), Some("x86_64"));
        assert_eq!(e.flags, "PF");
        assert!(NoEmulator::Missing
            .advice("aarch64")
            .contains("qemu-user-static"));
    }

    #[test]
    fn a_private_registration_uses_qemus_magic_and_mask() {
        // qemu-binfmt-conf.sh's aarch64 entry, the one Debian registers
        let mut header = vec![
            0x7f, b'E', b'L', b'F', 2, 1, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 183, 0,
        ];
        header.extend_from_slice(&[9; 44]);
        let r = Registration::for_header(
            "cas-aarch64",
            &header,
            Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P"),
            true,
        )
        .unwrap();
        let hex = |h: &str| -> String {
            unhex(h)
                .unwrap()
                .iter()
                .map(|b| format!("\\x{b:02x}"))
                .collect()
        };
        let want = format!(
            ":cas-aarch64:M:0:{}:{}:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF",
            hex("7f454c460201010000000000000000000200b700"),
            hex("ffffffffffffff00fffffffffffffffffeffffff"),
        );
        assert_eq!(String::from_utf8(r.line).unwrap(), want);
        // what cannot be written into a registration line is refused
        assert!(Registration::for_header("x", &header, Path::new("/a:b"), false).is_none());
        assert!(Registration::for_header("x", b"#!/bin/sh", Path::new("/q"), false).is_none());
        // big-endian machines: e_type is the other way round
        let mut be = header.clone();
        be[5] = 2;
        let r = Registration::for_header("x", &be, Path::new("/q"), false).unwrap();
        let text = String::from_utf8(r.line).unwrap();
        assert!(text.contains("\\x00\\x02\\xb7\\x00:"), "{text}");
        assert!(text.ends_with(":/q:F"), "{text}");
    }
}

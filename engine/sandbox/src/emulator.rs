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

/// A registered emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The registration's name (`qemu-aarch64`).
    pub name: String,
    /// Its interpreter, symlinks resolved.
    pub interpreter: PathBuf,
    /// blake3 of the interpreter file, hex: what enters the key.
    pub digest: String,
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

/// Why a foreign sysroot cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEmulator {
    /// No enabled registration matches the ELF header.
    Missing,
    /// One matches, without the fix-binary flag (its interpreter would not
    /// be found inside the sandbox).
    NotFixed { name: String },
}

impl NoEmulator {
    /// What to tell the user, for a sysroot of `arch`.
    pub fn advice(&self, arch: &str) -> String {
        let q = match arch {
            "i686" => "i386",
            "armv7" => "arm",
            "ppc64le" => "ppc64le",
            a => a,
        };
        match self {
            NoEmulator::Missing => format!(
                "no emulator for {arch} is registered with binfmt_misc: install Debian's `qemu-user-static` and `binfmt-support` (then `update-binfmts --enable qemu-{q}`; binfmt_misc must be mounted at /proc/sys/fs/binfmt_misc)"
            ),
            NoEmulator::NotFixed { name } => format!(
                "the binfmt_misc registration `{name}` for {arch} lacks the fix-binary flag F, so its interpreter cannot be found inside the sandbox: register it with flags F (Debian's `qemu-user-static` does)"
            ),
        }
    }
}

/// The emulator that would run an ELF file starting with `header`.
pub fn emulator_for(header: &[u8]) -> Result<Emulator, NoEmulator> {
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
            });
        }
    }
    Err(not_fixed.map_or(NoEmulator::Missing, |name| NoEmulator::NotFixed { name }))
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
}

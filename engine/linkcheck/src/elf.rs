//! What an ELF file asks of the dynamic loader: its `DT_NEEDED` libraries,
//! its `DT_RUNPATH` (or `DT_RPATH`) and its `PT_INTERP` interpreter.

use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{elf, Endianness};

/// The dynamic-linking requests of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub needed: Vec<String>,
    /// `DT_RUNPATH`, else `DT_RPATH`, split at `:`.
    pub runpath: Vec<String>,
    pub interpreter: Option<String>,
    pub is_64: bool,
    pub machine: u16,
}

/// Whether `head` starts like an ELF file.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// The dynamic-linking requests of `data`, or `None` when it is not a
/// dynamically linked ELF executable or shared object (static programs,
/// object files, separate debug files, malformed files).
pub fn dynamic(data: &[u8]) -> Option<Dynamic> {
    match data.get(4)? {
        1 => read::<elf::FileHeader32<Endianness>>(data, false),
        2 => read::<elf::FileHeader64<Endianness>>(data, true),
        _ => None,
    }
}

fn read<H: FileHeader<Endian = Endianness>>(data: &[u8], is_64: bool) -> Option<Dynamic> {
    let h = H::parse(data).ok()?;
    let e = h.endian().ok()?;
    let t = h.e_type(e);
    if t != elf::ET_EXEC && t != elf::ET_DYN {
        return None;
    }
    let mut d = Dynamic {
        is_64,
        machine: h.e_machine(e),
        ..Dynamic::default()
    };
    for ph in h.program_headers(e, data).ok()? {
        if let Ok(Some(i)) = ph.interpreter(e, data) {
            d.interpreter = Some(String::from_utf8_lossy(i).into_owned());
        }
    }
    let sections = h.sections(e, data).ok()?;
    let (dyns, link) = sections.dynamic(e, data).ok()??;
    let strings = sections.strings(e, data, link).ok()?;
    let (mut runpath, mut rpath) = (None, None);
    for entry in dyns {
        let Some(tag) = entry.tag32(e) else { continue };
        let text = || {
            entry
                .string(e, strings)
                .ok()
                .map(|s| String::from_utf8_lossy(s).into_owned())
        };
        match tag {
            elf::DT_NEEDED => d.needed.extend(text()),
            elf::DT_RUNPATH => runpath = text(),
            elf::DT_RPATH => rpath = text(),
            elf::DT_NULL => break,
            _ => {}
        }
    }
    if let Some(p) = runpath.or(rpath) {
        d.runpath = p
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    if d.needed.is_empty() && d.interpreter.is_none() {
        return None;
    }
    Some(d)
}

/// Debian's multiarch directory name for an ELF machine and class.
pub fn multiarch(machine: u16, is_64: bool) -> Option<&'static str> {
    Some(match (machine, is_64) {
        (elf::EM_X86_64, true) => "x86_64-linux-gnu",
        (elf::EM_386, false) => "i386-linux-gnu",
        (elf::EM_AARCH64, true) => "aarch64-linux-gnu",
        (elf::EM_ARM, false) => "arm-linux-gnueabihf",
        (elf::EM_RISCV, true) => "riscv64-linux-gnu",
        (elf::EM_PPC64, true) => "powerpc64le-linux-gnu",
        (elf::EM_S390, true) => "s390x-linux-gnu",
        (elf::EM_MIPS, true) => "mips64el-linux-gnuabi64",
        _ => return None,
    })
}

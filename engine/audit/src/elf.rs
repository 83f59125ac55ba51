//! ELF files: which sections differ (compared by name, content and size),
//! which header fields, and which symbols moved or changed size.

use object::{Object, ObjectSection, ObjectSymbol};
use serde::Serialize;

use crate::content::{field, unique_names, Detail, FieldChange};

/// Most symbols listed.
pub const MAX_SYMBOLS: usize = 100;

/// Bytes shown around the first difference of a changed section.
pub const WINDOW: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionChange {
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub size_a: Option<u64>,
    pub size_b: Option<u64>,
    /// For a changed section: the offset (in the section) of its first
    /// differing byte, and the section's address there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<u64>,
    /// Both sides around it (16 bytes before, up to [`WINDOW`] in all), as
    /// hexdump lines `ADDRESS  HEX  |ASCII|`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hex_a: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hex_b: Vec<String>,
    /// For a code section: the disassembly around the change, both sides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disassembly: Option<Disassembly>,
}

/// Instructions around a change, as `objdump -d` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disassembly {
    /// Which objdump: `objdump (host: /usr/bin/objdump)`.
    pub tool: String,
    pub a: Vec<String>,
    pub b: Vec<String>,
}

/// A hexdump of `data[start..end]`, 16 bytes a line, addressed from `base`.
fn hexdump(data: &[u8], start: usize, end: usize, base: u64) -> Vec<String> {
    let end = end.min(data.len());
    let mut out = Vec::new();
    let mut off = start;
    while off < end {
        let line = &data[off..(off + 16).min(end)];
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = line
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() || *b == b' ' {
                    *b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push(format!(
            "{:08x}  {:<47}  |{ascii}|",
            base + off as u64,
            hex.join(" ")
        ));
        off += 16;
    }
    out
}

/// `objdump` on this machine's PATH, if any.
fn objdump() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("objdump"))
            .find(|f| f.is_file())
    })
}

/// `objdump -d` of the section between two addresses, from a temporary copy.
fn disassemble(
    tool: &std::path::Path,
    bytes: &[u8],
    section: &str,
    from: u64,
    to: u64,
) -> Vec<String> {
    let Ok(dir) = tempfile::tempdir() else {
        return Vec::new();
    };
    let file = dir.path().join("elf");
    if std::fs::write(&file, bytes).is_err() {
        return Vec::new();
    }
    // a clean environment: nothing of the caller's reaches objdump, which
    // only ever sees a private copy of the bytes
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let Ok(out) = std::process::Command::new(tool)
        .env_clear()
        .env("PATH", path)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .args(["-d", "--no-show-raw-insn", "-j", section])
        .arg(format!("--start-address={from:#x}"))
        .arg(format!("--stop-address={to:#x}"))
        .arg(&file)
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(' ') && l.contains(':'))
        .take(24)
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolChange {
    pub name: String,
    /// `added`, `removed` or `changed` (address or size).
    pub change: &'static str,
    /// `ADDRESS+SIZE` in hex, when present on that side.
    pub a: Option<String>,
    pub b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfDiff {
    pub header: Vec<FieldChange>,
    /// Sections whose content or size differ, in A's section order, then B's new ones.
    pub sections: Vec<SectionChange>,
    pub symbols: Vec<SymbolChange>,
    pub symbols_truncated: bool,
}

struct Section<'a> {
    size: u64,
    address: u64,
    code: bool,
    data: Option<&'a [u8]>,
}

fn sections<'a>(f: &object::File<'a>) -> Vec<(String, Section<'a>)> {
    unique_names(f.sections().filter_map(|s| {
        let name = String::from_utf8_lossy(s.name_bytes().ok()?).into_owned();
        if name.is_empty() {
            return None; // the null section
        }
        Some((
            name,
            Section {
                size: s.size(),
                address: s.address(),
                code: s.kind() == object::SectionKind::Text,
                data: s.data().ok(),
            },
        ))
    }))
}

fn symbols(f: &object::File<'_>) -> Vec<(String, (u64, u64))> {
    let named = |s: object::Symbol<'_, '_>| -> Option<(String, (u64, u64))> {
        let n = s.name_bytes().ok()?;
        if n.is_empty() {
            return None;
        }
        Some((
            String::from_utf8_lossy(n).into_owned(),
            (s.address(), s.size()),
        ))
    };
    let mut v: Vec<_> = f.symbols().filter_map(named).collect();
    v.extend(
        f.dynamic_symbols()
            .filter_map(named)
            .map(|(n, x)| (format!("{n}@dyn"), x)),
    );
    unique_names(v)
}

/// A section present on both sides whose bytes differ: where, and what.
fn changed_section(
    name: &str,
    x: &Section<'_>,
    y: &Section<'_>,
    a: &[u8],
    b: &[u8],
) -> SectionChange {
    let mut c = SectionChange {
        name: name.to_string(),
        change: "changed",
        size_a: Some(x.size),
        size_b: Some(y.size),
        first_difference: None,
        hex_a: Vec::new(),
        hex_b: Vec::new(),
        disassembly: None,
    };
    let (Some(da), Some(db)) = (x.data, y.data) else {
        return c;
    };
    let first = da
        .iter()
        .zip(db)
        .position(|(p, q)| p != q)
        .unwrap_or(da.len().min(db.len()));
    c.first_difference = Some(first as u64);
    let start = first.saturating_sub(16) & !15;
    let end = start + WINDOW;
    c.hex_a = hexdump(da, start, end, x.address);
    c.hex_b = hexdump(db, start, end, y.address);
    if x.code && y.code {
        if let Some(tool) = objdump() {
            let around = |s: &Section<'_>| {
                let at = s.address + first as u64;
                (at.saturating_sub(16).max(s.address), at + 32)
            };
            let (fa, ta) = around(x);
            let (fb, tb) = around(y);
            let (da, db) = (
                disassemble(&tool, a, name, fa, ta),
                disassemble(&tool, b, name, fb, tb),
            );
            // the host's objdump may not know the file's machine: then nothing is said
            if !da.is_empty() || !db.is_empty() {
                c.disassembly = Some(Disassembly {
                    tool: format!("objdump (host: {})", tool.display()),
                    a: da,
                    b: db,
                });
            }
        }
    }
    c
}

/// Compares two ELF files; `Unreadable` when either does not parse.
pub fn diff(a: &[u8], b: &[u8]) -> Detail {
    let fa = match object::File::parse(a) {
        Ok(f) => f,
        Err(e) => {
            return Detail::Unreadable {
                reason: format!("A is not a readable ELF file: {e}"),
            }
        }
    };
    let fb = match object::File::parse(b) {
        Ok(f) => f,
        Err(e) => {
            return Detail::Unreadable {
                reason: format!("B is not a readable ELF file: {e}"),
            }
        }
    };
    let mut header = Vec::new();
    field(
        &mut header,
        "class",
        if fa.is_64() { "ELF64" } else { "ELF32" },
        if fb.is_64() { "ELF64" } else { "ELF32" },
    );
    field(
        &mut header,
        "machine",
        format!("{:?}", fa.architecture()),
        format!("{:?}", fb.architecture()),
    );
    field(
        &mut header,
        "type",
        format!("{:?}", fa.kind()),
        format!("{:?}", fb.kind()),
    );
    field(
        &mut header,
        "entry",
        format!("{:#x}", fa.entry()),
        format!("{:#x}", fb.entry()),
    );

    let sa = sections(&fa);
    let sb = sections(&fb);
    let mut out = Vec::new();
    for (name, x) in &sa {
        match sb.iter().find(|(n, _)| n == name) {
            None => out.push(SectionChange {
                name: name.clone(),
                change: "removed",
                size_a: Some(x.size),
                size_b: None,
                first_difference: None,
                hex_a: Vec::new(),
                hex_b: Vec::new(),
                disassembly: None,
            }),
            Some((_, y)) => {
                if x.size != y.size || x.data != y.data {
                    out.push(changed_section(name, x, y, a, b));
                }
            }
        }
    }
    for (name, y) in &sb {
        if !sa.iter().any(|(n, _)| n == name) {
            out.push(SectionChange {
                name: name.clone(),
                change: "added",
                size_a: None,
                size_b: Some(y.size),
                first_difference: None,
                hex_a: Vec::new(),
                hex_b: Vec::new(),
                disassembly: None,
            });
        }
    }

    let (ya, yb) = (symbols(&fa), symbols(&fb));
    let mb: std::collections::HashMap<&str, (u64, u64)> =
        yb.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let ma: std::collections::HashMap<&str, (u64, u64)> =
        ya.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let show = |(addr, size): (u64, u64)| format!("{addr:#x}+{size:#x}");
    let mut syms = Vec::new();
    for (name, x) in &ya {
        match mb.get(name.as_str()) {
            None => syms.push(SymbolChange {
                name: name.clone(),
                change: "removed",
                a: Some(show(*x)),
                b: None,
            }),
            Some(y) if y != x => syms.push(SymbolChange {
                name: name.clone(),
                change: "changed",
                a: Some(show(*x)),
                b: Some(show(*y)),
            }),
            Some(_) => {}
        }
    }
    for (name, y) in &yb {
        if !ma.contains_key(name.as_str()) {
            syms.push(SymbolChange {
                name: name.clone(),
                change: "added",
                a: None,
                b: Some(show(*y)),
            });
        }
    }
    let symbols_truncated = syms.len() > MAX_SYMBOLS;
    syms.truncate(MAX_SYMBOLS);
    Detail::Elf(ElfDiff {
        header,
        sections: out,
        symbols: syms,
        symbols_truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unreadable_not_a_panic() {
        let mut seed = 0x1234_5678u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [4usize, 16, 52, 64, 200, 4096] {
            for _ in 0..200 {
                let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                v[..4].copy_from_slice(b"\x7fELF");
                if len > 5 {
                    v[4] = 1 + (next() % 2) as u8;
                    v[5] = 1 + (next() % 2) as u8;
                }
                let _ = diff(&v, b"\x7fELF");
                let _ = diff(&v, &v);
            }
        }
    }
}

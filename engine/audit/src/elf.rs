//! ELF files: which sections differ (compared by name, content and size),
//! which header fields, and which symbols moved or changed size.

use object::{Object, ObjectSection, ObjectSymbol};
use serde::Serialize;

use crate::content::{field, unique_names, Detail, FieldChange};

/// Most symbols listed.
pub const MAX_SYMBOLS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionChange {
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub size_a: Option<u64>,
    pub size_b: Option<u64>,
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
            }),
            Some((_, y)) => {
                if x.size != y.size || x.data != y.data {
                    out.push(SectionChange {
                        name: name.clone(),
                        change: "changed",
                        size_a: Some(x.size),
                        size_b: Some(y.size),
                    });
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

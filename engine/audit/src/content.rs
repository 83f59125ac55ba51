//! What differs inside two versions of a file: the format is recognised from
//! the bytes (ELF, ar, gzip, tar, text), then compared by the reader of that
//! format. Nested formats (a gzip of a tar of ELF files, ELF members of an
//! `ar` archive) are followed up to [`MAX_DEPTH`] levels.

use serde::Serialize;

use crate::{ar, archive, elf, text};

/// How deep nested formats are followed.
pub const MAX_DEPTH: usize = 4;
/// Largest file (each side) whose content is compared.
pub const MAX_CONTENT: u64 = 64 << 20;

/// A field that differs between A and B (a header field, a member's mode...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub a: String,
    pub b: String,
}

impl FieldChange {
    pub fn new(field: impl Into<String>, a: impl ToString, b: impl ToString) -> FieldChange {
        FieldChange {
            field: field.into(),
            a: a.to_string(),
            b: b.to_string(),
        }
    }
}

/// Pushes a field change when the values differ.
pub fn field<T: PartialEq + std::fmt::Display>(out: &mut Vec<FieldChange>, name: &str, a: T, b: T) {
    if a != b {
        out.push(FieldChange::new(name, a, b));
    }
}

/// An archive member that was added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberChange {
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// Header fields that differ (changed members only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// What differs in the member's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<Detail>>,
}

/// What differs inside a changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum Detail {
    Text(text::TextDiff),
    Elf(elf::ElfDiff),
    Ar(ar::ArDiff),
    Tar(archive::TarDiff),
    Gzip(archive::GzipDiff),
    /// xz (the members of a `.deb`): the decompressed content by its own format.
    Xz(archive::XzDiff),
    /// Bytes with no known structure: where they first differ.
    Binary {
        size_a: u64,
        size_b: u64,
        first_difference: Option<u64>,
    },
    /// Too large to compare in memory.
    #[serde(rename = "too-large")]
    TooLarge {
        limit: u64,
    },
    /// A known format that could not be read (truncated, malformed).
    Unreadable {
        reason: String,
    },
}

/// The recognised format of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    Ar,
    Gzip,
    Xz,
    Tar,
    Text,
    Binary,
}

pub fn sniff(b: &[u8]) -> Format {
    if b.starts_with(b"\x7fELF") {
        Format::Elf
    } else if b.starts_with(b"!<arch>\n") || b.starts_with(b"!<thin>\n") {
        Format::Ar
    } else if b.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Format::Xz
    } else if archive::looks_like_tar(b) {
        Format::Tar
    } else if text::is_text(b) {
        Format::Text
    } else {
        Format::Binary
    }
}

/// Compares two different byte strings; `name` labels a text diff's header.
pub fn compare(a: &[u8], b: &[u8], name: &str, depth: usize) -> Detail {
    let (fa, fb) = (sniff(a), sniff(b));
    if depth < MAX_DEPTH && fa == fb {
        match fa {
            Format::Elf => return elf::diff(a, b),
            Format::Ar => return ar::diff(a, b, depth),
            Format::Gzip => return archive::gzip_diff(a, b, name, depth),
            Format::Xz => return archive::xz_diff(a, b, name, depth),
            Format::Tar => return archive::tar_diff(a, b, depth),
            Format::Text => return Detail::Text(text::diff(a, b, name)),
            Format::Binary => {}
        }
    }
    if fa == Format::Text && fb == Format::Text {
        return Detail::Text(text::diff(a, b, name));
    }
    binary(a, b)
}

pub fn binary(a: &[u8], b: &[u8]) -> Detail {
    let first = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or(if a.len() == b.len() {
            None
        } else {
            Some(a.len().min(b.len()))
        });
    Detail::Binary {
        size_a: a.len() as u64,
        size_b: b.len() as u64,
        first_difference: first.map(|p| p as u64),
    }
}

/// Suffixes repeated names `#2`, `#3`... so that members can be matched by
/// name even when a name occurs more than once.
pub fn unique_names<T>(items: impl IntoIterator<Item = (String, T)>) -> Vec<(String, T)> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    items
        .into_iter()
        .map(|(name, v)| {
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                (name, v)
            } else {
                (format!("{name}#{n}"), v)
            }
        })
        .collect()
}

/// Matches members of A and B by name (A's order, then B's new names) and
/// reports added, removed and changed members. `fields(a, b)` lists header
/// differences; content differences are compared one level deeper.
pub fn compare_members<T>(
    a: Vec<(String, T)>,
    b: Vec<(String, T)>,
    depth: usize,
    limit: usize,
    content: impl Fn(&T) -> Option<&[u8]>,
    fields: impl Fn(&T, &T) -> Vec<FieldChange>,
) -> (Vec<MemberChange>, bool) {
    let a = unique_names(a);
    let b = unique_names(b);
    let bmap: std::collections::HashMap<&str, &T> =
        b.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let amap: std::collections::HashSet<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = Vec::new();
    let mut truncated = false;
    let mut push = |m: MemberChange, out: &mut Vec<MemberChange>| {
        if out.len() < limit {
            out.push(m);
        } else {
            truncated = true;
        }
    };
    for (name, va) in &a {
        match bmap.get(name.as_str()) {
            None => push(
                MemberChange {
                    name: name.clone(),
                    change: "removed",
                    fields: vec![],
                    detail: None,
                },
                &mut out,
            ),
            Some(vb) => {
                let f = fields(va, vb);
                let (ca, cb) = (content(va), content(*vb));
                let differs = ca != cb;
                if f.is_empty() && !differs {
                    continue;
                }
                let detail = match (ca, cb) {
                    (Some(x), Some(y)) if differs => Some(Box::new(compare(x, y, name, depth + 1))),
                    _ => None,
                };
                push(
                    MemberChange {
                        name: name.clone(),
                        change: "changed",
                        fields: f,
                        detail,
                    },
                    &mut out,
                );
            }
        }
    }
    for (name, _) in &b {
        if !amap.contains(name.as_str()) {
            push(
                MemberChange {
                    name: name.clone(),
                    change: "added",
                    fields: vec![],
                    detail: None,
                },
                &mut out,
            );
        }
    }
    (out, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(files: &[(&str, &[u8], u64)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, mtime) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(*mtime);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip_of(data: &[u8], mtime: u32) -> Vec<u8> {
        let mut e = flate2::GzBuilder::new()
            .mtime(mtime)
            .write(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn ar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut v = b"!<arch>\n".to_vec();
        for (name, data) in members {
            v.extend_from_slice(
                format!(
                    "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    format!("{name}/"),
                    0,
                    0,
                    0,
                    "100644",
                    data.len()
                )
                .as_bytes(),
            );
            v.extend_from_slice(data);
            if data.len() % 2 == 1 {
                v.push(b'\n');
            }
        }
        v
    }

    #[test]
    fn formats_are_recognised_and_compared() {
        let a = tar_of(&[("x", b"1\n", 0), ("y", b"same\n", 0), ("gone", b"", 0)]);
        let b = tar_of(&[("x", b"2\n", 0), ("y", b"same\n", 5), ("new", b"", 0)]);
        let Detail::Tar(t) = compare(&a, &b, "t.tar", 0) else {
            panic!("not tar")
        };
        let names: Vec<(&str, &str)> = t
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.change))
            .collect();
        assert_eq!(
            names,
            [
                ("x", "changed"),
                ("y", "changed"),
                ("gone", "removed"),
                ("new", "added")
            ]
        );
        assert_eq!(t.members[1].fields, [FieldChange::new("mtime", 0, 5)]);

        let Detail::Gzip(g) = compare(&gzip_of(&a, 1), &gzip_of(&b, 2), "t.tar.gz", 0) else {
            panic!("not gzip")
        };
        assert_eq!(g.header, [FieldChange::new("mtime", 1, 2)]);
        assert!(matches!(g.content.as_deref(), Some(Detail::Tar(_))));

        let Detail::Ar(r) = compare(
            &ar_of(&[("a.o", b"x\n"), ("b.o", b"y\n")]),
            &ar_of(&[("a.o", b"x\n"), ("b.o", b"z\n")]),
            "l.a",
            0,
        ) else {
            panic!("not ar")
        };
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.members[0].name, "b.o");
        assert!(matches!(
            compare(b"\x00\x01", b"\x00\x02", "bin", 0),
            Detail::Binary {
                first_difference: Some(1),
                ..
            }
        ));
    }

    /// Mutated archives, compressed data and ELF files: errors, never panics.
    #[test]
    fn mutated_inputs_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let tar = tar_of(&[("x", b"1\n", 0), ("dir/y", b"hello\n", 3)]);
        let mut samples = vec![
            tar.clone(),
            gzip_of(&tar, 7),
            ar_of(&[("a.o", b"x\n"), ("b.o", b"yy")]),
        ];
        for elf in ["/bin/true", "/usr/bin/true"] {
            if let Ok(b) = std::fs::read(elf) {
                samples.push(b);
                break;
            }
        }
        for s in &samples {
            for _ in 0..300 {
                let mut m = s.clone();
                let flips = 1 + next() % 8;
                for _ in 0..flips {
                    let i = (next() % m.len() as u64) as usize;
                    m[i] = next() as u8;
                }
                if next() % 4 == 0 {
                    m.truncate((next() % m.len() as u64) as usize);
                }
                let _ = compare(s, &m, "f", 0);
                let _ = compare(&m, s, "f", 0);
            }
        }
    }
}

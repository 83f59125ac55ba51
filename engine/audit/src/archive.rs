//! tar archives (members and their headers) and gzip files (header fields,
//! then the decompressed content, compared by its own format).

use std::io::Read;

use serde::Serialize;

use crate::content::{compare, compare_members, field, Detail, FieldChange, MemberChange};

/// Most members listed.
pub const MAX_MEMBERS: usize = 1000;
/// Most members read from one archive.
pub const MAX_ENTRIES: usize = 100_000;
/// Largest decompressed size compared.
pub const MAX_DECOMPRESSED: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TarDiff {
    pub members: Vec<MemberChange>,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GzipDiff {
    pub header: Vec<FieldChange>,
    /// True when only the header differs.
    pub content_identical: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<Detail>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XzDiff {
    /// True when the compressed bytes differ but not what they hold.
    pub content_identical: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<Detail>>,
}

/// A POSIX/GNU tar: "ustar" at offset 257 and a valid header checksum.
pub fn looks_like_tar(b: &[u8]) -> bool {
    if b.len() < 512 || &b[257..262] != b"ustar" {
        return false;
    }
    let stored = std::str::from_utf8(&b[148..156])
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok());
    let sum: u32 = b[..512]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                c as u32
            }
        })
        .sum();
    stored == Some(sum)
}

struct Member {
    kind: String,
    mode: String,
    uid: String,
    gid: String,
    mtime: String,
    user: String,
    group: String,
    link: String,
    size: u64,
    data: Vec<u8>,
}

fn members(b: &[u8]) -> Result<Vec<(String, Member)>, String> {
    let mut ar = tar::Archive::new(b);
    let mut out = Vec::new();
    for e in ar.entries().map_err(|e| e.to_string())? {
        if out.len() >= MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} members"));
        }
        let mut e = e.map_err(|e| e.to_string())?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let h = e.header();
        let s = |r: std::io::Result<u64>| r.map_or_else(|_| "?".into(), |v| v.to_string());
        let m = Member {
            kind: format!("{:?}", h.entry_type()),
            mode: h.mode().map_or_else(|_| "?".into(), |m| format!("{m:o}")),
            uid: s(h.uid()),
            gid: s(h.gid()),
            mtime: s(h.mtime()),
            user: h
                .username_bytes()
                .map(|u| String::from_utf8_lossy(u).into_owned())
                .unwrap_or_default(),
            group: h
                .groupname_bytes()
                .map(|u| String::from_utf8_lossy(u).into_owned())
                .unwrap_or_default(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default(),
            size: e.size(),
            data: Vec::new(),
        };
        let mut m = m;
        // The archive is in memory: a member cannot be larger than it.
        (&mut e)
            .take(b.len() as u64)
            .read_to_end(&mut m.data)
            .map_err(|e| format!("{name}: {e}"))?;
        out.push((name, m));
    }
    Ok(out)
}

pub fn tar_diff(a: &[u8], b: &[u8], depth: usize) -> Detail {
    let (ma, mb) = match (members(a), members(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) => {
            return Detail::Unreadable {
                reason: format!("A is not a readable tar archive: {e}"),
            }
        }
        (_, Err(e)) => {
            return Detail::Unreadable {
                reason: format!("B is not a readable tar archive: {e}"),
            }
        }
    };
    let (members, truncated) = compare_members(
        ma,
        mb,
        depth,
        MAX_MEMBERS,
        |m| Some(m.data.as_slice()),
        |x, y| {
            let mut f = Vec::new();
            field(&mut f, "type", &x.kind, &y.kind);
            field(&mut f, "mode", &x.mode, &y.mode);
            field(&mut f, "uid", &x.uid, &y.uid);
            field(&mut f, "gid", &x.gid, &y.gid);
            field(&mut f, "user", &x.user, &y.user);
            field(&mut f, "group", &x.group, &y.group);
            field(&mut f, "mtime", &x.mtime, &y.mtime);
            field(&mut f, "link", &x.link, &y.link);
            field(&mut f, "size", x.size, y.size);
            f
        },
    );
    Detail::Tar(TarDiff { members, truncated })
}

struct GzHeader {
    flags: u8,
    mtime: u32,
    xfl: u8,
    os: u8,
    name: Option<String>,
    comment: Option<String>,
}

fn gz_header(b: &[u8]) -> Option<GzHeader> {
    if b.len() < 10 {
        return None;
    }
    let mut d = flate2::read::GzDecoder::new(b);
    let _ = d.read(&mut [0u8; 1]);
    let h = d.header();
    Some(GzHeader {
        flags: b[3],
        mtime: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        xfl: b[8],
        os: b[9],
        name: h
            .and_then(|h| h.filename())
            .map(|n| String::from_utf8_lossy(n).into_owned()),
        comment: h
            .and_then(|h| h.comment())
            .map(|n| String::from_utf8_lossy(n).into_owned()),
    })
}

/// Everything `r` decompresses to, refused beyond [`MAX_DECOMPRESSED`].
fn read_bounded(r: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(format!(
            "decompresses to more than {MAX_DECOMPRESSED} bytes"
        ));
    }
    Ok(out)
}

fn gunzip(b: &[u8]) -> Result<Vec<u8>, String> {
    read_bounded(flate2::read::MultiGzDecoder::new(b))
}

fn unxz(b: &[u8]) -> Result<Vec<u8>, String> {
    read_bounded(xz2::read::XzDecoder::new_multi_decoder(b))
}

/// Both sides decompressed, or why one does not decompress.
fn both(
    a: &[u8],
    b: &[u8],
    f: fn(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<(Vec<u8>, Vec<u8>), Detail> {
    match (f(a), f(b)) {
        (Ok(x), Ok(y)) => Ok((x, y)),
        (Err(e), _) => Err(Detail::Unreadable {
            reason: format!("A does not decompress: {e}"),
        }),
        (_, Err(e)) => Err(Detail::Unreadable {
            reason: format!("B does not decompress: {e}"),
        }),
    }
}

/// Two xz streams: what they decompress to, compared by its own format.
pub fn xz_diff(a: &[u8], b: &[u8], name: &str, depth: usize) -> Detail {
    let (ca, cb) = match both(a, b, unxz) {
        Ok(p) => p,
        Err(d) => return d,
    };
    if ca == cb {
        return Detail::Xz(XzDiff {
            content_identical: true,
            content: None,
        });
    }
    let inner = name.strip_suffix(".xz").unwrap_or(name);
    Detail::Xz(XzDiff {
        content_identical: false,
        content: Some(Box::new(compare(&ca, &cb, inner, depth + 1))),
    })
}

pub fn gzip_diff(a: &[u8], b: &[u8], name: &str, depth: usize) -> Detail {
    let (Some(ha), Some(hb)) = (gz_header(a), gz_header(b)) else {
        return Detail::Unreadable {
            reason: "truncated gzip header".into(),
        };
    };
    let mut header = Vec::new();
    field(
        &mut header,
        "flags",
        format!("{:#04x}", ha.flags),
        format!("{:#04x}", hb.flags),
    );
    field(&mut header, "mtime", ha.mtime, hb.mtime);
    field(&mut header, "xfl", ha.xfl, hb.xfl);
    field(&mut header, "os", ha.os, hb.os);
    let o = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    field(&mut header, "name", o(&ha.name), o(&hb.name));
    field(&mut header, "comment", o(&ha.comment), o(&hb.comment));
    let (ca, cb) = match both(a, b, gunzip) {
        Ok(p) => p,
        Err(d) => return d,
    };
    if ca == cb {
        return Detail::Gzip(GzipDiff {
            header,
            content_identical: true,
            content: None,
        });
    }
    let inner = name.strip_suffix(".gz").unwrap_or(name);
    let content = Some(Box::new(compare(&ca, &cb, inner, depth + 1)));
    Detail::Gzip(GzipDiff {
        header,
        content_identical: false,
        content,
    })
}

//! Debian binary packages: a tiny streaming `ar` reader (`!<arch>\n`, then
//! members with 60-byte headers, data padded to an even size) that finds
//! `data.tar[.gz|.xz|.zst|.bz2]` and extracts it with the hostile-safe tar
//! extractor, stripping nothing (`./usr/...` becomes `usr/...`).

use std::io::{self, BufReader, Read};
use std::path::Path;

use cap_std::fs::Dir;

use crate::archive::extract_tar_reader;
use crate::error::{Result, SourceError};

const MAGIC: &[u8; 8] = b"!<arch>\n";

/// One member header of an `ar` archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember {
    pub name: String,
    pub size: u64,
}

fn parse_header(h: &[u8; 60]) -> std::result::Result<ArMember, String> {
    if &h[58..60] != b"`\n" {
        return Err("bad member header terminator".into());
    }
    let name = String::from_utf8_lossy(&h[0..16])
        .trim_end()
        .trim_end_matches('/')
        .to_string();
    let size_text = String::from_utf8_lossy(&h[48..58]).trim().to_string();
    let size = size_text
        .parse::<u64>()
        .map_err(|_| format!("bad size `{size_text}` for member `{name}`"))?;
    Ok(ArMember { name, size })
}

/// Read exactly `buf.len()` bytes, or report a clean end of input (`false`)
/// when nothing at all was left.
fn read_full_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) if n == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated archive",
                ))
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Walk the members of an `ar` stream: `visit` gets each header and a
/// reader limited to the member's data; it returns `true` to stop.
pub fn for_each_member(
    mut reader: impl Read,
    mut visit: impl FnMut(&ArMember, &mut dyn Read) -> std::result::Result<bool, SourceError>,
    label: &str,
) -> Result<()> {
    let bad = |message: String| SourceError::Deb {
        archive: label.to_string(),
        message,
    };
    let mut magic = [0u8; 8];
    if !read_full_or_eof(&mut reader, &mut magic).unwrap_or(false) || &magic != MAGIC {
        return Err(bad("not an ar archive (missing `!<arch>` magic)".into()));
    }
    loop {
        let mut header = [0u8; 60];
        if !read_full_or_eof(&mut reader, &mut header).map_err(|e| bad(e.to_string()))? {
            return Ok(());
        }
        let member = parse_header(&header).map_err(bad)?;
        let mut data = (&mut reader).take(member.size);
        if visit(&member, &mut data)? {
            return Ok(());
        }
        // Skip what the visitor did not read, then the padding byte.
        io::copy(&mut data, &mut io::sink()).map_err(|e| bad(e.to_string()))?;
        if data.limit() != 0 {
            return Err(bad(format!("member `{}` is truncated", member.name)));
        }
        if member.size % 2 == 1 {
            let mut pad = [0u8; 1];
            let _ = reader.read(&mut pad).map_err(|e| bad(e.to_string()))?;
        }
    }
}

/// Extract the data of the Debian package at `path` into `dest`; errors
/// name it as `label` (e.g. its URL as written).
pub fn extract_deb(path: &Path, label: &str, dest: &Dir, keep_setuid: bool) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io("cannot open", path, e))?;
    let mut found = false;
    for_each_member(
        BufReader::new(file),
        |member, data| {
            let is_data = member.name == "data.tar"
                || ["gz", "xz", "zst", "bz2"]
                    .iter()
                    .any(|ext| member.name == format!("data.tar.{ext}"));
            if !is_data {
                return Ok(false);
            }
            found = true;
            let name = format!("{label} ({})", member.name);
            extract_tar_reader(&name, data, dest, keep_setuid)?;
            Ok(true)
        },
        label,
    )?;
    if !found {
        return Err(SourceError::Deb {
            archive: label.to_string(),
            message: "no data.tar member".into(),
        });
    }
    Ok(())
}

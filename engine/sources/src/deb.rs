//! Debian binary packages: a tiny streaming `ar` reader (`!<arch>\n`, then
//! members with 60-byte headers, data padded to an even size) that finds
//! `data.tar[.gz|.xz|.zst|.bz2]` and extracts it with the hostile-safe tar
//! extractor, stripping nothing (`./usr/...` becomes `usr/...`); and, when
//! asked, registers the package in the staged dpkg database as unpacked.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

use crate::archive::{extract_tar_reader_with, Budget};
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
/// name it as `label` (e.g. its URL as written). With `database`, also
/// register it in `dest`'s dpkg database as unpacked ([`register`]). What
/// is extracted counts against `budget`.
pub fn extract_deb(
    path: &Path,
    label: &str,
    dest: &Dir,
    keep_setuid: bool,
    database: bool,
    budget: &mut Budget,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io("cannot open", path, e))?;
    let mut found = false;
    let mut control: Option<Vec<ControlFile>> = None;
    let mut paths = Vec::new();
    for_each_member(
        BufReader::new(file),
        |member, data| {
            if database && is_tar_member(&member.name, "control") {
                let name = format!("{label} ({})", member.name);
                control = Some(read_control(&name, data)?);
                return Ok(false);
            }
            if !is_tar_member(&member.name, "data") {
                return Ok(false);
            }
            found = true;
            let name = format!("{label} ({})", member.name);
            paths = extract_tar_reader_with(&name, data, dest, keep_setuid, budget)?;
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
    if database {
        let Some(control) = control else {
            return Err(SourceError::Deb {
                archive: label.to_string(),
                message: "no control.tar member before data.tar".into(),
            });
        };
        register(label, dest, &control, &paths)?;
    }
    Ok(())
}

fn is_tar_member(name: &str, stem: &str) -> bool {
    name.strip_prefix(stem)
        .is_some_and(|rest| [".tar", ".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2"].contains(&rest))
}

/// One file of a package's control archive.
struct ControlFile {
    name: String,
    mode: u32,
    data: Vec<u8>,
}

/// The regular files at the top of a control archive (`control`,
/// `postinst`, `md5sums`...); at most 64 MiB in all.
fn read_control(name: &str, data: &mut dyn Read) -> Result<Vec<ControlFile>> {
    let bad = |message: String| SourceError::Deb {
        archive: name.to_string(),
        message,
    };
    let reader =
        crate::archive::decompress(data).map_err(|e| bad(format!("cannot decompress: {e}")))?;
    let mut archive = tar::Archive::new(reader.take(64 << 20));
    let mut out = Vec::new();
    for entry in archive
        .entries()
        .map_err(|e| bad(format!("cannot read: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("cannot read: {e}")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let comps: Vec<_> = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let [std::path::Component::Normal(file)] = comps[..] else {
            continue;
        };
        let file = file.to_string_lossy().into_owned();
        if !file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        {
            return Err(bad(format!("control member `{file}` has an unusual name")));
        }
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("cannot read {file}: {e}")))?;
        out.push(ControlFile {
            name: file,
            mode,
            data,
        });
    }
    Ok(out)
}

/// Register an unpacked package as dpkg does between unpacking and
/// configuring it (spec/sources.md, "deb"): append its control stanza with
/// `Status: install ok unpacked` to `var/lib/dpkg/status`, write its file
/// list to `var/lib/dpkg/info/NAME.list` (`NAME` is `package:arch` for
/// `Multi-Arch: same`) and every other control file (maintainer scripts,
/// `md5sums`, `conffiles`, `triggers`, `shlibs`...) as `info/NAME.FILE`.
/// Conffiles are not recorded in the status: dpkg treats them as plain
/// files of the package.
fn register(label: &str, dest: &Dir, control: &[ControlFile], paths: &[PathBuf]) -> Result<()> {
    let bad = |message: String| SourceError::Deb {
        archive: label.to_string(),
        message,
    };
    let Some(stanza) = control.iter().find(|c| c.name == "control") else {
        return Err(bad("control.tar has no `control` file".into()));
    };
    let text = String::from_utf8_lossy(&stanza.data);
    // One stanza: the status entry is the file's text, and a second stanza
    // would be merged into it (a malformed entry naming two packages).
    let fields = cas_debian::control::parse_one(&format!("{label} (control)"), &text)
        .map_err(|e| bad(e.to_string()))?;
    let field = |name: &str| fields.get(name).map(str::to_owned);
    let package = field("Package").ok_or_else(|| bad("control has no `Package:`".into()))?;
    if package.is_empty()
        || !package
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    {
        return Err(bad(format!("`{package}` is not a package name")));
    }
    let arch = field("Architecture").unwrap_or_else(|| "all".into());
    let same = field("Multi-Arch").is_some_and(|m| m == "same");
    let name = if same {
        format!("{package}:{arch}")
    } else {
        package.clone()
    };
    let mut status = String::new();
    for line in text.trim_end().lines() {
        if line.trim().is_empty() {
            continue;
        }
        status.push_str(line);
        status.push('\n');
        let field_line = !line.starts_with([' ', '\t']);
        if field_line
            && line
                .split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("Package"))
        {
            status.push_str("Status: install ok unpacked\n");
        }
    }
    status.push('\n');
    let mut list = String::from("/.\n");
    for p in paths {
        list.push('/');
        list.push_str(&p.to_string_lossy());
        list.push('\n');
    }
    let info = Path::new("var/lib/dpkg/info");
    let io = |what: &str, e: io::Error| bad(format!("cannot {what} the dpkg database: {e}"));
    write_file(
        dest,
        &info.join(format!("{name}.list")),
        list.as_bytes(),
        0o644,
        false,
    )
    .map_err(|e| io("write", e))?;
    for c in control.iter().filter(|c| c.name != "control") {
        write_file(
            dest,
            &info.join(format!("{name}.{}", c.name)),
            &c.data,
            c.mode,
            false,
        )
        .map_err(|e| io("write", e))?;
    }
    write_file(
        dest,
        Path::new("var/lib/dpkg/status"),
        status.as_bytes(),
        0o644,
        true,
    )
    .map_err(|e| io("write", e))?;
    Ok(())
}

/// Write (or append to) `rel` inside `dest`, never through a symlink.
fn write_file(dest: &Dir, rel: &Path, data: &[u8], mode: u32, append: bool) -> io::Result<()> {
    use cap_std::fs::{OpenOptions, Permissions, PermissionsExt};
    use std::io::Write;
    if let Some(parent) = rel.parent() {
        crate::archive::check_no_symlink_parent(dest, rel).map_err(io::Error::other)?;
        dest.create_dir_all(parent)?;
    }
    if dest.symlink_metadata(rel).is_ok_and(|m| !m.is_file()) {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            rel.display()
        )));
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    let mut f = dest.open_with(rel, &options)?;
    f.write_all(data)?;
    f.set_permissions(Permissions::from_mode(mode | 0o600))?;
    Ok(())
}

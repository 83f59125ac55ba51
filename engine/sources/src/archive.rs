//! Hostile-safe tar extraction. Every write goes through a `cap-std`
//! directory handle rooted at the staging directory, so nothing can escape
//! it; on top of that, members that would escape or that are not plain
//! content are refused with an error naming them:
//! absolute paths, `..` components, any member written through a symlink
//! (an earlier member or staged file), hardlinks to anything but an already
//! extracted regular member, device nodes and fifos. setuid/setgid bits are
//! dropped unless asked to keep them. Compression is detected by magic bytes.
//!
//! What one source may extract is bounded ([`ExtractLimits`]: bytes written
//! and members, counted while extracting by a [`Budget`]), so that a small
//! archive cannot fill the disk or keep a build busy for minutes.
//!
//! A symlink is content: its target is stored as it is, absolute or not,
//! and never resolved (Debian's `libc6` holds `usr/bin/ld.so ->
//! /lib64/ld-linux-x86-64.so.2`). It cannot be used to escape because
//! nothing is ever written through one.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};

use crate::error::{Result, SourceError};

/// Compression of an archive, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Bzip2,
    Zstd,
}

/// Recognise gzip, xz, bzip2 and zstd by their magic bytes.
pub fn detect(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if magic.starts_with(b"BZh") {
        Compression::Bzip2
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wrap `reader` in the decompressor its magic bytes call for (streaming).
pub fn decompress<'a>(mut reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let compression = detect(&head[..n]);
    let whole = io::Cursor::new(head[..n].to_vec()).chain(reader);
    Ok(match compression {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(whole)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
    })
}

/// Bounds on what one source may extract (every archive of it together:
/// all the crates of a `cargo` source, the data of a `deb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Bytes written to files (the sizes of the extracted files).
    pub max_bytes: u64,
    /// Members (files, directories, links) extracted.
    pub max_entries: u64,
}

/// The environment variable that sets [`ExtractLimits::max_bytes`]: a
/// number of bytes, or with a binary suffix `K`, `M`, `G` or `T` (`64G`).
pub const MAX_EXTRACT_SIZE_ENV: &str = "CAS_MAX_EXTRACT_SIZE";
/// The environment variable that sets [`ExtractLimits::max_entries`].
pub const MAX_EXTRACT_ENTRIES_ENV: &str = "CAS_MAX_EXTRACT_ENTRIES";

impl Default for ExtractLimits {
    /// 32 GiB and 1,000,000 members: far above any real source tree.
    fn default() -> Self {
        ExtractLimits {
            max_bytes: 32 << 30,
            max_entries: 1_000_000,
        }
    }
}

impl ExtractLimits {
    /// The defaults, overridden by `CAS_MAX_EXTRACT_SIZE` and
    /// `CAS_MAX_EXTRACT_ENTRIES` when they are set (a malformed value is an
    /// error naming the variable).
    pub fn from_env() -> Result<Self> {
        let mut limits = ExtractLimits::default();
        if let Some(v) = std::env::var_os(MAX_EXTRACT_SIZE_ENV) {
            limits.max_bytes = parse_size(MAX_EXTRACT_SIZE_ENV, &v.to_string_lossy(), true)?;
        }
        if let Some(v) = std::env::var_os(MAX_EXTRACT_ENTRIES_ENV) {
            limits.max_entries = parse_size(MAX_EXTRACT_ENTRIES_ENV, &v.to_string_lossy(), false)?;
        }
        Ok(limits)
    }
}

/// A positive number, with a binary suffix if `suffixes` (`K`, `M`, `G`,
/// `T`, optionally followed by `iB` or `B`, any case).
fn parse_size(name: &'static str, value: &str, suffixes: bool) -> Result<u64> {
    let invalid = |reason: &str| SourceError::InvalidSetting {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let text = value.trim();
    let digits = text.trim_end_matches(|c: char| !c.is_ascii_digit());
    let unit = text[digits.len()..].to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" if suffixes => 10,
        "M" if suffixes => 20,
        "G" if suffixes => 30,
        "T" if suffixes => 40,
        _ if suffixes => {
            return Err(invalid(
                "expected a number of bytes, optionally followed by K, M, G or T",
            ))
        }
        _ => return Err(invalid("expected a number")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| invalid("expected a positive number"))?;
    if n == 0 {
        return Err(invalid("the limit must be positive"));
    }
    n.checked_mul(1 << shift)
        .ok_or_else(|| invalid("too large"))
}

/// `n` bytes for people: `10 MiB`, `32 GiB`, else `12345 bytes`.
fn human_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// What one source has extracted so far, against its [`ExtractLimits`].
#[derive(Debug)]
pub struct Budget {
    limits: ExtractLimits,
    bytes: u64,
    entries: u64,
    buf: Vec<u8>,
}

impl Budget {
    pub fn new(limits: ExtractLimits) -> Self {
        Budget {
            limits,
            bytes: 0,
            entries: 0,
            buf: Vec::new(),
        }
    }

    /// Bytes and members extracted so far.
    pub fn used(&self) -> (u64, u64) {
        (self.bytes, self.entries)
    }

    fn too_many_bytes(&self, name: &str) -> SourceError {
        let max = self.limits.max_bytes;
        archive_error(
            name,
            format!(
                "refusing to extract more than {} ({max} bytes) from one source (a decompression bomb?); \
                 to raise the limit, set {MAX_EXTRACT_SIZE_ENV} (e.g. {MAX_EXTRACT_SIZE_ENV}={}G)",
                human_size(max),
                (max >> 30).saturating_mul(2).max(64),
            ),
        )
    }

    fn too_many_entries(&self, name: &str) -> SourceError {
        let max = self.limits.max_entries;
        archive_error(
            name,
            format!(
                "refusing to extract more than {max} members from one source; \
                 to raise the limit, set {MAX_EXTRACT_ENTRIES_ENV} (e.g. {MAX_EXTRACT_ENTRIES_ENV}={})",
                max.saturating_mul(2)
            ),
        )
    }

    /// Count one more member of archive `name`.
    pub(crate) fn entry(&mut self, name: &str) -> Result<()> {
        if self.entries >= self.limits.max_entries {
            return Err(self.too_many_entries(name));
        }
        self.entries += 1;
        Ok(())
    }

    /// Refuse early, without counting, when `entries` more members holding
    /// `bytes` (as an archive declares them) would not fit.
    pub(crate) fn check_declared(&self, name: &str, entries: u64, bytes: u64) -> Result<()> {
        if self.entries.saturating_add(entries) > self.limits.max_entries {
            return Err(self.too_many_entries(name));
        }
        if self.bytes.saturating_add(bytes) > self.limits.max_bytes {
            return Err(self.too_many_bytes(name));
        }
        Ok(())
    }

    /// Copy member `member` of archive `name` from `from` to `to`, counting
    /// the bytes before they are written.
    pub(crate) fn copy(
        &mut self,
        name: &str,
        member: &Path,
        from: &mut dyn Read,
        to: &mut dyn Write,
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(64 << 10, 0);
        let result = loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(unsafe_member(name, member, format!("cannot read: {e}"))),
            };
            let total = self.bytes.saturating_add(n as u64);
            if total > self.limits.max_bytes {
                break Err(self.too_many_bytes(name));
            }
            self.bytes = total;
            if let Err(e) = to.write_all(&buf[..n]) {
                break Err(unsafe_member(name, member, format!("cannot write: {e}")));
            }
        };
        self.buf = buf;
        result
    }
}

/// Open a staging directory as a capability.
pub fn open_root(path: &Path) -> Result<Dir> {
    Dir::open_ambient_dir(path, cap_std::ambient_authority())
        .map_err(|e| SourceError::io("cannot open staging directory", path, e))
}

/// Extract the (possibly compressed) tar file `archive` into `dest` (or a
/// zip file: told apart by its first bytes, `zipfile`); errors name the
/// archive as `label` (e.g. its URL as written).
/// `base_dir`: `None` strips the single top directory if there is exactly
/// one (this reads the archive twice); `Some("")` strips nothing;
/// `Some(dir)` extracts only the content of member directory `dir`.
/// What is extracted counts against `budget`.
pub fn extract_tar_file(
    archive: &Path,
    label: &str,
    dest: &Dir,
    base_dir: Option<&str>,
    keep_setuid: bool,
    budget: &mut Budget,
) -> Result<()> {
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(archive)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| SourceError::io("cannot open", archive, e))?;
    if crate::zipfile::is_zip(&magic[..n]) {
        return crate::zipfile::extract_zip_file(
            archive,
            label,
            dest,
            base_dir,
            keep_setuid,
            budget,
        );
    }
    let name = label.to_string();
    let open = || -> Result<Box<dyn Read>> {
        let file =
            std::fs::File::open(archive).map_err(|e| SourceError::io("cannot open", archive, e))?;
        decompress(io::BufReader::new(file))
            .map_err(|e| archive_error(&name, format!("cannot decompress: {e}")))
    };
    // Without a base-dir every member is extracted: the walk that finds the
    // top directory also refuses, from the headers alone, an archive that
    // declares more than the budget allows (before anything is written).
    let declared = if base_dir.is_none() {
        Some(&*budget)
    } else {
        None
    };
    let strip = base_strip(&name, base_dir, &mut |f| {
        for_each_member(&name, open()?, declared, |kind, comps| {
            f(kind == tar::EntryType::Directory, comps)
        })
    })?;
    let extracted = extract_stream(&name, open()?, dest, &strip, keep_setuid, budget, None)?.len();
    check_extracted(&name, extracted, &strip, base_dir)
}

/// Extract the crate file `archive` (a gzipped tar, errors name it as
/// `label`) into `dest`, the crate's own directory: every member must be
/// `top/` or under it (`top` is `NAME-VERSION`, compared after
/// normalisation), and be a file or a directory; anything else is refused
/// (cargo's rule), naming the crate (`what`, e.g. `crate evil 1.0.0`). A
/// file with nothing under `top/` is not that crate (an error saying so).
pub fn extract_crate_file(
    archive: &Path,
    label: &str,
    dest: &Dir,
    top: &str,
    what: &str,
    keep_setuid: bool,
    budget: &mut Budget,
) -> Result<()> {
    let open = || -> Result<Box<dyn Read>> {
        let file =
            std::fs::File::open(archive).map_err(|e| SourceError::io("cannot open", archive, e))?;
        decompress(io::BufReader::new(file))
            .map_err(|e| archive_error(label, format!("cannot decompress: {e}")))
    };
    let strip = [OsString::from(top)];
    // A first pass over the headers: is this the crate at all, and does it
    // declare more than the budget allows?
    let mut has_top = false;
    for_each_member(label, open()?, Some(&*budget), |_, comps| {
        has_top |= comps.len() > 1 && comps.starts_with(&strip);
        true
    })?;
    if !has_top {
        return Err(archive_error(
            label,
            format!("the crate file has no `{top}/` directory"),
        ));
    }
    extract_stream(
        label,
        open()?,
        dest,
        &strip,
        keep_setuid,
        budget,
        Some(&Strict { top, what }),
    )?;
    Ok(())
}

/// The rules of [`extract_crate_file`]: nothing outside `top/`, no links.
struct Strict<'a> {
    top: &'a str,
    what: &'a str,
}

/// A base-dir that was asked for and extracted nothing is an error.
pub(crate) fn check_extracted(
    name: &str,
    extracted: usize,
    strip: &[OsString],
    base_dir: Option<&str>,
) -> Result<()> {
    if extracted == 0 && !strip.is_empty() && base_dir.is_some() {
        return Err(archive_error(
            name,
            format!(
                "base-dir `{}` is not in the archive",
                base_dir.unwrap_or("")
            ),
        ));
    }
    Ok(())
}

/// A walk over an archive's members: calls its argument with (is a
/// directory, normalised path) for each until it returns `false`.
pub(crate) type Walk<'a> =
    dyn FnMut(&mut dyn FnMut(bool, Vec<OsString>) -> bool) -> Result<()> + 'a;

/// The member-path prefix that `base_dir` strips (tar and zip alike):
/// `None`, the single top directory if there is one; a glob (`*`, `?`),
/// BuildStream's: the first matching directory in sorted order; else that
/// directory. `walk` goes over the members (once or not at all).
pub(crate) fn base_strip(
    name: &str,
    base_dir: Option<&str>,
    walk: &mut Walk,
) -> Result<Vec<OsString>> {
    Ok(match base_dir {
        None => single_top_dir(walk)?.into_iter().collect(),
        Some(pattern) if pattern.contains(['*', '?']) => match first_matching_dir(walk, pattern)? {
            Some(dir) => dir,
            None => {
                return Err(archive_error(
                    name,
                    format!("no directory of the archive matches base-dir `{pattern}`"),
                ))
            }
        },
        Some(dir) => normalize(Path::new(dir)).map_err(|reason| SourceError::Archive {
            archive: name.to_string(),
            message: format!("invalid base-dir `{dir}`: {reason}"),
        })?,
    })
}

/// Extract a tar stream (possibly compressed) into `dest`, stripping
/// nothing; returns the extracted members' paths, in archive order. Bounded
/// by the [`ExtractLimits::from_env`] of one source.
pub fn extract_tar_reader(
    name: &str,
    reader: impl Read,
    dest: &Dir,
    keep_setuid: bool,
) -> Result<Vec<PathBuf>> {
    let mut budget = Budget::new(ExtractLimits::from_env()?);
    extract_tar_reader_with(name, reader, dest, keep_setuid, &mut budget)
}

/// [`extract_tar_reader`], counting what it extracts against `budget`.
pub fn extract_tar_reader_with(
    name: &str,
    reader: impl Read,
    dest: &Dir,
    keep_setuid: bool,
    budget: &mut Budget,
) -> Result<Vec<PathBuf>> {
    let reader =
        decompress(reader).map_err(|e| archive_error(name, format!("cannot decompress: {e}")))?;
    extract_stream(name, reader, dest, &[], keep_setuid, budget, None)
}

pub(crate) fn archive_error(name: &str, message: String) -> SourceError {
    SourceError::Archive {
        archive: name.to_string(),
        message,
    }
}

pub(crate) fn unsafe_member(name: &str, member: &Path, reason: impl Into<String>) -> SourceError {
    SourceError::UnsafeMember {
        archive: name.to_string(),
        member: member.display().to_string(),
        reason: reason.into(),
    }
}

/// The components of a member path, refusing absolute paths and `..`;
/// `.` components are dropped (so `./usr/bin` is `usr/bin`).
pub(crate) fn normalize(path: &Path) -> std::result::Result<Vec<OsString>, &'static str> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(out)
}

fn is_metadata(t: tar::EntryType) -> bool {
    matches!(
        t,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    )
}

/// Calls `f` with the type and normalised path of every member (metadata
/// entries skipped) until it returns `false`; an unsafe path is an error,
/// and so are more members or bytes than `declared` has room for.
fn for_each_member(
    name: &str,
    reader: Box<dyn Read>,
    declared: Option<&Budget>,
    mut f: impl FnMut(tar::EntryType, Vec<OsString>) -> bool,
) -> Result<()> {
    let (mut members, mut bytes) = (0u64, 0u64);
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| archive_error(name, format!("cannot read: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| archive_error(name, format!("cannot read: {e}")))?;
        let kind = entry.header().entry_type();
        if is_metadata(kind) {
            continue;
        }
        let raw = entry.path_bytes();
        let path = Path::new(OsStr::from_bytes(&raw));
        let comps = normalize(path).map_err(|reason| unsafe_member(name, path, reason))?;
        if let Some(budget) = declared {
            members += 1;
            bytes = bytes.saturating_add(entry.size());
            budget.check_declared(name, members, bytes)?;
        }
        if !f(kind, comps) {
            break;
        }
    }
    Ok(())
}

/// `*` and `?` of a base-dir glob match within one path component (BuildStream's).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], text)
                || (!text.is_empty() && text[0] != b'/' && glob_match(pattern, &text[1..]))
        }
        (Some(b'?'), Some(&c)) if c != b'/' => glob_match(&pattern[1..], &text[1..]),
        (Some(p), Some(c)) if p == c => glob_match(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// BuildStream's base-dir glob: the first, in sorted order, of the
/// archive's directories (explicit members and the parents of files) that
/// matches `pattern`.
fn first_matching_dir(walk: &mut Walk, pattern: &str) -> Result<Option<Vec<OsString>>> {
    let mut dirs: std::collections::BTreeSet<Vec<OsString>> = std::collections::BTreeSet::new();
    walk(&mut |is_dir, comps| {
        let parents = if is_dir {
            comps.len()
        } else {
            comps.len().saturating_sub(1)
        };
        for n in 1..=parents {
            dirs.insert(comps[..n].to_vec());
        }
        true
    })?;
    let pattern = pattern.trim_start_matches("./").trim_end_matches('/');
    Ok(dirs.into_iter().find(|d| {
        let joined: Vec<u8> = d
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect::<Vec<_>>()
            .join(&b'/');
        glob_match(pattern.as_bytes(), &joined)
    }))
}

/// The single top directory of an archive, if every member is inside it.
fn single_top_dir(walk: &mut Walk) -> Result<Option<OsString>> {
    let mut top: Option<OsString> = None;
    let mut is_dir = false;
    let mut single = true;
    walk(&mut |member_is_dir, comps| {
        let Some(first) = comps.first() else {
            return true;
        };
        match &top {
            None => top = Some(first.clone()),
            Some(t) if t != first => {
                single = false;
                return false;
            }
            Some(_) => {}
        }
        if comps.len() > 1 || member_is_dir {
            is_dir = true;
        }
        true
    })?;
    Ok(if single && is_dir { top } else { None })
}

/// Extract members under `strip` (with that prefix removed); with `strict`,
/// any other member is refused, and so are links. Returns the extracted
/// members' paths (relative, in archive order).
fn extract_stream(
    name: &str,
    reader: impl Read,
    dest: &Dir,
    strip: &[OsString],
    keep_setuid: bool,
    budget: &mut Budget,
    strict: Option<&Strict>,
) -> Result<Vec<PathBuf>> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| archive_error(name, format!("cannot read: {e}")))?;
    let mut files: HashSet<PathBuf> = HashSet::new();
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    let mut extracted = Vec::new();
    let drop_bits = if keep_setuid { 0 } else { 0o6000 };
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(name, format!("cannot read: {e}")))?;
        let kind = entry.header().entry_type();
        if is_metadata(kind) {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let member = PathBuf::from(OsStr::from_bytes(&raw));
        let comps = normalize(&member).map_err(|reason| unsafe_member(name, &member, reason))?;
        if let Some(strict) = strict {
            check_strict(name, &member, &comps, kind, strict)?;
        }
        if !comps.starts_with(strip) {
            continue;
        }
        let rel: PathBuf = comps[strip.len()..].iter().collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        check_no_symlink_parent(dest, &rel)
            .map_err(|reason| unsafe_member(name, &member, reason))?;
        budget.entry(name)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777 & !drop_bits;
        let io_err =
            |what: &str, e: io::Error| unsafe_member(name, &member, format!("cannot {what}: {e}"));
        match kind {
            tar::EntryType::Directory => {
                if let Ok(m) = dest.symlink_metadata(&rel) {
                    if !m.is_dir() {
                        dest.remove_file(&rel).map_err(|e| io_err("replace", e))?;
                    }
                }
                dest.create_dir_all(&rel)
                    .map_err(|e| io_err("create directory", e))?;
                dirs.push((rel.clone(), mode | 0o700));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                prepare(dest, &rel).map_err(|e| io_err("create", e))?;
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                budget.check_declared(name, 0, entry.size())?;
                let mut file = dest
                    .open_with(&rel, &options)
                    .map_err(|e| io_err("create", e))?;
                budget.copy(name, &member, &mut entry, &mut file)?;
                file.set_permissions(Permissions::from_mode(mode | 0o600))
                    .map_err(|e| io_err("set the mode of", e))?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = file
                        .into_std()
                        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime));
                }
                files.insert(rel.clone());
            }
            tar::EntryType::Symlink => {
                let target_raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_member(name, &member, "symlink without a target"))?
                    .into_owned();
                let target = PathBuf::from(OsStr::from_bytes(&target_raw));
                if target.as_os_str().is_empty() {
                    return Err(unsafe_member(name, &member, "symlink with an empty target"));
                }
                prepare(dest, &rel).map_err(|e| io_err("create", e))?;
                // `symlink_contents`: the target is content, never resolved
                // (`symlink` would refuse an absolute one).
                dest.symlink_contents(&target, &rel)
                    .map_err(|e| io_err("create symlink", e))?;
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_member(name, &member, "hardlink without a target"))?
                    .into_owned();
                let target = Path::new(OsStr::from_bytes(&target_raw));
                let tcomps = normalize(target).map_err(|reason| {
                    unsafe_member(
                        name,
                        &member,
                        format!("hardlink target {}: {reason}", target.display()),
                    )
                })?;
                if !tcomps.starts_with(strip) {
                    return Err(unsafe_member(
                        name,
                        &member,
                        format!(
                            "hardlink to {}, outside the extracted part",
                            target.display()
                        ),
                    ));
                }
                let trel: PathBuf = tcomps[strip.len()..].iter().collect();
                let is_file = dest.symlink_metadata(&trel).is_ok_and(|m| m.is_file());
                if !files.contains(&trel) || !is_file {
                    return Err(unsafe_member(
                        name,
                        &member,
                        format!(
                            "hardlink to {}, which is not an extracted regular file",
                            target.display()
                        ),
                    ));
                }
                prepare(dest, &rel).map_err(|e| io_err("create", e))?;
                dest.hard_link(&trel, dest, &rel)
                    .map_err(|e| io_err("create hardlink", e))?;
                files.insert(rel.clone());
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_member(
                    name,
                    &member,
                    "device nodes are not allowed in sources",
                ));
            }
            tar::EntryType::Fifo => {
                return Err(unsafe_member(
                    name,
                    &member,
                    "fifos are not allowed in sources",
                ));
            }
            other => {
                return Err(unsafe_member(
                    name,
                    &member,
                    format!("unsupported member type {other:?}"),
                ));
            }
        }
        extracted.push(rel);
    }
    // Directory modes last (a read-only directory would block its members),
    // deepest first; the owner keeps rwx so later sources can be staged.
    for (dir, mode) in dirs.iter().rev() {
        dest.set_permissions(dir, Permissions::from_mode(*mode))
            .map_err(|e| unsafe_member(name, dir, format!("cannot set the mode: {e}")))?;
    }
    Ok(extracted)
}

/// The rules of [`Strict`] for one member (`comps`: its normalised path).
fn check_strict(
    name: &str,
    member: &Path,
    comps: &[OsString],
    kind: tar::EntryType,
    strict: &Strict,
) -> Result<()> {
    let inside = comps.first().is_some_and(|c| c == strict.top)
        && (comps.len() > 1 || kind == tar::EntryType::Directory);
    if !inside {
        return Err(unsafe_member(
            name,
            member,
            format!(
                "{} may only hold `{}/` and what is under it",
                strict.what, strict.top
            ),
        ));
    }
    if !matches!(
        kind,
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory
    ) {
        return Err(unsafe_member(
            name,
            member,
            format!(
                "{} may only hold files and directories (not links or special files)",
                strict.what
            ),
        ));
    }
    Ok(())
}

/// Create the parent directories of `rel` and remove a non-directory that
/// is in the way (never writing through an existing symlink).
pub(crate) fn prepare(dest: &Dir, rel: &Path) -> io::Result<()> {
    if let Some(parent) = rel.parent() {
        if !parent.as_os_str().is_empty() {
            dest.create_dir_all(parent)?;
        }
    }
    match dest.symlink_metadata(rel) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way",
        )),
        Ok(_) => dest.remove_file(rel),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Nothing is written through a symlink: not a file, a directory or a link
/// (a relative link inside the tree would be harmless, but a member list
/// that needs one is not a tar that any tool writes, and refusing is the
/// only rule that stays safe whatever the targets are).
pub(crate) fn check_no_symlink_parent(dest: &Dir, rel: &Path) -> std::result::Result<(), String> {
    let mut prefix = PathBuf::new();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            prefix.push(c);
            if let Ok(m) = dest.symlink_metadata(&prefix) {
                if m.file_type().is_symlink() {
                    return Err(format!("written through the symlink {}", prefix.display()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_limits_parse_sizes_and_counts() {
        let size = |v: &str| parse_size(MAX_EXTRACT_SIZE_ENV, v, true);
        assert_eq!(size("1048576").unwrap(), 1 << 20);
        assert_eq!(size("10M").unwrap(), 10 << 20);
        assert_eq!(size("64g").unwrap(), 64 << 30);
        assert_eq!(size("2GiB").unwrap(), 2 << 30);
        assert_eq!(size("1T").unwrap(), 1 << 40);
        assert_eq!(size(" 512K ").unwrap(), 512 << 10);
        for bad in ["", "lots", "0", "-1", "10X", "1.5G", "99999999999999T"] {
            let e = size(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid CAS_MAX_EXTRACT_SIZE="), "{bad}: {e}");
        }
        let count = |v: &str| parse_size(MAX_EXTRACT_ENTRIES_ENV, v, false);
        assert_eq!(count("100").unwrap(), 100);
        assert!(count("10K").is_err());
        assert_eq!(human_size(32 << 30), "32 GiB");
        assert_eq!(human_size(1000), "1000 bytes");
    }
}

//! Zip archives, staged with the same rules as tarballs (`archive`): member
//! paths normalised and refused when absolute or climbing, nothing written
//! through a symlink, symlinks kept as content, setuid/setgid dropped unless
//! asked, base-dir as for tar (spec/sources.md), and the same bounds on
//! what is extracted (checked first against the central directory's
//! declared sizes, then counted while writing).

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};

use crate::archive::{
    archive_error, base_strip, check_extracted, check_no_symlink_parent, normalize, prepare,
    unsafe_member, Budget,
};
use crate::error::{Result, SourceError};

/// The magic bytes of a zip file (a local file header).
pub fn is_zip(magic: &[u8]) -> bool {
    magic.starts_with(b"PK\x03\x04") || magic.starts_with(b"PK\x05\x06")
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;

/// Extract the zip file `archive` into `dest` (errors name it as `label`);
/// `base_dir` as in [`crate::archive::extract_tar_file`]; what is
/// extracted counts against `budget`.
pub fn extract_zip_file(
    archive: &Path,
    label: &str,
    dest: &Dir,
    base_dir: Option<&str>,
    keep_setuid: bool,
    budget: &mut Budget,
) -> Result<()> {
    let file =
        std::fs::File::open(archive).map_err(|e| SourceError::io("cannot open", archive, e))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| archive_error(label, format!("cannot read the zip file: {e}")))?;
    // every member's normalised path and declared size, once (the central
    // directory)
    let mut members: Vec<(PathBuf, Vec<OsString>, bool, u64)> = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| archive_error(label, format!("cannot read member {i}: {e}")))?;
        let raw = PathBuf::from(entry.name());
        let comps = normalize(&raw).map_err(|reason| unsafe_member(label, &raw, reason))?;
        let is_dir = entry.is_dir() || entry.unix_mode().is_some_and(|m| m & S_IFMT == S_IFDIR);
        members.push((raw, comps, is_dir, entry.size()));
    }
    let strip = base_strip(label, base_dir, &mut |f| {
        for (_, comps, is_dir, _) in &members {
            if !f(*is_dir, comps.clone()) {
                break;
            }
        }
        Ok(())
    })?;
    // what the members to extract declare, before anything is written
    let (mut entries, mut declared) = (0u64, 0u64);
    for (_, comps, _, size) in &members {
        if comps.starts_with(&strip) && comps.len() > strip.len() {
            entries += 1;
            declared = declared.saturating_add(*size);
        }
    }
    budget.check_declared(label, entries, declared)?;
    let drop_bits = if keep_setuid { 0 } else { 0o6000 };
    let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
    let mut extracted = 0;
    for (i, (member, comps, is_dir, _)) in members.iter().enumerate() {
        if !comps.starts_with(&strip) {
            continue;
        }
        let rel: PathBuf = comps[strip.len()..].iter().collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        check_no_symlink_parent(dest, &rel)
            .map_err(|reason| unsafe_member(label, member, reason))?;
        budget.entry(label)?;
        let io_err =
            |what: &str, e: io::Error| unsafe_member(label, member, format!("cannot {what}: {e}"));
        let mut entry = zip
            .by_index(i)
            .map_err(|e| archive_error(label, format!("cannot read {}: {e}", member.display())))?;
        let unix = entry.unix_mode();
        let mode = unix.map_or(if *is_dir { 0o755 } else { 0o644 }, |m| m & 0o7777) & !drop_bits;
        if *is_dir {
            if let Ok(m) = dest.symlink_metadata(&rel) {
                if !m.is_dir() {
                    dest.remove_file(&rel).map_err(|e| io_err("replace", e))?;
                }
            }
            dest.create_dir_all(&rel)
                .map_err(|e| io_err("create directory", e))?;
            dirs.push((rel, mode | 0o700));
        } else if unix.is_some_and(|m| m & S_IFMT == S_IFLNK) {
            let mut target = Vec::new();
            (&mut entry)
                .take(4097)
                .read_to_end(&mut target)
                .map_err(|e| io_err("read", e))?;
            if target.is_empty() {
                return Err(unsafe_member(label, member, "symlink with an empty target"));
            }
            if target.len() > 4096 {
                return Err(unsafe_member(
                    label,
                    member,
                    "symlink target longer than 4096 bytes",
                ));
            }
            prepare(dest, &rel).map_err(|e| io_err("create", e))?;
            let target = PathBuf::from(std::ffi::OsStr::from_bytes(&target));
            dest.symlink_contents(&target, &rel)
                .map_err(|e| io_err("create symlink", e))?;
        } else {
            prepare(dest, &rel).map_err(|e| io_err("create", e))?;
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            let mut out = dest
                .open_with(&rel, &options)
                .map_err(|e| io_err("create", e))?;
            budget.copy(label, member, &mut entry, &mut out)?;
            out.set_permissions(Permissions::from_mode(mode | 0o600))
                .map_err(|e| io_err("set the mode of", e))?;
        }
        extracted += 1;
    }
    for (dir, mode) in dirs.iter().rev() {
        dest.set_permissions(dir, Permissions::from_mode(*mode))
            .map_err(|e| unsafe_member(label, dir, format!("cannot set the mode: {e}")))?;
    }
    check_extracted(label, extracted, &strip, base_dir)
}

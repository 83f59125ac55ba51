//! Deterministic tar export (tar or tar.xz) and tar import.
//!
//! Export: entries in `walk` order (depth first, raw name order), no root
//! entry, GNU headers (long names), uid/gid 0, empty user/group names, mtime 0
//! (or the one given), modes from the tree, hardlinks never emitted (each file
//! carries its data). Same tree → same bytes.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::blob::IngestMode;
use crate::digest::TreeDigest;
use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;
use crate::tree::EntryKind;
use crate::view::remove_tree;

const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

fn is_xz_name(p: &Path) -> bool {
    let s = p.as_os_str().as_bytes();
    s.ends_with(b".xz") || s.ends_with(b".txz")
}

impl Store {
    /// Export a tree as a tar (`.tar.xz`/`.txz`: xz-compressed) with mtime 0.
    pub fn export_tar(&self, tree: &TreeDigest, dest: &Path) -> Result<()> {
        self.export_tar_with_mtime(tree, dest, 0)
    }

    /// Export with every entry's mtime set to `mtime` (unix seconds).
    pub fn export_tar_with_mtime(&self, tree: &TreeDigest, dest: &Path, mtime: u64) -> Result<()> {
        let _lock = self.lock_shared()?;
        let entries = self.walk(tree)?;
        let mut part = dest.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let file = File::create(&part).ctx("create", &part)?;
        let arch = |reason: String| StoreError::Archive {
            path: dest.to_path_buf(),
            reason,
        };
        let result = (|| -> Result<()> {
            if is_xz_name(dest) {
                let enc = xz2::write::XzEncoder::new(BufWriter::new(file), 6);
                let enc = self.write_tar(&entries, mtime, enc, dest)?;
                let mut w = enc.finish().ctx("compress", dest)?;
                w.flush().ctx("write", dest)?;
            } else {
                let mut w = self.write_tar(&entries, mtime, BufWriter::new(file), dest)?;
                w.flush().ctx("write", dest)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
        fs::rename(&part, dest)
            .ctx("rename", dest)
            .map_err(|e| arch(e.to_string()))
    }

    /// Write the tar of `tree` (the export's conventions, every mtime
    /// `mtime`) into `w`, finished; `dest` names it in errors.
    pub fn tar_into<W: Write>(
        &self,
        tree: &TreeDigest,
        mtime: u64,
        w: W,
        dest: &Path,
    ) -> Result<W> {
        let entries = self.walk(tree)?;
        self.write_tar(&entries, mtime, w, dest)
    }

    fn write_tar<W: Write>(
        &self,
        entries: &[(Vec<u8>, crate::tree::Entry)],
        mtime: u64,
        w: W,
        dest: &Path,
    ) -> Result<W> {
        let arch = |e: std::io::Error| StoreError::Archive {
            path: dest.to_path_buf(),
            reason: e.to_string(),
        };
        let mut b = tar::Builder::new(w);
        for (path, e) in entries {
            let p = Path::new(OsStr::from_bytes(path));
            let mut h = tar::Header::new_gnu();
            h.set_mtime(mtime);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mode(e.mode);
            match &e.kind {
                EntryKind::Dir { .. } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, p, std::io::empty()).map_err(arch)?;
                }
                EntryKind::File { digest, size } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(*size);
                    let obj = self.blob_path(digest);
                    let f = File::open(&obj).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            StoreError::Missing {
                                digest: digest.to_hex(),
                            }
                        } else {
                            StoreError::Io {
                                op: "open object",
                                path: obj.clone(),
                                source: e,
                            }
                        }
                    })?;
                    b.append_data(&mut h, p, BufReader::new(f).take(*size))
                        .map_err(arch)?;
                }
                EntryKind::Symlink { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    // The target is content: written byte for byte (tar's
                    // `append_link` would normalise `/` to `//`, drop `.`).
                    if target.len() > 100 {
                        let mut long = tar::Header::new_gnu();
                        long.set_entry_type(tar::EntryType::GNULongLink);
                        long.set_mode(0o644);
                        let mut data = target.clone();
                        data.push(0);
                        long.set_size(data.len() as u64);
                        long.set_path("././@LongLink").map_err(arch)?;
                        long.set_cksum();
                        b.append(&long, data.as_slice()).map_err(arch)?;
                    }
                    h.set_link_name_literal(&target[..target.len().min(100)])
                        .map_err(arch)?;
                    b.append_data(&mut h, p, std::io::empty()).map_err(arch)?;
                }
            }
        }
        b.into_inner().map_err(arch)
    }

    /// Import a tar or tar.xz (detected by content) as a tree. Only regular files,
    /// directories, symlinks and hardlinks are accepted; paths must stay inside.
    pub fn import_tar(&self, src: &Path) -> Result<TreeDigest> {
        let _lock = self.lock_shared()?;
        let mut file = BufReader::new(File::open(src).ctx("open", src)?);
        let mut magic = [0u8; 6];
        let n = {
            use std::io::BufRead;
            let buf = file.fill_buf().ctx("read", src)?;
            let n = buf.len().min(6);
            magic[..n].copy_from_slice(&buf[..n]);
            n
        };
        let reader: Box<dyn Read> = if n == 6 && magic == XZ_MAGIC {
            Box::new(xz2::read::XzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let dir = self.tmp_path("import");
        fs::create_dir(&dir).ctx("create directory", &dir)?;
        let result = self
            .unpack(reader, &dir, src)
            .and_then(|()| self.ingest_locked(&dir, IngestMode::Move));
        let _ = remove_tree(&dir);
        result
    }

    fn ingest_locked(&self, dir: &Path, mode: IngestMode) -> Result<TreeDigest> {
        Ok(self.ingest(dir, mode)?.tree)
    }

    fn unpack(&self, reader: Box<dyn Read>, dir: &Path, src: &Path) -> Result<()> {
        let arch = |reason: String| StoreError::Archive {
            path: src.to_path_buf(),
            reason,
        };
        let mut a = tar::Archive::new(reader);
        a.set_preserve_permissions(true);
        a.set_preserve_mtime(false);
        a.set_unpack_xattrs(false);
        a.set_overwrite(true);
        let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
        for entry in a.entries().map_err(|e| arch(e.to_string()))? {
            let mut entry = entry.map_err(|e| arch(e.to_string()))?;
            let path = entry.path().map_err(|e| arch(e.to_string()))?.into_owned();
            let mut rel = PathBuf::new();
            for c in path.components() {
                match c {
                    Component::Normal(n) => rel.push(n),
                    Component::CurDir => {}
                    _ => {
                        return Err(arch(format!(
                            "entry {} leaves the archive root",
                            path.display()
                        )))
                    }
                }
            }
            if let Some(link) = symlink_on_the_way(dir, &rel) {
                return Err(arch(format!(
                    "entry {} is written through the symlink {}",
                    path.display(),
                    link.display()
                )));
            }
            let ty = entry.header().entry_type();
            let mode = entry.header().mode().map_err(|e| arch(e.to_string()))? & 0o7777;
            match ty {
                tar::EntryType::Directory => {
                    if rel.as_os_str().is_empty() {
                        continue;
                    }
                    let p = dir.join(&rel);
                    if fs::symlink_metadata(&p).is_ok_and(|m| !m.is_dir()) {
                        fs::remove_file(&p).ctx("replace", &p)?;
                    }
                    fs::create_dir_all(&p).ctx("create directory", &p)?;
                    dirs.push((p, mode));
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Symlink
                | tar::EntryType::Link => {
                    if rel.as_os_str().is_empty() {
                        return Err(arch(format!("entry {} has an empty name", path.display())));
                    }
                    let p = dir.join(&rel);
                    if let Some(parent) = p.parent() {
                        fs::create_dir_all(parent).ctx("create directory", parent)?;
                    }
                    // Replace what is there (never write through a link).
                    match fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => {
                            return Err(arch(format!(
                                "entry {}: a directory is in the way",
                                path.display()
                            )))
                        }
                        Ok(_) => fs::remove_file(&p).ctx("replace", &p)?,
                        Err(_) => {}
                    }
                    entry
                        .unpack_in(dir)
                        .map_err(|e| arch(format!("{}: {e}", path.display())))?;
                }
                other => {
                    return Err(arch(format!(
                        "entry {}: unsupported type {:?} (only files, directories and links)",
                        path.display(),
                        other
                    )))
                }
            }
        }
        for (p, mode) in dirs.iter().rev() {
            fs::set_permissions(p, fs::Permissions::from_mode(*mode)).ctx("chmod", p)?;
        }
        Ok(())
    }
}

/// The first proper ancestor of `rel` (inside `dir`) that is a symlink:
/// nothing is ever written through one, wherever it points (symlinks are
/// content, absolute ones included, and are never followed).
fn symlink_on_the_way(dir: &Path, rel: &Path) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    let parent = rel.parent()?;
    for c in parent.components() {
        prefix.push(c);
        if fs::symlink_metadata(dir.join(&prefix)).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(prefix);
        }
    }
    None
}

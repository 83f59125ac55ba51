//! Blobs: one immutable object per content digest, written atomically through
//! `tmp/` and a no-replace rename, mode 0444, plus lazily made per-mode variants.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::digest::{BlobDigest, Digest};
use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;

/// How `ingest`/`put_file` take files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestMode {
    /// Rename the files into the store (same filesystem, no copy). The input is
    /// consumed: afterwards its content is unspecified and the caller removes it.
    Move,
    /// Leave the input untouched: copy (or reflink) into `tmp/` while hashing, then rename.
    Copy,
}

/// Mode of the canonical object file.
pub const OBJECT_MODE: u32 = 0o444;

/// The modification time of every file, directory and symlink the store
/// makes (objects, variants, views, checkouts): BuildStream's staging time,
/// 2011-11-11 11:11:11 UTC. A hardlinked view shares its object's inode, so
/// the time a step sees is the object's: one fixed time, whichever machine
/// stored it when (spec/store.md, "File times"). Tools that record times
/// (`.pyc` headers, tar, zip) then record the same bytes everywhere.
pub const FILE_TIME: i64 = 1_321_009_871;

/// Set `path`'s modification and access times to [`FILE_TIME`], without
/// following a symlink (a link's own times are set).
pub fn set_fixed_time(path: &Path) -> std::io::Result<()> {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: FILE_TIME,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: FILE_TIME,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(std::io::Error::from)
}
const BUF: usize = 1 << 20;
/// Compared against (memcmp) to find runs of zeros that become holes.
static ZEROS: [u8; BUF] = [0u8; BUF];

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUF]);
}

/// The mode a hardlinked file with recorded `mode` has: write bits stripped.
pub fn link_mode(mode: u32) -> u32 {
    // never setuid or setgid: an object is owned by whoever runs cas (root,
    // often), and any user who can reach it could run it with that identity;
    // the bits stay recorded in the tree (spec/store.md)
    mode & 0o1777 & !0o222
}

/// The result of storing one file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stored {
    pub digest: Digest,
    pub size: u64,
    pub new: bool,
}

/// Removes a temporary path unless disarmed.
pub(crate) struct TmpGuard(pub Option<PathBuf>);

impl TmpGuard {
    pub(crate) fn new(p: PathBuf) -> TmpGuard {
        TmpGuard(Some(p))
    }
    pub(crate) fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Rename `from` to `to` unless `to` exists. Ok(true): renamed; Ok(false): `to` existed.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            // Filesystem without RENAME_NOREPLACE: link is atomic and refuses to replace.
            match fs::hard_link(from, to) {
                Ok(()) => {
                    let _ = fs::remove_file(from);
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Stream `file` through blake3 from its start; never holds more than one buffer.
pub(crate) fn hash_file(file: &mut File) -> std::io::Result<(Digest, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    BUFFER.with(|b| -> std::io::Result<()> {
        let mut buf = b.borrow_mut();
        loop {
            let n = match file.read(&mut buf[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok(())
    })?;
    Ok((hasher.finalize().into(), total))
}

/// Copy `src` into `dst` while hashing it, in one read pass; runs of zeros
/// become holes so sparse files stay sparse.
fn copy_and_hash(src: &mut File, dst: &mut File) -> std::io::Result<(Digest, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    let mut pending_hole = false;
    BUFFER.with(|b| -> std::io::Result<()> {
        let mut buf = b.borrow_mut();
        loop {
            let n = match src.read(&mut buf[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = &buf[..n];
            hasher.update(chunk);
            if chunk == &ZEROS[..n] {
                dst.seek(SeekFrom::Current(n as i64))?;
                pending_hole = true;
            } else {
                dst.write_all(chunk)?;
                pending_hole = false;
            }
            total += n as u64;
        }
        Ok(())
    })?;
    if pending_hole {
        dst.set_len(total)?;
    }
    Ok((hasher.finalize().into(), total))
}

/// Copy a whole file's data, keeping holes (SEEK_DATA/SEEK_HOLE + copy_file_range).
pub(crate) fn copy_file_data(src: &File, dst: &File, len: u64) -> std::io::Result<()> {
    use rustix::fs::{seek, SeekFrom as RSeek};
    let mut off = 0u64;
    while off < len {
        let data = match seek(src, RSeek::Data(off)) {
            Ok(p) => p,
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => off, // no SEEK_DATA support: copy everything
        };
        let hole = seek(src, RSeek::Hole(data)).unwrap_or(len).min(len);
        copy_range(src, dst, data, hole)?;
        off = hole.max(data + 1).max(off + 1);
    }
    dst.set_len(len)?;
    Ok(())
}

fn copy_range(src: &File, dst: &File, mut from: u64, end: u64) -> std::io::Result<()> {
    while from < end {
        let mut off_in = from;
        let mut off_out = from;
        let want = ((end - from) as usize).min(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), want) {
            Ok(0) => break,
            Ok(n) => from += n as u64,
            Err(_) => {
                // Fallback: pread/pwrite in bounded chunks.
                return BUFFER.with(|b| -> std::io::Result<()> {
                    let mut buf = b.borrow_mut();
                    while from < end {
                        let want = ((end - from) as usize).min(buf.len());
                        let n = src.read_at(&mut buf[..want], from)?;
                        if n == 0 {
                            break;
                        }
                        dst.write_all_at(&buf[..n], from)?;
                        from += n as u64;
                    }
                    Ok(())
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn create_tmp_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .ctx("create temporary file", path)
}

impl Store {
    /// Path of the canonical object of a blob (it may not exist).
    pub fn blob_path(&self, d: &BlobDigest) -> PathBuf {
        self.object_path(&d.0)
    }

    pub fn has_blob(&self, d: &BlobDigest) -> bool {
        self.has_object(&d.0)
    }

    pub(crate) fn has_object(&self, d: &Digest) -> bool {
        fs::symlink_metadata(self.object_path(d)).is_ok()
    }

    /// Read a whole blob (for small blobs: logs, manifests, trees); verified on read.
    pub fn read_blob(&self, d: &BlobDigest) -> Result<Vec<u8>> {
        self.read_object(&d.0)
    }

    pub(crate) fn read_object(&self, d: &Digest) -> Result<Vec<u8>> {
        let path = self.object_path(d);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { digest: d.to_hex() })
            }
            Err(e) => return Err(e).ctx("read object", &path),
        };
        let actual = Digest::of_bytes(&bytes);
        if &actual != d {
            return Err(StoreError::Corrupt {
                digest: d.to_hex(),
                actual: actual.to_hex(),
                path,
            });
        }
        Ok(bytes)
    }

    /// Store bytes as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<BlobDigest> {
        let _lock = self.lock_shared()?;
        Ok(BlobDigest(self.put_bytes_inner(bytes)?.0))
    }

    pub(crate) fn put_bytes_inner(&self, bytes: &[u8]) -> Result<(Digest, bool)> {
        let d = Digest::of_bytes(bytes);
        if self.has_object(&d) {
            return Ok((d, false));
        }
        let mut guard = TmpGuard::new(self.tmp_path("blob"));
        let mut f = create_tmp_file(guard.path())?;
        f.write_all(bytes).ctx("write", guard.path())?;
        drop(f);
        let new = self.commit_tmp(&mut guard, &d)?;
        Ok((d, new))
    }

    /// Make a finished temporary file the object `d` (0444, no-replace rename).
    pub(crate) fn commit_tmp(&self, guard: &mut TmpGuard, d: &Digest) -> Result<bool> {
        let tmp = guard.path().to_path_buf();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(OBJECT_MODE)).ctx("chmod", &tmp)?;
        set_fixed_time(&tmp).ctx("set the time of", &tmp)?;
        let dest = self.object_path(d);
        let renamed = match rename_noreplace(&tmp, &dest) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).ctx("create", parent)?;
                }
                rename_noreplace(&tmp, &dest).ctx("rename into the store", &dest)?
            }
            Err(e) => return Err(e).ctx("rename into the store", &dest),
        };
        if renamed {
            guard.disarm();
        }
        Ok(renamed)
    }

    /// Store one regular file. Returns its digest and size.
    pub fn put_file(&self, path: &Path, mode: IngestMode) -> Result<(BlobDigest, u64)> {
        let _lock = self.lock_shared()?;
        let s = self.put_file_inner(path, mode)?;
        Ok((BlobDigest(s.digest), s.size))
    }

    pub(crate) fn put_file_inner(&self, path: &Path, mode: IngestMode) -> Result<Stored> {
        let src = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .ctx("open", path)?;
        let meta = src.metadata().ctx("stat", path)?;
        self.put_opened(src, &meta, path, mode)
    }

    /// Store the regular file `src`, open at `path` (`meta`: its `fstat`).
    pub(crate) fn put_opened(
        &self,
        mut src: File,
        meta: &fs::Metadata,
        path: &Path,
        mode: IngestMode,
    ) -> Result<Stored> {
        if !meta.is_file() {
            return Err(StoreError::UnsupportedFileType {
                path: path.to_path_buf(),
                kind: file_kind(meta),
            });
        }
        if mode == IngestMode::Move && meta.nlink() == 1 {
            if let Some(s) = self.move_file(&mut src, path)? {
                return Ok(s);
            }
        }
        if meta.len() <= BUF as u64 {
            return self.copy_small_file(&mut src, path);
        }
        let mut guard = TmpGuard::new(self.tmp_path("obj"));
        let mut dst = create_tmp_file(guard.path())?;
        // A reflink is a private snapshot of the data: hashing it cannot race with writers.
        let (digest, size) = if meta.len() > 0 && reflink_copy::reflink_file(&src, &dst).is_ok() {
            hash_file(&mut dst).ctx("read", guard.path())?
        } else {
            src.seek(SeekFrom::Start(0)).ctx("read", path)?;
            copy_and_hash(&mut src, &mut dst).ctx("copy", path)?
        };
        drop(dst);
        if self.has_object(&digest) {
            return Ok(Stored {
                digest,
                size,
                new: false,
            });
        }
        let new = self.commit_tmp(&mut guard, &digest)?;
        Ok(Stored { digest, size, new })
    }

    /// Hash in place and rename into the store. `None` when it must be copied instead.
    fn move_file(&self, f: &mut File, path: &Path) -> Result<Option<Stored>> {
        let (digest, size) = hash_file(f).ctx("read", path)?;
        if self.has_object(&digest) {
            return Ok(Some(Stored {
                digest,
                size,
                new: false,
            }));
        }
        fs::set_permissions(path, fs::Permissions::from_mode(OBJECT_MODE)).ctx("chmod", path)?;
        set_fixed_time(path).ctx("set the time of", path)?;
        let dest = self.object_path(&digest);
        match rename_noreplace(path, &dest) {
            Ok(new) => Ok(Some(Stored { digest, size, new })),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Ok(None),
            Err(e) => Err(e).ctx("rename into the store", &dest),
        }
    }

    /// A file that fits in one buffer: read it once, and only create a temporary
    /// file (a new inode, the slow part) when the object is new.
    fn copy_small_file(&self, src: &mut File, path: &Path) -> Result<Stored> {
        BUFFER.with(|b| -> Result<Stored> {
            let mut buf = b.borrow_mut();
            let mut n = 0;
            loop {
                if n == buf.len() {
                    // Grew while we read: fall back to streaming.
                    drop(buf);
                    return self.copy_file_streaming(path);
                }
                match src.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).ctx("read", path),
                }
            }
            let digest: Digest = blake3::hash(&buf[..n]).into();
            let size = n as u64;
            if self.has_object(&digest) {
                return Ok(Stored {
                    digest,
                    size,
                    new: false,
                });
            }
            let mut guard = TmpGuard::new(self.tmp_path("obj"));
            let mut dst = create_tmp_file(guard.path())?;
            dst.write_all(&buf[..n]).ctx("write", guard.path())?;
            drop(dst);
            let new = self.commit_tmp(&mut guard, &digest)?;
            Ok(Stored { digest, size, new })
        })
    }

    fn copy_file_streaming(&self, path: &Path) -> Result<Stored> {
        let mut src = File::open(path).ctx("open", path)?;
        let mut guard = TmpGuard::new(self.tmp_path("obj"));
        let mut dst = create_tmp_file(guard.path())?;
        let (digest, size) = copy_and_hash(&mut src, &mut dst).ctx("copy", path)?;
        drop(dst);
        if self.has_object(&digest) {
            return Ok(Stored {
                digest,
                size,
                new: false,
            });
        }
        let new = self.commit_tmp(&mut guard, &digest)?;
        Ok(Stored { digest, size, new })
    }

    /// Path of an object file whose inode mode is `link_mode(mode)`: the canonical
    /// object for 0444, else the variant `objects/ab/cdef….<octal>` (made on demand).
    pub fn file_variant(&self, d: &BlobDigest, mode: u32) -> Result<PathBuf> {
        self.variant_with_mode(d, link_mode(mode))
    }

    /// Path of an object file whose inode mode is exactly the recorded
    /// `mode`: the canonical object for 0444, else a variant. Views use the
    /// recorded mode itself, write, setuid and setgid bits included, so a
    /// step sees the modes its tree records whatever the file system
    /// (spec/sandbox.md; an image step copies them into the image): the
    /// sandbox mounts views read-only and nosuid, and only the store's
    /// owner enters the store (a new store is 0700).
    pub fn view_variant(&self, d: &BlobDigest, mode: u32) -> Result<PathBuf> {
        self.variant_with_mode(d, mode & 0o7777)
    }

    fn variant_with_mode(&self, d: &BlobDigest, m: u32) -> Result<PathBuf> {
        let canon = self.object_path(&d.0);
        if m == OBJECT_MODE {
            return Ok(canon);
        }
        let variant = variant_path(&canon, m);
        if fs::symlink_metadata(&variant).is_ok() {
            return Ok(variant);
        }
        let src = match File::open(&canon) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing { digest: d.to_hex() })
            }
            Err(e) => return Err(e).ctx("open object", &canon),
        };
        let len = src.metadata().ctx("stat", &canon)?.len();
        let guard = TmpGuard::new(self.tmp_path("variant"));
        let dst = create_tmp_file(guard.path())?;
        if len == 0 || reflink_copy::reflink_file(&src, &dst).is_err() {
            copy_file_data(&src, &dst, len).ctx("copy", &canon)?;
        }
        drop(dst);
        // chmod after writing: a write clears setuid/setgid.
        fs::set_permissions(guard.path(), fs::Permissions::from_mode(m))
            .ctx("chmod", guard.path())?;
        set_fixed_time(guard.path()).ctx("set the time of", guard.path())?;
        let mut guard = guard;
        if rename_noreplace(guard.path(), &variant).ctx("rename into the store", &variant)? {
            guard.disarm();
        }
        Ok(variant)
    }
}

/// `objects/ab/cdef….555`
pub(crate) fn variant_path(canon: &Path, mode: u32) -> PathBuf {
    let mut s = canon.as_os_str().to_owned();
    s.push(format!(".{mode:o}"));
    PathBuf::from(s)
}

pub(crate) fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

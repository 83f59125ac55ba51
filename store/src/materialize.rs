//! Materialise a tree into a directory: reflink, hardlink or copy, chosen
//! automatically (reflink > hardlink > copy) or forced, and reported.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::blob::{copy_file_data, set_fixed_time};
use crate::digest::{BlobDigest, TreeDigest};
use crate::error::{IoContext, Result, StoreError};
use crate::store::Store;
use crate::tree::EntryKind;

/// How files get from the store into a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Request only: reflink if the filesystem can, else hardlink, else copy.
    Auto,
    /// Copy-on-write clones: private inodes, exact modes, no data copied.
    Reflink,
    /// Hardlinks to the read-only objects (or their mode variants): write bits are
    /// stripped, except in views, which have exact modes (mounted read-only).
    Hardlink,
    /// Plain copies (holes kept), exact modes.
    Copy,
    /// Request only: reflink if possible, else copy; never a hardlink into the store.
    ReflinkOrCopy,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Auto => "auto",
            Method::Reflink => "reflink",
            Method::Hardlink => "hardlink",
            Method::Copy => "copy",
            Method::ReflinkOrCopy => "reflink-or-copy",
        })
    }
}

struct FileJob {
    path: PathBuf,
    digest: BlobDigest,
    size: u64,
    mode: u32,
}

/// Is this error "this method cannot work here" (as opposed to a real failure)?
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EOPNOTSUPP
                | libc::EXDEV
                | libc::EINVAL
                | libc::ENOTTY
                | libc::EPERM
                | libc::EMLINK
                | libc::ENOSYS
                | libc::EACCES
        )
    )
}

fn create_dest(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .ctx("create", path)
}

/// `dest` must not exist (it is created) or be an empty directory.
pub(crate) fn prepare_dest(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {
            if fs::read_dir(dest)
                .ctx("read directory", dest)?
                .next()
                .is_some()
            {
                return Err(StoreError::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
            Ok(())
        }
        Ok(_) => Err(StoreError::DestinationNotEmpty {
            path: dest.to_path_buf(),
        }),
        Err(_) => fs::create_dir_all(dest).ctx("create directory", dest),
    }
}

/// The method each (file system, requested method) was found to take in
/// this process.
fn probed() -> std::sync::MutexGuard<'static, std::collections::HashMap<(u64, Method), Method>> {
    static PROBED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<(u64, Method), Method>>,
    > = std::sync::OnceLock::new();
    PROBED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Materialise `tree` into `dest` (which must not exist or be empty). Returns
    /// the method used. Modes, symlinks and empty directories are as recorded,
    /// except that hardlinked files lose their write bits (they share the
    /// store's read-only inodes).
    pub fn materialize(&self, tree: &TreeDigest, dest: &Path, method: Method) -> Result<Method> {
        let _lock = self.lock_shared()?;
        prepare_dest(dest)?;
        self.materialize_inner(tree, dest, method, false)
    }

    pub(crate) fn materialize_inner(
        &self,
        tree: &TreeDigest,
        dest: &Path,
        method: Method,
        view: bool,
    ) -> Result<Method> {
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        self.plan(tree, dest, &mut dirs, &mut files)?;
        let order: &[Method] = match method {
            Method::Auto => &[Method::Reflink, Method::Hardlink, Method::Copy],
            Method::ReflinkOrCopy => &[Method::Reflink, Method::Copy],
            Method::Reflink => &[Method::Reflink],
            Method::Hardlink => &[Method::Hardlink],
            Method::Copy => &[Method::Copy],
        };
        // Probe on the first non-empty file (an empty file can be "reflinked"
        // anywhere), once per file system and request in a process: a probe
        // that fails creates and removes a file, and a step's views would
        // otherwise pay it each time.
        let mut chosen = *order.last().unwrap_or(&Method::Copy);
        let fs_id = std::os::unix::fs::MetadataExt::dev(&fs::metadata(dest).ctx("stat", dest)?);
        let known = probed().get(&(fs_id, method)).copied();
        if let Some(m) = known.filter(|_| files.iter().any(|f| f.size > 0)) {
            chosen = m;
        } else if let Some(i) = files.iter().position(|f| f.size > 0) {
            let probe = &files[i];
            let mut last_err = None;
            let mut found = false;
            for &m in order {
                match self.place(probe, m, view)? {
                    Ok(()) => {
                        chosen = m;
                        found = true;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            if found {
                probed().insert((fs_id, method), chosen);
            }
            if !found {
                let e =
                    last_err.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
                return Err(if method == Method::Reflink {
                    StoreError::ReflinkUnsupported {
                        path: dest.to_path_buf(),
                        source: e,
                    }
                } else {
                    StoreError::Io {
                        op: "materialise",
                        path: probe.path.clone(),
                        source: e,
                    }
                });
            }
            files.swap_remove(i);
        } else if method == Method::Auto {
            chosen = Method::Hardlink;
        }
        files.par_iter().try_for_each(|f| -> Result<()> {
            match self.place(f, chosen, view)? {
                Ok(()) => Ok(()),
                // Too many links to one inode, or similar: this file gets a copy.
                Err(e) if unsupported(&e) => match self.place(f, Method::Copy, view)? {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e).ctx("copy", &f.path),
                },
                Err(e) => Err(e).ctx("materialise", &f.path),
            }
        })?;
        for (path, mode) in dirs.iter().rev() {
            // exact modes, views included (spec/sandbox.md: a step sees the
            // modes its tree records; the read-only mount keeps it out)
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).ctx("chmod", path)?;
            // last: nothing is written into it after this
            set_fixed_time(path).ctx("set the time of", path)?;
        }
        Ok(chosen)
    }

    /// Create directories and symlinks; collect files. Iterative: a tree of
    /// any depth plans in constant stack (directories before their entries,
    /// so `dirs` in reverse is children first).
    fn plan(
        &self,
        tree: &TreeDigest,
        dir: &Path,
        dirs: &mut Vec<(PathBuf, u32)>,
        files: &mut Vec<FileJob>,
    ) -> Result<()> {
        let mut stack = vec![(*tree, dir.to_path_buf())];
        while let Some((tree, dir)) = stack.pop() {
            let t = self.get_tree(&tree)?;
            for e in t.entries {
                let path = dir.join(OsStr::from_bytes(&e.name));
                match e.kind {
                    EntryKind::Dir { digest } => {
                        fs::create_dir(&path).ctx("create directory", &path)?;
                        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
                            .ctx("chmod", &path)?;
                        dirs.push((path.clone(), e.mode));
                        stack.push((digest, path));
                    }
                    EntryKind::Symlink { target } => {
                        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                            .ctx("create symlink", &path)?;
                        set_fixed_time(&path).ctx("set the time of", &path)?;
                    }
                    EntryKind::File { digest, size } => files.push(FileJob {
                        path,
                        digest,
                        size,
                        mode: e.mode,
                    }),
                }
            }
        }
        Ok(())
    }

    /// Place one file. Outer error: fatal (missing object...). Inner error: this method failed.
    /// `view`: for a view, whose hardlinks carry the recorded mode itself
    /// (a checkout's lose their write bits).
    fn place(&self, f: &FileJob, method: Method, view: bool) -> Result<std::io::Result<()>> {
        match method {
            Method::Hardlink => {
                let src = if view {
                    self.view_variant(&f.digest, f.mode)?
                } else {
                    self.file_variant(&f.digest, f.mode)?
                };
                Ok(fs::hard_link(&src, &f.path))
            }
            Method::Reflink | Method::Copy => {
                let obj = self.blob_path(&f.digest);
                let src = match File::open(&obj) {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StoreError::Missing {
                            digest: f.digest.to_hex(),
                        })
                    }
                    Err(e) => return Err(e).ctx("open object", &obj),
                };
                let dst = create_dest(&f.path)?;
                let r = if f.size == 0 {
                    Ok(())
                } else if method == Method::Reflink {
                    reflink_copy::reflink_file(&src, &dst)
                } else {
                    copy_file_data(&src, &dst, f.size)
                };
                drop(dst);
                if let Err(e) = r {
                    let _ = fs::remove_file(&f.path);
                    return Ok(Err(e));
                }
                // After the data: writing clears setuid/setgid.
                fs::set_permissions(&f.path, fs::Permissions::from_mode(f.mode))
                    .ctx("chmod", &f.path)?;
                set_fixed_time(&f.path).ctx("set the time of", &f.path)?;
                Ok(Ok(()))
            }
            Method::Auto | Method::ReflinkOrCopy => {
                Ok(Err(std::io::Error::from_raw_os_error(libc::EINVAL)))
            }
        }
    }
}

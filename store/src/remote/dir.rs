//! A directory remote (a shared network filesystem) in the same layout as
//! the HTTP remote: `DIR/cas/{hex}` and `DIR/ac/{hex}`. Every write goes to a
//! hidden temporary file in the same directory and is renamed into place, so
//! readers see either nothing or a whole file, and concurrent writers of the
//! same name are harmless (both write the same bytes for objects; the last
//! rename wins for action results).

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Remote, RemoteError};
use crate::digest::{ActionKey, Digest};

pub struct DirRemote {
    root: PathBuf,
    url: String,
    swept: std::sync::Once,
}

/// Temporary files older than this are leftovers of a writer that was
/// killed (a write takes seconds, not hours): the first writer of a process
/// removes them.
pub const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl DirRemote {
    /// A directory remote; `cas/` and `ac/` are created when missing.
    pub fn new(root: &Path) -> Result<DirRemote, RemoteError> {
        let url = root.display().to_string();
        for sub in ["cas", "ac"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|source| RemoteError::Io {
                url: url.clone(),
                op: "create",
                path: d,
                source,
            })?;
        }
        Ok(DirRemote {
            root: root.to_path_buf(),
            url,
            swept: std::sync::Once::new(),
        })
    }

    fn io(&self, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError {
        let url = self.url.clone();
        let path = path.to_path_buf();
        move |source| RemoteError::Io {
            url,
            op,
            path,
            source,
        }
    }

    fn object_path(&self, d: &Digest) -> PathBuf {
        self.root.join("cas").join(d.to_hex())
    }

    fn action_path(&self, k: &ActionKey) -> PathBuf {
        self.root.join("ac").join(k.to_hex())
    }

    /// Remove temporary files (`.NAME.tmp-*`) older than [`STALE_TMP`].
    pub fn sweep_stale(&self) -> usize {
        let mut removed = 0;
        for sub in ["cas", "ac"] {
            let Ok(entries) = fs::read_dir(self.root.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') && name.contains(".tmp-")) {
                    continue;
                }
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TMP);
                if old && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Write through a temporary file next to `dest`, then rename.
    fn write_atomic(
        &self,
        dest: &Path,
        write: &mut dyn FnMut(&mut File) -> std::io::Result<()>,
    ) -> Result<(), RemoteError> {
        self.swept.call_once(|| {
            self.sweep_stale();
        });
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dest.with_file_name(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = File::create(&tmp).map_err(self.io("create", &tmp))?;
            write(&mut f).map_err(self.io("write", &tmp))?;
            f.sync_all().map_err(self.io("sync", &tmp))?;
            drop(f);
            fs::rename(&tmp, dest).map_err(self.io("rename into place", dest))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn exists(&self, p: &Path) -> Result<bool, RemoteError> {
        match fs::symlink_metadata(p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io("stat", p)(e)),
        }
    }
}

impl Remote for DirRemote {
    fn url(&self) -> &str {
        &self.url
    }

    fn has_object(&self, digest: &Digest) -> Result<bool, RemoteError> {
        self.exists(&self.object_path(digest))
    }

    fn get_object(
        &self,
        digest: &Digest,
        out: &mut File,
        limit: &super::Limit,
    ) -> Result<bool, RemoteError> {
        let p = self.object_path(digest);
        // Not through a symlink, not a FIFO or a device: a plain file.
        let mut src = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io("open", &p)(e)),
        };
        let meta = src.metadata().map_err(self.io("stat", &p))?;
        if !meta.is_file() {
            return Err(self.io("read", &p)(std::io::Error::other(
                "not a regular file",
            )));
        }
        super::copy_bounded(&self.url, digest, &mut src, out, limit)?;
        Ok(true)
    }

    fn put_object(&self, digest: &Digest, path: &Path, _size: u64) -> Result<(), RemoteError> {
        let dest = self.object_path(digest);
        let mut src = File::open(path).map_err(self.io("open", path))?;
        self.write_atomic(&dest, &mut |f| {
            src.seek(SeekFrom::Start(0))?;
            std::io::copy(&mut src, f).map(|_| ())
        })
    }

    fn has_action(&self, key: &ActionKey) -> Result<bool, RemoteError> {
        self.exists(&self.action_path(key))
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError> {
        let p = self.action_path(key);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read", &p)(e)),
        }
    }

    fn put_action(&self, key: &ActionKey, bytes: &[u8]) -> Result<(), RemoteError> {
        self.write_atomic(&self.action_path(key), &mut |f| f.write_all(bytes))
    }
}

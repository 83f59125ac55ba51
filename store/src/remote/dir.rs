//! A directory remote (a shared network filesystem) in the same layout as
//! the HTTP remote: `DIR/cas/{hex}` and `DIR/ac/{hex}`. Every write goes to a
//! hidden temporary file in the same directory and is renamed into place, so
//! readers see either nothing or a whole file, and concurrent writers of the
//! same name are harmless (both write the same bytes for objects; the last
//! rename wins for action results).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Remote, RemoteError};
use crate::digest::{ActionKey, Digest};

pub struct DirRemote {
    root: PathBuf,
    url: String,
    swept: std::sync::Once,
    interrupt: super::Interrupt,
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
            interrupt: super::Interrupt::never(),
        })
    }

    /// Its transfers stop once `interrupt` fires.
    pub fn interrupted_by(mut self, interrupt: super::Interrupt) -> DirRemote {
        self.interrupt = interrupt;
        self
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
        // A new file (`O_EXCL`: never through a symlink or into a file
        // someone planted under the name; a leftover of a killed process
        // with the same pid takes the next name).
        let mut attempts = 0;
        let (tmp, mut f) = loop {
            let tmp = dest.with_file_name(format!(
                ".{name}.tmp-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1;
                }
                Err(e) => return Err(self.io("create", &tmp)(e)),
            }
        };
        let result = (|| {
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

    /// Open the entry `p` (an object or an action result) for reading:
    /// never through a symlink (`O_NOFOLLOW`), never blocking on a FIFO
    /// (`O_NONBLOCK`, cleared once the entry is known to be a regular file),
    /// and nothing but a regular file. `None` when it is not there.
    fn open_entry(&self, p: &Path) -> Result<Option<File>, RemoteError> {
        let src = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("open", p)(e)),
        };
        let meta = src.metadata().map_err(self.io("stat", p))?;
        if !meta.is_file() {
            return Err(self.io("read", p)(std::io::Error::other(
                "not a regular file",
            )));
        }
        clear_nonblock(&src).map_err(self.io("open", p))?;
        Ok(Some(src))
    }

    /// Whether `p` is there: a regular file (a symlink, FIFO or device
    /// planted there is as good as absent, and a push replaces it).
    fn exists(&self, p: &Path) -> Result<bool, RemoteError> {
        match fs::symlink_metadata(p) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io("stat", p)(e)),
        }
    }
}

/// Clear `O_NONBLOCK` on `f` (a regular file reads alike either way; this
/// keeps reads plain).
fn clear_nonblock(f: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor this File owns; no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Remote for DirRemote {
    fn interrupt(&self) -> super::Interrupt {
        self.interrupt
    }

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
        let Some(mut src) = self.open_entry(&p)? else {
            return Ok(false);
        };
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
        let Some(src) = self.open_entry(&p)? else {
            return Ok(None);
        };
        // An action result is small: the limit applies while reading.
        let limit = super::result::MAX_RESULT_SIZE as u64;
        let mut bytes = Vec::new();
        src.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(self.io("read", &p))?;
        if bytes.len() as u64 > limit {
            return Err(self.io("read", &p)(std::io::Error::other(format!(
                "larger than the {limit} bytes an action result may have"
            ))));
        }
        Ok(Some(bytes))
    }

    fn put_action(&self, key: &ActionKey, bytes: &[u8]) -> Result<(), RemoteError> {
        self.write_atomic(&self.action_path(key), &mut |f| f.write_all(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> (tempfile::TempDir, DirRemote, ActionKey, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let r = DirRemote::new(t.path()).unwrap();
        let key = ActionKey::of_manifest(b"key");
        let p = r.action_path(&key);
        (t, r, key, p)
    }

    #[test]
    fn an_action_result_round_trips() {
        let (_t, r, key, _) = remote();
        assert_eq!(r.get_action(&key).unwrap(), None);
        assert!(!r.has_action(&key).unwrap());
        r.put_action(&key, b"result").unwrap();
        assert!(r.has_action(&key).unwrap());
        assert_eq!(r.get_action(&key).unwrap().as_deref(), Some(&b"result"[..]));
    }

    #[test]
    fn a_fifo_a_symlink_or_a_huge_file_as_an_action_result_is_refused_at_once() {
        let (_t, r, key, p) = remote();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(r.get_action(&key).is_err(), "a FIFO: no blocking open");
        assert!(!r.has_action(&key).unwrap(), "a FIFO is not a result");
        // a push replaces what was planted
        r.put_action(&key, b"result").unwrap();
        assert_eq!(r.get_action(&key).unwrap().as_deref(), Some(&b"result"[..]));
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        assert!(r.get_action(&key).is_err(), "a symlink is not followed");
        assert!(!r.has_action(&key).unwrap());
        fs::remove_file(&p).unwrap();
        let f = File::create(&p).unwrap();
        f.set_len(200 << 20).unwrap();
        let err = r.get_action(&key).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        let f = File::create(&p).unwrap();
        f.set_len(super::super::result::MAX_RESULT_SIZE as u64)
            .unwrap();
        assert!(
            r.get_action(&key).unwrap().is_some(),
            "the limit itself is fine"
        );
    }
}

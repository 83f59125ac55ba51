//! Store-wide locking with `flock(2)` on the `lock` file.
//!
//! Every operation that writes objects or relies on objects staying present
//! (ingest, put, materialise, view, action_put, pin, import) holds a shared lock
//! for its duration; builds hold one (`Store::lock_shared`) from staging to
//! recording their result. `gc` and `verify --repair` take the exclusive lock,
//! so they never run while anything holds objects it has not yet rooted.
//! Linux grants a new shared flock even while an exclusive request waits, so
//! nesting shared locks in one process cannot deadlock; taking the exclusive
//! lock while holding a shared one in the same process does.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{IoContext, Result};

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .ctx("open lock file", path)
}

/// Block until the lock is held.
pub(crate) fn lock(path: &Path, exclusive: bool) -> Result<StoreLock> {
    let file = open_lock_file(path)?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    loop {
        match flock(&file, op) {
            Ok(()) => return Ok(StoreLock { _file: file }),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).ctx("flock", path),
        }
    }
}

/// Take the lock if nobody holds a conflicting one; `None` when busy.
pub(crate) fn try_lock(path: &Path, exclusive: bool) -> Result<Option<StoreLock>> {
    let file = open_lock_file(path)?;
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match flock(&file, op) {
        Ok(()) => Ok(Some(StoreLock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e).ctx("flock", path),
    }
}

/// The build lock of one action key (`locks/<key hex>`): held by the one
/// process (or thread) building that key, from before it looks into the action
/// cache until its result is recorded, so that a second builder of the same
/// key waits and then finds the first one's result instead of building it
/// again in a shared directory.
///
/// The lock file is removed by its holder before it unlocks; a waiter that
/// then gets a lock on a removed file sees that the path no longer names the
/// file it locked and tries again, so the directory does not grow with every
/// key ever built.
#[derive(Debug)]
pub struct KeyLock {
    file: File,
    path: std::path::PathBuf,
}

impl KeyLock {
    /// Take the lock of `name` in `dir`, calling `waiting` once if another
    /// holder makes it wait.
    pub(crate) fn acquire(dir: &Path, name: &str, waiting: &dyn Fn()) -> Result<KeyLock> {
        let path = dir.join(name);
        let mut said = false;
        loop {
            let file = if let Ok(f) = open_lock_file(&path) {
                f
            } else {
                std::fs::create_dir_all(dir).ctx("create", dir)?;
                open_lock_file(&path)?
            };
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    if !said {
                        said = true;
                        waiting();
                    }
                    loop {
                        match flock(&file, FlockOperation::LockExclusive) {
                            Ok(()) => break,
                            Err(rustix::io::Errno::INTR) => continue,
                            Err(e) => return Err(e).ctx("flock", &path),
                        }
                    }
                }
                Err(e) => return Err(e).ctx("flock", &path),
            }
            // Still the file at `path`? (The last holder may have removed it.)
            let held = rustix::fs::fstat(&file).ctx("fstat", &path)?;
            match rustix::fs::stat(&path) {
                Ok(now) if now.st_ino == held.st_ino && now.st_dev == held.st_dev => {
                    return Ok(KeyLock { file, path })
                }
                Ok(_) => continue,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e).ctx("stat", &path),
            }
        }
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Removed while still held: nobody can lock this file and believe it current.
        let _ = std::fs::remove_file(&self.path);
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

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
    exclusive: bool,
}

impl StoreLock {
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

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
            Ok(()) => {
                return Ok(StoreLock {
                    _file: file,
                    exclusive,
                })
            }
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
        Ok(()) => Ok(Some(StoreLock {
            _file: file,
            exclusive,
        })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e).ctx("flock", path),
    }
}

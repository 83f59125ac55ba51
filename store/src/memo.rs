//! Memos: the result of a pure computation over files (`cas build`'s load
//! of a project and its keys), kept with the identity (device, inode, size,
//! mtime, ctime; or absence) of every file and directory it read, and
//! valid while each of them is unchanged. A lookup only stats.
//!
//! An entry is recorded only if every file's mtime and ctime are older than
//! the start of the computation by at least the stat cache's settle time, so
//! a file changed while (or just before) it was read is never trusted: the
//! next run recomputes and records then. ctime cannot be set by a user, so
//! `touch -d` alone cannot hide a change.
//!
//! Table `memo` in `ac.sqlite`, created on first use (spec/store.md).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, OptionalExtension};

use crate::digest::Digest;
use crate::error::Result;
use crate::statcache::{StatKey, SETTLE};
use crate::store::Store;

pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS memo (
    key     TEXT PRIMARY KEY,
    files   BLOB NOT NULL,
    payload BLOB NOT NULL
)";

/// The identity of `path` now (`lstat`), `None` if it does not exist.
fn identity(path: &Path) -> Option<StatKey> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| StatKey::of(&m))
}

fn encode(files: &[(PathBuf, Option<StatKey>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(files.len() * 80);
    for (p, id) in files {
        let b = p.as_os_str().as_bytes();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
        match id {
            None => out.push(0),
            Some(k) => {
                out.push(1);
                for v in [k.dev, k.ino, k.size] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                for v in [k.mtime_ns, k.ctime_ns] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    out
}

/// Whether every recorded identity still holds (a malformed record does not).
fn still_valid(mut b: &[u8]) -> bool {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn u64_of(b: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    while !b.is_empty() {
        let Some(len) = take(&mut b, 4)
            .and_then(|l| l.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return false;
        };
        let Some(path) = take(&mut b, len as usize) else {
            return false;
        };
        let now = identity(Path::new(std::ffi::OsStr::from_bytes(path)));
        let recorded = match take(&mut b, 1) {
            Some([0]) => None,
            Some([1]) => {
                let (Some(dev), Some(ino), Some(size), Some(m), Some(c)) = (
                    u64_of(&mut b),
                    u64_of(&mut b),
                    u64_of(&mut b),
                    u64_of(&mut b),
                    u64_of(&mut b),
                ) else {
                    return false;
                };
                Some(StatKey {
                    dev,
                    ino,
                    size,
                    mtime_ns: m as i64,
                    ctime_ns: c as i64,
                })
            }
            _ => return false,
        };
        if now != recorded {
            return false;
        }
    }
    true
}

impl Store {
    /// The payload recorded under `key`, if every file it was computed from
    /// is as it was then.
    pub fn memo_get(&self, key: &Digest) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self.db.with("read memo", |c| {
            c.query_row(
                "SELECT files, payload FROM memo WHERE key = ?1",
                params![key.to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(row.and_then(|(files, payload)| still_valid(&files).then_some(payload)))
    }

    /// Record `payload` under `key`, computed from `files` (paths read; a
    /// path that did not exist counts too) by a computation that started at
    /// `started`. Nothing is recorded, and `false` returned, when a file
    /// changed too recently to be trusted (see the module).
    pub fn memo_put(
        &self,
        key: &Digest,
        files: &[PathBuf],
        started: SystemTime,
        payload: &[u8],
    ) -> Result<bool> {
        let limit = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
            - SETTLE.as_nanos() as i64;
        let mut ids = Vec::with_capacity(files.len());
        for p in files {
            let id = identity(p);
            if id.is_some_and(|k| k.mtime_ns >= limit || k.ctime_ns >= limit) {
                return Ok(false);
            }
            ids.push((p.clone(), id));
        }
        let files = encode(&ids);
        self.db.with("record memo", |c| {
            c.execute(
                "INSERT OR REPLACE INTO memo (key, files, payload) VALUES (?1, ?2, ?3)",
                params![key.to_hex(), files, payload],
            )?;
            Ok(())
        })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_holds_while_its_files_do() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let f = t.path().join("element.yaml");
        let absent = t.path().join("kinds/x.yaml");
        std::fs::write(&f, "kind: manual\n").unwrap();
        let key = Digest::of_bytes(b"load");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        // Too recent: not recorded.
        assert!(!store
            .memo_put(&key, std::slice::from_ref(&f), SystemTime::now(), b"p")
            .unwrap());
        assert!(store.memo_get(&key).unwrap().is_none());
        assert!(store
            .memo_put(&key, &[f.clone(), absent.clone()], later, b"p")
            .unwrap());
        assert_eq!(store.memo_get(&key).unwrap().as_deref(), Some(&b"p"[..]));
        // A file that appears where none was, or a changed file: invalid.
        std::fs::create_dir_all(absent.parent().unwrap()).unwrap();
        std::fs::write(&absent, "x").unwrap();
        assert!(store.memo_get(&key).unwrap().is_none());
        std::fs::remove_file(&absent).unwrap();
        assert_eq!(store.memo_get(&key).unwrap().as_deref(), Some(&b"p"[..]));
        std::fs::write(&f, "kind: manual \n").unwrap();
        assert!(store.memo_get(&key).unwrap().is_none());
        assert!(!still_valid(&[1, 0, 0]));
    }
}

//! The stat cache: copy-mode ingest (the user's directories, local sources)
//! skips reading a file whose path, device, inode, size, mtime and ctime are
//! those recorded when it was last hashed, and whose object is still in the
//! store. Entries are recorded only for files whose mtime and ctime are at
//! least [`SETTLE`] in the past, so a file written in the same clock tick as
//! its hashing is never trusted (git's "racy clean" problem). ctime cannot be
//! set by a user, so `touch -d` alone cannot hide a change.
//!
//! Table `stat_cache` in `ac.sqlite`, created on first use (spec/store.md).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::params;

use crate::digest::Digest;
use crate::error::Result;
use crate::store::Store;

/// How old a file's mtime and ctime must be before its digest is cached.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS stat_cache (
    path     BLOB PRIMARY KEY,
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest   TEXT NOT NULL
)";

/// What identifies one version of a file on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl StatKey {
    pub(crate) fn of(meta: &std::fs::Metadata) -> StatKey {
        StatKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }

    /// The same from an `fstatat` result.
    pub(crate) fn of_stat(st: &rustix::fs::Stat) -> StatKey {
        StatKey {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st
                .st_mtime
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_mtime_nsec as i64),
            ctime_ns: st
                .st_ctime
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_ctime_nsec as i64),
        }
    }

    fn settled(&self, now_ns: i64) -> bool {
        let limit = now_ns - SETTLE.as_nanos() as i64;
        self.mtime_ns < limit && self.ctime_ns < limit
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Store {
    /// Every entry below the directory `dir` (absolute), by path: one range
    /// scan instead of a query per file.
    pub(crate) fn stat_below(
        &self,
        dir: &Path,
    ) -> Result<std::collections::HashMap<Vec<u8>, (StatKey, Digest)>> {
        let mut lo = dir.as_os_str().as_bytes().to_vec();
        if lo.last() != Some(&b'/') {
            lo.push(b'/');
        }
        let mut hi = lo.clone();
        *hi.last_mut().expect("not empty") = b'/' + 1;
        self.db.with("read stat cache", |c| {
            let mut q = c.prepare_cached(
                "SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest FROM stat_cache \
                 WHERE path >= ?1 AND path < ?2",
            )?;
            let rows = q.query_map(params![lo, hi], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    StatKey {
                        dev: r.get::<_, i64>(1)? as u64,
                        ino: r.get::<_, i64>(2)? as u64,
                        size: r.get::<_, i64>(3)? as u64,
                        mtime_ns: r.get(4)?,
                        ctime_ns: r.get(5)?,
                    },
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut out = std::collections::HashMap::new();
            for row in rows {
                let (path, key, hex) = row?;
                if let Ok(d) = Digest::from_hex(&hex) {
                    out.insert(path, (key, d));
                }
            }
            Ok(out)
        })
    }

    /// Remember the digests of freshly hashed files (settled ones only).
    pub(crate) fn stat_record(&self, files: &[(&Path, StatKey, Digest)]) -> Result<()> {
        let now = now_ns();
        let settled: Vec<_> = files.iter().filter(|(_, k, _)| k.settled(now)).collect();
        if settled.is_empty() {
            return Ok(());
        }
        self.db.with("record stat cache", |c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR REPLACE INTO stat_cache (path, dev, ino, size, mtime_ns, ctime_ns, digest) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (path, k, d) in settled {
                    ins.execute(params![
                        path.as_os_str().as_bytes(),
                        k.dev as i64,
                        k.ino as i64,
                        k.size as i64,
                        k.mtime_ns,
                        k.ctime_ns,
                        d.to_hex()
                    ])?;
                }
            }
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::IngestMode;

    #[test]
    fn stat_keys_from_metadata_and_from_fstatat_agree() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        let st =
            rustix::fs::statat(rustix::fs::CWD, &f, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(
            StatKey::of_stat(&st),
            StatKey::of(&std::fs::symlink_metadata(&f).unwrap())
        );
    }

    #[test]
    fn unchanged_files_are_not_read_again_and_changed_ones_are() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let file = src.join("a");
        std::fs::write(&file, "one").unwrap();
        std::thread::sleep(SETTLE + Duration::from_millis(200));
        let first = store.ingest(&src, IngestMode::Copy).unwrap().tree;

        // The entry is there, and it is used: point it at another object
        // and the next ingest believes it (white-box proof of the fast path).
        let canon = std::fs::canonicalize(&file).unwrap();
        let key = StatKey::of(&std::fs::metadata(&file).unwrap());
        let other = store.put_bytes(b"xyz").unwrap();
        assert_eq!(
            store
                .stat_below(canon.parent().unwrap())
                .unwrap()
                .get(canon.as_os_str().as_bytes())
                .map(|e| e.0),
            Some(key)
        );
        store
            .stat_record(&[(canon.as_path(), key, other.0)])
            .unwrap();
        let fooled = store.ingest(&src, IngestMode::Copy).unwrap().tree;
        assert_ne!(fooled, first, "the stat cache was not consulted");
        store
            .stat_record(&[(
                canon.as_path(),
                key,
                store.get_tree(&first).unwrap().entries[0]
                    .file_digest()
                    .unwrap()
                    .0,
            )])
            .unwrap();
        assert_eq!(store.ingest(&src, IngestMode::Copy).unwrap().tree, first);

        // Same size, mtime put back: ctime still moves, so the change is seen.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, "two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let changed = store.ingest(&src, IngestMode::Copy).unwrap().tree;
        assert_ne!(changed, first);
        let entry = store.get_tree(&changed).unwrap().entries[0].clone();
        assert_eq!(
            entry.file_digest().unwrap(),
            &crate::digest::BlobDigest(Digest::of_bytes(b"two"))
        );
    }
}

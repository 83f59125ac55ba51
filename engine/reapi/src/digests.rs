//! The blake3 ↔ SHA-256 map. The store names every object by blake3; REAPI
//! servers accept SHA-256 only. An object is hashed with SHA-256 once when
//! it is first uploaded, and a download is checked against both digests as
//! it streams; what either learns is kept here so that no object is hashed
//! twice in the same direction (spec/remote.md, "REAPI").
//!
//! Two sources of entries, kept apart:
//! - *known*: computed here from the bytes (an upload, or a download that
//!   matched both digests);
//! - *claimed*: read from a remote's digest-map blob. A claim is only used
//!   to ask for an object; what arrives is verified against the blake3
//!   digest, and a claim that turns out wrong is forgotten.
//!
//! Both live in memory for the run and in `STORE/reapi/digests.sqlite`
//! (one table; a claim is stored with `known = 0`), shared by the
//! processes of a store (WAL, busy timeout).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cas_store::Digest;

/// A REAPI digest: SHA-256 of the bytes, and their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha {
    pub hash: [u8; 32],
    pub size: u64,
}

impl Sha {
    /// The SHA-256 digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Sha {
        use sha2::Digest as _;
        Sha {
            hash: sha2::Sha256::digest(bytes).into(),
            size: bytes.len() as u64,
        }
    }

    pub fn hex(&self) -> String {
        hex::encode(self.hash)
    }

    /// As the REAPI message.
    pub fn proto(&self) -> bazel_remote_apis::build::bazel::remote::execution::v2::Digest {
        bazel_remote_apis::build::bazel::remote::execution::v2::Digest {
            hash: self.hex(),
            size_bytes: i64::try_from(self.size).unwrap_or(i64::MAX),
        }
    }

    /// From the REAPI message (`None` when it is not a SHA-256 digest).
    pub fn from_proto(
        d: &bazel_remote_apis::build::bazel::remote::execution::v2::Digest,
    ) -> Option<Sha> {
        let bytes = hex::decode(&d.hash).ok()?;
        let hash: [u8; 32] = bytes.try_into().ok()?;
        Some(Sha {
            hash,
            size: u64::try_from(d.size_bytes).ok()?,
        })
    }
}

/// The map, in memory and on disk.
pub struct DigestMap {
    memory: Mutex<HashMap<Digest, (Sha, bool)>>,
    /// Known entries the other way round (filled as they are learnt).
    reverse: Mutex<HashMap<Sha, Digest>>,
    db: OnceLock<Option<Mutex<rusqlite::Connection>>>,
    dir: PathBuf,
    path: PathBuf,
}

impl DigestMap {
    /// The map of the store whose REAPI state directory is `dir`. The
    /// database is opened at first use (the store may not exist yet);
    /// without a usable one (read-only store, ...) the map lives in memory.
    pub fn open(dir: &Path) -> DigestMap {
        DigestMap {
            memory: Mutex::new(HashMap::new()),
            reverse: Mutex::new(HashMap::new()),
            db: OnceLock::new(),
            dir: dir.to_path_buf(),
            path: dir.join("digests.sqlite"),
        }
    }

    fn db(&self) -> Option<&Mutex<rusqlite::Connection>> {
        self.db
            .get_or_init(|| {
                std::fs::create_dir_all(&self.dir).ok()?;
                let c = rusqlite::Connection::open(&self.path).ok()?;
                c.busy_timeout(std::time::Duration::from_secs(30)).ok()?;
                c.execute_batch(
                    "PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     CREATE TABLE IF NOT EXISTS sha256 (
                         blake3 BLOB PRIMARY KEY,
                         sha256 BLOB NOT NULL,
                         size INTEGER NOT NULL,
                         known INTEGER NOT NULL
                     ) WITHOUT ROWID;
                     CREATE INDEX IF NOT EXISTS sha256_known ON sha256 (sha256) WHERE known = 1;",
                )
                .ok()?;
                Some(Mutex::new(c))
            })
            .as_ref()
    }

    /// Where the map is kept (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 digest of the object `d`, known or claimed.
    pub fn get(&self, d: &Digest) -> Option<Sha> {
        if let Some((s, _)) = lock(&self.memory).get(d) {
            return Some(*s);
        }
        let db = self.db()?;
        let row: Option<(Vec<u8>, i64, bool)> = lock(db)
            .query_row(
                "SELECT sha256, size, known FROM sha256 WHERE blake3 = ?1",
                [d.as_bytes().as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        let (hash, size, known) = row?;
        let sha = Sha {
            hash: hash.try_into().ok()?,
            size: u64::try_from(size).ok()?,
        };
        lock(&self.memory).insert(*d, (sha, known));
        Some(sha)
    }

    /// The SHA-256 digest of `d` when it was computed here (not a claim).
    pub fn get_known(&self, d: &Digest) -> Option<Sha> {
        self.get(d)?;
        match lock(&self.memory).get(d) {
            Some((s, true)) => Some(*s),
            _ => None,
        }
    }

    /// The object whose bytes were hashed here to `sha` (known entries
    /// only: a claim never names an object to use).
    pub fn known_object(&self, sha: &Sha) -> Option<Digest> {
        if let Some(d) = lock(&self.reverse).get(sha) {
            return Some(*d);
        }
        let db = self.db()?;
        let size = i64::try_from(sha.size).ok()?;
        let blake: Vec<u8> = lock(db)
            .query_row(
                "SELECT blake3 FROM sha256 WHERE sha256 = ?1 AND size = ?2 AND known = 1 LIMIT 1",
                rusqlite::params![sha.hash.as_slice(), size],
                |r| r.get(0),
            )
            .ok()?;
        let d = Digest(blake.try_into().ok()?);
        lock(&self.reverse).insert(*sha, d);
        Some(d)
    }

    /// Record what was computed from the bytes of `d`.
    pub fn know(&self, d: &Digest, sha: Sha) {
        lock(&self.reverse).insert(sha, *d);
        let had = lock(&self.memory).insert(*d, (sha, true));
        if had != Some((sha, true)) {
            self.write(&[(*d, sha)], true);
        }
    }

    /// Record what a remote claims (never over a known entry).
    pub fn claim(&self, entries: &[(Digest, Sha)]) {
        let mut fresh = Vec::new();
        {
            let mut m = lock(&self.memory);
            for (d, s) in entries {
                match m.get(d) {
                    Some((_, true)) => {}
                    Some((old, false)) if old == s => {}
                    _ => {
                        m.insert(*d, (*s, false));
                        fresh.push((*d, *s));
                    }
                }
            }
        }
        self.write(&fresh, false);
    }

    /// Forget a claim that turned out wrong.
    pub fn forget(&self, d: &Digest) {
        {
            let mut m = lock(&self.memory);
            if matches!(m.get(d), Some((_, false))) {
                m.remove(d);
            }
        }
        if let Some(db) = self.db() {
            let _ = lock(db).execute(
                "DELETE FROM sha256 WHERE blake3 = ?1 AND known = 0",
                [d.as_bytes().as_slice()],
            );
        }
    }

    fn write(&self, entries: &[(Digest, Sha)], known: bool) {
        let Some(db) = self.db() else { return };
        if entries.is_empty() {
            return;
        }
        let mut c = lock(db);
        let Ok(tx) = c.transaction() else { return };
        {
            let sql = if known {
                "INSERT OR REPLACE INTO sha256 (blake3, sha256, size, known) VALUES (?1, ?2, ?3, 1)"
            } else {
                "INSERT INTO sha256 (blake3, sha256, size, known) VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (blake3) DO UPDATE SET sha256 = ?2, size = ?3 WHERE known = 0"
            };
            let Ok(mut st) = tx.prepare_cached(sql) else {
                return;
            };
            for (d, s) in entries {
                let size = i64::try_from(s.size).unwrap_or(i64::MAX);
                let _ = st.execute(rusqlite::params![
                    d.as_bytes().as_slice(),
                    s.hash.as_slice(),
                    size
                ]);
            }
        }
        let _ = tx.commit();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_entries_outlive_the_process_and_beat_claims() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of_bytes(b"hello");
        let right = Sha::of_bytes(b"hello");
        let wrong = Sha::of_bytes(b"other");
        {
            let m = DigestMap::open(dir.path());
            m.claim(&[(d, wrong)]);
            assert_eq!(m.get(&d), Some(wrong));
            m.know(&d, right);
            m.claim(&[(d, wrong)]);
            assert_eq!(m.get(&d), Some(right));
        }
        let m = DigestMap::open(dir.path());
        assert_eq!(m.get(&d), Some(right), "known entries are on disk");
        assert_eq!(
            m.known_object(&right),
            Some(d),
            "and found the other way round"
        );
        assert_eq!(m.known_object(&wrong), None, "claims never are");
        m.forget(&d);
        assert_eq!(m.get(&d), Some(right), "forget drops claims only");
        let e = Digest::of_bytes(b"e");
        m.claim(&[(e, wrong)]);
        m.forget(&e);
        assert_eq!(DigestMap::open(dir.path()).get(&e), None);
    }

    #[test]
    fn sha256_of_the_empty_blob_is_the_standard_one() {
        assert_eq!(
            Sha::of_bytes(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

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
//! A memo may also stand for action results (`cas build`'s no-op: the keys
//! of the closure and their outputs). It is recorded only while every one
//! of them is in the store, with the store's count of result removals then;
//! while that count is unchanged, every one of them still is (each removal
//! or replacement of a result row counts, by trigger, whoever makes it), so
//! a hit need not look them up. A hit records its time on the memo's row,
//! and gc counts it as a use of each of the memo's results, then forgets
//! every memo (each binary and working directory adds its own).
//!
//! Tables `memos` and `result_removals` and the triggers on `results` in
//! `ac.sqlite`, created when the store is opened (spec/store.md).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, OptionalExtension};

use crate::digest::{ActionKey, Digest, TreeDigest};
use crate::error::Result;
use crate::statcache::{StatKey, SETTLE};
use crate::store::Store;

pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS memos (
    key      TEXT PRIMARY KEY,
    files    BLOB NOT NULL,
    payload  BLOB NOT NULL,
    results  BLOB NOT NULL,
    removals INTEGER NOT NULL,
    used     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS result_removals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    n  INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS result_removed AFTER DELETE ON results BEGIN
    INSERT INTO result_removals (id, n) VALUES (0, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS result_replaced BEFORE INSERT ON results
WHEN EXISTS (SELECT 1 FROM results WHERE key = NEW.key AND output IS NOT NEW.output) BEGIN
    INSERT INTO result_removals (id, n) VALUES (0, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS result_changed AFTER UPDATE OF key, output ON results
WHEN OLD.key IS NOT NEW.key OR OLD.output IS NOT NEW.output BEGIN
    INSERT INTO result_removals (id, n) VALUES (0, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;
END";

/// The store's count of removed or replaced result rows.
const REMOVALS: &str = "SELECT coalesce((SELECT n FROM result_removals WHERE id = 0), 0)";

/// A memo that holds (see [`Store::memo_get`]).
#[derive(Debug, PartialEq, Eq)]
pub struct MemoHit {
    pub payload: Vec<u8>,
    /// Every result the memo was recorded with is still in the store, with
    /// the same output (no result row was removed or replaced since).
    pub results_intact: bool,
}

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
    /// The memo recorded under `key`, if every file it was computed from is
    /// as it was then. When its results are intact, the hit is recorded as a
    /// use of each of them (for gc's least-recently-used order).
    pub fn memo_get(&self, key: &Digest) -> Result<Option<MemoHit>> {
        let hex = key.to_hex();
        let row: Option<(Vec<u8>, Vec<u8>, i64, i64)> = self.db.with("read memo", |c| {
            c.query_row(
                &format!("SELECT files, payload, removals, ({REMOVALS}) FROM memos WHERE key = ?1"),
                params![hex],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
        })?;
        let Some((files, payload, then, now)) = row else {
            return Ok(None);
        };
        if !still_valid(&files) {
            return Ok(None);
        }
        let results_intact = then == now;
        if results_intact {
            // best effort, as access times are: a store that cannot be
            // written (read-only) still answers
            let _ = self.db.with("record memo use", |c| {
                c.execute(
                    "UPDATE memos SET used = ?2 WHERE key = ?1",
                    params![hex, crate::action_cache::now_ms()],
                )
            });
        }
        Ok(Some(MemoHit {
            payload,
            results_intact,
        }))
    }

    /// Record `payload` under `key`, computed from `files` (paths read; a
    /// path that did not exist counts too) by a computation that started at
    /// `started`, standing for `results` (action keys and their outputs; may
    /// be empty). Nothing is recorded, and `false` returned, when a file
    /// changed too recently to be trusted (see the module), or when one of
    /// `results` is not recorded with that output or its output tree is not
    /// in the store. A memo replaced under the same key has its last hit
    /// counted first (as gc counts hits: `Db::fold_memo_uses`).
    pub fn memo_put(
        &self,
        key: &Digest,
        files: &[PathBuf],
        started: SystemTime,
        payload: &[u8],
        results: &[(ActionKey, TreeDigest)],
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
        // a result may be a row whose tree is gone (a lazily pulled
        // element's, when its local tree was removed by hand): never stood for
        if !results.iter().all(|(_, out)| self.has_tree(out)) {
            return Ok(false);
        }
        let files = encode(&ids);
        let mut keys = Vec::with_capacity(results.len() * 32);
        for (k, _) in results {
            keys.extend_from_slice(k.digest().as_bytes());
        }
        // One write transaction: the rows checked are those the count
        // recorded stands for (a removal cannot come in between).
        self.db.with("record memo", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if !rows_hold(&tx, results)? {
                return Ok(false);
            }
            fold_uses(&tx, Some(&key.to_hex()))?;
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO memos (key, files, payload, results, removals, used)
                     VALUES (?1, ?2, ?3, ?4, ({REMOVALS}), 0)"
                ),
                params![key.to_hex(), files, payload, keys],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
}

impl Store {
    /// After a hit whose results were not intact and were each found again
    /// (row and output tree, by the caller): the memo stands for them at
    /// the store's count of removals now, and this hit counts as a use.
    /// `false` (nothing changed) when one of them is not recorded with that
    /// output.
    pub fn memo_revalidate(
        &self,
        key: &Digest,
        results: &[(ActionKey, TreeDigest)],
    ) -> Result<bool> {
        let hex = key.to_hex();
        self.db.with("revalidate memo", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if !rows_hold(&tx, results)? {
                return Ok(false);
            }
            let n = tx.execute(
                &format!("UPDATE memos SET removals = ({REMOVALS}), used = ?2 WHERE key = ?1"),
                params![hex, crate::action_cache::now_ms()],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
    }
}

/// Whether every `(key, output)` is a row of `results` with that output.
fn rows_hold(
    tx: &rusqlite::Transaction<'_>,
    results: &[(ActionKey, TreeDigest)],
) -> rusqlite::Result<bool> {
    let mut get = tx.prepare_cached("SELECT output FROM results WHERE key = ?1")?;
    for (k, out) in results {
        let found: Option<String> = get
            .query_row(params![k.to_hex()], |r| r.get(0))
            .optional()?;
        if found.as_deref() != Some(out.to_hex().as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Inside a write transaction: count the unfolded hit of the memo `only`
/// (or of every memo) as a use of each of its results, then mark it folded.
fn fold_uses(tx: &rusqlite::Transaction<'_>, only: Option<&str>) -> rusqlite::Result<()> {
    let mut memos = tx.prepare_cached(
        "SELECT results, used FROM memos WHERE used > 0 AND (?1 IS NULL OR key = ?1)",
    )?;
    let mut up =
        tx.prepare_cached("UPDATE results SET accessed = max(accessed, ?2) WHERE key = ?1")?;
    let mut rows = memos.query(params![only])?;
    while let Some(r) = rows.next()? {
        let keys: Vec<u8> = r.get(0)?;
        let used: i64 = r.get(1)?;
        for k in keys.chunks_exact(32) {
            let k: [u8; 32] = k.try_into().expect("chunks of 32");
            up.execute(params![Digest(k).to_hex(), used])?;
        }
    }
    tx.execute(
        "UPDATE memos SET used = 0 WHERE used > 0 AND (?1 IS NULL OR key = ?1)",
        params![only],
    )?;
    Ok(())
}

impl crate::action_cache::Db {
    /// Count each memo's last hit as a use of each of its results: gc's
    /// order then sees what no-op builds used without a write per result.
    pub(crate) fn fold_memo_uses(&self) -> Result<()> {
        // nothing to count (a store only read, or no hit since): no write
        let pending: bool = self.with("count memo uses", |c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM memos WHERE used > 0)",
                [],
                |r| r.get(0),
            )
        })?;
        if !pending {
            return Ok(());
        }
        self.with("count memo uses", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            fold_uses(&tx, None)?;
            tx.commit()
        })
    }

    /// Forget every memo (gc: they are an optimisation, and each binary
    /// and working directory adds its own; the next no-op records again),
    /// after counting their hits. The `memo` table of earlier versions goes
    /// too.
    pub(crate) fn forget_memos(&self) -> Result<()> {
        self.with("forget memos", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            fold_uses(&tx, None)?;
            tx.execute_batch("DELETE FROM memos; DROP TABLE IF EXISTS memo;")?;
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_cache::ActionResult;

    fn hit(payload: &[u8], results_intact: bool) -> MemoHit {
        MemoHit {
            payload: payload.to_vec(),
            results_intact,
        }
    }

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
            .memo_put(&key, std::slice::from_ref(&f), SystemTime::now(), b"p", &[])
            .unwrap());
        assert!(store.memo_get(&key).unwrap().is_none());
        assert!(store
            .memo_put(&key, &[f.clone(), absent.clone()], later, b"p", &[])
            .unwrap());
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", true)));
        // A file that appears where none was, or a changed file: invalid.
        std::fs::create_dir_all(absent.parent().unwrap()).unwrap();
        std::fs::write(&absent, "x").unwrap();
        assert!(store.memo_get(&key).unwrap().is_none());
        std::fs::remove_file(&absent).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", true)));
        std::fs::write(&f, "kind: manual \n").unwrap();
        assert!(store.memo_get(&key).unwrap().is_none());
        assert!(!still_valid(&[1, 0, 0]));
    }

    fn result(store: &Store, content: &[u8]) -> ActionResult {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), content).unwrap();
        let output = store
            .ingest(dir.path(), crate::blob::IngestMode::Copy)
            .unwrap()
            .tree;
        let log = store.put_bytes(b"log").unwrap();
        ActionResult {
            output,
            log,
            duration_ms: 1,
            created: 0,
            manifest: log,
        }
    }

    /// A store with `n` results made but not recorded (keys `k1`…, each
    /// output one file `r1`…), and a start 10 s ahead: every file is old
    /// enough for a memo.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        later: SystemTime,
        keys: Vec<ActionKey>,
        results: Vec<ActionResult>,
    }

    fn fixture(n: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let keys = (1..=n)
            .map(|i| ActionKey::from_digest(Digest::of_bytes(format!("k{i}").as_bytes())))
            .collect();
        let results = (1..=n)
            .map(|i| result(&store, format!("r{i}").as_bytes()))
            .collect();
        Fixture {
            _dir: dir,
            store,
            later: SystemTime::now() + std::time::Duration::from_secs(10),
            keys,
            results,
        }
    }

    /// The results in gc's order, least recently used first.
    fn lru_order(store: &Store) -> Vec<ActionKey> {
        store
            .db
            .results()
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    #[test]
    fn a_memo_stands_for_its_results_until_one_is_removed_or_replaced() {
        let f = fixture(2);
        let (store, later) = (&f.store, f.later);
        let (k1, k2) = (f.keys[0], f.keys[1]);
        let (r1, r2) = (&f.results[0], &f.results[1]);
        store.action_put(&k1, r1).unwrap();
        let key = Digest::of_bytes(b"build");
        // k2 has no result: not recorded
        assert!(!store
            .memo_put(&key, &[], later, b"p", &[(k1, r1.output), (k2, r2.output)])
            .unwrap());
        // k1 recorded with another output: not recorded
        assert!(!store
            .memo_put(&key, &[], later, b"p", &[(k1, r2.output)])
            .unwrap());
        store.action_put(&k2, r2).unwrap();
        let both = [(k1, r1.output), (k2, r2.output)];
        assert!(store.memo_put(&key, &[], later, b"p", &both).unwrap());
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", true)));
        // the same result recorded again changes nothing
        store.action_put(&k1, r1).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", true)));
        // a result replaced by another output: no longer intact
        store.action_put(&k2, r1).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", false)));
        store.action_put(&k2, r2).unwrap();
        assert!(store.memo_put(&key, &[], later, b"p", &both).unwrap());
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", true)));
        // a result removed (gc, verify --repair): no longer intact
        store.db.delete_rows(&[k1], &[]).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", false)));
    }

    #[test]
    fn a_memo_hit_counts_as_a_use_of_its_results_for_gc() {
        let f = fixture(2);
        let (store, later) = (&f.store, f.later);
        let (k1, k2) = (f.keys[0], f.keys[1]);
        let (r1, r2) = (&f.results[0], &f.results[1]);
        store.action_put(&k1, r1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.action_put(&k2, r2).unwrap();
        let key = Digest::of_bytes(b"build");
        assert!(store
            .memo_put(&key, &[], later, b"p", &[(k1, r1.output)])
            .unwrap());
        assert_eq!(lru_order(store), [k1, k2]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(store.memo_get(&key).unwrap().unwrap().results_intact);
        // k1 was used after k2 was recorded: k2 is now the least recently used
        assert_eq!(lru_order(store), [k2, k1]);
    }

    #[test]
    fn a_memo_is_never_recorded_for_an_output_tree_that_is_gone() {
        let f = fixture(1);
        let (store, later, k, r) = (&f.store, f.later, f.keys[0], &f.results[0]);
        store.action_put(&k, r).unwrap();
        std::fs::remove_file(store.object_path(r.output.digest())).unwrap();
        let key = Digest::of_bytes(b"build");
        assert!(!store
            .memo_put(&key, &[], later, b"p", &[(k, r.output)])
            .unwrap());
        assert_eq!(store.memo_get(&key).unwrap(), None);
    }

    #[test]
    fn a_memo_stands_again_when_its_results_are_found_as_recorded() {
        let f = fixture(2);
        let (store, later) = (&f.store, f.later);
        let (k1, k2) = (f.keys[0], f.keys[1]);
        let (r1, r2) = (&f.results[0], &f.results[1]);
        store.action_put(&k1, r1).unwrap();
        store.action_put(&k2, r2).unwrap();
        let key = Digest::of_bytes(b"build");
        let recorded = [(k1, r1.output)];
        assert!(store.memo_put(&key, &[], later, b"p", &recorded).unwrap());
        // another result removed: this memo's own are all still there
        store.db.delete_rows(&[k2], &[]).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", false)));
        assert!(store.memo_revalidate(&key, &recorded).unwrap());
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", true)));
        // its own replaced by another output: never stands for the old one
        store.action_put(&k1, r2).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", false)));
        assert!(!store.memo_revalidate(&key, &recorded).unwrap());
        assert_eq!(store.memo_get(&key).unwrap(), Some(hit(b"p", false)));
    }

    #[test]
    fn a_memo_recorded_again_or_forgotten_by_gc_keeps_its_hits_for_gc() {
        let f = fixture(3);
        let (store, later) = (&f.store, f.later);
        let (k1, k2, k3) = (f.keys[0], f.keys[1], f.keys[2]);
        let (r1, r2, r3) = (&f.results[0], &f.results[1], &f.results[2]);
        store.action_put(&k1, r1).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.action_put(&k2, r2).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        store.action_put(&k3, r3).unwrap();
        let key = Digest::of_bytes(b"build");
        assert!(store
            .memo_put(&key, &[], later, b"a", &[(k1, r1.output)])
            .unwrap());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(store.memo_get(&key).unwrap().unwrap().results_intact);
        // the same key recorded for other results (another branch): k1's
        // hit still counts
        assert!(store
            .memo_put(&key, &[], later, b"b", &[(k2, r2.output)])
            .unwrap());
        assert_eq!(lru_order(store), [k2, k3, k1]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(store.memo_get(&key).unwrap().unwrap().results_intact);
        // gc forgets every memo, after counting k2's hit
        store.gc(&crate::GcOptions::default()).unwrap();
        assert_eq!(store.memo_get(&key).unwrap(), None);
        assert_eq!(lru_order(store), [k3, k1, k2]);
    }
}

//! Memos: the result of a pure computation over files (`cas build`'s load
//! of a project and its keys), kept with the identity (device, inode, size,
//! mtime, ctime; or absence) of every file and directory it read, and
//! valid while each of them is unchanged. A lookup only stats, unless a
//! file read whole has another identity and the same size: then its bytes
//! are read and compared with those recorded (a touched file, or one
//! written again with the same bytes, still holds, and the memo takes its
//! new identity once it is settled).
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
    /// How many files read whole had another identity but the same bytes
    /// (touched, written again): read again to know.
    pub touched: usize,
}

/// A path a memo depends on (see [`Store::memo_put`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub path: PathBuf,
    /// Its identity is that of what it leads to, symlinks followed (a file
    /// read through its path); otherwise that of the path itself (`lstat`:
    /// a directory, a file listed, a path that is absent).
    pub follow: bool,
    /// For a file the computation read whole: blake3 of the bytes it read.
    /// Such a file whose identity changed but whose bytes did not (touched,
    /// written again, checked out again) still holds.
    pub content: Option<Digest>,
    /// The identity of the file the computation read (from the open file):
    /// nothing is recorded unless the path leads to that very file still,
    /// so the bytes recorded are those the identity stands for (a file
    /// changed, removed or replaced, or a symlink led elsewhere, since).
    pub seen: Option<Seen>,
    /// The computation read the file through this path (a patch it hashed),
    /// so it was there: nothing is recorded if the path leads nowhere now
    /// (removed since; recorded as absent, the memo would stand for a
    /// computation that now fails).
    pub existed: bool,
}

/// A file's identity as the computation saw it (see [`Watched::seen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Seen {
    /// No file has it: a file that changed while it was read.
    pub const CHANGED: Seen = Seen {
        dev: u64::MAX,
        ino: u64::MAX,
        size: u64::MAX,
        mtime_ns: i64::MIN,
        ctime_ns: i64::MIN,
    };

    fn key(self) -> StatKey {
        StatKey {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
        }
    }
}

impl Watched {
    /// A path by its own identity (`lstat`).
    pub fn entry(path: impl Into<PathBuf>) -> Watched {
        Watched {
            path: path.into(),
            follow: false,
            content: None,
            seen: None,
            existed: false,
        }
    }
}

/// Flags of an entry of `memos.files` (spec/store.md, Memo).
const EXISTS: u8 = 1;
const FOLLOW: u8 = 2;
const CONTENT: u8 = 4;

/// The identity of `path` now, `None` if it does not exist.
fn identity(path: &Path, follow: bool) -> Option<StatKey> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    meta.ok().map(|m| StatKey::of(&m))
}

/// One decoded entry of `memos.files`.
struct Entry<'a> {
    path: &'a Path,
    follow: bool,
    identity: Option<StatKey>,
    content: Option<Digest>,
}

fn encode_entry(out: &mut Vec<u8>, e: &Entry<'_>) {
    let b = e.path.as_os_str().as_bytes();
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
    let flags = if e.identity.is_some() { EXISTS } else { 0 }
        | if e.follow { FOLLOW } else { 0 }
        | if e.content.is_some() { CONTENT } else { 0 };
    out.push(flags);
    if let Some(k) = e.identity {
        for v in [k.dev, k.ino, k.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [k.mtime_ns, k.ctime_ns] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    if let Some(d) = e.content {
        out.extend_from_slice(d.as_bytes());
    }
}

/// The entries of a `memos.files` value; `None` at the first malformed one.
struct Entries<'a>(&'a [u8]);

impl<'a> Entries<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn entry(&mut self) -> Option<Entry<'a>> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        let path = Path::new(std::ffi::OsStr::from_bytes(self.take(len as usize)?));
        let flags = self.take(1)?[0];
        if flags & !(EXISTS | FOLLOW | CONTENT) != 0 {
            return None;
        }
        let identity = if flags & EXISTS != 0 {
            Some(StatKey {
                dev: self.u64()?,
                ino: self.u64()?,
                size: self.u64()?,
                mtime_ns: self.u64()? as i64,
                ctime_ns: self.u64()? as i64,
            })
        } else {
            None
        };
        let content = if flags & CONTENT != 0 {
            Some(Digest(self.take(32)?.try_into().ok()?))
        } else {
            None
        };
        Some(Entry {
            path,
            follow: flags & FOLLOW != 0,
            identity,
            content,
        })
    }
}

/// Whether a memo's files still hold.
#[derive(Debug, PartialEq, Eq)]
enum Holds {
    /// Every identity is as recorded.
    Exactly,
    /// Some files' identities changed but their bytes did not: how many,
    /// and the value of `memos.files` with their identities of now (of
    /// those settled enough to be trusted next time).
    ByContent(usize, Vec<u8>),
    No,
}

/// Whether the bytes of the file at `path` (symlinks followed), whose
/// identity is `now`, are those whose digest is `content`.
fn same_bytes(path: &Path, now: &StatKey, content: &Digest) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    // only a regular file is opened (a device or a FIFO put in its place
    // is not the same, and opening one may block or act); non-blocking and
    // never a controlling terminal in case one is swapped in meanwhile
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let Ok(mut f) = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return false;
    };
    // the file opened is the one whose identity was seen (else the path
    // changed in between, and `now` would be renewed for other bytes)
    let opened = |f: &std::fs::File| {
        f.metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| StatKey::of(&m))
    };
    if opened(&f) != Some(*now) {
        return false;
    }
    let mut hasher = blake3::Hasher::new();
    // at most the size seen (a file growing meanwhile is not the same)
    let mut limited = std::io::Read::take(&mut f, now.size + 1);
    let same = match std::io::copy(&mut limited, &mut hasher) {
        Ok(n) if n == now.size => Digest(*hasher.finalize().as_bytes()) == *content,
        _ => false,
    };
    // and it did not change while it was read
    same && opened(&f) == Some(*now)
}

/// Checks a `memos.files` value against the file system (a malformed one
/// does not hold). A file whose identity changed is read only when its
/// bytes were recorded and its size is the same; its identity of now is
/// kept if its mtime and ctime are before `settled` (in ns since the epoch).
fn holds(files: &[u8], settled: i64) -> Holds {
    let mut entries = Entries(files);
    // entries before the first one validated by content, copied as they are
    let mut renewed: Option<Vec<u8>> = None;
    let mut touched = 0;
    while !entries.0.is_empty() {
        let rest = entries.0;
        let Some(e) = entries.entry() else {
            return Holds::No;
        };
        let now = identity(e.path, e.follow);
        if now == e.identity {
            if let Some(out) = &mut renewed {
                encode_entry(out, &e);
            }
            continue;
        }
        let by_content = match (&now, &e.identity, &e.content) {
            (Some(now), Some(was), Some(content)) => {
                now.size == was.size && same_bytes(e.path, now, content)
            }
            _ => false,
        };
        if !by_content {
            return Holds::No;
        }
        touched += 1;
        let out = renewed.get_or_insert_with(|| files[..files.len() - rest.len()].to_vec());
        let now = now.expect("checked above");
        let trusted = now.mtime_ns < settled && now.ctime_ns < settled;
        encode_entry(
            out,
            &Entry {
                identity: if trusted { Some(now) } else { e.identity },
                ..e
            },
        );
    }
    match renewed {
        Some(out) => Holds::ByContent(touched, out),
        None => Holds::Exactly,
    }
}

impl Store {
    /// The memo recorded under `key`, if every file it was computed from is
    /// as it was then. When its results are intact, the hit is recorded as a
    /// use of each of them (for gc's least-recently-used order).
    pub fn memo_get(&self, key: &Digest) -> Result<Option<MemoHit>> {
        let settled = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
            - SETTLE.as_nanos() as i64;
        self.memo_get_settled(key, settled)
    }

    /// [`Store::memo_get`], trusting a new identity whose mtime and ctime
    /// are before `settled` (ns since the epoch).
    fn memo_get_settled(&self, key: &Digest, settled: i64) -> Result<Option<MemoHit>> {
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
        let touched = match holds(&files, settled) {
            Holds::Exactly => 0,
            Holds::No => return Ok(None),
            Holds::ByContent(n, renewed) => {
                // best effort: the next hit reads those files again
                if renewed != files {
                    let _ = self.db.with("renew memo", |c| {
                        c.execute(
                            "UPDATE memos SET files = ?2 WHERE key = ?1 AND files = ?3",
                            params![hex, renewed, files],
                        )
                    });
                }
                n
            }
        };
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
            touched,
        }))
    }

    /// Record `payload` under `key`, computed from `files` (paths read; a
    /// path that did not exist counts too; the `content` of a file is of
    /// bytes read after `started`) by a computation that started at
    /// `started`, standing for `results` (action keys and their outputs; may
    /// be empty). Nothing is recorded, and `false` returned, when a file
    /// changed too recently to be trusted (see the module), or when one of
    /// `results` is not recorded with that output or its output tree is not
    /// in the store. A memo replaced under the same key has its last hit
    /// counted first (as gc counts hits: `Db::fold_memo_uses`).
    pub fn memo_put(
        &self,
        key: &Digest,
        files: &[Watched],
        started: SystemTime,
        payload: &[u8],
        results: &[(ActionKey, TreeDigest)],
    ) -> Result<bool> {
        let limit = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
            - SETTLE.as_nanos() as i64;
        let mut encoded = Vec::with_capacity(files.len() * 80);
        for w in files {
            let id = identity(&w.path, w.follow);
            if id.is_some_and(|k| k.mtime_ns >= limit || k.ctime_ns >= limit) {
                return Ok(false);
            }
            if w.seen.is_some_and(|s| id != Some(s.key())) || (w.existed && id.is_none()) {
                return Ok(false);
            }
            encode_entry(
                &mut encoded,
                &Entry {
                    path: &w.path,
                    follow: w.follow,
                    identity: id,
                    // the bytes of a file that is gone stand for nothing
                    content: w.content.filter(|_| id.is_some()),
                },
            );
        }
        // a result may be a row whose tree is gone (a lazily pulled
        // element's, when its local tree was removed by hand): never stood for
        if !results.iter().all(|(_, out)| self.has_tree(out)) {
            return Ok(false);
        }
        let files = encoded;
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
            touched: 0,
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
            .memo_put(&key, &[Watched::entry(&f)], SystemTime::now(), b"p", &[])
            .unwrap());
        assert!(store.memo_get(&key).unwrap().is_none());
        assert!(store
            .memo_put(
                &key,
                &[Watched::entry(&f), Watched::entry(&absent)],
                later,
                b"p",
                &[]
            )
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
        assert_eq!(holds(&[1, 0, 0], 0), Holds::No);
    }

    /// `a` ("one"), `b` ("two") and `link` → `a`, under `dir`.
    fn files_and_a_link(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (a, b, link) = (dir.join("a"), dir.join("b"), dir.join("link"));
        write_at(&a, b"one\n", 1);
        write_at(&b, b"two\n", 1);
        std::os::unix::fs::symlink(&a, &link).unwrap();
        (a, b, link)
    }

    fn watched_text(path: &Path, text: &[u8]) -> Watched {
        Watched {
            path: path.to_path_buf(),
            follow: true,
            content: Some(Digest::of_bytes(text)),
            seen: None,
            existed: false,
        }
    }

    /// Writes `bytes` at `path` with mtime `secs` after the epoch: each
    /// write in a test gets another identity, however coarse the clock.
    fn write_at(path: &Path, bytes: &[u8], secs: u64) {
        std::fs::write(path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    fn files_of(store: &Store, key: &Digest) -> Vec<u8> {
        store
            .db
            .with("test", |c| {
                c.query_row(
                    "SELECT files FROM memos WHERE key = ?1",
                    params![key.to_hex()],
                    |r| r.get(0),
                )
            })
            .unwrap()
    }

    #[test]
    fn a_file_read_whole_holds_while_its_bytes_do_whatever_its_identity() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let f = t.path().join("element.yaml");
        let text = b"kind: manual\n";
        write_at(&f, text, 1);
        let key = Digest::of_bytes(b"load");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        assert!(store
            .memo_put(&key, &[watched_text(&f, text)], later, b"p", &[])
            .unwrap());
        assert_eq!(store.memo_get(&key).unwrap().unwrap().touched, 0);
        // written again, same bytes (a new inode too): holds, read again
        let tmp = t.path().join("tmp");
        write_at(&tmp, text, 2);
        std::fs::rename(&tmp, &f).unwrap();
        let recorded = files_of(&store, &key);
        assert_eq!(store.memo_get(&key).unwrap().unwrap().touched, 1);
        // changed just now: its new identity is not trusted yet
        assert_eq!(files_of(&store, &key), recorded);
        // once settled, the memo takes the new identity: only stats again
        let future = SystemTime::now() + std::time::Duration::from_secs(10);
        let ns = future.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        let Holds::ByContent(1, renewed) = holds(&recorded, ns) else {
            panic!("not held by content");
        };
        assert_eq!(holds(&renewed, ns), Holds::Exactly);
        assert_eq!(
            store.memo_get_settled(&key, ns).unwrap().unwrap().touched,
            1
        );
        assert_eq!(files_of(&store, &key), renewed);
        assert_eq!(store.memo_get(&key).unwrap().unwrap().touched, 0);
        // other bytes of the same size, or another size: no longer holds
        write_at(&f, b"kind: manuaL\n", 3);
        assert!(store.memo_get(&key).unwrap().is_none());
        write_at(&f, b"kind: manual \n", 4);
        assert!(store.memo_get(&key).unwrap().is_none());
        write_at(&f, text, 5);
        assert_eq!(store.memo_get(&key).unwrap().unwrap().touched, 1);
        // a listed entry (no bytes recorded) whose identity changed does not
        let listed = t.path().join("listed");
        write_at(&listed, b"x", 1);
        let key2 = Digest::of_bytes(b"listed");
        assert!(store
            .memo_put(&key2, &[Watched::entry(&listed)], later, b"p", &[])
            .unwrap());
        write_at(&listed, b"x", 2);
        assert!(store.memo_get(&key2).unwrap().is_none());
    }

    #[test]
    fn nothing_is_recorded_unless_each_file_read_is_still_the_one_read() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let (a, b, link) = files_and_a_link(t.path());
        let seen = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            let k = StatKey::of(&m);
            Seen {
                dev: k.dev,
                ino: k.ino,
                size: k.size,
                mtime_ns: k.mtime_ns,
                ctime_ns: k.ctime_ns,
            }
        };
        let read_a = Watched {
            seen: Some(seen(&a)),
            ..watched_text(&link, b"one\n")
        };
        let key = Digest::of_bytes(b"load");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        // the link led elsewhere after the read (to an old file): refused
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert!(!store
            .memo_put(&key, std::slice::from_ref(&read_a), later, b"p", &[])
            .unwrap());
        // gone since it was read: refused, never recorded as absent
        std::fs::remove_file(&link).unwrap();
        assert!(!store
            .memo_put(&key, std::slice::from_ref(&read_a), later, b"p", &[])
            .unwrap());
        // a file that changed while it was read: refused
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let changed = Watched {
            seen: Some(Seen::CHANGED),
            ..read_a.clone()
        };
        assert!(!store.memo_put(&key, &[changed], later, b"p", &[]).unwrap());
        // still the very file read: recorded
        assert!(store.memo_put(&key, &[read_a], later, b"p", &[]).unwrap());
        assert!(store.memo_get(&key).unwrap().is_some());
    }

    #[test]
    fn a_file_read_through_its_path_and_gone_since_is_never_recorded_as_absent() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let patch = t.path().join("fix.patch");
        write_at(&patch, b"--- a\n+++ b\n", 1);
        let read = Watched {
            path: patch.clone(),
            follow: true,
            content: None,
            seen: None,
            existed: true,
        };
        let key = Digest::of_bytes(b"load");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        // removed after the computation read it: refused
        std::fs::remove_file(&patch).unwrap();
        assert!(!store
            .memo_put(&key, std::slice::from_ref(&read), later, b"p", &[])
            .unwrap());
        assert!(store.memo_get(&key).unwrap().is_none());
        // a path merely looked at may be absent
        let looked = Watched {
            existed: false,
            ..read.clone()
        };
        assert!(store.memo_put(&key, &[looked], later, b"p", &[]).unwrap());
        // there: recorded
        write_at(&patch, b"--- a\n+++ b\n", 1);
        assert!(store.memo_put(&key, &[read], later, b"p", &[]).unwrap());
        assert!(store.memo_get(&key).unwrap().is_some());
    }

    #[test]
    fn a_fifo_in_place_of_a_file_read_whole_is_never_opened() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let f = t.path().join("empty.yaml");
        write_at(&f, b"", 1);
        let key = Digest::of_bytes(b"load");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        assert!(store
            .memo_put(&key, &[watched_text(&f, b"")], later, b"p", &[])
            .unwrap());
        // a FIFO has size 0 too: opening it for reading would block
        std::fs::remove_file(&f).unwrap();
        let c = std::ffi::CString::new(f.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(store.memo_get(&key).unwrap().is_none());
    }

    #[test]
    fn a_file_read_through_a_symlink_is_watched_where_it_leads() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let (a, b, link) = files_and_a_link(t.path());
        let key = Digest::of_bytes(b"load");
        let later = SystemTime::now() + std::time::Duration::from_secs(10);
        assert!(store
            .memo_put(&key, &[watched_text(&link, b"one\n")], later, b"p", &[])
            .unwrap());
        assert!(store.memo_get(&key).unwrap().is_some());
        // the file it leads to changes, the link does not
        write_at(&a, b"ONE\n", 2);
        assert!(store.memo_get(&key).unwrap().is_none());
        write_at(&a, b"one\n", 3);
        assert!(store.memo_get(&key).unwrap().is_some());
        // the link leads elsewhere
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert!(store.memo_get(&key).unwrap().is_none());
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

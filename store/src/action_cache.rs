//! The action cache and the other small tables, in SQLite (`ac.sqlite`, WAL).
//!
//! Schema version 1 (`PRAGMA user_version`), see spec/store.md:
//! `results` (action key → result), `pins` (name → tree), `sources` (id → blob).
//! Times: `created` in unix seconds; `accessed` in unix milliseconds (LRU order).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rusqlite::{params, Connection, OptionalExtension};

use crate::digest::{ActionKey, BlobDigest, Digest, TreeDigest};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// Schema version written to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS results (
    key         TEXT PRIMARY KEY,
    output      TEXT NOT NULL,
    log         TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    created     INTEGER NOT NULL,
    accessed    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (
    name    TEXT PRIMARY KEY,
    tree    TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id       TEXT PRIMARY KEY,
    blob     TEXT NOT NULL,
    accessed INTEGER NOT NULL
);
";

/// What a build step produced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionResult {
    pub output: TreeDigest,
    pub log: BlobDigest,
    pub duration_ms: u64,
    /// Unix seconds.
    pub created: i64,
    pub manifest: BlobDigest,
}

/// A result row as gc and verify see it.
#[derive(Clone, Debug)]
pub(crate) struct ResultRow {
    pub key: ActionKey,
    pub result: ActionResult,
    pub accessed_ms: i64,
}

pub(crate) struct Db {
    pub path: PathBuf,
    /// Opened on first use: commands that never touch the action cache
    /// (reusing a view, reading an object) do not pay for SQLite.
    conn: OnceLock<Mutex<Connection>>,
    opening: Mutex<()>,
    /// Access times of results read since the last flush: written in one
    /// transaction (every 256, before gc reads them, and when the store is
    /// dropped) instead of one write per cache hit.
    touched: Mutex<Vec<(String, i64)>>,
    /// Inside [`Store::read_snapshot`]: lookups ([`Db::with_read`]) run in
    /// one read transaction, begun by the first and ended by anything else
    /// done with the connection (a write) or by the snapshot's end.
    snapshot: std::sync::atomic::AtomicBool,
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.flush_access();
        self.shorten_wal();
    }
}

/// A write-ahead log longer than this is checkpointed and emptied when the
/// store is dropped (see [`Db::shorten_wal`]).
const WAL_KEPT: u64 = 1 << 20;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn now_secs() -> i64 {
    now_ms() / 1000
}

fn hex_digest(s: String) -> rusqlite::Result<Digest> {
    Digest::from_hex(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Db {
    /// A handle on the database at `path`; it is opened (and created or
    /// migrated) by the first query.
    pub(crate) fn new(path: &Path) -> Db {
        Db {
            path: path.to_path_buf(),
            conn: OnceLock::new(),
            opening: Mutex::new(()),
            touched: Mutex::new(Vec::new()),
            snapshot: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn conn(&self) -> Result<&Mutex<Connection>> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let _one = self
            .opening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let c = Db::open(&self.path)?;
        Ok(self.conn.get_or_init(|| Mutex::new(c)))
    }

    fn open(path: &Path) -> Result<Connection> {
        let err = |context: &str| {
            let path = path.to_path_buf();
            let context = context.to_string();
            move |source| db_error(context, path, source)
        };
        let conn = Connection::open(path).map_err(err("open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(err("busy_timeout"))?;
        // Switching to WAL does not wait on busy_timeout when another process
        // is creating the database at the same moment: retry for a while.
        let mut attempt = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 600 =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 + attempt % 20));
                }
                Err(e) => return Err(err("enable WAL")(e)),
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("set synchronous"))?;
        // A process that ends leaves the WAL as it is (SQLite's
        // auto-checkpoint keeps it short): a checkpoint, two fsyncs and a
        // WAL deleted and created again per cas command bought nothing the
        // durability contract promises (spec/store.md, Durability).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(err("keep the WAL on close"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err("read user_version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Layout {
                path: path.to_path_buf(),
                reason: format!(
                    "action cache schema {version} is newer than this cas ({SCHEMA_VERSION})"
                ),
            });
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(err("create schema"))?;
        }
        // Tables added without a schema version change (older binaries ignore them).
        conn.execute_batch(&format!(
            "{};\n{};\n{};\n{};",
            crate::refs::CREATE,
            crate::statcache::CREATE,
            crate::memo::CREATE,
            crate::notes::CREATE
        ))
        .map_err(err("create refs, stat cache, memo and notes tables"))?;
        // best effort: a store that cannot be written keeps its table as
        // it is, and its notes are read from their blobs
        let _ = crate::notes::add_data_column(&conn);
        Ok(conn)
    }

    /// Checkpoint the WAL into the database and empty it, if it is longer
    /// than [`WAL_KEPT`] and nobody else is using the database: the first
    /// connection of every later process reads the whole WAL (SQLite's
    /// recovery), which a build that recorded hundreds of results leaves
    /// megabytes long. Best effort, never waits: another process reading or
    /// writing leaves it to the next.
    fn shorten_wal(&self) {
        let Some(conn) = self.conn.get() else {
            return;
        };
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).map_or(true, |m| m.len() <= WAL_KEPT) {
            return;
        }
        let conn = conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if conn.busy_timeout(std::time::Duration::ZERO).is_ok() {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }

    /// End [`Store::read_snapshot`]'s mode and its read transaction, with
    /// the connection held: no other thread's call can come in between and
    /// find the transaction open with the mode off.
    fn end_snapshot(&self) {
        let Some(conn) = self.conn.get() else {
            self.snapshot
                .store(false, std::sync::atomic::Ordering::SeqCst);
            return;
        };
        let conn = conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.snapshot
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("COMMIT");
        }
    }

    /// Remember that a result was used now (see `touched`).
    fn touch(&self, key: String) {
        let mut t = self
            .touched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.push((key, now_ms()));
        if t.len() >= 256 {
            drop(t);
            let _ = self.flush_access();
        }
    }

    /// Write the pending access times.
    pub(crate) fn flush_access(&self) -> Result<()> {
        let batch = std::mem::take(
            &mut *self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if batch.is_empty() {
            return Ok(());
        }
        self.with("record access times", |c| {
            let tx = c.transaction()?;
            {
                let mut up = tx.prepare_cached(
                    "UPDATE results SET accessed = max(accessed, ?2) WHERE key = ?1",
                )?;
                for (key, at) in &batch {
                    up.execute(params![key, at])?;
                }
            }
            tx.commit()
        })
    }

    pub(crate) fn with<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.run(context, false, f)
    }

    /// [`Db::with`] for a lookup that only reads: inside a
    /// [`Store::read_snapshot`], it runs in the snapshot's read transaction.
    pub(crate) fn with_read<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.run(context, true, f)
    }

    /// [`Db::with_read`] for several lookups that belong together: they run
    /// in one read transaction (the snapshot's, or one of their own), one
    /// lock of the database for all.
    pub(crate) fn with_reads<T>(
        &self,
        context: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.with_read(context, |c| {
            let own = c
                .is_autocommit()
                .then(|| c.unchecked_transaction())
                .transpose()?;
            let t = f(c)?;
            if let Some(tx) = own {
                tx.commit()?;
            }
            Ok(t)
        })
    }

    fn run<T>(
        &self,
        context: &str,
        read: bool,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self
            .conn()?
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let err = |source| db_error(context.to_string(), self.path.clone(), source);
        if self.snapshot.load(std::sync::atomic::Ordering::SeqCst) {
            // the snapshot's read transaction: begun for a lookup, ended
            // before anything else (which may write, or begin its own)
            match (read, conn.is_autocommit()) {
                (true, true) => conn.execute_batch("BEGIN DEFERRED").map_err(err)?,
                (false, false) => conn.execute_batch("COMMIT").map_err(err)?,
                _ => {}
            }
        }
        f(&mut conn).map_err(err)
    }

    pub(crate) fn results(&self) -> Result<Vec<ResultRow>> {
        self.flush_access()?;
        // best effort, as access times are: a store only read (no write
        // access) still lists its results
        let _ = self.fold_memo_uses();
        self.with("list results", |c| {
            let mut st = c.prepare("SELECT key, output, log, manifest, duration_ms, created, accessed FROM results ORDER BY accessed, key")?;
            let rows = st.query_map([], |r| {
                Ok(ResultRow {
                    key: ActionKey::from_digest(hex_digest(r.get(0)?)?),
                    result: ActionResult {
                        output: TreeDigest(hex_digest(r.get(1)?)?),
                        log: BlobDigest(hex_digest(r.get(2)?)?),
                        manifest: BlobDigest(hex_digest(r.get(3)?)?),
                        duration_ms: r.get::<_, i64>(4)? as u64,
                        created: r.get(5)?,
                    },
                    accessed_ms: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn sources(&self) -> Result<Vec<(String, BlobDigest, i64)>> {
        self.with("list sources", |c| {
            let mut st =
                c.prepare("SELECT id, blob, accessed FROM sources ORDER BY accessed, id")?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, BlobDigest(hex_digest(r.get(1)?)?), r.get(2)?))
            })?;
            rows.collect()
        })
    }

    /// Delete result and source rows in one transaction.
    pub(crate) fn delete_rows(&self, keys: &[ActionKey], sources: &[String]) -> Result<()> {
        self.with("delete results", |c| {
            let tx = c.transaction()?;
            for k in keys {
                tx.execute("DELETE FROM results WHERE key = ?1", params![k.to_hex()])?;
                tx.execute("DELETE FROM notes WHERE key = ?1", params![k.to_hex()])?;
            }
            for s in sources {
                tx.execute("DELETE FROM sources WHERE id = ?1", params![s])?;
            }
            tx.commit()
        })
    }
}

/// The guard of [`Store::read_snapshot`]: the read transaction ends when
/// it is dropped.
pub struct ReadSnapshot<'a> {
    store: Option<&'a Store>,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        let Some(store) = self.store else {
            return;
        };
        store.db.end_snapshot();
    }
}

impl Store {
    /// Run the lookups that follow (results, pulled results, notes), until
    /// the guard is dropped, in one read transaction: many lookups in a
    /// row (`cas show`'s states and verdicts, one or two per element) each
    /// skip SQLite's lock of the WAL and the read of its index. Anything
    /// else done with the database meanwhile (recording a local source's
    /// stat cache, access times) ends that transaction first, and the next
    /// lookup begins another. A snapshot already held is reused.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>> {
        if self.db.snapshot.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(ReadSnapshot { store: None });
        }
        // the table a lookup of pulled results creates, created first: the
        // lookup then only reads
        crate::remote::pulled::create_table(self)?;
        self.db
            .snapshot
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(ReadSnapshot { store: Some(self) })
    }
}

impl Store {
    /// Check that every object reachable from these roots is present.
    pub(crate) fn ensure_present(&self, trees: &[TreeDigest], blobs: &[BlobDigest]) -> Result<()> {
        let mut seen = HashSet::new();
        for t in trees {
            self.closure(t, &mut seen)?;
        }
        for b in blobs {
            seen.insert(b.0);
        }
        for d in &seen {
            if !self.has_object(d) && *d != TreeDigest::empty().0 {
                return Err(StoreError::Missing { digest: d.to_hex() });
            }
        }
        Ok(())
    }

    /// Every recorded action result, by key (`cas store results`).
    pub fn action_list(&self) -> Result<Vec<(ActionKey, ActionResult)>> {
        let mut rows: Vec<(ActionKey, ActionResult)> = self
            .db
            .results()?
            .into_iter()
            .map(|r| (r.key, r.result))
            .collect();
        rows.sort_by_key(|(k, _)| *k);
        Ok(rows)
    }

    /// Action keys of this store that start with `prefix` (lowercase hex),
    /// at most `limit` of them, in order.
    pub fn action_keys_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<ActionKey>> {
        if !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let prefix = prefix.to_ascii_lowercase();
        // every key from the prefix up to the prefix followed by 'g'
        let end = format!("{prefix}g");
        let keys: Vec<String> = self.db.with("find action keys", |c| {
            c.prepare_cached(
                "SELECT key FROM results WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
            )?
            .query_map(params![prefix, end, limit as i64], |r| r.get(0))?
            .collect()
        })?;
        Ok(keys
            .iter()
            .filter_map(|k| ActionKey::from_hex(k).ok())
            .collect())
    }

    /// Look up many actions in one read transaction (one lock of the
    /// database, not one per key); touches the last-access time of each
    /// found. The answers are in the order of `keys`.
    pub fn action_get_many(&self, keys: &[ActionKey]) -> Result<Vec<Option<ActionResult>>> {
        let rows = self.db.with_reads("get action results", |c| {
            let mut rows = Vec::with_capacity(keys.len());
            {
                let mut st = c.prepare_cached(
                    "SELECT output, log, manifest, duration_ms, created FROM results WHERE key = ?1",
                )?;
                for key in keys {
                    rows.push(
                        st.query_row(params![key.to_hex()], |r| {
                            Ok(ActionResult {
                                output: TreeDigest(hex_digest(r.get(0)?)?),
                                log: BlobDigest(hex_digest(r.get(1)?)?),
                                manifest: BlobDigest(hex_digest(r.get(2)?)?),
                                duration_ms: r.get::<_, i64>(3)? as u64,
                                created: r.get(4)?,
                            })
                        })
                        .optional()?,
                    );
                }
            }
            Ok(rows)
        })?;
        for (key, row) in keys.iter().zip(&rows) {
            if row.is_some() {
                self.db.touch(key.to_hex());
            }
        }
        Ok(rows)
    }

    /// The outputs recorded for many actions, in one read transaction (in
    /// the order of `keys`), without counting them as used: for queries
    /// (`cas show`), which read nothing but the output.
    pub fn action_outputs_many(&self, keys: &[ActionKey]) -> Result<Vec<Option<TreeDigest>>> {
        self.db.with_reads("get action outputs", |c| {
            let mut st = c.prepare_cached("SELECT output FROM results WHERE key = ?1")?;
            let mut rows = Vec::with_capacity(keys.len());
            for key in keys {
                rows.push(
                    st.query_row(params![key.to_hex()], |r| {
                        Ok(TreeDigest(hex_digest(r.get(0)?)?))
                    })
                    .optional()?,
                );
            }
            Ok(rows)
        })
    }

    /// Look up an action; touches its last-access time.
    pub fn action_get(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        let row = self.action_peek(key)?;
        if row.is_some() {
            self.db.touch(key.to_hex());
        }
        Ok(row)
    }

    /// Look up an action without counting it as used (for statistics such
    /// as the scheduler's weights: gc's LRU order stays what builds made it).
    pub fn action_peek(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        let row = self.db.with_read("get action result", |c| {
            let row = c
                .prepare_cached("SELECT output, log, manifest, duration_ms, created FROM results WHERE key = ?1")?
                .query_row(
                    params![key.to_hex()],
                    |r| {
                        Ok(ActionResult {
                            output: TreeDigest(hex_digest(r.get(0)?)?),
                            log: BlobDigest(hex_digest(r.get(1)?)?),
                            manifest: BlobDigest(hex_digest(r.get(2)?)?),
                            duration_ms: r.get::<_, i64>(3)? as u64,
                            created: r.get(4)?,
                        })
                    },
                )
                .optional()?;
            Ok(row)
        })?;
        Ok(row)
    }

    /// Record an action result. Every object it references must be in the store
    /// (checked under the shared lock, so gc cannot remove them in between) and
    /// is made durable before the row is committed ([`Store::make_durable`]).
    pub fn action_put(&self, key: &ActionKey, result: &ActionResult) -> Result<()> {
        self.action_put_many(&[(*key, result.clone())])
    }

    /// Record several results with one durability pass and one transaction
    /// (group commit): the same guarantees as [`Store::action_put`] for each.
    pub fn action_put_many(&self, results: &[(ActionKey, ActionResult)]) -> Result<()> {
        self.action_put_noted(results, &[])
    }

    /// [`Store::action_put_many`], with notes (spec/store.md, result notes)
    /// `(key, name, blob)` recorded in the same transaction: a note is never
    /// there without its result.
    pub fn action_put_noted(
        &self,
        results: &[(ActionKey, ActionResult)],
        notes: &[(ActionKey, String, BlobDigest)],
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let _lock = self.lock_shared()?;
        for (_, r) in results {
            self.ensure_present(&[r.output], &[r.log, r.manifest])?;
        }
        let mut blobs: Vec<BlobDigest> = notes.iter().map(|(_, _, b)| *b).collect();
        self.ensure_present(&[], &blobs)?;
        let trees: Vec<TreeDigest> = results.iter().map(|(_, r)| r.output).collect();
        blobs.extend(results.iter().flat_map(|(_, r)| [r.log, r.manifest]));
        let _ = self.make_durable(&trees, &blobs)?;
        let now = now_ms();
        self.db.with("record action result", |c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR REPLACE INTO results (key, output, log, manifest, duration_ms, created, accessed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (key, r) in results {
                    ins.execute(params![
                        key.to_hex(),
                        r.output.to_hex(),
                        r.log.to_hex(),
                        r.manifest.to_hex(),
                        r.duration_ms as i64,
                        r.created,
                        now
                    ])?;
                }
                let mut note = tx.prepare_cached(
                    "INSERT OR REPLACE INTO notes (key, name, blob) VALUES (?1, ?2, ?3)",
                )?;
                for (key, name, blob) in notes {
                    note.execute(params![key.to_hex(), name, blob.to_hex()])?;
                }
            }
            tx.commit()
        })
    }

    /// Pin a tree under a name: gc never removes it.
    pub fn pin(&self, name: &str, tree: &TreeDigest) -> Result<()> {
        let _lock = self.lock_shared()?;
        self.ensure_present(&[*tree], &[])?;
        let _ = self.make_durable(&[*tree], &[])?;
        self.db.with("pin", |c| {
            c.execute(
                "INSERT OR REPLACE INTO pins (name, tree, created) VALUES (?1, ?2, ?3)",
                params![name, tree.to_hex(), now_secs()],
            )?;
            Ok(())
        })
    }

    /// Remove a pin; false when there was none.
    pub fn unpin(&self, name: &str) -> Result<bool> {
        self.db.with("unpin", |c| {
            Ok(c.execute("DELETE FROM pins WHERE name = ?1", params![name])? > 0)
        })
    }

    /// All pins, by name.
    pub fn pins(&self) -> Result<Vec<(String, TreeDigest)>> {
        self.db.with("list pins", |c| {
            let mut st = c.prepare("SELECT name, tree FROM pins ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, TreeDigest(hex_digest(r.get(1)?)?))))?;
            rows.collect()
        })
    }

    /// The source cache: the blob recorded for `id` (e.g. "sha256:<hex>"), if it is
    /// still in the store; touches its last-access time.
    pub fn source_get(&self, id: &str) -> Result<Option<BlobDigest>> {
        let found = self.db.with("get source", |c| {
            let row: Option<String> = c
                .query_row("SELECT blob FROM sources WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()?;
            if row.is_some() {
                c.execute(
                    "UPDATE sources SET accessed = ?2 WHERE id = ?1",
                    params![id, now_ms()],
                )?;
            }
            Ok(row)
        })?;
        match found {
            Some(hex) => {
                let d = BlobDigest::from_hex(&hex)?;
                Ok(if self.has_blob(&d) { Some(d) } else { None })
            }
            None => Ok(None),
        }
    }

    /// Record `id` → blob in the source index (the blob must be in the store).
    pub fn source_put(&self, id: &str, blob: &BlobDigest) -> Result<()> {
        let _lock = self.lock_shared()?;
        self.ensure_present(&[], &[*blob])?;
        let _ = self.make_durable(&[], &[*blob])?;
        self.db.with("record source", |c| {
            c.execute(
                "INSERT OR REPLACE INTO sources (id, blob, accessed) VALUES (?1, ?2, ?3)",
                params![id, blob.to_hex(), now_ms()],
            )?;
            Ok(())
        })
    }
}

/// A database error; SQLite's "disk I/O error" or "database or disk is full"
/// on a file system with (almost) no space left says that instead.
fn db_error(context: String, path: PathBuf, source: rusqlite::Error) -> StoreError {
    let io_or_full = matches!(
        &source,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
    );
    if io_or_full {
        let dir = path.parent().unwrap_or(&path);
        if let Ok(st) = rustix::fs::statvfs(dir) {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free < 1 << 20 {
                return StoreError::Full {
                    path: dir.to_path_buf(),
                    free,
                };
            }
        }
    }
    StoreError::Db {
        context,
        path,
        source,
    }
}

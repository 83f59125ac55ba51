//! Results pulled from a remote without their objects (spec/remote.md,
//! "Lazy pulls"): enough to compute the keys above them (`cas show`,
//! `cas checkout`) without downloading their outputs. Kept in the table
//! `remote_results` of `ac.sqlite`, apart from `results`: these rows
//! reference objects that need not be local, so they are never gc roots and
//! never used as a local cache hit.

use rusqlite::{params, OptionalExtension};

use crate::action_cache::ActionResult;
use crate::digest::{ActionKey, BlobDigest, Digest, TreeDigest};
use crate::error::{Result, StoreError};
use crate::store::Store;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS remote_results (
    key         TEXT PRIMARY KEY,
    output      TEXT NOT NULL,
    log         TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    created     INTEGER NOT NULL,
    remote      TEXT NOT NULL,
    recorded    INTEGER NOT NULL
);";

/// Create the table if this store has none yet.
pub(crate) fn create_table(store: &Store) -> Result<()> {
    store.db.with("create the pulled results table", |c| {
        c.execute_batch(TABLE)
    })
}

impl Store {
    /// Remember a verified result pulled from `remote` (objects not downloaded).
    pub fn remote_result_put(&self, key: &ActionKey, r: &ActionResult, remote: &str) -> Result<()> {
        self.db.with("record a pulled result", |c| {
            c.execute_batch(TABLE)?;
            c.execute(
                "INSERT OR REPLACE INTO remote_results (key, output, log, manifest, duration_ms, created, remote, recorded)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.to_hex(),
                    r.output.to_hex(),
                    r.log.to_hex(),
                    r.manifest.to_hex(),
                    r.duration_ms as i64,
                    r.created,
                    remote,
                    crate::action_cache::now_ms()
                ],
            )?;
            Ok(())
        })
    }

    /// A result pulled earlier (its objects may not be local) and its remote's URL.
    pub fn remote_result_get(&self, key: &ActionKey) -> Result<Option<(ActionResult, String)>> {
        let row: Option<(String, String, String, i64, i64, String)> = self.db.with_read("get a pulled result", |c| {
            c.execute_batch(TABLE)?;
            c.query_row(
                "SELECT output, log, manifest, duration_ms, created, remote FROM remote_results WHERE key = ?1",
                params![key.to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
        })?;
        let Some((output, log, manifest, duration_ms, created, remote)) = row else {
            return Ok(None);
        };
        let d = |s: &str| {
            Digest::from_hex(s)
                .map_err(|e| StoreError::Invalid(format!("remote_results row {key}: {e}")))
        };
        Ok(Some((
            ActionResult {
                output: TreeDigest(d(&output)?),
                log: BlobDigest(d(&log)?),
                manifest: BlobDigest(d(&manifest)?),
                duration_ms: duration_ms as u64,
                created,
            },
            remote,
        )))
    }

    /// Forget remembered remote answers recorded before `before_ms` (unix
    /// ms); with `dry_run`, only count them. For gc.
    pub(crate) fn remote_results_prune(&self, before_ms: i64, dry_run: bool) -> Result<u64> {
        self.db.with("prune pulled results", |c| {
            c.execute_batch(TABLE)?;
            let n: i64 = c.query_row(
                "SELECT count(*) FROM remote_results WHERE recorded < ?1",
                params![before_ms],
                |r| r.get(0),
            )?;
            if !dry_run && n > 0 {
                c.execute(
                    "DELETE FROM remote_results WHERE recorded < ?1",
                    params![before_ms],
                )?;
            }
            Ok(n as u64)
        })
    }

    /// Is every object reachable from `tree` in the store?
    pub fn has_closure(&self, tree: &TreeDigest) -> bool {
        self.ensure_present(&[*tree], &[]).is_ok()
    }
}

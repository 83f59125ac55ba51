//! Result notes: named blobs recorded beside an action result that are not
//! part of its key: what the engine worked out about the result after it
//! was made (a compose's provenance, the libraries check's verdict). A note
//! lives and dies with its result (gc keeps its blob while the result is
//! kept, and removes the row with the result); putting a note again
//! replaces it. A result pulled from a remote comes without notes.
//!
//! Table `notes` in `ac.sqlite`, created on first use (spec/store.md).

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use crate::action_cache::Db;
use crate::digest::{ActionKey, BlobDigest, Digest};
use crate::error::Result;
use crate::store::Store;

pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS notes (
    key  TEXT NOT NULL,
    name TEXT NOT NULL,
    blob TEXT NOT NULL,
    data BLOB,
    PRIMARY KEY (key, name)
)";

/// Notes at most this long are also kept in their row (`data`), so reading
/// many (a no-op's verdicts) reads no file; the blob stays the note.
pub(crate) const INLINE_MAX: usize = 4096;

/// Adds the column `data` to a `notes` table made before it (older binaries
/// write rows without it, which are read from their blob).
pub(crate) fn add_data_column(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    let has: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('notes') WHERE name = 'data')",
        [],
        |r| r.get(0),
    )?;
    if has {
        return Ok(());
    }
    match c.execute_batch("ALTER TABLE notes ADD COLUMN data BLOB") {
        // another process added it meanwhile
        Err(e) if e.to_string().contains("duplicate column") => Ok(()),
        r => r,
    }
}

fn parse(key: &str, blob: &str) -> Option<(ActionKey, BlobDigest)> {
    Some((
        ActionKey::from_hex(key).ok()?,
        BlobDigest(Digest::from_hex(blob).ok()?),
    ))
}

impl Db {
    /// Every note's blob, by result key (gc).
    pub(crate) fn all_notes(&self) -> Result<HashMap<ActionKey, Vec<BlobDigest>>> {
        self.with("list notes", |c| {
            let mut st = c.prepare("SELECT key, blob FROM notes")?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out: HashMap<ActionKey, Vec<BlobDigest>> = HashMap::new();
            for row in rows {
                let (k, b) = row?;
                if let Some((k, b)) = parse(&k, &b) {
                    out.entry(k).or_default().push(b);
                }
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Record `bytes` as the note `name` of the result of `key` (replacing
    /// an earlier one); returns the note's blob. The blob is stored and
    /// synced before the row is committed.
    pub fn note_put(&self, key: &ActionKey, name: &str, bytes: &[u8]) -> Result<BlobDigest> {
        Ok(self.notes_put(&[(*key, name.to_string(), bytes.to_vec())])?[0])
    }

    /// Several notes with one durability pass and one transaction; their blobs, in order.
    pub fn notes_put(&self, notes: &[(ActionKey, String, Vec<u8>)]) -> Result<Vec<BlobDigest>> {
        if notes.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.lock_shared()?;
        let stored = notes
            .iter()
            .map(|(_, _, b)| self.put_bytes_inner(b))
            .collect::<Result<Vec<_>>>()?;
        // A blob that was already in the store was made durable before the
        // row that first named it was committed: a verdict that did not
        // change, the usual case, writes none and syncs nothing. When one is
        // new, all of them are made durable (one another process wrote and
        // has not synced yet included).
        let any_new = stored.iter().any(|(_, new)| *new);
        let blobs: Vec<BlobDigest> = stored.into_iter().map(|(d, _)| BlobDigest(d)).collect();
        if any_new {
            let _ = self.make_durable(&[], &blobs)?;
        }
        self.db.with("record notes", |c| {
            let tx = c.transaction()?;
            {
                // a table without the column (see `add_data_column`): the
                // blobs alone
                if let Ok(mut ins) = tx.prepare_cached(
                    "INSERT OR REPLACE INTO notes (key, name, blob, data) VALUES (?1, ?2, ?3, ?4)",
                ) {
                    for ((key, name, bytes), blob) in notes.iter().zip(&blobs) {
                        let data = (bytes.len() <= INLINE_MAX).then_some(bytes.as_slice());
                        ins.execute(params![key.to_hex(), name, blob.to_hex(), data])?;
                    }
                } else {
                    let mut ins = tx.prepare_cached(
                        "INSERT OR REPLACE INTO notes (key, name, blob) VALUES (?1, ?2, ?3)",
                    )?;
                    for ((key, name, _), blob) in notes.iter().zip(&blobs) {
                        ins.execute(params![key.to_hex(), name, blob.to_hex()])?;
                    }
                }
            }
            tx.commit()
        })?;
        Ok(blobs)
    }

    /// The note `name` of `key`'s result, if recorded and its blob is present.
    pub fn note_get(&self, key: &ActionKey, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.notes_get(std::slice::from_ref(key), name)?.remove(0))
    }

    /// [`Store::note_get`] of each key, in order: the rows read together
    /// (one read of the database), each note from its row when it is kept
    /// there and has its blob's digest, else from its blob (in parallel).
    pub fn notes_get(&self, keys: &[ActionKey], name: &str) -> Result<Vec<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        type Row = Option<(String, Option<Vec<u8>>)>;
        let rows: Vec<Row> = self.db.with_reads("read notes", |c| {
            // a table without the column (see `add_data_column`): no copies
            let mut st = c
                .prepare_cached("SELECT blob, data FROM notes WHERE key = ?1 AND name = ?2")
                .or_else(|_| {
                    c.prepare_cached("SELECT blob, NULL FROM notes WHERE key = ?1 AND name = ?2")
                })?;
            keys.iter()
                .map(|k| {
                    st.query_row(params![k.to_hex(), name], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .collect()
        })?;
        // the bytes kept in a row are the note only if they are its blob's
        let mut in_rows = 0;
        let rows: Vec<Result<Vec<u8>, Option<Digest>>> = rows
            .into_iter()
            .map(|row| {
                let Some((blob, data)) = row else {
                    return Err(None);
                };
                let Ok(blob) = Digest::from_hex(&blob) else {
                    return Err(None);
                };
                match data {
                    Some(d) if Digest::of_bytes(&d) == blob => {
                        in_rows += 1;
                        Ok(d)
                    }
                    _ => Err(Some(blob)),
                }
            })
            .collect();
        let read = |row: Result<Vec<u8>, Option<Digest>>| {
            let b = match row {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(None) => return Ok(None),
                Err(Some(b)) => b,
            };
            match self.read_blob(&BlobDigest(b)) {
                Ok(bytes) => Ok(Some(bytes)),
                // a note is made again when its blob is gone or damaged
                // (`cas store verify` reports the damage)
                Err(crate::StoreError::Missing { .. } | crate::StoreError::Corrupt { .. }) => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        // in parallel when there are enough files to be worth handing to
        // the pool
        if rows.len() - in_rows < 16 {
            rows.into_iter().map(read).collect()
        } else {
            rows.into_par_iter().map(read).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{ActionKey, ActionResult, GcOptions, Store};

    #[test]
    fn notes_replace_and_live_and_die_with_their_result() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        let key = ActionKey::of_manifest(b"k");
        let log = store.put_bytes(b"log").unwrap();
        let result = ActionResult {
            output: store.empty_tree().unwrap(),
            log,
            duration_ms: 1,
            created: 0,
            manifest: log,
        };
        store.action_put(&key, &result).unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap(), None);
        store.note_put(&key, "n", b"first").unwrap();
        let blob = store.note_put(&key, "n", b"second").unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap().unwrap(), b"second");
        // kept by gc while the result is
        store.gc(&GcOptions::default()).unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap().unwrap(), b"second");
        // removed with it
        store
            .gc(&GcOptions {
                max_size: Some(0),
                ..GcOptions::default()
            })
            .unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap(), None);
        assert!(!store.has_blob(&blob));
    }

    #[test]
    fn a_note_whose_blob_is_damaged_is_no_note() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        let key = ActionKey::of_manifest(b"k");
        let blob = store.note_put(&key, "n", b"verdict").unwrap();
        // a second put of the same bytes finds the blob there
        assert_eq!(store.note_put(&key, "n", b"verdict").unwrap(), blob);
        let path = store.blob_path(&blob);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&path, b"verdicT").unwrap();
        // the copy in its row has the blob's digest: that is the note
        assert_eq!(store.note_get(&key, "n").unwrap().unwrap(), b"verdict");
        // a row's copy that is not its blob's bytes is never read as it is:
        // its blob is (here damaged too: no note, made again by its user)
        store
            .db
            .with("damage", |c| {
                c.execute("UPDATE notes SET data = CAST('verdicT' AS BLOB)", [])
            })
            .unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap(), None);
        // an intact blob behind a damaged row copy is the note
        std::fs::write(&path, b"verdict").unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap().unwrap(), b"verdict");
    }

    #[test]
    fn a_store_whose_notes_have_no_data_column_gains_it_and_reads_old_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("s");
        let key = ActionKey::of_manifest(b"k");
        {
            let store = Store::open(&root).unwrap();
            store.note_put(&key, "n", b"old").unwrap();
            // the table as an older cas made it, with its row
            store
                .db
                .with("downgrade", |c| {
                    c.execute_batch(
                        "CREATE TABLE old AS SELECT key, name, blob FROM notes;
                         DROP TABLE notes;
                         CREATE TABLE notes (key TEXT NOT NULL, name TEXT NOT NULL,
                           blob TEXT NOT NULL, PRIMARY KEY (key, name));
                         INSERT INTO notes SELECT * FROM old; DROP TABLE old;",
                    )
                })
                .unwrap();
        }
        let store = Store::open(&root).unwrap();
        assert_eq!(store.note_get(&key, "n").unwrap().unwrap(), b"old");
        store.note_put(&key, "m", b"new").unwrap();
        assert_eq!(store.note_get(&key, "m").unwrap().unwrap(), b"new");
        let kept: Option<Vec<u8>> = store
            .db
            .with("read", |c| {
                c.query_row("SELECT data FROM notes WHERE name = 'm'", [], |r| r.get(0))
            })
            .unwrap();
        assert_eq!(kept.as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn notes_read_together_come_in_the_order_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        // enough keys for the blobs to be read in parallel, and a few
        let keys: Vec<ActionKey> = (0..40)
            .map(|i| ActionKey::of_manifest(format!("k{i}").as_bytes()))
            .collect();
        for few in [&keys[..3], &keys[..]] {
            let noted: Vec<(ActionKey, String, Vec<u8>)> = few
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 3 != 1)
                .map(|(i, k)| (*k, "n".to_string(), format!("v{i}").into_bytes()))
                .collect();
            store.notes_put(&noted).unwrap();
            // another name is another note
            store.note_put(&few[1], "other", b"x").unwrap();
            let got = store.notes_get(few, "n").unwrap();
            assert_eq!(got.len(), few.len());
            for (i, g) in got.iter().enumerate() {
                let want = (i % 3 != 1).then(|| format!("v{i}").into_bytes());
                assert_eq!(g, &want, "note {i}");
            }
            assert!(store.notes_get(&[], "n").unwrap().is_empty());
        }
    }
}

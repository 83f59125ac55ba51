//! Named references: small mutable records `name → value` (a hex digest),
//! with the value each one had before. The store gives them no meaning: the
//! engine uses them for "the last key of an element" (`cas explain`). They
//! are not roots for gc and nothing is checked about what they name.
//!
//! Table `refs` in `ac.sqlite`, created on first use (spec/store.md).

use rusqlite::{params, OptionalExtension};

use crate::action_cache::now_secs;
use crate::error::Result;
use crate::store::Store;

pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS refs (
    name     TEXT PRIMARY KEY,
    value    TEXT NOT NULL,
    previous TEXT,
    updated  INTEGER NOT NULL
)";

/// A named reference and the value it held before its last change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefEntry {
    pub value: String,
    /// The value before the last change (None if it never changed).
    pub previous: Option<String>,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl Store {
    /// Set `name` to `value`. When the value changes, the old one is kept as
    /// `previous`; setting the same value again changes nothing.
    pub fn ref_put(&self, name: &str, value: &str) -> Result<()> {
        // Unchanged (every cached step of a no-op build): no write at all.
        if self.ref_get(name)?.is_some_and(|r| r.value == value) {
            return Ok(());
        }
        self.refs_put(&[(name.to_owned(), value.to_owned())])
    }

    /// [`Store::ref_put`] of each `(name, value)`, in order, in one
    /// transaction (a build's last keys: one write at its end, not one per
    /// step while steps run).
    pub fn refs_put(&self, refs: &[(String, String)]) -> Result<()> {
        // read first: most values are unchanged (a no-op build's keys), and
        // a read takes no write lock
        let changed: Vec<&(String, String)> = self.db.with_read("read refs", |c| {
            let mut get = c.prepare_cached("SELECT value FROM refs WHERE name = ?1")?;
            let mut changed = Vec::new();
            for r in refs {
                let old: Option<String> = get.query_row(params![r.0], |v| v.get(0)).optional()?;
                if old.as_deref() != Some(r.1.as_str()) {
                    changed.push(r);
                }
            }
            Ok(changed)
        })?;
        if changed.is_empty() {
            return Ok(());
        }
        let now = now_secs();
        self.db.with("record refs", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut get =
                    tx.prepare_cached("SELECT value, previous FROM refs WHERE name = ?1")?;
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO refs (name, value, previous, updated) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (name, value) in changed {
                    let old: Option<(String, Option<String>)> = get
                        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    let previous = match old {
                        Some((v, _)) if v == *value => continue,
                        Some((v, _)) => Some(v),
                        None => None,
                    };
                    put.execute(params![name, value, previous, now])?;
                }
            }
            tx.commit()
        })
    }

    /// The reference `name`, if it was ever set.
    pub fn ref_get(&self, name: &str) -> Result<Option<RefEntry>> {
        self.db.with_read("read ref", |c| {
            c.prepare_cached("SELECT value, previous, updated FROM refs WHERE name = ?1")?
                .query_row(params![name], |r| {
                    Ok(RefEntry {
                        value: r.get(0)?,
                        previous: r.get(1)?,
                        updated: r.get(2)?,
                    })
                })
                .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_keeps_its_previous_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.ref_get("a").unwrap(), None);
        store.ref_put("a", "1").unwrap();
        assert_eq!(store.ref_get("a").unwrap().unwrap().previous, None);
        store.ref_put("a", "2").unwrap();
        store.ref_put("a", "2").unwrap();
        let e = store.ref_get("a").unwrap().unwrap();
        assert_eq!((e.value.as_str(), e.previous.as_deref()), ("2", Some("1")));
        // Another store process sees it too.
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.ref_get("a").unwrap().unwrap().value, "2");
    }
}

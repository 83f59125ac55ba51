//! Recording results off the critical path (group commit).
//!
//! A result may be recorded only once its objects are durable, which costs a
//! `syncfs` of the store's file system or an `fsync` of each of its objects
//! (`Store::make_durable`: milliseconds). A build therefore hands finished
//! results to one recorder thread and goes on: dependents start at once
//! (they use the output from memory), and the recorder commits everything
//! that finished since its last commit with one durability pass and one
//! transaction. The run waits for the
//! recorder before it returns, and holds the store's shared lock meanwhile,
//! so gc never sees an output whose result is not yet recorded. If cas dies
//! first, results not yet committed are simply not recorded: those steps run
//! again next time, as if they had been interrupted.
//!
//! This module is the engine's one writer of results: [`put_now`] records
//! synchronously (results pulled from a remote, steps run without a
//! recorder, `cas store action-put`), the recorder in batches; and [`hit`]
//! is the one answer to "does the store have a result for this key": a
//! recorded result whose output tree is present.

use std::sync::mpsc::{channel, Receiver, Sender};

use cas_store::{ActionKey, ActionResult, BlobDigest, KeyLock, Store, TreeDigest};

use crate::error::{BuildError, Result};

enum Message {
    /// A result, and the key's build lock, released once it is committed
    /// (a second builder of the key then finds it).
    Record(
        ActionKey,
        ActionResult,
        Vec<(String, BlobDigest)>,
        Option<KeyLock>,
    ),
    Finish,
}

/// A usable result of `key` in the store: recorded, with its output tree
/// present. `touch`: count it as used (gc's LRU order); statistics do not.
pub fn hit(store: &Store, key: &ActionKey, touch: bool) -> Result<Option<ActionResult>> {
    let found = if touch {
        store.action_get(key)?
    } else {
        store.action_peek(key)?
    };
    Ok(found.filter(|r| store.has_tree(&r.output)))
}

/// The fewest outputs [`hits`] checks in parallel (below, handing them to the
/// thread pool costs more than the checks).
const PARALLEL_CHECKS: usize = 16;

/// [`hit`] for many keys at once (one read of the action cache), in order.
pub fn hits(store: &Store, keys: &[ActionKey]) -> Result<Vec<Option<ActionResult>>> {
    use rayon::prelude::*;
    let found = store.action_get_many(keys)?;
    let present = |found: Option<ActionResult>| found.filter(|r| store.has_tree(&r.output));
    // each output `lstat`ed, in parallel when there are enough to be worth it
    Ok(if found.len() < PARALLEL_CHECKS {
        found.into_iter().map(present).collect()
    } else {
        found.into_par_iter().map(present).collect()
    })
}

/// Whether a lookup counts as a use of the results it finds, for gc's
/// least-recently-used order: a build's or a checkout's does, a query's
/// (`show`, `explain`) does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Use,
    Look,
}

/// The outputs of the results of `keys` that are here (row and output
/// tree), in order, in one read of the action cache.
pub fn outputs(
    store: &Store,
    keys: &[ActionKey],
    lookup: Lookup,
) -> Result<Vec<Option<TreeDigest>>> {
    use rayon::prelude::*;
    let found: Vec<Option<TreeDigest>> = match lookup {
        Lookup::Use => store
            .action_get_many(keys)?
            .into_iter()
            .map(|r| r.map(|r| r.output))
            .collect(),
        Lookup::Look => store.action_outputs_many(keys)?,
    };
    let present = |found: Option<TreeDigest>| found.filter(|t| store.has_tree(t));
    Ok(if found.len() < PARALLEL_CHECKS {
        found.into_iter().map(present).collect()
    } else {
        found.into_par_iter().map(present).collect()
    })
}

/// The local outputs of the keys a walk asks about (`Planner::walk`), in
/// order: [`outputs`].
pub fn outputs_of(
    store: &Store,
    asked: &[(cas_format::ElementId, &crate::plan::Keyed)],
    lookup: Lookup,
) -> Result<Vec<Option<TreeDigest>>> {
    let keys: Vec<ActionKey> = asked.iter().map(|(_, k)| k.key).collect();
    outputs(store, &keys, lookup)
}

/// Record results now (each with its notes), durably, in one transaction.
pub fn put_now(
    store: &Store,
    results: &[(ActionKey, ActionResult)],
    notes: &[(ActionKey, String, BlobDigest)],
) -> Result<()> {
    Ok(store.action_put_noted(results, notes)?)
}

/// The sending side, held by the engine.
pub struct Recorder {
    tx: Sender<Message>,
}

/// The thread's side: run [`RecorderThread::run`] on a (scoped) thread.
pub struct RecorderThread {
    rx: Receiver<Message>,
}

/// A recorder and the loop that serves it.
pub fn recorder() -> (Recorder, RecorderThread) {
    let (tx, rx) = channel();
    (Recorder { tx }, RecorderThread { rx })
}

impl Recorder {
    /// Queue a result; it is committed with the next batch.
    /// The lock, if given, is held until the result is committed.
    pub fn record(&self, key: ActionKey, result: ActionResult, lock: Option<KeyLock>) {
        self.record_noted(key, result, Vec::new(), lock);
    }

    /// Queue a result with its notes (name, stored blob), committed together.
    pub fn record_noted(
        &self,
        key: ActionKey,
        result: ActionResult,
        notes: Vec<(String, BlobDigest)>,
        lock: Option<KeyLock>,
    ) {
        let _ = self.tx.send(Message::Record(key, result, notes, lock));
    }

    /// Ask the thread to commit what is queued and stop.
    pub fn finish(&self) {
        let _ = self.tx.send(Message::Finish);
    }
}

impl RecorderThread {
    /// Commits batches until [`Recorder::finish`] (or until every sender is
    /// gone). Returns the first error; later batches are still attempted.
    pub fn run(self, store: &Store) -> Result<usize> {
        let mut recorded = 0;
        let mut first_error: Option<BuildError> = None;
        let mut finished = false;
        while !finished {
            let mut batch = Vec::new();
            let mut notes = Vec::new();
            let mut locks = Vec::new();
            match self.rx.recv() {
                Ok(Message::Record(k, r, n, l)) => {
                    notes.extend(n.into_iter().map(|(name, b)| (k, name, b)));
                    batch.push((k, r));
                    locks.push(l);
                }
                Ok(Message::Finish) | Err(_) => finished = true,
            }
            while let Ok(m) = self.rx.try_recv() {
                match m {
                    Message::Record(k, r, n, l) => {
                        notes.extend(n.into_iter().map(|(name, b)| (k, name, b)));
                        batch.push((k, r));
                        locks.push(l);
                    }
                    Message::Finish => finished = true,
                }
            }
            match store.action_put_noted(&batch, &notes) {
                Ok(()) => recorded += batch.len(),
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
            drop(locks);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(recorded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cas_store::Digest;

    #[test]
    fn queued_results_are_committed_by_finish_and_missing_objects_are_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("store")).unwrap();
        let log = store.put_bytes(b"log").unwrap();
        let result = ActionResult {
            output: store.empty_tree().unwrap(),
            log,
            duration_ms: 1,
            created: 0,
            manifest: log,
        };
        let keys: Vec<ActionKey> = (0..3u8).map(|i| ActionKey::of_manifest(&[i])).collect();
        let (rec, thread) = recorder();
        let recorded = std::thread::scope(|s| {
            let h = s.spawn(|| thread.run(&store));
            for k in &keys {
                rec.record(*k, result.clone(), None);
            }
            rec.finish();
            h.join().unwrap()
        })
        .unwrap();
        assert_eq!(recorded, 3);
        for k in &keys {
            assert_eq!(store.action_get(k).unwrap(), Some(result.clone()));
        }

        // A result whose log object is missing is not recorded, and says so.
        let mut bad = result.clone();
        bad.log = cas_store::BlobDigest(Digest::of_bytes(b"not stored"));
        let (rec, thread) = recorder();
        let err = std::thread::scope(|s| {
            let h = s.spawn(|| thread.run(&store));
            rec.record(ActionKey::of_manifest(b"bad"), bad, None);
            rec.finish();
            h.join().unwrap()
        })
        .unwrap_err();
        let missing = Digest::of_bytes(b"not stored").to_hex();
        assert!(
            err.to_string().contains(&missing) && err.to_string().contains("missing"),
            "{err}"
        );
        assert_eq!(
            store.action_get(&ActionKey::of_manifest(b"bad")).unwrap(),
            None
        );
    }
}

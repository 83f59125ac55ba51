//! The remotes of a run, as its steps see them: pulls on a local miss,
//! lazily downloaded outputs, pushes.

use std::collections::HashSet;

use cas_format::ElementId;
use cas_store::{ActionKey, ActionResult, Store};

use crate::error::Result;

use super::Remotes;

/// The remotes of a run, as the steps see them.
pub struct RemoteRun<'a> {
    pub remotes: &'a Remotes,
    /// Elements whose pulled output is downloaded at once (the targets): the
    /// others are downloaded only if a local step stages them.
    pub download: HashSet<cas_format::ElementId>,
    /// Keys this run already asked every remote for, in vain (the cache
    /// pass asks many at once): a step does not ask again.
    pub missed: std::sync::Mutex<HashSet<ActionKey>>,
}

/// A result found on a remote for a step.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub result: ActionResult,
}

impl RemoteRun<'_> {
    /// After a local miss: a trusted result of `key` (element `id`, named
    /// `name`) from a remote, if any. Targets' outputs are downloaded (and
    /// recorded locally) now; other outputs later, if at all. A result whose
    /// objects cannot be downloaded is not used.
    pub fn pull(
        &self,
        store: &Store,
        id: ElementId,
        name: &str,
        key: &ActionKey,
        say: &dyn Fn(&str),
    ) -> Result<Option<Pulled>> {
        if self
            .missed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(key)
        {
            return Ok(None);
        }
        let Some((r, index)) = self.remotes.lookup(key, name, say) else {
            self.missed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(*key);
            return Ok(None);
        };
        if self.download.contains(&id) {
            if let Err(e) = self.remotes.download(store, index, &r) {
                self.remotes.warn_download(name, &e, say);
                return Ok(None);
            }
            crate::record::put_now(store, &[(*key, r.clone())], &[])?;
        } else {
            self.remotes.pulled_lazily(*key, &r, index);
            // Best effort: lets `cas show`/`cas checkout` compute the keys above it later.
            let _ = store.remote_result_put(key, &r, self.remotes.url(index));
        }
        Ok(Some(Pulled { result: r }))
    }

    /// Push a local result to the remotes marked for push (failures are
    /// warned about and counted, never fatal).
    pub fn push(
        &self,
        store: &Store,
        name: &str,
        key: &ActionKey,
        r: &ActionResult,
        say: &dyn Fn(&str),
    ) {
        if self.remotes.pushes() {
            self.remotes.push(store, key, r, name, say);
        }
    }
}

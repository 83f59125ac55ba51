//! A step's cache side: its local result, remotes (pull, push, lazily pulled
//! outputs and the fallback when they cannot be downloaded), its stored log.

use std::collections::HashMap;

use cas_format::ElementId;
use cas_store::{ActionKey, ActionResult, BlobDigest, IngestMode, TreeDigest};

use crate::builddir::BuildDir;
use crate::error::Result;

use super::{Done, Engine, Status};

/// How many remote lookups [`Engine::pull_many`] has in flight at most.
pub(crate) const PULLS_IN_FLIGHT: usize = 16;

impl Engine<'_> {
    /// After a local miss: a trusted result from a remote (crate::remote).
    pub(crate) fn pull(&self, id: ElementId, key: &ActionKey) -> Result<Option<Done>> {
        let Some(rr) = &self.remote else {
            return Ok(None);
        };
        let say = |m: &str| self.reporter.message(m);
        Ok(rr
            .pull(self.store, id, &self.element(id).name, key, &say)?
            .map(|p| Done {
                key: *key,
                output: p.result.output,
                status: Status::Pulled,
                span: None,
                phases: None,
            }))
    }

    /// After local misses: [`Engine::pull`] for many keys at once, up to
    /// [`PULLS_IN_FLIGHT`] asked together (a remote's answer is mostly
    /// waiting: for the network, for the server). In the order asked;
    /// `None` for a miss, for an element rebuilt regardless (`cas check`),
    /// for a target (its pull downloads and records its output: its step
    /// does that under the key's build lock) and for a pull that failed
    /// (its step meets the error again).
    pub(crate) fn pull_many(&self, asked: &[(ElementId, ActionKey)]) -> Vec<Option<Done>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut found: Vec<Option<Done>> = vec![None; asked.len()];
        if self.remote.is_none() || asked.is_empty() {
            return found;
        }
        let next = AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<Done>>> =
            asked.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((id, key)) = asked.get(i) else {
                return;
            };
            let target = self
                .remote
                .as_ref()
                .is_some_and(|r| r.download.contains(id));
            if target || self.rebuild.contains(id) || self.cancel.is_cancelled() {
                continue;
            }
            if let Ok(Some(done)) = self.pull(*id, key) {
                *slots[i]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(done);
            }
        };
        let threads = asked.len().min(PULLS_IN_FLIGHT);
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
        for (f, slot) in found.iter_mut().zip(slots) {
            *f = slot
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        found
    }

    /// Push a local result to the remotes marked for push (failures are
    /// warned about and counted, never fatal).
    pub(crate) fn push(&self, id: ElementId, key: &ActionKey, r: &ActionResult) {
        if let Some(rr) = &self.remote {
            rr.push(self.store, &self.element(id).name, key, r, &|m| {
                self.reporter.message(m);
            });
        }
    }

    /// Before a step runs: make the outputs it stages local. A dependency
    /// whose pulled output cannot be downloaded is built locally; if that
    /// gives another output, the step is run again with it (its key changed),
    /// and that run's result is returned.
    pub(crate) fn ensure_staged(
        &self,
        id: ElementId,
        staged: &[(ElementId, TreeDigest)],
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Result<Option<Done>> {
        let Some(rr) = &self.remote else {
            return Ok(None);
        };
        let mut overrides: HashMap<ElementId, TreeDigest> = HashMap::new();
        for (dep, tree) in staged {
            if !rr.remotes.is_pending(tree) {
                continue;
            }
            if let Err(e) = rr.remotes.ensure_local(self.store, tree) {
                let done = self.fall_back(*dep, &e, outputs)?;
                if done.output != *tree {
                    overrides.insert(*dep, done.output);
                }
            }
        }
        if overrides.is_empty() {
            return Ok(None);
        }
        let again = |d: ElementId| overrides.get(&d).copied().or_else(|| outputs(d));
        self.run(id, &again).map(Some)
    }

    /// A dependency pulled earlier whose output could not be downloaded:
    /// built here, once per run however many steps stage it (they wait for
    /// the first), warned about once, and reported as built (the run's
    /// report takes [`Engine::fallbacks`] over the pulled status).
    pub(crate) fn fall_back(
        &self,
        dep: ElementId,
        err: &cas_store::RemoteError,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Result<Done> {
        // One cell per dependency, locked while it builds: a step that needs
        // it meanwhile waits, then takes the result. Cells are taken in
        // dependency order (a build only ever waits for what is below it),
        // so this cannot deadlock.
        let cell = self
            .fallbacks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(dep)
            .or_default()
            .clone();
        let mut slot = cell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(done) = slot.as_ref() {
            return Ok(done.clone());
        }
        let name = &self.element(dep).name;
        if let Some(rr) = &self.remote {
            rr.remotes
                .warn_download(name, err, &|m| self.reporter.message(m));
        }
        let done = self.run(dep, outputs)?;
        let took = done
            .span
            .map(|(a, b)| std::time::Duration::from_millis(b.saturating_sub(a)));
        self.reporter.finished(name, done.status.into(), took);
        *slot = Some(done.clone());
        Ok(done)
    }

    /// The local result of `key` as a cached step (pushed when pushing).
    pub(crate) fn cached_result(&self, id: ElementId, key: &ActionKey) -> Result<Option<Done>> {
        Ok(self.lookup(key)?.map(|hit| {
            self.push(id, key, &hit);
            Done {
                key: *key,
                output: hit.output,
                status: Status::Cached,
                span: None,
                phases: None,
            }
        }))
    }

    /// Stores a finished step's log. The build directory goes next, so the
    /// file itself becomes the object (renamed, not copied: no new file).
    pub(crate) fn store_log(&self, dir: &BuildDir) -> Result<BlobDigest> {
        let log = dir.log();
        if !log.exists() {
            return Ok(self.store.put_bytes(b"")?);
        }
        Ok(self.store.put_file(&log, IngestMode::Move)?.0)
    }
}

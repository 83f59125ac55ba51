//! The remotes of a run: pulling action results (lazily: outputs are
//! downloaded only when a local step stages them, or for the targets),
//! pushing results, and the counts for the summary (spec/remote.md).
//!
//! Everything here goes through [`cas_store::Remote`]: the engine does not
//! know which backend it talks to. [`Remotes`] is the configured set; a
//! run's steps see it through [`RemoteRun`] (`run.rs`); `cas pull` and
//! `cas push` are in `commands.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use cas_store::remote::transfer::{self, Lookup, Pushed};
use cas_store::remote::{Counters, SigningKey, TransferStats, Trust};
use cas_store::{ActionKey, ActionResult, Remote, RemoteError, Store, TreeDigest};

struct Entry {
    remote: Box<dyn Remote>,
    push: bool,
    trust: Trust,
}

/// A result pulled without its objects: where it came from, and what to
/// record once its output is made local.
#[derive(Clone)]
struct Lazy {
    index: usize,
    key: ActionKey,
    result: ActionResult,
}

/// The remotes of a run and what happened with them.
pub struct Remotes {
    entries: Vec<Entry>,
    signer: Option<SigningKey>,
    pub counters: Counters,
    /// Output trees of results pulled in this run and not yet made local,
    /// with the index of the remote they came from.
    pending: Mutex<HashMap<TreeDigest, Lazy>>,
    /// Output trees that could not be downloaded (corrupt, missing, remote
    /// down): results naming them are not used again in this run.
    refused: Mutex<HashSet<TreeDigest>>,
    push_failures: Mutex<Vec<String>>,
    warnings: Mutex<usize>,
    /// Remotes whose unsigned results were used (said once each).
    unsigned_used: Mutex<HashSet<usize>>,
    /// Elements whose result a remote had but was not used (untrusted,
    /// unsigned, forged, malformed): what a summary says they lack.
    rejected: Mutex<HashSet<String>>,
    /// Remotes found down (said once each).
    down_said: Mutex<HashSet<usize>>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.entries.iter().map(|e| e.remote.url()).collect();
        f.debug_struct("Remotes")
            .field("urls", &urls)
            .finish_non_exhaustive()
    }
}

/// What pushing one result did, counted over the remotes pushed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushCount {
    pub uploaded: usize,
    pub already_there: usize,
    pub failed: usize,
}

/// What the summary says about remotes (`cas build --json`: `"remote"`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoteSummary {
    pub transfers: TransferStats,
    /// Results that could not be pushed, one message each.
    pub push_failures: Vec<String>,
    /// Results or objects from remotes that were not used (each was warned about).
    pub warnings: usize,
}

impl Remotes {
    /// Open every remote (no network access yet). `state`: the store's
    /// directory for what REAPI remotes keep (`STORE/reapi`); `interrupt`:
    /// what stops their transfers early (the command's SIGINT/SIGTERM flag).
    pub fn open(
        specs: &[RemoteSpec],
        signer: Option<SigningKey>,
        state: &std::path::Path,
        interrupt: cas_store::remote::Interrupt,
    ) -> Result<Remotes, RemoteError> {
        let mut entries = Vec::new();
        // Each remote with its budget of waiting for the run: one that
        // makes cas wait too long is given up (spec/remote.md "Download limits").
        // (a remote's own `timeout:`, else `CAS_REMOTE_TIMEOUT`)
        let default_budget = cas_store::remote::budget_from_env();
        for s in specs {
            let budget = s.timeout.unwrap_or(default_budget);
            entries.push(Entry {
                remote: Box::new(cas_store::remote::Guarded::new(
                    cas_reapi::open_configured(
                        &s.url,
                        state,
                        &s.headers
                            .iter()
                            .map(|(n, v)| Ok((n.clone(), expand_env(&s.url, n, v)?)))
                            .collect::<Result<Vec<_>, RemoteError>>()?,
                        &s.tls,
                        budget,
                        interrupt,
                    )?,
                    budget,
                )),
                push: s.push,
                trust: s.trust.clone(),
            });
        }
        Ok(Remotes {
            entries,
            signer,
            counters: Counters::default(),
            pending: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
            push_failures: Mutex::new(Vec::new()),
            warnings: Mutex::new(0),
            unsigned_used: Mutex::new(HashSet::new()),
            rejected: Mutex::new(HashSet::new()),
            down_said: Mutex::new(HashSet::new()),
        })
    }

    pub fn url(&self, index: usize) -> &str {
        self.entries.get(index).map_or("", |e| e.remote.url())
    }

    /// Make `tree` complete locally from the first remote that has it (for
    /// `cas checkout` of a result pulled without its objects).
    pub fn fetch_tree_anywhere(&self, store: &Store, tree: &TreeDigest) -> Result<(), RemoteError> {
        let mut last = None;
        for e in &self.entries {
            match transfer::fetch_tree(store, e.remote.as_ref(), tree, &self.counters) {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| RemoteError::Missing {
            url: "(no remote configured)".into(),
            digest: tree.to_hex(),
        }))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn pushes(&self) -> bool {
        self.entries.iter().any(|e| e.push)
    }

    pub fn signer(&self) -> Option<&SigningKey> {
        self.signer.as_ref()
    }

    fn warn(&self, say: &dyn Fn(&str), message: String) {
        *self
            .warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        say(&format!("warning: {message}"));
    }

    /// Warn about a failure of remote `index`. Once the remote is given up
    /// (or down), this is said once, with why, and later failures of that
    /// remote are not said again: a remote that went wrong costs one warning.
    fn warn_failure(&self, index: usize, say: &dyn Fn(&str), message: String) {
        let Some(e) = self.entries.get(index) else {
            return self.warn(say, message);
        };
        if !e.remote.is_down() {
            return self.warn(say, message);
        }
        if !self
            .down_said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(index)
        {
            return;
        }
        let url = e.remote.url();
        let mut message = message;
        match e.remote.down_reason() {
            Some(why) if !message.contains(&why) => message.push_str(&format!(
                "; {url} is given up ({why}): it is not asked again in this run"
            )),
            _ => message.push_str(&format!(
                "; {url} is given up: it is not asked again in this run"
            )),
        }
        self.warn(say, message);
    }

    /// The index of the remote an error is about.
    fn index_of(&self, err: &RemoteError) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.remote.url() == err.url())
    }

    /// Whether a remote had a result for `element` that was not used
    /// (its signature not trusted, or not valid).
    pub fn was_rejected(&self, element: &str) -> bool {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(element)
    }

    /// Ask the remotes, in order, for the result of `key`. Rejected results
    /// (untrusted, unsigned, forged, malformed) and unreachable remotes are
    /// warned about and skipped. Returns the result and the remote's index.
    pub fn lookup(
        &self,
        key: &ActionKey,
        element: &str,
        say: &dyn Fn(&str),
    ) -> Option<(ActionResult, usize)> {
        for (i, e) in self.entries.iter().enumerate() {
            match transfer::lookup_result(e.remote.as_ref(), key, &e.trust, &self.counters) {
                Ok(Lookup::Miss) => {}
                Ok(found @ (Lookup::Hit(_) | Lookup::Unsigned(_))) => {
                    let (r, signed) = match found {
                        Lookup::Hit(r) => (r, true),
                        Lookup::Unsigned(r) => (r, false),
                        _ => unreachable!(),
                    };
                    if self
                        .refused
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .contains(&r.output)
                    {
                        continue;
                    }
                    if !signed
                        && self
                            .unsigned_used
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(i)
                    {
                        say(&format!(
                            "warning: {element}: using a result that no trusted key signed, from {} (marked trust-unsigned; this is said once per remote)",
                            e.remote.url()
                        ));
                    }
                    return Some((r, i));
                }
                Ok(Lookup::Rejected(why)) => {
                    self.rejected
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(element.to_string());
                    self.warn(
                        say,
                        format!(
                            "{element}: ignoring the result {key} from {}: {why}",
                            e.remote.url()
                        ),
                    );
                }
                // A remote that is down is warned about once, not per step.
                Err(err) => self.warn_failure(
                    i,
                    say,
                    format!("{element}: cannot ask {} for {key}: {err}", e.remote.url()),
                ),
            }
        }
        None
    }

    /// Remember that the result of `key` was pulled from remote `index`
    /// without downloading its objects.
    pub fn pulled_lazily(&self, key: ActionKey, result: &ActionResult, index: usize) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(result.output)
            .or_insert(Lazy {
                index,
                key,
                result: result.clone(),
            });
    }

    /// Download everything a pulled result references (its output, log and
    /// manifest), verified; on failure the output is refused for the rest of the run.
    pub fn download(
        &self,
        store: &Store,
        index: usize,
        r: &ActionResult,
    ) -> Result<(), RemoteError> {
        let e = &self.entries[index];
        let res = transfer::fetch_result_objects(store, e.remote.as_ref(), r, &self.counters);
        if res.is_err() {
            self.refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(r.output);
        }
        res
    }

    /// Download a pulled result's manifest only (verified): enough for
    /// `cas explain --against` a key that only this remote knows.
    pub fn fetch_manifest(
        &self,
        store: &Store,
        index: usize,
        r: &ActionResult,
    ) -> Result<(), RemoteError> {
        let e = &self.entries[index];
        transfer::fetch_object(
            store,
            e.remote.as_ref(),
            &r.manifest.0,
            false,
            cas_store::remote::MAX_LOG_BYTES,
            &self.counters,
        )
    }

    /// Does `tree` come from a remote result that is not local yet (or that
    /// failed to download)?
    pub fn is_pending(&self, tree: &TreeDigest) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(tree)
            || self
                .refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(tree)
    }

    /// Make a lazily pulled tree local (a no-op for trees that are not
    /// pending). On failure the tree is refused: the caller builds its
    /// producer locally.
    pub fn ensure_local(&self, store: &Store, tree: &TreeDigest) -> Result<(), RemoteError> {
        if self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(tree)
        {
            return Err(RemoteError::Missing {
                url: "(refused earlier in this run)".into(),
                digest: tree.to_hex(),
            });
        }
        let Some(lazy) = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tree)
            .cloned()
        else {
            return Ok(());
        };
        let e = &self.entries[lazy.index];
        // The output, its log and its manifest: the result is then complete
        // and recorded locally, so later runs need no remote for it.
        match transfer::fetch_result_objects(store, e.remote.as_ref(), &lazy.result, &self.counters)
        {
            Ok(()) => {
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(tree);
                // Under the key's build lock, and only if absent: a result is never replaced.
                if let Ok(_held) = store.lock_key(&lazy.key, &|| {}) {
                    if matches!(store.action_get(&lazy.key), Ok(None)) {
                        let _ =
                            crate::record::put_now(store, &[(lazy.key, lazy.result.clone())], &[]);
                    }
                }
                Ok(())
            }
            Err(err) => {
                self.pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(tree);
                self.refused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(*tree);
                Err(err)
            }
        }
    }

    /// Warn about a failed download (counted in the summary).
    pub fn warn_download(&self, element: &str, err: &RemoteError, say: &dyn Fn(&str)) {
        let message = format!("{element}: {err}; building it locally");
        match self.index_of(err) {
            Some(i) => self.warn_failure(i, say, message),
            None => self.warn(say, message),
        }
    }

    /// Push a local result to every remote marked for push. Failures are
    /// recorded for the summary and counted in the answer, never returned.
    pub fn push(
        &self,
        store: &Store,
        key: &ActionKey,
        r: &ActionResult,
        element: &str,
        say: &dyn Fn(&str),
    ) -> PushCount {
        let mut count = PushCount::default();
        for (i, e) in self.entries.iter().enumerate().filter(|(_, e)| e.push) {
            match transfer::push_result(
                store,
                e.remote.as_ref(),
                key,
                r,
                self.signer.as_ref(),
                &self.counters,
            ) {
                Ok(Pushed::AlreadyThere) => count.already_there += 1,
                Ok(Pushed::Uploaded { .. }) => count.uploaded += 1,
                Err(err) => {
                    count.failed += 1;
                    let msg = format!("{element}: cannot push {key} to {}: {err}", e.remote.url());
                    // Listed in the summary each; said once for a remote given up.
                    if !e.remote.is_down() {
                        say(&format!("warning: {msg}"));
                    } else if self
                        .down_said
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(i)
                    {
                        let why = e
                            .remote
                            .down_reason()
                            .filter(|why| !msg.contains(why.as_str()))
                            .map(|why| format!(" ({why})"))
                            .unwrap_or_default();
                        say(&format!(
                            "warning: {msg}; {} is given up{why}: it is not asked again in this run",
                            e.remote.url()
                        ));
                    }
                    self.push_failures
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(msg);
                }
            }
        }
        count
    }

    pub fn summary(&self) -> RemoteSummary {
        RemoteSummary {
            transfers: self.counters.snapshot(),
            push_failures: self
                .push_failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            warnings: *self
                .warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

mod commands;
mod run;
mod spec;

pub use commands::{pull, push, PullRow, PullStatus, PushReport};
pub use run::{Pulled, RemoteRun};
use spec::expand_env;
pub use spec::RemoteSpec;

//! Keys and states without building (`cas show`, `checkout`, `log` ...), and
//! `cas shell`: the closure planned from what the store already has.

use std::collections::HashMap;

use cas_format::{ElementId, Loaded};
use cas_sources::Mirrors;
use cas_store::{ActionKey, Store, TreeDigest};

use crate::error::Result;
use crate::record::Lookup;
use crate::run::fetcher_for;
use crate::sources::{needs_fetch, StoreSourceCache};
use crate::step::Engine;

/// The state of an element for `cas show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Cached,
    Buildable,
    Waiting,
    FetchNeeded,
    /// Known from a result pulled earlier whose output is not local (spec/remote.md).
    Pullable,
    /// Its last build with this key failed, and its log is kept (`cas log`).
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Cached => "cached",
            State::Buildable => "buildable",
            State::Waiting => "waiting",
            State::FetchNeeded => "fetch-needed",
            State::Pullable => "pullable",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub id: ElementId,
    pub key: Option<ActionKey>,
    pub state: State,
    pub output: Option<TreeDigest>,
}

/// Keys and states of the closure of `targets`, without building anything.
/// A key is known when the outputs of everything staged are known (cached).
/// With [`Lookup::Use`], each result found counts as used (a checkout's).
pub fn states(
    store: &Store,
    loaded: &Loaded,
    targets: &[ElementId],
    mirrors: &Mirrors,
    lookup: Lookup,
) -> Result<Vec<Planned>> {
    let fetcher = fetcher_for(store, mirrors)?;
    let cache = StoreSourceCache { store };
    let planner = crate::plan::Planner::new(store, loaded);
    let mut states: HashMap<ElementId, State> = HashMap::new();
    let steps = planner.walk(targets, crate::plan::Walk::default(), &mut |asked| {
        let keys: Vec<ActionKey> = asked.iter().map(|(_, k)| k.key).collect();
        let hits = crate::record::outputs(store, &keys, lookup)?;
        let mut found = Vec::with_capacity(asked.len());
        for ((id, k), hit) in asked.iter().zip(hits) {
            let (state, output) = match hit {
                Some(output) => (State::Cached, Some(output)),
                None => match store.remote_result_get(&k.key)? {
                    Some((r, _)) => (State::Pullable, Some(r.output)),
                    None => (State::Buildable, None),
                },
            };
            states.insert(*id, state);
            found.push(output);
        }
        Ok(found)
    })?;
    Ok(steps
        .into_iter()
        .map(|step| {
            let fetch = needs_fetch(&loaded.element(step.id).sources, &fetcher, &cache);
            let failed = || {
                step.keyed.as_ref().is_some_and(|k| {
                    crate::builddir::FailedBuild::of_key(store.root(), &k.key.to_hex()).is_some()
                })
            };
            let state = match (states.get(&step.id), fetch) {
                (Some(State::Buildable), _) if failed() => State::Failed,
                (Some(State::Buildable) | None, true) => State::FetchNeeded,
                (Some(s), _) => *s,
                (None, false) => State::Waiting,
            };
            Planned {
                id: step.id,
                key: step.keyed.map(|k| k.key),
                state,
                output: step.output,
            }
        })
        .collect())
}

/// `cas shell`: an interactive shell in the sandbox of `id` (see [`Engine::shell`]).
pub fn shell(
    store: &Store,
    loaded: &Loaded,
    id: ElementId,
    reopen: Option<&std::path::Path>,
    mirrors: &Mirrors,
    command: &[String],
) -> Result<cas_sandbox::Outcome> {
    let planned = states(store, loaded, &[id], mirrors, Lookup::Use)?;
    let outputs: HashMap<ElementId, TreeDigest> = planned
        .iter()
        .filter_map(|p| p.output.map(|o| (p.id, o)))
        .collect();
    let fetcher = fetcher_for(store, mirrors)?;
    let reporter = crate::progress::Silent;
    let engine = Engine {
        max_jobs: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        offline: false,
        ..Engine::new(store, loaded, &fetcher, &reporter)
    };
    let lookup = |d: ElementId| outputs.get(&d).copied();
    engine.shell(id, &lookup, reopen, command)
}

/// The store ref holding an element's last built or cached key (`cas
/// explain`): `last-key:<project root>:<element name>`.
pub fn last_key_ref(loaded: &Loaded, id: ElementId) -> String {
    format!(
        "last-key:{}:{}",
        loaded.project.root.display(),
        loaded.element(id).name
    )
}

//! A whole run: `build`, the DAG in parallel, in the sandbox (keys and
//! states without building are crate::states).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cas_format::{ElementId, Loaded};
use cas_sources::{Fetcher, FetcherConfig, Mirrors};
use cas_store::{ActionKey, Store, TreeDigest};

use crate::error::{BuildError, Result};
use crate::progress::Reporter;
use crate::scheduler::{self, Dag};
use crate::step::{ElementStatus, Engine};

/// How to run.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Steps at once.
    pub jobs: usize,
    /// `%{max-jobs}` inside each step.
    pub max_jobs: usize,
    pub keep_going: bool,
    pub offline: bool,
    pub mirrors: Mirrors,
    /// Rebuild these from scratch, ignoring and not recording results (`cas check`).
    pub rebuild: std::collections::HashSet<ElementId>,
    /// Remote caches (spec/remote.md); `None` for none.
    pub remotes: Option<std::sync::Arc<crate::remote::Remotes>>,
    /// Push results built from workspaces too (they are not, unless asked).
    pub push_workspaces: bool,
    /// Run sandboxed steps on this REAPI Execution service (`--remote-exec`).
    pub remote_exec: Option<std::sync::Arc<cas_reapi::ReapiRemote>>,
}

/// One element's line in the report (`cas build --json`).
/// Why a build is refused before anything runs.
#[derive(Debug)]
pub enum Refusal {
    /// Elements whose sources or kinds need BuildStream plugins cas does not
    /// implement: each element's name and why.
    Unbuildable(Vec<(String, String)>),
    /// Offline: the sources the steps still to build need that are not in
    /// the source cache, each with the elements that use it.
    MissingOffline(Vec<(cas_sources::Source, Vec<String>)>),
}

/// Before a build: what cannot be built at all (sources of plugins cas does
/// not implement), and with `offline` every source missing from the source
/// cache, said before anything runs and without any network access. Online,
/// nothing is fetched here: each step fetches its own sources once its
/// cache lookups missed (nothing for a step that is cached or pulled).
pub fn preflight(
    store: &Store,
    loaded: &Loaded,
    mirrors: &Mirrors,
    offline: bool,
) -> Result<Option<Refusal>> {
    let unbuildable: Vec<(String, String)> = loaded
        .closure(&loaded.targets)
        .into_iter()
        .map(|id| loaded.element(id))
        .filter(|e| !e.unsupported.is_empty())
        .map(|e| (e.name.clone(), e.unsupported.join("; ")))
        .collect();
    if !unbuildable.is_empty() {
        return Ok(Some(Refusal::Unbuildable(unbuildable)));
    }
    if !offline {
        return Ok(None);
    }
    let fetcher = fetcher_for(store, mirrors)?;
    let missing = crate::sources::missing_offline(store, loaded, &fetcher)?;
    Ok((!missing.is_empty()).then_some(Refusal::MissingOffline(missing)))
}

pub fn fetcher_for(store: &Store, mirrors: &Mirrors) -> Result<Fetcher> {
    let mut config = FetcherConfig::new(store.tmp_dir(), crate::sources::git_dir(store));
    config.mirrors = mirrors.clone();
    Fetcher::new(config).map_err(|source| BuildError::Source {
        element: String::new(),
        source,
    })
}

/// Builds `targets` and everything below them.
pub fn build(
    store: &Store,
    loaded: &Loaded,
    targets: &[ElementId],
    opts: &BuildOptions,
    reporter: &dyn Reporter,
    stop: &AtomicBool,
) -> Result<BuildReport> {
    let _lock = store.lock_shared()?;
    let closure = loaded.closure(targets);
    let dag = dag_of(loaded, &closure);
    let fetcher = fetcher_for(store, &opts.mirrors)?;
    let (recorder, recorder_thread) = crate::record::recorder();
    let (clean, to_clean) = std::sync::mpsc::channel::<crate::builddir::BuildDir>();
    let clean = Mutex::new(clean);
    let engine = Engine {
        recorder: Some(&recorder),
        cleaner: Some(&clean),
        push_workspaces: opts.push_workspaces,
        remote_exec: opts.remote_exec.clone(),
        max_jobs: opts.max_jobs.max(1),
        offline: opts.offline,
        rebuild: opts.rebuild.clone(),
        remote: opts
            .remotes
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|remotes| crate::remote::RemoteRun {
                remotes,
                download: targets.iter().copied().collect(),
                missed: std::sync::Mutex::default(),
            }),
        ..Engine::new(store, loaded, &fetcher, reporter)
    };
    let outputs = Outputs::default();
    let last_keys = LastKeys::default();
    let errors: Mutex<HashMap<ElementId, StepError>> = Mutex::new(HashMap::new());
    let (finished, finished_rx) = std::sync::mpsc::channel::<()>();
    let (ends, recorded) = std::thread::scope(|scope| {
        let recording = scope.spawn(|| recorder_thread.run(store));
        // finished build directories, removed as they come; the run ends
        // when the last is gone
        let cleaning = scope.spawn(move || {
            for dir in to_clean {
                dir.remove();
            }
        });
        // Ctrl-C: stop starting steps and kill the running sandboxes. The
        // watcher ends as soon as the run does (the sender is dropped).
        let cancel = engine.cancel.clone();
        scope.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished_rx.recv_timeout(Duration::from_millis(50))
            {
                if stop.load(Ordering::SeqCst) {
                    cancel.cancel();
                    break;
                }
            }
        });
        // What the local cache already has is found here, wave by wave (each
        // wave's keys in parallel, its lookups in one read); only the rest
        // goes through the parallel scheduler. The lookups in one read
        // transaction.
        let snapshot = store.read_snapshot();
        let done_before = cached_pre_pass(&engine, targets, &closure, &outputs, &last_keys);
        // critical path first, weighted by what each step took last time
        // (read in the same read transaction: two lookups per step to run)
        let mut dag = dag;
        if std::env::var_os("CAS_SCHEDULE").is_some_and(|v| v == "index") {
            dag.index_order = true;
        } else if done_before.iter().any(Option::is_none) {
            dag.weights = weights_of(&engine, &closure, &done_before);
        }
        drop(snapshot);
        // what a built step releases is looked up in bulk first: when its
        // output is what it was, its dependents are mostly cached
        let ends = scheduler::run_settling(
            &dag,
            opts.jobs,
            opts.keep_going,
            stop,
            done_before,
            |batch| settle_cached(&engine, &closure, batch, &outputs, &last_keys),
            |i| run_one(&engine, closure[i], &outputs, &errors, &last_keys),
        );
        drop(finished);
        drop(std::mem::replace(
            &mut *clean
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            std::sync::mpsc::channel().0,
        ));
        let _ = cleaning.join();
        recorder.finish();
        let recorded = recording
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (ends, recorded)
    });
    last_keys.write(store);
    // Built but not recorded (the store failed): say so; they build again.
    recorded?;
    let errors = errors
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut report = report_of(&engine, &closure, ends, &errors);
    report.remote = engine.remote.as_ref().map(|r| r.remotes.summary());
    check_outputs(&engine, &closure, &outputs, &mut report)?;
    Ok(report)
}

/// After the steps: the libraries check of every element that has an
/// output (crate::checks), in parallel. Problems of the steps built or
/// pulled in this run are warned about; with severity `error` the element
/// fails, cached or not, for as long as the problem is there.
fn check_outputs(
    engine: &Engine<'_>,
    closure: &[ElementId],
    outputs: &Outputs,
    report: &mut BuildReport,
) -> Result<()> {
    use rayon::prelude::*;
    let indexes = cas_linkcheck::Indexes::default();
    let get = |d: ElementId| outputs.get(d);
    // a cached element's output was found in the store by its lookup: the
    // check of each element that stages it need not `lstat` it again
    let cached: std::collections::HashSet<TreeDigest> = closure
        .iter()
        .zip(&report.elements)
        .filter(|(_, row)| row.status == ElementStatus::Cached)
        .filter_map(|(&id, _)| get(id))
        .collect();
    let present = |t: &TreeDigest| cached.contains(t) || engine.store.has_tree(t);
    // the elements with a verdict, and their recorded ones, read together
    let keys: Vec<Option<ActionKey>> = closure
        .iter()
        .zip(&report.elements)
        .map(|(&id, row)| {
            let key = row
                .key
                .as_deref()
                .and_then(|k| ActionKey::from_hex(k).ok())?;
            (row.output.is_some()
                && !engine.rebuild.contains(&id)
                && crate::checks::has_verdict(engine.element(id)))
            .then_some(key)
        })
        .collect();
    let wanted: Vec<ActionKey> = keys.iter().flatten().copied().collect();
    let mut notes = engine
        .store
        .notes_get(&wanted, crate::checks::LIBRARIES_NOTE)?
        .into_iter();
    let recorded: Vec<Option<Vec<u8>>> = keys
        .iter()
        .map(|k| k.and_then(|_| notes.next().flatten()))
        .collect();
    let verdicts: Vec<Option<crate::checks::Checked>> = closure
        .par_iter()
        .zip(keys.par_iter())
        .zip(recorded.par_iter())
        .map(|((&id, key), note)| match key {
            Some(key) => crate::checks::libraries_verdict_with(
                engine.store,
                &indexes,
                engine.loaded,
                id,
                key,
                &get,
                &present,
                crate::checks::Recorded::Given(note.as_deref()),
                true,
            ),
            None => Ok(None),
        })
        .collect::<Result<_>>()?;
    // new verdicts recorded together: one durability pass, one transaction
    let notes: Vec<(ActionKey, String, Vec<u8>)> = verdicts
        .iter()
        .zip(&report.elements)
        .filter_map(|(c, row)| {
            let c = c.as_ref().filter(|c| c.new)?;
            let key = ActionKey::from_hex(row.key.as_deref()?).ok()?;
            Some((
                key,
                crate::checks::LIBRARIES_NOTE.to_string(),
                c.verdict.encode(),
            ))
        })
        .collect();
    engine.store.notes_put(&notes)?;
    for (i, c) in verdicts.into_iter().enumerate() {
        let Some(v) = c.map(|c| c.verdict).filter(|v| !v.problems.is_empty()) else {
            continue;
        };
        let id = closure[i];
        let r = crate::checks::report(engine.store, &indexes, engine.loaded, id, &v, closure, &get);
        let row = &mut report.elements[i];
        let fails = r.severity == cas_format::Severity::Error;
        if fails || row.status != ElementStatus::Cached {
            let what = if fails { "error" } else { "warning" };
            for p in &r.problems {
                engine
                    .reporter
                    .message(&format!("{what}: {}: {}", row.name, p.message));
            }
        }
        if fails {
            match row.status {
                ElementStatus::Built => report.built -= 1,
                ElementStatus::Cached => report.cached -= 1,
                ElementStatus::Pulled => report.pulled -= 1,
                ElementStatus::Failed | ElementStatus::Skipped => {}
            }
            report.failed += 1;
            row.status = ElementStatus::Failed;
            row.error = Some(format!(
                "libraries check: {} problem{} (checks: libraries: error)",
                r.problems.len(),
                if r.problems.len() == 1 { "" } else { "s" }
            ));
        }
        row.libraries = Some(r);
    }
    Ok(())
}

/// The outputs known so far in a run, shared by its steps.
#[derive(Default)]
struct Outputs(Mutex<HashMap<ElementId, TreeDigest>>);

impl Outputs {
    fn get(&self, id: ElementId) -> Option<TreeDigest> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .copied()
    }
    fn set(&self, id: ElementId, output: TreeDigest) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, output);
    }
}

/// The steps the local action cache answers, in closure order, without
/// starting anything (`None`: the step goes to the scheduler, which meets
/// its errors again and reports them). The keys are derived and looked up
/// by `Planner::walk_on`, wave by wave, and a wave's local misses asked of
/// the remotes together (`Engine::pull_many`); each local hit is pushed to
/// the remotes (when pushing), and every hit reported in closure order, as
/// the steps come.
fn cached_pre_pass(
    engine: &Engine<'_>,
    targets: &[ElementId],
    closure: &[ElementId],
    outputs: &Outputs,
    last_keys: &LastKeys,
) -> Vec<Option<crate::step::Done>> {
    let mut hits: HashMap<ElementId, cas_store::ActionResult> = HashMap::new();
    let mut pulled: HashMap<ElementId, crate::step::Done> = HashMap::new();
    let walked = engine
        .planner
        .walk_on(targets, crate::plan::Walk::default(), &mut |asked| {
            // a lookup that fails leaves the wave to the scheduler
            let found = engine
                .lookup_many(asked)
                .unwrap_or_else(|_| vec![None; asked.len()]);
            // the local misses asked of the remotes together
            let missed: Vec<(ElementId, ActionKey)> = asked
                .iter()
                .zip(&found)
                .filter(|(_, hit)| hit.is_none())
                .map(|((id, k), _)| (*id, k.key))
                .collect();
            let mut from_remote = engine.pull_many(&missed).into_iter();
            Ok(asked
                .iter()
                .zip(found)
                .map(|((id, _), hit)| {
                    let Some(hit) = hit else {
                        let done = from_remote.next().flatten()?;
                        let output = done.output;
                        pulled.insert(*id, done);
                        return Some(output);
                    };
                    let output = hit.output;
                    hits.insert(*id, hit);
                    Some(output)
                })
                .collect())
        });
    let Ok((steps, _)) = walked else {
        return vec![None; closure.len()];
    };
    let mut keys: HashMap<ElementId, ActionKey> = steps
        .into_iter()
        .filter_map(|s| Some((s.id, s.keyed?.key)))
        .collect();
    closure
        .iter()
        .map(|&id| {
            if let Some(d) = pulled.remove(&id) {
                return Some(answered(engine, id, d, outputs, last_keys));
            }
            let hit = hits.remove(&id)?;
            let key = keys.remove(&id)?;
            engine.push(id, &key, &hit);
            Some(answered(
                engine,
                id,
                cached(key, hit.output),
                outputs,
                last_keys,
            ))
        })
        .collect()
}

/// A step answered without running (cached, pulled): a `Done` of `key`.
fn cached(key: ActionKey, output: cas_store::TreeDigest) -> crate::step::Done {
    crate::step::Done {
        key,
        output,
        status: crate::step::Status::Cached,
        span: None,
        phases: None,
    }
}

/// A step answered before the scheduler ran it: reported as it ended,
/// its output shared, its key remembered.
fn answered(
    engine: &Engine<'_>,
    id: ElementId,
    d: crate::step::Done,
    outputs: &Outputs,
    last_keys: &LastKeys,
) -> crate::step::Done {
    engine
        .reporter
        .finished(&engine.element(id).name, d.status.into(), None);
    outputs.set(id, d.output);
    last_keys.remember(engine, id, &d);
    d
}

/// The fewest steps [`settle_cached`] derives the keys of in parallel.
const PARALLEL_SETTLE: usize = 4;

/// The steps of `batch` (positions in `closure`) that a finished step made
/// ready and that the local action cache answers: their keys derived
/// together (in parallel when there are enough), looked up in one read, each
/// hit reported as the pre-pass does. `None` for the rest, which the
/// scheduler runs (a key that cannot be derived meets its error there; a
/// derived key is not derived again): a step with local sources or a
/// workspace (their digest may walk many files), and all when pushing (each
/// push goes on the step's own worker thread, not on the scheduler's).
fn settle_cached(
    engine: &Engine<'_>,
    closure: &[ElementId],
    batch: &[usize],
    outputs: &Outputs,
    last_keys: &LastKeys,
) -> Vec<Option<crate::step::Done>> {
    use rayon::prelude::*;
    // a push is network work: each step pushes on its own worker thread
    if engine.remote.as_ref().is_some_and(|r| r.remotes.pushes()) {
        return vec![None; batch.len()];
    }
    let derive = |&i: &usize| {
        let id = closure[i];
        // a local tree's digest may take a walk of many files: not on the
        // scheduler's thread, which would start nothing meanwhile
        let local = || {
            engine
                .element(id)
                .sources
                .iter()
                .any(|s| !s.kind.local_inputs().is_empty())
        };
        if engine.rebuild.contains(&id) || local() {
            return None;
        }
        engine
            .planner
            .key(id, &|d| outputs.get(d))
            .ok()
            .flatten()
            .map(|k| (id, k))
    };
    let keyed: Vec<Option<(ElementId, crate::plan::Keyed)>> = if batch.len() < PARALLEL_SETTLE {
        batch.iter().map(derive).collect()
    } else {
        batch.par_iter().map(derive).collect()
    };
    let asked: Vec<(ElementId, &crate::plan::Keyed)> =
        keyed.iter().flatten().map(|(id, k)| (*id, k)).collect();
    if asked.is_empty() {
        return vec![None; batch.len()];
    }
    // a lookup that fails leaves these to the scheduler
    let mut found = engine
        .lookup_many(&asked)
        .unwrap_or_else(|_| vec![None; asked.len()])
        .into_iter();
    keyed
        .iter()
        .map(|k| {
            let (id, keyed) = k.as_ref()?;
            let hit = found.next().flatten()?;
            Some(answered(
                engine,
                *id,
                cached(keyed.key, hit.output),
                outputs,
                last_keys,
            ))
        })
        .collect()
}

/// One step through the scheduler: run it, say how it ended, share its output.
fn run_one(
    engine: &Engine<'_>,
    id: ElementId,
    outputs: &Outputs,
    errors: &Mutex<HashMap<ElementId, StepError>>,
    last_keys: &LastKeys,
) -> std::result::Result<crate::step::Done, ()> {
    let name = &engine.element(id).name;
    match engine.run(id, &|d| outputs.get(d)) {
        Ok(done) => {
            let took = done
                .span
                .map(|(a, b)| Duration::from_millis(b.saturating_sub(a)));
            engine.reporter.finished(name, done.status.into(), took);
            outputs.set(id, done.output);
            if !engine.rebuild.contains(&id) {
                last_keys.remember(engine, id, &done);
            }
            Ok(done)
        }
        Err(e) => {
            if matches!(
                e,
                BuildError::Source { .. }
                    | BuildError::Conflict { .. }
                    | BuildError::NoShell { .. }
                    | BuildError::Store(_)
            ) {
                // Errors before the sandbox ran have no log to show.
                engine.reporter.message(&format!("error: {e}"));
            }
            engine.reporter.finished(name, ElementStatus::Failed, None);
            errors
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, StepError::of(&e));
            Err(())
        }
    }
}

/// The last keys of a run's elements, for `cas explain` (best effort):
/// written together when the steps are over (only those that changed are
/// written: `Store::refs_put`).
#[derive(Default)]
struct LastKeys(Mutex<Vec<(String, String)>>);

impl LastKeys {
    fn remember(&self, engine: &Engine<'_>, id: ElementId, done: &crate::step::Done) {
        let name = last_key_ref(engine.loaded, id);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name, done.key.to_hex()));
    }

    fn write(self, store: &Store) {
        let refs = self
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = store.refs_put(&refs);
    }
}

/// What each element of the closure waits for: the positions of what it stages.
fn dag_of(loaded: &Loaded, closure: &[ElementId]) -> Dag {
    let pos: HashMap<ElementId, usize> =
        closure.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    Dag::new(
        closure
            .iter()
            .map(|id| {
                loaded
                    .staged(*id)
                    .iter()
                    .filter_map(|d| pos.get(d).copied())
                    .collect()
            })
            .collect(),
    )
}

/// The scheduler's weights: how long each step still to run took the last
/// time this store built that element (its last key's result), in
/// milliseconds; 1 where nothing is known. Only for steps still to run, so
/// a no-op build asks nothing.
fn weights_of(
    engine: &Engine<'_>,
    closure: &[ElementId],
    done: &[Option<crate::step::Done>],
) -> Vec<u64> {
    closure
        .iter()
        .zip(done)
        .map(|(&id, done)| {
            if done.is_some() {
                return 1;
            }
            engine
                .store
                .ref_get(&last_key_ref(engine.loaded, id))
                .ok()
                .flatten()
                .and_then(|r| ActionKey::from_hex(&r.value).ok())
                .and_then(|k| engine.store.action_peek(&k).ok().flatten())
                .map_or(1, |r| r.duration_ms.max(1))
        })
        .collect()
}

use crate::report::{report_of, StepError};
pub use crate::report::{BuildReport, CommandFailure, ElementReport};
pub use crate::states::last_key_ref;

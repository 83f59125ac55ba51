//! One build step: compute its key, answer from the action cache, or stage
//! its sources and sysroot, run its phases in the sandbox, ingest its output
//! and record the result atomically.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cas_format::{Element, ElementId, Loaded};
use cas_sandbox::Cancel;
use cas_sources::Fetcher;
use cas_store::{ActionKey, ActionResult, Store, TreeDigest};

use crate::builddir::FailedBuild;
use crate::error::{io, BuildError, Result};
use crate::plan::{Keyed, Planner};
use crate::progress::Reporter;
use crate::sources::StoreSourceCache;

mod arch;
mod cache;
mod commands;
mod execute;
mod shell;
mod stage;

pub(crate) use commands::{command_failure, step_marker};
pub(crate) use execute::{sandbox_spec, Root};

/// How a step ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Built,
    Cached,
    Pulled,
}

impl Status {
    /// As reports and `--json` say it.
    pub fn name(self) -> &'static str {
        ElementStatus::from(self).name()
    }
}

/// How an element of a build ended, as reports, the console and `--json`
/// say it (spec/cli.md: `built|cached|pulled|failed|skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementStatus {
    Built,
    Cached,
    Pulled,
    Failed,
    /// Not run: something it stages failed, or the run stopped.
    Skipped,
}

impl ElementStatus {
    pub fn name(self) -> &'static str {
        match self {
            ElementStatus::Built => "built",
            ElementStatus::Cached => "cached",
            ElementStatus::Pulled => "pulled",
            ElementStatus::Failed => "failed",
            ElementStatus::Skipped => "skipped",
        }
    }
}

impl From<Status> for ElementStatus {
    fn from(s: Status) -> ElementStatus {
        match s {
            Status::Built => ElementStatus::Built,
            Status::Cached => ElementStatus::Cached,
            Status::Pulled => ElementStatus::Pulled,
        }
    }
}

impl std::fmt::Display for ElementStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A step that has an output.
#[derive(Debug, Clone)]
pub struct Done {
    pub key: ActionKey,
    pub output: TreeDigest,
    pub status: Status,
    /// Wall-clock span of the whole step (unix ms), for built steps: from
    /// its cache lookups to its result handed to the recorder.
    pub span: Option<(u64, u64)>,
    /// Where a built step's time went.
    pub phases: Option<Phases>,
}

/// The phases of a built step, in milliseconds; they add up to its span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Phases {
    /// Local and remote cache lookups, and waiting for another build of the key.
    pub lookup_ms: u64,
    /// Downloading what it stages from remotes, and fetching its sources.
    pub fetch_ms: u64,
    /// Staging its sysroot and sources, running its commands, ingesting its output.
    pub run_ms: u64,
    /// Storing its log, checks, notes, handing the result to the recorder, pushing.
    pub record_ms: u64,
}

/// The result of a fallback build, filled by whoever builds it first.
pub type Fallback = std::sync::Arc<std::sync::Mutex<Option<Done>>>;

/// Everything a step needs from the run.
pub struct Engine<'a> {
    pub store: &'a Store,
    pub loaded: &'a Loaded,
    pub fetcher: &'a Fetcher,
    /// Derives every key of the run (crate::plan).
    pub planner: Planner<'a>,
    pub git_dir: PathBuf,
    pub max_jobs: usize,
    pub cancel: Cancel,
    pub offline: bool,
    pub reporter: &'a dyn Reporter,
    /// Elements to rebuild from scratch whatever the action cache says,
    /// without recording the result (`cas check`).
    pub rebuild: std::collections::HashSet<ElementId>,
    /// Remote caches to pull from and push to (spec/remote.md).
    pub remote: Option<crate::remote::RemoteRun<'a>>,
    /// Where built results are recorded in the background (crate::record);
    /// `None`: recorded before the step returns.
    pub recorder: Option<&'a crate::record::Recorder>,
    /// Where finished build directories go to be removed off the steps'
    /// path (a thread of the run); `None`: each step removes its own.
    pub cleaner: Option<&'a std::sync::Mutex<std::sync::mpsc::Sender<crate::builddir::BuildDir>>>,
    /// Dependencies pulled earlier in the run and then built here because
    /// their output could not be downloaded (crate::remote): what the run
    /// reports for them.
    pub fallbacks: std::sync::Mutex<std::collections::HashMap<ElementId, Fallback>>,
    /// The steps of this run that failed in their sandbox: key, log, build
    /// directory (what reports and `--json` give for them).
    pub failures: std::sync::Mutex<std::collections::HashMap<ElementId, FailedBuild>>,
    /// Push results built from workspaces too (`--push` given).
    pub push_workspaces: bool,
    /// Where sandboxed steps run when not here (crate::remote_exec).
    pub remote_exec: Option<std::sync::Arc<cas_reapi::ReapiRemote>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<'a> Engine<'a> {
    /// An engine with the defaults of planning: offline, one job, no
    /// remotes, nothing forced; callers override fields with `..`.
    pub fn new(
        store: &'a Store,
        loaded: &'a Loaded,
        fetcher: &'a Fetcher,
        reporter: &'a dyn Reporter,
    ) -> Engine<'a> {
        Engine {
            store,
            loaded,
            fetcher,
            planner: Planner::new(store, loaded),
            git_dir: crate::sources::git_dir(store),
            max_jobs: 1,
            cancel: Cancel::new(),
            offline: true,
            reporter,
            rebuild: Default::default(),
            remote: None,
            recorder: None,
            cleaner: None,
            fallbacks: Default::default(),
            failures: Default::default(),
            push_workspaces: false,
            remote_exec: None,
        }
    }
}

impl Engine<'_> {
    pub fn element(&self, id: ElementId) -> &Element {
        &self.loaded.elements[id.index()]
    }

    fn source_cache(&self) -> StoreSourceCache<'_> {
        StoreSourceCache { store: self.store }
    }

    /// The cached result of a key, if its output is really in the store.
    pub fn lookup(&self, key: &ActionKey) -> Result<Option<ActionResult>> {
        crate::record::hit(self.store, key, true)
    }

    /// The local results of several keyed steps (a wave of the run's cache
    /// pass, `Planner::walk_on`), looked up together: one read of the action
    /// cache, in the order asked. A step to rebuild is not looked up.
    pub fn lookup_many(&self, asked: &[(ElementId, &Keyed)]) -> Result<Vec<Option<ActionResult>>> {
        let wanted: Vec<ActionKey> = asked
            .iter()
            .filter(|(id, _)| !self.rebuild.contains(id))
            .map(|(_, k)| k.key)
            .collect();
        let mut hits = crate::record::hits(self.store, &wanted)?.into_iter();
        Ok(asked
            .iter()
            .map(|(id, _)| {
                if self.rebuild.contains(id) {
                    None
                } else {
                    hits.next().flatten()
                }
            })
            .collect())
    }

    /// Removes a finished step's build directory: by the run's cleaner when
    /// there is one (removing a tree waits on the file system's journal,
    /// which the recorder's durability pass is flushing: milliseconds a step need
    /// not wait), else here.
    fn discard(&self, dir: crate::builddir::BuildDir) {
        let dir = match self.cleaner {
            Some(c) => match c
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .send(dir)
            {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(dir)) => dir,
            },
            None => dir,
        };
        dir.remove();
    }

    /// The name of the first element `id` stages whose output is unknown.
    fn first_missing(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> String {
        self.loaded
            .staged(id)
            .into_iter()
            .find(|d| outputs(*d).is_none())
            .map(|d| self.element(d).name.clone())
            .unwrap_or_default()
    }

    /// Runs one step. `outputs[i]` is the output of element `i` when it is
    /// already done in this run.
    pub fn run(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Result<Done> {
        let el = self.element(id);
        let Some(Keyed {
            staged,
            inputs,
            key,
        }) = self.planner.key(id, outputs)?
        else {
            let missing = self.first_missing(id, outputs);
            return Err(BuildError::Other {
                element: el.name.clone(),
                message: format!("dependency {missing} has no output"),
            });
        };
        let record = !self.rebuild.contains(&id);
        let step_started = SystemTime::now();
        let step_clock = Instant::now();
        let mut key_lock = None;
        if record {
            if let Some(done) = self.cached_result(id, &key)? {
                return Ok(done);
            }
            // One builder per key, across processes: whoever comes second
            // waits here, then finds the first one's result.
            key_lock = Some(self.store.lock_key(&key, &|| {
                self.reporter.message(&format!(
                    "{}: waiting for another build of {} to finish",
                    el.name,
                    &key.to_hex()[..12]
                ));
            })?);
            if let Some(done) = self.cached_result(id, &key)? {
                return Ok(done);
            }
            if let Some(done) = self.pull(id, &key)? {
                return Ok(done);
            }
        }
        let looked_up = step_clock.elapsed();
        // Outputs pulled lazily from a remote are downloaded now that they are staged.
        if let Some(done) = self.ensure_staged(id, &staged, outputs)? {
            return Ok(done);
        }
        self.check_emulation(el, &staged)?;
        self.fetch_sources(el)?;
        // one build at a time in a workspace's persistent build directory
        let _workspace_lock = match self.incremental_state(el) {
            Some(state) => Some(
                crate::workspace::lock(&state, &|| {
                    self.reporter.message(&format!(
                        "{}: waiting for another build of its workspace to finish",
                        el.name
                    ));
                })
                .map_err(io(
                    &el.name,
                    "cannot lock the workspace build state in",
                    state.clone(),
                ))?,
            ),
            None => None,
        };
        let fetched = step_clock.elapsed();
        self.reporter.started(&el.name, &key);
        let dir = self.build_dir(el, &key)?;
        self.reporter.log_at(&el.name, &dir.log());
        let started = SystemTime::now();
        let clock = Instant::now();
        let result = self.execute(el, &inputs, &staged, &dir);
        let ran = step_clock.elapsed();
        match result {
            Ok(output) => {
                // its log is read (`-L`) before it is moved into the store
                self.reporter.log_complete(&el.name);
                self.check_architecture(el, &output)?;
                let log = self.store_log(&dir)?;
                // the key's manifest, encoded only for a step that ran
                let manifest_blob = self.store.put_bytes(&inputs.manifest())?;
                let result = ActionResult {
                    output,
                    log,
                    duration_ms: clock.elapsed().as_millis() as u64,
                    created: unix_ms(started) as i64 / 1000,
                    manifest: manifest_blob,
                };
                if let Some(state) = self.incremental_state(el) {
                    crate::workspace::mark_prepared(&state, &inputs).map_err(io(
                        &el.name,
                        "cannot record the workspace build state in",
                        state.clone(),
                    ))?;
                }
                if record {
                    // the variables it was built with (crate::variables_note)
                    let mut notes = vec![(
                        crate::variables_note::VARIABLES_NOTE.to_string(),
                        self.store
                            .put_bytes(&crate::variables_note::encode(&el.variables))?,
                    )];
                    // a compose records what it was made of (crate::provenance)
                    if let Some(ws) = &el.workspace {
                        // built from a workspace: marked, and pushed only when asked
                        let blob = self.store.put_bytes(ws.as_os_str().as_encoded_bytes())?;
                        notes.push((crate::workspace::WORKSPACE_NOTE.to_string(), blob));
                    }
                    if crate::kinds::of(el).caps().whole_root {
                        let p = self.compose_provenance(el, &staged, &output, outputs)?;
                        let blob = self.store.put_bytes(&p.encode())?;
                        notes.push((crate::provenance::COMPOSE_NOTE.to_string(), blob));
                    }
                    if let Some(r) = self.recorder {
                        r.record_noted(key, result.clone(), notes, key_lock.take());
                    } else {
                        let notes: Vec<_> = notes.into_iter().map(|(n, b)| (key, n, b)).collect();
                        crate::record::put_now(self.store, &[(key, result.clone())], &notes)?;
                    }
                    if el.workspace.is_none() || self.push_workspaces {
                        self.push(id, &key, &result);
                    } else if self.remote.is_some() {
                        self.reporter.message(&format!(
                            "{}: built from a workspace: not pushed (`cas push {}` pushes it)",
                            el.name, el.name
                        ));
                    }
                }
                self.discard(dir);
                let total = step_clock.elapsed();
                let ms = |d: std::time::Duration| d.as_millis() as u64;
                Ok(Done {
                    key,
                    output,
                    status: Status::Built,
                    span: Some((unix_ms(step_started), unix_ms(step_started) + ms(total))),
                    phases: Some(Phases {
                        lookup_ms: ms(looked_up),
                        fetch_ms: ms(fetched).saturating_sub(ms(looked_up)),
                        run_ms: ms(ran).saturating_sub(ms(fetched)),
                        record_ms: ms(total).saturating_sub(ms(ran)),
                    }),
                })
            }
            // A step that failed before its sandbox ran (conflicting
            // dependencies, no shell, a source): nothing to inspect, and
            // the caller reports the error once (run.rs).
            Err(
                e @ (BuildError::Source { .. }
                | BuildError::Conflict { .. }
                | BuildError::NoShell { .. }),
            ) => {
                self.discard(dir);
                Err(e)
            }
            Err(e) => {
                let failure = FailedBuild {
                    element: el.name.clone(),
                    element_file: el.file.clone(),
                    key: key.to_hex(),
                    dir: dir.root.clone(),
                    log: dir.log(),
                };
                // an interrupted step did not fail: its key's state stays
                // what it was (the last failure is still kept for `cas shell --failed`)
                failure.save(self.store.root(), !self.cancel.is_cancelled());
                self.failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id, failure);
                self.reporter.failed(&el.name, &e, &dir.log());
                Err(e)
            }
        }
    }
}

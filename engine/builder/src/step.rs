//! One build step: compute its key, answer from the action cache, or stage
//! its sources and sysroot, run its phases in the sandbox, ingest its output
//! and record the result atomically.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cas_format::{Element, ElementId, Loaded};
use cas_sandbox::{Cancel, Io, Mount, SandboxSpec};
use cas_sources::Fetcher;
use cas_store::{ActionKey, ActionResult, BlobDigest, IngestMode, Store, TreeDigest};

use crate::builddir::{BuildDir, FailedBuild};
use crate::error::{io, BuildError, Result};
use crate::keys::KeyInputs;
use crate::plan::{Keyed, Planner};
use crate::progress::Reporter;
use crate::sources::StoreSourceCache;

use crate::sysroot::{Layer, Sysroot};

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
        Ok(self
            .store
            .action_get(key)?
            .filter(|r| self.store.has_tree(&r.output)))
    }

    /// The step's result when the local action cache has it (pushed to the
    /// remotes when pushing), found without staging anything; `None` when it
    /// must run (or something it stages has no output yet).
    pub fn cached(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Result<Option<Done>> {
        if self.rebuild.contains(&id) {
            return Ok(None);
        }
        match self.planner.key(id, outputs)? {
            Some(k) => self.cached_result(id, &k.key),
            None => Ok(None),
        }
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
        let manifest = inputs.manifest();
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
                self.check_architecture(el, &output)?;
                let log = self.store_log(&dir)?;
                let manifest_blob = self.store.put_bytes(&manifest)?;
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
                    if matches!(el.config, cas_format::Config::Compose { .. }) {
                        let p = self.compose_provenance(el, &staged, &output, outputs)?;
                        let blob = self.store.put_bytes(&p.encode())?;
                        notes.push((crate::provenance::COMPOSE_NOTE.to_string(), blob));
                    }
                    if let Some(r) = self.recorder {
                        r.record_noted(key, result.clone(), notes, key_lock.take());
                    } else {
                        let notes: Vec<_> = notes.into_iter().map(|(n, b)| (key, n, b)).collect();
                        self.store
                            .action_put_noted(&[(key, result.clone())], &notes)?;
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
                dir.remove();
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
                dir.remove();
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

    /// The architecture check (spec/format.md, Checks): every ELF file of
    /// the output is of the element's `build-arch`, or the step fails
    /// (`error`, the default) or says so (`warn`).
    fn check_architecture(&self, el: &Element, output: &TreeDigest) -> Result<()> {
        if !crate::checks::architecture_checked(el)
            || el.checks.architecture == cas_format::Severity::Off
        {
            return Ok(());
        }
        let wrong = crate::checks::architecture_problems(
            self.store,
            output,
            &el.sandbox.build_arch,
            &el.checks.architecture_exempt,
        )?;
        if wrong.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = wrong.iter().map(|(p, a)| format!("{p} is {a}")).collect();
        let message = format!(
            "{} ELF file(s) of its output are not {}: {}",
            wrong.len(),
            el.sandbox.build_arch,
            list.join(", ")
        );
        if el.checks.architecture == cas_format::Severity::Warn {
            self.reporter
                .message(&format!("warning: {}: {message}", el.name));
            return Ok(());
        }
        self.reporter.message(&format!(
            "error: {}: {message} (exempt paths with `checks: architecture-exempt: [GLOB]`)",
            el.name
        ));
        Err(BuildError::Other {
            element: el.name.clone(),
            message,
        })
    }

    /// A sysroot of another architecture runs only under a registered
    /// emulator: without one, the step fails before it starts, saying what
    /// to install.
    fn check_emulation(&self, el: &Element, staged: &[(ElementId, TreeDigest)]) -> Result<()> {
        match self.planner.emulation(el, staged) {
            Some(crate::plan::Emulation {
                arch,
                emulator: Err(why),
            }) => {
                let message = format!(
                    "its sysroot is {arch} (its /bin/sh), this machine is {}: {}",
                    std::env::consts::ARCH,
                    why.advice(&arch)
                );
                self.reporter
                    .message(&format!("error: {}: {message}", el.name));
                Err(BuildError::Other {
                    element: el.name.clone(),
                    message,
                })
            }
            _ => Ok(()),
        }
    }

    /// After a local miss: a trusted result from a remote (crate::remote).
    fn pull(&self, id: ElementId, key: &ActionKey) -> Result<Option<Done>> {
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

    /// Push a local result to the remotes marked for push (failures are
    /// warned about and counted, never fatal).
    fn push(&self, id: ElementId, key: &ActionKey, r: &ActionResult) {
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
    fn fall_back(
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
    fn cached_result(&self, id: ElementId, key: &ActionKey) -> Result<Option<Done>> {
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
    fn store_log(&self, dir: &BuildDir) -> Result<BlobDigest> {
        let log = dir.log();
        if !log.exists() {
            return Ok(self.store.put_bytes(b"")?);
        }
        Ok(self.store.put_file(&log, IngestMode::Move)?.0)
    }

    fn execute(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        staged: &[(ElementId, TreeDigest)],
        dir: &BuildDir,
    ) -> Result<TreeDigest> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(dir.log())
            .map_err(io(&el.name, "cannot open log", dir.log()))?;
        crate::kinds::assemble(crate::kinds::Work {
            engine: self,
            el,
            inputs,
            staged,
            dir,
            log: &mut log,
        })
    }

    pub(crate) fn output_dir(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        output: &str,
        root: Option<&Path>,
        dir: &BuildDir,
    ) -> Result<PathBuf> {
        let under = |base: &str, host: PathBuf| -> Option<PathBuf> {
            let rest = Path::new(output).strip_prefix(base).ok()?;
            Some(host.join(rest))
        };
        if let Some(p) = under(&inputs.sandbox.install_root, dir.install()) {
            return Ok(p);
        }
        if let Some(p) = under(&inputs.sandbox.build_root, dir.build()) {
            return Ok(p);
        }
        match root {
            Some(r) => Ok(r.join(output.trim_start_matches('/'))),
            None => Err(BuildError::Other {
                element: el.name.clone(),
                message: format!("output `{output}` is in the read-only root; use a path under %{{install-root}} or set root-read-only: false"),
            }),
        }
    }

    /// Staged outputs as layers: labelled with their elements' names (for
    /// conflicts), with the paths each may overwrite.
    pub(crate) fn layers(&self, staged: &[(ElementId, TreeDigest)]) -> Vec<Layer> {
        staged.iter().map(|(d, t)| self.layer(*d, *t)).collect()
    }

    /// Element `id`'s output `tree` as a layer.
    pub(crate) fn layer(&self, id: ElementId, tree: TreeDigest) -> Layer {
        let d = self.element(id);
        Layer {
            label: d.name.clone(),
            tree,
            whitelist: d.public.overlap_whitelist.clone(),
        }
    }

    /// Merges `layers` for `el` into one stored tree, listing whitelisted
    /// replacements in `log`.
    pub(crate) fn merge_layers(
        &self,
        el: &Element,
        layers: &[Layer],
        dir: &BuildDir,
        log: &mut File,
    ) -> Result<TreeDigest> {
        let merged = crate::sysroot::merge(self.store, &el.name, &overlaps(el, layers), true)?;
        crate::sysroot::log_overwrites(log, &merged.overwrites).map_err(io(
            &el.name,
            "cannot write",
            dir.log(),
        ))?;
        Ok(merged.tree)
    }

    /// The read-only `/` of `el`'s step made of `layers` (crate::sysroot),
    /// its whitelisted replacements listed in `log`.
    pub(crate) fn sysroot(
        &self,
        el: &Element,
        layers: &[Layer],
        dir: &BuildDir,
        log: &mut File,
    ) -> Result<Sysroot> {
        let sysroot = crate::sysroot::stage(self.store, &el.name, &overlaps(el, layers))?;
        crate::sysroot::log_overwrites(log, &sysroot.overwrites).map_err(io(
            &el.name,
            "cannot write",
            dir.log(),
        ))?;
        Ok(sysroot)
    }

    /// Fetches what is missing of `el`'s sources, saying so (cached sources
    /// are never fetched again; a source shared by steps is fetched once).
    fn fetch_sources(&self, el: &Element) -> Result<()> {
        let cache = self.source_cache();
        for s in &el.sources {
            if cas_sources::needs_fetch(s, self.fetcher, &cache) {
                self.reporter.message(&format!(
                    "fetching {} for {}",
                    crate::sources::describe(s),
                    el.name
                ));
            }
            crate::sources::fetch_once(
                s,
                self.fetcher,
                &cache,
                self.offline,
                &cas_sources::NoProgress,
            )
            .map_err(|source| BuildError::Source {
                element: el.name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The workspace state directory of an element built incrementally
    /// (a sandboxed element with an open workspace; crate::workspace).
    pub(crate) fn incremental_state(&self, el: &Element) -> Option<PathBuf> {
        // `cas check` rebuilds from scratch, workspace or not
        let incremental = el.workspace.is_some()
            && matches!(el.config, cas_format::Config::Sandbox)
            && !self.rebuild.contains(&el.id);
        incremental.then(|| {
            crate::workspace::state_dir(self.store.root(), &self.loaded.project.root, &el.name)
        })
    }

    /// A step's build directory: fresh, or for an incremental workspace
    /// build, one whose `build` is the workspace's persistent directory.
    fn build_dir(&self, el: &Element, key: &ActionKey) -> Result<BuildDir> {
        let dir = BuildDir::create(self.store.root(), &el.name, &key.to_hex()).map_err(io(
            &el.name,
            "cannot create build directory in",
            self.store.root().join("builds"),
        ))?;
        self.link_workspace_build(el, &dir)?;
        Ok(dir)
    }

    /// For an incremental workspace build: `dir`'s `build` becomes the
    /// workspace's persistent build directory.
    fn link_workspace_build(&self, el: &Element, dir: &BuildDir) -> Result<()> {
        if let Some(state) = self.incremental_state(el) {
            let persistent = crate::workspace::build_dir(&state);
            std::fs::create_dir_all(&persistent)
                .and_then(|()| std::fs::remove_dir(dir.build()))
                .and_then(|()| std::os::unix::fs::symlink(&persistent, dir.build()))
                .map_err(io(
                    &el.name,
                    "cannot prepare the workspace build directory",
                    persistent,
                ))?;
        }
        Ok(())
    }

    pub(crate) fn stage_sources(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        build: &Path,
    ) -> Result<()> {
        if let (Some(state), Some(ws)) = (self.incremental_state(el), &el.workspace) {
            // only what changed in the workspace's snapshot since the last build
            let tree = self.local_snapshot(el, ws)?;
            let copied =
                crate::workspace::prepare(self.store, &state, &tree, inputs).map_err(io(
                    &el.name,
                    "cannot copy the workspace into",
                    crate::workspace::build_dir(&state),
                ))?;
            self.reporter.message(&format!(
                "{}: workspace {}: {copied} file(s) changed since its last build",
                el.name,
                ws.display()
            ));
            return Ok(());
        }
        let cache = self.source_cache();
        for s in &el.sources {
            let source_err = |source| BuildError::Source {
                element: el.name.clone(),
                source,
            };
            match &s.kind {
                // from the snapshot the key was computed from (crate::snapshot)
                cas_sources::SourceKind::Local { path } => {
                    let tree = self.local_snapshot(el, path)?;
                    let dir = cas_sources::stage::staging_dir(build, s.directory.as_deref())
                        .map_err(source_err)?;
                    crate::snapshot::stage_tree(self.store, &tree, &dir, s.keep_setuid)
                        .map_err(io(&el.name, "cannot stage the local source into", dir))?;
                }
                cas_sources::SourceKind::Patch { path, strip } => {
                    let tree = self.local_snapshot(el, path)?;
                    let tmp = tempfile::Builder::new()
                        .prefix("patch-")
                        .tempdir_in(self.store.tmp_dir())
                        .map_err(io(
                            &el.name,
                            "cannot create a directory in",
                            self.store.tmp_dir(),
                        ))?;
                    crate::snapshot::stage_tree(self.store, &tree, tmp.path(), false).map_err(
                        io(
                            &el.name,
                            "cannot stage the patch into",
                            tmp.path().to_path_buf(),
                        ),
                    )?;
                    let name = path.file_name().unwrap_or_default();
                    let dir = cas_sources::stage::staging_dir(build, s.directory.as_deref())
                        .map_err(source_err)?;
                    cas_sources::patch::apply_patch(&tmp.path().join(name), *strip, &dir).map_err(
                        |e| match e {
                            cas_sources::SourceError::PatchFailed { hunks, output, .. } => {
                                source_err(cas_sources::SourceError::PatchFailed {
                                    patch: path.clone(),
                                    hunks,
                                    output,
                                })
                            }
                            e => source_err(e),
                        },
                    )?;
                }
                _ => cas_sources::stage_source(s, &cache, &self.git_dir, build)
                    .map_err(source_err)?,
            }
        }
        Ok(())
    }

    /// The tree a local source (or patch, or workspace) was ingested as when
    /// its key was computed: the same memo, so the same bytes.
    fn local_snapshot(&self, el: &Element, path: &Path) -> Result<cas_store::TreeDigest> {
        self.planner
            .locals
            .digest(self.store, path)
            .map_err(|e| BuildError::Other {
                element: el.name.clone(),
                message: format!("cannot snapshot local source {}: {e}", path.display()),
            })
    }

    pub(crate) fn run_phases(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        root: Root<'_>,
        dir: &BuildDir,
        log: &mut File,
    ) -> Result<()> {
        // an incremental workspace build does not configure again
        let commands = self.commands_of(el, inputs);
        self.run_commands(el, inputs, root, dir, &commands, log)
    }

    /// Runs `commands` (`(phase, command)`) in order in one sandbox (one
    /// bwrap per step, not per command; spec/sandbox.md): each as `sh -e -c`,
    /// its header and output in the log; the first failure stops the step and
    /// is reported with its phase and command.
    pub(crate) fn run_commands(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        root: Root<'_>,
        dir: &BuildDir,
        commands: &[(String, String)],
        log: &mut File,
    ) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        check_shell(el, &root.dirs())?;
        if self.cancel.is_cancelled() {
            return Err(BuildError::Interrupted {
                element: el.name.clone(),
            });
        }
        sandbox_ready(el, self.store.root())?;
        let jobs = self.max_jobs.to_string();
        let commands: Vec<(String, String)> = commands
            .iter()
            .map(|(p, c)| (p.clone(), c.replace("%{max-jobs}", &jobs)))
            .collect();
        let marker = step_marker(dir);
        let _ = log.flush();
        let start = log.metadata().map_or(0, |m| m.len());
        let mut spec = sandbox_spec(inputs, root, dir, &jobs);
        spec.binfmt = cas_sandbox::emulator::private_registration(&root.dirs());
        let file = log
            .try_clone()
            .map_err(io(&el.name, "cannot open log", dir.log()))?;
        let outcome = cas_sandbox::run(
            &spec,
            &cas_sandbox::script_argv(&commands, &marker),
            Io::Log(file),
            &self.cancel,
        )?;
        if outcome.cancelled {
            return Err(BuildError::Interrupted {
                element: el.name.clone(),
            });
        }
        if outcome.success() {
            return Ok(());
        }
        Err(command_failure(
            el,
            dir,
            start,
            &commands,
            &marker,
            &outcome.status.to_string(),
        ))
    }

    /// The phases of a step with `%{max-jobs}` resolved, as `(phase,
    /// command)`, and the sandbox spec they run in (also what a remote
    /// execution sends: crate::remote_exec).
    pub(crate) fn commands_of(&self, el: &Element, inputs: &KeyInputs) -> Vec<(String, String)> {
        let incremental = self
            .incremental_state(el)
            .is_some_and(|state| crate::workspace::incremental(&state, inputs));
        let jobs = self.max_jobs.to_string();
        inputs
            .phases
            .iter()
            .filter(|(phase, _)| !(incremental && phase == crate::workspace::CONFIGURE_PHASE))
            .flat_map(|(phase, commands)| {
                let jobs = jobs.clone();
                commands
                    .iter()
                    .map(move |c| (phase.clone(), c.replace("%{max-jobs}", &jobs)))
            })
            .collect()
    }
}

/// A failed step's error: which command failed, as the driver said in the
/// log after `start`; if it could not (killed), the last one it announced
/// with `status`.
pub(crate) fn command_failure(
    el: &Element,
    dir: &BuildDir,
    start: u64,
    commands: &[(String, String)],
    marker: &str,
    status: &str,
) -> BuildError {
    let text = read_from(&dir.log(), start);
    let (index, status) = match cas_sandbox::failed_command(&text, marker) {
        Some((i, code)) => (i, format!("exit code {code}")),
        None => (last_announced(&text, commands), status.to_string()),
    };
    let (phase, command) = commands
        .get(index)
        .cloned()
        .unwrap_or_else(|| ("commands".into(), String::new()));
    BuildError::CommandFailed {
        element: el.name.clone(),
        phase,
        command,
        status,
    }
}

/// A marker no command prints by chance: the driver names the failing
/// command with it.
pub(crate) fn step_marker(dir: &BuildDir) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{}:{nanos}:{}", dir.root.display(), std::process::id());
    format!(
        "#cas-failed-{}",
        &blake3::hash(seed.as_bytes()).to_hex()[..16]
    )
}

/// The log written since `start` (at most its last MiB).
fn read_from(path: &Path, start: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = start.max(len.saturating_sub(1 << 20));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The index of the last command whose header is in `text`.
fn last_announced(text: &str, commands: &[(String, String)]) -> usize {
    let mut at = 0;
    let mut last = 0;
    for (i, (p, c)) in commands.iter().enumerate() {
        match text[at..].find(&format!("# {p}: {c}\n")) {
            Some(o) => {
                at += o + 1;
                last = i;
            }
            None => break,
        }
    }
    last
}

/// `layers` as `el` stages them: with `overlaps_allowed` (a BuildStream
/// project's default), every layer may replace what is below it.
fn overlaps(el: &Element, layers: &[Layer]) -> Vec<Layer> {
    let mut layers = layers.to_vec();
    if el.overlaps_allowed {
        for l in &mut layers {
            l.whitelist = vec!["/**".into()];
        }
    }
    layers
}

/// The sandbox of a step (spec/sandbox.md): its root, the build and install
/// roots bound writable, the key's environment with `%{max-jobs}` filled in,
/// and the key's identity settings. Everything here comes from the key inputs.
pub(crate) fn sandbox_spec(
    inputs: &KeyInputs,
    root: Root<'_>,
    dir: &BuildDir,
    jobs: &str,
) -> SandboxSpec {
    SandboxSpec {
        root: root.root.to_path_buf(),
        layers: root.layers.to_vec(),
        root_writable: root.writable,
        mounts: vec![
            Mount::writable(dir.build(), &inputs.sandbox.build_root),
            Mount::writable(dir.install(), &inputs.sandbox.install_root),
        ],
        env: inputs
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("%{max-jobs}", jobs)))
            .collect(),
        cwd: PathBuf::from(
            inputs
                .config
                .get("workdir")
                .and_then(|w| w.first())
                .unwrap_or(&inputs.sandbox.build_root),
        ),
        hostname: inputs.sandbox.hostname.clone(),
        uid: inputs.sandbox.uid,
        gid: inputs.sandbox.gid,
        network: inputs.sandbox.network,
        binfmt: None,
        upper: None,
    }
}

/// The `/` of one command: a staged sysroot (read-only), or a private copy
/// (writable).
#[derive(Clone, Copy)]
#[allow(clippy::struct_field_names, reason = "the root of a Root is its `/`")]
pub(crate) struct Root<'a> {
    root: &'a Path,
    layers: &'a [PathBuf],
    writable: bool,
}

impl<'a> Root<'a> {
    pub(crate) fn read_only(s: &'a Sysroot) -> Root<'a> {
        Root {
            root: &s.root,
            layers: &s.layers,
            writable: false,
        }
    }
    pub(crate) fn writable(path: &'a Path) -> Root<'a> {
        Root {
            root: path,
            layers: &[],
            writable: true,
        }
    }
    fn dirs(&self) -> Vec<PathBuf> {
        if self.layers.is_empty() {
            vec![self.root.to_path_buf()]
        } else {
            self.layers.to_vec()
        }
    }
}

/// Whether bubblewrap works here, checked when the first step of a process
/// needs a sandbox, and remembered per store and kernel once it does.
fn sandbox_ready(el: &Element, store_root: &Path) -> Result<()> {
    static READY: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            // Probed once per store and kernel (cas_sandbox::probes), not per process.
            let cache = store_root.join("probes");
            cas_sandbox::cached_probe(&cache, "bwrap", || {
                cas_sandbox::check_available().map_err(|e| e.to_string())
            })
        })
        .clone()
        .map_err(|message| BuildError::Other {
            element: el.name.clone(),
            message,
        })
}

pub(crate) fn check_shell(el: &Element, dirs: &[PathBuf]) -> Result<()> {
    cas_sandbox::check_shell_in(dirs).map_err(|_| BuildError::NoShell {
        element: el.name.clone(),
    })
}

impl Engine<'_> {
    /// An interactive shell in `id`'s sandbox: its sysroot view (every staged
    /// dependency must be built), and a build directory (`reopen`: a failed
    /// build's, kept as it was; otherwise a fresh one with the sources staged).
    /// Nothing is recorded.
    pub fn shell(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
        reopen: Option<&Path>,
        command: &[String],
    ) -> Result<cas_sandbox::Outcome> {
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
                message: format!(
                    "dependency {missing} is not built; run `cas build {}` first",
                    el.name
                ),
            });
        };
        let dir = if let Some(root) = reopen {
            BuildDir {
                root: root.to_path_buf(),
            }
        } else {
            let dir = BuildDir::unique(
                &self.store.root().join("builds"),
                &format!(
                    "shell-{}-{}-",
                    crate::builddir::safe_name(&el.name),
                    &key.to_hex()[..16]
                ),
            )
            .map_err(io(
                &el.name,
                "cannot create build directory in",
                self.store.root().join("builds"),
            ))?;
            self.fetch_sources(el)?;
            // with a workspace: its build directory, as the last build left it
            self.link_workspace_build(el, &dir)?;
            self.stage_sources(el, &inputs, &dir.build())?;
            dir
        };
        let sysroot = crate::sysroot::stage(self.store, &el.name, &self.layers(&staged))?;
        let root = Root::read_only(&sysroot);
        check_shell(el, &root.dirs())?;
        let jobs = self.max_jobs.to_string();
        let mut spec = sandbox_spec(&inputs, root, &dir, &jobs);
        spec.binfmt = cas_sandbox::emulator::private_registration(&root.dirs());
        spec.env
            .insert("PS1".into(), format!("[cas {}] \\w $ ", el.name));
        // an interactive shell, or one command run by it (`cas shell X -- CMD`)
        let argv = if command.is_empty() {
            vec!["/bin/sh".to_string(), "-i".to_string()]
        } else {
            vec!["/bin/sh".to_string(), "-c".to_string(), command.join(" ")]
        };
        Ok(cas_sandbox::run(&spec, &argv, Io::Inherit, &self.cancel)?)
    }
}

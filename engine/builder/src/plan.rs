//! Plan: the one place where keys are derived. It walks a closure in
//! dependency order and turns each element and the outputs it stages into
//! its [`KeyInputs`] and its [`ActionKey`] (spec/keys.md). It needs the store
//! and the local sources' digests, nothing else: no fetcher, no reporter, no
//! sandbox. The build's cache pre-pass, each step, `show`, `pull`, `push`,
//! `explain`, `check` and `shell` all derive keys through here.

use std::collections::HashMap;

use cas_format::{ElementId, Loaded};
use cas_store::{ActionKey, Digest, Store, TreeDigest};

use crate::error::{BuildError, Result};
use crate::keys::{KeyInputs, SandboxSettings};
use crate::sources::{identities, LocalDigests};

/// The fixed host name and umask of every sandbox (spec/sandbox.md); they
/// are defined by the sandbox and enter every key.
pub use cas_sandbox::{DEFAULT_HOSTNAME as HOSTNAME, UMASK};

/// What a step stages: each dependency with its output, in staging order.
pub type Staged = Vec<(ElementId, TreeDigest)>;

/// A step whose key is known.
#[derive(Debug, Clone)]
pub struct Keyed {
    pub staged: Staged,
    pub inputs: std::sync::Arc<KeyInputs>,
    pub key: ActionKey,
}

/// One element of a walk.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: ElementId,
    /// `None` when something it stages has no known output; with
    /// [`Walk::partial`], the inputs are then computed with the zero digest
    /// in place of each unknown output.
    pub keyed: Option<Keyed>,
    /// Partial inputs (unknown outputs as zero digests), for `explain`.
    pub partial: Option<KeyInputs>,
    /// The output the walk's resolver found for the key.
    pub output: Option<TreeDigest>,
}

/// How to walk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Walk {
    /// Also compute the inputs of elements whose key is unknown.
    pub partial: bool,
    /// One element at a time, in closure order (for a resolver whose
    /// messages come in that order: `cas pull`).
    pub in_order: bool,
}

/// How a step over a foreign sysroot runs (spec/keys.md, `emulator`).
#[derive(Debug, Clone)]
pub struct Emulation {
    /// The sysroot's architecture (of its `/bin/sh`).
    pub arch: String,
    pub emulator:
        std::result::Result<cas_sandbox::emulator::Emulator, cas_sandbox::emulator::NoEmulator>,
}

impl Emulation {
    /// `emulator` in the key: the architecture, then the interpreter's
    /// blake3 and argv[0] convention, or `unavailable` (spec/keys.md).
    pub fn key_values(&self) -> Vec<String> {
        match &self.emulator {
            Ok(e) => std::iter::once(self.arch.clone())
                .chain(e.key_values())
                .collect(),
            Err(_) => vec![self.arch.clone(), "unavailable".into()],
        }
    }
}

/// What a walk asks of its caller: the outputs of the keyed elements of one
/// wave (`None` where there is none yet), in the order asked.
pub type Resolve<'r> = dyn FnMut(&[(ElementId, &Keyed)]) -> Result<Vec<Option<TreeDigest>>> + 'r;

/// The narrowest wave of a walk whose keys are derived in parallel.
const PARALLEL_WAVE: usize = 4;

/// Derives keys for the elements of one load.
pub struct Planner<'a> {
    pub store: &'a Store,
    pub loaded: &'a Loaded,
    /// Tree digests of local sources, computed once per run.
    pub locals: LocalDigests,
    /// Trees read to find a sysroot's `/bin/sh` (one read per tree per run).
    pub trees: cas_linkcheck::Indexes,
    /// The last key derived for each element, with what it staged: a step
    /// asked for its key again (the run's cache pass, then the step itself)
    /// is answered without deriving it twice.
    derived: std::sync::Mutex<HashMap<ElementId, Keyed>>,
    /// How each distinct `/bin/sh` of the run's sysroots runs (read once).
    shells: std::sync::Mutex<HashMap<cas_store::BlobDigest, Option<Emulation>>>,
}

impl<'a> Planner<'a> {
    pub fn new(store: &'a Store, loaded: &'a Loaded) -> Planner<'a> {
        Planner {
            store,
            loaded,
            locals: LocalDigests::default(),
            trees: cas_linkcheck::Indexes::default(),
            derived: std::sync::Mutex::default(),
            shells: std::sync::Mutex::default(),
        }
    }

    /// What `id` stages, with the outputs `outputs` knows; `None` if one is
    /// unknown.
    pub fn staged(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Option<Staged> {
        self.loaded
            .staged(id)
            .into_iter()
            .map(|d| outputs(d).map(|t| (d, t)))
            .collect()
    }

    /// The key of `id` given what it stages (derived once per `staged`).
    pub fn keyed(&self, id: ElementId, staged: Staged) -> Result<Keyed> {
        let derived =
            |m: &HashMap<ElementId, Keyed>| m.get(&id).filter(|k| k.staged == staged).cloned();
        if let Some(k) = derived(&self.lock_derived()) {
            return Ok(k);
        }
        let keyed = self.derive(id, staged)?;
        self.lock_derived().insert(id, keyed.clone());
        Ok(keyed)
    }

    /// The key of `id` when every output it stages is known.
    pub fn key(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Result<Option<Keyed>> {
        match self.staged_if_keyed(id, outputs) {
            Some(staged) => self.keyed(id, staged).map(Some),
            None => Ok(None),
        }
    }

    /// What `id` stages when it can have a key: every output it stages is
    /// known, and its sources are ones cas can fetch (an element with
    /// others is shown, never built; building it is refused with why, by
    /// `inputs`).
    fn staged_if_keyed(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
    ) -> Option<Staged> {
        if !self.loaded.element(id).unsupported.is_empty() {
            return None;
        }
        self.staged(id, outputs)
    }

    fn derive(&self, id: ElementId, staged: Staged) -> Result<Keyed> {
        let inputs = self.inputs(id, &staged)?;
        let key = inputs.key();
        Ok(Keyed {
            staged,
            inputs: std::sync::Arc::new(inputs),
            key,
        })
    }

    fn lock_derived(&self) -> std::sync::MutexGuard<'_, HashMap<ElementId, Keyed>> {
        self.derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every element of the closure of `targets`, in dependency order, with
    /// its key where the outputs below it are known. `resolve` gives the
    /// output of each key it is asked about (a local result, a remote one,
    /// a pull...), or none, in the order asked. A key that cannot be derived
    /// is an error (the first in closure order).
    ///
    /// A key needs the outputs of everything staged, so the closure is
    /// walked in waves (`scheduler::waves` over the direct dependencies,
    /// through which everything staged is reached): each wave's keys are
    /// derived in parallel, then resolved together (one read of the action
    /// cache). [`Walk::in_order`] makes each element a wave of its own.
    pub fn walk(
        &self,
        targets: &[ElementId],
        how: Walk,
        resolve: &mut Resolve<'_>,
    ) -> Result<Vec<Step>> {
        let (steps, error) = self.walk_with(targets, how, resolve, true)?;
        match error {
            Some(e) => Err(e),
            None => Ok(steps),
        }
    }

    /// [`Planner::walk`] that goes on past an element whose key cannot be
    /// derived: that element, and what stages it, get no key, and the first
    /// such error in closure order comes back beside the steps (the build's
    /// cache pass: the scheduler meets each error again, with its element).
    /// An error of `resolve` ends the walk.
    pub fn walk_on(
        &self,
        targets: &[ElementId],
        how: Walk,
        resolve: &mut Resolve<'_>,
    ) -> Result<(Vec<Step>, Option<BuildError>)> {
        self.walk_with(targets, how, resolve, false)
    }

    /// A walk; with `stop`, it ends once every element before the first
    /// error (in closure order) is walked, as a walk in closure order would
    /// (nothing after it is resolved: `cas pull` downloads nothing more).
    fn walk_with(
        &self,
        targets: &[ElementId],
        how: Walk,
        resolve: &mut Resolve<'_>,
        stop: bool,
    ) -> Result<(Vec<Step>, Option<BuildError>)> {
        use rayon::prelude::*;
        let closure = self.loaded.closure(targets);
        let waves: Vec<Vec<usize>> = if how.in_order {
            (0..closure.len()).map(|i| vec![i]).collect()
        } else {
            let pos: HashMap<ElementId, usize> =
                closure.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            let waits: Vec<Vec<usize>> = closure
                .iter()
                .map(|id| {
                    let el = self.loaded.element(*id);
                    el.build_depends
                        .iter()
                        .chain(&el.depends)
                        .chain(&el.runtime_depends)
                        .filter_map(|d| pos.get(d).copied())
                        .collect()
                })
                .collect();
            crate::scheduler::waves(&waits)
        };
        let mut outputs: HashMap<ElementId, TreeDigest> = HashMap::new();
        let mut steps: Vec<Option<Step>> = (0..closure.len()).map(|_| None).collect();
        let mut first_error: Option<(usize, BuildError)> = None;
        // every element before this one in closure order is walked
        let mut walked_below = 0;
        for wave in waves {
            if let Some((at, _)) = &first_error {
                if stop && walked_below >= *at {
                    break;
                }
            }
            let derive = |&i: &usize| self.derive_for_walk(closure[i], how, &outputs);
            // a narrow wave (a chain) is not worth handing to the pool
            let derived: Vec<Result<_>> = if wave.len() < PARALLEL_WAVE {
                wave.iter().map(derive).collect()
            } else {
                wave.par_iter().map(derive).collect()
            };
            let derived: Vec<(Option<Keyed>, Option<KeyInputs>)> = wave
                .iter()
                .zip(derived)
                .map(|(&i, d)| {
                    d.unwrap_or_else(|e| {
                        if first_error.as_ref().is_none_or(|(at, _)| i < *at) {
                            first_error = Some((i, e));
                        }
                        (None, None)
                    })
                })
                .collect();
            let asked: Vec<(ElementId, &Keyed)> = wave
                .iter()
                .zip(&derived)
                .filter_map(|(&i, (k, _))| k.as_ref().map(|k| (closure[i], k)))
                .collect();
            let found = if asked.is_empty() {
                Vec::new()
            } else {
                resolve(&asked)?
            };
            let mut found = found.into_iter();
            for (&i, (keyed, partial)) in wave.iter().zip(derived) {
                let id = closure[i];
                let output = keyed.as_ref().and_then(|_| found.next().flatten());
                if let Some(o) = output {
                    outputs.insert(id, o);
                }
                steps[i] = Some(Step {
                    id,
                    keyed,
                    partial,
                    output,
                });
            }
            while steps.get(walked_below).is_some_and(Option::is_some) {
                walked_below += 1;
            }
        }
        Ok((
            steps.into_iter().flatten().collect(),
            first_error.map(|(_, e)| e),
        ))
    }

    /// One element of a walk: its key if the outputs it stages are known,
    /// else (with [`Walk::partial`]) its inputs with the zero digest for
    /// each unknown output.
    fn derive_for_walk(
        &self,
        id: ElementId,
        how: Walk,
        outputs: &HashMap<ElementId, TreeDigest>,
    ) -> Result<(Option<Keyed>, Option<KeyInputs>)> {
        let keyed = self.key(id, &|d| outputs.get(&d).copied())?;
        let partial = match (&keyed, how.partial) {
            (None, true) => {
                let staged: Staged = self
                    .loaded
                    .staged(id)
                    .into_iter()
                    .map(|d| {
                        (
                            d,
                            outputs
                                .get(&d)
                                .copied()
                                .unwrap_or(TreeDigest(Digest([0; 32]))),
                        )
                    })
                    .collect();
                Some(self.inputs(id, &staged)?)
            }
            _ => None,
        };
        Ok((keyed, partial))
    }

    /// For a step that runs commands over a sysroot of another architecture
    /// than this machine's (its `/bin/sh`, read through the staged outputs):
    /// the emulator that will run them, or why there is none.
    pub fn emulation(
        &self,
        el: &cas_format::Element,
        staged: &[(ElementId, TreeDigest)],
    ) -> Option<Emulation> {
        // the behaviours that run commands: their phases, or a whole
        // root's integration commands
        let caps = crate::kinds::of(el).caps();
        if !caps.whole_root && (!caps.runs_commands || el.phases.iter().all(|(_, c)| c.is_empty()))
        {
            return None;
        }
        let union = cas_linkcheck::tree::Union {
            store: self.store,
            indexes: &self.trees,
            layers: staged.iter().map(|(_, t)| *t).collect(),
        };
        let sh = union.resolve_file("/bin/sh")?;
        // one read of each distinct `/bin/sh` per run (most steps share one)
        let known = self
            .shells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&sh.digest)
            .cloned();
        if let Some(e) = known {
            return e;
        }
        // a blob that could not be read is not remembered: read again later
        let e = self.emulation_of(&sh.digest)?;
        self.shells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(sh.digest, e.clone());
        e
    }

    /// How a step whose `/bin/sh` is blob `sh` runs (see
    /// [`Planner::emulation`]); `None` when the blob cannot be read.
    #[allow(clippy::option_option)]
    fn emulation_of(&self, sh: &cas_store::BlobDigest) -> Option<Option<Emulation>> {
        let mut head = [0u8; 64];
        let n = std::io::Read::read(
            &mut std::fs::File::open(self.store.blob_path(sh)).ok()?,
            &mut head,
        )
        .ok()?;
        Some(Self::emulation_for(&head[..n]))
    }

    /// How a step whose `/bin/sh` starts with `head` runs.
    fn emulation_for(head: &[u8]) -> Option<Emulation> {
        let n = head.len();
        let arch = cas_sandbox::emulator::elf_arch(&head[..n])?;
        if cas_sandbox::emulator::runs_natively(arch) {
            return None;
        }
        Some(Emulation {
            arch: arch.to_string(),
            emulator: cas_sandbox::emulator::emulator_for(&head[..n]),
        })
    }

    /// The key inputs of `id`, given the outputs of its staged dependencies
    /// (in staging order): its kind's behaviour and the fields it puts into
    /// the key (spec/keys.md).
    pub fn inputs(&self, id: ElementId, staged: &[(ElementId, TreeDigest)]) -> Result<KeyInputs> {
        let el = self.loaded.element(id);
        if !el.unsupported.is_empty() {
            return Err(BuildError::Unsupported {
                element: el.name.clone(),
                reasons: el.unsupported.join("; "),
            });
        }
        let sources = identities(self.store, &self.locals, &el.sources).map_err(|source| {
            BuildError::Source {
                element: el.name.clone(),
                source,
            }
        })?;
        let var = |name: &str, default: &str| {
            el.variables
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        let mut config = crate::kinds::key_config(self.loaded, el, staged);
        if let Some(e) = self.emulation(el, staged) {
            // a foreign sysroot runs under an emulator: which one is in the key
            config.insert("emulator".into(), e.key_values());
        }
        Ok(KeyInputs {
            kind: el.kind.clone(),
            behaviour: el.behaviour().name().to_owned(),
            phases: el.phases.clone(),
            environment: el.environment.clone(),
            sandbox: SandboxSettings {
                arch: el.sandbox.build_arch.clone(),
                uid: el.sandbox.build_uid,
                gid: el.sandbox.build_gid,
                network: false,
                build_root: var("build-root", "/build"),
                install_root: var("install-root", "/install"),
                hostname: HOSTNAME.into(),
                umask: UMASK,
            },
            config,
            sources,
            dependencies: staged.iter().map(|(_, d)| *d.digest().as_bytes()).collect(),
        })
    }
}

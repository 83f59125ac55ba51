//! Behaviours: what a kind does beyond data. Each is one module, one unit:
//! its name, its capabilities, the checks and defaults of its `config:`,
//! the fields it puts into the key, how it assembles its output through
//! [`Stage`] (its only door into the engine), and what `owns` and the SBOM
//! need to know of its output. [`REGISTRY`] lists the built-in ones; a new
//! behaviour is its module, its kind file in `elements/`, and one line
//! there.
//!
//! - [`import`]: no sandbox; the output is the staged sources.
//! - [`sandboxed`]: the phases in a sandbox over the staged sysroot; the
//!   output is `%{install-root}`.
//! - [`compose`]: the staged outputs filtered by split rules and merged;
//!   integration commands on a private copy.
//! - [`script`]: commands over a root laid out from the dependencies; the
//!   output is one directory.
//! - [`stack`]: no output.
//! - [`filter`]: one dependency's output filtered by split-rule domains.
//! - [`manifest`]: a list of every file its dependencies stage, with digests.
//! - [`stage`]: the [`Stage`] of a step of the engine.

pub mod compose;
pub mod filter;
pub mod import;
pub mod manifest;
pub mod sandboxed;
pub mod script;
pub mod stack;
pub(crate) mod stage;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use cas_format::{Element, ElementId, Error, LoadCheck, Loaded};
use cas_store::{Store, TreeDigest};

use crate::error::{BuildError, Result};
use crate::sysroot::Layer;

/// The built-in behaviours.
pub static REGISTRY: &[&dyn Kind] = &[
    &import::Import,
    &sandboxed::Sandboxed,
    &compose::Compose,
    &script::Script,
    &stack::Stack,
    &filter::Filter,
    &manifest::Manifest,
];

/// One behaviour.
pub trait Kind: Sync {
    /// Its name, as kind files write it (`behaviour:`).
    fn name(&self) -> &'static str;
    fn caps(&self) -> Caps;
    /// A built-in kind file it brings (name, YAML), for behaviours whose
    /// kind file `elements/`'s list (cas-format's `BUILTIN`) does not hold.
    fn kind_file(&self) -> Option<(&'static str, &'static str)> {
        None
    }
    /// Its config keys that are structured data (lists of mappings,
    /// replaced as a whole), in every kind of it.
    fn structured_config(&self) -> &'static [&'static str] {
        &[]
    }
    /// Checks of one element's configuration at load (dependencies are
    /// checked first), which may complete it; the errors are the load's.
    fn check(&self, _load: &mut LoadCheck<'_>, _id: ElementId, _errors: &mut Vec<Error>) {}
    /// What it puts into the key beyond phases, environment and sandbox
    /// settings (`config` in spec/keys.md).
    fn key_config(&self, _cx: &KeyCx<'_>, _config: &mut BTreeMap<String, Vec<String>>) {}
    /// Its output, for a step whose key was a miss.
    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest>;
    /// Which staged elements' files its output is made of, and which of
    /// their files it keeps (`cas owns`); `None`: only its own.
    fn parts(&self, _loaded: &Loaded, _id: ElementId) -> Option<Parts> {
        None
    }
    /// Whether its output contains dependency `dep`'s (the SBOM's
    /// `contains` edge, against `build-tool`).
    fn contains(&self, _loaded: &Loaded, _el: &Element, _dep: ElementId) -> bool {
        self.caps().made_of_staged
    }
}

/// What the engine does around a behaviour, by what it declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Caps {
    /// It runs commands of its own over what it stages: the architecture
    /// check, and an emulator for a foreign sysroot.
    pub runs_commands: bool,
    /// It merges what it stages into one root: overlap settings enter its
    /// key.
    pub merges_staged: bool,
    /// It makes files from what it stages (programs, libraries, a root):
    /// its output goes through the libraries check.
    pub makes_binaries: bool,
    /// Its output is a whole root (a compose): checked on its own, its
    /// provenance recorded, an emulator whenever it integrates.
    pub whole_root: bool,
    /// Its output is made of what it stages (the SBOM's `contains`).
    pub made_of_staged: bool,
    /// It has an output (a stack has none: depending on it is depending
    /// on its dependencies).
    pub has_output: bool,
    /// An open workspace of it builds incrementally.
    pub incremental: bool,
}

/// What [`Kind::key_config`] reads.
pub struct KeyCx<'a> {
    pub loaded: &'a Loaded,
    pub el: &'a Element,
    /// Its staged dependencies' outputs, in staging order.
    pub staged: &'a [(ElementId, TreeDigest)],
}

/// The elements whose files an output is made of, and the domains kept.
#[derive(Debug, Clone)]
pub struct Parts {
    /// In the order to search them (the later-staged first).
    pub from: Vec<ElementId>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub include_orphans: bool,
}

/// Where a step's commands run.
pub enum Root<'a> {
    /// A read-only `/` made of these layers (only the build and install
    /// roots writable).
    ReadOnly(&'a [Layer]),
    /// This private directory, writable.
    Writable(&'a Path),
}

/// The commands a step runs.
pub enum Commands<'a> {
    /// The element's phases, in order.
    Phases,
    /// These `(phase, command)`s.
    These(&'a [(String, String)]),
}

/// A step as a behaviour sees it: the only door into the engine.
pub trait Stage {
    /// The element built.
    fn element(&self) -> &Element;
    /// An element of the load (a staged dependency).
    fn element_of(&self, id: ElementId) -> &Element;
    /// The element of the load named `name` (as a dependency names it).
    fn find(&self, name: &str) -> Option<ElementId>;
    /// The outputs it stages, in staging order.
    fn staged(&self) -> &[(ElementId, TreeDigest)];
    fn store(&self) -> &Store;
    /// The step's log.
    fn log(&mut self) -> &mut dyn Write;
    /// Stages its sources into the build directory, and returns it.
    fn stage_sources(&mut self) -> Result<PathBuf>;
    /// Element `id`'s output `tree` as a layer.
    fn layer(&self, id: ElementId, tree: TreeDigest) -> Layer;
    /// Merges `layers` into one stored tree.
    fn merge(&mut self, layers: &[Layer]) -> Result<TreeDigest>;
    /// Runs commands in one sandbox over `root`.
    fn run(&mut self, root: Root<'_>, commands: Commands<'_>) -> Result<()>;
    /// Its phases over everything it stages, read-only, its sources
    /// staged; the output is `%{install-root}`. Here or on a remote
    /// worker: the engine's choice, never the behaviour's.
    fn execute(&mut self) -> Result<TreeDigest>;
    /// A private directory for a writable root.
    fn scratch(&self) -> PathBuf;
    /// The host directory of `output` (a path in the sandbox), given the
    /// writable root the commands ran over, if any.
    fn output_dir(&self, output: &str, root: Option<&Path>) -> Result<PathBuf>;

    /// Every staged output as a layer.
    fn layers(&self) -> Vec<Layer> {
        self.staged()
            .iter()
            .map(|(d, t)| self.layer(*d, *t))
            .collect()
    }
    /// An error of this step.
    fn fail(&self, message: String) -> BuildError {
        BuildError::Other {
            element: self.element().name.clone(),
            message,
        }
    }
}

/// The behaviour named `name`.
pub fn lookup(name: &str) -> Option<&'static dyn Kind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// An element's behaviour. Every element a load with [`Behaviours`] gives
/// has one of the registry; any other gets [`Unknown`], which builds nothing.
pub fn of(el: &Element) -> &'static dyn Kind {
    lookup(el.behaviour().name()).unwrap_or(&Unknown)
}

/// A behaviour no registry has (an element loaded without one).
pub struct Unknown;

impl Kind for Unknown {
    fn name(&self) -> &'static str {
        "unknown"
    }
    fn caps(&self) -> Caps {
        Caps::default()
    }
    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        let b = stage.element().behaviour().name().to_string();
        Err(stage.fail(format!("no behaviour `{b}` in this cas")))
    }
}

/// The registry as the loader asks it (cas_format::LoadOptions::behaviours).
pub struct Behaviours;

impl cas_format::Behaviours for Behaviours {
    fn names(&self) -> Vec<&'static str> {
        REGISTRY.iter().map(|k| k.name()).collect()
    }
    fn kind_files(&self) -> Vec<(&'static str, &'static str)> {
        REGISTRY.iter().filter_map(|k| k.kind_file()).collect()
    }
    fn structured_config(&self, name: &str) -> Vec<&'static str> {
        lookup(name).map_or_else(Vec::new, |k| k.structured_config().to_vec())
    }
    fn check(&self, load: &mut LoadCheck<'_>) -> Vec<(ElementId, Error)> {
        let mut all = Vec::new();
        for id in load.in_order() {
            let mut errors = Vec::new();
            of(load.element(id)).check(load, id, &mut errors);
            all.extend(errors.into_iter().map(|e| (id, e)));
        }
        all
    }
}

/// The behaviour-specific part of an element's key inputs (`config` in
/// spec/keys.md), given what it stages: its behaviour's fields, then what
/// the engine adds by the behaviour's capabilities.
pub(crate) fn key_config(
    loaded: &Loaded,
    el: &Element,
    staged: &[(ElementId, TreeDigest)],
) -> BTreeMap<String, Vec<String>> {
    let mut config = BTreeMap::new();
    let kind = of(el);
    kind.key_config(&KeyCx { loaded, el, staged }, &mut config);
    let caps = kind.caps();
    if caps.merges_staged {
        overlap_key_config(loaded, staged, &mut config);
        if el.overlaps_allowed {
            // BuildStream's default: a later element replaces earlier files
            config.insert("overlaps".into(), vec!["allowed".into()]);
        }
    }
    if crate::checks::libraries_checked(el) && el.checks.libraries != cas_format::Severity::Warn {
        // the libraries check's setting, when not the default (spec/keys.md)
        config.insert(
            "check-libraries".into(),
            vec![el.checks.libraries.name().into()],
        );
    }
    if crate::checks::architecture_checked(el) {
        // the architecture check's setting, when not the default (spec/keys.md)
        if el.checks.architecture != cas_format::Severity::Error {
            config.insert(
                "check-architecture".into(),
                vec![el.checks.architecture.name().into()],
            );
        }
        if !el.checks.architecture_exempt.is_empty() {
            config.insert(
                "architecture-exempt".into(),
                el.checks.architecture_exempt.clone(),
            );
        }
    }
    if let Some(w) = &el.workdir {
        // only when the kind says where commands run (spec/keys.md)
        config.insert("workdir".into(), vec![w.clone()]);
    }
    config
}

/// `overlap-whitelist`: each staged element's whitelist entry as `i\tglob`
/// (its staging position), present only when one is declared, so that the
/// keys of projects without overlaps are unchanged (spec/keys.md).
fn overlap_key_config(
    loaded: &Loaded,
    staged: &[(ElementId, TreeDigest)],
    config: &mut BTreeMap<String, Vec<String>>,
) {
    let entries: Vec<String> = staged
        .iter()
        .enumerate()
        .flat_map(|(i, (d, _))| {
            loaded
                .element(*d)
                .public
                .overlap_whitelist
                .iter()
                .map(move |p| format!("{i}\t{p}"))
        })
        .collect();
    if !entries.is_empty() {
        config.insert("overlap-whitelist".into(), entries);
    }
}

/// `include`, `exclude` and `include-orphans`: what compose and filter keep.
pub(crate) fn domains_config(
    include: &[String],
    exclude: &[String],
    include_orphans: bool,
    config: &mut BTreeMap<String, Vec<String>>,
) {
    config.insert("include".into(), include.to_vec());
    config.insert("exclude".into(), exclude.to_vec());
    config.insert("include-orphans".into(), vec![include_orphans.to_string()]);
}

#[cfg(test)]
mod tests;

//! Loading: find the project, read the kinds, read element files wave by
//! wave (in parallel) following dependencies, resolve every element, check
//! the graph. Every error of every file is collected before returning.
//!
//! - `kinds`: the kinds and defaults of one project (either format)
//! - `junctions`: the projects of a load and the junctions to them
//! - `elements`: element files, wave by wave, in parallel
//! - `resolve`: every element against its kind and project; what loads
//! - `checks`: what is said once (a plugin kind cas lacks)
//! - `inputs`: what a load read ([`Loaded::inputs`], for the no-op memo)
//!
//! What a behaviour checks of its elements' `config:` is the behaviour's
//! (crate cas-builder's kinds, through [`LoadOptions::behaviours`]).

mod checks;
mod elements;
mod inputs;
mod junctions;
mod kinds;
mod resolve;

pub use inputs::{Input, Read};
pub use junctions::JunctionSources;

use checks::dedupe_plugin_errors;
use elements::read_elements;
use junctions::{ensure_junction, ProjectCx, Projects};
use kinds::load_kinds;
use resolve::{loadable, resolve_all};

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use crate::bst::{self, Includes};
use crate::diagnostics::{Diagnostics, Error, FileId, FileSeen, Files, SourceFile, Span};
use crate::element::{normalise_name, Element, ElementId};
use crate::graph;
use crate::kind::Kind;
use crate::project::{find_project_file, Project, BST_PROJECT_FILE};
use crate::yaml;

/// What a load takes besides its targets.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// BuildStream project options (`-o NAME VALUE`), in the order given.
    pub options: Vec<(String, String)>,
    /// Option values of the user configuration by project name (before
    /// `options`; the top project's only).
    pub project_options: std::collections::BTreeMap<String, Vec<(String, String)>>,
    /// Where the subprojects of junctions with fetched sources (tar, git)
    /// are; without it, only junctions to a local directory load.
    pub junctions: Option<std::sync::Arc<dyn JunctionSources>>,
    /// On errors, still return the part of the graph that loads: every
    /// element without errors whose dependencies have none, with the
    /// errors in [`Loaded::problems`] (`cas show`; never for a build).
    pub partial: bool,
    /// Keep every element's own sources, open workspaces or not
    /// (`cas workspace reset|close`).
    pub ignore_workspaces: bool,
    /// The architecture built for (`--arch`): `%{target-arch}` and the
    /// default `build-arch`; `None`: this machine's.
    pub target_arch: Option<String>,
    /// The behaviours kinds may name, their kind files and their checks
    /// (crate cas-builder's registry of kinds); `None`: any name, no checks.
    pub behaviours: Option<std::sync::Arc<dyn crate::settings::Behaviours>>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("options", &self.options)
            .field("project_options", &self.project_options)
            .field("junctions", &self.junctions.is_some())
            .field("partial", &self.partial)
            .field("ignore_workspaces", &self.ignore_workspaces)
            .field("target_arch", &self.target_arch)
            .field("behaviours", &self.behaviours.is_some())
            .finish()
    }
}

/// Files larger than this are rejected.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The result of a load: the project, every element of the targets' closure
/// (indexed by `ElementId`), and the targets.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: Project,
    /// All loaded elements; `elements[id.index()].id == id`; sorted by name.
    pub elements: Vec<Element>,
    pub targets: Vec<ElementId>,
    /// Every kind known to the project (built-in and project kinds).
    pub kinds: BTreeMap<String, Kind>,
    files: Files,
    by_name: HashMap<String, ElementId>,
    /// With `LoadOptions::partial`: every error of the load (the elements
    /// they concern, and their dependents, are not in `elements`).
    pub problems: Vec<Error>,
    /// With `LoadOptions::partial`: how many elements were left out.
    pub left_out: usize,
    /// Everything each element needs, transitively (`show --format`'s
    /// dependency order asks it often): computed once per element, on demand.
    pub(crate) below: NeedsCache,
}

/// What each element needs, transitively: derived data, computed on
/// demand; a clone of a load starts empty.
#[derive(Debug, Default)]
pub(crate) struct NeedsCache(pub(crate) std::sync::Mutex<HashMap<ElementId, Needs>>);

/// Everything one element needs.
pub(crate) type Needs = std::sync::Arc<std::collections::HashSet<ElementId>>;

impl Clone for NeedsCache {
    fn clone(&self) -> Self {
        NeedsCache::default()
    }
}

impl Loaded {
    pub fn element(&self, id: ElementId) -> &Element {
        &self.elements[id.index()]
    }
    /// The element with this name (relative to the element path).
    pub fn find(&self, name: &str) -> Option<ElementId> {
        normalise_name(name).and_then(|n| self.by_name.get(&n).copied())
    }
    /// The elements whose outputs are staged into `id`'s sysroot, in staging
    /// order: each of its build-depends and depends in the order written,
    /// preceded by its runtime closure (spec/format.md, "The graph").
    pub fn staged(&self, id: ElementId) -> Vec<ElementId> {
        graph::staging_order(&self.elements, id)
    }
    /// Where the value `id` sees for variable `name` was set, as
    /// `file:line:col (the element|kind K|the project)`, the layer that
    /// wins (spec/format.md, Layering); `None` for the built-in defaults and
    /// the variables cas sets itself.
    pub fn variable_origin(&self, id: ElementId, name: &str) -> Option<String> {
        let el = self.element(id);
        if let Some((_, span)) = el.variable_spans.iter().rev().find(|(n, _)| n == name) {
            return Some(format!("{} (the element)", self.files.location(*span)));
        }
        if let Some(kind) = self.kinds.get(&el.kind) {
            if let Some((_, v)) = kind
                .layer
                .variables
                .iter()
                .rev()
                .find(|(k, _)| k.value == name)
            {
                return Some(format!(
                    "{} (kind {})",
                    self.files.location(v.span),
                    el.kind
                ));
            }
        }
        self.project
            .raw_variables
            .iter()
            .rev()
            .find(|(k, _)| k.value == name)
            .map(|(_, v)| format!("{} (the project)", self.files.location(v.span)))
    }
    /// What comes with `id` when it is installed: its runtime dependencies,
    /// transitively, in staging order (without `id`).
    pub fn runtime_closure(&self, id: ElementId) -> Vec<ElementId> {
        graph::runtime_closure(&self.elements, id)
    }
    /// Everything needed to build `targets` (and their runtime dependencies),
    /// dependencies first, ties broken by name.
    pub fn closure(&self, targets: &[ElementId]) -> Vec<ElementId> {
        graph::topo_order(&self.elements, &graph::closure_set(&self.elements, targets))
    }
    /// The files read by the load (to render errors that point into them).
    pub fn files(&self) -> &Files {
        &self.files
    }
    /// An error pointing at the element's `kind:` line, for problems found
    /// later (e.g. "two dependencies install different content at /usr/bin/x").
    pub fn error_at_element(
        &self,
        id: ElementId,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Error {
        self.files
            .error(self.element(id).origin.kind_span, message, label)
    }
    /// An error pointing at the line of `id`'s file that names dependency
    /// `dep` (falls back to the `kind:` line when `dep` is not a direct dependency).
    pub fn error_at_dependency(
        &self,
        id: ElementId,
        dep: ElementId,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Error {
        let e = self.element(id);
        let span = e
            .origin
            .deps
            .iter()
            .find(|(_, d, _)| *d == dep)
            .map_or(e.origin.kind_span, |(_, _, s)| *s);
        self.files.error(span, message, label)
    }
}

/// Each behaviour's checks of its elements' configuration (once every
/// element is resolved).
fn check_behaviours(
    opts: &LoadOptions,
    files: &Files,
    elements: &mut [Element],
    ids: &HashMap<String, ElementId>,
) -> Vec<(ElementId, Error)> {
    match &opts.behaviours {
        Some(b) => b.check(&mut crate::settings::LoadCheck::new(elements, files, ids)),
        None => Vec::new(),
    }
}

/// The machine architecture, as `host-arch` spells it.
pub fn host_arch() -> &'static str {
    std::env::consts::ARCH
}

/// Lexically normalise an absolute path (no filesystem access).
fn normalise_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn display_name(path: &Path, cwd: &Path) -> String {
    match path.strip_prefix(cwd) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => path.to_string_lossy().into_owned(),
    }
}

/// Read a file for parsing. A non-UTF-8 file gives an error at its first bad byte.
pub(crate) fn read_source(path: &Path, name: String) -> Result<SourceFile, (SourceFile, Error)> {
    read_source_seen(path, name, std::fs::metadata(path))
}

/// [`read_source`] with the file's metadata already read (symlinks followed).
pub(crate) fn read_source_seen(
    path: &Path,
    name: String,
    meta: std::io::Result<std::fs::Metadata>,
) -> Result<SourceFile, (SourceFile, Error)> {
    let fail = |msg: String| {
        let f = SourceFile::new(path.to_path_buf(), name.clone(), String::new());
        let e = Error::plain(format!("{name}: {msg}"));
        (f, e)
    };
    let size = match meta {
        Ok(m) if m.len() > MAX_FILE_SIZE => {
            return Err(fail(format!(
                "file too large ({} bytes; at most {MAX_FILE_SIZE})",
                m.len()
            )))
        }
        Ok(m) if !m.is_file() => return Err(fail("not a regular file".into())),
        Ok(m) => m.len(),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    // opened without blocking and never as a terminal (a FIFO or a device
    // put in its place meanwhile is refused by the open file's own stat,
    // which is also the identity the text is known by); the size just seen
    // sizes the buffer, and a file that grew since is still read whole, up
    // to the limit
    let read = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .and_then(|f| {
                let meta = f.metadata()?;
                if !meta.is_file() {
                    return Ok(None);
                }
                let mut bytes = Vec::with_capacity(size as usize + 1);
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&f, MAX_FILE_SIZE + 1),
                    &mut bytes,
                )?;
                // changed while it was read: not the file that was opened
                let after = FileSeen::of(&f.metadata()?);
                let seen = FileSeen::of(&meta);
                Ok(Some((bytes, (after == seen).then_some(seen))))
            })
    };
    let (bytes, seen) = match read {
        Ok(None) => return Err(fail("not a regular file".into())),
        Ok(Some((b, _))) if b.len() as u64 > MAX_FILE_SIZE => {
            return Err(fail(format!(
                "file too large (more than {MAX_FILE_SIZE} bytes)"
            )))
        }
        Ok(Some(read)) => read,
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    match String::from_utf8(bytes) {
        Ok(text) => {
            let f = SourceFile::new(path.to_path_buf(), name, text);
            Ok(match seen {
                Some(seen) => f.with_seen(seen),
                None => f,
            })
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let f = SourceFile::new(path.to_path_buf(), name, text);
            let span = Span::new(FileId(u32::MAX), at, at + '\u{FFFD}'.len_utf8());
            let err = Error::at(&f, span, "file is not valid UTF-8", "invalid byte here")
                .with_help("element files are UTF-8 text");
            Err((f, err))
        }
    }
}

/// Read and parse one file into the next slot of `files`.
fn read_and_parse(
    files: &mut Files,
    path: &Path,
    name: String,
    errors: &mut Vec<Error>,
) -> (FileId, Option<yaml::Node>) {
    let id = files.next_id();
    match read_source(path, name) {
        Ok(f) => {
            let root = match yaml::parse(&f, id) {
                Ok(root) => root,
                Err(es) => {
                    errors.extend(es);
                    None
                }
            };
            files.add(f);
            (id, root)
        }
        Err((f, e)) => {
            files.add(f);
            errors.push(e);
            (id, None)
        }
    }
}

/// The project that `dir` belongs to (the nearest `project.yaml` above it,
/// or the implicit project of `dir`), for commands that need its aliases
/// without loading elements (`cas deb lock`).
pub fn load_project(dir: &Path) -> Result<Project, Diagnostics> {
    let dir = normalise_path(&std::env::current_dir().unwrap_or_default().join(dir));
    let pf = find_project_file(&dir);
    let includes = Includes::default();
    read_project(
        &mut Files::default(),
        pf.as_deref(),
        &dir,
        &dir,
        &LoadOptions::default(),
        &includes,
        None,
    )
}

/// The project of `project_file` (read into `files`), or the implicit
/// project of `start_dir` when there is none; names shown relative to `cwd`.
fn read_project(
    files: &mut Files,
    project_file: Option<&Path>,
    start_dir: &Path,
    cwd: &Path,
    opts: &LoadOptions,
    includes: &Includes,
    junctions: Option<bst::JunctionRoots>,
) -> Result<Project, Diagnostics> {
    let Some(pf) = project_file else {
        return Ok(Project::implicit(start_dir));
    };
    let mut errors: Vec<Error> = Vec::new();
    let (id, root) = read_and_parse(files, pf, display_name(pf, cwd), &mut errors);
    if !errors.is_empty() {
        return Err(failed(errors));
    }
    let file = files
        .get(id)
        .cloned()
        .unwrap_or_else(|| SourceFile::new(pf.to_path_buf(), String::new(), String::new()));
    if pf.file_name().is_some_and(|n| n == BST_PROJECT_FILE) {
        let given = bst::Given {
            values: opts
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), None))
                .collect(),
        };
        let p = bst::decode_project(
            &file,
            id,
            root,
            &given,
            &opts.project_options,
            includes,
            cwd,
            junctions,
        );
        includes.hand_to(files);
        return p.map_err(Diagnostics::new);
    }
    if !opts.options.is_empty() {
        return Err(Diagnostics::new(vec![Error::plain(format!(
            "`-o {}`: options belong to BuildStream projects (project.conf); {} is a cas project",
            opts.options[0].0,
            display_name(pf, cwd)
        ))]));
    }
    Project::decode(&file, id, root.as_ref()).map_err(Diagnostics::new)
}

/// Load the targets (element files or element names) and everything they depend on.
#[allow(
    clippy::print_stderr,
    reason = "CAS_FORMAT_TIMING=1 prints the time of each phase on stderr"
)]
pub fn load(targets: &[String], cwd: &Path) -> Result<Loaded, Diagnostics> {
    load_with(targets, cwd, &LoadOptions::default())
}

/// [`load`] with options (BuildStream project options).
#[allow(
    clippy::print_stderr,
    reason = "CAS_FORMAT_TIMING=1 prints the time of each phase on stderr"
)]
pub fn load_with(
    targets: &[String],
    cwd: &Path,
    opts: &LoadOptions,
) -> Result<Loaded, Diagnostics> {
    let cwd = if cwd.is_absolute() {
        normalise_path(cwd)
    } else {
        normalise_path(&std::env::current_dir().unwrap_or_default().join(cwd))
    };
    let mut errors: Vec<Error> = Vec::new();
    let mut files = Files::default();
    if targets.is_empty() {
        return Err(Diagnostics::new(vec![Error::plain("no target given")]));
    }

    // 1. the project, from the first target
    let first = normalise_path(&cwd.join(&targets[0]));
    let start_dir = if first.is_file() {
        first.parent().map(Path::to_path_buf).unwrap_or(cwd.clone())
    } else {
        cwd.clone()
    };
    let project_file = find_project_file(&start_dir);
    let includes = Includes::default();
    // project.conf's includes through junctions are read in a second pass,
    // once the junctions the first pass names are loaded
    let no_roots = elements::Roots::default();
    let through_junctions = std::sync::Mutex::new(Vec::new());
    let no_broken = std::sync::Mutex::new(Vec::new());
    let project = read_project(
        &mut files,
        project_file.as_deref(),
        &start_dir,
        &cwd,
        opts,
        &includes,
        Some(bst::JunctionRoots {
            roots: &no_roots,
            wanted: &through_junctions,
            deps_of_broken: &no_broken,
        }),
    )?;

    // 2. the targets' names
    let mut target_names = Vec::new();
    for t in targets {
        if project.dialect == crate::project::Dialect::BuildStream && !t.ends_with(".bst") {
            errors.push(Error::plain(format!(
                "`{t}`: BuildStream element names end in `.bst`"
            )));
            continue;
        }
        let abs = normalise_path(&cwd.join(t));
        let name = if abs.is_file() {
            if find_project_file(abs.parent().unwrap_or(&cwd)) != project_file {
                errors.push(Error::plain(format!(
                    "`{t}` belongs to another project than `{}`",
                    targets[0]
                )));
                continue;
            }
            if let Some(n) = abs
                .strip_prefix(&project.element_path)
                .ok()
                .and_then(|r| normalise_name(&r.to_string_lossy()))
            {
                n
            } else {
                errors.push(
                    Error::plain(format!(
                        "`{t}` is not under the project's element path `{}`",
                        project.element_path.display()
                    ))
                    .with_help("element files live under `element-path` (project.yaml)"),
                );
                continue;
            }
        } else {
            match normalise_name(t) {
                Some(n) if project.element_path.join(&n).is_file() => n,
                // an element through a junction: found when its junction is loaded
                Some(n)
                    if project.dialect == crate::project::Dialect::BuildStream
                        && n.contains(':') =>
                {
                    n
                }
                _ => {
                    let mut e = Error::plain(format!(
                        "no element `{t}`: no such file, and no element of that name under `{}`",
                        display_name(&project.element_path, &cwd)
                    ));
                    if let Some(s) = suggest_name(&project.element_path, t) {
                        e = e.with_help(format!("did you mean `{s}`?"));
                    }
                    errors.push(e);
                    continue;
                }
            }
        };
        if !target_names.contains(&name) {
            target_names.push(name);
        }
    }
    if !errors.is_empty() {
        return Err(failed(errors));
    }

    // 3. kinds: built-in, then the project's
    let top_kinds = load_kinds(
        &mut files,
        &project,
        &cwd,
        opts.behaviours.as_deref(),
        &mut errors,
    );
    let mut projects = Projects {
        list: vec![ProjectCx {
            project,
            kinds: top_kinds,
            prefix: String::new(),
        }],
        by_junction: HashMap::new(),
        junction_sources: opts.junctions.clone(),
        behaviours: opts.behaviours.clone(),
        target_arch: opts.target_arch.clone(),
        overrides: HashMap::new(),
    };

    let through_junctions = through_junctions
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !through_junctions.is_empty() {
        let before = errors.len();
        for j in &through_junctions {
            ensure_junction(&mut files, &mut projects, j, &cwd, &includes, &mut errors);
        }
        if errors.len() > before {
            return Err(failed(errors));
        }
        let roots = elements::junction_roots(&projects).swap_remove(0);
        let again = std::sync::Mutex::new(Vec::new());
        let project = read_project(
            &mut files,
            project_file.as_deref(),
            &start_dir,
            &cwd,
            opts,
            &includes,
            Some(bst::JunctionRoots {
                roots: &roots,
                wanted: &again,
                deps_of_broken: &no_broken,
            }),
        )?;
        let mut project = project;
        project.first_pass_variables = Some(projects.list[0].project.raw_variables.clone());
        let kinds = load_kinds(
            &mut files,
            &project,
            &cwd,
            opts.behaviours.as_deref(),
            &mut errors,
        );
        projects.list[0].project = project;
        projects.list[0].kinds = kinds;
    }

    // CAS_FORMAT_TIMING=1 prints the time of each phase (spec/format.md).
    let timing = std::env::var_os("CAS_FORMAT_TIMING").is_some();
    let t0 = std::time::Instant::now();
    // 4. element files, wave by wave
    let (mut raws, mut existing) = read_elements(
        &mut files,
        &mut projects,
        &cwd,
        &target_names,
        opts.partial,
        &includes,
        &mut errors,
    );
    includes.hand_to(&mut files);
    // a target through a junction that its project does not have
    for t in &target_names {
        if let Some((j, local)) = t.rsplit_once(':') {
            if !existing.contains(t) && projects.by_junction.get(j).is_some_and(Option::is_some) {
                errors.push(Error::plain(format!(
                    "no element `{local}` in the project of junction `{j}` (target `{t}`)"
                )));
            }
        }
    }

    if timing {
        eprintln!(
            "format: read+parse {} files: {:?}",
            raws.len(),
            t0.elapsed()
        );
    }
    // 5. ids in name order; resolve every element; cycles
    let (mut elements, ids, resolve_errors) =
        resolve_all(&files, &projects, &mut raws, &mut existing);
    errors.extend(resolve_errors);
    if timing {
        eprintln!("format: resolved: {:?}", t0.elapsed());
    }
    // elements whose behaviour found their configuration wrong (by name)
    let mut bad = std::collections::HashSet::new();
    if elements.len() == existing.len() {
        for (id, e) in check_behaviours(opts, &files, &mut elements, &ids) {
            bad.insert(elements[id.index()].name.clone());
            errors.push(e);
        }
    }
    dedupe_plugin_errors(&mut errors);
    let mut left_out = 0;
    let (elements, ids) = if errors.is_empty() && elements.len() == existing.len() {
        (elements, ids)
    } else if opts.partial {
        // what loads: elements without errors whose dependencies have none;
        // the behaviours' checks of what remains may leave out more (at most
        // once more: they were not run when an element did not resolve),
        // and each error is said once
        let before = existing.len();
        let mut ok: std::collections::HashSet<String> = elements
            .iter()
            .map(|e| e.name.clone())
            .filter(|n| !bad.contains(n))
            .collect();
        loop {
            let good = loadable(&raws, &ok);
            raws.retain(|r| good.contains(&r.name));
            existing.retain(|n| good.contains(n));
            let (mut elements, ids, again) =
                resolve_all(&files, &projects, &mut raws, &mut existing);
            if !again.is_empty() || elements.len() != existing.len() {
                return Err(failed(errors));
            }
            let found: Vec<(ElementId, Error)> =
                check_behaviours(opts, &files, &mut elements, &ids)
                    .into_iter()
                    .filter(|(id, _)| !bad.contains(&elements[id.index()].name))
                    .collect();
            if found.is_empty() {
                left_out = before - existing.len();
                break (elements, ids);
            }
            for (id, e) in found {
                bad.insert(elements[id.index()].name.clone());
                errors.push(e);
            }
            ok = elements
                .iter()
                .map(|e| e.name.clone())
                .filter(|n| !bad.contains(n))
                .collect();
        }
    } else {
        if errors.is_empty() {
            errors.push(Error::plain("some elements could not be loaded"));
        }
        return Err(failed(errors));
    };
    if timing {
        eprintln!("format: graph checked: {:?}", t0.elapsed());
    }
    let mut targets: Vec<ElementId> = target_names
        .iter()
        .filter_map(|n| ids.get(n).copied())
        .collect();
    if targets.len() < target_names.len() {
        // a target left out: what loads below it is shown from its tops
        // (the loaded elements that nothing loaded depends on)
        let mut below = vec![false; elements.len()];
        for e in &elements {
            for d in e
                .build_depends
                .iter()
                .chain(&e.depends)
                .chain(&e.runtime_depends)
            {
                below[d.index()] = true;
            }
        }
        for e in &elements {
            if !below[e.id.index()] && !targets.contains(&e.id) {
                targets.push(e.id);
            }
        }
    }
    if targets.is_empty() {
        return Err(failed(errors));
    }
    let top = projects.list.swap_remove(0);
    // open workspaces replace their elements' sources (crate::workspaces)
    let mut elements = elements;
    if !opts.ignore_workspaces {
        crate::workspaces::apply(&top.project.root, &mut elements)
            .map_err(|e| Diagnostics::new(vec![e]))?;
    }
    Ok(Loaded {
        project: top.project,
        elements,
        targets,
        kinds: top.kinds.kinds,
        files,
        by_name: ids,
        problems: Diagnostics::new(errors).errors,
        left_out,
        below: NeedsCache::default(),
    })
}

/// A failed load's errors: never none (a load that fails says why, even
/// where the loader has no better word for it).
fn failed(mut errors: Vec<Error>) -> Diagnostics {
    if errors.is_empty() {
        errors.push(Error::plain(
            "the project could not be loaded, and the loader found no error to show: this is a bug in cas; please report it with the project",
        ));
    }
    Diagnostics::new(errors)
}

fn suggest_name(element_path: &Path, t: &str) -> Option<String> {
    let p = Path::new(t);
    let parent = p.parent().unwrap_or(Path::new(""));
    let want = p.file_name()?.to_string_lossy().into_owned();
    let names: Vec<String> = std::fs::read_dir(element_path.join(parent))
        .ok()?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .take(10_000)
        .collect();
    let s = crate::diagnostics::suggest(&want, names.iter().map(String::as_str))?;
    Some(parent.join(s).to_string_lossy().into_owned())
}

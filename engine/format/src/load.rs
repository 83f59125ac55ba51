//! Loading: find the project, read the kinds, read element files wave by
//! wave (in parallel) following dependencies, resolve every element, check
//! the graph. Every error of every file is collected before returning.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;

use crate::bst::{self, Includes, WithIncludes};
use crate::diagnostics::{Diagnostics, Error, FileId, Files, SourceFile, Span};
use crate::element::{normalise_name, resolve, Context, Element, ElementId, RawElement};
use crate::graph;
use crate::kind::{
    builtin_file, decode_defaults, merge_public, resolve_kinds, Kind, Layer, RawKind, BST_BUILTIN,
    BUILTIN,
};
use crate::project::{find_project_file, Dialect, Project, BST_PROJECT_FILE};
use crate::read::Reader;
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
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("options", &self.options)
            .field("project_options", &self.project_options)
            .field("junctions", &self.junctions.is_some())
            .finish()
    }
}

/// The directory of a junction's subproject from its sources (a tar or git
/// source, patches), staged where the engine keeps such things. The loader
/// cannot fetch; this can.
pub trait JunctionSources: Send + Sync {
    /// `junction`: its full name (for messages); `mirrors`: the mirrors of
    /// the project the junction is in. `Err` is said at the junction.
    fn directory(
        &self,
        junction: &str,
        sources: &[cas_sources::Source],
        mirrors: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<PathBuf, String>;
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
    let fail = |msg: String| {
        let f = SourceFile::new(path.to_path_buf(), name.clone(), String::new());
        let e = Error::plain(format!("{name}: {msg}"));
        (f, e)
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_SIZE => {
            return Err(fail(format!(
                "file too large ({} bytes; at most {MAX_FILE_SIZE})",
                m.len()
            )))
        }
        Ok(m) if !m.is_file() => return Err(fail("not a regular file".into())),
        Ok(_) => {}
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(path.to_path_buf(), name, text)),
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

/// The kinds of a load: the defaults layer, every kind resolved (built-in,
/// then the project's), and the project kinds that could not be (their file
/// names, for the elements that use them).
struct LoadedKinds {
    defaults: Layer,
    kinds: BTreeMap<String, Kind>,
    broken_kinds: BTreeMap<String, String>,
}

fn load_kinds(
    files: &mut Files,
    project: &Project,
    cwd: &Path,
    errors: &mut Vec<Error>,
) -> LoadedKinds {
    let mut builtin = Vec::new();
    let mut defaults_root = None;
    let (set, prefix) = match project.dialect {
        Dialect::Cas => (BUILTIN, ""),
        Dialect::BuildStream => (BST_BUILTIN, "bst/"),
    };
    for (name, text) in set {
        let id = files.next_id();
        let f = builtin_file(&format!("{prefix}{name}"), text);
        let root = yaml::parse(&f, id).unwrap_or_else(|es| {
            errors.extend(es);
            None
        });
        let path = f.path.clone();
        files.add(f);
        if *name == "defaults" {
            defaults_root = root;
        } else {
            builtin.push(RawKind {
                broken: false,
                name: name.to_string(),
                file: id,
                path,
                root,
            });
        }
    }
    let mut defaults = decode_defaults(files, defaults_root.as_ref()).unwrap_or_else(|es| {
        errors.extend(es);
        Default::default()
    });
    let mut project_kinds = Vec::new();
    if let Some(b) = &project.bst {
        bst_layers(
            files,
            b,
            &builtin,
            &mut defaults,
            &mut project_kinds,
            errors,
        );
    }
    if let Some(dir) = &project.kinds_dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(std::result::Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        for p in paths {
            let Some(stem) = p.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let before = errors.len();
            let (id, root) = read_and_parse(files, &p, display_name(&p, cwd), errors);
            project_kinds.push(RawKind {
                name: stem,
                file: id,
                path: p,
                root,
                broken: errors.len() > before,
            });
        }
    }
    let (kinds, kind_errors) = resolve_kinds(files, &builtin, &project_kinds);
    errors.extend(kind_errors);
    // Project kinds that have errors of their own (reported above).
    let broken_kinds: BTreeMap<String, String> = project_kinds
        .iter()
        .filter(|k| !kinds.contains_key(&k.name))
        .map(|k| (k.name.clone(), display_name(&k.path, cwd)))
        .collect();

    LoadedKinds {
        defaults,
        kinds,
        broken_kinds,
    }
}

/// A BuildStream project's own layers: its `split-rules` over the defaults,
/// and its `elements:` overrides as kinds extending the built-in ones
/// (overrides of kinds cas does not have are left alone: using such a kind
/// is the error).
fn bst_layers(
    files: &Files,
    b: &bst::BstProject,
    builtin: &[RawKind],
    defaults: &mut Layer,
    project_kinds: &mut Vec<RawKind>,
    errors: &mut Vec<Error>,
) {
    let mut r = Reader::new(files);
    if let Some(n) = &b.split_rules {
        let mut m = yaml::Map::default();
        m.entries.push((
            yaml::Key {
                name: "split-rules".into(),
                span: n.span,
            },
            n.clone(),
        ));
        let public = yaml::Node {
            span: n.span,
            value: yaml::Value::Map(m),
        };
        merge_public(
            &mut r,
            &mut defaults.integration_commands,
            &mut defaults.split_rules,
            &mut defaults.overlap_whitelist,
            &public,
        );
    }
    for (k, v) in &b.element_overrides {
        if !builtin.iter().any(|raw| raw.name == k.name) {
            continue;
        }
        let mut m = yaml::Map::default();
        m.entries.push((
            yaml::Key {
                name: "extends".into(),
                span: k.span,
            },
            yaml::Node {
                span: k.span,
                value: yaml::Value::Scalar(k.name.clone(), yaml::Style::Quoted),
            },
        ));
        if let Some(over) = r.map(v, &k.name) {
            for (ok, ov) in over.iter() {
                if ["variables", "environment", "config", "public"].contains(&ok.name.as_str()) {
                    m.entries.push((ok.clone(), ov.clone()));
                }
            }
        }
        project_kinds.push(RawKind {
            name: k.name.clone(),
            file: k.span.file,
            path: PathBuf::from(BST_PROJECT_FILE),
            root: Some(yaml::Node {
                span: v.span,
                value: yaml::Value::Map(m),
            }),
            broken: false,
        });
    }
    errors.extend(r.errors);
}

/// One project of a load: the top one (index 0) and each junction's.
pub(crate) struct ProjectCx {
    pub project: Project,
    kinds: LoadedKinds,
    /// The prefix of its element names (`junction.bst:`; empty for the top).
    prefix: String,
}

/// The projects of a load and the junctions that lead to them.
struct Projects {
    list: Vec<ProjectCx>,
    junction_sources: Option<std::sync::Arc<dyn JunctionSources>>,
    /// junction's full name → its project (`None`: it could not be loaded,
    /// which was reported once).
    by_junction: HashMap<String, Option<usize>>,
}

impl Projects {
    /// The project and local name of a full element name (`j.bst:e.bst`).
    fn of(&self, name: &str) -> Option<(usize, String)> {
        match name.rsplit_once(':') {
            None => Some((0, name.to_string())),
            Some((j, local)) => self
                .by_junction
                .get(j)
                .copied()
                .flatten()
                .map(|i| (i, local.to_string())),
        }
    }
}

/// Load the subproject of junction `j` (a full name) if not yet tried:
/// its element is read in its parent project, its one `local` source is the
/// subproject's directory, its `config: options` are the subproject's
/// option values.
fn ensure_junction(
    files: &mut Files,
    projects: &mut Projects,
    j: &str,
    cwd: &Path,
    includes: &Includes,
    errors: &mut Vec<Error>,
) -> Option<usize> {
    let resolver = projects.junction_sources.clone();
    if let Some(r) = projects.by_junction.get(j) {
        return *r;
    }
    projects.by_junction.insert(j.to_string(), None);
    let (parent, local) = match j.rsplit_once(':') {
        None => (0, j.to_string()),
        Some((pj, l)) => (
            ensure_junction(files, projects, pj, cwd, includes, errors)?,
            l.to_string(),
        ),
    };
    let parent_project = projects.list[parent].project.clone();
    let (parent_root, parent_prefix, parent_path) = (
        parent_project.root.clone(),
        projects.list[parent].prefix.clone(),
        parent_project.element_path.clone(),
    );
    let parent_bst = projects.list[parent].project.bst.clone();
    let path = parent_path.join(&local);
    if !path.is_file() {
        errors.push(Error::plain(format!(
            "junction `{j}` not found: no file {}",
            display_name(&path, cwd)
        )));
        return None;
    }
    let Some(b) = parent_bst else {
        errors.push(Error::plain(format!(
            "`{j}`: junctions belong to BuildStream projects"
        )));
        return None;
    };
    let before = errors.len();
    let (id, root) = read_and_parse(files, &path, display_name(&path, cwd), errors);
    let file = files.get(id)?.clone();
    let root = root?;
    let loc = WithIncludes {
        file: &file,
        includes,
    };
    let inc = bst::include_fn(&parent_root, includes, &loc, cwd, None);
    let mut r = Reader::new(&loc);
    let (node, is_junction) = bst::translate(&mut r, &loc, &b, &local, &parent_prefix, root, &inc);
    let kind_span = node
        .as_map()
        .and_then(|m| m.get("kind"))
        .map_or(node.span, |k| k.span);
    if !is_junction {
        r.err(
            kind_span,
            format!("`{j}` is named as a junction (`{j}:...`) but is not `kind: junction`"),
            "not a junction",
        );
    }
    let map = node.as_map().cloned().unwrap_or_default();
    r.check_keys(
        &map,
        &["kind", "description", "sources", "config"],
        "a junction",
    );
    let mut sources = Vec::new();
    if let Some(yaml::Value::Seq(items)) = map.get("sources").map(|s| &s.value) {
        for item in items {
            sources.extend(crate::source::decode(&mut r, &parent_project, item));
        }
    }
    let mut dir = None;
    match sources.as_slice() {
        [] if r.errors.is_empty() => r.err(
            kind_span,
            format!("junction `{j}` needs a source: its subproject"),
            "no subproject",
        ),
        [] => {}
        [cas_sources::Source {
            kind: cas_sources::SourceKind::Local { path },
            directory: None,
            ..
        }] => dir = Some(path.clone()),
        _ => match &resolver {
            Some(res) => match res.directory(j, &sources, &parent_project.mirrors) {
                Ok(d) => dir = Some(d),
                Err(e) => r.err(kind_span, format!("junction `{j}`: {e}"), "subproject not here"),
            },
            None => r.err(
                kind_span,
                format!("junction `{j}`: its subproject comes from fetched sources, which this command does not read"),
                "subproject not here",
            ),
        },
    }
    let mut given = bst::Given::default();
    if let Some(cfg) = map.get("config").and_then(|c| r.map(c, "config")) {
        r.check_keys(
            cfg,
            &[
                "options",
                "overrides",
                "aliases",
                "cache-junction-elements",
                "ignore-junction-remotes",
            ],
            "a junction's config",
        );
        if let Some(o) = cfg.get("options").and_then(|o| r.map(o, "options")) {
            for (k, v) in o.iter() {
                if let Some(s) = r.string(v, &k.name) {
                    given.values.push((k.name.clone(), s.value, Some(s.span)));
                }
            }
        }
        if let Some(o) = cfg.get("overrides") {
            if o.as_map().is_some_and(|m| !m.entries.is_empty()) {
                r.err(
                    o.span,
                    "junction `overrides` are not supported yet",
                    "overrides",
                );
            }
        }
    }
    errors.append(&mut r.errors);
    let dir = dir?;
    if errors.len() > before {
        return None;
    }
    let pf = dir.join(BST_PROJECT_FILE);
    if !pf.is_file() {
        errors.push(
            files
                .error(
                    kind_span,
                    format!(
                        "junction `{j}`: {} has no project.conf",
                        display_name(&dir, cwd)
                    ),
                    "no project here",
                )
                .with_help("a junction's sources are a BuildStream project"),
        );
        return None;
    }
    let (pid, proot) = read_and_parse(files, &pf, display_name(&pf, cwd), errors);
    let pfile = files.get(pid)?.clone();
    let project = match bst::decode_project(
        &pfile,
        pid,
        proot,
        &given,
        &Default::default(),
        includes,
        cwd,
    ) {
        Ok(p) => p,
        Err(es) => {
            errors.extend(es);
            return None;
        }
    };
    includes.hand_to(files);
    let kinds = load_kinds(files, &project, cwd, errors);
    projects.list.push(ProjectCx {
        project,
        kinds,
        prefix: format!("{j}:"),
    });
    let idx = projects.list.len() - 1;
    projects.by_junction.insert(j.to_string(), Some(idx));
    Some(idx)
}

/// Reads and decodes the element files, wave by wave from the targets
/// through the dependencies they name (each wave in parallel; the
/// junctions a wave names are loaded before it). Returns the decoded
/// elements and the names of every element file that exists (or whose
/// junction failed, which was reported).
fn read_elements(
    files: &mut Files,
    projects: &mut Projects,
    cwd: &Path,
    target_names: &[String],
    includes: &Includes,
    errors: &mut Vec<Error>,
) -> (Vec<RawElement>, Vec<String>) {
    let mut raws: Vec<RawElement> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut existing: Vec<String> = Vec::new();
    let mut wave: Vec<String> = target_names.to_vec();
    for n in &wave {
        seen.insert(n.clone());
    }
    while !wave.is_empty() {
        let mut now = Vec::new();
        for name in std::mem::take(&mut wave) {
            if let Some((j, _)) = name.rsplit_once(':') {
                if ensure_junction(files, projects, j, cwd, includes, errors).is_none() {
                    existing.push(name); // its junction's error stands for it
                    continue;
                }
            }
            now.push(name);
        }
        let current = now;
        let base = files.next_id().0;
        type Read = (
            String,
            Option<SourceFile>,
            Result<RawElement, Vec<Error>>,
            Vec<String>,
            Vec<String>,
        );
        let projects_ref = &*projects;
        // the junctions loaded so far, for includes through them, per
        // project: names relative to that project (its prefix removed)
        type Roots = HashMap<
            String,
            (
                PathBuf,
                std::collections::BTreeMap<String, bst::expr::Value>,
            ),
        >;
        let roots: Vec<Roots> = projects
            .list
            .iter()
            .map(|from| {
                projects
                    .by_junction
                    .iter()
                    .filter_map(|(j, i)| {
                        let local = j.strip_prefix(&from.prefix)?;
                        let p = &projects.list[(*i)?].project;
                        let opts = p.bst.as_ref().map(|b| b.values.clone()).unwrap_or_default();
                        Some((local.to_string(), (p.root.clone(), opts)))
                    })
                    .collect()
            })
            .collect();
        let results: Vec<Read> = current
            .par_iter()
            .enumerate()
            .map(|(i, name)| {
                let id = FileId(base + i as u32);
                let Some((pidx, local)) = projects_ref.of(name) else {
                    return (name.clone(), None, Err(vec![]), vec![], vec![]);
                };
                let pcx = &projects_ref.list[pidx];
                let project = &pcx.project;
                let path = project.element_path.join(&local);
                if !path.is_file() {
                    return (name.clone(), None, Err(vec![]), vec![], vec![]);
                }
                let wanted = std::sync::Mutex::new(Vec::new());
                let deps_of_broken = std::sync::Mutex::new(Vec::new());
                match read_source(&path, display_name(&path, cwd)) {
                    Err((f, e)) => (name.clone(), Some(f), Err(vec![e]), vec![], vec![]),
                    Ok(f) => {
                        let raw = match yaml::parse(&f, id) {
                            Ok(root) => match &project.bst {
                                None => {
                                    let mut r = Reader::new(&f);
                                    if let Some(root) = &root {
                                        bst::reject_in_cas_project(&mut r, root);
                                    }
                                    let raw = crate::element::decode(
                                        &f,
                                        &f.path,
                                        id,
                                        name.clone(),
                                        root.as_ref(),
                                        project,
                                    );
                                    match raw {
                                        Ok(_) if !r.errors.is_empty() => Err(r.errors),
                                        Ok(raw) => Ok(raw),
                                        Err(mut es) => {
                                            es.append(&mut r.errors);
                                            Err(es)
                                        }
                                    }
                                }
                                Some(b) => decode_bst(
                                    &f,
                                    id,
                                    name,
                                    &local,
                                    root,
                                    pcx,
                                    b,
                                    includes,
                                    cwd,
                                    bst::JunctionRoots {
                                        roots: &roots[pidx],
                                        wanted: &wanted,
                                        deps_of_broken: &deps_of_broken,
                                    },
                                ),
                            },
                            Err(es) => Err(es),
                        };
                        let raw = raw.map(|mut r| {
                            r.project = pidx;
                            r
                        });
                        let wanted: Vec<String> = wanted
                            .into_inner()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|j| format!("{}{j}", pcx.prefix))
                            .collect();
                        let broken = deps_of_broken.into_inner().unwrap_or_default();
                        (name.clone(), Some(f), raw, wanted, broken)
                    }
                }
            })
            .collect();
        let mut next = Vec::new();
        let mut retry = Vec::new();
        for (i, (name, file, raw, wanted, broken_deps)) in results.into_iter().enumerate() {
            let path = PathBuf::from(&name);
            let id = files
                .add(file.unwrap_or_else(|| SourceFile::new(path, name.clone(), String::new())));
            debug_assert_eq!(id.0, base + i as u32);
            if !wanted.is_empty() {
                // includes through junctions not loaded yet: load them, read it again
                let mut all = true;
                for j in &wanted {
                    all &= ensure_junction(files, projects, j, cwd, includes, errors).is_some();
                }
                if all {
                    retry.push(name);
                } else {
                    existing.push(name);
                }
                continue;
            }
            match raw {
                Ok(raw) => {
                    existing.push(name);
                    for (_, dep) in &raw.deps {
                        if !seen.contains(&dep.value) {
                            seen.insert(dep.value.clone());
                            next.push(dep.value.clone());
                        }
                    }
                    raws.push(raw);
                }
                Err(es) if es.is_empty() => {} // missing: reported where it is named
                Err(es) => {
                    existing.push(name);
                    errors.extend(es);
                    for dep in broken_deps {
                        if seen.insert(dep.clone()) {
                            next.push(dep);
                        }
                    }
                }
            }
        }
        retry.append(&mut next);
        wave = retry;
    }

    (raws, existing)
}

/// Decode one `.bst` element: directives, translation, then the decoder
/// every element goes through.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument distinct"
)]
fn decode_bst(
    f: &SourceFile,
    id: FileId,
    name: &str,
    local: &str,
    root: Option<yaml::Node>,
    pcx: &ProjectCx,
    b: &bst::BstProject,
    includes: &Includes,
    cwd: &Path,
    junctions: bst::JunctionRoots,
) -> Result<RawElement, Vec<Error>> {
    let project = &pcx.project;
    let loc = WithIncludes { file: f, includes };
    let Some(root) = root else {
        return crate::element::decode(&loc, &f.path, id, name.to_string(), None, project);
    };
    let deps_of_broken = junctions.deps_of_broken;
    let inc = bst::include_fn(&project.root, includes, &loc, cwd, Some(junctions));
    let mut r = Reader::new(&loc);
    let (node, is_junction) = bst::translate(&mut r, &loc, b, local, &pcx.prefix, root, &inc);
    if is_junction {
        let span = node
            .as_map()
            .and_then(|m| m.get("kind"))
            .map_or(node.span, |k| k.span);
        r.err_help(
            span,
            format!("`{name}` is a junction: it is not an element to depend on"),
            "junction",
            format!("depend on an element of its project: `{name}:element.bst` (or `filename: element.bst` with `junction: {name}`)"),
        );
        return Err(r.errors);
    }
    let decoded = crate::element::decode(&loc, &f.path, id, name.to_string(), Some(&node), project);
    let result = match decoded {
        Ok(raw) if r.errors.is_empty() => Ok(raw),
        Ok(_) => Err(r.errors),
        Err(mut es) => {
            r.errors.append(&mut es);
            Err(r.errors)
        }
    };
    if result.is_err() {
        // the elements behind a broken one are still read (and checked)
        let mut out = deps_of_broken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in ["depends", "build-depends", "runtime-depends"] {
            if let Some(yaml::Value::Seq(items)) =
                node.as_map().and_then(|m| m.get(key)).map(|n| &n.value)
            {
                out.extend(
                    items
                        .iter()
                        .filter_map(|i| i.as_str())
                        .filter_map(normalise_name),
                );
            }
        }
    }
    result
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
) -> Result<Project, Diagnostics> {
    let Some(pf) = project_file else {
        return Ok(Project::implicit(start_dir));
    };
    let mut errors: Vec<Error> = Vec::new();
    let (id, root) = read_and_parse(files, pf, display_name(pf, cwd), &mut errors);
    if !errors.is_empty() {
        return Err(Diagnostics::new(errors));
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
    let project = read_project(
        &mut files,
        project_file.as_deref(),
        &start_dir,
        &cwd,
        opts,
        &includes,
    )?;

    // 2. the targets' names
    let mut target_names = Vec::new();
    for t in targets {
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
        return Err(Diagnostics::new(errors));
    }

    // 3. kinds: built-in, then the project's
    let top_kinds = load_kinds(&mut files, &project, &cwd, &mut errors);
    let mut projects = Projects {
        list: vec![ProjectCx {
            project,
            kinds: top_kinds,
            prefix: String::new(),
        }],
        by_junction: HashMap::new(),
        junction_sources: opts.junctions.clone(),
    };

    // CAS_FORMAT_TIMING=1 prints the time of each phase (spec/format.md).
    let timing = std::env::var_os("CAS_FORMAT_TIMING").is_some();
    let t0 = std::time::Instant::now();
    // 4. element files, wave by wave
    let (mut raws, mut existing) = read_elements(
        &mut files,
        &mut projects,
        &cwd,
        &target_names,
        &includes,
        &mut errors,
    );
    includes.hand_to(&mut files);

    if timing {
        eprintln!(
            "format: read+parse {} files: {:?}",
            raws.len(),
            t0.elapsed()
        );
    }
    // 5. ids in name order; resolve every element
    existing.sort();
    let ids: HashMap<String, ElementId> = existing
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), ElementId(i as u32)))
        .collect();
    raws.sort_by(|a, b| a.name.cmp(&b.name));
    let host = host_arch();
    let cxs: Vec<Context> = projects
        .list
        .iter()
        .map(|p| Context {
            files: &files,
            project: &p.project,
            defaults: &p.kinds.defaults,
            kinds: &p.kinds.kinds,
            broken_kinds: &p.kinds.broken_kinds,
            ids: &ids,
            host_arch: host,
        })
        .collect();
    let resolved: Vec<Result<Element, Vec<Error>>> = raws
        .par_iter()
        .map(|raw| resolve(&cxs[raw.project], ids[&raw.name], raw))
        .collect();
    drop(cxs);

    if timing {
        eprintln!("format: resolved: {:?}", t0.elapsed());
    }
    // 6. cycles, from the dependencies as written
    let mut edges = Vec::new();
    for raw in &raws {
        let from = ids[&raw.name];
        for (dk, dep) in &raw.deps {
            if let Some(&to) = ids.get(&dep.value) {
                edges.push((from, *dk, to, dep.span));
            }
        }
    }
    errors.extend(graph::find_cycles(&files, &existing, &edges));

    let mut elements = Vec::with_capacity(resolved.len());
    for r in resolved {
        match r {
            Ok(e) => elements.push(e),
            Err(es) => errors.extend(es),
        }
    }
    if elements.len() == existing.len() {
        errors.extend(filters(&files, &mut elements));
    }
    dedupe_plugin_errors(&mut errors);
    if !errors.is_empty() || elements.len() != existing.len() {
        if errors.is_empty() {
            errors.push(Error::plain("some elements could not be loaded"));
        }
        return Err(Diagnostics::new(errors));
    }
    if timing {
        eprintln!("format: graph checked: {:?}", t0.elapsed());
    }
    let targets = target_names.iter().map(|n| ids[n]).collect();
    let top = projects.list.swap_remove(0);
    Ok(Loaded {
        project: top.project,
        elements,
        targets,
        kinds: top.kinds.kinds,
        files,
        by_name: ids,
    })
}

/// Filter elements, once every element is resolved: their domains must be
/// those of the element they filter, and with `pass-integration` they carry
/// its integration commands (filters of filters in dependency order).
fn filters(files: &Files, elements: &mut [Element]) -> Vec<Error> {
    use crate::element::Config;
    let mut errors = Vec::new();
    let ids: Vec<ElementId> = elements
        .iter()
        .filter(|e| matches!(e.config, Config::Filter { .. }))
        .map(|e| e.id)
        .collect();
    let order = graph::topo_order(elements, &ids.iter().copied().collect());
    for id in order {
        let Config::Filter {
            include,
            exclude,
            pass_integration,
            ..
        } = elements[id.index()].config.clone()
        else {
            continue;
        };
        let Some(&dep) = elements[id.index()].build_depends.first() else {
            continue;
        };
        let dep_public = elements[dep.index()].public.clone();
        let e = &elements[id.index()];
        for d in include.iter().chain(&exclude) {
            if !dep_public.split_rules.contains_key(d) {
                errors.push(
                    files
                        .error(
                            e.origin.kind_span,
                            format!(
                                "filter `{}`: `{}` has no split-rule domain `{d}`",
                                e.name,
                                elements[dep.index()].name
                            ),
                            "unknown domain",
                        )
                        .with_help(format!(
                            "its domains: {}",
                            dep_public
                                .split_rules
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                );
            }
        }
        if pass_integration {
            let e = &mut elements[id.index()];
            let mut ic = dep_public.integration_commands.clone();
            ic.append(&mut e.public.integration_commands);
            e.public.integration_commands = ic;
        }
    }
    errors
}

/// A plugin kind that cas does not implement is said once, at its first use.
fn dedupe_plugin_errors(errors: &mut Vec<Error>) {
    errors.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| !e.message.contains("comes from a plugin") || seen.insert(e.message.clone()));
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

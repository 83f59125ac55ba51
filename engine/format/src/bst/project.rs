//! `project.conf`: a BuildStream 2 project, decoded into a [`Project`] and
//! the BuildStream-only data its elements need ([`BstProject`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::directives::{IncludeFn, Processor};
use super::expr::Value as OptValue;
use super::includes::{Includes, WithIncludes};
use super::options::{self, Declared, Given};
use crate::diagnostics::{Error, FileId, SourceFile};
use crate::project::{relative_inside, Dialect, Project};
use crate::read::{Reader, Spanned};
use crate::yaml::{Key, Node, Value};

/// The newest BuildStream minor version whose format cas reads.
pub(crate) const BST_MINOR: u32 = 8;

const KEYS: &[&str] = &[
    "name",
    "min-version",
    "format-version",
    "element-path",
    "aliases",
    "mirrors",
    "plugins",
    "options",
    "variables",
    "environment",
    "environment-nocache",
    "split-rules",
    "elements",
    "sources",
    "fatal-warnings",
    "ref-storage",
    "shell",
    "sandbox",
    "artifacts",
    "source-caches",
    "remote-execution",
    "defaults",
    "junctions",
    "source-provenance-attributes",
];

/// What a BuildStream project adds to [`Project`].
#[derive(Debug, Default)]
pub(crate) struct BstProject {
    pub declared: Vec<Declared>,
    pub values: BTreeMap<String, OptValue>,
    /// `elements:`: kind → overrides of its defaults.
    pub element_overrides: Vec<(Key, Node)>,
    /// `split-rules:` over BuildStream's defaults.
    pub split_rules: Option<Node>,
    /// Element kinds declared by plugins: kind → where from.
    pub element_plugins: BTreeMap<String, String>,
    /// The project's source aliases (a URL `alias:rest` must name one).
    pub aliases: std::collections::BTreeSet<String>,
    /// Source kinds declared by plugins: kind → where from.
    pub source_plugins: BTreeMap<String, String>,
    /// Element kinds declared by a plugin origin that is not a package
    /// cas reads the kinds of (a `local` plugin, a `pip` package other
    /// than buildstream-plugins or bst-plugins-community): kind → where
    /// from. Never replaced by cas's kind of the same name.
    pub foreign_element_plugins: BTreeMap<String, String>,
    /// `ref-storage: project.refs`: the refs file's `projects: NAME:` mapping.
    pub refs: Option<Node>,
    /// The project's directory.
    pub root: PathBuf,
    /// `sources:`: source kind → the `config` its sources start from.
    pub source_defaults: BTreeMap<String, crate::yaml::Map>,
}

/// Junctions an element's includes may go through: junction name → its
/// project's directory, and the junctions asked for that are not loaded yet
/// (the element is read again once they are).
pub(crate) struct JunctionRoots<'a> {
    /// junction → (its project's directory, that project's option values)
    pub roots: &'a HashMap<String, (PathBuf, BTreeMap<String, OptValue>)>,
    pub wanted: &'a Mutex<Vec<String>>,
    /// The dependencies of an element that failed to decode (to read them still).
    pub deps_of_broken: &'a Mutex<Vec<String>>,
}

/// The `(@)` reader of a project: paths relative to its directory, or to a
/// junction's project (`junction.bst:path`).
pub(crate) fn include_fn<'a>(
    root: &'a Path,
    includes: &'a Includes,
    loc: &'a WithIncludes<'a>,
    cwd: &'a Path,
    junctions: Option<JunctionRoots<'a>>,
) -> impl Fn(&Spanned, &mut Vec<Error>) -> Option<super::directives::Included> + 'a {
    move |name: &Spanned, errors: &mut Vec<Error>| {
        let mut root = root;
        let mut rel_name = name.value.as_str();
        let mut their_options = None;
        let mut through = None;
        if let (Some((j, rest)), Some(jr)) = (name.value.rsplit_once(':'), junctions.as_ref()) {
            match jr.roots.get(j) {
                Some((dir, opts)) => {
                    root = dir;
                    rel_name = rest;
                    their_options = Some(opts.clone());
                    through = Some(j.to_string());
                }
                None => {
                    jr.wanted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(j.to_string());
                    return None;
                }
            }
        }
        if rel_name.contains(':') {
            errors.push(
                crate::read::Locate::error(
                    loc,
                    name.span,
                    format!(
                        "`{}`: includes from a junction are not supported yet",
                        name.value
                    ),
                    "include through a junction",
                )
                .with_help(
                    "copy the file into this project, or include it by a path inside the project",
                ),
            );
            return None;
        }
        let Some(rel) = relative_inside(rel_name) else {
            errors.push(crate::read::Locate::error(
                loc,
                name.span,
                format!(
                    "`{}`: an include path is relative and stays inside the project",
                    name.value
                ),
                "not inside the project",
            ));
            return None;
        };
        let path = root.join(rel);
        let shown = crate::load::display_name(&path, cwd);
        let at = |span, msg: String, label: &str| crate::read::Locate::error(loc, span, msg, label);
        let root = includes.get(&path, shown, name, &at, errors)?;
        Some((
            path.to_string_lossy().into_owned(),
            root,
            their_options,
            through,
        ))
    }
}

fn version(r: &mut Reader<WithIncludes>, node: &Node) {
    let Some(v) = r.string(node, "min-version") else {
        return;
    };
    let mut parts = v.value.trim().split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().map_or(Some(0), |p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(2), Some(m)) if m <= BST_MINOR => {}
        (Some(2), Some(m)) => r.err_help(
            v.span,
            format!("this project needs BuildStream 2.{m}; cas reads the format of BuildStream 2.0 to 2.{BST_MINOR}"),
            "too new",
            "a newer cas may read it; or lower `min-version` if the project does not need 2.{m}",
        ),
        (Some(1), _) => r.err(v.span, "BuildStream 1 projects are not supported (cas reads BuildStream 2)", "BuildStream 1"),
        _ => r.err(
            v.span,
            format!("`min-version`: `{}` is not a version like `2.0`", v.value),
            "not MAJOR.MINOR",
        ),
    }
}

/// Decode `project.conf` (`root`: its parsed tree) with the option values
/// from outside: `by_name` (the user configuration's, by project name),
/// then `given`. Errors are every problem found.
#[allow(
    clippy::too_many_arguments,
    reason = "one call per project, each argument distinct"
)]
pub(crate) fn decode(
    file: &SourceFile,
    id: FileId,
    root: Option<Node>,
    given: &Given,
    by_name: &BTreeMap<String, Vec<(String, String)>>,
    includes: &Includes,
    cwd: &Path,
    junctions: Option<JunctionRoots>,
) -> Result<Project, Vec<Error>> {
    let dir = file
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut p = Project::implicit(&dir);
    p.file = Some(file.path.clone());
    p.dialect = Dialect::BuildStream;
    p.overlaps_allowed = true;
    let loc = WithIncludes { file, includes };
    let mut errors = Vec::new();
    let Some(root) = root else {
        return Err(vec![Error::at(
            file,
            crate::diagnostics::Span::new(id, 0, 0),
            "empty project.conf",
            "a BuildStream project needs at least `name` and `min-version`",
        )]);
    };
    let inc = include_fn(&dir, includes, &loc, cwd, junctions);
    let inc: &IncludeFn = &inc;
    // 1. includes, conditionals left in place
    let mut pass1 = Processor::new(&loc, None, inc);
    let node = pass1.process(root);
    errors.append(&mut pass1.r.errors);
    let mut r = Reader::new(&loc);
    let mut bst = BstProject {
        root: dir.clone(),
        ..BstProject::default()
    };
    let Some(map) = r.map(&node, "project.conf").cloned() else {
        errors.append(&mut r.errors);
        return Err(errors);
    };
    // `name` and `options` are read before conditionals can be: never in one
    if let Some(Value::Seq(items)) = map.get("(?)").map(|n| &n.value) {
        for item in items {
            for (_, v) in item.as_map().into_iter().flat_map(crate::yaml::Map::iter) {
                for (k, _) in v.as_map().into_iter().flat_map(crate::yaml::Map::iter) {
                    if k.name == "name" || k.name == "options" {
                        r.err(
                            k.span,
                            format!("`{}` cannot be set conditionally", k.name),
                            "inside `(?)`",
                        );
                    }
                }
            }
        }
    }
    // 2. options, then conditionals with their values
    if let Some(n) = map.get("options") {
        bst.declared = options::declare(&mut r, n);
        if bst
            .declared
            .iter()
            .any(|d| d.ty == options::OptionType::ElementMask)
        {
            let path = map
                .get("element-path")
                .and_then(|n| n.as_str())
                .unwrap_or(".");
            let files = options::element_files(&dir.join(path));
            for d in &mut bst.declared {
                if d.ty == options::OptionType::ElementMask {
                    d.values.clone_from(&files);
                }
            }
        }
    }
    let name = map.get("name").and_then(|n| r.string(n, "name")).map(|s| {
        if !options::symbol_name(&s.value, true) {
            r.err_help(
                s.span,
                format!("invalid symbol name for project name: `{}`", s.value),
                "invalid project name",
                "project names use letters, digits, underscores and dashes, and do not start with a digit",
            );
        }
        s.value
    });
    // the user configuration's values for this project's name, then `given`
    let mut all = Given::default();
    if let Some(values) = name.as_ref().and_then(|n| by_name.get(n)) {
        all.values
            .extend(values.iter().map(|(k, v)| (k.clone(), v.clone(), None)));
    }
    all.values.extend(given.values.iter().cloned());
    bst.values = options::values(&mut r, &bst.declared, &all, name.as_deref().unwrap_or("?"));
    let mut pass2 = Processor::new(&loc, Some(&bst.values), inc);
    let mut node = pass2.process(Node {
        span: node.span,
        value: Value::Map(map),
    });
    super::strip_scalars(&mut node);
    errors.append(&mut pass2.r.errors);
    let Some(map) = node.as_map() else {
        return Err(errors);
    };

    r.check_keys(map, KEYS, "project.conf");
    p.read_common(&mut r, map, &dir);
    bst.aliases = p.aliases.keys().cloned().collect();
    if map.get("name").is_none() {
        r.err_help(
            node.span,
            "project.conf has no `name`",
            "no `name:`",
            "every BuildStream project names itself: `name: my-project`",
        );
    }
    if let Some(n) = map.get("format-version") {
        r.err_help(
            n.span,
            "`format-version` is BuildStream 1's: BuildStream 1 projects are not supported",
            "BuildStream 1",
            "cas reads BuildStream 2 projects (`min-version: 2.0`)",
        );
    } else {
        match map.get("min-version") {
            Some(n) => version(&mut r, n),
            None => r.err_help(
                node.span,
                "project.conf has no `min-version`",
                "no `min-version:`",
                "BuildStream 2 projects say which version they need: `min-version: 2.0`",
            ),
        }
    }
    if let Some(node) = map.get("mirrors") {
        mirrors(&mut r, node, &mut p);
    }
    if let Some(node) = map.get("plugins") {
        plugins(&mut r, node, &mut bst);
    }
    let mut vars = std::mem::take(&mut p.raw_variables);
    let exported = options::exported(&bst.declared, &bst.values);
    p.exported_variables = exported.len();
    vars.extend(exported);
    p.set_variables(vars);
    if let Some(n) = map.get("environment-nocache") {
        let _ = r.compose(&[], n, "environment-nocache");
    }
    bst.split_rules = map.get("split-rules").cloned();
    if let Some(n) = map.get("elements") {
        if let Some(m) = r.map(n, "elements") {
            bst.element_overrides = m.entries.clone();
        }
    }
    if let Some(n) = map.get("sources") {
        if let Some(m) = r.map(n, "sources") {
            for (kind, v) in m.iter() {
                let Some(km) = r.map(v, &kind.name) else {
                    continue;
                };
                r.check_keys(
                    km,
                    &["config"],
                    &format!("the defaults of `{}` sources", kind.name),
                );
                if let Some(c) = km.get("config").and_then(|c| r.map(c, "config")) {
                    bst.source_defaults.insert(kind.name.clone(), c.clone());
                }
            }
        }
    }
    if let Some(n) = map.get("fatal-warnings") {
        for w in r.compose(&[], n, "fatal-warnings") {
            if w.value == "overlaps" {
                p.overlaps_allowed = false;
            }
        }
    }
    if let Some(n) = map.get("ref-storage") {
        if let Some(s) = r.string(n, "ref-storage") {
            match s.value.as_str() {
                "inline" => {}
                "project.refs" => bst.refs = read_refs(&mut r, &dir, &p.name, includes, cwd, &s),
                other => r.err_help(
                    s.span,
                    format!("`ref-storage`: unknown value `{other}`"),
                    "unknown",
                    "`inline` (refs in the element files) or `project.refs`",
                ),
            }
        }
    }
    p.bst = Some(Arc::new(bst));
    errors.append(&mut r.errors);
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(errors)
    }
}

fn mirrors(r: &mut Reader<WithIncludes>, node: &Node, p: &mut Project) {
    let Value::Seq(items) = &node.value else {
        if !node.is_null() {
            r.err(
                node.span,
                "`mirrors`: expected a list of mirrors",
                "expected a list",
            );
        }
        return;
    };
    for item in items {
        let Some(m) = r.map(item, "mirrors") else {
            continue;
        };
        r.check_keys(m, &["name", "aliases", "kind", "config"], "a mirror");
        if let Some(a) = m.get("aliases").and_then(|n| r.map(n, "aliases")) {
            for (k, v) in a.iter() {
                let urls = r.strings(v, &k.name);
                p.mirrors
                    .entry(k.name.clone())
                    .or_default()
                    .extend(urls.into_iter().map(|u| u.value));
            }
        }
    }
}

fn plugins(r: &mut Reader<WithIncludes>, node: &Node, bst: &mut BstProject) {
    let Value::Seq(items) = &node.value else {
        if !node.is_null() {
            r.err(
                node.span,
                "`plugins`: expected a list of plugin origins",
                "expected a list",
            );
        }
        return;
    };
    for item in items {
        let Some(m) = r.map(item, "plugins") else {
            continue;
        };
        r.check_keys(
            m,
            &[
                "origin",
                "package-name",
                "path",
                "junction",
                "elements",
                "sources",
                "source-mirrors",
                "allow-deprecated",
            ],
            "a plugin origin",
        );
        let origin = m
            .get("origin")
            .and_then(|n| r.string(n, "origin"))
            .map_or_else(|| "?".to_string(), |s| s.value);
        let detail = ["package-name", "path", "junction"].iter().find_map(|k| {
            m.get(k)
                .and_then(|n| n.as_str())
                .map(|v| format!("{k}: {v}"))
        });
        let from = match detail {
            Some(d) => format!("origin: {origin}, {d}"),
            None => format!("origin: {origin}"),
        };
        // the packages whose element kinds cas has (elements/bst/)
        let known_package = origin == "junction"
            || (origin == "pip"
                && m.get("package-name")
                    .and_then(|n| n.as_str())
                    .is_some_and(|p| matches!(p, "buildstream-plugins" | "bst-plugins-community")));
        if !known_package {
            if let Some(Value::Seq(kinds)) = m.get("elements").map(|n| &n.value) {
                for k in kinds {
                    let name = match &k.value {
                        Value::Scalar(s, _) => Some(s.clone()),
                        Value::Map(km) => {
                            km.get("kind").and_then(|n| n.as_str()).map(str::to_string)
                        }
                        _ => None,
                    };
                    if let Some(name) = name {
                        bst.foreign_element_plugins.insert(name, from.clone());
                    }
                }
            }
        }
        for (key, out) in [
            ("elements", &mut bst.element_plugins),
            ("sources", &mut bst.source_plugins),
        ] {
            let Some(n) = m.get(key) else { continue };
            match &n.value {
                Value::Seq(kinds) => {
                    for k in kinds {
                        let name = match &k.value {
                            Value::Scalar(s, _) => Some(s.clone()),
                            Value::Map(km) => {
                                km.get("kind").and_then(|n| n.as_str()).map(str::to_string)
                            }
                            _ => None,
                        };
                        if let Some(name) = name {
                            if key == "elements" && out.contains_key(&name) {
                                r.err(
                                    k.span,
                                    format!("more than one element plugin registers kind `{name}`"),
                                    "registered twice",
                                );
                            }
                            out.insert(name, from.clone());
                        }
                    }
                }
                // BuildStream 1's form: a mapping of kind → version
                Value::Map(km) => {
                    for (k, _) in km.iter() {
                        out.insert(k.name.clone(), from.clone());
                    }
                }
                _ => {}
            }
        }
    }
}

fn read_refs(
    r: &mut Reader<WithIncludes>,
    dir: &Path,
    project: &str,
    includes: &Includes,
    cwd: &Path,
    at: &Spanned,
) -> Option<Node> {
    let path = dir.join("project.refs");
    if !path.is_file() {
        // no refs yet: every source without an inline ref is reported as such
        return None;
    }
    let mut errors = Vec::new();
    let shown = crate::load::display_name(&path, cwd);
    let loc = r.loc;
    let at_fn = |span, msg: String, label: &str| crate::read::Locate::error(loc, span, msg, label);
    let root = includes.get(&path, shown, at, &at_fn, &mut errors)?;
    r.errors.extend(errors);
    let projects = root.as_map()?.get("projects")?.as_map()?;
    projects.get(project).cloned()
}

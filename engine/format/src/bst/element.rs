//! A `.bst` element, read as BuildStream reads it: `(@)` and `(?)`
//! processed, then translated into the shape of a cas element (dependency
//! dictionaries into names, BuildStream's source fields into cas's) so that
//! the one element decoder checks the rest. Spans are kept throughout.

use super::directives::{resolve_lists, IncludeFn, Processor};
use super::project::BstProject;
use crate::read::{Locate, Reader};
use crate::yaml::{Key, Map, Node, Style, Value};

/// A BuildStream element's keys: cas's, and `environment-nocache`.
fn is_element_key(k: &str) -> bool {
    crate::element::ELEMENT_KEYS.contains(&k) || k == "environment-nocache"
}

/// Source kinds that BuildStream projects use and cas does not read yet.
const UNSUPPORTED_SOURCES: &[&str] = &[
    "ostree",
    "docker",
    "bzr",
    "deb",
    "gen_cargo_lock",
    "workspace",
];

fn scalar(s: &str, span: crate::diagnostics::Span) -> Node {
    Node {
        span,
        value: Value::Scalar(s.to_string(), Style::Quoted),
    }
}

fn key(name: &str, span: crate::diagnostics::Span) -> Key {
    Key {
        name: name.to_string(),
        span,
    }
}

/// What a `.bst` file says that cas's shape of an element does not keep,
/// for showing the element as BuildStream does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    /// The whole `public:` mapping (every domain, not only `bst`).
    pub public: Option<Node>,
    /// A `kind: link` (shown as the element it points to).
    pub link: bool,
    /// A junction shown as a target (`cas show`): never built.
    pub junction: bool,
    /// Its `config:` as written.
    pub junction_config: Option<Node>,
    /// Sources cas cannot fetch (kinds of BuildStream plugins it does not
    /// implement, or no `ref` yet), each with why: the element loads, it
    /// cannot be built.
    pub unsupported: Vec<String>,
    /// A source has no `ref` (BuildStream's state `no reference`).
    pub no_reference: bool,
}

/// A source URL `alias:rest` whose alias the project does not define:
/// said at the URL (BuildStream checks it even before a ref exists).
fn bad_alias<L: Locate>(r: &mut Reader<L>, bst: &BstProject, item: &Node) -> bool {
    let Some(url) = item.as_map().and_then(|m| m.get("url")) else {
        return false;
    };
    let Some(text) = url.as_str() else {
        return false;
    };
    match text.split_once(':') {
        Some((alias, rest))
            if !rest.starts_with("//")
                && !alias.is_empty()
                && !alias.contains('/')
                && !bst.aliases.contains(alias) =>
        {
            r.err(
                url.span,
                format!("invalid alias `{alias}` in the URL `{text}`: the project defines no such alias"),
                "no such alias",
            );
            true
        }
        _ => false,
    }
}

/// Source kinds whose elements still load (for `show`) although cas cannot
/// fetch them: BuildStream plugins' kinds, not a misspelt one.
fn deferred_source(bst: &BstProject, kind: &str) -> bool {
    UNSUPPORTED_SOURCES.contains(&kind)
        || matches!(kind, "pip" | "cargo" | "cargo2")
        || bst.source_plugins.contains_key(kind)
}

/// Process and translate one `.bst` file's tree; `true` for a junction
/// (left as written: the loader reads it). Errors go to `r`.
pub(crate) fn translate<L: Locate>(
    r: &mut Reader<L>,
    loc: &L,
    bst: &BstProject,
    name: &str,
    prefix: &str,
    root: Node,
    include: &IncludeFn,
) -> (Node, bool, Extra) {
    let prefixed = |v: &str| format!("{prefix}{v}");
    let mut p = Processor::new(loc, Some(&bst.values), include);
    let mut node = p.process(root);
    r.errors.append(&mut p.r.errors);
    super::strip_scalars(&mut node);
    let span = node.span;
    let Value::Map(map) = node.value else {
        return (node, false, Extra::default());
    };
    let kind = map.get("kind").and_then(|n| n.as_str()).unwrap_or("");
    let is_junction = kind == "junction";
    if kind == "stack" {
        forbid(r, &map, "stack", &["sources"]);
    }
    // a domain other than `bst` is never composed with anything: a list
    // directive in it has no list to apply to
    if let Some(Value::Map(pm)) = map.get("public").map(|p| &p.value) {
        for (domain, v) in pm.iter() {
            if domain.name != "bst" {
                trailing_directives(r, v);
            }
        }
    }
    if is_junction {
        forbid(
            r,
            &map,
            "junction",
            &["depends", "build-depends", "runtime-depends"],
        );
    }
    if kind == "link" {
        let extra = Extra {
            link: true,
            ..Extra::default()
        };
        return (link(r, map, span, &prefixed), false, extra);
    }
    for (k, _) in map.iter() {
        if !is_element_key(&k.name) {
            let allowed = crate::element::ELEMENT_KEYS
                .iter()
                .copied()
                .chain(["environment-nocache"]);
            r.unknown_key(k.span, &k.name, allowed, "a BuildStream element");
        }
    }
    let mut out = Map::default();
    let mut build = Vec::new();
    let mut all = Vec::new();
    let mut runtime = Vec::new();
    // script: dependency `config: location` → layout
    let mut locations: Vec<(Node, Option<Node>)> = Vec::new();
    for (list_key, default) in [
        ("depends", 0u8),
        ("build-depends", 1),
        ("runtime-depends", 2),
    ] {
        let Some(mut n) = map.get(list_key).cloned() else {
            continue;
        };
        resolve_lists(&mut n);
        let items = match n.value {
            Value::Seq(items) => items,
            _ if n.is_null() => {
                r.err(
                    n.span,
                    format!("`{list_key}` is empty: a list of dependencies, or nothing at all"),
                    "expected a list",
                );
                continue;
            }
            _ => {
                r.err(
                    n.span,
                    format!(
                        "`{list_key}`: expected a list of dependencies, found {}",
                        n.describe()
                    ),
                    "expected a list",
                );
                continue;
            }
        };
        for item in items {
            let (names, ty, config) = match &item.value {
                Value::Scalar(v, _) => (vec![scalar(&prefixed(v), item.span)], None, None),
                Value::Map(m) => {
                    r.check_keys(
                        m,
                        &["filename", "type", "junction", "strict", "config"],
                        "a dependency",
                    );
                    let junction = m.get("junction").and_then(|j| r.string(j, "junction"));
                    let names: Vec<Node> = match m.get("filename").map(|f| &f.value) {
                        Some(Value::Scalar(..)) => {
                            vec![m.get("filename").cloned().unwrap_or(item.clone())]
                        }
                        Some(Value::Seq(items)) => items.clone(),
                        _ => {
                            r.err(
                                item.span,
                                "a dependency mapping needs `filename`",
                                "no `filename:`",
                            );
                            continue;
                        }
                    };
                    let names = names
                        .into_iter()
                        .filter_map(|f| {
                            let s = r.string(&f, "filename")?;
                            let v = match &junction {
                                Some(j) => prefixed(&format!("{}:{}", j.value, s.value)),
                                None => prefixed(&s.value),
                            };
                            Some(scalar(&v, f.span))
                        })
                        .collect();
                    let ty = m.get("type").and_then(|t| r.string(t, "type"));
                    if let Some(s) = m.get("strict") {
                        match r.bool(s, "strict") {
                            Some(false) => r.err(
                                s.span,
                                "`strict: false` is not supported: a dependency is not strict unless it says `strict: true`",
                                "unsupported",
                            ),
                            Some(true)
                                if default == 2
                                    || ty.as_ref().is_some_and(|t| t.value == "runtime") =>
                            {
                                r.err(
                                    s.span,
                                    "a runtime dependency cannot be `strict` (only what is built against can be)",
                                    "runtime dependency",
                                );
                            }
                            _ => {}
                        }
                    }
                    (names, ty, m.get("config").cloned())
                }
                _ => {
                    r.err(
                        item.span,
                        format!(
                            "a dependency is a name or a mapping, not {}",
                            item.describe()
                        ),
                        "expected a name",
                    );
                    continue;
                }
            };
            let slot = match (default, ty.as_ref().map(|t| t.value.as_str())) {
                (0, None) => 0,
                (0, Some("build")) => 1,
                (0, Some("runtime")) => 2,
                (0, Some("all")) => 0,
                (d, None) => d,
                (_, Some(t)) => {
                    if let Some(ts) = &ty {
                        r.err_help(
                            ts.span,
                            format!("`type: {t}` is not allowed under `{list_key}`"),
                            "invalid type",
                            "`type` (build or runtime) belongs to entries of `depends`",
                        );
                    }
                    continue;
                }
            };
            for n in names {
                if let Some(v) = n.as_str().filter(|v| !v.ends_with(".bst")) {
                    r.err_help(
                        n.span,
                        format!("`{v}`: BuildStream element names end in `.bst`"),
                        "not a .bst element",
                        "a BuildStream project's elements are `.bst` files",
                    );
                    continue;
                }
                if slot != 2 {
                    locations.push((n.clone(), config.clone()));
                }
                match slot {
                    0 => all.push(n),
                    1 => build.push(n),
                    _ => runtime.push(n),
                }
            }
        }
    }
    if kind == "stack" && !(build.is_empty() && runtime.is_empty()) {
        let at = build.first().or(runtime.first()).map_or(span, |n| n.span);
        r.err_help(
            at,
            "every dependency of a `stack` element is both a build and a runtime dependency",
            "build-only or runtime-only",
            "list it under `depends` without `type`",
        );
    }
    for (k, list) in [
        ("depends", all),
        ("build-depends", build),
        ("runtime-depends", runtime),
    ] {
        if !list.is_empty() {
            let span = map.get_entry(k).map_or(span, |(k, _)| k.span);
            out.entries.push((
                key(k, span),
                Node {
                    span,
                    value: Value::Seq(list),
                },
            ));
        }
    }
    for k in ["kind", "description", "variables", "environment", "sandbox"] {
        if let Some((kk, v)) = map.get_entry(k) {
            let mut v = v.clone();
            if k == "sandbox" {
                sandbox(r, &mut v);
            }
            if k == "variables" || k == "environment" {
                // BuildStream reads a variable set to nothing as empty
                if let Value::Map(m) = &mut v.value {
                    for (_, val) in &mut m.entries {
                        if val.is_null() {
                            val.value = Value::Scalar(String::new(), Style::Quoted);
                        }
                    }
                }
            }
            out.entries.push((kk.clone(), v));
        }
    }
    let mut extra = Extra::default();
    if let Some((kk, v)) = map.get_entry("sources") {
        let mut v = v.clone();
        resolve_lists(&mut v);
        let refs = bst
            .refs
            .as_ref()
            .and_then(|n| n.as_map())
            .and_then(|m| m.get(name))
            .cloned();
        if let Value::Seq(items) = &mut v.value {
            let mut kept = Vec::new();
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                let stored = refs.as_ref().and_then(|n| match &n.value {
                    Value::Seq(refs) => refs.get(i).cloned(),
                    _ => None,
                });
                let source_kind = item
                    .as_map()
                    .and_then(|m| m.get("kind"))
                    .and_then(|k| k.as_str())
                    .unwrap_or_default()
                    .to_string();
                let before = r.errors.len();
                // a source already reported is not checked again as cas's
                if source(r, bst, &mut item, stored) {
                    kept.extend(patch_queue(r, bst, item));
                } else if r.errors[before..]
                    .iter()
                    .all(|e| e.message.ends_with("source has no `ref`"))
                    && !bad_alias(r, bst, &item)
                {
                    // no ref yet: BuildStream shows the element (`no
                    // reference`) and fails only when fetching it
                    extra.no_reference = true;
                    for e in r.errors.drain(before..) {
                        extra.unsupported.push(format!(
                            "source {} (`{source_kind}`): {} (`bst source track` writes it)",
                            i + 1,
                            e.message
                        ));
                    }
                } else if deferred_source(bst, &source_kind) {
                    // BuildStream has a plugin for it; cas cannot fetch it:
                    // the element loads (show), fetching or building it fails
                    for e in r.errors.drain(before..) {
                        extra.unsupported.push(format!(
                            "source {} (`{source_kind}`): {}",
                            i + 1,
                            e.message
                        ));
                    }
                }
            }
            *items = kept;
        }
        out.entries.push((kk.clone(), v));
    }
    let mut config = map.get_entry("config").map(|(k, v)| (k.clone(), v.clone()));
    if kind == "script" {
        let with_location = locations.iter().any(|(_, c)| {
            c.as_ref()
                .and_then(|c| c.as_map())
                .is_some_and(|m| m.get("location").is_some())
        });
        if with_location {
            let layout: Vec<Node> = locations
                .iter()
                .map(|(n, c)| {
                    let loc = c
                        .as_ref()
                        .and_then(|c| c.as_map())
                        .and_then(|m| m.get("location"))
                        .cloned()
                        .unwrap_or_else(|| scalar("/", n.span));
                    let mut m = Map::default();
                    m.entries.push((key("element", n.span), n.clone()));
                    m.entries.push((key("destination", loc.span), loc));
                    Node {
                        span: n.span,
                        value: Value::Map(m),
                    }
                })
                .collect();
            let (ck, mut cv) = config.unwrap_or_else(|| {
                (
                    key("config", span),
                    Node {
                        span,
                        value: Value::Map(Map::default()),
                    },
                )
            });
            if let Value::Null = cv.value {
                cv.value = Value::Map(Map::default());
            }
            if let Value::Map(cm) = &mut cv.value {
                cm.entries.push((
                    key("layout", span),
                    Node {
                        span,
                        value: Value::Seq(layout),
                    },
                ));
            }
            config = Some((ck, cv));
        }
    }
    if let Some(c) = config {
        out.entries.push(c);
    }
    if let Some((kk, v)) = map.get_entry("public") {
        extra.public = Some(v.clone());
        // only the `bst` domain means anything to the core kinds
        let mut m = Map::default();
        if let Some((bk, bv)) = v.as_map().and_then(|m| m.get_entry("bst")) {
            m.entries.push((bk.clone(), bv.clone()));
        } else if !matches!(v.value, Value::Map(_) | Value::Null) {
            r.err(
                v.span,
                format!("`public`: expected a mapping, found {}", v.describe()),
                "expected a mapping",
            );
        }
        out.entries.push((
            kk.clone(),
            Node {
                span: v.span,
                value: Value::Map(m),
            },
        ));
    }
    (
        Node {
            span,
            value: Value::Map(out),
        },
        is_junction,
        extra,
    )
}

/// A link is its target: a stack that depends on it (`config: target`).
fn link<L: Locate>(
    r: &mut Reader<L>,
    map: Map,
    span: crate::diagnostics::Span,
    prefixed: &dyn Fn(&str) -> String,
) -> Node {
    let kspan = map.get("kind").map_or(span, |k| k.span);
    forbid(
        r,
        &map,
        "link",
        &["sources", "depends", "build-depends", "runtime-depends"],
    );
    let target = map
        .get("config")
        .and_then(|c| c.as_map())
        .and_then(|c| c.get("target"))
        .and_then(|t| r.string(t, "target"));
    let Some(t) = target else {
        r.err(
            kspan,
            "a link element needs `config: target:` (the element it stands for)",
            "no target",
        );
        return Node {
            span,
            value: Value::Map(map),
        };
    };
    let mut m = Map::default();
    m.entries.push((key("kind", kspan), scalar("stack", kspan)));
    m.entries.push((
        key("depends", t.span),
        Node {
            span: t.span,
            value: Value::Seq(vec![scalar(&prefixed(&t.value), t.span)]),
        },
    ));
    Node {
        span,
        value: Value::Map(m),
    }
}

/// A list directive (`(>)`, `(<)`, `(=)`) with no list under it: an error
/// at each.
fn trailing_directives<L: Locate>(r: &mut Reader<L>, node: &Node) {
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        match &n.value {
            Value::Map(m) if super::directives::is_directive(m) => r.err(
                n.span,
                "a list directive (`(>)`, `(<)`, `(=)`) with no list to apply to",
                "no list below",
            ),
            Value::Map(m) => todo.extend(m.iter().map(|(_, v)| v)),
            Value::Seq(items) => todo.extend(items.iter()),
            _ => {}
        }
    }
}

/// Keys a kind does not take (BuildStream: sources or dependencies of a
/// link or a junction), each an error at its key.
fn forbid<L: Locate>(r: &mut Reader<L>, map: &Map, kind: &str, keys: &[&str]) {
    for (k, v) in map.iter() {
        if keys.contains(&k.name.as_str()) && !v.is_null() {
            let what = if k.name == "sources" {
                "sources"
            } else {
                "dependencies"
            };
            r.err(
                k.span,
                format!("{what} are forbidden for `{kind}` elements"),
                "not allowed here",
            );
        }
    }
}

fn sandbox<L: Locate>(r: &mut Reader<L>, node: &mut Node) {
    let Value::Map(m) = &mut node.value else {
        return;
    };
    if let Some(pos) = m.entries.iter().position(|(k, _)| k.name == "build-os") {
        let (_, v) = m.entries.remove(pos);
        if let Some(s) = r.string(&v, "build-os") {
            if !s.value.eq_ignore_ascii_case("linux") {
                r.err(
                    s.span,
                    format!("`build-os: {}`: cas builds on Linux only", s.value),
                    "not Linux",
                );
            }
        }
    }
}

/// Rename one rename-able field.
fn rename(m: &mut Map, from: &str, to: &str) {
    if let Some((k, _)) = m.entries.iter_mut().find(|(k, _)| k.name == from) {
        k.name = to.to_string();
    }
}

/// community's `patch_queue` (every file of a directory of the project,
/// in sorted order, applied as a patch) as that many `patch` sources;
/// anything else as it is.
fn patch_queue<L: Locate>(r: &mut Reader<L>, bst: &BstProject, node: Node) -> Vec<Node> {
    let Some(m) = node.as_map() else {
        return vec![node];
    };
    if m.get("kind").and_then(|k| k.as_str()) != Some("patch_queue") {
        return vec![node];
    }
    let kind_span = m.get("kind").map_or(node.span, |k| k.span);
    let Some(path) = m.get("path").and_then(|p| r.string(p, "path")) else {
        r.err(
            kind_span,
            "a `patch_queue` source needs `path` (its directory of patches)",
            "no `path:`",
        );
        return vec![];
    };
    let Some(rel) = crate::project::relative_inside(&path.value) else {
        r.err(
            path.span,
            "`path` is a directory inside the project",
            "outside the project",
        );
        return vec![];
    };
    let dir = bst.root.join(&rel);
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            r.err(
                path.span,
                format!("cannot read the directory `{}`: {e}", path.value),
                "no such directory",
            );
            return vec![];
        }
    };
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let mut pm = Map::default();
            for (k, v) in m.iter() {
                match k.name.as_str() {
                    "kind" => pm.entries.push((k.clone(), scalar("patch", v.span))),
                    "path" => pm
                        .entries
                        .push((k.clone(), scalar(&format!("{}/{n}", rel.display()), v.span))),
                    _ => pm.entries.push((k.clone(), v.clone())),
                }
            }
            Node {
                span: node.span,
                value: Value::Map(pm),
            }
        })
        .collect()
}

/// Translate one source entry in place; `false` when it was reported.
fn source<L: Locate>(
    r: &mut Reader<L>,
    bst: &BstProject,
    node: &mut Node,
    stored: Option<Node>,
) -> bool {
    let before = r.errors.len();
    let Value::Map(m) = &mut node.value else {
        return true;
    };
    let Some(kind) = m.get("kind").and_then(|k| k.as_str()).map(str::to_string) else {
        return true;
    };
    let kind_span = m.get("kind").map_or(node.span, |k| k.span);
    // the project's `sources: KIND: config:` first, the source over it
    if let Some(defaults) = bst.source_defaults.get(&kind) {
        let mut base = defaults.clone();
        super::directives::composite(&mut base, std::mem::take(m));
        *m = base;
    }
    // BuildStream reads `directory: /etc` as relative to the build root
    if let Some((_, v)) = m.entries.iter_mut().find(|(k, _)| k.name == "directory") {
        if let Value::Scalar(d, _) = &mut v.value {
            let rel = d.trim_start_matches('/').to_string();
            *d = if rel.is_empty() { ".".into() } else { rel };
        }
    }
    // project.refs: the stored `ref` of this source
    if m.get("ref").is_none() {
        if let Some(stored) = stored
            .as_ref()
            .and_then(|s| s.as_map())
            .and_then(|s| s.get_entry("ref"))
        {
            m.entries.push((stored.0.clone(), stored.1.clone()));
        }
    }
    let set_kind = |m: &mut Map, k: &str| {
        if let Some((_, v)) = m.entries.iter_mut().find(|(k, _)| k.name == "kind") {
            v.value = Value::Scalar(k.to_string(), Style::Quoted);
        }
    };
    let drop_keys =
        |m: &mut Map, keys: &[&str]| m.entries.retain(|(k, _)| !keys.contains(&k.name.as_str()));
    // what only tracking and provenance read: nothing a build uses
    drop_keys(
        m,
        &[
            "version-guess-pattern",
            "version",
            "guess-version",
            "provenance",
            "exclude",
        ],
    );
    let need_ref = |r: &mut Reader<L>, m: &Map, what: &str| {
        if m.get("ref").is_none() {
            r.err_help(
                kind_span,
                format!("this `{kind}` source has no `ref`"),
                "no `ref:`",
                format!("`ref` is {what}; BuildStream's `bst source track` writes it"),
            );
        }
    };
    match kind.as_str() {
        "local" => {}
        "tar" | "zip" | "remote" => {
            need_ref(r, m, "the sha256 of the file");
            rename(m, "ref", "sha256");
            // cas's tar source reads zip files too (by their content)
            set_kind(m, if kind == "remote" { "remote" } else { "tar" });
            if kind != "remote" && m.get("base-dir").is_none() {
                m.entries
                    .push((key("base-dir", kind_span), scalar("*", kind_span)));
            }
        }
        "patch" | "patch_queue" => rename(m, "strip-level", "strip"),
        "git" | "git_repo" | "git_tag" | "git_module" => {
            if kind == "git_module" {
                // a submodule's checkout: a git source staged at its `path`
                // (under `directory`, if any)
                let path = m
                    .get("path")
                    .and_then(|p| r.string(p, "path"))
                    .map(|p| p.value);
                let dir = m
                    .get("directory")
                    .and_then(|d| d.as_str())
                    .map(str::to_string);
                drop_keys(m, &["path", "directory"]);
                if let Some(path) = path {
                    let joined = match dir {
                        Some(d) if !d.is_empty() && d != "." => format!("{d}/{path}"),
                        _ => path,
                    };
                    m.entries
                        .push((key("directory", kind_span), scalar(&joined, kind_span)));
                } else {
                    r.err(
                        kind_span,
                        "a `git_module` source needs `path` (where the submodule goes)",
                        "no `path:`",
                    );
                }
            }
            set_kind(m, "git");
            need_ref(r, m, "the commit (or `git describe` form TAG-N-gCOMMIT)");
            if let Some((_, v)) = m.entries.iter_mut().find(|(k, _)| k.name == "ref") {
                if let Value::Scalar(s, _) = &v.value {
                    if let Some(commit) = commit_of_ref(s) {
                        v.value = Value::Scalar(commit, Style::Quoted);
                    }
                }
            }
            let submodules = m
                .get("checkout-submodules")
                .and_then(|n| n.as_str())
                .is_some_and(|s| s == "True" || s == "true");
            if submodules {
                r.err(
                    kind_span,
                    "git submodules (`checkout-submodules: True`) are not supported yet",
                    "submodules",
                );
            }
            drop_keys(
                m,
                &[
                    "submodules",
                    "checkout-submodules",
                    "track-tags",
                    "tags",
                    "track-extra",
                    "ref-format",
                    "track-ref",
                ],
            );
        }
        "cargo" | "cargo2" => cargo(r, m, &kind, kind_span),
        "pip" => r.err_help(
            kind_span,
            "`pip` sources are not supported: their `ref` pins versions, not the files' checksums",
            "no checksums",
            "cas fetches only what a checksum or commit pins; stage the wheels or sdists as `remote` or `tar` sources with their sha256 (pip's `--require-hashes` lists them)",
        ),
        k if UNSUPPORTED_SOURCES.contains(&k) => {
            r.err_help(
                kind_span,
                format!("`{k}` sources are not supported yet"),
                "not supported yet",
                "cas reads local, tar, zip, remote, patch, git, git_module, cargo and cargo2 sources of BuildStream projects",
            );
        }
        k => match bst.source_plugins.get(k) {
            Some(from) => r.err(
                kind_span,
                format!(
                    "source kind `{k}` comes from a plugin ({from}) that cas does not implement"
                ),
                "plugin not implemented",
            ),
            None => r.err_help(
                kind_span,
                format!("unknown source kind `{k}`"),
                "unknown source kind",
                "BuildStream's source kinds that cas reads: local, tar, zip, remote, patch, git, git_module, cargo, cargo2",
            ),
        },
    }
    r.errors.len() == before
}

/// BuildStream's `cargo` (buildstream-plugins) and `cargo2` (community)
/// sources as cas's `cargo`: `ref` (the crate list: `name`, `version`,
/// `sha`; cargo2's entries also have `kind: registry`) becomes `crates`,
/// `vendor-dir` keeps the plugin's default (`crates`, `.vendored-crates`).
fn cargo<L: Locate>(
    r: &mut Reader<L>,
    m: &mut Map,
    kind: &str,
    kind_span: crate::diagnostics::Span,
) {
    let default_vendor = if kind == "cargo" {
        "crates"
    } else {
        ".vendored-crates"
    };
    if m.get("vendor-dir").is_none() {
        m.entries.push((
            key("vendor-dir", kind_span),
            scalar(default_vendor, kind_span),
        ));
    }
    if m.get("url").is_none() {
        r.err_help(
            kind_span,
            format!("this `{kind}` source has no `url`"),
            "no `url:`",
            "`url` is the base of the crates registry (its crates are URL + name/name-version.crate); projects usually give it in project.conf `sources:` or with an alias",
        );
    }
    let crates: Vec<Node> = match m.get("ref").map(|n| &n.value) {
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|item| {
                let im = item.as_map()?;
                let ck = im.get("kind").and_then(|k| k.as_str()).unwrap_or("registry");
                if ck != "registry" {
                    r.err(
                        item.span,
                        format!("`{kind}` crates of kind `{ck}` are not supported yet (only registry crates)"),
                        "not supported yet",
                    );
                    return None;
                }
                let mut c = Map::default();
                for (k, v) in im.iter() {
                    match k.name.as_str() {
                        "name" | "version" => c.entries.push((k.clone(), v.clone())),
                        "sha" => c.entries.push((key("sha256", k.span), v.clone())),
                        _ => {}
                    }
                }
                Some(Node {
                    span: item.span,
                    value: Value::Map(c),
                })
            })
            .collect(),
        _ => {
            r.err_help(
                kind_span,
                format!("this `{kind}` source has no `ref` (its crate list)"),
                "no `ref:`",
                "BuildStream's `bst source track` writes the crate list from Cargo.lock",
            );
            Vec::new()
        }
    };
    m.entries
        .retain(|(k, _)| !["ref", "cargo-lock", "git-mirrors"].contains(&k.name.as_str()));
    m.entries.push((
        key("crates", kind_span),
        Node {
            span: kind_span,
            value: Value::Seq(crates),
        },
    ));
    if let Some((_, v)) = m.entries.iter_mut().find(|(k, _)| k.name == "kind") {
        v.value = Value::Scalar("cargo".into(), Style::Quoted);
    }
}

/// The commit of a BuildStream git ref: a commit, or `TAG-N-gCOMMIT`.
pub(crate) fn commit_of_ref(s: &str) -> Option<String> {
    let is_commit = |c: &str| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit());
    if is_commit(s) {
        return Some(s.to_ascii_lowercase());
    }
    let (_, tail) = s.rsplit_once("-g")?;
    is_commit(tail).then(|| tail.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn git_refs() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(super::commit_of_ref(c).as_deref(), Some(c));
        assert_eq!(
            super::commit_of_ref(&format!("v1.2-3-g{c}")).as_deref(),
            Some(c)
        );
        assert_eq!(super::commit_of_ref("v1.2"), None);
    }
}

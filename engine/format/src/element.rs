//! Element files: decoding (keys and types checked, sources resolved) and
//! resolution against their kind and project into a fully expanded `Element`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use cas_sources::Source;

use crate::data::Data;
use crate::diagnostics::{Error, FileId, Files, Span};
use crate::kind::{is_phase, merge_config, merge_public, Behaviour, ConfigValue, Kind, Layer};
use crate::project::{relative_inside, Project};
use crate::read::{Reader, Spanned};
use crate::settings::{Config, Setting};
use crate::variables::{Def, Expander, Scope, MAX_JOBS};
use crate::yaml::{Map, Node, Value};

/// Index of an element in `Loaded::elements`. Ids follow the order of
/// element names, so they are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ElementId(pub u32);

impl ElementId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

pub const ELEMENT_KEYS: &[&str] = &[
    "kind",
    "description",
    "license",
    "depends",
    "build-depends",
    "runtime-depends",
    "sources",
    "variables",
    "environment",
    "config",
    "public",
    "sandbox",
    "checks",
];
const SANDBOX_KEYS: &[&str] = &["build-arch", "build-uid", "build-gid", "network"];

/// The three kinds of dependency edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DepKind {
    /// `build-depends`: staged for the build, with its runtime closure.
    Build,
    /// `depends`: build and runtime.
    All,
    /// `runtime-depends`: carried to whatever depends on this element.
    Runtime,
}

impl DepKind {
    pub fn key(self) -> &'static str {
        match self {
            DepKind::Build => "build-depends",
            DepKind::All => "depends",
            DepKind::Runtime => "runtime-depends",
        }
    }
}

/// `public:` data read by other elements (compose).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Public {
    #[serde(rename = "integration-commands")]
    pub integration_commands: Vec<String>,
    /// Domain → glob patterns (expanded), e.g. `devel: [/usr/include/**]`.
    #[serde(rename = "split-rules")]
    pub split_rules: BTreeMap<String, Vec<String>>,
    /// Globs (expanded) of the paths this element's files may overwrite
    /// when staged after another element that has them.
    #[serde(rename = "overlap-whitelist", skip_serializing_if = "Vec::is_empty")]
    pub overlap_whitelist: Vec<String>,
}

/// How a check's findings are treated (`checks:` in an element or project;
/// spec/format.md). The setting is part of the key when it is not `warn`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported, recorded with the result; the step succeeds.
    #[default]
    Warn,
    /// The step fails.
    Error,
    /// Not checked.
    Off,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Off => "off",
        }
    }
}

/// The checks an element's output goes through, and their severities.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checks {
    /// Every `DT_NEEDED` library of the output's ELF files is found in the
    /// element's runtime closure (default `warn`).
    pub libraries: Severity,
    /// Every ELF file of the output is of the element's `build-arch`
    /// (default `error`).
    pub architecture: Severity,
    /// Globs of output paths the architecture check skips (firmware, tools
    /// for another machine).
    pub architecture_exempt: Vec<String>,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            libraries: Severity::Warn,
            architecture: Severity::Error,
            architecture_exempt: Vec::new(),
        }
    }
}

pub(crate) const CHECK_KEYS: &[&str] = &["libraries", "architecture", "architecture-exempt"];

/// A `checks:` map as written (element or project); unset fields are `None`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawChecks {
    pub libraries: Option<Severity>,
    pub architecture: Option<Severity>,
    pub architecture_exempt: Option<Vec<String>>,
}

impl RawChecks {
    /// These over `base` (the project's).
    pub(crate) fn over(&self, base: &Checks) -> Checks {
        Checks {
            libraries: self.libraries.unwrap_or(base.libraries),
            architecture: self.architecture.unwrap_or(base.architecture),
            architecture_exempt: self
                .architecture_exempt
                .clone()
                .unwrap_or_else(|| base.architecture_exempt.clone()),
        }
    }
}

/// Read a `checks:` map (element or project): severities `warn`, `error`
/// or `off`; `architecture-exempt` a list of globs.
pub(crate) fn read_checks<L: crate::read::Locate>(
    r: &mut Reader<L>,
    node: &Node,
    into: &mut RawChecks,
) {
    let Some(m) = r.map(node, "checks") else {
        return;
    };
    r.check_keys(m, CHECK_KEYS, "`checks`");
    let severity = |r: &mut Reader<L>, key: &str| -> Option<Severity> {
        let s = r.string(m.get(key)?, key)?;
        match s.value.as_str() {
            "warn" => Some(Severity::Warn),
            "error" => Some(Severity::Error),
            "off" => Some(Severity::Off),
            other => {
                r.err(
                    s.span,
                    format!("`{key}`: `{other}` is not a severity: expected warn, error or off"),
                    "expected warn, error or off",
                );
                None
            }
        }
    };
    if let Some(v) = severity(r, "libraries") {
        into.libraries = Some(v);
    }
    if let Some(v) = severity(r, "architecture") {
        into.architecture = Some(v);
    }
    if let Some(n) = m.get("architecture-exempt") {
        into.architecture_exempt = Some(
            r.strings(n, "architecture-exempt")
                .into_iter()
                .map(|s| s.value)
                .collect(),
        );
    }
}

/// Sandbox settings; they are part of the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SandboxConfig {
    #[serde(rename = "build-arch")]
    pub build_arch: String,
    #[serde(rename = "build-uid")]
    pub build_uid: u32,
    #[serde(rename = "build-gid")]
    pub build_gid: u32,
}

impl Element {
    /// What the element does (its kind's behaviour).
    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }
}

/// Spans kept to point later errors at the element file.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: FileId,
    /// The `kind:` value (or the start of the file).
    pub kind_span: Span,
    /// Each dependency entry: (kind of edge, target, span of the name).
    pub deps: Vec<(DepKind, ElementId, Span)>,
    /// 1-based line and column of the `kind:` value.
    pub line: usize,
    pub col: usize,
}

/// A loaded element: everything expanded, dependencies resolved.
#[derive(Debug, Clone)]
pub struct Element {
    pub id: ElementId,
    /// Path relative to the project's element-path, e.g. `base/busybox.yaml`.
    pub name: String,
    pub file: PathBuf,
    pub kind: String,
    pub description: Option<String>,
    /// `license:` as written: an SPDX licence expression (checked by
    /// crate cas-sbom, which reports it); metadata, not part of the key.
    pub license: Option<String>,
    pub build_depends: Vec<ElementId>,
    pub depends: Vec<ElementId>,
    pub runtime_depends: Vec<ElementId>,
    pub sources: Vec<Source>,
    /// Every variable visible to the element, expanded (`%{max-jobs}` kept literal).
    pub variables: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    /// The phases of the kind in order, with their expanded commands.
    pub phases: Vec<(String, Vec<String>)>,
    /// Its kind's behaviour (crate cas-builder's kinds: what it does).
    pub behaviour: Behaviour,
    /// Its `config:`, read by its behaviour.
    pub config: Config,
    /// The dialect of its project (BuildStream's or cas's).
    pub dialect: crate::project::Dialect,
    pub public: Public,
    pub sandbox: SandboxConfig,
    /// Where the commands run, when the kind says (`None`: `%{build-root}`).
    pub workdir: Option<String>,
    /// Its configuration as BuildStream shows it (`%{config}`): the kind's
    /// `config:` with the element's over it, expanded.
    pub shown_config: Data,
    /// Its public data as BuildStream shows it (`%{public}`): every domain
    /// as written, expanded, with the split rules it inherits.
    pub shown_public: Data,
    /// The variables its commands, environment, config, public data and
    /// sandbox settings refer to, through other variables too: what can
    /// change its key (`cas explain` names only these).
    pub used_variables: std::collections::BTreeSet<String>,
    /// A BuildStream element's variable names in the order BuildStream
    /// composes them (`max-jobs` among them); empty for cas's elements.
    pub shown_order: Vec<String>,
    /// The same for its environment.
    pub shown_env_order: Vec<String>,
    /// Why its sources cannot be fetched (BuildStream plugins' source kinds
    /// cas does not implement, a source with no `ref` yet): it is shown,
    /// never built.
    pub unsupported: Vec<String>,
    /// A source of it has no `ref` yet (state `no-reference`).
    pub no_reference: bool,
    /// A BuildStream `kind: link`: a stand-in for the element it points
    /// to (its one dependency), which BuildStream shows in its place.
    pub link: bool,
    /// Files of later-staged dependencies may replace earlier ones without
    /// a whitelist (a BuildStream project without `fatal-warnings: [overlaps]`).
    pub overlaps_allowed: bool,
    /// The checks of its output (the element's `checks:`, else the project's).
    pub checks: Checks,
    /// The directory of its open workspace (its sources are then that
    /// directory; crate::workspaces).
    pub workspace: Option<std::path::PathBuf>,
    /// Where its own file sets each variable it sets (for `cas explain`;
    /// [`crate::Loaded::variable_origin`]).
    pub variable_spans: Vec<(String, Span)>,
    pub origin: Origin,
}

impl Element {
    /// What `%{max-jobs}` is in its step given the run's job count: 1 when
    /// it sets `notparallel` to true (BuildStream's), else `jobs`.
    pub fn max_jobs(&self, jobs: usize) -> usize {
        match self.variables.get("notparallel").map(String::as_str) {
            Some("True" | "true" | "1") => 1,
            _ => jobs,
        }
    }
}

/// An element file as written (keys and types checked, sources decoded).
#[derive(Debug)]
pub(crate) struct RawElement {
    pub name: String,
    /// Its project in the load (0: the top one; others through junctions).
    pub project: usize,
    pub file: FileId,
    pub path: PathBuf,
    pub root_span: Span,
    pub kind: Option<Spanned>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub deps: Vec<(DepKind, Spanned)>,
    pub sources: Vec<Source>,
    pub variables: Vec<(Spanned, Spanned)>,
    pub environment: Vec<(Spanned, Spanned)>,
    pub config: Option<Map>,
    pub public: Option<Node>,
    pub build_arch: Option<Spanned>,
    pub build_uid: u32,
    pub build_gid: u32,
    pub checks: RawChecks,
    /// A `.bst` file's: what BuildStream shows that cas's shape drops.
    pub bst: Option<crate::bst::Extra>,
}

/// A dependency name as written, normalised (`./a//b.yaml` → `a/b.yaml`).
pub fn normalise_name(s: &str) -> Option<String> {
    let p = relative_inside(s)?;
    let n: Vec<String> = p
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if n.is_empty() {
        None
    } else {
        Some(n.join("/"))
    }
}

pub(crate) fn decode<L: crate::read::Locate>(
    loc: &L,
    path: &std::path::Path,
    id: FileId,
    name: String,
    root: Option<&Node>,
    project: &Project,
) -> Result<RawElement, Vec<Error>> {
    let mut r = Reader::new(loc);
    let root_span = Span::new(id, 0, 0);
    let Some(root) = root else {
        r.err_help(
            root_span,
            "empty element file",
            "nothing here",
            "an element needs at least `kind:` (e.g. `kind: manual`)",
        );
        return Err(r.errors);
    };
    let Some(map) = r.map(root, "element") else {
        if root.is_null() {
            r.err(root.span, "empty element file", "nothing here");
        }
        return Err(r.errors);
    };
    r.check_keys(map, ELEMENT_KEYS, "an element");
    let mut raw = RawElement {
        name,
        project: 0,
        file: id,
        path: path.to_path_buf(),
        root_span: root.span,
        kind: None,
        description: None,
        license: None,
        deps: Vec::new(),
        sources: Vec::new(),
        variables: Vec::new(),
        environment: Vec::new(),
        config: None,
        public: None,
        build_arch: None,
        build_uid: 0,
        build_gid: 0,
        checks: RawChecks::default(),
        bst: None,
    };
    match map.get("kind") {
        Some(n) => raw.kind = r.string(n, "kind"),
        None => r.err_help(Span::new(id, root.span.start as usize, root.span.start as usize), "element has no `kind`", "no `kind:`", "add `kind:` (import, manual, make, autotools, cmake, meson, compose, script, stack, or a project kind)"),
    }
    if let Some(n) = map.get("description") {
        if !n.is_null() {
            raw.description = r.string(n, "description").map(|s| s.value);
        }
    }
    if let Some(n) = map.get("license") {
        if !n.is_null() {
            raw.license = r.string(n, "license").map(|s| s.value);
        }
    }
    for dk in [DepKind::Build, DepKind::All, DepKind::Runtime] {
        let key = dk.key();
        if let Some(n) = map.get(key) {
            if !matches!(n.value, Value::Seq(_) | Value::Null) {
                r.err(
                    n.span,
                    format!(
                        "`{key}`: expected a list of element names, found {}",
                        n.describe()
                    ),
                    "expected a list",
                );
                continue;
            }
            for dep in r.strings(n, key) {
                match normalise_name(&dep.value) {
                    Some(v) => raw.deps.push((
                        dk,
                        Spanned {
                            value: v,
                            span: dep.span,
                        },
                    )),
                    None => r.err(
                        dep.span,
                        format!(
                            "`{}` is not an element name (a relative path inside the element path)",
                            dep.value
                        ),
                        "invalid name",
                    ),
                }
            }
        }
    }
    if let Some(n) = map.get("sources") {
        match &n.value {
            Value::Seq(items) => {
                for item in items {
                    if let Some(s) = crate::source::decode(&mut r, project, item) {
                        raw.sources.push(s);
                    }
                }
            }
            Value::Null => {}
            _ => r.err(
                n.span,
                format!(
                    "`sources`: expected a list of sources, found {}",
                    n.describe()
                ),
                "expected a list",
            ),
        }
    }
    if let Some(n) = map.get("variables") {
        raw.variables = r.string_map(n, "variables");
    }
    if let Some(n) = map.get("environment") {
        raw.environment = r.string_map(n, "environment");
    }
    if let Some(n) = map.get("config") {
        raw.config = r.map(n, "config").cloned();
    }
    if let Some(n) = map.get("public") {
        if r.map(n, "public").is_some() {
            raw.public = Some(n.clone());
        }
    }
    if let Some(n) = map.get("checks") {
        read_checks(&mut r, n, &mut raw.checks);
    }
    if let Some(n) = map.get("sandbox") {
        if let Some(m) = r.map(n, "sandbox") {
            r.check_keys(m, SANDBOX_KEYS, "`sandbox`");
            raw.build_arch = m.get("build-arch").and_then(|n| r.string(n, "build-arch"));
            raw.build_uid = m
                .get("build-uid")
                .and_then(|n| r.u32(n, "build-uid"))
                .unwrap_or(0);
            raw.build_gid = m
                .get("build-gid")
                .and_then(|n| r.u32(n, "build-gid"))
                .unwrap_or(0);
            if let Some(n) = m.get("network") {
                let off = matches!(&n.value, Value::Scalar(s, _) if s == "false" || s == "off");
                if !off {
                    r.err_help(
                        n.span,
                        "`network`: builds have no network access",
                        "only `false` is allowed",
                        "fetch what the build needs as sources (tar, remote, git...)",
                    );
                }
            }
        }
    }
    if r.errors.is_empty() {
        Ok(raw)
    } else {
        Err(r.errors)
    }
}

/// What resolving an element needs from the whole load.
pub(crate) struct Context<'a> {
    pub files: &'a Files,
    pub project: &'a Project,
    pub defaults: &'a Layer,
    pub kinds: &'a BTreeMap<String, Kind>,
    /// Project kinds that could not be resolved → their file (for messages).
    pub broken_kinds: &'a BTreeMap<String, String>,
    pub ids: &'a HashMap<String, ElementId>,
    pub host_arch: &'a str,
    /// The architecture built for (`--arch`, else this machine's).
    pub target_arch: &'a str,
}

/// The element's dependencies by edge kind (each once, in order written);
/// unknown ones are errors at their name.
fn resolve_deps(
    cx: &Context,
    raw: &RawElement,
    r: &mut Reader<Files>,
    origin: &mut Origin,
) -> (Vec<ElementId>, Vec<ElementId>, Vec<ElementId>) {
    let (mut bd, mut d, mut rd) = (Vec::new(), Vec::new(), Vec::new());
    for (dk, dep) in &raw.deps {
        if let Some(&did) = cx.ids.get(&dep.value) {
            let list = match dk {
                DepKind::Build => &mut bd,
                DepKind::All => &mut d,
                DepKind::Runtime => &mut rd,
            };
            if !list.contains(&did) {
                list.push(did);
            }
            origin.deps.push((*dk, did, dep.span));
        } else {
            let file = cx.project.element_path.join(&dep.value);
            let help = match suggest_file(&file) {
                Some(s) => format!(
                    "did you mean `{s}`? (names are relative to `{}`)",
                    cx.project.element_path.display()
                ),
                None => format!(
                    "element names are paths relative to `{}`",
                    cx.project.element_path.display()
                ),
            };
            r.err_help(
                dep.span,
                format!("dependency `{}` not found", dep.value),
                "no such element",
                help,
            );
        }
    }

    (bd, d, rd)
}

/// The element's kind; an unknown kind, or one whose file has errors, is an
/// error at `kind:`.
fn resolve_kind<'k>(cx: &'k Context, raw: &RawElement, r: &mut Reader<Files>) -> Option<&'k Kind> {
    let foreign = |name: &str| {
        cx.project
            .bst
            .as_ref()
            .and_then(|b| b.foreign_element_plugins.get(name))
    };
    // BuildStream's core kinds are always there; the others come from a
    // plugin package the project must declare
    let undeclared = |name: &str| {
        cx.project.bst.as_ref().is_some_and(|b| {
            !matches!(
                name,
                "import"
                    | "manual"
                    | "compose"
                    | "filter"
                    | "script"
                    | "stack"
                    | "junction"
                    | "link"
            ) && crate::kind::BST_BUILTIN.iter().any(|(n, _)| *n == name)
                && !b.element_plugins.contains_key(name)
        })
    };
    match &raw.kind {
        Some(k) if undeclared(&k.value) => {
            r.err_help(
                k.span,
                format!("unknown kind `{}`: no plugin of the project declares it", k.value),
                "plugin not declared",
                format!(
                    "BuildStream's core kinds are import, manual, compose, filter, script and stack; `{}` comes from a plugin package: list it in project.conf `plugins:` (e.g. `origin: pip`, `package-name: buildstream-plugins`, `elements: [{}]`)",
                    k.value, k.value
                ),
            );
            None
        }
        Some(k) if foreign(&k.value).is_some() => {
            let from = foreign(&k.value).cloned().unwrap_or_default();
            let also = if cx.kinds.contains_key(&k.value) {
                format!(
                    "; cas's own `{}` is BuildStream's, not this plugin's, and is not used in its place",
                    k.value
                )
            } else {
                String::new()
            };
            r.err_help(
                k.span,
                format!(
                    "kind `{}` comes from a plugin ({from}) that cas does not implement",
                    k.value
                ),
                "plugin not implemented",
                format!("cas runs no Python plugins{also}"),
            );
            None
        }
        Some(k) => match cx.kinds.get(&k.value) {
            Some(kind) => Some(kind),
            None if cx.broken_kinds.contains_key(&k.value) => {
                r.err_help(
                    k.span,
                    format!(
                        "kind `{}` cannot be used: its file {} has errors",
                        k.value, cx.broken_kinds[&k.value]
                    ),
                    "kind with errors",
                    "the errors of the kind file are reported with it; fix them first",
                );
                None
            }
            None if cx
                .project
                .bst
                .as_ref()
                .is_some_and(|b| b.element_plugins.contains_key(&k.value)) =>
            {
                // a kind of a plugin package the project declares (through
                // a junction, or one cas reads): the element loads as an
                // opaque one (its own config, no defaults of the plugin's)
                // and cannot be built; `resolve` says why
                cx.kinds.get("junction")
            }
            None => {
                let help = match crate::diagnostics::suggest(
                    &k.value,
                    cx.kinds.keys().map(String::as_str),
                ) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "known kinds: {}",
                        cx.kinds.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                r.err_help(
                    k.span,
                    format!("unknown kind `{}`", k.value),
                    "unknown kind",
                    help,
                );
                None
            }
        },
        None => None,
    }
}

/// The project's variables an element sees: a junction shown as a target
/// sees those of BuildStream's first pass (no includes through junctions).
fn project_variables<'a>(cx: &'a Context, raw: &RawElement) -> &'a [(Spanned, Spanned)] {
    match &cx.project.first_pass_variables {
        Some(first) if raw.bst.as_ref().is_some_and(|b| b.junction) => first,
        _ => &cx.project.raw_variables,
    }
}

/// The variables visible to the element, layered: injected (host-arch,
/// project-name, element-name), defaults, project, kind, element.
fn scope_of<'a>(
    cx: &'a Context,
    raw: &'a RawElement,
    kind: &'a Kind,
    r: &mut Reader<Files>,
) -> Scope<'a> {
    let mut scope = Scope::default();
    let fixed = |value: &'a str| Def {
        value,
        span: None,
        literal: true,
        hidden: false,
    };
    let bst = cx.project.dialect == crate::project::Dialect::BuildStream;
    if bst {
        // BuildStream's own: no host-arch or target-arch (its projects
        // use an `arch` option), `command-subdir` only when set (the
        // build kinds' working directory falls back to the build root),
        // and the element's name inside its own project, without the
        // junctions that lead to it (`%{build-root}` holds it).
        scope.set(
            "command-subdir",
            Def {
                hidden: true,
                ..fixed("")
            },
        );
        scope.set("project-name", fixed(&cx.project.name));
        let local = raw.name.rsplit(':').next().unwrap_or(&raw.name);
        scope.set("element-name", fixed(local));
    } else {
        scope.set("host-arch", fixed(cx.host_arch));
        scope.set("target-arch", fixed(cx.target_arch));
        scope.set("project-name", fixed(&cx.project.name));
        scope.set("element-name", fixed(&raw.name));
    }
    let layers: [&[(Spanned, Spanned)]; 4] = [
        &cx.defaults.variables,
        project_variables(cx, raw),
        &kind.layer.variables,
        &raw.variables,
    ];
    for layer in layers {
        for (k, v) in layer {
            if k.value == MAX_JOBS {
                r.err_help(k.span, "`max-jobs` is reserved", "cannot be defined", "`%{max-jobs}` is substituted at run time with the job count and is never part of a key");
                continue;
            }
            scope.set(
                &k.value,
                Def {
                    value: &v.value,
                    span: Some(v.span),
                    literal: false,
                    hidden: false,
                },
            );
        }
    }
    scope
}

pub(crate) fn resolve(
    cx: &Context,
    id: ElementId,
    raw: &RawElement,
) -> Result<Element, Vec<Error>> {
    let mut r = Reader::new(cx.files);
    let (line, col) = match &raw.kind {
        Some(k) => cx
            .files
            .get(k.span.file)
            .map_or((1, 1), |f| f.line_col(k.span.start)),
        None => (1, 1),
    };
    let mut origin = Origin {
        file: raw.file,
        kind_span: raw.kind.as_ref().map_or(raw.root_span, |k| k.span),
        deps: vec![],
        line,
        col,
    };

    let (bd, d, rd) = resolve_deps(cx, raw, &mut r, &mut origin);

    let kind = resolve_kind(cx, raw, &mut r);
    let Some(kind) = kind else {
        return Err(r.errors);
    };
    // a plugin's kind cas does not have (resolve_kind): why it cannot be built
    let opaque = raw.kind.as_ref().filter(|k| k.value != kind.name).map(|k| {
        let from = cx
            .project
            .bst
            .as_ref()
            .and_then(|b| b.element_plugins.get(&k.value).cloned())
            .unwrap_or_default();
        (
            k.value.clone(),
            format!(
                "kind `{}` comes from a plugin ({from}) that cas does not implement",
                k.value
            ),
        )
    });

    let scope = scope_of(cx, raw, kind, &mut r);
    let mut errors = Vec::new();
    let mut ex = Expander::new(cx.files, &scope);
    let variables: BTreeMap<String, String> = ex.expand_all(&mut errors).into_iter().collect();
    let mut expand = |s: &Spanned, errors: &mut Vec<Error>| -> String {
        match ex.expand(&s.value, Some(s.span)) {
            Ok(v) => v,
            Err(e) => {
                errors.extend(e);
                String::new()
            }
        }
    };

    // environment
    let mut env_layers: Vec<(&str, &Spanned)> = Vec::new();
    for layer in [
        &cx.defaults.environment,
        &cx.project.raw_environment,
        &kind.layer.environment,
        &raw.environment,
    ] {
        for (k, v) in layer {
            env_layers.push((&k.value, v));
        }
    }
    let mut env_raw: BTreeMap<&str, &Spanned> = BTreeMap::new();
    for (k, v) in env_layers {
        env_raw.insert(k, v);
    }
    let env_texts: Vec<String> = env_raw.values().map(|v| v.value.clone()).collect();
    let mut environment: BTreeMap<String, String> = env_raw
        .into_iter()
        .map(|(k, v)| (k.to_string(), expand(v, &mut errors)))
        .collect();

    // config
    let mut config = kind.config.clone();
    match &raw.config {
        // an opaque kind's config is the element's, as written
        Some(m) if opaque.is_some() => {
            config = m
                .iter()
                .map(|(k, v)| (k.name.clone(), ConfigValue::Node(v.clone())))
                .collect();
        }
        Some(m) => merge_config(&mut r, &mut config, m, false, &kind.name, &kind.structured),
        None => {}
    }
    let mut phases = Vec::new();
    for (k, v) in &config {
        if let ConfigValue::List(list) = v {
            if is_phase(k) {
                phases.push((
                    k.clone(),
                    list.iter().map(|s| expand(s, &mut errors)).collect(),
                ));
            }
        }
    }
    // public
    let mut ic = cx.defaults.integration_commands.clone();
    let mut rules = cx.defaults.split_rules.clone();
    let mut whitelist = cx.defaults.overlap_whitelist.clone();
    whitelist.extend(kind.layer.overlap_whitelist.iter().cloned());
    ic.extend(kind.layer.integration_commands.iter().cloned());
    for (d, list) in &kind.layer.split_rules {
        match rules.iter_mut().find(|(n, _)| n == d) {
            Some((_, l)) => *l = list.clone(),
            None => rules.push((d.clone(), list.clone())),
        }
    }
    if let Some(p) = &raw.public {
        merge_public(&mut r, &mut ic, &mut rules, &mut whitelist, p);
    }
    let public = Public {
        integration_commands: ic.iter().map(|s| expand(s, &mut errors)).collect(),
        split_rules: rules
            .iter()
            .map(|(d, l)| {
                (
                    d.clone(),
                    l.iter().map(|s| expand(s, &mut errors)).collect(),
                )
            })
            .collect(),
        overlap_whitelist: whitelist.iter().map(|s| expand(s, &mut errors)).collect(),
    };

    // the variables what enters keys refers to, transitively (`cas explain`
    // names only those as causes)
    let used_variables = {
        let mut texts: Vec<&str> = env_texts.iter().map(String::as_str).collect();
        for (_, v) in &config {
            match v {
                ConfigValue::List(l) => texts.extend(l.iter().map(|s| s.value.as_str())),
                ConfigValue::Str(s) => texts.push(&s.value),
                ConfigValue::Bool(..) | ConfigValue::Node(_) => {}
            }
        }
        texts.extend(ic.iter().map(|s| s.value.as_str()));
        texts.extend(
            rules
                .iter()
                .flat_map(|(_, l)| l.iter().map(|s| s.value.as_str())),
        );
        texts.extend(whitelist.iter().map(|s| s.value.as_str()));
        texts.extend(kind.workdir.iter().map(|w| w.value.as_str()));
        texts.extend(raw.build_arch.iter().map(|a| a.value.as_str()));
        // what every kind's sandbox settings read
        let mut used: std::collections::BTreeSet<String> =
            ["build-root", "install-root", "target-arch"]
                .iter()
                .map(|s| (*s).to_string())
                .collect();
        let mut todo: Vec<String> = texts.iter().flat_map(|t| references(t)).collect();
        todo.extend(used.iter().cloned());
        while let Some(n) = todo.pop() {
            if let Some(def) = scope.defs.get(n.as_str()) {
                if !def.literal {
                    todo.extend(
                        references(def.value)
                            .into_iter()
                            .filter(|r| !used.contains(r)),
                    );
                }
            }
            used.insert(n);
        }
        used
    };

    // the order BuildStream composes variables and environment in (its
    // `%{vars}` and `%{env}` list them so)
    let bst_dialect = cx.project.dialect == crate::project::Dialect::BuildStream;
    let mut shown_order = Vec::new();
    let mut shown_env_order = Vec::new();
    if bst_dialect {
        let mut seen = std::collections::HashSet::new();
        let mut push = |n: &str, order: &mut Vec<String>| {
            if seen.insert(n.to_string()) {
                order.push(n.to_string());
            }
        };
        let names =
            |l: &[(Spanned, Spanned)]| l.iter().map(|(k, _)| k.value.clone()).collect::<Vec<_>>();
        let project = names(project_variables(cx, raw));
        let (own, exported) =
            project.split_at(project.len().saturating_sub(cx.project.exported_variables));
        for n in names(&cx.defaults.variables)
            .into_iter()
            .chain(own.iter().cloned())
            .chain(["project-name".to_string(), MAX_JOBS.to_string()])
            .chain(exported.iter().cloned())
            .chain(names(&kind.layer.variables))
            .chain(names(&raw.variables))
            .chain(["element-name".to_string()])
        {
            push(&n, &mut shown_order);
        }
        let mut seen = std::collections::HashSet::new();
        for l in [
            &cx.defaults.environment,
            &cx.project.raw_environment,
            &kind.layer.environment,
            &raw.environment,
        ] {
            for (k, _) in l {
                if seen.insert(k.value.clone()) {
                    shown_env_order.push(k.value.clone());
                }
            }
        }
    }
    // what `cas show --format` prints: BuildStream's view of the element
    let mut expand_at = |text: &str, span: Span, errors: &mut Vec<Error>| {
        expand(
            &Spanned {
                value: text.to_string(),
                span,
            },
            errors,
        )
    };
    // the command lists cas's kind declares (empty) for an element to fill
    // and BuildStream's plugin does not: shown only when the element sets
    // them, after the plugin's keys (where BuildStream appends them)
    let placeholders: Vec<&str> = if bst_dialect {
        kind.shown.unless_set.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    // every key of its config, expanded: what its behaviour reads
    let settings = crate::settings::Config::new(
        config
            .iter()
            .map(|(k, v)| {
                let entry = match v {
                    ConfigValue::List(l) => crate::settings::Entry {
                        value: Setting::List(
                            l.iter()
                                .map(|s| expand_at(&s.value, s.span, &mut errors))
                                .collect(),
                        ),
                        spans: l.iter().map(|s| s.span).collect(),
                    },
                    ConfigValue::Str(s) => crate::settings::Entry {
                        value: Setting::Str(expand_at(&s.value, s.span, &mut errors)),
                        spans: vec![s.span],
                    },
                    ConfigValue::Bool(b, text) => crate::settings::Entry {
                        value: Setting::Bool(*b, text.clone()),
                        spans: Vec::new(),
                    },
                    ConfigValue::Node(n) => crate::settings::Entry {
                        value: Setting::Data(node_data(n, &mut |t, sp| {
                            expand_at(t, sp, &mut errors)
                        })),
                        spans: match &n.value {
                            Value::Seq(items) => items.iter().map(|i| i.span).collect(),
                            _ => vec![n.span],
                        },
                    },
                };
                (k.clone(), entry)
            })
            .collect(),
    );
    let set_by_element = |k: &str| raw.config.as_ref().is_some_and(|c| c.get(k).is_some());
    let mut shown_entries: Vec<(&str, &crate::settings::Entry)> = settings
        .entries()
        // what cas's BuildStream kinds have that BuildStream's do not
        .filter(|(k, _)| {
            let cas_only = kind.shown.hidden.iter().any(|h| h == k)
                || (placeholders.contains(k) && !set_by_element(k));
            !(bst_dialect && cas_only)
        })
        .collect();
    shown_entries.sort_by_key(|(k, _)| placeholders.contains(k));
    let shown_config = Data::Map(
        shown_entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.value.to_data()))
            .collect(),
    );
    let rules_data = Data::Map(
        rules
            .iter()
            .map(|(d, l)| {
                let l = l.iter().map(|s| expand_at(&s.value, s.span, &mut errors));
                (d.clone(), Data::strings(l.collect::<Vec<_>>()))
            })
            .collect(),
    );
    let junction = raw.bst.as_ref().filter(|b| b.junction);
    let shown_public = if junction.is_some() {
        // BuildStream's first pass (junctions): no default split rules
        let mut bst = Data::default();
        bst.set("split-rules", Data::default());
        Data::Map(vec![("bst".into(), bst)])
    } else if let Some(extra) = raw.bst.as_ref() {
        {
            let mut p = match &extra.public {
                Some(n) if matches!(n.value, Value::Map(_)) => {
                    node_data(n, &mut |t, sp| expand_at(t, sp, &mut errors))
                }
                _ => Data::default(),
            };
            let mut bst = p.get("bst").cloned().unwrap_or_default();
            if !matches!(bst, Data::Map(_)) {
                bst = Data::default();
            }
            bst.set("split-rules", rules_data);
            p.set("bst", bst);
            p
        }
    } else {
        {
            let mut p = Data::default();
            p.set(
                "integration-commands",
                Data::strings(&public.integration_commands),
            );
            p.set("split-rules", rules_data);
            if !public.overlap_whitelist.is_empty() {
                p.set(
                    "overlap-whitelist",
                    Data::strings(&public.overlap_whitelist),
                );
            }
            p
        }
    };

    let (shown_config, shown_env_order) = match junction {
        Some(j) => {
            let config = match &j.junction_config {
                Some(n) if matches!(n.value, Value::Map(_)) => {
                    node_data(n, &mut |t, sp| expand_at(t, sp, &mut errors))
                }
                _ => Data::default(),
            };
            // and no environment: a junction is loaded, never built
            environment.clear();
            (config, Vec::new())
        }
        None => (shown_config, shown_env_order),
    };

    let build_arch = match &raw.build_arch {
        Some(a) => expand(a, &mut errors),
        // the target unless the element pins it (`build-arch: "%{host-arch}"`)
        None => variables
            .get("target-arch")
            .cloned()
            .unwrap_or_else(|| cx.target_arch.to_string()),
    };

    let workdir = kind.workdir.as_ref().map(|w| {
        let v = expand(w, &mut errors);
        let t = v.trim_end_matches('/');
        if t.is_empty() {
            "/".to_string()
        } else {
            t.to_string()
        }
    });

    errors.extend(r.errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Element {
        id,
        name: raw.name.clone(),
        file: raw.path.clone(),
        kind: opaque
            .as_ref()
            .map_or_else(|| kind.name.clone(), |(k, _)| k.clone()),
        description: raw.description.clone(),
        license: raw.license.clone(),
        build_depends: bd,
        depends: d,
        runtime_depends: rd,
        sources: raw.sources.clone(),
        variables,
        environment,
        phases,
        behaviour: kind.behaviour.clone(),
        config: settings,
        dialect: cx.project.dialect,
        public,
        sandbox: SandboxConfig {
            build_arch,
            build_uid: raw.build_uid,
            build_gid: raw.build_gid,
        },
        workdir,
        shown_config,
        shown_public,
        used_variables,
        shown_order,
        shown_env_order,
        link: raw.bst.as_ref().is_some_and(|b| b.link),
        no_reference: raw.bst.as_ref().is_some_and(|b| b.no_reference),
        unsupported: opaque
            .iter()
            .map(|(_, why)| why.clone())
            .chain(raw.bst.iter().flat_map(|b| b.unsupported.iter().cloned()))
            .collect(),
        overlaps_allowed: cx.project.overlaps_allowed,
        checks: raw.checks.over(&cx.project.checks),
        workspace: None,
        variable_spans: raw
            .variables
            .iter()
            .map(|(k, v)| (k.value.clone(), v.span))
            .collect(),
        origin,
    })
}

/// How many missing files get a "did you mean" in one process: each costs a
/// directory listing and a comparison with every name in it, so a project
/// that names 40,000 missing dependencies would otherwise take minutes to
/// say so (the rest get the general help; every error is still reported).
const FILE_SUGGESTIONS: usize = 32;

/// The closest existing file name next to a missing one (for "did you mean").
fn suggest_file(missing: &std::path::Path) -> Option<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static GIVEN: AtomicUsize = AtomicUsize::new(0);
    if GIVEN.fetch_add(1, Ordering::Relaxed) >= FILE_SUGGESTIONS {
        return None;
    }
    let dir = missing.parent()?;
    let want = missing.file_name()?.to_string_lossy().into_owned();
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .take(10_000)
        .collect();
    crate::diagnostics::suggest(&want, names.iter().map(String::as_str)).map(str::to_string)
}

/// A YAML tree as plain data, every scalar through `expand`.
fn node_data(node: &Node, expand: &mut impl FnMut(&str, Span) -> String) -> Data {
    match &node.value {
        Value::Null => Data::Null,
        Value::Scalar(s, _) => Data::Str(expand(s, node.span)),
        Value::Seq(items) => Data::List(items.iter().map(|i| node_data(i, expand)).collect()),
        Value::Map(m) => Data::Map(
            m.iter()
                .map(|(k, v)| (k.name.clone(), node_data(v, expand)))
                .collect(),
        ),
    }
}

/// The variable names `%{...}` references in `text` (not `%%{` escapes).
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('%') {
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("%%{") {
            rest = r;
        } else if let Some(r) = after.strip_prefix("%{") {
            match r.find('}') {
                Some(j) => {
                    out.push(r[..j].to_string());
                    rest = &r[j + 1..];
                }
                None => break,
            }
        } else {
            rest = &after[1..];
        }
    }
    out
}

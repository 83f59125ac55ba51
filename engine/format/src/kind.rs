//! Kinds are data: each kind is a YAML file (built-in ones in `elements/`,
//! embedded in the binary; project ones in the project's `kinds` directory)
//! holding variables, environment, `config:` defaults (the commands of each
//! phase, in order) and the `behaviour` naming the bit of Rust it needs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::diagnostics::{Error, FileId, Files, SourceFile, Span};
use crate::read::{Reader, Spanned};
use crate::yaml::{Map, Node, Value};

/// What a kind does beyond data: the name of a behaviour (`behaviour:`),
/// one module of crate cas-builder's `kinds` each. The names are those of
/// the registry given to the load ([`crate::Behaviours`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Behaviour(String);

impl Behaviour {
    pub fn new(name: impl Into<String>) -> Behaviour {
        Behaviour(name.into())
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The built-in kinds and defaults, embedded from `elements/`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("defaults", include_str!("../../../elements/defaults.yaml")),
    ("import", include_str!("../../../elements/import.yaml")),
    ("manual", include_str!("../../../elements/manual.yaml")),
    ("make", include_str!("../../../elements/make.yaml")),
    (
        "autotools",
        include_str!("../../../elements/autotools.yaml"),
    ),
    ("cmake", include_str!("../../../elements/cmake.yaml")),
    ("meson", include_str!("../../../elements/meson.yaml")),
    ("compose", include_str!("../../../elements/compose.yaml")),
    ("script", include_str!("../../../elements/script.yaml")),
    (
        "dpkg-configure",
        include_str!("../../../elements/dpkg-configure.yaml"),
    ),
    (
        "initramfs",
        include_str!("../../../elements/initramfs.yaml"),
    ),
    (
        "ext4-image",
        include_str!("../../../elements/ext4-image.yaml"),
    ),
    ("stack", include_str!("../../../elements/stack.yaml")),
];

/// The kinds and defaults of a BuildStream-format project (project.conf),
/// embedded from `elements/bst/`: BuildStream's own and buildstream-plugins'
/// build elements, with their variable names and defaults.
pub const BST_BUILTIN: &[(&str, &str)] = &[
    (
        "defaults",
        include_str!("../../../elements/bst/defaults.yaml"),
    ),
    ("import", include_str!("../../../elements/bst/import.yaml")),
    ("manual", include_str!("../../../elements/bst/manual.yaml")),
    ("make", include_str!("../../../elements/bst/make.yaml")),
    (
        "autotools",
        include_str!("../../../elements/bst/autotools.yaml"),
    ),
    ("cmake", include_str!("../../../elements/bst/cmake.yaml")),
    ("meson", include_str!("../../../elements/bst/meson.yaml")),
    (
        "compose",
        include_str!("../../../elements/bst/compose.yaml"),
    ),
    ("filter", include_str!("../../../elements/bst/filter.yaml")),
    ("script", include_str!("../../../elements/bst/script.yaml")),
    ("stack", include_str!("../../../elements/bst/stack.yaml")),
    // a junction, shown by `cas show` as a target (never built)
    (
        "junction",
        include_str!("../../../elements/bst/junction.yaml"),
    ),
    // bst-plugins-community's build elements (data only)
    (
        "pyproject",
        include_str!("../../../elements/bst/pyproject.yaml"),
    ),
    (
        "makemaker",
        include_str!("../../../elements/bst/makemaker.yaml"),
    ),
    (
        "modulebuild",
        include_str!("../../../elements/bst/modulebuild.yaml"),
    ),
    ("cargo", include_str!("../../../elements/bst/cargo.yaml")),
    ("qmake", include_str!("../../../elements/bst/qmake.yaml")),
];

/// A value of a kind's `config:`; its type is fixed by the kind that first declares it.
#[derive(Debug, Clone)]
pub(crate) enum ConfigValue {
    List(Vec<Spanned>),
    Str(Spanned),
    /// With the text written (`true`, `True`...), which is what shows.
    Bool(bool, String),
    /// Anything else (e.g. script `layout`): replaced as a whole.
    Node(Node),
}

/// One layer of variables, environment and public data (defaults, a kind).
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    pub variables: Vec<(Spanned, Spanned)>,
    pub environment: Vec<(Spanned, Spanned)>,
    pub integration_commands: Vec<Spanned>,
    pub split_rules: Vec<(String, Vec<Spanned>)>,
    pub overlap_whitelist: Vec<Spanned>,
}

/// A resolved kind (its `extends` chain merged).
#[derive(Debug, Clone)]
pub struct Kind {
    pub name: String,
    pub behaviour: Behaviour,
    pub description: Option<String>,
    /// The kind's file (`<builtin>/NAME.yaml` for built-in kinds).
    pub file: PathBuf,
    pub(crate) layer: Layer,
    pub(crate) config: Vec<(String, ConfigValue)>,
    /// Where the commands run (expanded per element); `None`: `%{build-root}`.
    pub(crate) workdir: Option<Spanned>,
    /// How `show --format` presents its config as BuildStream's plugin does
    /// (`buildstream:` in the kind file): keys never shown (cas's own), and
    /// keys shown only when the element sets them (after the plugin's).
    pub(crate) shown: Shown,
    /// Config keys whose values are structured data (lists of mappings,
    /// replaced as a whole): the kind file's `structured-config`.
    pub(crate) structured: Vec<String>,
}

/// A kind's `buildstream:` mapping (see [`Kind::shown`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shown {
    pub hidden: Vec<String>,
    pub unless_set: Vec<String>,
}

impl Kind {
    /// The phases (config lists named `*commands`), in order.
    pub fn phases(&self) -> impl Iterator<Item = &str> {
        self.config
            .iter()
            .filter(|(k, v)| is_phase(k) && matches!(v, ConfigValue::List(_)))
            .map(|(k, _)| k.as_str())
    }
}

pub(crate) fn is_phase(key: &str) -> bool {
    key == "commands" || key.ends_with("-commands")
}

const KIND_KEYS: &[&str] = &[
    "behaviour",
    "extends",
    "description",
    "workdir",
    "buildstream",
    "structured-config",
    "variables",
    "environment",
    "config",
    "public",
];
pub(crate) const PUBLIC_KEYS: &[&str] = &[
    "integration-commands",
    "split-rules",
    "overlap-whitelist",
    "bst",
];

/// A kind file as written, before `extends` is resolved.
#[derive(Debug)]
pub(crate) struct RawKind {
    pub name: String,
    pub file: FileId,
    pub path: PathBuf,
    pub root: Option<Node>,
    /// The file could not be read or parsed (already reported): the kind
    /// is not resolved, and nothing more is said about it.
    pub broken: bool,
}

/// Decode the defaults layer (`elements/defaults.yaml`).
pub(crate) fn decode_defaults(files: &Files, root: Option<&Node>) -> Result<Layer, Vec<Error>> {
    let mut r = Reader::new(files);
    let mut layer = Layer::default();
    if let Some(map) = root.and_then(|n| r.map(n, "defaults")) {
        r.check_keys(map, &["variables", "environment", "public"], "defaults");
        apply_layer(&mut r, &mut layer, map);
    }
    if r.errors.is_empty() {
        Ok(layer)
    } else {
        Err(r.errors)
    }
}

fn apply_layer(r: &mut Reader<Files>, layer: &mut Layer, map: &Map) {
    if let Some(n) = map.get("variables") {
        layer.variables.extend(r.string_map(n, "variables"));
    }
    if let Some(n) = map.get("environment") {
        layer.environment.extend(r.string_map(n, "environment"));
    }
    if let Some(n) = map.get("public") {
        merge_public(
            r,
            &mut layer.integration_commands,
            &mut layer.split_rules,
            &mut layer.overlap_whitelist,
            n,
        );
    }
}

/// Merge a `public:` mapping over inherited integration commands, split
/// rules and overlap whitelist. BuildStream keeps the same three under
/// `public: bst:`; both places are read (the `bst:` one second).
pub(crate) fn merge_public<L: crate::read::Locate>(
    r: &mut Reader<L>,
    ic: &mut Vec<Spanned>,
    rules: &mut Vec<(String, Vec<Spanned>)>,
    whitelist: &mut Vec<Spanned>,
    node: &Node,
) {
    let Some(map) = r.map(node, "public") else {
        return;
    };
    r.check_keys(map, PUBLIC_KEYS, "`public`");
    if let Some(n) = map.get("overlap-whitelist") {
        *whitelist = r.compose(whitelist, n, "overlap-whitelist");
    }
    if let Some(n) = map.get("bst") {
        merge_public(r, ic, rules, whitelist, n);
    }
    if let Some(n) = map.get("integration-commands") {
        *ic = r.compose(ic, n, "integration-commands");
    }
    if let Some(n) = map.get("split-rules") {
        if let Some(m) = r.map(n, "split-rules") {
            for (k, v) in m.iter() {
                if let Some((_, base)) = rules.iter_mut().find(|(d, _)| *d == k.name) {
                    *base = r.compose(base, v, &k.name);
                } else {
                    let list = r.compose(&[], v, &k.name);
                    rules.push((k.name.clone(), list));
                }
            }
        }
    }
}

/// Read one config value as declared by a kind (its shape fixes its type;
/// `structured`: the keys the kind declares structured).
fn config_value(key: &str, node: &Node, structured: &[String]) -> ConfigValue {
    match &node.value {
        _ if structured.iter().any(|s| s == key) => ConfigValue::Node(node.clone()),
        Value::Seq(items) if items.iter().all(|i| matches!(i.value, Value::Scalar(..))) => {
            ConfigValue::List(
                items
                    .iter()
                    .filter_map(|i| {
                        i.as_str().map(|s| Spanned {
                            value: s.to_string(),
                            span: i.span,
                        })
                    })
                    .collect(),
            )
        }
        Value::Scalar(s, _) if matches!(s.as_str(), "true" | "false" | "True" | "False") => {
            ConfigValue::Bool(s.eq_ignore_ascii_case("true"), s.clone())
        }
        Value::Scalar(s, _) => ConfigValue::Str(Spanned {
            value: s.clone(),
            span: node.span,
        }),
        _ => ConfigValue::Node(node.clone()),
    }
}

/// Merge `over` (a `config:` mapping) into `base`. New keys are accepted
/// only when `allow_new` (kinds); an element may only set the keys its kind declares.
pub(crate) fn merge_config<L: crate::read::Locate>(
    r: &mut Reader<L>,
    base: &mut Vec<(String, ConfigValue)>,
    over: &Map,
    allow_new: bool,
    kind: &str,
    structured: &[String],
) {
    for (k, v) in over.iter() {
        let Some(slot) = base.iter().position(|(name, _)| *name == k.name) else {
            if allow_new && is_phase(&k.name) {
                // A phase is a list of commands, each a string: anything
                // else (e.g. a plain scalar with `: ` read as a mapping) is
                // an error at that item, never a silently empty phase.
                let list = r.compose(&[], v, &k.name);
                base.push((k.name.clone(), ConfigValue::List(list)));
            } else if allow_new {
                base.push((k.name.clone(), config_value(&k.name, v, structured)));
            } else {
                let keys: Vec<&str> = base.iter().map(|(n, _)| n.as_str()).collect();
                r.unknown_key(
                    k.span,
                    &k.name,
                    keys.iter().copied(),
                    &format!("the config of kind `{kind}`"),
                );
            }
            continue;
        };
        let new = match &base[slot].1 {
            ConfigValue::List(list) => ConfigValue::List(r.compose(list, v, &k.name)),
            ConfigValue::Str(_) => match r.string(v, &k.name) {
                Some(s) => ConfigValue::Str(s),
                None => continue,
            },
            ConfigValue::Bool(..) => match r.bool(v, &k.name) {
                Some(b) => ConfigValue::Bool(b, v.as_str().unwrap_or_default().to_string()),
                None => continue,
            },
            ConfigValue::Node(_) => ConfigValue::Node(v.clone()),
        };
        base[slot].1 = new;
    }
}

/// Resolve every kind (built-in and project) with its `extends` chain.
/// Project kinds shadow built-in ones; `extends: NAME` in a kind named NAME
/// refers to the built-in NAME.
pub(crate) fn resolve_kinds(
    files: &Files,
    behaviours: Option<&dyn crate::settings::Behaviours>,
    builtin: &[RawKind],
    project: &[RawKind],
) -> (BTreeMap<String, Kind>, Vec<Error>) {
    let mut errors = Vec::new();
    let mut out: BTreeMap<String, Kind> = BTreeMap::new();
    let mut builtin_resolved: BTreeMap<String, Kind> = BTreeMap::new();
    for raw in builtin {
        let mut chain = Vec::new();
        if let Some(k) = resolve_one(
            Names { files, behaviours },
            raw,
            builtin,
            &[],
            &builtin_resolved,
            &mut chain,
            &mut errors,
        ) {
            builtin_resolved.insert(raw.name.clone(), k);
        }
    }
    out.extend(builtin_resolved.iter().map(|(k, v)| (k.clone(), v.clone())));
    for raw in project {
        let mut chain = Vec::new();
        if let Some(k) = resolve_one(
            Names { files, behaviours },
            raw,
            project,
            builtin,
            &builtin_resolved,
            &mut chain,
            &mut errors,
        ) {
            out.insert(raw.name.clone(), k);
        }
    }
    (out, errors)
}

/// What resolving a kind reads: the files, and the behaviour names a kind
/// may give (`None`: any).
#[derive(Clone, Copy)]
struct Names<'a> {
    files: &'a Files,
    behaviours: Option<&'a dyn crate::settings::Behaviours>,
}

fn resolve_one(
    names: Names<'_>,
    raw: &RawKind,
    same_level: &[RawKind],
    lower: &[RawKind],
    builtin: &BTreeMap<String, Kind>,
    chain: &mut Vec<String>,
    errors: &mut Vec<Error>,
) -> Option<Kind> {
    let Names { files, behaviours } = names;
    if raw.broken {
        return None;
    }
    let mut r = Reader::new(files);
    let empty = Map::default();
    let map = match raw.root.as_ref() {
        Some(n) => r.map(n, "kind")?,
        None => &empty,
    };
    r.check_keys(map, KIND_KEYS, "a kind file");
    chain.push(raw.name.clone());
    let mut kind = match map.get("extends").and_then(|n| r.string(n, "extends")) {
        Some(ext) => {
            let parent = if ext.value == raw.name {
                builtin.get(&ext.value).cloned()
            } else if chain.contains(&ext.value) {
                r.err(
                    ext.span,
                    format!(
                        "kinds extend each other in a cycle: {} → {}",
                        chain.join(" → "),
                        ext.value
                    ),
                    "cycle",
                );
                None
            } else if chain.len() > 32 {
                r.err(ext.span, "`extends` chain too long", "here");
                None
            } else if let Some(p) = same_level.iter().find(|k| k.name == ext.value) {
                resolve_one(names, p, same_level, lower, builtin, chain, errors)
            } else if let Some(k) = builtin.get(&ext.value) {
                Some(k.clone())
            } else {
                let names = same_level.iter().chain(lower).map(|k| k.name.as_str());
                let help = match crate::diagnostics::suggest(&ext.value, names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "kinds are the built-in ones and the files in the project's `kinds` directory".into(),
                };
                r.err_help(
                    ext.span,
                    format!("unknown kind `{}` in `extends`", ext.value),
                    "unknown kind",
                    help,
                );
                None
            };
            if let Some(mut p) = parent {
                p.name = raw.name.clone();
                p.file = raw.path.clone();
                p.description = None;
                p
            } else {
                chain.pop();
                errors.extend(r.errors);
                return None;
            }
        }
        None => Kind {
            name: raw.name.clone(),
            behaviour: Behaviour::new("sandbox"),
            description: None,
            file: raw.path.clone(),
            layer: Layer::default(),
            config: Vec::new(),
            workdir: None,
            shown: Shown::default(),
            structured: Vec::new(),
        },
    };
    chain.pop();
    match map.get_entry("behaviour") {
        Some((_, n)) => {
            if let Some(b) = r.string(n, "behaviour") {
                let names = behaviours.map(crate::settings::Behaviours::names);
                match names {
                    Some(names) if !names.contains(&b.value.as_str()) => r.err_help(
                        b.span,
                        format!("unknown behaviour `{}`", b.value),
                        "unknown behaviour",
                        format!("one of: {}", names.join(", ")),
                    ),
                    _ => {
                        // the behaviour's own structured keys (script's `layout`)
                        if let Some(reg) = behaviours {
                            kind.structured.extend(
                                reg.structured_config(&b.value)
                                    .into_iter()
                                    .map(str::to_string),
                            );
                        }
                        kind.behaviour = Behaviour::new(b.value);
                    }
                }
            }
        }
        None if map.get("extends").is_none() => {
            let span = raw
                .root
                .as_ref()
                .map_or(Span::new(raw.file, 0, 0), |n| n.span);
            r.err(
                span,
                format!(
                    "kind `{}` has no `behaviour` (and extends nothing)",
                    raw.name
                ),
                "add `behaviour: sandbox` (or import, compose, script, stack)",
            );
        }
        None => {}
    }
    if let Some(d) = map
        .get("description")
        .and_then(|n| r.string(n, "description"))
    {
        kind.description = Some(d.value);
    }
    if let Some(w) = map.get("workdir").and_then(|n| r.string(n, "workdir")) {
        kind.workdir = Some(w);
    }
    if let Some(n) = map.get("structured-config") {
        let keys = r.strings(n, "structured-config");
        kind.structured.extend(keys.into_iter().map(|s| s.value));
    }
    if let Some(m) = map.get("buildstream").and_then(|n| r.map(n, "buildstream")) {
        r.check_keys(m, &["hidden", "unless-set"], "`buildstream`");
        let mut names = |key: &str| -> Vec<String> {
            m.get(key)
                .map(|n| r.strings(n, key).into_iter().map(|s| s.value).collect())
                .unwrap_or_default()
        };
        let (hidden, unless_set) = (names("hidden"), names("unless-set"));
        kind.shown.hidden.extend(hidden);
        kind.shown.unless_set.extend(unless_set);
    }
    apply_layer(&mut r, &mut kind.layer, map);
    if let Some(n) = map.get("config") {
        if let Some(m) = r.map(n, "config") {
            let structured = kind.structured.clone();
            merge_config(&mut r, &mut kind.config, m, true, &raw.name, &structured);
        }
    }
    if r.errors.is_empty() {
        Some(kind)
    } else {
        errors.extend(r.errors);
        None
    }
}

/// A built-in file as a `SourceFile` named `<builtin>/NAME.yaml`.
pub(crate) fn builtin_file(name: &str, text: &str) -> SourceFile {
    let path = PathBuf::from(format!("<builtin>/{name}.yaml"));
    SourceFile::new(
        path.clone(),
        path.to_string_lossy().into_owned(),
        text.to_string(),
    )
}

//! `cas show`: the elements of a closure with kind, dependencies, key and state.
//!
//! `show` builds one `ShowRow` per element of the closure; the human table
//! and the JSON are both made from the rows. Build state (key, state) can be
//! added later by filling `ShowRow::extra` (a column each, in order, and a
//! JSON field each).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cas_format::{Element, ElementId, Loaded};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// Element files or element names (with --rdeps: where to look; default
    /// every element of the project)
    #[arg(required_unless_present = "rdeps")]
    pub targets: Vec<PathBuf>,
    /// Only the elements that would rebuild if ELEMENT changed (its reverse
    /// dependencies through what each stages), in build order
    #[arg(long, value_name = "ELEMENT")]
    pub rdeps: Option<PathBuf>,
    /// Which elements of the closure: `all` (default), `build` (what
    /// building the targets stages, with the targets), `run` (the targets'
    /// runtime closure), `none` (the targets alone)
    #[arg(long, short = 'd', value_enum, default_value_t = DepsFilter::All)]
    pub deps: DepsFilter,
    /// Also each built element's output size and its runtime closure's
    /// (its output and every runtime dependency's, each once)
    #[arg(long)]
    pub size: bool,
    /// Print each element by this format instead of the table, as `bst
    /// show --format` does: `%{name}`, `%{kind}`, `%{description}`,
    /// `%{key}`, `%{full-key}`, `%{state}`, `%{deps}`, `%{build-deps}`,
    /// `%{runtime-deps}`, `%{vars}`, `%{env}`, `%{config}`, `%{public}`,
    /// `%{workspaced}`, `%{workspace-dirs}` (lists and mappings as YAML;
    /// `%{name: >30}` pads as Python's format does)
    #[arg(long, short = 'f', value_name = "FORMAT", conflicts_with = "size")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DepsFilter {
    All,
    Build,
    Run,
    None,
}

/// One line of `cas show`.
pub(crate) struct ShowRow<'a> {
    pub element: &'a Element,
    /// The file as shown (relative to the working directory when possible).
    pub file: String,
    /// Extra columns (e.g. `key`, `state`), in order; each is also a JSON field.
    pub extra: Vec<(&'static str, String)>,
    /// The libraries check's recorded verdict, when it found problems.
    pub libraries: Option<cas_builder::checks::LibrariesReport>,
}

/// The rows of `cas show` for the closure of the loaded targets.
pub(crate) fn rows<'a>(loaded: &'a Loaded, cwd: &Path) -> Vec<ShowRow<'a>> {
    loaded
        .closure(&loaded.targets)
        .into_iter()
        .map(|id| {
            let element = loaded.element(id);
            let file = element
                .file
                .strip_prefix(cwd)
                .unwrap_or(&element.file)
                .to_string_lossy()
                .into_owned();
            ShowRow {
                element,
                file,
                extra: Vec::new(),
                libraries: None,
            }
        })
        .collect()
}

fn names(loaded: &Loaded, ids: &[ElementId]) -> Vec<String> {
    ids.iter()
        .map(|&id| loaded.element(id).name.clone())
        .collect()
}

/// The human table: name, kind, extra columns, file, dependencies; aligned.
pub(crate) fn render_table(loaded: &Loaded, rows: &[ShowRow]) -> String {
    let mut cols: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let e = r.element;
        let mut c = vec![e.name.clone(), e.kind.clone()];
        c.extend(r.extra.iter().map(|(_, v)| v.clone()));
        match &e.workspace {
            Some(w) => c.push(format!("{} (workspace {})", r.file, w.display())),
            None => c.push(r.file.clone()),
        }
        let mut deps = Vec::new();
        for (label, list) in [
            ("build", &e.build_depends),
            ("depends", &e.depends),
            ("runtime", &e.runtime_depends),
        ] {
            if !list.is_empty() {
                deps.push(format!("{label}: {}", names(loaded, list).join(", ")));
            }
        }
        c.push(deps.join("; "));
        cols.push(c);
    }
    let n = cols.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n)
        .map(|i| cols.iter().map(|c| c[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for c in cols {
        let mut line = String::new();
        for (i, cell) in c.iter().enumerate() {
            if i + 1 == c.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Phases in order (a JSON object whose keys keep the phase order).
struct Phases<'a>(&'a [(String, Vec<String>)]);

impl Serialize for Phases<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct SourceJson {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    directory: Option<String>,
}

fn source_json(s: &cas_builder::sources::Source) -> SourceJson {
    use cas_builder::sources::SourceKind as K;
    let mut j = SourceJson {
        kind: s.kind.name(),
        url: None,
        path: None,
        checksum: None,
        commit: None,
        directory: s.directory.clone(),
    };
    match &s.kind {
        K::Local { path } | K::Patch { path, .. } => {
            j.path = Some(path.to_string_lossy().into_owned());
        }
        K::Tar { url, checksum, .. }
        | K::Remote { url, checksum, .. }
        | K::Deb { url, checksum, .. } => {
            j.url = Some(url.written.clone());
            j.checksum = Some(checksum.to_string());
        }
        K::Git { url, commit, .. } => {
            j.url = Some(url.written.clone());
            j.commit = Some(commit.clone());
        }
        K::Cargo { url, .. } => j.url = Some(url.written.clone()),
    }
    j
}

#[derive(Serialize)]
struct ElementJson<'a> {
    name: &'a str,
    kind: &'a str,
    behaviour: &'a cas_format::Behaviour,
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(rename = "build-depends")]
    build_depends: Vec<String>,
    depends: Vec<String>,
    #[serde(rename = "runtime-depends")]
    runtime_depends: Vec<String>,
    /// BuildStream's view (`bst show --format '%{deps}'` ...): direct
    /// dependencies in its order, links replaced by what they point to.
    deps: Vec<String>,
    #[serde(rename = "build-deps")]
    build_deps: Vec<String>,
    #[serde(rename = "runtime-deps")]
    runtime_deps: Vec<String>,
    sources: Vec<SourceJson>,
    variables: &'a std::collections::BTreeMap<String, String>,
    environment: &'a std::collections::BTreeMap<String, String>,
    /// `%{vars}` and `%{env}`: with `%{max-jobs}` given its value.
    vars: cas_format::Data,
    env: cas_format::Data,
    commands: Phases<'a>,
    config: cas_format::Data,
    public: cas_format::Data,
    sandbox: &'a cas_format::SandboxConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    library_problems: Option<&'a cas_builder::checks::LibrariesReport>,
    /// The directory of its open workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace: Option<&'a Path>,
    /// Extra columns; an empty value (a key not known yet) is `null`.
    #[serde(flatten)]
    extra: std::collections::BTreeMap<&'static str, Option<&'a str>>,
}

/// The value `%{max-jobs}` is shown with: BuildStream's default (the
/// number of cores, at most 8).
pub(crate) fn shown_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(8)
}

/// The JSON document of `cas show --json`.
pub(crate) fn render_json(loaded: &Loaded, rows: &[ShowRow]) -> String {
    let elements: Vec<ElementJson> = rows
        .iter()
        .map(|r| {
            let e = r.element;
            let jobs = e.max_jobs(shown_jobs()).to_string();
            let (config, public) = cas_format::shown_config(e, &jobs);
            let shown = |scope| names(loaded, &loaded.shown_deps(e.id, scope));
            ElementJson {
                name: &e.name,
                kind: &e.kind,
                behaviour: e.behaviour(),
                file: &r.file,
                description: e.description.as_deref(),
                build_depends: names(loaded, &e.build_depends),
                depends: names(loaded, &e.depends),
                runtime_depends: names(loaded, &e.runtime_depends),
                deps: shown(cas_format::DepScope::All),
                build_deps: shown(cas_format::DepScope::Build),
                runtime_deps: shown(cas_format::DepScope::Run),
                sources: e.sources.iter().map(source_json).collect(),
                variables: &e.variables,
                environment: &e.environment,
                vars: cas_format::shown_vars(e, &jobs),
                env: cas_format::shown_env(e, &jobs),
                commands: Phases(&e.phases),
                config,
                public,
                sandbox: &e.sandbox,
                library_problems: r.libraries.as_ref(),
                workspace: e.workspace.as_deref(),
                extra: r
                    .extra
                    .iter()
                    .map(|(k, v)| (*k, Some(v.as_str()).filter(|v| !v.is_empty())))
                    .collect(),
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Doc<'a> {
        project: &'a str,
        targets: Vec<String>,
        elements: Vec<ElementJson<'a>>,
    }
    let doc = Doc {
        project: &loaded.project.name,
        targets: names(loaded, &loaded.targets),
        elements,
    };
    crate::json::to_string(&doc, true).unwrap_or_else(|_| "{\"schema\":1}".into())
}

/// The elements that would rebuild if `x` changed: those whose staged set
/// holds `x` or an element that rebuilds (keys hash what is staged), in
/// build order.
fn rebuilt_by(loaded: &Loaded, x: ElementId) -> Vec<ElementId> {
    let order = loaded.closure(&loaded.targets);
    let mut rebuilds = vec![false; loaded.elements.len()];
    let mut out = Vec::new();
    for id in order {
        if id != x
            && loaded
                .staged(id)
                .iter()
                .any(|s| *s == x || rebuilds[s.index()])
        {
            rebuilds[id.index()] = true;
            out.push(id);
        }
    }
    out
}

/// The targets of `cas show --rdeps X [TARGET...]`: X first, then the
/// targets given, or every element of X's project.
fn rdeps_targets(x: &Path, targets: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut all = vec![x.to_path_buf()];
    if !targets.is_empty() {
        all.extend(targets.iter().cloned());
        return Ok(all);
    }
    let dir = if x.is_file() {
        x.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        PathBuf::from(".")
    };
    let project = cas_format::load_project(&dir).map_err(|diags| {
        crate::commands::load::report(&diags.errors);
        Failure::Silent(2)
    })?;
    all.extend(
        project
            .element_names()
            .into_iter()
            .map(|n| project.element_path.join(n)),
    );
    Ok(all)
}

pub(crate) fn run_show(global: &Session, args: ShowArgs) -> CmdResult {
    let targets = match &args.rdeps {
        Some(x) => rdeps_targets(x, &args.targets)?,
        None => args.targets.clone(),
    };
    // every element that loads is shown, next to the errors of the others
    let loaded = crate::commands::load::load_targets(global, &targets, false, true)?;
    crate::commands::load::report(&loaded.problems);
    // what loads but cannot be built (BuildStream plugins cas does not have)
    for id in loaded.closure(&loaded.targets) {
        let e = loaded.element(id);
        if !e.unsupported.is_empty() {
            eprintln!(
                "warning: {}: cannot be built: {}",
                e.name,
                e.unsupported.join("; ")
            );
        }
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut rows = rows(&loaded, &cwd);
    let keep = if let Some(arg) = &args.rdeps {
        let abs = cwd.join(arg);
        let x = if abs.is_file() {
            abs.strip_prefix(&loaded.project.element_path)
                .ok()
                .and_then(|r| loaded.find(&r.to_string_lossy()))
        } else {
            loaded.find(&arg.to_string_lossy())
        };
        let Some(x) = x else {
            return Err(Failure::invalid(miette::miette!(
                "`{}` did not load: its reverse dependencies cannot be known",
                arg.display()
            )));
        };
        Some(rebuilt_by(&loaded, x))
    } else {
        None
    };
    // Keys and states: a key is known once everything staged is cached.
    let mirrors = global.mirrors(&loaded.project)?;
    let store = global.store()?;
    // one read transaction for the lookups below (one or two per element)
    let snapshot = store.read_snapshot().map_err(Failure::error)?;
    let plan = cas_builder::states(
        &store,
        &loaded,
        &loaded.targets,
        &mirrors,
        cas_builder::record::Lookup::Look,
    )
    .map_err(Failure::error)?;
    let outputs: std::collections::HashMap<ElementId, cas_store::TreeDigest> = plan
        .iter()
        .filter_map(|p| p.output.map(|o| (p.id, o)))
        .collect();
    let get = |d: ElementId| outputs.get(&d).copied();
    let indexes = cas_linkcheck::Indexes::default();
    let closure: Vec<ElementId> = plan.iter().map(|p| p.id).collect();
    // --size: each known output's bytes (its files' sizes), walked once per tree
    let mut sizes: std::collections::HashMap<ElementId, u64> = std::collections::HashMap::new();
    if args.size {
        let mut per_tree: std::collections::HashMap<cas_store::TreeDigest, u64> =
            std::collections::HashMap::new();
        for (&id, &tree) in &outputs {
            let bytes = if let Some(b) = per_tree.get(&tree) {
                *b
            } else {
                let b = store
                    .walk(&tree)
                    .map_err(Failure::error)?
                    .iter()
                    .map(|(_, e)| match e.kind {
                        cas_store::EntryKind::File { size, .. } => size,
                        _ => 0,
                    })
                    .sum();
                per_tree.insert(tree, b);
                b
            };
            sizes.insert(id, bytes);
        }
    }
    // the outputs of cached elements were found in the store just now
    let cached: std::collections::HashSet<cas_store::TreeDigest> = plan
        .iter()
        .filter(|p| p.state == cas_builder::State::Cached)
        .filter_map(|p| p.output)
        .collect();
    let present = |t: &cas_store::TreeDigest| cached.contains(t) || store.has_tree(t);
    // the recorded verdicts, read together
    let verdict_keys: Vec<Option<cas_store::ActionKey>> = rows
        .iter()
        .zip(&plan)
        .map(|(row, p)| {
            p.key
                .filter(|_| p.output.is_some() && cas_builder::checks::has_verdict(row.element))
        })
        .collect();
    let wanted: Vec<cas_store::ActionKey> = verdict_keys.iter().flatten().copied().collect();
    // if they cannot be read together, each row reads its own (and a row
    // whose note cannot be read shows no verdict)
    let recorded: Option<Vec<Option<Vec<u8>>>> = store
        .notes_get(&wanted, cas_builder::checks::LIBRARIES_NOTE)
        .ok()
        .map(|notes| {
            let mut notes = notes.into_iter();
            verdict_keys
                .iter()
                .map(|k| k.and_then(|_| notes.next().flatten()))
                .collect()
        });
    for (i, (row, planned)) in rows.iter_mut().zip(plan).enumerate() {
        let note = match &recorded {
            Some(r) => cas_builder::checks::Recorded::Given(r[i].as_deref()),
            None => cas_builder::checks::Recorded::Read,
        };
        debug_assert_eq!(row.element.id, planned.id);
        // the verdict recorded against what is there now (nothing is checked here)
        let libraries = match planned.key.filter(|_| planned.output.is_some()) {
            _ if !cas_builder::checks::libraries_checked(row.element) => String::new(),
            _ if row.element.checks.libraries == cas_format::Severity::Off => "off".into(),
            Some(key) => {
                match cas_builder::checks::libraries_verdict_with(
                    &store, &indexes, &loaded, planned.id, &key, &get, &present, note, false,
                ) {
                    Ok(Some(c)) if c.verdict.problems.is_empty() => "ok".into(),
                    Ok(Some(c)) => {
                        let v = c.verdict;
                        let n = v.problems.len();
                        row.libraries = Some(cas_builder::checks::report(
                            &store, &indexes, &loaded, planned.id, &v, &closure, &get,
                        ));
                        format!("{n} problem{}", if n == 1 { "" } else { "s" })
                    }
                    _ => String::new(),
                }
            }
            None => String::new(),
        };
        let key = planned.key.map(|k| k.to_hex());
        let key = if global.json || args.format.is_some() {
            key.unwrap_or_default()
        } else {
            key.map_or_else(|| "-".into(), |k| k[..12].to_owned())
        };
        row.extra.push(("key", key));
        // a junction (a target of show only) is never built: BuildStream's state
        let state = if row.element.kind == "junction" {
            "junction"
        } else if row.element.no_reference {
            "no-reference"
        } else {
            planned.state.name()
        };
        row.extra.push(("state", state.to_owned()));
        let libraries = if libraries.is_empty() && !global.json {
            "-".to_string()
        } else {
            libraries
        };
        row.extra.push(("libraries", libraries));
        if args.size {
            let fmt = |b: Option<u64>| match b {
                Some(b) if global.json => b.to_string(),
                Some(b) => crate::commands::store::human_size(b),
                None if global.json => String::new(),
                None => "-".into(),
            };
            let own = sizes.get(&planned.id).copied();
            let closure = std::iter::once(planned.id)
                .chain(loaded.runtime_closure(planned.id))
                .collect::<std::collections::HashSet<_>>()
                .into_iter()
                .map(|d| sizes.get(&d).copied())
                .sum::<Option<u64>>();
            row.extra.push(("size", fmt(own)));
            row.extra.push(("closure-size", fmt(closure)));
        }
    }
    drop(snapshot);
    if let Some(keep) = keep {
        rows.retain(|r| keep.contains(&r.element.id));
    }
    // --deps: which part of the closure
    let wanted: Option<std::collections::HashSet<ElementId>> = match args.deps {
        DepsFilter::All => None,
        DepsFilter::None => Some(loaded.targets.iter().copied().collect()),
        DepsFilter::Run => Some(
            loaded
                .targets
                .iter()
                .flat_map(|t| loaded.runtime_closure(*t))
                .chain(loaded.targets.iter().copied())
                .collect(),
        ),
        DepsFilter::Build => {
            // what each target stages, and everything that stages in turn
            let mut set: std::collections::HashSet<ElementId> =
                loaded.targets.iter().copied().collect();
            let mut todo: Vec<ElementId> = loaded.targets.clone();
            while let Some(id) = todo.pop() {
                for d in loaded.staged(id) {
                    if set.insert(d) {
                        todo.push(d);
                    }
                }
            }
            Some(set)
        }
    };
    // a link is shown as what it points to (as BuildStream shows it)
    let wanted = wanted.map(|w| {
        w.into_iter()
            .map(|id| loaded.through_links(id))
            .collect::<std::collections::HashSet<_>>()
    });
    rows.retain(|r| !r.element.link);
    if let Some(w) = wanted {
        rows.retain(|r| w.contains(&r.element.id));
    }
    if args.deps == DepsFilter::None {
        // the targets alone: in the order given
        let order: Vec<ElementId> = loaded
            .targets
            .iter()
            .map(|&t| loaded.through_links(t))
            .collect();
        rows.sort_by_key(|r| order.iter().position(|&t| t == r.element.id));
    }
    if let (Some(fmt), false) = (&args.format, global.json) {
        let lines: Vec<String> = rows
            .iter()
            .map(|r| crate::commands::show_format::render(&loaded, r, fmt, shown_jobs()))
            .collect();
        let mut out = lines.join("\n");
        // as bst: trailing newlines are trimmed unless a field ends the
        // format (its value is followed by a colour reset there)
        if !fmt.ends_with('}') {
            out.truncate(out.trim_end_matches('\n').len());
        }
        println!("{out}");
    } else if global.json {
        println!("{}", render_json(&loaded, &rows));
    } else {
        print!("{}", render_table(&loaded, &rows));
        for r in &rows {
            for p in r.libraries.iter().flat_map(|l| &l.problems) {
                println!("{}: {}", r.element.name, p.message);
            }
        }
    }
    if loaded.problems.is_empty() {
        // cas ends after this: freeing the graph one string at a time
        // would only delay the exit
        std::mem::forget(rows);
        std::mem::forget(loaded);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: {} element(s) not shown: they have the errors above, or depend on one that has",
        loaded.left_out
    );
    Err(Failure::Silent(2))
}

//! `cas owns PATH... --in ELEMENT`: which element put each file into a
//! built tree, through composes and filters (spec/cli.md). A compose's
//! result has its provenance recorded with it (the note `compose`); for a
//! result without one (pulled from a remote), it is worked out from the
//! store the same way the tree was made: a compose's path comes from
//! the last element in staging order whose output holds it and whose
//! domains keep it (later ones overwrite earlier ones); a filter's from
//! its one build dependency; what no staged output holds was written by
//! the compose's integration commands; any other element made its own.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::provenance::{Provenance, COMPOSE_NOTE};
use cas_builder::split::Domains;
use cas_format::{ElementId, Loaded};
use cas_store::{ActionKey, EntryKind, Store, TreeDigest};

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct OwnsArgs {
    /// Paths in the element's output (`/usr/bin/a` or `usr/bin/a`)
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// The built element whose output holds them (a compose, a filter, any element)
    #[arg(long = "in", value_name = "ELEMENT")]
    pub element: PathBuf,
}

/// The non-directory paths of each output tree, read once; and the
/// provenance recorded with each compose result (crate::provenance of
/// cas-builder), read once.
struct Trees<'a> {
    store: &'a Store,
    paths: HashMap<TreeDigest, HashSet<String>>,
    keys: HashMap<ElementId, ActionKey>,
    recorded: HashMap<ElementId, Option<Provenance>>,
}

impl Trees<'_> {
    fn provenance(&mut self, id: ElementId) -> Option<&Provenance> {
        if !self.recorded.contains_key(&id) {
            let p = self.keys.get(&id).and_then(|k| {
                let bytes = self.store.note_get(k, COMPOSE_NOTE).ok()??;
                Provenance::decode(&bytes)
            });
            self.recorded.insert(id, p);
        }
        self.recorded[&id].as_ref()
    }

    fn has(&mut self, tree: TreeDigest, path: &str) -> Result<bool, Failure> {
        if !self.paths.contains_key(&tree) {
            let walked = self.store.walk(&tree).map_err(Failure::error)?;
            let set = walked
                .into_iter()
                .filter(|(_, e)| !matches!(e.kind, EntryKind::Dir { .. }))
                .map(|(p, _)| String::from_utf8_lossy(&p).into_owned())
                .collect();
            self.paths.insert(tree, set);
        }
        Ok(self.paths[&tree].contains(path))
    }
}

/// Where `path` of `id`'s output comes from: the chain of elements, the
/// owner last; `integration` when a compose's integration commands wrote it.
fn owner(
    loaded: &Loaded,
    outputs: &HashMap<ElementId, TreeDigest>,
    trees: &mut Trees,
    id: ElementId,
    path: &str,
) -> Result<Option<(Vec<ElementId>, bool)>, Failure> {
    let Some(&out) = outputs.get(&id) else {
        return Ok(None);
    };
    if !trees.has(out, path)? {
        return Ok(None);
    }
    let el = loaded.element(id);
    // a compose's own record says which part the path came from
    let kind = cas_builder::kinds::of(el);
    if kind.caps().whole_root {
        if let Some(p) = trees.provenance(id) {
            match p.owner(path) {
                None => return Ok(None),
                Some(None) => return Ok(Some((vec![id], true))),
                Some(Some(part)) => {
                    if let Some(d) = loaded.find(&part.name) {
                        if let Some((mut chain, integration)) =
                            owner(loaded, outputs, trees, d, path)?
                        {
                            chain.insert(0, id);
                            return Ok(Some((chain, integration)));
                        }
                    }
                }
            }
        }
    }
    let abs = format!("/{path}");
    let domains = |d: ElementId| {
        let de = loaded.element(d);
        Domains::new(&de.name, &de.public.split_rules).map_err(Failure::error)
    };
    let Some(parts) = kind.parts(loaded, id) else {
        return Ok(Some((vec![id], false)));
    };
    for d in parts.from {
        let kept = domains(d)?.keeps(&abs, &parts.include, &parts.exclude, parts.include_orphans);
        if !kept {
            continue;
        }
        if let Some((mut chain, integration)) = owner(loaded, outputs, trees, d, path)? {
            chain.insert(0, id);
            return Ok(Some((chain, integration)));
        }
    }
    Ok(Some((vec![id], true)))
}

/// `path` of `tree` with every symlink on the way to its last component
/// resolved inside the tree, the way the loader resolves `/lib/x.so` through
/// `/lib -> usr/lib` (absolute targets from the tree's root, relative ones
/// from the link's directory, `..` never above the root, at most 40 links).
/// Returns the resolved path and each link followed (`/lib -> usr/lib`);
/// `None` when a component is missing or is not a directory.
fn resolve(
    store: &Store,
    tree: TreeDigest,
    path: &str,
) -> Result<Option<(String, Vec<String>)>, Failure> {
    let fail = Failure::error::<cas_store::StoreError>;
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut at: Vec<(String, TreeDigest)> = Vec::new(); // directories entered
    let mut followed = Vec::new();
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let dir = at.last().map_or(tree, |(_, d)| *d);
        let entries = store.get_tree(&dir).map_err(fail)?;
        let Some(e) = entries.get(c.as_bytes()) else {
            return Ok(None);
        };
        match &e.kind {
            EntryKind::Dir { digest } => at.push((c, *digest)),
            EntryKind::Symlink { target } if !todo.is_empty() => {
                if followed.len() >= 40 {
                    return Ok(None);
                }
                let target = String::from_utf8_lossy(target).into_owned();
                let here: Vec<&str> = at.iter().map(|(n, _)| n.as_str()).collect();
                followed.push(format!(
                    "/{} -> {target}",
                    here.iter()
                        .chain([&c.as_str()])
                        .copied()
                        .collect::<Vec<_>>()
                        .join("/")
                ));
                if target.starts_with('/') {
                    at.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from),
                );
            }
            _ if todo.is_empty() => {
                let mut parts: Vec<&str> = at.iter().map(|(n, _)| n.as_str()).collect();
                parts.push(&c);
                return Ok(Some((parts.join("/"), followed)));
            }
            _ => return Ok(None),
        }
    }
    // the path names a directory
    Ok(Some((
        at.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("/"),
        followed,
    )))
}

pub(crate) fn run_owns(global: &Session, args: OwnsArgs) -> CmdResult {
    let loaded = load_or_report(global, std::slice::from_ref(&args.element))?;
    let store = global.store()?;
    let plan = cas_builder::states(
        &store,
        &loaded,
        &loaded.targets,
        &global.mirrors(&loaded.project)?,
        cas_builder::record::Lookup::Look,
    )
    .map_err(Failure::error)?;
    let outputs: HashMap<ElementId, TreeDigest> = plan
        .iter()
        .filter_map(|p| p.output.map(|o| (p.id, o)))
        .collect();
    let target = loaded.targets[0];
    if !outputs.contains_key(&target) {
        let name = &loaded.element(target).name;
        return Err(Failure::failed(miette::miette!(
            help = format!("run `cas build {name}` first"),
            "{name} is not built"
        )));
    }
    let mut trees = Trees {
        store: &store,
        paths: HashMap::new(),
        keys: plan
            .iter()
            .filter_map(|p| p.key.map(|k| (p.id, k)))
            .collect(),
        recorded: HashMap::new(),
    };
    let mut rows = Vec::new();
    let mut missing = 0;
    for p in &args.paths {
        let asked = p.trim_start_matches('/').trim_end_matches('/');
        let mut path = asked.to_string();
        let mut links = Vec::new();
        let mut found = owner(&loaded, &outputs, &mut trees, target, &path)?;
        if found.is_none() {
            // through the tree's own links, as the loader would find it
            if let Some((resolved, followed)) = resolve(&store, outputs[&target], asked)? {
                if resolved != asked {
                    found = owner(&loaded, &outputs, &mut trees, target, &resolved)?;
                    path = resolved;
                    links = followed;
                }
            }
        }
        let name = |id: &ElementId| loaded.element(*id).name.clone();
        let Some((chain, integration)) = found else {
            missing += 1;
            eprintln!(
                "error: /{asked} is not in the output of {}",
                loaded.element(target).name
            );
            continue;
        };
        let owner = chain.last().map(name).unwrap_or_default();
        let via: Vec<String> = chain[..chain.len() - 1].iter().map(name).collect();
        if !global.json {
            let how = if integration {
                " (written by its integration commands)"
            } else {
                ""
            };
            let via_text = if via.is_empty() {
                String::new()
            } else {
                format!("  (via {})", via.join(" → "))
            };
            let through = if links.is_empty() {
                String::new()
            } else {
                format!("  (as /{path}, through {})", links.join(", "))
            };
            println!("/{asked}  {owner}{how}{via_text}{through}");
        }
        rows.push(serde_json::json!({
            "path": format!("/{asked}"),
            "resolved": format!("/{path}"),
            "links": links,
            "element": owner,
            "via": via,
            "integration": integration,
        }));
    }
    if global.json {
        crate::json::print(&serde_json::json!({ "paths": rows }))?;
    }
    if missing > 0 {
        return Err(Failure::Silent(1));
    }
    Ok(ExitCode::SUCCESS)
}

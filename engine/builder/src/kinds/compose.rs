//! `compose`: the staged outputs, each filtered by its split-rule domains
//! (`include`, `exclude`, orphans), merged in staging order; the
//! integration commands of the composed elements run on a private copy
//! (`integrate`), never in the store. With `integrate-first`
//! (BuildStream's order) they run over everything staged, and the output is
//! the filtered files as integration left them plus whatever it wrote.

use std::collections::{BTreeMap, HashMap, HashSet};

use cas_format::{ElementId, Loaded};
use cas_store::{Entry, EntryKind, IngestMode, Method, TreeDigest};

use super::Work;
use crate::error::Result;

use crate::split;
use crate::step::Root;

/// A compose element's configuration.
#[derive(Clone, Copy)]
pub(crate) struct Settings<'a> {
    pub include: &'a [String],
    pub exclude: &'a [String],
    pub include_orphans: bool,
    pub integrate: bool,
    pub integrate_first: bool,
}

/// `include`, `exclude`, `include-orphans`, `integrate`, and what the
/// composed elements bring: their integration commands and split rules
/// (each rule as the staging position of its element, domain and pattern;
/// spec/keys.md).
pub(crate) fn key_config(
    loaded: &Loaded,
    s: Settings<'_>,
    staged: &[(ElementId, TreeDigest)],
    config: &mut BTreeMap<String, Vec<String>>,
) {
    domains_config(s.include, s.exclude, s.include_orphans, config);
    config.insert("integrate".into(), vec![s.integrate.to_string()]);
    if s.integrate_first {
        // only when set: keys of composes in cas's order are unchanged
        config.insert("integrate-first".into(), vec!["true".into()]);
    }
    let mut integration = Vec::new();
    let mut rules = Vec::new();
    for (i, (dep, _)) in staged.iter().enumerate() {
        let d = loaded.element(*dep);
        integration.extend(d.public.integration_commands.iter().cloned());
        for (domain, patterns) in &d.public.split_rules {
            for p in patterns {
                rules.push(format!("{i}\t{domain}\t{p}"));
            }
        }
    }
    config.insert("integration-commands".into(), integration);
    config.insert("split-rules".into(), rules);
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

pub(crate) fn assemble(work: Work<'_, '_>, s: Settings<'_>) -> Result<TreeDigest> {
    let Work {
        engine,
        el,
        inputs,
        staged,
        dir,
        log,
    } = work;
    let mut parts = Vec::new();
    for (dep, tree) in staged {
        let d = engine.element(*dep);
        let domains = split::Domains::new(&d.name, &d.public.split_rules)?;
        let keep = |p: &str| domains.keeps(p, s.include, s.exclude, s.include_orphans);
        parts.push(engine.layer(*dep, split::filter(engine.store, tree, &keep)?));
    }
    let kept = engine.merge_layers(el, &parts, dir, log)?;
    let commands: Vec<String> = staged
        .iter()
        .flat_map(|(d, _)| {
            engine
                .element(*d)
                .public
                .integration_commands
                .iter()
                .cloned()
        })
        .collect();
    if !s.integrate || commands.is_empty() {
        return Ok(kept);
    }
    // BuildStream's order integrates everything staged, cas's only what is kept
    let merged = if s.integrate_first {
        engine.merge_layers(el, &engine.layers(staged), dir, log)?
    } else {
        kept
    };
    // Integration commands run on a private copy: never in the store.
    let rootfs = dir.rootfs();
    engine
        .store
        .materialize(&merged, &rootfs, Method::ReflinkOrCopy)?;
    let commands: Vec<(String, String)> = commands
        .into_iter()
        .map(|c| ("integration-commands".to_owned(), c))
        .collect();
    engine.run_commands(el, inputs, Root::writable(&rootfs), dir, &commands, log)?;
    let integrated = engine.store.ingest(&rootfs, IngestMode::Move)?.tree;
    if !s.integrate_first {
        return Ok(integrated);
    }
    // the kept paths, and every file integration created or changed
    let before: HashMap<Vec<u8>, Entry> = files(engine.store, &merged)?.collect();
    let mut keep: HashSet<String> = engine
        .store
        .walk(&kept)?
        .into_iter()
        .map(|(p, _)| absolute(&p))
        .collect();
    keep.extend(
        files(engine.store, &integrated)?
            .filter(|(p, e)| before.get(p) != Some(e))
            .map(|(p, _)| absolute(&p)),
    );
    split::filter(engine.store, &integrated, &|p| keep.contains(p))
}

/// The non-directory entries of a tree, by relative path.
fn files(
    store: &cas_store::Store,
    tree: &TreeDigest,
) -> Result<impl Iterator<Item = (Vec<u8>, Entry)>> {
    Ok(store
        .walk(tree)?
        .into_iter()
        .filter(|(_, e)| !matches!(e.kind, EntryKind::Dir { .. })))
}

/// A walked path as split rules see it (`/usr/bin/x`).
fn absolute(p: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(p))
}

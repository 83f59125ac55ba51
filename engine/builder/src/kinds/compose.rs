//! `compose`: the staged outputs, each filtered by its split-rule domains
//! (`include`, `exclude`, orphans), merged in staging order; the
//! integration commands of the composed elements run on a private copy
//! (`integrate`), never in the store. With `integrate-first`
//! (BuildStream's order) they run over everything staged, and the output is
//! the filtered files as integration left them plus whatever it wrote.

use std::collections::{BTreeMap, HashMap, HashSet};

use cas_format::{Dialect, Element, ElementId, Error, LoadCheck, Loaded};
use cas_store::{Entry, EntryKind, IngestMode, Method, TreeDigest};

use super::{Caps, Commands, KeyCx, Kind, Parts, Root, Stage};
use crate::error::Result;
use crate::split;

pub struct Compose;

/// A compose element's configuration.
#[derive(Clone)]
pub(crate) struct Settings {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub include_orphans: bool,
    pub integrate: bool,
    pub integrate_first: bool,
}

impl Settings {
    pub(crate) fn of(el: &Element) -> Settings {
        let c = &el.config;
        Settings {
            include: c.list("include").to_vec(),
            exclude: c.list("exclude").to_vec(),
            include_orphans: c.bool_or("include-orphans", true),
            integrate: c.bool_or("integrate", true),
            integrate_first: c.bool_or("integrate-first", false),
        }
    }
}

impl Kind for Compose {
    fn name(&self) -> &'static str {
        "compose"
    }
    fn caps(&self) -> Caps {
        Caps {
            merges_staged: true,
            makes_binaries: true,
            whole_root: true,
            made_of_staged: true,
            has_output: true,
            ..Caps::default()
        }
    }

    /// `include`/`exclude` name split-rule domains the element knows (its
    /// public data's, which the composed elements share); BuildStream
    /// takes any.
    fn check(&self, load: &mut LoadCheck<'_>, id: ElementId, errors: &mut Vec<Error>) {
        let el = load.element(id);
        if el.dialect == Dialect::BuildStream {
            return;
        }
        for key in ["include", "exclude"] {
            for (i, d) in el.config.list(key).iter().enumerate() {
                if el.public.split_rules.contains_key(d) {
                    continue;
                }
                let span = el.config.span(key, i).unwrap_or(el.origin.kind_span);
                let known: Vec<&str> = el.public.split_rules.keys().map(String::as_str).collect();
                errors.push(
                    load.error(
                        span,
                        format!("unknown split-rule domain `{d}`"),
                        "unknown domain",
                    )
                    .with_help(format!("domains: {}", known.join(", "))),
                );
            }
        }
    }

    /// `include`, `exclude`, `include-orphans`, `integrate`, and what the
    /// composed elements bring: their integration commands and split rules
    /// (each rule as the staging position of its element, domain and pattern;
    /// spec/keys.md).
    fn key_config(&self, cx: &KeyCx<'_>, config: &mut BTreeMap<String, Vec<String>>) {
        let s = Settings::of(cx.el);
        super::domains_config(&s.include, &s.exclude, s.include_orphans, config);
        config.insert("integrate".into(), vec![s.integrate.to_string()]);
        if s.integrate_first {
            // only when set: keys of composes in cas's order are unchanged
            config.insert("integrate-first".into(), vec!["true".into()]);
        }
        let mut integration = Vec::new();
        let mut rules = Vec::new();
        for (i, (dep, _)) in cx.staged.iter().enumerate() {
            let d = cx.loaded.element(*dep);
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

    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        let s = Settings::of(stage.element());
        let staged = stage.staged().to_vec();
        let mut parts = Vec::new();
        for (dep, tree) in &staged {
            let d = stage.element_of(*dep);
            let domains = split::Domains::new(&d.name, &d.public.split_rules)?;
            let keep = |p: &str| domains.keeps(p, &s.include, &s.exclude, s.include_orphans);
            let kept = split::filter(stage.store(), tree, &keep)?;
            parts.push(stage.layer(*dep, kept));
        }
        let kept = stage.merge(&parts)?;
        let commands: Vec<(String, String)> = staged
            .iter()
            .flat_map(|(d, _)| stage.element_of(*d).public.integration_commands.clone())
            .map(|c| ("integration-commands".to_owned(), c))
            .collect();
        if !s.integrate || commands.is_empty() {
            return Ok(kept);
        }
        // BuildStream's order integrates everything staged, cas's only what is kept
        let merged = if s.integrate_first {
            let all = stage.layers();
            stage.merge(&all)?
        } else {
            kept
        };
        // Integration commands run on a private copy: never in the store.
        let rootfs = stage.scratch();
        stage
            .store()
            .materialize(&merged, &rootfs, Method::ReflinkOrCopy)?;
        stage.run(Root::Writable(&rootfs), Commands::These(&commands))?;
        let store = stage.store();
        let integrated = store.ingest(&rootfs, IngestMode::Move)?.tree;
        if !s.integrate_first {
            return Ok(integrated);
        }
        // the kept paths, and every file integration created or changed
        let before: HashMap<Vec<u8>, Entry> = files(store, &merged)?.collect();
        let mut keep: HashSet<String> = store
            .walk(&kept)?
            .into_iter()
            .map(|(p, _)| absolute(&p))
            .collect();
        keep.extend(
            files(store, &integrated)?
                .filter(|(p, e)| before.get(p) != Some(e))
                .map(|(p, _)| absolute(&p)),
        );
        split::filter(store, &integrated, &|p| keep.contains(p))
    }

    fn parts(&self, loaded: &Loaded, id: ElementId) -> Option<Parts> {
        let s = Settings::of(loaded.element(id));
        Some(Parts {
            from: loaded.staged(id).into_iter().rev().collect(),
            include: s.include,
            exclude: s.exclude,
            include_orphans: s.include_orphans,
        })
    }
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

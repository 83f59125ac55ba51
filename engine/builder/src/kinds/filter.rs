//! `filter` (BuildStream's): the output of the element's one build
//! dependency, filtered by that element's split-rule domains (`include`,
//! `exclude`, orphans). No sandbox; what is kept is decided by the same
//! rules as compose's. With `pass-integration`, it carries the filtered
//! element's integration commands.

use std::collections::BTreeMap;

use cas_format::{Element, ElementId, Error, LoadCheck, Loaded};
use cas_store::TreeDigest;

use super::{Caps, KeyCx, Kind, Parts, Stage};
use crate::error::Result;
use crate::split;

pub struct Filter;

/// The element filtered: the one build dependency.
fn filtered(el: &Element) -> Option<ElementId> {
    el.build_depends.first().copied()
}

/// `include`, `exclude`, `include-orphans`.
fn domains(el: &Element) -> (&[String], &[String], bool) {
    let c = &el.config;
    (
        c.list("include"),
        c.list("exclude"),
        c.bool_or("include-orphans", false),
    )
}

impl Kind for Filter {
    fn name(&self) -> &'static str {
        "filter"
    }
    fn caps(&self) -> Caps {
        Caps {
            made_of_staged: true,
            has_output: true,
            ..Caps::default()
        }
    }

    /// One build dependency (and no `depends`), whose domains it names;
    /// with `pass-integration`, that element's integration commands come
    /// first in its own (filters of filters: dependencies are checked first).
    fn check(&self, load: &mut LoadCheck<'_>, id: ElementId, errors: &mut Vec<Error>) {
        let el = load.element(id);
        if el.build_depends.len() != 1 || !el.depends.is_empty() {
            errors.push(
                load.error(
                    el.origin.kind_span,
                    "a filter element has exactly one build dependency",
                    "filter",
                )
                .with_help("list the element to filter under `build-depends` (and what it needs at run time under `runtime-depends`)"),
            );
            return;
        }
        let Some(dep) = filtered(el) else { return };
        let d = load.element(dep);
        let (include, exclude, _) = domains(el);
        for name in include.iter().chain(exclude) {
            if !d.public.split_rules.contains_key(name) {
                let known: Vec<&str> = d.public.split_rules.keys().map(String::as_str).collect();
                errors.push(
                    load.error(
                        el.origin.kind_span,
                        format!(
                            "filter `{}`: `{}` has no split-rule domain `{name}`",
                            el.name, d.name
                        ),
                        "unknown domain",
                    )
                    .with_help(format!("its domains: {}", known.join(", "))),
                );
            }
        }
        if el.config.bool_or("pass-integration", false) {
            let mut ic = d.public.integration_commands.clone();
            let e = &mut load.elements[id.index()];
            ic.append(&mut e.public.integration_commands);
            e.public.integration_commands = ic;
        }
    }

    /// `include`, `exclude`, `include-orphans` and the filtered element's split
    /// rules (spec/keys.md).
    fn key_config(&self, cx: &KeyCx<'_>, config: &mut BTreeMap<String, Vec<String>>) {
        let (include, exclude, orphans) = domains(cx.el);
        super::domains_config(include, exclude, orphans, config);
        let mut rules = Vec::new();
        if let Some(dep) = filtered(cx.el) {
            for (domain, patterns) in &cx.loaded.element(dep).public.split_rules {
                for p in patterns {
                    rules.push(format!("{domain}\t{p}"));
                }
            }
        }
        config.insert("split-rules".into(), rules);
    }

    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        let el = stage.element();
        let dep = filtered(el);
        let Some((dep, tree)) = stage.staged().iter().find(|(d, _)| Some(*d) == dep) else {
            return Err(stage.fail("a filter element has exactly one build dependency".into()));
        };
        let d = stage.element_of(*dep);
        let rules = split::Domains::new(&d.name, &d.public.split_rules)?;
        let (include, exclude, orphans) = domains(el);
        let keep = |p: &str| rules.keeps(p, include, exclude, orphans);
        split::filter(stage.store(), tree, &keep)
    }

    fn parts(&self, loaded: &Loaded, id: ElementId) -> Option<Parts> {
        let el = loaded.element(id);
        let (include, exclude, include_orphans) = domains(el);
        Some(Parts {
            from: filtered(el).into_iter().collect(),
            include: include.to_vec(),
            exclude: exclude.to_vec(),
            include_orphans,
        })
    }
}

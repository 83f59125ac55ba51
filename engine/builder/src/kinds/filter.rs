//! `filter` (BuildStream's): the output of the element's one build
//! dependency, filtered by that element's split-rule domains (`include`,
//! `exclude`, orphans). No sandbox; what is kept is decided by the same
//! rules as compose's.

use std::collections::BTreeMap;

use cas_format::{Element, ElementId, Loaded};
use cas_store::TreeDigest;

use super::Work;
use crate::error::{BuildError, Result};
use crate::split;

/// A filter element's configuration.
#[derive(Clone, Copy)]
pub(crate) struct Settings<'a> {
    pub include: &'a [String],
    pub exclude: &'a [String],
    pub include_orphans: bool,
}

/// The element filtered: the one build dependency.
fn filtered(el: &Element) -> Option<ElementId> {
    el.build_depends.first().copied()
}

/// `include`, `exclude`, `include-orphans` and the filtered element's split
/// rules (spec/keys.md).
pub(crate) fn key_config(
    loaded: &Loaded,
    el: &Element,
    s: Settings<'_>,
    config: &mut BTreeMap<String, Vec<String>>,
) {
    super::compose::domains_config(s.include, s.exclude, s.include_orphans, config);
    let mut rules = Vec::new();
    if let Some(dep) = filtered(el) {
        for (domain, patterns) in &loaded.element(dep).public.split_rules {
            for p in patterns {
                rules.push(format!("{domain}\t{p}"));
            }
        }
    }
    config.insert("split-rules".into(), rules);
}

pub(crate) fn assemble(work: Work<'_, '_>, s: Settings<'_>) -> Result<TreeDigest> {
    let Work {
        engine, el, staged, ..
    } = work;
    let dep = filtered(el);
    let Some((dep, tree)) = staged.iter().find(|(d, _)| Some(*d) == dep) else {
        return Err(BuildError::Other {
            element: el.name.clone(),
            message: "a filter element has exactly one build dependency".into(),
        });
    };
    let d = engine.element(*dep);
    let domains = split::Domains::new(&d.name, &d.public.split_rules)?;
    let keep = |p: &str| domains.keeps(p, s.include, s.exclude, s.include_orphans);
    split::filter(engine.store, tree, &keep)
}

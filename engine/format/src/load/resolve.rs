//! Resolving the elements read (in parallel), the cycles of the graph as
//! written, and, for a partial load, the part of the graph that loads.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use super::host_arch;
use super::junctions::Projects;
use crate::diagnostics::{Error, Files};
use crate::element::{resolve, Context, Element, ElementId, RawElement};
use crate::graph;

/// Ids in name order, every element resolved, and the errors (each
/// element's, and the cycles of the graph as written).
pub(super) fn resolve_all(
    files: &Files,
    projects: &Projects,
    raws: &mut [RawElement],
    existing: &mut [String],
) -> (Vec<Element>, HashMap<String, ElementId>, Vec<Error>) {
    existing.sort();
    let ids: HashMap<String, ElementId> = existing
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), ElementId(i as u32)))
        .collect();
    raws.sort_by(|a, b| a.name.cmp(&b.name));
    let host = host_arch();
    let target = projects.target_arch.as_deref().unwrap_or(host);
    let cxs: Vec<Context> = projects
        .list
        .iter()
        .map(|p| Context {
            files,
            project: &p.project,
            defaults: &p.kinds.defaults,
            kinds: &p.kinds.kinds,
            broken_kinds: &p.kinds.broken_kinds,
            ids: &ids,
            host_arch: host,
            target_arch: target,
        })
        .collect();
    let resolved: Vec<Result<Element, Vec<Error>>> = raws
        .par_iter()
        .map(|raw| resolve(&cxs[raw.project], ids[&raw.name], raw))
        .collect();
    drop(cxs);
    let mut edges = Vec::new();
    for raw in raws.iter() {
        let from = ids[&raw.name];
        for (dk, dep) in &raw.deps {
            if let Some(&to) = ids.get(&dep.value) {
                edges.push((from, *dk, to, dep.span));
            }
        }
    }
    let mut errors = graph::find_cycles(files, existing, &edges);
    let mut elements = Vec::with_capacity(resolved.len());
    for r in resolved {
        match r {
            Ok(e) => elements.push(e),
            Err(es) => errors.extend(es),
        }
    }
    (elements, ids, errors)
}

/// The elements that resolved (`ok`) and whose dependencies, transitively,
/// all did (none in a cycle: a cycle's members depend on themselves).
pub(super) fn loadable(raws: &[RawElement], ok: &HashSet<String>) -> HashSet<String> {
    let by_name: HashMap<&str, &RawElement> = raws.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut state: HashMap<&str, Option<bool>> = HashMap::new();
    fn visit<'a>(
        n: &'a str,
        by_name: &HashMap<&'a str, &'a RawElement>,
        ok: &HashSet<String>,
        state: &mut HashMap<&'a str, Option<bool>>,
    ) -> bool {
        match state.get(n) {
            Some(Some(v)) => return *v,
            Some(None) => return false, // on the stack: a cycle
            None => {}
        }
        state.insert(n, None);
        let good = ok.contains(n)
            && by_name.get(n).is_some_and(|r| {
                r.deps
                    .iter()
                    .all(|(_, d)| visit(d.value.as_str(), by_name, ok, state))
            });
        state.insert(n, Some(good));
        good
    }
    raws.iter()
        .filter(|r| visit(r.name.as_str(), &by_name, ok, &mut state))
        .map(|r| r.name.clone())
        .collect()
}

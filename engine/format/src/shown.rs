//! An element as `bst show --format` shows it (spec/cli.md, `cas show
//! --format`): its direct dependencies in BuildStream's order, with links
//! replaced by what they point to, and its variables and environment with
//! `%{max-jobs}` given its value.

use std::collections::HashSet;

use crate::data::Data;
use crate::element::{Element, ElementId};
use crate::load::Loaded;
use crate::variables::MAX_JOBS;

/// Which direct dependencies (`%{deps}`, `%{build-deps}`, `%{runtime-deps}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepScope {
    /// Build dependencies, then the runtime ones not already listed.
    All,
    Build,
    Run,
}

const BUILD: u8 = 1;
const RUN: u8 = 2;

impl Loaded {
    /// What a link stands for: the element it points to, through links.
    pub fn through_links(&self, mut id: ElementId) -> ElementId {
        let mut seen = HashSet::new();
        while self.element(id).link && seen.insert(id) {
            match self.element(id).depends.first() {
                Some(&t) => id = t,
                None => break,
            }
        }
        id
    }

    /// Everything `id` depends on through any edge, transitively (not
    /// itself), computed once per element (a post-order walk, no recursion).
    pub fn needs(&self, id: ElementId) -> std::sync::Arc<HashSet<ElementId>> {
        let mut memo = self
            .below
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = memo.get(&id) {
            return s.clone();
        }
        let direct = |e: ElementId| {
            let el = self.element(e);
            el.build_depends
                .iter()
                .chain(&el.depends)
                .chain(&el.runtime_depends)
                .copied()
                .collect::<Vec<_>>()
        };
        // (element, its children visited?)
        let mut stack = vec![(id, false)];
        while let Some((e, expanded)) = stack.pop() {
            if memo.contains_key(&e) {
                continue;
            }
            if expanded {
                let mut set = HashSet::new();
                for c in direct(e) {
                    set.insert(c);
                    if let Some(cs) = memo.get(&c) {
                        set.extend(cs.iter().copied());
                    }
                }
                memo.insert(e, std::sync::Arc::new(set));
            } else {
                stack.push((e, true));
                for c in direct(e) {
                    if !memo.contains_key(&c) {
                        stack.push((c, false));
                    }
                }
            }
        }
        memo.get(&id).cloned().unwrap_or_default()
    }

    /// The direct dependencies of `id` in `scope`, in BuildStream's order:
    /// one that needs another comes after it, runtime-only ones last, then
    /// by name; each once.
    pub fn shown_deps(&self, id: ElementId, scope: DepScope) -> Vec<ElementId> {
        let el = self.element(id);
        let mut deps: Vec<(ElementId, u8)> = Vec::new();
        // in the order BuildStream collects them before sorting (its sort
        // is not a total order, so this order shows through)
        for (list, ty) in [
            (&el.build_depends, BUILD),
            (&el.runtime_depends, RUN),
            (&el.depends, BUILD | RUN),
        ] {
            for &d in list {
                let d = self.through_links(d);
                match deps.iter_mut().find(|(x, _)| *x == d) {
                    Some((_, t)) => *t |= ty,
                    None => deps.push((d, ty)),
                }
            }
        }
        // everything each one needs (every edge, transitively)
        let below: Vec<std::sync::Arc<HashSet<ElementId>>> =
            deps.iter().map(|(d, _)| self.needs(*d)).collect();
        let cmp = |a: usize, b: usize| -> std::cmp::Ordering {
            use std::cmp::Ordering::{Equal, Greater, Less};
            let (ea, ta) = deps[a];
            let (eb, tb) = deps[b];
            if below[a].contains(&eb) {
                return Greater;
            }
            if below[b].contains(&ea) {
                return Less;
            }
            if ta != tb {
                if ta == RUN {
                    return Greater;
                }
                if tb == RUN {
                    return Less;
                }
            }
            let (na, nb) = (&self.element(ea).name, &self.element(eb).name);
            match local_name(na).cmp(local_name(nb)) {
                // then an element through a junction first, junctions by name
                Equal => match (junction(na), junction(nb)) {
                    (Some(ja), Some(jb)) => ja.cmp(jb),
                    (Some(_), None) => Less,
                    (None, Some(_)) => Greater,
                    (None, None) => Equal,
                },
                o => o,
            }
        };
        let order = list_sort(deps.len(), cmp);
        let sorted: Vec<(ElementId, u8)> = order.into_iter().map(|i| deps[i]).collect();
        let build = sorted
            .iter()
            .filter(|(_, t)| t & BUILD != 0)
            .map(|(d, _)| *d);
        let run = sorted.iter().filter(|(_, t)| t & RUN != 0).map(|(d, _)| *d);
        match scope {
            DepScope::Build => build.collect(),
            DepScope::Run => run.collect(),
            DepScope::All => {
                let mut out: Vec<ElementId> = build.collect();
                for d in run {
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
                out
            }
        }
    }
}

/// An element's name inside its own project (after its junctions).
fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The junctions an element is reached through (`a.bst:b.bst` of
/// `a.bst:b.bst:c.bst`), if any.
fn junction(name: &str) -> Option<&str> {
    name.rsplit_once(':').map(|(j, _)| j)
}

/// The order Python's list sort gives with a comparison (BuildStream sorts
/// dependencies with one that is not a total order, so the algorithm
/// matters): for the short lists dependencies are, a binary insertion sort
/// after the leading run, as CPython's timsort does below 64 items.
fn list_sort(n: usize, cmp: impl Fn(usize, usize) -> std::cmp::Ordering) -> Vec<usize> {
    let lt = |a: usize, b: usize| cmp(a, b) == std::cmp::Ordering::Less;
    let mut v: Vec<usize> = (0..n).collect();
    if n < 2 {
        return v;
    }
    // the leading run: strictly descending (reversed) or non-descending
    let mut run = 2;
    if lt(v[1], v[0]) {
        while run < n && lt(v[run], v[run - 1]) {
            run += 1;
        }
        v[..run].reverse();
    } else {
        while run < n && !lt(v[run], v[run - 1]) {
            run += 1;
        }
    }
    for start in run..n {
        let pivot = v[start];
        let (mut l, mut r) = (0, start);
        while l < r {
            let p = l + (r - l) / 2;
            if lt(pivot, v[p]) {
                r = p;
            } else {
                l = p + 1;
            }
        }
        v.remove(start);
        v.insert(l, pivot);
    }
    v
}

/// `%{max-jobs}` given its value in every string.
fn with_jobs(s: &str, jobs: &str) -> String {
    s.replace("%{max-jobs}", jobs)
}

/// Its variables as `%{vars}` shows them: a BuildStream element's in
/// BuildStream's order with `max-jobs`; `%{max-jobs}` replaced by `jobs`.
pub fn shown_vars(el: &Element, jobs: &str) -> Data {
    if el.shown_order.is_empty() {
        return Data::Map(
            el.variables
                .iter()
                .map(|(k, v)| (k.clone(), Data::Str(with_jobs(v, jobs))))
                .collect(),
        );
    }
    Data::Map(
        el.shown_order
            .iter()
            .filter_map(|k| {
                let v = if k == MAX_JOBS {
                    jobs.to_string()
                } else {
                    with_jobs(el.variables.get(k)?, jobs)
                };
                Some((k.clone(), Data::Str(v)))
            })
            .collect(),
    )
}

/// Its environment as `%{env}` shows it.
pub fn shown_env(el: &Element, jobs: &str) -> Data {
    let all = el.environment.keys();
    let names: Vec<&String> = if el.shown_env_order.is_empty() {
        all.collect()
    } else {
        el.shown_env_order.iter().collect()
    };
    Data::Map(
        names
            .into_iter()
            .filter_map(|k| {
                Some((
                    k.clone(),
                    Data::Str(with_jobs(el.environment.get(k)?, jobs)),
                ))
            })
            .collect(),
    )
}

/// Its configuration and public data with `%{max-jobs}` given its value.
pub fn shown_config(el: &Element, jobs: &str) -> (Data, Data) {
    let mut c = el.shown_config.clone();
    c.map_strings(&mut |s| with_jobs(s, jobs));
    let mut p = el.shown_public.clone();
    p.map_strings(&mut |s| with_jobs(s, jobs));
    (c, p)
}

#[cfg(test)]
mod tests {
    use super::list_sort;

    #[test]
    fn sorts_as_pythons_list_sort_does_for_a_total_order() {
        let keys = [5, 3, 9, 1, 3, 7];
        let order = list_sort(keys.len(), |a, b| keys[a].cmp(&keys[b]));
        let sorted: Vec<i32> = order.iter().map(|&i| keys[i]).collect();
        assert_eq!(sorted, [1, 3, 3, 5, 7, 9]);
        // stable: the two 3s keep their order
        assert_eq!(order[1..3], [1, 4]);
    }
}

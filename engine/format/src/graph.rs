//! The dependency graph: cycle detection (petgraph's Tarjan SCC), runtime
//! closures, what gets staged into an element's sysroot, and deterministic
//! topological orders (dependencies first, ties broken by element name;
//! element ids follow name order, so ties are broken by id).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::diagnostics::{Error, Files, Span};
use crate::element::{DepKind, Element, ElementId};

/// The distinct direct dependencies of an element (all three kinds).
pub(crate) fn direct_deps(e: &Element) -> impl Iterator<Item = ElementId> + '_ {
    e.build_depends
        .iter()
        .chain(&e.depends)
        .chain(&e.runtime_depends)
        .copied()
}

/// Everything reachable from `start` through `next`, excluding `start` itself
/// unless it is reached again (it cannot be: the graph has no cycle).
fn reach(
    elements: &[Element],
    start: impl IntoIterator<Item = ElementId>,
    next: impl Fn(&Element) -> Vec<ElementId>,
) -> HashSet<ElementId> {
    let mut seen = HashSet::new();
    let mut stack: Vec<ElementId> = start.into_iter().collect();
    while let Some(id) = stack.pop() {
        let Some(e) = elements.get(id.index()) else {
            continue;
        };
        for d in next(e) {
            if seen.insert(d) {
                stack.push(d);
            }
        }
    }
    seen
}

/// `e`'s dependencies of the given kinds in the order its file writes them
/// (whichever key they are under), each once.
fn declared(e: &Element, kinds: &[DepKind]) -> Vec<ElementId> {
    let mut deps: Vec<&(DepKind, ElementId, Span)> = e
        .origin
        .deps
        .iter()
        .filter(|(k, _, _)| kinds.contains(k))
        .collect();
    deps.sort_by_key(|(_, _, span)| span.start);
    let mut out: Vec<ElementId> = Vec::with_capacity(deps.len());
    for (_, d, _) in deps {
        if !out.contains(d) {
            out.push(*d);
        }
    }
    out
}

/// What is staged into `id`'s sysroot, in staging order (BuildStream's): each build-depend and
/// depend in the order written, each preceded by its runtime closure (its
/// own runtime dependencies in the order written, depth first), every
/// element once, at its first place. Dependencies always come before their
/// dependents; what comes later may overwrite what came earlier (when it
/// whitelists the path), so the order is the one the author wrote.
pub(crate) fn staging_order(elements: &[Element], id: ElementId) -> Vec<ElementId> {
    let Some(e) = elements.get(id.index()) else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for d in declared(e, &[DepKind::Build, DepKind::All]) {
        with_runtime_closure(elements, d, &mut seen, &mut out);
    }
    out
}

/// `d` preceded by its runtime closure (its own runtime dependencies in the
/// order written, depth first), each element not `seen` yet appended once.
fn with_runtime_closure(
    elements: &[Element],
    d: ElementId,
    seen: &mut HashSet<ElementId>,
    out: &mut Vec<ElementId>,
) {
    if !seen.insert(d) {
        return;
    }
    if let Some(e) = elements.get(d.index()) {
        for r in declared(e, &[DepKind::All, DepKind::Runtime]) {
            with_runtime_closure(elements, r, seen, out);
        }
    }
    out.push(d);
}

/// What comes with `id` wherever it is staged or installed: its `depends`
/// and `runtime-depends`, each preceded by its own runtime closure, every
/// element once (the order of [`staging_order`]); `id` itself excluded.
pub(crate) fn runtime_closure(elements: &[Element], id: ElementId) -> Vec<ElementId> {
    let Some(e) = elements.get(id.index()) else {
        return Vec::new();
    };
    let mut seen = HashSet::from([id]);
    let mut out = Vec::new();
    for d in declared(e, &[DepKind::All, DepKind::Runtime]) {
        with_runtime_closure(elements, d, &mut seen, &mut out);
    }
    out
}

/// Everything needed to build `targets`: the targets and all they reach.
pub(crate) fn closure_set(elements: &[Element], targets: &[ElementId]) -> HashSet<ElementId> {
    let mut set = reach(elements, targets.iter().copied(), |e| {
        direct_deps(e).collect()
    });
    set.extend(targets.iter().copied());
    set
}

/// `set` in topological order (dependencies first), ties broken by id (= name).
pub(crate) fn topo_order(elements: &[Element], set: &HashSet<ElementId>) -> Vec<ElementId> {
    let mut pending: HashMap<ElementId, usize> = HashMap::with_capacity(set.len());
    let mut dependents: HashMap<ElementId, Vec<ElementId>> = HashMap::new();
    let mut ready = BinaryHeap::new();
    for &id in set {
        let Some(e) = elements.get(id.index()) else {
            continue;
        };
        let mut deps: Vec<ElementId> = direct_deps(e).filter(|d| set.contains(d)).collect();
        deps.sort_unstable();
        deps.dedup();
        for &d in &deps {
            dependents.entry(d).or_default().push(id);
        }
        if deps.is_empty() {
            ready.push(Reverse(id));
        }
        pending.insert(id, deps.len());
    }
    let mut out = Vec::with_capacity(set.len());
    while let Some(Reverse(id)) = ready.pop() {
        out.push(id);
        if let Some(ds) = dependents.get(&id) {
            for &x in ds {
                if let Some(n) = pending.get_mut(&x) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(Reverse(x));
                    }
                }
            }
        }
    }
    out
}

/// One edge as written: from, kind, to, span of the dependency entry.
pub(crate) type Edge = (ElementId, DepKind, ElementId, Span);

/// Report every dependency cycle, listing each edge with its file:line.
pub(crate) fn find_cycles(files: &Files, names: &[String], edges: &[Edge]) -> Vec<Error> {
    let mut g: DiGraph<ElementId, usize> = DiGraph::with_capacity(names.len(), edges.len());
    let nodes: Vec<NodeIndex> = (0..names.len())
        .map(|i| g.add_node(ElementId(i as u32)))
        .collect();
    for (i, (from, _, to, _)) in edges.iter().enumerate() {
        if let (Some(&a), Some(&b)) = (nodes.get(from.index()), nodes.get(to.index())) {
            g.add_edge(a, b, i);
        }
    }
    let mut errors = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        let self_loop = scc.len() == 1 && g.find_edge(scc[0], scc[0]).is_some();
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let in_scc: HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min_by_key(|n| g[**n]) else {
            continue;
        };
        // BFS from start back to start inside the SCC, following edges in written order
        let mut prev: HashMap<NodeIndex, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        'bfs: while let Some(n) = queue.pop_front() {
            let mut out: Vec<_> = g
                .edges(n)
                .map(|e| (*e.weight(), petgraph::visit::EdgeRef::target(&e)))
                .collect();
            out.sort_unstable();
            for (ei, t) in out {
                if t == start {
                    closing = Some(ei);
                    break 'bfs;
                }
                if in_scc.contains(&t) && !prev.contains_key(&t) {
                    prev.insert(t, ei);
                    queue.push_back(t);
                }
            }
        }
        let Some(last) = closing else { continue };
        let mut path = vec![last];
        let mut at = nodes[edges[last].0.index()];
        while at != start {
            let Some(&ei) = prev.get(&at) else { break };
            path.push(ei);
            at = nodes[edges[ei].0.index()];
        }
        path.reverse();
        let name = |id: ElementId| names.get(id.index()).cloned().unwrap_or_default();
        let mut chain = vec![name(edges[path[0]].0)];
        let mut help = String::from("remove one of these dependencies:");
        for &ei in &path {
            let (from, dk, to, span) = edges[ei];
            chain.push(name(to));
            help.push_str(&format!(
                "\n  {}: {} {} `{}`",
                files.location(span),
                name(from),
                dk.key(),
                name(to)
            ));
        }
        let first = edges[path[0]];
        errors.push(
            files
                .error(
                    first.3,
                    format!("dependency cycle: {}", chain.join(" → ")),
                    "this dependency starts the cycle",
                )
                .with_help(help),
        );
    }
    errors
}

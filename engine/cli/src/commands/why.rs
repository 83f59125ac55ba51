//! `cas why-depends A B`: every path by which A depends on B, each edge
//! named (build, depends, runtime), as Nix's `why-depends` answers it.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_format::{ElementId, Loaded};

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct WhyArgs {
    /// The element that depends
    pub from: PathBuf,
    /// The element it depends on
    pub to: PathBuf,
    /// At most this many paths [default: 100]
    #[arg(long, default_value_t = 100)]
    pub max: usize,
}

/// What kind of edge leads from an element to a dependency.
fn edges(loaded: &Loaded, id: ElementId) -> Vec<(ElementId, &'static str)> {
    let e = loaded.element(id);
    let mut out = Vec::new();
    for (list, kind) in [
        (&e.build_depends, "build"),
        (&e.depends, "depends"),
        (&e.runtime_depends, "runtime"),
    ] {
        out.extend(list.iter().map(|&d| (d, kind)));
    }
    out
}

/// Every path from `from` to `to` (at most `max`), depth first, without
/// recursion; the graph is acyclic (the loader refuses cycles).
fn paths(
    loaded: &Loaded,
    from: ElementId,
    to: ElementId,
    max: usize,
) -> Vec<Vec<(ElementId, &'static str)>> {
    // what reaches `to` at all, so that dead branches are never walked
    let mut reaches = std::collections::HashMap::new();
    for id in loaded.closure(&[from]) {
        // the closure is in dependency order: dependencies first
        let r = id == to
            || edges(loaded, id)
                .iter()
                .any(|(d, _)| reaches.get(d) == Some(&true));
        reaches.insert(id, r);
    }
    let mut out = Vec::new();
    if reaches.get(&from) != Some(&true) {
        return out;
    }
    // the path so far (element, edge that led to it) and the next edge to try
    let mut stack: Vec<(ElementId, &'static str, usize)> = vec![(from, "", 0)];
    while let Some(&mut (id, _, ref mut next)) = stack.last_mut() {
        if id == to {
            out.push(stack.iter().map(|(e, k, _)| (*e, *k)).collect());
            stack.pop();
            if out.len() >= max {
                break;
            }
            continue;
        }
        let es = edges(loaded, id);
        let Some(&(d, kind)) = es.get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        if reaches.get(&d) == Some(&true) {
            stack.push((d, kind, 0));
        }
    }
    out
}

pub(crate) fn run(global: &Session, args: WhyArgs) -> CmdResult {
    let loaded = load_or_report(global, &[args.from.clone(), args.to.clone()])?;
    let (from, to) = match loaded.targets.as_slice() {
        [a, b] => (*a, *b),
        [a] => (*a, *a),
        _ => return Err(Failure::invalid(miette::miette!("give two elements"))),
    };
    let found = paths(&loaded, from, to, args.max.max(1));
    let name = |id: ElementId| loaded.element(id).name.clone();
    if global.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|p| {
                serde_json::json!(p
                    .iter()
                    .map(|(e, k)| serde_json::json!({"element": name(*e), "edge": k}))
                    .collect::<Vec<_>>())
            })
            .collect();
        crate::json::print(
            &serde_json::json!({"from": name(from), "to": name(to), "paths": rows}),
        )?;
    } else {
        for p in &found {
            let mut line = name(p[0].0);
            for (e, kind) in &p[1..] {
                line.push_str(&format!(" -{kind}-> {}", name(*e)));
            }
            println!("{line}");
        }
    }
    if found.is_empty() {
        eprintln!("{} does not depend on {}", name(from), name(to));
        return Err(Failure::Silent(1));
    }
    Ok(ExitCode::SUCCESS)
}

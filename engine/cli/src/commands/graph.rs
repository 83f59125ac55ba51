//! `cas graph`: the dependency graph in Graphviz DOT.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_format::Loaded;

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::CmdResult;

#[derive(Debug, clap::Args)]
pub(crate) struct GraphArgs {
    /// Element file or element name
    pub target: PathBuf,
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT of the closure: build-depends dashed, depends solid,
/// runtime-depends dotted.
pub(crate) fn render_dot(loaded: &Loaded) -> String {
    let mut out = format!("digraph {} {{\n", dot_quote(&loaded.project.name));
    out.push_str("  // edges point from an element to its dependency\n");
    out.push_str(
        "  // build-depends: dashed blue; depends: solid; runtime-depends: dotted green\n",
    );
    out.push_str("  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
    let ids = loaded.closure(&loaded.targets);
    for &id in &ids {
        let e = loaded.element(id);
        out.push_str(&format!(
            "  {} [label={}];\n",
            dot_quote(&e.name),
            dot_quote(&format!("{}\n({})", e.name, e.kind))
        ));
    }
    for &id in &ids {
        let e = loaded.element(id);
        for (list, style) in [
            (
                &e.build_depends,
                "style=dashed, color=blue, label=\"build\"",
            ),
            (&e.depends, "style=solid"),
            (
                &e.runtime_depends,
                "style=dotted, color=darkgreen, label=\"runtime\"",
            ),
        ] {
            for &d in list {
                out.push_str(&format!(
                    "  {} -> {} [{}];\n",
                    dot_quote(&e.name),
                    dot_quote(&loaded.element(d).name),
                    style
                ));
            }
        }
    }
    out.push_str("}\n");
    out
}

pub(crate) fn run_graph(global: &Session, args: GraphArgs) -> CmdResult {
    let loaded = load_or_report(global, std::slice::from_ref(&args.target))?;
    print!("{}", render_dot(&loaded));
    Ok(ExitCode::SUCCESS)
}

//! `cas pull`: results of the closure from the remotes; the targets'
//! outputs are downloaded (spec/remote.md).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::load::load_or_report;
use crate::commands::remotes::{invalid, Stderr};
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct PullArgs {
    /// Element files or element names
    #[arg(required = true)]
    pub targets: Vec<PathBuf>,
    #[command(flatten)]
    pub remote: crate::commands::remotes::ReadRemoteFlags,
}

pub(crate) fn run(global: &Session, args: PullArgs) -> CmdResult {
    let loaded = load_or_report(global, &args.targets)?;
    let store = global.store()?;
    let remotes = global
        .remotes(&args.remote.flags(), false)?
        .ok_or_else(|| invalid("no remote: pass --remote URL or configure `remotes:`".into()))?;
    let rows = cas_builder::remote::pull(&store, &loaded, &loaded.targets, &remotes, &Stderr)
        .map_err(Failure::error)?;
    let summary = remotes.summary();
    if global.json {
        crate::json::print(&serde_json::json!({"elements": rows, "transfers": summary.transfers}))?;
    }
    let missing: Vec<&str> = loaded
        .targets
        .iter()
        .map(|t| loaded.element(*t).name.as_str())
        .filter(|n| {
            rows.iter()
                .any(|r| r.name == *n && r.status == cas_builder::remote::PullStatus::Missing)
        })
        .collect();
    // a result a remote has but that was not used is not "missing", nor is
    // one whose key depends on such a result
    let mut rejected: Vec<String> = Vec::new();
    let mut absent: Vec<&str> = Vec::new();
    for &n in &missing {
        let below = loaded.find(n).map(|id| {
            loaded
                .closure(&[id])
                .into_iter()
                .map(|d| loaded.element(d).name.as_str())
                .filter(|d| *d != n && remotes.was_rejected(d))
                .collect::<Vec<_>>()
        });
        if remotes.was_rejected(n) {
            rejected.push(n.to_string());
        } else if let Some(b) = below.filter(|b| !b.is_empty()) {
            rejected.push(format!("{n} (its key needs {})", b.join(", ")));
        } else {
            absent.push(n);
        }
    }
    let mut said = String::new();
    if !rejected.is_empty() {
        said.push_str(&format!(
            "; a remote has results that were not used (see the warnings above): {}",
            rejected.join(", ")
        ));
    }
    if !absent.is_empty() {
        said.push_str(&format!("; not in any remote: {}", absent.join(", ")));
    }
    eprintln!(
        "{} object(s) downloaded ({} bytes){said}",
        summary.transfers.downloaded_objects, summary.transfers.downloaded_bytes,
    );
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

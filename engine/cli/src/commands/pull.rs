//! `cas pull`: results of the closure from the remotes; the targets'
//! outputs are downloaded (spec/remote.md).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::remotes::{invalid, Stderr};
use crate::commands::session::Session;
use crate::commands::show::load_or_report;
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
        .map_err(|e| Failure::failed(miette::miette!("{e}")))?;
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
    eprintln!(
        "{} object(s) downloaded ({} bytes){}",
        summary.transfers.downloaded_objects,
        summary.transfers.downloaded_bytes,
        if missing.is_empty() {
            String::new()
        } else {
            format!("; not in any remote: {}", missing.join(", "))
        }
    );
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

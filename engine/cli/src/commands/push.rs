//! `cas push`: every locally cached result of the closure to the remotes
//! (spec/remote.md "Push").

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::load::load_or_report;
use crate::commands::remotes::{invalid, RemoteFlags, Stderr};
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// Element files or element names
    #[arg(required = true)]
    pub targets: Vec<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

pub(crate) fn run(global: &Session, args: PushArgs) -> CmdResult {
    let loaded = load_or_report(global, &args.targets)?;
    let store = global.store()?;
    let remotes = global
        .remotes(&args.remote, true)?
        .ok_or_else(|| invalid("no remote: pass --remote URL or configure `remotes:`".into()))?;
    let report = cas_builder::remote::push(&store, &loaded, &loaded.targets, &remotes, &Stderr)
        .map_err(Failure::error)?;
    let summary = remotes.summary();
    if global.json {
        crate::json::print(
            &serde_json::json!({"pushed": report.pushed, "already_there": report.already_there, "not_built": report.not_built, "push_failures": summary.push_failures, "transfers": summary.transfers}),
        )?;
    }
    eprintln!(
        "pushed {} result(s), {} already there: {} object(s) uploaded, {} failure(s){}",
        report.pushed,
        report.already_there,
        summary.transfers.uploaded_objects,
        summary.push_failures.len(),
        if report.not_built.is_empty() {
            String::new()
        } else {
            format!("; not built: {}", report.not_built.join(", "))
        }
    );
    let targets_missing = loaded
        .targets
        .iter()
        .any(|t| report.not_built.contains(&loaded.element(*t).name));
    if !summary.push_failures.is_empty() || targets_missing {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

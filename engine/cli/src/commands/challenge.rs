//! `cas challenge`: local outputs compared with a remote's.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::check::{err, print_json};
use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::CmdResult;

#[derive(Debug, clap::Args)]
pub(crate) struct ChallengeArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// A remote cache to compare with (http(s):// URL, file:// URL or
    /// directory; repeatable). The configured remotes are compared too.
    #[arg(long = "remote", value_name = "URL")]
    pub remotes: Vec<String>,
    /// Compare with the given --remote caches only, not the configured ones
    #[arg(long)]
    pub no_configured: bool,
    /// Download each disagreeing output (objects verified, nothing recorded) and show what differs
    #[arg(long)]
    pub diff: bool,
}

pub(crate) fn run_challenge(global: &Session, args: ChallengeArgs) -> CmdResult {
    let loaded = load_or_report(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    let mut urls: Vec<String> = Vec::new();
    if !args.no_configured {
        urls.extend(global.config()?.remotes.iter().map(|r| r.url.clone()));
    }
    for u in &args.remotes {
        if !urls.contains(u) {
            urls.push(u.clone());
        }
    }
    if urls.is_empty() {
        return Err(crate::exit::Failure::invalid(miette::miette!(
            help = "give --remote URL (repeatable), or configure remotes (spec/remote.md)",
            "no remote to challenge"
        )));
    }
    let report =
        cas_audit::challenge::challenge(&store, &loaded, loaded.targets[0], &urls, args.diff)
            .map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::challenge::render(&report));
    }
    Ok(if report.disagree == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

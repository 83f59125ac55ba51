//! `cas challenge`: local outputs compared with a remote's.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::check::{err, print_json};
use crate::commands::session::Session;
use crate::commands::show::load_or_report;
use crate::exit::CmdResult;

#[derive(Debug, clap::Args)]
pub(crate) struct ChallengeArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// The remote cache to compare with (http(s):// URL, file:// URL or directory)
    #[arg(long, value_name = "URL", required = true)]
    pub remote: String,
}

pub(crate) fn run_challenge(global: &Session, args: ChallengeArgs) -> CmdResult {
    let loaded = load_or_report(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    let report = cas_audit::challenge::challenge(&store, &loaded, loaded.targets[0], &args.remote)
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

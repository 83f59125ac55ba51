//! `cas explain`: why an element's key changed, down to the root cause.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_store::{ActionKey, Digest};

use crate::commands::check::{err, print_json};
use crate::commands::diff::is_digest;
use crate::commands::session::Session;
use crate::commands::show::load_or_report;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// Compare with this action key instead of the element's last build
    #[arg(long, value_name = "KEY")]
    pub against: Option<String>,
}

pub(crate) fn run_explain(global: &Session, args: ExplainArgs) -> CmdResult {
    let against = match &args.against {
        Some(k) if is_digest(k) => Some(ActionKey(
            Digest::from_hex(&k.to_ascii_lowercase())
                .map_err(|e| Failure::invalid(miette::miette!("{e}")))?,
        )),
        Some(k) => {
            return Err(Failure::invalid(miette::miette!(
                "--against {k}: not an action key (64 hex digits)"
            )))
        }
        None => None,
    };
    let loaded = load_or_report(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    let report = cas_audit::explain::explain(&store, &loaded, loaded.targets[0], against.as_ref())
        .map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::explain::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

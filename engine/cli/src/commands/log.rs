//! `cas log`: the build log stored with an element's result.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::checkout::cached_output;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Element file or element name
    pub target: PathBuf,
}

pub(crate) fn run_log(global: &Session, args: LogArgs) -> CmdResult {
    let (store, loaded, row) = cached_output(global, &args.target)?;
    let key = row.key.expect("cached rows have keys");
    let result = store
        .action_get(&key)
        .map_err(|e| Failure::failed(miette::miette!("{e}")))?
        .ok_or_else(|| {
            Failure::failed(miette::miette!(
                "no result for {}",
                loaded.element(row.id).name
            ))
        })?;
    let log = store
        .read_blob(&result.log)
        .map_err(|e| Failure::failed(miette::miette!("{e}")))?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&log);
    Ok(ExitCode::SUCCESS)
}

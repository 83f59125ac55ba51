//! `cas log`: the build log stored with an element's result.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::builddir::FailedBuild;

use crate::commands::checkout::cached_output;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Element file or element name (its result's log, or the log of its
    /// last failed build with the same key)
    #[arg(required_unless_present = "failed", conflicts_with = "failed")]
    pub target: Option<PathBuf>,
    /// The log of the last build that failed, whatever the element
    #[arg(long)]
    pub failed: bool,
}

/// Prints a failed build's kept log, with a line saying what it is.
fn print_failed(failed: &FailedBuild) -> CmdResult {
    let log = std::fs::read(&failed.log).map_err(|e| {
        Failure::failed(miette::miette!("cannot read {}: {e}", failed.log.display()))
    })?;
    eprintln!(
        "{}: the log of its failed build (key {}), kept in {}",
        failed.element,
        &failed.key[..12.min(failed.key.len())],
        failed.dir.display()
    );
    use std::io::Write;
    let _ = std::io::stdout().write_all(&log);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_log(global: &Session, args: LogArgs) -> CmdResult {
    let Some(target) = args.target else {
        let store = global.store()?;
        let failed = FailedBuild::load(store.root())
            .filter(|f| f.log.is_file())
            .ok_or_else(|| {
                Failure::failed(miette::miette!("no failed build is kept in this store"))
            })?;
        return print_failed(&failed);
    };
    let (store, loaded, row) = match cached_output(global, &target) {
        Ok(found) => found,
        Err(not_built) => {
            // not built: the log of its last failed build with this key, if kept
            let loaded =
                crate::commands::show::load_or_report(global, std::slice::from_ref(&target))?;
            let store = global.store()?;
            let plan = cas_builder::states(
                &store,
                &loaded,
                &loaded.targets,
                &global.mirrors(&loaded.project)?,
            )
            .map_err(|e| Failure::failed(miette::miette!("{e}")))?;
            let id = loaded.targets[0];
            let failed = plan
                .iter()
                .find(|p| p.id == id)
                .and_then(|p| p.key)
                .and_then(|k| FailedBuild::of_key(store.root(), &k.to_hex()));
            return match failed {
                Some(f) => print_failed(&f),
                None => Err(not_built),
            };
        }
    };
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

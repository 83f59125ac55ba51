//! `cas shell TARGET` and `cas shell --failed`: an interactive shell in an
//! element's sandbox, with its sysroot and sources staged; `-- COMMAND`
//! runs one command there instead.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::builddir::FailedBuild;

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Element file or element name
    #[arg(required_unless_present = "failed", conflicts_with = "failed")]
    pub target: Option<PathBuf>,
    /// Reopen the build directory of the last failed build, as it was left
    #[arg(long)]
    pub failed: bool,
    /// Run this command (with `sh -c`, words joined by spaces) instead of
    /// an interactive shell; its exit code is cas's: `cas shell X -- make check`
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub(crate) fn run(global: &Session, _name: &str, args: Args) -> CmdResult {
    let store = global.store()?;
    let (target, reopen) = if args.failed {
        let failed = FailedBuild::load(store.root()).ok_or_else(|| {
            Failure::failed(miette::miette!(
                "no failed build is recorded in {}",
                store.root().display()
            ))
        })?;
        if !failed.dir.exists() {
            return Err(Failure::failed(miette::miette!(
                "the build directory of {} is gone: {}",
                failed.element,
                failed.dir.display()
            )));
        }
        eprintln!(
            "reopening the failed build of {} in {}",
            failed.element,
            failed.dir.display()
        );
        (failed.element_file, Some(failed.dir))
    } else {
        (args.target.expect("clap requires a target"), None)
    };
    let loaded = load_or_report(global, std::slice::from_ref(&target))?;
    cas_builder::sandbox::check_available().map_err(Failure::error)?;
    // Ctrl-C belongs to the shell inside.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let outcome = cas_builder::shell(
        &store,
        &loaded,
        loaded.targets[0],
        reopen.as_deref(),
        &global.mirrors(&loaded.project)?,
        &args.command,
    )
    .map_err(Failure::error)?;
    Ok(match outcome.status {
        cas_builder::sandbox::Exit::Code(c) => ExitCode::from(c.clamp(0, 255) as u8),
        cas_builder::sandbox::Exit::Signal(_) => ExitCode::from(1),
    })
}

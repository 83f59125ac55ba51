//! `cas check`: rebuild an element's last step from scratch and compare
//! outputs (a thin layer over `cas-audit`).

use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::{BuildOptions, Console};

use crate::commands::build::STOP;
use crate::commands::session::Session;
use crate::commands::show::load_fetching;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// Rebuild every step of the closure, not only the element's own
    #[arg(long)]
    pub deep: bool,
    /// Never use the network: a missing source is an error
    #[arg(long)]
    pub offline: bool,
}

pub(crate) fn err(e: impl std::fmt::Display) -> Failure {
    Failure::failed(miette::miette!("{e}"))
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string(v).map_err(err)?);
    Ok(())
}

fn build_options(
    global: &Session,
    project: &cas_format::Project,
    offline: bool,
) -> Result<BuildOptions, Failure> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Ok(BuildOptions {
        jobs: global.jobs(),
        max_jobs: cores,
        keep_going: false,
        offline,
        mirrors: global.mirrors(project)?,
        rebuild: Default::default(),
        remotes: None,
    })
}

pub(crate) fn run_check(global: &Session, args: CheckArgs) -> CmdResult {
    let loaded = load_fetching(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    cas_sandbox::check_available().map_err(err)?;
    let opts = build_options(global, &loaded.project, args.offline)?;
    crate::commands::fetch::prepare_build(
        &store,
        &loaded,
        &opts.mirrors,
        global.jobs(),
        args.offline,
    )?;
    let target = loaded.targets[0];
    let console = Console::new(loaded.closure(&loaded.targets).len());
    let report =
        cas_audit::check::check(&store, &loaded, target, args.deep, &opts, &console, &STOP);
    console.finish();
    let report = report.map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::check::render(&report));
    }
    Ok(if report.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

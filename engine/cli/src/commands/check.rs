//! `cas check`: rebuild an element's last step from scratch and compare
//! outputs (a thin layer over `cas-audit`).

use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::{BuildOptions, Console};

use crate::commands::build::STOP;
use crate::commands::load::load_fetching;
use crate::commands::session::Session;
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
    /// Write the target's rebuilt output into DIR (new or empty), to look at
    /// or to `cas diff` with the cached one (its tree digest works too)
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

pub(crate) fn err(e: impl std::fmt::Display) -> Failure {
    Failure::failed(miette::miette!("{e}"))
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    crate::json::print(v)
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
        push_workspaces: false,
        remote_exec: None,
    })
}

pub(crate) fn run_check(global: &Session, args: CheckArgs) -> CmdResult {
    let loaded = load_fetching(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    cas_builder::sandbox::check_available().map_err(err)?;
    let opts = build_options(global, &loaded.project, args.offline)?;
    crate::commands::fetch::prepare_build(&store, &loaded, &opts.mirrors, args.offline)?;
    let target = loaded.targets[0];
    let console = Console::new(loaded.closure(&loaded.targets).len());
    let report =
        cas_audit::check::check(&store, &loaded, target, args.deep, &opts, &console, &STOP);
    console.finish();
    let report = report.map_err(err)?;
    if let Some(dir) = &args.keep {
        keep(&store, &report, dir)?;
    }
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

/// `--keep DIR`: the target's rebuilt output as plain files (copies), and
/// where it is in the store.
fn keep(
    store: &cas_store::Store,
    report: &cas_audit::check::CheckReport,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    let Some(step) = report.steps.iter().find(|s| s.name == report.target) else {
        return Err(err(format!(
            "{} was not rebuilt: nothing to keep",
            report.target
        )));
    };
    let tree = cas_store::TreeDigest::from_hex(&step.rebuilt_output).map_err(err)?;
    store
        .materialize(&tree, dir, cas_store::Method::ReflinkOrCopy)
        .map_err(err)?;
    eprintln!(
        "kept the rebuilt output of {} ({}) in {}; compare: cas diff {} {}",
        report.target,
        &step.rebuilt_output[..12],
        dir.display(),
        step.output,
        step.rebuilt_output
    );
    Ok(())
}

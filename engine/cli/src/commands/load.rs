//! Loading the targets of a command: the loader given the user's options,
//! the registry of behaviours and the junctions' sources; every diagnostic
//! printed, exit code 2 (every command loads through here).

use std::path::PathBuf;

use cas_format::Loaded;

use crate::commands::session::Session;
use crate::exit::Failure;

/// Load the targets, or print every diagnostic and fail with exit code 2.
/// Junctions whose sources are not fetched are named with the command that
/// fetches them.
pub(crate) fn load_or_report(global: &Session, targets: &[PathBuf]) -> Result<Loaded, Failure> {
    load_targets(global, targets, false, false)
}

/// [`load_or_report`] with every element's own sources, open workspaces or not.
pub(crate) fn load_ignoring_workspaces(
    global: &Session,
    targets: &[PathBuf],
) -> Result<Loaded, Failure> {
    load_targets_with(global, targets, false, false, true)
}

/// [`load_or_report`] for commands that fetch (build, fetch, check): the
/// sources of junctions are fetched as the load needs them.
pub(crate) fn load_fetching(global: &Session, targets: &[PathBuf]) -> Result<Loaded, Failure> {
    load_targets(global, targets, true, false)
}

pub(crate) fn report(errors: &[cas_format::Error]) {
    for e in errors {
        eprintln!("{:?}", miette::Report::new(e.clone()));
    }
    if errors.len() > 1 {
        eprintln!("error: {} problems found", errors.len());
    }
}

/// Load the targets; with `partial` (`cas show`), the part of the graph
/// that loads comes back with the problems in `Loaded::problems`.
pub(crate) fn load_targets(
    global: &Session,
    targets: &[PathBuf],
    may_fetch: bool,
    partial: bool,
) -> Result<Loaded, Failure> {
    load_targets_with(global, targets, may_fetch, partial, false)
}

pub(crate) fn load_targets_with(
    global: &Session,
    targets: &[PathBuf],
    may_fetch: bool,
    partial: bool,
    ignore_workspaces: bool,
) -> Result<Loaded, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::failed(miette::miette!("cannot read the working directory: {e}")))?;
    let targets: Vec<String> = targets
        .iter()
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    let mut hint = String::from("cas");
    for (k, v) in global.options() {
        hint.push_str(&format!(" -o {k} {v}"));
    }
    hint.push_str(" fetch");
    for t in &targets {
        hint.push(' ');
        hint.push_str(t);
    }
    let junctions = cas_builder::junctions::StoreJunctions {
        store_root: global.store_dir(),
        mirrors: global.user_mirrors()?,
        may_fetch,
        fetch_hint: hint,
    };
    let opts = cas_format::LoadOptions {
        options: global.options(),
        project_options: global.config()?.project_options.clone(),
        junctions: Some(std::sync::Arc::new(junctions)),
        partial,
        ignore_workspaces,
        target_arch: global.target_arch()?,
        behaviours: Some(std::sync::Arc::new(cas_builder::kinds::Behaviours)),
    };
    cas_format::load_with(&targets, &cwd, &opts).map_err(|diags| {
        report(&diags.errors);
        Failure::Silent(2)
    })
}

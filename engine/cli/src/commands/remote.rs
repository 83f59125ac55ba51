//! Placeholder: being written (see the issue that owns it).
use crate::cli::Global;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Arguments
    pub args: Vec<String>,
}

pub fn run(_global: &Global, _name: &str, _args: Args) -> CmdResult {
    Err(Failure::failed(miette::miette!("not implemented yet")))
}

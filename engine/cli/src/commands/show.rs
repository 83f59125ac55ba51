//! `cas show` and `cas graph` (owned by the format work).
use std::path::PathBuf;

use crate::cli::Global;
use crate::exit::CmdResult;

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Element files or element names
    #[arg(required = true)]
    pub targets: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Element file or element name
    pub target: PathBuf,
}

pub fn run_show(_global: &Global, _args: ShowArgs) -> CmdResult {
    Err(crate::exit::Failure::failed(miette::miette!("not implemented yet")))
}

pub fn run_graph(_global: &Global, _args: GraphArgs) -> CmdResult {
    Err(crate::exit::Failure::failed(miette::miette!("not implemented yet")))
}

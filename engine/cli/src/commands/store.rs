//! `cas store ...` (owned by the store work).
use crate::cli::Global;
use crate::exit::CmdResult;

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Print store statistics
    Stats,
}

pub fn run(_global: &Global, _cmd: StoreCommand) -> CmdResult {
    Err(crate::exit::Failure::failed(miette::miette!("not implemented yet")))
}

//! One file per subcommand.

pub mod build;
pub mod show;
pub mod store;

use crate::cli::{Cli, Command};
use crate::exit::CmdResult;

pub fn run(cli: Cli) -> CmdResult {
    let global = cli.global;
    match cli.command {
        Command::Store(cmd) => store::run(&global, cmd),
        Command::Show(args) => show::run_show(&global, args),
        Command::Graph(args) => show::run_graph(&global, args),
        Command::Build(args) => build::run_build(&global, args),
        Command::Checkout(args) => build::run_checkout(&global, args),
        Command::Log(args) => build::run_log(&global, args),
    }
}

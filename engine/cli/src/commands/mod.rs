//! One file per subcommand.

pub(crate) mod attest;
pub(crate) mod build;
pub(crate) mod challenge;
pub(crate) mod check;
pub(crate) mod checkout;
pub(crate) mod deb;
pub(crate) mod diff;
pub(crate) mod events;
pub(crate) mod explain;
pub(crate) mod fetch;
pub(crate) mod graph;
pub(crate) mod help;
pub(crate) mod keygen;
pub(crate) mod legal_info;
pub(crate) mod load;
pub(crate) mod log;
pub(crate) mod owns;
pub(crate) mod package;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod remotes;
pub(crate) mod sbom;
pub(crate) mod session;
pub(crate) mod setup;
pub(crate) mod shell;
pub(crate) mod show;
pub(crate) mod show_format;
pub(crate) mod source;
pub(crate) mod store;
pub(crate) mod why;
pub(crate) mod worker;
pub(crate) mod workspace;

use crate::cli::{Cli, Command};
use crate::exit::CmdResult;

pub(crate) fn run(cli: Cli) -> CmdResult {
    let global = session::Session::new(cli.global);
    // --json where a command has no document is refused, never ignored
    let no_document = match &cli.command {
        Command::Graph(_) => Some("graph (it prints Graphviz DOT)"),
        Command::Log(_) => Some("log (it prints the log itself)"),
        Command::Shell(_) => Some("shell (it runs a shell)"),
        Command::Worker(_) => Some("worker (it serves until stopped)"),
        Command::Completions(_) => Some("completions (it prints a script)"),
        Command::Man => Some("man (it prints a manual page)"),
        _ => None,
    };
    if let (true, Some(what)) = (global.json, no_document) {
        return Err(crate::exit::Failure::invalid(miette::miette!(
            "--json: cas {what} has no JSON document"
        )));
    }
    match cli.command {
        Command::Store(cmd) => store::run(&global, cmd),
        Command::Show(args) => show::run_show(&global, args),
        Command::Graph(args) => graph::run_graph(&global, args),
        Command::Build(args) => build::run_build(&global, args),
        Command::Checkout(args) => checkout::run_checkout(&global, args),
        Command::Log(args) => log::run_log(&global, args),
        Command::Shell(args) => shell::run(&global, "shell", args),
        Command::Fetch(args) => fetch::run_fetch(&global, args),
        Command::Source(cmd) => source::run_source(&global, cmd),
        Command::Deb(cmd) => deb::run(&global, cmd),
        Command::Push(args) => push::run(&global, args),
        Command::Pull(args) => pull::run(&global, args),
        Command::Keygen(args) => keygen::run(&global, args),
        Command::Check(args) => check::run_check(&global, args),
        Command::Diff(args) => diff::run_diff(&global, args),
        Command::Owns(args) => owns::run_owns(&global, args),
        Command::Explain(args) => explain::run_explain(&global, args),
        Command::Challenge(args) => challenge::run_challenge(&global, args),
        Command::Workspace(cmd) => workspace::run(&global, cmd),
        Command::Worker(args) => worker::run(&global, args),
        Command::Completions(args) => Ok(help::completions(&args)),
        Command::Man => help::man(),
        Command::WhyDepends(args) => why::run(&global, args),
        Command::Config => setup::config(&global),
        Command::Init(args) => setup::init(&global, &args),
        Command::Sbom(args) => sbom::run(&global, args),
        Command::LegalInfo(args) => legal_info::run(&global, args),
        Command::Attest(args) => attest::run_attest(&global, args),
        Command::VerifyAttestation(args) => attest::run_verify(&global, args),
    }
}

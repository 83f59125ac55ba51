//! `cas completions SHELL` and `cas man`: generated from the command line's
//! own definition (clap_complete, clap_mangen), so they never go stale.

use std::process::ExitCode;

use crate::cli::Cli;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub(crate) fn completions(args: &CompletionsArgs) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "cas", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub(crate) fn man() -> CmdResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Failure::failed(miette::miette!("cannot render the manual page: {e}")))?;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&out);
    Ok(ExitCode::SUCCESS)
}

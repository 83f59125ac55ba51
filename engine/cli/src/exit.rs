//! Exit codes (spec/cli.md): 0 success, 1 a build or check failed (or an
//! operational error), 2 invalid input (bad YAML, unknown element, cycle,
//! missing file, bad flag).

use std::process::ExitCode;

/// What a command returns when it could not do its job.
pub(crate) enum Failure {
    /// The user's input is wrong: exit 2.
    Invalid(miette::Report),
    /// Something failed while doing the work: exit 1.
    Failed(miette::Report),
    /// The command already printed what went wrong; exit with this code.
    Silent(u8),
}

impl Failure {
    pub(crate) fn invalid(e: impl Into<miette::Report>) -> Self {
        Failure::Invalid(e.into())
    }
    pub(crate) fn failed(e: impl Into<miette::Report>) -> Self {
        Failure::Failed(e.into())
    }
}

pub(crate) type CmdResult = Result<ExitCode, Failure>;

pub(crate) fn finish(result: CmdResult) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(Failure::Invalid(report)) => {
            eprintln!("{report:?}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(report)) => {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }
        Err(Failure::Silent(code)) => ExitCode::from(code),
    }
}

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
    /// An error of a crate below, with its chain of causes (exit 1).
    pub(crate) fn error<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Failure::Failed(chained(e))
    }
    /// The same, for input found wrong below (exit 2).
    pub(crate) fn invalid_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Failure::Invalid(chained(e))
    }
}

/// A report of `e` that keeps its causes (`source()`): those its message
/// does not already say are printed under it, as miette prints causes.
pub(crate) fn chained<E: std::error::Error + Send + Sync + 'static>(e: E) -> miette::Report {
    miette::Report::new(Chained(Box::new(e)))
}

/// An error as a diagnostic, its causes kept.
struct Chained(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Debug for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Chained {
    /// The first cause whose message the error's own does not contain
    /// (most of cas's errors say their cause in their message already).
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let said = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(c) = cause {
            if !said.contains(&c.to_string()) {
                return Some(c);
            }
            cause = c.source();
        }
        None
    }
}

impl miette::Diagnostic for Chained {}

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

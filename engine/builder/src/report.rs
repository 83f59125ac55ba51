//! What a build reports: each element of the closure with how it ended
//! (built, cached, pulled, failed with which command, skipped), its key,
//! output, timings and log; the counts; the remote transfers.

use std::collections::HashMap;

use cas_format::ElementId;
use cas_store::ActionKey;

use crate::error::BuildError;
use crate::scheduler::NodeEnd;
use crate::step::{ElementStatus, Engine, Status};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ElementReport {
    pub name: String,
    pub key: Option<String>,
    pub status: crate::step::ElementStatus,
    pub output: Option<String>,
    /// Unix milliseconds when the step's work started and ended (built steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// The whole step (built steps): `ended_ms - started_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Where that time went (built steps): lookup, fetch, run, record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<crate::step::Phases>,
    /// A failed step's log, kept with its build directory (`cas log`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failed command: its phase, the command, and its exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<CommandFailure>,
    /// The libraries check's verdict, when it found problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libraries: Option<crate::checks::LibrariesReport>,
}

/// Which command of a failed step failed, and how.
impl ElementReport {
    /// A row with its name and status, and nothing else known yet.
    pub fn new(name: String, status: ElementStatus) -> ElementReport {
        ElementReport {
            name,
            key: None,
            status,
            output: None,
            started_ms: None,
            ended_ms: None,
            duration_ms: None,
            phases: None,
            log: None,
            error: None,
            failure: None,
            libraries: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandFailure {
    pub phase: String,
    pub command: String,
    /// `None` when it did not exit by itself (killed, timed out).
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    pub elements: Vec<ElementReport>,
    pub built: usize,
    pub cached: usize,
    pub pulled: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Transfers and push failures, when remotes were used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::remote::RemoteSummary>,
}

/// The report of a run: one row per element of the closure, in order, and
/// the counts. A dependency pulled and then built after all
/// ([`Engine::fallbacks`]) counts as built.
pub(crate) fn report_of(
    engine: &Engine<'_>,
    closure: &[ElementId],
    ends: Vec<NodeEnd<crate::step::Done>>,
    errors: &HashMap<ElementId, StepError>,
) -> BuildReport {
    let mut report = BuildReport {
        elements: Vec::new(),
        built: 0,
        cached: 0,
        pulled: 0,
        failed: 0,
        skipped: 0,
        remote: None,
    };
    let fallbacks: HashMap<ElementId, crate::step::Done> = std::mem::take(
        &mut *engine
            .fallbacks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_iter()
    .filter_map(|(id, cell)| {
        let done = cell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        done.map(|d| (id, d))
    })
    .collect();
    for (i, end) in ends.into_iter().enumerate() {
        let id = closure[i];
        // Pulled, then built here after all: what was built is what counts.
        let end = match (end, fallbacks.get(&id)) {
            (NodeEnd::Ok(_), Some(done)) => NodeEnd::Ok(done.clone()),
            (end, _) => end,
        };
        let mut row = ElementReport::new(engine.element(id).name.clone(), ElementStatus::Skipped);
        match end {
            NodeEnd::Ok(done) => {
                row.key = Some(done.key.to_hex());
                row.output = Some(done.output.to_hex());
                row.started_ms = done.span.map(|s| s.0);
                row.ended_ms = done.span.map(|s| s.1);
                row.duration_ms = done.span.map(|s| s.1.saturating_sub(s.0));
                row.phases = done.phases;
                *match done.status {
                    Status::Built => &mut report.built,
                    Status::Cached => &mut report.cached,
                    Status::Pulled => &mut report.pulled,
                } += 1;
                row.status = done.status.into();
            }
            NodeEnd::Failed => {
                report.failed += 1;
                row.status = ElementStatus::Failed;
                if let Some(e) = errors.get(&id) {
                    row.key = e.key.as_ref().map(cas_store::ActionKey::to_hex);
                    row.error = Some(e.message.clone());
                    row.failure.clone_from(&e.failure);
                }
                if let Some(f) = engine
                    .failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&id)
                {
                    row.key = Some(f.key.clone());
                    row.log = Some(f.log.display().to_string());
                }
            }
            NodeEnd::Skipped => report.skipped += 1,
        }
        report.elements.push(row);
    }
    report
}

/// How a step failed, kept for its row of the report.
#[derive(Debug, Clone)]
pub(crate) struct StepError {
    pub key: Option<ActionKey>,
    pub message: String,
    pub failure: Option<CommandFailure>,
}

impl StepError {
    pub(crate) fn of(e: &BuildError) -> StepError {
        StepError {
            key: None,
            message: e.to_string(),
            failure: match e {
                BuildError::CommandFailed {
                    phase,
                    command,
                    exit_code,
                    ..
                } => Some(CommandFailure {
                    phase: phase.clone(),
                    command: command.clone(),
                    exit_code: *exit_code,
                }),
                _ => None,
            },
        }
    }
}

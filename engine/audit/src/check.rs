//! `cas check`: rebuild a step (with `deep`, every step of its closure) from
//! scratch in a fresh sandbox, ignoring and never recording the rebuilt
//! results, and compare the outputs with the cached ones.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use cas_builder::{BuildOptions, Reporter};
use cas_format::{ElementId, Loaded};
use cas_store::{Store, TreeDigest};

use crate::diff::{diff_trees, DiffOptions, TreeDiff};
use crate::error::{AuditError, Result};

/// One rebuilt step.
#[derive(Debug, Clone, Serialize)]
pub struct StepCheck {
    pub name: String,
    /// The key of the cached result.
    pub key: String,
    /// The key of the rebuild: differs from `key` only when a dependency
    /// rebuilt (`deep`) to a different output.
    pub rebuilt_key: String,
    pub output: String,
    pub rebuilt_output: String,
    pub identical: bool,
    /// What differs, when the outputs differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<TreeDiff>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub target: String,
    pub identical: bool,
    /// Steps whose outputs were built by the first, normal build of this
    /// check (they were not cached yet).
    pub built_first: Vec<String>,
    /// Every rebuilt step, dependencies first.
    pub steps: Vec<StepCheck>,
}

fn failed(report: &cas_builder::BuildReport) -> Option<AuditError> {
    report
        .elements
        .iter()
        .find(|e| {
            matches!(
                e.status,
                cas_builder::ElementStatus::Failed | cas_builder::ElementStatus::Skipped
            )
        })
        .map(|e| AuditError::BuildFailed {
            element: e.name.clone(),
            reason: e.error.clone().unwrap_or_else(|| e.status.to_string()),
        })
}

fn tree(hex: Option<&String>) -> Option<TreeDigest> {
    hex.map(String::as_str)
        .and_then(|h| TreeDigest::from_hex(h).ok())
}

/// Checks `target`. `opts` are the options of a normal build (jobs, mirrors,
/// offline...); `rebuild` is set here.
pub fn check(
    store: &Store,
    loaded: &Loaded,
    target: ElementId,
    deep: bool,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
    stop: &AtomicBool,
) -> Result<CheckReport> {
    let name = loaded.element(target).name.clone();
    // 1. The cached results (built now, normally and recorded, if missing).
    let mut normal = opts.clone();
    normal.rebuild = HashSet::new();
    let first = cas_builder::build(store, loaded, &[target], &normal, reporter, stop)?;
    if let Some(e) = failed(&first) {
        return Err(e);
    }
    let built_first: Vec<String> = first
        .elements
        .iter()
        .filter(|e| e.status == cas_builder::ElementStatus::Built)
        .map(|e| e.name.clone())
        .collect();
    // 2. The rebuild, never recorded.
    let closure: Vec<ElementId> = loaded.closure(&[target]);
    let rebuild: HashSet<ElementId> = if deep {
        closure.iter().copied().collect()
    } else {
        [target].into()
    };
    let mut again = opts.clone();
    again.rebuild = rebuild.clone();
    let second = cas_builder::build(store, loaded, &[target], &again, reporter, stop)?;
    if let Some(e) = failed(&second) {
        return Err(e);
    }
    // 3. Compare, dependencies first.
    let mut steps = Vec::new();
    for id in closure.iter().filter(|id| rebuild.contains(id)) {
        let n = &loaded.element(*id).name;
        let (Some(a), Some(b)) = (
            first.elements.iter().find(|e| &e.name == n),
            second.elements.iter().find(|e| &e.name == n),
        ) else {
            continue;
        };
        let (Some(oa), Some(ob)) = (tree(a.output.as_ref()), tree(b.output.as_ref())) else {
            return Err(AuditError::NotBuilt {
                element: n.clone(),
                reason: "no output in the build report".into(),
            });
        };
        let identical = oa == ob;
        let diff = if identical {
            None
        } else {
            Some(diff_trees(store, &oa, &ob, DiffOptions::default())?)
        };
        steps.push(StepCheck {
            name: n.clone(),
            key: a.key.clone().unwrap_or_default(),
            rebuilt_key: b.key.clone().unwrap_or_default(),
            output: oa.to_hex(),
            rebuilt_output: ob.to_hex(),
            identical,
            diff,
        });
    }
    let identical = steps.iter().all(|s| s.identical);
    Ok(CheckReport {
        target: name,
        identical,
        built_first,
        steps,
    })
}

/// Human-readable summary of a check (what `cas check` prints).
pub fn render(r: &CheckReport) -> String {
    let mut s = String::new();
    for step in &r.steps {
        if step.identical {
            s.push_str(&format!(
                "{}: reproducible (output {})\n",
                step.name,
                &step.output[..12.min(step.output.len())]
            ));
            continue;
        }
        let inherited = step.key != step.rebuilt_key;
        s.push_str(&format!(
            "{}: NOT reproducible: output {} then {}{}\n",
            step.name,
            &step.output[..12.min(step.output.len())],
            &step.rebuilt_output[..12.min(step.rebuilt_output.len())],
            if inherited {
                " (its inputs differed too: a dependency's rebuild differed)"
            } else {
                ""
            }
        ));
        if let Some(d) = &step.diff {
            for line in crate::diff::render(d).lines() {
                s.push_str("  ");
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    s
}

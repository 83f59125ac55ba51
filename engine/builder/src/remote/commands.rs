//! `cas pull` and `cas push`: the remotes asked for a whole closure.

use std::collections::HashMap;

use cas_format::ElementId;
use cas_store::{ActionKey, ActionResult, Store, TreeDigest};

use crate::error::Result;

use super::{RemoteRun, Remotes};

/// One element of `cas pull`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullRow {
    pub name: String,
    pub key: Option<String>,
    pub status: PullStatus,
    pub output: Option<String>,
}

/// What `cas pull` found for an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullStatus {
    /// Already local.
    Cached,
    /// Downloaded and recorded here (a target).
    Pulled,
    /// Known from a remote, its output not downloaded (a dependency):
    /// `cas show` says `pullable`.
    Known,
    /// In no remote, or its key depends on something missing.
    Missing,
}

impl std::fmt::Display for PullStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullStatus::Cached => "cached",
            PullStatus::Pulled => "pulled",
            PullStatus::Known => "known",
            PullStatus::Missing => "missing",
        })
    }
}

/// `cas pull`: the keys of the closure of `targets`, from local results and
/// remote ones; the targets' outputs are downloaded and recorded locally,
/// nothing else is. Nothing is built.
pub fn pull(
    store: &Store,
    loaded: &cas_format::Loaded,
    targets: &[ElementId],
    remotes: &Remotes,
    reporter: &dyn crate::progress::Reporter,
) -> Result<Vec<PullRow>> {
    let _lock = store.lock_shared()?;
    let rr = RemoteRun {
        remotes,
        download: targets.iter().copied().collect(),
        missed: std::sync::Mutex::default(),
    };
    let planner = crate::plan::Planner::new(store, loaded);
    let say = |m: &str| reporter.message(m);
    let mut status: HashMap<ElementId, PullStatus> = HashMap::new();
    let mut each = |id: ElementId, k: &crate::plan::Keyed| -> Result<Option<TreeDigest>> {
        let name = &loaded.element(id).name;
        let local = crate::record::hit(store, &k.key, true)?;
        let (s, output) = if let Some(hit) = local {
            (PullStatus::Cached, Some(hit.output))
        } else if let Some(p) = rr.pull(store, id, name, &k.key, &say)? {
            // a dependency's result is known, its output downloaded only when
            // something here stages it: `cas show` says `pullable`, and so
            // does this report
            let s = if rr.download.contains(&id) {
                PullStatus::Pulled
            } else {
                PullStatus::Known
            };
            (s, Some(p.result.output))
        } else {
            (PullStatus::Missing, None)
        };
        reporter.message(&format!("{name}: {s}"));
        status.insert(id, s);
        Ok(output)
    };
    // in closure order: each element's lines as it is pulled
    let in_order = crate::plan::Walk {
        in_order: true,
        ..Default::default()
    };
    let steps = planner.walk(targets, in_order, &mut |asked| {
        asked.iter().map(|(id, k)| each(*id, k)).collect()
    })?;
    let rows = steps
        .into_iter()
        .map(|step| PullRow {
            name: loaded.element(step.id).name.clone(),
            key: step.keyed.map(|k| k.key.to_hex()),
            status: status.get(&step.id).copied().unwrap_or(PullStatus::Missing),
            output: step.output.map(|o| o.to_hex()),
        })
        .collect();
    Ok(rows)
}

/// What `cas push` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushReport {
    /// Results uploaded to every push remote without a failure.
    pub pushed: usize,
    /// Results every push remote already had.
    pub already_there: usize,
    /// Elements of the closure with no local result (not built, or their key
    /// depends on something not built).
    pub not_built: Vec<String>,
}

/// `cas push`: every locally cached element of the closure of `targets` is
/// pushed to the remotes marked for push (spec/remote.md "Push"); keys come
/// from the plan (crate::plan), as for `pull`. Failures are in
/// `remotes.summary()`, never returned.
pub fn push(
    store: &Store,
    loaded: &cas_format::Loaded,
    targets: &[ElementId],
    remotes: &Remotes,
    reporter: &dyn crate::progress::Reporter,
) -> Result<PushReport> {
    let _lock = store.lock_shared()?;
    let planner = crate::plan::Planner::new(store, loaded);
    let mut results: HashMap<ElementId, (ActionKey, ActionResult)> = HashMap::new();
    let steps = planner.walk(targets, crate::plan::Walk::default(), &mut |asked| {
        let keys: Vec<ActionKey> = asked.iter().map(|(_, k)| k.key).collect();
        let hits = crate::record::hits(store, &keys)?;
        Ok(asked
            .iter()
            .zip(hits)
            .map(|((id, k), hit)| {
                hit.map(|r| {
                    let output = r.output;
                    results.insert(*id, (k.key, r));
                    output
                })
            })
            .collect())
    })?;
    let say = |m: &str| reporter.message(m);
    let mut report = PushReport::default();
    for step in steps {
        let name = &loaded.element(step.id).name;
        let Some((key, result)) = results.get(&step.id) else {
            report.not_built.push(name.clone());
            continue;
        };
        let count = remotes.push(store, key, result, name, &say);
        if count.failed == 0 {
            if count.uploaded > 0 {
                report.pushed += 1;
            } else {
                report.already_there += 1;
            }
        }
    }
    Ok(report)
}

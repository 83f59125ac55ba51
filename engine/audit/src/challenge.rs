//! `cas challenge`: for each step of a closure that both the local store and
//! a remote cache have a result for (same action key), compare the output
//! digests and report the steps whose outputs disagree (like `guix
//! challenge`). Results are decoded without trusting their signatures: a
//! challenge compares claims, it never imports them.

use serde::Serialize;

use cas_format::{ElementId, Loaded};
use cas_sources::Mirrors;
use cas_store::remote::{decode_result, Remote};
use cas_store::Store;

use crate::error::{AuditError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepChallenge {
    pub name: String,
    /// The step's key (`null` when a dependency is not built locally).
    pub key: Option<String>,
    pub local: Option<String>,
    pub remote: Option<String>,
    /// `agree`, `disagree`, `local-only`, `remote-only`, `neither`,
    /// `unknown-key`, `unreadable` (the remote's result does not decode).
    pub status: &'static str,
    /// How many signatures the remote's result carries (not verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChallengeReport {
    pub remote: String,
    /// Steps both sides have.
    pub compared: usize,
    pub agree: usize,
    pub disagree: usize,
    pub steps: Vec<StepChallenge>,
}

/// Challenges the closure of `target` against the remote at `url`.
pub fn challenge(
    store: &Store,
    loaded: &Loaded,
    target: ElementId,
    url: &str,
) -> Result<ChallengeReport> {
    let remote: Box<dyn Remote> =
        cas_store::remote::open(url).map_err(|e| AuditError::Other(e.to_string()))?;
    let plan = cas_builder::states(store, loaded, &[target], &Mirrors::new())?;
    let mut steps = Vec::new();
    for p in plan {
        let name = loaded.element(p.id).name.clone();
        let local = p.output.map(|t| t.to_hex());
        let Some(key) = p.key else {
            steps.push(StepChallenge {
                name,
                key: None,
                local,
                remote: None,
                status: "unknown-key",
                signatures: None,
                error: None,
            });
            continue;
        };
        let mut row = StepChallenge {
            name,
            key: Some(key.to_hex()),
            local,
            remote: None,
            status: "neither",
            signatures: None,
            error: None,
        };
        match remote.get_action(&key) {
            Ok(Some(bytes)) => match decode_result(&bytes) {
                Ok(d) if d.key == key => {
                    row.remote = Some(d.result.output.to_hex());
                    row.signatures = Some(d.signatures.len());
                }
                Ok(d) => {
                    row.status = "unreadable";
                    row.error = Some(format!(
                        "the result is stored under another key ({})",
                        d.key
                    ));
                }
                Err(e) => {
                    row.status = "unreadable";
                    row.error = Some(e.to_string());
                }
            },
            Ok(None) => {}
            Err(e) => {
                return Err(AuditError::Other(format!(
                    "cannot ask {url} for {}: {e}",
                    key.to_hex()
                )))
            }
        }
        if row.status != "unreadable" {
            row.status = match (&row.local, &row.remote) {
                (Some(a), Some(b)) if a == b => "agree",
                (Some(_), Some(_)) => "disagree",
                (Some(_), None) => "local-only",
                (None, Some(_)) => "remote-only",
                (None, None) => "neither",
            };
        }
        steps.push(row);
    }
    let agree = steps.iter().filter(|s| s.status == "agree").count();
    let disagree = steps.iter().filter(|s| s.status == "disagree").count();
    Ok(ChallengeReport {
        remote: url.to_string(),
        compared: agree + disagree,
        agree,
        disagree,
        steps,
    })
}

/// Human-readable report (what `cas challenge` prints).
pub fn render(r: &ChallengeReport) -> String {
    let mut s = String::new();
    let short = |v: &Option<String>| {
        v.as_deref()
            .map_or_else(|| "-".into(), |h| h[..12.min(h.len())].to_string())
    };
    for step in &r.steps {
        match step.status {
            "disagree" => s.push_str(&format!(
                "{}: DIFFERS: local output {}, remote output {} (key {})\n",
                step.name,
                short(&step.local),
                short(&step.remote),
                short(&step.key)
            )),
            "agree" => s.push_str(&format!(
                "{}: same output {}\n",
                step.name,
                short(&step.local)
            )),
            "unreadable" => s.push_str(&format!(
                "{}: the remote's result is unreadable: {}\n",
                step.name,
                step.error.as_deref().unwrap_or("")
            )),
            other => s.push_str(&format!("{}: not compared ({other})\n", step.name)),
        }
    }
    s.push_str(&format!(
        "{} compared with {}: {} agree, {} differ\n",
        r.compared, r.remote, r.agree, r.disagree
    ));
    s
}

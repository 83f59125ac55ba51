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

/// What one remote says about one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteClaim {
    pub url: String,
    /// The output its result names (`null`: no result, or unreadable).
    pub output: Option<String>,
    /// `agree`, `disagree` (with the local output), `remote-only` (no local
    /// output to compare with), `missing` (no result), `unreadable`.
    pub status: &'static str,
    /// How many signatures the remote's result carries (not verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `--diff`, for a disagreeing output: `cas diff LOCAL REMOTE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<crate::diff::TreeDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepChallenge {
    pub name: String,
    /// The step's key (`null` when a dependency is not built locally).
    pub key: Option<String>,
    pub local: Option<String>,
    /// Over all remotes: `disagree` when one differs from the local output,
    /// else `agree` when one agrees, else `local-only`, `remote-only`,
    /// `neither`, `unknown-key`, `unreadable`.
    pub status: &'static str,
    pub remotes: Vec<RemoteClaim>,
}

/// How one remote compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteSummary {
    pub url: String,
    pub compared: usize,
    pub agree: usize,
    pub disagree: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChallengeReport {
    pub remotes: Vec<RemoteSummary>,
    /// Steps with a local output and at least one remote's.
    pub compared: usize,
    /// Steps every remote that has them agrees on.
    pub agree: usize,
    /// Steps some remote disagrees on.
    pub disagree: usize,
    pub steps: Vec<StepChallenge>,
}

/// Challenges the closure of `target` against the remotes at `urls`; with
/// `diff`, the disagreeing outputs are downloaded (every object verified
/// against its digest; nothing is recorded) and compared with the local ones.
pub fn challenge(
    store: &Store,
    loaded: &Loaded,
    target: ElementId,
    urls: &[String],
    diff: bool,
) -> Result<ChallengeReport> {
    let remotes: Vec<Box<dyn Remote>> = urls
        .iter()
        .map(|u| {
            cas_reapi::open(u, &store.root().join("reapi"))
                .map_err(|e| AuditError::Other(e.to_string()))
        })
        .collect::<Result<_>>()?;
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
                status: "unknown-key",
                remotes: Vec::new(),
            });
            continue;
        };
        let mut claims = Vec::new();
        for remote in &remotes {
            let url = remote.url().to_string();
            let mut c = RemoteClaim {
                url: url.clone(),
                output: None,
                status: "missing",
                signatures: None,
                error: None,
                diff: None,
            };
            match remote.get_action(&key) {
                Ok(Some(bytes)) => match decode_result(&bytes) {
                    Ok(d) if d.key == key => {
                        c.output = Some(d.result.output.to_hex());
                        c.signatures = Some(d.signatures.len());
                        c.status = match &local {
                            Some(l) if *l == d.result.output.to_hex() => "agree",
                            Some(_) => "disagree",
                            None => "remote-only",
                        };
                        if diff && c.status == "disagree" {
                            c.diff = Some(remote_diff(
                                store,
                                remote.as_ref(),
                                p.output,
                                d.result.output,
                            )?);
                        }
                    }
                    Ok(d) => {
                        c.status = "unreadable";
                        c.error = Some(format!(
                            "the result is stored under another key ({})",
                            d.key
                        ));
                    }
                    Err(e) => {
                        c.status = "unreadable";
                        c.error = Some(e.to_string());
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
            claims.push(c);
        }
        let any = |s: &str| claims.iter().any(|c| c.status == s);
        let status = if any("disagree") {
            "disagree"
        } else if any("agree") {
            "agree"
        } else if any("unreadable") {
            "unreadable"
        } else if any("remote-only") {
            "remote-only"
        } else if local.is_some() {
            "local-only"
        } else {
            "neither"
        };
        steps.push(StepChallenge {
            name,
            key: Some(key.to_hex()),
            local,
            status,
            remotes: claims,
        });
    }
    let summaries = urls
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let of = |s: &str| {
                steps
                    .iter()
                    .filter(|st| st.remotes.get(i).is_some_and(|c| c.status == s))
                    .count()
            };
            let (agree, disagree) = (of("agree"), of("disagree"));
            RemoteSummary {
                url: remotes[i].url().to_string(),
                compared: agree + disagree,
                agree,
                disagree,
            }
        })
        .collect();
    let agree = steps.iter().filter(|s| s.status == "agree").count();
    let disagree = steps.iter().filter(|s| s.status == "disagree").count();
    Ok(ChallengeReport {
        remotes: summaries,
        compared: agree + disagree,
        agree,
        disagree,
        steps,
    })
}

/// Download the remote's output (verified objects, nothing recorded) and
/// compare it with the local one.
fn remote_diff(
    store: &Store,
    remote: &dyn Remote,
    local: Option<cas_store::TreeDigest>,
    theirs: cas_store::TreeDigest,
) -> Result<crate::diff::TreeDiff> {
    let counters = cas_store::remote::transfer::Counters::default();
    cas_store::remote::transfer::fetch_tree(store, remote, &theirs, &counters).map_err(|e| {
        AuditError::Other(format!(
            "cannot download {} from {}: {e}",
            theirs.to_hex(),
            remote.url()
        ))
    })?;
    let local = local.ok_or_else(|| AuditError::Other("no local output".into()))?;
    crate::diff::diff_trees(
        store,
        &local,
        &theirs,
        crate::diff::DiffOptions { content: true },
    )
}

/// Human-readable report (what `cas challenge` prints): per step, the local
/// output and each remote's, who agrees with whom; then a line per remote.
pub fn render(r: &ChallengeReport) -> String {
    let mut s = String::new();
    let short = |v: &Option<String>| {
        v.as_deref()
            .map_or_else(|| "-".into(), |h| h[..12.min(h.len())].to_string())
    };
    let width = r
        .remotes
        .iter()
        .map(|x| x.url.len())
        .max()
        .unwrap_or(0)
        .max(5);
    for step in &r.steps {
        match step.status {
            "agree" | "disagree" | "unreadable" | "remote-only" => {
                let head = if step.status == "disagree" {
                    "DIFFERS"
                } else {
                    ""
                };
                s.push_str(
                    &format!("{} (key {}) {head}\n", step.name, short(&step.key))
                        .replace(" \n", "\n"),
                );
                s.push_str(&format!("  {:<width$}  {}\n", "local", short(&step.local)));
                for c in &step.remotes {
                    let what = match c.status {
                        "agree" => "agrees".to_string(),
                        "disagree" => "DIFFERS".to_string(),
                        "missing" => "no result".to_string(),
                        "unreadable" => format!("unreadable: {}", c.error.as_deref().unwrap_or("")),
                        other => other.to_string(),
                    };
                    s.push_str(&format!(
                        "  {:<width$}  {}  {what}\n",
                        c.url,
                        short(&c.output)
                    ));
                    if let Some(d) = &c.diff {
                        for line in crate::diff::render(d).lines() {
                            s.push_str(&format!("      {line}\n"));
                        }
                    }
                }
            }
            other => s.push_str(&format!("{}: not compared ({other})\n", step.name)),
        }
    }
    for x in &r.remotes {
        s.push_str(&format!(
            "{}: {} compared, {} agree, {} differ\n",
            x.url, x.compared, x.agree, x.disagree
        ));
    }
    s.push_str(&format!(
        "{} step(s) compared: {} agree, {} differ\n",
        r.compared, r.agree, r.disagree
    ));
    s
}

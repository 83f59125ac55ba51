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

/// What one remote's result says against the local output (`--json`:
/// kebab-case names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimStatus {
    /// Its output is the local one.
    Agree,
    /// Its output differs from the local one.
    Disagree,
    /// No local output to compare with.
    RemoteOnly,
    /// It has no result for the key.
    Missing,
    /// Its result could not be read.
    Unreadable,
}

/// A step over all remotes: `disagree` when one differs from the local
/// output, else `agree` when one agrees, else `unreadable`, `remote-only`,
/// `local-only`, `neither`; `unknown-key` when its key is not known here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Disagree,
    Agree,
    Unreadable,
    RemoteOnly,
    LocalOnly,
    Neither,
    UnknownKey,
}

/// What one remote says about one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteClaim {
    pub url: String,
    /// The output its result names (`null`: no result, or unreadable).
    pub output: Option<String>,
    pub status: ClaimStatus,
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
    pub status: StepStatus,
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
            cas_reapi::open(u, &store.layout().reapi())
                .map_err(|e| AuditError::Other(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let plan = cas_builder::states(
        store,
        loaded,
        &[target],
        &Mirrors::new(),
        cas_builder::record::Lookup::Look,
    )?;
    let mut steps = Vec::new();
    for p in plan {
        let name = loaded.element(p.id).name.clone();
        let local = p.output.map(|t| t.to_hex());
        let Some(key) = p.key else {
            steps.push(StepChallenge {
                name,
                key: None,
                local,
                status: StepStatus::UnknownKey,
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
                status: ClaimStatus::Missing,
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
                            Some(l) if *l == d.result.output.to_hex() => ClaimStatus::Agree,
                            Some(_) => ClaimStatus::Disagree,
                            None => ClaimStatus::RemoteOnly,
                        };
                        if diff && c.status == ClaimStatus::Disagree {
                            c.diff = Some(remote_diff(
                                store,
                                remote.as_ref(),
                                p.output,
                                d.result.output,
                            )?);
                        }
                    }
                    Ok(d) => {
                        c.status = ClaimStatus::Unreadable;
                        c.error = Some(format!(
                            "the result is stored under another key ({})",
                            d.key
                        ));
                    }
                    Err(e) => {
                        c.status = ClaimStatus::Unreadable;
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
        let any = |s: ClaimStatus| claims.iter().any(|c| c.status == s);
        let status = if any(ClaimStatus::Disagree) {
            StepStatus::Disagree
        } else if any(ClaimStatus::Agree) {
            StepStatus::Agree
        } else if any(ClaimStatus::Unreadable) {
            StepStatus::Unreadable
        } else if any(ClaimStatus::RemoteOnly) {
            StepStatus::RemoteOnly
        } else if local.is_some() {
            StepStatus::LocalOnly
        } else {
            StepStatus::Neither
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
            let of = |s: ClaimStatus| {
                steps
                    .iter()
                    .filter(|st| st.remotes.get(i).is_some_and(|c| c.status == s))
                    .count()
            };
            let (agree, disagree) = (of(ClaimStatus::Agree), of(ClaimStatus::Disagree));
            RemoteSummary {
                url: remotes[i].url().to_string(),
                compared: agree + disagree,
                agree,
                disagree,
            }
        })
        .collect();
    let agree = steps
        .iter()
        .filter(|s| s.status == StepStatus::Agree)
        .count();
    let disagree = steps
        .iter()
        .filter(|s| s.status == StepStatus::Disagree)
        .count();
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
            StepStatus::Agree
            | StepStatus::Disagree
            | StepStatus::Unreadable
            | StepStatus::RemoteOnly => {
                let head = if step.status == StepStatus::Disagree {
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
                        ClaimStatus::Agree => "agrees".to_string(),
                        ClaimStatus::Disagree => "DIFFERS".to_string(),
                        ClaimStatus::Missing => "no result".to_string(),
                        ClaimStatus::Unreadable => {
                            format!("unreadable: {}", c.error.as_deref().unwrap_or(""))
                        }
                        ClaimStatus::RemoteOnly => "remote-only".to_string(),
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
            other => s.push_str(&format!(
                "{}: not compared ({})\n",
                step.name,
                match other {
                    StepStatus::LocalOnly => "local-only",
                    StepStatus::Neither => "neither",
                    _ => "unknown-key",
                }
            )),
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

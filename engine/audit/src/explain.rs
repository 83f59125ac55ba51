//! `cas explain`: why an element's key differs from its last build (or from
//! a given key). The input manifests of both keys (spec/keys.md) are
//! compared field by field; for a dependency whose output changed, the same
//! explanation is given one level down, until the root causes.
//!
//! "Last build": the engine records each element's last key as the store ref
//! `last-key:<project root>:<element>` (with the value before it); when the
//! current key *is* the last one, the one before is used.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use cas_builder::keys::KeyInputs;
use cas_builder::run::last_key_ref;
use cas_format::{ElementId, Loaded};
use cas_store::{ActionKey, Digest, Store, TreeDigest};

use crate::diff::{diff_trees, DiffOptions};
use crate::error::{AuditError, Result};
use cas_builder::keys::decode::{decode, decode_source};

/// How deep dependency chains are followed.
pub const MAX_DEPTH: usize = 64;
/// Most changed paths named for a local source.
pub const MAX_PATHS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    /// e.g. `phases.build-commands[0]`, `environment.CFLAGS`, `sources[0].sha256`.
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepChange {
    /// Position in staging order.
    pub index: usize,
    /// The element staged at this position now.
    pub element: Option<String>,
    /// Its output in the old manifest and now (`null`: not built with its current key).
    pub old: Option<String>,
    pub new: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Box<Explanation>>,
}

/// How a key compares with the one it is compared with (`--json`:
/// `identical`, `changed`, `no-previous-build`, `previous-result-missing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStatus {
    Identical,
    Changed,
    /// No earlier build of the element to compare with.
    NoPreviousBuild,
    /// The result compared with (its manifest) is no longer in the store.
    PreviousResultMissing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub element: String,
    /// The current key (`null` when a staged dependency is not built, so its output is unknown).
    pub key: Option<String>,
    /// The key compared with.
    pub against: Option<String>,
    /// Where `against` comes from: `given`, `last-build`, `previous-build`.
    pub against_source: Option<&'static str>,
    /// How the key compares with the one it is compared with.
    pub status: KeyStatus,
    /// Differences in everything but the dependencies' outputs.
    pub differences: Vec<FieldDiff>,
    /// Dependencies whose output differs.
    pub dependencies: Vec<DepChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootCause {
    /// From the target down to the element at fault.
    pub chain: Vec<String>,
    pub status: KeyStatus,
    pub differences: Vec<FieldDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub explanation: Explanation,
    pub root_causes: Vec<RootCause>,
}

struct Current {
    inputs: KeyInputs,
    key: Option<ActionKey>,
    output: Option<TreeDigest>,
}

/// The current key inputs of every element of the closure; a staged
/// dependency whose output is unknown counts as the zero digest and leaves
/// the key unknown.
fn currents(
    store: &Store,
    loaded: &Loaded,
    target: ElementId,
) -> Result<HashMap<ElementId, Current>> {
    let planner = cas_builder::plan::Planner::new(store, loaded);
    let steps = planner.walk(
        &[target],
        cas_builder::plan::Walk {
            partial: true,
            ..Default::default()
        },
        &mut |asked| {
            cas_builder::record::outputs_of(store, asked, cas_builder::record::Lookup::Look)
        },
    )?;
    Ok(steps
        .into_iter()
        .filter_map(|step| {
            let (inputs, key) = match (step.keyed, step.partial) {
                (Some(k), _) => (std::sync::Arc::unwrap_or_clone(k.inputs), Some(k.key)),
                (None, Some(partial)) => (partial, None),
                (None, None) => return None,
            };
            Some((
                step.id,
                Current {
                    inputs,
                    key,
                    output: step.output,
                },
            ))
        })
        .collect())
}

fn hex32(d: &[u8; 32]) -> String {
    hex::encode(d)
}

fn diff_field(out: &mut Vec<FieldDiff>, field: String, old: Option<String>, new: Option<String>) {
    if old != new {
        out.push(FieldDiff {
            field,
            old,
            new,
            note: None,
        });
    }
}

fn compare_lists(out: &mut Vec<FieldDiff>, prefix: &str, old: &[String], new: &[String]) {
    for i in 0..old.len().max(new.len()) {
        diff_field(
            out,
            format!("{prefix}[{i}]"),
            old.get(i).cloned(),
            new.get(i).cloned(),
        );
    }
}

/// Every field but the dependencies.
fn compare_inputs(
    store: &Store,
    old: &KeyInputs,
    new: &KeyInputs,
    labels: &[String],
) -> Vec<FieldDiff> {
    let mut d = Vec::new();
    diff_field(
        &mut d,
        "kind".into(),
        Some(old.kind.clone()),
        Some(new.kind.clone()),
    );
    diff_field(
        &mut d,
        "behaviour".into(),
        Some(old.behaviour.clone()),
        Some(new.behaviour.clone()),
    );
    let mut phases: Vec<&str> = old.phases.iter().map(|(n, _)| n.as_str()).collect();
    for (n, _) in &new.phases {
        if !phases.contains(&n.as_str()) {
            phases.push(n);
        }
    }
    let empty = Vec::new();
    for p in phases {
        let o = old
            .phases
            .iter()
            .find(|(n, _)| n == p)
            .map_or(&empty, |(_, c)| c);
        let n = new
            .phases
            .iter()
            .find(|(n, _)| n == p)
            .map_or(&empty, |(_, c)| c);
        compare_lists(&mut d, &format!("phases.{p}"), o, n);
    }
    let old_phase_order: Vec<&String> = old.phases.iter().map(|(n, _)| n).collect();
    let new_phase_order: Vec<&String> = new.phases.iter().map(|(n, _)| n).collect();
    if old_phase_order != new_phase_order {
        let join = |v: Vec<&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        diff_field(
            &mut d,
            "phases".into(),
            Some(join(old_phase_order)),
            Some(join(new_phase_order)),
        );
    }
    let names: BTreeSet<&String> = old
        .environment
        .keys()
        .chain(new.environment.keys())
        .collect();
    for k in names {
        diff_field(
            &mut d,
            format!("environment.{k}"),
            old.environment.get(k).cloned(),
            new.environment.get(k).cloned(),
        );
    }
    let (so, sn) = (&old.sandbox, &new.sandbox);
    let s = |v: &dyn std::fmt::Display| Some(v.to_string());
    diff_field(&mut d, "sandbox.arch".into(), s(&so.arch), s(&sn.arch));
    diff_field(&mut d, "sandbox.uid".into(), s(&so.uid), s(&sn.uid));
    diff_field(&mut d, "sandbox.gid".into(), s(&so.gid), s(&sn.gid));
    diff_field(
        &mut d,
        "sandbox.network".into(),
        s(&so.network),
        s(&sn.network),
    );
    diff_field(
        &mut d,
        "sandbox.build-root".into(),
        s(&so.build_root),
        s(&sn.build_root),
    );
    diff_field(
        &mut d,
        "sandbox.install-root".into(),
        s(&so.install_root),
        s(&sn.install_root),
    );
    diff_field(
        &mut d,
        "sandbox.hostname".into(),
        s(&so.hostname),
        s(&sn.hostname),
    );
    diff_field(
        &mut d,
        "sandbox.umask".into(),
        Some(format!("{:04o}", so.umask)),
        Some(format!("{:04o}", sn.umask)),
    );
    let names: BTreeSet<&String> = old.config.keys().chain(new.config.keys()).collect();
    for k in names {
        compare_lists(
            &mut d,
            &format!("config.{k}"),
            old.config.get(k).unwrap_or(&empty),
            new.config.get(k).unwrap_or(&empty),
        );
    }
    for i in 0..old.sources.len().max(new.sources.len()) {
        compare_source(
            store,
            &mut d,
            i,
            old.sources.get(i),
            new.sources.get(i),
            labels.get(i).map(std::string::String::as_str),
        );
    }
    d
}

fn compare_source(
    store: &Store,
    out: &mut Vec<FieldDiff>,
    i: usize,
    old: Option<&Vec<u8>>,
    new: Option<&Vec<u8>>,
    label: Option<&str>,
) {
    if old == new {
        return;
    }
    let digest = |b: &Vec<u8>| Digest::of_bytes(b).to_hex();
    let (Some(o), Some(n)) = (old, new) else {
        out.push(FieldDiff {
            field: format!("sources[{i}]"),
            old: old.map(digest),
            new: new.map(digest),
            note: Some(if old.is_none() {
                "source added".into()
            } else {
                "source removed".into()
            }),
        });
        return;
    };
    match (decode_source(o), decode_source(n)) {
        (Some(a), Some(b)) if a.kind == b.kind => {
            for ((field, va), (_, vb)) in a.fields.iter().zip(&b.fields) {
                if va == vb {
                    continue;
                }
                let note = match (a.kind.as_str(), field.as_str()) {
                    ("git", "commit") => format!("{} source: commit changed", a.kind),
                    ("local", "tree") => local_note(store, va, vb, label.unwrap_or("")),
                    (_, "sha256" | "blake3") => format!(
                        "{} source {}: {field} changed",
                        a.kind,
                        a.get("url").unwrap_or("")
                    ),
                    _ => format!("{} source: {field} changed", a.kind),
                };
                out.push(FieldDiff {
                    field: format!("sources[{i}].{field}"),
                    old: Some(va.clone()),
                    new: Some(vb.clone()),
                    note: Some(note),
                });
            }
        }
        (Some(a), Some(b)) => out.push(FieldDiff {
            field: format!("sources[{i}].kind"),
            old: Some(a.kind),
            new: Some(b.kind),
            note: None,
        }),
        _ => out.push(FieldDiff {
            field: format!("sources[{i}]"),
            old: Some(digest(o)),
            new: Some(digest(n)),
            note: None,
        }),
    }
}

/// Which files of a local source changed (both trees are in the store when
/// both were computed here).
fn local_note(store: &Store, old: &str, new: &str, path: &str) -> String {
    let (Ok(a), Ok(b)) = (TreeDigest::from_hex(old), TreeDigest::from_hex(new)) else {
        return "local source: content changed".into();
    };
    if !store.has_tree(&a) || !store.has_tree(&b) {
        return "local source: content changed".into();
    }
    match diff_trees(store, &a, &b, DiffOptions { content: false }) {
        Ok(d) => {
            let mut paths: Vec<String> = d
                .changes
                .iter()
                .filter(|c| {
                    !matches!(c.a.as_ref().or(c.b.as_ref()), Some(e) if e.kind == "dir")
                        || c.change != "changed"
                })
                .map(|c| format!("{} {}", c.change, c.path))
                .collect();
            let more = paths.len().saturating_sub(MAX_PATHS);
            paths.truncate(MAX_PATHS);
            let mut s = format!("local source {path}: {}", paths.join(", "));
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s
        }
        Err(_) => "local source: content changed".into(),
    }
}

struct Ctx<'a> {
    store: &'a Store,
    loaded: &'a Loaded,
    currents: HashMap<ElementId, Current>,
}

impl Ctx<'_> {
    /// How a source is named in notes: a local path relative to the project.
    fn label(&self, s: &cas_sources::Source) -> String {
        match &s.kind {
            cas_sources::SourceKind::Local { path } => path
                .strip_prefix(&self.loaded.project.root)
                .unwrap_or(path)
                .display()
                .to_string(),
            k => k.name().to_string(),
        }
    }

    /// The key to compare `id` with: given, else its last key, else the one
    /// before (when the last is the current one). With `hint` (the output
    /// the parent's old manifest staged), the recorded key that produced it.
    fn previous(
        &self,
        id: ElementId,
        hint: Option<&str>,
    ) -> Result<Option<(String, &'static str)>> {
        let Some(r) = self.store.ref_get(&last_key_ref(self.loaded, id))? else {
            return Ok(None);
        };
        let current = self
            .currents
            .get(&id)
            .and_then(|c| c.key.map(|k| k.to_hex()));
        let mut candidates = vec![(r.value.clone(), "last-build")];
        if let Some(p) = r.previous {
            candidates.push((p, "previous-build"));
        }
        if let Some(h) = hint {
            for (k, src) in &candidates {
                let Ok(d) = Digest::from_hex(k) else { continue };
                if let Some(res) = self.store.action_peek(&ActionKey::from_digest(d))? {
                    if res.output.to_hex() == h {
                        return Ok(Some((k.clone(), src)));
                    }
                }
            }
        }
        if current.as_deref() == Some(r.value.as_str()) && candidates.len() > 1 {
            return Ok(Some(candidates.swap_remove(1)));
        }
        Ok(Some(candidates.swap_remove(0)))
    }

    /// The variables that differ from those the result of `prev` was built
    /// with (when it recorded them), each with where its value is set now.
    fn variables(&self, id: ElementId, prev: &str) -> Vec<FieldDiff> {
        let el = self.loaded.element(id);
        let Some(old) = Digest::from_hex(prev)
            .ok()
            .and_then(|d| {
                self.store
                    .note_get(
                        &ActionKey::from_digest(d),
                        cas_builder::variables_note::VARIABLES_NOTE,
                    )
                    .ok()?
            })
            .and_then(|b| cas_builder::variables_note::decode(&b))
        else {
            return Vec::new();
        };
        let names: BTreeSet<&String> = old.keys().chain(el.variables.keys()).collect();
        names
            .into_iter()
            .filter(|n| old.get(*n) != el.variables.get(*n))
            // a variable nothing of the element refers to changes no key
            .filter(|n| el.used_variables.contains(*n))
            .map(|n| FieldDiff {
                field: format!("variables.{n}"),
                old: old.get(n).cloned(),
                new: el.variables.get(n).cloned(),
                note: Some(match self.loaded.variable_origin(id, n) {
                    Some(at) => format!("set at {at}"),
                    None if el.variables.contains_key(n) => "set by cas's defaults".into(),
                    None => "no longer set".into(),
                }),
            })
            .collect()
    }

    fn explain(
        &self,
        id: ElementId,
        against: Option<(String, &'static str)>,
        hint: Option<&str>,
        depth: usize,
    ) -> Result<Explanation> {
        let el = self.loaded.element(id);
        let cur = self
            .currents
            .get(&id)
            .ok_or_else(|| AuditError::Other(format!("{} is not in the closure", el.name)))?;
        let against = match against {
            Some(a) => Some(a),
            None => self.previous(id, hint)?,
        };
        let mut ex = Explanation {
            element: el.name.clone(),
            key: cur.key.map(|k| k.to_hex()),
            against: against.as_ref().map(|a| a.0.clone()),
            against_source: against.as_ref().map(|a| a.1),
            status: KeyStatus::Changed,
            differences: Vec::new(),
            dependencies: Vec::new(),
        };
        let Some((prev, _)) = against else {
            ex.status = KeyStatus::NoPreviousBuild;
            return Ok(ex);
        };
        if ex.key.as_deref() == Some(prev.as_str()) {
            ex.status = KeyStatus::Identical;
            return Ok(ex);
        }
        // the result compared with: recorded here, or known from a remote
        // (`--against` a key only a remote has: its manifest is fetched first)
        let old = match ActionKey::from_hex(&prev).ok().map(|k| {
            self.store.action_peek(&k).and_then(|r| match r {
                Some(r) => Ok(Some(r)),
                None => Ok(self.store.remote_result_get(&k)?.map(|(r, _)| r)),
            })
        }) {
            Some(Ok(Some(r))) => {
                if let Ok(bytes) = self.store.read_blob(&r.manifest) {
                    decode(&bytes).map_err(|e| AuditError::BadManifest {
                        digest: r.manifest.to_hex(),
                        offset: e.offset,
                        reason: e.reason,
                    })?
                } else {
                    ex.status = KeyStatus::PreviousResultMissing;
                    return Ok(ex);
                }
            }
            Some(Err(e)) => return Err(e.into()),
            _ => {
                ex.status = KeyStatus::PreviousResultMissing;
                return Ok(ex);
            }
        };
        let labels: Vec<String> = el.sources.iter().map(|s| self.label(s)).collect();
        ex.differences = self.variables(id, &prev);
        ex.differences
            .extend(compare_inputs(self.store, &old, &cur.inputs, &labels));
        let staged = self.loaded.staged(id);
        for i in 0..old.dependencies.len().max(staged.len()) {
            let o = old.dependencies.get(i).map(hex32);
            let dep = staged.get(i).copied();
            let n = dep
                .and_then(|d| self.currents.get(&d))
                .and_then(|c| c.output)
                .map(|t| t.to_hex());
            if o == n {
                continue;
            }
            let explanation = match dep {
                Some(d) if depth < MAX_DEPTH => {
                    Some(Box::new(self.explain(d, None, o.as_deref(), depth + 1)?))
                }
                _ => None,
            };
            ex.dependencies.push(DepChange {
                index: i,
                element: dep.map(|d| self.loaded.element(d).name.clone()),
                old: o,
                new: n,
                explanation,
            });
        }
        if ex.differences.is_empty() && ex.dependencies.is_empty() {
            // Same inputs, different key: only the encoding can differ.
            ex.differences.push(FieldDiff {
                field: "manifest".into(),
                old: Some(prev),
                new: ex.key.clone(),
                note: Some("same inputs, another encoding".into()),
            });
        }
        Ok(ex)
    }
}

fn root_causes(ex: &Explanation, chain: &mut Vec<String>, out: &mut Vec<RootCause>) {
    chain.push(ex.element.clone());
    let leaf_status = matches!(
        ex.status,
        KeyStatus::NoPreviousBuild | KeyStatus::PreviousResultMissing
    );
    if !ex.differences.is_empty() || leaf_status {
        out.push(RootCause {
            chain: chain.clone(),
            status: ex.status,
            differences: ex.differences.clone(),
        });
    }
    for d in &ex.dependencies {
        if let Some(sub) = &d.explanation {
            root_causes(sub, chain, out);
        } else {
            // A dependency position with nothing staged now (removed).
            let mut c = chain.clone();
            c.push(
                d.element
                    .clone()
                    .unwrap_or_else(|| format!("dependency #{}", d.index)),
            );
            out.push(RootCause {
                chain: c,
                status: KeyStatus::Changed,
                differences: vec![],
            });
        }
    }
    chain.pop();
}

/// Explains `target`'s key against `against` (a key) or its last build.
pub fn explain(
    store: &Store,
    loaded: &Loaded,
    target: ElementId,
    against: Option<&ActionKey>,
) -> Result<Report> {
    let ctx = Ctx {
        store,
        loaded,
        currents: currents(store, loaded, target)?,
    };
    let against = against.map(|k| (k.to_hex(), "given"));
    let explanation = ctx.explain(target, against, None, 0)?;
    let mut causes = Vec::new();
    if explanation.status != KeyStatus::Identical {
        root_causes(&explanation, &mut Vec::new(), &mut causes);
    }
    Ok(Report {
        explanation,
        root_causes: causes,
    })
}

fn short(s: Option<&String>) -> String {
    match s {
        Some(s) if s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()) => s[..12].to_string(),
        Some(s) => s.clone(),
        None => "(unknown: not built)".into(),
    }
}

/// Human-readable explanation (what `cas explain` prints).
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    render_node(&r.explanation, "", &mut s);
    if !r.root_causes.is_empty() {
        s.push_str("\nroot cause:\n");
        for c in &r.root_causes {
            s.push_str(&format!("  {}", c.chain.join(" -> ")));
            match c.status {
                KeyStatus::NoPreviousBuild => s.push_str(": no previous build to compare with\n"),
                KeyStatus::PreviousResultMissing => {
                    s.push_str(": the previous result is no longer in the store\n");
                }
                _ => {
                    let fields: Vec<&str> =
                        c.differences.iter().map(|d| d.field.as_str()).collect();
                    s.push_str(&format!(": {}\n", fields.join(", ")));
                }
            }
        }
    }
    s
}

fn render_node(ex: &Explanation, indent: &str, s: &mut String) {
    let src = match ex.against_source {
        Some("given") => "the given key",
        Some("last-build") => "its last build",
        Some("previous-build") => "the build before its last",
        _ => "",
    };
    match ex.status {
        KeyStatus::NoPreviousBuild => {
            s.push_str(&format!(
                "{indent}{}: key {}; no previous build recorded\n",
                ex.element,
                short(ex.key.as_ref())
            ));
            return;
        }
        KeyStatus::Identical => {
            s.push_str(&format!(
                "{indent}{}: key {} is the same as {src}\n",
                ex.element,
                short(ex.key.as_ref())
            ));
            return;
        }
        KeyStatus::PreviousResultMissing => {
            s.push_str(&format!(
                "{indent}{}: key {}; the result of {} ({src}) is no longer in the store\n",
                ex.element,
                short(ex.key.as_ref()),
                short(ex.against.as_ref())
            ));
            return;
        }
        KeyStatus::Changed => s.push_str(&format!(
            "{indent}{}: key {} (was {}, {src})\n",
            ex.element,
            short(ex.key.as_ref()),
            short(ex.against.as_ref())
        )),
    }
    for d in &ex.differences {
        s.push_str(&format!(
            "{indent}  {}: {} -> {}",
            d.field,
            d.old.as_deref().unwrap_or("(none)"),
            d.new.as_deref().unwrap_or("(none)")
        ));
        if let Some(n) = &d.note {
            s.push_str(&format!("  [{n}]"));
        }
        s.push('\n');
    }
    for d in &ex.dependencies {
        s.push_str(&format!(
            "{indent}  dependency #{} {}: output {} -> {}\n",
            d.index,
            d.element.as_deref().unwrap_or("(none)"),
            short(d.old.as_ref()),
            short(d.new.as_ref())
        ));
        if let Some(sub) = &d.explanation {
            render_node(sub, &format!("{indent}    "), s);
        }
    }
}

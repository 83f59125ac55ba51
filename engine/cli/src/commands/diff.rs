//! `cas diff`: two outputs compared down to files and ELF sections.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_store::{ActionKey, Digest, Store, TreeDigest};

use crate::commands::check::{err, print_json};
use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// An element (file or name), an action key or a tree digest
    pub a: String,
    /// An element (file or name), an action key or a tree digest
    pub b: String,
    /// Compare paths only, not the content of changed files
    #[arg(long)]
    pub no_content: bool,
    /// Hand both outputs to diffoscope (which must be installed)
    #[arg(long)]
    pub diffoscope: bool,
}

pub(crate) fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// A full digest, or a prefix of at least 8 hex digits (the short keys cas
/// prints) of one.
pub(crate) fn is_digest_or_prefix(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The digest `arg` names: itself when whole, else the one action key or
/// tree of the store that starts with it. None of them, or several, is
/// invalid input (exit 2) naming the candidates.
pub(crate) fn expand_digest(store: &Store, arg: &str) -> Result<Digest, Failure> {
    let lower = arg.to_ascii_lowercase();
    if is_digest(&lower) {
        return Digest::from_hex(&lower).map_err(Failure::invalid_error);
    }
    let mut found: Vec<(Digest, &str)> = store
        .action_keys_with_prefix(&lower, 10)
        .map_err(err)?
        .into_iter()
        .map(|k| (*k.digest(), "action key"))
        .collect();
    for t in store.trees_with_prefix(&lower, 10).map_err(err)? {
        if !found.iter().any(|(d, _)| *d == t.0) {
            found.push((t.0, "tree"));
        }
    }
    match found.as_slice() {
        [(d, _)] => Ok(*d),
        [] => Err(Failure::invalid(miette::miette!(
            help = "give an element, or an action key or tree digest of this store (whole, or at least its first 8 hex digits)",
            "no action key or tree of the store {} starts with {arg}",
            store.root().display()
        ))),
        many => Err(Failure::invalid(miette::miette!(
            help = "give more digits",
            "{arg} is ambiguous: {}",
            many.iter()
                .map(|(d, what)| format!("{} ({what})", d.to_hex()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// An operand of `cas diff`: an action key (its output), a tree digest, or
/// an element (its cached output); with the key when there is one.
fn resolve(
    global: &Session,
    store: &Store,
    arg: &str,
) -> Result<(TreeDigest, Option<ActionKey>), Failure> {
    if is_digest_or_prefix(arg) && !std::path::Path::new(arg).exists() {
        let d = expand_digest(store, arg)?;
        if let Some(r) = store.action_get(&ActionKey::from_digest(d)).map_err(err)? {
            return Ok((r.output, Some(ActionKey::from_digest(d))));
        }
        let t = TreeDigest(d);
        if store.has_tree(&t) && store.get_tree(&t).is_ok() {
            return Ok((t, None));
        }
        return Err(Failure::invalid(miette::miette!(
            help = "give an element, an action key or a tree digest of this store",
            "{arg} is neither an action key nor a tree in the store {}",
            store.root().display()
        )));
    }
    let loaded = load_or_report(global, &[PathBuf::from(arg)])?;
    let mirrors = global.mirrors(&loaded.project)?;
    let plan = cas_builder::states(
        store,
        &loaded,
        &loaded.targets,
        &mirrors,
        cas_builder::record::Lookup::Use,
    )
    .map_err(err)?;
    let id = loaded.targets[0];
    let row = plan
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| err("target not planned"))?;
    let output = row.output.ok_or_else(|| {
        let name = &loaded.element(id).name;
        Failure::failed(miette::miette!(
            help = format!("run `cas build {name}` first"),
            "{name} is not built (state: {})",
            row.state.name()
        ))
    })?;
    Ok((output, row.key))
}

/// One element of a compose in the package summary.
#[derive(serde::Serialize)]
struct PackageRow {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<String>,
    /// For a changed element: whether its output is the same all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    same_output: Option<bool>,
}

/// Packages (composed elements) added, removed and changed between two
/// compose results, from the provenance recorded with each.
#[derive(serde::Serialize)]
struct Packages {
    added: Vec<PackageRow>,
    removed: Vec<PackageRow>,
    changed: Vec<PackageRow>,
    unchanged: usize,
}

fn provenance(
    store: &Store,
    key: Option<ActionKey>,
) -> Option<cas_builder::provenance::Provenance> {
    let bytes = store
        .note_get(&key?, cas_builder::provenance::COMPOSE_NOTE)
        .ok()??;
    cas_builder::provenance::Provenance::decode(&bytes)
}

fn packages(
    a: &cas_builder::provenance::Provenance,
    b: &cas_builder::provenance::Provenance,
) -> Packages {
    let row = |name: &str, key: &ActionKey| PackageRow {
        name: name.to_string(),
        key: Some(key.to_hex()),
        a: None,
        b: None,
        same_output: None,
    };
    let mut p = Packages {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        unchanged: 0,
    };
    for x in &a.parts {
        match b.parts.iter().find(|y| y.name == x.name) {
            None => p.removed.push(row(&x.name, &x.key)),
            Some(y) if y.key == x.key => p.unchanged += 1,
            Some(y) => p.changed.push(PackageRow {
                name: x.name.clone(),
                key: None,
                a: Some(x.key.to_hex()),
                b: Some(y.key.to_hex()),
                same_output: Some(x.output == y.output),
            }),
        }
    }
    for y in &b.parts {
        if !a.parts.iter().any(|x| x.name == y.name) {
            p.added.push(row(&y.name, &y.key));
        }
    }
    p
}

fn render_packages(p: &Packages) -> String {
    let short = |k: &Option<String>| k.as_deref().map_or("-", |k| &k[..12]).to_string();
    let mut s = format!(
        "packages: {} added, {} removed, {} changed, {} unchanged\n",
        p.added.len(),
        p.removed.len(),
        p.changed.len(),
        p.unchanged
    );
    for r in &p.added {
        s += &format!("+ {}  {}\n", r.name, short(&r.key));
    }
    for r in &p.removed {
        s += &format!("- {}  {}\n", r.name, short(&r.key));
    }
    for r in &p.changed {
        s += &format!(
            "~ {}  {} → {}{}\n",
            r.name,
            short(&r.a),
            short(&r.b),
            if r.same_output == Some(true) {
                " (same output)"
            } else {
                ""
            }
        );
    }
    s
}

pub(crate) fn run_diff(global: &Session, args: DiffArgs) -> CmdResult {
    let store = global.store()?;
    let (a, key_a) = resolve(global, &store, &args.a)?;
    let (b, key_b) = resolve(global, &store, &args.b)?;
    // two composes: which packages changed, above the files
    let summary = match (provenance(&store, key_a), provenance(&store, key_b)) {
        (Some(pa), Some(pb)) => Some(packages(&pa, &pb)),
        _ => None,
    };
    if args.diffoscope {
        return diffoscope(&store, &a, &b);
    }
    let opts = cas_audit::diff::DiffOptions {
        content: !args.no_content,
    };
    let d = cas_audit::diff::diff_trees(&store, &a, &b, opts).map_err(err)?;
    if global.json {
        let mut v = serde_json::to_value(&d).map_err(err)?;
        if let (Some(p), Some(m)) = (&summary, v.as_object_mut()) {
            m.insert("packages".into(), serde_json::to_value(p).map_err(err)?);
        }
        print_json(&v)?;
    } else if d.identical {
        eprintln!("identical ({})", a.to_hex());
    } else {
        if let Some(p) = &summary {
            print!("{}", render_packages(p));
        }
        print!("{}", cas_audit::diff::render(&d));
    }
    Ok(if d.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn diffoscope(store: &Store, a: &TreeDigest, b: &TreeDigest) -> CmdResult {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("diffoscope").is_file()));
    if !found {
        return Err(Failure::failed(miette::miette!(
            help = "install diffoscope (Debian package `diffoscope`), or drop --diffoscope to use cas's own comparison",
            "diffoscope is not installed (not found in PATH)"
        )));
    }
    let tmp = store
        .tmp_dir()
        .join(format!("diffoscope.{}", std::process::id()));
    let (da, db) = (tmp.join("a"), tmp.join("b"));
    std::fs::create_dir_all(&tmp)
        .map_err(|e| err(format!("cannot create {}: {e}", tmp.display())))?;
    let run = || -> CmdResult {
        store
            .materialize(a, &da, cas_store::Method::ReflinkOrCopy)
            .map_err(err)?;
        store
            .materialize(b, &db, cas_store::Method::ReflinkOrCopy)
            .map_err(err)?;
        let status = std::process::Command::new("diffoscope")
            .arg(&da)
            .arg(&db)
            .status()
            .map_err(|e| err(format!("cannot run diffoscope: {e}")))?;
        Ok(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(1) => ExitCode::from(1),
            _ => return Err(err(format!("diffoscope failed ({status})"))),
        })
    };
    let out = run();
    let _ = cas_store::remove_tree(&tmp);
    out
}

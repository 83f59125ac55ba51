//! Reproducibility audits: `cas check`, `cas diff`, `cas explain`,
//! `cas challenge` (thin layers over `cas-audit`).

use std::path::PathBuf;
use std::process::ExitCode;

use cas_builder::{BuildOptions, Console};
use cas_store::{ActionKey, Digest, Store, TreeDigest};

use crate::commands::build::STOP;
use crate::commands::session::Session;
use crate::commands::show::load_or_report;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// Rebuild every step of the closure, not only the element's own
    #[arg(long)]
    pub deep: bool,
    /// Never use the network: a missing source is an error
    #[arg(long)]
    pub offline: bool,
}

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

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// Compare with this action key instead of the element's last build
    #[arg(long, value_name = "KEY")]
    pub against: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ChallengeArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// The remote cache to compare with (http(s):// URL, file:// URL or directory)
    #[arg(long, value_name = "URL", required = true)]
    pub remote: String,
}

fn err(e: impl std::fmt::Display) -> Failure {
    Failure::failed(miette::miette!("{e}"))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", serde_json::to_string(v).map_err(err)?);
    Ok(())
}

fn build_options(global: &Session, offline: bool) -> Result<BuildOptions, Failure> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    Ok(BuildOptions {
        jobs: global.jobs(),
        max_jobs: cores,
        keep_going: false,
        offline,
        mirrors: global.mirrors()?,
        rebuild: Default::default(),
        remotes: None,
    })
}

pub(crate) fn run_check(global: &Session, args: CheckArgs) -> CmdResult {
    let loaded = load_or_report(std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    cas_sandbox::check_available().map_err(err)?;
    let opts = build_options(global, args.offline)?;
    crate::commands::source::prepare_build(
        &store,
        &loaded,
        &opts.mirrors,
        global.jobs(),
        args.offline,
    )?;
    let target = loaded.targets[0];
    let console = Console::new(loaded.closure(&loaded.targets).len());
    let report =
        cas_audit::check::check(&store, &loaded, target, args.deep, &opts, &console, &STOP);
    console.finish();
    let report = report.map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::check::render(&report));
    }
    Ok(if report.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// An operand of `cas diff`: an action key (its output), a tree digest, or
/// an element (its cached output).
fn resolve(global: &Session, store: &Store, arg: &str) -> Result<TreeDigest, Failure> {
    if is_digest(arg) {
        let d = Digest::from_hex(&arg.to_ascii_lowercase())
            .map_err(|e| Failure::invalid(miette::miette!("{e}")))?;
        if let Some(r) = store.action_get(&ActionKey(d)).map_err(err)? {
            return Ok(r.output);
        }
        let t = TreeDigest(d);
        if store.has_tree(&t) && store.get_tree(&t).is_ok() {
            return Ok(t);
        }
        return Err(Failure::invalid(miette::miette!(
            help = "give an element, an action key or a tree digest of this store",
            "{arg} is neither an action key nor a tree in the store {}",
            store.root().display()
        )));
    }
    let loaded = load_or_report(&[PathBuf::from(arg)])?;
    let mirrors = global.mirrors()?;
    let plan = cas_builder::states(store, &loaded, &loaded.targets, &mirrors).map_err(err)?;
    let id = loaded.targets[0];
    let row = plan
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| err("target not planned"))?;
    row.output.ok_or_else(|| {
        let name = &loaded.element(id).name;
        Failure::failed(miette::miette!(
            help = format!("run `cas build {name}` first"),
            "{name} is not built (state: {})",
            row.state.name()
        ))
    })
}

pub(crate) fn run_diff(global: &Session, args: DiffArgs) -> CmdResult {
    let store = global.store()?;
    let a = resolve(global, &store, &args.a)?;
    let b = resolve(global, &store, &args.b)?;
    if args.diffoscope {
        return diffoscope(&store, &a, &b);
    }
    let opts = cas_audit::diff::DiffOptions {
        content: !args.no_content,
    };
    let d = cas_audit::diff::diff_trees(&store, &a, &b, opts).map_err(err)?;
    if global.json {
        print_json(&d)?;
    } else if d.identical {
        eprintln!("identical ({})", a.to_hex());
    } else {
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
        .root()
        .join("tmp")
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
    let _ = make_writable_and_remove(&tmp);
    out
}

fn make_writable_and_remove(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for e in walk(dir) {
        if e.is_dir() {
            let _ = std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o755));
        }
    }
    std::fs::remove_dir_all(dir)
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

pub(crate) fn run_explain(global: &Session, args: ExplainArgs) -> CmdResult {
    let against = match &args.against {
        Some(k) if is_digest(k) => Some(ActionKey(
            Digest::from_hex(&k.to_ascii_lowercase())
                .map_err(|e| Failure::invalid(miette::miette!("{e}")))?,
        )),
        Some(k) => {
            return Err(Failure::invalid(miette::miette!(
                "--against {k}: not an action key (64 hex digits)"
            )))
        }
        None => None,
    };
    let loaded = load_or_report(std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    let report = cas_audit::explain::explain(&store, &loaded, loaded.targets[0], against.as_ref())
        .map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::explain::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_challenge(global: &Session, args: ChallengeArgs) -> CmdResult {
    let loaded = load_or_report(std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    let report = cas_audit::challenge::challenge(&store, &loaded, loaded.targets[0], &args.remote)
        .map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::challenge::render(&report));
    }
    Ok(if report.disagree == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

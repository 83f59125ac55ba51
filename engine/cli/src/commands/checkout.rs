//! `cas checkout`: an element's output as plain files.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_format::Loaded;
use cas_store::{Method, Store};

use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct CheckoutArgs {
    /// Element file or element name, or an action key or tree digest of the store
    pub target: PathBuf,
    /// Directory to create (must not exist, or be empty)
    pub dir: PathBuf,
    /// Hardlink into the store instead of copying (read-only files; never write to them)
    #[arg(long)]
    pub hardlinks: bool,
    /// What to write into DIR: the files (`tree`), or a binary package (`deb`, `ipk`)
    #[arg(long, value_enum, default_value = "tree")]
    pub format: CheckoutFormat,
    /// With --format deb|ipk: also a package of each runtime dependency, and a `Packages` index
    #[arg(long)]
    pub deps: bool,
    #[command(flatten)]
    pub remote: crate::commands::remotes::ReadRemoteFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CheckoutFormat {
    Tree,
    Deb,
    Ipk,
}

/// The planned state of a single target, which must be cached.
pub(crate) fn cached_output(
    global: &Session,
    target: &PathBuf,
    lookup: cas_builder::record::Lookup,
) -> Result<(Store, Loaded, cas_builder::Planned), Failure> {
    let loaded = load_or_report(global, std::slice::from_ref(target))?;
    let store = global.store()?;
    let plan = cas_builder::states(
        &store,
        &loaded,
        &loaded.targets,
        &global.mirrors(&loaded.project)?,
        lookup,
    )
    .map_err(Failure::error)?;
    let id = loaded.targets[0];
    let row = plan
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| Failure::failed(miette::miette!("target not planned")))?;
    if row.output.is_none() {
        let name = &loaded.element(id).name;
        return Err(Failure::failed(miette::miette!(
            help = format!("run `cas build {name}` first"),
            "{name} is not built (state: {})",
            row.state.name()
        )));
    }
    Ok((store, loaded, row))
}

/// `cas checkout KEY|TREE DIR`: an action key's output or a tree of the store.
fn checkout_digest(global: &Session, args: &CheckoutArgs, arg: &str) -> CmdResult {
    if args.format != CheckoutFormat::Tree {
        return Err(Failure::invalid(miette::miette!(
            "--format {:?} needs an element (packages are named after it)",
            args.format
        )));
    }
    let store = global.store()?;
    let d = crate::commands::diff::expand_digest(&store, arg)?;
    let key = cas_store::ActionKey::from_digest(d);
    let output = match store.action_get(&key).map_err(Failure::error)? {
        Some(r) => r.output,
        None if store.has_tree(&cas_store::TreeDigest(d))
            && store.get_tree(&cas_store::TreeDigest(d)).is_ok() =>
        {
            cas_store::TreeDigest(d)
        }
        None => {
            return Err(Failure::invalid(miette::miette!(
                help = "give an element, an action key or a tree digest of this store",
                "{arg} is neither an action key nor a tree in the store {}",
                store.root().display()
            )))
        }
    };
    let method = if args.hardlinks {
        Method::Hardlink
    } else {
        Method::ReflinkOrCopy
    };
    let used = store
        .materialize(&output, &args.dir, method)
        .map_err(Failure::error)?;
    if global.json {
        crate::json::print(
            &serde_json::json!({"output": output.to_hex(), "dir": args.dir, "method": used.to_string()}),
        )?;
    } else {
        eprintln!(
            "checked out {} into {} using {used}",
            &output.to_hex()[..12],
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_checkout(global: &Session, args: CheckoutArgs) -> CmdResult {
    let arg = args.target.to_string_lossy().into_owned();
    if crate::commands::diff::is_digest_or_prefix(&arg) && !args.target.exists() {
        return checkout_digest(global, &args, &arg);
    }
    match args.format {
        CheckoutFormat::Deb => {
            return crate::commands::package::run(global, &args, cas_package::Format::Deb)
        }
        CheckoutFormat::Ipk => {
            return crate::commands::package::run(global, &args, cas_package::Format::Ipk)
        }
        CheckoutFormat::Tree if args.deps => {
            return Err(Failure::invalid(miette::miette!(
                "--deps goes with --format deb or ipk (a tree with its dependencies is a compose)"
            )))
        }
        CheckoutFormat::Tree => {}
    }
    let (store, loaded, row) =
        cached_output(global, &args.target, cas_builder::record::Lookup::Use)?;
    let output = row.output.expect("checked");
    crate::commands::remotes::ensure_local(global, &args.remote.flags(), &store, &output)?;
    let method = if args.hardlinks {
        Method::Hardlink
    } else {
        Method::ReflinkOrCopy
    };
    let used = store
        .materialize(&output, &args.dir, method)
        .map_err(Failure::error)?;
    let name = &loaded.element(row.id).name;
    if global.json {
        crate::json::print(
            &serde_json::json!({"name": name, "output": output.to_hex(), "dir": args.dir, "method": used.to_string()}),
        )?;
    } else {
        eprintln!(
            "checked out {name} ({}) into {} using {used}",
            &output.to_hex()[..12],
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! `cas explain`: why an element's key changed, down to the root cause.

use std::path::PathBuf;
use std::process::ExitCode;

use cas_store::{ActionKey, Digest};

use crate::commands::check::{err, print_json};
use crate::commands::diff::is_digest;
use crate::commands::load::load_or_report;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Element file or element name
    pub target: PathBuf,
    /// Compare with this action key instead of the element's last build
    /// (a key of this store, or of a remote: its manifest is fetched)
    #[arg(long, value_name = "KEY")]
    pub against: Option<String>,
    #[command(flatten)]
    pub remote: crate::commands::remotes::ReadRemoteFlags,
}

pub(crate) fn run_explain(global: &Session, args: ExplainArgs) -> CmdResult {
    let against = match &args.against {
        Some(k) if is_digest(k) => Some(ActionKey::from_digest(
            Digest::from_hex(&k.to_ascii_lowercase())
                .map_err(Failure::invalid_error)?,
        )),
        // a short key: one of this store's
        Some(k) if crate::commands::diff::is_digest_or_prefix(k) => Some(ActionKey::from_digest(
            crate::commands::diff::expand_digest(&global.store()?, k)?,
        )),
        Some(k) => {
            return Err(Failure::invalid(miette::miette!(
                "--against {k}: not an action key (64 hex digits, or at least the first 8 of one of this store's)"
            )))
        }
        None => None,
    };
    let loaded = load_or_report(global, std::slice::from_ref(&args.target))?;
    let store = global.store()?;
    if let Some(k) = &against {
        known_somewhere(
            global,
            &args.remote.flags(),
            &store,
            k,
            &loaded.element(loaded.targets[0]).name,
        )?;
    }
    let report = cas_audit::explain::explain(&store, &loaded, loaded.targets[0], against.as_ref())
        .map_err(err)?;
    if global.json {
        print_json(&report)?;
    } else {
        print!("{}", cas_audit::explain::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--against KEY`: a result of this store, or one a remote has (verified
/// as any pulled result; its manifest is fetched and the result remembered
/// as a remote's); otherwise invalid input (exit 2).
fn known_somewhere(
    global: &Session,
    flags: &crate::commands::remotes::RemoteFlags,
    store: &cas_store::Store,
    key: &ActionKey,
    element: &str,
) -> Result<(), Failure> {
    if store.action_peek(key).map_err(err)?.is_some()
        || store.remote_result_get(key).map_err(err)?.is_some()
    {
        return Ok(());
    }
    let say = |m: &str| eprintln!("{m}");
    if let Some(remotes) = global.remotes(flags, false)? {
        if let Some((r, i)) = remotes.lookup(key, element, &say) {
            remotes.fetch_manifest(store, i, &r).map_err(err)?;
            store
                .remote_result_put(key, &r, remotes.url(i))
                .map_err(err)?;
            return Ok(());
        }
    }
    Err(Failure::invalid(miette::miette!(
        help = "give the key of a result of this store or of a remote (`--remote URL`, or a configured one)",
        "--against {}: no result has this key, here or on any remote",
        key.to_hex()
    )))
}

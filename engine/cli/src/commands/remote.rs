//! `cas push`, `cas pull`, `cas keygen`, and the remote options shared with
//! `cas build` (spec/remote.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use cas_builder::remote::{RemoteSpec, Remotes};
use cas_store::remote::{PublicKey, SigningKey, Trust};

use crate::cli::Global;
use crate::commands::build::open_store;
use crate::commands::show::load_or_report;
use crate::exit::{CmdResult, Failure};

/// Remote cache options (`cas build`, `cas push`, `cas pull`). They add to
/// the `remotes:` of the user configuration.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct RemoteFlags {
    /// A remote cache: an http(s):// base URL, a file:// URL or a directory (repeatable; tried after the configured ones)
    #[arg(long = "remote", value_name = "URL")]
    pub remotes: Vec<String>,
    /// Upload results to the --remote remotes and the configured ones marked `push: true`
    #[arg(long)]
    pub push: bool,
    /// Trust results from the --remote remotes signed by this ed25519 public key (hex, base64, or a .pub file; repeatable)
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub trusted_keys: Vec<String>,
    /// Use unsigned results from the --remote remotes (only for remotes you fully control)
    #[arg(long)]
    pub trust_unsigned: bool,
    /// Sign pushed results with this secret key [default: `signing-key` of the configuration]
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Use no remote at all, not even the configured ones
    #[arg(long, conflicts_with_all = ["remotes", "push"])]
    pub no_remotes: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Element files or element names (`cas push`, `cas pull`)
    pub targets: Vec<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteFlags,
    /// `cas keygen`: where to write the secret key (the public key goes to FILE.pub) [default: ~/.config/cas/signing.key]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn invalid(msg: String) -> Failure {
    Failure::invalid(miette::miette!("{msg}"))
}

/// The remotes of a command: configured ones first, then `--remote`s.
/// `push_all`: every remote may be pushed to (`cas push`).
pub(crate) fn remotes(
    global: &Global,
    flags: &RemoteFlags,
    push_all: bool,
) -> Result<Option<Arc<Remotes>>, Failure> {
    if flags.no_remotes {
        return Ok(None);
    }
    let config =
        cas_format::config::load_user_config(global.config.as_deref()).map_err(|diags| {
            for e in &diags.errors {
                eprintln!("{:?}", miette::Report::new(e.clone()));
            }
            Failure::Silent(2)
        })?;
    let key_path = flags.signing_key.clone().or(config.signing_key.clone());
    let signer: Option<SigningKey> = match &key_path {
        Some(p) => match cas_store::remote::read_signing_key(p) {
            Ok(k) => Some(k),
            // The configured key is only needed to push.
            Err(e) if flags.signing_key.is_some() || flags.push || push_all => {
                return Err(invalid(format!(
                    "cannot read the signing key: {e} (create one with `cas keygen`)"
                )))
            }
            Err(_) => None,
        },
        None => None,
    };
    let parse_keys = |keys: &[String]| -> Result<Vec<PublicKey>, Failure> {
        keys.iter()
            .map(|k| {
                PublicKey::parse_or_read(k).map_err(|e| invalid(format!("bad trusted key: {e}")))
            })
            .collect()
    };
    // Unsigned trust never overrides a key (spec/remote.md "Trust").
    if flags.trust_unsigned && !flags.trusted_keys.is_empty() {
        return Err(invalid(
            "--trust-unsigned and --trusted-key contradict each other: with a trusted key only the results it signed are used, and --trust-unsigned would also take any result with its signature stripped; give one of them"
                .into(),
        ));
    }
    if let Some(r) = config
        .remotes
        .iter()
        .find(|r| r.trust_unsigned && !r.trusted_keys.is_empty())
    {
        return Err(invalid(format!(
            "the configured remote {} has both `trusted-keys` and `trust-unsigned: true`: with a trusted key only the results it signed are used; remove one of them",
            r.url
        )));
    }
    let mut specs = Vec::new();
    for r in &config.remotes {
        let mut keys = parse_keys(&r.trusted_keys)?;
        keys.extend(signer.as_ref().map(cas_store::remote::SigningKey::public));
        specs.push(RemoteSpec {
            url: r.url.clone(),
            push: r.push && (flags.push || push_all),
            trust: Trust {
                keys,
                unsigned: r.trust_unsigned,
            },
        });
    }
    let mut flag_keys = parse_keys(&flags.trusted_keys)?;
    flag_keys.extend(signer.as_ref().map(cas_store::remote::SigningKey::public));
    for url in &flags.remotes {
        specs.push(RemoteSpec {
            url: url.clone(),
            push: flags.push || push_all,
            trust: Trust {
                keys: flag_keys.clone(),
                unsigned: flags.trust_unsigned,
            },
        });
    }
    if specs.is_empty() {
        return Ok(None);
    }
    if specs.iter().any(|s| s.push) && signer.is_none() {
        eprintln!("warning: pushing unsigned results (no --signing-key and no `signing-key` configured): others use them only if they mark this remote trust-unsigned");
    }
    let remotes = Remotes::open(&specs, signer).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(Arc::new(remotes)))
}

pub(crate) fn run(global: &Global, name: &str, args: Args) -> CmdResult {
    match name {
        "keygen" => keygen(global, args),
        "push" => push(global, args),
        "pull" => pull(global, args),
        other => Err(Failure::failed(miette::miette!(
            "unknown remote command {other}"
        ))),
    }
}

fn default_key_path() -> Option<PathBuf> {
    cas_format::config::default_path().map(|p| p.with_file_name("signing.key"))
}

fn keygen(global: &Global, args: Args) -> CmdResult {
    if !args.targets.is_empty() {
        return Err(invalid(
            "cas keygen takes no targets (use --out FILE)".into(),
        ));
    }
    let path = args
        .out
        .or_else(default_key_path)
        .ok_or_else(|| invalid("no home directory: pass --out FILE".into()))?;
    let key = cas_store::remote::generate_signing_key()
        .map_err(|e| Failure::failed(miette::miette!("{e}")))?;
    let public = cas_store::remote::write_key_pair(&key, &path).map_err(|e| {
        Failure::failed(miette::miette!(
            help = "an existing key is never overwritten: choose another --out",
            "{e}"
        ))
    })?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"secret": path, "public": public, "key": key.public().to_string()})
        );
    } else {
        println!("{}", key.public());
        eprintln!(
            "wrote the secret key {} and the public key {}",
            path.display(),
            public.display()
        );
        eprintln!(
            "trust it with `trusted-keys: [\"{}\"]` in a remote of the configuration",
            key.public()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn need_targets(args: &Args, what: &str) -> Result<(), Failure> {
    if args.targets.is_empty() {
        return Err(invalid(format!("cas {what} needs at least one TARGET")));
    }
    Ok(())
}

fn push(global: &Global, args: Args) -> CmdResult {
    need_targets(&args, "push")?;
    let loaded = load_or_report(&args.targets)?;
    let store = open_store(global)?;
    let remotes = remotes(global, &args.remote, true)?
        .ok_or_else(|| invalid("no remote: pass --remote URL or configure `remotes:`".into()))?;
    let plan = cas_builder::states(
        &store,
        &loaded,
        &loaded.targets,
        &crate::commands::source::mirrors(global)?,
    )
    .map_err(|e| Failure::failed(miette::miette!("{e}")))?;
    let say = |m: &str| eprintln!("{m}");
    let mut not_built = Vec::new();
    let mut pushed = 0usize;
    let mut already = 0usize;
    for row in &plan {
        let name = &loaded.element(row.id).name;
        let result = match row.key {
            Some(k) => store
                .action_get(&k)
                .map_err(|e| Failure::failed(miette::miette!("{e}")))?
                .map(|r| (k, r)),
            None => None,
        };
        let Some((key, result)) = result else {
            not_built.push(name.clone());
            continue;
        };
        let count = remotes.push(&store, &key, &result, name, &say);
        if count.failed == 0 {
            if count.uploaded > 0 {
                pushed += 1;
            } else {
                already += 1;
            }
        }
    }
    let summary = remotes.summary();
    if global.json {
        println!(
            "{}",
            serde_json::json!({"pushed": pushed, "already_there": already, "not_built": not_built, "push_failures": summary.push_failures, "transfers": summary.transfers})
        );
    }
    eprintln!(
        "pushed {pushed} result(s), {already} already there: {} object(s) uploaded, {} failure(s){}",
        summary.transfers.uploaded_objects,
        summary.push_failures.len(),
        if not_built.is_empty() {
            String::new()
        } else {
            format!("; not built: {}", not_built.join(", "))
        }
    );
    let targets_missing = loaded
        .targets
        .iter()
        .any(|t| not_built.contains(&loaded.element(*t).name));
    if !summary.push_failures.is_empty() || targets_missing {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

struct Stderr;

impl cas_builder::Reporter for Stderr {
    fn started(&self, _: &str, _: &cas_store::ActionKey) {}
    fn finished(&self, _: &str, _: &str, _: Option<std::time::Duration>) {}
    fn failed(&self, _: &str, _: &cas_builder::BuildError, _: &std::path::Path) {}
    fn message(&self, text: &str) {
        eprintln!("{text}");
    }
}

fn pull(global: &Global, args: Args) -> CmdResult {
    need_targets(&args, "pull")?;
    let loaded = load_or_report(&args.targets)?;
    let store = open_store(global)?;
    let remotes = remotes(global, &args.remote, false)?
        .ok_or_else(|| invalid("no remote: pass --remote URL or configure `remotes:`".into()))?;
    let rows = cas_builder::remote::pull(
        &store,
        &loaded,
        &loaded.targets,
        &remotes,
        &crate::commands::source::mirrors(global)?,
        &Stderr,
    )
    .map_err(|e| Failure::failed(miette::miette!("{e}")))?;
    let summary = remotes.summary();
    if global.json {
        println!(
            "{}",
            serde_json::json!({"elements": rows, "transfers": summary.transfers})
        );
    }
    let missing: Vec<&str> = loaded
        .targets
        .iter()
        .map(|t| loaded.element(*t).name.as_str())
        .filter(|n| rows.iter().any(|r| r.name == *n && r.status == "missing"))
        .collect();
    eprintln!(
        "{} object(s) downloaded ({} bytes){}",
        summary.transfers.downloaded_objects,
        summary.transfers.downloaded_bytes,
        if missing.is_empty() {
            String::new()
        } else {
            format!("; not in any remote: {}", missing.join(", "))
        }
    );
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The remote part of `cas build`'s summary (stderr).
pub(crate) fn print_summary(report: &cas_builder::BuildReport) {
    let Some(r) = &report.remote else { return };
    let t = &r.transfers;
    eprintln!(
        "remote: {} pulled, {} object(s) downloaded ({} bytes), {} result(s) and {} object(s) pushed, {} push failure(s), {} warning(s)",
        report.pulled, t.downloaded_objects, t.downloaded_bytes, t.results_pushed, t.uploaded_objects, r.push_failures.len(), r.warnings
    );
    for f in &r.push_failures {
        eprintln!("  push failed: {f}");
    }
}

/// Before `cas checkout`: an output known only from a pulled result is
/// downloaded (verified) from the remotes first.
pub(crate) fn ensure_local(
    global: &Global,
    flags: &RemoteFlags,
    store: &cas_store::Store,
    tree: &cas_store::TreeDigest,
) -> Result<(), Failure> {
    if store.has_closure(tree) {
        return Ok(());
    }
    let Some(remotes) = remotes(global, flags, false)? else {
        return Err(Failure::failed(miette::miette!(
            help = "pass --remote URL (or configure `remotes:`) to download it",
            "the output {tree} was pulled from a remote but is not in the local store"
        )));
    };
    remotes
        .fetch_tree_anywhere(store, tree)
        .map_err(|e| Failure::failed(miette::miette!("cannot download the output {tree}: {e}")))
}

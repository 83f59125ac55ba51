//! The remote options shared by `cas build`, `checkout`, `push` and `pull`,
//! and the remotes they open (spec/remote.md).

use std::path::PathBuf;
use std::sync::Arc;

use cas_builder::remote::{RemoteSpec, Remotes};
use cas_format::config::UserConfig;
use cas_store::remote::{PublicKey, SigningKey, Trust};

use crate::commands::session::Session;
use crate::exit::Failure;

/// Remote cache options (`cas build`, `cas push`, `cas pull`). They add to
/// the `remotes:` of the user configuration.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct RemoteFlags {
    /// A remote cache: an http(s):// base URL, a grpc(s):// REAPI server, a file:// URL or a directory (repeatable; tried after the configured ones)
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

/// The remote options of commands that only read from remotes (`cas pull`,
/// `checkout`, `explain`): those of [`RemoteFlags`] without `--push` and
/// `--signing-key`, which mean nothing there.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ReadRemoteFlags {
    /// A remote cache: an http(s):// base URL, a grpc(s):// REAPI server, a file:// URL or a directory (repeatable; tried after the configured ones)
    #[arg(long = "remote", value_name = "URL")]
    pub remotes: Vec<String>,
    /// Trust results from the --remote remotes signed by this ed25519 public key (hex, base64, or a .pub file; repeatable)
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub trusted_keys: Vec<String>,
    /// Use unsigned results from the --remote remotes (only for remotes you fully control)
    #[arg(long)]
    pub trust_unsigned: bool,
    /// Use no remote at all, not even the configured ones
    #[arg(long, conflicts_with = "remotes")]
    pub no_remotes: bool,
}

impl ReadRemoteFlags {
    /// As the full flags: nothing pushed, no signing key.
    pub(crate) fn flags(&self) -> RemoteFlags {
        RemoteFlags {
            remotes: self.remotes.clone(),
            push: false,
            trusted_keys: self.trusted_keys.clone(),
            trust_unsigned: self.trust_unsigned,
            signing_key: None,
            no_remotes: self.no_remotes,
        }
    }
}

pub(crate) fn invalid(msg: String) -> Failure {
    Failure::invalid(miette::miette!("{msg}"))
}

/// A configured remote's TLS files, as the REAPI client takes them.
fn tls_files(tls: &cas_format::config::RemoteTls) -> cas_reapi::TlsFiles {
    let file = |f: &cas_format::config::ConfigFile| cas_reapi::SettingFile {
        path: f.path.clone(),
        at: f.at.clone(),
    };
    cas_reapi::TlsFiles {
        ca: tls.ca.as_ref().map(file),
        client: tls.client.as_ref().map(|(c, k)| (file(c), file(k))),
    }
}

/// The remotes of a command: configured ones first, then `--remote`s.
/// `push_all`: every remote may be pushed to (`cas push`). `state`: where
/// REAPI remotes keep their digest map (`STORE/reapi`).
pub(crate) fn open(
    config: &UserConfig,
    flags: &RemoteFlags,
    push_all: bool,
    state: &std::path::Path,
) -> Result<Option<Arc<Remotes>>, Failure> {
    if flags.no_remotes {
        return Ok(None);
    }
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
            headers: r.headers.clone(),
            timeout: r.timeout.map(std::time::Duration::from_secs),
            tls: tls_files(&r.tls),
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
            headers: Vec::new(),
            timeout: None,
            tls: cas_reapi::TlsFiles::default(),
        });
    }
    if specs.is_empty() {
        return Ok(None);
    }
    if specs.iter().any(|s| s.push) && signer.is_none() {
        eprintln!("warning: pushing unsigned results (no --signing-key and no `signing-key` configured): others use them only if they mark this remote trust-unsigned");
    }
    // SIGINT/SIGTERM (a build's handler sets STOP) stop their transfers
    let interrupt = cas_store::remote::Interrupt::on(&crate::commands::build::STOP);
    let remotes =
        Remotes::open(&specs, signer, state, interrupt).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(Arc::new(remotes)))
}

/// Messages of the remote commands, on stderr.
pub(crate) struct Stderr;

impl cas_builder::Reporter for Stderr {
    fn started(&self, _: &str, _: &cas_store::ActionKey) {}
    fn finished(&self, _: &str, _: cas_builder::ElementStatus, _: Option<std::time::Duration>) {}
    fn failed(&self, _: &str, _: &cas_builder::BuildError, _: &std::path::Path) {}
    fn message(&self, text: &str) {
        eprintln!("{text}");
    }
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
    session: &Session,
    flags: &RemoteFlags,
    store: &cas_store::Store,
    tree: &cas_store::TreeDigest,
) -> Result<(), Failure> {
    if store.has_closure(tree) {
        return Ok(());
    }
    let Some(remotes) = session.remotes(flags, false)? else {
        return Err(Failure::failed(miette::miette!(
            help = "pass --remote URL (or configure `remotes:`) to download it",
            "the output {tree} was pulled from a remote but is not in the local store"
        )));
    };
    remotes
        .fetch_tree_anywhere(store, tree)
        .map_err(|e| Failure::failed(miette::miette!("cannot download the output {tree}: {e}")))
}

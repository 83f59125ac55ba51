//! `cas keygen`: an ed25519 key pair for signing action results.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::remotes::invalid;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the secret key (the public key goes to FILE.pub) [default: ~/.config/cas/signing.key]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn default_key_path() -> Option<PathBuf> {
    cas_format::config::default_path().map(|p| p.with_file_name("signing.key"))
}

pub(crate) fn run(global: &Session, args: KeygenArgs) -> CmdResult {
    let path = args
        .out
        .or_else(default_key_path)
        .ok_or_else(|| invalid("no home directory: pass --out FILE".into()))?;
    let key = cas_store::remote::generate_signing_key().map_err(Failure::error)?;
    let public = cas_store::remote::write_key_pair(&key, &path).map_err(|e| {
        Failure::failed(miette::miette!(
            help = "an existing key is never overwritten: choose another --out",
            "{e}"
        ))
    })?;
    if global.json {
        crate::json::print(
            &serde_json::json!({"secret": path, "public": public, "key": key.public().to_string()}),
        )?;
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

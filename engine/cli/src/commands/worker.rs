//! `cas worker`: a bot for a scheduler that speaks the Remote Workers API
//! (BuildGrid). It serves until SIGTERM or SIGINT, then reports itself
//! terminating. spec/remote.md, "Workers".

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::commands::remotes::invalid;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The scheduler's Bots service: grpc://HOST:PORT[/INSTANCE]
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The CAS the actions' blobs live in [default: the server]
    #[arg(long, value_name = "URL")]
    pub cas: Option<String>,
    /// This bot's id [default: HOSTNAME-PID]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A platform property of this worker, besides OSFamily and ISA (repeatable)
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "cas".into(), |s| s.trim().to_string())
}

/// REAPI's name of this machine's architecture (the `ISA` property).
fn isa() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        a => a,
    }
}

pub(crate) fn run(global: &Session, args: WorkerArgs) -> CmdResult {
    if !cas_reapi::url::is_grpc(&args.server) {
        return Err(invalid(format!(
            "--server {}: a worker talks to a REAPI scheduler: grpc://HOST:PORT[/INSTANCE]",
            args.server
        )));
    }
    let mut properties = vec![
        ("OSFamily".to_string(), "linux".to_string()),
        ("ISA".to_string(), isa().to_string()),
    ];
    for p in &args.properties {
        let Some((k, v)) = p.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(invalid(format!("--property {p}: expected KEY=VALUE")));
        };
        properties.retain(|(old, _)| old != k);
        properties.push((k.to_string(), v.to_string()));
    }
    cas_builder::sandbox::check_available().map_err(Failure::error)?;
    let store = Arc::new(global.store()?);
    let bot_id = args
        .name
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
    }
    let say = |line: &str| eprintln!("cas worker {bot_id}: {line}");
    let state = store.layout().reapi();
    let opts = cas_worker::Options {
        server: args.server.clone(),
        cas: args.cas.clone(),
        bot_id: bot_id.clone(),
        properties,
        store,
        state,
        stop: &STOP,
        say: &say,
    };
    cas_worker::serve(&opts).map_err(|e| match e {
        cas_worker::WorkerError::Remote(cas_store::RemoteError::BadUrl { .. }) => {
            invalid(e.to_string())
        }
        e => Failure::error(e),
    })?;
    Ok(ExitCode::SUCCESS)
}

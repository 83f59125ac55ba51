//! `cas fetch`: every source of the closure into the source cache, in
//! parallel, each once; and the offline check before a build.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cas_builder::sources::Mirrors;
use cas_format::Loaded;
use cas_store::Store;

use crate::commands::load::load_fetching;
use crate::commands::session::Session;
use crate::commands::source::{describe, fetcher};
use crate::exit::{CmdResult, Failure};

#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    /// Element files or element names: every source of their closure is fetched
    #[arg(required = true)]
    pub targets: Vec<PathBuf>,
}

/// Lines and progress bars on stderr: bars on a terminal, plain lines otherwise.
pub(crate) struct Out {
    bars: Option<indicatif::MultiProgress>,
}

impl Out {
    pub(crate) fn new() -> Out {
        let tty = std::io::stderr().is_terminal();
        Out {
            bars: tty.then(|| {
                indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
            }),
        }
    }

    pub(crate) fn line(&self, s: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    pub(crate) fn bar(&self, what: &str) -> indicatif::ProgressBar {
        let Some(m) = &self.bars else {
            return indicatif::ProgressBar::hidden();
        };
        let bar = m.add(indicatif::ProgressBar::new(0));
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {wide_msg} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

impl cas_builder::sources::FetchReporter for Out {
    fn started(&self, what: &str) -> Box<dyn cas_builder::sources::Progress + '_> {
        Box::new(Bar(self.bar(what)))
    }
    fn line(&self, text: &str) {
        Out::line(self, text);
    }
}

/// A progress bar that goes away when its download ends.
struct Bar(indicatif::ProgressBar);

impl cas_builder::sources::Progress for Bar {
    fn begin(&self, url: &str, total: Option<u64>) {
        cas_builder::sources::Progress::begin(&self.0, url, total);
    }
    fn position(&self, done: u64) {
        cas_builder::sources::Progress::position(&self.0, done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

pub(crate) fn run_fetch(global: &Session, args: FetchArgs) -> CmdResult {
    let loaded = load_fetching(global, &args.targets)?;
    let mirrors = global.mirrors(&loaded.project)?;
    let store = global.store()?;
    let fetcher = fetcher(&store, &mirrors)?;
    let sources = cas_builder::sources::distinct_sources(&loaded, &loaded.closure(&loaded.targets));
    let total = sources.len();
    let summary =
        cas_builder::sources::fetch_all(&store, &fetcher, &sources, global.jobs(), &Out::new());
    if global.json {
        let failures: Vec<_> = summary
            .failures
            .iter()
            .map(|(s, users, e)| serde_json::json!({"source": describe(s), "elements": users, "error": e.to_string()}))
            .collect();
        crate::json::print(
            &serde_json::json!({"sources": total, "fetched": summary.fetched, "cached": summary.cached, "failed": failures}),
        )?;
    }
    eprintln!(
        "{} sources: {} fetched, {} already cached, {} failed",
        total,
        summary.fetched,
        summary.cached,
        summary.failures.len()
    );
    // sources of kinds cas cannot fetch (BuildStream plugins' it lacks)
    let unsupported: Vec<&cas_format::Element> = loaded
        .closure(&loaded.targets)
        .into_iter()
        .map(|id| loaded.element(id))
        .filter(|e| !e.unsupported.is_empty())
        .collect();
    if summary.failures.is_empty() && unsupported.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for (s, users, e) in &summary.failures {
        eprintln!("error: {} (used by {}): {e}", describe(s), users.join(", "));
    }
    for e in unsupported {
        eprintln!(
            "error: {}: cannot be fetched: {}",
            e.name,
            e.unsupported.join("; ")
        );
    }
    Ok(ExitCode::from(1))
}

// ---------------------------------------------------------------- cas build

/// Before a build: [`cas_builder::run::preflight`], said as a failure (exit
/// 1) with what to do.
pub(crate) fn prepare_build(
    store: &Store,
    loaded: &Loaded,
    mirrors: &Mirrors,
    offline: bool,
) -> Result<(), Failure> {
    use cas_builder::run::Refusal;
    match cas_builder::run::preflight(store, loaded, mirrors, offline).map_err(Failure::error)? {
        None => Ok(()),
        Some(Refusal::Unbuildable(list)) => Err(Failure::failed(miette::miette!(
            help = "these sources need BuildStream plugins that cas does not implement; `cas show` still shows the elements",
            "{} element(s) cannot be built:\n{}",
            list.len(),
            list.iter()
                .map(|(e, why)| format!("  {e}: {why}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
        Some(Refusal::MissingOffline(missing)) => Err(Failure::failed(miette::miette!(
            help = "run `cas fetch TARGET...` while online, or add the files with `cas source add FILE...`",
            "offline: {} source(s) are not in the source cache:\n{}",
            missing.len(),
            missing
                .iter()
                .map(|(s, users)| format!("  {} (needed by {})", describe(s), users.join(", ")))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

// ---------------------------------------------------------------- cas source add

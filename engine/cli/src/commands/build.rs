//! `cas build`: build elements and everything below them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use cas_builder::{BuildOptions, Console};

use crate::commands::load::load_fetching;
use crate::commands::session::Session;
use crate::exit::{CmdResult, Failure};
use cas_builder::memo as noop;

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// Element files or element names
    #[arg(required = true)]
    pub targets: Vec<PathBuf>,
    /// Go on with everything that does not depend on a failed step
    #[arg(long, short = 'k')]
    pub keep_going: bool,
    /// Never use the network: a missing source is an error
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub remote: crate::commands::remotes::RemoteFlags,
    /// Run sandboxed steps on a REAPI Execution service (grpc://HOST:PORT[/INSTANCE]): buildbox-casd with a runner, BuildGrid; -j may exceed the local cores
    #[arg(long, value_name = "URL")]
    pub remote_exec: Option<String>,
    /// After the build: each built step's time by phase, the critical path and the cache-hit ratio (on stderr)
    #[arg(long)]
    pub timings: bool,
    /// Print every step's log as it is written, each line prefixed with the element's name
    #[arg(short = 'L', long)]
    pub print_logs: bool,
    /// `json-lines`: every event of the build (step started, its log, finished,
    /// failed, messages, the summary) as one JSON object per line on stdout
    #[arg(long, value_enum, default_value_t = crate::commands::events::MessageFormat::Human)]
    pub message_format: crate::commands::events::MessageFormat,
}

/// Set by SIGINT or SIGTERM: stop starting steps, kill the running sandboxes.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// The signal that set [`STOP`].
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// After SIGINT or SIGTERM, how long the build has to stop by itself
/// before cas exits anyway (128 + the signal): a wait that nothing can
/// interrupt (a remote, a hung file read) never keeps cas running.
const STOP_GRACE: Duration = Duration::from_secs(3);

extern "C" fn on_sigint(sig: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // A second signal: end now.
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    SIGNAL.store(sig, Ordering::SeqCst);
    // (downloads stop at their next chunk, waits on remotes at their next
    // tick: every remote was opened with STOP as its interrupt)
}

fn install_sigint() {
    // SAFETY: the handler only stores to atomics (or calls _exit), which is
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
    static WATCHDOG: std::sync::Once = std::sync::Once::new();
    WATCHDOG.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("cas-stop".into())
            .stack_size(64 << 10)
            .spawn(watchdog);
    });
}

/// Once [`STOP`] is set, give the build [`STOP_GRACE`] to end, then exit.
fn watchdog() {
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(STOP_GRACE);
    let sig = SIGNAL.load(Ordering::SeqCst);
    let msg = b"interrupted: something did not stop within 3 s of the signal (a remote, a file read); exiting now\n";
    // SAFETY: a write of a static buffer to stderr, then _exit: no lock is
    // taken, so no thread stuck holding one can keep cas from ending.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(128 + if sig == 0 { libc::SIGINT } else { sig });
    }
}

pub(crate) fn run_build(global: &Session, args: BuildArgs) -> CmdResult {
    let started = std::time::SystemTime::now();
    let json_lines = args.message_format == crate::commands::events::MessageFormat::JsonLines;
    if json_lines && global.json {
        return Err(crate::commands::remotes::invalid(
            "--json and --message-format json-lines both print on stdout: choose one".to_string(),
        ));
    }
    // The no-op fast path: unchanged files, every result here, no remote.
    let mut memo_options = global.options();
    if let Some(a) = &global.target_arch()? {
        // --arch changes every key: part of what a no-op depends on
        memo_options.push(("--arch".into(), a.clone()));
    }
    let memo = noop::key(&args.targets, &memo_options);
    if let Some(key) = &memo {
        if global
            .remotes(&args.remote, false)?
            .is_none_or(|r| r.is_empty())
        {
            let store = global.store()?;
            if let Some((report, targets)) = noop::try_noop(&store, key) {
                let console = Console::new(report.elements.len());
                let lines = json_lines.then(|| crate::commands::events::JsonLines::new(&console));
                let reporter: &dyn cas_builder::Reporter = match &lines {
                    Some(l) => l,
                    None => &console,
                };
                for e in &report.elements {
                    reporter.finished(&e.name, cas_builder::ElementStatus::Cached, None);
                }
                console.finish();
                if let Some(l) = &lines {
                    l.emit(&crate::commands::events::Event::Summary {
                        built: 0,
                        cached: report.cached,
                        pulled: 0,
                        failed: 0,
                        skipped: 0,
                        duration_ms: u64::try_from(console.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                    });
                }
                return conclude(global, &report, &console, &targets, true);
            }
        }
    }
    let loaded = load_fetching(global, &args.targets)?;
    let mirrors = global.mirrors(&loaded.project)?;
    let store = global.store()?;
    // bwrap is checked by the first step that needs a sandbox (a no-op
    // build never starts one).
    install_sigint();
    // Sources first: all missing ones named when offline, else fetched in parallel, each once.
    crate::commands::fetch::prepare_build(&store, &loaded, &mirrors, args.offline)?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let opts = BuildOptions {
        jobs: global.jobs(),
        max_jobs: cores,
        keep_going: args.keep_going,
        offline: args.offline,
        mirrors,
        rebuild: Default::default(),
        remotes: global.remotes(&args.remote, false)?,
        // results built from workspaces are pushed by `cas push` only
        push_workspaces: false,
        remote_exec: match &args.remote_exec {
            Some(url) => Some(std::sync::Arc::new(
                cas_reapi::ReapiRemote::open_with(
                    url,
                    &store.layout().reapi(),
                    &cas_reapi::connect::Options {
                        interrupt: cas_store::remote::Interrupt::on(&STOP),
                        ..Default::default()
                    },
                )
                .map_err(|e| crate::commands::remotes::invalid(format!("--remote-exec: {e}")))?,
            )),
            None => None,
        },
    };
    let total = loaded.closure(&loaded.targets).len();
    let console = Console::with_options(total, args.print_logs, global.color());
    let lines = (args.message_format == crate::commands::events::MessageFormat::JsonLines)
        .then(|| crate::commands::events::JsonLines::new(&console));
    let reporter: &dyn cas_builder::Reporter = match &lines {
        Some(l) => l,
        None => &console,
    };
    let report = cas_builder::build(&store, &loaded, &loaded.targets, &opts, reporter, &STOP)
        .map_err(Failure::error)?;
    console.finish();
    if let Some(l) = &lines {
        l.emit(&crate::commands::events::Event::Summary {
            built: report.built,
            cached: report.cached,
            pulled: report.pulled,
            failed: report.failed,
            skipped: report.skipped,
            duration_ms: u64::try_from(console.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    if let Some(key) = &memo {
        if !STOP.load(Ordering::SeqCst) {
            // the configuration file that was read, or the default one that may appear
            let config = global
                .config
                .clone()
                .or_else(cas_format::config::default_path);
            noop::record(
                &store,
                key,
                &loaded,
                &args.targets,
                config.as_deref(),
                &report,
                started,
            );
        }
    }
    let targets: Vec<String> = loaded
        .targets
        .iter()
        .map(|id| loaded.element(*id).name.clone())
        .collect();
    if args.timings {
        print_timings(&loaded, &report);
    }
    // cas ends after this: freeing the graph one string at a time (≈ 4 % of
    // the CPU of a no-op without the memo at 500 elements) only delays the exit
    std::mem::forget(loaded);
    conclude(global, &report, &console, &targets, false)
}

/// `--timings`: each built step's time by phase (longest first), the
/// critical path through the built steps (each weighted by its time, along
/// what it stages), and the cache-hit ratio.
fn print_timings(loaded: &cas_format::Loaded, report: &cas_builder::BuildReport) {
    // milliseconds below a second: a table of 0.0s says nothing
    let secs = |ms: u64| {
        if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{:.1}s", ms as f64 / 1000.0)
        }
    };
    let total = report.elements.len();
    let hits = report.cached + report.pulled;
    eprintln!(
        "timings: {} built, {} cached, {} pulled: cache hits {:.0}% ({hits} of {total})",
        report.built,
        report.cached,
        report.pulled,
        if total == 0 {
            0.0
        } else {
            hits as f64 * 100.0 / total as f64
        }
    );
    let mut built: Vec<&cas_builder::ElementReport> = report
        .elements
        .iter()
        .filter(|r| r.duration_ms.is_some())
        .collect();
    built.sort_by_key(|r| std::cmp::Reverse(r.duration_ms));
    let width = built.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    if !built.is_empty() {
        eprintln!(
            "  {:<width$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}",
            "step", "total", "lookup", "fetch", "run", "record"
        );
    }
    for r in &built {
        let p = r.phases.unwrap_or_default();
        eprintln!(
            "  {:<width$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}",
            r.name,
            secs(r.duration_ms.unwrap_or(0)),
            secs(p.lookup_ms),
            secs(p.fetch_ms),
            secs(p.run_ms),
            secs(p.record_ms)
        );
    }
    // the heaviest chain of built steps, in the closure's (dependency) order
    let time: std::collections::HashMap<&str, u64> = built
        .iter()
        .map(|r| (r.name.as_str(), r.duration_ms.unwrap_or(0)))
        .collect();
    let mut best: std::collections::HashMap<
        cas_format::ElementId,
        (u64, Option<cas_format::ElementId>),
    > = std::collections::HashMap::new();
    let closure = loaded.closure(&loaded.targets);
    for &id in &closure {
        let own = time
            .get(loaded.element(id).name.as_str())
            .copied()
            .unwrap_or(0);
        let below = loaded
            .staged(id)
            .into_iter()
            .filter_map(|d| best.get(&d).map(|(t, _)| (*t, d)))
            .max_by_key(|(t, _)| *t);
        let (t, prev) = match below {
            Some((t, d)) => (t + own, Some(d)),
            None => (own, None),
        };
        best.insert(id, (t, prev));
    }
    if let Some((&end, &(length, _))) = best.iter().max_by_key(|(_, (t, _))| *t) {
        if length > 0 {
            let mut chain = vec![end];
            while let Some(&(_, Some(prev))) = best.get(chain.last().unwrap_or(&end)) {
                chain.push(prev);
            }
            chain.reverse();
            let steps: Vec<String> = chain
                .iter()
                .filter_map(|id| {
                    let name = &loaded.element(*id).name;
                    time.get(name.as_str())
                        .map(|t| format!("{name} {}", secs(*t)))
                })
                .collect();
            eprintln!("critical path: {} = {}", steps.join(" -> "), secs(length));
        }
    }
}

/// Prints the report of a build (JSON on stdout, the summary and the
/// targets' outputs on stderr) and gives the exit code.
fn conclude(
    global: &Session,
    report: &cas_builder::BuildReport,
    console: &Console,
    targets: &[String],
    unchanged: bool,
) -> CmdResult {
    if global.json {
        let json = crate::json::to_string(report, false)?;
        println!("{json}");
    }
    let secs = console.elapsed().as_secs_f64();
    eprintln!(
        "{} in {secs:.1}s: {} built, {} cached, {} pulled, {} failed{}",
        if report.failed > 0 { "failed" } else { "done" },
        report.built,
        report.cached,
        report.pulled,
        report.failed,
        if report.skipped > 0 {
            format!(", {} not run", report.skipped)
        } else if unchanged {
            " (nothing read by the load changed since the last build)".to_owned()
        } else {
            String::new()
        },
    );
    crate::commands::remotes::print_summary(report);
    if STOP.load(Ordering::SeqCst) {
        eprintln!("interrupted: nothing was recorded for unfinished steps");
        // the shell's convention: 128 + the signal (130 for Ctrl-C)
        let sig = SIGNAL.load(Ordering::SeqCst);
        let sig = if sig == 0 { libc::SIGINT } else { sig };
        return Ok(ExitCode::from((128 + sig) as u8));
    }
    if report.failed > 0 || report.skipped > 0 {
        return Ok(ExitCode::from(1));
    }
    if !global.json {
        for name in targets {
            if let Some(row) = report.elements.iter().find(|r| &r.name == name) {
                eprintln!("{name}: output {}", row.output.as_deref().unwrap_or("-"));
                let empty = cas_store::TreeDigest::empty().to_hex();
                if row.output.as_deref() == Some(empty.as_str()) {
                    // a stack (or any element with no files): nothing to check out
                    eprintln!("  it has no files of its own (a stack groups what it depends on): a `compose` element with `build-depends: [{name}]` gathers them into one tree to check out");
                } else {
                    eprintln!("  see it with: cas checkout {name} DIR");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

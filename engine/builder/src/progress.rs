//! Progress on stderr: what runs, what waits, counts, elapsed time. A live
//! display on a terminal (indicatif), plain lines otherwise; off a terminal
//! (CI logs), a step that has said nothing for a while gets a line with how
//! long it has run and the last line of its log (spec/cli.md).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the console reporter is the terminal side of a build"
)]

use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cas_store::ActionKey;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::BuildError;
use crate::step::ElementStatus;

/// Receives the events of a run. Implementations must be thread-safe.
pub trait Reporter: Sync {
    fn started(&self, element: &str, key: &ActionKey);
    fn finished(&self, element: &str, status: ElementStatus, took: Option<Duration>);
    fn failed(&self, element: &str, error: &BuildError, log: &Path);
    fn message(&self, text: &str);
    /// Where a running step's log is being written.
    fn log_at(&self, _element: &str, _log: &Path) {}
    /// A step's log is complete (its directory is about to go).
    fn log_complete(&self, _element: &str) {}
}

/// Closures larger than this get no line per cached step.
const QUIET_CACHED_ABOVE: usize = 50;

/// The reporter used by `cas build`.
pub struct Console {
    start: Instant,
    total: usize,
    live: Option<Live>,
    state: Mutex<Counts>,
    /// Off a terminal: the running steps, for the heartbeat thread.
    running: Arc<Mutex<Vec<Running>>>,
    stop: Arc<AtomicBool>,
    /// `-L`: every step's log is printed as it is written.
    print_logs: bool,
    /// Status words in colour (`--color`, `NO_COLOR`).
    color: bool,
}

/// ANSI colours of the console's status words.
const GREEN: &str = "32";
const RED: &str = "1;31";
const DIM: &str = "2";

/// When the console uses colour (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (https://no-color.org).
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether stderr gets colour.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

/// A running step, as the heartbeat sees it.
struct Running {
    element: String,
    since: Instant,
    said: Instant,
    log: Option<PathBuf>,
    /// With `-L`: how much of the log was printed.
    printed: u64,
}

/// With `-L`: print what `r`'s log gained since last time, line by line,
/// each prefixed with the element's name (`all`: the last line even if it
/// has no newline yet, when the step is over).
fn print_new_lines(r: &mut Running, all: bool) {
    let Some(log) = &r.log else { return };
    let Ok(mut f) = std::fs::File::open(log) else {
        return;
    };
    if f.seek(SeekFrom::Start(r.printed)).is_err() {
        return;
    }
    let mut fresh = Vec::new();
    if f.take(1 << 20).read_to_end(&mut fresh).is_err() {
        return;
    }
    let upto = if all {
        fresh.len()
    } else {
        fresh.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    };
    for line in String::from_utf8_lossy(&fresh[..upto]).lines() {
        if !line.starts_with("#cas-failed-") {
            eprintln!("{}> {line}", r.element);
        }
    }
    r.printed += upto as u64;
}

/// Seconds of silence before a running step gets a line off a terminal:
/// `CAS_PROGRESS_INTERVAL`, default 30.
fn heartbeat_interval() -> Duration {
    std::env::var("CAS_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// The last line of a log worth showing (at most its last 4 KiB are read).
fn last_line(log: &Path) -> Option<String> {
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    text.lines()
        .rev()
        .map(str::trim_end)
        .find(|l| !l.is_empty() && !l.starts_with("#cas-failed-"))
        .map(|l| l.chars().take(200).collect())
}

struct Live {
    multi: MultiProgress,
    summary: ProgressBar,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

#[derive(Default)]
struct Counts {
    done: usize,
    built: usize,
    cached: usize,
    failed: usize,
    running: usize,
}

impl Console {
    pub fn new(total: usize) -> Console {
        Console::with_logs(total, false)
    }

    /// A console that also prints every step's log as it is written, each
    /// line prefixed with the element's name (`cas build -L`); the live
    /// display is off then, as the lines are the display.
    pub fn with_logs(total: usize, print_logs: bool) -> Console {
        Console::with_options(total, print_logs, ColorChoice::Auto)
    }

    /// [`Console::with_logs`], with colour as chosen.
    pub fn with_options(total: usize, print_logs: bool, color: ColorChoice) -> Console {
        let live = (std::io::stderr().is_terminal() && !print_logs).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let summary = multi.add(ProgressBar::new(total as u64));
            summary.set_style(
                ProgressStyle::with_template("{elapsed:>5} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            summary.enable_steady_tick(Duration::from_millis(200));
            Live {
                multi,
                summary,
                bars: Mutex::new(Vec::new()),
            }
        });
        let running: Arc<Mutex<Vec<Running>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        if live.is_none() {
            let (running, stop) = (running.clone(), stop.clone());
            let every = heartbeat_interval();
            let logs = print_logs;
            let _ = std::thread::Builder::new()
                .name("cas-heartbeat".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(250).min(every));
                        let mut steps = running
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if logs {
                            for r in steps.iter_mut() {
                                let before = r.printed;
                                print_new_lines(r, false);
                                if r.printed != before {
                                    r.said = Instant::now();
                                }
                            }
                        }
                        for r in steps.iter_mut().filter(|r| r.said.elapsed() >= every) {
                            r.said = Instant::now();
                            let last = r
                                .log
                                .as_deref()
                                .and_then(last_line)
                                .map(|l| format!(": {l}"))
                                .unwrap_or_default();
                            eprintln!(
                                "[{:>6.1}s] running {} for {:.0}s{last}",
                                start.elapsed().as_secs_f64(),
                                r.element,
                                r.since.elapsed().as_secs_f64()
                            );
                        }
                    }
                });
        }
        Console {
            start,
            total,
            live,
            state: Mutex::new(Counts::default()),
            running,
            stop,
            print_logs,
            color: color.enabled(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update_summary(&self, c: &Counts) {
        if let Some(live) = &self.live {
            live.summary.set_position(c.done as u64);
            live.summary.set_message(format!(
                "built {} · cached {} · failed {} · running {} · waiting {}",
                c.built,
                c.cached,
                c.failed,
                c.running,
                self.total.saturating_sub(c.done + c.running)
            ));
        }
    }

    /// `text` in an ANSI colour when the console has colour.
    fn paint(&self, colour: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{colour}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn line(&self, text: String) {
        match &self.live {
            Some(live) => live.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(live) = &self.live {
            live.summary.finish_and_clear();
        }
    }
}

impl Reporter for Console {
    fn started(&self, element: &str, key: &ActionKey) {
        let mut c = self.counts();
        c.running += 1;
        self.update_summary(&c);
        drop(c);
        self.running().push(Running {
            element: element.to_owned(),
            since: Instant::now(),
            said: Instant::now(),
            log: None,
            printed: 0,
        });
        let hex = key.to_hex();
        match &self.live {
            Some(live) => {
                let bar = live
                    .multi
                    .insert_before(&live.summary, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("building {element} [{}]", &hex[..12]));
                bar.enable_steady_tick(Duration::from_millis(120));
                live.bars
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((element.to_owned(), bar));
            }
            None => eprintln!(
                "[{:>6.1}s] building {element} [{}]",
                self.start.elapsed().as_secs_f64(),
                &hex[..12]
            ),
        }
    }

    fn finished(&self, element: &str, status: ElementStatus, took: Option<Duration>) {
        {
            let mut running = self.running();
            if self.print_logs {
                for r in running.iter_mut().filter(|r| r.element == element) {
                    print_new_lines(r, true);
                }
            }
            running.retain(|r| r.element != element);
        }
        let mut c = self.counts();
        c.done += 1;
        match status {
            ElementStatus::Built => {
                c.built += 1;
                c.running = c.running.saturating_sub(1);
            }
            ElementStatus::Cached | ElementStatus::Pulled => c.cached += 1,
            ElementStatus::Failed => {
                c.failed += 1;
                c.running = c.running.saturating_sub(1);
            }
            ElementStatus::Skipped => {}
        }
        self.update_summary(&c);
        drop(c);
        if let Some(live) = &self.live {
            let mut bars = live
                .bars
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(i) = bars.iter().position(|(n, _)| n == element) {
                let (_, bar) = bars.remove(i);
                bar.finish_and_clear();
            }
        }
        // On large closures, cached steps only count: a line each would drown
        // what was actually built.
        if status == ElementStatus::Cached && self.total > QUIET_CACHED_ABOVE {
            return;
        }
        let took = took
            .map(|d| format!(" in {:.1}s", d.as_secs_f64()))
            .unwrap_or_default();
        let word = format!("{:<7}", status.name());
        let word = match status {
            ElementStatus::Built => self.paint(GREEN, &word),
            ElementStatus::Failed => self.paint(RED, &word),
            ElementStatus::Cached | ElementStatus::Pulled => self.paint(DIM, &word),
            ElementStatus::Skipped => word,
        };
        self.line(format!(
            "[{:>6.1}s] {word} {element}{took}",
            self.start.elapsed().as_secs_f64(),
        ));
    }

    fn failed(&self, element: &str, error: &BuildError, log: &Path) {
        let mut text = format!("{} {error}\n", self.paint(RED, "error:"));
        if let Ok(mut f) = std::fs::File::open(log) {
            // its last 256 KiB are enough for 20 lines (a log of any size)
            let len = f.metadata().map_or(0, |m| m.len());
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 << 10)));
            let mut raw = Vec::new();
            let _ = f.read_to_end(&mut raw);
            // the driver's own marker lines are for cas, not for people
            let shown = crate::builddir::log_for_people(&String::from_utf8_lossy(&raw));
            let lines: Vec<&str> = shown.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            if !tail.is_empty() {
                let what = match tail.len() {
                    1 => "the last line".to_string(),
                    n => format!("the last {n} lines"),
                };
                text.push_str(&format!("--- {what} of the log of {element}:\n"));
                for l in tail {
                    text.push_str(&format!("  | {l}\n"));
                }
            }
        }
        text.push_str(&format!(
            "--- full log: {}\n--- build directory kept: {} (cas shell --failed)",
            log.display(),
            log.parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
        self.line(text);
    }

    fn message(&self, text: &str) {
        self.line(text.to_owned());
    }

    fn log_complete(&self, element: &str) {
        if self.print_logs {
            for r in self.running().iter_mut().filter(|r| r.element == element) {
                print_new_lines(r, true);
            }
        }
    }

    fn log_at(&self, element: &str, log: &Path) {
        if let Some(r) = self.running().iter_mut().find(|r| r.element == element) {
            r.log = Some(log.to_owned());
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A reporter that says nothing (planning, explain, shell).
pub struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &str, _: &ActionKey) {}
    fn finished(&self, _: &str, _: ElementStatus, _: Option<Duration>) {}
    fn failed(&self, _: &str, _: &BuildError, _: &Path) {}
    fn message(&self, _: &str) {}
}

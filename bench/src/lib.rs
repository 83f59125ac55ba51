//! `cas-bench`: a synthetic project generator and a benchmark runner that
//! drives the `cas` binary as a black box and measures every case against a
//! baseline in the same run. See BENCHMARKS.md at the repository root.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the benchmark tools report on the terminal"
)]

pub mod bst;
pub mod buildgrid;
pub mod cases;
pub mod gen;
pub mod peers;
pub mod remote_exec;
pub mod report;
pub mod util;

use std::path::PathBuf;
use std::time::Instant;

pub use cases::Mode;
use report::Report;

/// The one documented command that regenerates BENCHMARKS.md.
pub const COMMAND: &str = "cargo run --release -p cas-bench -- --out BENCHMARKS.md";

pub struct Config {
    pub cas: PathBuf,
    pub work: PathBuf,
    pub mode: Mode,
    /// Case ids to run (empty: all): see [`CASES`].
    pub only: Vec<String>,
    pub command: String,
    pub quiet: bool,
}

pub const CASES: [&str; 11] = [
    "load",
    "cold",
    "noop",
    "cutoff",
    "remote",
    "sysroot",
    "view",
    "ingest",
    "bst",
    "peers",
    "remote-exec",
];

/// Runs the selected cases and returns the report.
pub fn run(cfg: &Config) -> Result<Report, String> {
    if !cfg.cas.is_file() {
        return Err(format!(
            "the cas binary {} does not exist: build it first (`cargo build --release -p cas`, or \
             `cargo build -p cas` for the debug binary)",
            cfg.cas.display()
        ));
    }
    for tool in ["bwrap", "rsync", "b3sum", "cp"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            return Err(format!("`{tool}` is needed for the baselines (Debian packages: bubblewrap, rsync, b3sum, coreutils)"));
        }
    }
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.work)
        .map_err(|e| format!("creating {}: {e}", cfg.work.display()))?;
    std::fs::create_dir_all(cfg.work.join("home")).map_err(|e| e.to_string())?;
    let machine = util::machine(&cfg.work);
    let quiet = cfg.quiet;
    // Freeze the binary for the run: a rebuild of target/ meanwhile cannot change it.
    let frozen = cfg.work.join("bin/cas");
    std::fs::create_dir_all(cfg.work.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(&cfg.cas, &frozen).map_err(|e| format!("copying {}: {e}", cfg.cas.display()))?;
    let env = cases::Env {
        cas: util::abs(&frozen),
        work: util::abs(&cfg.work),
        mode: cfg.mode,
        plan: cases::Plan::for_mode(cfg.mode),
        nproc: machine.nproc,
        log: Box::new(move |s| {
            if !quiet {
                eprintln!("cas-bench: {s}");
            }
        }),
    };
    let want = |id: &str| cfg.only.is_empty() || cfg.only.iter().any(|o| o == id);
    let mut out = vec![];
    if want("load") {
        out.push(cases::load(&env)?);
    }
    if want("cold") || want("noop") || want("cutoff") || want("remote") {
        let (cold, built) = cases::cold(&env)?;
        if want("cold") {
            out.push(cold);
        }
        if want("noop") {
            out.push(cases::noop(&env, &built)?);
        }
        if want("cutoff") {
            out.push(cases::cutoff(&env, &built)?);
        }
        if want("remote") {
            out.push(cases::remote(&env, &built)?);
        }
    }
    if want("sysroot") {
        out.push(cases::sysroot(&env)?);
    }
    if want("view") || want("ingest") {
        let big = cases::big_tree(&env)?;
        if want("view") {
            out.push(cases::materialise(&env, &big)?);
        }
        if want("ingest") {
            out.push(cases::ingest(&env, &big)?);
        }
        util::force_remove(&big.dir)?;
    }
    if want("bst") {
        out.push(bst::bst(&env)?);
    }
    if want("peers") {
        out.push(peers::peers(&env)?);
    }
    if want("remote-exec") {
        out.push(remote_exec::remote_exec(&env)?);
    }
    let mut machine = machine;
    machine.load_after = util::loadavg();
    let load1 = |s: &str| {
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let shared = load1(&machine.load_before).max(load1(&machine.load_after)) >= 0.5;
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    Ok(Report {
        mode: cfg.mode.name().into(),
        command: cfg.command.clone(),
        date: util::today(),
        revision,
        cas: cfg.cas.display().to_string(),
        machine,
        duration_s: started.elapsed().as_secs_f64(),
        cases: out,
        pending: vec![],
        shared_note: shared,
        // Hand-written profile of the misses, kept across regenerations.
        // The debian-system example's figures (bench/debian-system.sh) and
        // the loads of real BuildStream projects (bench/bst-projects.sh) and
        // the workspace loop (bench/workspace.sh) and cross-building
        // (bench/cross.sh) too.
        notes: {
            let read = |f: &str| {
                std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
                    .ok()
            };
            let parts: Vec<String> = [
                "NOTES.md",
                "SYSTEM.md",
                "BST-PROJECTS.md",
                "WORKSPACE.md",
                "CROSS.md",
            ]
            .iter()
            .filter_map(|f| read(f))
            .map(|t| t.trim_end().to_string())
            .collect();
            (!parts.is_empty()).then(|| parts.join("\n\n"))
        },
    })
}

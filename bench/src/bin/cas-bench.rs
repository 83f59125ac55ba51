//! `cas-bench [--quick | --smoke] [--out FILE] [--cas PATH] [--work DIR] [--keep] [--only CASE,...]`
//!
//! Runs the benchmark cases against the `cas` binary (default: the release
//! binary next to this one, rebuilt first when run through cargo) and writes
//! the markdown report to FILE (default: stdout).
//!
//! Needs bwrap, rsync, b3sum and busybox-static; the `peers` case also needs
//! Nix and Bazel (`apt-get install nix-bin bazel-bootstrap`), `bst`
//! BuildStream 2.8.1 (installed from PyPI into the work directory, or
//! `CAS_BENCH_BST`). A case whose tool is missing says so and measures nothing.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the benchmark tools report on the terminal"
)]

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!(
        "usage: cas-bench [--quick | --smoke] [--out FILE] [--cas PATH] [--work DIR] [--keep] [--only CASE,...]\n\
         cases: {}\nregenerate BENCHMARKS.md with: {}",
        cas_bench::CASES.join(", "),
        cas_bench::COMMAND
    );
    std::process::exit(2)
}

fn main() {
    let mut mode = cas_bench::Mode::Full;
    let (mut out, mut cas, mut work, mut keep, mut only) = (None, None, None, false, vec![]);
    let mut args = std::env::args().skip(1);
    let mut shown = vec![];
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("cas-bench: {name} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--quick" => {
                mode = cas_bench::Mode::Quick;
                shown.push(a.clone());
            }
            "--smoke" => {
                mode = cas_bench::Mode::Smoke;
                shown.push(a.clone());
            }
            "--out" => {
                let v = value("--out");
                shown.push(format!("--out {v}"));
                out = Some(PathBuf::from(v));
            }
            "--cas" => cas = Some(PathBuf::from(value("--cas"))),
            "--work" => work = Some(PathBuf::from(value("--work"))),
            "--keep" => keep = true,
            "--only" => {
                let v = value("--only");
                shown.push(format!("--only {v}"));
                only = v.split(',').map(str::to_owned).collect();
            }
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("cas-bench: unknown argument {a}");
                usage()
            }
        }
    }
    for o in &only {
        if !cas_bench::CASES.contains(&o.as_str()) {
            eprintln!("cas-bench: unknown case {o}");
            usage()
        }
    }
    let cas = cas.unwrap_or_else(default_cas);
    let work = work
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cas-bench-{}", std::process::id())));
    let command = format!("cargo run --release -p cas-bench -- {}", shown.join(" "));
    let cfg = cas_bench::Config {
        cas,
        work: work.clone(),
        mode,
        only,
        command,
        quiet: false,
    };
    let result = cas_bench::run(&cfg);
    if !keep {
        let _ = cas_bench::util::force_remove(&work);
    }
    match result {
        Ok(report) => {
            let md = report.markdown();
            match out {
                Some(p) => {
                    std::fs::write(&p, &md).unwrap_or_else(|e| {
                        eprintln!("cas-bench: cannot write {}: {e}", p.display());
                        std::process::exit(1)
                    });
                    eprintln!(
                        "cas-bench: wrote {} ({:.0} s)",
                        p.display(),
                        report.duration_s
                    );
                }
                None => print!("{md}"),
            }
        }
        Err(e) => {
            eprintln!("cas-bench: {e}");
            std::process::exit(1)
        }
    }
}

/// The `cas` next to this executable. When run through cargo (`CARGO` is set),
/// it is (re)built first with the same profile, so the one command is enough.
fn default_cas() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir").to_owned();
    if let Ok(cargo) = std::env::var("CARGO") {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut c = std::process::Command::new(cargo);
        c.args(["build", "-p", "cas"]);
        if release {
            c.arg("--release");
        }
        eprintln!(
            "cas-bench: building cas ({})",
            if release { "release" } else { "debug" }
        );
        match c.status() {
            Ok(s) if s.success() => {}
            other => {
                eprintln!("cas-bench: building cas failed: {other:?}");
                std::process::exit(1)
            }
        }
    }
    dir.join("cas")
}

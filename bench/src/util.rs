//! Process helpers, timing, statistics and the machine description.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// Runs a command to completion, capturing output; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<(Duration, Output)> {
    let shown = format!("{cmd:?}");
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let d = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout)),
            tail(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    Ok((d, out))
}

/// Runs a command with stdout and stderr discarded (no pipe reading in the
/// timed path); fails on a non-zero exit.
pub fn run_quiet(cmd: &mut Command) -> Result<Duration> {
    let shown = format!("{cmd:?}");
    let t = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let d = t.elapsed();
    if !status.success() {
        // Rerun with output for the message.
        return run(cmd)
            .map(|(d, _)| d)
            .map_err(|e| format!("{shown} failed ({status}); rerun: {e}"));
    }
    Ok(d)
}

/// Runs a command and returns its wall time and the peak RSS (KiB) of that
/// child from `wait4`.
pub fn run_peak_rss(cmd: &mut Command) -> Result<(Duration, u64, String)> {
    let shown = format!("{cmd:?}");
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: plain wait4 on our own child; `usage` is a valid out pointer.
    let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let d = t.elapsed();
    if r != pid {
        return Err(format!(
            "wait4 on {shown} failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("{shown} failed (wait status {status})"));
    }
    Ok((d, usage.ru_maxrss as u64, text))
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(30);
    lines[from..].join("\n")
}

pub fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Removes a tree even where directories were made read-only (views).
pub fn force_remove(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(path)
        .status();
    std::fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

pub fn abs(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir().unwrap().join(p)
    }
}

/// Median, min and max of samples (milliseconds or any unit).
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stats(samples: &[f64]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    };
    Some(Stats {
        median,
        min: s[0],
        max: s[n - 1],
        n,
    })
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `setup` (untimed) then `timed` `warmup + reps` times; returns the
/// timed samples of the last `reps` runs (milliseconds).
pub fn measure(
    warmup: usize,
    reps: usize,
    mut setup: impl FnMut(usize) -> Result<()>,
    mut timed: impl FnMut(usize) -> Result<Duration>,
) -> Result<Vec<f64>> {
    let mut out = vec![];
    for i in 0..warmup + reps {
        setup(i)?;
        let d = timed(i)?;
        if i >= warmup {
            out.push(ms(d));
        }
    }
    Ok(out)
}

/// The machine the figures come from.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub cpu: String,
    pub nproc: usize,
    pub memory: String,
    pub kernel: String,
    pub os: String,
    pub filesystem: String,
    pub load_before: String,
    pub load_after: String,
    pub tools: Vec<(String, String)>,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn machine(work: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned());
    let nproc = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("PRETTY_NAME="))
        .map(|l| {
            l.trim_start_matches("PRETTY_NAME=")
                .trim_matches('"')
                .to_owned()
        })
        .unwrap_or_default();
    // Filesystem of the work directory: the longest mount point that prefixes it.
    let work = abs(work);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        if work.starts_with(f[1]) && best.as_ref().is_none_or(|(n, _)| f[1].len() > *n) {
            best = Some((f[1].len(), format!("{} on `{}` ({})", f[2], f[1], f[0])));
        }
    }
    let mut tools = vec![];
    for (name, args) in [
        ("bwrap", "--version"),
        ("rsync", "--version"),
        ("b3sum", "--version"),
        ("cp", "--version"),
    ] {
        let v = Command::new(name).arg(args).output().ok().map_or_else(
            || "missing".into(),
            |o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            },
        );
        tools.push((name.to_owned(), v));
    }
    Machine {
        cpu,
        nproc,
        memory,
        kernel,
        os,
        filesystem: best.map_or_else(|| "unknown".into(), |b| b.1),
        load_before: loadavg(),
        load_after: String::new(),
        tools,
    }
}

pub fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

//! `peers`: cas, Nix and Bazel side by side, in the same run, on the same
//! generated DAG as the BuildStream comparison (`bst`): the trivial project
//! of `cold` (N elements, 10 layers, up to 3 dependencies each, plus the
//! busybox base), written three times.
//!
//! - cas: the generated `all.yaml` (gen.rs).
//! - Nix: `nix/default.nix` and one `nix/elements/lNN/eNNNNN.nix` per
//!   element: `builtins.derivation`s whose builder is the same static busybox
//!   (the `files/base` tree imported with `builtins.path`), running the same
//!   commands with `$out` as the install root. Built twice: input-addressed
//!   (default Nix) and with `--arg ca true` (every derivation
//!   `__contentAddressed`, the `ca-derivations` experimental feature, Nix's
//!   early cutoff), each into a private chroot store (`--store DIR`).
//! - Bazel: `bazel/`, an empty `WORKSPACE`, one package `lNN/eNNNNN` per
//!   element holding a `genrule` that runs the same commands through the same
//!   busybox (a tool input) with `$(RULEDIR)` as the install root, its
//!   dependencies as `srcs`; `//:everything` is a filegroup of all.
//!
//! Install (Debian 12, as root; no network is needed to run them):
//! `apt-get install nix-bin bazel-bootstrap`. When a tool is missing the case
//! says so and measures nothing; nothing is reported as met.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::cases::{json_of, Env, Mode};
use crate::gen::{self, GenOptions, Generated};
use crate::report::{Case, Unit};
use crate::util::{force_remove, ms, run, run_peak_rss, Result};

/// The pause before each timed run of the warm cases: what a tool still
/// does after its command returned (Bazel's server, a JVM, collecting and
/// compiling; Nix's daemon-less store writes) is not charged to the next
/// tool's run on the same two cores.
const QUIET: Duration = Duration::from_millis(300);

/// After [`QUIET`], the pause goes on until the machine is idle (under
/// [`IDLE_BUSY`] of its CPU time busy over a [`IDLE_WINDOW`]), at most
/// [`IDLE_MAX`] more: a JVM still compiling 0.3 s after Bazel's command
/// returned would otherwise share the cores with the next tool's run.
const IDLE_WINDOW: Duration = Duration::from_millis(100);
const IDLE_BUSY: f64 = 0.05;
const IDLE_MAX: Duration = Duration::from_secs(5);

/// How the pauses went: pauses, those that waited past [`QUIET`] for the
/// machine to be idle, the longest wait past it (ms), and those that gave
/// up at [`IDLE_MAX`].
static PAUSES: std::sync::Mutex<(usize, usize, u128, usize)> = std::sync::Mutex::new((0, 0, 0, 0));

/// Busy and total CPU time of the machine so far (`/proc/stat`, jiffies).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

fn quiet() {
    std::thread::sleep(QUIET);
    let start = std::time::Instant::now();
    let mut gave_up = false;
    while let Some((b0, t0)) = cpu_times() {
        std::thread::sleep(IDLE_WINDOW);
        let Some((b1, t1)) = cpu_times() else { break };
        if t1 > t0 && ((b1 - b0) as f64) / ((t1 - t0) as f64) < IDLE_BUSY {
            break;
        }
        if start.elapsed() > IDLE_MAX {
            gave_up = true;
            break;
        }
    }
    // one window is the least a pause waits past QUIET
    let waited = start.elapsed().saturating_sub(IDLE_WINDOW).as_millis();
    let mut p = PAUSES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    p.0 += 1;
    if waited > 20 {
        p.1 += 1;
    }
    p.2 = p.2.max(waited);
    p.3 += usize::from(gave_up);
}

/// Sizes measured per mode: elements, repetitions of the warm cases, of the
/// leaf change (five in a full run: two gave 63 and 90 ms for the same
/// binary), and of the cold builds (five in a full run: three gave 2.2, 3.5
/// and 5.0 s for cas on this machine, where alternated runs on a quiet
/// machine give 1.75–1.9 s with an outlier of 4.5–5.4 s in one run of four).
fn plan(mode: Mode) -> Option<(usize, usize, usize, usize)> {
    match mode {
        Mode::Full => Some((500, 5, 5, 5)),
        Mode::Quick => Some((50, 3, 2, 1)),
        Mode::Smoke => None,
    }
}

// ---------------------------------------------------------------- generation

/// The files element `i` installs, relative to the install root (what the
/// commands of `gen::commands` write).
pub fn outputs(o: &GenOptions, i: usize, changed: bool) -> Vec<String> {
    let dir = format!("usr/share/bench/e{i:05}");
    let mut v: Vec<String> = if o.files == 1 {
        vec![format!("{dir}/f0")]
    } else {
        (0..o.files).map(|k| format!("{dir}/f{k}")).collect()
    };
    if changed && o.change_round > 0 {
        v.push(format!("{dir}/changed"));
    }
    v
}

/// A Nix string literal.
fn nix_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${")
            .replace('\n', "\\n")
    )
}

/// The Nix file of element `i`: a function of the fixpoint of all elements.
pub fn nix_element(o: &GenOptions, i: usize, deps: &[usize], changed: bool) -> String {
    let script = gen::commands(o, i, "$out/usr/share", changed).join("\n");
    let deps: Vec<String> = deps.iter().map(|d| format!("self.e{d:05}")).collect();
    format!(
        "self: self.mk {{\n  name = \"e{i:05}\";\n  deps = [ {} ];\n  script = {};\n}}\n",
        deps.join(" "),
        nix_str(&script)
    )
}

/// Writes `nix/` under `root` (which holds the cas project and `files/base`).
pub fn generate_nix(root: &Path, o: &GenOptions, g: &Generated) -> std::io::Result<()> {
    let dir = root.join("nix");
    let n = o.elements;
    for i in 0..n {
        let f = dir.join("elements").join(nix_file(g, i));
        std::fs::create_dir_all(f.parent().expect("element dir"))?;
        std::fs::write(f, nix_element(o, i, &g.deps[i], g.changed.contains(&i)))?;
    }
    let mut d = String::from(
        "# Generated by cas-bench (bench/src/peers.rs): the DAG of ../elements for Nix.\n\
         { ca ? false }:\n\
         let\n  \
         base = builtins.path { path = ../files/base; name = \"base\"; };\n  \
         mk = { name, deps, script }: derivation ({\n    \
         inherit name deps;\n    \
         system = builtins.currentSystem;\n    \
         builder = \"${base}/bin/sh\";\n    \
         args = [ \"-e\" \"-c\" script ];\n    \
         PATH = \"${base}/bin\";\n  \
         } // (if ca then {\n    \
         __contentAddressed = true;\n    \
         outputHashMode = \"recursive\";\n    \
         outputHashAlgo = \"sha256\";\n  \
         } else { }));\n  \
         self = {\n    inherit mk;\n",
    );
    for i in 0..n {
        d.push_str(&format!(
            "    e{i:05} = import ./elements/{} self;\n",
            nix_file(g, i)
        ));
    }
    d.push_str("  };\nin [\n");
    for i in 0..n {
        d.push_str(&format!("  self.e{i:05}\n"));
    }
    d.push_str("]\n");
    std::fs::write(dir.join("default.nix"), d)
}

fn nix_file(g: &Generated, i: usize) -> String {
    g.names[i].replace(".yaml", ".nix")
}

/// A Starlark string literal.
fn star_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The Bazel package of element `i` (`lNN/eNNNNN`).
fn bazel_pkg(g: &Generated, i: usize) -> String {
    g.names[i].trim_end_matches(".yaml").to_owned()
}

/// The `BUILD.bazel` of element `i`: one genrule running each command as
/// `busybox sh -e -c`, installing under `$(RULEDIR)`.
pub fn bazel_element(
    o: &GenOptions,
    g: &Generated,
    i: usize,
    deps: &[usize],
    changed: bool,
) -> String {
    const DEST: &str = "@@DEST@@";
    let cmds: Vec<String> = gen::commands(o, i, DEST, changed)
        .iter()
        .map(|c| {
            // `$` is Make-variable syntax in a genrule's cmd: `$$` is a `$`.
            let c = c.replace('$', "$$").replace(DEST, "$(RULEDIR)/usr/share");
            format!(
                "$(execpath //base:busybox) sh -e -c '{}'",
                c.replace('\'', "'\\''")
            )
        })
        .collect();
    let srcs: Vec<String> = deps
        .iter()
        .map(|&d| star_str(&format!("//{}", bazel_pkg(g, d))))
        .collect();
    let outs: Vec<String> = outputs(o, i, changed).iter().map(|s| star_str(s)).collect();
    format!(
        "genrule(\n    name = \"e{i:05}\",\n    srcs = [{}],\n    outs = [{}],\n    \
         tools = [\"//base:busybox\"],\n    cmd = {},\n    \
         visibility = [\"//visibility:public\"],\n)\n",
        srcs.join(", "),
        outs.join(", "),
        star_str(&cmds.join(" && "))
    )
}

/// Writes `bazel/` (the workspace) under `root`.
pub fn generate_bazel(root: &Path, o: &GenOptions, g: &Generated) -> std::io::Result<()> {
    let dir = root.join("bazel");
    std::fs::create_dir_all(dir.join("base"))?;
    std::fs::write(dir.join("WORKSPACE"), "")?;
    let bb = dir.join("base/busybox");
    if !bb.exists() {
        std::fs::copy(root.join("files/base/bin/busybox"), &bb)?;
    }
    std::fs::write(
        dir.join("base/BUILD.bazel"),
        "exports_files([\"busybox\"], visibility = [\"//visibility:public\"])\n",
    )?;
    let mut all = String::from("filegroup(\n    name = \"everything\",\n    srcs = [\n");
    for i in 0..o.elements {
        let pkg = dir.join(bazel_pkg(g, i));
        std::fs::create_dir_all(&pkg)?;
        std::fs::write(
            pkg.join("BUILD.bazel"),
            bazel_element(o, g, i, &g.deps[i], g.changed.contains(&i)),
        )?;
        all.push_str(&format!("        \"//{}\",\n", bazel_pkg(g, i)));
    }
    all.push_str("    ],\n)\n");
    std::fs::write(dir.join("BUILD.bazel"), all)
}

/// The leaf's comment changed in all three projects.
fn set_leaf_comment_all(root: &Path, o: &GenOptions, g: &Generated, comment: &str) -> Result<()> {
    let mut o = o.clone();
    o.leaf_comment = comment.to_owned();
    let changed = g.changed.contains(&0);
    let e = |e: std::io::Error| e.to_string();
    gen::set_leaf_comment(g, &o, comment).map_err(e)?;
    std::fs::write(
        root.join("nix/elements").join(nix_file(g, 0)),
        nix_element(&o, 0, &g.deps[0], changed),
    )
    .map_err(e)?;
    std::fs::write(
        root.join("bazel").join(bazel_pkg(g, 0)).join("BUILD.bazel"),
        bazel_element(&o, g, 0, &g.deps[0], changed),
    )
    .map_err(e)
}

/// Appends a comment line to `p` (YAML, Nix and Starlark all take `# ...`):
/// new bytes, the same meaning. Returns the bytes before.
fn add_comment(p: &Path, comment: &str) -> Result<Vec<u8>> {
    let before = std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
    let mut after = before.clone();
    if !after.ends_with(b"\n") {
        after.push(b'\n');
    }
    after.extend_from_slice(format!("# {comment}\n").as_bytes());
    std::fs::write(p, after).map_err(|e| format!("writing {}: {e}", p.display()))?;
    Ok(before)
}

/// `touch`: a new mtime (and ctime), the same bytes.
fn touch(p: &Path) -> Result<()> {
    std::fs::File::options()
        .write(true)
        .open(p)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .map_err(|e| format!("touching {}: {e}", p.display()))
}

// ---------------------------------------------------------------- tools

/// The version of a Debian package, if installed.
fn deb_version(pkg: &str) -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", pkg])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    (o.status.success() && !v.is_empty()).then_some(v)
}

fn first_line(cmd: &mut Command) -> Option<String> {
    let o = cmd.output().ok()?;
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    })
}

struct Nix {
    conf: PathBuf,
    home: PathBuf,
    dir: PathBuf,
    jobs: String,
}

impl Nix {
    /// `nix-build`/`nix-instantiate` with the private configuration, into
    /// the chroot store `store`.
    fn cmd(&self, tool: &str, store: &Path, ca: bool) -> Command {
        let mut c = Command::new(tool);
        c.current_dir(&self.dir)
            .env("NIX_CONF_DIR", &self.conf)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env_remove("NIX_REMOTE")
            .env_remove("NIX_PATH")
            .arg("--store")
            .arg(store)
            .args([
                "--option",
                "sandbox",
                "true",
                "--option",
                "substituters",
                "",
            ]);
        if tool == "nix-build" {
            c.args(["--max-jobs", &self.jobs, "--no-out-link"]);
        }
        if ca {
            c.args([
                "--extra-experimental-features",
                "ca-derivations",
                "--arg",
                "ca",
                "true",
            ]);
        }
        c.arg("default.nix");
        c
    }
}

struct Bazel {
    dir: PathBuf,
    root: PathBuf,
    home: PathBuf,
    disk: PathBuf,
    jobs: String,
}

impl Bazel {
    fn cmd(&self, verb: &str) -> Command {
        let mut c = Command::new("bazel");
        c.current_dir(&self.dir)
            .env("HOME", &self.home)
            .arg(format!("--output_user_root={}", self.root.display()))
            .args(["--max_idle_secs=900", "--nohome_rc", verb])
            .args(["--color=no", "--curses=no"]);
        c
    }
    fn build(&self) -> Command {
        let mut c = self.cmd("build");
        c.args([
            "--spawn_strategy=linux-sandbox",
            &format!("--jobs={}", self.jobs),
            &format!("--disk_cache={}", self.disk.display()),
            "--nosandbox_debug",
            "--symlink_prefix=/",
            "//:everything",
        ]);
        c
    }
    fn info(&self, key: &str) -> Result<String> {
        let (_, out) = run(self.cmd("info").arg(key))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// Shuts the Bazel server down when the case ends, however it ends.
struct BazelServer<'a>(&'a Bazel);

impl Drop for BazelServer<'_> {
    fn drop(&mut self) {
        let _ = self.0.cmd("shutdown").output();
    }
}

/// Sandboxed processes Bazel ran, from its summary line (`INFO: 3 processes:
/// 1 internal, 2 linux-sandbox.`); 0 when it ran none.
fn bazel_spawns(stderr: &str) -> f64 {
    stderr
        .lines()
        .filter(|l| l.contains(" process"))
        .filter_map(|l| {
            l.split([':', ','])
                .find(|p| p.trim_end_matches('.').ends_with(" linux-sandbox"))
                .and_then(|p| p.split_whitespace().next()?.parse::<f64>().ok())
        })
        .next_back()
        .unwrap_or(0.0)
}

/// Derivations Nix built (`building '/nix/store/…drv'...` lines).
fn nix_builds(stderr: &str) -> f64 {
    stderr
        .lines()
        .filter(|l| l.starts_with("building '"))
        .count() as f64
}

/// VmHWM of a process (its peak RSS so far), KiB.
fn vm_hwm(pid: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Network interfaces other than loopback in this process's network
/// namespace (`/proc/self/net/dev`; `/sys/class/net` shows the namespace
/// sysfs was mounted in). The comparison is meant to run in a namespace
/// with loopback only: `unshare -n`.
fn network_interfaces() -> Vec<String> {
    let Ok(t) = std::fs::read_to_string("/proc/self/net/dev") else {
        return vec!["(unknown: /proc/self/net/dev unreadable)".into()];
    };
    t.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && n != "lo")
        .collect()
}

// ---------------------------------------------------------------- verification

/// Every regular file and symlink under `dir`, by relative path.
fn files_of(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let p = e.path();
            let t = e.file_type()?;
            let rel = p
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            if t.is_dir() {
                walk(base, &p, out)?;
            } else if t.is_symlink() {
                let target = std::fs::read_link(&p)?;
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else {
                out.insert(rel, std::fs::read(&p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    Ok(out)
}

/// Compares each tool's output of every element with cas's; returns the
/// number of identical elements and the first differences.
fn compare(
    want: &[BTreeMap<String, Vec<u8>>],
    got: &[Option<PathBuf>],
    tool: &str,
    diffs: &mut Vec<String>,
) -> Result<usize> {
    let mut same = 0;
    for (i, w) in want.iter().enumerate() {
        let Some(dir) = got.get(i).and_then(Option::as_ref) else {
            if diffs.len() < 5 {
                diffs.push(format!("{tool}: no output for e{i:05}"));
            }
            continue;
        };
        let g = files_of(dir)?;
        if &g == w {
            same += 1;
        } else if diffs.len() < 5 {
            let a: Vec<&String> = w.keys().collect();
            let b: Vec<&String> = g.keys().collect();
            diffs.push(format!(
                "{tool}: e{i:05} differs (cas: {a:?}; {tool}: {b:?} in {})",
                dir.display()
            ));
        }
    }
    Ok(same)
}

/// Nix's output paths of a build (stdout, one per element in order) as
/// directories of the chroot store.
fn nix_outputs(stdout: &[u8], store: &Path, n: usize) -> Result<Vec<Option<PathBuf>>> {
    let text = String::from_utf8_lossy(stdout);
    let paths: Vec<&str> = text.lines().filter(|l| l.starts_with('/')).collect();
    if paths.len() != n {
        return Err(format!(
            "nix-build printed {} output paths for {n} elements",
            paths.len()
        ));
    }
    Ok(paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.ends_with(&format!("-e{i:05}"))
                .then(|| store.join(p.trim_start_matches('/')))
        })
        .collect())
}

/// How many element files a `cas build` opened (strace): 0 on the memo's
/// fast path, every one on a full load. None when strace is missing.
fn element_opens(env: &Env, store: &Path, root: &Path) -> Option<usize> {
    let trace = env.work.join("peers-strace.txt");
    let mut c = Command::new("strace");
    c.arg("-f")
        .args(["-e", "trace=open,openat", "-o"])
        .arg(&trace)
        .arg(&env.cas)
        .args(["build", "all.yaml"])
        .current_dir(root)
        .env("CAS_STORE", store)
        .env("HOME", env.work.join("home"))
        .env("NO_COLOR", "1");
    let ok = c.output().ok()?.status.success();
    let text = std::fs::read_to_string(&trace).ok()?;
    let _ = std::fs::remove_file(&trace);
    ok.then(|| {
        text.lines()
            .filter(|l| l.contains("/e") && l.contains(".yaml\"") && !l.contains("ENOENT"))
            .count()
    })
}

// ---------------------------------------------------------------- the case

pub fn peers(env: &Env) -> Result<Case> {
    let mut case = Case::new(
        "peers",
        "side by side with Nix and Bazel",
        "The trivial project of `cold` and `bst` (N elements in 10 layers, up to 3 dependencies \
         each on the layer below, plus the busybox base; two commands per element, `mkdir -p` \
         and a `printf` of 64 bytes) written for three tools from the same generator: cas \
         (`all.yaml`), Nix (`nix/default.nix`, one `.nix` file per element, `builtins.derivation` \
         with the static busybox imported by `builtins.path` as builder) and Bazel (`bazel/`, one \
         package per element, a `genrule` running the commands through the same busybox), \
         measured in the same run. Every tool's output of every element is compared, file by \
         file, with cas's (`cas checkout`). `cold`: build everything into an empty store / \
         cache (Bazel: after `bazel clean`, its server already running), in rounds (five in \
         the full mode), the tools in turn, each run after an untimed `sync` and the pause \
         below. `no-op, memo hit`: \
         the same build again, cas answering from its load memo (checked with strace: no \
         element file opened); Nix and Bazel warm (Bazel's server running). `no-op, leaf \
         touched`: an element file (the first leaf) touched before each build, for every tool; \
         cas reads that file again, finds the same bytes and answers from its memo. `no-op, memo \
         missed`: a comment line added to that file before each build (new bytes, the same \
         meaning), for every tool; cas then loads everything (the full path: load, keys, \
         result lookups). `load`: `cas show all.yaml`, `nix-instantiate default.nix` \
         (its .drv files already in the store), `bazel query 'deps(//:everything)'` (warm \
         server). `leaf change`: the first leaf's shell comment changes in all three, its output \
         does not; cas and Bazel cut its dependents off, Nix with ca-derivations resolves them \
         to built derivations, default (input-addressed) Nix rebuilds them. Peak RSS of the \
         no-op from wait4 (Bazel: the client's, and the server's VmHWM). In the warm cases \
         (no-op, load, leaf change) the tools take turns, and every timed run starts at least \
         0.3 s after the last one ended and once the machine is idle (under 5 % of its CPU \
         time busy over 0.1 s, waiting at most 5 s more: the pauses are counted below the \
         table), so that what a tool does after its command returned (Bazel's server \
         collecting and compiling) is not charged to the next. Ratios are the \
         peer's time over cas's: higher is better for cas.",
    );
    let Some((n, reps, leaf_reps, cold_reps)) = plan(env.mode) else {
        case.notes.push(
            "not measured in smoke mode (it needs Nix and Bazel: `apt-get install nix-bin \
             bazel-bootstrap`, and minutes)"
                .into(),
        );
        return Ok(case);
    };
    let nix_version = first_line(Command::new("nix-build").arg("--version"));
    let bazel_ok = Command::new("bazel")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut missing = vec![];
    if nix_version.is_none() {
        missing.push("`nix-build` (Debian package nix-bin)");
    }
    if !bazel_ok {
        missing.push("`bazel` (Debian package bazel-bootstrap)");
    }
    if !missing.is_empty() {
        case.notes.push(format!(
            "not measured: {} not found; install with `apt-get install nix-bin bazel-bootstrap` \
             (Debian 12; as root)",
            missing.join(" and ")
        ));
        return Ok(case);
    }
    let nix_version = nix_version.unwrap_or_default();
    let bazel_version = deb_version("bazel-bootstrap").map_or_else(
        || "bazel (version unknown)".to_owned(),
        |v| format!("bazel-bootstrap {v}"),
    );
    let jobs = env.nproc.to_string();
    env.say(&format!(
        "peers: generating {n} elements for cas, Nix and Bazel"
    ));
    let o = crate::cases::trivial(n);
    let root = env.work.join(format!("peers-p{n}"));
    let g = gen::generate(&root, &o).map_err(|e| e.to_string())?;
    generate_nix(&root, &o, &g).map_err(|e| e.to_string())?;
    generate_bazel(&root, &o, &g).map_err(|e| e.to_string())?;
    let generated_at = std::time::Instant::now();

    let nix_conf = env.work.join("peers-nix-conf");
    std::fs::create_dir_all(&nix_conf).map_err(|e| e.to_string())?;
    // Debian's /etc/nix/nix.conf says `sandbox = false`: a private, empty
    // configuration directory; every setting is on the command line.
    std::fs::write(nix_conf.join("nix.conf"), "").map_err(|e| e.to_string())?;
    let nix = Nix {
        conf: nix_conf,
        home: env.work.join("peers-nix-home"),
        dir: root.join("nix"),
        jobs: jobs.clone(),
    };
    let bazel = Bazel {
        dir: root.join("bazel"),
        root: env.work.join(format!("peers-bazel-root-{n}")),
        home: env.work.join("peers-bazel-home"),
        disk: env.work.join(format!("peers-bazel-disk-{n}")),
        jobs: jobs.clone(),
    };
    std::fs::create_dir_all(&bazel.home).map_err(|e| e.to_string())?;
    let cas_store = env.work.join(format!("peers-cas-store-{n}"));
    let nix_store = env.work.join(format!("peers-nix-store-{n}"));
    let ca_store = env.work.join(format!("peers-nix-ca-store-{n}"));
    for d in [&cas_store, &nix_store, &ca_store, &bazel.root, &bazel.disk] {
        force_remove(d)?;
    }
    let cas_build = || {
        let mut c = env.cas(&cas_store, &root);
        c.args(["--json", "-j", &jobs, "build", "all.yaml"]);
        c
    };

    // ---- cold: rounds, each tool in turn from an empty store or cache,
    // each timed run after an untimed `sync` (the last one's write-back is
    // not charged to it) and the pause of the warm cases
    env.say("peers: cold builds");
    let (bs, _) = run(bazel.cmd("info").arg("release"))?;
    let _server = BazelServer(&bazel);
    let (mut cc, mut nc, mut ncc, mut bc) = (vec![], vec![], vec![], vec![]);
    let mut outs = None;
    for round in 0..cold_reps {
        // every round into directories of its own (the last round's are
        // those the warm cases use): a store removed just before a run
        // would make ext4 skip its freed inodes for a minute (bench/NOTES.md)
        let fresh = |p: &PathBuf| -> PathBuf {
            if round + 1 == cold_reps {
                p.clone()
            } else {
                PathBuf::from(format!("{}-round{round}", p.display()))
            }
        };
        let bazel_round = Bazel {
            dir: bazel.dir.clone(),
            root: bazel.root.clone(),
            home: bazel.home.clone(),
            disk: fresh(&bazel.disk),
            jobs: bazel.jobs.clone(),
        };
        let settle = || -> Result<()> {
            run(&mut Command::new("sync"))?;
            quiet();
            Ok(())
        };
        settle()?;
        let (d, cas_out) = run(env
            .cas(&fresh(&cas_store), &root)
            .args(["--json", "-j", &jobs, "build", "all.yaml"]))?;
        cc.push(ms(d));
        settle()?;
        let (d, nix_out) = run(&mut nix.cmd("nix-build", &fresh(&nix_store), false))?;
        nc.push(ms(d));
        settle()?;
        let (d, ca_out) = run(&mut nix.cmd("nix-build", &fresh(&ca_store), true))?;
        ncc.push(ms(d));
        run(&mut bazel_round.cmd("clean"))?;
        settle()?;
        let (d, bazel_out) = run(&mut bazel_round.build())?;
        bc.push(ms(d));
        outs = Some((cas_out, nix_out, ca_out, bazel_out));
    }
    let (cas_out, nix_out, ca_out, bazel_out) = outs.ok_or("no cold round")?;
    let cas_json = json_of(&cas_out)?;
    let r_cc = case.row(format!("{n}: cold, cas -j {jobs}"), cc, Unit::Ms, None);
    let r_nc = case.row(
        format!("{n}: cold, Nix --max-jobs {jobs}"),
        nc,
        Unit::Ms,
        Some(r_cc),
    );
    let r_ncc = case.row(
        format!("{n}: cold, Nix ca-derivations"),
        ncc,
        Unit::Ms,
        Some(r_cc),
    );
    let r_bc = case.row(
        format!("{n}: cold, Bazel --jobs={jobs} (server already running)"),
        bc,
        Unit::Ms,
        Some(r_cc),
    );
    case.row(
        format!("{n}: Bazel server start (`bazel info`, not in any figure)"),
        vec![ms(bs)],
        Unit::Ms,
        None,
    );
    let steps = [
        json_of(&cas_out).map_or(f64::NAN, |v| v["built"].as_f64().unwrap_or(f64::NAN)),
        nix_builds(&String::from_utf8_lossy(&nix_out.stderr)),
        nix_builds(&String::from_utf8_lossy(&ca_out.stderr)),
        bazel_spawns(&String::from_utf8_lossy(&bazel_out.stderr)),
    ];
    for (tool, s) in ["cas", "Nix", "Nix ca-derivations", "Bazel"]
        .iter()
        .zip(steps)
    {
        let r = case.row(
            format!("{n}: cold, steps run by {tool}"),
            vec![s],
            Unit::Count,
            None,
        );
        if *tool == "cas" {
            case.note_row(r, "the elements, the base import and the `all` stack");
        }
    }
    for (r, base) in [(r_nc, r_cc), (r_ncc, r_cc), (r_bc, r_cc)] {
        case.note_row(
            r,
            format!("{:.1} ms per element", case.median(r) / n as f64),
        );
        let _ = base;
    }
    case.note_row(
        r_cc,
        format!("{:.1} ms per element", case.median(r_cc) / n as f64),
    );

    // ---- every tool built every element, byte-identical to cas's output
    env.say("peers: comparing outputs");
    let mut want = vec![];
    let elements = cas_json["elements"]
        .as_array()
        .ok_or("cas build --json has no elements")?;
    let checkouts = env.work.join("peers-checkouts");
    force_remove(&checkouts)?;
    for i in 0..n {
        let name = &g.names[i];
        let e = elements
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .ok_or_else(|| format!("cas built no {name}"))?;
        let key = e["key"].as_str().ok_or("element without key")?;
        let dir = checkouts.join(format!("e{i:05}"));
        run(env
            .cas(&cas_store, &root)
            .arg("checkout")
            .arg(key)
            .arg(&dir))?;
        want.push(files_of(&dir)?);
    }
    force_remove(&checkouts)?;
    let nix_dirs = nix_outputs(&nix_out.stdout, &nix_store, n)?;
    let ca_dirs = nix_outputs(&ca_out.stdout, &ca_store, n)?;
    let bin = PathBuf::from(bazel.info("bazel-bin")?);
    let bazel_dirs: Vec<Option<PathBuf>> =
        (0..n).map(|i| Some(bin.join(bazel_pkg(&g, i)))).collect();
    let mut diffs = vec![];
    let same = [
        compare(&want, &nix_dirs, "Nix", &mut diffs)?,
        compare(&want, &ca_dirs, "Nix ca-derivations", &mut diffs)?,
        compare(&want, &bazel_dirs, "Bazel", &mut diffs)?,
    ];
    let expected_files: usize = want.iter().map(BTreeMap::len).sum();
    case.goal(
        format!(
            "every element built by every tool, outputs identical to cas's ({n} elements, \
             {expected_files} files each)"
        ),
        format!(
            "Nix {}/{n}, Nix ca-derivations {}/{n}, Bazel {}/{n}",
            same[0], same[1], same[2]
        ),
        same.iter().all(|&s| s == n) && expected_files >= n,
    );
    for d in &diffs {
        case.notes.push(format!("Output difference: {d}"));
    }

    // ---- no-op with the memo hit, Nix and Bazel warm
    // cas records its memo in a build that ran no step, over files at least
    // 2 s old: wait for that, then record it (untimed).
    let age = generated_at.elapsed();
    if let Some(rest) = Duration::from_millis(2500).checked_sub(age) {
        std::thread::sleep(rest);
    }
    run(&mut cas_build())?;
    run(&mut bazel.build())?;
    env.say("peers: no-op builds");
    let (mut c_hit, mut c_hit_rss, mut n_noop, mut n_rss, mut b_noop, mut b_rss) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        quiet();
        let (d, rss, _) = run_peak_rss(&mut cas_build())?;
        c_hit.push(ms(d));
        c_hit_rss.push(rss as f64);
        quiet();
        let (d, rss, _) = run_peak_rss(&mut nix.cmd("nix-build", &nix_store, false))?;
        n_noop.push(ms(d));
        n_rss.push(rss as f64);
        quiet();
        let (d, rss, _) = run_peak_rss(&mut bazel.build())?;
        b_noop.push(ms(d));
        b_rss.push(rss as f64);
    }
    let memo_hit_opens = element_opens(env, &cas_store, &root);
    // ---- no-op after a touch: the same bytes (cas reads that file again)
    let leaf_files = [
        root.join("elements").join(&g.leaf),
        root.join("nix/elements").join(nix_file(&g, 0)),
        root.join("bazel")
            .join(bazel_pkg(&g, 0))
            .join("BUILD.bazel"),
    ];
    let (mut c_touch, mut n_touch, mut b_touch) = (vec![], vec![], vec![]);
    for _ in 0..reps {
        touch(&leaf_files[0])?;
        quiet();
        c_touch.push(ms(run(&mut cas_build())?.0));
        touch(&leaf_files[1])?;
        quiet();
        n_touch.push(ms(run(&mut nix.cmd("nix-build", &nix_store, false))?.0));
        touch(&leaf_files[2])?;
        quiet();
        b_touch.push(ms(run(&mut bazel.build())?.0));
    }
    touch(&leaf_files[0])?;
    let touch_opens = element_opens(env, &cas_store, &root);
    // ---- no-op after a comment is added: new bytes, the same meaning;
    // cas misses its memo and takes the full path (load, keys, lookups)
    let (mut c_miss, mut c_miss_rss, mut n_comment, mut b_comment) =
        (vec![], vec![], vec![], vec![]);
    let mut originals = Vec::new();
    for f in &leaf_files {
        originals.push(std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display()))?);
    }
    let mut commented = || -> Result<Option<usize>> {
        for k in 0..reps {
            add_comment(&leaf_files[0], &format!("peers-comment {k}"))?;
            quiet();
            let (d, rss, _) = run_peak_rss(&mut cas_build())?;
            c_miss.push(ms(d));
            c_miss_rss.push(rss as f64);
            add_comment(&leaf_files[1], &format!("peers-comment {k}"))?;
            quiet();
            n_comment.push(ms(run(&mut nix.cmd("nix-build", &nix_store, false))?.0));
            add_comment(&leaf_files[2], &format!("peers-comment {k}"))?;
            quiet();
            b_comment.push(ms(run(&mut bazel.build())?.0));
        }
        add_comment(&leaf_files[0], "peers-comment strace")?;
        Ok(element_opens(env, &cas_store, &root))
    };
    let memo_miss_opens = commented();
    // the leaf files as they were, whatever happened
    for (f, text) in leaf_files.iter().zip(&originals) {
        std::fs::write(f, text).map_err(|e| format!("writing {}: {e}", f.display()))?;
    }
    let memo_miss_opens = memo_miss_opens?;
    let server_pid = bazel.info("server_pid")?;
    let b_server_rss = vm_hwm(&server_pid);

    // ---- load
    env.say("peers: load");
    let (mut c_show, mut n_inst, mut b_query) = (vec![], vec![], vec![]);
    for _ in 0..reps {
        quiet();
        c_show.push(ms(run(env
            .cas(&cas_store, &root)
            .args(["show", "all.yaml"]))?
        .0));
        quiet();
        n_inst.push(ms(
            run(&mut nix.cmd("nix-instantiate", &nix_store, false))?.0
        ));
        quiet();
        let (d, out) = run(bazel
            .cmd("query")
            .args(["deps(//:everything)", "--output=label"]))?;
        let labels = String::from_utf8_lossy(&out.stdout).lines().count();
        if labels < n {
            return Err(format!(
                "bazel query listed {labels} targets for {n} elements"
            ));
        }
        b_query.push(ms(d));
    }

    // ---- leaf change, output unchanged
    env.say("peers: leaf change");
    let stamp = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (mut c_leaf, mut n_leaf, mut ca_leaf, mut b_leaf) = (vec![], vec![], vec![], vec![]);
    let (mut c_steps, mut n_steps, mut ca_steps, mut b_steps) = (vec![], vec![], vec![], vec![]);
    for k in 0..leaf_reps {
        set_leaf_comment_all(&root, &o, &g, &format!("peers-rev {stamp}-{k}"))?;
        quiet();
        let (d, out) = run(&mut cas_build())?;
        c_leaf.push(ms(d));
        c_steps.push(json_of(&out)?["built"].as_f64().unwrap_or(f64::NAN));
        quiet();
        let (d, out) = run(&mut nix.cmd("nix-build", &nix_store, false))?;
        n_leaf.push(ms(d));
        n_steps.push(nix_builds(&String::from_utf8_lossy(&out.stderr)));
        quiet();
        let (d, out) = run(&mut nix.cmd("nix-build", &ca_store, true))?;
        ca_leaf.push(ms(d));
        ca_steps.push(nix_builds(&String::from_utf8_lossy(&out.stderr)));
        quiet();
        let (d, out) = run(&mut bazel.build())?;
        b_leaf.push(ms(d));
        b_steps.push(bazel_spawns(&String::from_utf8_lossy(&out.stderr)));
    }
    set_leaf_comment_all(&root, &o, &g, "rev 0")?;

    // ---- rows
    let r_chit = case.row(format!("{n}: no-op, cas, memo hit"), c_hit, Unit::Ms, None);
    let r_ctouch = case.row(
        format!("{n}: no-op, cas, leaf file touched (same bytes)"),
        c_touch,
        Unit::Ms,
        Some(r_chit),
    );
    let r_cmiss = case.row(
        format!("{n}: no-op, cas, memo missed (a comment added to the leaf file: full load)"),
        c_miss,
        Unit::Ms,
        Some(r_chit),
    );
    let r_nnoop = case.row(format!("{n}: no-op, Nix"), n_noop, Unit::Ms, Some(r_chit));
    let r_ntouch = case.row(
        format!("{n}: no-op, Nix, leaf file touched"),
        n_touch,
        Unit::Ms,
        Some(r_ctouch),
    );
    let r_ncomment = case.row(
        format!("{n}: no-op, Nix, a comment added to the leaf file"),
        n_comment,
        Unit::Ms,
        Some(r_cmiss),
    );
    let r_bnoop = case.row(
        format!("{n}: no-op, Bazel (warm server)"),
        b_noop,
        Unit::Ms,
        Some(r_chit),
    );
    let r_btouch = case.row(
        format!("{n}: no-op, Bazel (warm server), leaf BUILD file touched"),
        b_touch,
        Unit::Ms,
        Some(r_ctouch),
    );
    let r_bcomment = case.row(
        format!("{n}: no-op, Bazel (warm server), a comment added to the leaf BUILD file"),
        b_comment,
        Unit::Ms,
        Some(r_cmiss),
    );
    let opens = |o: Option<usize>| {
        o.map_or_else(
            || "strace missing: not checked".into(),
            |k| format!("{k} element files opened (strace)"),
        )
    };
    case.note_row(r_chit, opens(memo_hit_opens));
    case.note_row(r_ctouch, opens(touch_opens));
    case.note_row(r_cmiss, opens(memo_miss_opens));
    let r_cshow = case.row(format!("{n}: load, `cas show`"), c_show, Unit::Ms, None);
    let r_ninst = case.row(
        format!("{n}: load, `nix-instantiate`"),
        n_inst,
        Unit::Ms,
        Some(r_cshow),
    );
    let r_bquery = case.row(
        format!("{n}: load, `bazel query` (warm server)"),
        b_query,
        Unit::Ms,
        Some(r_cshow),
    );
    let r_cleaf = case.row(format!("{n}: leaf change, cas"), c_leaf, Unit::Ms, None);
    let r_nleaf = case.row(
        format!("{n}: leaf change, Nix (input-addressed)"),
        n_leaf,
        Unit::Ms,
        Some(r_cleaf),
    );
    let r_caleaf = case.row(
        format!("{n}: leaf change, Nix ca-derivations"),
        ca_leaf,
        Unit::Ms,
        Some(r_cleaf),
    );
    let r_bleaf = case.row(
        format!("{n}: leaf change, Bazel (warm server)"),
        b_leaf,
        Unit::Ms,
        Some(r_cleaf),
    );
    for (tool, s) in [
        ("cas", c_steps),
        ("Nix", n_steps),
        ("Nix ca-derivations", ca_steps),
        ("Bazel", b_steps),
    ] {
        case.row(
            format!("{n}: leaf change, steps run by {tool}"),
            s,
            Unit::Count,
            None,
        );
    }
    case.note_row(
        r_nleaf,
        format!("the leaf and its {} dependents rebuild", g.leaf_dependents),
    );
    let r_crss_hit = case.row(
        format!("{n}: peak RSS of the no-op, cas, memo hit"),
        c_hit_rss,
        Unit::KiB,
        None,
    );
    let r_crss = case.row(
        format!("{n}: peak RSS of the no-op, cas, memo missed"),
        c_miss_rss,
        Unit::KiB,
        None,
    );
    let r_nrss = case.row(
        format!("{n}: peak RSS of the no-op, Nix"),
        n_rss,
        Unit::KiB,
        Some(r_crss),
    );
    case.row(
        format!("{n}: peak RSS of the no-op, Bazel client"),
        b_rss,
        Unit::KiB,
        None,
    );
    if let Some(kib) = b_server_rss {
        let r = case.row(
            format!("{n}: peak RSS, Bazel server (VmHWM over its life)"),
            vec![kib],
            Unit::KiB,
            Some(r_crss),
        );
        case.note_row(r, "the JVM that does the work of every bazel command");
    }
    let _ = r_crss_hit;

    // ---- goals: the peer's time over cas's
    let ratio = |a: usize, b: usize| case.median(a) / case.median(b);
    let goals = [
        ("cold build ≥ 3× Nix", ratio(r_nc, r_cc), 3.0),
        (
            "cold build ≥ 3× Bazel (warm server)",
            ratio(r_bc, r_cc),
            3.0,
        ),
        (
            "no-op, memo missed ≥ 5× Nix (a comment added to the leaf)",
            ratio(r_ncomment, r_cmiss),
            5.0,
        ),
        (
            "no-op, memo missed ≥ 5× Bazel warm (a comment added to the leaf)",
            ratio(r_bcomment, r_cmiss),
            5.0,
        ),
        (
            "no-op, leaf touched (same bytes) ≥ 5× Nix",
            ratio(r_ntouch, r_ctouch),
            5.0,
        ),
        (
            "no-op, leaf touched (same bytes) ≥ 5× Bazel warm",
            ratio(r_btouch, r_ctouch),
            5.0,
        ),
        ("no-op, memo hit ≥ 20× Nix", ratio(r_nnoop, r_chit), 20.0),
        (
            "no-op, memo hit ≥ 20× Bazel warm",
            ratio(r_bnoop, r_chit),
            20.0,
        ),
        (
            "leaf change, output unchanged ≥ 10× Nix ca-derivations",
            ratio(r_caleaf, r_cleaf),
            10.0,
        ),
        (
            "leaf change, output unchanged ≥ 10× Bazel warm",
            ratio(r_bleaf, r_cleaf),
            10.0,
        ),
        (
            "(no goal set) leaf change, output unchanged, against default Nix",
            ratio(r_nleaf, r_cleaf),
            1.0,
        ),
        ("load ≥ 5× `nix-instantiate`", ratio(r_ninst, r_cshow), 5.0),
        (
            "(no goal set) load against `bazel query` (warm server)",
            ratio(r_bquery, r_cshow),
            1.0,
        ),
    ];
    let rss = ratio(r_crss, r_nrss);
    // deliverable 3: the full path (load, keys, lookups) against the memo's
    let full = ratio(r_cmiss, r_chit);
    case.goal(
        format!("{n} elements: no-op without the memo (full load) ≤ 5× the memo hit"),
        format!("{full:.2}×"),
        full <= 5.0,
    );
    for (what, got, goal) in goals {
        case.goal(
            format!("{n} elements: {what}"),
            format!("{got:.1}×"),
            got >= goal,
        );
    }
    case.goal(
        format!("{n} elements: peak RSS of the no-op ≤ Nix's (cas with its memo missed)"),
        format!("{rss:.2}× Nix's"),
        rss <= 1.0,
    );
    {
        let p = PAUSES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        case.notes.push(format!(
            "Pauses before the timed runs: {}; {} waited past the 0.3 s for the machine to be \
             idle (the longest {} ms more), {} gave up after 5 s.",
            p.0, p.1, p.2, p.3
        ));
    }
    if case.goals.iter().any(|g| !g.met) {
        case.notes.push(
            "Each goal missed here has its measured cause (a profile of the same case: where the \
             time goes, what was tried) in \"What the profiles found\" at the end of this file \
             (bench/NOTES.md, the items marked #33)."
                .to_owned(),
        );
    }

    // ---- configuration
    let net = network_interfaces();
    let kernel_sandbox = format!(
        "Configuration of each tool in this run (`$W` is the work directory, `$P` = \
         `$W/peers-p{n}`):\n\n\
         - **cas** (the release binary, a black box): `cd $P && $CAS --store \
         $W/peers-cas-store-{n} --json -j {jobs} build all.yaml`; its default sandbox (cas's own: \
         one clone per step into new user, mount, pid, network, ipc, uts and cgroup \
         namespaces, spec/sandbox.md), no remote.\n\
         - **Nix** ({nix_version}, Debian package nix-bin {nv}): single-user as root, a private \
         chroot store and an empty configuration (`NIX_CONF_DIR` holds an empty nix.conf, \
         so Debian's `sandbox = false` does not apply): `cd $P/nix && nix-build --store \
         $W/peers-nix-store-{n} --option sandbox true --option substituters '' --max-jobs \
         {jobs} --no-out-link default.nix`; builds run as the `nixbld` users in Nix's own \
         namespaces. ca-derivations: the same with its own store `$W/peers-nix-ca-store-{n}` \
         and `--extra-experimental-features ca-derivations --arg ca true`. Builder: \
         `${{base}}/bin/sh` of the busybox tree imported with `builtins.path`, `PATH = \
         ${{base}}/bin`. Load: `nix-instantiate` with the same store and options.\n\
         - **Bazel** ({bazel_version}): `cd $P/bazel && bazel \
         --output_user_root=$W/peers-bazel-root-{n} --max_idle_secs=900 --nohome_rc build \
         --color=no --curses=no --spawn_strategy=linux-sandbox --jobs={jobs} \
         --disk_cache=$W/peers-bazel-disk-{n} --nosandbox_debug --symlink_prefix=/ \
         //:everything`, Debian's /etc/bazel/bazelrc kept (its install base, `local_jdk`, and \
         `--sandbox_debug`, turned off here); an empty WORKSPACE, no external repository. Cold: \
         `bazel clean` then the build, the server already started (`bazel info`). Load: `bazel \
         query 'deps(//:everything)' --output=label`. Shut down at the end of the case.\n\
         - **Network**: {}.\n\
         - **Install**: `apt-get install nix-bin bazel-bootstrap` (Debian 12); nothing else is \
         downloaded, by the packages or by the runs.",
        if net.is_empty() {
            "loopback only (the run was in a network namespace of its own): nothing could be \
             fetched"
                .to_owned()
        } else {
            format!(
                "not isolated in this run (interfaces {}); run it under `unshare -n` to prove \
                 that nothing is fetched",
                net.join(", ")
            )
        },
        nv = deb_version("nix-bin").unwrap_or_else(|| "?".into()),
    );
    case.notes.push(kernel_sandbox);
    case.commands.extend([
        format!("cas-gen $W/peers-p{n} --elements {n}   # then bench/src/peers.rs generate_nix, generate_bazel"),
        format!("cd $W/peers-p{n} && $CAS --store $W/peers-cas-store-{n} --json -j {jobs} build all.yaml"),
        format!("cd $W/peers-p{n}/nix && NIX_CONF_DIR=$W/peers-nix-conf nix-build --store $W/peers-nix-store-{n} --option sandbox true --option substituters '' --max-jobs {jobs} --no-out-link default.nix"),
        format!("cd $W/peers-p{n}/nix && NIX_CONF_DIR=$W/peers-nix-conf nix-build --store $W/peers-nix-ca-store-{n} --option sandbox true --option substituters '' --max-jobs {jobs} --no-out-link --extra-experimental-features ca-derivations --arg ca true default.nix"),
        format!("cd $W/peers-p{n}/bazel && bazel --output_user_root=$W/peers-bazel-root-{n} --max_idle_secs=900 --nohome_rc build --spawn_strategy=linux-sandbox --jobs={jobs} --disk_cache=$W/peers-bazel-disk-{n} --nosandbox_debug --symlink_prefix=/ //:everything"),
        format!("cd $W/peers-p{n} && $CAS --store $W/peers-cas-store-{n} show all.yaml"),
        format!("cd $W/peers-p{n}/nix && NIX_CONF_DIR=$W/peers-nix-conf nix-instantiate --store $W/peers-nix-store-{n} --option sandbox true --option substituters '' default.nix"),
        format!("cd $W/peers-p{n}/bazel && bazel --output_user_root=$W/peers-bazel-root-{n} --max_idle_secs=900 --nohome_rc query 'deps(//:everything)' --output=label"),
    ]);
    Ok(case)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, GenOptions, Generated) {
        let t = tempfile::tempdir().unwrap();
        let o = crate::cases::trivial(12);
        let g = gen::generate(t.path(), &o).unwrap();
        (t, o, g)
    }

    #[test]
    fn nix_and_bazel_projects_cover_every_element() {
        let (t, o, g) = project();
        generate_nix(t.path(), &o, &g).unwrap();
        generate_bazel(t.path(), &o, &g).unwrap();
        let d = std::fs::read_to_string(t.path().join("nix/default.nix")).unwrap();
        let all = std::fs::read_to_string(t.path().join("bazel/BUILD.bazel")).unwrap();
        for i in 0..12 {
            assert!(d.contains(&format!("self.e{i:05}\n")), "{d}");
            assert!(all.contains(&format!("\"//{}\"", bazel_pkg(&g, i))));
            let nix = std::fs::read_to_string(t.path().join("nix/elements").join(nix_file(&g, i)))
                .unwrap();
            for dep in &g.deps[i] {
                assert!(nix.contains(&format!("self.e{dep:05}")), "{nix}");
            }
        }
        assert!(t.path().join("bazel/base/busybox").is_file());
        assert!(t.path().join("bazel/WORKSPACE").is_file());
    }

    #[test]
    fn commands_are_quoted_for_each_language() {
        let (_t, o, g) = project();
        let nix = nix_element(&o, 0, &[], false);
        // `$out` stays a shell variable; quotes and the comment survive.
        assert!(
            nix.contains("mkdir -p $out/usr/share/bench/e00000\\n"),
            "{nix}"
        );
        assert!(nix.contains("printf 'e00000%058d' 0 > $out/usr/share/bench/e00000/f0"));
        assert!(nix.contains("true # rev 0"));
        let b = bazel_element(&o, &g, 0, &[], false);
        assert!(b.contains("outs = [\"usr/share/bench/e00000/f0\"]"), "{b}");
        assert!(
            b.contains("mkdir -p $(RULEDIR)/usr/share/bench/e00000'"),
            "{b}"
        );
        assert!(
            b.contains("printf '\\\\''e00000%058d'\\\\'' 0 > $(RULEDIR)"),
            "{b}"
        );
        assert_eq!(nix_str("a${b}\"c\\"), "\"a\\${b}\\\"c\\\\\"");
        let mut o2 = o.clone();
        o2.files = 3;
        o2.change_round = 2;
        let b = bazel_element(&o2, &g, 1, &[0], true);
        assert!(b.contains("$$i"), "a shell `$` is doubled for Make: {b}");
        assert_eq!(outputs(&o2, 1, true).len(), 4);
    }

    #[test]
    fn tool_summaries_are_parsed() {
        assert!(
            (bazel_spawns("INFO: 3 processes: 1 internal, 2 linux-sandbox.\n") - 2.0).abs() < 1e-9
        );
        assert!(bazel_spawns("INFO: 1 process: 1 internal.\n").abs() < 1e-9);
        assert!(
            (nix_builds("building '/nix/store/x.drv'...\nbuilding '/nix/store/y.drv'...\n") - 2.0)
                .abs()
                < 1e-9
        );
    }
}

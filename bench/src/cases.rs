//! The benchmark cases. Each drives the `cas` binary as a black box and
//! measures its baseline in the same run, interleaved repetition by repetition.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::gen::{self, GenOptions, Generated};
use crate::report::{fmt_ms, Case, Unit};
use crate::util::{force_remove, ms, run, run_peak_rss, run_quiet, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }
}

/// (size, warm-up runs, measured runs)
pub type Sized = (usize, usize, usize);

/// Sizes and repetition counts of every case.
#[derive(Clone, Debug)]
pub struct Plan {
    pub load: Vec<Sized>,
    pub cold: Vec<Sized>,
    /// `-j nproc` cold builds are measured up to this size only (time budget).
    pub cold_jn_max: usize,
    pub noop: (usize, usize),
    pub cutoff: (usize, usize),
    pub big_files: usize,
    pub big_file_size: usize,
    pub big_reps: (usize, usize),
    pub mem_bytes: u64,
    /// Sysroot case: elements, files of the large base, (warm-up, runs).
    pub sysroot: (usize, usize, (usize, usize)),
}

impl Plan {
    pub fn for_mode(mode: Mode) -> Plan {
        match mode {
            Mode::Full => Plan {
                load: vec![(500, 1, 7), (5_000, 1, 5), (50_000, 0, 3)],
                cold: vec![(100, 1, 5), (1_000, 0, 1)],
                cold_jn_max: 100,
                noop: (1, 10),
                cutoff: (1, 5),
                big_files: 20_000,
                big_file_size: 10 * 1024,
                big_reps: (1, 5),
                mem_bytes: 2 << 30,
                sysroot: (30, 20_000, (1, 3)),
            },
            Mode::Quick => Plan {
                load: vec![(500, 1, 3), (5_000, 1, 3), (50_000, 0, 1)],
                cold: vec![(100, 0, 2), (1_000, 0, 1)],
                cold_jn_max: 100,
                noop: (1, 3),
                cutoff: (1, 3),
                big_files: 20_000,
                big_file_size: 10 * 1024,
                big_reps: (1, 3),
                mem_bytes: 2 << 30,
                sysroot: (30, 20_000, (1, 2)),
            },
            Mode::Smoke => Plan {
                load: vec![(20, 0, 1), (60, 0, 1)],
                cold: vec![(4, 0, 1), (10, 0, 1)],
                cold_jn_max: 10,
                noop: (0, 1),
                cutoff: (0, 1),
                big_files: 300,
                big_file_size: 4096,
                big_reps: (0, 1),
                mem_bytes: 8 << 20,
                sysroot: (3, 200, (1, 1)),
            },
        }
    }
}

/// Everything a case needs.
pub struct Env {
    pub cas: PathBuf,
    pub work: PathBuf,
    pub mode: Mode,
    pub plan: Plan,
    pub nproc: usize,
    pub log: Box<dyn Fn(&str)>,
}

impl Env {
    /// A `cas` command with a private HOME, this store, run in `cwd`.
    pub fn cas(&self, store: &Path, cwd: &Path) -> Command {
        let mut c = Command::new(&self.cas);
        c.current_dir(cwd)
            .env("CAS_STORE", store)
            .env("HOME", self.work.join("home"))
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CAS_CONFIG")
            .env("NO_COLOR", "1")
            .env("CLICOLOR", "0");
        c
    }

    pub(crate) fn say(&self, s: &str) {
        (self.log)(s);
    }
}

pub(crate) fn json_of(out: &std::process::Output) -> Result<serde_json::Value> {
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "cas printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn count(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The trivial project of `cold` (and of `bst`, for both tools).
pub(crate) fn trivial(n: usize) -> GenOptions {
    GenOptions {
        elements: n,
        layers: 10.min(n.max(1)),
        fanout: 3,
        files: 1,
        file_size: 64,
        ..Default::default()
    }
}

/// Generates (once) the trivial project of `n` elements under `$W/pN`.
fn project(env: &Env, n: usize) -> Result<(GenOptions, Generated)> {
    let o = trivial(n);
    let dir = env.work.join(format!("p{n}"));
    let g = gen::generate(&dir, &o).map_err(|e| format!("generating {}: {e}", dir.display()))?;
    Ok((o, g))
}

// ---------------------------------------------------------------- load

pub fn load(env: &Env) -> Result<Case> {
    let mut case = Case::new(
        "load",
        "loading a project (`cas show`)",
        "`cas show all.yaml` over a generated project: N trivial elements in 10 layers, each \
         build-depending on 3 elements of the layer below and on the busybox base (kind import, \
         local source); all.yaml is a stack of every element. The store is empty apart from the \
         warm-up, so show loads, resolves, computes every key and looks every state up. Reference \
         floor: reading every element file once (`cat`).",
    );
    let mut per_element = vec![];
    for &(n, warmup, reps) in &env.plan.load.clone() {
        env.say(&format!("load: generating {n} elements"));
        let (_, g) = project(env, n)?;
        let store = env.work.join(format!("store-load-{n}"));
        let mut show = vec![];
        let mut cat = vec![];
        for i in 0..warmup + reps {
            let d = run_quiet(env.cas(&store, &g.root).args(["show", "all.yaml"]))?;
            let c = run_quiet(Command::new("sh").current_dir(&g.root).args([
                "-c",
                "find elements -name '*.yaml' -exec cat {} + > /dev/null",
            ]))?;
            if i >= warmup {
                show.push(ms(d));
                cat.push(ms(c));
            }
        }
        let base = case.row(
            format!("read every element file (`cat`), {n} elements"),
            cat,
            Unit::Ms,
            None,
        );
        let r = case.row(
            format!("`cas show`, {n} elements"),
            show,
            Unit::Ms,
            Some(base),
        );
        let med = case.median(r);
        case.note_row(r, format!("{:.0} µs per element", med * 1000.0 / n as f64));
        per_element.push((n, med * 1000.0 / n as f64, med));
        case.commands.push(format!(
            "cd $W/p{n} && $CAS --store $W/store-load-{n} show all.yaml"
        ));
        case.commands.push(format!(
            "cd $W/p{n} && find elements -name '*.yaml' -exec cat {{}} + > /dev/null"
        ));
    }
    if let Some(&(n, _, med)) = per_element.iter().find(|(n, _, _)| *n == 5_000) {
        case.goal(
            format!("`cas show` on {n} elements < 300 ms"),
            fmt_ms(med),
            med < 300.0,
        );
    }
    if per_element.len() >= 2 {
        let (n0, p0, _) = per_element[0];
        let (n1, p1, _) = per_element[per_element.len() - 1];
        // Linear: the per-element time at the largest size is within 1.5× of the smallest's.
        case.goal(
            format!("linear: µs per element at {n1} ≤ 1.5× at {n0}"),
            format!("{p1:.0} µs vs {p0:.0} µs ({:.2}×)", p1 / p0),
            p1 / p0 <= 1.5,
        );
    }
    Ok(case)
}

// ---------------------------------------------------------------- cold / noop / cutoff

/// The bwrap command line the baseline uses: the same shape as cas's sandbox
/// (fresh namespaces, read-only root made of the base's top-level dirs, /proc,
/// /dev, tmpfs /tmp, writable /build and /install, fixed environment).
fn bwrap_baseline(base: &Path, build: &Path, install: &Path, cmd: &str) -> Command {
    let mut c = Command::new("bwrap");
    c.args([
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]);
    c.args([
        "--hostname",
        "cas",
        "--uid",
        "0",
        "--gid",
        "0",
        "--clearenv",
    ]);
    for (k, v) in [
        ("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
        ("HOME", "/tmp"),
        ("SHELL", "/bin/sh"),
        ("LC_ALL", "C"),
        ("TZ", "UTC"),
    ] {
        c.args(["--setenv", k, v]);
    }
    for d in ["bin", "usr", "etc"] {
        c.arg("--ro-bind").arg(base.join(d)).arg(format!("/{d}"));
    }
    c.args([
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
    ]);
    c.arg("--bind").arg(build).arg("/build");
    c.arg("--bind").arg(install).arg("/install");
    c.args([
        "--remount-ro",
        "/",
        "--chdir",
        "/build",
        "--",
        "/bin/sh",
        "-e",
        "-c",
        cmd,
    ]);
    c
}

/// Runs every element's commands without cas: in bwrap (one sandbox per
/// command, like cas) or with the host's `sh -e -c`. Returns the wall time.
fn run_baseline(g: &Generated, o: &GenOptions, scratch: &Path, bwrap: bool) -> Result<Duration> {
    force_remove(scratch)?;
    let base = g.root.join("files/base");
    let changed: std::collections::HashSet<usize> = g.changed.iter().copied().collect();
    let t = Instant::now();
    for i in 0..o.elements {
        let dir = scratch.join(format!("e{i}"));
        let (build, install) = (dir.join("build"), dir.join("install"));
        std::fs::create_dir_all(&build).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&install).map_err(|e| e.to_string())?;
        if bwrap {
            for c in gen::commands(o, i, "/install/usr/share", changed.contains(&i)) {
                run_quiet(&mut bwrap_baseline(&base, &build, &install, &c))?;
            }
        } else {
            let dest = format!("{}/usr/share", install.display());
            for c in gen::commands(o, i, &dest, changed.contains(&i)) {
                run_quiet(
                    Command::new("sh")
                        .current_dir(&build)
                        .args(["-e", "-c", &c]),
                )?;
            }
        }
    }
    let d = t.elapsed();
    force_remove(scratch)?;
    Ok(d)
}

pub struct Built {
    pub n: usize,
    pub o: GenOptions,
    pub g: Generated,
    pub store: PathBuf,
}

/// Cold builds; returns the case and the built projects (their stores hold
/// every result) for the no-op and cutoff cases.
pub fn cold(env: &Env) -> Result<(Case, Vec<Built>)> {
    let mut case = Case::new(
        "cold",
        "cold build of trivial elements",
        "`cas -j 1 build all.yaml` into an empty store: the busybox base import plus N trivial \
         elements (10 layers, 3 dependencies each, two commands: `mkdir -p` and `printf` of 64 bytes into `f0`). \
         Baseline: the same commands run directly in bwrap without cas, one sandbox per command as \
         cas does, sequentially, with the same shape of sandbox (read-only root of the base's \
         directories, /proc, /dev, tmpfs /tmp, writable /build and /install), fresh directories per \
         element. Each timed run starts after an untimed `sync`. The per-element overhead of cas is (cas − bwrap baseline) / N: staging the sysroot \
         view, keys, ingesting the output, recording the result. The same commands under plain \
         `sh -e -c` (no sandbox) are shown for reference. `-j N` (all cores) is shown too.",
    );
    let mut built = vec![];
    for &(n, warmup, reps) in &env.plan.cold.clone() {
        env.say(&format!("cold: {n} elements"));
        let (o, g) = project(env, n)?;
        let store = env.work.join(format!("store-cold-{n}"));
        let scratch = env.work.join(format!("scratch-{n}"));
        let (mut j1, mut jn, mut bw, mut shs, mut steps) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..warmup + reps {
            force_remove(&store)?;
            // Every timed run starts with nothing left to write back (untimed).
            settle()?;
            let (d, out) = run(env
                .cas(&store, &g.root)
                .args(["--json", "-j", "1", "build", "all.yaml"]))?;
            let v = json_of(&out)?;
            settle()?;
            let b = bwrap_or_sh(&g, &o, &scratch, true)?;
            settle()?;
            let s = bwrap_or_sh(&g, &o, &scratch, false)?;
            if n <= env.plan.cold_jn_max {
                force_remove(&store)?;
                settle()?;
                let (dn, _) = run(env.cas(&store, &g.root).args([
                    "--json",
                    "-j",
                    &env.nproc.to_string(),
                    "build",
                    "all.yaml",
                ]))?;
                if i >= warmup {
                    jn.push(ms(dn));
                }
            }
            if i >= warmup {
                j1.push(ms(d));
                bw.push(ms(b));
                shs.push(ms(s));
                steps.push(count(&v, "built"));
            }
        }
        let rb = case.row(
            format!("{n} elements: same commands in bwrap, no cas"),
            bw,
            Unit::Ms,
            None,
        );
        let rs = case.row(
            format!("{n} elements: same commands in `sh -e -c`, no sandbox"),
            shs,
            Unit::Ms,
            None,
        );
        let r1 = case.row(
            format!("{n} elements: `cas -j 1 build`"),
            j1,
            Unit::Ms,
            Some(rb),
        );
        let rn = if jn.is_empty() {
            None
        } else {
            Some(case.row(
                format!("{n} elements: `cas -j {} build`", env.nproc),
                jn,
                Unit::Ms,
                Some(rb),
            ))
        };
        let rc = case.row(
            format!("{n} elements: steps built (JSON `built`)"),
            steps,
            Unit::Count,
            None,
        );
        let _ = (rs, rn, rc);
        let over = (case.median(r1) - case.median(rb)) / n as f64;
        let over_sh = (case.median(r1) - case.median(rs)) / n as f64;
        case.note_row(
            r1,
            format!(
                "overhead {over:.1} ms/element net of bwrap; {over_sh:.1} ms/element net of sh"
            ),
        );
        case.goal(
            format!(
                "per-element overhead at {n} elements < 25 ms (net of the same commands in bwrap)"
            ),
            format!("{over:.1} ms"),
            over < 25.0,
        );
        case.commands.push(format!("cd $W/p{n} && rm -rf $W/store-cold-{n} && $CAS --store $W/store-cold-{n} --json -j 1 build all.yaml"));
        if rn.is_some() {
            case.commands.push(format!("cd $W/p{n} && rm -rf $W/store-cold-{n} && $CAS --store $W/store-cold-{n} --json -j {} build all.yaml", env.nproc));
        }
        case.commands.push(
            "# baseline, for every element and command (cas-bench: cases.rs bwrap_baseline):"
                .into(),
        );
        case.commands.push("bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --hostname cas --uid 0 --gid 0 --clearenv --setenv PATH ... --ro-bind $W/pN/files/base/{bin,usr,etc} /{bin,usr,etc} --proc /proc --dev /dev --perms 1777 --tmpfs /tmp --bind BUILD /build --bind INSTALL /install --remount-ro / --chdir /build -- /bin/sh -e -c COMMAND".into());
        built.push(Built { n, o, g, store });
    }
    Ok((case, built))
}

// ---------------------------------------------------------------- sysroot

/// Steps over a large sysroot: the same N trivial elements, built with the
/// busybox base alone and with a base of thousands of files in every
/// sysroot, staged as layers (the default) and as merged views.
pub fn sysroot(env: &Env) -> Result<Case> {
    let (n, files, (warmup, reps)) = env.plan.sysroot;
    let mut case = Case::new(
        "sysroot",
        "steps over a large sysroot",
        &format!(
            "{n} trivial elements (3 layers, 3 dependencies each) built with `cas -j 1 build`, \
             every element's output changed each run (so all {n} steps run; the imports stay \
             cached). Three ways: every sysroot is the busybox base plus dependencies; every \
             sysroot also holds a {files}-file import (200 directories, like a toolchain), staged \
             as layers (each output's view made once, the union mounted as an overlay: the \
             default); the same with `CAS_SANDBOX_OVERLAY=0`, where every step materialises its \
             merged sysroot as a hardlinked view. Baseline: the busybox-only build."
        ),
    );
    let gen_opts = |big: bool, round: u64| GenOptions {
        elements: n,
        layers: 3.min(n.max(1)),
        fanout: 3,
        files: 1,
        file_size: 64,
        big_import: if big { files } else { 0 },
        big_file_size: 256,
        big_in_sysroot: big,
        change_share: 1.0,
        change_round: round,
        ..Default::default()
    };
    let small_dir = env.work.join("sysroot-small");
    let big_dir = env.work.join("sysroot-big");
    let (small_store, big_store, merged_store) = (
        env.work.join("store-sysroot-small"),
        env.work.join("store-sysroot-big"),
        env.work.join("store-sysroot-merged"),
    );
    let mut s: Vec<Vec<f64>> = vec![vec![]; 3];
    let mut round = 0u64;
    for i in 0..warmup + reps {
        env.say(&format!("sysroot: run {}/{}", i + 1, warmup + reps));
        let mut times = [0.0; 3];
        for (k, (dir, store, big, overlay)) in [
            (&small_dir, &small_store, false, true),
            (&big_dir, &big_store, true, true),
            (&big_dir, &merged_store, true, false),
        ]
        .into_iter()
        .enumerate()
        {
            round += 1;
            gen::generate(dir, &gen_opts(big, round))
                .map_err(|e| format!("generating {}: {e}", dir.display()))?;
            let mut c = env.cas(store, dir);
            c.args(["--json", "-j", "1", "build", "all.yaml"]);
            if !overlay {
                c.env("CAS_SANDBOX_OVERLAY", "0");
            }
            let (d, out) = run(&mut c)?;
            let v = json_of(&out)?;
            if i >= warmup && count(&v, "built") < n as f64 {
                return Err(format!(
                    "sysroot: expected {n} steps built, the report says {}",
                    count(&v, "built")
                ));
            }
            times[k] = ms(d);
        }
        if i >= warmup {
            for (k, t) in times.into_iter().enumerate() {
                s[k].push(t);
            }
        }
    }
    for store in [&small_store, &big_store, &merged_store] {
        force_remove(store)?;
    }
    let small = case.row(
        format!("{n} steps, busybox base (≈ 270 entries)"),
        s[0].clone(),
        Unit::Ms,
        None,
    );
    let layered = case.row(
        format!("{n} steps, {files}-file base in every sysroot, layers (default)"),
        s[1].clone(),
        Unit::Ms,
        Some(small),
    );
    let merged = case.row(
        format!("{n} steps, {files}-file base in every sysroot, merged views"),
        s[2].clone(),
        Unit::Ms,
        Some(small),
    );
    for r in [small, layered, merged] {
        let med = case.median(r);
        case.note_row(r, format!("{:.1} ms per step", med / n as f64));
    }
    let ratio = case.median(layered) / case.median(small);
    case.goal(
        format!("(no goal set) with layers, a {files}-file sysroot costs a step ≤ 1.25× the busybox one"),
        format!("{ratio:.2}×"),
        ratio <= 1.25,
    );
    let gain = case.median(merged) / case.median(layered);
    case.goal(
        "(no goal set) layers faster than merged views over the large sysroot".to_string(),
        format!("{gain:.1}× faster"),
        gain > 1.0,
    );
    case.commands.extend([
        format!("cas-gen $W/sysroot-small --elements {n} --layers 3 --change-share 1 --change-round R"),
        format!("cas-gen $W/sysroot-big --elements {n} --layers 3 --big-import {files} --big-size 256 --big-in-sysroot 1 --change-share 1 --change-round R"),
        "cd $W/sysroot-small && $CAS --store $W/store-sysroot-small --json -j 1 build all.yaml   # a new R each run".into(),
        "cd $W/sysroot-big && $CAS --store $W/store-sysroot-big --json -j 1 build all.yaml".into(),
        "cd $W/sysroot-big && CAS_SANDBOX_OVERLAY=0 $CAS --store $W/store-sysroot-merged --json -j 1 build all.yaml".into(),
    ]);
    Ok(case)
}

fn bwrap_or_sh(g: &Generated, o: &GenOptions, scratch: &Path, bwrap: bool) -> Result<Duration> {
    run_baseline(g, o, scratch, bwrap)
}

pub fn noop(env: &Env, built: &[Built]) -> Result<Case> {
    let mut case = Case::new(
        "noop",
        "no-op build",
        "`cas build all.yaml` when every result is in the store: load, keys, one action-cache \
         lookup per element, nothing runs. Baseline: `cas show all.yaml` on the same project and \
         store (load, keys and states, no build), so the difference is what build adds.",
    );
    let (warmup, reps) = env.plan.noop;
    for b in built {
        env.say(&format!("noop: {} elements", b.n));
        let (mut bs, mut ss, mut counts) = (vec![], vec![], vec![]);
        for i in 0..warmup + reps {
            let (d, out) = run(env
                .cas(&b.store, &b.g.root)
                .args(["--json", "build", "all.yaml"]))?;
            let v = json_of(&out)?;
            let s = run_quiet(env.cas(&b.store, &b.g.root).args(["show", "all.yaml"]))?;
            if i >= warmup {
                bs.push(ms(d));
                ss.push(ms(s));
                counts.push(count(&v, "built"));
            }
        }
        let rs = case.row(format!("{} elements: `cas show`", b.n), ss, Unit::Ms, None);
        let rb = case.row(
            format!("{} elements: `cas build`, all cached", b.n),
            bs,
            Unit::Ms,
            Some(rs),
        );
        case.row(
            format!("{} elements: steps built", b.n),
            counts,
            Unit::Count,
            None,
        );
        let med = case.median(rb);
        if b.n >= 1_000 || b.n == built.last().map_or(0, |b| b.n) {
            case.goal(
                format!("no-op build of {} elements < 100 ms", b.n),
                fmt_ms(med),
                med < 100.0,
            );
        }
        case.commands.push(format!(
            "cd $W/p{} && $CAS --store $W/store-cold-{} --json build all.yaml",
            b.n, b.n
        ));
        case.commands.push(format!(
            "cd $W/p{} && $CAS --store $W/store-cold-{} show all.yaml",
            b.n, b.n
        ));
    }
    Ok(case)
}

pub fn cutoff(env: &Env, built: &[Built]) -> Result<Case> {
    let b = built.last().ok_or("cutoff needs a built project")?;
    let mut case = Case::new(
        "cutoff",
        "early cutoff",
        &format!(
            "In the built {}-element project, the shell comment of the leaf `{}` changes \
             (`true # rev K`, a new K each run): its key changes, its output does not. The leaf \
             rebuilds; its {} transitive dependents keep their keys (keys hash dependency \
             outputs) and stay cached. Baseline: a no-op build of the same project, interleaved.",
            b.n, b.g.leaf, b.g.leaf_dependents
        ),
    );
    let (warmup, reps) = env.plan.cutoff;
    let (mut ts, mut ns, mut steps, mut cached) = (vec![], vec![], vec![], vec![]);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for i in 0..warmup + reps {
        gen::set_leaf_comment(&b.g, &b.o, &format!("rev {stamp}-{i}"))
            .map_err(|e| e.to_string())?;
        let (d, out) = run(env
            .cas(&b.store, &b.g.root)
            .args(["--json", "build", "all.yaml"]))?;
        let v = json_of(&out)?;
        let (dn, _) = run(env
            .cas(&b.store, &b.g.root)
            .args(["--json", "build", "all.yaml"]))?;
        if i >= warmup {
            ts.push(ms(d));
            ns.push(ms(dn));
            steps.push(count(&v, "built"));
            cached.push(count(&v, "cached"));
        }
    }
    gen::set_leaf_comment(&b.g, &b.o, "rev 0").map_err(|e| e.to_string())?;
    let rn = case.row(format!("{} elements: no-op build", b.n), ns, Unit::Ms, None);
    let rt = case.row(
        format!("{} elements: build after the comment change", b.n),
        ts,
        Unit::Ms,
        Some(rn),
    );
    let rs = case.row("steps rebuilt", steps.clone(), Unit::Count, None);
    case.row("elements cached", cached, Unit::Count, None);
    let net = case.median(rt) - case.median(rn);
    case.note_row(rt, format!("{net:.0} ms more than a no-op: one step"));
    let worst = steps.iter().copied().fold(0.0, f64::max);
    case.goal(
        format!(
            "only the changed leaf rebuilds (1 step; its {} dependents cut off)",
            b.g.leaf_dependents
        ),
        format!("{worst:.0} step(s) rebuilt"),
        (worst - 1.0).abs() < f64::EPSILON,
    );
    let _ = rs;
    case.commands.push(format!(
        "# edit $W/p{}/elements/{}: `true # rev K` with a new K",
        b.n, b.g.leaf
    ));
    case.commands.push(format!(
        "cd $W/p{} && $CAS --store $W/store-cold-{} --json build all.yaml",
        b.n, b.n
    ));
    Ok(case)
}

// ---------------------------------------------------------------- large trees

/// The 20,000-file tree, its 10 parts (hardlinks) and a store holding it.
pub struct Big {
    pub dir: PathBuf,
    pub tree: PathBuf,
    pub parts: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

pub fn big_tree(env: &Env) -> Result<Big> {
    let dir = env.work.join("big");
    let tree = dir.join("tree");
    let n = env.plan.big_files;
    env.say(&format!(
        "writing a tree of {n} files × {} bytes",
        env.plan.big_file_size
    ));
    force_remove(&dir)?;
    let layout =
        gen::write_big_tree(&tree, n, env.plan.big_file_size, 10, 7).map_err(|e| e.to_string())?;
    let mut parts = vec![];
    for (p, files) in layout.iter().enumerate() {
        let part = dir.join(format!("parts/p{p:02}"));
        for f in files {
            let dst = part.join(f);
            std::fs::create_dir_all(dst.parent().unwrap()).map_err(|e| e.to_string())?;
            std::fs::hard_link(tree.join(f), &dst).map_err(|e| e.to_string())?;
        }
        parts.push(part);
    }
    Ok(Big {
        dir,
        tree,
        parts,
        files: layout.into_iter().flatten().collect(),
        bytes: (n * env.plan.big_file_size) as u64,
    })
}

fn ingest_digest(env: &Env, store: &Path, tree: &Path) -> Result<String> {
    let (_, out) = run(env
        .cas(store, &env.work)
        .arg("store")
        .arg("ingest")
        .arg(tree))?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if s.len() != 64 {
        return Err(format!("cas store ingest printed {s:?}, not a digest"));
    }
    Ok(s)
}

pub fn materialise(env: &Env, big: &Big) -> Result<Case> {
    let n = big.files.len();
    let mut case = Case::new(
        "view",
        "materialising a view",
        &format!(
            "A tree of {n} files ({:.0} MB, 10 parts of {} files, 100 files per directory) is ingested \
             once; then, each run, materialised as a fresh view (`cas store view`, after deleting the \
             previous `views/<hex>`), as a hardlinked checkout (`cas store checkout --hardlinks`), and \
             by the baselines: `cp -al` (the floor), `cp -a`, and Buildroot's per-package method, a \
             chain of 10 `rsync -a --link-dest` (one per part: each part is a dependency's \
             directory, synced into the destination in turn; the parts are disjoint, so this is \
             the cheapest form of the chain). Page cache warm. Reuse: `cas store view` of a view \
             that exists, against the floor of starting the same binary (`cas --version`).",
            big.bytes as f64 / 1e6,
            n.div_ceil(10)
        ),
    );
    let store = env.work.join("store-view");
    force_remove(&store)?;
    let digest = ingest_digest(env, &store, &big.tree)?;
    let dest = big.dir.join("dest");
    let (warmup, reps) = env.plan.big_reps;
    let mut s: Vec<Vec<f64>> = vec![vec![]; 7];
    let clean = |p: &Path| force_remove(p);
    for i in 0..warmup + reps {
        env.say(&format!("view: run {}/{}", i + 1, warmup + reps));
        let mut t = [0f64; 7];
        clean(&dest)?;
        t[0] = ms(run_quiet(
            Command::new("cp").arg("-al").arg(&big.tree).arg(&dest),
        )?);
        clean(&dest)?;
        // Fresh view: drop the previous one (not timed).
        force_remove(&store.join("views").join(&digest))?;
        let (d, out) = run(env.cas(&store, &env.work).args(["store", "view", &digest]))?;
        t[1] = ms(d);
        let view = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !view.join(&big.files[0]).exists() {
            return Err(format!(
                "the view {} lacks {}",
                view.display(),
                big.files[0].display()
            ));
        }
        t[2] = ms(run_quiet(
            env.cas(&store, &env.work).args(["store", "view", &digest]),
        )?);
        t[3] = ms(run_quiet(
            env.cas(&store, &env.work)
                .args(["store", "checkout", &digest])
                .arg(&dest)
                .arg("--hardlinks"),
        )?);
        clean(&dest)?;
        t[4] = ms(run_quiet(
            Command::new("cp").arg("-a").arg(&big.tree).arg(&dest),
        )?);
        clean(&dest)?;
        let start = Instant::now();
        for part in &big.parts {
            let mut link = part.clone().into_os_string();
            link.push("/");
            let mut src = part.clone().into_os_string();
            src.push("/");
            let mut c = Command::new("rsync");
            c.arg("-a")
                .arg(format!("--link-dest={}", link.to_string_lossy()))
                .arg(&src)
                .arg(&dest);
            run_quiet(&mut c)?;
        }
        t[5] = ms(start.elapsed());
        clean(&dest)?;
        t[6] = ms(run_quiet(Command::new(&env.cas).arg("--version"))?);
        if i >= warmup {
            for k in 0..7 {
                s[k].push(t[k]);
            }
        }
    }
    let cpal = case.row("`cp -al` (floor)", s[0].clone(), Unit::Ms, None);
    let view = case.row(
        "`cas store view` (fresh view)",
        s[1].clone(),
        Unit::Ms,
        Some(cpal),
    );
    let co = case.row(
        "`cas store checkout --hardlinks`",
        s[3].clone(),
        Unit::Ms,
        Some(cpal),
    );
    let cpa = case.row("`cp -a`", s[4].clone(), Unit::Ms, Some(view));
    let rs = case.row(
        "chain of 10 `rsync -a --link-dest`",
        s[5].clone(),
        Unit::Ms,
        Some(view),
    );
    let ver = case.row(
        "`cas --version` (process start floor)",
        s[6].clone(),
        Unit::Ms,
        None,
    );
    let reuse = case.row(
        "`cas store view` (view exists: reuse)",
        s[2].clone(),
        Unit::Ms,
        Some(ver),
    );
    let _ = (co, cpa);
    let r1 = case.median(view) / case.median(cpal);
    case.goal("fresh view ≤ 1.3× `cp -al`", format!("{r1:.2}×"), r1 <= 1.3);
    let r2 = case.median(rs) / case.median(view);
    case.goal(
        "fresh view ≥ 3× faster than the rsync chain",
        format!("{r2:.2}×"),
        r2 >= 3.0,
    );
    let r3 = case.median(reuse);
    case.goal(
        "reuse of an existing view < 5 ms (whole `cas` process)",
        fmt_ms(r3),
        r3 < 5.0,
    );
    let net = r3 - case.median(ver);
    case.goal(
        "(no goal set) reuse adds < 1 ms to the process start floor (`cas --version`)",
        format!("{net:+.2} ms"),
        net < 1.0,
    );
    case.commands.extend([
        "$CAS --store $W/store-view store ingest $W/big/tree      # once: prints DIGEST"
            .to_string(),
        "cp -al $W/big/tree $W/big/dest".into(),
        "rm -rf $W/store-view/views/DIGEST && $CAS --store $W/store-view store view DIGEST".into(),
        "$CAS --store $W/store-view store view DIGEST            # reuse".into(),
        "$CAS --store $W/store-view store checkout DIGEST $W/big/dest --hardlinks".into(),
        "cp -a $W/big/tree $W/big/dest".into(),
        "for p in $W/big/parts/p00 ... p09; do rsync -a --link-dest=$p/ $p/ $W/big/dest; done"
            .into(),
        "$CAS --version".into(),
    ]);
    force_remove(&store)?;
    Ok(case)
}

/// Reads every file once (untimed), so a measurement that follows finds the
/// data in the page cache, as the `b3sum` baselines do. Needed here: the
/// kernel's DAMON reclaim pages out file data not accessed for about a
/// minute, and the fresh ingest and `cp -a` runs take longer than that.
/// `sync`, untimed: the next measurement does not pay for the previous
/// one's write-back.
fn settle() -> Result<()> {
    run_quiet(&mut Command::new("sync")).map(|_| ())
}

fn warm(tree: &Path, files: &[PathBuf]) -> Result<()> {
    for f in files {
        let p = tree.join(f);
        std::fs::read(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
    }
    Ok(())
}

fn b3sum(tree: &Path, files: &[PathBuf], procs: usize) -> Result<Duration> {
    let chunk = files.len().div_ceil(procs.max(1)).max(1);
    let t = Instant::now();
    let mut children = vec![];
    for part in files.chunks(chunk) {
        let child = Command::new("b3sum")
            .current_dir(tree)
            .args(part)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run b3sum: {e}"))?;
        children.push(child);
    }
    for mut c in children {
        let st = c.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("b3sum failed: {st}"));
        }
    }
    Ok(t.elapsed())
}

pub fn ingest(env: &Env, big: &Big) -> Result<Case> {
    let n = big.files.len();
    let mb = big.bytes as f64 / 1e6;
    let mut case = Case::new(
        "ingest",
        "ingesting a tree",
        &format!(
            "`cas store ingest` of the same {n}-file, {mb:.0} MB tree: into a fresh store (every \
             object is new: {n} new inodes) and again into a store that holds them (hashing and \
             lookups only). Baseline: `b3sum` over the same files, in one process and in two \
             processes with half the files each (the hashing floor on {} cores). Throughput goal \
             against the two-process floor; every file is read once (untimed) before each \
             re-ingest, so that all runs find the data in the page cache. A fresh ingest writes every file anew, so it is also \
             compared with `cp -a` of the same tree (measured in the first two runs): creating \
             {n} files is the floor there, not hashing. Then peak memory (`wait4` ru_maxrss of \
             the cas process) when ingesting a {:.0} MiB tree (one file of half that size and 1 MiB files).",
            env.nproc,
            env.plan.mem_bytes as f64 / (1 << 20) as f64
        ),
    );
    let store = env.work.join("store-ingest");
    let (warmup, reps) = env.plan.big_reps;
    let mut s: Vec<Vec<f64>> = vec![vec![]; 6];
    let copy = env.work.join("big").join("ingest-copy");
    for i in 0..warmup + reps {
        env.say(&format!("ingest: run {}/{}", i + 1, warmup + reps));
        if i >= warmup && i < warmup + 2 {
            force_remove(&copy)?;
            run_quiet(&mut Command::new("sync"))?;
            let t = ms(run_quiet(
                Command::new("cp").arg("-a").arg(&big.tree).arg(&copy),
            )?);
            s[5].push(t);
            force_remove(&copy)?;
        }
        run_quiet(&mut Command::new("sync"))?;
        let t0 = ms(b3sum(&big.tree, &big.files, 1)?);
        let t1 = ms(b3sum(&big.tree, &big.files, 2)?);
        force_remove(&store)?;
        run_quiet(env.cas(&store, &env.work).args(["store", "stats"]))?;
        let t2 = ms(run_quiet(
            env.cas(&store, &env.work)
                .arg("store")
                .arg("ingest")
                .arg(&big.tree),
        )?);
        // Unchanged files: the stat cache answers without reading them.
        // The page cache is warmed first, as it is for `b3sum` (this machine
        // pages out file data untouched for a minute: see warm()).
        warm(&big.tree, &big.files)?;
        settle()?;
        let t3 = ms(run_quiet(
            env.cas(&store, &env.work)
                .arg("store")
                .arg("ingest")
                .arg(&big.tree),
        )?);
        // Every file's ctime moved (untimed): each one is read and hashed again.
        run_quiet(
            Command::new("find")
                .arg(&big.tree)
                .args(["-type", "f", "-exec", "touch", "-c", "{}", "+"]),
        )?;
        warm(&big.tree, &big.files)?;
        settle()?;
        let t4 = ms(run_quiet(
            env.cas(&store, &env.work)
                .arg("store")
                .arg("ingest")
                .arg(&big.tree),
        )?);
        if i >= warmup {
            for (k, v) in [t0, t1, t2, t3, t4].into_iter().enumerate() {
                s[k].push(v);
            }
        }
    }
    force_remove(&store)?;
    let b1 = case.row("`b3sum`, one process", s[0].clone(), Unit::Ms, None);
    let b2 = case.row(
        "`b3sum`, two processes (floor)",
        s[1].clone(),
        Unit::Ms,
        None,
    );
    let fresh = case.row(
        "`cas store ingest`, fresh store",
        s[2].clone(),
        Unit::Ms,
        Some(b2),
    );
    let cached = case.row(
        "`cas store ingest`, objects present, files unchanged (stat cache)",
        s[3].clone(),
        Unit::Ms,
        Some(b2),
    );
    let again = case.row(
        "`cas store ingest`, objects present, every file touched (all re-hashed)",
        s[4].clone(),
        Unit::Ms,
        Some(b2),
    );
    let cp = case.row(
        "`cp -a` of the tree (creating the same files)",
        s[5].clone(),
        Unit::Ms,
        None,
    );
    for r in [b1, b2, fresh, cached, again, cp] {
        let med = case.median(r);
        case.note_row(r, format!("{:.0} MB/s", mb / (med / 1000.0)));
    }
    let vs_cp = case.median(fresh) / case.median(cp);
    let tp_fresh = case.median(b2) / case.median(fresh);
    let tp_again = case.median(b2) / case.median(again);
    case.goal(
        "ingest throughput ≥ 0.7× `b3sum` (two processes), fresh store",
        format!("{tp_fresh:.2}×"),
        tp_fresh >= 0.7,
    );
    case.goal(
        "ingest throughput ≥ 0.7× `b3sum` (two processes), objects present, all re-hashed",
        format!("{tp_again:.2}×"),
        tp_again >= 0.7,
    );
    case.goal(
        "(no goal set) fresh store no slower than `cp -a` of the same tree",
        format!("{vs_cp:.2}× the time of `cp -a`"),
        vs_cp <= 1.0,
    );
    case.commands.extend([
        "cd $W/big/tree && b3sum FILE...                     # one process, every file".to_string(),
        "cd $W/big/tree && b3sum FIRST-HALF... & b3sum SECOND-HALF... & wait".into(),
        "sync && cp -a $W/big/tree $W/big/ingest-copy          # first two runs".into(),
        "rm -rf $W/store-ingest && $CAS --store $W/store-ingest store stats && sync && $CAS --store $W/store-ingest store ingest $W/big/tree".into(),
        "$CAS --store $W/store-ingest store ingest $W/big/tree   # again: unchanged files (stat cache)".into(),
        "find $W/big/tree -type f -exec touch -c {} + && $CAS --store $W/store-ingest store ingest $W/big/tree   # all re-hashed".into(),
    ]);

    // Peak memory on a large tree.
    let bytes = env.plan.mem_bytes;
    env.say(&format!(
        "ingest: writing a {} MiB tree for peak memory",
        bytes >> 20
    ));
    let mem = env.work.join("mem");
    force_remove(&mem)?;
    write_mem_tree(&mem, bytes).map_err(|e| format!("writing {}: {e}", mem.display()))?;
    force_remove(&store)?;
    let (d, rss, _) = run_peak_rss(
        env.cas(&store, &env.work)
            .arg("store")
            .arg("ingest")
            .arg(&mem),
    )?;
    let rr = case.row(
        format!("peak RSS, ingest of {} MiB", bytes >> 20),
        vec![rss as f64],
        Unit::KiB,
        None,
    );
    case.note_row(rr, format!("took {}", fmt_ms(ms(d))));
    case.goal(
        format!("peak memory ingesting {} MiB < 100 MiB", bytes >> 20),
        format!("{:.1} MiB", rss as f64 / 1024.0),
        rss < 100 * 1024,
    );
    case.commands.push(format!(
        "$CAS --store $W/store-ingest store ingest $W/mem   # {} MiB: one {} MiB file + 1 MiB files; peak RSS from wait4",
        bytes >> 20,
        bytes >> 21
    ));
    force_remove(&store)?;
    force_remove(&mem)?;
    Ok(case)
}

/// A tree of `bytes` bytes: one file of half the size, the rest as 1 MiB files.
fn write_mem_tree(root: &Path, bytes: u64) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(root.join("many"))?;
    let mut rng = gen::Rng::new(99);
    let mut block = vec![0u8; 1 << 20];
    let mut fill = |block: &mut Vec<u8>| {
        for c in block.chunks_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
    };
    let half = bytes / 2;
    let mut f = std::io::BufWriter::new(std::fs::File::create(root.join("large.bin"))?);
    let mut left = half;
    while left > 0 {
        fill(&mut block);
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    let count = (bytes - half).div_ceil(1 << 20);
    for i in 0..count {
        fill(&mut block);
        std::fs::write(root.join(format!("many/f{i:05}")), &block)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- remote

/// nginx with WebDAV PUT on 127.0.0.1 (a free port), killed on drop.
pub(crate) struct Nginx {
    child: std::process::Child,
    pub(crate) port: u16,
}

impl Nginx {
    pub(crate) fn start(dir: &Path) -> Result<Nginx> {
        let nginx = Path::new("/usr/sbin/nginx");
        if !nginx.exists() {
            return Err("the remote case needs /usr/sbin/nginx (Debian package nginx)".into());
        }
        for d in ["www", "tmp", "logs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n\
                 location / {{\n      dav_methods PUT;\n      create_full_put_path on;\n      client_max_body_size 0;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nginx: {e}"))?;
        let n = Nginx { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx did not start: {}",
                    std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(n)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => files_under(&p, out),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
}

pub fn remote(env: &Env, built: &[Built]) -> Result<Case> {
    let b = built.first().ok_or("remote needs a built project")?;
    let dir = env.work.join("nginx");
    force_remove(&dir)?;
    let nginx = Nginx::start(&dir)?;
    let url = format!("http://127.0.0.1:{}/cache", nginx.port);
    let mut case = Case::new(
        "remote",
        "pulling from a remote cache (nginx on loopback)",
        &format!(
            "The built {}-element project is pushed (`cas push`, unsigned) to nginx with WebDAV PUT on \
             127.0.0.1; then, each run, into a fresh store: `cas build --remote URL --trust-unsigned` \
             (results pulled instead of built) and `cas pull` of the same target. Baselines in the same \
             run: building locally into a fresh store (`-j {}`), and the transfer floor: one `curl` \
             process fetching every file the remote holds (keep-alive, output discarded).",
            b.n, env.nproc
        ),
    );
    env.say(&format!("remote: pushing {} elements", b.n));
    let (dpush, out) = run(env
        .cas(&b.store, &b.g.root)
        .args(["--json", "push", "all.yaml", "--remote", &url]))?;
    let _ = out;
    let mut files = vec![];
    files_under(&dir.join("www"), &mut files);
    let www = dir.join("www");
    let mut cfg = String::new();
    for f in &files {
        let rel = f.strip_prefix(&www).unwrap_or(f);
        cfg.push_str(&format!(
            "url = \"http://127.0.0.1:{}/{}\"\noutput = \"/dev/null\"\n",
            nginx.port,
            rel.display()
        ));
    }
    let curl_cfg = dir.join("curl.cfg");
    std::fs::write(&curl_cfg, cfg).map_err(|e| e.to_string())?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();

    let (warmup, reps) = env.plan.noop;
    let store = env.work.join("store-remote");
    let (mut local, mut pulled_build, mut pull, mut curl, mut counts, mut built_counts) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let reps = reps.min(3);
    for i in 0..warmup + reps {
        env.say(&format!("remote: run {}/{}", i + 1, warmup + reps));
        force_remove(&store)?;
        let (dl, _) = run(env.cas(&store, &b.g.root).args([
            "--json",
            "-j",
            &env.nproc.to_string(),
            "build",
            "all.yaml",
        ]))?;
        force_remove(&store)?;
        let (dr, out) = run(env.cas(&store, &b.g.root).args([
            "--json",
            "build",
            "all.yaml",
            "--remote",
            &url,
            "--trust-unsigned",
        ]))?;
        let v = json_of(&out)?;
        force_remove(&store)?;
        let dp = run_quiet(env.cas(&store, &b.g.root).args([
            "pull",
            "all.yaml",
            "--remote",
            &url,
            "--trust-unsigned",
        ]))?;
        let dc = run_quiet(Command::new("curl").args(["-s", "-f", "-K"]).arg(&curl_cfg))?;
        if i >= warmup {
            local.push(ms(dl));
            pulled_build.push(ms(dr));
            pull.push(ms(dp));
            curl.push(ms(dc));
            counts.push(count(&v, "pulled"));
            built_counts.push(count(&v, "built"));
        }
    }
    force_remove(&store)?;
    drop(nginx);
    let rl = case.row(
        format!("{} elements: local cold build, `-j {}`", b.n, env.nproc),
        local,
        Unit::Ms,
        None,
    );
    let rc = case.row(
        format!(
            "`curl`: every file of the remote ({} files, {:.1} MB)",
            files.len(),
            bytes as f64 / 1e6
        ),
        curl,
        Unit::Ms,
        None,
    );
    let rb = case.row(
        format!("{} elements: `cas build --remote` into a fresh store", b.n),
        pulled_build,
        Unit::Ms,
        Some(rl),
    );
    let rp = case.row(
        format!("{} elements: `cas pull` into a fresh store", b.n),
        pull,
        Unit::Ms,
        Some(rc),
    );
    let pushed = case.row(
        format!("{} elements: `cas push` to the empty remote (once)", b.n),
        vec![ms(dpush)],
        Unit::Ms,
        None,
    );
    case.row(
        "elements pulled by `build --remote`",
        counts.clone(),
        Unit::Count,
        None,
    );
    case.row(
        "steps built by `build --remote`",
        built_counts.clone(),
        Unit::Count,
        None,
    );
    let _ = (rp, pushed);
    let r = case.median(rb) / case.median(rl);
    case.goal(
        "(no goal set) build from the remote faster than building locally",
        format!("{r:.2}× the local build"),
        r < 1.0,
    );
    let worst_built = built_counts.iter().copied().fold(0.0, f64::max);
    case.goal(
        "nothing built when the remote has every result",
        format!("{worst_built:.0} step(s) built"),
        worst_built == 0.0,
    );
    case.commands.extend([
        "nginx -p $W/nginx -c $W/nginx/nginx.conf    # WebDAV PUT on 127.0.0.1:PORT, see cases.rs Nginx".to_string(),
        format!("cd $W/p{} && $CAS --store $W/store-cold-{} --json push all.yaml --remote http://127.0.0.1:PORT/cache", b.n, b.n),
        format!("cd $W/p{} && rm -rf $W/store-remote && $CAS --store $W/store-remote --json -j {} build all.yaml", b.n, env.nproc),
        format!("cd $W/p{} && rm -rf $W/store-remote && $CAS --store $W/store-remote --json build all.yaml --remote http://127.0.0.1:PORT/cache --trust-unsigned", b.n),
        format!("cd $W/p{} && rm -rf $W/store-remote && $CAS --store $W/store-remote pull all.yaml --remote http://127.0.0.1:PORT/cache --trust-unsigned", b.n),
        "curl -s -f -K $W/nginx/curl.cfg    # url = .../FILE, output = /dev/null for every file under www/".into(),
    ]);
    Ok(case)
}

//! Case `remote-exec`: the trivial project of `cold` built locally and on a
//! farm (BuildGrid with one and with two `cas worker`s, `cas build
//! --remote-exec`), each into fresh stores against a fresh BuildGrid; then
//! its results pulled from BuildGrid's cache and from nginx.

use std::path::Path;
use std::process::{Child, Stdio};

use crate::buildgrid::BuildGrid;
use crate::cases::{json_of, Env, Mode};
use crate::gen;
use crate::report::{Case, Unit};
use crate::util::{force_remove, ms, run};

type Result<T> = std::result::Result<T, String>;

/// Workers killed on drop.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn workers(env: &Env, dir: &Path, url: &str, n: usize) -> Result<Workers> {
    let mut w = Workers(Vec::new());
    for i in 0..n {
        let store = dir.join(format!("worker{i}-store"));
        let log =
            std::fs::File::create(dir.join(format!("worker{i}.log"))).map_err(|e| e.to_string())?;
        let child = env
            .cas(&store, dir)
            .args(["worker", "--server", url, "--name", &format!("w{i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start cas worker: {e}"))?;
        w.0.push(child);
    }
    // each says so once its bot session exists
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for i in 0..n {
        let log = dir.join(format!("worker{i}.log"));
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("bot session")
        {
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "worker {i} did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(w)
}

/// Per Action, from the workers' logs: inputs + run + outputs, in ms.
fn worker_times(dir: &Path, n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..n {
        let text = std::fs::read_to_string(dir.join(format!("worker{i}.log"))).unwrap_or_default();
        for line in text.lines() {
            let num = |key: &str| -> Option<f64> {
                let rest = &line[line.find(key)? + key.len()..];
                rest.split_whitespace().next()?.parse().ok()
            };
            if let (Some(a), Some(b), Some(c)) = (num("inputs "), num(", run "), num("outputs ")) {
                out.push(a + b + c);
            }
        }
    }
    out
}

/// Every key changes with the run: BuildGrid's cache never answers for an
/// earlier run.
fn salt(root: &Path, run: &str) -> Result<()> {
    std::fs::write(
        root.join("project.yaml"),
        format!("name: bench\nelement-path: elements\nenvironment:\n  BENCH_RUN: \"{run}\"\n"),
    )
    .map_err(|e| e.to_string())
}

pub fn remote_exec(env: &Env) -> Result<Case> {
    let n = 200;
    let jobs = env.nproc;
    let mut case = Case::new(
        "remote-exec",
        "remote execution: BuildGrid and `cas worker`",
        &format!(
            "The trivial project of `cold` with {n} elements (busybox base, two commands each), \
             every run with new keys (a project environment variable), into fresh stores. Local: \
             `cas build -j 1` and `-j {jobs}`. Farm: BuildGrid 0.4.4 (PostgreSQL 15, on loopback, \
             started fresh for each farm run; its scheduler polls every 0.1 s and assigns every \
             0.05 s with a jitter of at most 0.02 s, BuildGrid's default jitter being up to 1 s) \
             with one `cas worker` (client `-j {jobs}`) and with \
             two (client `-j {}`), `cas build --remote-exec grpc://… --remote grpc://… --push`; each worker starts \
             with an empty store, so the busybox sysroot is fetched once per worker. A worker runs \
             one Action at a time, so one worker is serial like `-j 1`: the overhead of the remote \
             path per step is (farm with one worker − local `-j 1`) / {n}. Then the {n} results \
             pulled into fresh stores (`cas build --remote URL --trust-unsigned`, 3 runs \
             interleaved) from BuildGrid's ActionCache and CAS, and from nginx (WebDAV, the same \
             results pushed by `cas push`).",
            2 * jobs
        ),
    );
    if env.mode == Mode::Smoke {
        case.notes
            .push("not measured in smoke mode (it needs BuildGrid and PostgreSQL)".into());
        return Ok(case);
    }
    if let Err(why) = crate::buildgrid::bgd() {
        case.notes.push(format!("not measured: {why}"));
        return Ok(case);
    }
    let dir = env.work.join("remote-exec");
    force_remove(&dir)?;
    let root = dir.join("p");
    gen::generate(&root, &crate::cases::trivial(n)).map_err(|e| e.to_string())?;
    let cold = |store: &Path, extra: &[&str]| -> Result<(f64, serde_json::Value)> {
        force_remove(store)?;
        let mut c = env.cas(store, &root);
        c.args(["--json", "build", "all.yaml"]).args(extra);
        let (d, out) = run(&mut c)?;
        Ok((ms(d), json_of(&out)?))
    };
    let built = |v: &serde_json::Value| v["built"].as_f64().unwrap_or(0.0);

    env.say("remote-exec: local -j 1");
    salt(&root, "local-1")?;
    let (local1, _) = cold(&dir.join("local1-store"), &["-j", "1"])?;
    env.say(&format!("remote-exec: local -j {jobs}"));
    salt(&root, "local-n")?;
    let local_store = dir.join("localn-store");
    let (localn, _) = cold(&local_store, &["-j", &jobs.to_string()])?;

    let farm =
        |workers_n: usize, j: usize, run_id: &str| -> Result<(f64, f64, Vec<f64>, BuildGrid)> {
            env.say(&format!("remote-exec: farm of {workers_n} worker(s)"));
            let bgdir = dir.join(format!("buildgrid-{run_id}"));
            let bg = BuildGrid::start(&bgdir)?;
            let _w = workers(env, &bgdir, &bg.url(), workers_n)?;
            salt(&root, run_id)?;
            let (t, v) = cold(
                &dir.join(format!("farm-{run_id}-store")),
                &[
                    "-j",
                    &j.to_string(),
                    "--remote-exec",
                    &bg.url(),
                    "--remote",
                    &bg.url(),
                    "--push",
                    "--trust-unsigned",
                ],
            )?;
            Ok((t, built(&v), worker_times(&bgdir, workers_n), bg))
        };
    let (farm1, built1, times1, bg1) = farm(1, jobs, "farm-1")?;
    drop(bg1);
    let (farm2, built2, _, bg2) = farm(2, 2 * jobs, "farm-2")?;

    // pulls: BuildGrid (the results farm-2 pushed) against nginx (the same
    // project's results of that run, pushed by `cas push`)
    let nginx_dir = dir.join("nginx");
    let nginx = crate::cases::Nginx::start(&nginx_dir)?;
    let http = format!("http://127.0.0.1:{}/cache", nginx.port);
    let farm_store = dir.join("farm-farm-2-store");
    let (_, _) = run(env
        .cas(&farm_store, &root)
        .args(["push", "all.yaml", "--remote", &http]))?;
    let (mut from_bg, mut from_nginx, mut pulled_bg, mut pulled_nginx) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..3 {
        env.say(&format!("remote-exec: pulls, run {}/3", i + 1));
        let st = dir.join("pull-store");
        let (t, v) = cold(&st, &["--remote", &bg2.url(), "--trust-unsigned"])?;
        from_bg.push(t);
        pulled_bg.push(v["pulled"].as_f64().unwrap_or(0.0));
        let (t, v) = cold(&st, &["--remote", &http, "--trust-unsigned"])?;
        from_nginx.push(t);
        pulled_nginx.push(v["pulled"].as_f64().unwrap_or(0.0));
    }
    drop(nginx);
    drop(bg2);

    let r1 = case.row(
        format!("{n} elements: local, `-j 1`"),
        vec![local1],
        Unit::Ms,
        None,
    );
    let rn = case.row(
        format!("{n} elements: local, `-j {jobs}`"),
        vec![localn],
        Unit::Ms,
        None,
    );
    case.row(
        format!("{n} elements: farm, 1 worker (client `-j {jobs}`)"),
        vec![farm1],
        Unit::Ms,
        Some(r1),
    );
    case.row(
        format!("{n} elements: farm, 2 workers (client `-j {}`)", 2 * jobs),
        vec![farm2],
        Unit::Ms,
        Some(rn),
    );
    case.row(
        "steps built by the farm runs (1 worker, 2 workers)",
        vec![built1, built2],
        Unit::Count,
        None,
    );
    let rw = case.row(
        "one worker: its own time per Action (inputs + run + outputs)",
        times1,
        Unit::Ms,
        None,
    );
    let rng = case.row(
        format!("{n} results pulled from nginx"),
        from_nginx,
        Unit::Ms,
        None,
    );
    let rbg = case.row(
        format!("{n} results pulled from BuildGrid (REAPI)"),
        from_bg,
        Unit::Ms,
        Some(rng),
    );
    case.row(
        "results pulled per run (BuildGrid)",
        pulled_bg,
        Unit::Count,
        None,
    );
    case.row(
        "results pulled per run (nginx)",
        pulled_nginx,
        Unit::Count,
        None,
    );
    let per_step = (farm1 - local1) / n as f64;
    case.goal(
        "remote path costs under 50 ms per step over a local build",
        format!(
            "{per_step:.0} ms per step (the worker's own part: {:.0} ms median per Action, the local step's {:.0} ms included)",
            case.median(rw),
            local1 / n as f64
        ),
        per_step < 50.0,
    );
    let pull_ratio = case.median(rbg) / case.median(rng);
    case.goal(
        "(no goal set) pulling from REAPI as fast as from nginx",
        format!("{pull_ratio:.2}× nginx"),
        pull_ratio <= 1.2,
    );
    // the measured causes of a missed goal, beside it (bench/NOTES.md has
    // the profiles)
    if per_step >= 50.0 {
        case.notes.push(format!(
            "Where the {per_step:.0} ms per step go: the worker's own work (inputs, run, \
             outputs) is {:.0} ms of it; the rest is spent waiting in BuildGrid, whose \
             scheduler hands out work on its polling cycle (above): with one worker, the farm \
             finished one Action every {:.0} ms, about one cycle of its 0.1 s notifiers. \
             (\"What the profiles found\", bench/NOTES.md.)",
            case.median(rw),
            farm1 / n as f64
        ));
    }
    if pull_ratio > 1.2 {
        case.notes.push(format!(
            "Why REAPI pulls are slower: each result is one GetActionResult (its `cas/result` \
             and `cas/digests` inline, as pushed: spec/remote.md), answered by BuildGrid, a \
             Python server, one call at a time (16 lookups in flight gain nothing against it) \
             and after checking the result's blobs against its storage, where nginx serves a \
             file; {:.2} ms per result against {:.2} ms. (\"What the profiles found\", \
             bench/NOTES.md.)",
            case.median(rbg) / n as f64,
            case.median(rng) / n as f64
        ));
    }
    case.commands.extend([
        "bash scripts/install-deps.sh    # BuildGrid 0.4.4 venv, postgresql-15".to_string(),
        "cargo run --release -p cas-bench -- --only remote-exec".to_string(),
    ]);
    Ok(case)
}

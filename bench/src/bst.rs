//! `bst`: cas and BuildStream side by side, in the same run, on the same
//! generated DAG (the trivial project of `cold`, written as `.bst` for
//! BuildStream: the same base import, the same graph, the same commands).
//!
//! BuildStream 2.8.1 comes from PyPI into a venv under the work directory
//! (`python3 -m venv $W/bst-venv && $W/bst-venv/bin/pip install
//! buildstream==2.8.1`), or from `CAS_BENCH_BST` (a `bst` executable). When
//! neither works, the case says so and measures nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cases::{Env, Mode};
use crate::gen::{self, GenOptions, Generated};
use crate::report::{Case, Unit};
use crate::util::{force_remove, ms, run, run_peak_rss, Result};

/// The BuildStream version measured.
pub const VERSION: &str = "2.8.1";

/// The `.bst` project of `o`, beside the cas one: `project.conf`,
/// `elements/base.bst` (the same busybox import), one `kind: manual`
/// element per generated element, `all.bst` (a stack of all).
pub fn generate_bst(root: &Path, o: &GenOptions) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("elements"))?;
    std::fs::write(
        root.join("project.conf"),
        "name: bench\nmin-version: 2.0\nelement-path: elements\n",
    )?;
    if !root.join("files/base/bin/busybox").exists() {
        gen::busybox_tree(&root.join("files/base"))?;
    }
    std::fs::write(
        root.join("elements/base.bst"),
        "kind: import\nsources:\n- kind: local\n  path: files/base\n",
    )?;
    let n = o.elements;
    let deps = gen::graph(o);
    let changed = gen::changed_set(o);
    let bst = |i: usize| gen::element_file(i, n, o.layers, "bst");
    for l in 0..o.layers.clamp(1, n.max(1)) {
        std::fs::create_dir_all(root.join(format!("elements/l{l:02}")))?;
    }
    for (i, d) in deps.iter().enumerate() {
        std::fs::write(
            root.join("elements").join(bst(i)),
            gen::element_text(o, i, d, changed.contains(&i), "bst"),
        )?;
    }
    let mut all = String::from("kind: stack\ndepends:\n");
    for i in 0..n {
        all.push_str(&format!("- {}\n", bst(i)));
    }
    std::fs::write(root.join("elements/all.bst"), all)
}

/// The leaf's new comment in the `.bst` project (as `gen::set_leaf_comment`).
fn set_leaf_comment_bst(
    root: &Path,
    g: &Generated,
    o: &GenOptions,
    comment: &str,
) -> std::io::Result<()> {
    let mut o = o.clone();
    o.leaf_comment = comment.to_owned();
    std::fs::write(
        root.join("elements").join(g.leaf.replace(".yaml", ".bst")),
        gen::element_text(&o, 0, &g.deps[0], g.changed.contains(&0), "bst"),
    )
}

/// A working `bst`, installing it into the work directory if needed.
fn find_bst(env: &Env) -> std::result::Result<PathBuf, String> {
    let works = |p: &Path| {
        Command::new(p).arg("--version").output().is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == VERSION
        })
    };
    if let Some(p) = std::env::var_os("CAS_BENCH_BST").map(PathBuf::from) {
        return if works(&p) {
            Ok(p)
        } else {
            Err(format!(
                "CAS_BENCH_BST={} is not BuildStream {VERSION}",
                p.display()
            ))
        };
    }
    let venv = env.work.join("bst-venv");
    let bst = venv.join("bin/bst");
    if works(&bst) {
        return Ok(bst);
    }
    env.say(&format!(
        "bst: installing BuildStream {VERSION} into {}",
        venv.display()
    ));
    let _ = force_remove(&venv);
    let ok = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", &format!("buildstream=={VERSION}")])
            .status()
            .is_ok_and(|s| s.success());
    if ok && works(&bst) {
        Ok(bst)
    } else {
        Err(format!(
            "BuildStream {VERSION} could not be installed (`python3 -m venv {v} && {v}/bin/pip install buildstream=={VERSION}`; Debian package python3-venv); set CAS_BENCH_BST to a `bst` to use",
            v = venv.display()
        ))
    }
}

struct Bst<'a> {
    bin: &'a Path,
    root: PathBuf,
    home: PathBuf,
}

impl Bst<'_> {
    /// `bst` with its cache and configuration under `cache` (a fresh cache
    /// is a fresh directory).
    fn cmd(&self, cache: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin);
        c.current_dir(&self.root)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", cache)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .args(["--no-interactive", "--no-colors"])
            .args(args);
        c
    }
}

/// Sizes measured per mode.
fn sizes(mode: Mode) -> Vec<usize> {
    match mode {
        Mode::Full => vec![100, 500, 2_000],
        Mode::Quick => vec![100, 500],
        Mode::Smoke => vec![],
    }
}

pub fn bst(env: &Env) -> Result<Case> {
    let mut case = Case::new(
        "bst",
        &format!("side by side with BuildStream {VERSION}"),
        "The trivial project of `cold` (N elements, 10 layers, 3 dependencies each, two \
         commands per element) written for both tools: `all.yaml` for cas, `all.bst` for \
         BuildStream (the same busybox import, graph and commands), measured in the same run. \
         `show`: load and keys, after a build (both warm). `cold`: build into an empty store / \
         cache, both with as many parallel steps as cores (`cas -j N`, `bst --builders N`), and \
         BuildStream with its default (4 builders; cas's default is the core count). `no-op`: \
         the same build again. `leaf change`: the first leaf's shell comment changes (its key \
         changes, its output does not: every dependent is cut off), then a build. Peak RSS of \
         the no-op from wait4. Ratios are BuildStream's time over cas's: higher is better for cas.",
    );
    if env.mode == Mode::Smoke {
        case.notes
            .push("not measured in smoke mode (it needs BuildStream from PyPI)".into());
        return Ok(case);
    }
    let bin = match find_bst(env) {
        Ok(b) => b,
        Err(why) => {
            case.notes.push(format!("not measured: {why}"));
            return Ok(case);
        }
    };
    let jobs = env.nproc.to_string();
    for n in sizes(env.mode) {
        env.say(&format!("bst: {n} elements"));
        let o = crate::cases::trivial(n);
        let root = env.work.join(format!("bst-p{n}"));
        let g = gen::generate(&root, &o).map_err(|e| e.to_string())?;
        generate_bst(&root, &o).map_err(|e| e.to_string())?;
        let bst = Bst {
            bin: &bin,
            root: root.clone(),
            home: env.work.join("bst-home"),
        };
        let store = env.work.join(format!("bst-cas-store-{n}"));
        let cache = env.work.join(format!("bst-cache-{n}"));
        let cache_default = env.work.join(format!("bst-cache-default-{n}"));
        for d in [&store, &cache, &cache_default] {
            force_remove(d)?;
        }
        // cold (one run each: they are the expensive part)
        let (bc, _) = run(&mut bst.cmd(&cache, &["--builders", &jobs, "build", "all.bst"]))?;
        let (bd, _) = run(&mut bst.cmd(&cache_default, &["build", "all.bst"]))?;
        let (cc, _) = run(env
            .cas(&store, &root)
            .args(["-j", &jobs, "build", "all.yaml"]))?;
        let r_bc = case.row(
            format!("{n}: cold, BuildStream --builders {jobs}"),
            vec![ms(bc)],
            Unit::Ms,
            None,
        );
        let r_bd = case.row(
            format!("{n}: cold, BuildStream (default builders)"),
            vec![ms(bd)],
            Unit::Ms,
            None,
        );
        let r_cc = case.row(
            format!("{n}: cold, cas -j {jobs}"),
            vec![ms(cc)],
            Unit::Ms,
            Some(r_bc),
        );
        let _ = r_bd;
        // show, no-op, RSS (3 runs, interleaved)
        let (mut bs, mut cs, mut bn, mut cn, mut brss, mut crss) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..3 {
            bs.push(ms(run(&mut bst.cmd(&cache, &["show", "all.bst"]))?.0));
            cs.push(ms(run(env.cas(&store, &root).args(["show", "all.yaml"]))?.0));
            let (d, rss, _) =
                run_peak_rss(&mut bst.cmd(&cache, &["--builders", &jobs, "build", "all.bst"]))?;
            bn.push(ms(d));
            brss.push(rss as f64);
            let (d, rss, _) = run_peak_rss(
                env.cas(&store, &root)
                    .args(["-j", &jobs, "build", "all.yaml"]),
            )?;
            cn.push(ms(d));
            crss.push(rss as f64);
        }
        let r_bs = case.row(format!("{n}: show, BuildStream"), bs, Unit::Ms, None);
        let r_cs = case.row(format!("{n}: show, cas"), cs, Unit::Ms, Some(r_bs));
        let r_bn = case.row(format!("{n}: no-op build, BuildStream"), bn, Unit::Ms, None);
        let r_cn = case.row(format!("{n}: no-op build, cas"), cn, Unit::Ms, Some(r_bn));
        let r_br = case.row(
            format!("{n}: peak RSS of the no-op, BuildStream"),
            brss,
            Unit::KiB,
            None,
        );
        let r_cr = case.row(
            format!("{n}: peak RSS of the no-op, cas"),
            crss,
            Unit::KiB,
            Some(r_br),
        );
        // leaf change (2 runs)
        let (mut bl, mut cl) = (vec![], vec![]);
        for k in 1..=2 {
            let comment = format!("bst-rev {k}");
            gen::set_leaf_comment(&g, &o, &comment).map_err(|e| e.to_string())?;
            set_leaf_comment_bst(&root, &g, &o, &comment).map_err(|e| e.to_string())?;
            bl.push(ms(run(
                &mut bst.cmd(&cache, &["--builders", &jobs, "build", "all.bst"])
            )?
            .0));
            cl.push(ms(run(env
                .cas(&store, &root)
                .args(["-j", &jobs, "build", "all.yaml"]))?
            .0));
        }
        let r_bl = case.row(format!("{n}: leaf change, BuildStream"), bl, Unit::Ms, None);
        let r_cl = case.row(format!("{n}: leaf change, cas"), cl, Unit::Ms, Some(r_bl));
        let ratio = |c: &Case, b: usize, x: usize| c.median(b) / c.median(x);
        let (cold_r, show_r, noop_r, leaf_r, rss_r) = (
            ratio(&case, r_bc, r_cc),
            ratio(&case, r_bs, r_cs),
            ratio(&case, r_bn, r_cn),
            ratio(&case, r_bl, r_cl),
            ratio(&case, r_br, r_cr),
        );
        case.note_row(
            r_cc,
            format!(
                "{:.1} ms per element; BuildStream {:.1}",
                case.median(r_cc) / n as f64,
                case.median(r_bc) / n as f64
            ),
        );
        for (what, goal, got) in [
            ("cold build", 5.0, cold_r),
            ("show (load + keys)", 10.0, show_r),
            ("no-op build", 50.0, noop_r),
            ("leaf change, output unchanged", 20.0, leaf_r),
            ("peak RSS of the no-op", 4.0, rss_r),
        ] {
            case.goal(
                format!("{n} elements: {what} ≥ {goal}× faster (smaller) than BuildStream"),
                format!("{got:.1}×"),
                got >= goal,
            );
        }
        gen::set_leaf_comment(&g, &o, "rev 0").map_err(|e| e.to_string())?;
        case.commands.push(format!(
            "cd $W/bst-p{n} && XDG_CACHE_HOME=$W/bst-cache-{n} $W/bst-venv/bin/bst --no-interactive --builders {jobs} build all.bst"
        ));
        case.commands.push(format!(
            "cd $W/bst-p{n} && $CAS --store $W/bst-cas-store-{n} -j {jobs} build all.yaml"
        ));
    }
    Ok(case)
}

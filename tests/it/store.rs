//! Black-box tests of `cas store ...`.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ctx::Ctx;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

fn file(p: &Path, content: &[u8], m: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
    chmod(p, m);
}

/// The hostile tree of the acceptance criteria (sparse: add a 1 GiB sparse file).
fn nasty_tree(root: &Path, sparse: bool) {
    fs::create_dir_all(root).unwrap();
    file(
        &root.join(OsStr::from_bytes(b"caf\xe9-latin1")),
        b"not utf-8 name",
        0o644,
    );
    file(&root.join("new\nline"), b"newline in name", 0o644);
    file(&root.join("n".repeat(255)), b"255-byte name", 0o600);
    let mut deep = root.join("deep");
    for i in 0..40 {
        deep.push(format!("level{i}"));
    }
    file(&deep.join("bottom"), b"deep down", 0o644);
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("deep/empty-too")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink("../../../outside", root.join("deep/level0/outside")).unwrap();
    file(&root.join("hard-1"), b"hardlinked content", 0o644);
    fs::hard_link(root.join("hard-1"), root.join("deep/hard-2")).unwrap();
    file(&root.join("bin/suid"), b"#!/bin/sh\necho root\n", 0o4755);
    file(&root.join("bin/sgid"), b"#!/bin/sh\necho group\n", 0o2711);
    file(&root.join("empty-file"), b"", 0o644);
    fs::create_dir_all(root.join("tmp")).unwrap();
    chmod(&root.join("tmp"), 0o1777);
    fs::create_dir_all(root.join("private")).unwrap();
    file(&root.join("private/secret"), b"s", 0o400);
    chmod(&root.join("private"), 0o700);
    if sparse {
        let mut f = fs::File::create(root.join("sparse-1g")).unwrap();
        f.set_len(1 << 30).unwrap();
        f.seek(SeekFrom::Start(512 << 20)).unwrap();
        f.write_all(b"an island of data in the middle").unwrap();
    }
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Assert two directory trees are identical in names, types, bytes, symlink
/// targets and permission bits (`hardlinked`: files lost their write,
/// setuid and setgid bits).
fn assert_same_tree(expected: &Path, actual: &Path, hardlinked: bool) {
    let names = |d: &Path| {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let (ne, na) = (names(expected), names(actual));
    assert_eq!(
        ne,
        na,
        "entries of {} vs {}",
        expected.display(),
        actual.display()
    );
    for n in ne {
        let (e, a) = (expected.join(&n), actual.join(&n));
        let (me, ma) = (
            fs::symlink_metadata(&e).unwrap(),
            fs::symlink_metadata(&a).unwrap(),
        );
        assert_eq!(me.file_type(), ma.file_type(), "type of {}", a.display());
        if me.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&e).unwrap(),
                fs::read_link(&a).unwrap(),
                "target of {}",
                a.display()
            );
            continue;
        }
        let want = if hardlinked && me.is_file() {
            // a store inode: no write bits, never setuid or setgid
            mode(&e) & !0o222 & !0o6000
        } else {
            mode(&e)
        };
        assert_eq!(
            want,
            mode(&a),
            "mode of {} ({:o} vs {:o})",
            a.display(),
            want,
            mode(&a)
        );
        if me.is_dir() {
            assert_same_tree(&e, &a, hardlinked);
        } else {
            assert_eq!(me.len(), ma.len(), "size of {}", a.display());
            assert!(same_content(&e, &a), "content of {}", a.display());
        }
    }
}

fn ingest(ctx: &Ctx, dir: &Path) -> String {
    let run = ctx
        .cas([OsStr::new("store"), OsStr::new("ingest"), dir.as_os_str()])
        .ok();
    let d = run.stdout.trim().to_string();
    assert_eq!(d.len(), 64, "ingest printed {:?}", run.stdout);
    d
}

fn stats(ctx: &Ctx) -> serde_json::Value {
    ctx.cas(["--json", "store", "stats"]).ok().json()
}

#[test]
fn ingest_checkout_round_trip_of_a_hostile_tree_with_small_memory() {
    let ctx = Ctx::new();
    let input = ctx.path("input");
    nasty_tree(&input, true);
    let (run, rss_kib) =
        ctx.cas_peak_rss([OsStr::new("store"), OsStr::new("ingest"), input.as_os_str()]);
    let run = run.ok();
    let digest = run.stdout.trim().to_string();
    assert!(
        rss_kib < 100 * 1024,
        "ingest of a 1 GiB sparse file peaked at {rss_kib} KiB"
    );
    // The input is untouched (copy mode).
    assert_eq!(mode(&input.join("bin/suid")), 0o4755);
    assert_eq!(fs::metadata(input.join("hard-1")).unwrap().nlink(), 2);

    let out = ctx.path("out");
    let (run, rss_kib) = ctx.cas_peak_rss([
        OsStr::new("store"),
        OsStr::new("checkout"),
        OsStr::new(&digest),
        out.as_os_str(),
    ]);
    run.ok();
    assert!(rss_kib < 100 * 1024, "checkout peaked at {rss_kib} KiB");
    assert_same_tree(&input, &out, false);
    // Checkout copies: the files are not the store's inodes and are writable as recorded.
    assert_eq!(fs::metadata(out.join("hard-1")).unwrap().nlink(), 1);
    let allocated = fs::metadata(out.join("sparse-1g")).unwrap().blocks() * 512;
    assert!(
        allocated < 16 << 20,
        "the sparse file stayed sparse ({allocated} bytes allocated)"
    );

    let linked = ctx.path("linked");
    ctx.cas([
        OsStr::new("store"),
        OsStr::new("checkout"),
        OsStr::new(&digest),
        linked.as_os_str(),
        OsStr::new("--hardlinks"),
    ])
    .ok();
    assert_same_tree(&input, &linked, true);
    assert!(fs::metadata(linked.join("hard-1")).unwrap().nlink() > 1);

    // Same content again: same digest, no new objects.
    let before = stats(&ctx);
    assert_eq!(ingest(&ctx, &input), digest);
    assert_eq!(stats(&ctx)["objects"], before["objects"]);
    ctx.cas(["store", "verify"]).ok();
}

#[test]
fn ingest_move_consumes_input_and_gives_the_same_digest() {
    let ctx = Ctx::new();
    nasty_tree(&ctx.path("a"), false);
    nasty_tree(&ctx.path("b"), false);
    let copied = ingest(&ctx, &ctx.path("a"));
    let run = ctx
        .cas([
            OsStr::new("store"),
            OsStr::new("ingest"),
            OsStr::new("--move"),
            ctx.path("b").as_os_str(),
        ])
        .ok();
    assert_eq!(run.stdout.trim(), copied);
    ctx.cas(["store", "verify"]).ok();
}

#[test]
fn two_processes_ingesting_at_once_both_succeed() {
    let ctx = Ctx::new();
    let input = ctx.path("input");
    for i in 0..400 {
        file(
            &input.join(format!("d{}/f{i}", i % 9)),
            format!("file {}", i % 150).as_bytes(),
            0o644,
        );
    }
    let spawn = || {
        let (mut cmd, _) =
            ctx.command([OsStr::new("store"), OsStr::new("ingest"), input.as_os_str()]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        oa.status.success() && ob.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&oa.stderr),
        String::from_utf8_lossy(&ob.stderr)
    );
    assert_eq!(oa.stdout, ob.stdout);
    let s = stats(&ctx);
    assert_eq!(
        s["objects"],
        150 + 9 + 1 + 1,
        "150 blobs, 9 subtrees, root, empty tree: no duplicates"
    );
    ctx.cas(["store", "verify"]).ok();
}

#[test]
fn bad_input_is_exit_2() {
    let ctx = Ctx::new();
    let r = ctx
        .cas(["store", "checkout", "not-a-digest", "x"])
        .expect_code(2);
    assert!(r.stderr.contains("not-a-digest"), "{}", r.stderr);
    ctx.cas(["store", "ingest", "/does/not/exist"])
        .expect_code(2);
    ctx.cas(["store", "view", &"ab".repeat(32)]).expect_code(2);
    ctx.cas(["store", "gc", "--max-size", "lots"])
        .expect_code(2);
    ctx.cas(["store", "merge", "no-equals-sign"]).expect_code(2);
    ctx.cas(["store", "unpin", "never-pinned"]).expect_code(2);
    // A fifo is a clear error naming its path.
    let input = ctx.path("with-fifo");
    fs::create_dir_all(&input).unwrap();
    let fifo = input.join("the-fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let r = ctx
        .cas([OsStr::new("store"), OsStr::new("ingest"), input.as_os_str()])
        .expect_code(1);
    assert!(
        r.stderr.contains("the-fifo") && r.stderr.contains("fifo"),
        "{}",
        r.stderr
    );
}

#[test]
fn merge_of_ten_trees_names_the_conflict_and_accepts_identical_duplicates() {
    let ctx = Ctx::new();
    let mut specs = Vec::new();
    for i in 0..10 {
        let d = ctx.path(format!("elem{i}"));
        file(
            &d.join(format!("usr/lib/lib{i}.so")),
            format!("lib {i}").as_bytes(),
            0o755,
        );
        file(
            &d.join("usr/share/common/LICENSE"),
            b"same everywhere",
            0o644,
        );
        if i == 3 || i == 7 {
            file(
                &d.join("usr/bin/tool"),
                format!("tool from {i}").as_bytes(),
                0o755,
            );
        }
        specs.push(format!("elem{i}.yaml={}", ingest(&ctx, &d)));
    }
    let mut args = vec!["store".to_string(), "merge".to_string()];
    args.extend(specs.iter().cloned());
    let r = ctx.cas(&args).expect_code(1);
    assert!(r.stderr.contains("usr/bin/tool"), "{}", r.stderr);
    assert!(
        r.stderr.contains("elem3.yaml") && r.stderr.contains("elem7.yaml"),
        "{}",
        r.stderr
    );

    // Without elem7: merges; the identical LICENSE appears once.
    let mut args = vec!["store".to_string(), "merge".to_string()];
    args.extend(
        specs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 7)
            .map(|(_, s)| s.clone()),
    );
    let merged = ctx.cas(&args).ok().stdout.trim().to_string();
    let out = ctx.path("merged");
    ctx.cas([
        OsStr::new("store"),
        OsStr::new("checkout"),
        OsStr::new(&merged),
        out.as_os_str(),
    ])
    .ok();
    assert_eq!(
        fs::read(out.join("usr/share/common/LICENSE")).unwrap(),
        b"same everywhere"
    );
    assert_eq!(fs::read(out.join("usr/bin/tool")).unwrap(), b"tool from 3");
    assert_eq!(fs::read_dir(out.join("usr/lib")).unwrap().count(), 9);
    // Merging is pure: same inputs, same digest.
    assert_eq!(ctx.cas(&args).ok().stdout.trim(), merged);
}

fn view(ctx: &Ctx, digest: &str) -> PathBuf {
    PathBuf::from(ctx.cas(["store", "view", digest]).ok().stdout.trim())
}

#[test]
fn a_sandboxed_process_cannot_change_an_object_through_a_view() {
    let ctx = Ctx::new();
    let input = ctx.busybox_tree("sysroot");
    file(&input.join("etc/config"), b"original", 0o644);
    file(&input.join("usr/bin/script"), b"#!/bin/sh\n", 0o755);
    for mountpoint in ["dev", "proc"] {
        fs::create_dir_all(input.join(mountpoint)).unwrap();
    }
    let digest = ingest(&ctx, &input);
    let v = view(&ctx, &digest);
    assert_eq!(view(&ctx, &digest), v, "the view is reused");
    // a view shows the recorded modes (spec/store.md, "Mode variants")
    assert_eq!(mode(&v.join("etc/config")), 0o644);
    // As the engine runs steps: the view is the read-only root.
    let attack = "echo changed > /etc/config; echo more >> /etc/config; chmod 666 /etc/config; \
                  rm -f /etc/config; echo x > /usr/bin/script; touch /etc/new; true";
    let out = Command::new("bwrap")
        .args(["--ro-bind"])
        .arg(&v)
        .args([
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-all",
            "/bin/sh",
            "-c",
            attack,
        ])
        .output()
        .expect("bwrap");
    assert!(
        out.status.success(),
        "bwrap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).is_empty(),
        "the writes were refused loudly"
    );
    // The protection is the read-only mount: a process running as the owner of the
    // store's inodes could chmod them back to writable on a writable bind. Check that
    // nothing changed, neither content nor mode.
    assert_eq!(mode(&v.join("etc/config")), 0o644);
    assert_eq!(mode(&v.join("usr/bin/script")), 0o755);
    assert_eq!(fs::read(v.join("etc/config")).unwrap(), b"original");
    ctx.cas(["store", "verify"]).ok();
    let out = ctx.path("check");
    ctx.cas([
        OsStr::new("store"),
        OsStr::new("checkout"),
        OsStr::new(&digest),
        out.as_os_str(),
    ])
    .ok();
    assert_eq!(fs::read(out.join("etc/config")).unwrap(), b"original");
}

fn corrupt_one_byte(path: &Path) {
    chmod(path, 0o644);
    let mut bytes = fs::read(path).unwrap();
    bytes[0] ^= 1;
    fs::write(path, bytes).unwrap();
    chmod(path, 0o444);
}

fn object_path(ctx: &Ctx, hex: &str) -> PathBuf {
    ctx.store().join("objects").join(&hex[..2]).join(&hex[2..])
}

fn file_digest(ctx: &Ctx, tree: &str, path: &str) -> String {
    let ls = ctx.cas(["store", "ls", tree]).ok().stdout;
    let line = ls
        .lines()
        .find(|l| l.ends_with(&format!("{path:?}")))
        .unwrap_or_else(|| panic!("{path} not in {ls}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

#[test]
fn verify_finds_a_flipped_byte_and_repair_removes_the_results_using_it() {
    let ctx = Ctx::new();
    let d = ctx.path("d");
    file(&d.join("lib/libc.so"), b"pretend this is libc", 0o755);
    let tree = ingest(&ctx, &d);
    let key = "11".repeat(32);
    ctx.cas(["store", "action-put", &key, &tree]).ok();
    ctx.cas(["store", "action-get", &key]).ok();
    let blob = file_digest(&ctx, &tree, "lib/libc.so");
    corrupt_one_byte(&object_path(&ctx, &blob));
    let r = ctx.cas(["store", "verify"]).expect_code(1);
    assert!(
        r.stdout.contains(&format!("corrupt object {blob}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("broken action result {key}")),
        "{}",
        r.stdout
    );
    // said once (not also as missing), with what to do
    assert!(
        !r.stdout.contains(&format!("missing object {blob}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("cas store verify --repair"),
        "{}",
        r.stderr
    );
    let repaired = ctx.cas(["store", "verify", "--repair"]).ok();
    assert!(
        repaired.stderr.contains("repaired as said above"),
        "{}",
        repaired.stderr
    );
    ctx.cas(["store", "verify"]).ok();
    ctx.cas(["store", "action-get", &key]).expect_code(1);
    // Ingesting the same content brings the object back.
    assert_eq!(ingest(&ctx, &d), tree);
    ctx.cas(["store", "action-put", &key, &tree]).ok();
    ctx.cas(["store", "verify"]).ok();
}

#[test]
fn gc_max_size_removes_least_recently_used_first_and_never_a_pin() {
    let ctx = Ctx::new();
    let mut trees = Vec::new();
    for i in 0..4u8 {
        let d = ctx.path(format!("t{i}"));
        let data: Vec<u8> = (0..(1u32 << 20))
            .map(|j| (j.wrapping_mul(2654435761) >> 11) as u8 ^ i)
            .collect();
        file(&d.join("data"), &data, 0o644);
        trees.push(ingest(&ctx, &d));
    }
    let garbage = ctx.path("garbage");
    file(&garbage.join("g"), b"nobody wants me", 0o644);
    let garbage = ingest(&ctx, &garbage);
    ctx.cas(["store", "pin", "release", &trees[3]]).ok();
    let keys: Vec<String> = (0..3).map(|i| format!("{i}{i}").repeat(32)).collect();
    for i in 0..3 {
        ctx.cas(["store", "action-put", &keys[i], &trees[i]]).ok();
        std::thread::sleep(Duration::from_millis(10));
    }
    ctx.cas(["store", "action-get", &keys[0]]).ok(); // now keys[1] is the least recently used
    let dry = ctx
        .cas(["store", "gc", "--max-size", "3.5M", "--dry-run"])
        .ok();
    assert!(
        dry.stdout
            .contains(&format!("would remove result {}", keys[1])),
        "{}",
        dry.stdout
    );
    assert!(
        !dry.stdout.contains(&keys[0]) && !dry.stdout.contains(&keys[2]),
        "{}",
        dry.stdout
    );
    assert!(
        object_path(&ctx, &garbage).exists(),
        "dry run deleted nothing"
    );
    let r = ctx.cas(["store", "gc", "--max-size", "3.5M"]).ok();
    assert!(
        r.stdout.contains(&format!("removed result {}", keys[1])),
        "{}",
        r.stdout
    );
    assert!(!object_path(&ctx, &garbage).exists());
    assert!(!object_path(&ctx, &trees[1]).exists());
    for t in [&trees[0], &trees[2], &trees[3]] {
        assert!(object_path(&ctx, t).exists());
    }
    // Zero quota: every result goes, the pin stays whole.
    ctx.cas(["store", "gc", "--max-size", "0"]).ok();
    ctx.cas(["store", "action-get", &keys[0]]).expect_code(1);
    let out = ctx.path("pinned");
    ctx.cas([
        OsStr::new("store"),
        OsStr::new("checkout"),
        OsStr::new(&trees[3]),
        out.as_os_str(),
    ])
    .ok();
    assert_eq!(fs::metadata(out.join("data")).unwrap().len(), 1 << 20);
    ctx.cas(["store", "unpin", "release"]).ok();
    ctx.cas(["store", "gc"]).ok();
    assert!(!object_path(&ctx, &trees[3]).exists());
    ctx.cas(["store", "verify"]).ok();
}

/// A small xorshift generator: no dependency, reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_during_ingest_and_gc_leaves_a_consistent_store() {
    let ctx = Ctx::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut kills = 0;
    let mut killed_mid_run = 0;
    let mut results = 0;
    for round in 0..60 {
        let input = ctx.path(format!("in{round}"));
        for i in 0..150 {
            let size = if i % 50 == 0 {
                300_000
            } else {
                64 + (i * 37) % 2000
            };
            let content: Vec<u8> = (0..size)
                .map(|j| (j as u64 ^ (round as u64 * 7919) ^ i as u64) as u8)
                .collect();
            file(&input.join(format!("d{}/f{i}", i % 5)), &content, 0o644);
        }
        if round % 2 == 0 {
            // Finish one ingest and record it as a result, so gc has work.
            let t = ingest(&ctx, &input);
            ctx.cas(["store", "action-put", &format!("{:064x}", round + 1), &t])
                .ok();
            results += 1;
        }
        let args: Vec<String> = if round % 2 == 0 {
            vec![
                "store".into(),
                "gc".into(),
                "--max-size".into(),
                format!("{}", rng.next() % 3_000_000),
            ]
        } else {
            vec![
                "store".into(),
                "ingest".into(),
                input.to_string_lossy().into_owned(),
            ]
        };
        let (mut cmd, _) = ctx.command(&args);
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % 60_000));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let v = ctx.cas(["--json", "store", "verify"]);
        assert_eq!(
            v.code,
            0,
            "round {round} ({}): store inconsistent after SIGKILL:\n{}\n{}",
            args.join(" "),
            v.stdout,
            v.stderr
        );
        let report = v.json();
        assert_eq!(report["broken_results"].as_array().unwrap().len(), 0);
        assert_eq!(report["missing"].as_array().unwrap().len(), 0);
        if started.elapsed() > Duration::from_secs(25) && kills >= 50 {
            break;
        }
    }
    assert!(kills >= 50, "only {kills} kills");
    assert!(
        killed_mid_run >= 10,
        "only {killed_mid_run} of {kills} kills hit a running process: timing is off"
    );
    assert!(results > 0);
    // Whatever survived is usable; a final gc cleans the debris of killed runs.
    ctx.cas(["store", "gc"]).ok();
    let s = stats(&ctx);
    assert_eq!(s["tmp_entries"], 0);
    ctx.cas(["store", "verify"]).ok();
    eprintln!(
        "{kills} kills ({killed_mid_run} mid-run) in {:?}",
        started.elapsed()
    );
}

#[test]
fn tar_export_is_deterministic_and_imports_back() {
    let ctx = Ctx::new();
    let input = ctx.path("input");
    nasty_tree(&input, false);
    let digest = ingest(&ctx, &input);
    for name in ["a.tar", "a.tar.xz"] {
        let (p1, p2) = (ctx.path(format!("1-{name}")), ctx.path(format!("2-{name}")));
        ctx.cas([
            OsStr::new("store"),
            OsStr::new("export"),
            OsStr::new(&digest),
            p1.as_os_str(),
        ])
        .ok();
        ctx.cas([
            OsStr::new("store"),
            OsStr::new("export"),
            OsStr::new(&digest),
            p2.as_os_str(),
        ])
        .ok();
        assert_eq!(
            fs::read(&p1).unwrap(),
            fs::read(&p2).unwrap(),
            "{name}: same tree, same bytes"
        );
        let back = ctx
            .cas([OsStr::new("store"), OsStr::new("import"), p1.as_os_str()])
            .ok();
        assert_eq!(
            back.stdout.trim(),
            digest,
            "{name} imports to the same tree"
        );
    }
    // A plain tar tool agrees about the content.
    let out = ctx.path("untarred");
    fs::create_dir_all(&out).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(ctx.path("1-a.tar"))
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        fs::read(out.join("deep/hard-2")).unwrap(),
        b"hardlinked content"
    );
    assert_eq!(
        fs::read_link(out.join("abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
}

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn reflinks_on_a_filesystem_that_has_them() {
    let ctx = Ctx::new();
    let img = ctx.path("xfs.img");
    let mnt = ctx.path("xfs");
    fs::create_dir_all(&mnt).unwrap();
    let made = fs::File::create(&img)
        .and_then(|f| f.set_len(512 << 20))
        .is_ok()
        && Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&img)
            .status()
            .is_ok_and(|s| s.success());
    if !made {
        eprintln!("SKIP reflink test: mkfs.xfs is not available or failed");
        return;
    }
    let mounted = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "SKIP reflink test: cannot mount an XFS loop image: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIP reflink test: cannot run mount: {e}");
            return;
        }
    }
    let _guard = Mount(mnt.clone());
    let store = mnt.join("store");
    let input = mnt.join("input");
    nasty_tree(&input, false);
    let run = |args: Vec<&OsStr>| {
        let (mut cmd, shown) = ctx.command(&args);
        let out = cmd.env("CAS_STORE", &store).output().unwrap();
        assert!(
            out.status.success(),
            "cas {}: {}",
            shown.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let digest = run(vec![
        OsStr::new("store"),
        OsStr::new("ingest"),
        input.as_os_str(),
    ])
    .trim()
    .to_string();
    let out = mnt.join("out");
    let json = run(vec![
        OsStr::new("--json"),
        OsStr::new("store"),
        OsStr::new("checkout"),
        OsStr::new(&digest),
        out.as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["method"], "reflink", "{json}");
    assert_same_tree(&input, &out, false);
    let json = run(vec![
        OsStr::new("--json"),
        OsStr::new("store"),
        OsStr::new("view"),
        OsStr::new(&digest),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["built_with"], "reflink", "{json}");
    run(vec![OsStr::new("store"), OsStr::new("verify")]);
}

/// Daily use (#32): `--json` where a command has no document is refused;
/// gc's dry run says what the objects would come to, in readable sizes.
#[test]
fn json_is_refused_where_there_is_no_document_and_gc_dry_run_says_what_it_would_free() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/a.yaml",
        crate::ctx::manual(&[], "    - mkdir -p %{install-root}/a\n    - head -c 300000 /dev/urandom > %{install-root}/a/blob\n"),
    );
    ctx.cas(["build", "a.yaml"]).ok();
    for args in [
        &["--json", "log", "a.yaml"][..],
        &["--json", "graph", "a.yaml"][..],
        &["--json", "shell", "a.yaml", "--", "true"][..],
    ] {
        let run = ctx.cas(args).expect_code(2);
        assert!(
            run.stderr.contains("has no JSON document"),
            "{}",
            run.stderr
        );
    }
    let dry = ctx
        .cas(["store", "gc", "--dry-run", "--max-size", "1"])
        .ok();
    let line = dry
        .stdout
        .lines()
        .find(|l| l.starts_with("would remove") && l.contains("objects"))
        .unwrap_or_else(|| panic!("{}", dry.stdout));
    let (before, after) = line
        .rsplit_once("objects ")
        .and_then(|(_, sizes)| sizes.split_once(" -> "))
        .unwrap_or_else(|| panic!("{line}"));
    assert_ne!(before, after, "the dry run says what would go: {line}");
    assert!(before.ends_with("iB") || before.ends_with(" B"), "{line}");
    // nothing went
    ctx.cas(["store", "verify"]).ok();
    assert!(ctx
        .cas(["--json", "show", "a.yaml"])
        .ok()
        .stdout
        .contains("\"cached\""));
}

/// A query (`show`, `explain`) does not count as a use of the results it
/// finds, so it never changes which result gc removes first; a command that
/// uses an output (`checkout`) does.
#[test]
fn gc_order_is_changed_by_a_checkout_and_never_by_a_query() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: lru\nelement-path: elements\n");
    for (name, byte) in [("a", 1u8), ("b", 2u8)] {
        let data: Vec<u8> = (0..(1u32 << 20))
            .map(|j| (j.wrapping_mul(2654435761) >> 11) as u8 ^ byte)
            .collect();
        ctx.write(format!("files/{name}/data"), data);
        ctx.write(
            format!("elements/{name}.yaml"),
            format!("kind: import\nsources:\n- kind: local\n  path: files/{name}\n"),
        );
    }
    let key_of = |name: &str| {
        ctx.cas(["--json", "show", &format!("{name}.yaml")])
            .ok()
            .json()["elements"][0]["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    ctx.cas(["build", "a.yaml"]).ok();
    std::thread::sleep(Duration::from_millis(20));
    ctx.cas(["build", "b.yaml"]).ok();
    let (a, b) = (key_of("a"), key_of("b"));
    // what gc removes first to keep the store under 1.5 MiB
    let first = || {
        std::thread::sleep(Duration::from_millis(20));
        let dry = ctx
            .cas(["store", "gc", "--max-size", "1.5M", "--dry-run"])
            .ok();
        let removed: Vec<&str> = [&a, &b]
            .into_iter()
            .filter(|k| dry.stdout.contains(&format!("would remove result {k}")))
            .map(String::as_str)
            .collect();
        assert_eq!(removed.len(), 1, "{}", dry.stdout);
        removed[0].to_owned()
    };
    assert_eq!(first(), a);
    ctx.cas(["show", "a.yaml"]).ok();
    ctx.cas(["explain", "a.yaml"]).ok();
    ctx.cas(["log", "a.yaml"]).ok();
    assert_eq!(first(), a, "a query counted as a use");
    ctx.cas(["checkout", "a.yaml", &ctx.path("out").to_string_lossy()])
        .ok();
    assert_eq!(first(), b, "a checkout did not count as a use");
    // b changed: explaining it reads its previous result, without using it
    ctx.write("files/b/more", "more\n");
    let why = ctx.cas(["explain", "b.yaml"]).ok();
    assert!(why.stdout.contains("more"), "{}", why.stdout);
    assert_eq!(first(), b, "explain counted the previous result as a use");
}

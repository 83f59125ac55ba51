//! Black-box tests of `cas build` and friends: keys, the sandbox, the
//! scheduler, early cutoff, failures.

use crate::ctx::{busybox_project, manual, Ctx};

fn statuses(run: &crate::ctx::Run) -> Vec<(String, String)> {
    let v = run.json();
    v["elements"]
        .as_array()
        .expect("elements array")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of(run: &crate::ctx::Run, name: &str) -> String {
    statuses(run)
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or_else(
            || panic!("{name} not in report:\n{}", run.stdout),
            |(_, s)| s,
        )
}

#[test]
fn hello_builds_checks_out_and_is_cached_the_second_time() {
    let ctx = busybox_project();
    ctx.write(
        "elements/hello.yaml",
        manual(&[], "    - mkdir -p %{install-root}%{datadir}\n    - echo hello > %{install-root}%{datadir}/greeting\n"),
    );
    let first = ctx.cas(["--json", "build", "hello.yaml"]).ok();
    let v = first.json();
    assert_eq!(v["built"], 2, "{}", first.stdout);
    assert_eq!(v["failed"], 0);
    for e in v["elements"].as_array().unwrap() {
        assert_eq!(e["key"].as_str().unwrap().len(), 64);
        assert_eq!(e["output"].as_str().unwrap().len(), 64);
    }
    let out = ctx.path("out");
    ctx.cas(["checkout", "hello.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("usr/share/greeting")).unwrap(),
        "hello\n"
    );
    // A checkout is plain files, not hardlinks into the store.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out.join("usr/share/greeting"))
            .unwrap()
            .nlink(),
        1
    );

    let second = ctx.cas(["--json", "build", "hello.yaml"]).ok();
    let v = second.json();
    assert_eq!(v["built"], 0, "{}", second.stdout);
    assert_eq!(v["cached"], 2);
    assert!(
        !second.stderr.contains("building"),
        "a cached build started a step:\n{}",
        second.stderr
    );
    // The log of the cached result is there.
    let log = ctx.cas(["log", "hello.yaml"]).ok();
    assert!(log.stdout.contains("echo hello"), "{}", log.stdout);
}

#[test]
fn undeclared_dependency_is_invisible_whatever_the_order() {
    let ctx = busybox_project();
    ctx.write(
        "elements/b.yaml",
        manual(&[], "    - mkdir -p %{install-root}/usr/include\n    - echo b > %{install-root}/usr/include/b.h\n"),
    );
    let probe = "    - mkdir -p %{install-root}\n    - if test -e /usr/include/b.h; then echo yes; else echo no; fi > %{install-root}/probe\n";
    ctx.write("elements/a.yaml", manual(&[], probe));
    ctx.write(
        "elements/both.yaml",
        "kind: stack\ndepends:\n  - a.yaml\n  - b.yaml\n",
    );
    // B first, then A: A still cannot see B.
    ctx.cas(["build", "b.yaml"]).ok();
    ctx.cas(["build", "a.yaml"]).ok();
    let out = ctx.path("a1");
    ctx.cas(["checkout", "a.yaml", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(out.join("probe")).unwrap(), "no\n");
    // With a fresh store, both at once with -j2: the same answer and the same output.
    let ctx2_store = ctx.path("store2");
    let run = ctx
        .cas([
            "--json",
            "--store",
            ctx2_store.to_str().unwrap(),
            "-j2",
            "build",
            "both.yaml",
        ])
        .ok();
    let a_out = run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "a.yaml")
        .unwrap()["output"]
        .clone();
    let first = ctx.cas(["--json", "build", "a.yaml"]).ok();
    assert_eq!(
        first.json()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "a.yaml")
            .unwrap()["output"],
        a_out
    );
}

#[test]
fn sandbox_is_read_only_offline_and_hides_the_host() {
    let ctx = busybox_project();
    std::fs::write(ctx.path("host-secret"), "secret").unwrap();
    let secret = ctx.path("host-secret");
    let checks = format!(
        "    - mkdir -p %{{install-root}}\n\
         \x20   - if touch /etc/x 2>/dev/null; then echo writable; else echo ro; fi > %{{install-root}}/root\n\
         \x20   - if touch /usr/x 2>/dev/null; then echo writable; else echo ro; fi > %{{install-root}}/usr\n\
         \x20   - if test -e {} ; then echo visible; else echo hidden; fi > %{{install-root}}/host\n\
         \x20   - if test -e /root/.bashrc || test -e /etc/passwd; then echo visible; else echo hidden; fi > %{{install-root}}/etc\n\
         \x20   - if wget -T 2 -q -O /dev/null http://10.0.2.2/ 2>/dev/null; then echo net; else echo nonet; fi > %{{install-root}}/net\n\
         \x20   - touch %{{build-root}}/ok\n",
        secret.display()
    );
    ctx.write("elements/probe.yaml", manual(&[], &checks));
    ctx.cas(["build", "probe.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "probe.yaml", out.to_str().unwrap()])
        .ok();
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(read("root"), "ro\n");
    assert_eq!(read("usr"), "ro\n");
    assert_eq!(read("host"), "hidden\n");
    assert_eq!(read("etc"), "hidden\n");
    assert_eq!(read("net"), "nonet\n");
}

#[test]
fn early_cutoff_rebuilds_only_what_changed() {
    let ctx = busybox_project();
    let leaf = |comment: &str, content: &str| {
        manual(&[], &format!("    - mkdir -p %{{install-root}}\n    - \"echo {content} > %{{install-root}}/leaf # {comment}\"\n"))
    };
    ctx.write("elements/leaf.yaml", leaf("one", "v1"));
    ctx.write(
        "elements/mid.yaml",
        manual(
            &["leaf.yaml"],
            "    - mkdir -p %{install-root}\n    - cat /leaf > %{install-root}/mid\n",
        ),
    );
    ctx.write(
        "elements/top.yaml",
        manual(
            &["mid.yaml"],
            "    - mkdir -p %{install-root}\n    - cat /mid > %{install-root}/top\n",
        ),
    );
    ctx.write(
        "elements/other.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo other > %{install-root}/other\n",
        ),
    );
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends:\n  - top.yaml\n  - other.yaml\n",
    );
    let run = ctx.cas(["--json", "build", "all.yaml"]).ok();
    assert_eq!(run.json()["built"], 6, "{}", run.stdout);

    // A comment change: the leaf's key changes, its output does not.
    ctx.write("elements/leaf.yaml", leaf("two", "v1"));
    let run = ctx.cas(["--json", "build", "all.yaml"]).ok();
    assert_eq!(status_of(&run, "leaf.yaml"), "built");
    for n in [
        "mid.yaml",
        "top.yaml",
        "other.yaml",
        "base.yaml",
        "all.yaml",
    ] {
        assert_eq!(
            status_of(&run, n),
            "cached",
            "{n} rebuilt after a comment change"
        );
    }

    // An output change: the leaf and everything above it, nothing else.
    ctx.write("elements/leaf.yaml", leaf("two", "v2"));
    let run = ctx.cas(["--json", "build", "all.yaml"]).ok();
    for n in ["leaf.yaml", "mid.yaml", "top.yaml"] {
        assert_eq!(status_of(&run, n), "built", "{n}");
    }
    for n in ["other.yaml", "base.yaml"] {
        assert_eq!(status_of(&run, n), "cached", "{n}");
    }
}

#[test]
fn independent_steps_overlap_with_two_jobs() {
    let ctx = busybox_project();
    for n in ["s1", "s2"] {
        ctx.write(format!("elements/{n}.yaml"), manual(&[], &format!("    - sleep 2\n    - mkdir -p %{{install-root}}\n    - echo {n} > %{{install-root}}/{n}\n")));
    }
    ctx.write(
        "elements/both.yaml",
        "kind: stack\ndepends:\n  - s1.yaml\n  - s2.yaml\n",
    );
    let run = ctx.cas(["--json", "-j2", "build", "both.yaml"]).ok();
    let v = run.json();
    let span = |n: &str| {
        let e = v["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap();
        (
            e["started_ms"].as_u64().unwrap(),
            e["ended_ms"].as_u64().unwrap(),
        )
    };
    let (a0, a1) = span("s1.yaml");
    let (b0, b1) = span("s2.yaml");
    assert!(
        a0 < b1 && b0 < a1,
        "steps did not overlap: s1 {a0}..{a1}, s2 {b0}..{b1}"
    );
}

#[test]
fn a_failing_command_keeps_its_log_records_nothing_and_runs_again() {
    let ctx = busybox_project();
    ctx.write(
        "elements/bad.yaml",
        manual(
            &[],
            "    - echo about to fail\n    - echo the-cause >&2; exit 3\n",
        ),
    );
    let run = ctx.cas(["--json", "build", "bad.yaml"]).expect_code(1);
    assert_eq!(status_of(&run, "bad.yaml"), "failed");
    assert!(
        run.stderr.contains("the-cause"),
        "the log tail is not shown:\n{}",
        run.stderr
    );
    let log_line = run
        .stderr
        .lines()
        .find(|l| l.contains("full log:"))
        .expect("log path shown");
    let log_path = log_line.split("full log:").nth(1).unwrap().trim();
    assert!(std::fs::read_to_string(log_path)
        .unwrap()
        .contains("about to fail"));
    // Nothing recorded: the next build runs it again.
    let again = ctx.cas(["--json", "build", "bad.yaml"]).expect_code(1);
    assert_eq!(status_of(&again, "bad.yaml"), "failed");
    assert!(
        again.stderr.contains("building bad.yaml"),
        "{}",
        again.stderr
    );
}

#[test]
fn two_dependencies_installing_different_content_at_one_path_conflict() {
    let ctx = busybox_project();
    ctx.write(
        "elements/x.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}/etc\n    - echo x > %{install-root}/etc/conf\n",
        ),
    );
    ctx.write(
        "elements/y.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}/etc\n    - echo y > %{install-root}/etc/conf\n",
        ),
    );
    ctx.write(
        "elements/z.yaml",
        manual(&["x.yaml", "y.yaml"], "    - true\n"),
    );
    let run = ctx.cas(["build", "z.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains("x.yaml")
            && run.stderr.contains("y.yaml")
            && run.stderr.contains("etc/conf"),
        "{}",
        run.stderr
    );
}

#[test]
fn commands_without_a_shell_in_the_sysroot_are_an_error_that_says_so() {
    let ctx = Ctx::new();
    ctx.write(
        "elements/noshell.yaml",
        "kind: manual\nconfig:\n  install-commands:\n    - echo hi\n",
    );
    let run = ctx.cas(["build", "elements/noshell.yaml"]).expect_code(1);
    assert!(run.stderr.contains("/bin/sh"), "{}", run.stderr);
}

#[test]
fn max_jobs_does_not_change_keys_but_commands_do() {
    let ctx = busybox_project();
    ctx.write(
        "elements/j.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo %{max-jobs} > /dev/null\n",
        ),
    );
    let a = ctx.cas(["--json", "show", "j.yaml"]).ok();
    let b = ctx.cas(["--json", "-j1", "show", "j.yaml"]).ok();
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn shell_opens_the_sandbox_and_failed_reopens_the_kept_build_directory() {
    use std::io::Write;
    let ctx = busybox_project();
    ctx.write("files/src/input.txt", "from-the-sources\n");
    ctx.write(
        "elements/broken.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/src\nconfig:\n  build-commands:\n    - echo left-behind > state.txt\n    - exit 1\n",
    );
    ctx.cas(["build", "broken.yaml"]).expect_code(1);
    let shell = |args: &[&str], script: &str| {
        let (mut cmd, _) = ctx.command(args);
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // A fresh shell: sources staged, the sysroot is the declared base, exit code passed on.
    let out = shell(
        &["shell", "broken.yaml"],
        "cat /build/input.txt; test -e /build/state.txt && echo stale; exit 7\n",
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("from-the-sources") && !stdout.contains("stale"),
        "{stdout}"
    );
    // a fresh shell's build directory goes with it
    let left: Vec<String> = std::fs::read_dir(ctx.store().join("builds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shell-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // --failed: the build directory as the failed build left it.
    let out = shell(&["shell", "--failed"], "cat /build/state.txt; exit 0\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("left-behind"));
}

#[test]
fn ctrl_c_stops_the_sandboxes_records_nothing_and_leaves_the_store_consistent() {
    let ctx = busybox_project();
    let marker = format!("cas-interrupt-{}", std::process::id());
    ctx.write(
        "elements/slow.yaml",
        manual(
            &[],
            &format!("    - mkdir -p %{{install-root}}\n    - \"sleep 300 # {marker}\"\n"),
        ),
    );
    ctx.cas(["build", "base.yaml"]).ok();
    let (mut cmd, _) = ctx.command(["--json", "build", "slow.yaml"]);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the sandboxed command runs.
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let start = std::time::Instant::now();
    while !running() {
        assert!(start.elapsed().as_secs() < 60, "the sandbox never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed().as_secs() < 60, "cas did not stop promptly");
    // The sandbox's processes are gone.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!running(), "the sandboxed sleep survived Ctrl-C");
    // Nothing recorded; the store verifies; the next build runs the step again.
    let show = ctx.cas(["--json", "show", "slow.yaml"]).ok();
    let state = show.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "slow.yaml")
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "buildable");
    ctx.cas(["store", "verify"]).ok();
}

#[test]
fn sigkill_during_a_build_leaves_a_store_that_verifies_and_builds_again() {
    let ctx = busybox_project();
    let marker = format!("cas-sigkill-{}", std::process::id());
    ctx.write(
        "elements/slow.yaml",
        manual(&[], &format!("    - mkdir -p %{{install-root}}\n    - echo partial > %{{install-root}}/partial\n    - \"sleep 300 # {marker}\"\n")),
    );
    let (mut cmd, _) = ctx.command(["build", "slow.yaml"]);
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let start = std::time::Instant::now();
    while !running() {
        assert!(start.elapsed().as_secs() < 60, "the sandbox never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    // The sandbox dies with cas (die-with-parent).
    let deadline = std::time::Instant::now();
    while running() {
        assert!(
            deadline.elapsed().as_secs() < 10,
            "the sandboxed sleep survived SIGKILL of cas"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ctx.cas(["store", "verify"]).ok();
    let show = ctx.cas(["--json", "show", "slow.yaml"]).ok();
    let state = show.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "slow.yaml")
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "buildable", "a killed step must not have a result");
    // The lock is free and the step can run again (made quick now).
    ctx.write(
        "elements/slow.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo done > %{install-root}/done\n",
        ),
    );
    ctx.cas(["build", "slow.yaml"]).ok();
    ctx.cas(["store", "gc", "--dry-run"]).ok();
}

/// A tmpfs of `size` at `dir`, unmounted on drop; None where mounting is not allowed.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(dir: std::path::PathBuf, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_fails_the_step_clearly_and_the_store_stays_valid() {
    let ctx = busybox_project();
    let Some(fs) = SmallFs::mount(ctx.path("small"), "24m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root); the full-disk test did not run");
        return;
    };
    let store = fs.0.join("store");
    let store = store.to_str().unwrap();
    ctx.cas(["--store", store, "build", "base.yaml"]).ok();
    ctx.write(
        "elements/huge.yaml",
        manual(&[], "    - mkdir -p %{install-root}\n    - head -c 41943040 /dev/zero > %{install-root}/zeros\n"),
    );
    // The command's own write fails: the step fails with its log, nothing is recorded.
    let run = ctx
        .cas(["--store", store, "build", "huge.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("huge.yaml") && run.stderr.contains("full log:"),
        "{}",
        run.stderr
    );
    ctx.cas(["--store", store, "store", "verify"]).ok();
    // cas's own write fails (copying a user's directory into the full store):
    // a clear error naming the cause, and no partial object.
    let big = ctx.path("big-input");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..8 {
        std::fs::write(big.join(format!("f{i}")), vec![i as u8; 4 << 20]).unwrap();
    }
    let run = ctx
        .cas(["--store", store, "store", "ingest", big.to_str().unwrap()])
        .expect_code(1);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    ctx.cas(["--store", store, "store", "verify"]).ok();
    let tmp_left = std::fs::read_dir(fs.0.join("store/tmp")).unwrap().count();
    assert_eq!(tmp_left, 0, "temporary files left behind after ENOSPC");
    // Space comes back once the failed build directory is gone: the store still works.
    let builds = fs.0.join("store/builds");
    for e in std::fs::read_dir(&builds).unwrap().flatten() {
        if e.path().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        }
    }
    ctx.write(
        "elements/small.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo fits > %{install-root}/small\n",
        ),
    );
    ctx.cas(["--store", store, "build", "small.yaml"]).ok();
    ctx.cas(["--store", store, "store", "verify"]).ok();
}

#[test]
fn a_local_source_edited_behind_the_stat_cache_still_changes_the_key() {
    let ctx = busybox_project();
    let file = ctx.write("files/src/data.txt", "one\n");
    ctx.write(
        "elements/uses.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/src\nconfig:\n  install-commands:\n    - mkdir -p %{install-root}\n    - cp data.txt %{install-root}/\n",
    );
    let key = |ctx: &Ctx| {
        let show = ctx.cas(["--json", "show", "uses.yaml"]).ok();
        show.json()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "uses.yaml")
            .unwrap()["key"]
            .clone()
    };
    ctx.cas(["build", "base.yaml"]).ok();
    // Let the file settle so that its digest enters the stat cache.
    std::thread::sleep(std::time::Duration::from_millis(2300));
    let first = key(&ctx);
    assert!(first.is_string(), "no key: {first}");
    assert_eq!(key(&ctx), first, "the key of an unchanged source moved");
    // Same size, mtime put back: only the ctime tells.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "two\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_ne!(key(&ctx), first, "an edited local source kept its key");
    ctx.cas(["build", "uses.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "uses.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("data.txt")).unwrap(),
        "two\n"
    );
}

/// A step staging several outputs sees their union through an overlay of
/// each output's own view (built once, shared by every step that stages
/// it): no merged view is materialised per step. With the overlay turned
/// off (`CAS_SANDBOX_OVERLAY=0`) the merged view is built instead, and the
/// keys and outputs are the same.
#[test]
fn several_dependencies_are_staged_as_layers_of_their_own_views() {
    let ctx = busybox_project();
    ctx.write(
        "elements/a.yaml",
        manual(&[], "    - mkdir -p %{install-root}/usr/lib\n    - echo a > %{install-root}/usr/lib/a.txt\n"),
    );
    ctx.write(
        "elements/b.yaml",
        manual(&[], "    - mkdir -p %{install-root}/usr/lib %{install-root}/usr/bin\n    - echo b > %{install-root}/usr/lib/b.txt\n"),
    );
    ctx.write(
        "elements/c.yaml",
        manual(
            &["a.yaml", "b.yaml"],
            "    - mkdir -p %{install-root}\n    - cat /usr/lib/a.txt /usr/lib/b.txt > %{install-root}/seen\n    - ls /usr/bin /bin | grep -c . > %{install-root}/count\n    - if touch /usr/lib/x 2>/dev/null; then echo writable; fi >> %{install-root}/seen\n",
        ),
    );
    let views = |store: &std::path::Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(store.join("views"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect()
    };
    let outputs = |run: &crate::ctx::Run| -> std::collections::BTreeMap<String, (String, String)> {
        run.json()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    (
                        e["key"].as_str().unwrap().to_owned(),
                        e["output"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    };

    let layered = ctx.cas(["--json", "build", "c.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "c.yaml", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(out.join("seen")).unwrap(), "a\nb\n");
    let layered_outputs = outputs(&layered);
    let dep_outputs: std::collections::BTreeSet<String> = ["base.yaml", "a.yaml", "b.yaml"]
        .iter()
        .map(|n| layered_outputs[*n].1.clone())
        .collect();
    assert_eq!(
        views(&ctx.store()),
        dep_outputs,
        "only the dependencies' own views exist (c's sysroot was not materialised)"
    );

    let merged_store = ctx.path("store-merged");
    let (mut cmd, shown) = ctx.command(["--json", "build", "c.yaml"]);
    cmd.env("CAS_STORE", &merged_store)
        .env("CAS_SANDBOX_OVERLAY", "0");
    let merged = crate::ctx::Run::from_output(shown, cmd.output().unwrap()).ok();
    assert_eq!(
        outputs(&merged),
        layered_outputs,
        "same keys and outputs either way"
    );
    let merged_views = views(&merged_store);
    assert!(
        merged_views.iter().any(|v| !dep_outputs.contains(v)),
        "without overlays the merged sysroot is a view of its own: {merged_views:?}"
    );
}

/// More dependencies than one overlay mount can name (its options fit in a
/// page: about 60 views) fall back to one merged view, and the step still
/// sees every dependency.
#[test]
fn more_layers_than_an_overlay_takes_fall_back_to_a_merged_view() {
    let ctx = busybox_project();
    let n = 70;
    let mut deps = Vec::new();
    for i in 0..n {
        let name = format!("d{i:02}.yaml");
        ctx.write(
            format!("elements/{name}"),
            manual(
                &[],
                &format!("    - mkdir -p %{{install-root}}/usr/share\n    - echo {i} > %{{install-root}}/usr/share/d{i:02}\n"),
            ),
        );
        deps.push(name);
    }
    let dep_refs: Vec<&str> = deps.iter().map(String::as_str).collect();
    ctx.write(
        "elements/all.yaml",
        manual(
            &dep_refs,
            "    - mkdir -p %{install-root}\n    - ls /usr/share | grep -c '^d' > %{install-root}/count\n",
        ),
    );
    let run = ctx.cas(["--json", "-j2", "build", "all.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "all.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("count")).unwrap(),
        format!("{n}\n")
    );
    let outputs: std::collections::BTreeSet<String> = run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["output"].as_str().unwrap().to_owned())
        .collect();
    let merged_views = std::fs::read_dir(ctx.store().join("views"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|v| v.len() == 64 && !outputs.contains(v))
        .count();
    assert_eq!(
        merged_views, 1,
        "the step over {n} layers used one merged view"
    );
}

#[test]
fn a_store_on_a_file_system_with_no_space_left_says_so() {
    let ctx = busybox_project();
    let Some(fs) = SmallFs::mount(ctx.path("full"), "16m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root); the no-space test did not run");
        return;
    };
    let store_dir = fs.0.join("store");
    let store = store_dir.to_str().unwrap();
    ctx.cas(["--store", store, "build", "base.yaml"]).ok();
    // Fill every last byte.
    let filler = fs.0.join("filler");
    let fill = || {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cat /dev/zero > {} 2>/dev/null", filler.display()))
            .status();
    };
    fill();
    // cas leaves the action cache's WAL in place: reading needs no space
    ctx.cas(["--store", store, "store", "verify"]).ok();
    // A store whose WAL another SQLite client checkpointed and removed (its
    // last connection closing): opening it must create the WAL again, and
    // on a full file system that is said as such.
    std::fs::remove_file(&filler).unwrap();
    let db = store_dir.join("ac.sqlite");
    let closed = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()")
        .arg(&db)
        .status()
        .unwrap();
    assert!(closed.success());
    assert!(!store_dir.join("ac.sqlite-wal").exists(), "the WAL is gone");
    fill();
    let run = ctx
        .cas(["--store", store, "store", "verify"])
        .expect_code(1);
    assert!(
        run.stderr.contains("is full") && run.stderr.contains("bytes free"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("disk I/O error"), "{}", run.stderr);
    std::fs::remove_file(&filler).unwrap();
    ctx.cas(["--store", store, "store", "verify"]).ok();
}

#[test]
fn a_step_runs_all_its_commands_in_one_sandbox_and_names_the_one_that_fails() {
    let ctx = busybox_project();
    ctx.write(
        "elements/three.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  configure-commands:\n    - echo one > one.txt\n  build-commands:\n    - echo two > two.txt\n    - |\n      echo third starts\n      false\n      echo never\n  install-commands:\n    - echo four > four.txt\n",
    );
    let run = ctx.cas(["build", "three.yaml"]).expect_code(1);
    assert!(run.stderr.contains("build-commands"), "{}", run.stderr);
    assert!(run.stderr.contains("echo third starts"), "{}", run.stderr);
    // The first two commands' effects are in the kept build directory.
    let failed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ctx.store().join("builds/last-failed.json")).unwrap(),
    )
    .unwrap();
    let dir = std::path::PathBuf::from(failed["dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("build/one.txt")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("build/two.txt")).unwrap(),
        "two\n"
    );
    assert!(!dir.join("build/four.txt").exists());
    // The log has every command's header, up to the failing one.
    let log = std::fs::read_to_string(dir.join("build.log")).unwrap();
    assert!(
        log.contains("# configure-commands: echo one > one.txt"),
        "{log}"
    );
    assert!(
        log.contains("# build-commands: echo two > two.txt"),
        "{log}"
    );
    assert!(log.contains("# build-commands: echo third starts"), "{log}");
    assert!(
        log.contains("third starts") && !log.contains("\nnever"),
        "{log}"
    );
    assert!(!log.contains("# install-commands"), "{log}");

    // One bwrap for the whole step, however many commands it has.
    ctx.write(
        "elements/count.yaml",
        manual(&[], "    - mkdir -p %{install-root}\n    - echo $$ > %{install-root}/a\n    - echo $$ > %{install-root}/b\n    - cat /proc/1/cmdline | tr '\\0' ' ' > %{install-root}/init\n"),
    );
    ctx.cas(["build", "count.yaml"]).ok();
    let out = ctx.path("out-count");
    ctx.cas(["checkout", "count.yaml", out.to_str().unwrap()])
        .ok();
    let init = std::fs::read_to_string(out.join("init")).unwrap();
    assert!(
        init.contains("cas-step"),
        "pid 1 of the sandbox is the step's driver: {init}"
    );
}

#[test]
fn sandbox_probes_are_remembered_per_store_and_kernel() {
    let ctx = busybox_project();
    ctx.write(
        "elements/p.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo p > %{install-root}/p\n",
        ),
    );
    ctx.cas(["build", "p.yaml"]).ok();
    let probes = std::fs::read_to_string(ctx.store().join("probes")).unwrap();
    let line = probes
        .lines()
        .find(|l| l.starts_with("bwrap "))
        .unwrap_or_else(|| panic!("no bwrap probe remembered:\n{probes}"));
    assert!(line.ends_with(" ok"), "{line}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(
        line.contains(release.trim()),
        "the identity names the kernel: {line}"
    );
    // Another kernel (or bwrap, or cas) probes again and rewrites its line.
    std::fs::write(ctx.store().join("probes"), "bwrap other-kernel ok\n").unwrap();
    ctx.write(
        "elements/q.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo q > %{install-root}/q\n",
        ),
    );
    ctx.cas(["build", "q.yaml"]).ok();
    let probes = std::fs::read_to_string(ctx.store().join("probes")).unwrap();
    assert!(!probes.contains("other-kernel"), "{probes}");
    assert!(probes.contains(release.trim()), "{probes}");
}

/// Critical path first (#29): at -j1, of the ready steps the head of the
/// longest chain starts before leaves that come first by name.
#[test]
fn the_longest_chain_starts_before_steps_that_come_first_by_name() {
    let ctx = crate::ctx::busybox_project();
    let step = |name: &str, deps: &[&str]| {
        ctx.write(
            format!("elements/{name}.yaml"),
            crate::ctx::manual(deps, &format!("    - mkdir -p %{{install-root}}/{name}\n")),
        );
    };
    for leaf in ["a-1", "a-2", "a-3"] {
        step(leaf, &[]);
    }
    step("z-1", &[]);
    step("z-2", &["z-1.yaml"]);
    step("z-3", &["z-2.yaml"]);
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends: [a-1.yaml, a-2.yaml, a-3.yaml, z-3.yaml]\n",
    );
    let run = ctx.cas(["-j1", "build", "all.yaml"]).ok();
    let started: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.split("building ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter(|n| *n != "base.yaml")
        .collect();
    assert_eq!(started.first(), Some(&"z-1.yaml"), "{}", run.stderr);
    // and the old order is still there for comparisons
    ctx.write(
        "elements/a-1.yaml",
        crate::ctx::manual(&[], "    - mkdir -p %{install-root}/a-1-again\n"),
    );
    ctx.write(
        "elements/z-1.yaml",
        crate::ctx::manual(&[], "    - mkdir -p %{install-root}/z-1-again\n"),
    );
    let (mut cmd, shown) = ctx.command(["-j1", "build", "all.yaml"]);
    cmd.env("CAS_SCHEDULE", "index");
    let run = crate::ctx::Run::from_output(shown, cmd.output().unwrap()).ok();
    let first = run
        .stderr
        .lines()
        .filter_map(|l| l.split("building ").nth(1))
        .find_map(|r| r.split_whitespace().next());
    assert_eq!(first, Some("a-1.yaml"), "{}", run.stderr);
}

/// Step times that add up (#29): a built step's `duration_ms` is the whole
/// step, split into phases that sum to it; its commands are in `run_ms`.
#[test]
fn a_built_steps_time_is_the_whole_step_split_into_phases_that_add_up() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/slow.yaml",
        crate::ctx::manual(
            &[],
            "    - sleep 0.4\n    - mkdir -p %{install-root}/slow\n",
        ),
    );
    let run = ctx.cas(["--json", "build", "slow.yaml"]).ok();
    let json = run.json();
    let row = json["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "slow.yaml")
        .unwrap();
    let total = row["duration_ms"].as_u64().expect("duration_ms");
    let phases = &row["phases"];
    let part = |k: &str| {
        phases[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {phases}"))
    };
    let sum = part("lookup_ms") + part("fetch_ms") + part("run_ms") + part("record_ms");
    assert_eq!(sum, total, "{row}");
    assert!(part("run_ms") >= 400, "{row}");
    assert_eq!(
        total,
        row["ended_ms"].as_u64().unwrap() - row["started_ms"].as_u64().unwrap()
    );
}

/// Short keys (#32): the 12 hex digits cas prints are accepted wherever a
/// key or a tree is (checkout, diff, explain --against); an unknown prefix
/// is invalid input.
#[test]
fn the_short_keys_cas_prints_are_accepted_where_a_key_is() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/a.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/a\n    - echo one > %{install-root}/a/f\n",
        ),
    );
    let run = ctx.cas(["--json", "build", "a.yaml"]).ok();
    let key1 = run.per_element("key")["a.yaml"].clone();
    let out1 = run.per_element("output")["a.yaml"].clone();
    ctx.write(
        "elements/a.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/a\n    - echo two > %{install-root}/a/f\n",
        ),
    );
    let run = ctx.cas(["--json", "build", "a.yaml"]).ok();
    let key2 = run.per_element("key")["a.yaml"].clone();
    let dir = ctx.path("co");
    ctx.cas(["checkout", &key1[..12], dir.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(dir.join("a/f")).unwrap(), "one\n");
    let dir = ctx.path("co-tree");
    ctx.cas(["checkout", &out1[..8], dir.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(dir.join("a/f")).unwrap(), "one\n");
    let diff = ctx.cas(["diff", &key1[..12], &key2[..12]]).expect_code(1);
    assert!(diff.stdout.contains("a/f"), "{}", diff.stdout);
    ctx.cas(["explain", "a.yaml", "--against", &key1[..12]])
        .ok();
    let bad = ctx.cas([
        "checkout",
        "0000000000ff",
        ctx.path("none").to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("no action key or tree") && bad.stderr.contains("0000000000ff"),
        "{}",
        bad.stderr
    );
}

/// The failure path (#32): a failed element has its key and log in
/// `--json`, `show` says `failed`, and `cas log` shows the failed log.
#[test]
fn a_failed_element_has_its_key_and_log_and_show_and_log_say_so() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/broken.yaml",
        crate::ctx::manual(&[], "    - echo about to fail\n    - false\n"),
    );
    let run = ctx.cas(["--json", "build", "broken.yaml"]).expect_code(1);
    let json = run.json();
    let row = json["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "broken.yaml")
        .unwrap()
        .clone();
    assert_eq!(row["status"], "failed");
    let key = row["key"]
        .as_str()
        .expect("a failed element has its key")
        .to_string();
    assert_eq!(key.len(), 64);
    let log = row["log"].as_str().expect("and its log");
    assert!(std::fs::read_to_string(log)
        .unwrap()
        .contains("about to fail"));
    // which command failed, in which phase, with which exit code
    assert_eq!(row["failure"]["phase"], "install-commands", "{row}");
    assert_eq!(row["failure"]["command"], "false", "{row}");
    assert_eq!(row["failure"]["exit_code"], 1, "{row}");
    // the driver's marker is for cas: not in the excerpt, not in `cas log`
    let human = ctx.cas(["build", "broken.yaml"]).expect_code(1);
    assert!(
        human.stderr.contains("  | about to fail"),
        "{}",
        human.stderr
    );
    assert!(!human.stderr.contains("#cas-failed-"), "{}", human.stderr);
    let show = ctx.cas(["--json", "show", "broken.yaml"]).ok();
    let state = show.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "broken.yaml")
        .unwrap()["state"]
        .clone();
    assert_eq!(state, "failed");
    let logged = ctx.cas(["log", "broken.yaml"]).ok();
    assert!(logged.stdout.contains("about to fail"), "{}", logged.stdout);
    assert!(!logged.stdout.contains("#cas-failed-"), "{}", logged.stdout);
    assert!(logged.stderr.contains("failed build"), "{}", logged.stderr);
    let last = ctx.cas(["log", "--failed"]).ok();
    assert!(last.stdout.contains("about to fail"));
    // gc removes kept failures, and with them the state
    ctx.cas(["store", "gc"]).ok();
    let show = ctx.cas(["show", "broken.yaml"]).ok();
    assert!(!show.stdout.contains("failed"), "{}", show.stdout);
}

/// Off a terminal (#32): a step that runs for a while gets a line with how
/// long it has run and the last line of its log (every 30 s; here 1 s).
#[test]
fn off_a_terminal_a_long_step_says_it_is_running_with_its_last_log_line() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/slow.yaml",
        crate::ctx::manual(
            &[],
            "    - echo compiling-part-one\n    - sleep 2.5\n    - mkdir -p %{install-root}/s\n",
        ),
    );
    let (mut cmd, shown) = ctx.command(["build", "slow.yaml"]);
    cmd.env("CAS_PROGRESS_INTERVAL", "1");
    let run = crate::ctx::Run::from_output(shown, cmd.output().unwrap()).ok();
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("running slow.yaml for"))
        .unwrap_or_else(|| panic!("no heartbeat:\n{}", run.stderr));
    // the log's last line: the command announced, or what it printed
    assert!(
        line.contains("sleep 2.5") || line.contains("compiling-part-one"),
        "{line}"
    );
}

/// `cas shell X -- CMD` (#32): one command in the element's sandbox, its
/// sources staged and its sysroot mounted; its exit code is cas's.
#[test]
fn cas_shell_runs_one_command_in_the_elements_sandbox() {
    let ctx = crate::ctx::busybox_project();
    ctx.write("files/src/hello.txt", "from the sources\n");
    ctx.write(
        "elements/e.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/src\nconfig:\n  install-commands:\n    - mkdir -p %{install-root}/e\n",
    );
    ctx.cas(["build", "base.yaml"]).ok();
    let run = ctx.cas(["shell", "e.yaml", "--", "cat", "hello.txt"]).ok();
    assert_eq!(run.stdout, "from the sources\n");
    let run = ctx.cas(["shell", "e.yaml", "--", "exit 7"]);
    assert_eq!(run.code, 7, "{}", run.stderr);
}

/// `cas completions SHELL` and `cas man` (#32): generated from the command
/// line itself; bash sources the script and completes a subcommand.
#[test]
fn completions_and_the_manual_page_come_from_the_command_line_itself() {
    let ctx = Ctx::new();
    let run = ctx.cas(["completions", "bash"]).ok();
    let script = ctx.path("cas.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(cas chec); COMP_CWORD=1; _cas cas chec cas; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.lines().any(|w| w == "checkout") && words.lines().any(|w| w == "check"),
        "{words}"
    );
    for shell in ["zsh", "fish"] {
        assert!(ctx
            .cas(["completions", shell])
            .ok()
            .stdout
            .contains("checkout"));
    }
    let man = ctx.cas(["man"]).ok();
    assert!(
        man.stdout.contains(".TH cas 1") && man.stdout.contains("checkout"),
        "{}",
        man.stdout
    );
    ctx.cas(["completions", "tcsh"]).expect_code(2);
}

/// `cas init` and `cas config` (#32): a new project whose first element
/// builds here, and the settings in effect with where each came from.
#[test]
fn cas_init_makes_a_project_that_builds_and_cas_config_says_where_settings_come_from() {
    let ctx = Ctx::new();
    let dir = ctx.path("first");
    let run = ctx.cas(["init", dir.to_str().unwrap()]).ok();
    assert!(
        run.stdout.contains("created the project first"),
        "{}",
        run.stdout
    );
    let (mut cmd, shown) = ctx.command(["build", "hello.yaml"]);
    cmd.current_dir(&dir);
    let run = crate::ctx::Run::from_output(shown, cmd.output().unwrap()).ok();
    assert!(run.stderr.contains("hello.yaml: output"), "{}", run.stderr);
    ctx.cas(["init", dir.to_str().unwrap()]).expect_code(2);
    let run = ctx.cas(["--json", "config"]).ok();
    let json = run.json();
    assert_eq!(json["store"]["from"], "environment (CAS_STORE)");
    assert_eq!(json["store"]["value"], ctx.store().to_str().unwrap());
    assert_eq!(json["arch"]["from"], "this machine");
    let run = ctx.cas(["--arch", "aarch64", "--jobs", "3", "config"]).ok();
    assert!(
        run.stdout.contains("arch          aarch64  (command line)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("jobs          3  (command line)"),
        "{}",
        run.stdout
    );
}

/// `cas build --timings` (#32): each built step by phase, the critical path
/// through what was built, the cache-hit ratio.
#[test]
fn build_timings_show_steps_by_phase_the_critical_path_and_cache_hits() {
    let ctx = busybox_project();
    ctx.write(
        "elements/a.yaml",
        manual(&[], "    - sleep 0.3\n    - mkdir -p %{install-root}/a\n"),
    );
    ctx.write(
        "elements/b.yaml",
        manual(
            &["a.yaml"],
            "    - sleep 0.3\n    - mkdir -p %{install-root}/b\n",
        ),
    );
    ctx.write(
        "elements/c.yaml",
        manual(&[], "    - mkdir -p %{install-root}/c\n"),
    );
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends: [b.yaml, c.yaml]\n",
    );
    ctx.cas(["build", "c.yaml"]).ok();
    let run = ctx.cas(["build", "--timings", "all.yaml"]).ok();
    let err = &run.stderr;
    assert!(err.contains("timings: 3 built, 2 cached"), "{err}");
    assert!(err.contains("cache hits 40% (2 of 5)"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.trim_start().starts_with("b.yaml") && l.contains('s')),
        "{err}"
    );
    // a step under a second is said in milliseconds, never `0.0s`
    let b = err
        .lines()
        .find(|l| l.trim_start().starts_with("b.yaml"))
        .unwrap_or_else(|| panic!("{err}"));
    let total = b.split_whitespace().nth(1).unwrap_or_default();
    let ms: u64 = total
        .strip_suffix("ms")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("b.yaml's total in ms: {b}"));
    assert!((300..1000).contains(&ms), "{b}");
    // nor any column of the table
    let table = err.lines().skip_while(|l| !l.starts_with("timings: "));
    assert!(
        !table
            .take_while(|l| !l.starts_with("critical path"))
            .any(|l| l.contains(" 0.0s")),
        "{err}"
    );
    let path = err
        .lines()
        .find(|l| l.starts_with("critical path: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        path.contains("a.yaml") && path.contains("-> b.yaml"),
        "{path}"
    );
}

/// `cas build -L` (#32): every step's log, line by line, prefixed with its
/// element, as it is written.
#[test]
fn print_logs_prefixes_every_log_line_with_its_element() {
    let ctx = busybox_project();
    ctx.write(
        "elements/talk.yaml",
        manual(&[], "    - echo first-line\n    - sleep 0.6\n    - echo second-line\n    - mkdir -p %{install-root}/t\n"),
    );
    let run = ctx.cas(["build", "-L", "talk.yaml"]).ok();
    for line in ["talk.yaml> first-line", "talk.yaml> second-line"] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "{line}:\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("#cas-failed"), "{}", run.stderr);
}

/// `--color` (#32): status words in colour when asked, none with NO_COLOR
/// or off a terminal.
#[test]
fn color_is_used_when_asked_and_never_with_no_color_or_never() {
    let ctx = busybox_project();
    ctx.write(
        "elements/c.yaml",
        manual(&[], "    - mkdir -p %{install-root}/c\n"),
    );
    let run = ctx.cas(["--color", "always", "build", "c.yaml"]).ok();
    assert!(run.stderr.contains("\x1b[32mbuilt"), "{:?}", run.stderr);
    ctx.write(
        "elements/c.yaml",
        manual(&[], "    - mkdir -p %{install-root}/c2\n"),
    );
    let run = ctx.cas(["--color", "never", "build", "c.yaml"]).ok();
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    // auto: the tests' stderr is no terminal, and NO_COLOR is set
    ctx.write(
        "elements/c.yaml",
        manual(&[], "    - mkdir -p %{install-root}/c3\n"),
    );
    let run = ctx.cas(["build", "c.yaml"]).ok();
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    ctx.cas(["--color", "sometimes", "build", "c.yaml"])
        .expect_code(2);
}

/// `cas log -f X` follows the log of X's build while another `cas build`
/// runs it: the lines arrive while the step still runs, and it ends with
/// the step (0 when it built, 1 when it failed).
#[test]
fn log_follow_prints_a_running_step_s_lines_and_ends_with_it() {
    let ctx = crate::ctx::busybox_project();
    // the step waits (at most 30 s) for a file the test puts into its build
    // directory (its working directory) once the follower has seen the first line
    ctx.write(
        "elements/slow.yaml",
        crate::ctx::manual(
            &[],
            "    - echo first line\n    - for i in $(seq 1 300); do [ -e open ] && break; sleep 0.1; done\n    - echo last line\n",
        ),
    );
    let (mut build, _) = ctx.command(["build", "slow.yaml"]);
    let mut build = build
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (mut follow, _) = ctx.command(["log", "-f", "slow.yaml"]);
    let mut follow = follow
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the step's build directory exists, then open its gate
    let builds = ctx.store().join("builds");
    let started = std::time::Instant::now();
    let dir = loop {
        let found = std::fs::read_dir(&builds).ok().and_then(|rd| {
            rd.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("slow.yaml-"))
            })
        });
        if let Some(d) = found {
            break d;
        }
        assert!(started.elapsed().as_secs() < 120, "the build never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // the first line is in the log before the gate opens
    let log = dir.join("build.log");
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("first line")
    {
        assert!(started.elapsed().as_secs() < 120, "no first line");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    // the follower is still running: the step is not over
    assert!(
        follow.try_wait().unwrap().is_none(),
        "log -f ended before its step"
    );
    std::fs::write(dir.join("build").join("open"), "").unwrap();
    assert!(build.wait().unwrap().success());
    let out = follow.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("first line") && stdout.contains("last line"),
        "{stdout}"
    );
    // each line once: what was followed, then the rest of the stored log
    assert_eq!(stdout.matches("\nfirst line\n").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("\nlast line").count(), 1, "{stdout}");
    assert!(stderr.contains("slow.yaml: built"), "{stderr}");
}

/// `cas build --message-format json-lines` streams every event as one JSON
/// object per line on stdout: each step's start with its key, its log,
/// its end with a status, a failure with its error and log, and a summary
/// last; a no-op build streams the cached steps and the summary too.
#[test]
fn message_format_json_lines_streams_typed_events() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/ok.yaml",
        crate::ctx::manual(&[], "    - echo fine\n"),
    );
    ctx.write(
        "elements/bad.yaml",
        crate::ctx::manual(&[], "    - echo about to fail\n    - false\n"),
    );
    let events = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let run = ctx
        .cas(["build", "--message-format", "json-lines", "ok.yaml"])
        .ok();
    let ev = events(&run.stdout);
    let of = |name: &str| ev.iter().filter(|e| e["event"] == name).collect::<Vec<_>>();
    let started: Vec<_> = of("started");
    assert!(
        started
            .iter()
            .any(|e| e["element"] == "ok.yaml" && e["key"].as_str().is_some_and(|k| k.len() == 64)),
        "{}",
        run.stdout
    );
    assert!(
        of("log").iter().any(|e| e["element"] == "ok.yaml"),
        "{}",
        run.stdout
    );
    assert!(
        of("finished").iter().any(|e| e["element"] == "ok.yaml"
            && e["status"] == "built"
            && e["duration_ms"].is_u64()),
        "{}",
        run.stdout
    );
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "summary", "{}", run.stdout);
    assert_eq!(last["failed"], 0);
    assert!(last["built"].as_u64().unwrap() >= 1);
    // a failure: its error and log, the summary says so, exit 1
    let run = ctx
        .cas(["build", "--message-format", "json-lines", "bad.yaml"])
        .expect_code(1);
    let ev = events(&run.stdout);
    let failed = ev
        .iter()
        .find(|e| e["event"] == "failed")
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(failed["element"], "bad.yaml");
    let log = failed["log"].as_str().unwrap();
    assert!(std::fs::read_to_string(log)
        .unwrap()
        .contains("about to fail"));
    assert_eq!(ev.last().unwrap()["failed"], 1);
    // the no-op path streams too
    let run = ctx
        .cas(["build", "--message-format", "json-lines", "ok.yaml"])
        .ok();
    let ev = events(&run.stdout);
    assert!(
        ev.iter().any(|e| e["event"] == "finished"
            && e["element"] == "ok.yaml"
            && e["status"] == "cached"),
        "{}",
        run.stdout
    );
    assert_eq!(ev.last().unwrap()["event"], "summary");
    // with --json both would print on stdout: refused
    ctx.cas([
        "--json",
        "build",
        "--message-format",
        "json-lines",
        "ok.yaml",
    ])
    .expect_code(2);
}

/// Options only where they apply: commands that only read from remotes
/// (`pull`, `checkout`, `explain`, `package`) offer no `--push` or
/// `--signing-key`; `build` and `push` do.
#[test]
fn push_options_are_offered_only_by_commands_that_push() {
    let ctx = crate::ctx::busybox_project();
    for cmd in ["pull", "checkout", "explain"] {
        let help = ctx.cas([cmd, "--help"]).ok();
        assert!(
            !help.stdout.contains("--push") && !help.stdout.contains("--signing-key"),
            "cas {cmd} --help: {}",
            help.stdout
        );
        assert!(help.stdout.contains("--remote"), "{}", help.stdout);
        ctx.cas([cmd, "--push", "base.yaml"]).expect_code(2);
    }
    for cmd in ["build", "push"] {
        let help = ctx.cas([cmd, "--help"]).ok();
        assert!(
            help.stdout.contains("--push") || cmd == "push",
            "{}",
            help.stdout
        );
        assert!(
            help.stdout.contains("--signing-key"),
            "cas {cmd}: {}",
            help.stdout
        );
    }
}

/// The advice after a build points at something worth checking out: a
/// stack's output is empty, so it says how to get its files instead.
#[test]
fn a_stack_target_is_not_advised_to_be_checked_out() {
    let ctx = crate::ctx::busybox_project();
    ctx.write("elements/group.yaml", "kind: stack\ndepends: [base.yaml]\n");
    let run = ctx.cas(["build", "group.yaml"]).ok();
    assert!(
        !run.stderr.contains("cas checkout group.yaml DIR"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`compose` element with `build-depends: [group.yaml]`"),
        "{}",
        run.stderr
    );
    let run = ctx.cas(["build", "base.yaml"]).ok();
    assert!(
        run.stderr
            .contains("see it with: cas checkout base.yaml DIR"),
        "{}",
        run.stderr
    );
}

/// An element whose key cannot be derived (its local source holds a fifo,
/// which cannot be stored) fails alone: everything it does not stage is
/// still found cached, whatever the order the cache pass takes them in, and
/// `cas show` names the first such element in closure order.
#[test]
fn an_element_whose_key_cannot_be_derived_fails_alone_and_is_named_in_order() {
    let ctx = busybox_project();
    ctx.write(
        "elements/t1.yaml",
        manual(&[], "    - mkdir -p %{install-root}/t1\n"),
    );
    ctx.write(
        "elements/t2.yaml",
        manual(&["t1.yaml"], "    - mkdir -p %{install-root}/t2\n"),
    );
    ctx.write(
        "elements/t3.yaml",
        manual(&["t2.yaml"], "    - mkdir -p %{install-root}/t3\n"),
    );
    // closure order (dependencies first, ties by name): base, t1, a-bad,
    // t2, t3, z-bad; a-bad is one wave deeper than z-bad (it stages t1)
    for (name, deps) in [("a-bad", vec!["t1.yaml"]), ("z-bad", vec![])] {
        ctx.write(format!("files/{name}/a"), "a\n");
        let mut text = manual(&deps, "    - mkdir -p %{install-root}/x\n");
        text = text.replace(
            "config:",
            &format!("sources:\n  - kind: local\n    path: files/{name}\nconfig:"),
        );
        ctx.write(format!("elements/{name}.yaml"), &text);
    }
    ctx.write(
        "elements/top.yaml",
        "kind: stack\ndepends:\n  - t3.yaml\n  - a-bad.yaml\n  - z-bad.yaml\n",
    );
    ctx.cas(["build", "top.yaml"]).ok();
    for name in ["a-bad", "z-bad"] {
        let a = ctx.project().join(format!("files/{name}/a"));
        std::fs::remove_file(&a).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&a)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let run = ctx.cas(["--json", "build", "top.yaml"]).expect_code(1);
    for t in ["base.yaml", "t1.yaml", "t2.yaml", "t3.yaml"] {
        assert_eq!(status_of(&run, t), "cached", "{}", run.stderr);
    }
    assert_eq!(status_of(&run, "a-bad.yaml"), "failed", "{}", run.stderr);
    assert_eq!(status_of(&run, "z-bad.yaml"), "failed", "{}", run.stderr);
    let shown = ctx.cas(["show", "top.yaml"]).expect_code(1);
    assert!(
        shown.stderr.contains("a-bad.yaml") && !shown.stderr.contains("z-bad.yaml"),
        "the first error in closure order:\n{}",
        shown.stderr
    );
}

//! Integrity under concurrency and hostile inputs (issue 12): several `cas`
//! processes on one store, inherited descriptors, endless downloads,
//! symlinks out of the project, trust rules, bounded expansion.

use std::collections::BTreeMap;
use std::process::Stdio;

use crate::ctx::{busybox_project, manual, Ctx, Run};

/// name → (key, output) of a `cas build --json` report.
fn results(run: &Run) -> BTreeMap<String, (String, String)> {
    run.json()["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                (
                    e["key"].as_str().unwrap_or("").to_owned(),
                    e["output"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect()
}

/// A project where concurrent runs overlap: a base of 270 entries, two
/// elements with the same recipe (one key), a diamond, and a compose.
fn overlapping_project() -> Ctx {
    let ctx = busybox_project();
    let files = "    - mkdir -p %{install-root}/usr/share/x\n    - for i in $(seq 1 150); do echo $i > %{install-root}/usr/share/x/f$i; ln -s f$i %{install-root}/usr/share/x/l$i; done\n";
    ctx.write("elements/a.yaml", manual(&[], files));
    ctx.write("elements/twin.yaml", manual(&[], files));
    ctx.write(
        "elements/b.yaml",
        manual(
            &["a.yaml"],
            "    - mkdir -p %{install-root}/usr/share/b\n    - ls /usr/share/x | wc -l > %{install-root}/usr/share/b/count\n    - cp -a /bin %{install-root}/usr/share/b/bin\n",
        ),
    );
    ctx.write(
        "elements/c.yaml",
        manual(
            &["twin.yaml"],
            "    - mkdir -p %{install-root}/usr/share/c\n    - cat /usr/share/x/f7 > %{install-root}/usr/share/c/seven\n",
        ),
    );
    ctx.write(
        "elements/top.yaml",
        "kind: compose\nbuild-depends:\n  - base.yaml\n  - b.yaml\n  - c.yaml\n",
    );
    ctx
}

#[test]
fn concurrent_builds_of_the_same_and_overlapping_targets_record_only_true_results() {
    let ctx = overlapping_project();
    // The reference: one process, its own store.
    let reference_store = ctx.path("reference");
    let (mut cmd, shown) = ctx.command(["--json", "build", "top.yaml"]);
    cmd.env("CAS_STORE", &reference_store);
    let reference = results(&Run::from_output(shown, cmd.output().unwrap()).ok());
    assert_eq!(reference.len(), 6);

    let targets: [&[&str]; 3] = [&["top.yaml"], &["b.yaml", "c.yaml"], &["top.yaml"]];
    for round in 0..10 {
        let store = ctx.path(format!("store-{round}"));
        let children: Vec<_> = targets
            .iter()
            .map(|t| {
                let mut args = vec!["--json", "build"];
                args.extend_from_slice(t);
                let (mut cmd, shown) = ctx.command(&args);
                cmd.env("CAS_STORE", &store)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                (cmd.spawn().unwrap(), shown)
            })
            .collect();
        for (child, shown) in children {
            let run = Run::from_output(shown, child.wait_with_output().unwrap()).ok();
            for (name, got) in results(&run) {
                assert_eq!(
                    &got, &reference[&name],
                    "round {round}: {name} differs from the single-process build\n{}",
                    run.stderr
                );
            }
        }
        // What the store now says, with nothing running: the same again.
        let (mut cmd, shown) = ctx.command(["--json", "build", "top.yaml"]);
        cmd.env("CAS_STORE", &store);
        let again = Run::from_output(shown, cmd.output().unwrap()).ok();
        assert_eq!(again.json()["cached"], 6, "round {round}: {}", again.stdout);
        assert_eq!(results(&again), reference, "round {round}");
        let (mut cmd, shown) = ctx.command(["store", "verify", "--deep"]);
        cmd.env("CAS_STORE", &store);
        Run::from_output(shown, cmd.output().unwrap()).ok();
        // No build directory is left behind by successful runs.
        let left: Vec<_> = std::fs::read_dir(store.join("builds"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "round {round}: left in builds/: {left:?}");
    }
}

#[test]
fn descriptors_opened_by_the_caller_are_not_visible_in_the_sandbox() {
    use std::os::unix::process::CommandExt;
    let ctx = busybox_project();
    let leak = ctx.path("leak.txt");
    let secret = ctx.path("secret");
    std::fs::write(&leak, "").unwrap();
    std::fs::write(&secret, "the secret\n").unwrap();
    ctx.write(
        "elements/fd.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - ls /proc/self/fd > %{install-root}/fds\n    - (echo x >&7) 2>/dev/null || echo no-7 > %{install-root}/w\n    - (cat <&8 > %{install-root}/r) 2>/dev/null || echo no-8 > %{install-root}/r\n",
        ),
    );
    let (mut cmd, shown) = ctx.command(["build", "fd.yaml"]);
    let w = std::fs::OpenOptions::new().append(true).open(&leak).unwrap();
    let r = std::fs::File::open(&secret).unwrap();
    use std::os::fd::AsRawFd;
    let (wfd, rfd) = (w.as_raw_fd(), r.as_raw_fd());
    // SAFETY: dup2 between fork and exec; the copies are not close-on-exec,
    // as a shell's `exec 7>>leak 8<secret` makes them.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 7) < 0 || libc::dup2(rfd, 8) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Run::from_output(shown, cmd.output().unwrap()).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "fd.yaml", out.to_str().unwrap()]).ok();
    let fds = std::fs::read_to_string(out.join("fds")).unwrap();
    let listed: Vec<u32> = fds.lines().map(|l| l.trim().parse().unwrap()).collect();
    // stdin, stdout, stderr, and the directory `ls` itself opened.
    assert!(listed.iter().all(|fd| *fd <= 3), "descriptors in the sandbox: {listed:?}");
    assert_eq!(std::fs::read_to_string(&leak).unwrap(), "", "the host file was written");
    assert_eq!(std::fs::read_to_string(out.join("w")).unwrap(), "no-7\n");
    assert_eq!(std::fs::read_to_string(out.join("r")).unwrap(), "no-8\n");
}

/// Processes whose command line mentions `needle` (the test's store path).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

#[test]
fn sigkill_of_cas_at_any_moment_of_sandbox_setup_leaves_no_process_behind() {
    let ctx = busybox_project();
    // Many short commands: kills land in every phase of bwrap's setup.
    let mut commands = String::from("    - mkdir -p %{install-root}\n");
    for i in 0..40 {
        commands.push_str(&format!("    - echo {i} >> %{{install-root}}/n\n"));
    }
    ctx.write("elements/many.yaml", manual(&[], &commands));
    ctx.cas(["build", "base.yaml"]).ok();
    let store = ctx.store().display().to_string();
    for round in 0..24u64 {
        let (mut cmd, _) = ctx.command(["build", "many.yaml"]);
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + round * 37 % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = std::time::Instant::now();
        loop {
            let left = processes_mentioning(&store);
            if left.is_empty() {
                break;
            }
            assert!(
                deadline.elapsed().as_secs() < 10,
                "round {round}: left running after SIGKILL of cas:\n{}",
                left.join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    ctx.cas(["store", "verify", "--deep"]).ok();
    ctx.cas(["build", "many.yaml"]).ok();
}

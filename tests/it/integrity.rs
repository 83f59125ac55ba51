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
    let w = std::fs::OpenOptions::new()
        .append(true)
        .open(&leak)
        .unwrap();
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
    assert!(
        listed.iter().all(|fd| *fd <= 3),
        "descriptors in the sandbox: {listed:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&leak).unwrap(),
        "",
        "the host file was written"
    );
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

/// One HTTP/1.1 request from `reader`: its method and path (headers read,
/// the body skipped); `None` at the end of the connection.
fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    let _ = std::io::Read::read_exact(reader, &mut body);
    Some((method, path))
}

/// How the hostile server answers `GET cas/<victim>`.
#[derive(Clone, Copy)]
enum Hostile {
    /// 200, no length, bytes until the client goes away.
    Endless,
    /// 200, the right length announced, one byte every 200 ms.
    Trickle,
}

/// An HTTP cache on 127.0.0.1 that serves the files of a directory remote
/// (`DIR/ac/*`, `DIR/cas/*`) under `/cache/`, except the object `victim`.
/// Returns the base URL; the server thread lives as long as the test.
fn hostile_server(dir: std::path::PathBuf, victim: String, how: Hostile) -> String {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let dir = dir.clone();
            let victim = victim.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let Some((method, path)) = read_request(&mut reader) else {
                        return;
                    };
                    let rel = path.trim_start_matches("/cache/");
                    if rel == format!("cas/{victim}") && method == "GET" {
                        let _ = match how {
                            Hostile::Endless => {
                                let _ =
                                    conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                                let chunk = vec![b'z'; 64 << 10];
                                while conn.write_all(&chunk).is_ok() {}
                                Ok(())
                            }
                            Hostile::Trickle => {
                                let _ = conn
                                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
                                while conn.write_all(b"z").is_ok() {
                                    std::thread::sleep(std::time::Duration::from_millis(200));
                                }
                                Ok::<(), ()>(())
                            }
                        };
                        return;
                    }
                    let file = dir.join(rel);
                    let answer = match (method.as_str(), std::fs::read(&file)) {
                        ("GET", Ok(bytes)) => {
                            let mut a = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                                bytes.len()
                            )
                            .into_bytes();
                            a.extend_from_slice(&bytes);
                            a
                        }
                        ("HEAD", Ok(bytes)) => {
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len())
                                .into_bytes()
                        }
                        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                    };
                    if conn.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/cache")
}

/// A project whose `payload.yaml` installs 100 bytes of `x`, pushed (with
/// its base) to a directory remote; returns the remote and the payload
/// blob's digest.
fn pushed_payload(ctx: &Ctx) -> (std::path::PathBuf, String) {
    ctx.write(
        "elements/payload.yaml",
        manual(&[], "    - mkdir -p %{install-root}\n    - printf 'x%.0s' $(seq 1 100) > %{install-root}/payload\n"),
    );
    let dir = ctx.path("remote");
    let (mut cmd, shown) = ctx.command([
        "build",
        "payload.yaml",
        "--push",
        "--remote",
        dir.to_str().unwrap(),
    ]);
    cmd.env("CAS_STORE", ctx.path("pusher"));
    Run::from_output(shown, cmd.output().unwrap()).ok();
    let payload = ctx.path("payload-copy");
    std::fs::write(&payload, "x".repeat(100)).unwrap();
    let b3 = std::process::Command::new("b3sum")
        .arg("--no-names")
        .arg(&payload)
        .output()
        .unwrap();
    let digest = String::from_utf8(b3.stdout).unwrap().trim().to_owned();
    assert!(
        dir.join("cas").join(&digest).is_file(),
        "the payload was pushed"
    );
    (dir, digest)
}

fn tmp_bytes(store: &std::path::Path) -> u64 {
    walk_size(&store.join("tmp"))
}

fn walk_size(p: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[test]
fn an_endless_body_is_cut_off_at_the_stated_size_and_the_step_builds_locally() {
    let ctx = busybox_project();
    let (dir, victim) = pushed_payload(&ctx);
    let url = hostile_server(dir, victim.clone(), Hostile::Endless);
    let started = std::time::Instant::now();
    let run = ctx
        .cas([
            "--json",
            "build",
            "payload.yaml",
            "--remote",
            &url,
            "--trust-unsigned",
        ])
        .ok();
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
    let row = run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "payload.yaml")
        .unwrap()
        .clone();
    assert_eq!(row["status"], "built", "{}", run.stdout);
    assert!(
        run.stderr.contains("larger than the 100 bytes"),
        "{}",
        run.stderr
    );
    assert!(
        tmp_bytes(&ctx.store()) < 1 << 20,
        "tmp/ holds {} bytes",
        tmp_bytes(&ctx.store())
    );
    ctx.cas(["store", "verify", "--deep"]).ok();
}

#[test]
fn a_remote_s_own_timeout_gives_a_slow_cache_up_without_the_global_budget() {
    let ctx = busybox_project();
    let (dir, victim) = pushed_payload(&ctx);
    let url = hostile_server(dir, victim, Hostile::Trickle);
    // the user configuration's `timeout: 2` for this remote; the default
    // budget (CAS_REMOTE_TIMEOUT unset: 10 s) would wait five times longer
    let config = ctx.write(
        "remote.yaml",
        format!("remotes:\n- url: {url}\n  trust-unsigned: true\n  timeout: 2\n"),
    );
    let (mut cmd, shown) = ctx.command([
        "--json",
        "--config",
        config.to_str().unwrap(),
        "build",
        "payload.yaml",
    ]);
    cmd.env_remove("CAS_REMOTE_TIMEOUT");
    let started = std::time::Instant::now();
    let run = Run::from_output(shown, cmd.output().unwrap()).ok();
    let took = started.elapsed();
    assert!(
        run.stderr.contains("longer than its limit") || run.stderr.contains("more than the 2 s"),
        "{}",
        run.stderr
    );
    assert!(
        took.as_secs() < 9,
        "the remote's 2 s were not its limit: took {took:?}"
    );
    assert_eq!(run.json()["built"], 2, "{}", run.stdout);
    // a timeout of 0 is refused with its place in the file
    ctx.write(
        "remote.yaml",
        format!("remotes:\n- url: {url}\n  timeout: 0\n"),
    );
    let run = ctx
        .cas([
            "--config",
            config.to_str().unwrap(),
            "build",
            "payload.yaml",
        ])
        .expect_code(2);
    assert!(
        run.stderr.contains("`timeout` is at least 1"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_trickling_download_is_cut_off_at_its_time_limit_and_sigterm_stops_it() {
    let ctx = busybox_project();
    let (dir, victim) = pushed_payload(&ctx);
    let url = hostile_server(dir, victim, Hostile::Trickle);
    // The time limit (2 s here) ends it; the step is built locally.
    let (mut cmd, shown) = ctx.command([
        "--json",
        "build",
        "payload.yaml",
        "--remote",
        &url,
        "--trust-unsigned",
    ]);
    cmd.env("CAS_REMOTE_TIMEOUT", "2");
    let started = std::time::Instant::now();
    let run = Run::from_output(shown, cmd.output().unwrap()).ok();
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains("longer than its limit"),
        "{}",
        run.stderr
    );
    // the remote is given up for the whole build (one budget per remote):
    // the base, pulled without its objects, is built here too
    assert_eq!(run.json()["built"], 2, "{}", run.stdout);

    // SIGTERM in the middle of a trickle: cas stops within seconds.
    let ctx = busybox_project();
    let (dir, victim) = pushed_payload(&ctx);
    let url = hostile_server(dir, victim, Hostile::Trickle);
    let (mut cmd, _) = ctx.command([
        "build",
        "payload.yaml",
        "--remote",
        &url,
        "--trust-unsigned",
    ]);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        stopped.elapsed().as_secs() < 10,
        "SIGTERM took {:?}",
        stopped.elapsed()
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ctx.cas(["store", "verify", "--deep"]).ok();
}

#[test]
fn a_local_source_never_follows_a_symlink_out_of_the_project() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    std::fs::create_dir_all(ctx.project().join("files")).unwrap();
    std::os::unix::fs::symlink("/etc", ctx.project().join("files/x")).unwrap();
    ctx.write("files/own", "mine\n");
    // Through the link: refused at load time, at the path.
    ctx.write(
        "elements/through.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/x/passwd\n",
    );
    let run = ctx.cas(["build", "through.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("goes through the symlink `files/x`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("through.yaml:4:11"), "{}", run.stderr);
    // The link itself, or the directory holding it: staged as a link.
    for (name, path) in [("link.yaml", "files/x"), ("dir.yaml", "files")] {
        ctx.write(
            format!("elements/{name}"),
            format!("kind: import\nsources:\n  - kind: local\n    path: {path}\n"),
        );
        ctx.cas(["build", name]).ok();
        let out = ctx.path(format!("out-{name}"));
        ctx.cas(["checkout", name, out.to_str().unwrap()]).ok();
        let link = out.join("x");
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "{name}: x is not a symlink");
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::path::Path::new("/etc")
        );
        assert!(walk_size(&out) < 64, "{name}: host files were copied");
    }
    // A patch must be a file of the project, not a link to one.
    std::os::unix::fs::symlink("/etc/passwd", ctx.project().join("files/p.patch")).unwrap();
    ctx.write(
        "elements/patch.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/own\n  - kind: patch\n    path: files/p.patch\n",
    );
    let run = ctx.cas(["show", "patch.yaml"]).expect_code(2);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
}

/// A diagnostic as one line: miette's wrapping and gutters removed.
fn flat(s: &str) -> String {
    s.replace(['│', '×'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(run: &Run, name: &str) -> serde_json::Value {
    run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {}", run.stdout))
        .clone()
}

#[test]
fn a_stripped_signature_is_never_accepted_with_a_trusted_key_and_secrets_are_never_printed() {
    let ctx = busybox_project();
    let secret = ctx.path("alice.key");
    let keygen = ctx.cas(["keygen", "--out", secret.to_str().unwrap()]).ok();
    let public = ctx.path("alice.key.pub");
    ctx.write(
        "elements/payload.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo true > %{install-root}/payload\n",
        ),
    );
    let dir = ctx.path("remote");
    let d = dir.to_str().unwrap();
    let (mut cmd, shown) = ctx.command([
        "--json",
        "build",
        "payload.yaml",
        "--push",
        "--remote",
        d,
        "--signing-key",
        secret.to_str().unwrap(),
    ]);
    cmd.env("CAS_STORE", ctx.path("alice-store"));
    let alice = Run::from_output(shown, cmd.output().unwrap()).ok();
    let true_output = row(&alice, "payload.yaml")["output"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = row(&alice, "payload.yaml")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let base_output = row(&alice, "base.yaml")["output"]
        .as_str()
        .unwrap()
        .to_owned();
    // The attacker: another output (one the remote has), signature removed.
    let ac = dir.join("ac").join(&key);
    let text = std::fs::read_to_string(&ac).unwrap();
    let forged: String = text
        .lines()
        .filter(|l| !l.starts_with("signature "))
        .map(|l| {
            if l.starts_with("output ") {
                format!("output {base_output}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&ac, forged).unwrap();

    let pk = public.to_str().unwrap();
    // Both: a contradiction, refused before anything is used.
    let run = ctx
        .cas([
            "build",
            "payload.yaml",
            "--remote",
            d,
            "--trusted-key",
            pk,
            "--trust-unsigned",
        ])
        .expect_code(2);
    assert!(
        flat(&run.stderr).contains("contradict each other"),
        "{}",
        run.stderr
    );
    // The key alone: the stripped result is refused and the step built here.
    let run = ctx
        .cas([
            "--json",
            "build",
            "payload.yaml",
            "--remote",
            d,
            "--trusted-key",
            pk,
        ])
        .ok();
    assert_eq!(
        row(&run, "payload.yaml")["status"],
        "built",
        "{}",
        run.stderr
    );
    assert_eq!(row(&run, "payload.yaml")["output"], true_output.as_str());
    assert!(run.stderr.contains("not signed"), "{}", run.stderr);
    // trust-unsigned alone, on a fresh store: used, and said loudly.
    let (mut cmd, shown) = ctx.command([
        "--json",
        "build",
        "payload.yaml",
        "--remote",
        d,
        "--trust-unsigned",
    ]);
    cmd.env("CAS_STORE", ctx.path("lax-store"));
    let lax = Run::from_output(shown, cmd.output().unwrap()).ok();
    assert!(
        lax.stderr.contains("no trusted key signed"),
        "{}",
        lax.stderr
    );

    // The secret key given where a public key belongs: refused, never printed.
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    let hex = secret_text.trim().trim_start_matches("ed25519-secret:");
    assert_eq!(hex.len(), 64);
    for given in [secret.to_str().unwrap(), secret_text.trim()] {
        let run = ctx
            .cas([
                "build",
                "payload.yaml",
                "--remote",
                d,
                "--trusted-key",
                given,
            ])
            .expect_code(2);
        assert!(
            flat(&run.stderr).contains("secret key, not a public key"),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(&hex[..16]),
            "the secret key was printed:\n{}",
            run.stderr
        );
    }
    assert!(!keygen.stderr.contains(&hex[..16]));
}

#[test]
fn a_dependency_rebuilt_after_a_failed_download_is_reported_built_once_and_warned_about_once() {
    let ctx = busybox_project();
    ctx.write(
        "elements/a.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo a-content > %{install-root}/a\n",
        ),
    );
    let top = |i: usize, extra: &str| {
        manual(&["a.yaml"], &format!("    - mkdir -p %{{install-root}}\n    - cat /a > %{{install-root}}/top{i}{extra}\n"))
    };
    for i in 0..5 {
        ctx.write(format!("elements/top{i}.yaml"), top(i, ""));
    }
    let targets: Vec<String> = (0..5).map(|i| format!("top{i}.yaml")).collect();
    let dir = ctx.path("remote");
    let d = dir.to_str().unwrap().to_owned();
    let mut args = vec![
        "build".to_owned(),
        "--push".into(),
        "--remote".into(),
        d.clone(),
    ];
    args.extend(targets.iter().cloned());
    let (mut cmd, shown) = ctx.command(&args);
    cmd.env("CAS_STORE", ctx.path("pusher"));
    Run::from_output(shown, cmd.output().unwrap()).ok();
    // New recipes on top (nobody has them), and a's file gone from the remote.
    for i in 0..5 {
        ctx.write(format!("elements/top{i}.yaml"), top(i, ".new"));
    }
    let blob = ctx.path("a-copy");
    std::fs::write(&blob, "a-content\n").unwrap();
    let b3 = std::process::Command::new("b3sum")
        .arg("--no-names")
        .arg(&blob)
        .output()
        .unwrap();
    let digest = String::from_utf8(b3.stdout).unwrap().trim().to_owned();
    std::fs::remove_file(dir.join("cas").join(&digest)).unwrap();

    let mut args = vec![
        "--json".to_owned(),
        "build".into(),
        "--remote".into(),
        d,
        "--trust-unsigned".into(),
    ];
    args.extend(targets.iter().cloned());
    let run = ctx.cas(&args).ok();
    let v = run.json();
    assert_eq!(row(&run, "a.yaml")["status"], "built", "{}", run.stdout);
    assert_eq!(row(&run, "base.yaml")["status"], "pulled");
    assert_eq!(v["built"], 6, "{}", run.stdout);
    assert_eq!(v["pulled"], 1, "{}", run.stdout);
    assert_eq!(v["remote"]["warnings"], 1, "{}", run.stderr);
    let warned = run.stderr.matches(&digest).count();
    assert_eq!(
        warned, 1,
        "one warning for the missing object:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("built   a.yaml"), "{}", run.stderr);
    // What was reported is what the store has: base, pulled and then
    // downloaded for a's build, is recorded locally too.
    let again = ctx
        .cas(
            ["--json", "build"]
                .iter()
                .map(std::string::ToString::to_string)
                .chain(targets.iter().cloned()),
        )
        .ok();
    assert_eq!(again.json()["cached"], 7, "{}", again.stdout);
    assert_eq!(
        row(&again, "a.yaml")["output"],
        row(&run, "a.yaml")["output"]
    );
}

#[test]
fn cas_push_counts_only_results_the_remote_accepted() {
    let ctx = busybox_project();
    ctx.write(
        "elements/p.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo p > %{install-root}/p\n",
        ),
    );
    ctx.cas(["build", "p.yaml"]).ok();
    // A server that answers every PUT with 405 (as a read-only nginx does).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{BufReader, Write};
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let Some((method, _)) = read_request(&mut reader) else {
                        return;
                    };
                    let answer: &[u8] = if method == "PUT" {
                        b"HTTP/1.1 405 Not Allowed\r\nContent-Length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                    };
                    if conn.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("http://127.0.0.1:{port}/cache");
    let run = ctx
        .cas(["--json", "push", "p.yaml", "--remote", &url])
        .expect_code(1);
    assert_eq!(run.json()["pushed"], 0, "{}", run.stdout);
    assert!(run.stderr.contains("pushed 0 result(s)"), "{}", run.stderr);
    assert!(run.stderr.contains("405"), "{}", run.stderr);
}

#[test]
fn temporary_files_left_in_a_directory_remote_by_a_killed_push_are_swept() {
    let ctx = busybox_project();
    let dir = ctx.path("remote");
    let d = dir.to_str().unwrap();
    ctx.cas(["build", "base.yaml", "--push", "--remote", d])
        .ok();
    let stale = dir.join("cas/.0123.tmp-999-1");
    let fresh = dir.join("cas/.4567.tmp-999-2");
    std::fs::write(&stale, "partial").unwrap();
    std::fs::write(&fresh, "being written").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    ctx.write(
        "elements/p.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo p > %{install-root}/p\n",
        ),
    );
    ctx.cas(["build", "p.yaml", "--push", "--remote", d]).ok();
    assert!(!stale.exists(), "a stale temporary file is left");
    assert!(
        fresh.exists(),
        "a recent temporary file (maybe a writer's) was removed"
    );
}

#[test]
fn an_error_past_column_65535_is_shown_as_an_excerpt_without_a_panic() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    ctx.write(
        "elements/col.yaml",
        format!("{{kind: manual,{} bogus: 1}}\n", " ".repeat(66000)),
    );
    let run = ctx.cas(["show", "col.yaml"]).expect_code(2);
    assert!(run.stderr.contains("unknown key `bogus`"), "{}", run.stderr);
    assert!(run.stderr.contains("col.yaml:1:66016"), "{}", run.stderr);
    assert!(
        run.stderr.len() < 4000,
        "the whole line was printed: {} bytes",
        run.stderr.len()
    );
    // A long neighbouring line is left out of the context.
    ctx.write(
        "elements/long.yaml",
        format!(
            "kind: manual\nvariables:\n  x: \"{}\"\n  y: %{{z\n",
            "0".repeat(70000)
        ),
    );
    let run = ctx.cas(["show", "long.yaml"]).expect_code(2);
    assert!(run.stderr.contains("long.yaml:4:"), "{}", run.stderr);
    assert!(run.stderr.len() < 4000, "{} bytes", run.stderr.len());
}

#[test]
fn doubling_variable_references_are_refused_quickly_and_in_bounded_memory() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    let mut vars = String::new();
    for i in 0..40 {
        vars.push_str(&format!("  w{i}: '%{{w{}}}%{{w{}}}'\n", i + 1, i + 1));
    }
    vars.push_str("  w40: ab\n");
    ctx.write(
        "elements/exp.yaml",
        format!("kind: manual\nvariables:\n{vars}"),
    );
    let started = std::time::Instant::now();
    let (run, rss_kib) = ctx.cas_peak_rss(["show", "exp.yaml"]);
    let run = run.expect_code(2);
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
    assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB");
    assert!(
        flat(&run.stderr).contains("expansion is too long"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("expansion is too long").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn small_inputs_get_the_right_message() {
    let ctx = Ctx::new();
    ctx.write("kinds/ka.yaml", "extends: kb\n");
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\n",
    );
    // A NUL byte is a control character, not a tab.
    ctx.write("elements/nul.yaml", "kind: ma\0nual\n");
    let run = ctx.cas(["show", "nul.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("control character U+0000 (NUL)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nul.yaml:1:9"), "{}", run.stderr);
    assert!(!run.stderr.contains("tab"), "{}", run.stderr);
    // Errors inside the project's kind files are reported there, and the
    // element says its kind has errors (not that it is unknown).
    ctx.write("kinds/ka.yaml", "extends: kb\n");
    ctx.write("kinds/kb.yaml", "extends: ka\n");
    ctx.write("kinds/kbad.yaml", "extends: [\n");
    ctx.write("elements/k1.yaml", "kind: ka\n");
    ctx.write("elements/k2.yaml", "kind: kbad\n");
    let run = ctx.cas(["show", "k1.yaml", "k2.yaml"]).expect_code(2);
    let text = flat(&run.stderr);
    assert!(
        text.contains("kinds extend each other in a cycle"),
        "{}",
        run.stderr
    );
    assert!(text.contains("invalid YAML"), "{}", run.stderr);
    assert!(
        text.contains("kind `ka` cannot be used: its file kinds/ka.yaml has errors"),
        "{}",
        run.stderr
    );
    assert!(
        text.contains("kind `kbad` cannot be used"),
        "{}",
        run.stderr
    );
    assert!(!text.contains("unknown kind"), "{}", run.stderr);
    assert!(!text.contains("has no `behaviour`"), "{}", run.stderr);
    // -j 0 is a bad flag.
    let run = ctx.cas(["-j", "0", "show", "k1.yaml"]).expect_code(2);
    assert!(run.stderr.contains("at least 1"), "{}", run.stderr);
}

/// The stderr a soak child wrote (its file is named in `what`).
fn stderr_of(what: &str) -> String {
    what.rsplit_once("(stderr in ")
        .and_then(|(_, p)| std::fs::read_to_string(p.trim_end_matches(')')).ok())
        .unwrap_or_default()
}

/// A small xorshift generator: the soak is random but reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn soak_of_concurrent_builds_gc_and_kills_records_only_true_results() {
    let ctx = busybox_project();
    let names = ["a1", "a2", "a3", "a4"];
    for (i, n) in names.iter().enumerate() {
        ctx.write(
            format!("elements/{n}.yaml"),
            manual(&[], &format!("    - mkdir -p %{{install-root}}/usr/share/{n}\n    - sleep 0.{i}\n    - for j in $(seq 1 40); do echo {n}-$j > %{{install-root}}/usr/share/{n}/f$j; done\n")),
        );
    }
    ctx.write(
        "elements/b.yaml",
        manual(&["a1.yaml", "a2.yaml"], "    - mkdir -p %{install-root}/usr/share/b\n    - cat /usr/share/a1/f1 /usr/share/a2/f2 > %{install-root}/usr/share/b/both\n    - sleep 0.2\n"),
    );
    ctx.write(
        "elements/all.yaml",
        "kind: compose\nbuild-depends:\n  - base.yaml\n  - b.yaml\n  - a3.yaml\n  - a4.yaml\n",
    );
    let targets = ["all.yaml", "b.yaml", "a3.yaml", "a1.yaml", "a4.yaml"];
    let (mut cmd, shown) = ctx.command(["--json", "build", "all.yaml"]);
    cmd.env("CAS_STORE", ctx.path("reference"));
    let reference: BTreeMap<String, String> =
        results(&Run::from_output(shown, cmd.output().unwrap()).ok())
            .into_values()
            .collect();
    assert_eq!(reference.len(), 7);

    // A failing run prints its seed; CAS_SOAK_SEED=N replays that schedule.
    let seed = std::env::var("CAS_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("soak seed {seed} (replay: CAS_SOAK_SEED={seed})");
    let mut rng = Rng(seed);
    let mut running: Vec<(std::process::Child, String)> = Vec::new();
    let (mut builds, mut gcs, mut kills) = (0, 0, 0);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(40) {
        // Reap what ended; builds that were not killed must have succeeded.
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].0.try_wait().unwrap() {
                let (_, what) = running.remove(i);
                assert!(
                    status.success() || what.starts_with("killed"),
                    "seed {seed}: `{what}` failed with {status}:
{}",
                    stderr_of(&what)
                );
            } else {
                i += 1;
            }
        }
        match rng.below(10) {
            0..=5 if running.len() < 4 => {
                let mut args = vec!["build".to_owned()];
                for t in &targets {
                    if rng.below(2) == 0 {
                        args.push((*t).to_owned());
                    }
                }
                if args.len() == 1 {
                    args.push("all.yaml".into());
                }
                let (mut cmd, shown) = ctx.command(&args);
                let log = ctx.path(format!("soak-{builds}.err"));
                let child = cmd
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log).unwrap())
                    .spawn()
                    .unwrap();
                running.push((
                    child,
                    format!("{} (stderr in {})", shown.join(" "), log.display()),
                ));
                builds += 1;
            }
            6 if running.len() < 4 => {
                let args: &[&str] = if rng.below(2) == 0 {
                    &["store", "gc"]
                } else {
                    &["store", "gc", "--max-size", "1"]
                };
                let (mut cmd, shown) = ctx.command(args);
                let child = cmd
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                running.push((child, shown.join(" ")));
                gcs += 1;
            }
            7 | 8 if !running.is_empty() => {
                let k = rng.below(running.len() as u64) as usize;
                let _ = running[k].0.kill();
                running[k].1 = format!("killed {}", running[k].1);
                kills += 1;
            }
            _ => {}
        }
        std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
    }
    for (mut child, what) in running {
        let status = child.wait().unwrap();
        assert!(
            status.success() || what.starts_with("killed"),
            "seed {seed}: `{what}` failed with {status}:
{}",
            stderr_of(&what)
        );
    }
    eprintln!("soak: {builds} builds, {gcs} gc, {kills} kills");
    assert!(builds > 10 && kills > 3, "seed {seed}: too little happened");

    ctx.cas(["store", "verify", "--deep"]).ok();
    // Every result the store holds is the true output of its key.
    let listed = ctx.cas(["--json", "store", "results"]).ok();
    for r in listed.json()["results"].as_array().unwrap() {
        let key = r["key"].as_str().unwrap();
        let want = reference
            .get(key)
            .unwrap_or_else(|| panic!("seed {seed}: a result for a key no clean build has: {key}"));
        assert_eq!(
            r["output"].as_str().unwrap(),
            want,
            "seed {seed}: wrong output recorded for {key}"
        );
    }
    // And building everything now gives the clean build's outputs.
    let last = ctx.cas(["--json", "build", "all.yaml"]).ok();
    let got: BTreeMap<String, String> = results(&last).into_values().collect();
    assert_eq!(got, reference, "seed {seed}");
}

#[test]
fn a_remote_that_accepts_and_never_answers_costs_a_build_seconds_not_minutes() {
    let ctx = busybox_project();
    let mut deps: Vec<String> = Vec::new();
    for i in 0..12 {
        let refs: Vec<&str> = deps.iter().map(String::as_str).collect();
        ctx.write(
            format!("elements/s{i}.yaml"),
            manual(
                &refs,
                &format!(
                    "    - mkdir -p %{{install-root}}\n    - echo {i} > %{{install-root}}/s{i}\n"
                ),
            ),
        );
        deps = vec![format!("s{i}.yaml")];
    }
    // Accepts every connection, reads nothing, answers nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let url = format!("http://127.0.0.1:{port}/cache");
    let started = std::time::Instant::now();
    let run = ctx
        .cas([
            "--json",
            "build",
            "s11.yaml",
            "--remote",
            &url,
            "--trust-unsigned",
        ])
        .ok();
    let took = started.elapsed();
    assert_eq!(run.json()["built"], 13, "{}", run.stdout);
    // The remote's share: its one time limit (4 s), not 3 attempts x 15 s per step.
    assert!(took.as_secs() < 15, "took {took:?}\n{}", run.stderr);
    let said = run.stderr.matches("not asked again in this run").count();
    assert!(
        (1..=2).contains(&said),
        "said {said} times:\n{}",
        run.stderr
    );
}

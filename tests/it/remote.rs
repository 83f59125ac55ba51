//! Black-box tests of remote caches: a real nginx with WebDAV PUT on
//! 127.0.0.1 (started and killed by the test) and directory remotes.

use std::path::{Path, PathBuf};

use crate::ctx::{Ctx, Nginx, Run};

/// base (busybox) ← big (8 MB file) ← mid ← top. `top` stages base and mid,
/// not big: big's output is never needed to build top.
pub(crate) fn project(top_text: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    ctx.busybox_tree("files/base");
    ctx.write(
        "elements/base.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/base\n",
    );
    ctx.write(
        "elements/big.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n    - mkdir -p %{install-root}/usr/share\n    - yes big-data-line | head -c 8000000 > %{install-root}/usr/share/big\n",
    );
    ctx.write(
        "elements/mid.yaml",
        "kind: manual\nbuild-depends: [base.yaml, big.yaml]\nconfig:\n  install-commands:\n    - mkdir -p %{install-root}/usr/share\n    - wc -c < /usr/share/big > %{install-root}/usr/share/mid\n    - echo mid-output-unique >> %{install-root}/usr/share/mid\n",
    );
    write_top(&ctx, top_text);
    ctx
}

pub(crate) fn write_top(ctx: &Ctx, text: &str) {
    ctx.write(
        "elements/top.yaml",
        format!(
            "kind: manual\nbuild-depends: [base.yaml, mid.yaml]\nconfig:\n  install-commands:\n    - mkdir -p %{{install-root}}/usr/share\n    - cat /usr/share/mid > %{{install-root}}/usr/share/top\n    - echo {text} >> %{{install-root}}/usr/share/top\n"
        ),
    );
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `cas keygen` into the test directory: (secret key path, public key path).
pub(crate) fn keygen(ctx: &Ctx, name: &str) -> (PathBuf, PathBuf) {
    let key = ctx.path(name);
    let run = ctx.cas(["keygen", "--out", s(&key)]).ok();
    assert_eq!(run.stdout.trim().len(), 64, "{}", run.stdout);
    (key.clone(), PathBuf::from(format!("{}.pub", key.display())))
}

pub(crate) fn status_of(run: &Run, name: &str) -> String {
    let v = run.json();
    v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in report:\n{}", run.stdout))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn build_in(ctx: &Ctx, store: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["--store", s(store), "--json", "build", "top.yaml"];
    args.extend_from_slice(extra);
    ctx.cas(args)
}

/// Every file below `dir`, relative path → content (symlinks as "-> target").
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()).into_bytes(),
                ));
            } else if meta.is_dir() {
                out.push((rel, b"dir".to_vec()));
                walk(root, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

pub(crate) fn checkout(
    ctx: &Ctx,
    store: &Path,
    target: &str,
    dir: &Path,
) -> Vec<(String, Vec<u8>)> {
    ctx.cas(["--store", s(store), "checkout", target, s(dir)])
        .ok();
    snapshot(dir)
}

/// Object GETs in nginx's access log, with their response sizes.
fn object_gets(nginx: &Nginx) -> Vec<(String, u64)> {
    nginx
        .access_log()
        .iter()
        .filter_map(|l| {
            let req = l.split('"').nth(1)?;
            let rest = l.split('"').nth(2)?.trim();
            let path = req.strip_prefix("GET ")?.split(' ').next()?;
            if !path.contains("/cas/") {
                return None;
            }
            let mut it = rest.split(' ');
            let _status = it.next()?;
            let size: u64 = it.next()?.parse().ok()?;
            Some((path.to_string(), size))
        })
        .collect()
}

#[test]
fn pushed_by_one_store_pulled_by_another_through_nginx_identical_checkout() {
    let ctx = project("hello");
    let nginx = Nginx::start(&ctx.path("nginx"));
    let (key, public) = keygen(&ctx, "key");
    let a = ctx.path("store-a");
    let run = build_in(
        &ctx,
        &a,
        &["--remote", &nginx.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    assert_eq!(run.json()["built"], 4, "{}", run.stdout);
    assert!(
        run.json()["remote"]["push_failures"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{}",
        run.stdout
    );
    assert!(nginx.data().join("ac").read_dir().unwrap().count() >= 4);

    let b = ctx.path("store-b");
    let run = build_in(
        &ctx,
        &b,
        &["--remote", &nginx.url(), "--trusted-key", s(&public)],
    )
    .ok();
    let v = run.json();
    assert_eq!(
        (v["pulled"].as_u64(), v["built"].as_u64()),
        (Some(4), Some(0)),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    let from_a = checkout(&ctx, &a, "top.yaml", &ctx.path("out-a"));
    let from_b = checkout(&ctx, &b, "top.yaml", &ctx.path("out-b"));
    assert_eq!(from_a, from_b);
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();
    // Built once more, B has everything it needs locally: no remote traffic for the target.
    let again = build_in(
        &ctx,
        &b,
        &["--remote", &nginx.url(), "--trusted-key", s(&public)],
    )
    .ok();
    assert_eq!(status_of(&again, "top.yaml"), "cached");
}

#[test]
fn a_directory_remote_works_the_same_and_cas_pull_downloads_targets() {
    let ctx = project("hello");
    let remote = ctx.path("shared");
    let url = format!("file://{}", remote.display());
    let (key, public) = keygen(&ctx, "key");
    let a = ctx.path("store-a");
    build_in(
        &ctx,
        &a,
        &["--remote", &url, "--push", "--signing-key", s(&key)],
    )
    .ok();
    // No temporary files are left behind in the remote directory.
    for sub in ["cas", "ac"] {
        for e in std::fs::read_dir(remote.join(sub)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert_eq!(name.len(), 64, "stray file {name} in the remote");
        }
    }
    let b = ctx.path("store-b");
    let run = ctx
        .cas([
            "--store",
            s(&b),
            "--json",
            "pull",
            "top.yaml",
            "--remote",
            s(&remote),
            "--trusted-key",
            s(&public),
        ])
        .ok();
    let v = run.json();
    let statuses: Vec<&str> = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    // the target is downloaded; its dependencies' results are known, their
    // outputs downloaded only when something stages them (`show`: pullable)
    assert_eq!(
        statuses,
        ["known", "known", "known", "pulled"],
        "{}",
        run.stdout
    );
    let show = ctx
        .cas(["--store", s(&b), "--json", "show", "top.yaml"])
        .ok();
    let states: Vec<String> = show.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states,
        ["pullable", "pullable", "pullable", "cached"],
        "{}",
        show.stdout
    );
    assert_eq!(
        checkout(&ctx, &a, "top.yaml", &ctx.path("out-a")),
        checkout(&ctx, &b, "top.yaml", &ctx.path("out-b"))
    );
    // cas push of an already pushed target uploads nothing.
    let push = ctx
        .cas([
            "--store",
            s(&a),
            "--json",
            "push",
            "top.yaml",
            "--remote",
            &url,
            "--signing-key",
            s(&key),
        ])
        .ok();
    assert_eq!(
        push.json()["transfers"]["uploaded_objects"],
        0,
        "{}",
        push.stdout
    );
}

#[test]
fn only_what_the_changed_step_stages_is_downloaded() {
    let ctx = project("hello");
    let nginx = Nginx::start(&ctx.path("nginx"));
    let (key, public) = keygen(&ctx, "key");
    let a = ctx.path("store-a");
    build_in(
        &ctx,
        &a,
        &["--remote", &nginx.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    write_top(&ctx, "changed");
    let before = object_gets(&nginx).len();
    let b = ctx.path("store-b");
    let run = build_in(
        &ctx,
        &b,
        &["--remote", &nginx.url(), "--trusted-key", s(&public)],
    )
    .ok();
    for (name, status) in [
        ("base.yaml", "pulled"),
        ("big.yaml", "pulled"),
        ("mid.yaml", "pulled"),
        ("top.yaml", "built"),
    ] {
        assert_eq!(
            status_of(&run, name),
            status,
            "{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let gets: Vec<(String, u64)> = object_gets(&nginx).into_iter().skip(before).collect();
    assert!(!gets.is_empty(), "nothing was downloaded");
    // big's 8 MB file is in the closure but never staged by top: never downloaded.
    assert!(gets.iter().all(|(_, size)| *size < 8_000_000), "{gets:?}");
    let downloaded = run.json()["remote"]["transfers"]["downloaded_bytes"]
        .as_u64()
        .unwrap();
    assert!(downloaded < 8_000_000, "{downloaded} bytes downloaded");
    assert_eq!(downloaded, gets.iter().map(|(_, n)| n).sum::<u64>());
    // The new top step ran on the pulled mid output.
    let out = ctx.path("out");
    ctx.cas(["--store", s(&b), "checkout", "top.yaml", s(&out)])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("usr/share/top")).unwrap(),
        "8000000\nmid-output-unique\nchanged\n"
    );
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();

    // big's result is only remembered (its output was never downloaded): a
    // cache of the remote's answer that gc keeps within the horizon and
    // drops beyond it, after which the remote would be asked again.
    let big_state = || {
        let show = ctx
            .cas(["--store", s(&b), "--json", "show", "top.yaml"])
            .ok();
        show.json()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "big.yaml")
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(big_state(), "pullable");
    let gc = |extra: &[&str]| -> u64 {
        let mut args = vec!["--store", s(&b), "--json", "store", "gc"];
        args.extend_from_slice(extra);
        ctx.cas(args).ok().json()["remote_answers_removed"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(gc(&["--keep-younger-than", "3600"]), 0);
    assert_eq!(big_state(), "pullable");
    assert_eq!(
        gc(&[]),
        3,
        "one remembered answer per pulled result (base, big, mid)"
    );
    assert_ne!(big_state(), "pullable");
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();
}

#[test]
fn a_blob_altered_on_the_server_is_detected_and_the_step_rebuilt() {
    let ctx = project("top-output-unique");
    let nginx = Nginx::start(&ctx.path("nginx"));
    let (key, public) = keygen(&ctx, "key");
    let a = ctx.path("store-a");
    build_in(
        &ctx,
        &a,
        &["--remote", &nginx.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    // Find top's file on the server by its content and alter it.
    let mut altered = None;
    for e in std::fs::read_dir(nginx.data().join("cas")).unwrap() {
        let p = e.unwrap().path();
        if std::fs::read(&p).unwrap().ends_with(b"top-output-unique\n") {
            std::fs::write(&p, b"evil\n").unwrap();
            altered = Some(p.file_name().unwrap().to_str().unwrap().to_owned());
        }
    }
    let digest = altered.expect("top's blob on the server");
    let b = ctx.path("store-b");
    let run = build_in(
        &ctx,
        &b,
        &["--remote", &nginx.url(), "--trusted-key", s(&public)],
    )
    .ok();
    assert_eq!(
        status_of(&run, "top.yaml"),
        "built",
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains(&digest),
        "no warning naming {digest}:\n{}",
        run.stderr
    );
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();
    let out = ctx.path("out");
    ctx.cas(["--store", s(&b), "checkout", "top.yaml", s(&out)])
        .ok();
    assert!(std::fs::read_to_string(out.join("usr/share/top"))
        .unwrap()
        .ends_with("top-output-unique\n"));
}

#[test]
fn untrusted_unsigned_and_forged_results_are_ignored() {
    let ctx = project("hello");
    let (key, public) = keygen(&ctx, "key");
    let (_, other_public) = keygen(&ctx, "other");
    let signed = ctx.path("signed");
    let unsigned = ctx.path("unsigned");
    let a = ctx.path("store-a");
    build_in(
        &ctx,
        &a,
        &["--remote", s(&signed), "--push", "--signing-key", s(&key)],
    )
    .ok();
    ctx.cas([
        "--store",
        s(&a),
        "push",
        "top.yaml",
        "--remote",
        s(&unsigned),
    ])
    .ok();

    let fresh = |name: &str| ctx.path(name);
    // Signed by a key that is not trusted.
    let run = build_in(
        &ctx,
        &fresh("b1"),
        &["--remote", s(&signed), "--trusted-key", s(&other_public)],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 0, "{}", run.stdout);
    assert_eq!(run.json()["built"], 4);
    assert!(run.stderr.contains("untrusted"), "{}", run.stderr);
    // Unsigned, trusted keys given but no trust-unsigned.
    let run = build_in(
        &ctx,
        &fresh("b2"),
        &["--remote", s(&unsigned), "--trusted-key", s(&public)],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 0, "{}", run.stdout);
    assert!(run.stderr.contains("not signed"), "{}", run.stderr);
    // ... but explicitly trusted when the remote is marked so.
    let run = build_in(
        &ctx,
        &fresh("b3"),
        &["--remote", s(&unsigned), "--trust-unsigned"],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 4, "{}", run.stdout);
    // Forged: a signed result altered after signing.
    for e in std::fs::read_dir(signed.join("ac")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let forged: String = text
            .lines()
            .map(|l| {
                if l.starts_with("duration-ms ") {
                    "duration-ms 1".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        assert_ne!(forged, text);
        std::fs::write(&p, forged).unwrap();
    }
    let run = build_in(
        &ctx,
        &fresh("b4"),
        &["--remote", s(&signed), "--trusted-key", s(&public)],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 0, "{}", run.stdout);
    assert_eq!(run.json()["built"], 4);
    assert!(run.stderr.contains("bad signature"), "{}", run.stderr);
    // The same result configured through the user configuration file.
    let config = ctx.path("config.yaml");
    std::fs::write(
        &config,
        format!(
            "remotes:\n  - url: {}\n    trusted-keys: [\"{}\"]\n",
            signed.display(),
            std::fs::read_to_string(&public).unwrap().trim()
        ),
    )
    .unwrap();
    let run = ctx
        .cas([
            "--store",
            s(&fresh("b5")),
            "--config",
            s(&config),
            "--json",
            "build",
            "top.yaml",
        ])
        .ok();
    assert_eq!(run.json()["pulled"], 0, "{}", run.stdout);
    assert!(run.stderr.contains("bad signature"), "{}", run.stderr);
}

#[test]
fn nginx_stopped_in_the_middle_of_a_pull_the_build_completes_locally() {
    let ctx = project("hello");
    let mut nginx = Nginx::start(&ctx.path("nginx"));
    let (key, public) = keygen(&ctx, "key");
    let a = ctx.path("store-a");
    build_in(
        &ctx,
        &a,
        &["--remote", &nginx.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    write_top(&ctx, "changed");
    let b = ctx.path("store-b");
    let url = nginx.url();
    let (mut cmd, _) = ctx.command([
        "--store",
        s(&b),
        "--json",
        "build",
        "top.yaml",
        "--remote",
        &url,
        "--trusted-key",
        s(&public),
    ]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let child = cmd.spawn().unwrap();
    // Stop nginx as soon as B has asked for its first result.
    let seen = nginx.access_log().len();
    while nginx.access_log().len() == seen && started.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    nginx.stop();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["failed"], 0);
    let out_dir = ctx.path("out");
    ctx.cas(["--store", s(&b), "checkout", "top.yaml", s(&out_dir)])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out_dir.join("usr/share/top")).unwrap(),
        "8000000\nmid-output-unique\nchanged\n"
    );
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();

    ctx.cas(["--store", s(&b), "store", "verify"]).ok();
}

#[test]
fn two_stores_pushing_at_once_both_succeed_and_the_remote_is_complete() {
    let ctx = project("hello");
    let nginx = Nginx::start(&ctx.path("nginx"));
    let (key, public) = keygen(&ctx, "key");
    let url = nginx.url();
    let spawn = |store: &str| {
        let (mut cmd, _) = ctx.command([
            "--store",
            s(&ctx.path(store)),
            "--json",
            "build",
            "top.yaml",
            "--remote",
            &url,
            "--push",
            "--signing-key",
            s(&key),
        ]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (one, two) = (spawn("store-1"), spawn("store-2"));
    for child in [one, two] {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert!(
            v["remote"]["push_failures"].as_array().unwrap().is_empty(),
            "{stdout}"
        );
    }
    // A third store gets everything from the remote and builds nothing.
    let c = ctx.path("store-3");
    let run = build_in(&ctx, &c, &["--remote", &url, "--trusted-key", s(&public)]).ok();
    assert_eq!(run.json()["pulled"], 4, "{}\n{}", run.stdout, run.stderr);
    let pull = ctx
        .cas([
            "--store",
            s(&c),
            "--json",
            "pull",
            "big.yaml",
            "--remote",
            &url,
            "--trusted-key",
            s(&public),
        ])
        .ok();
    assert_eq!(
        pull.json()["elements"].as_array().unwrap().last().unwrap()["status"],
        "pulled"
    );
    ctx.cas(["--store", s(&c), "store", "verify"]).ok();
}

#[test]
fn a_remote_that_is_down_never_fails_the_build_and_push_failures_are_reported() {
    let ctx = project("hello");
    // A port nobody listens on: every request is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/cache");
    let started = std::time::Instant::now();
    let run = build_in(&ctx, &ctx.path("store-a"), &["--remote", &url, "--push"]).ok();
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let v = run.json();
    assert_eq!(v["built"], 4, "{}", run.stdout);
    let failures = v["remote"]["push_failures"].as_array().unwrap();
    assert!(!failures.is_empty(), "{}", run.stdout);
    assert!(
        failures[0]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{failures:?}"
    );
    assert!(run.stderr.contains("push failure"), "{}", run.stderr);
}

/// Teams' caches behind authentication (#32): a remote's `headers:` in the
/// user configuration, values from environment variables, sent with every
/// request; nginx with basic authentication accepts the push and the pull;
/// the token is never printed; an unset variable is named.
#[test]
fn an_http_cache_behind_basic_auth_is_used_with_configured_headers() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/a.yaml",
        crate::ctx::manual(
            &[],
            "    - mkdir -p %{install-root}/a\n    - echo a > %{install-root}/a/f\n",
        ),
    );
    // nginx with WebDAV PUT behind basic authentication (user team, s3cret)
    let dir = ctx.path("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("htpasswd"), "team:{PLAIN}s3cret\n").unwrap();
    let nginx = Nginx::start_with(
        &dir,
        "auth_basic \"cas cache\";\n      auth_basic_user_file {d}/htpasswd;",
    );
    let port = nginx.port;
    let config = ctx.path("config.yaml");
    std::fs::write(
        &config,
        format!(
            "remotes:\n  - url: http://127.0.0.1:{port}/\n    push: true\n    trust-unsigned: true\n    headers:\n      Authorization: \"Basic ${{CAS_TEST_CACHE_AUTH}}\"\n"
        ),
    )
    .unwrap();
    let token = "dGVhbTpzM2NyZXQ="; // base64 of team:s3cret
    let cas = |store: &str, env: Option<&str>, args: &[&str]| {
        let mut all = vec!["--store", store, "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (mut cmd, shown) = ctx.command(&all);
        match env {
            Some(v) => cmd.env("CAS_TEST_CACHE_AUTH", v),
            None => cmd.env_remove("CAS_TEST_CACHE_AUTH"),
        };
        crate::ctx::Run::from_output(shown, cmd.output().unwrap())
    };
    let one = ctx.path("one");
    let run = cas(
        one.to_str().unwrap(),
        Some(token),
        &["--json", "build", "--push", "a.yaml"],
    )
    .ok();
    assert!(
        !run.stderr.contains(token),
        "the token was printed:\n{}",
        run.stderr
    );
    assert!(
        std::fs::read_dir(dir.join("www/ac")).map_or(0, Iterator::count) > 0,
        "nothing was pushed: {}",
        run.stderr
    );
    let two = ctx.path("two");
    let run = cas(
        two.to_str().unwrap(),
        Some(token),
        &["--json", "build", "a.yaml"],
    )
    .ok();
    assert_eq!(
        run.per_element("status")["a.yaml"],
        "pulled",
        "{}",
        run.stderr
    );
    // without the variable: an error that names it
    let run = cas(
        ctx.path("three").to_str().unwrap(),
        None,
        &["build", "a.yaml"],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("CAS_TEST_CACHE_AUTH"), "{}", run.stderr);
    // a wrong token: the cache refuses (401), the build goes on locally
    let run = cas(
        ctx.path("four").to_str().unwrap(),
        Some("d3Jvbmc6d3Jvbmc="),
        &["--json", "build", "a.yaml"],
    )
    .ok();
    assert_eq!(
        run.per_element("status")["a.yaml"],
        "built",
        "{}",
        run.stderr
    );
}

/// A grpcs:// remote's TLS files and gRPC headers (#32) are checked before
/// anything is built: a certificate without its key, a TLS setting on a
/// remote that is not grpcs://, or a reserved header name is invalid input
/// (exit 2) at its line and column in the configuration; a missing or
/// unreadable file, one that holds no certificate or key, or a key that is
/// not the certificate's, is named with the setting and the place in the
/// configuration that names it.
#[test]
fn grpcs_tls_settings_are_checked_and_errors_name_the_configuration() {
    let ctx = project("hello");
    let dir = ctx.path("conf");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    let build = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let run = ctx
            .cas(["--config", s(&config), "build", "top.yaml"])
            .expect_code(2);
        assert!(
            squashed(&run.stderr).contains(&squashed(s(&config))),
            "the configuration file is named:\n{}",
            run.stderr
        );
        run
    };
    let url = "grpcs://127.0.0.1:1";
    let run = build(&format!(
        "remotes:\n  - url: {url}\n    tls-client-cert: client.pem\n"
    ));
    assert!(
        said(&run, "`tls-client-cert` without `tls-client-key`") && said(&run, "config.yaml:3:22"),
        "{}",
        run.stderr
    );
    let run = build("remotes:\n  - url: grpc://127.0.0.1:1\n    tls-ca: ca.pem\n");
    assert!(
        said(&run, "`tls-ca` is for grpcs:// remotes")
            && said(&run, "config.yaml:3:13")
            && said(&run, "write grpcs://"),
        "{}",
        run.stderr
    );
    let run = build(&format!(
        "remotes:\n  - url: {url}\n    headers:\n      grpc-timeout: \"1S\"\n"
    ));
    assert!(
        said(&run, "cannot be sent as gRPC metadata") && said(&run, "config.yaml:4:7"),
        "{}",
        run.stderr
    );
    // files: read when the remote is opened, relative to the configuration
    let run = build(&format!(
        "remotes:\n  - url: {url}\n    tls-ca: missing-ca.pem\n"
    ));
    assert!(
        said(
            &run,
            &format!(
                "cannot use the CA certificate {} (`tls-ca` at {}:3:13)",
                dir.join("missing-ca.pem").display(),
                config.display()
            )
        ) && said(&run, "No such file"),
        "{}",
        run.stderr
    );
    std::fs::write(dir.join("ca.pem"), "not a certificate\n").unwrap();
    let run = build(&format!("remotes:\n  - url: {url}\n    tls-ca: ca.pem\n"));
    assert!(said(&run, "holds no certificate"), "{}", run.stderr);
    // a key file that holds a certificate is no key
    let (cert, _) = self_signed(&dir);
    let run = build(&format!(
        "remotes:\n  - url: {url}\n    tls-client-cert: {c}\n    tls-client-key: {c}\n",
        c = cert.display()
    ));
    assert!(
        said(
            &run,
            &format!(
                "cannot use the client key {} (`tls-client-key` at {}:4:21)",
                cert.display(),
                config.display()
            )
        ) && said(&run, "holds no private key"),
        "{}",
        run.stderr
    );
    // a key that is not the certificate's
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, other_key) = self_signed(&other);
    let run = build(&format!(
        "remotes:\n  - url: {url}\n    tls-client-cert: {}\n    tls-client-key: {}\n",
        cert.display(),
        other_key.display()
    ));
    assert!(
        said(&run, "the client key is not the client certificate's")
            && said(&run, &format!("the client key {}", other_key.display())),
        "{}",
        run.stderr
    );
    // a header value that gRPC cannot carry is named, its value is not
    std::fs::write(
        &config,
        format!("remotes:\n  - url: {url}\n    headers:\n      authorization: \"Bearer ${{CAS_TEST_T}}\"\n"),
    )
    .unwrap();
    let (mut cmd, shown) = ctx.command(["--config", s(&config), "build", "top.yaml"]);
    cmd.env("CAS_TEST_T", "line\nbreak-s3cret");
    let run = Run::from_output(shown, cmd.output().unwrap()).expect_code(2);
    assert!(
        said(&run, "header authorization") && !said(&run, "s3cret"),
        "{}",
        run.stderr
    );
    // with the right files the remote opens; nobody listens there, so the
    // build goes on here
    let (cert, key) = self_signed(&dir);
    std::fs::write(
        &config,
        format!(
            "remotes:\n  - url: {url}\n    tls-ca: {c}\n    tls-client-cert: {c}\n    tls-client-key: {k}\n",
            c = cert.display(),
            k = key.display()
        ),
    )
    .unwrap();
    ctx.cas(["--config", s(&config), "build", "top.yaml"]).ok();
}

/// `text` without whitespace and miette's gutters: a message that miette
/// wrapped is found whole.
fn squashed(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !['│', '×'].contains(c))
        .collect()
}

/// Does the run's stderr say `what` (however miette wrapped it)?
fn said(run: &Run, what: &str) -> bool {
    squashed(&run.stderr).contains(&squashed(what))
}

/// A self-signed certificate and its key (openssl), in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("self.pem"), dir.join("self.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=cas test",
            "-keyout",
            s(&key),
            "-out",
            s(&cert),
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A result a remote has, signed by a key the puller does not trust, is
/// not "missing": `cas pull` says it was there and not used, and why.
#[test]
fn pull_tells_a_result_signed_by_an_untrusted_key_from_one_no_remote_has() {
    let ctx = project("hello");
    let (secret, _) = keygen(&ctx, "alice.key");
    let (_, other_public) = keygen(&ctx, "bob.key");
    let remote = ctx.path("shared");
    let url = format!("file://{}", remote.display());
    build_in(
        &ctx,
        &ctx.path("store-a"),
        &["--remote", &url, "--push", "--signing-key", s(&secret)],
    )
    .ok();
    let run = ctx
        .cas([
            "--store",
            s(&ctx.path("store-b")),
            "pull",
            "top.yaml",
            "--remote",
            &url,
            "--trusted-key",
            s(&other_public),
        ])
        .expect_code(1);
    assert!(
        run.stderr
            .contains("a remote has results that were not used")
            && run.stderr.contains("top.yaml (its key needs base.yaml"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not in any remote"), "{}", run.stderr);
    assert!(run.stderr.contains("ignoring the result"), "{}", run.stderr);
}

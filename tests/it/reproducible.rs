//! Two machines, one cache (spec/store.md "File times", spec/sandbox.md):
//! what a step sees and what it outputs does not depend on the store, its
//! file system, the time, the umask, the time zone or the paths; staged
//! outputs that disagree are reported all at once, each with what differs.

use std::path::Path;
use std::process::Command;

use crate::ctx::{busybox_project, manual, Ctx, Run};

/// `cas` in this test's project, with another store and environment.
fn cas_in(ctx: &Ctx, store: &Path, env: &[(&str, &str)], umask: u32, args: &[&str]) -> Run {
    let (mut cmd, shown) = ctx.command(args);
    cmd.env("CAS_STORE", store);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: umask in the child before exec; async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    Run::from_output(shown, cmd.output().expect("run cas"))
}

/// A project whose `seen.yaml` records the modes and times of the files it
/// stages from `files.yaml` (0644, 0755 and 0600 files, a directory, a
/// symlink), and a listing made by `tar` of them.
fn seeing_project() -> Ctx {
    let ctx = busybox_project();
    ctx.write("files/data/etc/conf", "conf\n");
    ctx.write("files/data/bin/tool", "#!/bin/sh\n");
    ctx.write("files/data/etc/secret", "s\n");
    use std::os::unix::fs::PermissionsExt;
    let p = ctx.project();
    std::fs::set_permissions(
        p.join("files/data/etc/conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        p.join("files/data/bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        p.join("files/data/etc/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("conf", p.join("files/data/etc/link")).unwrap();
    ctx.write(
        "elements/files.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/data\n",
    );
    ctx.write(
        "elements/seen.yaml",
        manual(
            &["files.yaml"],
            "    - mkdir -p %{install-root}/seen\n\
             \x20   - stat -c '%a %Y %n' /etc/conf /bin/tool /etc/secret /etc /bin > %{install-root}/seen/stat\n\
             \x20   - cd / && tar -cf %{install-root}/seen/etc.tar etc/conf etc/secret etc/link bin/tool\n\
             \x20   - cp -a /etc/conf %{install-root}/seen/conf-copy\n",
        ),
    );
    ctx
}

#[test]
fn a_step_sees_the_recorded_modes_and_one_fixed_time_in_any_store() {
    let ctx = seeing_project();
    let a = ctx.path("store-a");
    let b = ctx.path("elsewhere/deeper/store-b");
    let run_a = cas_in(
        &ctx,
        &a,
        &[("TZ", "UTC"), ("LANG", "C")],
        0o022,
        &["--json", "build", "seen.yaml"],
    )
    .ok();
    // another time, zone, umask, home and path
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let run_b = cas_in(
        &ctx,
        &b,
        &[
            ("TZ", "Pacific/Chatham"),
            ("LANG", "C.UTF-8"),
            ("HOME", "/nonexistent"),
        ],
        0o077,
        &["--json", "build", "seen.yaml"],
    )
    .ok();
    assert_eq!(
        run_a.per_element("key"),
        run_b.per_element("key"),
        "keys differ between stores"
    );
    assert_eq!(
        run_a.per_element("output"),
        run_b.per_element("output"),
        "outputs differ between stores"
    );
    let out = ctx.path("out");
    cas_in(
        &ctx,
        &a,
        &[],
        0o022,
        &["checkout", "seen.yaml", out.to_str().unwrap()],
    )
    .ok();
    let stat = std::fs::read_to_string(out.join("seen/stat")).unwrap();
    // BuildStream's staging time, 2011-11-11 11:11:11 UTC
    assert_eq!(
        stat,
        "644 1321009871 /etc/conf\n755 1321009871 /bin/tool\n600 1321009871 /etc/secret\n755 1321009871 /etc\n755 1321009871 /bin\n",
        "modes and times inside the sandbox"
    );
}

#[test]
fn on_a_reflink_file_system_a_step_sees_what_it_sees_on_ext4() {
    // XFS with reflinks in a loop image (root only: the suite runs as root)
    let ctx = seeing_project();
    let img = ctx.path("xfs.img");
    let mnt = ctx.path("xfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    assert!(ok(Command::new("truncate").arg("-s").arg("512M").arg(&img)));
    assert!(
        ok(Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&img)),
        "mkfs.xfs (xfsprogs, installed by scripts/install-deps.sh)"
    );
    assert!(
        ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)),
        "mounting a loop image needs root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let ext4 = cas_in(
        &ctx,
        &ctx.path("store-ext4"),
        &[],
        0o022,
        &["--json", "build", "seen.yaml"],
    )
    .ok();
    let xfs = cas_in(
        &ctx,
        &mnt.join("store"),
        &[],
        0o022,
        &["--json", "build", "seen.yaml"],
    )
    .ok();
    assert_eq!(ext4.per_element("key"), xfs.per_element("key"));
    assert_eq!(
        ext4.per_element("output"),
        xfs.per_element("output"),
        "hardlinked (ext4) and reflinked (XFS) views gave different outputs under one key"
    );
}

#[test]
fn every_conflict_of_a_step_is_reported_once_with_what_differs_and_the_advice_works() {
    let ctx = busybox_project();
    ctx.write(
        "elements/a.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}/etc %{install-root}/usr/lib/t/x %{install-root}/usr/lib/e\n\
             \x20   - echo A > %{install-root}/etc/content\n\
             \x20   - echo same > %{install-root}/etc/mode && chmod 644 %{install-root}/etc/mode\n\
             \x20   - echo f > %{install-root}/usr/lib/t/x/f\n",
        ),
    );
    let b = |whitelist: &str| {
        format!(
            "{}{whitelist}",
            manual(
                &[],
                "    - mkdir -p %{install-root}/etc %{install-root}/usr/lib %{install-root}/usr/share/t\n\
                 \x20   - echo B > %{install-root}/etc/content\n\
                 \x20   - echo same > %{install-root}/etc/mode && chmod 600 %{install-root}/etc/mode\n\
                 \x20   - ln -s ../share/t %{install-root}/usr/lib/t\n\
                 \x20   - ln -s ../share/t %{install-root}/usr/lib/e\n",
            )
        )
    };
    ctx.write("elements/b.yaml", b(""));
    ctx.write(
        "elements/c.yaml",
        "kind: manual\nbuild-depends: [base.yaml, a.yaml, b.yaml]\nconfig:\n  install-commands:\n    - mkdir -p %{install-root}/c\n",
    );
    let run = ctx.cas(["build", "c.yaml"]).expect_code(1);
    let err = &run.stderr;
    for (path, what) in [
        ("etc/content", "different content"),
        (
            "etc/mode",
            "the same content and different modes (mode 0644 against mode 0600)",
        ),
        ("usr/lib/t", "different types (a directory against symlink"),
        ("usr/lib/e", "different types (a directory against symlink"),
    ] {
        let line = format!("conflict at {path}: a.yaml and b.yaml both provide it, with {what}");
        assert_eq!(err.matches(&line).count(), 1, "once: {line}\n{err}");
    }
    assert!(
        err.contains("its dependencies conflict (4 path(s))"),
        "{err}"
    );
    assert!(
        err.contains("a non-empty directory cannot be replaced"),
        "{err}"
    );
    assert!(!err.contains("last 0 lines"), "{err}");
    // following the advice: the whitelist resolves every conflict it names
    // (the empty directory gives way to the symlink); the non-empty one stays
    ctx.write(
        "elements/b.yaml",
        b("public:\n  overlap-whitelist: ['/etc/content', '/etc/mode', '/usr/lib/e', '/usr/lib/t']\n"),
    );
    let run = ctx.cas(["build", "c.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains("its dependencies conflict (1 path(s))"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("conflict at usr/lib/t:"),
        "{}",
        run.stderr
    );
    // the fix the advice gives for it: b installs into the directory
    ctx.write(
        "elements/b.yaml",
        b("public:\n  overlap-whitelist: ['/etc/content', '/etc/mode', '/usr/lib/e']\n").replace(
            "ln -s ../share/t %{install-root}/usr/lib/t",
            "mkdir -p %{install-root}/usr/lib/t/x && echo f > %{install-root}/usr/lib/t/x/f",
        ),
    );
    ctx.cas(["build", "c.yaml"]).ok();
}

#[test]
fn a_directory_never_replaces_a_symlink_even_where_whitelisted() {
    // a merged-/usr sysroot's `lib -> opt/lib`, and a later element with a
    // real lib/ directory that may overwrite anything
    let ctx = busybox_project();
    ctx.write(
        "elements/libs.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}/opt/lib\n    - echo libc > %{install-root}/opt/lib/libc.so.6\n    - ln -s opt/lib %{install-root}/lib\n",
        ),
    );
    ctx.write(
        "elements/extra.yaml",
        format!(
            "{}public:\n  overlap-whitelist: ['/**']\n",
            manual(&[], "    - mkdir -p %{install-root}/lib/modules\n    - echo m > %{install-root}/lib/modules/mod.ko\n")
        ),
    );
    ctx.write(
        "elements/reader.yaml",
        "kind: manual\nbuild-depends: [base.yaml, libs.yaml, extra.yaml]\nconfig:\n  install-commands:\n    - cat /lib/libc.so.6\n    - mkdir -p %{install-root}/r\n",
    );
    let run = ctx.cas(["build", "reader.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("conflict at lib: libs.yaml and extra.yaml")
            && run.stderr.contains("never replaced by a directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_local_file_overlaid_on_an_earlier_source_is_newer_than_what_it_replaces() {
    // the release ships parse.y and the parse.c generated from it; the
    // project overlays its own parse.y: make must see it as newer
    let ctx = busybox_project();
    ctx.write("files/release/parse.y", "release grammar\n");
    ctx.write(
        "files/release/parse.c",
        "generated from the release grammar\n",
    );
    ctx.write("files/overlay/parse.y", "the project's grammar\n");
    ctx.write(
        "elements/gen.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/release\n  - kind: local\n    path: files/overlay\n\
         config:\n  install-commands:\n    - mkdir -p %{install-root}/r\n\
         \x20   - if [ parse.y -nt parse.c ]; then echo regenerate; else echo stale; fi > %{install-root}/r/verdict\n\
         \x20   - stat -c %Y parse.c > %{install-root}/r/time\n",
    );
    ctx.cas(["build", "gen.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "gen.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("r/verdict")).unwrap(),
        "regenerate\n"
    );
    // and the files no overlay touched keep the one staging time
    assert_eq!(
        std::fs::read_to_string(out.join("r/time")).unwrap(),
        "1321009871\n"
    );
}

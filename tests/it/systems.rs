//! Real systems: what packages and root filesystems hold (absolute
//! symlinks, overlapping files) and how cas stages, composes and exports it.

use std::path::Path;
use std::process::Command;

use crate::ctx::{busybox_project, Ctx};
use crate::sources::{checkout, project, sh, sha256, tar_member, tar_of, Server};

/// A Debian package whose data is the directory `data` (made with tar and ar).
fn deb_of(ctx: &Ctx, name: &str, data: &Path) -> Vec<u8> {
    let dir = ctx.path(format!("deb-{name}"));
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::write(
        dir.join("control/control"),
        format!("Package: {name}\nVersion: 1\nArchitecture: all\n"),
    )
    .unwrap();
    std::fs::write(dir.join("debian-binary"), "2.0\n").unwrap();
    sh(Command::new("tar")
        .arg("-C")
        .arg(data)
        .arg("-cJf")
        .arg(dir.join("data.tar.xz"))
        .arg("."));
    sh(Command::new("tar")
        .arg("-C")
        .arg(dir.join("control"))
        .arg("-czf")
        .arg(dir.join("control.tar.gz"))
        .arg("."));
    sh(Command::new("ar").current_dir(&dir).args([
        "rc",
        "p.deb",
        "debian-binary",
        "control.tar.gz",
        "data.tar.xz",
    ]));
    std::fs::read(dir.join("p.deb")).unwrap()
}

fn link(p: &Path) -> String {
    std::fs::read_link(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_string_lossy()
        .into_owned()
}

/// The marker's content and mtime: what "never read or written" is checked by.
fn marker_state(p: &Path) -> (String, std::time::SystemTime) {
    (
        std::fs::read_to_string(p).unwrap(),
        std::fs::metadata(p).unwrap().modified().unwrap(),
    )
}

#[test]
fn absolute_symlinks_are_content_and_nothing_follows_them() {
    let ctx = busybox_project();
    let server = Server::start();
    project(&ctx, &server);
    ctx.write(
        "project.yaml",
        format!(
            "name: t\nelement-path: elements\naliases:\n  upstream: {}\n",
            server.url("/files/")
        ),
    );
    let host = ctx.path("host");
    std::fs::create_dir_all(&host).unwrap();
    let marker = host.join("marker");
    std::fs::write(&marker, "MARKER\n").unwrap();
    let before = marker_state(&marker);
    let marker_s = marker.to_str().unwrap();
    let host_s = host.to_str().unwrap();

    // A tarball and a package with absolute links import as they are.
    let links = tar_of(&[
        tar_member("usr/bin/", b'5', "", b""),
        tar_member("usr/bin/ld.so", b'2', "/lib64/ld-linux-x86-64.so.2", b""),
        tar_member("etc/", b'5', "", b""),
        tar_member("etc/x", b'2', marker_s, b""),
        tar_member("root", b'2', "/", b""),
    ]);
    server.put("/files/links.tar", links.clone());
    let data = ctx.path("debdata");
    std::fs::create_dir_all(data.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("/lib64/ld-linux-x86-64.so.2", data.join("usr/bin/ld.so")).unwrap();
    std::fs::write(data.join("usr/bin/tool"), "tool\n").unwrap();
    let pkg = deb_of(&ctx, "libc-bin", &data);
    server.put("/files/libc-bin.deb", pkg.clone());
    // A later member written through such a link is refused.
    let evil = tar_of(&[
        tar_member("h", b'2', host_s, b""),
        tar_member("h/marker", b'0', "", b"pwned\n"),
    ]);
    server.put("/files/evil.tar", evil.clone());
    let evil_root = tar_of(&[
        tar_member("r", b'2', "/", b""),
        tar_member(&format!("r{host_s}/new"), b'0', "", b"pwned\n"),
    ]);
    server.put("/files/evil-root.tar", evil_root.clone());
    for (name, kind, bytes) in [
        ("links", "tar", &links),
        ("libc-bin", "deb", &pkg),
        ("evil", "tar", &evil),
        ("evil-root", "tar", &evil_root),
    ] {
        let ext = if kind == "deb" { "deb" } else { "tar" };
        ctx.write(
            format!("elements/{name}.yaml"),
            format!(
                "kind: import\nsources:\n  - kind: {kind}\n    url: upstream:{name}.{ext}\n    sha256: {}\n{}",
                sha256(bytes, ctx.root()),
                if kind == "tar" { "    base-dir: ''\n" } else { "" }
            ),
        );
    }
    ctx.cas(["build", "links.yaml", "libc-bin.yaml"]).ok();
    let out = checkout(&ctx, "links.yaml", "out-links");
    assert_eq!(
        link(&out.join("usr/bin/ld.so")),
        "/lib64/ld-linux-x86-64.so.2"
    );
    assert_eq!(link(&out.join("etc/x")), marker_s);
    assert_eq!(link(&out.join("root")), "/");
    let out = checkout(&ctx, "libc-bin.yaml", "out-deb");
    assert_eq!(
        link(&out.join("usr/bin/ld.so")),
        "/lib64/ld-linux-x86-64.so.2"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("usr/bin/tool")).unwrap(),
        "tool\n"
    );
    for name in ["evil.yaml", "evil-root.yaml"] {
        let run = ctx.cas(["build", name]).expect_code(1);
        assert!(
            run.stderr.contains("written through the symlink"),
            "{name}: {}",
            run.stderr
        );
    }
    assert_eq!(
        std::fs::read_dir(&host).unwrap().count(),
        1,
        "host dir written"
    );

    // A step's output holding `etc/x -> marker`: checkout, compose, diff and
    // tar export handle the link itself.
    ctx.write(
        "elements/linked.yaml",
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{{install-root}}/etc\n  - ln -s {marker_s} %{{install-root}}/etc/x\n  - echo MARKER > %{{install-root}}/etc/y\n"
        ),
    );
    ctx.write(
        "elements/plain.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}/etc\n  - echo MARKER > %{install-root}/etc/x\n  - echo MARKER > %{install-root}/etc/y\n",
    );
    ctx.write(
        "elements/system.yaml",
        "kind: compose\nbuild-depends: [linked.yaml, links.yaml]\n",
    );
    let run = ctx
        .cas([
            "--json",
            "build",
            "linked.yaml",
            "plain.yaml",
            "system.yaml",
        ])
        .ok();
    let v = run.json();
    let output = |name: &str| {
        v["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["output"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let out = checkout(&ctx, "linked.yaml", "out-linked");
    assert_eq!(link(&out.join("etc/x")), marker_s);
    let out = checkout(&ctx, "system.yaml", "out-system");
    assert_eq!(link(&out.join("etc/x")), marker_s);
    assert_eq!(
        link(&out.join("usr/bin/ld.so")),
        "/lib64/ld-linux-x86-64.so.2"
    );
    // A symlink and a file with the target's content differ.
    let run = ctx
        .cas(["diff", "linked.yaml", "plain.yaml"])
        .expect_code(1);
    assert!(run.stdout.contains("etc/x"), "{}", run.stdout);
    assert!(!run.stdout.contains("etc/y"), "{}", run.stdout);
    // Tar export: a symlink member, not the marker's content.
    let tar = ctx.path("linked.tar");
    ctx.cas([
        "store",
        "export",
        &output("linked.yaml"),
        tar.to_str().unwrap(),
    ])
    .ok();
    let listing = sh(Command::new("tar").arg("-tvf").arg(&tar));
    assert!(
        listing.contains(&format!("etc/x -> {marker_s}")),
        "{listing}"
    );
    assert_eq!(marker_state(&marker), before, "the host file was touched");
}

/// `name` writes `etc/motd` (and `etc/NAME`) with `text`; `public` is its
/// `public:` block (YAML, indented by two), if any.
fn motd(ctx: &Ctx, name: &str, text: &str, public: &str) {
    ctx.write(
        format!("elements/{name}.yaml"),
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{{install-root}}/etc\n  - echo {text} > %{{install-root}}/etc/motd\n  - echo {text} > %{{install-root}}/etc/{name}\n{public}"
        ),
    );
}

fn reader(ctx: &Ctx, name: &str, deps: &[&str]) {
    ctx.write(
        format!("elements/{name}.yaml"),
        format!(
            "kind: manual\nbuild-depends: [{}]\nconfig:\n  install-commands:\n  - cat /etc/motd > %{{install-root}}/seen\n",
            deps.join(", ")
        ),
    );
}

#[test]
fn overlaps_are_errors_unless_the_later_element_whitelists_them() {
    let ctx = busybox_project();
    motd(&ctx, "a", "from-a", "");
    motd(
        &ctx,
        "b",
        "from-b",
        "public:\n  overlap-whitelist:\n  - '%{sysconfdir}/motd'\n",
    );
    motd(
        &ctx,
        "b-bst",
        "from-b-bst",
        "public:\n  bst:\n    overlap-whitelist: ['/etc/m*']\n",
    );
    motd(
        &ctx,
        "b-other",
        "from-b-other",
        "public:\n  overlap-whitelist: ['/etc/*.conf', '/usr/**']\n",
    );
    reader(&ctx, "b-wins", &["base.yaml", "a.yaml", "b.yaml"]);
    reader(&ctx, "a-after-b", &["base.yaml", "b.yaml", "a.yaml"]);
    reader(&ctx, "no-match", &["base.yaml", "a.yaml", "b-other.yaml"]);
    reader(&ctx, "bst-wins", &["base.yaml", "a.yaml", "b-bst.yaml"]);

    // Not whitelisted: an error naming the path, both elements, and the way out.
    let run = ctx.cas(["build", "a-after-b.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("conflict at etc/motd: b.yaml and a.yaml"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("overlap-whitelist"), "{}", run.stderr);
    // A whitelist that does not match the path: still an error.
    let run = ctx.cas(["build", "no-match.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("conflict at etc/motd: a.yaml and b-other.yaml"),
        "{}",
        run.stderr
    );

    // Whitelisted: the later element's file wins, at any -j.
    let mut outputs = Vec::new();
    for jobs in ["1", "8"] {
        let store = ctx.path(format!("store-j{jobs}"));
        let run = ctx
            .cas([
                "--store",
                store.to_str().unwrap(),
                "-j",
                jobs,
                "--json",
                "build",
                "b-wins.yaml",
                "bst-wins.yaml",
            ])
            .ok();
        let v = run.json();
        let out: Vec<String> = ["b-wins.yaml", "bst-wins.yaml"]
            .iter()
            .map(|n| {
                v["elements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == *n)
                    .unwrap()["output"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        outputs.push(out);
        for (name, seen) in [
            ("b-wins.yaml", "from-b\n"),
            ("bst-wins.yaml", "from-b-bst\n"),
        ] {
            let dir = ctx.path(format!("out-{name}-{jobs}"));
            ctx.cas([
                "--store",
                store.to_str().unwrap(),
                "checkout",
                name,
                dir.to_str().unwrap(),
            ])
            .ok();
            assert_eq!(std::fs::read_to_string(dir.join("seen")).unwrap(), seen);
        }
        // The step's log lists the replacement.
        let run = ctx
            .cas(["--store", store.to_str().unwrap(), "log", "b-wins.yaml"])
            .ok();
        assert!(
            run.stdout.contains("/etc/motd: b.yaml replaces a.yaml"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(outputs[0], outputs[1]);

    // Composed the same way; the whitelist is part of the consumer's key.
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [a.yaml, b.yaml]\n",
    );
    let before = ctx
        .cas(["--json", "show", "rootfs.yaml", "b-wins.yaml"])
        .ok()
        .json();
    ctx.cas(["build", "rootfs.yaml"]).ok();
    let out = checkout(&ctx, "rootfs.yaml", "out-rootfs");
    assert_eq!(
        std::fs::read_to_string(out.join("etc/motd")).unwrap(),
        "from-b\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("etc/a")).unwrap(),
        "from-a\n"
    );
    motd(
        &ctx,
        "b",
        "from-b",
        "public:\n  overlap-whitelist:\n  - '%{sysconfdir}/motd'\n  - /etc/b\n",
    );
    let after = ctx
        .cas(["--json", "show", "rootfs.yaml", "b-wins.yaml", "b.yaml"])
        .ok()
        .json();
    let key = |v: &serde_json::Value, n: &str| {
        v["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap()["key"]
            .clone()
    };
    assert_ne!(key(&before, "rootfs.yaml"), key(&after, "rootfs.yaml"));
    assert_ne!(key(&before, "b-wins.yaml"), key(&after, "b-wins.yaml"));
    assert_eq!(key(&before, "b.yaml"), key(&after, "b.yaml"));
}

//! Real systems: what packages and root filesystems hold (absolute
//! symlinks, overlapping files) and how cas stages, composes and exports it.

use std::path::Path;
use std::process::Command;

use crate::ctx::{busybox_project, Ctx};
use crate::sources::{checkout, deb_of, project, sh, sha256, tar_member, tar_of, Server};

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

/// A Debian archive made in the test: `.deb` files built with `dpkg-deb`,
/// indexed with `dpkg-scanpackages`, a `Release` listing the index's
/// SHA-256, all served by nginx on 127.0.0.1.
struct Archive {
    nginx: crate::ctx::Nginx,
    root: std::path::PathBuf,
}

impl Archive {
    fn new(ctx: &Ctx) -> Archive {
        let nginx = crate::ctx::Nginx::start(&ctx.path("nginx"));
        let root = nginx.dir.join("www/debian");
        std::fs::create_dir_all(root.join("pool/main")).unwrap();
        Archive { nginx, root }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/debian/", self.nginx.port)
    }

    /// Build package `name` `version` with control fields `fields` and
    /// files `(path, content)`.
    fn package(&self, ctx: &Ctx, name: &str, version: &str, fields: &str, files: &[(&str, &str)]) {
        let dir = ctx.path(format!("pkg-{name}-{version}"));
        std::fs::create_dir_all(dir.join("DEBIAN")).unwrap();
        std::fs::write(
            dir.join("DEBIAN/control"),
            format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: t <t@example.org>\nDescription: test package {name}\n a description line that reads like a field:\n Package: decoy\n{fields}"),
        )
        .unwrap();
        std::fs::write(
            dir.join("DEBIAN/postinst"),
            format!("#!/bin/sh\necho configured {name}\n"),
        )
        .unwrap();
        sh(Command::new("chmod")
            .arg("755")
            .arg(dir.join("DEBIAN/postinst")));
        for (p, c) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
        sh(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&dir)
            .arg(
                self.root
                    .join(format!("pool/main/{name}_{version}_amd64.deb")),
            ));
    }

    /// Index the pool and write the suite's Release.
    fn index(&self) {
        let bin = self.root.join("dists/bookworm/main/binary-amd64");
        std::fs::create_dir_all(&bin).unwrap();
        let packages = sh(Command::new("dpkg-scanpackages")
            .current_dir(&self.root)
            .args(["-m", "pool", "/dev/null"]));
        std::fs::write(bin.join("Packages"), &packages).unwrap();
        sh(Command::new("xz").arg("-kf").arg(bin.join("Packages")));
        let mut release =
            String::from("Origin: test\nSuite: stable\nCodename: bookworm\nSHA256:\n");
        for f in ["Packages", "Packages.xz"] {
            let data = std::fs::read(bin.join(f)).unwrap();
            release.push_str(&format!(
                " {} {} main/binary-amd64/{f}\n",
                sha256(&data, &self.root),
                data.len()
            ));
        }
        std::fs::write(self.root.join("dists/bookworm/Release"), release).unwrap();
    }
}

#[test]
fn deb_lock_resolves_the_closure_and_pins_it() {
    let ctx = Ctx::new();
    let archive = Archive::new(&ctx);
    archive.package(
        &ctx,
        "app",
        "1.0-1",
        "Depends: libfoo (>= 2), awk, missing-alt | libbar\n",
        &[("usr/bin/app", "app\n")],
    );
    archive.package(
        &ctx,
        "libfoo",
        "1.0-1",
        "",
        &[("usr/lib/libfoo.so.1", "old\n")],
    );
    archive.package(
        &ctx,
        "libfoo",
        "2.1-1",
        "Pre-Depends: base\n",
        &[("usr/lib/libfoo.so.2", "new\n")],
    );
    archive.package(
        &ctx,
        "mawk",
        "1.3-1",
        "Provides: awk\n",
        &[("usr/bin/mawk", "mawk\n")],
    );
    archive.package(
        &ctx,
        "gawk",
        "5.2-1",
        "Provides: awk\n",
        &[("usr/bin/gawk", "gawk\n")],
    );
    archive.package(
        &ctx,
        "libbar",
        "0.1-1",
        "Multi-Arch: same\n",
        &[("usr/lib/libbar.so", "bar\n")],
    );
    archive.package(
        &ctx,
        "base",
        "7",
        "Essential: yes\n",
        &[("etc/base", "base\n")],
    );
    archive.package(&ctx, "unrelated", "1", "", &[("usr/bin/unrelated", "u\n")]);
    archive.index();
    ctx.write(
        "project.yaml",
        format!(
            "name: t\nelement-path: elements\naliases:\n  debian: {}\n",
            archive.url()
        ),
    );
    std::fs::create_dir_all(ctx.project().join("elements")).unwrap();
    let file = ctx.project().join("elements/debs.yaml");
    let run = ctx
        .cas([
            "deb",
            "lock",
            "elements/debs.yaml",
            "--alias",
            "debian",
            "--arch",
            "amd64",
            "app",
        ])
        .ok();
    assert!(run.stdout.contains("5 packages pinned"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("chose gawk to provide awk (providers: gawk, mawk"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("chose libbar (the first alternative available)"),
        "{}",
        run.stderr
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let urls: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  url: "))
        .collect();
    assert_eq!(
        urls,
        [
            "debian:pool/main/app_1.0-1_amd64.deb",
            "debian:pool/main/base_7_amd64.deb",
            "debian:pool/main/gawk_5.2-1_amd64.deb",
            "debian:pool/main/libbar_0.1-1_amd64.deb",
            "debian:pool/main/libfoo_2.1-1_amd64.deb",
        ]
    );
    for (url, sum) in urls
        .iter()
        .zip(text.lines().filter_map(|l| l.strip_prefix("  sha256: ")))
    {
        let data = std::fs::read(archive.root.join(url.strip_prefix("debian:").unwrap())).unwrap();
        assert_eq!(sha256(&data, ctx.root()), sum, "{url}");
    }
    // The request is recorded: locking again from the file alone gives the same file.
    ctx.cas(["deb", "lock", "elements/debs.yaml"]).ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // Naming a provider chooses it; --essential adds the essential packages.
    ctx.cas([
        "deb",
        "lock",
        "elements/other.yaml",
        "--alias",
        "debian",
        "--arch",
        "amd64",
        "--essential",
        "mawk",
        "libfoo=1.0-1",
    ])
    .ok();
    let other = std::fs::read_to_string(ctx.project().join("elements/other.yaml")).unwrap();
    assert!(
        other.contains("pool/main/mawk_1.3-1_amd64.deb") && other.contains("libfoo_1.0-1"),
        "{other}"
    );
    assert!(
        other.contains("pool/main/base_7_amd64.deb") && !other.contains("gawk"),
        "{other}"
    );

    // The pinned packages import, registered as unpacked in the dpkg database.
    ctx.cas(["build", "debs.yaml"]).ok();
    let out = checkout(&ctx, "debs.yaml", "out");
    let status = std::fs::read_to_string(out.join("var/lib/dpkg/status")).unwrap();
    for p in ["app", "base", "gawk", "libbar", "libfoo"] {
        assert!(
            status.contains(&format!("Package: {p}\nStatus: install ok unpacked\n")),
            "{status}"
        );
    }
    // One status per package: a description line that looks like a field is not one.
    assert_eq!(
        status.matches("Status: install ok unpacked").count(),
        5,
        "{status}"
    );
    let list = std::fs::read_to_string(out.join("var/lib/dpkg/info/app.list")).unwrap();
    assert!(
        list.starts_with("/.\n") && list.contains("\n/usr/bin/app\n"),
        "{list}"
    );
    assert!(out.join("var/lib/dpkg/info/libbar:amd64.list").is_file());
    assert!(out.join("var/lib/dpkg/info/app.postinst").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("usr/lib/libfoo.so.2")).unwrap(),
        "new\n"
    );

    // Errors: an unknown package, an index that does not match its Release.
    let run = ctx
        .cas([
            "deb",
            "lock",
            "elements/x.yaml",
            "--alias",
            "debian",
            "--arch",
            "amd64",
            "ap",
        ])
        .expect_code(1);
    assert!(
        run.stderr.contains("unknown package `ap`"),
        "{}",
        run.stderr
    );
    let run = ctx
        .cas(["deb", "lock", "elements/x.yaml", "--alias", "nope", "app"])
        .expect_code(2);
    assert!(run.stderr.contains("no alias `nope`"), "{}", run.stderr);
    let xz = archive
        .root
        .join("dists/bookworm/main/binary-amd64/Packages.xz");
    let mut data = std::fs::read(&xz).unwrap();
    data.push(0);
    std::fs::write(&xz, data).unwrap();
    let run = ctx
        .cas(["deb", "lock", "elements/debs.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("Packages.xz: SHA-256") && run.stderr.contains("does not"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "a failed lock changed the file"
    );
}

/// The real Debian bookworm toolchain base of the slow tests: pinned from
/// the machine's archive by `cas deb lock`, configured by its own dpkg.
fn debian_project(ctx: &Ctx, mirror: &str) {
    ctx.write(
        "project.yaml",
        format!("name: real\nelement-path: elements\naliases:\n  debian: {mirror}\n"),
    );
    std::fs::create_dir_all(ctx.project().join("elements/base")).unwrap();
    ctx.write(
        "elements/base/debian.yaml",
        "kind: dpkg-configure\nbuild-depends: [base/debs.yaml]\n",
    );
}

#[test]
fn a_configured_debian_base_builds_upstream_tarballs_into_a_root_filesystem() {
    let Some(mirror) = crate::ctx::apt_mirror() else {
        eprintln!("skipped: this machine has no Debian archive in its APT configuration");
        return;
    };
    let ctx = Ctx::new();
    let store = crate::ctx::shared_store();
    let store_s = store.to_str().unwrap().to_owned();
    let cas = |args: &[&str]| {
        let mut all = vec!["--store", store_s.as_str()];
        all.extend_from_slice(args);
        ctx.cas(all)
    };
    debian_project(&ctx, &mirror);
    let run = cas(&[
        "deb",
        "lock",
        "elements/base/debs.yaml",
        "--alias",
        "debian",
        "--suite",
        "bookworm",
        "--essential",
        "build-essential",
        "mawk",
    ])
    .ok();
    assert!(run.stdout.contains("packages pinned"), "{}", run.stdout);
    ctx.write(
        "elements/hello.yaml",
        "kind: autotools\nbuild-depends: [base/debian.yaml]\nsources:\n- kind: tar\n  url: debian:pool/main/h/hello/hello_2.10.orig.tar.gz\n  sha256: 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b\n",
    );
    // bzip2 from its release tarball over the base's own bzip2 package.
    let bzip2 = "kind: manual\nbuild-depends: [base/debian.yaml]\nsources:\n- kind: tar\n  url: debian:pool/main/b/bzip2/bzip2_1.0.8.orig.tar.gz\n  sha256: ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269\nconfig:\n  build-commands:\n  - make -j%{max-jobs} CFLAGS='-O2 -g0'\n  install-commands:\n  - make install PREFIX=%{install-root}%{prefix}\n";
    ctx.write("elements/bzip2.yaml", bzip2);
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [base/debian.yaml, hello.yaml, bzip2.yaml]\n",
    );
    ctx.write(
        "elements/smoke.yaml",
        "kind: script\nbuild-depends: [rootfs.yaml]\nconfig:\n  commands:\n  - mkdir -p %{install-root}\n  - hello > %{install-root}/hello.txt\n  - echo payload | bzip2 | bzip2 -d > %{install-root}/bzip2.txt\n  - bzip2 --version 2>&1 | head -1 >> %{install-root}/bzip2.txt\n  - readlink /usr/bin/awk /bin > %{install-root}/links.txt\n",
    );
    // Overlapping without a whitelist: the error names the path and both.
    let run = cas(&["build", "rootfs.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("conflict at usr/bin/bunzip2: base/debian.yaml and bzip2.yaml"),
        "{}",
        run.stderr
    );
    ctx.write(
        "elements/bzip2.yaml",
        format!("{bzip2}public:\n  overlap-whitelist:\n  - '%{{bindir}}/*'\n"),
    );
    cas(&["build", "smoke.yaml"]).ok();
    let out = ctx.path("smoke");
    cas(&["checkout", "smoke.yaml", out.to_str().unwrap()]).ok();
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(read("hello.txt"), "Hello, world!\n");
    let bz = read("bzip2.txt");
    assert!(
        bz.starts_with("payload\nbzip2, a block-sorting file compressor.  Version 1.0.8"),
        "{bz}"
    );
    // Configured: alternatives made awk, usrmerge made /bin a link.
    assert_eq!(read("links.txt"), "/etc/alternatives/awk\nusr/bin\n");
    let log = cas(&["log", "rootfs.yaml"]).ok();
    assert!(
        log.stdout
            .contains("/usr/bin/bzip2: bzip2.yaml replaces base/debian.yaml"),
        "{}",
        log.stdout
    );
    // Reproducible: the configured base and an autotools build.
    for e in ["base/debian.yaml", "hello.yaml"] {
        let run = cas(&["check", e]).ok();
        assert!(run.stdout.contains("reproducible"), "{e}: {}", run.stdout);
    }
}

/// The second example, as its README section runs it: the repository's
/// `projects/debian-system` built from scratch (in the shared store), its
/// images reproducible, and a boot in qemu whose /init prints the line of
/// GNU hello, built from its release tarball.
#[test]
fn the_debian_system_example_builds_reproducibly_and_boots() {
    let Some(ds) = DebianSystem::new() else {
        return;
    };
    let ctx = &ds.ctx;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = |args: &[&str]| ds.cas(args);
    run(&["build", "system.yaml"]).ok();
    for e in ["rootfs-image.yaml", "initramfs.yaml", "base/debian.yaml"] {
        let r = run(&["check", e]).ok();
        assert!(r.stdout.contains("reproducible"), "{e}: {}", r.stdout);
    }
    let kernel = ctx.path("kernel");
    let initramfs = ctx.path("initramfs");
    run(&["checkout", "kernel.yaml", kernel.to_str().unwrap()]).ok();
    run(&["checkout", "initramfs.yaml", initramfs.to_str().unwrap()]).ok();
    let image = ctx.path("image");
    run(&["checkout", "rootfs-image.yaml", image.to_str().unwrap()]).ok();
    // The image is a clean ext4 file system holding the composed root.
    let fsck = Command::new("/sbin/e2fsck")
        .args(["-fn"])
        .arg(image.join("rootfs.ext4"))
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let boot = Command::new("bash")
        .arg(repo.join("scripts/boot.sh"))
        .arg(kernel.join("boot/vmlinuz"))
        .arg(initramfs.join("initramfs.cpio.gz"))
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&boot.stdout);
    assert!(
        boot.status.success(),
        "boot failed:\n{console}\n{}",
        String::from_utf8_lossy(&boot.stderr)
    );
    assert!(console.contains("cas-boot: Hello, world!"), "{console}");
}

/// Two machines, one cache (#29): `projects/debian-system`'s configured
/// Debian base and three upstream builds over it, built in the shared store
/// and again from nothing in a second store at another path, later, with
/// another umask, time zone, HOME and working directory: every key and every
/// output must be the same, or a shared cache would share nothing.
#[test]
fn the_debian_system_gives_the_same_keys_and_outputs_in_a_second_store() {
    let Some(ds) = DebianSystem::new() else {
        return;
    };
    let (ctx, project) = (&ds.ctx, &ds.project);
    let targets: Vec<String> = ["zlib.yaml", "hello.yaml", "bzip2.yaml"]
        .iter()
        .map(|t| {
            project
                .join("elements")
                .join(t)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let build = |store: &Path, cwd: &Path, env: &[(&str, &str)], umask: u32| {
        let mut args = vec!["--json", "build"];
        args.extend(targets.iter().map(String::as_str));
        let (mut cmd, shown) = ds.command(store, &args);
        cmd.current_dir(cwd);
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
        crate::ctx::Run::from_output(shown, cmd.output().unwrap()).ok()
    };
    let first = build(
        &crate::ctx::shared_store(),
        project,
        &[("TZ", "UTC")],
        0o022,
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let elsewhere = ctx.path("another/machine");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let second = build(
        &elsewhere.join("store"),
        &elsewhere,
        &[
            ("TZ", "Asia/Kathmandu"),
            ("HOME", "/nonexistent"),
            ("LC_ALL", "C.UTF-8"),
        ],
        0o077,
    );
    assert_eq!(
        second.json()["built"].as_u64(),
        Some(5),
        "built from nothing: {}",
        second.stdout
    );
    let (k1, k2) = (first.per_element("key"), second.per_element("key"));
    let (o1, o2) = (first.per_element("output"), second.per_element("output"));
    for name in k1.keys() {
        assert_eq!(
            o1[name], o2[name],
            "{name}: outputs differ between the two stores"
        );
        assert_eq!(
            k1[name], k2[name],
            "{name}: keys differ between the two stores"
        );
    }
    assert_eq!(k1.len(), 5, "{k1:?}");
}

/// The runtime pattern (#29): GNU hello built over the whole configured
/// base but depending at run time only on `base/runtime.yaml` (libc6,
/// libgcc-s1): the libraries check finds every library it needs in that
/// runtime closure, and a root composed from it has libc but no compiler.
#[test]
fn a_program_over_the_debian_base_gets_libc_at_run_time_without_the_toolchain() {
    let Some(ds) = DebianSystem::new() else {
        return;
    };
    let run = |_: &Path, args: &[&str]| ds.cas(args);
    let project = ds.project.clone();
    let built = run(&project, &["build", "hello-dynamic.yaml"]).ok();
    assert!(
        !built.stderr.contains("warning: hello-dynamic.yaml"),
        "the libraries check found a problem:\n{}",
        built.stderr
    );
    let shown = run(&project, &["--json", "show", "hello-dynamic.yaml"]).ok();
    assert!(!shown.stdout.contains("\"missing\""), "{}", shown.stdout);
    run(&project, &["build", "rootfs-dynamic.yaml"]).ok();
    let owns = |path: &str| run(&project, &["owns", path, "--in", "rootfs-dynamic.yaml"]);
    assert!(owns("/usr/bin/hello")
        .ok()
        .stdout
        .contains("hello-dynamic.yaml"));
    if cfg!(target_arch = "x86_64") {
        // the loader's path, through the tree's own links where it has them
        let libc = owns("/lib/x86_64-linux-gnu/libc.so.6").ok();
        assert!(libc.stdout.contains("base/runtime.yaml"), "{}", libc.stdout);
    }
    owns("/usr/bin/gcc").expect_code(1);
}

/// `projects/debian-system` as its README section runs it: the repository's
/// project, this machine's APT mirror in a user configuration of the test.
pub(crate) struct DebianSystem {
    pub(crate) ctx: Ctx,
    pub(crate) project: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl DebianSystem {
    /// None (the test says it skipped) without a Debian archive in APT's configuration.
    pub(crate) fn new() -> Option<DebianSystem> {
        let Some(mirror) = crate::ctx::apt_mirror() else {
            eprintln!("skipped: this machine has no Debian archive in its APT configuration");
            return None;
        };
        let ctx = Ctx::new();
        let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../projects/debian-system");
        let config = ctx.path("config.yaml");
        std::fs::write(&config, format!("mirrors:\n  debian:\n  - {mirror}\n")).unwrap();
        Some(DebianSystem {
            ctx,
            project,
            config,
        })
    }

    /// `cas --store STORE --config CONFIG ARGS` in the project directory.
    pub(crate) fn command(&self, store: &Path, args: &[&str]) -> (Command, Vec<String>) {
        let mut all = vec![
            "--store".to_string(),
            store.to_string_lossy().into_owned(),
            "--config".to_string(),
            self.config.to_string_lossy().into_owned(),
        ];
        all.extend(args.iter().map(ToString::to_string));
        let (mut cmd, shown) = self.ctx.command(&all);
        cmd.current_dir(&self.project);
        (cmd, shown)
    }

    /// [`DebianSystem::command`] in the shared store, run.
    pub(crate) fn cas(&self, args: &[&str]) -> crate::ctx::Run {
        let (mut cmd, shown) = self.command(&crate::ctx::shared_store(), args);
        crate::ctx::Run::from_output(shown, cmd.output().unwrap())
    }
}

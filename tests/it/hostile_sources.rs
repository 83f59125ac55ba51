//! Hostile sources through `cas build`: a `.crate` that writes outside its
//! own `NAME-VERSION/` directory, decompression bombs (tar, zip, deb, crate)
//! bounded by `CAS_MAX_EXTRACT_SIZE` / `CAS_MAX_EXTRACT_ENTRIES`, and a
//! `.deb` whose control file holds two stanzas (spec/sources.md, §3.1, §3.5).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ctx::{Ctx, Run};
use crate::sources::{sh, sha256, tar_member, tar_of, zip_of};

/// `cas build` of `element` with extra environment variables.
fn build_with(ctx: &Ctx, element: &str, env: &[(&str, &str)]) -> Run {
    let (mut cmd, shown) = ctx.command(["build", element]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from_output(shown, cmd.output().expect("run cas"))
}

/// gzip `data` with the gzip CLI.
fn gzip(ctx: &Ctx, name: &str, data: &[u8]) -> Vec<u8> {
    let f = ctx.path(name);
    std::fs::write(&f, data).unwrap();
    sh(Command::new("gzip").arg("-nf9").arg(&f));
    let gz = PathBuf::from(format!("{}.gz", f.display()));
    std::fs::read(gz).unwrap()
}

/// An element importing the file `data` (written beside the project) as a
/// `tar` source through a file:// URL.
fn tar_element(ctx: &Ctx, name: &str, data: &[u8]) {
    let file = ctx.path(format!("files/{name}"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, data).unwrap();
    ctx.write(
        format!("elements/{name}.yaml"),
        format!(
            "kind: import\nsources:\n  - kind: tar\n    url: file://{}\n    sha256: {}\n",
            file.display(),
            sha256(data, ctx.root())
        ),
    );
}

/// A `.crate` file: a gzipped tar of these members.
fn crate_file(ctx: &Ctx, name: &str, members: &[Vec<u8>]) -> Vec<u8> {
    gzip(ctx, &format!("{name}.crate.tar"), &tar_of(members))
}

/// A registry (`file://` directory) holding `crates` (name, version,
/// file), and an element `element` vendoring them in that order.
fn cargo_element(ctx: &Ctx, element: &str, crates: &[(&str, &str, &[u8])]) {
    let registry = ctx.path(format!("registry-{element}"));
    let mut list = String::new();
    for (name, version, data) in crates {
        let dir = registry.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}-{version}.crate")), data).unwrap();
        list.push_str(&format!(
            "      - name: {name}\n        version: {version}\n        sha256: {}\n",
            sha256(data, ctx.root())
        ));
    }
    ctx.write(
        format!("elements/{element}.yaml"),
        format!(
            "kind: import\nsources:\n  - kind: cargo\n    url: file://{}/\n    crates:\n{list}",
            registry.display()
        ),
    );
}

fn project(ctx: &Ctx) {
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
}

fn victim(ctx: &Ctx) -> Vec<u8> {
    crate_file(
        ctx,
        "victim",
        &[
            tar_member("victim-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
            tar_member("victim-1.0.0/src/lib.rs", b'0', "", b"// the real one\n"),
        ],
    )
}

#[test]
fn a_crate_cannot_write_outside_its_own_directory() {
    let ctx = Ctx::new();
    project(&ctx);
    let victim = victim(&ctx);
    // the control case: two honest crates vendor fine
    let honest = crate_file(
        &ctx,
        "honest",
        &[
            tar_member("./honest-0.1.0/", b'5', "", b""),
            tar_member("./honest-0.1.0/Cargo.toml", b'0', "", b"[package]\n"),
        ],
    );
    cargo_element(
        &ctx,
        "fine",
        &[("victim", "1.0.0", &victim), ("honest", "0.1.0", &honest)],
    );
    build_with(&ctx, "fine.yaml", &[]).ok();

    let cases: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        // replaces a file of another vendored crate
        (
            "replace",
            "victim-1.0.0/src/lib.rs",
            vec![
                tar_member("evil-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
                tar_member("victim-1.0.0/src/lib.rs", b'0', "", b"pwned\n"),
            ],
        ),
        // a file beside the vendored crates
        (
            "beside",
            "build.rs",
            vec![
                tar_member("evil-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
                tar_member("build.rs", b'0', "", b"pwned\n"),
            ],
        ),
        // a prefix that only looks like the crate's
        (
            "prefix",
            "evil-1.0.0x/lib.rs",
            vec![
                tar_member("evil-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
                tar_member("evil-1.0.0x/lib.rs", b'0', "", b"pwned\n"),
            ],
        ),
        // the crate's directory as a file
        (
            "top-file",
            "evil-1.0.0",
            vec![
                tar_member("evil-1.0.0", b'0', "", b"pwned\n"),
                tar_member("evil-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
            ],
        ),
        // links: a crate holds files and directories only
        (
            "symlink",
            "evil-1.0.0/up",
            vec![
                tar_member("evil-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
                tar_member("evil-1.0.0/up", b'2', "../victim-1.0.0", b""),
            ],
        ),
        (
            "hardlink",
            "evil-1.0.0/copy",
            vec![
                tar_member("evil-1.0.0/Cargo.toml", b'0', "", b"[package]\n"),
                tar_member("evil-1.0.0/copy", b'1', "evil-1.0.0/Cargo.toml", b""),
            ],
        ),
        (
            "dotdot",
            "evil-1.0.0/../victim-1.0.0/src/lib.rs",
            vec![tar_member(
                "evil-1.0.0/../victim-1.0.0/src/lib.rs",
                b'0',
                "",
                b"pwned\n",
            )],
        ),
    ];
    for (case, member, members) in &cases {
        let evil = crate_file(&ctx, &format!("evil-{case}"), members);
        cargo_element(
            &ctx,
            case,
            &[("victim", "1.0.0", &victim), ("evil", "1.0.0", &evil)],
        );
        let run = build_with(&ctx, &format!("{case}.yaml"), &[]);
        assert_eq!(
            run.code, 1,
            "{case}: the crate was vendored\n{}{}",
            run.stdout, run.stderr
        );
        assert!(
            run.stderr.contains("evil/evil-1.0.0.crate")
                && run.stderr.contains(&format!("`{member}`")),
            "{case}: the error names neither the crate nor the member:\n{}",
            run.stderr
        );
    }
}

/// 50 MB of zeros in one member `top/zeros` (a sparse file, read as zeros).
fn zeros_dir(ctx: &Ctx, name: &str) -> PathBuf {
    let dir = ctx.path(format!("zeros-{name}"));
    std::fs::create_dir_all(dir.join("top")).unwrap();
    let f = std::fs::File::create(dir.join("top/zeros")).unwrap();
    f.set_len(50 << 20).unwrap();
    dir
}

fn refused_quickly(ctx: &Ctx, element: &str, env: &[(&str, &str)], needle: &[&str]) {
    let start = Instant::now();
    let run = build_with(ctx, element, env).expect_code(1);
    let took = start.elapsed();
    for n in needle {
        assert!(
            run.stderr.contains(n),
            "{element}: `{n}` not in the error:\n{}",
            run.stderr
        );
    }
    eprintln!("{element}: refused in {took:?}");
    assert!(
        took < Duration::from_secs(30),
        "{element}: took {took:?} to refuse"
    );
}

#[test]
fn decompression_bombs_are_refused_at_the_configured_limit() {
    let ctx = Ctx::new();
    project(&ctx);
    let limit = [("CAS_MAX_EXTRACT_SIZE", "10M")];

    // tar.gz: 50 MB of zeros in ~50 kB
    let dir = zeros_dir(&ctx, "tar");
    let tgz = ctx.path("bomb.tar.gz");
    sh(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-czf")
        .arg(&tgz)
        .arg("top"));
    let tgz = std::fs::read(tgz).unwrap();
    assert!(tgz.len() < 1 << 20);
    tar_element(&ctx, "bomb-tgz", &tgz);
    refused_quickly(
        &ctx,
        "bomb-tgz.yaml",
        &limit,
        &["bomb-tgz", "10 MiB", "CAS_MAX_EXTRACT_SIZE"],
    );
    // also with base-dir "" (no first pass over the members): refused while
    // writing
    let file = ctx.path("files/bomb-tgz");
    ctx.write(
        "elements/bomb-tgz-flat.yaml",
        format!(
            "kind: import\nsources:\n  - kind: tar\n    url: file://{}\n    sha256: {}\n    base-dir: ''\n",
            file.display(),
            sha256(&tgz, ctx.root())
        ),
    );
    refused_quickly(
        &ctx,
        "bomb-tgz-flat.yaml",
        &limit,
        &["bomb-tgz", "10 MiB", "CAS_MAX_EXTRACT_SIZE"],
    );
    // the same archive builds under the default limit
    build_with(&ctx, "bomb-tgz.yaml", &[]).ok();

    // zip: 50 MB of zeros, deflated
    let zip = zip_of(&[("top/zeros", &"\0".repeat(50 << 20), 0o644)]);
    tar_element(&ctx, "bomb-zip", &zip);
    refused_quickly(
        &ctx,
        "bomb-zip.yaml",
        &limit,
        &["bomb-zip", "10 MiB", "CAS_MAX_EXTRACT_SIZE"],
    );

    // a .deb's data.tar
    let deb = deb_with_control(&ctx, "bomb", &zeros_dir(&ctx, "deb"), "Package: bomb\n");
    let file = ctx.path("files/bomb.deb");
    std::fs::write(&file, &deb).unwrap();
    ctx.write(
        "elements/bomb-deb.yaml",
        format!(
            "kind: import\nsources:\n  - kind: deb\n    url: file://{}\n    sha256: {}\n",
            file.display(),
            sha256(&deb, ctx.root())
        ),
    );
    refused_quickly(
        &ctx,
        "bomb-deb.yaml",
        &limit,
        &["bomb.deb", "10 MiB", "CAS_MAX_EXTRACT_SIZE"],
    );

    // a .crate
    let zeros = vec![0u8; 50 << 20];
    let bomb = crate_file(
        &ctx,
        "bomb",
        &[tar_member("bomb-1.0.0/zeros", b'0', "", &zeros)],
    );
    cargo_element(&ctx, "bomb-crate", &[("bomb", "1.0.0", &bomb)]);
    refused_quickly(
        &ctx,
        "bomb-crate.yaml",
        &limit,
        &["bomb/bomb-1.0.0.crate", "10 MiB", "CAS_MAX_EXTRACT_SIZE"],
    );

    // too many members
    let many: Vec<Vec<u8>> = (0..200)
        .map(|i| tar_member(&format!("top/f{i}"), b'0', "", b"x"))
        .collect();
    tar_element(&ctx, "many", &tar_of(&many));
    refused_quickly(
        &ctx,
        "many.yaml",
        &[("CAS_MAX_EXTRACT_ENTRIES", "100")],
        &["many", "100 members", "CAS_MAX_EXTRACT_ENTRIES"],
    );
    build_with(&ctx, "many.yaml", &[]).ok();

    // a malformed setting is an error naming it
    let run = build_with(&ctx, "bomb-zip.yaml", &[("CAS_MAX_EXTRACT_SIZE", "lots")]).expect_code(1);
    assert!(
        run.stderr.contains("CAS_MAX_EXTRACT_SIZE") && run.stderr.contains("lots"),
        "{}",
        run.stderr
    );
}

/// A Debian package `name` whose data is the directory `data` and whose
/// `control` file is `control` (made with tar and ar).
fn deb_with_control(ctx: &Ctx, name: &str, data: &Path, control: &str) -> Vec<u8> {
    let dir = ctx.path(format!("deb-{name}"));
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::write(dir.join("control/control"), control).unwrap();
    std::fs::write(dir.join("debian-binary"), "2.0\n").unwrap();
    sh(Command::new("tar")
        .arg("-C")
        .arg(data)
        .arg("-czf")
        .arg(dir.join("data.tar.gz"))
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
        "data.tar.gz",
    ]));
    std::fs::read(dir.join("p.deb")).unwrap()
}

#[test]
fn a_deb_whose_control_holds_two_stanzas_is_refused() {
    let ctx = Ctx::new();
    project(&ctx);
    let data = ctx.path("debdata");
    std::fs::create_dir_all(data.join("usr/share/doc/t")).unwrap();
    std::fs::write(data.join("usr/share/doc/t/copyright"), "free\n").unwrap();
    let element = |name: &str, control: &str| {
        let deb = deb_with_control(&ctx, name, &data, control);
        let file = ctx.path(format!("files/{name}.deb"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &deb).unwrap();
        ctx.write(
            format!("elements/{name}.yaml"),
            format!(
                "kind: import\nsources:\n  - kind: deb\n    url: file://{}\n    sha256: {}\n    dpkg-database: true\n",
                file.display(),
                sha256(&deb, ctx.root())
            ),
        );
    };
    // one stanza (blank lines after it are fine)
    element("one", "Package: one\nVersion: 1\nArchitecture: all\n\n\n");
    build_with(&ctx, "one.yaml", &[]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "one.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("var/lib/dpkg/status")).unwrap(),
        "Package: one\nStatus: install ok unpacked\nVersion: 1\nArchitecture: all\n\n"
    );
    // two: the second would be merged into a malformed status entry
    element(
        "two",
        "Package: two\nVersion: 1\nArchitecture: all\n\nPackage: libc6\nVersion: 99\nArchitecture: all\n",
    );
    let run = build_with(&ctx, "two.yaml", &[]).expect_code(1);
    assert!(
        run.stderr.contains("files/two.deb") && run.stderr.contains("stanza"),
        "{}",
        run.stderr
    );
}

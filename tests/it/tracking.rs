//! What Buildroot's FAQ says a build system cannot do reliably, done
//! exactly by keys (spec/keys.md): removing an optional dependency rebuilds
//! exactly what used it, adding it back reuses the earlier results, and an
//! undeclared dependency is invisible to the build. Real C code, built by
//! gcc from this machine's Debian packages.

use std::collections::BTreeMap;

use crate::ctx::Ctx;

fn read(p: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// element name → status of a `cas --json build`.
fn statuses(run: &crate::ctx::Run) -> BTreeMap<String, String> {
    run.per_element("status")
}

const A_BUILD: &str = "\
config:
  build-commands:
    # a configure-style probe: O is used when its header is in the sysroot
    - if [ -f /usr/include/o.h ]; then cc -O2 -DHAVE_O -o a a.c -lo; else cc -O2 -o a a.c; fi
  install-commands:
    - mkdir -p %{install-root}/usr/bin && cp a %{install-root}/usr/bin/a
";

fn a_element(with_o: bool) -> String {
    let deps = if with_o {
        "build-depends: [toolchain.yaml]\ndepends: [o.yaml]\n"
    } else {
        "build-depends: [toolchain.yaml]\n"
    };
    format!("kind: manual\n{deps}sources:\n  - kind: local\n    path: files/a\n{A_BUILD}")
}

fn rootfs(with_o: bool) -> String {
    let deps = if with_o {
        "[a.yaml, o.yaml]"
    } else {
        "[a.yaml]"
    };
    format!("kind: compose\nbuild-depends: {deps}\n")
}

fn project() -> Ctx {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    crate::ctx::toolchain_element(&ctx, crate::toolchain::Flavor::C);
    // O: an optional shared library
    ctx.write("files/o/o.h", "const char *o_name(void);\n");
    ctx.write(
        "files/o/o.c",
        "const char *o_name(void) { return \"o\"; }\n",
    );
    ctx.write(
        "elements/o.yaml",
        "kind: manual\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/o\n\
         config:\n  build-commands:\n    - cc -O2 -shared -fPIC -o libo.so o.c\n  install-commands:\n\
         \x20   - mkdir -p %{install-root}/usr/lib %{install-root}/usr/include\n\
         \x20   - cp libo.so %{install-root}/usr/lib/ && cp o.h %{install-root}/usr/include/\n",
    );
    ctx.write(
        "files/a/a.c",
        "#include <stdio.h>\n#ifdef HAVE_O\n#include <o.h>\n#endif\n\
         int main(void) {\n#ifdef HAVE_O\n  printf(\"with %s\\n\", o_name());\n#else\n  puts(\"without o\");\n#endif\n  return 0;\n}\n",
    );
    ctx
}

/// The bytes of A's binary as built into the rootfs.
fn checkout(ctx: &Ctx, element: &str, dir: &str) -> std::path::PathBuf {
    let out = ctx.path(dir);
    ctx.cas(["checkout", element, out.to_str().unwrap()]).ok();
    out
}

fn references_o(binary: &std::path::Path) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    bytes.windows(7).any(|w| w == b"libo.so")
}

#[test]
fn removing_an_optional_dependency_rebuilds_exactly_its_users_and_adding_it_back_rebuilds_nothing()
{
    let ctx = project();
    ctx.write("elements/a.yaml", a_element(true));
    ctx.write("elements/rootfs.yaml", rootfs(true));
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    assert_eq!(run.json()["built"], 4, "{}", run.stdout);
    let with = checkout(&ctx, "rootfs.yaml", "with");
    assert!(
        references_o(&with.join("usr/bin/a")),
        "A found O and linked it"
    );
    assert!(with.join("usr/lib/libo.so").is_file());

    // O removed from A and from the rootfs: exactly A and the rootfs rebuild
    ctx.write("elements/a.yaml", a_element(false));
    ctx.write("elements/rootfs.yaml", rootfs(false));
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    let s = statuses(&run);
    assert_eq!(s["a.yaml"], "built", "{s:?}");
    assert_eq!(s["rootfs.yaml"], "built", "{s:?}");
    assert_eq!(s["toolchain.yaml"], "cached", "{s:?}");
    assert!(
        !s.contains_key("o.yaml"),
        "O is no longer in the closure: {s:?}"
    );
    assert_eq!(run.json()["built"], 2);
    let without = checkout(&ctx, "rootfs.yaml", "without");
    assert!(
        !references_o(&without.join("usr/bin/a")),
        "A no longer references O"
    );
    assert!(!without.join("usr/lib/libo.so").exists() && !without.join("usr/include/o.h").exists());

    // O added back: every result is the earlier one
    ctx.write("elements/a.yaml", a_element(true));
    ctx.write("elements/rootfs.yaml", rootfs(true));
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    assert_eq!(run.json()["built"], 0, "{}", run.stdout);
    let again = checkout(&ctx, "rootfs.yaml", "again");
    assert_eq!(
        std::fs::read(again.join("usr/bin/a")).unwrap(),
        std::fs::read(with.join("usr/bin/a")).unwrap()
    );
}

#[test]
fn a_dependency_nobody_declared_is_invisible_to_the_build() {
    let ctx = project();
    // O is built and in the rootfs; A's new version probes for it without
    // declaring it (Buildroot's worst case: it would silently link it)
    ctx.write("elements/a.yaml", a_element(false));
    ctx.write("elements/rootfs.yaml", rootfs(true));
    ctx.cas(["build", "rootfs.yaml"]).ok();
    let out = checkout(&ctx, "rootfs.yaml", "out");
    assert!(out.join("usr/lib/libo.so").is_file(), "O is in the rootfs");
    assert!(
        !references_o(&out.join("usr/bin/a")),
        "A's build never saw O"
    );
    // the probe took its else branch: the binary holds the other message
    let bytes = std::fs::read(out.join("usr/bin/a")).unwrap();
    assert!(bytes.windows(9).any(|w| w == b"without o"));
    assert!(!read(ctx.project().join("elements/a.yaml")).contains("o.yaml"));
}

#[test]
fn show_rdeps_lists_exactly_what_would_rebuild() {
    let ctx = project();
    ctx.write("elements/a.yaml", a_element(true));
    ctx.write("elements/rootfs.yaml", rootfs(true));
    // b only carries O to whatever stages it; c stages b (and so O)
    ctx.write(
        "elements/b.yaml",
        "kind: stack\nruntime-depends: [o.yaml]\n",
    );
    ctx.write(
        "elements/c.yaml",
        "kind: compose\nbuild-depends: [b.yaml]\n",
    );
    ctx.write(
        "elements/unrelated.yaml",
        "kind: stack\ndepends: [toolchain.yaml]\n",
    );
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "show", "--rdeps"];
        all.extend_from_slice(args);
        ctx.cas(all).ok().json()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    // every element of the project is looked at
    assert_eq!(names(&["o.yaml"]), ["a.yaml", "c.yaml", "rootfs.yaml"]);
    assert_eq!(names(&["elements/a.yaml"]), ["rootfs.yaml"]);
    assert!(names(&["rootfs.yaml"]).is_empty());
    // or only the closure of the targets given
    assert_eq!(names(&["o.yaml", "rootfs.yaml"]), ["a.yaml", "rootfs.yaml"]);
    let table = ctx.cas(["show", "--rdeps", "o.yaml"]).ok().stdout;
    assert!(
        table.contains("rootfs.yaml") && !table.contains("unrelated.yaml"),
        "{table}"
    );
    let run = ctx.cas(["show", "--rdeps", "nosuch.yaml"]).expect_code(2);
    assert!(run.stderr.contains("nosuch.yaml"), "{}", run.stderr);
}

#[test]
fn owns_names_the_element_behind_each_path_of_a_composed_tree() {
    let ctx = project();
    ctx.write("elements/a.yaml", a_element(true));
    ctx.write("elements/rootfs.yaml", rootfs(true));
    // a compose of the compose, and a filter that keeps only O's headers
    ctx.write(
        "elements/image.yaml",
        "kind: compose\nbuild-depends: [rootfs.yaml]\n",
    );
    ctx.write(
        "elements/o-devel.yaml",
        "kind: compose\nbuild-depends: [o.yaml]\nconfig:\n  include: [devel]\n  include-orphans: false\n",
    );
    ctx.cas(["build", "image.yaml", "o-devel.yaml"]).ok();
    let run = ctx
        .cas([
            "--json",
            "owns",
            "/usr/bin/a",
            "usr/lib/libo.so",
            "--in",
            "image.yaml",
        ])
        .ok();
    let doc = run.json();
    assert_eq!(doc["schema"], 1);
    let rows = &doc["paths"];
    assert_eq!(rows[0]["element"], "a.yaml", "{rows}");
    assert_eq!(
        rows[0]["via"],
        serde_json::json!(["image.yaml", "rootfs.yaml"])
    );
    assert_eq!(rows[1]["element"], "o.yaml", "{rows}");
    let text = ctx
        .cas(["owns", "/usr/include/o.h", "--in", "o-devel.yaml"])
        .ok()
        .stdout;
    assert_eq!(text.trim(), "/usr/include/o.h  o.yaml  (via o-devel.yaml)");
    // a path the tree does not hold, and an element that is not built
    let run = ctx
        .cas(["owns", "/usr/lib/libo.so", "--in", "o-devel.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("is not in the output of o-devel.yaml"),
        "{}",
        run.stderr
    );
    ctx.write(
        "elements/later.yaml",
        "kind: compose\nbuild-depends: [o.yaml]\n",
    );
    let run = ctx
        .cas(["owns", "/usr/lib/libo.so", "--in", "later.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("later.yaml is not built"),
        "{}",
        run.stderr
    );
}

/// P links O; `deps` says how P declares the toolchain (libc) and O.
fn p_element(deps: &str) -> String {
    format!(
        "kind: manual\n{deps}sources:\n  - kind: local\n    path: files/a\n\
         config:\n  build-commands:\n    - cc -O2 -DHAVE_O -o p a.c -lo\n  install-commands:\n\
         \x20   - mkdir -p %{{install-root}}/usr/bin && cp p %{{install-root}}/usr/bin/p\n"
    )
}

/// The `libraries` report of `name` in a `cas --json build` or `show`.
fn libraries(doc: &serde_json::Value, name: &str, field: &str) -> serde_json::Value {
    let e = doc["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {doc}"));
    e[field].clone()
}

#[test]
fn the_libraries_check_names_a_library_found_only_in_a_build_dependency() {
    let ctx = project();
    // libc comes with the toolchain at run time; O only for the build
    ctx.write(
        "elements/p.yaml",
        p_element("depends: [toolchain.yaml]\nbuild-depends: [o.yaml]\n"),
    );
    let run = ctx.cas(["--json", "build", "p.yaml"]).ok();
    let lib = libraries(&run.json(), "p.yaml", "libraries");
    assert_eq!(lib["severity"], "warn", "{lib}");
    let problems = lib["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "only O is missing at run time: {lib}");
    assert_eq!(problems[0]["file"], "/usr/bin/p");
    assert_eq!(problems[0]["library"], "libo.so");
    assert_eq!(problems[0]["found"], "build-only");
    assert_eq!(problems[0]["build_dependency"], "o.yaml");
    assert!(
        run.stderr.contains(
            "warning: p.yaml: /usr/bin/p needs libo.so, found only in build dependency o.yaml"
        ),
        "{}",
        run.stderr
    );
    // recorded with the result: `cas show` tells without checking again
    let show = ctx.cas(["show", "p.yaml"]).ok();
    assert!(show.stdout.contains("1 problem"), "{}", show.stdout);
    assert!(
        show.stdout
            .contains("p.yaml: /usr/bin/p needs libo.so, found only in build dependency o.yaml"),
        "{}",
        show.stdout
    );
    let show = ctx.cas(["--json", "show", "p.yaml"]).ok();
    assert_eq!(libraries(&show.json(), "p.yaml", "libraries"), "1 problem");
    assert_eq!(
        libraries(&show.json(), "p.yaml", "library_problems")["problems"][0]["library"],
        "libo.so"
    );

    // the same library from a runtime dependency: nothing to report
    ctx.write(
        "elements/p.yaml",
        p_element("depends: [toolchain.yaml, o.yaml]\n"),
    );
    let run = ctx.cas(["--json", "build", "p.yaml"]).ok();
    assert!(
        libraries(&run.json(), "p.yaml", "libraries").is_null(),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("needs libo.so"), "{}", run.stderr);
    let show = ctx.cas(["--json", "show", "p.yaml"]).ok();
    assert_eq!(libraries(&show.json(), "p.yaml", "libraries"), "ok");
}

#[test]
fn the_libraries_check_setting_is_in_the_key_and_error_fails_the_build() {
    let ctx = project();
    ctx.write(
        "elements/p.yaml",
        p_element("depends: [toolchain.yaml]\nbuild-depends: [o.yaml]\n"),
    );
    // O finds its libc at run time: only P has a problem
    let o = read(ctx.project().join("elements/o.yaml"));
    ctx.write(
        "elements/o.yaml",
        o.replace(
            "build-depends: [toolchain.yaml]",
            "depends: [toolchain.yaml]",
        ),
    );
    let key = |ctx: &Ctx| {
        ctx.cas(["build", "o.yaml"]).ok();
        libraries(
            &ctx.cas(["--json", "show", "p.yaml"]).ok().json(),
            "p.yaml",
            "key",
        )
        .as_str()
        .unwrap()
        .to_string()
    };
    let warn_key = key(&ctx);
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nchecks:\n  libraries: error\n",
    );
    let error_key = key(&ctx);
    assert_ne!(warn_key, error_key, "the setting is in the key");
    let run = ctx.cas(["--json", "build", "p.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("error: p.yaml: /usr/bin/p needs libo.so"),
        "{}",
        run.stderr
    );
    let row = libraries(&run.json(), "p.yaml", "status");
    assert_eq!(row, "failed");
    assert!(libraries(&run.json(), "p.yaml", "error")
        .as_str()
        .unwrap()
        .contains("libraries check: 1 problem"));
    // still failing, from the cache, for as long as the problem is there
    ctx.cas(["build", "p.yaml"]).expect_code(1);

    // the element's own setting wins over the project's
    let mut off = p_element("depends: [toolchain.yaml]\nbuild-depends: [o.yaml]\n");
    off.push_str("checks:\n  libraries: off\n");
    ctx.write("elements/p.yaml", &off);
    let run = ctx.cas(["build", "p.yaml"]).ok();
    assert!(!run.stderr.contains("needs libo.so"), "{}", run.stderr);
    let show = ctx.cas(["--json", "show", "p.yaml"]).ok();
    assert_eq!(libraries(&show.json(), "p.yaml", "libraries"), "off");
    assert_ne!(libraries(&show.json(), "p.yaml", "key"), error_key.as_str());
    assert_ne!(libraries(&show.json(), "p.yaml", "key"), warn_key.as_str());

    // a severity that is not one: located
    ctx.write(
        "elements/p.yaml",
        off.replace("libraries: off", "libraries: loud"),
    );
    let run = ctx.cas(["show", "p.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("`loud` is not a severity"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("p.yaml:"), "{}", run.stderr);
}

#[test]
fn the_libraries_check_of_a_compose_names_what_would_fail_to_load_in_the_rootfs() {
    let ctx = project();
    ctx.write(
        "elements/p.yaml",
        p_element("depends: [toolchain.yaml]\nbuild-depends: [o.yaml]\n"),
    );
    // the rootfs has P and its runtime closure (the toolchain), not O
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [p.yaml]\n",
    );
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    let lib = libraries(&run.json(), "rootfs.yaml", "libraries");
    let problems: Vec<&serde_json::Value> = lib["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["file"] == "/usr/bin/p")
        .collect();
    assert_eq!(problems.len(), 1, "{lib}");
    assert_eq!(problems[0]["library"], "libo.so");
    assert_eq!(problems[0]["found"], "missing");
    assert_eq!(problems[0]["provided_by"], serde_json::json!(["o.yaml"]));
    assert!(
        run.stderr.contains("warning: rootfs.yaml: /usr/bin/p needs libo.so, which nothing in its runtime closure provides (o.yaml has it)"),
        "{}",
        run.stderr
    );
}

/// Every path under `root` (relative), with its kind and content digest.
fn tree_listing(root: &std::path::Path, skip: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if skip
            .iter()
            .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
        {
            continue;
        }
        let t = e.file_type();
        let what = if t.is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if t.is_dir() {
            "dir".into()
        } else {
            format!(
                "file {}",
                blake3::hash(&std::fs::read(e.path()).unwrap()).to_hex()
            )
        };
        out.insert(rel, what);
    }
    out
}

#[test]
fn checkout_as_packages_gives_a_feed_that_dpkg_installs_and_apt_reads() {
    let ctx = project();
    ctx.write("elements/a.yaml", a_element(true));
    // O has a version; A gets one derived from its key
    let o = read(ctx.project().join("elements/o.yaml"));
    ctx.write(
        "elements/o.yaml",
        format!("{o}variables:\n  package-version: 1.2-1\ndescription: the optional library\n"),
    );
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [a.yaml]\n",
    );
    ctx.cas(["build", "rootfs.yaml"]).ok();

    // one package: a .deb whose control file names its runtime dependency
    let run = ctx
        .cas(["--json", "checkout", "--format", "deb", "a.yaml", "../one"])
        .ok();
    let pkgs = run.json()["packages"].as_array().unwrap().clone();
    assert_eq!(pkgs.len(), 1);
    let deb = std::path::PathBuf::from(pkgs[0]["file"].as_str().unwrap());
    let info = std::process::Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let fields = String::from_utf8(info.stdout).unwrap();
    assert!(fields.contains("Package: cas-a\n"), "{fields}");
    assert!(fields.contains("Version: 0+cas."), "{fields}");
    assert!(
        fields.contains("Architecture: amd64\n") || !cfg!(target_arch = "x86_64"),
        "{fields}"
    );
    assert!(fields.contains("Depends: cas-o (= 1.2-1)\n"), "{fields}");

    // reproducible: a second checkout is byte-identical
    ctx.cas(["checkout", "--format", "deb", "a.yaml", "../two"])
        .ok();
    let name = deb.file_name().unwrap();
    assert_eq!(
        std::fs::read(&deb).unwrap(),
        std::fs::read(ctx.path("two").join(name)).unwrap()
    );

    // the closure as a feed: dpkg installs it into an empty root, giving
    // the same tree as the compose of A
    let run = ctx
        .cas([
            "--json", "checkout", "--format", "deb", "--deps", "a.yaml", "../feed",
        ])
        .ok();
    let files: Vec<String> = run.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let root = ctx.path("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let st = std::process::Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-not-root",
            "--force-unsafe-io",
            "--log=/dev/null",
            "-i",
        ])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "dpkg: {}{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
    let composed = checkout(&ctx, "rootfs.yaml", "composed");
    assert_eq!(
        tree_listing(&root, &["var"]),
        tree_listing(&composed, &[]),
        "dpkg's tree is the compose's"
    );
    assert!(root.join("usr/lib/libo.so").is_file());

    // apt reads the feed as a flat repository
    let feed = ctx.path("feed");
    let apt = ctx.path("apt");
    for d in ["state/lists/partial", "cache/archives/partial", "etc"] {
        std::fs::create_dir_all(apt.join(d)).unwrap();
    }
    std::fs::write(
        apt.join("etc/sources.list"),
        format!("deb [trusted=yes] file:{} ./\n", feed.display()),
    )
    .unwrap();
    std::fs::write(apt.join("status"), "").unwrap();
    let apt_args = |cmd: &str| {
        let mut c = std::process::Command::new(cmd);
        c.arg(format!(
            "-oDir::Etc::SourceList={}",
            apt.join("etc/sources.list").display()
        ))
        .arg("-oDir::Etc::SourceParts=/nonexistent")
        .arg(format!("-oDir::State={}", apt.join("state").display()))
        .arg(format!(
            "-oDir::State::status={}",
            apt.join("status").display()
        ))
        .arg(format!("-oDir::Cache={}", apt.join("cache").display()))
        .arg("-oAPT::Sandbox::User=root")
        .arg("-oDebug::NoLocking=1");
        c
    };
    let up = apt_args("apt-get").arg("update").output().unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let show = apt_args("apt-cache")
        .args(["show", "cas-o"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success() && text.contains("Version: 1.2-1"),
        "{text}{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(text.contains("Description: the optional library"), "{text}");

    // ipk: the same layout with gzip members, read by dpkg-deb too
    let run = ctx
        .cas([
            "--json", "checkout", "--format", "ipk", "--deps", "a.yaml", "../ipk",
        ])
        .ok();
    let ipk = run.json()["packages"][0]["file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ipk.ends_with(".ipk"));
    let contents = std::process::Command::new("dpkg-deb")
        .arg("-c")
        .arg(&ipk)
        .output()
        .unwrap();
    assert!(
        contents.status.success(),
        "{}",
        String::from_utf8_lossy(&contents.stderr)
    );
    assert!(
        String::from_utf8_lossy(&contents.stdout).contains(" usr/bin/a\n"),
        "{}",
        String::from_utf8_lossy(&contents.stdout)
    );
    let index = read(ctx.path("ipk/Packages"));
    assert!(
        index.contains("Package: cas-o\nVersion: 1.2-1\n"),
        "{index}"
    );
    assert!(index.contains("SHA256sum: "), "{index}");

    // two packages of O that differ in their version only: cas diff goes
    // down into the .deb (ar), its control.tar.xz (xz, tar) and the control file
    ctx.write(
        "elements/o.yaml",
        format!("{o}variables:\n  package-version: 1.3\ndescription: the optional library\n"),
    );
    ctx.cas(["build", "o.yaml"]).ok();
    ctx.cas(["checkout", "--format", "deb", "o.yaml", "../o13"])
        .ok();
    let o12 = files.iter().find(|f| f.contains("cas-o_")).unwrap();
    for (dir, deb) in [
        ("files/debs-a", std::path::PathBuf::from(o12)),
        (
            "files/debs-b",
            std::fs::read_dir(ctx.path("o13"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        ),
    ] {
        let bytes = std::fs::read(&deb).unwrap_or_else(|e| panic!("{}: {e}", deb.display()));
        ctx.write(format!("{dir}/o.deb"), bytes);
    }
    ctx.write(
        "elements/debs-a.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/debs-a\n",
    );
    ctx.write(
        "elements/debs-b.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/debs-b\n",
    );
    ctx.cas(["build", "debs-a.yaml", "debs-b.yaml"]).ok();
    let d = ctx
        .cas(["diff", "debs-a.yaml", "debs-b.yaml"])
        .expect_code(1);
    assert!(d.stdout.contains("xz content differs"), "{}", d.stdout);
    assert!(
        d.stdout.contains("-Version: 1.2-1") && d.stdout.contains("+Version: 1.3"),
        "{}",
        d.stdout
    );

    // a version that is not one is refused before anything is written
    ctx.write(
        "elements/o.yaml",
        format!("{o}variables:\n  package-version: v1\n"),
    );
    ctx.cas(["build", "o.yaml"]).ok();
    let run = ctx
        .cas(["checkout", "--format", "deb", "o.yaml", "../bad"])
        .expect_code(1);
    assert!(
        run.stderr.contains("is not a package version"),
        "{}",
        run.stderr
    );
}

#[test]
fn diff_of_two_rootfs_builds_lists_the_packages_that_changed_above_the_files() {
    let ctx = project();
    ctx.write("elements/a.yaml", a_element(true));
    ctx.write("elements/rootfs.yaml", rootfs(true));
    let key = |run: &crate::ctx::Run| {
        libraries(&run.json(), "rootfs.yaml", "key")
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = key(&ctx.cas(["--json", "build", "rootfs.yaml"]).ok());
    ctx.write("elements/a.yaml", a_element(false));
    ctx.write("elements/rootfs.yaml", rootfs(false));
    let after = key(&ctx.cas(["--json", "build", "rootfs.yaml"]).ok());

    let run = ctx.cas(["--json", "diff", &before, &after]).expect_code(1);
    let doc = run.json();
    let p = &doc["packages"];
    assert_eq!(p["removed"][0]["name"], "o.yaml", "{p}");
    assert_eq!(p["removed"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["added"].as_array().unwrap().len(), 0, "{p}");
    assert_eq!(p["changed"][0]["name"], "a.yaml", "{p}");
    assert_eq!(p["changed"][0]["same_output"], false, "{p}");
    assert_eq!(p["unchanged"], 0);
    let changes: Vec<(String, String)> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("usr/lib/libo.so".into(), "removed".into())),
        "{changes:?}"
    );

    // the same as text: the package list first, then the files; the
    // current rootfs is named by its element
    let run = ctx.cas(["diff", &before, "rootfs.yaml"]).expect_code(1);
    assert!(
        run.stdout
            .starts_with("packages: 0 added, 1 removed, 1 changed, 0 unchanged\n- o.yaml  "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("~ a.yaml  "), "{}", run.stdout);

    // ownership comes from the record made with the result
    let run = ctx.cas(["owns", "/usr/bin/a", "--in", "rootfs.yaml"]).ok();
    assert!(
        run.stdout.starts_with("/usr/bin/a  a.yaml"),
        "{}",
        run.stdout
    );
}

/// `owns` through the tree's own links (#29): the loader's path of libc,
/// `/lib/...` through `/lib -> usr/lib`, or `/lib64 -> /usr/lib`.
#[test]
fn owns_resolves_a_path_through_the_trees_own_symlinks_and_says_which() {
    let ctx = crate::ctx::busybox_project();
    ctx.write("files/libc/usr/lib/x86_64-linux-gnu/libc.so.6", "libc\n");
    std::os::unix::fs::symlink("usr/lib", ctx.project().join("files/libc/lib")).unwrap();
    std::os::unix::fs::symlink("/usr/lib", ctx.project().join("files/libc/lib64")).unwrap();
    ctx.write(
        "elements/libc.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/libc\n",
    );
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [base.yaml, libc.yaml]\n",
    );
    ctx.cas(["build", "rootfs.yaml"]).ok();
    let run = ctx
        .cas([
            "owns",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "--in",
            "rootfs.yaml",
        ])
        .ok();
    assert!(run.stdout.contains("libc.yaml"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("as /usr/lib/x86_64-linux-gnu/libc.so.6, through /lib -> usr/lib"),
        "{}",
        run.stdout
    );
    let run = ctx
        .cas([
            "--json",
            "owns",
            "/lib64/x86_64-linux-gnu/libc.so.6",
            "--in",
            "rootfs.yaml",
        ])
        .ok();
    let row = &run.json()["paths"][0];
    assert_eq!(row["element"], "libc.yaml");
    assert_eq!(row["resolved"], "/usr/lib/x86_64-linux-gnu/libc.so.6");
    assert_eq!(row["links"][0], "/lib64 -> /usr/lib");
    // a path that is nowhere, even through links, is still an error
    ctx.cas(["owns", "/lib/nothing", "--in", "rootfs.yaml"])
        .expect_code(1);
}

/// `cas why-depends A B` (#32): every path, each edge named.
#[test]
fn why_depends_lists_every_path_with_its_edges() {
    let ctx = crate::ctx::busybox_project();
    let el = |name: &str, body: &str| ctx.write(format!("elements/{name}"), body);
    el("lib.yaml", "kind: stack\n");
    el("tool.yaml", "kind: stack\ndepends: [lib.yaml]\n");
    el(
        "app.yaml",
        "kind: stack\nbuild-depends: [tool.yaml]\nruntime-depends: [lib.yaml]\n",
    );
    el("other.yaml", "kind: stack\n");
    let run = ctx.cas(["why-depends", "app.yaml", "lib.yaml"]).ok();
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "app.yaml -build-> tool.yaml -depends-> lib.yaml",
            "app.yaml -runtime-> lib.yaml"
        ]
    );
    let run = ctx
        .cas(["--json", "why-depends", "app.yaml", "lib.yaml"])
        .ok();
    assert_eq!(run.json()["paths"].as_array().unwrap().len(), 2);
    let run = ctx
        .cas(["why-depends", "app.yaml", "other.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("does not depend on other.yaml"),
        "{}",
        run.stderr
    );
}

/// `cas show --deps build|run|all|none` (#32).
#[test]
fn show_deps_selects_the_build_or_the_runtime_closure() {
    let ctx = crate::ctx::busybox_project();
    let el = |name: &str, body: &str| ctx.write(format!("elements/{name}"), body);
    el("lib.yaml", "kind: stack\n");
    el("rt.yaml", "kind: stack\n");
    el("tool.yaml", "kind: stack\ndepends: [lib.yaml]\n");
    el(
        "app.yaml",
        "kind: stack\nbuild-depends: [tool.yaml]\nruntime-depends: [rt.yaml]\n",
    );
    let names = |deps: &str| {
        let run = ctx.cas(["--json", "show", "--deps", deps, "app.yaml"]).ok();
        let mut v: Vec<String> = run.json()["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("none"), ["app.yaml"]);
    assert_eq!(names("run"), ["app.yaml", "rt.yaml"]);
    assert_eq!(names("build"), ["app.yaml", "lib.yaml", "tool.yaml"]);
    assert_eq!(
        names("all"),
        ["app.yaml", "lib.yaml", "rt.yaml", "tool.yaml"]
    );
}

/// `cas show --size` (#32): each output's size and its runtime closure's.
#[test]
fn show_size_gives_output_and_runtime_closure_sizes() {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "elements/lib.yaml",
        crate::ctx::manual(&[], "    - mkdir -p %{install-root}/l\n    - head -c 3000 /dev/zero > %{install-root}/l/f\n"),
    );
    ctx.write(
        "elements/app.yaml",
        format!(
            "{}runtime-depends: [lib.yaml]\n",
            crate::ctx::manual(&[], "    - mkdir -p %{install-root}/a\n    - head -c 1000 /dev/zero > %{install-root}/a/f\n")
        ),
    );
    ctx.cas(["build", "app.yaml", "lib.yaml"]).ok();
    let run = ctx.cas(["--json", "show", "--size", "app.yaml"]).ok();
    let json = run.json();
    let row = |name: &str| {
        json["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(row("app.yaml")["size"], "1000", "{}", run.stdout);
    assert_eq!(row("app.yaml")["closure-size"], "4000", "{}", run.stdout);
    let text = ctx.cas(["show", "--size", "app.yaml"]).ok();
    assert!(text.stdout.contains("3.9 KiB"), "{}", text.stdout);
}

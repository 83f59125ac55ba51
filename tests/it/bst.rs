//! BuildStream 2 projects, loaded and built as they are (spec/format.md,
//! "From BuildStream"): project.conf, .bst elements, options with `-o`,
//! `(?)` conditionals, `(@)` includes, dictionary dependencies, the
//! standard kinds with BuildStream's variables, filter, compose by domain,
//! tar `ref` with `base-dir: '*'`, BuildStream's overlap rule, and the
//! errors a BuildStream user meets, all at once.

use std::path::Path;
use std::process::Command;

use crate::ctx::Ctx;
use crate::sources::{sh, sha256, tarball, zip_of};

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// A BuildStream project (`name: demo`, elements in `elements/`) whose
/// `base.bst` imports a busybox sysroot.
fn bst_project(extra_conf: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.write(
        "project.conf",
        format!("name: demo\nmin-version: 2.0\nelement-path: elements\n{extra_conf}"),
    );
    ctx.busybox_tree("files/base");
    ctx.write(
        "elements/base.bst",
        "kind: import\nsources:\n- kind: local\n  path: files/base\n",
    );
    ctx
}

/// The elements of `cas --json show TARGET OPTS...`.
fn show(ctx: &Ctx, target: &str, opts: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["--json", "show", target];
    args.extend_from_slice(opts);
    ctx.cas(args).ok().json()["elements"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn key_of(ctx: &Ctx, target: &str, name: &str, opts: &[&str]) -> String {
    let elements = show(ctx, target, opts);
    let e = elements
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the closure of {target}"));
    e["key"].as_str().unwrap_or_default().to_string()
}

fn names(ctx: &Ctx, target: &str, opts: &[&str]) -> Vec<String> {
    show(ctx, target, opts)
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn options_conditionals_includes_and_dictionary_dependencies_shape_the_graph_and_the_build() {
    let ctx = bst_project(
        "options:\n\
         \x20 flavor:\n    type: enum\n    description: the greeting\n    values: [normal, excited]\n    default: normal\n\
         \x20 debug:\n    type: bool\n    description: with the extra tool\n    default: False\n    variable: debug-flag\n\
         elements:\n  manual:\n    variables:\n      greeting-prefix: says\n\
         (?):\n- flavor == \"excited\":\n    variables:\n      punctuation: \"!\"\n\
         variables:\n  punctuation: .\n",
    );
    ctx.write(
        "include/greeting.yml",
        "(?):\n- flavor == 'normal':\n    greeting: hello\n- flavor == 'excited':\n    greeting: HELLO\n",
    );
    ctx.write("files/src/sub/msg.txt", "from the subdir\n");
    ctx.write(
        "elements/extra.bst",
        "kind: manual\ndepends:\n- filename: base.bst\n  type: build\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}/extra && echo extra > %{install-root}/extra/x\n",
    );
    ctx.write(
        "elements/hello.bst",
        "kind: manual\n\
         depends:\n- filename: base.bst\n  type: build\n  strict: true\n\
         (?):\n- debug:\n    depends:\n      (>):\n      - extra.bst\n\
         sources:\n- kind: local\n  path: files/src\n\
         variables:\n  (@): include/greeting.yml\n  command-subdir: sub\n\
         config:\n  install-commands:\n\
         \x20 - mkdir -p %{install-root}%{datadir}\n\
         \x20 - cat msg.txt > %{install-root}%{datadir}/hello.txt\n\
         \x20 - echo \"%{greeting-prefix} %{greeting}%{punctuation} debug=%{debug-flag}\" >> %{install-root}%{datadir}/hello.txt\n",
    );
    // the graph follows the options
    assert_eq!(
        names(&ctx, "elements/hello.bst", &[]),
        ["base.bst", "hello.bst"]
    );
    assert_eq!(
        names(&ctx, "elements/hello.bst", &["-o", "debug", "True"]),
        ["base.bst", "extra.bst", "hello.bst"]
    );
    // and so do the keys (known once the base is built)
    ctx.cas(["build", "elements/base.bst"]).ok();
    let normal = key_of(&ctx, "elements/hello.bst", "hello.bst", &[]);
    let excited = key_of(
        &ctx,
        "elements/hello.bst",
        "hello.bst",
        &["-o", "flavor", "excited"],
    );
    assert_ne!(normal, excited);
    assert_eq!(
        normal,
        key_of(
            &ctx,
            "elements/hello.bst",
            "hello.bst",
            &["-o", "flavor", "normal"]
        )
    );

    // build: command-subdir is the working directory; the include, the
    // conditionals and the project's `elements:` defaults all reached the command
    ctx.cas(["build", "elements/hello.bst", "-o", "flavor", "excited"])
        .ok();
    let out = ctx.path("out");
    ctx.cas([
        "checkout",
        "elements/hello.bst",
        out.to_str().unwrap(),
        "-o",
        "flavor",
        "excited",
    ])
    .ok();
    assert_eq!(
        read(out.join("usr/share/hello.txt")),
        "from the subdir\nsays HELLO! debug=0\n"
    );
    // the user configuration sets options by project name; `-o` wins
    let cfg = ctx.path("config.yaml");
    std::fs::write(
        &cfg,
        "projects:\n  demo:\n    options:\n      flavor: excited\n",
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    assert_eq!(
        excited,
        key_of(
            &ctx,
            "elements/hello.bst",
            "hello.bst",
            &["--config", cfg_s]
        )
    );
    assert_eq!(
        normal,
        key_of(
            &ctx,
            "elements/hello.bst",
            "hello.bst",
            &["--config", cfg_s, "-o", "flavor", "normal"]
        )
    );
    // a no-op build remembers what the configuration said; a change to it
    // is a change of the load
    let built = |args: &[&str]| {
        let mut all = vec!["--json", "--config", cfg_s, "build", "elements/hello.bst"];
        all.extend_from_slice(args);
        let run = ctx.cas(all).ok();
        (run.json()["built"].as_u64().unwrap(), run.stderr)
    };
    // (the memo is recorded once the files read are 2 s old: spec/cli.md)
    std::thread::sleep(std::time::Duration::from_millis(2300));
    assert_eq!(built(&[]).0, 0, "the excited hello is built already");
    let (n, stderr) = built(&[]);
    assert!(
        n == 0 && stderr.contains("nothing read by the load changed"),
        "{stderr}"
    );
    std::fs::write(
        &cfg,
        "projects:\n  demo:\n    options:\n      flavor: normal\n",
    )
    .unwrap();
    let (n, stderr) = built(&[]);
    assert!(
        n == 1 && !stderr.contains("nothing read by the load changed"),
        "{stderr}"
    );
    // a value the option does not allow, an option the project lacks
    let bad = ctx
        .cas(["show", "elements/hello.bst", "-o", "flavor", "grumpy"])
        .expect_code(2);
    assert!(
        bad.stderr
            .contains("`grumpy` is not one of: normal, excited"),
        "{}",
        bad.stderr
    );
    let bad = ctx
        .cas(["show", "elements/hello.bst", "-o", "colour", "red"])
        .expect_code(2);
    assert!(
        bad.stderr.contains("has no option `colour`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn filter_and_compose_by_buildstream_domains() {
    let ctx = bst_project("");
    ctx.write(
        "elements/libhello.bst",
        "kind: manual\ndepends:\n- base.bst\nconfig:\n  install-commands:\n\
         \x20 - mkdir -p %{install-root}%{libdir} %{install-root}%{includedir} %{install-root}%{datadir}/libhello %{install-root}%{bindir}\n\
         \x20 - echo so > %{install-root}%{libdir}/libhello.so\n\
         \x20 - echo h > %{install-root}%{includedir}/hello.h\n\
         \x20 - echo person > %{install-root}%{datadir}/libhello/default-person.txt\n\
         \x20 - echo bin > %{install-root}%{bindir}/hello\n\
         public:\n  bst:\n    split-rules:\n      defaults:\n      - \"%{datadir}/libhello/default-person.txt\"\n\
         \x20   integration-commands:\n    - echo integrated > /etc/hello.done\n",
    );
    ctx.write(
        "elements/filtered.bst",
        "kind: filter\nbuild-depends:\n- libhello.bst\nruntime-depends:\n- base.bst\nconfig:\n  exclude:\n  - defaults\n  include-orphans: True\n",
    );
    ctx.write(
        "elements/runtime-only.bst",
        "kind: compose\nbuild-depends:\n- libhello.bst\nconfig:\n  include:\n  - runtime\n  include-orphans: False\n  integrate: True\n",
    );
    ctx.cas([
        "build",
        "elements/filtered.bst",
        "elements/runtime-only.bst",
    ])
    .ok();
    let f = ctx.path("filtered");
    ctx.cas(["checkout", "elements/filtered.bst", f.to_str().unwrap()])
        .ok();
    assert!(f.join("usr/lib/libhello.so").is_file());
    assert!(f.join("usr/include/hello.h").is_file());
    assert!(
        !f.join("usr/share/libhello/default-person.txt").exists(),
        "domain `defaults` not excluded"
    );
    assert!(
        !f.join("bin/busybox").exists(),
        "a filter outputs its one dependency only"
    );
    let c = ctx.path("composed");
    ctx.cas(["checkout", "elements/runtime-only.bst", c.to_str().unwrap()])
        .ok();
    assert!(c.join("usr/lib/libhello.so").is_file() && c.join("usr/bin/hello").is_file());
    assert!(
        !c.join("usr/include/hello.h").exists(),
        "devel is not runtime"
    );
    assert!(
        !c.join("usr/share/libhello").exists(),
        "orphans are dropped"
    );
    // BuildStream's order: integration ran over everything staged (the base's
    // shell included, which is not kept), and what it wrote is kept
    assert_eq!(read(c.join("etc/hello.done")), "integrated\n");
    assert!(
        !c.join("bin/busybox").exists(),
        "the base is not in the runtime domain"
    );
    // a domain the filtered element does not have
    ctx.write(
        "elements/bad-filter.bst",
        "kind: filter\nbuild-depends:\n- libhello.bst\nconfig:\n  include:\n  - nosuch\n",
    );
    let bad = ctx.cas(["show", "elements/bad-filter.bst"]).expect_code(2);
    assert!(
        bad.stderr.contains("has no split-rule domain `nosuch`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn tar_ref_with_base_dir_star_and_overlaps_as_buildstream_allows_them() {
    let ctx = bst_project("");
    // a release tarball: one top directory
    let data = tarball(
        &ctx,
        "hello-1.0.tar.gz",
        "hello-1.0",
        &[("doc/README", "readme\n")],
        "z",
    );
    std::fs::create_dir_all(ctx.path("dist")).unwrap();
    std::fs::write(ctx.path("dist/hello-1.0.tar.gz"), &data).unwrap();
    let sha = sha256(&data, ctx.root());
    // the alias points nowhere; the project's mirror has the file; the
    // ref is kept in project.refs
    let conf = format!(
        "name: demo\nmin-version: 2.0\nelement-path: elements\nref-storage: project.refs\n\
         aliases:\n  dist: file://{}/\n\
         mirrors:\n- name: local\n  aliases:\n    dist:\n    - file://{}/\n",
        ctx.path("nowhere").display(),
        ctx.path("dist").display()
    );
    ctx.write("project.conf", &conf);
    ctx.write(
        "project.refs",
        format!("projects:\n  demo:\n    hello.bst:\n    - ref: {sha}\n"),
    );
    ctx.write(
        "elements/hello.bst",
        "kind: import\nsources:\n- kind: tar\n  url: dist:hello-1.0.tar.gz\nconfig:\n  target: /usr/share\n",
    );
    ctx.write(
        "elements/other.bst",
        "kind: manual\ndepends:\n- base.bst\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}/usr/share/doc && echo other > %{install-root}/usr/share/doc/README\n",
    );
    ctx.write(
        "elements/both.bst",
        "kind: compose\nbuild-depends:\n- hello.bst\n- other.bst\n",
    );
    ctx.cas(["build", "elements/both.bst"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "elements/both.bst", out.to_str().unwrap()])
        .ok();
    // base-dir '*' took the top directory (fetched from the project's mirror,
    // checked against the ref of project.refs); the later element won the overlap
    assert_eq!(read(out.join("usr/share/doc/README")), "other\n");
    // cas does not edit BuildStream elements' refs
    let run = ctx
        .cas(["source", "track", "elements/hello.bst"])
        .expect_code(2);
    assert!(
        run.stderr.contains("does not edit BuildStream elements"),
        "{}",
        run.stderr
    );
    // a zip source (BuildStream's kind), staged under its directory
    let zip = zip_of(&[("fonts/", "", 0o755), ("fonts/a.otf", "otf\n", 0o644)]);
    std::fs::write(ctx.path("dist/fonts.zip"), &zip).unwrap();
    ctx.write(
        "elements/fonts.bst",
        format!(
            "kind: import\nsources:\n- kind: zip\n  url: dist:fonts.zip\n  ref: {}\n  base-dir: ''\n  directory: sans\n",
            sha256(&zip, ctx.root())
        ),
    );
    ctx.cas(["build", "elements/fonts.bst"]).ok();
    let f = ctx.path("fonts-out");
    ctx.cas(["checkout", "elements/fonts.bst", f.to_str().unwrap()])
        .ok();
    assert_eq!(read(f.join("sans/fonts/a.otf")), "otf\n");
    // a base-dir glob that matches no directory of the archive
    ctx.write(
        "elements/nomatch.bst",
        "kind: import\nsources:\n- kind: tar\n  url: dist:hello-1.0.tar.gz\n  base-dir: 'release-*'\n",
    );
    ctx.write(
        "project.refs",
        format!("projects:\n  demo:\n    hello.bst:\n    - ref: {sha}\n    nomatch.bst:\n    - ref: {sha}\n"),
    );
    let run = ctx.cas(["build", "elements/nomatch.bst"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no directory of the archive matches base-dir `release-*`"),
        "{}",
        run.stderr
    );
    // with `fatal-warnings: [overlaps]`, the same overlap is an error
    ctx.write(
        "project.conf",
        format!("{conf}fatal-warnings:\n- overlaps\n"),
    );
    let run = ctx.cas(["build", "elements/both.bst"]);
    assert_ne!(
        run.code, 0,
        "an overlap must fail under fatal-warnings: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("usr/share/doc/README"),
        "{}",
        run.stderr
    );
}

#[test]
fn every_error_of_a_buildstream_project_at_once_in_plain_words() {
    let ctx = bst_project(
        "plugins:\n- origin: pip\n  package-name: bst-plugins-experimental\n  elements:\n  - flatpak_image\n  sources:\n  - cargo2\n",
    );
    ctx.write(
        "elements/a.bst",
        "kind: flatpak_image\ndepends:\n- base.bst\n",
    );
    ctx.write(
        "elements/b.bst",
        "kind: flatpak_image\ndepends:\n- base.bst\n",
    );
    ctx.write(
        "elements/c.bst",
        "kind: import\nsources:\n- kind: tar\n  url: https://example.invalid/x.tar.gz\n- kind: ostree\n  url: https://example.invalid/repo\n  ref: 0000000000000000000000000000000000000000000000000000000000000000\n- kind: pip\n  packages: [requests]\n  ref: requests==2.31.0\n",
    );
    ctx.write(
        "elements/d.bst",
        "kind: manual\n(?):\n- nosuchoption == 'x':\n    variables: {a: b}\ndepends:\n- filename: base.bst\n  type: sideways\n",
    );
    ctx.write(
        "elements/all.bst",
        "kind: stack\ndepends:\n- a.bst\n- b.bst\n- c.bst\n- d.bst\n",
    );
    let run = ctx.cas(["show", "elements/all.bst"]).expect_code(2);
    let e = &run.stderr;
    // the kind of a plugin package cas knows nothing of: once, naming its origin
    assert_eq!(
        e.matches("kind `flatpak_image` comes from a plugin")
            .count(),
        1,
        "{e}"
    );
    assert!(e.contains("(origin: pip, package-name:"), "{e}");
    assert!(e.contains("this `tar` source has no `ref`"), "{e}");
    assert!(
        !e.contains("needs a checksum") && !e.contains("unknown source kind"),
        "said twice: {e}"
    );
    // sources of kinds cas cannot fetch: shown, never fetched or built
    ctx.write(
        "elements/c2.bst",
        "kind: import\nsources:\n- kind: ostree\n  url: https://example.invalid/repo\n  ref: 0000000000000000000000000000000000000000000000000000000000000000\n- kind: pip\n  packages: [requests]\n  ref: requests==2.31.0\n",
    );
    let run = ctx.cas(["show", "elements/c2.bst"]).ok();
    assert!(
        run.stderr
            .contains("`ostree` sources are not supported yet"),
        "{}",
        run.stderr
    );
    let run = ctx.cas(["fetch", "elements/c2.bst"]).expect_code(1);
    assert!(
        run.stderr
            .contains("their `ref` pins versions, not the files'"),
        "{}",
        run.stderr
    );
    let run = ctx.cas(["build", "elements/c2.bst"]).expect_code(1);
    assert!(
        run.stderr.contains("c2.bst: source 1 (`ostree`)"),
        "{}",
        run.stderr
    );
    let e = &ctx.cas(["show", "elements/all.bst"]).stderr;
    assert!(e.contains("no option `nosuchoption`"), "{e}");
    assert!(e.contains("`type: sideways`"), "{e}");
    assert!(e.contains("elements/d.bst:"), "{e}");
    // a source without its ref: shown (BuildStream's `no reference`), never built
    assert!(
        e.contains("c.bst: cannot be built: source 1 (`tar`): this `tar` source has no `ref`"),
        "{e}"
    );
    assert!(
        !e.contains("unknown key"),
        "BuildStream words are never unknown keys: {e}"
    );

    // the project file's own problems
    ctx.write(
        "project.conf",
        "name: demo\nmin-version: 2.99\nelement-path: elements\n",
    );
    let run = ctx.cas(["show", "elements/base.bst"]).expect_code(2);
    assert!(
        run.stderr.contains("this project needs BuildStream 2.99"),
        "{}",
        run.stderr
    );
    ctx.write(
        "project.conf",
        "name: demo\nformat-version: 12\nelement-path: elements\n",
    );
    let run = ctx.cas(["show", "elements/base.bst"]).expect_code(2);
    assert!(
        run.stderr.contains("BuildStream 1 projects are not"),
        "{}",
        run.stderr
    );
    ctx.write("project.conf", "name: demo\nelement-path: elements\n");
    let run = ctx.cas(["show", "elements/base.bst"]).expect_code(2);
    assert!(
        run.stderr.contains("project.conf has no `min-version`"),
        "{}",
        run.stderr
    );
    // an include cycle and a missing include, with their lines
    ctx.write(
        "project.conf",
        "name: demo\nmin-version: 2.0\nelement-path: elements\n",
    );
    ctx.write("inc/a.yml", "(@): inc/b.yml\nx: 1\n");
    ctx.write("inc/b.yml", "(@): inc/a.yml\n");
    ctx.write(
        "elements/e.bst",
        "kind: stack\nvariables:\n  (@): inc/a.yml\nconfig:\n  (@): [inc/missing.yml]\n",
    );
    let run = ctx.cas(["show", "elements/e.bst"]).expect_code(2);
    assert!(run.stderr.contains("include cycle"), "{}", run.stderr);
    assert!(run.stderr.contains("inc/b.yml:1:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("included file `inc/missing.yml` does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_junction_to_a_local_subproject_with_its_options_includes_and_a_link() {
    let ctx = bst_project(
        "options:\n  funky:\n    type: bool\n    description: blue subproject\n    default: False\n",
    );
    ctx.write(
        "sub/project.conf",
        "name: sub\nmin-version: 2.0\nelement-path: elements\n\
         options:\n  color:\n    type: enum\n    description: colour\n    values: [red, blue]\n    default: red\n",
    );
    ctx.write(
        "sub/include/paths.yml",
        "prefix: /usr\n(?):\n- color == \"blue\":\n    prefix: /opt\n",
    );
    ctx.write(
        "sub/elements/tool.bst",
        "kind: manual\nbuild-depends:\n- base.bst\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}/tool && echo tool > %{install-root}/tool/t\n",
    );
    // the subproject's own base (its names are its own)
    ctx.busybox_tree("sub/files/base");
    ctx.write(
        "sub/elements/base.bst",
        "kind: import\nsources:\n- kind: local\n  path: files/base\n",
    );
    ctx.write(
        "elements/sub.bst",
        "kind: junction\nsources:\n- kind: local\n  path: sub\nconfig:\n  options:\n    color: red\n    (?):\n    - funky:\n        color: blue\n",
    );
    // a link in the parent to a link in the subproject (whose target is
    // the subproject's own name)
    ctx.write(
        "sub/elements/tool-alias.bst",
        "kind: link\nconfig:\n  target: tool.bst\n",
    );
    ctx.write(
        "elements/tool-link.bst",
        "kind: link\nconfig:\n  target: sub.bst:tool-alias.bst\n",
    );
    ctx.write(
        "elements/app.bst",
        "kind: manual\n\
         build-depends:\n- base.bst\n- filename: base.bst\n  junction: sub.bst\n\
         depends:\n- tool-link.bst\n\
         variables:\n  (@): sub.bst:include/paths.yml\n\
         config:\n  install-commands:\n  - mkdir -p %{install-root}%{prefix} && test -f /tool/t && echo %{prefix} > %{install-root}%{prefix}/where\n",
    );
    let all = names(&ctx, "elements/app.bst", &[]);
    assert!(
        all.contains(&"sub.bst:tool.bst".to_string())
            && all.contains(&"sub.bst:base.bst".to_string()),
        "{all:?}"
    );
    ctx.cas(["build", "elements/app.bst"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "elements/app.bst", out.to_str().unwrap()])
        .ok();
    assert_eq!(read(out.join("usr/where")), "/usr\n");
    // the parent's option reaches the subproject through the junction's config
    ctx.cas(["build", "elements/app.bst", "-o", "funky", "True"])
        .ok();
    let out2 = ctx.path("out2");
    ctx.cas([
        "checkout",
        "elements/app.bst",
        out2.to_str().unwrap(),
        "-o",
        "funky",
        "True",
    ])
    .ok();
    assert_eq!(read(out2.join("opt/where")), "/opt\n");
    // a junction is not something to depend on; a missing subproject is named
    ctx.write(
        "elements/wrong.bst",
        "kind: stack\ndepends:\n- sub.bst\n- nosuch.bst:x.bst\n",
    );
    let run = ctx.cas(["show", "elements/wrong.bst"]).expect_code(2);
    assert!(
        run.stderr.contains("`sub.bst` is a junction"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("junction `nosuch.bst` not found"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_junction_to_a_released_subproject_is_fetched_by_build_and_named_by_show() {
    let ctx = bst_project("");
    // the subproject, released as a tarball (one top directory), and a patch
    // of ours on top of it
    let sub_files: &[(&str, &str)] = &[
        (
            "project.conf",
            "name: sub\nmin-version: 2.0\nelement-path: elements\n",
        ),
        (
            "elements/tool.bst",
            "kind: import\nsources:\n- kind: local\n  path: files/t\nconfig:\n  target: /tool\n",
        ),
        ("files/t", "upstream\n"),
    ];
    let data = tarball(&ctx, "sub-1.0.tar.gz", "sub-1.0", sub_files, "z");
    let tarball_path = ctx.path("dist/sub-1.0.tar.gz");
    std::fs::create_dir_all(ctx.path("dist")).unwrap();
    std::fs::write(&tarball_path, &data).unwrap();
    let sha = sha256(&data, ctx.root());
    // and the same project in a git repository, pinned by a `git describe` ref
    let repo = ctx.path("repo");
    for (p, c) in sub_files {
        let f = repo.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c.replace("upstream", "from git")).unwrap();
    }
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&repo)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@127.0.0.1",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
    ctx.write(
        "patches/ours.patch",
        "--- a/files/t\n+++ b/files/t\n@@ -1 +1 @@\n-upstream\n+patched\n",
    );
    ctx.write(
        "project.conf",
        format!(
            "name: demo\nmin-version: 2.0\nelement-path: elements\naliases:\n  dist: file://{}/\n",
            ctx.path("dist").display()
        ),
    );
    ctx.write(
        "elements/sub.bst",
        format!(
            "kind: junction\nsources:\n- kind: tar\n  url: dist:sub-1.0.tar.gz\n  ref: {sha}\n- kind: patch\n  path: patches/ours.patch\n"
        ),
    );
    ctx.write(
        "elements/subgit.bst",
        format!(
            "kind: junction\nsources:\n- kind: git_repo\n  url: file://{}\n  ref: v1.0-0-g{commit}\n  track: main\n",
            repo.display()
        ),
    );
    ctx.write(
        "elements/app.bst",
        "kind: manual\nbuild-depends:\n- base.bst\n- sub.bst:tool.bst\n- filename: tool.bst\n  junction: subgit.bst\n  config: {}\n\
         config:\n  install-commands:\n  - mkdir -p %{install-root} && cp /tool/t %{install-root}/from-tool\n",
    );
    // show may not fetch: it names the junction and the command, once
    let run = ctx.cas(["show", "elements/app.bst"]).expect_code(2);
    assert_eq!(
        run.stderr.matches("junction `sub.bst`").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("junction `subgit.bst`").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`cas fetch elements/"),
        "{}",
        run.stderr
    );
    // build fetches them, stages tar + patch and git once, and builds through
    // them (the git one is staged later, so its /tool/t wins: BuildStream's rule)
    ctx.cas(["build", "elements/app.bst"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "elements/app.bst", out.to_str().unwrap()])
        .ok();
    assert_eq!(read(out.join("from-tool")), "from git\n");
    let log = ctx.cas(["log", "elements/app.bst"]).ok().stdout;
    assert!(
        log.contains("tool/t"),
        "the replaced file is listed in the log: {log}"
    );
    // now show reads the staged subprojects without the network
    std::fs::remove_file(&tarball_path).unwrap();
    std::fs::remove_dir_all(&repo).unwrap();
    let names = names(&ctx, "elements/app.bst", &[]);
    assert!(
        names.contains(&"sub.bst:tool.bst".to_string())
            && names.contains(&"subgit.bst:tool.bst".to_string()),
        "{names:?}"
    );
    // the patched tarball's tool, checked on its own
    ctx.write(
        "elements/only-tar.bst",
        "kind: compose\nbuild-depends:\n- sub.bst:tool.bst\n",
    );
    ctx.cas(["build", "elements/only-tar.bst"]).ok();
    let out = ctx.path("out-tar");
    ctx.cas(["checkout", "elements/only-tar.bst", out.to_str().unwrap()])
        .ok();
    assert_eq!(read(out.join("tool/t")), "patched\n");
}

/// A real upstream release built by BuildStream's autotools kind with its
/// defaults (autogen check, BuildStream's configure arguments, make,
/// `make install DESTDIR`, libtool clean-up, strip), over a toolchain of
/// this machine's Debian packages, then run by a BuildStream script element
/// with dependency locations.
#[test]
fn gnu_hello_from_its_release_tarball_with_buildstreams_autotools_kind() {
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
    ctx.write(
        "project.conf",
        format!(
            "name: gnu\nmin-version: 2.0\nelement-path: elements\naliases:\n  debian: {mirror}\n\
             plugins:\n- origin: pip\n  package-name: buildstream-plugins\n  elements:\n  - autotools\n"
        ),
    );
    let tc = crate::toolchain::toolchain(crate::toolchain::Flavor::C);
    let dest = ctx.project().join("files/toolchain");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    sh(Command::new("cp").arg("-al").arg(&tc).arg(&dest));
    ctx.write(
        "elements/toolchain.bst",
        "kind: import\nsources:\n- kind: local\n  path: files/toolchain\n",
    );
    ctx.write(
        "elements/hello.bst",
        "kind: autotools\ndescription: GNU hello\n\
         depends:\n- filename: toolchain.bst\n  type: build\n\
         variables:\n  conf-local: --disable-nls\n\
         sources:\n- kind: tar\n  url: debian:pool/main/h/hello/hello_2.10.orig.tar.gz\n\
         \x20 ref: 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b\n",
    );
    ctx.write(
        "elements/run.bst",
        "kind: script\n\
         build-depends:\n- toolchain.bst\n- filename: hello.bst\n  config:\n    location: /opt/hello\n\
         config:\n  commands:\n  - mkdir -p %{install-root}\n  - /opt/hello/usr/bin/hello -g 'hello, BuildStream' > %{install-root}/out.txt\n",
    );
    cas(&["build", "elements/run.bst"]).ok();
    let out = ctx.path("out");
    cas(&["checkout", "elements/run.bst", out.to_str().unwrap()]).ok();
    assert_eq!(read(out.join("out.txt")), "hello, BuildStream\n");
    // BuildStream's configure arguments reached configure
    let log = cas(&["log", "elements/hello.bst"]).ok().stdout;
    assert!(
        log.contains("--sharedstatedir=/usr/com"),
        "BuildStream's conf-args: {log}"
    );
    assert!(log.contains("--disable-nls"), "conf-local: {log}");
}

#[test]
fn a_git_module_source_is_the_submodule_checked_out_at_its_path() {
    let ctx = bst_project("");
    let repo = |name: &str, files: &[(&str, &str)]| -> (std::path::PathBuf, String) {
        let dir = ctx.path(name);
        for (p, c) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
        let git = |args: &[&str]| {
            sh(Command::new("git")
                .current_dir(&dir)
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@127.0.0.1",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args))
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "one"]);
        let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
        (dir, commit)
    };
    let (list, list_commit) = repo("list", &[("public_suffix_list.dat", "com\n")]);
    let (main, _) = repo("main", &[("src/psl.c", "int main;\n")]);
    // the main repository records the submodule as a gitlink (checked out
    // as an empty directory), as real ones do
    let git_main = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&main)
            .args(["-c", "user.name=t", "-c", "user.email=t@127.0.0.1"])
            .args(args))
    };
    git_main(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{list_commit},list"),
    ]);
    git_main(&["commit", "-q", "-m", "submodule"]);
    let main_commit = git_main(&["rev-parse", "HEAD"]).trim().to_owned();
    ctx.write(
        "elements/psl.bst",
        format!(
            "kind: import\nsources:\n\
             - kind: git_repo\n  url: file://{}\n  ref: 0.23.3-0-g{main_commit}\n\
             - kind: git_module\n  path: list\n  url: file://{}\n  ref: {list_commit}\n",
            main.display(),
            list.display()
        ),
    );
    ctx.cas(["build", "elements/psl.bst"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "elements/psl.bst", out.to_str().unwrap()])
        .ok();
    assert_eq!(read(out.join("src/psl.c")), "int main;\n");
    assert_eq!(read(out.join("list/public_suffix_list.dat")), "com\n");
    // without `path` it says so
    ctx.write(
        "elements/bad.bst",
        format!(
            "kind: import\nsources:\n- kind: git_module\n  url: file://{}\n  ref: {list_commit}\n",
            list.display()
        ),
    );
    let run = ctx.cas(["show", "elements/bad.bst"]).expect_code(2);
    assert!(run.stderr.contains("needs `path`"), "{}", run.stderr);
}

#[test]
fn cargo_sources_vendor_crates_from_a_registry_for_cas_and_buildstream() {
    let ctx = bst_project("");
    // a crate registry: {name}/{name}-{version}.crate, each a gzipped tar of
    // one {name}-{version}/ directory
    let registry = ctx.path("registry");
    let mut pins = Vec::new();
    for (name, version) in [("adler2", "2.0.1"), ("aho-corasick", "1.1.3")] {
        let top = format!("{name}-{version}");
        let data = tarball(
            &ctx,
            &format!("{top}.crate"),
            &top,
            &[
                (
                    "Cargo.toml",
                    &format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n"),
                ),
                ("src/lib.rs", ""),
            ],
            "z",
        );
        let dir = registry.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{top}.crate")), &data).unwrap();
        pins.push((name, version, sha256(&data, ctx.root())));
    }
    // the crate list as YAML list items at `indent` spaces
    let list = |indent: usize, sha_key: &str, kind: bool| -> String {
        let pad = " ".repeat(indent);
        pins.iter()
            .map(|(n, v, s)| {
                let k = if kind {
                    format!("kind: registry\n{pad}  ")
                } else {
                    String::new()
                };
                format!("{pad}- {k}name: {n}\n{pad}  version: {v}\n{pad}  {sha_key}: {s}\n")
            })
            .collect()
    };
    // BuildStream's cargo2, its url from the project's `sources:` defaults
    ctx.write(
        "project.conf",
        format!(
            "name: demo\nmin-version: 2.0\nelement-path: elements\naliases:\n  crates: file://{}/\n\
             sources:\n  cargo2:\n    config:\n      url: \"crates:\"\n",
            registry.display()
        ),
    );
    ctx.write(
        "elements/vendored.bst",
        format!(
            "kind: import\nsources:\n- kind: cargo2\n  ref:\n{}",
            list(2, "sha", true)
        ),
    );
    ctx.cas(["build", "elements/vendored.bst"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "elements/vendored.bst", out.to_str().unwrap()])
        .ok();
    for (n, v, s) in &pins {
        let dir = out.join(format!(".vendored-crates/{n}-{v}"));
        assert!(dir.join("Cargo.toml").is_file(), "{n} vendored");
        assert_eq!(
            read(dir.join(".cargo-checksum.json")),
            format!("{{\"package\":\"{s}\",\"files\":{{}}}}")
        );
    }
    let config = read(out.join(".cargo/config.toml"));
    assert!(
        config.contains("replace-with = \"vendored-sources\"")
            && config.contains("directory = \".vendored-crates\""),
        "{config}"
    );

    // cas's own cargo source: the same crates, its own vendor directory
    let native = Ctx::new();
    native.write("project.yaml", "name: n\n");
    native.write(
        "crates.yaml",
        format!(
            "kind: import\nsources:\n  - kind: cargo\n    url: file://{}/\n    vendor-dir: third_party/vendor\n    crates:\n{}",
            registry.display(),
            list(6, "sha256", false)
        ),
    );
    native.cas(["build", "crates.yaml"]).ok();
    let out = native.path("out");
    native
        .cas(["checkout", "crates.yaml", out.to_str().unwrap()])
        .ok();
    assert!(out
        .join("third_party/vendor/adler2-2.0.1/Cargo.toml")
        .is_file());
    assert!(read(out.join(".cargo/config.toml")).contains("directory = \"third_party/vendor\""));

    // a crate file that is not the crate it is named, and a crate listed twice
    let (n, v, _) = &pins[0];
    let wrong = tarball(&ctx, "wrong.crate", "other-9.9", &[("Cargo.toml", "")], "z");
    std::fs::create_dir_all(registry.join("wrong")).unwrap();
    std::fs::write(registry.join("wrong/wrong-1.0.crate"), &wrong).unwrap();
    ctx.write(
        "elements/wrong.bst",
        format!(
            "kind: import\nsources:\n- kind: cargo2\n  ref:\n  - name: wrong\n    version: '1.0'\n    sha: {}\n",
            sha256(&wrong, ctx.root())
        ),
    );
    let run = ctx.cas(["build", "elements/wrong.bst"]).expect_code(1);
    assert!(
        run.stderr.contains("has no `wrong-1.0/` directory"),
        "{}",
        run.stderr
    );
    ctx.write(
        "elements/twice.bst",
        format!(
            "kind: import\nsources:\n- kind: cargo2\n  ref:\n{}{}",
            list(2, "sha", false),
            list(2, "sha", false)
                .lines()
                .take(3)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        ),
    );
    let run = ctx.cas(["build", "elements/twice.bst"]).expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("crate {n} {v} is listed twice")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_patch_queue_applies_its_directory_in_order_and_community_build_kinds_load() {
    let ctx = bst_project(
        "plugins:\n- origin: pip\n  package-name: bst-plugins-community\n  elements:\n  - pyproject\n  - makemaker\n  sources:\n  - patch_queue\n",
    );
    ctx.write("files/src/greeting.txt", "hello\n");
    // the second patch applies only over the first
    ctx.write(
        "patches/queue/0001-world.patch",
        "--- a/greeting.txt\n+++ b/greeting.txt\n@@ -1 +1 @@\n-hello\n+hello world\n",
    );
    ctx.write(
        "patches/queue/0002-bang.patch",
        "--- a/greeting.txt\n+++ b/greeting.txt\n@@ -1 +1 @@\n-hello world\n+hello world!\n",
    );
    ctx.write(
        "elements/greeting.bst",
        "kind: import\nsources:\n- kind: local\n  path: files/src\n- kind: patch_queue\n  path: patches/queue\n",
    );
    ctx.cas(["build", "elements/greeting.bst"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "elements/greeting.bst", out.to_str().unwrap()])
        .ok();
    assert_eq!(read(out.join("greeting.txt")), "hello world!\n");
    // a plugin's build kinds that are only data load with their commands
    ctx.write(
        "elements/py.bst",
        "kind: pyproject\ndepends:\n- base.bst\nvariables:\n  build-args-local: --skip-dependency-check\n",
    );
    let elements = show(&ctx, "elements/py.bst", &[]);
    let py = elements.iter().find(|e| e["name"] == "py.bst").unwrap();
    let phases = py["commands"].to_string();
    assert!(phases.contains("-mbuild --no-isolation --wheel --outdir /buildstream/demo/py.bst/dist --skip-dependency-check ."), "{phases}");
    // a missing queue directory is said at its path
    ctx.write(
        "elements/noqueue.bst",
        "kind: import\nsources:\n- kind: patch_queue\n  path: patches/nosuch\n",
    );
    let run = ctx.cas(["show", "elements/noqueue.bst"]).expect_code(2);
    assert!(
        run.stderr
            .contains("cannot read the directory `patches/nosuch`"),
        "{}",
        run.stderr
    );
}

/// BuildStream's `arch` option (#31): its default is the first value that
/// names this machine in any spelling (`x86-64` for `x86_64`), and a value
/// the machine lacks is an error only when `-o` does not choose one.
#[test]
fn an_arch_option_defaults_to_this_machine_in_buildstreams_spelling() {
    let ctx = Ctx::new();
    let host = match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "aarch64" => "aarch64",
        other => {
            println!("skipped: no BuildStream spelling checked for {other}");
            return;
        }
    };
    let other = if host == "x86-64" {
        "aarch64"
    } else {
        "x86-64"
    };
    ctx.write(
        "project.conf",
        format!(
            "name: a\nmin-version: 2.0\nelement-path: elements\noptions:\n  arch:\n    type: arch\n    description: the machine\n    values: [{other}, {host}]\n    variable: machine\n"
        ),
    );
    ctx.write(
        "elements/e.bst",
        "kind: manual\nconfig:\n  install-commands:\n  - echo %{machine}\n",
    );
    let run = ctx.cas(["show", "--json", "e.bst"]).ok();
    assert!(
        run.stdout.contains(&format!("echo {host}")),
        "{}",
        run.stdout
    );
    let run = ctx
        .cas(["-o", "arch", other, "show", "--json", "e.bst"])
        .ok();
    assert!(
        run.stdout.contains(&format!("echo {other}")),
        "{}",
        run.stdout
    );
    // a project without this machine: an error that says how to choose
    ctx.write(
        "project.conf",
        format!(
            "name: a\nmin-version: 2.0\nelement-path: elements\noptions:\n  arch:\n    type: arch\n    description: the machine\n    values: [{other}]\n    variable: machine\n"
        ),
    );
    let run = ctx.cas(["show", "e.bst"]).expect_code(2);
    assert!(run.stderr.contains("-o arch"), "{}", run.stderr);
    ctx.cas(["-o", "arch", other, "show", "e.bst"]).ok();
}

/// What gnome-build-meta does with freedesktop-sdk: project.conf includes a
/// file through a junction (which includes files of its own project), the
/// junction's config overrides elements of the subproject with the
/// parent's, a link stands for the junction, and kinds come from a plugin
/// junction cas has no kinds of: everything loads and shows as BuildStream
/// shows it; what cannot be built says why when built.
#[test]
fn a_project_over_a_junction_with_includes_overrides_links_and_plugin_kinds() {
    let ctx = bst_project(
        "(@):\n- sdk.bst:include/runtime.yml\nplugins:\n- origin: junction\n  junction: plugins.bst\n  elements:\n  - collect_manifest\n",
    );
    // the subproject
    ctx.write(
        "sdk/project.conf",
        "name: sdk\nmin-version: 2.0\nelement-path: elements\n",
    );
    ctx.write(
        "sdk/include/runtime.yml",
        "(@): include/arch.yml\nvariables:\n  runtime: sdk-runtime\n",
    );
    ctx.write(
        "sdk/include/arch.yml",
        "variables:\n  sdk-arch: from-the-sdk\n",
    );
    ctx.write("sdk/elements/glib.bst", "kind: stack\n");
    ctx.write(
        "sdk/elements/gtk.bst",
        "kind: stack\ndepends:\n- glib.bst\n",
    );
    ctx.write(
        "elements/sdk.bst",
        "kind: junction\nsources:\n- kind: local\n  path: sdk\nconfig:\n  overrides:\n    glib.bst: my-glib.bst\n",
    );
    ctx.write(
        "elements/sdk-link.bst",
        "kind: link\nconfig:\n  target: sdk.bst\n",
    );
    ctx.write(
        "elements/my-glib.bst",
        "kind: stack\ndepends:\n- base.bst\n",
    );
    ctx.write(
        "elements/app.bst",
        "kind: manual\ndepends:\n- sdk-link.bst:gtk.bst\nconfig:\n  build-commands:\n  - echo %{runtime} %{sdk-arch}\n",
    );
    ctx.write(
        "elements/manifest.bst",
        "kind: collect_manifest\nconfig:\n  path: /usr/manifest.json\ndepends:\n- app.bst\n",
    );
    let run = ctx
        .cas([
            "show",
            "-d",
            "none",
            "-f",
            "%{name}|%{kind}|%{deps}|%{config}",
            "elements/app.bst",
            "elements/manifest.bst",
            "sdk.bst:gtk.bst",
        ])
        .ok();
    let out = &run.stdout;
    // the include through the junction, and its own include
    assert!(out.contains("- echo sdk-runtime from-the-sdk"), "{out}");
    // the link is named through the junction it stands for
    assert!(out.contains("app.bst|manual|- sdk.bst:gtk.bst|"), "{out}");
    // the subproject's glib is the parent's
    assert!(
        out.contains("sdk.bst:gtk.bst|stack|- my-glib.bst|"),
        "{out}"
    );
    // the plugin's kind: its element loads with its own config
    assert!(
        out.contains("manifest.bst|collect_manifest|- app.bst|path: /usr/manifest.json"),
        "{out}"
    );
    assert!(
        run.stderr.contains("warning: manifest.bst: cannot be built: kind `collect_manifest` comes from a plugin (origin: junction, junction: plugins.bst)"),
        "{}",
        run.stderr
    );
    let run = ctx.cas(["build", "elements/manifest.bst"]).expect_code(1);
    assert!(
        run.stderr
            .contains("manifest.bst: kind `collect_manifest` comes from a plugin"),
        "{}",
        run.stderr
    );
    // a plain element of the same project builds
    ctx.cas(["build", "elements/my-glib.bst"]).ok();
}

//! Workspaces (spec/cli.md, "Workspaces"): an element's sources edited in
//! place, rebuilt incrementally by real make and gcc, with keys that follow
//! the files exactly.

use crate::ctx::Ctx;

const MAKEFILE: &str = "\
hello: a.o b.o c.o\n\t$(CC) -o $@ a.o b.o c.o\n\
%.o: %.c\n\t$(CC) -O1 -c $< -o $@\n\
install:\n\tmkdir -p $(DESTDIR)/usr/bin && cp hello $(DESTDIR)/usr/bin/hello\n";

fn project() -> Ctx {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: ws\nelement-path: elements\n");
    crate::ctx::toolchain_element(&ctx, crate::toolchain::Flavor::C);
    ctx.write("files/hello/Makefile", MAKEFILE);
    ctx.write("files/hello/a.c", "const char *greeting(void);\nint puts(const char *);\nint main(void) { puts(greeting()); return 0; }\n");
    ctx.write(
        "files/hello/b.c",
        "const char *name(void);\nconst char *greeting(void) { return name(); }\n",
    );
    ctx.write(
        "files/hello/c.c",
        "const char *name(void) { return \"hello\"; }\n",
    );
    // a patch, applied in the workspace too
    ctx.write(
        "files/hello.patch",
        "--- a/c.c\n+++ b/c.c\n@@ -1 +1 @@\n-const char *name(void) { return \"hello\"; }\n+const char *name(void) { return \"hello, patched\"; }\n",
    );
    ctx.write(
        "elements/hello.yaml",
        "kind: make\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/hello\n  - kind: patch\n    path: files/hello.patch\nvariables:\n  make-args: CC=cc\n",
    );
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [hello.yaml]\n",
    );
    ctx
}

fn row(run: &crate::ctx::Run, name: &str, field: &str) -> String {
    run.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {}", run.stdout))[field]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The compiler lines of hello's last build log.
fn compiled(ctx: &Ctx) -> Vec<String> {
    let log = ctx.cas(["log", "hello.yaml"]).ok().stdout;
    log.lines()
        .filter(|l| l.starts_with("cc ") && l.contains(" -c "))
        .map(|l| {
            l.split_whitespace()
                .find(|w| w.ends_with(".c"))
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn a_workspace_rebuilds_only_what_changed_and_keys_follow_its_files() {
    let ctx = project();
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    let from_sources = row(&run, "hello.yaml", "key");
    let rootfs_before = row(&run, "rootfs.yaml", "output");

    let run = ctx
        .cas(["--json", "workspace", "open", "hello.yaml", "../ws"])
        .ok();
    let ws = std::path::PathBuf::from(run.json()["path"].as_str().unwrap());
    assert!(
        std::fs::read_to_string(ws.join("c.c"))
            .unwrap()
            .contains("patched"),
        "the patch is applied in the workspace"
    );
    let list = ctx.cas(["workspace", "list"]).ok();
    assert!(list.stdout.contains("hello.yaml"), "{}", list.stdout);
    let show = ctx.cas(["show", "rootfs.yaml"]).ok();
    assert!(show.stdout.contains("(workspace "), "{}", show.stdout);

    // first build from the workspace: the same files, the same output; above it, cut off
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    let first = row(&run, "hello.yaml", "key");
    assert_ne!(first, from_sources, "the workspace's identity is its tree");
    assert_eq!(row(&run, "rootfs.yaml", "output"), rootfs_before);
    assert_eq!(row(&run, "rootfs.yaml", "status"), "cached", "early cutoff");
    assert_eq!(compiled(&ctx), ["a.c", "b.c", "c.c"]);

    // one file edited: a new key, and make recompiles that file only
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = std::fs::read_to_string(ws.join("b.c")).unwrap();
    std::fs::write(
        ws.join("b.c"),
        b.replace("return name();", "return name(); /* edited */"),
    )
    .unwrap();
    let explain = ctx.cas(["explain", "hello.yaml"]).ok();
    let said = format!("{}{}", explain.stdout, explain.stderr);
    assert!(
        said.contains("b.c") && !said.contains("a.c"),
        "explain names the edited file: {said}"
    );
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    let edited = row(&run, "hello.yaml", "key");
    assert_ne!(edited, first);
    assert_eq!(row(&run, "hello.yaml", "status"), "built");
    assert_eq!(
        compiled(&ctx),
        ["b.c"],
        "only the edited file is recompiled"
    );
    assert!(
        run.stderr
            .contains("1 file(s) changed since its last build"),
        "{}",
        run.stderr
    );

    // the edit reverted: the earlier result, cached
    std::fs::write(ws.join("b.c"), b).unwrap();
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    assert_eq!(row(&run, "hello.yaml", "key"), first);
    assert_eq!(row(&run, "hello.yaml", "status"), "cached");

    // a second open is refused; closing builds from the sources again
    let again = ctx
        .cas(["workspace", "open", "hello.yaml", "../ws2"])
        .expect_code(2);
    assert!(
        again.stderr.contains("already has a workspace"),
        "{}",
        again.stderr
    );
    ctx.cas(["workspace", "close", "hello.yaml"]).ok();
    let run = ctx.cas(["--json", "build", "rootfs.yaml"]).ok();
    assert_eq!(row(&run, "hello.yaml", "key"), from_sources);
    assert_eq!(row(&run, "hello.yaml", "status"), "cached");
    assert!(ws.is_dir(), "close keeps the directory unless --remove-dir");
}

#[test]
fn a_workspace_that_vanished_is_named_and_can_be_reset_or_closed() {
    let ctx = project();
    ctx.cas(["workspace", "open", "hello.yaml", "../ws"]).ok();
    std::fs::remove_dir_all(ctx.path("ws")).unwrap();
    let run = ctx.cas(["build", "hello.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("the workspace of hello.yaml is gone"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cas workspace close hello.yaml"),
        "{}",
        run.stderr
    );
    // reset stages the sources again
    ctx.cas(["workspace", "reset", "hello.yaml"]).ok();
    assert!(std::fs::read_to_string(ctx.path("ws/c.c"))
        .unwrap()
        .contains("patched"));
    ctx.cas(["build", "hello.yaml"]).ok();
    ctx.cas(["workspace", "close", "--remove-dir", "hello.yaml"])
        .ok();
    assert!(!ctx.path("ws").exists());
    let list = ctx.cas(["workspace", "list"]).ok();
    assert_eq!(list.stdout, "");
    let run = ctx.cas(["workspace", "close", "hello.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("has no open workspace"),
        "{}",
        run.stderr
    );
}

#[test]
fn results_built_from_a_workspace_are_pushed_only_by_cas_push() {
    let ctx = project();
    ctx.cas(["workspace", "open", "hello.yaml", "../ws"]).ok();
    let remote = ctx.path("shared");
    let url = format!("file://{}", remote.display());
    let run = ctx
        .cas([
            "--json",
            "build",
            "rootfs.yaml",
            "--remote",
            &url,
            "--push",
            "--trust-unsigned",
        ])
        .ok();
    let key = row(&run, "hello.yaml", "key");
    let tool = row(&run, "toolchain.yaml", "key");
    assert!(
        run.stderr
            .contains("hello.yaml: built from a workspace: not pushed"),
        "{}",
        run.stderr
    );
    let in_remote = |k: &str| remote.join("ac").join(k).exists();
    assert!(
        in_remote(&tool),
        "what was not built from a workspace is pushed"
    );
    assert!(!in_remote(&key), "the workspace's result is not");
    ctx.cas(["push", "hello.yaml", "--remote", &url, "--trust-unsigned"])
        .ok();
    assert!(in_remote(&key), "cas push pushes it when asked");
}

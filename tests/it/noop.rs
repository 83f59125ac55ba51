//! The no-op fast path of `cas build`: after a successful build, an
//! unchanged project is reported from the store's memo without loading it;
//! any change to what the load read takes the full path, with the keys a
//! fresh load gives (`cas show` never uses the memo).

use std::time::Duration;

use crate::ctx::{busybox_project, Ctx, Run};

/// A change made to the project.
type Change = Box<dyn Fn(&Ctx)>;

const FAST: &str = "nothing read by the load changed since the last build";

/// Files must be older than the settle time before a memo is recorded.
fn settle() {
    std::thread::sleep(Duration::from_millis(2300));
}

fn keys(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    k.sort();
    k
}

/// A build that is not the fast path, whose keys are those of a fresh load,
/// and which built exactly `built`.
#[track_caller]
fn full_build(ctx: &Ctx, built: &[&str]) -> Run {
    let run = ctx.cas(["--json", "build", "top.yaml"]).ok();
    assert!(
        !run.stderr.contains(FAST),
        "fast path after a change:\n{}",
        run.stderr
    );
    let v = run.json();
    let shown = ctx.cas(["--json", "show", "top.yaml"]).ok().json();
    assert_eq!(keys(&v), keys(&shown));
    let mut got: Vec<&str> = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "built")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, built, "{}", run.stderr);
    run
}

#[track_caller]
fn fast_build(ctx: &Ctx) -> Run {
    let run = ctx.cas(["--json", "build", "top.yaml"]).ok();
    assert!(run.stderr.contains(FAST), "no fast path:\n{}", run.stderr);
    let v = run.json();
    assert_eq!(v["built"], 0);
    let shown = ctx.cas(["--json", "show", "top.yaml"]).ok().json();
    assert_eq!(keys(&v), keys(&shown));
    run
}

fn project() -> Ctx {
    let ctx = busybox_project();
    ctx.write("files/src/data.txt", "one\n");
    ctx.write(
        "files/fix.patch",
        "--- a/data.txt\n+++ b/data.txt\n@@ -1 +1 @@\n-one\n+two\n",
    );
    ctx.write(
        "kinds/copy.yaml",
        "extends: manual\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}\n  - cp -r . %{install-root}/\n",
    );
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  word: hello\n",
    );
    ctx.write(
        "elements/src.yaml",
        "kind: copy\nbuild-depends: [base.yaml]\nsources:\n- kind: local\n  path: files/src\n- kind: patch\n  path: files/fix.patch\n",
    );
    ctx.write(
        "elements/top.yaml",
        "kind: manual\nbuild-depends: [base.yaml, src.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}\n  - echo %{word} > %{install-root}/word\n  - cat /data.txt > %{install-root}/data\n",
    );
    ctx
}

#[test]
fn an_unchanged_project_is_a_no_op_that_only_stats_and_every_change_is_seen() {
    let ctx = project();
    settle();
    full_build(&ctx, &["base.yaml", "src.yaml", "top.yaml"]);
    // A build that ran steps records nothing; the first no-op does.
    full_build(&ctx, &[]);
    let fast = fast_build(&ctx);
    // The same report as the full path: statuses, keys, outputs.
    let again = ctx.cas(["--json", "show", "top.yaml"]).ok();
    assert_eq!(fast.json()["cached"], 3, "{}", again.stdout);

    // Each kind of change is seen, and rebuilds exactly what it must.
    let changes: Vec<(&str, Change, Vec<&str>)> = vec![
        (
            "an element file",
            Box::new(|c: &Ctx| {
                c.write(
                    "elements/top.yaml",
                    "kind: manual\nbuild-depends: [base.yaml, src.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}\n  - echo %{word} > %{install-root}/word\n  - cat /data.txt > %{install-root}/data\n  - true\n",
                );
            }),
            vec!["top.yaml"],
        ),
        (
            "a project variable",
            Box::new(|c: &Ctx| {
                c.write(
                    "project.yaml",
                    "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  word: bye\n",
                );
            }),
            vec!["top.yaml"],
        ),
        (
            "a project kind",
            Box::new(|c: &Ctx| {
                c.write(
                    "kinds/copy.yaml",
                    "extends: manual\nconfig:\n  install-commands:\n  - mkdir -p %{install-root}\n  - cp -r . %{install-root}/\n  - true\n",
                );
            }),
            vec!["src.yaml"],
        ),
        (
            "a local source file",
            Box::new(|c: &Ctx| {
                c.write("files/src/data.txt", "one\n\n");
            }),
            vec!["src.yaml", "top.yaml"],
        ),
        (
            "a new file in a local source",
            Box::new(|c: &Ctx| {
                c.write("files/src/more/new.txt", "new\n");
            }),
            vec!["src.yaml", "top.yaml"],
        ),
        (
            "a patch",
            Box::new(|c: &Ctx| {
                c.write(
                    "files/fix.patch",
                    "--- a/data.txt\n+++ b/data.txt\n@@ -1 +1 @@\n-one\n+three\n",
                );
            }),
            vec!["src.yaml", "top.yaml"],
        ),
        (
            "a project file's bytes, its size the same",
            Box::new(|c: &Ctx| {
                c.write(
                    "project.yaml",
                    "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  word: BYE\n",
                );
            }),
            vec!["top.yaml"],
        ),
    ];
    for (what, change, built) in changes {
        change(&ctx);
        eprintln!("change: {what}");
        full_build(&ctx, &built);
        // Changed just now: not trusted yet, so not memoised yet.
        full_build(&ctx, &[]);
        full_build(&ctx, &[]);
        settle();
        full_build(&ctx, &[]);
        fast_build(&ctx);
    }

    // A file the load read, written again with the same bytes (touched, a
    // branch checked out again): its bytes are read again and compared, at
    // once; the memo takes its new identity once it is settled. A file of
    // a local source is not read again: touching one takes the full path.
    for file in ["elements/top.yaml", "project.yaml", "kinds/copy.yaml"] {
        let p = ctx.project().join(file);
        let text = std::fs::read(&p).unwrap();
        // a new file (a new inode), except in the kinds directory, which is
        // watched itself (a kind added or removed changes its identity)
        if !file.starts_with("kinds/") {
            std::fs::remove_file(&p).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        fast_build(&ctx);
    }
    settle();
    fast_build(&ctx);
    let p = ctx.project().join("files/src/data.txt");
    let text = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, text).unwrap();
    full_build(&ctx, &[]);

    // A result that is gone is never reported from the memo.
    ctx.cas(["store", "gc", "--max-size", "1"]).ok();
    full_build(&ctx, &["base.yaml", "src.yaml", "top.yaml"]);
}

/// An element file that is a symlink: the memo watches the file it leads
/// to (a change there, or the link led elsewhere, is seen), not the link.
#[test]
fn an_element_file_that_is_a_symlink_is_watched_where_it_leads() {
    let ctx = project();
    let top = |word: &str| {
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nconfig:\n  install-commands:\n  - mkdir -p %{{install-root}}\n  - echo {word} > %{{install-root}}/word\n"
        )
    };
    ctx.write("real/one.yaml", top("one"));
    ctx.write("real/two.yaml", top("owt"));
    let link = ctx.project().join("elements/top.yaml");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../real/one.yaml", &link).unwrap();
    settle();
    full_build(&ctx, &["base.yaml", "top.yaml"]);
    full_build(&ctx, &[]);
    fast_build(&ctx);
    // the file it leads to changes (same size); the link does not
    ctx.write("real/one.yaml", top("eno"));
    full_build(&ctx, &["top.yaml"]);
    settle();
    full_build(&ctx, &[]);
    fast_build(&ctx);
    // the link leads elsewhere
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../real/two.yaml", &link).unwrap();
    full_build(&ctx, &["top.yaml"]);
}

#[test]
fn a_result_that_verify_removes_is_never_reported_from_the_memo() {
    let ctx = project();
    settle();
    full_build(&ctx, &["base.yaml", "src.yaml", "top.yaml"]);
    full_build(&ctx, &[]);
    let fast = fast_build(&ctx).json();
    let top = fast["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "top.yaml")
        .unwrap()["output"]
        .as_str()
        .unwrap()
        .to_owned();
    // Damage the store by hand: top's output tree is gone. `verify --repair`
    // finds it and removes the result it breaks.
    let object = ctx.store().join("objects").join(&top[..2]).join(&top[2..]);
    std::fs::remove_file(&object).unwrap();
    let verify = ctx.cas(["store", "verify", "--repair"]);
    assert!(
        verify.stdout.contains(&top) || verify.stderr.contains(&top),
        "verify did not name the missing tree:\n{}{}",
        verify.stdout,
        verify.stderr
    );
    // The memo stood for that result: the next build looks again and
    // rebuilds it, with the same output.
    let run = full_build(&ctx, &["top.yaml"]).json();
    let again = run["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "top.yaml")
        .unwrap()["output"]
        .clone();
    assert_eq!(again, top.as_str());
}

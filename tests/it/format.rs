//! Black-box tests of the element format and its diagnostics (`cas show`, `cas graph`).

use crate::ctx::{Ctx, Run};

const PROJECT: &str =
    "name: demo\nelement-path: elements\naliases:\n  upstream: https://example.org/releases/\n";

fn project() -> Ctx {
    let ctx = Ctx::new();
    ctx.write("project.yaml", PROJECT);
    ctx
}

/// `cas show TARGET` must fail with exit 2, mention `msg` and the location `at`.
#[track_caller]
fn invalid(ctx: &Ctx, target: &str, msg: &str, at: &str) -> Run {
    let run = ctx.cas(["show", target]).expect_code(2);
    assert!(
        run.stderr.contains(msg),
        "expected {msg:?} in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(at),
        "expected location {at:?} in:\n{}",
        run.stderr
    );
    run
}

#[test]
fn broken_yaml_syntax() {
    let ctx = project();
    ctx.write("elements/hello.yaml", "kind: manual\ndepends: [a.yaml\n");
    invalid(
        &ctx,
        "elements/hello.yaml",
        "invalid YAML",
        "elements/hello.yaml:3:1",
    );
}

#[test]
fn tab_indentation() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nvariables:\n\tgreeting: hi\n",
    );
    invalid(
        &ctx,
        "elements/hello.yaml",
        "tab character in indentation",
        "elements/hello.yaml:3:1",
    );
}

#[test]
fn wrong_value_type() {
    let ctx = project();
    ctx.write("elements/hello.yaml", "kind: manual\nvariables: [a, b]\n");
    invalid(
        &ctx,
        "elements/hello.yaml",
        "`variables`: expected a mapping, found a list",
        "elements/hello.yaml:2:12",
    );
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nsandbox:\n  build-uid: 99999999999999999999\n",
    );
    invalid(
        &ctx,
        "elements/hello.yaml",
        "too large",
        "elements/hello.yaml:3:14",
    );
}

#[test]
fn unknown_key_with_suggestion() {
    let ctx = project();
    ctx.write("elements/hello.yaml", "kind: manual\nbuild-depend: []\n");
    invalid(
        &ctx,
        "elements/hello.yaml",
        "unknown key `build-depend`; did you mean `build-depends`?",
        "elements/hello.yaml:2:1",
    );
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nconfig:\n  biuld-commands: []\n",
    );
    invalid(
        &ctx,
        "elements/hello.yaml",
        "did you mean `build-commands`?",
        "elements/hello.yaml:3:3",
    );
}

#[test]
fn duplicate_key() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nvariables:\n  a: 1\n  a: 2\n",
    );
    invalid(
        &ctx,
        "elements/hello.yaml",
        "duplicate key `a`",
        "elements/hello.yaml:4:3",
    );
}

#[test]
fn missing_dependency() {
    let ctx = project();
    ctx.write("elements/base.yaml", "kind: stack\n");
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nbuild-depends:\n  - base.yaml\n  - bsae.yaml\n",
    );
    let run = invalid(
        &ctx,
        "elements/hello.yaml",
        "dependency `bsae.yaml` not found",
        "elements/hello.yaml:4:5",
    );
    assert!(
        run.stderr.contains("did you mean `base.yaml`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn dependency_cycle() {
    let ctx = project();
    ctx.write("elements/a.yaml", "kind: stack\ndepends: [b.yaml]\n");
    ctx.write(
        "elements/b.yaml",
        "kind: stack\nbuild-depends:\n  - c.yaml\n",
    );
    ctx.write(
        "elements/c.yaml",
        "kind: stack\nruntime-depends: [a.yaml]\n",
    );
    let run = invalid(
        &ctx,
        "elements/a.yaml",
        "dependency cycle: a.yaml → b.yaml → c.yaml → a.yaml",
        "elements/a.yaml:2:11",
    );
    assert!(run.stderr.contains("elements/b.yaml:3:5"), "{}", run.stderr);
    assert!(
        run.stderr.contains("elements/c.yaml:2:19"),
        "{}",
        run.stderr
    );
}

#[test]
fn undefined_variable() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nconfig:\n  build-commands:\n    - echo %{greting}\n",
    );
    invalid(
        &ctx,
        "elements/hello.yaml",
        "undefined variable `greting`",
        "elements/hello.yaml:4:12",
    );
}

#[test]
fn variable_cycle() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nvariables:\n  a: x%{b}\n  b: y%{a}\n",
    );
    let run = invalid(
        &ctx,
        "elements/hello.yaml",
        "variable cycle: %{a} → %{b} → %{a}",
        "elements/hello.yaml:4:7",
    );
    assert_eq!(
        run.stderr.matches("variable cycle").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn empty_file() {
    let ctx = project();
    ctx.write("elements/hello.yaml", "");
    invalid(
        &ctx,
        "elements/hello.yaml",
        "empty element file",
        "elements/hello.yaml:1:1",
    );
    ctx.write("elements/hello.yaml", "# nothing but a comment\n");
    invalid(
        &ctx,
        "elements/hello.yaml",
        "empty element file",
        "elements/hello.yaml:1:1",
    );
}

#[test]
fn non_utf8_file() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        b"kind: manual\ndescription: caf\xe9\n".as_slice(),
    );
    invalid(
        &ctx,
        "elements/hello.yaml",
        "not valid UTF-8",
        "elements/hello.yaml:2:17",
    );
}

#[test]
fn unknown_kind() {
    let ctx = project();
    ctx.write("elements/hello.yaml", "kind: autotool\n");
    let run = invalid(
        &ctx,
        "elements/hello.yaml",
        "unknown kind `autotool`",
        "elements/hello.yaml:1:7",
    );
    assert!(
        run.stderr.contains("did you mean `autotools`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn unknown_alias_and_missing_local_path() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        "kind: import\nsources:\n- kind: tar\n  url: upstrem:x.tar.gz\n  sha256: 0000000000000000000000000000000000000000000000000000000000000000\n- kind: local\n  path: files/nothere\n",
    );
    let run = invalid(
        &ctx,
        "elements/hello.yaml",
        "unknown alias `upstrem`",
        "elements/hello.yaml:4:8",
    );
    assert!(
        run.stderr.contains("elements/hello.yaml:7:9"),
        "{}",
        run.stderr
    );
}

#[test]
fn all_errors_across_files_are_reported() {
    let ctx = project();
    ctx.write(
        "elements/a.yaml",
        "kind: stack\ndepends: [b.yaml, c.yaml, d.yaml]\n",
    );
    ctx.write("elements/b.yaml", "kind: stakc\n");
    ctx.write("elements/c.yaml", "kind: manual\nvariabels: {}\n");
    ctx.write(
        "elements/d.yaml",
        "kind: manual\nconfig:\n  build-commands: [\"%{nope}\"]\n",
    );
    let run = ctx.cas(["show", "elements/a.yaml"]).expect_code(2);
    for want in [
        "elements/b.yaml:1:7",
        "elements/c.yaml:2:1",
        "elements/d.yaml:3:21",
        "3 problems found",
    ] {
        assert!(
            run.stderr.contains(want),
            "expected {want:?} in:\n{}",
            run.stderr
        );
    }
}

#[test]
fn target_by_name_and_missing_target() {
    let ctx = project();
    ctx.write("elements/base/busybox.yaml", "kind: stack\n");
    ctx.cas(["show", "base/busybox.yaml"]).ok();
    let run = ctx.cas(["show", "base/busybox.yml"]).expect_code(2);
    assert!(
        run.stderr.contains("no element `base/busybox.yml`"),
        "{}",
        run.stderr
    );
}

#[test]
fn implicit_project() {
    let ctx = Ctx::new();
    ctx.write(
        "hello.yaml",
        "kind: manual\nconfig:\n  install-commands: [\"echo %{project-name} %{element-name}\"]\n",
    );
    let run = ctx.cas(["show", "--json", "hello.yaml"]).ok();
    let j = run.json();
    assert_eq!(
        j["elements"][0]["commands"]["install-commands"][0],
        "echo project hello.yaml"
    );
}

#[test]
fn kind_defaults_and_phase_order() {
    let ctx = project();
    ctx.write("elements/z.yaml", "kind: autotools\n");
    ctx.write("elements/m.yaml", "kind: make\n");
    ctx.write("elements/c.yaml", "kind: cmake\n");
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends: [z.yaml, m.yaml, c.yaml]\n",
    );
    let run = ctx.cas(["show", "--json", "elements/all.yaml"]).ok();
    // phase order is kept in the JSON text
    let text = &run.stdout;
    let c = text.find("\"configure-commands\"").unwrap();
    let b = text.find("\"build-commands\"").unwrap();
    let i = text.find("\"install-commands\"").unwrap();
    assert!(c < b && b < i, "{text}");
    let j = run.json();
    let el = |name: &str| {
        j["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    let z = el("z.yaml");
    let conf = z["commands"]["configure-commands"][0].as_str().unwrap();
    assert!(
        conf.starts_with("./configure --prefix=/usr --exec-prefix=/usr --bindir=/usr/bin"),
        "{conf}"
    );
    assert!(conf.contains("--sysconfdir=/etc"), "{conf}");
    assert_eq!(z["commands"]["build-commands"][0], "make -j%{max-jobs}");
    assert_eq!(
        z["commands"]["install-commands"][0],
        "make -j1 DESTDIR=\"/install\" install"
    );
    let m = el("m.yaml");
    assert_eq!(
        m["commands"]["build-commands"][0],
        "make -j%{max-jobs} PREFIX=\"/usr\""
    );
    let c = el("c.yaml");
    assert!(c["commands"]["configure-commands"][0]
        .as_str()
        .unwrap()
        .contains("-DCMAKE_INSTALL_PREFIX=/usr"));
    assert_eq!(z["variables"]["install-root"], "/install");
    assert_eq!(z["variables"]["build-root"], "/build");
    assert_eq!(z["environment"]["LC_ALL"], "C");
    assert_eq!(z["environment"]["SOURCE_DATE_EPOCH"], "315532800");
    // order of the closure: dependencies first, ties by name
    let names: Vec<_> = j["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c.yaml", "m.yaml", "z.yaml", "all.yaml"]);
}

#[test]
fn variable_precedence_and_list_composition() {
    let ctx = Ctx::new();
    ctx.write(
        "project.yaml",
        "name: demo\nelement-path: elements\nkinds: kinds\nvariables:\n  prefix: /opt\n  who: project\nenvironment:\n  FOO: \"%{who}\"\n",
    );
    ctx.write(
        "kinds/mymake.yaml",
        "extends: make\nvariables:\n  who: kind\n  make-args: WHO=%{who}\nconfig:\n  build-commands:\n    (<): [\"echo before\"]\n",
    );
    ctx.write(
        "elements/a.yaml",
        "kind: mymake\nvariables:\n  who: element\nconfig:\n  build-commands:\n    (>): [\"echo after %{bindir}\", \"echo %%{literal}\"]\n  install-commands:\n    (=): [\"true\"]\n",
    );
    ctx.write("elements/b.yaml", "kind: mymake\n");
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends: [a.yaml, b.yaml]\n",
    );
    let j = ctx.cas(["show", "--json", "all.yaml"]).ok().json();
    let el = |name: &str| {
        j["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    let a = el("a.yaml");
    assert_eq!(a["kind"], "mymake");
    assert_eq!(
        a["commands"]["build-commands"],
        serde_json::json!([
            "echo before",
            "make -j%{max-jobs} WHO=element",
            "echo after /opt/bin",
            "echo %{literal}"
        ])
    );
    assert_eq!(
        a["commands"]["install-commands"],
        serde_json::json!(["true"])
    );
    assert_eq!(a["environment"]["FOO"], "element");
    let b = el("b.yaml");
    assert_eq!(
        b["commands"]["build-commands"][1],
        "make -j%{max-jobs} WHO=kind"
    );
    assert_eq!(b["variables"]["libdir"], "/opt/lib");
    assert_eq!(
        b["commands"]["install-commands"][0],
        "make -j1 PREFIX=\"/opt\" DESTDIR=\"/install\" install"
    );
}

#[test]
fn show_table_and_graph() {
    let ctx = project();
    ctx.write("elements/base.yaml", "kind: stack\n");
    ctx.write(
        "elements/lib.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nruntime-depends: [base.yaml]\n",
    );
    ctx.write("elements/app.yaml", "kind: manual\ndepends: [lib.yaml]\n");
    let run = ctx.cas(["show", "app.yaml"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("base.yaml  stack"), "{}", run.stdout);
    assert!(lines[2].starts_with("app.yaml   manual"), "{}", run.stdout);
    assert!(lines[2].contains("depends: lib.yaml"), "{}", run.stdout);
    let dot = ctx.cas(["graph", "app.yaml"]).ok().stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("\"lib.yaml\" -> \"base.yaml\" [style=dashed"),
        "{dot}"
    );
    assert!(
        dot.contains("\"lib.yaml\" -> \"base.yaml\" [style=dotted"),
        "{dot}"
    );
    assert!(
        dot.contains("\"app.yaml\" -> \"lib.yaml\" [style=solid"),
        "{dot}"
    );
}

#[test]
fn a_closed_stdout_ends_cas_quietly() {
    use std::io::Read;
    let ctx = crate::ctx::Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    let mut deps = String::new();
    for i in 0..300 {
        ctx.write(format!("elements/e{i}.yaml"), "kind: stack\n");
        deps.push_str(&format!("  - e{i}.yaml\n"));
    }
    ctx.write(
        "elements/all.yaml",
        format!("kind: stack\ndepends:\n{deps}"),
    );
    let (mut cmd, _) = ctx.command(["--json", "show", "all.yaml"]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read a little, then close the pipe, as `| head -c 100` does.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(status.code(), Some(101), "{stderr}");
}

#[test]
fn buildstream_directives_in_a_cas_project_are_named_not_taken_for_keys() {
    let ctx = project();
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nvariables:\n  (@): include/greeting.yml\n  (?):\n  - debug:\n      x: y\n",
    );
    let run = invalid(
        &ctx,
        "elements/hello.yaml",
        "`(@)` (includes) is read in BuildStream projects only",
        "elements/hello.yaml:3:3",
    );
    assert!(
        run.stderr.contains("`(?)` (conditionals)"),
        "{}",
        run.stderr
    );
}

#[test]
fn show_lists_what_loads_next_to_the_errors_of_the_rest() {
    let ctx = project();
    ctx.write("elements/a.yaml", "kind: stack\n");
    ctx.write(
        "elements/b.yaml",
        "kind: stack\ndepends: [a.yaml]\nvariabls: {}\n",
    );
    ctx.write(
        "elements/c.yaml",
        "kind: stack\ndepends: [a.yaml, b.yaml]\n",
    );
    let run = ctx.cas(["show", "elements/c.yaml"]).expect_code(2);
    assert!(
        run.stderr.contains("unknown key `variabls`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 element(s) not shown"),
        "{}",
        run.stderr
    );
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(rows.len(), 1, "{}", run.stdout);
    assert!(rows[0].starts_with("a.yaml"), "{}", run.stdout);
    // a build refuses the load
    let run = ctx.cas(["build", "elements/c.yaml"]).expect_code(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// A behaviour's checks of `config:` (crate cas-builder's kinds) are load
/// errors like the others: `show` says each once, with its place, and
/// leaves out the element and what depends on it, also when another
/// element of the load does not resolve at all.
#[test]
fn show_says_each_behaviour_error_once_and_leaves_the_element_out() {
    let ctx = project();
    ctx.write("elements/a.yaml", "kind: stack\n");
    ctx.write(
        "elements/bad-compose.yaml",
        "kind: compose\nbuild-depends: [a.yaml]\nconfig:\n  include: [nosuch]\n",
    );
    ctx.write(
        "elements/bad-script.yaml",
        "kind: script\nbuild-depends: [a.yaml]\nconfig:\n  layout:\n  - ~\n  - element: c.yaml\n    destination: /x\n",
    );
    ctx.write(
        "elements/good-script.yaml",
        "kind: script\nbuild-depends: [a.yaml]\nconfig:\n  layout:\n  - ~\n  - element: a.yaml\n    destination: /\n",
    );
    ctx.write("elements/c.yaml", "kind: stack\n");
    ctx.write(
        "elements/top.yaml",
        "kind: stack\ndepends: [bad-compose.yaml, bad-script.yaml, good-script.yaml]\n",
    );
    for broken in [false, true] {
        if broken {
            // an element that does not resolve: the checks still run
            ctx.write(
                "elements/other.yaml",
                "kind: stack\ndepends: [nosuch.yaml]\n",
            );
        }
        let mut args = vec!["show", "elements/top.yaml"];
        if broken {
            args.push("elements/other.yaml");
        }
        let run = ctx.cas(args).expect_code(2);
        for (message, at) in [
            (
                "unknown split-rule domain `nosuch`",
                "elements/bad-compose.yaml:4:13",
            ),
            (
                "layout: `c.yaml` is not a build dependency of this element",
                "elements/bad-script.yaml:6:5",
            ),
        ] {
            assert_eq!(
                run.stderr.matches(message).count(),
                1,
                "{message}:\n{}",
                run.stderr
            );
            assert!(run.stderr.contains(at), "{at}:\n{}", run.stderr);
        }
        let shown: Vec<&str> = run
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(
            shown.contains(&"a.yaml") && shown.contains(&"good-script.yaml"),
            "{}",
            run.stdout
        );
        for left in ["bad-compose.yaml", "bad-script.yaml", "top.yaml"] {
            assert!(!shown.contains(&left), "{left} shown:\n{}", run.stdout);
        }
    }
}

/// Every error of a file at once: an unknown kind is said beside the file's
/// other errors, not only once they are fixed.
#[test]
fn an_unknown_kind_is_said_with_the_files_other_errors() {
    let ctx = project();
    ctx.write("elements/a.yaml", "kind: mkae\nvariabls: {}\n");
    let run = invalid(
        &ctx,
        "elements/a.yaml",
        "unknown kind `mkae`",
        "elements/a.yaml:1:7",
    );
    assert!(
        run.stderr.contains("did you mean `make`?"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("unknown key `variabls`"),
        "{}",
        run.stderr
    );
    // said once when it is the file's only error
    ctx.write("elements/b.yaml", "kind: mkae\n");
    let run = invalid(
        &ctx,
        "elements/b.yaml",
        "unknown kind `mkae`",
        "elements/b.yaml:1:7",
    );
    assert_eq!(
        run.stderr.matches("unknown kind `mkae`").count(),
        1,
        "{}",
        run.stderr
    );
}

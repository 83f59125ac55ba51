//! Black-box tests of the reproducibility audits: `cas check`, `cas diff`,
//! `cas explain`, `cas challenge`.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::ctx::{busybox_project, manual, Ctx, Run};

fn import(dir: &str) -> String {
    format!("kind: import\nsources:\n  - kind: local\n    path: {dir}\n")
}

fn output_of(run: &Run, name: &str) -> String {
    let v = run.json();
    let e = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {}", run.stdout));
    e["output"].as_str().unwrap().to_owned()
}

fn key_of(run: &Run, name: &str) -> String {
    let v = run.json();
    let e = v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap();
    e["key"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- check

#[test]
fn check_a_deterministic_element_is_reproducible() {
    let ctx = busybox_project();
    ctx.write("elements/det.yaml", manual(&[], "    - mkdir -p %{install-root}/usr/share\n    - echo hello > %{install-root}/usr/share/greeting\n"));
    // Not built yet: check builds it normally first, then rebuilds it.
    let run = ctx.cas(["check", "det.yaml"]).ok();
    assert!(
        run.stdout.contains("det.yaml: reproducible"),
        "{}",
        run.stdout
    );
    let run = ctx.cas(["--json", "check", "det.yaml"]).ok();
    let v = run.json();
    assert_eq!(v["identical"], true);
    assert_eq!(v["built_first"], json!([]));
    assert_eq!(v["steps"].as_array().unwrap().len(), 1);
    assert_eq!(v["steps"][0]["name"], "det.yaml");
    assert_eq!(v["steps"][0]["output"], v["steps"][0]["rebuilt_output"]);
}

#[test]
fn check_names_the_file_that_holds_the_date_or_random_bytes_and_records_nothing() {
    let ctx = busybox_project();
    // busybox date has no %N: the sleep makes the two builds' seconds differ.
    ctx.write(
        "elements/stamp.yaml",
        manual(&[], "    - mkdir -p %{install-root}/etc\n    - echo same > %{install-root}/etc/stable\n    - date +%s%N > %{install-root}/etc/stamp\n    - sleep 1\n"),
    );
    ctx.write(
        "elements/random.yaml",
        manual(&[], "    - mkdir -p %{install-root}/var\n    - echo same > %{install-root}/var/stable\n    - head -c 16 /dev/urandom > %{install-root}/var/random\n"),
    );
    let first = ctx
        .cas(["--json", "build", "stamp.yaml", "random.yaml"])
        .ok();
    let stamp_out = output_of(&first, "stamp.yaml");
    let random_out = output_of(&first, "random.yaml");

    let run = ctx.cas(["check", "stamp.yaml"]).expect_code(1);
    assert!(
        run.stdout.contains("stamp.yaml: NOT reproducible"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("etc/stamp"), "{}", run.stdout);
    assert!(!run.stdout.contains("etc/stable"), "{}", run.stdout);

    let run = ctx.cas(["--json", "check", "random.yaml"]).expect_code(1);
    let v = run.json();
    assert_eq!(v["identical"], false);
    let step = &v["steps"][0];
    assert_eq!(step["name"], "random.yaml");
    assert_eq!(step["identical"], false);
    assert_eq!(step["output"], random_out.as_str());
    let paths: Vec<&str> = step["diff"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["var/random"]);
    assert_eq!(step["diff"]["changes"][0]["detail"]["format"], "binary");

    // The rebuilds were not recorded: the cached outputs are the first ones.
    let again = ctx
        .cas(["--json", "build", "stamp.yaml", "random.yaml"])
        .ok();
    assert_eq!(again.json()["built"], 0, "{}", again.stdout);
    assert_eq!(output_of(&again, "stamp.yaml"), stamp_out);
    assert_eq!(output_of(&again, "random.yaml"), random_out);
}

#[test]
fn check_deep_rebuilds_the_closure_and_names_the_step_at_fault() {
    let ctx = busybox_project();
    ctx.write("elements/leaf.yaml", manual(&[], "    - mkdir -p %{install-root}\n    - head -c 16 /dev/urandom > %{install-root}/leaf\n"));
    ctx.write(
        "elements/top.yaml",
        manual(
            &["leaf.yaml"],
            "    - mkdir -p %{install-root}\n    - echo top > %{install-root}/top\n",
        ),
    );
    // Only top's own step: reproducible (its output does not depend on the leaf's bytes).
    ctx.cas(["check", "top.yaml"]).ok();
    let run = ctx
        .cas(["--json", "check", "--deep", "top.yaml"])
        .expect_code(1);
    let v = run.json();
    let steps = v["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base.yaml", "leaf.yaml", "top.yaml"]);
    let bad: Vec<&str> = steps
        .iter()
        .filter(|s| s["identical"] == false)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["leaf.yaml"], "{}", run.stdout);
    // top was rebuilt over the new leaf (another key) and still gave the same output.
    assert_ne!(steps[2]["key"], steps[2]["rebuilt_key"]);
}

#[test]
fn check_runs_with_the_fixed_reproducibility_settings() {
    let ctx = busybox_project();
    let probe = "    - mkdir -p %{install-root}\n    - \"echo epoch=$SOURCE_DATE_EPOCH tz=$TZ lc=$LC_ALL home=$HOME > %{install-root}/settings\"\n\
                 \x20   - \"echo umask=$(umask) host=$(hostname) uid=$(id -u) gid=$(id -g) pwd=$(pwd) >> %{install-root}/settings\"\n\
                 \x20   - touch %{install-root}/created\n    - \"stat -c %a %{install-root}/created >> %{install-root}/settings\"\n";
    ctx.write("elements/settings.yaml", manual(&[], probe));
    ctx.cas(["check", "settings.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "settings.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("settings")).unwrap(),
        "epoch=315532800 tz=UTC lc=C home=/tmp\numask=0022 host=cas uid=0 gid=0 pwd=/build\n644\n"
    );
}

#[test]
fn check_of_an_unknown_element_is_invalid_input() {
    let ctx = busybox_project();
    ctx.cas(["check", "nope.yaml"]).expect_code(2);
}

// ---------------------------------------------------------------- diff

/// Two import elements `a.yaml` and `b.yaml` over `files/a` and `files/b`.
fn two_trees(ctx: &Ctx) -> (String, String) {
    ctx.write("elements/a.yaml", import("files/a"));
    ctx.write("elements/b.yaml", import("files/b"));
    let run = ctx.cas(["--json", "build", "a.yaml", "b.yaml"]).ok();
    (output_of(&run, "a.yaml"), output_of(&run, "b.yaml"))
}

#[test]
fn diff_json_is_stable_golden() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    ctx.write("files/a/same", "keep\n");
    ctx.write("files/b/same", "keep\n");
    ctx.write("files/a/text", "one\n");
    ctx.write("files/b/text", "two\n");
    ctx.write("files/a/gone", "gone\n");
    ctx.write("files/b/sub/new", "new\n");
    ctx.write("files/a/mode", "keep\n");
    ctx.write("files/b/mode", "keep\n");
    for (f, m) in [
        ("a/same", 0o644),
        ("b/same", 0o644),
        ("a/text", 0o644),
        ("b/text", 0o644),
        ("a/gone", 0o644),
        ("b/sub/new", 0o644),
        ("a/mode", 0o644),
        ("b/mode", 0o755),
    ] {
        std::fs::set_permissions(
            ctx.project().join("files").join(f),
            std::fs::Permissions::from_mode(m),
        )
        .unwrap();
    }
    std::fs::set_permissions(
        ctx.project().join("files/b/sub"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let (a, b) = two_trees(&ctx);
    let run = ctx
        .cas(["--json", "diff", "a.yaml", "b.yaml"])
        .expect_code(1);
    let v = run.json();
    // blake3 of the contents (fixed by the contents, so written out).
    let keep = "f04d62a61fed803fca5cf2c9d90a5895a5925cc26985342a640cbfce56105be8";
    let one = "e0e63aa4c8e1ed796cb104d8a074e553c99fff18d140e886667013ef2780ae23";
    let two = "ef40086ad8a395c7a05b5f70cf2575ad187f637ad813136292cb39610694db73";
    let gone = "a8b6a164fee7439469aab7cfde8d3b27f73219cee3532ef311d22d25cf66ed61";
    let new = "79d1d8da0b625035cdbfc9d51841030861b9f4cf7c5abbe442a8d13efc352170";
    // The tree digest of b's sub/ (computed: it depends only on its one entry).
    let sub = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "sub")
        .unwrap()["b"]["digest"]
        .clone();
    let expected = json!({
        "schema": 1,
        "a": a, "b": b, "identical": false, "truncated": false,
        "changes": [
            {"path": "gone", "change": "removed", "a": {"type": "file", "mode": "0644", "size": 5, "digest": gone}, "b": null},
            {"path": "mode", "change": "changed",
             "a": {"type": "file", "mode": "0644", "size": 5, "digest": keep},
             "b": {"type": "file", "mode": "0755", "size": 5, "digest": keep}},
            {"path": "sub", "change": "added", "a": null, "b": {"type": "dir", "mode": "0755", "digest": sub}},
            {"path": "sub/new", "change": "added", "a": null, "b": {"type": "file", "mode": "0644", "size": 4, "digest": new}},
            {"path": "text", "change": "changed",
             "a": {"type": "file", "mode": "0644", "size": 4, "digest": one},
             "b": {"type": "file", "mode": "0644", "size": 4, "digest": two},
             "detail": {"format": "text", "truncated": false,
                        "diff": "--- a/text\n+++ b/text\n@@ -1 +1 @@\n-one\n+two\n"}}
        ]
    });
    assert_eq!(v, expected, "{}", serde_json::to_string_pretty(&v).unwrap());
    // Keys and tree digests are operands too; a tree against itself is identical.
    let ka = key_of(&ctx.cas(["--json", "build", "a.yaml"]).ok(), "a.yaml");
    let same = ctx.cas(["--json", "diff", &ka, &a]).ok();
    assert_eq!(same.json()["identical"], true);
    assert_eq!(same.json()["changes"], json!([]));
    let text = ctx.cas(["diff", &a, &b]).expect_code(1);
    assert!(
        text.stdout.contains("removed  gone")
            && text.stdout.contains("-one")
            && text.stdout.contains("+two"),
        "{}",
        text.stdout
    );
    // Not a digest of this store: invalid input.
    ctx.cas(["diff", &"0".repeat(64), &a]).expect_code(2);
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(dir: &std::path::Path, script: &str) {
    let st = std::process::Command::new("sh")
        .arg("-e")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

#[test]
fn diff_names_the_elf_sections_ar_members_and_tar_gzip_members_that_differ() {
    if !have("gcc") || !have("ar") || !have("tar") || !have("gzip") {
        eprintln!("skipped: needs gcc, ar, tar and gzip on the host");
        return;
    }
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    ctx.write(
        "src/value.c",
        "int value(void) { return VALUE; }\nconst char *name(void) { return \"value\"; }\n",
    );
    for (side, v, mtime) in [("a", 1, "@1000000000"), ("b", 2, "@1000000001")] {
        let dir = ctx.project().join("files").join(side);
        std::fs::create_dir_all(dir.join("t")).unwrap();
        let src = ctx.project().join("src/value.c");
        sh(
            &dir,
            &format!("gcc -O2 -c -DVALUE={v} {} -o value.o", src.display()),
        );
        sh(&dir, "ar rcD libvalue.a value.o");
        // A tar whose members differ in content (one) and in mtime only (two).
        std::fs::write(dir.join("t/one"), format!("{v}\n")).unwrap();
        std::fs::write(dir.join("t/two"), "same\n").unwrap();
        sh(&dir, &format!("touch -d {mtime} t/two && touch -d @1000000000 t/one t && tar --format=gnu --owner=0 --group=0 --numeric-owner -cf data.tar t"));
        sh(&dir, "rm -r t");
        // A gzip whose header (mtime) and content differ.
        sh(
            &dir,
            &format!("cp data.tar copy.tar && touch -d {mtime} copy.tar && gzip -n copy.tar"),
        );
        sh(
            &dir,
            &format!("echo header-only > h && touch -d {mtime} h && gzip h"),
        );
    }
    let _ = two_trees(&ctx);
    let run = ctx
        .cas(["--json", "diff", "a.yaml", "b.yaml"])
        .expect_code(1);
    let v = run.json();
    let change = |p: &str| {
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in {}", run.stdout))
            .clone()
    };
    let sections = |d: &serde_json::Value| -> Vec<String> {
        d["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // The object file: .text differs, nothing else does.
    let obj = change("value.o");
    assert_eq!(obj["detail"]["format"], "elf");
    assert_eq!(sections(&obj["detail"]), [".text"], "{obj}");
    assert_eq!(obj["detail"]["header"], json!([]));
    // The archive: its member value.o, compared as ELF.
    let lib = change("libvalue.a");
    assert_eq!(lib["detail"]["format"], "ar");
    let members = lib["detail"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{lib}");
    assert_eq!(members[0]["name"], "value.o");
    assert_eq!(members[0]["detail"]["format"], "elf");
    assert_eq!(sections(&members[0]["detail"]), [".text"]);
    // The tar: t/one's content, t/two's mtime.
    let tar = change("data.tar");
    assert_eq!(tar["detail"]["format"], "tar");
    let m: Vec<(String, serde_json::Value)> = tar["detail"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), m.clone()))
        .collect();
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["t/one", "t/two"], "{tar}");
    assert_eq!(m[0].1["detail"]["format"], "text");
    assert_eq!(
        m[1].1["fields"],
        json!([{"field": "mtime", "a": "1000000000", "b": "1000000001"}])
    );
    assert!(m[1].1.get("detail").is_none());
    // gzip: content differs (a tar inside), and the header-only one.
    let gz = change("copy.tar.gz");
    assert_eq!(gz["detail"]["format"], "gzip");
    assert_eq!(gz["detail"]["content_identical"], false);
    assert_eq!(gz["detail"]["content"]["format"], "tar");
    let h = change("h.gz");
    assert_eq!(h["detail"]["content_identical"], true);
    let fields: Vec<&str> = h["detail"]["header"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mtime"], "{h}");
    // The human output names the section.
    let text = ctx.cas(["diff", "a.yaml", "b.yaml"]).expect_code(1);
    assert!(
        text.stdout.contains("ELF section .text changed"),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains("ELF section .rodata"),
        "{}",
        text.stdout
    );
}

#[test]
fn diff_of_two_sandbox_builds_of_one_c_file_with_different_defines() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: c\nelement-path: elements\n");
    crate::ctx::toolchain_element(&ctx, crate::toolchain::Flavor::C);
    ctx.write(
        "files/src/greet.c",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", VALUE); return 0; }\n",
    );
    for (n, v) in [("one", 1), ("two", 2)] {
        ctx.write(
            format!("elements/{n}.yaml"),
            format!(
                "kind: manual\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/src\n\
                 config:\n  build-commands:\n    - gcc -O2 -c -DVALUE={v} greet.c -o greet.o\n  install-commands:\n\
                 \x20   - mkdir -p %{{install-root}}%{{libdir}}\n    - cp greet.o %{{install-root}}%{{libdir}}/\n"
            ),
        );
    }
    ctx.cas(["build", "one.yaml", "two.yaml"]).ok();
    let run = ctx
        .cas(["--json", "diff", "one.yaml", "two.yaml"])
        .expect_code(1);
    let v = run.json();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{}", run.stdout);
    assert!(changes[0]["path"].as_str().unwrap().ends_with("/greet.o"));
    let detail = &changes[0]["detail"];
    assert_eq!(detail["format"], "elf");
    let names: Vec<&str> = detail["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [".text.startup"], "{detail}");
    // where, as bytes of both sides, and as instructions when objdump is here
    let sec = &detail["sections"][0];
    assert!(sec["first_difference"].is_u64(), "{sec}");
    let (ha, hb) = (
        sec["hex_a"].as_array().unwrap(),
        sec["hex_b"].as_array().unwrap(),
    );
    assert!(!ha.is_empty() && ha != hb, "{sec}");
    let text = ctx.cas(["diff", "one.yaml", "two.yaml"]).expect_code(1);
    assert!(
        text.stdout.contains("first difference at offset"),
        "{}",
        text.stdout
    );
    if have("objdump") {
        let d = &sec["disassembly"];
        assert!(
            d["tool"].as_str().unwrap().starts_with("objdump (host: "),
            "{sec}"
        );
        let (a, b) = (d["a"].as_array().unwrap(), d["b"].as_array().unwrap());
        assert!(!a.is_empty() && a != b, "the instructions differ: {sec}");
        assert!(
            text.stdout.contains("disassembly (objdump (host: "),
            "{}",
            text.stdout
        );
    } else {
        eprintln!("objdump not installed: disassembly not checked");
    }
}

#[test]
fn diff_with_diffoscope_says_when_it_is_missing() {
    if have("diffoscope") {
        return;
    }
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: t\nelement-path: elements\n");
    ctx.write("files/a/x", "1\n");
    ctx.write("files/b/x", "2\n");
    let _ = two_trees(&ctx);
    let run = ctx
        .cas(["diff", "--diffoscope", "a.yaml", "b.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains("diffoscope is not installed"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------- explain

/// base <- leaf (local source files/leaf) <- mid <- top, built.
fn chain_project() -> (Ctx, Run) {
    let ctx = busybox_project();
    ctx.write("files/leaf/data", "v1\n");
    ctx.write(
        "elements/leaf.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: local\n    path: files/leaf\n\
         config:\n  install-commands:\n    - mkdir -p %{install-root}\n    - cp data %{install-root}/leaf\n",
    );
    ctx.write(
        "elements/mid.yaml",
        manual(
            &["leaf.yaml"],
            "    - mkdir -p %{install-root}\n    - cat /leaf > %{install-root}/mid\n",
        ),
    );
    ctx.write(
        "elements/top.yaml",
        manual(
            &["mid.yaml"],
            "    - mkdir -p %{install-root}\n    - cat /mid > %{install-root}/top\n",
        ),
    );
    let run = ctx.cas(["--json", "build", "top.yaml"]).ok();
    (ctx, run)
}

fn ingest(ctx: &Ctx, rel: &str) -> String {
    let p = ctx.project().join(rel);
    ctx.cas(["store", "ingest", p.to_str().unwrap()])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn explain_json_names_the_changed_local_source_two_levels_down_golden() {
    let (ctx, first) = chain_project();
    // Nothing changed yet.
    let same = ctx.cas(["--json", "explain", "top.yaml"]).ok();
    assert_eq!(same.json()["explanation"]["status"], "identical");
    assert_eq!(same.json()["root_causes"], json!([]));

    let t_old = ingest(&ctx, "files/leaf");
    ctx.write("files/leaf/data", "v2\n");
    let t_new = ingest(&ctx, "files/leaf");
    let run = ctx.cas(["--json", "explain", "top.yaml"]).ok();
    let v = run.json();
    // The leaf's new key is computed by the engine: take it from a build afterwards.
    let leaf_key = v["explanation"]["dependencies"][0]["explanation"]["dependencies"][0]
        ["explanation"]["key"]
        .clone();
    let cause = json!([{"field": "sources[0].tree", "old": t_old, "new": t_new, "note": "local source files/leaf: changed data"}]);
    let expected = json!({
        "schema": 1,
        "explanation": {
            "element": "top.yaml", "key": null, "against": key_of(&first, "top.yaml"), "against_source": "last-build",
            "status": "changed", "differences": [],
            "dependencies": [{
                "index": 1, "element": "mid.yaml", "old": output_of(&first, "mid.yaml"), "new": null,
                "explanation": {
                    "element": "mid.yaml", "key": null, "against": key_of(&first, "mid.yaml"), "against_source": "last-build",
                    "status": "changed", "differences": [],
                    "dependencies": [{
                        "index": 1, "element": "leaf.yaml", "old": output_of(&first, "leaf.yaml"), "new": null,
                        "explanation": {
                            "element": "leaf.yaml", "key": leaf_key, "against": key_of(&first, "leaf.yaml"),
                            "against_source": "last-build", "status": "changed",
                            "differences": cause, "dependencies": []
                        }
                    }]
                }
            }]
        },
        "root_causes": [{"chain": ["top.yaml", "mid.yaml", "leaf.yaml"], "status": "changed", "differences": cause}]
    });
    assert_eq!(v, expected, "{}", serde_json::to_string_pretty(&v).unwrap());
    let text = ctx.cas(["explain", "top.yaml"]).ok();
    assert!(
        text.stdout
            .contains("top.yaml -> mid.yaml -> leaf.yaml: sources[0].tree"),
        "{}",
        text.stdout
    );

    // After the rebuild, the current key is the last one: the build before is used.
    let second = ctx.cas(["--json", "build", "top.yaml"]).ok();
    assert_eq!(
        serde_json::Value::String(key_of(&second, "leaf.yaml")),
        leaf_key
    );
    let after = ctx.cas(["--json", "explain", "top.yaml"]).ok().json();
    assert_eq!(
        after["explanation"]["key"],
        key_of(&second, "top.yaml").as_str()
    );
    assert_eq!(
        after["explanation"]["against"],
        key_of(&first, "top.yaml").as_str()
    );
    assert_eq!(after["explanation"]["against_source"], "previous-build");
    assert_eq!(
        after["explanation"]["dependencies"][0]["new"],
        output_of(&second, "mid.yaml").as_str()
    );
    assert_eq!(after["root_causes"], expected["root_causes"]);
    // Against an explicit key.
    let given = ctx
        .cas([
            "--json",
            "explain",
            "top.yaml",
            "--against",
            &key_of(&first, "top.yaml"),
        ])
        .ok()
        .json();
    assert_eq!(given["explanation"]["against_source"], "given");
    assert_eq!(given["root_causes"], expected["root_causes"]);
    ctx.cas(["explain", "top.yaml", "--against", "nothex"])
        .expect_code(2);
}

fn sha256(ctx: &Ctx, content: &str) -> String {
    let f = ctx.write("sha-input", content);
    let out = std::process::Command::new("sha256sum")
        .arg(&f)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn explain_names_a_changed_checksum_and_commands_and_environment() {
    let ctx = busybox_project();
    let file = ctx.write("upstream/data.txt", "release 1\n");
    let leaf = |sha: &str| {
        format!(
            "kind: import\nsources:\n  - kind: remote\n    url: file://{}\n    sha256: {sha}\n",
            file.display()
        )
    };
    ctx.write("elements/leaf.yaml", leaf(&sha256(&ctx, "release 1\n")));
    let mid = |flag: &str| {
        format!(
            "kind: manual\nbuild-depends: [base.yaml, leaf.yaml]\nenvironment:\n  FLAG: {flag}\nconfig:\n  install-commands:\n    - mkdir -p %{{install-root}}\n    - cat /data.txt > %{{install-root}}/mid\n"
        )
    };
    ctx.write("elements/mid.yaml", mid("a"));
    ctx.write(
        "elements/top.yaml",
        manual(
            &["mid.yaml"],
            "    - mkdir -p %{install-root}\n    - cat /mid > %{install-root}/top\n",
        ),
    );
    ctx.cas(["build", "top.yaml"]).ok();
    // Upstream re-released under the same name: a new checksum.
    let new_sha = sha256(&ctx, "release 2\n");
    ctx.write("elements/leaf.yaml", leaf(&new_sha));
    ctx.write("elements/mid.yaml", mid("b"));
    let v = ctx.cas(["--json", "explain", "top.yaml"]).ok().json();
    let causes = v["root_causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2, "{v}");
    assert_eq!(causes[0]["chain"], json!(["top.yaml", "mid.yaml"]));
    assert_eq!(
        causes[0]["differences"],
        json!([{"field": "environment.FLAG", "old": "a", "new": "b"}])
    );
    assert_eq!(
        causes[1]["chain"],
        json!(["top.yaml", "mid.yaml", "leaf.yaml"])
    );
    let d = &causes[1]["differences"][0];
    assert_eq!(d["field"], "sources[0].sha256");
    assert_eq!(d["old"], sha256(&ctx, "release 1\n").as_str());
    assert_eq!(d["new"], new_sha.as_str());
    assert!(
        d["note"].as_str().unwrap().contains("sha256 changed"),
        "{d}"
    );
    let text = ctx.cas(["explain", "top.yaml"]).ok();
    assert!(
        text.stdout
            .contains("top.yaml -> mid.yaml -> leaf.yaml: sources[0].sha256"),
        "{}",
        text.stdout
    );
}

#[test]
fn explain_without_a_previous_build_says_so() {
    let ctx = busybox_project();
    ctx.write("elements/x.yaml", manual(&[], "    - true\n"));
    let v = ctx.cas(["--json", "explain", "x.yaml"]).ok().json();
    assert_eq!(v["explanation"]["status"], "no-previous-build");
    assert_eq!(v["root_causes"][0]["chain"], json!(["x.yaml"]));
}

// ---------------------------------------------------------------- challenge

#[test]
fn challenge_names_only_the_step_whose_output_the_remote_disagrees_with() {
    let ctx = busybox_project();
    ctx.write(
        "elements/det.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo same > %{install-root}/det\n",
        ),
    );
    ctx.write("elements/rand.yaml", manual(&[], "    - mkdir -p %{install-root}\n    - head -c 16 /dev/urandom > %{install-root}/rand\n"));
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends:\n  - det.yaml\n  - rand.yaml\n",
    );
    let remote = ctx.path("remote");
    let url = format!("file://{}", remote.display());
    // Another machine builds and pushes.
    let other = ctx.path("store-other");
    ctx.cas([
        "--store",
        other.to_str().unwrap(),
        "build",
        "all.yaml",
        "--remote",
        &url,
        "--push",
    ])
    .ok();
    // This machine builds the same keys on its own.
    let mine = ctx
        .cas(["--json", "build", "all.yaml", "--no-remotes"])
        .ok();
    assert_eq!(mine.json()["built"], 4, "{}", mine.stdout);
    let run = ctx
        .cas(["--json", "challenge", "all.yaml", "--remote", &url])
        .expect_code(1);
    let v = run.json();
    let status: Vec<(String, String)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let disagree: Vec<&str> = status
        .iter()
        .filter(|(_, s)| s == "disagree")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(disagree, ["rand.yaml"], "{}", run.stdout);
    for n in ["base.yaml", "det.yaml"] {
        assert!(
            status.contains(&(n.to_owned(), "agree".to_owned())),
            "{n}: {}",
            run.stdout
        );
    }
    // The stack stages rand's output: its key differs, the remote has no result for it.
    assert!(
        status.contains(&("all.yaml".to_owned(), "local-only".to_owned())),
        "{}",
        run.stdout
    );
    assert_eq!(v["disagree"], 1);
    let text = ctx
        .cas(["challenge", "all.yaml", "--remote", &url])
        .expect_code(1);
    assert!(
        text.stdout.contains("rand.yaml (key ") && text.stdout.contains(") DIFFERS\n"),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains("det.yaml (key")
            || !text
                .stdout
                .split("det.yaml")
                .nth(1)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .contains("DIFFERS"),
        "{}",
        text.stdout
    );

    // Two remotes: this machine's own pushes agree, the other machine's do
    // not; --diff downloads the other output and shows the differing file.
    let mine_url = format!("file://{}", ctx.path("remote-mine").display());
    ctx.cas(["push", "all.yaml", "--remote", &mine_url]).ok();
    let two = ctx
        .cas([
            "--json",
            "challenge",
            "all.yaml",
            "--remote",
            &url,
            "--remote",
            &mine_url,
            "--diff",
        ])
        .expect_code(1);
    let v = two.json();
    let rand = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "rand.yaml")
        .unwrap()
        .clone();
    assert_eq!(rand["status"], "disagree");
    assert_eq!(rand["remotes"][0]["status"], "disagree", "{rand}");
    assert_eq!(rand["remotes"][1]["status"], "agree", "{rand}");
    let changed: Vec<&str> = rand["remotes"][0]["diff"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["rand"], "{rand}");
    assert_eq!(v["remotes"][1]["disagree"], 0);
    assert_eq!(v["remotes"][0]["disagree"], 1);
    let text = ctx
        .cas([
            "challenge",
            "all.yaml",
            "--remote",
            &url,
            "--remote",
            &mine_url,
            "--diff",
        ])
        .expect_code(1);
    assert!(text.stdout.contains("agrees"), "{}", text.stdout);
    let mine_line = text
        .stdout
        .lines()
        .find(|l| l.contains("remote-mine: ") && l.contains(" compared"))
        .unwrap_or_default();
    assert!(mine_line.ends_with("agree, 0 differ"), "{}", text.stdout);
    assert!(
        text.stdout.contains("binary files differ"),
        "{}",
        text.stdout
    );
    // nothing to challenge against
    let none = ctx.cas(["challenge", "all.yaml"]).expect_code(2);
    assert!(
        none.stderr.contains("no remote to challenge"),
        "{}",
        none.stderr
    );
    // Against itself: everything agrees.
    let same = ctx
        .cas([
            "--store",
            other.to_str().unwrap(),
            "challenge",
            "all.yaml",
            "--remote",
            &url,
        ])
        .ok();
    assert!(same.stdout.contains("0 differ"), "{}", same.stdout);
}

fn explain_project() -> Ctx {
    let ctx = crate::ctx::busybox_project();
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  greeting: hello\n",
    );
    ctx.write(
        "kinds/greet.yaml",
        "behaviour: sandbox\nvariables:\n  flags: -O1\nconfig:\n  install-commands:\n    - echo '%{greeting} %{flags}' > %{install-root}/out\n",
    );
    ctx.write(
        "elements/g.yaml",
        "kind: greet\nbuild-depends: [base.yaml]\n",
    );
    ctx
}

#[test]
fn explain_names_the_variable_and_the_file_and_line_that_set_it() {
    let ctx = explain_project();
    ctx.cas(["build", "g.yaml"]).ok();
    // a project variable
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  greeting: bonjour\n",
    );
    let run = ctx.cas(["explain", "g.yaml"]).ok();
    assert!(run.stdout.contains("variables.greeting"), "{}", run.stdout);
    assert!(
        run.stdout.contains("project.yaml:5:13 (the project)"),
        "{}",
        run.stdout
    );
    let json = ctx.cas(["--json", "explain", "g.yaml"]).ok().json();
    let first = &json["explanation"]["differences"][0];
    assert_eq!(first["field"], "variables.greeting", "{json}");
    assert_eq!(first["old"], "hello");
    assert_eq!(first["new"], "bonjour");
    ctx.cas(["build", "g.yaml"]).ok();

    // a flag in the kind's defaults: named as the kind's
    ctx.write(
        "kinds/greet.yaml",
        "behaviour: sandbox\nvariables:\n  flags: -O2\nconfig:\n  install-commands:\n    - echo '%{greeting} %{flags}' > %{install-root}/out\n",
    );
    let run = ctx.cas(["explain", "g.yaml"]).ok();
    assert!(run.stdout.contains("variables.flags"), "{}", run.stdout);
    assert!(
        run.stdout.contains("greet.yaml:3:10 (kind greet)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("variables.greeting"), "{}", run.stdout);
    ctx.cas(["build", "g.yaml"]).ok();

    // a change the element's key does not see is never named as a cause:
    // a variable nothing refers to changes beside one that is used
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  greeting: salut\n  unused: anything\n",
    );
    let run = ctx.cas(["explain", "g.yaml"]).ok();
    assert!(run.stdout.contains("variables.greeting"), "{}", run.stdout);
    assert!(!run.stdout.contains("variables.unused"), "{}", run.stdout);
}

#[test]
fn explain_against_a_key_only_a_remote_has_and_against_a_made_up_one() {
    let ctx = explain_project();
    let remote = ctx.path("shared");
    let url = format!("file://{}", remote.display());
    let a = ctx.path("store-a");
    let run = ctx
        .cas([
            "--store",
            a.to_str().unwrap(),
            "--json",
            "build",
            "g.yaml",
            "--remote",
            &url,
            "--push",
            "--trust-unsigned",
        ])
        .ok();
    let old_key = key_of(&run, "g.yaml");
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\nkinds: kinds\nvariables:\n  greeting: hi\n",
    );
    // this store never built it: the manifest comes from the remote
    let run = ctx
        .cas([
            "--json",
            "explain",
            "g.yaml",
            "--against",
            &old_key,
            "--remote",
            &url,
            "--trust-unsigned",
        ])
        .ok();
    let ex = &run.json()["explanation"];
    assert_eq!(ex["status"], "changed", "{ex}");
    assert_eq!(ex["against"], old_key.as_str());
    let fields: Vec<&str> = ex["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"phases.install-commands[0]"), "{fields:?}");
    // a key nobody has
    let made_up = "ab".repeat(32);
    let run = ctx
        .cas(["explain", "g.yaml", "--against", &made_up])
        .expect_code(2);
    assert!(run.stderr.contains("result has this key"), "{}", run.stderr);
}

#[test]
fn check_keep_writes_the_rebuilt_output_and_checkout_and_diff_take_its_digest() {
    let ctx = busybox_project();
    ctx.write(
        "elements/random.yaml",
        manual(&[], "    - mkdir -p %{install-root}/var\n    - echo same > %{install-root}/var/stable\n    - head -c 16 /dev/urandom > %{install-root}/var/random\n"),
    );
    let first = ctx.cas(["--json", "build", "random.yaml"]).ok();
    let cached = output_of(&first, "random.yaml");
    let key = key_of(&first, "random.yaml");
    let run = ctx
        .cas(["--json", "check", "random.yaml", "--keep", "../kept"])
        .expect_code(1);
    let rebuilt = run.json()["steps"][0]["rebuilt_output"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rebuilt, cached);
    let kept = ctx.path("kept");
    assert_eq!(
        std::fs::read_to_string(kept.join("var/stable")).unwrap(),
        "same\n"
    );
    assert!(
        run.stderr.contains(&format!("cas diff {cached} {rebuilt}")),
        "{}",
        run.stderr
    );
    // the kept tree by its digest, and the cached one by the element's key
    let diff = ctx.cas(["diff", &key, &rebuilt]).expect_code(1);
    assert!(diff.stdout.contains("var/random"), "{}", diff.stdout);
    assert!(!diff.stdout.contains("var/stable"), "{}", diff.stdout);
    ctx.cas(["checkout", &rebuilt, "../by-tree"]).ok();
    ctx.cas(["checkout", &key, "../by-key"]).ok();
    assert_eq!(
        std::fs::read(ctx.path("by-tree/var/random")).unwrap(),
        std::fs::read(kept.join("var/random")).unwrap()
    );
    assert_ne!(
        std::fs::read(ctx.path("by-key/var/random")).unwrap(),
        std::fs::read(kept.join("var/random")).unwrap()
    );
    let bad = ctx
        .cas(["checkout", &"cd".repeat(32), "../nothing"])
        .expect_code(2);
    assert!(
        bad.stderr.contains("neither an action key nor a tree"),
        "{}",
        bad.stderr
    );
}

#[test]
fn challenge_diff_names_the_elf_section_a_remote_built_differently() {
    let ctx = Ctx::new();
    ctx.write("project.yaml", "name: c\nelement-path: elements\n");
    crate::ctx::toolchain_element(&ctx, crate::toolchain::Flavor::C);
    ctx.write(
        "files/src/stamp.c",
        "const char *stamp(void) { return STAMP; }\n",
    );
    // the build time goes into .rodata: every build differs there
    ctx.write(
        "elements/stamp.yaml",
        "kind: manual\nbuild-depends: [toolchain.yaml]\nsources:\n  - kind: local\n    path: files/src\n\
         config:\n  build-commands:\n    - gcc -O2 -c -DSTAMP=\"\\\"$(date +%s%N)\\\"\" stamp.c -o stamp.o\n  install-commands:\n\
         \x20   - mkdir -p %{install-root}%{libdir}\n    - cp stamp.o %{install-root}%{libdir}/\n",
    );
    let theirs = format!("file://{}", ctx.path("theirs").display());
    let other = ctx.path("store-other");
    // another machine builds it and pushes that one result (not the toolchain)
    ctx.cas(["--store", other.to_str().unwrap(), "build", "stamp.yaml"])
        .ok();
    ctx.cas([
        "--store",
        other.to_str().unwrap(),
        "push",
        "stamp.yaml",
        "--remote",
        &theirs,
    ])
    .ok();
    ctx.cas(["build", "stamp.yaml", "--no-remotes"]).ok();
    let run = ctx
        .cas([
            "--json",
            "challenge",
            "stamp.yaml",
            "--remote",
            &theirs,
            "--diff",
        ])
        .expect_code(1);
    let v = run.json();
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "stamp.yaml")
        .unwrap()
        .clone();
    let change = &step["remotes"][0]["diff"]["changes"][0];
    assert!(
        change["path"].as_str().unwrap().ends_with("stamp.o"),
        "{step}"
    );
    let sections: Vec<&str> = change["detail"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        sections.iter().any(|s| s.starts_with(".rodata")),
        "{sections:?}"
    );
    let text = ctx
        .cas(["challenge", "stamp.yaml", "--remote", &theirs, "--diff"])
        .expect_code(1);
    assert!(
        text.stdout.contains("ELF section .rodata"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("first difference at offset"),
        "{}",
        text.stdout
    );
}

//! Golden keys: a small project written here, whose keys (and the outputs
//! of the steps that need no sandbox) are pinned. A refactor that changes a
//! key, or a key change that is not in spec/keys.md, fails here loudly.
//! When a key change is intended, bump `KEY_SCHEMA` or describe it in
//! spec/keys.md, and update the values below in the same commit.

use std::collections::BTreeMap;

use crate::ctx::Ctx;

fn golden_project() -> Ctx {
    let ctx = Ctx::new();
    ctx.write(
        "project.yaml",
        "name: golden\nelement-path: elements\nvariables:\n  greeting: hello\n",
    );
    ctx.write("files/base/etc/os-release", "NAME=golden\n");
    ctx.write("files/base/usr/share/doc/README", "a base\n");
    ctx.write("files/data/sub/a.txt", "a\n");
    ctx.write("files/data/top.txt", "top\n");
    ctx.write(
        "files/fix.patch",
        "--- a/top.txt\n+++ b/top.txt\n@@ -1 +1 @@\n-top\n+patched top\n",
    );
    ctx.write(
        "elements/base.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/base\n",
    );
    ctx.write(
        "elements/data.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/data\n  - kind: patch\n    path: files/fix.patch\nconfig:\n  source: /sub\n  target: /usr/share/data\n",
    );
    ctx.write(
        "elements/hello.yaml",
        "kind: manual\nbuild-depends: [base.yaml]\ndepends: [data.yaml]\nvariables:\n  who: world\nenvironment:\n  LANG: C\nconfig:\n  build-commands:\n    - echo \"%{greeting} %{who}\" > greeting\n    - make -j%{max-jobs}\n  install-commands:\n    - install -D greeting %{install-root}%{datadir}/greeting\npublic:\n  split-rules:\n    docs: [\"%{datadir}/doc/**\"]\n",
    );
    ctx.write(
        "elements/rootfs.yaml",
        "kind: compose\nbuild-depends: [base.yaml, data.yaml]\nconfig:\n  include-orphans: true\n",
    );
    ctx.write(
        "elements/image.yaml",
        "kind: script\nbuild-depends: [base.yaml, rootfs.yaml]\nconfig:\n  layout:\n    - element: base.yaml\n      destination: /\n    - element: rootfs.yaml\n      destination: /sysroot\n  commands:\n    - tar -C /sysroot -cf %{install-root}/image.tar .\n",
    );
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends: [hello.yaml, image.yaml]\n",
    );
    ctx
}

/// name → key from `cas show --json`, and name → output from the build.
fn keys_and_outputs(ctx: &Ctx) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    // The steps that need no sandbox: imports and a compose without
    // integration commands. Their outputs make the keys above them known.
    let built = ctx
        .cas(["--json", "build", "base.yaml", "data.yaml", "rootfs.yaml"])
        .ok();
    let outputs = built.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["output"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let show = ctx.cas(["--json", "show", "all.yaml"]).ok();
    let keys = show.json()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str().unwrap().to_owned(),
                e["key"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (keys, outputs)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn keys_of_a_pinned_project_do_not_change() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("SKIP: the pinned keys are those of an x86_64 host (host-arch reaches keys)");
        return;
    }
    let ctx = golden_project();
    let (keys, outputs) = keys_and_outputs(&ctx);
    println!("keys: {keys:#?}\noutputs: {outputs:#?}");
    assert_eq!(
        keys,
        map(&[
            (
                "base.yaml",
                "29435ffd22123b19cfa704af139ada4b67bc195a2f78905744a83590cd534fa5"
            ),
            (
                "data.yaml",
                "4e83ca360af6d0368b002efa13ac6a8d18f54138014190e078c953197ab9fc75"
            ),
            (
                "hello.yaml",
                "1a081fbb0c43e50b1f338b025afb44a8cd1b14fadd0fd9485c28a8c35011e01a"
            ),
            (
                "image.yaml",
                "34f52938b9215e484948637b74618e601bd9b1fd43ee335aa0255c59f2004204"
            ),
            (
                "rootfs.yaml",
                "bbf72898bb7dde31321802977b588d939e9aebf59edb375a870ba486834f4e28"
            ),
        ]),
        "a key changed: see spec/keys.md"
    );
    assert_eq!(
        outputs,
        map(&[
            (
                "base.yaml",
                "698011552593e64a24347b0732759c1b1f60a04a824bae8c113b0433d877e497"
            ),
            (
                "data.yaml",
                "16b54ab0112bd05a944002aeffd5dd317ffa4d6ea64f02d4ba4dc0047e2d82a8"
            ),
            (
                "rootfs.yaml",
                "a056703177037e1710d241c246638166141c5b7f0558f4eb0023ba6d1bfed447"
            ),
        ]),
        "an output changed"
    );
}

#[test]
fn import_takes_its_source_directory_and_places_it_at_its_target() {
    let ctx = golden_project();
    ctx.cas(["build", "data.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "data.yaml", out.to_str().unwrap()])
        .ok();
    let mut files: Vec<String> = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path().strip_prefix(&out).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(files, ["usr/share/data/a.txt"]);
    assert_eq!(
        std::fs::read_to_string(out.join("usr/share/data/a.txt")).unwrap(),
        "a\n"
    );
    // A source directory that the sources do not have is a clear error.
    ctx.write(
        "elements/missing.yaml",
        "kind: import\nsources:\n  - kind: local\n    path: files/data\nconfig:\n  source: /nope\n",
    );
    let run = ctx.cas(["build", "missing.yaml"]).expect_code(1);
    assert!(
        run.stderr
            .contains("`source: /nope` is not in the staged sources"),
        "{}",
        run.stderr
    );
}

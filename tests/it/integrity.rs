//! Integrity under concurrency and hostile inputs (issue 12): several `cas`
//! processes on one store, inherited descriptors, endless downloads,
//! symlinks out of the project, trust rules, bounded expansion.

use std::collections::BTreeMap;
use std::process::Stdio;

use crate::ctx::{busybox_project, manual, Ctx, Run};

/// name → (key, output) of a `cas build --json` report.
fn results(run: &Run) -> BTreeMap<String, (String, String)> {
    run.json()["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                (
                    e["key"].as_str().unwrap_or("").to_owned(),
                    e["output"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect()
}

/// A project where concurrent runs overlap: a base of 270 entries, two
/// elements with the same recipe (one key), a diamond, and a compose.
fn overlapping_project() -> Ctx {
    let ctx = busybox_project();
    let files = "    - mkdir -p %{install-root}/usr/share/x\n    - for i in $(seq 1 150); do echo $i > %{install-root}/usr/share/x/f$i; ln -s f$i %{install-root}/usr/share/x/l$i; done\n";
    ctx.write("elements/a.yaml", manual(&[], files));
    ctx.write("elements/twin.yaml", manual(&[], files));
    ctx.write(
        "elements/b.yaml",
        manual(
            &["a.yaml"],
            "    - mkdir -p %{install-root}/usr/share/b\n    - ls /usr/share/x | wc -l > %{install-root}/usr/share/b/count\n    - cp -a /bin %{install-root}/usr/share/b/bin\n",
        ),
    );
    ctx.write(
        "elements/c.yaml",
        manual(
            &["twin.yaml"],
            "    - mkdir -p %{install-root}/usr/share/c\n    - cat /usr/share/x/f7 > %{install-root}/usr/share/c/seven\n",
        ),
    );
    ctx.write(
        "elements/top.yaml",
        "kind: compose\nbuild-depends:\n  - base.yaml\n  - b.yaml\n  - c.yaml\n",
    );
    ctx
}

#[test]
fn concurrent_builds_of_the_same_and_overlapping_targets_record_only_true_results() {
    let ctx = overlapping_project();
    // The reference: one process, its own store.
    let reference_store = ctx.path("reference");
    let (mut cmd, shown) = ctx.command(["--json", "build", "top.yaml"]);
    cmd.env("CAS_STORE", &reference_store);
    let reference = results(&Run::from_output(shown, cmd.output().unwrap()).ok());
    assert_eq!(reference.len(), 6);

    let targets: [&[&str]; 3] = [&["top.yaml"], &["b.yaml", "c.yaml"], &["top.yaml"]];
    for round in 0..10 {
        let store = ctx.path(format!("store-{round}"));
        let children: Vec<_> = targets
            .iter()
            .map(|t| {
                let mut args = vec!["--json", "build"];
                args.extend_from_slice(t);
                let (mut cmd, shown) = ctx.command(&args);
                cmd.env("CAS_STORE", &store)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                (cmd.spawn().unwrap(), shown)
            })
            .collect();
        for (child, shown) in children {
            let run = Run::from_output(shown, child.wait_with_output().unwrap()).ok();
            for (name, got) in results(&run) {
                assert_eq!(
                    &got, &reference[&name],
                    "round {round}: {name} differs from the single-process build\n{}",
                    run.stderr
                );
            }
        }
        // What the store now says, with nothing running: the same again.
        let (mut cmd, shown) = ctx.command(["--json", "build", "top.yaml"]);
        cmd.env("CAS_STORE", &store);
        let again = Run::from_output(shown, cmd.output().unwrap()).ok();
        assert_eq!(again.json()["cached"], 6, "round {round}: {}", again.stdout);
        assert_eq!(results(&again), reference, "round {round}");
        let (mut cmd, shown) = ctx.command(["store", "verify", "--deep"]);
        cmd.env("CAS_STORE", &store);
        Run::from_output(shown, cmd.output().unwrap()).ok();
        // No build directory is left behind by successful runs.
        let left: Vec<_> = std::fs::read_dir(store.join("builds"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "round {round}: left in builds/: {left:?}");
    }
}

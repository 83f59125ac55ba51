//! A hostile step on a `cas worker` (trust issue): its commands replace a
//! parent of its install root with a symlink to a directory of the worker's
//! host. The worker reads the Action's outputs on the host, below the
//! Action's own directory: it must never follow that symlink, so the host's
//! files are neither read into the output nor moved away (they were: the
//! output was ingested by moving it into the store, through the symlink).
//! BuildGrid and its PostgreSQL, as in tests/it/buildgrid.rs.

use std::path::Path;

use cas_bench::buildgrid::BuildGrid;

use crate::buildgrid::Worker;
use crate::ctx::{busybox_project, Ctx};
use crate::remote::s;

/// An element whose install root is `/inst/out` and whose last command
/// makes `/inst` a symlink to `host` (a directory of this machine).
fn hostile_element(ctx: &Ctx, name: &str, host: &Path) {
    ctx.write(
        format!("elements/{name}.yaml"),
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nvariables:\n  install-root: /inst/out\n\
             config:\n  install-commands:\n    - mkdir -p %{{install-root}}\n\
             \x20   - echo {name} > %{{install-root}}/mine\n    - rm -rf /inst\n    - ln -s {} /inst\n",
            host.display()
        ),
    );
}

/// Build `name` on the farm; the host's canary must be intact, and a
/// build that succeeds must not have it in its output.
fn build_and_check(ctx: &Ctx, url: &str, name: &str, host: &Path, worker: &Worker) {
    let run = ctx.cas([
        "--json",
        "build",
        &format!("{name}.yaml"),
        "--remote-exec",
        url,
    ]);
    let canary = host.join("out/canary");
    assert_eq!(
        std::fs::read_to_string(&canary).ok().as_deref(),
        Some("precious\n"),
        "{name}: the worker host's file is still there\n--- build\n{}\n--- worker\n{}",
        run.stderr,
        worker.text()
    );
    assert!(
        run.stderr.contains("ran on grpc://") || run.stderr.contains("output directory"),
        "{name}: the step ran on the worker\n{}",
        run.stderr
    );
    if run.code == 0 {
        let out = ctx.path(format!("out-{name}"));
        ctx.cas(["checkout", &format!("{name}.yaml"), s(&out)]).ok();
        assert!(
            !out.join("canary").exists(),
            "{name}: the host's file is not an output"
        );
    } else {
        assert!(
            run.stderr.contains("no output directory"),
            "{name}: the output is absent\n{}",
            run.stderr
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(host.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["canary"], "{name}: nothing was written to the host");
}

#[test]
fn a_step_cannot_make_the_worker_read_or_move_host_files_through_a_symlink() {
    let ctx = busybox_project();
    let host = ctx.path("host");
    std::fs::create_dir_all(host.join("out")).unwrap();
    std::fs::write(host.join("out/canary"), "precious\n").unwrap();
    hostile_element(&ctx, "layered", &host);
    hostile_element(&ctx, "copied", &host);
    let bg = BuildGrid::start(&ctx.path("buildgrid")).unwrap_or_else(|e| panic!("{e}"));
    // the Action's root an overlay: its writable layer holds the symlink
    {
        let w = Worker::start(&ctx, &bg.url(), "w1");
        build_and_check(&ctx, &bg.url(), "layered", &host, &w);
        assert!(w.text().contains("layered)"), "{}", w.text());
    }
    // the Action's root a copy
    let w = Worker::start_with(&ctx, &bg.url(), "w2", &[("CAS_WORKER_OVERLAY", "0")]);
    build_and_check(&ctx, &bg.url(), "copied", &host, &w);
    assert!(w.text().contains("copied)"), "{}", w.text());
}

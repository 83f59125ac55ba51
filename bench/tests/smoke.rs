//! The runner in smoke mode (tiny sizes, one repetition) against the debug
//! `cas` binary, so the harness cannot rot. No timing assertions.

use std::path::PathBuf;

/// target/debug/cas, next to this test's directory (target/debug/deps/).
fn cas_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CAS_BENCH_CAS") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    dir.join("cas")
}

#[test]
fn smoke_run_produces_every_case_and_renders() {
    let cas = cas_binary();
    assert!(
        cas.is_file(),
        "the cas binary {} is missing: build it with `cargo build -p cas` (or run `cargo test \
         --workspace`, which builds it), or point CAS_BENCH_CAS at one",
        cas.display()
    );
    let work = tempfile_dir();
    let cfg = cas_bench::Config {
        cas,
        work: work.clone(),
        mode: cas_bench::Mode::Smoke,
        only: vec![],
        command: "cas-bench --smoke".into(),
        quiet: true,
    };
    let result = cas_bench::run(&cfg);
    let _ = cas_bench::util::force_remove(&work);
    let report = result.unwrap_or_else(|e| panic!("smoke run failed: {e}"));

    let ids: Vec<&str> = report.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, cas_bench::CASES, "every case ran");
    for case in &report.cases {
        if case.rows.is_empty() {
            // A case that cannot run here (BuildStream in smoke mode) says why.
            assert!(
                !case.notes.is_empty(),
                "case {} has no rows and says nothing",
                case.id
            );
            continue;
        }
        assert!(!case.goals.is_empty(), "case {} has no goals", case.id);
        assert!(
            !case.commands.is_empty(),
            "case {} lists no commands",
            case.id
        );
        for row in &case.rows {
            let s = row
                .stats()
                .unwrap_or_else(|| panic!("{}: {} has no samples", case.id, row.label));
            assert!(
                s.median.is_finite() && s.median >= 0.0,
                "{}: {} = {}",
                case.id,
                row.label,
                s.median
            );
        }
    }
    // Early cutoff really cut off: exactly the leaf rebuilt.
    let cutoff = report.cases.iter().find(|c| c.id == "cutoff").unwrap();
    let steps = cutoff
        .rows
        .iter()
        .find(|r| r.label == "steps rebuilt")
        .unwrap();
    assert_eq!(
        steps.samples,
        vec![1.0],
        "the comment change rebuilt more (or less) than the leaf"
    );

    let md = report.markdown();
    assert!(md.starts_with("# Benchmarks\n"));
    assert!(md.contains("## Machine") && md.contains("## Summary"));
    for id in cas_bench::CASES {
        assert!(md.contains(&format!("\n## {id}: ")), "no section for {id}");
    }
    assert!(md.contains("| # | measurement | median | min – max | runs | vs baseline | note |"));
    assert!(!md.contains("NaN"), "a figure is NaN:\n{md}");
    // A case that measured nothing (BuildStream, Nix and Bazel in smoke
    // mode) says so in the summary: a skip never reads as a pass.
    for case in report.cases.iter().filter(|c| c.goals.is_empty()) {
        let row = format!("| {} | — | {} | — |", case.id, case.notes[0]);
        assert!(md.contains(&row), "no summary row for {}:\n{md}", case.id);
    }
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cas-bench-smoke-{}", std::process::id()));
    let _ = cas_bench::util::force_remove(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

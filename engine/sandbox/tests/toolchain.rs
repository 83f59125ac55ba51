//! The black-box suite's toolchain helper (`tests/it/toolchain.rs`),
//! checked here too, and a C build through the cas-sandbox API over it.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they skip and measured"
)]

#[path = "../../../tests/it/toolchain.rs"]
mod toolchain;

use std::fs::OpenOptions;

use cas_sandbox::{run, shell_argv, Cancel, Exit, Io, Mount, SandboxSpec};
use toolchain::{toolchain, Flavor};

#[test]
fn c_library_and_program_build_in_the_sandbox() {
    let root = toolchain(Flavor::C);
    let dir = tempfile::tempdir().unwrap();
    let (build, install) = (dir.path().join("build"), dir.path().join("install"));
    std::fs::create_dir_all(&build).unwrap();
    std::fs::create_dir_all(&install).unwrap();
    std::fs::write(build.join("lib.c"), "int answer(void){return 42;}\n").unwrap();
    std::fs::write(build.join("main.c"), "#include <stdio.h>\nint answer(void);\nint main(void){printf(\"%d\\n\", answer());return 0;}\n").unwrap();
    std::fs::write(
        build.join("Makefile"),
        "prog: main.o libanswer.a\n\t$(CC) -o $@ main.o -L. -lanswer\nlibanswer.a: lib.o\n\t$(AR) rcs $@ $^\n\
         install: prog\n\tinstall -D -m 755 prog $(DESTDIR)/usr/bin/prog\n",
    )
    .unwrap();
    let mut spec = SandboxSpec::new(&root);
    spec.mounts = vec![
        Mount::writable(&build, "/build"),
        Mount::writable(&install, "/install"),
    ];
    spec.cwd = "/build".into();
    spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    cas_sandbox::check_shell(&root).unwrap();
    let log = dir.path().join("log");
    for cmd in ["make -j2", "./prog", "make install DESTDIR=/install"] {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let o = run(&spec, &shell_argv(cmd), Io::Log(file), &Cancel::new()).unwrap();
        assert_eq!(
            o.status,
            Exit::Code(0),
            "{cmd}:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("42\n"));
    assert!(install.join("usr/bin/prog").is_file());
}

/// Assembles both flavors from scratch and prints what they hold and how
/// long it took: `cargo test -p cas-sandbox --test toolchain -- --ignored --nocapture`.
#[test]
#[ignore = "prints the toolchain assembled from this machine's packages, for looking at"]
fn toolchain_summary() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    for flavor in [Flavor::C, Flavor::CMake] {
        let s = toolchain::toolchain_tree_with(&dir.path().join(format!("{flavor:?}")), flavor)
            .unwrap();
        eprintln!(
            "{flavor:?}: {} packages, {} files, {} MB, assembled in {:?}\n  {}",
            s.packages.len(),
            s.files,
            s.bytes >> 20,
            start.elapsed(),
            s.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

//! `cas-mkbase DEST [--toolchain | --cmake]`: assembles a base sysroot from
//! this machine's own Debian packages, for example projects (run by
//! `scripts/mkbase.sh`): a static busybox with its applet links, and with
//! `--toolchain` a C toolchain (gcc, binutils, libc headers, make, coreutils,
//! sed, grep and their installed dependencies; `--cmake` adds cmake). The
//! same code assembles the toolchains of the black-box tests
//! (`tests/it/toolchain.rs`). DEST is built beside itself and renamed into
//! place, and left alone if it exists.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the benchmark tools report on the terminal"
)]

#[path = "../../../tests/it/toolchain.rs"]
mod toolchain;

use std::path::PathBuf;

use toolchain::Flavor;

fn usage() -> ! {
    eprintln!("usage: cas-mkbase DEST [--toolchain | --cmake]");
    std::process::exit(2)
}

fn main() {
    let mut dest = None;
    let mut flavor = Flavor::Busybox;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--toolchain" => flavor = Flavor::C,
            "--cmake" => flavor = Flavor::CMake,
            "-h" | "--help" => usage(),
            _ if a.starts_with('-') => usage(),
            _ if dest.is_none() => dest = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let Some(dest) = dest else { usage() };
    if std::fs::symlink_metadata(&dest).is_ok() {
        println!("mkbase: {} exists, keeping it", dest.display());
        return;
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(parent) {
            eprintln!("mkbase: cannot create {}: {e}", parent.display());
            std::process::exit(1)
        }
    }
    let tmp = PathBuf::from(format!("{}.tmp.{}", dest.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let summary = match toolchain::toolchain_tree_with(&tmp, flavor) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            eprintln!(
                "mkbase: {e}\n(needs the Debian packages {}: run scripts/install-deps.sh)",
                toolchain::REQUIRED_DEBIAN_PACKAGES.join(" ")
            );
            std::process::exit(1)
        }
    };
    if let Err(e) = std::fs::rename(&tmp, &dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        eprintln!(
            "mkbase: cannot rename {} to {}: {e}",
            tmp.display(),
            dest.display()
        );
        std::process::exit(1)
    }
    println!(
        "mkbase: wrote {} ({} packages, {} files and links, {:.1} MB)",
        dest.display(),
        summary.packages.len(),
        summary.files,
        summary.bytes as f64 / 1e6
    );
}

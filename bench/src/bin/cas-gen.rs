//! `cas-gen DIR [options]`: writes a synthetic cas project into DIR.
//!
//! Options (defaults in brackets): `--elements N` [100], `--layers L` [10],
//! `--fanout K` [3], `--files F` [1], `--size S` [64], `--big-import FILES` [0],
//! `--big-size BYTES` [10240], `--big-in-sysroot 0|1` [0], `--change-share X` [0], `--change-round R` [0],
//! `--leaf-comment TEXT` [`rev 0`], `--seed N` [1]. Build it with
//! `cas build all.yaml` in DIR.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the benchmark tools report on the terminal"
)]

use cas_bench::gen::{generate, GenOptions};

fn usage() -> ! {
    eprintln!(
        "usage: cas-gen DIR [--elements N] [--layers L] [--fanout K] [--files F] [--size S] \
         [--big-import FILES] [--big-size BYTES] [--big-in-sysroot 0|1] [--change-share X] [--change-round R] \
         [--leaf-comment TEXT] [--seed N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut o = GenOptions::default();
    let mut dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if !a.starts_with("--") {
            if dir.replace(a).is_some() {
                usage()
            }
            continue;
        }
        let v = args.next().unwrap_or_else(|| usage());
        let num = |v: &str| v.parse::<usize>().unwrap_or_else(|_| usage());
        match a.as_str() {
            "--elements" => o.elements = num(&v),
            "--layers" => o.layers = num(&v).max(1),
            "--fanout" => o.fanout = num(&v),
            "--files" => o.files = num(&v),
            "--size" => o.file_size = num(&v),
            "--big-import" => o.big_import = num(&v),
            "--big-size" => o.big_file_size = num(&v),
            "--big-in-sysroot" => o.big_in_sysroot = v == "1" || v == "true",
            "--change-share" => o.change_share = v.parse().unwrap_or_else(|_| usage()),
            "--change-round" => o.change_round = num(&v) as u64,
            "--leaf-comment" => o.leaf_comment = v,
            "--seed" => o.seed = num(&v) as u64,
            _ => usage(),
        }
    }
    let dir = dir.unwrap_or_else(|| usage());
    match generate(std::path::Path::new(&dir), &o) {
        Ok(g) => eprintln!(
            "cas-gen: {} elements in {dir} (build all.yaml); {} change with the round; leaf {} has {} dependents",
            g.names.len(),
            g.changed.len(),
            g.leaf,
            g.leaf_dependents
        ),
        Err(e) => {
            eprintln!("cas-gen: {e}");
            std::process::exit(1)
        }
    }
}

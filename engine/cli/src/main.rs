//! `cas`: the command line. A thin layer over the library crates; every
//! subcommand lives in its own file under `commands/`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line is where cas talks to the terminal"
)]

/// Loading thousands of element files is allocation-heavy: mimalloc
/// measurably beats the system allocator there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod exit;
mod json;

fn main() -> std::process::ExitCode {
    // `cas show | head`: a closed stdout ends cas quietly, as it ends any
    // Unix tool, instead of a panic in `println!` (Rust ignores SIGPIPE).
    // Sockets are written with MSG_NOSIGNAL and never raise it.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse_or_exit();
    let result = commands::run(args);
    exit::finish(result)
}

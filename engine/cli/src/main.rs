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
    // Sockets are written with MSG_NOSIGNAL, except by `writev` (rustls,
    // hyper): every HTTP client's and the REAPI client's threads block
    // SIGPIPE for that (cas_store::remote::without_sigpipe, the sources'
    // Fetcher, cas-reapi's `block_sigpipe`).
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Deep trees (a source or an output thousands of directories deep) are
    // walked by code that recurses per level in places: every thread cas
    // starts, this one included, gets a stack that such depth cannot
    // exhaust (address space only: pages are used as they are touched).
    // RUST_MIN_STACK is read at the first spawn, so it covers the
    // scheduler's, the recorder's and rayon's threads too.
    std::env::set_var("RUST_MIN_STACK", STACK_BYTES.to_string());
    let worker = std::thread::Builder::new()
        .name("cas".into())
        .stack_size(STACK_BYTES)
        .spawn(|| {
            let args = cli::Cli::parse_or_exit();
            let result = commands::run(args);
            exit::finish(result)
        });
    match worker.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // a panic was already reported by the panic hook
        Ok(Err(_)) => std::process::ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start cas's main thread: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The stack of every thread of cas (spec/cli.md, "Limits").
const STACK_BYTES: usize = 256 << 20;

//! A hostile directory remote (trust issue): whoever can write a shared
//! `file://` cache plants an action-cache entry that is a FIFO (an open
//! that blocks forever), a symlink to /dev/zero (a read that never ends) or
//! a 200 MB sparse file (read whole before the 64 KiB limit was applied).
//! `cas build` with that remote must end in bounded time and memory, and
//! build the step here.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::ctx::{busybox_project, manual, Ctx, Run};
use crate::remote::{keygen, s};

/// Past this, a `cas` run is killed (a regression must not take the
/// machine's memory: reading /dev/zero grows by gigabytes a second).
const MAX_RSS: u64 = 1 << 30;

/// The resident memory of process `pid` (0 once it is gone).
fn resident_bytes(pid: libc::pid_t) -> u64 {
    let pages: u64 = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Run `cas` with `args`; kill it (and fail) if it runs longer than
/// `limit` or grows past [`MAX_RSS`]. Returns the run and the child's peak
/// RSS in KiB.
fn cas_bounded(ctx: &Ctx, args: &[&str], limit: Duration) -> (Run, u64) {
    let (mut cmd, shown) = ctx.command(args);
    let out_path = ctx.path(".bounded-out");
    let err_path = ctx.path(".bounded-err");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    #[allow(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, for its rusage"
    )]
    let child = cmd.spawn().expect("run cas");
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &raw mut status, libc::WNOHANG, &raw mut usage) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0, "wait4 failed");
        let rss = resident_bytes(pid);
        if started.elapsed() > limit || rss > MAX_RSS {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
            panic!(
                "`cas {}` killed after {:.1} s with {} MiB resident (limits: {} s, {} MiB):\n{}",
                shown.join(" "),
                started.elapsed().as_secs_f64(),
                rss >> 20,
                limit.as_secs(),
                MAX_RSS >> 20,
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let run = Run {
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        args: shown,
    };
    (run, usage.ru_maxrss as u64)
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn a_planted_fifo_dev_zero_or_huge_action_result_in_a_directory_remote_is_refused_quickly() {
    let ctx = busybox_project();
    ctx.write(
        "elements/top.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}\n    - echo top > %{install-root}/top\n",
        ),
    );
    let remote = ctx.path("shared");
    let url = format!("file://{}", remote.display());
    let (key, public) = keygen(&ctx, "key");
    let pushed = ctx
        .cas([
            "--store",
            s(&ctx.path("store-a")),
            "--json",
            "build",
            "top.yaml",
            "--remote",
            &url,
            "--push",
            "--signing-key",
            s(&key),
        ])
        .ok();
    let top_key = pushed.per_element("key")["top.yaml"].clone();
    let entry = remote.join("ac").join(&top_key);
    assert!(entry.is_file(), "{} was pushed", entry.display());

    let plants = ["a FIFO", "a symlink to /dev/zero", "a 200 MB sparse file"];
    for (i, what) in plants.iter().enumerate() {
        std::fs::remove_file(&entry).unwrap();
        match i {
            0 => mkfifo(&entry),
            1 => std::os::unix::fs::symlink("/dev/zero", &entry).unwrap(),
            _ => std::fs::File::create(&entry)
                .unwrap()
                .set_len(200 << 20)
                .unwrap(),
        }
        // a fresh store each time: top is not cached here
        let store = ctx.path(format!("store-{i}"));
        let (run, rss_kib) = cas_bounded(
            &ctx,
            &[
                "--store",
                s(&store),
                "--json",
                "build",
                "top.yaml",
                "--remote",
                &url,
                "--trusted-key",
                s(&public),
            ],
            Duration::from_secs(60),
        );
        let run = run.ok();
        assert_eq!(
            run.per_element("status")["top.yaml"],
            "built",
            "{what}: top is built here\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("warning:") && run.stderr.contains(&top_key),
            "{what}: the remote's entry is warned about\n{}",
            run.stderr
        );
        assert!(
            rss_kib < 150 << 10,
            "{what}: cas grew to {} MiB",
            rss_kib >> 10
        );
        // what was planted is still what it was (nothing followed or
        // replaced it by reading)
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        assert!(!meta.is_file() || meta.len() == 200 << 20, "{what}");
    }
}

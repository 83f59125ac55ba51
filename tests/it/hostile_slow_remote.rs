//! A remote that makes cas wait (trust issue: "a remote can hang or
//! exhaust cas"). A cache is an optimisation: a remote that trickles its
//! objects at 1 byte/s, sends an endless body, or accepts connections and
//! never answers (over HTTP or gRPC) must cost a build a few seconds, once,
//! with one warning that names it: the build then goes on locally and
//! succeeds. SIGTERM and SIGINT end cas within seconds even while it waits
//! on such a remote.
//!
//! The remote is a tiny HTTP cache written here (a thread on 127.0.0.1 with
//! a `TcpListener`): honest while a first store pushes a project to it,
//! hostile when a second store builds the same project from it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ctx::{busybox_project, manual, Ctx, Run};
use crate::remote::{keygen, s};

/// Past this, a build is killed and the test fails (the fixed cas needs a
/// few seconds of waiting plus the local build).
const BOUND: Duration = Duration::from_secs(60);

/// How the server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// A plain cache: `GET`, `HEAD`, `PUT` on `/cache/{cas,ac}/HEX`.
    Honest = 0,
    /// Objects (`GET /cache/cas/…`): the right headers at once, then the
    /// body at 1 byte a second. Action results are answered at once: the
    /// worst case, a result is found and its objects never come.
    Trickle = 1,
    /// Objects: `200`, no length, bytes for as long as the client reads.
    Endless = 2,
    /// Every connection is accepted and never answered (what it sends is
    /// read and dropped): an HTTP or a gRPC server that hangs.
    Silent = 3,
    /// Honest, but each action result is answered after [`SLOW`]: a remote
    /// far away. Lookups in flight together are counted.
    Slow = 4,
}

/// How long a `Slow` server takes to answer a result lookup.
const SLOW: Duration = Duration::from_millis(400);

struct Server {
    port: u16,
    mode: Arc<AtomicU8>,
    objects: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Body bytes written in `Endless` mode.
    sent: Arc<AtomicU64>,
    /// Result lookups (`GET /cache/ac/…`): asked per key, in flight now,
    /// and the most in flight at once.
    lookups: Arc<Lookups>,
}

#[derive(Default)]
struct Lookups {
    asked: Mutex<HashMap<String, usize>>,
    now: AtomicU64,
    most: AtomicU64,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server {
            port,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            objects: Arc::default(),
            sent: Arc::default(),
            lookups: Arc::default(),
        };
        let (mode, objects, sent, lookups) = (
            server.mode.clone(),
            server.objects.clone(),
            server.sent.clone(),
            server.lookups.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (mode, objects, sent, lookups) =
                    (mode.clone(), objects.clone(), sent.clone(), lookups.clone());
                std::thread::spawn(move || serve(conn, &mode, &objects, &sent, &lookups));
            }
        });
        server
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn http(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    fn grpc(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }

    fn stored(&self) -> usize {
        self.objects.lock().unwrap().len()
    }
}

/// One connection: requests until the client closes it.
fn serve(
    conn: TcpStream,
    mode: &AtomicU8,
    objects: &Mutex<HashMap<String, Vec<u8>>>,
    sent: &AtomicU64,
    lookups: &Lookups,
) {
    let mode_now = || match mode.load(Ordering::SeqCst) {
        1 => Mode::Trickle,
        2 => Mode::Endless,
        3 => Mode::Silent,
        4 => Mode::Slow,
        _ => Mode::Honest,
    };
    let mut conn = conn;
    if mode_now() == Mode::Silent {
        // Read whatever comes, answer nothing, until the client goes.
        let mut buf = [0u8; 4096];
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        return;
    }
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let Some((method, path, body)) = read_request(&mut reader) else {
            return;
        };
        let name = path.trim_start_matches("/cache/").to_owned();
        if method == "GET" && name.starts_with("ac/") && mode_now() == Mode::Slow {
            *lookups
                .asked
                .lock()
                .unwrap()
                .entry(name.clone())
                .or_default() += 1;
            let now = lookups.now.fetch_add(1, Ordering::SeqCst) + 1;
            lookups.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(SLOW);
            lookups.now.fetch_sub(1, Ordering::SeqCst);
        }
        let found = objects.lock().unwrap().get(&name).cloned();
        let object = name.starts_with("cas/");
        let answer = match (method.as_str(), found) {
            ("PUT", _) => {
                objects.lock().unwrap().insert(name, body);
                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
            ("GET", Some(bytes)) if object && mode_now() == Mode::Trickle => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len());
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for b in bytes {
                    std::thread::sleep(Duration::from_secs(1));
                    if conn.write_all(&[b]).is_err() {
                        return;
                    }
                }
                continue;
            }
            ("GET", Some(_)) if object && mode_now() == Mode::Endless => {
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let chunk = vec![b'z'; 64 << 10];
                while conn.write_all(&chunk).is_ok() {
                    sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                return;
            }
            ("GET", Some(bytes)) => {
                let mut a = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len())
                    .into_bytes();
                a.extend_from_slice(&bytes);
                a
            }
            ("HEAD", Some(bytes)) => {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()).into_bytes()
            }
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        };
        if conn.write_all(&answer).is_err() {
            return;
        }
    }
}

/// One HTTP/1.1 request: method, path and body; `None` at the end of the
/// connection.
fn read_request(reader: &mut impl BufRead) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

/// base ← a1, a2, a3 ← top: five small elements.
fn project() -> Ctx {
    let ctx = busybox_project();
    for a in ["a1", "a2", "a3"] {
        ctx.write(
            format!("elements/{a}.yaml"),
            manual(
                &[],
                &format!(
                    "    - mkdir -p %{{install-root}}/usr/share\n    - echo {a}-output > %{{install-root}}/usr/share/{a}\n"
                ),
            ),
        );
    }
    ctx.write(
        "elements/top.yaml",
        manual(
            &["a1.yaml", "a2.yaml", "a3.yaml"],
            "    - mkdir -p %{install-root}/usr/share\n    - cat /usr/share/a1 /usr/share/a2 /usr/share/a3 > %{install-root}/usr/share/top\n",
        ),
    );
    ctx
}

/// `cas ARGS` as a child; killed (and the test failed) past `limit`.
fn bounded(ctx: &Ctx, args: &[&str], limit: Duration) -> Run {
    let (mut cmd, shown) = ctx.command(args);
    let out_path = ctx.path(".bounded-out");
    let err_path = ctx.path(".bounded-err");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("run cas");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "`cas {}` killed after {} s:\n{}",
                shown.join(" "),
                limit.as_secs(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "`cas {}` took {:.1} s",
        shown.join(" "),
        started.elapsed().as_secs_f64()
    );
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        args: shown,
    }
}

/// Push the project's results (signed) to the honest server from a store of
/// its own; returns the public key to trust.
fn push_all(ctx: &Ctx, server: &Server) -> std::path::PathBuf {
    let (key, public) = keygen(ctx, "key");
    ctx.cas([
        "--store",
        s(&ctx.path("pusher")),
        "build",
        "top.yaml",
        "--remote",
        &server.http(),
        "--push",
        "--signing-key",
        s(&key),
    ])
    .ok();
    assert!(server.stored() > 5, "the pushed results are on the server");
    public
}

/// The build succeeded, every element was built here, and stderr says one
/// warning, which names the remote.
fn built_here_with_one_warning(run: &Run, url: &str) {
    let status = run.per_element("status");
    assert_eq!(status.len(), 5, "{}", run.stdout);
    for (name, s) in &status {
        assert_eq!(s, "built", "{name}: {}\n{}", run.stdout, run.stderr);
    }
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning:\n{}", run.stderr);
    eprintln!("{}", warnings[0]);
    assert!(warnings[0].contains(url), "it names {url}:\n{}", run.stderr);
}

#[test]
fn a_slow_remote_is_asked_for_many_results_at_once_and_for_each_key_once() {
    let ctx = project();
    let server = Server::start(Mode::Honest);
    let public = push_all(&ctx, &server);
    server.set(Mode::Slow);
    let url = server.http();
    // a build into a fresh `store` with one job: every element ends as
    // `status`, and the server was asked for each of the five keys once
    let build = |store: &str, status: &str| {
        server.lookups.asked.lock().unwrap().clear();
        let run = ctx
            .cas([
                "--store",
                s(&ctx.path(store)),
                "--json",
                "-j",
                "1",
                "build",
                "top.yaml",
                "--remote",
                &url,
                "--trusted-key",
                s(&public),
            ])
            .ok();
        for (name, st) in run.per_element("status") {
            assert_eq!(st, status, "{name}: {}\n{}", run.stdout, run.stderr);
        }
        let asked = server.lookups.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 5, "{asked:?}");
        assert!(asked.values().all(|n| *n == 1), "{asked:?}");
    };
    // the lookups overlap all the same (a1, a2 and a3 are known together,
    // once base is)
    build("puller", "pulled");
    let most = server.lookups.most.load(Ordering::SeqCst);
    assert!(most >= 3, "at most {most} lookups in flight at once");
    // a cold build with a remote that has nothing: each key asked once
    // (the cache pass asks what it can; a step never asks again)
    server.objects.lock().unwrap().clear();
    build("cold", "built");
}

#[test]
fn a_remote_trickling_its_objects_at_one_byte_a_second_is_given_up_once() {
    let ctx = project();
    let server = Server::start(Mode::Honest);
    let public = push_all(&ctx, &server);
    server.set(Mode::Trickle);
    let url = server.http();
    let run = bounded(
        &ctx,
        &[
            "--json",
            "build",
            "top.yaml",
            "--remote",
            &url,
            "--trusted-key",
            s(&public),
        ],
        BOUND,
    )
    .ok();
    built_here_with_one_warning(&run, &url);
}

#[test]
fn a_remote_sending_endless_bodies_is_cut_off_and_given_up_once() {
    let ctx = project();
    let server = Server::start(Mode::Honest);
    let public = push_all(&ctx, &server);
    server.set(Mode::Endless);
    let url = server.http();
    let run = bounded(
        &ctx,
        &[
            "--json",
            "build",
            "top.yaml",
            "--remote",
            &url,
            "--trusted-key",
            s(&public),
        ],
        BOUND,
    )
    .ok();
    built_here_with_one_warning(&run, &url);
    // Refused at once (a tree's size is not known here, and the server
    // does not say it), not read up to a tree's 64 MiB limit once per step:
    // what the server could write is what the sockets' buffers took.
    let sent = server.sent.load(Ordering::Relaxed);
    eprintln!("the endless server wrote {} KiB", sent >> 10);
    assert!(sent < 32 << 20, "the server sent {} MiB", sent >> 20);
}

#[test]
fn a_silent_http_remote_is_given_up_once() {
    let ctx = project();
    let server = Server::start(Mode::Silent);
    let url = server.http();
    let run = bounded(
        &ctx,
        &["--json", "build", "top.yaml", "--remote", &url],
        BOUND,
    )
    .ok();
    built_here_with_one_warning(&run, &url);
}

#[test]
fn a_silent_grpc_remote_is_given_up_once() {
    let ctx = project();
    let server = Server::start(Mode::Silent);
    let url = server.grpc();
    let run = bounded(
        &ctx,
        &["--json", "build", "top.yaml", "--remote", &url],
        BOUND,
    )
    .ok();
    built_here_with_one_warning(&run, &url);
}

#[test]
fn sigterm_and_sigint_end_cas_within_seconds_while_a_remote_hangs() {
    let ctx = project();
    let server = Server::start(Mode::Silent);
    for (signal, url) in [
        (libc::SIGTERM, server.grpc()),
        (libc::SIGINT, server.grpc()),
        (libc::SIGTERM, server.http()),
    ] {
        let (mut cmd, _) = ctx.command(["build", "top.yaml", "--remote", &url]);
        let err_path = ctx.path(".signal-err");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let sent = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > Duration::from_secs(5) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "signal {signal} to `cas build --remote {url}`: still running after 5 s:\n{}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        eprintln!(
            "signal {signal}, {url}: ended in {:.1} s with {status}",
            sent.elapsed().as_secs_f64()
        );
        assert!(!status.success(), "an interrupted build fails:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A cache that reads each upload's head and then resets the connection
/// (`SO_LINGER` 0) without reading its body, as a proxy rejecting a large
/// upload does; every other request is answered `404`.
fn start_hanging_up() -> String {
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    if line.starts_with("PUT") && length > 1 << 20 {
                        let linger = libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        };
                        // SAFETY: setsockopt on our own socket with a linger struct.
                        unsafe {
                            libc::setsockopt(
                                conn.as_raw_fd(),
                                libc::SOL_SOCKET,
                                libc::SO_LINGER,
                                std::ptr::from_ref(&linger).cast(),
                                std::mem::size_of::<libc::linger>() as libc::socklen_t,
                            );
                        }
                        return;
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err()
                        || conn
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/cache")
}

/// A remote that hangs up in the middle of an upload fails that push, with
/// a warning naming it: cas is never killed by SIGPIPE (which it keeps at
/// its default for a closed stdout), and the build it pushed is a success.
#[test]
fn a_remote_that_resets_an_upload_fails_the_push_and_never_kills_cas() {
    let ctx = busybox_project();
    ctx.write(
        "elements/big.yaml",
        manual(
            &[],
            "    - mkdir -p %{install-root}/data\n    - head -c 33554432 /dev/urandom > %{install-root}/data/blob\n",
        ),
    );
    let url = start_hanging_up();
    for _ in 0..3 {
        let run = bounded(
            &ctx,
            &["--json", "build", "big.yaml", "--remote", &url, "--push"],
            BOUND,
        );
        assert_ne!(run.code, -1, "cas was killed by a signal:\n{}", run.stderr);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains("warning:") && l.contains("127.0.0.1")),
            "the failed push is said:\n{}",
            run.stderr
        );
    }
}

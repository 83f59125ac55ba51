//! Black-box tests of sources through `cas`: every kind staged by a real
//! build, downloads counted by a tiny HTTP server on 127.0.0.1, checksum
//! mismatches, mirrors from the user configuration, offline builds, hostile
//! archives, `cas fetch`, `cas source add`, `cas source track`, and resumed
//! downloads after a dropped connection.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ctx::{Ctx, Run};

// ------------------------------------------------------------------ the server

#[derive(Default)]
pub(crate) struct ServerState {
    files: HashMap<String, Vec<u8>>,
    /// Every request: path and its `Range` header.
    hits: Vec<(String, Option<String>)>,
    /// Paths whose first download is cut in the middle.
    drop_first: HashSet<String>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 (one thread per connection), stopped
/// and closed when dropped.
pub(crate) struct Server {
    port: u16,
    state: Arc<Mutex<ServerState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ServerState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn put(&self, path: &str, data: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), data.into());
    }

    pub(crate) fn drop_first(&self, path: &str) {
        self.state
            .lock()
            .unwrap()
            .drop_first
            .insert(path.to_owned());
    }

    pub(crate) fn hits(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<ServerState>) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_owned());
            }
        }
    }
    let (body, cut) = {
        let mut s = state.lock().unwrap();
        s.hits.push((path.clone(), range.clone()));
        let first_time = s.hits.iter().filter(|(p, _)| *p == path).count() == 1;
        (
            s.files.get(&path).cloned(),
            first_time && s.drop_first.contains(&path),
        )
    };
    let mut conn = conn;
    let Some(body) = body else {
        conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        )?;
        return Ok(());
    };
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < body.len());
    if let Some(n) = start {
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            body.len() - n,
            n,
            body.len() - 1,
            body.len()
        );
        conn.write_all(head.as_bytes())?;
        conn.write_all(&body[n..])?;
    } else {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n", body.len());
        conn.write_all(head.as_bytes())?;
        if cut {
            conn.write_all(&body[..body.len() / 2])?;
            conn.flush()?;
            std::thread::sleep(Duration::from_millis(50));
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        conn.write_all(&body)?;
    }
    conn.flush()
}

// ------------------------------------------------------------------ helpers

pub(crate) fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn sha256(data: &[u8], tmp: &Path) -> String {
    let f = tmp.join(format!(".sha-{}", data.len()));
    std::fs::write(&f, data).unwrap();
    let out = sh(Command::new("sha256sum").arg(&f));
    let _ = std::fs::remove_file(&f);
    out.split_whitespace().next().unwrap().to_owned()
}

/// A tarball of `files` (path, content) under `top/`, compressed with `flag`
/// (`z`, `J`, `j`, or `--zstd`), made with the tar CLI.
pub(crate) fn tarball(
    ctx: &Ctx,
    name: &str,
    top: &str,
    files: &[(&str, &str)],
    flag: &str,
) -> Vec<u8> {
    let src = ctx.path(format!("tarsrc-{name}"));
    for (p, c) in files {
        let f = src.join(top).join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    let out = ctx.path(name);
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(&src);
    if flag.starts_with("--") {
        cmd.arg(flag).arg("-cf");
    } else {
        cmd.arg(format!("-c{flag}f"));
    }
    sh(cmd.arg(&out).arg(top));
    std::fs::read(out).unwrap()
}

/// A Debian package holding `files` (made with tar and ar).
pub(crate) fn deb(ctx: &Ctx, files: &[(&str, &str)]) -> Vec<u8> {
    let data = ctx.path("debsrc/data");
    for (p, c) in files {
        let f = data.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, c).unwrap();
    }
    deb_of(ctx, "t", &data)
}

/// A Debian package `name` whose data is the directory `data` (made with
/// tar and ar; xz data, gzip control).
pub(crate) fn deb_of(ctx: &Ctx, name: &str, data: &Path) -> Vec<u8> {
    let dir = ctx.path(format!("deb-{name}"));
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::write(
        dir.join("control/control"),
        format!("Package: {name}\nVersion: 1\nArchitecture: all\n"),
    )
    .unwrap();
    std::fs::write(dir.join("debian-binary"), "2.0\n").unwrap();
    sh(Command::new("tar")
        .arg("-C")
        .arg(data)
        .arg("-cJf")
        .arg(dir.join("data.tar.xz"))
        .arg("."));
    sh(Command::new("tar")
        .arg("-C")
        .arg(dir.join("control"))
        .arg("-czf")
        .arg(dir.join("control.tar.gz"))
        .arg("."));
    sh(Command::new("ar").current_dir(&dir).args([
        "rc",
        "p.deb",
        "debian-binary",
        "control.tar.gz",
        "data.tar.xz",
    ]));
    std::fs::read(dir.join("p.deb")).unwrap()
}

/// One ustar member written by hand (so that hostile members can be made).
pub(crate) fn tar_member(name: &str, typeflag: u8, link: &str, data: &[u8]) -> Vec<u8> {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{:0width$o}\0", v, width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 1);
    octal(&mut h[337..345], 3);
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

pub(crate) fn tar_of(members: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = members.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub(crate) fn project(ctx: &Ctx, server: &Server) {
    ctx.write(
        "project.yaml",
        format!(
            "name: t\nelement-path: elements\naliases:\n  upstream: {}\n",
            server.url("/files/")
        ),
    );
}

pub(crate) fn report_row<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {v}"))
}

pub(crate) fn state(ctx: &Ctx, target: &str) -> String {
    let run = ctx.cas(["--json", "show", target]).ok();
    let v = run.json();
    report_row(&v, target)["state"].as_str().unwrap().to_owned()
}

pub(crate) fn key(run: &Run, name: &str) -> String {
    report_row(&run.json(), name)["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn checkout(ctx: &Ctx, target: &str, dir: &str) -> std::path::PathBuf {
    let out = ctx.path(dir);
    ctx.cas(["checkout", target, out.to_str().unwrap()]).ok();
    out
}

pub(crate) fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(rel).display()))
}

// ------------------------------------------------------------------ tests

#[test]
fn every_kind_is_staged_by_a_real_build_and_shared_downloads_happen_once() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    let mut sources = String::new();
    for (name, flag) in [("gz", "z"), ("xz", "J"), ("bz2", "j"), ("zst", "--zstd")] {
        let data = tarball(
            &ctx,
            &format!("a.tar.{name}"),
            "pkg-1.0",
            &[("README", name), ("src/main.c", "int main;\n")],
            flag,
        );
        server.put(&format!("/files/a.tar.{name}"), data.clone());
        sources.push_str(&format!(
            "  - kind: tar\n    url: upstream:a.tar.{name}\n    sha256: {}\n    directory: {name}\n",
            sha256(&data, ctx.root())
        ));
    }
    server.put("/files/tool.sh", "#!/bin/sh\necho tool\n");
    sources.push_str(&format!(
        "  - kind: remote\n    url: {}\n    sha256: {}\n    executable: true\n    directory: bin\n",
        server.url("/files/tool.sh"),
        sha256(b"#!/bin/sh\necho tool\n", ctx.root())
    ));
    let debdata = deb(&ctx, &[("usr/share/doc/t/copyright", "free\n")]);
    server.put("/files/t.deb", debdata.clone());
    sources.push_str(&format!(
        "  - kind: deb\n    url: upstream:t.deb\n    sha256: {}\n    directory: deb\n",
        sha256(&debdata, ctx.root())
    ));
    // git: a local repository through a file:// URL
    let repo = ctx.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("hello.c"), "hello from git\n").unwrap();
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&repo)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@127.0.0.1",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
    sources.push_str(&format!(
        "  - kind: git\n    url: file://{}\n    ref: {commit}\n    directory: git\n",
        repo.display()
    ));
    // local + patch
    ctx.write("files/p/hello.txt", "hello\n");
    ctx.write(
        "patches/fix.patch",
        "--- a/p/hello.txt\n+++ b/p/hello.txt\n@@ -1 +1 @@\n-hello\n+hello patched\n",
    );
    sources.push_str(
        "  - kind: local\n    path: files\n  - kind: patch\n    path: patches/fix.patch\n",
    );
    ctx.write(
        "elements/all.yaml",
        format!("kind: import\nsources:\n{sources}"),
    );
    // a second element sharing the gzip tarball
    let gz = sha256(
        &server.state.lock().unwrap().files["/files/a.tar.gz"],
        ctx.root(),
    );
    ctx.write(
        "elements/again.yaml",
        format!(
            "kind: import\nsources:\n  - kind: tar\n    url: upstream:a.tar.gz\n    sha256: {gz}\n"
        ),
    );
    ctx.write(
        "elements/both.yaml",
        "kind: stack\ndepends:\n  - all.yaml\n  - again.yaml\n",
    );

    assert_eq!(state(&ctx, "all.yaml"), "fetch-needed");
    ctx.cas(["-j4", "build", "both.yaml"]).ok();
    let out = checkout(&ctx, "all.yaml", "out");
    for name in ["gz", "xz", "bz2", "zst"] {
        assert_eq!(read(&out, &format!("{name}/README")), name);
        assert_eq!(read(&out, &format!("{name}/src/main.c")), "int main;\n");
    }
    assert_eq!(read(&out, "bin/tool.sh"), "#!/bin/sh\necho tool\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(out.join("bin/tool.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(read(&out, "deb/usr/share/doc/t/copyright"), "free\n");
    assert_eq!(read(&out, "git/hello.c"), "hello from git\n");
    assert_eq!(read(&out, "p/hello.txt"), "hello patched\n");
    assert!(!out.join("p/hello.txt.orig").exists());
    let again = checkout(&ctx, "again.yaml", "out2");
    assert_eq!(read(&again, "README"), "gz");
    assert_eq!(
        server.hits("/files/a.tar.gz").len(),
        1,
        "the shared tarball was downloaded more than once"
    );
    assert_eq!(state(&ctx, "all.yaml"), "cached");
}

#[test]
fn checksum_mismatch_names_url_and_both_checksums_caches_nothing_and_keep_going_continues() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    server.put("/files/bad.txt", "actual content\n");
    server.put("/files/good.txt", "good\n");
    let actual = sha256(b"actual content\n", ctx.root());
    let wrong = "0".repeat(64);
    ctx.write("elements/bad.yaml", format!("kind: import\nsources:\n  - kind: remote\n    url: upstream:bad.txt\n    sha256: {wrong}\n"));
    ctx.write(
        "elements/good.yaml",
        format!("kind: import\nsources:\n  - kind: remote\n    url: upstream:good.txt\n    sha256: {}\n", sha256(b"good\n", ctx.root())),
    );
    ctx.write(
        "elements/all.yaml",
        "kind: stack\ndepends:\n  - bad.yaml\n  - good.yaml\n",
    );
    let run = ctx
        .cas(["--json", "build", "--keep-going", "all.yaml"])
        .expect_code(1);
    assert!(
        run.stderr.contains(&server.url("/files/bad.txt")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("sha256:{wrong}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("sha256:{actual}")),
        "{}",
        run.stderr
    );
    let v = run.json();
    assert_eq!(report_row(&v, "good.yaml")["status"], "built");
    assert_eq!(report_row(&v, "bad.yaml")["status"], "failed");
    // Nothing entered the cache: an element pinning the actual checksum still needs a fetch.
    ctx.write("elements/actual.yaml", format!("kind: import\nsources:\n  - kind: remote\n    url: http://127.0.0.1:1/bad.txt\n    sha256: {actual}\n"));
    assert_eq!(state(&ctx, "actual.yaml"), "fetch-needed");
    assert_eq!(state(&ctx, "bad.yaml"), "fetch-needed");
    let tmp: Vec<_> = std::fs::read_dir(ctx.store().join("tmp"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

#[test]
fn mirrors_from_the_user_config_are_tried_in_order_and_never_change_the_key() {
    let ctx = Ctx::new();
    let server = Server::start();
    // upstream itself is dead; the first mirror answers 404, the second serves the file
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\naliases:\n  upstream: http://127.0.0.1:1/dead/\n",
    );
    let data = tarball(&ctx, "m.tar.gz", "m-1", &[("file", "mirrored\n")], "z");
    server.put("/second/m.tar.gz", data.clone());
    ctx.write(
        "elements/m.yaml",
        format!(
            "kind: import\nsources:\n  - kind: tar\n    url: upstream:m.tar.gz\n    sha256: {}\n",
            sha256(&data, ctx.root())
        ),
    );
    let config = ctx.path("config.yaml");
    std::fs::write(
        &config,
        format!(
            "# mirrors for the test\nmirrors:\n  upstream:\n    - {}\n    - {}\n",
            server.url("/first/"),
            server.url("/second/")
        ),
    )
    .unwrap();
    let without = key(&ctx.cas(["--json", "show", "m.yaml"]).ok(), "m.yaml");
    let with = key(
        &ctx.cas([
            "--json",
            "--config",
            config.to_str().unwrap(),
            "show",
            "m.yaml",
        ])
        .ok(),
        "m.yaml",
    );
    assert_eq!(without, with);
    // The default file is read too ($XDG_CONFIG_HOME unset: ~/.config/cas/config.yaml).
    let home_config = ctx.path("home/.config/cas/config.yaml");
    std::fs::create_dir_all(home_config.parent().unwrap()).unwrap();
    std::fs::copy(&config, &home_config).unwrap();
    let run = ctx.cas(["--json", "build", "m.yaml"]).ok();
    assert_eq!(key(&run, "m.yaml"), without);
    assert_eq!(server.hits("/first/m.tar.gz").len(), 1);
    assert_eq!(server.hits("/second/m.tar.gz").len(), 1);
    let out = checkout(&ctx, "m.yaml", "out");
    assert_eq!(read(&out, "file"), "mirrored\n");
}

#[test]
fn user_config_errors_are_located_and_exit_2() {
    let ctx = Ctx::new();
    ctx.write("elements/e.yaml", "kind: stack\n");
    let config = ctx.path("bad.yaml");
    std::fs::write(&config, "mirrors:\n  upstream:\n    - ftp://127.0.0.1/x/\nremotes:\n  - url: http://127.0.0.1:8080/cache\n    pushh: true\n").unwrap();
    let run = ctx
        .cas([
            "--config",
            config.to_str().unwrap(),
            "build",
            "elements/e.yaml",
        ])
        .expect_code(2);
    assert!(run.stderr.contains("bad.yaml:3:"), "{}", run.stderr);
    assert!(run.stderr.contains("did you mean `push`"), "{}", run.stderr);
    let (mut cmd, _) = ctx.command(["show", "elements/e.yaml"]);
    let out = cmd
        .env("CAS_CONFIG", ctx.path("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
    std::fs::write(&config, "mirrors: [\n").unwrap();
    ctx.cas([
        "--config",
        config.to_str().unwrap(),
        "fetch",
        "elements/e.yaml",
    ])
    .expect_code(2);
}

#[test]
fn offline_after_fetch_succeeds_and_missing_sources_are_all_named() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    let data = tarball(&ctx, "o.tar.xz", "o-1", &[("x", "offline\n")], "J");
    server.put("/files/o.tar.xz", data.clone());
    ctx.write(
        "elements/one.yaml",
        format!(
            "kind: import\nsources:\n  - kind: tar\n    url: upstream:o.tar.xz\n    sha256: {}\n",
            sha256(&data, ctx.root())
        ),
    );
    ctx.write(
        "elements/two.yaml",
        format!(
            "kind: import\nsources:\n  - kind: remote\n    url: upstream:first.txt\n    sha256: {}\n  - kind: remote\n    url: upstream:second.txt\n    sha256: {}\n",
            "1".repeat(64),
            "2".repeat(64)
        ),
    );
    assert_eq!(state(&ctx, "one.yaml"), "fetch-needed");
    let run = ctx.cas(["fetch", "one.yaml"]).ok();
    assert!(run.stderr.contains("1 fetched"), "{}", run.stderr);
    assert_eq!(state(&ctx, "one.yaml"), "buildable");
    let hits = server.hits("/files/o.tar.xz").len();
    drop(server);
    ctx.cas(["build", "--offline", "one.yaml"]).ok();
    let out = checkout(&ctx, "one.yaml", "out");
    assert_eq!(read(&out, "x"), "offline\n");
    assert_eq!(hits, 1);
    let run = ctx.cas(["build", "--offline", "two.yaml"]).expect_code(1);
    assert!(run.stderr.contains("upstream:first.txt"), "{}", run.stderr);
    assert!(run.stderr.contains("upstream:second.txt"), "{}", run.stderr);
}

#[test]
fn fetch_reports_each_failure_and_fetches_the_others() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    server.put("/files/ok.txt", "ok\n");
    let ok = sha256(b"ok\n", ctx.root());
    ctx.write(
        "elements/e.yaml",
        format!(
            "kind: import\nsources:\n  - kind: remote\n    url: upstream:missing.txt\n    sha256: {}\n  - kind: remote\n    url: upstream:ok.txt\n    sha256: {ok}\n  - kind: remote\n    url: upstream:gone.txt\n    sha256: {}\n",
            "3".repeat(64),
            "4".repeat(64)
        ),
    );
    let run = ctx.cas(["--json", "fetch", "e.yaml"]).expect_code(1);
    assert!(
        run.stderr.contains(&server.url("/files/missing.txt")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&server.url("/files/gone.txt")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["fetched"], 1);
    assert_eq!(v["failed"].as_array().unwrap().len(), 2);
    assert_eq!(server.hits("/files/ok.txt").len(), 1);
    // fetched once: a second fetch only reports the failures again
    ctx.cas(["fetch", "e.yaml"]).expect_code(1);
    assert_eq!(server.hits("/files/ok.txt").len(), 1);
}

#[test]
fn hostile_tarballs_are_refused_and_nothing_outside_is_written() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    let abs = ctx.path("abs-written");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            tar_of(&[tar_member("../../../../escape", b'0', "", b"pwned\n")]),
        ),
        (
            "absolute",
            tar_of(&[tar_member(abs.to_str().unwrap(), b'0', "", b"pwned\n")]),
        ),
        (
            "symlink",
            tar_of(&[
                tar_member("d/", b'5', "", b""),
                tar_member("d/link", b'2', "../../../../../..", b""),
                tar_member("d/link/escape-link", b'0', "", b"pwned\n"),
            ]),
        ),
        (
            "device",
            tar_of(&[
                tar_member("d/", b'5', "", b""),
                tar_member("d/null", b'3', "", b""),
            ]),
        ),
    ];
    for (name, data) in &cases {
        server.put(&format!("/files/{name}.tar"), data.clone());
        ctx.write(
            format!("elements/{name}.yaml"),
            format!("kind: import\nsources:\n  - kind: tar\n    url: upstream:{name}.tar\n    sha256: {}\n", sha256(data, ctx.root())),
        );
        let run = ctx.cas(["build", &format!("{name}.yaml")]).expect_code(1);
        assert!(
            run.stderr.contains("refusing member"),
            "{name}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("upstream:{name}.tar")),
            "{name}: {}",
            run.stderr
        );
    }
    assert!(!abs.exists());
    for dir in [
        ctx.root().to_path_buf(),
        ctx.project(),
        ctx.store(),
        std::path::PathBuf::from("/tmp"),
    ] {
        for f in ["escape", "escape-link"] {
            let p = dir.join(f);
            assert!(
                !p.exists() || std::fs::read_to_string(&p).map_or(true, |s| s != "pwned\n"),
                "{} was written",
                p.display()
            );
        }
    }
}

/// A zip file: (path, file content or `->target` for a symlink, mode).
pub(crate) fn zip_of(members: &[(&str, &str, u32)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, content, mode) in members {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        if let Some(target) = content.strip_prefix("->") {
            w.add_symlink(*path, target, opts).unwrap();
        } else if path.ends_with('/') {
            w.add_directory(*path, opts).unwrap();
        } else {
            w.start_file(*path, opts).unwrap();
            w.write_all(content.as_bytes()).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn zip_archives_stage_like_tarballs_and_hostile_members_are_refused() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    // a release zip: one top directory (stripped), an executable, a
    // setuid bit (dropped), a symlink kept as content
    let good = zip_of(&[
        ("fonts-2.0/", "", 0o755),
        ("fonts-2.0/bin/run", "#!/bin/sh\n", 0o4755),
        ("fonts-2.0/share/a.otf", "otf\n", 0o644),
        ("fonts-2.0/share/latest.otf", "->a.otf", 0o777),
    ]);
    server.put("/files/fonts.zip", good.clone());
    ctx.write(
        "elements/fonts.yaml",
        format!(
            "kind: import\nsources:\n  - kind: tar\n    url: upstream:fonts.zip\n    sha256: {}\n",
            sha256(&good, ctx.root())
        ),
    );
    ctx.cas(["build", "fonts.yaml"]).ok();
    let out = ctx.path("out");
    ctx.cas(["checkout", "fonts.yaml", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("share/a.otf")).unwrap(),
        "otf\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("share/latest.otf")).unwrap(),
        std::path::PathBuf::from("a.otf")
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("bin/run"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7777, 0o755, "executable kept, setuid dropped");
    // hostile members: climbing, absolute, written through a symlink
    let abs = ctx.path("abs-written");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "zdotdot",
            zip_of(&[("../../../../escape", "pwned\n", 0o644)]),
        ),
        (
            "zabsolute",
            zip_of(&[(abs.to_str().unwrap(), "pwned\n", 0o644)]),
        ),
        (
            "zsymlink",
            zip_of(&[
                ("d/link", "->../../../../../..", 0o777),
                ("d/link/escape-link", "pwned\n", 0o644),
            ]),
        ),
    ];
    for (name, data) in &cases {
        server.put(&format!("/files/{name}.zip"), data.clone());
        ctx.write(
            format!("elements/{name}.yaml"),
            format!(
                "kind: import\nsources:\n  - kind: tar\n    url: upstream:{name}.zip\n    sha256: {}\n    base-dir: ''\n",
                sha256(data, ctx.root())
            ),
        );
        let run = ctx.cas(["build", &format!("{name}.yaml")]).expect_code(1);
        assert!(
            run.stderr.contains("refusing member"),
            "{name}: {}",
            run.stderr
        );
    }
    assert!(!abs.exists());
    for dir in [
        ctx.root().to_path_buf(),
        ctx.project(),
        ctx.store(),
        std::path::PathBuf::from("/tmp"),
    ] {
        for f in ["escape", "escape-link"] {
            let p = dir.join(f);
            assert!(
                !p.exists() || std::fs::read_to_string(&p).map_or(true, |s| s != "pwned\n"),
                "{} was written",
                p.display()
            );
        }
    }
}

#[test]
fn track_writes_the_checksum_and_keeps_comments() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    let data = tarball(&ctx, "t.tar.bz2", "t-2", &[("v", "2\n")], "j");
    server.put("/files/t.tar.bz2", data.clone());
    let old = "0".repeat(64);
    let text = format!(
        "# Tracked element.\nkind: import   # no sandbox\nsources:\n  # the release tarball\n  - kind: tar\n    url: upstream:t.tar.bz2   # upstream\n    sha256: {old}  # pinned by cas source track\n    base-dir: ''\n"
    );
    let file = ctx.write("elements/t.yaml", &text);
    ctx.cas(["build", "t.yaml"]).expect_code(1);
    let run = ctx.cas(["source", "track", "t.yaml"]).ok();
    let new = sha256(&data, ctx.root());
    assert!(
        run.stdout.contains(&format!("{old} → {new}")),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text.replace(&old, &new)
    );
    let hits = server.hits("/files/t.tar.bz2").len();
    // the download was kept: the build needs no network
    ctx.cas(["build", "--offline", "t.yaml"]).ok();
    let out = checkout(&ctx, "t.yaml", "out");
    assert_eq!(read(&out, "t-2/v"), "2\n");
    // tracking again changes nothing
    let run = ctx.cas(["source", "track", "t.yaml", "--source", "1"]).ok();
    assert!(run.stdout.contains("unchanged"), "{}", run.stdout);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text.replace(&old, &new)
    );
    assert_eq!(server.hits("/files/t.tar.bz2").len(), hits + 1);
    ctx.cas(["source", "track", "t.yaml", "--source", "2"])
        .expect_code(2);
}

#[test]
fn track_git_resolves_the_branch_to_its_commit() {
    let ctx = Ctx::new();
    let repo = ctx.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        sh(Command::new("git")
            .current_dir(&repo)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@127.0.0.1",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args))
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("f"), "1\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "one"]);
    let first = git(&["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::write(repo.join("f"), "2\n").unwrap();
    git(&["commit", "-q", "-am", "two"]);
    let second = git(&["rev-parse", "HEAD"]).trim().to_owned();
    let text = format!("kind: import\nsources:\n  - kind: git   # the repo\n    url: file://{}\n    ref: \"{first}\"  # old\n    track: main\n", repo.display());
    let file = ctx.write("elements/g.yaml", &text);
    ctx.cas(["source", "track", "elements/g.yaml"]).ok();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text.replace(&first, &second)
    );
    ctx.cas(["build", "elements/g.yaml"]).ok();
    let out = checkout(&ctx, "elements/g.yaml", "out");
    assert_eq!(read(&out, "f"), "2\n");
}

#[test]
fn source_add_fills_the_cache_for_offline_builds() {
    let ctx = Ctx::new();
    let file = ctx.path("by-hand.txt");
    std::fs::write(&file, "carried on a USB stick\n").unwrap();
    let run = ctx.cas(["source", "add", file.to_str().unwrap()]).ok();
    let sha = sha256(b"carried on a USB stick\n", ctx.root());
    assert!(
        run.stdout.contains(&format!("sha256: {sha}")),
        "{}",
        run.stdout
    );
    let b3 = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("blake3: "))
        .expect("blake3 printed")
        .to_owned();
    assert_eq!(b3.len(), 64);
    ctx.write(
        "elements/e.yaml",
        format!(
            "kind: import\nsources:\n  - kind: remote\n    url: http://127.0.0.1:1/by-hand.txt\n    sha256: {sha}\n  - kind: remote\n    url: http://127.0.0.1:1/by-hand.txt\n    blake3: {b3}\n    filename: copy.txt\n"
        ),
    );
    ctx.cas(["build", "--offline", "elements/e.yaml"]).ok();
    let out = checkout(&ctx, "elements/e.yaml", "out");
    assert_eq!(read(&out, "by-hand.txt"), "carried on a USB stick\n");
    assert_eq!(read(&out, "copy.txt"), "carried on a USB stick\n");
    ctx.cas(["source", "add", ctx.path("nope").to_str().unwrap()])
        .expect_code(2);
}

#[test]
fn a_dropped_connection_is_resumed() {
    let ctx = Ctx::new();
    let server = Server::start();
    project(&ctx, &server);
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    server.put("/files/big.bin", big.clone());
    server.drop_first("/files/big.bin");
    ctx.write(
        "elements/big.yaml",
        format!(
            "kind: import\nsources:\n  - kind: remote\n    url: upstream:big.bin\n    sha256: {}\n",
            sha256(&big, ctx.root())
        ),
    );
    ctx.cas(["build", "big.yaml"]).ok();
    let out = checkout(&ctx, "big.yaml", "out");
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
    let hits = server.hits("/files/big.bin");
    assert!(hits.len() >= 2, "{hits:?}");
    assert_eq!(
        hits[1].as_deref(),
        Some(format!("bytes={}-", big.len() / 2).as_str()),
        "{hits:?}"
    );
}

#[test]
fn a_mirror_configured_only_in_the_user_config_serves_build_shell_fetch_and_pull() {
    let ctx = crate::ctx::busybox_project();
    let server = Server::start();
    ctx.write(
        "project.yaml",
        "name: t\nelement-path: elements\naliases:\n  upstream: http://127.0.0.1:1/dead/\n",
    );
    let data = tarball(
        &ctx,
        "m.tar.gz",
        "m-1",
        &[("file", "from the mirror\n")],
        "z",
    );
    server.put("/mirror/m.tar.gz", data.clone());
    ctx.write(
        "elements/m.yaml",
        format!(
            "kind: manual\nbuild-depends: [base.yaml]\nsources:\n  - kind: tar\n    url: upstream:m.tar.gz\n    sha256: {}\nconfig:\n  install-commands:\n    - mkdir -p %{{install-root}}\n    - cp file %{{install-root}}/\n",
            sha256(&data, ctx.root())
        ),
    );
    let config = ctx.path("config.yaml");
    std::fs::write(
        &config,
        format!("mirrors:\n  upstream:\n    - {}\n", server.url("/mirror/")),
    )
    .unwrap();
    // Each command on a store of its own, the mirror only in the configuration.
    let with = |store: &str, args: &[&str]| {
        let (mut cmd, _) = ctx.command(args);
        cmd.env("CAS_STORE", ctx.path(store))
            .env("CAS_CONFIG", &config);
        cmd
    };
    let run = |store: &str, args: &[&str]| {
        let mut cmd = with(store, args);
        Run::from_output(
            args.iter().map(std::string::ToString::to_string).collect(),
            cmd.output().unwrap(),
        )
    };
    run("fetch-store", &["fetch", "m.yaml"]).ok();
    assert_eq!(server.hits("/mirror/m.tar.gz").len(), 1);
    run("build-store", &["build", "m.yaml"]).ok();
    assert_eq!(server.hits("/mirror/m.tar.gz").len(), 2);
    // cas shell stages the sources, fetched through the mirror.
    run("shell-store", &["build", "base.yaml"]).ok();
    let mut shell = with("shell-store", &["shell", "m.yaml"]);
    let mut child = shell
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"cat file\nexit 0\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("from the mirror"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.hits("/mirror/m.tar.gz").len(), 3);
    // pull and push run with the same configuration (nothing to download here).
    let remote = ctx.path("remote");
    run(
        "build-store",
        &["push", "m.yaml", "--remote", remote.to_str().unwrap()],
    )
    .ok();
    run(
        "pull-store",
        &[
            "pull",
            "m.yaml",
            "--remote",
            remote.to_str().unwrap(),
            "--trust-unsigned",
        ],
    )
    .ok();
}

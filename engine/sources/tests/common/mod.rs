//! Test helpers: a tiny HTTP/1.1 server on 127.0.0.1 that can misbehave on
//! demand, archive builders (including hostile members) and source makers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cas_sources::checksum::{hash_reader, Algorithm};
use cas_sources::{Checksum, Source, SourceKind, SourceUrl};

/// How the server answers one path.
#[derive(Debug, Clone)]
pub(crate) enum Behavior {
    Normal,
    NotFound,
    /// Answer this status `times` times, then serve normally.
    StatusTimes {
        status: u16,
        times: usize,
    },
    /// Send the full headers but only `after` body bytes and close, once;
    /// then serve normally, honouring `Range` only if `ranges`.
    DropOnce {
        after: usize,
        ranges: bool,
    },
    /// Wait before answering, the first `times` requests.
    DelayTimes {
        delay: Duration,
        times: usize,
    },
}

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    behaviors: HashMap<String, Behavior>,
    requests: HashMap<String, usize>,
    range_requests: HashMap<String, usize>,
}

pub(crate) struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
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
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn serve(&self, path: &str, content: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(norm(path), content.to_vec());
    }

    pub(crate) fn behave(&self, path: &str, behavior: Behavior) {
        self.state
            .lock()
            .unwrap()
            .behaviors
            .insert(norm(path), behavior);
    }

    pub(crate) fn requests(&self, path: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .requests
            .get(&norm(path))
            .unwrap_or(&0)
    }

    pub(crate) fn range_requests(&self, path: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .range_requests
            .get(&norm(path))
            .unwrap_or(&0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn norm(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

fn handle(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range: Option<u64> = None;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            let v = v.trim();
            if let Some(start) = v.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')) {
                range = start.parse().ok();
            }
        }
    }
    let (content, behavior) = {
        let mut st = state.lock().unwrap();
        *st.requests.entry(path.clone()).or_default() += 1;
        if range.is_some() {
            *st.range_requests.entry(path.clone()).or_default() += 1;
        }
        let behavior = st.behaviors.get(&path).cloned().unwrap_or(Behavior::Normal);
        // Consume one-shot behaviours.
        let next = match &behavior {
            Behavior::StatusTimes { status, times } if *times > 1 => Some(Behavior::StatusTimes {
                status: *status,
                times: times - 1,
            }),
            Behavior::StatusTimes { .. } => Some(Behavior::Normal),
            Behavior::DropOnce { ranges, .. } => Some(if *ranges {
                Behavior::Normal
            } else {
                Behavior::DropOnce {
                    after: usize::MAX,
                    ranges: false,
                }
            }),
            Behavior::DelayTimes { delay, times } if *times > 1 => Some(Behavior::DelayTimes {
                delay: *delay,
                times: times - 1,
            }),
            Behavior::DelayTimes { .. } => Some(Behavior::Normal),
            _ => None,
        };
        if let Some(next) = next {
            st.behaviors.insert(path.clone(), next);
        }
        (st.files.get(&path).cloned(), behavior)
    };
    let mut out = conn;
    let status_only = |out: &mut TcpStream, code: u16| {
        write!(
            out,
            "HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let mut ranges = true;
    match behavior {
        Behavior::NotFound => return status_only(&mut out, 404),
        Behavior::StatusTimes { status, .. } => return status_only(&mut out, status),
        Behavior::DelayTimes { delay, .. } => std::thread::sleep(delay),
        Behavior::DropOnce { after, ranges: r } if after != usize::MAX => {
            let Some(content) = content else {
                return status_only(&mut out, 404);
            };
            let accept = if r { "Accept-Ranges: bytes\r\n" } else { "" };
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{accept}Connection: close\r\n\r\n",
                content.len()
            )?;
            out.write_all(&content[..after.min(content.len())])?;
            out.flush()?;
            return out.shutdown(std::net::Shutdown::Both);
        }
        Behavior::DropOnce { ranges: r, .. } => ranges = r,
        Behavior::Normal => {}
    }
    let Some(content) = content else {
        return status_only(&mut out, 404);
    };
    match range {
        Some(start) if ranges && (start as usize) < content.len() => {
            let body = &content[start as usize..];
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                body.len(),
                start,
                content.len() - 1,
                content.len()
            )?;
            out.write_all(body)?;
        }
        _ => {
            let accept = if ranges {
                "Accept-Ranges: bytes\r\n"
            } else {
                ""
            };
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{accept}Connection: close\r\n\r\n",
                content.len()
            )?;
            out.write_all(&content)?;
        }
    }
    out.flush()
}

// ---------------------------------------------------------------- sources

pub(crate) fn sha256(bytes: &[u8]) -> Checksum {
    hash_reader(Algorithm::Sha256, bytes).expect("hash")
}

pub(crate) fn plain_url(url: &str) -> SourceUrl {
    SourceUrl {
        written: url.to_string(),
        alias: None,
        resolved: url.to_string(),
    }
}

pub(crate) fn source(kind: SourceKind) -> Source {
    Source {
        kind,
        directory: None,
        keep_setuid: false,
    }
}

pub(crate) fn tar_source(url: &str, checksum: Checksum, base_dir: Option<&str>) -> Source {
    source(SourceKind::Tar {
        url: plain_url(url),
        checksum,
        base_dir: base_dir.map(str::to_string),
    })
}

// ---------------------------------------------------------------- archives

/// One member of a test archive.
pub(crate) enum Member<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDevice(&'a str),
    Fifo(&'a str),
}

/// Build a plain tar, writing member names as raw bytes (so that hostile
/// names survive the tar crate's own checks).
pub(crate) fn tar_bytes(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_ustar();
        let (name, link, kind, data, mode): (&str, Option<&str>, tar::EntryType, &[u8], u32) =
            match m {
                Member::File(n, d, mode) => (n, None, tar::EntryType::Regular, d, *mode),
                Member::Dir(n) => (n, None, tar::EntryType::Directory, &[], 0o755),
                Member::Symlink(n, t) => (n, Some(t), tar::EntryType::Symlink, &[], 0o777),
                Member::Hardlink(n, t) => (n, Some(t), tar::EntryType::Link, &[], 0o644),
                Member::CharDevice(n) => (n, None, tar::EntryType::Char, &[], 0o600),
                Member::Fifo(n) => (n, None, tar::EntryType::Fifo, &[], 0o600),
            };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_000_000_000);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                old.linkname = [0; 100];
                old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// An `ar` archive of (name, data) members.
pub(crate) fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        out.extend_from_slice(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                "100644",
                data.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// Every path under `root`, relative, sorted (to check that nothing
/// appeared where it should not).
pub(crate) fn listing(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

pub(crate) fn run(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

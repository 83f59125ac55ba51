//! Remote artifact caches (spec/remote.md).
//!
//! - [`Remote`]: the one interface every backend implements: objects (blobs
//!   and trees, named by their blake3 digest) and action results (named by
//!   their action key). The engine only ever sees this trait.
//! - [`http`]: Bazel's HTTP cache layout (`{base}/cas/{hex}`, `{base}/ac/{hex}`)
//!   over any server that accepts `PUT` (nginx + WebDAV, bazel-remote, ...).
//! - [`dir`]: the same layout in a directory (a shared network filesystem).
//! - [`result`]: the byte-for-byte encoding of an action result and its
//!   ed25519 signatures; trust decisions.
//! - [`transfer`]: parallel, verified download and upload of trees, blobs
//!   and results between a store and a remote.
//!
//! - [`Guarded`]: a remote with its budget of waiting for the run
//!   (`CAS_REMOTE_TIMEOUT`); a remote that makes cas wait, crawls or sends
//!   more than it may is given up for the rest of the run. [`Pace`] and
//!   [`copy_bounded`] bound every download.
//!
//! A remote is never trusted for content: every object is verified against
//! its digest on arrival. Action results are trusted only when signed by a
//! trusted key (or when the remote is explicitly marked `trust-unsigned`).

pub mod dir;
pub mod http;
pub mod pulled;
pub mod result;
pub mod transfer;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::digest::{ActionKey, Digest};
use crate::error::StoreError;

pub use result::{
    decode_result, encode_result, generate_signing_key, read_signing_key, sign_result,
    verify_result, verify_result_signed, write_key_pair, KeyError, PublicKey, Rejection,
    SigningKey, Trust,
};
pub use transfer::{Counters, TransferStats};

/// Everything that can go wrong talking to a remote. Messages name the remote
/// and the digest or key involved.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote {url}: {message}")]
    Transport { url: String, message: String },
    #[error("remote {url}: {what} answered HTTP {status}")]
    Status {
        url: String,
        what: String,
        status: u16,
    },
    #[error("remote {url}: {op} {path}: {source}")]
    Io {
        url: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remote {url}: object {digest} is corrupt: its content hashes to {actual}")]
    Corrupt {
        url: String,
        digest: String,
        actual: String,
    },
    #[error("remote {url}: object {digest} is malformed: {reason}")]
    Malformed {
        url: String,
        digest: String,
        reason: String,
    },
    #[error("remote {url}: object {digest} is larger than the {limit} bytes it may have; the download was cut off there")]
    TooLarge {
        url: String,
        digest: String,
        limit: u64,
    },
    #[error("remote {url}: object {digest} came without a Content-Length, and its size is not known here: refused")]
    Undeclared { url: String, digest: String },
    #[error("remote {url}: the download of {digest} took longer than its limit of {seconds} s")]
    TimedOut {
        url: String,
        digest: String,
        seconds: u64,
    },
    #[error("remote {url}: the download of {digest} is too slow: {bytes} bytes in {seconds} s (at least 10 KiB/s are needed)")]
    TooSlow {
        url: String,
        digest: String,
        bytes: u64,
        seconds: u64,
    },
    #[error("remote {url}: interrupted")]
    Interrupted { url: String },
    #[error("remote {url}: object {digest} is missing")]
    Missing { url: String, digest: String },
    #[error("not a remote URL: {url:?} ({reason}); use http://, https://, file:// or an absolute directory")]
    BadUrl { url: String, reason: String },
    /// A setting of the remote that cannot be used (a header value, a TLS
    /// file): the message names the setting, never a secret value.
    #[error("remote {url}: {message}")]
    Setting { url: String, message: String },
    #[error("remote {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl RemoteError {
    /// The URL of the remote the error is about.
    pub fn url(&self) -> &str {
        match self {
            RemoteError::Transport { url, .. }
            | RemoteError::Status { url, .. }
            | RemoteError::Io { url, .. }
            | RemoteError::Corrupt { url, .. }
            | RemoteError::Malformed { url, .. }
            | RemoteError::TooLarge { url, .. }
            | RemoteError::Undeclared { url, .. }
            | RemoteError::TimedOut { url, .. }
            | RemoteError::TooSlow { url, .. }
            | RemoteError::Interrupted { url }
            | RemoteError::Missing { url, .. }
            | RemoteError::BadUrl { url, .. }
            | RemoteError::Setting { url, .. }
            | RemoteError::Store { url, .. } => url,
        }
    }

    /// Does this error mean the remote cannot be used for the rest of the
    /// run (it made cas wait too long, or sent more than it may)? Such a
    /// remote is given up by [`Guarded`].
    pub fn gives_up(&self) -> bool {
        matches!(
            self,
            RemoteError::TimedOut { .. }
                | RemoteError::TooSlow { .. }
                | RemoteError::TooLarge { .. }
                | RemoteError::Undeclared { .. }
        )
    }

    /// The message without its leading `remote URL: `.
    pub fn without_url(&self) -> String {
        let s = self.to_string();
        let prefix = format!("remote {}: ", self.url());
        s.strip_prefix(&prefix).map_or(s.clone(), str::to_string)
    }
}

/// How much of one object may be downloaded, and how (spec/remote.md
/// "Download limits"): a blob never has more bytes than its tree entry
/// states, no transfer runs forever, and none may crawl.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// The most bytes the object may have.
    pub bytes: u64,
    /// Whether `bytes` is the object's own size (a blob's size from its
    /// tree entry), not only a ceiling (trees, logs, manifests): a server
    /// that does not say how long a body is may be read only then.
    pub exact: bool,
    /// No byte is read after this.
    pub deadline: Instant,
    /// How long the transfer may wait beyond what its bytes need at
    /// [`MIN_RATE`] (after [`GRACE`]): what is left of the remote's budget
    /// of waiting for the run ([`Guarded`]).
    pub stall: Duration,
    /// What stops it early (the remote's; see [`Remote::interrupt`]).
    pub interrupt: Interrupt,
}

impl Limit {
    /// `bytes` at most (a ceiling), within `base` plus one second per MiB,
    /// with the default budget of waiting ([`budget_from_env`]).
    pub fn new(bytes: u64, base: Duration) -> Limit {
        Limit {
            bytes,
            exact: false,
            deadline: Instant::now() + base + Duration::from_secs(bytes >> 20),
            stall: budget_from_env(),
            interrupt: Interrupt::never(),
        }
    }

    /// Stopped early by `interrupt`.
    pub fn interrupted_by(mut self, interrupt: Interrupt) -> Limit {
        self.interrupt = interrupt;
        self
    }

    /// `bytes` is the object's exact size.
    pub fn exact(mut self, exact: bool) -> Limit {
        self.exact = exact;
        self
    }

    /// The transfer may wait `stall` at most (see [`Limit::stall`]).
    pub fn stall(mut self, stall: Duration) -> Limit {
        self.stall = stall;
        self
    }

    fn seconds(&self, started: Instant) -> u64 {
        self.deadline.saturating_duration_since(started).as_secs()
    }
}

/// The largest tree object cas downloads (a directory of about a million entries).
pub const MAX_TREE_BYTES: u64 = 64 << 20;
/// The largest build log or manifest cas downloads.
pub const MAX_LOG_BYTES: u64 = 1 << 30;
/// The slowest a transfer may be, averaged over [`RATE_WINDOW`] (bytes per second).
pub const MIN_RATE: u64 = 10 << 10;
/// The window over which [`MIN_RATE`] is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// What any call may take without costing its remote anything (a remote
/// far away answers in a fraction of it).
pub const GRACE: Duration = Duration::from_secs(1);
/// The default budget of waiting of each remote per run (`CAS_REMOTE_TIMEOUT`).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// The budget of waiting of each remote per run: `CAS_REMOTE_TIMEOUT`
/// (seconds, at least 1) when it is set to a number, else
/// [`DEFAULT_BUDGET`] (spec/remote.md "Download limits").
pub fn budget_from_env() -> Duration {
    std::env::var("CAS_REMOTE_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_BUDGET, |secs| Duration::from_secs(secs.max(1)))
}

/// What a call of `elapsed` that moved `bytes` cost its remote: the time
/// beyond [`GRACE`] and beyond what the bytes need at [`MIN_RATE`].
pub fn stall_of(elapsed: Duration, bytes: u64) -> Duration {
    let needed = GRACE + Duration::from_secs_f64(bytes as f64 / MIN_RATE as f64);
    elapsed.saturating_sub(needed)
}

/// Runs `f` with SIGPIPE blocked in this thread, so that the threads it
/// starts (an HTTP client's runtime) inherit the block: cas sets SIGPIPE to
/// its default so that a closed stdout ends it quietly, but hyper and
/// rustls write to sockets with `writev`, which raises SIGPIPE when the
/// peer has gone. Blocked, such a write fails with EPIPE and the transfer
/// with it. This thread's mask is restored after.
pub fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: signal sets on the stack, and this thread's own mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, &raw mut old);
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        out
    }
}

/// What stops a run's transfers at their next chunk or tick (SIGINT,
/// SIGTERM): a flag its owner sets, handed as a value to each remote when it
/// is opened, and by it to each transfer's [`Limit`]. Setting the flag is a
/// store to an atomic: a signal handler may do it.
#[derive(Clone, Copy, Debug)]
pub struct Interrupt(&'static AtomicBool);

impl Interrupt {
    /// One that never fires.
    pub fn never() -> Interrupt {
        static NEVER: AtomicBool = AtomicBool::new(false);
        Interrupt(&NEVER)
    }
    /// One that fires once `flag` is set.
    pub fn on(flag: &'static AtomicBool) -> Interrupt {
        Interrupt(flag)
    }
    pub fn fired(self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for Interrupt {
    fn default() -> Interrupt {
        Interrupt::never()
    }
}

/// The pace of one download: [`Pace::check`] fails it when it is
/// interrupted, past its deadline, slower than [`MIN_RATE`] over a
/// [`RATE_WINDOW`], or when it has made its remote wait longer than
/// [`Limit::stall`]. Every backend's download goes through one.
#[derive(Debug)]
pub struct Pace {
    limit: Limit,
    started: Instant,
    window: Instant,
    window_bytes: u64,
    total: u64,
}

impl Pace {
    pub fn new(limit: &Limit) -> Pace {
        let now = Instant::now();
        Pace {
            limit: *limit,
            started: now,
            window: now,
            window_bytes: 0,
            total: 0,
        }
    }

    /// `n` more bytes arrived.
    pub fn add(&mut self, n: u64) {
        self.total += n;
        self.window_bytes += n;
    }

    /// The bytes so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether the transfer may go on (call it between reads, and at
    /// least every second while no byte comes).
    pub fn check(&mut self, url: &str, digest: &Digest) -> Result<(), RemoteError> {
        if self.limit.interrupt.fired() {
            return Err(RemoteError::Interrupted {
                url: url.to_string(),
            });
        }
        let now = Instant::now();
        if now > self.limit.deadline {
            return Err(RemoteError::TimedOut {
                url: url.to_string(),
                digest: digest.to_hex(),
                seconds: self.limit.seconds(self.started),
            });
        }
        let elapsed = now - self.started;
        let stalled = stall_of(elapsed, self.total);
        if stalled > self.limit.stall {
            return Err(RemoteError::TimedOut {
                url: url.to_string(),
                digest: digest.to_hex(),
                seconds: elapsed.as_secs(),
            });
        }
        if now - self.window >= RATE_WINDOW {
            let secs = (now - self.window).as_secs_f64();
            if (self.window_bytes as f64) < MIN_RATE as f64 * secs {
                return Err(RemoteError::TooSlow {
                    url: url.to_string(),
                    digest: digest.to_hex(),
                    bytes: self.window_bytes,
                    seconds: secs.round() as u64,
                });
            }
            self.window = now;
            self.window_bytes = 0;
        }
        Ok(())
    }

    /// `n` more bytes: refused when the object would have more than it may.
    pub fn take(&mut self, url: &str, digest: &Digest, n: u64) -> Result<(), RemoteError> {
        self.add(n);
        if self.total > self.limit.bytes {
            return Err(RemoteError::TooLarge {
                url: url.to_string(),
                digest: digest.to_hex(),
                limit: self.limit.bytes,
            });
        }
        Ok(())
    }
}

/// Copy `src` into `out` (from its start, truncated first) within `limit`:
/// more than `limit.bytes` bytes (at most one byte more is read), the
/// deadline, a pace below [`MIN_RATE`], too long a wait or [`interrupt`]
/// end the copy with an error (see [`Pace`]). A read that fails with
/// `WouldBlock` or `TimedOut` means "nothing yet": the pace is checked and
/// the read tried again. Every backend's download goes through here.
pub fn copy_bounded(
    url: &str,
    digest: &Digest,
    src: &mut dyn Read,
    out: &mut File,
    limit: &Limit,
) -> Result<u64, RemoteError> {
    let io = |op, source| RemoteError::Io {
        url: url.to_string(),
        op,
        path: "(download)".into(),
        source,
    };
    let mut pace = Pace::new(limit);
    out.set_len(0).map_err(|e| io("truncate", e))?;
    out.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        pace.check(url, digest)?;
        // One byte past the limit at most: enough to know it is exceeded.
        let room = limit.bytes.saturating_sub(pace.total()).saturating_add(1);
        let want = usize::try_from(room).map_or(buf.len(), |r| r.min(buf.len()));
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => return Ok(pace.total()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                return Err(RemoteError::Transport {
                    url: url.to_string(),
                    message: format!("GET cas/{digest}: body: {e}"),
                })
            }
        };
        pace.take(url, digest, n as u64)?;
        out.write_all(&buf[..n]).map_err(|e| io("write", e))?;
    }
}

/// A remote with its budget of waiting for the run (spec/remote.md
/// "Download limits"): every call is timed, and what it cost beyond
/// [`GRACE`] and [`MIN_RATE`] ([`stall_of`]) is charged to the remote. A
/// remote is *given up* for the rest of the run, every later call failing
/// at once, when its charges exceed the budget (`CAS_REMOTE_TIMEOUT`), when
/// a call fails in a way that [`RemoteError::gives_up`] (timed out, too
/// slow, more bytes than it may send), or when the backend itself finds it
/// down; [`Remote::down_reason`] then says why.
pub struct Guarded {
    inner: Box<dyn Remote>,
    budget: Duration,
    spent_us: std::sync::atomic::AtomicU64,
    given_up: std::sync::OnceLock<String>,
}

impl Guarded {
    pub fn new(inner: Box<dyn Remote>, budget: Duration) -> Guarded {
        Guarded {
            inner,
            budget,
            spent_us: std::sync::atomic::AtomicU64::new(0),
            given_up: std::sync::OnceLock::new(),
        }
    }

    fn spent(&self) -> Duration {
        Duration::from_micros(self.spent_us.load(Ordering::Relaxed))
    }

    /// What is left of the budget.
    pub fn left(&self) -> Duration {
        self.budget.saturating_sub(self.spent())
    }

    fn give_up(&self, why: String) {
        let _ = self.given_up.set(why);
    }

    fn refuse(&self, what: &str) -> Result<(), RemoteError> {
        match self.given_up.get() {
            Some(why) => Err(RemoteError::Transport {
                url: self.inner.url().to_string(),
                message: format!("{what}: skipped: the remote was given up in this run ({why})"),
            }),
            None => Ok(()),
        }
    }

    /// Charge a call that began at `started` and moved `moved` bytes, and
    /// give the remote up when it must be.
    fn charge<T>(&self, started: Instant, moved: u64, result: &Result<T, RemoteError>) {
        if !matches!(result, Err(RemoteError::Interrupted { .. })) {
            let cost = stall_of(started.elapsed(), moved);
            let us = u64::try_from(cost.as_micros()).unwrap_or(u64::MAX);
            let total = self
                .spent_us
                .fetch_add(us, Ordering::Relaxed)
                .saturating_add(us);
            if Duration::from_micros(total) > self.budget {
                self.give_up(format!(
                    "it kept cas waiting {:.1} s, more than the {} s a remote may in a run (CAS_REMOTE_TIMEOUT)",
                    Duration::from_micros(total).as_secs_f64(),
                    self.budget.as_secs()
                ));
            }
        }
        if let Err(e) = result {
            if e.gives_up() || self.inner.is_down() {
                self.give_up(e.without_url());
            }
        }
    }

    /// Run `call` unless the remote was given up, and charge it.
    fn guard<T>(
        &self,
        what: &str,
        bytes: impl Fn(&T) -> u64,
        call: impl FnOnce() -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        self.refuse(what)?;
        let started = Instant::now();
        let result = call();
        let moved = result.as_ref().map_or(0, bytes);
        self.charge(started, moved, &result);
        result
    }
}

impl Remote for Guarded {
    fn url(&self) -> &str {
        self.inner.url()
    }

    fn has_object(&self, digest: &Digest) -> Result<bool, RemoteError> {
        self.guard("has", |_| 0, || self.inner.has_object(digest))
    }

    fn get_object(
        &self,
        digest: &Digest,
        out: &mut File,
        limit: &Limit,
    ) -> Result<bool, RemoteError> {
        self.refuse("get")?;
        let limit = limit.stall(limit.stall.min(self.left()));
        let started = Instant::now();
        let result = self.inner.get_object(digest, out, &limit);
        let moved = out.metadata().map_or(0, |m| m.len());
        self.charge(started, moved, &result);
        result
    }

    fn object_timeout(&self) -> Duration {
        self.inner.object_timeout()
    }

    fn interrupt(&self) -> Interrupt {
        self.inner.interrupt()
    }

    fn is_down(&self) -> bool {
        self.given_up.get().is_some() || self.inner.is_down()
    }

    fn down_reason(&self) -> Option<String> {
        self.given_up.get().cloned()
    }

    fn put_object(&self, digest: &Digest, path: &Path, size: u64) -> Result<(), RemoteError> {
        self.guard(
            "put",
            |()| size,
            || self.inner.put_object(digest, path, size),
        )
    }

    fn has_action(&self, key: &ActionKey) -> Result<bool, RemoteError> {
        self.guard("has", |_| 0, || self.inner.has_action(key))
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError> {
        self.guard(
            "get",
            |r: &Option<Vec<u8>>| r.as_ref().map_or(0, |b| b.len() as u64),
            || self.inner.get_action(key),
        )
    }

    fn put_action(&self, key: &ActionKey, bytes: &[u8]) -> Result<(), RemoteError> {
        self.guard(
            "put",
            |()| bytes.len() as u64,
            || self.inner.put_action(key, bytes),
        )
    }

    fn put_action_objects(
        &self,
        key: &ActionKey,
        bytes: &[u8],
        objects: &[Digest],
    ) -> Result<(), RemoteError> {
        self.guard(
            "put",
            |()| bytes.len() as u64,
            || self.inner.put_action_objects(key, bytes, objects),
        )
    }

    fn missing_objects(&self, list: &[Digest]) -> Option<Result<Vec<Digest>, RemoteError>> {
        if let Err(e) = self.refuse("find missing") {
            return Some(Err(e));
        }
        let mut batched = false;
        let r = self.guard(
            "find missing",
            |_| 0,
            || match self.inner.missing_objects(list) {
                Some(r) => {
                    batched = true;
                    r
                }
                None => Ok(Vec::new()),
            },
        );
        batched.then_some(r)
    }
}

/// A remote artifact cache. Digests are blake3 (spec/store.md); a backend that
/// speaks another hash (REAPI's SHA-256) maps them itself (spec/remote.md).
///
/// Implementations bound their own timeouts and retries, and never verify
/// content: callers ([`transfer`]) do.
pub trait Remote: Send + Sync {
    /// The remote's URL, for messages.
    fn url(&self) -> &str;
    /// Is the object there?
    fn has_object(&self, digest: &Digest) -> Result<bool, RemoteError>;
    /// Download the object into `out` (written from its start; truncated
    /// first), at most `limit.bytes` bytes, not after `limit.deadline` and
    /// at the pace [`Pace`] requires (see [`copy_bounded`]); a wait for the
    /// first byte is bounded as well. `Ok(false)` when the remote does not
    /// have it.
    fn get_object(
        &self,
        digest: &Digest,
        out: &mut File,
        limit: &Limit,
    ) -> Result<bool, RemoteError>;
    /// The time an object download may take, before one second per MiB is
    /// added ([`Limit::new`]).
    fn object_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    /// What stops its transfers early (given when it was opened).
    fn interrupt(&self) -> Interrupt;
    /// Whether the remote is considered down for the rest of this process
    /// (it failed or timed out; every call now fails at once).
    fn is_down(&self) -> bool {
        false
    }
    /// Why the remote was given up for the rest of the run, when it was
    /// ([`Guarded`]).
    fn down_reason(&self) -> Option<String> {
        None
    }
    /// Upload the object from the file at `path` (`size` bytes).
    fn put_object(&self, digest: &Digest, path: &Path, size: u64) -> Result<(), RemoteError>;
    /// Is an action result stored under `key`?
    fn has_action(&self, key: &ActionKey) -> Result<bool, RemoteError>;
    /// The encoded action result stored under `key`, if any (spec/remote.md).
    fn get_action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Store an encoded action result under `key` (replacing any).
    fn put_action(&self, key: &ActionKey, bytes: &[u8]) -> Result<(), RemoteError>;
    /// Store an encoded action result under `key`, given every object it
    /// references (its output trees and blobs, log and manifest), all
    /// uploaded already. A backend that must say more than the result (the
    /// REAPI backend's digest map) overrides this; the others store the
    /// result alone.
    fn put_action_objects(
        &self,
        key: &ActionKey,
        bytes: &[u8],
        objects: &[Digest],
    ) -> Result<(), RemoteError> {
        let _ = objects;
        self.put_action(key, bytes)
    }
    /// Which of `list` the remote lacks, in one call or a few, for backends
    /// that can ask about many objects at once (REAPI's FindMissingBlobs);
    /// `None`: ask [`Remote::has_object`] one by one.
    fn missing_objects(&self, list: &[Digest]) -> Option<Result<Vec<Digest>, RemoteError>> {
        let _ = list;
        None
    }
}

/// Open a remote from its URL: `http://` / `https://` base URLs, `file://`
/// URLs and absolute (or relative) directory paths; nothing interrupts it.
pub fn open(url: &str) -> Result<Box<dyn Remote>, RemoteError> {
    open_with_headers(url, &[])
}

/// [`open`], with headers for every request of an HTTP remote (values as
/// they are sent); other remotes take none.
pub fn open_with_headers(
    url: &str,
    headers: &[(String, String)],
) -> Result<Box<dyn Remote>, RemoteError> {
    open_with(url, headers, budget_from_env(), Interrupt::never())
}

/// [`open_with_headers`], with the remote's own budget of waiting (its
/// `timeout:` in the user configuration; an HTTP remote's calls wait at most
/// that long) and what interrupts its transfers.
pub fn open_with(
    url: &str,
    headers: &[(String, String)],
    budget: Duration,
    interrupt: Interrupt,
) -> Result<Box<dyn Remote>, RemoteError> {
    let bad = |reason: &str| RemoteError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Box::new(http::HttpRemote::new(
            url,
            http::HttpOptions {
                headers: headers.to_vec(),
                budget,
                interrupt,
                ..http::HttpOptions::default()
            },
        )?));
    }
    if !headers.is_empty() {
        return Err(bad("headers are for http:// and https:// remotes"));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad(
                "a file:// URL needs an absolute path (file:///srv/cache)",
            ));
        }
        return Ok(Box::new(
            dir::DirRemote::new(Path::new(path))?.interrupted_by(interrupt),
        ));
    }
    if url.contains("://") {
        return Err(bad("unsupported scheme"));
    }
    if url.is_empty() {
        return Err(bad("empty"));
    }
    Ok(Box::new(
        dir::DirRemote::new(Path::new(url))?.interrupted_by(interrupt),
    ))
}

//! An HTTP(S) remote in the layout of Bazel's HTTP cache:
//! `GET`/`HEAD`/`PUT` on `{base}/cas/{hex}` (objects) and `{base}/ac/{hex}`
//! (action results). Any server that accepts `PUT` works.
//!
//! Faults are bounded: a connect timeout, a timeout per request (longer for
//! objects, growing with the upload's size), a few retries with backoff for
//! transport errors and 5xx/429 answers, and a breaker: after
//! [`HttpOptions::breaker`] consecutive transport failures, or one request
//! that timed out, the remote is considered down for the rest of the
//! process and every call fails at once.
//!
//! An object download runs on a thread of its own that hands the body over
//! in chunks: the caller waits at most [`HttpOptions::small_timeout`] for
//! the answer's head, and then checks the transfer's pace at least every
//! [`TICK`] (spec/remote.md "Download limits") whether bytes come or not,
//! so a server that stops sending, trickles or never answers cannot hold
//! the caller; a thread left waiting on such a server ends at its request
//! timeout, or with the process.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

use super::{Remote, RemoteError};
use crate::digest::{ActionKey, Digest};

/// How often a waiting download checks its pace and SIGINT/SIGTERM.
pub const TICK: Duration = Duration::from_millis(200);

/// Timeouts and retries.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub connect_timeout: Duration,
    /// HEAD requests and action results; the head of an object's answer.
    pub small_timeout: Duration,
    /// Object transfers: this, plus one second per MiB of the object's limit.
    pub object_timeout: Duration,
    /// The remote's budget of waiting for a run (`CAS_REMOTE_TIMEOUT`): an
    /// upload may take this plus what its size needs at
    /// [`super::MIN_RATE`] (and never more than `object_timeout` plus one
    /// second per MiB).
    pub budget: Duration,
    /// Attempts per request (1 = no retry).
    pub attempts: u32,
    /// Consecutive transport failures after which the remote is considered down.
    pub breaker: u32,
    /// Headers sent with every request (authentication: a bearer token,
    /// basic credentials); marked sensitive, never shown.
    pub headers: Vec<(String, String)>,
    /// What stops its requests and transfers early (SIGINT, SIGTERM).
    pub interrupt: super::Interrupt,
}

impl HttpOptions {
    /// The defaults, with `CAS_REMOTE_TIMEOUT` (seconds) as the budget of
    /// waiting when it is set to a number (spec/remote.md "Download limits").
    pub fn from_env() -> HttpOptions {
        HttpOptions {
            budget: super::budget_from_env(),
            ..HttpOptions::default()
        }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(3),
            small_timeout: Duration::from_secs(4),
            object_timeout: Duration::from_secs(120),
            budget: super::DEFAULT_BUDGET,
            attempts: 3,
            breaker: 5,
            headers: Vec::new(),
            interrupt: super::Interrupt::never(),
        }
    }
}

/// What the thread of a download says.
enum Msg {
    /// The answer's status and announced length.
    Head {
        status: StatusCode,
        length: Option<u64>,
    },
    /// No answer: timed out, refused, or another transport error.
    Failed {
        timeout: bool,
        connect: bool,
        message: String,
    },
    Data(Vec<u8>),
    End,
    BodyError(String),
}

/// `GET url` on a thread of its own; its answer comes on the channel.
fn spawn_get(client: &Client, url: &str, timeout: Duration) -> std::io::Result<Receiver<Msg>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4);
    let client = client.clone();
    let url = url.to_string();
    std::thread::Builder::new()
        .name("cas-http-get".into())
        .stack_size(1 << 20)
        .spawn(move || get_thread(&client, &url, timeout, &tx))?;
    Ok(rx)
}

fn get_thread(client: &Client, url: &str, timeout: Duration, tx: &SyncSender<Msg>) {
    let mut resp = match client.get(url).timeout(timeout).send() {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Msg::Failed {
                timeout: e.is_timeout(),
                connect: e.is_connect(),
                message: error_chain(&e),
            });
            return;
        }
    };
    let status = resp.status();
    let head = Msg::Head {
        status,
        length: resp.content_length(),
    };
    if tx.send(head).is_err() || !status.is_success() {
        return;
    }
    loop {
        let mut buf = vec![0u8; 64 << 10];
        match resp.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Msg::End);
                return;
            }
            Ok(n) => {
                buf.truncate(n);
                // The reader went away (done, refused or given up): stop.
                if tx.send(Msg::Data(buf)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Msg::BodyError(error_chain(&e)));
                return;
            }
        }
    }
}

/// The body a download thread hands over: a read waits at most [`TICK`],
/// then fails with `WouldBlock` (see [`super::copy_bounded`]).
struct Body {
    rx: Receiver<Msg>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.chunk.len() && !self.done {
            match self.rx.recv_timeout(TICK) {
                Ok(Msg::Data(v)) => {
                    self.chunk = v;
                    self.pos = 0;
                }
                Ok(Msg::End) => self.done = true,
                Ok(Msg::BodyError(m)) => return Err(std::io::Error::other(m)),
                Ok(Msg::Head { .. } | Msg::Failed { .. }) => {
                    return Err(std::io::Error::other("a second answer"))
                }
                Err(RecvTimeoutError::Timeout) => return Err(std::io::ErrorKind::WouldBlock.into()),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::other("the transfer ended unexpectedly"))
                }
            }
        }
        let n = (self.chunk.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub struct HttpRemote {
    base: String,
    client: Client,
    opts: HttpOptions,
    failures: AtomicU32,
}

enum Outcome {
    Done(Response),
    Absent,
}

impl HttpRemote {
    pub fn new(base: &str, opts: HttpOptions) -> Result<HttpRemote, RemoteError> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &opts.headers {
            let bad = |what: &str| RemoteError::BadUrl {
                url: base.to_string(),
                reason: format!("header {name}: {what}"),
            };
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("not a header name"))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| bad("its value is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client = super::without_sigpipe(|| {
            Client::builder()
                .default_headers(headers)
                .connect_timeout(opts.connect_timeout)
                .pool_max_idle_per_host(16)
                .user_agent(concat!("cas/", env!("CARGO_PKG_VERSION")))
                .build()
        })
        .map_err(|e| RemoteError::BadUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        Ok(HttpRemote {
            base: base.trim_end_matches('/').to_string(),
            client,
            opts,
            failures: AtomicU32::new(0),
        })
    }

    fn object_url(&self, d: &Digest) -> String {
        format!("{}/cas/{}", self.base, d.to_hex())
    }

    fn action_url(&self, k: &ActionKey) -> String {
        format!("{}/ac/{}", self.base, k.to_hex())
    }

    fn transport(&self, message: String) -> RemoteError {
        RemoteError::Transport {
            url: self.base.clone(),
            message,
        }
    }

    /// Send a request with retries. 404 is `Absent`; other non-success answers
    /// are errors (retried when 5xx or 429).
    fn send(
        &self,
        what: &str,
        build: &dyn Fn() -> Result<RequestBuilder, RemoteError>,
    ) -> Result<Outcome, RemoteError> {
        let failures = self.failures.load(Ordering::Relaxed);
        if failures >= self.opts.breaker {
            return Err(self.transport(format!(
                "skipped {what}: the remote failed {failures} times in a row"
            )));
        }
        let mut last = None;
        for attempt in 0..self.opts.attempts.max(1) {
            if self.opts.interrupt.fired() {
                return Err(RemoteError::Interrupted {
                    url: self.base.clone(),
                });
            }
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << (attempt - 1).min(4)));
            }
            let result = build()?.send();
            match result {
                Ok(resp) if resp.status().is_success() => {
                    self.failures.store(0, Ordering::Relaxed);
                    return Ok(Outcome::Done(resp));
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    self.failures.store(0, Ordering::Relaxed);
                    return Ok(Outcome::Absent);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let err = RemoteError::Status {
                        url: self.base.clone(),
                        what: what.to_string(),
                        status: status.as_u16(),
                    };
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(err);
                    }
                    last = Some(err);
                }
                Err(e) if e.is_timeout() => {
                    // A remote that accepts and never answers: down for the
                    // rest of the run at once, not after retries of every request.
                    self.failures.store(self.opts.breaker, Ordering::Relaxed);
                    return Err(self.transport(format!("{what}: no answer within its time limit")));
                }
                Err(e) => {
                    // Don't retry into a remote that refuses connections.
                    let refused = e.is_connect();
                    last = Some(self.transport(format!("{what}: {}", error_chain(&e))));
                    if refused {
                        break;
                    }
                }
            }
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        Err(last.unwrap_or_else(|| self.transport(format!("{what}: no attempt made"))))
    }

    /// An action result longer than any result may be.
    fn too_large_result(&self, key: &ActionKey, max: u64) -> RemoteError {
        self.failures.fetch_add(1, Ordering::Relaxed);
        RemoteError::TooLarge {
            url: self.base.clone(),
            digest: format!("ac/{key}"),
            limit: max,
        }
    }

    fn head(&self, url: &str, what: &str) -> Result<bool, RemoteError> {
        let t = self.opts.small_timeout;
        Ok(matches!(
            self.send(what, &|| Ok(self.client.head(url).timeout(t)))?,
            Outcome::Done(_)
        ))
    }
}

/// An error and its causes on one line, each cause its message does not
/// already say (transport errors say little at their top level).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl Remote for HttpRemote {
    fn interrupt(&self) -> super::Interrupt {
        self.opts.interrupt
    }

    fn url(&self) -> &str {
        &self.base
    }

    fn object_timeout(&self) -> Duration {
        self.opts.object_timeout
    }

    fn is_down(&self) -> bool {
        self.failures.load(Ordering::Relaxed) >= self.opts.breaker
    }

    fn has_object(&self, digest: &Digest) -> Result<bool, RemoteError> {
        self.head(&self.object_url(digest), &format!("HEAD cas/{digest}"))
    }

    fn get_object(
        &self,
        digest: &Digest,
        out: &mut File,
        limit: &super::Limit,
    ) -> Result<bool, RemoteError> {
        let url = self.object_url(digest);
        let what = format!("GET cas/{digest}");
        // Retries cover the whole transfer: a body cut in the middle is
        // retried too, within the same limit.
        let mut last = None;
        let started = Instant::now();
        for attempt in 0..self.opts.attempts.max(1) {
            let failures = self.failures.load(Ordering::Relaxed);
            if failures >= self.opts.breaker {
                return Err(self.transport(format!(
                    "skipped {what}: the remote failed {failures} times in a row"
                )));
            }
            if self.opts.interrupt.fired() {
                return Err(RemoteError::Interrupted {
                    url: self.base.clone(),
                });
            }
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << (attempt - 1).min(4)));
            }
            let now = Instant::now();
            if now >= limit.deadline {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(RemoteError::TimedOut {
                    url: self.base.clone(),
                    digest: digest.to_hex(),
                    seconds: limit.deadline.saturating_duration_since(started).as_secs(),
                });
            }
            // The transfer's pace and deadline (checked every tick) come
            // first; reqwest's timeout only ends the thread of a download
            // given up on.
            let left = limit.deadline.saturating_duration_since(now) + Duration::from_secs(1);
            let rx = spawn_get(&self.client, &url, left)
                .map_err(|e| self.transport(format!("{what}: cannot start a thread: {e}")))?;
            let asked = Instant::now();
            let head = loop {
                if self.opts.interrupt.fired() {
                    return Err(RemoteError::Interrupted {
                        url: self.base.clone(),
                    });
                }
                match rx.recv_timeout(TICK) {
                    Ok(m) => break m,
                    Err(RecvTimeoutError::Timeout) if asked.elapsed() < self.opts.small_timeout => {
                    }
                    Err(_) => {
                        // Accepted and never answered: down for the rest of the run.
                        self.failures.store(self.opts.breaker, Ordering::Relaxed);
                        return Err(self.transport(format!(
                            "{what}: no answer within {} s",
                            self.opts.small_timeout.as_secs()
                        )));
                    }
                }
            };
            let length = match head {
                Msg::Failed { timeout: true, .. } => {
                    self.failures.store(self.opts.breaker, Ordering::Relaxed);
                    return Err(self.transport(format!("{what}: no answer within its time limit")));
                }
                Msg::Failed {
                    connect, message, ..
                } => {
                    last = Some(self.transport(format!("{what}: {message}")));
                    if connect {
                        break;
                    }
                    continue;
                }
                Msg::Head { status, length } if status.is_success() => {
                    self.failures.store(0, Ordering::Relaxed);
                    length
                }
                Msg::Head { status, .. } if status == StatusCode::NOT_FOUND => {
                    self.failures.store(0, Ordering::Relaxed);
                    return Ok(false);
                }
                Msg::Head { status, .. } => {
                    let err = RemoteError::Status {
                        url: self.base.clone(),
                        what: what.clone(),
                        status: status.as_u16(),
                    };
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(err);
                    }
                    last = Some(err);
                    continue;
                }
                Msg::Data(_) | Msg::End | Msg::BodyError(_) => {
                    last = Some(self.transport(format!("{what}: a body before the head")));
                    continue;
                }
            };
            // A server that announces more than the object may have is not
            // read at all; one that does not say how much it sends is read
            // only for an object whose size is known here.
            if length.is_some_and(|n| n > limit.bytes) {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(RemoteError::TooLarge {
                    url: self.base.clone(),
                    digest: digest.to_hex(),
                    limit: limit.bytes,
                });
            }
            if length.is_none() && !limit.exact {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(RemoteError::Undeclared {
                    url: self.base.clone(),
                    digest: digest.to_hex(),
                });
            }
            let mut body = Body {
                rx,
                chunk: Vec::new(),
                pos: 0,
                done: false,
            };
            match super::copy_bounded(&self.base, digest, &mut body, out, limit) {
                Ok(_) => return Ok(true),
                Err(e @ RemoteError::Transport { .. }) => last = Some(e),
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        Err(last.unwrap_or_else(|| self.transport(what)))
    }

    fn put_object(&self, digest: &Digest, path: &Path, size: u64) -> Result<(), RemoteError> {
        let url = self.object_url(digest);
        let t = (self.opts.object_timeout + Duration::from_secs(size >> 20))
            .min(self.opts.budget + super::GRACE + Duration::from_secs(size / super::MIN_RATE));
        let base = self.base.clone();
        let build = || -> Result<RequestBuilder, RemoteError> {
            let f = File::open(path).map_err(|source| RemoteError::Io {
                url: base.clone(),
                op: "open",
                path: path.into(),
                source,
            })?;
            Ok(self
                .client
                .put(&url)
                .timeout(t)
                .body(reqwest::blocking::Body::sized(f, size)))
        };
        match self.send(&format!("PUT cas/{digest}"), &build)? {
            Outcome::Done(_) => Ok(()),
            Outcome::Absent => Err(RemoteError::Status {
                url: self.base.clone(),
                what: format!("PUT cas/{digest}"),
                status: 404,
            }),
        }
    }

    fn has_action(&self, key: &ActionKey) -> Result<bool, RemoteError> {
        self.head(&self.action_url(key), &format!("HEAD ac/{key}"))
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError> {
        let url = self.action_url(key);
        let what = format!("GET ac/{key}");
        let t = self.opts.small_timeout;
        match self.send(&what, &|| Ok(self.client.get(&url).timeout(t)))? {
            Outcome::Absent => Ok(None),
            Outcome::Done(resp) => {
                let max = super::result::MAX_RESULT_SIZE as u64;
                if resp.content_length().is_some_and(|n| n > max) {
                    return Err(self.too_large_result(key, max));
                }
                let mut bytes = Vec::new();
                // An action result is small: refuse anything absurd.
                resp.take(max + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| self.transport(format!("{what}: body: {e}")))?;
                if bytes.len() as u64 > max {
                    return Err(self.too_large_result(key, max));
                }
                Ok(Some(bytes))
            }
        }
    }

    fn put_action(&self, key: &ActionKey, bytes: &[u8]) -> Result<(), RemoteError> {
        let url = self.action_url(key);
        let t = self.opts.small_timeout;
        let what = format!("PUT ac/{key}");
        match self.send(&what, &|| {
            Ok(self.client.put(&url).timeout(t).body(bytes.to_vec()))
        })? {
            Outcome::Done(_) => Ok(()),
            Outcome::Absent => Err(RemoteError::Status {
                url: self.base.clone(),
                what,
                status: 404,
            }),
        }
    }
}

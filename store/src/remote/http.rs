//! An HTTP(S) remote in the layout of Bazel's HTTP cache:
//! `GET`/`HEAD`/`PUT` on `{base}/cas/{hex}` (objects) and `{base}/ac/{hex}`
//! (action results). Any server that accepts `PUT` works.
//!
//! Faults are bounded: a connect timeout, a timeout per request (longer for
//! objects, growing with the upload's size), a few retries with backoff for
//! transport errors and 5xx/429 answers, and a breaker: after
//! [`HttpOptions::breaker`] consecutive transport failures the remote is
//! considered down for the rest of the process and every call fails at once.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;

use super::{Remote, RemoteError};
use crate::digest::{ActionKey, Digest};

/// Timeouts and retries.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub connect_timeout: Duration,
    /// HEAD requests and action results.
    pub small_timeout: Duration,
    /// Object transfers: this, plus one second per MiB uploaded.
    pub object_timeout: Duration,
    /// Attempts per request (1 = no retry).
    pub attempts: u32,
    /// Consecutive transport failures after which the remote is considered down.
    pub breaker: u32,
}

impl HttpOptions {
    /// The defaults, with `CAS_REMOTE_TIMEOUT` (seconds) as the object
    /// transfer time when it is set to a number (spec/cli.md "Environment").
    pub fn from_env() -> HttpOptions {
        let mut o = HttpOptions::default();
        if let Some(secs) = std::env::var("CAS_REMOTE_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            o.object_timeout = Duration::from_secs(secs.max(1));
        }
        o
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(3),
            small_timeout: Duration::from_secs(4),
            object_timeout: Duration::from_secs(120),
            attempts: 3,
            breaker: 5,
        }
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
        let client = Client::builder()
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(16)
            .user_agent(concat!("cas/", env!("CARGO_PKG_VERSION")))
            .build()
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
            if super::interrupted() {
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
                    return Err(self.transport(format!(
                        "{what}: no answer within its time limit; the remote is not asked again in this run"
                    )));
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

    fn head(&self, url: &str, what: &str) -> Result<bool, RemoteError> {
        let t = self.opts.small_timeout;
        Ok(matches!(
            self.send(what, &|| Ok(self.client.head(url).timeout(t)))?,
            Outcome::Done(_)
        ))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
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
        let started = std::time::Instant::now();
        for _ in 0..self.opts.attempts.max(1) {
            let now = std::time::Instant::now();
            if now >= limit.deadline {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(RemoteError::TimedOut {
                    url: self.base.clone(),
                    digest: digest.to_hex(),
                    seconds: limit.deadline.saturating_duration_since(started).as_secs(),
                });
            }
            // The transfer's own deadline (checked per chunk) comes first;
            // reqwest's timeout is the backstop for a server that stops sending.
            let left = limit.deadline.saturating_duration_since(now) + Duration::from_secs(1);
            let resp = match self.send(&what, &|| Ok(self.client.get(&url).timeout(left)))? {
                Outcome::Absent => return Ok(false),
                Outcome::Done(r) => r,
            };
            // A server that announces more than the object may have is not read at all.
            if resp.content_length().is_some_and(|n| n > limit.bytes) {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(RemoteError::TooLarge {
                    url: self.base.clone(),
                    digest: digest.to_hex(),
                    limit: limit.bytes,
                });
            }
            let mut resp = resp;
            match super::copy_bounded(&self.base, digest, &mut resp, out, limit) {
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
        let t = self.opts.object_timeout + Duration::from_secs(size >> 20);
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
                use std::io::Read;
                let mut bytes = Vec::new();
                // An action result is small: refuse anything absurd.
                resp.take(super::result::MAX_RESULT_SIZE as u64 + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| self.transport(format!("{what}: body: {e}")))?;
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

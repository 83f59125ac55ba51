//! Downloading: candidate URLs (mirrors of the alias, then upstream), one
//! streaming pass that writes a temporary file and hashes it, timeouts,
//! retries with exponential backoff, `Range` resume, checksum verification.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checksum::{Algorithm, Hasher};
use crate::error::{Result, SourceError};
use crate::spec::{Checksum, SourceUrl};

/// Mirrors per alias: for a URL written `alias:rest`, each mirror base of
/// `alias` gives the candidate `base + rest`, tried in order before the
/// upstream resolved URL. Mirrors never change a source's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors {
    by_alias: BTreeMap<String, Vec<String>>,
}

impl Mirrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a mirror base URL for `alias` (after those already added).
    pub fn add(&mut self, alias: impl Into<String>, base: impl Into<String>) -> &mut Self {
        self.by_alias
            .entry(alias.into())
            .or_default()
            .push(base.into());
        self
    }

    /// The URLs to try for `url`, in order: mirrors, then upstream.
    pub fn candidates(&self, url: &SourceUrl) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(alias) = &url.alias {
            let rest = url
                .written
                .strip_prefix(alias.as_str())
                .and_then(|r| r.strip_prefix(':'));
            if let (Some(rest), Some(bases)) = (rest, self.by_alias.get(alias)) {
                for base in bases {
                    out.push(format!("{base}{rest}"));
                }
            }
        }
        // An alias declared without a URL (`''`) is served by mirrors only.
        if !url.resolved.is_empty() && !out.contains(&url.resolved) {
            out.push(url.resolved.clone());
        }
        out
    }
}

/// Download progress. `indicatif::ProgressBar` implements it; parallel
/// downloads each get their own.
pub trait Progress: Send + Sync {
    /// A download of `url` starts (again); `total` is its size if known.
    fn begin(&self, _url: &str, _total: Option<u64>) {}
    /// `done` bytes of the current download are on disk.
    fn position(&self, _done: u64) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

impl Progress for indicatif::ProgressBar {
    fn begin(&self, url: &str, total: Option<u64>) {
        self.set_message(url.to_string());
        if let Some(total) = total {
            self.set_length(total);
        }
    }
    fn position(&self, done: u64) {
        self.set_position(done);
    }
}

/// How a [`Fetcher`] works. [`FetcherConfig::new`] gives sensible defaults.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// Where downloads are written before they are verified (for example the
    /// store's tmp directory, on the same filesystem as the cache).
    pub tmp_dir: PathBuf,
    /// Where bare git mirrors live, one per URL (for example
    /// `STORE/sources/git`).
    pub git_dir: PathBuf,
    pub mirrors: Mirrors,
    pub connect_timeout: Duration,
    /// Longest silence while waiting for response headers or body bytes.
    pub read_timeout: Duration,
    /// Attempts per candidate URL for temporary errors (at least 1).
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl FetcherConfig {
    pub fn new(tmp_dir: impl Into<PathBuf>, git_dir: impl Into<PathBuf>) -> Self {
        FetcherConfig {
            tmp_dir: tmp_dir.into(),
            git_dir: git_dir.into(),
            mirrors: Mirrors::new(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Downloads files. `Sync`: share one between threads for parallel fetches.
pub struct Fetcher {
    /// Made by the first HTTP download: the client starts a runtime thread
    /// (and dropping it joins that thread), which commands that fetch
    /// nothing over HTTP (`show`, a no-op build) need not pay for.
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    config: FetcherConfig,
}

/// A download in a temporary file of the fetcher's `tmp_dir`, deleted when
/// dropped unless moved away (e.g. by [`crate::SourceCache::insert`]).
#[derive(Debug)]
pub struct Download {
    path: tempfile::TempPath,
    /// The URL it came from (a mirror or upstream).
    pub url: String,
    pub checksum: Checksum,
    pub size: u64,
}

impl Download {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// (The same as cas-store's `remote::without_sigpipe`: this crate does not
/// depend on cas-store.) Runs `f` with SIGPIPE blocked in this thread, so that the threads it
/// starts (an HTTP client's runtime) inherit the block: cas sets SIGPIPE to
/// its default so that a closed stdout ends it quietly, but hyper and
/// rustls write to sockets with `writev`, which raises SIGPIPE when the
/// peer has gone. Blocked, such a write fails with EPIPE and the transfer
/// with it. This thread's mask is restored after.
fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
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

impl Fetcher {
    pub fn new(config: FetcherConfig) -> Result<Self> {
        Ok(Fetcher {
            client: std::sync::OnceLock::new(),
            config,
        })
    }

    /// The HTTP client, made on first use.
    fn client(&self) -> Result<&reqwest::blocking::Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        // the client's runtime thread inherits SIGPIPE blocked (see
        // `without_sigpipe`): a server that hangs up fails the download
        let client = without_sigpipe(|| {
            reqwest::blocking::Client::builder()
                .connect_timeout(self.config.connect_timeout)
                .timeout(self.config.read_timeout)
                .user_agent(concat!("cas/", env!("CARGO_PKG_VERSION")))
                .build()
        })
        .map_err(|e| SourceError::Network {
            url: String::new(),
            message: format!("cannot create the HTTP client: {e}"),
            temporary: false,
        })?;
        // two threads racing here: one client is kept, the other dropped
        Ok(self.client.get_or_init(|| client))
    }

    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    pub fn mirrors(&self) -> &Mirrors {
        &self.config.mirrors
    }

    /// Download `url` trying each candidate (mirrors, then upstream) and
    /// return the first download whose checksum is `expected`. A download
    /// with another checksum is deleted and counts as that candidate's error.
    pub fn fetch_verified(
        &self,
        url: &SourceUrl,
        expected: &Checksum,
        progress: &dyn Progress,
    ) -> Result<Download> {
        let algorithm = Algorithm::of(expected);
        self.each_candidate(url, |candidate| {
            let download = self.download(candidate, algorithm, progress)?;
            if &download.checksum != expected {
                let actual = download.checksum.clone();
                drop(download);
                return Err(SourceError::ChecksumMismatch {
                    url: candidate.to_string(),
                    expected: expected.clone(),
                    actual,
                });
            }
            Ok(download)
        })
    }

    /// Download `url` (mirrors, then upstream) without an expected checksum,
    /// computing one with `algorithm` (for `cas source track`).
    pub fn fetch_unverified(
        &self,
        url: &SourceUrl,
        algorithm: Algorithm,
        progress: &dyn Progress,
    ) -> Result<Download> {
        self.each_candidate(url, |candidate| {
            self.download(candidate, algorithm, progress)
        })
    }

    fn each_candidate(
        &self,
        url: &SourceUrl,
        mut attempt: impl FnMut(&str) -> Result<Download>,
    ) -> Result<Download> {
        let candidates = self.config.mirrors.candidates(url);
        if candidates.is_empty() {
            return Err(SourceError::NoMirror {
                url: url.written.clone(),
                alias: url.alias.clone().unwrap_or_default(),
            });
        }
        let mut errors = Vec::new();
        for candidate in &candidates {
            match attempt(candidate) {
                Ok(d) => return Ok(d),
                Err(e) => errors.push(e),
            }
        }
        if errors.len() == 1 {
            if let Some(e) = errors.pop() {
                return Err(e);
            }
        }
        let attempts: String = errors.iter().map(|e| format!("\n  - {e}")).collect();
        Err(SourceError::AllCandidatesFailed {
            url: url.written.clone(),
            attempts,
        })
    }

    /// Download one URL (http, https or file) into a temporary file, hashing
    /// it with `algorithm` in the same pass. Temporary errors are retried
    /// with exponential backoff, resuming with `Range` when the server
    /// advertised `Accept-Ranges: bytes`.
    pub fn download(
        &self,
        url: &str,
        algorithm: Algorithm,
        progress: &dyn Progress,
    ) -> Result<Download> {
        let tmp = &self.config.tmp_dir;
        std::fs::create_dir_all(tmp)
            .map_err(|e| SourceError::io("cannot create directory", tmp, e))?;
        let named = tempfile::Builder::new()
            .prefix("download-")
            .tempfile_in(tmp)
            .map_err(|e| SourceError::io("cannot create a temporary file in", tmp, e))?;
        let (file, path) = named.into_parts();
        let (checksum, size) = if let Some(rest) = url.strip_prefix("file://") {
            copy_local(url, &percent_decode(rest), file, &path, algorithm, progress)?
        } else if url.starts_with("http://") || url.starts_with("https://") {
            self.http_download(url, file, &path, algorithm, progress)?
        } else {
            return Err(SourceError::UnsupportedUrl {
                url: url.to_string(),
            });
        };
        Ok(Download {
            path,
            url: url.to_string(),
            checksum,
            size,
        })
    }

    fn http_download(
        &self,
        url: &str,
        mut file: File,
        path: &Path,
        algorithm: Algorithm,
        progress: &dyn Progress,
    ) -> Result<(Checksum, u64)> {
        let mut state = Partial {
            hasher: algorithm.hasher(),
            written: 0,
            resumable: false,
        };
        let attempts = self.config.attempts.max(1);
        let mut backoff = self.config.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.http_attempt(url, &mut file, path, &mut state, algorithm, progress) {
                Ok(()) => break,
                Err(e) if e.is_temporary() && attempt < attempts => {
                    std::thread::sleep(backoff);
                    backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
                }
                Err(e) => return Err(e),
            }
        }
        file.sync_all()
            .map_err(|e| SourceError::io("cannot write", path, e))?;
        Ok((state.hasher.finish(), state.written))
    }

    fn http_attempt(
        &self,
        url: &str,
        file: &mut File,
        path: &Path,
        state: &mut Partial,
        algorithm: Algorithm,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut request = self.client()?.get(url);
        let resuming = state.written > 0 && state.resumable;
        if resuming {
            request = request.header(reqwest::header::RANGE, format!("bytes={}-", state.written));
        }
        let mut response = request.send().map_err(|e| network_error(url, &e))?;
        let status = response.status().as_u16();
        let partial_ok = resuming
            && status == 206
            && response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {}-", state.written)));
        if !partial_ok {
            if status != 200 {
                return Err(SourceError::HttpStatus {
                    url: url.to_string(),
                    status,
                });
            }
            // A full body: start over.
            if state.written > 0 {
                file.set_len(0)
                    .map_err(|e| SourceError::io("cannot truncate", path, e))?;
                file.rewind()
                    .map_err(|e| SourceError::io("cannot seek", path, e))?;
                state.written = 0;
                state.hasher = algorithm.hasher();
            }
            state.resumable = response
                .headers()
                .get(reqwest::header::ACCEPT_RANGES)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|u| u.trim().eq_ignore_ascii_case("bytes")));
        }
        let total = response
            .content_length()
            .map(|len| len.saturating_add(state.written));
        progress.begin(url, total);
        progress.position(state.written);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match response.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(SourceError::Network {
                        url: url.to_string(),
                        message: format!("connection lost after {} bytes: {e}", state.written),
                        temporary: true,
                    })
                }
            };
            file.write_all(&buf[..n])
                .map_err(|e| SourceError::io("cannot write", path, e))?;
            state.hasher.update(&buf[..n]);
            state.written += n as u64;
            progress.position(state.written);
        }
        if let Some(total) = total {
            if state.written < total {
                return Err(SourceError::Truncated {
                    url: url.to_string(),
                    got: state.written,
                    expected: total,
                });
            }
        }
        Ok(())
    }
}

/// What survives between attempts of one download.
struct Partial {
    hasher: Hasher,
    written: u64,
    resumable: bool,
}

fn network_error(url: &str, e: &reqwest::Error) -> SourceError {
    let temporary =
        e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() || e.is_decode();
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    SourceError::Network {
        url: url.to_string(),
        message,
        temporary,
    }
}

fn copy_local(
    url: &str,
    source: &str,
    mut file: File,
    path: &Path,
    algorithm: Algorithm,
    progress: &dyn Progress,
) -> Result<(Checksum, u64)> {
    let mut input = File::open(source).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SourceError::HttpStatus {
            url: url.to_string(),
            status: 404,
        },
        _ => SourceError::io("cannot open", source, e),
    })?;
    let total = input.metadata().ok().map(|m| m.len());
    progress.begin(url, total);
    let mut hasher = algorithm.hasher();
    let mut written = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SourceError::io("cannot read", source, e)),
        };
        file.write_all(&buf[..n])
            .map_err(|e| SourceError::io("cannot write", path, e))?;
        hasher.update(&buf[..n]);
        written += n as u64;
        progress.position(written);
    }
    Ok((hasher.finish(), written))
}

/// Decode `%XX` escapes of a file URL's path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
    #[error("remote {url}: the download of {digest} took longer than its limit of {seconds} s")]
    TimedOut {
        url: String,
        digest: String,
        seconds: u64,
    },
    #[error("remote {url}: interrupted")]
    Interrupted { url: String },
    #[error("remote {url}: object {digest} is missing")]
    Missing { url: String, digest: String },
    #[error("not a remote URL: {url:?} ({reason}); use http://, https://, file:// or an absolute directory")]
    BadUrl { url: String, reason: String },
    #[error("remote {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: Box<StoreError>,
    },
}

impl RemoteError {}

/// How much of one object may be downloaded, and until when (spec/remote.md
/// "Download limits"): a blob never has more bytes than its tree entry
/// states, and no transfer runs forever.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub bytes: u64,
    pub deadline: Instant,
}

impl Limit {
    /// `bytes` at most, within `base` plus one second per MiB.
    pub fn new(bytes: u64, base: Duration) -> Limit {
        Limit {
            bytes,
            deadline: Instant::now() + base + Duration::from_secs(bytes >> 20),
        }
    }

    fn seconds(&self, started: Instant) -> u64 {
        self.deadline.saturating_duration_since(started).as_secs()
    }
}

/// The largest tree object cas downloads (a directory of about a million entries).
pub const MAX_TREE_BYTES: u64 = 64 << 20;
/// The largest build log or manifest cas downloads.
pub const MAX_LOG_BYTES: u64 = 1 << 30;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Stop every transfer in this process at its next chunk (SIGINT/SIGTERM).
/// Async-signal-safe.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Has [`interrupt`] been called?
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Copy `src` into `out` (from its start, truncated first) within `limit`:
/// more than `limit.bytes` bytes, the deadline, or [`interrupt`] end the copy
/// with an error. Every backend's download goes through here.
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
    let started = Instant::now();
    out.set_len(0).map_err(|e| io("truncate", e))?;
    out.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        if interrupted() {
            return Err(RemoteError::Interrupted {
                url: url.to_string(),
            });
        }
        if Instant::now() > limit.deadline {
            return Err(RemoteError::TimedOut {
                url: url.to_string(),
                digest: digest.to_hex(),
                seconds: limit.seconds(started),
            });
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(RemoteError::Transport {
                    url: url.to_string(),
                    message: format!("GET cas/{digest}: body: {e}"),
                })
            }
        };
        total += n as u64;
        if total > limit.bytes {
            return Err(RemoteError::TooLarge {
                url: url.to_string(),
                digest: digest.to_hex(),
                limit: limit.bytes,
            });
        }
        out.write_all(&buf[..n]).map_err(|e| io("write", e))?;
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
    /// first), at most `limit.bytes` bytes and not after `limit.deadline`
    /// (see [`copy_bounded`]). `Ok(false)` when the remote does not have it.
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
    /// Whether the remote is considered down for the rest of this process
    /// (it failed or timed out; every call now fails at once).
    fn is_down(&self) -> bool {
        false
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
/// URLs and absolute (or relative) directory paths.
pub fn open(url: &str) -> Result<Box<dyn Remote>, RemoteError> {
    let bad = |reason: &str| RemoteError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Box::new(http::HttpRemote::new(
            url,
            http::HttpOptions::from_env(),
        )?));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad(
                "a file:// URL needs an absolute path (file:///srv/cache)",
            ));
        }
        return Ok(Box::new(dir::DirRemote::new(Path::new(path))?));
    }
    if url.contains("://") {
        return Err(bad("unsupported scheme"));
    }
    if url.is_empty() {
        return Err(bad("empty"));
    }
    Ok(Box::new(dir::DirRemote::new(Path::new(url))?))
}

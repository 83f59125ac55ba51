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
use std::path::{Path, PathBuf};

use crate::digest::{ActionKey, Digest};
use crate::error::StoreError;

pub use result::{
    decode_result, encode_result, generate_signing_key, read_signing_key, sign_result,
    verify_result, write_key_pair, KeyError, PublicKey, Rejection, SigningKey, Trust,
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

impl RemoteError {
    /// True for errors that mean "the remote is unreachable or failing",
    /// as opposed to "this object is bad".
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            RemoteError::Transport { .. } | RemoteError::Status { .. }
        )
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
    /// first). `Ok(false)` when the remote does not have it.
    fn get_object(&self, digest: &Digest, out: &mut File) -> Result<bool, RemoteError>;
    /// Upload the object from the file at `path` (`size` bytes).
    fn put_object(&self, digest: &Digest, path: &Path, size: u64) -> Result<(), RemoteError>;
    /// Is an action result stored under `key`?
    fn has_action(&self, key: &ActionKey) -> Result<bool, RemoteError>;
    /// The encoded action result stored under `key`, if any (spec/remote.md).
    fn get_action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError>;
    /// Store an encoded action result under `key` (replacing any).
    fn put_action(&self, key: &ActionKey, bytes: &[u8]) -> Result<(), RemoteError>;
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
            http::HttpOptions::default(),
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

//! `cas-reapi`: cas results shared through the Remote Execution API
//! (REAPI v2: the ActionCache, CAS and ByteStream services that Bazel,
//! BuildStream, BuildGrid and buildbox-casd speak). spec/remote.md, "REAPI".
//!
//! - [`url`]: `grpc://host:port[/instance]` addresses.
//! - [`connect`]: metadata for every call (`headers:`) and the TLS client
//!   settings of a grpcs:// remote (`tls-ca`, `tls-client-cert`, `tls-client-key`).
//! - [`digests`]: the blake3 ↔ SHA-256 map (the store keeps blake3; REAPI
//!   speaks SHA-256 at the boundary only), in memory and in the store.
//! - [`encoding`]: what a cas result is in REAPI terms, byte for byte: the
//!   cache Action of a key, and the digest-map blob.
//! - [`client`]: the gRPC calls, blocking, with timeouts.
//! - [`cache`]: [`ReapiRemote`], the [`cas_store::Remote`] backend.
//! - [`exec`]: one step as one REAPI Action on an Execution service.
//!
//! [`open`] opens any remote URL: `grpc://` here, the rest in `cas-store`.

pub mod cache;
pub mod client;
pub mod connect;
pub mod digests;
pub mod encoding;
pub mod exec;
pub mod url;

use std::path::Path;

pub use cache::ReapiRemote;
use cas_store::{Remote, RemoteError};
pub use connect::{Options, SettingFile, TlsFiles};

/// Open the remote at `url`. `state`: a directory of the local store where
/// a REAPI remote keeps its digest map (`STORE/reapi/`).
pub fn open(url: &str, state: &Path) -> Result<Box<dyn Remote>, RemoteError> {
    open_with_headers(url, state, &[])
}

/// [`open`], with headers for every request (HTTP) or call (REAPI).
pub fn open_with_headers(
    url: &str,
    state: &Path,
    headers: &[(String, String)],
) -> Result<Box<dyn Remote>, RemoteError> {
    open_with(url, state, headers, cas_store::remote::budget_from_env())
}

/// [`open_with_headers`] with the remote's own budget of waiting (an HTTP
/// remote's calls wait at most that long; see `cas_store::remote::open_with`).
pub fn open_with(
    url: &str,
    state: &Path,
    headers: &[(String, String)],
    budget: std::time::Duration,
) -> Result<Box<dyn Remote>, RemoteError> {
    open_configured(
        url,
        state,
        headers,
        &TlsFiles::default(),
        budget,
        cas_store::remote::Interrupt::never(),
    )
}

/// [`open_with`], with TLS client settings for a grpcs:// remote. Headers
/// go with every request of an HTTP remote and every call of a REAPI one
/// (as gRPC metadata).
pub fn open_configured(
    url: &str,
    state: &Path,
    headers: &[(String, String)],
    tls: &TlsFiles,
    budget: std::time::Duration,
    interrupt: cas_store::remote::Interrupt,
) -> Result<Box<dyn Remote>, RemoteError> {
    if url::is_grpc(url) {
        let opts = Options {
            headers: headers.to_vec(),
            tls: tls.clone(),
            interrupt,
        };
        return Ok(Box::new(ReapiRemote::open_with(url, state, &opts)?));
    }
    if !tls.is_empty() {
        return Err(RemoteError::Setting {
            url: url.to_string(),
            message:
                "TLS settings (tls-ca, tls-client-cert, tls-client-key) are for grpcs:// remotes"
                    .into(),
        });
    }
    cas_store::remote::open_with(url, headers, budget, interrupt)
}

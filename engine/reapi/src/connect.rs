//! How cas reaches a REAPI server beyond its URL (spec/remote.md, "REAPI"):
//! metadata sent with every call (a configured remote's `headers:`, e.g.
//! `authorization: Bearer …`), and a grpcs:// remote's TLS client settings
//! (a CA to trust instead of the system's roots; a client certificate and
//! key for servers that require mutual TLS).
//!
//! The PEM files are read and checked when the remote is opened, so that a
//! missing file or a certificate without a key is the user's error (exit
//! 2) at once, not a remote that seems down. Header values are never put
//! into a message; they are marked sensitive for the HTTP/2 layer.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use cas_store::RemoteError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// The most bytes a PEM file may have (a certificate chain is a few KiB).
const MAX_PEM: u64 = 1 << 20;

/// A file of a remote's settings, and where it was given (for messages:
/// `` `tls-ca` at /home/u/.config/cas/config.yaml:5:13 ``).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingFile {
    pub path: PathBuf,
    pub at: String,
}

/// The TLS client settings of a grpcs:// remote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates (PEM) the server's certificate must chain to,
    /// instead of the system's roots.
    pub ca: Option<SettingFile>,
    /// A client certificate (PEM, with its chain) and its private key (PEM).
    pub client: Option<(SettingFile, SettingFile)>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }
}

/// What a connection to a REAPI server needs beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Metadata for every call, values as they are sent (never shown).
    pub headers: Vec<(String, String)>,
    pub tls: TlsFiles,
    /// What ends its calls and waits early (SIGINT, SIGTERM).
    pub interrupt: cas_store::remote::Interrupt,
}

/// The metadata of every call (an interceptor on the connection).
#[derive(Clone, Default)]
pub struct Metadata(Arc<Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)>>);

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // names only: values may be secrets
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k.as_str()))
            .finish()
    }
}

impl Metadata {
    /// The headers as gRPC text metadata: a name gRPC reserves, or a value
    /// that is not visible ASCII, is an error naming the header (never its
    /// value).
    pub fn new(url: &str, headers: &[(String, String)]) -> Result<Metadata, RemoteError> {
        let bad = |name: &str, why: &str| RemoteError::Setting {
            url: url.to_string(),
            message: format!("header {name}: {why}"),
        };
        let mut out = Vec::new();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("grpc-") || lower.ends_with("-bin") {
                return Err(bad(name, "this name is reserved by gRPC"));
            }
            let key = MetadataKey::<Ascii>::from_bytes(lower.as_bytes())
                .map_err(|_| bad(name, "not a gRPC metadata name"))?;
            let invalid = || {
                bad(
                    name,
                    "its value is not a valid gRPC metadata value (visible ASCII characters and spaces only)",
                )
            };
            // gRPC's ASCII-Value: 0x20 to 0x7E
            if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(invalid());
            }
            let mut value =
                MetadataValue::<Ascii>::try_from(value.as_str()).map_err(|_| invalid())?;
            value.set_sensitive(true);
            out.push((key, value));
        }
        Ok(Metadata(Arc::new(out)))
    }
}

impl tonic::service::Interceptor for Metadata {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for (k, v) in self.0.iter() {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

/// A connection whose every call carries the remote's metadata.
pub type Service = InterceptedService<Channel, Metadata>;

/// Read a PEM file of the settings (at most [`MAX_PEM`] bytes, without
/// blocking on a FIFO or a device).
fn read_pem(url: &str, what: &str, f: &SettingFile) -> Result<Vec<u8>, RemoteError> {
    let bad = |why: String| RemoteError::Setting {
        url: url.to_string(),
        message: format!(
            "cannot use the {what} {} ({}): {why}",
            f.path.display(),
            f.at
        ),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        // a FIFO named there is not waited for (then refused: not a file)
        .custom_flags(libc::O_NONBLOCK)
        .open(&f.path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(bad(format!("larger than {MAX_PEM} bytes")));
    }
    Ok(bytes)
}

/// Certificates of a PEM file: at least one, none malformed.
fn certificates(url: &str, what: &str, f: &SettingFile) -> Result<Vec<u8>, RemoteError> {
    let pem = read_pem(url, what, f)?;
    let bad = |why: &str| RemoteError::Setting {
        url: url.to_string(),
        message: format!(
            "cannot use the {what} {} ({}): {why}",
            f.path.display(),
            f.at
        ),
    };
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(&pem) {
        c.map_err(|e| bad(&format!("not a valid PEM file: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad(
            "it holds no certificate (a PEM `-----BEGIN CERTIFICATE-----` block)",
        ));
    }
    Ok(pem)
}

/// The TLS configuration of a grpcs:// remote for `domain`: its CA file
/// (else the system's roots, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) and its
/// client identity, each file read and checked now.
pub fn client_tls(url: &str, domain: &str, tls: &TlsFiles) -> Result<ClientTlsConfig, RemoteError> {
    let mut config = ClientTlsConfig::new().domain_name(domain.to_string());
    config = match &tls.ca {
        None => config.with_native_roots(),
        Some(f) => config.ca_certificate(Certificate::from_pem(certificates(
            url,
            "CA certificate",
            f,
        )?)),
    };
    if let Some((cert, key)) = &tls.client {
        let cert_pem = certificates(url, "client certificate", cert)?;
        let key_pem = read_pem(url, "client key", key)?;
        if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
            return Err(RemoteError::Setting {
                url: url.to_string(),
                message: format!(
                    "cannot use the client key {} ({}): it holds no private key (a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block, not encrypted)",
                    key.path.display(),
                    key.at
                ),
            });
        }
        config = config.identity(Identity::from_pem(cert_pem, key_pem));
    }
    Ok(config)
}

/// The client certificate and key, for a message about them (a key that
/// does not match its certificate is found when the TLS configuration is
/// made): `` (the client certificate PATH (`tls-client-cert` at …) and
/// the key PATH (…))``, or nothing.
pub(crate) fn identity_files(tls: &TlsFiles) -> String {
    match &tls.client {
        None => String::new(),
        Some((cert, key)) => format!(
            " (the client certificate {} ({}) and the client key {} ({}))",
            cert.path.display(),
            cert.at,
            key.path.display(),
            key.at
        ),
    }
}

/// An error and its causes, on one line (tonic's transport errors say
/// little at their top level): the store's [`cas_store::remote::http::error_chain`].
pub(crate) use cas_store::remote::http::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn headers_become_metadata_and_values_are_never_shown() {
        let mut m = Metadata::new(
            "grpc://h:1",
            &[("Authorization".into(), "Bearer t0ken-value".into())],
        )
        .unwrap();
        let req = m.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            "Bearer t0ken-value"
        );
        assert!(req.metadata().get("authorization").unwrap().is_sensitive());
        assert!(!format!("{m:?}").contains("t0ken"));
        for (name, value) in [("authorization", "a\nb-t0ken"), ("x-token", "ünï-t0ken")] {
            let e = Metadata::new("grpc://h:1", &[(name.into(), value.into())]).unwrap_err();
            assert!(e.to_string().contains(name) && !e.to_string().contains("t0ken"));
        }
        assert!(Metadata::new("grpc://h:1", &[("grpc-timeout".into(), "1S".into())]).is_err());
    }
}

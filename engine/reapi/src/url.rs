//! REAPI remote addresses: `grpc://HOST:PORT[/INSTANCE]`, or `grpcs://`
//! for TLS (the server's certificate checked against the system's roots:
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` name others; a configured remote's
//! `tls-ca` replaces them, see [`crate::connect`]). The instance name may
//! contain slashes (`grpc://farm:50051/main/linux`); it is empty when the
//! path is.

use cas_store::RemoteError;

/// A parsed `grpc://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcUrl {
    /// What tonic connects to: `http://HOST:PORT` (`https://` for TLS).
    pub endpoint: String,
    /// TLS (`grpcs://`): the name the server's certificate must carry.
    pub tls_domain: Option<String>,
    /// The REAPI instance name ("" for none).
    pub instance: String,
}

/// Does `url` name a REAPI remote?
pub fn is_grpc(url: &str) -> bool {
    url.starts_with("grpc://") || url.starts_with("grpcs://")
}

/// Parse a `grpc://` URL.
pub fn parse(url: &str) -> Result<GrpcUrl, RemoteError> {
    let bad = |reason: &str| RemoteError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (rest, tls) = if let Some(r) = url.strip_prefix("grpcs://") {
        (r, true)
    } else {
        (
            url.strip_prefix("grpc://")
                .ok_or_else(|| bad("a REAPI remote is grpc://HOST:PORT[/INSTANCE]"))?,
            false,
        )
    };
    let (authority, instance) = match rest.split_once('/') {
        Some((a, i)) => (a, i.trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(bad("no port (grpc://HOST:PORT)"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    if instance
        .split('/')
        .any(|c| c == "blobs" || c == "uploads" || c == "actions" || c == "operations")
    {
        return Err(bad("an instance name may not contain the path components blobs, uploads, actions or operations"));
    }
    Ok(GrpcUrl {
        endpoint: format!("{}://{authority}", if tls { "https" } else { "http" }),
        tls_domain: tls.then(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }),
        instance: instance.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_and_bad_addresses() {
        let u = parse("grpc://127.0.0.1:50051").unwrap();
        assert_eq!(u.endpoint, "http://127.0.0.1:50051");
        assert_eq!(u.instance, "");
        assert_eq!(u.tls_domain, None);
        let u = parse("grpc://farm:8980/main/linux/").unwrap();
        assert_eq!(u.instance, "main/linux");
        let u = parse("grpcs://cache.example:443/main").unwrap();
        assert_eq!(u.endpoint, "https://cache.example:443");
        assert_eq!(u.tls_domain.as_deref(), Some("cache.example"));
        assert_eq!(u.instance, "main");
        for bad in [
            "grpc://",
            "grpc://host",
            "grpc://host:x",
            "grpc://:80",
            "grpcs://h",
            "grpc://h:1/a/blobs",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

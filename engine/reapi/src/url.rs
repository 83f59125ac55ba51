//! REAPI remote addresses: `grpc://HOST:PORT[/INSTANCE]`. The instance name
//! may contain slashes (`grpc://farm:50051/main/linux`); it is empty when
//! the path is.

use cas_store::RemoteError;

/// A parsed `grpc://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcUrl {
    /// What tonic connects to: `http://HOST:PORT`.
    pub endpoint: String,
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
    if url.starts_with("grpcs://") {
        return Err(bad(
            "grpcs:// (TLS) is not supported yet; use grpc:// on a trusted network or a TLS-terminating proxy",
        ));
    }
    let rest = url
        .strip_prefix("grpc://")
        .ok_or_else(|| bad("a REAPI remote is grpc://HOST:PORT[/INSTANCE]"))?;
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
        endpoint: format!("http://{authority}"),
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
        let u = parse("grpc://farm:8980/main/linux/").unwrap();
        assert_eq!(u.instance, "main/linux");
        for bad in [
            "grpc://",
            "grpc://host",
            "grpc://host:x",
            "grpc://:80",
            "grpcs://h:1",
            "grpc://h:1/a/blobs",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

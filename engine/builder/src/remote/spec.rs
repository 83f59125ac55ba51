//! One configured remote as the command line gives it (URL, push, trust,
//! headers, its own timeout, TLS client files), and the environment in its
//! header values.

use cas_store::remote::Trust;
use cas_store::RemoteError;

/// One configured remote.
#[derive(Debug, Clone)]
pub struct RemoteSpec {
    pub url: String,
    pub push: bool,
    pub trust: Trust,
    /// Headers for every request (HTTP) or call (gRPC metadata): values
    /// with `${VAR}` replaced from the environment when the remote is opened.
    pub headers: Vec<(String, String)>,
    /// Its own budget of waiting for a run (`timeout:`), instead of
    /// `CAS_REMOTE_TIMEOUT`'s.
    pub timeout: Option<std::time::Duration>,
    /// A grpcs:// remote's CA and client certificate files.
    pub tls: cas_reapi::TlsFiles,
}

/// `value` with every `${VAR}` replaced by the environment variable VAR;
/// an unset one is an error naming it (never the value).
pub(super) fn expand_env(url: &str, header: &str, value: &str) -> Result<String, RemoteError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(RemoteError::Setting {
                url: url.to_string(),
                message: format!("header {header}: `${{` without `}}`"),
            });
        };
        let var = &after[..end];
        let v = std::env::var(var).map_err(|_| RemoteError::Setting {
            url: url.to_string(),
            message: format!("header {header}: the environment variable {var} is not set"),
        })?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

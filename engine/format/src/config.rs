//! The user configuration file: mirrors per alias, remote artifact caches,
//! the signing key. Read from `--config FILE` / `CAS_CONFIG`, else
//! `$XDG_CONFIG_HOME/cas/config.yaml`, else `~/.config/cas/config.yaml`.
//! A missing default file is an empty configuration; a missing explicit file
//! is an error. See spec/format.md ("User configuration").
//!
//! ```yaml
//! mirrors:
//!   upstream:
//!     - https://mirror-a.example/releases/
//!     - file:///srv/mirror/
//! remotes:
//!   - url: http://127.0.0.1:8080/cache
//!     push: true
//!     trusted-keys: [ "<base64 or hex ed25519 public key>" ]
//!     trust-unsigned: false
//!   - url: grpcs://cache.example:443/main
//!     headers: { authorization: "Bearer ${CACHE_TOKEN}" }
//!     tls-ca: certs/team-ca.pem          # relative to this file's directory
//!     tls-client-cert: certs/me.pem
//!     tls-client-key: certs/me.key
//! signing-key: ~/.config/cas/signing.key
//! arch: aarch64          # the default of --arch
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostics::{Diagnostics, Error, FileId, SourceFile};
use crate::read::Reader;
use crate::yaml::{self, Node, Value};

const KEYS: &[&str] = &["mirrors", "remotes", "signing-key", "projects", "arch"];
const REMOTE_KEYS: &[&str] = &[
    "url",
    "push",
    "trusted-keys",
    "trust-unsigned",
    "headers",
    "timeout",
    "tls-ca",
    "tls-client-cert",
    "tls-client-key",
];

/// The user configuration (all fields empty when there is no file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserConfig {
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// Mirror base URLs per project alias, in the order they are tried.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Remote artifact caches, in order.
    pub remotes: Vec<RemoteConfig>,
    /// The ed25519 key that signs pushed results (`~/` expanded; a relative
    /// path is relative to the configuration file's directory).
    pub signing_key: Option<PathBuf>,
    /// BuildStream project options per project name (`projects: NAME:
    /// options:`), applied before `-o`.
    pub project_options: BTreeMap<String, Vec<(String, String)>>,
    /// The target architecture when `--arch` / `CAS_ARCH` do not give one.
    pub arch: Option<String>,
}

/// An architecture name as cas spells them (`x86_64`, `aarch64`, ...).
pub fn is_arch_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// One remote artifact cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// `http://`, `https://`, `file://`, `grpc://` URL or an absolute directory.
    pub url: String,
    /// Upload results there (default false).
    pub push: bool,
    /// ed25519 public keys whose signatures are trusted (base64 or hex, as written).
    pub trusted_keys: Vec<String>,
    /// Accept results that carry no trusted signature (default false).
    pub trust_unsigned: bool,
    /// HTTP headers sent with every request to this remote (`headers:`,
    /// name → value), values as written: `${VAR}` is replaced by the
    /// environment variable VAR when the remote is opened, so that tokens
    /// stay out of the file (and out of every message).
    pub headers: Vec<(String, String)>,
    /// Seconds this remote may keep cas waiting in a run (`timeout:`, at
    /// least 1), instead of `CAS_REMOTE_TIMEOUT`'s: a slow cache is given up
    /// without holding the others to its pace.
    pub timeout: Option<u64>,
    /// TLS client settings of a grpcs:// remote.
    pub tls: RemoteTls,
}

/// A file named in the user configuration, and where it is named there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The path: `~/` expanded, a relative one taken from the configuration
    /// file's directory.
    pub path: PathBuf,
    /// Where the configuration names it, for messages:
    /// `` `KEY` at FILE:LINE:COLUMN ``.
    pub at: String,
}

/// The TLS client settings of a grpcs:// remote (`tls-ca`,
/// `tls-client-cert`, `tls-client-key`; the files are read when the remote
/// is opened).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteTls {
    /// The CA certificates (PEM) the server's certificate must chain to,
    /// instead of the system's roots.
    pub ca: Option<ConfigFile>,
    /// The client certificate (PEM) and its private key (PEM), for servers
    /// that require mutual TLS. Both or neither.
    pub client: Option<(ConfigFile, ConfigFile)>,
}

impl RemoteTls {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }
}

/// `$XDG_CONFIG_HOME/cas/config.yaml`, else `~/.config/cas/config.yaml`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("cas").join("config.yaml"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
    Some(
        PathBuf::from(home)
            .join(".config")
            .join("cas")
            .join("config.yaml"),
    )
}

/// Load the user configuration: `explicit` (from `--config`/`CAS_CONFIG`)
/// must exist; the default file may be missing.
pub fn load_user_config(explicit: Option<&Path>) -> Result<UserConfig, Diagnostics> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok(UserConfig::default()),
        },
    };
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(UserConfig::default())
        }
        Err(e) => {
            let err = Error::plain(format!(
                "cannot read the configuration file {}: {e}",
                path.display()
            ))
            .with_help("check the path given with --config or CAS_CONFIG");
            return Err(Diagnostics::new(vec![err]));
        }
    };
    if text.len() as u64 > crate::MAX_FILE_SIZE {
        return Err(Diagnostics::new(vec![Error::plain(format!(
            "configuration file {} is too large",
            path.display()
        ))]));
    }
    let text = String::from_utf8(text).map_err(|_| {
        Diagnostics::new(vec![Error::plain(format!(
            "configuration file {} is not UTF-8",
            path.display()
        ))])
    })?;
    parse_user_config(&path, text)
}

/// Parse the text of a configuration file read from `path`.
pub fn parse_user_config(path: &Path, text: String) -> Result<UserConfig, Diagnostics> {
    let file = SourceFile::new(path.to_path_buf(), path.display().to_string(), text);
    let root = yaml::parse(&file, FileId(0)).map_err(Diagnostics::new)?;
    let mut cfg = UserConfig {
        file: Some(path.to_path_buf()),
        ..UserConfig::default()
    };
    let Some(root) = root else { return Ok(cfg) };
    let mut r = Reader::new(&file);
    let Some(map) = r.map(&root, "configuration") else {
        return if r.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(Diagnostics::new(r.errors))
        };
    };
    r.check_keys(map, KEYS, "the user configuration");
    if let Some(node) = map.get("mirrors") {
        if let Some(m) = r.map(node, "mirrors") {
            for (alias, list) in m.iter() {
                if alias.name.is_empty() || alias.name.contains([':', '/']) {
                    r.err(
                        alias.span,
                        format!(
                            "alias `{}` must not be empty or contain `:` or `/`",
                            alias.name
                        ),
                        "invalid alias",
                    );
                }
                let urls = r.strings(list, "mirrors");
                let mut bases = Vec::new();
                for u in urls {
                    if !is_fetch_url(&u.value) {
                        r.err_help(u.span, format!("mirror `{}` is not a URL cas can fetch from", u.value), "unsupported URL", "a mirror is an http://, https:// or file:// base URL; the rest of the source URL is appended to it");
                        continue;
                    }
                    bases.push(u.value);
                }
                cfg.mirrors.insert(alias.name.clone(), bases);
            }
        }
    }
    if let Some(node) = map.get("remotes") {
        match &node.value {
            Value::Null => {}
            Value::Seq(items) => {
                for item in items {
                    if let Some(remote) = decode_remote(&mut r, item) {
                        cfg.remotes.push(remote);
                    }
                }
            }
            _ => r.err(
                node.span,
                format!(
                    "`remotes`: expected a list of remotes, found {}",
                    node.describe()
                ),
                "expected a list",
            ),
        }
    }
    if let Some(node) = map.get("projects") {
        if let Some(m) = r.map(node, "projects") {
            for (name, v) in m.iter() {
                let Some(pm) = r.map(v, &name.name) else {
                    continue;
                };
                r.check_keys(pm, &["options"], &format!("project `{}`", name.name));
                if let Some(o) = pm.get("options") {
                    let values = r
                        .string_map(o, "options")
                        .into_iter()
                        .map(|(k, v)| (k.value, v.value))
                        .collect();
                    cfg.project_options.insert(name.name.clone(), values);
                }
            }
        }
    }
    if let Some(node) = map.get("signing-key") {
        if !node.is_null() {
            if let Some(s) = r.string(node, "signing-key") {
                if s.value.is_empty() {
                    r.err(s.span, "`signing-key` must be a path", "empty path");
                } else {
                    cfg.signing_key = Some(expand_path(&s.value, path));
                }
            }
        }
    }
    if let Some(node) = map.get("arch") {
        if let Some(s) = r.string(node, "arch") {
            if is_arch_name(&s.value) {
                cfg.arch = Some(s.value.clone());
            } else {
                r.err(
                    s.span,
                    format!("`{}` is not an architecture name", s.value),
                    "like x86_64, aarch64, armv7, riscv64",
                );
            }
        }
    }
    if r.errors.is_empty() {
        Ok(cfg)
    } else {
        Err(Diagnostics::new(r.errors))
    }
}

fn decode_remote(r: &mut Reader<SourceFile>, node: &Node) -> Option<RemoteConfig> {
    let Some(map) = r.map(node, "remotes") else {
        if node.is_null() {
            r.err(node.span, "empty remote entry", "expected `url: ...`");
        }
        return None;
    };
    r.check_keys(map, REMOTE_KEYS, "a remote");
    let Some(url_node) = map.get("url") else {
        r.err_help(
            node.span,
            "remote without `url`",
            "no `url:`",
            "add `url: http://HOST:PORT/PATH` (or a file:// URL or an absolute directory)",
        );
        return None;
    };
    let url = r.string(url_node, "url")?;
    let grpc = url.value.starts_with("grpc://") || url.value.starts_with("grpcs://");
    if !(is_fetch_url(&url.value) || url.value.starts_with('/') || grpc) {
        r.err_help(
            url.span,
            format!("remote `{}` is not a supported URL", url.value),
            "unsupported URL",
            "use http://, https://, file://, grpc:// (a REAPI server) or an absolute directory",
        );
    }
    let push = map
        .get("push")
        .and_then(|n| r.bool(n, "push"))
        .unwrap_or(false);
    let trust_unsigned = map
        .get("trust-unsigned")
        .and_then(|n| r.bool(n, "trust-unsigned"))
        .unwrap_or(false);
    let mut trusted_keys = Vec::new();
    if let Some(n) = map.get("trusted-keys") {
        for k in r.strings(n, "trusted-keys") {
            if decode_public_key(&k.value).is_none() {
                r.err_help(k.span, "not an ed25519 public key", "expected 32 bytes in hex or base64", "write the public key printed by `cas keygen` (64 hex digits or 44 base64 characters)");
            } else {
                trusted_keys.push(k.value);
            }
        }
    }
    let mut headers = Vec::new();
    if let Some(n) = map.get("headers") {
        for (name, value) in r.string_map(n, "headers") {
            let valid = !name.value.is_empty()
                && name
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !valid {
                r.err(
                    name.span,
                    format!("`{}` is not an HTTP header name", name.value),
                    "letters, digits, `-`",
                );
                continue;
            }
            if grpc {
                if let Some(why) = grpc_reserved(&name.value) {
                    r.err_help(
                        name.span,
                        format!("`{}` cannot be sent as gRPC metadata", name.value),
                        why,
                        "a grpc(s):// remote sends its headers as text metadata with every call (`authorization: \"Bearer ${TOKEN}\"`)",
                    );
                    continue;
                }
            }
            headers.push((name.value, value.value));
        }
    }
    let timeout = map.get("timeout").and_then(|n| {
        let secs = r.u32(n, "timeout")?;
        if secs == 0 {
            r.err(n.span, "`timeout` is at least 1 (seconds)", "zero");
            return None;
        }
        Some(u64::from(secs))
    });
    let tls = decode_tls(r, map, &url.value);
    Some(RemoteConfig {
        url: url.value,
        push,
        trusted_keys,
        trust_unsigned,
        headers,
        timeout,
        tls,
    })
}

/// Why a header cannot be gRPC text metadata, if it cannot.
fn grpc_reserved(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("grpc-") {
        Some("`grpc-` names are reserved by gRPC")
    } else if lower.ends_with("-bin") {
        Some("`-bin` names are binary metadata, which cas does not send")
    } else if ["content-type", "te", "host", "connection", "user-agent"].contains(&lower.as_str()) {
        Some("gRPC sets this header itself")
    } else {
        None
    }
}

/// `tls-ca`, `tls-client-cert` and `tls-client-key` of a remote: grpcs://
/// only; a client certificate needs its key and the other way round.
fn decode_tls(r: &mut Reader<SourceFile>, map: &crate::yaml::Map, url: &str) -> RemoteTls {
    let mut file = |key: &str| -> Option<(ConfigFile, crate::diagnostics::Span)> {
        let node = map.get(key)?;
        let s = r.string(node, key)?;
        if s.value.is_empty() {
            r.err(s.span, format!("`{key}` must be a path"), "empty path");
            return None;
        }
        let (line, col) = r.loc.line_col(s.span.start);
        let path = expand_path(&s.value, &r.loc.path);
        Some((
            ConfigFile {
                path,
                at: format!("`{key}` at {}:{line}:{col}", r.loc.name),
            },
            s.span,
        ))
    };
    let ca = file("tls-ca");
    let cert = file("tls-client-cert");
    let key = file("tls-client-key");
    let mut tls = RemoteTls::default();
    if !url.starts_with("grpcs://") {
        let help = if url.starts_with("grpc://") {
            "grpc:// is plain text: write grpcs:// to reach the server over TLS"
        } else {
            "an https:// remote checks the server against the system's roots (or SSL_CERT_FILE)"
        };
        for (name, f) in [
            ("tls-ca", &ca),
            ("tls-client-cert", &cert),
            ("tls-client-key", &key),
        ] {
            if let Some((_, span)) = f {
                r.err_help(
                    *span,
                    format!("`{name}` is for grpcs:// remotes"),
                    "not a grpcs:// remote",
                    help,
                );
            }
        }
        return tls;
    }
    tls.ca = ca.map(|(f, _)| f);
    match (cert, key) {
        (Some((c, _)), Some((k, _))) => tls.client = Some((c, k)),
        (Some((_, span)), None) => r.err_help(
            span,
            "`tls-client-cert` without `tls-client-key`",
            "no key for this certificate",
            "mutual TLS needs both: add `tls-client-key:` with the certificate's private key (a PEM file)",
        ),
        (None, Some((_, span))) => r.err_help(
            span,
            "`tls-client-key` without `tls-client-cert`",
            "no certificate for this key",
            "mutual TLS needs both: add `tls-client-cert:` with the client certificate (a PEM file)",
        ),
        (None, None) => {}
    }
    tls
}

fn is_fetch_url(u: &str) -> bool {
    ["http://", "https://", "file://"]
        .iter()
        .any(|s| u.len() > s.len() && u.starts_with(s))
}

/// `~/x` → `$HOME/x`; a relative path is relative to the configuration file's directory.
fn expand_path(s: &str, config: &Path) -> PathBuf {
    if let Some(rest) = s.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = PathBuf::from(s);
    if p.is_absolute() {
        return p;
    }
    config.parent().map(|d| d.join(&p)).unwrap_or(p)
}

/// The 32 bytes of an ed25519 public key written in hex (64 digits) or
/// standard base64 (with or without padding).
pub fn decode_public_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        return Some(out);
    }
    let bytes = base64_decode(s)?;
    bytes.try_into().ok()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UserConfig, Diagnostics> {
        parse_user_config(
            Path::new("/home/u/.config/cas/config.yaml"),
            text.to_owned(),
        )
    }

    #[test]
    fn full_example() {
        let c = parse(
            "# mine\nmirrors:\n  upstream:   # alias\n    - http://127.0.0.1:1/a/\n    - file:///srv/mirror/\n\
             remotes:\n  - url: http://127.0.0.1:8080/cache\n    push: true\n    trusted-keys: [\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\", \"0000000000000000000000000000000000000000000000000000000000000000\"]\n    trust-unsigned: false\n\
             signing-key: keys/signing.key\n",
        )
        .unwrap();
        assert_eq!(
            c.mirrors["upstream"],
            ["http://127.0.0.1:1/a/", "file:///srv/mirror/"]
        );
        assert_eq!(c.remotes.len(), 1);
        assert!(c.remotes[0].push && !c.remotes[0].trust_unsigned);
        assert_eq!(c.remotes[0].trusted_keys.len(), 2);
        assert_eq!(
            c.signing_key.as_deref(),
            Some(Path::new("/home/u/.config/cas/keys/signing.key"))
        );
    }

    #[test]
    fn empty_and_errors() {
        assert_eq!(parse("").unwrap().mirrors.len(), 0);
        assert_eq!(parse("# nothing\n").unwrap().remotes.len(), 0);
        let e = parse("mirror:\n  a: []\n").unwrap_err();
        assert!(
            e.errors[0].message.contains("did you mean `mirrors`"),
            "{}",
            e.errors[0].message
        );
        assert_eq!(e.errors[0].location.as_ref().unwrap().1, 1);
        let e = parse("mirrors:\n  up:\n    - ftp://x/\n").unwrap_err();
        assert_eq!(e.errors[0].location.as_ref().unwrap().1, 3);
        let e =
            parse("remotes:\n  - url: http://127.0.0.1/\n    trusted-keys: [nope]\n").unwrap_err();
        assert!(e.errors[0].message.contains("ed25519"));
        let e = parse("remotes:\n  - push: true\n").unwrap_err();
        assert!(e.errors[0].message.contains("without `url`"));
        assert!(parse("mirrors: [\n").is_err());
    }

    #[test]
    fn grpcs_tls_files_and_metadata() {
        let c = parse(
            "remotes:\n  - url: grpcs://cache:443/main\n    headers:\n      Authorization: \"Bearer ${T}\"\n\
             \x20   tls-ca: certs/ca.pem\n    tls-client-cert: /etc/me.pem\n    tls-client-key: certs/me.key\n",
        )
        .unwrap();
        let r = &c.remotes[0];
        assert_eq!(r.headers, [("Authorization".into(), "Bearer ${T}".into())]);
        let ca = r.tls.ca.as_ref().unwrap();
        assert_eq!(ca.path, Path::new("/home/u/.config/cas/certs/ca.pem"));
        assert_eq!(ca.at, "`tls-ca` at /home/u/.config/cas/config.yaml:5:13");
        let (cert, key) = r.tls.client.as_ref().unwrap();
        assert_eq!(cert.path, Path::new("/etc/me.pem"));
        assert_eq!(key.path, Path::new("/home/u/.config/cas/certs/me.key"));
        // a certificate needs its key, and the other way round
        let e = parse("remotes:\n  - url: grpcs://h:1\n    tls-client-key: k.pem\n").unwrap_err();
        assert!(e.errors[0].message.contains("without `tls-client-cert`"));
        assert_eq!(e.errors[0].location.as_ref().unwrap().1, 3);
        // TLS files are for grpcs:// only
        for url in ["grpc://h:1", "https://h/c"] {
            let e = parse(&format!("remotes:\n  - url: {url}\n    tls-ca: ca.pem\n")).unwrap_err();
            assert!(
                e.errors[0].message.contains("for grpcs:// remotes"),
                "{url}"
            );
        }
        // names gRPC keeps for itself are no metadata
        for name in ["grpc-timeout", "x-bin", "content-type"] {
            let e = parse(&format!(
                "remotes:\n  - url: grpc://h:1\n    headers:\n      {name}: v\n"
            ))
            .unwrap_err();
            assert!(e.errors[0].message.contains("gRPC metadata"), "{name}");
        }
    }

    #[test]
    fn missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        assert!(load_user_config(Some(&missing)).is_err());
    }

    #[test]
    fn keys() {
        assert!(decode_public_key(&"ab".repeat(32)).is_some());
        assert!(decode_public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_some());
        assert!(decode_public_key("AAAA").is_none());
    }
}

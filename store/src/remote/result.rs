//! The encoding of an action result on a remote, its ed25519 signatures, and
//! the trust decision (spec/remote.md).
//!
//! ```text
//! cas-action-result 1\n
//! key <hex>\n
//! output <hex>\n
//! log <hex>\n
//! manifest <hex>\n
//! duration-ms <decimal>\n
//! created <decimal>\n
//! signature ed25519 <public key hex> <signature hex>\n      (zero or more)
//! ```
//!
//! The signed message is the body: every byte before the first `signature`
//! line. It names the key, so a result cannot be replayed under another key.
//! Decoding is strict: the body must be exactly what [`encode_result`]
//! writes for the decoded fields.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, Verifier};

use crate::action_cache::ActionResult;
use crate::digest::{ActionKey, BlobDigest, Digest, TreeDigest};

/// Refuse encoded results larger than this.
pub const MAX_RESULT_SIZE: usize = 64 * 1024;
/// Refuse results with more signatures than this.
pub const MAX_SIGNATURES: usize = 16;

const MAGIC: &str = "cas-action-result 1\n";

/// A secret ed25519 key that signs pushed results.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public())
    }
}

impl SigningKey {
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }
    /// The ed25519 signature of `message` (attestations, crate cas-sbom).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(message).to_bytes()
    }
}

/// Errors reading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {input}: {reason}")]
    Bad {
        what: String,
        input: String,
        reason: String,
    },
}

impl PublicKey {
    /// Parse a public key: 64 hex characters or 44 characters of base64,
    /// optionally prefixed by `ed25519:`.
    pub fn parse(s: &str) -> Result<PublicKey, KeyError> {
        PublicKey::parse_from(s, &shown(s))
    }

    /// [`PublicKey::parse`]; errors name the input as `shown` (never the
    /// text of a secret key).
    fn parse_from(s: &str, shown: &str) -> Result<PublicKey, KeyError> {
        let bad = |reason: &str| KeyError::Bad {
            what: "public key".into(),
            input: shown.to_string(),
            reason: reason.to_string(),
        };
        if s.trim_start().starts_with(SECRET_PREFIX) {
            return Err(bad(
                "this is a secret key, not a public key: give its .pub file (cas keygen writes both)",
            ));
        }
        let t = s.trim();
        let t = t.strip_prefix("ed25519:").unwrap_or(t);
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|e| bad(&e.to_string()))?
        } else {
            base64_decode(t)
                .ok_or_else(|| bad("expected 64 hex characters or 44 characters of base64"))?
        };
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("an ed25519 public key is 32 bytes"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|_| bad("not a valid ed25519 point"))?;
        Ok(PublicKey(arr))
    }

    /// Whether `signature` is this key's ed25519 signature of `message`
    /// (strict verification: no malleable or small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .is_ok_and(|vk| vk.verify_strict(message, &sig).is_ok())
    }

    /// A key given inline, or a path to a file holding one (`cas keygen`'s `.pub`).
    pub fn parse_or_read(s: &str) -> Result<PublicKey, KeyError> {
        match PublicKey::parse(s) {
            Ok(k) => Ok(k),
            Err(e) => {
                let p = Path::new(s);
                if p.is_file() {
                    let text = std::fs::read_to_string(p).map_err(|source| KeyError::Io {
                        path: p.into(),
                        source,
                    })?;
                    PublicKey::parse_from(&text, &p.display().to_string())
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// How a key given inline is named in errors: as it is, unless it is (or
/// may be) secret.
fn shown(s: &str) -> String {
    if s.trim_start().starts_with(SECRET_PREFIX) {
        "(a secret key, not shown)".into()
    } else if s.len() > 80 {
        format!(
            "{}… ({} characters)",
            &s[..s.char_indices().nth(12).map_or(s.len(), |c| c.0)],
            s.len()
        )
    } else {
        s.to_string()
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A fresh key from the operating system's random source.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    let mut filled = 0;
    while filled < seed.len() {
        // SAFETY: writes at most the remaining length into the buffer.
        let n =
            unsafe { libc::getrandom(seed[filled..].as_mut_ptr().cast(), seed.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(KeyError::Io {
                path: "getrandom(2)".into(),
                source: e,
            });
        }
        filled += n as usize;
    }
    Ok(SigningKey::from_seed(seed))
}

const SECRET_PREFIX: &str = "ed25519-secret:";

/// Write `path` (the secret key, mode 0600, refused if it exists) and
/// `path.pub` (the public key in hex).
pub fn write_key_pair(key: &SigningKey, path: &Path) -> Result<PathBuf, KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| KeyError::Io { path: p, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    writeln!(f, "{SECRET_PREFIX}{}", hex::encode(key.0.to_bytes())).map_err(io(path))?;
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    std::fs::write(&pub_path, format!("{}\n", key.public())).map_err(io(&pub_path))?;
    Ok(pub_path)
}

/// Read a secret key written by [`write_key_pair`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    let bad = |reason: &str| KeyError::Bad {
        what: "secret key file".into(),
        input: path.display().to_string(),
        reason: reason.into(),
    };
    let hexs = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| bad("expected `ed25519-secret:<64 hex>` (see cas keygen)"))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(hexs, &mut seed).map_err(|_| bad("the key is not 64 hex characters"))?;
    Ok(SigningKey::from_seed(seed))
}

/// The body of an encoded result (the signed bytes).
pub fn encode_result(key: &ActionKey, r: &ActionResult) -> Vec<u8> {
    format!(
        "{MAGIC}key {key}\noutput {}\nlog {}\nmanifest {}\nduration-ms {}\ncreated {}\n",
        r.output, r.log, r.manifest, r.duration_ms, r.created
    )
    .into_bytes()
}

/// The body followed by one signature line.
pub fn sign_result(key: &ActionKey, r: &ActionResult, signer: &SigningKey) -> Vec<u8> {
    let mut body = encode_result(key, r);
    let sig = signer.0.sign(&body);
    body.extend_from_slice(
        format!(
            "signature ed25519 {} {}\n",
            signer.public(),
            hex::encode(sig.to_bytes())
        )
        .as_bytes(),
    );
    body
}

/// A decoded result and its (unverified) signatures.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub key: ActionKey,
    pub result: ActionResult,
    pub body_len: usize,
    pub signatures: Vec<(PublicKey, [u8; 64])>,
}

/// Why a result from a remote is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed action result: {0}")]
    Malformed(String),
    #[error("the result is stored under another key ({0})")]
    WrongKey(String),
    #[error("the result is not signed, and the remote is not marked trust-unsigned")]
    Unsigned,
    #[error("the result is signed only by untrusted keys ({0})")]
    Untrusted(String),
    #[error("bad signature claiming to be from trusted key {0}: forged or altered")]
    BadSignature(String),
}

fn field<'a>(lines: &mut std::str::Split<'a, char>, name: &str) -> Result<&'a str, Rejection> {
    let line = lines
        .next()
        .ok_or_else(|| Rejection::Malformed(format!("missing `{name}`")))?;
    line.strip_prefix(name)
        .and_then(|l| l.strip_prefix(' '))
        .ok_or_else(|| Rejection::Malformed(format!("expected `{name}`, found {line:?}")))
}

fn digest_field(lines: &mut std::str::Split<'_, char>, name: &str) -> Result<Digest, Rejection> {
    let v = field(lines, name)?;
    Digest::from_hex(v).map_err(|e| Rejection::Malformed(format!("`{name}`: {e}")))
}

/// Decode (strictly) without checking signatures.
pub fn decode_result(bytes: &[u8]) -> Result<Decoded, Rejection> {
    if bytes.len() > MAX_RESULT_SIZE {
        return Err(Rejection::Malformed(format!(
            "{} bytes (at most {MAX_RESULT_SIZE})",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Rejection::Malformed("not UTF-8".into()))?;
    let body_text = text
        .strip_prefix(MAGIC)
        .ok_or_else(|| Rejection::Malformed("does not start with `cas-action-result 1`".into()))?;
    let mut lines = body_text.split('\n');
    let key = ActionKey::from_digest(digest_field(&mut lines, "key")?);
    let output = TreeDigest(digest_field(&mut lines, "output")?);
    let log = BlobDigest(digest_field(&mut lines, "log")?);
    let manifest = BlobDigest(digest_field(&mut lines, "manifest")?);
    let duration_ms: u64 = field(&mut lines, "duration-ms")?
        .parse()
        .map_err(|_| Rejection::Malformed("bad `duration-ms`".into()))?;
    let created: i64 = field(&mut lines, "created")?
        .parse()
        .map_err(|_| Rejection::Malformed("bad `created`".into()))?;
    let result = ActionResult {
        output,
        log,
        duration_ms,
        created,
        manifest,
    };
    let body = encode_result(&key, &result);
    if !bytes.starts_with(&body) {
        return Err(Rejection::Malformed("not in canonical form".into()));
    }
    let rest = std::str::from_utf8(&bytes[body.len()..])
        .map_err(|_| Rejection::Malformed("not UTF-8".into()))?;
    let mut signatures = Vec::new();
    if !rest.is_empty() {
        let rest = rest
            .strip_suffix('\n')
            .ok_or_else(|| Rejection::Malformed("last line does not end with a newline".into()))?;
        for line in rest.split('\n') {
            let parts: Vec<&str> = line.split(' ').collect();
            let ["signature", "ed25519", pk, sig] = parts.as_slice() else {
                return Err(Rejection::Malformed(format!("unexpected line {line:?}")));
            };
            let mut pkb = [0u8; 32];
            let mut sigb = [0u8; 64];
            if pk.len() != 64
                || sig.len() != 128
                || hex::decode_to_slice(pk, &mut pkb).is_err()
                || hex::decode_to_slice(sig, &mut sigb).is_err()
                || pk.bytes().any(|b| b.is_ascii_uppercase())
                || sig.bytes().any(|b| b.is_ascii_uppercase())
            {
                return Err(Rejection::Malformed(format!("bad signature line {line:?}")));
            }
            signatures.push((PublicKey(pkb), sigb));
            if signatures.len() > MAX_SIGNATURES {
                return Err(Rejection::Malformed("too many signatures".into()));
            }
        }
    }
    Ok(Decoded {
        key,
        result,
        body_len: body.len(),
        signatures,
    })
}

/// Which results a remote's answers are trusted for.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<PublicKey>,
    /// Accept results without a valid trusted signature (never one with a
    /// bad signature claiming a trusted key).
    pub unsigned: bool,
}

/// Decode and check the result stored under `key`: accepted when one
/// signature by a trusted key verifies (or, with `trust.unsigned`, when no
/// signature by a trusted key fails).
pub fn verify_result(
    bytes: &[u8],
    key: &ActionKey,
    trust: &Trust,
) -> Result<ActionResult, Rejection> {
    verify_result_signed(bytes, key, trust).map(|(r, _)| r)
}

/// [`verify_result`], and whether a trusted key signed the result (`false`:
/// accepted only because the remote is marked trust-unsigned).
pub fn verify_result_signed(
    bytes: &[u8],
    key: &ActionKey,
    trust: &Trust,
) -> Result<(ActionResult, bool), Rejection> {
    let d = decode_result(bytes)?;
    if d.key != *key {
        return Err(Rejection::WrongKey(d.key.to_hex()));
    }
    let body = &bytes[..d.body_len];
    let mut forged = None;
    for (pk, sig) in &d.signatures {
        if !trust.keys.contains(pk) {
            continue;
        }
        let ok = ed25519_dalek::VerifyingKey::from_bytes(&pk.0).is_ok_and(|vk| {
            vk.verify(body, &ed25519_dalek::Signature::from_bytes(sig))
                .is_ok()
        });
        if ok {
            return Ok((d.result, true));
        }
        forged = Some(*pk);
    }
    if let Some(pk) = forged {
        return Err(Rejection::BadSignature(pk.to_string()));
    }
    if trust.unsigned {
        return Ok((d.result, false));
    }
    if d.signatures.is_empty() {
        return Err(Rejection::Unsigned);
    }
    let who: Vec<String> = d.signatures.iter().map(|(k, _)| k.to_string()).collect();
    Err(Rejection::Untrusted(who.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (ActionKey, ActionResult) {
        let d = |b: &[u8]| Digest::of_bytes(b);
        (
            ActionKey::from_digest(d(b"key")),
            ActionResult {
                output: TreeDigest(d(b"out")),
                log: BlobDigest(d(b"log")),
                duration_ms: 1234,
                created: 1_700_000_000,
                manifest: BlobDigest(d(b"key")),
            },
        )
    }

    #[test]
    fn golden_encoding_and_signature() {
        let (key, r) = sample();
        let signer = SigningKey::from_seed([7u8; 32]);
        let bytes = sign_result(&key, &r, &signer);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "cas-action-result 1");
        assert_eq!(lines[1], format!("key {}", Digest::of_bytes(b"key")));
        assert_eq!(lines[5], "duration-ms 1234");
        assert_eq!(lines[6], "created 1700000000");
        assert!(lines[7].starts_with(&format!("signature ed25519 {} ", signer.public())));
        // Ed25519 is deterministic: the same seed and body give the same bytes.
        assert_eq!(bytes, sign_result(&key, &r, &signer));
        let trust = Trust {
            keys: vec![signer.public()],
            unsigned: false,
        };
        assert_eq!(verify_result(&bytes, &key, &trust).unwrap(), r);
    }

    #[test]
    fn rejections() {
        let (key, r) = sample();
        let signer = SigningKey::from_seed([7u8; 32]);
        let other = SigningKey::from_seed([8u8; 32]);
        let trusted = Trust {
            keys: vec![signer.public()],
            unsigned: false,
        };
        let unsigned = encode_result(&key, &r);
        assert_eq!(
            verify_result(&unsigned, &key, &trusted),
            Err(Rejection::Unsigned)
        );
        assert!(verify_result(
            &unsigned,
            &key,
            &Trust {
                keys: vec![],
                unsigned: true
            }
        )
        .is_ok());
        let by_other = sign_result(&key, &r, &other);
        assert!(matches!(
            verify_result(&by_other, &key, &trusted),
            Err(Rejection::Untrusted(_))
        ));
        // Altered body under a valid-looking trusted signature: forged.
        let mut forged = sign_result(&key, &r, &signer);
        let pos = forged.iter().position(|&b| b == b'\n').unwrap() + 10;
        forged[pos] = if forged[pos] == b'0' { b'1' } else { b'0' };
        assert!(matches!(
            verify_result(&forged, &key, &trusted),
            Err(Rejection::WrongKey(_) | Rejection::BadSignature(_))
        ));
        let mut r2 = r.clone();
        r2.duration_ms = 1;
        let mut swapped = encode_result(&key, &r2);
        let good = sign_result(&key, &r, &signer);
        swapped.extend_from_slice(&good[encode_result(&key, &r).len()..]);
        assert!(matches!(
            verify_result(&swapped, &key, &trusted),
            Err(Rejection::BadSignature(_))
        ));
        // Trust-unsigned never accepts a bad trusted signature.
        let lax = Trust {
            keys: vec![signer.public()],
            unsigned: true,
        };
        assert!(matches!(
            verify_result(&swapped, &key, &lax),
            Err(Rejection::BadSignature(_))
        ));
        // Another key's result replayed under this key.
        let other_key = ActionKey::of_manifest(b"other");
        assert!(matches!(
            verify_result(&good, &other_key, &trusted),
            Err(Rejection::WrongKey(_))
        ));
        // Non-canonical forms.
        let mut padded = encode_result(&key, &r);
        padded = String::from_utf8(padded)
            .unwrap()
            .replace("duration-ms 1234", "duration-ms 01234")
            .into_bytes();
        assert!(matches!(
            verify_result(&padded, &key, &lax),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            verify_result(b"garbage", &key, &lax),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn public_keys_parse_in_hex_and_base64() {
        let k = SigningKey::from_seed([1u8; 32]).public();
        assert_eq!(PublicKey::parse(&k.to_string()).unwrap(), k);
        assert_eq!(PublicKey::parse(&format!("ed25519:{k}")).unwrap(), k);
        let b64 = base64_encode(&k.0);
        assert_eq!(PublicKey::parse(&b64).unwrap(), k);
        assert!(PublicKey::parse("abc").is_err());
    }

    fn base64_encode(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}

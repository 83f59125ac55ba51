//! What a cas result is in REAPI terms (spec/remote.md, "REAPI"), byte for
//! byte:
//!
//! - the **cache Action** of an action key `K`: a `Command` whose only field
//!   is `arguments = ["cas-result", hex(K)]`, and an `Action` whose only
//!   fields are `command_digest` (that Command's SHA-256 digest) and
//!   `input_root_digest` (the empty `Directory`: SHA-256 of no bytes, size
//!   0). Both are protobuf-encoded with fields in number order and default
//!   values omitted, as every conforming encoder does for these messages.
//!   The result of `K` is stored in the ActionCache under that Action's
//!   digest, so any REAPI client can find it from `K` alone.
//! - its **ActionResult**: exit code 0 and two output files, `cas/result`
//!   (the encoded, signed cas result: spec/remote.md "Action result
//!   encoding") and `cas/digests` (the digest map below).
//! - the **digest map**: UTF-8 text, `cas-reapi-digests 1\n`, then one line
//!   `<blake3 hex> <sha256 hex> <size>\n` per object the result references
//!   (every tree and blob of its output, its log and its manifest), sorted
//!   by blake3, without duplicates.

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use cas_store::{ActionKey, Digest};
use prost::Message;

use crate::digests::Sha;

/// The output file of an ActionResult that holds the cas result.
pub const RESULT_PATH: &str = "cas/result";
/// The output file of an ActionResult that holds the digest map.
pub const DIGESTS_PATH: &str = "cas/digests";
/// The largest digest map read (about 600,000 objects).
pub const MAX_MAP_BYTES: u64 = 64 << 20;

const MAP_HEADER: &str = "cas-reapi-digests 1\n";

/// The cache Action of `key`: its encoded Command and Action.
pub struct CacheAction {
    pub command: Vec<u8>,
    pub action: Vec<u8>,
}

impl CacheAction {
    pub fn of(key: &ActionKey) -> CacheAction {
        let command = re::Command {
            arguments: vec!["cas-result".to_string(), key.to_hex()],
            ..Default::default()
        }
        .encode_to_vec();
        let action = re::Action {
            command_digest: Some(Sha::of_bytes(&command).proto()),
            input_root_digest: Some(Sha::of_bytes(b"").proto()),
            ..Default::default()
        }
        .encode_to_vec();
        CacheAction { command, action }
    }

    /// The ActionCache key.
    pub fn digest(&self) -> Sha {
        Sha::of_bytes(&self.action)
    }
}

/// Encode a digest map.
pub fn encode_map(entries: &[(Digest, Sha)]) -> Vec<u8> {
    let mut sorted: Vec<&(Digest, Sha)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut out = String::with_capacity(MAP_HEADER.len() + sorted.len() * 140);
    out.push_str(MAP_HEADER);
    for (d, s) in sorted {
        out.push_str(&d.to_hex());
        out.push(' ');
        out.push_str(&s.hex());
        out.push(' ');
        out.push_str(&s.size.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// Decode a digest map, strictly: what [`encode_map`] writes and nothing else.
pub fn decode_map(bytes: &[u8]) -> Result<Vec<(Digest, Sha)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let body = text
        .strip_prefix(MAP_HEADER)
        .ok_or("does not start with `cas-reapi-digests 1`")?;
    let mut out: Vec<(Digest, Sha)> = Vec::new();
    for (n, line) in body.split_terminator('\n').enumerate() {
        let bad = |what: &str| format!("line {}: {what}", n + 2);
        let mut parts = line.split(' ');
        let (Some(b), Some(s), Some(size), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not `<blake3> <sha256> <size>`"));
        };
        let d = Digest::from_hex(b).map_err(|_| bad("bad blake3 digest"))?;
        let hash: [u8; 32] = hex::decode(s)
            .ok()
            .filter(|_| {
                s.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            })
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("bad sha256 digest"))?;
        let size: u64 = size
            .parse()
            .ok()
            .filter(|v: &u64| v.to_string() == size)
            .ok_or_else(|| bad("bad size"))?;
        if let Some((last, _)) = out.last() {
            if last.as_bytes() >= d.as_bytes() {
                return Err(bad("not sorted by blake3, or a duplicate"));
            }
        }
        out.push((d, Sha { hash, size }));
    }
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("the last line has no newline".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes spec/remote.md describes, written out by hand: a change of
    /// the cache Action's encoding makes every result unreachable.
    #[test]
    fn golden_cache_action() {
        let key = ActionKey::of_manifest(b"key");
        let a = CacheAction::of(&key);
        let mut command = vec![0x0a, 10];
        command.extend_from_slice(b"cas-result");
        command.extend_from_slice(&[0x0a, 64]);
        command.extend_from_slice(key.to_hex().as_bytes());
        assert_eq!(a.command, command);
        let cmd = Sha::of_bytes(&command);
        // Digest{hash: 64 chars, size_bytes: varint} inside field 1; the
        // empty Directory's digest (size 0 omitted) inside field 2.
        let mut inner = vec![0x0a, 64];
        inner.extend_from_slice(cmd.hex().as_bytes());
        inner.push(0x10);
        inner.push(u8::try_from(command.len()).unwrap());
        let mut action = vec![0x0a, u8::try_from(inner.len()).unwrap()];
        action.extend_from_slice(&inner);
        action.extend_from_slice(&[0x12, 66, 0x0a, 64]);
        action
            .extend_from_slice(b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(a.action, action);
    }

    #[test]
    fn digest_map_round_trip_and_strictness() {
        let e = [
            (Digest::of_bytes(b"b"), Sha::of_bytes(b"b")),
            (Digest::of_bytes(b"a"), Sha::of_bytes(b"a")),
            (Digest::of_bytes(b"a"), Sha::of_bytes(b"a")),
        ];
        let bytes = encode_map(&e);
        let back = decode_map(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|(d, s)| e.contains(&(*d, *s))));
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert!(decode_map(swapped.as_bytes())
            .unwrap_err()
            .contains("sorted"));
        assert!(decode_map(format!("{text}x").as_bytes()).is_err());
        assert!(decode_map(text.replace(" 1\n", " 01\n").as_bytes()).is_err());
        assert!(decode_map(b"cas-reapi-digests 2\n").is_err());
        assert!(decode_map(MAP_HEADER.as_bytes()).unwrap().is_empty());
    }
}

//! Digests: blake3-256, shown as 64 lowercase hex characters, typed so that a
//! blob, a tree and an action key cannot be mixed up.

use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;

/// A raw blake3-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The blake3 digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        // by hand: a no-op build converts thousands of digests, and a
        // char iterator collected into a String costs several times this
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = Vec::with_capacity(64);
        for b in self.0 {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
        String::from_utf8(out).expect("hex digits are ASCII")
    }

    /// Parse 64 lowercase (or uppercase) hex characters.
    pub fn from_hex(s: &str) -> Result<Digest, StoreError> {
        if s.len() != 64 {
            return Err(StoreError::BadDigest {
                input: s.to_string(),
                reason: format!("{} characters", s.len()),
            });
        }
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
            if let (Some(h), Some(l)) = (nibble(pair[0]), nibble(pair[1])) {
                out[i] = (h << 4) | l;
                continue;
            }
            let at = if nibble(pair[0]).is_none() {
                2 * i
            } else {
                2 * i + 1
            };
            return Err(StoreError::BadDigest {
                input: s.to_string(),
                reason: match s.get(at..).and_then(|t| t.chars().next()) {
                    Some(c) => format!("invalid character {c:?} at position {at}"),
                    None => format!("not a hex digit at byte {at}"),
                },
            });
        }
        Ok(Digest(out))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Digest {
        Digest(*h.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl FromStr for Digest {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::from_hex(s)
    }
}

macro_rules! typed_digest {
    ($(#[$doc:meta])* $name:ident) => {
        typed_digest!($(#[$doc])* $name, pub);
    };
    ($(#[$doc:meta])* $name:ident, $($vis:tt)*) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($($vis)* Digest);

        impl $name {
            pub fn digest(&self) -> &Digest {
                &self.0
            }
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            pub fn from_hex(s: &str) -> Result<Self, StoreError> {
                Digest::from_hex(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_digest!(
    /// The digest of a file's content (a blob object).
    BlobDigest
);
typed_digest!(
    /// The digest of a tree's canonical encoding (stored as an object too).
    TreeDigest
);
typed_digest!(
    /// The key of a build step in the action cache. Made by the planner
    /// from a step's manifest ([`ActionKey::of_manifest`]), or read back
    /// by its digest ([`ActionKey::from_digest`], [`ActionKey::from_hex`]):
    /// never by wrapping an arbitrary digest in place.
    ActionKey,
);

impl ActionKey {
    /// The key of a step: the digest of its manifest's bytes (spec/keys.md).
    pub fn of_manifest(manifest: &[u8]) -> ActionKey {
        ActionKey(Digest::of_bytes(manifest))
    }
    /// A key named by its digest: read from a record, a remote, a note or
    /// the command line.
    pub fn from_digest(d: Digest) -> ActionKey {
        ActionKey(d)
    }
}

impl TreeDigest {
    /// The digest of the empty tree.
    pub fn empty() -> TreeDigest {
        TreeDigest(Digest::of_bytes(&crate::tree::Tree::default().encode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let b: BlobDigest = d.to_hex().parse().unwrap();
        assert_eq!(b.0, d);
        assert_eq!(b.to_string(), d.to_hex());
        assert!("xyz".parse::<TreeDigest>().is_err());
        assert!("zz".repeat(32).parse::<TreeDigest>().is_err());
        // uppercase parses; a non-ASCII character is an error, not a panic
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()).unwrap(), d);
        let wide = format!("é{}", &d.to_hex()[2..]);
        assert_eq!(wide.len(), 64);
        assert!(Digest::from_hex(&wide).is_err());
        let mid = format!("a{}", &wide[..63]);
        assert!(Digest::from_hex(&mid).is_err());
        // every byte value survives the round trip
        let all = Digest(std::array::from_fn(|i| (i as u8).wrapping_mul(37)));
        assert_eq!(Digest::from_hex(&all.to_hex()).unwrap(), all);
        assert_eq!(all.to_hex(), hex::encode(all.0));
    }
}

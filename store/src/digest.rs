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
        hex::encode(self.0)
    }

    /// Parse 64 lowercase (or uppercase) hex characters.
    pub fn from_hex(s: &str) -> Result<Digest, StoreError> {
        if s.len() != 64 {
            return Err(StoreError::BadDigest {
                input: s.to_string(),
                reason: format!("{} characters", s.len()),
            });
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| StoreError::BadDigest {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
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
    }
}

//! Streaming checksums (sha256 and blake3) of downloads and files.

use std::io::Read;
use std::path::Path;

use sha2::Digest;

use crate::error::{Result, SourceError};
use crate::spec::Checksum;

/// Which algorithm a checksum uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Blake3,
}

impl Algorithm {
    pub fn of(checksum: &Checksum) -> Algorithm {
        match checksum {
            Checksum::Sha256(_) => Algorithm::Sha256,
            Checksum::Blake3(_) => Algorithm::Blake3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Blake3 => "blake3",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Box::default()),
            Algorithm::Blake3 => Hasher::Blake3(Box::default()),
        }
    }
}

/// An incremental hasher for one [`Algorithm`].
#[derive(Clone)]
pub enum Hasher {
    Sha256(Box<sha2::Sha256>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub fn finish(self) -> Checksum {
        match self {
            Hasher::Sha256(h) => Checksum::Sha256(hex::encode(h.finalize())),
            Hasher::Blake3(h) => Checksum::Blake3(h.finalize().to_hex().to_string()),
        }
    }
}

/// Hash a reader to its end, in bounded memory.
pub fn hash_reader(algorithm: Algorithm, mut reader: impl Read) -> std::io::Result<Checksum> {
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// Hash a file.
pub fn hash_file(algorithm: Algorithm, path: &Path) -> Result<Checksum> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io("cannot open", path, e))?;
    hash_reader(algorithm, file).map_err(|e| SourceError::io("cannot read", path, e))
}

/// The blake3 digest of a file's content, as raw bytes.
pub fn blake3_file(path: &Path) -> Result<[u8; 32]> {
    let file = std::fs::File::open(path).map_err(|e| SourceError::io("cannot open", path, e))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(file)
        .map_err(|e| SourceError::io("cannot read", path, e))?;
    Ok(*hasher.finalize().as_bytes())
}

/// Whether a pinned checksum is well formed (64 lowercase hex digits).
pub fn is_well_formed(checksum: &Checksum) -> bool {
    let h = checksum.hex();
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

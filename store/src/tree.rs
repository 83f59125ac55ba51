//! Trees: a directory as a canonical byte encoding (spec/store.md, "Tree encoding").
//!
//! ```text
//! tree    = magic "CASTREE\0" (8 bytes) | version u32 = 1 | count u32 | entry*count
//! entry   = name_len u32 | name bytes | kind u8 | mode u32 | body
//! body    = file:    digest [32] | size u64        (kind 1)
//!           dir:     digest [32]                   (kind 2)
//!           symlink: target_len u32 | target bytes (kind 3)
//! ```
//! All integers little-endian. Entries strictly ascending by raw name bytes.

use crate::digest::{BlobDigest, Digest, TreeDigest};
use crate::error::StoreError;

/// Magic bytes opening every tree encoding.
pub const TREE_MAGIC: &[u8; 8] = b"CASTREE\0";
/// The tree encoding version this crate reads and writes.
pub const TREE_VERSION: u32 = 1;
/// The only mode a symlink may have (Linux ignores symlink modes).
pub const SYMLINK_MODE: u32 = 0o777;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File { digest: BlobDigest, size: u64 },
    Dir { digest: TreeDigest },
    Symlink { target: Vec<u8> },
}

/// One named entry of a directory. `mode` is the permission bits (`mode & 0o7777`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub name: Vec<u8>,
    pub mode: u32,
    pub kind: EntryKind,
}

impl Entry {
    pub fn file(name: impl Into<Vec<u8>>, mode: u32, digest: BlobDigest, size: u64) -> Entry {
        Entry {
            name: name.into(),
            mode: mode & 0o7777,
            kind: EntryKind::File { digest, size },
        }
    }
    pub fn dir(name: impl Into<Vec<u8>>, mode: u32, digest: TreeDigest) -> Entry {
        Entry {
            name: name.into(),
            mode: mode & 0o7777,
            kind: EntryKind::Dir { digest },
        }
    }
    pub fn symlink(name: impl Into<Vec<u8>>, target: impl Into<Vec<u8>>) -> Entry {
        Entry {
            name: name.into(),
            mode: SYMLINK_MODE,
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }
    /// The content digest of a file entry.
    pub fn file_digest(&self) -> Option<&BlobDigest> {
        match &self.kind {
            EntryKind::File { digest, .. } => Some(digest),
            _ => None,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir { .. })
    }
    fn kind_byte(&self) -> u8 {
        match self.kind {
            EntryKind::File { .. } => 1,
            EntryKind::Dir { .. } => 2,
            EntryKind::Symlink { .. } => 3,
        }
    }
}

/// A directory: entries sorted by raw name bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

/// Why a name cannot be an entry name, if it cannot.
pub fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name == b"." || name == b".." {
        return Err(format!(
            "name {:?} is not allowed",
            String::from_utf8_lossy(name)
        ));
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(format!(
            "name {:?} contains '/' or NUL",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

impl Tree {
    /// Build a tree from entries in any order; validates names, modes and uniqueness.
    pub fn new(mut entries: Vec<Entry>) -> Result<Tree, StoreError> {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = Tree { entries };
        tree.validate()
            .map_err(|reason| StoreError::MalformedTree {
                digest: "(new)".into(),
                reason,
            })?;
        Ok(tree)
    }

    /// Check the invariants of the encoding: sorted unique valid names, valid modes.
    pub fn validate(&self) -> Result<(), String> {
        for (i, e) in self.entries.iter().enumerate() {
            check_name(&e.name)?;
            if i > 0 {
                let prev = &self.entries[i - 1].name;
                if prev == &e.name {
                    return Err(format!(
                        "duplicate name {:?}",
                        String::from_utf8_lossy(&e.name)
                    ));
                }
                if prev > &e.name {
                    return Err(format!(
                        "names not sorted: {:?} before {:?}",
                        String::from_utf8_lossy(prev),
                        String::from_utf8_lossy(&e.name)
                    ));
                }
            }
            if e.mode & !0o7777 != 0 {
                return Err(format!(
                    "entry {:?}: mode {:o} has bits outside 0o7777",
                    String::from_utf8_lossy(&e.name),
                    e.mode
                ));
            }
            if let EntryKind::Symlink { target } = &e.kind {
                if e.mode != SYMLINK_MODE {
                    return Err(format!(
                        "symlink {:?}: mode must be 0777",
                        String::from_utf8_lossy(&e.name)
                    ));
                }
                if target.is_empty() || target.contains(&0) {
                    return Err(format!(
                        "symlink {:?}: empty target or NUL in target",
                        String::from_utf8_lossy(&e.name)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 64);
        out.extend_from_slice(TREE_MAGIC);
        out.extend_from_slice(&TREE_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&(e.name.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.name);
            out.push(e.kind_byte());
            out.extend_from_slice(&e.mode.to_le_bytes());
            match &e.kind {
                EntryKind::File { digest, size } => {
                    out.extend_from_slice(digest.0.as_bytes());
                    out.extend_from_slice(&size.to_le_bytes());
                }
                EntryKind::Dir { digest } => out.extend_from_slice(digest.0.as_bytes()),
                EntryKind::Symlink { target } => {
                    out.extend_from_slice(&(target.len() as u32).to_le_bytes());
                    out.extend_from_slice(target);
                }
            }
        }
        out
    }

    /// The digest of the canonical encoding.
    pub fn digest(&self) -> TreeDigest {
        TreeDigest(Digest::of_bytes(&self.encode()))
    }

    /// Decode and validate; any deviation from the canonical form is an error.
    pub fn decode(bytes: &[u8]) -> Result<Tree, StoreError> {
        Self::decode_inner(bytes).map_err(|reason| StoreError::MalformedTree {
            digest: Digest::of_bytes(bytes).to_hex(),
            reason,
        })
    }

    fn decode_inner(bytes: &[u8]) -> Result<Tree, String> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != TREE_MAGIC {
            return Err("bad magic (not a tree)".into());
        }
        let version = r.u32()?;
        if version != TREE_VERSION {
            return Err(format!("unsupported tree version {version}"));
        }
        let count = r.u32()? as usize;
        // Each entry takes at least 4+1+1+4+4 bytes: refuse absurd counts before allocating.
        if count > bytes.len() / 14 {
            return Err(format!(
                "entry count {count} larger than the encoding allows"
            ));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = r.u32()? as usize;
            let name = r.take(name_len)?.to_vec();
            let kind = r.u8()?;
            let mode = r.u32()?;
            let kind = match kind {
                1 => {
                    let digest = BlobDigest(r.digest()?);
                    let size = r.u64()?;
                    EntryKind::File { digest, size }
                }
                2 => EntryKind::Dir {
                    digest: TreeDigest(r.digest()?),
                },
                3 => {
                    let len = r.u32()? as usize;
                    EntryKind::Symlink {
                        target: r.take(len)?.to_vec(),
                    }
                }
                k => return Err(format!("unknown entry type {k}")),
            };
            entries.push(Entry { name, mode, kind });
        }
        if r.pos != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - r.pos));
        }
        let tree = Tree { entries };
        tree.validate()?;
        Ok(tree)
    }

    /// The entry called `name`, if any.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: wanted {n} bytes at offset {} of {}",
                    self.pos,
                    self.bytes.len()
                )
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn digest(&mut self) -> Result<Digest, String> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(Digest(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(s: &[u8]) -> BlobDigest {
        BlobDigest(Digest::of_bytes(s))
    }

    fn sample() -> Tree {
        Tree::new(vec![
            Entry::symlink("link", "hello"),
            Entry::file("hello", 0o755, blob(b"hi\n"), 3),
            Entry::dir("empty", 0o700, TreeDigest::empty()),
        ])
        .unwrap()
    }

    #[test]
    fn golden_empty_tree() {
        let bytes = Tree::default().encode();
        assert_eq!(
            hex::encode(&bytes),
            "434153545245450001000000".to_string() + "00000000"
        );
        assert_eq!(TreeDigest::empty().to_hex(), GOLDEN_EMPTY);
    }

    const GOLDEN_EMPTY: &str = "15906123bba52c6ca4c0fc903ea2e036e557952f22a530db845fc134d4afea0f";
    const GOLDEN_SAMPLE_HEX: &str = "4341535452454500010000000300000005000000656d70747902c001000015906123bba52c6ca4c0fc903ea2e036e557952f22a530db845fc134d4afea0f0500000068656c6c6f01ed0100000b8b60248fad7ac6dfac221b7e01a8b91c772421a15b387dd1fb2d6a94aee4380300000000000000040000006c696e6b03ff0100000500000068656c6c6f";
    const GOLDEN_SAMPLE: &str = "6008c68a22168508085ad1a7d9fdafbebbd67956cc43b363861017f87f68559f";

    #[test]
    fn golden_sample_tree() {
        let t = sample();
        let names: Vec<&[u8]> = t.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, vec![&b"empty"[..], b"hello", b"link"]);
        let bytes = t.encode();
        assert_eq!(hex::encode(&bytes), GOLDEN_SAMPLE_HEX);
        assert_eq!(t.digest().to_hex(), GOLDEN_SAMPLE);
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
    }

    #[test]
    fn non_utf8_and_special_names_round_trip() {
        let t = Tree::new(vec![
            Entry::file(vec![0xff, 0xfe, b'a'], 0o4755, blob(b""), 0),
            Entry::file(&b"new\nline"[..], 0o644, blob(b"x"), 1),
            Entry::file(vec![b'n'; 255], 0o1644, blob(b"y"), 1),
        ])
        .unwrap();
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn rejects_malformed() {
        let good = sample().encode();
        // unsorted: swap two entries by building the bytes by hand
        let mut t = sample();
        t.entries.swap(0, 1);
        assert!(Tree::decode(&t.encode())
            .unwrap_err()
            .to_string()
            .contains("not sorted"));
        let mut t = sample();
        t.entries[1].name = b"empty".to_vec();
        assert!(Tree::decode(&t.encode())
            .unwrap_err()
            .to_string()
            .contains("duplicate"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            let t = Tree {
                entries: vec![Entry::file(bad, 0o644, blob(b""), 0)],
            };
            assert!(Tree::decode(&t.encode()).is_err(), "accepted name {bad:?}");
            assert!(Tree::new(t.entries.clone()).is_err());
        }
        // truncated, trailing, bad magic, bad version, bad kind, bad mode
        assert!(Tree::decode(&good[..good.len() - 1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Tree::decode(&trailing).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(Tree::decode(&magic).is_err());
        let mut version = good.clone();
        version[8] = 2;
        assert!(Tree::decode(&version).is_err());
        let mut t = sample();
        t.entries[1].mode = 0o10755;
        assert!(Tree::decode(&t.encode()).is_err());
        let mut t = sample();
        t.entries[2].mode = 0o755; // symlink must be 0777
        assert!(Tree::decode(&t.encode()).is_err());
        let mut huge = Tree::default().encode();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Tree::decode(&huge).is_err());
        // kind byte of the first entry ("empty": 4 + 5 bytes after the 16-byte header)
        let mut kind = good.clone();
        kind[16 + 4 + 5] = 9;
        assert!(Tree::decode(&kind).is_err());
    }
}

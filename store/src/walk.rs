//! Trees in the store: put, get, and walking a tree recursively.

use crate::digest::{Digest, TreeDigest};
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::tree::{Entry, EntryKind, Tree};

impl Store {
    /// Store a tree (as the blob of its encoding).
    pub fn put_tree(&self, tree: &Tree) -> Result<TreeDigest> {
        tree.validate()
            .map_err(|reason| StoreError::MalformedTree {
                digest: "(new)".into(),
                reason,
            })?;
        let _lock = self.lock_shared()?;
        Ok(TreeDigest(self.put_bytes_inner(&tree.encode())?.0))
    }

    pub(crate) fn put_tree_inner(&self, tree: &Tree) -> Result<(TreeDigest, bool)> {
        let (d, new) = self.put_bytes_inner(&tree.encode())?;
        Ok((TreeDigest(d), new))
    }

    /// Read and decode a tree (verified against its digest).
    pub fn get_tree(&self, d: &TreeDigest) -> Result<Tree> {
        if *d == TreeDigest::empty() {
            return Ok(Tree::default());
        }
        Tree::decode(&self.read_object(&d.0)?).map_err(|e| match e {
            StoreError::MalformedTree { reason, .. } => StoreError::MalformedTree {
                digest: d.to_hex(),
                reason,
            },
            e => e,
        })
    }

    /// The empty tree, stored.
    pub fn empty_tree(&self) -> Result<TreeDigest> {
        self.put_tree(&Tree::default())
    }

    /// Trees of this store whose digest starts with `prefix` (at least two
    /// hex digits; lowercase), at most `limit` of them, in order.
    pub fn trees_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<TreeDigest>> {
        let prefix = prefix.to_ascii_lowercase();
        if prefix.len() < 2 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Vec::new());
        }
        let dir = self.objects_dir().join(&prefix[..2]);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            // objects only, not their mode variants (`….555`)
            .filter(|n| !n.contains('.') && n.starts_with(&prefix[2..]))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            if out.len() >= limit {
                break;
            }
            let Ok(d) = Digest::from_hex(&format!("{}{n}", &prefix[..2])) else {
                continue;
            };
            let t = TreeDigest(d);
            if self.get_tree(&t).is_ok() {
                out.push(t);
            }
        }
        Ok(out)
    }

    pub fn has_tree(&self, d: &TreeDigest) -> bool {
        self.has_object(&d.0)
    }

    /// Every entry below `tree`, depth first in name order, with its path
    /// (names joined by `/`, relative to the tree's root). Iterative: a tree
    /// of any depth walks in constant stack.
    pub fn walk(&self, tree: &TreeDigest) -> Result<Vec<(Vec<u8>, Entry)>> {
        let mut out = Vec::new();
        // each directory being walked: its entries, the next one, its path
        let mut stack: Vec<(std::vec::IntoIter<Entry>, Vec<u8>)> =
            vec![(self.get_tree(tree)?.entries.into_iter(), Vec::new())];
        while let Some((entries, prefix)) = stack.last_mut() {
            let Some(e) = entries.next() else {
                stack.pop();
                continue;
            };
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.name);
            let sub = if let EntryKind::Dir { digest } = &e.kind {
                Some(*digest)
            } else {
                None
            };
            out.push((path.clone(), e));
            if let Some(sub) = sub {
                stack.push((self.get_tree(&sub)?.entries.into_iter(), path));
            }
        }
        Ok(out)
    }

    /// Every object digest reachable from `tree` (trees and blobs), deduplicated.
    /// Fails on the first missing or corrupt tree.
    pub(crate) fn closure(
        &self,
        tree: &TreeDigest,
        seen: &mut std::collections::HashSet<Digest>,
    ) -> Result<()> {
        let mut stack = vec![*tree];
        while let Some(t) = stack.pop() {
            if !seen.insert(t.0) {
                continue;
            }
            for e in self.get_tree(&t)?.entries {
                match e.kind {
                    EntryKind::File { digest, .. } => {
                        seen.insert(digest.0);
                    }
                    EntryKind::Dir { digest } => stack.push(digest),
                    EntryKind::Symlink { .. } => {}
                }
            }
        }
        Ok(())
    }
}

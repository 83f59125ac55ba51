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

    pub fn has_tree(&self, d: &TreeDigest) -> bool {
        self.has_object(&d.0)
    }

    /// Every entry below `tree`, depth first in name order, with its path
    /// (names joined by `/`, relative to the tree's root).
    pub fn walk(&self, tree: &TreeDigest) -> Result<Vec<(Vec<u8>, Entry)>> {
        let mut out = Vec::new();
        self.walk_into(tree, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    fn walk_into(
        &self,
        tree: &TreeDigest,
        prefix: &mut Vec<u8>,
        out: &mut Vec<(Vec<u8>, Entry)>,
    ) -> Result<()> {
        let t = self.get_tree(tree)?;
        for e in t.entries {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(&e.name);
            let sub = if let EntryKind::Dir { digest } = &e.kind {
                Some(*digest)
            } else {
                None
            };
            out.push((prefix.clone(), e));
            if let Some(sub) = sub {
                self.walk_into(&sub, prefix, out)?;
            }
            prefix.truncate(len);
        }
        Ok(())
    }

    /// Every object digest reachable from `tree` (trees and blobs), deduplicated.
    /// Fails on the first missing or corrupt tree.
    pub(crate) fn closure(
        &self,
        tree: &TreeDigest,
        seen: &mut std::collections::HashSet<Digest>,
    ) -> Result<()> {
        if !seen.insert(tree.0) {
            return Ok(());
        }
        let t = self.get_tree(tree)?;
        for e in t.entries {
            match e.kind {
                EntryKind::File { digest, .. } => {
                    seen.insert(digest.0);
                }
                EntryKind::Dir { digest } => self.closure(&digest, seen)?,
                EntryKind::Symlink { .. } => {}
            }
        }
        Ok(())
    }
}

//! Paths of trees in the store, looked up without reading whole trees, and
//! a union of trees that resolves paths the way the loader would see them
//! in one root: through symlinks, in any component, the later tree winning
//! where two have a path. A lookup decodes only the directories along the
//! path (memoised, shared by every check of a run): a 20,000-file toolchain
//! costs a handful of tree reads per library, not a walk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cas_store::{BlobDigest, EntryKind, Store, Tree, TreeDigest};

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { digest: BlobDigest, size: u64 },
    Dir(TreeDigest),
    Symlink(Vec<u8>),
}

/// Decoded trees, read once per run.
#[derive(Default)]
pub struct Indexes {
    trees: Mutex<HashMap<TreeDigest, Arc<Tree>>>,
}

impl Indexes {
    fn tree(&self, store: &Store, d: &TreeDigest) -> Option<Arc<Tree>> {
        if let Some(t) = self.lock().get(d) {
            return Some(t.clone());
        }
        let t = Arc::new(store.get_tree(d).ok()?);
        self.lock().insert(*d, t.clone());
        Some(t)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TreeDigest, Arc<Tree>>> {
        self.trees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What `path` (relative, `/`-separated, symlinks not followed) is in `root`.
    pub fn node(&self, store: &Store, root: &TreeDigest, path: &[u8]) -> Option<Node> {
        let mut cur = *root;
        let comps = components(path);
        for (i, c) in comps.iter().enumerate() {
            let tree = self.tree(store, &cur)?;
            let e = tree.get(c)?;
            let last = i + 1 == comps.len();
            match &e.kind {
                EntryKind::Dir { digest } if !last => cur = *digest,
                EntryKind::Dir { digest } => return Some(Node::Dir(*digest)),
                _ if !last => return None,
                EntryKind::File { digest, size } => {
                    return Some(Node::File {
                        digest: *digest,
                        size: *size,
                    })
                }
                EntryKind::Symlink { target } => return Some(Node::Symlink(target.clone())),
            }
        }
        Some(Node::Dir(cur))
    }
}

/// Trees seen as one root, the later ones over the earlier ones.
pub struct Union<'a> {
    pub store: &'a Store,
    pub indexes: &'a Indexes,
    pub layers: Vec<TreeDigest>,
}

/// Where a path ended up: the layer that holds the file, and its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub layer: usize,
    pub digest: BlobDigest,
}

const MAX_HOPS: usize = 40;

impl Union<'_> {
    fn node(&self, path: &[u8]) -> Option<(usize, Node)> {
        self.layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, l)| self.indexes.node(self.store, l, path).map(|n| (i, n)))
    }

    /// The regular file that the absolute `path` names, following symlinks.
    pub fn resolve_file(&self, path: &str) -> Option<Resolved> {
        let mut pending: Vec<Vec<u8>> = components(path.as_bytes());
        pending.reverse();
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_slice() {
                b"." => continue,
                b".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            let joined = cur.join(&b'/');
            match self.node(&joined)? {
                (_, Node::Dir(_)) => {}
                (layer, Node::File { digest, .. }) => {
                    if pending.is_empty() {
                        return Some(Resolved { layer, digest });
                    }
                    return None;
                }
                (_, Node::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return None;
                    }
                    cur.pop();
                    if target.starts_with(b"/") {
                        cur.clear();
                    }
                    for t in components(&target).into_iter().rev() {
                        pending.push(t);
                    }
                }
            }
        }
        None
    }

    /// The names directly inside directory `dir` (absolute, its path as
    /// written: enough for `/etc/ld.so.conf.d`), in every layer.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let path: Vec<u8> = components(dir.as_bytes()).join(&b'/');
        let mut names = std::collections::BTreeSet::new();
        for l in &self.layers {
            if let Some(Node::Dir(d)) = self.indexes.node(self.store, l, &path) {
                if let Some(t) = self.indexes.tree(self.store, &d) {
                    for e in &t.entries {
                        names.insert(String::from_utf8_lossy(&e.name).into_owned());
                    }
                }
            }
        }
        names.into_iter().collect()
    }
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_through_symlinks_in_any_layer_and_component() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        let (base, libc) = (tmp.path().join("base"), tmp.path().join("libc"));
        std::fs::create_dir_all(base.join("usr/lib")).unwrap();
        symlink("usr/lib", base.join("lib")).unwrap();
        std::fs::create_dir_all(libc.join("usr/lib")).unwrap();
        std::fs::write(libc.join("usr/lib/libc.so.6.real"), "libc").unwrap();
        symlink("../lib/./libc.so.6.real", libc.join("usr/lib/libc.so.6")).unwrap();
        symlink("/usr/lib/loop", libc.join("usr/lib/loop")).unwrap();
        let ingest =
            |p: &std::path::Path| store.ingest(p, cas_store::IngestMode::Copy).unwrap().tree;
        let (b, l) = (ingest(&base), ingest(&libc));
        let indexes = Indexes::default();
        let u = Union {
            store: &store,
            indexes: &indexes,
            layers: vec![b, l],
        };
        assert_eq!(u.resolve_file("/lib/libc.so.6").map(|r| r.layer), Some(1));
        assert_eq!(
            u.resolve_file("/usr/lib/libc.so.6").unwrap().digest,
            BlobDigest(cas_store::Digest::of_bytes(b"libc"))
        );
        assert_eq!(u.resolve_file("/lib/libm.so.6"), None);
        assert_eq!(u.resolve_file("/usr/lib/loop"), None, "a symlink loop ends");
        assert_eq!(
            u.resolve_file("/usr/lib"),
            None,
            "a directory is not a file"
        );
        let only_base = Union {
            store: &store,
            indexes: &indexes,
            layers: vec![b],
        };
        assert_eq!(only_base.resolve_file("/lib/libc.so.6"), None);
        assert_eq!(u.list("/usr/lib"), ["libc.so.6", "libc.so.6.real", "loop"]);
    }
}

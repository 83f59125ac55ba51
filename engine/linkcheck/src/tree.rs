//! Trees of the store indexed by path, and a union of them that resolves
//! paths the way the loader would see them in one root: through symlinks,
//! in any component, the later tree winning where two have a path.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use cas_store::{BlobDigest, EntryKind, Store, TreeDigest};

use crate::LinkCheckError;

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { digest: BlobDigest, size: u64 },
    Dir,
    Symlink(Vec<u8>),
}

/// Every path of one tree (relative, `/`-joined), with what it is.
#[derive(Debug, Default)]
pub struct Index {
    pub paths: BTreeMap<Vec<u8>, Node>,
}

impl Index {
    pub fn read(store: &Store, tree: &TreeDigest) -> Result<Index, LinkCheckError> {
        let mut paths = BTreeMap::new();
        for (p, e) in store.walk(tree)? {
            let node = match e.kind {
                EntryKind::File { digest, size } => Node::File { digest, size },
                EntryKind::Dir { .. } => Node::Dir,
                EntryKind::Symlink { target } => Node::Symlink(target),
            };
            paths.insert(p, node);
        }
        Ok(Index { paths })
    }
}

/// Indexes read once per tree, shared by every check of a run.
#[derive(Default)]
pub struct Indexes {
    cache: Mutex<HashMap<TreeDigest, Arc<Index>>>,
}

impl Indexes {
    pub fn get(&self, store: &Store, tree: &TreeDigest) -> Result<Arc<Index>, LinkCheckError> {
        if let Some(i) = self.lock().get(tree) {
            return Ok(i.clone());
        }
        let i = Arc::new(Index::read(store, tree)?);
        self.lock().insert(*tree, i.clone());
        Ok(i)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TreeDigest, Arc<Index>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Trees seen as one root, the later ones over the earlier ones.
pub struct Union<'a> {
    pub layers: Vec<&'a Index>,
}

/// Where a path ended up: the layer that holds the file, and its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub layer: usize,
    pub digest: BlobDigest,
}

const MAX_HOPS: usize = 40;

impl Union<'_> {
    fn node(&self, path: &[u8]) -> Option<(usize, &Node)> {
        self.layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, l)| l.paths.get(path).map(|n| (i, n)))
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
                (_, Node::Dir) => {}
                (layer, Node::File { digest, .. }) => {
                    if pending.is_empty() {
                        return Some(Resolved {
                            layer,
                            digest: *digest,
                        });
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
                    for t in components(target).into_iter().rev() {
                        pending.push(t);
                    }
                }
            }
        }
        None
    }

    /// The names directly inside directory `dir` (absolute, its path as
    /// written: enough for `/etc/ld.so.conf.d`).
    pub fn list(&self, dir: &str) -> Vec<String> {
        let prefix: Vec<u8> = components(dir.as_bytes()).join(&b'/');
        let mut names = std::collections::BTreeSet::new();
        for l in &self.layers {
            let start = [prefix.as_slice(), b"/"].concat();
            for (p, _) in l.paths.range(start.clone()..) {
                let Some(rest) = p.strip_prefix(start.as_slice()) else {
                    break;
                };
                if !rest.contains(&b'/') {
                    names.insert(String::from_utf8_lossy(rest).into_owned());
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

    fn index(entries: &[(&str, Node)]) -> Index {
        Index {
            paths: entries
                .iter()
                .map(|(p, n)| (p.as_bytes().to_vec(), n.clone()))
                .collect(),
        }
    }

    #[test]
    fn paths_resolve_through_symlinks_in_any_layer_and_component() {
        let d = BlobDigest(cas_store::Digest::of_bytes(b"libc"));
        let base = index(&[
            ("lib", Node::Symlink(b"usr/lib".to_vec())),
            ("usr", Node::Dir),
            ("usr/lib", Node::Dir),
        ]);
        let libc = index(&[
            ("usr", Node::Dir),
            ("usr/lib", Node::Dir),
            ("usr/lib/libc.so.6.real", Node::File { digest: d, size: 1 }),
            (
                "usr/lib/libc.so.6",
                Node::Symlink(b"../lib/./libc.so.6.real".to_vec()),
            ),
            ("usr/lib/loop", Node::Symlink(b"/usr/lib/loop".to_vec())),
        ]);
        let u = Union {
            layers: vec![&base, &libc],
        };
        assert_eq!(u.resolve_file("/lib/libc.so.6").map(|r| r.layer), Some(1));
        assert_eq!(u.resolve_file("/usr/lib/libc.so.6").unwrap().digest, d);
        assert_eq!(u.resolve_file("/lib/libm.so.6"), None);
        assert_eq!(u.resolve_file("/usr/lib/loop"), None, "a symlink loop ends");
        assert_eq!(
            u.resolve_file("/usr/lib"),
            None,
            "a directory is not a file"
        );
        let only_base = Union {
            layers: vec![&base],
        };
        assert_eq!(only_base.resolve_file("/lib/libc.so.6"), None);
        assert_eq!(u.list("/usr/lib"), ["libc.so.6", "libc.so.6.real", "loop"]);
    }
}

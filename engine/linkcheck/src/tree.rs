//! Paths of trees in the store, looked up without reading whole trees, and
//! a union of trees that resolves paths the way the loader would see them
//! in one root: through symlinks, in any component, the later tree winning
//! where two have a path. A lookup decodes only the directories along the
//! path (memoised, shared by every check of a run): a 20,000-file toolchain
//! costs a handful of tree reads per library, not a walk.

use std::sync::{Arc, RwLock};

// In-memory lookups only (never a stable hash): digests are already uniform.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use cas_store::{BlobDigest, EntryKind, Store, Tree, TreeDigest};

/// One path of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File { digest: BlobDigest, size: u64 },
    Dir(TreeDigest),
    Symlink(Vec<u8>),
}

/// Decoded trees, read once per run. Read far more often than written
/// (every step's key resolves its `/bin/sh` through each layer it stages):
/// a lookup runs under a shared lock over the trees read so far, and only a
/// tree not read yet takes the exclusive one (then the lookup runs again).
/// A tree that cannot be read is not remembered: it has no paths for that
/// lookup, and the next lookup reads it again (a lazily pulled output is
/// read before it is downloaded, and after).
#[derive(Default)]
pub struct Indexes {
    trees: RwLock<HashMap<TreeDigest, Arc<Tree>>>,
}

/// The trees one lookup sees: those read so far, and those it found it
/// cannot read.
struct Known<'a> {
    read: &'a HashMap<TreeDigest, Arc<Tree>>,
    unreadable: &'a HashSet<TreeDigest>,
}

/// A lookup over [`Known`] trees: `Err(ds)` when the trees `ds` must be
/// read first (a union's lookup names every layer it lacks at once).
type Partial<T> = Result<T, Vec<TreeDigest>>;

impl Known<'_> {
    /// Tree `d`, `None` if it cannot be read.
    fn get(&self, d: &TreeDigest) -> Partial<Option<&Arc<Tree>>> {
        match self.read.get(d) {
            Some(t) => Ok(Some(t)),
            None if self.unreadable.contains(d) => Ok(None),
            None => Err(vec![*d]),
        }
    }
}

impl Indexes {
    /// `f` over the known trees; the trees it lacks are read, and `f` runs
    /// again (each run knows more trees, so this ends).
    fn with_known<T>(&self, store: &Store, f: impl Fn(&Known) -> Partial<T>) -> T {
        let mut unreadable = HashSet::default();
        loop {
            let lacking = {
                let read = self
                    .trees
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let known = Known {
                    read: &read,
                    unreadable: &unreadable,
                };
                match f(&known) {
                    Ok(t) => return t,
                    Err(ds) => ds,
                }
            };
            let mut lacking = lacking;
            lacking.sort_unstable_by_key(|d| *d.0.as_bytes());
            lacking.dedup();
            let mut trees = Vec::with_capacity(lacking.len());
            for d in lacking {
                match store.get_tree(&d) {
                    Ok(tree) => trees.push((d, Arc::new(tree))),
                    Err(_) => {
                        unreadable.insert(d);
                    }
                }
            }
            self.trees
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(trees);
        }
    }

    /// Reads every tree of `digests` not read yet, taking the exclusive
    /// lock once (a union's layers, before a lookup that would otherwise
    /// stop at each one it lacks and start again).
    fn read_all(&self, store: &Store, digests: &[TreeDigest]) {
        let lacking: Vec<TreeDigest> = {
            let read = self
                .trees
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            digests
                .iter()
                .filter(|d| !read.contains_key(d))
                .copied()
                .collect()
        };
        if lacking.is_empty() {
            return;
        }
        let trees: Vec<(TreeDigest, Arc<Tree>)> = lacking
            .into_iter()
            .filter_map(|d| Some((d, Arc::new(store.get_tree(&d).ok()?))))
            .collect();
        self.trees
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(trees);
    }

    fn tree(&self, store: &Store, d: &TreeDigest) -> Option<Arc<Tree>> {
        self.with_known(store, |known| Ok(known.get(d)?.cloned()))
    }

    /// What `path` (relative, `/`-separated, symlinks not followed) is in `root`.
    pub fn node(&self, store: &Store, root: &TreeDigest, path: &[u8]) -> Option<Node> {
        let comps = components(path);
        self.with_known(store, |known| node_in(known, root, &comps))
    }
}

/// What the path `comps` is in `root` (symlinks not followed), through the
/// known trees.
fn node_in(known: &Known, root: &TreeDigest, comps: &[&[u8]]) -> Partial<Option<Node>> {
    let mut cur = *root;
    for (i, c) in comps.iter().enumerate() {
        let Some(tree) = known.get(&cur)? else {
            return Ok(None);
        };
        let Some(e) = tree.get(c) else {
            return Ok(None);
        };
        let last = i + 1 == comps.len();
        match &e.kind {
            EntryKind::Dir { digest } if !last => cur = *digest,
            EntryKind::Dir { digest } => return Ok(Some(Node::Dir(*digest))),
            _ if !last => return Ok(None),
            EntryKind::File { digest, size } => {
                return Ok(Some(Node::File {
                    digest: *digest,
                    size: *size,
                }))
            }
            EntryKind::Symlink { target } => return Ok(Some(Node::Symlink(target.clone()))),
        }
    }
    Ok(Some(Node::Dir(cur)))
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
    /// The path `comps` in the last layer that has it.
    /// (Every layer above it that lacks a tree on the way is named, so
    /// that they are read together.)
    fn node_in(&self, known: &Known, comps: &[&[u8]]) -> Partial<Option<(usize, Node)>> {
        let mut lacking = Vec::new();
        for (i, l) in self.layers.iter().enumerate().rev() {
            match node_in(known, l, comps) {
                Ok(Some(n)) if lacking.is_empty() => return Ok(Some((i, n))),
                Ok(Some(_)) => break,
                Ok(None) => {}
                Err(ds) => lacking.extend(ds),
            }
        }
        if lacking.is_empty() {
            Ok(None)
        } else {
            Err(lacking)
        }
    }

    /// The regular file that the absolute `path` names, following symlinks.
    pub fn resolve_file(&self, path: &str) -> Option<Resolved> {
        // every layer's root is looked at: read those lacking together
        self.indexes.read_all(self.store, &self.layers);
        self.indexes
            .with_known(self.store, |known| self.resolve_in(known, path))
    }

    fn resolve_in(&self, known: &Known, path: &str) -> Partial<Option<Resolved>> {
        let mut pending: Vec<Vec<u8>> = components(path.as_bytes())
            .into_iter()
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
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
            let comps: Vec<&[u8]> = cur.iter().map(Vec::as_slice).collect();
            match self.node_in(known, &comps)? {
                None => return Ok(None),
                Some((_, Node::Dir(_))) => {}
                Some((layer, Node::File { digest, .. })) => {
                    if pending.is_empty() {
                        return Ok(Some(Resolved { layer, digest }));
                    }
                    return Ok(None);
                }
                Some((_, Node::Symlink(target))) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Ok(None);
                    }
                    cur.pop();
                    if target.starts_with(b"/") {
                        cur.clear();
                    }
                    for t in components(&target).into_iter().rev() {
                        pending.push(t.to_vec());
                    }
                }
            }
        }
        Ok(None)
    }

    /// The names directly inside directory `dir` (absolute, its path as
    /// written: enough for `/etc/ld.so.conf.d`), in every layer.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let comps = components(dir.as_bytes());
        let mut names = std::collections::BTreeSet::new();
        for l in &self.layers {
            let dir = self
                .indexes
                .with_known(self.store, |known| node_in(known, l, &comps));
            if let Some(Node::Dir(d)) = dir {
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

fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
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

    #[test]
    fn a_tree_that_cannot_be_read_yet_is_read_by_a_later_lookup() {
        // a lazily pulled output: its digest is known before its tree is local
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        let (base, bin) = (tmp.path().join("base"), tmp.path().join("bin"));
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(bin.join("bin")).unwrap();
        std::fs::write(bin.join("bin/sh"), "sh").unwrap();
        let ingest =
            |p: &std::path::Path| store.ingest(p, cas_store::IngestMode::Copy).unwrap().tree;
        let (b, l) = (ingest(&base), ingest(&bin));
        let root = store.object_path(&l.0);
        let away = tmp.path().join("away");
        std::fs::rename(&root, &away).unwrap();
        let indexes = Indexes::default();
        let u = Union {
            store: &store,
            indexes: &indexes,
            layers: vec![b, l],
        };
        assert_eq!(u.resolve_file("/bin/sh"), None, "not local yet: no paths");
        assert_eq!(indexes.node(&store, &l, b"bin"), None);
        std::fs::rename(&away, &root).unwrap();
        assert_eq!(
            u.resolve_file("/bin/sh").map(|r| r.layer),
            Some(1),
            "read again once it is there"
        );
        assert!(matches!(
            indexes.node(&store, &l, b"bin"),
            Some(Node::Dir(_))
        ));
    }
}

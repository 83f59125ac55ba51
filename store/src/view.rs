//! Views: merging ordered lists of trees (tree objects only, no file data), and
//! materialised read-only views cached under `views/<hex>`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::digest::TreeDigest;
use crate::error::{IoContext, Result, StoreError};
use crate::lock::{self, StoreLock};
use crate::materialize::Method;
use crate::store::Store;
use crate::tree::{Entry, EntryKind, Tree};

/// A materialised view in use. While it lives, gc keeps it and its objects.
#[derive(Debug)]
pub struct View {
    path: PathBuf,
    tree: TreeDigest,
    method: Option<Method>,
    _lock: StoreLock,
}

impl View {
    /// The read-only directory holding the view.
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn tree(&self) -> &TreeDigest {
        &self.tree
    }
    /// How it was materialised, when this call built it (`None`: reused).
    pub fn built_with(&self) -> Option<Method> {
        self.method
    }
}

fn describe(e: &Entry) -> String {
    match &e.kind {
        EntryKind::File { digest, size } => {
            format!("file {digest} ({size} bytes, mode {:04o})", e.mode)
        }
        EntryKind::Dir { .. } => "a directory".to_string(),
        EntryKind::Symlink { target } => {
            format!("symlink to {:?}", String::from_utf8_lossy(target))
        }
    }
}

/// Remove a file or a directory tree, even where a build or a view left
/// directories read-only (they are made writable again first). Symlinks are
/// removed, never followed; a missing path is fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    fn chmod_dirs(p: &Path) {
        if let Ok(m) = fs::symlink_metadata(p) {
            if m.is_dir() {
                let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
                if let Ok(rd) = fs::read_dir(p) {
                    for e in rd.flatten() {
                        chmod_dirs(&e.path());
                    }
                }
            }
        }
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("stat", path),
        Ok(m) if !m.is_dir() => return fs::remove_file(path).ctx("remove", path),
        Ok(_) => {}
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    chmod_dirs(path);
    fs::remove_dir_all(path).ctx("remove", path)
}

/// The result of [`Store::merge_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub tree: TreeDigest,
    /// Every path where a later contributor replaced an earlier one.
    pub overwrites: Vec<Overwrite>,
}

/// One replacement allowed by a merge's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwrite {
    /// The path, relative to the root (no leading `/`).
    pub path: String,
    /// The label of the contributor whose entry was replaced.
    pub earlier: String,
    /// The label of the contributor whose entry won.
    pub later: String,
}

struct MergeCx<'a> {
    may_overwrite: &'a dyn Fn(usize, &str) -> bool,
    write: bool,
    overwrites: &'a mut Vec<Overwrite>,
    conflicts: Vec<Conflict>,
}

/// Two contributors that put different things at one path, and neither may
/// replace the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The path, relative to the root (no leading `/`).
    pub path: String,
    /// The label of the contributor whose entry is there.
    pub first: String,
    /// The label of the later contributor whose entry conflicts with it.
    pub second: String,
    /// What differs: content, mode only, symlink target, or type.
    pub detail: String,
    /// Whether allowing the later contributor to overwrite (its
    /// `overlap-whitelist`) would resolve it; a non-empty directory can
    /// never be replaced by a file or a symlink.
    pub replaceable: bool,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at {}: {} and {} both provide it, with {}",
            self.path, self.first, self.second, self.detail
        )
    }
}

/// What differs between two non-identical entries at one path.
fn difference(a: &Entry, b: &Entry) -> String {
    match (&a.kind, &b.kind) {
        (EntryKind::File { digest: x, .. }, EntryKind::File { digest: y, .. }) if x == y => {
            format!(
                "the same content and different modes (mode {:04o} against mode {:04o})",
                a.mode, b.mode
            )
        }
        (EntryKind::File { .. }, EntryKind::File { .. }) => {
            format!(
                "different content ({} against {})",
                describe(a),
                describe(b)
            )
        }
        (EntryKind::Symlink { .. }, EntryKind::Symlink { .. }) => {
            format!(
                "different symlink targets ({} against {})",
                describe(a),
                describe(b)
            )
        }
        _ => format!("different types ({} against {})", describe(a), describe(b)),
    }
}

impl Store {
    /// Merge an ordered list of `(label, tree)` into one tree. The same content at
    /// the same path is fine; different content, or a file against a directory, is
    /// an error naming the path and both labels. Directory modes come from the
    /// first contributor that has the directory.
    pub fn merge(&self, trees: &[(&str, TreeDigest)]) -> Result<TreeDigest> {
        Ok(self.merge_with(trees, &|_, _| false, true)?.tree)
    }

    /// [`Store::merge`] where a later contributor may replace what earlier
    /// ones put at a path: `may_overwrite(i, path)` (contributor index,
    /// path with a leading `/`) says whether contributor `i` may: a file or
    /// symlink replaces a file or symlink, a file or symlink replaces a
    /// directory only when that directory is empty, and a directory never
    /// replaces a file or symlink (BuildStream's rules). Every replacement is
    /// returned, in path order; every conflict is reported at once.
    /// `write: false` gives the checks and the digest without storing the
    /// merged trees (for a sysroot staged as layers: no new file written).
    pub fn merge_with(
        &self,
        trees: &[(&str, TreeDigest)],
        may_overwrite: &dyn Fn(usize, &str) -> bool,
        write: bool,
    ) -> Result<Merged> {
        let _lock = self.lock_shared()?;
        let mut overwrites = Vec::new();
        if trees.is_empty() {
            let tree = if write {
                self.put_tree_inner(&Tree::default())?.0
            } else {
                TreeDigest::empty()
            };
            return Ok(Merged { tree, overwrites });
        }
        let list: Vec<(usize, &str, TreeDigest)> = trees
            .iter()
            .enumerate()
            .map(|(i, (l, t))| (i, *l, *t))
            .collect();
        let mut cx = MergeCx {
            may_overwrite,
            write,
            overwrites: &mut overwrites,
            conflicts: Vec::new(),
        };
        let tree = self.merge_dir("", &list, &mut cx)?;
        // every conflict at once, in path order, so that one round fixes them all
        if !cx.conflicts.is_empty() {
            return Err(StoreError::MergeConflicts {
                conflicts: cx.conflicts,
            });
        }
        Ok(Merged { tree, overwrites })
    }

    fn merge_dir(
        &self,
        path: &str,
        list: &[(usize, &str, TreeDigest)],
        cx: &mut MergeCx<'_>,
    ) -> Result<TreeDigest> {
        if list.iter().all(|(_, _, d)| *d == list[0].2) {
            return Ok(list[0].2);
        }
        type Contributors<'l> = Vec<(usize, &'l str, Entry)>;
        let mut by_name: BTreeMap<Vec<u8>, Contributors<'_>> = BTreeMap::new();
        for (i, label, d) in list {
            for e in self.get_tree(d)?.entries {
                by_name
                    .entry(e.name.clone())
                    .or_default()
                    .push((*i, label, e));
            }
        }
        let mut out = Vec::with_capacity(by_name.len());
        for (name, contributors) in by_name {
            let sub = if path.is_empty() {
                String::from_utf8_lossy(&name).into_owned()
            } else {
                format!("{path}/{}", String::from_utf8_lossy(&name))
            };
            // Contributors in staging order: what is there so far, and what
            // each next one does to it.
            enum Now<'l> {
                Dir(Vec<(usize, &'l str, TreeDigest)>, u32),
                Other(&'l str, Entry),
            }
            let mut now: Option<Now<'_>> = None;
            let at = format!("/{sub}");
            for (i, label, e) in contributors {
                now = Some(match (now.take(), &e.kind) {
                    (None, EntryKind::Dir { digest }) => {
                        Now::Dir(vec![(i, label, *digest)], e.mode)
                    }
                    (None, _) => Now::Other(label, e),
                    (Some(Now::Dir(mut group, mode)), EntryKind::Dir { digest }) => {
                        group.push((i, label, *digest));
                        Now::Dir(group, mode)
                    }
                    (Some(Now::Dir(group, mode)), _) => {
                        // A directory gives way only when it is empty (as in
                        // BuildStream); a non-empty one cannot become a link.
                        let empty = group.iter().all(|(_, _, d)| *d == TreeDigest::empty());
                        if empty && (cx.may_overwrite)(i, &at) {
                            cx.overwrites.push(Overwrite {
                                path: sub.clone(),
                                earlier: group[0].1.to_string(),
                                later: label.to_string(),
                            });
                            Now::Other(label, e)
                        } else {
                            cx.conflicts.push(Conflict {
                                path: sub.clone(),
                                first: group[group.len() - 1].1.to_string(),
                                second: label.to_string(),
                                detail: format!(
                                    "different types (a directory against {})",
                                    describe(&e)
                                ),
                                replaceable: empty,
                            });
                            Now::Dir(group, mode)
                        }
                    }
                    (Some(Now::Other(wl, w)), _) if w == e => Now::Other(wl, w),
                    // a directory never replaces a file or a symlink (as in
                    // BuildStream: `lib -> usr/lib` replaced by a directory
                    // would break a merged-/usr sysroot silently)
                    (Some(Now::Other(wl, w)), EntryKind::Dir { .. }) => {
                        cx.conflicts.push(Conflict {
                            path: sub.clone(),
                            first: wl.to_string(),
                            second: label.to_string(),
                            detail: difference(&w, &e),
                            replaceable: false,
                        });
                        Now::Other(wl, w)
                    }
                    (Some(Now::Other(wl, w)), kind) => {
                        if (cx.may_overwrite)(i, &at) {
                            cx.overwrites.push(Overwrite {
                                path: sub.clone(),
                                earlier: wl.to_string(),
                                later: label.to_string(),
                            });
                            match kind {
                                EntryKind::Dir { digest } => {
                                    Now::Dir(vec![(i, label, *digest)], e.mode)
                                }
                                _ => Now::Other(label, e),
                            }
                        } else {
                            cx.conflicts.push(Conflict {
                                path: sub.clone(),
                                first: wl.to_string(),
                                second: label.to_string(),
                                detail: difference(&w, &e),
                                replaceable: true,
                            });
                            Now::Other(wl, w)
                        }
                    }
                });
            }
            match now {
                Some(Now::Dir(group, mode)) => {
                    let merged = self.merge_dir(&sub, &group, cx)?;
                    out.push(Entry {
                        name,
                        mode,
                        kind: EntryKind::Dir { digest: merged },
                    });
                }
                Some(Now::Other(_, e)) => out.push(e),
                None => {}
            }
        }
        let tree = Tree { entries: out };
        if cx.write {
            Ok(self.put_tree_inner(&tree)?.0)
        } else {
            Ok(TreeDigest(crate::digest::Digest::of_bytes(&tree.encode())))
        }
    }

    /// The materialised, read-only view of `tree` (`views/<hex>`), built once
    /// (reflinks or hardlinks) and reused. Gc keeps it while the `View` lives.
    pub fn view(&self, tree: &TreeDigest) -> Result<View> {
        let _store_lock = self.lock_shared()?;
        let hex = tree.to_hex();
        let views = self.views_dir();
        let view_lock = lock::lock(&views.join(format!("{hex}.lock")), false)?;
        let path = views.join(&hex);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(View {
                path,
                tree: *tree,
                method: None,
                _lock: view_lock,
            });
        }
        let tmp = self.tmp_path("view");
        fs::create_dir(&tmp).ctx("create directory", &tmp)?;
        let built = self.materialize_inner(tree, &tmp, Method::Auto, true);
        let method = match built {
            Ok(m) => m,
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
        };
        match fs::rename(&tmp, &path) {
            Ok(()) => {}
            Err(_) if fs::symlink_metadata(&path).is_ok() => {
                // Someone else built it at the same time: use theirs.
                let _ = remove_tree(&tmp);
                return Ok(View {
                    path,
                    tree: *tree,
                    method: None,
                    _lock: view_lock,
                });
            }
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(e).ctx("rename view into place", &path);
            }
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o555)).ctx("chmod", &path)?;
        crate::blob::set_fixed_time(&path).ctx("set the time of", &path)?;
        Ok(View {
            path,
            tree: *tree,
            method: Some(method),
            _lock: view_lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_without_writing_gives_the_merge_digest_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("s")).unwrap();
        let blob = store.put_bytes(b"x").unwrap();
        let leaf = |name: &str| {
            let inner = store
                .put_tree(&Tree::new(vec![Entry::file(name, 0o644, blob, 1)]).unwrap())
                .unwrap();
            store
                .put_tree(&Tree::new(vec![Entry::dir("usr", 0o755, inner)]).unwrap())
                .unwrap()
        };
        let (a, b) = (leaf("a"), leaf("b"));
        let never = |_: usize, _: &str| false;
        let checked = store
            .merge_with(&[("a", a), ("b", b)], &never, false)
            .unwrap()
            .tree;
        assert!(
            !store.has_object(&checked.0),
            "a merge without writing stored the merged tree"
        );
        let merged = store.merge(&[("a", a), ("b", b)]).unwrap();
        assert_eq!(checked, merged);
        assert!(store.has_object(&merged.0));

        let other = store.put_bytes(b"y").unwrap();
        let clash = store
            .put_tree(
                &Tree::new(vec![Entry::dir(
                    "usr",
                    0o755,
                    store
                        .put_tree(&Tree::new(vec![Entry::file("a", 0o644, other, 1)]).unwrap())
                        .unwrap(),
                )])
                .unwrap(),
            )
            .unwrap();
        let err = store
            .merge_with(&[("a", a), ("clash", clash)], &never, false)
            .unwrap_err();
        assert!(err.to_string().contains("usr/a"), "{err}");

        // Allowed to overwrite: the later entry wins, and the replacement is
        // listed; asked with the contributor's index and an absolute path.
        let asked = std::sync::Mutex::new(Vec::new());
        let allow = |i: usize, p: &str| {
            asked.lock().unwrap().push((i, p.to_owned()));
            true
        };
        let m = store
            .merge_with(&[("a", a), ("clash", clash)], &allow, true)
            .unwrap();
        assert_eq!(m.tree, clash);
        assert_eq!(
            m.overwrites,
            vec![Overwrite {
                path: "usr/a".into(),
                earlier: "a".into(),
                later: "clash".into()
            }]
        );
        assert_eq!(*asked.lock().unwrap(), vec![(1, "/usr/a".to_owned())]);
        // A file never replaces a non-empty directory, whatever is allowed.
        let file_usr = store
            .put_tree(&Tree::new(vec![Entry::file("usr", 0o644, other, 1)]).unwrap())
            .unwrap();
        let err = store
            .merge_with(&[("a", a), ("file", file_usr)], &allow, false)
            .unwrap_err();
        assert!(err.to_string().contains("a directory against"), "{err}");
        match err {
            StoreError::MergeConflicts { conflicts } => assert!(!conflicts[0].replaceable),
            e => panic!("{e}"),
        }
        // A later directory never replaces a file, allowed or not.
        let err = store
            .merge_with(&[("file", file_usr), ("a", a)], &allow, false)
            .unwrap_err();
        assert!(err.to_string().contains("conflict at usr"), "{err}");
        let err = store
            .merge_with(&[("file", file_usr), ("a", a)], &|_, _| false, false)
            .unwrap_err();
        assert!(err.to_string().contains("conflict at usr"), "{err}");
        // An empty directory gives way to a file where allowed.
        let empty_usr = store
            .put_tree(&Tree::new(vec![Entry::dir("usr", 0o755, TreeDigest::empty())]).unwrap())
            .unwrap();
        let m = store
            .merge_with(&[("empty", empty_usr), ("file", file_usr)], &allow, false)
            .unwrap();
        assert_eq!(m.overwrites[0].later, "file");
    }
}

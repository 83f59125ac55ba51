//! What a step's commands see as `/`: the union of its staged dependencies'
//! outputs (spec/sandbox.md, "Sysroot").
//!
//! The trees are always merged first (tree objects only), so conflicts are
//! found and named whatever the staging method. Then, when two or more
//! distinct non-empty outputs are staged and overlay mounts work here, each
//! output's own view (`views/<hex>`, built once per output and shared by
//! every step that stages it) becomes a layer of a read-only overlay, in the
//! merge's order: a step costs the same whatever the size of its sysroot.
//! Otherwise the merged tree is materialised as one view, as before.
//!
//! Every layered sysroot is mounted on the same empty directory
//! (`builds/.sysroot`): the mount exists only in each sandbox's own mount
//! namespace, so concurrent steps never see each other's, and no directory
//! is made and removed per step (new inodes are slow on some file systems).

use std::path::PathBuf;

use cas_store::{Store, StoreError, TreeDigest, View};

use crate::error::{io, BuildError, Result};

/// A read-only sysroot staged for one step; the views stay held against gc
/// while it lives.
pub(crate) struct Sysroot {
    /// The view, or the empty mount point for `layers`.
    pub root: PathBuf,
    /// Topmost first; empty for a single view.
    pub layers: Vec<PathBuf>,
    _views: Vec<View>,
}

/// Stages `trees` (labelled by element, in staging order) as the read-only
/// `/` of `element`'s step.
pub(crate) fn stage(
    store: &Store,
    element: &str,
    trees: &[(String, TreeDigest)],
) -> Result<Sysroot> {
    let empty = store.empty_tree()?;
    let mut distinct: Vec<TreeDigest> = Vec::new();
    for (_, t) in trees {
        if *t != empty && !distinct.contains(t) {
            distinct.push(*t);
        }
    }
    if distinct.len() >= 2 && cas_sandbox::overlay_supported(&store.tmp_dir()) {
        let paths: Vec<PathBuf> = distinct.iter().map(|t| store.view_path(t)).collect();
        if cas_sandbox::overlay_options(&paths).is_ok() {
            // Conflicts are found as for a merged view; nothing is written.
            merge(store, element, trees, false)?;
            let views = distinct
                .iter()
                .map(|t| store.view(t))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let root = crate::builddir::mount_point(store.root());
            std::fs::create_dir_all(&root).map_err(io(
                element,
                "cannot create the sysroot mount point",
                &root,
            ))?;
            return Ok(Sysroot {
                root,
                layers: views.iter().map(|v| v.path().to_path_buf()).collect(),
                _views: views,
            });
        }
    }
    let merged = merge(store, element, trees, true)?;
    let view = store.view(&merged)?;
    Ok(Sysroot {
        root: view.path().to_path_buf(),
        layers: Vec::new(),
        _views: vec![view],
    })
}

/// Merges (`write`: storing the merged trees) or only checks that the trees
/// merge; a conflict is reported for `element`, naming both contributors.
pub(crate) fn merge(
    store: &Store,
    element: &str,
    trees: &[(String, TreeDigest)],
    write: bool,
) -> Result<TreeDigest> {
    let refs: Vec<(&str, TreeDigest)> = trees.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let merged = if write {
        store.merge(&refs)
    } else {
        store.merge_check(&refs)
    };
    match merged {
        Ok(t) => Ok(t),
        Err(e @ StoreError::MergeConflict { .. }) => Err(BuildError::Conflict {
            element: element.to_owned(),
            message: e.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

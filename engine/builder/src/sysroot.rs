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

use cas_format::Element;
use cas_store::{TreeDigest, View};

use crate::error::{io, Result};
use crate::step::Engine;

/// A read-only sysroot staged for one step; the views stay held against gc
/// while it lives.
pub(crate) struct Sysroot {
    /// The view, or the empty mount point for `layers`.
    pub root: PathBuf,
    /// Topmost first; empty for a single view.
    pub layers: Vec<PathBuf>,
    _views: Vec<View>,
}

impl Engine<'_> {
    /// Stages `trees` (labelled by element, in staging order) for `el`.
    pub(crate) fn sysroot(&self, el: &Element, trees: &[(String, TreeDigest)]) -> Result<Sysroot> {
        let empty = self.store.empty_tree()?;
        let mut distinct: Vec<TreeDigest> = Vec::new();
        for (_, t) in trees {
            if *t != empty && !distinct.contains(t) {
                distinct.push(*t);
            }
        }
        if distinct.len() >= 2 && self.layered_sysroots() {
            let paths: Vec<PathBuf> = distinct.iter().map(|t| self.store.view_path(t)).collect();
            if cas_sandbox::overlay_options(&paths).is_ok() {
                // Conflicts are found as for a merged view; nothing is written.
                self.merge_with(el, trees, false)?;
                let views = distinct
                    .iter()
                    .map(|t| self.store.view(t))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let root = crate::builddir::mount_point(self.store.root());
                std::fs::create_dir_all(&root).map_err(io(
                    &el.name,
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
        let merged = self.merge_labelled(el, trees)?;
        let view = self.store.view(&merged)?;
        Ok(Sysroot {
            root: view.path().to_path_buf(),
            layers: Vec::new(),
            _views: vec![view],
        })
    }

    /// Whether sysroots of several outputs are staged as overlays here.
    fn layered_sysroots(&self) -> bool {
        cas_sandbox::overlay_supported(&self.store.tmp_dir())
    }
}

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
//! Overlaps: two staged outputs with different content at one path are an
//! error naming both, unless the element staged later declares the path in
//! its `public: overlap-whitelist` (globs, BuildStream's: `*` stops at `/`,
//! `**` does not); its entry then replaces the earlier one, and every such
//! replacement is listed in the step's log. A sysroot with replacements is
//! always one merged view (overlay layers would need the same order).
//!
//! Every layered sysroot is mounted on the same empty directory
//! (`builds/.sysroot`): the mount exists only in each sandbox's own mount
//! namespace, so concurrent steps never see each other's, and no directory
//! is made and removed per step (new inodes are slow on some file systems).

use std::io::Write;
use std::path::PathBuf;

use cas_store::{Merged, Overwrite, Store, StoreError, TreeDigest, View};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{io, BuildError, Result};

/// One staged output: the element it comes from (for messages), its tree,
/// and the paths (absolute globs) it may overwrite.
#[derive(Debug, Clone)]
pub struct Layer {
    pub label: String,
    pub tree: TreeDigest,
    pub whitelist: Vec<String>,
}

impl Layer {
    pub fn new(label: impl Into<String>, tree: TreeDigest) -> Layer {
        Layer {
            label: label.into(),
            tree,
            whitelist: Vec::new(),
        }
    }
}

/// A read-only sysroot staged for one step; the views stay held against gc
/// while it lives.
pub(crate) struct Sysroot {
    /// The view, or the empty mount point for `layers`.
    pub root: PathBuf,
    /// Topmost first; empty for a single view.
    pub layers: Vec<PathBuf>,
    /// Whitelisted replacements made while merging.
    pub overwrites: Vec<Overwrite>,
    _views: Vec<View>,
}

/// Stages `layers` (in staging order) as the read-only `/` of `element`'s
/// step.
pub(crate) fn stage(store: &Store, element: &str, layers: &[Layer]) -> Result<Sysroot> {
    let empty = store.empty_tree()?;
    let mut distinct: Vec<TreeDigest> = Vec::new();
    for l in layers {
        if l.tree != empty && !distinct.contains(&l.tree) {
            distinct.push(l.tree);
        }
    }
    if distinct.len() >= 2 && cas_sandbox::overlay_supported(&store.tmp_dir()) {
        let paths: Vec<PathBuf> = distinct.iter().map(|t| store.view_path(t)).collect();
        // Conflicts are found as for a merged view; nothing is written.
        let checked = merge(store, element, layers, false)?;
        if checked.overwrites.is_empty() && cas_sandbox::overlay_options(&paths).is_ok() {
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
                overwrites: Vec::new(),
                _views: views,
            });
        }
    }
    let merged = merge(store, element, layers, true)?;
    let view = store.view(&merged.tree)?;
    Ok(Sysroot {
        root: view.path().to_path_buf(),
        layers: Vec::new(),
        overwrites: merged.overwrites,
        _views: vec![view],
    })
}

/// The compiled whitelist of one layer; a bad glob is an error naming it.
fn whitelist(label: &str, patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let norm = format!("/{}", p.trim_start_matches('/').trim_end_matches('/'));
        let glob = GlobBuilder::new(&norm)
            .literal_separator(true)
            .build()
            .map_err(|e| BuildError::SplitRule {
                element: label.to_owned(),
                pattern: p.clone(),
                message: format!("overlap-whitelist: {e}"),
            })?;
        b.add(glob);
    }
    b.build().map_err(|e| BuildError::SplitRule {
        element: label.to_owned(),
        pattern: patterns.join(", "),
        message: format!("overlap-whitelist: {e}"),
    })
}

/// Merges (`write`: storing the merged trees) or only checks that the layers
/// merge; a conflict is reported for `element`, naming both contributors
/// and the path, and saying how to allow it.
pub(crate) fn merge(store: &Store, element: &str, layers: &[Layer], write: bool) -> Result<Merged> {
    let refs: Vec<(&str, TreeDigest)> = layers.iter().map(|l| (l.label.as_str(), l.tree)).collect();
    let sets = layers
        .iter()
        .map(|l| whitelist(&l.label, &l.whitelist))
        .collect::<Result<Vec<_>>>()?;
    let may = |i: usize, path: &str| sets.get(i).is_some_and(|s| s.is_match(path));
    match store.merge_with(&refs, &may, write) {
        Ok(t) => Ok(t),
        Err(StoreError::MergeConflicts { conflicts }) => {
            // each conflict once, with what fixes it
            let mut message = String::new();
            for (n, c) in conflicts.iter().enumerate() {
                if conflicts.len() > 1 {
                    message.push_str(&format!("\n  {}. ", n + 1));
                }
                message.push_str(&format!("conflict {c}"));
                if c.replaceable {
                    message.push_str(&format!(
                        "; if {} may replace it, add `/{}` (or a glob) to its `public: overlap-whitelist`",
                        c.second, c.path
                    ));
                } else if c.detail.starts_with("different types (a directory against") {
                    message.push_str(&format!(
                        "; a non-empty directory cannot be replaced by a file or a symlink (BuildStream refuses it too): make {} install into the directory instead, or keep {} from providing it",
                        c.second, c.first
                    ));
                } else {
                    message.push_str(&format!(
                        "; a file or a symlink is never replaced by a directory (BuildStream refuses it too): make {} install where the link points, or keep {} from providing the link",
                        c.second, c.first
                    ));
                }
            }
            Err(BuildError::Conflict {
                element: element.to_owned(),
                count: conflicts.len(),
                message,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Lists the whitelisted replacements of a merge in a step's log.
pub(crate) fn log_overwrites(
    log: &mut impl Write,
    overwrites: &[Overwrite],
) -> std::io::Result<()> {
    if overwrites.is_empty() {
        return Ok(());
    }
    writeln!(
        log,
        "# overlaps allowed by overlap-whitelist ({}):",
        overwrites.len()
    )?;
    for o in overwrites {
        writeln!(log, "#   /{}: {} replaces {}", o.path, o.later, o.earlier)?;
    }
    Ok(())
}

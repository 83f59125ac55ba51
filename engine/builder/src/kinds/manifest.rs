//! `manifest`: no sandbox; the output is one file (`path`) listing every
//! entry of the merged outputs the element stages (depth first, names in
//! byte order), with
//! modes, sizes and blake3 digests (elements/manifest.yaml says the line
//! format). Its key is its `path`; what it lists is its dependencies'
//! outputs, already in the key.

use std::collections::BTreeMap;
use std::path::Path;

use cas_store::{EntryKind, IngestMode, TreeDigest};

use super::{Caps, KeyCx, Kind, Stage};
use crate::error::{io, Result};

pub struct Manifest;

impl Kind for Manifest {
    fn name(&self) -> &'static str {
        "manifest"
    }
    fn caps(&self) -> Caps {
        Caps {
            merges_staged: true,
            has_output: true,
            ..Caps::default()
        }
    }
    fn kind_file(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "manifest",
            include_str!("../../../../elements/manifest.yaml"),
        ))
    }
    /// `manifest-path` (spec/keys.md).
    fn key_config(&self, cx: &KeyCx<'_>, config: &mut BTreeMap<String, Vec<String>>) {
        config.insert("manifest-path".into(), vec![path(cx.el)]);
    }
    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        let layers = stage.layers();
        let merged = stage.merge(&layers)?;
        let text = list(stage.store(), &merged)?;
        let name = stage.element().name.clone();
        let path = path(stage.element());
        let rel = path.trim_start_matches('/');
        if rel.is_empty()
            || rel
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return Err(stage.fail(format!(
                "manifest `path: {path}` must name a file (no `.`, `..` or empty parts)"
            )));
        }
        let out = stage.scratch().join("manifest-out");
        let file = out.join(rel);
        let parent = file.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent).map_err(io(
            &name,
            "cannot create",
            parent.to_path_buf(),
        ))?;
        std::fs::write(&file, text).map_err(io(&name, "cannot write", file.clone()))?;
        // fixed modes: the output never depends on the caller's umask
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m))
                .map_err(io(&name, "cannot chmod", p.to_path_buf()))
        };
        mode(&file, 0o644)?;
        for dir in file.ancestors().skip(1).take_while(|d| d.starts_with(&out)) {
            mode(dir, 0o755)?;
        }
        Ok(stage.store().ingest(&out, IngestMode::Move)?.tree)
    }
}

/// `path` (`/usr/share/cas/manifest.txt` by default).
fn path(el: &cas_format::Element) -> String {
    el.config.str_or("path", "/usr/share/cas/manifest.txt")
}

/// The lines of the manifest of `tree`.
fn list(store: &cas_store::Store, tree: &TreeDigest) -> Result<String> {
    let mut out = String::new();
    for (p, e) in store.walk(tree)? {
        let p = String::from_utf8_lossy(&p);
        let line = match &e.kind {
            EntryKind::File { digest, size } => {
                format!("f {:04o} {size} {} /{p}\n", e.mode, digest.to_hex())
            }
            EntryKind::Dir { .. } => format!("d {:04o} /{p}\n", e.mode),
            EntryKind::Symlink { target } => {
                format!("l /{p} -> {}\n", String::from_utf8_lossy(target))
            }
        };
        out.push_str(&line);
    }
    Ok(out)
}

//! `script`: the build dependencies laid out per `layout` (each at its
//! destination; empty: all at `/`), `commands` run over that root
//! (read-only or a private writable copy), the output is the directory
//! `output`.

use std::collections::BTreeMap;

use cas_format::{ElementId, LayoutEntry};
use cas_store::{IngestMode, Method, TreeDigest};

use super::Work;
use crate::error::Result;

use crate::split;
use crate::step::Root;
use crate::sysroot::Layer;

/// `output`, `root-read-only` and `layout` (each entry as the staging
/// position of its element and its destination; spec/keys.md).
pub(crate) fn key_config(
    layout: &[LayoutEntry],
    root_read_only: bool,
    output: &str,
    staged: &[(ElementId, TreeDigest)],
    config: &mut BTreeMap<String, Vec<String>>,
) {
    config.insert("output".into(), vec![output.to_owned()]);
    config.insert("root-read-only".into(), vec![root_read_only.to_string()]);
    let pos = |e| staged.iter().position(|(s, _)| *s == e);
    config.insert(
        "layout".into(),
        layout
            .iter()
            .map(|l| match l.element.and_then(pos) {
                Some(i) => format!("{i}\t{}", l.destination),
                None => format!("-\t{}", l.destination),
            })
            .collect(),
    );
}

pub(crate) fn assemble(
    work: Work<'_, '_>,
    layout: &[LayoutEntry],
    root_read_only: bool,
    output: &str,
) -> Result<TreeDigest> {
    let Work {
        engine,
        el,
        inputs,
        staged,
        dir,
        log,
    } = work;
    let root_trees = if layout.is_empty() {
        engine.layers(staged)
    } else {
        let mut placed = Vec::new();
        for l in layout {
            let mut layer = match l.element.and_then(|e| staged.iter().find(|(s, _)| *s == e)) {
                Some((e, t)) => engine.layer(*e, *t),
                None => Layer::new("layout", engine.store.empty_tree()?),
            };
            layer.tree = split::place_under(engine.store, layer.tree, &l.destination)?;
            // The whitelist names paths of the element's own tree: placed too.
            let dest = l.destination.trim_end_matches('/');
            for p in &mut layer.whitelist {
                *p = format!("{dest}/{}", p.trim_start_matches('/'));
            }
            placed.push(layer);
        }
        placed
    };
    engine.stage_sources(el, inputs, &dir.build())?;
    let out_dir = if root_read_only {
        let sysroot = engine.sysroot(el, &root_trees, dir, log)?;
        engine.run_phases(el, inputs, Root::read_only(&sysroot), dir, log)?;
        engine.output_dir(el, inputs, output, None, dir)?
    } else {
        let root_tree = engine.merge_layers(el, &root_trees, dir, log)?;
        engine
            .store
            .materialize(&root_tree, &dir.rootfs(), Method::ReflinkOrCopy)?;
        engine.run_phases(el, inputs, Root::writable(&dir.rootfs()), dir, log)?;
        engine.output_dir(el, inputs, output, Some(&dir.rootfs()), dir)?
    };
    if !out_dir.exists() {
        return Ok(engine.store.empty_tree()?);
    }
    Ok(engine.store.ingest(&out_dir, IngestMode::Move)?.tree)
}

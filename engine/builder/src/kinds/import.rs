//! `import`: no sandbox; the output is the staged sources, the directory
//! `source` of them placed at `target` (both `/` by default).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cas_format::Element;
use cas_store::{IngestMode, TreeDigest};

use super::{Caps, KeyCx, Kind, Stage};
use crate::error::{BuildError, Result};
use crate::split;

pub struct Import;

/// `source` and `target` (`/` by default).
fn settings(el: &Element) -> (String, String) {
    (
        el.config.str_or("source", "/"),
        el.config.str_or("target", "/"),
    )
}

impl Kind for Import {
    fn name(&self) -> &'static str {
        "import"
    }
    fn caps(&self) -> Caps {
        Caps {
            has_output: true,
            ..Caps::default()
        }
    }
    /// `import-source` and `import-target` (spec/keys.md).
    fn key_config(&self, cx: &KeyCx<'_>, config: &mut BTreeMap<String, Vec<String>>) {
        let (source, target) = settings(cx.el);
        config.insert("import-source".into(), vec![source]);
        config.insert("import-target".into(), vec![target]);
    }
    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        let (source, target) = settings(stage.element());
        let build = stage.stage_sources()?;
        let n = stage.element().sources.len();
        let _ = writeln!(stage.log(), "# import: {n} source(s), {source} to {target}");
        let taken = import_dir(stage.element(), &build, &source)?;
        let out = stage.store().ingest(&taken, IngestMode::Move)?.tree;
        split::place_under(stage.store(), out, &target)
    }
}

/// The directory of the staged sources an import takes (`config: source`):
/// inside the staging directory, never through `..` or a symlink.
fn import_dir(el: &Element, staged: &Path, source: &str) -> Result<PathBuf> {
    let bad = |message: String| BuildError::Other {
        element: el.name.clone(),
        message,
    };
    let mut dir = staged.to_path_buf();
    for c in source.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err(bad(format!(
                "import `source: {source}` must not contain `..`"
            )));
        }
        dir.push(c);
        let shown = dir
            .strip_prefix(staged)
            .unwrap_or(&dir)
            .display()
            .to_string();
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "import `source: {source}`: `{shown}` in the staged sources is not a directory"
                )))
            }
            Err(_) => {
                return Err(bad(format!(
                    "import `source: {source}` is not in the staged sources (no `{shown}`)"
                )))
            }
        }
    }
    Ok(dir)
}

//! `import`: no sandbox; the output is the staged sources, the directory
//! `source` of them placed at `target` (both `/` by default).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use cas_format::Element;
use cas_store::{IngestMode, TreeDigest};

use super::Work;
use crate::error::{BuildError, Result};
use crate::split;

/// `import-source` and `import-target` (spec/keys.md).
pub(crate) fn key_config(source: &str, target: &str, config: &mut BTreeMap<String, Vec<String>>) {
    config.insert("import-source".into(), vec![source.to_owned()]);
    config.insert("import-target".into(), vec![target.to_owned()]);
}

pub(crate) fn assemble(work: Work<'_, '_>, source: &str, target: &str) -> Result<TreeDigest> {
    let Work {
        engine,
        el,
        inputs,
        dir,
        log,
        ..
    } = work;
    engine.stage_sources(el, inputs, &dir.build())?;
    let _ = writeln!(
        log,
        "# import: {} source(s), {source} to {target}",
        el.sources.len()
    );
    let taken = import_dir(el, &dir.build(), source)?;
    let out = engine.store.ingest(&taken, IngestMode::Move)?.tree;
    split::place_under(engine.store, out, target)
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

//! `cargo` sources: Rust crates from a registry, vendored the way `cargo
//! vendor` does (spec/sources.md): each crate's file (a gzipped tar with one
//! `{name}-{version}/` directory) extracted under the vendor directory with
//! the hostile-archive rules, a `.cargo-checksum.json` naming its sha256,
//! and `.cargo/config.toml` replacing crates.io with the vendored
//! directory. What is staged depends only on the source's identity.
//!
//! A crate writes only into its own directory: like cargo, any member that
//! is not under `{name}-{version}/` is refused, and so are links (crate
//! files hold files and directories), so that one crate cannot replace the
//! files of another.

use std::path::{Component, Path};

use crate::archive::{extract_crate_file, open_root, Budget};
use crate::cache::SourceCache;
use crate::error::{Result, SourceError};
use crate::spec::{Checksum, Crate, SourceUrl};
use crate::stage::staging_dir;

/// The `.cargo/config.toml` of a vendored source (crates.io and nothing
/// else replaced; `directory` is relative to the directory holding `.cargo`).
pub fn cargo_config(vendor_dir: &str) -> String {
    format!(
        "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n\
         [source.vendored-sources]\ndirectory = \"{vendor_dir}\"\n"
    )
}

/// Stage `crates` (all in `cache`) under `dir/vendor_dir`, and the cargo
/// configuration at `dir/.cargo/config.toml`. What the crates extract
/// counts against `budget` (all of them together).
pub fn stage_cargo(
    url: &SourceUrl,
    vendor_dir: &str,
    crates: &[Crate],
    cache: &dyn SourceCache,
    dir: &Path,
    keep_setuid: bool,
    budget: &mut Budget,
) -> Result<()> {
    let vendor = staging_dir(dir, Some(vendor_dir))?;
    let root = open_root(&vendor)?;
    for c in crates {
        let curl = c.url(url);
        let file = cache
            .lookup(&c.checksum)
            .ok_or_else(|| SourceError::NotFetched {
                kind: "cargo",
                url: curl.written.clone(),
                checksum: c.checksum.clone(),
            })?;
        let top = format!("{}-{}", c.name, c.version);
        let problem = |message: String| SourceError::Archive {
            archive: curl.written.clone(),
            message,
        };
        if !matches!(
            Path::new(&top).components().collect::<Vec<_>>()[..],
            [Component::Normal(_)]
        ) {
            return Err(problem(format!(
                "crate {} {}: `{top}` is not a directory name",
                c.name, c.version
            )));
        }
        let Checksum::Sha256(sha) = &c.checksum else {
            return Err(problem("a crate is pinned by its sha256".into()));
        };
        if root.symlink_metadata(&top).is_ok() {
            return Err(problem(format!(
                "crate {} {} is listed twice (cargo vendors one copy of a version)",
                c.name, c.version
            )));
        }
        // The crate's own directory, made here: its members are extracted
        // inside it, `{top}/` stripped, and nothing else is allowed.
        let io_err = |what: &'static str, e| SourceError::io(what, vendor.join(&top), e);
        root.create_dir(&top)
            .map_err(|e| io_err("cannot create", e))?;
        let crate_dir = root.open_dir(&top).map_err(|e| io_err("cannot open", e))?;
        extract_crate_file(
            &file,
            &curl.written,
            &crate_dir,
            &top,
            &format!("crate {} {}", c.name, c.version),
            keep_setuid,
            budget,
        )?;
        let json = format!("{{\"package\":\"{sha}\",\"files\":{{}}}}");
        root.write(Path::new(&top).join(".cargo-checksum.json"), json)
            .map_err(|e| {
                SourceError::io(
                    "cannot write",
                    vendor.join(&top).join(".cargo-checksum.json"),
                    e,
                )
            })?;
    }
    let dest = open_root(dir)?;
    dest.create_dir_all(".cargo")
        .map_err(|e| SourceError::io("cannot create", dir.join(".cargo"), e))?;
    dest.write(".cargo/config.toml", cargo_config(vendor_dir))
        .map_err(|e| SourceError::io("cannot write", dir.join(".cargo/config.toml"), e))?;
    Ok(())
}

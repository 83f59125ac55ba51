//! `cargo` sources: Rust crates from a registry, vendored the way `cargo
//! vendor` does (spec/sources.md): each crate's file (a gzipped tar with one
//! `{name}-{version}/` directory) extracted under the vendor directory with
//! the hostile-archive rules, a `.cargo-checksum.json` naming its sha256,
//! and `.cargo/config.toml` replacing crates.io with the vendored
//! directory. What is staged depends only on the source's identity.

use std::path::Path;

use crate::archive::{extract_tar_file, open_root};
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
/// configuration at `dir/.cargo/config.toml`.
pub fn stage_cargo(
    url: &SourceUrl,
    vendor_dir: &str,
    crates: &[Crate],
    cache: &dyn SourceCache,
    dir: &Path,
    keep_setuid: bool,
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
        if root.symlink_metadata(&top).is_ok() {
            return Err(problem(format!(
                "crate {} {} is listed twice (cargo vendors one copy of a version)",
                c.name, c.version
            )));
        }
        extract_tar_file(&file, &curl.written, &root, Some(""), keep_setuid)?;
        if !root.symlink_metadata(&top).is_ok_and(|m| m.is_dir()) {
            return Err(problem(format!("the crate file has no `{top}/` directory")));
        }
        let Checksum::Sha256(sha) = &c.checksum else {
            return Err(problem("a crate is pinned by its sha256".into()));
        };
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

//! Incremental builds of elements with an open workspace (spec/cli.md,
//! "Workspaces"). Such an element keeps one build directory between builds,
//! `STORE/workspaces/<16 hex>/build` (blake3 of the project root and the
//! element name): before each build the workspace is copied over it, only
//! the files that changed (size, mtime or type), with the workspace's
//! mtimes, and the files removed from the workspace since the last build are
//! removed (the build's own files stay). So `make` recompiles what changed.
//! `configure-commands` run only when the directory was not prepared by a
//! successful build with the same everything-but-sources (commands,
//! environment, sandbox, dependencies' outputs): any other change starts
//! from an empty directory.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::keys::KeyInputs;

/// The note marking a result built from a workspace (its directory).
pub const WORKSPACE_NOTE: &str = "workspace";

/// The phase skipped by an incremental build.
pub const CONFIGURE_PHASE: &str = "configure-commands";

/// Where an element's workspace build state lives in the store.
pub fn state_dir(store_root: &Path, project_root: &Path, element: &str) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(project_root.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    h.update(element.as_bytes());
    let hex = h.finalize().to_hex();
    store_root.join("workspaces").join(&hex[..16])
}

/// The persistent build directory in a state directory.
pub fn build_dir(state: &Path) -> PathBuf {
    state.join("build")
}

/// What a prepared build directory was prepared for: the key of the inputs
/// without their sources, hex.
pub(crate) fn preparation(inputs: &KeyInputs) -> String {
    let mut i = inputs.clone();
    i.sources.clear();
    i.key().to_hex()
}

/// Whether the directory was prepared for these inputs (configure may be skipped).
pub(crate) fn incremental(state: &Path, inputs: &KeyInputs) -> bool {
    fs::read_to_string(state.join("prepared")).is_ok_and(|p| p.trim() == preparation(inputs))
}

/// After a successful build: the directory is prepared for these inputs.
pub(crate) fn mark_prepared(state: &Path, inputs: &KeyInputs) -> io::Result<()> {
    fs::write(state.join("prepared"), preparation(inputs) + "\n")
}

/// Make the build directory ready: emptied unless [`incremental`], then the
/// workspace copied over it. Returns how many files were copied.
pub(crate) fn prepare(state: &Path, workspace: &Path, inputs: &KeyInputs) -> io::Result<usize> {
    let build = build_dir(state);
    if !incremental(state, inputs) {
        if build.exists() {
            crate::builddir::remove_all(&build)?;
        }
        let _ = fs::remove_file(state.join("sources"));
        let _ = fs::remove_file(state.join("prepared"));
    }
    fs::create_dir_all(&build)?;
    sync(workspace, &build, &state.join("sources"))
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> =
        fs::read_dir(root.join(rel))?.collect::<io::Result<_>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let r = rel.join(e.file_name());
        let meta = fs::symlink_metadata(e.path())?;
        let is_dir = meta.is_dir();
        out.push((r.clone(), meta));
        if is_dir {
            walk(root, &r, out)?;
        }
    }
    Ok(())
}

/// Copy what changed from `from` to `to`; remove from `to` what the last
/// sync copied and `from` no longer has (listed in `list`).
fn sync(from: &Path, to: &Path, list: &Path) -> io::Result<usize> {
    let mut entries = Vec::new();
    walk(from, Path::new(""), &mut entries)?;
    let mut copied = 0;
    let mut now: BTreeSet<String> = BTreeSet::new();
    for (rel, meta) in &entries {
        now.insert(rel.to_string_lossy().into_owned());
        let src = from.join(rel);
        let dst = to.join(rel);
        let old = fs::symlink_metadata(&dst).ok();
        let ft = meta.file_type();
        if ft.is_dir() {
            match &old {
                Some(o) if o.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&dst)?;
                    fs::create_dir(&dst)?;
                }
                None => fs::create_dir(&dst)?,
            }
            fs::set_permissions(
                &dst,
                fs::Permissions::from_mode(meta.mode() & 0o7777 | 0o700),
            )?;
            continue;
        }
        let same = old.as_ref().is_some_and(|o| {
            o.file_type() == ft
                && o.len() == meta.len()
                && o.mtime() == meta.mtime()
                && o.mtime_nsec() == meta.mtime_nsec()
                && (ft.is_symlink() || o.mode() & 0o7777 == meta.mode() & 0o7777)
        });
        if same {
            continue;
        }
        if let Some(o) = &old {
            if o.is_dir() {
                crate::builddir::remove_all(&dst)?;
            } else {
                fs::remove_file(&dst)?;
            }
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else {
            fs::copy(&src, &dst)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            let f = fs::File::options().write(true).open(&dst)?;
            f.set_times(fs::FileTimes::new().set_modified(meta.modified()?))?;
        }
        copied += 1;
    }
    // what the last sync put there and the workspace no longer has
    if let Ok(before) = fs::read_to_string(list) {
        for rel in before.lines().rev() {
            if now.contains(rel) {
                continue;
            }
            let p = to.join(rel);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir(&p);
                }
                Ok(_) => fs::remove_file(&p)?,
                Err(_) => {}
            }
        }
    }
    let mut text = String::new();
    for n in &now {
        text.push_str(n);
        text.push('\n');
    }
    fs::write(list, text)?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_copies_what_changed_keeps_build_products_and_removes_what_went() {
        let tmp = tempfile::tempdir().unwrap();
        let (ws, build, list) = (
            tmp.path().join("ws"),
            tmp.path().join("b"),
            tmp.path().join("l"),
        );
        fs::create_dir_all(ws.join("src")).unwrap();
        fs::create_dir_all(&build).unwrap();
        fs::write(ws.join("src/a.c"), "a").unwrap();
        fs::write(ws.join("src/b.c"), "b").unwrap();
        assert_eq!(sync(&ws, &build, &list).unwrap(), 2);
        fs::write(build.join("src/a.o"), "object").unwrap();
        assert_eq!(sync(&ws, &build, &list).unwrap(), 0, "nothing changed");
        fs::write(ws.join("src/a.c"), "a2").unwrap();
        fs::remove_file(ws.join("src/b.c")).unwrap();
        assert_eq!(sync(&ws, &build, &list).unwrap(), 1);
        assert_eq!(fs::read_to_string(build.join("src/a.c")).unwrap(), "a2");
        assert!(
            !build.join("src/b.c").exists(),
            "removed from the workspace"
        );
        assert!(build.join("src/a.o").exists(), "the build's own file stays");
        let (m1, m2) = (
            fs::metadata(ws.join("src/a.c")).unwrap(),
            fs::metadata(build.join("src/a.c")).unwrap(),
        );
        assert_eq!(m1.modified().unwrap(), m2.modified().unwrap());
    }
}

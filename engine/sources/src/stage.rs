//! Staging a fetched source into a build root (or its `directory:`
//! subdirectory). Only the network-free part: tar, remote and deb files come
//! from the [`SourceCache`], git commits from the mirrors in `git_dir`.

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};

use crate::archive::{extract_tar_file, open_root, Budget, ExtractLimits};
use crate::cache::SourceCache;
use crate::deb::extract_deb;
use crate::error::{Result, SourceError};
use crate::git::{has_commit, mirror_path, stage_git};
use crate::patch::apply_patch;
use crate::spec::{Source, SourceKind, SourceUrl};

/// The file name a remote source is staged as: `filename` if given, else
/// the last path segment of the URL as written (query and fragment removed).
pub fn remote_filename(url: &SourceUrl, filename: Option<&str>) -> Result<String> {
    let invalid = |name: &str, reason: &str| SourceError::InvalidFilename {
        url: url.written.clone(),
        filename: name.to_string(),
        reason: reason.to_string(),
    };
    let name = if let Some(f) = filename {
        f.to_string()
    } else {
        let mut path = url.written.as_str();
        if let Some(alias) = &url.alias {
            path = path
                .strip_prefix(alias.as_str())
                .and_then(|p| p.strip_prefix(':'))
                .unwrap_or(path);
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        path.rsplit('/').next().unwrap_or("").to_string()
    };
    if name.is_empty() {
        return Err(invalid(&name, "the URL has no file name; set `filename:`"));
    }
    if name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(invalid(&name, "a file name is one path component"));
    }
    Ok(name)
}

/// Create (if needed) and return the directory a source stages into:
/// `build_root` or `build_root/directory`. `directory` must be relative
/// without `..`; it is created through a capability rooted at `build_root`.
pub fn staging_dir(build_root: &Path, directory: Option<&str>) -> Result<PathBuf> {
    let Some(directory) = directory else {
        return Ok(build_root.to_path_buf());
    };
    let invalid = |reason: &str| SourceError::InvalidDirectory {
        directory: directory.to_string(),
        reason: reason.to_string(),
    };
    let mut rel = PathBuf::new();
    for c in Path::new(directory).components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("`..` is not allowed")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("must be relative to the build root"))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Ok(build_root.to_path_buf());
    }
    let root = open_root(build_root)?;
    root.create_dir_all(&rel).map_err(|e| {
        SourceError::io("cannot create staging directory", build_root.join(&rel), e)
    })?;
    Ok(build_root.join(rel))
}

/// Stage `source` into `build_root` (an existing directory), after
/// [`crate::fetch_source`] made it available. What its archives may extract
/// is bounded by [`ExtractLimits::from_env`].
pub fn stage_source(
    source: &Source,
    cache: &dyn SourceCache,
    git_dir: &Path,
    build_root: &Path,
) -> Result<()> {
    stage_source_with(
        source,
        cache,
        git_dir,
        build_root,
        ExtractLimits::from_env()?,
    )
}

/// [`stage_source`] with these bounds on what the source's archives (all of
/// them together) may extract (a `git` source's tree is bounded by
/// [`ExtractLimits::from_env`]).
pub fn stage_source_with(
    source: &Source,
    cache: &dyn SourceCache,
    git_dir: &Path,
    build_root: &Path,
    limits: ExtractLimits,
) -> Result<()> {
    let mut budget = Budget::new(limits);
    let dir = staging_dir(build_root, source.directory.as_deref())?;
    let cached = |url: &SourceUrl, checksum: &crate::Checksum| {
        cache
            .lookup(checksum)
            .ok_or_else(|| SourceError::NotFetched {
                kind: source.kind.name(),
                url: url.written.clone(),
                checksum: checksum.clone(),
            })
    };
    match &source.kind {
        SourceKind::Local { path } => stage_local(path, &dir, source.keep_setuid),
        SourceKind::Tar {
            url,
            checksum,
            base_dir,
        } => {
            let file = cached(url, checksum)?;
            extract_tar_file(
                &file,
                &url.written,
                &open_root(&dir)?,
                base_dir.as_deref(),
                source.keep_setuid,
                &mut budget,
            )
        }
        SourceKind::Remote {
            url,
            checksum,
            filename,
            executable,
        } => {
            let file = cached(url, checksum)?;
            let name = remote_filename(url, filename.as_deref())?;
            stage_remote(&file, &name, *executable, &dir)
        }
        SourceKind::Deb {
            url,
            checksum,
            database,
        } => {
            let file = cached(url, checksum)?;
            extract_deb(
                &file,
                &url.written,
                &open_root(&dir)?,
                source.keep_setuid,
                *database,
                &mut budget,
            )
        }
        SourceKind::Patch { path, strip } => apply_patch(path, *strip, &dir),
        SourceKind::Git {
            url,
            commit,
            keep_git,
            ..
        } => {
            let mirror = mirror_path(git_dir, url);
            if !has_commit(&mirror, commit) {
                return Err(SourceError::CommitNotFound {
                    url: url.written.clone(),
                    commit: commit.clone(),
                    offline: false,
                });
            }
            stage_git(&mirror, url, commit, *keep_git, &dir)
        }
        SourceKind::Cargo {
            url,
            vendor_dir,
            crates,
        } => crate::cargo::stage_cargo(
            url,
            vendor_dir,
            crates,
            cache,
            &dir,
            source.keep_setuid,
            &mut budget,
        ),
    }
}

/// Copy a downloaded file into `dir` as `name` (mode 0755 or 0644).
pub fn stage_remote(file: &Path, name: &str, executable: bool, dir: &Path) -> Result<()> {
    let root = open_root(dir)?;
    let target = dir.join(name);
    let mut input =
        std::fs::File::open(file).map_err(|e| SourceError::io("cannot open", file, e))?;
    if let Ok(m) = root.symlink_metadata(name) {
        if m.is_dir() {
            return Err(SourceError::io(
                "cannot stage",
                &target,
                io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
            ));
        }
        root.remove_file(name)
            .map_err(|e| SourceError::io("cannot replace", &target, e))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut out = root
        .open_with(name, &options)
        .map_err(|e| SourceError::io("cannot create", &target, e))?;
    io::copy(&mut input, &mut out).map_err(|e| SourceError::io("cannot write", &target, e))?;
    out.set_permissions(Permissions::from_mode(if executable {
        0o755
    } else {
        0o644
    }))
    .map_err(|e| SourceError::io("cannot set the mode of", &target, e))
}

/// Copy a local file (as its own name) or directory (its content) into
/// `dir`, preserving symlinks and permission bits (setuid/setgid dropped
/// unless `keep_setuid`).
pub fn stage_local(path: &Path, dir: &Path, keep_setuid: bool) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| SourceError::io("cannot read local source", path, e))?;
    let root = open_root(dir)?;
    let drop_bits = if keep_setuid { 0 } else { 0o6000 };
    if meta.is_dir() {
        copy_dir(path, &root, Path::new(""), drop_bits)
    } else {
        let name = path.file_name().ok_or_else(|| SourceError::LocalTree {
            path: path.to_path_buf(),
            message: "no file name".into(),
        })?;
        copy_entry(path, &meta, &root, Path::new(name), drop_bits)
    }
}

fn copy_dir(src: &Path, root: &Dir, rel: &Path, drop_bits: u32) -> Result<()> {
    let entries =
        std::fs::read_dir(src).map_err(|e| SourceError::io("cannot read directory", src, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SourceError::io("cannot read directory", src, e))?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        let from = src.join(&name);
        let meta = std::fs::symlink_metadata(&from)
            .map_err(|e| SourceError::io("cannot read", &from, e))?;
        copy_entry(&from, &meta, root, &rel.join(&name), drop_bits)?;
    }
    Ok(())
}

fn copy_entry(
    from: &Path,
    meta: &std::fs::Metadata,
    root: &Dir,
    rel: &Path,
    drop_bits: u32,
) -> Result<()> {
    let err = |what: &'static str, e: io::Error| SourceError::io(what, from, e);
    let kind = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777 & !drop_bits;
    if kind.is_dir() {
        root.create_dir_all(rel)
            .map_err(|e| err("cannot stage directory", e))?;
        copy_dir(from, root, rel, drop_bits)?;
        root.set_permissions(rel, Permissions::from_mode(mode | 0o700))
            .map_err(|e| err("cannot set the mode of the staged copy of", e))?;
        return Ok(());
    }
    if let Ok(m) = root.symlink_metadata(rel) {
        if m.is_dir() {
            return Err(err(
                "cannot stage",
                io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"),
            ));
        }
        root.remove_file(rel)
            .map_err(|e| err("cannot replace the staged copy of", e))?;
    }
    if kind.is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| err("cannot read symlink", e))?;
        return root
            .symlink_contents(&target, rel)
            .map_err(|e| err("cannot stage symlink", e));
    }
    if !kind.is_file() {
        return Err(SourceError::LocalTree {
            path: from.to_path_buf(),
            message: "only files, directories and symlinks can be staged".into(),
        });
    }
    let mut input = std::fs::File::open(from).map_err(|e| err("cannot open", e))?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut out = root
        .open_with(rel, &options)
        .map_err(|e| err("cannot stage", e))?;
    io::copy(&mut input, &mut out).map_err(|e| err("cannot copy", e))?;
    out.set_permissions(Permissions::from_mode(mode | 0o600))
        .map_err(|e| err("cannot set the mode of the staged copy of", e))?;
    if let Ok(mtime) = meta.modified() {
        let _ = out.into_std().set_modified(mtime);
    }
    Ok(())
}

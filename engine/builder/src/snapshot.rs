//! Local sources are staged from their snapshot, never from the project.
//!
//! A local source's identity is the digest of the tree its directory was
//! ingested as (crate::sources::LocalDigests), and that ingest copied every
//! file into the store once. Staging reads those same blobs back, so what a
//! step builds is byte for byte what its key names, even when the directory
//! (a workspace being edited, say) changes while the build runs. Files are
//! written through a directory handle on the staging directory (cap-std):
//! no path a step or an earlier source left can lead a write or a removal
//! out of it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cap_std::fs::{Dir, OpenOptions, Permissions};
use cas_store::{EntryKind, Store, TreeDigest};

fn os(path: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(path))
}

fn store_err(e: cas_store::StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Open `dir` as the root of a staging operation.
pub fn open(dir: &Path) -> io::Result<Dir> {
    Dir::open_ambient_dir(dir, cap_std::ambient_authority())
}

/// Remove whatever is at `rel` (nothing if nothing is), without following it.
fn clear(root: &Dir, rel: &Path) -> io::Result<()> {
    match root.symlink_metadata(rel) {
        Ok(m) if m.is_dir() => root.remove_dir_all(rel),
        Ok(_) => root.remove_file(rel),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Write blob `digest` of `store` at `rel` with `mode` (replacing a file or
/// link there; a directory in the way is an error, as in source staging).
fn write_file(
    store: &Store,
    root: &Dir,
    rel: &Path,
    digest: &cas_store::BlobDigest,
    mode: u32,
    mtime: Option<std::time::SystemTime>,
) -> io::Result<()> {
    let mut mtime = mtime;
    if let Ok(m) = root.symlink_metadata(rel) {
        if m.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: a directory is in the way", rel.display()),
            ));
        }
        // A file that replaces one an earlier source staged (a local
        // overlay on a tarball: its `parse.y` over the release's) is newer
        // than what it replaces, so make rebuilds what was generated from
        // it; deterministic, as the earlier file's time is.
        if let (Some(t), Ok(old)) = (mtime, m.modified()) {
            let later = old.into_std() + std::time::Duration::from_secs(1);
            if later > t {
                mtime = Some(later);
            }
        }
        root.remove_file(rel)?;
    }
    let mut input = File::open(store.blob_path(digest))?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut out = root.open_with(rel, &options)?;
    io::copy(&mut input, &mut out)?;
    out.set_permissions(Permissions::from_std(std::fs::Permissions::from_mode(
        mode | 0o600,
    )))?;
    if let Some(t) = mtime {
        out.into_std().set_modified(t)?;
    }
    Ok(())
}

/// The time every file staged from a snapshot gets (BuildStream's staging
/// time, 2011-11-11 11:11:11 UTC): one time for all, so that no tool (make
/// and autotools above all) finds one staged file newer than another
/// because of the order it was written in, and nothing of the project's
/// clock reaches a build.
pub fn staged_mtime() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_321_009_871)
}

/// Stage `tree` into `dir` (an existing directory), merging with what is
/// there as source staging does: files and links replace what is at their
/// path, directories are created or kept. Setuid and setgid bits are dropped
/// unless `keep_setuid`.
pub fn stage_tree(
    store: &Store,
    tree: &TreeDigest,
    dir: &Path,
    keep_setuid: bool,
) -> io::Result<()> {
    let root = open(dir)?;
    let drop_bits = if keep_setuid { 0 } else { 0o6000 };
    let entries = store.walk(tree).map_err(store_err)?;
    let mut dirs = Vec::new();
    for (path, entry) in &entries {
        let rel = os(path);
        let mode = entry.mode & 0o7777 & !drop_bits;
        match &entry.kind {
            EntryKind::Dir { .. } => {
                match root.symlink_metadata(rel) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        root.remove_file(rel)?;
                        root.create_dir(rel)?;
                    }
                    Err(_) => root.create_dir(rel)?,
                }
                dirs.push((rel, mode));
            }
            EntryKind::File { digest, .. } => {
                write_file(store, &root, rel, digest, mode, Some(staged_mtime()))?;
            }
            EntryKind::Symlink { target } => {
                if let Ok(m) = root.symlink_metadata(rel) {
                    if m.is_dir() {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{}: a directory is in the way", rel.display()),
                        ));
                    }
                    root.remove_file(rel)?;
                }
                root.symlink_contents(os(target), rel)?;
            }
        }
    }
    // directory modes last (a read-only directory would refuse its entries)
    for (rel, mode) in dirs.iter().rev() {
        root.set_permissions(
            rel,
            Permissions::from_std(std::fs::Permissions::from_mode(mode | 0o700)),
        )?;
    }
    Ok(())
}

/// What the last workspace sync put into a build directory: each path with
/// its content (`f <blob> <mode>`, `l <target hex>`, `d`).
type Synced = BTreeMap<Vec<u8>, String>;

fn describe(entry: &cas_store::Entry) -> String {
    match &entry.kind {
        EntryKind::File { digest, .. } => format!("f {} {:o}", digest.to_hex(), entry.mode),
        EntryKind::Dir { .. } => "d".to_string(),
        EntryKind::Symlink { target } => format!("l {}", hex::encode(target)),
    }
}

fn read_synced(list: &Path) -> Synced {
    let Ok(text) = std::fs::read(list) else {
        return Synced::new();
    };
    let mut out = Synced::new();
    for line in text.split(|&b| b == b'\n') {
        // `<hex of the path>\t<description>`
        let Some(tab) = line.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let (Ok(path), Ok(what)) = (
            hex::decode(&line[..tab]),
            std::str::from_utf8(&line[tab + 1..]),
        ) else {
            continue;
        };
        out.insert(path, what.to_string());
    }
    out
}

/// An incremental workspace build: bring `dir` (the persistent build
/// directory) to the snapshot `tree`, writing only the paths whose content
/// changed since the last sync (recorded in `list`) or that the build
/// changed, and removing what the last sync wrote and the snapshot no
/// longer has; the build's own files stay. A first sync gives every file
/// [`staged_mtime`]; later ones give what they write the time of the sync,
/// so `make` sees it as new. Returns how many were written.
pub fn sync_tree(store: &Store, tree: &TreeDigest, dir: &Path, list: &Path) -> io::Result<usize> {
    let root = open(dir)?;
    let before = read_synced(list);
    let entries = store.walk(tree).map_err(store_err)?;
    let mut now = Synced::new();
    let mut written = 0;
    let mut dirs = Vec::new();
    for (path, entry) in &entries {
        let rel = os(path);
        let what = describe(entry);
        let old = root.symlink_metadata(rel).ok();
        match &entry.kind {
            EntryKind::Dir { .. } => {
                match &old {
                    Some(m) if m.is_dir() => {}
                    Some(_) => {
                        root.remove_file(rel)?;
                        root.create_dir(rel)?;
                    }
                    None => root.create_dir(rel)?,
                }
                dirs.push((rel, entry.mode & 0o7777));
            }
            EntryKind::File { digest, .. } => {
                // the same content as written last time, and the file not
                // touched since: same inode, size and change time (a step
                // can set a file's mtime back, never its ctime; writing or
                // chmod-ing it moves it)
                let unchanged = old.as_ref().is_some_and(|m| {
                    m.is_file()
                        && m.len() == entry_size(entry)
                        && before.get(path) == Some(&format!("{what} {}", stamp(m)))
                });
                let now_what = if unchanged {
                    old.as_ref().map(|m| format!("{what} {}", stamp(m)))
                } else {
                    if old.as_ref().is_some_and(cap_std::fs::Metadata::is_dir) {
                        clear(&root, rel)?;
                    }
                    // a first sync stages like any build; later ones give
                    // what changed the time of the sync, for make
                    let mtime = before.is_empty().then(staged_mtime);
                    write_file(store, &root, rel, digest, entry.mode & 0o7777, mtime)?;
                    written += 1;
                    root.symlink_metadata(rel)
                        .ok()
                        .map(|m| format!("{what} {}", stamp(&m)))
                };
                now.insert(path.clone(), now_what.unwrap_or_else(|| what.clone()));
                continue;
            }
            EntryKind::Symlink { target } => {
                let same = old.as_ref().is_some_and(|m| m.file_type().is_symlink())
                    && root.read_link_contents(rel).ok().as_deref() == Some(os(target));
                if !same {
                    clear(&root, rel)?;
                    root.symlink_contents(os(target), rel)?;
                    written += 1;
                }
            }
        }
        now.insert(path.clone(), what);
    }
    for (rel, mode) in dirs.iter().rev() {
        root.set_permissions(
            rel,
            Permissions::from_std(std::fs::Permissions::from_mode(mode | 0o700)),
        )?;
    }
    // what the last sync wrote and the snapshot no longer has, deepest first
    for path in before.keys().rev() {
        if now.contains_key(path) {
            continue;
        }
        let rel = os(path);
        match root.symlink_metadata(rel) {
            Ok(m) if m.is_dir() => {
                let _ = root.remove_dir(rel);
            }
            Ok(_) => root.remove_file(rel)?,
            Err(_) => {}
        }
    }
    let mut text = Vec::new();
    for (path, what) in &now {
        text.extend_from_slice(hex::encode(path).as_bytes());
        text.push(b'\t');
        text.extend_from_slice(what.as_bytes());
        text.push(b'\n');
    }
    let tmp = list.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, list)?;
    Ok(written)
}

/// What identifies a file as the sync left it: inode, size and change time.
fn stamp(m: &cap_std::fs::Metadata) -> String {
    use cap_std::fs::MetadataExt;
    format!("{}:{}:{}.{}", m.ino(), m.len(), m.ctime(), m.ctime_nsec())
}

fn entry_size(entry: &cas_store::Entry) -> u64 {
    match entry.kind {
        EntryKind::File { size, .. } => size,
        _ => 0,
    }
}

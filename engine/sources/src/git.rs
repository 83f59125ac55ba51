//! Git sources, with the `git` command line: one shared bare mirror per URL
//! under the fetcher's `git_dir` (`<blake3 of the resolved URL>.git`),
//! fetched only when the commit is missing; staged with `git archive`
//! through the hostile-safe tar extractor (so a repository's symlinks obey
//! the same rules as a tarball's), and `.git` only with `keep-git`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::archive::{extract_tar_reader, open_root};
use crate::error::{Result, SourceError};
use crate::fetch::Fetcher;
use crate::spec::SourceUrl;

fn git() -> Command {
    crate::host::git()
}

fn run(mut cmd: Command, url: &str) -> Result<String> {
    let output = cmd.output().map_err(|e| SourceError::Git {
        url: url.to_string(),
        message: format!("cannot run git: {e}"),
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(SourceError::Git {
            url: url.to_string(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

fn check_commit(url: &str, commit: &str) -> Result<()> {
    let ok =
        (commit.len() == 40 || commit.len() == 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(SourceError::Git {
            url: url.to_string(),
            message: format!("`{commit}` is not a full commit id (40 hex digits)"),
        })
    }
}

/// The bare mirror of `url` under `git_dir` (it may not exist yet).
pub fn mirror_path(git_dir: &Path, url: &SourceUrl) -> PathBuf {
    let name = blake3::hash(url.resolved.as_bytes()).to_hex();
    git_dir.join(format!("{name}.git"))
}

/// Whether the mirror exists and has `commit`.
pub fn has_commit(mirror: &Path, commit: &str) -> bool {
    if !mirror.is_dir() || check_commit("", commit).is_err() {
        return false;
    }
    let mut cmd = git();
    cmd.arg("--git-dir")
        .arg(mirror)
        .args(["cat-file", "-e"])
        .arg(format!("{commit}^{{commit}}"));
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

fn init_mirror(git_dir: &Path, mirror: &Path, url: &str) -> Result<()> {
    if mirror.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(git_dir)
        .map_err(|e| SourceError::io("cannot create directory", git_dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".init-")
        .tempdir_in(git_dir)
        .map_err(|e| SourceError::io("cannot create a temporary directory in", git_dir, e))?;
    let mut cmd = git();
    cmd.args(["init", "--bare", "--quiet", "--template="])
        .arg(tmp.path());
    run(cmd, url)?;
    // Stage exactly the committed tree: no export-subst / export-ignore.
    let info = tmp.path().join("info");
    std::fs::create_dir_all(&info)
        .map_err(|e| SourceError::io("cannot create directory", &info, e))?;
    std::fs::write(info.join("attributes"), "* -export-subst -export-ignore\n")
        .map_err(|e| SourceError::io("cannot write", info.join("attributes"), e))?;
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, mirror) {
        let _ = std::fs::remove_dir_all(&tmp_path);
        if !mirror.is_dir() {
            return Err(SourceError::io("cannot create git mirror", mirror, e));
        }
    }
    Ok(())
}

/// An exclusive lock on `MIRROR.lock`, released when dropped.
fn lock_mirror(mirror: &Path) -> Result<std::fs::File> {
    let mut path = mirror.as_os_str().to_owned();
    path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SourceError::io("cannot open lock", PathBuf::from(&path), e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| SourceError::io("cannot lock", PathBuf::from(&path), e.into()))?;
    Ok(file)
}

/// Make sure the mirror of `url` has `commit`, fetching from the mirrors of
/// its alias, then upstream, only if it is missing. Returns the mirror.
pub fn ensure_commit(
    fetcher: &Fetcher,
    url: &SourceUrl,
    commit: &str,
    offline: bool,
) -> Result<PathBuf> {
    check_commit(&url.written, commit)?;
    let mirror = mirror_path(&fetcher.config().git_dir, url);
    if has_commit(&mirror, commit) {
        return Ok(mirror);
    }
    if offline {
        return Err(SourceError::CommitNotFound {
            url: url.written.clone(),
            commit: commit.to_string(),
            offline: true,
        });
    }
    init_mirror(&fetcher.config().git_dir, &mirror, &url.written)?;
    // One fetch per mirror at a time (other threads or processes wait).
    let _lock = lock_mirror(&mirror)?;
    if has_commit(&mirror, commit) {
        return Ok(mirror);
    }
    let mut errors = Vec::new();
    for candidate in fetcher.mirrors().candidates(url) {
        // Branches and tags first (the usual case), then the commit itself
        // (servers that allow fetching unadvertised commits).
        let refspecs: [&[&str]; 2] = [
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            &[commit],
        ];
        for refspec in refspecs {
            let mut cmd = git();
            cmd.arg("--git-dir")
                .arg(&mirror)
                .args(["fetch", "--quiet", "--no-write-fetch-head", "--"])
                .arg(&candidate);
            cmd.args(refspec);
            match run(cmd, &candidate) {
                Ok(_) if has_commit(&mirror, commit) => return Ok(mirror),
                Ok(_) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    if errors.is_empty() {
        return Err(SourceError::CommitNotFound {
            url: url.written.clone(),
            commit: commit.to_string(),
            offline: false,
        });
    }
    Err(SourceError::Git {
        url: url.written.clone(),
        message: format!(
            "commit {commit} could not be fetched:\n  - {}",
            errors.join("\n  - ")
        ),
    })
}

/// Stage `commit` of `mirror` into `dest` (an existing directory).
pub fn stage_git(
    mirror: &Path,
    url: &SourceUrl,
    commit: &str,
    keep_git: bool,
    dest: &Path,
) -> Result<()> {
    check_commit(&url.written, commit)?;
    let mut cmd = git();
    cmd.arg("--git-dir")
        .arg(mirror)
        .args(["archive", "--format=tar"])
        .arg(commit);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| SourceError::Git {
        url: url.written.clone(),
        message: format!("cannot run git: {e}"),
    })?;
    let root = open_root(dest)?;
    let extracted = match child.stdout.take() {
        Some(stdout) => extract_tar_reader(
            &format!("{} at {commit}", url.written),
            stdout,
            &root,
            false,
        )
        .map(|_| ()),
        None => Ok(()),
    };
    let mut stderr = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| SourceError::Git {
        url: url.written.clone(),
        message: format!("git archive: {e}"),
    })?;
    extracted?;
    if !status.success() {
        return Err(SourceError::Git {
            url: url.written.clone(),
            message: format!("git archive {commit}: {}", stderr.trim()),
        });
    }
    if keep_git {
        keep_git_dir(mirror, url, commit, dest)?;
    }
    Ok(())
}

/// `keep-git`: a `.git` for `commit` in `dest`, made by cas itself. A
/// `.git` that a source staged (this one's tree or an earlier source's) is
/// refused: host-side git would read its configuration (`core.fsmonitor`,
/// hooks …) and a symlink would lead it out of the build directory. The
/// repository is made in a fresh directory of its own, moved into place,
/// and only then does git look at the staged files (to fill the index),
/// with the hardened configuration of [`crate::host::git`].
fn keep_git_dir(mirror: &Path, url: &SourceUrl, commit: &str, dest: &Path) -> Result<()> {
    let dot_git = dest.join(".git");
    let refuse = || {
        SourceError::Git {
        url: url.written.clone(),
        message: format!(
            "keep-git: {} is already there (staged by a source); cas only runs git on a .git it made itself: remove it from the source or drop keep-git",
            dot_git.display()
        ),
    }
    };
    if std::fs::symlink_metadata(&dot_git).is_ok() {
        return Err(refuse());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".cas-git-")
        .tempdir_in(dest)
        .map_err(|e| SourceError::io("cannot create a temporary directory in", dest, e))?;
    let repo = tmp.path().join("repo");
    let in_repo = |args: &[&str]| {
        let mut cmd = git();
        cmd.arg("--git-dir").arg(&repo).args(args);
        cmd
    };
    let mut init = git();
    init.args(["init", "--quiet", "--bare", "--template="])
        .arg(&repo);
    run(init, &url.written)?;
    let mut fetch = in_repo(&["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]);
    fetch.arg(mirror).arg(commit);
    run(fetch, &url.written)?;
    run(
        in_repo(&["update-ref", "--no-deref", "HEAD", commit]),
        &url.written,
    )?;
    let mut cfg = in_repo(&["config", "core.bare", "false"]);
    cfg.stdout(Stdio::null());
    run(cfg, &url.written)?;
    // rename() never follows a link at its destination; checked again in
    // case the tree changed since
    if std::fs::symlink_metadata(&dot_git).is_ok() {
        return Err(refuse());
    }
    std::fs::rename(&repo, &dot_git)
        .map_err(|e| SourceError::io("cannot move the git repository to", &dot_git, e))?;
    drop(tmp);
    let mut reset = git();
    reset
        .arg("--git-dir")
        .arg(&dot_git)
        .arg("--work-tree")
        .arg(dest)
        .args(["reset", "--quiet", "--mixed"]);
    run(reset, &url.written)?;
    Ok(())
}

/// The commit that branch (or tag) `branch` of `url` points to now, for
/// `cas source track`.
pub fn resolve_track(url: &str, branch: &str) -> Result<String> {
    if branch.is_empty() || branch.starts_with('-') {
        return Err(SourceError::TrackNotFound {
            url: url.to_string(),
            branch: branch.to_string(),
        });
    }
    let heads = format!("refs/heads/{branch}");
    let tag = format!("refs/tags/{branch}");
    let peeled = format!("{tag}^{{}}");
    let mut cmd = git();
    cmd.args(["ls-remote", "--", url, &heads, &tag, &peeled]);
    let out = run(cmd, url)?;
    let mut refs = std::collections::HashMap::new();
    for line in out.lines() {
        if let Some((sha, name)) = line.split_once('\t') {
            refs.insert(name.trim().to_string(), sha.trim().to_string());
        }
    }
    [heads, peeled, tag]
        .iter()
        .find_map(|r| refs.get(r).cloned())
        .ok_or_else(|| SourceError::TrackNotFound {
            url: url.to_string(),
            branch: branch.to_string(),
        })
}

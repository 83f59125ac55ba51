//! Build directories: where a step's sources, install root and log live
//! while it runs (`STORE/builds/<element>-<key>-<pid>-<n>`, one per attempt). A successful step removes
//! its directory; a failed one keeps it for inspection and `cas shell --failed`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory of one step.
pub struct BuildDir {
    pub root: PathBuf,
}

static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl BuildDir {
    /// A fresh directory for one attempt at `element` at `key`:
    /// `builds/<element>-<key16>-<pid>-<n>`, never shared with another run
    /// or another attempt. The caller holds the key's build lock
    /// ([`cas_store::KeyLock`]), so every other directory of the same element
    /// and key is a leftover of an attempt that failed or was killed: those
    /// are removed first (the last failed one is what `cas shell --failed`
    /// reopens until then).
    pub fn create(store_root: &Path, element: &str, key_hex: &str) -> std::io::Result<BuildDir> {
        let builds = cas_store::Layout::new(store_root).builds();
        let prefix = format!(
            "{}-{}-",
            safe_name(element),
            &key_hex[..16.min(key_hex.len())]
        );
        if let Ok(entries) = std::fs::read_dir(&builds) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let attempt = name.strip_prefix(&prefix).is_some_and(|rest| {
                    rest.split('-').count() == 2
                        && rest
                            .split('-')
                            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                });
                if attempt {
                    // Best effort: the sandbox of a just-killed attempt may
                    // still be writing there for a moment (its keeper is
                    // taking it down); what is left goes with the next attempt.
                    let _ = remove_all(&e.path());
                }
            }
        }
        Self::unique(&builds, &prefix)
    }

    /// A fresh directory whose name starts with `prefix`, without removing
    /// anything (`cas shell`).
    pub fn unique(builds: &Path, prefix: &str) -> std::io::Result<BuildDir> {
        std::fs::create_dir_all(builds)?;
        loop {
            let n = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let root = builds.join(format!("{prefix}{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => {
                    std::fs::create_dir(root.join("build"))?;
                    std::fs::create_dir(root.join("install"))?;
                    return Ok(BuildDir { root });
                }
                // A directory left by an earlier process with the same pid.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn build(&self) -> PathBuf {
        self.root.join("build")
    }
    pub fn install(&self) -> PathBuf {
        self.root.join("install")
    }
    /// A writable copy of the root, for script and compose steps.
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("root")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("build.log")
    }

    pub fn remove(self) {
        let _ = remove_all(&self.root);
    }
}

/// An element name as a file name.
pub fn safe_name(element: &str) -> String {
    element
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The empty directory every layered sysroot is mounted on, each in its
/// own sandbox's mount namespace (crate::sysroot).
pub fn mount_point(store_root: &Path) -> PathBuf {
    cas_store::Layout::new(store_root).sysroot_mount()
}

/// Removes a directory tree even where a build left it read-only (the
/// store's one implementation).
pub fn remove_all(path: &Path) -> std::io::Result<()> {
    cas_store::remove_tree(path).map_err(std::io::Error::other)
}

/// What `cas shell --failed` reopens: the last step that failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct FailedBuild {
    pub element: String,
    pub element_file: PathBuf,
    pub key: String,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl FailedBuild {
    fn record_path(store_root: &Path) -> PathBuf {
        cas_store::Layout::new(store_root).last_failed()
    }

    /// The failure record of a key: `builds/failed/<key hex>.json`, kept
    /// with its build directory until gc removes both.
    fn key_path(store_root: &Path, key_hex: &str) -> PathBuf {
        cas_store::Layout::new(store_root)
            .failures()
            .join(format!("{key_hex}.json"))
    }

    /// Records the failure as the last one and (`of_key`) as its key's.
    pub fn save(&self, store_root: &Path, of_key: bool) {
        if let Ok(json) = serde_json::to_vec_pretty(self) {
            let by_key = Self::key_path(store_root, &self.key);
            if let Some(dir) = by_key.parent().filter(|_| of_key) {
                let _ = std::fs::create_dir_all(dir);
            }
            let paths = [Self::record_path(store_root), by_key];
            for path in &paths[..if of_key { 2 } else { 1 }] {
                let tmp = path.with_extension("json.tmp");
                if std::fs::write(&tmp, &json).is_ok() {
                    let _ = std::fs::rename(tmp, path);
                }
            }
        }
    }

    /// The last failure of any step.
    pub fn load(store_root: &Path) -> Option<FailedBuild> {
        let bytes = std::fs::read(Self::record_path(store_root)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The last failure of the step with this key, while its log is kept.
    pub fn of_key(store_root: &Path, key_hex: &str) -> Option<FailedBuild> {
        let bytes = std::fs::read(Self::key_path(store_root, key_hex)).ok()?;
        let f: FailedBuild = serde_json::from_slice(&bytes).ok()?;
        f.log.is_file().then_some(f)
    }
}

/// A step's log as people read it: without the line the command driver
/// writes to name a failing command (`#cas-failed-…`, for cas), nor the
/// empty line the driver puts before it.
pub fn log_for_people(log: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in log.split_inclusive('\n') {
        if line.starts_with("#cas-failed-") {
            if out
                .last()
                .is_some_and(|l| l.trim_end_matches('\n').is_empty())
            {
                out.pop();
            }
            continue;
        }
        out.push(line);
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_driver_marker_and_its_blank_line_are_not_for_people() {
        let log = "# build-commands: false\nerror here\n\n#cas-failed-ab 2 1\n";
        assert_eq!(
            super::log_for_people(log),
            "# build-commands: false\nerror here\n"
        );
        // a blank line of the command's own, elsewhere, stays
        assert_eq!(super::log_for_people("a\n\nb\n"), "a\n\nb\n");
    }
}

//! Build directories: where a step's sources, install root and log live
//! while it runs (`STORE/builds/<element>-<key>`). A successful step removes
//! its directory; a failed one keeps it for inspection and `cas shell --failed`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory of one step.
pub struct BuildDir {
    pub root: PathBuf,
}

impl BuildDir {
    /// A fresh directory for `element` at `key` (a leftover from an earlier
    /// failed attempt at the same key is removed first).
    pub fn create(store_root: &Path, element: &str, key_hex: &str) -> std::io::Result<BuildDir> {
        let safe: String = element
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let root = store_root
            .join("builds")
            .join(format!("{safe}-{}", &key_hex[..16.min(key_hex.len())]));
        if root.exists() {
            remove_all(&root)?;
        }
        std::fs::create_dir_all(root.join("build"))?;
        std::fs::create_dir_all(root.join("install"))?;
        Ok(BuildDir { root })
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

/// The empty directory every layered sysroot is mounted on, each in its
/// own sandbox's mount namespace (crate::sysroot).
pub fn mount_point(store_root: &Path) -> PathBuf {
    store_root.join("builds").join(".sysroot")
}

/// Removes a directory tree even where a build left it read-only.
pub fn remove_all(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            std::fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
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
        store_root.join("builds").join("last-failed.json")
    }

    pub fn save(&self, store_root: &Path) {
        if let Ok(json) = serde_json::to_vec_pretty(self) {
            let path = Self::record_path(store_root);
            let tmp = path.with_extension("json.tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(tmp, path);
            }
        }
    }

    pub fn load(store_root: &Path) -> Option<FailedBuild> {
        let bytes = std::fs::read(Self::record_path(store_root)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

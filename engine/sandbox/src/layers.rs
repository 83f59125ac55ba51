//! The sysroot as the sandbox will see it, read from the host before the
//! sandbox exists: one directory, or the union of ordered layers (first on
//! top), with overlayfs's rules. The layers are views of dependency outputs
//! that cas has already merged as trees, so they never disagree: a name is
//! either a directory in every layer that has it, or the same file or link.
//! Directory metadata comes from the topmost layer that has the directory,
//! as in overlayfs and in the store's tree merge.

use std::ffi::OsString;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// Ordered read-only directories seen as one tree.
#[derive(Clone, Copy, Debug)]
pub struct Layers<'a> {
    dirs: &'a [PathBuf],
}

impl<'a> Layers<'a> {
    /// `dirs`: topmost first. One directory is a plain sysroot.
    pub fn new(dirs: &'a [PathBuf]) -> Layers<'a> {
        Layers { dirs }
    }

    pub fn dirs(&self) -> &'a [PathBuf] {
        self.dirs
    }

    /// The topmost layer's entry at `rel` (relative, normal): its host path
    /// and metadata, not following a final symbolic link.
    pub fn lstat(&self, rel: &Path) -> std::io::Result<(PathBuf, Metadata)> {
        let mut first_err = None;
        for d in self.dirs {
            let host = d.join(rel);
            match std::fs::symlink_metadata(&host) {
                Ok(m) => return Ok((host, m)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)))
    }

    /// The sorted names in the directory `rel`: every layer where `rel` is a
    /// directory contributes.
    pub fn read_dir(&self, rel: &Path) -> std::io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        let mut found = false;
        for d in self.dirs {
            let host = d.join(rel);
            let rd = match std::fs::read_dir(&host) {
                Ok(rd) => rd,
                Err(e) if self.dirs.len() > 1 && e.kind() == std::io::ErrorKind::NotFound => {
                    continue
                }
                Err(e) if self.dirs.len() > 1 && e.raw_os_error() == Some(libc::ENOTDIR) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            found = true;
            for entry in rd {
                names.push(entry?.file_name());
            }
        }
        if !found {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_lists_every_layer_and_the_top_wins() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        std::fs::create_dir_all(a.join("usr/bin")).unwrap();
        std::fs::create_dir_all(b.join("usr/lib")).unwrap();
        std::fs::create_dir_all(b.join("usr/bin")).unwrap();
        std::fs::write(a.join("usr/bin/x"), "a").unwrap();
        std::fs::write(b.join("usr/bin/x"), "a").unwrap();
        std::fs::write(b.join("usr/bin/y"), "b").unwrap();
        let dirs = vec![a.clone(), b.clone()];
        let l = Layers::new(&dirs);
        assert_eq!(l.read_dir(Path::new("usr")).unwrap(), vec!["bin", "lib"]);
        assert_eq!(l.read_dir(Path::new("usr/bin")).unwrap(), vec!["x", "y"]);
        assert_eq!(
            l.lstat(Path::new("usr/bin/x")).unwrap().0,
            a.join("usr/bin/x")
        );
        assert_eq!(
            l.lstat(Path::new("usr/bin/y")).unwrap().0,
            b.join("usr/bin/y")
        );
        assert!(l.lstat(Path::new("usr/bin/z")).is_err());
        assert!(l.read_dir(Path::new("etc")).is_err());
    }
}

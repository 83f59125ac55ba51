//! What a load read, and so what its result depends on (the no-op memo of
//! `cas build` watches these: crate cas-builder's `memo`).

use std::path::{Path, PathBuf};

use cas_sources::LocalInput;

use super::Loaded;

impl Loaded {
    /// Every path the load of `targets` (as given, relative to `cwd`) and
    /// the keys of its elements depend on: each file it read, the
    /// `project.yaml` and `project.conf` candidates from each target up to
    /// its project (absent ones too: creating one changes the load), the
    /// project's kinds directory, the open-workspaces file, and what each
    /// source reads of the project (local trees, patches). Sorted, each once.
    pub fn inputs(&self, targets: &[PathBuf], cwd: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .files()
            .iter()
            .map(|f| f.path.clone())
            .filter(|p| p.is_absolute())
            .collect();
        for t in targets {
            let abs = cwd.join(t);
            files.push(abs.clone());
            let start = if abs.is_file() {
                abs.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                cwd.to_path_buf()
            };
            'up: for d in start.ancestors() {
                for name in ["project.yaml", "project.conf"] {
                    let candidate = d.join(name);
                    let found = candidate.is_file();
                    files.push(candidate);
                    if found {
                        break 'up;
                    }
                }
            }
        }
        if let Some(k) = &self.project.kinds_dir {
            walk(k, &mut files);
        }
        // opening or closing a workspace changes sources (present or absent)
        files.push(self.project.root.join(crate::workspaces::STATE_FILE));
        for e in &self.elements {
            for s in &e.sources {
                for input in s.kind.local_inputs() {
                    match input {
                        LocalInput::Tree(p) => walk(p, &mut files),
                        LocalInput::File(p) => files.push(p.to_path_buf()),
                    }
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }
}

/// Every file and directory under `path` (itself included), not following
/// symlinks; iterative, so a tree of any depth walks in constant stack.
fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        let dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        if dir {
            if let Ok(rd) = std::fs::read_dir(&p) {
                todo.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out.push(p);
    }
}

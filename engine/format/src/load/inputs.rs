//! What a load read, and so what its result depends on (the no-op memo of
//! `cas build` watches these: crate cas-builder's `memo`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cas_sources::LocalInput;

use super::Loaded;
use crate::diagnostics::FileSeen;

/// A path a load depends on, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub read: Read,
}

/// How a load depends on a path (a path met in several ways is kept once
/// for each: a file of a local tree that the load also read must keep its
/// own identity, a symlink's included).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Read {
    /// The path itself (`lstat`): whether it exists, a directory or a file
    /// of a local tree (stored as it is, a symlink as a symlink).
    Entry,
    /// A file read through its path, symlinks followed (a patch).
    File,
    /// A file the load read whole, with the text it read and the identity
    /// of the file it read it from (`None` if it changed while read).
    Text {
        text: Arc<String>,
        seen: Option<FileSeen>,
    },
}

impl Loaded {
    /// Every path the load of `targets` (as given, relative to `cwd`) and
    /// the keys of its elements depend on: each file it read (with its
    /// text), the `project.yaml` and `project.conf` candidates from each
    /// target up to its project (absent ones too: creating one changes the
    /// load), the project's kinds directory, the open-workspaces file, and
    /// what each source reads of the project (local trees, patches).
    /// Sorted by path; each path once for each way it is read.
    pub fn inputs(&self, targets: &[PathBuf], cwd: &Path) -> Vec<Input> {
        let mut inputs: Vec<Input> = self
            .files()
            .iter()
            .filter(|f| f.path.is_absolute())
            .map(|f| Input {
                path: f.path.clone(),
                read: Read::Text {
                    text: f.text.clone(),
                    seen: f.seen,
                },
            })
            .collect();
        let mut files = Vec::new();
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
        // of these, a file the load read is watched by its text alone (so a
        // target, a project file or a kind file written again with the
        // same bytes still holds); the kinds directory itself stays (a kind
        // file added or removed)
        let read: std::collections::HashSet<&Path> =
            inputs.iter().map(|i| i.path.as_path()).collect();
        files.retain(|p| !read.contains(p.as_path()));
        // a local tree's files by their own identity, read by the load or not
        // (a symlink is stored as a symlink), and each patch's path
        let mut patches = Vec::new();
        for e in &self.elements {
            for s in &e.sources {
                for input in s.kind.local_inputs() {
                    match input {
                        LocalInput::Tree(p) => walk(p, &mut files),
                        // what it leads to, and the path itself (a
                        // symlink led elsewhere is a new link)
                        LocalInput::File(p) => {
                            inputs.push(Input {
                                path: p.to_path_buf(),
                                read: Read::File,
                            });
                            patches.push(p.to_path_buf());
                        }
                    }
                }
            }
        }
        files.extend(patches);
        inputs.extend(files.into_iter().map(|path| Input {
            path,
            read: Read::Entry,
        }));
        inputs.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.read.cmp(&b.read)));
        inputs.dedup_by(|later, kept| {
            later.path == kept.path
                && std::mem::discriminant(&later.read) == std::mem::discriminant(&kept.read)
        });
        inputs
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

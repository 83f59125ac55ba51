//! The files that `(@)` includes: read and parsed once per load (elements
//! are decoded in parallel), with file ids of their own so that every span
//! in them stays locatable after the load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::diagnostics::{Error, FileId, Files, SourceFile, Span};
use crate::read::{Locate, Spanned};
use crate::yaml::Node;

/// Ids of included files start here (element and project files count up from 0).
pub const INCLUDE_BASE: u32 = 1 << 31;

#[derive(Default)]
struct Inner {
    /// path → (id, parsed root)
    parsed: HashMap<PathBuf, (FileId, Option<Node>)>,
    /// in id order from `INCLUDE_BASE`
    files: Vec<SourceFile>,
    /// how many of `files` were handed to the load's `Files`
    handed: usize,
}

/// The included files of one load.
#[derive(Default)]
pub(crate) struct Includes {
    inner: Mutex<Inner>,
}

impl Includes {
    /// The parsed root of `path` (a null node for an empty file), reading
    /// it the first time; errors (unreadable, bad YAML) are reported that
    /// first time only, at `at`.
    pub(crate) fn get(
        &self,
        path: &Path,
        shown: String,
        at: &Spanned,
        loc: &dyn Fn(Span, String, &str) -> Error,
        errors: &mut Vec<Error>,
    ) -> Option<Node> {
        let empty = |id| Node {
            span: Span::new(id, 0, 0),
            value: crate::yaml::Value::Null,
        };
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((id, root)) = inner.parsed.get(path) {
            return Some(root.clone().unwrap_or_else(|| empty(*id)));
        }
        if !path.is_file() {
            // `loc` may look up an included file's source: not under the lock
            drop(inner);
            errors.push(
                loc(
                    at.span,
                    format!("included file `{}` does not exist", at.value),
                    "no such file",
                )
                .with_help(format!(
                    "include paths are relative to the project directory (looked for {})",
                    path.display()
                )),
            );
            return None;
        }
        let id = FileId(INCLUDE_BASE + inner.files.len() as u32);
        let (file, root) = match crate::load::read_source(path, shown) {
            Ok(f) => {
                let root = match crate::yaml::parse(&f, id) {
                    Ok(r) => r,
                    Err(es) => {
                        errors.extend(es);
                        None
                    }
                };
                (f, root)
            }
            Err((f, e)) => {
                errors.push(e);
                (f, None)
            }
        };
        inner.files.push(file);
        inner.parsed.insert(path.to_path_buf(), (id, root.clone()));
        Some(root.unwrap_or_else(|| empty(id)))
    }

    /// The source file of an included file's id.
    pub(crate) fn file(&self, id: FileId) -> Option<SourceFile> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        id.0.checked_sub(INCLUDE_BASE)
            .and_then(|i| inner.files.get(i as usize).cloned())
    }

    /// Hands the included files read since the last call to `files`
    /// (their ids are kept).
    pub(crate) fn hand_to(&self, files: &mut Files) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in &inner.files[inner.handed..] {
            files.add_included(f.clone());
        }
        inner.handed = inner.files.len();
    }
}

/// Locates spans in one file and in the included files.
pub(crate) struct WithIncludes<'a> {
    pub file: &'a SourceFile,
    pub includes: &'a Includes,
}

impl Locate for WithIncludes<'_> {
    fn error(&self, span: Span, message: String, label: &str) -> Error {
        if span.file.0 >= INCLUDE_BASE {
            if let Some(f) = self.includes.file(span.file) {
                return Error::at(&f, span, message, label);
            }
        }
        Error::at(self.file, span, message, label)
    }
}

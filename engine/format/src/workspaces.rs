//! Open workspaces (spec/cli.md, "Workspaces"): elements whose sources are
//! a directory the user edits. The state lives in the project, in
//! `.cas/workspaces.json` beside `project.yaml` (or `project.conf`), so
//! every command of every user of that checkout sees it:
//!
//! ```json
//! {"version": 1, "workspaces": {"hello.yaml": {"path": "/abs/dir"}}}
//! ```
//!
//! A load replaces the sources of each element with an open workspace by
//! one `local` source of its directory ([`apply`]): its identity is the
//! directory's tree digest, so the key changes exactly when a file does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostics::Error;
use crate::element::Element;

/// The state file, relative to the project root.
pub const STATE_FILE: &str = ".cas/workspaces.json";

/// One open workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workspace {
    /// Absolute directory holding the element's sources.
    pub path: PathBuf,
}

/// Every open workspace of a project, by element name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workspaces {
    pub version: u32,
    pub workspaces: BTreeMap<String, Workspace>,
}

impl Workspaces {
    pub fn file(project_root: &Path) -> PathBuf {
        project_root.join(STATE_FILE)
    }

    /// The project's workspaces (none when the file does not exist).
    pub fn read(project_root: &Path) -> Result<Workspaces, Error> {
        let file = Self::file(project_root);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Workspaces::default()),
            Err(e) => return Err(Error::plain(format!("cannot read {}: {e}", file.display()))),
        };
        let w: Workspaces = serde_json::from_str(&text).map_err(|e| {
            Error::plain(format!(
                "{}:{}:{}: not a workspaces file: {e}",
                file.display(),
                e.line(),
                e.column()
            ))
            .with_help("it is written by `cas workspace`; remove it to forget every workspace")
        })?;
        if w.version != 1 {
            return Err(Error::plain(format!(
                "{}: version {} is not known to this cas (1)",
                file.display(),
                w.version
            )));
        }
        Ok(w)
    }

    /// Write the state (atomically: a temporary file renamed over it);
    /// with no workspace left, the file is removed.
    pub fn write(&self, project_root: &Path) -> std::io::Result<()> {
        let file = Self::file(project_root);
        if self.workspaces.is_empty() {
            return match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let dir = file.parent().expect("a file in .cas");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".workspaces.json.tmp-{}", std::process::id()));
        let mut state = self.clone();
        state.version = 1;
        let text = serde_json::to_string_pretty(&state).expect("serialisable") + "\n";
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &file)
    }
}

/// Give each loaded element with an open workspace its directory as its
/// only source. A workspace whose directory is gone is an error that says
/// how to close it.
pub(crate) fn apply(project_root: &Path, elements: &mut [Element]) -> Result<(), Error> {
    let ws = Workspaces::read(project_root)?;
    for el in elements.iter_mut() {
        let Some(w) = ws.workspaces.get(&el.name) else {
            continue;
        };
        if !w.path.is_dir() {
            return Err(Error::plain(format!(
                "the workspace of {} is gone: {} is not a directory",
                el.name,
                w.path.display()
            ))
            .with_help(format!(
                "`cas workspace close {}` builds it from its sources again; `cas workspace reset {}` stages them into the workspace anew",
                el.name, el.name
            )));
        }
        el.sources = vec![cas_sources::Source {
            kind: cas_sources::SourceKind::Local {
                path: w.path.clone(),
            },
            directory: None,
            keep_setuid: false,
        }];
        el.workspace = Some(w.path.clone());
    }
    Ok(())
}

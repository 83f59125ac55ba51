//! Staging a step: fetching its sources, its build directory (a workspace's
//! persistent one), its sources staged from their snapshot.

use std::path::{Path, PathBuf};

use cas_format::Element;
use cas_store::ActionKey;

use crate::builddir::BuildDir;
use crate::error::{io, BuildError, Result};
use crate::keys::KeyInputs;

use super::Engine;

impl Engine<'_> {
    /// Fetches what is missing of `el`'s sources, saying so (cached sources
    /// are never fetched again; a source shared by steps is fetched once).
    pub(crate) fn fetch_sources(&self, el: &Element) -> Result<()> {
        let cache = self.source_cache();
        for s in &el.sources {
            if cas_sources::needs_fetch(s, self.fetcher, &cache) {
                self.reporter.message(&format!(
                    "fetching {} for {}",
                    crate::sources::describe(s),
                    el.name
                ));
            }
            crate::sources::fetch_once(
                s,
                self.fetcher,
                &cache,
                self.offline,
                &cas_sources::NoProgress,
            )
            .map_err(|source| BuildError::Source {
                element: el.name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The workspace state directory of an element built incrementally
    /// (a sandboxed element with an open workspace; crate::workspace).
    pub(crate) fn incremental_state(&self, el: &Element) -> Option<PathBuf> {
        // `cas check` rebuilds from scratch, workspace or not
        let incremental = el.workspace.is_some()
            && crate::kinds::of(el).caps().incremental
            && !self.rebuild.contains(&el.id);
        incremental.then(|| {
            crate::workspace::state_dir(self.store.root(), &self.loaded.project.root, &el.name)
        })
    }

    /// A step's build directory: fresh, or for an incremental workspace
    /// build, one whose `build` is the workspace's persistent directory.
    pub(crate) fn build_dir(&self, el: &Element, key: &ActionKey) -> Result<BuildDir> {
        let dir = BuildDir::create(self.store.root(), &el.name, &key.to_hex()).map_err(io(
            &el.name,
            "cannot create build directory in",
            self.store.layout().builds(),
        ))?;
        self.link_workspace_build(el, &dir)?;
        Ok(dir)
    }

    /// For an incremental workspace build: `dir`'s `build` becomes the
    /// workspace's persistent build directory.
    pub(crate) fn link_workspace_build(&self, el: &Element, dir: &BuildDir) -> Result<()> {
        if let Some(state) = self.incremental_state(el) {
            let persistent = crate::workspace::build_dir(&state);
            std::fs::create_dir_all(&persistent)
                .and_then(|()| std::fs::remove_dir(dir.build()))
                .and_then(|()| std::os::unix::fs::symlink(&persistent, dir.build()))
                .map_err(io(
                    &el.name,
                    "cannot prepare the workspace build directory",
                    persistent,
                ))?;
        }
        Ok(())
    }

    pub(crate) fn stage_sources(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        build: &Path,
    ) -> Result<()> {
        if let (Some(state), Some(ws)) = (self.incremental_state(el), &el.workspace) {
            // only what changed in the workspace's snapshot since the last build
            let tree = self.local_snapshot(el, ws)?;
            let copied =
                crate::workspace::prepare(self.store, &state, &tree, inputs).map_err(io(
                    &el.name,
                    "cannot copy the workspace into",
                    crate::workspace::build_dir(&state),
                ))?;
            self.reporter.message(&format!(
                "{}: workspace {}: {copied} file(s) changed since its last build",
                el.name,
                ws.display()
            ));
            return Ok(());
        }
        let cache = self.source_cache();
        for s in &el.sources {
            let source_err = |source| BuildError::Source {
                element: el.name.clone(),
                source,
            };
            match &s.kind {
                // from the snapshot the key was computed from (crate::snapshot)
                cas_sources::SourceKind::Local { path } => {
                    let tree = self.local_snapshot(el, path)?;
                    let dir = cas_sources::stage::staging_dir(build, s.directory.as_deref())
                        .map_err(source_err)?;
                    crate::snapshot::stage_tree(self.store, &tree, &dir, s.keep_setuid)
                        .map_err(io(&el.name, "cannot stage the local source into", dir))?;
                }
                cas_sources::SourceKind::Patch { path, strip } => {
                    let tree = self.local_snapshot(el, path)?;
                    let tmp = tempfile::Builder::new()
                        .prefix("patch-")
                        .tempdir_in(self.store.tmp_dir())
                        .map_err(io(
                            &el.name,
                            "cannot create a directory in",
                            self.store.tmp_dir(),
                        ))?;
                    crate::snapshot::stage_tree(self.store, &tree, tmp.path(), false).map_err(
                        io(
                            &el.name,
                            "cannot stage the patch into",
                            tmp.path().to_path_buf(),
                        ),
                    )?;
                    let name = path.file_name().unwrap_or_default();
                    let dir = cas_sources::stage::staging_dir(build, s.directory.as_deref())
                        .map_err(source_err)?;
                    cas_sources::patch::apply_patch(&tmp.path().join(name), *strip, &dir).map_err(
                        |e| match e {
                            cas_sources::SourceError::PatchFailed { hunks, output, .. } => {
                                source_err(cas_sources::SourceError::PatchFailed {
                                    patch: path.clone(),
                                    hunks,
                                    output,
                                })
                            }
                            e => source_err(e),
                        },
                    )?;
                }
                _ => cas_sources::stage_source(s, &cache, &self.git_dir, build)
                    .map_err(source_err)?,
            }
        }
        Ok(())
    }

    /// The tree a local source (or patch, or workspace) was ingested as when
    /// its key was computed: the same memo, so the same bytes.
    pub(crate) fn local_snapshot(
        &self,
        el: &Element,
        path: &Path,
    ) -> Result<cas_store::TreeDigest> {
        self.planner
            .locals
            .digest(self.store, path)
            .map_err(|e| BuildError::Other {
                element: el.name.clone(),
                message: format!("cannot snapshot local source {}: {e}", path.display()),
            })
    }
}

//! The [`Stage`] of a step of the engine: a behaviour's calls turned into
//! the engine's (sysroot views, sandbox runs, remote execution, ingest).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cas_format::{Element, ElementId};
use cas_store::{IngestMode, Store, TreeDigest};

use super::{Commands, Root, Stage};
use crate::builddir::BuildDir;
use crate::error::Result;
use crate::keys::KeyInputs;
use crate::step::Engine;
use crate::sysroot::Layer;

/// One step's work, as its behaviour sees it.
pub(crate) struct StepStage<'e, 'a> {
    pub engine: &'e Engine<'a>,
    pub el: &'e Element,
    pub inputs: &'e KeyInputs,
    pub staged: &'e [(ElementId, TreeDigest)],
    pub dir: &'e BuildDir,
    pub log: &'e mut File,
}

impl Stage for StepStage<'_, '_> {
    fn element(&self) -> &Element {
        self.el
    }
    fn element_of(&self, id: ElementId) -> &Element {
        self.engine.element(id)
    }
    fn find(&self, name: &str) -> Option<ElementId> {
        self.engine.loaded.find(name)
    }
    fn staged(&self) -> &[(ElementId, TreeDigest)] {
        self.staged
    }
    fn store(&self) -> &Store {
        self.engine.store
    }
    fn log(&mut self) -> &mut dyn Write {
        self.log
    }
    fn stage_sources(&mut self) -> Result<PathBuf> {
        let build = self.dir.build();
        self.engine.stage_sources(self.el, self.inputs, &build)?;
        Ok(build)
    }
    fn layer(&self, id: ElementId, tree: TreeDigest) -> Layer {
        self.engine.layer(id, tree)
    }
    fn merge(&mut self, layers: &[Layer]) -> Result<TreeDigest> {
        self.engine
            .merge_layers(self.el, layers, self.dir, self.log)
    }
    fn run(&mut self, root: Root<'_>, commands: Commands<'_>) -> Result<()> {
        let phases;
        let commands = match commands {
            Commands::Phases => {
                phases = self.engine.commands_of(self.el, self.inputs);
                &phases
            }
            Commands::These(c) => c,
        };
        match root {
            Root::ReadOnly(layers) => {
                let sysroot = self.engine.sysroot(self.el, layers, self.dir, self.log)?;
                self.engine.run_commands(
                    self.el,
                    self.inputs,
                    crate::step::Root::read_only(&sysroot),
                    self.dir,
                    commands,
                    self.log,
                )
            }
            Root::Writable(path) => self.engine.run_commands(
                self.el,
                self.inputs,
                crate::step::Root::writable(path),
                self.dir,
                commands,
                self.log,
            ),
        }
    }
    fn execute(&mut self) -> Result<TreeDigest> {
        let (engine, el, inputs, staged) = (self.engine, self.el, self.inputs, self.staged);
        if crate::remote_exec::eligible(engine, el, inputs, staged) {
            crate::remote_exec::run(engine, el, inputs, staged, self.dir, self.log)?;
        } else {
            // the sysroot first: a conflict between what it stages fails the
            // step before its sources (a workspace's build directory) are touched
            let layers = self.layers();
            let sysroot = engine.sysroot(el, &layers, self.dir, self.log)?;
            self.stage_sources()?;
            let commands = engine.commands_of(el, inputs);
            engine.run_commands(
                el,
                inputs,
                crate::step::Root::read_only(&sysroot),
                self.dir,
                &commands,
                self.log,
            )?;
        }
        Ok(engine
            .store
            .ingest(&self.dir.install(), IngestMode::Move)?
            .tree)
    }
    fn scratch(&self) -> PathBuf {
        self.dir.rootfs()
    }
    fn output_dir(&self, output: &str, root: Option<&Path>) -> Result<PathBuf> {
        self.engine
            .output_dir(self.el, self.inputs, output, root, self.dir)
    }
}

//! Running a step: its sysroot (layers, merges, overlaps) and its sandbox.

use std::fs::File;
use std::path::{Path, PathBuf};

use cas_format::{Element, ElementId};
use cas_sandbox::{Mount, SandboxSpec};
use cas_store::TreeDigest;

use crate::builddir::BuildDir;
use crate::error::{io, BuildError, Result};
use crate::keys::KeyInputs;
use crate::sysroot::{Layer, Sysroot};

use super::Engine;

impl Engine<'_> {
    pub(crate) fn execute(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        staged: &[(ElementId, TreeDigest)],
        dir: &BuildDir,
    ) -> Result<TreeDigest> {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(dir.log())
            .map_err(io(&el.name, "cannot open log", dir.log()))?;
        crate::kinds::of(el).assemble(&mut crate::kinds::stage::StepStage {
            engine: self,
            el,
            inputs,
            staged,
            dir,
            log: &mut log,
        })
    }

    pub(crate) fn output_dir(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        output: &str,
        root: Option<&Path>,
        dir: &BuildDir,
    ) -> Result<PathBuf> {
        let under = |base: &str, host: PathBuf| -> Option<PathBuf> {
            let rest = Path::new(output).strip_prefix(base).ok()?;
            Some(host.join(rest))
        };
        if let Some(p) = under(&inputs.sandbox.install_root, dir.install()) {
            return Ok(p);
        }
        if let Some(p) = under(&inputs.sandbox.build_root, dir.build()) {
            return Ok(p);
        }
        match root {
            Some(r) => Ok(r.join(output.trim_start_matches('/'))),
            None => Err(BuildError::Other {
                element: el.name.clone(),
                message: format!("output `{output}` is in the read-only root; use a path under %{{install-root}} or set root-read-only: false"),
            }),
        }
    }

    /// Staged outputs as layers: labelled with their elements' names (for
    /// conflicts), with the paths each may overwrite.
    pub(crate) fn layers(&self, staged: &[(ElementId, TreeDigest)]) -> Vec<Layer> {
        staged.iter().map(|(d, t)| self.layer(*d, *t)).collect()
    }

    /// Element `id`'s output `tree` as a layer.
    pub(crate) fn layer(&self, id: ElementId, tree: TreeDigest) -> Layer {
        let d = self.element(id);
        Layer {
            label: d.name.clone(),
            tree,
            whitelist: d.public.overlap_whitelist.clone(),
        }
    }

    /// Merges `layers` for `el` into one stored tree, listing whitelisted
    /// replacements in `log`.
    pub(crate) fn merge_layers(
        &self,
        el: &Element,
        layers: &[Layer],
        dir: &BuildDir,
        log: &mut File,
    ) -> Result<TreeDigest> {
        let merged = crate::sysroot::merge(self.store, &el.name, &overlaps(el, layers), true)?;
        crate::sysroot::log_overwrites(log, &merged.overwrites).map_err(io(
            &el.name,
            "cannot write",
            dir.log(),
        ))?;
        Ok(merged.tree)
    }

    /// The read-only `/` of `el`'s step made of `layers` (crate::sysroot),
    /// its whitelisted replacements listed in `log`.
    pub(crate) fn sysroot(
        &self,
        el: &Element,
        layers: &[Layer],
        dir: &BuildDir,
        log: &mut File,
    ) -> Result<Sysroot> {
        let sysroot = crate::sysroot::stage(self.store, &el.name, &overlaps(el, layers))?;
        crate::sysroot::log_overwrites(log, &sysroot.overwrites).map_err(io(
            &el.name,
            "cannot write",
            dir.log(),
        ))?;
        Ok(sysroot)
    }
}

/// `layers` as `el` stages them: with `overlaps_allowed` (a BuildStream
/// project's default), every layer may replace what is below it.
pub(crate) fn overlaps(el: &Element, layers: &[Layer]) -> Vec<Layer> {
    let mut layers = layers.to_vec();
    if el.overlaps_allowed {
        for l in &mut layers {
            l.whitelist = vec!["/**".into()];
        }
    }
    layers
}

/// The sandbox of a step (spec/sandbox.md): its root, the build and install
/// roots bound writable, the key's environment with `%{max-jobs}` filled in,
/// and the key's identity settings. Everything here comes from the key inputs.
pub(crate) fn sandbox_spec(
    inputs: &KeyInputs,
    root: Root<'_>,
    dir: &BuildDir,
    jobs: &str,
) -> SandboxSpec {
    SandboxSpec {
        root: root.root.to_path_buf(),
        layers: root.layers.to_vec(),
        root_writable: root.writable,
        mounts: vec![
            Mount::writable(dir.build(), &inputs.sandbox.build_root),
            Mount::writable(dir.install(), &inputs.sandbox.install_root),
        ],
        env: inputs
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("%{max-jobs}", jobs)))
            .collect(),
        cwd: PathBuf::from(
            inputs
                .config
                .get("workdir")
                .and_then(|w| w.first())
                .unwrap_or(&inputs.sandbox.build_root),
        ),
        hostname: inputs.sandbox.hostname.clone(),
        uid: inputs.sandbox.uid,
        gid: inputs.sandbox.gid,
        network: inputs.sandbox.network,
        binfmt: None,
        upper: None,
    }
}

/// The `/` of one command: a staged sysroot (read-only), or a private copy
/// (writable).
#[derive(Clone, Copy)]
#[allow(clippy::struct_field_names, reason = "the root of a Root is its `/`")]
pub(crate) struct Root<'a> {
    root: &'a Path,
    layers: &'a [PathBuf],
    writable: bool,
}

impl<'a> Root<'a> {
    pub(crate) fn read_only(s: &'a Sysroot) -> Root<'a> {
        Root {
            root: &s.root,
            layers: &s.layers,
            writable: false,
        }
    }
    pub(crate) fn writable(path: &'a Path) -> Root<'a> {
        Root {
            root: path,
            layers: &[],
            writable: true,
        }
    }
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        if self.layers.is_empty() {
            vec![self.root.to_path_buf()]
        } else {
            self.layers.to_vec()
        }
    }
}

/// Whether bubblewrap works here, checked when the first step of a process
/// needs a sandbox, and remembered per store and kernel once it does.
pub(crate) fn sandbox_ready(el: &Element, store_root: &Path) -> Result<()> {
    static READY: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            // Probed once per store and kernel (cas_sandbox::probes), not per process.
            let cache = cas_store::Layout::new(store_root).probes();
            // and whether cas can make the sandboxes itself (remembered too)
            cas_sandbox::native::supported_remembered_in(&cache);
            cas_sandbox::cached_probe(&cache, "bwrap", || {
                cas_sandbox::check_available().map_err(|e| e.to_string())
            })
        })
        .clone()
        .map_err(|message| BuildError::Other {
            element: el.name.clone(),
            message,
        })
}

pub(crate) fn check_shell(el: &Element, dirs: &[PathBuf]) -> Result<()> {
    cas_sandbox::check_shell_in(dirs).map_err(|_| BuildError::NoShell {
        element: el.name.clone(),
    })
}

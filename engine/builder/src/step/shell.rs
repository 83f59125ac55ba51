//! `cas shell`: an element's sandbox, interactive or for one command.

use std::path::Path;

use cas_format::ElementId;
use cas_sandbox::Io;
use cas_store::TreeDigest;

use crate::builddir::BuildDir;
use crate::error::{io, BuildError, Result};
use crate::plan::Keyed;

use super::execute::{check_shell, sandbox_spec, Root};
use super::Engine;

impl Engine<'_> {
    /// An interactive shell in `id`'s sandbox: its sysroot view (every staged
    /// dependency must be built), and a build directory (`reopen`: a failed
    /// build's, kept as it was; otherwise a fresh one with the sources staged,
    /// removed when the shell ends). Nothing is recorded.
    pub fn shell(
        &self,
        id: ElementId,
        outputs: &dyn Fn(ElementId) -> Option<TreeDigest>,
        reopen: Option<&Path>,
        command: &[String],
    ) -> Result<cas_sandbox::Outcome> {
        let el = self.element(id);
        let Some(Keyed {
            staged,
            inputs,
            key,
        }) = self.planner.key(id, outputs)?
        else {
            let missing = self.first_missing(id, outputs);
            return Err(BuildError::Other {
                element: el.name.clone(),
                message: format!(
                    "dependency {missing} is not built; run `cas build {}` first",
                    el.name
                ),
            });
        };
        let dir = if let Some(root) = reopen {
            BuildDir {
                root: root.to_path_buf(),
            }
        } else {
            let dir = BuildDir::unique(
                &self.store.layout().builds(),
                &format!(
                    "shell-{}-{}-",
                    crate::builddir::safe_name(&el.name),
                    &key.to_hex()[..16]
                ),
            )
            .map_err(io(
                &el.name,
                "cannot create build directory in",
                self.store.layout().builds(),
            ))?;
            self.fetch_sources(el)?;
            // with a workspace: its build directory, as the last build left it
            self.link_workspace_build(el, &dir)?;
            self.stage_sources(el, &inputs, &dir.build())?;
            dir
        };
        let sysroot = crate::sysroot::stage(self.store, &el.name, &self.layers(&staged))?;
        let root = Root::read_only(&sysroot);
        check_shell(el, &root.dirs())?;
        let jobs = el.max_jobs(self.max_jobs).to_string();
        let mut spec = sandbox_spec(&inputs, root, &dir, &jobs);
        spec.binfmt = cas_sandbox::emulator::private_registration(&root.dirs());
        spec.env
            .insert("PS1".into(), format!("[cas {}] \\w $ ", el.name));
        // an interactive shell, or one command run by it (`cas shell X -- CMD`)
        let argv = if command.is_empty() {
            vec!["/bin/sh".to_string(), "-i".to_string()]
        } else {
            vec!["/bin/sh".to_string(), "-c".to_string(), command.join(" ")]
        };
        let outcome = cas_sandbox::run(&spec, &argv, Io::Inherit, &self.cancel);
        drop(sysroot);
        if reopen.is_none() {
            // a fresh shell's build directory was only for it (a reopened
            // failed build's stays for the next `cas shell --failed`)
            dir.remove();
        }
        Ok(outcome?)
    }
}

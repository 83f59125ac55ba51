//! Checks of a step's staged sysroot and of its output's architecture.

use cas_format::{Element, ElementId};
use cas_store::TreeDigest;

use crate::error::{BuildError, Result};

use super::Engine;

impl Engine<'_> {
    /// The architecture check (spec/format.md, Checks): every ELF file of
    /// the output is of the element's `build-arch`, or the step fails
    /// (`error`, the default) or says so (`warn`).
    pub(crate) fn check_architecture(&self, el: &Element, output: &TreeDigest) -> Result<()> {
        if !crate::checks::architecture_checked(el)
            || el.checks.architecture == cas_format::Severity::Off
        {
            return Ok(());
        }
        let wrong = crate::checks::architecture_problems(
            self.store,
            output,
            &el.sandbox.build_arch,
            &el.checks.architecture_exempt,
        )?;
        if wrong.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = wrong.iter().map(|(p, a)| format!("{p} is {a}")).collect();
        let message = format!(
            "{} ELF file(s) of its output are not {}: {}",
            wrong.len(),
            el.sandbox.build_arch,
            list.join(", ")
        );
        if el.checks.architecture == cas_format::Severity::Warn {
            self.reporter
                .message(&format!("warning: {}: {message}", el.name));
            return Ok(());
        }
        self.reporter.message(&format!(
            "error: {}: {message} (exempt paths with `checks: architecture-exempt: [GLOB]`)",
            el.name
        ));
        Err(BuildError::Other {
            element: el.name.clone(),
            message,
        })
    }

    /// A sysroot of another architecture runs only under a registered
    /// emulator: without one, the step fails before it starts, saying what
    /// to install.
    pub(crate) fn check_emulation(
        &self,
        el: &Element,
        staged: &[(ElementId, TreeDigest)],
    ) -> Result<()> {
        match self.planner.emulation(el, staged) {
            Some(crate::plan::Emulation {
                arch,
                emulator: Err(why),
            }) => {
                let message = format!(
                    "its sysroot is {arch} (its /bin/sh), this machine is {}: {}",
                    std::env::consts::ARCH,
                    why.advice(&arch)
                );
                self.reporter
                    .message(&format!("error: {}: {message}", el.name));
                Err(BuildError::Other {
                    element: el.name.clone(),
                    message,
                })
            }
            _ => Ok(()),
        }
    }
}

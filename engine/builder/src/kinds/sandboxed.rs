//! `sandbox` (manual, make, autotools, cmake, meson): the phases run in a
//! sandbox whose `/` is the staged sysroot (read-only); the output is
//! `%{install-root}`. Its key is its phases, environment and sandbox
//! settings: nothing behaviour-specific. Where it runs (here or on a
//! remote worker) is the engine's choice ([`Stage::execute`]).

use cas_store::TreeDigest;

use super::{Caps, Kind, Stage};
use crate::error::Result;

pub struct Sandboxed;

impl Kind for Sandboxed {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    fn caps(&self) -> Caps {
        Caps {
            runs_commands: true,
            merges_staged: true,
            makes_binaries: true,
            has_output: true,
            incremental: true,
            ..Caps::default()
        }
    }
    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        stage.execute()
    }
}

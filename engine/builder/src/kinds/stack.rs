//! `stack`: no output of its own; depending on a stack is depending on its
//! dependencies. Nothing of its own enters the key.

use cas_store::TreeDigest;

use super::{Caps, Kind, Stage};
use crate::error::Result;

pub struct Stack;

impl Kind for Stack {
    fn name(&self) -> &'static str {
        "stack"
    }
    fn caps(&self) -> Caps {
        Caps {
            made_of_staged: true,
            ..Caps::default()
        }
    }
    fn assemble(&self, stage: &mut dyn Stage) -> Result<TreeDigest> {
        Ok(stage.store().empty_tree()?)
    }
}

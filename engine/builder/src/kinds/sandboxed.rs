//! `sandbox` (manual, make, autotools, cmake, meson): the phases run in a
//! sandbox whose `/` is the staged sysroot (read-only); the output is
//! `%{install-root}`. Its key is its phases, environment and sandbox
//! settings: nothing behaviour-specific.

use cas_store::{IngestMode, TreeDigest};

use super::Work;
use crate::error::Result;
use crate::step::Root;

pub(crate) fn assemble(work: Work<'_, '_>) -> Result<TreeDigest> {
    let Work {
        engine,
        el,
        inputs,
        staged,
        dir,
        log,
    } = work;
    if crate::remote_exec::eligible(engine, el, inputs, staged) {
        crate::remote_exec::run(engine, el, inputs, staged, dir, log)?;
        return Ok(engine.store.ingest(&dir.install(), IngestMode::Move)?.tree);
    }
    let sysroot = engine.sysroot(el, &engine.layers(staged), dir, log)?;
    engine.stage_sources(el, inputs, &dir.build())?;
    engine.run_phases(el, inputs, Root::read_only(&sysroot), dir, log)?;
    drop(sysroot);
    Ok(engine.store.ingest(&dir.install(), IngestMode::Move)?.tree)
}

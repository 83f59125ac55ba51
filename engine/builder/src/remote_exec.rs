//! Sandboxed steps on a REAPI Execution service (`cas build --remote-exec`,
//! spec/remote.md "Remote execution"). The step is staged as it is here —
//! its sysroot merged from its dependencies' outputs, its sources staged in
//! its build directory — then sent as one Action (cas_reapi::exec). Its
//! output comes back into the step's install directory, and from there the
//! step ends as a local one does: ingested, checked, recorded under the
//! same key (where it ran is not an input: a remote build and a local one
//! of the same key must agree, which `cas check` verifies).
//!
//! Steps that need this machine run here: composes, scripts, workspaces
//! (their build directory is here), steps with the network, and steps
//! under an emulator.

use std::io::Write;

use cas_store::IngestMode;

use crate::builddir::BuildDir;
use crate::error::{BuildError, Result};
use crate::keys::KeyInputs;
use crate::step::Engine;
use cas_format::Element;
use cas_format::ElementId;
use cas_store::TreeDigest;

/// Does `el`'s step run remotely in this run?
pub(crate) fn eligible(
    engine: &Engine<'_>,
    el: &Element,
    inputs: &KeyInputs,
    staged: &[(ElementId, TreeDigest)],
) -> bool {
    engine.remote_exec.is_some()
        && el.workspace.is_none()
        && !inputs.sandbox.network
        && engine.planner.emulation(el, staged).is_none()
}

/// Run `el`'s phases remotely; its output is then in `dir.install()`.
pub(crate) fn run(
    engine: &Engine<'_>,
    el: &Element,
    inputs: &KeyInputs,
    staged: &[(ElementId, TreeDigest)],
    dir: &BuildDir,
    log: &mut std::fs::File,
) -> Result<()> {
    let Some(exec) = engine.remote_exec.as_deref() else {
        return Err(BuildError::Other {
            element: el.name.clone(),
            message: "no remote execution service".into(),
        });
    };
    let remote_err = |e: cas_store::RemoteError| BuildError::Other {
        element: el.name.clone(),
        message: format!("remote execution: {e}"),
    };
    let sysroot = engine.merge_layers(el, &engine.layers(staged), dir, log)?;
    engine.stage_sources(el, inputs, &dir.build())?;
    let sources = engine.store.ingest(&dir.build(), IngestMode::Copy)?.tree;
    let empty = engine.store.empty_tree()?;
    let commands = engine.commands_of(el, inputs);
    if engine.cancel.is_cancelled() {
        return Err(BuildError::Interrupted {
            element: el.name.clone(),
        });
    }
    let marker = crate::step::step_marker(dir);
    let jobs = engine.max_jobs.to_string();
    let spec =
        crate::step::sandbox_spec(inputs, crate::step::Root::writable(&dir.root), dir, &jobs);
    let cwd = spec.cwd.to_string_lossy().into_owned();
    let step = cas_reapi::exec::Step {
        sysroot,
        grafts: vec![
            (inputs.sandbox.build_root.clone(), sources),
            (inputs.sandbox.install_root.clone(), empty),
        ],
        argv: cas_sandbox::script_argv(&commands, &marker),
        env: &spec.env,
        cwd: &cwd,
        output: &inputs.sandbox.install_root,
        platform: vec![
            ("OSFamily".into(), "linux".into()),
            ("ISA".into(), isa(&el.sandbox.build_arch)),
        ],
    };
    let _ = log.flush();
    let start = log.metadata().map_or(0, |m| m.len());
    let _ = writeln!(log, "# running on {}", exec.url_str());
    let outcome = exec
        .execute(engine.store, &step, &dir.install(), log)
        .map_err(remote_err)?;
    engine.reporter.message(&format!(
        "{}: ran on {}{} ({} blob(s), {} bytes uploaded)",
        el.name,
        exec.url_str(),
        if outcome.worker.is_empty() {
            String::new()
        } else {
            format!(" worker {}", outcome.worker)
        },
        outcome.uploaded,
        outcome.uploaded_bytes
    ));
    if outcome.exit_code == 0 {
        return Ok(());
    }
    let _ = log.flush();
    Err(crate::step::command_failure(
        el,
        dir,
        start,
        &commands,
        &marker,
        &format!("exit code {}", outcome.exit_code),
    ))
}

/// REAPI's name of an architecture (the `ISA` platform property).
fn isa(arch: &str) -> String {
    match arch {
        "x86_64" => "x86-64".into(),
        "aarch64" => "aarch64".into(),
        other => other.to_string(),
    }
}

//! Running a step's phases and commands, and reading a failure from its log.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cas_format::Element;
use cas_sandbox::Io;

use crate::builddir::BuildDir;
use crate::error::{io, BuildError, Result};
use crate::keys::KeyInputs;

use super::execute::{check_shell, sandbox_ready, sandbox_spec, Root};
use super::Engine;

impl Engine<'_> {
    /// Runs `commands` (`(phase, command)`) in order in one sandbox (one
    /// sandbox per step, not per command; spec/sandbox.md): each as `sh -e -c`,
    /// its header and output in the log; the first failure stops the step and
    /// is reported with its phase and command.
    pub(crate) fn run_commands(
        &self,
        el: &Element,
        inputs: &KeyInputs,
        root: Root<'_>,
        dir: &BuildDir,
        commands: &[(String, String)],
        log: &mut File,
    ) -> Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        check_shell(el, &root.dirs())?;
        if self.cancel.is_cancelled() {
            return Err(BuildError::Interrupted {
                element: el.name.clone(),
            });
        }
        sandbox_ready(el, self.store.root())?;
        let jobs = el.max_jobs(self.max_jobs).to_string();
        let commands: Vec<(String, String)> = commands
            .iter()
            .map(|(p, c)| (p.clone(), c.replace("%{max-jobs}", &jobs)))
            .collect();
        let marker = step_marker(dir);
        let _ = log.flush();
        let start = log.metadata().map_or(0, |m| m.len());
        let mut spec = sandbox_spec(inputs, root, dir, &jobs);
        spec.binfmt = cas_sandbox::emulator::private_registration(&root.dirs());
        let file = log
            .try_clone()
            .map_err(io(&el.name, "cannot open log", dir.log()))?;
        let outcome = cas_sandbox::run(
            &spec,
            &cas_sandbox::script_argv(&commands, &marker),
            Io::Log(file),
            &self.cancel,
        )?;
        if outcome.cancelled {
            return Err(BuildError::Interrupted {
                element: el.name.clone(),
            });
        }
        if outcome.success() {
            return Ok(());
        }
        Err(command_failure(
            el,
            dir,
            start,
            &commands,
            &marker,
            &outcome.status.to_string(),
        ))
    }

    /// The phases of a step with `%{max-jobs}` resolved, as `(phase,
    /// command)`, and the sandbox spec they run in (also what a remote
    /// execution sends: crate::remote_exec).
    pub(crate) fn commands_of(&self, el: &Element, inputs: &KeyInputs) -> Vec<(String, String)> {
        let incremental = self
            .incremental_state(el)
            .is_some_and(|state| crate::workspace::incremental(&state, inputs));
        let jobs = el.max_jobs(self.max_jobs).to_string();
        inputs
            .phases
            .iter()
            .filter(|(phase, _)| !(incremental && phase == crate::workspace::CONFIGURE_PHASE))
            .flat_map(|(phase, commands)| {
                let jobs = jobs.clone();
                commands
                    .iter()
                    .map(move |c| (phase.clone(), c.replace("%{max-jobs}", &jobs)))
            })
            .collect()
    }
}

/// A failed step's error: which command failed, as the driver said in the
/// log after `start`; if it could not (killed), the last one it announced
/// with how the sandbox ended (`ended`: a signal, a timeout).
pub(crate) fn command_failure(
    el: &Element,
    dir: &BuildDir,
    start: u64,
    commands: &[(String, String)],
    marker: &str,
    ended: &str,
) -> BuildError {
    let text = read_from(&dir.log(), start);
    let (index, status, exit_code) = match cas_sandbox::failed_command(&text, marker) {
        Some((i, code)) => (i, format!("exit code {code}"), Some(code)),
        None => (last_announced(&text, commands), ended.to_string(), None),
    };
    let (phase, command) = commands
        .get(index)
        .cloned()
        .unwrap_or_else(|| ("commands".into(), String::new()));
    BuildError::CommandFailed {
        element: el.name.clone(),
        phase,
        command,
        status,
        exit_code,
    }
}

/// A marker no command prints by chance: the driver names the failing
/// command with it.
pub(crate) fn step_marker(dir: &BuildDir) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{}:{nanos}:{}", dir.root.display(), std::process::id());
    format!(
        "#cas-failed-{}",
        &blake3::hash(seed.as_bytes()).to_hex()[..16]
    )
}

/// The log written since `start` (at most its last MiB).
pub(crate) fn read_from(path: &Path, start: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = start.max(len.saturating_sub(1 << 20));
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The index of the last command whose header is in `text`.
pub(crate) fn last_announced(text: &str, commands: &[(String, String)]) -> usize {
    let mut at = 0;
    let mut last = 0;
    for (i, (p, c)) in commands.iter().enumerate() {
        match text[at..].find(&format!("# {p}: {c}\n")) {
            Some(o) => {
                at += o + 1;
                last = i;
            }
            None => break,
        }
    }
    last
}

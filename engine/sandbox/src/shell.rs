//! How one build command becomes an argv: `/bin/sh -e -c COMMAND`.

/// The shell every command runs with; the sysroot must provide it
/// (see [`crate::check_shell`]).
pub const SHELL: &str = "/bin/sh";

/// `["/bin/sh", "-e", "-c", command]`: the command is passed as one
/// argument, never re-quoted.
pub fn shell_argv(command: &str) -> Vec<String> {
    vec![
        SHELL.to_owned(),
        "-e".to_owned(),
        "-c".to_owned(),
        command.to_owned(),
    ]
}

/// The driver of a step's commands, run by one shell in one sandbox: each
/// command is announced in the log (`# PHASE: COMMAND`, as cas always
/// wrote it) and run as `/bin/sh -e -c COMMAND`, in order; the first that
/// fails stops the step, and the driver says which one on stderr
/// (`MARKER INDEX STATUS`, after a newline) and exits with its status.
const DRIVER: &str = r#"m=$1; shift; i=0
while [ "$#" -gt 1 ]; do
  i=$((i + 1)); p=$1; c=$2; shift 2
  printf '# %s: %s\n' "$p" "$c"
  /bin/sh -e -c "$c" || { s=$?; printf '\n%s %s %s\n' "$m" "$i" "$s" >&2; exit "$s"; }
done"#;

/// The argv that runs `commands` (`(phase, command)`, in order) in one
/// sandbox through [`DRIVER`]; `marker` names the failing command in the
/// log (see [`failed_command`]). Commands are passed as arguments, never
/// re-quoted.
pub fn script_argv(commands: &[(String, String)], marker: &str) -> Vec<String> {
    let mut argv = vec![
        SHELL.to_owned(),
        "-c".to_owned(),
        DRIVER.to_owned(),
        "cas-step".to_owned(),
        marker.to_owned(),
    ];
    for (phase, command) in commands {
        argv.push(phase.clone());
        argv.push(command.clone());
    }
    argv
}

/// Which command of a [`script_argv`] run failed, from the log text it
/// wrote: the 0-based index and its exit status; `None` when the driver
/// said nothing (killed, or the shell itself failed).
pub fn failed_command(log: &str, marker: &str) -> Option<(usize, i32)> {
    let line = log.lines().rev().find(|l| l.starts_with(marker))?;
    let mut parts = line[marker.len()..].split_whitespace();
    let index: usize = parts.next()?.parse().ok()?;
    let status: i32 = parts.next()?.parse().ok()?;
    Some((index.checked_sub(1)?, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_command_is_read_back_from_the_marker_line() {
        let log = "# build-commands: make\nmake: *** [all] Error 2\n\n#cas-failed-ab 2 2\n";
        assert_eq!(failed_command(log, "#cas-failed-ab"), Some((1, 2)));
        // Another marker, a garbled line, or none: nothing is claimed.
        assert_eq!(failed_command(log, "#cas-failed-cd"), None);
        assert_eq!(
            failed_command("#cas-failed-ab x 1\n", "#cas-failed-ab"),
            None
        );
        assert_eq!(
            failed_command("#cas-failed-ab 0 1\n", "#cas-failed-ab"),
            None
        );
        assert_eq!(failed_command("", "#cas-failed-ab"), None);
    }

    #[test]
    fn commands_are_passed_as_arguments_in_phase_order() {
        let argv = script_argv(
            &[
                ("build".into(), "echo 'a b'".into()),
                ("install".into(), "true".into()),
            ],
            "#m",
        );
        assert_eq!(argv[0], SHELL);
        assert_eq!(
            &argv[3..],
            ["cas-step", "#m", "build", "echo 'a b'", "install", "true"]
        );
    }
}

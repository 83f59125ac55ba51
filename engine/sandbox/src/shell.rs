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

//! Host-side helper programs (git, patch) run with a clean environment.
//!
//! Content that came from a source is data (DESIGN.md, principle 6): a
//! helper that cas runs on the host must not read configuration from the
//! caller's environment (`GIT_DIR`, `GIT_CONFIG_*`, `PATCH_*`,
//! `VERSION_CONTROL` …) nor from staged content. Every helper starts from an
//! empty environment plus the few variables listed here; git also gets no
//! system or global configuration and only the transports a source URL may
//! use (spec/sources.md, "Host-side helpers").

use std::ffi::OsStr;
use std::process::{Command, Stdio};

/// Variables passed through from the caller: where programs are, and what a
/// download needs to reach its server (proxies, certificates, an ssh agent).
/// None of them can make a helper run something a source chose.
const PASSED: &[&str] = &[
    "PATH",
    "HOME",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SSH_AUTH_SOCK",
];

/// `program` with an empty environment plus [`PASSED`], `LC_ALL=C` and
/// stdin from `/dev/null`.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("LC_ALL", "C").stdin(Stdio::null());
    for name in PASSED {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd
}

/// `git` as cas runs it: [`command`], no system or global configuration,
/// no prompts, no replace objects, only the `file`, `git`, `http`, `https`
/// and `ssh` transports (never `ext::`), and the configuration that could
/// run a program (fsmonitor, hooks) switched off on the command line, which
/// wins over any repository's own.
pub fn git() -> Command {
    let mut cmd = command("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ATTR_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.sshCommand=ssh",
            "-c",
            "credential.helper=",
            "-c",
            "protocol.ext.allow=never",
        ]);
    cmd
}

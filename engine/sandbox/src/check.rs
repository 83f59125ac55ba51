//! Preflight checks: is bwrap usable here, and does a sysroot have a shell.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::SandboxError;
use crate::layers::Layers;
use crate::shell::SHELL;

/// The `bwrap` executable found in PATH.
pub fn bwrap_path() -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("bwrap");
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(SandboxError::BwrapNotFound {
        path: path.to_string_lossy().into_owned(),
    })
}

/// Checks that bwrap is installed and can create the namespaces every
/// sandbox uses (user, pid, net, ipc, uts, cgroup, mount). Call it once
/// before scheduling builds, to fail early with a useful message.
pub fn check_available() -> Result<(), SandboxError> {
    let bwrap = bwrap_path()?;
    let out = Command::new(&bwrap)
        .args([
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ])
        .args(["--uid", "0", "--gid", "0", "--hostname", "cas"])
        .args([
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--",
        ])
        .arg(&bwrap)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::Spawn {
            program: bwrap.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let detail = if stderr.is_empty() {
        format!("it exited with {}", out.status)
    } else {
        stderr
    };
    let sysctl = |p: &str| std::fs::read_to_string(p).is_ok_and(|s| s.trim() == "0");
    let userns_off = sysctl("/proc/sys/user/max_user_namespaces")
        || sysctl("/proc/sys/kernel/unprivileged_userns_clone")
        || detail.contains("namespace")
        || detail.contains("uid map");
    if userns_off {
        Err(SandboxError::UsernsDisabled { bwrap, detail })
    } else {
        Err(SandboxError::BwrapBroken { bwrap, detail })
    }
}

/// Checks that `root` (a sysroot view) has an executable `/bin/sh`,
/// following symbolic links inside `root` as the sandbox would.
pub fn check_shell(root: &Path) -> Result<(), SandboxError> {
    check_shell_in(&[root.to_path_buf()])
}

/// [`check_shell`] for a sysroot made of layers (topmost first).
pub fn check_shell_in(layers: &[PathBuf]) -> Result<(), SandboxError> {
    let root = layers.first().cloned().unwrap_or_default();
    if let Some(missing) = layers.iter().find(|l| !l.is_dir()) {
        return Err(SandboxError::RootMissing {
            root: missing.clone(),
        });
    }
    let no_shell = |reason: String| SandboxError::NoShell {
        root: root.clone(),
        reason,
    };
    let host = resolve_in_layers(Layers::new(layers), Path::new(SHELL)).map_err(no_shell)?;
    match std::fs::metadata(&host) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(no_shell(format!("{SHELL} is not an executable file"))),
        Err(e) => Err(no_shell(format!("{SHELL}: {e}"))),
    }
}

/// The host path of the absolute sandbox path `path` in the sysroot `root`,
/// resolving symbolic links (absolute ones relative to `root`, `..` never
/// above it), like a lookup after `chroot root`.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, String> {
    resolve_in_layers(Layers::new(&[root.to_path_buf()]), path)
}

/// [`resolve_in_root`] in the union of layers: the host path in the topmost
/// layer that has the resolved entry.
pub fn resolve_in_layers(layers: Layers<'_>, path: &Path) -> Result<PathBuf, String> {
    let mut todo: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    let mut found = None;
    while let Some(name) = todo.pop() {
        if name == ".." {
            done.pop();
            found = None;
            continue;
        }
        let rel: PathBuf = done.iter().cloned().collect::<PathBuf>().join(&name);
        match layers.lstat(&rel) {
            Ok((host, m)) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(format!(
                        "too many levels of symbolic links in {}",
                        path.display()
                    ));
                }
                let target =
                    std::fs::read_link(&host).map_err(|e| format!("{}: {e}", host.display()))?;
                if target.is_absolute() {
                    done.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(n.to_owned()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
                found = None;
            }
            Ok((host, _)) => {
                done.push(name);
                found = Some(host);
            }
            Err(e) => {
                let shown: PathBuf = std::iter::once(std::ffi::OsString::from("/"))
                    .chain(done.iter().cloned())
                    .collect::<PathBuf>()
                    .join(&name);
                return Err(format!("{} does not exist: {e}", shown.display()));
            }
        }
    }
    if let Some(host) = found {
        Ok(host)
    } else {
        let rel: PathBuf = done.iter().cloned().collect();
        Ok(layers
            .dirs()
            .first()
            .map(|d| d.join(rel))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_links_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::write(r.join("usr/bin/dash"), "").unwrap();
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/dash", r.join("usr/bin/sh")).unwrap();
        assert_eq!(
            resolve_in_root(r, Path::new("/bin/sh")).unwrap(),
            r.join("usr/bin/dash")
        );
        std::os::unix::fs::symlink("../../../../../etc/passwd", r.join("usr/bin/up")).unwrap();
        assert!(
            resolve_in_root(r, Path::new("/bin/up")).is_err(),
            "escaping the root must not reach the host"
        );
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(resolve_in_root(r, Path::new("/loop"))
            .unwrap_err()
            .contains("too many"));
    }

    #[test]
    fn check_shell_names_the_root() {
        let t = tempfile::tempdir().unwrap();
        let err = check_shell(t.path()).unwrap_err().to_string();
        assert!(
            err.contains(&t.path().display().to_string()) && err.contains("/bin/sh"),
            "{err}"
        );
        std::fs::create_dir_all(t.path().join("bin")).unwrap();
        std::fs::write(t.path().join("bin/sh"), "").unwrap();
        assert!(check_shell(t.path()).is_err(), "not executable");
        std::fs::set_permissions(
            t.path().join("bin/sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        check_shell(t.path()).unwrap();
    }
}

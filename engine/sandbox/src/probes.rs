//! Probe results kept per store: whether bwrap works here and whether
//! overlay mounts work in a user namespace depend on the kernel and on the
//! bwrap binary, not on the build, so they are probed once and remembered
//! in a small file (`STORE/probes`), one line per probe:
//! `NAME IDENTITY ok`. The identity is the kernel release, bwrap's path,
//! size and modification time, and this crate's version: a new kernel, a
//! new bwrap or a new cas probes again. A process probes at most once.

use std::path::Path;
use std::sync::Mutex;

/// What identifies the conditions a probe ran under.
fn identity() -> String {
    // SAFETY: uname fills the struct we own.
    let release = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&raw mut u) == 0 {
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned()
        } else {
            "unknown".into()
        }
    };
    let bwrap = crate::check::bwrap_path().ok();
    let stamp = bwrap
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}.{}", m.size(), m.mtime())
        })
        .unwrap_or_default();
    let raw = format!(
        "{release}|{}|{stamp}|{}",
        bwrap.map(|p| p.display().to_string()).unwrap_or_default(),
        env!("CARGO_PKG_VERSION")
    );
    raw.split_whitespace().collect::<Vec<_>>().join("_")
}

static LOCK: Mutex<()> = Mutex::new(());

/// The cached success of probe `name` in `file`, or `run()`'s result. Only
/// a success is remembered: a failure (user namespaces turned off, bwrap
/// missing) is probed again next time, so fixing the machine is seen at once.
pub fn cached(
    file: &Path,
    name: &str,
    run: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let _one = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = identity();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        if let (Some(n), Some(i), Some(r)) = (parts.next(), parts.next(), parts.next()) {
            if n == name && i == id && r == "ok" {
                return Ok(());
            }
        }
    }
    run()?;
    let mut kept: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{name} ")))
        .map(str::to_owned)
        .collect();
    kept.push(format!("{name} {id} ok"));
    // Best effort: a store we cannot write to just probes every time.
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    if std::fs::write(&tmp, kept.join("\n") + "\n").is_ok() && std::fs::rename(&tmp, file).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(())
}

//! A sysroot made of layers, mounted as one read-only overlay (or, with a
//! writable layer on top, as a private writable root that costs no copy).
//!
//! A step's sysroot is the union of its dependencies' outputs. Materialising
//! that union as one more hardlinked tree per step costs a new inode per
//! directory and symbolic link (0.25 ms each on ext4 here, thousands for a
//! toolchain), every time. Instead each dependency output is materialised
//! once, as its own view, and the step sees their union through overlayfs:
//! the cost of a step no longer grows with the size of its sysroot.
//!
//! bwrap 0.8 (Debian 12) cannot mount overlays, so the process that becomes
//! bwrap first enters a user and mount namespace of its own
//! ([`crate::userns`], mapping its uid and gid to themselves), mounts the overlay read-only on the spec's empty
//! `root` directory, and then execs bwrap, which nests its own namespaces as
//! usual and binds from that mount. Nothing is visible outside: the mount
//! lives and dies with the sandbox's namespace. Unprivileged overlay mounts
//! need Linux 5.11; [`overlay_supported`] probes once per process, and
//! `CAS_SANDBOX_OVERLAY=0` turns the method off (cas then stages one merged
//! view per sysroot, as before).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::SandboxError;
use crate::spec::WritableLayer;

/// The mount options must fit in one page (the legacy `mount(2)` limit).
const MAX_OPTIONS: usize = 4095;

/// The overlay's mount options for `layers` (topmost first): the directory to
/// resolve them from (when they share a parent, so the names stay short) and
/// the option string.
pub fn overlay_options(layers: &[PathBuf]) -> Result<(Option<PathBuf>, String), SandboxError> {
    overlay_options_with(layers, None)
}

/// [`overlay_options`] with a writable layer on top (`upperdir`, `workdir`).
pub fn overlay_options_with(
    layers: &[PathBuf],
    upper: Option<&WritableLayer>,
) -> Result<(Option<PathBuf>, String), SandboxError> {
    let bad = |why: String| SandboxError::OverlayLayers {
        count: layers.len(),
        why,
    };
    if layers.is_empty() || (layers.len() < 2 && upper.is_none()) {
        return Err(bad(
            "a read-only overlay needs at least two layers, a writable one at least one".into(),
        ));
    }
    let parent = layers[0].parent().map(Path::to_path_buf);
    let shared = parent
        .as_ref()
        .filter(|p| layers.iter().all(|l| l.parent() == Some(p.as_path())));
    let mut opts = String::from("lowerdir=");
    for (i, l) in layers.iter().enumerate() {
        let name: &Path = match shared {
            Some(_) => Path::new(l.file_name().unwrap_or_default()),
            None => l,
        };
        let Some(text) = name.to_str() else {
            return Err(bad(format!("{} is not UTF-8", l.display())));
        };
        if text.is_empty() || text.contains([':', ',', '\\', '\n', '\0']) {
            return Err(bad(format!(
                "{} contains a character overlayfs cannot take in a layer name (: , \\)",
                l.display()
            )));
        }
        if i > 0 {
            opts.push(':');
        }
        opts.push_str(text);
    }
    if let Some(w) = upper {
        for (key, dir) in [("upperdir", &w.upper), ("workdir", &w.work)] {
            let text = dir
                .to_str()
                .filter(|t| dir.is_absolute() && !t.contains([':', ',', '\\', '\n', '\0']));
            let Some(text) = text else {
                return Err(bad(format!(
                    "the writable layer's {} must be an absolute UTF-8 path without : , \\",
                    dir.display()
                )));
            };
            opts.push_str(&format!(",{key}={text}"));
        }
        // Mounted in a user namespace: opaque directories and the like are
        // marked with user.overlay.* attributes (trusted.* needs real root).
        opts.push_str(",userxattr");
    }
    if opts.len() > MAX_OPTIONS {
        return Err(bad(format!(
            "the layer list is {} bytes, more than the {MAX_OPTIONS} a mount takes",
            opts.len()
        )));
    }
    Ok((shared.cloned(), opts))
}

/// Everything the child needs to mount the overlay, prepared before `fork`
/// (the child may not allocate).
pub(crate) struct OverlayMount {
    chdir: Option<CString>,
    target: CString,
    options: CString,
    flags: libc::c_ulong,
}

impl OverlayMount {
    /// The overlay `spec` needs: its layers' union on `spec.root`, when
    /// there are two or more layers or a writable one.
    pub(crate) fn for_spec(
        spec: &crate::SandboxSpec,
    ) -> Result<Option<OverlayMount>, SandboxError> {
        if spec.layers.len() > 1 || spec.upper.is_some() {
            OverlayMount::prepare(&spec.root, &spec.layers, spec.upper.as_ref()).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn prepare(
        root: &Path,
        layers: &[PathBuf],
        upper: Option<&WritableLayer>,
    ) -> Result<OverlayMount, SandboxError> {
        let (dir, options) = overlay_options_with(layers, upper)?;
        let rdonly = if upper.is_some() { 0 } else { libc::MS_RDONLY };
        let cstr = |p: &[u8]| {
            CString::new(p).map_err(|_| SandboxError::OverlayLayers {
                count: layers.len(),
                why: "a path contains NUL".into(),
            })
        };
        Ok(OverlayMount {
            chdir: dir.map(|d| cstr(d.as_os_str().as_bytes())).transpose()?,
            target: cstr(root.as_os_str().as_bytes())?,
            options: cstr(options.as_bytes())?,
            flags: rdonly | libc::MS_NOSUID | libc::MS_NODEV,
        })
    }

    /// In the child, after `fork`, inside the namespaces of
    /// [`crate::userns::Namespaces::enter`]: the overlay on the target.
    /// Only async-signal-safe calls.
    ///
    /// # Safety
    /// Call only between `fork` and `exec` of a single-threaded child.
    pub(crate) unsafe fn mount(&self) -> io::Result<()> {
        let last = io::Error::last_os_error;
        let mut back = -1;
        if let Some(dir) = &self.chdir {
            back = libc::open(
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if back < 0 || libc::chdir(dir.as_ptr()) != 0 {
                return Err(last());
            }
        }
        let r = libc::mount(
            c"overlay".as_ptr(),
            self.target.as_ptr(),
            c"overlay".as_ptr(),
            self.flags,
            self.options.as_ptr().cast(),
        );
        let err = last();
        if back >= 0 {
            libc::fchdir(back);
            libc::close(back);
        }
        if r != 0 {
            return Err(err);
        }
        Ok(())
    }
}

/// Whether layered sysroots work here: `CAS_SANDBOX_OVERLAY` is not `0`,
/// and an overlay of two directories in `scratch` (on the store's file
/// system) mounts and is seen by a command in bwrap. Probed once per process.
pub fn overlay_supported(scratch: &Path) -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        if matches!(
            std::env::var("CAS_SANDBOX_OVERLAY").as_deref(),
            Ok("0" | "off" | "false" | "no")
        ) {
            return false;
        }
        // Remembered beside the scratch directory (the store's `probes`).
        let cache = scratch.with_file_name("probes");
        crate::probes::cached(&cache, "overlay", || {
            probe(scratch).map_err(|e| e.to_string())
        })
        .is_ok()
    })
}

fn probe(scratch: &Path) -> io::Result<()> {
    let bwrap = crate::check::bwrap_path().map_err(io::Error::other)?;
    let dir = tempfile::Builder::new()
        .prefix("overlay-probe-")
        .tempdir_in(scratch)?;
    let (a, b, m) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("m"),
    );
    for d in [&a, &b, &m] {
        std::fs::create_dir(d)?;
    }
    std::fs::write(a.join("top"), "")?;
    std::fs::write(b.join("bottom"), "")?;
    let mount = OverlayMount::prepare(&m, &[a, b], None).map_err(io::Error::other)?;
    let ns = crate::userns::Namespaces::prepare();
    let mut cmd = Command::new(&bwrap);
    cmd.args(["--unshare-all", "--die-with-parent", "--cap-drop", "ALL"])
        .args(["--uid", "0", "--gid", "0", "--ro-bind", "/", "/"])
        .arg("--ro-bind")
        .arg(&m)
        .args(["/mnt", "--proc", "/proc", "--dev", "/dev", "--"])
        .args(["/bin/sh", "-c", "test -f /mnt/top && test -f /mnt/bottom"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: `enter` and `mount` only make async-signal-safe calls.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            ns.enter()?;
            mount.mount()
        });
    }
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("probe exited with {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_use_short_names_when_layers_share_a_parent() {
        let l = vec![PathBuf::from("/s/views/ab"), PathBuf::from("/s/views/cd")];
        let (dir, opts) = overlay_options(&l).unwrap();
        assert_eq!(dir, Some(PathBuf::from("/s/views")));
        assert_eq!(opts, "lowerdir=ab:cd");
        let l = vec![PathBuf::from("/s/a/x"), PathBuf::from("/s/b/y")];
        assert_eq!(
            overlay_options(&l).unwrap(),
            (None, "lowerdir=/s/a/x:/s/b/y".to_string())
        );
    }

    #[test]
    fn options_refuse_what_overlayfs_cannot_take() {
        let l = vec![PathBuf::from("/s/a:b/x"), PathBuf::from("/s/b/y")];
        let err = overlay_options(&l).unwrap_err().to_string();
        assert!(err.contains("/s/a:b/x"), "{err}");
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/s/views/{i:064}")))
            .collect();
        let err = overlay_options(&many).unwrap_err().to_string();
        assert!(err.contains("100 layers"), "{err}");
        assert!(overlay_options(&many[..2]).is_ok());
    }
}

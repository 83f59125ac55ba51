//! How the read-only sysroot and the mount points become bwrap operations.
//!
//! bwrap builds the sandbox's `/` on a fresh tmpfs. Binding the whole sysroot
//! with `--ro-bind ROOT /` would make `/` read-only at once, and bwrap could
//! no longer create mount points the sysroot lacks (`/build`, `/install`,
//! `/proc`, ...): it fails with "Can't mkdir /build: Read-only file system".
//!
//! Instead `/` stays bwrap's tmpfs and each top-level entry of the sysroot is
//! bound read-only onto it (symbolic links are recreated as links). Where a
//! mount point lies below a sysroot directory that lacks it, that directory is
//! "exploded" the same way: a tmpfs directory with the sysroot's mode whose
//! entries are bound one by one. Mount points and their missing parents are
//! created explicitly with mode 0755. After every mount, `/` is remounted
//! read-only (`--remount-ro /`, not recursive in bwrap 0.8, so the writable
//! mounts stay writable). The result: the sysroot view never needs to be
//! modified, and what the sandbox sees does not depend on whether the view
//! happened to contain the mount points.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;
use crate::layers::Layers;

/// One bwrap operation that builds the read-only part of `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `--ro-bind host dest`
    RoBind { host: PathBuf, dest: PathBuf },
    /// `--perms mode --dir dest`
    Dir { dest: PathBuf, mode: u32 },
    /// `--symlink target dest`
    Symlink { target: PathBuf, dest: PathBuf },
}

/// A path that something will be mounted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Absolute, normal sandbox path (see `spec::check_sandbox_path`).
    pub path: PathBuf,
    /// A directory mount point (else a file: bwrap creates it).
    pub dir: bool,
}

/// Mode of the directories created for mount points and their parents.
pub const CREATED_DIR_MODE: u32 = 0o755;

/// The operations that show `root` read-only as `/`, leaving room for
/// `targets`. Targets below another target are left to bwrap (it creates
/// them inside that mount when it is writable).
pub fn plan_root(root: &Path, targets: &[Target]) -> Result<Vec<Op>, SandboxError> {
    let dirs = [root.to_path_buf()];
    plan_layers(root, Layers::new(&dirs), targets)
}

/// Like [`plan_root`] for a sysroot made of `layers` that will be mounted
/// (as one overlay) on `root`: the plan is read from the layers, and what it
/// binds is taken from `root`.
pub fn plan_layers(
    root: &Path,
    layers: Layers<'_>,
    targets: &[Target],
) -> Result<Vec<Op>, SandboxError> {
    for d in layers
        .dirs()
        .iter()
        .chain(std::iter::once(&root.to_path_buf()))
    {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(SandboxError::RootMissing { root: d.clone() }),
        }
    }
    let top: Vec<Pending> = targets
        .iter()
        .filter(|t| {
            !targets
                .iter()
                .any(|o| o.path != t.path && t.path.starts_with(&o.path))
        })
        .map(|t| Pending {
            rest: t
                .path
                .components()
                .skip(1)
                .map(|c| c.as_os_str().to_owned())
                .collect(),
            target: t.clone(),
        })
        .collect();
    let mut ops = Vec::new();
    let plan = Plan { root, layers };
    plan.explode(Path::new(""), Path::new("/"), top, &mut ops)?;
    Ok(ops)
}

/// A target seen from some directory: the components still to walk.
#[derive(Clone, Debug)]
struct Pending {
    rest: Vec<OsString>,
    target: Target,
}

/// Groups pending targets by their next component; `None` in a group's list
/// means "this name is the mount point itself".
fn group(pending: Vec<Pending>) -> BTreeMap<OsString, Vec<Pending>> {
    let mut groups: BTreeMap<OsString, Vec<Pending>> = BTreeMap::new();
    for mut p in pending {
        if p.rest.is_empty() {
            continue;
        }
        let first = p.rest.remove(0);
        groups.entry(first).or_default().push(p);
    }
    groups
}

fn is_mount_point(list: &[Pending]) -> Option<&Target> {
    list.iter().find(|p| p.rest.is_empty()).map(|p| &p.target)
}

struct Plan<'a> {
    root: &'a Path,
    layers: Layers<'a>,
}

impl Plan<'_> {
    /// Shows the sysroot directory `rel` at `sdir` entry by entry, making
    /// room for `pending`.
    fn explode(
        &self,
        rel: &Path,
        sdir: &Path,
        pending: Vec<Pending>,
        ops: &mut Vec<Op>,
    ) -> Result<(), SandboxError> {
        let mut groups = group(pending);
        let read_err = |rel: &Path| {
            let path = self.root.join(rel);
            move |source| SandboxError::ReadRoot { path, source }
        };
        for name in self.layers.read_dir(rel).map_err(read_err(rel))? {
            let rel = rel.join(&name);
            let dest = sdir.join(&name);
            let (host, meta) = self.layers.lstat(&rel).map_err(read_err(&rel))?;
            match groups.remove(&name) {
                Some(list) => {
                    if let Some(t) = is_mount_point(&list) {
                        // The mount hides whatever the sysroot has here.
                        if t.dir {
                            ops.push(Op::Dir {
                                dest,
                                mode: CREATED_DIR_MODE,
                            });
                        }
                    } else if meta.is_dir() {
                        ops.push(Op::Dir {
                            dest: dest.clone(),
                            mode: meta.permissions().mode() & 0o7777,
                        });
                        self.explode(&rel, &dest, list, ops)?;
                    } else {
                        return Err(SandboxError::MountThroughLink {
                            root: self.root.to_owned(),
                            sandbox: list[0].target.path.clone(),
                            found: dest,
                        });
                    }
                }
                None if meta.file_type().is_symlink() => {
                    let target =
                        std::fs::read_link(&host).map_err(|source| SandboxError::ReadRoot {
                            path: host.clone(),
                            source,
                        })?;
                    ops.push(Op::Symlink { target, dest });
                }
                None => ops.push(Op::RoBind {
                    host: self.root.join(&rel),
                    dest,
                }),
            }
        }
        for (name, list) in groups {
            create(&sdir.join(name), list, ops);
        }
        Ok(())
    }
}

/// Creates a path the sysroot lacks, and everything pending below it.
fn create(dest: &Path, list: Vec<Pending>, ops: &mut Vec<Op>) {
    if let Some(t) = is_mount_point(&list) {
        if t.dir {
            ops.push(Op::Dir {
                dest: dest.to_owned(),
                mode: CREATED_DIR_MODE,
            });
        }
        return;
    }
    ops.push(Op::Dir {
        dest: dest.to_owned(),
        mode: CREATED_DIR_MODE,
    });
    for (name, sub) in group(list) {
        create(&dest.join(name), sub, ops);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_target(p: &str) -> Target {
        Target {
            path: PathBuf::from(p),
            dir: true,
        }
    }

    #[test]
    fn top_level_entries_are_bound_and_mount_points_created() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("tmp")).unwrap();
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        std::fs::write(r.join("file"), "x").unwrap();
        let ops = plan_root(
            r,
            &[
                dir_target("/build"),
                dir_target("/tmp"),
                dir_target("/build/sub"),
            ],
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Symlink {
                    target: "usr/bin".into(),
                    dest: "/bin".into()
                },
                Op::RoBind {
                    host: r.join("file"),
                    dest: "/file".into()
                },
                Op::Dir {
                    dest: "/tmp".into(),
                    mode: 0o755
                },
                Op::RoBind {
                    host: r.join("usr"),
                    dest: "/usr".into()
                },
                Op::Dir {
                    dest: "/build".into(),
                    mode: 0o755
                },
            ]
        );
    }

    #[test]
    fn deep_missing_mount_point_explodes_parents() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::create_dir_all(r.join("usr/src")).unwrap();
        std::fs::set_permissions(r.join("usr"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let ops = plan_root(r, &[dir_target("/usr/src/x/build")]).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Dir {
                    dest: "/usr".into(),
                    mode: 0o750
                },
                Op::RoBind {
                    host: r.join("usr/lib"),
                    dest: "/usr/lib".into()
                },
                Op::Dir {
                    dest: "/usr/src".into(),
                    mode: 0o755
                },
                Op::Dir {
                    dest: "/usr/src/x".into(),
                    mode: 0o755
                },
                Op::Dir {
                    dest: "/usr/src/x/build".into(),
                    mode: 0o755
                },
            ]
        );
    }

    #[test]
    fn mount_point_through_a_symlink_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
        let err = plan_root(r, &[dir_target("/bin/x")]).unwrap_err();
        assert!(err.to_string().contains("/bin/x"), "{err}");
    }

    #[test]
    fn missing_root_is_an_error() {
        let err = plan_root(Path::new("/nonexistent/cas-root"), &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cas-root"), "{err}");
    }
}

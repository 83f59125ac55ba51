//! One leased Action, run here: its input root shown as cached read-only
//! layers under a writable one ([`crate::lower`]), or else copied out of
//! the store (reflinked where the file system can; never hardlinked, since
//! the action may write anywhere in it), its Command run in bwrap with that
//! root as `/` (no network, fresh /dev, /proc and /tmp: cas's sandbox),
//! its outputs ingested into the store and uploaded, its stdout and stderr
//! (one stream, as cas logs) uploaded as stdout.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::protobuf::{Any, Timestamp, UInt32Value};
use cas_reapi::digests::Sha;
use cas_reapi::ReapiRemote;
use cas_sandbox::{Cancel, Exit, Io, SandboxSpec, WritableLayer};
use cas_store::{Method, Store};
use prost::Message;

use crate::error::{Result, WorkerError};
use crate::input::{Fetch, Memo};
use crate::lower::{self, lookup, make_dirs, Found};

/// The largest Action or Command message read.
const MAX_MESSAGE: u64 = 16 << 20;
/// The most log bytes uploaded as stdout.
const MAX_LOG: u64 = 64 << 20;

const ACTION_TYPE: &str = "build.bazel.remote.execution.v2.Action";
const DIGEST_TYPE: &str = "build.bazel.remote.execution.v2.Digest";

/// What running one Action gave, for the worker's own log.
pub struct Ran {
    pub result: re::ActionResult,
    /// Milliseconds spent fetching the inputs, running, uploading.
    pub fetch_ms: u64,
    /// Of which: laying out the input root (layers, or a copy).
    pub stage_ms: u64,
    /// The root was layered (an overlay), not copied.
    pub layered: bool,
    pub run_ms: u64,
    pub upload_ms: u64,
    pub action: Sha,
    pub downloaded: usize,
    pub downloaded_bytes: u64,
}

/// The Action of a lease's payload (an Action, or the digest of one).
fn action_of(remote: &ReapiRemote, payload: &Any) -> Result<(Sha, re::Action)> {
    let ty = payload.type_url.rsplit('/').next().unwrap_or_default();
    let bytes = if ty == ACTION_TYPE {
        payload.value.clone()
    } else if ty == DIGEST_TYPE {
        let d = re::Digest::decode(payload.value.as_slice())
            .map_err(|e| WorkerError::Invalid(format!("the lease's digest: {e}")))?;
        let sha = Sha::from_proto(&d)
            .ok_or_else(|| WorkerError::Invalid("the lease's digest is not SHA-256".into()))?;
        remote.read_verified(&sha, MAX_MESSAGE)?
    } else {
        return Err(WorkerError::Invalid(format!(
            "the lease carries a {} (an Action or its Digest was expected)",
            payload.type_url
        )));
    };
    let action = re::Action::decode(bytes.as_slice())
        .map_err(|e| WorkerError::Invalid(format!("the Action: {e}")))?;
    Ok((Sha::of_bytes(&bytes), action))
}

/// `p` as normal components below the input root, or an error.
fn relative(p: &str, what: &str) -> Result<PathBuf> {
    let path = Path::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(WorkerError::Invalid(format!(
                    "{what} {p:?} must be a relative path without `..`"
                )))
            }
        }
    }
    Ok(out)
}

fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// An Action's directory below `STORE/worker` (`action-*`), locked
/// (`flock` on the directory) while this lives, so that a worker that
/// starts can tell a live worker's directory from a killed one's.
struct Scratch {
    /// Dropped (removed) before the lock is released.
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

/// A directory `action-*` that no worker has locked and that is older than
/// this is a killed worker's: its worker locks it right after making it.
const STALE_ACTION_DIR: Duration = Duration::from_secs(60);

impl Scratch {
    fn new(parent: &Path) -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("action-")
            .tempdir_in(parent)
            .map_err(WorkerError::io("cannot create a directory in", parent))?;
        let lock =
            open_dir_nofollow(dir.path()).map_err(WorkerError::io("cannot open", dir.path()))?;
        // Blocking: a worker that sweeps holds a young directory's lock
        // only for a moment, and leaves it.
        flock(&lock, libc::LOCK_EX).map_err(WorkerError::io("cannot lock", dir.path()))?;
        Ok(Scratch { dir, _lock: lock })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remove the directory (still locked while it goes).
    fn remove(&self) {
        let _ = cas_store::remove_tree(self.dir.path());
    }
}

fn open_dir_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn flock(f: &std::fs::File, op: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Remove the `action-*` directories in `parent` that killed workers left:
/// no worker holds their lock, and they have not changed for `older_than`
/// (a directory another worker has just made, not yet locked, stays).
fn sweep_stale(parent: &Path, older_than: Duration) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for e in entries.flatten() {
        if !e.file_name().as_encoded_bytes().starts_with(b"action-")
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let path = e.path();
        let Ok(dir) = open_dir_nofollow(&path) else {
            continue;
        };
        if flock(&dir, libc::LOCK_EX | libc::LOCK_NB).is_err() {
            continue;
        }
        let Ok(meta) = dir.metadata() else {
            continue;
        };
        let changed = meta.mtime().max(meta.ctime());
        if now.saturating_sub(changed) < i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX) {
            continue;
        }
        let _ = cas_store::remove_tree(&path);
    }
}

/// Run the Action of `payload`; `cancel` stops it (lease cancelled, worker
/// terminating). `bot` names this worker in the result's metadata.
pub fn run(
    store: &Store,
    remote: &ReapiRemote,
    memo: &mut Memo,
    payload: &Any,
    cancel: &Cancel,
    bot: &str,
) -> Result<Ran> {
    let queued = SystemTime::now();
    let (action_sha, action) = action_of(remote, payload)?;
    let command_sha = action
        .command_digest
        .as_ref()
        .and_then(Sha::from_proto)
        .ok_or_else(|| WorkerError::Invalid("the Action has no command digest".into()))?;
    let command = re::Command::decode(remote.read_verified(&command_sha, MAX_MESSAGE)?.as_slice())
        .map_err(|e| WorkerError::Invalid(format!("the Command: {e}")))?;
    if command.arguments.is_empty() {
        return Err(WorkerError::Invalid("the Command has no arguments".into()));
    }
    let root_sha = action
        .input_root_digest
        .as_ref()
        .and_then(Sha::from_proto)
        .ok_or_else(|| WorkerError::Invalid("the Action has no input root".into()))?;

    let fetch_start = SystemTime::now();
    let mut fetch = Fetch {
        store,
        remote,
        memo,
        read: std::collections::HashMap::new(),
        downloaded: 0,
        downloaded_bytes: 0,
    };
    let tree = fetch.tree(root_sha)?;
    let (downloaded, downloaded_bytes) = (fetch.downloaded, fetch.downloaded_bytes);
    let fetch_end = SystemTime::now();

    let scratch_parent = store.layout().worker();
    std::fs::create_dir_all(&scratch_parent)
        .map_err(WorkerError::io("cannot create", &scratch_parent))?;
    // Directories of Actions whose worker was killed: removed once per
    // process, before its first Action.
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep_stale(&scratch_parent, STALE_ACTION_DIR));
    let scratch = Scratch::new(&scratch_parent)?;
    let root = scratch.path().join("root");
    let workdir = relative(&command.working_directory, "the working directory")?;
    #[allow(
        deprecated,
        reason = "REAPI before 2.1 names outputs in output_files and output_directories"
    )]
    let outputs: Vec<String> = if command.output_paths.is_empty() {
        command
            .output_files
            .iter()
            .chain(&command.output_directories)
            .cloned()
            .collect()
    } else {
        command.output_paths.clone()
    };
    let mut output_rels = Vec::new();
    for o in &outputs {
        let rel = workdir.join(relative(o, "the output path")?);
        if rel.as_os_str().is_empty() {
            return Err(WorkerError::Invalid(
                "an output path is the input root".into(),
            ));
        }
        output_rels.push((o.clone(), rel));
    }

    // The root: layered (an overlay of cached layers under a writable one)
    // where every output is new or an empty directory of the input root and
    // no output or the working directory lies below a file or symlink of it;
    // otherwise a private copy.
    let stage_start = SystemTime::now();
    let mut layerable = !matches!(lookup(store, &tree, &workdir)?, Found::Other);
    for (_, rel) in &output_rels {
        layerable &= matches!(
            lookup(store, &tree, rel)?,
            Found::Absent | Found::Dir { empty: true, .. }
        );
    }
    let layered = if layerable {
        memo.layers.prepare(store, &tree, scratch.path())?
    } else {
        None
    };
    std::fs::create_dir(&root).map_err(WorkerError::io("cannot create", &root))?;
    // Where the Action's files are on the host after the run.
    let top = if let Some(l) = &layered {
        l.upper.clone()
    } else {
        store.materialize(&tree, &root, Method::ReflinkOrCopy)?;
        lower::set_input_times(&root)?;
        root.clone()
    };
    // The worker makes the outputs' parent directories (REAPI) and the
    // working directory.
    let mut dirs: Vec<PathBuf> = output_rels
        .iter()
        .filter_map(|(_, rel)| rel.parent().map(Path::to_path_buf))
        .collect();
    dirs.push(workdir.clone());
    for d in &dirs {
        if layered.is_some() {
            make_dirs(store, &tree, &top, d)?;
        } else {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(WorkerError::io("cannot create", &p))?;
        }
    }
    let stage_end = SystemTime::now();
    let cwd = Path::new("/").join(&workdir);

    let mut spec = SandboxSpec::new(&root);
    match &layered {
        Some(l) => {
            spec.layers = l.layers.clone();
            spec.upper = Some(WritableLayer {
                upper: l.upper.clone(),
                work: l.work.clone(),
            });
        }
        None => spec.root_writable = true,
    }
    spec.cwd = cwd;
    spec.env = command
        .environment_variables
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    let log_path = scratch.path().join("log");
    let log =
        std::fs::File::create(&log_path).map_err(WorkerError::io("cannot create", &log_path))?;

    // The Action's timeout, if it has one.
    let timer = action.timeout.as_ref().map(|t| {
        let limit = Duration::new(
            u64::try_from(t.seconds).unwrap_or(0),
            u32::try_from(t.nanos).unwrap_or(0),
        );
        let c = cancel.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if rx.recv_timeout(limit).is_err() {
                c.cancel();
            }
        });
        tx
    });
    let exec_start = SystemTime::now();
    let outcome = cas_sandbox::run(&spec, &command.arguments, Io::Log(log), cancel)?;
    let exec_end = SystemTime::now();
    drop(timer);
    let exit_code = match outcome.status {
        Exit::Code(c) => c,
        Exit::Signal(s) => 128 + s,
    };
    if outcome.cancelled {
        return Err(WorkerError::Session(
            "the action was stopped (lease cancelled, timeout or worker terminating)".into(),
        ));
    }

    // Outputs: into the store, then to the server.
    let mut result = re::ActionResult {
        exit_code,
        ..Default::default()
    };
    for (name, rel) in &output_rels {
        // Read below `top` without following a symlink: the Action made
        // everything there, and a symlink it left points wherever it likes
        // on this machine.
        let output = match outputs::read(store, &top, rel)? {
            outputs::Output::Absent { hidden } => {
                // Layered: an empty directory of the input root that the
                // Action left alone is still there, and empty.
                if layered.is_none()
                    || hidden
                    || !matches!(lookup(store, &tree, rel)?, Found::Dir { empty: true, .. })
                {
                    continue;
                }
                outputs::Output::Dir(store.empty_tree()?)
            }
            o => o,
        };
        match output {
            outputs::Output::Absent { .. } => {}
            outputs::Output::Symlink(target) => {
                result.output_symlinks.push(re::OutputSymlink {
                    path: name.clone(),
                    target: String::from_utf8_lossy(&target).into_owned(),
                    node_properties: None,
                });
            }
            outputs::Output::Dir(t) => {
                let (tree_sha, root_dir) = remote.upload_tree(store, &t)?;
                result.output_directories.push(re::OutputDirectory {
                    path: name.clone(),
                    tree_digest: Some(tree_sha.proto()),
                    is_topologically_sorted: false,
                    root_directory_digest: Some(root_dir.proto()),
                });
            }
            outputs::Output::File { blob, mode } => {
                let object = store.object_path(blob.digest());
                let sha = remote.sha_of_file(blob.digest(), &object)?;
                remote.upload_missing(store, &[(sha, *blob.digest())], &[])?;
                result.output_files.push(re::OutputFile {
                    path: name.clone(),
                    digest: Some(sha.proto()),
                    is_executable: mode & 0o111 != 0,
                    contents: Vec::new(),
                    node_properties: Some(re::NodeProperties {
                        unix_mode: Some(UInt32Value { value: mode }),
                        ..Default::default()
                    }),
                });
            }
        }
    }
    // At most MAX_LOG bytes are read, however much the Action printed.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(&log_path).map_err(WorkerError::io("cannot read", &log_path))?,
            MAX_LOG,
        ),
        &mut bytes,
    )
    .map_err(WorkerError::io("cannot read", &log_path))?;
    if !bytes.is_empty() {
        result.stdout_digest = Some(remote.upload_bytes(bytes)?.proto());
    }
    let done = SystemTime::now();
    result.execution_metadata = Some(re::ExecutedActionMetadata {
        worker: bot.to_string(),
        queued_timestamp: Some(timestamp(queued)),
        worker_start_timestamp: Some(timestamp(queued)),
        input_fetch_start_timestamp: Some(timestamp(fetch_start)),
        input_fetch_completed_timestamp: Some(timestamp(fetch_end)),
        execution_start_timestamp: Some(timestamp(exec_start)),
        execution_completed_timestamp: Some(timestamp(exec_end)),
        output_upload_start_timestamp: Some(timestamp(exec_end)),
        output_upload_completed_timestamp: Some(timestamp(done)),
        worker_completed_timestamp: Some(timestamp(done)),
        ..Default::default()
    });
    scratch.remove();
    let between = |a: SystemTime, b: SystemTime| {
        u64::try_from(b.duration_since(a).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
    };
    Ok(Ran {
        fetch_ms: between(queued, exec_start),
        stage_ms: between(stage_start, stage_end),
        layered: layered.is_some(),
        run_ms: between(exec_start, exec_end),
        upload_ms: between(exec_end, done),
        result,
        action: action_sha,
        downloaded,
        downloaded_bytes,
    })
}

/// Reading an Action's outputs on this machine, where every symlink it left
/// points wherever it likes (`ln -s /home/me /inst` makes `top/inst/out`
/// the worker host's `/home/me/out`). Every path below `top` is looked up
/// one component at a time from a descriptor of its directory, and a
/// symlink is never followed: on the way to an output it means the output
/// is absent, inside an output directory it is stored as a symlink. Files
/// are copied into the store, never moved: what is read is never removed.
///
/// The descriptors are reached as `/proc/self/fd/N/NAME`: the kernel
/// resolves `/proc/self/fd/N` to that very directory, whatever happened to
/// its path, so a lookup never starts again from `top`.
mod outputs {
    use std::ffi::{OsStr, OsString};
    use std::fs::{self, File, OpenOptions};
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    use cas_store::{BlobDigest, Entry, IngestMode, Store, Tree, TreeDigest};

    use crate::error::{Result, WorkerError};

    /// Directories nested deeper than this in one output are refused (the
    /// walk recurses once per level, each level holding a descriptor).
    const MAX_DEPTH: usize = 256;
    /// A directory with at least this many files stores them on several
    /// threads.
    const PARALLEL_FILES: usize = 8;

    /// What the Action left at one output path.
    pub(super) enum Output {
        /// Nothing there, or a whiteout or a special file; `hidden`: the
        /// writable layer hides what the layers below have there (a
        /// whiteout, an opaque directory, or a file or symlink on the way).
        Absent {
            hidden: bool,
        },
        Symlink(Vec<u8>),
        Dir(TreeDigest),
        File {
            blob: BlobDigest,
            mode: u32,
        },
    }

    /// A directory reached without following a symlink, and its path for
    /// messages.
    struct Dir {
        file: File,
        path: PathBuf,
    }

    impl Dir {
        /// `NAME` in this directory, as a path the kernel resolves from
        /// this descriptor.
        fn at(&self, name: &OsStr) -> PathBuf {
            self.here().join(name)
        }

        /// This directory, as a path the kernel resolves from its descriptor.
        fn here(&self) -> PathBuf {
            PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
        }

        /// The entry `name`, not followed if it is a symlink. `None`: absent.
        fn stat(&self, name: &OsStr) -> Result<Option<fs::Metadata>> {
            match fs::symlink_metadata(self.at(name)) {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(WorkerError::io("cannot read", &self.path.join(name))(e)),
            }
        }

        /// The directory `name` (never through a symlink: `O_NOFOLLOW`).
        fn open(&self, name: &OsStr) -> Result<Dir> {
            let path = self.path.join(name);
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(self.at(name))
                .map_err(WorkerError::io("cannot open", &path))?;
            Ok(Dir { file, path })
        }

        /// An overlay's opaque directory (`user.overlay.opaque` = `y`).
        fn opaque(&self) -> bool {
            let mut buf = [0u8; 4];
            // SAFETY: a descriptor we own, a NUL-terminated name and a
            // buffer of the given length.
            let n = unsafe {
                libc::fgetxattr(
                    self.file.as_raw_fd(),
                    c"user.overlay.opaque".as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            n > 0 && buf[0] == b'y'
        }
    }

    /// Read the output at `rel` (normal components only, not empty) below
    /// `top`, storing what it holds.
    pub(super) fn read(store: &Store, top: &Path, rel: &Path) -> Result<Output> {
        let names: Vec<&OsStr> = rel.iter().collect();
        let Some((last, parents)) = names.split_last() else {
            return Err(WorkerError::Invalid(
                "an output path is the input root".into(),
            ));
        };
        let mut dir = Dir {
            file: OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(top)
                .map_err(WorkerError::io("cannot open", top))?,
            path: top.to_path_buf(),
        };
        let mut hidden = false;
        for name in parents {
            match dir.stat(name)? {
                None => return Ok(Output::Absent { hidden }),
                Some(m) if m.is_dir() => {
                    dir = dir.open(name)?;
                    hidden |= dir.opaque();
                }
                // A symlink, a file or a whiteout: nothing below it is read.
                Some(_) => return Ok(Output::Absent { hidden: true }),
            }
        }
        let Some(meta) = dir.stat(last)? else {
            return Ok(Output::Absent { hidden });
        };
        let ft = meta.file_type();
        Ok(if ft.is_symlink() {
            let target = fs::read_link(dir.at(last))
                .map_err(WorkerError::io("cannot read", &dir.path.join(last)))?;
            Output::Symlink(target.into_os_string().into_vec())
        } else if ft.is_dir() {
            Output::Dir(tree(store, &dir.open(last)?, 0)?)
        } else if ft.is_file() {
            let (blob, _) = store.put_file(&dir.at(last), IngestMode::Copy)?;
            Output::File {
                blob,
                mode: meta.mode() & 0o7777,
            }
        } else {
            Output::Absent { hidden: true }
        })
    }

    /// Store the directory `dir` as a tree (its own mode is not recorded).
    fn tree(store: &Store, dir: &Dir, depth: usize) -> Result<TreeDigest> {
        if depth > MAX_DEPTH {
            return Err(WorkerError::Invalid(format!(
                "{}: an output nests directories more than {MAX_DEPTH} deep",
                dir.path.display()
            )));
        }
        let listing =
            fs::read_dir(dir.here()).map_err(WorkerError::io("cannot read", &dir.path))?;
        let mut entries = Vec::new();
        let mut files: Vec<(OsString, u32)> = Vec::new();
        for e in listing {
            let e = e.map_err(WorkerError::io("cannot read", &dir.path))?;
            let name = e.file_name();
            let Some(meta) = dir.stat(&name)? else {
                continue;
            };
            let ft = meta.file_type();
            let mode = meta.mode() & 0o7777;
            if ft.is_dir() {
                let sub = tree(store, &dir.open(&name)?, depth + 1)?;
                entries.push(Entry::dir(name.as_bytes(), mode, sub));
            } else if ft.is_symlink() {
                let target = fs::read_link(dir.at(&name))
                    .map_err(WorkerError::io("cannot read", &dir.path.join(&name)))?;
                entries.push(Entry::symlink(
                    name.as_bytes(),
                    target.into_os_string().into_vec(),
                ));
            } else if ft.is_file() {
                files.push((name, mode));
            } else {
                let kind = if ft.is_fifo() {
                    "FIFO"
                } else if ft.is_socket() {
                    "socket"
                } else {
                    "device"
                };
                return Err(WorkerError::Invalid(format!(
                    "{}: a {kind} cannot be an output",
                    dir.path.join(&name).display()
                )));
            }
        }
        for ((name, mode), (blob, size)) in files.iter().zip(put_files(store, dir, &files)?) {
            entries.push(Entry::file(name.as_bytes(), *mode, blob, size));
        }
        Ok(store.put_tree(&Tree::new(entries)?)?)
    }

    /// Copy the regular files `files` of `dir` into the store (on several
    /// threads when there are many).
    fn put_files(
        store: &Store,
        dir: &Dir,
        files: &[(OsString, u32)],
    ) -> Result<Vec<(BlobDigest, u64)>> {
        let put = |name: &OsStr| -> Result<(BlobDigest, u64)> {
            Ok(store.put_file(&dir.at(name), IngestMode::Copy)?)
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        if files.len() < PARALLEL_FILES || threads < 2 {
            return files.iter().map(|(n, _)| put(n)).collect();
        }
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().map(|(n, _)| put(n)).collect::<Vec<_>>()))
                .collect();
            let mut out = Vec::with_capacity(files.len());
            for h in handles {
                let part = h.join().map_err(|_| {
                    WorkerError::Session("a thread storing outputs panicked".into())
                })?;
                for r in part {
                    out.push(r?);
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use cas_store::{EntryKind, Store};

    use super::outputs::{read, Output};

    fn setup() -> (tempfile::TempDir, Store) {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        std::fs::create_dir_all(t.path().join("host/out")).unwrap();
        std::fs::write(t.path().join("host/out/canary"), "precious").unwrap();
        std::fs::create_dir_all(t.path().join("top")).unwrap();
        (t, store)
    }

    fn canary_intact(t: &Path) {
        assert_eq!(
            std::fs::read_to_string(t.join("host/out/canary")).unwrap(),
            "precious"
        );
    }

    #[test]
    fn a_symlink_on_the_way_to_an_output_is_not_followed() {
        let (t, store) = setup();
        let top = t.path().join("top");
        symlink(t.path().join("host"), top.join("inst")).unwrap();
        let out = read(&store, &top, Path::new("inst/out")).unwrap();
        assert!(matches!(out, Output::Absent { hidden: true }));
        // deeper, below a real directory
        std::fs::create_dir_all(top.join("a")).unwrap();
        symlink(t.path().join("host"), top.join("a/b")).unwrap();
        let out = read(&store, &top, Path::new("a/b/out/canary")).unwrap();
        assert!(matches!(out, Output::Absent { hidden: true }));
        canary_intact(t.path());
        // the output itself a symlink: a symlink, not what it points to
        let Output::Symlink(target) = read(&store, &top, Path::new("inst")).unwrap() else {
            panic!("a symlink")
        };
        assert_eq!(target, t.path().join("host").as_os_str().as_encoded_bytes());
    }

    #[test]
    fn an_output_directory_is_copied_and_its_symlinks_are_stored_as_symlinks() {
        let (t, store) = setup();
        let out = t.path().join("top/inst/out");
        std::fs::create_dir_all(out.join("d")).unwrap();
        std::fs::write(out.join("a"), "a").unwrap();
        for i in 0..20 {
            std::fs::write(out.join("d").join(format!("f{i}")), format!("{i}")).unwrap();
        }
        symlink(t.path().join("host/out"), out.join("link")).unwrap();
        let Output::Dir(tree) = read(&store, &t.path().join("top"), Path::new("inst/out")).unwrap()
        else {
            panic!("a directory")
        };
        let walked = store.walk(&tree).unwrap();
        let names: Vec<String> = walked
            .iter()
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(names.len(), 1 + 1 + 20 + 1, "{names:?}");
        assert!(!names.iter().any(|n| n.contains("canary")), "{names:?}");
        let link = walked.iter().find(|(p, _)| p == b"link").unwrap();
        assert!(matches!(link.1.kind, EntryKind::Symlink { .. }));
        // copied, not moved
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "a");
        assert_eq!(std::fs::read_to_string(out.join("d/f7")).unwrap(), "7");
        canary_intact(t.path());
        // a file output keeps its mode
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out.join("a"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let Output::File { mode, .. } =
            read(&store, &t.path().join("top"), Path::new("inst/out/a")).unwrap()
        else {
            panic!("a file")
        };
        assert_eq!(mode, 0o750);
    }

    #[test]
    fn only_unlocked_action_directories_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("worker");
        std::fs::create_dir_all(&parent).unwrap();
        let live = super::Scratch::new(&parent).unwrap();
        std::fs::write(live.path().join("log"), "running").unwrap();
        let dead = parent.join("action-dead");
        std::fs::create_dir_all(dead.join("root/usr")).unwrap();
        let other = parent.join("layers");
        std::fs::create_dir_all(&other).unwrap();
        super::sweep_stale(&parent, std::time::Duration::ZERO);
        assert!(!dead.exists(), "a directory no worker holds is removed");
        assert!(live.path().join("log").exists(), "a live worker's stays");
        assert!(other.exists());
        // a young one stays, locked or not
        std::fs::create_dir_all(&dead).unwrap();
        super::sweep_stale(&parent, super::STALE_ACTION_DIR);
        assert!(dead.exists());
        live.remove();
        assert!(!live.path().exists());
    }

    #[test]
    fn a_fifo_in_an_output_is_refused_without_blocking() {
        let (t, store) = setup();
        let out = t.path().join("top/out");
        std::fs::create_dir_all(&out).unwrap();
        let c = std::ffi::CString::new(out.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(read(&store, &t.path().join("top"), Path::new("out")).is_err());
        // the FIFO as the output itself: not an output
        assert!(matches!(
            read(&store, &t.path().join("top"), Path::new("out/fifo")).unwrap(),
            Output::Absent { .. }
        ));
    }
}

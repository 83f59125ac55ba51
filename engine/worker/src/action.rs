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
use cas_store::{IngestMode, Method, Store};
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

    let scratch_parent = store.root().join("worker");
    std::fs::create_dir_all(&scratch_parent)
        .map_err(WorkerError::io("cannot create", &scratch_parent))?;
    let scratch = tempfile::Builder::new()
        .prefix("action-")
        .tempdir_in(&scratch_parent)
        .map_err(WorkerError::io(
            "cannot create a directory in",
            &scratch_parent,
        ))?;
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
        let path = &top.join(rel);
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) if lower::is_whiteout(&m) => continue,
            Ok(m) => m,
            // Layered: an empty directory of the input root that the
            // Action left alone is still there, and empty.
            Err(_) if layered.is_some() && !lower::hidden(&top, rel) => {
                if !matches!(lookup(store, &tree, rel)?, Found::Dir { empty: true, .. }) {
                    continue;
                }
                std::fs::create_dir_all(path).map_err(WorkerError::io("cannot create", path))?;
                std::fs::symlink_metadata(path).map_err(WorkerError::io("cannot read", path))?
            }
            Err(_) => continue,
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).map_err(WorkerError::io("cannot read", path))?;
            result.output_symlinks.push(re::OutputSymlink {
                path: name.clone(),
                target: target.to_string_lossy().into_owned(),
                node_properties: None,
            });
        } else if meta.is_dir() {
            let t = store.ingest(path, IngestMode::Move)?.tree;
            let (tree_sha, root_dir) = remote.upload_tree(store, &t)?;
            result.output_directories.push(re::OutputDirectory {
                path: name.clone(),
                tree_digest: Some(tree_sha.proto()),
                is_topologically_sorted: false,
                root_directory_digest: Some(root_dir.proto()),
            });
        } else if meta.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            let (blob, _) = store.put_file(path, IngestMode::Move)?;
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
    let mut bytes = std::fs::read(&log_path).map_err(WorkerError::io("cannot read", &log_path))?;
    bytes.truncate(usize::try_from(MAX_LOG).unwrap_or(usize::MAX));
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
    let _ = cas_store::remove_tree(scratch.path());
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

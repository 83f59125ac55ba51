//! Remote execution (spec/remote.md, "Remote execution"): one cas step as
//! one REAPI Action. The input root is the step's sysroot (the merged tree
//! of its staged dependencies) with its staged sources grafted at the build
//! root and an empty install root; the Command runs the step's phases with
//! the step's environment and working directory, and names the install root
//! as its one output directory. What comes back is written into a local
//! directory, verified blob by blob (SHA-256), and from there the engine
//! ingests and records it as it does a local build.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use cas_store::tree::{EntryKind, Tree};
use cas_store::{Digest, RemoteError, Store, TreeDigest};
use prost::Message;

use crate::cache::ReapiRemote;
use crate::client::Source;
use crate::digests::Sha;

/// The largest REAPI `Tree` of outputs read back.
const MAX_TREE_MESSAGE: u64 = 256 << 20;
/// Blobs up to this size are uploaded in a batch call.
const BATCH_SMALL: u64 = 256 << 10;
/// The largest stdout or stderr read back.
const MAX_OUTPUT_STREAM: u64 = 256 << 20;

/// One step to run remotely.
pub struct Step<'a> {
    /// The sysroot: `/` of the input root.
    pub sysroot: TreeDigest,
    /// Trees put at absolute paths of the input root (sources at the build
    /// root, the empty install root), replacing what the sysroot has there.
    pub grafts: Vec<(String, TreeDigest)>,
    pub argv: Vec<String>,
    pub env: &'a BTreeMap<String, String>,
    /// Absolute working directory.
    pub cwd: &'a str,
    /// Absolute path of the output directory (the install root).
    pub output: &'a str,
    /// Platform properties (name, value).
    pub platform: Vec<(String, String)>,
}

/// What a remote execution gave.
#[derive(Debug)]
pub struct Outcome {
    pub exit_code: i32,
    /// Which worker ran it, as the server says.
    pub worker: String,
    /// The server answered from its own action cache.
    pub cached: bool,
    /// Blobs uploaded for the input root (those the server lacked).
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}

/// An input root under construction: the Directory messages and the blobs
/// they name.
struct Merkle<'a> {
    store: &'a Store,
    remote: &'a ReapiRemote,
    files: Vec<(Sha, Digest)>,
    dirs: Vec<(Sha, Vec<u8>)>,
    seen: HashSet<Sha>,
    memo: HashMap<TreeDigest, Sha>,
}

fn utf8(name: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(name.to_vec()).map_err(|_| {
        format!(
            "{what} {:?} is not UTF-8: REAPI names must be",
            String::from_utf8_lossy(name)
        )
    })
}

impl<'a> Merkle<'a> {
    fn new(store: &'a Store, remote: &'a ReapiRemote) -> Merkle<'a> {
        Merkle {
            store,
            remote,
            files: Vec::new(),
            dirs: Vec::new(),
            seen: HashSet::new(),
            memo: HashMap::new(),
        }
    }

    /// The Directory of `tree` (none: an empty directory) with `grafts`
    /// (path components relative to it → tree) applied.
    fn dir(
        &mut self,
        tree: Option<&TreeDigest>,
        grafts: &[(Vec<String>, TreeDigest)],
    ) -> Result<Sha, String> {
        if let Some((_, t)) = grafts.iter().find(|(c, _)| c.is_empty()) {
            return self.dir(Some(&t.clone()), &[]);
        }
        if grafts.is_empty() {
            if let Some(t) = tree {
                if let Some(s) = self.memo.get(t) {
                    return Ok(*s);
                }
            }
        }
        let entries = match tree {
            Some(t) => self.store.get_tree(t).map_err(|e| e.to_string())?.entries,
            None => Tree::default().entries,
        };
        let mut msg = re::Directory::default();
        let mut grafted: BTreeMap<String, Vec<(Vec<String>, TreeDigest)>> = BTreeMap::new();
        for (c, t) in grafts {
            grafted
                .entry(c[0].clone())
                .or_default()
                .push((c[1..].to_vec(), *t));
        }
        for e in &entries {
            let name = utf8(&e.name, "the file name")?;
            if let Some(g) = grafted.remove(&name) {
                let sub = match &e.kind {
                    EntryKind::Dir { digest } => Some(*digest),
                    _ if g.iter().any(|(c, _)| c.is_empty()) => None,
                    _ => {
                        return Err(format!(
                        "{name} is not a directory in the sysroot, and a directory is put below it"
                    ))
                    }
                };
                let d = self.dir(sub.as_ref(), &g)?;
                msg.directories.push(re::DirectoryNode {
                    name,
                    digest: Some(d.proto()),
                });
                continue;
            }
            match &e.kind {
                EntryKind::File { digest, size } => {
                    let path = self.store.object_path(&digest.0);
                    let sha = self
                        .remote
                        .sha_of_file(&digest.0, &path)
                        .map_err(|e| e.to_string())?;
                    if sha.size != *size {
                        return Err(format!(
                            "object {} has {} bytes, its tree says {size}",
                            digest.0, sha.size
                        ));
                    }
                    if self.seen.insert(sha) {
                        self.files.push((sha, digest.0));
                    }
                    msg.files.push(re::FileNode {
                        name,
                        digest: Some(sha.proto()),
                        is_executable: e.mode & 0o111 != 0,
                        node_properties: Some(re::NodeProperties {
                            unix_mode: Some(bazel_remote_apis::google::protobuf::UInt32Value {
                                value: e.mode,
                            }),
                            ..Default::default()
                        }),
                    });
                }
                EntryKind::Dir { digest } => {
                    let d = self.dir(Some(digest), &[])?;
                    msg.directories.push(re::DirectoryNode {
                        name,
                        digest: Some(d.proto()),
                    });
                }
                EntryKind::Symlink { target } => {
                    msg.symlinks.push(re::SymlinkNode {
                        name,
                        target: utf8(target, "the symlink target")?,
                        node_properties: None,
                    });
                }
            }
        }
        for (name, g) in grafted {
            let d = self.dir(None, &g)?;
            msg.directories.push(re::DirectoryNode {
                name,
                digest: Some(d.proto()),
            });
        }
        msg.directories.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = msg.encode_to_vec();
        let sha = Sha::of_bytes(&bytes);
        if self.seen.insert(sha) {
            self.dirs.push((sha, bytes));
        }
        if grafts.is_empty() {
            if let Some(t) = tree {
                self.memo.insert(*t, sha);
            }
        }
        Ok(sha)
    }
}

/// `s` in single quotes for sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `/a/b` → `["a", "b"]`.
fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

impl ReapiRemote {
    /// Run `step` on the server's Execution service; its output directory is
    /// written into `out` (which must exist, empty) and its stdout and
    /// stderr appended to `log`.
    pub fn execute(
        &self,
        store: &Store,
        step: &Step<'_>,
        out: &Path,
        log: &mut File,
    ) -> Result<Outcome, RemoteError> {
        let fail = |m: String| RemoteError::Transport {
            url: self.url_str().to_string(),
            message: m,
        };
        // The input root.
        let grafts: Vec<(Vec<String>, TreeDigest)> = step
            .grafts
            .iter()
            .map(|(p, t)| (components(p), *t))
            .collect();
        let mut m = Merkle::new(store, self);
        let root = m
            .dir(Some(&step.sysroot), &grafts)
            .map_err(|e| fail(format!("the input root: {e}")))?;

        // The Command and the Action.
        let mut platform: Vec<re::platform::Property> = step
            .platform
            .iter()
            .map(|(n, v)| re::platform::Property {
                name: n.clone(),
                value: v.clone(),
            })
            .collect();
        platform.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
        // The working directory is the input root's top, as output paths
        // are relative to it; the script changes into the step's own.
        let mut argv = step.argv.clone();
        if argv.len() >= 3 && argv[1] == "-c" {
            argv[2] = format!("cd {} || exit 1\n{}", shell_quote(step.cwd), argv[2]);
        }
        #[allow(
            deprecated,
            reason = "servers before REAPI 2.1 (buildbox-casd 1.4, BuildGrid 0.4) read output_directories and the Command's platform"
        )]
        let command = re::Command {
            arguments: argv,
            environment_variables: step
                .env
                .iter()
                .map(|(k, v)| re::command::EnvironmentVariable {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            output_directories: vec![components(step.output).join("/")],
            output_paths: vec![components(step.output).join("/")],
            platform: Some(re::Platform {
                properties: platform.clone(),
            }),
            working_directory: String::new(),
            output_node_properties: vec!["unix_mode".to_string()],
            ..Default::default()
        }
        .encode_to_vec();
        let command_sha = Sha::of_bytes(&command);
        let action = re::Action {
            command_digest: Some(command_sha.proto()),
            input_root_digest: Some(root.proto()),
            platform: Some(re::Platform {
                properties: platform,
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let action_sha = Sha::of_bytes(&action);

        // Upload what the server lacks: files, directories, command, action.
        let mut blobs = m.dirs.clone();
        blobs.push((command_sha, command.clone()));
        blobs.push((action_sha, action.clone()));
        let (uploaded, uploaded_bytes) = self.upload_missing(store, &m.files, &blobs)?;

        // Run it.
        let resp = self.client().execute(&action_sha)?;
        if let Some(s) = resp.status.as_ref().filter(|s| s.code != 0) {
            return Err(fail(format!("Execute: status {}: {}", s.code, s.message)));
        }
        let result = resp
            .result
            .ok_or_else(|| fail("Execute: the answer has no result".into()))?;
        let worker = result
            .execution_metadata
            .as_ref()
            .map(|m| m.worker.clone())
            .unwrap_or_default();

        // The log: stdout, then stderr.
        for (raw, digest) in [
            (&result.stdout_raw, &result.stdout_digest),
            (&result.stderr_raw, &result.stderr_digest),
        ] {
            let bytes = if raw.is_empty() {
                match digest.as_ref().and_then(Sha::from_proto) {
                    Some(s) if s.size > 0 => self.read_verified(&s, MAX_OUTPUT_STREAM)?,
                    _ => Vec::new(),
                }
            } else {
                raw.clone()
            };
            log.write_all(&bytes).map_err(|e| RemoteError::Io {
                url: self.url_str().to_string(),
                op: "write",
                path: "(build log)".into(),
                source: e,
            })?;
        }

        // The output directory.
        if result.exit_code == 0 {
            let want = components(step.output).join("/");
            let dir = result
                .output_directories
                .iter()
                .find(|d| components(&d.path).join("/") == want)
                .ok_or_else(|| {
                    let got: Vec<&str> = result
                        .output_directories
                        .iter()
                        .map(|d| d.path.as_str())
                        .collect();
                    fail(format!(
                        "the result has no output directory {want} (it has {got:?})"
                    ))
                })?;
            let tree_sha = dir
                .tree_digest
                .as_ref()
                .and_then(Sha::from_proto)
                .ok_or_else(|| fail("the output directory has no SHA-256 tree digest".into()))?;
            let bytes = self.read_verified(&tree_sha, MAX_TREE_MESSAGE)?;
            let tree = re::Tree::decode(bytes.as_slice())
                .map_err(|e| fail(format!("the output Tree: {e}")))?;
            let children: HashMap<Sha, &re::Directory> = tree
                .children
                .iter()
                .map(|d| (Sha::of_bytes(&d.encode_to_vec()), d))
                .collect();
            let root = tree
                .root
                .as_ref()
                .ok_or_else(|| fail("the output Tree has no root".into()))?;
            let deadline = Instant::now() + Duration::from_secs(600);
            self.write_directory(root, &children, out, deadline, 0)?;
        }
        Ok(Outcome {
            exit_code: result.exit_code,
            worker,
            cached: resp.cached_result,
            uploaded,
            uploaded_bytes,
        })
    }

    /// Upload those of `files` (store objects) and `blobs` (bytes) that the
    /// server lacks; returns how many and how many bytes.
    pub fn upload_missing(
        &self,
        store: &Store,
        files: &[(Sha, Digest)],
        blobs: &[(Sha, Vec<u8>)],
    ) -> Result<(usize, u64), RemoteError> {
        let mut all: Vec<Sha> = files.iter().map(|(s, _)| *s).collect();
        all.extend(blobs.iter().map(|(s, _)| *s));
        let missing: HashSet<Sha> = self.client().find_missing(&all)?.into_iter().collect();
        let mut small: Vec<(Sha, Vec<u8>)> = Vec::new();
        let mut uploaded = 0usize;
        let mut uploaded_bytes = 0u64;
        let mut sent = HashSet::new();
        for (sha, d) in files {
            if !missing.contains(sha) || !sent.insert(*sha) {
                continue;
            }
            uploaded += 1;
            uploaded_bytes += sha.size;
            let path = store.object_path(d);
            if sha.size <= BATCH_SMALL {
                let bytes = std::fs::read(&path).map_err(|e| RemoteError::Io {
                    url: self.url_str().to_string(),
                    op: "read",
                    path: path.clone(),
                    source: e,
                })?;
                small.push((*sha, bytes));
            } else {
                self.client().write_blob(sha, Source::File(&path))?;
            }
        }
        for (sha, bytes) in blobs {
            if missing.contains(sha) && sent.insert(*sha) {
                uploaded += 1;
                uploaded_bytes += sha.size;
                small.push((*sha, bytes.clone()));
            }
        }
        self.client().write_batch(&small)?;
        Ok((uploaded, uploaded_bytes))
    }

    /// `tree` (in `store`) as an REAPI `Tree` message, uploaded with every
    /// file it names where the server lacks them. Returns the digest of the
    /// Tree message and of its root Directory.
    pub fn upload_tree(&self, store: &Store, tree: &TreeDigest) -> Result<(Sha, Sha), RemoteError> {
        let mut m = Merkle::new(store, self);
        let fail = |m: String| RemoteError::Transport {
            url: self.url_str().to_string(),
            message: m,
        };
        let root = m
            .dir(Some(tree), &[])
            .map_err(|e| fail(format!("an output tree: {e}")))?;
        let decode = |bytes: &[u8]| {
            re::Directory::decode(bytes).map_err(|e| fail(format!("a Directory: {e}")))
        };
        let mut message = re::Tree::default();
        for (sha, bytes) in &m.dirs {
            if *sha == root {
                message.root = Some(decode(bytes)?);
            } else {
                message.children.push(decode(bytes)?);
            }
        }
        let bytes = message.encode_to_vec();
        let tree_sha = Sha::of_bytes(&bytes);
        let mut blobs = m.dirs.clone();
        blobs.push((tree_sha, bytes));
        self.upload_missing(store, &m.files, &blobs)?;
        Ok((tree_sha, root))
    }

    /// Upload `bytes` if the server lacks them; their digest.
    pub fn upload_bytes(&self, bytes: Vec<u8>) -> Result<Sha, RemoteError> {
        let sha = Sha::of_bytes(&bytes);
        if !self.client().find_missing(&[sha])?.is_empty() {
            if bytes.len() as u64 <= BATCH_SMALL {
                self.client().write_batch(&[(sha, bytes)])?;
            } else {
                self.client().write_blob(&sha, Source::Bytes(&bytes))?;
            }
        }
        Ok(sha)
    }

    /// The bytes of a blob, checked against `sha`; at most `max` bytes.
    pub fn read_verified(&self, sha: &Sha, max: u64) -> Result<Vec<u8>, RemoteError> {
        let bytes = self
            .client()
            .read_small(sha, max)?
            .ok_or_else(|| RemoteError::Missing {
                url: self.url_str().to_string(),
                digest: format!("sha256 {}", sha.hex()),
            })?;
        let got = Sha::of_bytes(&bytes);
        if got != *sha {
            return Err(RemoteError::Corrupt {
                url: self.url_str().to_string(),
                digest: format!("sha256 {}", sha.hex()),
                actual: got.hex(),
            });
        }
        Ok(bytes)
    }

    /// Write the REAPI directory `d` into `dir` (existing).
    pub fn write_directory(
        &self,
        d: &re::Directory,
        children: &HashMap<Sha, &re::Directory>,
        dir: &Path,
        deadline: Instant,
        depth: usize,
    ) -> Result<(), RemoteError> {
        let url = self.url_str().to_string();
        let bad = |m: String| RemoteError::Malformed {
            url: url.clone(),
            digest: "(output tree)".into(),
            reason: m,
        };
        let io = |op: &'static str, p: &Path, e: std::io::Error| RemoteError::Io {
            url: url.clone(),
            op,
            path: p.to_path_buf(),
            source: e,
        };
        if depth > 512 {
            return Err(bad("deeper than 512 directories".into()));
        }
        let check = |name: &str| -> Result<(), RemoteError> {
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('\0')
            {
                return Err(bad(format!("bad name {name:?}")));
            }
            Ok(())
        };
        for f in &d.files {
            check(&f.name)?;
            let sha = f
                .digest
                .as_ref()
                .and_then(Sha::from_proto)
                .ok_or_else(|| bad(format!("{}: no digest", f.name)))?;
            let path = dir.join(&f.name);
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io("create", &path, e))?;
            let mut h = crate::cache::Sha256Stream::new();
            let mut total = 0u64;
            let found = self.client().read_blob(&sha, deadline, &mut |chunk| {
                total += chunk.len() as u64;
                if total > sha.size {
                    return Err(bad(format!("{}: more bytes than its digest says", f.name)));
                }
                h.update(chunk);
                file.write_all(chunk).map_err(|e| io("write", &path, e))
            })?;
            if !found {
                return Err(RemoteError::Missing {
                    url: url.clone(),
                    digest: format!("sha256 {} ({})", sha.hex(), f.name),
                });
            }
            let got = Sha {
                hash: h.finish(),
                size: total,
            };
            if got != sha {
                return Err(RemoteError::Corrupt {
                    url: url.clone(),
                    digest: format!("sha256 {} ({})", sha.hex(), f.name),
                    actual: got.hex(),
                });
            }
            let mode = f
                .node_properties
                .as_ref()
                .and_then(|p| p.unix_mode.as_ref())
                .map_or(if f.is_executable { 0o755 } else { 0o644 }, |m| {
                    m.value & 0o7777
                });
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io("chmod", &path, e))?;
        }
        for s in &d.symlinks {
            check(&s.name)?;
            let path = dir.join(&s.name);
            std::os::unix::fs::symlink(&s.target, &path).map_err(|e| io("symlink", &path, e))?;
        }
        for sub in &d.directories {
            check(&sub.name)?;
            let sha = sub
                .digest
                .as_ref()
                .and_then(Sha::from_proto)
                .ok_or_else(|| bad(format!("{}: no digest", sub.name)))?;
            let child = children
                .get(&sha)
                .ok_or_else(|| bad(format!("{}: its Directory is not in the Tree", sub.name)))?;
            let path = dir.join(&sub.name);
            std::fs::create_dir(&path).map_err(|e| io("mkdir", &path, e))?;
            self.write_directory(child, children, &path, deadline, depth + 1)?;
            if let Some(m) = child
                .node_properties
                .as_ref()
                .and_then(|p| p.unix_mode.as_ref())
            {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m.value & 0o7777))
                    .map_err(|e| io("chmod", &path, e))?;
            }
        }
        Ok(())
    }
}

//! [`ReapiRemote`]: a [`Remote`] over REAPI's ActionCache, CAS and
//! ByteStream services (spec/remote.md, "REAPI").
//!
//! Objects are CAS blobs under their SHA-256 digest ([`DigestMap`] says
//! which); a result is an ActionResult under the cache Action of its key
//! ([`CacheAction`]) whose output files are the signed cas result and the
//! digest map of everything it references. A downloaded object is hashed
//! both ways as it streams and refused unless both digests match; the
//! signature and trust rules are those of every remote (the engine checks
//! the result bytes as it does for HTTP).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use cas_store::remote::{Limit, Remote};
use cas_store::{ActionKey, Digest, RemoteError};

use crate::client::{Client, Source};
use crate::digests::{DigestMap, Sha};
use crate::encoding::{self, CacheAction};

/// The largest encoded cas result read (spec/remote.md: at most 64 KiB).
const MAX_RESULT_BYTES: u64 = 64 << 10;

/// Blobs read ahead (a result with its digest map) held at most at once.
const PREFETCH_HELD: u64 = 16 << 20;

pub struct ReapiRemote {
    url: String,
    client: Client,
    map: DigestMap,
    /// Blobs read ahead in one batch (a result's `cas/result` and
    /// `cas/digests`), served once and verified like any download.
    ahead: std::sync::Mutex<Ahead>,
}

#[derive(Default)]
struct Ahead {
    blobs: std::collections::HashMap<Sha, Vec<u8>>,
    bytes: u64,
}

impl std::fmt::Debug for ReapiRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReapiRemote")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ReapiRemote {
    /// A REAPI remote (no network access yet). `state`: the store's REAPI
    /// directory, where the digest map is kept.
    pub fn open(url: &str, state: &Path) -> Result<ReapiRemote, RemoteError> {
        ReapiRemote::open_with(url, state, &crate::connect::Options::default())
    }

    /// [`ReapiRemote::open`] with metadata for every call and TLS client
    /// settings (a configured remote's `headers:` and `tls-*`).
    pub fn open_with(
        url: &str,
        state: &Path,
        opts: &crate::connect::Options,
    ) -> Result<ReapiRemote, RemoteError> {
        let parsed = crate::url::parse(url)?;
        Ok(ReapiRemote {
            url: url.to_string(),
            client: Client::with_options(url, &parsed, opts)?,
            map: DigestMap::open(state),
            ahead: Default::default(),
        })
    }

    /// The remote's URL (also `Remote::url`).
    pub fn url_str(&self) -> &str {
        &self.url
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn digests(&self) -> &DigestMap {
        &self.map
    }

    /// The SHA-256 digest of a local file, from the map or computed once.
    pub fn sha_of_file(&self, d: &Digest, path: &Path) -> Result<Sha, RemoteError> {
        if let Some(s) = self.map.get_known(d) {
            return Ok(s);
        }
        let mut f = File::open(path).map_err(|e| self.io("open", path, e))?;
        let mut h = sha2_hasher();
        let size = std::io::copy(&mut f, &mut h).map_err(|e| self.io("read", path, e))?;
        let sha = Sha {
            hash: h.finish(),
            size,
        };
        self.map.know(d, sha);
        Ok(sha)
    }

    /// Upload bytes held in memory (the result and digest-map blobs).
    fn put_bytes(&self, bytes: &[u8]) -> Result<Sha, RemoteError> {
        let sha = Sha::of_bytes(bytes);
        if !self.client.find_missing(&[sha])?.is_empty() {
            self.client.write_blob(&sha, Source::Bytes(bytes))?;
        }
        Ok(sha)
    }

    fn io(&self, op: &'static str, path: &Path, source: std::io::Error) -> RemoteError {
        RemoteError::Io {
            url: self.url.clone(),
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    fn malformed(&self, key: &ActionKey, reason: String) -> RemoteError {
        RemoteError::Malformed {
            url: self.url.clone(),
            digest: key.to_hex(),
            reason,
        }
    }

    /// The cas result stored under `key` (see [`Remote::get_action`]).
    fn action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError> {
        let action = CacheAction::of(key).digest();
        let Some(ar) = self.client.get_action_result(&action)? else {
            return Ok(None);
        };
        let find = |path: &str| ar.output_files.iter().find(|f| f.path == path);
        let (Some(result), Some(map)) = (find(encoding::RESULT_PATH), find(encoding::DIGESTS_PATH))
        else {
            return Err(self.malformed(
                key,
                format!(
                    "its ActionResult lacks the output files {} and {}: not a cas result",
                    encoding::RESULT_PATH,
                    encoding::DIGESTS_PATH
                ),
            ));
        };
        // A result whose blobs the server has dropped is no result. Both
        // are read in one call where the server batches them.
        self.read_ahead(
            &[result, map],
            MAX_RESULT_BYTES.max(encoding::MAX_MAP_BYTES),
        );
        let Some(bytes) = self.read_output(key, result, MAX_RESULT_BYTES)? else {
            return Ok(None);
        };
        let Some(map_bytes) = self.read_output(key, map, encoding::MAX_MAP_BYTES)? else {
            return Ok(None);
        };
        let entries = encoding::decode_map(&map_bytes)
            .map_err(|e| self.malformed(key, format!("its digest map: {e}")))?;
        self.map.claim(&entries);
        Ok(Some(bytes))
    }

    /// Reads `shas` ahead in as few calls as the server allows, keeping at
    /// most [`PREFETCH_HELD`] bytes (older ones are dropped first: a result
    /// pulled by another thread then reads its own again). A failure here
    /// is not one: the objects are read one by one instead.
    fn prefetch(&self, shas: &[Sha]) {
        let wanted: Vec<Sha> = {
            let ahead = self
                .ahead
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            shas.iter()
                .filter(|s| !ahead.blobs.contains_key(s))
                .copied()
                .collect()
        };
        let total: u64 = wanted.iter().map(|s| s.size).sum();
        if wanted.is_empty() || total > PREFETCH_HELD {
            return;
        }
        let Ok(got) = self.client.read_batch(&wanted) else {
            return;
        };
        let mut ahead = self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ahead.bytes + total > PREFETCH_HELD {
            ahead.blobs.clear();
            ahead.bytes = 0;
        }
        for (sha, bytes) in got {
            if bytes.len() as u64 == sha.size && ahead.blobs.insert(sha, bytes).is_none() {
                ahead.bytes += sha.size;
            }
        }
    }

    /// [`Self::prefetch`] of the blobs of output files `files`, each at most
    /// `max` bytes.
    fn read_ahead(&self, files: &[&re::OutputFile], max: u64) {
        let shas: Vec<Sha> = files
            .iter()
            .filter_map(|f| f.digest.as_ref().and_then(Sha::from_proto))
            .filter(|s| s.size <= max)
            .collect();
        self.prefetch(&shas);
    }

    /// A blob read ahead, taken out (it is served once).
    fn take_ahead(&self, sha: &Sha) -> Option<Vec<u8>> {
        let mut ahead = self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bytes = ahead.blobs.remove(sha)?;
        ahead.bytes -= sha.size;
        Some(bytes)
    }

    /// A small blob the ActionResult names, verified against its SHA-256.
    fn read_output(
        &self,
        key: &ActionKey,
        file: &re::OutputFile,
        max: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let sha = file
            .digest
            .as_ref()
            .and_then(Sha::from_proto)
            .ok_or_else(|| {
                self.malformed(
                    key,
                    format!("output file {} has no SHA-256 digest", file.path),
                )
            })?;
        let ahead = if sha.size <= max {
            self.take_ahead(&sha)
        } else {
            None
        };
        let bytes = match ahead {
            Some(bytes) => bytes,
            None => match self.client.read_small(&sha, max)? {
                Some(bytes) => bytes,
                None => return Ok(None),
            },
        };
        if Sha::of_bytes(&bytes) != sha {
            return Err(RemoteError::Corrupt {
                url: self.url.clone(),
                digest: sha.hex(),
                actual: Sha::of_bytes(&bytes).hex(),
            });
        }
        Ok(Some(bytes))
    }
}

impl Remote for ReapiRemote {
    fn url(&self) -> &str {
        &self.url
    }

    fn interrupt(&self) -> cas_store::remote::Interrupt {
        self.client.interrupt()
    }

    fn has_object(&self, digest: &Digest) -> Result<bool, RemoteError> {
        // Only a digest computed here: what is pushed is named in the
        // result's digest map, which must not repeat another remote's claims.
        let Some(sha) = self.map.get_known(digest) else {
            return Ok(false);
        };
        Ok(self.client.find_missing(&[sha])?.is_empty())
    }

    fn missing_objects(&self, list: &[Digest]) -> Option<Result<Vec<Digest>, RemoteError>> {
        let mut unknown = Vec::new();
        let mut asked: Vec<(Digest, Sha)> = Vec::new();
        for d in list {
            match self.map.get_known(d) {
                Some(s) => asked.push((*d, s)),
                None => unknown.push(*d),
            }
        }
        let shas: Vec<Sha> = asked.iter().map(|(_, s)| *s).collect();
        Some(self.client.find_missing(&shas).map(|missing| {
            let missing: std::collections::HashSet<Sha> = missing.into_iter().collect();
            unknown.extend(
                asked
                    .iter()
                    .filter(|(_, s)| missing.contains(s))
                    .map(|(d, _)| *d),
            );
            unknown
        }))
    }

    fn get_object(
        &self,
        digest: &Digest,
        out: &mut File,
        limit: &Limit,
    ) -> Result<bool, RemoteError> {
        let Some(sha) = self.map.get(digest) else {
            return Ok(false);
        };
        if sha.size > limit.bytes {
            return Err(RemoteError::TooLarge {
                url: self.url.clone(),
                digest: digest.to_hex(),
                limit: limit.bytes,
            });
        }
        let io = |op, e| self.io(op, Path::new("(download)"), e);
        out.set_len(0).map_err(|e| io("truncate", e))?;
        out.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        let mut sha_h = sha2_hasher();
        let mut b3 = blake3::Hasher::new();
        let mut total = 0u64;
        // Interruption, the deadline, the pace and the remote's budget of
        // waiting, as for every download (a stream that pauses is cut by
        // the client).
        let mut pace = cas_store::remote::Pace::new(limit);
        let ahead = self.take_ahead(&sha);
        let mut sink = |chunk: &[u8]| {
            pace.check(&self.url, digest)?;
            pace.add(chunk.len() as u64);
            total += chunk.len() as u64;
            if total > sha.size {
                return Err(RemoteError::TooLarge {
                    url: self.url.clone(),
                    digest: digest.to_hex(),
                    limit: sha.size,
                });
            }
            sha_h.update(chunk);
            b3.update(chunk);
            out.write_all(chunk).map_err(|e| io("write", e))
        };
        let found = match ahead {
            Some(bytes) => sink(&bytes).map(|()| true)?,
            None => self.client.read_blob(&sha, limit.deadline, &mut sink)?,
        };
        if !found {
            return Ok(false);
        }
        let got = Sha {
            hash: sha_h.finish(),
            size: total,
        };
        let actual = Digest::from(b3.finalize());
        if got != sha || actual != *digest {
            self.map.forget(digest);
            return Err(RemoteError::Corrupt {
                url: self.url.clone(),
                digest: digest.to_hex(),
                actual: if got == sha {
                    actual.to_hex()
                } else {
                    format!("sha256 {}", got.hex())
                },
            });
        }
        self.map.know(digest, sha);
        Ok(true)
    }

    fn is_down(&self) -> bool {
        self.client.is_down()
    }

    fn put_object(&self, digest: &Digest, path: &Path, size: u64) -> Result<(), RemoteError> {
        let sha = self.sha_of_file(digest, path)?;
        if sha.size != size {
            return Err(self.io(
                "read",
                path,
                std::io::Error::other(format!("{} bytes, expected {size}", sha.size)),
            ));
        }
        if !self.client.find_missing(&[sha])?.is_empty() {
            self.client.write_blob(&sha, Source::File(path))?;
        }
        Ok(())
    }

    fn has_action(&self, key: &ActionKey) -> Result<bool, RemoteError> {
        Ok(self.get_action(key)?.is_some())
    }

    fn get_action(&self, key: &ActionKey) -> Result<Option<Vec<u8>>, RemoteError> {
        self.action(key)
    }

    /// Refused: a result stored without its digest map could not be
    /// downloaded by anyone (transfers call `put_action_objects`).
    fn put_action(&self, key: &ActionKey, _bytes: &[u8]) -> Result<(), RemoteError> {
        Err(self.malformed(
            key,
            "a REAPI result needs the objects it references (put_action_objects)".into(),
        ))
    }

    fn put_action_objects(
        &self,
        key: &ActionKey,
        bytes: &[u8],
        objects: &[Digest],
    ) -> Result<(), RemoteError> {
        let mut entries = Vec::with_capacity(objects.len());
        for d in objects {
            let sha = self.map.get_known(d).ok_or_else(|| {
                self.malformed(
                    key,
                    format!("object {d} was not uploaded before its result"),
                )
            })?;
            entries.push((*d, sha));
        }
        let map_sha = self.put_bytes(&encoding::encode_map(&entries))?;
        let result_sha = self.put_bytes(bytes)?;
        let cache = CacheAction::of(key);
        self.put_bytes(&cache.command)?;
        self.put_bytes(&cache.action)?;
        let file = |path: &str, sha: Sha| re::OutputFile {
            path: path.to_string(),
            digest: Some(sha.proto()),
            ..Default::default()
        };
        let ar = re::ActionResult {
            output_files: vec![
                file(encoding::RESULT_PATH, result_sha),
                file(encoding::DIGESTS_PATH, map_sha),
            ],
            exit_code: 0,
            ..Default::default()
        };
        self.client.update_action_result(&cache.digest(), ar)
    }
}

/// SHA-256 of a stream; an `io::Write` (to hash a file with `io::copy`).
pub struct Sha256Stream(sha2::Sha256);

fn sha2_hasher() -> Sha256Stream {
    Sha256Stream::new()
}

impl Sha256Stream {
    pub fn new() -> Sha256Stream {
        use sha2::Digest as _;
        Sha256Stream(sha2::Sha256::new())
    }

    pub fn update(&mut self, b: &[u8]) {
        use sha2::Digest as _;
        self.0.update(b);
    }

    pub fn finish(self) -> [u8; 32] {
        use sha2::Digest as _;
        self.0.finalize().into()
    }
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Sha256Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

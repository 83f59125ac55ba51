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

pub struct ReapiRemote {
    url: String,
    client: Client,
    map: DigestMap,
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

    /// Small blobs the ActionResult names, each at most its `max` bytes
    /// and verified against its SHA-256; `None` when the CAS lacks one.
    /// They are read in one `BatchReadBlobs` where the server batches them
    /// (a lookup is then two calls: the ActionResult and this).
    fn read_outputs<const N: usize>(
        &self,
        key: &ActionKey,
        files: [(&re::OutputFile, u64); N],
    ) -> Result<Option<[Vec<u8>; N]>, RemoteError> {
        let mut shas = [Sha {
            hash: [0; 32],
            size: 0,
        }; N];
        for (sha, (file, _)) in shas.iter_mut().zip(&files) {
            *sha = file
                .digest
                .as_ref()
                .and_then(Sha::from_proto)
                .ok_or_else(|| {
                    self.malformed(
                        key,
                        format!("output file {} has no SHA-256 digest", file.path),
                    )
                })?;
        }
        // inlined in the ActionResult (asked for; a server may not)
        let inline: [Option<&[u8]>; N] = std::array::from_fn(|i| {
            let (file, max) = &files[i];
            let c: &[u8] = &file.contents;
            (!c.is_empty() && c.len() as u64 == shas[i].size && shas[i].size <= *max).then_some(c)
        });
        let small: Vec<Sha> = shas
            .iter()
            .zip(&files)
            .zip(&inline)
            .filter(|((sha, (_, max)), inline)| inline.is_none() && sha.size <= *max)
            .map(|((sha, _), _)| *sha)
            .collect();
        // a batch that fails is read blob by blob below
        let mut batch = if small.is_empty() {
            Vec::new()
        } else {
            self.client.read_batch(&small).unwrap_or_default()
        };
        let mut out: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
        for (i, (sha, (_, max))) in shas.iter().zip(&files).enumerate() {
            let bytes = match (inline[i], batch.iter().position(|(s, _)| s == sha)) {
                (Some(c), _) => c.to_vec(),
                (None, Some(at)) => batch.swap_remove(at).1,
                (None, None) => match self.client.read_small(sha, *max)? {
                    Some(bytes) => bytes,
                    None => return Ok(None),
                },
            };
            let actual = Sha::of_bytes(&bytes);
            if actual != *sha {
                return Err(RemoteError::Corrupt {
                    url: self.url.clone(),
                    digest: sha.hex(),
                    actual: actual.hex(),
                });
            }
            out[i] = bytes;
        }
        Ok(Some(out))
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
        let found = self.client.read_blob(&sha, limit.deadline, &mut |chunk| {
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
        })?;
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
        let action = CacheAction::of(key).digest();
        let inline = [encoding::RESULT_PATH, encoding::DIGESTS_PATH];
        let Some(ar) = self.client.get_action_result(&action, &inline)? else {
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
        // A result whose blobs the server has dropped is no result.
        let Some([bytes, map_bytes]) = self.read_outputs(
            key,
            [(result, MAX_RESULT_BYTES), (map, encoding::MAX_MAP_BYTES)],
        )?
        else {
            return Ok(None);
        };
        let entries = encoding::decode_map(&map_bytes)
            .map_err(|e| self.malformed(key, format!("its digest map: {e}")))?;
        self.map.claim(&entries);
        Ok(Some(bytes))
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
        let map = encoding::encode_map(&entries);
        let map_sha = self.put_bytes(&map)?;
        let result_sha = self.put_bytes(bytes)?;
        let cache = CacheAction::of(key);
        self.put_bytes(&cache.command)?;
        self.put_bytes(&cache.action)?;
        // small files travel inline too: a server that keeps the
        // ActionResult as given answers a lookup in one call
        let file = |path: &str, sha: Sha, bytes: &[u8]| re::OutputFile {
            path: path.to_string(),
            digest: Some(sha.proto()),
            contents: if bytes.len() <= INLINE_MAX {
                bytes.to_vec()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let ar = re::ActionResult {
            output_files: vec![
                file(encoding::RESULT_PATH, result_sha, bytes),
                file(encoding::DIGESTS_PATH, map_sha, &map),
            ],
            exit_code: 0,
            ..Default::default()
        };
        self.client.update_action_result(&cache.digest(), ar)
    }
}

/// The largest output file a pushed ActionResult carries inline as well.
const INLINE_MAX: usize = 16 * 1024;

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

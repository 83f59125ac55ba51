//! The gRPC calls cas makes, blocking: each runs on the remote's own tokio
//! runtime, so the engine's threads (the transfer workers) call them as
//! they call the HTTP backend. Timeouts: 3 s to connect; the remote's
//! budget of waiting (`CAS_REMOTE_TIMEOUT`, 10 s) for the answer of a call,
//! plus what its bytes need at 10 KiB/s for a call that carries blobs; a
//! streamed blob within the caller's deadline, with no pause of 5 s
//! between its messages. A connection failure, a timeout or a stalled
//! stream marks the remote down for the rest of the process. Every wait
//! ends at SIGINT/SIGTERM ([`cas_store::remote::interrupted`]) within
//! 50 ms.

use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use bs::byte_stream_client::ByteStreamClient;
use cas_store::RemoteError;
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::connect::{Metadata, Options, Service};
use crate::digests::Sha;
use crate::url::GrpcUrl;

/// The most bytes of one gRPC message cas accepts.
const MAX_MESSAGE: usize = 80 << 20;
/// Blobs up to this size travel in batch calls (when the server's limit
/// allows); larger ones through ByteStream.
const BATCH_BLOB: u64 = 1 << 20;
/// The size of one ByteStream write message.
const CHUNK: usize = 1 << 20;
/// The most an upload may take before one second per MiB is added.
const UNARY_TIMEOUT: Duration = Duration::from_secs(60);
/// FindMissingBlobs asks about at most this many digests at once.
const FIND_MISSING_CHUNK: usize = 4096;

static UPLOADS: AtomicU64 = AtomicU64::new(0);

/// A connection to one REAPI endpoint and instance.
pub struct Client {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    /// What every call carries (the remote's `headers:`).
    metadata: Metadata,
    /// grpcs:// with no client certificate (for a hint when the server
    /// closes the connection).
    tls_without_identity: bool,
    instance: String,
    url: String,
    /// How long a call may wait for its answer (the remote's budget of
    /// waiting, `CAS_REMOTE_TIMEOUT`).
    answer: Duration,
    down: AtomicBool,
    /// What ends a call's wait early (checked every 50 ms).
    interrupt: cas_store::remote::Interrupt,
    /// The server's batch limit (bytes of one batch request), once asked.
    max_batch: std::sync::OnceLock<Result<u64, String>>,
}

/// Where an upload's bytes come from.
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a std::path::Path),
}

impl Client {
    pub fn new(url: &str, parsed: &GrpcUrl) -> Result<Client, RemoteError> {
        Client::with_options(url, parsed, &Options::default())
    }

    /// A client whose every call carries `opts.headers` as metadata, over
    /// TLS with `opts.tls` for a grpcs:// URL (files read and checked now).
    pub fn with_options(
        url: &str,
        parsed: &GrpcUrl,
        opts: &Options,
    ) -> Result<Client, RemoteError> {
        let metadata = Metadata::new(url, &opts.headers)?;
        if parsed.tls_domain.is_none() && !opts.tls.is_empty() {
            return Err(RemoteError::Setting {
                url: url.to_string(),
                message: "TLS settings are for grpcs:// remotes".into(),
            });
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cas-reapi")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Transport {
                url: url.to_string(),
                message: format!("cannot start the gRPC runtime: {e}"),
            })?;
        let endpoint = Endpoint::from_shared(parsed.endpoint.clone())
            .map_err(|e| RemoteError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(3))
            // No HTTP/2 keepalive pings: gRPC servers (casd, BuildGrid)
            // close a connection that pings while an Execute waits ("too
            // many pings"); TCP keepalive finds a dead peer instead.
            .tcp_nodelay(true)
            .tcp_keepalive(Some(Duration::from_secs(60)));
        let endpoint = match &parsed.tls_domain {
            None => endpoint,
            Some(domain) => endpoint
                .tls_config(crate::connect::client_tls(url, domain, &opts.tls)?)
                .map_err(|e| RemoteError::Setting {
                    url: url.to_string(),
                    message: {
                        let why = crate::connect::chain(&e);
                        let why = why.strip_prefix("transport error: ").unwrap_or(&why);
                        let why = if why.contains("KeyMismatch") {
                            format!("the client key is not the client certificate's ({why})")
                        } else {
                            why.to_string()
                        };
                        format!("TLS: {why}{}", crate::connect::identity_files(&opts.tls))
                    },
                })?,
        };
        let channel = {
            let _guard = rt.enter();
            endpoint.connect_lazy()
        };
        Ok(Client {
            rt,
            channel,
            metadata,
            tls_without_identity: parsed.tls_domain.is_some() && opts.tls.client.is_none(),
            instance: parsed.instance.clone(),
            url: url.to_string(),
            answer: cas_store::remote::budget_from_env(),
            down: AtomicBool::new(false),
            interrupt: opts.interrupt,
            max_batch: std::sync::OnceLock::new(),
        })
    }

    /// What ends its calls early.
    pub fn interrupt(&self) -> cas_store::remote::Interrupt {
        self.interrupt
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The connection, for services this crate does not wrap (the Bots
    /// API of `cas worker`): every call carries the remote's metadata.
    pub fn channel(&self) -> Service {
        InterceptedService::new(self.channel.clone(), self.metadata.clone())
    }

    /// Run `f` on this client's runtime and wait for it.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn cas(&self) -> ContentAddressableStorageClient<Service> {
        ContentAddressableStorageClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn ac(&self) -> ActionCacheClient<Service> {
        ActionCacheClient::new(self.channel()).max_decoding_message_size(MAX_MESSAGE)
    }

    fn bytestream(&self) -> ByteStreamClient<Service> {
        ByteStreamClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// Fail at once when the remote is down.
    fn check_up(&self) -> Result<(), RemoteError> {
        if self.is_down() {
            return Err(self.transport("(skipped)", "the remote is down (an earlier call failed)"));
        }
        Ok(())
    }

    fn transport(&self, op: &str, message: &str) -> RemoteError {
        RemoteError::Transport {
            url: self.url.clone(),
            message: format!("{op}: {message}"),
        }
    }

    /// A failed call as an error; unreachable or timed out (tonic's own
    /// client-side deadline is `Cancelled: Timeout expired`) marks the
    /// remote down.
    ///
    /// A connection the server closes (as a server that requires a client
    /// certificate does right after the handshake) and a call refused as
    /// unauthenticated (no token, or a wrong one: every call will be) also
    /// mark it down, with a hint at the setting to check.
    fn status(&self, op: &str, s: &tonic::Status) -> RemoteError {
        // tonic's transport errors say what went wrong in their causes
        let cause = std::error::Error::source(s).map(crate::connect::chain);
        let closed = cause.as_deref().is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            [
                "connection closed",
                "closed connection",
                "connection reset",
                // the handshake's last write meets the server's close
                "broken pipe",
                "certificaterequired",
                "certificate required",
            ]
            .iter()
            .any(|w| c.contains(w))
        });
        let down = match s.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Unauthenticated => true,
            Code::Unknown => s.message().contains("transport") || closed,
            Code::Cancelled => s.message().contains("Timeout expired") || closed,
            _ => false,
        };
        if down {
            self.down.store(true, Ordering::Relaxed);
        }
        let mut message = if s.message().is_empty() {
            format!("{:?}", s.code())
        } else {
            format!("{:?}: {}", s.code(), s.message())
        };
        if let Some(more) = cause {
            let more = more.strip_prefix("transport error: ").unwrap_or(&more);
            if !message.contains(more) {
                message.push_str(&format!(" ({more})"));
            }
        }
        if closed && self.tls_without_identity {
            message.push_str(
                "; the server closed the TLS connection: if it requires a client certificate, give this remote `tls-client-cert` and `tls-client-key` in the user configuration",
            );
        } else if s.code() == Code::Unauthenticated {
            message.push_str(
                "; the server wants credentials: check this remote's `headers:` (e.g. `authorization: \"Bearer ${TOKEN}\"`) and the variables they name",
            );
        }
        self.transport(op, &message)
    }

    /// A request whose answer is waited for at most `timeout` ([`Self::wait`]);
    /// the server is told a second more.
    fn unary<T>(&self, msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(timeout + Duration::from_secs(1));
        r
    }

    /// The time a call that carries `bytes` of blobs may wait for its answer.
    fn answer_for(&self, bytes: u64) -> Duration {
        self.answer + Duration::from_secs(bytes / cas_store::remote::MIN_RATE)
    }

    /// Run the call `fut` and wait for its answer: at most `timeout` (then
    /// the remote is down: it accepted the call and did not answer), and
    /// not after SIGINT/SIGTERM. The call's own status is left to the caller.
    fn wait<T>(
        &self,
        op: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<Result<T, tonic::Status>, RemoteError> {
        // (the timer is made inside the runtime: it needs its context)
        match self.rt.block_on(async {
            interruptible(self.interrupt, tokio::time::timeout(timeout, fut)).await
        }) {
            None => Err(RemoteError::Interrupted {
                url: self.url.clone(),
            }),
            Some(Err(_elapsed)) => Err(self.silent(op, timeout)),
            Some(Ok(r)) => Ok(r),
        }
    }

    /// A call not answered in `waited`: the remote is down.
    fn silent(&self, op: &str, waited: Duration) -> RemoteError {
        self.down.store(true, Ordering::Relaxed);
        self.transport(op, &format!("no answer within {} s", waited.as_secs()))
    }

    /// The server's capabilities: SHA-256 must be among its digest
    /// functions; returns its batch limit (0: none stated).
    pub fn batch_limit(&self) -> Result<u64, RemoteError> {
        let got = self.max_batch.get_or_init(|| {
            let mut c = CapabilitiesClient::new(self.channel());
            let req = self.unary(
                re::GetCapabilitiesRequest {
                    instance_name: self.instance.clone(),
                },
                self.answer,
            );
            let answer = match self.wait("GetCapabilities", self.answer, c.get_capabilities(req)) {
                Ok(a) => a,
                Err(e) => return Err(e.without_url()),
            };
            match answer {
                Ok(resp) => {
                    let caps = resp.into_inner();
                    let cache = caps.cache_capabilities.unwrap_or_default();
                    let sha256 = re::digest_function::Value::Sha256 as i32;
                    if !cache.digest_functions.is_empty()
                        && !cache.digest_functions.contains(&sha256)
                    {
                        return Err("the server's CAS does not accept SHA-256 digests".to_string());
                    }
                    Ok(u64::try_from(cache.max_batch_total_size_bytes).unwrap_or(0))
                }
                Err(s) => Err(self.status("GetCapabilities", &s).to_string()),
            }
        });
        got.clone().map_err(|m| RemoteError::Transport {
            url: self.url.clone(),
            message: m,
        })
    }

    /// Does a batch call fit `size` bytes of blob?
    fn batchable(&self, size: u64) -> Result<bool, RemoteError> {
        let limit = self.batch_limit()?;
        // Room for the digests and framing of the request.
        Ok(size <= BATCH_BLOB && (limit == 0 || size + 4096 <= limit))
    }

    /// Which of `digests` the CAS does not have.
    pub fn find_missing(&self, digests: &[Sha]) -> Result<Vec<Sha>, RemoteError> {
        self.check_up()?;
        let mut missing = Vec::new();
        for chunk in digests.chunks(FIND_MISSING_CHUNK) {
            let req = self.unary(
                re::FindMissingBlobsRequest {
                    instance_name: self.instance.clone(),
                    blob_digests: chunk.iter().map(Sha::proto).collect(),
                    digest_function: re::digest_function::Value::Sha256 as i32,
                },
                self.answer,
            );
            let resp = self
                .wait(
                    "FindMissingBlobs",
                    self.answer,
                    self.cas().find_missing_blobs(req),
                )?
                .map_err(|s| self.status("FindMissingBlobs", &s))?;
            for d in resp.into_inner().missing_blob_digests {
                if let Some(s) = Sha::from_proto(&d) {
                    missing.push(s);
                }
            }
        }
        Ok(missing)
    }

    /// Download several small blobs in as few BatchReadBlobs calls as the
    /// server's limit allows (each within it; larger ones are left out and
    /// must be read alone). Returns those found, unchecked: the caller
    /// verifies each against its digest.
    pub fn read_batch(&self, shas: &[Sha]) -> Result<Vec<(Sha, Vec<u8>)>, RemoteError> {
        self.check_up()?;
        let limit = match self.batch_limit()? {
            0 => 4 << 20,
            l => l.min(4 << 20),
        };
        let mut out = Vec::new();
        let mut chunk: Vec<Sha> = Vec::new();
        let mut bytes = 0u64;
        let flush = |chunk: &mut Vec<Sha>, out: &mut Vec<(Sha, Vec<u8>)>| {
            if chunk.is_empty() {
                return Ok(());
            }
            let timeout = self.answer_for(chunk.iter().map(|s| s.size).sum());
            let req = self.unary(
                re::BatchReadBlobsRequest {
                    instance_name: self.instance.clone(),
                    digests: chunk.iter().map(Sha::proto).collect(),
                    acceptable_compressors: vec![],
                    digest_function: re::digest_function::Value::Sha256 as i32,
                },
                timeout,
            );
            let resp = self
                .wait("BatchReadBlobs", timeout, self.cas().batch_read_blobs(req))?
                .map_err(|s| self.status("BatchReadBlobs", &s))?;
            for r in resp.into_inner().responses {
                if r.status.as_ref().map_or(0, |s| s.code) != 0 {
                    continue;
                }
                if let Some(sha) = r.digest.as_ref().and_then(Sha::from_proto) {
                    out.push((sha, r.data));
                }
            }
            chunk.clear();
            Ok::<(), RemoteError>(())
        };
        for sha in shas {
            // a message's own framing: 256 bytes per entry is generous
            let cost = sha.size + 256;
            if cost > limit {
                continue;
            }
            if bytes + cost > limit {
                flush(&mut chunk, &mut out)?;
                bytes = 0;
            }
            chunk.push(*sha);
            bytes += cost;
        }
        flush(&mut chunk, &mut out)?;
        Ok(out)
    }

    /// Download a blob, handing its bytes to `sink` in order; `deadline`
    /// bounds the whole transfer. `Ok(false)`: the CAS does not have it.
    pub fn read_blob(
        &self,
        sha: &Sha,
        deadline: Instant,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), RemoteError>,
    ) -> Result<bool, RemoteError> {
        self.check_up()?;
        if sha.size == 0 {
            return Ok(true);
        }
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        if self.batchable(sha.size)? {
            let mut req = tonic::Request::new(re::BatchReadBlobsRequest {
                instance_name: self.instance.clone(),
                digests: vec![sha.proto()],
                acceptable_compressors: vec![],
                digest_function: re::digest_function::Value::Sha256 as i32,
            });
            let timeout = timeout.min(self.answer_for(sha.size));
            req.set_timeout(timeout + Duration::from_secs(1));
            let resp = self
                .wait("BatchReadBlobs", timeout, self.cas().batch_read_blobs(req))?
                .map_err(|s| self.status("BatchReadBlobs", &s))?;
            let Some(r) = resp.into_inner().responses.into_iter().next() else {
                return Err(self.transport("BatchReadBlobs", "the answer has no response"));
            };
            let code = r.status.as_ref().map_or(0, |s| s.code);
            if code == Code::NotFound as i32 {
                return Ok(false);
            }
            if code != 0 {
                let m = r.status.map(|s| s.message).unwrap_or_default();
                return Err(self.transport("BatchReadBlobs", &format!("status {code}: {m}")));
            }
            sink(&r.data)?;
            return Ok(true);
        }
        let resource = self.resource(&format!("blobs/{}/{}", sha.hex(), sha.size));
        let mut req = tonic::Request::new(bs::ReadRequest {
            resource_name: resource,
            read_offset: 0,
            read_limit: 0,
        });
        req.set_timeout(timeout);
        // The answer within the remote's time for one, then no pause of a
        // rate window between messages (a stream that stops is a remote
        // that hangs); the caller's sink checks the deadline and the pace.
        let window = cas_store::remote::RATE_WINDOW;
        let answer = self.answer.min(timeout);
        let read = async {
            let mut stream = match tokio::time::timeout(answer, self.bytestream().read(req)).await {
                Err(_) => return Err(self.silent("ByteStream.Read", answer)),
                Ok(Ok(s)) => s.into_inner(),
                Ok(Err(s)) if s.code() == Code::NotFound => return Ok(false),
                Ok(Err(s)) => return Err(self.status("ByteStream.Read", &s)),
            };
            loop {
                match tokio::time::timeout(window, stream.message()).await {
                    Err(_) => {
                        self.down.store(true, Ordering::Relaxed);
                        return Err(self.transport(
                            "ByteStream.Read",
                            &format!("blob {}: no data for {} s", sha.hex(), window.as_secs()),
                        ));
                    }
                    Ok(Ok(Some(m))) => sink(&m.data)?,
                    Ok(Ok(None)) => return Ok(true),
                    Ok(Err(s)) if s.code() == Code::NotFound => return Ok(false),
                    Ok(Err(s)) => return Err(self.status("ByteStream.Read", &s)),
                }
            }
        };
        self.rt
            .block_on(interruptible(self.interrupt, read))
            .unwrap_or_else(|| {
                Err(RemoteError::Interrupted {
                    url: self.url.clone(),
                })
            })
    }

    /// A whole small blob (at most `max` bytes), or `None` when missing.
    pub fn read_small(&self, sha: &Sha, max: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        if sha.size > max {
            return Err(self.transport(
                "read",
                &format!(
                    "blob {} has {} bytes, more than the {max} it may have",
                    sha.hex(),
                    sha.size
                ),
            ));
        }
        let mut out = Vec::with_capacity(usize::try_from(sha.size).unwrap_or(0));
        let deadline = Instant::now() + self.answer_for(sha.size);
        let found = self.read_blob(sha, deadline, &mut |b| {
            if out.len() as u64 + b.len() as u64 > max {
                return Err(self.transport("read", "blob larger than its digest says"));
            }
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(found.then_some(out))
    }

    fn resource(&self, tail: &str) -> String {
        if self.instance.is_empty() {
            tail.to_string()
        } else {
            format!("{}/{tail}", self.instance)
        }
    }

    /// Upload a blob (whether or not the CAS has it: ask [`Self::find_missing`] first).
    pub fn write_blob(&self, sha: &Sha, source: Source<'_>) -> Result<(), RemoteError> {
        self.check_up()?;
        if sha.size == 0 {
            return Ok(());
        }
        if self.batchable(sha.size)? {
            let data = match source {
                Source::Bytes(b) => b.to_vec(),
                Source::File(p) => std::fs::read(p).map_err(|e| RemoteError::Io {
                    url: self.url.clone(),
                    op: "read",
                    path: p.to_path_buf(),
                    source: e,
                })?,
            };
            self.batch_update(vec![re::batch_update_blobs_request::Request {
                digest: Some(sha.proto()),
                data,
                compressor: 0,
            }])?;
            return Ok(());
        }
        let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
        let uuid = upload_uuid(n);
        let resource = self.resource(&format!("uploads/{uuid}/blobs/{}/{}", sha.hex(), sha.size));
        let mut reader: Box<dyn Read + Send> = match source {
            Source::Bytes(b) => Box::new(std::io::Cursor::new(b.to_vec())),
            Source::File(p) => Box::new(File::open(p).map_err(|e| RemoteError::Io {
                url: self.url.clone(),
                op: "open",
                path: p.to_path_buf(),
                source: e,
            })?),
        };
        let size = sha.size;
        let mut offset = 0u64;
        let mut first = true;
        let chunks = std::iter::from_fn(move || {
            if offset >= size && !first {
                return None;
            }
            let want = usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut buf = vec![0u8; want];
            if reader.read_exact(&mut buf).is_err() {
                // A short file: end the stream unfinished; the server refuses it.
                offset = size;
                first = false;
                return None;
            }
            let req = bs::WriteRequest {
                resource_name: if first {
                    resource.clone()
                } else {
                    String::new()
                },
                write_offset: i64::try_from(offset).unwrap_or(i64::MAX),
                finish_write: offset + want as u64 >= size,
                data: buf,
            };
            first = false;
            offset += want as u64;
            Some(req)
        });
        let mut req = tonic::Request::new(tokio_stream::iter(chunks));
        let timeout = (UNARY_TIMEOUT + Duration::from_secs(size >> 20))
            .min(self.answer_for(size) + cas_store::remote::GRACE);
        req.set_timeout(timeout + Duration::from_secs(1));
        let resp = self
            .wait("ByteStream.Write", timeout, self.bytestream().write(req))?
            .map_err(|s| self.status("ByteStream.Write", &s))?;
        let committed = resp.into_inner().committed_size;
        if u64::try_from(committed).ok() != Some(size) {
            return Err(self.transport(
                "ByteStream.Write",
                &format!(
                    "blob {}: the server committed {committed} of {size} bytes",
                    sha.hex()
                ),
            ));
        }
        Ok(())
    }

    /// Upload many small blobs, grouped into batch calls of at most 2 MiB
    /// (within the server's limit); a blob too large for a batch goes alone
    /// through [`Self::write_blob`].
    pub fn write_batch(&self, blobs: &[(Sha, Vec<u8>)]) -> Result<(), RemoteError> {
        let limit = match self.batch_limit()? {
            0 => 2 << 20,
            l => l.min(2 << 20),
        };
        let mut group: Vec<re::batch_update_blobs_request::Request> = Vec::new();
        let mut bytes = 0u64;
        let flush = |group: &mut Vec<re::batch_update_blobs_request::Request>| {
            if group.is_empty() {
                return Ok(());
            }
            self.batch_update(std::mem::take(group))
        };
        for (sha, data) in blobs {
            if sha.size == 0 {
                continue;
            }
            if sha.size + 4096 > limit {
                self.write_blob(sha, Source::Bytes(data))?;
                continue;
            }
            if bytes + sha.size + 4096 > limit {
                flush(&mut group)?;
                bytes = 0;
            }
            bytes += sha.size + 256;
            group.push(re::batch_update_blobs_request::Request {
                digest: Some(sha.proto()),
                data: data.clone(),
                compressor: 0,
            });
        }
        flush(&mut group)
    }

    /// One BatchUpdateBlobs call; the first blob the server refuses is the error.
    fn batch_update(
        &self,
        requests: Vec<re::batch_update_blobs_request::Request>,
    ) -> Result<(), RemoteError> {
        let timeout = self.answer_for(requests.iter().map(|r| r.data.len() as u64).sum());
        let req = self.unary(
            re::BatchUpdateBlobsRequest {
                instance_name: self.instance.clone(),
                requests,
                digest_function: re::digest_function::Value::Sha256 as i32,
            },
            timeout,
        );
        let resp = self
            .wait(
                "BatchUpdateBlobs",
                timeout,
                self.cas().batch_update_blobs(req),
            )?
            .map_err(|s| self.status("BatchUpdateBlobs", &s))?;
        for r in resp.into_inner().responses {
            if let Some(s) = r.status.filter(|s| s.code != 0) {
                let hash = r.digest.map(|d| d.hash).unwrap_or_default();
                return Err(self.transport(
                    "BatchUpdateBlobs",
                    &format!("blob {hash}: status {}: {}", s.code, s.message),
                ));
            }
        }
        Ok(())
    }

    /// Run an Action (uploaded with its Command and input root) and wait
    /// for its ExecuteResponse.
    pub fn execute(&self, action: &Sha) -> Result<re::ExecuteResponse, RemoteError> {
        use bazel_remote_apis::google::longrunning::operation::Result as Op;
        self.check_up()?;
        let req = tonic::Request::new(re::ExecuteRequest {
            instance_name: self.instance.clone(),
            skip_cache_lookup: false,
            action_digest: Some(action.proto()),
            digest_function: re::digest_function::Value::Sha256 as i32,
            ..Default::default()
        });
        let mut client = re::execution_client::ExecutionClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE);
        let run = async {
            let mut stream = client
                .execute(req)
                .await
                .map_err(|s| self.status("Execute", &s))?
                .into_inner();
            loop {
                let Some(op) = stream
                    .message()
                    .await
                    .map_err(|s| self.status("Execute", &s))?
                else {
                    return Err(self.transport(
                        "Execute",
                        "the operation stream ended before the operation was done",
                    ));
                };
                if !op.done {
                    continue;
                }
                return match op.result {
                    Some(Op::Response(any)) => {
                        <re::ExecuteResponse as prost::Message>::decode(any.value.as_slice())
                            .map_err(|e| self.transport("Execute", &format!("the response: {e}")))
                    }
                    Some(Op::Error(s)) => {
                        Err(self.transport("Execute", &format!("status {}: {}", s.code, s.message)))
                    }
                    None => {
                        Err(self.transport("Execute", "the operation is done without a result"))
                    }
                };
            }
        };
        // No time limit (an Action runs as long as it runs), but SIGINT/SIGTERM end the wait.
        self.rt
            .block_on(interruptible(self.interrupt, run))
            .unwrap_or_else(|| {
                Err(RemoteError::Interrupted {
                    url: self.url.clone(),
                })
            })
    }

    /// The ActionResult stored under `action`, if any.
    pub fn get_action_result(
        &self,
        action: &Sha,
        inline: &[&str],
    ) -> Result<Option<re::ActionResult>, RemoteError> {
        self.check_up()?;
        let req = self.unary(
            re::GetActionResultRequest {
                instance_name: self.instance.clone(),
                action_digest: Some(action.proto()),
                inline_stdout: false,
                inline_stderr: false,
                inline_output_files: inline.iter().map(|p| (*p).to_string()).collect(),
                digest_function: re::digest_function::Value::Sha256 as i32,
            },
            self.answer,
        );
        match self.wait(
            "GetActionResult",
            self.answer,
            self.ac().get_action_result(req),
        )? {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(self.status("GetActionResult", &s)),
        }
    }

    /// Store `result` under `action`.
    pub fn update_action_result(
        &self,
        action: &Sha,
        result: re::ActionResult,
    ) -> Result<(), RemoteError> {
        self.check_up()?;
        let req = self.unary(
            re::UpdateActionResultRequest {
                instance_name: self.instance.clone(),
                action_digest: Some(action.proto()),
                action_result: Some(result),
                results_cache_policy: None,
                digest_function: re::digest_function::Value::Sha256 as i32,
            },
            self.answer,
        );
        self.wait(
            "UpdateActionResult",
            self.answer,
            self.ac().update_action_result(req),
        )?
        .map_err(|s| self.status("UpdateActionResult", &s))?;
        Ok(())
    }
}

/// Block SIGPIPE in this thread (one of the runtime's, which do every
/// write to the connections). cas sets SIGPIPE to its default, so that a
/// closed stdout ends it quietly; but rustls and hyper write to sockets
/// with `writev`, which raises SIGPIPE when the peer has gone (a server
/// that closes the connection after the TLS handshake, because it wants a
/// client certificate, killed cas so). Blocked, the write fails with EPIPE
/// and the call with it: the remote is then down, and the build goes on.
fn block_sigpipe() {
    // SAFETY: a signal set on the stack, and this thread's own mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut());
    }
}

/// `fut`, or `None` as soon as `interrupt` fires (SIGINT, SIGTERM;
/// checked every 50 ms).
async fn interruptible<F: Future>(
    interrupt: cas_store::remote::Interrupt,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        if interrupt.fired() {
            return None;
        }
        let mut tick = std::pin::pin!(tokio::time::sleep(Duration::from_millis(50)));
        let done = std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            if tick.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if let Some(v) = done {
            return Some(v);
        }
    }
}

/// A UUID (version 4 layout) unique to this process and upload.
fn upload_uuid(n: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&n.to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    let b = h.finalize();
    let mut x: [u8; 16] = b.as_bytes()[..16].try_into().unwrap_or([0; 16]);
    x[6] = (x[6] & 0x0f) | 0x40;
    x[8] = (x[8] & 0x3f) | 0x80;
    let s = hex::encode(x);
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    )
}

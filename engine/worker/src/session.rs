//! The bot session: create one, then keep it alive with UpdateBotSession
//! calls that report the worker's leases and take new ones. Idle, a call
//! long-polls (the scheduler answers when it assigns work, or after most of
//! the call's deadline); busy, the worker reports every half second, so a
//! finished lease is reported at once. A failed call (the server was
//! killed, the network went away) is retried on a fresh connection with a
//! growing pause, the running action left to finish; a session the server
//! no longer knows is created again. On stop (SIGTERM, SIGINT) the running
//! action is killed and the worker reports itself terminating.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bazel_remote_apis::google::protobuf::Any;
use bazel_remote_apis::google::rpc::Status;
use cas_reapi::ReapiRemote;
use cas_sandbox::Cancel;
use cas_store::Store;
use prost::Message;
use tonic::Code;

use crate::action::Ran;
use crate::bots::{
    self, BotSession, BotStatus, CreateBotSessionRequest, Device, Lease, LeaseState, Property,
    UpdateBotSessionRequest, Worker,
};
use crate::error::{Result, WorkerError};
use crate::input::Memo;

/// How long an idle UpdateBotSession may wait for work.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// The deadline of a report while busy (short enough that the server does
/// not wait for new work).
const BUSY_POLL: Duration = Duration::from_secs(2);
const BUSY_PAUSE: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a worker is told.
pub struct Options<'a> {
    /// `grpc://HOST:PORT[/INSTANCE]` of the Bots service (BuildGrid).
    pub server: String,
    /// Where CAS lives, if not on the server.
    pub cas: Option<String>,
    /// The bot's id (unique per worker).
    pub bot_id: String,
    /// The primary device's properties (matched against Action platforms).
    pub properties: Vec<(String, String)>,
    pub store: Arc<Store>,
    /// The store's REAPI state directory (the digest map).
    pub state: std::path::PathBuf,
    /// Set when the worker must stop.
    pub stop: &'a AtomicBool,
    /// Where the worker says what it does (one line each).
    pub say: &'a (dyn Fn(&str) + Sync),
}

struct Running {
    lease: String,
    cancel: Cancel,
    thread: JoinHandle<Result<Ran>>,
    /// Says when the thread is done (so it is reported at once).
    done: std::sync::mpsc::Receiver<()>,
}

fn any_of<M: Message>(type_name: &str, m: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: m.encode_to_vec(),
    }
}

/// A finished lease as the worker reports it.
fn completed(id: &str, outcome: &Result<Ran>) -> Lease {
    let (result, status) = match outcome {
        Ok(r) => (
            Some(any_of(
                "build.bazel.remote.execution.v2.ActionResult",
                &r.result,
            )),
            Status {
                code: 0,
                ..Default::default()
            },
        ),
        Err(e) => {
            let code = match e {
                WorkerError::Invalid(_) => Code::FailedPrecondition,
                WorkerError::Session(_) => Code::Aborted,
                _ => Code::Internal,
            };
            (
                None,
                Status {
                    code: code as i32,
                    message: e.to_string(),
                    details: Vec::new(),
                },
            )
        }
    };
    Lease {
        id: id.to_string(),
        state: LeaseState::Completed as i32,
        result,
        status: Some(status),
        ..Default::default()
    }
}

/// Serve leases until `opts.stop` is set.
pub fn serve(opts: &Options<'_>) -> Result<()> {
    let url = opts.cas.clone().unwrap_or_else(|| opts.server.clone());
    // The URL is checked once: a bad one is the user's error, not a
    // connection to retry.
    ReapiRemote::open(&url, &opts.state)?;
    let bots_url = cas_reapi::url::parse(&opts.server)?;
    let memo = Arc::new(Mutex::new(Memo::default()));
    let worker = Worker {
        devices: vec![Device {
            handle: opts.bot_id.clone(),
            properties: opts
                .properties
                .iter()
                .map(|(k, v)| Property {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }],
        properties: Vec::new(),
        configs: vec![Property {
            key: "capacity".into(),
            value: "1".into(),
        }],
    };
    let mut running: Option<Running> = None;
    let mut finished: Vec<Lease> = Vec::new();
    let mut backoff = Duration::from_millis(250);
    let mut session: Option<BotSession> = None;
    let mut connected_once = false;
    let mut lost = false;
    'connect: loop {
        if opts.stop.load(Ordering::SeqCst) && running.is_none() && session.is_none() {
            return Ok(());
        }
        let remote = Arc::new(ReapiRemote::open(&url, &opts.state)?);
        let bots = cas_reapi::client::Client::new(&opts.server, &bots_url)?;
        loop {
            // A finished action becomes a completed lease.
            if running.as_ref().is_some_and(|r| r.thread.is_finished()) {
                if let Some(r) = running.take() {
                    let outcome = r.thread.join().unwrap_or_else(|_| {
                        Err(WorkerError::Session("the action's thread panicked".into()))
                    });
                    match &outcome {
                        Ok(ran) => (opts.say)(&format!(
                            "lease {}: action {} exited {} ({} file(s), {} bytes fetched; \
                             inputs {} ms (root {} ms, {}), run {} ms, outputs {} ms)",
                            r.lease,
                            &ran.action.hex()[..12],
                            ran.result.exit_code,
                            ran.downloaded,
                            ran.downloaded_bytes,
                            ran.fetch_ms,
                            ran.stage_ms,
                            if ran.layered { "layered" } else { "copied" },
                            ran.run_ms,
                            ran.upload_ms
                        )),
                        Err(e) => (opts.say)(&format!("lease {}: failed: {e}", r.lease)),
                    }
                    finished.push(completed(&r.lease, &outcome));
                }
            }
            let stopping = opts.stop.load(Ordering::SeqCst);
            if stopping {
                if let Some(r) = &running {
                    r.cancel.cancel();
                }
            }
            let mut leases = finished.clone();
            if let Some(r) = &running {
                leases.push(Lease {
                    id: r.lease.clone(),
                    state: LeaseState::Active as i32,
                    ..Default::default()
                });
            }
            let status = if stopping {
                BotStatus::BotTerminating
            } else {
                BotStatus::Ok
            };
            let busy = running.is_some() || !finished.is_empty() || stopping;
            let deadline = if busy { BUSY_POLL } else { IDLE_POLL };
            let answer = match &session {
                None => {
                    let req = CreateBotSessionRequest {
                        parent: bots.instance().to_string(),
                        bot_session: Some(BotSession {
                            bot_id: opts.bot_id.clone(),
                            status: status as i32,
                            worker: Some(worker.clone()),
                            leases,
                            ..Default::default()
                        }),
                    };
                    bots.block_on(bots::call::<_, BotSession>(
                        bots.channel(),
                        "CreateBotSession",
                        req,
                        deadline,
                    ))
                }
                Some(s) => {
                    let req = UpdateBotSessionRequest {
                        name: s.name.clone(),
                        bot_session: Some(BotSession {
                            name: s.name.clone(),
                            bot_id: opts.bot_id.clone(),
                            status: status as i32,
                            worker: Some(worker.clone()),
                            leases,
                            version: s.version.clone(),
                            ..Default::default()
                        }),
                    };
                    bots.block_on(bots::call::<_, BotSession>(
                        bots.channel(),
                        "UpdateBotSession",
                        req,
                        deadline,
                    ))
                }
            };
            let answer = match answer {
                Ok(a) => a,
                Err(s) if s.code() == Code::DeadlineExceeded => continue,
                Err(s)
                    if session.is_some()
                        && matches!(
                            s.code(),
                            Code::NotFound | Code::InvalidArgument | Code::FailedPrecondition
                        ) =>
                {
                    (opts.say)(&format!(
                        "the server no longer knows bot session {} ({}): creating a new one",
                        session.as_ref().map_or("", |s| s.name.as_str()),
                        s.message()
                    ));
                    session = None;
                    continue;
                }
                Err(s) => {
                    if stopping && running.is_none() {
                        return Ok(());
                    }
                    // Unreachable, or reached and refusing (BuildGrid answers
                    // DataLoss to a name whose earlier session it is closing).
                    let what = if matches!(s.code(), Code::Unavailable | Code::Unknown) {
                        "cannot reach"
                    } else {
                        "the call failed on"
                    };
                    (opts.say)(&format!(
                        "{what} {} ({:?}: {}); retrying in {:.1} s",
                        opts.server,
                        s.code(),
                        s.message(),
                        backoff.as_secs_f64()
                    ));
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    lost = true;
                    continue 'connect;
                }
            };
            backoff = Duration::from_millis(250);
            if lost {
                (opts.say)(&format!(
                    "reconnected to {}: bot session {}",
                    opts.server, answer.name
                ));
                lost = false;
            }
            if session.is_none() || !connected_once {
                (opts.say)(&format!(
                    "bot session {} on {} ({} as {})",
                    answer.name,
                    opts.server,
                    opts.bot_id,
                    opts.properties
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
                connected_once = true;
            }
            if stopping {
                (opts.say)("stopped: reported the bot terminating");
                if let Some(r) = running.take() {
                    let _ = r.thread.join();
                }
                return Ok(());
            }
            // Reported completions the server took no longer come back.
            finished.retain(|f| answer.leases.iter().any(|l| l.id == f.id));
            for lease in &answer.leases {
                let state = LeaseState::try_from(lease.state).unwrap_or(LeaseState::Unspecified);
                let ours = running.as_ref().is_some_and(|r| r.lease == lease.id);
                match state {
                    LeaseState::Cancelled if ours => {
                        if let Some(r) = &running {
                            (opts.say)(&format!("lease {}: cancelled by the server", r.lease));
                            r.cancel.cancel();
                        }
                    }
                    // BuildGrid sends a new lease as ACTIVE (its job is
                    // executing once assigned); the API's own way is PENDING.
                    LeaseState::Pending | LeaseState::Active
                        if !ours
                            && running.is_none()
                            && !finished.iter().any(|f| f.id == lease.id) =>
                    {
                        let Some(payload) = lease.payload.clone() else {
                            finished.push(completed(
                                &lease.id,
                                &Err(WorkerError::Invalid("the lease has no payload".into())),
                            ));
                            continue;
                        };
                        (opts.say)(&format!("lease {}: started", lease.id));
                        let cancel = Cancel::new();
                        let (c, r, m) = (cancel.clone(), remote.clone(), memo.clone());
                        let store = opts.store.clone();
                        let bot = opts.bot_id.clone();
                        let (tx, done) = std::sync::mpsc::channel();
                        let thread = std::thread::spawn(move || {
                            let mut memo =
                                m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let ran = crate::action::run(&store, &r, &mut memo, &payload, &c, &bot);
                            let _ = tx.send(());
                            ran
                        });
                        running = Some(Running {
                            lease: lease.id.clone(),
                            cancel,
                            thread,
                            done,
                        });
                    }
                    _ => {}
                }
            }
            session = Some(answer);
            // Busy: report again when the action ends, or in a while.
            if let Some(r) = &running {
                let _ = r.done.recv_timeout(BUSY_PAUSE);
            } else if !finished.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

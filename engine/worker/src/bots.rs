//! The Remote Workers API (`google.devtools.remoteworkers.v1test2`), as
//! BuildGrid serves it: the messages a bot sends and receives, written out
//! by hand (field numbers from the API's `bots.proto` and `worker.proto`;
//! no crate ships them), and the two calls a worker makes.

use std::time::Duration;

use bazel_remote_apis::google::protobuf::{Any, Timestamp};
use bazel_remote_apis::google::rpc::Status;
use cas_reapi::connect::Service;

/// A bot's session with the scheduler: who it is, its state, its leases.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BotSession {
    /// Given by the server at creation (`{parent}/{uuid}`).
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub bot_id: String,
    #[prost(enumeration = "BotStatus", tag = "3")]
    pub status: i32,
    #[prost(message, optional, tag = "4")]
    pub worker: Option<Worker>,
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<Lease>,
    #[prost(message, optional, tag = "6")]
    pub expire_time: Option<Timestamp>,
    /// The server's version of the lease list (BuildGrid).
    #[prost(string, tag = "7")]
    pub version: String,
}

/// One unit of work: an Action (or its digest) in `payload`, its
/// ActionResult in `result` once done.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    #[prost(string, tag = "7")]
    pub id: String,
    #[prost(message, optional, tag = "8")]
    pub payload: Option<Any>,
    #[prost(message, optional, tag = "9")]
    pub result: Option<Any>,
    #[prost(enumeration = "LeaseState", tag = "2")]
    pub state: i32,
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
    #[prost(message, optional, tag = "5")]
    pub expire_time: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Worker {
    #[prost(message, repeated, tag = "1")]
    pub devices: Vec<Device>,
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
    #[prost(message, repeated, tag = "3")]
    pub configs: Vec<Property>,
}

/// The first device is the one that runs the work: its properties are
/// what the scheduler matches against an Action's platform.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Device {
    #[prost(string, tag = "1")]
    pub handle: String,
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
}

/// `Worker.Property`, `Worker.Config` and `Device.Property` share this shape.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Property {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateBotSessionRequest {
    #[prost(string, tag = "1")]
    pub parent: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateBotSessionRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BotStatus {
    Unspecified = 0,
    Ok = 1,
    Unhealthy = 2,
    HostRebooting = 3,
    BotTerminating = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LeaseState {
    Unspecified = 0,
    Pending = 1,
    Active = 2,
    Completed = 4,
    Cancelled = 5,
}

const SERVICE: &str = "google.devtools.remoteworkers.v1test2.Bots";

/// One unary call of the Bots service, with a deadline (the server's long
/// poll waits for work for most of it).
pub async fn call<Req, Resp>(
    channel: Service,
    method: &'static str,
    req: Req,
    timeout: Duration,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let path = http::uri::PathAndQuery::try_from(format!("/{SERVICE}/{method}"))
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let mut request = tonic::Request::new(req);
    request.set_timeout(timeout);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    Ok(grpc.unary(request, path, codec).await?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_lease_encodes_with_the_apis_field_numbers() {
        let lease = Lease {
            id: "j".into(),
            state: LeaseState::Completed as i32,
            ..Default::default()
        };
        // state = field 2 (varint 4), id = field 7 (length-delimited "j")
        assert_eq!(lease.encode_to_vec(), vec![0x10, 4, 0x3a, 1, b'j']);
        let s = BotSession {
            bot_id: "b".into(),
            status: BotStatus::BotTerminating as i32,
            ..Default::default()
        };
        assert_eq!(s.encode_to_vec(), vec![0x12, 1, b'b', 0x18, 4]);
    }
}

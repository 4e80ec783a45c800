//! Messages of the standalone PBFT protocol: client requests and replies,
//! forwarded requests, the consensus instance's messages (which order
//! [`Batch`]es), and state transfer.

use quorate_core::crypto::{Crypto, Digest, Mac};
use quorate_core::executor::Checkpoint;
use quorate_core::ids::{ClientId, NodeId};
use quorate_core::machine::Message;
use quorate_core::request::SignedRequest;
use quorate_core::Bytes;
use quorate_engines::pbft::{digest_encoded, PbftMsg, Value};
use serde::{Deserialize, Serialize};

/// What one sequence number orders: a batch of signed client requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Timestamp (ns) chosen by the primary; agreed with the batch and
    /// passed to the service as is.
    pub timestamp: u64,
    /// Requests, executed in this order.
    pub requests: Vec<SignedRequest>,
}

impl Value for Batch {
    fn digest(&self, crypto: &dyn Crypto) -> Digest {
        digest_encoded(b"quorate-pbft-batch", self, crypto)
    }
}

/// A replica's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The replica's view (clients send to its primary next).
    pub view: u64,
    /// The request's sequence number.
    pub seq: u64,
    /// The service's reply.
    pub result: Bytes,
    /// MAC for the client over (view, seq, digest of result).
    pub mac: Mac,
}

impl Reply {
    /// The bytes the MAC covers.
    pub fn mac_bytes(client: ClientId, view: u64, seq: u64, result: &[u8]) -> Vec<u8> {
        let mut b = b"quorate-pbft/reply/".to_vec();
        b.extend_from_slice(&client.0.to_le_bytes());
        b.extend_from_slice(&view.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&Digest::of(result).0);
        b
    }
}

/// Messages of the standalone protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Client → primary (and → all when it retransmits).
    Request(SignedRequest),
    /// Replica → client.
    Reply(Reply),
    /// Backup → primary: requests clients sent to the backup.
    Forward(Vec<SignedRequest>),
    /// The consensus instance.
    Pbft(PbftMsg<Batch>),
    /// Ask for the state after `seq` (its digest must be `digest`).
    StateRequest {
        /// Sequence number of the checkpoint.
        seq: u64,
        /// Its digest.
        digest: Digest,
    },
    /// The state after `seq`.
    StateReply {
        /// Sequence number of the checkpoint.
        seq: u64,
        /// The executor's checkpoint (service snapshot and request table).
        checkpoint: Box<Checkpoint>,
    },
}

impl Message for Msg {
    fn request_mut(&mut self) -> Option<&mut SignedRequest> {
        match self {
            Msg::Request(r) => Some(r),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Msg::Request(_) => "REQUEST",
            Msg::Reply(_) => "REPLY",
            Msg::Forward(_) => "FORWARD",
            Msg::Pbft(m) => m.kind(),
            Msg::StateRequest { .. } => "STATE-REQUEST",
            Msg::StateReply { .. } => "STATE-REPLY",
        }
    }

    fn preverify(&self, _from: NodeId, crypto: &dyn Crypto) {
        let requests = |rs: &[SignedRequest]| {
            for r in rs.iter().filter(|r| !r.sig.0.is_empty()) {
                r.verify(crypto);
            }
        };
        match self {
            Msg::Request(r) => requests(std::slice::from_ref(r)),
            Msg::Forward(rs) => requests(rs),
            Msg::Pbft(PbftMsg::PrePrepare { value, .. }) | Msg::Pbft(PbftMsg::Value { value, .. }) => {
                requests(&value.requests)
            }
            _ => {}
        }
    }
}

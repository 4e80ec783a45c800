//! Mod-SMaRt messages (thesis Alg. 1–4, §4.2.3) and the data they carry.
//!
//! Consensus messages name a regency; the VP-Consensus epoch of instance
//! messages sent in regency `r` is `r + 1`, so epoch 0 means "never accepted".

use quorate_core::crypto::{Crypto, Digest, Signature};
use quorate_core::executor::Checkpoint;
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::Message;
use quorate_core::request::SignedRequest;
use quorate_core::Bytes;
use serde::{Deserialize, Serialize};

/// A batch of requests decided by one consensus instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Agreed timestamp (ns), chosen by the leader, non-decreasing across instances.
    pub timestamp: u64,
    /// Requests, executed in this order.
    pub requests: Vec<SignedRequest>,
}

impl Batch {
    /// The value consensus runs on: the digest of the encoded batch.
    pub fn digest(&self, crypto: &dyn Crypto) -> Digest {
        crypto.digest(&quorate_core::wire::encode(self))
    }
}

/// A decided instance with its proof Γ: a quorum of ACCEPT signatures for
/// (instance, epoch, digest). In crash-fault mode the signatures are empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Consensus instance.
    pub instance: u64,
    /// Epoch (regency + 1) in which the quorum accepted.
    pub epoch: u64,
    /// The decided batch.
    pub batch: Batch,
    /// The ACCEPTs: signer and signature.
    pub proof: Vec<(ReplicaId, Signature)>,
}

/// The bytes an ACCEPT signature covers.
pub fn accept_bytes(instance: u64, epoch: u64, value: &Digest) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(b"quorate-modsmart-accept");
    b.extend_from_slice(&instance.to_le_bytes());
    b.extend_from_slice(&epoch.to_le_bytes());
    b.extend_from_slice(&value.0);
    b
}

/// A replica's VP-Consensus state for one instance (Cachin's
/// `[valts, val, writeset]`), sent in STOPDATA so the new leader can find a
/// safe value (the optimized synchronization of thesis §3.6.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    /// The instance this state is about.
    pub instance: u64,
    /// Epoch in which this replica last saw a WRITE quorum (0: never).
    pub valts: u64,
    /// The value of that WRITE quorum.
    pub val: Option<Digest>,
    /// The batch of `val`, so a leader can re-propose it.
    pub val_batch: Option<Batch>,
    /// (epoch, value) pairs this replica has written, latest epoch per value.
    pub writeset: Vec<(u64, Digest)>,
}

/// STOPDATA contents (thesis Alg. 3 l.25): the replica's latest decision with
/// its proof, and its state for the instance after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopData {
    /// The regency being installed.
    pub regency: u64,
    /// Sender.
    pub replica: ReplicaId,
    /// The sender's latest decided instance, with proof.
    pub last_decided: Option<Decision>,
    /// The sender's consensus state for the next instance.
    pub state: InstanceState,
}

impl StopData {
    /// The bytes the sender signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut b = b"quorate-modsmart-stopdata".to_vec();
        b.extend_from_slice(&quorate_core::wire::encode(self));
        b
    }
}

/// A signed STOPDATA: the leader forwards these in SYNC, so they must be
/// verifiable by everybody.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStopData {
    /// Contents.
    pub data: StopData,
    /// The sender's signature of [`StopData::signing_bytes`].
    pub sig: Signature,
}

/// A replica's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's sequence number.
    pub seq: u64,
    /// Answer to a read-only (unordered) request.
    pub read_only: bool,
    /// The service's reply.
    pub result: Bytes,
}

/// What a replica sends in answer to a state request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReply {
    /// Round of the request this answers.
    pub attempt: u32,
    /// Instance covered by the sender's latest checkpoint (None: none taken yet).
    pub checkpoint_instance: Option<u64>,
    /// Digest of that checkpoint.
    pub checkpoint_digest: Digest,
    /// The checkpoint itself, from the one replica asked to send it.
    pub checkpoint: Option<Checkpoint>,
    /// Agreed timestamp of the last instance in the checkpoint.
    pub checkpoint_timestamp: u64,
    /// Decided instances after the checkpoint, with proofs.
    pub log: Vec<Decision>,
}

/// Mod-SMaRt messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Client → replicas: a request (Alg. 1 l.9).
    Request(SignedRequest),
    /// Replica → client (Alg. 2 l.17, l.28).
    Reply(Reply),
    /// Leader → replicas: the full batch for an instance (VP-Consensus).
    Propose {
        /// Regency of the sender.
        regency: u64,
        /// Instance.
        instance: u64,
        /// The proposed batch.
        batch: Batch,
    },
    /// All → all: weak acceptance of a value (hash only).
    Write {
        /// Regency of the sender.
        regency: u64,
        /// Instance.
        instance: u64,
        /// Batch digest.
        value: Digest,
    },
    /// All → all: strong acceptance, signed so a quorum proves the decision.
    Accept {
        /// Regency of the sender.
        regency: u64,
        /// Instance.
        instance: u64,
        /// Batch digest.
        value: Digest,
        /// Signature of [`accept_bytes`].
        sig: Signature,
    },
    /// Requests whose timer expired once (Alg. 3 l.3).
    Forwarded {
        /// The requests.
        requests: Vec<SignedRequest>,
    },
    /// Suspicion of the leader: move to `regency` (Alg. 3 l.9).
    Stop {
        /// The regency asked for.
        regency: u64,
        /// Requests that timed out.
        requests: Vec<SignedRequest>,
    },
    /// Replica → new leader (Alg. 3 l.25).
    StopData(SignedStopData),
    /// New leader → all (Alg. 4 l.31): n−f signed STOPDATAs and, when no value
    /// is bound, the leader's proposal for the next instance.
    Sync {
        /// The new regency.
        regency: u64,
        /// The STOPDATAs the leader collected.
        stopdata: Vec<SignedStopData>,
        /// Proposal for the next instance when no value is bound.
        proposal: Option<Batch>,
    },
    /// Ask a peer for a decided instance (catch-up).
    DecisionRequest {
        /// Wanted instance.
        instance: u64,
        /// The asker's regency (a peer further ahead answers with its SYNC).
        regency: u64,
    },
    /// A decided instance with proof.
    Decision(Decision),
    /// The peer truncated its log past the wanted instance: use state transfer.
    DecisionUnavailable {
        /// The peer's latest checkpoint instance.
        checkpoint_instance: u64,
    },
    /// Ask for state: checkpoint and log (thesis §4.2.3.2 STATE_REQUEST).
    StateRequest {
        /// Round, to tell replies of retries apart.
        attempt: u32,
        /// The replica asked for the full checkpoint; others send its digest.
        designated: ReplicaId,
    },
    /// Answer to a state request (STATE_REPLY).
    StateReply(Box<StateReply>),
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
            Msg::Propose { .. } => "PROPOSE",
            Msg::Write { .. } => "WRITE",
            Msg::Accept { .. } => "ACCEPT",
            Msg::Forwarded { .. } => "FORWARDED",
            Msg::Stop { .. } => "STOP",
            Msg::StopData(_) => "STOPDATA",
            Msg::Sync { .. } => "SYNC",
            Msg::DecisionRequest { .. } => "DECISION_REQUEST",
            Msg::Decision(_) => "DECISION",
            Msg::DecisionUnavailable { .. } => "DECISION_UNAVAILABLE",
            Msg::StateRequest { .. } => "STATE_REQUEST",
            Msg::StateReply(_) => "STATE_REPLY",
        }
    }

    fn preverify(&self, from: NodeId, crypto: &dyn Crypto) {
        let requests = |rs: &[SignedRequest]| {
            for r in rs.iter().filter(|r| !r.sig.0.is_empty()) {
                r.verify(crypto);
            }
        };
        match self {
            Msg::Request(r) => requests(std::slice::from_ref(r)),
            Msg::Propose { batch, .. } => requests(&batch.requests),
            Msg::Forwarded { requests: rs } | Msg::Stop { requests: rs, .. } => requests(rs),
            Msg::Accept { regency, instance, value, sig } if !sig.0.is_empty() => {
                crypto.verify(from, &accept_bytes(*instance, regency + 1, value), sig);
            }
            Msg::Decision(d) => {
                let bytes = accept_bytes(d.instance, d.epoch, &d.batch.digest(crypto));
                for (r, sig) in d.proof.iter().filter(|(_, s)| !s.0.is_empty()) {
                    crypto.verify(NodeId::Replica(*r), &bytes, sig);
                }
            }
            _ => {}
        }
    }
}

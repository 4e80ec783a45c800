//! The DQBFT messages: client requests and replies (MAC'd, or Destiny's
//! threshold-signed answers), requests relayed to an instance's
//! coordinator, the D-instances' and the O-instance's engine messages
//! (D-PrePrepare … O-Commit of Fig. 5; D-Prepare … O-Commit of Fig. 6b),
//! flooded D-proposal payloads, and state transfer.

use quorate_core::crypto::{Crypto, Digest, Mac, Signature};
use quorate_core::executor::Checkpoint;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::Message;
use quorate_core::request::SignedRequest;
use quorate_core::Bytes;
use quorate_engines::instance::{digest_encoded, InstanceMsg, Value};
use quorate_threshsign::{destiny, CounterId, Share, Statement, ThresholdSig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What one D-instance sequence number holds: a batch of its coordinator's
/// client requests (empty: a no-op, proposed to fill a slot the O-instance
/// ordered but nobody disseminated).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DBatch {
    /// Timestamp (ns) chosen by the coordinator, passed to the service.
    pub timestamp: u64,
    /// Requests, executed in this order. Shared: every replica's copy of a
    /// batch (the simulator delivers one value to N replicas, and each keeps
    /// it until a checkpoint) is one allocation.
    pub requests: Arc<[SignedRequest]>,
}

impl Value for DBatch {
    fn digest(&self, crypto: &dyn Crypto) -> Digest {
        digest_encoded(b"quorate-dqbft-d", self, crypto)
    }
}

/// A D-instance slot: (R_n, S_ni).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DRef {
    /// The D-instance (its initial coordinator's id).
    pub instance: u32,
    /// Its sequence number there.
    pub seq: u64,
}

/// A client's request to send its requests to D-instance `instance` from
/// now on (§3.2.6), signed by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assign {
    /// The client.
    pub client: ClientId,
    /// The D-instance.
    pub instance: u32,
    /// Increasing per client: a later ASSIGN replaces an earlier one.
    pub nonce: u64,
    /// The client's signature of [`Assign::signing_bytes`].
    pub sig: Signature,
}

impl Assign {
    /// A signed ASSIGN.
    pub fn sign(client: ClientId, instance: u32, nonce: u64, crypto: &dyn Crypto) -> Assign {
        let sig = crypto.sign(&Assign::signing_bytes(client, instance, nonce));
        Assign { client, instance, nonce, sig }
    }

    /// The bytes the client signs.
    pub fn signing_bytes(client: ClientId, instance: u32, nonce: u64) -> Vec<u8> {
        let mut b = b"quorate-dqbft/assign/".to_vec();
        b.extend_from_slice(&client.0.to_le_bytes());
        b.extend_from_slice(&instance.to_le_bytes());
        b.extend_from_slice(&nonce.to_le_bytes());
        b
    }

    /// Whether the client signed it.
    pub fn verify(&self, crypto: &dyn Crypto) -> bool {
        let bytes = Assign::signing_bytes(self.client, self.instance, self.nonce);
        crypto.verify(NodeId::Client(self.client), &bytes, &self.sig)
    }
}

/// What one O-instance sequence number orders: D-instance slots, executed
/// in this order (several per O-slot, as the source's artifact does), then
/// clients' ASSIGNs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OBatch {
    /// The slots.
    pub refs: Vec<DRef>,
    /// ASSIGNs, applied after the slots.
    pub assigns: Vec<Assign>,
    /// D-instances' coordinator changes, applied last: from here on in the
    /// order, clients of an instance whose owner does not coordinate it use
    /// another owner's instance, and come back once it is reinstated (§3.2.5).
    pub handovers: Vec<Handover>,
}

/// A D-instance installed `view` (coordinator `(view + instance) mod n`):
/// f+1 replicas say so, so at least one correct replica installed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// The D-instance.
    pub instance: u32,
    /// The view it installed.
    pub view: u64,
    /// Signatures of distinct replicas on [`view_notice_bytes`].
    pub sigs: Vec<(ReplicaId, Signature)>,
}

/// What a replica signs when its D-instance `instance` installs `view`.
pub fn view_notice_bytes(instance: u32, view: u64) -> Vec<u8> {
    let mut b = b"quorate-dqbft/view-notice/".to_vec();
    b.extend_from_slice(&instance.to_le_bytes());
    b.extend_from_slice(&view.to_le_bytes());
    b
}

impl Value for OBatch {
    fn digest(&self, crypto: &dyn Crypto) -> Digest {
        digest_encoded(b"quorate-dqbft-o", self, crypto)
    }
}

/// A replica's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's sequence number.
    pub seq: u64,
    /// The service's reply.
    pub result: Bytes,
    /// MAC for the client over (seq, digest of result).
    pub mac: Mac,
}

/// The bytes an ASSIGNED's MAC covers.
pub fn assigned_mac_bytes(client: ClientId, nonce: u64, instance: u32) -> Vec<u8> {
    let mut b = b"quorate-dqbft/assigned/".to_vec();
    b.extend_from_slice(&client.0.to_le_bytes());
    b.extend_from_slice(&nonce.to_le_bytes());
    b.extend_from_slice(&instance.to_le_bytes());
    b
}

impl Reply {
    /// The bytes the MAC covers.
    pub fn mac_bytes(client: ClientId, seq: u64, result: &[u8]) -> Vec<u8> {
        let mut b = b"quorate-dqbft/reply/".to_vec();
        b.extend_from_slice(&client.0.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&Digest::of(result).0);
        b
    }
}

/// The replicated state beyond the executor's at an O-instance checkpoint:
/// which D-instance slots are executed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Per D-instance: every slot up to here is executed.
    pub prefix: Vec<u64>,
    /// Per D-instance: executed slots above the prefix (an O-primary may
    /// order an instance's slots out of order).
    pub above: Vec<std::collections::BTreeSet<u64>>,
    /// Clients' D-instances by ASSIGN (instance, nonce); a client without one
    /// uses instance `client mod n`.
    pub assigned: std::collections::BTreeMap<ClientId, (u32, u64)>,
    /// Per D-instance: the latest view an ordered [`Handover`] names (none:
    /// view 0, its owner's).
    pub views: std::collections::BTreeMap<u32, u64>,
}

/// The state at an O-instance checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The executor's checkpoint (service snapshot and request table).
    pub exec: Checkpoint,
    /// Executed D-instance slots.
    pub progress: Progress,
}

impl State {
    /// The digest the O-instance's CHECKPOINT votes carry.
    pub fn digest(&self) -> Digest {
        Digest::of_parts(&[b"quorate-dqbft-state", &self.exec.digest.0, &quorate_core::wire::encode(&self.progress)])
    }
}

/// One answer in a Destiny answer list: H(client, seq, H(result)).
pub fn answer_digest(client: ClientId, seq: u64, result: &[u8]) -> Digest {
    Digest::of_parts(&[b"quorate-dqbft/answer", &client.0.to_le_bytes(), &seq.to_le_bytes(), &Digest::of(result).0])
}

/// What Destiny's π shares sign (§4.3.2: replicas sign "the resulting
/// state" at a global position): the answers of the requests one D-slot
/// executed, at O-slot `order`; `slot` None for an answer given again to a
/// retransmission (a list of one). π is untrusted: the counter value only
/// names the position.
pub fn answers_statement(slot: Option<DRef>, order: u64, answers: &[Digest]) -> Statement {
    let (i, s) = slot.map_or((u32::MAX, 0), |r| (r.instance, r.seq));
    let mut parts: Vec<&[u8]> = Vec::with_capacity(answers.len() + 4);
    let (ib, sb) = (i.to_le_bytes(), s.to_le_bytes());
    parts.extend([b"quorate-dqbft/answers".as_slice(), &ib, &sb]);
    parts.extend(answers.iter().map(|d| d.0.as_slice()));
    Statement { instance: destiny::PI, counter: CounterId(0), value: order, msg_hash: Digest::of_parts(&parts) }
}

/// How a Destiny answer is proved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnswerProof {
    /// One replica's π share (sent to a client that came to it itself).
    Share(Share),
    /// f+1 shares combined by the execution collector (ExecProof).
    Threshold(ThresholdSig),
}

/// Messages of the DQBFT paradigm; `D` and `O` are the D- and O-instances'
/// engine messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg<D, O> {
    /// Client → its replica (and → all when it retransmits).
    Request(SignedRequest),
    /// Replica → client (DQPBFT: the client takes f+1 matching).
    Reply(Reply),
    /// Replica → the execution collector of a D-slot's requests (Destiny's
    /// ExecSig): its π share on the slot's answers.
    ExecSig {
        /// The D-slot.
        slot: DRef,
        /// The O-slot it executed at.
        order: u64,
        /// Share on [`answers_statement`] (the collector has the answers).
        share: Share,
    },
    /// Replica → client (Destiny's ExecProof): the answers of the D-slot
    /// its request executed in, its own result, and their proof.
    ExecProof {
        /// The D-slot (None: an answer given again).
        slot: Option<DRef>,
        /// The O-slot.
        order: u64,
        /// Every answer of the slot, in execution order ([`answer_digest`]).
        answers: Vec<Digest>,
        /// The request's sequence number.
        seq: u64,
        /// The service's reply to it.
        result: Bytes,
        /// The proof.
        proof: AnswerProof,
    },
    /// Client → every replica (which relay it to the O-primary): ASSIGN.
    Assign(Assign),
    /// Replica → client: its ASSIGN with `nonce` is executed.
    Assigned {
        /// The ASSIGN's nonce.
        nonce: u64,
        /// Its D-instance.
        instance: u32,
        /// MAC for the client over (nonce, instance).
        mac: Mac,
    },
    /// Replica → an instance's coordinator: requests its clients sent elsewhere.
    Forward {
        /// The D-instance.
        instance: u32,
        /// The requests.
        requests: Vec<SignedRequest>,
    },
    /// A D-instance's message.
    D {
        /// The D-instance.
        instance: u32,
        /// The message.
        msg: D,
    },
    /// The O-instance's message.
    O(O),
    /// A D-proposal's payload, flooded by a replica that accepted it
    /// (§3.2.4): every replica holds it one step after the first correct one.
    Flood {
        /// The D-instance.
        instance: u32,
        /// Its sequence number.
        seq: u64,
        /// The payload.
        batch: DBatch,
    },
    /// Ask for the state at O-instance checkpoint `seq` (0: the latest stable one).
    StateRequest {
        /// Sequence number of the checkpoint, or 0.
        seq: u64,
    },
    /// The state at O-instance checkpoint `seq`.
    StateReply {
        /// Sequence number of the checkpoint.
        seq: u64,
        /// The state.
        state: Box<State>,
    },
    /// Replica → all: its D-instance `instance` installed `view` (the
    /// O-primary orders a [`Handover`] from f+1 of them).
    ViewNotice {
        /// The D-instance.
        instance: u32,
        /// The view.
        view: u64,
        /// Signature on [`view_notice_bytes`].
        sig: Signature,
    },
    /// A recovered replica → all: give me my D-instance back (§3.2.5
    /// reinstatement); the health check looks at its stable O-checkpoint.
    Reinstate {
        /// Its stable O-checkpoint.
        seq: u64,
        /// Its digest.
        digest: Digest,
    },
}

/// An engine message kind as a D- or O-instance message kind (the paper's
/// names: D-PrePrepare for PBFT, D-Prepare and D-CommitSig for Linear Hybster).
fn instance_kind(d: bool, kind: &str) -> &'static str {
    match (d, kind) {
        (true, "PRE-PREPARE") => "D-PREPREPARE",
        (true, "PREPARE") => "D-PREPARE",
        (true, "COMMIT-SHARE") => "D-COMMITSIG",
        (true, "COMMIT") => "D-COMMIT",
        (true, "CHECKPOINT-SHARE") => "D-CHECKPOINTSIG",
        (true, "CHECKPOINT") => "D-CHECKPOINT",
        (true, "VIEW-CHANGE") => "D-VIEWCHANGE",
        (true, "NEW-VIEW") => "D-NEWVIEW",
        (true, "STATUS") => "D-STATUS",
        (true, "DECIDED") => "D-DECIDED",
        (true, "FETCH") => "D-FETCH",
        (true, "VALUE") => "D-VALUE",
        (true, _) => "D-OTHER",
        (false, "PRE-PREPARE") => "O-PREPREPARE",
        (false, "PREPARE") => "O-PREPARE",
        (false, "COMMIT-SHARE") => "O-COMMITSIG",
        (false, "COMMIT") => "O-COMMIT",
        (false, "CHECKPOINT-SHARE") => "O-CHECKPOINTSIG",
        (false, "CHECKPOINT") => "O-CHECKPOINT",
        (false, "VIEW-CHANGE") => "O-VIEWCHANGE",
        (false, "NEW-VIEW") => "O-NEWVIEW",
        (false, "STATUS") => "O-STATUS",
        (false, "DECIDED") => "O-DECIDED",
        (false, "FETCH") => "O-FETCH",
        (false, "VALUE") => "O-VALUE",
        (false, _) => "O-OTHER",
    }
}

impl<D: InstanceMsg<DBatch>, O: InstanceMsg<OBatch>> Message for Msg<D, O> {
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
            Msg::ExecSig { .. } => "EXECSIG",
            Msg::ExecProof { .. } => "EXECPROOF",
            Msg::Assign(_) => "ASSIGN",
            Msg::Assigned { .. } => "ASSIGNED",
            Msg::Forward { .. } => "FORWARD",
            Msg::D { msg, .. } => instance_kind(true, msg.kind()),
            Msg::O(msg) => instance_kind(false, msg.kind()),
            Msg::Flood { .. } => "FLOOD",
            Msg::StateRequest { .. } => "STATE-REQUEST",
            Msg::StateReply { .. } => "STATE-REPLY",
            Msg::ViewNotice { .. } => "VIEW-NOTICE",
            Msg::Reinstate { .. } => "REINSTATE",
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
            Msg::Forward { requests: rs, .. } => requests(rs),
            Msg::D { msg, .. } => {
                for v in msg.values() {
                    requests(&v.requests)
                }
            }
            Msg::Flood { batch, .. } => requests(&batch.requests),
            _ => {}
        }
    }
}

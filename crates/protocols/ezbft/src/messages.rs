//! EZBFT messages (paper §IV; digest `../shared/specs/ezbft.md` §3).
//!
//! Every message on the critical path is signed, as in the paper: REQUEST and
//! COMMIT by the client, SPECORDER by the command-leader, SPECREPLY by each
//! replying replica (over its own identity and a digest of its result, so a
//! reply can serve as evidence), ACCEPT and CONFIRM by the voting replica
//! (votes make up commit proofs). COMMITFAST and COMMITREPLY carry no
//! signature: the first is a certificate of signed replies, the second is
//! counted by the client over authenticated channels.

use quorate_core::crypto::{Crypto, Digest, Signature};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::membership::Membership;
use quorate_core::request::SignedRequest;
use quorate_core::{wire, Bytes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A slot of a replica's instance space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId {
    /// Whose space.
    pub space: ReplicaId,
    /// The slot in it (from 0).
    pub slot: u64,
}

/// A message body with its signer's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What was signed.
    pub body: T,
    /// The signature of [`Signable::signing_bytes`] of `body`.
    pub sig: Signature,
}

/// A body that can be signed: its bytes carry a label of its kind.
pub trait Signable: Serialize + Sized {
    /// Label that keeps one kind's signature from passing as another's.
    const LABEL: &'static [u8];
    /// The bytes signed.
    fn signing_bytes(&self) -> Vec<u8> {
        wire::encode_after(Self::LABEL, self)
    }
}

impl<T: Signable> Signed<T> {
    /// Sign `body` with `crypto`.
    pub fn sign(body: T, crypto: &dyn Crypto) -> Self {
        let sig = crypto.sign(&body.signing_bytes());
        Signed { body, sig }
    }
    /// Whether `signer` signed it.
    pub fn verify(&self, signer: NodeId, crypto: &dyn Crypto) -> bool {
        crypto.verify(signer, &self.body.signing_bytes(), &self.sig)
    }
}

/// The command-leader's order for a command: SPECORDER's signed part
/// `⟨SPECORDER, O, I, D, S, h, d⟩`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecOrder {
    /// Owner number of the space.
    pub owner: u64,
    /// Where the command goes.
    pub inst: InstanceId,
    /// Dependencies (sorted, no repeats).
    pub deps: Vec<InstanceId>,
    /// Sequence number.
    pub seq: u64,
    /// Digest of the space's history up to and including this slot (h).
    pub history: Digest,
    /// Digest of the client's request (d).
    pub request: Digest,
}

impl Signable for SpecOrder {
    const LABEL: &'static [u8] = b"ezbft-specorder";
}

/// A replica's speculative answer: SPECREPLY's signed part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecReplyBody {
    /// The replying replica.
    pub replica: ReplicaId,
    /// Owner number of the space.
    pub owner: u64,
    /// The instance.
    pub inst: InstanceId,
    /// Dependencies as this replica sees them (D').
    pub deps: Vec<InstanceId>,
    /// Sequence number as this replica sees it (S').
    pub seq: u64,
    /// Digest of the request.
    pub request: Digest,
    /// The client.
    pub client: ClientId,
    /// The client's timestamp of the request.
    pub t: u64,
    /// Digest of the speculative result.
    pub result: Digest,
}

impl Signable for SpecReplyBody {
    const LABEL: &'static [u8] = b"ezbft-specreply";
}

impl SpecReplyBody {
    /// Whether two replies agree on everything the client matches (all but the sender).
    pub fn matches(&self, other: &SpecReplyBody) -> bool {
        SpecReplyBody { replica: other.replica, ..self.clone() } == *other
    }
}

/// SPECREPLY: the signed body, the result and the leader's signed order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecReply {
    /// Signed by `body.replica`.
    pub reply: Signed<SpecReplyBody>,
    /// The speculative result.
    pub result: Bytes,
    /// The command-leader's order the reply is about (SO).
    pub order: Signed<SpecOrder>,
}

impl SpecReply {
    /// Whether the reply is well-formed and signed by its replica, and its order
    /// by the owner of the space (`owner mod n`).
    pub fn verify(&self, m: &Membership, crypto: &dyn Crypto) -> bool {
        let (b, o) = (&self.reply.body, &self.order.body);
        m.contains(b.replica)
            && b.owner == o.owner
            && b.inst == o.inst
            && b.request == o.request
            && m.contains(o.inst.space)
            && canonical(&b.deps)
            && canonical(&o.deps)
            && b.result == Digest::of(&self.result)
            && self.reply.verify(NodeId::Replica(b.replica), crypto)
            && self.order.verify(NodeId::Replica(owner_replica(o.owner, m)), crypto)
    }
}

/// What a client commits on the slow path: COMMIT's signed part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitBody {
    /// The client.
    pub client: ClientId,
    /// The instance.
    pub inst: InstanceId,
    /// Union of the quorum's dependencies (D').
    pub deps: Vec<InstanceId>,
    /// Highest of the quorum's sequence numbers (S').
    pub seq: u64,
}

impl Signable for CommitBody {
    const LABEL: &'static [u8] = b"ezbft-commit";
}

/// What a client (or, for a barrier, its owner) proposes to commit: a
/// certificate of SPECREPLYs from which every replica derives the same
/// (order, D, S).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proposal {
    /// 3f+1 matching SPECREPLYs (COMMITFAST).
    Fast(Vec<SpecReply>),
    /// A client-signed COMMIT and its 2f+1 SPECREPLYs.
    Slow {
        /// The client's commit.
        commit: Signed<CommitBody>,
        /// The replies it combines.
        cert: Vec<SpecReply>,
    },
}

/// The two voting rounds that turn one proposal into the slot's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// ACCEPT: the first valid proposal this replica saw for the slot.
    Accept,
    /// CONFIRM: this replica holds 2f+1 ACCEPTs for the proposal.
    Confirm,
}

/// ACCEPT's and CONFIRM's signed part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteBody {
    /// The voting replica.
    pub replica: ReplicaId,
    /// The slot.
    pub inst: InstanceId,
    /// Which round.
    pub phase: Phase,
    /// [`commit_digest`] of what the proposal commits.
    pub commit: Digest,
}

impl Signable for VoteBody {
    const LABEL: &'static [u8] = b"ezbft-vote";
}

/// What a vote names: the order, dependencies and sequence number a proposal commits.
pub fn commit_digest(order: &Signed<SpecOrder>, deps: &[InstanceId], seq: u64) -> Digest {
    Digest::of(&wire::encode(&(order, deps, seq)))
}

/// A proposal with the signed votes for it. With 3f+1 ACCEPTs or 2f+1
/// CONFIRMs it proves the commit; with 2f+1 ACCEPTs only that no other
/// proposal can be committed (prepared, shown in owner-change views).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitProof {
    /// What was agreed on.
    pub proposal: Proposal,
    /// The votes, all of one phase, from distinct replicas.
    pub votes: Vec<Signed<VoteBody>>,
}

/// One slot of a space as a replica reports it in OWNERCHANGE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotReport {
    /// The owner's signed order.
    pub order: Signed<SpecOrder>,
    /// The client's request.
    pub request: SignedRequest,
    /// The reporting replica's own SPECREPLY for it.
    pub reply: Option<SpecReply>,
    /// The proposal the replica accepted for the slot, if any.
    pub accepted: Option<Proposal>,
    /// Its commit proof, or else a prepared certificate, if it holds one.
    pub cert: Option<CommitProof>,
}

/// OWNERCHANGE's signed part: a replica's view of a space since its last
/// stable checkpoint (the paper's "since the last checkpoint").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChangeBody {
    /// The reporting replica.
    pub replica: ReplicaId,
    /// The space.
    pub space: ReplicaId,
    /// The new owner number (O + 1).
    pub owner: u64,
    /// The stable checkpoint the history starts after (none: from slot 0).
    pub stable: Option<StableCheckpoint>,
    /// Every slot the replica has, from the checkpoint's end of the space.
    pub history: Vec<SlotReport>,
    /// The latest NEWOWNER of this epoch of the space that the reporter
    /// holds prepared (2f+1 ACCEPT votes), for an earlier owner number: the
    /// new owner's G must be that NEWOWNER's, since some replica may have
    /// installed it.
    pub prepared: Option<Box<NewOwnerCert>>,
}

impl OwnerChangeBody {
    /// The first slot `history` reports: the start of the epoch of the owner
    /// being replaced, or the checkpoint's end of the space if later.
    pub fn start(&self, n: usize) -> u64 {
        view_start(self.space, self.owner, self.stable.as_ref(), n)
    }
}

/// Where a view of `space` for new owner number `owner` starts: the start of
/// the replaced owner's epoch, or the end of the stable checkpoint if later.
pub fn view_start(space: ReplicaId, owner: u64, stable: Option<&StableCheckpoint>, n: usize) -> u64 {
    let stable = stable.map_or(0, |s| s.frontier.below(space));
    stable.max(epoch_base(space, owner.saturating_sub(1), n))
}

/// NEWOWNER's signed part. The new owner signs it: another subset of 2f+1
/// views could settle other slots, so a forwarded NEWOWNER must be the one
/// the new owner sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOwnerBody {
    /// The space.
    pub space: ReplicaId,
    /// The new owner number.
    pub owner: u64,
    /// 2f+1 signed OWNERCHANGE messages (P); every replica computes G from them.
    pub proofs: Vec<Signed<OwnerChangeBody>>,
}

impl Signable for NewOwnerBody {
    const LABEL: &'static [u8] = b"ezbft-newowner";
}

/// A replica's vote in the agreement on one NEWOWNER per space and owner
/// number (beyond the paper: a faulty new owner can send different valid
/// NEWOWNERs to different replicas).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOwnerVoteBody {
    /// The voter.
    pub replica: ReplicaId,
    /// The space changing owner.
    pub space: ReplicaId,
    /// The new owner number.
    pub owner: u64,
    /// ACCEPT (the first valid NEWOWNER we saw) or CONFIRM (2f+1 accepted it).
    pub phase: Phase,
    /// [`new_owner_digest`] of the NEWOWNER.
    pub digest: Digest,
}

impl Signable for NewOwnerVoteBody {
    const LABEL: &'static [u8] = b"ezbft-newowner-vote";
}

/// The digest NEWOWNER votes name.
pub fn new_owner_digest(x: &Signed<NewOwnerBody>) -> Digest {
    Digest::of(&wire::encode(x))
}

/// A NEWOWNER with 2f+1 votes of one phase for it: ACCEPTs (prepared) or
/// CONFIRMs (agreed: it may be installed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOwnerCert {
    /// The NEWOWNER.
    pub new_owner: Signed<NewOwnerBody>,
    /// The votes.
    pub votes: Vec<Signed<NewOwnerVoteBody>>,
}

impl NewOwnerCert {
    /// The owner number it installs.
    pub fn owner(&self) -> u64 {
        self.new_owner.body.owner
    }

    /// Whether 2f+1 distinct replicas signed `phase` votes for exactly this NEWOWNER.
    pub fn verify(&self, m: &Membership, crypto: &dyn Crypto, phase: Phase) -> bool {
        let d = new_owner_digest(&self.new_owner);
        let b = &self.new_owner.body;
        let mut from = BTreeSet::new();
        self.votes.len() >= m.quorum()
            && self.votes.iter().all(|v| {
                let vb = &v.body;
                vb.space == b.space
                    && vb.owner == b.owner
                    && vb.phase == phase
                    && vb.digest == d
                    && m.contains(vb.replica)
                    && from.insert(vb.replica)
                    && v.verify(NodeId::Replica(vb.replica), crypto)
            })
    }
}

/// The owner number that starts the epoch in which `owner` acts for `space`
/// (the space's own replica's number of that epoch).
pub fn epoch_owner(space: ReplicaId, owner: u64, n: usize) -> u64 {
    let n = n.max(1) as u64;
    owner - (owner + n - u64::from(space.0) % n) % n
}

/// The owner number that starts the epoch after the one `owner` acts in.
pub fn next_epoch_owner(space: ReplicaId, owner: u64, n: usize) -> u64 {
    epoch_owner(space, owner, n) + n.max(1) as u64
}

/// The first slot of the epoch in which owner number `owner` acts for
/// `space`. A space's own replica reopens it after an owner change froze it
/// with the next owner number that names it again (`space + k·n`), and that
/// epoch's slots start at `k · 2^40`: far beyond any slot of an earlier epoch,
/// so a dependency on a slot the change dropped can never name a new command.
pub fn epoch_base(space: ReplicaId, owner: u64, n: usize) -> u64 {
    (owner.saturating_sub(u64::from(space.0)) / n.max(1) as u64) << EPOCH_BITS
}

/// The owner number that opened the epoch `slot` of `space` is in (the
/// inverse of [`epoch_base`]).
pub fn epoch_owner_of_slot(space: ReplicaId, slot: u64, n: usize) -> u64 {
    u64::from(space.0).saturating_add((slot >> EPOCH_BITS).saturating_mul(n.max(1) as u64))
}

/// Slots per epoch, as a power of two (see [`epoch_base`]).
pub const EPOCH_BITS: u32 = 40;

/// The first slot of the epoch after the one `slot` is in.
pub fn next_epoch_base(slot: u64) -> u64 {
    ((slot >> EPOCH_BITS) + 1) << EPOCH_BITS
}

/// The history digest an epoch of `space` starts from.
pub fn epoch_history(space: ReplicaId, owner: u64) -> Digest {
    Digest::of_parts(&[b"ezbft-epoch", &space.0.to_le_bytes(), &owner.to_le_bytes()])
}

/// The commands a checkpoint covers: those executed up to and including its
/// barrier. Per space every slot below `below` is in, plus the `extra` ones
/// above it (commands that did not interfere with the slots left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    /// Per space (by replica index): the first slot not covered.
    pub below: Vec<u64>,
    /// Per space: the history digest h of the slot before `below`.
    pub history: Vec<Digest>,
    /// Covered slots at or above their space's `below` (sorted).
    pub extra: Vec<InstanceId>,
}

impl Frontier {
    /// The first slot of `space` not covered.
    pub fn below(&self, space: ReplicaId) -> u64 {
        self.below.get(space.index()).copied().unwrap_or(0)
    }
    /// Whether the checkpoint covers `inst`.
    pub fn covers(&self, inst: InstanceId) -> bool {
        inst.slot < self.below(inst.space) || self.extra.binary_search(&inst).is_ok()
    }
    /// Digest (what checkpoint votes sign).
    pub fn digest(&self) -> Digest {
        Digest::of(&wire::encode(self))
    }
}

/// CHECKPOINT's signed part: the state after executing a barrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// The voting replica.
    pub replica: ReplicaId,
    /// The barrier command the checkpoint was taken at.
    pub barrier: InstanceId,
    /// Digest of the executor's checkpoint (state, request table, operations executed).
    pub state: Digest,
    /// Digest of the [`Frontier`].
    pub frontier: Digest,
}

impl Signable for CheckpointBody {
    const LABEL: &'static [u8] = b"ezbft-checkpoint";
}

/// A checkpoint 2f+1 replicas signed: at least f+1 correct replicas hold its
/// state, so the commands it covers can be forgotten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StableCheckpoint {
    /// What it covers.
    pub frontier: Frontier,
    /// 2f+1 matching votes from distinct replicas.
    pub votes: Vec<Signed<CheckpointBody>>,
}

impl StableCheckpoint {
    /// The barrier it was taken at.
    pub fn barrier(&self) -> Option<InstanceId> {
        self.votes.first().map(|v| v.body.barrier)
    }
    /// The state digest it certifies.
    pub fn state(&self) -> Option<Digest> {
        self.votes.first().map(|v| v.body.state)
    }
    /// Whether 2f+1 distinct replicas signed one body about this frontier.
    pub fn verify(&self, m: &Membership, crypto: &dyn Crypto) -> bool {
        let Some(first) = self.votes.first() else { return false };
        let mut from = BTreeSet::new();
        self.votes.len() == m.quorum()
            && self.frontier.below.len() == m.n()
            && self.frontier.history.len() == m.n()
            && canonical(&self.frontier.extra)
            && first.body.frontier == self.frontier.digest()
            && self.votes.iter().all(|v| {
                let b = &v.body;
                m.contains(b.replica)
                    && from.insert(b.replica)
                    && b.barrier == first.body.barrier
                    && b.state == first.body.state
                    && b.frontier == first.body.frontier
                    && v.verify(NodeId::Replica(b.replica), crypto)
            })
    }
}

/// What a replica keeps of its latest stable checkpoint, on disk and for
/// state transfer: the certificate and the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The certificate.
    pub stable: StableCheckpoint,
    /// The executor's checkpoint (its digest is the certificate's state).
    pub state: quorate_core::executor::Checkpoint,
}

impl Signable for OwnerChangeBody {
    const LABEL: &'static [u8] = b"ezbft-ownerchange";
}

/// Every EZBFT message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Client → its nearest replica (the command-leader).
    Request(SignedRequest),
    /// Command-leader → the other replicas: the order and the request (m).
    SpecOrder {
        /// The signed order.
        order: Signed<SpecOrder>,
        /// The client's request.
        request: SignedRequest,
    },
    /// Replica → client.
    SpecReply(Box<SpecReply>),
    /// Client → replicas, after 3f+1 matching SPECREPLYs: commit as ordered.
    CommitFast {
        /// The request (so that a replica that missed the SPECORDER can execute it).
        request: SignedRequest,
        /// The 3f+1 matching replies.
        cert: Vec<SpecReply>,
    },
    /// Client → replicas, on the slow path.
    Commit {
        /// Signed by the client.
        commit: Signed<CommitBody>,
        /// The request (so that a replica that missed the SPECORDER can execute it).
        request: SignedRequest,
        /// The 2f+1 replies the dependencies were combined from.
        cert: Vec<SpecReply>,
    },
    /// Replica → replicas: the first valid proposal I saw for a slot.
    Accept(Box<Signed<VoteBody>>),
    /// Replica → replicas: 2f+1 replicas accepted this proposal.
    Confirm(Box<Signed<VoteBody>>),
    /// Client → all replicas when its command-leader does not answer (§IV-D 4.3).
    RequestAll {
        /// The request.
        request: SignedRequest,
        /// The replica it was sent to first.
        leader: ReplicaId,
    },
    /// Replica → a command-leader: a client says you have its request (RESENDREQ).
    ResendReq {
        /// The request.
        request: SignedRequest,
    },
    /// Replica → client: the request was executed already; its final result.
    CachedReply {
        /// The client's timestamp.
        t: u64,
        /// The final result.
        result: Bytes,
    },
    /// Client → replicas: two orders of one request in different instances,
    /// both signed by the space's owner (proof of misbehaviour, §IV-D 4.4).
    Pom {
        /// A reply embedding one order.
        a: Box<SpecReply>,
        /// A reply embedding the other.
        b: Box<SpecReply>,
    },
    /// Replica → replicas: I want the owner of `space` replaced.
    StartOwnerChange {
        /// The suspected space.
        space: ReplicaId,
        /// Its current owner number.
        owner: u64,
    },
    /// Replica → the new owner: my view of the space.
    OwnerChange(Box<Signed<OwnerChangeBody>>),
    /// New owner → replicas (and forwarded by any replica that installed
    /// it): the views the settled history is computed from.
    NewOwner(Box<Signed<NewOwnerBody>>),
    /// Replica → replicas: a vote in the agreement on one NEWOWNER.
    NewOwnerVote(Box<Signed<NewOwnerVoteBody>>),
    /// Replica → replica that missed it: a NEWOWNER agreed on (2f+1 CONFIRMs).
    NewOwnerAgreed(Box<NewOwnerCert>),
    /// Replica → replicas: a slot of a space is missing here (later ones
    /// arrived); whoever has its order sends it (it is the owner's signature
    /// that counts, not the sender).
    OrderQuery {
        /// The missing slot.
        inst: InstanceId,
    },
    /// Replica → replicas: a command we wait for is not committed here; who has its commit?
    CommitQuery {
        /// The instance.
        inst: InstanceId,
    },
    /// Replica → replica: a commit we hold, as its certificate.
    Committed {
        /// The request.
        request: SignedRequest,
        /// How it was committed.
        proof: Box<CommitProof>,
    },
    /// Replica → client: `space` was settled by an owner change and takes no
    /// new commands; go to another replica.
    SpaceFrozen {
        /// The frozen space.
        space: ReplicaId,
    },
    /// Replica → replicas: my checkpoint after executing a barrier.
    Checkpoint(Box<Signed<CheckpointBody>>),
    /// Replica → replica: send me the state of this stable checkpoint (I am behind it).
    StateQuery {
        /// The checkpoint's barrier.
        barrier: InstanceId,
    },
    /// Replica → replica: a stable checkpoint and its state.
    State(Box<CheckpointState>),
    /// Replica → client: the final result of a command committed on the slow path.
    CommitReply {
        /// The instance.
        inst: InstanceId,
        /// The client's timestamp.
        t: u64,
        /// The final result.
        result: Bytes,
    },
}

impl quorate_core::machine::Message for Msg {
    /// A client's REQUEST, and the same request sent to every replica when
    /// its command-leader does not answer.
    fn request_mut(&mut self) -> Option<&mut SignedRequest> {
        match self {
            Msg::Request(r) | Msg::RequestAll { request: r, .. } => Some(r),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Msg::Request(_) => "REQUEST",
            Msg::SpecOrder { .. } => "SPECORDER",
            Msg::SpecReply(_) => "SPECREPLY",
            Msg::CommitFast { .. } => "COMMITFAST",
            Msg::Commit { .. } => "COMMIT",
            Msg::Accept(_) => "ACCEPT",
            Msg::Confirm(_) => "CONFIRM",
            Msg::CommitReply { .. } => "COMMITREPLY",
            Msg::RequestAll { .. } => "REQUEST-ALL",
            Msg::ResendReq { .. } => "RESENDREQ",
            Msg::CachedReply { .. } => "CACHEDREPLY",
            Msg::Pom { .. } => "POM",
            Msg::StartOwnerChange { .. } => "STARTOWNERCHANGE",
            Msg::OwnerChange(_) => "OWNERCHANGE",
            Msg::NewOwner(_) => "NEWOWNER",
            Msg::NewOwnerVote(_) => "NEWOWNER-VOTE",
            Msg::NewOwnerAgreed(_) => "NEWOWNER-AGREED",
            Msg::CommitQuery { .. } => "COMMITQUERY",
            Msg::OrderQuery { .. } => "ORDERQUERY",
            Msg::SpaceFrozen { .. } => "SPACEFROZEN",
            Msg::Committed { .. } => "COMMITTED",
            Msg::Checkpoint(_) => "CHECKPOINT",
            Msg::StateQuery { .. } => "STATEQUERY",
            Msg::State(_) => "STATE",
        }
    }

    fn preverify(&self, from: NodeId, crypto: &dyn Crypto) {
        let reply = |r: &SpecReply| {
            r.reply.verify(NodeId::Replica(r.reply.body.replica), crypto);
            r.order.verify(NodeId::Replica(r.order.body.inst.space), crypto);
        };
        match self {
            Msg::Request(r) => {
                r.verify(crypto);
            }
            Msg::SpecOrder { order, request } => {
                let _ = from;
                order.verify(NodeId::Replica(order.body.inst.space), crypto);
                request.verify(crypto);
            }
            Msg::SpecReply(r) => reply(r),
            Msg::CommitFast { request, cert } => {
                request.verify(crypto);
                cert.iter().for_each(reply);
            }
            Msg::Commit { commit, request, cert } => {
                commit.verify(NodeId::Client(commit.body.client), crypto);
                request.verify(crypto);
                cert.iter().for_each(reply);
            }
            Msg::RequestAll { request, .. } | Msg::ResendReq { request } => {
                request.verify(crypto);
            }
            Msg::Pom { a, b } => {
                reply(a);
                reply(b);
            }
            Msg::OwnerChange(oc) => {
                oc.verify(from, crypto);
            }
            Msg::NewOwner(n) => {
                for p in &n.body.proofs {
                    p.verify(NodeId::Replica(p.body.replica), crypto);
                }
            }
            Msg::NewOwnerVote(v) => {
                v.verify(NodeId::Replica(v.body.replica), crypto);
            }
            Msg::NewOwnerAgreed(c) => {
                for v in &c.votes {
                    v.verify(NodeId::Replica(v.body.replica), crypto);
                }
            }
            Msg::Accept(v) | Msg::Confirm(v) => {
                v.verify(NodeId::Replica(v.body.replica), crypto);
            }
            Msg::Committed { request, proof } => {
                request.verify(crypto);
                match &proof.proposal {
                    Proposal::Fast(cert) => cert.iter().for_each(reply),
                    Proposal::Slow { commit, cert } => {
                        commit.verify(NodeId::Client(commit.body.client), crypto);
                        cert.iter().for_each(reply);
                    }
                }
                for v in &proof.votes {
                    v.verify(NodeId::Replica(v.body.replica), crypto);
                }
            }
            Msg::Checkpoint(c) => {
                c.verify(NodeId::Replica(c.body.replica), crypto);
            }
            Msg::State(s) => {
                for v in &s.stable.votes {
                    v.verify(NodeId::Replica(v.body.replica), crypto);
                }
            }
            Msg::CommitReply { .. }
            | Msg::StateQuery { .. }
            | Msg::CachedReply { .. }
            | Msg::StartOwnerChange { .. }
            | Msg::CommitQuery { .. }
            | Msg::OrderQuery { .. }
            | Msg::SpaceFrozen { .. } => {}
        }
    }
}

/// The replica that owns a space whose owner number is `owner`.
pub fn owner_replica(owner: u64, m: &Membership) -> ReplicaId {
    ReplicaId((owner % m.n().max(1) as u64) as u32)
}

/// Whether a dependency list is in canonical form (strictly increasing).
pub fn canonical(deps: &[InstanceId]) -> bool {
    deps.windows(2).all(|w| w[0] < w[1])
}

/// A dependency set in canonical form.
pub fn canonical_deps(deps: BTreeSet<InstanceId>) -> Vec<InstanceId> {
    deps.into_iter().collect()
}

/// Digest of a client's request as SPECORDER names it (d).
pub fn request_digest(r: &SignedRequest) -> Digest {
    Digest::of(&r.req.signing_bytes())
}

/// The pseudo-client in whose name replica `space` orders its checkpoint
/// barriers (the top of the id range; real clients are refused these ids).
pub fn barrier_client(space: ReplicaId) -> ClientId {
    ClientId(u64::MAX - u64::from(space.0))
}

/// The space whose barriers pseudo-client `c` stands for, if it is one.
pub fn barrier_space(c: ClientId, m: &Membership) -> Option<ReplicaId> {
    let space = u64::MAX - c.0;
    (space < m.n() as u64).then_some(ReplicaId(space as u32))
}

/// The `number`-th checkpoint barrier of `space`: an empty keyless command.
/// It carries no signature of its own: the owner's signed order authenticates it.
pub fn barrier_request(space: ReplicaId, number: u64) -> SignedRequest {
    let req = quorate_core::request::Request {
        client: barrier_client(space),
        seq: number,
        op: Bytes::new(),
        read_only: false,
    };
    SignedRequest::unsigned(req)
}

/// Whether `request`, ordered in `space`, is authentic: a client's signed
/// request, or that space's own barrier.
pub fn request_authentic(request: &SignedRequest, space: ReplicaId, m: &Membership, crypto: &dyn Crypto) -> bool {
    if barrier_space(request.req.client, m).is_some() {
        request.req.client == barrier_client(space) && request.req.op.is_empty() && request.sig.0.is_empty()
    } else {
        request.verify(crypto)
    }
}

/// The slow path's combination of replies (§IV-C): the designated quorum of
/// the space (its owner and the next 2f replicas) if all of it answered, else
/// the lowest replica ids that did; D' is the union of their dependencies and
/// S' the largest sequence number. `None` with fewer than 2f+1 replies.
pub fn combine(
    replies: &std::collections::BTreeMap<ReplicaId, SpecReply>,
    m: &Membership,
) -> Option<(InstanceId, Vec<InstanceId>, u64, Vec<SpecReply>)> {
    let (q, n) = (m.quorum(), m.n() as u32);
    let inst = replies.values().next()?.reply.body.inst;
    let designated: Vec<ReplicaId> = (0..q as u32).map(|k| ReplicaId((inst.space.0 + k) % n)).collect();
    let chosen: Vec<ReplicaId> = if designated.iter().all(|r| replies.contains_key(r)) {
        designated
    } else {
        replies.keys().take(q).copied().collect()
    };
    if chosen.len() < q {
        return None;
    }
    let cert: Vec<SpecReply> = chosen.iter().filter_map(|r| replies.get(r)).cloned().collect();
    let deps: BTreeSet<InstanceId> = cert.iter().flat_map(|r| r.reply.body.deps.iter().copied()).collect();
    let seq = cert.iter().map(|r| r.reply.body.seq).max().unwrap_or(0);
    Some((inst, canonical_deps(deps), seq, cert))
}

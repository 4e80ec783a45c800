//! The messages of one Linear Hybster instance and the hashes its trusted
//! shares and certificates bind.
//!
//! Normal-case messages prove themselves with ThreshSign material: a PREPARE
//! carries the primary's independent share at counter value (view, seq), a
//! COMMIT-SHARE a backup's share on the same statement, a COMMIT the
//! threshold signature f+1 of them combine into. A VIEW-CHANGE carries a
//! continuing certificate that moves the sender's ordering counter into the
//! new view and reveals where it was; a NEW-VIEW is signed with the new
//! primary's view-change counter at the view number. STATUS, FETCH and VALUE
//! need no signature: a value is checked against its digest, and DECIDED
//! answers carry the COMMIT certificates.

use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;
use quorate_threshsign::{Cert, Share, ThresholdSig};
use serde::{Deserialize, Serialize};

/// The digest a null request is ordered under (a NEW-VIEW fills gaps with
/// it). Values are digested with a domain prefix, so no value has it.
pub const NULL_DIGEST: Digest = Digest(*b"quorate-hybster-null-request-000");

/// A stable checkpoint: f+1 replicas signed (seq, state digest) with their
/// checkpoint counters, so at least one correct replica reached that state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCert {
    /// Sequence number (a multiple of the checkpoint period).
    pub seq: u64,
    /// State digest.
    pub digest: Digest,
    /// Threshold signature of f+1 CHECKPOINT-SHAREs.
    pub cert: ThresholdSig,
}

/// Proof that `seq` is decided: the COMMIT certificate of some view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitProof {
    /// The view the certificate was made in.
    pub view: u64,
    /// Threshold signature on (view, seq, digest).
    pub cert: ThresholdSig,
}

/// What a NEW-VIEW decides: where the view starts and the value of every
/// sequence number after it up to the highest one any VIEW-CHANGE showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewViewCore {
    /// The view.
    pub view: u64,
    /// The checkpoint it starts from (None: the initial state, seq 0).
    pub checkpoint: Option<CheckpointCert>,
    /// (seq, digest) for every seq after the checkpoint, in order;
    /// [`NULL_DIGEST`] fills a gap.
    pub entries: Vec<(u64, Digest)>,
}

impl NewViewCore {
    /// The sequence number the checkpoint is at.
    pub fn base(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, |c| c.seq)
    }
    /// The last sequence number the view re-proposes (its base if none).
    pub fn top(&self) -> u64 {
        self.entries.last().map_or(self.base(), |(s, _)| *s)
    }
}

/// A NEW-VIEW's decision with the new primary's share: its view-change
/// counter at the view number, so a primary makes one per view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedNewView {
    /// The decision.
    pub core: NewViewCore,
    /// The primary's independent share on (view-change counter, view, H(core)).
    pub share: Share,
}

/// What a replica knows when it leaves its view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChangeBody {
    /// The view it moves to.
    pub view: u64,
    /// Sender.
    pub replica: ReplicaId,
    /// Its latest stable checkpoint.
    pub checkpoint: Option<CheckpointCert>,
    /// The NEW-VIEW of the view its log belongs to (None for view 0).
    pub new_view: Option<SignedNewView>,
    /// PREPAREs (primaries' shares) it accepted above its checkpoint, the
    /// latest view's for each sequence number.
    pub prepares: Vec<Share>,
    /// COMMIT certificates it holds above its checkpoint: a slot decided
    /// from peers' certificates may lack its PREPARE here.
    pub commits: Vec<(u64, CommitProof)>,
    /// Certificates of its earlier view changes that installed no view,
    /// newest first: together with `cert` they lead back to the last
    /// position at which it signed (see `view_change.rs`).
    pub history: Vec<Cert>,
}

/// VIEW-CHANGE: the body and a continuing certificate moving the sender's
/// ordering counter from where it was to (view, 0), over H(body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// What the sender knows.
    pub body: ViewChangeBody,
    /// Its trusted subsystem's certificate.
    pub cert: Cert,
}

/// NEW-VIEW: the signed decision and the VIEW-CHANGEs it follows from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The decision, signed.
    pub signed: SignedNewView,
    /// At least f+1 VIEW-CHANGEs for the view, from distinct replicas.
    pub view_changes: Vec<ViewChange>,
}

/// One decided value, with its proof, for a replica that is behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedEntry<V> {
    /// Sequence number.
    pub seq: u64,
    /// The value (None: a null request).
    pub value: Option<V>,
    /// Its COMMIT certificate.
    pub proof: CommitProof,
}

/// The messages of one Linear Hybster instance. An embedder running several
/// instances wraps them with the instance's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HybMsg<V> {
    /// Primary → all: `value` at `seq` in `view`, with the primary's share.
    Prepare {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// The proposed value.
        value: V,
        /// The primary's share on (ordering counter, (view, seq), digest).
        share: Share,
    },
    /// Backup → collector (all, when the collector is slow): its share on
    /// the proposal at (`view`, `seq`).
    CommitShare {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest of the value.
        digest: Digest,
        /// The share.
        share: Share,
    },
    /// Collector → all: f+1 shares on (`view`, `seq`, `digest`), combined: decided.
    Commit {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest of the value.
        digest: Digest,
        /// The threshold signature.
        cert: ThresholdSig,
    },
    /// Any → collector (all, when it is slow): its state digest at `seq`.
    CheckpointShare {
        /// Sequence number.
        seq: u64,
        /// State digest.
        digest: Digest,
        /// Share on (checkpoint counter, seq, digest).
        share: Share,
    },
    /// Collector → all (or any → one that is behind): a stable checkpoint.
    Checkpoint(CheckpointCert),
    /// Any → all: moving to a new view.
    ViewChange(Box<ViewChange>),
    /// New primary → all (or any → one that missed it).
    NewView(Box<NewView>),
    /// Any → all, when it makes no progress: where it is.
    Status {
        /// The sender's view.
        view: u64,
        /// Whether that view is installed.
        active: bool,
        /// Its stable checkpoint.
        stable: u64,
        /// Its last decided sequence number.
        decided: u64,
    },
    /// Answer to STATUS: decided values the asker misses, in order.
    Decided {
        /// The values with their proofs.
        entries: Vec<DecidedEntry<V>>,
    },
    /// Ask for the value with `digest` (ordered at `seq`).
    Fetch {
        /// Sequence number.
        seq: u64,
        /// Digest wanted.
        digest: Digest,
    },
    /// A value asked for with FETCH.
    Value {
        /// Sequence number.
        seq: u64,
        /// The value.
        value: V,
    },
}

impl<V> HybMsg<V> {
    /// Short kind name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            HybMsg::Prepare { .. } => "PREPARE",
            HybMsg::CommitShare { .. } => "COMMIT-SHARE",
            HybMsg::Commit { .. } => "COMMIT",
            HybMsg::CheckpointShare { .. } => "CHECKPOINT-SHARE",
            HybMsg::Checkpoint(_) => "CHECKPOINT",
            HybMsg::ViewChange(_) => "VIEW-CHANGE",
            HybMsg::NewView(_) => "NEW-VIEW",
            HybMsg::Status { .. } => "STATUS",
            HybMsg::Decided { .. } => "DECIDED",
            HybMsg::Fetch { .. } => "FETCH",
            HybMsg::Value { .. } => "VALUE",
        }
    }
}

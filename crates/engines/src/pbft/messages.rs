//! The messages of one PBFT instance, what their MACs and signatures cover,
//! and the structural checks a message passes before the engine looks at it.
//!
//! Normal-case messages (PRE-PREPARE, PREPARE, COMMIT, CHECKPOINT, STATUS,
//! DECIDED) carry MACs over the message's fields (a value enters through its
//! digest): an authenticator with one HMAC per receiver on a PRE-PREPARE,
//! the receiver's own HMAC on every other copy ([`Auth`]). VIEW-CHANGE and NEW-VIEW are
//! signed: a NEW-VIEW carries the VIEW-CHANGEs it is computed from, and every
//! backup checks them, so they must be verifiable by third parties. FETCH and
//! VALUE carry neither: a value is checked against the digest asked for.
//!
//! Every MAC and signature binds the instance number, so a message of one
//! instance cannot be replayed into another instance of the same replica.

use quorate_core::crypto::{Digest, Mac, Signature};
use quorate_core::ids::ReplicaId;
use serde::{Deserialize, Serialize};

/// The digest a null request is ordered under (view changes fill gaps with
/// it). Values are digested with a domain prefix, so no value has it.
pub const NULL_DIGEST: Digest = Digest(*b"quorate-pbft-null-request-000000");

/// An authenticator: a MAC for every replica (index = replica id) when one
/// encoding goes to all (PRE-PREPARE, whose value is encoded once), or a
/// single MAC when the message goes to one replica. The small messages
/// PREPARE, COMMIT, CHECKPOINT and STATUS go to all as one copy per
/// receiver, each with the receiver's MAC only: over point-to-point channels
/// an n-entry authenticator would put n·32 bytes in each of the n−1 copies
/// (2.9 MB per PREPARE at n = 301); see docs/decisions/0007-pbft.md.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth(pub Vec<Mac>);

/// A message body with its sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The body.
    pub body: T,
    /// Signature of the body's signing bytes.
    pub sig: Signature,
}

/// A request prepared at the sender: `digest` at `seq`, in `view`, the
/// latest view in which the sender prepared anything at `seq` (P set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrepareClaim {
    /// Sequence number.
    pub seq: u64,
    /// Digest of the prepared value (or [`NULL_DIGEST`]).
    pub digest: Digest,
    /// View of the prepared certificate.
    pub view: u64,
}

/// A value the sender pre-prepared (accepted a PRE-PREPARE or NEW-VIEW entry
/// for, or proposed), with the latest view in which it did so (Q set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PrePrepareClaim {
    /// Sequence number.
    pub seq: u64,
    /// Digest of the value (or [`NULL_DIGEST`]).
    pub digest: Digest,
    /// Latest view in which the sender pre-prepared it.
    pub view: u64,
}

/// VIEW-CHANGE (Castro and Liskov, TOCS 2002, view changes): what the sender knows,
/// without certificates (its MACed prepares cannot convince anyone else);
/// the new primary's decision procedure needs quorums of these claims instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view the sender moves to.
    pub view: u64,
    /// Sender.
    pub replica: ReplicaId,
    /// Sequence number of the sender's stable checkpoint (its low watermark).
    pub stable: u64,
    /// Checkpoints the sender holds, at `stable` and above: (seq, state digest) (C).
    pub checkpoints: Vec<(u64, Digest)>,
    /// Prepared requests above `stable`, one per sequence number (P).
    pub prepared: Vec<PrepareClaim>,
    /// Pre-prepared requests above `stable`, by (seq, digest) (Q).
    pub pre_prepared: Vec<PrePrepareClaim>,
}

/// NEW-VIEW: the new primary's VIEW-CHANGEs (V) and what it computed from
/// them (O): the checkpoint the view starts from and the value of every
/// sequence number after it up to the last one any of them prepared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: u64,
    /// The VIEW-CHANGEs for `view` the primary decided from (at least 2f+1).
    pub view_changes: Vec<Signed<ViewChange>>,
    /// The checkpoint the view starts from: (seq, state digest).
    pub checkpoint: (u64, Digest),
    /// (seq, digest) for every seq after the checkpoint up to the highest
    /// chosen one, in order; [`NULL_DIGEST`] fills a gap.
    pub chosen: Vec<(u64, Digest)>,
}

/// One decided value, sent to a replica that is behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedEntry<V> {
    /// Sequence number.
    pub seq: u64,
    /// The value (None: a null request).
    pub value: Option<V>,
}

/// The messages of one PBFT instance. An embedder running several instances
/// wraps them with the instance's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PbftMsg<V> {
    /// Primary → all: `value` at `seq` in `view`.
    PrePrepare {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// The proposed value.
        value: V,
        /// MACs over (view, seq, digest of value).
        auth: Auth,
    },
    /// Backup → all: it accepted the PRE-PREPARE of `digest` at (`view`, `seq`).
    Prepare {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest of the value.
        digest: Digest,
        /// MACs.
        auth: Auth,
    },
    /// Any → all: it holds a prepared certificate for `digest` at (`view`, `seq`).
    Commit {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest of the value.
        digest: Digest,
        /// MACs.
        auth: Auth,
    },
    /// Any → all: its state after executing up to `seq` has digest `digest`.
    Checkpoint {
        /// Sequence number (a multiple of the checkpoint period).
        seq: u64,
        /// State digest.
        digest: Digest,
        /// MACs.
        auth: Auth,
    },
    /// Any → all: moving to a new view.
    ViewChange(Box<Signed<ViewChange>>),
    /// New primary → all (or any replica → one that missed it).
    NewView(Box<Signed<NewView>>),
    /// Any → all, when it makes no progress: where it is, so that peers
    /// retransmit what it misses (decided values, checkpoints, the NEW-VIEW).
    Status {
        /// The sender's view.
        view: u64,
        /// Whether that view is installed (false: changing to it).
        active: bool,
        /// The sender's stable checkpoint.
        stable: u64,
        /// The sender's last decided sequence number.
        decided: u64,
        /// MACs.
        auth: Auth,
    },
    /// Answer to STATUS: decided values the asker misses, in order.
    Decided {
        /// The values.
        entries: Vec<DecidedEntry<V>>,
        /// MAC over the (seq, digest) pairs.
        auth: Auth,
    },
    /// Ask for the value with `digest` (ordered at `seq`).
    Fetch {
        /// Sequence number.
        seq: u64,
        /// Digest wanted.
        digest: Digest,
    },
    /// A value asked for with FETCH (checked against the digest asked for).
    Value {
        /// Sequence number.
        seq: u64,
        /// The value.
        value: V,
    },
}

impl<V> PbftMsg<V> {
    /// Short kind name, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PbftMsg::PrePrepare { .. } => "PRE-PREPARE",
            PbftMsg::Prepare { .. } => "PREPARE",
            PbftMsg::Commit { .. } => "COMMIT",
            PbftMsg::Checkpoint { .. } => "CHECKPOINT",
            PbftMsg::ViewChange(_) => "VIEW-CHANGE",
            PbftMsg::NewView(_) => "NEW-VIEW",
            PbftMsg::Status { .. } => "STATUS",
            PbftMsg::Decided { .. } => "DECIDED",
            PbftMsg::Fetch { .. } => "FETCH",
            PbftMsg::Value { .. } => "VALUE",
        }
    }
}

/// What MACs and signatures cover (public for adversaries that re-MAC
/// what they send).
pub mod bytes {
    use super::*;

    fn header(instance: u64, kind: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(96);
        b.extend_from_slice(b"quorate-pbft/");
        b.extend_from_slice(kind);
        b.push(b'/');
        b.extend_from_slice(&instance.to_le_bytes());
        b
    }

    fn three(instance: u64, kind: &[u8], view: u64, seq: u64, digest: &Digest) -> Vec<u8> {
        let mut b = header(instance, kind);
        b.extend_from_slice(&view.to_le_bytes());
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&digest.0);
        b
    }

    /// The bytes a PRE-PREPARE's MACs cover.
    pub fn pre_prepare(instance: u64, view: u64, seq: u64, digest: &Digest) -> Vec<u8> {
        three(instance, b"pre-prepare", view, seq, digest)
    }
    /// The bytes a PREPARE's MACs cover.
    pub fn prepare(instance: u64, view: u64, seq: u64, digest: &Digest) -> Vec<u8> {
        three(instance, b"prepare", view, seq, digest)
    }
    /// The bytes a COMMIT's MACs cover.
    pub fn commit(instance: u64, view: u64, seq: u64, digest: &Digest) -> Vec<u8> {
        three(instance, b"commit", view, seq, digest)
    }
    pub(crate) fn checkpoint(instance: u64, seq: u64, digest: &Digest) -> Vec<u8> {
        three(instance, b"checkpoint", 0, seq, digest)
    }
    pub(crate) fn status(instance: u64, view: u64, active: bool, stable: u64, decided: u64) -> Vec<u8> {
        let mut b = header(instance, b"status");
        for x in [view, active as u64, stable, decided] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    }
    pub(crate) fn decided(instance: u64, entries: &[(u64, Digest)]) -> Vec<u8> {
        let mut b = header(instance, b"decided");
        for (seq, d) in entries {
            b.extend_from_slice(&seq.to_le_bytes());
            b.extend_from_slice(&d.0);
        }
        b
    }
    pub(crate) fn view_change(instance: u64, vc: &ViewChange) -> Vec<u8> {
        let mut b = header(instance, b"view-change");
        b.extend_from_slice(&quorate_core::wire::encode(vc));
        b
    }
    pub(crate) fn new_view(instance: u64, nv: &NewView) -> Vec<u8> {
        // The VIEW-CHANGEs are signed on their own: the NEW-VIEW signature
        // covers their digests, not their bytes again.
        let mut b = header(instance, b"new-view");
        b.extend_from_slice(&nv.view.to_le_bytes());
        for vc in &nv.view_changes {
            b.extend_from_slice(&Digest::of(&quorate_core::wire::encode(vc)).0);
        }
        b.extend_from_slice(&nv.checkpoint.0.to_le_bytes());
        b.extend_from_slice(&nv.checkpoint.1 .0);
        for (seq, d) in &nv.chosen {
            b.extend_from_slice(&seq.to_le_bytes());
            b.extend_from_slice(&d.0);
        }
        b
    }
}

/// Why a VIEW-CHANGE is malformed (checked before its signature).
pub(crate) fn check_view_change(vc: &ViewChange, n: usize, period: u64, window: u64) -> Result<(), &'static str> {
    if vc.view == 0 {
        return Err("VIEW-CHANGE to view 0");
    }
    if vc.replica.index() >= n {
        return Err("VIEW-CHANGE from a non-member");
    }
    if !vc.stable.is_multiple_of(period) {
        return Err("VIEW-CHANGE stable checkpoint off the checkpoint period");
    }
    let top = vc.stable.saturating_add(window);
    if vc.checkpoints.len() as u64 > window / period + 2 {
        return Err("VIEW-CHANGE with too many checkpoints");
    }
    let mut last = None;
    for (seq, _) in &vc.checkpoints {
        if *seq < vc.stable || *seq > top || *seq % period != 0 || last.is_some_and(|l| *seq <= l) {
            return Err("VIEW-CHANGE checkpoints out of order or range");
        }
        last = Some(*seq);
    }
    let mut last = 0;
    for p in &vc.prepared {
        if p.seq <= vc.stable || p.seq > top || p.seq <= last || p.view >= vc.view {
            return Err("VIEW-CHANGE prepared entries out of order or range");
        }
        last = p.seq;
    }
    let mut prev: Option<(u64, Digest)> = None;
    let mut per_seq = 0usize;
    for q in &vc.pre_prepared {
        if q.seq <= vc.stable || q.seq > top || q.view >= vc.view || prev.is_some_and(|p| (q.seq, q.digest) <= p) {
            return Err("VIEW-CHANGE pre-prepared entries out of order or range");
        }
        per_seq = if prev.is_some_and(|p| p.0 == q.seq) { per_seq + 1 } else { 1 };
        if per_seq > super::MAX_CLAIMS_PER_SEQ {
            return Err("VIEW-CHANGE with too many pre-prepared entries for one sequence number");
        }
        prev = Some((q.seq, q.digest));
    }
    Ok(())
}

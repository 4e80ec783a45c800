//! The contract between a consensus-instance engine and the replica that
//! embeds it (one engine, or many over one network as in DQBFT): what an
//! engine orders ([`Value`]), how the embedder vetoes proposals
//! ([`Validity`]), the engine's timers, and the [`Action`]s an engine call
//! asks its embedder to carry out, generic over the engine's message type
//! `M` and durable record type `R`. The PBFT engine ([`crate::pbft`]) and the
//! Linear Hybster engine ([`crate::hybster`]) both follow it, so an embedder
//! carries out either's actions the same way.

use crate::kit::Kit;
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::ReplicaId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Duration;

/// What an instance orders.
pub trait Value: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The digest replicas agree on. It must be collision-resistant and
    /// domain-separated from other uses of the hash (an engine's null digest among them).
    fn digest(&self, crypto: &dyn Crypto) -> Digest;
    /// Encoded size in bytes (bounds the values a replica accepts and sends).
    fn size(&self) -> usize {
        quorate_core::wire::encoded_len(self)
    }
}

/// The embedder's validity predicate: a backup prepares a primary's
/// proposal only if it holds. Values chosen by a view change are not checked
/// again (some correct replica checked them when they were first proposed).
pub trait Validity<V> {
    /// Whether `value`, proposed at `seq`, may be ordered; the error is the
    /// rejection reason.
    fn check(&self, seq: u64, value: &V) -> Result<(), &'static str>;
}

/// Accepts every value (values valid by construction, tests).
pub struct AnyValue;

impl<V> Validity<V> for AnyValue {
    fn check(&self, _seq: u64, _value: &V) -> Result<(), &'static str> {
        Ok(())
    }
}

/// Timers of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EngineTimer {
    /// Periodic: retransmit when nothing was decided since the last tick.
    Tick,
    /// The view change did not complete in time: move to the next view.
    ViewChange,
}

/// What the engine asks its embedder to do, in order.
#[derive(Clone, Debug)]
pub enum Action<V, M, R> {
    /// Send to one replica.
    Send {
        /// Destination.
        to: ReplicaId,
        /// Message.
        msg: M,
    },
    /// Send to every other replica.
    Broadcast {
        /// Message.
        msg: M,
    },
    /// Arm (or re-arm) a timer.
    SetTimer {
        /// Which.
        timer: EngineTimer,
        /// After how long.
        after: Duration,
    },
    /// Disarm a timer.
    CancelTimer {
        /// Which.
        timer: EngineTimer,
    },
    /// Make this record durable before any later send leaves.
    Persist(R),
    /// `seq` is decided (reported once per seq, in sequence order, each after
    /// its record was persisted). None: a null request (nothing to execute).
    Decided {
        /// Sequence number.
        seq: u64,
        /// The value.
        value: Option<V>,
    },
    /// The checkpoint at `seq` is stable: the log below it is gone, and the
    /// embedder should make that checkpoint its durable base (with
    /// `live_records` after it).
    Stable {
        /// Sequence number.
        seq: u64,
        /// State digest.
        digest: Digest,
    },
    /// This replica is behind a checkpoint its peers vouch for: fetch the
    /// state after `seq` (whose digest must be `digest`), then call
    /// `state_installed`. Repeated while still needed.
    NeedState {
        /// Sequence number.
        seq: u64,
        /// State digest.
        digest: Digest,
    },
    /// A view was installed.
    ViewChanged {
        /// The view.
        view: u64,
        /// Its primary.
        primary: ReplicaId,
    },
    /// Input refused.
    Rejected {
        /// Sender.
        from: ReplicaId,
        /// Why.
        reason: &'static str,
    },
    /// Worth a log line.
    Note(String),
}

/// Collects an engine call's actions.
#[derive(Debug)]
pub struct Actions<V, M, R>(Vec<Action<V, M, R>>);

impl<V, M, R> Default for Actions<V, M, R> {
    fn default() -> Self {
        Actions(Vec::new())
    }
}

impl<V, M, R> Actions<V, M, R> {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Append one.
    pub fn push(&mut self, a: Action<V, M, R>) {
        self.0.push(a);
    }
    /// The actions, in order.
    pub fn into_vec(self) -> Vec<Action<V, M, R>> {
        self.0
    }
    /// Take them all.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Action<V, M, R>> {
        self.0.drain(..)
    }
    /// The actions so far.
    pub fn as_slice(&self) -> &[Action<V, M, R>] {
        &self.0
    }
    /// Number of actions.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Append a send.
    pub fn send(&mut self, to: ReplicaId, msg: M) {
        self.0.push(Action::Send { to, msg });
    }
    /// Append a broadcast.
    pub fn broadcast(&mut self, msg: M) {
        self.0.push(Action::Broadcast { msg });
    }
    /// Append a rejection.
    pub fn reject(&mut self, from: ReplicaId, reason: &'static str) {
        self.0.push(Action::Rejected { from, reason });
    }
}

/// A proposal the primary may not make now.
#[derive(Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Not the primary of an installed view.
    NotPrimary,
    /// The window or the in-flight limit is full.
    Full,
    /// Larger than `max_value_bytes`.
    TooLarge,
}

/// The digest `value` is ordered under (a helper for [`Value`] implementations):
/// SHA-256 of a domain tag and the value's encoding.
pub fn digest_encoded<T: Serialize>(domain: &[u8], value: &T, crypto: &dyn Crypto) -> Digest {
    let mut b = Vec::with_capacity(domain.len() + quorate_core::wire::encoded_len(value) + 8);
    b.extend_from_slice(domain);
    b.extend_from_slice(&quorate_core::wire::encode(value));
    crypto.digest(&b)
}

/// A consensus-instance engine as its embedder drives it. The PBFT engine
/// ([`crate::pbft`]) and the Linear Hybster engine ([`crate::hybster`])
/// implement it, so a replica that runs instances (DQBFT's D- and
/// O-instances) is written once for both. Each method is the engine's own,
/// documented there.
pub trait Instance<V: Value>: Send {
    /// The engine's messages.
    type Msg: InstanceMsg<V>;
    /// The engine's durable records.
    type Record: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The state the engine keeps through the kit (decision 0017): the
    /// accessors below read it.
    fn kit(&self) -> &Kit<V, Self::Msg>;
    /// The same, to change.
    fn kit_mut(&mut self) -> &mut Kit<V, Self::Msg>;

    /// Arm the retransmission timer.
    fn start(&mut self, out: &mut Actions<V, Self::Msg, Self::Record>) {
        self.kit_mut().start(out)
    }
    /// The current view.
    fn view(&self) -> u64 {
        self.kit().view()
    }
    /// Whether the current view is installed.
    fn active(&self) -> bool {
        self.kit().active()
    }
    /// Primary of the current view.
    fn primary(&self) -> ReplicaId {
        self.kit().primary()
    }
    /// Whether this replica is the primary of an installed view.
    fn is_primary(&self) -> bool {
        self.kit().is_primary()
    }
    /// Last sequence number decided and reported.
    fn last_decided(&self) -> u64 {
        self.kit().last_decided()
    }
    /// Stable checkpoint.
    fn stable_checkpoint(&self) -> (u64, Digest) {
        self.kit().stable_checkpoint()
    }
    /// Sequence numbers accepted above the stable checkpoint.
    fn window(&self) -> u64 {
        self.kit().window()
    }
    /// Timeout growth after view changes that decided nothing.
    fn backoff(&self) -> u32 {
        self.kit().backoff()
    }
    /// The sequence number of the primary's next proposal.
    fn next_proposal(&self) -> u64 {
        self.kit().next_proposal()
    }
    /// Whether `seq` holds a proposal of the current view or a decision.
    fn has_proposal(&self, seq: u64) -> bool;
    /// The value decided or proposed at `seq`, if held.
    fn value_at(&self, seq: u64) -> Option<&V>;
    /// Whether the primary may propose now.
    fn can_propose(&self) -> bool;
    /// Primary: order `value` at the next sequence number.
    fn propose(&mut self, value: V, out: &mut Actions<V, Self::Msg, Self::Record>) -> Result<u64, ProposeError>;
    /// A message from replica `from`.
    fn on_message(
        &mut self,
        from: ReplicaId,
        msg: Self::Msg,
        validity: &dyn Validity<V>,
        out: &mut Actions<V, Self::Msg, Self::Record>,
    );
    /// One of the engine's timers.
    fn on_timer(&mut self, timer: EngineTimer, out: &mut Actions<V, Self::Msg, Self::Record>);
    /// Suspect the primary.
    fn start_view_change(&mut self, out: &mut Actions<V, Self::Msg, Self::Record>);
    /// Move to view `view` at once if it is later than ours, skipping the
    /// views between (DQBFT's reinstatement of a D-instance's owner, §3.2.5).
    fn view_change_to(&mut self, view: u64, out: &mut Actions<V, Self::Msg, Self::Record>);
    /// The embedder's checkpoint at `seq`.
    fn checkpoint_taken(&mut self, seq: u64, digest: Digest, out: &mut Actions<V, Self::Msg, Self::Record>);
    /// Whether state at (`seq`, `digest`) is still wanted.
    fn wants_state(&self, seq: u64, digest: Digest) -> bool;
    /// The embedder installed the state after `seq`.
    fn state_installed(&mut self, seq: u64, digest: Digest, out: &mut Actions<V, Self::Msg, Self::Record>);
    /// Whether the checkpoint is vouched for (enough to trust fetched state).
    fn vouches(&self, seq: u64, digest: Digest) -> bool;
    /// Whether a vouched checkpoint lies above what we decided.
    fn behind(&self) -> bool;
    /// Tell the peers where we are.
    fn ask_peers(&mut self, out: &mut Actions<V, Self::Msg, Self::Record>);
    /// What to keep past a new durable base.
    fn live_records(&mut self) -> Vec<Self::Record>;
    /// Come back from the durable log.
    fn recover(&mut self, records: Vec<Self::Record>, out: &mut Actions<V, Self::Msg, Self::Record>);
}

/// What an embedder may look at in an engine's messages.
pub trait InstanceMsg<V>: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The message's kind, for metrics and logs.
    fn kind(&self) -> &'static str;
    /// The primary's proposal it carries, if it is one: (view, seq, value).
    fn proposal(&self) -> Option<(u64, u64, &V)>;
    /// Every value it carries (a proposal, an offered value, decided
    /// values): for an embedder that checks values ahead of the engine.
    fn values(&self) -> Vec<&V>;
    /// A message offering `value` for `seq` to a replica that may miss it.
    fn offer(seq: u64, value: V) -> Self;
}

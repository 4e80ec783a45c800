//! The sans-IO contract between protocols and hosts.
//!
//! A host (simulator or runtime) owns one machine per node and calls
//! `handle(now, input, out)`; the machine appends [`Effect`]s to the
//! [`Outbox`], which the host drains and carries out. Time comes in as an
//! argument; machines never read a clock, spawn, or do I/O.

use crate::crypto::{Crypto, Digest};
use crate::ids::{ClientId, NodeId, ReplicaId};
use crate::keys::KeyMaterial;
use crate::membership::{FaultModel, Membership, MembershipError};
use crate::quorum::{ConfigError, QuorumSystem};
use crate::request::SignedRequest;
use crate::service::Service;
use crate::settings::GenericSettings;
use crate::time::Time;
use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// A protocol message: encodable, cloneable, with a short kind name for
/// metrics and logs.
pub trait Message: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Short name of the message kind (e.g. "PROPOSE").
    fn kind(&self) -> &'static str;
    /// The client REQUEST this message carries, if it is one (the generic
    /// faulty clients of [`crate::faulty_client`] tamper with it).
    fn request_mut(&mut self) -> Option<&mut SignedRequest>;
    /// Check the signatures this message carries, through `crypto`, before
    /// the machine sees it. Only a performance hook: the runtime calls it on
    /// its receiving threads so that the machine's own checks (which it must
    /// still make) hit the provider's cache of verified signatures instead of
    /// running on the machine's single thread.
    fn preverify(&self, from: NodeId, crypto: &dyn Crypto) {
        let _ = (from, crypto);
    }
}

/// What a host feeds a machine.
#[derive(Debug)]
pub enum Input<P: Protocol> {
    /// The node starts with empty state.
    Start,
    /// The node restarts after a crash with what it had made durable: the
    /// last [`Effect::PersistCheckpoint`] record and every
    /// [`Effect::Persist`] record after it, in order.
    Recover {
        /// Last durable checkpoint record.
        checkpoint: Option<Bytes>,
        /// Records persisted after it.
        records: Vec<Bytes>,
    },
    /// A message from an authenticated sender.
    Message {
        /// Sender, authenticated by the channel.
        from: NodeId,
        /// The message.
        msg: P::Message,
    },
    /// A timer set with [`Effect::SetTimer`] fired.
    Timer(P::Timer),
}

/// Something that happened, reported for metrics, tests and checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An operation was executed at position `slot` of the replica's order.
    Executed {
        /// Position in the execution order.
        slot: u64,
        /// Client.
        client: ClientId,
        /// Client's sequence number.
        seq: u64,
        /// Digest of the operation.
        op: Digest,
        /// Executed speculatively (may still roll back).
        speculative: bool,
    },
    /// Speculative executions below `slot` became final.
    Committed {
        /// First slot that is not final yet.
        slot: u64,
    },
    /// Speculative executions from `slot` on were undone.
    RolledBack {
        /// First undone slot.
        slot: u64,
    },
    /// A checkpoint of the state after `slot` operations.
    Checkpoint {
        /// Number of operations executed.
        slot: u64,
        /// State digest.
        digest: Digest,
    },
    /// State received by state transfer was installed; execution continues at `slot`.
    StateInstalled {
        /// Number of operations covered by the installed state.
        slot: u64,
        /// State digest.
        digest: Digest,
    },
    /// A consensus instance decided.
    Decided {
        /// Instance.
        instance: u64,
        /// Requests in the decided batch.
        requests: usize,
    },
    /// A new view / regency was installed.
    ViewChanged {
        /// The view number.
        view: u64,
        /// Its leader.
        leader: ReplicaId,
    },
    /// Input rejected, with the reason (counted by hosts).
    Rejected {
        /// Why.
        reason: &'static str,
        /// From whom.
        from: NodeId,
    },
    /// Anything else worth a log line.
    Note(String),
}

/// What a machine asks its host to do.
#[derive(Debug)]
pub enum Effect<P: Protocol> {
    /// Send to one node.
    Send {
        /// Destination.
        to: NodeId,
        /// Message.
        msg: P::Message,
    },
    /// Send to every replica except the sender itself.
    Broadcast {
        /// Message.
        msg: P::Message,
    },
    /// Send to a set of replicas (the host encodes the message once).
    Multicast {
        /// Destinations.
        to: Vec<ReplicaId>,
        /// Message.
        msg: P::Message,
    },
    /// Arm (or re-arm) a named timer.
    SetTimer {
        /// Which timer.
        timer: P::Timer,
        /// Fires after this delay.
        after: Duration,
    },
    /// Disarm a named timer.
    CancelTimer {
        /// Which timer.
        timer: P::Timer,
    },
    /// Make a record durable before any later send of this node leaves.
    Persist(Bytes),
    /// Make a checkpoint record durable; it replaces all earlier records.
    PersistCheckpoint(Bytes),
    /// Client machines: the outstanding operation completed with this result.
    Complete {
        /// The service's reply.
        result: Bytes,
    },
    /// Report an event.
    Event(Event),
}

impl<P: Protocol> Clone for Input<P> {
    fn clone(&self) -> Self {
        match self {
            Input::Start => Input::Start,
            Input::Recover { checkpoint, records } => {
                Input::Recover { checkpoint: checkpoint.clone(), records: records.clone() }
            }
            Input::Message { from, msg } => Input::Message { from: *from, msg: msg.clone() },
            Input::Timer(t) => Input::Timer(t.clone()),
        }
    }
}

impl<P: Protocol> Clone for Effect<P> {
    fn clone(&self) -> Self {
        match self {
            Effect::Send { to, msg } => Effect::Send { to: *to, msg: msg.clone() },
            Effect::Broadcast { msg } => Effect::Broadcast { msg: msg.clone() },
            Effect::Multicast { to, msg } => Effect::Multicast { to: to.clone(), msg: msg.clone() },
            Effect::SetTimer { timer, after } => Effect::SetTimer { timer: timer.clone(), after: *after },
            Effect::CancelTimer { timer } => Effect::CancelTimer { timer: timer.clone() },
            Effect::Persist(b) => Effect::Persist(b.clone()),
            Effect::PersistCheckpoint(b) => Effect::PersistCheckpoint(b.clone()),
            Effect::Complete { result } => Effect::Complete { result: result.clone() },
            Effect::Event(e) => Effect::Event(e.clone()),
        }
    }
}

/// Collects the effects of one `handle` call.
#[derive(Debug)]
pub struct Outbox<P: Protocol> {
    effects: Vec<Effect<P>>,
}

impl<P: Protocol> Default for Outbox<P> {
    fn default() -> Self {
        Outbox { effects: Vec::new() }
    }
}

impl<P: Protocol> Outbox<P> {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }
    /// Append an effect.
    pub fn push(&mut self, e: Effect<P>) {
        self.effects.push(e);
    }
    /// Send to one node.
    pub fn send(&mut self, to: impl Into<NodeId>, msg: P::Message) {
        self.effects.push(Effect::Send { to: to.into(), msg });
    }
    /// Send to all other replicas.
    pub fn broadcast(&mut self, msg: P::Message) {
        self.effects.push(Effect::Broadcast { msg });
    }
    /// Send to a set of replicas.
    pub fn multicast(&mut self, to: Vec<ReplicaId>, msg: P::Message) {
        self.effects.push(Effect::Multicast { to, msg });
    }
    /// Arm a timer.
    pub fn set_timer(&mut self, timer: P::Timer, after: Duration) {
        self.effects.push(Effect::SetTimer { timer, after });
    }
    /// Disarm a timer.
    pub fn cancel_timer(&mut self, timer: P::Timer) {
        self.effects.push(Effect::CancelTimer { timer });
    }
    /// Report an event.
    pub fn event(&mut self, e: Event) {
        self.effects.push(Effect::Event(e));
    }
    /// Report a rejected input.
    pub fn reject(&mut self, from: NodeId, reason: &'static str) {
        self.effects.push(Effect::Event(Event::Rejected { reason, from }));
    }
    /// Take all effects, leaving the outbox empty.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Effect<P>> {
        self.effects.drain(..)
    }
    /// The effects collected so far.
    pub fn effects(&self) -> &[Effect<P>] {
        &self.effects
    }
    /// Mutable access, for adversary wrappers that rewrite effects.
    pub fn effects_mut(&mut self) -> &mut Vec<Effect<P>> {
        &mut self.effects
    }
    /// Number of effects.
    pub fn len(&self) -> usize {
        self.effects.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.effects.is_empty()
    }
}

/// A replica's protocol state machine.
pub trait ReplicaMachine<P: Protocol>: Send {
    /// Handle one input at time `now`, appending effects to `out`.
    fn handle(&mut self, now: Time, input: Input<P>, out: &mut Outbox<P>);
    /// Digest of the replica's current service state (for tests and checkers).
    fn state_digest(&self) -> Digest;
    /// Number of operations executed finally (speculative executions not included).
    fn executed(&self) -> u64;
    /// The machine itself, for tests that look inside a protocol's replica
    /// in the simulator (None: it does not offer that).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// A client's protocol state machine. One operation at a time.
pub trait ClientMachine<P: Protocol>: Send {
    /// Start an operation; completion comes as [`Effect::Complete`].
    fn invoke(&mut self, now: Time, op: Bytes, read_only: bool, out: &mut Outbox<P>);
    /// Handle a reply or a timer.
    fn handle(&mut self, now: Time, input: Input<P>, out: &mut Outbox<P>);
}

/// Everything a replica machine is built from.
pub struct ReplicaContext<K = ()> {
    /// This replica.
    pub id: ReplicaId,
    /// The configuration.
    pub membership: Membership,
    /// This replica's crypto provider.
    pub crypto: Arc<dyn Crypto>,
    /// The replicated service (fresh state).
    pub service: Box<dyn Service>,
    /// This replica's protocol key material ([`Protocol::Keys`]): loaded
    /// and checked by the runtime, which refuses to start without it;
    /// [`KeyMaterial::modelled`] in the simulator.
    pub keys: K,
}

/// Everything a client machine is built from.
pub struct ClientContext<K: KeyMaterial = ()> {
    /// This client.
    pub id: ClientId,
    /// The sequence number the client's first request must exceed. Replicas
    /// remember each client's last executed number, so a client process that
    /// restarts with the same id must continue above it (the runtime derives
    /// it from the wall clock; the simulator starts at 0).
    pub first_seq: u64,
    /// The replicas from nearest to farthest (every replica once). Protocols
    /// whose clients talk to one replica (leaderless ones) start with the
    /// first. The simulator sorts by latency from the client's region; the
    /// runtime starts at the client's home replica and goes round.
    pub nearest: Vec<ReplicaId>,
    /// The configuration.
    pub membership: Membership,
    /// This client's crypto provider.
    pub crypto: Arc<dyn Crypto>,
    /// The public part of the protocol's key material
    /// ([`KeyMaterial::Public`]), as [`ReplicaContext::keys`].
    pub public_keys: K::Public,
}

/// The membership of `n` replicas tolerating `f` faults in `model` for
/// protocol `P`: its [`Protocol::quorum_system`], checked by
/// [`QuorumSystem::check`]. Every host builds memberships here, so a
/// configuration the protocol does not accept never starts.
pub fn membership_for<P: Protocol>(n: usize, f: usize, model: FaultModel) -> Result<Membership, ConfigError> {
    let system = P::quorum_system(n, f, model)?;
    system.check().map_err(|violation| ConfigError::Unsafe { protocol: P::NAME, n, f, violation })?;
    Ok(Membership::of(&system))
}

/// [`membership_for`] with WHEAT-style vote weights, one per replica
/// ([`Membership::weighted_of`]); all ones give the unweighted membership.
pub fn weighted_membership_for<P: Protocol>(
    weights: &[u32],
    f: usize,
    model: FaultModel,
) -> Result<Membership, ConfigError> {
    let n = weights.len();
    let unweighted = membership_for::<P>(n, f, model)?;
    if weights.iter().all(|w| *w == 1) {
        return Ok(unweighted);
    }
    let weights_error = |error| ConfigError::Weights { protocol: P::NAME, error };
    if let Some(i) = weights.iter().position(|w| *w == 0) {
        return Err(weights_error(MembershipError::ZeroWeight(i)));
    }
    if !P::WEIGHTED_VOTES {
        return Err(weights_error(MembershipError::CountsReplicas));
    }
    let system = P::quorum_system(n, f, model)?;
    Membership::weighted_of(&system, weights.to_vec()).map_err(weights_error)
}

/// An unknown adversary strategy name.
#[derive(Debug, thiserror::Error)]
#[error("unknown strategy '{0}' (see --list-faults)")]
pub struct UnknownStrategy(pub String);

/// Which operations a protocol puts in the same order at every correct replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderGuarantee {
    /// All of them: one total order (the n-th final execution is the same everywhere).
    Total,
    /// Interfering ones (see `Service::conflicts` and `Service::conflict_key`);
    /// others may run in different orders at different replicas (leaderless protocols).
    Interfering,
}

/// A protocol: its message and timer types, its machines, and how many
/// replicas it needs. Hosts are generic over this trait.
pub trait Protocol: Sized + Send + 'static {
    /// Name on the command line (e.g. "mod-smart").
    const NAME: &'static str;
    /// What the protocol orders (checkers compare replicas accordingly).
    const ORDER: OrderGuarantee = OrderGuarantee::Total;
    /// Whether every rule of the protocol counts votes by weight, so that a
    /// weighted membership ([`weighted_membership_for`]) keeps it safe and
    /// live. Off until a protocol's every quorum (view change included) is
    /// weighted, as WHEAT's are; unit weights are accepted either way.
    const WEIGHTED_VOTES: bool = false;
    /// Key material beyond each node's signing key (`()`: none), see
    /// [`KeyMaterial`]: `quorate keygen` deals it, the runtime loads and
    /// checks it before building a machine, the simulator models it.
    type Keys: KeyMaterial;
    /// Message enum (replica-replica and client-replica).
    type Message: Message;
    /// Timer names.
    type Timer: Clone + Debug + PartialEq + Eq + Hash + Send + Sync + 'static;
    /// Settings (timeouts, batch size, ...), with documented defaults.
    /// Settings, read from the `[settings]` table of the cluster file (unknown
    /// fields are errors; missing ones take their defaults).
    type Config: Clone + Debug + Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Replicas needed to tolerate f faults in a fault model (the default n;
    /// [`Protocol::quorum_system`] says which other n are accepted).
    fn replicas_for(f: usize, model: FaultModel) -> usize;
    /// The quorums of `n` replicas tolerating `f` faults in `model`, or the
    /// rule that refuses the configuration. Hosts build memberships with
    /// [`membership_for`], which also checks the system. The default (for
    /// test protocols): any n >= [`Protocol::replicas_for`] with the model's
    /// standard quorums.
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        let min = Self::replicas_for(f, model);
        if n < min.max(1) {
            return Err(ConfigError::rule(Self::NAME, format!("n >= {min} for f = {f}"), n, f));
        }
        Ok(QuorumSystem::standard(n, f, model))
    }
    /// How long after stabilisation (GST, the last crash, recovery or heal,
    /// plus a settling time) a correct client's pending operation may take at
    /// most, with `faulty` replicas still faulty (Byzantine, or crashed for
    /// good): the protocol's recovery path spelled out with its own
    /// timeouts. The simulator's liveness checker uses it as its default
    /// bound (decision 0012), so it must hold for every run within f, and it
    /// must be finite so that a stalled run fails.
    fn liveness_bound(config: &Self::Config, faulty: usize) -> Duration;
    /// The protocol's config with the generic settings applied (defaults
    /// for anything not set); an error names a setting it does not take.
    /// The default (test protocols) takes none.
    fn apply_settings(settings: &GenericSettings) -> Result<Self::Config, String> {
        if settings.is_default() {
            Ok(Self::Config::default())
        } else {
            Err(format!("{} takes no generic settings", Self::NAME))
        }
    }
    /// Check settings; the error names the wrong field.
    fn validate_config(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
    /// Build a replica machine.
    fn replica(ctx: ReplicaContext<Self::Keys>, config: &Self::Config) -> Box<dyn ReplicaMachine<Self>>;
    /// Build a client machine.
    fn client(ctx: ClientContext<Self::Keys>, config: &Self::Config) -> Box<dyn ClientMachine<Self>>;
    /// Adversary strategies this protocol provides: (name, description).
    const STRATEGIES: &'static [(&'static str, &'static str)] = &[];
    /// Wrap a correct replica into a Byzantine one following `strategy`.
    fn byzantine(
        strategy: &str,
        ctx: ReplicaContext<Self::Keys>,
        config: &Self::Config,
    ) -> Result<Box<dyn ReplicaMachine<Self>>, UnknownStrategy> {
        let _ = (ctx, config);
        Err(UnknownStrategy(strategy.to_string()))
    }
    /// This protocol's own client adversary strategies: (name, description).
    /// The generic ones ([`crate::faulty_client::STRATEGIES`]) come on top for
    /// every protocol: hosts list [`crate::faulty_client::strategies`] and
    /// build with [`crate::faulty_client::build`].
    const CLIENT_STRATEGIES: &'static [(&'static str, &'static str)] = &[];
    /// Build a faulty client following one of [`Protocol::CLIENT_STRATEGIES`].
    fn byzantine_client(
        strategy: &str,
        ctx: ClientContext<Self::Keys>,
        config: &Self::Config,
    ) -> Result<Box<dyn ClientMachine<Self>>, UnknownStrategy> {
        let _ = (ctx, config);
        Err(UnknownStrategy(strategy.to_string()))
    }
}

/// Recovery rounds a [`Protocol::liveness_bound`] allows with `faulty`
/// replicas faulty: one per faulty replica that may lead in turn, and one
/// more for a recovery already under way at stabilisation (decision 0012).
pub fn recovery_rounds(faulty: usize) -> u32 {
    u32::try_from(faulty).unwrap_or(u32::MAX).saturating_add(2)
}

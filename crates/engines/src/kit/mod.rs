//! What the engines share (decision 0017): [`Kit`] holds the state and the
//! rules that do not depend on how an engine certifies a decision (MAC or
//! signature quorums in PBFT, threshold shares in Linear Hybster): who we
//! are, the view, the slot log's values by digest, in-order decision
//! reporting, the retransmission tick's progress check, the future-message
//! hold, the replay guard (nothing leaves while the durable log is
//! replayed), the f+1 view-join rule and proposal admission. The vote
//! tally is [`tally`]; the engines' unit tests share one network
//! (`testnet`).

pub mod tally;
#[cfg(test)]
pub(crate) mod testnet;

use crate::instance::{Action, Actions, EngineTimer, ProposeError, Value};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::ReplicaId;
use quorate_core::invariant::InOrder;
use quorate_core::membership::Membership;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The settings of an engine that the kit's rules read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Sequence numbers in (stable, stable + window] are accepted.
    pub window: u64,
    /// Proposals the primary keeps undecided at most.
    pub max_in_flight: u64,
    /// Retransmission period.
    pub status_interval: Duration,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Messages of views not installed yet kept for later.
    pub max_held: usize,
    /// The primary of view v is replica (v + offset) mod n.
    pub primary_offset: u64,
}

/// The state every engine keeps whatever its certificates: generic over the
/// value `V` and the engine's message `M` (held messages).
pub struct Kit<V, M> {
    /// This replica.
    pub(crate) id: ReplicaId,
    pub(crate) m: Membership,
    pub(crate) crypto: Arc<dyn Crypto>,
    pub(crate) set: Settings,
    /// The engine's null request digest (decided, nothing to execute).
    pub(crate) null: Digest,
    /// The view we are in, or moving to when `!active`.
    pub(crate) view: u64,
    /// Whether `view` is installed (false: VIEW-CHANGE sent, no NEW-VIEW yet).
    pub(crate) active: bool,
    /// Stable checkpoint (low watermark) and its digest.
    pub(crate) stable: u64,
    pub(crate) stable_digest: Digest,
    /// Values by digest (referenced by the log, or kept to help others).
    pub(crate) values: HashMap<Digest, V>,
    /// Digests whose values are in the durable log since its last base.
    pub(crate) durable: HashSet<Digest>,
    /// Values we miss: seq → digest.
    pub(crate) wanted: BTreeMap<u64, Digest>,
    /// Everything up to here is decided and reported.
    pub(crate) last_decided: u64,
    /// Primary: the next sequence number to assign.
    pub(crate) next_seq: u64,
    /// View changes in a row that decided nothing.
    pub(crate) failed_views: u32,
    /// Whether the view-change timer runs for `view`.
    pub(crate) vc_timer: bool,
    /// Messages for views not installed yet.
    pub(crate) held: Vec<(ReplicaId, M)>,
    /// Retransmission state.
    pub(crate) decided_at_tick: u64,
    pub(crate) stuck_ticks: u32,
    /// A message came for a sequence number past our window: peers are ahead.
    pub(crate) heard_beyond: bool,
    pub(crate) state_target: Option<(u64, Digest)>,
    /// Replaying the durable log: nothing is sent or persisted.
    pub(crate) replaying: bool,
    pub(crate) started: bool,
    /// The next sequence number to report decided (invariant, decision 0016).
    pub(crate) reported: InOrder,
}

impl<V: Value, M: Clone> Kit<V, M> {
    /// A fresh kit for replica `id`, in view 0.
    pub fn new(id: ReplicaId, m: Membership, crypto: Arc<dyn Crypto>, set: Settings, null: Digest) -> Self {
        Kit {
            id,
            m,
            crypto,
            set,
            null,
            view: 0,
            active: true,
            stable: 0,
            stable_digest: Digest::default(),
            values: HashMap::new(),
            durable: HashSet::new(),
            wanted: BTreeMap::new(),
            last_decided: 0,
            next_seq: 1,
            failed_views: 0,
            vc_timer: false,
            held: Vec::new(),
            decided_at_tick: 0,
            stuck_ticks: 0,
            heard_beyond: false,
            state_target: None,
            replaying: false,
            started: false,
            reported: InOrder::starting_at(1),
        }
    }

    /// Arm the retransmission timer (once, at start or after recovery).
    pub fn start<R>(&mut self, out: &mut Actions<V, M, R>) {
        self.started = true;
        out.push(Action::SetTimer { timer: EngineTimer::Tick, after: self.set.status_interval });
    }

    /// The current view (the one being moved to during a view change).
    pub fn view(&self) -> u64 {
        self.view
    }
    /// Whether the current view is installed.
    pub fn active(&self) -> bool {
        self.active
    }
    /// This replica.
    pub fn id(&self) -> ReplicaId {
        self.id
    }
    /// Primary (and collector, where there is one) of `view`.
    pub fn primary_of(&self, view: u64) -> ReplicaId {
        ReplicaId((view.wrapping_add(self.set.primary_offset) % self.m.n() as u64) as u32)
    }
    /// Primary of the current view.
    pub fn primary(&self) -> ReplicaId {
        self.primary_of(self.view)
    }
    /// Whether this replica is the primary of an installed view.
    pub fn is_primary(&self) -> bool {
        self.active && self.primary() == self.id
    }
    /// Last sequence number decided and reported.
    pub fn last_decided(&self) -> u64 {
        self.last_decided
    }
    /// Stable checkpoint (low watermark).
    pub fn stable_checkpoint(&self) -> (u64, Digest) {
        (self.stable, self.stable_digest)
    }
    /// Highest sequence number accepted now: the stable checkpoint plus the
    /// window (not more, even when a NEW-VIEW starts from a later
    /// checkpoint: our VIEW-CHANGEs must be able to claim every entry we hold).
    pub fn high_watermark(&self) -> u64 {
        self.stable.saturating_add(self.set.window)
    }
    /// Factor by which timeouts grow after view changes that decided nothing
    /// (the embedder scales its request timer by it).
    pub fn backoff(&self) -> u32 {
        1u32 << self.failed_views.min(6)
    }
    /// The sequence number the primary's next proposal takes.
    pub fn next_proposal(&self) -> u64 {
        self.next_seq
    }
    /// Sequence numbers accepted above the stable checkpoint.
    pub fn window(&self) -> u64 {
        self.set.window
    }

    /// Proposal admission, the part every engine shares: primary of an
    /// installed view, room in the window, under the in-flight limit.
    pub(crate) fn room_to_propose(&self) -> bool {
        self.is_primary()
            && self.next_seq <= self.high_watermark()
            && self.next_seq.saturating_sub(self.last_decided + 1) < self.set.max_in_flight
    }

    /// Whether `value` may be proposed now (`can_propose`: the engine's
    /// own answer); its digest if so.
    pub(crate) fn admit_proposal(&self, value: &V, can_propose: bool) -> Result<Digest, ProposeError> {
        if !self.is_primary() {
            return Err(ProposeError::NotPrimary);
        }
        if !can_propose {
            return Err(ProposeError::Full);
        }
        if value.size() > self.set.max_value_bytes {
            return Err(ProposeError::TooLarge);
        }
        Ok(value.digest(self.crypto.as_ref()))
    }

    /// The value of `digest`, if known (a null request always is).
    pub(crate) fn known(&self, digest: &Digest) -> bool {
        *digest == self.null || self.values.contains_key(digest)
    }

    /// The value to write into a record of `digest`: the value the first time
    /// since the last durable base, None after (it is in the log already).
    pub(crate) fn durable_value(&mut self, digest: Digest) -> Option<V> {
        if digest == self.null || self.replaying {
            return None;
        }
        let v = self.values.get(&digest)?;
        self.durable.insert(digest).then(|| v.clone())
    }

    /// Report decided sequence numbers in order, as far as there is no gap
    /// (`decided_at`: the slot log's decided digest at a seq). `what` names
    /// the invariant: decisions are executed in sequence order, each once.
    pub(crate) fn report_decided<R>(
        &mut self,
        decided_at: impl Fn(u64) -> Option<Digest>,
        what: &'static str,
        out: &mut Actions<V, M, R>,
    ) {
        loop {
            let seq = self.last_decided + 1;
            let Some(digest) = decided_at(seq) else { break };
            let value = if digest == self.null {
                None
            } else {
                match self.values.get(&digest) {
                    Some(v) => Some(v.clone()),
                    None => break,
                }
            };
            self.reported.report(seq, what);
            self.last_decided = seq;
            out.push(Action::Decided { seq, value });
        }
        if self.state_target.is_some_and(|(s, _)| s <= self.last_decided) {
            self.state_target = None;
        }
    }

    /// The retransmission tick's progress check: whether something was
    /// decided since the last tick (then the stuck count restarts).
    pub(crate) fn progressed_since_tick(&mut self) -> bool {
        let progressed = self.last_decided != self.decided_at_tick;
        self.decided_at_tick = self.last_decided;
        if progressed {
            self.stuck_ticks = 0;
            self.heard_beyond = false;
        }
        progressed
    }

    /// The view-join rule: `weak` (f+1) replicas other than us ask for
    /// views later than ours (`asked`: each replica's latest), so at least
    /// one correct one does; the lowest view that `weak` of them ask for,
    /// if later than ours.
    pub(crate) fn join_target(&self, asked: impl Iterator<Item = (ReplicaId, u64)>, weak: usize) -> Option<u64> {
        let current = self.view;
        let mut later: Vec<u64> = asked.filter(|(r, v)| *r != self.id && *v > current).map(|(_, v)| v).collect();
        if later.len() < weak {
            return None;
        }
        later.sort_unstable_by(|a, b| b.cmp(a));
        Some(later[weak - 1]).filter(|t| *t > self.view)
    }

    /// Keep a message of a view not installed yet (bounded; later ones are dropped).
    pub(crate) fn hold(&mut self, from: ReplicaId, msg: M) {
        if self.held.len() < self.set.max_held {
            self.held.push((from, msg));
        }
    }

    /// View `v` is installed: the held messages of `v` to handle now (those
    /// of later views stay held, older ones go).
    pub(crate) fn release_held(&mut self, v: u64, msg_view: impl Fn(&M) -> Option<u64>) -> Vec<(ReplicaId, M)> {
        let held = std::mem::take(&mut self.held);
        let (now, later): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, m)| msg_view(m) == Some(v));
        self.held = later.into_iter().filter(|(_, m)| msg_view(m).is_some_and(|mv| mv > v)).collect();
        now
    }

    /// Send, unless replaying the durable log.
    pub(crate) fn send<R>(&self, to: ReplicaId, msg: M, out: &mut Actions<V, M, R>) {
        if !self.replaying {
            out.send(to, msg);
        }
    }

    /// Broadcast, unless replaying the durable log.
    pub(crate) fn broadcast<R>(&self, msg: M, out: &mut Actions<V, M, R>) {
        if !self.replaying {
            out.broadcast(msg);
        }
    }

    /// Persist, unless replaying the durable log.
    pub(crate) fn persist<R>(&self, rec: R, out: &mut Actions<V, M, R>) {
        if !self.replaying {
            out.push(Action::Persist(rec));
        }
    }

    /// A log line, unless replaying the durable log.
    pub(crate) fn note<R>(&self, text: String, out: &mut Actions<V, M, R>) {
        if !self.replaying {
            out.push(Action::Note(text));
        }
    }
}

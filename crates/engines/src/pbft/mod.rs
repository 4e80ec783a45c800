//! One PBFT consensus instance (Castro and Liskov, OSDI'99 and TOCS 2002, in
//! its MAC form) as a sans-IO engine, generic over the value it orders.
//!
//! The engine orders values at sequence numbers and reports each decision
//! once, in sequence order ([`Action::Decided`]). It executes nothing and
//! holds no client state: its embedder executes, takes checkpoints and feeds
//! their digests back ([`Engine::checkpoint_taken`]), fetches state when the
//! engine asks for it ([`Action::NeedState`], [`Engine::state_installed`]),
//! and decides when to suspect the primary ([`Engine::start_view_change`]).
//! Messages ([`PbftMsg`]) and timers ([`EngineTimer`]) are the engine's own;
//! an embedder running several instances over one network wraps them with
//! the instance id and routes them back.
//!
//! - `normal.rs`: PRE-PREPARE, PREPARE, COMMIT, decisions in order.
//! - `checkpoint.rs`: CHECKPOINT, stable checkpoints, watermarks, truncation,
//!   STATUS-driven retransmission, fetching decided values and values, state need.
//! - `view_change.rs`: VIEW-CHANGE, NEW-VIEW and the new primary's decision procedure.
//! - `durable.rs`: what is persisted, and recovery.

pub mod collusion;
pub mod messages;

mod checkpoint;
mod durable;
mod normal;
mod view_change;

#[cfg(test)]
mod invariant_tests;
#[cfg(test)]
mod tests;

pub use durable::Record;
pub use messages::{
    Auth, DecidedEntry, NewView, PbftMsg, PrePrepareClaim, PrepareClaim, Signed, ViewChange, NULL_DIGEST,
};

use quorate_core::crypto::{Crypto, Digest, Mac};
use quorate_core::ids::{NodeId, ReplicaId};
pub use crate::instance::{self, digest_encoded, AnyValue, EngineTimer, ProposeError, Validity, Value};
use quorate_core::invariant::{InOrder, OwnVotes};
use quorate_core::membership::Membership;
pub(crate) use crate::kit::tally::Votes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// Most pre-prepared claims per sequence number a VIEW-CHANGE may carry (the
/// latest views are kept: a correct replica pre-prepares at most one value
/// per view, so only many view changes without progress reach this).
pub const MAX_CLAIMS_PER_SEQ: usize = 8;

/// What the engine asks its embedder to do (the shared instance contract).
pub type Action<V> = instance::Action<V, PbftMsg<V>, Record<V>>;
/// Collects an engine call's actions.
pub type Actions<V> = instance::Actions<V, PbftMsg<V>, Record<V>>;

/// Settings of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Instance number, bound into every MAC and signature.
    pub instance: u64,
    /// A checkpoint every this many sequence numbers (K).
    pub checkpoint_period: u64,
    /// Log size L: sequence numbers in (h, h + L] are accepted, h being the
    /// stable checkpoint. At least one checkpoint period.
    pub window: u64,
    /// Proposals the primary keeps undecided at most.
    pub max_in_flight: u64,
    /// After 2f+1 VIEW-CHANGEs, wait this long for the NEW-VIEW before moving
    /// to the next view (doubling with each view change that decides nothing).
    pub view_change_timeout: Duration,
    /// Retransmission period: with nothing decided for this long, repeat.
    pub status_interval: Duration,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Largest DECIDED answer, in bytes of values.
    pub max_reply_bytes: usize,
    /// Messages of views not installed yet kept for later.
    pub max_held: usize,
    /// The primary of view v is replica (v + offset) mod n: an embedder
    /// running one instance per replica starts each at its own replica.
    pub primary_offset: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            instance: 0,
            checkpoint_period: 128,
            window: 256,
            max_in_flight: 4,
            view_change_timeout: Duration::from_secs(2),
            status_interval: Duration::from_millis(250),
            max_value_bytes: 16 << 20,
            max_reply_bytes: 4 << 20,
            max_held: 4096,
            primary_offset: 0,
        }
    }
}

impl EngineConfig {
    /// Check the settings; the error names the wrong one.
    pub fn validate(&self) -> Result<(), String> {
        if self.checkpoint_period == 0 {
            return Err("checkpoint_period must be at least 1".into());
        }
        if self.window < self.checkpoint_period {
            return Err("window must be at least one checkpoint period".into());
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".into());
        }
        if self.view_change_timeout.is_zero() || self.status_interval.is_zero() {
            return Err("view_change_timeout and status_interval must be positive".into());
        }
        Ok(())
    }
}

/// The log entry of one sequence number.
#[derive(Clone, Debug)]
pub(crate) struct Slot<V> {
    /// View the per-view fields below belong to.
    pub votes_view: u64,
    /// The PRE-PREPARE (or NEW-VIEW entry) accepted in `votes_view`.
    pub pre_prepare: Option<Digest>,
    /// PREPAREs of `votes_view`, one per backup.
    pub prepares: Votes,
    /// COMMITs of `votes_view`, one per replica.
    pub commits: Votes,
    /// What we sent PREPARE for in `votes_view`.
    pub sent_prepare: Option<Digest>,
    /// What we sent COMMIT for in `votes_view`.
    pub sent_commit: Option<Digest>,
    /// Latest prepared certificate: (view, digest) (P).
    pub prepared: Option<(u64, Digest)>,
    /// Pre-prepared digests with the latest view of each (Q), latest views kept.
    pub pre_prepared: Vec<(Digest, u64)>,
    /// Decided digest.
    pub decided: Option<Digest>,
    /// Peers' reports that this seq is decided (DECIDED answers), one per peer.
    pub reports: BTreeMap<ReplicaId, Digest>,
    /// Values that came with those reports, by digest (until one has f+1 reports).
    pub report_values: BTreeMap<Digest, V>,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Slot {
            votes_view: 0,
            pre_prepare: None,
            prepares: Votes::default(),
            commits: Votes::default(),
            sent_prepare: None,
            sent_commit: None,
            prepared: None,
            pre_prepared: Vec::new(),
            decided: None,
            reports: BTreeMap::new(),
            report_values: BTreeMap::new(),
        }
    }
}

impl<V> Slot<V> {
    /// Move the per-view fields to `view` (votes of older views no longer count).
    pub(crate) fn enter_view(&mut self, view: u64) {
        if self.votes_view != view {
            self.votes_view = view;
            self.pre_prepare = None;
            self.prepares.clear();
            self.commits.clear();
            self.sent_prepare = None;
            self.sent_commit = None;
        }
    }

    /// Note that `digest` was pre-prepared in `view` (Q).
    pub(crate) fn note_pre_prepared(&mut self, digest: Digest, view: u64) {
        match self.pre_prepared.iter_mut().find(|(d, _)| *d == digest) {
            Some((_, v)) => *v = (*v).max(view),
            None => self.pre_prepared.push((digest, view)),
        }
        if self.pre_prepared.len() > MAX_CLAIMS_PER_SEQ {
            self.pre_prepared.sort_by_key(|(d, v)| (std::cmp::Reverse(*v), *d));
            self.pre_prepared.truncate(MAX_CLAIMS_PER_SEQ);
        }
    }

    /// Note a prepared certificate (P keeps the latest view).
    pub(crate) fn note_prepared(&mut self, digest: Digest, view: u64) {
        if self.prepared.is_none_or(|(v, _)| v <= view) {
            self.prepared = Some((view, digest));
        }
    }
}

/// One PBFT instance at one replica.
pub struct Engine<V: Value> {
    pub(crate) id: ReplicaId,
    pub(crate) m: Membership,
    pub(crate) crypto: Arc<dyn Crypto>,
    pub(crate) cfg: EngineConfig,
    /// The view we are in, or moving to when `!active`.
    pub(crate) view: u64,
    /// Whether `view` is installed (false: VIEW-CHANGE sent, no NEW-VIEW yet).
    pub(crate) active: bool,
    /// Stable checkpoint (low watermark) and its digest.
    pub(crate) stable: u64,
    pub(crate) stable_digest: Digest,
    /// Our checkpoints at `stable` and above.
    pub(crate) own_checkpoints: BTreeMap<u64, Digest>,
    /// CHECKPOINT votes above `stable`, per seq.
    pub(crate) checkpoint_votes: BTreeMap<u64, BTreeMap<ReplicaId, Digest>>,
    /// Each replica's highest CHECKPOINT claim (to notice we are behind).
    pub(crate) claims: BTreeMap<ReplicaId, (u64, Digest)>,
    /// A checkpoint vouched for by the installed NEW-VIEW.
    pub(crate) vouched: Option<(u64, Digest)>,
    /// The log above `stable`.
    pub(crate) slots: BTreeMap<u64, Slot<V>>,
    /// Values by digest (referenced by the log, or kept to help others).
    pub(crate) values: HashMap<Digest, V>,
    /// Digests whose values are in the durable log since its last checkpoint.
    pub(crate) durable: HashSet<Digest>,
    /// Decided digests of the interval before `stable`, kept to help peers
    /// that are slightly behind.
    pub(crate) retained: BTreeMap<u64, Digest>,
    /// Everything up to here is decided and reported.
    pub(crate) last_decided: u64,
    /// Primary: the next sequence number to assign.
    pub(crate) next_seq: u64,
    /// Values we miss: seq → digest.
    pub(crate) wanted: BTreeMap<u64, Digest>,
    /// Each replica's latest VIEW-CHANGE.
    pub(crate) view_changes: BTreeMap<ReplicaId, Signed<ViewChange>>,
    /// The NEW-VIEW of the installed view (None in view 0).
    pub(crate) new_view: Option<Signed<NewView>>,
    /// Whether the view-change timer runs for `view`.
    pub(crate) vc_timer: bool,
    /// View changes in a row that decided nothing.
    pub(crate) failed_views: u32,
    /// Messages for views not installed yet.
    pub(crate) held: Vec<(ReplicaId, PbftMsg<V>)>,
    /// Retransmission state.
    pub(crate) decided_at_tick: u64,
    pub(crate) stuck_ticks: u32,
    /// A message came for a sequence number past our window: peers are ahead.
    pub(crate) heard_beyond: bool,
    pub(crate) state_target: Option<(u64, Digest)>,
    /// Replaying the durable log: nothing is sent or persisted.
    pub(crate) replaying: bool,
    pub(crate) started: bool,
    // Invariants (decision 0016).
    /// What this replica sent, by (seq, view, kind): one digest each.
    pub(crate) own_votes: OwnVotes<(u64, u64, VoteKind), Digest>,
    /// The next sequence number to report decided.
    pub(crate) reported: InOrder,
}

/// The kinds of message a replica sends once per (view, seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum VoteKind {
    PrePrepare,
    Prepare,
    Commit,
}

impl<V: Value> Engine<V> {
    /// A fresh instance for replica `id`.
    pub fn new(id: ReplicaId, membership: Membership, crypto: Arc<dyn Crypto>, cfg: EngineConfig) -> Self {
        Engine {
            id,
            m: membership,
            crypto,
            cfg,
            view: 0,
            active: true,
            stable: 0,
            stable_digest: Digest::default(),
            own_checkpoints: BTreeMap::new(),
            checkpoint_votes: BTreeMap::new(),
            claims: BTreeMap::new(),
            vouched: None,
            slots: BTreeMap::new(),
            values: HashMap::new(),
            durable: HashSet::new(),
            retained: BTreeMap::new(),
            last_decided: 0,
            next_seq: 1,
            wanted: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            new_view: None,
            vc_timer: false,
            failed_views: 0,
            held: Vec::new(),
            decided_at_tick: 0,
            stuck_ticks: 0,
            heard_beyond: false,
            state_target: None,
            replaying: false,
            started: false,
            own_votes: OwnVotes::default(),
            reported: InOrder::starting_at(1),
        }
    }

    /// Arm the retransmission timer (call once, at start or after recovery).
    pub fn start(&mut self, out: &mut Actions<V>) {
        self.started = true;
        out.push(Action::SetTimer { timer: EngineTimer::Tick, after: self.cfg.status_interval });
    }

    /// The current view (the one being moved to during a view change).
    pub fn view(&self) -> u64 {
        self.view
    }
    /// Whether the current view is installed.
    pub fn active(&self) -> bool {
        self.active
    }
    /// Primary of `view`.
    pub fn primary_of(&self, view: u64) -> ReplicaId {
        ReplicaId((view.wrapping_add(self.cfg.primary_offset) % self.m.n() as u64) as u32)
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
        self.stable.saturating_add(self.cfg.window)
    }
    /// Factor by which timeouts grow after view changes that decided nothing
    /// (the embedder scales its request timer by it).
    pub fn backoff(&self) -> u32 {
        1u32 << self.failed_views.min(6)
    }
    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    /// This replica.
    pub fn id(&self) -> ReplicaId {
        self.id
    }
    /// The sequence number the primary's next proposal takes.
    pub fn next_proposal(&self) -> u64 {
        self.next_seq
    }
    /// Whether `seq` holds a proposal here: a PRE-PREPARE accepted in the
    /// current view, or a decision.
    pub fn has_proposal(&self, seq: u64) -> bool {
        seq <= self.last_decided
            || self
                .slots
                .get(&seq)
                .is_some_and(|s| s.decided.is_some() || (s.votes_view == self.view && s.pre_prepare.is_some()))
    }
    /// The value decided or pre-prepared at `seq`, if held.
    pub fn value_at(&self, seq: u64) -> Option<&V> {
        let slot = self.slots.get(&seq)?;
        let d = slot.decided.or(slot.pre_prepare)?;
        self.values.get(&d)
    }

    /// Where the window starts for new votes: the stable checkpoint, or the
    /// checkpoint the installed view starts from if that is later.
    pub(crate) fn base(&self) -> u64 {
        match self.vouched {
            Some((s, _)) => s.max(self.stable),
            None => self.stable,
        }
    }

    /// The prepare, commit, view-change and checkpoint quorum ([`quorum_system`]).
    pub(crate) fn quorum(&self) -> usize {
        self.m.quorum()
    }

    /// f+1: at least one correct replica ([`quorum_system`]).
    pub(crate) fn weak(&self) -> usize {
        self.m.weak()
    }

    /// Send `make(auth)` to every other replica, each copy with its own MAC
    /// of `bytes` (point-to-point MACs: see [`Auth`]).
    pub(crate) fn broadcast_macd(&self, bytes: &[u8], make: impl Fn(Auth) -> PbftMsg<V>, out: &mut Actions<V>) {
        if self.replaying {
            return;
        }
        for r in self.m.replicas().filter(|r| *r != self.id) {
            out.send(r, make(self.auth_one(r, bytes)));
        }
    }

    /// MACs for every replica (our own entry is empty).
    pub(crate) fn auth_all(&self, bytes: &[u8]) -> Auth {
        Auth(
            self.m
                .replicas()
                .map(|r| if r == self.id { Mac([0; 32]) } else { self.crypto.mac(NodeId::Replica(r), bytes) })
                .collect(),
        )
    }

    /// One MAC, for `to`.
    pub(crate) fn auth_one(&self, to: ReplicaId, bytes: &[u8]) -> Auth {
        Auth(vec![self.crypto.mac(NodeId::Replica(to), bytes)])
    }

    /// Whether `auth` holds `from`'s valid MAC of `bytes` for us.
    pub(crate) fn check_auth(&self, from: ReplicaId, bytes: &[u8], auth: &Auth) -> bool {
        let mac = match auth.0.len() {
            1 => &auth.0[0],
            n if n == self.m.n() => &auth.0[self.id.index()],
            _ => return false,
        };
        self.crypto.verify_mac(NodeId::Replica(from), bytes, mac)
    }

    pub(crate) fn send(&self, to: ReplicaId, msg: PbftMsg<V>, out: &mut Actions<V>) {
        if !self.replaying {
            out.send(to, msg);
        }
    }

    pub(crate) fn broadcast(&self, msg: PbftMsg<V>, out: &mut Actions<V>) {
        if !self.replaying {
            out.broadcast(msg);
        }
    }

    pub(crate) fn persist(&self, rec: Record<V>, out: &mut Actions<V>) {
        if !self.replaying {
            out.push(Action::Persist(rec));
        }
    }

    pub(crate) fn note(&self, text: String, out: &mut Actions<V>) {
        if !self.replaying {
            out.push(Action::Note(text));
        }
    }

    /// The value of `digest`, if known (a null request is always known).
    pub(crate) fn known(&self, digest: &Digest) -> bool {
        *digest == NULL_DIGEST || self.values.contains_key(digest)
    }

    /// Handle a message from replica `from` (authenticated by the channel).
    /// `validity` is consulted before a proposal is prepared.
    pub fn on_message(&mut self, from: ReplicaId, msg: PbftMsg<V>, validity: &dyn Validity<V>, out: &mut Actions<V>) {
        if !self.m.contains(from) || from == self.id {
            out.reject(from, "not a peer");
            return;
        }
        match msg {
            PbftMsg::PrePrepare { view, seq, value, auth } => {
                self.on_pre_prepare(from, view, seq, value, auth, validity, out)
            }
            PbftMsg::Prepare { view, seq, digest, auth } => self.on_prepare(from, view, seq, digest, auth, out),
            PbftMsg::Commit { view, seq, digest, auth } => self.on_commit(from, view, seq, digest, auth, out),
            PbftMsg::Checkpoint { seq, digest, auth } => self.on_checkpoint(from, seq, digest, auth, out),
            PbftMsg::ViewChange(vc) => self.on_view_change(from, *vc, out),
            PbftMsg::NewView(nv) => self.on_new_view(from, *nv, out),
            PbftMsg::Status { view, active, stable, decided, auth } => {
                self.on_status(from, view, active, stable, decided, auth, out)
            }
            PbftMsg::Decided { entries, auth } => self.on_decided(from, entries, auth, out),
            PbftMsg::Fetch { seq, digest } => self.on_fetch(from, seq, digest, out),
            PbftMsg::Value { seq, value } => self.on_value(from, seq, value, out),
        }
    }

    /// Handle one of this instance's timers.
    pub fn on_timer(&mut self, timer: EngineTimer, out: &mut Actions<V>) {
        match timer {
            EngineTimer::Tick => self.on_tick(out),
            EngineTimer::ViewChange => self.on_view_change_timeout(out),
        }
    }

    /// Keep a message of a view not installed yet (bounded; later ones are dropped).
    pub(crate) fn hold(&mut self, from: ReplicaId, msg: PbftMsg<V>) {
        if self.held.len() < self.cfg.max_held {
            self.held.push((from, msg));
        }
    }
}

impl<V: crate::instance::Value> crate::instance::Instance<V> for Engine<V> {
    type Msg = PbftMsg<V>;
    type Record = Record<V>;

    fn start(&mut self, out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>) {
        Engine::start(self, out)
    }
    fn view(&self) -> u64 {
        Engine::view(self)
    }
    fn active(&self) -> bool {
        Engine::active(self)
    }
    fn primary(&self) -> ReplicaId {
        Engine::primary(self)
    }
    fn is_primary(&self) -> bool {
        Engine::is_primary(self)
    }
    fn last_decided(&self) -> u64 {
        Engine::last_decided(self)
    }
    fn stable_checkpoint(&self) -> (u64, Digest) {
        Engine::stable_checkpoint(self)
    }
    fn window(&self) -> u64 {
        self.cfg.window
    }
    fn backoff(&self) -> u32 {
        Engine::backoff(self)
    }
    fn next_proposal(&self) -> u64 {
        Engine::next_proposal(self)
    }
    fn has_proposal(&self, seq: u64) -> bool {
        Engine::has_proposal(self, seq)
    }
    fn value_at(&self, seq: u64) -> Option<&V> {
        Engine::value_at(self, seq)
    }
    fn can_propose(&self) -> bool {
        Engine::can_propose(self)
    }
    fn propose(
        &mut self,
        value: V,
        out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>,
    ) -> Result<u64, crate::instance::ProposeError> {
        Engine::propose(self, value, out)
    }
    fn on_message(
        &mut self,
        from: ReplicaId,
        msg: PbftMsg<V>,
        validity: &dyn crate::instance::Validity<V>,
        out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>,
    ) {
        Engine::on_message(self, from, msg, validity, out)
    }
    fn on_timer(
        &mut self,
        timer: crate::instance::EngineTimer,
        out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>,
    ) {
        Engine::on_timer(self, timer, out)
    }
    fn start_view_change(&mut self, out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>) {
        Engine::start_view_change(self, out)
    }
    fn view_change_to(&mut self, view: u64, out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>) {
        Engine::view_change_to(self, view, out)
    }
    fn checkpoint_taken(
        &mut self,
        seq: u64,
        digest: Digest,
        out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>,
    ) {
        Engine::checkpoint_taken(self, seq, digest, out)
    }
    fn wants_state(&self, seq: u64, digest: Digest) -> bool {
        Engine::wants_state(self, seq, digest)
    }
    fn state_installed(
        &mut self,
        seq: u64,
        digest: Digest,
        out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>,
    ) {
        Engine::state_installed(self, seq, digest, out)
    }
    fn vouches(&self, seq: u64, digest: Digest) -> bool {
        Engine::vouches(self, seq, digest)
    }
    fn behind(&self) -> bool {
        Engine::behind(self)
    }
    fn ask_peers(&mut self, out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>) {
        Engine::ask_peers(self, out)
    }
    fn live_records(&mut self) -> Vec<Record<V>> {
        Engine::live_records(self)
    }
    fn recover(
        &mut self,
        records: Vec<Record<V>>,
        out: &mut crate::instance::Actions<V, PbftMsg<V>, Record<V>>,
    ) {
        Engine::recover(self, records, out)
    }
}

impl<V: crate::instance::Value> crate::instance::InstanceMsg<V> for PbftMsg<V> {
    fn kind(&self) -> &'static str {
        PbftMsg::kind(self)
    }
    fn proposal(&self) -> Option<(u64, u64, &V)> {
        match self {
            PbftMsg::PrePrepare { view, seq, value, .. } => Some((*view, *seq, value)),
            _ => None,
        }
    }
    fn values(&self) -> Vec<&V> {
        match self {
            PbftMsg::PrePrepare { value, .. } | PbftMsg::Value { value, .. } => vec![value],
            PbftMsg::Decided { entries, .. } => entries.iter().filter_map(|e| e.value.as_ref()).collect(),
            _ => Vec::new(),
        }
    }
    fn offer(seq: u64, value: V) -> Self {
        PbftMsg::Value { seq, value }
    }
}

/// The quorums of a PBFT engine of `n` replicas tolerating `f` faults, for
/// `protocol` (PBFT, DQPBFT): n >= 3f+1 in either model (PBFT is Byzantine;
/// a crash is one Byzantine behaviour). Prepare (the pre-prepare and 2f
/// prepares), commit, view-change (NEW-VIEW's set) and checkpoint (stable
/// proof) quorums of ⌈(n+f+1)/2⌉, which two share f+1 replicas for every
/// n >= 3f+1 (2f+1 at n = 3f+1, Castro and Liskov §4.2); f+1 VIEW-CHANGEs
/// with higher views make a replica join (§4.4).
pub fn quorum_system(
    protocol: &'static str,
    n: usize,
    f: usize,
    model: quorate_core::FaultModel,
) -> Result<quorate_core::QuorumSystem, quorate_core::ConfigError> {
    if n < 3 * f + 1 {
        return Err(quorate_core::ConfigError::rule(protocol, "n >= 3f+1", n, f));
    }
    let agreement = ["prepare", "commit", "view-change", "checkpoint"];
    Ok(quorate_core::QuorumSystem::byzantine(n, f, model, &agreement, &["view-change-join"]))
}

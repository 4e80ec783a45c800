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
//! - `normal.rs`: PRE-PREPARE, PREPARE, COMMIT, decisions in order; FETCH
//!   and VALUE (values asked for by digest).
//! - `checkpoint.rs`: CHECKPOINT, stable checkpoints, watermarks, truncation,
//!   STATUS-driven retransmission, decided values (DECIDED), state need.
//! - `view_change.rs`: VIEW-CHANGE, NEW-VIEW and the new primary's decision procedure.
//! - `durable.rs`: what is persisted, and recovery.
//!
//! # MESSAGES
//!
//! Every [`PbftMsg`] kind, who sends it, and the engine fn that handles it
//! ([`Engine::on_message`] dispatches). PBFT's papers are not among the
//! project's seed sources: sections are those of Castro and Liskov's
//! OSDI'99 paper (TOCS 2002 where OSDI'99 has no MAC form), and messages
//! neither paper names cite decision 0007 (`docs/decisions/0007-pbft.md`).
//!
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `PRE-PREPARE` | primary → backups | `on_pre_prepare` | `src/pbft/normal.rs` | OSDI'99 §4.2 (pre-prepare phase); authenticators §5.2 |
//! | `PREPARE` | backup → all | `on_prepare` | `src/pbft/normal.rs` | OSDI'99 §4.2 (prepare phase) |
//! | `COMMIT` | any → all | `on_commit` | `src/pbft/normal.rs` | OSDI'99 §4.2 (commit phase) |
//! | `CHECKPOINT` | any → all | `on_checkpoint` | `src/pbft/checkpoint.rs` | OSDI'99 §4.3 (garbage collection) |
//! | `VIEW-CHANGE` | any → all | `on_view_change` | `src/pbft/view_change.rs` | OSDI'99 §4.4; claims instead of certificates: TOCS 2002 view changes (decision 0007, View change) |
//! | `NEW-VIEW` | new primary → all (any → one that missed it) | `on_new_view` | `src/pbft/view_change.rs` | OSDI'99 §4.4; decision procedure: TOCS 2002 (decision 0007, View change) |
//! | `STATUS` | any → all, when stalled | `on_status` | `src/pbft/checkpoint.rs` | not in OSDI'99: TOCS 2002 status messages (decision 0007, Checkpoints: Retransmission) |
//! | `DECIDED` | any → a replica that decided less | `on_decided` | `src/pbft/checkpoint.rs` | neither paper: decision 0007 (Answering STATUS, Trusting DECIDED) |
//! | `FETCH` | any → one holder | `on_fetch` | `src/pbft/normal.rs` | neither paper (replaces TOCS's A3): decision 0007 (View change) |
//! | `VALUE` | holder → asker | `on_value` | `src/pbft/normal.rs` | neither paper: decision 0007 (View change, FETCH) |

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

pub use crate::instance::{
    self, digest_encoded, AnyValue, EngineTimer, Instance, InstanceMsg, ProposeError, Validity, Value,
};
pub(crate) use crate::kit::tally::Votes;
use crate::kit::{Kit, Settings};
use quorate_core::crypto::{Crypto, Digest, Mac};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::invariant::OwnVotes;
use quorate_core::membership::Membership;
use std::collections::BTreeMap;
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
    /// What the kit's shared rules read.
    pub(crate) fn kit(&self) -> Settings {
        Settings {
            window: self.window,
            max_in_flight: self.max_in_flight,
            status_interval: self.status_interval,
            max_value_bytes: self.max_value_bytes,
            max_held: self.max_held,
            primary_offset: self.primary_offset,
        }
    }

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
    /// What every engine keeps (identity, view, values, decisions, hold, replay).
    pub(crate) k: Kit<V, PbftMsg<V>>,
    pub(crate) cfg: EngineConfig,
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
    /// Decided digests of the interval before `stable`, kept to help peers
    /// that are slightly behind.
    pub(crate) retained: BTreeMap<u64, Digest>,
    /// Each replica's latest VIEW-CHANGE.
    pub(crate) view_changes: BTreeMap<ReplicaId, Signed<ViewChange>>,
    /// The NEW-VIEW of the installed view (None in view 0).
    pub(crate) new_view: Option<Signed<NewView>>,
    // Invariants (decision 0016).
    /// What this replica sent, by (seq, view, kind): one digest each.
    pub(crate) own_votes: OwnVotes<(u64, u64, VoteKind), Digest>,
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
        let k = Kit::new(id, membership, crypto, cfg.kit(), NULL_DIGEST);
        Engine {
            k,
            cfg,
            own_checkpoints: BTreeMap::new(),
            checkpoint_votes: BTreeMap::new(),
            claims: BTreeMap::new(),
            vouched: None,
            slots: BTreeMap::new(),
            retained: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            new_view: None,
            own_votes: OwnVotes::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    /// Whether `seq` holds a proposal here: a PRE-PREPARE accepted in the
    /// current view, or a decision.
    pub fn has_proposal(&self, seq: u64) -> bool {
        seq <= self.k.last_decided
            || self
                .slots
                .get(&seq)
                .is_some_and(|s| s.decided.is_some() || (s.votes_view == self.k.view && s.pre_prepare.is_some()))
    }
    /// The value decided or pre-prepared at `seq`, if held.
    pub fn value_at(&self, seq: u64) -> Option<&V> {
        let slot = self.slots.get(&seq)?;
        let d = slot.decided.or(slot.pre_prepare)?;
        self.k.values.get(&d)
    }

    /// Where the window starts for new votes: the stable checkpoint, or the
    /// checkpoint the installed view starts from if that is later.
    pub(crate) fn base(&self) -> u64 {
        match self.vouched {
            Some((s, _)) => s.max(self.k.stable),
            None => self.k.stable,
        }
    }

    /// The prepare, commit, view-change and checkpoint quorum ([`quorum_system`]).
    pub(crate) fn quorum(&self) -> usize {
        self.k.m.quorum()
    }

    /// f+1: at least one correct replica ([`quorum_system`]).
    pub(crate) fn weak(&self) -> usize {
        self.k.m.weak()
    }

    /// Send `make(auth)` to every other replica, each copy with its own MAC
    /// of `bytes` (point-to-point MACs: see [`Auth`]).
    pub(crate) fn broadcast_macd(&self, bytes: &[u8], make: impl Fn(Auth) -> PbftMsg<V>, out: &mut Actions<V>) {
        if self.k.replaying {
            return;
        }
        for r in self.k.m.replicas().filter(|r| *r != self.k.id) {
            out.send(r, make(self.auth_one(r, bytes)));
        }
    }

    /// MACs for every replica (our own entry is empty).
    pub(crate) fn auth_all(&self, bytes: &[u8]) -> Auth {
        Auth(
            self.k
                .m
                .replicas()
                .map(|r| if r == self.k.id { Mac([0; 32]) } else { self.k.crypto.mac(NodeId::Replica(r), bytes) })
                .collect(),
        )
    }

    /// One MAC, for `to`.
    pub(crate) fn auth_one(&self, to: ReplicaId, bytes: &[u8]) -> Auth {
        Auth(vec![self.k.crypto.mac(NodeId::Replica(to), bytes)])
    }

    /// Whether `auth` holds `from`'s valid MAC of `bytes` for us.
    pub(crate) fn check_auth(&self, from: ReplicaId, bytes: &[u8], auth: &Auth) -> bool {
        let mac = match auth.0.len() {
            1 => &auth.0[0],
            n if n == self.k.m.n() => &auth.0[self.k.id.index()],
            _ => return false,
        };
        self.k.crypto.verify_mac(NodeId::Replica(from), bytes, mac)
    }

    /// Handle a message from replica `from` (authenticated by the channel).
    /// `validity` is consulted before a proposal is prepared.
    pub fn on_message(&mut self, from: ReplicaId, msg: PbftMsg<V>, validity: &dyn Validity<V>, out: &mut Actions<V>) {
        if !self.k.m.contains(from) || from == self.k.id {
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
}

impl<V: Value> Instance<V> for Engine<V> {
    type Msg = PbftMsg<V>;
    type Record = Record<V>;

    fn kit(&self) -> &Kit<V, PbftMsg<V>> {
        &self.k
    }
    fn kit_mut(&mut self) -> &mut Kit<V, PbftMsg<V>> {
        &mut self.k
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
    fn propose(&mut self, value: V, out: &mut Actions<V>) -> Result<u64, ProposeError> {
        Engine::propose(self, value, out)
    }
    fn on_message(&mut self, from: ReplicaId, msg: PbftMsg<V>, validity: &dyn Validity<V>, out: &mut Actions<V>) {
        Engine::on_message(self, from, msg, validity, out)
    }
    fn on_timer(&mut self, timer: EngineTimer, out: &mut Actions<V>) {
        Engine::on_timer(self, timer, out)
    }
    fn start_view_change(&mut self, out: &mut Actions<V>) {
        Engine::start_view_change(self, out)
    }
    fn view_change_to(&mut self, view: u64, out: &mut Actions<V>) {
        Engine::view_change_to(self, view, out)
    }
    fn checkpoint_taken(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        Engine::checkpoint_taken(self, seq, digest, out)
    }
    fn wants_state(&self, seq: u64, digest: Digest) -> bool {
        Engine::wants_state(self, seq, digest)
    }
    fn state_installed(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        Engine::state_installed(self, seq, digest, out)
    }
    fn vouches(&self, seq: u64, digest: Digest) -> bool {
        Engine::vouches(self, seq, digest)
    }
    fn behind(&self) -> bool {
        Engine::behind(self)
    }
    fn ask_peers(&mut self, out: &mut Actions<V>) {
        Engine::ask_peers(self, out)
    }
    fn live_records(&mut self) -> Vec<Record<V>> {
        Engine::live_records(self)
    }
    fn recover(&mut self, records: Vec<Record<V>>, out: &mut Actions<V>) {
        Engine::recover(self, records, out)
    }
}

impl<V: Value> InstanceMsg<V> for PbftMsg<V> {
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

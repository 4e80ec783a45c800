//! One Linear Hybster instance (Arun and Ravindran, PVLDB 15, §4.2, over
//! Hybster, Behl et al., EuroSys'17) as a sans-IO engine, generic over the
//! value it orders.
//!
//! n = 2f+1 replicas, quorums of f+1. Every replica's ThreshSign subsystem
//! signs at most one message per counter value, so a faulty primary cannot
//! propose two values at one (view, seq) and a faulty backup cannot vote
//! twice: two sets of f+1 signers always share one replica, and that is
//! enough. The primary's PREPARE carries its share; backups send their
//! shares to a collector (the primary) instead of to everyone; the collector
//! combines f+1 into one threshold signature, the COMMIT, and sends it to
//! all. Decisions are reported once, in sequence order
//! ([`Action::Decided`]). The engine executes nothing: the embedder executes,
//! feeds checkpoint digests back ([`Engine::checkpoint_taken`]), fetches
//! state when asked ([`Action::NeedState`]) and decides when to suspect the
//! primary ([`Engine::start_view_change`]) — the same contract as
//! [`crate::pbft`]'s, so an embedder can run either.
//!
//! - `normal.rs`: PREPARE, COMMIT-SHARE, COMMIT; in-order signing; decisions;
//!   FETCH and VALUE (values asked for by digest).
//! - `checkpoint.rs`: CHECKPOINT-SHARE and certificates, truncation,
//!   STATUS-driven retransmission, DECIDED, state need.
//! - `view_change.rs`: VIEW-CHANGE with continuing certificates, NEW-VIEW.
//! - `durable.rs`: what is persisted, and recovery.
//!
//! Decisions where the sources are silent: `docs/decisions/0010-destiny.md`.
//!
//! # MESSAGES
//!
//! Every [`HybMsg`] kind, who sends it, and the engine fn that handles it
//! ([`Engine::on_message`] dispatches). Hybster (EuroSys'17) is not among
//! the project's seed sources: sections are those of the Destiny paper
//! (seed 002, PVLDB 15 §4.2, digest `specs/dqbft-destiny.md` S4.3–S4.4),
//! and what it defers to Hybster cites decision 0010.
//!
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `PREPARE` | primary → all | `on_prepare` | `src/hybster/normal.rs` | Destiny §4.2 (Linear Hybster step 1, Fig. 6a) |
//! | `COMMIT-SHARE` | backup → collector (all, when it is slow) | `on_commit_share` | `src/hybster/normal.rs` | Destiny §4.2 (step 2; the commit share); collector fallback: decision 0010 (Normal case) |
//! | `COMMIT` | collector → all | `on_commit` | `src/hybster/normal.rs` | Destiny §4.2 (step 3, f+1 shares combined) |
//! | `CHECKPOINT-SHARE` | any → collector (all, when it is slow) | `on_checkpoint_share` | `src/hybster/checkpoint.rs` | deferred to Hybster: decision 0010 (Checkpoints) |
//! | `CHECKPOINT` | collector → all (any → one behind) | `on_checkpoint` | `src/hybster/checkpoint.rs` | deferred to Hybster: decision 0010 (Checkpoints) |
//! | `VIEW-CHANGE` | any → all | `on_view_change` | `src/hybster/view_change.rs` | Destiny §4.2 (VIEWCHANGE, continuing certificate); contents: decision 0010 (View change) |
//! | `NEW-VIEW` | new primary → all (any → one that missed it) | `on_new_view` | `src/hybster/view_change.rs` | deferred to Hybster: decision 0010 (View change, NEW-VIEW) |
//! | `STATUS` | any → all, when stalled | `on_status` | `src/hybster/checkpoint.rs` | neither paper: decision 0010 (Asking peers), as PBFT's (decision 0007) |
//! | `DECIDED` | any → a replica that decided less | `on_decided` | `src/hybster/checkpoint.rs` | neither paper: decision 0010 (Decided) |
//! | `FETCH` | any → one holder | `on_fetch` | `src/hybster/normal.rs` | neither paper: as PBFT's engine (decision 0007) |
//! | `VALUE` | holder → asker | `on_value` | `src/hybster/normal.rs` | neither paper: as PBFT's engine (decision 0007) |

pub mod messages;

mod checkpoint;
mod durable;
mod normal;
mod view_change;

#[cfg(test)]
mod invariant_tests;
#[cfg(test)]
mod tests;

pub use crate::instance::{
    self, digest_encoded, AnyValue, EngineTimer, Instance, InstanceMsg, ProposeError, Validity, Value,
};
use crate::kit::{Kit, Settings};
pub use durable::Record;
pub use messages::{
    CheckpointCert, CommitProof, DecidedEntry, HybMsg, NewView, NewViewCore, SignedNewView, ViewChange, ViewChangeBody,
    NULL_DIGEST,
};

use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::ReplicaId;
use quorate_core::invariant::OwnVotes;
use quorate_core::membership::Membership;
use quorate_threshsign::{counter, destiny, InstanceId, Scheme, Share, Statement, ThreshSign};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A replica's trusted subsystem, shared by all the instances it runs (one
/// enclave hosts every ThreshSign instance, §4.1.2).
pub type Trusted = Arc<Mutex<Box<dyn ThreshSign + Send>>>;

/// What the engine asks its embedder to do (the shared instance contract).
pub type Action<V> = instance::Action<V, HybMsg<V>, Record<V>>;
/// Collects an engine call's actions.
pub type Actions<V> = instance::Actions<V, HybMsg<V>, Record<V>>;

/// Settings of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The embedder's instance number (logs).
    pub instance: u64,
    /// The ThreshSign instance this engine signs with (σ_i or τ in Destiny):
    /// bound into every share, so messages of one instance never count in another.
    pub ts_instance: InstanceId,
    /// A checkpoint every this many sequence numbers.
    pub checkpoint_period: u64,
    /// Sequence numbers in (stable, stable + window] are accepted.
    pub window: u64,
    /// Proposals the primary keeps undecided at most.
    pub max_in_flight: u64,
    /// After f+1 VIEW-CHANGEs, wait this long for the NEW-VIEW (doubling
    /// with each view change that decides nothing).
    pub view_change_timeout: Duration,
    /// Retransmission period.
    pub status_interval: Duration,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Largest DECIDED answer, in bytes of values.
    pub max_reply_bytes: usize,
    /// Messages of views not installed yet kept for later.
    pub max_held: usize,
    /// The primary of view v is replica (v + offset) mod n.
    pub primary_offset: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            instance: 0,
            ts_instance: destiny::TAU,
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
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    /// View the per-view fields below belong to.
    pub votes_view: u64,
    /// The proposal accepted in `votes_view` (PREPARE or NEW-VIEW entry).
    pub proposal: Option<Digest>,
    /// Our share on it, once signed (signing is in sequence order).
    pub signed: Option<Share>,
    /// Shares on (votes_view, seq) received, per signer (the collector's, or
    /// anyone's when the collector is slow).
    pub shares: Shares,
    /// Latest fresh PREPARE accepted here, in any view (for VIEW-CHANGEs).
    pub prepare: Option<Share>,
    /// Decided digest and its proof.
    pub decided: Option<Digest>,
    pub proof: Option<CommitProof>,
}

impl Slot {
    /// Move the per-view fields to `view`.
    pub(crate) fn enter_view(&mut self, view: u64) {
        if self.votes_view != view {
            self.votes_view = view;
            self.proposal = None;
            self.signed = None;
            self.shares.clear();
        }
    }
}

/// Shares on one slot, one per signer: one or two at a backup, f+1 at the
/// collector. A vector: every replica keeps a slot of every instance until
/// a checkpoint, and a B-tree's node has room for eleven (1.8 kB a slot).
#[derive(Clone, Debug, Default)]
pub(crate) struct Shares(Vec<(ReplicaId, Share)>);

impl Shares {
    pub(crate) fn get(&self, signer: &ReplicaId) -> Option<&Share> {
        self.0.iter().find(|(r, _)| r == signer).map(|(_, s)| s)
    }
    /// Keep `share` as `signer`'s (replacing an earlier one).
    pub(crate) fn insert(&mut self, signer: ReplicaId, share: Share) {
        match self.0.iter_mut().find(|(r, _)| *r == signer) {
            Some(entry) => entry.1 = share,
            None => self.0.push((signer, share)),
        }
    }
    pub(crate) fn remove(&mut self, signer: &ReplicaId) {
        self.0.retain(|(r, _)| r != signer);
    }
    pub(crate) fn values(&self) -> impl Iterator<Item = &Share> {
        self.0.iter().map(|(_, s)| s)
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    pub(crate) fn clear(&mut self) {
        self.0 = Vec::new();
    }
}

/// The signers whose shares a failed combination set aside.
pub(crate) fn set_aside(e: &quorate_threshsign::CombineError) -> Vec<ReplicaId> {
    match e {
        quorate_threshsign::CombineError::NotEnoughValid { rejected, .. } => rejected.clone(),
        _ => Vec::new(),
    }
}

/// One Linear Hybster instance at one replica.
pub struct Engine<V: Value> {
    /// What every engine keeps (identity, view, values, decisions, hold, replay).
    pub(crate) k: Kit<V, HybMsg<V>>,
    pub(crate) trusted: Trusted,
    pub(crate) scheme: Arc<dyn Scheme>,
    pub(crate) cfg: EngineConfig,
    /// The stable checkpoint's certificate.
    pub(crate) stable_cert: Option<CheckpointCert>,
    /// Our checkpoints above `stable`, and our shares on them.
    pub(crate) own_checkpoints: BTreeMap<u64, (Digest, Option<Share>)>,
    /// CHECKPOINT-SHAREs received above `stable`, per seq and signer.
    pub(crate) checkpoint_shares: BTreeMap<u64, BTreeMap<ReplicaId, Share>>,
    /// Certified checkpoints above `stable` we have not reached.
    pub(crate) certified: BTreeMap<u64, CheckpointCert>,
    /// Boxed: a B-tree node holds eleven entries, and most instances hold a
    /// few slots at a time (N instances in every one of N replicas).
    pub(crate) slots: BTreeMap<u64, Box<Slot>>,
    /// Decisions just below `stable`, kept to help peers slightly behind.
    pub(crate) retained: BTreeMap<u64, (Digest, CommitProof)>,
    /// The next sequence number we sign in this view (in order: signing
    /// s + 1 makes s unsignable for our counter).
    pub(crate) next_sign: u64,
    /// Each replica's latest VIEW-CHANGE.
    pub(crate) view_changes: BTreeMap<ReplicaId, ViewChange>,
    /// The NEW-VIEW of the installed view (None in view 0).
    pub(crate) new_view: Option<NewView>,
    /// The signed NEW-VIEW our log's latest proposals belong to (kept across
    /// view changes that install nothing; VIEW-CHANGEs carry it).
    pub(crate) log_new_view: Option<SignedNewView>,
    /// Our VIEW-CHANGE certificates since we last signed in an installed
    /// view, newest first.
    pub(crate) history: Vec<quorate_threshsign::Cert>,
    // Invariants (decision 0016).
    /// The shares this replica signed on proposals, by (seq, view, kind):
    /// one digest each.
    pub(crate) own_votes: OwnVotes<(u64, u64, VoteKind), Digest>,
}

/// The kinds of message a replica sends once per (view, seq).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum VoteKind {
    /// The primary's PREPARE (its share on a fresh proposal or a NEW-VIEW entry).
    Prepare,
    /// A backup's COMMIT (its share, sent to the collector).
    Commit,
    /// The collector's COMMIT (the combined certificate).
    Certificate,
}

impl<V: Value> Engine<V> {
    /// A fresh instance for replica `id` (n = 2f+1), signing with `trusted`
    /// and checking with `scheme`.
    pub fn new(
        id: ReplicaId,
        membership: Membership,
        crypto: Arc<dyn Crypto>,
        trusted: Trusted,
        scheme: Arc<dyn Scheme>,
        cfg: EngineConfig,
    ) -> Self {
        let k = Kit::new(id, membership, crypto, cfg.kit(), NULL_DIGEST);
        Engine {
            k,
            trusted,
            scheme,
            cfg,
            stable_cert: None,
            own_checkpoints: BTreeMap::new(),
            checkpoint_shares: BTreeMap::new(),
            certified: BTreeMap::new(),
            slots: BTreeMap::new(),
            retained: BTreeMap::new(),
            next_sign: 1,
            view_changes: BTreeMap::new(),
            new_view: None,
            log_new_view: None,
            history: Vec::new(),
            own_votes: OwnVotes::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    /// Whether `seq` holds a proposal here: one accepted in the current
    /// view, or a decision.
    pub fn has_proposal(&self, seq: u64) -> bool {
        seq <= self.k.last_decided
            || self
                .slots
                .get(&seq)
                .is_some_and(|s| s.decided.is_some() || (s.votes_view == self.k.view && s.proposal.is_some()))
    }
    /// The value decided or proposed at `seq`, if held.
    pub fn value_at(&self, seq: u64) -> Option<&V> {
        let slot = self.slots.get(&seq)?;
        let d = slot.decided.or(slot.proposal)?;
        self.k.values.get(&d)
    }

    /// f+1 of 2f+1: a quorum, and at least one correct replica ([`quorum_system`]).
    pub(crate) fn quorum(&self) -> usize {
        self.k.m.quorum()
    }

    /// What a PREPARE, COMMIT-SHARE and COMMIT at (`view`, `seq`) sign.
    /// None past the counter's range (such a message is malformed).
    pub(crate) fn order_statement(&self, view: u64, seq: u64, digest: Digest) -> Option<Statement> {
        Some(Statement {
            instance: self.cfg.ts_instance,
            counter: destiny::AGREEMENT,
            value: counter::pack_view_seq(view, seq)?,
            msg_hash: digest,
        })
    }

    /// What a CHECKPOINT-SHARE signs.
    pub(crate) fn checkpoint_statement(&self, seq: u64, digest: Digest) -> Statement {
        Statement { instance: self.cfg.ts_instance, counter: destiny::CHECKPOINT, value: seq, msg_hash: digest }
    }

    /// Ask the trusted subsystem for a share on `st`; None if it refuses
    /// (a value already passed: we must not, and cannot, sign it now).
    pub(crate) fn sign(&self, st: &Statement) -> Option<Share> {
        let mut t = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        t.independent_share(st.instance, st.counter, st.value, &st.msg_hash).ok()
    }

    /// Handle a message from replica `from` (authenticated by the channel).
    /// `validity` is consulted before a fresh proposal is signed.
    pub fn on_message(&mut self, from: ReplicaId, msg: HybMsg<V>, validity: &dyn Validity<V>, out: &mut Actions<V>) {
        if !self.k.m.contains(from) || from == self.k.id {
            out.reject(from, "not a peer");
            return;
        }
        match msg {
            HybMsg::Prepare { view, seq, value, share } => {
                self.on_prepare(from, view, seq, value, share, validity, out)
            }
            HybMsg::CommitShare { view, seq, digest, share } => {
                self.on_commit_share(from, view, seq, digest, share, out)
            }
            HybMsg::Commit { view, seq, digest, cert } => self.on_commit(from, view, seq, digest, cert, out),
            HybMsg::CheckpointShare { seq, digest, share } => self.on_checkpoint_share(from, seq, digest, share, out),
            HybMsg::Checkpoint(cert) => self.on_checkpoint(from, cert, out),
            HybMsg::ViewChange(vc) => self.on_view_change(from, *vc, out),
            HybMsg::NewView(nv) => self.on_new_view(from, *nv, out),
            HybMsg::Status { view, active, stable, decided } => {
                self.on_status(from, view, active, stable, decided, out)
            }
            HybMsg::Decided { entries } => self.on_decided(from, entries, out),
            HybMsg::Fetch { seq, digest } => self.on_fetch(from, seq, digest, out),
            HybMsg::Value { seq, value } => self.on_value(from, seq, value, out),
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
    type Msg = HybMsg<V>;
    type Record = Record<V>;

    fn kit(&self) -> &Kit<V, HybMsg<V>> {
        &self.k
    }
    fn kit_mut(&mut self) -> &mut Kit<V, HybMsg<V>> {
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
    fn on_message(&mut self, from: ReplicaId, msg: HybMsg<V>, validity: &dyn Validity<V>, out: &mut Actions<V>) {
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

impl<V: Value> InstanceMsg<V> for HybMsg<V> {
    fn kind(&self) -> &'static str {
        HybMsg::kind(self)
    }
    fn proposal(&self) -> Option<(u64, u64, &V)> {
        match self {
            HybMsg::Prepare { view, seq, value, .. } => Some((*view, *seq, value)),
            _ => None,
        }
    }
    fn values(&self) -> Vec<&V> {
        match self {
            HybMsg::Prepare { value, .. } | HybMsg::Value { value, .. } => vec![value],
            HybMsg::Decided { entries, .. } => entries.iter().filter_map(|e| e.value.as_ref()).collect(),
            _ => Vec::new(),
        }
    }
    fn offer(seq: u64, value: V) -> Self {
        HybMsg::Value { seq, value }
    }
}

/// The quorums of a Linear Hybster engine of `n` replicas tolerating `f`
/// faults, for `protocol` (Destiny): n = 2f+1 exactly. Its prepare, commit,
/// view-change and checkpoint quorums are f+1 replicas and its threshold
/// f+1 of 2f+1 shares; two such quorums share one replica, whose trusted
/// counter cannot bind two values to one (view, seq), only when n = 2f+1
/// (at n = 2f+2 two disjoint halves decide alone: issue 17's split brain).
/// Decision 0011: refused rather than quorums of ⌊n/2⌋+1 with a matching
/// threshold, which the dealt groups would have to follow.
pub fn quorum_system(
    protocol: &'static str,
    n: usize,
    f: usize,
    model: quorate_core::FaultModel,
) -> Result<quorate_core::QuorumSystem, quorate_core::ConfigError> {
    if n != 2 * f + 1 {
        return Err(quorate_core::ConfigError::rule(protocol, "n = 2f+1", n, f));
    }
    let agreement = ["prepare", "commit", "view-change", "checkpoint"];
    Ok(quorate_core::QuorumSystem::trusted(n, f, model, &agreement))
}

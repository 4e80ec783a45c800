//! The Mod-SMaRt replica machine.
//!
//! Where each message is handled:
//! - `requests.rs`: REQUEST, FORWARDED, request timers, batching.
//! - `normal.rs`: PROPOSE, WRITE, ACCEPT (VP-Consensus), decisions and execution, checkpoints.
//! - `regency.rs`: STOP, STOPDATA, SYNC (synchronization phase).
//! - `catchup.rs`: DECISION_REQUEST, DECISION, DECISION_UNAVAILABLE, STATE_REQUEST, STATE_REPLY, recovery.

mod catchup;
mod normal;
mod regency;
mod requests;

#[cfg(test)]
mod invariant_tests;

use crate::config::Config;
use crate::messages::{Batch, Decision, InstanceState, Msg, SignedStopData};
use crate::{ModSmart, Timer};
use quorate_core::admission::RequestPool;
use quorate_core::crypto::{Crypto, Digest, Signature};
use quorate_core::executor::{Checkpoint, Executor};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::invariant::{InOrder, OwnVotes};
use quorate_core::machine::{Input, Outbox, ReplicaContext, ReplicaMachine};
use quorate_core::membership::{FaultModel, Membership, Threshold};
use quorate_core::request::SignedRequest;
use quorate_core::tally::Ballot;
use quorate_core::time::Time;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

type Out = Outbox<ModSmart>;

/// VP-Consensus state for the instance in progress.
#[derive(Debug, Default)]
pub(crate) struct Instance {
    pub id: u64,
    /// Current epoch (regency + 1).
    pub epoch: u64,
    /// Whether the leader may still set this epoch's value by PROPOSE.
    pub free: bool,
    /// The value this replica wrote in this epoch.
    pub written: Option<Digest>,
    /// Sent ACCEPT in this epoch.
    pub accepted: bool,
    /// Our ACCEPT of this epoch, kept to repeat it when messages may have been lost.
    pub my_accept: Option<(Digest, Signature)>,
    /// Batches seen for this instance, by digest.
    pub batches: HashMap<Digest, Batch>,
    /// WRITE votes of this epoch.
    pub writes: Ballot<Digest>,
    /// ACCEPT votes per (epoch, value), with signatures.
    pub accepts: BTreeMap<(u64, Digest), Vec<(ReplicaId, Signature)>>,
    pub acceptors: HashSet<(u64, ReplicaId)>,
    /// Cachin's state.
    pub valts: u64,
    pub val: Option<Digest>,
    pub writeset: Vec<(u64, Digest)>,
}

impl Instance {
    fn new(id: u64, epoch: u64) -> Self {
        Instance { id, epoch, free: true, ..Default::default() }
    }

    /// Move to a new epoch (VP-Timeout): votes of the old epoch no longer count
    /// towards a WRITE quorum; ACCEPTs are kept (they still prove a decision).
    fn enter_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.free = false;
        self.written = None;
        self.accepted = false;
        self.my_accept = None;
        self.writes = Ballot::default();
    }

    pub fn state(&self) -> InstanceState {
        InstanceState {
            instance: self.id,
            valts: self.valts,
            val: self.val,
            val_batch: self.val.and_then(|v| self.batches.get(&v).cloned()),
            writeset: self.writeset.clone(),
        }
    }

    fn record_write(&mut self, epoch: u64, v: Digest) {
        self.writeset.retain(|(_, d)| *d != v);
        self.writeset.push((epoch, v));
    }
}

/// The outcome of a SYNC for an instance the replica has not reached yet.
#[derive(Clone, Debug)]
pub(crate) struct SyncOutcome {
    pub instance: u64,
    pub epoch: u64,
    /// Value fixed by the sync (bound value or the leader's proposal).
    pub value: Option<(Digest, Batch)>,
}

/// A state transfer in progress.
#[derive(Debug, Default)]
pub(crate) struct Transfer {
    pub attempt: u32,
    pub replies: BTreeMap<ReplicaId, crate::messages::StateReply>,
}

/// Durable records (thesis §4.2.3.2: decisions are logged; we also log votes
/// so a recovered replica never votes twice differently in one epoch).
///
/// Written as `Record<&Decision, &Batch>` (no copy of the batch), read back as
/// `Record<Decision, Batch>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Record<D, B> {
    Decided(D),
    Wrote {
        instance: u64,
        epoch: u64,
        value: Digest,
    },
    /// With the batch when known (always in crash mode): a recovered replica's
    /// accepted value may be the one a regency change must propose again, and
    /// the new leader needs the batch, not only its digest (decision 0021).
    Accepted {
        instance: u64,
        epoch: u64,
        value: Digest,
        batch: Option<B>,
    },
    Regency(u64),
}

/// The durable checkpoint record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointRecord {
    pub instance: u64,
    pub timestamp: u64,
    pub checkpoint: Checkpoint,
    pub last_decided: Option<Decision>,
    pub regency: u64,
}

/// A Mod-SMaRt replica.
pub struct Replica {
    pub(crate) id: ReplicaId,
    pub(crate) m: Membership,
    pub(crate) crypto: Arc<dyn Crypto>,
    pub(crate) cfg: Config,
    pub(crate) exec: Executor,
    // Regencies (Tab. 3.1).
    pub(crate) creg: u64,
    pub(crate) nreg: u64,
    pub(crate) stopped: bool,
    pub(crate) stop_regs: HashMap<ReplicaId, u64>,
    pub(crate) stop_requests: Vec<SignedRequest>,
    pub(crate) stopdata: BTreeMap<ReplicaId, SignedStopData>,
    pub(crate) early_stopdata: Vec<(ReplicaId, SignedStopData)>,
    pub(crate) sync_sent: bool,
    /// Our STOPDATA for the regency being installed (repeated until the SYNC comes).
    pub(crate) my_stopdata: Option<SignedStopData>,
    pub(crate) last_sync: Option<Msg>,
    pub(crate) sync_outcome: Option<SyncOutcome>,
    pub(crate) held: Vec<(ReplicaId, Msg)>,
    pub(crate) failed_regencies: u32,
    // Consensus and the decision log.
    pub(crate) inst: Instance,
    pub(crate) future: BTreeMap<u64, Vec<(ReplicaId, Msg)>>,
    pub(crate) future_len: usize,
    pub(crate) decided: BTreeMap<u64, Decision>,
    /// Executed decisions since the last checkpoint, and the checkpoint's own
    /// (the latest decision is always here, for STOPDATA).
    pub(crate) log: BTreeMap<u64, Decision>,
    pub(crate) checkpoint: Option<CheckpointRecord>,
    pub(crate) last_timestamp: u64,
    /// ToOrder; each request's tag counts its timer's expiries so far: 0,
    /// then 1 after it was forwarded.
    pub(crate) pending: RequestPool<u8>,
    // Catch-up.
    pub(crate) transfer: Option<Transfer>,
    /// (peer, instance) whose decision we sent a lagging peer.
    pub(crate) helped: HashSet<(ReplicaId, u64)>,
    /// (peer, regency) to which we sent our SYNC.
    pub(crate) helped_sync: HashSet<(ReplicaId, u64)>,
    /// (peer, instance) asked with DECISION_REQUEST since the last tick.
    pub(crate) asked: HashSet<(ReplicaId, u64)>,
    pub(crate) started: bool,
    pub(crate) next_at_last_tick: u64,
    // Invariants (decision 0016).
    /// WRITEs and ACCEPTs this replica cast, by (instance, epoch, is ACCEPT).
    pub(crate) own_votes: OwnVotes<(u64, u64, bool), Digest>,
    /// The next instance whose decision is reported.
    pub(crate) reported: InOrder,
}

impl Replica {
    /// A replica with fresh state.
    pub fn new(ctx: ReplicaContext, cfg: Config) -> Self {
        let pending = RequestPool::new(cfg.max_pending);
        Replica {
            id: ctx.id,
            m: ctx.membership,
            crypto: ctx.crypto,
            cfg,
            exec: Executor::new(ctx.service),
            creg: 0,
            nreg: 0,
            stopped: false,
            stop_regs: HashMap::new(),
            stop_requests: Vec::new(),
            stopdata: BTreeMap::new(),
            early_stopdata: Vec::new(),
            sync_sent: false,
            my_stopdata: None,
            last_sync: None,
            sync_outcome: None,
            held: Vec::new(),
            failed_regencies: 0,
            inst: Instance::new(0, 1),
            future: BTreeMap::new(),
            future_len: 0,
            decided: BTreeMap::new(),
            log: BTreeMap::new(),
            checkpoint: None,
            last_timestamp: 0,
            pending,
            transfer: None,
            helped: HashSet::new(),
            helped_sync: HashSet::new(),
            asked: HashSet::new(),
            started: false,
            next_at_last_tick: 0,
            own_votes: OwnVotes::default(),
            reported: InOrder::default(),
        }
    }

    /// The threshold of one of Mod-SMaRt's named quorums (`quorum_system`).
    pub(crate) fn quorum(&self, kind: &str) -> Threshold {
        self.m.threshold(kind).expect("a kind of Mod-SMaRt's quorum system")
    }

    pub(crate) fn bft(&self) -> bool {
        self.m.model() == FaultModel::Byzantine
    }

    /// Leader of a regency: `regency mod n`.
    pub(crate) fn leader_of(&self, regency: u64) -> ReplicaId {
        ReplicaId((regency % self.m.n() as u64) as u32)
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leader_of(self.creg) == self.id
    }

    /// Next instance to decide and execute.
    pub(crate) fn next(&self) -> u64 {
        self.inst.id
    }

    /// Request timeout with back-off after unproductive regency changes.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.cfg.request_timeout.saturating_mul(2u32.saturating_pow(self.failed_regencies.min(6)))
    }

    /// Replicas needed to join a regency change (> f; crash mode: 1).
    pub(crate) fn join_threshold(&self) -> usize {
        if self.bft() {
            self.m.f() + 1
        } else {
            1
        }
    }

    /// Replicas needed to install a regency (> 2f; crash mode: f+1).
    pub(crate) fn install_threshold(&self) -> usize {
        if self.bft() {
            2 * self.m.f() + 1
        } else {
            self.m.f() + 1
        }
    }

    fn start(&mut self, out: &mut Out) {
        self.started = true;
        out.set_timer(Timer::RequestTick, self.tick_interval());
    }

    /// The latest executed decision.
    pub(crate) fn last_decided(&self) -> Option<&Decision> {
        self.log.values().next_back()
    }

    pub(crate) fn tick_interval(&self) -> std::time::Duration {
        (self.cfg.request_timeout / 4).max(std::time::Duration::from_millis(1))
    }

    fn on_message(&mut self, now: Time, from: NodeId, msg: Msg, out: &mut Out) {
        match from {
            NodeId::Client(c) => match msg {
                Msg::Request(req) => self.on_request(now, c, req, out),
                _ => out.reject(from, "client sent a replica message"),
            },
            NodeId::Replica(r) => {
                if !self.m.contains(r) || r == self.id {
                    out.reject(from, "not a member");
                    return;
                }
                self.on_replica_message(now, r, msg, out);
            }
        }
    }

    pub(crate) fn on_replica_message(&mut self, now: Time, r: ReplicaId, msg: Msg, out: &mut Out) {
        match msg {
            Msg::Propose { regency, instance, batch } => self.on_propose(now, r, regency, instance, batch, out),
            Msg::Write { regency, instance, value } => self.on_write(now, r, regency, instance, value, out),
            Msg::Accept { regency, instance, value, sig } => self.on_accept(now, r, regency, instance, value, sig, out),
            Msg::Forwarded { requests } => self.on_forwarded(now, r, requests, out),
            Msg::Stop { regency, requests } => self.on_stop(now, r, regency, requests, out),
            Msg::StopData(sd) => self.on_stopdata(now, r, sd, out),
            Msg::Sync { regency, stopdata, proposal } => self.on_sync(now, r, regency, stopdata, proposal, out),
            Msg::DecisionRequest { instance, regency } => self.on_decision_request(r, instance, regency, out),
            Msg::Decision(d) => self.on_decision(now, r, d, out),
            Msg::DecisionUnavailable { checkpoint_instance } => self.on_decision_unavailable(checkpoint_instance, out),
            Msg::StateRequest { attempt, designated } => self.on_state_request(r, attempt, designated, out),
            Msg::StateReply(rep) => self.on_state_reply(now, r, *rep, out),
            Msg::Request(_) | Msg::Reply(_) => out.reject(NodeId::Replica(r), "replica sent a client message"),
        }
    }

    /// Keep a message for an instance this replica has not reached (bounded).
    pub(crate) fn buffer_future(&mut self, from: ReplicaId, instance: u64, msg: Msg, out: &mut Out) {
        if self.future_len >= self.cfg.max_future || instance > self.next() + 1024 {
            out.reject(NodeId::Replica(from), "future buffer full");
        } else {
            self.future.entry(instance).or_default().push((from, msg));
            self.future_len += 1;
        }
        // Clearly behind: ask the sender for what we miss (once per peer and instance per tick).
        // One instance ahead is normal for a slower replica; the request tick asks if it lasts.
        let next = self.next();
        if instance > next + 1 && self.asked.insert((from, next)) {
            out.send(from, Msg::DecisionRequest { instance: next, regency: self.creg });
        }
    }

    /// Re-handle buffered messages for the current instance.
    pub(crate) fn replay_future(&mut self, now: Time, out: &mut Out) {
        let next = self.next();
        let stale: Vec<u64> = self.future.range(..next).map(|(k, _)| *k).collect();
        for k in stale {
            if let Some(v) = self.future.remove(&k) {
                self.future_len -= v.len();
            }
        }
        if let Some(msgs) = self.future.remove(&next) {
            self.future_len -= msgs.len();
            for (from, msg) in msgs {
                self.on_replica_message(now, from, msg, out);
            }
        }
    }

    pub(crate) fn persist(&self, rec: &Record<&Decision, &Batch>, out: &mut Out) {
        out.push(quorate_core::machine::Effect::Persist(quorate_core::wire::encode(rec).into()));
    }
}

impl ReplicaMachine<ModSmart> for Replica {
    fn handle(&mut self, now: Time, input: Input<ModSmart>, out: &mut Out) {
        match input {
            Input::Start => self.start(out),
            Input::Recover { checkpoint, records } => {
                self.recover(checkpoint, records, out);
                self.start(out);
            }
            Input::Message { from, msg } => {
                if self.started {
                    self.on_message(now, from, msg, out)
                }
            }
            Input::Timer(t) => match t {
                Timer::RequestTick => self.on_request_tick(now, out),
                Timer::StateTransfer => self.on_state_transfer_timeout(out),
                Timer::ClientRetransmit | Timer::Adversary(_) => {}
            },
        }
    }

    fn state_digest(&self) -> Digest {
        self.exec.state_digest()
    }

    fn executed(&self) -> u64 {
        self.exec.slot()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

//! The DQPBFT replica: N D-instances and one O-instance ([`Engine`]s) over
//! one network, one executor, one request table.
//!
//! - `requests.rs`: REQUEST and FORWARD, D-batches at a coordinator, the
//!   request and payload timers through which replicas suspect a
//!   coordinator or the O-primary.
//! - `order.rs`: the O-primary's ordering of D-slots (optimistic or, on
//!   probation, pessimistic), what makes an O-batch valid, flooding.
//! - `execute.rs`: execution in the O-instance's order, checkpoints of
//!   every instance, state transfer, the durable base and recovery.
//! - `answers.rs`: answers to clients (MAC'd replies, or Destiny's π
//!   shares, ExecSig, combined into one ExecProof by the execution collector).
//!
//! The engines' actions are carried out here: their messages travel as
//! [`Msg::D`] and [`Msg::O`], their timers as [`Timer::D`] and [`Timer::O`],
//! their records as [`Record`]s.

mod answers;
mod execute;
mod order;
pub(crate) mod reinstate;
mod requests;
mod round_robin;

#[cfg(test)]
mod invariant_tests;

use crate::config::Config;
use crate::messages::{Assign, DBatch, DRef, Msg, OBatch, Progress, State};
use crate::{Dq, Flavor, OMsg, Timer};
use quorate_core::admission::{self, RequestPool};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::executor::Executor;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::invariant::InOrder;
use quorate_core::machine::{Effect, Event, Input, Outbox, ReplicaContext, ReplicaMachine};
use quorate_core::membership::Membership;
use quorate_core::time::Time;
use quorate_core::{wire, Bytes};
use quorate_engines::instance::{Action, Actions, Instance};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

pub(crate) type Out<F> = Outbox<Dq<F>>;
/// A D-instance's durable record.
pub(crate) type DRec<F> = <<F as Flavor>::D as Instance<DBatch>>::Record;
/// The O-instance's durable record.
pub(crate) type ORec<F> = <<F as Flavor>::O as Instance<OBatch>>::Record;
/// What a D-instance engine call asks for.
pub(crate) type DActs<F> = Actions<DBatch, crate::DMsg<F>, DRec<F>>;
/// What an O-instance engine call asks for.
pub(crate) type OActs<F> = Actions<OBatch, OMsg<F>, ORec<F>>;

/// One durable record: which instance, and its record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Record<D, O> {
    /// A D-instance's.
    D(u32, D),
    /// The O-instance's.
    O(O),
}

/// The durable base: the state at a stable O-checkpoint and every
/// instance's live records after it.
#[derive(Serialize, Deserialize)]
pub(crate) struct Base<D, O> {
    pub seq: u64,
    pub state: State,
    pub o: Vec<O>,
    pub d: Vec<Vec<D>>,
}

/// A request waiting to be executed; its tag is the D-instance its client sends to.
pub(crate) type Pending = admission::Pending<u32>;

/// Probation of one D-instance (§3.2.4): after its k-th view change its
/// slots are ordered only once disseminated, for a number of its sequence
/// numbers that doubles with each view change.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Probation {
    pub view_changes: u32,
    /// Pessimistic until the instance has decided this far.
    pub until: u64,
}

/// A state transfer under way: a given O-checkpoint, or (None) the latest
/// one f+1 replicas vouch for.
#[derive(Clone, Debug)]
pub(crate) struct Transfer {
    pub target: Option<(u64, Digest)>,
    pub attempt: u32,
}

/// A replica of the DQBFT paradigm in flavor `F`.
pub struct Replica<F: Flavor> {
    pub(crate) id: ReplicaId,
    pub(crate) m: Membership,
    pub(crate) crypto: Arc<dyn Crypto>,
    pub(crate) cfg: Config,
    pub(crate) keys: F::Keys,
    /// D-instance i, coordinated first by replica i.
    pub(crate) d: Vec<F::D>,
    /// The O-instance.
    pub(crate) o: F::O,
    pub(crate) exec: Executor,
    /// Requests not executed yet, one per client.
    pub(crate) pending: RequestPool<u32>,
    /// Requests in our D-proposals of the instances' current views.
    pub(crate) proposed: HashSet<(ClientId, u64)>,
    /// Requests seen in a D-PrePrepare or decision: a coordinator has them.
    pub(crate) in_proposal: HashSet<(ClientId, u64)>,
    /// Requests in a decided D-slot: their ordering is the O-primary's job now.
    pub(crate) disseminated: HashSet<(ClientId, u64)>,
    /// O-primary: D-slots to order, oldest first, and every slot queued or
    /// ordered in this view (not executed yet).
    pub(crate) to_order: VecDeque<DRef>,
    pub(crate) ordered: HashSet<DRef>,
    /// ASSIGNs not executed yet, one per client (the O-primary orders them).
    pub(crate) to_assign: BTreeMap<ClientId, Assign>,
    /// O-primary: ASSIGNs (client, nonce) proposed in this view.
    pub(crate) assign_ordered: HashSet<(ClientId, u64)>,
    /// D-PrePrepares we accepted and flooded.
    pub(crate) flooded: HashSet<DRef>,
    /// O-PrePrepares waiting for D-slots we do not hold yet, with when each came.
    pub(crate) parked: Vec<(ReplicaId, OMsg<F>, Time)>,
    /// While parked ones are taken up again: the time the one at hand first came.
    pub(crate) parking_since: Option<Time>,
    /// D-decided payloads not executed yet (None: a null request).
    pub(crate) payloads: Vec<BTreeMap<u64, Option<DBatch>>>,
    /// O-decided batches not executed yet.
    pub(crate) olog: BTreeMap<u64, Option<OBatch>>,
    /// Every O-slot up to here is executed.
    pub(crate) executed_o: u64,
    /// Invariants (decision 0016): O-slots executed in order, each once.
    pub(crate) o_executed: InOrder,
    /// Executed D-slots.
    pub(crate) progress: Progress,
    /// The D-slot execution waits for, and since when.
    pub(crate) waiting: Option<(DRef, Time)>,
    /// The O-instance decided a batch naming a slot of an instance we
    /// coordinate that we have not proposed: fill it (a no-op) once the
    /// O-actions are carried out, without waiting for a request.
    pub(crate) fill_due: bool,
    /// Our O-checkpoints from the stable one on.
    pub(crate) checkpoints: BTreeMap<u64, State>,
    /// Per D-instance: a checkpoint its peers vouch for that it needs the state of.
    pub(crate) d_need: Vec<Option<(u64, Digest)>>,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) probation: Vec<Probation>,
    /// Execution collector (Destiny): π shares on answers, per request.
    /// Execution collector (Destiny): D-slots whose answers wait for f+1 shares.
    pub(crate) collecting: BTreeMap<DRef, answers::Collecting>,
    /// Adversaries only (collude-split): when set, every answer given is
    /// also copied here, in execution order.
    pub(crate) answer_tap: Option<Vec<(ClientId, u64, Bytes)>>,
    /// Requests their clients sent us themselves while we do not coordinate
    /// their instance (Destiny: answered directly as well).
    pub(crate) direct: HashSet<(ClientId, u64)>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) started: bool,
    /// Replaying the durable log: an instance that has not replayed its
    /// records yet must not propose (it would reuse sequence numbers), so
    /// nothing is proposed or ordered until every instance has.
    pub(crate) replaying: bool,
    /// Per D-instance: whether a pending request may not be in a proposal
    /// yet (a coordinator looks for requests to propose only then: scanning
    /// every pending request on every D message cost a tenth of a run).
    pub(crate) fresh: Vec<bool>,
    /// The D-instances whose coordinator we were when last computed (None:
    /// compute again; a view change or a state installation may change them).
    pub(crate) coordinating: Option<Vec<u32>>,
    /// Execution passes so far (every so many walks all pending requests).
    pub(crate) passes: u64,
    /// Per D-instance: each replica's latest VIEW-NOTICE.
    pub(crate) notices: reinstate::Notices,
    /// O-primary: handovers (instance, view) proposed in this O-view.
    pub(crate) handed: HashSet<(u32, u64)>,
    /// The instances whose owners coordinate them in the order.
    pub(crate) owners: Vec<u32>,
    /// Per D-instance: when we last sent its VIEW-NOTICE.
    pub(crate) last_notice: Vec<Option<Time>>,
    /// When we last asked for our instance back.
    pub(crate) last_reinstate: Option<Time>,
    /// Per D-instance taken over in the order: since when (as seen here),
    /// for the reinstatement backoff.
    pub(crate) taken_over_since: Vec<Option<Time>>,
    /// Handovers executed here that gave an instance back to its owner.
    pub(crate) reinstatements: u64,
    /// Requests executed through each D-instance.
    pub(crate) executed_by: Vec<u64>,
    /// Round-robin delivery, O-primary: the next position to order.
    pub(crate) rr_ordered: u64,
    /// Round-robin delivery: the highest D-seq seen proposed in any instance.
    pub(crate) rr_high: u64,
    /// Round-robin delivery: the slot the order waits for, and since when.
    pub(crate) rr_stall: Option<(DRef, Time)>,
}

impl<F: Flavor> Replica<F> {
    /// A replica with fresh state.
    pub fn new(ctx: ReplicaContext<F::Material>, cfg: Config) -> Self {
        let n = ctx.membership.n();
        let keys = F::keys(&ctx);
        let d = (0..n as u32).map(|i| F::d_engine(&ctx, &keys, &cfg, i)).collect();
        let o = F::o_engine(&ctx, &keys, &cfg);
        Replica {
            keys,
            collecting: BTreeMap::new(),
            answer_tap: None,
            direct: HashSet::new(),
            id: ctx.id,
            m: ctx.membership,
            crypto: ctx.crypto,
            d,
            o,
            exec: Executor::new(ctx.service),
            pending: RequestPool::new(cfg.max_pending),
            proposed: HashSet::new(),
            in_proposal: HashSet::new(),
            disseminated: HashSet::new(),
            to_order: VecDeque::new(),
            ordered: HashSet::new(),
            to_assign: BTreeMap::new(),
            assign_ordered: HashSet::new(),
            flooded: HashSet::new(),
            parked: Vec::new(),
            parking_since: None,
            payloads: vec![BTreeMap::new(); n],
            olog: BTreeMap::new(),
            executed_o: 0,
            o_executed: InOrder::starting_at(1),
            progress: Progress {
                prefix: vec![0; n],
                above: vec![BTreeSet::new(); n],
                assigned: BTreeMap::new(),
                views: BTreeMap::new(),
            },
            waiting: None,
            fill_due: false,
            checkpoints: BTreeMap::new(),
            d_need: vec![None; n],
            transfer: None,
            probation: vec![Probation::default(); n],
            rng: ChaCha8Rng::seed_from_u64(0xd9b7 ^ u64::from(ctx.id.0)),
            started: false,
            replaying: false,
            fresh: vec![true; n],
            coordinating: None,
            passes: 0,
            notices: vec![BTreeMap::new(); n],
            handed: HashSet::new(),
            owners: (0..n as u32).collect(),
            last_notice: vec![None; n],
            last_reinstate: None,
            taken_over_since: vec![None; n],
            reinstatements: 0,
            executed_by: vec![0; n],
            rr_ordered: 0,
            rr_high: 0,
            rr_stall: None,
            cfg,
        }
    }

    /// D-instance `i` (for tests and adversaries).
    pub fn d_instance(&self, i: u32) -> &F::D {
        &self.d[i as usize]
    }

    /// The O-instance (for tests and adversaries).
    pub fn o_instance(&self) -> &F::O {
        &self.o
    }

    /// Its crypto provider (for adversaries, which sign with their own keys).
    pub fn crypto(&self) -> &dyn Crypto {
        self.crypto.as_ref()
    }

    /// Its settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Requests executed through each D-instance so far.
    pub fn executed_by_instance(&self) -> &[u64] {
        &self.executed_by
    }

    /// Per D-instance, how many of its slots from the first on are executed.
    pub fn executed_prefixes(&self) -> &[u64] {
        &self.progress.prefix
    }

    /// Handovers executed here that gave an instance back to its owner
    /// (reinstatements, §3.2.5).
    pub fn reinstatements(&self) -> u64 {
        self.reinstatements
    }

    /// Whether D-instance `i`'s owner coordinates it at this point of the order.
    pub fn owner_coordinates_instance(&self, i: u32) -> bool {
        self.owner_coordinates(i)
    }

    /// Its keys beyond the crypto provider (for adversaries).
    pub fn keys(&self) -> &F::Keys {
        &self.keys
    }

    fn start(&mut self, now: Time, out: &mut Out<F>) {
        self.started = true;
        out.set_timer(Timer::RequestTick, self.tick_interval());
        for i in 0..self.d.len() as u32 {
            self.with_d(now, i, out, |e, a| e.start(a));
        }
        self.with_o(now, out, |e, a| e.start(a));
    }

    /// Run `f` on D-instance `i` and carry out what it asks.
    pub(crate) fn with_d(&mut self, now: Time, i: u32, out: &mut Out<F>, f: impl FnOnce(&mut F::D, &mut DActs<F>)) {
        let mut acts = Actions::new();
        f(&mut self.d[i as usize], &mut acts);
        self.carry_out_d(now, i, acts, out);
    }

    /// Run `f` on the O-instance and carry out what it asks.
    pub(crate) fn with_o(&mut self, now: Time, out: &mut Out<F>, f: impl FnOnce(&mut F::O, &mut OActs<F>)) {
        let mut acts = Actions::new();
        f(&mut self.o, &mut acts);
        self.carry_out_o(now, acts, out);
    }

    /// Carry out D-instance `i`'s actions, then propose where there is room.
    pub(crate) fn carry_out_d(&mut self, now: Time, i: u32, actions: DActs<F>, out: &mut Out<F>) {
        self.carry_out_d_no_propose(now, i, actions, out);
        self.maybe_propose(now, out);
    }

    /// Carry out D-instance `i`'s actions, in order.
    pub(crate) fn carry_out_d_no_propose(&mut self, now: Time, i: u32, actions: DActs<F>, out: &mut Out<F>) {
        let mut queue: VecDeque<Action<DBatch, crate::DMsg<F>, DRec<F>>> = VecDeque::from(actions.into_vec());
        let mut decided = false;
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Send { to, msg } => out.send(to, Msg::D { instance: i, msg }),
                Action::Broadcast { msg } => out.broadcast(Msg::D { instance: i, msg }),
                Action::SetTimer { timer, after } => out.set_timer(Timer::D(i, timer), after),
                Action::CancelTimer { timer } => out.cancel_timer(Timer::D(i, timer)),
                Action::Persist(rec) => {
                    out.push(Effect::Persist(Bytes::from(wire::encode(&Record::<DRec<F>, ORec<F>>::D(i, rec)))))
                }
                Action::Decided { seq, value } => {
                    self.d_decided(i, seq, value);
                    decided = true;
                }
                Action::Stable { .. } => {} // Its records are in the next durable base.
                Action::NeedState { seq, digest } => self.d_needs_state(now, i, seq, digest, out),
                Action::ViewChanged { view, primary } => self.d_view_changed(now, i, view, primary, out),
                Action::Rejected { from, reason } => out.reject(NodeId::Replica(from), reason),
                Action::Note(text) => out.event(Event::Note(format!("D{i}: {text}"))),
            }
        }
        if decided {
            self.retry_parked(now, out);
            self.execute_ready(now, out);
            self.maybe_order(now, out);
        }
    }

    /// Carry out the O-instance's actions, then order what is queued.
    pub(crate) fn carry_out_o(&mut self, now: Time, actions: OActs<F>, out: &mut Out<F>) {
        self.carry_out_o_no_order(now, actions, out);
        self.maybe_order(now, out);
        if std::mem::take(&mut self.fill_due) {
            self.maybe_propose(now, out);
        }
    }

    /// Carry out the O-instance's actions, in order.
    pub(crate) fn carry_out_o_no_order(&mut self, now: Time, actions: OActs<F>, out: &mut Out<F>) {
        let mut queue: VecDeque<Action<OBatch, OMsg<F>, ORec<F>>> = VecDeque::from(actions.into_vec());
        let mut decided = false;
        while let Some(a) = queue.pop_front() {
            let mut more = Actions::new();
            match a {
                Action::Send { to, msg } => out.send(to, Msg::O(msg)),
                Action::Broadcast { msg } => out.broadcast(Msg::O(msg)),
                Action::SetTimer { timer, after } => out.set_timer(Timer::O(timer), after),
                Action::CancelTimer { timer } => out.cancel_timer(Timer::O(timer)),
                Action::Persist(rec) => {
                    out.push(Effect::Persist(Bytes::from(wire::encode(&Record::<DRec<F>, ORec<F>>::O(rec)))))
                }
                Action::Decided { seq, value } => {
                    self.fill_due |= value.as_ref().is_some_and(|b| self.names_unproposed_own_slot(b));
                    self.olog.insert(seq, value);
                    decided = true;
                }
                Action::Stable { seq, digest } => self.o_stable(now, seq, digest, out),
                Action::NeedState { seq, digest } => self.need_state(Some((seq, digest)), out),
                Action::ViewChanged { view, primary } => self.o_view_changed(now, view, primary, out),
                Action::Rejected { from, reason } => out.reject(NodeId::Replica(from), reason),
                Action::Note(text) => out.event(Event::Note(format!("O: {text}"))),
            }
            if decided {
                decided = false;
                self.execute_ready_into(now, &mut more, out);
            }
            queue.extend(more.drain());
        }
    }

    fn on_message(&mut self, now: Time, from: NodeId, msg: crate::FMsg<F>, out: &mut Out<F>) {
        match from {
            NodeId::Client(c) => match msg {
                Msg::Request(req) => self.on_request(now, c, req, out),
                Msg::Assign(a) => self.on_assign(now, from, a, out),
                _ => out.reject(from, "client sent a replica message"),
            },
            NodeId::Replica(r) => {
                if !self.m.contains(r) || r == self.id {
                    out.reject(from, "not a member");
                    return;
                }
                match msg {
                    Msg::D { instance, msg } => self.on_d_message(now, r, instance, msg, out),
                    Msg::O(msg) => self.on_o_message(now, r, msg, out),
                    Msg::Flood { instance, seq, batch } => self.on_flood(now, r, instance, seq, batch, out),
                    Msg::Forward { instance, requests } => self.on_forward(now, r, instance, requests, out),
                    Msg::StateRequest { seq } => self.on_state_request(r, seq, out),
                    Msg::StateReply { seq, state } => self.on_state_reply(now, r, seq, *state, out),
                    Msg::Assign(a) => self.on_assign(now, from, a, out),
                    Msg::ExecSig { slot, order, share } => self.on_exec_sig(r, slot, order, share, out),
                    Msg::ViewNotice { instance, view, sig } => self.on_view_notice(now, r, instance, view, sig, out),
                    Msg::Reinstate { seq, digest } => self.on_reinstate(now, r, seq, digest, out),
                    Msg::Request(_) | Msg::Reply(_) | Msg::ExecProof { .. } | Msg::Assigned { .. } => {
                        out.reject(from, "replica sent a client message")
                    }
                }
            }
        }
    }
}

impl<F: Flavor> ReplicaMachine<Dq<F>> for Replica<F> {
    fn handle(&mut self, now: Time, input: Input<Dq<F>>, out: &mut Out<F>) {
        match input {
            Input::Start => self.start(now, out),
            Input::Recover { checkpoint, records } => self.recover(now, checkpoint, records, out),
            Input::Message { from, msg } => {
                if self.started {
                    self.on_message(now, from, msg, out)
                }
            }
            Input::Timer(t) => match t {
                Timer::D(i, et) if (i as usize) < self.d.len() => self.with_d(now, i, out, |e, a| e.on_timer(et, a)),
                Timer::O(et) => self.with_o(now, out, |e, a| e.on_timer(et, a)),
                Timer::RequestTick => self.on_request_tick(now, out),
                Timer::StateTransfer => self.on_state_transfer_timeout(out),
                Timer::D(..) | Timer::ClientRetransmit | Timer::Adversary(_) => {}
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

//! The standalone PBFT replica: one consensus instance ([`Engine`] over
//! [`Batch`]es), the executor, and the per-client request table.
//!
//! - `requests.rs`: REQUEST, FORWARD, the request timers that suspect the
//!   primary, batching, the validity of a primary's batch.
//! - `execute.rs`: executing decisions and answering clients, checkpoints,
//!   the durable log, state transfer, recovery.
//!
//! The engine's actions are carried out here: its messages travel as
//! [`Msg::Pbft`], its timers as [`Timer::Engine`], its records as
//! [`Effect::Persist`].

mod execute;
mod requests;

pub use quorate_core::request::RequestCheck;

use crate::config::Config;
use crate::messages::{Batch, Msg};
use crate::{Pbft, Timer};
use quorate_core::admission::RequestPool;
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::executor::{Checkpoint, Executor};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Effect, Event, Input, Outbox, ReplicaContext, ReplicaMachine};
use quorate_core::membership::Membership;
use quorate_core::time::Time;
use quorate_core::{wire, Bytes};
use quorate_engines::instance::Instance;
use quorate_engines::pbft::{Action, Actions, Engine, Record};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

type Out = Outbox<Pbft>;

/// A state transfer under way.
#[derive(Clone, Debug)]
pub(crate) struct Transfer {
    pub seq: u64,
    pub digest: Digest,
    pub attempt: u32,
}

/// The durable base: the state at a stable checkpoint and the instance's
/// live records after it.
#[derive(Serialize, Deserialize)]
pub(crate) struct CheckpointRecord {
    pub seq: u64,
    pub checkpoint: Checkpoint,
    pub engine: Vec<Record<Batch>>,
}

/// A PBFT replica.
pub struct Replica {
    pub(crate) id: ReplicaId,
    pub(crate) m: Membership,
    pub(crate) crypto: Arc<dyn Crypto>,
    pub(crate) cfg: Config,
    pub(crate) engine: Engine<Batch>,
    pub(crate) exec: Executor,
    /// Requests not executed yet, one per client.
    pub(crate) pending: RequestPool<()>,
    /// Requests in our proposals of this view (primary).
    pub(crate) proposed: HashSet<(ClientId, u64)>,
    /// Our checkpoints from the stable one on: seq → state.
    pub(crate) checkpoints: BTreeMap<u64, Checkpoint>,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) started: bool,
}

impl Replica {
    /// A replica with fresh state.
    pub fn new(ctx: ReplicaContext, cfg: Config) -> Self {
        let engine = Engine::new(ctx.id, ctx.membership.clone(), ctx.crypto.clone(), cfg.engine());
        let pending = RequestPool::new(cfg.max_pending);
        Replica {
            id: ctx.id,
            m: ctx.membership,
            crypto: ctx.crypto,
            cfg,
            engine,
            exec: Executor::new(ctx.service),
            pending,
            proposed: HashSet::new(),
            checkpoints: BTreeMap::new(),
            transfer: None,
            started: false,
        }
    }

    /// The consensus instance (for tests and adversaries).
    pub fn engine(&self) -> &Engine<Batch> {
        &self.engine
    }

    pub(crate) fn engine_mut(&mut self) -> &mut Engine<Batch> {
        &mut self.engine
    }

    fn start(&mut self, now: Time, out: &mut Out) {
        self.started = true;
        out.set_timer(Timer::RequestTick, self.tick_interval());
        let mut acts = Actions::new();
        self.engine.start(&mut acts);
        self.carry_out(now, acts, out);
    }

    /// Carry out the engine's actions, then propose if there is room.
    pub(crate) fn carry_out(&mut self, now: Time, actions: Actions<Batch>, out: &mut Out) {
        self.carry_out_no_propose(now, actions, out);
        self.maybe_propose(now, out);
    }

    /// Carry out the engine's actions (and those of engine calls they lead to), in order.
    pub(crate) fn carry_out_no_propose(&mut self, now: Time, actions: Actions<Batch>, out: &mut Out) {
        let mut queue: VecDeque<Action<Batch>> = VecDeque::from(actions.into_vec());
        while let Some(a) = queue.pop_front() {
            let mut more = Actions::new();
            match a {
                Action::Send { to, msg } => out.send(to, Msg::Pbft(msg)),
                Action::Broadcast { msg } => out.broadcast(Msg::Pbft(msg)),
                Action::SetTimer { timer, after } => out.set_timer(Timer::Engine(timer), after),
                Action::CancelTimer { timer } => out.cancel_timer(Timer::Engine(timer)),
                Action::Persist(rec) => out.push(Effect::Persist(Bytes::from(wire::encode(&rec)))),
                Action::Decided { seq, value } => self.execute_decided(seq, value, &mut more, out),
                Action::Stable { seq, digest } => self.make_durable_base(seq, digest, out),
                Action::NeedState { seq, digest } => self.need_state(seq, digest, out),
                Action::ViewChanged { view, primary } => self.view_changed(now, view, primary, out),
                Action::Rejected { from, reason } => out.reject(NodeId::Replica(from), reason),
                Action::Note(text) => out.event(Event::Note(text)),
            }
            queue.extend(more.drain());
        }
    }

    /// Run `f` on the engine and carry out what it asks.
    pub(crate) fn with_engine(
        &mut self,
        now: Time,
        out: &mut Out,
        f: impl FnOnce(&mut Engine<Batch>, &mut Actions<Batch>),
    ) {
        let mut acts = Actions::new();
        f(&mut self.engine, &mut acts);
        self.carry_out(now, acts, out);
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
                match msg {
                    Msg::Pbft(m) => {
                        let mut acts = Actions::new();
                        let check =
                            RequestCheck::new(&self.exec, self.crypto.as_ref(), self.signs(), self.cfg.max_batch);
                        let validity = requests::BatchValidity(check);
                        self.engine.on_message(r, m, &validity, &mut acts);
                        self.carry_out(now, acts, out);
                    }
                    Msg::Forward(reqs) => self.on_forward(now, r, reqs, out),
                    Msg::StateRequest { seq, digest } => self.on_state_request(r, seq, digest, out),
                    Msg::StateReply { seq, checkpoint } => self.on_state_reply(now, r, seq, *checkpoint, out),
                    Msg::Request(_) | Msg::Reply(_) => out.reject(from, "replica sent a client message"),
                }
            }
        }
    }
}

impl ReplicaMachine<Pbft> for Replica {
    fn handle(&mut self, now: Time, input: Input<Pbft>, out: &mut Out) {
        match input {
            Input::Start => self.start(now, out),
            Input::Recover { checkpoint, records } => self.recover(now, checkpoint, records, out),
            Input::Message { from, msg } => {
                if self.started {
                    self.on_message(now, from, msg, out)
                }
            }
            Input::Timer(t) => match t {
                Timer::Engine(et) => self.with_engine(now, out, |e, a| e.on_timer(et, a)),
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
}

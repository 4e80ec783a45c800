//! One in-memory test network for machine-level tests of any [`Protocol`]:
//! the protocol crates' unit tests build their replicas here, feed them
//! inputs and look at what they did, without the simulator's virtual
//! network, CPU model or checkers.
//!
//! [`TestNet`] owns one [`ReplicaMachine`] per replica (built with
//! [`Protocol::replica`], or [`Protocol::byzantine`] for a replica given a
//! strategy), deterministic Ed25519 keys for the replicas and for clients
//! `1..=clients` ([`Ed25519Crypto::deterministic`]), the protocol's key
//! material as the simulator models it ([`KeyMaterial::modelled`], unless
//! the builder is given other keys), and a service per replica (the
//! key-value store unless told otherwise). It carries out every [`Effect`]:
//!
//! - `Send` to a replica, `Broadcast` (every other replica) and `Multicast`
//!   (the listed replicas but the sender) put one message per destination
//!   in a FIFO queue; nothing is delivered until the test says so
//!   ([`TestNet::deliver_all`], [`TestNet::deliver_one`],
//!   [`TestNet::deliver_where`]), and delivery is instant: it happens at
//!   the net's current time. A `Send` to a client is recorded (there are no
//!   client machines: [`TestNet::replies`], [`TestNet::to_client`]); one to
//!   a replica that does not exist is counted as [`Dropped::NoSuchReplica`].
//!   Every message sent is logged with its kind ([`TestNet::sent`]).
//! - `SetTimer` arms (or re-arms) the timer at `now + after`, `CancelTimer`
//!   disarms it; [`TestNet::run_for`] moves the clock on, firing the due
//!   timers in time order and delivering after each, and
//!   [`TestNet::fire`] injects a timer by hand.
//! - `Persist` and `PersistCheckpoint` go to the replica's durable records,
//!   as in the simulator (a checkpoint replaces all earlier records):
//!   [`TestNet::restart`] gives them back in [`Input::Recover`].
//! - `Event`s are recorded ([`TestNet::events`], [`TestNet::rejected`],
//!   [`TestNet::decided`]); a replica's `Complete` (it has no operation to
//!   complete) is ignored, as the simulator does.
//!
//! Faults: [`TestNet::crash`] drops a replica's machine and timers (its
//! durable records stay) and [`TestNet::restart`] builds it afresh;
//! [`TestNet::disconnect`] cuts a replica off with its state kept (no input
//! reaches it, its timers wait) until [`TestNet::reconnect`];
//! [`TestNet::partition`] drops messages between replicas of different
//! groups; [`TestNet::drop_when`] drops the messages a rule picks; a
//! replica marked [`Builder::byzantine`] has no machine: the net captures
//! what is sent to it ([`TestNet::captured`]) and the test speaks for it,
//! with its key ([`TestNet::key`]) and [`TestNet::message`]. More than
//! [`Builder::storm`] deliveries (or timer firings) in one call fail the
//! test as a message storm.
//!
//! Client requests: [`TestNet::request`] signs one with a client's key;
//! [`TestNet::submit`] sends it to replicas through the queue and delivers
//! everything. The net needs two functions of the protocol for them, given
//! to the builder: how a request travels ([`Builder::requests`]) and how to
//! read a reply's sequence number and result ([`Builder::replies`]).
//!
//! ```ignore
//! let mut net = TestNet::<MyProtocol>::builder(1)
//!     .requests(Msg::Request)
//!     .replies(|m| match m { Msg::Reply(r) => Some((r.seq, r.result.clone())), _ => None })
//!     .build();
//! let req = net.request(ClientId(1), 1, op);
//! net.submit_all(req);
//! assert_eq!(net.replies(ClientId(1), 1).len(), 4);
//! net.crash(ReplicaId(0));
//! net.run_for(Duration::from_secs(5)); // timers fire: a view change
//! ```

use crate::engine::Durable;
use crate::workload::{Kv, Workload};
use bytes::Bytes;
use quorate_core::crypto::Ed25519Crypto;
use quorate_core::keys::KeyMaterial;
use quorate_core::machine::{ClientContext, Message, ReplicaContext};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::service::{Service, ServiceFactory};
use quorate_core::{
    ClientId, Effect, Event, FaultModel, Input, Membership, NodeId, Outbox, Protocol, ReplicaId, ReplicaMachine, Time,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// A message between nodes: queued, delivered, captured or dropped.
pub struct Envelope<P: Protocol> {
    /// Sender (a replica, or a client for submitted requests).
    pub from: NodeId,
    /// Receiver.
    pub to: ReplicaId,
    /// The message.
    pub msg: P::Message,
}

impl<P: Protocol> Clone for Envelope<P> {
    fn clone(&self) -> Self {
        Envelope { from: self.from, to: self.to, msg: self.msg.clone() }
    }
}

impl<P: Protocol> std::fmt::Debug for Envelope<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} -> {:?}: {:?}", self.from, self.to, self.msg)
    }
}

/// Why a message was not delivered ([`TestNet::dropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The rule set with [`TestNet::drop_when`] picked it.
    Rule,
    /// Sender and receiver are in different groups of the partition.
    Partition,
    /// The receiver is crashed.
    Crashed,
    /// The sender or the receiver is disconnected.
    Disconnected,
    /// Sent to a replica that does not exist.
    NoSuchReplica,
}

/// Which messages [`TestNet::drop_when`] drops.
pub type DropRule<P> = Box<dyn FnMut(&Envelope<P>) -> bool>;
/// How a signed request travels ([`Builder::requests`]).
pub type WrapRequest<P> = fn(SignedRequest) -> <P as Protocol>::Message;
/// A reply's client sequence number and result, if the message is a reply
/// ([`Builder::replies`]).
pub type ReadReply<P> = fn(&<P as Protocol>::Message) -> Option<(u64, Bytes)>;
/// Replica `id`'s key material for `n` replicas and `f` faults.
pub type KeysOf<P> = Box<dyn Fn(ReplicaId, usize, usize) -> <P as Protocol>::Keys>;

/// Builds a [`TestNet`]: [`TestNet::builder`].
pub struct Builder<P: Protocol> {
    f: usize,
    n: Option<usize>,
    model: FaultModel,
    clients: u64,
    seed: u64,
    config: P::Config,
    service: ServiceFactory,
    keys: Option<(KeysOf<P>, <P::Keys as KeyMaterial>::Public)>,
    strategies: Vec<(ReplicaId, String)>,
    byzantine: Vec<ReplicaId>,
    storm: usize,
    requests: Option<WrapRequest<P>>,
    replies: Option<ReadReply<P>>,
    start: bool,
}

impl<P: Protocol> Builder<P> {
    /// Replicas (default: [`Protocol::replicas_for`] f in the model).
    pub fn n(mut self, n: usize) -> Self {
        self.n = Some(n);
        self
    }
    /// Fault model (default: Byzantine).
    pub fn model(mut self, model: FaultModel) -> Self {
        self.model = model;
        self
    }
    /// Clients with keys, `ClientId(1)..=ClientId(clients)` (default 4).
    pub fn clients(mut self, clients: u64) -> Self {
        self.clients = clients;
        self
    }
    /// Seed of the Ed25519 keys (default 7).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Protocol settings (default: `P::Config::default()`).
    pub fn config(mut self, config: P::Config) -> Self {
        self.config = config;
        self
    }
    /// Each replica's service, fresh for every machine built (default: the
    /// key-value store).
    pub fn service(mut self, service: impl Fn() -> Box<dyn Service> + Send + Sync + 'static) -> Self {
        self.service = Arc::new(service);
        self
    }
    /// The protocol's key material: replica `id`'s keys for (id, n, f), built
    /// for every machine (restarts included), and the public part (default:
    /// [`KeyMaterial::modelled`] and [`KeyMaterial::modelled_public`], as the
    /// simulator).
    pub fn keys(
        mut self,
        keys: impl Fn(ReplicaId, usize, usize) -> P::Keys + 'static,
        public: <P::Keys as KeyMaterial>::Public,
    ) -> Self {
        self.keys = Some((Box::new(keys), public));
        self
    }
    /// Replica `r` follows the protocol's adversary `strategy`
    /// ([`Protocol::byzantine`]; panics at [`Builder::build`] if unknown).
    pub fn strategy(mut self, r: ReplicaId, strategy: &str) -> Self {
        self.strategies.push((r, strategy.to_string()));
        self
    }
    /// The test speaks for replica `r`: no machine, what is sent to it is
    /// captured, and the test sends in its name ([`TestNet::message`],
    /// [`TestNet::enqueue`]).
    pub fn byzantine(mut self, r: ReplicaId) -> Self {
        self.byzantine.push(r);
        self
    }
    /// More deliveries (or timer firings) than this in one call panic as a
    /// message storm (default 1 000 000).
    pub fn storm(mut self, limit: usize) -> Self {
        self.storm = limit;
        self
    }
    /// How a client's signed request travels (e.g. the protocol's
    /// `Msg::Request`): needed by [`TestNet::submit`].
    pub fn requests(mut self, wrap: WrapRequest<P>) -> Self {
        self.requests = Some(wrap);
        self
    }
    /// A reply's client sequence number and result, None for other messages:
    /// needed by [`TestNet::replies`].
    pub fn replies(mut self, read: ReadReply<P>) -> Self {
        self.replies = Some(read);
        self
    }
    /// Do not give the replicas [`Input::Start`] at [`Builder::build`]
    /// (the test calls [`TestNet::start_all`] or feeds them itself).
    pub fn unstarted(mut self) -> Self {
        self.start = false;
        self
    }

    /// The network, every replica started (unless [`Builder::unstarted`]).
    /// Panics if the protocol refuses (n, f, model) or a strategy.
    pub fn build(self) -> TestNet<P> {
        let n = self.n.unwrap_or_else(|| P::replicas_for(self.f, self.model));
        let membership = quorate_core::membership_for::<P>(n, self.f, self.model)
            .unwrap_or_else(|e| panic!("test net of {n} replicas, f = {}: {e}", self.f));
        let mut nodes: Vec<NodeId> = (0..n as u32).map(|i| ReplicaId(i).into()).collect();
        nodes.extend((1..=self.clients).map(|c| NodeId::Client(ClientId(c))));
        let keys = Ed25519Crypto::deterministic(self.seed, &nodes).into_iter().map(Arc::new).collect();
        let (keys_of, public_keys) = match self.keys {
            Some(k) => k,
            None => (Box::new(P::Keys::modelled) as KeysOf<P>, P::Keys::modelled_public(n, self.f)),
        };
        let mut strategies = vec![None; n];
        for (r, s) in self.strategies {
            *strategies.get_mut(r.index()).expect("strategy for a replica of the net") = Some(s);
        }
        let mut net = TestNet {
            membership,
            config: self.config,
            service: self.service,
            keys_of,
            public_keys,
            keys,
            clients: self.clients,
            strategies,
            slots: Vec::new(),
            disconnected: vec![false; n],
            durable: vec![Durable::default(); n],
            timers: vec![Vec::new(); n],
            armed: 0,
            group: vec![0; n],
            queue: VecDeque::new(),
            rule: None,
            captured: Vec::new(),
            to_clients: Vec::new(),
            events: Vec::new(),
            log: Vec::new(),
            dropped: Vec::new(),
            now: Time(1),
            storm: self.storm,
            requests: self.requests,
            replies: self.replies,
        };
        for r in (0..n as u32).map(ReplicaId) {
            let slot = if self.byzantine.contains(&r) { Slot::SpokenFor } else { Slot::Up(net.machine_for(r)) };
            net.slots.push(slot);
        }
        if self.start {
            net.start_all();
        }
        net
    }
}

enum Slot<P: Protocol> {
    Up(Box<dyn ReplicaMachine<P>>),
    Crashed,
    SpokenFor,
}

struct Armed<P: Protocol> {
    timer: P::Timer,
    due: Time,
    /// Order of arming, for ties.
    order: u64,
}

impl<P: Protocol> Clone for Armed<P> {
    fn clone(&self) -> Self {
        Armed { timer: self.timer.clone(), due: self.due, order: self.order }
    }
}

/// A message sent: (from, to, kind), in the order sent ([`TestNet::log`]).
pub type Sent = (ReplicaId, NodeId, &'static str);

/// n replica machines of protocol `P` over an in-memory queue the test
/// drives (see the module documentation).
pub struct TestNet<P: Protocol> {
    membership: Membership,
    config: P::Config,
    service: ServiceFactory,
    keys_of: KeysOf<P>,
    public_keys: <P::Keys as KeyMaterial>::Public,
    /// Replicas 0..n, then clients 1..=clients.
    keys: Vec<Arc<Ed25519Crypto>>,
    clients: u64,
    strategies: Vec<Option<String>>,
    slots: Vec<Slot<P>>,
    disconnected: Vec<bool>,
    durable: Vec<Durable>,
    timers: Vec<Vec<Armed<P>>>,
    armed: u64,
    /// Partition group of each replica (0: in none).
    group: Vec<u32>,
    queue: VecDeque<Envelope<P>>,
    rule: Option<DropRule<P>>,
    captured: Vec<Envelope<P>>,
    to_clients: Vec<(ReplicaId, ClientId, P::Message)>,
    events: Vec<(ReplicaId, Event)>,
    log: Vec<Sent>,
    dropped: Vec<(Dropped, Envelope<P>)>,
    now: Time,
    storm: usize,
    requests: Option<WrapRequest<P>>,
    replies: Option<ReadReply<P>>,
}

impl<P: Protocol> TestNet<P> {
    /// A builder for `f` faults; defaults: Byzantine model,
    /// `P::replicas_for(f)` replicas, 4 clients, key seed 7, default
    /// config, key-value store, modelled key material.
    pub fn builder(f: usize) -> Builder<P> {
        Builder {
            f,
            n: None,
            model: FaultModel::Byzantine,
            clients: 4,
            seed: 7,
            config: P::Config::default(),
            service: Kv::default().service_factory(),
            keys: None,
            strategies: Vec::new(),
            byzantine: Vec::new(),
            storm: 1_000_000,
            requests: None,
            replies: None,
            start: true,
        }
    }

    // ---- set-up ----

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.membership.n()
    }
    /// The membership every replica was built with.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    /// The protocol settings.
    pub fn config(&self) -> &P::Config {
        &self.config
    }
    /// The current time.
    pub fn now(&self) -> Time {
        self.now
    }
    /// The Ed25519 keys of a replica or a client (to sign in its name).
    pub fn key(&self, node: impl Into<NodeId>) -> &Ed25519Crypto {
        self.keys_of_node(node.into())
    }

    fn keys_of_node(&self, node: NodeId) -> &Arc<Ed25519Crypto> {
        let i = match node {
            NodeId::Replica(r) => Some(r.index()).filter(|i| *i < self.n()),
            NodeId::Client(c) => (c.0 >= 1 && c.0 <= self.clients).then(|| self.n() + c.0 as usize - 1),
        };
        i.and_then(|i| self.keys.get(i)).unwrap_or_else(|| panic!("{node:?} is not a node of the net"))
    }
    /// What replica `r`'s machines are built from: its membership, keys,
    /// key material and a fresh service (for a test that builds one itself).
    pub fn context(&self, r: ReplicaId) -> ReplicaContext<P::Keys> {
        ReplicaContext {
            id: r,
            membership: self.membership.clone(),
            crypto: Arc::clone(self.keys_of_node(r.into())) as Arc<dyn quorate_core::Crypto>,
            service: (self.service)(),
            keys: (self.keys_of)(r, self.n(), self.membership.f()),
        }
    }
    /// What client `c`'s machine would be built from (for a test that runs
    /// one itself): replicas nearest first in id order, first sequence 0.
    pub fn client_context(&self, c: ClientId) -> ClientContext<P::Keys> {
        ClientContext {
            id: c,
            first_seq: 0,
            nearest: (0..self.n() as u32).map(ReplicaId).collect(),
            membership: self.membership.clone(),
            crypto: Arc::clone(self.keys_of_node(c.into())) as Arc<dyn quorate_core::Crypto>,
            public_keys: self.public_keys.clone(),
        }
    }
    /// The public part of the protocol's key material, as clients hold it.
    pub fn public_keys(&self) -> &<P::Keys as KeyMaterial>::Public {
        &self.public_keys
    }

    fn machine_for(&self, r: ReplicaId) -> Box<dyn ReplicaMachine<P>> {
        let ctx = self.context(r);
        match &self.strategies[r.index()] {
            None => P::replica(ctx, &self.config),
            Some(s) => P::byzantine(s, ctx, &self.config).unwrap_or_else(|e| panic!("replica {r:?}: {e}")),
        }
    }

    // ---- inputs ----

    /// Give every replica with a machine [`Input::Start`].
    pub fn start_all(&mut self) {
        for r in (0..self.n() as u32).map(ReplicaId) {
            self.input(r, Input::Start);
        }
    }

    /// Feed replica `r` one input now and carry out its effects (messages
    /// are queued, not delivered). Nothing happens if `r` is crashed,
    /// disconnected or spoken for by the test.
    pub fn input(&mut self, r: ReplicaId, input: Input<P>) {
        if self.disconnected[r.index()] {
            return;
        }
        let Slot::Up(machine) = &mut self.slots[r.index()] else {
            return;
        };
        let mut out = Outbox::new();
        machine.handle(self.now, input, &mut out);
        for effect in out.drain() {
            self.apply(r, effect);
        }
    }

    /// Replica `to` receives `msg` from `from` now (not through the queue).
    pub fn message(&mut self, to: ReplicaId, from: impl Into<NodeId>, msg: P::Message) {
        self.input(to, Input::Message { from: from.into(), msg });
    }

    /// Put a message at the end of the queue, as if `from` had sent it.
    pub fn enqueue(&mut self, from: impl Into<NodeId>, to: ReplicaId, msg: P::Message) {
        self.queue.push_back(Envelope { from: from.into(), to, msg });
    }

    fn apply(&mut self, r: ReplicaId, effect: Effect<P>) {
        let n = self.n() as u32;
        let send = |net: &mut Self, to: ReplicaId, msg: P::Message| {
            net.log.push((r, to.into(), msg.kind()));
            let env = Envelope { from: r.into(), to, msg };
            if to.0 < n {
                net.queue.push_back(env);
            } else {
                net.dropped.push((Dropped::NoSuchReplica, env));
            }
        };
        match effect {
            Effect::Send { to: NodeId::Client(c), msg } => {
                self.log.push((r, c.into(), msg.kind()));
                self.to_clients.push((r, c, msg));
            }
            Effect::Send { to: NodeId::Replica(to), msg } => send(self, to, msg),
            Effect::Broadcast { msg } => {
                for to in (0..n).filter(|i| *i != r.0).map(ReplicaId) {
                    send(self, to, msg.clone());
                }
            }
            Effect::Multicast { to, msg } => {
                for to in to.into_iter().filter(|t| t.0 < n && *t != r) {
                    send(self, to, msg.clone());
                }
            }
            Effect::SetTimer { timer, after } => {
                let timers = &mut self.timers[r.index()];
                timers.retain(|a| a.timer != timer);
                self.armed += 1;
                timers.push(Armed { timer, due: self.now + after, order: self.armed });
            }
            Effect::CancelTimer { timer } => self.timers[r.index()].retain(|a| a.timer != timer),
            Effect::Persist(record) => self.durable[r.index()].persist(record),
            Effect::PersistCheckpoint(record) => self.durable[r.index()].persist_checkpoint(record),
            // A replica has no client operation to complete (the simulator ignores it too).
            Effect::Complete { .. } => {}
            Effect::Event(e) => self.events.push((r, e)),
        }
    }

    // ---- delivery ----

    /// The messages waiting, in order.
    pub fn queued(&self) -> &VecDeque<Envelope<P>> {
        &self.queue
    }

    /// Deliver the first queued message (or drop it, see [`Dropped`]);
    /// false if the queue is empty.
    pub fn deliver_one(&mut self) -> bool {
        match self.queue.pop_front() {
            Some(env) => {
                self.deliver(env);
                true
            }
            None => false,
        }
    }

    /// Deliver the first queued message `pick` chooses, out of order; false
    /// if it chooses none.
    pub fn deliver_where(&mut self, pick: impl Fn(&Envelope<P>) -> bool) -> bool {
        match self.queue.iter().position(pick).and_then(|i| self.queue.remove(i)) {
            Some(env) => {
                self.deliver(env);
                true
            }
            None => false,
        }
    }

    /// Deliver queued messages, and those they cause, until none is left;
    /// how many were taken from the queue. Panics after
    /// [`Builder::storm`] of them: a message storm.
    pub fn deliver_all(&mut self) -> usize {
        let mut steps = 0;
        while let Some(env) = self.queue.pop_front() {
            steps += 1;
            assert!(steps <= self.storm, "message storm: more than {} deliveries", self.storm);
            self.deliver(env);
        }
        steps
    }

    /// Remove the queued messages `pick` chooses without delivering them;
    /// how many.
    pub fn discard(&mut self, pick: impl Fn(&Envelope<P>) -> bool) -> usize {
        let before = self.queue.len();
        self.queue.retain(|e| !pick(e));
        before - self.queue.len()
    }

    /// From now on drop every message `rule` picks when it would be
    /// delivered (replaces an earlier rule).
    pub fn drop_when(&mut self, rule: impl FnMut(&Envelope<P>) -> bool + 'static) {
        self.rule = Some(Box::new(rule));
    }

    /// Deliver everything again.
    pub fn clear_drop_rule(&mut self) {
        self.rule = None;
    }

    fn deliver(&mut self, env: Envelope<P>) {
        let to = env.to.index();
        let from = env.from.replica().map(ReplicaId::index);
        let why = if matches!(self.slots[to], Slot::SpokenFor) {
            self.captured.push(env);
            return;
        } else if from.is_some_and(|f| self.group[f] != 0 && self.group[to] != 0 && self.group[f] != self.group[to]) {
            Some(Dropped::Partition)
        } else if self.disconnected[to] || from.is_some_and(|f| self.disconnected[f]) {
            Some(Dropped::Disconnected)
        } else if matches!(self.slots[to], Slot::Crashed) {
            Some(Dropped::Crashed)
        } else if self.rule.as_mut().is_some_and(|rule| rule(&env)) {
            Some(Dropped::Rule)
        } else {
            None
        };
        match why {
            Some(why) => self.dropped.push((why, env)),
            None => self.input(env.to, Input::Message { from: env.from, msg: env.msg }),
        }
    }

    // ---- time ----

    /// Move the clock on by `d` without firing anything.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
    }

    /// Move the clock on by `d`: deliver everything, then fire each timer
    /// that comes due by then, in time order (the clock at its due time),
    /// delivering everything after each. Panics after [`Builder::storm`]
    /// firings (a timer storm).
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let mut fired = 0;
        loop {
            self.deliver_all();
            if !self.fire_next(until) {
                break;
            }
            fired += 1;
            assert!(fired <= self.storm, "timer storm: more than {} firings", self.storm);
        }
        self.now = self.now.max(until);
    }

    /// Fire every timer due by now, in time order, delivering nothing; how
    /// many fired.
    pub fn fire_due(&mut self) -> usize {
        let mut fired = 0;
        while self.fire_next(self.now) {
            fired += 1;
            assert!(fired <= self.storm, "timer storm: more than {} firings", self.storm);
        }
        fired
    }

    /// Fire the earliest timer due by `until` of a replica that takes input.
    fn fire_next(&mut self, until: Time) -> bool {
        let next = (0..self.n())
            .filter(|r| matches!(self.slots[*r], Slot::Up(_)) && !self.disconnected[*r])
            .flat_map(|r| self.timers[r].iter().enumerate().map(move |(i, a)| (a.due, a.order, r, i)))
            .filter(|(due, ..)| *due <= until)
            .min();
        let Some((due, _, r, i)) = next else {
            return false;
        };
        let armed = self.timers[r].swap_remove(i);
        self.now = self.now.max(due);
        self.input(ReplicaId(r as u32), Input::Timer(armed.timer));
        true
    }

    /// Fire replica `r`'s `timer` now, whether armed or not (it is disarmed).
    pub fn fire(&mut self, r: ReplicaId, timer: P::Timer) {
        self.timers[r.index()].retain(|a| a.timer != timer);
        self.input(r, Input::Timer(timer));
    }

    /// Replica `r`'s armed timers and when they are due, earliest first.
    pub fn timers(&self, r: ReplicaId) -> Vec<(P::Timer, Time)> {
        let mut armed = self.timers[r.index()].clone();
        armed.sort_by_key(|a| (a.due, a.order));
        armed.into_iter().map(|a| (a.timer, a.due)).collect()
    }

    // ---- faults ----

    /// Crash replica `r`: its machine, its timers and every later message to
    /// it are lost (those it sent before are delivered); its durable records
    /// stay.
    pub fn crash(&mut self, r: ReplicaId) {
        if let Slot::Up(_) = self.slots[r.index()] {
            self.slots[r.index()] = Slot::Crashed;
            self.timers[r.index()].clear();
        }
    }

    /// Restart crashed replica `r`: a fresh machine (and service) fed
    /// [`Input::Recover`] with its durable records. Panics if `r` is not
    /// crashed.
    pub fn restart(&mut self, r: ReplicaId) {
        assert!(matches!(self.slots[r.index()], Slot::Crashed), "restart {r:?}: not crashed");
        self.slots[r.index()] = Slot::Up(self.machine_for(r));
        let d = &self.durable[r.index()];
        let input = Input::Recover { checkpoint: d.checkpoint.clone(), records: d.records.clone() };
        self.input(r, input);
    }

    /// Cut replica `r` off, its state kept: every input to it is lost
    /// (messages, also queued ones from it, and direct inputs), and its
    /// timers do not fire (those that come due fire after
    /// [`TestNet::reconnect`]).
    pub fn disconnect(&mut self, r: ReplicaId) {
        self.disconnected[r.index()] = true;
    }

    /// Undo [`TestNet::disconnect`].
    pub fn reconnect(&mut self, r: ReplicaId) {
        self.disconnected[r.index()] = false;
    }

    /// Drop messages between replicas listed in different groups (replicas
    /// listed in none, and clients, reach everybody); replaces an earlier
    /// partition.
    pub fn partition(&mut self, groups: &[&[u32]]) {
        self.heal();
        for (g, members) in groups.iter().enumerate() {
            for r in members.iter() {
                self.group[*r as usize] = g as u32 + 1;
            }
        }
    }

    /// Remove the partition.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    /// Replica `r`'s durable records: the last checkpoint record and those
    /// after it.
    pub fn durable(&self, r: ReplicaId) -> (Option<&Bytes>, &[Bytes]) {
        let d = &self.durable[r.index()];
        (d.checkpoint.as_ref(), &d.records)
    }

    // ---- clients ----

    /// Client `c`'s request `seq` for `op` (not read-only), signed.
    pub fn request(&self, c: ClientId, seq: u64, op: Bytes) -> SignedRequest {
        self.sign(Request { client: c, seq, op, read_only: false })
    }

    /// `req` signed with its client's key.
    pub fn sign(&self, req: Request) -> SignedRequest {
        let key = self.key(req.client);
        SignedRequest::sign(req, key)
    }

    /// The request's client sends it to each of `to` (through the queue),
    /// then everything is delivered. Needs [`Builder::requests`].
    pub fn submit(&mut self, req: SignedRequest, to: impl IntoIterator<Item = ReplicaId>) {
        let wrap = self.requests.expect("submit needs Builder::requests");
        for r in to {
            self.enqueue(req.req.client, r, wrap(req.clone()));
        }
        self.deliver_all();
    }

    /// [`TestNet::submit`] to every replica.
    pub fn submit_all(&mut self, req: SignedRequest) {
        self.submit(req, (0..self.n() as u32).map(ReplicaId));
    }

    /// What replicas sent client `c`, in order.
    pub fn to_client(&self, c: ClientId) -> impl Iterator<Item = (ReplicaId, &P::Message)> {
        self.to_clients.iter().filter(move |(_, to, _)| *to == c).map(|(r, _, m)| (*r, m))
    }

    /// The replies client `c` received for its request `seq`: (replica,
    /// result). Needs [`Builder::replies`].
    pub fn replies(&self, c: ClientId, seq: u64) -> Vec<(ReplicaId, Bytes)> {
        let read = self.replies.expect("replies needs Builder::replies");
        self.to_client(c).filter_map(|(r, m)| read(m).filter(|(s, _)| *s == seq).map(|(_, res)| (r, res))).collect()
    }

    // ---- what happened ----

    /// Replica `r`'s machine, unless it is crashed or spoken for.
    pub fn replica(&self, r: ReplicaId) -> Option<&dyn ReplicaMachine<P>> {
        match self.slots.get(r.index()) {
            Some(Slot::Up(m)) => Some(m.as_ref()),
            _ => None,
        }
    }

    /// The machines of the replicas that have one (not crashed, not spoken
    /// for), in id order.
    pub fn replicas(&self) -> impl Iterator<Item = &dyn ReplicaMachine<P>> {
        (0..self.n() as u32).filter_map(|r| self.replica(ReplicaId(r)))
    }

    /// Replica `r`'s machine as its concrete type `T` (through
    /// [`ReplicaMachine::as_any`]); panics if it has none or is no `T`.
    pub fn machine<T: 'static>(&self, r: ReplicaId) -> &T {
        self.replica(r)
            .and_then(|m| m.as_any())
            .and_then(|a| a.downcast_ref::<T>())
            .unwrap_or_else(|| panic!("replica {r:?}: no machine of that type"))
    }

    /// Operations replica `r` executed finally ([`ReplicaMachine::executed`]),
    /// unless it has no machine.
    pub fn executed(&self, r: ReplicaId) -> Option<u64> {
        self.replica(r).map(|m| m.executed())
    }

    /// Every event, with the replica that reported it, in order.
    pub fn events(&self) -> &[(ReplicaId, Event)] {
        &self.events
    }

    /// How many inputs the replicas rejected for `reason`.
    pub fn rejected(&self, reason: &str) -> usize {
        self.events.iter().filter(|(_, e)| matches!(e, Event::Rejected { reason: x, .. } if *x == reason)).count()
    }

    /// How many inputs replica `r` rejected for `reason`.
    pub fn rejections(&self, r: ReplicaId, reason: &str) -> usize {
        self.events
            .iter()
            .filter(|(by, e)| *by == r && matches!(e, Event::Rejected { reason: x, .. } if *x == reason))
            .count()
    }

    /// How many decisions ([`Event::Decided`]) replica `r` reported.
    pub fn decided(&self, r: ReplicaId) -> usize {
        self.events.iter().filter(|(by, e)| *by == r && matches!(e, Event::Decided { .. })).count()
    }

    /// Every message sent so far, one per destination (clients included).
    pub fn log(&self) -> &[Sent] {
        &self.log
    }

    /// How many messages of `kind` were sent so far (one per destination).
    pub fn sent(&self, kind: &str) -> usize {
        self.log.iter().filter(|(_, _, k)| *k == kind).count()
    }

    /// The messages sent to replicas the test speaks for, in order.
    pub fn captured(&self) -> &[Envelope<P>] {
        &self.captured
    }

    /// The messages not delivered, and why, in order.
    pub fn dropped(&self) -> &[(Dropped, Envelope<P>)] {
        &self.dropped
    }

    /// How many messages were not delivered for `why`.
    pub fn dropped_for(&self, why: Dropped) -> usize {
        self.dropped.iter().filter(|(w, _)| *w == why).count()
    }
}

#[cfg(test)]
mod tests;

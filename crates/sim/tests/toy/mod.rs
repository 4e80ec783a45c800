//! A toy fixed-sequencer protocol for testing the simulator engine: replica 0
//! assigns every request the next slot and broadcasts the order; every
//! replica executes in slot order through the core `Executor` and replies;
//! the client waits for f+1 matching replies. No fault tolerance for replica
//! 0, but others may crash and recover (durable order log, checkpoints, and a
//! fetch from replica 0 to fill gaps).

#![allow(dead_code)]

use bytes::Bytes;
use quorate_core::executor::{Checkpoint, Executor, Outcome};
use quorate_core::machine::{ClientContext, Message, ReplicaContext, UnknownStrategy};
use quorate_core::request::Request;
use quorate_core::{
    ClientId, ClientMachine, Crypto, Digest, Effect, Event, FaultModel, Input, Membership, NodeId, Outbox, Protocol,
    ReplicaId, ReplicaMachine, Signature, Time,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Toy messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToyMsg {
    Request { seq: u64, op: Bytes, read_only: bool, sig: Signature },
    Order { slot: u64, client: u64, seq: u64, op: Bytes },
    Fetch { from: u64 },
    Reply { seq: u64, result: Bytes },
}

impl Message for ToyMsg {
    /// The toy's requests are not [`quorate_core::request::SignedRequest`]s:
    /// the generic faulty clients pass them through unchanged.
    fn request_mut(&mut self) -> Option<&mut quorate_core::request::SignedRequest> {
        None
    }
    fn kind(&self) -> &'static str {
        match self {
            ToyMsg::Request { .. } => "REQUEST",
            ToyMsg::Order { .. } => "ORDER",
            ToyMsg::Fetch { .. } => "FETCH",
            ToyMsg::Reply { .. } => "REPLY",
        }
    }
}

/// Toy timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ToyTimer {
    Retry(u64),
    GapCheck,
}

/// Toy settings.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ToyConfig {
    /// A deliberately buggy "correct" replica: it executes a different
    /// operation at slot 5 (to test the checkers).
    pub corrupt_replica: Option<u32>,
    /// Checkpoint period in slots (0: 16).
    pub checkpoint_period: u64,
}

pub struct Toy;

impl Protocol for Toy {
    const NAME: &'static str = "toy";
    type Keys = ();
    type Message = ToyMsg;
    type Timer = ToyTimer;
    type Config = ToyConfig;

    fn replicas_for(f: usize, model: FaultModel) -> usize {
        match model {
            FaultModel::Byzantine => 3 * f + 1,
            FaultModel::Crash => 2 * f + 1,
        }
    }

    /// The toy has a fixed leader and no view change: only client retries
    /// (500 ms) and gap checks (50 ms) lie on its path.
    fn liveness_bound(_: &ToyConfig, faulty: usize) -> Duration {
        Duration::from_millis(500) * quorate_core::machine::recovery_rounds(faulty)
    }

    fn replica(ctx: ReplicaContext, config: &ToyConfig) -> Box<dyn ReplicaMachine<Self>> {
        Box::new(ToyReplica::new(ctx, config, None))
    }

    fn client(ctx: ClientContext, _config: &ToyConfig) -> Box<dyn ClientMachine<Self>> {
        Box::new(ToyClient::new(ctx, None))
    }

    const STRATEGIES: &'static [(&'static str, &'static str)] =
        &[("silent", "sends nothing"), ("wrong-reply", "replies with garbage results")];

    fn byzantine(
        strategy: &str,
        ctx: ReplicaContext,
        config: &ToyConfig,
    ) -> Result<Box<dyn ReplicaMachine<Self>>, UnknownStrategy> {
        match strategy {
            "silent" | "wrong-reply" => Ok(Box::new(ToyReplica::new(ctx, config, Some(strategy.to_string())))),
            other => Err(UnknownStrategy(other.to_string())),
        }
    }

    // Named apart from the generic ones (which pass the toy's requests through).
    const CLIENT_STRATEGIES: &'static [(&'static str, &'static str)] =
        &[("toy-bad-signature", "signs requests wrongly"), ("toy-reuse-seq", "reuses sequence number 1")];

    fn byzantine_client(
        strategy: &str,
        ctx: ClientContext,
        _config: &ToyConfig,
    ) -> Result<Box<dyn ClientMachine<Self>>, UnknownStrategy> {
        match strategy {
            "toy-bad-signature" | "toy-reuse-seq" => Ok(Box::new(ToyClient::new(ctx, Some(strategy.to_string())))),
            other => Err(UnknownStrategy(other.to_string())),
        }
    }
}

pub struct ToyReplica {
    id: ReplicaId,
    membership: Membership,
    crypto: Arc<dyn Crypto>,
    exec: Executor,
    /// Every order known, by slot (leader: everything it assigned).
    log: BTreeMap<u64, (u64, u64, Bytes)>,
    next_slot: u64,
    ordered: HashMap<u64, u64>,
    config: ToyConfig,
    strategy: Option<String>,
    gap_timer: bool,
}

fn request_signing_bytes(client: u64, seq: u64, op: &[u8]) -> Vec<u8> {
    let mut b = client.to_le_bytes().to_vec();
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(op);
    b
}

impl ToyReplica {
    fn new(ctx: ReplicaContext, config: &ToyConfig, strategy: Option<String>) -> Self {
        ToyReplica {
            id: ctx.id,
            membership: ctx.membership,
            crypto: ctx.crypto,
            exec: Executor::new(ctx.service),
            log: BTreeMap::new(),
            next_slot: 0,
            ordered: HashMap::new(),
            config: config.clone(),
            strategy,
            gap_timer: false,
        }
    }

    fn leader(&self) -> bool {
        self.id.0 == 0
    }

    fn period(&self) -> u64 {
        if self.config.checkpoint_period == 0 {
            16
        } else {
            self.config.checkpoint_period
        }
    }

    fn learn(&mut self, slot: u64, client: u64, seq: u64, op: Bytes, persist: bool, out: &mut Outbox<Toy>) {
        if slot < self.exec.slot() || self.log.contains_key(&slot) {
            return;
        }
        if persist {
            let rec = quorate_core::wire::encode(&(slot, client, seq, op.clone()));
            out.push(Effect::Persist(Bytes::from(rec)));
        }
        self.log.insert(slot, (client, seq, op));
        self.next_slot = self.next_slot.max(slot + 1);
        self.ordered.entry(client).and_modify(|s| *s = (*s).max(seq)).or_insert(seq);
        self.execute_ready(out);
    }

    fn execute_ready(&mut self, out: &mut Outbox<Toy>) {
        while let Some((client, seq, op)) = self.log.get(&self.exec.slot()).cloned() {
            let slot = self.exec.slot();
            let op = if self.config.corrupt_replica == Some(self.id.0) && slot == 5 {
                let mut v = op.to_vec();
                v.push(0);
                Bytes::from(v)
            } else {
                op
            };
            let req = Request { client: ClientId(client), seq, op, read_only: false };
            let result = match self.exec.execute(&req, slot, 0, out) {
                Outcome::Executed(r) | Outcome::Repeat(r) => Some(r),
                Outcome::Stale => None,
            };
            if self.exec.slot() == slot {
                // Not new (repeat/stale): the slot still counts as done for the toy.
                // Skip it by executing nothing; the executor did not advance, so stop.
                self.log.remove(&slot);
                break;
            }
            if let Some(result) = result {
                self.reply(client, seq, result, out);
            }
            let done = self.exec.slot();
            let into_period = done % self.period();
            if into_period == 0 {
                let cp = self.exec.checkpoint();
                out.push(Effect::PersistCheckpoint(Bytes::from(quorate_core::wire::encode(&(
                    cp.clone(),
                    self.log.range(done..).map(|(s, v)| (*s, v.clone())).collect::<Vec<_>>(),
                )))));
                out.event(Event::Checkpoint { slot: cp.slot, digest: cp.digest });
            }
        }
        let gap = self.log.range(self.exec.slot()..).next().is_some();
        if gap && !self.gap_timer && !self.leader() {
            self.gap_timer = true;
            out.set_timer(ToyTimer::GapCheck, Duration::from_millis(50));
        }
    }

    fn reply(&self, client: u64, seq: u64, result: Bytes, out: &mut Outbox<Toy>) {
        let result =
            if self.strategy.as_deref() == Some("wrong-reply") { Bytes::from_static(b"garbage") } else { result };
        out.send(ClientId(client), ToyMsg::Reply { seq, result });
    }
}

impl ReplicaMachine<Toy> for ToyReplica {
    fn handle(&mut self, now: Time, input: Input<Toy>, out: &mut Outbox<Toy>) {
        let _ = now;
        if self.strategy.as_deref() == Some("silent") {
            return;
        }
        match input {
            Input::Start => {}
            Input::Recover { checkpoint, records } => {
                if let Some(cp) = checkpoint {
                    if let Ok((cp, tail)) =
                        quorate_core::wire::decode::<(Checkpoint, Vec<(u64, (u64, u64, Bytes))>)>(&cp, usize::MAX)
                    {
                        let _ = self.exec.install(&cp, out);
                        self.next_slot = cp.slot;
                        for (s, v) in tail {
                            self.log.insert(s, v);
                        }
                    }
                }
                let mut silent = Outbox::new();
                for r in records {
                    if let Ok((slot, client, seq, op)) =
                        quorate_core::wire::decode::<(u64, u64, u64, Bytes)>(&r, usize::MAX)
                    {
                        self.learn(slot, client, seq, op, false, &mut silent);
                    }
                }
                // Keep durable and observable effects, drop replies to clients.
                for e in silent.drain() {
                    if !matches!(e, Effect::Send { .. }) {
                        out.push(e);
                    }
                }
                self.execute_ready(out);
                if !self.leader() {
                    out.send(ReplicaId(0), ToyMsg::Fetch { from: self.exec.slot() });
                }
            }
            Input::Message { from, msg } => match (from, msg) {
                (NodeId::Client(c), ToyMsg::Request { seq, op, sig, .. }) => {
                    if let Outcome::Repeat(r) = match self.exec.table().freshness(c, seq) {
                        quorate_core::request::Freshness::Repeat(r) => Outcome::Repeat(r),
                        _ => Outcome::Stale,
                    } {
                        self.reply(c.0, seq, r, out);
                        return;
                    }
                    if !self.leader() {
                        return;
                    }
                    if !self.crypto.verify(NodeId::Client(c), &request_signing_bytes(c.0, seq, &op), &sig) {
                        out.reject(from, "bad request signature");
                        return;
                    }
                    if self.ordered.get(&c.0).is_some_and(|s| *s >= seq) {
                        return;
                    }
                    let slot = self.next_slot;
                    self.learn(slot, c.0, seq, op.clone(), true, out);
                    out.broadcast(ToyMsg::Order { slot, client: c.0, seq, op });
                }
                (NodeId::Replica(r), ToyMsg::Order { slot, client, seq, op }) if r.0 == 0 && !self.leader() => {
                    self.learn(slot, client, seq, op, true, out);
                }
                (NodeId::Replica(r), ToyMsg::Fetch { from: start }) if self.leader() => {
                    for (slot, (client, seq, op)) in self.log.range(start..).take(20_000) {
                        out.send(r, ToyMsg::Order { slot: *slot, client: *client, seq: *seq, op: op.clone() });
                    }
                }
                (from, _) => out.reject(from, "unexpected message"),
            },
            Input::Timer(ToyTimer::GapCheck) => {
                self.gap_timer = false;
                let gap = self.log.range(self.exec.slot()..).next().is_some();
                if gap {
                    out.send(ReplicaId(0), ToyMsg::Fetch { from: self.exec.slot() });
                    self.gap_timer = true;
                    out.set_timer(ToyTimer::GapCheck, Duration::from_millis(50));
                }
            }
            Input::Timer(_) => {}
        }
    }

    fn state_digest(&self) -> Digest {
        self.exec.state_digest()
    }

    fn executed(&self) -> u64 {
        self.exec.slot()
    }
}

pub struct ToyClient {
    id: ClientId,
    membership: Membership,
    crypto: Arc<dyn Crypto>,
    seq: u64,
    current: Option<(Bytes, bool)>,
    replies: HashMap<Bytes, HashSet<ReplicaId>>,
    strategy: Option<String>,
}

impl ToyClient {
    fn new(ctx: ClientContext, strategy: Option<String>) -> Self {
        ToyClient {
            id: ctx.id,
            membership: ctx.membership,
            crypto: ctx.crypto,
            seq: 0,
            current: None,
            replies: HashMap::new(),
            strategy,
        }
    }

    fn send(&self, out: &mut Outbox<Toy>) {
        let Some((op, read_only)) = &self.current else { return };
        let mut sig = self.crypto.sign(&request_signing_bytes(self.id.0, self.seq, op));
        if self.strategy.as_deref() == Some("toy-bad-signature") {
            sig.0.iter_mut().for_each(|b| *b ^= 1);
        }
        out.broadcast(ToyMsg::Request { seq: self.seq, op: op.clone(), read_only: *read_only, sig });
        out.set_timer(ToyTimer::Retry(self.seq), Duration::from_millis(500));
    }
}

impl ClientMachine<Toy> for ToyClient {
    fn invoke(&mut self, _now: Time, op: Bytes, read_only: bool, out: &mut Outbox<Toy>) {
        if self.strategy.as_deref() != Some("toy-reuse-seq") || self.seq == 0 {
            self.seq += 1;
        }
        self.current = Some((op, read_only));
        self.replies.clear();
        self.send(out);
    }

    fn handle(&mut self, _now: Time, input: Input<Toy>, out: &mut Outbox<Toy>) {
        match input {
            Input::Message { from: NodeId::Replica(r), msg: ToyMsg::Reply { seq, result } } => {
                if seq != self.seq || self.current.is_none() {
                    return;
                }
                let voters = self.replies.entry(result.clone()).or_default();
                voters.insert(r);
                if voters.len() > self.membership.f() {
                    self.current = None;
                    self.replies.clear();
                    out.cancel_timer(ToyTimer::Retry(seq));
                    out.push(Effect::Complete { result });
                }
            }
            Input::Timer(ToyTimer::Retry(seq)) if seq == self.seq => self.send(out),
            _ => {}
        }
    }
}

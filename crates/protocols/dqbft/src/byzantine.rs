//! Adversary strategies for DQPBFT, for the simulator. Each wraps a correct
//! replica and rewrites what it receives or sends; a faulty replica MACs
//! and signs only with its own keys.

use crate::client::Client;
use crate::config::Config;
use crate::messages::{DBatch, DRef, Msg, OBatch};
use crate::replica::Replica;
use crate::Dqbft;
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::{
    ClientContext, ClientMachine, Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy,
};
use quorate_core::time::Time;
use quorate_pbft::engine::messages::bytes;
use quorate_pbft::engine::{Auth, PbftMsg, Value};
use std::sync::Arc;

type Out = Outbox<Dqbft>;

/// Replica strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("silent", "sends nothing at all"),
    (
        "silent-coordinator",
        "never proposes in the D-instances it coordinates (its clients stall until a view change); otherwise correct",
    ),
    ("silent-o-primary", "as O-primary, never orders anything; otherwise correct"),
    ("no-flood", "never floods the D-PrePrepares it accepts; otherwise correct"),
    (
        "equivocate-coordinator",
        "as a D-instance coordinator, sends one D-PrePrepare to half of the replicas and another one to the others",
    ),
    (
        "equivocate-o-primary",
        "as O-primary, sends one O-PrePrepare to half of the replicas and another one (the references reversed, or \
         none) to the others",
    ),
    (
        "order-undisseminated",
        "as O-primary, now and then adds to an O-batch a reference to a slot that no coordinator has proposed yet",
    ),
];

/// Client strategies: (name, description).
pub const CLIENT_STRATEGIES: &[(&str, &str)] = &[(
    "duplicate-requests",
    "assigns itself (ASSIGN) to the next replica's D-instance, then sends every request to every replica, hoping \
     several coordinators disseminate it",
)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    SilentCoordinator,
    SilentOPrimary,
    NoFlood,
    EquivocateCoordinator,
    EquivocateOPrimary,
    OrderUndisseminated,
}

/// Build a Byzantine replica.
pub fn replica(
    strategy: &str,
    ctx: ReplicaContext,
    cfg: &Config,
) -> Result<Box<dyn ReplicaMachine<Dqbft>>, UnknownStrategy> {
    let kind = match strategy {
        "silent" => Kind::Silent,
        "silent-coordinator" => Kind::SilentCoordinator,
        "silent-o-primary" => Kind::SilentOPrimary,
        "no-flood" => Kind::NoFlood,
        "equivocate-coordinator" => Kind::EquivocateCoordinator,
        "equivocate-o-primary" => Kind::EquivocateOPrimary,
        "order-undisseminated" => Kind::OrderUndisseminated,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let (id, n, crypto) = (ctx.id, ctx.membership.n() as u32, ctx.crypto.clone());
    Ok(Box::new(Adversary { inner: Replica::new(ctx, cfg.clone()), kind, id, n, crypto, batches: 0 }))
}

/// Build a Byzantine client.
pub fn client(
    strategy: &str,
    mut ctx: ClientContext,
    cfg: &Config,
) -> Result<Box<dyn ClientMachine<Dqbft>>, UnknownStrategy> {
    if strategy != "duplicate-requests" {
        return Err(UnknownStrategy(strategy.to_string()));
    }
    let n = ctx.membership.n() as u64;
    let next = ReplicaId(((ctx.id.0 + 1) % n) as u32);
    ctx.nearest.retain(|r| *r != next);
    ctx.nearest.insert(0, next);
    Ok(Box::new(DuplicatingClient { inner: Client::new(ctx, cfg.clone()) }))
}

/// Sends each request to every replica.
struct DuplicatingClient {
    inner: Client,
}

impl DuplicatingClient {
    fn rewrite(effects: Vec<Effect<Dqbft>>, out: &mut Out) {
        for e in effects {
            match e {
                Effect::Send { msg: Msg::Request(r), .. } => out.broadcast(Msg::Request(r)),
                other => out.push(other),
            }
        }
    }
}

impl ClientMachine<Dqbft> for DuplicatingClient {
    fn invoke(&mut self, now: Time, op: quorate_core::Bytes, read_only: bool, out: &mut Out) {
        let mut inner = Outbox::new();
        self.inner.invoke(now, op, read_only, &mut inner);
        Self::rewrite(inner.drain().collect(), out);
    }

    fn handle(&mut self, now: Time, input: Input<Dqbft>, out: &mut Out) {
        let mut inner = Outbox::new();
        self.inner.handle(now, input, &mut inner);
        Self::rewrite(inner.drain().collect(), out);
    }
}

struct Adversary {
    inner: Replica,
    kind: Kind,
    id: ReplicaId,
    n: u32,
    crypto: Arc<dyn Crypto>,
    /// O-batches proposed so far (order-undisseminated).
    batches: u64,
}

impl Adversary {
    /// Whether a message the inner replica sends is dropped.
    fn drops(&self, msg: &Msg) -> bool {
        matches!(
            (self.kind, msg),
            (Kind::Silent, _)
                | (Kind::SilentCoordinator, Msg::D { msg: PbftMsg::PrePrepare { .. }, .. })
                | (Kind::SilentOPrimary, Msg::O(PbftMsg::PrePrepare { .. }))
                | (Kind::NoFlood, Msg::Flood { .. })
        )
    }
}

impl Adversary {
    fn others(&self) -> Vec<ReplicaId> {
        (0..self.n).map(ReplicaId).filter(|r| *r != self.id).collect()
    }

    fn auth(&self, instance: u64, to: ReplicaId, view: u64, seq: u64, digest: &Digest) -> Auth {
        Auth(vec![self.crypto.mac(NodeId::Replica(to), &bytes::pre_prepare(instance, view, seq, digest))])
    }

    /// Each half of the others gets its own D-PrePrepare: one with the
    /// timestamp moved, one with the requests reversed as well.
    fn equivocate_d(&self, i: u32, view: u64, seq: u64, value: DBatch, out: &mut Out) {
        let others = self.others();
        let half = others.len().div_ceil(2);
        let mut first = value.clone();
        first.timestamp = first.timestamp.wrapping_add(1);
        let mut second = value;
        second.timestamp = second.timestamp.wrapping_add(2);
        second.requests.reverse();
        for (k, r) in others.into_iter().enumerate() {
            let v = if k < half { first.clone() } else { second.clone() };
            let auth = self.auth(u64::from(i), r, view, seq, &v.digest(self.crypto.as_ref()));
            out.send(r, Msg::D { instance: i, msg: PbftMsg::PrePrepare { view, seq, value: v, auth } });
        }
    }

    /// The first half of the others gets the O-batch, the second half the
    /// references reversed (or nothing, for a single reference).
    fn equivocate_o(&self, view: u64, seq: u64, value: OBatch, out: &mut Out) {
        let others = self.others();
        let half = others.len().div_ceil(2);
        let mut second = value.clone();
        second.refs.reverse();
        for (k, r) in others.into_iter().enumerate() {
            let v = if k < half { value.clone() } else { second.clone() };
            if k >= half && value.refs.len() < 2 {
                continue;
            }
            let auth = self.auth(u64::MAX, r, view, seq, &v.digest(self.crypto.as_ref()));
            out.send(r, Msg::O(PbftMsg::PrePrepare { view, seq, value: v, auth }));
        }
    }

    /// Every eighth O-batch also names the slot after the next one of
    /// another instance (not proposed yet).
    fn order_undisseminated(&mut self, view: u64, seq: u64, mut value: OBatch, out: &mut Out) {
        self.batches += 1;
        if self.batches.is_multiple_of(8) {
            let i = (self.id.0 + 1 + (self.batches / 8 % u64::from(self.n.max(2) - 1)) as u32) % self.n;
            let next = self.inner.d_instance(i).last_decided() + 3;
            let r = DRef { instance: i, seq: next };
            if !value.refs.contains(&r) {
                value.refs.push(r);
            }
        }
        for r in self.others() {
            let auth = self.auth(u64::MAX, r, view, seq, &value.digest(self.crypto.as_ref()));
            out.send(r, Msg::O(PbftMsg::PrePrepare { view, seq, value: value.clone(), auth }));
        }
    }

    fn rewrite(&mut self, e: Effect<Dqbft>, out: &mut Out) {
        let msg = match &e {
            Effect::Send { msg, .. } | Effect::Broadcast { msg } | Effect::Multicast { msg, .. } => msg,
            _ => return out.push(e),
        };
        if self.drops(msg) {
            return;
        }
        match (self.kind, e) {
            (
                Kind::EquivocateCoordinator,
                Effect::Broadcast { msg: Msg::D { instance, msg: PbftMsg::PrePrepare { view, seq, value, .. } } },
            ) => self.equivocate_d(instance, view, seq, value, out),
            (
                Kind::EquivocateOPrimary,
                Effect::Broadcast { msg: Msg::O(PbftMsg::PrePrepare { view, seq, value, .. }) },
            ) => self.equivocate_o(view, seq, value, out),
            (
                Kind::OrderUndisseminated,
                Effect::Broadcast { msg: Msg::O(PbftMsg::PrePrepare { view, seq, value, .. }) },
            ) => self.order_undisseminated(view, seq, value, out),
            (_, e) => out.push(e),
        }
    }
}

impl ReplicaMachine<Dqbft> for Adversary {
    fn handle(&mut self, now: Time, input: Input<Dqbft>, out: &mut Out) {
        let mut inner = Outbox::new();
        self.inner.handle(now, input, &mut inner);
        let effects: Vec<Effect<Dqbft>> = inner.drain().collect();
        for e in effects {
            self.rewrite(e, out);
        }
    }

    fn state_digest(&self) -> Digest {
        self.inner.state_digest()
    }

    fn executed(&self) -> u64 {
        self.inner.executed()
    }
}

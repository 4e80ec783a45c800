//! The DQPBFT client (§3.2.5–3.2.6). It first assigns itself, with a
//! signed ASSIGN ordered through the O-instance, to the D-instance of its
//! nearest replica (unless that is the instance it has by default, `id mod
//! n`). It sends each request to that instance's first coordinator,
//! accepts a result once f+1 replicas reply with it, and sends the request
//! to every replica when the replies are late. After a late reply it sends
//! its next requests to f+1 replicas at once ("if timeouts are frequent, it
//! may send later commands to ≥ f replicas"), until a run of requests
//! completes in time.

use crate::config::Config;
use crate::messages::{assigned_mac_bytes, Assign, Msg, Reply};
use crate::{Dqbft, Timer};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

type Out = Outbox<Dqbft>;

/// Requests in time after which a client that spread its requests goes
/// back to its instance's replica alone.
const CALM_AFTER: u32 = 64;

struct Outstanding {
    request: SignedRequest,
    replies: BTreeMap<ReplicaId, Bytes>,
    retransmits: u32,
}

/// An ASSIGN under way, and the operation that waits for it.
struct Assigning {
    assign: Assign,
    acks: BTreeSet<ReplicaId>,
    op: Bytes,
}

/// A DQPBFT client: one operation at a time.
pub struct Client {
    id: ClientId,
    m: Membership,
    crypto: Arc<dyn Crypto>,
    cfg: Config,
    seq: u64,
    /// The D-instance its requests go to.
    instance: u32,
    /// The instance it wants (its nearest replica's).
    wanted: u32,
    assigning: Option<Assigning>,
    current: Option<Outstanding>,
    /// Requests still to send to f+1 replicas (after a late reply).
    spread: u32,
}

impl Client {
    /// A client.
    pub fn new(ctx: ClientContext, cfg: Config) -> Self {
        let n = ctx.membership.n() as u64;
        let instance = (ctx.id.0 % n) as u32;
        let wanted = ctx.nearest.first().map_or(instance, |r| r.0);
        Client {
            id: ctx.id,
            m: ctx.membership,
            crypto: ctx.crypto,
            cfg,
            seq: ctx.first_seq,
            instance,
            wanted,
            assigning: None,
            current: None,
            spread: 0,
        }
    }

    /// The replicas a new request goes to: its instance's first coordinator
    /// (and the next f after a late reply).
    fn targets(&self) -> Vec<ReplicaId> {
        let n = self.m.n() as u64;
        let home = u64::from(self.instance);
        let count = if self.spread > 0 { self.m.f() as u64 + 1 } else { 1 };
        (0..count.min(n)).map(|k| ReplicaId(((home + k) % n) as u32)).collect()
    }

    fn send_request(&mut self, op: Bytes, out: &mut Out) {
        self.seq += 1;
        let req = Request { client: self.id, seq: self.seq, op, read_only: false };
        let request =
            if self.signs() { SignedRequest::sign(req, self.crypto.as_ref()) } else { SignedRequest::unsigned(req) };
        for to in self.targets() {
            out.send(to, Msg::Request(request.clone()));
        }
        out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
        self.current = Some(Outstanding { request, replies: BTreeMap::new(), retransmits: 0 });
    }

    fn signs(&self) -> bool {
        self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests
    }

    fn on_reply(&mut self, r: ReplicaId, reply: Reply, out: &mut Out) {
        let Some(cur) = &mut self.current else { return };
        if reply.seq != cur.request.req.seq || !self.m.contains(r) {
            return;
        }
        let bytes = Reply::mac_bytes(self.id, reply.seq, &reply.result);
        if !self.crypto.verify_mac(NodeId::Replica(r), &bytes, &reply.mac) {
            out.reject(NodeId::Replica(r), "bad reply MAC");
            return;
        }
        cur.replies.insert(r, reply.result);
        let mut groups: BTreeMap<&Bytes, usize> = BTreeMap::new();
        for res in cur.replies.values() {
            *groups.entry(res).or_default() += 1;
        }
        let f = self.m.f();
        let Some(result) = groups.into_iter().find(|(_, c)| *c > f).map(|(res, _)| res.clone()) else { return };
        let late = cur.retransmits > 0;
        self.current = None;
        self.spread = if late { CALM_AFTER } else { self.spread.saturating_sub(1) };
        out.cancel_timer(Timer::ClientRetransmit);
        out.push(Effect::Complete { result });
    }

    /// ASSIGNED from `r`: with f+1 of them, the client's instance changed.
    fn on_assigned(&mut self, r: ReplicaId, nonce: u64, instance: u32, mac: quorate_core::crypto::Mac, out: &mut Out) {
        let Some(a) = &mut self.assigning else { return };
        if a.assign.nonce != nonce || a.assign.instance != instance || !self.m.contains(r) {
            return;
        }
        if !self.crypto.verify_mac(NodeId::Replica(r), &assigned_mac_bytes(self.id, nonce, instance), &mac) {
            out.reject(NodeId::Replica(r), "bad ASSIGNED MAC");
            return;
        }
        a.acks.insert(r);
        if a.acks.len() > self.m.f() {
            let op = std::mem::take(&mut a.op);
            self.assigning = None;
            self.instance = instance;
            out.cancel_timer(Timer::ClientRetransmit);
            self.send_request(op, out);
        }
    }
}

impl ClientMachine<Dqbft> for Client {
    fn invoke(&mut self, _now: Time, op: Bytes, _read_only: bool, out: &mut Out) {
        if self.instance != self.wanted && self.assigning.is_none() {
            // The client's nonces continue above its sequence numbers, which
            // a restarted client process also keeps above what replicas saw.
            let assign = Assign::sign(self.id, self.wanted, self.seq + 1, self.crypto.as_ref());
            out.broadcast(Msg::Assign(assign.clone()));
            out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
            self.assigning = Some(Assigning { assign, acks: BTreeSet::new(), op });
            return;
        }
        self.send_request(op, out);
    }

    fn handle(&mut self, _now: Time, input: Input<Dqbft>, out: &mut Out) {
        match input {
            Input::Message { from: NodeId::Replica(r), msg: Msg::Reply(reply) } => self.on_reply(r, reply, out),
            Input::Message { from: NodeId::Replica(r), msg: Msg::Assigned { nonce, instance, mac } } => {
                self.on_assigned(r, nonce, instance, mac, out)
            }
            Input::Message { from, .. } => out.reject(from, "unexpected message at a client"),
            Input::Timer(Timer::ClientRetransmit) => {
                if let Some(a) = &self.assigning {
                    out.broadcast(Msg::Assign(a.assign.clone()));
                    out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
                    return;
                }
                let Some(cur) = &mut self.current else { return };
                // Late: every replica gets it (each relays it to the
                // coordinator and starts its timer).
                cur.retransmits += 1;
                out.broadcast(Msg::Request(cur.request.clone()));
                let backoff = if cur.retransmits > 1 { 2 } else { 1 };
                out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit.saturating_mul(backoff));
            }
            Input::Timer(_) | Input::Start | Input::Recover { .. } => {}
        }
    }
}

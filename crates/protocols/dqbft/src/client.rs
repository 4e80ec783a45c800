//! The DQPBFT client (§3.2.5–3.2.6): it sends each request to the replica
//! that coordinates its D-instance at first, accepts a result once f+1
//! replicas reply with it, and sends the request to every replica when the
//! replies are late. After a late reply it sends its next requests to f+1
//! replicas at once ("if timeouts are frequent, it may send later commands
//! to ≥ f replicas"), until a run of requests completes in time.

use crate::config::Config;
use crate::messages::{Msg, Reply};
use crate::{Dqbft, Timer};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::BTreeMap;
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

/// A DQPBFT client: one operation at a time.
pub struct Client {
    id: ClientId,
    m: Membership,
    crypto: Arc<dyn Crypto>,
    cfg: Config,
    seq: u64,
    current: Option<Outstanding>,
    /// Requests still to send to f+1 replicas (after a late reply).
    spread: u32,
}

impl Client {
    /// A client.
    pub fn new(ctx: ClientContext, cfg: Config) -> Self {
        Client { id: ctx.id, m: ctx.membership, crypto: ctx.crypto, cfg, seq: ctx.first_seq, current: None, spread: 0 }
    }

    /// The replicas a new request goes to: its instance's first coordinator
    /// (and the next f after a late reply).
    fn targets(&self) -> Vec<ReplicaId> {
        let n = self.m.n() as u64;
        let home = self.id.0 % n;
        let count = if self.spread > 0 { self.m.f() as u64 + 1 } else { 1 };
        (0..count.min(n)).map(|k| ReplicaId(((home + k) % n) as u32)).collect()
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
}

impl ClientMachine<Dqbft> for Client {
    fn invoke(&mut self, _now: Time, op: Bytes, _read_only: bool, out: &mut Out) {
        self.seq += 1;
        let req = Request { client: self.id, seq: self.seq, op, read_only: false };
        let request = if self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests {
            SignedRequest::sign(req, self.crypto.as_ref())
        } else {
            SignedRequest::unsigned(req)
        };
        for to in self.targets() {
            out.send(to, Msg::Request(request.clone()));
        }
        out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
        self.current = Some(Outstanding { request, replies: BTreeMap::new(), retransmits: 0 });
    }

    fn handle(&mut self, _now: Time, input: Input<Dqbft>, out: &mut Out) {
        match input {
            Input::Message { from: NodeId::Replica(r), msg: Msg::Reply(reply) } => self.on_reply(r, reply, out),
            Input::Message { from, .. } => out.reject(from, "unexpected message at a client"),
            Input::Timer(Timer::ClientRetransmit) => {
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

//! The PBFT client (OSDI'99 §4.1): send the request to the primary of the
//! view it believes current, accept a result once f+1 replicas reply with
//! it, and send the request to every replica when the replies are late.
//!
//! Read-only operations are ordered like the others: with f+1 replies per
//! write and no tentative execution, the read-only optimisation (2f+1
//! matching replies from the current state) could miss a completed write.

use crate::config::Config;
use crate::messages::{Msg, Reply};
use crate::{Pbft, Timer};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;

type Out = Outbox<Pbft>;

struct Outstanding {
    request: SignedRequest,
    /// Each replica's reply: (result, its view).
    replies: BTreeMap<ReplicaId, (Bytes, u64)>,
    retransmits: u32,
}

/// A PBFT client: one operation at a time.
pub struct Client {
    id: ClientId,
    m: Membership,
    crypto: Arc<dyn Crypto>,
    cfg: Config,
    seq: u64,
    /// The view the client believes current (its primary gets requests first).
    view: u64,
    current: Option<Outstanding>,
}

impl Client {
    /// A client.
    pub fn new(ctx: ClientContext, cfg: Config) -> Self {
        Client { id: ctx.id, m: ctx.membership, crypto: ctx.crypto, cfg, seq: ctx.first_seq, view: 0, current: None }
    }

    fn primary(&self) -> ReplicaId {
        ReplicaId((self.view % self.m.n() as u64) as u32)
    }

    fn on_reply(&mut self, r: ReplicaId, reply: Reply, out: &mut Out) {
        let Some(cur) = &mut self.current else { return };
        if reply.seq != cur.request.req.seq || !self.m.contains(r) {
            return;
        }
        let bytes = Reply::mac_bytes(self.id, reply.view, reply.seq, &reply.result);
        if !self.crypto.verify_mac(NodeId::Replica(r), &bytes, &reply.mac) {
            out.reject(NodeId::Replica(r), "bad reply MAC");
            return;
        }
        cur.replies.insert(r, (reply.result, reply.view));
        // The view f+1 replicas are at least in: one of them is correct.
        let mut views: Vec<u64> = cur.replies.values().map(|(_, v)| *v).collect();
        views.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(v) = views.get(self.m.f()) {
            self.view = self.view.max(*v);
        }
        let mut groups: BTreeMap<&Bytes, usize> = BTreeMap::new();
        for (res, _) in cur.replies.values() {
            *groups.entry(res).or_default() += 1;
        }
        let f = self.m.f();
        let done = groups.into_iter().find(|(_, c)| *c > f).map(|(res, _)| res.clone());
        if let Some(result) = done {
            self.current = None;
            out.cancel_timer(Timer::ClientRetransmit);
            out.push(Effect::Complete { result });
        }
    }
}

impl ClientMachine<Pbft> for Client {
    fn invoke(&mut self, _now: Time, op: Bytes, _read_only: bool, out: &mut Out) {
        self.seq += 1;
        let req = Request { client: self.id, seq: self.seq, op, read_only: false };
        let request = if self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests {
            SignedRequest::sign(req, self.crypto.as_ref())
        } else {
            SignedRequest::unsigned(req)
        };
        out.send(self.primary(), Msg::Request(request.clone()));
        out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
        self.current = Some(Outstanding { request, replies: BTreeMap::new(), retransmits: 0 });
    }

    fn handle(&mut self, _now: Time, input: Input<Pbft>, out: &mut Out) {
        match input {
            Input::Message { from: NodeId::Replica(r), msg: Msg::Reply(reply) } => self.on_reply(r, reply, out),
            Input::Message { from, .. } => out.reject(from, "unexpected message at a client"),
            Input::Timer(Timer::ClientRetransmit) => {
                let Some(cur) = &mut self.current else { return };
                // Late: every replica gets it (backups relay it to the primary
                // and start their timers).
                cur.retransmits += 1;
                out.broadcast(Msg::Request(cur.request.clone()));
                let backoff = if cur.retransmits > 1 { 2 } else { 1 };
                out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit.saturating_mul(backoff));
            }
            Input::Timer(_) | Input::Start | Input::Recover { .. } => {}
        }
    }
}

//! The Mod-SMaRt client (thesis Alg. 1): broadcast the request, wait for a
//! quorum of matching replies; read-only requests fall back to ordered ones
//! when the replies cannot match.

use crate::config::Config;
use crate::messages::{Msg, Reply};
use crate::{ModSmart, Timer};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::tally::{Ballot, Outcome};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::sync::Arc;

type Out = Outbox<ModSmart>;

struct Outstanding {
    request: SignedRequest,
    replies: Ballot<Bytes>,
    retransmits: u32,
}

/// A Mod-SMaRt client: one operation at a time.
pub struct Client {
    id: ClientId,
    m: Membership,
    crypto: Arc<dyn Crypto>,
    cfg: Config,
    seq: u64,
    current: Option<Outstanding>,
}

impl Client {
    /// A client.
    pub fn new(ctx: ClientContext, cfg: Config) -> Self {
        Client { id: ctx.id, m: ctx.membership, crypto: ctx.crypto, cfg, seq: ctx.first_seq, current: None }
    }

    fn send(&mut self, op: Bytes, read_only: bool, out: &mut Out) {
        self.seq += 1;
        let req = Request { client: self.id, seq: self.seq, op, read_only };
        let request = if self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests {
            SignedRequest::sign(req, self.crypto.as_ref())
        } else {
            SignedRequest::unsigned(req)
        };
        out.broadcast(Msg::Request(request.clone()));
        out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
        self.current = Some(Outstanding { request, replies: Ballot::default(), retransmits: 0 });
    }

    fn on_reply(&mut self, r: ReplicaId, reply: Reply, out: &mut Out) {
        let Some(cur) = &mut self.current else { return };
        if reply.seq != cur.request.req.seq || reply.read_only != cur.request.req.read_only || !self.m.contains(r) {
            return;
        }
        cur.replies.replace(&self.m, r, reply.result);
        // A quorum of matching replies is the answer.
        let reply_quorum = self.m.threshold("reply").expect("mod-smart's quorum system has a reply kind");
        match cur.replies.outcome(&self.m, reply_quorum) {
            Outcome::Won(res) => {
                let result = res.clone();
                self.current = None;
                out.cancel_timer(Timer::ClientRetransmit);
                out.push(Effect::Complete { result });
            }
            // No result can reach a quorum any more: order the operation (Alg. 1 l.15–16).
            Outcome::Lost if cur.request.req.read_only => {
                let op = cur.request.req.op.clone();
                self.send(op, false, out);
            }
            Outcome::Lost | Outcome::Pending => {}
        }
    }
}

impl ClientMachine<ModSmart> for Client {
    fn invoke(&mut self, _now: Time, op: Bytes, read_only: bool, out: &mut Out) {
        self.send(op, read_only, out);
    }

    fn handle(&mut self, _now: Time, input: Input<ModSmart>, out: &mut Out) {
        match input {
            Input::Message { from: NodeId::Replica(r), msg: Msg::Reply(reply) } => self.on_reply(r, reply, out),
            Input::Message { from, .. } => out.reject(from, "unexpected message at a client"),
            Input::Timer(Timer::ClientRetransmit) => {
                let Some(cur) = &mut self.current else { return };
                if cur.request.req.read_only {
                    // Unanswered read-only request: order it instead.
                    let op = cur.request.req.op.clone();
                    self.send(op, false, out);
                    return;
                }
                cur.retransmits += 1;
                out.broadcast(Msg::Request(cur.request.clone()));
                let backoff = 2u32.pow(cur.retransmits.min(3));
                out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit.saturating_mul(backoff));
            }
            Input::Timer(_) | Input::Start | Input::Recover { .. } => {}
        }
    }
}

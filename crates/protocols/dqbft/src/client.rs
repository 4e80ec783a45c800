//! The DQBFT client (§3.2.5–3.2.6, §4.3.2). It first assigns itself, with a
//! signed ASSIGN ordered through the O-instance, to the D-instance of its
//! nearest replica (unless that is the instance it has by default, `id mod
//! n`). It sends each request to that instance's first coordinator,
//! accepts a result once f+1 replicas reply with it (DQPBFT) or with one
//! valid threshold-signed answer, or f+1 answer shares it combines itself
//! (Destiny), and sends the request
//! to every replica when the replies are late. After a late reply it sends
//! its next requests to f+1 replicas at once ("if timeouts are frequent, it
//! may send later commands to ≥ f replicas"), until a run of requests
//! completes in time.

use crate::config::Config;
use crate::messages::{answer_digest, answers_statement, assigned_mac_bytes, AnswerProof, Assign, DRef, Msg, Reply};
use crate::{Dq, Flavor, Timer};
use quorate_core::crypto::Crypto;
use quorate_core::crypto::Digest;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use quorate_threshsign::{Scheme, Share, Statement};
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

type Out<F> = Outbox<Dq<F>>;

/// Requests in time after which a client that spread its requests goes
/// back to its instance's replica alone.
const CALM_AFTER: u32 = 64;

struct Outstanding {
    request: SignedRequest,
    replies: BTreeMap<ReplicaId, Bytes>,
    /// Destiny: answer shares replicas sent directly, with what they sign.
    shares: BTreeMap<ReplicaId, (Statement, Bytes, Share)>,
    retransmits: u32,
}

/// An ASSIGN under way, and the operation that waits for it.
struct Assigning {
    assign: Assign,
    acks: BTreeSet<ReplicaId>,
    op: Bytes,
}

/// A client of the paradigm in flavor `F`: one operation at a time.
pub struct Client<F> {
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
    /// Destiny: the scheme its answers are checked with.
    scheme: Option<Arc<dyn Scheme>>,
    flavor: PhantomData<F>,
}

impl<F: Flavor> Client<F> {
    /// A client.
    pub fn new(ctx: ClientContext<F::Material>, cfg: Config) -> Self {
        let n = ctx.membership.n() as u64;
        let instance = (ctx.id.0 % n) as u32;
        let wanted = ctx.nearest.first().map_or(instance, |r| r.0);
        let scheme = F::client_scheme(&ctx);
        Client {
            scheme,
            flavor: PhantomData,
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

    fn send_request(&mut self, op: Bytes, out: &mut Out<F>) {
        self.seq += 1;
        let req = Request { client: self.id, seq: self.seq, op, read_only: false };
        let request =
            if self.signs() { SignedRequest::sign(req, self.crypto.as_ref()) } else { SignedRequest::unsigned(req) };
        for to in self.targets() {
            out.send(to, Msg::Request(request.clone()));
        }
        out.set_timer(Timer::ClientRetransmit, self.cfg.client_retransmit);
        self.current = Some(Outstanding { request, replies: BTreeMap::new(), shares: BTreeMap::new(), retransmits: 0 });
    }

    fn signs(&self) -> bool {
        self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests
    }

    fn on_reply(&mut self, r: ReplicaId, reply: Reply, out: &mut Out<F>) {
        if self.scheme.is_some() {
            out.reject(NodeId::Replica(r), "MAC'd reply where answers are threshold-signed");
            return;
        }
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
        self.complete(result, out);
    }

    /// Destiny's ExecProof: the answers of the D-slot our request executed
    /// in, our result among them, proved by one threshold signature, or by
    /// one replica's share (f+1 matching shares, combined here, prove it).
    #[allow(clippy::too_many_arguments)]
    fn on_exec_proof(
        &mut self,
        r: ReplicaId,
        slot: Option<DRef>,
        order: u64,
        answers: Vec<Digest>,
        seq: u64,
        result: Bytes,
        proof: AnswerProof,
        out: &mut Out<F>,
    ) {
        let (Some(scheme), Some(cur)) = (self.scheme.clone(), &mut self.current) else { return };
        if seq != cur.request.req.seq || !self.m.contains(r) {
            return;
        }
        if !answers.contains(&answer_digest(self.id, seq, &result)) {
            out.reject(NodeId::Replica(r), "EXECPROOF without our answer in its list");
            return;
        }
        let st = answers_statement(slot, order, &answers);
        match proof {
            AnswerProof::Threshold(sig) => {
                if scheme.verify_threshold(&sig, &st).is_err() {
                    out.reject(NodeId::Replica(r), "bad EXECPROOF");
                    return;
                }
                self.complete(result, out);
            }
            AnswerProof::Share(share) => {
                if share.signer != r || share.statement != st {
                    out.reject(NodeId::Replica(r), "EXECPROOF share on another statement");
                    return;
                }
                cur.shares.insert(r, (st, result.clone(), share));
                // Shares on different lists (another slot) can still agree on our result.
                let mut by_statement: BTreeMap<Digest, Vec<Share>> = BTreeMap::new();
                for (s, res, sh) in cur.shares.values() {
                    if *res == result {
                        by_statement.entry(s.msg_hash).or_default().push(sh.clone());
                    }
                }
                let Some(matching) = by_statement.into_values().find(|v| v.len() >= scheme.threshold()) else {
                    return;
                };
                let st = matching[0].statement;
                match scheme.combine_reporting(&st, &matching) {
                    Ok(_) => self.complete(result, out),
                    Err(_) => cur.shares.retain(|_, (s, _, sh)| *s != st || scheme.verify_share(sh, &st).is_ok()),
                }
            }
        }
    }

    fn complete(&mut self, result: Bytes, out: &mut Out<F>) {
        let Some(cur) = &self.current else { return };
        let late = cur.retransmits > 0;
        self.current = None;
        self.spread = if late { CALM_AFTER } else { self.spread.saturating_sub(1) };
        out.cancel_timer(Timer::ClientRetransmit);
        out.push(Effect::Complete { result });
    }

    /// ASSIGNED from `r`: with f+1 of them, the client's instance changed.
    fn on_assigned(
        &mut self,
        r: ReplicaId,
        nonce: u64,
        instance: u32,
        mac: quorate_core::crypto::Mac,
        out: &mut Out<F>,
    ) {
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

impl<F: Flavor> ClientMachine<Dq<F>> for Client<F> {
    fn invoke(&mut self, _now: Time, op: Bytes, _read_only: bool, out: &mut Out<F>) {
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

    fn handle(&mut self, _now: Time, input: Input<Dq<F>>, out: &mut Out<F>) {
        match input {
            Input::Message { from: NodeId::Replica(r), msg: Msg::Reply(reply) } => self.on_reply(r, reply, out),
            Input::Message {
                from: NodeId::Replica(r),
                msg: Msg::ExecProof { slot, order, answers, seq, result, proof },
            } => self.on_exec_proof(r, slot, order, answers, seq, result, proof, out),
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

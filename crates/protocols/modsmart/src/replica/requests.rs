//! Client requests: REQUEST (Alg. 2 l.1, l.26), FORWARDED (l.18), the request
//! timers (Alg. 3 l.1–4), and batch selection (Alg. 2 l.4).

use super::{Out, Replica};
use crate::messages::{Msg, Reply};
use crate::Timer;
use quorate_core::admission::{Admitted, Arrival};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::request::{Freshness, RequestCheck, SignedRequest};
use quorate_core::time::Time;

impl Replica {
    /// Whether clients sign requests in this deployment.
    pub(crate) fn signs(&self) -> bool {
        self.bft() && self.cfg.sign_requests
    }

    /// Validity of a request for ordering: fresh, then the core's rules
    /// (ordered, well-formed for the service, validly signed in BFT mode:
    /// the source's validCmd and validSig).
    pub(crate) fn check_request(&self, req: &SignedRequest) -> Result<(), &'static str> {
        if !matches!(self.exec.table().freshness(req.req.client, req.req.seq), Freshness::New) {
            return Err("stale request");
        }
        RequestCheck::new(&self.exec, self.crypto.as_ref(), self.signs(), self.cfg.max_batch).request(req)
    }

    /// REQUEST from a client.
    pub(crate) fn on_request(&mut self, now: Time, c: ClientId, req: SignedRequest, out: &mut Out) {
        if req.req.read_only && req.req.client == c {
            // Unordered path (Alg. 2 l.26–28): answer from the current state.
            let result = self.exec.query(&req.req.op);
            out.send(c, Msg::Reply(Reply { seq: req.req.seq, read_only: true, result }));
            return;
        }
        match self.pending.arrival(self.exec.table(), c, &req) {
            Arrival::New => self.request_received(now, req, NodeId::Client(c), out),
            // A retransmission of an executed request: the cached reply again.
            Arrival::Executed(result) => out.send(c, Msg::Reply(Reply { seq: req.req.seq, read_only: false, result })),
            Arrival::Refused(why) => out.reject(NodeId::Client(c), why),
        }
    }

    /// RequestReceived (Alg. 2 l.21): validate and add to ToOrder.
    pub(crate) fn request_received(&mut self, now: Time, req: SignedRequest, from: NodeId, out: &mut Out) {
        let check = RequestCheck::new(&self.exec, self.crypto.as_ref(), self.signs(), self.cfg.max_batch);
        match self.pending.admit(now, req, &check, 0) {
            Admitted::Added => self.maybe_propose(now, out),
            // Already pending (a retransmission, a forward, a STOP) or executed.
            Admitted::Known | Admitted::Ignored => {}
            Admitted::Refused(why) => out.reject(from, why),
        }
    }

    /// FORWARDED from a replica (Alg. 2 l.18).
    pub(crate) fn on_forwarded(&mut self, now: Time, r: ReplicaId, requests: Vec<SignedRequest>, out: &mut Out) {
        if requests.len() > self.cfg.max_batch.max(1) * 4 {
            out.reject(NodeId::Replica(r), "oversized FORWARDED");
            return;
        }
        for req in requests {
            self.request_received(now, req, NodeId::Replica(r), out);
        }
    }

    /// Drop pending requests that execution made stale.
    pub(crate) fn prune_pending(&mut self) {
        let table = self.exec.table();
        self.pending.prune(table);
    }

    /// The request timer (one periodic tick checks every pending request).
    pub(crate) fn on_request_tick(&mut self, now: Time, out: &mut Out) {
        out.set_timer(Timer::RequestTick, self.tick_interval());
        self.asked.clear();
        if self.transfer.is_some() {
            return;
        }
        // Messages for later instances and no progress for a whole tick: we are behind.
        let stuck = self.next() == self.next_at_last_tick;
        self.next_at_last_tick = self.next();
        if stuck && (!self.future.is_empty() || !self.decided.is_empty()) {
            out.broadcast(Msg::DecisionRequest { instance: self.next(), regency: self.creg });
        }
        if stuck && !self.stopped && self.nreg == self.creg {
            self.repeat_votes(out);
        }
        let timeout = self.timeout();
        if self.stopped && self.nreg == self.creg {
            // Installed, waiting for SYNC: repeat our STOP so replicas that missed the change
            // (partitioned, lossy) can join it, and our STOPDATA in case it was lost.
            out.broadcast(Msg::Stop { regency: self.creg, requests: Vec::new() });
            let leader = self.leader_of(self.creg);
            if let Some(sd) = self.my_stopdata.clone().filter(|_| leader != self.id) {
                out.send(leader, Msg::StopData(sd));
            }
        }
        if self.nreg > self.creg {
            // Waiting for others to join our STOP: repeat it (messages may be lost).
            let requests = self.pending.oldest(64);
            out.broadcast(Msg::Stop { regency: self.nreg, requests });
            if stuck {
                out.broadcast(Msg::DecisionRequest { instance: self.next(), regency: self.creg });
            }
            return;
        }
        let mut first = Vec::new();
        let mut second = Vec::new();
        let mut any_expired = false;
        for p in self.pending.values_mut() {
            if now.since(p.since) >= timeout {
                any_expired = true;
                p.since = now;
                if p.tag == 0 {
                    p.tag = 1;
                    first.push(p.req.clone());
                } else {
                    second.push(p.req.clone());
                }
            }
        }
        if any_expired {
            // Maybe we are the one behind: ask everybody for the next instance.
            out.broadcast(Msg::DecisionRequest { instance: self.next(), regency: self.creg });
        }
        if !first.is_empty() {
            first.sort_by_key(|r| (r.req.client, r.req.seq));
            out.broadcast(Msg::Forwarded { requests: first });
        }
        if !second.is_empty() {
            second.sort_by_key(|r| (r.req.client, r.req.seq));
            self.start_regency_change(now, second, out);
        }
    }

    /// No progress for a tick: repeat our part of the running instance, in case
    /// messages were lost (receivers ignore exact repeats).
    fn repeat_votes(&mut self, out: &mut Out) {
        let (regency, instance) = (self.creg, self.next());
        if let Some(v) = self.inst.written {
            if self.is_leader() {
                if let Some(batch) = self.inst.batches.get(&v) {
                    out.broadcast(Msg::Propose { regency, instance, batch: batch.clone() });
                }
            }
            if self.bft() {
                out.broadcast(Msg::Write { regency, instance, value: v });
            }
        }
        if let Some((value, sig)) = self.inst.my_accept.clone() {
            out.broadcast(Msg::Accept { regency, instance, value, sig });
        }
    }
}

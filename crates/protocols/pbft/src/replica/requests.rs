//! Client requests: REQUEST (a backup relays it to the primary), FORWARD,
//! the request timers through which backups suspect the primary, batching
//! at the primary, and what makes a primary's batch valid.

use super::{Out, Pending, Replica};
use crate::messages::{Batch, Msg, Reply};
use crate::Timer;
use quorate_core::crypto::Digest;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::membership::FaultModel;
use quorate_core::request::{Freshness, RequestCheck, SignedRequest};
use quorate_core::time::Time;
use quorate_engines::instance::Instance;
use quorate_engines::pbft::{Actions, Validity};

/// The validity of a primary's batch: non-empty, and its requests fit.
pub(crate) struct BatchValidity<'a>(pub RequestCheck<'a>);

impl Validity<Batch> for BatchValidity<'_> {
    fn check(&self, _seq: u64, batch: &Batch) -> Result<(), &'static str> {
        if batch.requests.is_empty() {
            return Err("empty batch");
        }
        self.0.batch(&batch.requests)
    }
}

impl Replica {
    /// Whether clients sign requests in this deployment.
    pub(crate) fn signs(&self) -> bool {
        self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests
    }

    pub(crate) fn request_check(&self) -> RequestCheck<'_> {
        RequestCheck {
            exec: &self.exec,
            crypto: self.crypto.as_ref(),
            check_signatures: self.signs(),
            max_batch: self.cfg.max_batch,
        }
    }

    pub(crate) fn tick_interval(&self) -> std::time::Duration {
        (self.cfg.request_timeout / 4).max(std::time::Duration::from_millis(1))
    }

    /// REQUEST from a client: answer a retransmission of an executed
    /// request; otherwise keep it, and as a backup relay it to the primary.
    pub(crate) fn on_request(&mut self, now: Time, c: ClientId, req: SignedRequest, out: &mut Out) {
        if req.req.client != c {
            out.reject(NodeId::Client(c), "request names another client");
            return;
        }
        match self.exec.table().freshness(c, req.req.seq) {
            Freshness::Repeat(result) => {
                if self.exec.table().last_op(c) != Some(Digest::of(&req.req.op)) {
                    out.reject(NodeId::Client(c), "sequence number reused for another operation");
                } else {
                    self.reply(c, req.req.seq, result, out);
                }
                return;
            }
            Freshness::Stale => {
                out.reject(NodeId::Client(c), "stale sequence number");
                return;
            }
            Freshness::New => {}
        }
        if self.pending.get(&c).is_some_and(|p| p.req.req.seq == req.req.seq && p.req.req.op != req.req.op) {
            out.reject(NodeId::Client(c), "sequence number reused for another operation");
            return;
        }
        if !self.admit(now, req.clone(), NodeId::Client(c), out) {
            return;
        }
        if self.engine.is_primary() {
            self.maybe_propose(now, out);
        } else if self.engine.active() {
            out.send(self.engine.primary(), Msg::Forward(vec![req]));
        }
    }

    /// Keep a request for ordering if it is new and valid; true if it is pending.
    pub(crate) fn admit(&mut self, now: Time, req: SignedRequest, from: NodeId, out: &mut Out) -> bool {
        let c = req.req.client;
        if let Some(p) = self.pending.get(&c) {
            if p.req.req.seq > req.req.seq {
                return false;
            }
            if p.req == req {
                return true;
            }
        }
        if !matches!(self.exec.table().freshness(c, req.req.seq), Freshness::New) {
            return false;
        }
        if let Err(why) = self.request_check().request(&req) {
            out.reject(from, why);
            return false;
        }
        if !self.pending.contains_key(&c) && self.pending.len() >= self.cfg.max_pending {
            out.reject(from, "too many pending requests");
            return false;
        }
        self.arrivals += 1;
        self.pending.insert(c, Pending { req, since: now, order: self.arrivals });
        true
    }

    /// FORWARD from a backup: requests for the primary (kept by anyone: the
    /// sender's primary may be ours next).
    pub(crate) fn on_forward(&mut self, now: Time, r: ReplicaId, reqs: Vec<SignedRequest>, out: &mut Out) {
        if reqs.len() > self.cfg.max_batch.saturating_mul(4).max(64) {
            out.reject(NodeId::Replica(r), "oversized FORWARD");
            return;
        }
        for req in reqs {
            self.admit(now, req, NodeId::Replica(r), out);
        }
        self.maybe_propose(now, out);
    }

    /// Primary: propose batches of pending requests while the instance has room.
    pub(crate) fn maybe_propose(&mut self, now: Time, out: &mut Out) {
        while self.engine.can_propose() {
            let mut cands: Vec<&Pending> =
                self.pending.values().filter(|p| !self.proposed.contains(&(p.req.req.client, p.req.req.seq))).collect();
            if cands.is_empty() {
                return;
            }
            cands.sort_by_key(|p| p.order);
            let requests: Vec<SignedRequest> =
                cands.into_iter().take(self.cfg.max_batch).map(|p| p.req.clone()).collect();
            for r in &requests {
                self.proposed.insert((r.req.client, r.req.seq));
            }
            let batch = Batch { timestamp: now.as_nanos(), requests };
            let mut acts = Actions::new();
            if self.engine.propose(batch, &mut acts).is_err() {
                return;
            }
            // Proposing decides nothing by itself unless n = 1; carry out the rest.
            self.carry_out_no_propose(now, acts, out);
        }
    }

    /// The request timer, checked every quarter of the timeout: a backup
    /// whose request waits a timeout suspects the primary.
    pub(crate) fn on_request_tick(&mut self, now: Time, out: &mut Out) {
        out.set_timer(Timer::RequestTick, self.tick_interval());
        // A replica catching up holds requests the others executed long ago:
        // no reason to suspect the primary.
        if !self.engine.active() || self.engine.is_primary() || self.transfer.is_some() || self.engine.behind() {
            return;
        }
        let timeout = self.cfg.request_timeout.saturating_mul(self.engine.backoff());
        let expired = self.pending.values().any(|p| now.since(p.since) >= timeout);
        if expired {
            out.event(quorate_core::machine::Event::Note("request timer expired: suspecting the primary".into()));
            self.with_engine(now, out, |e, a| e.start_view_change(a));
        }
    }

    /// A view was installed: restart the request timers, relay our pending
    /// requests to the new primary.
    pub(crate) fn view_changed(&mut self, now: Time, view: u64, primary: ReplicaId, out: &mut Out) {
        out.event(quorate_core::machine::Event::ViewChanged { view, leader: primary });
        self.proposed.clear();
        for p in self.pending.values_mut() {
            p.since = now;
        }
        if primary != self.id && !self.pending.is_empty() {
            let mut v: Vec<&Pending> = self.pending.values().collect();
            v.sort_by_key(|p| p.order);
            let reqs: Vec<SignedRequest> = v.into_iter().map(|p| p.req.clone()).collect();
            for chunk in reqs.chunks(self.cfg.max_batch.max(1)) {
                out.send(primary, Msg::Forward(chunk.to_vec()));
            }
        }
    }

    /// Drop pending requests that were executed.
    pub(crate) fn prune_pending(&mut self) {
        let table = self.exec.table();
        self.pending.retain(|c, p| p.req.req.seq > table.last_seq(*c));
        self.proposed.retain(|(c, s)| *s > table.last_seq(*c));
    }

    /// Answer a client.
    pub(crate) fn reply(&self, c: ClientId, seq: u64, result: quorate_core::Bytes, out: &mut Out) {
        let view = self.engine.view();
        let mac = self.crypto.mac(NodeId::Client(c), &Reply::mac_bytes(c, view, seq, &result));
        out.send(c, Msg::Reply(Reply { view, seq, result, mac }));
    }
}

//! Client requests: REQUEST (a backup relays it to the primary), FORWARD,
//! the request timers through which backups suspect the primary, batching
//! at the primary, and what makes a primary's batch valid.

use super::{Out, Replica};
use crate::messages::{Batch, Msg, Reply};
use crate::Timer;
use quorate_core::admission::{Admitted, Arrival};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::membership::FaultModel;
use quorate_core::request::{RequestCheck, SignedRequest};
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

    pub(crate) fn tick_interval(&self) -> std::time::Duration {
        (self.cfg.request_timeout / 4).max(std::time::Duration::from_millis(1))
    }

    /// REQUEST from a client: answer a retransmission of an executed
    /// request; otherwise keep it, and as a backup relay it to the primary.
    pub(crate) fn on_request(&mut self, now: Time, c: ClientId, req: SignedRequest, out: &mut Out) {
        match self.pending.arrival(self.exec.table(), c, &req) {
            Arrival::New => {}
            Arrival::Executed(result) => return self.reply(c, req.req.seq, result, out),
            Arrival::Refused(why) => return out.reject(NodeId::Client(c), why),
        }
        if !self.admit(now, req.clone(), NodeId::Client(c), out) {
            return;
        }
        if self.engine.is_primary() {
            self.maybe_propose(now, out);
        } else if self.engine.active() {
            // A retransmission too: the primary may have missed it.
            out.send(self.engine.primary(), Msg::Forward(vec![req]));
        }
    }

    /// Keep a request for ordering if it is new and valid; true if it is pending.
    pub(crate) fn admit(&mut self, now: Time, req: SignedRequest, from: NodeId, out: &mut Out) -> bool {
        let check = RequestCheck::new(&self.exec, self.crypto.as_ref(), self.signs(), self.cfg.max_batch);
        let admitted = self.pending.admit(now, req, &check, ());
        if let Admitted::Refused(why) = admitted {
            out.reject(from, why);
        }
        admitted.pending()
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
            let requests: Vec<SignedRequest> = self
                .pending
                .oldest_first()
                .filter(|p| !self.proposed.contains(&(p.req.req.client, p.req.req.seq)))
                .take(self.cfg.max_batch)
                .map(|p| p.req.clone())
                .collect();
            if requests.is_empty() {
                return;
            }
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
        if self.pending.any_expired(now, timeout) {
            out.event(quorate_core::machine::Event::Note("request timer expired: suspecting the primary".into()));
            self.with_engine(now, out, |e, a| e.start_view_change(a));
        }
    }

    /// A view was installed: restart the request timers, relay our pending
    /// requests to the new primary.
    pub(crate) fn view_changed(&mut self, now: Time, view: u64, primary: ReplicaId, out: &mut Out) {
        out.event(quorate_core::machine::Event::ViewChanged { view, leader: primary });
        self.proposed.clear();
        self.pending.restart_timers(now);
        if primary != self.id && !self.pending.is_empty() {
            let reqs = self.pending.oldest(usize::MAX);
            for chunk in reqs.chunks(self.cfg.max_batch.max(1)) {
                out.send(primary, Msg::Forward(chunk.to_vec()));
            }
        }
    }

    /// Drop pending requests that were executed.
    pub(crate) fn prune_pending(&mut self) {
        let table = self.exec.table();
        self.pending.prune(table);
        self.proposed.retain(|(c, s)| *s > table.last_seq(*c));
    }

    /// Answer a client.
    pub(crate) fn reply(&self, c: ClientId, seq: u64, result: quorate_core::Bytes, out: &mut Out) {
        let view = self.engine.view();
        let mac = self.crypto.mac(NodeId::Client(c), &Reply::mac_bytes(c, view, seq, &result));
        out.send(c, Msg::Reply(Reply { view, seq, result, mac }));
    }
}

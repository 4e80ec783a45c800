//! Client requests: REQUEST (kept, and relayed to its D-instance's
//! coordinator), FORWARD, D-batches at a coordinator (including no-ops for
//! slots the O-instance ordered but nobody disseminated, §3.2.5), what
//! makes a coordinator's D-batch valid, and the timers through which
//! replicas suspect a coordinator or the O-primary.

use super::{Out, Pending, Probation, Replica};
use crate::messages::{Assign, DBatch, Msg};
use crate::{Flavor, Timer};
use quorate_core::admission::{Admitted, Arrival};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::Event;
use quorate_core::membership::FaultModel;
use quorate_core::request::{RequestCheck, SignedRequest};
use quorate_core::time::Time;
use quorate_engines::instance::{Actions, Instance, InstanceMsg, Validity};
use std::collections::HashSet;
use std::sync::Arc;

/// The validity of a coordinator's D-batch: its requests fit (PBFT's
/// rules); an empty batch is the no-op a new coordinator fills ordered
/// slots with.
pub(crate) struct DBatchValidity<'a>(pub RequestCheck<'a>);

impl Validity<DBatch> for DBatchValidity<'_> {
    fn check(&self, _seq: u64, batch: &DBatch) -> Result<(), &'static str> {
        self.0.batch(&batch.requests)
    }
}

impl<F: Flavor> Replica<F> {
    /// Whether clients sign requests in this deployment.
    pub(crate) fn signs(&self) -> bool {
        self.m.model() == FaultModel::Byzantine && self.cfg.sign_requests
    }

    pub(crate) fn tick_interval(&self) -> std::time::Duration {
        (self.cfg.payload_timeout.min(self.cfg.request_timeout) / 4).max(std::time::Duration::from_millis(1))
    }

    /// The D-instance of client `c`'s requests: the one its latest executed
    /// ASSIGN names, else `c mod n`. Only requests that come through that
    /// instance execute, so a client that sends one request to several
    /// coordinators gains nothing (§3.2.6).
    pub(crate) fn instance_of(&self, c: ClientId) -> u32 {
        let base = match self.progress.assigned.get(&c) {
            Some((i, _)) => *i,
            None => (c.0 % self.m.n() as u64) as u32,
        };
        self.effective_instance(c, base)
    }

    /// ASSIGN from a client (or relayed by a replica): kept until executed,
    /// relayed to the O-primary, which orders it; answered at once if
    /// executed already.
    pub(crate) fn on_assign(&mut self, now: Time, from: NodeId, a: Assign, out: &mut Out<F>) {
        let from_client = from == NodeId::Client(a.client);
        if !(from_client || matches!(from, NodeId::Replica(_))) || a.instance as usize >= self.d.len() {
            return out.reject(from, "malformed ASSIGN");
        }
        if self.signs() && !a.verify(self.crypto.as_ref()) {
            return out.reject(from, "bad ASSIGN signature");
        }
        if let Some((instance, nonce)) = self.progress.assigned.get(&a.client).copied() {
            if nonce >= a.nonce {
                if from_client && nonce == a.nonce {
                    self.ack_assign(a.client, nonce, instance, out);
                }
                return;
            }
        }
        if self.to_assign.get(&a.client).is_some_and(|q| q.nonce >= a.nonce) {
            return;
        }
        if !self.to_assign.contains_key(&a.client) && self.to_assign.len() >= self.cfg.max_pending {
            return out.reject(from, "too many pending ASSIGNs");
        }
        self.to_assign.insert(a.client, a.clone());
        if from_client && !self.o.is_primary() && self.o.active() {
            out.send(self.o.primary(), Msg::Assign(a));
        }
        self.maybe_order(now, out);
    }

    /// Tell client `c` its ASSIGN is executed.
    pub(crate) fn ack_assign(&self, c: ClientId, nonce: u64, instance: u32, out: &mut Out<F>) {
        let mac = self.crypto.mac(NodeId::Client(c), &crate::messages::assigned_mac_bytes(c, nonce, instance));
        out.send(c, Msg::Assigned { nonce, instance, mac });
    }

    /// REQUEST from a client: answer a retransmission of an executed
    /// request; otherwise keep it, propose it if we coordinate its
    /// instance, or relay it to the coordinator.
    pub(crate) fn on_request(&mut self, now: Time, c: ClientId, req: SignedRequest, out: &mut Out<F>) {
        match self.pending.arrival(self.exec.table(), c, &req) {
            Arrival::New => {}
            Arrival::Executed(result) => return self.answer_again(c, req.req.seq, result, out),
            Arrival::Refused(why) => return out.reject(NodeId::Client(c), why),
        }
        let i = self.instance_of(c);
        if !self.admit(now, req.clone(), NodeId::Client(c), out) {
            return;
        }
        let d = &self.d[i as usize];
        if !d.is_primary() && F::answers(&self.keys).is_some() {
            // The client came to us itself (it retransmits or spreads):
            // Destiny answers it directly too, not only through the collector.
            self.direct.insert((c, req.req.seq));
        }
        if d.is_primary() {
            self.maybe_propose(now, out);
        } else if d.active() && !self.in_proposal.contains(&(c, req.req.seq)) {
            out.send(d.primary(), Msg::Forward { instance: i, requests: vec![req] });
        }
    }

    /// Keep a request for ordering if it is new and valid; true if it is pending.
    pub(crate) fn admit(&mut self, now: Time, req: SignedRequest, from: NodeId, out: &mut Out<F>) -> bool {
        let instance = self.instance_of(req.req.client);
        let check = RequestCheck::new(&self.exec, self.crypto.as_ref(), self.signs(), self.cfg.max_batch);
        let admitted = self.pending.admit(now, req, &check, instance);
        match admitted {
            Admitted::Added => self.mark_fresh(instance),
            Admitted::Refused(why) => out.reject(from, why),
            Admitted::Known | Admitted::Ignored => {}
        }
        admitted.pending()
    }

    /// FORWARD from a replica: requests for an instance we coordinate (kept
    /// by anyone: we may coordinate it next).
    pub(crate) fn on_forward(&mut self, now: Time, r: ReplicaId, i: u32, reqs: Vec<SignedRequest>, out: &mut Out<F>) {
        if i as usize >= self.d.len() || reqs.len() > self.cfg.max_batch.saturating_mul(4).max(64) {
            out.reject(NodeId::Replica(r), "malformed FORWARD");
            return;
        }
        for req in reqs {
            if self.instance_of(req.req.client) == i {
                self.admit(now, req, NodeId::Replica(r), out);
            }
        }
        self.maybe_propose(now, out);
    }

    /// A request of D-instance `i` may be ready for a proposal.
    pub(crate) fn mark_fresh(&mut self, i: u32) {
        if let Some(f) = self.fresh.get_mut(i as usize) {
            *f = true;
        }
    }

    /// The D-instances we coordinate now (cached until a view change or a
    /// state installation).
    fn coordinated(&mut self) -> Vec<u32> {
        if self.coordinating.is_none() {
            let mine = (0..self.d.len() as u32).filter(|i| self.d[*i as usize].is_primary()).collect();
            self.coordinating = Some(mine);
        }
        self.coordinating.clone().unwrap_or_default()
    }

    /// Coordinator: fill the slots the O-instance ordered that nobody
    /// disseminated with no-ops, in every instance we coordinate; then
    /// propose D-batches of pending requests, only in our own instance
    /// (§3.2.5: "a replica is allowed to propose new commands using only
    /// its D-instance"; the clients of one we took over move by handover).
    pub(crate) fn maybe_propose(&mut self, now: Time, out: &mut Out<F>) {
        if self.replaying {
            return;
        }
        for i in self.coordinated() {
            if !self.d[i as usize].is_primary() {
                continue;
            }
            self.fill_noops(now, i, out);
            while i == self.id.0 && (self.fresh[i as usize] || self.rr_behind(i)) && self.d[i as usize].can_propose() {
                let mut cands: Vec<&Pending> = self
                    .pending
                    .values()
                    .filter(|p| p.tag == i)
                    .filter(|p| !self.proposed.contains(&(p.req.req.client, p.req.req.seq)))
                    .filter(|p| !self.in_proposal.contains(&(p.req.req.client, p.req.req.seq)))
                    .collect();
                let d = &self.d[i as usize];
                let undecided = d.next_proposal().saturating_sub(d.last_decided() + 1);
                if cands.is_empty() {
                    self.fresh[i as usize] = false;
                    // Round-robin delivery: the round needs our slot; an
                    // empty batch, at the pace of any partial one.
                    if self.rr_behind(i) && undecided < self.cfg.partial_in_flight {
                        let empty = DBatch { timestamp: now.as_nanos(), requests: Arc::from([]) };
                        if self.propose_d(now, i, empty, out) {
                            continue;
                        }
                    }
                    break;
                }
                let rest = cands.len() > self.cfg.max_batch;
                if !rest && cands.len() < self.cfg.max_batch && undecided >= self.cfg.partial_in_flight {
                    // A partial batch waits for the slot ahead (fresh stays set).
                    break;
                }
                cands.sort_by_key(|p| p.order);
                let requests: Vec<SignedRequest> =
                    cands.into_iter().take(self.cfg.max_batch).map(|p| p.req.clone()).collect();
                for r in &requests {
                    self.proposed.insert((r.req.client, r.req.seq));
                }
                if !self.propose_d(now, i, DBatch { timestamp: now.as_nanos(), requests: requests.into() }, out) {
                    break;
                }
                if !rest {
                    self.fresh[i as usize] = false;
                }
            }
        }
    }

    /// Propose `batch` in D-instance `i` (we coordinate it); false if it had no room.
    pub(crate) fn propose_d(&mut self, now: Time, i: u32, batch: DBatch, out: &mut Out<F>) -> bool {
        // §3.2.5: new commands only in our own D-instance; in one we took
        // over, no-ops only (decision 0009, "Own instance, handovers").
        quorate_core::invariant!(
            batch.requests.is_empty() || i == self.id.0,
            "dqbft: proposes client requests in D-instance {i}, not its own"
        );
        let mut acts = Actions::new();
        let Ok(seq) = self.d[i as usize].propose(batch.clone(), &mut acts) else { return false };
        for r in batch.requests.iter() {
            self.in_proposal.insert((r.req.client, r.req.seq));
        }
        self.carry_out_d_no_propose(now, i, acts, out);
        self.seen_d_proposal(now, crate::messages::DRef { instance: i, seq }, out);
        true
    }

    /// A new coordinator proposes a no-op for each slot of its instance that
    /// the O-instance ordered and that holds nothing here (§3.2.5: "the
    /// no-op is proposed for all sequence numbers that do not have a command
    /// associated but were committed in the O-instance").
    fn fill_noops(&mut self, now: Time, i: u32, out: &mut Out<F>) {
        if !self.d[i as usize].can_propose() {
            return;
        }
        // Ordered, or named by an O-PrePrepare we hold back for want of the
        // slot: either way nobody holds it but us, and a no-op frees both.
        let parked = self.parked.iter().filter_map(|(_, m, _)| m.proposal().map(|(_, _, value)| value));
        let batches = self.olog.values().flatten().chain(parked);
        let wanted = if self.round_robin() {
            // Every position up to a batch's last is ordered; an instance
            // we took over keeps up with the round (its owner's clients
            // moved to other instances, so it carries no-ops only).
            let ordered = batches.map(|b| self.rr_implied_seq(self.rr_frontier(b), i)).max().unwrap_or(0);
            if i == self.id.0 {
                ordered
            } else {
                ordered.max(self.rr_high)
            }
        } else {
            batches.flat_map(|b| b.refs.iter()).filter(|r| r.instance == i).map(|r| r.seq).max().unwrap_or(0)
        };
        while self.d[i as usize].next_proposal() <= wanted && self.d[i as usize].can_propose() {
            if !self.propose_d(now, i, DBatch { timestamp: now.as_nanos(), requests: Arc::from([]) }, out) {
                return;
            }
        }
    }

    /// The request and payload timers, checked every quarter of the shorter
    /// timeout. A request waiting `request_timeout` suspects its instance's
    /// coordinator, or the O-primary if it was disseminated (its D-slot
    /// decided: a proposal alone may still need the coordinator's view
    /// change, e.g. when a replica left that view alone); an ordered slot
    /// whose payload waits `payload_timeout` suspects its coordinator.
    pub(crate) fn on_request_tick(&mut self, now: Time, out: &mut Out<F>) {
        out.set_timer(Timer::RequestTick, self.tick_interval());
        if self.transfer.is_some() || self.o.behind() {
            return;
        }
        self.ask_for_missing_slots(now, out);
        self.reinstate_tick(now, out);
        let rr_stalled = self.round_robin() && self.rr_stall_tick(now, out);
        if let Some((r, since)) = self.waiting {
            let d = &self.d[r.instance as usize];
            let timeout = self.cfg.payload_timeout.saturating_mul(d.backoff());
            if d.active() && !d.is_primary() && !d.behind() && now.since(since) >= timeout {
                out.event(Event::Note(format!("payload of {r:?} late: suspecting D{}'s coordinator", r.instance)));
                self.waiting = Some((r, now));
                self.with_d(now, r.instance, out, |e, a| e.start_view_change(a));
            }
        }
        let mut suspects: Vec<u32> = Vec::new();
        let mut suspect_o = false;
        for p in self.pending.values() {
            let key = (p.req.req.client, p.req.req.seq);
            // Taken over: an installed view of another coordinator, whose
            // handover the O-primary now owes. While the view change is
            // under way, `primary()` names the next view's coordinator
            // already, but the stall is still the instance's (its view-change
            // timer runs); blaming the O-primary then replaced a correct one
            // each time replicas view-changed a silent coordinator's instance.
            let d = &self.d[p.tag as usize];
            let taken_over = d.active() && d.primary().0 != p.tag;
            if self.disseminated.contains(&key) || taken_over {
                // Taken over: its clients wait for the O-primary to order the handover.
                // A stalled round-robin order is its slot's coordinator's doing.
                let timeout = self.cfg.request_timeout.saturating_mul(self.o.backoff());
                suspect_o |= now.since(p.since) >= timeout && (!rr_stalled || taken_over);
            } else {
                let d = &self.d[p.tag as usize];
                let timeout = self.cfg.request_timeout.saturating_mul(d.backoff());
                if now.since(p.since) >= timeout && !suspects.contains(&p.tag) {
                    suspects.push(p.tag);
                }
            }
        }
        for i in suspects {
            let d = &self.d[i as usize];
            if d.active() && !d.is_primary() && !d.behind() {
                out.event(Event::Note(format!("request timer expired: suspecting D{i}'s coordinator")));
                self.with_d(now, i, out, |e, a| e.start_view_change(a));
            }
        }
        if self.parked_too_long(now) {
            out.event(Event::Note("an O-PrePrepare names D-slots nobody disseminated".into()));
            suspect_o = true;
        }
        if suspect_o && self.o.active() && !self.o.is_primary() {
            out.event(Event::Note("the O-primary is late or orders what nobody disseminated: suspecting it".into()));
            self.with_o(now, out, |e, a| e.start_view_change(a));
        }
    }

    /// The D-slots that parked O-PrePrepares or execution have waited for
    /// two retransmission periods and that their instance has not decided
    /// here: its peers may have decided them while we were cut off, and a
    /// quiet instance never says so by itself. (Not sooner: with ordering
    /// ahead of dissemination, execution often waits for a slot on its way,
    /// and every peer that decided it would send the value back.)
    fn ask_for_missing_slots(&mut self, now: Time, out: &mut Out<F>) {
        let patience = self.cfg.status_interval.saturating_mul(2);
        let waited = |since: Time| now.since(since) >= patience;
        let mut behind: HashSet<u32> = HashSet::new();
        let parked_refs = self
            .parked
            .iter()
            .filter(|(_, _, since)| waited(*since))
            .filter_map(|(_, m, _)| m.proposal().map(|(_, _, value)| value.refs.iter()));
        let waiting = self.waiting.as_ref().filter(|(_, since)| waited(*since)).map(|(r, _)| r);
        for r in parked_refs.flatten().chain(waiting) {
            if r.seq > self.d[r.instance as usize].last_decided() && !self.is_executed(*r) {
                behind.insert(r.instance);
            }
        }
        for i in behind {
            self.with_d(now, i, out, |e, a| e.ask_peers(a));
        }
    }

    /// D-instance `i` installed `view`: restart its requests' timers, relay
    /// them to the new coordinator, put the instance on probation.
    pub(crate) fn d_view_changed(&mut self, now: Time, i: u32, view: u64, primary: ReplicaId, out: &mut Out<F>) {
        out.event(Event::Note(format!("D{i}: view {view} installed, coordinator {primary}")));
        self.send_view_notice(now, i, view, out);
        self.coordinating = None;
        self.mark_fresh(i);
        let p = &mut self.probation[i as usize];
        p.view_changes += 1;
        let length = self.cfg.probation_base.saturating_mul(1u64 << (p.view_changes - 1).min(16));
        *p =
            Probation { view_changes: p.view_changes, until: self.d[i as usize].last_decided().saturating_add(length) };
        let moved: Vec<(ClientId, u64)> =
            self.proposed.iter().copied().filter(|(c, _)| self.instance_of(*c) == i).collect();
        for k in moved {
            self.proposed.remove(&k);
        }
        // Proposals of the old view that were not decided may be gone: their
        // requests go to the new coordinator again.
        let undecided: Vec<(ClientId, u64)> = self
            .in_proposal
            .iter()
            .copied()
            .filter(|k| self.instance_of(k.0) == i && !self.disseminated.contains(k))
            .collect();
        for k in undecided {
            self.in_proposal.remove(&k);
        }
        if let Some((r, _)) = self.waiting.filter(|(r, _)| r.instance == i) {
            self.waiting = Some((r, now));
        }
        let reqs: Vec<SignedRequest> =
            self.pending.oldest_first().filter(|p| p.tag == i).map(|p| p.req.clone()).collect();
        for p in self.pending.values_mut().filter(|p| p.tag == i) {
            p.since = now;
        }
        if primary != self.id {
            for chunk in reqs.chunks(self.cfg.max_batch.max(1)) {
                out.send(primary, Msg::Forward { instance: i, requests: chunk.to_vec() });
            }
        }
    }

    /// Whether D-instance `i` is on probation (its slots are ordered only
    /// once disseminated).
    pub(crate) fn on_probation(&self, i: u32) -> bool {
        self.d[i as usize].last_decided() < self.probation[i as usize].until
    }

    /// Drop what is known about requests `done` once they are executed
    /// (the part of [`Replica::prune_pending`] that one execution pass needs).
    pub(crate) fn prune_executed(&mut self, done: &[(ClientId, u64)]) {
        for &(c, seq) in done {
            if seq > self.exec.table().last_seq(c) {
                continue;
            }
            self.pending.remove_up_to(c, seq);
            self.proposed.remove(&(c, seq));
            self.in_proposal.remove(&(c, seq));
            self.disseminated.remove(&(c, seq));
        }
    }

    /// Drop pending requests that were executed.
    pub(crate) fn prune_pending(&mut self) {
        let table = self.exec.table();
        self.pending.prune(table);
        self.proposed.retain(|(c, s)| *s > table.last_seq(*c));
        self.in_proposal.retain(|(c, s)| *s > table.last_seq(*c));
        self.disseminated.retain(|(c, s)| *s > table.last_seq(*c));
        self.direct.retain(|(c, s)| *s >= table.last_seq(*c));
        // Answered slots go after a while; shares for a slot executed here
        // without our entry (we were not its collector then) go at once.
        let oldest = self.executed_o.saturating_sub(4096);
        let progress = &self.progress;
        self.collecting.retain(|r, e| match e.order {
            Some(o) => o > oldest,
            None => {
                r.seq > progress.prefix[r.instance as usize] && !progress.above[r.instance as usize].contains(&r.seq)
            }
        });
    }
}

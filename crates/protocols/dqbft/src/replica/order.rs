//! Dissemination meets ordering: D-instance messages (and flooding of the
//! D-PrePrepares we accept, §3.2.4), the O-primary's ordering of D-slots —
//! as soon as it accepts their D-PrePrepare (optimistic), or once they are
//! decided while their instance is on probation (pessimistic) — and what
//! makes an O-batch valid at a backup, which waits (parks the
//! O-PrePrepare) until it holds what the mode requires (Fig. 5).

use super::requests::DBatchValidity;
use super::{Out, Replica};
use crate::config::Flood;
use crate::messages::{Assign, DBatch, DRef, Msg, OBatch};
use crate::{DMsg, Flavor, OMsg};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::Event;
use quorate_core::request::RequestCheck;
use quorate_core::time::Time;
use quorate_engines::instance::{Actions, Instance, InstanceMsg, Validity};
use rand::seq::SliceRandom;
use std::collections::HashSet;

/// Most O-PrePrepares a backup parks while it waits for their D-slots.
const MAX_PARKED: usize = 256;

/// Why an O-batch is not acceptable (yet).
enum Refusal {
    /// Malformed: refused for good.
    Invalid(&'static str),
    /// A D-slot we do not hold as the mode requires yet: wait for it.
    NotYet,
}

impl<F: Flavor> Replica<F> {
    /// Whether D-slot `r` is executed here.
    pub(crate) fn is_executed(&self, r: DRef) -> bool {
        let i = r.instance as usize;
        r.seq <= self.progress.prefix[i] || self.progress.above[i].contains(&r.seq)
    }

    /// Whether D-slot `r` is decided here (its payload is known or executed).
    pub(crate) fn decided(&self, r: DRef) -> bool {
        r.seq <= self.d[r.instance as usize].last_decided() || self.is_executed(r)
    }

    /// An O-batch at a backup: well-formed, within the D-instances' windows,
    /// and each slot held as its instance's mode requires: its D-PrePrepare
    /// accepted (optimistic) or decided (on probation).
    fn check_order(&self, batch: &OBatch) -> Result<(), Refusal> {
        if (batch.refs.is_empty() && batch.assigns.is_empty() && batch.handovers.is_empty())
            || batch.refs.len() > self.cfg.max_refs
            || batch.assigns.len() > self.cfg.max_assigns
        {
            return Err(Refusal::Invalid("O-batch empty or too large"));
        }
        let mut clients = HashSet::with_capacity(batch.assigns.len());
        for a in &batch.assigns {
            if a.instance as usize >= self.d.len() || !clients.insert(a.client) {
                return Err(Refusal::Invalid("O-batch with a bad or repeated ASSIGN"));
            }
            if self.signs() && !a.verify(self.crypto.as_ref()) {
                return Err(Refusal::Invalid("O-batch with a badly signed ASSIGN"));
            }
        }
        self.check_handovers(&batch.handovers).map_err(Refusal::Invalid)?;
        if self.round_robin() && !self.rr_consecutive(batch) {
            return Err(Refusal::Invalid("O-batch with slots out of the round-robin order"));
        }
        let mut seen = HashSet::with_capacity(batch.refs.len());
        for r in &batch.refs {
            let Some(d) = self.d.get(r.instance as usize) else {
                return Err(Refusal::Invalid("O-batch names an unknown D-instance"));
            };
            if r.seq == 0 || !seen.insert(*r) {
                return Err(Refusal::Invalid("O-batch with a bad or repeated D-slot"));
            }
            let limit = d.stable_checkpoint().0.saturating_add(d.window().saturating_mul(2));
            if r.seq > limit {
                return Err(Refusal::Invalid("O-batch names a D-slot far beyond its instance's window"));
            }
            let held = if self.on_probation(r.instance) { self.decided(*r) } else { d.has_proposal(r.seq) };
            if !held && !self.is_executed(*r) {
                return Err(Refusal::NotYet);
            }
        }
        Ok(())
    }

    /// A message of D-instance `i`.
    pub(crate) fn on_d_message(&mut self, now: Time, from: ReplicaId, i: u32, msg: DMsg<F>, out: &mut Out<F>) {
        if i as usize >= self.d.len() {
            out.reject(NodeId::Replica(from), "unknown D-instance");
            return;
        }
        let proposal = msg.proposal().map(|(_, seq, value)| (seq, value.clone()));
        let check = RequestCheck::new(&self.exec, self.crypto.as_ref(), self.signs(), self.cfg.max_batch);
        let validity = DBatchValidity(check);
        let mut acts = Actions::new();
        self.d[i as usize].on_message(from, msg, &validity, &mut acts);
        self.carry_out_d(now, i, acts, out);
        if let Some((seq, batch)) = proposal {
            let r = DRef { instance: i, seq };
            let accepted = self.d[i as usize].value_at(seq).is_some_and(|v| *v == batch);
            if accepted && self.flooded.insert(r) {
                self.flood(r, &batch, out);
                self.seen_d_proposal(now, r, out);
            }
        }
    }

    /// Relay an accepted D-PrePrepare's payload (§3.2.4).
    fn flood(&mut self, r: DRef, batch: &DBatch, out: &mut Out<F>) {
        let coordinator = self.d[r.instance as usize].primary();
        let mut others: Vec<ReplicaId> = self.m.replicas().filter(|x| *x != self.id && *x != coordinator).collect();
        let k = match self.cfg.flood {
            Flood::Off => 0,
            Flood::All => others.len(),
            Flood::Few(k) => k.min(others.len()),
        };
        others.shuffle(&mut self.rng);
        for to in others.into_iter().take(k) {
            out.send(to, Msg::Flood { instance: r.instance, seq: r.seq, batch: batch.clone() });
        }
    }

    /// A flooded payload: the D-instance takes it if it misses that value.
    pub(crate) fn on_flood(&mut self, now: Time, from: ReplicaId, i: u32, seq: u64, batch: DBatch, out: &mut Out<F>) {
        let Some(d) = self.d.get(i as usize) else {
            out.reject(NodeId::Replica(from), "FLOOD for an unknown D-instance");
            return;
        };
        if batch.requests.len() > self.cfg.max_batch {
            out.reject(NodeId::Replica(from), "oversized FLOOD");
            return;
        }
        if seq <= d.last_decided() || seq > d.stable_checkpoint().0 + d.window() || d.has_proposal(seq) {
            return;
        }
        self.with_d(now, i, out, |e, a| e.on_message(from, DMsg::<F>::offer(seq, batch), &NoCheck, a));
    }

    /// We accepted (or, as coordinator, made) the D-PrePrepare of `r`: a
    /// coordinator has its requests; an O-primary orders it unless on probation;
    /// parked O-PrePrepares may be acceptable now.
    pub(crate) fn seen_d_proposal(&mut self, now: Time, r: DRef, out: &mut Out<F>) {
        if let Some(v) = self.d[r.instance as usize].value_at(r.seq) {
            for q in v.requests.iter() {
                self.in_proposal.insert((q.req.client, q.req.seq));
            }
        }
        self.rr_note_seq(r.seq);
        if self.o.is_primary() && !self.on_probation(r.instance) {
            self.enqueue(r);
        }
        self.retry_parked(now, out);
        self.maybe_order(now, out);
    }

    /// D-instance `i` decided `seq`: keep the payload for execution; an
    /// O-primary orders it (if it has not yet).
    pub(crate) fn d_decided(&mut self, i: u32, seq: u64, value: Option<DBatch>) {
        let r = DRef { instance: i, seq };
        self.rr_note_seq(seq);
        if self.is_executed(r) {
            return;
        }
        if let Some(v) = &value {
            for q in v.requests.iter() {
                self.in_proposal.insert((q.req.client, q.req.seq));
                self.disseminated.insert((q.req.client, q.req.seq));
            }
        }
        self.payloads[i as usize].insert(seq, value);
        if self.o.is_primary() {
            self.enqueue(r);
        }
    }

    fn enqueue(&mut self, r: DRef) {
        if self.round_robin() {
            return; // the O-primary takes positions in order instead
        }
        if !self.is_executed(r) && self.ordered.insert(r) {
            self.to_order.push_back(r);
        }
    }

    /// O-primary: order queued D-slots and ASSIGNs while the O-instance has room.
    pub(crate) fn maybe_order(&mut self, now: Time, out: &mut Out<F>) {
        if self.replaying || !self.o.is_primary() {
            return;
        }
        let mut handovers = self.handovers_due();
        let rr = self.round_robin();
        let has_refs = |r: &Self| if rr { r.rr_has_work() } else { !r.to_order.is_empty() };
        while self.o.can_propose() {
            // Only while the O-instance has room, and one batch's worth: this
            // runs on every message, and thousands of clients may be waiting.
            let batch_assigns: Vec<Assign> = self
                .to_assign
                .values()
                .filter(|a| !self.assign_ordered.contains(&(a.client, a.nonce)))
                .take(self.cfg.max_assigns)
                .cloned()
                .collect();
            if !(has_refs(self) || !batch_assigns.is_empty() || !handovers.is_empty()) {
                return;
            }
            let rr_from = self.rr_ordered;
            let refs = if rr { self.rr_take_refs() } else { self.take_queued_refs() };
            let handovers = std::mem::take(&mut handovers);
            if refs.is_empty() && batch_assigns.is_empty() && handovers.is_empty() {
                return;
            }
            // §3.2.2 (Fig. 5): our O-batch names each D-slot once, and no
            // slot 0 (backups refuse such a batch, `check_order`).
            quorate_core::invariant!(
                quorate_core::invariant::distinct(refs.iter()) && refs.iter().all(|r| r.seq > 0),
                "dqbft: own O-batch names a D-slot twice or slot 0: {refs:?}"
            );
            let mut acts = Actions::new();
            let batch = OBatch { refs: refs.clone(), assigns: batch_assigns.clone(), handovers: handovers.clone() };
            if self.o.propose(batch, &mut acts).is_err() {
                if rr {
                    self.rr_ordered = rr_from;
                } else {
                    for r in refs.into_iter().rev() {
                        self.to_order.push_front(r);
                    }
                }
                return;
            }
            self.assign_ordered.extend(batch_assigns.iter().map(|a| (a.client, a.nonce)));
            self.handed.extend(handovers.iter().map(|h| (h.instance, h.view)));
            self.carry_out_o_no_order(now, acts, out);
        }
    }

    /// O-primary: the queued D-slots not executed yet, at most `max_refs`.
    fn take_queued_refs(&mut self) -> Vec<DRef> {
        let mut refs = Vec::new();
        while refs.len() < self.cfg.max_refs {
            let Some(r) = self.to_order.pop_front() else { break };
            if !self.is_executed(r) {
                refs.push(r);
            }
        }
        refs
    }

    /// Whether `batch` names a slot of an instance we coordinate that we
    /// have not proposed: ours to fill with a no-op (see `fill_noops`).
    pub(crate) fn names_unproposed_own_slot(&self, batch: &OBatch) -> bool {
        if self.round_robin() {
            let frontier = self.rr_frontier(batch);
            return self
                .d
                .iter()
                .enumerate()
                .any(|(i, e)| e.is_primary() && self.rr_implied_seq(frontier, i as u32) >= e.next_proposal());
        }
        batch
            .refs
            .iter()
            .any(|r| self.d.get(r.instance as usize).is_some_and(|e| e.is_primary() && r.seq >= e.next_proposal()))
    }

    /// A message of the O-instance. A backup parks an O-PrePrepare whose
    /// D-slots it does not hold yet, and takes it up when it does.
    pub(crate) fn on_o_message(&mut self, now: Time, from: ReplicaId, msg: OMsg<F>, out: &mut Out<F>) {
        if let Some((_, _, value)) = msg.proposal() {
            match self.check_order(value) {
                Err(Refusal::NotYet) => {
                    let parked_at = self.parked.iter().find(|(f, m, _)| *f == from && *m == msg).map(|p| p.2);
                    let fill = self.names_unproposed_own_slot(value);
                    if parked_at.is_none() && self.parked.len() < MAX_PARKED {
                        self.parked.push((from, msg, self.parking_since.unwrap_or(now)));
                    } else if let Some(at) = parked_at {
                        self.parked.retain(|(f, m, _)| !(*f == from && *m == msg));
                        self.parked.push((from, msg, at));
                    }
                    if fill {
                        self.maybe_propose(now, out);
                    }
                    return;
                }
                Err(Refusal::Invalid(why)) => {
                    out.reject(NodeId::Replica(from), why);
                    return;
                }
                Ok(()) => {}
            }
        }
        // Checked above (a PRE-PREPARE's validity depends on the D-instances).
        self.with_o(now, out, |e, a| e.on_message(from, msg, &NoCheck, a));
    }

    /// Whether an O-PrePrepare of the current O-primary has waited
    /// `payload_timeout` (scaled by the O-instance's backoff) for D-slots
    /// we do not hold: the O-primary orders slots nobody disseminated, or
    /// slowly enough to stall execution; either way it is suspected.
    pub(crate) fn parked_too_long(&self, now: Time) -> bool {
        let primary = self.o.primary();
        let timeout = self.cfg.payload_timeout.saturating_mul(self.o.backoff());
        self.parked.iter().any(|(from, m, since)| {
            *from == primary
                && m.proposal().is_some_and(|(view, _, _)| view == self.o.view())
                && now.since(*since) >= timeout
        })
    }

    /// Take up parked O-PrePrepares that are acceptable now.
    pub(crate) fn retry_parked(&mut self, now: Time, out: &mut Out<F>) {
        if self.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.parked);
        for (from, msg, since) in parked {
            // Parked again: it keeps the time it first came.
            self.parking_since = Some(since);
            self.on_o_message(now, from, msg, out);
        }
        self.parking_since = None;
    }

    /// The O-instance installed `view`: a new O-primary orders every D-slot
    /// it holds that is not executed or ordered (§3.2.5, case 2).
    pub(crate) fn o_view_changed(&mut self, now: Time, view: u64, primary: ReplicaId, out: &mut Out<F>) {
        out.event(Event::ViewChanged { view, leader: primary });
        self.to_order.clear();
        self.ordered.clear();
        self.assign_ordered.clear();
        self.handed.clear();
        self.parked.clear();
        self.pending.restart_timers(now);
        if primary != self.id {
            return;
        }
        if self.round_robin() {
            self.rr_view_changed();
            return;
        }
        let in_log: HashSet<DRef> = self.olog.values().flatten().flat_map(|b| b.refs.iter().copied()).collect();
        for i in 0..self.d.len() as u32 {
            let d = &self.d[i as usize];
            let mut slots: Vec<u64> = self.payloads[i as usize].keys().copied().collect();
            if !self.on_probation(i) {
                let from = d.last_decided() + 1;
                slots.extend((from..=d.stable_checkpoint().0 + d.window()).filter(|s| d.has_proposal(*s)));
            }
            for seq in slots {
                let r = DRef { instance: i, seq };
                if !in_log.contains(&r) {
                    self.enqueue(r);
                }
            }
        }
    }
}

/// For messages whose validity the replica checked itself (or that carry
/// no proposal to check).
struct NoCheck;

impl<V> Validity<V> for NoCheck {
    fn check(&self, _seq: u64, _value: &V) -> Result<(), &'static str> {
        Ok(())
    }
}

//! The normal phase: VP-Consensus PROPOSE → WRITE → ACCEPT (thesis App. B
//! Alg. 5–6; crash mode PROPOSE → ACCEPT), decisions, execution (Alg. 2
//! l.7–17) and local checkpoints (§3.6.2).

use super::{CheckpointRecord, Instance, Out, Record, Replica};
use crate::messages::{accept_bytes, Batch, Decision, Msg, Reply};
use quorate_core::crypto::{Digest, Signature};
use quorate_core::executor::Outcome;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Effect, Event};
use quorate_core::tally::Cast;
use quorate_core::time::Time;
use std::collections::HashSet;

impl Replica {
    /// The validity predicate γ (thesis §3.5.3): non-empty, fair (one request
    /// per client), every request valid (fresh, signed, well-formed) and a
    /// non-decreasing timestamp.
    pub(crate) fn check_batch(&self, batch: &Batch) -> Result<(), &'static str> {
        if batch.requests.is_empty() {
            return Err("empty batch");
        }
        if batch.requests.len() > self.cfg.max_batch {
            return Err("batch too large");
        }
        if batch.timestamp < self.last_timestamp {
            return Err("batch timestamp goes back");
        }
        let mut clients = HashSet::with_capacity(batch.requests.len());
        for r in &batch.requests {
            if !clients.insert(r.req.client) {
                return Err("unfair batch");
            }
            // A request already in ToOrder was validated on arrival.
            if !self.pending.holds(r) {
                self.check_request(r)?;
            }
        }
        Ok(())
    }

    /// Leader: propose when idle, not stopped and something is pending (Alg. 2 l.3–6).
    pub(crate) fn maybe_propose(&mut self, now: Time, out: &mut Out) {
        if !self.is_leader()
            || self.stopped
            || self.nreg != self.creg
            || self.transfer.is_some()
            || !self.inst.free
            || self.inst.written.is_some()
            || self.pending.is_empty()
            || self.decided.contains_key(&self.next())
        {
            return;
        }
        let requests = self.pending.oldest(self.cfg.max_batch);
        let timestamp = now.as_nanos().max(self.last_timestamp);
        let batch = Batch { timestamp, requests };
        out.broadcast(Msg::Propose { regency: self.creg, instance: self.next(), batch: batch.clone() });
        self.accept_value(now, batch, out);
    }

    /// PROPOSE from the leader.
    pub(crate) fn on_propose(
        &mut self,
        now: Time,
        r: ReplicaId,
        regency: u64,
        instance: u64,
        batch: Batch,
        out: &mut Out,
    ) {
        let from = NodeId::Replica(r);
        if r != self.leader_of(regency) {
            out.reject(from, "PROPOSE from a non-leader");
            return;
        }
        // The batch is copied only if the message must be kept for later.
        if !self.admit(r, regency, instance, false, out, || Msg::Propose { regency, instance, batch: batch.clone() }) {
            return;
        }
        if !self.inst.free || self.inst.written.is_some() {
            // A repeated PROPOSE (the leader repeats it when stuck) is harmless; a different one is not.
            if self.inst.written != Some(batch.digest(self.crypto.as_ref())) {
                out.reject(from, "conflicting PROPOSE");
            }
            return;
        }
        if let Err(why) = self.check_batch(&batch) {
            out.reject(from, why);
            return;
        }
        self.accept_value(now, batch, out);
    }

    /// Take `batch` as this epoch's value: WRITE it (BFT) or ACCEPT it (crash mode).
    pub(crate) fn accept_value(&mut self, now: Time, batch: Batch, out: &mut Out) {
        let v = batch.digest(self.crypto.as_ref());
        self.inst.batches.insert(v, batch);
        self.inst.written = Some(v);
        self.inst.free = false;
        let (instance, epoch, regency) = (self.inst.id, self.inst.epoch, self.creg);
        if self.bft() {
            // Alg. 6 l.25–28: a correct process WRITEs one value per epoch.
            self.own_votes.cast((instance, epoch, false), v, "mod-smart: WRITE");
            self.inst.record_write(epoch, v);
            self.persist(&Record::Wrote { instance, epoch, value: v }, out);
            out.broadcast(Msg::Write { regency, instance, value: v });
            self.count_write(now, self.id, v, out);
        } else {
            // Crash mode: the PROPOSE is the write; accept directly.
            self.send_accept(now, v, out);
        }
    }

    /// Common checks for PROPOSE/WRITE/ACCEPT: true if the message is for the
    /// current instance and regency; otherwise it is kept for later (built by
    /// `msg` only then), answered with help, or rejected. WRITEs and ACCEPTs
    /// (`vote`) count even while a regency change waits for its SYNC.
    fn admit(
        &mut self,
        r: ReplicaId,
        regency: u64,
        instance: u64,
        vote: bool,
        out: &mut Out,
        msg: impl FnOnce() -> Msg,
    ) -> bool {
        if instance < self.next() {
            // The sender is behind: help it with the decision (once).
            self.help_with_decision(r, instance, out);
            return false;
        }
        if regency < self.creg {
            out.reject(NodeId::Replica(r), "stale regency");
            self.help_with_sync(r, out);
            return false;
        }
        if instance > self.next() && regency <= self.creg {
            self.buffer_future(r, instance, msg(), out);
            return false;
        }
        if regency > self.creg || (self.stopped && !vote) {
            // A regency we have not installed (ask the sender: it answers with the SYNC that
            // proves it), or installed but not synchronized yet: keep it for after SYNC.
            if self.held.len() < self.cfg.max_future {
                self.held.push((r, msg()));
            }
            if regency > self.creg && self.asked.insert((r, self.next())) {
                out.send(r, Msg::DecisionRequest { instance: self.next(), regency: self.creg });
            }
            return false;
        }
        true
    }

    /// WRITE from a replica.
    pub(crate) fn on_write(
        &mut self,
        now: Time,
        r: ReplicaId,
        regency: u64,
        instance: u64,
        value: Digest,
        out: &mut Out,
    ) {
        if !self.bft() {
            out.reject(NodeId::Replica(r), "WRITE in crash mode");
            return;
        }
        if !self.admit(r, regency, instance, true, out, || Msg::Write { regency, instance, value }) {
            return;
        }
        self.count_write(now, r, value, out);
    }

    fn count_write(&mut self, now: Time, r: ReplicaId, v: Digest, out: &mut Out) {
        if self.inst.writes.cast(&self.m, r, v) != Cast::New {
            return;
        }
        if self.inst.accepted {
            return;
        }
        if let Some(v) = self.inst.writes.reaching(self.quorum("write")).copied() {
            // WRITE quorum: (valts, val) ← (ets, v); send ACCEPT (Alg. 6 l.29–33).
            self.inst.valts = self.inst.epoch;
            self.inst.val = Some(v);
            self.send_accept(now, v, out);
        }
    }

    fn send_accept(&mut self, now: Time, v: Digest, out: &mut Out) {
        self.inst.accepted = true;
        if !self.bft() {
            self.inst.valts = self.inst.epoch;
            self.inst.val = Some(v);
        }
        let (instance, epoch, regency) = (self.inst.id, self.inst.epoch, self.creg);
        // Alg. 6 l.29–33: one ACCEPT per epoch (its signature makes a second one a proof of equivocation).
        self.own_votes.cast((instance, epoch, true), v, "mod-smart: ACCEPT");
        let sig = if self.bft() { self.crypto.sign(&accept_bytes(instance, epoch, &v)) } else { Signature(Vec::new()) };
        let batch = self.inst.batches.get(&v);
        self.persist(&Record::Accepted { instance, epoch, value: v, batch }, out);
        self.inst.my_accept = Some((v, sig.clone()));
        out.broadcast(Msg::Accept { regency, instance, value: v, sig: sig.clone() });
        self.count_accept(now, self.id, epoch, v, sig, out);
    }

    /// ACCEPT from a replica.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_accept(
        &mut self,
        now: Time,
        r: ReplicaId,
        regency: u64,
        instance: u64,
        value: Digest,
        sig: Signature,
        out: &mut Out,
    ) {
        // ACCEPTs of an older regency for the current instance still prove a decision.
        if instance == self.next() && regency < self.creg {
            self.count_accept_checked(now, r, regency + 1, value, sig, out);
            return;
        }
        if !self.admit(r, regency, instance, true, out, || Msg::Accept { regency, instance, value, sig: sig.clone() }) {
            return;
        }
        self.count_accept_checked(now, r, regency + 1, value, sig, out);
    }

    fn count_accept_checked(&mut self, now: Time, r: ReplicaId, epoch: u64, v: Digest, sig: Signature, out: &mut Out) {
        if self.inst.acceptors.contains(&(epoch, r)) {
            // Repeated ACCEPTs are normal (messages are repeated when stuck); different ones are not.
            if !self.inst.accepts.get(&(epoch, v)).is_some_and(|vs| vs.iter().any(|(x, _)| *x == r)) {
                out.reject(NodeId::Replica(r), "conflicting ACCEPT");
            }
            return;
        }
        if self.bft() && !self.crypto.verify(NodeId::Replica(r), &accept_bytes(self.inst.id, epoch, &v), &sig) {
            out.reject(NodeId::Replica(r), "bad ACCEPT signature");
            return;
        }
        self.count_accept(now, r, epoch, v, sig, out);
    }

    fn count_accept(&mut self, now: Time, r: ReplicaId, epoch: u64, v: Digest, sig: Signature, out: &mut Out) {
        if !self.inst.acceptors.insert((epoch, r)) {
            return;
        }
        let votes = self.inst.accepts.entry((epoch, v)).or_default();
        votes.push((r, sig));
        let voters: Vec<ReplicaId> = votes.iter().map(|(r, _)| *r).collect();
        if !self.m.is_quorum(&voters) {
            return;
        }
        match self.inst.batches.get(&v) {
            Some(batch) => {
                let proof = self.inst.accepts.get(&(epoch, v)).cloned().unwrap_or_default();
                // Alg. 6 l.36, Thm B3: the proof Γ is ACCEPTs of a quorum of distinct processes.
                quorate_core::invariant!(
                    quorate_core::invariant::distinct(proof.iter().map(|(r, _)| *r)),
                    "mod-smart: decision proof of instance {} repeats a signer",
                    self.inst.id
                );
                let d = Decision { instance: self.inst.id, epoch, batch: batch.clone(), proof };
                self.decide(now, d, out);
            }
            None => {
                // Decided, but we never saw the batch: ask those who accepted it.
                let instance = self.inst.id;
                for r in voters.into_iter().filter(|r| *r != self.id) {
                    out.send(r, Msg::DecisionRequest { instance, regency: self.creg });
                }
            }
        }
    }

    /// Whether a decision is valid: digest matches and a quorum of distinct
    /// members signed ACCEPT for it (crash mode: a quorum of members listed).
    pub(crate) fn valid_decision(&self, d: &Decision) -> bool {
        let v = d.batch.digest(self.crypto.as_ref());
        let mut seen = HashSet::new();
        let bytes = accept_bytes(d.instance, d.epoch, &v);
        for (r, sig) in &d.proof {
            if !self.m.contains(*r) || !seen.insert(*r) {
                return false;
            }
            if self.bft() && !self.crypto.verify(NodeId::Replica(*r), &bytes, sig) {
                return false;
            }
        }
        let voters: Vec<ReplicaId> = seen.into_iter().collect();
        self.m.is_quorum(&voters) && !d.batch.requests.is_empty()
    }

    /// VP-Decide: record a (valid) decision and execute what is in order.
    pub(crate) fn decide(&mut self, now: Time, d: Decision, out: &mut Out) {
        if d.instance < self.next() || self.decided.contains_key(&d.instance) {
            return;
        }
        self.decided.insert(d.instance, d);
        self.execute_decided(now, out);
    }

    /// Execute decided instances in order (Alg. 2 l.7–17).
    pub(crate) fn execute_decided(&mut self, now: Time, out: &mut Out) {
        if self.transfer.is_some() {
            return;
        }
        let mut progressed = false;
        while let Some(d) = self.decided.remove(&self.next()) {
            // Alg. 2 l.7–17, Thm A1: decisions run in instance order, each once.
            self.reported.report(d.instance, "mod-smart: decided instance");
            self.execute_decision(&d, out);
            self.persist(&Record::Decided(&d), out);
            out.event(Event::Decided { instance: d.instance, requests: d.batch.requests.len() });
            self.log.insert(d.instance, d);
            self.advance_instance();
            progressed = true;
            if self.next().is_multiple_of(self.cfg.checkpoint_period.max(1)) {
                self.take_checkpoint(out);
            }
        }
        if progressed {
            self.failed_regencies = 0;
            self.prune_pending();
            self.apply_sync_outcome(now, out);
            self.replay_future(now, out);
            self.maybe_propose(now, out);
        }
        if let Some((&first, _)) = self.decided.iter().next() {
            // A gap: decisions beyond the next instance are known. Fetch the missing ones.
            if first > self.next() {
                let next = self.next();
                for r in self.m.replicas().filter(|r| *r != self.id).collect::<Vec<_>>() {
                    if self.asked.insert((r, next)) {
                        out.send(r, Msg::DecisionRequest { instance: next, regency: self.creg });
                    }
                }
            }
        }
    }

    /// Run one decided batch through the executor and answer the clients.
    pub(crate) fn execute_decision(&mut self, d: &Decision, out: &mut Out) {
        self.last_timestamp = self.last_timestamp.max(d.batch.timestamp);
        for r in &d.batch.requests {
            let client: ClientId = r.req.client;
            match self.exec.execute(&r.req, d.instance, d.batch.timestamp, out) {
                Outcome::Executed(result) | Outcome::Repeat(result) => {
                    out.send(client, Msg::Reply(Reply { seq: r.req.seq, read_only: false, result }));
                }
                Outcome::Stale => {}
            }
        }
    }

    /// Move to the next instance, in the current epoch.
    pub(crate) fn advance_instance(&mut self) {
        let next = self.inst.id + 1;
        self.inst = Instance::new(next, self.creg + 1);
        self.own_votes.forget_below(&(next, 0, false));
        // While a regency change is under way only the SYNC may free the instance.
        self.inst.free = !self.stopped;
        self.helped.retain(|(_, i)| *i + 64 > next);
    }

    /// Apply a SYNC's outcome once this replica reaches the synchronized instance.
    pub(crate) fn apply_sync_outcome(&mut self, now: Time, out: &mut Out) {
        let Some(o) = &self.sync_outcome else { return };
        if o.instance < self.next() || o.epoch < self.inst.epoch {
            self.sync_outcome = None;
            return;
        }
        if o.instance > self.next() || o.epoch != self.inst.epoch {
            return;
        }
        let Some(o) = self.sync_outcome.take() else { return };
        match o.value {
            Some((_, batch)) => self.accept_value(now, batch, out),
            None => self.inst.free = true,
        }
    }

    /// Local checkpoint (thesis §3.6.2): snapshot, persist, truncate the log.
    pub(crate) fn take_checkpoint(&mut self, out: &mut Out) {
        let instance = self.next() - 1;
        let checkpoint = self.exec.checkpoint();
        out.event(Event::Checkpoint { slot: checkpoint.slot, digest: checkpoint.digest });
        let rec = CheckpointRecord {
            instance,
            timestamp: self.last_timestamp,
            checkpoint,
            last_decided: self.last_decided().cloned(),
            regency: self.creg,
        };
        out.push(Effect::PersistCheckpoint(quorate_core::wire::encode(&rec).into()));
        self.log.retain(|i, _| *i >= instance);
        self.checkpoint = Some(rec);
    }
}

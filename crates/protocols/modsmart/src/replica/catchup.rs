//! Catching up: decisions fetched from peers (self-verifying through their
//! proofs), state transfer (thesis §3.6.2, §4.2.3.2: checkpoint from one
//! replica, its digest from f+1, decided log from the others), and recovery
//! from durable state.

use super::{CheckpointRecord, Instance, Out, Record, Replica, Transfer};
use crate::messages::{accept_bytes, Batch, Decision, Msg, StateReply};
use crate::Timer;
use quorate_core::crypto::Digest;
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::{Event, Outbox};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::BTreeMap;

impl Replica {
    /// The decision of `instance`, if still in the log.
    fn decision_of(&self, instance: u64) -> Option<&Decision> {
        self.log.get(&instance)
    }

    /// Send a lagging peer the decision it is working on (once per peer and instance).
    pub(crate) fn help_with_decision(&mut self, r: ReplicaId, instance: u64, out: &mut Out) {
        // Late WRITEs and ACCEPTs for the previous instance are normal: only help peers
        // at least two instances behind (others ask with DECISION_REQUEST).
        if instance + 1 >= self.next() || !self.helped.insert((r, instance)) {
            return;
        }
        self.send_decision(r, instance, out);
    }

    /// The decision of `instance`, or where our log starts if it was truncated.
    fn send_decision(&self, r: ReplicaId, instance: u64, out: &mut Out) {
        if let Some(d) = self.decision_of(instance) {
            out.send(r, Msg::Decision(d.clone()));
        } else if let Some(cp) = &self.checkpoint {
            if instance <= cp.instance {
                out.send(r, Msg::DecisionUnavailable { checkpoint_instance: cp.instance });
            }
        }
    }

    /// DECISION_REQUEST from a peer.
    pub(crate) fn on_decision_request(&mut self, r: ReplicaId, instance: u64, regency: u64, out: &mut Out) {
        if regency < self.creg {
            self.help_with_sync(r, out);
        }
        if instance < self.next() {
            self.send_decision(r, instance, out);
        }
    }

    /// DECISION from a peer: valid by its proof, whoever sends it.
    pub(crate) fn on_decision(&mut self, now: Time, r: ReplicaId, d: Decision, out: &mut Out) {
        if d.instance < self.next() || self.decided.contains_key(&d.instance) {
            return;
        }
        if d.instance > self.next() + 4 * self.cfg.checkpoint_period {
            return; // Far ahead: state transfer will cover it.
        }
        if !self.valid_decision(&d) {
            out.reject(NodeId::Replica(r), "bad decision proof");
            return;
        }
        self.decide(now, d, out);
    }

    /// The peer truncated past what we need.
    pub(crate) fn on_decision_unavailable(&mut self, checkpoint_instance: u64, out: &mut Out) {
        if checkpoint_instance >= self.next() && self.transfer.is_none() {
            self.start_state_transfer(0, out);
        }
    }

    /// Ask everybody for state; one designated replica sends the checkpoint.
    pub(crate) fn start_state_transfer(&mut self, attempt: u32, out: &mut Out) {
        let n = self.m.n() as u32;
        let mut designated = ReplicaId((self.id.0 + 1 + attempt) % n);
        if designated == self.id {
            designated = ReplicaId((designated.0 + 1) % n);
        }
        self.transfer = Some(Transfer { attempt, replies: BTreeMap::new() });
        out.event(Event::Note(format!("state transfer attempt {attempt} from {designated}")));
        out.broadcast(Msg::StateRequest { attempt, designated });
        out.set_timer(Timer::StateTransfer, self.cfg.state_transfer_timeout);
    }

    pub(crate) fn on_state_transfer_timeout(&mut self, out: &mut Out) {
        if let Some(t) = &self.transfer {
            let attempt = t.attempt + 1;
            self.start_state_transfer(attempt, out);
        }
    }

    /// STATE_REQUEST from a peer.
    pub(crate) fn on_state_request(&mut self, r: ReplicaId, attempt: u32, designated: ReplicaId, out: &mut Out) {
        let (checkpoint_instance, checkpoint_digest, checkpoint, checkpoint_timestamp) = match &self.checkpoint {
            Some(cp) => (
                Some(cp.instance),
                cp.checkpoint.digest,
                (designated == self.id).then(|| cp.checkpoint.clone()),
                cp.timestamp,
            ),
            None => (None, Digest::default(), None, 0),
        };
        let log: Vec<Decision> = self.log.values().cloned().collect();
        out.send(
            r,
            Msg::StateReply(Box::new(StateReply {
                attempt,
                checkpoint_instance,
                checkpoint_digest,
                checkpoint,
                checkpoint_timestamp,
                log,
            })),
        );
    }

    /// STATE_REPLY: install once f+1 replicas vouch for the same checkpoint
    /// (crash mode: one) and one of them sent it whole.
    pub(crate) fn on_state_reply(&mut self, now: Time, r: ReplicaId, rep: StateReply, out: &mut Out) {
        let need = if self.bft() { self.m.f() + 1 } else { 1 };
        let (n, next) = (self.m.n(), self.next());
        let Some(t) = &mut self.transfer else { return };
        if rep.attempt != t.attempt {
            return;
        }
        if let Some(cp) = &rep.checkpoint {
            if Some(cp.digest) != Some(rep.checkpoint_digest) || !cp.is_consistent() {
                out.reject(NodeId::Replica(r), "inconsistent checkpoint");
                return;
            }
        }
        t.replies.insert(r, rep);
        // Group by (instance, digest).
        let mut groups: BTreeMap<(Option<u64>, Digest), Vec<ReplicaId>> = BTreeMap::new();
        for (r, rep) in &t.replies {
            groups.entry((rep.checkpoint_instance, rep.checkpoint_digest)).or_default().push(*r);
        }
        // The most advanced checkpoint that enough replicas vouch for ("no checkpoint" included:
        // then only their logs are used).
        let chosen = groups.iter().filter(|(_, v)| v.len() >= need).max_by_key(|((ci, _), _)| *ci).map(|(k, _)| *k);
        let Some((ci, digest)) = chosen else {
            // Replies vouch for different checkpoints, or the designated one has not answered.
            if t.replies.len() >= n - 1 {
                let attempt = t.attempt + 1;
                self.start_state_transfer(attempt, out);
            }
            return;
        };
        if let Some(ci) = ci.filter(|ci| *ci >= next) {
            // Behind the checkpoint: install it, once the designated replica's full copy is here.
            let full = t.replies.values().find_map(|x| {
                x.checkpoint.as_ref().filter(|c| c.digest == digest).map(|c| (c.clone(), x.checkpoint_timestamp))
            });
            let Some((cp, timestamp)) = full else { return };
            if let Err(e) = self.exec.install(&cp, out) {
                // Retried with another designated replica when the transfer timer fires.
                out.event(Event::Note(format!("state transfer: cannot install checkpoint: {e}")));
                return;
            }
            self.last_timestamp = timestamp;
            self.inst = Instance::new(ci + 1, self.creg + 1);
            self.inst.free = !self.stopped;
            // §3.6.2: state transfer skips the decisions the checkpoint covers (forward only).
            self.reported.skip_to(ci + 1, "mod-smart: state transfer");
            self.own_votes.forget_below(&(ci + 1, 0, false));
            self.log.clear();
            self.decided.retain(|i, _| *i > ci);
            let rec =
                CheckpointRecord { instance: ci, timestamp, checkpoint: cp, last_decided: None, regency: self.creg };
            out.push(quorate_core::machine::Effect::PersistCheckpoint(quorate_core::wire::encode(&rec).into()));
            self.checkpoint = Some(rec);
            self.prune_pending();
        }
        let replies = self.transfer.take().map(|t| t.replies).unwrap_or_default();
        out.cancel_timer(Timer::StateTransfer);
        // Decisions after the checkpoint, from every reply (each proves itself).
        let next = self.next();
        let mut later: BTreeMap<u64, Decision> = BTreeMap::new();
        for rep in replies.into_values() {
            for d in rep.log {
                if d.instance >= next && !later.contains_key(&d.instance) && self.valid_decision(&d) {
                    later.insert(d.instance, d);
                }
            }
        }
        for (i, d) in later {
            self.decided.entry(i).or_insert(d);
        }
        self.execute_decided(now, out);
        self.apply_sync_outcome(now, out);
        self.maybe_propose(now, out);
    }

    /// Restart from durable state: the last checkpoint, then the decisions and
    /// votes logged after it.
    pub(crate) fn recover(&mut self, checkpoint: Option<Bytes>, records: Vec<Bytes>, out: &mut Out) {
        let mut scratch = Outbox::new();
        if let Some(bytes) = checkpoint {
            match quorate_core::wire::decode::<CheckpointRecord>(&bytes, usize::MAX) {
                Ok(rec) => {
                    if self.exec.install(&rec.checkpoint, &mut scratch).is_ok() {
                        self.last_timestamp = rec.timestamp;
                        self.creg = rec.regency;
                        self.nreg = rec.regency;
                        self.inst = Instance::new(rec.instance + 1, self.creg + 1);
                        if let Some(d) = rec.last_decided.clone() {
                            self.log.insert(d.instance, d);
                        }
                        self.checkpoint = Some(rec);
                    }
                }
                Err(e) => out.event(Event::Note(format!("recovery: unreadable checkpoint: {e}"))),
            }
        }
        let mut votes = Vec::new();
        for bytes in records {
            let Ok(rec) = quorate_core::wire::decode::<Record<Decision, Batch>>(&bytes, usize::MAX) else {
                out.event(Event::Note("recovery: unreadable record skipped".into()));
                continue;
            };
            match rec {
                Record::Decided(d) => {
                    if d.instance == self.next() {
                        self.execute_decision(&d, &mut scratch);
                        self.log.insert(d.instance, d);
                        let epoch = self.creg + 1;
                        self.inst = Instance::new(self.inst.id + 1, epoch);
                    }
                }
                Record::Regency(r) => {
                    if r > self.creg {
                        self.creg = r;
                        self.nreg = r;
                    }
                }
                v @ (Record::Wrote { .. } | Record::Accepted { .. }) => votes.push(v),
            }
        }
        // Votes of the instance in progress: never vote differently in the same epoch.
        self.inst.epoch = self.creg + 1;
        for v in votes {
            match v {
                Record::Wrote { instance, epoch, value } if instance == self.next() => {
                    self.own_votes.cast((instance, epoch, false), value, "mod-smart: recovered WRITE");
                    self.inst.record_write(epoch, value);
                    if epoch == self.inst.epoch {
                        self.inst.written = Some(value);
                        self.inst.free = false;
                    }
                }
                Record::Accepted { instance, epoch, value, batch } if instance == self.next() => {
                    self.own_votes.cast((instance, epoch, true), value, "mod-smart: recovered ACCEPT");
                    // The batch of the accepted value: the STOPDATA of a regency change must carry
                    // it (a value bound without its batch stalls every new leader), and a
                    // recovered leader can repeat its PROPOSE.
                    if let Some(b) = batch.filter(|b| b.digest(self.crypto.as_ref()) == value) {
                        self.inst.batches.insert(value, b);
                    }
                    if epoch >= self.inst.valts {
                        self.inst.valts = epoch;
                        self.inst.val = Some(value);
                    }
                    // Our own ACCEPT counts again towards (and is repeated for) a decision.
                    let sig = if self.bft() {
                        self.crypto.sign(&accept_bytes(instance, epoch, &value))
                    } else {
                        quorate_core::crypto::Signature(Vec::new())
                    };
                    if self.inst.acceptors.insert((epoch, self.id)) {
                        self.inst.accepts.entry((epoch, value)).or_default().push((self.id, sig.clone()));
                    }
                    if epoch == self.inst.epoch {
                        self.inst.accepted = true;
                        self.inst.my_accept = Some((value, sig));
                        if !self.bft() {
                            // Crash mode: the ACCEPT was also this epoch's write
                            // (`accept_value`); a recovered leader must not propose,
                            // nor a follower accept, another value in this epoch.
                            self.inst.written = Some(value);
                            self.inst.free = false;
                        }
                    }
                }
                _ => {}
            }
        }
        // Recovery replays the logged decisions silently: reporting resumes after them.
        self.reported.skip_to(self.next(), "mod-smart: recovery");
        // A recovered replica does not know whether a regency change is under way; it
        // learns from its peers (SYNC on request).
        out.event(Event::StateInstalled { slot: self.exec.slot(), digest: self.exec.state_digest() });
        self.prune_pending();
        out.broadcast(Msg::DecisionRequest { instance: self.next(), regency: self.creg });
    }
}

//! Execution strictly in the O-instance's order (§3.2.2): O-slot k runs
//! once every D-slot it names is decided (or was executed before: a slot
//! ordered twice runs once). Checkpoints: the O-instance checkpoints the
//! executor's state and the executed D-slots; when one is stable, each
//! D-instance checkpoints the prefix of its slots that state covers, so a
//! D-instance drops only payloads that a stable state holds (§3.2.3).
//! State transfer fetches an O-checkpoint: the one the O-instance needs, or
//! the latest one f+1 replicas vouch for when a D-instance is behind
//! payloads its peers dropped (Example 3.1). The durable base and recovery.

use super::{Base, DRec, OActs, ORec, Out, Record, Replica, Transfer};
use crate::messages::{DRef, Msg, Progress, State};
use crate::{Dq, Flavor, Timer};
use quorate_core::crypto::Digest;
use quorate_core::executor::Outcome;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Effect, Event, Outbox};
use quorate_core::time::Time;
use quorate_core::{wire, Bytes};
use quorate_engines::instance::{Actions, Instance};

/// The digest of D-instance `i`'s checkpoint at `seq`. Its payloads up to
/// `seq` are in the O-checkpoint state that made it (whose digest the
/// O-instance agreed on), so the D-checkpoint names the position only.
pub(crate) fn d_checkpoint_digest(i: u32, seq: u64) -> Digest {
    Digest::of_parts(&[b"quorate-dqbft-d-checkpoint", &i.to_le_bytes(), &seq.to_le_bytes()])
}

/// Execution passes between two full walks of the pending requests.
const PRUNE_EVERY: u64 = 64;

impl<F: Flavor> Replica<F> {
    /// Execute what is ready, and carry out what the O-instance then asks.
    pub(crate) fn execute_ready(&mut self, now: Time, out: &mut Out<F>) {
        let mut acts = Actions::new();
        self.execute_ready_into(now, &mut acts, out);
        if !acts.is_empty() {
            self.carry_out_o(now, acts, out);
        }
    }

    /// Execute O-slots in order while their D-slots are decided; the
    /// O-instance's actions (checkpoints) go to `more`.
    pub(crate) fn execute_ready_into(&mut self, now: Time, more: &mut OActs<F>, out: &mut Out<F>) {
        let mut executed_any = false;
        // Requests this call executed (or found executed): pruned at the end.
        let mut done: Vec<(ClientId, u64)> = Vec::new();
        let mut stray: Vec<(ClientId, u64)> = Vec::new();
        while let Some(entry) = self.olog.get(&(self.executed_o + 1)) {
            let k = self.executed_o + 1;
            // Round-robin delivery: every position up to the batch's last.
            let rr = entry.as_ref().filter(|_| self.round_robin()).map(|b| self.rr_frontier(b));
            if let Some(batch) = entry {
                let missing =
                    match rr {
                        Some(frontier) => {
                            self.rr_range(frontier).find(|r| !self.payloads[r.instance as usize].contains_key(&r.seq))
                        }
                        None => batch.refs.iter().copied().find(|r| {
                            !self.is_executed(*r) && !self.payloads[r.instance as usize].contains_key(&r.seq)
                        }),
                    };
                if let Some(r) = missing {
                    if self.waiting.is_none_or(|(w, _)| w != r) {
                        self.waiting = Some((r, now));
                    }
                    break;
                }
            }
            let (mut refs, assigns, handovers) = self
                .olog
                .remove(&k)
                .flatten()
                .map_or((Vec::new(), Vec::new(), Vec::new()), |b| (b.refs, b.assigns, b.handovers));
            if let Some(frontier) = rr {
                refs = self.rr_range(frontier).collect();
            }
            let mut requests = 0;
            for r in refs {
                if self.is_executed(r) {
                    continue;
                }
                let payload = self.payloads[r.instance as usize].remove(&r.seq).flatten();
                self.mark_executed(r);
                let Some(p) = payload else { continue };
                let mut answered = Vec::new();
                for q in p.requests.iter() {
                    done.push((q.req.client, q.req.seq));
                    if self.instance_of(q.req.client) != r.instance {
                        // Not through the client's instance: a client that
                        // sent one request to several coordinators, or one
                        // that moved (ASSIGN, handover) after its proposal:
                        // its instance's coordinator may propose it now.
                        stray.push((q.req.client, q.req.seq));
                        continue;
                    }
                    requests += 1;
                    self.executed_by[r.instance as usize] += 1;
                    match self.exec.execute(&q.req, k, p.timestamp, out) {
                        Outcome::Executed(result) | Outcome::Repeat(result) => {
                            answered.push((q.req.client, q.req.seq, result))
                        }
                        Outcome::Stale => {}
                    }
                }
                self.answer(r, k, answered, out);
            }
            for a in assigns {
                if self.progress.assigned.get(&a.client).is_none_or(|(_, nonce)| *nonce < a.nonce) {
                    self.progress.assigned.insert(a.client, (a.instance, a.nonce));
                    if let Some(p) = self.pending.get_mut(&a.client) {
                        p.tag = a.instance;
                        self.mark_fresh(a.instance);
                    }
                    self.ack_assign(a.client, a.nonce, a.instance, out);
                }
                if self.to_assign.get(&a.client).is_some_and(|q| q.nonce <= a.nonce) {
                    self.to_assign.remove(&a.client);
                }
            }
            for h in &handovers {
                self.apply_handover(now, k, h, out);
            }
            // §3.2.2: commands execute strictly in the O-instance's order.
            self.o_executed.report(k, "dqbft: executed O-slot");
            self.executed_o = k;
            self.waiting = None;
            out.event(Event::Decided { instance: k, requests });
            executed_any = true;
            if k.is_multiple_of(self.cfg.checkpoint_period) {
                let state = State { exec: self.exec.checkpoint(), progress: self.progress.clone() };
                let digest = state.digest();
                out.event(Event::Checkpoint { slot: state.exec.slot, digest: state.exec.digest });
                self.checkpoints.insert(k, state);
                self.o.checkpoint_taken(k, digest, more);
            }
        }
        // Once per call, not per O-slot. Walking every pending request and
        // every request seen in a proposal (all clients' at a large N) is
        // needed only now and then; in between, what this call executed goes.
        for (c, seq) in stray {
            if seq > self.exec.table().last_seq(c) {
                self.proposed.remove(&(c, seq));
                self.in_proposal.remove(&(c, seq));
                self.disseminated.remove(&(c, seq));
                let i = self.instance_of(c);
                self.mark_fresh(i);
            }
        }
        if executed_any {
            self.passes += 1;
            if self.passes.is_multiple_of(PRUNE_EVERY) {
                self.prune_pending();
            } else {
                self.prune_executed(&done);
            }
        }
    }

    pub(crate) fn mark_executed(&mut self, r: DRef) {
        // §3.2.2: a D-slot ordered twice executes once (its first O-slot).
        quorate_core::invariant!(!self.is_executed(r), "dqbft: D-slot {r:?} executed twice");
        let i = r.instance as usize;
        let (prefix, above) = (&mut self.progress.prefix[i], &mut self.progress.above[i]);
        if r.seq <= *prefix {
            return;
        }
        above.insert(r.seq);
        while above.remove(&(*prefix + 1)) {
            *prefix += 1;
        }
    }

    /// The O-checkpoint at `seq` is stable: each D-instance checkpoints the
    /// prefix of its slots it covers; it becomes the durable base.
    pub(crate) fn o_stable(&mut self, now: Time, seq: u64, _digest: Digest, out: &mut Out<F>) {
        self.checkpoints = self.checkpoints.split_off(&seq);
        let Some(state) = self.checkpoints.get(&seq) else {
            out.event(Event::Note(format!("stable O-checkpoint {seq} without our state")));
            return;
        };
        let prefixes = state.progress.prefix.clone();
        self.d_checkpoints(now, &prefixes, out);
        self.write_base(seq, out);
    }

    /// A stable O-checkpoint's state covers the prefix `prefixes[i]` of
    /// each D-instance's slots: the instance checkpoints the largest
    /// multiple of the D-period within it, and continues from there if it
    /// had not decided that far (the state came by transfer).
    fn d_checkpoints(&mut self, now: Time, prefixes: &[u64], out: &mut Out<F>) {
        let period = self.cfg.d_checkpoint_period;
        for (i, prefix) in prefixes.iter().enumerate() {
            let i = i as u32;
            let at = prefix - prefix % period;
            let (decided, stable) = (self.d[i as usize].last_decided(), self.d[i as usize].stable_checkpoint().0);
            let digest = d_checkpoint_digest(i, at);
            if at > decided {
                self.with_d(now, i, out, |e, a| e.state_installed(at, digest, a));
            } else if at > stable {
                self.with_d(now, i, out, |e, a| e.checkpoint_taken(at, digest, a));
            }
            self.flooded.retain(|r| r.instance != i || r.seq > *prefix);
        }
    }

    fn write_base(&mut self, seq: u64, out: &mut Out<F>) {
        let Some(state) = self.checkpoints.get(&seq).cloned() else { return };
        let base =
            Base { seq, state, o: self.o.live_records(), d: self.d.iter_mut().map(|e| e.live_records()).collect() };
        out.push(Effect::PersistCheckpoint(Bytes::from(wire::encode(&base))));
    }

    /// D-instance `i` is behind a checkpoint its peers vouch for: once our
    /// executed slots cover it, it continues from there; until then fetch
    /// the latest O-checkpoint (its payloads are in that state).
    pub(crate) fn d_needs_state(&mut self, now: Time, i: u32, seq: u64, digest: Digest, out: &mut Out<F>) {
        if self.progress.prefix[i as usize] >= seq {
            self.d_need[i as usize] = None;
            self.with_d(now, i, out, |e, a| e.state_installed(seq, digest, a));
            return;
        }
        self.d_need[i as usize] = Some((seq, digest));
        self.need_state(None, out);
    }

    /// Fetch the state at `target` (None: the latest vouched O-checkpoint).
    pub(crate) fn need_state(&mut self, target: Option<(u64, Digest)>, out: &mut Out<F>) {
        if self.transfer.as_ref().is_some_and(|t| t.target == target) {
            return; // under way; its timer asks the next replica
        }
        // Another target replaces the one under way: ask the next replica.
        // The O-instance (a given checkpoint) and a D-instance (the latest
        // vouched one) each repeat their need about as often as the timer
        // runs, so starting over at attempt 0 asked the same replica for
        // good, a crashed one as the case may be.
        let attempt = self.transfer.as_ref().map_or(0, |t| t.attempt.wrapping_add(1));
        self.transfer = Some(Transfer { target, attempt });
        self.send_state_request(out);
    }

    fn send_state_request(&mut self, out: &mut Out<F>) {
        let Some(t) = &self.transfer else { return };
        let others: Vec<ReplicaId> = self.m.replicas().filter(|r| *r != self.id).collect();
        if others.is_empty() {
            return;
        }
        let to = others[(self.id.index() + t.attempt as usize) % others.len()];
        let seq = t.target.map_or(0, |(s, _)| s);
        out.event(Event::Note(format!("state transfer of O-checkpoint {seq} from {to} (attempt {})", t.attempt)));
        out.send(to, Msg::StateRequest { seq });
        out.set_timer(Timer::StateTransfer, self.cfg.state_transfer_timeout);
    }

    /// Whether the transfer under way is still needed.
    fn transfer_needed(&self, t: &Transfer) -> bool {
        match t.target {
            Some((seq, digest)) => self.o.wants_state(seq, digest),
            None => self.d_need.iter().enumerate().any(|(i, n)| n.is_some_and(|(s, _)| self.progress.prefix[i] < s)),
        }
    }

    pub(crate) fn on_state_transfer_timeout(&mut self, out: &mut Out<F>) {
        let Some(t) = self.transfer.clone() else { return };
        if !self.transfer_needed(&t) {
            self.transfer = None;
            return;
        }
        if let Some(t) = &mut self.transfer {
            t.attempt += 1;
        }
        self.send_state_request(out);
    }

    /// STATE-REQUEST: the checkpoint asked for, or our latest stable one.
    pub(crate) fn on_state_request(&mut self, r: ReplicaId, seq: u64, out: &mut Out<F>) {
        let seq = if seq == 0 { self.o.stable_checkpoint().0 } else { seq };
        if let Some(state) = self.checkpoints.get(&seq) {
            out.send(r, Msg::StateReply { seq, state: Box::new(state.clone()) });
        }
    }

    /// STATE-REPLY: install it if it is a state we wait for.
    pub(crate) fn on_state_reply(&mut self, now: Time, r: ReplicaId, seq: u64, state: State, out: &mut Out<F>) {
        let Some(t) = self.transfer.clone() else { return };
        let digest = state.digest();
        let expected = match t.target {
            Some(target) => target == (seq, digest),
            None => self.o.vouches(seq, digest),
        };
        if !expected || !state.exec.is_consistent() || !self.well_formed(&state.progress) {
            out.reject(NodeId::Replica(r), "unexpected state");
            return;
        }
        if seq <= self.executed_o {
            return;
        }
        if let Err(e) = self.exec.install(&state.exec, out) {
            out.event(Event::Note(format!("state transfer: cannot install O-checkpoint {seq}: {e}")));
            return;
        }
        self.transfer = None;
        out.cancel_timer(Timer::StateTransfer);
        self.install(now, seq, digest, state, out);
        self.write_base(seq, out);
        self.execute_ready(now, out);
    }

    /// Continue from the installed state at O-checkpoint `seq`.
    pub(crate) fn install(&mut self, now: Time, seq: u64, digest: Digest, state: State, out: &mut Out<F>) {
        self.coordinating = None;
        self.fresh.iter_mut().for_each(|f| *f = true);
        self.progress = state.progress.clone();
        self.refresh_owners();
        self.clients_moved(now);
        self.o_executed.skip_to(seq + 1, "dqbft: executed O-slot");
        self.executed_o = seq;
        self.olog = self.olog.split_off(&(seq + 1));
        for (i, payloads) in self.payloads.iter_mut().enumerate() {
            let (prefix, above) = (self.progress.prefix[i], &self.progress.above[i]);
            payloads.retain(|s, _| *s > prefix && !above.contains(s));
        }
        self.waiting = None;
        self.checkpoints.clear();
        self.checkpoints.insert(seq, state);
        self.prune_pending();
        if seq > self.o.last_decided() {
            self.with_o(now, out, |e, a| e.state_installed(seq, digest, a));
        }
        for i in 0..self.d.len() {
            if let Some((s, d)) = self.d_need[i].filter(|(s, _)| self.progress.prefix[i] >= *s) {
                self.d_need[i] = None;
                self.with_d(now, i as u32, out, |e, a| e.state_installed(s, d, a));
            }
        }
        // The installed state is a stable O-checkpoint, but the O-instance
        // reports no Stable for it: take the D-checkpoints it covers here,
        // as `o_stable` does. Otherwise a D-instance whose slots this state
        // executed keeps its old window (its own checkpoint waits for our
        // next stable O-checkpoint, which may wait for that very instance):
        // with one replica down its instance lacked a quorum for good.
        let prefixes = self.progress.prefix.clone();
        self.d_checkpoints(now, &prefixes, out);
        self.coordinating = None;
    }

    /// Whether executed-slot progress from a peer has our shape.
    fn well_formed(&self, p: &Progress) -> bool {
        let n = self.d.len();
        p.prefix.len() == n
            && p.above.len() == n
            && p.above.iter().zip(&p.prefix).all(|(a, pre)| a.iter().all(|s| s > pre) && a.len() <= 1 << 20)
            && p.views.keys().all(|i| (*i as usize) < n)
    }

    /// Restart from the durable base and the records after it.
    pub(crate) fn recover(&mut self, now: Time, checkpoint: Option<Bytes>, records: Vec<Bytes>, out: &mut Out<F>) {
        self.coordinating = None;
        self.fresh.iter_mut().for_each(|f| *f = true);
        let n = self.d.len();
        let mut o_recs: Vec<ORec<F>> = Vec::new();
        let mut d_recs: Vec<Vec<DRec<F>>> = vec![Vec::new(); n];
        let mut scratch = Outbox::<Dq<F>>::new();
        let mut base_ok = true;
        if let Some(bytes) = checkpoint {
            base_ok = false;
            match wire::decode::<Base<DRec<F>, ORec<F>>>(&bytes, usize::MAX) {
                Ok(base) if base.d.len() == n && self.well_formed(&base.state.progress) => {
                    match self.exec.install(&base.state.exec, &mut scratch) {
                        Ok(()) => {
                            self.progress = base.state.progress.clone();
                            self.refresh_owners();
                            self.o_executed.skip_to(base.seq + 1, "dqbft: executed O-slot");
                            self.executed_o = base.seq;
                            self.checkpoints.insert(base.seq, base.state);
                            o_recs = base.o;
                            d_recs = base.d;
                            base_ok = true;
                        }
                        Err(e) => out.event(Event::Note(format!("recovery: cannot install the checkpoint: {e}"))),
                    }
                }
                Ok(_) => out.event(Event::Note("recovery: checkpoint of another configuration".into())),
                Err(e) => out.event(Event::Note(format!("recovery: unreadable checkpoint: {e}"))),
            }
        }
        if base_ok {
            for bytes in records {
                match wire::decode::<Record<DRec<F>, ORec<F>>>(&bytes, usize::MAX) {
                    Ok(Record::O(r)) => o_recs.push(r),
                    Ok(Record::D(i, r)) if (i as usize) < n => d_recs[i as usize].push(r),
                    _ => out.event(Event::Note("recovery: unreadable record skipped".into())),
                }
            }
        } else {
            // Records after a lost base cannot be placed: start empty and catch up from peers.
            out.event(Event::Note("recovery: starting without durable state".into()));
            d_recs = vec![Vec::new(); n];
        }
        self.started = true;
        out.set_timer(Timer::RequestTick, self.tick_interval());
        self.replaying = true;
        for (i, recs) in d_recs.into_iter().enumerate() {
            self.with_d(now, i as u32, out, |e, a| e.recover(recs, a));
        }
        self.with_o(now, out, |e, a| e.recover(o_recs, a));
        self.replaying = false;
        // The instances' views are known only now.
        self.coordinating = None;
        self.maybe_order(now, out);
        self.maybe_propose(now, out);
        out.event(Event::StateInstalled { slot: self.exec.slot(), digest: self.exec.state_digest() });
    }
}

//! Checkpoints, garbage collection and state transfer. The paper names
//! checkpoints only ("since the last checkpoint"); this is our protocol.
//!
//! A checkpoint needs a set of commands that every correct replica executes
//! before taking it. Every `checkpoint_interval` commands in its space, a
//! replica orders a **barrier**: an empty keyless command, which interferes
//! with every command, so all correct replicas agree which commands execute
//! before it. The owner collects the replies to its barrier and commits it
//! as a client would (COMMITFAST, or COMMIT after `barrier_wait`). When a
//! replica executes a barrier finally it takes a checkpoint (the state and
//! the [`Frontier`] of what it covers) and broadcasts a signed CHECKPOINT.
//! 2f+1 matching votes make it **stable**: the covered commands leave the
//! log, owner changes report slots after it, and a replica that finds
//! itself behind a stable checkpoint fetches its state (STATEQUERY, STATE).

use super::{Out, Replica};
use crate::messages::{
    barrier_request, epoch_base, next_epoch_owner, CheckpointBody, CheckpointState, CommitBody, Frontier, InstanceId,
    Msg, Signed, SpecReply, StableCheckpoint,
};
use crate::Timer;
use quorate_core::crypto::Digest;
use quorate_core::executor::Checkpoint;
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::Event;
use std::collections::BTreeMap;

/// Our barrier while we drive its commit.
pub(crate) struct BarrierRound {
    pub inst: InstanceId,
    pub replies: BTreeMap<ReplicaId, SpecReply>,
    /// Its COMMITFAST or COMMIT, once sent (sent again until committed).
    pub proposal: Option<Msg>,
}

/// CHECKPOINT votes for one barrier.
#[derive(Default)]
pub(crate) struct Votes {
    /// Our own checkpoint, once we executed the barrier.
    pub mine: Option<(Frontier, Checkpoint)>,
    pub votes: BTreeMap<ReplicaId, Signed<CheckpointBody>>,
}

impl Replica {
    /// Whether the stable checkpoint covers `inst` (executed, possibly collected).
    pub(crate) fn covered(&self, inst: InstanceId) -> bool {
        self.stable.as_ref().is_some_and(|s| s.stable.frontier.covers(inst))
    }

    /// After ordering a client's command in our space: every
    /// `checkpoint_interval` commands, order a barrier (one at a time).
    pub(crate) fn maybe_order_barrier(&mut self, out: &mut Out) {
        self.since_barrier += 1;
        if self.since_barrier < self.cfg.checkpoint_interval || self.barrier.is_some() {
            return;
        }
        self.since_barrier = 0;
        let inst = InstanceId { space: self.id, slot: self.spaces[self.id.index()].next };
        self.barrier = Some(BarrierRound { inst, replies: BTreeMap::new(), proposal: None });
        out.set_timer(Timer::Barrier { inst }, self.cfg.client_retransmit);
        self.order(barrier_request(self.id, inst.slot), out);
    }

    /// A SPECREPLY about our barrier, from `from` (ourselves included).
    pub(crate) fn on_barrier_reply(&mut self, from: ReplicaId, reply: SpecReply, out: &mut Out) {
        let Some(round) = &mut self.barrier else { return };
        let b = &reply.reply.body;
        if b.replica != from || b.inst != round.inst || round.proposal.is_some() {
            return;
        }
        let ours = self.log.get(&round.inst).map(|e| &e.order);
        if ours != Some(&reply.order) || !reply.verify(&self.m, self.crypto.as_ref()) {
            return out.reject(NodeId::Replica(from), "invalid SPECREPLY to a barrier");
        }
        round.replies.insert(from, reply);
        let (n, q) = (self.m.n(), self.m.quorum());
        let first = round.replies.values().next().map(|r| (r.reply.body.clone(), r.result.clone()));
        let all_match = first.is_some_and(|(body, result)| {
            round.replies.values().filter(|r| r.reply.body.matches(&body) && r.result == result).count() == n
        });
        if all_match {
            let cert: Vec<SpecReply> = round.replies.values().cloned().collect();
            let Some(request) = self.log.get(&round.inst).map(|e| e.req.clone()) else { return };
            self.propose_barrier(Msg::CommitFast { request, cert }, out);
        } else if round.replies.len() == n {
            self.barrier_slow_path(out);
        } else if round.replies.len() == q {
            out.set_timer(Timer::Barrier { inst: round.inst }, self.cfg.barrier_wait);
        }
    }

    /// Our barrier's timer: send its proposal again if we made one, else
    /// commit on the slow path if 2f+1 replies are in, else send its order again.
    pub(crate) fn on_barrier_timeout(&mut self, inst: InstanceId, out: &mut Out) {
        let Some(round) = &self.barrier else { return };
        if round.inst != inst {
            return;
        }
        if let Some(msg) = round.proposal.clone() {
            out.broadcast(msg.clone());
            out.set_timer(Timer::Barrier { inst }, self.cfg.client_retransmit);
            return;
        }
        if round.replies.len() >= self.m.quorum() {
            return self.barrier_slow_path(out);
        }
        if let Some(e) = self.log.get(&inst) {
            out.broadcast(Msg::SpecOrder { order: e.order.clone(), request: e.req.clone() });
        }
        out.set_timer(Timer::Barrier { inst }, self.cfg.client_retransmit);
    }

    fn barrier_slow_path(&mut self, out: &mut Out) {
        let Some(round) = &mut self.barrier else { return };
        let Some((inst, deps, seq, cert)) = crate::messages::combine(&round.replies, &self.m) else { return };
        let Some(request) = self.log.get(&inst).map(|e| e.req.clone()) else { return };
        let body = CommitBody { client: request.req.client, inst, deps, seq };
        let commit = Signed::sign(body, self.crypto.as_ref());
        self.propose_barrier(Msg::Commit { commit, request, cert }, out);
    }

    /// Send our barrier's COMMITFAST or COMMIT to all, ourselves included.
    fn propose_barrier(&mut self, msg: Msg, out: &mut Out) {
        let Some(round) = &mut self.barrier else { return };
        round.proposal = Some(msg.clone());
        out.set_timer(Timer::Barrier { inst: round.inst }, self.cfg.client_retransmit);
        out.broadcast(msg.clone());
        let me = NodeId::Replica(self.id);
        match msg {
            Msg::CommitFast { request, cert } => self.on_commit_fast(me, request, cert, out),
            Msg::Commit { commit, request, cert } => self.on_commit(me, commit, request, cert, out),
            _ => {}
        }
    }

    /// What the executed commands cover now, per space.
    fn frontier(&mut self) -> Frontier {
        let n = self.m.n();
        let mut f = Frontier { below: Vec::with_capacity(n), history: Vec::with_capacity(n), extra: Vec::new() };
        let stable = self.stable.as_ref().map(|s| &s.stable.frontier);
        for i in 0..n {
            let space = ReplicaId(i as u32);
            let log = &self.log;
            self.spaces[i].advance(|slot| log.get(&InstanceId { space, slot }).is_some_and(|e| e.executed));
            let below = self.spaces[i].executed_below;
            let history = match below.checked_sub(1) {
                None => Self::initial_history(space),
                Some(last) => match self.log.get(&InstanceId { space, slot: last }) {
                    Some(e) if !self.spaces[i].void(last) => e.order.body.history,
                    // Collected: the stable checkpoint ends exactly here.
                    _ if stable.is_some_and(|s| s.below(space) == below) => {
                        stable.and_then(|s| s.history.get(i).copied()).unwrap_or_default()
                    }
                    // The start of a reopened space's epoch: its chain starts afresh.
                    _ => Digest::default(),
                },
            };
            f.below.push(below);
            f.history.push(history);
        }
        // Dropped slots are nothing: which of them a replica held differs.
        let mut extra: Vec<InstanceId> = self
            .log
            .iter()
            .filter(|(i, e)| e.executed && i.slot >= f.below[i.space.index()] && !self.void(**i))
            .map(|(i, _)| *i)
            .collect();
        extra.sort();
        f.extra = extra;
        f
    }

    /// The digest a space's history starts from.
    pub(crate) fn initial_history(space: ReplicaId) -> Digest {
        Digest::of_parts(&[b"ezbft-space", &space.0.to_le_bytes()])
    }

    /// Barrier `inst` just executed finally (speculation rolled back, so the
    /// executor holds exactly the final state): take the checkpoint and vote.
    pub(crate) fn take_checkpoint(&mut self, inst: InstanceId, out: &mut Out) {
        let frontier = self.frontier();
        let cp = self.exec.checkpoint();
        out.event(Event::Checkpoint { slot: cp.slot, digest: cp.digest });
        let body = CheckpointBody { replica: self.id, barrier: inst, state: cp.digest, frontier: frontier.digest() };
        let vote = Signed::sign(body, self.crypto.as_ref());
        out.broadcast(Msg::Checkpoint(Box::new(vote.clone())));
        let v = self.votes.entry(inst).or_default();
        v.mine = Some((frontier, cp));
        v.votes.insert(self.id, vote);
        self.check_stable(inst, out);
    }

    /// CHECKPOINT from `from`: a replica's vote, or one it forwards (the
    /// voter's signature is what counts, not the sender).
    pub(crate) fn on_checkpoint(&mut self, from: ReplicaId, vote: Signed<CheckpointBody>, out: &mut Out) {
        let voter = vote.body.replica;
        if !self.m.contains(voter) || !vote.verify(NodeId::Replica(voter), self.crypto.as_ref()) {
            return out.reject(NodeId::Replica(from), "bad CHECKPOINT signature");
        }
        let barrier = vote.body.barrier;
        // A vote we hold already (forwarded again) changes nothing; counting
        // it would re-arm the state transfer timer, which then never fires.
        if self.covered(barrier) || self.votes.get(&barrier).is_some_and(|v| v.votes.contains_key(&voter)) {
            return;
        }
        // Bounded: a faulty replica could vote for barriers that never exist.
        if !self.votes.contains_key(&barrier) && self.votes.len() >= 4 * self.m.n() {
            let weakest = self.votes.iter().filter(|(_, v)| v.mine.is_none()).min_by_key(|(_, v)| v.votes.len());
            let Some(weakest) = weakest.map(|(b, _)| *b) else { return };
            self.votes.remove(&weakest);
        }
        self.votes.entry(barrier).or_default().votes.insert(voter, vote);
        self.check_stable(barrier, out);
    }

    /// Show `to` the votes of our stable checkpoint: it asked for a command
    /// the checkpoint collected, so it missed them (they are sent once, and
    /// a partition or loss can take them all) and will never see that
    /// command's commit. With 2f+1 votes for a barrier it has not executed
    /// it fetches the state as usual.
    pub(crate) fn show_stable(&self, to: ReplicaId, out: &mut Out) {
        let Some(s) = &self.stable else { return };
        for vote in &s.stable.votes {
            out.send(to, Msg::Checkpoint(Box::new(vote.clone())));
        }
    }

    /// A valid stable checkpoint seen elsewhere (in an owner change): count
    /// its votes, which starts a state transfer if we are behind it.
    pub(crate) fn learn_stable(&mut self, stable: &StableCheckpoint, out: &mut Out) {
        let Some(barrier) = stable.barrier() else { return };
        if self.covered(barrier) {
            return;
        }
        let v = self.votes.entry(barrier).or_default();
        for vote in &stable.votes {
            v.votes.entry(vote.body.replica).or_insert_with(|| vote.clone());
        }
        self.check_stable(barrier, out);
    }

    /// With 2f+1 votes matching ours, the checkpoint at `barrier` is stable.
    /// With 2f+1 matching votes and no checkpoint of ours, we are behind.
    fn check_stable(&mut self, barrier: InstanceId, out: &mut Out) {
        let q = self.m.quorum();
        let Some(v) = self.votes.get(&barrier) else { return };
        let Some((frontier, cp)) = &v.mine else {
            let agreeing = v.votes.values().any(|a| {
                v.votes.values().filter(|b| b.body.state == a.body.state && b.body.frontier == a.body.frontier).count()
                    >= q
            });
            if agreeing {
                out.set_timer(Timer::StateTransfer { barrier }, self.cfg.commit_timeout);
            }
            return;
        };
        let mine = &v.votes[&self.id].body;
        let agree: Vec<Signed<CheckpointBody>> = v
            .votes
            .values()
            .filter(|b| b.body.state == mine.state && b.body.frontier == mine.frontier)
            .take(q)
            .cloned()
            .collect();
        if agree.len() < q {
            return;
        }
        // A stable checkpoint we build counts 2f+1 distinct voters (as `StableCheckpoint::verify` checks).
        quorate_core::invariant!(
            quorate_core::invariant::distinct(agree.iter().map(|v| v.body.replica)),
            "ezbft: stable checkpoint at {barrier:?} counts a replica twice"
        );
        let state = CheckpointState {
            stable: StableCheckpoint { frontier: frontier.clone(), votes: agree },
            state: cp.clone(),
        };
        self.collect(state, out);
    }

    /// Make `state` (newer than ours, and matching our own execution) the
    /// stable checkpoint and drop what it covers from the log.
    fn collect(&mut self, state: CheckpointState, out: &mut Out) {
        let frontier = state.stable.frontier.clone();
        let barrier = state.stable.barrier();
        self.stable = Some(state);
        self.votes.retain(|b, _| !frontier.covers(*b) && Some(*b) != barrier);
        self.forget_covered(&frontier);
        self.persist_checkpoint(out);
    }

    /// Drop the log entries of every slot below the frontier (executed
    /// everywhere that holds the checkpoint); their index entries too. Covered
    /// slots above it stay, so that owner-change views stay contiguous.
    fn forget_covered(&mut self, frontier: &Frontier) {
        let gone: Vec<InstanceId> = self
            .log
            .iter()
            .filter(|(i, e)| i.slot < frontier.below(i.space) || (e.executed && self.void(**i)))
            .map(|(i, _)| *i)
            .collect();
        for inst in gone {
            if let Some(s) = self.spaces.get_mut(inst.space.index()) {
                s.unexecuted.remove(&inst.slot);
            }
            if let Some(e) = self.log.remove(&inst) {
                let r = (e.req.req.client, e.req.req.seq);
                if self.by_request.get(&r) == Some(&inst) {
                    self.by_request.remove(&r);
                }
            }
            self.waiting.remove(&inst);
            self.uncommitted.remove(&inst);
            self.blocked.remove(&inst);
            self.parked.remove(&inst);
        }
        self.agreements.retain(|i, _| !frontier.covers(*i));
        let n = self.m.n();
        for (i, s) in self.spaces.iter_mut().enumerate() {
            let below = frontier.below.get(i).copied().unwrap_or(0);
            self.own_replies[i].forget_below(&below);
            self.own_votes[i].forget_below(&(below, crate::messages::Phase::Accept));
            s.executed_below = s.executed_below.max(below);
            // NEWOWNERs of epochs the checkpoint covers whole (a replica that
            // missed them needs a state transfer anyway); the latest stays.
            let space = ReplicaId(i as u32);
            let keep_from = s.installed.len().saturating_sub(1);
            let mut k = 0;
            s.installed.retain(|no| {
                k += 1;
                k > keep_from || epoch_base(space, next_epoch_owner(space, no.owner(), n), n) > below
            });
        }
        let floor = self.stable.as_ref().and_then(|s| s.stable.barrier());
        self.interference.forget(frontier, floor);
    }

    /// 2f+1 replicas have a checkpoint at `barrier` and we did not take it:
    /// ask a voter for its state (another one each time).
    pub(crate) fn on_state_transfer_timeout(&mut self, barrier: InstanceId, out: &mut Out) {
        let executed = self.covered(barrier) || self.log.get(&barrier).is_some_and(|e| e.executed);
        let Some(v) = self.votes.get_mut(&barrier) else { return };
        if executed || v.mine.is_some() {
            return;
        }
        let voters: Vec<ReplicaId> = v.votes.keys().copied().filter(|r| *r != self.id).collect();
        if voters.is_empty() {
            return;
        }
        self.state_asks += 1;
        let to = voters[(self.state_asks as usize) % voters.len()];
        out.send(to, Msg::StateQuery { barrier });
        out.set_timer(Timer::StateTransfer { barrier }, self.cfg.commit_timeout);
    }

    /// STATEQUERY from `from`: our stable checkpoint, if it reaches `barrier`.
    pub(crate) fn on_state_query(&mut self, from: ReplicaId, barrier: InstanceId, out: &mut Out) {
        if let Some(s) = &self.stable {
            if s.stable.barrier() == Some(barrier) || s.stable.frontier.covers(barrier) {
                out.send(from, Msg::State(Box::new(s.clone())));
            }
        }
    }

    /// STATE from `from`: install it if it is valid and ahead of us.
    pub(crate) fn on_state(&mut self, from: ReplicaId, state: CheckpointState, out: &mut Out) {
        let valid = state.stable.verify(&self.m, self.crypto.as_ref())
            && state.stable.state() == Some(state.state.digest)
            && state.state.is_consistent();
        if !valid {
            return out.reject(NodeId::Replica(from), "invalid STATE");
        }
        let Some(barrier) = state.stable.barrier() else { return };
        if self.covered(barrier) || self.log.get(&barrier).is_some_and(|e| e.executed) {
            return;
        }
        self.install_state(state, out);
    }

    /// Replace our state with a stable checkpoint we are behind (state
    /// transfer, recovery). Every command we executed is covered by it: a
    /// barrier interferes with all commands, so none runs before it unless
    /// it is ordered before it.
    pub(crate) fn install_state(&mut self, state: CheckpointState, out: &mut Out) {
        if let Err(e) = self.exec.install(&state.state, out) {
            return out.event(Event::Note(format!("checkpoint install failed: {e}")));
        }
        self.speculated.clear();
        let frontier = state.stable.frontier.clone();
        self.finals = self.exec.table().last_replies().map(|(c, t, r)| (c, (t, r.clone()))).collect();
        for (inst, e) in self.log.iter_mut() {
            let Some(s) = self.spaces.get_mut(inst.space.index()) else { continue };
            if frontier.covers(*inst) {
                e.executed = true;
                e.committed = true;
                self.waiting.remove(inst);
                s.unexecuted.remove(&inst.slot);
            } else {
                e.executed = false;
                e.spec_result = None;
                s.unexecuted.insert(inst.slot);
                if e.committed {
                    self.waiting.insert(*inst);
                }
            }
        }
        for (i, s) in self.spaces.iter_mut().enumerate() {
            let below = frontier.below.get(i).copied().unwrap_or(0);
            if s.next < below {
                s.next = below;
                s.history = frontier.history.get(i).copied().unwrap_or(s.history);
                s.future.retain(|slot, _| *slot >= below);
                s.asked = None;
            }
        }
        self.collect(state, out);
        // Orders buffered behind the slots the checkpoint skipped.
        for i in 0..self.spaces.len() {
            self.drain_future(ReplicaId(i as u32), out);
        }
        self.execute_all_ready(out);
    }
}

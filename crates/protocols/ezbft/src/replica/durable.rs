//! What a replica writes to its log before it speaks, and how it comes back
//! from it after a crash.
//!
//! Every SPECREPLY is backed by a record of the order it answers (with the
//! reply itself), every ACCEPT and CONFIRM by a record of what it voted
//! for, every commit by a record of it, every owner-change step by a record; the host makes a record durable before any later message of
//! the replica leaves. A replica that recovers therefore never answers a
//! slot twice differently, never votes twice differently, never orders a slot of its own space twice, and
//! keeps its promise not to take orders in a space under owner change. A
//! stable checkpoint replaces all earlier records; the commands it does not
//! cover are written again after it.

use super::{Out, Replica};
use crate::messages::{
    CheckpointState, CommitProof, InstanceId, NewOwnerCert, Phase, Proposal, Signed, SpecOrder, SpecReply,
};
use quorate_core::machine::{Effect, Event};
use quorate_core::request::SignedRequest;
use quorate_core::{wire, Bytes};
use serde::{Deserialize, Serialize};

/// One record of the log.
#[derive(Serialize, Deserialize)]
pub(crate) enum Record {
    /// An order we took (ours or another leader's), with our reply to it.
    Order {
        order: Signed<SpecOrder>,
        request: SignedRequest,
        deps: Vec<InstanceId>,
        seq: u64,
        reply: Option<Box<SpecReply>>,
    },
    /// A commit (`proof` none: settled by an owner change).
    Commit {
        order: Signed<SpecOrder>,
        request: SignedRequest,
        deps: Vec<InstanceId>,
        seq: u64,
        slow: bool,
        proof: Option<CommitProof>,
    },
    /// We accepted this proposal (our ACCEPT for its slot).
    Accept { request: SignedRequest, proposal: Proposal },
    /// We hold this prepared certificate (our CONFIRM for its slot).
    Prepared { request: SignedRequest, proof: CommitProof },
    /// We committed to replacing the owner of `space` by `owner`.
    Changing { space: quorate_core::ids::ReplicaId, owner: u64 },
    /// We installed this NEWOWNER (agreed: with 2f+1 CONFIRMs).
    NewOwner(Box<NewOwnerCert>),
    /// Our NEWOWNER vote: ACCEPT (`cert` without votes) or CONFIRM (`cert` the 2f+1 ACCEPTs).
    NewOwnerVote { phase: Phase, cert: Box<NewOwnerCert> },
}

impl Replica {
    pub(crate) fn persist_record(&self, record: &Record, out: &mut Out) {
        if !self.replaying {
            out.push(Effect::Persist(Bytes::from(wire::encode(record))));
        }
    }

    /// Before our reply to `inst` (and for our own space, before its order) leaves.
    pub(crate) fn persist_order(&self, inst: InstanceId, out: &mut Out) {
        if let Some(e) = self.log.get(&inst) {
            let record = Record::Order {
                order: e.order.clone(),
                request: e.req.clone(),
                deps: e.deps.clone(),
                seq: e.seq,
                reply: e.reply.clone().map(Box::new),
            };
            self.persist_record(&record, out);
        }
    }

    /// After `inst` was committed.
    pub(crate) fn persist_commit(&self, inst: InstanceId, slow: bool, out: &mut Out) {
        if let Some(e) = self.log.get(&inst) {
            let record = Record::Commit {
                order: e.order.clone(),
                request: e.req.clone(),
                deps: e.deps.clone(),
                seq: e.seq,
                slow,
                proof: e.proof.clone(),
            };
            self.persist_record(&record, out);
        }
    }

    /// After committing to an owner change.
    pub(crate) fn persist_changing(&self, space: quorate_core::ids::ReplicaId, owner: u64, out: &mut Out) {
        self.persist_record(&Record::Changing { space, owner }, out);
    }

    /// After installing a NEWOWNER.
    pub(crate) fn persist_new_owner(&self, new_owner: &NewOwnerCert, out: &mut Out) {
        self.persist_record(&Record::NewOwner(Box::new(new_owner.clone())), out);
    }

    /// Before our NEWOWNER vote leaves.
    pub(crate) fn persist_new_owner_vote(&self, phase: Phase, cert: &NewOwnerCert, out: &mut Out) {
        self.persist_record(&Record::NewOwnerVote { phase, cert: Box::new(cert.clone()) }, out);
    }

    /// The stable checkpoint replaces the log; what it does not cover is written again.
    pub(crate) fn persist_checkpoint(&self, out: &mut Out) {
        if self.replaying {
            return;
        }
        let Some(state) = &self.stable else { return };
        out.push(Effect::PersistCheckpoint(Bytes::from(wire::encode(state))));
        for new_owner in self.spaces.iter().flat_map(|s| &s.installed) {
            self.persist_new_owner(new_owner, out);
        }
        for round in self.spaces.iter().flat_map(|s| s.rounds.values()) {
            if let Some(x) = round.accepted.and_then(|d| round.candidates.get(&d)) {
                let cert = NewOwnerCert { new_owner: x.clone(), votes: Vec::new() };
                self.persist_new_owner_vote(Phase::Accept, &cert, out);
            }
            if let Some(cert) = &round.prepared {
                self.persist_new_owner_vote(Phase::Confirm, cert, out);
            }
        }
        let mut live: Vec<InstanceId> = self.log.keys().copied().collect();
        live.sort();
        for inst in &live {
            self.persist_order(*inst, out);
        }
        for record in self.agreement_records() {
            self.persist_record(&record, out);
        }
        for inst in &live {
            if let Some(e) = self.log.get(inst).filter(|e| e.committed) {
                self.persist_commit(*inst, e.reply_when_final, out);
            }
        }
        for (i, s) in self.spaces.iter().enumerate() {
            if let Some(owner) = s.changing {
                self.persist_changing(quorate_core::ids::ReplicaId(i as u32), owner, out);
            }
        }
    }

    /// Come back from the durable checkpoint and records.
    pub(crate) fn recover(&mut self, checkpoint: Option<Bytes>, records: Vec<Bytes>, out: &mut Out) {
        self.replaying = true;
        if let Some(bytes) = checkpoint {
            match wire::decode::<CheckpointState>(&bytes, usize::MAX) {
                Ok(state) => self.install_state(state, out),
                Err(e) => out.event(Event::Note(format!("recovery: unreadable checkpoint: {e}"))),
            }
        }
        for bytes in records {
            let Ok(record) = wire::decode::<Record>(&bytes, usize::MAX) else {
                out.event(Event::Note("recovery: unreadable record skipped".into()));
                continue;
            };
            match record {
                Record::Order { order, request, deps, seq, reply } => {
                    self.replay_order(order, request, deps, seq, reply, out)
                }
                Record::Commit { order, request, deps, seq, slow, proof } => {
                    self.commit(order, request, deps, seq, slow, proof, out)
                }
                Record::Accept { request, proposal } => self.replay_accept(request, proposal),
                Record::Prepared { request, proof } => self.replay_prepared(request, proof),
                Record::Changing { space, owner } => {
                    if let Some(s) = self.spaces.get_mut(space.index()) {
                        if s.frozen.is_none() && s.changing.is_none_or(|c| c < owner) {
                            s.changing = Some(owner);
                            out.set_timer(crate::Timer::NewOwner { space, owner }, self.cfg.new_owner_timeout);
                        }
                    }
                }
                Record::NewOwner(new_owner) => self.accept_new_owner(*new_owner, out),
                Record::NewOwnerVote { phase, cert } => self.replay_new_owner_vote(phase, *cert),
            }
        }
        self.replaying = false;
        // Our barrier that was not committed yet: drive its commit again.
        let ours =
            self.log.iter().filter(|(i, e)| i.space == self.id && e.barrier && !e.committed).map(|(i, _)| *i).max();
        if let Some(inst) = ours {
            self.barrier = Some(super::checkpoint::BarrierRound { inst, replies: Default::default(), proposal: None });
            out.set_timer(crate::Timer::Barrier { inst }, self.cfg.client_retransmit);
        }
    }

    /// An order taken before the crash: back in the log as it was, with our reply.
    fn replay_order(
        &mut self,
        order: Signed<SpecOrder>,
        request: SignedRequest,
        deps: Vec<InstanceId>,
        seq: u64,
        reply: Option<Box<SpecReply>>,
        out: &mut Out,
    ) {
        let inst = order.body.inst;
        if self.spaces.get(inst.space.index()).is_some_and(|s| order.body.owner > s.owner) {
            self.reopen(inst.space, order.body.owner, out);
        }
        let Some(space) = self.spaces.get_mut(inst.space.index()) else { return };
        if inst.slot >= space.next {
            space.next = inst.slot + 1;
            space.history = order.body.history;
        }
        if inst.space == self.id {
            self.last_ordered = self.last_ordered.max(Some(inst.slot));
        }
        if let Some(r) = reply.as_ref().filter(|_| quorate_core::invariant::ENABLED) {
            let body = r.reply.body.clone();
            self.own_replies[inst.space.index()].cast(inst.slot, body, "ezbft: recovered SPECREPLY");
        }
        if self.log.contains_key(&inst) || self.covered(inst) {
            return;
        }
        if inst.space == self.id {
            self.led.insert(request.req.client, (request.req.seq, inst));
        }
        self.insert(request, order, deps, seq);
        if let Some(e) = self.log.get_mut(&inst) {
            e.reply = reply.map(|r| *r);
        }
    }
}

//! Agreement on a slot's commit: ACCEPT and CONFIRM (not in the paper).
//!
//! A replica that receives a valid proposal (COMMITFAST or COMMIT) for a
//! slot accepts the first one it sees and tells every replica (ACCEPT,
//! signed). With 2f+1 ACCEPTs for one proposal it is *prepared* and sends
//! CONFIRM (signed). The proposal is committed with 3f+1 ACCEPTs (every
//! replica accepted it, so no other can be prepared) or 2f+1 CONFIRMs (f+1
//! correct replicas hold the prepared certificate and show it to any owner
//! change). Two proposals cannot both gather 2f+1 ACCEPTs: the quorums
//! share a correct replica, which accepts once. The paper commits on the
//! client's proposal alone, which lets a faulty client commit one slot
//! differently at different replicas (see the decision record).

use super::commit::{certified, proposed, Strength};
use super::{Out, Replica};
use crate::messages::{
    commit_digest, CommitProof, InstanceId, Msg, Phase, Proposal, Signed, SlotReport, SpecOrder, VoteBody,
};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::request::SignedRequest;
use std::collections::BTreeMap;

/// Valid proposals kept per slot: a correct client makes one; more only
/// come from a faulty client, whose extra ones need not all be kept (a
/// commit proof carries its proposal).
const MAX_PROPOSALS: usize = 4;

/// How far past the last slot we know of a space votes are kept: a replica
/// behind by more fetches the commit proof (COMMITQUERY) instead, and a
/// faulty replica cannot make us keep votes for made-up slots.
const VOTE_WINDOW: u64 = 4096;

/// A valid proposal and what it commits.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub order: Signed<SpecOrder>,
    pub request: SignedRequest,
    pub deps: Vec<InstanceId>,
    pub seq: u64,
    pub proposal: Proposal,
}

/// One slot's agreement, until it is committed.
#[derive(Default)]
pub(crate) struct Agreement {
    /// Valid proposals seen, by [`commit_digest`].
    pub proposals: BTreeMap<Digest, Candidate>,
    /// The proposal we accepted.
    pub accepted: Option<Digest>,
    /// The prepared certificate we confirmed (2f+1 ACCEPTs).
    pub prepared: Option<CommitProof>,
    /// One ACCEPT per replica (the first), ours included.
    pub accepts: BTreeMap<ReplicaId, Signed<VoteBody>>,
    /// One CONFIRM per replica (the first), ours included.
    pub confirms: BTreeMap<ReplicaId, Signed<VoteBody>>,
    /// A client waits for COMMITREPLY.
    pub slow: bool,
    /// Asked for the commit proof: the votes agree on a proposal we lack.
    pub asked: bool,
}

impl Agreement {
    /// Every vote of `phase`, by replica.
    fn of(&mut self, phase: Phase) -> &mut BTreeMap<ReplicaId, Signed<VoteBody>> {
        match phase {
            Phase::Accept => &mut self.accepts,
            Phase::Confirm => &mut self.confirms,
        }
    }

    /// The votes of `phase` for `digest`.
    fn votes(&self, phase: Phase, digest: &Digest) -> Vec<Signed<VoteBody>> {
        let all = if phase == Phase::Accept { &self.accepts } else { &self.confirms };
        all.values().filter(|v| v.body.commit == *digest).cloned().collect()
    }

    /// The digest `phase` votes agree on, with at least `count` of them.
    fn agreed(&self, phase: Phase, count: usize) -> Option<(Digest, Vec<Signed<VoteBody>>)> {
        let all = if phase == Phase::Accept { &self.accepts } else { &self.confirms };
        all.values().map(|v| v.body.commit).find_map(|d| {
            let votes = self.votes(phase, &d);
            (votes.len() >= count).then_some((d, votes))
        })
    }
}

impl Replica {
    /// A proposal (COMMITFAST or COMMIT) from `from`: its proposer, or a
    /// replica forwarding it.
    pub(crate) fn on_proposal(&mut self, from: NodeId, request: SignedRequest, proposal: Proposal, out: &mut Out) {
        let c = request.req.client;
        // The client waits for COMMITREPLY (a forwarded COMMIT is not the client asking again).
        let slow = matches!(proposal, Proposal::Slow { .. }) && from == NodeId::Client(c);
        let Some((order, deps, seq)) = proposed(&self.m, self.crypto.as_ref(), c, &request, &proposal) else {
            return out.reject(from, "invalid COMMITFAST or COMMIT certificate");
        };
        let inst = order.body.inst;
        if self.covered(inst) && !self.log.contains_key(&inst) {
            // Executed and collected already.
            return;
        }
        self.follow_epoch(&order, out);
        if let Some(e) = self.log.get_mut(&inst).filter(|e| e.committed) {
            // Committed already (from this or another proposal, or by an
            // owner change): a waiting client gets the final result.
            if slow && e.req == request {
                e.reply_when_final = true;
                self.resend_reply(inst, out);
            }
            return;
        }
        if self.void(inst) {
            return;
        }
        let digest = commit_digest(&order, &deps, seq);
        let a = self.agreements.entry(inst).or_default();
        a.slow |= matches!(proposal, Proposal::Slow { .. });
        if a.proposals.len() < MAX_PROPOSALS {
            a.proposals.entry(digest).or_insert(Candidate { order, request, deps, seq, proposal });
        }
        let again = a.accepted.is_some();
        self.accept(inst, digest, out);
        if again && from == NodeId::Client(c) {
            // The client is still waiting: the others may have committed
            // without us (we were cut off while they voted), and they ignore
            // votes for a committed slot, so ask for the commit itself. Only
            // on the client's word: the answers to a query carry proposals
            // too, and asking again on those would never end.
            self.query_commit(inst, out);
        }
        self.try_agree(inst, out);
    }

    /// Vote for `digest` if it is the first proposal for `inst` we see and
    /// the space is open; if we voted already, the proposer is still
    /// waiting (it sent again): our votes may have been lost, send them again.
    pub(crate) fn accept(&mut self, inst: InstanceId, digest: Digest, out: &mut Out) {
        let open = self.spaces.get(inst.space.index()).is_some_and(|s| s.open());
        let Some(a) = self.agreements.get_mut(&inst) else { return };
        if a.accepted.is_some() {
            for v in [a.accepts.get(&self.id), a.confirms.get(&self.id)].into_iter().flatten() {
                out.broadcast(vote_msg(v.clone()));
            }
            return;
        }
        if !open {
            // Committed to an owner change: our view, sent already, is what counts.
            return;
        }
        let Some(c) = a.proposals.get(&digest) else { return };
        let record = super::durable::Record::Accept { request: c.request.clone(), proposal: c.proposal.clone() };
        // One ACCEPT per slot (the agreement's safety, decision 0006), also across recovery.
        self.own_votes[inst.space.index()].cast((inst.slot, Phase::Accept), digest, "ezbft: ACCEPT");
        a.accepted = Some(digest);
        let vote = sign_vote(self.id, self.crypto.as_ref(), inst, Phase::Accept, digest);
        a.accepts.insert(self.id, vote.clone());
        self.persist_record(&record, out);
        out.broadcast(Msg::Accept(Box::new(vote)));
    }

    /// ACCEPT or CONFIRM from `from`.
    pub(crate) fn on_vote(&mut self, from: ReplicaId, vote: Signed<VoteBody>, phase: Phase, out: &mut Out) {
        let b = &vote.body;
        let inst = b.inst;
        if b.replica != from || b.phase != phase {
            return out.reject(NodeId::Replica(from), "vote sent for another replica or in the wrong message");
        }
        let Some(space) = self.spaces.get(inst.space.index()) else {
            return out.reject(NodeId::Replica(from), "vote for an unknown space");
        };
        let far = inst.slot > space.next.saturating_add(VOTE_WINDOW);
        if far || space.void(inst.slot) || self.covered(inst) || self.log.get(&inst).is_some_and(|e| e.committed) {
            return;
        }
        if !vote.verify(NodeId::Replica(from), self.crypto.as_ref()) {
            return out.reject(NodeId::Replica(from), "vote with a bad signature");
        }
        let a = self.agreements.entry(inst).or_default();
        let votes = a.of(phase);
        match votes.get(&from) {
            Some(v) if v.body.commit != vote.body.commit => {
                return out.reject(NodeId::Replica(from), "two different votes for one slot");
            }
            Some(_) => return,
            None => {
                votes.insert(from, vote);
            }
        }
        self.try_agree(inst, out);
    }

    /// Confirm once prepared; commit once agreed.
    pub(crate) fn try_agree(&mut self, inst: InstanceId, out: &mut Out) {
        let (n, q) = (self.m.n(), self.m.quorum());
        let open = self.spaces.get(inst.space.index()).is_some_and(|s| s.open());
        let Some(a) = self.agreements.get_mut(&inst) else { return };
        if a.prepared.is_none() && open {
            let prepared = a.agreed(Phase::Accept, q).and_then(|(d, votes)| {
                let c = a.proposals.get(&d)?;
                Some((d, c.request.clone(), CommitProof { proposal: c.proposal.clone(), votes }))
            });
            if let Some((digest, request, proof)) = prepared {
                let record = super::durable::Record::Prepared { request, proof: proof.clone() };
                // One CONFIRM per slot, also across recovery.
                self.own_votes[inst.space.index()].cast((inst.slot, Phase::Confirm), digest, "ezbft: CONFIRM");
                a.prepared = Some(proof);
                let vote = sign_vote(self.id, self.crypto.as_ref(), inst, Phase::Confirm, digest);
                a.confirms.insert(self.id, vote.clone());
                self.persist_record(&record, out);
                out.broadcast(Msg::Confirm(Box::new(vote)));
            }
        }
        let Some(a) = self.agreements.get_mut(&inst) else { return };
        let Some((digest, votes)) = a.agreed(Phase::Accept, n).or_else(|| a.agreed(Phase::Confirm, q)) else {
            return;
        };
        match a.proposals.get(&digest).cloned() {
            Some(c) => {
                // §IV-A step 5.1, §IV-C step 5.2 (with the agreement): the
                // commit proof we build counts each replica once.
                quorate_core::invariant!(
                    quorate_core::invariant::distinct(votes.iter().map(|v| v.body.replica)),
                    "ezbft: commit proof of {inst:?} counts a replica twice"
                );
                let proof = CommitProof { proposal: c.proposal, votes };
                let slow = a.slow;
                self.commit(c.order, c.request, c.deps, c.seq, slow, Some(proof), out);
            }
            None if !a.asked => {
                a.asked = true;
                self.query_commit(inst, out);
            }
            None => {}
        }
    }

    /// The proposal we accepted for `inst` and our votes, to `to` (or all):
    /// it asked for a commit we do not have yet, or we wait for one.
    pub(crate) fn show_agreement(&self, to: Option<ReplicaId>, inst: InstanceId, out: &mut Out) {
        let Some(a) = self.agreements.get(&inst) else { return };
        let accepted = a.accepted.and_then(|d| a.proposals.get(&d)).map(|c| match &c.proposal {
            Proposal::Fast(cert) => Msg::CommitFast { request: c.request.clone(), cert: cert.clone() },
            Proposal::Slow { commit, cert } => {
                Msg::Commit { commit: commit.clone(), request: c.request.clone(), cert: cert.clone() }
            }
        });
        let votes =
            [a.accepts.get(&self.id), a.confirms.get(&self.id)].into_iter().flatten().map(|v| vote_msg(v.clone()));
        for msg in accepted.into_iter().chain(votes) {
            match to {
                Some(r) => out.send(r, msg),
                None => out.broadcast(msg),
            }
        }
    }

    /// What an owner-change view says about `inst`: the order, and the
    /// strongest evidence we hold (a commit proof, or a prepared
    /// certificate and the proposal we accepted, or our own reply).
    pub(crate) fn slot_report(&self, inst: InstanceId) -> Option<SlotReport> {
        let a = self.agreements.get(&inst);
        let accepted = a.and_then(|a| a.proposals.get(&a.accepted?));
        let prepared = a.and_then(|a| {
            a.prepared.clone().or_else(|| {
                let (d, votes) = a.agreed(Phase::Accept, self.m.quorum())?;
                Some(CommitProof { proposal: a.proposals.get(&d)?.proposal.clone(), votes })
            })
        });
        match self.log.get(&inst) {
            Some(e) if e.proof.is_some() => Some(SlotReport {
                order: e.order.clone(),
                request: e.req.clone(),
                // A commit proof settles the slot on its own: the rest would only add bytes.
                reply: None,
                accepted: None,
                cert: e.proof.clone(),
            }),
            Some(e) => Some(SlotReport {
                order: e.order.clone(),
                request: e.req.clone(),
                reply: e.reply.clone(),
                accepted: accepted.map(|c| c.proposal.clone()),
                cert: prepared,
            }),
            None => accepted.map(|c| SlotReport {
                order: c.order.clone(),
                request: c.request.clone(),
                reply: None,
                accepted: Some(c.proposal.clone()),
                cert: prepared,
            }),
        }
    }

    /// Replay our ACCEPT: the slot keeps the proposal we voted for.
    pub(crate) fn replay_accept(&mut self, request: SignedRequest, proposal: Proposal) {
        let c = request.req.client;
        let Some((order, deps, seq)) = proposed(&self.m, self.crypto.as_ref(), c, &request, &proposal) else {
            return;
        };
        let inst = order.body.inst;
        let digest = commit_digest(&order, &deps, seq);
        let vote = sign_vote(self.id, self.crypto.as_ref(), inst, Phase::Accept, digest);
        if let Some(v) = self.own_votes.get_mut(inst.space.index()) {
            v.cast((inst.slot, Phase::Accept), digest, "ezbft: recovered ACCEPT");
        }
        let a = self.agreements.entry(inst).or_default();
        a.slow |= matches!(proposal, Proposal::Slow { .. });
        a.proposals.insert(digest, Candidate { order, request, deps, seq, proposal });
        a.accepted = Some(digest);
        a.accepts.insert(self.id, vote);
    }

    /// Replay our CONFIRM: the slot keeps the prepared certificate.
    pub(crate) fn replay_prepared(&mut self, request: SignedRequest, proof: CommitProof) {
        let Some((order, deps, seq)) = certified(&self.m, self.crypto.as_ref(), &request, &proof, Strength::Prepared)
        else {
            return;
        };
        let inst = order.body.inst;
        let digest = commit_digest(&order, &deps, seq);
        let vote = sign_vote(self.id, self.crypto.as_ref(), inst, Phase::Confirm, digest);
        if let Some(v) = self.own_votes.get_mut(inst.space.index()) {
            v.cast((inst.slot, Phase::Confirm), digest, "ezbft: recovered CONFIRM");
        }
        let a = self.agreements.entry(inst).or_default();
        for v in &proof.votes {
            a.accepts.entry(v.body.replica).or_insert_with(|| v.clone());
        }
        let proposal = proof.proposal.clone();
        a.proposals.insert(digest, Candidate { order, request, deps, seq, proposal });
        a.prepared = Some(proof);
        a.confirms.insert(self.id, vote);
    }

    /// The records that keep our votes for slots not committed yet (written
    /// again after a stable checkpoint replaced the log).
    pub(crate) fn agreement_records(&self) -> Vec<super::durable::Record> {
        let mut slots: Vec<&InstanceId> = self.agreements.keys().collect();
        slots.sort();
        let mut records = Vec::new();
        for inst in slots {
            let a = &self.agreements[inst];
            if let Some(c) = a.accepted.and_then(|d| a.proposals.get(&d)) {
                records
                    .push(super::durable::Record::Accept { request: c.request.clone(), proposal: c.proposal.clone() });
            }
            let prepared = a.prepared.as_ref().and_then(|p| Some((p, a.proposals.get(&p.votes.first()?.body.commit)?)));
            if let Some((proof, c)) = prepared {
                records.push(super::durable::Record::Prepared { request: c.request.clone(), proof: proof.clone() });
            }
        }
        records
    }
}

/// Replica `me`'s signed vote of `phase` for `commit` in `inst`.
fn sign_vote(me: ReplicaId, crypto: &dyn Crypto, inst: InstanceId, phase: Phase, commit: Digest) -> Signed<VoteBody> {
    Signed::sign(VoteBody { replica: me, inst, phase, commit }, crypto)
}

fn vote_msg(v: Signed<VoteBody>) -> Msg {
    match v.body.phase {
        Phase::Accept => Msg::Accept(Box::new(v)),
        Phase::Confirm => Msg::Confirm(Box::new(v)),
    }
}

//! How a command becomes committed. The client proposes: COMMITFAST
//! (§IV-A step 5.1, 3f+1 matching SPECREPLYs) or COMMIT (§IV-C step 5.2,
//! 2f+1 replies combined). The paper commits on the proposal itself; here
//! the replicas first agree on one proposal per slot (`agree.rs`), because
//! a faulty client can build two valid proposals with different
//! dependencies (see the decision record). A committed command executes
//! finally; on the slow path the replica answers with COMMITREPLY.
//! COMMITQUERY and COMMITTED fetch a commit proof from another replica.

use super::{Out, Replica};
use crate::messages::{
    barrier_space, canonical_deps, commit_digest, request_authentic, request_digest, CommitBody, CommitProof,
    InstanceId, Phase, Proposal, Signed, SpecOrder, SpecReply,
};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::membership::Membership;
use quorate_core::request::SignedRequest;
use std::collections::BTreeSet;

/// How many consecutive commits a COMMITQUERY is answered with.
const COMMIT_BATCH: u64 = 32;

/// What a proposal commits for client `c`'s `request`: (order, deps, seq), if valid.
pub(crate) fn proposed(
    m: &Membership,
    crypto: &dyn Crypto,
    c: ClientId,
    request: &SignedRequest,
    proposal: &Proposal,
) -> Option<(Signed<SpecOrder>, Vec<InstanceId>, u64)> {
    match proposal {
        Proposal::Fast(cert) => {
            let first = valid_cert(m, crypto, c, request, cert, m.n())?;
            let same = cert.iter().all(|r| r.reply.body.matches(&first.reply.body) && r.result == first.result);
            let b = &first.reply.body;
            same.then(|| (first.order.clone(), b.deps.clone(), b.seq))
        }
        Proposal::Slow { commit, cert } => {
            // A barrier's commit is signed by the replica that ordered it (it plays the client).
            let signer = barrier_space(c, m).map_or(NodeId::Client(c), NodeId::Replica);
            if commit.body.client != c || !commit.verify(signer, crypto) {
                return None;
            }
            let first = valid_cert(m, crypto, c, request, cert, m.quorum())?;
            // D' and S' are the union and the maximum over the certificate: a client cannot make them up.
            let deps: BTreeSet<InstanceId> = cert.iter().flat_map(|r| r.reply.body.deps.iter().copied()).collect();
            let seq = cert.iter().map(|r| r.reply.body.seq).max().unwrap_or(0);
            let deps = canonical_deps(deps);
            let b = &commit.body;
            (b.inst == first.reply.body.inst && b.deps == deps && b.seq == seq)
                .then(|| (first.order.clone(), deps, seq))
        }
    }
}

/// What `proposal` claims to commit, unchecked: (order, deps, seq).
pub(crate) fn claimed(proposal: &Proposal) -> Option<(Signed<SpecOrder>, Vec<InstanceId>, u64)> {
    match proposal {
        Proposal::Fast(cert) => cert.first().map(|r| (r.order.clone(), r.reply.body.deps.clone(), r.reply.body.seq)),
        Proposal::Slow { commit, cert } => {
            cert.first().map(|r| (r.order.clone(), commit.body.deps.clone(), commit.body.seq))
        }
    }
}

/// How much a [`CommitProof`] shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    /// 2f+1 ACCEPTs: no other proposal can be committed for the slot.
    Prepared,
    /// 3f+1 ACCEPTs or 2f+1 CONFIRMs: the proposal is the slot's commit.
    Committed,
}

/// What `proof` shows committed (or, with [`Strength::Prepared`], at least
/// prepared) for `request`: (order, deps, seq), if it shows that much.
pub(crate) fn certified(
    m: &Membership,
    crypto: &dyn Crypto,
    request: &SignedRequest,
    proof: &CommitProof,
    strength: Strength,
) -> Option<(Signed<SpecOrder>, Vec<InstanceId>, u64)> {
    let (order, deps, seq) = proposed(m, crypto, request.req.client, request, &proof.proposal)?;
    let digest = commit_digest(&order, &deps, seq);
    let inst = order.body.inst;
    let phase = proof.votes.first()?.body.phase;
    let mut from = BTreeSet::new();
    let valid = proof.votes.iter().all(|v| {
        let b = &v.body;
        m.contains(b.replica)
            && from.insert(b.replica)
            && b.inst == inst
            && b.phase == phase
            && b.commit == digest
            && v.verify(NodeId::Replica(b.replica), crypto)
    });
    let count = from.len();
    let enough = match (phase, strength) {
        (Phase::Accept, Strength::Committed) => count == m.n(),
        (Phase::Accept, Strength::Prepared) | (Phase::Confirm, _) => count >= m.quorum(),
    };
    (valid && enough).then_some((order, deps, seq))
}

/// A certificate of exactly `size` valid SPECREPLYs from distinct replicas
/// about one order of client `c`'s `request`; its first reply.
fn valid_cert<'a>(
    m: &Membership,
    crypto: &dyn Crypto,
    c: ClientId,
    request: &SignedRequest,
    cert: &'a [SpecReply],
    size: usize,
) -> Option<&'a SpecReply> {
    let first = cert.first()?;
    let digest = request_digest(request);
    let mut from: BTreeSet<ReplicaId> = BTreeSet::new();
    let ok = cert.len() == size
        && request.req.client == c
        && request_authentic(request, first.order.body.inst.space, m, crypto)
        && cert.iter().all(|r| {
            let b = &r.reply.body;
            from.insert(b.replica)
                && r.order == first.order
                && b.client == c
                && b.t == request.req.seq
                && b.request == digest
                && r.verify(m, crypto)
        });
    ok.then_some(first)
}

impl Replica {
    /// Whether `from` may send a proposal for `request`: its client (for a
    /// barrier, the replica that ordered it), or any replica forwarding it
    /// (a proposal proves itself: the client's or owner's signature, or
    /// 3f+1 signed replies).
    fn may_commit(&self, from: NodeId, request: &SignedRequest) -> bool {
        let c = request.req.client;
        match (from, barrier_space(c, &self.m)) {
            (NodeId::Replica(r), _) => self.m.contains(r),
            (from, None) => from == NodeId::Client(c),
            (_, Some(_)) => false,
        }
    }

    /// COMMITFAST from `from`.
    pub(crate) fn on_commit_fast(&mut self, from: NodeId, request: SignedRequest, cert: Vec<SpecReply>, out: &mut Out) {
        if !self.may_commit(from, &request) {
            return out.reject(from, "COMMITFAST for another client's request");
        }
        self.on_proposal(from, request, Proposal::Fast(cert), out);
    }

    /// COMMIT from `from`.
    pub(crate) fn on_commit(
        &mut self,
        from: NodeId,
        commit: Signed<CommitBody>,
        request: SignedRequest,
        cert: Vec<SpecReply>,
        out: &mut Out,
    ) {
        if !self.may_commit(from, &request) {
            return out.reject(from, "COMMIT for another client's request");
        }
        self.on_proposal(from, request, Proposal::Slow { commit, cert }, out);
    }

    /// A command others wait for is still not committed: ask the other
    /// replicas for its commit, then (still nothing) replace its space's owner.
    /// A client that delivered on the fast path and whose COMMITFAST was lost,
    /// or a client that never commits, would otherwise block every command
    /// that depends on it (the paper is silent).
    pub(crate) fn on_uncommitted_timeout(&mut self, inst: InstanceId, out: &mut Out) {
        if self.log.get(&inst).is_some_and(|e| e.committed) || self.void(inst) {
            self.uncommitted.remove(&inst);
            return;
        }
        let Some(tries) = self.uncommitted.get_mut(&inst) else { return };
        if let Some(s) = self.spaces.get_mut(inst.space.index()) {
            // Our ask for its NEWOWNERs may have been lost: orders may ask again.
            s.asked_new_owner = None;
        }
        *tries += 1;
        let tries = *tries;
        // Ask on every timeout, not just the first: a query lost in a
        // partition or before GST is otherwise never repeated, and when the
        // others have committed the command none of them joins our suspicion,
        // so nothing else would ever bring us the commit.
        self.query_commit(inst, out);
        // A replica cut off when the proposal went out never got it: without
        // its vote the agreement may lack a quorum (a replica crashed meanwhile).
        self.show_agreement(None, inst, out);
        if tries > 1 {
            self.suspect(inst.space, out);
        }
        out.set_timer(crate::Timer::Uncommitted { inst }, self.cfg.commit_timeout);
    }

    /// Ask every replica for the commit of `inst` (answered with up to
    /// [`COMMIT_BATCH`] slots from it on).
    pub(crate) fn query_commit(&mut self, inst: InstanceId, out: &mut Out) {
        self.fetching.insert(inst.space, inst.slot..inst.slot.saturating_add(COMMIT_BATCH));
        out.broadcast(crate::messages::Msg::CommitQuery { inst });
    }

    /// Whether the answer to our latest COMMITQUERY in its space brings
    /// `inst` (while catching up, a fetched commit's blocker is mostly the
    /// next slot of the same answer: asking again would fetch it twice).
    pub(crate) fn fetching(&self, inst: InstanceId) -> bool {
        self.fetching.get(&inst.space).is_some_and(|r| r.contains(&inst.slot))
    }

    /// A proven order (in a valid proposal or commit) of the epoch after the
    /// one we saw frozen: the space's replica reopened it while we could not
    /// take its orders (we were under the owner change, or down), so reopen
    /// it here too.
    pub(crate) fn follow_epoch(&mut self, order: &Signed<SpecOrder>, out: &mut Out) {
        let (space, n) = (order.body.inst.space, self.m.n());
        if self.spaces.get(space.index()).is_some_and(|s| s.frozen.is_some() && order.body.owner > s.owner) {
            self.reopen(space, crate::messages::epoch_owner(space, order.body.owner, n), out);
        }
    }

    /// COMMITQUERY from `from`: our commit of `inst` and of the slots after
    /// it that we hold committed, up to [`COMMIT_BATCH`] (the asker is
    /// behind: a client's commands depend on each other, so a replica that
    /// missed a run of them would otherwise fetch one per commit timeout);
    /// else our votes for it.
    pub(crate) fn on_commit_query(&mut self, from: ReplicaId, inst: InstanceId, out: &mut Out) {
        if self.log.get(&inst).is_some_and(|e| e.proof.is_some()) {
            for slot in inst.slot..inst.slot.saturating_add(COMMIT_BATCH) {
                let Some(e) = self.log.get(&InstanceId { space: inst.space, slot }) else { break };
                let Some(proof) = &e.proof else { continue };
                let msg = crate::messages::Msg::Committed { request: e.req.clone(), proof: Box::new(proof.clone()) };
                out.send(from, msg);
            }
            return;
        }
        if self.covered(inst) && !self.void(inst) {
            // Collected by our stable checkpoint: the asker is behind it.
            return self.show_stable(from, out);
        }
        self.show_agreement(Some(from), inst, out);
        if let Some(e) = self.log.get(&inst).filter(|e| !e.committed) {
            // Not committed here either: at least the order, so that the
            // asker holds the slot (it may have refused the order while an
            // owner change was under way) and can have its owner replaced.
            out.send(from, crate::messages::Msg::SpecOrder { order: e.order.clone(), request: e.req.clone() });
        }
        // An owner change dropped or settled the slot: the asker missed its NEWOWNER (it
        // was cut off, or it is the space's own replica, which never asks
        // for its own space's change and so never gets it resent). The signed
        // NEWOWNERs, which it can check itself, are the answer.
        let settled = self.log.get(&inst).is_some_and(|e| e.committed && e.proof.is_none());
        if self.void(inst) || settled {
            // From the owner number that opened the slot's epoch: the asker
            // took that epoch's orders.
            let epoch = crate::messages::epoch_owner_of_slot(inst.space, inst.slot, self.m.n());
            self.show_new_owners(from, inst.space, epoch, out);
        }
    }

    /// COMMITTED from `from`: a commit proof we asked for.
    pub(crate) fn on_committed(&mut self, from: ReplicaId, request: SignedRequest, proof: CommitProof, out: &mut Out) {
        // A replica far behind gets the same commits from several replicas
        // and several queries: drop those it holds before checking their
        // signatures, or checking them keeps it behind.
        if let Some(inst) = proof.votes.first().map(|v| v.body.inst) {
            let held = self.log.get(&inst).is_some_and(|e| e.committed && e.req == request);
            if held || (self.covered(inst) && !self.log.contains_key(&inst)) {
                return;
            }
        }
        let Some((order, deps, seq)) = certified(&self.m, self.crypto.as_ref(), &request, &proof, Strength::Committed)
        else {
            return out.reject(NodeId::Replica(from), "invalid COMMITTED proof");
        };
        let slow = matches!(proof.proposal, Proposal::Slow { .. });
        self.catching_up = true;
        self.commit(order, request, deps, seq, slow, Some(proof), out);
        self.catching_up = false;
    }

    /// Fix `order`'s command with `deps` and `seq`; `slow`: the client waits for
    /// COMMITREPLY; `proof`: how the replicas agreed (none when an owner change settled it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit(
        &mut self,
        order: Signed<SpecOrder>,
        request: SignedRequest,
        deps: Vec<InstanceId>,
        seq: u64,
        slow: bool,
        proof: Option<CommitProof>,
        out: &mut Out,
    ) {
        let inst = order.body.inst;
        let c = request.req.client;
        let settling = proof.is_none();
        if self.covered(inst) && !self.log.contains_key(&inst) {
            // Executed and collected already.
            return;
        }
        if self.barrier.as_ref().is_some_and(|b| b.inst == inst) {
            self.barrier = None;
            out.cancel_timer(crate::Timer::Barrier { inst });
        }
        // Only clients wait for a COMMITREPLY; a barrier's owner does not.
        let slow = slow && barrier_space(c, &self.m).is_none();
        self.agreements.remove(&inst);
        let key = self.key_of(&request.req);
        self.follow_epoch(&order, out);
        if !settling && self.void(inst) {
            // An owner change settles every committed slot, so this proof
            // needs more than f faulty replicas.
            return out.reject(NodeId::Client(c), "commit proof for a slot an owner change dropped");
        }
        match self.log.get_mut(&inst) {
            Some(e) if e.committed => {
                if e.deps != deps || e.seq != seq || e.order != order {
                    // Agreement makes commits unique: this needs more than f faulty replicas.
                    return out.reject(NodeId::Client(c), "commit conflicts with an earlier commit");
                }
                if slow && !e.reply_when_final {
                    e.reply_when_final = true;
                    self.resend_reply(inst, out);
                }
                return;
            }
            Some(e) => {
                if e.order != order {
                    // The certificate's (or the settled) order replaces ours; our request is not here any more.
                    let old = (e.req.req.client, e.req.req.seq);
                    if self.by_request.get(&old) == Some(&inst) {
                        self.by_request.remove(&old);
                    }
                    self.by_request.insert((request.req.client, request.req.seq), inst);
                    e.order = order;
                    e.req = request;
                    // Final execution reads the committed request's key.
                    e.keyless = key.is_none();
                    e.key = key;
                    e.spec_result = None;
                    e.reply = None;
                }
                e.deps = deps;
                e.seq = seq;
                e.committed = true;
                e.reply_when_final |= slow;
                e.proof = proof;
            }
            None => {
                // We missed the SPECORDER: the certificate carries everything needed.
                self.insert(request, order, deps, seq);
                if let Some(e) = self.log.get_mut(&inst) {
                    e.committed = true;
                    e.reply_when_final = slow;
                    e.proof = proof;
                }
            }
        }
        self.persist_commit(inst, slow, out);
        self.waiting.insert(inst);
        self.execute_ready(vec![inst], out);
    }
}

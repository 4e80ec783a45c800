//! COMMITFAST (§IV-A step 5.1): 3f+1 matching SPECREPLYs fix the command as
//! ordered; no answer. COMMIT (§IV-C step 5.2): the client combined 2f+1
//! replies; the replica checks the combination against the certificate,
//! takes the new dependencies and sequence number, executes finally and
//! answers with COMMITREPLY.

use super::{Out, Replica};
use crate::messages::{
    barrier_space, canonical_deps, request_authentic, request_digest, CommitBody, CommitProof, InstanceId, Signed,
    SpecOrder, SpecReply,
};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::membership::Membership;
use quorate_core::request::SignedRequest;
use std::collections::BTreeSet;

/// The commit a certificate proves for client `c`'s `request`: (order, deps, seq), if valid.
pub(crate) fn proven(
    m: &Membership,
    crypto: &dyn Crypto,
    c: ClientId,
    request: &SignedRequest,
    proof: &CommitProof,
) -> Option<(Signed<SpecOrder>, Vec<InstanceId>, u64)> {
    match proof {
        CommitProof::Fast(cert) => {
            let first = valid_cert(m, crypto, c, request, cert, m.n())?;
            let same = cert.iter().all(|r| r.reply.body.matches(&first.reply.body) && r.result == first.result);
            let b = &first.reply.body;
            same.then(|| (first.order.clone(), b.deps.clone(), b.seq))
        }
        CommitProof::Slow { commit, cert } => {
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
    /// Whether `from` may commit `request`: its client, or for a barrier the
    /// replica that ordered it.
    fn may_commit(&self, from: NodeId, request: &SignedRequest) -> bool {
        let c = request.req.client;
        match barrier_space(c, &self.m) {
            None => from == NodeId::Client(c),
            Some(space) => from == NodeId::Replica(space),
        }
    }

    /// COMMITFAST from `from`.
    pub(crate) fn on_commit_fast(&mut self, from: NodeId, request: SignedRequest, cert: Vec<SpecReply>, out: &mut Out) {
        let c = request.req.client;
        let proof = CommitProof::Fast(cert);
        if !self.may_commit(from, &request) {
            return out.reject(from, "COMMITFAST for another client's request");
        }
        let Some((order, deps, seq)) = proven(&self.m, self.crypto.as_ref(), c, &request, &proof) else {
            return out.reject(from, "invalid COMMITFAST certificate");
        };
        self.commit(order, request, deps, seq, false, Some(proof), out);
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
        let c = request.req.client;
        if !self.may_commit(from, &request) {
            return out.reject(from, "COMMIT for another client's request");
        }
        let proof = CommitProof::Slow { commit, cert };
        let Some((order, deps, seq)) = proven(&self.m, self.crypto.as_ref(), c, &request, &proof) else {
            return out.reject(from, "invalid COMMIT");
        };
        self.commit(order, request, deps, seq, true, Some(proof), out);
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
        *tries += 1;
        // Ask on every timeout, not just the first: a query lost in a
        // partition or before GST is otherwise never repeated, and when the
        // others have committed the command none of them joins our suspicion,
        // so nothing else would ever bring us the commit.
        out.broadcast(crate::messages::Msg::CommitQuery { inst });
        if *tries > 1 {
            self.suspect(inst.space, out);
        }
        out.set_timer(crate::Timer::Uncommitted { inst }, self.cfg.commit_timeout);
    }

    /// COMMITQUERY from `from`: our commit of `inst`, if we have one.
    pub(crate) fn on_commit_query(&mut self, from: ReplicaId, inst: InstanceId, out: &mut Out) {
        if let Some(e) = self.log.get(&inst) {
            if let Some(proof) = &e.proof {
                let msg = crate::messages::Msg::Committed { request: e.req.clone(), proof: Box::new(proof.clone()) };
                return out.send(from, msg);
            }
        }
        if self.covered(inst) && !self.void(inst) {
            // Collected by our stable checkpoint: the asker is behind it.
            return self.show_stable(from, out);
        }
        // An owner change dropped the slot: the asker missed its NEWOWNER (it
        // was cut off, or it is the space's own replica, which never asks
        // for its own space's change and so never gets it resent). The signed
        // NEWOWNERs, which it can check itself, are the answer.
        let Some(s) = self.spaces.get(inst.space.index()) else { return };
        if self.void(inst) {
            for msg in s.installed_after(0) {
                out.send(from, msg);
            }
        }
    }

    /// COMMITTED from `from`: a commit certificate we asked for.
    pub(crate) fn on_committed(&mut self, from: ReplicaId, request: SignedRequest, proof: CommitProof, out: &mut Out) {
        let c = request.req.client;
        let Some((order, deps, seq)) = proven(&self.m, self.crypto.as_ref(), c, &request, &proof) else {
            return out.reject(NodeId::Replica(from), "invalid COMMITTED certificate");
        };
        let slow = matches!(proof, CommitProof::Slow { .. });
        self.commit(order, request, deps, seq, slow, Some(proof), out);
    }

    /// Fix `order`'s command with `deps` and `seq`; `slow`: the client waits for
    /// COMMITREPLY; `proof`: the certificate (none when an owner change settled it).
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
        let Some(space) = self.spaces.get(inst.space.index()) else { return };
        if !settling && !space.open() && !self.log.get(&inst).is_some_and(|e| e.committed) {
            // Once committed to an owner change, only its settlement fixes this space's slots.
            return out.reject(NodeId::Client(c), "COMMIT for a space under owner change");
        }
        match self.log.get_mut(&inst) {
            Some(e) if e.committed => {
                if e.deps != deps || e.seq != seq {
                    // First commit wins here (see the decision record on conflicting commits).
                    return out.reject(NodeId::Client(c), "COMMIT conflicts with an earlier commit");
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

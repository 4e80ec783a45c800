//! COMMITFAST (§IV-A step 5.1): 3f+1 matching SPECREPLYs fix the command as
//! ordered; no answer. COMMIT (§IV-C step 5.2): the client combined 2f+1
//! replies; the replica checks the combination against the certificate,
//! takes the new dependencies and sequence number, executes finally and
//! answers with COMMITREPLY.

use super::{Out, Replica};
use crate::messages::{canonical_deps, request_digest, CommitBody, InstanceId, Signed, SpecOrder, SpecReply};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::request::SignedRequest;
use std::collections::BTreeSet;

impl Replica {
    /// COMMITFAST from client `c`.
    pub(crate) fn on_commit_fast(&mut self, c: ClientId, request: SignedRequest, cert: Vec<SpecReply>, out: &mut Out) {
        let Some(first) = self.check_cert(c, &request, &cert, self.m.n()) else {
            return out.reject(NodeId::Client(c), "invalid COMMITFAST certificate");
        };
        if !cert.iter().all(|r| r.reply.body.matches(&first.reply.body) && r.result == first.result) {
            return out.reject(NodeId::Client(c), "COMMITFAST replies do not match");
        }
        let b = &first.reply.body;
        let (deps, seq, order) = (b.deps.clone(), b.seq, first.order.clone());
        self.commit(order, request, deps, seq, false, out);
    }

    /// COMMIT from client `c`.
    pub(crate) fn on_commit(
        &mut self,
        c: ClientId,
        commit: Signed<CommitBody>,
        request: SignedRequest,
        cert: Vec<SpecReply>,
        out: &mut Out,
    ) {
        if commit.body.client != c || !commit.verify(NodeId::Client(c), self.crypto.as_ref()) {
            return out.reject(NodeId::Client(c), "bad COMMIT signature");
        }
        let Some(first) = self.check_cert(c, &request, &cert, self.m.quorum()) else {
            return out.reject(NodeId::Client(c), "invalid COMMIT certificate");
        };
        // D' and S' are the union and the maximum over the certificate: a client cannot make them up.
        let deps: BTreeSet<InstanceId> = cert.iter().flat_map(|r| r.reply.body.deps.iter().copied()).collect();
        let seq = cert.iter().map(|r| r.reply.body.seq).max().unwrap_or(0);
        let deps = canonical_deps(deps);
        if commit.body.inst != first.reply.body.inst || commit.body.deps != deps || commit.body.seq != seq {
            return out.reject(NodeId::Client(c), "COMMIT does not combine its certificate");
        }
        let order = first.order.clone();
        self.commit(order, request, deps, seq, true, out);
    }

    /// A certificate of exactly `size` valid SPECREPLYs from distinct replicas
    /// about one order of client `c`'s `request`; its first reply.
    fn check_cert<'a>(
        &self,
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
            && request.verify(self.crypto.as_ref())
            && cert.iter().all(|r| {
                let b = &r.reply.body;
                from.insert(b.replica)
                    && r.order == first.order
                    && b.client == c
                    && b.t == request.req.seq
                    && b.request == digest
                    && r.verify(&self.m, self.crypto.as_ref())
            });
        ok.then_some(first)
    }

    /// Fix `order`'s command with `deps` and `seq`; `slow`: the client waits for COMMITREPLY.
    fn commit(
        &mut self,
        order: Signed<SpecOrder>,
        request: SignedRequest,
        deps: Vec<InstanceId>,
        seq: u64,
        slow: bool,
        out: &mut Out,
    ) {
        let inst = order.body.inst;
        let c = request.req.client;
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
                    // The certificate's order is the one 2f+1 replicas answered: it replaces ours.
                    e.order = order;
                    e.req = request;
                }
                e.deps = deps;
                e.seq = seq;
                e.committed = true;
                e.reply_when_final |= slow;
            }
            None => {
                // We missed the SPECORDER: the certificate carries everything needed.
                self.insert(request, order, deps, seq);
                if let Some(e) = self.log.get_mut(&inst) {
                    e.committed = true;
                    e.reply_when_final = slow;
                }
            }
        }
        self.waiting.insert(inst);
        self.execute_ready(out);
    }
}

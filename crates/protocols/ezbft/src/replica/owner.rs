//! Suspicion and owner change (§IV-D, §IV-E).
//!
//! A client with too few replies sends its request to every replica. A
//! replica that has it answers again (or with the cached final result);
//! otherwise it sends RESENDREQ to the command-leader and, if no SPECORDER
//! follows in time, asks for an owner change. So does a replica shown a
//! proof of misbehaviour (two orders of one request signed by the owner).
//!
//! With f+1 STARTOWNERCHANGE for a space (a replica that sees f+1 joins), a
//! replica stops taking orders and commits for the space and sends its view
//! of the space, signed, to the new owner `(O+1) mod N`. The new owner sends
//! 2f+1 such views (NEWOWNER); the replicas agree on one NEWOWNER per owner
//! number (ACCEPT, CONFIRM, install on 2f+1 CONFIRMs: a faulty new owner
//! could send different valid ones), and every replica computes from its
//! views, by the same deterministic rule, the settled history G, commits
//! it, drops the slots after it, and freezes the space. A new owner that
//! does not deliver in time is itself replaced (O+2), and the next change
//! honours a NEWOWNER prepared at any of its views' replicas.

use super::commit::{certified, claimed, proposed, Strength};
use super::{Out, Replica};
use crate::messages::{
    commit_digest, epoch_base, epoch_history, epoch_owner, new_owner_digest, next_epoch_owner, request_authentic,
    request_digest, InstanceId, Msg, NewOwnerBody, NewOwnerCert, NewOwnerVoteBody, OwnerChangeBody, Phase, Signed,
    SlotReport, SpecOrder, SpecReply,
};
use crate::Timer;
use quorate_core::crypto::Crypto;
use quorate_core::crypto::Digest;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::membership::Membership;
use quorate_core::request::SignedRequest;
use std::collections::{BTreeMap, BTreeSet};

/// NEWOWNER votes are kept for owner numbers at most this far past the current one.
const ROUNDS_AHEAD: u64 = 64;

/// Valid NEWOWNERs kept per owner number.
const MAX_CANDIDATES: usize = 4;

/// How many NEWOWNERs one answer to a replica that missed them carries.
const NEWOWNER_BATCH: usize = 4;

/// A slot as an owner change settles it.
#[derive(Debug)]
pub(crate) struct Settled {
    pub order: Signed<SpecOrder>,
    pub request: SignedRequest,
    pub deps: Vec<InstanceId>,
    pub seq: u64,
}

/// The settled history G of `space` from 2f+1 signed views: the slot it
/// starts at (the latest stable checkpoint among the views: what it covers
/// is executed by f+1 correct replicas already), the settled slots in
/// order, and where G ends. A slot is settled, in this order of precedence,
/// by
///
/// 1. a commit proof or prepared certificate in some view (at most one
///    proposal per slot can be prepared);
/// 2. one proposal accepted in f+1 views (a commit by 3f+1 ACCEPTs leaves
///    it in every correct view);
/// 3. f+1 of the views' own SPECREPLYs with identical bodies (a fast-path
///    decision whose COMMITFAST was lost leaves them in every correct view).
///
/// G ends after the last settled slot; the unsettled slots before it are
/// void. None of them can have completed: a commit would have left 1 or 2,
/// a fast-path decision 3. (A replica may hold a slot after an unsettled
/// one: a proposal carries its order, so it can accept without the slots
/// before.)
///
/// `known` gives the commit this replica holds for a slot, if any: a proof
/// that claims exactly that commit settles the slot as every replica would
/// settle it (a committed slot is prepared at f+1 correct replicas, and one
/// of them is among any 2f+1 views), so its signatures need no checking.
/// Thousands of slots with a dozen signatures each would otherwise cost
/// seconds of CPU at every replica.
pub(crate) fn settle(
    m: &Membership,
    crypto: &dyn Crypto,
    space: ReplicaId,
    views: &[Signed<OwnerChangeBody>],
    known: impl Fn(InstanceId) -> Option<Settled>,
) -> (u64, Vec<Settled>, u64) {
    // A NEWOWNER of an earlier owner number prepared at some reporter: it
    // may be installed somewhere (installing takes 2f+1 CONFIRMs, so f+1
    // correct replicas hold it prepared and one of them is among any 2f+1
    // views), so its G is G; at most one NEWOWNER per owner number can be
    // prepared, and the latest one wins, as in PBFT's view change.
    if let Some(c) = views.iter().filter_map(|v| v.body.prepared.as_deref()).max_by_key(|c| c.owner()) {
        return settle(m, crypto, space, &c.new_owner.body.proofs, known);
    }
    let start = views.iter().map(|v| v.body.start(m.n())).max().unwrap_or(0);
    let mut by_slot: BTreeMap<u64, Vec<(ReplicaId, &SlotReport)>> = BTreeMap::new();
    for v in views {
        for r in &v.body.history {
            let inst = r.order.body.inst;
            if inst.space == space && inst.slot >= start {
                by_slot.entry(inst.slot).or_default().push((v.body.replica, r));
            }
        }
    }
    let mut g = Vec::new();
    for (slot, reports) in by_slot {
        let inst = InstanceId { space, slot };
        let s = by_known(inst, &reports, &known)
            .or_else(|| by_proof(m, crypto, inst, &reports))
            .or_else(|| by_accepted(m, crypto, inst, &reports))
            .or_else(|| by_replies(m, crypto, inst, &reports));
        g.extend(s);
    }
    let end = g.last().map_or(start, |s| s.order.body.inst.slot + 1);
    (start, g, end)
}

/// Rule 1 without checking signatures: a proof that claims the commit we hold.
fn by_known(
    inst: InstanceId,
    reports: &[(ReplicaId, &SlotReport)],
    known: impl Fn(InstanceId) -> Option<Settled>,
) -> Option<Settled> {
    let mine = known(inst)?;
    reports
        .iter()
        .filter(|(_, r)| r.request == mine.request)
        .filter_map(|(_, r)| claimed(&r.cert.as_ref()?.proposal))
        .any(|(order, deps, seq)| order == mine.order && deps == mine.deps && seq == mine.seq)
        .then_some(mine)
}

/// Rule 1: a commit proof or prepared certificate (the first valid one by replica id).
fn by_proof(
    m: &Membership,
    crypto: &dyn Crypto,
    inst: InstanceId,
    reports: &[(ReplicaId, &SlotReport)],
) -> Option<Settled> {
    reports.iter().find_map(|(_, r)| {
        let (order, deps, seq) = certified(m, crypto, &r.request, r.cert.as_ref()?, Strength::Prepared)?;
        (order.body.inst == inst).then(|| Settled { order, request: r.request.clone(), deps, seq })
    })
}

/// Rule 2: a proposal accepted in f+1 views.
fn by_accepted(
    m: &Membership,
    crypto: &dyn Crypto,
    inst: InstanceId,
    reports: &[(ReplicaId, &SlotReport)],
) -> Option<Settled> {
    let mut count: BTreeMap<Digest, (usize, Settled)> = BTreeMap::new();
    for (_, r) in reports {
        let Some(p) = &r.accepted else { continue };
        let Some((order, deps, seq)) = proposed(m, crypto, r.request.req.client, &r.request, p) else { continue };
        if order.body.inst != inst {
            continue;
        }
        let d = commit_digest(&order, &deps, seq);
        count.entry(d).or_insert_with(|| (0, Settled { order, request: r.request.clone(), deps, seq })).0 += 1;
    }
    count.into_values().find(|(n, _)| *n > m.f()).map(|(_, s)| s)
}

/// Rule 3: f+1 of the views' own SPECREPLYs with identical bodies, each
/// checked: signed by the view's replica, about the reported order.
fn by_replies(
    m: &Membership,
    crypto: &dyn Crypto,
    inst: InstanceId,
    reports: &[(ReplicaId, &SlotReport)],
) -> Option<Settled> {
    let replies: Vec<(&SpecReply, &SignedRequest)> = reports
        .iter()
        .filter_map(|(from, r)| {
            let reply = r.reply.as_ref()?;
            let ok = reply.reply.body.replica == *from
                && reply.order == r.order
                && r.order.body.inst == inst
                && reply.reply.body.request == request_digest(&r.request)
                && request_authentic(&r.request, inst.space, m, crypto)
                && reply.verify(m, crypto);
            ok.then_some((reply, &r.request))
        })
        .collect();
    let (r, req) = replies.iter().find(|(a, _)| {
        replies.iter().filter(|(b, _)| b.reply.body.matches(&a.reply.body) && b.order == a.order).count() > m.f()
    })?;
    let b = &r.reply.body;
    Some(Settled { order: r.order.clone(), request: (*req).clone(), deps: b.deps.clone(), seq: b.seq })
}

/// Whether a signed view is well-formed: signed by its replica, about
/// `space` and `owner`, and starting after a valid stable checkpoint if any.
fn valid_view(m: &Membership, crypto: &dyn Crypto, v: &Signed<OwnerChangeBody>, space: ReplicaId, owner: u64) -> bool {
    let b = &v.body;
    b.space == space
        && b.owner == owner
        && m.contains(b.replica)
        && v.verify(NodeId::Replica(b.replica), crypto)
        && b.stable.as_ref().is_none_or(|s| s.verify(m, crypto))
        && b.prepared.as_ref().is_none_or(|c| {
            let cb = &c.new_owner.body;
            let n = m.n();
            cb.owner < owner
                && cb.owner > 0
                && epoch_owner(space, cb.owner - 1, n) == epoch_owner(space, owner.saturating_sub(1), n)
                && valid_new_owner(m, crypto, &c.new_owner, space, cb.owner)
                && c.verify(m, crypto, Phase::Accept)
        })
}

/// Whether a NEWOWNER is well-formed: signed by the owner it names, with 2f+1 valid views of distinct replicas.
fn valid_new_owner(
    m: &Membership,
    crypto: &dyn Crypto,
    x: &Signed<NewOwnerBody>,
    space: ReplicaId,
    owner: u64,
) -> bool {
    let b = &x.body;
    let mut seen = BTreeSet::new();
    b.space == space
        && b.owner == owner
        && x.verify(NodeId::Replica(crate::messages::owner_replica(owner, m)), crypto)
        && b.proofs.len() == m.quorum()
        && b.proofs.iter().all(|p| seen.insert(p.body.replica) && valid_view(m, crypto, p, space, owner))
}

impl Replica {
    /// REQUEST sent to all replicas by client `c`, whose leader was `leader`.
    pub(crate) fn on_request_all(&mut self, c: ClientId, request: SignedRequest, leader: ReplicaId, out: &mut Out) {
        if request.req.client != c || !request.verify(self.crypto.as_ref()) {
            return out.reject(NodeId::Client(c), "bad request signature");
        }
        let t = request.req.seq;
        if let Some(inst) = self.by_request.get(&(c, t)).copied() {
            return self.resend_reply(inst, out);
        }
        match self.finals.get(&c) {
            // Only final results: a speculative one may still be undone.
            Some((last, result)) if *last == t => return out.send(c, Msg::CachedReply { t, result: result.clone() }),
            Some((last, _)) if *last > t => return,
            _ => {}
        }
        if leader == self.id {
            return self.on_request(c, request, out);
        }
        let Some(space) = self.spaces.get(leader.index()) else { return };
        if space.frozen.is_some() {
            // Settled already (perhaps while its replica was cut off and kept
            // taking the client's requests): tell the client to move on now
            // rather than after its next suspicion timeout.
            return out.send(c, Msg::SpaceFrozen { space: leader });
        }
        let open = space.open();
        // Under owner change too: the client is told when the space freezes.
        self.spaces[leader.index()].waiting_clients.insert(c);
        if !open {
            return;
        }
        out.send(leader, Msg::ResendReq { request });
        out.set_timer(Timer::ResendReq { space: leader, client: c, t }, self.cfg.resend_timeout);
    }

    /// RESENDREQ from replica `from`: a client says it sent us this request.
    pub(crate) fn on_resend_req(&mut self, from: ReplicaId, request: SignedRequest, out: &mut Out) {
        if !request.verify(self.crypto.as_ref()) {
            return out.reject(NodeId::Replica(from), "RESENDREQ with a bad request signature");
        }
        let c = request.req.client;
        self.on_request(c, request, out);
    }

    /// The command-leader of `space` did not order (client, t) after RESENDREQ.
    pub(crate) fn on_resend_timeout(&mut self, space: ReplicaId, c: ClientId, t: u64, out: &mut Out) {
        let ordered = self.by_request.get(&(c, t)).is_some_and(|i| i.space == space);
        let done = self.finals.get(&c).is_some_and(|(last, _)| *last >= t);
        if !ordered && !done {
            self.suspect(space, out);
        }
    }

    /// POM from client `c`: two orders of one request, in different slots, both
    /// signed by the owner of one space.
    pub(crate) fn on_pom(&mut self, c: ClientId, a: SpecReply, b: SpecReply, out: &mut Out) {
        let (oa, ob) = (&a.order.body, &b.order.body);
        let valid = a.verify(&self.m, self.crypto.as_ref())
            && b.verify(&self.m, self.crypto.as_ref())
            && oa.inst.space == ob.inst.space
            && oa.owner == ob.owner
            && oa.request == ob.request
            && oa.inst != ob.inst;
        if !valid {
            return out.reject(NodeId::Client(c), "invalid proof of misbehaviour");
        }
        if self.spaces.get(oa.inst.space.index()).is_some_and(|s| s.owner == oa.owner) {
            self.suspect(oa.inst.space, out);
        }
    }

    /// Show replica `to`, which showed it is at owner number `after` of
    /// `space`, the NEWOWNERs we installed after it: the next
    /// [`NEWOWNER_BATCH`] (it installs them one epoch after another, and
    /// shows its new owner number when it needs more), at most once per
    /// commit timeout for the same `after`. Stale orders and queries come in
    /// bursts, and each answer carries settled histories: a faulty replica
    /// that kept reopening its space and sending stale orders had every
    /// correct replica pile NEWOWNERs onto the links until the simulator ran
    /// out of memory (campaign seed 13).
    pub(crate) fn show_new_owners(&mut self, to: ReplicaId, space: ReplicaId, after: u64, out: &mut Out) {
        let (now, pace) = (self.now, self.cfg.commit_timeout);
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        if s.shown.get(&to).is_some_and(|(shown, at)| *shown == after && now < *at + pace) {
            return;
        }
        s.shown.insert(to, (after, now));
        for n in s.installed.iter().filter(|n| n.owner() > after).take(NEWOWNER_BATCH) {
            out.send(to, Msg::NewOwnerAgreed(Box::new(n.clone())));
        }
    }

    /// Ask for the owner of `space` to be replaced.
    pub(crate) fn suspect(&mut self, space: ReplicaId, out: &mut Out) {
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        // A frozen space takes no more orders: nothing left to suspect. Under
        // an owner change the incoming owner gets `new_owner_timeout` (its
        // own timer) before it is suspected, however long commands wait.
        if s.frozen.is_some() || s.changing.is_some() || space == self.id {
            return;
        }
        let owner = s.owner;
        if !s.suspects.entry(owner).or_default().insert(self.id) {
            return;
        }
        out.broadcast(Msg::StartOwnerChange { space, owner });
        self.maybe_change_owner(space, owner, out);
    }

    /// STARTOWNERCHANGE from `from`.
    pub(crate) fn on_start_owner_change(&mut self, from: ReplicaId, space: ReplicaId, owner: u64, out: &mut Out) {
        let Some(s) = self.spaces.get_mut(space.index()) else {
            return out.reject(NodeId::Replica(from), "STARTOWNERCHANGE for an unknown space");
        };
        if s.installed.last().is_some_and(|n| owner < n.owner()) {
            // Settled already: the sender missed the NEWOWNERs, which it can verify itself.
            return self.show_new_owners(from, space, owner, out);
        }
        if s.frozen.is_some() || owner < s.changing.unwrap_or(s.owner) {
            return;
        }
        s.suspects.entry(owner).or_default().insert(from);
        let votes = s.suspects[&owner].len();
        // f+1 suspicions include a correct replica's: join them, so every correct replica follows.
        if votes > self.m.f() && space != self.id && !s.suspects[&owner].contains(&self.id) {
            s.suspects.entry(owner).or_default().insert(self.id);
            out.broadcast(Msg::StartOwnerChange { space, owner });
        }
        self.maybe_change_owner(space, owner, out);
    }

    /// With f+1 suspicions of `owner`: stop using the space and report it to the new owner.
    fn maybe_change_owner(&mut self, space: ReplicaId, owner: u64, out: &mut Out) {
        let f = self.m.f();
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        let votes = s.suspects.get(&owner).map_or(0, |v| v.len());
        let next = owner + 1;
        if votes <= f || s.changing.is_some_and(|c| c >= next) {
            return;
        }
        s.changing = Some(next);
        // Reports that reached us (as the new owner) before we committed ourselves stay.
        s.reports.retain(|_, r| r.body.owner == next);
        self.persist_changing(space, next, out);
        let stable = self.stable.as_ref().map(|s| s.stable.clone());
        let start = crate::messages::view_start(space, next, stable.as_ref(), self.m.n());
        // Every slot we hold or voted on, gaps included: a slot we accepted
        // or committed counts even if we missed the orders before it.
        let mut slots: Vec<InstanceId> = self.log.keys().chain(self.agreements.keys()).copied().collect();
        slots.retain(|i| i.space == space && i.slot >= start);
        slots.sort();
        slots.dedup();
        let history: Vec<SlotReport> = slots.into_iter().filter_map(|i| self.slot_report(i)).collect();
        let n = self.m.n();
        let epoch = epoch_owner(space, owner, n);
        let prepared = self.spaces[space.index()]
            .rounds
            .iter()
            .filter(|(o, _)| **o < next && epoch_owner(space, *o - 1, n) == epoch)
            .filter_map(|(_, r)| r.prepared.clone())
            .next_back()
            .map(Box::new);
        let body = OwnerChangeBody { replica: self.id, space, owner: next, stable, history, prepared };
        let report = Signed::sign(body, self.crypto.as_ref());
        let new_owner = crate::messages::owner_replica(next, &self.m);
        out.set_timer(Timer::NewOwner { space, owner: next }, self.cfg.new_owner_timeout);
        if new_owner == self.id {
            self.on_owner_change(self.id, report, out);
        } else {
            out.send(new_owner, Msg::OwnerChange(Box::new(report)));
        }
    }

    /// No valid NEWOWNER for `space` with `owner`: replace that owner too.
    pub(crate) fn on_new_owner_timeout(&mut self, space: ReplicaId, owner: u64, out: &mut Out) {
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        if s.frozen.is_none() && s.changing == Some(owner) && s.suspects.entry(owner).or_default().insert(self.id) {
            out.broadcast(Msg::StartOwnerChange { space, owner });
            self.maybe_change_owner(space, owner, out);
        }
    }

    /// OWNERCHANGE from `from` (to us, the new owner).
    pub(crate) fn on_owner_change(&mut self, from: ReplicaId, report: Signed<OwnerChangeBody>, out: &mut Out) {
        let b = &report.body;
        let (space, owner) = (b.space, b.owner);
        if b.replica != from || !valid_view(&self.m, self.crypto.as_ref(), &report, space, owner) {
            return out.reject(NodeId::Replica(from), "invalid OWNERCHANGE");
        }
        if crate::messages::owner_replica(owner, &self.m) != self.id {
            return out.reject(NodeId::Replica(from), "OWNERCHANGE sent to a replica that is not the new owner");
        }
        let q = self.m.quorum();
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        if s.frozen.is_some() || s.changing != Some(owner) {
            // Not (yet) committed to this change ourselves: our own report will come with it.
            if s.frozen.is_none() && s.changing.is_none_or(|c| c < owner) {
                s.reports.retain(|_, r| r.body.owner == owner);
                s.reports.insert(from, report);
            }
            return;
        }
        s.reports.retain(|_, r| r.body.owner == owner);
        s.reports.insert(from, report);
        if s.reports.len() < q {
            return;
        }
        let proofs: Vec<Signed<OwnerChangeBody>> = s.reports.values().take(q).cloned().collect();
        // §IV-E: NEWOWNER's proof P holds 2f+1 views of distinct replicas (as backups check).
        quorate_core::invariant!(
            quorate_core::invariant::distinct(proofs.iter().map(|p| p.body.replica)),
            "ezbft: own NEWOWNER for space {space:?}, owner {owner}, holds two views of one replica"
        );
        let new_owner = Signed::sign(NewOwnerBody { space, owner, proofs }, self.crypto.as_ref());
        out.broadcast(Msg::NewOwner(Box::new(new_owner.clone())));
        self.vote_new_owner(new_owner, out);
    }

    /// NEWOWNER from `from` (the new owner, or a replica forwarding it).
    pub(crate) fn on_new_owner(&mut self, from: ReplicaId, new_owner: Signed<NewOwnerBody>, out: &mut Out) {
        let b = &new_owner.body;
        let (space, owner) = (b.space, b.owner);
        if !self.m.contains(space) {
            return out.reject(NodeId::Replica(from), "NEWOWNER for an unknown space");
        }
        if !valid_new_owner(&self.m, self.crypto.as_ref(), &new_owner, space, owner) {
            return out.reject(NodeId::Replica(from), "invalid NEWOWNER");
        }
        self.vote_new_owner(new_owner, out);
    }

    /// A valid NEWOWNER: ACCEPT it if it is the first for its owner number
    /// and we are not committed to a later change of the space (whose view
    /// must show every vote we sent).
    fn vote_new_owner(&mut self, x: Signed<NewOwnerBody>, out: &mut Out) {
        let (space, owner) = (x.body.space, x.body.owner);
        let d = new_owner_digest(&x);
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        if owner <= s.owner || owner > s.owner + ROUNDS_AHEAD {
            return;
        }
        let later = s.changing.is_some_and(|c| c > owner);
        let round = s.rounds.entry(owner).or_default();
        // A faulty new owner can sign any number of valid NEWOWNERs: keep a few
        // (one agreed on without us comes as NEWOWNER-AGREED).
        if round.candidates.len() < MAX_CANDIDATES {
            round.candidates.entry(d).or_insert_with(|| x.clone());
        }
        if round.accepted.is_none() && !later && round.candidates.contains_key(&d) {
            round.accepted = Some(d);
            let cert = NewOwnerCert { new_owner: x, votes: Vec::new() };
            self.persist_new_owner_vote(Phase::Accept, &cert, out);
            self.cast_new_owner_vote(space, owner, Phase::Accept, d, out);
        }
        self.new_owner_progress(space, owner, out);
    }

    /// Sign, send and count our own NEWOWNER vote.
    pub(crate) fn cast_new_owner_vote(
        &mut self,
        space: ReplicaId,
        owner: u64,
        phase: Phase,
        digest: Digest,
        out: &mut Out,
    ) {
        // §IV-E with the agreement on one NEWOWNER per owner number: one
        // ACCEPT and one CONFIRM per (space, owner number), also across recovery.
        self.own_new_owner_votes.cast((space, owner, phase), digest, "ezbft: NEWOWNER vote");
        let body = NewOwnerVoteBody { replica: self.id, space, owner, phase, digest };
        let vote = Signed::sign(body, self.crypto.as_ref());
        out.broadcast(Msg::NewOwnerVote(Box::new(vote.clone())));
        self.count_new_owner_vote(vote);
    }

    fn count_new_owner_vote(&mut self, vote: Signed<NewOwnerVoteBody>) {
        let b = &vote.body;
        let Some(s) = self.spaces.get_mut(b.space.index()) else { return };
        if b.owner <= s.owner || b.owner > s.owner + ROUNDS_AHEAD {
            return;
        }
        let round = s.rounds.entry(b.owner).or_default();
        let votes = match b.phase {
            Phase::Accept => &mut round.accepts,
            Phase::Confirm => &mut round.confirms,
        };
        votes.entry(b.replica).or_insert(vote);
    }

    /// NEWOWNER-VOTE from `from`.
    pub(crate) fn on_new_owner_vote(&mut self, from: ReplicaId, vote: Signed<NewOwnerVoteBody>, out: &mut Out) {
        let b = &vote.body;
        if b.replica != from || !self.m.contains(b.space) || !vote.verify(NodeId::Replica(from), self.crypto.as_ref()) {
            return out.reject(NodeId::Replica(from), "invalid NEWOWNER vote");
        }
        let (space, owner) = (b.space, b.owner);
        self.count_new_owner_vote(vote);
        self.new_owner_progress(space, owner, out);
    }

    /// CONFIRM a NEWOWNER 2f+1 accepted; install one 2f+1 confirmed.
    fn new_owner_progress(&mut self, space: ReplicaId, owner: u64, out: &mut Out) {
        let q = self.m.quorum();
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        let later = s.changing.is_some_and(|c| c > owner);
        let Some(round) = s.rounds.get_mut(&owner) else { return };
        let with = |votes: &BTreeMap<ReplicaId, Signed<NewOwnerVoteBody>>, d: &Digest| -> Vec<_> {
            votes.values().filter(|v| v.body.digest == *d).cloned().collect()
        };
        if round.prepared.is_none() && !later {
            let prepared = round.candidates.iter().find_map(|(d, x)| {
                let votes = with(&round.accepts, d);
                (votes.len() >= q).then(|| (*d, NewOwnerCert { new_owner: x.clone(), votes }))
            });
            if let Some((d, cert)) = prepared {
                round.prepared = Some(cert.clone());
                self.persist_new_owner_vote(Phase::Confirm, &cert, out);
                self.cast_new_owner_vote(space, owner, Phase::Confirm, d, out);
            }
        }
        let Some(round) = self.spaces[space.index()].rounds.get(&owner) else { return };
        let agreed = round.candidates.iter().find_map(|(d, x)| {
            let votes = with(&round.confirms, d);
            (votes.len() >= q).then(|| NewOwnerCert { new_owner: x.clone(), votes })
        });
        if let Some(cert) = agreed {
            self.accept_new_owner(cert, out);
        }
    }

    /// NEWOWNER-AGREED from `from`: a NEWOWNER with 2f+1 CONFIRMs, which we missed.
    pub(crate) fn on_new_owner_agreed(&mut self, from: ReplicaId, cert: NewOwnerCert, out: &mut Out) {
        let (space, owner) = (cert.new_owner.body.space, cert.owner());
        let crypto = self.crypto.as_ref();
        if !self.m.contains(space)
            || !valid_new_owner(&self.m, crypto, &cert.new_owner, space, owner)
            || !cert.verify(&self.m, crypto, Phase::Confirm)
        {
            return out.reject(NodeId::Replica(from), "invalid agreed NEWOWNER");
        }
        self.accept_new_owner(cert, out);
    }

    /// Recovery: our NEWOWNER vote before the crash (so that we never vote twice differently).
    pub(crate) fn replay_new_owner_vote(&mut self, phase: Phase, cert: NewOwnerCert) {
        let (space, owner) = (cert.new_owner.body.space, cert.owner());
        let Some(s) = self.spaces.get_mut(space.index()) else { return };
        if owner <= s.owner {
            return;
        }
        let d = new_owner_digest(&cert.new_owner);
        self.own_new_owner_votes.cast((space, owner, phase), d, "ezbft: recovered NEWOWNER vote");
        let round = s.rounds.entry(owner).or_default();
        round.candidates.entry(d).or_insert_with(|| cert.new_owner.clone());
        match phase {
            Phase::Accept => round.accepted = round.accepted.or(Some(d)),
            Phase::Confirm => round.prepared = round.prepared.take().or(Some(cert)),
        }
    }

    /// Install a valid NEWOWNER if it is the next step for its space: a later
    /// owner of the epoch we are in, or (our space frozen) the change that
    /// ended the next epoch, which therefore was opened: we open it first.
    /// Anything further ahead waits until we have the NEWOWNERs before it.
    pub(crate) fn accept_new_owner(&mut self, new_owner: NewOwnerCert, out: &mut Out) {
        let n = self.m.n();
        let (space, owner) = (new_owner.new_owner.body.space, new_owner.owner());
        let Some(s) = self.spaces.get(space.index()) else { return };
        if owner <= s.owner {
            return;
        }
        let epoch = epoch_owner(space, owner - 1, n);
        if s.frozen.is_some() {
            if epoch != next_epoch_owner(space, s.owner, n) || !self.reopen(space, epoch, out) {
                return;
            }
        } else if epoch != epoch_owner(space, s.owner, n) {
            return;
        }
        self.install_new_owner(new_owner, out);
    }

    /// Commit the settled history of `space`, drop the rest, freeze the space.
    fn install_new_owner(&mut self, new_owner: NewOwnerCert, out: &mut Out) {
        let (space, owner) = (new_owner.new_owner.body.space, new_owner.owner());
        let proofs = &new_owner.new_owner.body.proofs;
        let known = |inst: InstanceId| {
            let e = self.log.get(&inst).filter(|e| e.committed && e.proof.is_some())?;
            Some(Settled { order: e.order.clone(), request: e.req.clone(), deps: e.deps.clone(), seq: e.seq })
        };
        let (start, g, len) = settle(&self.m, self.crypto.as_ref(), space, proofs, known);
        self.persist_new_owner(&new_owner, out);
        // A view's checkpoint we have not reached: its votes tell us to fetch its state.
        if let Some(stable) =
            proofs.iter().filter_map(|p| p.body.stable.as_ref()).max_by_key(|s| s.frontier.below(space))
        {
            self.learn_stable(stable, out);
        }
        {
            let s = &mut self.spaces[space.index()];
            s.owner = owner;
            s.frozen = Some(len);
            s.installed.push(new_owner.clone());
            s.rounds.retain(|o, _| *o > owner);
            s.changing = None;
            s.future.clear();
            s.reports.clear();
            s.next = s.next.max(len);
            // Clients that were waiting on this space can go elsewhere now.
            for c in std::mem::take(&mut s.waiting_clients) {
                out.send(c, Msg::SpaceFrozen { space });
            }
        }
        out.cancel_timer(Timer::NewOwner { space, owner });
        // The protocol's counterpart of a leader change (counted by hosts and the simulator).
        let leader = crate::messages::owner_replica(owner, &self.m);
        out.event(quorate_core::machine::Event::ViewChanged { view: owner, leader });
        // The unsettled slots inside G are void, like those after it.
        let mut from = start;
        for s in &g {
            let slot = s.order.body.inst.slot;
            if slot > from {
                self.spaces[space.index()].void.push((from, slot));
            }
            from = slot + 1;
        }
        let settled: BTreeSet<u64> = g.iter().map(|s| s.order.body.inst.slot).collect();
        // All of G is committed before anything executes: executing after
        // each slot made every slot that unblocks a command outside the
        // speculative tail's front roll the whole tail back and run it again
        // (a never-committing client's long history cost millions of
        // executions per NEWOWNER: campaign seed 109).
        self.defer_execution = true;
        for Settled { order, request, deps, seq } in g {
            // The client may be waiting on the slow path: it gets a COMMITREPLY.
            self.commit(order, request, deps, seq, true, None, out);
        }
        self.defer_execution = false;
        let s = &self.spaces[space.index()];
        self.agreements.retain(|i, _| i.space != space || !s.void(i.slot));
        let dropped: Vec<InstanceId> = self
            .log
            .keys()
            .filter(|i| i.space == space && i.slot >= start && !settled.contains(&i.slot) && s.void(i.slot))
            .copied()
            .collect();
        for inst in dropped {
            if let Some(e) = self.log.get_mut(&inst) {
                if !e.committed || e.noop {
                    e.noop = true;
                    e.committed = true;
                    self.waiting.insert(inst);
                    // Its client will order the request elsewhere.
                    self.by_request.remove(&(e.req.req.client, e.req.req.seq));
                }
            }
        }
        self.execute_all_ready(out);
    }
}

impl Replica {
    /// Reopen `space`, frozen by an owner change, in a new epoch led by
    /// `owner` (a number naming the space's own replica again): a replica
    /// whose space was settled (it was slow, crashed, or a faulty client
    /// made others suspect it) takes its clients back. The epoch's slots
    /// start at [`epoch_base`]; the dropped slots before it stay void.
    pub(crate) fn reopen(&mut self, space: ReplicaId, owner: u64, out: &mut Out) -> bool {
        let n = self.m.n();
        let Some(s) = self.spaces.get_mut(space.index()) else { return false };
        let base = epoch_base(space, owner, n);
        let Some(len) = s.frozen else { return false };
        // Only the next epoch: one further ahead needs the NEWOWNERs of those between.
        if owner != next_epoch_owner(space, s.owner, n) || base < len {
            return false;
        }
        s.void.push((len, base));
        s.frozen = None;
        s.owner = owner;
        s.changing = None;
        if s.next <= base {
            s.next = base;
            s.history = epoch_history(space, owner);
        }
        s.future.retain(|slot, _| *slot >= base);
        s.asked = None;
        s.suspects.clear();
        s.reports.clear();
        // Rounds of later owner numbers keep our votes: a NEWOWNER replacing
        // this epoch's owner may have come (and been accepted) before we
        // reopened, and a faulty new owner's second one must not get a
        // second ACCEPT (the NEWOWNER vote invariant found this).
        s.rounds.retain(|o, _| *o > owner);
        // A change of owner number, like an owner change (counted as such).
        out.event(quorate_core::machine::Event::ViewChanged { view: owner, leader: space });
        true
    }
}

//! REQUEST: the receiving replica becomes the command-leader and orders the
//! command in its own space (§IV-A step 2). SPECORDER: the other replicas
//! check the order, extend its dependencies from their own logs, execute
//! speculatively and answer the client (step 3).

use super::{Out, Replica};
use crate::messages::{
    barrier_space, canonical, canonical_deps, next_epoch_owner, owner_replica, request_authentic, request_digest,
    InstanceId, Msg, Signed, SpecOrder,
};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::request::{Freshness, SignedRequest};

/// Orders a replica sends in answer to one ORDERQUERY (the asked slot and those after it).
pub(crate) const ORDER_BATCH: u64 = 128;

impl Replica {
    /// REQUEST from client `c`.
    pub(crate) fn on_request(&mut self, c: ClientId, req: SignedRequest, out: &mut Out) {
        if req.req.client != c {
            return out.reject(NodeId::Client(c), "request names another client");
        }
        if barrier_space(c, &self.m).is_some() {
            return out.reject(NodeId::Client(c), "client id reserved for checkpoint barriers");
        }
        if !req.verify(self.crypto.as_ref()) {
            return out.reject(NodeId::Client(c), "bad request signature");
        }
        if !self.exec.service().validate(&req.req.op) {
            return out.reject(NodeId::Client(c), "invalid request");
        }
        let t = req.req.seq;
        // t must exceed the highest timestamp led for this client (t_c); the same t is a retransmission.
        match self.led.get(&c) {
            // (Once collected by a checkpoint it is final: the cached result below answers.)
            Some((last, inst)) if *last == t && self.log.contains_key(inst) => return self.retransmit(*inst, out),
            Some((last, _)) if *last > t => return out.reject(NodeId::Client(c), "stale request timestamp"),
            _ => {}
        }
        if let Some(inst) = self.by_request.get(&(c, t)).copied() {
            // Ordered already (in another space: the client moved here): our reply again.
            return self.resend_reply(inst, out);
        }
        match self.finals.get(&c) {
            Some((last, result)) if *last == t => return out.send(c, Msg::CachedReply { t, result: result.clone() }),
            Some((last, _)) if *last > t => return out.reject(NodeId::Client(c), "stale request timestamp"),
            _ => {}
        }
        if matches!(self.exec.table().freshness(c, t), Freshness::Stale) {
            return out.reject(NodeId::Client(c), "stale request timestamp");
        }
        let space = &self.spaces[self.id.index()];
        if space.frozen.is_some() {
            // Settled by an owner change: take our clients back in a new epoch.
            let owner = next_epoch_owner(self.id, space.owner, self.m.n());
            self.reopen(self.id, owner, out);
        }
        let space = &self.spaces[self.id.index()];
        if !space.open() || owner_replica(space.owner, &self.m) != self.id {
            // An owner change of our space is under way: its clients go to another replica.
            return out.send(c, Msg::SpaceFrozen { space: self.id });
        }
        self.order(req, out);
        self.maybe_order_barrier(out);
    }

    /// Order `req` in the next slot of our space, as its command-leader.
    pub(crate) fn order(&mut self, req: SignedRequest, out: &mut Out) {
        let space = &self.spaces[self.id.index()];
        let inst = InstanceId { space: self.id, slot: space.next };
        // §IV-A step 2.2: each order takes the lowest free slot of our space,
        // so our orders' slots strictly increase (also across recovery).
        quorate_core::invariant!(
            self.last_ordered.is_none_or(|last| inst.slot > last),
            "ezbft: SPECORDER at slot {} of our space after slot {:?} (an owner's slots strictly increase)",
            inst.slot,
            self.last_ordered
        );
        self.last_ordered = Some(inst.slot);
        let key = self.key_of(&req.req);
        let deps = self.interference.deps(key.as_ref(), req.req.client, inst);
        let seq = self.seq_for(&deps, 0);
        let digest = request_digest(&req);
        let history = Self::next_history(&space.history, inst.slot, &digest);
        let body = SpecOrder { owner: space.owner, inst, deps: canonical_deps(deps), seq, history, request: digest };
        let order = Signed::sign(body, self.crypto.as_ref());
        let space = &mut self.spaces[self.id.index()];
        space.next += 1;
        space.history = history;
        self.led.insert(req.req.client, (req.req.seq, inst));
        let (deps, seq) = (order.body.deps.clone(), order.body.seq);
        let msg = Msg::SpecOrder { order: order.clone(), request: req.clone() };
        self.insert(req, order, deps, seq);
        // Written to the log (with our reply) before the order leaves: a
        // recovered leader never orders a slot twice.
        self.speculate_and_reply(inst, out);
        out.broadcast(msg);
    }

    /// A client asked again for a command we lead: our order and reply again.
    fn retransmit(&mut self, inst: InstanceId, out: &mut Out) {
        let Some(e) = self.log.get(&inst) else { return };
        out.broadcast(Msg::SpecOrder { order: e.order.clone(), request: e.req.clone() });
        self.resend_reply(inst, out);
    }

    /// Our SPECREPLY (and COMMITREPLY, if final on the slow path) for `inst` again.
    pub(crate) fn resend_reply(&mut self, inst: InstanceId, out: &mut Out) {
        let Some(e) = self.log.get(&inst) else { return };
        let c = e.req.req.client;
        if let (true, Some(result)) = (e.reply_when_final, &e.final_result) {
            out.send(c, Msg::CommitReply { inst, t: e.req.req.seq, result: result.clone() });
        }
        if let Some(r) = e.reply.clone() {
            self.send_reply(r, out);
        }
    }

    /// ORDERQUERY from `from`: the orders of `inst` and the slots after it
    /// that we hold, up to [`ORDER_BATCH`] (a replica cut off for a while
    /// misses a long run; one slot per query took seconds to catch up).
    pub(crate) fn on_order_query(&mut self, from: ReplicaId, inst: InstanceId, out: &mut Out) {
        for slot in inst.slot..inst.slot.saturating_add(ORDER_BATCH) {
            let Some(e) = self.log.get(&InstanceId { space: inst.space, slot }) else { break };
            out.send(from, Msg::SpecOrder { order: e.order.clone(), request: e.req.clone() });
        }
    }

    /// S: above the sequence numbers of the known dependencies, and at least `floor`.
    pub(crate) fn seq_for<'a>(&self, deps: impl IntoIterator<Item = &'a InstanceId>, floor: u64) -> u64 {
        let above =
            deps.into_iter().filter_map(|d| self.log.get(d)).map(|e| e.seq.saturating_add(1)).max().unwrap_or(1);
        above.max(floor).max(1)
    }

    /// SPECORDER from replica `from`.
    pub(crate) fn on_spec_order(
        &mut self,
        from: ReplicaId,
        order: Signed<SpecOrder>,
        request: SignedRequest,
        out: &mut Out,
    ) {
        let o = &order.body;
        let Some(space) = self.spaces.get(o.inst.space.index()) else {
            return out.reject(NodeId::Replica(from), "SPECORDER for an unknown space");
        };
        if o.owner > space.owner && order.verify(NodeId::Replica(owner_replica(o.owner, &self.m)), self.crypto.as_ref())
        {
            // A later owner than we know: the space's replica reopened it after
            // an owner change, or we missed the change (ask for its NEWOWNER).
            let (s, owner) = (o.inst.space, space.owner);
            if !self.reopen(s, o.owner, out) {
                let space = &mut self.spaces[s.index()];
                if space.asked_new_owner != Some(owner) {
                    space.asked_new_owner = Some(owner);
                    out.send(from, Msg::StartOwnerChange { space: s, owner });
                }
                return;
            }
        }
        let o = &order.body;
        let space = &self.spaces[o.inst.space.index()];
        if space.installed.last().is_some_and(|n| o.owner < n.owner()) {
            // An owner that missed its replacement (it was cut off or down): show it the NEWOWNERs.
            self.show_new_owners(from, o.inst.space, o.owner, out);
            return out.reject(NodeId::Replica(from), "SPECORDER of a replaced owner");
        }
        if !space.open() {
            return out.reject(NodeId::Replica(from), "SPECORDER for a space under owner change");
        }
        // Forwarded orders (answers to ORDERQUERY) count too: the owner's signature is what matters.
        let owner = owner_replica(o.owner, &self.m);
        if o.owner != space.owner {
            return out.reject(NodeId::Replica(from), "SPECORDER with another owner number than the space's");
        }
        if !canonical(&o.deps) || o.request != request_digest(&request) {
            return out.reject(NodeId::Replica(from), "malformed SPECORDER");
        }
        if !order.verify(NodeId::Replica(owner), self.crypto.as_ref()) {
            return out.reject(NodeId::Replica(from), "bad SPECORDER signature");
        }
        let barrier = barrier_space(request.req.client, &self.m).is_some();
        if !request_authentic(&request, o.inst.space, &self.m, self.crypto.as_ref())
            || (!barrier && !self.exec.service().validate(&request.req.op))
        {
            return out.reject(NodeId::Replica(from), "SPECORDER with an invalid request");
        }
        let (inst, next) = (o.inst, space.next);
        if inst.slot < next {
            match self.log.get(&inst) {
                Some(e) if e.order == order => self.resend_reply(inst, out),
                // A second, different order for one slot: the leader equivocates.
                _ => out.reject(NodeId::Replica(from), "conflicting SPECORDER for an ordered slot"),
            }
            return;
        }
        if inst.slot > next {
            // I = maxI + 1 must hold: keep it until the slots before it arrive.
            let max_future = self.cfg.max_future;
            let space = &mut self.spaces[inst.space.index()];
            if space.future.len() >= max_future && !space.future.contains_key(&inst.slot) {
                return out.reject(NodeId::Replica(from), "too many SPECORDERs ahead of a missing slot");
            }
            // The owner sent the first order after the gap again (its client
            // retransmitted): the gap outlived our query, or its answers were lost.
            let repeated = space.future.insert(inst.slot, (order, request)).is_some()
                && from == owner
                && space.future.first_key_value().is_some_and(|(s, _)| *s == inst.slot);
            // Ask for the missing run once (answers come in batches), and
            // again every so often while the gap stays.
            let answered = space.asked.is_none_or(|a| next < a || next >= a.saturating_add(ORDER_BATCH));
            if answered || repeated || space.future.len().is_multiple_of(64) {
                space.asked = Some(next);
                out.broadcast(Msg::OrderQuery { inst: InstanceId { space: inst.space, slot: next } });
            }
            return;
        }
        self.accept_order(order, request, out);
        self.drain_future(inst.space, out);
    }

    /// Take buffered orders of `space` that are next in line now.
    pub(crate) fn drain_future(&mut self, space: ReplicaId, out: &mut Out) {
        while let Some((order, request)) = {
            let s = &mut self.spaces[space.index()];
            let next = s.next;
            s.future.remove(&next)
        } {
            self.accept_order(order, request, out);
        }
        let s = &mut self.spaces[space.index()];
        if s.future.is_empty() {
            s.asked = None;
        } else if s.asked.is_some_and(|a| s.next >= a.saturating_add(ORDER_BATCH)) {
            // A whole batch came in and the gap is still open: ask for the next run at once.
            s.asked = Some(s.next);
            out.broadcast(Msg::OrderQuery { inst: InstanceId { space, slot: s.next } });
        }
    }

    /// Take the order for the next slot of its space (checked): log, extend, speculate, reply.
    fn accept_order(&mut self, order: Signed<SpecOrder>, request: SignedRequest, out: &mut Out) {
        let inst = order.body.inst;
        let space = &self.spaces[inst.space.index()];
        let history = Self::next_history(&space.history, inst.slot, &order.body.request);
        if history != order.body.history {
            // The leader told us a different history of its space than it signed.
            return out.reject(NodeId::Replica(inst.space), "SPECORDER history does not match");
        }
        let space = &mut self.spaces[inst.space.index()];
        space.next = inst.slot + 1;
        space.history = history;
        if self.log.contains_key(&inst) {
            // Known from a COMMIT that overtook this order: it is settled already.
            return;
        }
        let key = self.key_of(&request.req);
        let mut deps = self.interference.deps(key.as_ref(), request.req.client, inst);
        deps.extend(order.body.deps.iter().copied());
        let seq = self.seq_for(&deps, order.body.seq);
        self.insert(request, order, canonical_deps(deps), seq);
        self.speculate_and_reply(inst, out);
    }
}

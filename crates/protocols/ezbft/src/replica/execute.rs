//! Execution (§IV-B). Speculative execution runs each command as soon as it is
//! ordered, on the latest state. Final execution waits until a command and
//! everything it transitively depends on are committed, then runs the
//! dependency graph's strongly connected components dependencies-first, each
//! in (sequence number, replica id) order, on the final state.
//!
//! The executor keeps one state with a speculative tail. When the next final
//! command is the oldest speculative one, its speculative execution becomes
//! final as it is (it ran on exactly the final state); otherwise the tail is
//! rolled back, the final commands run, and the rest is executed
//! speculatively again.

use super::{Out, Replica};
use crate::messages::{barrier_space, InstanceId, Msg, Signed, SpecReply, SpecReplyBody};
use quorate_core::crypto::Digest;
use quorate_core::executor::Outcome;
use quorate_core::machine::Event;
use quorate_core::Bytes;
use std::collections::{HashMap, HashSet};

fn result_of(o: Outcome) -> Bytes {
    match o {
        Outcome::Executed(r) | Outcome::Repeat(r) => r,
        // Superseded by a later request of the same client: nobody waits for it.
        Outcome::Stale => Bytes::new(),
    }
}

impl Replica {
    /// Execute `inst` speculatively and send the client our SPECREPLY.
    pub(crate) fn speculate_and_reply(&mut self, inst: InstanceId, out: &mut Out) {
        if self.log.get(&inst).is_none_or(|e| e.executed) {
            // Covered by a checkpoint we installed: nobody waits for our reply.
            return;
        }
        let result = self.speculate(inst, out);
        let Some(e) = self.log.get_mut(&inst) else { return };
        let body = SpecReplyBody {
            replica: self.id,
            owner: e.order.body.owner,
            inst,
            deps: e.deps.clone(),
            seq: e.seq,
            request: e.order.body.request,
            client: e.req.req.client,
            t: e.req.req.seq,
            result: Digest::of(&result),
        };
        // §IV-A step 3.4: one SPECREPLY per slot (a client and an owner
        // change count it as our word on the slot), also across recovery.
        if quorate_core::invariant::ENABLED {
            // (`deps` is a vector: no copy where invariants are off.)
            self.own_replies[inst.space.index()].cast(inst.slot, body.clone(), "ezbft: SPECREPLY");
        }
        let reply = SpecReply { reply: Signed::sign(body, self.crypto.as_ref()), result, order: e.order.clone() };
        e.reply = Some(reply.clone());
        self.persist_order(inst, out);
        self.send_reply(reply, out);
    }

    /// Send a SPECREPLY to whoever drives the command's commit: its client,
    /// or for a barrier the replica that ordered it.
    pub(crate) fn send_reply(&mut self, reply: SpecReply, out: &mut Out) {
        let b = &reply.reply.body;
        match barrier_space(b.client, &self.m) {
            None => out.send(b.client, Msg::SpecReply(Box::new(reply))),
            Some(space) if space == self.id => self.on_barrier_reply(self.id, reply, out),
            Some(space) => out.send(space, Msg::SpecReply(Box::new(reply))),
        }
    }

    /// Run `inst` on the latest state (final plus speculative); its result.
    fn speculate(&mut self, inst: InstanceId, out: &mut Out) -> Bytes {
        let Some(e) = self.log.get_mut(&inst) else { return Bytes::new() };
        if e.barrier {
            // No operation: the checkpoint is taken when it executes finally.
            e.spec_result = Some(Bytes::new());
            return Bytes::new();
        }
        let outcome = self.exec.execute_speculative(&e.req.req, inst.slot, 0, out);
        if matches!(outcome, Outcome::Executed(_)) {
            // Only executions the executor can undo are in its speculative tail.
            self.speculated.push_back((inst, (e.req.req.client, e.req.req.seq)));
        }
        let result = result_of(outcome);
        e.spec_result = Some(result.clone());
        result
    }

    /// Execute finally what `changed` (newly committed commands) made ready:
    /// each of them, and the commands that were waiting for one of them.
    /// While execution is deferred, nothing: they stay in `waiting`, and the
    /// pass that ends the deferral ([`Self::execute_all_ready`]) takes them.
    pub(crate) fn execute_ready(&mut self, changed: Vec<InstanceId>, out: &mut Out) {
        if self.defer_execution {
            return;
        }
        let mut todo = changed;
        while let Some(root) = todo.pop() {
            if let Some(more) = self.blocked.remove(&root) {
                for m in &more {
                    self.parked.remove(m);
                }
                todo.extend(more);
            }
            // Executed meanwhile as part of another component, or not committed.
            if !self.waiting.contains(&root) {
                continue;
            }
            match self.final_order(root) {
                Ok(order) => self.run_final(&order, out),
                // Retried when the blocker commits (or an owner change voids it).
                Err(Blocked { blocker, path }) => {
                    self.blocked.entry(blocker).or_default().push(root);
                    // Everything on the way to the blocker waits for it too.
                    for p in path {
                        self.parked.insert(p, blocker);
                    }
                    if let std::collections::hash_map::Entry::Vacant(v) = self.uncommitted.entry(blocker) {
                        v.insert(0);
                        out.set_timer(crate::Timer::Uncommitted { inst: blocker }, self.cfg.commit_timeout);
                        if self.catching_up && !self.fetching(blocker) {
                            // A fetched commit led to the next missing one: ask now, not after a timeout.
                            self.query_commit(blocker, out);
                        }
                    }
                }
            }
        }
    }

    /// Retry every waiting command (after an owner change voided slots).
    pub(crate) fn execute_all_ready(&mut self, out: &mut Out) {
        self.blocked.clear();
        self.parked.clear();
        let all: Vec<InstanceId> = self.waiting.iter().copied().collect();
        self.execute_ready(all, out);
    }

    /// The final execution order of `root` and the unexecuted commands it
    /// reaches, as strongly connected components in execution order, or the
    /// first of them that is unknown or uncommitted.
    /// Tarjan's algorithm, iteratively: with edges from a command to its
    /// dependencies, components complete dependencies-first.
    fn final_order(&self, root: InstanceId) -> Result<Vec<Vec<InstanceId>>, Blocked> {
        let mut t = Tarjan::default();
        t.visit(root, self.edges(root));
        let mut order = Vec::new();
        while let Some((v, k)) = t.calls.last().map(|(v, deps, k)| (*v, deps.get(*k).copied())) {
            if let Some(w) = k {
                if let Some(top) = t.calls.last_mut() {
                    top.2 += 1;
                }
                if w.space == v.space && w.slot > v.slot {
                    // A later slot of our own space: see `must_follow`.
                    continue;
                }
                let e = match self.log.get(&w) {
                    Some(e) => e,
                    // A slot an owner change dropped, or executed and collected: nothing to wait for.
                    None if self.void(w) || self.covered(w) => continue,
                    None => return Err(t.blocked(w)),
                };
                if e.executed {
                    continue;
                }
                if !e.committed {
                    return Err(t.blocked(w));
                }
                if !self.must_follow(v, w) {
                    continue;
                }
                // Known to wait for a command that is still not committed: so do we.
                if let Some(&x) = self.parked.get(&w) {
                    if self.blocks(x) {
                        return Err(t.blocked(x));
                    }
                }
                match t.index.get(&w) {
                    None => t.visit(w, self.edges(w)),
                    Some(&iw) if t.on_stack.contains(&w) => t.lower(v, iw),
                    Some(_) => {}
                }
                continue;
            }
            t.calls.pop();
            if let Some(u) = t.calls.last().map(|c| c.0) {
                t.lower(u, t.low[&v]);
            }
            if t.low[&v] == t.index[&v] {
                let mut component = Vec::new();
                while let Some(w) = t.stack.pop() {
                    t.on_stack.remove(&w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                // Inside a component: by sequence number, ties by replica id (then slot).
                component.sort_by_key(|i| (self.log[i].seq, i.space, i.slot));
                order.push(component);
            }
        }
        Ok(order)
    }

    /// The commands `v` must follow. A keyless command interferes with every
    /// command, and its dependency (space, s) stands for every slot of the
    /// space up to s: the latest per space alone would miss earlier commands
    /// that do not interfere with it (e.g. other keys).
    fn edges(&self, v: InstanceId) -> Vec<InstanceId> {
        let Some(e) = self.log.get(&v) else { return Vec::new() };
        if !e.keyless {
            return e.deps.clone();
        }
        let mut edges = Vec::new();
        for d in &e.deps {
            let Some(s) = self.spaces.get(d.space.index()) else { continue };
            let space = d.space;
            edges.extend(s.unexecuted.range(..=d.slot).map(|&slot| InstanceId { space, slot }));
            // Slots we do not have yet (not in the log): the first one that
            // is not void blocks anyway, so it is the only one needed.
            let unknown = (s.next.max(s.executed_below)..=d.slot)
                .map(|slot| InstanceId { space, slot })
                .find(|w| !self.log.contains_key(w) && !self.covered(*w));
            edges.extend(unknown.filter(|w| !self.void(*w)));
        }
        edges.retain(|w| *w != v);
        edges
    }

    /// Whether `v` must follow its committed dependency `w` (decision 0006,
    /// "Which dependencies execution follows"). Only committed data decides,
    /// so every correct replica drops the same edges.
    /// - A later slot of `v`'s own space: dropped (checked by the caller
    ///   before `w` is known: it may not be ordered yet). No correct replica
    ///   names one (it holds only the slots before `v` when it answers), and
    ///   the space's own chain already orders `w` after `v` if they
    ///   interfere: every command names the latest interfering one before it
    ///   in its space. Without this a faulty leader's orders waited for its
    ///   next ones.
    /// - A client's earlier request (or the same one in another space): kept,
    ///   so that the request table sees a client's commands in order.
    /// - Otherwise kept iff they interfere (§III: D is "every other command
    ///   L' that interferes with L"). An edge to a command of another key
    ///   orders nothing the checker or the paper needs, and through such
    ///   edges a faulty replica naming slots not ordered yet chained every
    ///   command to the next ones of every space (strategy
    ///   `spurious-future-deps`).
    fn must_follow(&self, v: InstanceId, w: InstanceId) -> bool {
        let (Some(a), Some(b)) = (self.log.get(&v), self.log.get(&w)) else { return true };
        if a.req.req.client == b.req.req.client && b.req.req.seq <= a.req.req.seq {
            return true;
        }
        match (&a.key, &b.key) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }

    /// Whether final execution must still wait for `inst`.
    fn blocks(&self, inst: InstanceId) -> bool {
        !(self.log.get(&inst).is_some_and(|e| e.committed) || self.void(inst) || self.covered(inst))
    }

    /// Whether `inst` is a slot an owner change dropped (beyond a frozen space's end).
    pub(crate) fn void(&self, inst: InstanceId) -> bool {
        self.spaces.get(inst.space.index()).is_some_and(|s| s.void(inst.slot))
    }

    /// The first command `v` must follow that is neither executed, nor
    /// dropped or collected, nor in `component` (`v`'s own): the edges
    /// [`Self::final_order`] follows, checked against the execution.
    fn unmet_dependency(&self, v: InstanceId, component: &HashSet<InstanceId>) -> Option<InstanceId> {
        self.edges(v).into_iter().find(|&w| {
            if w.space == v.space && w.slot > v.slot {
                return false;
            }
            match self.log.get(&w) {
                None => !(self.void(w) || self.covered(w)),
                Some(e) if e.executed => false,
                Some(e) if !e.committed => true,
                Some(_) => self.must_follow(v, w) && !component.contains(&w),
            }
        })
    }

    /// Execute `order` (strongly connected components, in order) finally.
    pub(crate) fn run_final(&mut self, order: &[Vec<InstanceId>], out: &mut Out) {
        let mut respeculate = Vec::new();
        let mut rolled_back = false;
        for component in order {
            let members: HashSet<InstanceId> =
                if quorate_core::invariant::ENABLED { component.iter().copied().collect() } else { HashSet::new() };
            for &inst in component {
                let Some(e) = self.log.get(&inst) else { continue };
                // §IV-B steps 1-4: a command executes finally once (until a
                // state install replaces the state it ran on), after every
                // command it follows outside its own component.
                quorate_core::invariant!(!e.executed, "ezbft: {inst:?} executes finally twice");
                if quorate_core::invariant::ENABLED {
                    if let Some(w) = self.unmet_dependency(inst, &members) {
                        quorate_core::invariant!(false, "ezbft: {inst:?} executes finally before its dependency {w:?}");
                    }
                }
                let (noop, ran) = (e.noop, (inst, (e.req.req.client, e.req.req.seq)));
                let speculated = self.speculated.iter().any(|(i, _)| *i == inst);
                let result = if !rolled_back && !noop && self.speculated.front() == Some(&ran) {
                    // Its speculative run was on exactly the final state: keep it.
                    self.exec.commit_speculative(1, out);
                    self.speculated.pop_front();
                    self.log.get(&inst).and_then(|e| e.spec_result.clone()).unwrap_or_default()
                } else if noop && !speculated {
                    // Dropped by an owner change and never run here: nothing to do.
                    Bytes::new()
                } else {
                    // (A barrier comes here too: its checkpoint must see exactly the final state.)
                    if !rolled_back && self.exec.speculating() {
                        if let Err(e) = self.exec.rollback(out) {
                            out.event(Event::Note(format!("rollback failed: {e}")));
                        }
                        respeculate = self.speculated.drain(..).collect();
                        rolled_back = true;
                    }
                    match self.log.get(&inst) {
                        Some(e) if !e.noop && !e.barrier => result_of(self.exec.execute(&e.req.req, inst.slot, 0, out)),
                        _ => Bytes::new(),
                    }
                };
                self.waiting.remove(&inst);
                let Some(e) = self.log.get_mut(&inst) else { continue };
                e.executed = true;
                if let Some(s) = self.spaces.get_mut(inst.space.index()) {
                    s.unexecuted.remove(&inst.slot);
                    let log = &self.log;
                    s.advance(|slot| log.get(&InstanceId { space: inst.space, slot }).is_some_and(|e| e.executed));
                }
                let Some(e) = self.log.get_mut(&inst) else { continue };
                e.final_result = Some(result.clone());
                if e.barrier {
                    if !e.noop {
                        self.take_checkpoint(inst, out);
                    }
                    continue;
                }
                let (c, t) = (e.req.req.client, e.req.req.seq);
                if !e.noop && self.finals.get(&c).is_none_or(|(last, _)| *last < t) {
                    self.finals.insert(c, (t, result.clone()));
                }
                if e.reply_when_final && !e.noop {
                    out.send(e.req.req.client, Msg::CommitReply { inst, t: e.req.req.seq, result });
                }
            }
        }
        for (inst, _) in respeculate {
            if self.log.get(&inst).is_some_and(|e| !e.executed) {
                self.speculate(inst, out);
            }
        }
    }
}

/// Why a command cannot execute finally yet: the command it waits for, and
/// the waiting commands on the way there (which wait for it too).
pub(crate) struct Blocked {
    blocker: InstanceId,
    path: Vec<InstanceId>,
}

/// The state of an iterative run of Tarjan's algorithm.
#[derive(Default)]
struct Tarjan {
    index: HashMap<InstanceId, usize>,
    low: HashMap<InstanceId, usize>,
    on_stack: HashSet<InstanceId>,
    stack: Vec<InstanceId>,
    /// The simulated call stack: a node, its dependencies and how many it has looked at.
    calls: Vec<(InstanceId, Vec<InstanceId>, usize)>,
}

impl Tarjan {
    fn visit(&mut self, v: InstanceId, edges: Vec<InstanceId>) {
        let i = self.index.len();
        self.index.insert(v, i);
        self.low.insert(v, i);
        self.stack.push(v);
        self.on_stack.insert(v);
        self.calls.push((v, edges, 0));
    }

    fn blocked(&self, blocker: InstanceId) -> Blocked {
        Blocked { blocker, path: self.calls.iter().map(|c| c.0).collect() }
    }

    fn lower(&mut self, v: InstanceId, to: usize) {
        if let Some(l) = self.low.get_mut(&v) {
            *l = (*l).min(to);
        }
    }
}

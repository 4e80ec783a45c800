//! Who coordinates a D-instance, at a point of the order (§3.2.5).
//!
//! - A replica proposes new commands only in its own D-instance. One that
//!   took another's over in a view change only finishes it: the engine's
//!   NEW-VIEW re-proposals and no-ops for slots the O-instance ordered.
//! - Each replica that installs a D-view says so, signed (VIEW-NOTICE); the
//!   O-primary orders a [`Handover`] once f+1 said the same, so every
//!   correct replica switches at the same O-slot. From there on the
//!   clients of an instance whose owner does not coordinate it use the
//!   instances whose owners do (spread by client id), and come back when a
//!   later handover names one of the owner's views.
//! - Reinstatement: a replica whose instance the order shows taken over
//!   asks for it back (REINSTATE, with its stable O-checkpoint). A replica
//!   whose health check passes (the asker is caught up to a recent stable
//!   O-checkpoint) moves that D-instance to the next view the owner
//!   coordinates, skipping views; the engines need a quorum of VIEW-CHANGEs
//!   for it (f+1 that ask make the others join), so f faulty replicas
//!   alone cannot reinstate. The view change puts the instance on
//!   probation; its handover brings its clients back.

use super::{Out, Replica};
use crate::messages::{view_notice_bytes, Handover, Msg};
use crate::Flavor;
use quorate_core::crypto::{Digest, Signature};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::Event;
use quorate_core::time::Time;
use quorate_engines::instance::Instance;
use std::collections::{BTreeMap, HashSet};

/// Per D-instance, the latest VIEW-NOTICE of each replica.
pub(crate) type Notices = Vec<BTreeMap<ReplicaId, (u64, Signature)>>;

impl<F: Flavor> Replica<F> {
    /// The view of D-instance `i` that the executed order names.
    pub(crate) fn ordered_view(&self, i: u32) -> u64 {
        self.progress.views.get(&i).copied().unwrap_or(0)
    }

    /// Whether D-instance `i`'s owner coordinates it at this point of the
    /// order (its coordinator is `(view + i) mod n`).
    pub(crate) fn owner_coordinates(&self, i: u32) -> bool {
        self.ordered_view(i).is_multiple_of(self.m.n() as u64)
    }

    /// The instances whose owners coordinate them in the order (cached).
    pub(crate) fn refresh_owners(&mut self) {
        self.owners = (0..self.d.len() as u32).filter(|i| self.owner_coordinates(*i)).collect();
        for i in &self.owners {
            self.taken_over_since[*i as usize] = None;
        }
    }

    /// How long D-instance `i`, taken over in the order, stays so before
    /// its owner may have it back: the first time not at all (a replica
    /// that crashed and restarted); the k-th time `reinstate_backoff ·
    /// 2^(k-2)`. Each reinstatement moves to the owner's next view, a
    /// multiple of n, so the order's view counts the takeovers.
    pub(crate) fn reinstate_wait(&self, i: u32) -> std::time::Duration {
        let takeovers = self.ordered_view(i) / self.m.n() as u64 + 1;
        if takeovers < 2 {
            return std::time::Duration::ZERO;
        }
        self.cfg.reinstate_backoff.saturating_mul(1u32 << (takeovers - 2).min(16))
    }

    /// Whether D-instance `i` has been taken over for its reinstatement
    /// wait (measured from when this replica executed the takeover, or
    /// first saw it after a state transfer or a restart).
    fn reinstate_due(&mut self, now: Time, i: u32) -> bool {
        let since = *self.taken_over_since[i as usize].get_or_insert(now);
        now.since(since) >= self.reinstate_wait(i)
    }

    /// Where client `c`, whose ASSIGN or default names `base`, sends at
    /// this point of the order: `base`, unless its owner does not
    /// coordinate it; then one of the instances whose owners do.
    pub(crate) fn effective_instance(&self, c: ClientId, base: u32) -> u32 {
        if self.owners.is_empty() || self.owner_coordinates(base) {
            return base;
        }
        self.owners[(c.0 % self.owners.len() as u64) as usize]
    }

    /// The next view of D-instance `i` after `view` that its owner coordinates.
    fn next_owner_view(&self, view: u64) -> u64 {
        let n = self.m.n() as u64;
        (view / n + 1) * n
    }

    /// Our D-instance `i` installed `view`: say so to everyone.
    pub(crate) fn send_view_notice(&mut self, now: Time, i: u32, view: u64, out: &mut Out<F>) {
        let sig = self.crypto.sign(&view_notice_bytes(i, view));
        self.note_view(self.id, i, view, sig.clone());
        self.last_notice[i as usize] = Some(now);
        out.broadcast(Msg::ViewNotice { instance: i, view, sig });
    }

    fn note_view(&mut self, from: ReplicaId, i: u32, view: u64, sig: Signature) {
        let by = &mut self.notices[i as usize];
        if by.get(&from).is_none_or(|(v, _)| *v < view) {
            by.insert(from, (view, sig));
        }
    }

    /// VIEW-NOTICE from replica `from`.
    pub(crate) fn on_view_notice(
        &mut self,
        now: Time,
        from: ReplicaId,
        i: u32,
        view: u64,
        sig: Signature,
        out: &mut Out<F>,
    ) {
        if i as usize >= self.d.len() {
            return out.reject(NodeId::Replica(from), "VIEW-NOTICE for an unknown D-instance");
        }
        if view <= self.ordered_view(i) {
            return;
        }
        if !self.crypto.verify(NodeId::Replica(from), &view_notice_bytes(i, view), &sig) {
            return out.reject(NodeId::Replica(from), "bad VIEW-NOTICE signature");
        }
        self.note_view(from, i, view, sig);
        self.maybe_order(now, out);
    }

    /// O-primary: the handovers f+1 replicas vouch for that the order does
    /// not have yet (the latest view per instance).
    pub(crate) fn handovers_due(&self) -> Vec<Handover> {
        let need = self.m.f() + 1;
        let mut due = Vec::new();
        for (i, by) in self.notices.iter().enumerate() {
            let i = i as u32;
            let ordered = self.ordered_view(i);
            let mut views: BTreeMap<u64, Vec<(ReplicaId, Signature)>> = BTreeMap::new();
            for (r, (v, sig)) in by {
                if *v > ordered {
                    views.entry(*v).or_default().push((*r, sig.clone()));
                }
            }
            let best = views.into_iter().rev().find(|(v, sigs)| sigs.len() >= need && !self.handed.contains(&(i, *v)));
            if let Some((view, mut sigs)) = best {
                sigs.truncate(need);
                due.push(Handover { instance: i, view, sigs });
            }
        }
        due
    }

    /// Whether a handover in an O-batch is well-formed and vouched for by
    /// f+1 distinct replicas.
    pub(crate) fn check_handovers(&self, hs: &[Handover]) -> Result<(), &'static str> {
        if hs.len() > self.d.len() {
            return Err("O-batch with too many handovers");
        }
        let mut instances = HashSet::with_capacity(hs.len());
        for h in hs {
            if h.instance as usize >= self.d.len() || !instances.insert(h.instance) {
                return Err("O-batch with a bad or repeated handover");
            }
            let bytes = view_notice_bytes(h.instance, h.view);
            let mut signers = HashSet::with_capacity(h.sigs.len());
            for (r, sig) in &h.sigs {
                if !self.m.contains(*r) || !signers.insert(*r) || !self.crypto.verify(NodeId::Replica(*r), &bytes, sig)
                {
                    return Err("O-batch with a badly signed handover");
                }
            }
            if signers.len() <= self.m.f() {
                return Err("O-batch with a handover fewer than f+1 replicas vouch for");
            }
        }
        Ok(())
    }

    /// Execute a handover at O-slot `k`: from here on D-instance `h.instance`
    /// is coordinated by its view's replica; clients move accordingly.
    pub(crate) fn apply_handover(&mut self, now: Time, k: u64, h: &Handover, out: &mut Out<F>) {
        let i = h.instance;
        if h.view <= self.ordered_view(i) {
            return;
        }
        let was = self.owner_coordinates(i);
        self.progress.views.insert(i, h.view);
        self.notices[i as usize].retain(|_, (v, _)| *v > h.view);
        let owner = self.owner_coordinates(i);
        let coordinator = (h.view + u64::from(i)) % self.m.n() as u64;
        match (was, owner) {
            (false, true) => out.event(Event::Note(format!(
                "D{i}: reinstated at O-slot {k}: replica {i} coordinates its instance again (view {}), its clients return",
                h.view
            ))),
            (true, false) => {
                self.taken_over_since[i as usize] = Some(now);
                out.event(Event::Note(format!(
                    "D{i}: taken over at O-slot {k} by replica {coordinator} (view {}): its clients move to other \
                     instances",
                    h.view
                )))
            }
            _ => {}
        }
        if was != owner {
            self.reinstatements += u64::from(owner);
            self.refresh_owners();
            self.clients_moved(now);
        }
    }

    /// The order moved clients between instances: each pending request goes
    /// to its client's instance now (proposals of it elsewhere no longer
    /// count: executed only through that instance).
    pub(crate) fn clients_moved(&mut self, now: Time) {
        let mut moved = Vec::new();
        let keys: Vec<ClientId> = self.pending.clients().collect();
        for c in keys {
            let i = self.instance_of(c);
            let Some(p) = self.pending.get_mut(&c) else { continue };
            if p.tag != i {
                p.tag = i;
                p.since = now;
                moved.push((c, p.req.req.seq, i));
            }
        }
        for (c, seq, i) in moved {
            self.proposed.remove(&(c, seq));
            self.in_proposal.remove(&(c, seq));
            self.disseminated.remove(&(c, seq));
            self.mark_fresh(i);
        }
    }

    /// Every request tick: resend VIEW-NOTICEs the order has not taken up
    /// (to the O-primary), and ask for our instance back if the order shows
    /// it taken over.
    pub(crate) fn reinstate_tick(&mut self, now: Time, out: &mut Out<F>) {
        let period = self.cfg.status_interval.saturating_mul(4);
        let due = |at: Option<Time>| at.is_none_or(|t| now.since(t) >= period);
        for i in 0..self.d.len() as u32 {
            let d = &self.d[i as usize];
            if d.active() && d.view() > self.ordered_view(i) && due(self.last_notice[i as usize]) {
                if let Some((_, sig)) = self.notices[i as usize].get(&self.id).filter(|(v, _)| *v == d.view()) {
                    let msg = Msg::ViewNotice { instance: i, view: d.view(), sig: sig.clone() };
                    self.last_notice[i as usize] = Some(now);
                    if self.o.is_primary() {
                        self.maybe_order(now, out);
                    } else {
                        out.send(self.o.primary(), msg);
                    }
                }
            }
        }
        let me = self.id.0;
        if self.owner_coordinates(me) || !due(self.last_reinstate) {
            return;
        }
        let d = &self.d[me as usize];
        let ordered = self.ordered_view(me);
        if d.active() && d.is_primary() && d.view() > ordered {
            return; // reinstated; its handover is on its way
        }
        let view = d.view();
        if !self.reinstate_due(now, me) {
            return; // taken over again: wait (the others would refuse)
        }
        let target = if view > ordered && view.is_multiple_of(self.m.n() as u64) {
            view
        } else {
            self.next_owner_view(ordered.max(view))
        };
        self.last_reinstate = Some(now);
        let (seq, digest) = self.o.stable_checkpoint();
        out.event(Event::Note(format!("D{me}: asking for our instance back (view {target})")));
        out.broadcast(Msg::Reinstate { seq, digest });
        self.with_d(now, me, out, |e, a| e.view_change_to(target, a));
    }

    /// REINSTATE from replica `from`: after the health check, move its
    /// D-instance to the next view it coordinates.
    pub(crate) fn on_reinstate(&mut self, now: Time, from: ReplicaId, seq: u64, digest: Digest, out: &mut Out<F>) {
        let i = from.0;
        if self.owner_coordinates(i) || self.transfer.is_some() || self.o.behind() {
            return;
        }
        let d = &self.d[i as usize];
        let n = self.m.n() as u64;
        if d.view() > self.ordered_view(i) && d.view().is_multiple_of(n) {
            return; // moving to (or in) one of its views already
        }
        if !self.reinstate_due(now, i) {
            let wait = self.reinstate_wait(i);
            out.event(Event::Note(format!(
                "D{i}: not reinstating replica {i} yet: taken over again, it waits {wait:?}"
            )));
            return;
        }
        if !healthy((seq, digest), self.o.stable_checkpoint(), self.cfg.checkpoint_period) {
            let ours = self.o.stable_checkpoint().0;
            out.event(Event::Note(format!(
                "D{i}: not reinstating replica {i}: its stable O-checkpoint {seq} is behind ours ({ours})"
            )));
            return;
        }
        let target = self.next_owner_view(self.d[i as usize].view());
        out.event(Event::Note(format!("D{i}: replica {i} passed the health check: view change to {target}")));
        self.with_d(now, i, out, |e, a| e.view_change_to(target, a));
    }
}

/// The health check of §3.2.5 ("a correct replica will ensure that a
/// recovered replica is participating in the protocol"): the asker's stable
/// O-checkpoint is at most one checkpoint period behind ours and, at ours,
/// has our digest. It cannot hold one without taking part in the
/// O-instance's checkpoints or fetching the state f+1 replicas vouch for.
pub(crate) fn healthy(asker: (u64, Digest), ours: (u64, Digest), period: u64) -> bool {
    asker.0.saturating_add(period) >= ours.0 && (asker.0 != ours.0 || asker.1 == ours.1)
}

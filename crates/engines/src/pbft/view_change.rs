//! View change (Castro and Liskov, TOCS 2002, in its MAC form, with signed VIEW-CHANGE
//! and NEW-VIEW messages as in OSDI'99 §5.2).
//!
//! Prepared certificates made of MACed PREPAREs cannot be shown to a third
//! party, so a VIEW-CHANGE carries the sender's claims instead: its
//! checkpoints (C), what it prepared (P) and what it pre-prepared (Q). The
//! new primary picks, from 2f+1 or more of them:
//!
//! - the checkpoint: the highest (n, d) that f+1 claim to hold and at or
//!   above the stable checkpoint of 2f+1;
//! - for each seq n after it: a value d prepared in view v by someone (A)
//!   if 2f+1 prepared nothing later or conflicting at n (A1) and f+1
//!   pre-prepared d in v or later (A2); else a null request if 2f+1
//!   prepared nothing at n (B); else it waits for more VIEW-CHANGEs.
//!
//! The NEW-VIEW carries the VIEW-CHANGEs, so every backup repeats the
//! computation and accepts the NEW-VIEW only if it gives the same result.
//! Liveness follows OSDI'99 §4.5.2: the view-change timer starts at 2f+1
//! VIEW-CHANGEs for our view and doubles with each view change that decides
//! nothing; f+1 VIEW-CHANGEs for later views make a replica join.

use super::messages::{bytes, check_view_change};
use super::{
    Action, Actions, EngineTimer, NewView, PbftMsg, PrePrepareClaim, PrepareClaim, Record, Signed, Value, ViewChange,
    NULL_DIGEST,
};
use crate::pbft::Engine;
use quorate_core::crypto::Digest;
use quorate_core::ids::{NodeId, ReplicaId};
use std::collections::{BTreeMap, BTreeSet};

/// The outcome of the decision procedure: the checkpoint and the chosen values.
pub(crate) type Decision = ((u64, Digest), Vec<(u64, Digest)>);

impl<V: Value> Engine<V> {
    /// Suspect the primary: move to the next view. Ignored while a view
    /// change is under way (the view-change timer moves on from there).
    pub fn start_view_change(&mut self, out: &mut Actions<V>) {
        if self.k.active {
            let target = self.k.view + 1;
            self.move_to_view(target, out);
        }
    }

    /// Move to `target` at once if it is later than our view, skipping the
    /// views between (f+1 VIEW-CHANGEs for it make the others join).
    pub fn view_change_to(&mut self, target: u64, out: &mut Actions<V>) {
        if target > self.k.view {
            self.move_to_view(target, out);
        }
    }

    /// Leave the current view for `target`: stop taking part in the old
    /// one, send a signed VIEW-CHANGE with what we know.
    pub(crate) fn move_to_view(&mut self, target: u64, out: &mut Actions<V>) {
        if target <= self.k.view && !(self.k.active && target == self.k.view + 1) {
            return;
        }
        self.k.view = target;
        self.k.active = false;
        self.k.vc_timer = false;
        if !self.k.replaying {
            out.push(Action::CancelTimer { timer: EngineTimer::ViewChange });
        }
        self.k.persist(Record::View { view: target }, out);
        let body = self.build_view_change(target);
        let sig = self.k.crypto.sign(&bytes::view_change(self.cfg.instance, &body));
        let vc = Signed { body, sig };
        self.view_changes.insert(self.k.id, vc.clone());
        self.k.note(format!("view change to {target}"), out);
        self.k.broadcast(PbftMsg::ViewChange(Box::new(vc)), out);
        self.after_view_change_vote(out);
    }

    /// Our VIEW-CHANGE for `view`: stable checkpoint, C, P and Q.
    pub(crate) fn build_view_change(&self, view: u64) -> ViewChange {
        let checkpoints: Vec<(u64, Digest)> = self
            .own_checkpoints
            .iter()
            .filter(|(s, _)| **s >= self.k.stable && **s > 0)
            .map(|(s, d)| (*s, *d))
            .collect();
        let top = self.k.stable + self.cfg.window;
        let mut prepared = Vec::new();
        let mut pre_prepared = Vec::new();
        for (&seq, slot) in self.slots.range(self.k.stable + 1..=top) {
            if let Some((v, d)) = slot.prepared {
                prepared.push(PrepareClaim { seq, digest: d, view: v });
            }
            let mut q: Vec<PrePrepareClaim> =
                slot.pre_prepared.iter().map(|(d, v)| PrePrepareClaim { seq, digest: *d, view: *v }).collect();
            q.sort();
            pre_prepared.extend(q);
        }
        ViewChange { view, replica: self.k.id, stable: self.k.stable, checkpoints, prepared, pre_prepared }
    }

    pub(crate) fn on_view_change(&mut self, from: ReplicaId, vc: Signed<ViewChange>, out: &mut Actions<V>) {
        if vc.body.replica != from {
            out.reject(from, "VIEW-CHANGE of another replica");
            return;
        }
        if let Err(why) = check_view_change(&vc.body, self.k.m.n(), self.cfg.checkpoint_period, self.cfg.window) {
            out.reject(from, why);
            return;
        }
        let v = vc.body.view;
        if v < self.k.view || (v == self.k.view && self.k.active) {
            // The sender missed the NEW-VIEW of a view we installed: send it.
            if self.k.active {
                if let Some(nv) = self.new_view.clone() {
                    self.k.send(from, PbftMsg::NewView(Box::new(nv)), out);
                }
            }
            return;
        }
        if self.view_changes.get(&from).is_some_and(|old| old.body.view >= v) {
            return; // a repeat, or older than what we have from it
        }
        if !self.k.crypto.verify(NodeId::Replica(from), &bytes::view_change(self.cfg.instance, &vc.body), &vc.sig) {
            out.reject(from, "bad VIEW-CHANGE signature");
            return;
        }
        self.view_changes.insert(from, vc);
        // f+1 replicas ask for views later than ours: at least one correct
        // one does; join the lowest view that f+1 of them ask for.
        let asked = self.view_changes.iter().map(|(r, vc)| (*r, vc.body.view));
        if let Some(target) = self.k.join_target(asked, self.weak()) {
            self.move_to_view(target, out);
            return;
        }
        self.after_view_change_vote(out);
    }

    /// Another VIEW-CHANGE for the view we move to: at 2f+1 start the timer;
    /// as its primary, try to compute the NEW-VIEW.
    fn after_view_change_vote(&mut self, out: &mut Actions<V>) {
        if self.k.active {
            return;
        }
        let target = self.k.view;
        let count = self.view_changes.values().filter(|vc| vc.body.view == target).count();
        if count < self.quorum() {
            return;
        }
        if !self.k.vc_timer {
            self.k.vc_timer = true;
            if !self.k.replaying {
                let after = self.cfg.view_change_timeout.saturating_mul(self.k.backoff());
                out.push(Action::SetTimer { timer: EngineTimer::ViewChange, after });
            }
        }
        if self.k.primary_of(target) == self.k.id && !self.k.replaying {
            self.try_new_view(out);
        }
    }

    /// The view-change timer expired without a NEW-VIEW: next view, longer timeout.
    pub(crate) fn on_view_change_timeout(&mut self, out: &mut Actions<V>) {
        if self.k.active || !self.k.vc_timer {
            return;
        }
        self.k.failed_views = self.k.failed_views.saturating_add(1);
        let target = self.k.view + 1;
        self.move_to_view(target, out);
    }

    /// New primary: decide from the VIEW-CHANGEs at hand; send the NEW-VIEW
    /// if every sequence number is decided.
    fn try_new_view(&mut self, out: &mut Actions<V>) {
        let target = self.k.view;
        let vcs: Vec<Signed<ViewChange>> =
            self.view_changes.values().filter(|vc| vc.body.view == target).cloned().collect();
        let Some((checkpoint, chosen)) = self.decide_new_view(&vcs) else { return };
        let body = NewView { view: target, view_changes: vcs, checkpoint, chosen };
        // §4.4: the NEW-VIEW carries 2f+1 VIEW-CHANGEs of distinct replicas,
        // and every correct backup accepts a correct primary's NEW-VIEW.
        quorate_core::invariant!(
            self.check_new_view(&body).is_ok(),
            "pbft: own NEW-VIEW for view {target} fails the backups' check: {:?}",
            self.check_new_view(&body)
        );
        let sig = self.k.crypto.sign(&bytes::new_view(self.cfg.instance, &body));
        let nv = Signed { body, sig };
        self.install_new_view(nv.clone(), out);
        self.k.broadcast(PbftMsg::NewView(Box::new(nv)), out);
    }

    /// The decision procedure over a set of VIEW-CHANGEs for one view (all
    /// well-formed, from distinct replicas). None: not decidable yet.
    pub(crate) fn decide_new_view(&self, vcs: &[Signed<ViewChange>]) -> Option<Decision> {
        let (quorum, weak) = (self.quorum(), self.weak());
        if vcs.len() < quorum {
            return None;
        }
        // Checkpoint: the highest (n, d) held by f+1 with 2f+1 stable at or below n.
        let mut held: BTreeMap<(u64, Digest), usize> = BTreeMap::new();
        for vc in vcs {
            for c in vc.body.checkpoints.iter().collect::<BTreeSet<_>>() {
                *held.entry(*c).or_default() += 1;
            }
        }
        let below = |n: u64| vcs.iter().filter(|vc| vc.body.stable <= n).count();
        let checkpoint = held
            .iter()
            .filter(|(_, c)| **c >= weak)
            .map(|(k, _)| *k)
            .chain(std::iter::once((0, Digest::default())))
            .filter(|(n, _)| below(*n) >= quorum)
            .max_by_key(|(n, d)| (*n, *d))?;
        let h = checkpoint.0;
        let prepared: Vec<BTreeMap<u64, (Digest, u64)>> =
            vcs.iter().map(|vc| vc.body.prepared.iter().map(|p| (p.seq, (p.digest, p.view))).collect()).collect();
        let max_seq = vcs.iter().flat_map(|vc| vc.body.prepared.iter().map(|p| p.seq)).filter(|s| *s > h).max();
        let mut chosen = Vec::new();
        let Some(max_seq) = max_seq else { return Some((checkpoint, chosen)) };
        if max_seq > h.saturating_add(self.cfg.window) {
            return None; // cannot happen with well-formed claims above a chosen checkpoint
        }
        for n in h.saturating_add(1)..=max_seq {
            let mut candidates: Vec<(u64, Digest)> =
                prepared.iter().filter_map(|p| p.get(&n)).map(|(d, v)| (*v, *d)).collect();
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            candidates.dedup();
            let pick = candidates.into_iter().find(|&(v, d)| {
                let a1 = vcs
                    .iter()
                    .zip(&prepared)
                    .filter(|(vc, p)| {
                        vc.body.stable < n && p.get(&n).is_none_or(|(d2, v2)| *v2 < v || (*v2 == v && *d2 == d))
                    })
                    .count();
                let a2 = vcs
                    .iter()
                    .filter(|vc| vc.body.pre_prepared.iter().any(|q| q.seq == n && q.digest == d && q.view >= v))
                    .count();
                a1 >= quorum && a2 >= weak
            });
            match pick {
                Some((_, d)) => chosen.push((n, d)),
                None => {
                    let b =
                        vcs.iter().zip(&prepared).filter(|(vc, p)| vc.body.stable < n && !p.contains_key(&n)).count();
                    if b >= quorum {
                        chosen.push((n, NULL_DIGEST));
                    } else {
                        return None;
                    }
                }
            }
        }
        Some((checkpoint, chosen))
    }

    pub(crate) fn on_new_view(&mut self, from: ReplicaId, nv: Signed<NewView>, out: &mut Actions<V>) {
        let v = nv.body.view;
        if v < self.k.view || (v == self.k.view && self.k.active) || v == 0 {
            return;
        }
        let primary = self.k.primary_of(v);
        if !self.k.crypto.verify(NodeId::Replica(primary), &bytes::new_view(self.cfg.instance, &nv.body), &nv.sig) {
            out.reject(from, "bad NEW-VIEW signature");
            return;
        }
        if let Err(why) = self.check_new_view(&nv.body) {
            out.reject(from, why);
            return;
        }
        self.install_new_view(nv, out);
    }

    /// Whether a NEW-VIEW follows from its VIEW-CHANGEs.
    fn check_new_view(&self, nv: &NewView) -> Result<(), &'static str> {
        let mut senders = BTreeSet::new();
        for vc in &nv.view_changes {
            if vc.body.view != nv.view {
                return Err("NEW-VIEW with a VIEW-CHANGE for another view");
            }
            check_view_change(&vc.body, self.k.m.n(), self.cfg.checkpoint_period, self.cfg.window)?;
            if !senders.insert(vc.body.replica) {
                return Err("NEW-VIEW with two VIEW-CHANGEs of one replica");
            }
            let signer = NodeId::Replica(vc.body.replica);
            if !self.k.crypto.verify(signer, &bytes::view_change(self.cfg.instance, &vc.body), &vc.sig) {
                return Err("NEW-VIEW with a badly signed VIEW-CHANGE");
            }
        }
        match self.decide_new_view(&nv.view_changes) {
            Some((checkpoint, chosen)) if checkpoint == nv.checkpoint && chosen == nv.chosen => Ok(()),
            _ => Err("NEW-VIEW does not follow from its VIEW-CHANGEs"),
        }
    }

    /// Enter the NEW-VIEW's view: its choices become this view's
    /// pre-prepares (backups PREPARE them, also where they decided already,
    /// so that replicas behind can complete them).
    pub(crate) fn install_new_view(&mut self, nv: Signed<NewView>, out: &mut Actions<V>) {
        let v = nv.body.view;
        // §4.4: views only increase.
        quorate_core::invariant!(
            v > self.k.view || (v == self.k.view && !self.k.active),
            "pbft: installs view {v} in view {}",
            self.k.view
        );
        self.k.persist(Record::NewView(Box::new(nv.clone())), out);
        self.k.view = v;
        self.k.active = true;
        self.k.vc_timer = false;
        if !self.k.replaying {
            out.push(Action::CancelTimer { timer: EngineTimer::ViewChange });
        }
        self.view_changes.retain(|_, vc| vc.body.view > v);
        let (cp, cd) = nv.body.checkpoint;
        if cp > self.k.stable {
            self.vouched = Some((cp, cd));
        }
        let chosen = nv.body.chosen.clone();
        self.new_view = Some(nv);
        let mut top = self.k.last_decided.max(self.base());
        let high = self.k.high_watermark();
        for (seq, digest) in &chosen {
            top = top.max(*seq);
            if *seq > high {
                self.k.heard_beyond = true; // behind the view's checkpoint: catch up first
            } else if *seq > self.k.stable {
                self.accept_pre_prepare(v, *seq, *digest, out);
            }
        }
        self.k.next_seq = top.saturating_add(1);
        // Values only older views' proposals referred to can go (a faulty
        // primary's proposals must not pile up across view changes).
        self.collect_values();
        if !self.k.replaying {
            out.push(Action::ViewChanged { view: v, primary: self.k.primary_of(v) });
        }
        let now = self.k.release_held(v, msg_view);
        for (from, msg) in now {
            // Held PRE-PREPAREs passed the validity check before they were held.
            self.on_message(from, msg, &super::AnyValue, out);
        }
        self.report_decided(out);
    }
}

/// The view of a held normal-case message.
fn msg_view<V>(m: &PbftMsg<V>) -> Option<u64> {
    match m {
        PbftMsg::PrePrepare { view, .. } | PbftMsg::Prepare { view, .. } | PbftMsg::Commit { view, .. } => Some(*view),
        _ => None,
    }
}

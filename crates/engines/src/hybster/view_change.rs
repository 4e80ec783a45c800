//! View change (Linear Hybster §4.2, after Hybster's, with the details the
//! papers leave open decided in `docs/decisions/0010-destiny.md`).
//!
//! A replica leaving its view asks its trusted subsystem for a continuing
//! certificate that moves its ordering counter to (new view, 0) over the
//! hash of its VIEW-CHANGE. The certificate shows where the counter was: the
//! last (view y, seq s) at which the replica signed anything. From then on
//! it cannot sign in any older view. Its VIEW-CHANGE must prove the whole
//! log of view y up to s: the NEW-VIEW of y (which re-proposed everything
//! from y's checkpoint on) and y's PREPAREs after it. A VIEW-CHANGE that
//! does not cover (checkpoint, s] is invalid, so a faulty replica cannot
//! hide a proposal it signed. When the counter stands at (x, 0) because an
//! earlier view change into x installed nothing, the VIEW-CHANGE adds that
//! earlier certificate (`history`), back to a real signing position.
//!
//! Safety: a value committed at (v, s) was signed by f+1 replicas; any f+1
//! VIEW-CHANGEs include one of them, whose counter is at (v, s) or later,
//! so its VIEW-CHANGE shows a proposal at s of view v or later, and every
//! such proposal carries the committed value (a primary signs one proposal
//! per (view, seq), and a NEW-VIEW re-proposes the highest-view proposal
//! of every sequence number). The new primary therefore needs only f+1
//! valid VIEW-CHANGEs, and picks, for every seq after the highest
//! checkpoint, the proposal of the highest view (a null request if none).

use super::digest_encoded;
use super::{
    Action, Actions, CheckpointCert, CommitProof, EngineTimer, HybMsg, NewView, NewViewCore, Record, SignedNewView,
    Value, ViewChange, ViewChangeBody, NULL_DIGEST,
};
use crate::hybster::Engine;
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;
use quorate_threshsign::{counter, destiny, Cert, CertStatement, Share, Statement};
use std::collections::{BTreeMap, BTreeSet};

/// Most earlier certificates a VIEW-CHANGE may carry (view changes in a row
/// that installed nothing; timeouts double with each, so this is hours).
pub const MAX_HISTORY: usize = 64;

/// What a valid VIEW-CHANGE tells the new primary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Knowledge {
    /// The highest checkpoint it proves.
    pub checkpoint: Option<CheckpointCert>,
    /// For each seq above it: the highest-view proposal it proves (view, digest).
    pub proposals: BTreeMap<u64, (u64, Digest)>,
}

impl<V: Value> Engine<V> {
    /// Suspect the primary: move to the next view (ignored while a view
    /// change is under way; its timer moves on from there).
    pub fn start_view_change(&mut self, out: &mut Actions<V>) {
        if self.k.active {
            let target = self.k.view + 1;
            self.move_to_view(target, out);
        }
    }

    fn view_change_hash(&self, body: &ViewChangeBody) -> Digest {
        digest_encoded(b"quorate-hybster/view-change", body, self.k.crypto.as_ref())
    }

    fn new_view_hash(&self, core: &NewViewCore) -> Digest {
        digest_encoded(b"quorate-hybster/new-view", core, self.k.crypto.as_ref())
    }

    pub(crate) fn new_view_statement(&self, core: &NewViewCore) -> Statement {
        Statement {
            instance: self.cfg.ts_instance,
            counter: destiny::VIEW_CHANGE,
            value: core.view,
            msg_hash: self.new_view_hash(core),
        }
    }

    /// Move to `target` at once if it is later than our view, skipping the
    /// views between (f+1 VIEW-CHANGEs for it make the others join).
    pub fn view_change_to(&mut self, target: u64, out: &mut Actions<V>) {
        if target > self.k.view {
            self.move_to_view(target, out);
        }
    }

    /// Leave the current view for `target`.
    pub(crate) fn move_to_view(&mut self, target: u64, out: &mut Actions<V>) {
        if target <= self.k.view && !(self.k.active && target == self.k.view + 1) {
            return;
        }
        let Some(entry) = counter::pack_view_seq(target, 0) else { return };
        let body = self.build_view_change(target);
        let hash = self.view_change_hash(&body);
        let cert = {
            let mut t = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
            t.continuing_certificate(self.cfg.ts_instance, destiny::AGREEMENT, entry, &hash)
        };
        let cert = match cert {
            Ok(c) => c,
            Err(e) => {
                self.k.note(format!("instance {}: no view change to {target}: {e}", self.cfg.instance), out);
                return;
            }
        };
        self.k.view = target;
        self.k.active = false;
        self.k.vc_timer = false;
        if !self.k.replaying {
            out.push(Action::CancelTimer { timer: EngineTimer::ViewChange });
        }
        self.history.insert(0, cert.clone());
        self.history.truncate(MAX_HISTORY + 1);
        let vc = ViewChange { body, cert };
        self.k.persist(Record::ViewChangeSent(Box::new(vc.clone())), out);
        self.view_changes.insert(self.k.id, vc.clone());
        self.k.note(format!("instance {}: view change to {target}", self.cfg.instance), out);
        self.k.broadcast(HybMsg::ViewChange(Box::new(vc)), out);
        self.after_view_change_vote(out);
    }

    /// Our VIEW-CHANGE for `view`: checkpoint, the NEW-VIEW our log belongs
    /// to, every PREPARE we hold above the checkpoint, our earlier certificates.
    fn build_view_change(&self, view: u64) -> ViewChangeBody {
        let top = self.k.stable + self.cfg.window;
        let prepares: Vec<Share> =
            self.slots.range(self.k.stable + 1..=top).filter_map(|(_, s)| s.prepare.clone()).collect();
        let commits: Vec<(u64, CommitProof)> =
            self.slots.range(self.k.stable + 1..=top).filter_map(|(s, slot)| Some((*s, slot.proof.clone()?))).collect();
        let mut history = self.history.clone();
        history.truncate(MAX_HISTORY);
        ViewChangeBody {
            view,
            replica: self.k.id,
            checkpoint: self.stable_cert.clone(),
            new_view: self.log_new_view.clone(),
            prepares,
            commits,
            history,
        }
    }

    /// Whether `vc`'s certificate is its sender's, moves into its view, and
    /// covers its body (cheap: an Ed25519 check).
    fn check_view_change_cert(&self, vc: &ViewChange) -> Result<(), &'static str> {
        let entry = counter::pack_view_seq(vc.body.view, 0).ok_or("VIEW-CHANGE view out of range")?;
        let st = &vc.cert.statement;
        if st.signer != vc.body.replica
            || st.instance != self.cfg.ts_instance
            || st.counter != destiny::AGREEMENT
            || st.new_value != entry
            || st.old_value > st.new_value
            || st.msg_hash != self.view_change_hash(&vc.body)
        {
            return Err("VIEW-CHANGE certificate on another statement");
        }
        self.scheme.verify_certificate(&vc.cert, st).map_err(|_| "bad VIEW-CHANGE certificate")
    }

    /// Whether `nv` is a NEW-VIEW its view's primary signed, well formed.
    fn check_signed_new_view(&self, nv: &SignedNewView) -> Result<(), &'static str> {
        let core = &nv.core;
        if core.view == 0 || nv.share.signer != self.k.primary_of(core.view) {
            return Err("NEW-VIEW not from its view's primary");
        }
        let base = core.base();
        if core.entries.len() as u64 > self.cfg.window
            || core.entries.iter().enumerate().any(|(i, (s, _))| *s != base + 1 + i as u64)
        {
            return Err("NEW-VIEW entries not contiguous after its checkpoint");
        }
        let st = self.new_view_statement(core);
        if nv.share.statement != st {
            return Err("NEW-VIEW share on another statement");
        }
        let known = self.log_new_view.as_ref() == Some(nv) || self.new_view.as_ref().is_some_and(|n| n.signed == *nv);
        if !known {
            self.scheme.verify_share(&nv.share, &st).map_err(|_| "bad NEW-VIEW share")?;
            if let Some(cp) = &core.checkpoint {
                if !self.checkpoint_known_valid(cp) {
                    return Err("NEW-VIEW with a bad checkpoint certificate");
                }
            }
        }
        Ok(())
    }

    fn checkpoint_known_valid(&self, cp: &CheckpointCert) -> bool {
        self.stable_cert.as_ref() == Some(cp) || self.certified.get(&cp.seq) == Some(cp) || self.valid_checkpoint(cp)
    }

    /// Full check of a VIEW-CHANGE (its certificate already checked) and
    /// what it proves. `verified` caches PREPARE shares checked already.
    pub(crate) fn knowledge_of(
        &self,
        vc: &ViewChange,
        verified: &mut BTreeSet<(u64, Digest)>,
    ) -> Result<Knowledge, &'static str> {
        let body = &vc.body;
        if body.history.len() > MAX_HISTORY {
            return Err("VIEW-CHANGE history too long");
        }
        if let Some(cp) = &body.checkpoint {
            if !cp.seq.is_multiple_of(self.cfg.checkpoint_period) || !self.checkpoint_known_valid(cp) {
                return Err("VIEW-CHANGE with a bad checkpoint certificate");
            }
        }
        if let Some(nv) = &body.new_view {
            self.check_signed_new_view(nv)?;
        }
        // Walk the certificates back to where the sender last signed.
        let nv_view = body.new_view.as_ref().map(|nv| nv.core.view);
        let mut at = vc.cert.statement.old_value;
        let mut older = body.history.iter();
        loop {
            let (v, s) = counter::unpack_view_seq(at);
            if s > 0 || v == 0 || nv_view == Some(v) {
                break;
            }
            let c: &Cert = older.next().ok_or("VIEW-CHANGE history does not reach a signing position")?;
            let st: &CertStatement = &c.statement;
            if st.signer != body.replica
                || st.instance != self.cfg.ts_instance
                || st.counter != destiny::AGREEMENT
                || st.new_value != at
                || st.old_value >= st.new_value
            {
                return Err("VIEW-CHANGE history does not chain");
            }
            self.scheme.verify_certificate(c, st).map_err(|_| "bad certificate in VIEW-CHANGE history")?;
            at = st.old_value;
        }
        let (last_view, last_seq) = counter::unpack_view_seq(at);
        if last_view > 0 && nv_view != Some(last_view) {
            return Err("VIEW-CHANGE without the NEW-VIEW of the view it signed in");
        }
        // What it proves.
        let mut k = Knowledge { checkpoint: body.checkpoint.clone(), proposals: BTreeMap::new() };
        if let Some(nv) = &body.new_view {
            if nv.core.base() > k.checkpoint.as_ref().map_or(0, |c| c.seq) {
                k.checkpoint = nv.core.checkpoint.clone();
            }
            for (s, d) in &nv.core.entries {
                k.proposals.insert(*s, (nv.core.view, *d));
            }
        }
        let low = k.checkpoint.as_ref().map_or(0, |c| c.seq);
        let nv_top = body.new_view.as_ref().map(|nv| (nv.core.view, nv.core.top()));
        for p in &body.prepares {
            let st = &p.statement;
            let (v, s) = counter::unpack_view_seq(st.value);
            if st.instance != self.cfg.ts_instance
                || st.counter != destiny::AGREEMENT
                || s == 0
                || p.signer != self.k.primary_of(v)
                || s > low + self.cfg.window
                // A view's fresh PREPAREs come after its NEW-VIEW's entries,
                // and none of a view later than the NEW-VIEW shown (a correct
                // replica installs a view before accepting its PREPAREs):
                // within one view the proposal of a seq is then unique.
                || v > nv_view.unwrap_or(0)
                || nv_top.is_some_and(|(nvv, top)| nvv == v && s <= top)
            {
                return Err("VIEW-CHANGE with a malformed PREPARE");
            }
            if verified.insert((st.value, st.msg_hash)) && self.scheme.verify_share(p, st).is_err() {
                verified.remove(&(st.value, st.msg_hash));
                return Err("VIEW-CHANGE with a bad PREPARE share");
            }
            if s > low && k.proposals.get(&s).is_none_or(|(pv, _)| *pv < v) {
                k.proposals.insert(s, (v, st.msg_hash));
            }
        }
        // A COMMIT certificate proves its value final (every proposal at that
        // seq in its view or later carries it), so it counts as a proposal of
        // its view, and it covers the seq: a slot decided from peers'
        // certificates is one a correct replica skips when signing.
        let mut committed = BTreeSet::new();
        if body.commits.len() as u64 > self.cfg.window {
            return Err("VIEW-CHANGE with too many COMMIT certificates");
        }
        for (s, proof) in &body.commits {
            let digest = proof.cert.statement.msg_hash;
            if *s <= low || *s > low + self.cfg.window {
                return Err("VIEW-CHANGE with a COMMIT certificate outside its window");
            }
            let st = self.order_statement(proof.view, *s, digest).ok_or("VIEW-CHANGE with a malformed COMMIT")?;
            if verified.insert((st.value, digest)) && self.scheme.verify_threshold(&proof.cert, &st).is_err() {
                verified.remove(&(st.value, digest));
                return Err("VIEW-CHANGE with a bad COMMIT certificate");
            }
            committed.insert(*s);
            if k.proposals.get(s).is_none_or(|(pv, _)| *pv < proof.view) {
                k.proposals.insert(*s, (proof.view, digest));
            }
        }
        k.proposals.retain(|s, _| *s > low);
        // It must prove every proposal of its last view up to where it signed.
        for s in low + 1..=last_seq {
            if !committed.contains(&s) && k.proposals.get(&s).is_none_or(|(v, _)| *v != last_view) {
                return Err("VIEW-CHANGE hides a proposal it signed");
            }
        }
        Ok(k)
    }

    pub(crate) fn on_view_change(&mut self, from: ReplicaId, vc: ViewChange, out: &mut Actions<V>) {
        if vc.body.replica != from {
            out.reject(from, "VIEW-CHANGE of another replica");
            return;
        }
        let v = vc.body.view;
        if v < self.k.view || (v == self.k.view && self.k.active) {
            if self.k.active {
                if let Some(nv) = self.new_view.clone() {
                    self.k.send(from, HybMsg::NewView(Box::new(nv)), out);
                }
            }
            return;
        }
        if self.view_changes.get(&from).is_some_and(|old| old.body.view >= v) {
            return;
        }
        if let Err(why) = self.check_view_change_cert(&vc) {
            out.reject(from, why);
            return;
        }
        self.view_changes.insert(from, vc);
        // f+1 replicas ask for later views: at least one correct one does.
        let asked = self.view_changes.iter().map(|(r, vc)| (*r, vc.body.view));
        if let Some(target) = self.k.join_target(asked, self.quorum()) {
            self.move_to_view(target, out);
            return;
        }
        self.after_view_change_vote(out);
    }

    /// At f+1 VIEW-CHANGEs for our target start the timer; as its primary,
    /// try to make the NEW-VIEW.
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

    pub(crate) fn on_view_change_timeout(&mut self, out: &mut Actions<V>) {
        if self.k.active || !self.k.vc_timer {
            return;
        }
        self.k.failed_views = self.k.failed_views.saturating_add(1);
        let target = self.k.view + 1;
        self.move_to_view(target, out);
    }

    /// New primary: from the valid VIEW-CHANGEs at hand, decide and send the
    /// NEW-VIEW (invalid ones are dropped and reported).
    fn try_new_view(&mut self, out: &mut Actions<V>) {
        let target = self.k.view;
        let vcs: Vec<ViewChange> = self.view_changes.values().filter(|vc| vc.body.view == target).cloned().collect();
        let mut verified = BTreeSet::new();
        let mut valid = Vec::new();
        let mut knowledge = Vec::new();
        for vc in vcs {
            match self.knowledge_of(&vc, &mut verified) {
                Ok(k) => {
                    knowledge.push(k);
                    valid.push(vc);
                }
                Err(why) => {
                    out.reject(vc.body.replica, why);
                    self.view_changes.remove(&vc.body.replica);
                }
            }
        }
        if valid.len() < self.quorum() {
            return;
        }
        let core = self.decide_new_view(target, &knowledge);
        let st = self.new_view_statement(&core);
        let Some(share) = self.sign(&st) else {
            self.k.note(
                format!("instance {}: trusted subsystem refused the NEW-VIEW of {target}", self.cfg.instance),
                out,
            );
            return;
        };
        let nv = NewView { signed: SignedNewView { core, share }, view_changes: valid };
        self.install_new_view(nv.clone(), out);
        self.k.broadcast(HybMsg::NewView(Box::new(nv)), out);
    }

    /// Move our ordering counter to (`view`, 0) if it is below, as a
    /// VIEW-CHANGE would have: we take no further part in older views, and
    /// our next VIEW-CHANGE starts from this view's NEW-VIEW (a replica
    /// that installs a NEW-VIEW without having sent a VIEW-CHANGE).
    fn enter_counter(&mut self, view: u64, hash: &Digest, out: &mut Actions<V>) {
        let Some(entry) = counter::pack_view_seq(view, 0) else { return };
        let mut t = self.trusted.lock().unwrap_or_else(|e| e.into_inner());
        let (inst, ctr) = (self.cfg.ts_instance, destiny::AGREEMENT);
        if t.current_value(inst, ctr).is_ok_and(|c| c < entry) {
            if let Err(e) = t.continuing_certificate(inst, ctr, entry, hash) {
                drop(t);
                self.k.note(format!("instance {}: counter not moved to view {view}: {e}", self.cfg.instance), out);
            }
        }
    }

    /// The NEW-VIEW's decision over valid VIEW-CHANGEs' knowledge.
    pub(crate) fn decide_new_view(&self, view: u64, knowledge: &[Knowledge]) -> NewViewCore {
        let checkpoint = knowledge.iter().filter_map(|k| k.checkpoint.clone()).max_by_key(|c| (c.seq, c.digest));
        let base = checkpoint.as_ref().map_or(0, |c| c.seq);
        let mut best: BTreeMap<u64, (u64, Digest)> = BTreeMap::new();
        for k in knowledge {
            for (&s, &(v, d)) in k.proposals.range(base + 1..=base + self.cfg.window) {
                if best.get(&s).is_none_or(|&(bv, bd)| (v, d) > (bv, bd)) {
                    best.insert(s, (v, d));
                }
            }
        }
        let top = best.keys().next_back().copied().unwrap_or(base);
        let entries = (base + 1..=top).map(|s| (s, best.get(&s).map_or(NULL_DIGEST, |(_, d)| *d))).collect();
        NewViewCore { view, checkpoint, entries }
    }

    pub(crate) fn on_new_view(&mut self, from: ReplicaId, nv: NewView, out: &mut Actions<V>) {
        let v = nv.signed.core.view;
        if v < self.k.view || (v == self.k.view && self.k.active) || v == 0 {
            return;
        }
        if let Err(why) = self.check_new_view(&nv) {
            out.reject(from, why);
            return;
        }
        self.install_new_view(nv, out);
    }

    /// Whether a NEW-VIEW is signed by its primary and follows from f+1
    /// valid VIEW-CHANGEs for its view.
    fn check_new_view(&self, nv: &NewView) -> Result<(), &'static str> {
        let v = nv.signed.core.view;
        self.check_signed_new_view(&nv.signed)?;
        let mut senders = BTreeSet::new();
        let mut verified = BTreeSet::new();
        let mut knowledge = Vec::new();
        for vc in &nv.view_changes {
            if vc.body.view != v {
                return Err("NEW-VIEW with a VIEW-CHANGE for another view");
            }
            if !senders.insert(vc.body.replica) {
                return Err("NEW-VIEW with two VIEW-CHANGEs of one replica");
            }
            self.check_view_change_cert(vc)?;
            knowledge.push(self.knowledge_of(vc, &mut verified)?);
        }
        if knowledge.len() < self.quorum() {
            return Err("NEW-VIEW with fewer than f+1 VIEW-CHANGEs");
        }
        if self.decide_new_view(v, &knowledge) != nv.signed.core {
            return Err("NEW-VIEW does not follow from its VIEW-CHANGEs");
        }
        Ok(())
    }

    /// Enter the NEW-VIEW's view: its entries are this view's proposals,
    /// signed in order from the checkpoint on (also where decided already,
    /// so that replicas behind can complete them).
    pub(crate) fn install_new_view(&mut self, nv: NewView, out: &mut Actions<V>) {
        let core = nv.signed.core.clone();
        let v = core.view;
        // §4.2: after its VIEW-CHANGE a replica takes no more part in the old
        // view: views only increase.
        quorate_core::invariant!(
            v > self.k.view || (v == self.k.view && !self.k.active),
            "hybster: installs view {v} in view {}",
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
        self.enter_counter(v, &nv.signed.share.statement.msg_hash, out);
        self.log_new_view = Some(nv.signed.clone());
        self.new_view = Some(nv);
        self.history.clear();
        if let Some(cp) = core.checkpoint.clone() {
            self.accept_checkpoint_cert(cp, out);
        }
        let high = self.k.high_watermark();
        for (seq, digest) in &core.entries {
            if *seq > high {
                self.k.heard_beyond = true;
            } else if *seq > self.k.stable {
                let slot = self.slots.entry(*seq).or_default();
                slot.enter_view(v);
                slot.proposal = Some(*digest);
                if !self.k.known(digest) && !self.k.replaying {
                    self.want(*seq, *digest, out);
                }
            }
        }
        self.k.next_seq = core.top().max(self.k.last_decided).max(self.k.stable) + 1;
        self.next_sign = self.k.stable.max(core.base()) + 1;
        self.collect_values();
        if !self.k.replaying {
            out.push(Action::ViewChanged { view: v, primary: self.k.primary_of(v) });
        }
        let now = self.k.release_held(v, msg_view);
        if !self.k.replaying {
            self.sign_ready(out);
        }
        for (from, msg) in now {
            // Held PREPAREs passed the validity check before they were held.
            self.on_message(from, msg, &super::AnyValue, out);
        }
        self.report_decided(out);
    }
}

/// The view of a held normal-case message.
fn msg_view<V>(m: &HybMsg<V>) -> Option<u64> {
    match m {
        HybMsg::Prepare { view, .. } | HybMsg::CommitShare { view, .. } => Some(*view),
        _ => None,
    }
}

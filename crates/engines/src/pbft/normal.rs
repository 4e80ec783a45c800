//! The normal case: the primary's PRE-PREPARE, PREPARE and COMMIT with
//! 2f+1 quorums, decisions, and reporting them in sequence order.

use super::messages::bytes;
use super::{Actions, Auth, Engine, PbftMsg, ProposeError, Record, Slot, Validity, Value, VoteKind, NULL_DIGEST};
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;

/// What the common checks of a normal-case message decided.
enum Admit {
    /// Handle it now.
    Yes,
    /// Dropped (stale, outside the window, or held for a later view).
    No,
}

impl<V: Value> Engine<V> {
    /// Whether the primary may propose now (installed view, room in the
    /// window and under the in-flight limit).
    pub fn can_propose(&self) -> bool {
        self.k.room_to_propose()
    }

    /// Primary: order `value` at the next sequence number.
    pub fn propose(&mut self, value: V, out: &mut Actions<V>) -> Result<u64, ProposeError> {
        let digest = self.k.admit_proposal(&value, self.can_propose())?;
        let (view, seq) = (self.k.view, self.k.next_seq);
        // §4.2: the primary assigns a sequence number to one value per view.
        self.own_votes.cast((seq, view, VoteKind::PrePrepare), digest, "pbft: PRE-PREPARE");
        self.k.next_seq += 1;
        self.k.values.insert(digest, value.clone());
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        slot.pre_prepare = Some(digest);
        slot.note_pre_prepared(digest, view);
        let stored = self.k.durable_value(digest);
        self.k.persist(Record::PrePrepared { view, seq, digest, value: stored }, out);
        let auth = self.auth_all(&bytes::pre_prepare(self.cfg.instance, view, seq, &digest));
        self.k.broadcast(PbftMsg::PrePrepare { view, seq, value, auth }, out);
        self.check_prepared(seq, out);
        Ok(seq)
    }

    /// A faulty primary's move, for adversary strategies: leave the next
    /// sequence number unused.
    pub fn skip_sequence_number(&mut self) {
        if self.can_propose() {
            self.k.next_seq += 1;
        }
    }

    /// Checks shared by PRE-PREPARE, PREPARE and COMMIT: installed view, the
    /// window. Messages of a later view are held until it is installed.
    fn admit(&mut self, from: ReplicaId, view: u64, seq: u64, msg: impl FnOnce() -> PbftMsg<V>) -> Admit {
        if view > self.k.view || (view == self.k.view && !self.k.active) {
            let m = msg();
            self.k.hold(from, m);
            return Admit::No;
        }
        if view < self.k.view {
            return Admit::No; // stale: the view changed meanwhile
        }
        if seq > self.k.high_watermark() {
            self.k.heard_beyond = true; // we are behind (or the sender lies): the tick asks
            return Admit::No;
        }
        if seq <= self.base() {
            return Admit::No; // decided already
        }
        Admit::Yes
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_pre_prepare(
        &mut self,
        from: ReplicaId,
        view: u64,
        seq: u64,
        value: V,
        auth: Auth,
        validity: &dyn Validity<V>,
        out: &mut Actions<V>,
    ) {
        if from != self.k.primary_of(view) {
            out.reject(from, "PRE-PREPARE from a non-primary");
            return;
        }
        if seq == 0 {
            out.reject(from, "PRE-PREPARE at sequence number 0");
            return;
        }
        if value.size() > self.cfg.max_value_bytes {
            out.reject(from, "oversized value");
            return;
        }
        let digest = value.digest(self.k.crypto.as_ref());
        if !self.check_auth(from, &bytes::pre_prepare(self.cfg.instance, view, seq, &digest), &auth) {
            out.reject(from, "bad MAC");
            return;
        }
        if view > self.k.view || (view == self.k.view && !self.k.active) {
            // Checked now, held for the view's installation (replayed unchecked).
            match validity.check(seq, &value) {
                Ok(()) => self.k.hold(from, PbftMsg::PrePrepare { view, seq, value, auth }),
                Err(why) => out.reject(from, why),
            }
            return;
        }
        if let Admit::No = self.admit(from, view, seq, || PbftMsg::PrePrepare { view, seq, value: value.clone(), auth })
        {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        match slot.pre_prepare {
            Some(d) if d == digest => {
                // The primary repeats itself when stuck: repeat our PREPARE too.
                if let Some(p) = slot.sent_prepare {
                    let b = bytes::prepare(self.cfg.instance, view, seq, &p);
                    self.broadcast_macd(&b, |auth| PbftMsg::Prepare { view, seq, digest: p, auth }, out);
                }
                return;
            }
            Some(_) => {
                out.reject(from, "conflicting PRE-PREPARE");
                return;
            }
            None => {}
        }
        if slot.decided.is_some_and(|d| d != digest) {
            out.reject(from, "PRE-PREPARE contradicts a decision");
            return;
        }
        if let Err(why) = validity.check(seq, &value) {
            out.reject(from, why);
            return;
        }
        self.k.values.insert(digest, value);
        self.accept_pre_prepare(view, seq, digest, out);
    }

    /// Take `digest` as the value of (`view`, `seq`) (from a PRE-PREPARE or a
    /// NEW-VIEW): persist, PREPARE it (backups), count the votes.
    pub(crate) fn accept_pre_prepare(&mut self, view: u64, seq: u64, digest: Digest, out: &mut Actions<V>) {
        let backup = self.k.primary_of(view) != self.k.id;
        if backup {
            // §4.2: a backup accepts (and PREPAREs) one PRE-PREPARE per view and sequence number.
            self.own_votes.cast((seq, view, VoteKind::Prepare), digest, "pbft: PREPARE");
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        slot.pre_prepare = Some(digest);
        slot.note_pre_prepared(digest, view);
        if backup {
            slot.sent_prepare = Some(digest);
            slot.prepares.insert(&self.k.m, self.k.id, digest);
        }
        if !self.k.known(&digest) {
            self.want(seq, digest, out);
        }
        let stored = self.k.durable_value(digest);
        self.k.persist(Record::PrePrepared { view, seq, digest, value: stored }, out);
        if backup {
            let b = bytes::prepare(self.cfg.instance, view, seq, &digest);
            self.broadcast_macd(&b, |auth| PbftMsg::Prepare { view, seq, digest, auth }, out);
        }
        self.check_prepared(seq, out);
        self.check_committed(seq, out);
    }

    pub(crate) fn on_prepare(
        &mut self,
        from: ReplicaId,
        view: u64,
        seq: u64,
        digest: Digest,
        auth: Auth,
        out: &mut Actions<V>,
    ) {
        if from == self.k.primary_of(view) {
            out.reject(from, "PREPARE from the primary");
            return;
        }
        if !self.check_auth(from, &bytes::prepare(self.cfg.instance, view, seq, &digest), &auth) {
            out.reject(from, "bad MAC");
            return;
        }
        if let Admit::No = self.admit(from, view, seq, || PbftMsg::Prepare { view, seq, digest, auth }) {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        if slot.decided.is_some() {
            return;
        }
        if slot.prepares.record(&self.k.m, from, digest, "conflicting PREPARE", out) {
            self.check_prepared(seq, out);
        }
    }

    pub(crate) fn on_commit(
        &mut self,
        from: ReplicaId,
        view: u64,
        seq: u64,
        digest: Digest,
        auth: Auth,
        out: &mut Actions<V>,
    ) {
        if !self.check_auth(from, &bytes::commit(self.cfg.instance, view, seq, &digest), &auth) {
            out.reject(from, "bad MAC");
            return;
        }
        if let Admit::No = self.admit(from, view, seq, || PbftMsg::Commit { view, seq, digest, auth }) {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        if slot.decided.is_some() {
            return;
        }
        if slot.commits.record(&self.k.m, from, digest, "conflicting COMMIT", out) {
            self.check_committed(seq, out);
        }
    }

    /// Prepared (the PRE-PREPARE and 2f matching PREPAREs of backups): send COMMIT.
    pub(crate) fn check_prepared(&mut self, seq: u64, out: &mut Actions<V>) {
        let need = self.quorum() - 1;
        let view = self.k.view;
        let primary = self.k.primary_of(view);
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        if slot.votes_view != view || slot.sent_commit.is_some() {
            return;
        }
        let Some(digest) = slot.pre_prepare else { return };
        if slot.prepares.count(&digest) < need {
            return;
        }
        // §4.2, prepared(m, v, n, i): the pre-prepare plus 2f PREPAREs from
        // distinct backups; the primary's PRE-PREPARE stands for its PREPARE.
        quorate_core::invariant!(
            slot.prepares.get(primary).is_none(),
            "pbft: prepared certificate of seq {seq} counts a PREPARE of the primary"
        );
        self.own_votes.cast((seq, view, VoteKind::Commit), digest, "pbft: COMMIT");
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        slot.note_prepared(digest, view);
        slot.sent_commit = Some(digest);
        slot.commits.insert(&self.k.m, self.k.id, digest);
        self.k.persist(Record::Prepared { view, seq, digest }, out);
        let b = bytes::commit(self.cfg.instance, view, seq, &digest);
        self.broadcast_macd(&b, |auth| PbftMsg::Commit { view, seq, digest, auth }, out);
        self.check_committed(seq, out);
    }

    /// 2f+1 matching COMMITs: decided (once the value is known). At least
    /// f+1 correct replicas prepared it, so every later view keeps it; our
    /// own prepared certificate is not needed for that.
    pub(crate) fn check_committed(&mut self, seq: u64, out: &mut Actions<V>) {
        let quorum = self.quorum();
        let Some(slot) = self.slots.get(&seq) else { return };
        if slot.decided.is_some() || slot.votes_view != self.k.view {
            return;
        }
        let Some(digest) = slot.commits.reaching(quorum) else { return };
        if self.k.known(&digest) {
            self.decide(seq, digest, out);
        } else {
            self.want(seq, digest, out);
        }
    }

    /// Record the decision of `seq` (its value known) and report what is in order.
    pub(crate) fn decide(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if seq <= self.k.last_decided {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        if slot.decided.is_some() {
            return;
        }
        slot.decided = Some(digest);
        slot.reports.clear();
        slot.report_values.clear();
        // Votes of a decided seq count for nothing any more (late ones are ignored).
        slot.prepares.clear();
        slot.commits.clear();
        self.k.wanted.remove(&seq);
        let stored = self.k.durable_value(digest);
        self.k.persist(Record::Decided { seq, digest, value: stored }, out);
        if self.k.active {
            // Something was decided in this view: the view change (if any) worked.
            self.k.failed_views = 0;
        }
        self.report_decided(out);
    }

    /// Report decided sequence numbers in order, as far as there is no gap.
    pub(crate) fn report_decided(&mut self, out: &mut Actions<V>) {
        // §4.3: requests execute in sequence-number order, each once.
        let slots = &self.slots;
        self.k.report_decided(|seq| slots.get(&seq).and_then(|s| s.decided), "pbft: decided seq", out);
    }

    /// Ask the others for the value of `digest` at `seq` (once; the tick repeats).
    pub(crate) fn want(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if self.k.wanted.insert(seq, digest) != Some(digest) {
            self.k.broadcast(PbftMsg::Fetch { seq, digest }, out);
        }
    }

    /// FETCH: send the value if we have it.
    pub(crate) fn on_fetch(&mut self, from: ReplicaId, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if let Some(value) = self.k.values.get(&digest) {
            self.k.send(from, PbftMsg::Value { seq, value: value.clone() }, out);
        }
    }

    /// VALUE: useful if it is a value we want.
    pub(crate) fn on_value(&mut self, from: ReplicaId, seq: u64, value: V, out: &mut Actions<V>) {
        let Some(&wanted) = self.k.wanted.get(&seq) else { return };
        if value.size() > self.cfg.max_value_bytes {
            out.reject(from, "oversized value");
            return;
        }
        let digest = value.digest(self.k.crypto.as_ref());
        if digest != wanted {
            out.reject(from, "VALUE does not match its digest");
            return;
        }
        self.k.values.insert(digest, value);
        self.k.wanted.remove(&seq);
        // Other sequence numbers may wait for the same value.
        let waiting: Vec<u64> = self.k.wanted.iter().filter(|(_, d)| **d == digest).map(|(s, _)| *s).collect();
        for s in &waiting {
            self.k.wanted.remove(s);
        }
        for s in std::iter::once(seq).chain(waiting) {
            self.check_committed(s, out);
            self.check_reports(s, out);
        }
        self.report_decided(out);
    }

    /// Repeat our part of every undecided sequence number of this view (the
    /// primary's PRE-PREPAREs too if `values`): receivers ignore what they have.
    pub(crate) fn retransmit_votes(&mut self, values: bool, out: &mut Actions<V>) {
        if !self.k.active {
            return;
        }
        let (view, inst) = (self.k.view, self.cfg.instance);
        let primary = self.k.is_primary();
        let undecided: Vec<(u64, Slot<V>)> = self
            .slots
            .range(self.k.last_decided + 1..)
            .filter(|(_, s)| s.votes_view == view && s.pre_prepare.is_some())
            .take(self.cfg.window as usize)
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        for (seq, s) in undecided {
            let Some(digest) = s.pre_prepare else { continue };
            if values && primary && digest != NULL_DIGEST && self.new_view_entry(seq).is_none() {
                if let Some(value) = self.k.values.get(&digest).cloned() {
                    let auth = self.auth_all(&bytes::pre_prepare(inst, view, seq, &digest));
                    self.k.broadcast(PbftMsg::PrePrepare { view, seq, value, auth }, out);
                }
            }
            if let Some(d) = s.sent_prepare {
                let b = bytes::prepare(inst, view, seq, &d);
                self.broadcast_macd(&b, |auth| PbftMsg::Prepare { view, seq, digest: d, auth }, out);
            }
            if let Some(d) = s.sent_commit {
                let b = bytes::commit(inst, view, seq, &d);
                self.broadcast_macd(&b, |auth| PbftMsg::Commit { view, seq, digest: d, auth }, out);
            }
        }
    }

    /// The NEW-VIEW's choice for `seq` in the installed view, if it made one.
    pub(crate) fn new_view_entry(&self, seq: u64) -> Option<Digest> {
        let nv = self.new_view.as_ref().filter(|nv| nv.body.view == self.k.view)?;
        nv.body.chosen.iter().find(|(s, _)| *s == seq).map(|(_, d)| *d)
    }
}

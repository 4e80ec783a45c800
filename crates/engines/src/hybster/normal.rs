//! The normal case: the primary's PREPARE (with its share), backups'
//! COMMIT-SHAREs to the collector, the collector's COMMIT (f+1 shares
//! combined), decisions in sequence order.
//!
//! Every replica signs the sequence numbers of a view in order: its counter
//! is at (view, seq) after signing seq, so it could never sign a lower one.
//! A PREPARE that arrives early waits in its slot until the ones before it
//! are signed.

use super::{Actions, CommitProof, Engine, HybMsg, ProposeError, Record, Slot, Validity, Value, VoteKind};
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;
use quorate_threshsign::{Share, ThresholdSig};

/// What the common checks of a normal-case message decided.
enum Admit {
    Yes,
    No,
}

impl<V: Value> Engine<V> {
    /// Whether the primary may propose now: installed view, every NEW-VIEW
    /// entry signed, room in the window and under the in-flight limit.
    pub fn can_propose(&self) -> bool {
        self.k.room_to_propose() && self.next_sign == self.k.next_seq
    }

    /// Primary: order `value` at the next sequence number.
    pub fn propose(&mut self, value: V, out: &mut Actions<V>) -> Result<u64, ProposeError> {
        let digest = self.k.admit_proposal(&value, self.can_propose())?;
        let (view, seq) = (self.k.view, self.k.next_seq);
        let Some(st) = self.order_statement(view, seq, digest) else { return Err(ProposeError::Full) };
        let Some(share) = self.sign(&st) else { return Err(ProposeError::Full) };
        // §4.2 step 1, S4.2 Uniqueness: one PREPARE per (view, seq) (noted once
        // signed: a refused attempt votes nothing).
        self.own_votes.cast((seq, view, VoteKind::Prepare), digest, "hybster: PREPARE");
        self.k.next_seq += 1;
        self.next_sign = self.k.next_seq;
        self.k.values.insert(digest, value.clone());
        let stored = self.k.durable_value(digest);
        self.k.persist(
            Record::Signed { view, seq, digest, prepare: Some(share.clone()), own: share.clone(), value: stored },
            out,
        );
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        slot.proposal = Some(digest);
        slot.signed = Some(share.clone());
        slot.prepare = Some(share.clone());
        slot.shares.insert(self.k.id, share.clone());
        self.k.broadcast(HybMsg::Prepare { view, seq, value, share }, out);
        self.check_commit(seq, out);
        Ok(seq)
    }

    /// Checks shared by PREPARE and COMMIT-SHARE: installed view, window.
    /// Messages of a later view are held until it is installed.
    fn admit(&mut self, from: ReplicaId, view: u64, seq: u64, msg: impl FnOnce() -> HybMsg<V>) -> Admit {
        if view > self.k.view || (view == self.k.view && !self.k.active) {
            let m = msg();
            self.k.hold(from, m);
            return Admit::No;
        }
        if view < self.k.view {
            return Admit::No;
        }
        if seq > self.k.high_watermark() {
            self.k.heard_beyond = true;
            return Admit::No;
        }
        if seq <= self.k.stable {
            return Admit::No;
        }
        Admit::Yes
    }

    /// The top of the installed view's NEW-VIEW entries: fresh proposals of
    /// this view come after it.
    pub(crate) fn new_view_top(&self) -> u64 {
        self.new_view.as_ref().filter(|nv| nv.signed.core.view == self.k.view).map_or(0, |nv| nv.signed.core.top())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_prepare(
        &mut self,
        from: ReplicaId,
        view: u64,
        seq: u64,
        value: V,
        share: Share,
        validity: &dyn Validity<V>,
        out: &mut Actions<V>,
    ) {
        if from != self.k.primary_of(view) || share.signer != from {
            out.reject(from, "PREPARE from a non-primary");
            return;
        }
        if seq == 0 || value.size() > self.cfg.max_value_bytes {
            out.reject(from, "PREPARE at sequence number 0 or oversized");
            return;
        }
        let digest = value.digest(self.k.crypto.as_ref());
        let Some(st) = self.order_statement(view, seq, digest).filter(|st| *st == share.statement) else {
            out.reject(from, "PREPARE share on another statement");
            self.primary_proven_faulty(view, out);
            return;
        };
        if view > self.k.view || (view == self.k.view && !self.k.active) {
            // Checked now, held for the view's installation (replayed unchecked).
            match validity.check(seq, &value) {
                Ok(()) => self.k.hold(from, HybMsg::Prepare { view, seq, value, share }),
                Err(why) => out.reject(from, why),
            }
            return;
        }
        if let Admit::No =
            self.admit(from, view, seq, || HybMsg::Prepare { view, seq, value: value.clone(), share: share.clone() })
        {
            return;
        }
        if seq <= self.new_view_top() {
            out.reject(from, "PREPARE inside the NEW-VIEW's entries");
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        match slot.proposal {
            Some(d) if d == digest => {
                // The primary repeats itself when stuck: repeat our share.
                if let Some(own) = slot.signed.clone() {
                    self.k.send(from, HybMsg::CommitShare { view, seq, digest, share: own }, out);
                }
                return;
            }
            Some(_) => {
                out.reject(from, "conflicting PREPARE");
                return;
            }
            None => {}
        }
        if slot.decided.is_some_and(|d| d != digest) {
            out.reject(from, "PREPARE contradicts a decision");
            return;
        }
        if let Err(why) = validity.check(seq, &value) {
            out.reject(from, why);
            return;
        }
        if self.scheme.verify_share(&share, &st).is_err() {
            out.reject(from, "bad PREPARE share");
            self.primary_proven_faulty(view, out);
            return;
        }
        self.k.values.insert(digest, value);
        let slot = self.slots.entry(seq).or_default();
        slot.proposal = Some(digest);
        slot.prepare = Some(share.clone());
        slot.shares.insert(from, share);
        self.sign_ready(out);
        self.check_commit(seq, out);
    }

    /// The primary of our view sent a PREPARE whose share is not its
    /// trusted subsystem's on that proposal: a correct primary never does
    /// (the channel authenticates the sender), so this proves it faulty
    /// (§4.2's "proof that the leader is faulty"): move on at once.
    fn primary_proven_faulty(&mut self, view: u64, out: &mut Actions<V>) {
        if self.k.active && view == self.k.view {
            self.k
                .note(format!("instance {}: the primary of view {view} sent a forged PREPARE", self.cfg.instance), out);
            self.start_view_change(out);
        }
    }

    /// Sign the proposals of this view that are next in order, and send
    /// the shares to the collector.
    pub(crate) fn sign_ready(&mut self, out: &mut Actions<V>) {
        if !self.k.active || self.k.replaying {
            return;
        }
        let view = self.k.view;
        let collector = self.k.primary_of(view);
        // Decided slots need no share of ours (their certificates travel).
        self.next_sign = self.next_sign.max(self.k.stable + 1).max(self.k.last_decided + 1);
        loop {
            let seq = self.next_sign;
            let Some(slot) = self.slots.get(&seq) else { break };
            if slot.votes_view != view {
                break;
            }
            if slot.signed.is_some() {
                self.next_sign += 1;
                continue;
            }
            let Some(digest) = slot.proposal else { break };
            let Some(st) = self.order_statement(view, seq, digest) else { break };
            let prepare = slot.prepare.clone().filter(|p| p.statement == st);
            let Some(own) = self.sign(&st) else {
                self.k.note(
                    format!("instance {}: trusted subsystem refused to sign {seq} in view {view}", self.cfg.instance),
                    out,
                );
                break;
            };
            // §4.2 steps 1–2, S4.2 Uniqueness: one share per (view, seq), the
            // primary's on a NEW-VIEW entry, a backup's COMMIT to the collector.
            let (kind, what) = self.share_kind(view);
            self.own_votes.cast((seq, view, kind), digest, what);
            let stored = self.k.durable_value(digest);
            self.k.persist(Record::Signed { view, seq, digest, prepare, own: own.clone(), value: stored }, out);
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.signed = Some(own.clone());
                slot.shares.insert(self.k.id, own.clone());
            }
            if collector != self.k.id {
                self.k.send(collector, HybMsg::CommitShare { view, seq, digest, share: own }, out);
            }
            self.next_sign = seq + 1;
            self.check_commit(seq, out);
        }
    }

    pub(crate) fn on_commit_share(
        &mut self,
        from: ReplicaId,
        view: u64,
        seq: u64,
        digest: Digest,
        share: Share,
        out: &mut Actions<V>,
    ) {
        if share.signer != from || self.order_statement(view, seq, digest) != Some(share.statement) {
            out.reject(from, "COMMIT-SHARE on another statement");
            return;
        }
        if seq <= self.k.last_decided {
            return; // a late share (a replica that missed the COMMIT learns it from STATUS)
        }
        if let Admit::No =
            self.admit(from, view, seq, || HybMsg::CommitShare { view, seq, digest, share: share.clone() })
        {
            return;
        }
        let slot = self.slots.entry(seq).or_default();
        slot.enter_view(view);
        if slot.shares.get(&from).is_some_and(|s| s.statement.msg_hash != digest) {
            out.reject(from, "conflicting COMMIT-SHARE");
            return;
        }
        slot.shares.insert(from, share);
        self.check_commit(seq, out);
    }

    /// f+1 shares on one digest in this view: combine them (a forged share
    /// is set aside and its signer's entry dropped) and send the COMMIT.
    pub(crate) fn check_commit(&mut self, seq: u64, out: &mut Actions<V>) {
        let (view, need) = (self.k.view, self.quorum());
        if !self.may_collect() {
            return;
        }
        let Some(slot) = self.slots.get(&seq) else { return };
        if slot.votes_view != view || slot.proof.is_some() || seq <= self.k.last_decided {
            return;
        }
        if slot.shares.len() < need {
            return;
        }
        let mut by_digest: std::collections::BTreeMap<Digest, Vec<Share>> = std::collections::BTreeMap::new();
        for s in slot.shares.values() {
            by_digest.entry(s.statement.msg_hash).or_default().push(s.clone());
        }
        let Some((digest, shares)) = by_digest.into_iter().find(|(_, v)| v.len() >= need) else { return };
        let Some(st) = self.order_statement(view, seq, digest) else { return };
        match self.scheme.combine_reporting(&st, &shares) {
            Ok((cert, bad)) => {
                // §4.2 step 3: the collector sends one COMMIT per (view, seq).
                self.own_votes.cast((seq, view, VoteKind::Certificate), digest, "hybster: COMMIT certificate");
                self.drop_shares(seq, &bad);
                let proof = CommitProof { view, cert: cert.clone() };
                self.k.broadcast(HybMsg::Commit { view, seq, digest, cert }, out);
                self.committed(seq, proof, out);
            }
            Err(e) => {
                let bad = super::set_aside(&e);
                self.k.note(format!("instance {}: shares for {seq} do not combine ({e})", self.cfg.instance), out);
                self.drop_shares(seq, &bad);
            }
        }
    }

    /// Whether this replica combines shares now: the collector always,
    /// others only once the collector has been slow for two ticks (with
    /// f = 1 a backup holds f+1 shares at once, and combining them all
    /// over would undo the collector's linearity).
    pub(crate) fn may_collect(&self) -> bool {
        self.k.primary() == self.k.id || self.k.stuck_ticks >= 2
    }

    fn drop_shares(&mut self, seq: u64, bad: &[ReplicaId]) {
        if let Some(slot) = self.slots.get_mut(&seq) {
            for r in bad {
                slot.shares.remove(r);
            }
        }
    }

    pub(crate) fn on_commit(
        &mut self,
        from: ReplicaId,
        view: u64,
        seq: u64,
        digest: Digest,
        cert: ThresholdSig,
        out: &mut Actions<V>,
    ) {
        if seq <= self.k.last_decided || seq <= self.k.stable {
            return;
        }
        if seq > self.k.high_watermark() {
            self.k.heard_beyond = true;
            return;
        }
        if self.slots.get(&seq).is_some_and(|s| s.proof.is_some()) {
            return;
        }
        let Some(st) = self.order_statement(view, seq, digest) else {
            out.reject(from, "COMMIT out of the counter's range");
            return;
        };
        if self.scheme.verify_threshold(&cert, &st).is_err() {
            out.reject(from, "bad COMMIT certificate");
            return;
        }
        self.committed(seq, CommitProof { view, cert }, out);
    }

    /// A valid COMMIT certificate for `seq` (of any view: f+1 signed it, so
    /// every later view keeps its value): decided once the value is known.
    pub(crate) fn committed(&mut self, seq: u64, proof: CommitProof, out: &mut Actions<V>) {
        if seq <= self.k.last_decided {
            return;
        }
        let digest = proof.cert.statement.msg_hash;
        let slot = self.slots.entry(seq).or_default();
        if slot.proof.is_some() {
            return;
        }
        slot.proof = Some(proof);
        // Combined or not, the shares are of no more use: the certificate is.
        slot.shares.clear();
        if self.k.known(&digest) {
            self.decide(seq, out);
        } else {
            self.want(seq, digest, out);
        }
    }

    /// The proof of a decided `seq`, if still held.
    pub(crate) fn proof_of(&self, seq: u64) -> Option<CommitProof> {
        match self.slots.get(&seq).and_then(|s| s.proof.clone()) {
            Some(p) => Some(p),
            None => self.retained.get(&seq).map(|(_, p)| p.clone()),
        }
    }

    /// Record the decision of `seq` (proof and value at hand) and report
    /// what is in order.
    pub(crate) fn decide(&mut self, seq: u64, out: &mut Actions<V>) {
        let Some(slot) = self.slots.get(&seq) else { return };
        if slot.decided.is_some() || seq <= self.k.last_decided {
            return;
        }
        let Some(proof) = slot.proof.clone() else { return };
        let digest = proof.cert.statement.msg_hash;
        if !self.k.known(&digest) {
            return;
        }
        if let Some(slot) = self.slots.get_mut(&seq) {
            slot.decided = Some(digest);
        }
        self.k.wanted.remove(&seq);
        let stored = self.k.durable_value(digest);
        self.k.persist(Record::Decided { seq, proof, value: stored }, out);
        if self.k.active {
            self.k.failed_views = 0;
        }
        self.report_decided(out);
    }

    /// Report decided sequence numbers in order, as far as there is no gap.
    pub(crate) fn report_decided(&mut self, out: &mut Actions<V>) {
        // Decisions are executed in sequence order, each once (SMR safety).
        let slots = &self.slots;
        self.k.report_decided(|seq| slots.get(&seq).and_then(|s| s.decided), "hybster: decided seq", out);
        self.sign_ready(out);
    }

    /// Which of our votes a share of ours in `view` is, and its name.
    pub(crate) fn share_kind(&self, view: u64) -> (VoteKind, &'static str) {
        if self.k.primary_of(view) == self.k.id {
            (VoteKind::Prepare, "hybster: PREPARE")
        } else {
            (VoteKind::Commit, "hybster: COMMIT")
        }
    }

    /// Ask the others for the value of `digest` at `seq` (once; the tick repeats).
    pub(crate) fn want(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if self.k.wanted.insert(seq, digest) != Some(digest) {
            self.k.broadcast(HybMsg::Fetch { seq, digest }, out);
        }
    }

    pub(crate) fn on_fetch(&mut self, from: ReplicaId, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if let Some(value) = self.k.values.get(&digest) {
            self.k.send(from, HybMsg::Value { seq, value: value.clone() }, out);
        }
    }

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
        let waiting: Vec<u64> = self.k.wanted.iter().filter(|(_, d)| **d == digest).map(|(s, _)| *s).collect();
        for s in &waiting {
            self.k.wanted.remove(s);
        }
        for s in waiting {
            self.decide(s, out);
        }
        self.report_decided(out);
    }

    /// Repeat our part of every undecided sequence number of this view.
    /// After two quiet ticks the shares go to everyone, not only to the
    /// collector: any replica holding f+1 combines them (a slow or faulty
    /// collector then delays, but does not block, the view).
    pub(crate) fn retransmit_votes(&mut self, out: &mut Actions<V>) {
        if !self.k.active {
            return;
        }
        let view = self.k.view;
        let collector = self.k.primary_of(view);
        let to_all = self.k.stuck_ticks >= 2;
        let undecided: Vec<(u64, Box<Slot>)> = self
            .slots
            .range(self.k.last_decided + 1..)
            .filter(|(_, s)| s.votes_view == view && s.proof.is_none())
            .take(self.cfg.window as usize)
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        for (seq, slot) in undecided {
            let (Some(digest), Some(share), prepare) = (slot.proposal, slot.signed, slot.prepare) else { continue };
            if self.k.is_primary() {
                // Our own fresh PREPARE (NEW-VIEW entries have none).
                if prepare.as_ref() == Some(&share) {
                    if let Some(value) = self.k.values.get(&digest).cloned() {
                        self.k.broadcast(HybMsg::Prepare { view, seq, value, share: share.clone() }, out);
                    }
                }
            }
            let msg = HybMsg::CommitShare { view, seq, digest, share };
            if to_all {
                self.k.broadcast(msg, out);
            } else if collector != self.k.id {
                self.k.send(collector, msg, out);
            }
        }
    }
}

//! Checkpoints and catching up. A replica signs its state digest at a
//! checkpoint with its checkpoint counter and sends the share to the
//! collector; f+1 matching shares combine into a certificate, which makes
//! the checkpoint stable everywhere and proves it to anyone (a replica
//! behind it fetches the state and checks the digest). The periodic STATUS
//! lets peers send what a replica misses: DECIDED values with their COMMIT
//! certificates (one is enough), the NEW-VIEW, the latest checkpoint.

use super::{Action, Actions, CheckpointCert, DecidedEntry, EngineTimer, HybMsg, Value, NULL_DIGEST};
use crate::hybster::Engine;
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;
use quorate_threshsign::Share;
use std::collections::{BTreeMap, BTreeSet};

/// Quiet retransmission ticks after which a replica joins a later view a
/// peer moved to.
const JOIN_AFTER_STUCK_TICKS: u32 = 4;
/// A replica asks its peers for what it misses (STATUS) after this many
/// ticks without a decision. Not after one: a slot that is simply on its way
/// (a WAN round trip can exceed a tick) would make every peer that decided it
/// send the value back, which the replica already holds (Destiny at N = 49:
/// 355 MB of DECIDED in 6 s).
const STATUS_AFTER_STUCK_TICKS: u32 = 2;

impl<V: Value> Engine<V> {
    /// The embedder executed everything up to `seq` (a multiple of the
    /// checkpoint period) and its state digest is `digest`.
    pub fn checkpoint_taken(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if seq <= self.k.stable || !seq.is_multiple_of(self.cfg.checkpoint_period) {
            return;
        }
        let share = self.sign(&self.checkpoint_statement(seq, digest));
        self.own_checkpoints.insert(seq, (digest, share.clone()));
        if let Some(cert) = self.certified.get(&seq).cloned() {
            // Certified before we got here: stable if our state matches it.
            self.accept_checkpoint_cert(cert, out);
            return;
        }
        let Some(share) = share else { return };
        self.checkpoint_shares.entry(seq).or_default().insert(self.k.id, share.clone());
        let msg = HybMsg::CheckpointShare { seq, digest, share };
        let collector = self.k.primary();
        if self.k.active && collector != self.k.id {
            self.k.send(collector, msg, out);
        } else {
            self.k.broadcast(msg, out);
        }
        self.check_checkpoint(seq, out);
    }

    pub(crate) fn on_checkpoint_share(
        &mut self,
        from: ReplicaId,
        seq: u64,
        digest: Digest,
        share: Share,
        out: &mut Actions<V>,
    ) {
        if seq == 0 || !seq.is_multiple_of(self.cfg.checkpoint_period) {
            out.reject(from, "CHECKPOINT-SHARE off the checkpoint period");
            return;
        }
        if share.signer != from || share.statement != self.checkpoint_statement(seq, digest) {
            out.reject(from, "CHECKPOINT-SHARE on another statement");
            return;
        }
        if seq <= self.k.stable || seq > self.k.stable + self.cfg.window {
            return;
        }
        self.checkpoint_shares.entry(seq).or_default().insert(from, share);
        self.check_checkpoint(seq, out);
    }

    /// f+1 matching CHECKPOINT-SHAREs: combine them into a certificate.
    fn check_checkpoint(&mut self, seq: u64, out: &mut Actions<V>) {
        if self.certified.contains_key(&seq) || !self.may_collect() {
            return;
        }
        let Some(shares) = self.checkpoint_shares.get(&seq) else { return };
        let mut by_digest: BTreeMap<Digest, Vec<Share>> = BTreeMap::new();
        for s in shares.values() {
            by_digest.entry(s.statement.msg_hash).or_default().push(s.clone());
        }
        let Some((digest, shares)) = by_digest.into_iter().find(|(_, v)| v.len() >= self.quorum()) else { return };
        let st = self.checkpoint_statement(seq, digest);
        match self.scheme.combine_reporting(&st, &shares) {
            Ok((cert, bad)) => {
                if let Some(m) = self.checkpoint_shares.get_mut(&seq) {
                    m.retain(|r, _| !bad.contains(r));
                }
                let cert = CheckpointCert { seq, digest, cert };
                self.k.broadcast(HybMsg::Checkpoint(cert.clone()), out);
                self.accept_checkpoint_cert(cert, out);
            }
            Err(e) => {
                let bad = super::set_aside(&e);
                if let Some(m) = self.checkpoint_shares.get_mut(&seq) {
                    m.retain(|r, _| !bad.contains(r));
                }
            }
        }
    }

    /// Whether `cert` is a valid checkpoint certificate.
    pub(crate) fn valid_checkpoint(&self, cert: &CheckpointCert) -> bool {
        cert.seq > 0
            && cert.seq.is_multiple_of(self.cfg.checkpoint_period)
            && self.scheme.verify_threshold(&cert.cert, &self.checkpoint_statement(cert.seq, cert.digest)).is_ok()
    }

    pub(crate) fn on_checkpoint(&mut self, from: ReplicaId, cert: CheckpointCert, out: &mut Actions<V>) {
        if cert.seq <= self.k.stable || self.certified.contains_key(&cert.seq) {
            return;
        }
        if !self.valid_checkpoint(&cert) {
            out.reject(from, "bad CHECKPOINT certificate");
            return;
        }
        self.accept_checkpoint_cert(cert, out);
    }

    /// A certified checkpoint above our stable one: stable if we are there
    /// with the same state; otherwise we need its state (now if ours
    /// differs, after a round of asking for decisions if we are behind).
    pub(crate) fn accept_checkpoint_cert(&mut self, cert: CheckpointCert, out: &mut Actions<V>) {
        if cert.seq <= self.k.stable {
            return;
        }
        self.certified.insert(cert.seq, cert.clone());
        match self.own_checkpoints.get(&cert.seq) {
            Some((own, _)) if *own == cert.digest => self.on_own_checkpoint_certified(cert, out),
            Some(_) => {
                self.k
                    .note(format!("our state at {} differs from the certified checkpoint; fetching it", cert.seq), out);
                self.own_checkpoints.remove(&cert.seq);
                self.k.state_target = Some((cert.seq, cert.digest));
                out.push(Action::NeedState { seq: cert.seq, digest: cert.digest });
            }
            None => {}
        }
    }

    fn on_own_checkpoint_certified(&mut self, cert: CheckpointCert, out: &mut Actions<V>) {
        let (seq, digest) = (cert.seq, cert.digest);
        self.truncate(cert);
        if !self.k.replaying {
            out.push(Action::Stable { seq, digest });
        }
    }

    /// Drop the log up to the certified checkpoint; keep the decisions of
    /// the interval just below it to help peers.
    pub(crate) fn truncate(&mut self, cert: CheckpointCert) {
        let seq = cert.seq;
        if seq <= self.k.stable {
            return;
        }
        let previous = self.k.stable;
        self.own_votes.forget_below(&(seq + 1, 0, super::VoteKind::Prepare));
        self.k.stable = seq;
        self.k.stable_digest = cert.digest;
        self.stable_cert = Some(cert);
        self.retained.retain(|s, _| *s > previous);
        let dropped: Vec<u64> = self.slots.range(..=seq).map(|(s, _)| *s).collect();
        for s in dropped {
            if let Some(slot) = self.slots.remove(&s) {
                if let (Some(d), Some(p)) = (slot.decided, slot.proof) {
                    self.retained.insert(s, (d, p));
                }
            }
        }
        self.own_checkpoints = self.own_checkpoints.split_off(&(seq + 1));
        self.checkpoint_shares = self.checkpoint_shares.split_off(&(seq + 1));
        self.certified = self.certified.split_off(&(seq + 1));
        self.k.wanted = self.k.wanted.split_off(&(seq + 1));
        self.k.next_seq = self.k.next_seq.max(seq + 1);
        self.collect_values();
    }

    /// Forget values nothing refers to any more.
    pub(crate) fn collect_values(&mut self) {
        let mut live: BTreeSet<Digest> = self.retained.values().map(|(d, _)| *d).collect();
        for slot in self.slots.values() {
            live.extend(slot.proposal);
            live.extend(slot.decided);
            live.extend(slot.proof.as_ref().map(|p| p.cert.statement.msg_hash));
            live.extend(slot.prepare.as_ref().map(|p| p.statement.msg_hash));
        }
        if let Some(nv) = &self.log_new_view {
            live.extend(nv.core.entries.iter().map(|(_, d)| *d));
        }
        self.k.values.retain(|d, _| live.contains(d));
        self.k.durable.retain(|d| live.contains(d));
    }

    /// Whether state at `seq` with digest `digest` is still wanted.
    pub fn wants_state(&self, seq: u64, digest: Digest) -> bool {
        seq > self.k.last_decided && self.certified.get(&seq).is_some_and(|c| c.digest == digest)
    }

    /// The embedder installed the state after `seq` (digest `digest`).
    pub fn state_installed(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if seq <= self.k.last_decided {
            return;
        }
        let Some(cert) = self.certified.get(&seq).filter(|c| c.digest == digest).cloned() else { return };
        self.k.persist(super::Record::Stable(cert.clone()), out);
        self.truncate(cert);
        self.k.last_decided = seq;
        // The checkpoint covers what is not reported; forward only.
        self.k.reported.skip_to(seq + 1, "hybster: state installed");
        self.k.state_target = None;
        self.k.stuck_ticks = 0;
        self.k.note(format!("state installed at {seq}"), out);
        let after: Vec<u64> = self.slots.keys().copied().collect();
        for s in after {
            self.decide(s, out);
        }
        self.report_decided(out);
        self.sign_ready(out);
        self.k.decided_at_tick = self.k.last_decided;
        self.send_status(out);
    }

    /// Whether the checkpoint (`seq`, `digest`) is certified (or our stable one).
    pub fn vouches(&self, seq: u64, digest: Digest) -> bool {
        (seq, digest) == (self.k.stable, self.k.stable_digest)
            || self.certified.get(&seq).is_some_and(|c| c.digest == digest)
    }

    /// Whether a certified checkpoint lies above what we decided.
    pub fn behind(&self) -> bool {
        self.certified.keys().any(|s| *s > self.k.last_decided)
    }

    /// Tell the peers where we are, so that they send what we miss.
    pub fn ask_peers(&mut self, out: &mut Actions<V>) {
        self.send_status(out);
    }

    /// The retransmission tick.
    pub(crate) fn on_tick(&mut self, out: &mut Actions<V>) {
        out.push(Action::SetTimer { timer: EngineTimer::Tick, after: self.cfg.status_interval });
        if !self.k.active {
            if let Some(vc) = self.view_changes.get(&self.k.id).filter(|vc| vc.body.view == self.k.view).cloned() {
                self.k.broadcast(HybMsg::ViewChange(Box::new(vc)), out);
            }
            self.send_status(out);
            return;
        }
        if self.k.progressed_since_tick() {
            return;
        }
        if !self.under_way() {
            return;
        }
        self.k.stuck_ticks += 1;
        // Another replica left our view for a later one and ours is stuck: with
        // quorums of f+1 out of 2f+1 and a replica down, the view cannot move
        // on without the one that left (its counter no longer signs in it),
        // so join it. A faulty replica's VIEW-CHANGE alone cannot move a view
        // that progresses.
        if self.k.stuck_ticks >= JOIN_AFTER_STUCK_TICKS {
            let me = self.k.id;
            let later = self
                .view_changes
                .iter()
                .filter(|(r, vc)| **r != me && vc.body.view > self.k.view)
                .map(|(_, vc)| vc.body.view)
                .min();
            if let Some(v) = later {
                self.k.note(
                    format!("instance {}: stuck while a peer moved to view {v}: joining", self.cfg.instance),
                    out,
                );
                self.move_to_view(v, out);
                return;
            }
        }
        self.retransmit_votes(out);
        // Our latest checkpoint is not certified yet: its share again, to
        // everyone once the collector is slow.
        if let Some((&seq, (digest, Some(share)))) = self.own_checkpoints.iter().next_back() {
            if seq > self.k.stable && !self.certified.contains_key(&seq) {
                let msg = HybMsg::CheckpointShare { seq, digest: *digest, share: share.clone() };
                let collector = self.k.primary();
                if self.k.stuck_ticks >= 2 || collector == self.k.id {
                    self.k.broadcast(msg, out);
                } else {
                    self.k.send(collector, msg, out);
                }
            }
        }
        for (seq, digest) in self.k.wanted.clone() {
            self.k.broadcast(HybMsg::Fetch { seq, digest }, out);
        }
        if self.k.stuck_ticks >= STATUS_AFTER_STUCK_TICKS {
            self.send_status(out);
        }
        if let Some((&seq, cert)) = self.certified.iter().next_back() {
            let digest = cert.digest;
            let fresh = self.k.state_target != Some((seq, digest));
            if seq > self.k.last_decided && self.k.stuck_ticks >= 2 && (fresh || self.k.stuck_ticks.is_multiple_of(8)) {
                self.k.state_target = Some((seq, digest));
                out.push(Action::NeedState { seq, digest });
            }
        }
    }

    /// Whether anything is under way that should have progressed.
    fn under_way(&self) -> bool {
        self.slots.range(self.k.last_decided + 1..).next().is_some()
            || !self.k.wanted.is_empty()
            || self.own_checkpoints.keys().any(|s| *s > self.k.stable)
            || self.behind()
            || self.k.heard_beyond
            || !self.k.held.is_empty()
    }

    pub(crate) fn send_status(&mut self, out: &mut Actions<V>) {
        let (view, active, stable, decided) = (self.k.view, self.k.active, self.k.stable, self.k.last_decided);
        self.k.broadcast(HybMsg::Status { view, active, stable, decided }, out);
    }

    /// STATUS: send the peer what it misses.
    pub(crate) fn on_status(
        &mut self,
        from: ReplicaId,
        view: u64,
        active: bool,
        stable: u64,
        decided: u64,
        out: &mut Actions<V>,
    ) {
        if self.k.active && (view < self.k.view || (view == self.k.view && !active)) {
            if let Some(nv) = self.new_view.clone() {
                self.k.send(from, HybMsg::NewView(Box::new(nv)), out);
            }
        }
        if !self.k.active && view < self.k.view {
            if let Some(vc) = self.view_changes.get(&self.k.id).cloned() {
                self.k.send(from, HybMsg::ViewChange(Box::new(vc)), out);
            }
        }
        if stable < self.k.stable {
            if let Some(cert) = self.stable_cert.clone() {
                self.k.send(from, HybMsg::Checkpoint(cert), out);
            }
        }
        if decided < self.k.last_decided {
            self.send_decided(from, decided + 1, out);
        }
    }

    /// DECIDED with our decisions from `first` on, as far as we hold them.
    fn send_decided(&mut self, to: ReplicaId, first: u64, out: &mut Actions<V>) {
        let mut entries = Vec::new();
        let mut size = 0usize;
        for seq in first..=self.k.last_decided {
            let Some(proof) = self.proof_of(seq) else { break };
            let digest = proof.cert.statement.msg_hash;
            let value = if digest == NULL_DIGEST {
                None
            } else {
                match self.k.values.get(&digest) {
                    Some(v) => Some(v.clone()),
                    None => break,
                }
            };
            size += value.as_ref().map_or(0, |v| v.size());
            entries.push(DecidedEntry { seq, value, proof });
            if size >= self.cfg.max_reply_bytes {
                break;
            }
        }
        if !entries.is_empty() {
            self.k.send(to, HybMsg::Decided { entries }, out);
        }
    }

    /// DECIDED: each entry proves itself with its COMMIT certificate.
    pub(crate) fn on_decided(&mut self, from: ReplicaId, entries: Vec<DecidedEntry<V>>, out: &mut Actions<V>) {
        let size: usize = entries.iter().filter_map(|e| e.value.as_ref()).map(|v| v.size()).sum();
        if size > self.cfg.max_reply_bytes.saturating_add(self.cfg.max_value_bytes) {
            out.reject(from, "oversized DECIDED");
            return;
        }
        let top = self.k.high_watermark();
        for e in entries {
            if e.seq <= self.k.last_decided || e.seq > top || self.slots.get(&e.seq).is_some_and(|s| s.proof.is_some())
            {
                continue;
            }
            let digest = match &e.value {
                None => NULL_DIGEST,
                Some(v) => v.digest(self.k.crypto.as_ref()),
            };
            let Some(st) = self.order_statement(e.proof.view, e.seq, digest) else { continue };
            if self.scheme.verify_threshold(&e.proof.cert, &st).is_err() {
                out.reject(from, "DECIDED entry without a valid certificate");
                return;
            }
            if let Some(v) = e.value {
                self.k.values.insert(digest, v);
            }
            self.committed(e.seq, e.proof, out);
        }
        self.report_decided(out);
    }
}

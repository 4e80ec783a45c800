//! Checkpoints and catching up: CHECKPOINT votes, stable checkpoints (2f+1
//! matching, ours among them), the watermarks and log truncation; the
//! periodic retransmission (STATUS) through which a replica that misses
//! something gets it from its peers: decided values (DECIDED, trusted at f+1
//! matching reports), the NEW-VIEW of a view it missed, CHECKPOINT votes;
//! and the state a replica behind its peers' checkpoints must fetch through
//! its embedder.

use super::messages::bytes;
use super::{Action, Actions, Auth, DecidedEntry, EngineTimer, PbftMsg, Value, NULL_DIGEST};
use crate::pbft::Engine;
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;
use std::collections::{BTreeMap, BTreeSet};

impl<V: Value> Engine<V> {
    /// The embedder executed everything up to `seq` (a multiple of the
    /// checkpoint period) and its state digest is `digest`.
    pub fn checkpoint_taken(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if seq <= self.k.stable || !seq.is_multiple_of(self.cfg.checkpoint_period) {
            return;
        }
        self.own_checkpoints.insert(seq, digest);
        self.checkpoint_votes.entry(seq).or_default().insert(self.k.id, digest);
        let b = bytes::checkpoint(self.cfg.instance, seq, &digest);
        self.broadcast_macd(&b, |auth| PbftMsg::Checkpoint { seq, digest, auth }, out);
        self.check_stable(seq, out);
    }

    pub(crate) fn on_checkpoint(
        &mut self,
        from: ReplicaId,
        seq: u64,
        digest: Digest,
        auth: Auth,
        out: &mut Actions<V>,
    ) {
        if seq == 0 || !seq.is_multiple_of(self.cfg.checkpoint_period) {
            out.reject(from, "CHECKPOINT off the checkpoint period");
            return;
        }
        if !self.check_auth(from, &bytes::checkpoint(self.cfg.instance, seq, &digest), &auth) {
            out.reject(from, "bad MAC");
            return;
        }
        if self.claims.get(&from).is_none_or(|(s, _)| *s < seq) {
            self.claims.insert(from, (seq, digest));
        }
        if seq <= self.k.stable || seq > self.k.stable + self.cfg.window {
            return;
        }
        let votes = self.checkpoint_votes.entry(seq).or_default();
        if votes.get(&from).is_some_and(|d| *d != digest) {
            out.reject(from, "conflicting CHECKPOINT");
            return;
        }
        votes.insert(from, digest);
        self.check_stable(seq, out);
    }

    /// 2f+1 matching CHECKPOINTs, ours among them: stable.
    fn check_stable(&mut self, seq: u64, out: &mut Actions<V>) {
        let Some(votes) = self.checkpoint_votes.get(&seq) else { return };
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for d in votes.values() {
            *counts.entry(*d).or_default() += 1;
        }
        let Some((digest, _)) = counts.into_iter().find(|(_, c)| *c >= self.quorum()) else { return };
        match self.own_checkpoints.get(&seq) {
            Some(own) if *own == digest => self.make_stable(seq, digest, out),
            Some(_) => {
                // A quorum disagrees with our state: ours is wrong. Fetch theirs.
                self.k.note(format!("our state at {seq} differs from the stable checkpoint; fetching it"), out);
                self.own_checkpoints.remove(&seq);
                self.k.state_target = Some((seq, digest));
                out.push(Action::NeedState { seq, digest });
            }
            None => {} // We have not executed that far: the tick notices.
        }
    }

    /// Move the low watermark to `seq` and drop the log below it.
    fn make_stable(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        self.truncate(seq, digest);
        if !self.k.replaying {
            out.push(Action::Stable { seq, digest });
        }
    }

    /// Drop the log up to `seq` (whose state has digest `digest`); keep the
    /// decided digests of the interval just below it to help peers.
    pub(crate) fn truncate(&mut self, seq: u64, digest: Digest) {
        if seq <= self.k.stable {
            return;
        }
        let previous = self.k.stable;
        self.own_votes.forget_below(&(seq + 1, 0, super::VoteKind::PrePrepare));
        self.k.stable = seq;
        self.k.stable_digest = digest;
        self.retained.retain(|s, _| *s > previous);
        let kept: Vec<u64> = self.slots.range(..=seq).map(|(s, _)| *s).collect();
        for s in kept {
            if let Some(slot) = self.slots.remove(&s) {
                if let Some(d) = slot.decided {
                    self.retained.insert(s, d);
                }
            }
        }
        self.own_checkpoints = self.own_checkpoints.split_off(&seq);
        self.own_checkpoints.insert(seq, digest);
        self.checkpoint_votes = self.checkpoint_votes.split_off(&(seq + 1));
        self.k.wanted = self.k.wanted.split_off(&(seq + 1));
        if self.vouched.is_some_and(|(s, _)| s <= seq) {
            self.vouched = None;
        }
        if self.k.next_seq <= seq {
            self.k.next_seq = seq + 1;
        }
        self.collect_values();
    }

    /// Forget values nothing refers to any more.
    pub(crate) fn collect_values(&mut self) {
        let mut live: BTreeSet<Digest> = self.retained.values().copied().collect();
        for slot in self.slots.values() {
            live.extend(slot.pre_prepare);
            live.extend(slot.prepared.map(|(_, d)| d));
            live.extend(slot.pre_prepared.iter().map(|(d, _)| *d));
            live.extend(slot.decided);
        }
        self.k.values.retain(|d, _| live.contains(d));
        self.k.durable.retain(|d| live.contains(d));
    }

    /// Whether state at `seq` with digest `digest` is still wanted (ask
    /// before installing a fetched state).
    pub fn wants_state(&self, seq: u64, digest: Digest) -> bool {
        seq > self.k.last_decided && self.vouched_checkpoints().contains(&(seq, digest))
    }

    /// The embedder installed the state after `seq` (digest `digest`): the
    /// log continues after it. The embedder then makes that state its
    /// durable base, with [`Engine::live_records`] after it.
    pub fn state_installed(&mut self, seq: u64, digest: Digest, out: &mut Actions<V>) {
        if seq <= self.k.last_decided {
            return;
        }
        self.truncate(seq, digest);
        self.k.last_decided = seq;
        // §4.4 (state transfer): the checkpoint covers what is not reported; forward only.
        self.k.reported.skip_to(seq + 1, "pbft: state installed");
        self.k.state_target = None;
        self.k.stuck_ticks = 0;
        self.k.note(format!("state installed at {seq}"), out);
        // Decisions after it may be waiting.
        let after: Vec<u64> = self.slots.keys().copied().collect();
        for s in after {
            self.check_committed(s, out);
            self.check_reports(s, out);
        }
        self.report_decided(out);
        // Likely still behind the peers that served the state: tell them where we are.
        self.k.decided_at_tick = self.k.last_decided;
        self.send_status(out);
    }

    /// Whether f+1 replicas vouch for the checkpoint (`seq`, `digest`)
    /// (whatever we decided: an embedder that fetches state for other
    /// reasons checks what it got with this).
    pub fn vouches(&self, seq: u64, digest: Digest) -> bool {
        (seq, digest) == (self.k.stable, self.k.stable_digest) || self.vouched_any().contains(&(seq, digest))
    }

    /// Checkpoints at least f+1 replicas vouch for (CHECKPOINT claims, or
    /// the installed NEW-VIEW), above what we decided.
    fn vouched_checkpoints(&self) -> BTreeSet<(u64, Digest)> {
        let mut v = self.vouched_any();
        v.retain(|(s, _)| *s > self.k.last_decided);
        v
    }

    /// Checkpoints at least f+1 replicas vouch for, at any sequence number.
    fn vouched_any(&self) -> BTreeSet<(u64, Digest)> {
        let mut count: BTreeMap<(u64, Digest), usize> = BTreeMap::new();
        for c in self.claims.values() {
            *count.entry(*c).or_default() += 1;
        }
        for (cp, votes) in &self.checkpoint_votes {
            let mut per: BTreeMap<Digest, usize> = BTreeMap::new();
            for d in votes.values() {
                *per.entry(*d).or_default() += 1;
            }
            for (d, c) in per {
                let e = count.entry((*cp, d)).or_default();
                *e = (*e).max(c);
            }
        }
        let mut v: BTreeSet<(u64, Digest)> =
            count.into_iter().filter(|(_, c)| *c >= self.weak()).map(|(k, _)| k).collect();
        v.extend(self.vouched);
        v
    }

    /// The retransmission tick: when nothing was decided since the last one
    /// and something is under way, repeat our part and tell the others where
    /// we are; when we stay behind a vouched checkpoint, ask for its state.
    pub(crate) fn on_tick(&mut self, out: &mut Actions<V>) {
        out.push(Action::SetTimer { timer: EngineTimer::Tick, after: self.cfg.status_interval });
        if !self.k.active {
            // Waiting for the NEW-VIEW: our VIEW-CHANGE may have been lost.
            if let Some(vc) = self.view_changes.get(&self.k.id).filter(|vc| vc.body.view == self.k.view).cloned() {
                self.k.broadcast(PbftMsg::ViewChange(Box::new(vc)), out);
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
        // The primary's PRE-PREPAREs carry the values: repeated on stuck ticks
        // 1, 2, 4, 8 and then every 16th only. A value takes (n-1)·size/bandwidth on the
        // primary's link (0.3 s for 100 kB at n = 301 and 1 Gb/s), longer than
        // a tick: repeating them on every tick without a decision filled the
        // link with copies and collapsed the throughput.
        let values =
            (self.k.stuck_ticks.is_power_of_two() && self.k.stuck_ticks <= 8) || self.k.stuck_ticks.is_multiple_of(16);
        self.retransmit_votes(values, out);
        if let Some((&seq, &digest)) = self.own_checkpoints.iter().next_back().filter(|(s, _)| **s > self.k.stable) {
            let b = bytes::checkpoint(self.cfg.instance, seq, &digest);
            self.broadcast_macd(&b, |auth| PbftMsg::Checkpoint { seq, digest, auth }, out);
        }
        for (seq, digest) in self.k.wanted.clone() {
            self.k.broadcast(PbftMsg::Fetch { seq, digest }, out);
        }
        self.send_status(out);
        // Behind a checkpoint f+1 replicas vouch for, after a round of asking
        // for decided values: its state is needed (peers may have dropped the log).
        if let Some(&(seq, digest)) = self.vouched_checkpoints().iter().next_back() {
            let fresh = self.k.state_target != Some((seq, digest));
            if self.k.stuck_ticks >= 2 && (fresh || self.k.stuck_ticks.is_multiple_of(8)) {
                self.k.state_target = Some((seq, digest));
                out.push(Action::NeedState { seq, digest });
            }
        }
    }

    /// Whether anything is under way that should have progressed: undecided
    /// log entries, values we miss, an unstable checkpoint of ours, peers
    /// ahead of us, or messages of a view we have not installed.
    fn under_way(&self) -> bool {
        self.slots.range(self.k.last_decided + 1..).next().is_some()
            || !self.k.wanted.is_empty()
            || self.own_checkpoints.keys().any(|s| *s > self.k.stable)
            || self.claims.values().any(|(s, _)| *s > self.k.last_decided)
            || self.k.heard_beyond
            || !self.k.held.is_empty()
    }

    /// Whether f+1 replicas vouch for a checkpoint above what we decided:
    /// we are catching up (an embedder does not suspect the primary then;
    /// a single faulty replica cannot make this true).
    pub fn behind(&self) -> bool {
        !self.vouched_checkpoints().is_empty()
    }

    /// Tell the peers where we are now, so that they send what we miss (an
    /// embedder that knows this instance is behind while the instance
    /// itself is quiet: it retransmits only while something is under way).
    pub fn ask_peers(&mut self, out: &mut Actions<V>) {
        self.send_status(out);
    }

    pub(crate) fn send_status(&mut self, out: &mut Actions<V>) {
        let (view, active, stable, decided) = (self.k.view, self.k.active, self.k.stable, self.k.last_decided);
        let b = bytes::status(self.cfg.instance, view, active, stable, decided);
        self.broadcast_macd(&b, |auth| PbftMsg::Status { view, active, stable, decided, auth }, out);
    }

    /// STATUS: send the peer what it misses.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_status(
        &mut self,
        from: ReplicaId,
        view: u64,
        active: bool,
        stable: u64,
        decided: u64,
        auth: Auth,
        out: &mut Actions<V>,
    ) {
        if !self.check_auth(from, &bytes::status(self.cfg.instance, view, active, stable, decided), &auth) {
            out.reject(from, "bad MAC");
            return;
        }
        // A view it has not installed: the NEW-VIEW proves ours.
        if self.k.active && (view < self.k.view || (view == self.k.view && !active)) {
            if let Some(nv) = self.new_view.clone() {
                self.k.send(from, PbftMsg::NewView(Box::new(nv)), out);
            }
        }
        // Moving to a later view than ours: our VIEW-CHANGE helps it gather f+1.
        if !self.k.active && view < self.k.view {
            if let Some(vc) = self.view_changes.get(&self.k.id).cloned() {
                self.k.send(from, PbftMsg::ViewChange(Box::new(vc)), out);
            }
        }
        // Behind our stable checkpoint: our CHECKPOINT vouches for it (with
        // f others, enough to fetch its state).
        if stable < self.k.stable && self.k.stable > 0 {
            let (seq, digest) = (self.k.stable, self.k.stable_digest);
            let auth = self.auth_one(from, &bytes::checkpoint(self.cfg.instance, seq, &digest));
            self.k.send(from, PbftMsg::Checkpoint { seq, digest, auth }, out);
        }
        if decided < self.k.last_decided {
            self.send_decided(from, decided + 1, out);
        }
        // A replica in our view that is stuck: as primary, send it our
        // undecided PRE-PREPAREs itself (the broadcast repeats back off,
        // and a replica back from a crash may be the one every slot needs).
        if self.k.is_primary() && view == self.k.view && active {
            self.resend_pre_prepares(from, out);
        }
    }

    /// Primary: our PRE-PREPAREs of this view not decided yet, to `to` alone.
    fn resend_pre_prepares(&mut self, to: ReplicaId, out: &mut Actions<V>) {
        let (view, inst) = (self.k.view, self.cfg.instance);
        let undecided: Vec<(u64, Digest)> = self
            .slots
            .range(self.k.last_decided + 1..)
            .filter(|(_, s)| s.votes_view == view && s.decided.is_none())
            .filter_map(|(k, s)| Some((*k, s.pre_prepare?)))
            .filter(|(k, d)| *d != NULL_DIGEST && self.new_view_entry(*k).is_none())
            .take(self.cfg.window as usize)
            .collect();
        for (seq, digest) in undecided {
            if let Some(value) = self.k.values.get(&digest).cloned() {
                let auth = self.auth_one(to, &bytes::pre_prepare(inst, view, seq, &digest));
                self.k.send(to, PbftMsg::PrePrepare { view, seq, value, auth }, out);
            }
        }
    }

    /// DECIDED with our decisions from `first` on, as far as we hold them.
    fn send_decided(&mut self, to: ReplicaId, first: u64, out: &mut Actions<V>) {
        let mut entries = Vec::new();
        let mut size = 0usize;
        for seq in first..=self.k.last_decided {
            let digest = match self.slots.get(&seq).and_then(|s| s.decided) {
                Some(d) => d,
                None => match self.retained.get(&seq) {
                    Some(d) => *d,
                    None => break,
                },
            };
            let value = if digest == NULL_DIGEST {
                None
            } else {
                match self.k.values.get(&digest) {
                    Some(v) => Some(v.clone()),
                    None => break,
                }
            };
            size += value.as_ref().map_or(0, |v| v.size());
            entries.push(DecidedEntry { seq, value });
            if size >= self.cfg.max_reply_bytes {
                break;
            }
        }
        if entries.is_empty() {
            return;
        }
        let pairs: Vec<(u64, Digest)> = entries.iter().map(|e| (e.seq, self.entry_digest(e))).collect();
        let auth = self.auth_one(to, &bytes::decided(self.cfg.instance, &pairs));
        self.k.send(to, PbftMsg::Decided { entries, auth }, out);
    }

    fn entry_digest(&self, e: &DecidedEntry<V>) -> Digest {
        match &e.value {
            None => NULL_DIGEST,
            Some(v) => v.digest(self.k.crypto.as_ref()),
        }
    }

    /// DECIDED: reports of decided values; f+1 matching ones decide.
    pub(crate) fn on_decided(
        &mut self,
        from: ReplicaId,
        entries: Vec<DecidedEntry<V>>,
        auth: Auth,
        out: &mut Actions<V>,
    ) {
        // A correct sender stops once past max_reply_bytes.
        let size: usize = entries.iter().filter_map(|e| e.value.as_ref()).map(|v| v.size()).sum();
        if size > self.cfg.max_reply_bytes.saturating_add(self.cfg.max_value_bytes) {
            out.reject(from, "oversized DECIDED");
            return;
        }
        let mut pairs = Vec::with_capacity(entries.len());
        for e in &entries {
            pairs.push((e.seq, self.entry_digest(e)));
        }
        if !self.check_auth(from, &bytes::decided(self.cfg.instance, &pairs), &auth) {
            out.reject(from, "bad MAC");
            return;
        }
        let top = self.k.high_watermark();
        for (e, (seq, digest)) in entries.into_iter().zip(pairs) {
            if seq <= self.k.last_decided || seq > top {
                continue;
            }
            let slot = self.slots.entry(seq).or_default();
            if slot.decided.is_some() || slot.reports.contains_key(&from) {
                continue;
            }
            slot.reports.insert(from, digest);
            if let Some(v) = e.value {
                slot.report_values.entry(digest).or_insert(v);
            }
            self.check_reports(seq, out);
        }
        self.report_decided(out);
    }

    /// f+1 matching reports that `seq` is decided: at least one correct
    /// replica decided it.
    pub(crate) fn check_reports(&mut self, seq: u64, out: &mut Actions<V>) {
        let weak = self.weak();
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        if slot.decided.is_some() {
            return;
        }
        let mut counts: BTreeMap<Digest, usize> = BTreeMap::new();
        for d in slot.reports.values() {
            *counts.entry(*d).or_default() += 1;
        }
        let Some((digest, _)) = counts.into_iter().find(|(_, c)| *c >= weak) else { return };
        if let Some(v) = slot.report_values.remove(&digest) {
            self.k.values.insert(digest, v);
        }
        if self.k.known(&digest) {
            self.decide(seq, digest, out);
        } else {
            self.want(seq, digest, out);
        }
    }
}

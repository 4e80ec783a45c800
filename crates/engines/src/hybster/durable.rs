//! What an instance makes durable, and how it comes back from it.
//!
//! A replica that restarts must not contradict what it signed: its shares
//! (recorded before they leave, with the PREPARE they answer), the
//! VIEW-CHANGE it sent, the NEW-VIEW it installed, its decisions with their
//! certificates. The trusted subsystem's counters are not persisted
//! (decision 0008); a restarted replica's log, not its counters, keeps it
//! from signing twice, and its VIEW-CHANGEs then report the whole log.
//!
//! When a checkpoint becomes stable the embedder writes it as its durable
//! base followed by [`Engine::live_records`]; recovery replays that and
//! every record after it ([`Engine::recover`]); replaying is idempotent.

use super::{Actions, CheckpointCert, CommitProof, NewView, Value, ViewChange, NULL_DIGEST};
use crate::hybster::Engine;
use quorate_core::crypto::Digest;
use quorate_threshsign::Share;
use serde::{Deserialize, Serialize};

/// One durable record of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<V> {
    /// The stable checkpoint.
    Stable(CheckpointCert),
    /// We sent this VIEW-CHANGE.
    ViewChangeSent(Box<ViewChange>),
    /// We installed this NEW-VIEW.
    NewView(Box<NewView>),
    /// We signed `digest` at (`view`, `seq`): our share, and the PREPARE it
    /// answers (None for a NEW-VIEW entry).
    Signed {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest.
        digest: Digest,
        /// The primary's PREPARE share, if a fresh proposal.
        prepare: Option<Share>,
        /// Our share.
        own: Share,
        /// The value, unless an earlier record since the base holds it.
        value: Option<V>,
    },
    /// A PREPARE accepted in an earlier view (kept for VIEW-CHANGEs).
    Accepted {
        /// The primary's share.
        prepare: Share,
        /// The value, unless an earlier record since the base holds it.
        value: Option<V>,
    },
    /// `seq` is decided.
    Decided {
        /// Sequence number.
        seq: u64,
        /// Its COMMIT certificate (the digest is in its statement).
        proof: CommitProof,
        /// The value, unless an earlier record since the base holds it.
        value: Option<V>,
    },
}

impl<V: Value> Engine<V> {
    /// Everything the instance must keep past a new durable base.
    pub fn live_records(&mut self) -> Vec<Record<V>> {
        let mut recs = Vec::new();
        if let Some(cert) = &self.stable_cert {
            recs.push(Record::Stable(cert.clone()));
        }
        if let Some(nv) = &self.new_view {
            recs.push(Record::NewView(Box::new(nv.clone())));
        }
        if !self.k.active {
            if let Some(vc) = self.view_changes.get(&self.k.id) {
                recs.push(Record::ViewChangeSent(Box::new(vc.clone())));
            }
        }
        self.k.durable.clear();
        let mut written = std::collections::HashSet::new();
        let mut value_once = |d: &Digest, values: &std::collections::HashMap<Digest, V>| {
            if *d == NULL_DIGEST || !written.insert(*d) {
                return None;
            }
            values.get(d).cloned()
        };
        for (&seq, slot) in self.slots.range(self.k.stable + 1..) {
            match (&slot.signed, slot.proposal) {
                (Some(own), Some(digest)) => {
                    let prepare = slot.prepare.clone().filter(|p| p.statement == own.statement);
                    let value = value_once(&digest, &self.k.values);
                    recs.push(Record::Signed { view: slot.votes_view, seq, digest, prepare, own: own.clone(), value });
                }
                _ => {
                    if let Some(p) = &slot.prepare {
                        let value = value_once(&p.statement.msg_hash, &self.k.values);
                        recs.push(Record::Accepted { prepare: p.clone(), value });
                    }
                }
            }
            if let (Some(proof), Some(_)) = (&slot.proof, slot.decided) {
                let value = value_once(&proof.cert.statement.msg_hash, &self.k.values);
                recs.push(Record::Decided { seq, proof: proof.clone(), value });
            }
        }
        self.k.durable = written;
        recs
    }

    /// Come back from the durable log (the base's records, then every
    /// record after it). The embedder has installed its state at the base's
    /// checkpoint; decisions after it are reported again.
    pub fn recover(&mut self, records: Vec<Record<V>>, out: &mut Actions<V>) {
        self.k.replaying = true;
        for rec in records {
            self.replay(rec, out);
        }
        self.k.replaying = false;
        self.k.decided_at_tick = self.k.last_decided;
        self.report_decided(out);
        if !self.k.started {
            self.k.start(out);
        }
        if !self.k.active {
            // Still moving to `view`: a fresh VIEW-CHANGE with what we know now.
            let target = self.k.view;
            self.k.view -= 1;
            self.k.active = true;
            self.move_to_view(target, out);
        } else {
            self.sign_ready(out);
        }
        self.send_status(out);
    }

    fn replay(&mut self, rec: Record<V>, out: &mut Actions<V>) {
        match rec {
            Record::Stable(cert) => {
                let seq = cert.seq;
                self.truncate(cert);
                if seq > self.k.last_decided {
                    self.k.last_decided = seq;
                    self.k.reported.skip_to(seq + 1, "hybster: recovered checkpoint");
                }
            }
            Record::ViewChangeSent(vc) => {
                if vc.body.view > self.k.view || (vc.body.view == self.k.view && self.k.active) {
                    self.k.view = vc.body.view;
                    self.k.active = false;
                }
                self.view_changes.insert(self.k.id, *vc);
            }
            Record::NewView(nv) => {
                let v = nv.signed.core.view;
                if v > self.k.view || (v == self.k.view && !self.k.active) {
                    self.install_new_view(*nv, out);
                }
            }
            Record::Signed { view, seq, digest, prepare, own, value } => {
                self.replay_value(digest, value);
                if seq <= self.k.stable {
                    return;
                }
                // Our shares, as the log has them: one per (view, seq).
                let (kind, _) = self.share_kind(view);
                self.own_votes.cast((seq, view, kind), digest, "hybster: recovered PREPARE or COMMIT");
                let current = view == self.k.view && self.k.active;
                let slot = self.slots.entry(seq).or_default();
                if let Some(p) = prepare {
                    slot.prepare = Some(p);
                }
                if current {
                    slot.enter_view(view);
                    slot.proposal = Some(digest);
                    slot.signed = Some(own.clone());
                    slot.shares.insert(self.k.id, own);
                    self.next_sign = self.next_sign.max(seq + 1);
                    if self.k.primary_of(view) == self.k.id {
                        self.k.next_seq = self.k.next_seq.max(seq + 1);
                    }
                }
            }
            Record::Accepted { prepare, value } => {
                self.replay_value(prepare.statement.msg_hash, value);
                let (v, seq) = quorate_threshsign::counter::unpack_view_seq(prepare.statement.value);
                if seq <= self.k.stable {
                    return;
                }
                let slot = self.slots.entry(seq).or_default();
                let newer = slot
                    .prepare
                    .as_ref()
                    .is_none_or(|p| quorate_threshsign::counter::unpack_view_seq(p.statement.value).0 < v);
                if newer {
                    slot.prepare = Some(prepare);
                }
            }
            Record::Decided { seq, proof, value } => {
                let digest = proof.cert.statement.msg_hash;
                self.replay_value(digest, value);
                if seq > self.k.stable && seq > self.k.last_decided {
                    let slot = self.slots.entry(seq).or_default();
                    slot.proof = Some(proof);
                    slot.decided = Some(digest);
                }
            }
        }
    }

    fn replay_value(&mut self, digest: Digest, value: Option<V>) {
        if let Some(v) = value {
            self.k.values.insert(digest, v);
            self.k.durable.insert(digest);
        }
    }
}

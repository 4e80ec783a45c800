//! What an instance makes durable, and how it comes back from it.
//!
//! A replica that restarts after kill -9 must not contradict what it said
//! before: the views it left (it claimed its log in a VIEW-CHANGE), what it
//! pre-prepared and prepared (its claims in later VIEW-CHANGEs, on which
//! other replicas' safety rests), and what it decided (it may have answered
//! clients). Each of these is recorded before the message that depends on
//! it leaves ([`super::Action::Persist`] precedes the send), and each decision
//! before it is reported. A value is written once, with the first record
//! that needs it after the last durable checkpoint.
//!
//! When a checkpoint becomes stable the embedder writes it as its durable
//! base, followed by [`Engine::live_records`]: the stable checkpoint, the
//! view, and the log above it. Recovery replays that and every record after
//! it ([`Engine::recover`]); replaying is idempotent.

use super::{Actions, NewView, Signed, Value, NULL_DIGEST};
use crate::pbft::Engine;
use quorate_core::crypto::Digest;
use serde::{Deserialize, Serialize};

/// One durable record of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<V> {
    /// The stable checkpoint (first of [`Engine::live_records`], or a state
    /// installed by state transfer).
    Stable {
        /// Sequence number.
        seq: u64,
        /// State digest.
        digest: Digest,
    },
    /// We left our view for `view` (VIEW-CHANGE sent).
    View {
        /// The view moved to.
        view: u64,
    },
    /// We installed this NEW-VIEW.
    NewView(Box<Signed<NewView>>),
    /// We pre-prepared `digest` at `seq` in `view` (proposed it, accepted its
    /// PRE-PREPARE, or took it from a NEW-VIEW).
    PrePrepared {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest.
        digest: Digest,
        /// The value, unless an earlier record since the checkpoint holds it.
        value: Option<V>,
    },
    /// We prepared `digest` at `seq` in `view` (COMMIT sent).
    Prepared {
        /// View.
        view: u64,
        /// Sequence number.
        seq: u64,
        /// Digest.
        digest: Digest,
    },
    /// `seq` is decided with `digest`.
    Decided {
        /// Sequence number.
        seq: u64,
        /// Digest.
        digest: Digest,
        /// The value, unless an earlier record since the checkpoint holds it.
        value: Option<V>,
    },
}

impl<V: Value> Engine<V> {
    /// Everything the instance must keep past a new durable base: the stable
    /// checkpoint, the view, and the log above the checkpoint (each value
    /// once). The embedder writes these right after its checkpoint record.
    pub fn live_records(&mut self) -> Vec<Record<V>> {
        let mut recs = vec![Record::Stable { seq: self.k.stable, digest: self.k.stable_digest }];
        if let Some(nv) = &self.new_view {
            recs.push(Record::NewView(Box::new(nv.clone())));
        }
        if !self.k.active {
            recs.push(Record::View { view: self.k.view });
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
            let mut q = slot.pre_prepared.clone();
            q.sort_by_key(|(_, v)| *v);
            for (digest, view) in q {
                let value = value_once(&digest, &self.k.values);
                recs.push(Record::PrePrepared { view, seq, digest, value });
            }
            if let Some((view, digest)) = slot.prepared {
                recs.push(Record::Prepared { view, seq, digest });
            }
            if let Some(digest) = slot.decided {
                let value = value_once(&digest, &self.k.values);
                recs.push(Record::Decided { seq, digest, value });
            }
        }
        self.k.durable = written;
        recs
    }

    /// Come back from the durable log: the records of [`Engine::live_records`]
    /// at the last durable base, then every record persisted after it. The
    /// embedder has installed its own state at the base's stable checkpoint;
    /// decisions after it are reported again (to be executed again), and the
    /// instance starts (its tick armed).
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
            // Still moving to `view`: send our VIEW-CHANGE again (with what we know now).
            let target = self.k.view;
            self.k.view -= 1;
            self.k.active = true;
            self.move_to_view(target, out);
        }
        self.send_status(out);
    }

    fn replay(&mut self, rec: Record<V>, out: &mut Actions<V>) {
        match rec {
            Record::Stable { seq, digest } => {
                if seq > self.k.stable {
                    self.truncate(seq, digest);
                }
                if seq > self.k.last_decided {
                    self.k.last_decided = seq;
                    self.k.reported.skip_to(seq + 1, "pbft: recovered checkpoint");
                }
            }
            Record::View { view } => {
                if view > self.k.view {
                    self.k.view = view;
                    self.k.active = false;
                }
            }
            Record::NewView(nv) => {
                if nv.body.view > self.k.view || (nv.body.view == self.k.view && !self.k.active) {
                    self.install_new_view(*nv, out);
                }
            }
            Record::PrePrepared { view, seq, digest, value } => {
                if let Some(v) = value {
                    self.k.values.insert(digest, v);
                    self.k.durable.insert(digest);
                }
                if seq <= self.k.stable {
                    return;
                }
                let (current, backup) = (view == self.k.view && self.k.active, self.k.primary_of(view) != self.k.id);
                if current {
                    let kind = if backup { super::VoteKind::Prepare } else { super::VoteKind::PrePrepare };
                    self.own_votes.cast((seq, view, kind), digest, "pbft: recovered PRE-PREPARE or PREPARE");
                }
                let slot = self.slots.entry(seq).or_default();
                slot.note_pre_prepared(digest, view);
                if current {
                    slot.enter_view(view);
                    slot.pre_prepare = Some(digest);
                    if backup {
                        slot.sent_prepare = Some(digest);
                        slot.prepares.insert(&self.k.m, self.k.id, digest);
                    } else {
                        self.k.next_seq = self.k.next_seq.max(seq + 1);
                    }
                }
            }
            Record::Prepared { view, seq, digest } => {
                if seq <= self.k.stable {
                    return;
                }
                if view == self.k.view && self.k.active {
                    self.own_votes.cast((seq, view, super::VoteKind::Commit), digest, "pbft: recovered COMMIT");
                }
                let slot = self.slots.entry(seq).or_default();
                slot.note_prepared(digest, view);
                if view == self.k.view && self.k.active {
                    slot.enter_view(view);
                    slot.sent_commit = Some(digest);
                    slot.commits.insert(&self.k.m, self.k.id, digest);
                }
            }
            Record::Decided { seq, digest, value } => {
                if let Some(v) = value {
                    self.k.values.insert(digest, v);
                    self.k.durable.insert(digest);
                }
                if seq > self.k.stable && seq > self.k.last_decided {
                    self.slots.entry(seq).or_default().decided = Some(digest);
                }
            }
        }
    }
}

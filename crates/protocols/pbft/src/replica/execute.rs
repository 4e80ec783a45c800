//! Executing what the instance decides, checkpoints and the durable base,
//! state transfer (the engine says which state it needs and which digest
//! f+1 replicas vouch for; one replica at a time is asked for it), and
//! recovery after kill -9.

use super::{CheckpointRecord, Out, Replica, Transfer};
use crate::messages::{Batch, Msg};
use crate::Timer;
use quorate_core::crypto::Digest;
use quorate_core::executor::{Checkpoint, Outcome};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::{Effect, Event, Outbox};
use quorate_core::time::Time;
use quorate_core::{wire, Bytes};
use quorate_engines::pbft::{Actions, Record};

impl Replica {
    /// Execute the batch decided at `seq` (None: a null request) and answer
    /// its clients; take a checkpoint at the end of a period.
    pub(crate) fn execute_decided(&mut self, seq: u64, value: Option<Batch>, more: &mut Actions<Batch>, out: &mut Out) {
        let requests = value.as_ref().map_or(0, |b| b.requests.len());
        if let Some(batch) = value {
            for r in &batch.requests {
                match self.exec.execute(&r.req, seq, batch.timestamp, out) {
                    Outcome::Executed(result) | Outcome::Repeat(result) => {
                        self.reply(r.req.client, r.req.seq, result, out)
                    }
                    Outcome::Stale => {}
                }
            }
        }
        out.event(Event::Decided { instance: seq, requests });
        self.prune_pending();
        if seq.is_multiple_of(self.cfg.checkpoint_period) {
            let cp = self.exec.checkpoint();
            out.event(Event::Checkpoint { slot: cp.slot, digest: cp.digest });
            let digest = cp.digest;
            self.checkpoints.insert(seq, cp);
            self.engine.checkpoint_taken(seq, digest, more);
        }
    }

    /// The checkpoint at `seq` is stable: it becomes the durable base.
    pub(crate) fn make_durable_base(&mut self, seq: u64, digest: Digest, out: &mut Out) {
        let Some(cp) = self.checkpoints.get(&seq).cloned() else {
            out.event(Event::Note(format!("stable checkpoint {seq} without our state")));
            return;
        };
        debug_assert_eq!(cp.digest, digest);
        self.checkpoints = self.checkpoints.split_off(&seq);
        self.write_base(seq, cp, out);
    }

    fn write_base(&mut self, seq: u64, checkpoint: Checkpoint, out: &mut Out) {
        let rec = CheckpointRecord { seq, checkpoint, engine: self.engine.live_records() };
        out.push(Effect::PersistCheckpoint(Bytes::from(wire::encode(&rec))));
    }

    /// The engine needs the state after `seq`: ask one replica at a time.
    pub(crate) fn need_state(&mut self, seq: u64, digest: Digest, out: &mut Out) {
        if self.transfer.as_ref().is_some_and(|t| t.seq == seq && t.digest == digest) {
            return; // under way; its timer asks the next replica
        }
        self.transfer = Some(Transfer { seq, digest, attempt: 0 });
        self.send_state_request(out);
    }

    fn send_state_request(&mut self, out: &mut Out) {
        let Some(t) = &self.transfer else { return };
        let others: Vec<ReplicaId> = self.m.replicas().filter(|r| *r != self.id).collect();
        if others.is_empty() {
            return;
        }
        let to = others[(self.id.index() + t.attempt as usize) % others.len()];
        out.event(Event::Note(format!("state transfer of checkpoint {} from {to} (attempt {})", t.seq, t.attempt)));
        out.send(to, Msg::StateRequest { seq: t.seq, digest: t.digest });
        out.set_timer(Timer::StateTransfer, self.cfg.state_transfer_timeout);
    }

    pub(crate) fn on_state_transfer_timeout(&mut self, out: &mut Out) {
        let Some(t) = &mut self.transfer else { return };
        if !self.engine.wants_state(t.seq, t.digest) {
            self.transfer = None;
            return;
        }
        t.attempt += 1;
        self.send_state_request(out);
    }

    /// STATE-REQUEST: send the checkpoint if we hold it.
    pub(crate) fn on_state_request(&mut self, r: ReplicaId, seq: u64, digest: Digest, out: &mut Out) {
        if let Some(cp) = self.checkpoints.get(&seq).filter(|cp| cp.digest == digest) {
            out.send(r, Msg::StateReply { seq, checkpoint: Box::new(cp.clone()) });
        }
    }

    /// STATE-REPLY: install it if it is the state we wait for.
    pub(crate) fn on_state_reply(&mut self, now: Time, r: ReplicaId, seq: u64, cp: Checkpoint, out: &mut Out) {
        let Some(t) = &self.transfer else { return };
        if t.seq != seq || t.digest != cp.digest {
            out.reject(NodeId::Replica(r), "unexpected state");
            return;
        }
        if !cp.is_consistent() {
            out.reject(NodeId::Replica(r), "inconsistent checkpoint");
            return;
        }
        self.transfer = None;
        out.cancel_timer(Timer::StateTransfer);
        if !self.engine.wants_state(seq, cp.digest) {
            return;
        }
        if let Err(e) = self.exec.install(&cp, out) {
            out.event(Event::Note(format!("state transfer: cannot install checkpoint {seq}: {e}")));
            return;
        }
        let digest = cp.digest;
        self.checkpoints.clear();
        self.checkpoints.insert(seq, cp.clone());
        self.prune_pending();
        let mut acts = Actions::new();
        self.engine.state_installed(seq, digest, &mut acts);
        self.write_base(seq, cp, out);
        self.carry_out(now, acts, out);
    }

    /// Restart from the durable base and the records after it.
    pub(crate) fn recover(&mut self, now: Time, checkpoint: Option<Bytes>, records: Vec<Bytes>, out: &mut Out) {
        let mut recs: Vec<Record<Batch>> = Vec::new();
        let mut scratch = Outbox::<crate::Pbft>::new();
        let mut base_ok = true;
        if let Some(bytes) = checkpoint {
            base_ok = false;
            match wire::decode::<CheckpointRecord>(&bytes, usize::MAX) {
                Ok(rec) => match self.exec.install(&rec.checkpoint, &mut scratch) {
                    Ok(()) => {
                        self.checkpoints.insert(rec.seq, rec.checkpoint);
                        recs.extend(rec.engine);
                        base_ok = true;
                    }
                    Err(e) => out.event(Event::Note(format!("recovery: cannot install the checkpoint: {e}"))),
                },
                Err(e) => out.event(Event::Note(format!("recovery: unreadable checkpoint: {e}"))),
            }
        }
        if base_ok {
            for bytes in records {
                match wire::decode::<Record<Batch>>(&bytes, usize::MAX) {
                    Ok(r) => recs.push(r),
                    Err(_) => out.event(Event::Note("recovery: unreadable record skipped".into())),
                }
            }
        } else {
            // Records after a lost base cannot be placed: start empty and catch up from peers.
            out.event(Event::Note("recovery: starting without durable state".into()));
        }
        self.started = true;
        out.set_timer(Timer::RequestTick, self.tick_interval());
        self.with_engine(now, out, |e, a| e.recover(recs, a));
        out.event(Event::StateInstalled { slot: self.exec.slot(), digest: self.exec.state_digest() });
    }
}

//! The round-robin delivery of RCC and MirBFT (`Config::round_robin`, the
//! baseline of `dqbft-imbalance`; decision 0009): D-slots execute in a
//! fixed global order, position p = (seq − 1) · N + instance, so slot s of
//! every instance before slot s+1 of any. The O-instance stays: it still
//! orders ASSIGNs, handovers and checkpoints, and its batches say how far
//! the round-robin order has got. An O-batch's slots must be consecutive
//! positions; executing it runs every position from the next unexecuted
//! one up to its last, whatever it names, so a faulty O-primary can only
//! delay the order, never change it. A coordinator behind the round
//! (another instance has proposed a later slot) proposes an empty batch
//! when it has nothing, at its own pace (one partial batch in flight, as
//! any partial batch); the successor of a taken-over instance fills it
//! with no-ops up to the round.

use super::{Out, Replica};
use crate::messages::{DRef, OBatch};
use crate::Flavor;
use quorate_core::machine::Event;
use quorate_core::time::Time;
use quorate_engines::instance::Instance;

impl<F: Flavor> Replica<F> {
    /// Whether D-slots execute in the round-robin order.
    pub(crate) fn round_robin(&self) -> bool {
        self.cfg.round_robin
    }

    /// The round-robin position of D-slot `r`.
    pub(crate) fn rr_pos(&self, r: DRef) -> u64 {
        r.seq.saturating_sub(1).saturating_mul(self.d.len() as u64).saturating_add(u64::from(r.instance))
    }

    /// The D-slot at round-robin position `p`.
    pub(crate) fn rr_ref(&self, p: u64) -> DRef {
        let n = self.d.len() as u64;
        DRef { instance: (p % n) as u32, seq: p / n + 1 }
    }

    /// The next position to execute: every slot before it is executed
    /// (in this mode slots execute only in order, so the executed prefixes
    /// add up to it, and a checkpoint needs nothing new).
    pub(crate) fn rr_next(&self) -> u64 {
        self.progress.prefix.iter().sum()
    }

    /// One past the last position `batch` names (0 if none).
    pub(crate) fn rr_frontier(&self, batch: &OBatch) -> u64 {
        batch.refs.iter().map(|r| self.rr_pos(*r) + 1).max().unwrap_or(0)
    }

    /// The slots an O-batch with `frontier` makes execute here, in order.
    pub(crate) fn rr_range(&self, frontier: u64) -> impl Iterator<Item = DRef> + '_ {
        (self.rr_next()..frontier).map(|p| self.rr_ref(p))
    }

    /// The highest slot of instance `i` that positions below `frontier` include.
    pub(crate) fn rr_implied_seq(&self, frontier: u64, i: u32) -> u64 {
        let (n, i) = (self.d.len() as u64, u64::from(i));
        if frontier > i {
            (frontier - 1 - i) / n + 1
        } else {
            0
        }
    }

    /// Whether the slots of `batch` are consecutive positions.
    pub(crate) fn rr_consecutive(&self, batch: &OBatch) -> bool {
        batch.refs.windows(2).all(|w| self.rr_pos(w[1]) == self.rr_pos(w[0]) + 1)
    }

    /// Whether the O-primary may order slot `r`: as in DQBFT, its
    /// D-PrePrepare accepted (or decided, on probation).
    fn rr_orderable(&self, r: DRef) -> bool {
        if self.on_probation(r.instance) {
            self.decided(r)
        } else {
            self.d[r.instance as usize].has_proposal(r.seq) || self.decided(r)
        }
    }

    /// O-primary: whether the next position to order can be ordered.
    pub(crate) fn rr_has_work(&self) -> bool {
        self.rr_orderable(self.rr_ref(self.rr_ordered.max(self.rr_next())))
    }

    /// O-primary: the next consecutive orderable positions (at most `max_refs`).
    pub(crate) fn rr_take_refs(&mut self) -> Vec<DRef> {
        let mut p = self.rr_ordered.max(self.rr_next());
        let mut refs = Vec::new();
        while refs.len() < self.cfg.max_refs && self.rr_orderable(self.rr_ref(p)) {
            refs.push(self.rr_ref(p));
            p += 1;
        }
        self.rr_ordered = p;
        refs
    }

    /// A new O-primary continues after what the order already holds.
    pub(crate) fn rr_view_changed(&mut self) {
        let logged = self.olog.values().flatten().map(|b| self.rr_frontier(b)).max().unwrap_or(0);
        self.rr_ordered = logged.max(self.rr_next());
    }

    /// Some instance has proposed slot `seq` or a later one.
    pub(crate) fn rr_note_seq(&mut self, seq: u64) {
        self.rr_high = self.rr_high.max(seq);
    }

    /// Whether our own instance `i` is behind the round: another instance
    /// has proposed a slot we have not.
    pub(crate) fn rr_behind(&self, i: u32) -> bool {
        self.round_robin() && self.d[i as usize].next_proposal() <= self.rr_high
    }

    /// The round-robin order waits for a slot nobody here holds while an
    /// instance is a round past it: after `request_timeout` (scaled by the
    /// instance's backoff) suspect that slot's coordinator. Requests
    /// stuck behind it then blame nobody else (their O-primary cannot order
    /// past the slot). Returns whether the order is stalled so.
    pub(crate) fn rr_stall_tick(&mut self, now: Time, out: &mut Out<F>) -> bool {
        let mut p = self.rr_next();
        let head = loop {
            let r = self.rr_ref(p);
            if !self.decided(r) && !self.d[r.instance as usize].has_proposal(r.seq) {
                break r;
            }
            p += 1;
        };
        if self.rr_high <= head.seq {
            self.rr_stall = None;
            return false;
        }
        let since = match self.rr_stall {
            Some((r, since)) if r == head => since,
            _ => {
                self.rr_stall = Some((head, now));
                now
            }
        };
        let d = &self.d[head.instance as usize];
        let timeout = self.cfg.request_timeout.saturating_mul(d.backoff());
        if d.active() && !d.is_primary() && !d.behind() && now.since(since) >= timeout {
            out.event(Event::Note(format!(
                "round-robin order waits for {head:?}: suspecting D{}'s coordinator",
                head.instance
            )));
            self.rr_stall = Some((head, now));
            self.with_d(now, head.instance, out, |e, a| e.start_view_change(a));
        }
        true
    }
}

//! The simulator's event queue: a monotone radix heap.
//!
//! Events come out in time order, and events of equal time in the order
//! they were pushed: exactly the order of a binary heap keyed by (time,
//! insertion counter), which the engine used before. A radix heap fits the
//! simulator because time never goes back: every event is pushed at or after
//! the time of the last one popped.
//!
//! Items sit in 65 buckets. Bucket 0 holds the items whose time equals
//! `last` (the time of the last pop), in push order; bucket `b ≥ 1` holds
//! items whose time differs from `last` first in bit `b − 1`. A pop takes
//! the front of bucket 0; when it is empty, the lowest non-empty bucket is
//! redistributed around its smallest time (which becomes `last`), keeping
//! push order. Each item moves to a lower bucket at most 64 times and in
//! practice two or three, always in sequential scans, where a binary heap of
//! millions of pending deliveries (a broadcast to 300 replicas schedules 300
//! of them) takes a cache miss per level on every pop.
//!
//! Items of equal time always share a bucket (their highest bit differing
//! from `last` is the same, and redistribution keeps it so), so push order
//! among them survives every redistribution.

use std::collections::VecDeque;

/// A priority queue of `(time, item)` for non-decreasing pops; see the module
/// comment. Items live in the buckets themselves, so popping reads bucket 0
/// front to back instead of chasing a handle into a slab.
pub(crate) struct EventQueue<T> {
    /// Time of the last pop (the reference the buckets are relative to).
    last: u64,
    len: usize,
    /// Items at `last`, in push order.
    now: VecDeque<(u64, T)>,
    /// `later[b - 1]` is bucket `b ≥ 1`.
    later: Vec<Vec<(u64, T)>>,
}

impl<T> EventQueue<T> {
    pub(crate) fn new() -> Self {
        EventQueue { last: 0, len: 0, now: VecDeque::new(), later: (0..64).map(|_| Vec::new()).collect() }
    }

    /// Bucket of `time` (≥ `last`): 0, or 1 + the highest bit where it differs from `last`.
    fn bucket(last: u64, time: u64) -> usize {
        if time == last {
            0
        } else {
            64 - (time ^ last).leading_zeros() as usize
        }
    }

    /// Add `item` at `time`, which must not be before the last pop's time (a
    /// time before it is treated as that time).
    pub(crate) fn push(&mut self, time: u64, item: T) {
        debug_assert!(time >= self.last, "event queue: pushed {time} after popping {}", self.last);
        let time = time.max(self.last);
        match Self::bucket(self.last, time) {
            0 => self.now.push_back((time, item)),
            b => self.later[b - 1].push((time, item)),
        }
        self.len += 1;
    }

    /// Number of items queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The earliest item, if its time is at most `limit`: removed and returned.
    pub(crate) fn pop_until(&mut self, limit: u64) -> Option<(u64, T)> {
        if self.now.is_empty() {
            let b = self.later.iter().position(|v| !v.is_empty())?;
            let min = self.later[b].iter().map(|(t, _)| *t).min()?;
            if min > limit {
                return None;
            }
            self.last = min;
            let mut items = std::mem::take(&mut self.later[b]);
            for (t, item) in items.drain(..) {
                match Self::bucket(min, t) {
                    0 => self.now.push_back((t, item)),
                    nb => {
                        debug_assert!(nb <= b);
                        self.later[nb - 1].push((t, item))
                    }
                }
            }
            // Keep the drained bucket's allocation.
            self.later[b] = items;
        } else if self.last > limit {
            return None;
        }
        let popped = self.now.pop_front()?;
        self.len -= 1;
        Some(popped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// The queue pops exactly what a binary heap keyed by (time, push counter) pops,
    /// with pushes interleaved with pops as the engine does them.
    #[test]
    fn same_order_as_a_heap_of_time_and_counter() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut q = EventQueue::new();
        let mut heap = BinaryHeap::new();
        let mut counter = 0u64;
        let mut now = 0u64;
        for round in 0..20_000u32 {
            for _ in 0..rng.gen_range(0..4) {
                // Many ties (same time), near and far times.
                let dt = match rng.gen_range(0..4) {
                    0 => 0,
                    1 => rng.gen_range(0..4),
                    2 => rng.gen_range(0..1_000),
                    _ => rng.gen_range(0..1u64 << 40),
                };
                counter += 1;
                q.push(now + dt, counter);
                heap.push(Reverse((now + dt, counter)));
            }
            let limit = if round % 7 == 0 { now + 10 } else { u64::MAX };
            let expect = match heap.peek() {
                Some(Reverse((t, _))) if *t <= limit => heap.pop().map(|Reverse(x)| x),
                _ => None,
            };
            let got = q.pop_until(limit);
            assert_eq!(got, expect, "round {round}");
            if let Some((t, _)) = got {
                now = t;
            }
            assert_eq!(q.len(), heap.len());
        }
        while let Some(Reverse(x)) = heap.pop() {
            assert_eq!(q.pop_until(u64::MAX), Some(x));
        }
        assert_eq!(q.pop_until(u64::MAX), None);
    }

    #[test]
    fn limit_leaves_later_items_and_allows_earlier_pushes() {
        let mut q = EventQueue::new();
        q.push(100, 1u32);
        assert_eq!(q.pop_until(50), None);
        // Something at 60 (after the last pop, before the queued item) still comes first.
        q.push(60, 2);
        assert_eq!(q.pop_until(u64::MAX), Some((60, 2)));
        assert_eq!(q.pop_until(u64::MAX), Some((100, 1)));
        assert_eq!(q.pop_until(u64::MAX), None);
    }
}

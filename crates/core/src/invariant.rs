//! Invariants of a replica's own state, checked at run time where they are
//! on: in debug builds, in this crate's tests, and wherever the `invariants`
//! feature is enabled (every protocol crate, the simulator and the CLI enable
//! it for their tests, which run in release). The `quorate` release binary
//! leaves it off (decision record 0016).
//!
//! Only the replica's own state is asserted: what others send is validated
//! and refused with an error, never asserted, since Byzantine replicas and
//! runs beyond f send anything.

use std::collections::BTreeMap;

/// Whether invariants are checked in this build.
pub const ENABLED: bool = cfg!(any(debug_assertions, test, feature = "invariants"));

/// Panics with "invariant violated: ..." if the condition is false and
/// invariants are on ([`ENABLED`]); otherwise costs nothing (the condition
/// is not evaluated).
#[macro_export]
macro_rules! invariant {
    ($cond:expr, $($arg:tt)+) => {
        if $crate::invariant::ENABLED && !($cond) {
            panic!("invariant violated: {}", format_args!($($arg)+));
        }
    };
}

/// Positions (decided sequence numbers, executed slots) reported in order,
/// each once: the next report is the next position, or a jump forward that
/// state transfer made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InOrder {
    next: u64,
}

impl InOrder {
    /// `next` is the first position to report.
    pub fn starting_at(next: u64) -> Self {
        InOrder { next }
    }
    /// The next position to report.
    pub fn next(&self) -> u64 {
        self.next
    }
    /// `pos` is reported: it must be the next one.
    pub fn report(&mut self, pos: u64, what: &str) {
        crate::invariant!(
            pos == self.next,
            "{what}: {pos} reported where {} was next (out of order or twice)",
            self.next
        );
        self.next = pos + 1;
    }
    /// Positions before `next` were covered without being reported (state
    /// transfer, recovery): never backwards.
    pub fn skip_to(&mut self, next: u64, what: &str) {
        crate::invariant!(next >= self.next, "{what}: moved back from {} to {next}", self.next);
        self.next = self.next.max(next);
    }
}

/// Whether no item occurs twice (the signers of a certificate).
pub fn distinct<T: Ord>(items: impl IntoIterator<Item = T>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    items.into_iter().all(|x| seen.insert(x))
}

/// The votes this replica cast, one per round `K` (a (view, seq) pair, an
/// epoch): casting a different value in a round it voted in is a violation,
/// repeating the same vote is not. Kept only while invariants are on;
/// rounds below a bound are dropped with [`OwnVotes::forget_below`].
#[derive(Clone, Debug)]
pub struct OwnVotes<K: Ord, V> {
    cast: BTreeMap<K, V>,
}

impl<K: Ord, V> Default for OwnVotes<K, V> {
    fn default() -> Self {
        OwnVotes { cast: BTreeMap::new() }
    }
}

impl<K: Ord + Clone + std::fmt::Debug, V: PartialEq + std::fmt::Debug> OwnVotes<K, V> {
    /// This replica votes `value` in `round`.
    pub fn cast(&mut self, round: K, value: V, what: &str) {
        if !ENABLED {
            return;
        }
        if let Some(earlier) = self.cast.get(&round) {
            crate::invariant!(
                *earlier == value,
                "{what}: a second, different vote in round {round:?}: {value:?} after {earlier:?}"
            );
            return;
        }
        self.cast.insert(round, value);
    }
    /// Forget rounds before `bound` (garbage collection).
    pub fn forget_below(&mut self, bound: &K) {
        if ENABLED {
            self.cast = self.cast.split_off(bound);
        }
    }
    /// Forget every vote (a restart with a fresh state).
    pub fn clear(&mut self) {
        self.cast.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_in_this_crates_tests() {
        const { assert!(ENABLED) };
    }

    #[test]
    fn in_order_accepts_next_and_forward_jumps() {
        let mut o = InOrder::starting_at(1);
        o.report(1, "t");
        o.report(2, "t");
        o.skip_to(10, "t");
        o.report(10, "t");
        assert_eq!(o.next(), 11);
    }

    #[test]
    #[should_panic(expected = "invariant violated: t: 2 reported where 3 was next")]
    fn in_order_fires_on_a_repeat() {
        let mut o = InOrder::starting_at(1);
        o.report(1, "t");
        o.report(2, "t");
        o.report(2, "t");
    }

    #[test]
    #[should_panic(expected = "invariant violated: t: 5 reported where 2 was next")]
    fn in_order_fires_on_a_gap() {
        let mut o = InOrder::starting_at(1);
        o.report(1, "t");
        o.report(5, "t");
    }

    #[test]
    #[should_panic(expected = "invariant violated: t: moved back")]
    fn in_order_fires_on_a_backward_skip() {
        let mut o = InOrder::starting_at(1);
        o.skip_to(10, "t");
        o.skip_to(3, "t");
    }

    #[test]
    fn distinct_finds_repeats() {
        assert!(distinct([1, 2, 3]));
        assert!(!distinct([1, 2, 1]));
    }

    #[test]
    fn own_votes_allow_repeats() {
        let mut v = OwnVotes::default();
        v.cast((0, 1), 'a', "t");
        v.cast((0, 1), 'a', "t");
        v.cast((0, 2), 'b', "t");
        v.forget_below(&(0, 2));
        v.cast((0, 1), 'c', "t");
    }

    #[test]
    #[should_panic(expected = "invariant violated: t: a second, different vote in round (0, 1)")]
    fn own_votes_fire_on_a_second_different_vote() {
        let mut v = OwnVotes::default();
        v.cast((0, 1), 'a', "t");
        v.cast((0, 1), 'b', "t");
    }
}

//! The new leader's choice of a safe value for the instance in progress
//! during a regency change: Cachin's Byzantine epoch consensus predicates
//! (`sound`, `binds`, `unbound`; thesis App. B, Cachin 2009), evaluated over
//! the consensus states carried by STOPDATA (thesis §3.6.3). In crash-fault
//! mode it is Paxos' rule: the value accepted in the highest epoch.
//!
//! Every replica evaluates the same function over the states in SYNC, so a
//! faulty leader cannot choose an unsafe value.

use crate::messages::InstanceState;
use quorate_core::crypto::Digest;

/// What the states say about the next value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SafeValue {
    /// The states are not conclusive yet: wait for more.
    Unsound,
    /// This value may have been decided: it must be proposed again.
    Bound(Digest),
    /// No value can have been decided: the leader may propose any valid value.
    Free,
}

/// Byzantine rule over `states` (one per distinct replica, about the same
/// instance), with quorum `q` = ⌈(n+f+1)/2⌉ and `f`.
pub fn byzantine(states: &[&InstanceState], q: usize, f: usize) -> SafeValue {
    let quorum_highest = |ts: u64, v: &Digest| {
        states.iter().filter(|s| s.valts < ts || (s.valts == ts && s.val.as_ref() == Some(v))).count() >= q
    };
    let certified =
        |ts: u64, v: &Digest| states.iter().filter(|s| s.writeset.iter().any(|(t, d)| *t >= ts && d == v)).count() > f;
    // Candidates: the (valts, val) pairs the states report.
    let mut candidates: Vec<(u64, Digest)> =
        states.iter().filter(|s| s.valts > 0).filter_map(|s| s.val.map(|v| (s.valts, v))).collect();
    candidates.sort();
    candidates.dedup();
    // Highest epoch first: a bound value from a later epoch supersedes.
    for (ts, v) in candidates.iter().rev() {
        if quorum_highest(*ts, v) && certified(*ts, v) {
            return SafeValue::Bound(*v);
        }
    }
    if states.iter().filter(|s| s.valts == 0).count() >= q {
        return SafeValue::Free;
    }
    SafeValue::Unsound
}

/// Crash rule over `states` from at least a majority: the value accepted in
/// the highest epoch, else free.
pub fn crash(states: &[&InstanceState]) -> SafeValue {
    match states.iter().filter(|s| s.valts > 0).max_by_key(|s| s.valts).and_then(|s| s.val) {
        Some(v) => SafeValue::Bound(v),
        None => SafeValue::Free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: u8) -> Digest {
        Digest([x; 32])
    }
    fn st(valts: u64, val: Option<u8>, ws: &[(u64, u8)]) -> InstanceState {
        InstanceState {
            instance: 1,
            valts,
            val: val.map(d),
            val_batch: None,
            writeset: ws.iter().map(|(t, v)| (*t, d(*v))).collect(),
        }
    }

    #[test]
    fn nothing_accepted_is_free() {
        let s = [st(0, None, &[]), st(0, None, &[]), st(0, None, &[])];
        let r: Vec<_> = s.iter().collect();
        assert_eq!(byzantine(&r, 3, 1), SafeValue::Free);
    }

    #[test]
    fn value_accepted_by_correct_quorum_is_bound() {
        // Two correct replicas accepted v=7 in epoch 1 (they saw its WRITE quorum); one saw nothing.
        let s = [st(1, Some(7), &[(1, 7)]), st(1, Some(7), &[(1, 7)]), st(0, None, &[(1, 7)])];
        let r: Vec<_> = s.iter().collect();
        assert_eq!(byzantine(&r, 3, 1), SafeValue::Bound(d(7)));
    }

    #[test]
    fn a_single_liar_cannot_bind_or_unbind() {
        // One Byzantine state claims v=9 accepted in a later epoch, without certification.
        let s = [st(2, Some(9), &[(2, 9)]), st(1, Some(7), &[(1, 7)]), st(0, None, &[(1, 7)])];
        let r: Vec<_> = s.iter().collect();
        // 9 is not certified (only 1 writeset has it); 7 is not quorum-highest (the liar's 2 > 1).
        assert_eq!(byzantine(&r, 3, 1), SafeValue::Unsound);
        // With the fourth (correct) state the decision is clear again.
        let s4 = [s[0].clone(), s[1].clone(), s[2].clone(), st(1, Some(7), &[(1, 7)])];
        let r4: Vec<_> = s4.iter().collect();
        assert_eq!(byzantine(&r4, 3, 1), SafeValue::Bound(d(7)));
    }

    #[test]
    fn later_epoch_wins() {
        let s = [st(2, Some(8), &[(1, 7), (2, 8)]), st(2, Some(8), &[(2, 8)]), st(1, Some(7), &[(1, 7)])];
        let r: Vec<_> = s.iter().collect();
        assert_eq!(byzantine(&r, 3, 1), SafeValue::Bound(d(8)));
    }

    #[test]
    fn crash_rule_picks_highest_epoch() {
        let s = [st(1, Some(7), &[]), st(3, Some(8), &[]), st(0, None, &[])];
        let r: Vec<_> = s.iter().collect();
        assert_eq!(crash(&r), SafeValue::Bound(d(8)));
        let s = [st(0, None, &[]), st(0, None, &[])];
        let r: Vec<_> = s.iter().collect();
        assert_eq!(crash(&r), SafeValue::Free);
    }
}

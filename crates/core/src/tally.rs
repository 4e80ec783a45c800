//! One vote tally for every protocol: votes of distinct replicas for values,
//! weighed by the [`Membership`] and judged against one of its named
//! thresholds ([`Membership::threshold`]).
//!
//! Voters are kept as bit sets ([`VoterSet`]): a quorum check is one lookup
//! and a set takes n/8 bytes per value (a map of voters took about 40 bytes
//! per voter). A [`Ballot`] answers [`Outcome::Won`], [`Outcome::Pending`]
//! or [`Outcome::Lost`] (no value can reach the threshold any more, even if
//! every replica that has not voted votes for it).

use crate::ids::ReplicaId;
use crate::membership::{Membership, Threshold};

/// A set of replicas, one bit each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VoterSet {
    words: Vec<u64>,
    len: usize,
}

impl VoterSet {
    /// Whether `r` is in the set.
    pub fn contains(&self, r: ReplicaId) -> bool {
        let i = r.index();
        self.words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Add `r`; whether it was new.
    pub fn insert(&mut self, r: ReplicaId) -> bool {
        let i = r.index();
        if self.words.len() <= i / 64 {
            self.words.resize(i / 64 + 1, 0);
        }
        let bit = 1 << (i % 64);
        let new = self.words[i / 64] & bit == 0;
        self.words[i / 64] |= bit;
        self.len += new as usize;
        new
    }

    /// Remove `r`; whether it was there.
    pub fn remove(&mut self, r: ReplicaId) -> bool {
        let i = r.index();
        let Some(w) = self.words.get_mut(i / 64) else { return false };
        let bit = 1 << (i % 64);
        let was = *w & bit != 0;
        *w &= !bit;
        self.len -= was as usize;
        was
    }

    /// Replicas in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The replicas, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.words.iter().enumerate().flat_map(|(k, bits)| {
            (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| ReplicaId((k * 64 + b) as u32))
        })
    }

    /// The total weight of the set's members in `m`.
    pub fn weight(&self, m: &Membership) -> u64 {
        self.iter().map(|r| m.weight(r)).sum()
    }
}

impl FromIterator<ReplicaId> for VoterSet {
    fn from_iter<I: IntoIterator<Item = ReplicaId>>(iter: I) -> Self {
        let mut s = VoterSet::default();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

/// What a ballot says against a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<V> {
    /// This value holds the threshold (the smallest such value, when a
    /// threshold below a majority lets several).
    Won(V),
    /// No value holds it yet, and one still can.
    Pending,
    /// No value can reach it any more: the votes left would not suffice.
    Lost,
}

/// How a vote was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cast {
    /// The voter's first vote: counted.
    New,
    /// The same vote again: ignored.
    Repeat,
    /// A different value from a replica that voted already: ignored (its
    /// first vote stands; a correct replica votes once).
    Conflict,
    /// Not a member: ignored.
    Stranger,
}

#[derive(Clone, Debug)]
struct Entry<V> {
    value: V,
    weight: u64,
    voters: VoterSet,
}

impl<V> Entry<V> {
    fn score(&self, t: Threshold) -> u64 {
        match t {
            Threshold::Votes(_) => self.weight,
            Threshold::Replicas(_) => self.voters.len() as u64,
        }
    }
}

impl Threshold {
    fn need(self) -> u64 {
        match self {
            Threshold::Votes(v) => v,
            Threshold::Replicas(r) => r as u64,
        }
    }
}

/// Votes of distinct replicas for values of type `V` (in a correct run,
/// one value).
#[derive(Clone, Debug)]
pub struct Ballot<V> {
    entries: Vec<Entry<V>>,
    voted: u64,
}

impl<V> Default for Ballot<V> {
    fn default() -> Self {
        Ballot { entries: Vec::new(), voted: 0 }
    }
}

impl<V: Ord + Clone> Ballot<V> {
    /// Record `voter`'s vote for `value`, weighed by `m`.
    pub fn cast(&mut self, m: &Membership, voter: ReplicaId, value: V) -> Cast {
        if !m.contains(voter) {
            return Cast::Stranger;
        }
        match self.vote_of(voter) {
            Some(v) if *v == value => return Cast::Repeat,
            Some(_) => return Cast::Conflict,
            None => {}
        }
        self.add(m.weight(voter), voter, value);
        Cast::New
    }

    /// Set `voter`'s vote to `value`, replacing an earlier one (for rules
    /// where a later message supersedes, e.g. a new view's votes).
    pub fn replace(&mut self, m: &Membership, voter: ReplicaId, value: V) {
        if !m.contains(voter) {
            return;
        }
        self.withdraw(m, voter);
        self.add(m.weight(voter), voter, value);
    }

    /// Remove `voter`'s vote, if any.
    pub fn withdraw(&mut self, m: &Membership, voter: ReplicaId) {
        if let Some(k) = self.entries.iter().position(|e| e.voters.contains(voter)) {
            let w = m.weight(voter);
            let e = &mut self.entries[k];
            e.voters.remove(voter);
            e.weight -= w;
            self.voted -= w;
            if e.voters.is_empty() {
                self.entries.swap_remove(k);
            }
        }
    }

    fn add(&mut self, weight: u64, voter: ReplicaId, value: V) {
        let k = match self.entries.iter().position(|e| e.value == value) {
            Some(k) => k,
            None => {
                self.entries.push(Entry { value, weight: 0, voters: VoterSet::default() });
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[k];
        e.voters.insert(voter);
        e.weight += weight;
        self.voted += weight;
    }

    /// `voter`'s vote, if any.
    pub fn vote_of(&self, voter: ReplicaId) -> Option<&V> {
        self.entries.iter().find(|e| e.voters.contains(voter)).map(|e| &e.value)
    }

    /// Votes (weight) for `value`.
    pub fn weight(&self, value: &V) -> u64 {
        self.entries.iter().find(|e| e.value == *value).map_or(0, |e| e.weight)
    }

    /// The replicas that voted for `value`.
    pub fn voters_for(&self, value: &V) -> Option<&VoterSet> {
        self.entries.iter().find(|e| e.value == *value).map(|e| &e.voters)
    }

    /// Distinct replicas that voted.
    pub fn voters(&self) -> usize {
        self.entries.iter().map(|e| e.voters.len()).sum()
    }

    /// Every replica that voted, with its vote, in no particular order.
    pub fn votes(&self) -> impl Iterator<Item = (ReplicaId, &V)> + '_ {
        self.entries.iter().flat_map(|e| e.voters.iter().map(move |r| (r, &e.value)))
    }

    /// The smallest value that holds `threshold`.
    pub fn reaching(&self, threshold: Threshold) -> Option<&V> {
        self.entries.iter().filter(|e| e.score(threshold) >= threshold.need()).map(|e| &e.value).min()
    }

    /// Won, pending or lost against `threshold` in `m`.
    pub fn outcome(&self, m: &Membership, threshold: Threshold) -> Outcome<&V> {
        if let Some(v) = self.reaching(threshold) {
            return Outcome::Won(v);
        }
        let left = match threshold {
            Threshold::Votes(_) => m.total_votes().saturating_sub(self.voted),
            Threshold::Replicas(_) => m.n().saturating_sub(self.voters()) as u64,
        };
        let best = self.entries.iter().map(|e| e.score(threshold)).max().unwrap_or(0);
        if best + left >= threshold.need() {
            Outcome::Pending
        } else {
            Outcome::Lost
        }
    }

    /// Forget every vote.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.voted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::FaultModel;
    use crate::quorum::QuorumSystem;

    fn four() -> Membership {
        Membership::of(&QuorumSystem::standard(4, 1, FaultModel::Byzantine))
    }

    #[test]
    fn voter_set_counts_each_replica_once() {
        let mut s = VoterSet::default();
        assert!(s.insert(ReplicaId(3)) && s.insert(ReplicaId(130)) && !s.insert(ReplicaId(3)));
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![ReplicaId(3), ReplicaId(130)]);
        assert!(s.remove(ReplicaId(130)) && !s.remove(ReplicaId(130)) && !s.remove(ReplicaId(999)));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn first_vote_counts_and_quorum_wins() {
        let m = four();
        let q = m.threshold("quorum").unwrap();
        let mut b = Ballot::default();
        assert_eq!(b.cast(&m, ReplicaId(0), 7u8), Cast::New);
        assert_eq!(b.cast(&m, ReplicaId(0), 7u8), Cast::Repeat);
        assert_eq!(b.cast(&m, ReplicaId(0), 8u8), Cast::Conflict);
        assert_eq!(b.cast(&m, ReplicaId(9), 7u8), Cast::Stranger);
        assert_eq!(b.cast(&m, ReplicaId(1), 7u8), Cast::New);
        assert_eq!(b.outcome(&m, q), Outcome::Pending);
        assert_eq!(b.cast(&m, ReplicaId(2), 8u8), Cast::New);
        assert_eq!(b.outcome(&m, q), Outcome::Pending);
        assert_eq!(b.cast(&m, ReplicaId(3), 7u8), Cast::New);
        assert_eq!(b.outcome(&m, q), Outcome::Won(&7));
        assert_eq!(b.voters(), 4);
        assert_eq!(b.voters_for(&7).map(|s| s.len()), Some(3));
    }

    #[test]
    fn split_votes_lose() {
        let m = four();
        let mut b = Ballot::default();
        b.cast(&m, ReplicaId(0), 1u8);
        b.cast(&m, ReplicaId(1), 2u8);
        // 1 + 2 left < 3: only if the two left both vote 1 or 2 can it win.
        assert_eq!(b.outcome(&m, Threshold::Votes(3)), Outcome::Pending);
        b.cast(&m, ReplicaId(2), 3u8);
        assert_eq!(b.outcome(&m, Threshold::Votes(3)), Outcome::Lost);
        // Two replicas for one value: a witness threshold of f+1 is won.
        assert_eq!(b.outcome(&m, Threshold::Replicas(2)), Outcome::Pending);
        b.cast(&m, ReplicaId(3), 3u8);
        assert_eq!(b.outcome(&m, Threshold::Replicas(2)), Outcome::Won(&3));
    }

    #[test]
    fn replace_moves_a_vote() {
        let m = four();
        let mut b = Ballot::default();
        b.cast(&m, ReplicaId(0), 1u8);
        b.replace(&m, ReplicaId(0), 2u8);
        assert_eq!(b.weight(&1), 0);
        assert_eq!(b.weight(&2), 1);
        assert_eq!(b.vote_of(ReplicaId(0)), Some(&2));
        assert_eq!(b.voters(), 1);
    }

    #[test]
    fn weights_are_honoured() {
        // WHEAT, BFT f = 1: weights {2,2,1,1,1}, N_v = 7, F_v = 2, Q_v = 5.
        let sys = QuorumSystem::standard(5, 1, FaultModel::Byzantine);
        let m = Membership::weighted_of(&sys, vec![2, 2, 1, 1, 1]).unwrap();
        let q = m.threshold("quorum").unwrap();
        assert_eq!(q, Threshold::Votes(5));
        let mut b = Ballot::default();
        b.cast(&m, ReplicaId(0), 1u8);
        b.cast(&m, ReplicaId(2), 1u8);
        b.cast(&m, ReplicaId(3), 1u8);
        assert_eq!(b.outcome(&m, q), Outcome::Pending, "three replicas hold 4 votes of 5");
        b.cast(&m, ReplicaId(1), 1u8);
        assert_eq!(b.outcome(&m, q), Outcome::Won(&1));
        // A witness kind counts replicas: the two heavy ones are 2 of f+1 = 2.
        let mut w = Ballot::default();
        w.cast(&m, ReplicaId(0), 1u8);
        assert_eq!(w.reaching(m.threshold("weak").unwrap()), None);
        w.cast(&m, ReplicaId(4), 1u8);
        assert_eq!(w.reaching(m.threshold("weak").unwrap()), Some(&1));
    }
}

//! Membership (who the replicas are, f, weights) and the quorum sizes its
//! protocol uses.
//!
//! Unweighted, the sizes come from the protocol's [`QuorumSystem`]
//! ([`Membership::of`]; [`crate::machine::membership_for`] builds one for a
//! protocol and refuses configurations it does not accept). With WHEAT-style
//! vote weights `w_i`, total votes `N_v`, and `F_v = f * V_max` votes that
//! may be lost, a Byzantine quorum holds `⌈(N_v + F_v + 1) / 2⌉` votes and a
//! crash quorum `⌈(N_v + 1) / 2⌉` (the formulas of [`crate::quorum`]).

use crate::ids::ReplicaId;
use crate::quorum::{byzantine_quorum, crash_quorum, QuorumSystem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Which faults the deployment tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultModel {
    /// Up to f replicas may behave arbitrarily.
    Byzantine,
    /// Up to f replicas may crash.
    Crash,
}

/// A wrong membership.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MembershipError {
    /// Too few replicas for f.
    #[error("{n} replicas cannot tolerate f = {f} ({model:?} needs at least {needed})")]
    TooFewReplicas {
        /// Replicas given.
        n: usize,
        /// Faults asked for.
        f: usize,
        /// Fault model.
        model: FaultModel,
        /// Minimum n for this f.
        needed: usize,
    },
    /// Weights do not match the replicas.
    #[error("weights: expected {expected} entries, got {got}")]
    Weights {
        /// n
        expected: usize,
        /// weights given
        got: usize,
    },
    /// A zero weight.
    #[error("weight of replica {0} is zero")]
    ZeroWeight(usize),
}

/// The replicas of one configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    n: usize,
    f: usize,
    model: FaultModel,
    weights: Vec<u32>,
    total_votes: u64,
    lost_votes: u64,
    quorum: usize,
    weak: usize,
}

impl Membership {
    /// Unweighted membership of `n` replicas tolerating `f` faults with the
    /// model's standard quorums ([`QuorumSystem::standard`]); `min_n` is
    /// what the protocol needs for that f (3f+1, 2f+1, 5f+1, ...). Hosts use
    /// [`crate::machine::membership_for`], which asks the protocol.
    pub fn new(n: usize, f: usize, model: FaultModel, min_n: usize) -> Result<Self, MembershipError> {
        Self::weighted(vec![1; n], f, model, min_n)
    }

    /// Unweighted membership with the sizes of `system` (which the caller has
    /// checked, as [`crate::machine::membership_for`] does).
    pub fn of(system: &QuorumSystem) -> Self {
        let n = system.n();
        Membership {
            n,
            f: system.f(),
            model: system.model(),
            weights: vec![1; n],
            total_votes: n as u64,
            lost_votes: system.f() as u64,
            quorum: system.quorum(),
            weak: system.weak(),
        }
    }

    /// Weighted membership (WHEAT): `weights[i]` votes for replica i.
    pub fn weighted(weights: Vec<u32>, f: usize, model: FaultModel, min_n: usize) -> Result<Self, MembershipError> {
        let n = weights.len();
        if n < min_n || n == 0 {
            return Err(MembershipError::TooFewReplicas { n, f, model, needed: min_n.max(1) });
        }
        if let Some(i) = weights.iter().position(|w| *w == 0) {
            return Err(MembershipError::ZeroWeight(i));
        }
        let total_votes: u64 = weights.iter().map(|w| *w as u64).sum();
        let v_max = weights.iter().copied().max().unwrap_or(1) as u64;
        let system = QuorumSystem::standard(n, f, model);
        let (quorum, weak) = (system.quorum(), system.weak());
        Ok(Membership { n, f, model, weights, total_votes, lost_votes: f as u64 * v_max, quorum, weak })
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Faults tolerated.
    pub fn f(&self) -> usize {
        self.f
    }
    /// Fault model.
    pub fn model(&self) -> FaultModel {
        self.model
    }
    /// All replica ids.
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        (0..self.n as u32).map(ReplicaId)
    }
    /// Every replica, starting at `home` and going round: the order in which a
    /// client whose nearest replica is `home` tries them when distances are unknown.
    pub fn round_from(&self, home: ReplicaId) -> Vec<ReplicaId> {
        let n = self.n() as u32;
        (0..n).map(|k| ReplicaId((home.0 % n.max(1) + k) % n.max(1))).collect()
    }
    /// Whether `r` is a member.
    pub fn contains(&self, r: ReplicaId) -> bool {
        r.index() < self.n
    }
    /// Votes of replica `r` (0 for non-members).
    pub fn weight(&self, r: ReplicaId) -> u64 {
        self.weights.get(r.index()).copied().unwrap_or(0) as u64
    }
    /// Votes a quorum must hold: unweighted, [`Membership::quorum`];
    /// weighted, Byzantine `⌈(N_v+F_v+1)/2⌉` or crash `⌈(N_v+1)/2⌉`.
    pub fn quorum_votes(&self) -> u64 {
        if self.weights.iter().all(|w| *w == 1) {
            return self.quorum as u64;
        }
        match self.model {
            FaultModel::Byzantine => byzantine_quorum(self.total_votes, self.lost_votes),
            FaultModel::Crash => crash_quorum(self.total_votes),
        }
    }
    /// Agreement quorum size in replicas (unweighted): the protocol's
    /// [`QuorumSystem::quorum`] (`⌈(n+f+1)/2⌉`, `⌈(n+1)/2⌉`, f+1 with trusted counters).
    pub fn quorum(&self) -> usize {
        self.quorum
    }
    /// Witness set size (f+1 when Byzantine): enough that one replica is correct.
    pub fn weak(&self) -> usize {
        self.weak
    }
    /// Whether the given distinct replicas hold a quorum of votes.
    pub fn is_quorum<'a>(&self, members: impl IntoIterator<Item = &'a ReplicaId>) -> bool {
        let votes: u64 = members.into_iter().map(|r| self.weight(*r)).sum();
        votes >= self.quorum_votes()
    }
    /// f+1: enough replicas that one is correct.
    pub fn f_plus_one(&self) -> usize {
        self.f + 1
    }
    /// n−f: as many replicas as can be waited for.
    pub fn n_minus_f(&self) -> usize {
        self.n - self.f
    }
}

/// Collects votes of distinct replicas for values of type `V` and tells when
/// some value reaches a quorum. A replica's first vote counts; later votes of
/// the same replica are ignored (a correct replica votes once).
#[derive(Clone, Debug)]
pub struct Votes<V: Ord + Clone> {
    by_voter: BTreeMap<ReplicaId, V>,
    by_value: BTreeMap<V, u64>,
}

impl<V: Ord + Clone> Default for Votes<V> {
    fn default() -> Self {
        Votes { by_voter: BTreeMap::new(), by_value: BTreeMap::new() }
    }
}

impl<V: Ord + Clone> Votes<V> {
    /// Record `voter`'s vote; returns false if it had voted already.
    pub fn add(&mut self, m: &Membership, voter: ReplicaId, value: V) -> bool {
        if !m.contains(voter) || self.by_voter.contains_key(&voter) {
            return false;
        }
        *self.by_value.entry(value.clone()).or_insert(0) += m.weight(voter);
        self.by_voter.insert(voter, value);
        true
    }
    /// A value that holds at least `threshold` votes.
    pub fn reached(&self, threshold: u64) -> Option<&V> {
        self.by_value.iter().find(|(_, w)| **w >= threshold).map(|(v, _)| v)
    }
    /// The value that holds a quorum, if any.
    pub fn quorum(&self, m: &Membership) -> Option<&V> {
        self.reached(m.quorum_votes())
    }
    /// Votes for `value`.
    pub fn count(&self, value: &V) -> u64 {
        self.by_value.get(value).copied().unwrap_or(0)
    }
    /// Replicas that voted for `value`.
    pub fn voters_for<'a>(&'a self, value: &'a V) -> impl Iterator<Item = ReplicaId> + 'a {
        self.by_voter.iter().filter(move |(_, v)| *v == value).map(|(r, _)| *r)
    }
    /// The vote of `voter`.
    pub fn vote_of(&self, voter: ReplicaId) -> Option<&V> {
        self.by_voter.get(&voter)
    }
    /// Distinct voters so far.
    pub fn voters(&self) -> usize {
        self.by_voter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bft_quorums() {
        for f in 1..=5 {
            let n = 3 * f + 1;
            let m = Membership::new(n, f, FaultModel::Byzantine, n).unwrap();
            assert_eq!(m.quorum(), 2 * f + 1);
            assert_eq!(m.quorum_votes(), 2 * f as u64 + 1);
            // Any two quorums intersect in at least f+1 replicas.
            assert!(2 * m.quorum() - n > f);
        }
        // n larger than 3f+1: ⌈(n+f+1)/2⌉
        let m = Membership::new(5, 1, FaultModel::Byzantine, 4).unwrap();
        assert_eq!(m.quorum(), 4);
        let m = Membership::new(6, 1, FaultModel::Byzantine, 4).unwrap();
        assert_eq!(m.quorum(), 4);
    }

    #[test]
    fn cft_quorums() {
        for f in 1..=5 {
            let n = 2 * f + 1;
            let m = Membership::new(n, f, FaultModel::Crash, n).unwrap();
            assert_eq!(m.quorum(), f + 1);
            assert!(2 * m.quorum() > n);
        }
    }

    #[test]
    fn too_few_replicas() {
        assert!(matches!(Membership::new(3, 1, FaultModel::Byzantine, 4), Err(MembershipError::TooFewReplicas { .. })));
        assert!(Membership::weighted(vec![1, 0, 1, 1], 1, FaultModel::Byzantine, 4).is_err());
    }

    #[test]
    fn wheat_weights() {
        // BFT f=1, Δ=1: weights {2,2,1,1,1}, N_v=7, F_v=2, Q_v=5.
        let m = Membership::weighted(vec![2, 2, 1, 1, 1], 1, FaultModel::Byzantine, 4).unwrap();
        assert_eq!(m.quorum_votes(), 5);
        assert!(m.is_quorum(&[ReplicaId(0), ReplicaId(1), ReplicaId(2)]));
        assert!(!m.is_quorum(&[ReplicaId(0), ReplicaId(2), ReplicaId(3)]));
        assert!(m.is_quorum(&[ReplicaId(0), ReplicaId(2), ReplicaId(3), ReplicaId(4)]));
        // CFT f=1, Δ=1: {2,1,1,1}, N_v=5, Q_v=3.
        let m = Membership::weighted(vec![2, 1, 1, 1], 1, FaultModel::Crash, 3).unwrap();
        assert_eq!(m.quorum_votes(), 3);
        assert!(m.is_quorum(&[ReplicaId(0), ReplicaId(3)]));
        assert!(m.is_quorum(&[ReplicaId(1), ReplicaId(2), ReplicaId(3)]));
        assert!(!m.is_quorum(&[ReplicaId(1), ReplicaId(2)]));
    }

    #[test]
    fn votes_count_once_per_voter() {
        let m = Membership::new(4, 1, FaultModel::Byzantine, 4).unwrap();
        let mut v = Votes::default();
        assert!(v.add(&m, ReplicaId(0), 7u8));
        assert!(!v.add(&m, ReplicaId(0), 7u8));
        assert!(!v.add(&m, ReplicaId(0), 8u8));
        assert!(!v.add(&m, ReplicaId(9), 7u8));
        assert!(v.add(&m, ReplicaId(1), 7u8));
        assert_eq!(v.quorum(&m), None);
        assert!(v.add(&m, ReplicaId(2), 8u8));
        assert_eq!(v.quorum(&m), None);
        assert!(v.add(&m, ReplicaId(3), 7u8));
        assert_eq!(v.quorum(&m), Some(&7));
    }
}

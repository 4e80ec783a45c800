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
use crate::quorum::{byzantine_quorum, crash_quorum, Intersection, QuorumSystem, Role};
use crate::tally::VoterSet;
use serde::{Deserialize, Serialize};
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
#[derive(Clone, Debug, Error, PartialEq, Eq)]
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
    /// The protocol's quorums count replicas, not votes.
    #[error("weights cannot be used with {0} quorums (their argument counts replicas)")]
    Unweighted(&'static str),
    /// The protocol's rules count replicas (its `WEIGHTED_VOTES` is off).
    #[error("its quorum rules count replicas, not votes: every weight must be 1")]
    CountsReplicas,
    /// So skewed that `F_v` votes silent leave too few for a quorum.
    #[error("a quorum needs {quorum} votes but only {available} are left when F_v = f * V_max are silent")]
    Unavailable {
        /// Votes a quorum needs.
        quorum: u64,
        /// N_v − F_v.
        available: u64,
    },
}

/// How much a named kind of quorum needs ([`Membership::threshold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Threshold {
    /// Votes (weights summed): agreement and fast kinds.
    Votes(u64),
    /// Distinct replicas whatever their weights: witness kinds (f+1 replicas
    /// hold a correct one however the votes are spread).
    Replicas(usize),
}

/// The replicas of one configuration: who they are, their votes, the
/// protocol's named quorums, and the configuration's epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    n: usize,
    f: usize,
    model: FaultModel,
    epoch: u64,
    weights: Vec<u32>,
    total_votes: u64,
    quorum: usize,
    weak: usize,
    kinds: Vec<(&'static str, Threshold)>,
}

impl Membership {
    /// Unweighted membership of `n` replicas tolerating `f` faults with the
    /// model's standard quorums ([`QuorumSystem::standard`]); `min_n` is
    /// what the protocol needs for that f (3f+1, 2f+1, 5f+1, ...). Hosts use
    /// [`crate::machine::membership_for`], which asks the protocol.
    pub fn new(n: usize, f: usize, model: FaultModel, min_n: usize) -> Result<Self, MembershipError> {
        if n < min_n || n == 0 {
            return Err(MembershipError::TooFewReplicas { n, f, model, needed: min_n.max(1) });
        }
        Ok(Self::of(&QuorumSystem::standard(n, f, model)))
    }

    /// Unweighted membership with the sizes of `system` (which the caller has
    /// checked, as [`crate::machine::membership_for`] does).
    pub fn of(system: &QuorumSystem) -> Self {
        let kinds = system
            .kinds()
            .iter()
            .map(|k| {
                let t = match k.role {
                    Role::Witness => Threshold::Replicas(k.size),
                    Role::Agreement | Role::Fast => Threshold::Votes(k.size as u64),
                };
                (k.name, t)
            })
            .collect();
        let n = system.n();
        Membership {
            n,
            f: system.f(),
            model: system.model(),
            epoch: 0,
            weights: vec![1; n],
            total_votes: n as u64,
            quorum: system.quorum(),
            weak: system.weak(),
            kinds,
        }
    }

    /// Weighted membership (WHEAT): `weights[i]` votes for replica i. With
    /// `N_v` votes in all and `F_v = f * V_max` votes that may be lost, a
    /// Byzantine agreement quorum holds `⌈(N_v + F_v + 1) / 2⌉` votes and a
    /// crash one `⌈(N_v + 1) / 2⌉`; witness kinds still count replicas. All
    /// weights 1 give exactly [`Membership::of`]. Refused: a zero weight, a
    /// count other than n, a system with fast or trusted-counter quorums
    /// (their arguments count replicas), and weights so skewed that a quorum
    /// cannot be gathered with `F_v` votes silent.
    pub fn weighted_of(system: &QuorumSystem, weights: Vec<u32>) -> Result<Self, MembershipError> {
        let n = system.n();
        if weights.len() != n {
            return Err(MembershipError::Weights { expected: n, got: weights.len() });
        }
        if let Some(i) = weights.iter().position(|w| *w == 0) {
            return Err(MembershipError::ZeroWeight(i));
        }
        let mut m = Membership::of(system);
        if weights.iter().all(|w| *w == 1) {
            return Ok(m);
        }
        if system.intersection() == Intersection::Trusted {
            return Err(MembershipError::Unweighted("trusted counters"));
        }
        if let Some(k) = system.kinds().iter().find(|k| k.role == Role::Fast) {
            return Err(MembershipError::Unweighted(k.name));
        }
        let total: u64 = weights.iter().map(|w| *w as u64).sum();
        let lost = system.f() as u64 * weights.iter().copied().max().unwrap_or(1) as u64;
        let q = match system.model() {
            FaultModel::Byzantine => byzantine_quorum(total, lost),
            FaultModel::Crash => crash_quorum(total),
        };
        if total - lost < q {
            return Err(MembershipError::Unavailable { quorum: q, available: total - lost });
        }
        for (_, t) in m.kinds.iter_mut() {
            if let Threshold::Votes(v) = t {
                *v = q;
            }
        }
        m.weights = weights;
        m.total_votes = total;
        Ok(m)
    }

    /// The same replicas in configuration `epoch`.
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// The configuration's epoch (0 until a reconfiguration).
    pub fn epoch(&self) -> u64 {
        self.epoch
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
    /// Whether some replica has a weight other than 1.
    pub fn is_weighted(&self) -> bool {
        self.total_votes != self.n as u64
    }
    /// Votes of all replicas.
    pub fn total_votes(&self) -> u64 {
        self.total_votes
    }
    /// What the kind of quorum named `name` needs (None: the protocol's
    /// system has no such kind).
    pub fn threshold(&self, name: &str) -> Option<Threshold> {
        self.kinds.iter().find(|(k, _)| *k == name).map(|(_, t)| *t)
    }
    /// Votes an agreement quorum must hold: unweighted, [`Membership::quorum`];
    /// weighted, Byzantine `⌈(N_v+F_v+1)/2⌉` or crash `⌈(N_v+1)/2⌉`.
    pub fn quorum_votes(&self) -> u64 {
        match self.kinds.iter().find(|(_, t)| matches!(t, Threshold::Votes(_))) {
            Some((_, Threshold::Votes(v))) => *v,
            _ => self.quorum as u64,
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
    /// Whether the given replicas (a repeat counts once) hold a quorum of votes.
    pub fn is_quorum<'a>(&self, members: impl IntoIterator<Item = &'a ReplicaId>) -> bool {
        let set: VoterSet = members.into_iter().copied().filter(|r| self.contains(*r)).collect();
        set.weight(self) >= self.quorum_votes()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn byz(n: usize, f: usize) -> Membership {
        Membership::of(&QuorumSystem::standard(n, f, FaultModel::Byzantine))
    }

    #[test]
    fn bft_quorums() {
        for f in 1..=5 {
            let n = 3 * f + 1;
            let m = byz(n, f);
            assert_eq!(m.quorum(), 2 * f + 1);
            assert_eq!(m.quorum_votes(), 2 * f as u64 + 1);
            assert_eq!(m.threshold("quorum"), Some(Threshold::Votes(2 * f as u64 + 1)));
            assert_eq!(m.threshold("weak"), Some(Threshold::Replicas(f + 1)));
            assert_eq!(m.threshold("nope"), None);
            // Any two quorums intersect in at least f+1 replicas.
            assert!(2 * m.quorum() - n > f);
        }
        // n larger than 3f+1: ⌈(n+f+1)/2⌉
        assert_eq!(byz(5, 1).quorum(), 4);
        assert_eq!(byz(6, 1).quorum(), 4);
    }

    #[test]
    fn cft_quorums() {
        for f in 1..=5 {
            let n = 2 * f + 1;
            let m = Membership::of(&QuorumSystem::standard(n, f, FaultModel::Crash));
            assert_eq!(m.quorum(), f + 1);
            assert!(2 * m.quorum() > n);
        }
    }

    #[test]
    fn too_few_replicas() {
        assert!(matches!(Membership::new(3, 1, FaultModel::Byzantine, 4), Err(MembershipError::TooFewReplicas { .. })));
    }

    #[test]
    fn bad_weights_are_refused() {
        let sys = QuorumSystem::standard(4, 1, FaultModel::Byzantine);
        assert_eq!(Membership::weighted_of(&sys, vec![1, 0, 1, 1]), Err(MembershipError::ZeroWeight(1)));
        assert_eq!(Membership::weighted_of(&sys, vec![1, 1, 1]), Err(MembershipError::Weights { expected: 4, got: 3 }));
        // One replica with most of the votes: F_v = 10 leaves 3 of 13.
        assert!(matches!(Membership::weighted_of(&sys, vec![10, 1, 1, 1]), Err(MembershipError::Unavailable { .. })));
        let trusted = QuorumSystem::trusted(3, 1, FaultModel::Byzantine, &["commit"]);
        assert_eq!(
            Membership::weighted_of(&trusted, vec![2, 1, 1]),
            Err(MembershipError::Unweighted("trusted counters"))
        );
        let fast = sys.clone().with("fast", 4, Role::Fast);
        assert_eq!(Membership::weighted_of(&fast, vec![2, 1, 1, 1]), Err(MembershipError::Unweighted("fast")));
    }

    #[test]
    fn unit_weights_change_nothing() {
        let sys = QuorumSystem::byzantine(7, 2, FaultModel::Byzantine, &["commit"], &["join"]);
        assert_eq!(Membership::weighted_of(&sys, vec![1; 7]).unwrap(), Membership::of(&sys));
    }

    #[test]
    fn wheat_weights() {
        // BFT f=1, Δ=1: weights {2,2,1,1,1}, N_v=7, F_v=2, Q_v=5.
        let sys = QuorumSystem::byzantine(5, 1, FaultModel::Byzantine, &["commit"], &["join"]);
        let m = Membership::weighted_of(&sys, vec![2, 2, 1, 1, 1]).unwrap();
        assert_eq!(m.quorum_votes(), 5);
        assert_eq!(m.threshold("commit"), Some(Threshold::Votes(5)));
        assert_eq!(m.threshold("join"), Some(Threshold::Replicas(2)));
        assert!(m.is_weighted());
        assert!(m.is_quorum(&[ReplicaId(0), ReplicaId(1), ReplicaId(2)]));
        assert!(!m.is_quorum(&[ReplicaId(0), ReplicaId(2), ReplicaId(3)]));
        assert!(!m.is_quorum(&[ReplicaId(0), ReplicaId(0), ReplicaId(2)]), "a repeat counts once");
        assert!(m.is_quorum(&[ReplicaId(0), ReplicaId(2), ReplicaId(3), ReplicaId(4)]));
        // CFT f=1, Δ=1: {2,1,1,1}, N_v=5, Q_v=3.
        let m = Membership::weighted_of(&QuorumSystem::standard(4, 1, FaultModel::Crash), vec![2, 1, 1, 1]).unwrap();
        assert_eq!(m.quorum_votes(), 3);
        assert!(m.is_quorum(&[ReplicaId(0), ReplicaId(3)]));
        assert!(m.is_quorum(&[ReplicaId(1), ReplicaId(2), ReplicaId(3)]));
        assert!(!m.is_quorum(&[ReplicaId(1), ReplicaId(2)]));
    }

    #[test]
    fn epochs() {
        let m = byz(4, 1);
        assert_eq!(m.epoch(), 0);
        assert_eq!(m.with_epoch(3).epoch(), 3);
    }
}

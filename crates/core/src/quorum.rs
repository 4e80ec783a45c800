//! Quorum systems: which (n, f) a protocol accepts and how large each of its
//! quorums is. The quorum formulas live here once; [`Membership`] and the
//! engines read their sizes from a [`QuorumSystem`] (decision 0011).
//!
//! A protocol states its system with [`crate::machine::Protocol::quorum_system`];
//! [`QuorumSystem::check`] proves, by arithmetic on sizes, that any two quorums
//! intersect as the system's fault assumption needs and that every quorum is
//! reachable with f replicas silent.
//!
//! [`Membership`]: crate::membership::Membership

use crate::membership::FaultModel;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Byzantine quorum of `total` votes of which `lost` may be faulty:
/// `⌈(total + lost + 1) / 2⌉` (2f+1 for n = 3f+1).
pub fn byzantine_quorum(total: u64, lost: u64) -> u64 {
    (total + lost + 1).div_ceil(2)
}

/// Crash quorum of `total` votes: a majority, `⌈(total + 1) / 2⌉` (f+1 for n = 2f+1).
pub fn crash_quorum(total: u64) -> u64 {
    (total + 1).div_ceil(2)
}

/// What two quorums must share for the protocol's argument to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Intersection {
    /// f+1 replicas, so at least one correct (arbitrary faults, signatures or MACs).
    Byzantine,
    /// One replica, whose trusted counter cannot equivocate; and each quorum
    /// holds a correct replica (f+1), so it is not made of liars only
    /// (MinBFT / Hybster: trusted subsystems).
    Trusted,
    /// One replica (crash faults).
    Crash,
}

impl Intersection {
    /// Replicas any two quorums must share.
    pub fn overlap(self, f: usize) -> usize {
        match self {
            Intersection::Byzantine => f + 1,
            Intersection::Trusted | Intersection::Crash => 1,
        }
    }
    /// Replicas a set must hold so that one of them is correct (resp. alive).
    pub fn witness(self, f: usize) -> usize {
        match self {
            Intersection::Byzantine | Intersection::Trusted => f + 1,
            Intersection::Crash => 1,
        }
    }
    fn describe(self, f: usize) -> String {
        match self {
            Intersection::Byzantine => format!("{} replicas (f+1)", f + 1),
            Intersection::Trusted => "one replica (trusted counters)".into(),
            Intersection::Crash => "one replica".into(),
        }
    }
}

/// What a kind of quorum is for, and so what it must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// An agreement quorum: any two quorums of any agreement kinds intersect
    /// as [`Intersection::overlap`] says, and one can be gathered with f silent.
    Agreement,
    /// A fast-path quorum: it need not be reachable with f silent, but any
    /// fast quorum and any agreement quorum share f+1 correct replicas
    /// (2f+1 replicas when Byzantine), so a recovery quorum sees a fast
    /// decision from f+1 correct replicas.
    Fast,
    /// A witness set: it holds one correct replica (f+1 when Byzantine or
    /// trusted), and can be gathered with f silent. Witness sets need not intersect.
    Witness,
}

/// One named kind of quorum with its size.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuorumKind {
    /// Name (e.g. "commit", "view-change").
    pub name: &'static str,
    /// Replicas it holds.
    pub size: usize,
    /// What it must satisfy.
    pub role: Role,
}

/// The quorums of one configuration of one protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuorumSystem {
    n: usize,
    f: usize,
    model: FaultModel,
    intersection: Intersection,
    kinds: Vec<QuorumKind>,
}

/// A configuration a protocol does not accept, naming its rule.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// (n, f, model) outside the protocol's accepted set.
    #[error("{protocol} needs {rule}; got n = {n}, f = {f}")]
    Rule {
        /// Protocol name.
        protocol: &'static str,
        /// The rule, e.g. "n = 2f+1".
        rule: String,
        /// Replicas given.
        n: usize,
        /// Faults asked for.
        f: usize,
    },
    /// The protocol's system fails [`QuorumSystem::check`] (a bug in the protocol's rule).
    #[error("{protocol} with n = {n}, f = {f}: {violation}")]
    Unsafe {
        /// Protocol name.
        protocol: &'static str,
        /// Replicas.
        n: usize,
        /// Faults.
        f: usize,
        /// What failed.
        violation: QuorumViolation,
    },
}

impl ConfigError {
    /// The refusal of (n, f) by `protocol`'s `rule`.
    pub fn rule(protocol: &'static str, rule: impl Into<String>, n: usize, f: usize) -> Self {
        ConfigError::Rule { protocol, rule: rule.into(), n, f }
    }
}

/// Why a quorum system is unsafe or cannot make progress.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum QuorumViolation {
    /// Two quorums may share fewer replicas than needed.
    #[error("two quorums ({a} of {a_size}, {b} of {b_size}) may share only {shared} of {n} replicas; they must share {needed}")]
    Intersection {
        /// First kind.
        a: &'static str,
        /// Its size.
        a_size: usize,
        /// Second kind.
        b: &'static str,
        /// Its size.
        b_size: usize,
        /// n.
        n: usize,
        /// The least overlap.
        shared: isize,
        /// What they must share.
        needed: String,
    },
    /// A quorum may hold no correct replica.
    #[error("a {kind} quorum of {size} may hold only faulty replicas (needs {needed})")]
    NoCorrect {
        /// Kind.
        kind: &'static str,
        /// Size.
        size: usize,
        /// Least size with a correct replica.
        needed: usize,
    },
    /// A quorum cannot be gathered with f replicas silent.
    #[error("a {kind} quorum of {size} cannot be gathered from the {available} replicas left when f = {f} are silent")]
    Unavailable {
        /// Kind.
        kind: &'static str,
        /// Size.
        size: usize,
        /// n − f.
        available: usize,
        /// f.
        f: usize,
    },
    /// A kind larger than n or empty.
    #[error("a {kind} quorum of {size} is not a set of 1..={n} replicas")]
    Size {
        /// Kind.
        kind: &'static str,
        /// Size.
        size: usize,
        /// n.
        n: usize,
    },
}

impl QuorumSystem {
    /// An empty system for `n` replicas tolerating `f` faults; add kinds with [`QuorumSystem::with`].
    pub fn new(n: usize, f: usize, model: FaultModel, intersection: Intersection) -> Self {
        QuorumSystem { n, f, model, intersection, kinds: Vec::new() }
    }

    /// Byzantine agreement kinds of `⌈(n+f+1)/2⌉` each, and witness kinds of f+1.
    pub fn byzantine(
        n: usize,
        f: usize,
        model: FaultModel,
        agreement: &[&'static str],
        witness: &[&'static str],
    ) -> Self {
        let q = byzantine_quorum(n as u64, f as u64) as usize;
        Self::new(n, f, model, Intersection::Byzantine).with_all(agreement, q, Role::Agreement).with_all(
            witness,
            f + 1,
            Role::Witness,
        )
    }

    /// Crash agreement kinds of `⌈(n+1)/2⌉` each, and witness kinds of one replica.
    pub fn crash(n: usize, f: usize, agreement: &[&'static str], witness: &[&'static str]) -> Self {
        let q = crash_quorum(n as u64) as usize;
        Self::new(n, f, FaultModel::Crash, Intersection::Crash).with_all(agreement, q, Role::Agreement).with_all(
            witness,
            1,
            Role::Witness,
        )
    }

    /// Trusted-counter agreement kinds of f+1 each (safe only for n = 2f+1).
    pub fn trusted(n: usize, f: usize, model: FaultModel, agreement: &[&'static str]) -> Self {
        Self::new(n, f, model, Intersection::Trusted).with_all(agreement, f + 1, Role::Agreement)
    }

    /// The standard system of a fault model: one agreement kind "quorum"
    /// (Byzantine or crash formula) and one witness kind "weak".
    pub fn standard(n: usize, f: usize, model: FaultModel) -> Self {
        match model {
            FaultModel::Byzantine => Self::byzantine(n, f, model, &["quorum"], &["weak"]),
            FaultModel::Crash => Self::crash(n, f, &["quorum"], &["weak"]),
        }
    }

    /// Add one kind.
    pub fn with(mut self, name: &'static str, size: usize, role: Role) -> Self {
        self.kinds.push(QuorumKind { name, size, role });
        self
    }

    fn with_all(self, names: &[&'static str], size: usize, role: Role) -> Self {
        names.iter().fold(self, |s, name| s.with(name, size, role))
    }

    /// Replicas.
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
    /// What quorums must share.
    pub fn intersection(&self) -> Intersection {
        self.intersection
    }
    /// Every kind.
    pub fn kinds(&self) -> &[QuorumKind] {
        &self.kinds
    }
    /// Size of the kind named `name`.
    pub fn size(&self, name: &str) -> Option<usize> {
        self.kinds.iter().find(|k| k.name == name).map(|k| k.size)
    }
    /// The first agreement kind's size: what a replica waits for to decide
    /// ([`crate::membership::Membership::quorum`]).
    pub fn quorum(&self) -> usize {
        self.first(Role::Agreement).unwrap_or(self.n)
    }
    /// The first witness kind's size (else f+1, or 1 for crashes): enough
    /// that one replica is correct ([`crate::membership::Membership::weak`]).
    pub fn weak(&self) -> usize {
        self.first(Role::Witness).unwrap_or_else(|| self.intersection.witness(self.f))
    }
    fn first(&self, role: Role) -> Option<usize> {
        self.kinds.iter().find(|k| k.role == role).map(|k| k.size)
    }

    /// Whether the sizes make the system safe and live: every pair of
    /// agreement kinds (a kind with itself included) shares
    /// [`Intersection::overlap`] replicas, a fast kind shares 2·witness − 1
    /// with every agreement kind (witness correct replicas), every kind
    /// holds a correct replica, agreement and witness kinds are reachable
    /// with f silent.
    pub fn check(&self) -> Result<(), QuorumViolation> {
        let (n, f, x) = (self.n, self.f, self.intersection);
        for k in &self.kinds {
            if k.size == 0 || k.size > n {
                return Err(QuorumViolation::Size { kind: k.name, size: k.size, n });
            }
            if k.size < x.witness(f) {
                return Err(QuorumViolation::NoCorrect { kind: k.name, size: k.size, needed: x.witness(f) });
            }
            if k.role != Role::Fast && k.size + f > n {
                return Err(QuorumViolation::Unavailable { kind: k.name, size: k.size, available: n - f.min(n), f });
            }
        }
        for (i, a) in self.kinds.iter().enumerate() {
            for b in &self.kinds[i..] {
                let needed = match (a.role, b.role) {
                    (Role::Agreement, Role::Agreement) => x.overlap(f),
                    (Role::Fast, Role::Agreement) | (Role::Agreement, Role::Fast) => 2 * x.witness(f) - 1,
                    _ => continue,
                };
                let shared = a.size as isize + b.size as isize - n as isize;
                if shared < needed as isize {
                    let needed = match (a.role, b.role) {
                        (Role::Agreement, Role::Agreement) => x.describe(f),
                        _ => format!("{needed} replicas (f+1 correct)"),
                    };
                    return Err(QuorumViolation::Intersection {
                        a: a.name,
                        a_size: a.size,
                        b: b.name,
                        b_size: b.size,
                        n,
                        shared,
                        needed,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_systems_hold_at_their_minimum_and_fail_below() {
        for f in 0..=100 {
            for n in (3 * f + 1)..=(3 * f + 8) {
                QuorumSystem::standard(n, f, FaultModel::Byzantine).check().unwrap();
            }
            for n in (2 * f + 1)..=(2 * f + 8) {
                QuorumSystem::crash(n, f, &["quorum"], &[]).check().unwrap();
            }
            QuorumSystem::trusted(2 * f + 1, f, FaultModel::Byzantine, &["commit"]).check().unwrap();
            if f > 0 {
                // Below the minimum the formula cannot be both safe and live.
                assert!(QuorumSystem::standard(3 * f, f, FaultModel::Byzantine).check().is_err());
                assert!(QuorumSystem::crash(2 * f, f, &["quorum"], &[]).check().is_err());
            }
        }
    }

    /// The split brain of issue 17: f+1 of 4 replicas with trusted counters.
    #[test]
    fn check_fires_on_f_plus_one_of_four() {
        let q = QuorumSystem::trusted(4, 1, FaultModel::Byzantine, &["commit"]);
        let e = q.check().unwrap_err();
        assert!(matches!(e, QuorumViolation::Intersection { shared: 0, .. }), "{e}");
        assert!(e.to_string().contains("may share only 0 of 4 replicas"), "{e}");
        // Byzantine f+1 overlap, violated by 2f of 3f+1.
        let q =
            QuorumSystem::new(4, 1, FaultModel::Byzantine, Intersection::Byzantine).with("prepare", 2, Role::Agreement);
        assert!(matches!(q.check(), Err(QuorumViolation::Intersection { .. })));
        // Pairs of kinds: a 3-of-4 commit with a 2-of-4 view change share 1 < f+1.
        let q = QuorumSystem::byzantine(4, 1, FaultModel::Byzantine, &["commit"], &[]).with(
            "view-change",
            2,
            Role::Agreement,
        );
        assert!(matches!(q.check(), Err(QuorumViolation::Intersection { b: "view-change", .. })));
        // A fast quorum must leave f+1 correct in every recovery quorum.
        let q = QuorumSystem::byzantine(4, 1, FaultModel::Byzantine, &["slow"], &[]).with("fast", 3, Role::Fast);
        assert!(matches!(q.check(), Err(QuorumViolation::Intersection { a: "slow", b: "fast", .. })));
        // Unavailable: all n with one silent; a witness of f.
        let q = QuorumSystem::new(4, 1, FaultModel::Byzantine, Intersection::Byzantine).with("all", 4, Role::Agreement);
        assert!(matches!(q.check(), Err(QuorumViolation::Unavailable { .. })));
        let q = QuorumSystem::new(4, 1, FaultModel::Byzantine, Intersection::Byzantine).with("weak", 1, Role::Witness);
        assert!(matches!(q.check(), Err(QuorumViolation::NoCorrect { .. })));
        let q = QuorumSystem::new(4, 1, FaultModel::Byzantine, Intersection::Byzantine).with("big", 5, Role::Fast);
        assert!(matches!(q.check(), Err(QuorumViolation::Size { .. })));
    }

    #[test]
    fn rule_error_names_the_rule() {
        let e = ConfigError::rule("hybrid", "n = 2f+1", 4, 1);
        assert_eq!(e.to_string(), "hybrid needs n = 2f+1; got n = 4, f = 1");
    }
}

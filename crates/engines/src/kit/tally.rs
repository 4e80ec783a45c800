//! The engines' vote tally: the core's [`Ballot`] (one tally for every
//! protocol, decision 0011), with the engines' rule for a replica that votes
//! twice differently in one view (refused and reported).

use crate::instance::Actions;
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;
use quorate_core::membership::{Membership, Threshold};
use quorate_core::tally::{Ballot, Cast};

/// Votes of one kind at one sequence number, by digest (a correct run has one).
#[derive(Clone, Debug, Default)]
pub(crate) struct Votes(Ballot<Digest>);

impl Votes {
    /// `from`'s vote, if any.
    pub(crate) fn get(&self, from: ReplicaId) -> Option<Digest> {
        self.0.vote_of(from).copied()
    }

    /// Set `from`'s vote (replacing an earlier one: our own, or a replayed record).
    pub(crate) fn insert(&mut self, m: &Membership, from: ReplicaId, digest: Digest) {
        self.0.replace(m, from, digest);
    }

    /// Record `from`'s vote for `digest`: whether it is new (a repeat is
    /// ignored; a different one from the same replica is refused).
    pub(crate) fn record<V, M, R>(
        &mut self,
        m: &Membership,
        from: ReplicaId,
        digest: Digest,
        conflict: &'static str,
        out: &mut Actions<V, M, R>,
    ) -> bool {
        match self.0.cast(m, from, digest) {
            Cast::New => true,
            Cast::Conflict => {
                out.reject(from, conflict);
                false
            }
            Cast::Repeat | Cast::Stranger => false,
        }
    }

    /// Votes for `digest`.
    pub(crate) fn count(&self, digest: &Digest) -> usize {
        self.0.weight(digest) as usize
    }

    /// The smallest digest with at least `n` votes.
    pub(crate) fn reaching(&self, n: usize) -> Option<Digest> {
        self.0.reaching(Threshold::Votes(n as u64)).copied()
    }

    /// Forget every vote.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The replicas that voted, in no particular order.
    #[cfg(test)]
    pub(crate) fn voters(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.0.votes().map(|(r, _)| r)
    }
}

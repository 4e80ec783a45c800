//! The vote tally of the engines (decision 0017): one place, so that a
//! core tally (issue 18's quorum systems) can replace it later.

use crate::instance::Actions;
use quorate_core::crypto::Digest;
use quorate_core::ids::ReplicaId;

/// Votes of one kind at one sequence number: for each digest voted for, its
/// count and the set of voters as a bit set (a correct run has one digest).
/// A quorum check is one lookup, where counting a map of votes made each
/// vote cost O(n), and the sets take n/8 bytes per digest, where a map took
/// about 40 bytes per voter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Votes {
    digests: Vec<(Digest, usize, Vec<u64>)>,
}

fn has_bit(set: &[u64], r: ReplicaId) -> bool {
    let i = r.0 as usize;
    set.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

impl Votes {
    /// `from`'s vote, if any.
    pub(crate) fn get(&self, from: ReplicaId) -> Option<Digest> {
        self.digests.iter().find(|(_, _, set)| has_bit(set, from)).map(|(d, _, _)| *d)
    }

    /// Set `from`'s vote (replacing an earlier one).
    pub(crate) fn insert(&mut self, from: ReplicaId, digest: Digest) {
        let i = from.0 as usize;
        if let Some(e) = self.digests.iter_mut().find(|(_, _, set)| has_bit(set, from)) {
            e.1 -= 1;
            e.2[i / 64] &= !(1 << (i % 64));
        }
        let e = match self.digests.iter().position(|(d, _, _)| *d == digest) {
            Some(k) => &mut self.digests[k],
            None => {
                self.digests.push((digest, 0, Vec::new()));
                self.digests.last_mut().expect("just pushed")
            }
        };
        if e.2.len() <= i / 64 {
            e.2.resize(i / 64 + 1, 0);
        }
        e.2[i / 64] |= 1 << (i % 64);
        e.1 += 1;
    }

    /// Record `from`'s vote for `digest`: whether it is new (a repeat is
    /// ignored; a different one from the same replica is refused).
    pub(crate) fn record<V, M, R>(
        &mut self,
        from: ReplicaId,
        digest: Digest,
        conflict: &'static str,
        out: &mut Actions<V, M, R>,
    ) -> bool {
        match self.get(from) {
            Some(d) if d == digest => false,
            Some(_) => {
                out.reject(from, conflict);
                false
            }
            None => {
                self.insert(from, digest);
                true
            }
        }
    }

    /// Votes for `digest`.
    pub(crate) fn count(&self, digest: &Digest) -> usize {
        self.digests.iter().find(|(d, _, _)| d == digest).map_or(0, |e| e.1)
    }

    /// The smallest digest with at least `n` votes.
    pub(crate) fn reaching(&self, n: usize) -> Option<Digest> {
        self.digests.iter().filter(|(_, c, _)| *c >= n).map(|(d, _, _)| *d).min()
    }

    /// Forget every vote.
    pub(crate) fn clear(&mut self) {
        self.digests = Vec::new();
    }

    /// The replicas that voted, in no particular order.
    #[cfg(test)]
    pub(crate) fn voters(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.digests.iter().flat_map(|(_, _, set)| {
            set.iter().enumerate().flat_map(|(w, bits)| {
                (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| ReplicaId((w * 64 + b) as u32))
            })
        })
    }
}

//! Beyond-f collusion against one PBFT instance (the `collude-split`
//! strategy of every protocol that runs PBFT engines: PBFT itself, DQPBFT's
//! O-instance): the colluders' shared story of a second value.

use crate::pbft::messages::bytes;
use crate::pbft::{Auth, PbftMsg, Value};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::{NodeId, ReplicaId};
use std::collections::BTreeMap;

/// collude-split: the replicas shown the second value. Replicas 0 and 1
/// are the colluders and see the truth; of the others, the odd ones are
/// shown the second batch.
pub fn shown_forgery(r: ReplicaId) -> bool {
    r.0 >= 2 && r.0 % 2 == 1
}

/// collude-split's story for one PBFT instance, shared with the protocols
/// that run PBFT engines (DQPBFT's O-instance): every colluder derives the
/// same second value from each true one it sees, and tells the replicas
/// [`shown_forgery`] picks that the primary proposed it and that it voted
/// for it, MAC'd with its own keys.
pub struct Collusion<V> {
    /// The second value and its digest, per true value's digest.
    forged: BTreeMap<Digest, (V, Digest)>,
    /// The second value of a true one (None: it has none).
    second: fn(&V) -> Option<V>,
}

impl<V: Value> Collusion<V> {
    /// A colluder whose second values come from `second`.
    pub fn new(second: fn(&V) -> Option<V>) -> Self {
        Collusion { forged: BTreeMap::new(), second }
    }

    /// Remember the second value of `value`.
    pub fn learn(&mut self, value: &V, crypto: &dyn Crypto) {
        let d = value.digest(crypto);
        if self.forged.contains_key(&d) {
            return;
        }
        let Some(second) = (self.second)(value) else { return };
        let d2 = second.digest(crypto);
        self.forged.insert(d, (second, d2));
        if self.forged.len() > 100_000 {
            self.forged.pop_first();
        }
    }

    /// `msg`, a message of instance `instance` for `to`, as the colluders'
    /// story for `to`: PRE-PREPAREs, PREPAREs and COMMITs of a true value
    /// become ones of its second value for the replicas shown the forgery.
    pub fn story(&mut self, instance: u64, to: ReplicaId, msg: PbftMsg<V>, crypto: &dyn Crypto) -> PbftMsg<V> {
        let mac = |b: Vec<u8>| Auth(vec![crypto.mac(NodeId::Replica(to), &b)]);
        if let PbftMsg::PrePrepare { value, .. } = &msg {
            self.learn(value, crypto);
        }
        let forged = |d: &Digest| self.forged.get(d).filter(|_| shown_forgery(to));
        match msg {
            PbftMsg::PrePrepare { view, seq, value, auth } => match forged(&value.digest(crypto)) {
                Some((second, d2)) => PbftMsg::PrePrepare {
                    view,
                    seq,
                    value: second.clone(),
                    auth: mac(bytes::pre_prepare(instance, view, seq, d2)),
                },
                None => PbftMsg::PrePrepare { view, seq, value, auth },
            },
            PbftMsg::Prepare { view, seq, digest, auth } => match forged(&digest) {
                Some((_, d2)) => {
                    PbftMsg::Prepare { view, seq, digest: *d2, auth: mac(bytes::prepare(instance, view, seq, d2)) }
                }
                None => PbftMsg::Prepare { view, seq, digest, auth },
            },
            PbftMsg::Commit { view, seq, digest, auth } => match forged(&digest) {
                Some((_, d2)) => {
                    PbftMsg::Commit { view, seq, digest: *d2, auth: mac(bytes::commit(instance, view, seq, d2)) }
                }
                None => PbftMsg::Commit { view, seq, digest, auth },
            },
            other => other,
        }
    }
}

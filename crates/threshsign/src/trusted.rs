//! The trusted boundary: the [`ThreshSign`] trait (what an enclave would
//! expose) and [`SoftThreshSign`], its software implementation for the
//! simulator, tests and the runtime until an SGX backend exists.
//!
//! Inside: the trusted BLS key share, the certificate key, the counters, and
//! the two functions that sign under a counter. Outside (free functions in
//! [`crate::verify`] over public material): aggregation and all verification.

use crate::dealer::TrustedKeys;
use crate::types::{Cert, CertStatement, CounterId, InstanceId, Share, Statement, Trust};
use ed25519_dalek::Signer as _;
use quorate_core::{Digest, ReplicaId};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use thiserror::Error;

/// Why the trusted subsystem refused to sign.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not an instance of this subsystem.
    #[error("unknown instance {0:?}")]
    UnknownInstance(InstanceId),
    /// An untrusted instance (π): sign it with [`crate::PlainSigner`].
    #[error("instance {0:?} is not a trusted instance")]
    NotTrusted(InstanceId),
    /// A trusted instance asked of the untrusted [`crate::PlainSigner`]:
    /// only the trusted subsystem signs it.
    #[error("instance {0:?} is signed only by the trusted subsystem")]
    TrustedOnly(InstanceId),
    /// The instance has no such counter.
    #[error("instance {instance:?} has no counter {counter:?}")]
    UnknownCounter {
        /// Instance.
        instance: InstanceId,
        /// Counter asked for.
        counter: CounterId,
    },
    /// Monotonicity: the requested value is below the counter's.
    #[error("counter is at {current}, cannot go back to {requested}")]
    BelowCurrent {
        /// The counter's value.
        current: u64,
        /// The value asked for.
        requested: u64,
    },
    /// Uniqueness: an independent share at the counter's current value,
    /// which is already bound to another message (or was reached by a
    /// continuing certificate).
    #[error("counter value {value} is already used")]
    ValueUsed {
        /// The value asked for.
        value: u64,
    },
}

/// The trusted subsystem's narrow interface (§4.1.2 of the Destiny paper,
/// adapted as `docs/decisions/0008-threshsign.md` says). Only a hash enters.
///
/// Signing is in order: an implementation serialises calls (`&mut self`),
/// and a counter only moves forward.
pub trait ThreshSign {
    /// The replica this subsystem belongs to (its signer index).
    fn replica(&self) -> ReplicaId;

    /// Independent Counter Signature Share: only if `new_value` is greater
    /// than the counter's value, which then becomes `new_value`; the share
    /// signs (instance, counter, new_value, msg_hash).
    ///
    /// Asking again for the value the counter is at with the hash the last
    /// share at that value signed returns that share again (BLS is
    /// deterministic): the message is the same, so Uniqueness holds, and a
    /// host that lost a share (crash before sending) can get it back. Any
    /// other hash at that value is [`Refused::ValueUsed`].
    fn independent_share(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
        msg_hash: &Digest,
    ) -> Result<Share, Refused>;

    /// Continuing Counter Certificate: only if `new_value` is at least the
    /// counter's value, which then becomes `new_value`; an Ed25519 signature
    /// of this replica on (replica, instance, counter, old value, new value,
    /// msg_hash), checkable by anyone with [`crate::verify_certificate`].
    fn continuing_certificate(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
        msg_hash: &Digest,
    ) -> Result<Cert, Refused>;

    /// The counter's value (0 before first use). Reveals nothing a
    /// certificate with `new_value` = current would not.
    fn current_value(&self, instance: InstanceId, counter: CounterId) -> Result<u64, Refused>;
}

struct CounterState {
    value: u64,
    /// Hash signed by the independent share made at `value`, if one was.
    shared_at_value: Option<Digest>,
}

/// Software trusted subsystem. Its keys and counters are private and have
/// no accessor; `Debug` prints the replica only; it is not `Clone` (a copy
/// would be a second set of counters under the same key, i.e. a rollback).
pub struct SoftThreshSign {
    replica: ReplicaId,
    share: Option<blsttc::SecretKeyShare>,
    cert_key: ed25519_dalek::SigningKey,
    /// Trusted instances only; a counter per id `0..counters`.
    counters: BTreeMap<InstanceId, Vec<CounterState>>,
    /// Untrusted instances of the table, to refuse them with a clear reason.
    untrusted: BTreeSet<InstanceId>,
}

impl fmt::Debug for SoftThreshSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftThreshSign({:?}, {} instances)", self.replica, self.counters.len())
    }
}

impl SoftThreshSign {
    /// Provision a subsystem (the mock's stand-in for loading keys into an
    /// enclave after attestation). All counters start at 0.
    pub fn new(keys: TrustedKeys) -> SoftThreshSign {
        let counters = keys
            .instances
            .values()
            .filter(|i| i.trust == Trust::Trusted)
            .map(|i| {
                let cs = (0..i.counters).map(|_| CounterState { value: 0, shared_at_value: None }).collect();
                (i.id, cs)
            })
            .collect();
        let untrusted = keys.instances.values().filter(|i| i.trust == Trust::Untrusted).map(|i| i.id).collect();
        SoftThreshSign { replica: keys.replica, share: keys.share, cert_key: keys.cert_key, counters, untrusted }
    }

    fn missing(&self, instance: InstanceId) -> Refused {
        if self.untrusted.contains(&instance) {
            Refused::NotTrusted(instance)
        } else {
            Refused::UnknownInstance(instance)
        }
    }

    fn counter(&self, instance: InstanceId, counter: CounterId) -> Result<&CounterState, Refused> {
        self.counters
            .get(&instance)
            .ok_or_else(|| self.missing(instance))?
            .get(counter.0 as usize)
            .ok_or(Refused::UnknownCounter { instance, counter })
    }

    fn counter_mut(&mut self, instance: InstanceId, counter: CounterId) -> Result<&mut CounterState, Refused> {
        if !self.counters.contains_key(&instance) {
            return Err(self.missing(instance));
        }
        self.counters
            .get_mut(&instance)
            .ok_or(Refused::UnknownInstance(instance))?
            .get_mut(counter.0 as usize)
            .ok_or(Refused::UnknownCounter { instance, counter })
    }
}

impl ThreshSign for SoftThreshSign {
    fn replica(&self) -> ReplicaId {
        self.replica
    }

    fn independent_share(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
        msg_hash: &Digest,
    ) -> Result<Share, Refused> {
        if self.share.is_none() {
            // Cannot happen: the dealer deals a trusted share whenever a trusted instance exists.
            return Err(Refused::NotTrusted(instance));
        }
        let c = self.counter_mut(instance, counter)?;
        if new_value < c.value {
            return Err(Refused::BelowCurrent { current: c.value, requested: new_value });
        }
        if new_value == c.value && c.shared_at_value != Some(*msg_hash) {
            return Err(Refused::ValueUsed { value: new_value });
        }
        c.value = new_value;
        c.shared_at_value = Some(*msg_hash);
        let statement = Statement { instance, counter, value: new_value, msg_hash: *msg_hash };
        let key = self.share.as_ref().ok_or(Refused::NotTrusted(instance))?;
        let sig = key.sign(statement.signed_bytes(Trust::Trusted));
        Ok(Share { statement, signer: self.replica, sig })
    }

    fn continuing_certificate(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
        msg_hash: &Digest,
    ) -> Result<Cert, Refused> {
        let replica = self.replica;
        let c = self.counter_mut(instance, counter)?;
        if new_value < c.value {
            return Err(Refused::BelowCurrent { current: c.value, requested: new_value });
        }
        let old_value = c.value;
        if new_value > old_value {
            c.shared_at_value = None;
        }
        c.value = new_value;
        let statement = CertStatement { signer: replica, instance, counter, old_value, new_value, msg_hash: *msg_hash };
        let sig = self.cert_key.sign(&statement.signed_bytes()).to_bytes();
        Ok(Cert { statement, sig })
    }

    fn current_value(&self, instance: InstanceId, counter: CounterId) -> Result<u64, Refused> {
        self.counter(instance, counter).map(|c| c.value)
    }
}

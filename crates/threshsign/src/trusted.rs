//! The trusted boundary: the [`ThreshSign`] trait (what an enclave would
//! expose) and [`SoftThreshSign`], its software implementation for tests and
//! the runtime until an SGX backend exists (the simulator's stand-in is
//! [`crate::ModelledThreshSign`]; both keep their counters with one private
//! `Counters`, so the rules exist once).
//!
//! Inside: the trusted BLS key share, the certificate key, the counters, and
//! the two functions that sign under a counter. Outside (a [`crate::Scheme`]
//! over public material): aggregation and all verification.

use crate::dealer::TrustedKeys;
use crate::types::{Cert, CertStatement, CounterId, InstanceId, InstanceSpec, Share, Statement, Trust};
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
    /// An untrusted instance (π): sign it with a [`crate::PlainSign`].
    #[error("instance {0:?} is not a trusted instance")]
    NotTrusted(InstanceId),
    /// A trusted instance asked of an untrusted [`crate::PlainSign`]: only
    /// the trusted subsystem signs it.
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
    /// share at that value signed returns that share again (signing is
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
    /// counter's value, which then becomes `new_value`; a signature of this
    /// replica (Ed25519 for real keys) on (replica, instance, counter, old
    /// value, new value, msg_hash), checkable by anyone with
    /// [`crate::Scheme::verify_certificate`].
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

/// The counter rules of a trusted subsystem, in one place for every
/// implementation: a counter per (trusted instance, id), Monotonicity and
/// Uniqueness. An implementation asks first and signs only if allowed.
pub(crate) struct Counters {
    /// Trusted instances only; a counter per id `0..counters`.
    counters: BTreeMap<InstanceId, Vec<CounterState>>,
    /// Untrusted instances of the table, to refuse them with a clear reason.
    untrusted: BTreeSet<InstanceId>,
}

impl Counters {
    /// All counters of the table's trusted instances, at 0.
    pub(crate) fn new<'a>(instances: impl IntoIterator<Item = &'a InstanceSpec>) -> Counters {
        let mut counters = BTreeMap::new();
        let mut untrusted = BTreeSet::new();
        for i in instances {
            match i.trust {
                Trust::Trusted => {
                    let cs = (0..i.counters).map(|_| CounterState { value: 0, shared_at_value: None }).collect();
                    counters.insert(i.id, cs);
                }
                Trust::Untrusted => {
                    untrusted.insert(i.id);
                }
            }
        }
        Counters { counters, untrusted }
    }

    /// Number of trusted instances.
    pub(crate) fn instances(&self) -> usize {
        self.counters.len()
    }

    fn missing(&self, instance: InstanceId) -> Refused {
        if self.untrusted.contains(&instance) {
            Refused::NotTrusted(instance)
        } else {
            Refused::UnknownInstance(instance)
        }
    }

    fn get(&self, instance: InstanceId, counter: CounterId) -> Result<&CounterState, Refused> {
        self.counters
            .get(&instance)
            .ok_or_else(|| self.missing(instance))?
            .get(counter.0 as usize)
            .ok_or(Refused::UnknownCounter { instance, counter })
    }

    fn get_mut(&mut self, instance: InstanceId, counter: CounterId) -> Result<&mut CounterState, Refused> {
        let missing = self.missing(instance);
        self.counters
            .get_mut(&instance)
            .ok_or(missing)?
            .get_mut(counter.0 as usize)
            .ok_or(Refused::UnknownCounter { instance, counter })
    }

    /// May an independent share bind `new_value` to `msg_hash`? If so the
    /// counter is at `new_value` afterwards.
    pub(crate) fn independent(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
        msg_hash: &Digest,
    ) -> Result<(), Refused> {
        let c = self.get_mut(instance, counter)?;
        if new_value < c.value {
            return Err(Refused::BelowCurrent { current: c.value, requested: new_value });
        }
        if new_value == c.value && c.shared_at_value != Some(*msg_hash) {
            return Err(Refused::ValueUsed { value: new_value });
        }
        c.value = new_value;
        c.shared_at_value = Some(*msg_hash);
        Ok(())
    }

    /// May a continuing certificate move the counter to `new_value`? If so,
    /// returns the old value; the counter is at `new_value` afterwards.
    pub(crate) fn continuing(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
    ) -> Result<u64, Refused> {
        let c = self.get_mut(instance, counter)?;
        if new_value < c.value {
            return Err(Refused::BelowCurrent { current: c.value, requested: new_value });
        }
        let old_value = c.value;
        if new_value > old_value {
            c.shared_at_value = None;
        }
        c.value = new_value;
        Ok(old_value)
    }

    /// The counter's value.
    pub(crate) fn current(&self, instance: InstanceId, counter: CounterId) -> Result<u64, Refused> {
        self.get(instance, counter).map(|c| c.value)
    }
}

/// Software trusted subsystem. Its keys and counters are private and have
/// no accessor; `Debug` prints the replica only; it is not `Clone` (a copy
/// would be a second set of counters under the same key, i.e. a rollback).
pub struct SoftThreshSign {
    replica: ReplicaId,
    share: Option<blsttc::SecretKeyShare>,
    cert_key: ed25519_dalek::SigningKey,
    counters: Counters,
}

impl fmt::Debug for SoftThreshSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftThreshSign({:?}, {} instances)", self.replica, self.counters.instances())
    }
}

impl SoftThreshSign {
    /// Provision a subsystem (the mock's stand-in for loading keys into an
    /// enclave after attestation). All counters start at 0.
    pub fn new(keys: TrustedKeys) -> SoftThreshSign {
        let counters = Counters::new(keys.instances.values());
        SoftThreshSign { replica: keys.replica, share: keys.share, cert_key: keys.cert_key, counters }
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
        // None cannot happen: the dealer deals a trusted share whenever a trusted instance exists.
        let Some(key) = self.share.as_ref() else { return Err(Refused::NotTrusted(instance)) };
        self.counters.independent(instance, counter, new_value, msg_hash)?;
        let statement = Statement { instance, counter, value: new_value, msg_hash: *msg_hash };
        let sig = key.sign(statement.signed_bytes(Trust::Trusted)).to_bytes();
        Ok(Share { statement, signer: self.replica, sig })
    }

    fn continuing_certificate(
        &mut self,
        instance: InstanceId,
        counter: CounterId,
        new_value: u64,
        msg_hash: &Digest,
    ) -> Result<Cert, Refused> {
        let old_value = self.counters.continuing(instance, counter, new_value)?;
        let statement =
            CertStatement { signer: self.replica, instance, counter, old_value, new_value, msg_hash: *msg_hash };
        let sig = self.cert_key.sign(&statement.signed_bytes()).to_bytes();
        Ok(Cert { statement, sig })
    }

    fn current_value(&self, instance: InstanceId, counter: CounterId) -> Result<u64, Refused> {
        self.counters.current(instance, counter)
    }
}

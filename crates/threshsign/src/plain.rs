//! Untrusted threshold signing (Destiny's π, execution results): the same
//! shares and checks as trusted instances, with its own key set and domain
//! tag, and no counter. A faulty replica can sign anything with it; a
//! combined signature still needs t shares, so at t = f+1 at least one
//! correct replica signed.

use crate::dealer::UntrustedKeys;
use crate::trusted::Refused;
use crate::types::{CounterId, InstanceId, InstanceSpec, Share, Statement, Trust};
use quorate_core::{Digest, ReplicaId};
use std::collections::BTreeMap;
use std::fmt;

/// A replica's signer for untrusted instances (π), held by the replica
/// itself: [`PlainSigner`] with BLS keys, [`crate::ModelledPlainSigner`] in
/// the simulator.
pub trait PlainSign {
    /// A share on (instance, counter, value, msg_hash) of an untrusted
    /// instance; nothing is enforced about `counter` and `value`, which the
    /// protocol uses as it likes (π: counter 0, value = global order number).
    /// A trusted instance is [`Refused::TrustedOnly`].
    fn sign(&self, instance: InstanceId, counter: CounterId, value: u64, msg_hash: &Digest) -> Result<Share, Refused>;

    /// The replica it signs for.
    fn replica(&self) -> ReplicaId;
}

/// The one rule of untrusted signing: only untrusted instances of the table.
pub(crate) fn untrusted_only(
    instances: &BTreeMap<InstanceId, InstanceSpec>,
    instance: InstanceId,
) -> Result<(), Refused> {
    match instances.get(&instance) {
        None => Err(Refused::UnknownInstance(instance)),
        // So that a trusted statement can never come from outside the trusted subsystem.
        Some(i) if i.trust == Trust::Trusted => Err(Refused::TrustedOnly(instance)),
        Some(_) => Ok(()),
    }
}

/// A replica's BLS signer for untrusted instances.
pub struct PlainSigner {
    replica: ReplicaId,
    share: Option<blsttc::SecretKeyShare>,
    instances: BTreeMap<InstanceId, InstanceSpec>,
}

impl fmt::Debug for PlainSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlainSigner({:?}, ..)", self.replica)
    }
}

impl PlainSigner {
    /// A signer from the replica's untrusted keys.
    pub fn new(keys: UntrustedKeys) -> PlainSigner {
        PlainSigner { replica: keys.replica, share: keys.share, instances: keys.instances }
    }
}

impl PlainSign for PlainSigner {
    fn sign(&self, instance: InstanceId, counter: CounterId, value: u64, msg_hash: &Digest) -> Result<Share, Refused> {
        untrusted_only(&self.instances, instance)?;
        let key = self.share.as_ref().ok_or(Refused::UnknownInstance(instance))?;
        let statement = Statement { instance, counter, value, msg_hash: *msg_hash };
        let sig = key.sign(statement.signed_bytes(Trust::Untrusted)).to_bytes();
        Ok(Share { statement, signer: self.replica, sig })
    }

    fn replica(&self) -> ReplicaId {
        self.replica
    }
}

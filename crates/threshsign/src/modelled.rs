//! The simulator's stand-in for BLS: [`ModelledScheme`],
//! [`ModelledThreshSign`] and [`ModelledPlainSigner`].
//!
//! Real BLS at n = 301 would cost hours of real CPU per simulated second.
//! Here a share, a threshold signature or a certificate is one SHA-256 over
//! a fixed key, a domain tag and the signed bytes, zero-padded to the real
//! length (so messages keep their size), and every operation reports its
//! modelled cost with [`Crypto::charge`]. Everything a protocol could
//! observe of BLS is enforced the same way (the rules are shared code with
//! [`crate::BlsScheme`] and [`crate::SoftThreshSign`]): expected statements,
//! signers in range, trusted versus untrusted instances, counters, t
//! distinct valid shares, blame, and bad bytes failing.
//!
//! **Never use this in a deployment.** The key is a public constant: anyone
//! can compute every replica's shares and certificates. That is sound only
//! in the simulator, where all adversary code is ours and signs only
//! through its own provision (as with `SimCrypto`'s signatures).

use crate::dealer::{GroupSpec, KeygenError, Table};
use crate::plain::{untrusted_only, PlainSign};
use crate::scheme::{cert_target, combine_with, share_target, threshold_target, Combiner};
use crate::scheme::{CombineError, Scheme, VerifyError};
use crate::trusted::{Counters, Refused, ThreshSign};
use crate::types::{Cert, CertStatement, CounterId, InstanceId, Share, Statement, ThresholdSig, Trust};
use crate::types::{BLS_SIG_BYTES, CERT_SIG_BYTES};
use quorate_core::{Crypto, Digest, ModelledOp, ReplicaId};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::Arc;

/// The modelled key is SHA-256 of this tag: a constant, public by design.
const KEY_TAG: &[u8] = b"quorate-threshsign/v1/modelled-key (public: simulator only)\0";
const SHARE_TAG: &[u8] = b"quorate-threshsign/v1/modelled-share\0";
const THRESHOLD_TAG: &[u8] = b"quorate-threshsign/v1/modelled-threshold\0";
const CERT_TAG: &[u8] = b"quorate-threshsign/v1/modelled-cert\0";

/// The modelled key and the group's table, shared by a replica's parts.
#[derive(Clone)]
struct Model {
    key: [u8; 32],
    table: Arc<Table>,
}

fn padded<const N: usize>(h: Sha256) -> [u8; N] {
    let mut out = [0u8; N];
    out[..32].copy_from_slice(&h.finalize());
    out
}

impl Model {
    fn new(table: Table) -> Model {
        Model { key: Sha256::digest(KEY_TAG).into(), table: Arc::new(table) }
    }

    fn hasher(&self, tag: &[u8]) -> Sha256 {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(tag);
        h
    }

    fn share(&self, trust: Trust, signer: ReplicaId, st: &Statement) -> [u8; BLS_SIG_BYTES] {
        let mut h = self.hasher(SHARE_TAG);
        h.update([match trust {
            Trust::Trusted => 1,
            Trust::Untrusted => 2,
        }]);
        h.update(signer.0.to_be_bytes());
        h.update(st.signed_bytes(trust));
        padded(h)
    }

    fn threshold(&self, trust: Trust, st: &Statement) -> [u8; BLS_SIG_BYTES] {
        let mut h = self.hasher(THRESHOLD_TAG);
        h.update(st.signed_bytes(trust));
        padded(h)
    }

    fn cert(&self, cs: &CertStatement) -> [u8; CERT_SIG_BYTES] {
        let mut h = self.hasher(CERT_TAG);
        h.update(cs.signed_bytes());
        padded(h)
    }
}

/// The simulator's [`Scheme`]: checks the modelled shares, threshold
/// signatures and certificates of [`ModelledThreshSign`] and
/// [`ModelledPlainSigner`], and charges each operation's modelled cost to
/// its `Crypto` provider. Never use it in a deployment (module docs).
pub struct ModelledScheme {
    model: Model,
    crypto: Arc<dyn Crypto>,
}

impl fmt::Debug for ModelledScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelledScheme")
            .field("n", &self.model.table.n)
            .field("threshold", &self.model.table.threshold)
            .field("instances", &self.model.table.instances.len())
            .field("charged_to", &self.crypto.me())
            .finish()
    }
}

impl ModelledScheme {
    /// The scheme of the group `spec` describes (refused as the dealer
    /// refuses it), charging costs to `crypto`. Clients use this; replicas
    /// get one in their [`crate::Provision::modelled`].
    pub fn new(spec: &GroupSpec, crypto: Arc<dyn Crypto>) -> Result<ModelledScheme, KeygenError> {
        Ok(ModelledScheme { model: Model::new(Table::from_spec(spec)?), crypto })
    }
}

impl Scheme for ModelledScheme {
    fn n(&self) -> usize {
        self.model.table.n as usize
    }

    fn threshold(&self) -> usize {
        self.model.table.threshold as usize
    }

    fn verify_share(&self, share: &Share, expected: &Statement) -> Result<(), VerifyError> {
        let trust = share_target(&self.model.table, share, expected)?;
        self.crypto.charge(ModelledOp::ThresholdVerify);
        if share.sig == self.model.share(trust, share.signer, expected) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn verify_threshold(&self, sig: &ThresholdSig, expected: &Statement) -> Result<(), VerifyError> {
        let trust = threshold_target(&self.model.table, sig, expected)?;
        self.crypto.charge(ModelledOp::ThresholdVerify);
        if sig.sig == self.model.threshold(trust, expected) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn verify_certificate(&self, cert: &Cert, expected: &CertStatement) -> Result<(), VerifyError> {
        cert_target(&self.model.table, cert, expected)?;
        self.crypto.charge(ModelledOp::CertVerify);
        if cert.sig == self.model.cert(expected) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn combine_reporting(
        &self,
        expected: &Statement,
        shares: &[Share],
    ) -> Result<(ThresholdSig, Vec<ReplicaId>), CombineError> {
        combine_with(&self.model.table, expected, shares, |trust| ModelledCombiner { scheme: self, trust, expected })
    }
}

/// Mirrors BLS's costs: the fast path is one combination of t shares with
/// one check; the slow path adds one check per share it looks at.
struct ModelledCombiner<'a> {
    scheme: &'a ModelledScheme,
    trust: Trust,
    expected: &'a Statement,
}

impl ModelledCombiner<'_> {
    fn is_valid(&self, s: &Share) -> bool {
        s.sig == self.scheme.model.share(self.trust, s.signer, self.expected)
    }
}

impl Combiner for ModelledCombiner<'_> {
    fn fast(&mut self, first: &[&Share]) -> Option<[u8; BLS_SIG_BYTES]> {
        self.scheme.crypto.charge(ModelledOp::ThresholdCombine { shares: first.len() });
        first.iter().all(|s| self.is_valid(s)).then(|| self.scheme.model.threshold(self.trust, self.expected))
    }

    fn check(&mut self, share: &Share) -> bool {
        self.scheme.crypto.charge(ModelledOp::ThresholdVerify);
        self.is_valid(share)
    }

    fn valid(&mut self, _valid: &[&Share]) -> Option<[u8; BLS_SIG_BYTES]> {
        Some(self.scheme.model.threshold(self.trust, self.expected))
    }
}

/// The simulator's trusted subsystem: [`crate::SoftThreshSign`]'s counter
/// rules (the same code), modelled shares and certificates, and modelled
/// costs (`ThresholdShare`, `CertSign`) charged to the replica's `Crypto`.
/// Not `Clone`, like the real one. Made by [`crate::Provision::modelled`].
pub struct ModelledThreshSign {
    replica: ReplicaId,
    model: Model,
    counters: Counters,
    crypto: Arc<dyn Crypto>,
}

impl fmt::Debug for ModelledThreshSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelledThreshSign({:?}, {} instances)", self.replica, self.counters.instances())
    }
}

impl ThreshSign for ModelledThreshSign {
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
        self.counters.independent(instance, counter, new_value, msg_hash)?;
        self.crypto.charge(ModelledOp::ThresholdShare);
        let statement = Statement { instance, counter, value: new_value, msg_hash: *msg_hash };
        let sig = self.model.share(Trust::Trusted, self.replica, &statement);
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
        self.crypto.charge(ModelledOp::CertSign);
        let statement =
            CertStatement { signer: self.replica, instance, counter, old_value, new_value, msg_hash: *msg_hash };
        Ok(Cert { statement, sig: self.model.cert(&statement) })
    }

    fn current_value(&self, instance: InstanceId, counter: CounterId) -> Result<u64, Refused> {
        self.counters.current(instance, counter)
    }
}

/// The simulator's untrusted signer (π): modelled shares, `ThresholdShare`
/// charged to the replica's `Crypto`. Made by [`crate::Provision::modelled`].
pub struct ModelledPlainSigner {
    replica: ReplicaId,
    model: Model,
    crypto: Arc<dyn Crypto>,
}

impl fmt::Debug for ModelledPlainSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelledPlainSigner({:?})", self.replica)
    }
}

impl PlainSign for ModelledPlainSigner {
    fn sign(&self, instance: InstanceId, counter: CounterId, value: u64, msg_hash: &Digest) -> Result<Share, Refused> {
        untrusted_only(&self.model.table.instances, instance)?;
        self.crypto.charge(ModelledOp::ThresholdShare);
        let statement = Statement { instance, counter, value, msg_hash: *msg_hash };
        Ok(Share { statement, signer: self.replica, sig: self.model.share(Trust::Untrusted, self.replica, &statement) })
    }

    fn replica(&self) -> ReplicaId {
        self.replica
    }
}

/// A replica's three modelled parts over one table and one `Crypto`.
pub(crate) fn provision(
    replica: ReplicaId,
    table: Table,
    crypto: Arc<dyn Crypto>,
) -> (ModelledThreshSign, ModelledPlainSigner, ModelledScheme) {
    let model = Model::new(table);
    let counters = Counters::new(model.table.instances.values());
    let trusted = ModelledThreshSign { replica, model: model.clone(), counters, crypto: Arc::clone(&crypto) };
    let plain = ModelledPlainSigner { replica, model: model.clone(), crypto: Arc::clone(&crypto) };
    (trusted, plain, ModelledScheme { model, crypto })
}

//! The trusted dealer: one group's public material and each replica's
//! secret keys, from a seed (the simulator) or an RNG (deployments).
//!
//! Key sets: one BLS threshold key set for *all* trusted instances and one
//! for *all* untrusted instances, with the instance id bound into every
//! signed statement. A key set per instance would make the public material
//! O(n²) (n+1 instances × n public key shares) and keygen at n = 301 take
//! seconds; the trusted subsystem enforces counters per (instance, counter)
//! whatever key it signs with, and the untrusted key never signs a trusted
//! statement (different key, different domain tag), so sharing costs nothing
//! in safety. Continuing certificates use one Ed25519 key per replica.

use crate::types::{InstanceId, InstanceSpec, Trust};
use quorate_core::wire::{self, WireError};
use quorate_core::ReplicaId;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// Most counters one instance may have: the subsystem allocates them all.
pub const MAX_COUNTERS: u32 = 1024;

/// What the dealer is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    /// Number of replicas (signers `0..n`).
    pub n: u32,
    /// Shares needed for a threshold signature (Destiny: f+1).
    pub threshold: u32,
    /// The instances; ids must be distinct.
    pub instances: Vec<InstanceSpec>,
}

/// A spec the dealer refuses.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeygenError {
    /// n = 0, or n too large.
    #[error("bad group size {0}")]
    BadSize(u32),
    /// Threshold 0 or above n.
    #[error("threshold {threshold} not in 1..={n}")]
    BadThreshold {
        /// Asked threshold.
        threshold: u32,
        /// Group size.
        n: u32,
    },
    /// Two instances with one id.
    #[error("instance {0:?} listed twice")]
    DuplicateInstance(InstanceId),
    /// A trusted instance with no counter, or more than [`MAX_COUNTERS`].
    #[error("trusted instance {0:?} has no counter or too many")]
    NoCounters(InstanceId),
    /// blsttc refused (cannot happen for sane sizes).
    #[error("key generation failed: {0}")]
    Bls(String),
}

/// A group's shape, as the dealer accepts it: the rules for a [`GroupSpec`]
/// live here once, for BLS keygen and for the modelled scheme alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) n: u32,
    pub(crate) threshold: u32,
    pub(crate) instances: BTreeMap<InstanceId, InstanceSpec>,
}

impl Table {
    pub(crate) fn from_spec(spec: &GroupSpec) -> Result<Table, KeygenError> {
        let n = spec.n;
        if n == 0 || n > 0x7fff_ffff {
            return Err(KeygenError::BadSize(n));
        }
        if spec.threshold == 0 || spec.threshold > n {
            return Err(KeygenError::BadThreshold { threshold: spec.threshold, n });
        }
        let mut instances = BTreeMap::new();
        for i in &spec.instances {
            if i.trust == Trust::Trusted && (i.counters == 0 || i.counters > MAX_COUNTERS) {
                return Err(KeygenError::NoCounters(i.id));
            }
            if instances.insert(i.id, *i).is_some() {
                return Err(KeygenError::DuplicateInstance(i.id));
            }
        }
        Ok(Table { n, threshold: spec.threshold, instances })
    }

    /// The trust of a known instance.
    pub(crate) fn trust(&self, id: InstanceId) -> Option<Trust> {
        self.instances.get(&id).map(|i| i.trust)
    }
}

/// Public material of one BLS key set: the commitment to the polynomial
/// (master key = its constant term) and each signer's public key share,
/// computed once by the dealer so verifiers need not evaluate the
/// commitment (O(t) group operations per signer).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeySetPublic {
    pub(crate) set: blsttc::PublicKeySet,
    pub(crate) shares: Vec<blsttc::PublicKeyShare>,
}

/// A group's public material: anyone (replicas, clients, collectors) needs
/// only this to check shares, threshold signatures and certificates.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GroupPublicWire", into = "GroupPublicWire")]
pub struct GroupPublic {
    pub(crate) table: Table,
    pub(crate) trusted: Option<KeySetPublic>,
    pub(crate) untrusted: Option<KeySetPublic>,
    pub(crate) cert_keys: Vec<ed25519_consensus::VerificationKey>,
}

impl fmt::Debug for GroupPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupPublic")
            .field("n", &self.table.n)
            .field("threshold", &self.table.threshold)
            .field("instances", &self.table.instances.len())
            .finish()
    }
}

impl GroupPublic {
    /// Number of replicas.
    pub fn n(&self) -> u32 {
        self.table.n
    }
    /// Shares needed for a threshold signature.
    pub fn threshold(&self) -> u32 {
        self.table.threshold
    }
    /// One instance's spec.
    pub fn instance(&self, id: InstanceId) -> Option<&InstanceSpec> {
        self.table.instances.get(&id)
    }
    /// All instances, by id.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceSpec> {
        self.table.instances.values()
    }

    /// Whether this is the public material of a deal for `spec` (the same
    /// size, threshold and instance table; the order of `spec.instances`
    /// does not matter).
    pub fn is_for(&self, spec: &GroupSpec) -> bool {
        Table::from_spec(spec).is_ok_and(|t| t == self.table)
    }

    /// SHA-256 of the encoding: lets replicas check they were dealt the same group.
    pub fn fingerprint(&self) -> quorate_core::Digest {
        quorate_core::Digest::of(&self.to_bytes())
    }

    /// Encode.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decode; checks sizes and points, not that the public key shares match
    /// the commitment (see [`GroupPublic::check_key_shares`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<GroupPublic, WireError> {
        wire::decode(bytes, wire::DEFAULT_MAX_FRAME)
    }

    /// Checks that every public key share is the commitment evaluated at its
    /// index, i.e. that the material is what an honest dealer makes. O(n·t)
    /// group operations (seconds at n = 301): once, when loading a group file.
    pub fn check_key_shares(&self) -> bool {
        [&self.trusted, &self.untrusted]
            .into_iter()
            .flatten()
            .all(|ks| ks.shares.iter().enumerate().all(|(i, s)| ks.set.public_key_share(i) == *s))
    }
}

/// What the trusted subsystem of one replica is provisioned with: its BLS
/// share of the trusted key set, its certificate key, and the instance table.
/// Not `Clone`: two trusted subsystems with one key would be a fork of the
/// counters. Consumed by [`crate::SoftThreshSign::new`] or [`crate::Provision::bls`].
pub struct TrustedKeys {
    pub(crate) replica: ReplicaId,
    pub(crate) share: Option<blsttc::SecretKeyShare>,
    pub(crate) cert_key: ed25519_dalek::SigningKey,
    pub(crate) instances: BTreeMap<InstanceId, InstanceSpec>,
}

/// A replica's share of the untrusted key set (π); held by the replica itself.
pub struct UntrustedKeys {
    pub(crate) replica: ReplicaId,
    pub(crate) share: Option<blsttc::SecretKeyShare>,
    pub(crate) instances: BTreeMap<InstanceId, InstanceSpec>,
}

/// One replica's secret keys, as dealt.
pub struct ReplicaKeys {
    trusted: TrustedKeys,
    untrusted: UntrustedKeys,
}

impl ReplicaKeys {
    /// Which replica they belong to.
    pub fn replica(&self) -> ReplicaId {
        self.trusted.replica
    }
    /// Split: the first part goes into the trusted subsystem, the second to the replica.
    pub fn into_parts(self) -> (TrustedKeys, UntrustedKeys) {
        (self.trusted, self.untrusted)
    }
}

impl From<ReplicaKeys> for (TrustedKeys, UntrustedKeys) {
    fn from(k: ReplicaKeys) -> Self {
        k.into_parts()
    }
}

macro_rules! redacted_debug {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({:?}, ..)"), self.replica)
            }
        }
    };
}
redacted_debug!(TrustedKeys);
redacted_debug!(UntrustedKeys);

impl fmt::Debug for ReplicaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplicaKeys({:?}, ..)", self.trusted.replica)
    }
}

/// The dealer's output.
#[derive(Debug)]
pub struct Deal {
    /// Public material for everyone.
    pub public: GroupPublic,
    /// Secret keys, indexed by replica.
    pub replicas: Vec<ReplicaKeys>,
}

/// Deal from a seed: the same seed and spec give the same keys, bit for bit
/// (the simulator replays runs from a seed). Not for deployments.
pub fn keygen_seeded(spec: &GroupSpec, seed: u64) -> Result<Deal, KeygenError> {
    let mut h = Sha256::new();
    h.update(b"quorate-threshsign/v1/keygen-seed\0");
    h.update(seed.to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(h.finalize().into());
    keygen(spec, &mut rng)
}

/// Deal from a cryptographic RNG.
///
/// A trusted dealer rather than a distributed key generation: the paper
/// leaves provisioning to vendor attestation, a DKG needs its own BFT
/// protocol, and the simulator needs deterministic keys. Deployments run the
/// dealer once (`quorate keygen`) and provision each enclave.
pub fn keygen<R: RngCore + CryptoRng>(spec: &GroupSpec, rng: &mut R) -> Result<Deal, KeygenError> {
    let table = Table::from_spec(spec)?;
    let (n, instances) = (table.n, table.instances.clone());
    let want = |t: Trust| instances.values().any(|i| i.trust == t);
    // The order of draws is fixed (trusted set, untrusted set, cert keys) so seeded deals replay.
    let trusted = if want(Trust::Trusted) { Some(deal_set(n, spec.threshold, rng)?) } else { None };
    let untrusted = if want(Trust::Untrusted) { Some(deal_set(n, spec.threshold, rng)?) } else { None };
    let mut cert_secret = Vec::with_capacity(n as usize);
    let mut cert_keys = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let vk = ed25519_consensus::VerificationKey::try_from(sk.verifying_key().to_bytes())
            .map_err(|e| KeygenError::Bls(format!("ed25519: {e}")))?;
        cert_secret.push(sk);
        cert_keys.push(vk);
    }
    let (trusted, mut t_shares) = match trusted {
        Some((p, s)) => (Some(p), Some(s.into_iter())),
        None => (None, None),
    };
    let (untrusted, mut u_shares) = match untrusted {
        Some((p, s)) => (Some(p), Some(s.into_iter())),
        None => (None, None),
    };
    let replicas = cert_secret
        .into_iter()
        .enumerate()
        .map(|(i, cert_key)| {
            let replica = ReplicaId(i as u32);
            ReplicaKeys {
                trusted: TrustedKeys {
                    replica,
                    share: t_shares.as_mut().and_then(|s| s.next()),
                    cert_key,
                    instances: instances.clone(),
                },
                untrusted: UntrustedKeys {
                    replica,
                    share: u_shares.as_mut().and_then(|s| s.next()),
                    instances: instances.clone(),
                },
            }
        })
        .collect();
    let public = GroupPublic { table, trusted, untrusted, cert_keys };
    Ok(Deal { public, replicas })
}

/// One BLS key set: a random polynomial of degree t-1; share i is its value at i+1.
fn deal_set<R: RngCore + CryptoRng>(
    n: u32,
    threshold: u32,
    rng: &mut R,
) -> Result<(KeySetPublic, Vec<blsttc::SecretKeyShare>), KeygenError> {
    let sks =
        blsttc::SecretKeySet::try_random(threshold as usize - 1, rng).map_err(|e| KeygenError::Bls(e.to_string()))?;
    let set = sks.public_keys();
    if set.threshold() + 1 != threshold as usize {
        // A zero leading coefficient (probability 2^-255) would lower the degree.
        return Err(KeygenError::Bls("degenerate polynomial".into()));
    }
    let secret: Vec<_> = (0..n as usize).map(|i| sks.secret_key_share(i)).collect();
    let shares = secret.iter().map(|s| s.public_key_share()).collect();
    Ok((KeySetPublic { set, shares }, secret))
}

/// Provisioning encodings of secret keys (the mock's stand-in for sealing a
/// key into an enclave): what `quorate keygen` would write to a replica's
/// key file. Whoever holds these bytes can build a trusted subsystem, so they
/// are as secret as the keys.
#[derive(Serialize, Deserialize)]
struct SecretWire {
    replica: u32,
    share: Option<[u8; 32]>,
    cert_key: Option<[u8; 32]>,
    instances: Vec<InstanceSpec>,
}

struct DecodedSecret {
    replica: ReplicaId,
    share: Option<blsttc::SecretKeyShare>,
    cert_key: Option<[u8; 32]>,
    instances: BTreeMap<InstanceId, InstanceSpec>,
}

fn decode_secret(bytes: &[u8]) -> Result<DecodedSecret, WireError> {
    let w: SecretWire = wire::decode(bytes, wire::DEFAULT_MAX_FRAME)?;
    let share = match w.share {
        Some(b) => Some(
            blsttc::SecretKeyShare::from_bytes(b).map_err(|e| WireError::Malformed(format!("secret share: {e}")))?,
        ),
        None => None,
    };
    let mut instances = BTreeMap::new();
    for i in &w.instances {
        if i.counters > MAX_COUNTERS {
            return Err(WireError::Malformed(format!("instance {:?} has {} counters", i.id, i.counters)));
        }
        if instances.insert(i.id, *i).is_some() {
            return Err(WireError::Malformed(format!("instance {:?} listed twice", i.id)));
        }
    }
    Ok(DecodedSecret { replica: ReplicaId(w.replica), share, cert_key: w.cert_key, instances })
}

impl TrustedKeys {
    /// Provisioning encoding (secret!).
    pub fn to_secret_bytes(&self) -> Vec<u8> {
        wire::encode(&SecretWire {
            replica: self.replica.0,
            share: self.share.as_ref().map(|s| s.to_bytes()),
            cert_key: Some(self.cert_key.to_bytes()),
            instances: self.instances.values().copied().collect(),
        })
    }
    /// Decode a provisioning encoding.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<TrustedKeys, WireError> {
        let d = decode_secret(bytes)?;
        let cert_key = d.cert_key.ok_or_else(|| WireError::Malformed("no certificate key".into()))?;
        Ok(TrustedKeys {
            replica: d.replica,
            share: d.share,
            cert_key: ed25519_dalek::SigningKey::from_bytes(&cert_key),
            instances: d.instances,
        })
    }
}

impl UntrustedKeys {
    /// Key file encoding (secret).
    pub fn to_secret_bytes(&self) -> Vec<u8> {
        wire::encode(&SecretWire {
            replica: self.replica.0,
            share: self.share.as_ref().map(|s| s.to_bytes()),
            cert_key: None,
            instances: self.instances.values().copied().collect(),
        })
    }
    /// Decode a key file encoding.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<UntrustedKeys, WireError> {
        let d = decode_secret(bytes)?;
        Ok(UntrustedKeys { replica: d.replica, share: d.share, instances: d.instances })
    }
}

/// Wire form of [`GroupPublic`]; decoding validates it (sizes, points).
#[derive(Serialize, Deserialize)]
struct GroupPublicWire {
    n: u32,
    threshold: u32,
    instances: Vec<InstanceSpec>,
    trusted: Option<KeySetWire>,
    untrusted: Option<KeySetWire>,
    cert_keys: Vec<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct KeySetWire {
    /// Concatenated compressed G1 coefficients of the commitment.
    commitment: Vec<u8>,
    shares: Vec<blsttc::PublicKeyShare>,
}

impl From<GroupPublic> for GroupPublicWire {
    fn from(g: GroupPublic) -> Self {
        let ks = |k: KeySetPublic| KeySetWire { commitment: k.set.to_bytes(), shares: k.shares };
        GroupPublicWire {
            n: g.table.n,
            threshold: g.table.threshold,
            instances: g.table.instances.into_values().collect(),
            trusted: g.trusted.map(ks),
            untrusted: g.untrusted.map(ks),
            cert_keys: g.cert_keys.iter().map(|k| k.to_bytes()).collect(),
        }
    }
}

impl TryFrom<GroupPublicWire> for GroupPublic {
    type Error = String;
    fn try_from(w: GroupPublicWire) -> Result<Self, String> {
        if w.n == 0 || w.threshold == 0 || w.threshold > w.n {
            return Err(format!("bad sizes n={} threshold={}", w.n, w.threshold));
        }
        let key_set = |k: Option<KeySetWire>| -> Result<Option<KeySetPublic>, String> {
            let Some(k) = k else { return Ok(None) };
            // Check the length first: blsttc would read an empty commitment as degree -1.
            if k.commitment.len() != w.threshold as usize * blsttc::PK_SIZE {
                return Err("commitment does not match the threshold".into());
            }
            if k.shares.len() != w.n as usize {
                return Err("public key shares do not match n".into());
            }
            let set = blsttc::PublicKeySet::from_bytes(k.commitment).map_err(|e| format!("commitment: {e}"))?;
            Ok(Some(KeySetPublic { set, shares: k.shares }))
        };
        let trusted = key_set(w.trusted)?;
        let untrusted = key_set(w.untrusted)?;
        let mut instances = BTreeMap::new();
        for i in w.instances {
            let present = match i.trust {
                Trust::Trusted => trusted.is_some(),
                Trust::Untrusted => untrusted.is_some(),
            };
            if !present {
                return Err(format!("instance {:?} has no key set", i.id));
            }
            if instances.insert(i.id, i).is_some() {
                return Err(format!("instance {:?} listed twice", i.id));
            }
        }
        if w.cert_keys.len() != w.n as usize {
            return Err("certificate keys do not match n".into());
        }
        let cert_keys = w
            .cert_keys
            .into_iter()
            .map(|b| ed25519_consensus::VerificationKey::try_from(b).map_err(|e| format!("certificate key: {e}")))
            .collect::<Result<_, _>>()?;
        let table = Table { n: w.n, threshold: w.threshold, instances };
        Ok(GroupPublic { table, trusted, untrusted, cert_keys })
    }
}

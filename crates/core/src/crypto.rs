//! The crypto provider: digests, signatures, MACs.
//!
//! Protocols call crypto only through [`Crypto`], so the simulator can swap in
//! a provider that charges modelled CPU time, and the runtime the real one
//! ([`Ed25519Crypto`]: Ed25519 signatures, HMAC-SHA256 MACs, SHA-256 digests).
//! A provider signs only as its own node: a Byzantine node holds its own
//! provider and nobody else's keys.

use crate::ids::NodeId;
use ed25519_consensus::{VerificationKey, VerificationKeyBytes};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// A SHA-256 digest.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}

impl Digest {
    /// SHA-256 of `data`, computed directly (for code outside a provider, e.g. checkers).
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }
    /// SHA-256 over several parts, as if concatenated with length prefixes.
    pub fn of_parts(parts: &[&[u8]]) -> Digest {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Digest(h.finalize().into())
    }
}

/// A signature, opaque to protocols.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(pub Vec<u8>);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{}", hex::encode(&self.0[..self.0.len().min(4)]))
    }
}

/// A message authentication code for one receiver.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mac(pub [u8; 32]);

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mac:{}", hex::encode(&self.0[..4]))
    }
}

/// Work done with keys outside this provider (threshold signatures and a
/// trusted subsystem's certificates), reported so that a simulator charges
/// its modelled CPU cost. Real providers ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelledOp {
    /// Making one threshold signature share (trusted or not).
    ThresholdShare,
    /// Checking one share or one threshold signature.
    ThresholdVerify,
    /// Interpolating `shares` shares and checking the result once.
    ThresholdCombine {
        /// Shares interpolated (the threshold).
        shares: usize,
    },
    /// A trusted subsystem signing a certificate.
    CertSign,
    /// Checking a certificate.
    CertVerify,
}

/// The crypto operations a protocol may use. Implementations must be
/// deterministic given their keys (Ed25519 signing is).
pub trait Crypto: Send + Sync {
    /// The node this provider signs as.
    fn me(&self) -> NodeId;
    /// SHA-256 of `data`.
    fn digest(&self, data: &[u8]) -> Digest;
    /// Sign `data` as [`Crypto::me`].
    fn sign(&self, data: &[u8]) -> Signature;
    /// Whether `sig` is `signer`'s signature of `data`.
    fn verify(&self, signer: NodeId, data: &[u8], sig: &Signature) -> bool;
    /// MAC of `data` for the pair (me, `peer`).
    fn mac(&self, peer: NodeId, data: &[u8]) -> Mac;
    /// Whether `mac` is the (me, `peer`) MAC of `data`.
    fn verify_mac(&self, peer: NodeId, data: &[u8], mac: &Mac) -> bool;
    /// A MAC vector: one MAC for each receiver.
    fn mac_vector(&self, peers: &[NodeId], data: &[u8]) -> Vec<Mac> {
        peers.iter().map(|p| self.mac(*p, data)).collect()
    }
    /// Report work done with other keys (see [`ModelledOp`]); only a
    /// simulator's provider does anything with it.
    fn charge(&self, op: ModelledOp) {
        let _ = op;
    }
}

/// Keys of every node of a deployment, as the holder of one node sees them.
#[derive(Clone)]
pub struct Ed25519Crypto {
    me: NodeId,
    signing: SigningKey,
    public: HashMap<NodeId, VerifyingKey>,
    /// `public` decoded for verification, on first use (a client may never verify).
    verifying: Arc<OnceLock<HashMap<NodeId, VerificationKey>>>,
    macs: MacKeys,
}

/// Where per-pair MAC keys come from.
#[derive(Clone)]
pub enum MacKeys {
    /// Derived from one secret every node knows: `HMAC(secret, min(a,b) ‖ max(a,b))`.
    /// Only for tests and the simulator (any holder can forge any pair's MACs).
    Shared([u8; 32]),
    /// One key per peer, known only to the pair (the runtime derives them by
    /// Diffie–Hellman from the nodes' long-term keys).
    PerPeer(HashMap<NodeId, [u8; 32]>),
}

impl fmt::Debug for Ed25519Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Crypto").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Ed25519Crypto {
    /// A provider for `me` with its signing key, everybody's public keys, and its MAC keys.
    pub fn new(me: NodeId, signing: SigningKey, public: HashMap<NodeId, VerifyingKey>, macs: MacKeys) -> Self {
        Ed25519Crypto { me, signing, public, verifying: Arc::default(), macs }
    }

    fn verification_key(&self, node: NodeId) -> Option<&VerificationKey> {
        self.verifying
            .get_or_init(|| {
                let decode =
                    |(n, k): (&NodeId, &VerifyingKey)| Some((*n, VerificationKey::try_from(k.to_bytes()).ok()?));
                self.public.iter().filter_map(decode).collect()
            })
            .get(&node)
    }

    /// Whether every signature of `items` is valid, checked as one batch (about
    /// twice as fast per signature as one by one for large batches). Agrees with
    /// [`Crypto::verify`] on every input: both follow ZIP 215, which removes the
    /// edge cases where Ed25519 batch and single verification differ (replicas
    /// must agree on which signatures are valid).
    /// The random coefficients come from `rng`; they decide nothing but how likely a
    /// bad batch is to pass (2^-128).
    pub fn verify_batch<R: rand::RngCore + rand::CryptoRng>(
        &self,
        items: &[(NodeId, &[u8], &Signature)],
        rng: R,
    ) -> bool {
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for (signer, data, sig) in items {
            let (Some(key), Ok(bytes)) = (self.verification_key(*signer), <[u8; 64]>::try_from(sig.0.as_slice()))
            else {
                return false;
            };
            batch.queue((VerificationKeyBytes::from(*key), ed25519_consensus::Signature::from(bytes), data));
        }
        batch.verify(rng).is_ok()
    }

    /// Deterministic keys for a set of nodes from a seed: for tests, the
    /// simulator and benchmarks, never for deployments.
    pub fn deterministic(seed: u64, nodes: &[NodeId]) -> Vec<Ed25519Crypto> {
        let key_of = |n: &NodeId| {
            let d = Digest::of_parts(&[b"quorate-test-key", &seed.to_le_bytes(), format!("{n:?}").as_bytes()]);
            SigningKey::from_bytes(&d.0)
        };
        let public: HashMap<NodeId, VerifyingKey> = nodes.iter().map(|n| (*n, key_of(n).verifying_key())).collect();
        let secret = Digest::of_parts(&[b"quorate-test-mac", &seed.to_le_bytes()]).0;
        nodes.iter().map(|n| Ed25519Crypto::new(*n, key_of(n), public.clone(), MacKeys::Shared(secret))).collect()
    }

    /// The MAC key shared with `peer` (none for an unknown peer).
    fn pair_key(&self, peer: NodeId) -> Option<[u8; 32]> {
        match &self.macs {
            MacKeys::Shared(secret) => {
                let (a, b) = if self.me <= peer { (self.me, peer) } else { (peer, self.me) };
                let mut m = <Hmac<Sha256>>::new_from_slice(secret).expect("hmac takes any key length");
                m.update(format!("{a:?}|{b:?}").as_bytes());
                Some(m.finalize().into_bytes().into())
            }
            MacKeys::PerPeer(keys) => keys.get(&peer).copied(),
        }
    }
}

impl Crypto for Ed25519Crypto {
    fn me(&self) -> NodeId {
        self.me
    }
    fn digest(&self, data: &[u8]) -> Digest {
        Digest::of(data)
    }
    fn sign(&self, data: &[u8]) -> Signature {
        Signature(self.signing.sign(data).to_bytes().to_vec())
    }
    fn verify(&self, signer: NodeId, data: &[u8], sig: &Signature) -> bool {
        // ZIP 215 rules (ed25519-consensus), so that batches agree (see `verify_batch`).
        let Some(key) = self.verification_key(signer) else { return false };
        let Ok(bytes) = <[u8; 64]>::try_from(sig.0.as_slice()) else { return false };
        key.verify(&ed25519_consensus::Signature::from(bytes), data).is_ok()
    }
    fn mac(&self, peer: NodeId, data: &[u8]) -> Mac {
        // No key with an unknown peer: an all-zero MAC, which never verifies.
        let Some(key) = self.pair_key(peer) else { return Mac([0; 32]) };
        let mut m = <Hmac<Sha256>>::new_from_slice(&key).expect("hmac takes any key length");
        m.update(data);
        Mac(m.finalize().into_bytes().into())
    }
    fn verify_mac(&self, peer: NodeId, data: &[u8], mac: &Mac) -> bool {
        let Some(key) = self.pair_key(peer) else { return false };
        let mut m = <Hmac<Sha256>>::new_from_slice(&key).expect("hmac takes any key length");
        m.update(data);
        m.verify_slice(&mac.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientId, ReplicaId};

    fn nodes() -> Vec<NodeId> {
        vec![ReplicaId(0).into(), ReplicaId(1).into(), ClientId(7).into()]
    }

    #[test]
    fn signatures_verify_only_for_signer_and_data() {
        let ks = Ed25519Crypto::deterministic(1, &nodes());
        let sig = ks[0].sign(b"hello");
        assert!(ks[1].verify(ReplicaId(0).into(), b"hello", &sig));
        assert!(!ks[1].verify(ReplicaId(1).into(), b"hello", &sig));
        assert!(!ks[1].verify(ReplicaId(0).into(), b"hellO", &sig));
        assert!(!ks[1].verify(ReplicaId(0).into(), b"hello", &Signature(vec![1, 2, 3])));
        assert!(!ks[1].verify(ReplicaId(9).into(), b"hello", &sig));
    }

    #[test]
    fn batches_pass_only_when_every_signature_does() {
        let ks = Ed25519Crypto::deterministic(1, &nodes());
        let data: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + i as usize]).collect();
        let sigs: Vec<Signature> = data.iter().enumerate().map(|(i, d)| ks[i % 3].sign(d)).collect();
        let items = |sigs: &[Signature]| -> Vec<(NodeId, Vec<u8>, Signature)> {
            data.iter().zip(sigs).enumerate().map(|(i, (d, s))| (nodes()[i % 3], d.clone(), s.clone())).collect()
        };
        let check = |v: &[(NodeId, Vec<u8>, Signature)]| {
            let refs: Vec<(NodeId, &[u8], &Signature)> = v.iter().map(|(n, d, s)| (*n, d.as_slice(), s)).collect();
            let batch = ks[1].verify_batch(&refs, rand::rngs::OsRng);
            assert_eq!(batch, v.iter().all(|(n, d, s)| ks[1].verify(*n, d, s)), "batch and single checks agree");
            batch
        };
        assert!(check(&items(&sigs)));
        assert!(check(&[]));
        let mut bad = sigs.clone();
        bad[17].0[3] ^= 1;
        assert!(!check(&items(&bad)));
        let mut swapped = items(&sigs);
        swapped[5].0 = nodes()[(5 + 1) % 3];
        assert!(!check(&swapped));
        let mut short = sigs.clone();
        short[0] = Signature(vec![1, 2, 3]);
        assert!(!check(&items(&short)));
        let mut unknown = items(&sigs);
        unknown[2].0 = ReplicaId(9).into();
        assert!(!check(&unknown));
    }

    #[test]
    fn macs_are_pairwise() {
        let ks = Ed25519Crypto::deterministic(1, &nodes());
        let m = ks[0].mac(ReplicaId(1).into(), b"x");
        assert!(ks[1].verify_mac(ReplicaId(0).into(), b"x", &m));
        assert!(!ks[2].verify_mac(ReplicaId(0).into(), b"x", &m));
        assert!(!ks[1].verify_mac(ReplicaId(0).into(), b"y", &m));
        let v = ks[2].mac_vector(&[ReplicaId(0).into(), ReplicaId(1).into()], b"z");
        assert!(ks[0].verify_mac(ClientId(7).into(), b"z", &v[0]));
        assert!(ks[1].verify_mac(ClientId(7).into(), b"z", &v[1]));
    }
}

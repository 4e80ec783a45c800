//! The runtime's crypto provider: Ed25519 and HMAC-SHA256 from the core,
//! per-pair MAC keys agreed by Diffie–Hellman from the long-term keys, and a
//! cache of verified signatures shared between the receiving threads (which
//! check signatures ahead, see `Message::preverify`) and the protocol thread.

use ed25519_dalek::{SigningKey, VerifyingKey};
use parking_lot::Mutex;
use quorate_core::crypto::{Crypto, Digest, Ed25519Crypto, Mac, MacKeys, Signature};
use quorate_core::ids::NodeId;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The young and the old generation of the cache.
type Generations = (HashSet<[u8; 32]>, HashSet<[u8; 32]>);

/// Signatures known to be valid, remembered as SHA-256(signer, signature, data).
/// Two generations: when the young one is full the old one is dropped, so the
/// cache is bounded and keeps what was verified recently.
pub struct VerifyCache {
    gens: Mutex<Generations>,
    capacity: usize,
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Signatures checked for real.
    pub checks: AtomicU64,
}

impl VerifyCache {
    /// A cache holding up to about `2 * capacity` entries.
    pub fn new(capacity: usize) -> Self {
        VerifyCache {
            gens: Mutex::new((HashSet::new(), HashSet::new())),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }

    fn key(signer: NodeId, data: &[u8], sig: &Signature) -> [u8; 32] {
        let mut h = Sha256::new();
        let (tag, id) = match signer {
            NodeId::Replica(r) => (0u8, u64::from(r.0)),
            NodeId::Client(c) => (1u8, c.0),
        };
        h.update([tag]);
        h.update(id.to_le_bytes());
        h.update((sig.0.len() as u64).to_le_bytes());
        h.update(&sig.0);
        h.update(data);
        h.finalize().into()
    }

    fn contains(&self, k: &[u8; 32]) -> bool {
        let g = self.gens.lock();
        g.0.contains(k) || g.1.contains(k)
    }

    fn insert(&self, k: [u8; 32]) {
        let mut g = self.gens.lock();
        if g.0.len() >= self.capacity {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(k);
    }
}

/// The crypto provider of a replica or client process.
#[derive(Clone)]
pub struct RuntimeCrypto {
    inner: Ed25519Crypto,
    cache: Arc<VerifyCache>,
}

impl RuntimeCrypto {
    /// The provider of node `me` holding `key`, knowing everybody in `directory`.
    pub fn new(me: NodeId, key: &SigningKey, directory: &HashMap<NodeId, VerifyingKey>) -> Self {
        // Clients only talk to replicas: no keys with the other clients (there may be thousands).
        let talks_to = |n: &NodeId| *n != me && (me.replica().is_some() || n.replica().is_some());
        let macs =
            directory.iter().filter(|(n, _)| talks_to(n)).map(|(n, pk)| (*n, pair_key(me, key, *n, pk))).collect();
        let inner = Ed25519Crypto::new(me, key.clone(), directory.clone(), MacKeys::PerPeer(macs));
        RuntimeCrypto { inner, cache: Arc::new(VerifyCache::new(1 << 17)) }
    }

    /// The shared cache (for metrics).
    pub fn cache(&self) -> &VerifyCache {
        &self.cache
    }

    /// Check the signatures that `check` asks about (each as if by [`Crypto::verify`])
    /// as one batch, remembering the valid ones: the receiving tasks run a message's
    /// `preverify`, or several messages', through this. A batch with a bad signature
    /// is checked again one by one, so the good ones are still remembered.
    pub fn verify_collected(&self, check: impl FnOnce(&dyn Crypto)) {
        let collector = Collector { inner: self, items: Mutex::new(Vec::new()) };
        check(&collector);
        let mut items = collector.items.into_inner();
        items.retain(|(signer, data, sig)| {
            let cached = self.cache.contains(&VerifyCache::key(*signer, data, sig));
            if cached {
                self.cache.hits.fetch_add(1, Ordering::Relaxed);
            }
            !cached
        });
        match items.len() {
            0 => {}
            1 => {
                let (signer, data, sig) = &items[0];
                self.verify(*signer, data, sig);
            }
            n => {
                let refs: Vec<(NodeId, &[u8], &Signature)> =
                    items.iter().map(|(n, d, s)| (*n, d.as_slice(), s)).collect();
                if self.inner.verify_batch(&refs, rand::thread_rng()) {
                    self.cache.checks.fetch_add(n as u64, Ordering::Relaxed);
                    for (signer, data, sig) in &items {
                        self.cache.insert(VerifyCache::key(*signer, data, sig));
                    }
                } else {
                    for (signer, data, sig) in &items {
                        self.verify(*signer, data, sig);
                    }
                }
            }
        }
    }
}

/// A provider that answers every signature check "valid" and notes it down,
/// for [`RuntimeCrypto::verify_collected`]. Only `preverify` hooks see it
/// (they check ahead and ignore the answers).
struct Collector<'a> {
    inner: &'a RuntimeCrypto,
    items: Mutex<Vec<(NodeId, Vec<u8>, Signature)>>,
}

impl Crypto for Collector<'_> {
    fn me(&self) -> NodeId {
        self.inner.me()
    }
    fn digest(&self, data: &[u8]) -> Digest {
        self.inner.digest(data)
    }
    fn sign(&self, data: &[u8]) -> Signature {
        self.inner.sign(data)
    }
    fn verify(&self, signer: NodeId, data: &[u8], sig: &Signature) -> bool {
        if !sig.0.is_empty() {
            self.items.lock().push((signer, data.to_vec(), sig.clone()));
        }
        true
    }
    fn mac(&self, peer: NodeId, data: &[u8]) -> Mac {
        self.inner.mac(peer, data)
    }
    fn verify_mac(&self, peer: NodeId, data: &[u8], mac: &Mac) -> bool {
        self.inner.verify_mac(peer, data, mac)
    }
}

/// The MAC key of the pair (me, peer): X25519 between the Montgomery forms of
/// the two Ed25519 keys (as libsodium's `crypto_sign_ed25519_*_to_curve25519`),
/// through HKDF-SHA256 bound to both ids. Only the pair can compute it.
fn pair_key(me: NodeId, key: &SigningKey, peer: NodeId, peer_key: &VerifyingKey) -> [u8; 32] {
    let secret = x25519_dalek::StaticSecret::from(key.to_scalar_bytes());
    let public = x25519_dalek::PublicKey::from(peer_key.to_montgomery().to_bytes());
    let shared = secret.diffie_hellman(&public);
    let (a, b) = if me <= peer { (me, peer) } else { (peer, me) };
    let info = format!("quorate-mac-v1|{a:?}|{b:?}");
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, shared.as_bytes())
        .expand(info.as_bytes(), &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

impl Crypto for RuntimeCrypto {
    fn me(&self) -> NodeId {
        self.inner.me()
    }
    fn digest(&self, data: &[u8]) -> Digest {
        self.inner.digest(data)
    }
    fn sign(&self, data: &[u8]) -> Signature {
        self.inner.sign(data)
    }
    fn verify(&self, signer: NodeId, data: &[u8], sig: &Signature) -> bool {
        if sig.0.is_empty() {
            return false;
        }
        let k = VerifyCache::key(signer, data, sig);
        if self.cache.contains(&k) {
            self.cache.hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.cache.checks.fetch_add(1, Ordering::Relaxed);
        let ok = self.inner.verify(signer, data, sig);
        if ok {
            self.cache.insert(k);
        }
        ok
    }
    fn mac(&self, peer: NodeId, data: &[u8]) -> Mac {
        self.inner.mac(peer, data)
    }
    fn verify_mac(&self, peer: NodeId, data: &[u8], mac: &Mac) -> bool {
        self.inner.verify_mac(peer, data, mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorate_core::ids::{ClientId, ReplicaId};

    fn setup() -> (Vec<NodeId>, Vec<SigningKey>, HashMap<NodeId, VerifyingKey>) {
        let nodes = vec![NodeId::Replica(ReplicaId(0)), NodeId::Replica(ReplicaId(1)), NodeId::Client(ClientId(5))];
        let keys: Vec<SigningKey> = (0..3).map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32])).collect();
        let dir = nodes.iter().zip(&keys).map(|(n, k)| (*n, k.verifying_key())).collect();
        (nodes, keys, dir)
    }

    #[test]
    fn cached_verification_is_exact() {
        let (nodes, keys, dir) = setup();
        let a = RuntimeCrypto::new(nodes[0], &keys[0], &dir);
        let b = RuntimeCrypto::new(nodes[1], &keys[1], &dir);
        let sig = a.sign(b"data");
        assert!(b.verify(nodes[0], b"data", &sig));
        assert!(b.verify(nodes[0], b"data", &sig));
        assert_eq!(b.cache().hits.load(Ordering::Relaxed), 1);
        // A cached signature proves nothing about other data or another signer.
        assert!(!b.verify(nodes[0], b"date", &sig));
        assert!(!b.verify(nodes[2], b"data", &sig));
        assert!(!b.verify(nodes[0], b"data", &Signature(Vec::new())));
    }

    #[test]
    fn collected_checks_remember_only_valid_signatures() {
        let (nodes, keys, dir) = setup();
        let a = RuntimeCrypto::new(nodes[0], &keys[0], &dir);
        let b = RuntimeCrypto::new(nodes[1], &keys[1], &dir);
        let data: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Signature> = data.iter().map(|d| a.sign(d)).collect();
        for bad in [false, true] {
            if bad {
                sigs[3].0[0] ^= 1;
            }
            let b = RuntimeCrypto::new(nodes[1], &keys[1], &dir);
            b.verify_collected(|c| {
                for (d, s) in data.iter().zip(&sigs) {
                    assert!(c.verify(nodes[0], d, s), "the collector answers yes and checks later");
                }
            });
            assert_eq!(b.cache().checks.load(Ordering::Relaxed), 8);
            for (i, (d, s)) in data.iter().zip(&sigs).enumerate() {
                assert_eq!(b.verify(nodes[0], d, s), !(bad && i == 3));
            }
            // The valid ones came from the cache; the bad one was checked again (and failed again).
            assert_eq!(b.cache().hits.load(Ordering::Relaxed), 7 + u64::from(!bad));
        }
        // Already known signatures are not checked twice.
        b.verify(nodes[0], &data[0], &sigs[0]);
        b.verify_collected(|c| {
            c.verify(nodes[0], &data[0], &sigs[0]);
        });
        assert_eq!(b.cache().checks.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn pair_macs_agree_only_within_the_pair() {
        let (nodes, keys, dir) = setup();
        let c: Vec<RuntimeCrypto> = (0..3).map(|i| RuntimeCrypto::new(nodes[i], &keys[i], &dir)).collect();
        let m = c[0].mac(nodes[1], b"x");
        assert!(c[1].verify_mac(nodes[0], b"x", &m));
        assert!(!c[2].verify_mac(nodes[0], b"x", &m));
        let m2 = c[2].mac(nodes[0], b"x");
        assert!(c[0].verify_mac(nodes[2], b"x", &m2));
        assert_ne!(m, m2);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifyCache::new(4);
        for i in 0..100u8 {
            cache.insert([i; 32]);
        }
        let g = cache.gens.lock();
        assert!(g.0.len() + g.1.len() <= 8);
        assert!(g.0.contains(&[99; 32]));
    }
}

//! Deterministic workloads: streams of encoded operations for the simulator
//! and the benchmark tool.
//!
//! A workload is a stateless description; each call to `next_op` draws one
//! operation from the random number generator it is given (in practice a
//! seeded [`rand_chacha::ChaCha8Rng`]), so the same seed, parameters and
//! client give the same operations on every platform (all draws use
//! fixed-width integers, never `usize`).
//!
//! # Key namespaces
//!
//! A correct client `c` of a [`KvWorkload`] touches the shared hot key
//! [`HOT_KEY`] (`b"hot"`) and its own keys `c{c}/k{j}` for
//! `j < keys_per_client`. A workload with a [`namespace`](KvWorkload::namespace)
//! puts that prefix in front of every key, including the hot key. Byzantine
//! clients use [`KvWorkload::faulty`], whose namespace is
//! [`faulty_key_prefix`] (`b"faulty/"`): no correct client's key starts with
//! it (they start with `h` or `c`), so whatever faulty clients write can never
//! be observed by correct clients, and checkers can tell the two apart with
//! [`is_faulty_key`].

use crate::counter::CounterOp;
use crate::kv::KvOp;
use bytes::Bytes;
use rand::Rng;

/// The key that every correct client of a [`KvWorkload`] contends on (before
/// any namespace).
pub const HOT_KEY: &[u8] = b"hot";

/// The prefix of every key used by byzantine clients (see
/// [`KvWorkload::faulty`]); disjoint from correct clients' keys.
pub fn faulty_key_prefix() -> &'static [u8] {
    b"faulty/"
}

/// Whether a key belongs to the byzantine clients' namespace.
pub fn is_faulty_key(key: &[u8]) -> bool {
    key.starts_with(faulty_key_prefix())
}

/// A key-value workload: per operation, the target is the hot key with
/// probability `contention` and otherwise one of the client's own keys
/// (uniformly); the operation is a put (40%), get (30%), cas (15%) or delete
/// (15%).
///
/// Put and Cas values are `payload` bytes: the first 8 (or fewer) are a
/// random `u64` in little-endian order, the rest a filler byte (`0x5a`), so
/// written values are almost always distinct. A Cas expects `None` (absent)
/// half the time and otherwise a fresh random value of the same shape; the
/// workload keeps no memory of what was written, so such a Cas nearly always
/// fails, while a Cas expecting `None` succeeds whenever the key is absent.
#[derive(Clone, Debug, PartialEq)]
pub struct KvWorkload {
    /// Probability (clamped to `[0, 1]`, NaN counts as 0) that an operation
    /// targets the hot key.
    pub contention: f64,
    /// Size in bytes of the values that puts and cas write.
    pub payload: usize,
    /// How many private keys each client uses (0 counts as 1). Default 8.
    pub keys_per_client: usize,
    /// Whether gets are marked read-only (so a protocol may answer them
    /// without ordering).
    pub read_only_gets: bool,
    /// Prefix in front of every key (`None`: no prefix). See the
    /// [module documentation](self) for the byzantine namespace.
    pub namespace: Option<Bytes>,
    /// Every operation is a put (the DQBFT evaluation's workload) instead of
    /// the mix above.
    pub puts_only: bool,
}

impl Default for KvWorkload {
    /// No contention, 16-byte values, 8 keys per client, gets ordered like
    /// everything else, no namespace.
    fn default() -> Self {
        KvWorkload {
            contention: 0.0,
            payload: 16,
            keys_per_client: 8,
            read_only_gets: false,
            namespace: None,
            puts_only: false,
        }
    }
}

// Operation mix of a KvWorkload, in percent; the rest (15%) are deletes.
const PUT_PERCENT: u32 = 40;
const GET_PERCENT: u32 = 30;
const CAS_PERCENT: u32 = 15;

impl KvWorkload {
    /// A workload with the given contention and payload size, and the other
    /// fields at their defaults.
    pub fn new(contention: f64, payload: usize) -> Self {
        KvWorkload { contention, payload, ..Self::default() }
    }

    /// The same workload in the byzantine clients' namespace
    /// ([`faulty_key_prefix`]), whose keys no correct client touches.
    pub fn faulty(self) -> Self {
        KvWorkload { namespace: Some(Bytes::from_static(faulty_key_prefix())), ..self }
    }

    fn prefixed(&self, key: &[u8]) -> Bytes {
        match &self.namespace {
            None => Bytes::copy_from_slice(key),
            Some(ns) => {
                let mut k = Vec::with_capacity(ns.len() + key.len());
                k.extend_from_slice(ns);
                k.extend_from_slice(key);
                Bytes::from(k)
            }
        }
    }

    /// The hot key in this workload's namespace.
    pub fn hot_key(&self) -> Bytes {
        self.prefixed(HOT_KEY)
    }

    /// Private key `j` of `client` in this workload's namespace.
    pub fn client_key(&self, client: u64, j: u64) -> Bytes {
        self.prefixed(format!("c{client}/k{j}").as_bytes())
    }

    fn contention_probability(&self) -> f64 {
        if self.contention.is_nan() {
            0.0
        } else {
            self.contention.clamp(0.0, 1.0)
        }
    }

    fn value<R: Rng + ?Sized>(&self, rng: &mut R) -> Bytes {
        let head = rng.gen::<u64>().to_le_bytes();
        let mut v = vec![0x5a; self.payload];
        let n = self.payload.min(head.len());
        v[..n].copy_from_slice(&head[..n]);
        Bytes::from(v)
    }

    /// Draw the next operation of `client`, decoded.
    pub fn next_kv_op<R: Rng + ?Sized>(&self, rng: &mut R, client: u64) -> KvOp {
        let key = if rng.gen_bool(self.contention_probability()) {
            self.hot_key()
        } else {
            let keys = self.keys_per_client.max(1) as u64;
            self.client_key(client, rng.gen_range(0..keys))
        };
        if self.puts_only {
            return KvOp::Put { key, value: self.value(rng) };
        }
        let kind = rng.gen_range(0..100u32);
        if kind < PUT_PERCENT {
            KvOp::Put { key, value: self.value(rng) }
        } else if kind < PUT_PERCENT + GET_PERCENT {
            KvOp::Get { key }
        } else if kind < PUT_PERCENT + GET_PERCENT + CAS_PERCENT {
            let expected = if rng.gen_bool(0.5) { None } else { Some(self.value(rng)) };
            KvOp::Cas { key, expected, new: self.value(rng) }
        } else {
            KvOp::Delete { key }
        }
    }

    /// Draw the next operation of `client`: its encoding, and whether it is
    /// read-only (a get, when [`read_only_gets`](Self::read_only_gets) is set).
    pub fn next_op<R: Rng + ?Sized>(&self, rng: &mut R, client: u64) -> (Bytes, bool) {
        let op = self.next_kv_op(rng, client);
        let read_only = self.read_only_gets && op.is_read_only();
        (op.encode(), read_only)
    }
}

/// A counter workload: 70% `Add(1)`, 30% `Get`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterWorkload {
    /// Whether gets are marked read-only (so a protocol may answer them
    /// without ordering).
    pub read_only_gets: bool,
}

impl CounterWorkload {
    /// Draw the next operation, decoded. All clients draw alike; `client`
    /// is accepted for symmetry with [`KvWorkload::next_kv_op`].
    pub fn next_counter_op<R: Rng + ?Sized>(&self, rng: &mut R, _client: u64) -> CounterOp {
        if rng.gen_range(0..100u32) < 70 {
            CounterOp::Add(1)
        } else {
            CounterOp::Get
        }
    }

    /// Draw the next operation: its encoding, and whether it is read-only (a
    /// get, when [`read_only_gets`](Self::read_only_gets) is set).
    pub fn next_op<R: Rng + ?Sized>(&self, rng: &mut R, client: u64) -> (Bytes, bool) {
        let op = self.next_counter_op(rng, client);
        (op.encode(), self.read_only_gets && op.is_read_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KvStore;
    use quorate_core::Service;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ops(w: &KvWorkload, seed: u64, n: usize) -> Vec<(Bytes, bool)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|i| w.next_op(&mut rng, i as u64 % 4)).collect()
    }

    #[test]
    fn deterministic_from_seed() {
        let w = KvWorkload { contention: 0.3, payload: 32, read_only_gets: true, ..Default::default() };
        assert_eq!(ops(&w, 5, 1000), ops(&w, 5, 1000));
        assert_ne!(ops(&w, 5, 1000), ops(&w, 6, 1000));
        let c = CounterWorkload { read_only_gets: true };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..1000).map(|i| c.next_op(&mut rng, i)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn pinned_first_ops() {
        // Guards against accidental changes to the draw sequence (or to the
        // rand crates' algorithms), which would silently change every seeded
        // experiment.
        let w = KvWorkload::new(0.5, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let got: Vec<KvOp> = (0..3).map(|_| w.next_kv_op(&mut rng, 1)).collect();
        let want = vec![
            KvOp::Put { key: Bytes::from_static(b"c1/k0"), value: Bytes::from_static(b"gf\r\xe1\xbd\xb0~\x94ZZ") },
            KvOp::Cas {
                key: Bytes::from_static(b"hot"),
                expected: None,
                new: Bytes::from_static(b":\xa2\xc4\xcd\x08\x1e\xb3\xe6ZZ"),
            },
            KvOp::Delete { key: Bytes::from_static(b"hot") },
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn contention_and_mix() {
        let n = 20_000;
        for contention in [0.0, 0.1, 0.5, 1.0] {
            let w = KvWorkload::new(contention, 8);
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            let (mut hot, mut put, mut get, mut cas, mut del) = (0, 0, 0, 0, 0);
            for _ in 0..n {
                let op = KvOp::decode(&w.next_op(&mut rng, 7).0).unwrap();
                if op.key() == HOT_KEY {
                    hot += 1;
                } else {
                    let k = std::str::from_utf8(op.key()).unwrap();
                    let j: u64 = k.strip_prefix("c7/k").unwrap().parse().unwrap();
                    assert!(j < 8);
                }
                match op {
                    KvOp::Put { .. } => put += 1,
                    KvOp::Get { .. } => get += 1,
                    KvOp::Cas { .. } => cas += 1,
                    KvOp::Delete { .. } => del += 1,
                }
            }
            let frac = |x: i32| x as f64 / n as f64;
            assert!((frac(hot) - contention).abs() < 0.02, "contention {contention}: {}", frac(hot));
            assert!((frac(put) - 0.40).abs() < 0.02);
            assert!((frac(get) - 0.30).abs() < 0.02);
            assert!((frac(cas) - 0.15).abs() < 0.02);
            assert!((frac(del) - 0.15).abs() < 0.02);
        }
        // Out-of-range contention is clamped, not a panic.
        for contention in [-1.0, 2.0, f64::NAN] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            KvWorkload::new(contention, 0).next_op(&mut rng, 0);
        }
    }

    #[test]
    fn payload_read_only_and_validity() {
        let store = KvStore::new();
        for payload in [0, 3, 8, 100] {
            for read_only_gets in [false, true] {
                let w = KvWorkload { payload, read_only_gets, keys_per_client: 0, ..KvWorkload::new(0.2, payload) };
                let mut rng = ChaCha8Rng::seed_from_u64(payload as u64);
                for _ in 0..500 {
                    let (bytes, ro) = w.next_op(&mut rng, 3);
                    assert!(store.validate(&bytes));
                    let op = KvOp::decode(&bytes).unwrap();
                    assert_eq!(ro, read_only_gets && matches!(op, KvOp::Get { .. }));
                    match &op {
                        KvOp::Put { value, .. } => assert_eq!(value.len(), payload),
                        KvOp::Cas { expected, new, .. } => {
                            assert_eq!(new.len(), payload);
                            assert!(expected.as_ref().is_none_or(|e| e.len() == payload));
                        }
                        _ => {}
                    }
                    // keys_per_client 0 counts as 1.
                    assert!(op.key() == HOT_KEY || op.key() == &b"c3/k0"[..]);
                }
            }
        }
    }

    #[test]
    fn faulty_namespace_is_disjoint() {
        let correct = KvWorkload::new(0.5, 4);
        let faulty = correct.clone().faulty();
        assert_eq!(faulty.hot_key(), Bytes::from_static(b"faulty/hot"));
        assert_eq!(correct.client_key(2, 5), Bytes::from_static(b"c2/k5"));
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut correct_keys = std::collections::BTreeSet::new();
        let mut faulty_keys = std::collections::BTreeSet::new();
        for i in 0..2000u64 {
            let client = i % 5;
            let k = correct.next_kv_op(&mut rng, client).key().clone();
            assert!(!is_faulty_key(&k));
            correct_keys.insert(k);
            let k = faulty.next_kv_op(&mut rng, client).key().clone();
            assert!(is_faulty_key(&k));
            faulty_keys.insert(k);
        }
        assert!(correct_keys.is_disjoint(&faulty_keys));
        assert!(correct_keys.contains(HOT_KEY) && faulty_keys.contains(&b"faulty/hot"[..]));
    }

    #[test]
    fn counter_mix() {
        let w = CounterWorkload::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let mut adds = 0;
        for _ in 0..n {
            let (bytes, ro) = w.next_op(&mut rng, 0);
            assert!(!ro);
            match CounterOp::decode(&bytes).unwrap() {
                CounterOp::Add(1) => adds += 1,
                CounterOp::Get => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!((adds as f64 / n as f64 - 0.7).abs() < 0.02);
        let w = CounterWorkload { read_only_gets: true };
        for _ in 0..100 {
            let (bytes, ro) = w.next_op(&mut rng, 0);
            assert_eq!(ro, CounterOp::decode(&bytes).unwrap() == CounterOp::Get);
        }
    }
}

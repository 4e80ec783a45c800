//! A replicated key-value store.
//!
//! Keys and values are byte strings. Operations ([`KvOp`]) and replies
//! ([`KvReply`]) travel as postcard encodings (see [`quorate_core::wire`]);
//! [`KvStore`] implements [`Service`] over those encodings:
//!
//! | operation | effect | reply |
//! |---|---|---|
//! | `Get { key }` | none | `Value(current value)` |
//! | `Put { key, value }` | `key := value` | `Value(previous value)` |
//! | `Delete { key }` | remove `key` | `Value(previous value)` |
//! | `Cas { key, expected, new }` | `key := new` iff current `== expected` (`None`: absent) | `Cas(swapped)` |
//!
//! A malformed operation, or one over the size limits ([`MAX_KEY_LEN`],
//! [`MAX_VALUE_LEN`]), changes nothing and gets a [`KvReply::Error`] whose
//! text depends only on the operation bytes, so correct replicas agree on it.
//!
//! Operations on different keys commute, and so do two `Get`s on the same
//! key; [`KvStore::conflicts`](Service::conflicts) reports everything else as
//! a conflict (including anything it cannot decode).

use bytes::Bytes;
use quorate_core::service::{ExecCtx, RestoreError, Service};
use quorate_core::wire::{self, WireError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Largest key a valid operation may carry (1 KiB).
pub const MAX_KEY_LEN: usize = 1 << 10;

/// Largest value a valid operation may carry (16 MiB); applies to `Put`'s
/// value and to both values of a `Cas`.
pub const MAX_VALUE_LEN: usize = 16 << 20;

/// Largest encoded operation [`KvOp::decode`] accepts: room for a key of
/// [`MAX_KEY_LEN`], two values of [`MAX_VALUE_LEN`] (a `Cas`) and the framing.
pub const MAX_OP_LEN: usize = 2 * MAX_VALUE_LEN + MAX_KEY_LEN + 64;

/// Largest encoded reply [`KvReply::decode`] accepts: a value of
/// [`MAX_VALUE_LEN`] plus framing, or an error text.
pub const MAX_REPLY_LEN: usize = MAX_VALUE_LEN + 1024;

/// An operation or reply that cannot be decoded, or an operation over the
/// size limits.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KvError {
    /// Not a valid encoding (or over the frame limit).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLong {
        /// Key length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A value is longer than [`MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

impl KvError {
    /// The text of the [`KvReply::Error`] for this error. It depends only on
    /// the operation bytes and on this crate (not on the wording of the
    /// encoding library's errors), so all correct replicas reply alike.
    pub fn reply_text(&self) -> String {
        match self {
            KvError::Wire(WireError::Malformed(_)) => "malformed operation".to_string(),
            other => other.to_string(),
        }
    }
}

/// An operation on the key-value store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOp {
    /// Read `key`. Replies [`KvReply::Value`] with the current value.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Set `key` to `value`. Replies [`KvReply::Value`] with the previous value.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Remove `key`. Replies [`KvReply::Value`] with the previous value.
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Set `key` to `new` iff its current value equals `expected` (`None`:
    /// the key is absent). Replies [`KvReply::Cas`] with whether it swapped.
    Cas {
        /// The key.
        key: Bytes,
        /// The value the key must have (`None`: must be absent).
        expected: Option<Bytes>,
        /// The value to store on success.
        new: Bytes,
    },
}

impl KvOp {
    /// The wire encoding.
    pub fn encode(&self) -> Bytes {
        Bytes::from(wire::encode(self))
    }

    /// Decode an operation of at most [`MAX_OP_LEN`] bytes. Does not check
    /// the key and value limits (see [`KvOp::check_limits`]).
    pub fn decode(bytes: &[u8]) -> Result<KvOp, KvError> {
        Ok(wire::decode(bytes, MAX_OP_LEN)?)
    }

    /// The key the operation reads or writes.
    pub fn key(&self) -> &Bytes {
        match self {
            KvOp::Get { key } | KvOp::Put { key, .. } | KvOp::Delete { key } | KvOp::Cas { key, .. } => key,
        }
    }

    /// Whether the operation never changes state (only `Get`).
    pub fn is_read_only(&self) -> bool {
        matches!(self, KvOp::Get { .. })
    }

    /// Check the key against [`MAX_KEY_LEN`] and the values against
    /// [`MAX_VALUE_LEN`].
    pub fn check_limits(&self) -> Result<(), KvError> {
        check_key(self.key())?;
        match self {
            KvOp::Get { .. } | KvOp::Delete { .. } => Ok(()),
            KvOp::Put { value, .. } => check_value(value),
            KvOp::Cas { expected, new, .. } => {
                if let Some(expected) = expected {
                    check_value(expected)?;
                }
                check_value(new)
            }
        }
    }

    /// Decode and check the limits: what [`KvStore`] accepts.
    pub fn decode_valid(bytes: &[u8]) -> Result<KvOp, KvError> {
        let op = KvOp::decode(bytes)?;
        op.check_limits()?;
        Ok(op)
    }
}

fn check_key(key: &[u8]) -> Result<(), KvError> {
    if key.len() > MAX_KEY_LEN {
        return Err(KvError::KeyTooLong { len: key.len(), max: MAX_KEY_LEN });
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(KvError::ValueTooLarge { len: value.len(), max: MAX_VALUE_LEN });
    }
    Ok(())
}

/// The reply to a [`KvOp`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvReply {
    /// `Get`: the current value; `Put` and `Delete`: the previous value
    /// (`None`: the key was absent).
    Value(Option<Bytes>),
    /// `Cas`: whether the value was swapped.
    Cas(bool),
    /// The operation was malformed, over the limits, or (through
    /// [`Service::query`]) not read-only; nothing changed.
    Error(String),
}

impl KvReply {
    /// The wire encoding.
    pub fn encode(&self) -> Bytes {
        Bytes::from(wire::encode(self))
    }

    /// Decode a reply of at most [`MAX_REPLY_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<KvReply, KvError> {
        Ok(wire::decode(bytes, MAX_REPLY_LEN)?)
    }
}

/// The replicated key-value store: a [`BTreeMap`] from keys to values.
///
/// Every stored key and value is within [`MAX_KEY_LEN`] and
/// [`MAX_VALUE_LEN`]: operations over the limits are refused, and so are
/// snapshots holding such entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    map: BTreeMap<Bytes, Bytes>,
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// All entries, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.map.iter()
    }

    /// Apply a decoded operation: the typed form of [`Service::execute`].
    /// An operation over the limits changes nothing and gets an error reply.
    pub fn apply(&mut self, op: KvOp) -> KvReply {
        if let Err(e) = op.check_limits() {
            return KvReply::Error(e.reply_text());
        }
        match op {
            KvOp::Get { key } => KvReply::Value(self.map.get(&key).cloned()),
            KvOp::Put { key, value } => KvReply::Value(self.map.insert(key, value)),
            KvOp::Delete { key } => KvReply::Value(self.map.remove(&key)),
            KvOp::Cas { key, expected, new } => {
                if self.map.get(&key) == expected.as_ref() {
                    self.map.insert(key, new);
                    KvReply::Cas(true)
                } else {
                    KvReply::Cas(false)
                }
            }
        }
    }

    /// Answer a decoded operation without changing state: the typed form of
    /// [`Service::query`]. Only `Get` is answered; anything else gets an
    /// error reply.
    pub fn read(&self, op: &KvOp) -> KvReply {
        if let Err(e) = op.check_limits() {
            return KvReply::Error(e.reply_text());
        }
        match op {
            KvOp::Get { key } => KvReply::Value(self.map.get(key).cloned()),
            _ => KvReply::Error("only Get can be answered without ordering".to_string()),
        }
    }
}

impl Service for KvStore {
    fn execute(&mut self, op: &[u8], _ctx: &ExecCtx) -> Bytes {
        match KvOp::decode(op) {
            Ok(op) => self.apply(op),
            Err(e) => KvReply::Error(e.reply_text()),
        }
        .encode()
    }

    fn query(&self, op: &[u8]) -> Bytes {
        match KvOp::decode(op) {
            Ok(op) => self.read(&op),
            Err(e) => KvReply::Error(e.reply_text()),
        }
        .encode()
    }

    /// The postcard encoding of the entries in key order: the number of
    /// entries, then each key and value (length-prefixed).
    fn snapshot(&self) -> Bytes {
        Bytes::from(wire::encode(&self.map))
    }

    /// Accepts exactly what [`Service::snapshot`] can produce: canonically
    /// encoded entries in strictly increasing key order, within the size
    /// limits. On error the state is unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        // A map and a sequence of pairs have the same postcard encoding.
        let entries: Vec<(Bytes, Bytes)> =
            wire::decode(snapshot, usize::MAX).map_err(|e| RestoreError(format!("key-value snapshot: {e}")))?;
        for (i, (key, value)) in entries.iter().enumerate() {
            check_key(key).and_then(|()| check_value(value)).map_err(|e| RestoreError(format!("entry {i}: {e}")))?;
            if i > 0 && entries[i - 1].0 >= *key {
                return Err(RestoreError(format!("entry {i}: keys not in strictly increasing order")));
            }
        }
        let map: BTreeMap<Bytes, Bytes> = entries.into_iter().collect();
        // Refuse non-canonical encodings (e.g. overlong varints), so that a
        // restored store's snapshot is exactly the bytes it was restored from.
        if wire::encode(&map) != snapshot {
            return Err(RestoreError("key-value snapshot: not canonically encoded".to_string()));
        }
        self.map = map;
        Ok(())
    }

    /// Two operations conflict iff they touch the same key and are not both
    /// `Get`s. Anything that does not decode conflicts with everything.
    fn conflicts(&self, a: &[u8], b: &[u8]) -> bool {
        match (KvOp::decode(a), KvOp::decode(b)) {
            (Ok(a), Ok(b)) => a.key() == b.key() && !(a.is_read_only() && b.is_read_only()),
            _ => true,
        }
    }

    /// The key; an operation that does not decode has none (it conflicts with everything).
    fn conflict_key(&self, op: &[u8]) -> Option<Bytes> {
        KvOp::decode(op).ok().map(|o| o.key().clone())
    }

    /// Decodes, with the key within [`MAX_KEY_LEN`] and values within
    /// [`MAX_VALUE_LEN`].
    fn validate(&self, op: &[u8]) -> bool {
        KvOp::decode_valid(op).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorate_core::ClientId;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn ctx(slot: u64) -> ExecCtx {
        ExecCtx { slot, instance: slot, timestamp: 0, client: ClientId(1), seq: slot }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn get(k: &str) -> KvOp {
        KvOp::Get { key: b(k) }
    }
    fn put(k: &str, v: &str) -> KvOp {
        KvOp::Put { key: b(k), value: b(v) }
    }
    fn del(k: &str) -> KvOp {
        KvOp::Delete { key: b(k) }
    }
    fn cas(k: &str, expected: Option<&str>, new: &str) -> KvOp {
        KvOp::Cas { key: b(k), expected: expected.map(b), new: b(new) }
    }

    /// Execute through the byte interface and decode the reply.
    fn exec(s: &mut KvStore, op: &KvOp) -> KvReply {
        KvReply::decode(&s.execute(&op.encode(), &ctx(0))).unwrap()
    }

    fn val(v: Option<&str>) -> KvReply {
        KvReply::Value(v.map(b))
    }

    #[test]
    fn get_put_delete() {
        let mut s = KvStore::new();
        assert_eq!(exec(&mut s, &get("a")), val(None));
        assert_eq!(exec(&mut s, &put("a", "1")), val(None));
        assert_eq!(exec(&mut s, &get("a")), val(Some("1")));
        assert_eq!(exec(&mut s, &put("a", "2")), val(Some("1")));
        assert_eq!(exec(&mut s, &get("a")), val(Some("2")));
        assert_eq!(exec(&mut s, &get("b")), val(None));
        assert_eq!(exec(&mut s, &del("a")), val(Some("2")));
        assert_eq!(exec(&mut s, &del("a")), val(None));
        assert_eq!(exec(&mut s, &get("a")), val(None));
        assert!(s.is_empty());
        // Empty keys and values are ordinary.
        assert_eq!(exec(&mut s, &put("", "")), val(None));
        assert_eq!(exec(&mut s, &get("")), val(Some("")));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn cas_semantics() {
        let mut s = KvStore::new();
        // Absent key: only expected == None swaps.
        assert_eq!(exec(&mut s, &cas("k", Some("x"), "1")), KvReply::Cas(false));
        assert_eq!(s.get(b"k"), None);
        assert_eq!(exec(&mut s, &cas("k", None, "1")), KvReply::Cas(true));
        assert_eq!(s.get(b"k"), Some(&b("1")));
        // Present key: None does not match, the current value does.
        assert_eq!(exec(&mut s, &cas("k", None, "2")), KvReply::Cas(false));
        assert_eq!(exec(&mut s, &cas("k", Some("0"), "2")), KvReply::Cas(false));
        assert_eq!(s.get(b"k"), Some(&b("1")));
        assert_eq!(exec(&mut s, &cas("k", Some("1"), "2")), KvReply::Cas(true));
        assert_eq!(s.get(b"k"), Some(&b("2")));
        // An empty value is present, not absent.
        assert_eq!(exec(&mut s, &put("e", "")), val(None));
        assert_eq!(exec(&mut s, &cas("e", None, "z")), KvReply::Cas(false));
        assert_eq!(exec(&mut s, &cas("e", Some(""), "z")), KvReply::Cas(true));
        assert_eq!(exec(&mut s, &get("e")), val(Some("z")));
    }

    #[test]
    fn query_answers_only_get_and_changes_nothing() {
        let mut s = KvStore::new();
        exec(&mut s, &put("a", "1"));
        let before = s.snapshot();
        assert_eq!(KvReply::decode(&s.query(&get("a").encode())).unwrap(), val(Some("1")));
        assert_eq!(KvReply::decode(&s.query(&get("z").encode())).unwrap(), val(None));
        for op in [put("a", "2"), del("a"), cas("a", Some("1"), "3")] {
            assert!(matches!(KvReply::decode(&s.query(&op.encode())).unwrap(), KvReply::Error(_)));
        }
        assert!(matches!(KvReply::decode(&s.query(&[0xff, 0xff])).unwrap(), KvReply::Error(_)));
        assert_eq!(s.snapshot(), before);
    }

    #[test]
    fn op_and_reply_roundtrip() {
        let ops = [get("a"), put("a", "v"), del(""), cas("k", None, "n"), cas("k", Some("e"), "")];
        for op in ops {
            assert_eq!(KvOp::decode(&op.encode()).unwrap(), op);
        }
        let replies = [val(None), val(Some("x")), KvReply::Cas(true), KvReply::Cas(false), KvReply::Error("e".into())];
        for r in replies {
            assert_eq!(KvReply::decode(&r.encode()).unwrap(), r);
        }
        assert_eq!(put("a", "b").key(), &b("a"));
        assert!(get("a").is_read_only());
        assert!(!put("a", "b").is_read_only() && !del("a").is_read_only() && !cas("a", None, "b").is_read_only());
    }

    #[test]
    fn malformed_and_oversized_ops_are_refused() {
        let mut s = KvStore::new();
        exec(&mut s, &put("a", "1"));
        let before = s.snapshot();
        let mut trailing = put("a", "2").encode().to_vec();
        trailing.push(0);
        for bad in [&[][..], &[9][..], &[1, 5, b'a'][..], &trailing[..]] {
            assert!(!s.validate(bad));
            let r = KvReply::decode(&s.execute(bad, &ctx(0))).unwrap();
            assert!(matches!(r, KvReply::Error(_)), "{r:?}");
        }
        let long_key = KvOp::Put { key: Bytes::from(vec![b'k'; MAX_KEY_LEN + 1]), value: b("v") };
        assert!(matches!(long_key.check_limits(), Err(KvError::KeyTooLong { .. })));
        assert!(!s.validate(&long_key.encode()));
        assert!(matches!(exec(&mut s, &long_key), KvReply::Error(_)));
        let ok_key = KvOp::Put { key: Bytes::from(vec![b'k'; MAX_KEY_LEN]), value: b("v") };
        assert!(s.validate(&ok_key.encode()));
        let big = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
        let big_cas = KvOp::Cas { key: b("a"), expected: Some(big.clone()), new: b("x") };
        assert!(matches!(big_cas.check_limits(), Err(KvError::ValueTooLarge { .. })));
        assert!(matches!(exec(&mut s, &big_cas), KvReply::Error(_)));
        let big_put = KvOp::Put { key: b("a"), value: big };
        assert!(!s.validate(&big_put.encode()));
        assert!(matches!(exec(&mut s, &big_put), KvReply::Error(_)));
        // Largest valid Cas fits the frame limit.
        let max = Bytes::from(vec![1u8; MAX_VALUE_LEN]);
        let max_cas = KvOp::Cas { key: Bytes::from(vec![b'k'; MAX_KEY_LEN]), expected: Some(max.clone()), new: max };
        assert!(s.validate(&max_cas.encode()));
        assert_eq!(s.snapshot(), before);
        // Error text is stable: the same bytes give the same reply everywhere.
        assert_eq!(s.execute(&[9], &ctx(0)), KvStore::new().execute(&[9], &ctx(5)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut s = KvStore::new();
        let mut t = KvStore::new();
        let valid = [put("key", "value"), cas("key", Some("value"), "x"), get("key"), del("key")];
        for i in 0..1000 {
            let buf: Vec<u8> = if i % 2 == 0 {
                let len = rng.gen_range(0..64u32) as usize;
                (0..len).map(|_| rng.gen()).collect()
            } else {
                // Mutations of valid encodings reach deeper into the decoder.
                let mut v = valid[i % valid.len()].encode().to_vec();
                for _ in 0..rng.gen_range(1..4u32) {
                    let j = rng.gen_range(0..v.len() as u32) as usize;
                    v[j] = rng.gen();
                }
                v.truncate(rng.gen_range(0..=v.len() as u32) as usize);
                v
            };
            let r1 = s.execute(&buf, &ctx(i as u64));
            let r2 = t.execute(&buf, &ctx(i as u64));
            assert_eq!(r1, r2);
            assert!(KvReply::decode(&r1).is_ok());
            assert!(KvReply::decode(&s.query(&buf)).is_ok());
            let _ = KvOp::decode(&buf);
            let _ = KvReply::decode(&buf);
            let _ = s.validate(&buf);
            let _ = s.conflicts(&buf, &buf);
            let mut u = KvStore::new();
            if u.restore(&buf).is_ok() {
                // Whatever restores is canonical.
                assert_eq!(u.snapshot(), Bytes::from(buf.clone()));
            }
        }
        assert_eq!(s.snapshot(), t.snapshot());
    }

    fn random_op(rng: &mut ChaCha8Rng) -> KvOp {
        let key = b(&format!("k{}", rng.gen_range(0..6u32)));
        let v = |rng: &mut ChaCha8Rng| b(&format!("v{}", rng.gen_range(0..4u32)));
        match rng.gen_range(0..4u32) {
            0 => KvOp::Get { key },
            1 => KvOp::Put { key, value: v(rng) },
            2 => KvOp::Delete { key },
            _ => KvOp::Cas { key, expected: if rng.gen() { None } else { Some(v(rng)) }, new: v(rng) },
        }
    }

    #[test]
    fn same_ops_same_snapshots_and_replies() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ops: Vec<Bytes> = (0..2000).map(|_| random_op(&mut rng).encode()).collect();
        let mut a = KvStore::new();
        let mut c = KvStore::new();
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(a.execute(op, &ctx(i as u64)), c.execute(op, &ctx(i as u64 + 100)));
        }
        assert!(!a.is_empty());
        assert_eq!(a.snapshot(), c.snapshot());
        assert_eq!(a.digest(), c.digest());
    }

    #[test]
    fn snapshot_restore_roundtrip() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut a = KvStore::new();
        assert!(KvStore::new().restore(&a.snapshot()).is_ok());
        for i in 0..500 {
            a.execute(&random_op(&mut rng).encode(), &ctx(i));
        }
        let snap = a.snapshot();
        let mut r = KvStore::new();
        r.execute(&put("junk", "x").encode(), &ctx(0));
        r.restore(&snap).unwrap();
        assert_eq!(r.snapshot(), snap);
        assert_eq!(r, a);
        for i in 0..500 {
            let op = random_op(&mut rng).encode();
            assert_eq!(a.execute(&op, &ctx(i)), r.execute(&op, &ctx(i)));
        }
        assert_eq!(a.snapshot(), r.snapshot());
    }

    #[test]
    fn restore_refuses_garbage() {
        let mut s = KvStore::new();
        s.execute(&put("a", "1").encode(), &ctx(0));
        let good = s.snapshot();
        let mut r = KvStore::new();
        assert!(r.restore(&[]).is_err());
        assert!(r.restore(&[5]).is_err());
        assert!(r.restore(&good[..good.len() - 1]).is_err());
        let mut t = good.to_vec();
        t.push(0);
        assert!(r.restore(&t).is_err());
        // Unsorted or duplicate keys are not a snapshot we produce.
        let unsorted: Vec<(Bytes, Bytes)> = vec![(b("b"), b("1")), (b("a"), b("2"))];
        assert!(r.restore(&wire::encode(&unsorted)).is_err());
        let dup: Vec<(Bytes, Bytes)> = vec![(b("a"), b("1")), (b("a"), b("2"))];
        assert!(r.restore(&wire::encode(&dup)).is_err());
        let long: Vec<(Bytes, Bytes)> = vec![(Bytes::from(vec![0; MAX_KEY_LEN + 1]), b("1"))];
        assert!(r.restore(&wire::encode(&long)).is_err());
        // An overlong varint for the entry count (0) is not canonical.
        assert!(r.restore(&[0x80, 0x00]).is_err());
        assert!(r.restore(&[0x00]).is_ok());
        // Failed restores leave the state alone.
        assert!(r.is_empty());
        r.restore(&good).unwrap();
        assert_eq!(r.get(b"a"), Some(&b("1")));
    }

    #[test]
    fn conflicts_table() {
        let s = KvStore::new();
        let same = [get("a"), put("a", "1"), del("a"), cas("a", None, "1")];
        for (i, x) in same.iter().enumerate() {
            for (j, y) in same.iter().enumerate() {
                let expected = !(i == 0 && j == 0);
                assert_eq!(s.conflicts(&x.encode(), &y.encode()), expected, "{x:?} vs {y:?}");
            }
        }
        let other = [get("b"), put("b", "1"), del("b"), cas("b", Some("1"), "2")];
        for x in &same {
            for y in &other {
                assert!(!s.conflicts(&x.encode(), &y.encode()), "{x:?} vs {y:?}");
                assert!(!s.conflicts(&y.encode(), &x.encode()), "{y:?} vs {x:?}");
            }
            assert!(s.conflicts(&x.encode(), &[0xff]));
            assert!(s.conflicts(&[0xff], &x.encode()));
        }
        assert!(s.conflicts(&[], &[]));
    }
}

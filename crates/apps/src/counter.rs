//! A replicated 64-bit counter.
//!
//! [`Counter`] holds one `i64`, starting at 0. [`CounterOp::Add`] adds with
//! **wrapping** arithmetic (two's complement: `i64::MAX + 1 == i64::MIN`) and
//! replies with the new value; [`CounterOp::Get`] replies with the current
//! value. Wrapping keeps every addition invertible and the result independent
//! of anything but the operations, so replicas stay identical.
//!
//! Every operation except `Get` conflicts with every other: only two `Get`s
//! commute.

use bytes::Bytes;
use quorate_core::service::{ExecCtx, RestoreError, Service};
use quorate_core::wire::{self, WireError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest encoded operation [`CounterOp::decode`] accepts (a tag and a
/// varint `i64` need at most 11 bytes).
pub const MAX_COUNTER_OP_LEN: usize = 16;

/// Largest encoded reply [`CounterReply::decode`] accepts.
pub const MAX_COUNTER_REPLY_LEN: usize = 1024;

/// A counter operation or reply that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CounterError {
    /// Not a valid encoding (or over the frame limit).
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl CounterError {
    /// The text of the [`CounterReply::Error`] for this error; it depends
    /// only on the operation bytes, so all correct replicas reply alike.
    pub fn reply_text(&self) -> String {
        match self {
            CounterError::Wire(WireError::Malformed(_)) => "malformed operation".to_string(),
            other => other.to_string(),
        }
    }
}

/// An operation on the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CounterOp {
    /// Add to the counter (wrapping). Replies [`CounterReply::Value`] with the new value.
    Add(i64),
    /// Read the counter. Replies [`CounterReply::Value`] with the current value.
    Get,
}

impl CounterOp {
    /// The wire encoding.
    pub fn encode(&self) -> Bytes {
        Bytes::from(wire::encode(self))
    }

    /// Decode an operation of at most [`MAX_COUNTER_OP_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<CounterOp, CounterError> {
        Ok(wire::decode(bytes, MAX_COUNTER_OP_LEN)?)
    }

    /// Whether the operation never changes state (only `Get`).
    pub fn is_read_only(&self) -> bool {
        matches!(self, CounterOp::Get)
    }
}

/// The reply to a [`CounterOp`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CounterReply {
    /// The counter's value: after the addition for `Add`, current for `Get`.
    Value(i64),
    /// The operation was malformed or (through [`Service::query`]) not
    /// read-only; nothing changed.
    Error(String),
}

impl CounterReply {
    /// The wire encoding.
    pub fn encode(&self) -> Bytes {
        Bytes::from(wire::encode(self))
    }

    /// Decode a reply of at most [`MAX_COUNTER_REPLY_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<CounterReply, CounterError> {
        Ok(wire::decode(bytes, MAX_COUNTER_REPLY_LEN)?)
    }
}

/// The replicated counter service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    value: i64,
}

impl Counter {
    /// A counter at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current value.
    pub fn value(&self) -> i64 {
        self.value
    }

    /// Apply a decoded operation: the typed form of [`Service::execute`].
    pub fn apply(&mut self, op: CounterOp) -> CounterReply {
        if let CounterOp::Add(n) = op {
            self.value = self.value.wrapping_add(n);
        }
        CounterReply::Value(self.value)
    }

    /// Answer a decoded operation without changing state: the typed form of
    /// [`Service::query`]. Only `Get` is answered.
    pub fn read(&self, op: &CounterOp) -> CounterReply {
        match op {
            CounterOp::Get => CounterReply::Value(self.value),
            CounterOp::Add(_) => CounterReply::Error("only Get can be answered without ordering".to_string()),
        }
    }
}

impl Service for Counter {
    fn execute(&mut self, op: &[u8], _ctx: &ExecCtx) -> Bytes {
        match CounterOp::decode(op) {
            Ok(op) => self.apply(op),
            Err(e) => CounterReply::Error(e.reply_text()),
        }
        .encode()
    }

    fn query(&self, op: &[u8]) -> Bytes {
        match CounterOp::decode(op) {
            Ok(op) => self.read(&op),
            Err(e) => CounterReply::Error(e.reply_text()),
        }
        .encode()
    }

    /// The postcard encoding of the value (a zigzag varint).
    fn snapshot(&self) -> Bytes {
        Bytes::from(wire::encode(&self.value))
    }

    /// Accepts exactly what [`Service::snapshot`] can produce (canonical
    /// encodings only). On error the state is unchanged.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        let value: i64 =
            wire::decode(snapshot, MAX_COUNTER_OP_LEN).map_err(|e| RestoreError(format!("counter snapshot: {e}")))?;
        if wire::encode(&value) != snapshot {
            return Err(RestoreError("counter snapshot: not canonically encoded".to_string()));
        }
        self.value = value;
        Ok(())
    }

    /// Everything conflicts except two `Get`s; anything that does not decode
    /// conflicts with everything.
    fn conflicts(&self, a: &[u8], b: &[u8]) -> bool {
        !matches!((CounterOp::decode(a), CounterOp::decode(b)), (Ok(CounterOp::Get), Ok(CounterOp::Get)))
    }

    /// Whether the operation decodes.
    fn validate(&self, op: &[u8]) -> bool {
        CounterOp::decode(op).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quorate_core::ClientId;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn ctx(slot: u64) -> ExecCtx {
        ExecCtx { slot, instance: slot, timestamp: 0, client: ClientId(3), seq: slot }
    }

    fn exec(c: &mut Counter, op: CounterOp) -> CounterReply {
        CounterReply::decode(&c.execute(&op.encode(), &ctx(0))).unwrap()
    }

    #[test]
    fn add_and_get() {
        let mut c = Counter::new();
        assert_eq!(exec(&mut c, CounterOp::Get), CounterReply::Value(0));
        assert_eq!(exec(&mut c, CounterOp::Add(5)), CounterReply::Value(5));
        assert_eq!(exec(&mut c, CounterOp::Add(-7)), CounterReply::Value(-2));
        assert_eq!(exec(&mut c, CounterOp::Get), CounterReply::Value(-2));
        assert_eq!(c.value(), -2);
    }

    #[test]
    fn add_wraps() {
        let mut c = Counter::new();
        exec(&mut c, CounterOp::Add(i64::MAX));
        assert_eq!(exec(&mut c, CounterOp::Add(1)), CounterReply::Value(i64::MIN));
        assert_eq!(exec(&mut c, CounterOp::Add(-1)), CounterReply::Value(i64::MAX));
        assert_eq!(exec(&mut c, CounterOp::Add(i64::MIN)), CounterReply::Value(-1));
    }

    #[test]
    fn query_answers_only_get() {
        let mut c = Counter::new();
        exec(&mut c, CounterOp::Add(3));
        assert_eq!(CounterReply::decode(&c.query(&CounterOp::Get.encode())).unwrap(), CounterReply::Value(3));
        let r = CounterReply::decode(&c.query(&CounterOp::Add(1).encode())).unwrap();
        assert!(matches!(r, CounterReply::Error(_)));
        assert!(matches!(CounterReply::decode(&c.query(&[7])).unwrap(), CounterReply::Error(_)));
        assert_eq!(c.value(), 3);
    }

    #[test]
    fn roundtrips() {
        for op in [CounterOp::Get, CounterOp::Add(0), CounterOp::Add(i64::MIN), CounterOp::Add(i64::MAX)] {
            let e = op.encode();
            assert!(e.len() <= MAX_COUNTER_OP_LEN);
            assert_eq!(CounterOp::decode(&e).unwrap(), op);
        }
        for r in [CounterReply::Value(-9), CounterReply::Error("x".into())] {
            assert_eq!(CounterReply::decode(&r.encode()).unwrap(), r);
        }
        assert!(CounterOp::Get.is_read_only() && !CounterOp::Add(1).is_read_only());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut a = Counter::new();
        let mut b = Counter::new();
        for i in 0..1000u64 {
            let len = rng.gen_range(0..24u32) as usize;
            let buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let r = a.execute(&buf, &ctx(i));
            assert_eq!(r, b.execute(&buf, &ctx(i)));
            assert!(CounterReply::decode(&r).is_ok());
            assert!(CounterReply::decode(&a.query(&buf)).is_ok());
            let _ = CounterOp::decode(&buf);
            let _ = CounterReply::decode(&buf);
            let _ = a.validate(&buf);
            let mut c = Counter::new();
            if c.restore(&buf).is_ok() {
                assert_eq!(c.snapshot(), Bytes::from(buf));
            }
        }
        assert_eq!(a.snapshot(), b.snapshot());
    }

    #[test]
    fn snapshot_restore() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut a = Counter::new();
        for i in 0..200 {
            a.execute(&CounterOp::Add(rng.gen()).encode(), &ctx(i));
        }
        let snap = a.snapshot();
        let mut r = Counter::new();
        r.restore(&snap).unwrap();
        assert_eq!(r.snapshot(), snap);
        assert_eq!(r, a);
        for i in 0..100 {
            let op = CounterOp::Add(rng.gen_range(-5..5)).encode();
            assert_eq!(a.execute(&op, &ctx(i)), r.execute(&op, &ctx(i)));
        }
        assert_eq!(a.snapshot(), r.snapshot());
        let before = r.value();
        assert!(r.restore(&[]).is_err());
        assert!(r.restore(&[0x80, 0x00]).is_err()); // overlong zero
        let mut t = snap.to_vec();
        t.push(1);
        assert!(r.restore(&t).is_err());
        assert_eq!(r.value(), before);
    }

    #[test]
    fn conflicts_table() {
        let c = Counter::new();
        let get = CounterOp::Get.encode();
        let add = CounterOp::Add(1).encode();
        assert!(!c.conflicts(&get, &get));
        assert!(c.conflicts(&get, &add));
        assert!(c.conflicts(&add, &get));
        assert!(c.conflicts(&add, &add));
        assert!(c.conflicts(&get, &[0xff]));
        assert!(c.conflicts(&[0xff], &get));
        assert!(c.validate(&add) && !c.validate(&[0xff]));
    }
}

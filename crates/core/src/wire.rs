//! Wire encoding: every message has one encoding and a size.
//!
//! Messages are serde types encoded with postcard (compact, varint integers).
//! Decoding refuses frames over a limit and reports malformed input as an
//! error, never a panic.

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// Default largest frame a node accepts (64 MiB).
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// A frame that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// Larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    Oversize {
        /// Frame size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Not a valid encoding.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Valid, but bytes left over.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// An enum whose leading variant index names no variant: a message kind
    /// this node does not know (a newer or foreign peer, or garbage).
    #[error("unknown message kind {index} (this node knows {known})")]
    UnknownKind {
        /// The variant index found.
        index: u32,
        /// How many kinds there are.
        known: usize,
    },
}

impl WireError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Oversize { .. } => "oversize frame",
            WireError::Malformed(_) | WireError::Trailing(_) => "malformed message",
            WireError::UnknownKind { .. } => "unknown message kind",
        }
    }
}

/// Encode a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding into a Vec cannot fail for our types")
}

/// Encode a value after `prefix` (a header of the layer that carries it), in one buffer.
pub fn encode_after<T: Serialize>(prefix: &[u8], value: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(prefix.len() + 120);
    buf.extend_from_slice(prefix);
    postcard::to_extend(value, buf).expect("encoding into a Vec cannot fail for our types")
}

/// Size of the encoding of a value, without allocating it.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(0)
}

/// Decode a value from a whole frame of at most `limit` bytes.
pub fn decode<T: DeserializeOwned>(frame: &[u8], limit: usize) -> Result<T, WireError> {
    if frame.len() > limit {
        return Err(WireError::Oversize { size: frame.len(), limit });
    }
    let (value, rest) = postcard::take_from_bytes(frame).map_err(|e| {
        // An enum encoding starts with its variant index: tell an unknown kind from garbage.
        match (variant_count::<T>(), postcard::take_from_bytes::<u32>(frame)) {
            (Some(known), Ok((index, _))) if index as usize >= known => WireError::UnknownKind { index, known },
            _ => WireError::Malformed(e.to_string()),
        }
    })?;
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok(value)
}

/// The number of variants of `T` if `T` is an enum. Asks `T`'s own
/// `Deserialize` impl, which names its variants to the deserializer.
fn variant_count<T: DeserializeOwned>() -> Option<usize> {
    match T::deserialize(EnumProbe) {
        Err(ProbeResult(n)) => n,
        Ok(_) => None,
    }
}

struct EnumProbe;

#[derive(Debug)]
struct ProbeResult(Option<usize>);

impl std::fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "enum probe")
    }
}

impl std::error::Error for ProbeResult {}

impl serde::de::Error for ProbeResult {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        ProbeResult(None)
    }
}

impl<'de> serde::Deserializer<'de> for EnumProbe {
    type Error = ProbeResult;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeResult> {
        Err(ProbeResult(None))
    }
    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeResult> {
        Err(ProbeResult(Some(variants.len())))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum M {
        A { x: u64, data: Vec<u8> },
        B(u32),
    }

    #[test]
    fn roundtrip_and_size() {
        let m = M::A { x: 300, data: vec![1, 2, 3] };
        let b = encode(&m);
        assert_eq!(encoded_len(&m), b.len());
        assert_eq!(decode::<M>(&b, 1024), Ok(m));
    }

    #[test]
    fn bad_frames_are_errors() {
        let b = encode(&M::B(5));
        assert!(matches!(decode::<M>(&b, 1), Err(WireError::Oversize { .. })));
        assert!(matches!(decode::<M>(&[1], 1024), Err(WireError::Malformed(_))));
        assert!(matches!(decode::<M>(&[9, 9, 9], 1024), Err(WireError::UnknownKind { index: 9, .. })));
        assert!(matches!(decode::<M>(&[], 1024), Err(WireError::Malformed(_))));
        let mut t = b.clone();
        t.push(0);
        assert_eq!(decode::<M>(&t, 1024), Err(WireError::Trailing(1)));
        let a = encode(&M::A { x: 1, data: vec![7; 100] });
        assert!(matches!(decode::<M>(&a[..50], 1024), Err(WireError::Malformed(_))));
        assert_eq!(decode::<M>(&[2, 0], 1024), Err(WireError::UnknownKind { index: 2, known: 2 }));
        assert_eq!(decode::<M>(&[0x80, 0x01], 1024), Err(WireError::UnknownKind { index: 128, known: 2 }));
        assert!(matches!(decode::<u64>(&[0xff; 12], 1024), Err(WireError::Malformed(_))));
    }
}

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
}

/// Encode a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding into a Vec cannot fail for our types")
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
    let (value, rest) = postcard::take_from_bytes(frame).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok(value)
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
        assert!(matches!(decode::<M>(&[9, 9, 9], 1024), Err(WireError::Malformed(_))));
        assert!(matches!(decode::<M>(&[], 1024), Err(WireError::Malformed(_))));
        let mut t = b.clone();
        t.push(0);
        assert_eq!(decode::<M>(&t, 1024), Err(WireError::Trailing(1)));
        let a = encode(&M::A { x: 1, data: vec![7; 100] });
        assert!(matches!(decode::<M>(&a[..50], 1024), Err(WireError::Malformed(_))));
    }
}

//! Frames on client connections. One connection carries the sessions of
//! several clients (see [`crate::ClientHost`]), so each frame names its client:
//! `client id: u64 big-endian ‖ message`. The replica checks that the
//! connection's authenticated key is that client's key.

use bytes::Bytes;
use quorate_core::ids::ClientId;
use quorate_core::wire::{self, WireError};
use serde::{de::DeserializeOwned, Serialize};

/// Bytes before the message.
pub const HEADER: usize = 8;

/// A frame carrying `msg` to or from client `id`.
pub fn encode<M: Serialize>(id: ClientId, msg: &M) -> Bytes {
    Bytes::from(wire::encode_after(&id.0.to_be_bytes(), msg))
}

/// The client and message of a frame; the message at most `limit` bytes.
pub fn decode<M: DeserializeOwned>(frame: &[u8], limit: usize) -> Result<(ClientId, M), WireError> {
    let Some((id, body)) = frame.split_first_chunk::<HEADER>() else {
        return Err(WireError::Malformed(format!("{} bytes: shorter than a session header", frame.len())));
    };
    Ok((ClientId(u64::from_be_bytes(*id)), wire::decode(body, limit)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_frames() {
        let f = encode(ClientId(7), &(1u32, "op".to_string()));
        assert_eq!(&f[..HEADER], &7u64.to_be_bytes());
        let (id, m): (ClientId, (u32, String)) = decode(&f, 1024).unwrap();
        assert_eq!((id, m), (ClientId(7), (1, "op".to_string())));
        assert!(matches!(decode::<u32>(&f[..5], 1024), Err(WireError::Malformed(_))));
        assert!(matches!(decode::<(u32, String)>(&f, 2), Err(WireError::Oversize { .. })));
    }
}

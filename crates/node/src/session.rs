//! Frames on client connections. One connection carries the sessions of
//! several clients (see [`crate::ClientHost`]), so each frame names its client:
//! `client id: u64 big-endian ‖ message`. The replica checks that the
//! connection's authenticated key is that client's key. A frame with no
//! message opens the session: it makes the connection the client's route for
//! replies before the client has sent anything to that replica (clients of
//! leaderless protocols send to one replica and hear from all).

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

/// The frame that opens client `id`'s session on a connection.
pub fn open(id: ClientId) -> Bytes {
    Bytes::copy_from_slice(&id.0.to_be_bytes())
}

/// The client and message of a frame (none: it opens the session); the message at most `limit` bytes.
pub fn decode<M: DeserializeOwned>(frame: &[u8], limit: usize) -> Result<(ClientId, Option<M>), WireError> {
    let Some((id, body)) = frame.split_first_chunk::<HEADER>() else {
        return Err(WireError::Malformed(format!("{} bytes: shorter than a session header", frame.len())));
    };
    let msg = if body.is_empty() { None } else { Some(wire::decode(body, limit)?) };
    Ok((ClientId(u64::from_be_bytes(*id)), msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_frames() {
        let f = encode(ClientId(7), &(1u32, "op".to_string()));
        assert_eq!(&f[..HEADER], &7u64.to_be_bytes());
        let (id, m): (ClientId, Option<(u32, String)>) = decode(&f, 1024).unwrap();
        assert_eq!((id, m), (ClientId(7), Some((1, "op".to_string()))));
        assert_eq!(decode::<u32>(&open(ClientId(9)), 1024).unwrap(), (ClientId(9), None));
        assert!(matches!(decode::<u32>(&f[..5], 1024), Err(WireError::Malformed(_))));
        assert!(matches!(decode::<(u32, String)>(&f, 2), Err(WireError::Oversize { .. })));
    }
}

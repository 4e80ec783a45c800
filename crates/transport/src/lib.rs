//! quorate transport: authenticated, integrity-protected channels between nodes over any byte stream
//! (TCP in production, `tokio::io::duplex` in tests).
//!
//! # Security goals
//!
//! A [`Channel`] tells the receiver which node sent every frame, and guarantees that within one
//! connection no frame can be modified, replayed, reordered, reflected back or injected. It does
//! **not** encrypt: BFT protocols need authenticated channels, not confidential ones (their
//! messages are replicated to every replica anyway), so we save the cost of a cipher. An
//! attacker on the path can still read traffic, delay it, or cut the connection (which the
//! receiver sees as EOF or [`FrameError::Truncated`]); the protocols above tolerate message loss.
//!
//! # Handshake (version 1)
//!
//! Every node has a long-term Ed25519 key, and every node holds a [`Directory`] of everyone's
//! public keys. Handshake messages are postcard-encoded, each preceded by a 2-byte big-endian
//! length and at most 1 KiB long, and the whole handshake must finish within
//! [`Limits::handshake_timeout`], so a slow, silent or garbage-spewing peer cannot hold a slot.
//!
//! 1. Dialer → acceptor: `Hello { version, from: dialer, to: acceptor, ephemeral: X25519 public
//!    key, nonce: 32 random bytes }`.
//! 2. The acceptor checks the version, that `to` is itself, and that `from` is in the directory and
//!    is not itself. It replies `Reply { hello, signature }`, where `hello` is its own `Hello`
//!    (from: acceptor, to: dialer, fresh ephemeral and nonce) and `signature` is its Ed25519
//!    signature over `"quorate-transport/v1 acceptor signature" ‖ T`. The transcript hash is
//!    `T = SHA-256("quorate-transport/v1 transcript" ‖ postcard(dialer hello) ‖ postcard(acceptor hello))`
//!    (postcard structs are self-delimiting, so the concatenation is unambiguous).
//! 3. The dialer checks the version, that the reply comes `from` the node it meant to reach and is
//!    addressed `to` itself, and verifies the signature with the directory key of that node. It
//!    then sends `Finish { signature }` over `"quorate-transport/v1 dialer signature" ‖ T`.
//! 4. The acceptor verifies that signature with the directory key of the claimed `from`: this is
//!    what rejects a node claiming another node's identity.
//!
//! Both signatures cover both identities, both ephemeral keys and both nonces, so neither side can
//! be tricked into binding the session to the wrong peer, and a recorded handshake cannot be
//! replayed (the other side's ephemeral key and nonce are fresh). Distinct labels keep a dialer
//! signature from being reflected as an acceptor signature. Signatures are checked with
//! `verify_strict`, which rejects malleable signatures and weak public keys.
//!
//! Both sides then compute the X25519 shared secret of the two ephemeral keys, reject it if it is
//! not contributory (a low-order point forced by the peer would make it all zeros, i.e. known to
//! everybody), and derive two 32-byte MAC keys with HKDF-SHA256 (ikm = shared secret, salt = T,
//! info = `"quorate-transport/v1 dialer->acceptor"` or `"... acceptor->dialer"`). Keys are fresh
//! per connection and per direction, so frames cannot be moved across connections or reflected.
//!
//! The dialer learns that the acceptor accepted its `Finish` only implicitly: if it did not, the
//! acceptor drops the connection and the dialer's next read sees EOF. The acceptor signs before
//! the dialer has authenticated (as a TLS server does): the signed transcript contains the
//! acceptor's fresh values and a dedicated label, so it is useless outside this handshake; the
//! cost, one signature per connection attempt, is for the caller to rate-limit.
//!
//! # Frames
//!
//! After the handshake each frame is `len: u32 big-endian ‖ payload ‖ tag`, where `len` counts
//! payload and tag, and `tag` is HMAC-SHA256(direction key, counter as u64 big-endian ‖ payload)
//! truncated to its first 16 bytes (128 bits is ample against online forgery: each failed guess
//! kills the connection). The counter is implicit, starting at 0 in each direction and growing by
//! one per frame, so a replayed, dropped-then-resent or reordered frame fails its MAC. Lengths are
//! checked against [`Limits::max_frame`] before anything is allocated; tags are verified in
//! constant time. Any [`FrameError`] is fatal for the connection.

mod frame;
mod handshake;
#[cfg(test)]
mod tests;

pub use frame::{FrameError, FrameReader, FrameWriter, TAG_LEN};
pub use handshake::{accept, connect, HandshakeError, MAX_HANDSHAKE_MSG, VERSION};

use ed25519_dalek::{SigningKey, VerifyingKey};
use quorate_core::ids::NodeId;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};

/// Who I am: my node id and my long-term signing key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// This node's id.
    pub me: NodeId,
    /// This node's long-term Ed25519 key; its public half must be in every peer's [`Directory`].
    pub key: SigningKey,
}

/// Public keys of every node allowed to take part in a handshake.
pub type Directory = HashMap<NodeId, VerifyingKey>;

/// Resource limits of a connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest frame payload accepted or sent, in bytes; both ends should agree on it.
    pub max_frame: usize,
    /// Deadline for the whole handshake.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_frame: 64 << 20, handshake_timeout: Duration::from_secs(5) }
    }
}

/// An authenticated connection to one peer, ready to be split into a reader and a writer.
pub struct Channel<S> {
    stream: S,
    peer: NodeId,
    send_key: frame::MacKey,
    recv_key: frame::MacKey,
    max_frame: usize,
}

impl<S> Channel<S> {
    /// The authenticated peer at the other end.
    pub fn peer(&self) -> NodeId {
        self.peer
    }
}

impl<S: AsyncRead + AsyncWrite> Channel<S> {
    /// Split into independently usable read and write halves (e.g. for two tasks).
    pub fn split(self) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
        let (r, w) = tokio::io::split(self.stream);
        (FrameReader::new(r, self.recv_key, self.max_frame), FrameWriter::new(w, self.send_key, self.max_frame))
    }
}

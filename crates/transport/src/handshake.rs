//! The handshake that authenticates both ends and derives the per-direction frame keys
//! (the design is in the crate documentation).

use crate::frame::MacKey;
use crate::{Channel, Directory, Identity, Limits};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use hkdf::Hkdf;
use hmac::Mac;
use quorate_core::ids::NodeId;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::future::Future;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use x25519_dalek::{EphemeralSecret, PublicKey, SharedSecret};

/// The handshake protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// Largest handshake message body accepted, in bytes (real ones are under 200).
pub const MAX_HANDSHAKE_MSG: usize = 1024;

const TRANSCRIPT_LABEL: &[u8] = b"quorate-transport/v1 transcript";
const ACCEPTOR_SIG_LABEL: &[u8] = b"quorate-transport/v1 acceptor signature";
const DIALER_SIG_LABEL: &[u8] = b"quorate-transport/v1 dialer signature";
const DIALER_TO_ACCEPTOR: &[u8] = b"quorate-transport/v1 dialer->acceptor";
const ACCEPTOR_TO_DIALER: &[u8] = b"quorate-transport/v1 acceptor->dialer";

/// Why a handshake failed; the connection should be dropped.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The stream failed or closed (e.g. because the peer rejected us).
    #[error("handshake i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not finish within [`Limits::handshake_timeout`].
    #[error("handshake did not finish in time")]
    Timeout,
    /// A message that is too long or does not decode.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    /// The peer speaks another handshake version.
    #[error("peer speaks handshake version {0}, this node speaks {VERSION}")]
    VersionMismatch(u16),
    /// The node is not in the directory.
    #[error("node {0} is not in the directory")]
    UnknownNode(NodeId),
    /// The hello was addressed to another node.
    #[error("hello addressed to {to}, but this node is {me}")]
    WrongDestination {
        /// The addressee named in the hello.
        to: NodeId,
        /// This node.
        me: NodeId,
    },
    /// The dialed peer turned out to be another node.
    #[error("expected to reach {expected}, but the peer is {got}")]
    UnexpectedPeer {
        /// The node we meant to reach.
        expected: NodeId,
        /// The node that answered.
        got: NodeId,
    },
    /// The peer claims to be this very node.
    #[error("peer claims to be this node ({0})")]
    SelfConnection(NodeId),
    /// The peer's signature does not verify under the directory key of the node it claims to be.
    #[error("handshake signature of {0} does not verify")]
    BadSignature(NodeId),
    /// The key exchange produced a non-contributory (all-zero) shared secret.
    #[error("non-contributory key exchange")]
    NonContributory,
}

impl HandshakeError {
    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Io(_) => "io",
            HandshakeError::Timeout => "handshake timeout",
            HandshakeError::Malformed(_) => "malformed handshake",
            HandshakeError::VersionMismatch(_) => "version mismatch",
            HandshakeError::UnknownNode(_) => "unknown node",
            HandshakeError::WrongDestination { .. } => "wrong destination",
            HandshakeError::UnexpectedPeer { .. } => "unexpected peer",
            HandshakeError::SelfConnection(_) => "self connection",
            HandshakeError::BadSignature(_) => "bad handshake signature",
            HandshakeError::NonContributory => "non-contributory key exchange",
        }
    }
}

/// An Ed25519 signature; serde has no impls for `[u8; 64]`, hence two halves.
type SigBytes = [[u8; 32]; 2];

/// First message of each side: who it is, whom it addresses, and its fresh key-exchange values.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct Hello {
    pub version: u16,
    pub from: NodeId,
    pub to: NodeId,
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 32],
}

/// The acceptor's answer: its hello, signed together with the dialer's.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Reply {
    pub hello: Hello,
    pub signature: SigBytes,
}

/// The dialer's last message: its signature over the transcript.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Finish {
    pub signature: SigBytes,
}

impl Hello {
    fn new(from: NodeId, to: NodeId) -> (Hello, EphemeralSecret) {
        let secret = EphemeralSecret::random_from_rng(OsRng);
        let mut nonce = [0; 32];
        OsRng.fill_bytes(&mut nonce);
        (Hello { version: VERSION, from, to, ephemeral: PublicKey::from(&secret).to_bytes(), nonce }, secret)
    }
}

pub(crate) fn transcript(dialer: &Hello, acceptor: &Hello) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRANSCRIPT_LABEL);
    h.update(postcard::to_allocvec(dialer).expect("hello serializes"));
    h.update(postcard::to_allocvec(acceptor).expect("hello serializes"));
    h.finalize().into()
}

pub(crate) fn sign(me: &Identity, label: &[u8], th: &[u8; 32]) -> SigBytes {
    let sig = me.key.sign(&[label, th].concat()).to_bytes();
    [sig[..32].try_into().expect("32 bytes"), sig[32..].try_into().expect("32 bytes")]
}

fn verify(key: &VerifyingKey, label: &[u8], th: &[u8; 32], sig: &SigBytes, who: NodeId) -> Result<(), HandshakeError> {
    let sig = Signature::from_bytes(&sig.concat().try_into().expect("64 bytes"));
    key.verify_strict(&[label, th].concat(), &sig).map_err(|_| HandshakeError::BadSignature(who))
}

pub(crate) async fn send_msg<S: AsyncWrite + Unpin, T: Serialize>(s: &mut S, msg: &T) -> Result<(), HandshakeError> {
    let body = postcard::to_allocvec(msg).expect("handshake messages serialize");
    debug_assert!(body.len() <= MAX_HANDSHAKE_MSG);
    s.write_all(&[&(body.len() as u16).to_be_bytes()[..], &body].concat()).await?;
    s.flush().await?;
    Ok(())
}

pub(crate) async fn recv_msg<S: AsyncRead + Unpin, T: DeserializeOwned>(s: &mut S) -> Result<T, HandshakeError> {
    let mut len = [0; 2];
    s.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    if len > MAX_HANDSHAKE_MSG {
        return Err(HandshakeError::Malformed("oversize handshake message"));
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await?;
    match postcard::take_from_bytes(&body) {
        Ok((msg, [])) => Ok(msg),
        _ => Err(HandshakeError::Malformed("undecodable handshake message")),
    }
}

fn check_version(hello: &Hello) -> Result<(), HandshakeError> {
    if hello.version != VERSION {
        return Err(HandshakeError::VersionMismatch(hello.version));
    }
    Ok(())
}

/// Shared secret of the two ephemerals, refusing one the peer could have forced.
fn exchange(secret: EphemeralSecret, theirs: &Hello) -> Result<SharedSecret, HandshakeError> {
    let shared = secret.diffie_hellman(&PublicKey::from(theirs.ephemeral));
    if !shared.was_contributory() {
        return Err(HandshakeError::NonContributory);
    }
    Ok(shared)
}

/// The (dialer→acceptor, acceptor→dialer) frame keys.
fn derive_keys(shared: &SharedSecret, th: &[u8; 32]) -> (MacKey, MacKey) {
    let hk = Hkdf::<Sha256>::new(Some(th), shared.as_bytes());
    let key = |info: &[u8]| {
        let mut okm = [0; 32];
        hk.expand(info, &mut okm).expect("32 bytes is a valid HKDF-SHA256 output length");
        MacKey::new_from_slice(&okm).expect("HMAC takes keys of any length")
    };
    (key(DIALER_TO_ACCEPTOR), key(ACCEPTOR_TO_DIALER))
}

async fn with_timeout<T>(
    limits: &Limits,
    f: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(limits.handshake_timeout, f).await.map_err(|_| HandshakeError::Timeout)?
}

/// Dial side: run the handshake on an established stream, expecting the peer to be `expected`.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    me: &Identity,
    expected: NodeId,
    dir: &Directory,
    limits: &Limits,
) -> Result<Channel<S>, HandshakeError> {
    let peer_key = dir.get(&expected).ok_or(HandshakeError::UnknownNode(expected))?;
    let (send_key, recv_key) = with_timeout(limits, async {
        let (hello, secret) = Hello::new(me.me, expected);
        send_msg(&mut stream, &hello).await?;
        let reply: Reply = recv_msg(&mut stream).await?;
        check_version(&reply.hello)?;
        if reply.hello.from != expected {
            return Err(HandshakeError::UnexpectedPeer { expected, got: reply.hello.from });
        }
        if reply.hello.to != me.me {
            return Err(HandshakeError::WrongDestination { to: reply.hello.to, me: me.me });
        }
        let th = transcript(&hello, &reply.hello);
        verify(peer_key, ACCEPTOR_SIG_LABEL, &th, &reply.signature, expected)?;
        let shared = exchange(secret, &reply.hello)?;
        send_msg(&mut stream, &Finish { signature: sign(me, DIALER_SIG_LABEL, &th) }).await?;
        Ok(derive_keys(&shared, &th))
    })
    .await?;
    Ok(Channel { stream, peer: expected, send_key, recv_key, max_frame: limits.max_frame })
}

/// Acceptor's answer to a dialer's hello, without any checks of the hello (tests use this to
/// play a misbehaving acceptor).
pub(crate) fn reply_to(me: &Identity, hello: &Hello) -> Result<(Reply, SharedSecret, [u8; 32]), HandshakeError> {
    let (mine, secret) = Hello::new(me.me, hello.from);
    let shared = exchange(secret, hello)?;
    let th = transcript(hello, &mine);
    Ok((Reply { hello: mine, signature: sign(me, ACCEPTOR_SIG_LABEL, &th) }, shared, th))
}

/// Accept side: run the handshake; returns the authenticated peer id.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    me: &Identity,
    dir: &Directory,
    limits: &Limits,
) -> Result<(NodeId, Channel<S>), HandshakeError> {
    let (peer, (recv_key, send_key)) = with_timeout(limits, async {
        let hello: Hello = recv_msg(&mut stream).await?;
        check_version(&hello)?;
        if hello.to != me.me {
            return Err(HandshakeError::WrongDestination { to: hello.to, me: me.me });
        }
        if hello.from == me.me {
            return Err(HandshakeError::SelfConnection(hello.from));
        }
        let peer_key = dir.get(&hello.from).ok_or(HandshakeError::UnknownNode(hello.from))?;
        let (reply, shared, th) = reply_to(me, &hello)?;
        send_msg(&mut stream, &reply).await?;
        let finish: Finish = recv_msg(&mut stream).await?;
        verify(peer_key, DIALER_SIG_LABEL, &th, &finish.signature, hello.from)?;
        Ok((hello.from, derive_keys(&shared, &th)))
    })
    .await?;
    Ok((peer, Channel { stream, peer, send_key, recv_key, max_frame: limits.max_frame }))
}

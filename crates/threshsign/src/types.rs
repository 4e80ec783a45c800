//! Identifiers, the statements that shares and certificates sign, and the
//! wire types (`Share`, `ThresholdSig`, `Cert`).
//!
//! The wire types hold their signature as opaque bytes, so the same types
//! carry real BLS signatures and the simulator's modelled ones; only a
//! [`crate::Scheme`] gives the bytes a meaning.
//!
//! Every signed byte string starts with a domain tag and has a fixed layout
//! (big-endian integers, then the 32-byte hash), so two different statements
//! never encode to the same bytes, and a share of one kind is never valid as
//! another kind.

use quorate_core::wire::{self, WireError};
use quorate_core::{Digest, ReplicaId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest encoding accepted by the `from_bytes` decoders: every wire type
/// here is well under 300 bytes.
const MAX_WIRE: usize = 1024;

/// A ThreshSign instance (Destiny: one per D-instance σ_n, one for the
/// O-instance τ, one for execution replies π).
///
/// The id is bound into every share, so it must be the same number on every
/// replica for one logical instance (digest ambiguity (c)); the dealer fixes
/// the table and hands it to everyone.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceId(pub u32);

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inst{}", self.0)
    }
}

/// A counter of one instance, `0..counters` of its [`InstanceSpec`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterId(pub u32);

impl fmt::Debug for CounterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ctr{}", self.0)
    }
}

/// Whether an instance's shares come from the trusted subsystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Trust {
    /// Signed only inside the trusted subsystem, under a monotonic counter.
    Trusted,
    /// Signed by the replica itself, no counter enforced (Destiny's π).
    Untrusted,
}

/// One instance in the dealer's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Its id.
    pub id: InstanceId,
    /// Trusted (σ_n, τ) or not (π).
    pub trust: Trust,
    /// How many counters it has (ids `0..counters`); bounds the trusted
    /// subsystem's memory. Ignored for untrusted instances.
    pub counters: u32,
}

/// What an independent-counter share (or an untrusted share) signs:
/// (instance, counter, new value, message hash). The old value is left out
/// so that replicas with different histories sign identical bytes and their
/// shares combine (digest ambiguity (a)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Statement {
    /// Instance.
    pub instance: InstanceId,
    /// Counter of that instance.
    pub counter: CounterId,
    /// The counter value bound to the message.
    pub value: u64,
    /// Hash of the message (only the hash ever enters the trusted subsystem).
    pub msg_hash: Digest,
}

/// What a continuing-counter certificate signs: one replica's counter moved
/// from `old_value` to `new_value` (`new_value >= old_value`) for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CertStatement {
    /// The replica whose trusted subsystem made it.
    pub signer: ReplicaId,
    /// Instance.
    pub instance: InstanceId,
    /// Counter of that instance.
    pub counter: CounterId,
    /// The counter's value before.
    pub old_value: u64,
    /// The counter's value after.
    pub new_value: u64,
    /// Hash of the message.
    pub msg_hash: Digest,
}

pub(crate) const TAG_INDEPENDENT: &[u8] = b"quorate-threshsign/v1/independent\0";
pub(crate) const TAG_UNTRUSTED: &[u8] = b"quorate-threshsign/v1/untrusted\0";
pub(crate) const TAG_CONTINUING: &[u8] = b"quorate-threshsign/v1/continuing\0";

impl Statement {
    /// The bytes a share signs. The tag depends on the instance's trust, so a
    /// share of the untrusted key set is never mistaken for a trusted one.
    pub(crate) fn signed_bytes(&self, trust: Trust) -> Vec<u8> {
        let tag = match trust {
            Trust::Trusted => TAG_INDEPENDENT,
            Trust::Untrusted => TAG_UNTRUSTED,
        };
        let mut b = Vec::with_capacity(tag.len() + 4 + 4 + 8 + 32);
        b.extend_from_slice(tag);
        b.extend_from_slice(&self.instance.0.to_be_bytes());
        b.extend_from_slice(&self.counter.0.to_be_bytes());
        b.extend_from_slice(&self.value.to_be_bytes());
        b.extend_from_slice(&self.msg_hash.0);
        b
    }
}

impl CertStatement {
    /// The bytes a certificate signs.
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(TAG_CONTINUING.len() + 4 + 4 + 4 + 8 + 8 + 32);
        b.extend_from_slice(TAG_CONTINUING);
        b.extend_from_slice(&self.signer.0.to_be_bytes());
        b.extend_from_slice(&self.instance.0.to_be_bytes());
        b.extend_from_slice(&self.counter.0.to_be_bytes());
        b.extend_from_slice(&self.old_value.to_be_bytes());
        b.extend_from_slice(&self.new_value.to_be_bytes());
        b.extend_from_slice(&self.msg_hash.0);
        b
    }
}

/// One replica's signature share on a [`Statement`].
///
/// The 96 signature bytes are not parsed when the share is decoded: whether
/// they are a point, and a valid share, is for [`crate::Scheme::verify_share`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// What it signs.
    pub statement: Statement,
    /// Who made it (share index; BLS evaluation point `signer + 1`).
    pub signer: ReplicaId,
    #[serde(with = "raw")]
    pub(crate) sig: [u8; BLS_SIG_BYTES],
}

/// A threshold signature: at least `t` shares on one [`Statement`], combined.
/// Checked with [`crate::Scheme::verify_threshold`] (BLS: against the
/// group's one public key of the instance's key set).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdSig {
    /// What it signs.
    pub statement: Statement,
    #[serde(with = "raw")]
    pub(crate) sig: [u8; BLS_SIG_BYTES],
}

/// A continuing-counter certificate: one replica's individually verifiable
/// attestation (Ed25519, by a per-replica key held by its trusted subsystem)
/// that its counter moved from `old_value` to `new_value` for a message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// What it attests.
    pub statement: CertStatement,
    #[serde(with = "raw")]
    pub(crate) sig: [u8; CERT_SIG_BYTES],
}

/// Size in bytes of a compressed BLS12-381 G2 point (a share or a threshold
/// signature) on the wire.
pub const BLS_SIG_BYTES: usize = blsttc::SIG_SIZE;

/// Size in bytes of a certificate's signature (Ed25519).
pub const CERT_SIG_BYTES: usize = 64;

/// First bytes in hex: enough to tell signatures apart in logs.
fn short_hex(b: &[u8]) -> String {
    b.iter().take(4).map(|x| format!("{x:02x}")).collect()
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share {{ {:?}, {:?}, sig: {}.. }}", self.statement, self.signer, short_hex(&self.sig))
    }
}

impl fmt::Debug for ThresholdSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThresholdSig {{ {:?}, sig: {}.. }}", self.statement, short_hex(&self.sig))
    }
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cert {{ {:?}, sig: {}.. }}", self.statement, short_hex(&self.sig))
    }
}

macro_rules! wire_codec {
    ($t:ty) => {
        impl $t {
            /// Encode (postcard, as every quorate message).
            pub fn to_bytes(&self) -> Vec<u8> {
                wire::encode(self)
            }
            /// Decode; malformed bytes, trailing bytes and oversize input are
            /// errors, never panics. Signature bytes are checked only by a
            /// [`crate::Scheme`].
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
                wire::decode(bytes, MAX_WIRE)
            }
        }
    };
}

wire_codec!(Share);
wire_codec!(ThresholdSig);
wire_codec!(Cert);
wire_codec!(Statement);
wire_codec!(CertStatement);

impl Share {
    /// Rebuild a share from a statement the carrier message already holds,
    /// the signer, and the 96 signature bytes ([`Share::sig_bytes`]); lets a
    /// protocol send the signature alone. Nothing is checked here.
    pub fn from_parts(statement: Statement, signer: ReplicaId, sig: &[u8; BLS_SIG_BYTES]) -> Share {
        Share { statement, signer, sig: *sig }
    }

    /// The signature share's bytes (BLS: a compressed G2 point).
    pub fn sig_bytes(&self) -> [u8; BLS_SIG_BYTES] {
        self.sig
    }
}

impl ThresholdSig {
    /// Rebuild from a statement and the 96 signature bytes; nothing is checked here.
    pub fn from_parts(statement: Statement, sig: &[u8; BLS_SIG_BYTES]) -> ThresholdSig {
        ThresholdSig { statement, sig: *sig }
    }

    /// The signature's bytes (BLS: a compressed G2 point).
    pub fn sig_bytes(&self) -> [u8; BLS_SIG_BYTES] {
        self.sig
    }
}

impl Cert {
    /// Rebuild from a statement and the 64 signature bytes.
    pub fn from_parts(statement: CertStatement, sig: [u8; CERT_SIG_BYTES]) -> Cert {
        Cert { statement, sig }
    }

    /// The signature's bytes (Ed25519).
    pub fn sig_bytes(&self) -> [u8; CERT_SIG_BYTES] {
        self.sig
    }
}

/// Serde for a byte array as a fixed tuple (serde derives stop at 32):
/// postcard writes the bytes raw, with no length prefix, as blsttc did for
/// its points, so the wire format is unchanged.
mod raw {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<const N: usize, S: Serializer>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(N)?;
        for b in v {
            t.serialize_element(b)?;
        }
        t.end()
    }

    pub fn deserialize<'de, const N: usize, D: Deserializer<'de>>(d: D) -> Result<[u8; N], D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(N, V::<N>)
    }
}

//! Identifiers, the statements that shares and certificates sign, and the
//! wire types (`Share`, `ThresholdSig`, `Cert`).
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
/// The point is parsed (and checked to lie in the right subgroup) when the
/// share is decoded, so a `Share` value always holds a well-formed point;
/// whether it is a *valid* share is for [`crate::verify_share`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// What it signs.
    pub statement: Statement,
    /// Who made it (share index; BLS evaluation point `signer + 1`).
    pub signer: ReplicaId,
    pub(crate) sig: blsttc::SignatureShare,
}

/// A threshold signature: at least `t` shares on one [`Statement`], combined.
/// Checked with [`crate::verify_threshold`] against the group's one public
/// key of the instance's key set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdSig {
    /// What it signs.
    pub statement: Statement,
    pub(crate) sig: blsttc::Signature,
}

/// A continuing-counter certificate: one replica's individually verifiable
/// attestation (Ed25519, by a per-replica key held by its trusted subsystem)
/// that its counter moved from `old_value` to `new_value` for a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// What it attests.
    pub statement: CertStatement,
    #[serde(with = "sig64")]
    pub(crate) sig: [u8; 64],
}

/// Size in bytes of a compressed BLS12-381 G2 point (a share or a threshold
/// signature) on the wire.
pub const BLS_SIG_BYTES: usize = blsttc::SIG_SIZE;

macro_rules! wire_codec {
    ($t:ty) => {
        impl $t {
            /// Encode (postcard, as every quorate message).
            pub fn to_bytes(&self) -> Vec<u8> {
                wire::encode(self)
            }
            /// Decode; malformed bytes, bad curve points, trailing bytes and
            /// oversize input are errors, never panics.
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
    /// protocol send the signature alone. Fails if the bytes are not a point.
    pub fn from_parts(statement: Statement, signer: ReplicaId, sig: &[u8; BLS_SIG_BYTES]) -> Result<Share, WireError> {
        let sig = blsttc::SignatureShare::from_bytes(*sig)
            .map_err(|e| WireError::Malformed(format!("signature share: {e}")))?;
        Ok(Share { statement, signer, sig })
    }

    /// The compressed signature share.
    pub fn sig_bytes(&self) -> [u8; BLS_SIG_BYTES] {
        self.sig.to_bytes()
    }
}

impl ThresholdSig {
    /// Rebuild from a statement and the 96 signature bytes.
    pub fn from_parts(statement: Statement, sig: &[u8; BLS_SIG_BYTES]) -> Result<ThresholdSig, WireError> {
        let sig = blsttc::Signature::from_bytes(*sig)
            .map_err(|e| WireError::Malformed(format!("threshold signature: {e}")))?;
        Ok(ThresholdSig { statement, sig })
    }

    /// The compressed signature.
    pub fn sig_bytes(&self) -> [u8; BLS_SIG_BYTES] {
        self.sig.to_bytes()
    }
}

impl Cert {
    /// Rebuild from a statement and the 64 signature bytes.
    pub fn from_parts(statement: CertStatement, sig: [u8; 64]) -> Cert {
        Cert { statement, sig }
    }

    /// The Ed25519 signature.
    pub fn sig_bytes(&self) -> [u8; 64] {
        self.sig
    }
}

/// Serde for a 64-byte array (serde derives stop at 32) as a fixed tuple:
/// postcard writes the 64 bytes raw, with no length prefix.
mod sig64 {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in v {
            t.serialize_element(b)?;
        }
        t.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = [u8; 64];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 64], A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(64, V)
    }
}

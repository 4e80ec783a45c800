//! ThreshSign: the trusted subsystem of Destiny (Arun and Ravindran, PVLDB
//! 15, §4.1.2) and of other hybrid protocols, as a library.
//!
//! Each replica has a trusted subsystem ([`ThreshSign`]) that makes
//! threshold signature shares under monotonic counters, so that a faulty
//! replica cannot bind one counter value to two messages (Uniqueness) nor go
//! back (Monotonicity), and per-replica continuing certificates for view
//! changes; an untrusted signer ([`PlainSign`]) for Destiny's π; and a
//! [`Scheme`] that checks and combines with public material only. A replica
//! gets the three as a [`Provision`]:
//!
//! - [`Provision::bls`] / [`Provision::from_bytes`]: real BLS12-381 and
//!   Ed25519 ([`SoftThreshSign`], [`PlainSigner`], [`BlsScheme`]), with keys
//!   from a trusted dealer ([`keygen`], [`keygen_seeded`]);
//! - [`Provision::modelled`]: the simulator's cheap stand-in
//!   ([`ModelledThreshSign`], [`ModelledPlainSigner`], [`ModelledScheme`]),
//!   which enforces the same rules and charges BLS's modelled CPU costs
//!   through [`quorate_core::Crypto::charge`]. Its key is public: never in
//!   a deployment.
//!
//! Choices and reasons: `docs/decisions/0008-threshsign.md`.
//!
//! ```
//! use quorate_threshsign::*;
//! use quorate_core::Digest;
//!
//! let f = 1;
//! let n = 2 * f + 1;
//! let spec = GroupSpec { n, threshold: f + 1, instances: destiny::instances(n) };
//! let deal = keygen_seeded(&spec, 7).unwrap();
//! let public = deal.public.clone();
//! let mut replicas: Vec<Provision> =
//!     deal.replicas.into_iter().map(|k| Provision::bls(k, public.clone()).unwrap()).collect();
//!
//! let tv = counter::pack_view_seq(0, 1).unwrap();
//! let h = Digest::of(b"D-Prepare ...");
//! let shares: Vec<Share> = replicas[..2]
//!     .iter_mut()
//!     .map(|p| p.trusted.independent_share(destiny::TAU, destiny::AGREEMENT, tv, &h).unwrap())
//!     .collect();
//! let st = Statement { instance: destiny::TAU, counter: destiny::AGREEMENT, value: tv, msg_hash: h };
//! let scheme = &replicas[2].scheme;
//! let sig = scheme.combine(&st, &shares).unwrap();
//! assert!(scheme.verify_threshold(&sig, &st).is_ok());
//! // Uniqueness: the same counter value for another message is refused.
//! let other = Digest::of(b"another");
//! assert!(replicas[0].trusted.independent_share(destiny::TAU, destiny::AGREEMENT, tv, &other).is_err());
//! ```

#![warn(missing_docs)]

pub mod bls;
pub mod counter;
pub mod dealer;
pub mod destiny;
pub mod modelled;
pub mod plain;
pub mod provision;
pub mod scheme;
pub mod trusted;
pub mod types;

pub use bls::BlsScheme;
pub use dealer::{
    keygen, keygen_seeded, Deal, GroupPublic, GroupSpec, KeygenError, ReplicaKeys, TrustedKeys, UntrustedKeys,
};
pub use modelled::{ModelledPlainSigner, ModelledScheme, ModelledThreshSign};
pub use plain::{PlainSign, PlainSigner};
pub use provision::{Provision, ProvisionError};
pub use scheme::{CombineError, Scheme, VerifyError};
pub use trusted::{Refused, SoftThreshSign, ThreshSign};
pub use types::{
    Cert, CertStatement, CounterId, InstanceId, InstanceSpec, Share, Statement, ThresholdSig, Trust, BLS_SIG_BYTES,
    CERT_SIG_BYTES,
};

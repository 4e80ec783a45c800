//! ThreshSign: the trusted subsystem of Destiny (Arun and Ravindran, PVLDB
//! 15, §4.1.2) and of other hybrid protocols, as a library.
//!
//! Each replica has a trusted subsystem ([`ThreshSign`], implemented in
//! software by [`SoftThreshSign`]) that makes BLS12-381 threshold signature
//! shares under monotonic counters, so that a faulty replica cannot bind one
//! counter value to two messages (Uniqueness) nor go back (Monotonicity),
//! and per-replica continuing certificates for view changes. Aggregation
//! and verification run outside it, over a group's public material
//! ([`GroupPublic`]): [`combine`], [`verify_share`], [`verify_threshold`],
//! [`verify_certificate`]. Untrusted threshold signing (Destiny's π) is
//! [`PlainSigner`]. Keys come from a trusted dealer ([`keygen`],
//! [`keygen_seeded`]). Choices and reasons: `docs/decisions/0008-threshsign.md`.
//!
//! ```
//! use quorate_threshsign::*;
//! use quorate_core::{Digest, ReplicaId};
//!
//! let f = 1;
//! let n = 2 * f + 1;
//! let spec = GroupSpec { n, threshold: f + 1, instances: destiny::instances(n) };
//! let deal = keygen_seeded(&spec, 7).unwrap();
//! let mut subsystems: Vec<SoftThreshSign> =
//!     deal.replicas.into_iter().map(|k| SoftThreshSign::new(k.into_parts().0)).collect();
//!
//! let tv = counter::pack_view_seq(0, 1).unwrap();
//! let h = Digest::of(b"D-Prepare ...");
//! let shares: Vec<Share> = subsystems[..2]
//!     .iter_mut()
//!     .map(|s| s.independent_share(destiny::TAU, destiny::AGREEMENT, tv, &h).unwrap())
//!     .collect();
//! let st = Statement { instance: destiny::TAU, counter: destiny::AGREEMENT, value: tv, msg_hash: h };
//! let sig = combine(&deal.public, &st, &shares).unwrap();
//! assert!(verify_threshold(&deal.public, &sig, &st).is_ok());
//! // Uniqueness: the same counter value for another message is refused.
//! let other = Digest::of(b"another");
//! assert!(subsystems[0].independent_share(destiny::TAU, destiny::AGREEMENT, tv, &other).is_err());
//! # let _ = ReplicaId(0);
//! ```

#![warn(missing_docs)]

pub mod counter;
pub mod dealer;
pub mod destiny;
pub mod plain;
pub mod trusted;
pub mod types;
pub mod verify;

pub use dealer::{
    keygen, keygen_seeded, Deal, GroupPublic, GroupSpec, KeygenError, ReplicaKeys, TrustedKeys, UntrustedKeys,
};
pub use plain::PlainSigner;
pub use trusted::{Refused, SoftThreshSign, ThreshSign};
pub use types::{
    Cert, CertStatement, CounterId, InstanceId, InstanceSpec, Share, Statement, ThresholdSig, Trust, BLS_SIG_BYTES,
};
pub use verify::{
    combine, combine_reporting, verify_certificate, verify_share, verify_threshold, CombineError, VerifyError,
};

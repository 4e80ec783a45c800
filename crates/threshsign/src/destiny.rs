//! Destiny's instance table: σ_n per D-instance, τ for the O-instance, π for
//! execution replies, and the counters Linear Hybster uses.

use crate::dealer::GroupSpec;
use crate::types::{CounterId, InstanceId, InstanceSpec, Trust};
use quorate_core::ReplicaId;

/// τ, the O-instance (trusted). High bit set so it never collides with a σ.
pub const TAU: InstanceId = InstanceId(0x8000_0000);
/// π, execution replies (untrusted: signed outside the trusted subsystem).
pub const PI: InstanceId = InstanceId(0x8000_0001);

/// Counter for normal-case Prepare/Commit shares (value = packed view, seq).
pub const AGREEMENT: CounterId = CounterId(0);
/// Counter for checkpoints.
pub const CHECKPOINT: CounterId = CounterId(1);
/// Counter for view changes (continuing certificates).
pub const VIEW_CHANGE: CounterId = CounterId(2);
/// Counters per trusted Destiny instance (Hybster needs at least three).
pub const COUNTERS: u32 = 3;

/// σ_r, the D-instance of replica `r` (trusted).
pub fn sigma(r: ReplicaId) -> InstanceId {
    InstanceId(r.0 & 0x7fff_ffff)
}

/// The table for `n` replicas: σ_0..σ_{n-1}, τ, π.
pub fn instances(n: u32) -> Vec<InstanceSpec> {
    let mut v: Vec<InstanceSpec> =
        (0..n).map(|r| InstanceSpec { id: sigma(ReplicaId(r)), trust: Trust::Trusted, counters: COUNTERS }).collect();
    v.push(InstanceSpec { id: TAU, trust: Trust::Trusted, counters: COUNTERS });
    v.push(InstanceSpec { id: PI, trust: Trust::Untrusted, counters: 1 });
    v
}

/// Destiny's group for `n` replicas tolerating `f` faults: the table above,
/// f+1 shares of n (n = 2f+1). What the dealer deals and what replicas and
/// clients check the group they were dealt against.
pub fn group(n: u32, f: u32) -> GroupSpec {
    GroupSpec { n, threshold: f + 1, instances: instances(n) }
}

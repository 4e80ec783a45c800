//! Outside the trusted boundary: the [`Scheme`] trait (checking shares,
//! threshold signatures and certificates, and combining shares, with public
//! material only), and the rules every implementation shares.
//!
//! Implementations: [`crate::BlsScheme`] (real BLS12-381 and Ed25519) and
//! [`crate::ModelledScheme`] (the simulator's stand-in). Protocol code sees
//! only `dyn Scheme`, so it runs unchanged over either.

use crate::dealer::Table;
use crate::types::{Cert, CertStatement, InstanceId, Share, Statement, ThresholdSig, Trust, BLS_SIG_BYTES};
use quorate_core::ReplicaId;
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// Why a share, threshold signature or certificate does not check.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The group has no such instance.
    #[error("unknown instance {0:?}")]
    UnknownInstance(InstanceId),
    /// It signs something other than what the caller expects.
    #[error("statement differs from the expected one")]
    StatementMismatch,
    /// Signer index out of range.
    #[error("unknown signer {0:?}")]
    UnknownSigner(ReplicaId),
    /// The signature is wrong (for BLS also: its bytes are not a point of
    /// the right subgroup).
    #[error("bad signature")]
    BadSignature,
}

/// Why shares could not be combined.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CombineError {
    /// The group has no such instance.
    #[error("unknown instance {0:?}")]
    UnknownInstance(InstanceId),
    /// Fewer than t distinct signers offered a share on the expected statement.
    #[error("{distinct} distinct shares, {needed} needed")]
    NotEnoughShares {
        /// Distinct signers with a share on the statement.
        distinct: usize,
        /// The threshold.
        needed: usize,
    },
    /// Enough shares, but too many of them are invalid.
    #[error("{valid} valid shares, {needed} needed (rejected: {rejected:?})")]
    NotEnoughValid {
        /// Distinct signers with a valid share.
        valid: usize,
        /// The threshold.
        needed: usize,
        /// Signers whose shares were invalid, off-statement or out of range.
        rejected: Vec<ReplicaId>,
    },
}

/// The public side of threshold signing: what replicas, collectors and
/// clients use to check and combine (paper §4.1.2: "may be hosted outside").
///
/// Every check takes the statement the caller expects; the wire types carry
/// their statement only for convenience, and it is compared, never trusted.
pub trait Scheme: Send + Sync + fmt::Debug {
    /// Number of replicas (signers `0..n`).
    fn n(&self) -> usize;

    /// Shares needed for a threshold signature.
    fn threshold(&self) -> usize;

    /// Does `share` sign `expected`, by the signer it names?
    fn verify_share(&self, share: &Share, expected: &Statement) -> Result<(), VerifyError>;

    /// Did t replicas sign `expected` (paper: "Verify Signature")?
    fn verify_threshold(&self, sig: &ThresholdSig, expected: &Statement) -> Result<(), VerifyError>;

    /// Is `cert` the certificate `expected` describes (its signer's trusted
    /// subsystem moved the counter from `old_value` to `new_value` for the
    /// hash)? A receiver that learns the old value from the certificate
    /// passes `&cert.statement` after checking the fields it cares about.
    fn verify_certificate(&self, cert: &Cert, expected: &CertStatement) -> Result<(), VerifyError>;

    /// Combine shares on `expected` into a threshold signature (paper:
    /// "Aggregate Signature Shares"). Invalid, off-statement and duplicate
    /// shares never make it into the result; see [`Scheme::combine_reporting`].
    fn combine(&self, expected: &Statement, shares: &[Share]) -> Result<ThresholdSig, CombineError> {
        self.combine_reporting(expected, shares).map(|(sig, _)| sig)
    }

    /// [`Scheme::combine`], also naming the signers whose shares were set
    /// aside (invalid, off-statement or out of range) so a collector can
    /// blame them.
    ///
    /// Optimistic: combine the first t distinct signers' shares (in the order
    /// given) and check the result once (one verification instead of t);
    /// only if that fails, check every share and retry with the valid ones.
    /// A forged share therefore costs the collector t+1 more verifications,
    /// and cannot spoil the result. Shares beyond the first t are not checked
    /// on the fast path, so they are not reported even if bad.
    fn combine_reporting(
        &self,
        expected: &Statement,
        shares: &[Share],
    ) -> Result<(ThresholdSig, Vec<ReplicaId>), CombineError>;
}

/// The checks before a share's signature: statement, instance, signer.
/// Returns the instance's trust.
pub(crate) fn share_target(table: &Table, share: &Share, expected: &Statement) -> Result<Trust, VerifyError> {
    if share.statement != *expected {
        return Err(VerifyError::StatementMismatch);
    }
    let trust = table.trust(expected.instance).ok_or(VerifyError::UnknownInstance(expected.instance))?;
    if share.signer.0 >= table.n {
        return Err(VerifyError::UnknownSigner(share.signer));
    }
    Ok(trust)
}

/// The checks before a threshold signature's signature. Returns the trust.
pub(crate) fn threshold_target(table: &Table, sig: &ThresholdSig, expected: &Statement) -> Result<Trust, VerifyError> {
    if sig.statement != *expected {
        return Err(VerifyError::StatementMismatch);
    }
    table.trust(expected.instance).ok_or(VerifyError::UnknownInstance(expected.instance))
}

/// The checks before a certificate's signature.
pub(crate) fn cert_target(table: &Table, cert: &Cert, expected: &CertStatement) -> Result<(), VerifyError> {
    if cert.statement != *expected {
        return Err(VerifyError::StatementMismatch);
    }
    if table.trust(expected.instance) != Some(Trust::Trusted) {
        return Err(VerifyError::UnknownInstance(expected.instance));
    }
    if expected.new_value < expected.old_value {
        // No correct subsystem makes one; refuse before spending a verification.
        return Err(VerifyError::BadSignature);
    }
    if expected.signer.0 >= table.n {
        return Err(VerifyError::UnknownSigner(expected.signer));
    }
    Ok(())
}

/// A scheme's part in [`combine_with`]; shares reach it only once they are
/// on the statement with a signer in range.
pub(crate) trait Combiner {
    /// Combine these t shares and check the result once; `None` if it does
    /// not check (some share is bad).
    fn fast(&mut self, first: &[&Share]) -> Option<[u8; BLS_SIG_BYTES]>;
    /// Whether one share is valid.
    fn check(&mut self, share: &Share) -> bool;
    /// Combine t shares already checked valid.
    fn valid(&mut self, valid: &[&Share]) -> Option<[u8; BLS_SIG_BYTES]>;
}

/// [`Scheme::combine_reporting`]'s rules, once for every scheme: which
/// shares count, the fast path, the slow path and whom to blame.
pub(crate) fn combine_with<C: Combiner>(
    table: &Table,
    expected: &Statement,
    shares: &[Share],
    combiner: impl FnOnce(Trust) -> C,
) -> Result<(ThresholdSig, Vec<ReplicaId>), CombineError> {
    let trust = table.trust(expected.instance).ok_or(CombineError::UnknownInstance(expected.instance))?;
    let needed = table.threshold as usize;
    let mut rejected = Vec::new();
    // Candidates per signer, signers in order of first arrival; a signer may
    // offer two different shares (a forgery beside its real one).
    let mut slot: BTreeMap<ReplicaId, usize> = BTreeMap::new();
    let mut by_signer: Vec<(ReplicaId, Vec<&Share>)> = Vec::new();
    for s in shares {
        if s.statement != *expected || s.signer.0 >= table.n {
            rejected.push(s.signer);
            continue;
        }
        let i = *slot.entry(s.signer).or_insert_with(|| {
            by_signer.push((s.signer, Vec::new()));
            by_signer.len() - 1
        });
        let v = &mut by_signer[i].1;
        if !v.iter().any(|o| o.sig == s.sig) {
            v.push(s);
        }
    }
    if by_signer.len() < needed {
        return Err(CombineError::NotEnoughShares { distinct: by_signer.len(), needed });
    }
    let mut c = combiner(trust);
    let first: Vec<&Share> = by_signer.iter().map(|(_, v)| v[0]).take(needed).collect();
    if let Some(sig) = c.fast(&first) {
        return Ok((ThresholdSig { statement: *expected, sig }, dedup(rejected)));
    }
    let mut valid: Vec<&Share> = Vec::new();
    for (signer, cands) in &by_signer {
        match cands.iter().find(|s| c.check(s)) {
            Some(s) => valid.push(s),
            None => rejected.push(*signer),
        }
        if cands.len() > 1 {
            // Two different shares from one signer: at most one is real.
            rejected.push(*signer);
        }
    }
    let rejected = dedup(rejected);
    if valid.len() < needed {
        return Err(CombineError::NotEnoughValid { valid: valid.len(), needed, rejected });
    }
    valid.truncate(needed);
    // Valid shares combine to a valid signature: no further check needed.
    let sig = c.valid(&valid).ok_or(CombineError::NotEnoughValid { valid: 0, needed, rejected: rejected.clone() })?;
    Ok((ThresholdSig { statement: *expected, sig }, rejected))
}

fn dedup(mut v: Vec<ReplicaId>) -> Vec<ReplicaId> {
    v.sort();
    v.dedup();
    v
}

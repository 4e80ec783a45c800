//! Outside the trusted boundary: checking shares, threshold signatures and
//! certificates, and combining shares. Public material only.

use crate::dealer::{GroupPublic, KeySetPublic};
use crate::types::{Cert, CertStatement, InstanceId, Share, Statement, ThresholdSig, Trust};
use quorate_core::ReplicaId;
use std::collections::BTreeMap;
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
    /// The signature is wrong.
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

/// Does `share` sign `expected`, by the signer it names?
pub fn verify_share(group: &GroupPublic, share: &Share, expected: &Statement) -> Result<(), VerifyError> {
    if share.statement != *expected {
        return Err(VerifyError::StatementMismatch);
    }
    let (ks, trust) = group.keys_for(expected.instance).ok_or(VerifyError::UnknownInstance(expected.instance))?;
    let pk = ks.shares.get(share.signer.0 as usize).ok_or(VerifyError::UnknownSigner(share.signer))?;
    if pk.verify(&share.sig, expected.signed_bytes(trust)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Did t replicas sign `expected` (paper: "Verify Signature")?
pub fn verify_threshold(group: &GroupPublic, sig: &ThresholdSig, expected: &Statement) -> Result<(), VerifyError> {
    if sig.statement != *expected {
        return Err(VerifyError::StatementMismatch);
    }
    let (ks, trust) = group.keys_for(expected.instance).ok_or(VerifyError::UnknownInstance(expected.instance))?;
    if ks.set.public_key().verify(&sig.sig, expected.signed_bytes(trust)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Is `cert` the certificate `expected` describes (its signer's trusted
/// subsystem moved the counter from `old_value` to `new_value` for the hash)?
/// A receiver that learns the old value from the certificate passes
/// `&cert.statement` after checking the fields it cares about.
pub fn verify_certificate(group: &GroupPublic, cert: &Cert, expected: &CertStatement) -> Result<(), VerifyError> {
    if cert.statement != *expected {
        return Err(VerifyError::StatementMismatch);
    }
    match group.instance(expected.instance) {
        Some(i) if i.trust == Trust::Trusted => {}
        _ => return Err(VerifyError::UnknownInstance(expected.instance)),
    }
    if expected.new_value < expected.old_value {
        // No correct subsystem makes one; refuse before spending a verification.
        return Err(VerifyError::BadSignature);
    }
    let vk = group.cert_keys.get(expected.signer.0 as usize).ok_or(VerifyError::UnknownSigner(expected.signer))?;
    let sig = ed25519_consensus::Signature::from(cert.sig);
    vk.verify(&sig, &expected.signed_bytes()).map_err(|_| VerifyError::BadSignature)
}

/// Combine shares on `expected` into a threshold signature (paper:
/// "Aggregate Signature Shares"). Invalid, off-statement and duplicate
/// shares never make it into the result; see [`combine_reporting`].
pub fn combine(group: &GroupPublic, expected: &Statement, shares: &[Share]) -> Result<ThresholdSig, CombineError> {
    combine_reporting(group, expected, shares).map(|(sig, _)| sig)
}

/// [`combine`], also naming the signers whose shares were set aside
/// (invalid, off-statement or out of range) so a collector can blame them.
///
/// Optimistic: interpolate the first t distinct signers' shares (in the
/// order given) and check the result once (one verification instead of t);
/// only if that fails, check every share and retry with the valid ones. A
/// forged share therefore costs the collector t+1 more verifications, and
/// cannot spoil the result. Shares beyond the first t are not checked on the
/// fast path, so they are not reported even if bad.
pub fn combine_reporting(
    group: &GroupPublic,
    expected: &Statement,
    shares: &[Share],
) -> Result<(ThresholdSig, Vec<ReplicaId>), CombineError> {
    let (ks, trust) = group.keys_for(expected.instance).ok_or(CombineError::UnknownInstance(expected.instance))?;
    let needed = group.threshold() as usize;
    let mut rejected = Vec::new();
    // Candidates per signer, signers in order of first arrival; a signer may
    // offer two different shares (a forgery beside its real one).
    let mut slot: BTreeMap<ReplicaId, usize> = BTreeMap::new();
    let mut by_signer: Vec<(ReplicaId, Vec<&Share>)> = Vec::new();
    for s in shares {
        if s.statement != *expected || s.signer.0 >= group.n() {
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
    let hash = blsttc::hash_g2(expected.signed_bytes(trust));
    let first: Vec<&Share> = by_signer.iter().map(|(_, v)| v[0]).take(needed).collect();
    if let Some(sig) = interpolate(ks, &first) {
        if ks.set.public_key().verify_g2(&sig, hash) {
            return Ok((ThresholdSig { statement: *expected, sig }, dedup(rejected)));
        }
    }
    let mut valid: Vec<&Share> = Vec::new();
    for (signer, cands) in &by_signer {
        let pk = &ks.shares[signer.0 as usize];
        match cands.iter().find(|s| pk.verify_g2(&s.sig, hash)) {
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
    // Valid shares interpolate to a valid signature: no further check needed.
    let sig =
        interpolate(ks, &valid).ok_or(CombineError::NotEnoughValid { valid: 0, needed, rejected: rejected.clone() })?;
    Ok((ThresholdSig { statement: *expected, sig }, rejected))
}

fn interpolate(ks: &KeySetPublic, shares: &[&Share]) -> Option<blsttc::Signature> {
    ks.set.combine_signatures(shares.iter().map(|s| (s.signer.0 as u64, &s.sig))).ok()
}

fn dedup(mut v: Vec<ReplicaId>) -> Vec<ReplicaId> {
    v.sort();
    v.dedup();
    v
}

//! [`BlsScheme`]: the real [`Scheme`], BLS12-381 threshold signatures and
//! Ed25519 certificates over a group's [`GroupPublic`].
//!
//! Signature bytes are decoded here, with blst's subgroup check; bytes that
//! are not a point are a bad signature, never a panic.

use crate::dealer::{GroupPublic, KeySetPublic};
use crate::scheme::{cert_target, combine_with, share_target, threshold_target, Combiner};
use crate::scheme::{CombineError, Scheme, VerifyError};
use crate::types::{Cert, CertStatement, Share, Statement, ThresholdSig, Trust, BLS_SIG_BYTES};
use quorate_core::ReplicaId;

/// BLS threshold signatures over a group's public material; what the runtime
/// uses. Holds public material only.
#[derive(Clone, Debug)]
pub struct BlsScheme {
    public: GroupPublic,
}

impl BlsScheme {
    /// The scheme of the group `public` describes.
    pub fn new(public: GroupPublic) -> BlsScheme {
        BlsScheme { public }
    }

    /// The group's public material.
    pub fn public(&self) -> &GroupPublic {
        &self.public
    }

    fn keys(&self, trust: Trust) -> Option<&KeySetPublic> {
        match trust {
            Trust::Trusted => self.public.trusted.as_ref(),
            Trust::Untrusted => self.public.untrusted.as_ref(),
        }
    }
}

fn share_point(b: &[u8; BLS_SIG_BYTES]) -> Option<blsttc::SignatureShare> {
    blsttc::SignatureShare::from_bytes(*b).ok()
}

impl Scheme for BlsScheme {
    fn n(&self) -> usize {
        self.public.table.n as usize
    }

    fn threshold(&self) -> usize {
        self.public.table.threshold as usize
    }

    fn verify_share(&self, share: &Share, expected: &Statement) -> Result<(), VerifyError> {
        let trust = share_target(&self.public.table, share, expected)?;
        let ks = self.keys(trust).ok_or(VerifyError::UnknownInstance(expected.instance))?;
        let pk = ks.shares.get(share.signer.0 as usize).ok_or(VerifyError::UnknownSigner(share.signer))?;
        let sig = share_point(&share.sig).ok_or(VerifyError::BadSignature)?;
        if pk.verify(&sig, expected.signed_bytes(trust)) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn verify_threshold(&self, sig: &ThresholdSig, expected: &Statement) -> Result<(), VerifyError> {
        let trust = threshold_target(&self.public.table, sig, expected)?;
        let ks = self.keys(trust).ok_or(VerifyError::UnknownInstance(expected.instance))?;
        let point = blsttc::Signature::from_bytes(sig.sig).map_err(|_| VerifyError::BadSignature)?;
        if ks.set.public_key().verify(&point, expected.signed_bytes(trust)) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn verify_certificate(&self, cert: &Cert, expected: &CertStatement) -> Result<(), VerifyError> {
        cert_target(&self.public.table, cert, expected)?;
        let vk =
            self.public.cert_keys.get(expected.signer.0 as usize).ok_or(VerifyError::UnknownSigner(expected.signer))?;
        let sig = ed25519_consensus::Signature::from(cert.sig);
        vk.verify(&sig, &expected.signed_bytes()).map_err(|_| VerifyError::BadSignature)
    }

    fn combine_reporting(
        &self,
        expected: &Statement,
        shares: &[Share],
    ) -> Result<(ThresholdSig, Vec<ReplicaId>), CombineError> {
        let missing = CombineError::UnknownInstance(expected.instance);
        let trust = self.public.table.trust(expected.instance).ok_or(missing.clone())?;
        let ks = self.keys(trust).ok_or(missing)?;
        combine_with(&self.public.table, expected, shares, |trust| BlsCombiner {
            ks,
            bytes: expected.signed_bytes(trust),
            hash: None,
        })
    }
}

/// The BLS side of [`combine_with`]: the hash to G2 is computed once, and
/// only if the shares get that far.
struct BlsCombiner<'a> {
    ks: &'a KeySetPublic,
    bytes: Vec<u8>,
    hash: Option<blsttc::G2Affine>,
}

impl BlsCombiner<'_> {
    fn hash(&mut self) -> blsttc::G2Affine {
        *self.hash.get_or_insert_with(|| blsttc::hash_g2(&self.bytes))
    }

    fn interpolate(&self, shares: &[&Share]) -> Option<blsttc::Signature> {
        let points =
            shares.iter().map(|s| Some((s.signer.0 as u64, share_point(&s.sig)?))).collect::<Option<Vec<_>>>()?;
        self.ks.set.combine_signatures(points.iter().map(|(i, p)| (*i, p))).ok()
    }
}

impl Combiner for BlsCombiner<'_> {
    fn fast(&mut self, first: &[&Share]) -> Option<[u8; BLS_SIG_BYTES]> {
        let sig = self.interpolate(first)?;
        let hash = self.hash();
        self.ks.set.public_key().verify_g2(&sig, hash).then(|| sig.to_bytes())
    }

    fn check(&mut self, share: &Share) -> bool {
        let ks = self.ks;
        let (Some(pk), Some(sig)) = (ks.shares.get(share.signer.0 as usize), share_point(&share.sig)) else {
            return false;
        };
        let hash = self.hash();
        pk.verify_g2(&sig, hash)
    }

    fn valid(&mut self, valid: &[&Share]) -> Option<[u8; BLS_SIG_BYTES]> {
        self.interpolate(valid).map(|s| s.to_bytes())
    }
}

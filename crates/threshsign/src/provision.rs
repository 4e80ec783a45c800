//! [`Provision`]: everything a replica gets for threshold signing, behind
//! trait objects, from real BLS keys (runtime) or the modelled stand-in
//! (simulator). Protocol code holds a `Provision` and never learns which.

use crate::bls::BlsScheme;
use crate::dealer::{GroupPublic, GroupSpec, KeygenError, Table, TrustedKeys, UntrustedKeys};
use crate::modelled;
use crate::plain::{PlainSign, PlainSigner};
use crate::scheme::Scheme;
use crate::trusted::{SoftThreshSign, ThreshSign};
use quorate_core::wire::WireError;
use quorate_core::{Crypto, ReplicaId};
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// A replica's threshold signing: its trusted subsystem, its untrusted
/// signer (π), and the group's public scheme. `Send`, so a replica machine
/// can hold it.
pub struct Provision {
    /// The trusted subsystem (counters, trusted shares, certificates).
    pub trusted: Box<dyn ThreshSign + Send>,
    /// The untrusted signer for π.
    pub plain: Box<dyn PlainSign + Send>,
    /// Checks and combination, public material only.
    pub scheme: Arc<dyn Scheme>,
}

impl fmt::Debug for Provision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provision").field("replica", &self.trusted.replica()).field("scheme", &self.scheme).finish()
    }
}

/// Why a provision could not be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProvisionError {
    /// The trusted key file does not decode.
    #[error("trusted key file: {0}")]
    TrustedKeys(WireError),
    /// The untrusted key file does not decode.
    #[error("untrusted key file: {0}")]
    UntrustedKeys(WireError),
    /// The group's public file does not decode.
    #[error("group public file: {0}")]
    Public(WireError),
    /// The two key files belong to different replicas.
    #[error("trusted keys are {trusted:?}'s, untrusted keys {untrusted:?}'s")]
    ReplicaMismatch {
        /// Replica of the trusted keys.
        trusted: ReplicaId,
        /// Replica of the untrusted keys.
        untrusted: ReplicaId,
    },
    /// The replica is not in the group.
    #[error("{replica:?} is not in a group of {n}")]
    UnknownReplica {
        /// The replica.
        replica: ReplicaId,
        /// Group size.
        n: u32,
    },
    /// The keys' instance table is not the group's (keys of another deal).
    #[error("the {0} keys' instance table differs from the group's")]
    InstanceMismatch(&'static str),
    /// A secret key does not match the group's public key for this replica
    /// (keys of another deal, or of another replica).
    #[error("the {0} key does not match the group's public key for this replica")]
    KeyMismatch(&'static str),
    /// The keys are another replica's.
    #[error("the keys are {found:?}'s, expected {expected:?}'s")]
    WrongReplica {
        /// The replica that loads them.
        expected: ReplicaId,
        /// The replica they were dealt to.
        found: ReplicaId,
    },
    /// The group's public material is not of a deal for the expected group
    /// (another size, threshold or instance table).
    #[error("the group is {found}, expected n = {n} and threshold {threshold} with the expected instance table")]
    WrongGroup {
        /// What the public material describes.
        found: String,
        /// Expected size.
        n: u32,
        /// Expected threshold.
        threshold: u32,
    },
    /// The public key shares do not match the commitment (not what an honest dealer makes).
    #[error("the group's public key shares do not match its commitment")]
    BadKeyShares,
    /// The group spec is one the dealer would refuse.
    #[error("group spec: {0}")]
    Spec(#[from] KeygenError),
}

impl Provision {
    /// Real BLS: a replica's dealt keys (a [`crate::ReplicaKeys`], or its
    /// two parts) and the group's public material. Checks that the keys
    /// belong together and to this group (one G1 multiplication per key set).
    pub fn bls(
        keys: impl Into<(TrustedKeys, UntrustedKeys)>,
        public: GroupPublic,
    ) -> Result<Provision, ProvisionError> {
        let (trusted, untrusted) = keys.into();
        let replica = trusted.replica;
        if untrusted.replica != replica {
            return Err(ProvisionError::ReplicaMismatch { trusted: replica, untrusted: untrusted.replica });
        }
        let r = replica.0 as usize;
        if replica.0 >= public.n() {
            return Err(ProvisionError::UnknownReplica { replica, n: public.n() });
        }
        if trusted.instances != public.table.instances {
            return Err(ProvisionError::InstanceMismatch("trusted"));
        }
        if untrusted.instances != public.table.instances {
            return Err(ProvisionError::InstanceMismatch("untrusted"));
        }
        let matches =
            |secret: &Option<blsttc::SecretKeyShare>, set: &Option<crate::dealer::KeySetPublic>| match (secret, set) {
                (Some(s), Some(ks)) => ks.shares.get(r) == Some(&s.public_key_share()),
                (None, None) => true,
                _ => false,
            };
        if !matches(&trusted.share, &public.trusted) {
            return Err(ProvisionError::KeyMismatch("trusted BLS"));
        }
        if !matches(&untrusted.share, &public.untrusted) {
            return Err(ProvisionError::KeyMismatch("untrusted BLS"));
        }
        let cert_public = trusted.cert_key.verifying_key().to_bytes();
        if public.cert_keys.get(r).map(|k| k.to_bytes()) != Some(cert_public) {
            return Err(ProvisionError::KeyMismatch("certificate"));
        }
        Ok(Provision {
            trusted: Box::new(SoftThreshSign::new(trusted)),
            plain: Box::new(PlainSigner::new(untrusted)),
            scheme: Arc::new(BlsScheme::new(public)),
        })
    }

    /// Real BLS from key files: [`TrustedKeys::to_secret_bytes`],
    /// [`UntrustedKeys::to_secret_bytes`] and [`GroupPublic::to_bytes`].
    /// Does not run [`GroupPublic::check_key_shares`] (seconds at large n);
    /// call it once where the group file is first accepted.
    pub fn from_bytes(
        secret_trusted: &[u8],
        secret_untrusted: &[u8],
        public: &[u8],
    ) -> Result<Provision, ProvisionError> {
        let trusted = TrustedKeys::from_secret_bytes(secret_trusted).map_err(ProvisionError::TrustedKeys)?;
        let untrusted = UntrustedKeys::from_secret_bytes(secret_untrusted).map_err(ProvisionError::UntrustedKeys)?;
        let public = GroupPublic::from_bytes(public).map_err(ProvisionError::Public)?;
        Provision::bls((trusted, untrusted), public)
    }

    /// [`Provision::from_bytes`], checking also that the keys are
    /// `replica`'s and the group is one dealt for `spec` (see
    /// [`Provision::public_for`]): what a host loading key files calls.
    pub fn from_bytes_for(
        replica: ReplicaId,
        spec: &GroupSpec,
        secret_trusted: &[u8],
        secret_untrusted: &[u8],
        public: &[u8],
    ) -> Result<Provision, ProvisionError> {
        // The group first: a file of another deal is named as such.
        Provision::public_for(spec, public)?;
        let p = Provision::from_bytes(secret_trusted, secret_untrusted, public)?;
        if p.replica() != replica {
            return Err(ProvisionError::WrongReplica { expected: replica, found: p.replica() });
        }
        Ok(p)
    }

    /// A group's public material from bytes ([`GroupPublic::to_bytes`]),
    /// checked to be of a deal for `spec`. Does not run
    /// [`GroupPublic::check_key_shares`] (seconds at large n).
    pub fn public_for(spec: &GroupSpec, public: &[u8]) -> Result<GroupPublic, ProvisionError> {
        let public = GroupPublic::from_bytes(public).map_err(ProvisionError::Public)?;
        if !public.is_for(spec) {
            return Err(ProvisionError::WrongGroup {
                found: format!("{public:?}"),
                n: spec.n,
                threshold: spec.threshold,
            });
        }
        Ok(public)
    }

    /// The simulator's stand-in for `replica` of the group `spec` describes
    /// ([`crate::ModelledThreshSign`], [`crate::ModelledPlainSigner`],
    /// [`crate::ModelledScheme`]), charging modelled costs to `crypto`.
    ///
    /// **Never use it in a deployment:** the modelled key is a public
    /// constant, so anyone can make any replica's shares and certificates.
    pub fn modelled(
        replica: ReplicaId,
        spec: &GroupSpec,
        crypto: Arc<dyn Crypto>,
    ) -> Result<Provision, ProvisionError> {
        let table = Table::from_spec(spec)?;
        if replica.0 >= table.n {
            return Err(ProvisionError::UnknownReplica { replica, n: table.n });
        }
        let (trusted, plain, scheme) = modelled::provision(replica, table, crypto);
        Ok(Provision { trusted: Box::new(trusted), plain: Box::new(plain), scheme: Arc::new(scheme) })
    }

    /// The replica this provision belongs to.
    pub fn replica(&self) -> ReplicaId {
        self.trusted.replica()
    }
}

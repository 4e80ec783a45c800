//! Key material a protocol needs beyond each node's signing key
//! ([`KeyMaterial`], the associated type [`Protocol::Keys`]).
//!
//! Every node has one Ed25519 signing key, which the hosts handle alone.
//! Some protocols need more (Destiny: ThreshSign keys from a trusted dealer).
//! Such a protocol says how its keys are dealt for `n` replicas tolerating
//! `f` faults, written into the key directory, loaded back and checked, and
//! what the simulator uses instead; the hosts call these and know nothing
//! else about the keys. Protocols without extra keys use `()`.
//!
//! This is the one place in the core that touches files: a host calls it
//! while it sets a node up, never a machine.
//!
//! [`Protocol::Keys`]: crate::machine::Protocol::Keys

use crate::ids::ReplicaId;
use rand::{CryptoRng, RngCore};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A key file that cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not the hex it should be.
    #[error("key file {path}: {msg}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The key does not belong to the public key the cluster file lists.
    #[error("key file {path} does not match the public key of {node} in the cluster file")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Whose key it should be.
        node: String,
    },
    /// A protocol's key files that do not decode, do not belong together,
    /// are another replica's, or are of a group other than the cluster's.
    #[error("{kind} {files}: {msg}")]
    Protocol {
        /// What kind of keys ([`KeyFiles::kind`]).
        kind: &'static str,
        /// The files, as one string.
        files: String,
        /// What is wrong.
        msg: String,
    },
}

/// The files a protocol's key material adds to the key directory, as the
/// operator is told about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyFiles {
    /// What kind of keys (e.g. "threshold keys").
    pub kind: &'static str,
    /// Each replica's own files, `<i>` for its id (copy them to it only).
    pub per_replica: &'static str,
    /// The file every replica and client needs.
    pub shared: &'static str,
}

/// A protocol's key material beyond the signing keys: one replica's keys
/// (`Self`) and the public part clients need ([`KeyMaterial::Public`]).
///
/// Secret parts are secrets like a signing key: implementations should not
/// print them in `Debug` and need not be `Clone`.
pub trait KeyMaterial: Sized + Send + 'static {
    /// What every client holds (the group's public material).
    type Public: Clone + Send + Sync + 'static;
    /// The files in the key directory (None: the protocol adds none).
    const FILES: Option<KeyFiles> = None;

    /// Deal fresh keys for `n` replicas tolerating `f` faults and write them
    /// into `dir` (secret files readable only by the owner, see
    /// [`write_secret`]).
    fn deal_into<R: RngCore + CryptoRng>(dir: &Path, n: usize, f: usize, rng: &mut R) -> Result<(), KeyError>;
    /// Replica `id`'s keys from `dir`, checked before any machine sees them
    /// (present, decode, belong together, are `id`'s and of this cluster's
    /// `n` and `f`); the error names the files.
    fn load(dir: &Path, id: ReplicaId, n: usize, f: usize) -> Result<Self, KeyError>;
    /// The public material from `dir`, checked as [`KeyMaterial::load`].
    fn load_public(dir: &Path, n: usize, f: usize) -> Result<Self::Public, KeyError>;
    /// What the simulator gives replica `id` instead of dealt keys (a model
    /// of the keys: never in a deployment).
    fn modelled(id: ReplicaId, n: usize, f: usize) -> Self;
    /// What the simulator gives clients instead of the dealt public material.
    fn modelled_public(n: usize, f: usize) -> Self::Public;
}

/// No key material beyond the signing keys.
impl KeyMaterial for () {
    type Public = ();

    fn deal_into<R: RngCore + CryptoRng>(_dir: &Path, _n: usize, _f: usize, _rng: &mut R) -> Result<(), KeyError> {
        Ok(())
    }
    fn load(_dir: &Path, _id: ReplicaId, _n: usize, _f: usize) -> Result<(), KeyError> {
        Ok(())
    }
    fn load_public(_dir: &Path, _n: usize, _f: usize) -> Result<(), KeyError> {
        Ok(())
    }
    fn modelled(_id: ReplicaId, _n: usize, _f: usize) {}
    fn modelled_public(_n: usize, _f: usize) {}
}

/// Write secret bytes as hex, readable only by the owner.
pub fn write_secret(path: &Path, secret: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.into(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    std::io::Write::write_all(&mut f, format!("{}\n", hex::encode(secret)).as_bytes()).map_err(io)
}

/// Write public bytes as hex.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    std::fs::write(path, format!("{}\n", hex::encode(bytes)))
        .map_err(|source| KeyError::Io { path: path.into(), source })
}

/// Read a file of hex bytes.
pub fn read_hex(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.into(), source })?;
    hex::decode(text.trim()).map_err(|e| KeyError::Malformed { path: path.into(), msg: format!("not hex: {e}") })
}

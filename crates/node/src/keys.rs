//! Key files and `keygen`: one Ed25519 signing key per node, hex in
//! `<keys_dir>/replica-<i>.key` or `client-<id>.key` (readable only by the
//! owner), public keys in the cluster file.
//!
//! Protocols with [`Protocol::THRESHOLD_KEYS`] (Destiny) also get ThreshSign
//! keys from a trusted dealer ([`quorate_threshsign::keygen`] with the OS's
//! CSPRNG, for the group [`destiny::group`]`(n, f)`), hex in the same
//! directory: per replica its trusted subsystem's secret keys
//! (`replica-<i>.threshold-trusted.key`) and its untrusted (π) secret keys
//! (`replica-<i>.threshold-untrusted.key`), both readable only by the owner,
//! and the group's public material (`threshold-group.pub`) for replicas and
//! clients.
//!
//! [`Protocol::THRESHOLD_KEYS`]: quorate_core::machine::Protocol::THRESHOLD_KEYS

use crate::config::{ClientEntry, ClusterFile, ModelName, NodeSettings, ReplicaEntry};
use ed25519_dalek::{SigningKey, VerifyingKey};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_threshsign::destiny;
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
    /// Not 64 hex digits.
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
    /// Threshold key files that do not decode, do not belong together, are
    /// another replica's, or are of a group other than the cluster's.
    #[error("threshold keys {files}: {msg}")]
    Threshold {
        /// The files, as one string.
        files: String,
        /// What is wrong.
        msg: String,
    },
}

/// File name of a node's key.
pub fn file_name(node: NodeId) -> String {
    match node {
        NodeId::Replica(r) => format!("replica-{}.key", r.0),
        NodeId::Client(c) => format!("client-{}.key", c.0),
    }
}

/// File names of replica `r`'s threshold secret keys: (trusted, untrusted).
pub fn threshold_file_names(r: ReplicaId) -> (String, String) {
    (format!("replica-{}.threshold-trusted.key", r.0), format!("replica-{}.threshold-untrusted.key", r.0))
}

/// File name of the group's public threshold material.
pub const THRESHOLD_PUBLIC_FILE: &str = "threshold-group.pub";

/// 32 bytes written as 64 hex digits.
fn hex32(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| format!("{} bytes, expected 32", b.len()))
}

/// Parse a hex public key.
pub fn parse_public(hex_key: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&hex32(hex_key)?).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// Read a signing key file.
pub fn read_signing(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.into(), source })?;
    let bytes = hex32(&text).map_err(|msg| KeyError::Malformed { path: path.into(), msg })?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn write_signing(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    write_secret(path, &key.to_bytes())
}

/// Write secret bytes as hex, readable only by the owner.
fn write_secret(path: &Path, secret: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io { path: path.into(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    std::io::Write::write_all(&mut f, format!("{}\n", hex::encode(secret)).as_bytes()).map_err(io)
}

/// Read a file of hex bytes (a threshold key file).
pub fn read_hex(path: &Path) -> Result<Vec<u8>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.into(), source })?;
    hex::decode(text.trim()).map_err(|e| KeyError::Malformed { path: path.into(), msg: format!("not hex: {e}") })
}

/// Deal fresh threshold keys for `n` replicas tolerating `f` faults
/// ([`destiny::group`]) and write them into `keys_dir`.
fn deal_threshold(keys_dir: &Path, n: usize, f: usize) -> Result<(), KeyError> {
    let group = destiny::group(n as u32, f as u32);
    let deal = quorate_threshsign::keygen(&group, &mut rand::rngs::OsRng).map_err(|e| KeyError::Threshold {
        files: keys_dir.display().to_string(),
        msg: format!("the dealer refused the group: {e}"),
    })?;
    let path = keys_dir.join(THRESHOLD_PUBLIC_FILE);
    std::fs::write(&path, format!("{}\n", hex::encode(deal.public.to_bytes())))
        .map_err(|source| KeyError::Io { path, source })?;
    for k in deal.replicas {
        let (trusted_file, untrusted_file) = threshold_file_names(k.replica());
        let (trusted, untrusted) = k.into_parts();
        write_secret(&keys_dir.join(trusted_file), &trusted.to_secret_bytes())?;
        write_secret(&keys_dir.join(untrusted_file), &untrusted.to_secret_bytes())?;
    }
    Ok(())
}

/// What `quorate keygen` makes.
#[derive(Clone, Debug)]
pub struct KeygenSpec {
    /// Protocol name.
    pub protocol: String,
    /// Fault model.
    pub fault_model: ModelName,
    /// Number of replicas.
    pub replicas: usize,
    /// Faults tolerated.
    pub f: usize,
    /// Number of clients (ids 1..=clients).
    pub clients: usize,
    /// Consecutive client ids sharing one key (1: a key each). Clients with one
    /// key can share connections (see `ClientHost`); each id still gets its key file.
    pub clients_per_key: usize,
    /// Replica i listens on 127.0.0.1:(base_port + i).
    pub base_port: u16,
    /// Replica i serves metrics on 127.0.0.1:(metrics_base_port + i) (None: no endpoint).
    pub metrics_base_port: Option<u16>,
    /// The protocol's default settings, written out so they can be edited.
    pub settings: toml::Table,
    /// Runtime settings.
    pub node: NodeSettings,
    /// Deal threshold keys too (the protocol's `Protocol::THRESHOLD_KEYS`).
    pub threshold_keys: bool,
}

/// Write fresh keys into `<out>/keys` and a ready cluster file `<out>/cluster.toml`.
pub fn keygen(out: &Path, spec: &KeygenSpec) -> Result<PathBuf, KeyError> {
    let keys_dir = out.join("keys");
    std::fs::create_dir_all(&keys_dir).map_err(|source| KeyError::Io { path: keys_dir.clone(), source })?;
    let mut rng = rand::rngs::OsRng;
    let mut fresh = || SigningKey::generate(&mut rng);
    let write = |node: NodeId, key: &SigningKey| -> Result<String, KeyError> {
        write_signing(&keys_dir.join(file_name(node)), key)?;
        Ok(hex::encode(key.verifying_key().to_bytes()))
    };
    let mut replicas = Vec::new();
    for i in 0..spec.replicas {
        let port = u32::from(spec.base_port) + i as u32;
        replicas.push(ReplicaEntry {
            id: i as u32,
            address: format!("127.0.0.1:{port}"),
            public_key: write(NodeId::Replica(quorate_core::ReplicaId(i as u32)), &fresh())?,
            metrics: spec.metrics_base_port.map(|p| format!("127.0.0.1:{}", u32::from(p) + i as u32)),
            weight: None,
        });
    }
    let mut clients = Vec::new();
    let mut key = fresh();
    for (i, id) in (1..=spec.clients as u64).enumerate() {
        if i > 0 && i % spec.clients_per_key.max(1) == 0 {
            key = fresh();
        }
        clients.push(ClientEntry { id, public_key: write(NodeId::Client(quorate_core::ClientId(id)), &key)? });
    }
    if spec.threshold_keys {
        deal_threshold(&keys_dir, spec.replicas, spec.f)?;
    }
    let file = ClusterFile {
        protocol: spec.protocol.clone(),
        fault_model: spec.fault_model,
        f: spec.f,
        service: "kv".into(),
        replicas,
        clients,
        node: spec.node.clone(),
        settings: spec.settings.clone(),
    };
    let body = toml::to_string(&file).expect("the cluster file serializes");
    let copy = if spec.threshold_keys {
        format!(" (replica-<i>.*), and {THRESHOLD_PUBLIC_FILE} to every replica and client")
    } else {
        String::new()
    };
    let text = format!(
        "# quorate cluster file, written by `quorate keygen`.\n\
         # Edit the addresses for real hosts and copy each replica its own key files only{copy}.\n\
         # protocol: the ordering protocol; fault_model: byzantine (n >= 3f+1 for mod-smart) or crash;\n\
         # service: kv or counter. [node]: runtime settings; [settings]: the protocol's settings\n\
         # (all shown with their defaults; durations like \"2s\" or \"500ms\").\n\n{body}"
    );
    let path = out.join("cluster.toml");
    std::fs::write(&path, text).map_err(|source| KeyError::Io { path: path.clone(), source })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterConfig;

    fn spec(threshold_keys: bool) -> KeygenSpec {
        KeygenSpec {
            protocol: "destiny".into(),
            fault_model: ModelName::Byzantine,
            replicas: 3,
            f: 1,
            clients: 1,
            clients_per_key: 1,
            base_port: 1,
            metrics_base_port: None,
            settings: toml::Table::new(),
            node: NodeSettings::default(),
            threshold_keys,
        }
    }

    #[test]
    fn threshold_keys_are_dealt_owner_only_and_load_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig::load(&keygen(dir.path(), &spec(true)).unwrap()).unwrap();
        let public = cfg.threshold_public().unwrap();
        for r in 0..3 {
            let k = cfg.threshold_keys(ReplicaId(r)).unwrap();
            assert_eq!(k.public, public);
            assert!(!format!("{k:?}").contains(&format!("{:?}", &k.trusted[..8])), "no secret in Debug");
            #[cfg(unix)]
            for file in <[String; 2]>::from(threshold_file_names(ReplicaId(r))) {
                let meta = std::fs::metadata(cfg.keys_dir().join(file)).unwrap();
                assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
            }
        }
        let e = cfg.threshold_keys(ReplicaId(3)).unwrap_err().to_string();
        assert!(e.contains("replica-3.threshold-trusted.key"), "{e}");
        // A cluster file that says f = 0 (n = 3 would allow it): not the group dealt.
        let mut other = cfg.clone();
        other.file.f = 0;
        let e = other.threshold_keys(ReplicaId(0)).unwrap_err().to_string();
        assert!(e.contains("threshold-group.pub") && e.contains("expected n = 3 and threshold 1"), "{e}");
    }

    #[test]
    fn no_threshold_keys_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClusterConfig::load(&keygen(dir.path(), &spec(false)).unwrap()).unwrap();
        assert!(!cfg.keys_dir().join(THRESHOLD_PUBLIC_FILE).exists());
        assert!(cfg.threshold_public().is_err());
    }
}

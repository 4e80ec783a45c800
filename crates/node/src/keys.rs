//! Key files and `keygen`: one Ed25519 signing key per node, hex in
//! `<keys_dir>/replica-<i>.key` or `client-<id>.key` (readable only by the
//! owner), public keys in the cluster file.
//!
//! A protocol's own key material ([`Protocol::Keys`], e.g. Destiny's
//! ThreshSign keys) is dealt into the same directory by [`KeyMaterial`],
//! whose file names and formats are the protocol's.
//!
//! [`Protocol::Keys`]: quorate_core::machine::Protocol::Keys

use crate::config::{ClientEntry, ClusterFile, ModelName, NodeSettings, ReplicaEntry};
use ed25519_dalek::{SigningKey, VerifyingKey};
use quorate_core::ids::NodeId;
use quorate_core::keys::KeyMaterial;
use std::path::{Path, PathBuf};

pub use quorate_core::keys::KeyError;

/// File name of a node's key.
pub fn file_name(node: NodeId) -> String {
    match node {
        NodeId::Replica(r) => format!("replica-{}.key", r.0),
        NodeId::Client(c) => format!("client-{}.key", c.0),
    }
}

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
    quorate_core::keys::write_secret(path, &key.to_bytes())
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
}

/// Write fresh keys into `<out>/keys` (signing keys, then the key material
/// `K` dealt by [`KeyMaterial::deal_into`]) and a ready cluster file
/// `<out>/cluster.toml`.
pub fn keygen<K: KeyMaterial>(out: &Path, spec: &KeygenSpec) -> Result<PathBuf, KeyError> {
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
    K::deal_into(&keys_dir, spec.replicas, spec.f, &mut rand::rngs::OsRng)?;
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
    let copy = match K::FILES {
        Some(files) => format!(" (replica-<i>.*), and {} to every replica and client", files.shared),
        None => String::new(),
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

//! The cluster file: one TOML file naming the protocol, f, every replica
//! (id, address, public key), the clients allowed to connect, the runtime
//! settings and the protocol's settings. `quorate keygen` writes one.
//!
//! Loading checks everything it can without the network and names the wrong
//! field in its error: a deployment should fail at start, not at the first
//! request.

use crate::keys::{self, KeyError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::keys::KeyMaterial;
use quorate_core::machine::Protocol;
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::time::human;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or a field of the wrong type, or an unknown field.
    #[error("{file}: {msg}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// The parser's message (it names the field and line).
        msg: String,
    },
    /// A field with a value that cannot work.
    #[error("{file}: field `{field}`: {msg}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The field, as a path (`replicas[2].address`).
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// A key file is missing or does not match the cluster file.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The fault model as written in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelName {
    /// Up to f Byzantine replicas.
    Byzantine,
    /// Up to f crashed replicas.
    Crash,
}

impl From<ModelName> for FaultModel {
    fn from(m: ModelName) -> FaultModel {
        match m {
            ModelName::Byzantine => FaultModel::Byzantine,
            ModelName::Crash => FaultModel::Crash,
        }
    }
}

/// One replica of the cluster file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaEntry {
    /// Replica id: entries are numbered 0..n in order.
    pub id: u32,
    /// `host:port` where it listens for replicas and clients.
    pub address: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// `host:port` of its Prometheus metrics endpoint (none: no endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Vote weight (WHEAT; none: 1). Quorums then count votes
    /// ([`quorate_core::weighted_membership_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// One client allowed to connect.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// Client id, unique.
    pub id: u64,
    /// Ed25519 public key, hex.
    pub public_key: String,
}

/// Runtime settings (the `[node]` table); every field has a default.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Durable state: replica i keeps its log in `<data_dir>/replica-<i>`
    /// (relative paths are relative to the cluster file).
    pub data_dir: PathBuf,
    /// Where key files are (`replica-<i>.key`, `client-<id>.key`, and the files of the
    /// protocol's own key material if it has any), relative to the cluster file.
    pub keys_dir: PathBuf,
    /// Largest frame between replicas, in bytes (state transfer carries whole checkpoints).
    pub max_frame: usize,
    /// Largest frame from a client, in bytes.
    pub max_client_frame: usize,
    /// Messages waiting for the protocol thread; a full queue back-pressures the connections.
    pub input_queue: usize,
    /// Frames waiting per outgoing connection; when full, new frames are dropped and counted
    /// (the protocols retransmit).
    pub send_queue: usize,
    /// fsync the log before sends that depend on it. Off only for experiments: a replica
    /// that loses its last votes in a power failure may then break safety.
    pub fsync: bool,
    /// Threads for networking and signature checks (0: one per core).
    pub threads: usize,
    /// A peer must finish the handshake within this time.
    #[serde(with = "human")]
    pub handshake_timeout: Duration,
    /// Longest wait between reconnection attempts (back-off doubles from 50 ms up to this).
    #[serde(with = "human")]
    pub reconnect_max: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            data_dir: PathBuf::from("data"),
            keys_dir: PathBuf::from("keys"),
            max_frame: 64 << 20,
            max_client_frame: 4 << 20,
            input_queue: 65_536,
            send_queue: 65_536,
            fsync: true,
            threads: 0,
            handshake_timeout: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(1),
        }
    }
}

/// The cluster file as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Protocol name (`quorate sim --list-protocols`).
    pub protocol: String,
    /// `byzantine` or `crash`.
    #[serde(default = "byzantine")]
    pub fault_model: ModelName,
    /// Faults tolerated.
    pub f: usize,
    /// Replicated service: `kv` or `counter`.
    #[serde(default = "kv")]
    pub service: String,
    /// The replicas, ids 0..n in order.
    pub replicas: Vec<ReplicaEntry>,
    /// The clients allowed to connect.
    #[serde(default)]
    pub clients: Vec<ClientEntry>,
    /// Runtime settings.
    #[serde(default)]
    pub node: NodeSettings,
    /// The protocol's settings (missing fields take the protocol's defaults).
    #[serde(default)]
    pub settings: toml::Table,
}

fn byzantine() -> ModelName {
    ModelName::Byzantine
}

fn kv() -> String {
    "kv".to_string()
}

/// Services a cluster can run.
pub const SERVICES: &[&str] = &["kv", "counter"];

/// A loaded, checked cluster file.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// What the file says.
    pub file: ClusterFile,
    /// Where it was read from.
    pub path: PathBuf,
    /// Every node's public key.
    pub directory: HashMap<NodeId, VerifyingKey>,
}

impl ClusterConfig {
    /// Read and check a cluster file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { file: path.into(), source })?;
        Self::parse(&text, path)
    }

    /// Check a cluster file's text (`path` resolves relative directories and names the file in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ClusterConfig, ConfigError> {
        let file: ClusterFile =
            toml::from_str(text).map_err(|e| ConfigError::Parse { file: path.into(), msg: e.to_string() })?;
        let invalid = |field: String, msg: String| ConfigError::Invalid { file: path.into(), field, msg };
        if file.replicas.is_empty() {
            return Err(invalid("replicas".into(), "at least one replica is needed".into()));
        }
        if !SERVICES.contains(&file.service.as_str()) {
            return Err(invalid("service".into(), format!("unknown service '{}' (known: {SERVICES:?})", file.service)));
        }
        let mut directory = HashMap::new();
        let mut addresses = HashSet::new();
        for (i, r) in file.replicas.iter().enumerate() {
            if r.id as usize != i {
                return Err(invalid(
                    format!("replicas[{i}].id"),
                    format!("is {}, expected {i} (ids are 0..n in order)", r.id),
                ));
            }
            check_address(&r.address).map_err(|m| invalid(format!("replicas[{i}].address"), m))?;
            if !addresses.insert(r.address.clone()) {
                return Err(invalid(format!("replicas[{i}].address"), format!("{} is used twice", r.address)));
            }
            if let Some(m) = &r.metrics {
                check_address(m).map_err(|m| invalid(format!("replicas[{i}].metrics"), m))?;
            }
            let key = keys::parse_public(&r.public_key).map_err(|m| invalid(format!("replicas[{i}].public_key"), m))?;
            directory.insert(NodeId::Replica(ReplicaId(r.id)), key);
        }
        for (i, c) in file.clients.iter().enumerate() {
            let key = keys::parse_public(&c.public_key).map_err(|m| invalid(format!("clients[{i}].public_key"), m))?;
            if directory.insert(NodeId::Client(ClientId(c.id)), key).is_some() {
                return Err(invalid(format!("clients[{i}].id"), format!("client {} is listed twice", c.id)));
            }
        }
        let n = &file.node;
        if n.max_frame < 1024 || n.max_client_frame < 1024 {
            return Err(invalid("node.max_frame".into(), "frame limits must be at least 1024 bytes".into()));
        }
        if n.input_queue == 0 || n.send_queue == 0 {
            return Err(invalid("node.input_queue".into(), "queues must hold at least one message".into()));
        }
        if n.handshake_timeout.is_zero() || n.reconnect_max.is_zero() {
            return Err(invalid("node.handshake_timeout".into(), "timeouts must be positive".into()));
        }
        Ok(ClusterConfig { file, path: path.to_path_buf(), directory })
    }

    pub(crate) fn invalid(&self, field: &str, msg: String) -> ConfigError {
        ConfigError::Invalid { file: self.path.clone(), field: field.into(), msg }
    }

    /// Check that the file names protocol `P` and build the membership.
    pub fn membership<P: Protocol>(&self) -> Result<Membership, ConfigError> {
        if self.file.protocol != P::NAME {
            return Err(self.invalid("protocol", format!("is '{}', this host runs '{}'", self.file.protocol, P::NAME)));
        }
        let model: FaultModel = self.file.fault_model.into();
        let weights: Vec<u32> = self.file.replicas.iter().map(|r| r.weight.unwrap_or(1)).collect();
        quorate_core::weighted_membership_for::<P>(&weights, self.file.f, model)
            .map_err(|e| self.invalid("replicas", format!("{e}")))
    }

    /// The protocol's settings: the `[settings]` table over the defaults, checked.
    pub fn settings<P: Protocol>(&self) -> Result<P::Config, ConfigError> {
        let cfg: P::Config = toml::Value::Table(self.file.settings.clone())
            .try_into()
            .map_err(|e: toml::de::Error| self.invalid("settings", e.message().to_string()))?;
        P::validate_config(&cfg).map_err(|m| self.invalid("settings", m))?;
        Ok(cfg)
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.file.replicas.len()
    }

    /// The entry of replica `id`.
    pub fn replica(&self, id: ReplicaId) -> Result<&ReplicaEntry, ConfigError> {
        self.file
            .replicas
            .get(id.index())
            .ok_or_else(|| self.invalid("replicas", format!("there is no replica {id} (n = {})", self.n())))
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// Directory of replica `id`'s durable log.
    pub fn data_dir(&self, id: ReplicaId) -> PathBuf {
        self.resolve(&self.file.node.data_dir).join(format!("replica-{}", id.0))
    }

    /// Directory of the key files.
    pub fn keys_dir(&self) -> PathBuf {
        self.resolve(&self.file.node.keys_dir)
    }

    /// A node's signing key, checked against its public key in the file.
    pub fn signing_key(&self, node: NodeId) -> Result<SigningKey, ConfigError> {
        let Some(public) = self.directory.get(&node) else {
            let field = if node.replica().is_some() { "replicas" } else { "clients" };
            return Err(self.invalid(field, format!("{node:?} is not in the cluster file")));
        };
        let path = self.keys_dir().join(keys::file_name(node));
        let key = keys::read_signing(&path)?;
        if key.verifying_key() != *public {
            return Err(KeyError::Mismatch { path, node: format!("{node:?}") }.into());
        }
        Ok(key)
    }

    /// Replica `id`'s protocol key material ([`Protocol::Keys`]), loaded
    /// from the keys directory and checked before any machine sees it.
    pub fn protocol_keys<P: Protocol>(&self, id: ReplicaId) -> Result<P::Keys, ConfigError> {
        Ok(P::Keys::load(&self.keys_dir(), id, self.n(), self.file.f)?)
    }

    /// The public part of the protocol's key material, checked as
    /// [`ClusterConfig::protocol_keys`].
    pub fn protocol_public_keys<P: Protocol>(&self) -> Result<<P::Keys as KeyMaterial>::Public, ConfigError> {
        Ok(P::Keys::load_public(&self.keys_dir(), self.n(), self.file.f)?)
    }

    /// Clients whose key file is present, lowest id first.
    pub fn local_clients(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self
            .file
            .clients
            .iter()
            .map(|c| ClientId(c.id))
            .filter(|c| self.keys_dir().join(keys::file_name(NodeId::Client(*c))).exists())
            .collect();
        ids.sort();
        ids
    }
}

fn check_address(a: &str) -> Result<(), String> {
    let Some((host, port)) = a.rsplit_once(':') else {
        return Err(format!("'{a}' is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("'{a}' has no host"));
    }
    port.parse::<u16>().map_err(|_| format!("'{a}': '{port}' is not a port number"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_hex(seed: u8) -> String {
        hex::encode(SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes())
    }

    fn file(extra: &str) -> String {
        let mut s = String::from("protocol = \"mod-smart\"\nf = 1\n");
        s.push_str(extra);
        for i in 0..4 {
            s.push_str(&format!(
                "[[replicas]]\nid = {i}\naddress = \"127.0.0.1:{}\"\npublic_key = \"{}\"\n",
                7000 + i,
                key_hex(i as u8 + 1)
            ));
        }
        s.push_str(&format!("[[clients]]\nid = 100\npublic_key = \"{}\"\n", key_hex(9)));
        s
    }

    fn err(text: &str) -> String {
        ClusterConfig::parse(text, Path::new("c.toml")).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file_loads_with_defaults() {
        let c = ClusterConfig::parse(&file(""), Path::new("/x/c.toml")).unwrap();
        assert_eq!(c.n(), 4);
        assert_eq!(c.directory.len(), 5);
        assert_eq!(c.data_dir(ReplicaId(2)), PathBuf::from("/x/data/replica-2"));
        assert!(c.file.node.fsync);
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(&file("").replace("id = 2", "id = 5")).contains("replicas[2].id"));
        assert!(err(&file("").replace("127.0.0.1:7001", "127.0.0.1:7000")).contains("replicas[1].address"));
        assert!(err(&file("").replace("127.0.0.1:7003", "localhost")).contains("replicas[3].address"));
        assert!(err(&file("").replacen(&key_hex(2), "abcd", 1)).contains("replicas[1].public_key"));
        assert!(err(&file("service = \"sql\"\n")).contains("service"));
        assert!(err(&file("colour = 3\n")).contains("colour"));
        assert!(err(&file("[node]\nfsync = \"yes\"\n")).contains("fsync"));
        assert!(err("protocol = 3").contains("protocol"));
    }
}

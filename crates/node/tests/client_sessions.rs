//! Client sessions over shared connections, with a real protocol's client
//! (Mod-SMaRt: any protocol would do; the node knows none).

use quorate_core::ids::ClientId;
use quorate_modsmart::ModSmart;
use quorate_node::config::{ModelName, NodeSettings};
use quorate_node::keys::{keygen, KeygenSpec};
use quorate_node::{ClientHost, ClientOptions, ClusterConfig};

#[tokio::test]
async fn sessions_need_the_connections_key_and_one_each() {
    let dir = tempfile::tempdir().unwrap();
    let spec = KeygenSpec {
        protocol: "mod-smart".into(),
        fault_model: ModelName::Byzantine,
        replicas: 4,
        f: 1,
        clients: 3,
        clients_per_key: 2,
        base_port: 1,
        metrics_base_port: None,
        settings: toml::Table::new(),
        node: NodeSettings::default(),
    };
    let cfg = ClusterConfig::load(&keygen::<()>(dir.path(), &spec).unwrap()).unwrap();
    let host = ClientHost::<ModSmart>::connect(&cfg, ClientId(1), ClientOptions::default()).unwrap();
    let one = host.client(ClientId(1)).unwrap();
    let two = host.client(ClientId(2)).unwrap();
    let other_key = host.client(ClientId(3)).err().unwrap().to_string();
    assert!(other_key.contains("does not have the key of client 1"), "{other_key}");
    let twice = host.client(ClientId(2)).err().unwrap().to_string();
    assert!(twice.contains("already has a session"), "{twice}");
    drop(two);
    // Its session ended: the id is free again.
    let _again = host.client(ClientId(2)).unwrap();
    // The connections outlive the host handle while sessions use them.
    drop(host);
    assert_eq!(one.sessions_on_connections(), 2);
}

#[test]
fn no_protocol_key_files_without_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let spec = KeygenSpec {
        protocol: "mod-smart".into(),
        fault_model: ModelName::Byzantine,
        replicas: 4,
        f: 1,
        clients: 1,
        clients_per_key: 1,
        base_port: 1,
        metrics_base_port: None,
        settings: toml::Table::new(),
        node: NodeSettings::default(),
    };
    let cfg = ClusterConfig::load(&keygen::<()>(dir.path(), &spec).unwrap()).unwrap();
    let mut files: Vec<String> =
        std::fs::read_dir(cfg.keys_dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["client-1.key", "replica-0.key", "replica-1.key", "replica-2.key", "replica-3.key"]);
}

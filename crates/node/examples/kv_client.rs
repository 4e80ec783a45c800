//! Using the client library from another program.
//!
//! Start a cluster in one terminal:
//!     cargo run --release -p quorate-cli -- cluster --replicas 4
//! then run this example against its cluster file:
//!     cargo run --release -p quorate-node --example kv_client -- quorate-cluster/cluster.toml

use bytes::Bytes;
use quorate_apps::{KvOp, KvReply};
use quorate_modsmart::ModSmart;
use quorate_node::{Client, ClientOptions, ClusterConfig};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "quorate-cluster/cluster.toml".into());
    let cfg = ClusterConfig::load(path.as_ref())?;
    // Any client whose key file sits in the cluster's keys directory.
    let id = *cfg.local_clients().first().ok_or("no client key file next to the cluster file")?;
    let mut client = Client::<ModSmart>::connect(&cfg, id, ClientOptions { timeout: Duration::from_secs(10) })?;

    for i in 0..5u32 {
        let put = KvOp::Put { key: Bytes::from(format!("example-{i}")), value: Bytes::from(format!("value {i}")) };
        let previous = KvReply::decode(&client.invoke(put.encode()).await?)?;
        println!("put example-{i}: previous {previous:?}");
    }
    let get = KvOp::Get { key: Bytes::from_static(b"example-3") };
    let value = KvReply::decode(&client.invoke_read_only(get.encode()).await?)?;
    println!("get example-3: {value:?}");
    Ok(())
}

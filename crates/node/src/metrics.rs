//! Prometheus metrics of a replica process and the HTTP endpoint that serves
//! them in the text format (`GET /metrics`, any path works).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Label of counters by reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why.
    pub reason: String,
}

/// Label of per-peer gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Peer {
    /// The peer (`r2`, `c17`).
    pub peer: String,
}

/// Every metric of a replica process.
pub struct Metrics {
    registry: Registry,
    /// Consensus instances decided.
    pub decided: Counter,
    /// Requests executed.
    pub executed: Counter,
    /// Current view (Mod-SMaRt: regency).
    pub view: Gauge,
    /// View changes installed.
    pub view_changes: Counter,
    /// States installed by state transfer.
    pub state_transfers: Counter,
    /// Checkpoints taken.
    pub checkpoints: Counter,
    /// Inputs rejected, by reason (frames, handshakes, decoding, protocol validation, full queues).
    pub rejected: Family<Reason, Counter>,
    /// Messages waiting for the protocol thread.
    pub input_queue: Gauge,
    /// Records and sends waiting for the durability stage.
    pub egress_queue: Gauge,
    /// Frames waiting per outgoing connection.
    pub send_queue: Family<Peer, Gauge>,
    /// Time from a client's request reaching this replica to its execution, seconds.
    pub commit_latency: Histogram,
    /// Log fsyncs (group commits).
    pub log_syncs: Counter,
    /// Log records appended.
    pub log_records: Counter,
    /// Authenticated connections open.
    pub connections: Gauge,
    /// Signatures verified for real.
    pub signatures_checked: Gauge,
    /// Signature checks answered by the cache of verified signatures.
    pub signature_cache_hits: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `quorate_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("quorate");
        let m = Metrics {
            registry: Registry::default(),
            decided: Counter::default(),
            executed: Counter::default(),
            view: Gauge::default(),
            view_changes: Counter::default(),
            state_transfers: Counter::default(),
            checkpoints: Counter::default(),
            rejected: Family::default(),
            input_queue: Gauge::default(),
            egress_queue: Gauge::default(),
            send_queue: Family::default(),
            commit_latency: Histogram::new(exponential_buckets(0.000_05, 2.0, 18)),
            log_syncs: Counter::default(),
            log_records: Counter::default(),
            connections: Gauge::default(),
            signatures_checked: Gauge::default(),
            signature_cache_hits: Gauge::default(),
        };
        registry.register("decided_instances", "Consensus instances decided", m.decided.clone());
        registry.register("executed_requests", "Requests executed", m.executed.clone());
        registry.register("view", "Current view", m.view.clone());
        registry.register("view_changes", "View changes installed", m.view_changes.clone());
        registry.register(
            "state_transfers",
            "States installed from a checkpoint (state transfer, or recovery where the protocol reports it)",
            m.state_transfers.clone(),
        );
        registry.register("checkpoints", "Checkpoints taken", m.checkpoints.clone());
        registry.register("rejected", "Inputs rejected, by reason", m.rejected.clone());
        registry.register("input_queue_depth", "Messages waiting for the protocol thread", m.input_queue.clone());
        registry.register("egress_queue_depth", "Records and sends waiting for the log", m.egress_queue.clone());
        registry.register("send_queue_depth", "Frames waiting per outgoing connection", m.send_queue.clone());
        registry.register(
            "commit_latency_seconds",
            "From a request's arrival to its execution",
            m.commit_latency.clone(),
        );
        registry.register("log_syncs", "Log fsyncs (group commits)", m.log_syncs.clone());
        registry.register("log_records", "Log records appended", m.log_records.clone());
        registry.register("connections", "Authenticated connections open", m.connections.clone());
        registry.register("signatures_checked", "Signatures verified for real", m.signatures_checked.clone());
        registry.register(
            "signature_cache_hits",
            "Signature checks answered by the cache",
            m.signature_cache_hits.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count a rejected input.
    pub fn reject(&self, reason: &str) {
        self.rejected.get_or_create(&Reason { reason: reason.to_string() }).inc();
    }

    /// How many inputs were rejected for `reason`.
    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected.get_or_create(&Reason { reason: reason.to_string() }).get()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        encode(&mut s, &self.registry).expect("writing to a String cannot fail");
        s
    }
}

/// Serve `metrics` over HTTP on `listener` until the task is dropped.
/// `refresh` runs before each scrape (to copy values kept elsewhere).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, refresh: impl Fn(&Metrics) + Send + Sync + 'static) {
    let refresh = Arc::new(refresh);
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let metrics = Arc::clone(&metrics);
        let refresh = Arc::clone(&refresh);
        tokio::spawn(async move {
            // Read the request head (bounded); the path does not matter.
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            while got < buf.len() {
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf[got..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return,
                    Ok(Ok(k)) => got += k,
                }
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            refresh(&metrics);
            let body = metrics.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_reason() {
        let m = Metrics::new();
        m.reject("bad frame mac");
        m.reject("bad frame mac");
        m.decided.inc();
        let text = m.render();
        assert!(text.contains("quorate_rejected_total{reason=\"bad frame mac\"} 2"), "{text}");
        assert!(text.contains("quorate_decided_instances_total 1"), "{text}");
        assert_eq!(m.rejected_count("bad frame mac"), 2);
    }
}

//! `quorate bench`: start a local cluster of replica processes, drive it with
//! closed-loop clients (each sends its next request when the previous one is
//! answered) and report throughput and latency.

use crate::protocols::{with_protocol, WithProtocol};
use crate::runtime::{KeygenArgs, LocalCluster};
use crate::sim::CliProtocol;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use quorate_apps::KvOp;
use quorate_core::ids::ClientId;
use quorate_core::machine::Protocol;
use quorate_node::config::NodeSettings;
use quorate_node::{Client, ClientHost, ClientOptions, ClusterConfig};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `quorate bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Protocol.
    #[arg(long, default_value = "mod-smart")]
    pub protocol: String,
    /// Number of replicas.
    #[arg(long, default_value_t = 4)]
    pub replicas: usize,
    /// Closed-loop clients.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Measured time ("10s", "1m"; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_secs)]
    pub duration: Duration,
    /// Time before measuring starts (connections, first instances).
    #[arg(long, default_value = "2s", value_parser = parse_secs)]
    pub warmup: Duration,
    /// Bytes of the value each request writes (a put of a per-client key).
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// Clients sign requests (Mod-SMaRt's default in Byzantine mode). `false` leaves
    /// client authentication to the channels, as BFT-SMaRt does by default.
    /// Only for protocols with that setting (EZBFT clients always sign).
    #[arg(long, action = clap::ArgAction::Set)]
    pub sign_requests: Option<bool>,
    /// fsync the replicas' logs (off only to see what the disk costs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub fsync: bool,
    /// Largest batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Threads per replica process for networking and signature checks (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Connections to each replica that the clients share (clients are spread
    /// evenly; set it to --clients for one connection per client, as
    /// BFT-SMaRt's benchmark clients have).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Client threads in the benchmark process.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Crash-fault mode instead of Byzantine.
    #[arg(long)]
    pub crash: bool,
    /// Replica i listens on 127.0.0.1:(PORT + i).
    #[arg(long, default_value_t = 7200)]
    pub base_port: u16,
    /// Working directory (default: a fresh directory under the system's temp dir, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs >= 0.0 && secs.is_finite() => Ok(Duration::from_secs_f64(secs)),
        _ => humantime::parse_duration(s).map_err(|e| e.to_string()),
    }
}

/// What one client measured.
struct ClientStats {
    latencies: Histogram<u64>,
    completed: u64,
    errors: u64,
}

/// `quorate bench`.
pub fn bench_main(args: &BenchArgs) -> Result<ExitCode, String> {
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if args.connections == 0 || args.connections > args.clients {
        return Err("--connections must be between 1 and --clients".into());
    }
    let temp = args.dir.is_none();
    let dir =
        args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("quorate-bench-{}", std::process::id())));
    if dir.join("cluster.toml").exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    let kg = KeygenArgs {
        replicas: args.replicas,
        out: dir.clone(),
        protocol: args.protocol.clone(),
        base_port: args.base_port,
        metrics_base_port: 0,
        f: None,
        clients: args.clients,
        clients_per_key: args.clients.div_ceil(args.connections),
        crash: args.crash,
    };
    let node = NodeSettings { fsync: args.fsync, threads: args.threads, ..NodeSettings::default() };
    let mut overrides = toml::Table::new();
    if let Some(sign) = args.sign_requests {
        overrides.insert("sign_requests".into(), toml::Value::Boolean(sign));
    }
    if let Some(b) = args.batch {
        overrides.insert("max_batch".into(), toml::Value::Integer(b as i64));
    }
    struct Bench<'a> {
        args: &'a BenchArgs,
        kg: KeygenArgs,
        node: NodeSettings,
        overrides: toml::Table,
    }
    impl WithProtocol for Bench<'_> {
        type Output = Result<(), String>;
        fn run<P: CliProtocol>(self) -> Self::Output {
            let defaults = crate::runtime::settings_table::<P>();
            if let Some(k) = self.overrides.keys().find(|k| !defaults.contains_key(*k)) {
                return Err(format!("{} has no setting `{k}`: drop the flag that sets it", P::NAME));
            }
            let mut cluster = LocalCluster::start(&self.kg, self.node, &self.overrides, "warn")?;
            let r = ClusterConfig::load(&cluster.config)
                .map_err(|e| e.to_string())
                .and_then(|cfg| run::<P>(&cfg, self.args));
            cluster.check_alive()?;
            cluster.stop();
            r
        }
    }
    let result = with_protocol(&args.protocol, Bench { args, kg, node, overrides }).and_then(|r| r);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result.map(|_| ExitCode::SUCCESS)
}

fn run<P: Protocol>(cfg: &ClusterConfig, args: &BenchArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let ids: Vec<ClientId> = (1..=args.clients as u64).map(ClientId).collect();
    let value = Bytes::from(vec![b'x'; args.payload]);
    let done = Arc::new(AtomicU64::new(0));
    let stats: Vec<ClientStats> = rt.block_on(async {
        // Wait until the cluster answers.
        let mut probe = Client::<P>::connect(cfg, ids[0], ClientOptions { timeout: Duration::from_secs(30) })
            .map_err(|e| e.to_string())?;
        probe
            .invoke(KvOp::Put { key: Bytes::from_static(b"warmup"), value: Bytes::new() }.encode())
            .await
            .map_err(|e| format!("the cluster did not answer: {e}"))?;
        drop(probe);
        let start = Instant::now();
        let measure_from = start + args.warmup;
        let end = measure_from + args.duration;
        let mut tasks = Vec::new();
        let per_connection = args.clients.div_ceil(args.connections);
        let mut hosts = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if i % per_connection == 0 {
                hosts.push(
                    ClientHost::<P>::connect(cfg, *id, ClientOptions { timeout: Duration::from_secs(10) })
                        .map_err(|e| e.to_string())?,
                );
            }
            let mut client = hosts[hosts.len() - 1].client(*id).map_err(|e| e.to_string())?;
            let op = KvOp::Put { key: Bytes::from(format!("k{}", id.0)), value: value.clone() }.encode();
            let done = Arc::clone(&done);
            tasks.push(tokio::spawn(async move {
                let mut s = ClientStats {
                    latencies: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
                    completed: 0,
                    errors: 0,
                };
                loop {
                    let t = Instant::now();
                    if t >= end {
                        return s;
                    }
                    let r = client.invoke(op.clone()).await;
                    let after = Instant::now();
                    let counted = t >= measure_from && after <= end;
                    match r {
                        Ok(_) if counted => {
                            s.completed += 1;
                            let _ = s.latencies.record((after - t).as_micros().max(1) as u64);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => s.errors += 1,
                    }
                }
            }));
        }
        let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(args.duration.as_secs().max(1)) };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} s  {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let mut last = (Instant::now(), 0u64);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = Instant::now();
            if now > measure_from {
                bar.set_position((now - measure_from).as_secs());
            }
            let n = done.load(Ordering::Relaxed);
            let rate = (n - last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, n);
            bar.set_message(if now < measure_from { "warming up".to_string() } else { format!("{rate:.0} ops/s") });
        }
        bar.finish_and_clear();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(out)
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));

    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let (mut completed, mut errors) = (0, 0);
    for s in &stats {
        all.add(&s.latencies).map_err(|e| e.to_string())?;
        completed += s.completed;
        errors += s.errors;
    }
    let secs = args.duration.as_secs_f64();
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    let throughput = completed as f64 / secs;
    if args.json {
        let out = json!({
            "throughput_ops": throughput,
            "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "mean": all.mean() / 1000.0, "max": all.max() as f64 / 1000.0 },
            "completed": completed,
            "errors": errors,
            "settings": {
                "protocol": args.protocol, "replicas": args.replicas, "f": cfg.file.f, "fault_model": format!("{:?}", cfg.file.fault_model).to_lowercase(),
                "clients": args.clients, "duration_s": secs, "warmup_s": args.warmup.as_secs_f64(), "payload_bytes": args.payload,
                "operation": "kv put of a per-client key", "sign_requests": cfg.file.settings.get("sign_requests").and_then(|v| v.as_bool()), "fsync": args.fsync,
                "batch": args.batch, "connections": args.connections, "replica_threads": args.threads, "client_threads": args.client_threads,
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            }
        });
        println!("{out}");
    } else {
        println!(
            "{} replicas of {} (f = {}), {} closed-loop clients, {}-byte puts, {:.0} s measured",
            args.replicas, args.protocol, cfg.file.f, args.clients, args.payload, secs
        );
        println!("throughput: {throughput:.0} ops/s ({completed} completed, {errors} errors)");
        println!("latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms", ms(0.5), ms(0.9), ms(0.99));
    }
    Ok(())
}

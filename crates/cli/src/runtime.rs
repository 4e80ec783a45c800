//! The runtime commands: `keygen`, `replica`, `client`, `cluster`.

use crate::protocols::{with_protocol, WithProtocol};
use crate::sim::CliProtocol;
use clap::{Args, Subcommand};
use quorate_apps::{Counter, KvOp, KvReply, KvStore};
use quorate_core::ids::{ClientId, ReplicaId};
use quorate_core::machine::Protocol;
use quorate_core::service::Service;
use quorate_node::config::{ModelName, NodeSettings};
use quorate_node::keys::{keygen, KeygenSpec};
use quorate_node::{Client, ClientOptions, ClusterConfig};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

/// Start logging to stderr at `level` (`error`, `warn`, `info`, `debug`, `trace`, or a filter).
pub fn init_logs(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// `quorate keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Number of replicas.
    #[arg(long)]
    pub replicas: usize,
    /// Output directory (keys in DIR/keys, the cluster file in DIR/cluster.toml).
    #[arg(long)]
    pub out: PathBuf,
    /// Protocol.
    #[arg(long, default_value = "mod-smart")]
    pub protocol: String,
    /// Replica i listens on 127.0.0.1:(PORT + i).
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Replica i serves metrics on 127.0.0.1:(PORT + i); 0 for no metrics endpoint.
    #[arg(long, default_value_t = 9100)]
    pub metrics_base_port: u16,
    /// Faults tolerated (default: the most the replicas allow).
    #[arg(long)]
    pub f: Option<usize>,
    /// Number of clients (ids 1..=N), each with a key file.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Consecutive client ids sharing one key, so that one process can run them
    /// as sessions over shared connections (1: a key each).
    #[arg(long, default_value_t = 1)]
    pub clients_per_key: usize,
    /// Crash-fault mode instead of Byzantine.
    #[arg(long)]
    pub crash: bool,
}

/// A protocol's default settings as a TOML table.
pub fn settings_table<P: Protocol>() -> toml::Table {
    match toml::Value::try_from(P::Config::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

fn spec_for<P: Protocol>(args: &KeygenArgs, node: NodeSettings, overrides: &toml::Table) -> Result<KeygenSpec, String> {
    let model = if args.crash { quorate_core::FaultModel::Crash } else { quorate_core::FaultModel::Byzantine };
    let n = args.replicas;
    let f = match args.f {
        // The protocol's own rule refuses a pair it does not accept.
        Some(f) => {
            quorate_core::membership_for::<P>(n, f, model).map_err(|e| e.to_string())?;
            f
        }
        // The most faults the protocol accepts for n replicas.
        None => match (0..n).rev().find(|f| quorate_core::membership_for::<P>(n, *f, model).is_ok()) {
            Some(f) => f,
            None => {
                // Name the rule at the f the default size would give.
                let f = crate::protocols::max_faults::<P>(n, model);
                let rule = quorate_core::membership_for::<P>(n, f, model).err().map(|e| e.to_string());
                return Err(format!("{} accepts no f for {n} replicas: {}", P::NAME, rule.unwrap_or_default()));
            }
        },
    };
    Ok(KeygenSpec {
        protocol: P::NAME.to_string(),
        fault_model: if args.crash { ModelName::Crash } else { ModelName::Byzantine },
        replicas: args.replicas,
        f,
        clients: args.clients,
        clients_per_key: args.clients_per_key,
        base_port: args.base_port,
        metrics_base_port: (args.metrics_base_port != 0).then_some(args.metrics_base_port),
        settings: {
            let mut t = settings_table::<P>();
            t.extend(overrides.clone());
            t
        },
        node,
    })
}

/// Write keys and a cluster file (protocol settings: defaults, then `overrides`);
/// returns the cluster file's path.
pub fn run_keygen(args: &KeygenArgs, node: NodeSettings, overrides: &toml::Table) -> Result<PathBuf, String> {
    struct Spec<'a>(&'a KeygenArgs, NodeSettings, &'a toml::Table);
    impl WithProtocol for Spec<'_> {
        type Output = Result<PathBuf, String>;
        fn run<P: CliProtocol>(self) -> Self::Output {
            let spec = spec_for::<P>(self.0, self.1, self.2)?;
            keygen::<P::Keys>(&self.0.out, &spec).map_err(|e| e.to_string())
        }
    }
    let path = with_protocol(&args.protocol, Spec(args, node, overrides))??;
    // Check what we wrote the way a replica will read it.
    ClusterConfig::load(&path).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The files of a protocol's own key material.
struct KeyFilesOf;
impl WithProtocol for KeyFilesOf {
    type Output = Option<quorate_core::keys::KeyFiles>;
    fn run<P: CliProtocol>(self) -> Self::Output {
        <P::Keys as quorate_core::keys::KeyMaterial>::FILES
    }
}

/// `quorate keygen`.
pub fn keygen_main(args: &KeygenArgs) -> Result<ExitCode, String> {
    let path = run_keygen(args, NodeSettings::default(), &toml::Table::new())?;
    let keys = args.out.join("keys");
    println!("wrote {} and {} keys in {}", path.display(), args.replicas + args.clients, keys.display());
    if let Some(files) = with_protocol(&args.protocol, KeyFilesOf)? {
        println!("and {}: {} for each replica, {} for all", files.kind, files.per_replica, files.shared);
    }
    Ok(ExitCode::SUCCESS)
}

/// `quorate replica`.
#[derive(Args, Debug)]
pub struct ReplicaArgs {
    /// The cluster file.
    #[arg(long)]
    pub config: PathBuf,
    /// This replica's id.
    #[arg(long)]
    pub id: u32,
    /// Log level or filter (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

fn service_for(cfg: &ClusterConfig) -> Box<dyn Service> {
    match cfg.file.service.as_str() {
        "counter" => Box::new(Counter::new()),
        _ => Box::new(KvStore::new()),
    }
}

/// `quorate replica`: run until SIGINT or SIGTERM.
pub fn replica_main(args: &ReplicaArgs) -> Result<ExitCode, String> {
    init_logs(&args.log_level);
    let cfg = ClusterConfig::load(&args.config).map_err(|e| e.to_string())?;
    let id = ReplicaId(args.id);
    struct Run<'a>(&'a ClusterConfig, ReplicaId);
    impl WithProtocol for Run<'_> {
        type Output = Result<(), String>;
        fn run<P: CliProtocol>(self) -> Self::Output {
            let handle = quorate_node::start::<P>(self.0, self.1, service_for(self.0)).map_err(|e| e.to_string())?;
            wait_for_signal();
            tracing::info!("stopping");
            handle.shutdown();
            Ok(())
        }
    }
    with_protocol(&cfg.file.protocol, Run(&cfg, id))??;
    Ok(ExitCode::SUCCESS)
}

/// Block until SIGINT or SIGTERM.
fn wait_for_signal() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a signal runtime starts");
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
}

/// `quorate client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The cluster file.
    #[arg(long)]
    pub config: PathBuf,
    /// Client id (default: the first client whose key file is present).
    #[arg(long)]
    pub id: Option<u64>,
    /// Give up after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Log level.
    #[arg(long, default_value = "warn")]
    pub log_level: String,
    /// The operation.
    #[command(subcommand)]
    pub op: ClientOp,
}

/// A key-value operation.
#[derive(Subcommand, Debug, Clone)]
pub enum ClientOp {
    /// Store VALUE under KEY; prints the previous value.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Print the value of KEY.
    Get {
        /// Key.
        key: String,
    },
    /// Remove KEY; prints the removed value.
    Delete {
        /// Key.
        key: String,
    },
    /// Set KEY to NEW if its value is OLD ("-" for absent); prints true or false.
    Cas {
        /// Key.
        key: String,
        /// Expected value, or "-" for an absent key.
        old: String,
        /// New value.
        new: String,
    },
}

impl ClientOp {
    /// The store operation.
    pub fn to_kv(&self) -> KvOp {
        let b = |s: &str| bytes::Bytes::from(s.as_bytes().to_vec());
        match self {
            ClientOp::Put { key, value } => KvOp::Put { key: b(key), value: b(value) },
            ClientOp::Get { key } => KvOp::Get { key: b(key) },
            ClientOp::Delete { key } => KvOp::Delete { key: b(key) },
            ClientOp::Cas { key, old, new } => {
                KvOp::Cas { key: b(key), expected: (old != "-").then(|| b(old)), new: b(new) }
            }
        }
    }
}

/// How a reply is printed: values as text, absent as "(none)".
pub fn show_reply(reply: &[u8]) -> Result<String, String> {
    match KvReply::decode(reply).map_err(|e| format!("undecodable reply: {e}"))? {
        KvReply::Value(Some(v)) => Ok(String::from_utf8_lossy(&v).into_owned()),
        KvReply::Value(None) => Ok("(none)".to_string()),
        KvReply::Cas(b) => Ok(b.to_string()),
        KvReply::Error(e) => Err(format!("the service refused the operation: {e}")),
    }
}

/// Execute `op` (reads by the read-only path); the printed reply.
async fn execute<P: Protocol>(client: &mut Client<P>, op: &KvOp) -> Result<String, String> {
    let bytes = op.encode();
    let reply = if op.is_read_only() { client.invoke_read_only(bytes).await } else { client.invoke(bytes).await };
    show_reply(&reply.map_err(|e| e.to_string())?)
}

/// Run one operation as client `id`; the printed reply.
async fn run_op<P: Protocol>(
    cfg: &ClusterConfig,
    id: ClientId,
    op: &KvOp,
    timeout: Duration,
) -> Result<String, String> {
    let mut client = Client::<P>::connect(cfg, id, ClientOptions { timeout }).map_err(|e| e.to_string())?;
    execute(&mut client, op).await
}

/// `quorate client`.
pub fn client_main(args: &ClientArgs) -> Result<ExitCode, String> {
    init_logs(&args.log_level);
    let cfg = ClusterConfig::load(&args.config).map_err(|e| e.to_string())?;
    let id = match args.id {
        Some(id) => ClientId(id),
        None => *cfg.local_clients().first().ok_or("no client key file found next to the cluster file (use --id)")?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let op = args.op.to_kv();
    struct Op<'a>(&'a tokio::runtime::Runtime, &'a ClusterConfig, ClientId, &'a KvOp, Duration);
    impl WithProtocol for Op<'_> {
        type Output = Result<String, String>;
        fn run<P: CliProtocol>(self) -> Self::Output {
            self.0.block_on(run_op::<P>(self.1, self.2, self.3, self.4))
        }
    }
    let out = with_protocol(&cfg.file.protocol, Op(&rt, &cfg, id, &op, args.timeout)).and_then(|r| r);
    rt.shutdown_background();
    match out {
        Ok(text) => {
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Replica processes of a local cluster; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct LocalCluster {
    /// The cluster file.
    pub config: PathBuf,
    /// The working directory.
    pub dir: PathBuf,
    children: Vec<Option<Child>>,
    exe: PathBuf,
    log_level: String,
}

impl LocalCluster {
    /// Generate keys in `dir` and start every replica as a process of this executable.
    pub fn start(
        keygen_args: &KeygenArgs,
        node: NodeSettings,
        overrides: &toml::Table,
        log_level: &str,
    ) -> Result<LocalCluster, String> {
        let config = run_keygen(keygen_args, node, overrides)?;
        std::fs::create_dir_all(keygen_args.out.join("logs")).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut c = LocalCluster {
            config,
            dir: keygen_args.out.clone(),
            children: Vec::new(),
            exe,
            log_level: log_level.to_string(),
        };
        for i in 0..keygen_args.replicas {
            let child = c.spawn(i)?;
            c.children.push(Some(child));
        }
        Ok(c)
    }

    fn spawn(&self, i: usize) -> Result<Child, String> {
        let log = self.log_path(i);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| e.to_string())?;
        Command::new(&self.exe)
            .args(["replica", "--config"])
            .arg(&self.config)
            .args(["--id", &i.to_string(), "--log-level", &self.log_level])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| format!("cannot start replica {i}: {e}"))
    }

    /// Where replica `i` logs.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join("logs").join(format!("replica-{i}.log"))
    }

    /// Whether every replica process is still running.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(child) = c {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("replica {i} exited ({status}); see {}", self.log_path(i).display()));
                }
            }
        }
        Ok(())
    }

    /// Stop every replica.
    pub fn stop(&mut self) {
        for c in self.children.iter_mut().filter_map(|c| c.as_mut()) {
            // SIGTERM lets the replica sync its log.
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for c in self.children.iter_mut().filter_map(|c| c.take()) {
            let mut c = c;
            for _ in 0..50 {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `quorate cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Protocol.
    #[arg(long, default_value = "mod-smart")]
    pub protocol: String,
    /// Number of replicas (default: what the protocol needs for f = 1; the
    /// protocol refuses a number its quorums are not safe for).
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Working directory (keys, cluster file, data, logs); replaced if it exists.
    #[arg(long, default_value = "quorate-cluster")]
    pub dir: PathBuf,
    /// Replica i listens on 127.0.0.1:(PORT + i).
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Replica i serves metrics on 127.0.0.1:(PORT + i); 0 for none.
    #[arg(long, default_value_t = 9100)]
    pub metrics_base_port: u16,
    /// Run a short demonstration (a client stores, reads, swaps and deletes values), then stop.
    #[arg(long)]
    pub demo: bool,
    /// Crash-fault mode instead of Byzantine.
    #[arg(long)]
    pub crash: bool,
    /// Replicas' log level.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

/// `quorate cluster`.
pub fn cluster_main(args: &ClusterArgs) -> Result<ExitCode, String> {
    if args.dir.join("cluster.toml").exists() {
        std::fs::remove_dir_all(&args.dir).map_err(|e| format!("cannot clear {}: {e}", args.dir.display()))?;
    }
    struct DefaultN(quorate_core::FaultModel);
    impl WithProtocol for DefaultN {
        type Output = usize;
        fn run<P: CliProtocol>(self) -> usize {
            P::replicas_for(1, self.0)
        }
    }
    let model = if args.crash { quorate_core::FaultModel::Crash } else { quorate_core::FaultModel::Byzantine };
    let replicas = match args.replicas {
        Some(n) => n,
        None => with_protocol(&args.protocol, DefaultN(model))?,
    };
    let kg = KeygenArgs {
        replicas,
        out: args.dir.clone(),
        protocol: args.protocol.clone(),
        base_port: args.base_port,
        metrics_base_port: args.metrics_base_port,
        f: None,
        clients: 16,
        clients_per_key: 1,
        crash: args.crash,
    };
    let mut cluster = LocalCluster::start(&kg, NodeSettings::default(), &toml::Table::new(), &args.log_level)?;
    let cfg = ClusterConfig::load(&cluster.config).map_err(|e| e.to_string())?;
    let config = cluster.config.display().to_string();
    println!("quorate cluster: {replicas} replicas of {} (f = {}) on 127.0.0.1", args.protocol, cfg.file.f);
    for r in &cfg.file.replicas {
        let metrics = r.metrics.as_deref().map(|m| format!(", metrics http://{m}/metrics")).unwrap_or_default();
        println!("  replica {}: {}{metrics}, log {}", r.id, r.address, cluster.log_path(r.id as usize).display());
    }
    println!("  cluster file: {config}");
    println!("  data: {}", cfg.data_dir(ReplicaId(0)).parent().unwrap_or(Path::new(".")).display());
    if args.demo {
        struct Demo<'a>(&'a ClusterConfig);
        impl WithProtocol for Demo<'_> {
            type Output = Result<(), String>;
            fn run<P: CliProtocol>(self) -> Self::Output {
                demo::<P>(self.0)
            }
        }
        let result = with_protocol(&cfg.file.protocol, Demo(&cfg)).and_then(|r| r);
        cluster.check_alive()?;
        cluster.stop();
        return result.map(|_| ExitCode::SUCCESS);
    }
    println!("try: quorate client --config {config} put greeting hello");
    println!("     quorate client --config {config} get greeting");
    println!("Ctrl-C stops the cluster.");
    wait_for_signal();
    println!("stopping");
    cluster.stop();
    Ok(ExitCode::SUCCESS)
}

/// A client stores, reads, swaps and deletes values, printing each step.
fn demo<P: Protocol>(cfg: &ClusterConfig) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let id = *cfg.local_clients().first().ok_or("no client key")?;
    let steps = [
        ClientOp::Put { key: "greeting".into(), value: "hello".into() },
        ClientOp::Get { key: "greeting".into() },
        ClientOp::Cas { key: "greeting".into(), old: "hello".into(), new: "bonjour".into() },
        ClientOp::Get { key: "greeting".into() },
        ClientOp::Delete { key: "greeting".into() },
        ClientOp::Get { key: "greeting".into() },
    ];
    let result = rt.block_on(async {
        let mut client = Client::<P>::connect(cfg, id, ClientOptions { timeout: Duration::from_secs(20) })
            .map_err(|e| e.to_string())?;
        for step in &steps {
            let t = std::time::Instant::now();
            let text = execute(&mut client, &step.to_kv()).await?;
            println!("client {}: {step:?} -> {text}  ({:.1} ms)", id.0, t.elapsed().as_secs_f64() * 1e3);
        }
        Ok::<(), String>(())
    });
    rt.shutdown_background();
    result
}

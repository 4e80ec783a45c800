//! Helpers of the runtime integration tests: a local cluster of `quorate
//! replica` processes (keys and cluster file from `quorate keygen` in a
//! temporary directory, one log file per replica, SIGKILL, restart, wiped
//! disks, metrics scrapes), closed-loop key-value clients that record their
//! history for the linearizability checker, and polling with deadlines.
//!
//! On a failing test the cluster prints the tail of every replica's log and
//! keeps its directory.

#![allow(dead_code)]

use bytes::Bytes;
use quorate_apps::{KvOp, KvReply};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::Protocol;
use quorate_node::{Client, ClientHost, ClientOptions, ClusterConfig};
use quorate_sim::linearizability::{check_kv, KvOp as LKvOp, KvRet, Operation, Outcome};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long any awaited condition may take (the machine may be loaded).
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(100);

/// Cluster tests of one test binary run one at a time: each starts several
/// replica processes, and the CI machine has two cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Poll `cond` until it holds; panic naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// A base port with `count` free consecutive ports after it, below Linux's
/// ephemeral range (32768+) so that outgoing connections cannot take a port
/// of a stopped replica before it restarts. Derived from the process id and
/// the test name, so tests of concurrent processes rarely collide, and
/// checked by binding every port.
fn free_ports(name: &str, count: u16) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for attempt in 0..500u32 {
        let mut h = DefaultHasher::new();
        (std::process::id(), name, attempt, NEXT.fetch_add(1, Ordering::Relaxed)).hash(&mut h);
        let base = 12_000 + (h.finish() % 2_000) as u16 * 10;
        let held: Vec<_> =
            (0..count).map_while(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).ok()).collect();
        if held.len() == count as usize {
            return base;
        }
    }
    panic!("no {count} free consecutive ports found");
}

/// A local cluster of replica processes.
pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    /// The cluster file.
    pub config_path: PathBuf,
    /// The loaded cluster file.
    pub cfg: ClusterConfig,
    /// Number of replicas.
    pub n: usize,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// Keys and cluster file for `n` replicas of `protocol` and `clients` clients
    /// (ids 1..=clients, `per_key` consecutive ids sharing a key); `edit` may
    /// change the cluster file's text before anything starts. No replica is started.
    pub fn new(
        name: &str,
        protocol: &str,
        n: usize,
        clients: usize,
        per_key: usize,
        edit: impl FnOnce(String) -> String,
    ) -> Cluster {
        let dir = tempfile::Builder::new().prefix(&format!("quorate-{name}-")).tempdir().expect("temp dir");
        let base = free_ports(name, 2 * n as u16);
        let out = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["keygen", "--protocol", protocol, "--replicas", &n.to_string(), "--out"])
            .arg(dir.path())
            .args(["--base-port", &base.to_string(), "--metrics-base-port", &(base + n as u16).to_string()])
            .args(["--clients", &clients.to_string(), "--clients-per-key", &per_key.to_string()])
            .output()
            .expect("run quorate keygen");
        assert!(out.status.success(), "keygen failed: {}", String::from_utf8_lossy(&out.stderr));
        let config_path = dir.path().join("cluster.toml");
        let text = std::fs::read_to_string(&config_path).expect("read cluster file");
        let edited = edit(text.clone());
        if edited != text {
            std::fs::write(&config_path, edited).expect("write cluster file");
        }
        let cfg = ClusterConfig::load(&config_path).expect("the cluster file loads");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        Cluster { dir: Some(dir), config_path, cfg, n, children: (0..n).map(|_| None).collect() }
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the directory is kept until drop").path()
    }

    /// Start every replica and wait until each serves metrics.
    pub fn start_all(&mut self) {
        for i in 0..self.n {
            self.spawn(i);
        }
        for i in 0..self.n {
            self.wait_serving(i);
        }
    }

    fn spawn(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "replica {i} is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(i)).expect("open log");
        let child = Command::new(env!("CARGO_BIN_EXE_quorate"))
            .args(["replica", "--config"])
            .arg(&self.config_path)
            .args(["--id", &i.to_string(), "--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a replica");
        self.children[i] = Some(child);
    }

    fn wait_serving(&mut self, i: usize) {
        wait_until(&format!("replica {i} serves metrics"), DEADLINE, || {
            self.assert_running(i);
            self.scrape(i).is_some()
        });
    }

    /// (Re)start replica `i` and wait until it serves metrics.
    pub fn start(&mut self, i: usize) {
        self.spawn(i);
        self.wait_serving(i);
    }

    /// SIGKILL replica `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.children[i].take().unwrap_or_else(|| panic!("replica {i} is not running"));
        child.kill().expect("SIGKILL a replica");
        child.wait().expect("reap a replica");
    }

    /// Delete replica `i`'s durable state (it must be stopped).
    pub fn wipe(&self, i: usize) {
        assert!(self.children[i].is_none(), "wipe a running replica");
        let d = self.cfg.data_dir(ReplicaId(i as u32));
        assert!(d.exists(), "replica {i} has no data dir at {}", d.display());
        std::fs::remove_dir_all(&d).expect("remove the data dir");
    }

    /// Panic unless replica `i`'s process is running.
    pub fn assert_running(&mut self, i: usize) {
        let child = self.children[i].as_mut().unwrap_or_else(|| panic!("replica {i} was not started"));
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("replica {i} exited: {status}");
        }
    }

    /// Where replica `i` logs.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir().join("logs").join(format!("replica-{i}.log"))
    }

    /// The last `lines` lines of replica `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Replica `i`'s address.
    pub fn address(&self, i: usize) -> String {
        self.cfg.file.replicas[i].address.clone()
    }

    /// Replica `i`'s metrics text, or None if the endpoint does not answer.
    pub fn scrape(&self, i: usize) -> Option<String> {
        let addr = self.cfg.file.replicas[i].metrics.as_ref().expect("metrics endpoint");
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let (_, body) = body.split_once("\r\n\r\n")?;
        Some(body.to_string())
    }

    /// The value of series `series` (name with labels, as written in the text
    /// format) of replica `i`; None if the replica does not answer, 0 if the
    /// series is absent (a counter never incremented).
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let text = self.scrape(i)?;
        let v = text
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .next();
        Some(v.unwrap_or(0.0))
    }

    /// Like [`Cluster::metric`], panicking if the replica does not answer.
    pub fn metric_now(&self, i: usize, series: &str) -> f64 {
        self.metric(i, series).unwrap_or_else(|| panic!("replica {i} does not serve metrics"))
    }

    /// How many inputs replica `i` rejected for `reason`.
    pub fn rejected(&self, i: usize, reason: &str) -> u64 {
        self.metric_now(i, &format!("quorate_rejected_total{{reason=\"{reason}\"}}")) as u64
    }

    /// The current leader, by the highest view among running replicas.
    pub fn leader(&mut self) -> usize {
        let mut view = 0;
        for i in 0..self.n {
            if self.children[i].is_some() {
                view = view.max(self.metric(i, "quorate_view").unwrap_or(0.0) as u64);
            }
        }
        (view % self.n as u64) as usize
    }

    /// Whether replica `i` has been started and not killed.
    pub fn is_started(&self, i: usize) -> bool {
        self.children[i].is_some()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(|c| c.take()) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let dir = dir.keep();
                eprintln!("cluster directory kept: {}", dir.display());
            }
            for i in 0..self.n {
                let text = std::fs::read_to_string(
                    self.config_path.parent().expect("dir").join("logs").join(format!("replica-{i}.log")),
                )
                .unwrap_or_default();
                let all: Vec<&str> = text.lines().collect();
                eprintln!("---- replica {i} log (last 40 lines) ----");
                for l in &all[all.len().saturating_sub(40)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A tokio runtime for the test's clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A history of key-value operations as the linearizability checker takes them.
pub type History = Vec<Operation<LKvOp, KvRet>>;

/// Nanoseconds since `start`.
pub fn nanos(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

fn to_checker(op: &KvOp) -> LKvOp {
    match op {
        KvOp::Get { key } => LKvOp::Get(key.to_vec()),
        KvOp::Put { key, value } => LKvOp::Put(key.to_vec(), value.to_vec()),
        KvOp::Delete { key } => LKvOp::Delete(key.to_vec()),
        KvOp::Cas { key, expected, new } => {
            LKvOp::Cas { key: key.to_vec(), expected: expected.as_ref().map(|e| e.to_vec()), new: new.to_vec() }
        }
    }
}

fn ret_of(reply: &[u8]) -> KvRet {
    match KvReply::decode(reply).expect("a decodable reply") {
        KvReply::Value(v) => KvRet::Value(v.map(|b| b.to_vec())),
        KvReply::Cas(b) => KvRet::Cas(b),
        KvReply::Error(e) => panic!("the service refused an operation: {e}"),
    }
}

/// Run `op` (ordered, or read-only when `read_only`) and record it in `history`,
/// as completed or (on error) with an unknown outcome. The reply, if any.
pub async fn record<P: Protocol>(
    client: &mut Client<P>,
    id: u64,
    op: KvOp,
    read_only: bool,
    start: Instant,
    history: &mut History,
) -> Option<KvRet> {
    let call = nanos(start);
    let reply = if read_only { client.invoke_read_only(op.encode()).await } else { client.invoke(op.encode()).await };
    let ret = reply.ok().map(|b| (nanos(start), ret_of(&b)));
    let value = ret.as_ref().map(|(_, r)| r.clone());
    history.push(Operation { client: id, call, ret, op: to_checker(&op) });
    value
}

/// A client of the cluster (in a tokio runtime).
pub fn client<P: Protocol>(cfg: &ClusterConfig, id: u64, timeout: Duration) -> Client<P> {
    Client::<P>::connect(cfg, ClientId(id), ClientOptions { timeout }).expect("client")
}

/// splitmix64: a small deterministic generator for the workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Keys the load works on: few, so clients contend and the history is worth checking.
pub const KEYS: &[&str] = &["k0", "k1", "k2"];

/// Closed-loop clients issuing puts, gets (ordered and read-only), compare-and-swaps
/// and deletes on [`KEYS`], recording their history.
pub struct Load {
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<History>>,
    /// Time origin of the history.
    pub start: Instant,
}

impl Load {
    /// Start one closed-loop client per id in `ids`; clients with the same key
    /// run as sessions over shared connections.
    pub fn start<P: Protocol>(rt: &tokio::runtime::Runtime, cfg: &ClusterConfig, ids: &[u64], start: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let _rt = rt.enter();
        let mut hosts: HashMap<[u8; 32], ClientHost<P>> = HashMap::new();
        let tasks = ids
            .iter()
            .map(|&id| {
                let key = cfg.directory[&NodeId::Client(ClientId(id))].to_bytes();
                // Long enough to ride out a regency change on a loaded machine.
                let opts = ClientOptions { timeout: Duration::from_secs(20) };
                let host = hosts
                    .entry(key)
                    .or_insert_with(|| ClientHost::connect(cfg, ClientId(id), opts).expect("client connections"));
                let mut c = host.client(ClientId(id)).expect("client session");
                let (stop, completed, failed) = (Arc::clone(&stop), Arc::clone(&completed), Arc::clone(&failed));
                rt.spawn(async move {
                    let mut rng = Rng(id);
                    let mut history = History::new();
                    let mut n = 0u64;
                    // The last value this client saw per key (the expected value of its CAS).
                    let mut seen: Vec<Option<Bytes>> = vec![None; KEYS.len()];
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let k = (rng.next() % KEYS.len() as u64) as usize;
                        let key = Bytes::from_static(KEYS[k].as_bytes());
                        let value = Bytes::from(format!("c{id}-{n}"));
                        let (op, read_only) = match rng.next() % 10 {
                            0..=3 => (KvOp::Put { key, value }, false),
                            4 => (KvOp::Get { key }, false),
                            5 | 6 => (KvOp::Get { key }, true),
                            7 | 8 => (KvOp::Cas { key, expected: seen[k].clone(), new: value }, false),
                            _ => (KvOp::Delete { key }, false),
                        };
                        let written = match &op {
                            KvOp::Put { value, .. } | KvOp::Cas { new: value, .. } => Some(value.clone()),
                            _ => None,
                        };
                        match record(&mut c, id, op.clone(), read_only, start, &mut history).await {
                            Some(ret) => {
                                completed.fetch_add(1, Ordering::Relaxed);
                                seen[k] = match (&op, ret) {
                                    (KvOp::Get { .. }, KvRet::Value(v)) => v.map(Bytes::from),
                                    (KvOp::Put { .. }, _) | (KvOp::Cas { .. }, KvRet::Cas(true)) => written,
                                    (KvOp::Delete { .. }, _) => None,
                                    (_, _) => seen[k].clone(),
                                };
                            }
                            None => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    history
                })
            })
            .collect();
        Load { stop, completed, failed, tasks, start }
    }

    /// Operations completed so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Operations that gave up (timeout) so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Wait until at least `more` operations complete after this call.
    pub fn wait_more(&self, more: u64, what: &str) {
        let target = self.completed() + more;
        wait_until(&format!("{more} more completed operations ({what})"), DEADLINE, || self.completed() >= target);
    }

    /// Stop the clients (each finishes its current operation) and return the history.
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> History {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = History::new();
        for t in self.tasks {
            all.extend(rt.block_on(t).expect("a load client panicked"));
        }
        all
    }
}

/// Read every key of [`KEYS`] with ordered gets (as client `id`) and add them
/// to `history`: with them in it, the linearizability check also proves that
/// no acknowledged write was lost.
pub fn final_reads<P: Protocol>(
    rt: &tokio::runtime::Runtime,
    cfg: &ClusterConfig,
    id: u64,
    start: Instant,
    history: &mut History,
) {
    rt.block_on(async {
        let mut c = client::<P>(cfg, id, DEADLINE);
        for k in KEYS {
            let op = KvOp::Get { key: Bytes::from_static(k.as_bytes()) };
            let got = record(&mut c, id, op, false, start, history).await;
            assert!(got.is_some(), "final read of {k} did not complete");
        }
    });
}

/// Assert that `history` is linearizable.
pub fn assert_linearizable(history: &History) {
    let completed = history.iter().filter(|o| o.ret.is_some()).count();
    let outcome = check_kv(history, 50_000_000);
    assert_eq!(
        outcome,
        Outcome::Linearizable,
        "history of {} operations ({completed} completed) is not linearizable",
        history.len()
    );
    // The check has teeth: the same history with the last read answering a
    // value nobody wrote is refused.
    let mut forged = history.clone();
    let last_read = forged
        .iter_mut()
        .rev()
        .find(|o| matches!(o.op, LKvOp::Get(_)) && o.ret.is_some())
        .expect("the history ends with reads");
    if let Some((_, ret)) = &mut last_read.ret {
        *ret = KvRet::Value(Some(b"never written".to_vec()));
    }
    assert!(check_kv(&forged, 50_000_000).is_violation(), "a forged read went unnoticed");
    eprintln!("history: {} operations, {completed} completed, linearizable", history.len());
}

/// Wait until replica `i` is level with the cluster: an ordered operation
/// completes through a client that reaches only `i` and as many other
/// replicas as make one short of the matching replies its protocol's client
/// needs (the leader first, then the probe's home replica). Those replies
/// then need `i`'s, which it sends only once it has executed (or installed
/// by state transfer) everything ordered before the operation. The probe
/// writes key `probe` (recorded in `history`).
pub fn wait_caught_up<P: Protocol>(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    i: usize,
    id: u64,
    start: Instant,
    history: &mut History,
) {
    let f = (cluster.n - 1) / 3;
    // PBFT's and DQPBFT's clients take f+1 matching replies; Mod-SMaRt's and EZBFT's 2f+1.
    let replies = if matches!(cluster.cfg.file.protocol.as_str(), "pbft" | "dqbft") { f + 1 } else { 2 * f + 1 };
    let (leader, home) = (cluster.leader(), id as usize % cluster.n);
    let mut reach = vec![i];
    for j in [leader, home].into_iter().chain(0..cluster.n) {
        if reach.len() < replies && !reach.contains(&j) {
            reach.push(j);
        }
    }
    let mut cfg = cluster.cfg.clone();
    for j in (0..cluster.n).filter(|j| !reach.contains(j)) {
        // Nothing listens on port 1: the client never reaches that replica.
        cfg.file.replicas[j].address = "127.0.0.1:1".to_string();
    }
    let t = Instant::now();
    let done = rt.block_on(async {
        let mut c = client::<P>(&cfg, id, DEADLINE);
        let op =
            KvOp::Put { key: Bytes::from_static(b"probe"), value: Bytes::from(format!("probe-{i}-{}", nanos(start))) };
        record(&mut c, id, op, false, start, history).await.is_some()
    });
    assert!(done, "replica {i} did not catch up within {DEADLINE:?} (probe through replicas {reach:?} only)");
    eprintln!("replica {i} caught up (probe took {:.1} s)", t.elapsed().as_secs_f64());
    cluster.assert_running(i);
}

/// Load clients 1..=4 (one key: sessions over shared connections); final
/// reads use client 5 or 6, probes 6 and up (see each test file).
pub const LOAD_CLIENTS: &[u64] = &[1, 2, 3, 4];

/// Stop the load; the replicas in `running` must still be up; the whole
/// history (load, `probes`, a final ordered read of every key by client
/// `reader`) must be linearizable.
#[allow(clippy::too_many_arguments)]
pub fn finish<P: Protocol>(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    load: Load,
    running: &[usize],
    probes: History,
    reader: u64,
    start: Instant,
) {
    for &i in running {
        cluster.assert_running(i);
    }
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(rt);
    history.extend(probes);
    final_reads::<P>(rt, &cluster.cfg, reader, start, &mut history);
    eprintln!("{done} operations completed, {failed} timed out");
    assert_linearizable(&history);
}

/// The leader (the replica that `Cluster::leader` names: the primary, or
/// DQPBFT's O-primary) is killed with SIGKILL under load: every survivor
/// installs a new view, another replica leads, operations complete after
/// the kill, and the history with final reads is linearizable.
pub fn leader_killed_under_load<P: Protocol>(name: &str, protocol: &str, reader: u64) {
    leader_killed_under_load_of::<P>(name, protocol, 4, reader);
}

/// [`leader_killed_under_load`] with `n` replicas.
pub fn leader_killed_under_load_of<P: Protocol>(name: &str, protocol: &str, n: usize, reader: u64) {
    let _serial = serial();
    let mut cluster = Cluster::new(name, protocol, n, 8, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<P>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    load.wait_more(100, "before the crash");
    let leader = cluster.leader();
    let view_changes = |cluster: &Cluster, i: usize| cluster.metric_now(i, "quorate_view_changes_total");
    let before: Vec<f64> = (0..n).map(|i| view_changes(&cluster, i)).collect();
    let killed_at = nanos(start);
    cluster.kill(leader);
    let survivors: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
    wait_until("the survivors install a new view", DEADLINE, || {
        survivors.iter().all(|&i| view_changes(&cluster, i) > before[i])
    });
    assert_ne!(cluster.leader(), leader, "a surviving replica leads");
    load.wait_more(100, "after the view change");
    for &i in &survivors {
        cluster.assert_running(i);
    }
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(&rt);
    let after = history.iter().filter(|o| o.call > killed_at && o.ret.is_some()).count();
    assert!(after > 0, "nothing completed after the leader was killed");
    final_reads::<P>(&rt, &cluster.cfg, reader, start, &mut history);
    eprintln!("{done} operations completed ({after} after the kill), {failed} timed out");
    assert_linearizable(&history);
}

/// Each replica in turn is killed with SIGKILL under load, restarted from its
/// log, and must catch up (probe clients `first_probe`, `first_probe + 1`, …)
/// before the next one goes down (with the next one down, the cluster needs
/// it to make progress).
pub fn kill_and_restart_each<P: Protocol>(name: &str, protocol: &str, first_probe: u64, reader: u64) {
    let _serial = serial();
    let mut cluster = Cluster::new(name, protocol, 4, 16, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<P>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    let mut probes = History::new();
    load.wait_more(50, "before the first crash");
    for i in 0..4 {
        cluster.kill(i);
        load.wait_more(30, &format!("with replica {i} down"));
        cluster.start(i);
        wait_caught_up::<P>(&rt, &mut cluster, i, first_probe + i as u64, start, &mut probes);
        load.wait_more(20, &format!("after replica {i} restarted"));
    }
    finish::<P>(&rt, &mut cluster, load, &[0, 1, 2, 3], probes, reader, start);
}

/// A replica whose disk is wiped rejoins by state transfer (the others have
/// truncated their logs at checkpoints, so the log alone cannot bring it
/// back) and catches up under load. `checkpoints` is the cluster file's
/// checkpoint setting as keygen writes it and as the test sets it (short,
/// so that checkpoints come quickly).
pub fn wiped_replica_rejoins<P: Protocol>(
    name: &str,
    protocol: &str,
    clients: usize,
    checkpoints: (&str, &str),
    probe: u64,
    reader: u64,
) {
    let _serial = serial();
    let mut cluster = Cluster::new(name, protocol, 4, clients, 4, |t| {
        assert!(t.contains(checkpoints.0), "keygen writes {}", checkpoints.0);
        t.replace(checkpoints.0, checkpoints.1)
    });
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<P>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    wait_until("two checkpoints on replica 0", DEADLINE, || cluster.metric_now(0, "quorate_checkpoints_total") >= 2.0);
    cluster.kill(3);
    cluster.wipe(3);
    // Let the others move on by at least one more checkpoint.
    let cps = cluster.metric_now(0, "quorate_checkpoints_total");
    wait_until("a checkpoint with replica 3 down", DEADLINE, || {
        cluster.metric_now(0, "quorate_checkpoints_total") > cps
    });
    cluster.start(3);
    wait_until("a state transfer on replica 3", DEADLINE, || {
        cluster.assert_running(3);
        cluster.metric_now(3, "quorate_state_transfers_total") >= 1.0
    });
    let mut probes = History::new();
    wait_caught_up::<P>(&rt, &mut cluster, 3, probe, start, &mut probes);
    wait_until("replica 3 executes requests after the transfer", DEADLINE, || {
        cluster.metric_now(3, "quorate_executed_requests_total") >= 1.0
    });
    load.wait_more(20, "after replica 3 rejoined");
    finish::<P>(&rt, &mut cluster, load, &[0, 1, 2, 3], probes, reader, start);
}

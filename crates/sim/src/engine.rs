//! The discrete-event simulation engine.
//!
//! [`Simulation`] runs one [`Scenario`] of any [`Protocol`] over virtual time
//! (`u64` nanoseconds), single-threaded and fully determined by the scenario
//! and its seed: the same scenario gives the same trace, event by event
//! (checked by [`Report::trace_digest`]).
//!
//! # Events and nodes
//!
//! Nodes are dense indices: replicas `0..n`, then clients `n..n+c` (correct
//! clients first, then faulty ones; client `i` is `ClientId(i)`). Pending
//! events come out in time order, ties in the order events were created
//! (a radix heap, `queue.rs`, that holds the events themselves).
//!
//! The engine carries out every [`Effect`]: sends go through
//! [`Network::transmit`] (size = `wire::encoded_len` of the message, computed
//! once per effect, not per destination; a broadcast shares one `Arc` of the
//! message among its deliveries and a receiver clones it only if another
//! delivery still holds it); timers carry a generation number, so a cancelled
//! or re-armed timer never fires; `Persist`/`PersistCheckpoint` go to the
//! replica's durable store (a checkpoint replaces all earlier records; a run
//! with no recovery in its scenario keeps none, since nothing reads them);
//! `Complete` ends a client's operation (closed loop: the next one starts at
//! once); `Event`s feed the checkers and counters.
//!
//! # CPU model
//!
//! Each node takes its inputs one at a time, in arrival order, on one core
//! (replicas: [`Scenario::replica_cores`], one unless set). An input arriving
//! at `t` starts at `max(t, busy_until)`, where `busy_until` is when the
//! node's first core is free (it waits in the node's queue meanwhile), runs on
//! that core, and costs
//!
//! ```text
//! cost = CostModel::message_ns(size)        (messages only: decode and dispatch)
//!      + crypto work charged by the node's SimCrypto during handle()
//!      + execute_ns × (Event::Executed effects of this input)
//! ```
//!
//! That core is busy until `start + cost`; every effect of the input happens
//! at `start + cost`: messages leave then (and queue on the sender's egress
//! link in the network model), timers count from then, and completions are
//! stamped then. Machines see `now = start`. Timers and client invocations
//! are inputs like messages (they queue behind a busy core, cost only their
//! crypto). With [`CostModel::zero`] nothing costs time.
//!
//! With several cores the machine still sees its inputs one at a time and
//! in order, but an input's work overlaps the next inputs' (as when checks
//! run on worker threads ahead of the protocol's state), so effects can
//! leave in another order than the inputs came.
//!
//! # Faults
//!
//! A crash drops the machine, its queued inputs and its timers, and isolates
//! the node in the network (messages already in flight to it are dropped on
//! arrival while it is down). A recovery builds a fresh machine with
//! `P::replica` (or `P::byzantine` for a Byzantine replica) and a fresh
//! service, and feeds it `Input::Recover` with its durable records.
//! Partitions apply and heal at their times. Byzantine replicas and faulty
//! clients are built once, at the start.
//!
//! # Randomness
//!
//! Separate ChaCha8 streams are derived from the run seed for the network, the
//! client start offsets, and each client's operations, so adding a fault or a
//! faulty client does not change what correct clients ask for.

use crate::check::{check_liveness, fmt_ns, SafetyChecker};
use crate::cpu::{CostModel, SimCrypto};
use crate::faults::{format_duration, Fault};
use crate::net::{NetConfig, NetError, Network, Placement};
use crate::queue::EventQueue;
use crate::report::{Dropped, KindStats, Latency, Report};
use crate::workload::{Kv, OpGenerator, OpRecord, Workload};
use bytes::Bytes;
use quorate_core::faulty_client;
use quorate_core::keys::KeyMaterial;
use quorate_core::machine::{ClientContext, Message, ReplicaContext};
use quorate_core::membership::MembershipError;
use quorate_core::service::ServiceFactory;
use quorate_core::{
    ClientId, ClientMachine, Crypto, Effect, Event, FaultModel, Input, Membership, NodeId, Outbox, Protocol, ReplicaId,
    ReplicaMachine, Time,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fast hasher for the engine's own small keys (timers): FxHash's
/// multiply-rotate. Nothing adversarial picks these keys, and SipHash was a
/// few per cent of a run.
#[derive(Clone, Copy, Default)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type FastHash = std::hash::BuildHasherDefault<FastHasher>;

/// Most nodes (replicas + clients) a simulation accepts.
pub const MAX_NODES: usize = 1_000_000;
/// Most cores a replica can have.
pub const MAX_CORES: usize = 1024;

/// A scenario that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Something about the scenario is wrong (the text says what).
    #[error("{0}")]
    Invalid(String),
    /// The network model refused its configuration or a placement.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The membership cannot be built (e.g. n too small for f).
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The protocol does not accept (n, f, model) (the text names its rule).
    #[error(transparent)]
    Config(#[from] quorate_core::ConfigError),
}

/// Everything that defines one run. Build with [`Scenario::new`] and adjust
/// the public fields (or the `with_*` helpers).
pub struct Scenario<P: Protocol> {
    /// Protocol settings.
    pub config: P::Config,
    /// Byzantine or crash faults.
    pub model: FaultModel,
    /// Faults tolerated.
    pub f: usize,
    /// Replicas; `None` means `P::replicas_for(f, model)`.
    pub n: Option<usize>,
    /// WHEAT-style vote weights, one per replica (empty: one vote each);
    /// see [`quorate_core::weighted_membership_for`].
    pub vote_weights: Vec<u32>,
    /// Correct clients (faulty clients come from [`Fault::FaultyClient`]).
    pub clients: usize,
    /// Virtual duration of the run.
    pub duration: Duration,
    /// Run seed.
    pub seed: u64,
    /// Network model settings (latency, bandwidth, loss, GST, ...).
    pub net: NetConfig,
    /// Region of each replica (names from the WAN matrices); empty means all
    /// nodes on one LAN. Clients are placed round-robin in the replicas' regions.
    pub regions: Vec<String>,
    /// Clients per replica, relatively: replica r gets `client_weights[r]`
    /// clients for every one a weight-1 replica gets (see [`client_homes`]).
    /// Empty: every replica weight 1 (client i at replica i mod n).
    pub client_weights: Vec<u32>,
    /// Service and operation mix.
    pub workload: Arc<dyn Workload>,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// CPU costs ([`CostModel::zero`] turns the CPU model off).
    pub cost_model: Arc<CostModel>,
    /// Liveness bound: after stabilisation, every pending operation of a
    /// correct client must complete within this. `None`: the protocol's
    /// own bound for the replicas this scenario leaves faulty
    /// ([`Protocol::liveness_bound`], see [`Scenario::liveness_bound`]).
    pub liveness_bound: Option<Duration>,
    /// A run that is not judged for liveness fails [`Report::ok`] unless this
    /// says why it need not be (for example: the test only checks safety).
    pub liveness_not_judged_because: Option<String>,
    /// Stabilisation is this long after the last crash, recovery or heal.
    pub settle: Duration,
    /// Search budget of the linearizability checker (per key for the KV store).
    pub linearizability_budget: u64,
    /// Clients start at uniform offsets in `[0, client_stagger)`.
    pub client_stagger: Duration,
    /// Operations invoked before this are left out of the latency statistics
    /// and the throughput (start-up effects); the safety checkers still see
    /// them, and liveness is judged from its end (it counts as stabilisation).
    pub warmup: Duration,
    /// Report every completed operation of a correct client (time and latency).
    pub timeline: bool,
    /// Cores per replica (clients have one): see the module's CPU model.
    pub replica_cores: usize,
}

impl<P: Protocol> Clone for Scenario<P> {
    fn clone(&self) -> Self {
        Scenario {
            config: self.config.clone(),
            model: self.model,
            f: self.f,
            n: self.n,
            clients: self.clients,
            duration: self.duration,
            seed: self.seed,
            net: self.net.clone(),
            regions: self.regions.clone(),
            client_weights: self.client_weights.clone(),
            workload: Arc::clone(&self.workload),
            faults: self.faults.clone(),
            cost_model: Arc::clone(&self.cost_model),
            liveness_bound: self.liveness_bound,
            liveness_not_judged_because: self.liveness_not_judged_because.clone(),
            settle: self.settle,
            linearizability_budget: self.linearizability_budget,
            client_stagger: self.client_stagger,
            warmup: self.warmup,
            timeline: self.timeline,
            replica_cores: self.replica_cores,
            vote_weights: self.vote_weights.clone(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Scenario<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("protocol", &P::NAME)
            .field("config", &self.config)
            .field("model", &self.model)
            .field("f", &self.f)
            .field("n", &self.n)
            .field("clients", &self.clients)
            .field("duration", &self.duration)
            .field("seed", &self.seed)
            .field("regions", &self.regions)
            .field("client_weights", &self.client_weights)
            .field("workload", &self.workload)
            .field("faults", &self.faults)
            .field("warmup", &self.warmup)
            .field("replica_cores", &self.replica_cores)
            .field("vote_weights", &self.vote_weights)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Scenario<P> {
    /// Defaults: Byzantine model, `P::replicas_for(f)` replicas, 4 clients,
    /// 10 s, seed 0, LAN network ([`NetConfig::default`]), KV workload, no
    /// faults, calibrated CPU model, the protocol's liveness bound, settle 1 s,
    /// linearizability budget 1 000 000 dead ends, client stagger 1 ms, no warm-up,
    /// one core per replica.
    pub fn new(f: usize) -> Self {
        Scenario {
            config: P::Config::default(),
            model: FaultModel::Byzantine,
            f,
            n: None,
            clients: 4,
            duration: Duration::from_secs(10),
            seed: 0,
            net: NetConfig::default(),
            regions: Vec::new(),
            client_weights: Vec::new(),
            workload: Arc::new(Kv::default()),
            faults: Vec::new(),
            cost_model: Arc::new(CostModel::default()),
            liveness_bound: None,
            liveness_not_judged_because: None,
            settle: Duration::from_secs(1),
            linearizability_budget: 1_000_000,
            client_stagger: Duration::from_millis(1),
            warmup: Duration::ZERO,
            timeline: false,
            replica_cores: 1,
            vote_weights: Vec::new(),
        }
    }

    /// Set the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Set the virtual duration.
    pub fn with_duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }
    /// Set the number of correct clients.
    pub fn with_clients(mut self, c: usize) -> Self {
        self.clients = c;
        self
    }
    /// Add a fault.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.n.unwrap_or_else(|| P::replicas_for(self.f, self.model))
    }

    /// Number of faulty clients.
    pub fn faulty_clients(&self) -> usize {
        self.faults.iter().filter(|f| matches!(f, Fault::FaultyClient { .. })).count()
    }

    /// Distinct replicas made faulty (crashed or Byzantine), in id order.
    pub fn faulty_replicas(&self) -> Vec<u32> {
        let set: BTreeSet<u32> = self.faults.iter().filter_map(Fault::faulty_replica).collect();
        set.into_iter().collect()
    }

    /// This scenario, lasting at least 2 s past stabilisation + liveness
    /// bound, so that liveness is judged over a stable period (tests that
    /// claim progress after a fault run so).
    pub fn judged(mut self) -> Self {
        let judged_until = self.stabilisation() + self.liveness_bound() + Duration::from_secs(2);
        self.duration = self.duration.max(judged_until);
        self
    }

    /// The liveness bound in force: the one set, or the protocol's for the
    /// replicas still faulty after stabilisation.
    pub fn liveness_bound(&self) -> Duration {
        self.liveness_bound.unwrap_or_else(|| P::liveness_bound(&self.config, self.faulty_after_stabilisation()))
    }

    /// Replicas still faulty once the run is stable: Byzantine ones, crashed
    /// ones that do not come back, and those a partition cuts off for good
    /// from the largest group.
    pub fn faulty_after_stabilisation(&self) -> usize {
        let mut faulty = BTreeSet::new();
        let mut down: BTreeMap<u32, (Duration, bool)> = BTreeMap::new();
        for fault in &self.faults {
            match fault {
                Fault::Byzantine { replica, .. } => {
                    faulty.insert(*replica);
                }
                Fault::Crash { replica, at } | Fault::Recover { replica, at } => {
                    let crashed = matches!(fault, Fault::Crash { .. });
                    let e = down.entry(*replica).or_insert((*at, crashed));
                    if *at >= e.0 {
                        *e = (*at, crashed);
                    }
                }
                Fault::Partition { groups, until: None, .. } => {
                    let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
                    let main = groups.iter().position(|g| g.len() == largest);
                    for (i, g) in groups.iter().enumerate() {
                        if Some(i) != main {
                            faulty.extend(g.iter().copied());
                        }
                    }
                }
                _ => {}
            }
        }
        faulty.extend(down.into_iter().filter(|(_, (_, crashed))| *crashed).map(|(r, _)| r));
        faulty.len()
    }

    /// Stabilisation time: the latest of GST, the warm-up (a start-up
    /// transient such as thousands of clients joining at once is no fault,
    /// but no bound holds inside it either) and (last crash, recovery or
    /// partition change + settle).
    pub fn stabilisation(&self) -> Duration {
        let quiet = Duration::from_nanos(self.net.gst_ns).max(self.warmup);
        let last = self.faults.iter().filter_map(Fault::last_change).max();
        match last {
            Some(t) => quiet.max(t + self.settle),
            None => quiet,
        }
    }

    /// Check the scenario. Errors make it unrunnable; the returned warnings
    /// do not (e.g. more faulty replicas than f is a legitimate experiment).
    pub fn validate(&self) -> Result<Vec<String>, SimError> {
        let n = self.n();
        let mut warnings = Vec::new();
        let inv = |s: String| Err(SimError::Invalid(s));
        if n == 0 {
            return inv("no replicas".into());
        }
        if n.saturating_add(self.clients) > MAX_NODES {
            return inv(format!("too many nodes: replicas + clients must be at most {MAX_NODES}"));
        }
        if self.duration.is_zero() {
            return inv("the duration must be positive".into());
        }
        if !(1..=MAX_CORES).contains(&self.replica_cores) {
            return inv(format!("replica cores must be 1 to {MAX_CORES}, not {}", self.replica_cores));
        }
        if self.warmup >= self.duration {
            return inv(format!(
                "the warm-up ({}) must be shorter than the run ({})",
                format_duration(self.warmup),
                format_duration(self.duration)
            ));
        }
        if let Err(e) = P::validate_config(&self.config) {
            return inv(format!("{} settings: {e}", P::NAME));
        }
        if !self.vote_weights.is_empty() && self.vote_weights.len() != n {
            return inv(format!(
                "--weights gives {} weights but there are {n} replicas (one per replica)",
                self.vote_weights.len()
            ));
        }
        if !self.regions.is_empty() && self.regions.len() != n {
            return inv(format!(
                "--regions names {} regions but there are {n} replicas (one per replica)",
                self.regions.len()
            ));
        }
        for r in &self.regions {
            Placement::region(r)?;
        }
        if !self.client_weights.is_empty() {
            if self.client_weights.len() != n {
                return inv(format!(
                    "client weights name {} replicas but there are {n} (one weight per replica)",
                    self.client_weights.len()
                ));
            }
            if self.client_weights.iter().all(|w| *w == 0) {
                return inv("client weights are all 0: no replica would have clients".into());
            }
            if self.client_weights.iter().any(|w| *w > 1000) {
                return inv("a client weight is above 1000".into());
            }
        }
        self.net.validate()?;
        let check_replica = |r: u32, what: &str| -> Result<(), SimError> {
            if r as usize >= n {
                Err(SimError::Invalid(format!("{what}: replica {r} does not exist (replicas are 0..{})", n - 1)))
            } else {
                Ok(())
            }
        };
        let mut byz = BTreeSet::new();
        let mut crashed = BTreeSet::new();
        let end = self.duration;
        for fault in &self.faults {
            match fault {
                Fault::Crash { replica, at } => {
                    check_replica(*replica, "--crash")?;
                    crashed.insert(*replica);
                    if *at > end {
                        warnings.push(format!("{fault} is after the end of the run ({})", format_duration(end)));
                    }
                }
                Fault::Recover { replica, at } => {
                    check_replica(*replica, "--recover")?;
                    let crash_before = self
                        .faults
                        .iter()
                        .any(|f| matches!(f, Fault::Crash { replica: r, at: c } if r == replica && c < at));
                    if !crash_before {
                        warnings.push(format!("{fault}: replica {replica} has not crashed before; ignored"));
                    }
                }
                Fault::Partition { groups, .. } => {
                    for r in groups.iter().flatten() {
                        check_replica(*r, "--partition")?;
                    }
                }
                Fault::Byzantine { replica, strategy } => {
                    check_replica(*replica, "--byzantine")?;
                    if !byz.insert(*replica) {
                        return inv(format!("--byzantine: replica {replica} is given two strategies"));
                    }
                    if !P::STRATEGIES.iter().any(|(s, _)| s == strategy) {
                        return inv(format!(
                            "--byzantine {replica}:{strategy}: {} has no replica strategy '{strategy}' (known: {})",
                            P::NAME,
                            names(P::STRATEGIES)
                        ));
                    }
                    if self.model == FaultModel::Crash {
                        warnings.push(format!("{fault} in the crash fault model: the protocol does not tolerate it"));
                    }
                }
                Fault::FaultyClient { strategy } => {
                    let known = faulty_client::strategies::<P>();
                    if !known.iter().any(|(s, _)| s == strategy) {
                        return inv(format!(
                            "--faulty-client {strategy}: {} has no client strategy '{strategy}' (known: {})",
                            P::NAME,
                            names(&known)
                        ));
                    }
                }
            }
        }
        let faulty: BTreeSet<u32> = byz.union(&crashed).copied().collect();
        if faulty.len() > self.f {
            warnings.push(format!(
                "{} faulty replicas ({:?}) exceed f = {}: the protocol's guarantees do not cover this run",
                faulty.len(),
                faulty,
                self.f
            ));
        }
        if self.clients == 0 {
            warnings.push("no correct clients: nothing to check for linearizability or liveness".into());
        }
        Ok(warnings)
    }
}

fn names(list: &[(&str, &str)]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }
}

/// A random stream seed derived from the run seed and a label, so that
/// streams are independent of each other.
pub fn stream_seed(seed: u64, label: &str, index: u64) -> u64 {
    let d = quorate_core::Digest::of_parts(&[
        b"quorate-sim-stream",
        &seed.to_le_bytes(),
        label.as_bytes(),
        &index.to_le_bytes(),
    ]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    u64::from_le_bytes(b)
}

fn stream(seed: u64, label: &str, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(stream_seed(seed, label, index))
}

/// Durable records of one replica: what [`Effect::Persist`] and
/// [`Effect::PersistCheckpoint`] made durable, given back in
/// [`Input::Recover`] (also the test network's, [`crate::testnet`]).
#[derive(Default, Clone)]
pub(crate) struct Durable {
    pub(crate) checkpoint: Option<Bytes>,
    pub(crate) records: Vec<Bytes>,
}

impl Durable {
    /// Keep a record after the others.
    pub(crate) fn persist(&mut self, record: Bytes) {
        self.records.push(record);
    }
    /// Keep a checkpoint record: it replaces all earlier records.
    pub(crate) fn persist_checkpoint(&mut self, record: Bytes) {
        self.checkpoint = Some(record);
        self.records.clear();
    }
}

enum MachineSlot<P: Protocol> {
    Replica(Box<dyn ReplicaMachine<P>>),
    Client(Box<dyn ClientMachine<P>>),
    Down,
}

/// An input waiting for (or given to) a node's core.
enum NodeInput<P: Protocol> {
    Start,
    Recover { checkpoint: Option<Bytes>, records: Vec<Bytes> },
    Message { from: NodeId, msg: Arc<P::Message>, size: usize },
    Timer { timer: P::Timer, gen: u64 },
    Invoke,
}

struct Node<P: Protocol> {
    id: NodeId,
    machine: MachineSlot<P>,
    crypto: Arc<SimCrypto>,
    /// When each core is free.
    cores: Vec<u64>,
    queue: VecDeque<NodeInput<P>>,
    wake_pending: bool,
    /// Bumped on crash: stale wake-ups are ignored.
    incarnation: u32,
    timers: HashMap<P::Timer, u64, FastHash>,
    correct: bool,
}

impl<P: Protocol> Node<P> {
    /// When the first core is free: the next input starts no earlier.
    fn busy_until(&self) -> u64 {
        self.cores.iter().copied().min().unwrap_or(0)
    }

    fn new(id: NodeId, machine: MachineSlot<P>, crypto: Arc<SimCrypto>, correct: bool, cores: usize) -> Self {
        Node {
            id,
            machine,
            crypto,
            cores: vec![0; cores.max(1)],
            queue: VecDeque::new(),
            wake_pending: false,
            incarnation: 0,
            timers: HashMap::default(),
            correct,
        }
    }
}

struct ClientState {
    gen: OpGenerator,
    current: Option<usize>,
    correct: bool,
}

enum FaultAction {
    Crash(u32),
    Recover(u32),
    Partition(Vec<Vec<usize>>),
    Heal,
}

enum Ev<P: Protocol> {
    Deliver { to: u32, from: NodeId, msg: Arc<P::Message>, size: usize },
    Timer { node: u32, timer: P::Timer, gen: u64 },
    Wake { node: u32, incarnation: u32 },
    Start { node: u32 },
    Invoke { node: u32 },
    Fault(FaultAction),
}

// Trace tags.
const TAG_START: u8 = 0;
const TAG_RECOVER: u8 = 1;
const TAG_MESSAGE: u8 = 2;
const TAG_TIMER: u8 = 3;
const TAG_INVOKE: u8 = 4;
const TAG_FAULT: u8 = 5;
/// Trace bytes buffered before they are hashed.
const TRACE_CHUNK: usize = 8192;

/// A running simulation of protocol `P`.
pub struct Simulation<P: Protocol> {
    sc: Scenario<P>,
    n: usize,
    membership: Membership,
    service: ServiceFactory,
    /// A service instance that only answers `conflict_key` (for the checker).
    interference: Box<dyn quorate_core::service::Service>,
    end: u64,
    now: u64,
    queue: EventQueue<Ev<P>>,
    timer_gen: u64,
    nodes: Vec<Node<P>>,
    durable: Vec<Durable>,
    /// Whether durable records are kept: only a recovery reads them, so a run
    /// with no recovery scheduled drops them (a DQPBFT replica persists every
    /// 100 kB D-batch it accepts: 301 replicas kept gigabytes per second).
    keep_durable: bool,
    /// Client i sits at replica `homes[i % homes.len()]`.
    homes: Vec<usize>,
    byzantine: Vec<Option<String>>,
    clients: Vec<ClientState>,
    net: Network,
    net_rng: ChaCha8Rng,
    outbox: Outbox<P>,
    hasher: Sha256,
    trace_buf: Vec<u8>,
    events: u64,
    safety: SafetyChecker,
    ops: Vec<OpRecord>,
    /// Messages sent by kind (a handful of kinds: a list, found by pointer first).
    kinds: Vec<(&'static str, KindStats)>,
    rejected: BTreeMap<&'static str, u64>,
    views: BTreeSet<u64>,
    decided: Vec<u64>,
    fault_log: Vec<String>,
    dropped_crashed: u64,
    spurious_completions: u64,
    view_installs: Vec<crate::report::ViewInstall>,
    warnings: Vec<String>,
    wall: Duration,
}

impl<P: Protocol> Simulation<P> {
    /// Build the simulation: validate the scenario, build machines, the
    /// network and the clients, and schedule the start, the clients' first
    /// operations and the faults.
    pub fn new(scenario: Scenario<P>) -> Result<Self, SimError> {
        let warnings = scenario.validate()?;
        let n = scenario.n();
        let membership = if scenario.vote_weights.is_empty() {
            quorate_core::membership_for::<P>(n, scenario.f, scenario.model)?
        } else {
            quorate_core::weighted_membership_for::<P>(&scenario.vote_weights, scenario.f, scenario.model)?
        };
        let service = scenario.workload.service_factory();
        let seed = scenario.seed;
        let faulty_strategies: Vec<String> = scenario
            .faults
            .iter()
            .filter_map(|f| match f {
                Fault::FaultyClient { strategy } => Some(strategy.clone()),
                _ => None,
            })
            .collect();
        let total_clients = scenario.clients + faulty_strategies.len();
        let total = n + total_clients;

        // Placement: replicas in their regions, clients round-robin over the
        // replicas (each as often as its weight says).
        let homes = client_homes(n, &scenario.client_weights);
        let placement: Vec<Placement> = if scenario.regions.is_empty() {
            vec![Placement::Lan; total]
        } else {
            let per_replica: Vec<Placement> =
                scenario.regions.iter().map(|r| Placement::region(r)).collect::<Result<_, _>>()?;
            (0..total)
                .map(|i| if i < n { per_replica[i].clone() } else { per_replica[homes[(i - n) % homes.len()]].clone() })
                .collect()
        };
        let net = Network::new(scenario.net.clone(), placement)?;

        let mut byzantine: Vec<Option<String>> = vec![None; n];
        for f in &scenario.faults {
            if let Fault::Byzantine { replica, strategy } = f {
                byzantine[*replica as usize] = Some(strategy.clone());
            }
        }

        let end = u64::try_from(scenario.duration.as_nanos()).unwrap_or(u64::MAX);
        let mut sim = Simulation {
            n,
            membership,
            interference: service(),
            service,
            end,
            now: 0,
            queue: EventQueue::new(),
            timer_gen: 0,
            nodes: Vec::with_capacity(total),
            durable: vec![Durable::default(); n],
            keep_durable: scenario.faults.iter().any(|f| matches!(f, Fault::Recover { .. })),
            homes,
            byzantine,
            clients: Vec::with_capacity(total_clients),
            net,
            net_rng: stream(seed, "net", 0),
            outbox: Outbox::new(),
            hasher: Sha256::new(),
            trace_buf: Vec::with_capacity(TRACE_CHUNK + 64),
            events: 0,
            safety: SafetyChecker::new(P::ORDER),
            ops: Vec::new(),
            kinds: Vec::new(),
            rejected: BTreeMap::new(),
            views: BTreeSet::new(),
            decided: vec![0; n],
            fault_log: Vec::new(),
            dropped_crashed: 0,
            spurious_completions: 0,
            view_installs: Vec::new(),
            warnings,
            wall: Duration::ZERO,
            sc: scenario,
        };

        for r in 0..n {
            let id = NodeId::Replica(ReplicaId(r as u32));
            let crypto = Arc::new(SimCrypto::new(id, seed, Arc::clone(&sim.sc.cost_model)));
            let machine = sim.build_replica(r, &crypto)?;
            let correct = sim.byzantine[r].is_none();
            sim.nodes.push(Node::new(id, MachineSlot::Replica(machine), crypto, correct, sim.sc.replica_cores));
        }
        // Replicas start first, at 0; then clients at their offsets.
        for r in 0..n {
            sim.schedule(0, Ev::Start { node: r as u32 });
        }
        let mut stagger = stream(seed, "client-start", 0);
        let stagger_ns = u64::try_from(sim.sc.client_stagger.as_nanos()).unwrap_or(u64::MAX);
        for i in 0..total_clients {
            let cid = ClientId(i as u64);
            let id = NodeId::Client(cid);
            let crypto = Arc::new(SimCrypto::new(id, seed, Arc::clone(&sim.sc.cost_model)));
            // Clients sit round-robin at the replicas: the one they sit at first, then by latency.
            let home = sim.homes[i % sim.homes.len()];
            let mut nearest: Vec<ReplicaId> = sim.membership.round_from(ReplicaId(home as u32));
            nearest.sort_by_key(|r| sim.net.one_way_ns(n + i, r.index()).unwrap_or(u64::MAX));
            let ctx = ClientContext {
                id: cid,
                first_seq: 0,
                nearest,
                membership: sim.membership.clone(),
                crypto: Arc::clone(&crypto) as Arc<dyn Crypto>,
                // Protocols with key material use its model.
                public_keys: P::Keys::modelled_public(n, sim.membership.f()),
            };
            let correct = i < sim.sc.clients;
            let machine = if correct {
                P::client(ctx, &sim.sc.config)
            } else {
                let strategy = &faulty_strategies[i - sim.sc.clients];
                faulty_client::build::<P>(strategy, ctx, &sim.sc.config)
                    .map_err(|e| SimError::Invalid(format!("faulty client: {e}")))?
            };
            let label = if correct { "workload" } else { "faulty-workload" };
            let gen = OpGenerator::new(sim.sc.workload.as_ref(), i as u64, stream(seed, label, i as u64), !correct);
            sim.nodes.push(Node::new(id, MachineSlot::Client(machine), crypto, correct, 1));
            sim.clients.push(ClientState { gen, current: None, correct });
            let offset = if stagger_ns == 0 { 0 } else { stagger.gen_range(0..stagger_ns) };
            sim.schedule(offset, Ev::Invoke { node: (n + i) as u32 });
        }
        for f in &sim.sc.faults {
            if matches!(f, Fault::Byzantine { .. } | Fault::FaultyClient { .. }) {
                sim.fault_log.push(format!("{}: {f}", fmt_ns(0)));
            }
        }
        let faults = sim.sc.faults.clone();
        for f in faults {
            let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            match f {
                Fault::Crash { replica, at } => sim.schedule(ns(at), Ev::Fault(FaultAction::Crash(replica))),
                Fault::Recover { replica, at } => sim.schedule(ns(at), Ev::Fault(FaultAction::Recover(replica))),
                Fault::Partition { groups, from, until } => {
                    let g = groups.iter().map(|g| g.iter().map(|r| *r as usize).collect()).collect();
                    sim.schedule(ns(from), Ev::Fault(FaultAction::Partition(g)));
                    if let Some(u) = until {
                        sim.schedule(ns(u), Ev::Fault(FaultAction::Heal));
                    }
                }
                Fault::Byzantine { .. } | Fault::FaultyClient { .. } => {}
            }
        }
        Ok(sim)
    }

    fn build_replica(&self, r: usize, crypto: &Arc<SimCrypto>) -> Result<Box<dyn ReplicaMachine<P>>, SimError> {
        let ctx = ReplicaContext {
            id: ReplicaId(r as u32),
            membership: self.membership.clone(),
            crypto: Arc::clone(crypto) as Arc<dyn Crypto>,
            service: (self.service)(),
            // Protocols with key material use its model.
            keys: P::Keys::modelled(ReplicaId(r as u32), self.membership.n(), self.membership.f()),
        };
        match &self.byzantine[r] {
            None => Ok(P::replica(ctx, &self.sc.config)),
            Some(s) => {
                P::byzantine(s, ctx, &self.sc.config).map_err(|e| SimError::Invalid(format!("replica {r}: {e}")))
            }
        }
    }

    /// The scenario being run.
    pub fn scenario(&self) -> &Scenario<P> {
        &self.sc
    }
    /// Current virtual time.
    pub fn now(&self) -> Time {
        Time(self.now)
    }
    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Replica `r`'s machine, unless it is down (crashed) or does not exist.
    pub fn replica(&self, r: usize) -> Option<&dyn ReplicaMachine<P>> {
        match self.nodes.get(r).map(|n| &n.machine) {
            Some(MachineSlot::Replica(m)) if r < self.n => Some(m.as_ref()),
            _ => None,
        }
    }
    /// Client operations so far (correct and faulty clients).
    pub fn ops(&self) -> &[OpRecord] {
        &self.ops
    }
    /// The safety checker's state.
    pub fn safety(&self) -> &SafetyChecker {
        &self.safety
    }
    /// The network model.
    pub fn network(&self) -> &Network {
        &self.net
    }
    /// Processed events so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Schedule a crash, recovery or partition during the run (at an absolute
    /// virtual time ≥ now). Byzantine replicas and faulty clients can only be
    /// given in the scenario.
    pub fn inject(&mut self, fault: Fault) -> Result<(), SimError> {
        let (now, n) = (self.now, self.n);
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(now);
        let check = |r: u32| {
            if (r as usize) < n {
                Ok(())
            } else {
                Err(SimError::Invalid(format!("replica {r} does not exist")))
            }
        };
        match &fault {
            Fault::Crash { replica, at } => {
                check(*replica)?;
                self.schedule(ns(*at), Ev::Fault(FaultAction::Crash(*replica)));
            }
            Fault::Recover { replica, at } => {
                check(*replica)?;
                if !self.keep_durable {
                    return Err(SimError::Invalid(
                        "a recovery must be in the scenario: a run without one keeps no durable records".into(),
                    ));
                }
                self.schedule(ns(*at), Ev::Fault(FaultAction::Recover(*replica)));
            }
            Fault::Partition { groups, from, until } => {
                for r in groups.iter().flatten() {
                    check(*r)?;
                }
                let g = groups.iter().map(|g| g.iter().map(|r| *r as usize).collect()).collect();
                self.schedule(ns(*from), Ev::Fault(FaultAction::Partition(g)));
                if let Some(u) = until {
                    self.schedule(ns(*u), Ev::Fault(FaultAction::Heal));
                }
            }
            Fault::Byzantine { .. } | Fault::FaultyClient { .. } => {
                return Err(SimError::Invalid("Byzantine replicas and faulty clients are set in the scenario".into()))
            }
        }
        self.sc.faults.push(fault);
        Ok(())
    }

    /// Run to the end of the scenario and report.
    pub fn run(mut self) -> Report {
        self.run_until(Time(self.end));
        self.report()
    }

    /// Process every event up to virtual time `t` (capped at the end of the run).
    pub fn run_until(&mut self, t: Time) {
        let started = Instant::now();
        let limit = t.0.min(self.end);
        while let Some((time, ev)) = self.queue.pop_until(limit) {
            self.now = time;
            self.dispatch(ev);
        }
        self.now = self.now.max(limit);
        self.wall += started.elapsed();
    }

    /// Process one event, if any is due before the end. Returns false when
    /// nothing is left to do.
    pub fn step(&mut self) -> bool {
        let started = Instant::now();
        let Some((time, ev)) = self.queue.pop_until(self.end) else { return false };
        self.now = time;
        self.dispatch(ev);
        self.wall += started.elapsed();
        true
    }

    fn schedule(&mut self, at: u64, ev: Ev<P>) {
        self.queue.push(at, ev);
    }

    fn dispatch(&mut self, ev: Ev<P>) {
        match ev {
            Ev::Deliver { to, from, msg, size } => {
                let x = to as usize;
                if matches!(self.nodes[x].machine, MachineSlot::Down) {
                    self.dropped_crashed += 1;
                    return;
                }
                self.arrive(x, NodeInput::Message { from, msg, size });
            }
            Ev::Timer { node, timer, gen } => {
                let x = node as usize;
                if self.nodes[x].timers.get(&timer) != Some(&gen) {
                    return;
                }
                self.arrive(x, NodeInput::Timer { timer, gen });
            }
            Ev::Wake { node, incarnation } => {
                let x = node as usize;
                if self.nodes[x].incarnation != incarnation {
                    return;
                }
                self.wake(x);
            }
            Ev::Start { node } => self.arrive(node as usize, NodeInput::Start),
            Ev::Invoke { node } => self.arrive(node as usize, NodeInput::Invoke),
            Ev::Fault(action) => self.apply_fault(action),
        }
    }

    fn arrive(&mut self, x: usize, input: NodeInput<P>) {
        let now = self.now;
        let node = &mut self.nodes[x];
        if node.busy_until() <= now && node.queue.is_empty() {
            self.process(x, now, input);
        } else {
            node.queue.push_back(input);
            if !node.wake_pending {
                node.wake_pending = true;
                let (at, incarnation) = (node.busy_until().max(now), node.incarnation);
                self.schedule(at, Ev::Wake { node: x as u32, incarnation });
            }
        }
    }

    fn wake(&mut self, x: usize) {
        let now = self.now;
        let node = &mut self.nodes[x];
        node.wake_pending = false;
        if node.busy_until() > now {
            node.wake_pending = true;
            let (at, incarnation) = (node.busy_until(), node.incarnation);
            self.schedule(at, Ev::Wake { node: x as u32, incarnation });
            return;
        }
        if let Some(input) = node.queue.pop_front() {
            self.process(x, now, input);
        }
        let node = &mut self.nodes[x];
        if !node.queue.is_empty() && !node.wake_pending {
            node.wake_pending = true;
            let (at, incarnation) = (node.busy_until().max(now), node.incarnation);
            self.schedule(at, Ev::Wake { node: x as u32, incarnation });
        }
    }

    fn trace(&mut self, now: u64, node: usize, tag: u8, kind: &str, size: usize) {
        // Buffered: one SHA-256 update per few kilobytes of trace.
        let b = &mut self.trace_buf;
        b.extend_from_slice(&now.to_le_bytes());
        b.extend_from_slice(&(node as u32).to_le_bytes());
        b.push(tag);
        b.extend_from_slice(&(size as u64).to_le_bytes());
        b.extend_from_slice(kind.as_bytes());
        if b.len() >= TRACE_CHUNK {
            self.hasher.update(&b[..]);
            b.clear();
        }
        self.events += 1;
    }

    /// Hand one input to node `x`'s machine at `now` and carry out its effects.
    fn process(&mut self, x: usize, now: u64, input: NodeInput<P>) {
        if let NodeInput::Timer { timer, gen } = &input {
            // Re-check: the timer may have been cancelled while queued.
            let timers = &mut self.nodes[x].timers;
            if timers.get(timer) != Some(gen) {
                return;
            }
            timers.remove(timer);
        }
        let (tag, kind, size) = match &input {
            NodeInput::Start => (TAG_START, "", 0),
            NodeInput::Recover { .. } => (TAG_RECOVER, "", 0),
            NodeInput::Message { msg, size, .. } => (TAG_MESSAGE, msg.kind(), *size),
            NodeInput::Timer { .. } => (TAG_TIMER, "", 0),
            NodeInput::Invoke => (TAG_INVOKE, "", 0),
        };
        self.trace(now, x, tag, kind, size);

        let t = Time(now);
        let mut out = std::mem::take(&mut self.outbox);
        let node = &mut self.nodes[x];
        match (&mut node.machine, input) {
            (MachineSlot::Replica(m), NodeInput::Start) => m.handle(t, Input::Start, &mut out),
            (MachineSlot::Replica(m), NodeInput::Recover { checkpoint, records }) => {
                m.handle(t, Input::Recover { checkpoint, records }, &mut out)
            }
            (MachineSlot::Replica(m), NodeInput::Message { from, msg, .. }) => {
                m.handle(t, Input::Message { from, msg: unwrap_or_clone(msg) }, &mut out)
            }
            (MachineSlot::Replica(m), NodeInput::Timer { timer, .. }) => m.handle(t, Input::Timer(timer), &mut out),
            (MachineSlot::Client(m), NodeInput::Message { from, msg, .. }) => {
                m.handle(t, Input::Message { from, msg: unwrap_or_clone(msg) }, &mut out)
            }
            (MachineSlot::Client(m), NodeInput::Timer { timer, .. }) => m.handle(t, Input::Timer(timer), &mut out),
            (MachineSlot::Client(m), NodeInput::Invoke) => {
                let ci = x - self.n;
                let client = &mut self.clients[ci];
                if client.current.is_none() && now < self.end {
                    let (op, read_only) = client.gen.next_op();
                    self.safety.register_op(quorate_core::Digest::of(&op), self.interference.conflict_key(&op));
                    client.current = Some(self.ops.len());
                    self.ops.push(OpRecord {
                        client: ci as u64,
                        correct: client.correct,
                        invoke: now,
                        ret: None,
                        op: op.clone(),
                        read_only,
                        reply: None,
                    });
                    m.invoke(t, op, read_only, &mut out);
                }
            }
            // Down nodes get nothing; replicas are never invoked; clients never start.
            _ => {}
        }

        // CPU cost of this input.
        let node = &self.nodes[x];
        let model = &self.sc.cost_model;
        let executed = out.effects().iter().filter(|e| matches!(e, Effect::Event(Event::Executed { .. }))).count();
        let mut cost = node.crypto.take_cost().saturating_add(model.execute_ns.saturating_mul(executed as u64));
        if tag == TAG_MESSAGE {
            cost = cost.saturating_add(model.message_ns(size));
        }
        let done = now.saturating_add(cost);
        // `now` ≥ busy_until(): the first free core takes the input.
        if let Some(core) = self.nodes[x].cores.iter_mut().min() {
            *core = done;
        }

        for effect in out.drain() {
            self.apply(x, done, effect);
        }
        self.outbox = out;
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        match id {
            NodeId::Replica(r) => (r.index() < self.n).then_some(r.index()),
            NodeId::Client(c) => {
                let i = usize::try_from(c.0).ok()?;
                (i < self.clients.len()).then_some(self.n + i)
            }
        }
    }

    fn count_kind(&mut self, kind: &'static str, dests: u64, size: usize) {
        let i = match self.kinds.iter().position(|(k, _)| std::ptr::eq(*k, kind) || *k == kind) {
            Some(i) => i,
            None => {
                self.kinds.push((kind, KindStats::default()));
                self.kinds.len() - 1
            }
        };
        let k = &mut self.kinds[i].1;
        k.count += dests;
        k.bytes += dests.saturating_mul(size as u64);
    }

    fn transmit(&mut self, at: u64, x: usize, to: usize, size: usize, msg: &Arc<P::Message>) {
        let d = self.net.transmit(&mut self.net_rng, at, x, to, size);
        let from = self.nodes[x].id;
        for time in d.times() {
            self.schedule(time, Ev::Deliver { to: to as u32, from, msg: Arc::clone(msg), size });
        }
    }

    /// Carry out one effect of node `x`, at `done`.
    fn apply(&mut self, x: usize, done: u64, effect: Effect<P>) {
        match effect {
            Effect::Send { to, msg } => {
                let size = quorate_core::wire::encoded_len(&msg);
                self.count_kind(msg.kind(), 1, size);
                let msg = Arc::new(msg);
                match self.index_of(to) {
                    Some(to) => self.transmit(done, x, to, size, &msg),
                    // Counted by the network as an invalid destination.
                    None => {
                        self.net.transmit(&mut self.net_rng, done, x, usize::MAX, size);
                    }
                }
            }
            Effect::Broadcast { msg } => {
                let size = quorate_core::wire::encoded_len(&msg);
                let dests = if x < self.n { self.n - 1 } else { self.n };
                self.count_kind(msg.kind(), dests as u64, size);
                let msg = Arc::new(msg);
                for r in 0..self.n {
                    if r != x {
                        self.transmit(done, x, r, size, &msg);
                    }
                }
            }
            Effect::Multicast { to, msg } => {
                let size = quorate_core::wire::encoded_len(&msg);
                let dests: Vec<usize> = to.iter().map(|r| r.index()).filter(|r| *r < self.n && *r != x).collect();
                self.count_kind(msg.kind(), dests.len() as u64, size);
                let msg = Arc::new(msg);
                for r in dests {
                    self.transmit(done, x, r, size, &msg);
                }
            }
            Effect::SetTimer { timer, after } => {
                self.timer_gen += 1;
                let gen = self.timer_gen;
                self.nodes[x].timers.insert(timer.clone(), gen);
                let at = done.saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX));
                self.schedule(at, Ev::Timer { node: x as u32, timer, gen });
            }
            Effect::CancelTimer { timer } => {
                self.nodes[x].timers.remove(&timer);
            }
            Effect::Persist(record) => {
                if !self.keep_durable {
                    return;
                }
                if let Some(d) = self.durable.get_mut(x) {
                    d.persist(record);
                }
            }
            Effect::PersistCheckpoint(record) => {
                if !self.keep_durable {
                    return;
                }
                if let Some(d) = self.durable.get_mut(x) {
                    d.persist_checkpoint(record);
                }
            }
            Effect::Complete { result } => {
                if x < self.n {
                    return;
                }
                let ci = x - self.n;
                match self.clients[ci].current.take() {
                    Some(i) => {
                        let op = &mut self.ops[i];
                        op.ret = Some(done);
                        op.reply = Some(result);
                        if done < self.end {
                            self.schedule(done, Ev::Invoke { node: x as u32 });
                        }
                    }
                    None => self.spurious_completions += 1,
                }
            }
            Effect::Event(e) => {
                if let Event::Rejected { reason, .. } = &e {
                    *self.rejected.entry(reason).or_insert(0) += 1;
                }
                if x < self.n && self.nodes[x].correct {
                    match &e {
                        Event::ViewChanged { view, leader } => {
                            self.views.insert(*view);
                            if self.view_installs.len() < crate::report::VIEW_INSTALLS_KEPT {
                                self.view_installs.push(crate::report::ViewInstall {
                                    at_s: done as f64 / 1e9,
                                    replica: x as u32,
                                    view: *view,
                                    leader: leader.0,
                                });
                            }
                        }
                        Event::Decided { .. } => self.decided[x] += 1,
                        _ => {}
                    }
                    self.safety.observe(x as u32, done, &e);
                }
            }
        }
    }

    fn apply_fault(&mut self, action: FaultAction) {
        let now = self.now;
        match action {
            FaultAction::Crash(r) => {
                let x = r as usize;
                self.trace(now, x, TAG_FAULT, "crash", 0);
                let node = &mut self.nodes[x];
                if matches!(node.machine, MachineSlot::Down) {
                    self.fault_log.push(format!("{}: crash r{r} ignored (already down)", fmt_ns(now)));
                    return;
                }
                node.machine = MachineSlot::Down;
                node.queue.clear();
                node.timers.clear();
                node.cores.fill(now);
                node.wake_pending = false;
                node.incarnation += 1;
                node.crypto.take_cost();
                self.net.isolate(x);
                self.fault_log.push(format!("{}: crash r{r}", fmt_ns(now)));
            }
            FaultAction::Recover(r) => {
                let x = r as usize;
                self.trace(now, x, TAG_FAULT, "recover", 0);
                if !matches!(self.nodes[x].machine, MachineSlot::Down) {
                    self.fault_log.push(format!("{}: recover r{r} ignored (not down)", fmt_ns(now)));
                    return;
                }
                let crypto = Arc::new(SimCrypto::new(self.nodes[x].id, self.sc.seed, Arc::clone(&self.sc.cost_model)));
                match self.build_replica(x, &crypto) {
                    Ok(m) => {
                        self.net.reconnect(x);
                        let node = &mut self.nodes[x];
                        node.machine = MachineSlot::Replica(m);
                        node.crypto = crypto;
                        let d = &self.durable[x];
                        // It executes again what its durable state does not hold (all of it,
                        // if nothing is durable).
                        self.safety.restarted(r);
                        let input = NodeInput::Recover { checkpoint: d.checkpoint.clone(), records: d.records.clone() };
                        self.fault_log.push(format!(
                            "{}: recover r{r} ({} durable records{})",
                            fmt_ns(now),
                            d.records.len(),
                            if d.checkpoint.is_some() { " after a checkpoint" } else { "" }
                        ));
                        self.arrive(x, input);
                    }
                    Err(e) => self.fault_log.push(format!("{}: recover r{r} failed: {e}", fmt_ns(now))),
                }
            }
            FaultAction::Partition(groups) => {
                self.trace(now, u32::MAX as usize, TAG_FAULT, "partition", 0);
                self.fault_log.push(format!("{}: partition {groups:?}", fmt_ns(now)));
                self.net.set_partition(groups);
            }
            FaultAction::Heal => {
                self.trace(now, u32::MAX as usize, TAG_FAULT, "heal", 0);
                self.fault_log.push(format!("{}: partition healed", fmt_ns(now)));
                self.net.heal();
            }
        }
    }

    /// Check everything and report. Can be called at any point; normally
    /// after [`Simulation::run_until`] reached the end.
    pub fn report(&self) -> Report {
        let sc = &self.sc;
        let mut violations: Vec<String> = self.safety.descriptions().to_vec();
        let mut violation_count = self.safety.violations();

        // Correct replicas that executed equally much must have equal state (under a
        // partial order: that executed the same set of operations).
        let mut by_slot: BTreeMap<(u64, [u8; 32]), (quorate_core::Digest, usize)> = BTreeMap::new();
        for r in 0..self.n {
            if !self.nodes[r].correct {
                continue;
            }
            if let MachineSlot::Replica(m) = &self.nodes[r].machine {
                let (count, digest) = (m.executed(), m.state_digest());
                let slot = match self.safety.executed_set(r as u32) {
                    None => (count, [0; 32]),
                    Some(set) if set.0 == count => set,
                    // The state does not reflect every final execution yet (speculation pending).
                    Some(_) => continue,
                };
                match by_slot.get(&slot) {
                    None => {
                        by_slot.insert(slot, (digest, r));
                    }
                    Some((d, first)) if *d != digest => {
                        violation_count += 1;
                        violations.push(format!(
                            "final state: r{first} and r{r} both executed {count} operations but have digests {d:?} and {digest:?}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }

        let end = self.end;
        let completed = self.ops.iter().filter(|o| o.correct && o.ret.is_some()).count() as u64;
        let duration_s = end as f64 / 1e9;
        let warmup = u64::try_from(sc.warmup.as_nanos()).unwrap_or(u64::MAX).min(end);
        let mut latencies: Vec<u64> = measured(&self.ops, warmup).map(|(_, ns)| ns).collect();
        let measured_s = end.saturating_sub(warmup) as f64 / 1e9;
        let latency_by_region = latency_by_region(&self.ops, warmup, |c| self.client_region(c));
        let timeline: Vec<crate::report::OpPoint> = if sc.timeline {
            self.ops
                .iter()
                .filter(|o| o.correct)
                .filter_map(|o| {
                    let ret = o.ret?;
                    Some(crate::report::OpPoint {
                        client: o.client,
                        region: self.client_region(o.client).map(str::to_string),
                        invoke_s: o.invoke as f64 / 1e9,
                        latency_ms: ret.saturating_sub(o.invoke) as f64 / 1e6,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };

        let faulty_clients = self.clients.len() - sc.clients;
        let lin = if sc.clients == 0 {
            None
        } else {
            Some(sc.workload.check(&self.ops, faulty_clients > 0, sc.linearizability_budget))
        };
        let (linearizable, linearizability, mut lin_detail, lin_ops) = match &lin {
            None => (true, "linearizable", None, 0),
            Some(c) => match &c.outcome {
                crate::linearizability::Outcome::Linearizable => (true, "linearizable", None, c.operations),
                crate::linearizability::Outcome::NotLinearizable { explanation } => {
                    (false, "not_linearizable", Some(explanation.clone()), c.operations)
                }
                crate::linearizability::Outcome::Unknown { reason } => {
                    let detail = format!("undecided, which fails the run: {reason}");
                    (false, "unknown", Some(detail), c.operations)
                }
            },
        };
        if let Some(c) = &lin {
            if !c.notes.is_empty() {
                let notes = c.notes.join("; ");
                lin_detail = Some(match lin_detail {
                    Some(d) => format!("{d} [{notes}]"),
                    None => notes,
                });
            }
        }

        let stable = u64::try_from(sc.stabilisation().as_nanos()).unwrap_or(u64::MAX);
        let bound = u64::try_from(sc.liveness_bound().as_nanos()).unwrap_or(u64::MAX);
        let liveness = if sc.clients == 0 {
            crate::check::Liveness { ok: true, judged: false, completed_after: 0, detail: None }
        } else {
            check_liveness(&self.ops, stable, bound, end)
        };

        let stats = self.net.stats();
        let mut warnings = self.warnings.clone();
        if self.spurious_completions > 0 {
            warnings.push(format!("{} completions without an outstanding operation", self.spurious_completions));
        }
        let wall_ms = self.wall.as_millis() as u64;
        let wall_s = self.wall.as_secs_f64();
        Report {
            protocol: P::NAME.to_string(),
            mode: match sc.model {
                FaultModel::Byzantine => "bft".into(),
                FaultModel::Crash => "cft".into(),
            },
            n: self.n,
            f: sc.f,
            seed: sc.seed,
            clients: sc.clients,
            faulty_clients,
            workload: sc.workload.name().to_string(),
            regions: sc.regions.clone(),
            duration_s,
            completed,
            // Completions in the measured window, whenever invoked: counting the
            // operations invoked after the warm-up instead would leave out those
            // still under way at the end, which undercounts by latency / window.
            throughput_ops: if measured_s > 0.0 {
                self.ops.iter().filter(|o| o.correct && o.ret.is_some_and(|r| r >= warmup)).count() as f64 / measured_s
            } else {
                0.0
            },
            warmup_s: warmup as f64 / 1e9,
            latency_ms: Latency::from_ns(&mut latencies),
            latency_by_region,
            timeline,
            safety_violations: violation_count,
            first_violation: violations.first().cloned(),
            violations,
            linearizable,
            linearizability: linearizability.to_string(),
            linearizability_detail: lin_detail,
            linearizability_ops: lin_ops,
            liveness_ok: liveness.ok,
            liveness_judged: liveness.judged,
            liveness_detail: liveness.detail,
            stabilisation_s: stable as f64 / 1e9,
            liveness_bound_s: bound as f64 / 1e9,
            liveness_not_judged_because: sc.liveness_not_judged_because.clone(),
            messages: stats.messages_sent,
            bytes: stats.bytes_sent,
            messages_by_kind: self.kinds.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            dropped: Dropped {
                loss: stats.dropped_loss,
                pre_gst: stats.dropped_pre_gst,
                partition: stats.dropped_partition,
                crashed: self.dropped_crashed,
                invalid: stats.dropped_invalid,
            },
            duplicated: stats.duplicated,
            trace_digest: {
                let mut h = self.hasher.clone();
                h.update(&self.trace_buf);
                hex::encode(h.finalize())
            },
            events: self.events,
            wall_ms,
            events_per_sec: if wall_s > 0.0 { self.events as f64 / wall_s } else { 0.0 },
            faults: self.fault_log.clone(),
            view_changes: self.views.len() as u64,
            max_view: self.views.iter().next_back().copied().unwrap_or(0),
            view_installs: self.view_installs.clone(),
            decided: self.decided.iter().copied().max().unwrap_or(0),
            executions: self.safety.executions,
            checkpoints: self.safety.checkpoints_seen,
            states_installed: self.safety.states_installed,
            executed: (0..self.n)
                .map(|r| match &self.nodes[r].machine {
                    MachineSlot::Replica(m) => Some(m.executed()),
                    _ => None,
                })
                .collect(),
            speculative_divergences: self.safety.speculative_divergences(),
            rejected: self.rejected.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            warnings,
        }
    }
}

impl<P: Protocol> Simulation<P> {
    /// Region of client `c` (`ClientId(c)`): that of its home replica, as
    /// placed in [`Simulation::new`]; `None` on a LAN.
    fn client_region(&self, c: u64) -> Option<&str> {
        let home = self.homes.get((c % self.homes.len().max(1) as u64) as usize)?;
        self.sc.regions.get(*home).map(String::as_str)
    }
}

/// The replica each client sits at, cyclically: client i at
/// `homes[i % homes.len()]`. Replicas come in id order, one round per unit
/// of weight, a replica in every round up to its weight: weights (1, 2, 1)
/// give 0, 1, 2, 1, so replica 1 has twice the clients. No weights (or all
/// 1): client i at replica i mod n.
pub fn client_homes(n: usize, weights: &[u32]) -> Vec<usize> {
    if weights.is_empty() {
        return (0..n).collect();
    }
    let rounds = weights.iter().copied().max().unwrap_or(0);
    let homes: Vec<usize> =
        (0..rounds).flat_map(|k| (0..n).filter(move |r| weights.get(*r).copied().unwrap_or(1) > k)).collect();
    if homes.is_empty() {
        (0..n).collect()
    } else {
        homes
    }
}

/// Completed operations of correct clients invoked at or after `from` (ns):
/// (client, latency in ns).
fn measured(ops: &[OpRecord], from: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    ops.iter()
        .filter(move |o| o.correct && o.invoke >= from)
        .filter_map(|o| o.ret.map(|r| (o.client, r.saturating_sub(o.invoke))))
}

/// Latency of the measured operations (see [`measured`]) grouped by the
/// region `region_of` gives each client; clients without a region are left
/// out, so a LAN run gives an empty map.
fn latency_by_region<'a>(
    ops: &[OpRecord],
    from: u64,
    region_of: impl Fn(u64) -> Option<&'a str>,
) -> BTreeMap<String, Latency> {
    let mut by: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (client, ns) in measured(ops, from) {
        if let Some(r) = region_of(client) {
            by.entry(r).or_default().push(ns);
        }
    }
    by.into_iter().map(|(r, mut ns)| (r.to_string(), Latency::from_ns(&mut ns))).collect()
}

fn unwrap_or_clone<M: Message>(msg: Arc<M>) -> M {
    Arc::try_unwrap(msg).unwrap_or_else(|shared| (*shared).clone())
}

/// Build and run a scenario to its end.
pub fn run<P: Protocol>(scenario: Scenario<P>) -> Result<Report, SimError> {
    Ok(Simulation::new(scenario)?.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, correct: bool, invoke_ms: u64, latency_ms: Option<u64>) -> OpRecord {
        let ms = 1_000_000;
        OpRecord {
            client,
            correct,
            invoke: invoke_ms * ms,
            ret: latency_ms.map(|l| (invoke_ms + l) * ms),
            op: Bytes::new(),
            read_only: false,
            reply: None,
        }
    }

    #[test]
    fn client_homes_follow_the_weights() {
        assert_eq!(client_homes(3, &[]), [0, 1, 2]);
        assert_eq!(client_homes(3, &[1, 1, 1]), [0, 1, 2]);
        assert_eq!(client_homes(3, &[1, 2, 1]), [0, 1, 2, 1]);
        assert_eq!(client_homes(4, &[2, 2, 0, 1]), [0, 1, 3, 0, 1]);
    }

    #[test]
    fn latency_grouped_by_client_region() {
        let regions = ["us-east-1", "ap-south-1", "us-east-1"];
        let region_of = |c: u64| regions.get(c as usize).copied();
        let ops = vec![
            op(0, true, 0, Some(999)), // invoked during the warm-up: left out
            op(0, true, 10, Some(100)),
            op(0, true, 20, Some(300)),
            op(2, true, 30, Some(200)), // another client of the same region
            op(1, true, 10, Some(50)),
            op(1, true, 20, None),        // never completed
            op(1, false, 20, Some(7)),    // a faulty client
            op(9, true, 20, Some(1_000)), // a client without a region
        ];
        let by = latency_by_region(&ops, 5_000_000, region_of);
        assert_eq!(by.keys().collect::<Vec<_>>(), ["ap-south-1", "us-east-1"]);
        let us = &by["us-east-1"];
        assert_eq!((us.count, us.p50, us.max), (3, 200.0, 300.0));
        let india = &by["ap-south-1"];
        assert_eq!((india.count, india.p50, india.p99), (1, 50.0, 50.0));
        // Without warm-up the first operation counts.
        assert_eq!(latency_by_region(&ops, 0, region_of)["us-east-1"].max, 999.0);
        // A LAN run: no regions, no groups.
        assert!(latency_by_region(&ops, 0, |_| None).is_empty());
    }
}

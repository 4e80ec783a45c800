//! The replica host: runs one protocol machine in a real process.
//!
//! Three stages, joined by bounded queues:
//! 1. network tasks on tokio's worker threads read, authenticate, decode and
//!    pre-verify messages (see `net`);
//! 2. the protocol thread feeds them to the machine, keeps its timers, and
//!    turns its effects into log records and encoded frames, in order;
//! 3. the durability stage appends the records and, before letting out any
//!    send that follows a record, fsyncs once for everything it has (group
//!    commit): "persist before send" holds for every effect.

use crate::config::{ClusterConfig, ConfigError};
use crate::crypto::RuntimeCrypto;
use crate::metrics::{self, Metrics};
use crate::net::{self, HostInput, Inbound, Routes};
use crate::session;
use bytes::Bytes;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::keys::KeyMaterial;
use quorate_core::machine::{Effect, Event, Input, Outbox, Protocol, ReplicaContext, ReplicaMachine};
use quorate_core::service::Service;
use quorate_core::time::Time;
use quorate_core::wire;
use quorate_storage::{Log, LogOptions, StorageError};
use quorate_transport::Identity;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use thiserror::Error;
use tracing::{debug, info, warn};

/// Why a replica cannot start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// Bad configuration or keys.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The durable log cannot be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A socket cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime cannot start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// What the protocol thread hands the durability stage, in effect order.
enum Egress {
    Record(Bytes),
    Checkpoint(Bytes),
    Send(NodeId, Bytes),
    Broadcast(Bytes),
    Multicast(Vec<ReplicaId>, Bytes),
}

/// A running replica.
pub struct ReplicaHandle<P: Protocol> {
    input: flume::Sender<HostInput<P>>,
    machine: Option<JoinHandle<()>>,
    egress: Option<JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The replica's metrics.
    pub metrics: Arc<Metrics>,
}

impl<P: Protocol> ReplicaHandle<P> {
    /// Stop: the protocol thread ends, the log is synced, sockets close.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.input.send(HostInput::Shutdown);
        if let Some(m) = self.machine.take() {
            let _ = m.join();
        }
        if let Some(e) = self.egress.take() {
            let _ = e.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
        }
    }
}

impl<P: Protocol> Drop for ReplicaHandle<P> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start replica `id` of the cluster with a fresh `service` (its state comes
/// back from the log or from peers).
pub fn start<P: Protocol>(
    cfg: &ClusterConfig,
    id: ReplicaId,
    service: Box<dyn Service>,
) -> Result<ReplicaHandle<P>, NodeError> {
    let membership = cfg.membership::<P>()?;
    let settings = cfg.settings::<P>()?;
    let me = NodeId::Replica(id);
    let entry = cfg.replica(id)?.clone();
    let key = cfg.signing_key(me)?;
    // A protocol with key material never runs here without it (no fallback
    // to the simulator's model): missing or bad files stop the start.
    let protocol_keys = cfg.protocol_keys::<P>(id)?;
    let node = cfg.file.node.clone();
    let metrics = Arc::new(Metrics::new());
    let crypto = RuntimeCrypto::new(me, &key, &cfg.directory);

    let (log, recovered) = Log::open(&cfg.data_dir(id), LogOptions { fsync: node.fsync, ..LogOptions::default() })?;
    if let Some(d) = &recovered.damage {
        warn!(segment = %d.segment.display(), offset = d.offset, bytes = d.discarded_bytes, "log tail discarded: {}", d.reason);
    }
    let first_input = if recovered.checkpoint.is_none() && recovered.records.is_empty() {
        info!("no durable state: starting fresh");
        Input::Start
    } else {
        info!(
            records = recovered.records.len(),
            checkpoint = recovered.checkpoint.is_some(),
            "recovering from the log"
        );
        Input::Recover { checkpoint: recovered.checkpoint, records: recovered.records }
    };

    let threads =
        if node.threads == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { node.threads };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(format!("r{}-net", id.0))
        .enable_all()
        .build()
        .map_err(NodeError::Runtime)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&entry.address))
        .map_err(|source| NodeError::Bind { address: entry.address.clone(), source })?;
    if let Some(addr) = &entry.metrics {
        let l = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| NodeError::Bind { address: addr.clone(), source })?;
        let crypto = crypto.clone();
        runtime.spawn(metrics::serve(l, Arc::clone(&metrics), move |m| {
            m.signatures_checked.set(crypto.cache().checks.load(Ordering::Relaxed) as i64);
            m.signature_cache_hits.set(crypto.cache().hits.load(Ordering::Relaxed) as i64);
        }));
    }

    let (input_tx, input_rx) = flume::bounded(node.input_queue);
    let routes = {
        let _guard = runtime.enter();
        let identity = Identity { me, key };
        net::start::<P>(listener, cfg, identity, crypto.clone(), Arc::clone(&metrics), input_tx.clone())
    };

    let (egress_tx, egress_rx) = flume::bounded(node.input_queue);
    let egress = {
        let metrics = Arc::clone(&metrics);
        std::thread::Builder::new()
            .name(format!("r{}-log", id.0))
            .spawn(move || durability_stage(log, egress_rx, routes, metrics))
            .map_err(NodeError::Runtime)?
    };
    if let Some(files) = <P::Keys as KeyMaterial>::FILES {
        info!("{} loaded and checked", files.kind);
    }
    let ctx = ReplicaContext { id, membership, crypto: Arc::new(crypto), service, keys: protocol_keys };
    let machine = P::replica(ctx, &settings);
    let machine = {
        let metrics = Arc::clone(&metrics);
        let input_rx = input_rx.clone();
        std::thread::Builder::new()
            .name(format!("r{}-protocol", id.0))
            .spawn(move || ProtocolThread::<P>::new(machine, egress_tx, metrics).run(first_input, input_rx))
            .map_err(NodeError::Runtime)?
    };
    info!(replica = id.0, address = %entry.address, "replica started");
    Ok(ReplicaHandle { input: input_tx, machine: Some(machine), egress: Some(egress), runtime: Some(runtime), metrics })
}

/// The protocol thread: the machine, its timers, and the effects it emits.
struct ProtocolThread<P: Protocol> {
    machine: Box<dyn ReplicaMachine<P>>,
    egress: flume::Sender<Egress>,
    metrics: Arc<Metrics>,
    timers: HashMap<P::Timer, Instant>,
    epoch: Instant,
    out: Outbox<P>,
    /// When each client's current request first reached us (for the commit latency).
    arrivals: HashMap<ClientId, Instant>,
}

impl<P: Protocol> ProtocolThread<P> {
    fn new(machine: Box<dyn ReplicaMachine<P>>, egress: flume::Sender<Egress>, metrics: Arc<Metrics>) -> Self {
        ProtocolThread {
            machine,
            egress,
            metrics,
            timers: HashMap::new(),
            epoch: Instant::now(),
            out: Outbox::new(),
            arrivals: HashMap::new(),
        }
    }

    fn now(&self) -> Time {
        Time(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn run(mut self, first: Input<P>, input: flume::Receiver<HostInput<P>>) {
        self.handle(first);
        loop {
            let next = self.timers.values().min().copied();
            let received = match next {
                Some(deadline) => input.recv_deadline(deadline),
                None => input.recv().map_err(|_| flume::RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(HostInput::Message(m)) => {
                    self.deliver(m);
                    // Take what else is waiting before looking at timers (bounded, so timers stay on time).
                    for _ in 0..256 {
                        match input.try_recv() {
                            Ok(HostInput::Message(m)) => self.deliver(m),
                            Ok(HostInput::Shutdown) => return,
                            Err(_) => break,
                        }
                    }
                    self.metrics.input_queue.set(input.len() as i64);
                }
                Ok(HostInput::Shutdown) | Err(flume::RecvTimeoutError::Disconnected) => return,
                Err(flume::RecvTimeoutError::Timeout) => {}
            }
            self.fire_timers();
        }
    }

    fn deliver(&mut self, m: Inbound<P>) {
        if let NodeId::Client(c) = m.from {
            self.arrivals.entry(c).or_insert(m.arrived);
        }
        self.handle(Input::Message { from: m.from, msg: m.msg });
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<P::Timer> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| t.clone()).collect();
        for t in due {
            self.timers.remove(&t);
            self.handle(Input::Timer(t));
        }
    }

    fn handle(&mut self, input: Input<P>) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.machine.handle(now, input, &mut out);
        for e in out.drain() {
            self.apply(e);
        }
        self.out = out;
    }

    fn apply(&mut self, e: Effect<P>) {
        let egress = match e {
            Effect::Send { to: to @ NodeId::Client(c), msg } => Egress::Send(to, session::encode(c, &msg)),
            Effect::Send { to, msg } => Egress::Send(to, Bytes::from(wire::encode(&msg))),
            Effect::Broadcast { msg } => Egress::Broadcast(Bytes::from(wire::encode(&msg))),
            Effect::Multicast { to, msg } => Egress::Multicast(to, Bytes::from(wire::encode(&msg))),
            Effect::Persist(r) => Egress::Record(r),
            Effect::PersistCheckpoint(c) => Egress::Checkpoint(c),
            Effect::SetTimer { timer, after } => {
                self.timers.insert(timer, Instant::now() + after);
                return;
            }
            Effect::CancelTimer { timer } => {
                self.timers.remove(&timer);
                return;
            }
            Effect::Complete { .. } => return,
            Effect::Event(ev) => {
                self.event(ev);
                return;
            }
        };
        // The durability stage only stops when we drop the sender.
        let _ = self.egress.send(egress);
    }

    fn event(&mut self, ev: Event) {
        let m = &self.metrics;
        match ev {
            Event::Executed { client, speculative: false, .. } => {
                m.executed.inc();
                if let Some(t) = self.arrivals.remove(&client) {
                    m.commit_latency.observe(t.elapsed().as_secs_f64());
                }
            }
            Event::Executed { .. } | Event::Committed { .. } => {}
            Event::RolledBack { slot } => info!(slot, "speculative executions rolled back"),
            Event::Decided { .. } => {
                m.decided.inc();
            }
            Event::Checkpoint { slot, digest } => {
                m.checkpoints.inc();
                debug!(slot, ?digest, "checkpoint");
            }
            Event::StateInstalled { slot, digest } => {
                m.state_transfers.inc();
                info!(slot, ?digest, "state installed by state transfer");
            }
            Event::ViewChanged { view, leader } => {
                m.view_changes.inc();
                m.view.set(view as i64);
                info!(view, leader = leader.0, "view installed");
            }
            Event::Rejected { reason, from } => {
                m.reject(reason);
                debug!(?from, reason, "rejected");
            }
            // Protocol notes name view changes, takeovers and reinstatements: rare, and what an operator looks for.
            Event::Note(text) => info!("{text}"),
        }
    }
}

/// The durability stage: log records and sends in effect order, one fsync per
/// batch of records before the sends that follow them.
fn durability_stage(mut log: Log, rx: flume::Receiver<Egress>, routes: Arc<Routes>, metrics: Arc<Metrics>) {
    let mut held: Vec<Egress> = Vec::new();
    let mut unsynced = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(item) = next.take() {
            taken += 1;
            match item {
                Egress::Record(r) => {
                    if let Err(e) = log.append(&r) {
                        fatal(&e);
                    }
                    metrics.log_records.inc();
                    unsynced = true;
                }
                Egress::Checkpoint(c) => {
                    // Durable on return, and it supersedes what is pending.
                    if let Err(e) = log.checkpoint(&c) {
                        fatal(&e);
                    }
                    unsynced = false;
                    release(&mut held, &routes);
                }
                send if unsynced => held.push(send),
                send => dispatch(send, &routes),
            }
            // Bounded, so held sends wait for at most one batch.
            next = if taken < 4096 { rx.try_recv().ok() } else { None };
        }
        if unsynced {
            if let Err(e) = log.sync() {
                fatal(&e);
            }
            metrics.log_syncs.inc();
            unsynced = false;
        }
        release(&mut held, &routes);
        metrics.egress_queue.set(rx.len() as i64);
    }
    if let Err(e) = log.sync() {
        warn!("final log sync failed: {e}");
    }
}

fn release(held: &mut Vec<Egress>, routes: &Routes) {
    for send in held.drain(..) {
        dispatch(send, routes);
    }
}

fn dispatch(e: Egress, routes: &Routes) {
    match e {
        Egress::Send(to, frame) => routes.send(to, frame),
        Egress::Broadcast(frame) => routes.broadcast(frame),
        Egress::Multicast(to, frame) => {
            for r in to {
                routes.send(NodeId::Replica(r), frame.clone());
            }
        }
        Egress::Record(_) | Egress::Checkpoint(_) => {}
    }
}

/// A replica that cannot make its votes durable must stop rather than vote
/// without them (that could break agreement after a restart).
fn fatal(e: &StorageError) -> ! {
    tracing::error!("durable log failed, stopping: {e}");
    std::process::exit(70);
}

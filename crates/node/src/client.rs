//! The client library: a protocol's client machine on tokio, with an
//! authenticated connection to every replica (reconnecting with back-off).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use quorate_node::{Client, ClientOptions, ClusterConfig};
//! # type P = quorate_modsmart::ModSmart;
//! let cfg = ClusterConfig::load("cluster/cluster.toml".as_ref())?;
//! let id = cfg.local_clients()[0];
//! let mut client = Client::<P>::connect(&cfg, id, ClientOptions::default())?;
//! let reply = client.invoke(bytes::Bytes::from_static(b"op")).await?;
//! # Ok(()) }
//! ```

use crate::config::{ClusterConfig, ConfigError};
use crate::crypto::RuntimeCrypto;
use crate::net::{dial, Backoff};
use crate::session;
use bytes::Bytes;
use parking_lot::RwLock;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::keys::KeyMaterial;
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox, Protocol};
use quorate_core::time::Time;
use quorate_core::Membership;
use quorate_transport::{Identity, Limits};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Why an operation did not complete.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No answer within the timeout (the operation may still execute later).
    #[error("no answer from the cluster within {0:?} (replicas unreachable or too many faulty)")]
    Timeout(Duration),
    /// The client's connections are gone (the runtime is shutting down).
    #[error("client closed")]
    Closed,
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Give up on an operation after this long.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { timeout: Duration::from_secs(30) }
    }
}

/// Connections to every replica, shared by the clients ("sessions") that
/// run over them: one write carries the requests of many clients, one read
/// their replies. A connection authenticates with one client's key and may
/// carry the sessions of every client id that has the same public key in the
/// cluster file (holding that key, it could open their connections anyway).
pub struct ClientHost<P: Protocol> {
    shared: Arc<Shared<P>>,
}

struct Shared<P: Protocol> {
    cfg: ClusterConfig,
    owner: ClientId,
    key: ed25519_dalek::SigningKey,
    membership: Membership,
    settings: P::Config,
    /// The public part of the protocol's key material.
    public_keys: <P::Keys as KeyMaterial>::Public,
    timeout: Duration,
    peers: Vec<mpsc::Sender<Bytes>>,
    sessions: Sessions<P>,
    tasks: Vec<JoinHandle<()>>,
}

/// Where each client's replies go.
type Sessions<P> = Arc<RwLock<HashMap<ClientId, mpsc::Sender<(ReplicaId, <P as Protocol>::Message)>>>>;

impl<P: Protocol> Drop for Shared<P> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Replies a session has not taken yet; more are dropped (its requests are retransmitted).
const SESSION_INBOX: usize = 256;

impl<P: Protocol> ClientHost<P> {
    /// Connections authenticated as client `owner`, whose key file is in the
    /// cluster's keys directory. Must be called inside a tokio runtime;
    /// connections open in the background.
    pub fn connect(cfg: &ClusterConfig, owner: ClientId, opts: ClientOptions) -> Result<Self, ConfigError> {
        let key = cfg.signing_key(NodeId::Client(owner))?;
        Self::with_key(cfg, owner, key, opts)
    }

    /// Connections authenticated as `owner` holding `key` (which must match its entry in the cluster file).
    pub fn with_key(
        cfg: &ClusterConfig,
        owner: ClientId,
        key: ed25519_dalek::SigningKey,
        opts: ClientOptions,
    ) -> Result<Self, ConfigError> {
        let membership = cfg.membership::<P>()?;
        let settings = cfg.settings::<P>()?;
        let public_keys = cfg.protocol_public_keys::<P>()?;
        let node = &cfg.file.node;
        let limits = Limits { max_frame: node.max_frame, handshake_timeout: node.handshake_timeout };
        let identity = Arc::new(Identity { me: NodeId::Client(owner), key: key.clone() });
        let directory = Arc::new(cfg.directory.clone());
        let sessions: Sessions<P> = Arc::default();
        let mut peers = Vec::new();
        let mut tasks = Vec::new();
        for r in &cfg.file.replicas {
            let (tx, rx) = mpsc::channel(node.send_queue);
            peers.push(tx);
            tasks.push(tokio::spawn(connection::<P>(
                ReplicaId(r.id),
                r.address.clone(),
                Arc::clone(&identity),
                Arc::clone(&directory),
                limits.clone(),
                node.reconnect_max,
                rx,
                Arc::clone(&sessions),
            )));
        }
        let shared = Shared {
            cfg: cfg.clone(),
            owner,
            key,
            membership,
            settings,
            public_keys,
            timeout: opts.timeout,
            peers,
            sessions,
            tasks,
        };
        Ok(ClientHost { shared: Arc::new(shared) })
    }

    /// A session for client `id` over these connections. `id` must have the
    /// connections' public key and no other session here.
    pub fn client(&self, id: ClientId) -> Result<Client<P>, ConfigError> {
        let s = &self.shared;
        let me = NodeId::Client(id);
        if s.cfg.directory.get(&me) != Some(&s.key.verifying_key()) {
            return Err(s.cfg.invalid(
                "clients",
                format!(
                    "client {} does not have the key of client {}, whose connections were asked to carry it",
                    id.0, s.owner.0
                ),
            ));
        }
        let (tx, inbox) = mpsc::channel(SESSION_INBOX);
        match s.sessions.write().entry(id) {
            Entry::Occupied(_) => {
                return Err(s
                    .cfg
                    .invalid("clients", format!("client {} already has a session on these connections", id.0)))
            }
            Entry::Vacant(v) => v.insert(tx),
        };
        // Open the session everywhere now: replicas may answer before we send them anything.
        for p in &s.peers {
            let _ = p.try_send(session::open(id));
        }
        let crypto = RuntimeCrypto::new(me, &s.key, &s.cfg.directory);
        // Replicas remember our last executed sequence number across our restarts:
        // continue above it (a microsecond clock outruns one process's requests).
        let first_seq = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        // No distances are known: clients are spread over the replicas by id.
        let nearest = s.membership.round_from(ReplicaId((id.0 % s.membership.n().max(1) as u64) as u32));
        let ctx = ClientContext {
            id,
            first_seq,
            nearest,
            membership: s.membership.clone(),
            crypto: Arc::new(crypto),
            public_keys: s.public_keys.clone(),
        };
        Ok(Client {
            machine: P::client(ctx, &s.settings),
            id,
            host: Arc::clone(s),
            inbox,
            timers: HashMap::new(),
            epoch: Instant::now(),
            timeout: s.timeout,
        })
    }
}

/// A client of a replicated service. One operation at a time (`&mut self`);
/// run several clients for concurrency (over one [`ClientHost`] they share connections).
pub struct Client<P: Protocol> {
    machine: Box<dyn ClientMachine<P>>,
    id: ClientId,
    host: Arc<Shared<P>>,
    inbox: mpsc::Receiver<(ReplicaId, P::Message)>,
    timers: HashMap<P::Timer, Instant>,
    epoch: Instant,
    timeout: Duration,
}

impl<P: Protocol> Drop for Client<P> {
    fn drop(&mut self) {
        self.host.sessions.write().remove(&self.id);
    }
}

impl<P: Protocol> Client<P> {
    /// How many sessions share this client's connections (itself included).
    pub fn sessions_on_connections(&self) -> usize {
        self.host.sessions.read().len()
    }

    /// A client with id `id` on connections of its own; its key file is in
    /// the cluster's keys directory. Must be called inside a tokio runtime;
    /// connections open in the background.
    pub fn connect(cfg: &ClusterConfig, id: ClientId, opts: ClientOptions) -> Result<Self, ConfigError> {
        ClientHost::connect(cfg, id, opts)?.client(id)
    }

    /// A client holding `key` (which must match its entry in the cluster file), on connections of its own.
    pub fn with_key(
        cfg: &ClusterConfig,
        id: ClientId,
        key: ed25519_dalek::SigningKey,
        opts: ClientOptions,
    ) -> Result<Self, ConfigError> {
        ClientHost::with_key(cfg, id, key, opts)?.client(id)
    }

    /// Order and execute `op`; the service's reply.
    pub async fn invoke(&mut self, op: Bytes) -> Result<Bytes, ClientError> {
        self.run(op, false).await
    }

    /// Execute a read-only `op` (the protocol may answer without ordering it,
    /// falling back to ordering when replies disagree).
    pub async fn invoke_read_only(&mut self, op: Bytes) -> Result<Bytes, ClientError> {
        self.run(op, true).await
    }

    fn now(&self) -> Time {
        Time(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    async fn run(&mut self, op: Bytes, read_only: bool) -> Result<Bytes, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut out = Outbox::new();
        self.machine.invoke(self.now(), op, read_only, &mut out);
        loop {
            if let Some(result) = self.apply(&mut out) {
                return Ok(result);
            }
            let next_timer = self.timers.values().min().copied().unwrap_or(deadline).min(deadline);
            tokio::select! {
                m = self.inbox.recv() => {
                    let Some((r, msg)) = m else { return Err(ClientError::Closed) };
                    self.machine.handle(self.now(), Input::Message { from: NodeId::Replica(r), msg }, &mut out);
                }
                _ = tokio::time::sleep_until(next_timer) => {
                    if Instant::now() >= deadline {
                        return Err(ClientError::Timeout(self.timeout));
                    }
                    let now = Instant::now();
                    let due: Vec<P::Timer> =
                        self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| t.clone()).collect();
                    for t in due {
                        self.timers.remove(&t);
                        self.machine.handle(self.now(), Input::Timer(t), &mut out);
                    }
                }
            }
        }
    }

    /// Carry out effects; the result if the operation completed.
    fn apply(&mut self, out: &mut Outbox<P>) -> Option<Bytes> {
        let mut result = None;
        let peers = &self.host.peers;
        for e in out.drain() {
            match e {
                Effect::Send { to: NodeId::Replica(r), msg } => {
                    if let Some(p) = peers.get(r.index()) {
                        let _ = p.try_send(session::encode(self.id, &msg));
                    }
                }
                Effect::Broadcast { msg } => {
                    let frame = session::encode(self.id, &msg);
                    for p in peers {
                        // A full queue means the replica is unreachable; retransmission covers it.
                        let _ = p.try_send(frame.clone());
                    }
                }
                Effect::Multicast { to, msg } => {
                    let frame = session::encode(self.id, &msg);
                    for r in to {
                        if let Some(p) = peers.get(r.index()) {
                            let _ = p.try_send(frame.clone());
                        }
                    }
                }
                Effect::SetTimer { timer, after } => {
                    self.timers.insert(timer, Instant::now() + after);
                }
                Effect::CancelTimer { timer } => {
                    self.timers.remove(&timer);
                }
                Effect::Complete { result: r } => result = Some(r),
                Effect::Event(ev) => debug!(?ev, "client event"),
                Effect::Send { .. } | Effect::Persist(_) | Effect::PersistCheckpoint(_) => {}
            }
        }
        result
    }
}

/// Keep a connection to replica `r` open: send what is queued, pass replies to the client.
#[allow(clippy::too_many_arguments)]
async fn connection<P: Protocol>(
    r: ReplicaId,
    address: String,
    identity: Arc<Identity>,
    directory: Arc<quorate_transport::Directory>,
    limits: Limits,
    reconnect_max: Duration,
    mut rx: mpsc::Receiver<Bytes>,
    sessions: Sessions<P>,
) {
    let mut backoff = Backoff::new(reconnect_max);
    loop {
        match dial(&address, &identity, NodeId::Replica(r), &directory, &limits).await {
            Ok((mut reader, mut writer)) => {
                backoff.reset();
                // A new connection: open every session on it again.
                let open: Vec<ClientId> = sessions.read().keys().copied().collect();
                for id in open {
                    let _ = writer.push(&session::open(id));
                }
                let sessions = Arc::clone(&sessions);
                let max = limits.max_frame;
                let mut read = tokio::spawn(async move {
                    while let Ok(Some(frame)) = reader.next().await {
                        match session::decode::<P::Message>(&frame, max) {
                            Ok((_, None)) => {}
                            Ok((id, Some(msg))) => {
                                // A session that is gone or not listening loses the reply; it retransmits.
                                if let Some(tx) = sessions.read().get(&id) {
                                    let _ = tx.try_send((r, msg));
                                }
                            }
                            Err(e) => warn!(replica = r.0, "reply rejected: {e}"),
                        }
                    }
                });
                loop {
                    tokio::select! {
                        frame = rx.recv() => {
                            let Some(frame) = frame else { read.abort(); return };
                            if writer.push(&frame).is_err() {
                                warn!("request over the frame limit dropped");
                                continue;
                            }
                            while let Ok(f) = rx.try_recv() {
                                let _ = writer.push(&f);
                            }
                            if writer.flush().await.is_err() {
                                break;
                            }
                        }
                        _ = &mut read => break,
                    }
                }
                read.abort();
                debug!(replica = r.0, "connection lost");
            }
            Err(e) => debug!(replica = r.0, "connect failed: {e}"),
        }
        backoff.wait().await;
    }
}

//! The replica's network: an authenticated listener for replicas and
//! clients, one outgoing connection per peer replica (reconnecting with
//! back-off), and the routes back to connected clients.
//!
//! Receiving tasks decode each frame and check the signatures it carries
//! (`Message::preverify`) before queueing it for the protocol thread: these
//! tasks run on all of tokio's worker threads, which is the parallel
//! authentication stage in front of the single protocol thread.

use crate::config::ClusterConfig;
use crate::crypto::RuntimeCrypto;
use crate::metrics::{Metrics, Peer};
use crate::session;
use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use parking_lot::RwLock;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Message, Protocol};
use quorate_core::wire;
use quorate_transport::{FrameReader, FrameWriter, Identity, Limits};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// A message for the protocol thread.
pub(crate) struct Inbound<P: Protocol> {
    pub from: NodeId,
    pub msg: P::Message,
    pub arrived: Instant,
}

/// What the protocol thread receives.
pub(crate) enum HostInput<P: Protocol> {
    Message(Inbound<P>),
    Shutdown,
}

/// Flush a connection's buffer once it holds this much, even if more frames wait.
const MAX_WRITE_BATCH: usize = 1 << 20;

/// Where the replica's outgoing frames go.
pub(crate) struct Routes {
    me: ReplicaId,
    peers: Vec<Option<mpsc::Sender<Bytes>>>,
    clients: RwLock<HashMap<ClientId, (u64, mpsc::Sender<Bytes>)>>,
    metrics: Arc<Metrics>,
}

impl Routes {
    /// Queue a frame for one node; a full queue drops it (counted), as a lossy link would.
    pub fn send(&self, to: NodeId, frame: Bytes) {
        let sent = match to {
            NodeId::Replica(r) if r == self.me => return,
            NodeId::Replica(r) => match self.peers.get(r.index()).and_then(|p| p.as_ref()) {
                Some(tx) => tx.try_send(frame).is_ok(),
                None => {
                    debug!(?r, "send to a replica outside the membership");
                    return;
                }
            },
            NodeId::Client(c) => match self.clients.read().get(&c) {
                Some((_, tx)) => tx.try_send(frame).is_ok(),
                // Not connected: the client retransmits after reconnecting.
                None => return,
            },
        };
        if !sent {
            self.metrics.reject("send queue full");
        }
    }

    /// Queue a frame for every other replica.
    pub fn broadcast(&self, frame: Bytes) {
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(tx) = p {
                if tx.try_send(frame.clone()).is_err() {
                    self.metrics.reject("send queue full");
                    debug!(peer = i, "send queue full");
                }
            }
        }
    }
}

/// Everything the network tasks share.
pub(crate) struct NetContext<P: Protocol> {
    pub identity: Identity,
    pub directory: quorate_transport::Directory,
    pub limits: Limits,
    pub max_client_frame: usize,
    pub send_queue: usize,
    pub reconnect_max: Duration,
    pub crypto: RuntimeCrypto,
    pub metrics: Arc<Metrics>,
    pub input: flume::Sender<HostInput<P>>,
    pub routes: Arc<Routes>,
    next_conn: AtomicU64,
}

/// Start the network of replica `me`: the listener and one dialer per peer.
/// Returns the routes the durability stage sends through.
pub(crate) fn start<P: Protocol>(
    listener: TcpListener,
    cfg: &ClusterConfig,
    identity: Identity,
    crypto: RuntimeCrypto,
    metrics: Arc<Metrics>,
    input: flume::Sender<HostInput<P>>,
) -> Arc<Routes> {
    let me = identity.me.replica().expect("a replica host runs as a replica");
    let settings = &cfg.file.node;
    let addresses: Vec<String> = cfg.file.replicas.iter().map(|r| r.address.clone()).collect();
    let limits = Limits { max_frame: settings.max_frame, handshake_timeout: settings.handshake_timeout };
    let mut peers = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..addresses.len() {
        if i == me.index() {
            peers.push(None);
        } else {
            let (tx, rx) = mpsc::channel(settings.send_queue);
            peers.push(Some(tx));
            receivers.push((ReplicaId(i as u32), rx));
        }
    }
    let routes = Arc::new(Routes { me, peers, clients: RwLock::new(HashMap::new()), metrics: Arc::clone(&metrics) });
    let ctx = Arc::new(NetContext {
        identity,
        directory: cfg.directory.clone(),
        limits,
        max_client_frame: settings.max_client_frame,
        send_queue: settings.send_queue,
        reconnect_max: settings.reconnect_max,
        crypto,
        metrics,
        input,
        routes: Arc::clone(&routes),
        next_conn: AtomicU64::new(0),
    });
    for (peer, rx) in receivers {
        let address = addresses[peer.index()].clone();
        tokio::spawn(dial_peer(Arc::clone(&ctx), peer, address, rx));
    }
    tokio::spawn(accept_loop(ctx, listener));
    routes
}

async fn accept_loop<P: Protocol>(ctx: Arc<NetContext<P>>, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            match quorate_transport::accept(stream, &ctx.identity, &ctx.directory, &ctx.limits).await {
                Ok((peer, channel)) => {
                    let (reader, writer) = channel.split();
                    serve_connection(ctx, peer, reader, writer).await;
                }
                Err(e) => {
                    ctx.metrics.reject(e.reason());
                    warn!(%addr, "connection refused: {e}");
                }
            }
        });
    }
}

/// An accepted, authenticated connection: read from it; for a client, also
/// route replies to every client session it carries.
async fn serve_connection<P: Protocol, R, W>(
    ctx: Arc<NetContext<P>>,
    peer: NodeId,
    mut reader: FrameReader<R>,
    writer: FrameWriter<W>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    ctx.metrics.connections.inc();
    debug!(?peer, "connection accepted");
    match peer {
        NodeId::Client(_) => {
            let (tx, rx) = mpsc::channel(ctx.send_queue);
            // No per-client queue gauge: clients come and go, series would pile up.
            tokio::spawn(write_loop(writer, rx, Arc::clone(&ctx.metrics), None));
            // Checked on each frame's length, before the frame is buffered (the handshake ran under max_frame).
            reader.set_max_frame(ctx.max_client_frame);
            let mut conn = ClientConnection {
                id: ctx.next_conn.fetch_add(1, Ordering::Relaxed),
                key: ctx.directory.get(&peer).copied(),
                replies: tx,
                sessions: HashSet::new(),
            };
            read_loop(&ctx, peer, reader, ctx.max_client_frame, Some(&mut conn)).await;
            let mut routes = ctx.routes.clients.write();
            for c in &conn.sessions {
                if routes.get(c).is_some_and(|(id, _)| *id == conn.id) {
                    routes.remove(c);
                }
            }
        }
        NodeId::Replica(_) => {
            // Replicas send to us on their own outgoing connection; this one is read only.
            drop(writer);
            read_loop(&ctx, peer, reader, ctx.limits.max_frame, None).await;
        }
    }
    ctx.metrics.connections.dec();
}

/// A connection from a client process, and the client sessions seen on it.
struct ClientConnection {
    id: u64,
    /// The key it authenticated with: sessions of clients with another key are refused.
    key: Option<VerifyingKey>,
    replies: mpsc::Sender<Bytes>,
    sessions: HashSet<ClientId>,
}

/// Most frames whose signatures are checked as one batch.
const MAX_VERIFY_BATCH: usize = 512;

/// Decode, pre-verify and queue every frame of a connection until it ends.
/// A client connection's frames name their client session. The frames one read
/// brought in are decoded together and their signatures checked as one batch.
async fn read_loop<P: Protocol, R: AsyncRead + Unpin>(
    ctx: &NetContext<P>,
    peer: NodeId,
    mut reader: FrameReader<R>,
    limit: usize,
    mut client: Option<&mut ClientConnection>,
) {
    let mut batch: Vec<(NodeId, P::Message)> = Vec::new();
    loop {
        let mut frame = match reader.next().await {
            Ok(Some(f)) => Some(f),
            Ok(None) => return,
            Err(e) => return dropped(ctx, peer, &e),
        };
        let mut failed = None;
        while let Some(f) = frame.take() {
            match decode::<P>(ctx, peer, &f, limit, client.as_deref_mut()) {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => {}
                Err(e) => {
                    // The channel is authenticated: the peer itself sent this. Drop the frame, keep serving.
                    ctx.metrics.reject(e.reason());
                    warn!(?peer, "frame rejected: {e}");
                }
            }
            if batch.len() < MAX_VERIFY_BATCH {
                frame = reader.next_buffered().unwrap_or_else(|e| {
                    failed = Some(e);
                    None
                });
            }
        }
        ctx.crypto.verify_collected(|c| {
            for (from, msg) in &batch {
                msg.preverify(*from, c);
            }
        });
        for (from, msg) in batch.drain(..) {
            let input = HostInput::Message(Inbound { from, msg, arrived: Instant::now() });
            if ctx.input.send_async(input).await.is_err() {
                return;
            }
        }
        // Frames before a broken one were authentic and are delivered; the connection ends.
        if let Some(e) = failed {
            return dropped(ctx, peer, &e);
        }
    }
}

fn dropped<P: Protocol>(ctx: &NetContext<P>, peer: NodeId, e: &quorate_transport::FrameError) {
    ctx.metrics.reject(e.reason());
    warn!(?peer, "connection dropped: {e}");
}

/// One frame's sender and message (none for a frame that only opens a client
/// session). On a client connection the frame names its client, who must have
/// the connection's key (the first frame of a client session makes this
/// connection its route).
fn decode<P: Protocol>(
    ctx: &NetContext<P>,
    peer: NodeId,
    frame: &[u8],
    limit: usize,
    client: Option<&mut ClientConnection>,
) -> Result<Option<(NodeId, P::Message)>, FrameRejected> {
    let Some(conn) = client else {
        return Ok(Some((peer, wire::decode(frame, limit)?)));
    };
    let (c, msg) = session::decode(frame, limit)?;
    let from = NodeId::Client(c);
    if !conn.sessions.contains(&c) {
        if conn.key.is_none() || ctx.directory.get(&from) != conn.key.as_ref() {
            return Err(FrameRejected::Session(c));
        }
        conn.sessions.insert(c);
        // The latest connection carrying a client is its route (it reconnected).
        ctx.routes.clients.write().insert(c, (conn.id, conn.replies.clone()));
    }
    Ok(msg.map(|m| (from, m)))
}

/// Why a decoded frame was dropped.
#[derive(Debug, thiserror::Error)]
enum FrameRejected {
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// A client connection's frame for a client whose key is not the connection's.
    #[error("session of client {} refused: not authenticated with its key", .0 .0)]
    Session(ClientId),
}

impl FrameRejected {
    fn reason(&self) -> &'static str {
        match self {
            FrameRejected::Wire(e) => e.reason(),
            FrameRejected::Session(_) => "client session not allowed on this connection",
        }
    }
}

/// Send queued frames on a connection, many per write.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::Receiver<Bytes>,
    metrics: Arc<Metrics>,
    label: Option<Peer>,
) -> Option<mpsc::Receiver<Bytes>> {
    let depth = label.as_ref().map(|l| metrics.send_queue.get_or_create(l).clone());
    loop {
        let frame = rx.recv().await?;
        if writer.push(&frame).is_err() {
            metrics.reject("oversize outgoing frame");
        }
        while writer.buffered() < MAX_WRITE_BATCH {
            let Ok(frame) = rx.try_recv() else { break };
            if writer.push(&frame).is_err() {
                metrics.reject("oversize outgoing frame");
            }
        }
        if let Some(d) = &depth {
            d.set(rx.len() as i64);
        }
        if let Err(e) = writer.flush().await {
            debug!(peer = ?label, "write failed: {e}");
            return Some(rx);
        }
    }
}

/// Keep a connection to `peer` open and send it what is queued for it.
async fn dial_peer<P: Protocol>(
    ctx: Arc<NetContext<P>>,
    peer: ReplicaId,
    address: String,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let label = Peer { peer: format!("r{}", peer.0) };
    let mut backoff = Backoff::new(ctx.reconnect_max);
    loop {
        match dial(&address, &ctx.identity, NodeId::Replica(peer), &ctx.directory, &ctx.limits).await {
            Ok((reader, writer)) => {
                backoff.reset();
                info!(?peer, "connected");
                drop(reader);
                ctx.metrics.connections.inc();
                let back = write_loop(writer, rx, Arc::clone(&ctx.metrics), Some(label.clone())).await;
                ctx.metrics.connections.dec();
                match back {
                    Some(r) => rx = r,
                    None => return,
                }
                info!(?peer, "connection lost");
            }
            Err(DialError::Handshake(e)) => {
                ctx.metrics.reject(e.reason());
                warn!(?peer, "handshake failed: {e}");
            }
            Err(DialError::Io(e)) => debug!(?peer, "connect failed: {e}"),
        }
        backoff.wait().await;
    }
}

/// Reconnection delays: from 50 ms, doubling up to a maximum.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);

    pub(crate) fn new(max: Duration) -> Self {
        Backoff { next: Self::FIRST, max }
    }

    /// Connected: the next failure waits the shortest delay again.
    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// The peer failed authentication.
    #[error(transparent)]
    Handshake(#[from] quorate_transport::HandshakeError),
}

/// The two halves of an authenticated TCP connection.
pub type TcpHalves = (FrameReader<tokio::io::ReadHalf<TcpStream>>, FrameWriter<tokio::io::WriteHalf<TcpStream>>);

/// Connect to `address` and authenticate it as `expected`.
pub async fn dial(
    address: &str,
    identity: &Identity,
    expected: NodeId,
    directory: &quorate_transport::Directory,
    limits: &Limits,
) -> Result<TcpHalves, DialError> {
    let stream = tokio::time::timeout(limits.handshake_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let channel = quorate_transport::connect(stream, identity, expected, directory, limits).await?;
    Ok(channel.split())
}

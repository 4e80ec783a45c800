//! The runtime against bad input: a follower and the leader of a 4-replica
//! cluster receive malformed, unknown, oversize, truncated and tampered
//! frames, badly signed and replayed requests, client sessions claimed on a
//! connection without their key, and handshakes that lie about who they are. After each, the replica still runs, its metrics count the
//! rejection under the expected reason, and it still serves clients (a client
//! that can only reach a quorum through it completes an operation).

mod common;

use bytes::Bytes;
use common::{runtime, serial, wait_until, Cluster, DEADLINE};
use quorate_apps::KvOp;
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::request::{Request, SignedRequest};
use quorate_modsmart::{ModSmart, Msg};
use quorate_node::crypto::RuntimeCrypto;
use quorate_node::{session, Client, ClusterConfig};
use quorate_transport::{FrameReader, FrameWriter, Identity, Limits};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// A TCP stream shared between an authenticated channel and the test, which
/// can write raw bytes behind the channel's back or have one byte of the
/// channel's output flipped on the way out.
#[derive(Clone)]
struct Tap {
    stream: Arc<Mutex<TcpStream>>,
    /// Bytes written so far.
    written: Arc<AtomicU64>,
    /// Stream offset of the byte to flip (u64::MAX: none).
    flip_at: Arc<AtomicU64>,
}

impl Tap {
    fn new(stream: TcpStream) -> Tap {
        Tap {
            stream: Arc::new(Mutex::new(stream)),
            written: Arc::new(AtomicU64::new(0)),
            flip_at: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Flip a bit of the first payload byte of the next frame written (the
    /// channel's writer must have nothing buffered).
    fn tamper_next_frame(&self) {
        self.flip_at.store(self.written.load(Ordering::SeqCst) + 4, Ordering::SeqCst);
    }
}

impl AsyncRead for Tap {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut s = self.stream.lock().expect("tap lock");
        Pin::new(&mut *s).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tap {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.stream.lock().expect("tap lock");
        let at = self.written.load(Ordering::SeqCst);
        let flip = self.flip_at.load(Ordering::SeqCst);
        let result = if flip >= at && flip - at < buf.len() as u64 {
            let mut copy = buf.to_vec();
            copy[(flip - at) as usize] ^= 0x01;
            Pin::new(&mut *s).poll_write(cx, &copy)
        } else {
            Pin::new(&mut *s).poll_write(cx, buf)
        };
        if let Poll::Ready(Ok(n)) = &result {
            self.written.fetch_add(*n as u64, Ordering::SeqCst);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.lock().expect("tap lock")).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.lock().expect("tap lock")).poll_shutdown(cx)
    }
}

/// An authenticated connection to a replica, with raw access.
struct Raw {
    tap: Tap,
    reader: FrameReader<ReadHalf<Tap>>,
    writer: FrameWriter<WriteHalf<Tap>>,
}

/// Open a connection to replica `r` and run the handshake as `identity`.
/// Our side of the handshake succeeds even when the replica then refuses us
/// (the dialer learns it only from the EOF that follows).
async fn dial_as(cfg: &ClusterConfig, r: usize, identity: Identity) -> Raw {
    let tcp = TcpStream::connect(&cfg.file.replicas[r].address).await.expect("connect to a replica");
    tcp.set_nodelay(true).expect("nodelay");
    let tap = Tap::new(tcp);
    // Our own frame limit: large, so that we can send frames over the replica's.
    let limits = Limits { max_frame: 64 << 20, handshake_timeout: Duration::from_secs(30) };
    let channel = quorate_transport::connect(
        tap.clone(),
        &identity,
        NodeId::Replica(ReplicaId(r as u32)),
        &cfg.directory,
        &limits,
    )
    .await
    .expect("handshake");
    let (reader, writer) = channel.split();
    Raw { tap, reader, writer }
}

/// Connect to replica `r` as client `id` with its own key.
async fn dial_client(cfg: &ClusterConfig, r: usize, id: u64) -> Raw {
    let node = NodeId::Client(ClientId(id));
    dial_as(cfg, r, Identity { me: node, key: cfg.signing_key(node).expect("client key") }).await
}

/// A fresh sequence number (clients number requests from the clock, too).
fn fresh_seq() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as u64
}

fn put(key: &str, value: &str) -> Bytes {
    KvOp::Put { key: Bytes::from(key.to_string()), value: Bytes::from(value.to_string()) }.encode()
}

/// A client connection's frame: the session header of client `id`, then `body`.
fn framed(id: u64, body: &[u8]) -> Vec<u8> {
    [&id.to_be_bytes()[..], body].concat()
}

/// A request frame of client `id`, signed with `signer`'s key.
fn request(cfg: &ClusterConfig, id: u64, seq: u64, op: Bytes, signer: u64) -> Bytes {
    let node = NodeId::Client(ClientId(signer));
    let crypto = RuntimeCrypto::new(node, &cfg.signing_key(node).expect("key"), &cfg.directory);
    let req = Request { client: ClientId(id), seq, op, read_only: false };
    let sig = crypto.sign(&req.signing_bytes());
    session::encode(ClientId(id), &Msg::Request(SignedRequest { req, sig }))
}

/// Read frames until the reply to `seq` arrives.
async fn await_reply(raw: &mut Raw, seq: u64) {
    let read = async {
        loop {
            let frame = raw.reader.next().await.expect("reply stream").expect("connection open");
            if let Ok((_, Some(Msg::Reply(reply)))) = session::decode::<Msg>(&frame, 1 << 20) {
                if reply.seq == seq {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, read).await.expect("a reply to our request");
}

/// What stays open until the rejection has been counted.
type KeepAlive = Box<dyn std::any::Any + Send>;

struct Bench {
    cluster: Cluster,
    rt: tokio::runtime::Runtime,
    /// Per replica under test: a client that reaches a quorum only through it.
    through: Vec<Option<Client<ModSmart>>>,
    ops: u64,
}

impl Bench {
    /// Check that replica `r` still runs, counted one more `reason` than `before`,
    /// and still serves clients.
    fn check(&mut self, r: usize, reason: &str, before: u64, keep: KeepAlive) {
        let cluster = &mut self.cluster;
        wait_until(&format!("replica {r} counts a rejection for '{reason}'"), DEADLINE, || {
            cluster.assert_running(r);
            cluster.rejected(r, reason) > before
        });
        drop(keep);
        cluster.assert_running(r);
        self.ops += 1;
        let client = self.through[r].as_mut().expect("a client through the replica");
        let op = put("normal", &format!("after-{reason}-{}", self.ops));
        let reply = self.rt.block_on(client.invoke(op));
        assert!(reply.is_ok(), "replica {r}: a normal operation after '{reason}' failed: {reply:?}");
        eprintln!("replica {r}: '{reason}' rejected and counted, replica still serving");
    }

    /// Run `bad` against replica `r` and check the outcome.
    fn step<F>(&mut self, r: usize, reason: &str, bad: F)
    where
        F: std::future::Future<Output = KeepAlive>,
    {
        let before = self.cluster.rejected(r, reason);
        let keep = self.rt.block_on(bad);
        self.check(r, reason, before, keep);
    }
}

#[test]
fn replicas_reject_bad_input_and_keep_serving() {
    let _serial = serial();
    let mut cluster = Cluster::new("bad-input", "mod-smart", 4, 16, 1, |t| t);
    cluster.start_all();
    let rt = runtime();
    let started = Instant::now();
    // Normal operation first, so that the leader is known and the connections are up.
    let leader = {
        let mut c = rt.block_on(async { common::client::<ModSmart>(&cluster.cfg, 1, DEADLINE) });
        rt.block_on(c.invoke(put("normal", "start"))).expect("a first operation completes");
        cluster.leader()
    };
    let follower = (leader + 1) % cluster.n;
    // A client that can only reach `r` and two others: a quorum (3) needs `r`.
    let mut through = Vec::new();
    for r in 0..cluster.n {
        through.push((r == leader || r == follower).then(|| {
            let left_out = (0..cluster.n).find(|&j| j != r && j != leader && j != follower).expect("n = 4");
            let mut cfg = cluster.cfg.clone();
            cfg.file.replicas[left_out].address = "127.0.0.1:1".to_string();
            rt.block_on(async { common::client::<ModSmart>(&cfg, 2 + r as u64, DEADLINE) })
        }));
    }
    let mut b = Bench { cluster, rt, through, ops: 0 };
    let cfg = b.cluster.cfg.clone();
    let max_client_frame = cfg.file.node.max_client_frame;
    // Connections that never start their handshake: each replica must time them out.
    let silent: Vec<_> = [follower, leader]
        .iter()
        .map(|&r| {
            let before = b.cluster.rejected(r, "handshake timeout");
            let s = std::net::TcpStream::connect(b.cluster.address(r)).expect("connect");
            (r, before, s)
        })
        .collect();

    for r in [follower, leader] {
        // Raw client connections use ids 10 and up (ids 1..=5 are the normal clients).
        let id = 10 + r as u64 * 2;
        eprintln!("-- replica {r} ({}) --", if r == leader { "leader" } else { "follower" });

        // A frame that is no message: the frame is dropped, the connection kept.
        b.step(r, "malformed message", async {
            let mut raw = dial_client(&cfg, r, id).await;
            raw.writer.send(&framed(id, &[0, 0xff])).await.expect("send");
            Box::new(raw) as KeepAlive
        });

        // A frame too short to name its client session.
        b.step(r, "malformed message", async {
            let mut raw = dial_client(&cfg, r, id).await;
            raw.writer.send(&[0, 0, 1]).await.expect("send");
            Box::new(raw) as KeepAlive
        });

        // A well-formed request of client 1 on a connection authenticated with another key.
        b.step(r, "client session not allowed on this connection", async {
            let mut raw = dial_client(&cfg, r, id).await;
            raw.writer.send(&request(&cfg, 1, fresh_seq(), put("hijack", "x"), 1)).await.expect("send");
            Box::new(raw) as KeepAlive
        });

        // A message kind this replica does not know (variant index 250).
        b.step(r, "unknown message kind", async {
            let mut raw = dial_client(&cfg, r, id).await;
            raw.writer.send(&framed(id, &[0xfa, 0x01])).await.expect("send");
            Box::new(raw) as KeepAlive
        });

        // A whole, well-MAC'd frame over the client frame limit.
        b.step(r, "oversize frame", async {
            let mut raw = dial_client(&cfg, r, id).await;
            // The replica may drop the connection before the frame is all written.
            let _ = raw.writer.send(&vec![0u8; max_client_frame + 1]).await;
            Box::new(raw) as KeepAlive
        });

        // Only the length of a frame over the client limit: refused from the
        // length alone, before the replica buffers anything.
        b.step(r, "oversize frame", async {
            let mut raw = dial_client(&cfg, r, id).await;
            let len = (max_client_frame + 1 + quorate_transport::TAG_LEN) as u32;
            raw.tap.write_all(&len.to_be_bytes()).await.expect("write");
            Box::new(raw) as KeepAlive
        });

        // Half a frame, then EOF.
        b.step(r, "truncated frame", async {
            let mut raw = dial_client(&cfg, r, id).await;
            let len = (100 + quorate_transport::TAG_LEN) as u32;
            raw.tap.write_all(&len.to_be_bytes()).await.expect("write");
            raw.tap.write_all(&[7; 10]).await.expect("write");
            raw.tap.shutdown().await.expect("shutdown");
            Box::new(raw) as KeepAlive
        });

        // A valid request frame with one payload bit flipped in transit.
        b.step(r, "bad frame mac", async {
            let mut raw = dial_client(&cfg, r, id).await;
            raw.tap.tamper_next_frame();
            let _ = raw.writer.send(&request(&cfg, id, fresh_seq(), put("tampered", "x"), id)).await;
            Box::new(raw) as KeepAlive
        });

        // A request signed with another client's key.
        b.step(r, "bad request signature", async {
            let mut raw = dial_client(&cfg, r, id).await;
            raw.writer.send(&request(&cfg, id, fresh_seq(), put("forged", "x"), 1)).await.expect("send");
            Box::new(raw) as KeepAlive
        });

        // A request executed, then its sequence number reused for another operation,
        // then an older sequence number.
        let reuse_id = id + 1;
        let seq = fresh_seq();
        let mut raw = b.rt.block_on(async {
            let mut raw = dial_client(&cfg, r, reuse_id).await;
            raw.writer.send(&request(&cfg, reuse_id, seq, put("reuse", "first"), reuse_id)).await.expect("send");
            await_reply(&mut raw, seq).await;
            raw
        });
        let before = b.cluster.rejected(r, "sequence number reused for another operation");
        b.rt.block_on(raw.writer.send(&request(&cfg, reuse_id, seq, put("reuse", "second"), reuse_id))).expect("send");
        b.check(r, "sequence number reused for another operation", before, Box::new(()));
        let before = b.cluster.rejected(r, "stale sequence number");
        b.rt.block_on(raw.writer.send(&request(&cfg, reuse_id, seq - 1, put("reuse", "older"), reuse_id)))
            .expect("send");
        b.check(r, "stale sequence number", before, Box::new(raw));

        // A handshake claiming another replica's identity, signed with a client's key.
        let claimed = (0..4).find(|&j| j != r).expect("another replica");
        b.step(r, "bad handshake signature", async {
            let key = cfg.signing_key(NodeId::Client(ClientId(id))).expect("key");
            let me = Identity { me: NodeId::Replica(ReplicaId(claimed as u32)), key };
            Box::new(dial_as(&cfg, r, me).await) as KeepAlive
        });

        // A handshake from a node that is in nobody's directory.
        b.step(r, "unknown node", async {
            let key = cfg.signing_key(NodeId::Client(ClientId(id))).expect("key");
            let tcp = TcpStream::connect(&cfg.file.replicas[r].address).await.expect("connect");
            let limits = Limits { max_frame: 1 << 20, handshake_timeout: Duration::from_secs(30) };
            let me = Identity { me: NodeId::Client(ClientId(999)), key };
            let expected = NodeId::Replica(ReplicaId(r as u32));
            // The replica refuses at once: our side sees the connection close.
            let refused = quorate_transport::connect(tcp, &me, expected, &cfg.directory, &limits).await;
            assert!(refused.is_err(), "a node outside the directory got a channel");
            Box::new(()) as KeepAlive
        });

        // Garbage instead of a handshake.
        b.step(r, "malformed handshake", async {
            let mut tcp = TcpStream::connect(&cfg.file.replicas[r].address).await.expect("connect");
            tcp.write_all(&[0, 3, 0xff, 0xff, 0xff]).await.expect("write");
            Box::new(tcp) as KeepAlive
        });
    }

    for (r, before, s) in silent {
        b.check(r, "handshake timeout", before, Box::new(s));
    }
    for i in 0..b.cluster.n {
        b.cluster.assert_running(i);
    }
    eprintln!("all steps in {:.1} s", started.elapsed().as_secs_f64());
}

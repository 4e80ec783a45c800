//! Handshake and frame tests over in-memory duplex pipes and loopback TCP.

use crate::handshake::{recv_msg, reply_to, send_msg, Hello};
use crate::*;
use ed25519_dalek::SigningKey;
use quorate_core::ids::{ClientId, ReplicaId};
use tokio::io::{duplex, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};

const A: NodeId = NodeId::Replica(ReplicaId(0));
const B: NodeId = NodeId::Replica(ReplicaId(1));
const C: NodeId = NodeId::Client(ClientId(7));

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id(me: NodeId, seed: u8) -> Identity {
    Identity { me, key: key(seed) }
}

/// Identities of A, B and C, and a directory of all three.
fn nodes() -> ([Identity; 3], Directory) {
    let ids = [id(A, 1), id(B, 2), id(C, 3)];
    let dir = ids.iter().map(|i| (i.me, i.key.verifying_key())).collect();
    (ids, dir)
}

type HandshakeResults =
    (Result<Channel<DuplexStream>, HandshakeError>, Result<(NodeId, Channel<DuplexStream>), HandshakeError>);

async fn handshake(dialer: &Identity, expected: NodeId, acceptor: &Identity, limits: &Limits) -> HandshakeResults {
    let (_, dir) = nodes();
    let (x, y) = duplex(1 << 16);
    tokio::join!(connect(x, dialer, expected, &dir, limits), accept(y, acceptor, &dir, limits))
}

type Reader = FrameReader<tokio::io::ReadHalf<DuplexStream>>;
type Writer = FrameWriter<tokio::io::WriteHalf<DuplexStream>>;

/// A's writer and B's reader after a successful handshake A → B.
async fn a_to_b(limits: &Limits) -> (Writer, Reader) {
    let (ids, _) = nodes();
    let (d, a) = handshake(&ids[0], B, &ids[1], limits).await;
    (d.unwrap().split().1, a.unwrap().1.split().0)
}

#[tokio::test]
async fn handshake_and_frames_both_ways() {
    let (ids, _) = nodes();
    let (d, a) = handshake(&ids[0], B, &ids[1], &Limits::default()).await;
    let (d, (peer, a)) = (d.unwrap(), a.unwrap());
    assert_eq!((d.peer(), peer, a.peer()), (B, A, A));
    let ((mut dr, mut dw), (mut ar, mut aw)) = (d.split(), a.split());
    dw.send(b"ping").await.unwrap();
    assert_eq!(ar.next().await.unwrap().unwrap(), &b"ping"[..]);
    aw.send(b"pong").await.unwrap();
    aw.send(b"").await.unwrap();
    assert_eq!(dr.next().await.unwrap().unwrap(), &b"pong"[..]);
    assert_eq!(dr.next().await.unwrap().unwrap(), &b""[..]);
}

#[tokio::test]
async fn client_to_replica_over_tcp() {
    let (ids, dir) = nodes();
    let limits = Limits::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async { accept(listener.accept().await.unwrap().0, &ids[1], &dir, &limits).await };
    let client = async { connect(TcpStream::connect(addr).await.unwrap(), &ids[2], B, &dir, &limits).await };
    let (server, client) = tokio::join!(server, client);
    let ((peer, server), client) = (server.unwrap(), client.unwrap());
    assert_eq!((peer, client.peer()), (C, B));
    let ((mut sr, mut sw), (mut cr, mut cw)) = (server.split(), client.split());
    for i in 0..100u32 {
        cw.send(&i.to_be_bytes()).await.unwrap();
        assert_eq!(sr.next().await.unwrap().unwrap(), &i.to_be_bytes()[..]);
        sw.send(&(i * 3).to_be_bytes()).await.unwrap();
        assert_eq!(cr.next().await.unwrap().unwrap(), &(i * 3).to_be_bytes()[..]);
    }
    cw.shutdown().await.unwrap();
    assert!(sr.next().await.unwrap().is_none(), "clean EOF at a frame boundary");
}

#[tokio::test]
async fn many_frames_in_one_flush() {
    let (mut w, mut r) = a_to_b(&Limits::default()).await;
    let payloads: Vec<Vec<u8>> = (0..1000usize).map(|i| vec![i as u8; i % 300]).collect();
    for p in &payloads {
        w.push(p).unwrap();
    }
    assert_eq!(w.buffered(), payloads.iter().map(|p| 4 + p.len() + TAG_LEN).sum::<usize>());
    let read_all = async {
        for p in &payloads {
            assert_eq!(r.next().await.unwrap().unwrap(), p[..]);
        }
    };
    let (flushed, ()) = tokio::join!(w.flush(), read_all);
    flushed.unwrap();
    assert_eq!(w.buffered(), 0);
}

#[tokio::test]
async fn buffered_frames_come_without_waiting() {
    let (mut w, mut r) = a_to_b(&Limits::default()).await;
    assert!(r.next_buffered().unwrap().is_none(), "nothing read yet");
    for p in [&b"one"[..], b"two", b"three"] {
        w.push(p).unwrap();
    }
    w.flush().await.unwrap();
    // One read brings all three in (they are far below the read size).
    assert_eq!(r.next().await.unwrap().unwrap(), &b"one"[..]);
    assert_eq!(r.next_buffered().unwrap().unwrap(), &b"two"[..]);
    assert_eq!(r.next_buffered().unwrap().unwrap(), &b"three"[..]);
    assert!(r.next_buffered().unwrap().is_none());
    // A buffered frame still has its MAC checked, under the running counter.
    w.send(b"four").await.unwrap();
    assert_eq!(r.next().await.unwrap().unwrap(), &b"four"[..]);
}

#[tokio::test]
async fn large_frame_at_the_limit() {
    let limits = Limits { max_frame: 1 << 20, ..Limits::default() };
    let (mut w, mut r) = a_to_b(&limits).await;
    let big: Vec<u8> = (0..limits.max_frame).map(|i| (i % 251) as u8).collect();
    let (sent, got) = tokio::join!(w.send(&big), r.next());
    sent.unwrap();
    assert_eq!(got.unwrap().unwrap(), big[..]);
    let err = w.push(&vec![0; limits.max_frame + 1]).unwrap_err();
    assert!(matches!(err, FrameError::Oversize { size, limit } if size == limit + 1 && limit == 1 << 20));
    assert_eq!(w.buffered(), 0, "a refused payload leaves nothing behind");
}

#[tokio::test]
async fn acceptor_refuses_hello_for_another_node() {
    let (ids, _) = nodes();
    // A wants B, but the address leads to C.
    let (d, a) = handshake(&ids[0], B, &ids[2], &Limits::default()).await;
    let err = a.err().unwrap();
    assert!(matches!(err, HandshakeError::WrongDestination { to: B, me: C }), "{err}");
    assert_eq!(err.reason(), "wrong destination");
    assert_eq!(d.err().unwrap().reason(), "io");
}

#[tokio::test]
async fn dialer_rejects_unexpected_peer() {
    let (ids, dir) = nodes();
    let (mut x, y) = duplex(1 << 16);
    // C answers a hello meant for B, with a valid signature of its own.
    let fake = async {
        let hello: Hello = recv_msg(&mut x).await.unwrap();
        send_msg(&mut x, &reply_to(&ids[2], &hello).unwrap().0).await.unwrap();
        x
    };
    let limits = Limits::default();
    let (_x, res) = tokio::join!(fake, connect(y, &ids[0], B, &dir, &limits));
    let err = res.err().unwrap();
    assert!(matches!(err, HandshakeError::UnexpectedPeer { expected: B, got: C }), "{err}");
}

#[tokio::test]
async fn unknown_and_self_nodes_are_refused() {
    let (ids, dir) = nodes();
    let stranger = id(NodeId::Replica(ReplicaId(9)), 9);
    let (_, a) = handshake(&stranger, B, &ids[1], &Limits::default()).await;
    assert_eq!(a.err().unwrap().reason(), "unknown node");
    let (_, a) = handshake(&ids[1], B, &ids[1], &Limits::default()).await;
    assert_eq!(a.err().unwrap().reason(), "self connection");
    let err = connect(duplex(64).0, &ids[0], stranger.me, &dir, &Limits::default()).await.err().unwrap();
    assert!(matches!(err, HandshakeError::UnknownNode(n) if n == stranger.me));
}

#[tokio::test]
async fn dialer_claiming_another_identity_is_rejected() {
    let (ids, _) = nodes();
    let impostor = Identity { me: A, key: key(3) }; // C's key, A's name
    let (d, a) = handshake(&impostor, B, &ids[1], &Limits::default()).await;
    let err = a.err().unwrap();
    assert!(matches!(err, HandshakeError::BadSignature(A)), "{err}");
    assert_eq!(err.reason(), "bad handshake signature");
    // The dialer cannot tell until it reads: the acceptor has hung up.
    let (mut r, _w) = d.unwrap().split();
    assert!(r.next().await.unwrap().is_none());
}

#[tokio::test]
async fn acceptor_claiming_another_identity_is_rejected() {
    let (ids, _) = nodes();
    let impostor = Identity { me: B, key: key(3) };
    let (d, a) = handshake(&ids[0], B, &impostor, &Limits::default()).await;
    let err = d.err().unwrap();
    assert!(matches!(err, HandshakeError::BadSignature(B)), "{err}");
    assert_eq!(a.err().unwrap().reason(), "io");
}

#[tokio::test]
async fn tampered_frame_fails_mac() {
    for pos in [3, 5, 4 + 11 + 3] {
        let (mut w, mut r) = a_to_b(&Limits::default()).await;
        w.push(b"hello world").unwrap();
        let mut raw = w.buf.split();
        raw[pos] ^= 1; // the length (one byte shorter), a payload byte, a tag byte
        w.io.write_all(&raw).await.unwrap();
        let err = r.next().await.unwrap_err();
        assert!(matches!(err, FrameError::BadMac), "{err}");
        assert_eq!(err.reason(), "bad frame mac");
    }
}

#[tokio::test]
async fn replayed_and_reordered_frames_fail_mac() {
    let (mut w, mut r) = a_to_b(&Limits::default()).await;
    w.push(b"once").unwrap();
    let raw = w.buf.split();
    w.io.write_all(&raw).await.unwrap();
    w.io.write_all(&raw).await.unwrap();
    assert_eq!(r.next().await.unwrap().unwrap(), &b"once"[..]);
    assert_eq!(r.next().await.unwrap_err().reason(), "bad frame mac");

    let (mut w, mut r) = a_to_b(&Limits::default()).await;
    w.push(b"first").unwrap();
    let first = w.buf.split();
    w.push(b"second").unwrap();
    w.io.write_all(&[&w.buf.split()[..], &first[..]].concat()).await.unwrap();
    assert!(matches!(r.next().await, Err(FrameError::BadMac)));
}

#[tokio::test]
async fn oversize_or_undersize_length_is_refused_before_reading() {
    let limits = Limits { max_frame: 1024, ..Limits::default() };
    let (mut w, mut r) = a_to_b(&limits).await;
    w.io.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let err = r.next().await.unwrap_err();
    assert!(matches!(err, FrameError::Oversize { size, limit: 1024 } if size == (1 << 30) - TAG_LEN));
    assert_eq!(err.reason(), "oversize frame");
    assert!(r.buf.capacity() < 1 << 20, "the announced size was never allocated");

    let (mut w, mut r) = a_to_b(&limits).await;
    w.io.write_all(&(TAG_LEN as u32 - 1).to_be_bytes()).await.unwrap();
    assert!(matches!(r.next().await, Err(FrameError::BadMac)), "too short to hold a tag");
}

#[tokio::test]
async fn eof_inside_a_frame_is_truncation() {
    let (mut w, mut r) = a_to_b(&Limits::default()).await;
    w.push(b"complete").unwrap();
    w.push(b"cut short").unwrap();
    let raw = w.buf.split();
    w.buf.extend_from_slice(&raw[..raw.len() - 3]);
    w.shutdown().await.unwrap();
    assert_eq!(r.next().await.unwrap().unwrap(), &b"complete"[..]);
    let err = r.next().await.unwrap_err();
    assert!(matches!(err, FrameError::Truncated));
    assert_eq!(err.reason(), "truncated frame");
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_malformed() {
    let (ids, dir) = nodes();
    let mut inputs: Vec<Vec<u8>> = vec![b"GET / HTTP/1.1\r\n\r\n".to_vec(), b"\x00\x05hello".to_vec()];
    // Pseudo-random bodies with a plausible length prefix.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in [1usize, 10, 90, 100, 200] {
        let mut input = (len as u16).to_be_bytes().to_vec();
        for _ in 0..len {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            input.push((x >> 56) as u8);
        }
        inputs.push(input);
    }
    for input in inputs {
        let (mut g, s) = duplex(4096);
        g.write_all(&input).await.unwrap();
        let err = accept(s, &ids[1], &dir, &Limits::default()).await.err().unwrap();
        assert_eq!(err.reason(), "malformed handshake", "{input:?}: {err}");
        // The dialer side parses the reply with the same code.
        let (mut g, s) = duplex(4096);
        g.write_all(&input).await.unwrap();
        let err = connect(s, &ids[0], B, &dir, &Limits::default()).await.err().unwrap();
        assert_eq!(err.reason(), "malformed handshake", "{input:?}: {err}");
    }
}

#[tokio::test(start_paused = true)]
async fn silent_peer_times_out() {
    let (ids, dir) = nodes();
    let limits = Limits::default();
    let (_silent, s) = duplex(4096);
    let err = accept(s, &ids[1], &dir, &limits).await.err().unwrap();
    assert_eq!(err.reason(), "handshake timeout");
    let (_silent, s) = duplex(4096);
    let err = connect(s, &ids[0], B, &dir, &limits).await.err().unwrap();
    assert!(matches!(err, HandshakeError::Timeout));
}

#[tokio::test]
async fn frame_reflected_back_to_its_sender_fails_mac() {
    let (ids, _) = nodes();
    let (d, a) = handshake(&ids[0], B, &ids[1], &Limits::default()).await;
    let ((mut dr, mut dw), (_ar, mut aw)) = (d.unwrap().split(), a.unwrap().1.split());
    // Same counter (0) in both directions: only the per-direction keys tell the frames apart.
    dw.push(b"to B").unwrap();
    aw.io.write_all(&dw.buf.split()).await.unwrap();
    assert!(matches!(dr.next().await, Err(FrameError::BadMac)));
}

#[tokio::test]
async fn low_order_ephemeral_key_is_refused() {
    let (ids, dir) = nodes();
    let (mut x, y) = duplex(4096);
    // The identity point: the shared secret would be all zeros whatever the acceptor's key.
    let hello = Hello { version: VERSION, from: A, to: B, ephemeral: [0; 32], nonce: [0; 32] };
    send_msg(&mut x, &hello).await.unwrap();
    let err = accept(y, &ids[1], &dir, &Limits::default()).await.err().unwrap();
    assert!(matches!(err, HandshakeError::NonContributory), "{err}");
}

//! Calibration benchmark for the simulator's CPU cost model.
//!
//! Measures, through the real [`Ed25519Crypto`] provider, the operations whose
//! cost `quorate_sim::cpu::CostModel` charges: Ed25519 sign/verify, HMAC-SHA256
//! MACs, SHA-256 digests, and wire encode/decode. The results and how they map
//! to the model are in `docs/calibration.md`.
//!
//! Run: `cargo bench -p quorate-core --bench crypto -- --measurement-time 2 --warm-up-time 1`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quorate_core::crypto::{Crypto, Ed25519Crypto};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::wire;
use quorate_core::Bytes;

/// Deterministic, non-constant payload of `len` bytes (constant data could in
/// principle hit fast paths nobody sees in practice).
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
}

fn providers() -> Vec<Ed25519Crypto> {
    let nodes: Vec<NodeId> = vec![ReplicaId(0).into(), ReplicaId(1).into(), ClientId(7).into()];
    Ed25519Crypto::deterministic(42, &nodes)
}

fn signatures(c: &mut Criterion) {
    let ks = providers();
    let msg = payload(64);
    let sig = ks[0].sign(&msg);
    let signer: NodeId = ReplicaId(0).into();
    assert!(ks[1].verify(signer, &msg, &sig));

    let mut g = c.benchmark_group("ed25519");
    g.bench_function("sign/64", |b| b.iter(|| ks[0].sign(black_box(&msg))));
    g.bench_function("verify/64", |b| b.iter(|| ks[1].verify(black_box(signer), black_box(&msg), black_box(&sig))));
    // What the runtime's receiving tasks do with the signatures of many requests at once.
    let msgs: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 64]).collect();
    let sigs: Vec<_> = msgs.iter().map(|m| ks[0].sign(m)).collect();
    let items: Vec<(NodeId, &[u8], &quorate_core::crypto::Signature)> =
        msgs.iter().zip(&sigs).map(|(m, s)| (signer, m.as_slice(), s)).collect();
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("verify_batch/64x64", |b| {
        b.iter(|| assert!(ks[1].verify_batch(black_box(&items), rand::rngs::OsRng)))
    });
    g.finish();
}

fn macs(c: &mut Criterion) {
    let ks = providers();
    let peer: NodeId = ReplicaId(1).into();
    let mut g = c.benchmark_group("hmac_sha256");
    // 64 KiB is beyond the brief's 64 B / 1 KiB points: it gives the per-byte
    // slope of the cost model the same way as for digests.
    for len in [64usize, 1024, 64 * 1024] {
        let data = payload(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("mac", len), &data, |b, d| b.iter(|| ks[0].mac(black_box(peer), d)));
    }
    g.finish();
}

fn digests(c: &mut Criterion) {
    let ks = providers();
    let mut g = c.benchmark_group("sha256");
    for len in [64usize, 1024, 64 * 1024] {
        let data = payload(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("digest", len), &data, |b, d| b.iter(|| ks[0].digest(d)));
    }
    g.finish();
}

fn wire_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    let value = payload(1024);
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("encode/1024", |b| b.iter(|| wire::encode(black_box(&value))));
    // `Vec<u8>` decodes element by element (postcard sees a sequence), as do
    // digests and signatures inside messages; 64 B and 64 KiB give the slope.
    for len in [64usize, 1024, 64 * 1024] {
        let value = payload(len);
        let frame = wire::encode(&value);
        assert_eq!(wire::decode::<Vec<u8>>(&frame, wire::DEFAULT_MAX_FRAME).as_ref(), Ok(&value));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("decode_vec", len), &frame, |b, f| {
            b.iter(|| wire::decode::<Vec<u8>>(black_box(f), wire::DEFAULT_MAX_FRAME).expect("valid frame"))
        });
    }
    // `Bytes` (request operations, replies, checkpoints) decodes as one byte
    // string: a length and a copy.
    for len in [64usize, 1024, 64 * 1024] {
        let value = Bytes::from(payload(len));
        let frame = wire::encode(&value);
        assert_eq!(wire::decode::<Bytes>(&frame, wire::DEFAULT_MAX_FRAME).as_ref(), Ok(&value));
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("decode_bytes", len), &frame, |b, f| {
            b.iter(|| wire::decode::<Bytes>(black_box(f), wire::DEFAULT_MAX_FRAME).expect("valid frame"))
        });
    }
    g.finish();
}

criterion_group!(benches, signatures, macs, digests, wire_codec);
criterion_main!(benches);

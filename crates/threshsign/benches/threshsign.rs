//! CPU costs of ThreshSign, for the simulator's cost model: making a share
//! (trusted and untrusted), checking a share, a threshold signature and a
//! certificate, making a certificate, and combining t = f+1 shares.
//!
//! `cargo bench -p quorate-threshsign --bench threshsign`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use quorate_core::Digest;
use quorate_threshsign::destiny::{self, AGREEMENT, PI, TAU, VIEW_CHANGE};
use quorate_threshsign::*;
use std::time::Duration;

fn deal(f: u32) -> (BlsScheme, Vec<SoftThreshSign>, Vec<PlainSigner>) {
    let n = 2 * f + 1;
    let d = keygen_seeded(&GroupSpec { n, threshold: f + 1, instances: destiny::instances(n) }, 1).unwrap();
    let mut t = Vec::new();
    let mut p = Vec::new();
    for k in d.replicas {
        let (a, b) = k.into_parts();
        t.push(SoftThreshSign::new(a));
        p.push(PlainSigner::new(b));
    }
    (BlsScheme::new(d.public), t, p)
}

fn bench(c: &mut Criterion) {
    let h = Digest::of(b"a batch digest");
    let (scheme, mut trusted, plain) = deal(1);
    let mut g = c.benchmark_group("threshsign");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));

    let mut v = 0u64;
    g.bench_function("independent_share", |b| {
        b.iter(|| {
            v += 1;
            trusted[0].independent_share(TAU, AGREEMENT, v, &h).unwrap()
        })
    });
    g.bench_function("plain_sign", |b| b.iter(|| plain[0].sign(PI, AGREEMENT, 1, &h).unwrap()));
    let mut w = 0u64;
    g.bench_function("continuing_certificate", |b| {
        b.iter(|| {
            w += 1;
            trusted[0].continuing_certificate(TAU, VIEW_CHANGE, w, &h).unwrap()
        })
    });

    v += 1;
    let st = Statement { instance: TAU, counter: AGREEMENT, value: v, msg_hash: h };
    let shares: Vec<Share> = trusted.iter_mut().map(|t| t.independent_share(TAU, AGREEMENT, v, &h).unwrap()).collect();
    g.bench_function("verify_share", |b| b.iter(|| scheme.verify_share(&shares[0], &st).unwrap()));
    let sig = scheme.combine(&st, &shares).unwrap();
    g.bench_function("verify_threshold", |b| b.iter(|| scheme.verify_threshold(&sig, &st).unwrap()));
    let cert = trusted[1].continuing_certificate(TAU, VIEW_CHANGE, 1, &h).unwrap();
    g.bench_function("verify_certificate", |b| b.iter(|| scheme.verify_certificate(&cert, &cert.statement).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("combine");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for f in [1u32, 16, 100] {
        let (scheme, mut trusted, _) = deal(f);
        let t = (f + 1) as usize;
        let st = Statement { instance: TAU, counter: AGREEMENT, value: 1, msg_hash: h };
        let shares: Vec<Share> =
            trusted[..t].iter_mut().map(|s| s.independent_share(TAU, AGREEMENT, 1, &h).unwrap()).collect();
        // Fast path: t valid shares, interpolated and checked once.
        g.bench_with_input(BenchmarkId::new("valid", f), &shares, |b, s| b.iter(|| scheme.combine(&st, s).unwrap()));
        // Slow path: the first share is forged (another signer's, relabelled), one spare valid share.
        let mut forged = shares.clone();
        let spare = trusted[t].independent_share(TAU, AGREEMENT, 1, &h).unwrap();
        forged[0] = Share::from_parts(st, forged[0].signer, &forged[1].sig_bytes());
        forged.push(spare);
        g.bench_with_input(BenchmarkId::new("one_forged", f), &forged, |b, s| {
            b.iter(|| scheme.combine(&st, s).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("keygen");
    g.sample_size(10).warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_secs(3));
    for f in [1u32, 16] {
        let n = 2 * f + 1;
        let spec = GroupSpec { n, threshold: f + 1, instances: destiny::instances(n) };
        g.bench_with_input(BenchmarkId::new("seeded", f), &spec, |b, s| b.iter(|| keygen_seeded(s, 1).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

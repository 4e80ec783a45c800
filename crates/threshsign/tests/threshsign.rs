//! ThreshSign's guarantees with real BLS keys, checked from outside the
//! crate (public API only). The modelled stand-in has its own file.

use quorate_core::{Digest, ReplicaId};
use quorate_threshsign::destiny::{self, AGREEMENT, CHECKPOINT, PI, TAU, VIEW_CHANGE};
use quorate_threshsign::*;
use rand::{Rng, SeedableRng};

struct Group {
    public: GroupPublic,
    scheme: BlsScheme,
    trusted: Vec<SoftThreshSign>,
    plain: Vec<PlainSigner>,
}

fn group(f: u32, seed: u64) -> Group {
    let n = 2 * f + 1;
    let deal = keygen_seeded(&GroupSpec { n, threshold: f + 1, instances: destiny::instances(n) }, seed).unwrap();
    let mut trusted = Vec::new();
    let mut plain = Vec::new();
    for k in deal.replicas {
        let (t, u) = k.into_parts();
        trusted.push(SoftThreshSign::new(t));
        plain.push(PlainSigner::new(u));
    }
    Group { scheme: BlsScheme::new(deal.public.clone()), public: deal.public, trusted, plain }
}

fn h(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn st(instance: InstanceId, counter: CounterId, value: u64, msg: &str) -> Statement {
    Statement { instance, counter, value, msg_hash: h(msg) }
}

/// Shares from the given replicas on (τ, AGREEMENT, value, msg).
fn shares(g: &mut Group, who: &[usize], value: u64, msg: &str) -> Vec<Share> {
    who.iter().map(|&r| g.trusted[r].independent_share(TAU, AGREEMENT, value, &h(msg)).unwrap()).collect()
}

#[test]
fn uniqueness_second_hash_at_a_value_is_refused_and_never_certified() {
    let mut g = group(1, 1);
    let a = g.trusted[0].independent_share(TAU, AGREEMENT, 5, &h("a")).unwrap();
    assert_eq!(g.trusted[0].independent_share(TAU, AGREEMENT, 5, &h("b")), Err(Refused::ValueUsed { value: 5 }));
    // Replica 1 (correct) signs "b", replica 2 signs "a": "a" reaches t = 2, "b" cannot.
    let b1 = g.trusted[1].independent_share(TAU, AGREEMENT, 5, &h("b")).unwrap();
    let a2 = g.trusted[2].independent_share(TAU, AGREEMENT, 5, &h("a")).unwrap();
    let sb = st(TAU, AGREEMENT, 5, "b");
    let all = vec![a.clone(), b1.clone(), a2.clone()];
    assert!(matches!(g.scheme.combine(&sb, &all), Err(CombineError::NotEnoughShares { distinct: 1, needed: 2 })));
    // Relabelling replica 0's share as one on "b" does not help: the signature is on "a".
    let forged = Share::from_parts(sb, ReplicaId(0), &a.sig_bytes());
    assert_eq!(g.scheme.verify_share(&forged, &sb), Err(VerifyError::BadSignature));
    match g.scheme.combine(&sb, &[forged, b1]) {
        Err(CombineError::NotEnoughValid { valid: 1, needed: 2, rejected }) => assert_eq!(rejected, vec![ReplicaId(0)]),
        other => panic!("{other:?}"),
    }
    let sa = st(TAU, AGREEMENT, 5, "a");
    let sig = g.scheme.combine(&sa, &[a, a2]).unwrap();
    assert!(g.scheme.verify_threshold(&sig, &sa).is_ok());
    assert_eq!(g.scheme.verify_threshold(&sig, &sb), Err(VerifyError::StatementMismatch));
}

#[test]
fn same_hash_at_the_current_value_returns_the_same_share() {
    let mut g = group(1, 2);
    let a = g.trusted[0].independent_share(TAU, AGREEMENT, 3, &h("a")).unwrap();
    let again = g.trusted[0].independent_share(TAU, AGREEMENT, 3, &h("a")).unwrap();
    assert_eq!(a, again);
    // But not once the counter moved on.
    g.trusted[0].independent_share(TAU, AGREEMENT, 4, &h("b")).unwrap();
    assert_eq!(
        g.trusted[0].independent_share(TAU, AGREEMENT, 3, &h("a")),
        Err(Refused::BelowCurrent { current: 4, requested: 3 })
    );
}

#[test]
fn monotonicity() {
    let mut g = group(1, 3);
    let t = &mut g.trusted[0];
    assert_eq!(t.current_value(TAU, AGREEMENT), Ok(0));
    // Counters start at 0, and 0 is "used": the first independent value is 1 or more.
    assert_eq!(t.independent_share(TAU, AGREEMENT, 0, &h("x")), Err(Refused::ValueUsed { value: 0 }));
    t.independent_share(TAU, AGREEMENT, 10, &h("x")).unwrap();
    assert_eq!(
        t.independent_share(TAU, AGREEMENT, 9, &h("y")),
        Err(Refused::BelowCurrent { current: 10, requested: 9 })
    );
    assert_eq!(t.current_value(TAU, AGREEMENT), Ok(10), "a refusal leaves the counter alone");
    // Gaps are allowed (a skipped value is lost for good).
    t.independent_share(TAU, AGREEMENT, 12, &h("z")).unwrap();
    assert_eq!(
        t.independent_share(TAU, AGREEMENT, 11, &h("w")),
        Err(Refused::BelowCurrent { current: 12, requested: 11 })
    );
    // Packed (view, seq): a new view is above any seq of the old one.
    let v1 = counter::pack_view_seq(1, 0).unwrap();
    t.independent_share(TAU, AGREEMENT, v1, &h("nv")).unwrap();
    assert_eq!(t.current_value(TAU, AGREEMENT), Ok(v1));
}

#[test]
fn counters_and_instances_are_independent() {
    let mut g = group(1, 4);
    let t = &mut g.trusted[0];
    t.independent_share(TAU, AGREEMENT, 100, &h("a")).unwrap();
    // Other counters of the same instance, and the same counter of other instances, are untouched.
    t.independent_share(TAU, CHECKPOINT, 1, &h("a")).unwrap();
    t.continuing_certificate(TAU, VIEW_CHANGE, 1, &h("a")).unwrap();
    t.independent_share(destiny::sigma(ReplicaId(2)), AGREEMENT, 1, &h("a")).unwrap();
    assert_eq!(t.current_value(TAU, AGREEMENT), Ok(100));
    assert_eq!(t.current_value(TAU, CHECKPOINT), Ok(1));
    assert_eq!(t.current_value(TAU, VIEW_CHANGE), Ok(1));
    assert_eq!(
        t.independent_share(TAU, CounterId(destiny::COUNTERS), 1, &h("a")),
        Err(Refused::UnknownCounter { instance: TAU, counter: CounterId(destiny::COUNTERS) })
    );
    assert_eq!(
        t.independent_share(InstanceId(12345), AGREEMENT, 1, &h("a")),
        Err(Refused::UnknownInstance(InstanceId(12345)))
    );
    assert_eq!(t.independent_share(PI, AGREEMENT, 1, &h("a")), Err(Refused::NotTrusted(PI)));
    assert_eq!(t.continuing_certificate(PI, AGREEMENT, 1, &h("a")), Err(Refused::NotTrusted(PI)));
}

fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

#[test]
fn exactly_t_shares_from_any_subset_combine_to_the_same_signature() {
    for f in [1u32, 2, 3] {
        let n = (2 * f + 1) as usize;
        let t = (f + 1) as usize;
        let mut g = group(f, 5);
        let all = shares(&mut g, &(0..n).collect::<Vec<_>>(), 7, "m");
        let s = st(TAU, AGREEMENT, 7, "m");
        for sh in &all {
            assert!(g.scheme.verify_share(sh, &s).is_ok());
        }
        let mut seen = None;
        for sub in subsets(n, t) {
            let pick: Vec<Share> = sub.iter().map(|&i| all[i].clone()).collect();
            let sig = g.scheme.combine(&s, &pick).unwrap();
            assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
            // A threshold BLS signature does not depend on which t signed.
            assert_eq!(*seen.get_or_insert(sig.clone()), sig);
        }
        // More than t is fine too.
        assert!(g.scheme.combine(&s, &all).is_ok());
    }
}

#[test]
fn fewer_than_t_shares_fail_and_duplicates_do_not_count() {
    let mut g = group(2, 6); // n = 5, t = 3
    let two = shares(&mut g, &[0, 4], 1, "m");
    let s = st(TAU, AGREEMENT, 1, "m");
    assert_eq!(g.scheme.combine(&s, &two), Err(CombineError::NotEnoughShares { distinct: 2, needed: 3 }));
    let dup = vec![two[0].clone(), two[0].clone(), two[1].clone()];
    assert_eq!(g.scheme.combine(&s, &dup), Err(CombineError::NotEnoughShares { distinct: 2, needed: 3 }));
    assert_eq!(g.scheme.combine(&s, &[]), Err(CombineError::NotEnoughShares { distinct: 0, needed: 3 }));
}

#[test]
fn forged_shares_are_rejected_by_verify_and_by_combine() {
    let mut g = group(2, 7); // n = 5, t = 3
    let mut other = group(2, 8); // same shape, other keys
    let s = st(TAU, AGREEMENT, 1, "m");
    let real = shares(&mut g, &[0, 1, 2, 3], 1, "m");
    // A share made with another group's key for replica 4.
    let alien = other.trusted[4].independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap();
    assert_eq!(alien.signer, ReplicaId(4));
    assert_eq!(g.scheme.verify_share(&alien, &s), Err(VerifyError::BadSignature));
    // Replica 0's real share claimed by replica 4.
    let stolen = Share::from_parts(s, ReplicaId(4), &real[0].sig_bytes());
    assert_eq!(g.scheme.verify_share(&stolen, &s), Err(VerifyError::BadSignature));
    // Real shares on another value / hash, relabelled.
    let other_value = g.trusted[4].independent_share(TAU, AGREEMENT, 2, &h("m")).unwrap();
    let relabelled = Share::from_parts(s, ReplicaId(4), &other_value.sig_bytes());
    assert_eq!(g.scheme.verify_share(&relabelled, &s), Err(VerifyError::BadSignature));
    assert_eq!(g.scheme.verify_share(&other_value, &s), Err(VerifyError::StatementMismatch));
    let out_of_range = Share::from_parts(s, ReplicaId(99), &real[0].sig_bytes());
    assert_eq!(g.scheme.verify_share(&out_of_range, &s), Err(VerifyError::UnknownSigner(ReplicaId(99))));

    for forged in [alien, stolen, relabelled] {
        // t-1 real + forged: refused, the forger named.
        let few = vec![forged.clone(), real[0].clone(), real[1].clone()];
        match g.scheme.combine(&s, &few) {
            Err(CombineError::NotEnoughValid { valid: 2, needed: 3, rejected }) => {
                assert_eq!(rejected, vec![ReplicaId(4)])
            }
            other => panic!("{other:?}"),
        }
        // t real + forged, the forged one first (so among the first t): still a valid signature.
        let mut enough = vec![forged.clone()];
        enough.extend(real[..3].iter().cloned());
        let (sig, rejected) = g.scheme.combine_reporting(&s, &enough).unwrap();
        assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
        assert_eq!(rejected, vec![ReplicaId(4)]);
    }
    // A signer's forged share beside its real one: the real one is used.
    let fake0 = Share::from_parts(s, ReplicaId(0), &real[3].sig_bytes());
    let mix = vec![fake0, real[0].clone(), real[1].clone(), real[2].clone()];
    let (sig, rejected) = g.scheme.combine_reporting(&s, &mix).unwrap();
    assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
    assert_eq!(rejected, vec![ReplicaId(0)]);
    let _ = other.plain.len();
}

#[test]
fn shares_of_different_instances_or_counters_do_not_combine() {
    let mut g = group(1, 9);
    let hm = h("m");
    let sigma0 = destiny::sigma(ReplicaId(0));
    let a = g.trusted[0].independent_share(TAU, AGREEMENT, 3, &hm).unwrap();
    let b = g.trusted[1].independent_share(sigma0, AGREEMENT, 3, &hm).unwrap();
    let c = g.trusted[2].independent_share(TAU, CHECKPOINT, 3, &hm).unwrap();
    let s_tau = Statement { instance: TAU, counter: AGREEMENT, value: 3, msg_hash: hm };
    assert!(matches!(
        g.scheme.combine(&s_tau, &[a.clone(), b.clone(), c.clone()]),
        Err(CombineError::NotEnoughShares { distinct: 1, .. })
    ));
    // Relabelled to τ/AGREEMENT they do not verify: instance and counter are signed.
    for x in [&b, &c] {
        let r = Share::from_parts(s_tau, x.signer, &x.sig_bytes());
        assert_eq!(g.scheme.verify_share(&r, &s_tau), Err(VerifyError::BadSignature));
        assert!(g.scheme.combine(&s_tau, &[a.clone(), r]).is_err());
    }
}

#[test]
fn untrusted_pi_shares_combine_and_stay_apart_from_trusted_ones() {
    let mut g = group(2, 10);
    let s_pi = Statement { instance: PI, counter: CounterId(0), value: 42, msg_hash: h("result") };
    let pi: Vec<Share> = g.plain[1..4].iter().map(|p| p.sign(PI, CounterId(0), 42, &h("result")).unwrap()).collect();
    for sh in &pi {
        assert!(g.scheme.verify_share(sh, &s_pi).is_ok());
    }
    let sig = g.scheme.combine(&s_pi, &pi).unwrap();
    assert!(g.scheme.verify_threshold(&sig, &s_pi).is_ok());
    // Untrusted signing refuses trusted instances; a π signature relabelled as τ does not verify.
    assert_eq!(g.plain[0].sign(TAU, AGREEMENT, 42, &h("result")), Err(Refused::TrustedOnly(TAU)));
    let s_tau = Statement { instance: TAU, counter: CounterId(0), value: 42, msg_hash: h("result") };
    let relabelled = Share::from_parts(s_tau, pi[0].signer, &pi[0].sig_bytes());
    assert_eq!(g.scheme.verify_share(&relabelled, &s_tau), Err(VerifyError::BadSignature));
    let sig_tau = ThresholdSig::from_parts(s_tau, &sig.sig_bytes());
    assert_eq!(g.scheme.verify_threshold(&sig_tau, &s_tau), Err(VerifyError::BadSignature));
    // And a trusted τ share is not a π share.
    let t = g.trusted[0].independent_share(TAU, CounterId(0), 42, &h("result")).unwrap();
    let as_pi = Share::from_parts(s_pi, t.signer, &t.sig_bytes());
    assert_eq!(g.scheme.verify_share(&as_pi, &s_pi), Err(VerifyError::BadSignature));
}

#[test]
fn continuing_certificates_verify_and_resist_tampering() {
    let mut g = group(1, 11);
    let t = &mut g.trusted[1];
    t.independent_share(TAU, AGREEMENT, 7, &h("p")).unwrap();
    let cert = t.continuing_certificate(TAU, AGREEMENT, 7, &h("vc")).unwrap();
    let cs = cert.statement;
    assert_eq!((cs.signer, cs.old_value, cs.new_value), (ReplicaId(1), 7, 7));
    assert!(g.scheme.verify_certificate(&cert, &cs).is_ok());
    // ">=": equal is fine, moving up is fine, down is refused.
    let up = t.continuing_certificate(TAU, AGREEMENT, 9, &h("vc2")).unwrap();
    assert_eq!((up.statement.old_value, up.statement.new_value), (7, 9));
    assert!(g.scheme.verify_certificate(&up, &up.statement).is_ok());
    assert_eq!(
        t.continuing_certificate(TAU, AGREEMENT, 8, &h("x")),
        Err(Refused::BelowCurrent { current: 9, requested: 8 })
    );
    // A value reached by a certificate is not free for an independent share.
    assert_eq!(t.independent_share(TAU, AGREEMENT, 9, &h("vc2")), Err(Refused::ValueUsed { value: 9 }));
    assert!(t.independent_share(TAU, AGREEMENT, 10, &h("p2")).is_ok());

    let tampered = [
        CertStatement { signer: ReplicaId(0), ..cs },
        CertStatement { instance: destiny::sigma(ReplicaId(0)), ..cs },
        CertStatement { counter: CHECKPOINT, ..cs },
        CertStatement { old_value: 6, ..cs },
        CertStatement { new_value: 8, ..cs },
        CertStatement { msg_hash: h("other"), ..cs },
    ];
    for bad in tampered {
        let c = Cert::from_parts(bad, cert.sig_bytes());
        assert_eq!(g.scheme.verify_certificate(&c, &bad), Err(VerifyError::BadSignature), "{bad:?}");
        assert_eq!(g.scheme.verify_certificate(&cert, &bad), Err(VerifyError::StatementMismatch));
    }
    let mut sig = cert.sig_bytes();
    sig[10] ^= 1;
    assert_eq!(g.scheme.verify_certificate(&Cert::from_parts(cs, sig), &cs), Err(VerifyError::BadSignature));
    let unknown = CertStatement { signer: ReplicaId(3), ..cs };
    assert_eq!(
        g.scheme.verify_certificate(&Cert::from_parts(unknown, cert.sig_bytes()), &unknown),
        Err(VerifyError::UnknownSigner(ReplicaId(3)))
    );
    let pi = CertStatement { instance: PI, ..cs };
    assert_eq!(
        g.scheme.verify_certificate(&Cert::from_parts(pi, cert.sig_bytes()), &pi),
        Err(VerifyError::UnknownInstance(PI))
    );
}

#[test]
fn seeded_keygen_is_deterministic() {
    let mut a = group(2, 42);
    let mut b = group(2, 42);
    let mut c = group(2, 43);
    assert_eq!(a.public.to_bytes(), b.public.to_bytes());
    assert_eq!(a.public.fingerprint(), b.public.fingerprint());
    assert_ne!(a.public.fingerprint(), c.public.fingerprint());
    let sa = a.trusted[3].independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap();
    let sb = b.trusted[3].independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap();
    let sc = c.trusted[3].independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap();
    assert_eq!(sa.to_bytes(), sb.to_bytes());
    assert_ne!(sa.to_bytes(), sc.to_bytes());
    let ca = a.trusted[0].continuing_certificate(TAU, VIEW_CHANGE, 1, &h("m")).unwrap();
    let cb = b.trusted[0].continuing_certificate(TAU, VIEW_CHANGE, 1, &h("m")).unwrap();
    assert_eq!(ca, cb);
    assert!(a.public.check_key_shares());
}

#[test]
fn keygen_refuses_bad_specs() {
    let inst = destiny::instances(3);
    let spec = |n, threshold, instances: Vec<InstanceSpec>| GroupSpec { n, threshold, instances };
    assert_eq!(keygen_seeded(&spec(0, 1, inst.clone()), 1).unwrap_err(), KeygenError::BadSize(0));
    assert_eq!(
        keygen_seeded(&spec(3, 0, inst.clone()), 1).unwrap_err(),
        KeygenError::BadThreshold { threshold: 0, n: 3 }
    );
    assert_eq!(
        keygen_seeded(&spec(3, 4, inst.clone()), 1).unwrap_err(),
        KeygenError::BadThreshold { threshold: 4, n: 3 }
    );
    let mut dup = inst.clone();
    dup.push(inst[0]);
    assert_eq!(keygen_seeded(&spec(3, 2, dup), 1).unwrap_err(), KeygenError::DuplicateInstance(inst[0].id));
    let none = vec![InstanceSpec { id: TAU, trust: Trust::Trusted, counters: 0 }];
    assert_eq!(keygen_seeded(&spec(3, 2, none), 1).unwrap_err(), KeygenError::NoCounters(TAU));
    let many = vec![InstanceSpec { id: TAU, trust: Trust::Trusted, counters: dealer::MAX_COUNTERS + 1 }];
    assert_eq!(keygen_seeded(&spec(3, 2, many), 1).unwrap_err(), KeygenError::NoCounters(TAU));
}

#[test]
fn a_single_replica_group_works() {
    let mut g = group(0, 12); // n = 1, t = 1
    let s = st(TAU, AGREEMENT, 1, "m");
    let sh = shares(&mut g, &[0], 1, "m");
    let sig = g.scheme.combine(&s, &sh).unwrap();
    assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
}

#[test]
fn wire_round_trips() {
    let mut g = group(1, 13);
    let s = st(TAU, AGREEMENT, 1, "m");
    let sh = shares(&mut g, &[0, 1], 1, "m");
    let sig = g.scheme.combine(&s, &sh).unwrap();
    let cert = g.trusted[2].continuing_certificate(TAU, VIEW_CHANGE, 3, &h("vc")).unwrap();
    assert_eq!(Share::from_bytes(&sh[0].to_bytes()).unwrap(), sh[0]);
    assert_eq!(ThresholdSig::from_bytes(&sig.to_bytes()).unwrap(), sig);
    assert_eq!(Cert::from_bytes(&cert.to_bytes()).unwrap(), cert);
    let public = GroupPublic::from_bytes(&g.public.to_bytes()).unwrap();
    assert_eq!(public, g.public);
    assert!(BlsScheme::new(public.clone()).verify_threshold(&sig, &s).is_ok());
    // Wire sizes stay small (BLS12-381 G2 compressed: 96 bytes).
    assert!(sh[0].to_bytes().len() <= 96 + 60, "{}", sh[0].to_bytes().len());
    assert!(cert.to_bytes().len() <= 64 + 80, "{}", cert.to_bytes().len());
}

#[test]
fn wire_encoding_is_unchanged() {
    // Pinned from before signatures became opaque bytes (blsttc's own
    // encoding of the point): same keys, same bytes on the wire.
    let n = 3;
    let deal = keygen_seeded(&GroupSpec { n, threshold: 2, instances: destiny::instances(n) }, 1).unwrap();
    let mut t: Vec<SoftThreshSign> = deal.replicas.into_iter().map(|k| SoftThreshSign::new(k.into_parts().0)).collect();
    let v = counter::pack_view_seq(3, 1000).unwrap();
    let hx = Digest::of(b"x");
    let sh: Vec<Share> = t.iter_mut().map(|s| s.independent_share(TAU, AGREEMENT, v, &hx).unwrap()).collect();
    let s = Statement { instance: TAU, counter: AGREEMENT, value: v, msg_hash: hx };
    let sig = BlsScheme::new(deal.public).combine(&s, &sh).unwrap();
    let c = t[2].continuing_certificate(TAU, VIEW_CHANGE, v, &hx).unwrap();
    let hex: String = sh[2].to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "808080800800e887808080602d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a488102a8830b157e\
         2532f41ee09fe67dede7f4e45fc3d916890e148b5d3a5466ec202599b8c8e56d22badc6d026322c2f20e5e07113701ae168a\
         c119ad2ebb0077daa30781a71e2257edf446d1e9c67cc81bf97c85d967fa5f8a38863cb7eda2f1411c"
    );
    assert_eq!((sh[2].to_bytes().len(), sig.to_bytes().len(), c.to_bytes().len()), (141, 140, 110));
}

#[test]
fn secret_key_files_round_trip() {
    let spec = GroupSpec { n: 3, threshold: 2, instances: destiny::instances(3) };
    let deal = keygen_seeded(&spec, 14).unwrap();
    let mut subsystems = Vec::new();
    let mut signers = Vec::new();
    for k in deal.replicas {
        let (t, u) = k.into_parts();
        subsystems.push(SoftThreshSign::new(TrustedKeys::from_secret_bytes(&t.to_secret_bytes()).unwrap()));
        signers.push(PlainSigner::new(UntrustedKeys::from_secret_bytes(&u.to_secret_bytes()).unwrap()));
    }
    let scheme = BlsScheme::new(deal.public.clone());
    let s = st(TAU, AGREEMENT, 1, "m");
    let sh: Vec<Share> =
        subsystems[..2].iter_mut().map(|t| t.independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap()).collect();
    assert!(scheme.verify_threshold(&scheme.combine(&s, &sh).unwrap(), &s).is_ok());
    let c = subsystems[0].continuing_certificate(TAU, VIEW_CHANGE, 1, &h("m")).unwrap();
    assert!(scheme.verify_certificate(&c, &c.statement).is_ok());
    let p = signers[2].sign(PI, CounterId(0), 1, &h("m")).unwrap();
    assert!(scheme.verify_share(&p, &p.statement).is_ok());
    assert!(TrustedKeys::from_secret_bytes(&[1, 2, 3]).is_err());
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let mut g = group(1, 15);
    let s = st(TAU, AGREEMENT, 1, "m");
    let sh = shares(&mut g, &[0, 1], 1, "m");
    let sig = g.scheme.combine(&s, &sh).unwrap();
    let cert = g.trusted[2].continuing_certificate(TAU, VIEW_CHANGE, 3, &h("vc")).unwrap();
    let encodings = [sh[0].to_bytes(), sig.to_bytes(), cert.to_bytes()];
    let _ = &encodings;
    let public = g.public.to_bytes();

    // Every truncation, and trailing garbage, with each type's own decoder.
    type Check = fn(&[u8]) -> bool;
    let decoders: [Check; 3] =
        [|b| Share::from_bytes(b).is_err(), |b| ThresholdSig::from_bytes(b).is_err(), |b| Cert::from_bytes(b).is_err()];
    for (e, fails) in encodings.iter().zip(decoders) {
        for cut in 0..e.len() {
            assert!(fails(&e[..cut]), "cut at {cut}");
        }
        let mut long = e.clone();
        long.push(0);
        assert!(fails(&long));
        assert!(!fails(e));
    }
    // The signature bytes are opaque on the wire: bytes that are not a point
    // decode, and fail at verification and combination, without a panic.
    let enc = sh[0].to_bytes();
    let point_at = enc.len() - 96;
    let mut bad = enc.clone();
    bad[point_at..].fill(0xff);
    let not_a_point = Share::from_bytes(&bad).unwrap();
    assert_eq!(g.scheme.verify_share(&not_a_point, &s), Err(VerifyError::BadSignature));
    for junk in [[0xff; 96], [0; 96], [0x11; 96], [0xc0; 96]] {
        let share = Share::from_parts(s, ReplicaId(0), &junk);
        assert_eq!(g.scheme.verify_share(&share, &s), Err(VerifyError::BadSignature));
        let sig = ThresholdSig::from_parts(s, &junk);
        assert_eq!(g.scheme.verify_threshold(&sig, &s), Err(VerifyError::BadSignature));
        // In combination: first among t (fast path fails), and with no spare.
        match g.scheme.combine(&s, &[share.clone(), sh[1].clone()]) {
            Err(CombineError::NotEnoughValid { valid: 1, needed: 2, rejected }) => {
                assert_eq!(rejected, vec![ReplicaId(0)])
            }
            other => panic!("{other:?}"),
        }
    }
    // The identity point (0xc0 then zeros) decodes but is no signature.
    let mut identity = [0u8; 96];
    identity[0] = 0xc0;
    assert_eq!(
        g.scheme.verify_share(&Share::from_parts(s, ReplicaId(0), &identity), &s),
        Err(VerifyError::BadSignature)
    );
    // A spare valid share rescues a combination with a bad point in it.
    let spare = g.trusted[2].independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap();
    let (sig2, rejected) = g.scheme.combine_reporting(&s, &[not_a_point, sh[1].clone(), spare]).unwrap();
    assert_eq!(sig2, sig);
    assert_eq!(rejected, vec![ReplicaId(0)]);
    // Random single-byte flips anywhere: decode fails or yields something that does not verify.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for _ in 0..300 {
        let mut e = enc.clone();
        let i = rng.gen_range(0..e.len());
        e[i] ^= 1 << rng.gen_range(0..8);
        if let Ok(x) = Share::from_bytes(&e) {
            assert!(g.scheme.verify_share(&x, &s).is_err());
        }
    }
    // Random garbage of random lengths.
    for _ in 0..2000 {
        let len = rng.gen_range(0..300);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = Share::from_bytes(&junk);
        let _ = ThresholdSig::from_bytes(&junk);
        let _ = Cert::from_bytes(&junk);
        let _ = GroupPublic::from_bytes(&junk);
        let _ = TrustedKeys::from_secret_bytes(&junk);
    }
    for cut in (0..public.len()).step_by(7) {
        assert!(GroupPublic::from_bytes(&public[..cut]).is_err());
    }
}

#[test]
fn debug_output_does_not_leak_keys() {
    let spec = GroupSpec { n: 3, threshold: 2, instances: destiny::instances(3) };
    let deal = keygen_seeded(&spec, 16).unwrap();
    let dbg = format!("{:?}", deal);
    let (t, u) = keygen_seeded(&spec, 16).unwrap().replicas.into_iter().next().unwrap().into_parts();
    let secret = t.to_secret_bytes();
    let untrusted_secret = u.to_secret_bytes();
    let sub = SoftThreshSign::new(t);
    let all = format!(
        "{dbg} {:?} {:?} {:?}",
        sub,
        u,
        PlainSigner::new(UntrustedKeys::from_secret_bytes(&untrusted_secret).unwrap())
    );
    // No 8-byte window of either secret encoding (as hex or as decimal list) shows up.
    for w in secret.windows(8).chain(untrusted_secret.windows(8)) {
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!all.contains(&hex));
        assert!(!all.contains(&format!("{w:?}").trim_matches(['[', ']']).to_string()));
    }
    assert!(all.contains("SoftThreshSign(ReplicaId(0)"), "{all}");
}

#[test]
fn random_mixes_of_valid_and_forged_shares_combine_exactly_when_t_are_valid() {
    use rand::seq::SliceRandom;
    let mut g = group(3, 17); // n = 7, t = 4
    let s = st(TAU, AGREEMENT, 1, "m");
    let real = shares(&mut g, &[0, 1, 2, 3, 4, 5, 6], 1, "m");
    let wrong = g.trusted[0].independent_share(TAU, AGREEMENT, 2, &h("m")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..40 {
        // Each replica: absent, valid, or forged (another statement's signature under its name).
        let mut offered = Vec::new();
        let mut valid = 0;
        for (r, share) in real.iter().enumerate() {
            match rng.gen_range(0..3) {
                0 => {}
                1 => {
                    offered.push(share.clone());
                    valid += 1;
                }
                _ => offered.push(Share::from_parts(s, ReplicaId(r as u32), &wrong.sig_bytes())),
            }
        }
        offered.shuffle(&mut rng);
        match g.scheme.combine(&s, &offered) {
            Ok(sig) => {
                assert!(valid >= 4);
                assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
            }
            Err(e) => assert!(valid < 4, "{e:?} with {valid} valid"),
        }
    }
}

#[test]
fn the_trait_is_object_safe_and_the_subsystem_is_send() {
    fn send<T: Send>(_: &T) {}
    let g = group(1, 18);
    let mut boxed: Vec<Box<dyn ThreshSign + Send>> =
        g.trusted.into_iter().map(|t| Box::new(t) as Box<dyn ThreshSign + Send>).collect();
    send(&boxed);
    assert_eq!(boxed[2].replica(), ReplicaId(2));
    assert!(boxed[2].independent_share(TAU, AGREEMENT, 1, &h("m")).is_ok());
}

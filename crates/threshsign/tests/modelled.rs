//! The simulator's stand-in: the same guarantees as the BLS tests, through
//! trait objects, and the modelled costs it reports.

use quorate_core::crypto::Mac;
use quorate_core::{Crypto, Digest, ModelledOp, NodeId, ReplicaId, Signature};
use quorate_threshsign::destiny::{self, AGREEMENT, CHECKPOINT, PI, TAU, VIEW_CHANGE};
use quorate_threshsign::*;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};

/// A `Crypto` that records what it is charged for.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<ModelledOp>>,
}

impl Recorder {
    fn take(&self) -> Vec<ModelledOp> {
        std::mem::take(&mut *self.ops.lock().unwrap())
    }
}

impl Crypto for Recorder {
    fn me(&self) -> NodeId {
        ReplicaId(0).into()
    }
    fn digest(&self, data: &[u8]) -> Digest {
        Digest::of(data)
    }
    fn sign(&self, _: &[u8]) -> Signature {
        Signature(Vec::new())
    }
    fn verify(&self, _: NodeId, _: &[u8], _: &Signature) -> bool {
        false
    }
    fn mac(&self, _: NodeId, _: &[u8]) -> Mac {
        Mac([0; 32])
    }
    fn verify_mac(&self, _: NodeId, _: &[u8], _: &Mac) -> bool {
        false
    }
    fn charge(&self, op: ModelledOp) {
        self.ops.lock().unwrap().push(op);
    }
}

struct Group {
    scheme: Arc<dyn Scheme>,
    trusted: Vec<Box<dyn ThreshSign + Send>>,
    plain: Vec<Box<dyn PlainSign + Send>>,
    rec: Arc<Recorder>,
}

fn spec(f: u32) -> GroupSpec {
    let n = 2 * f + 1;
    GroupSpec { n, threshold: f + 1, instances: destiny::instances(n) }
}

fn group(f: u32) -> Group {
    let rec = Arc::new(Recorder::default());
    let spec = spec(f);
    let mut trusted = Vec::new();
    let mut plain = Vec::new();
    for r in 0..spec.n {
        let p = Provision::modelled(ReplicaId(r), &spec, rec.clone()).unwrap();
        assert_eq!(p.replica(), ReplicaId(r));
        trusted.push(p.trusted);
        plain.push(p.plain);
    }
    let scheme: Arc<dyn Scheme> = Arc::new(ModelledScheme::new(&spec, rec.clone()).unwrap());
    rec.take();
    Group { scheme, trusted, plain, rec }
}

fn h(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn st(instance: InstanceId, counter: CounterId, value: u64, msg: &str) -> Statement {
    Statement { instance, counter, value, msg_hash: h(msg) }
}

fn shares(g: &mut Group, who: &[usize], value: u64, msg: &str) -> Vec<Share> {
    who.iter().map(|&r| g.trusted[r].independent_share(TAU, AGREEMENT, value, &h(msg)).unwrap()).collect()
}

fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

#[test]
fn counter_rules_are_soft_thresh_signs_exactly() {
    // The same random requests to a BLS subsystem and a modelled one give
    // the same answers (statements, signers, refusals).
    let sp = spec(1);
    let (t, _) = keygen_seeded(&sp, 1).unwrap().replicas.into_iter().next().unwrap().into_parts();
    let mut soft: Box<dyn ThreshSign + Send> = Box::new(SoftThreshSign::new(t));
    let mut modelled = Provision::modelled(ReplicaId(0), &sp, Arc::new(Recorder::default())).unwrap().trusted;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let instances = [TAU, PI, destiny::sigma(ReplicaId(1)), InstanceId(77)];
    for _ in 0..400 {
        let inst = instances[rng.gen_range(0..instances.len())];
        let ctr = CounterId(rng.gen_range(0..4));
        let value = rng.gen_range(0..12u64);
        let msg = h(["a", "b"][rng.gen_range(0..2)]);
        if rng.gen_bool(0.75) {
            let a = soft.independent_share(inst, ctr, value, &msg).map(|s| (s.statement, s.signer));
            let b = modelled.independent_share(inst, ctr, value, &msg).map(|s| (s.statement, s.signer));
            assert_eq!(a, b);
        } else {
            let a = soft.continuing_certificate(inst, ctr, value, &msg).map(|c| c.statement);
            let b = modelled.continuing_certificate(inst, ctr, value, &msg).map(|c| c.statement);
            assert_eq!(a, b);
        }
        assert_eq!(soft.current_value(inst, ctr), modelled.current_value(inst, ctr));
    }
}

#[test]
fn uniqueness_monotonicity_and_retries() {
    let mut g = group(1);
    let t = &mut g.trusted[0];
    assert_eq!(t.independent_share(TAU, AGREEMENT, 0, &h("x")), Err(Refused::ValueUsed { value: 0 }));
    let a = t.independent_share(TAU, AGREEMENT, 5, &h("a")).unwrap();
    assert_eq!(t.independent_share(TAU, AGREEMENT, 5, &h("b")), Err(Refused::ValueUsed { value: 5 }));
    assert_eq!(t.independent_share(TAU, AGREEMENT, 5, &h("a")).unwrap(), a, "a retry gets the same share");
    assert_eq!(
        t.independent_share(TAU, AGREEMENT, 4, &h("c")),
        Err(Refused::BelowCurrent { current: 5, requested: 4 })
    );
    t.continuing_certificate(TAU, AGREEMENT, 7, &h("vc")).unwrap();
    assert_eq!(t.independent_share(TAU, AGREEMENT, 7, &h("vc")), Err(Refused::ValueUsed { value: 7 }));
    assert_eq!(t.current_value(TAU, AGREEMENT), Ok(7));
    assert_eq!(t.independent_share(PI, AGREEMENT, 1, &h("a")), Err(Refused::NotTrusted(PI)));
    assert_eq!(
        t.independent_share(TAU, CounterId(destiny::COUNTERS), 1, &h("a")),
        Err(Refused::UnknownCounter { instance: TAU, counter: CounterId(destiny::COUNTERS) })
    );
}

#[test]
fn exactly_t_shares_from_any_subset_combine_to_the_same_signature() {
    for f in [1u32, 2, 3] {
        let n = (2 * f + 1) as usize;
        let t = (f + 1) as usize;
        let mut g = group(f);
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
            assert_eq!(*seen.get_or_insert(sig.clone()), sig);
        }
        assert!(g.scheme.combine(&s, &all).is_ok());
        assert_eq!((g.scheme.n(), g.scheme.threshold()), (n, t));
    }
}

#[test]
fn fewer_than_t_shares_fail_and_duplicates_do_not_count() {
    let mut g = group(2);
    let two = shares(&mut g, &[0, 4], 1, "m");
    let s = st(TAU, AGREEMENT, 1, "m");
    assert_eq!(g.scheme.combine(&s, &two), Err(CombineError::NotEnoughShares { distinct: 2, needed: 3 }));
    let dup = vec![two[0].clone(), two[0].clone(), two[1].clone()];
    assert_eq!(g.scheme.combine(&s, &dup), Err(CombineError::NotEnoughShares { distinct: 2, needed: 3 }));
    assert_eq!(g.scheme.combine(&s, &[]), Err(CombineError::NotEnoughShares { distinct: 0, needed: 3 }));
    let other = st(InstanceId(999), AGREEMENT, 1, "m");
    assert_eq!(g.scheme.combine(&other, &two), Err(CombineError::UnknownInstance(InstanceId(999))));
}

#[test]
fn forged_shares_are_rejected_and_reported() {
    let mut g = group(2); // n = 5, t = 3
    let s = st(TAU, AGREEMENT, 1, "m");
    let real = shares(&mut g, &[0, 1, 2, 3], 1, "m");
    let stolen = Share::from_parts(s, ReplicaId(4), &real[0].sig_bytes());
    assert_eq!(g.scheme.verify_share(&stolen, &s), Err(VerifyError::BadSignature));
    let other_value = g.trusted[4].independent_share(TAU, AGREEMENT, 2, &h("m")).unwrap();
    assert_eq!(g.scheme.verify_share(&other_value, &s), Err(VerifyError::StatementMismatch));
    let relabelled = Share::from_parts(s, ReplicaId(4), &other_value.sig_bytes());
    assert_eq!(g.scheme.verify_share(&relabelled, &s), Err(VerifyError::BadSignature));
    let garbage = Share::from_parts(s, ReplicaId(4), &[0x5a; BLS_SIG_BYTES]);
    assert_eq!(g.scheme.verify_share(&garbage, &s), Err(VerifyError::BadSignature));
    // The right tag with a non-zero pad is not the share either.
    let mut padded = real[0].sig_bytes();
    padded[95] = 1;
    assert_eq!(g.scheme.verify_share(&Share::from_parts(s, ReplicaId(0), &padded), &s), Err(VerifyError::BadSignature));
    let out_of_range = Share::from_parts(s, ReplicaId(99), &real[0].sig_bytes());
    assert_eq!(g.scheme.verify_share(&out_of_range, &s), Err(VerifyError::UnknownSigner(ReplicaId(99))));

    for forged in [stolen, relabelled, garbage] {
        let few = vec![forged.clone(), real[0].clone(), real[1].clone()];
        match g.scheme.combine(&s, &few) {
            Err(CombineError::NotEnoughValid { valid: 2, needed: 3, rejected }) => {
                assert_eq!(rejected, vec![ReplicaId(4)])
            }
            other => panic!("{other:?}"),
        }
        let mut enough = vec![forged.clone()];
        enough.extend(real[..3].iter().cloned());
        let (sig, rejected) = g.scheme.combine_reporting(&s, &enough).unwrap();
        assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
        assert_eq!(rejected, vec![ReplicaId(4)]);
    }
    let fake0 = Share::from_parts(s, ReplicaId(0), &real[3].sig_bytes());
    let mix = vec![fake0, real[0].clone(), real[1].clone(), real[2].clone()];
    let (sig, rejected) = g.scheme.combine_reporting(&s, &mix).unwrap();
    assert!(g.scheme.verify_threshold(&sig, &s).is_ok());
    assert_eq!(rejected, vec![ReplicaId(0)]);
    // Forged threshold signatures.
    let forged_sig = ThresholdSig::from_parts(s, &real[0].sig_bytes());
    assert_eq!(g.scheme.verify_threshold(&forged_sig, &s), Err(VerifyError::BadSignature));
    assert_eq!(g.scheme.verify_threshold(&sig, &st(TAU, AGREEMENT, 2, "m")), Err(VerifyError::StatementMismatch));
}

#[test]
fn instances_counters_and_trust_stay_apart() {
    let mut g = group(2);
    let hm = h("m");
    let s_tau = Statement { instance: TAU, counter: AGREEMENT, value: 3, msg_hash: hm };
    let a = g.trusted[0].independent_share(TAU, AGREEMENT, 3, &hm).unwrap();
    let b = g.trusted[1].independent_share(destiny::sigma(ReplicaId(0)), AGREEMENT, 3, &hm).unwrap();
    let c = g.trusted[2].independent_share(TAU, CHECKPOINT, 3, &hm).unwrap();
    assert!(matches!(
        g.scheme.combine(&s_tau, &[a.clone(), b.clone(), c.clone()]),
        Err(CombineError::NotEnoughShares { distinct: 1, .. })
    ));
    for x in [&b, &c] {
        let r = Share::from_parts(s_tau, x.signer, &x.sig_bytes());
        assert_eq!(g.scheme.verify_share(&r, &s_tau), Err(VerifyError::BadSignature));
    }
    // π: untrusted shares combine, and never pass as trusted ones or back.
    let s_pi = Statement { instance: PI, counter: CounterId(0), value: 42, msg_hash: h("result") };
    let pi: Vec<Share> = g.plain[1..4].iter().map(|p| p.sign(PI, CounterId(0), 42, &h("result")).unwrap()).collect();
    assert_eq!(pi[0].signer, g.plain[1].replica());
    let sig = g.scheme.combine(&s_pi, &pi).unwrap();
    assert!(g.scheme.verify_threshold(&sig, &s_pi).is_ok());
    assert_eq!(g.plain[0].sign(TAU, AGREEMENT, 42, &h("result")), Err(Refused::TrustedOnly(TAU)));
    assert_eq!(g.plain[0].sign(InstanceId(5555), AGREEMENT, 1, &hm), Err(Refused::UnknownInstance(InstanceId(5555))));
    let s_tau0 = Statement { instance: TAU, counter: CounterId(0), value: 42, msg_hash: h("result") };
    let relabelled = Share::from_parts(s_tau0, pi[0].signer, &pi[0].sig_bytes());
    assert_eq!(g.scheme.verify_share(&relabelled, &s_tau0), Err(VerifyError::BadSignature));
    let sig_tau = ThresholdSig::from_parts(s_tau0, &sig.sig_bytes());
    assert_eq!(g.scheme.verify_threshold(&sig_tau, &s_tau0), Err(VerifyError::BadSignature));
    let t = g.trusted[0].independent_share(TAU, CounterId(0), 42, &h("result")).unwrap();
    let as_pi = Share::from_parts(s_pi, t.signer, &t.sig_bytes());
    assert_eq!(g.scheme.verify_share(&as_pi, &s_pi), Err(VerifyError::BadSignature));
}

#[test]
fn certificates_verify_and_resist_tampering() {
    let mut g = group(1);
    let t = &mut g.trusted[1];
    t.independent_share(TAU, AGREEMENT, 7, &h("p")).unwrap();
    let cert = t.continuing_certificate(TAU, AGREEMENT, 7, &h("vc")).unwrap();
    let cs = cert.statement;
    assert_eq!((cs.signer, cs.old_value, cs.new_value), (ReplicaId(1), 7, 7));
    assert!(g.scheme.verify_certificate(&cert, &cs).is_ok());
    let up = t.continuing_certificate(TAU, AGREEMENT, 9, &h("vc2")).unwrap();
    assert_eq!((up.statement.old_value, up.statement.new_value), (7, 9));
    assert!(g.scheme.verify_certificate(&up, &up.statement).is_ok());
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
    let down = CertStatement { old_value: 9, new_value: 8, ..cs };
    assert_eq!(
        g.scheme.verify_certificate(&Cert::from_parts(down, cert.sig_bytes()), &down),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn every_operation_charges_its_modelled_cost() {
    use ModelledOp::*;
    let mut g = group(2); // t = 3
    let s = st(TAU, AGREEMENT, 1, "m");
    let real = shares(&mut g, &[0, 1, 2, 3], 1, "m");
    assert_eq!(g.rec.take(), vec![ThresholdShare; 4]);
    // A refusal is the counter check alone: nothing charged.
    assert!(g.trusted[0].independent_share(TAU, AGREEMENT, 1, &h("other")).is_err());
    assert_eq!(g.rec.take(), vec![]);
    let cert = g.trusted[0].continuing_certificate(TAU, VIEW_CHANGE, 1, &h("vc")).unwrap();
    g.plain[0].sign(PI, CounterId(0), 1, &h("r")).unwrap();
    assert_eq!(g.rec.take(), vec![CertSign, ThresholdShare]);

    g.scheme.verify_share(&real[0], &s).unwrap();
    let sig = g.scheme.combine(&s, &real).unwrap();
    g.scheme.verify_threshold(&sig, &s).unwrap();
    g.scheme.verify_certificate(&cert, &cert.statement).unwrap();
    assert_eq!(g.rec.take(), vec![ThresholdVerify, ThresholdCombine { shares: 3 }, ThresholdVerify, CertVerify]);
    // Failing checks cost the same; mismatched statements and too few shares cost nothing.
    let forged = Share::from_parts(s, ReplicaId(4), &real[0].sig_bytes());
    assert!(g.scheme.verify_share(&forged, &s).is_err());
    assert!(g.scheme.verify_share(&real[0], &st(TAU, AGREEMENT, 2, "m")).is_err());
    assert!(g.scheme.combine(&s, &real[..2]).is_err());
    assert_eq!(g.rec.take(), vec![ThresholdVerify]);
    // Slow path: the fast attempt, then one check per share looked at (all five).
    let mut offered = vec![forged];
    offered.extend(real.iter().cloned());
    g.scheme.combine(&s, &offered).unwrap();
    let mut expected = vec![ThresholdCombine { shares: 3 }];
    expected.extend([ThresholdVerify; 5]);
    assert_eq!(g.rec.take(), expected);
}

#[test]
fn random_mixes_of_valid_and_forged_shares_combine_exactly_when_t_are_valid() {
    use rand::seq::SliceRandom;
    let mut g = group(3); // n = 7, t = 4
    let s = st(TAU, AGREEMENT, 1, "m");
    let real = shares(&mut g, &[0, 1, 2, 3, 4, 5, 6], 1, "m");
    let wrong = g.trusted[0].independent_share(TAU, AGREEMENT, 2, &h("m")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
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
fn wire_sizes_match_bls() {
    let sp = spec(1);
    let deal = keygen_seeded(&sp, 1).unwrap();
    let public = deal.public.clone();
    let mut bls: Vec<Provision> =
        deal.replicas.into_iter().map(|k| Provision::bls(k, public.clone()).unwrap()).collect();
    let mut g = group(1);
    let s = st(TAU, AGREEMENT, 3, "m");
    let b: Vec<Share> =
        bls.iter_mut().map(|p| p.trusted.independent_share(TAU, AGREEMENT, 3, &h("m")).unwrap()).collect();
    let m = shares(&mut g, &[0, 1, 2], 3, "m");
    assert_eq!(b[1].to_bytes().len(), m[1].to_bytes().len());
    let (bs, ms) = (bls[0].scheme.combine(&s, &b).unwrap(), g.scheme.combine(&s, &m).unwrap());
    assert_eq!(bs.to_bytes().len(), ms.to_bytes().len());
    let bc = bls[2].trusted.continuing_certificate(TAU, VIEW_CHANGE, 4, &h("v")).unwrap();
    let mc = g.trusted[2].continuing_certificate(TAU, VIEW_CHANGE, 4, &h("v")).unwrap();
    assert_eq!(bc.to_bytes().len(), mc.to_bytes().len());
    assert_eq!(Share::from_bytes(&m[1].to_bytes()).unwrap(), m[1]);
    assert_eq!(Cert::from_bytes(&mc.to_bytes()).unwrap(), mc);
    // A modelled share is not a BLS share, nor the reverse.
    assert_eq!(bls[0].scheme.verify_share(&m[1], &s), Err(VerifyError::BadSignature));
    assert_eq!(g.scheme.verify_share(&b[1], &s), Err(VerifyError::BadSignature));
}

#[test]
fn modelled_provisions_refuse_bad_specs() {
    let rec: Arc<dyn Crypto> = Arc::new(Recorder::default());
    let bad = GroupSpec { threshold: 4, ..spec(1) };
    assert_eq!(
        Provision::modelled(ReplicaId(0), &bad, rec.clone()).unwrap_err(),
        ProvisionError::Spec(KeygenError::BadThreshold { threshold: 4, n: 3 })
    );
    assert_eq!(ModelledScheme::new(&bad, rec.clone()).unwrap_err(), KeygenError::BadThreshold { threshold: 4, n: 3 });
    assert_eq!(
        Provision::modelled(ReplicaId(3), &spec(1), rec).unwrap_err(),
        ProvisionError::UnknownReplica { replica: ReplicaId(3), n: 3 }
    );
}

#[test]
fn provisions_are_send_and_schemes_sync() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Send + Sync>(_: &T) {}
    let p = Provision::modelled(ReplicaId(1), &spec(1), Arc::new(Recorder::default())).unwrap();
    send(&p);
    sync(&p.scheme);
    let dbg = format!("{p:?}");
    assert!(dbg.contains("ReplicaId(1)") && dbg.contains("ModelledScheme"), "{dbg}");
}

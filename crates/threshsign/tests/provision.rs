//! `Provision`: one protocol-like sequence over BLS and over the modelled
//! stand-in, through the trait objects only, observed the same; and key
//! files with clear errors.

use quorate_core::crypto::Ed25519Crypto;
use quorate_core::{Crypto, Digest, NodeId, ReplicaId};
use quorate_threshsign::destiny::{self, AGREEMENT, CHECKPOINT, PI, TAU, VIEW_CHANGE};
use quorate_threshsign::*;
use std::sync::Arc;

fn h(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

/// What a protocol could observe, minus the signature bytes themselves.
fn seen<T, E: std::fmt::Debug>(r: &Result<T, E>, show: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => format!("ok {}", show(v)),
        Err(e) => format!("err {e:?}"),
    }
}

/// A Destiny-like run at f = 2 (n = 5, t = 3): slots on τ, a refused
/// equivocation, a checkpoint, a forged share at the collector, a view
/// change with certificates, a slot in the new view, and π replies checked
/// by a client.
fn run(mut ps: Vec<Provision>, client: Arc<dyn Scheme>) -> Vec<String> {
    let mut log = Vec::new();
    let n = ps[0].scheme.n();
    let t = ps[0].scheme.threshold();
    log.push(format!("n={n} t={t} sizes client n={} t={}", client.n(), client.threshold()));
    let share_str = |s: &Share| format!("{:?} by {:?}, {} bytes", s.statement, s.signer, s.to_bytes().len());
    for seq in 1..=3u64 {
        let tv = counter::pack_view_seq(0, seq).unwrap();
        let hm = h(&format!("batch {seq}"));
        let st = Statement { instance: TAU, counter: AGREEMENT, value: tv, msg_hash: hm };
        let mut shares = Vec::new();
        for p in ps.iter_mut() {
            let r = p.trusted.independent_share(TAU, AGREEMENT, tv, &hm);
            log.push(seen(&r, share_str));
            shares.extend(r.ok());
        }
        // The primary (replica 0) tries to equivocate at the same value.
        log.push(seen(&ps[0].trusted.independent_share(TAU, AGREEMENT, tv, &h("evil")), share_str));
        // Replica 4 sends the collector a share of another slot under its name.
        let forged = Share::from_parts(st, ReplicaId(4), &shares[0].sig_bytes());
        let mut offered = vec![forged.clone()];
        offered.extend(shares[..t].iter().cloned());
        let collector = &ps[(seq as usize) % n];
        for s in &offered {
            log.push(seen(&collector.scheme.verify_share(s, &st), |_| String::new()));
        }
        let combined = collector.scheme.combine_reporting(&st, &offered);
        log.push(seen(&combined, |(s, rejected)| format!("{:?} rejected {rejected:?}", s.statement)));
        log.push(seen(&collector.scheme.combine(&st, &offered[..t]), |_| String::new()));
        let (sig, _) = combined.unwrap();
        for p in &ps {
            log.push(seen(&p.scheme.verify_threshold(&sig, &st), |_| String::new()));
        }
        let other = Statement { value: tv + 1, ..st };
        log.push(seen(&ps[1].scheme.verify_threshold(&sig, &other), |_| String::new()));
        let relabelled = ThresholdSig::from_parts(other, &sig.sig_bytes());
        log.push(seen(&ps[1].scheme.verify_threshold(&relabelled, &other), |_| String::new()));
        log.push(format!("sig {} bytes", sig.to_bytes().len()));
    }
    // Checkpoint on its own counter.
    let cp: Vec<_> = ps.iter_mut().map(|p| p.trusted.independent_share(TAU, CHECKPOINT, 1, &h("state"))).collect();
    for r in &cp {
        log.push(seen(r, share_str));
    }
    let cst = Statement { instance: TAU, counter: CHECKPOINT, value: 1, msg_hash: h("state") };
    let cps: Vec<Share> = cp.into_iter().flatten().collect();
    log.push(seen(&ps[2].scheme.combine(&cst, &cps[..t]), |s| format!("{:?}", s.statement)));
    // View change: every replica certifies where its agreement counter is.
    let nv = counter::pack_view_seq(1, 0).unwrap();
    let mut certs = Vec::new();
    for p in ps.iter_mut() {
        let at = p.trusted.current_value(TAU, AGREEMENT).unwrap();
        log.push(format!("{:?} at {at}", p.replica()));
        let c = p.trusted.continuing_certificate(TAU, AGREEMENT, at, &h("view-change 1"));
        log.push(seen(&c, |c| format!("{:?}, {} bytes", c.statement, c.to_bytes().len())));
        certs.extend(c.ok());
    }
    for c in &certs {
        log.push(seen(&ps[1].scheme.verify_certificate(c, &c.statement), |_| String::new()));
        let lie =
            CertStatement { old_value: c.statement.old_value + 1, new_value: c.statement.new_value + 1, ..c.statement };
        log.push(seen(&ps[1].scheme.verify_certificate(&Cert::from_parts(lie, c.sig_bytes()), &lie), |_| {
            String::new()
        }));
    }
    // A certificate at the value it shared keeps that share (same message)
    // and nothing else; the new view signs above it.
    let last = counter::pack_view_seq(0, 3).unwrap();
    log.push(seen(&ps[0].trusted.independent_share(TAU, AGREEMENT, last, &h("batch 3")), share_str));
    log.push(seen(&ps[0].trusted.independent_share(TAU, AGREEMENT, last, &h("other")), share_str));
    log.push(seen(&ps[0].trusted.independent_share(TAU, AGREEMENT, last - 1, &h("old")), share_str));
    let nst = Statement { instance: TAU, counter: AGREEMENT, value: nv, msg_hash: h("new view") };
    let fresh: Vec<Share> =
        ps.iter_mut().filter_map(|p| p.trusted.independent_share(TAU, AGREEMENT, nv, &h("new view")).ok()).collect();
    log.push(format!("{} fresh shares", fresh.len()));
    let nsig = ps[1].scheme.combine(&nst, &fresh[1..]).unwrap();
    log.push(seen(&client.verify_threshold(&nsig, &nst), |_| String::new()));
    // π: execution replies, untrusted, checked by the client.
    let pst = Statement { instance: PI, counter: CounterId(0), value: 1, msg_hash: h("reply") };
    let replies: Vec<_> = ps.iter().map(|p| p.plain.sign(PI, CounterId(0), 1, &h("reply"))).collect();
    for r in &replies {
        log.push(seen(r, share_str));
    }
    log.push(seen(&ps[0].plain.sign(TAU, AGREEMENT, 99, &h("reply")), share_str));
    log.push(seen(&ps[0].trusted.independent_share(PI, CounterId(0), 99, &h("reply")), share_str));
    let replies: Vec<Share> = replies.into_iter().flatten().collect();
    for r in &replies {
        log.push(seen(&client.verify_share(r, &pst), |_| String::new()));
    }
    let psig = client.combine(&pst, &replies[2..]);
    log.push(seen(&psig, |s| format!("{:?}", s.statement)));
    log.push(seen(&client.verify_threshold(&psig.unwrap(), &pst), |_| String::new()));
    log.push(seen(&client.combine(&pst, &replies[..t - 1]), |_| String::new()));
    log
}

fn spec() -> GroupSpec {
    GroupSpec { n: 5, threshold: 3, instances: destiny::instances(5) }
}

#[test]
fn bls_and_modelled_provisions_look_the_same_to_a_protocol() {
    let deal = keygen_seeded(&spec(), 21).unwrap();
    let public = deal.public.clone();
    let bls: Vec<Provision> = deal.replicas.into_iter().map(|k| Provision::bls(k, public.clone()).unwrap()).collect();
    let a = run(bls, Arc::new(BlsScheme::new(public)));

    let nodes: Vec<NodeId> = (0..6).map(|r| ReplicaId(r).into()).collect();
    let cryptos = Ed25519Crypto::deterministic(1, &nodes);
    let modelled: Vec<Provision> = (0..5)
        .map(|r| Provision::modelled(ReplicaId(r), &spec(), Arc::new(cryptos[r as usize].clone())).unwrap())
        .collect();
    let client: Arc<dyn Crypto> = Arc::new(cryptos[5].clone());
    let b = run(modelled, Arc::new(ModelledScheme::new(&spec(), client).unwrap()));

    assert!(a.len() > 100, "{}", a.len());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "line {i}");
    }
    assert_eq!(a.len(), b.len());
    // The run exercised refusals, forgeries and failures, not just successes.
    for needle in ["ValueUsed", "BelowCurrent", "BadSignature", "StatementMismatch", "TrustedOnly", "NotTrusted"] {
        assert!(a.iter().any(|l| l.contains(needle)), "{needle}");
    }
    assert!(a.iter().any(|l| l.contains("rejected [ReplicaId(4)]")));
}

#[test]
fn key_files_round_trip_and_mismatches_are_clear_errors() {
    let deal = keygen_seeded(&spec(), 22).unwrap();
    let other = keygen_seeded(&spec(), 23).unwrap();
    let public = deal.public.to_bytes();
    let files: Vec<(Vec<u8>, Vec<u8>)> = deal
        .replicas
        .into_iter()
        .map(|k| {
            let (t, u) = k.into_parts();
            (t.to_secret_bytes(), u.to_secret_bytes())
        })
        .collect();
    let mut ps: Vec<Provision> = files.iter().map(|(t, u)| Provision::from_bytes(t, u, &public).unwrap()).collect();
    let st = Statement { instance: TAU, counter: AGREEMENT, value: 1, msg_hash: h("m") };
    let shares: Vec<Share> =
        ps.iter_mut().map(|p| p.trusted.independent_share(TAU, AGREEMENT, 1, &h("m")).unwrap()).collect();
    let sig = ps[4].scheme.combine(&st, &shares[2..]).unwrap();
    assert!(ps[0].scheme.verify_threshold(&sig, &st).is_ok());
    let cert = ps[3].trusted.continuing_certificate(TAU, VIEW_CHANGE, 2, &h("vc")).unwrap();
    assert!(ps[0].scheme.verify_certificate(&cert, &cert.statement).is_ok());
    let reply = ps[1].plain.sign(PI, CounterId(0), 1, &h("r")).unwrap();
    assert!(ps[0].scheme.verify_share(&reply, &reply.statement).is_ok());

    let (t0, u0) = &files[0];
    let u1 = &files[1].1;
    assert_eq!(
        Provision::from_bytes(t0, u1, &public).unwrap_err(),
        ProvisionError::ReplicaMismatch { trusted: ReplicaId(0), untrusted: ReplicaId(1) }
    );
    assert!(matches!(Provision::from_bytes(&[1, 2, 3], u0, &public), Err(ProvisionError::TrustedKeys(_))));
    assert!(matches!(Provision::from_bytes(t0, &[], &public), Err(ProvisionError::UntrustedKeys(_))));
    assert!(matches!(Provision::from_bytes(t0, u0, &public[..100]), Err(ProvisionError::Public(_))));
    // Keys of another deal (same shape) do not match this group's public keys.
    let (ot, ou) = other.replicas.into_iter().next().unwrap().into_parts();
    let (ot, ou) = (ot.to_secret_bytes(), ou.to_secret_bytes());
    assert_eq!(Provision::from_bytes(&ot, u0, &public).unwrap_err(), ProvisionError::KeyMismatch("trusted BLS"));
    assert_eq!(Provision::from_bytes(t0, &ou, &public).unwrap_err(), ProvisionError::KeyMismatch("untrusted BLS"));
    // Keys for a group of 5 against a group of 3, or with another instance table.
    let small = keygen_seeded(&GroupSpec { n: 3, threshold: 2, instances: destiny::instances(3) }, 22).unwrap();
    let (t4, u4) = &files[4];
    assert_eq!(
        Provision::from_bytes(t4, u4, &small.public.to_bytes()).unwrap_err(),
        ProvisionError::UnknownReplica { replica: ReplicaId(4), n: 3 }
    );
    let mut instances = destiny::instances(5);
    instances.pop();
    let fewer = keygen_seeded(&GroupSpec { n: 5, threshold: 3, instances }, 22).unwrap();
    assert_eq!(
        Provision::from_bytes(t0, u0, &fewer.public.to_bytes()).unwrap_err(),
        ProvisionError::InstanceMismatch("trusted")
    );
}

#[test]
fn checked_loading_names_the_wrong_replica_and_group() {
    let group = destiny::group(5, 2);
    assert_eq!(group, spec());
    let deal = keygen_seeded(&group, 24).unwrap();
    let public = deal.public.to_bytes();
    assert!(deal.public.is_for(&group));
    let mut reordered = group.clone();
    reordered.instances.reverse();
    assert!(deal.public.is_for(&reordered), "the order of the table does not matter");
    let files: Vec<(Vec<u8>, Vec<u8>)> = deal
        .replicas
        .into_iter()
        .map(|k| {
            let (t, u) = k.into_parts();
            (t.to_secret_bytes(), u.to_secret_bytes())
        })
        .collect();
    let (t1, u1) = &files[1];
    let p = Provision::from_bytes_for(ReplicaId(1), &group, t1, u1, &public).unwrap();
    assert_eq!(p.replica(), ReplicaId(1));
    // Replica 1's files loaded as replica 2's.
    assert_eq!(
        Provision::from_bytes_for(ReplicaId(2), &group, t1, u1, &public).unwrap_err(),
        ProvisionError::WrongReplica { expected: ReplicaId(2), found: ReplicaId(1) }
    );
    // A group of another threshold, size or table.
    for other in [
        GroupSpec { threshold: 2, ..group.clone() },
        destiny::group(7, 3),
        GroupSpec { instances: destiny::instances(4), ..group.clone() },
    ] {
        let e = Provision::from_bytes_for(ReplicaId(1), &other, t1, u1, &public).unwrap_err();
        assert!(matches!(e, ProvisionError::WrongGroup { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("expected n = {}", other.n)), "{e}");
        assert!(Provision::public_for(&other, &public).is_err());
    }
    assert!(matches!(Provision::public_for(&group, &public[1..]), Err(ProvisionError::Public(_))));
    assert_eq!(Provision::public_for(&group, &public).unwrap(), deal.public);
}

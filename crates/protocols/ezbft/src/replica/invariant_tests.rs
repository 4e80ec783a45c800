//! The replica's state invariants (decision 0016) are on in this crate's
//! tests and fire: each test breaks one on purpose, as a bug would.

use super::agree::Candidate;
use super::checkpoint::Votes;
use super::durable::Record;
use super::{Out, Replica};
use crate::config::Config;
use crate::messages::{
    commit_digest, CheckpointBody, CommitProof, Frontier, InstanceId, Msg, NewOwnerBody, NewOwnerCert, OwnerChangeBody,
    Phase, Proposal, Signed, SpecReply, VoteBody,
};
use quorate_apps::kv::{KvOp, KvStore};
use quorate_core::crypto::{Digest, Ed25519Crypto};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Effect, ReplicaContext};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::{wire, Bytes};
use std::sync::Arc;

const N: usize = 4;

/// Keys of the four replicas, then of clients 1 and 2.
fn keys() -> Vec<Arc<Ed25519Crypto>> {
    let mut nodes: Vec<NodeId> = (0..N as u32).map(|i| ReplicaId(i).into()).collect();
    nodes.extend((1..=2).map(|c| NodeId::Client(ClientId(c))));
    Ed25519Crypto::deterministic(11, &nodes).into_iter().map(Arc::new).collect()
}

/// Replica `id` of four (f = 1), fresh.
fn replica(id: u32) -> Replica {
    let ctx = ReplicaContext {
        id: ReplicaId(id),
        membership: Membership::new(N, 1, FaultModel::Byzantine, N).unwrap(),
        crypto: keys()[id as usize].clone(),
        service: Box::new(KvStore::new()),
        keys: (),
    };
    Replica::new(ctx, Config::default())
}

/// Client `c`'s PUT of `key`, timestamp `t`.
fn request(c: u64, t: u64, key: &str) -> SignedRequest {
    let op = KvOp::Put { key: Bytes::copy_from_slice(key.as_bytes()), value: Bytes::from_static(b"v") };
    let req = Request { client: ClientId(c), seq: t, op: op.encode(), read_only: false };
    SignedRequest::sign(req, keys()[N + c as usize - 1].as_ref())
}

/// Slot `slot` of replica 0's space.
fn slot(slot: u64) -> InstanceId {
    InstanceId { space: ReplicaId(0), slot }
}

/// The records replica 0 writes when it orders `req` in slot 0 of its space.
fn order_records(req: SignedRequest) -> Vec<Bytes> {
    let mut r = replica(0);
    let mut out = Out::new();
    r.order(req, &mut out);
    out.drain()
        .filter_map(|e| match e {
            Effect::Persist(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Replica 0's order of `req` in slot 0, with 3f+1 SPECREPLYs for it (a
/// valid fast proposal) from replicas that took it.
fn fast_cert(req: SignedRequest) -> (Replica, Vec<SpecReply>) {
    let mut r0 = replica(0);
    let mut out = Out::new();
    r0.order(req.clone(), &mut out);
    let e = &r0.log[&slot(0)];
    let order = e.order.clone();
    let mut cert = vec![e.reply.clone().unwrap()];
    for id in 1..N as u32 {
        let mut r = replica(id);
        let mut out = Out::new();
        r.on_spec_order(ReplicaId(0), order.clone(), req.clone(), &mut out);
        cert.extend(out.drain().filter_map(|e| match e {
            Effect::Send { to: NodeId::Client(_), msg: Msg::SpecReply(reply) } => Some(*reply),
            _ => None,
        }));
    }
    assert_eq!(cert.len(), N);
    (r0, cert)
}

/// Replica `by`'s vote of `phase` for `commit` in `inst`.
fn vote(by: u32, inst: InstanceId, phase: Phase, commit: Digest) -> Signed<VoteBody> {
    Signed::sign(VoteBody { replica: ReplicaId(by), inst, phase, commit }, keys()[by as usize].as_ref())
}

/// Replica 1 holding two candidate proposals for slot 0 of space 0 (what
/// a faulty client can make): their digests.
fn two_candidates(r: &mut Replica) -> (Digest, Digest) {
    let (r0, _) = fast_cert(request(1, 1, "x"));
    let e = &r0.log[&slot(0)];
    let mut digests = Vec::new();
    for seq in [1, 2] {
        let d = commit_digest(&e.order, &[], seq);
        let c = Candidate {
            order: e.order.clone(),
            request: e.req.clone(),
            deps: Vec::new(),
            seq,
            proposal: Proposal::Fast(Vec::new()),
        };
        r.agreements.entry(slot(0)).or_default().proposals.insert(d, c);
        digests.push(d);
    }
    (digests[0], digests[1])
}

#[test]
fn invariants_are_on_in_this_crates_tests() {
    // Depends on this build's features: checked when the test compiles.
    const { assert!(quorate_core::invariant::ENABLED) };
}

#[test]
#[should_panic(
    expected = "invariant violated: ezbft: SPECORDER at slot 0 of our space after slot Some(0) (an owner's slots strictly increase)"
)]
fn a_second_order_at_one_slot_fires() {
    let mut r = replica(0);
    let mut out = Out::new();
    r.order(request(1, 1, "x"), &mut out);
    // A bug that hands out slot 0 again.
    r.spaces[0].next = 0;
    r.order(request(1, 2, "y"), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: SPECORDER at slot 0 of our space after slot Some(0)")]
fn an_order_at_a_slot_of_the_replayed_log_fires() {
    let mut r = replica(0);
    let mut out = Out::new();
    r.recover(None, order_records(request(1, 1, "x")), &mut out);
    // A bug that loses the replayed slot: it would be ordered again.
    r.spaces[0].next = 0;
    r.order(request(1, 2, "y"), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: SPECREPLY: a second, different vote in round 0")]
fn a_second_spec_reply_at_one_slot_fires() {
    let mut r = replica(0);
    let mut out = Out::new();
    r.order(request(1, 1, "x"), &mut out);
    // A bug that changes the slot's sequence number and answers again.
    r.log.get_mut(&slot(0)).unwrap().seq += 1;
    r.speculate_and_reply(slot(0), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: recovered SPECREPLY: a second, different vote in round 0")]
fn durable_records_with_two_replies_at_one_slot_fire() {
    let mut r = replica(0);
    // A bug in writing or reading the log: two orders (and replies) at slot 0.
    let mut records = order_records(request(1, 1, "x"));
    records.extend(order_records(request(1, 1, "y")));
    r.recover(None, records, &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: ACCEPT: a second, different vote in round (0, Accept)")]
fn a_second_accept_at_one_slot_fires() {
    let mut r = replica(1);
    let mut out = Out::new();
    let (d1, d2) = two_candidates(&mut r);
    r.accept(slot(0), d1, &mut out);
    // A bug that forgets which proposal the slot accepted.
    r.agreements.get_mut(&slot(0)).unwrap().accepted = None;
    r.accept(slot(0), d2, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: CONFIRM: a second, different vote in round (0, Confirm)")]
fn a_second_confirm_at_one_slot_fires() {
    let mut r = replica(1);
    let mut out = Out::new();
    let (d1, d2) = two_candidates(&mut r);
    for d in [d1, d2] {
        let a = r.agreements.get_mut(&slot(0)).unwrap();
        // A bug that forgets the CONFIRM sent and the ACCEPTs counted.
        a.prepared = None;
        a.accepts = [0, 2, 3].into_iter().map(|by| (ReplicaId(by), vote(by, slot(0), Phase::Accept, d))).collect();
        r.try_agree(slot(0), &mut out);
    }
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: recovered ACCEPT: a second, different vote in round (0, Accept)")]
fn durable_records_with_two_accepts_at_one_slot_fire() {
    let mut r = replica(1);
    // A bug in writing or reading the log: two ACCEPTs at slot 0.
    let records = ["x", "y"]
        .map(|key| {
            let req = request(1, 1, key);
            let (_, cert) = fast_cert(req.clone());
            Bytes::from(wire::encode(&Record::Accept { request: req, proposal: Proposal::Fast(cert) }))
        })
        .to_vec();
    r.recover(None, records, &mut Out::new());
}

#[test]
#[should_panic(
    expected = "invariant violated: ezbft: recovered CONFIRM: a second, different vote in round (0, Confirm)"
)]
fn durable_records_with_two_confirms_at_one_slot_fire() {
    let mut r = replica(1);
    // A bug in writing or reading the log: two prepared certificates (CONFIRMs) at slot 0.
    let records = ["x", "y"]
        .map(|key| {
            let req = request(1, 1, key);
            let (_, cert) = fast_cert(req.clone());
            let b = &cert[0].reply.body;
            let d = commit_digest(&cert[0].order, &b.deps, b.seq);
            let votes = (0..3).map(|by| vote(by, slot(0), Phase::Accept, d)).collect();
            let proof = CommitProof { proposal: Proposal::Fast(cert), votes };
            Bytes::from(wire::encode(&Record::Prepared { request: req, proof }))
        })
        .to_vec();
    r.recover(None, records, &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: commit proof of InstanceId")]
fn a_commit_proof_counting_a_replica_twice_fires() {
    let mut r = replica(1);
    let (d1, _) = two_candidates(&mut r);
    // A bug that files replica 2's ACCEPT under every replica.
    let a = r.agreements.get_mut(&slot(0)).unwrap();
    a.accepts = (0..N as u32).map(|k| (ReplicaId(k), vote(2, slot(0), Phase::Accept, d1))).collect();
    r.try_agree(slot(0), &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: NEWOWNER vote: a second, different vote in round")]
fn a_second_new_owner_vote_fires() {
    let mut r = replica(2);
    let mut out = Out::new();
    let space = ReplicaId(0);
    r.cast_new_owner_vote(space, 1, Phase::Accept, Digest::of(b"one"), &mut out);
    // A bug that votes again in the round, for another NEWOWNER.
    r.cast_new_owner_vote(space, 1, Phase::Accept, Digest::of(b"two"), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: recovered NEWOWNER vote: a second, different vote in round")]
fn durable_records_with_two_new_owner_votes_fire() {
    let mut r = replica(2);
    // A bug in writing or reading the log: two ACCEPTs of NEWOWNERs for owner number 1 of space 0.
    let records = [1, 3]
        .map(|by| {
            let body = NewOwnerBody { space: ReplicaId(0), owner: 1, proofs: Vec::new() };
            let cert = NewOwnerCert { new_owner: Signed::sign(body, keys()[by].as_ref()), votes: Vec::new() };
            Bytes::from(wire::encode(&Record::NewOwnerVote { phase: Phase::Accept, cert: Box::new(cert) }))
        })
        .to_vec();
    r.recover(None, records, &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: own NEWOWNER for space ReplicaId(0), owner 1, holds two views")]
fn an_own_new_owner_with_two_views_of_one_replica_fires() {
    // Replica 1 is the new owner of space 0 (owner number 1).
    let mut r = replica(1);
    let mut out = Out::new();
    let space = ReplicaId(0);
    for from in [2, 3] {
        r.on_start_owner_change(ReplicaId(from), space, 0, &mut out);
    }
    assert_eq!(r.spaces[0].changing, Some(1), "committed to the change; our own view is in");
    // A bug that files our own view under replica 2 as well.
    let own = r.spaces[0].reports[&ReplicaId(1)].clone();
    r.spaces[0].reports.insert(ReplicaId(2), own);
    let body =
        OwnerChangeBody { replica: ReplicaId(3), space, owner: 1, stable: None, history: Vec::new(), prepared: None };
    let view = Signed::sign(body, keys()[3].as_ref());
    r.on_owner_change(ReplicaId(3), view, &mut out);
}

#[test]
#[should_panic(
    expected = "invariant violated: ezbft: InstanceId { space: ReplicaId(0), slot: 0 } executes finally twice"
)]
fn a_command_executed_finally_twice_fires() {
    let mut r = replica(0);
    let mut out = Out::new();
    r.order(request(1, 1, "x"), &mut out);
    let e = &r.log[&slot(0)];
    let (order, req, deps, seq) = (e.order.clone(), e.req.clone(), e.deps.clone(), e.seq);
    r.commit(order, req, deps, seq, false, None, &mut out);
    assert!(r.log[&slot(0)].executed, "committed and executed finally");
    // A bug that puts the executed command back among the waiting ones.
    r.waiting.insert(slot(0));
    r.execute_ready(vec![slot(0)], &mut out);
}

#[test]
#[should_panic(
    expected = "invariant violated: ezbft: InstanceId { space: ReplicaId(0), slot: 1 } executes finally before its dependency InstanceId { space: ReplicaId(0), slot: 0 }"
)]
fn a_command_executed_before_its_dependency_fires() {
    let mut r = replica(0);
    let mut out = Out::new();
    // Two interfering commands (one key): slot 1 depends on slot 0.
    r.order(request(1, 1, "x"), &mut out);
    r.order(request(2, 1, "x"), &mut out);
    assert_eq!(r.log[&slot(1)].deps, vec![slot(0)]);
    r.defer_execution = true;
    for s in [0, 1] {
        let e = &r.log[&slot(s)];
        let (order, req, deps, seq) = (e.order.clone(), e.req.clone(), e.deps.clone(), e.seq);
        r.commit(order, req, deps, seq, false, None, &mut out);
    }
    r.defer_execution = false;
    // A bug in the execution order that leaves out the dependency.
    r.run_final(&[vec![slot(1)]], &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: ezbft: stable checkpoint at InstanceId")]
fn a_stable_checkpoint_counting_a_replica_twice_fires() {
    let mut r = replica(0);
    let barrier = slot(5);
    let frontier = Frontier { below: vec![0; N], history: vec![Digest::default(); N], extra: Vec::new() };
    let cp = r.exec.checkpoint();
    let body =
        |by: u32| CheckpointBody { replica: ReplicaId(by), barrier, state: cp.digest, frontier: frontier.digest() };
    let own = Signed::sign(body(0), keys()[0].as_ref());
    // A bug that files our own CHECKPOINT under replica 1 as well.
    let votes = [(ReplicaId(0), own.clone()), (ReplicaId(1), own)].into_iter().collect();
    r.votes.insert(barrier, Votes { mine: Some((frontier.clone(), cp.clone())), votes });
    let v2 = Signed::sign(body(2), keys()[2].as_ref());
    r.on_checkpoint(ReplicaId(2), v2, &mut Out::new());
}

/// Found by the NEWOWNER vote invariant: reopening a space cleared every
/// NEWOWNER round, so a replica that had accepted a NEWOWNER replacing the
/// new epoch's owner accepted a faulty new owner's second one as well.
#[test]
fn reopening_a_space_keeps_our_new_owner_votes_for_later_owners() {
    let mut r = replica(2);
    let mut out = Out::new();
    let space = ReplicaId(0);
    // Space 0 frozen by the change to owner number 1 (epoch 0).
    r.spaces[0].frozen = Some(0);
    r.spaces[0].owner = 1;
    // NEWOWNERs replacing owner number 4 (the epoch space 0 reopens in) by 5,
    // signed by 5's replica (1) over two sets of views.
    let new_owner = |views: [u32; 3]| {
        let proofs = views
            .map(|by| {
                let body = OwnerChangeBody {
                    replica: ReplicaId(by),
                    space,
                    owner: 5,
                    stable: None,
                    history: Vec::new(),
                    prepared: None,
                };
                Signed::sign(body, keys()[by as usize].as_ref())
            })
            .to_vec();
        Signed::sign(NewOwnerBody { space, owner: 5, proofs }, keys()[1].as_ref())
    };
    r.on_new_owner(ReplicaId(1), new_owner([0, 1, 2]), &mut out);
    let accepted = r.spaces[0].rounds[&5].accepted;
    assert!(accepted.is_some());
    // Replica 0 reopens its space in epoch 4 (as when its SPECORDER of owner 4 arrives).
    assert!(r.reopen(space, 4, &mut out));
    // The faulty new owner's second NEWOWNER: no second ACCEPT (the invariant would fire).
    r.on_new_owner(ReplicaId(1), new_owner([1, 2, 3]), &mut out);
    assert_eq!(r.spaces[0].rounds[&5].accepted, accepted);
}

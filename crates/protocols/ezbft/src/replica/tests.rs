//! Replica machines driven message by message: the commit agreement holds
//! against a faulty client with two valid proposals for one slot and a
//! faulty replica that votes for both.

use super::Replica;
use crate::config::Config;
use crate::messages::{canonical_deps, CommitBody, InstanceId, Msg, Phase, Signed, SpecReply, SpecReplyBody, VoteBody};
use crate::Ezbft;
use quorate_apps::kv::KvOp;
use quorate_core::crypto::Digest;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::request::SignedRequest;
use quorate_core::Bytes;
use quorate_sim::testnet::{Builder, TestNet};
use std::collections::BTreeSet;

const N: usize = 4;

type Net = TestNet<Ezbft>;

/// Four replicas (f = 1) and two clients over the shared test network;
/// messages to a replica marked `byzantine` are only captured (the test
/// speaks for it).
fn builder() -> Builder<Ezbft> {
    TestNet::builder(1).clients(2).requests(Msg::Request)
}

/// Replica `r`'s machine.
fn replica(net: &Net, r: u32) -> &Replica {
    net.machine::<Replica>(ReplicaId(r))
}

fn request(net: &Net, c: u64, seq: u64, key: &str) -> SignedRequest {
    let op = KvOp::Put { key: Bytes::copy_from_slice(key.as_bytes()), value: Bytes::from_static(b"v") };
    net.request(ClientId(c), seq, op.encode())
}

/// The SPECREPLYs client `c` received.
fn replies(net: &Net, c: u64) -> Vec<SpecReply> {
    net.to_client(ClientId(c))
        .filter_map(|(_, m)| match m {
            Msg::SpecReply(r) => Some((**r).clone()),
            _ => None,
        })
        .collect()
}

/// Client 1's COMMIT over `cert`, signed.
fn commit(net: &Net, cert: &[SpecReply]) -> Signed<CommitBody> {
    let deps: BTreeSet<InstanceId> = cert.iter().flat_map(|r| r.reply.body.deps.iter().copied()).collect();
    let seq = cert.iter().map(|r| r.reply.body.seq).max().unwrap();
    let body = CommitBody { client: ClientId(1), inst: cert[0].reply.body.inst, deps: canonical_deps(deps), seq };
    Signed::sign(body, net.key(ClientId(1)))
}

#[test]
fn two_valid_proposals_for_one_slot_commit_one_of_them_everywhere() {
    let byz = ReplicaId(3);
    let mut net = builder().byzantine(byz).build();
    let request = request(&net, 1, 1, "x");
    net.message(ReplicaId(0), NodeId::Client(ClientId(1)), Msg::Request(request.clone()));
    // The Byzantine replica's order arrives too, so that it holds the slot like the others.
    net.deliver_all();
    let replies = replies(&net, 1);
    assert_eq!(replies.len(), 3, "the three correct replicas reply");
    let inst = replies[0].reply.body.inst;

    // The faulty replica signs a reply with a made-up dependency: with the
    // correct replies it makes a second valid certificate whose union differs.
    let honest = &replies[0];
    let extra = InstanceId { space: byz, slot: 7 };
    let mut deps = honest.reply.body.deps.clone();
    deps.push(extra);
    let body =
        SpecReplyBody { replica: byz, deps: canonical_deps(deps.into_iter().collect()), ..honest.reply.body.clone() };
    let twisted = SpecReply { reply: Signed::sign(body, net.key(byz)), ..honest.clone() };
    let by = |r: u32| replies.iter().find(|x| x.reply.body.replica == ReplicaId(r)).unwrap().clone();
    let cert_a = vec![by(0), by(1), by(2)];
    let cert_b = vec![by(0), by(2), twisted];
    let (commit_a, commit_b) = (commit(&net, &cert_a), commit(&net, &cert_b));
    assert_ne!(commit_a.body.deps, commit_b.body.deps, "two proposals with different dependencies");

    // The client sends proposal A to r0 and r1, proposal B to r2.
    let client = NodeId::Client(ClientId(1));
    let a = Msg::Commit { commit: commit_a, request: request.clone(), cert: cert_a };
    let b = Msg::Commit { commit: commit_b, request: request.clone(), cert: cert_b };
    net.message(ReplicaId(0), client, a.clone());
    net.message(ReplicaId(1), client, a);
    net.message(ReplicaId(2), client, b);
    // The faulty replica accepts both: A towards r0 and r1, B towards r2.
    let digest_of = |net: &Net, r: u32| replica(net, r).agreements.get(&inst).and_then(|a| a.accepted);
    let (da, db) = (digest_of(&net, 0).unwrap(), digest_of(&net, 2).unwrap());
    assert_ne!(da, db);
    let vote =
        |net: &Net, phase, commit: Digest| Signed::sign(VoteBody { replica: byz, inst, phase, commit }, net.key(byz));
    for (to, d) in [(0, da), (1, da), (2, db)] {
        let v = vote(&net, Phase::Accept, d);
        net.message(ReplicaId(to), byz, Msg::Accept(Box::new(v)));
    }
    net.deliver_all();
    // And confirms A everywhere, to help it along.
    for to in 0..3 {
        let v = vote(&net, Phase::Confirm, da);
        net.message(ReplicaId(to), byz, Msg::Confirm(Box::new(v)));
    }
    net.deliver_all();

    let committed: Vec<Vec<InstanceId>> = (0..3)
        .map(|r| {
            let e = replica(&net, r).log.get(&inst).expect("slot known");
            assert!(e.committed, "replica {r} committed the slot");
            e.deps.clone()
        })
        .collect();
    assert!(committed.iter().all(|d| *d == committed[0]), "one commit everywhere: {committed:?}");
    assert!(!committed[0].contains(&extra), "the proposal 2f+1 replicas accepted wins");
}

#[test]
fn a_vote_signed_by_another_replica_or_repeated_differently_is_refused() {
    let mut net = builder().build();
    let inst = InstanceId { space: ReplicaId(0), slot: 0 };
    let body =
        |replica: u32, commit: Digest| VoteBody { replica: ReplicaId(replica), inst, phase: Phase::Accept, commit };
    // Claims to be replica 2, sent by replica 1.
    let forged = Signed::sign(body(2, Digest::of(b"a")), net.key(ReplicaId(1)));
    net.message(ReplicaId(0), ReplicaId(1), Msg::Accept(Box::new(forged)));
    assert!(replica(&net, 0).agreements.get(&inst).is_none_or(|a| a.accepts.is_empty()));
    // Signed by replica 1 with replica 2's key.
    let bad = Signed::sign(body(1, Digest::of(b"a")), net.key(ReplicaId(2)));
    net.message(ReplicaId(0), ReplicaId(1), Msg::Accept(Box::new(bad)));
    assert!(replica(&net, 0).agreements.get(&inst).is_none_or(|a| a.accepts.is_empty()));
    // A second, different ACCEPT from one replica does not replace its first.
    let first = Signed::sign(body(1, Digest::of(b"a")), net.key(ReplicaId(1)));
    let second = Signed::sign(body(1, Digest::of(b"b")), net.key(ReplicaId(1)));
    net.message(ReplicaId(0), ReplicaId(1), Msg::Accept(Box::new(first)));
    net.message(ReplicaId(0), ReplicaId(1), Msg::Accept(Box::new(second)));
    let a = &replica(&net, 0).agreements[&inst];
    assert_eq!(a.accepts.len(), 1);
    assert_eq!(a.accepts[&ReplicaId(1)].body.commit, Digest::of(b"a"));
}

/// A frozen space drops the slots after its end in its own epoch only: a
/// later epoch (its replica reopened it while we could not follow) holds
/// commands that dependencies must wait for.
#[test]
fn a_frozen_space_voids_its_own_epoch_only() {
    let net = builder().build();
    let mut replica = Replica::new(net.context(ReplicaId(0)), Config::default());
    let space = &mut replica.spaces[1];
    space.frozen = Some(7);
    let next_epoch = crate::messages::epoch_base(ReplicaId(1), 1 + N as u64, N);
    assert!(!space.void(6));
    assert!(space.void(7) && space.void(next_epoch - 1));
    assert!(!space.void(next_epoch) && !space.void(next_epoch + 5));
}

/// The owner number that opened a slot's epoch is the inverse of the epoch's base.
#[test]
fn a_slots_epoch_owner_inverts_the_epoch_base() {
    for k in [0u64, 1, 3, 40] {
        let owner = 1 + k * N as u64;
        let base = crate::messages::epoch_base(ReplicaId(1), owner, N);
        assert_eq!(crate::messages::epoch_owner_of_slot(ReplicaId(1), base, N), owner);
        assert_eq!(crate::messages::epoch_owner_of_slot(ReplicaId(1), base + 9, N), owner);
    }
}

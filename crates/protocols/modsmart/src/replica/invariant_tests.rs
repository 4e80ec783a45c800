//! The replica's state invariants (decision 0016) are on in this crate's
//! tests and fire: each test breaks one on purpose, as a bug would.

use super::{Instance, Replica};
use crate::messages::{Batch, Decision};
use crate::Config;
use quorate_apps::kv::KvStore;
use quorate_core::crypto::{Ed25519Crypto, Signature};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Input, Outbox, ReplicaContext, ReplicaMachine};
use quorate_core::membership::FaultModel;
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::sync::Arc;

fn replica(model: FaultModel) -> (Replica, Arc<Ed25519Crypto>) {
    let n = if model == FaultModel::Byzantine { 4 } else { 3 };
    let mut ids: Vec<NodeId> = (0..n as u32).map(|i| ReplicaId(i).into()).collect();
    ids.push(NodeId::Client(ClientId(1)));
    let keys: Vec<Arc<Ed25519Crypto>> = Ed25519Crypto::deterministic(7, &ids).into_iter().map(Arc::new).collect();
    let ctx = ReplicaContext {
        id: ReplicaId(1),
        membership: quorate_core::membership_for::<crate::ModSmart>(n, 1, model).unwrap(),
        crypto: keys[1].clone(),
        service: Box::new(KvStore::new()),
        keys: (),
    };
    let mut r = Replica::new(ctx, Config::default());
    r.handle(Time(1), Input::Start, &mut Outbox::new());
    (r, keys[n].clone())
}

fn batch(client: &Ed25519Crypto, seq: u64) -> Batch {
    let req = Request { client: ClientId(1), seq, op: Bytes::from_static(b"op"), read_only: false };
    Batch { timestamp: 1, requests: vec![SignedRequest::sign(req, client)] }
}

#[test]
fn invariants_are_on_in_this_crates_tests() {
    // Depends on this build's features: checked when the test compiles.
    const { assert!(quorate_core::invariant::ENABLED) };
}

#[test]
#[should_panic(expected = "invariant violated: mod-smart: WRITE: a second, different vote")]
fn a_second_write_in_one_epoch_fires() {
    let (mut r, client) = replica(FaultModel::Byzantine);
    let mut out = Outbox::new();
    r.accept_value(Time(2), batch(&client, 1), &mut out);
    // A bug that forgets this epoch's WRITE.
    r.inst.written = None;
    r.accept_value(Time(2), batch(&client, 2), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: mod-smart: ACCEPT: a second, different vote")]
fn a_second_accept_in_one_epoch_fires() {
    // Crash mode: the leader's value is accepted directly.
    let (mut r, client) = replica(FaultModel::Crash);
    let mut out = Outbox::new();
    r.accept_value(Time(2), batch(&client, 1), &mut out);
    r.accept_value(Time(2), batch(&client, 2), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: mod-smart: decision proof of instance 0 repeats a signer")]
fn a_decision_proof_with_a_repeated_signer_fires() {
    let (mut r, client) = replica(FaultModel::Crash);
    let b = batch(&client, 1);
    let v = b.digest(r.crypto.as_ref());
    r.inst.batches.insert(v, b);
    // A bug that counts replica 0's ACCEPT twice.
    r.inst.accepts.insert((1, v), vec![(ReplicaId(0), Signature(Vec::new())); 2]);
    r.inst.acceptors.insert((1, ReplicaId(0)));
    r.on_accept(Time(2), ReplicaId(2), 0, 0, v, Signature(Vec::new()), &mut Outbox::new());
}

#[test]
#[should_panic(expected = "invariant violated: mod-smart: decided instance: 0 reported where 1 was next")]
fn an_instance_decided_twice_fires() {
    let (mut r, client) = replica(FaultModel::Crash);
    let d = Decision { instance: 0, epoch: 1, batch: batch(&client, 1), proof: Vec::new() };
    let mut out = Outbox::new();
    r.decide(Time(2), d.clone(), &mut out);
    assert_eq!(r.next(), 1);
    // A bug that moves the replica back to the instance it executed.
    r.inst = Instance::new(0, 1);
    r.decide(Time(2), d, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: mod-smart: installs regency 0 in 0")]
fn installing_a_regency_again_fires() {
    let (mut r, _) = replica(FaultModel::Byzantine);
    r.install(Time(2), 0, &mut Outbox::new());
}

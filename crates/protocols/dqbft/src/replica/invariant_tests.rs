//! The replica's state invariants (decision 0016) are on in this crate's
//! tests and fire: each test breaks one on purpose, as a bug would. The
//! replica's code is the same in both flavors; these run DQPBFT's.

use super::{Out, Replica};
use crate::config::Config;
use crate::flavor::Pbft;
use crate::messages::{DBatch, DRef, OBatch, State};
use quorate_apps::kv::KvStore;
use quorate_core::crypto::Ed25519Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Input, ReplicaContext, ReplicaMachine};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use quorate_engines::instance::Instance;
use std::sync::Arc;

const N: usize = 4;

/// Replica `id` of four (f = 1), started; and client 1's key.
fn replica(id: u32) -> (Replica<Pbft>, Arc<Ed25519Crypto>) {
    let mut nodes: Vec<NodeId> = (0..N as u32).map(|i| ReplicaId(i).into()).collect();
    nodes.push(NodeId::Client(ClientId(1)));
    let keys: Vec<Arc<Ed25519Crypto>> = Ed25519Crypto::deterministic(5, &nodes).into_iter().map(Arc::new).collect();
    let ctx = ReplicaContext {
        id: ReplicaId(id),
        membership: Membership::new(N, 1, FaultModel::Byzantine, N).unwrap(),
        crypto: keys[id as usize].clone(),
        service: Box::new(KvStore::new()),
        keys: (),
    };
    let mut r = Replica::<Pbft>::new(ctx, Config::default());
    r.handle(Time(1), Input::Start, &mut Out::new());
    (r, keys[N].clone())
}

fn d_slot(instance: u32, seq: u64) -> DRef {
    DRef { instance, seq }
}

/// O-slots 1 to `k` executed, each empty.
fn execute_empty_o_slots(r: &mut Replica<Pbft>, k: u64, out: &mut Out<Pbft>) {
    for seq in 1..=k {
        r.olog.insert(seq, None);
    }
    r.execute_ready(Time(1), out);
    assert_eq!(r.executed_o, k);
}

#[test]
fn invariants_are_on_in_this_crates_tests() {
    // Depends on this build's features: checked when the test compiles.
    const { assert!(quorate_core::invariant::ENABLED) };
}

#[test]
#[should_panic(expected = "invariant violated: dqbft: proposes client requests in D-instance 0, not its own")]
fn client_requests_proposed_in_another_instance_fire() {
    // Replica 1 coordinates D-instance 1 only (every D-view is 0).
    let (mut r, client) = replica(1);
    let req = Request { client: ClientId(1), seq: 1, op: Bytes::from_static(b"op"), read_only: false };
    let batch = DBatch { timestamp: 1, requests: Arc::from([SignedRequest::sign(req, client.as_ref())]) };
    // A bug that proposes a request in another replica's instance.
    r.propose_d(Time(1), 0, batch, &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: dqbft: own O-batch names a D-slot twice or slot 0")]
fn an_o_batch_naming_a_d_slot_twice_fires() {
    // Replica 0 is the O-primary of O-view 0.
    let (mut r, _) = replica(0);
    assert!(r.o.is_primary());
    // A bug that queues one D-slot twice.
    r.to_order.extend([d_slot(1, 1), d_slot(1, 1)]);
    r.maybe_order(Time(1), &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: dqbft: executed O-slot: 1 reported where 2 was next")]
fn an_o_slot_executed_twice_fires() {
    let (mut r, _) = replica(1);
    let mut out = Out::new();
    execute_empty_o_slots(&mut r, 1, &mut out);
    // A bug that moves execution back behind O-slot 1.
    r.executed_o = 0;
    execute_empty_o_slots(&mut r, 1, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: dqbft: executed O-slot: 3 reported where 1 was next")]
fn an_o_slot_executed_past_a_gap_fires() {
    let (mut r, _) = replica(1);
    // A bug that skips O-slots 1 and 2 without a state install.
    r.executed_o = 2;
    r.olog.insert(3, None);
    r.execute_ready(Time(1), &mut Out::new());
}

#[test]
#[should_panic(expected = "invariant violated: dqbft: executed O-slot: moved back from 3 to 2")]
fn a_state_install_behind_executed_o_slots_fires() {
    let (mut r, _) = replica(1);
    let mut out = Out::new();
    execute_empty_o_slots(&mut r, 2, &mut out);
    let state = State { exec: r.exec.checkpoint(), progress: r.progress.clone() };
    let digest = state.digest();
    // A bug that installs the state of O-checkpoint 1 (on_state_reply drops it).
    r.install(Time(1), 1, digest, state, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: dqbft: D-slot DRef { instance: 2, seq: 1 } executed twice")]
fn a_d_slot_executed_twice_fires() {
    let (mut r, _) = replica(1);
    let mut out = Out::new();
    // O-slot 1 names D-slot (2, 1), a no-op.
    r.payloads[2].insert(1, None);
    r.olog.insert(1, Some(OBatch { refs: vec![d_slot(2, 1)], assigns: Vec::new(), handovers: Vec::new() }));
    r.execute_ready(Time(1), &mut out);
    assert!(r.is_executed(d_slot(2, 1)));
    // A bug that executes it again (execution skips executed D-slots).
    r.mark_executed(d_slot(2, 1));
}

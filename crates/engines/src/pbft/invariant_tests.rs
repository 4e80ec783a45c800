//! The engine's state invariants (decision 0016) are on in this crate's
//! tests and fire: each test breaks one on purpose, as a bug would.

use super::messages::bytes;
use super::*;
use quorate_core::crypto::{Ed25519Crypto, Signature};
use quorate_core::membership::FaultModel;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct V(u64);

impl Value for V {
    fn digest(&self, crypto: &dyn Crypto) -> Digest {
        digest_encoded(b"test-value", self, crypto)
    }
}

/// Four replicas (f = 1): their keys, and replica `id`'s engine, started.
fn engine(id: u32) -> (Engine<V>, Vec<Arc<Ed25519Crypto>>) {
    let m = Membership::new(4, 1, FaultModel::Byzantine, 4).unwrap();
    let nodes: Vec<NodeId> = (0..4).map(|i| NodeId::Replica(ReplicaId(i))).collect();
    let keys: Vec<Arc<Ed25519Crypto>> = Ed25519Crypto::deterministic(3, &nodes).into_iter().map(Arc::new).collect();
    let mut e = Engine::new(ReplicaId(id), m, keys[id as usize].clone(), EngineConfig::default());
    e.start(&mut Actions::new());
    (e, keys)
}

fn digest(e: &Engine<V>, v: u64) -> Digest {
    V(v).digest(e.k.crypto.as_ref())
}

#[test]
fn invariants_are_on_in_this_crates_tests() {
    // Depends on this build's features: checked when the test compiles.
    const { assert!(quorate_core::invariant::ENABLED) };
}

#[test]
#[should_panic(
    expected = "invariant violated: pbft: PRE-PREPARE: a second, different vote in round (1, 0, PrePrepare)"
)]
fn a_second_pre_prepare_at_one_seq_fires() {
    let (mut e, _) = engine(0);
    let mut out = Actions::new();
    assert_eq!(e.propose(V(1), &mut out), Ok(1));
    // A bug that hands out sequence number 1 again.
    e.k.next_seq = 1;
    let _ = e.propose(V(2), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: pbft: PREPARE: a second, different vote in round (1, 0, Prepare)")]
fn a_second_prepare_at_one_seq_fires() {
    let (mut e, keys) = engine(1);
    let mut out = Actions::new();
    let primary = ReplicaId(0);
    for v in [1, 2] {
        // Correctly MACed PRE-PREPAREs of a primary that equivocates.
        let b = bytes::pre_prepare(e.cfg.instance, 0, 1, &digest(&e, v));
        let auth = Auth(vec![keys[0].mac(NodeId::Replica(ReplicaId(1)), &b)]);
        e.on_message(primary, PbftMsg::PrePrepare { view: 0, seq: 1, value: V(v), auth }, &AnyValue, &mut out);
        // A bug that forgets which PRE-PREPARE the slot accepted.
        e.slots.get_mut(&1).unwrap().pre_prepare = None;
    }
}

#[test]
#[should_panic(
    expected = "invariant violated: pbft: recovered PRE-PREPARE or PREPARE: a second, different vote in round (1, 0, Prepare)"
)]
fn durable_records_that_contradict_on_a_prepare_fire() {
    let (mut e, _) = engine(1);
    // A bug in writing or reading the log: two PREPAREs at (view 0, seq 1).
    let records = vec![
        Record::PrePrepared { view: 0, seq: 1, digest: digest(&e, 1), value: Some(V(1)) },
        Record::PrePrepared { view: 0, seq: 1, digest: digest(&e, 2), value: Some(V(2)) },
    ];
    e.recover(records, &mut Actions::new());
}

#[test]
#[should_panic(expected = "invariant violated: pbft: PREPARE: a second, different vote in round (1, 0, Prepare)")]
fn a_prepare_contradicting_the_replayed_log_fires() {
    let (mut e, _) = engine(1);
    let mut out = Actions::new();
    let records = vec![Record::PrePrepared { view: 0, seq: 1, digest: digest(&e, 1), value: Some(V(1)) }];
    e.recover(records, &mut out);
    // A bug that loses the replayed slot: the live PRE-PREPARE would be taken.
    e.slots.remove(&1);
    let d = digest(&e, 2);
    e.accept_pre_prepare(0, 1, d, &mut out);
}

#[test]
#[should_panic(
    expected = "invariant violated: pbft: recovered COMMIT: a second, different vote in round (1, 0, Commit)"
)]
fn durable_records_that_contradict_on_a_commit_fire() {
    let (mut e, _) = engine(1);
    let records = vec![
        Record::Prepared { view: 0, seq: 1, digest: digest(&e, 1) },
        Record::Prepared { view: 0, seq: 1, digest: digest(&e, 2) },
    ];
    e.recover(records, &mut Actions::new());
}

/// Backup 1 holds the PRE-PREPARE of V(1) at seq 1 and its own PREPARE.
fn pre_prepared_backup() -> Engine<V> {
    let (mut e, _) = engine(1);
    let d = digest(&e, 1);
    e.k.values.insert(d, V(1));
    e.accept_pre_prepare(0, 1, d, &mut Actions::new());
    e
}

#[test]
#[should_panic(expected = "invariant violated: pbft: COMMIT: a second, different vote in round (1, 0, Commit)")]
fn a_second_commit_at_one_seq_fires() {
    let mut e = pre_prepared_backup();
    let mut out = Actions::new();
    let d1 = digest(&e, 1);
    e.slots.get_mut(&1).unwrap().prepares.insert(&e.k.m, ReplicaId(2), d1);
    e.check_prepared(1, &mut out);
    assert!(e.slots[&1].sent_commit.is_some(), "prepared: COMMIT sent");
    // A bug that replaces the slot's PRE-PREPARE and forgets the COMMIT sent.
    let d2 = digest(&e, 2);
    let slot = e.slots.get_mut(&1).unwrap();
    slot.pre_prepare = Some(d2);
    slot.sent_commit = None;
    for r in 1..4 {
        slot.prepares.insert(&e.k.m, ReplicaId(r), d2);
    }
    e.check_prepared(1, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: pbft: prepared certificate of seq 1 counts a PREPARE of the primary")]
fn a_prepared_certificate_counting_the_primary_fires() {
    let mut e = pre_prepared_backup();
    // A bug that counts a PREPARE of the primary (on_prepare refuses them).
    let d1 = digest(&e, 1);
    e.slots.get_mut(&1).unwrap().prepares.insert(&e.k.m, ReplicaId(0), d1);
    e.check_prepared(1, &mut Actions::new());
}

#[test]
#[should_panic(expected = "invariant violated: pbft: decided seq: 1 reported where 2 was next")]
fn a_seq_reported_twice_fires() {
    let (mut e, _) = engine(1);
    let mut out = Actions::new();
    let d = digest(&e, 1);
    e.k.values.insert(d, V(1));
    e.decide(1, d, &mut out);
    assert_eq!(e.last_decided(), 1);
    // A bug that moves the engine back behind what it reported.
    e.k.last_decided = 0;
    e.report_decided(&mut out);
}

#[test]
#[should_panic(expected = "invariant violated: pbft: decided seq: 3 reported where 1 was next")]
fn a_seq_reported_past_a_gap_fires() {
    let (mut e, _) = engine(1);
    let d = digest(&e, 3);
    e.k.values.insert(d, V(3));
    e.slots.entry(3).or_default().decided = Some(d);
    // A bug that skips seqs 1 and 2 without a state install.
    e.k.last_decided = 2;
    e.report_decided(&mut Actions::new());
}

#[test]
#[should_panic(expected = "invariant violated: pbft: own NEW-VIEW for view 1 fails the backups' check")]
fn an_own_new_view_the_backups_refuse_fires() {
    // Replica 1 is the primary of view 1.
    let (mut e, keys) = engine(1);
    let mut out = Actions::new();
    e.start_view_change(&mut out);
    let vc = |r: u32| ViewChange {
        view: 1,
        replica: ReplicaId(r),
        stable: 0,
        checkpoints: Vec::new(),
        prepared: Vec::new(),
        pre_prepared: Vec::new(),
    };
    // A bug that keeps a VIEW-CHANGE without checking its signature.
    e.view_changes.insert(ReplicaId(2), Signed { body: vc(2), sig: Signature(vec![0; 64]) });
    let body = vc(3);
    let sig = keys[3].sign(&bytes::view_change(e.cfg.instance, &body));
    // The third VIEW-CHANGE: the new primary computes its NEW-VIEW.
    e.on_message(ReplicaId(3), PbftMsg::ViewChange(Box::new(Signed { body, sig })), &AnyValue, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: pbft: installs view 0 in view 0")]
fn installing_the_current_view_again_fires() {
    let (mut e, _) = engine(1);
    let nv = NewView { view: 0, view_changes: Vec::new(), checkpoint: (0, Digest::default()), chosen: Vec::new() };
    // A bug that installs the view it is in (on_new_view drops such NEW-VIEWs).
    e.install_new_view(Signed { body: nv, sig: Signature(Vec::new()) }, &mut Actions::new());
}

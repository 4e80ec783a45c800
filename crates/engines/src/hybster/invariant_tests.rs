//! The engine's state invariants (decision 0016) are on in this crate's
//! tests and fire: each test breaks one on purpose, as a bug would.
//!
//! A replica's trusted counter refuses a second share at one (view, seq),
//! so most tests also give it a fresh subsystem, as every restart does
//! (counters are not persisted, decisions 0008 and 0010): the invariant is
//! what still catches the second vote then.

use super::*;
use quorate_core::crypto::Ed25519Crypto;
use quorate_core::ids::NodeId;
use quorate_core::membership::FaultModel;
use quorate_threshsign::{GroupSpec, Provision};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct V(u64);

impl Value for V {
    fn digest(&self, crypto: &dyn Crypto) -> Digest {
        digest_encoded(b"test-value", self, crypto)
    }
}

/// Three replicas (f = 1): replica `id`'s engine, started, and every
/// replica's trusted subsystem (the engine's among them).
struct Setup {
    e: Engine<V>,
    trusted: Vec<Trusted>,
    crypto: Arc<Ed25519Crypto>,
}

fn spec() -> GroupSpec {
    GroupSpec { n: 3, threshold: 2, instances: destiny::instances(3) }
}

/// A trusted subsystem of replica `r` with every counter at its start.
fn enclave(r: u32, crypto: &Arc<Ed25519Crypto>) -> (Trusted, Arc<dyn Scheme>) {
    let p = Provision::modelled(ReplicaId(r), &spec(), crypto.clone()).unwrap();
    (Arc::new(Mutex::new(p.trusted)), p.scheme)
}

fn setup(id: u32) -> Setup {
    let m = Membership::of(&super::quorum_system("hybster", 3, 1, FaultModel::Byzantine).unwrap());
    let nodes: Vec<NodeId> = (0..3).map(|i| NodeId::Replica(ReplicaId(i))).collect();
    let crypto = Arc::new(Ed25519Crypto::deterministic(3, &nodes).remove(0));
    let enclaves: Vec<_> = (0..3).map(|r| enclave(r, &crypto)).collect();
    let trusted: Vec<Trusted> = enclaves.iter().map(|(t, _)| t.clone()).collect();
    let scheme = enclaves[id as usize].1.clone();
    let mut e = Engine::new(ReplicaId(id), m, crypto.clone(), trusted[id as usize].clone(), scheme, cfg());
    e.start(&mut Actions::new());
    Setup { e, trusted, crypto }
}

fn cfg() -> EngineConfig {
    EngineConfig { instance: 7, checkpoint_period: 4, window: 8, max_in_flight: 8, ..EngineConfig::default() }
}

impl Setup {
    fn digest(&self, v: u64) -> Digest {
        V(v).digest(self.crypto.as_ref())
    }
    /// Replica `by`'s share on `v` at (`view`, `seq`), from `trusted`.
    fn share_with(&self, trusted: &Trusted, view: u64, seq: u64, v: u64) -> Share {
        let st = self.e.order_statement(view, seq, self.digest(v)).unwrap();
        trusted.lock().unwrap().independent_share(st.instance, st.counter, st.value, &st.msg_hash).unwrap()
    }
    fn share(&self, by: u32, view: u64, seq: u64, v: u64) -> Share {
        self.share_with(&self.trusted[by as usize].clone(), view, seq, v)
    }
    /// The engine's subsystem starts afresh, as after a restart.
    fn roll_back_enclave(&mut self) {
        self.e.trusted = enclave(self.e.k.id.0, &self.crypto).0;
    }
}

#[test]
fn invariants_are_on_in_this_crates_tests() {
    // Depends on this build's features: checked when the test compiles.
    const { assert!(quorate_core::invariant::ENABLED) };
}

#[test]
#[should_panic(expected = "invariant violated: hybster: PREPARE: a second, different vote in round (1, 0, Prepare)")]
fn a_second_prepare_at_one_seq_fires() {
    let mut s = setup(0);
    let mut out = Actions::new();
    assert_eq!(s.e.propose(V(1), &mut out), Ok(1));
    // A bug that hands out sequence number 1 again.
    s.e.k.next_seq = 1;
    s.e.next_sign = 1;
    s.roll_back_enclave();
    let _ = s.e.propose(V(2), &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: hybster: COMMIT: a second, different vote in round (1, 0, Commit)")]
fn a_second_commit_at_one_seq_fires() {
    let mut s = setup(1);
    let mut out = Actions::new();
    let share = s.share(0, 0, 1, 1);
    s.e.on_message(ReplicaId(0), HybMsg::Prepare { view: 0, seq: 1, value: V(1), share }, &AnyValue, &mut out);
    assert!(s.e.slots[&1].signed.is_some(), "the backup signed seq 1");
    // A bug that swaps the slot's proposal and forgets the share sent.
    let d2 = s.digest(2);
    let slot = s.e.slots.get_mut(&1).unwrap();
    slot.proposal = Some(d2);
    slot.signed = None;
    s.e.k.values.insert(d2, V(2));
    s.e.next_sign = 1;
    s.roll_back_enclave();
    s.e.sign_ready(&mut out);
}

#[test]
#[should_panic(
    expected = "invariant violated: hybster: COMMIT certificate: a second, different vote in round (1, 0, Certificate)"
)]
fn a_second_commit_certificate_at_one_seq_fires() {
    let mut s = setup(0);
    let mut out = Actions::new();
    s.e.propose(V(1), &mut out).unwrap();
    let d1 = s.digest(1);
    let share = s.share(1, 0, 1, 1);
    s.e.on_message(ReplicaId(1), HybMsg::CommitShare { view: 0, seq: 1, digest: d1, share }, &AnyValue, &mut out);
    assert_eq!(s.e.last_decided(), 1, "the collector combined and decided seq 1");
    // A bug that forgets the COMMIT and the decision, and f+1 shares on
    // another value (replica 1's enclave rolled back).
    let rolled_back = enclave(1, &s.crypto).0;
    let shares = [(1, s.share_with(&rolled_back, 0, 1, 2)), (2, s.share(2, 0, 1, 2))];
    let slot = s.e.slots.get_mut(&1).unwrap();
    slot.proof = None;
    slot.decided = None;
    for (r, sh) in shares {
        slot.shares.insert(ReplicaId(r), sh);
    }
    s.e.k.last_decided = 0;
    s.e.check_commit(1, &mut out);
}

#[test]
#[should_panic(
    expected = "invariant violated: hybster: recovered PREPARE or COMMIT: a second, different vote in round (1, 0, Commit)"
)]
fn durable_records_that_contradict_fire() {
    let mut s = setup(1);
    let rolled_back = enclave(1, &s.crypto).0;
    let (d1, d2) = (s.digest(1), s.digest(2));
    // A bug in writing or reading the log: two shares at (view 0, seq 1).
    let records = vec![
        Record::Signed { view: 0, seq: 1, digest: d1, prepare: None, own: s.share(1, 0, 1, 1), value: Some(V(1)) },
        Record::Signed {
            view: 0,
            seq: 1,
            digest: d2,
            prepare: None,
            own: s.share_with(&rolled_back, 0, 1, 2),
            value: Some(V(2)),
        },
    ];
    s.e.recover(records, &mut Actions::new());
}

#[test]
#[should_panic(expected = "invariant violated: hybster: COMMIT: a second, different vote in round (1, 0, Commit)")]
fn a_share_contradicting_the_replayed_log_fires() {
    let mut s = setup(1);
    let mut out = Actions::new();
    let d1 = s.digest(1);
    let own = s.share(1, 0, 1, 1);
    // Recovered with an enclave whose counters were rolled back.
    s.roll_back_enclave();
    let records = vec![Record::Signed { view: 0, seq: 1, digest: d1, prepare: None, own, value: Some(V(1)) }];
    s.e.recover(records, &mut out);
    // A bug that loses the replayed slot: a PREPARE of another value is signed.
    s.e.slots.remove(&1);
    s.e.next_sign = 1;
    let share = s.share(0, 0, 1, 2);
    s.e.on_message(ReplicaId(0), HybMsg::Prepare { view: 0, seq: 1, value: V(2), share }, &AnyValue, &mut out);
}

#[test]
#[should_panic(expected = "invariant violated: hybster: decided seq: 1 reported where 2 was next")]
fn a_seq_reported_twice_fires() {
    let mut s = setup(1);
    let mut out = Actions::new();
    let d = s.digest(1);
    s.e.k.values.insert(d, V(1));
    s.e.slots.entry(1).or_default().decided = Some(d);
    s.e.report_decided(&mut out);
    assert_eq!(s.e.last_decided(), 1);
    // A bug that moves the engine back behind what it reported.
    s.e.k.last_decided = 0;
    s.e.report_decided(&mut out);
}

#[test]
#[should_panic(expected = "invariant violated: hybster: decided seq: 3 reported where 1 was next")]
fn a_seq_reported_past_a_gap_fires() {
    let mut s = setup(1);
    let d = s.digest(3);
    s.e.k.values.insert(d, V(3));
    s.e.slots.entry(3).or_default().decided = Some(d);
    // A bug that skips seqs 1 and 2 without a state install.
    s.e.k.last_decided = 2;
    s.e.report_decided(&mut Actions::new());
}

#[test]
#[should_panic(expected = "invariant violated: hybster: installs view 0 in view 0")]
fn installing_the_current_view_again_fires() {
    let mut s = setup(1);
    let st = s.e.order_statement(0, 1, s.digest(1)).unwrap();
    let share = Share::from_parts(st, ReplicaId(0), &[0; 96]);
    let core = NewViewCore { view: 0, checkpoint: None, entries: Vec::new() };
    let nv = NewView { signed: SignedNewView { core, share }, view_changes: Vec::new() };
    // A bug that installs the view it is in (on_new_view drops such NEW-VIEWs).
    s.e.install_new_view(nv, &mut Actions::new());
}

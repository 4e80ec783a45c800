//! Machine-level tests of the engine: 2f+1 engines over an in-memory network
//! that delivers what the test lets through, with the modelled ThreshSign
//! (same counter rules and checks as the BLS one).

use super::*;
use crate::kit::testnet::{r, TestNet, V};
use quorate_core::crypto::Ed25519Crypto;
use quorate_core::ids::NodeId;
use quorate_core::membership::FaultModel;
use quorate_threshsign::{GroupSpec, Provision};

/// Every replica's trusted subsystem and the crypto provider, kept by the
/// shared test network.
struct Trust {
    trusted: Vec<Trusted>,
    crypto: Arc<Ed25519Crypto>,
}

type Net = TestNet<Engine<V>, Trust>;

fn cfg() -> EngineConfig {
    EngineConfig {
        instance: 7,
        checkpoint_period: 4,
        window: 8,
        max_in_flight: 8,
        view_change_timeout: Duration::from_secs(1),
        ..EngineConfig::default()
    }
}

impl Net {
    fn new(f: usize) -> Net {
        let n = 2 * f + 1;
        let m = Membership::of(&super::quorum_system("hybster", n, f, FaultModel::Byzantine).unwrap());
        let nodes: Vec<NodeId> = (0..n as u32).map(|i| NodeId::Replica(r(i))).collect();
        let crypto = Arc::new(Ed25519Crypto::deterministic(3, &nodes).remove(0));
        let spec = GroupSpec { n: n as u32, threshold: f as u32 + 1, instances: destiny::instances(n as u32) };
        let mut engines = Vec::new();
        let mut trusted = Vec::new();
        for i in 0..n {
            let p = Provision::modelled(r(i as u32), &spec, crypto.clone()).unwrap();
            let t: Trusted = Arc::new(Mutex::new(p.trusted));
            trusted.push(t.clone());
            engines.push(Engine::new(r(i as u32), m.clone(), crypto.clone(), t, p.scheme, cfg()));
        }
        let mut net = TestNet::over(engines, cfg().checkpoint_period, Trust { trusted, crypto });
        // A crashed replica's queued messages are lost with it.
        net.mute_down = true;
        net.storm = 100_000;
        net
    }

    fn digest(&self, v: u64) -> Digest {
        V(v).digest(self.crypto.as_ref())
    }
}

#[test]
fn normal_case_is_linear_and_decides_in_order() {
    let mut net = Net::new(1);
    for v in 1..=3 {
        net.propose(0, v);
    }
    net.run();
    for i in 0..3 {
        assert_eq!(net.values(i), vec![Some(1), Some(2), Some(3)], "replica {i}");
    }
    // Per decision: PREPARE to 2, COMMIT-SHARE from 2 backups to the
    // collector, COMMIT to 2 — linear, no all-to-all.
    assert_eq!(net.sent("PREPARE"), 6);
    assert_eq!(net.sent("COMMIT-SHARE"), 6);
    assert_eq!(net.sent("COMMIT"), 6);
}

#[test]
fn f_plus_one_suffice_with_f_replicas_down() {
    let mut net = Net::new(2);
    net.down[3] = true;
    net.down[4] = true;
    net.propose(0, 10);
    net.run();
    for i in 0..3 {
        assert_eq!(net.values(i), vec![Some(10)]);
    }
}

#[test]
fn early_prepares_wait_for_the_ones_before_them() {
    let mut net = Net::new(1);
    net.down[2] = true;
    // Replica 1 gets seq 2's PREPARE but not seq 1's.
    net.drop = Box::new(|_, to, m| to == r(1) && matches!(m, HybMsg::Prepare { seq: 1, .. }));
    net.propose(0, 1);
    net.propose(0, 2);
    net.run();
    let signed = |net: &Net| -> Vec<u64> {
        net.persisted[1]
            .iter()
            .filter_map(|rec| match rec {
                Record::Signed { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    };
    assert!(signed(&net).is_empty(), "replica 1 must not sign 2 before 1");
    assert!(net.values(0).is_empty());
    // The primary's retransmission brings seq 1: replica 1 signs 1, then 2.
    net.drop = Box::new(|_, _, _| false);
    net.tick_all();
    assert_eq!(signed(&net), vec![1, 2]);
    assert_eq!(net.values(1), vec![Some(1), Some(2)]);
}

#[test]
fn an_equivocating_primary_is_refused_by_its_trusted_subsystem() {
    let mut net = Net::new(1);
    let seq = net.propose(0, 1);
    let st = net.engines[0].order_statement(0, seq, net.digest(2)).unwrap();
    let second = net.trusted[0].lock().unwrap().independent_share(st.instance, st.counter, st.value, &st.msg_hash);
    assert!(second.is_err(), "a second value at (0, {seq}) must be refused");
    // A forged share (bytes that are no signature of the primary) is
    // rejected, and proves the primary faulty to its receiver.
    let forged_st = net.engines[1].order_statement(0, 2, net.digest(3)).unwrap();
    let forged = quorate_threshsign::Share::from_parts(forged_st, r(0), &[7u8; 96]);
    net.input(2, r(0), HybMsg::Prepare { view: 0, seq: 2, value: V(3), share: forged });
    assert_eq!(net.rejections(2, "bad PREPARE share"), 1);
    assert!(!net.engines[2].active(), "the receiver suspects the primary at once");
    net.run();
    // Replicas 0 and 1 decide the real proposal; replica 2 learns it.
    assert_eq!(net.values(1), vec![Some(1)]);
    assert_eq!(net.values(2), vec![Some(1)]);
}

#[test]
fn checkpoints_become_stable_through_the_collector() {
    let mut net = Net::new(1);
    for v in 1..=5 {
        net.propose(0, v);
        net.run();
    }
    for i in 0..3 {
        assert_eq!(net.stable[i], vec![4], "replica {i}");
        assert_eq!(net.engines[i].stable_checkpoint().0, 4);
    }
    assert_eq!(net.sent("CHECKPOINT"), 2, "one certificate, from the collector to the two others");
}

#[test]
fn a_replica_behind_a_certified_checkpoint_asks_for_state() {
    let mut net = Net::new(1);
    net.down[2] = true;
    for v in 1..=9 {
        net.propose(0, v);
        net.run();
    }
    net.down[2] = false;
    // A PREPARE beyond its window tells it it is behind; STATUS answers
    // bring the certified checkpoint, and it asks for the state.
    net.propose(0, 10);
    net.run();
    for _ in 0..4 {
        net.tick_all();
    }
    let (seq, _) = net.engines[0].stable_checkpoint();
    assert_eq!(seq, 8);
    assert!(net.need_state[2].iter().any(|(s, _)| *s == 8), "{:?}", net.need_state[2]);
}

#[test]
fn view_change_keeps_a_value_only_the_collector_saw_committed() {
    let mut net = Net::new(1);
    // The COMMIT of seq 1 reaches nobody; replica 2 never sees the PREPARE.
    net.drop =
        Box::new(|_, to, m| matches!(m, HybMsg::Commit { .. }) || (to == r(2) && matches!(m, HybMsg::Prepare { .. })));
    net.propose(0, 42);
    net.run();
    assert_eq!(net.values(0), vec![Some(42)]);
    assert!(net.values(1).is_empty() && net.values(2).is_empty());
    // The primary crashes; the others move to view 1 (primary: replica 1).
    net.down[0] = true;
    net.drop = Box::new(|_, _, _| false);
    net.view_change(1);
    net.view_change(2);
    net.run();
    for i in 1..3 {
        assert_eq!(net.engines[i].view(), 1);
        assert!(net.engines[i].active());
        assert_eq!(net.values(i), vec![Some(42)], "replica {i}");
    }
    // The new view orders new values.
    net.propose(1, 43);
    net.run();
    assert_eq!(net.values(2), vec![Some(42), Some(43)]);
}

#[test]
fn a_view_change_that_hides_a_signed_proposal_is_refused() {
    let mut net = Net::new(1);
    net.drop = Box::new(|_, _, m| matches!(m, HybMsg::Commit { .. }));
    net.propose(0, 42);
    net.run();
    net.down[0] = true;
    // Replica 2 signed (0, 1); it claims an empty log in its VIEW-CHANGE.
    let body = ViewChangeBody {
        view: 1,
        replica: r(2),
        checkpoint: None,
        new_view: None,
        prepares: Vec::new(),
        commits: Vec::new(),
        history: Vec::new(),
    };
    let hash = digest_encoded(b"quorate-hybster/view-change", &body, net.crypto.as_ref());
    let entry = quorate_threshsign::counter::pack_view_seq(1, 0).unwrap();
    let cert =
        net.trusted[2].lock().unwrap().continuing_certificate(destiny::TAU, destiny::AGREEMENT, entry, &hash).unwrap();
    let lie = ViewChange { body, cert };
    net.down[2] = true;
    net.input(1, r(2), HybMsg::ViewChange(Box::new(lie)));
    net.view_change(1);
    net.run();
    assert_eq!(net.rejections(1, "VIEW-CHANGE hides a proposal it signed"), 1);
    assert!(!net.engines[1].active(), "no NEW-VIEW from one valid VIEW-CHANGE");
}

#[test]
fn a_new_view_that_drops_a_proposal_is_refused() {
    let mut net = Net::new(1);
    net.drop = Box::new(|_, _, m| matches!(m, HybMsg::Commit { .. }));
    net.propose(0, 42);
    net.run();
    net.down[0] = true;
    net.drop = Box::new(|_, _, m| matches!(m, HybMsg::NewView(_)));
    net.view_change(1);
    net.view_change(2);
    net.run();
    // Replica 1 made a NEW-VIEW; tamper with it and deliver it to replica 2.
    let mut nv = net.engines[1].new_view.clone().expect("replica 1 installed view 1");
    nv.signed.core.entries = vec![(1, NULL_DIGEST)];
    let st = net.engines[1].new_view_statement(&nv.signed.core);
    // Even re-signed at the view's value it is refused: the trusted
    // subsystem already signed this view's NEW-VIEW...
    assert!(net.trusted[1].lock().unwrap().independent_share(st.instance, st.counter, st.value, &st.msg_hash).is_err());
    // ...and with the old share it does not match its statement.
    net.input(2, r(1), HybMsg::NewView(Box::new(nv)));
    assert_eq!(net.rejections(2, "NEW-VIEW share on another statement"), 1);
}

#[test]
fn view_changes_in_a_row_lead_back_through_history() {
    let mut net = Net::new(2);
    net.drop = Box::new(|_, _, m| matches!(m, HybMsg::Commit { .. }));
    net.propose(0, 7);
    net.run();
    // Primaries 0 and 1 are down: view 1 installs nothing, view 2 must.
    net.down[0] = true;
    net.down[1] = true;
    net.drop = Box::new(|_, _, _| false);
    for i in 2..5 {
        net.view_change(i);
    }
    net.run();
    for i in 2..5 {
        assert_eq!(net.engines[i].view(), 1);
        net.timer(i, EngineTimer::ViewChange);
    }
    net.run();
    for i in 2..5 {
        assert_eq!(net.engines[i].view(), 2, "replica {i}");
        assert!(net.engines[i].active());
        assert_eq!(net.values(i), vec![Some(7)], "replica {i}");
    }
}

#[test]
fn a_lagging_replica_catches_up_from_one_decided_answer() {
    let mut net = Net::new(1);
    net.drop = Box::new(|_, to, _| to == r(2));
    for v in 1..=3 {
        net.propose(0, v);
    }
    net.run();
    assert!(net.values(2).is_empty());
    // The next PREPARE shows it a gap; one peer's DECIDED fills it.
    net.drop = Box::new(|from, _, _| from == r(1));
    net.propose(0, 4);
    net.run();
    net.tick_all();
    net.tick_all();
    assert_eq!(net.values(2), vec![Some(1), Some(2), Some(3), Some(4)]);
}

#[test]
fn recovery_replays_decisions_and_signatures() {
    let mut net = Net::new(1);
    for v in 1..=3 {
        net.propose(0, v);
    }
    net.run();
    let records = net.persisted[1].clone();
    let m = net.engines[1].k.m.clone();
    let spec = GroupSpec { n: 3, threshold: 2, instances: destiny::instances(3) };
    let p = Provision::modelled(r(1), &spec, net.crypto.clone()).unwrap();
    let t: Trusted = Arc::new(Mutex::new(p.trusted));
    let mut fresh = Engine::new(r(1), m, net.crypto.clone(), t.clone(), p.scheme, cfg());
    let mut a = Actions::new();
    fresh.recover(records, &mut a);
    let decided: Vec<u64> = a
        .as_slice()
        .iter()
        .filter_map(|x| match x {
            Action::Decided { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(decided, vec![1, 2, 3]);
    net.engines[1] = fresh;
    net.trusted[1] = t;
    net.decided[1].clear();
    net.propose(0, 4);
    net.run();
    assert_eq!(net.values(1), vec![Some(4)]);
}

#[test]
fn a_stuck_replica_joins_the_view_a_peer_left_for() {
    // Replica 1 is down; replica 2 suspected the primary alone and left
    // view 0: with quorums of 2 out of 3, view 0 cannot decide any more.
    let mut net = Net::new(1);
    net.down[1] = true;
    net.view_change(2);
    net.run();
    net.propose(0, 5);
    net.run();
    assert!(net.values(0).is_empty());
    // The primary, stuck, joins view 1 (primary: replica 1, down); the
    // view-change timer moves both to view 2, whose primary is replica 2.
    for _ in 0..6 {
        net.tick_all();
    }
    assert_eq!(net.engines[0].view(), 1);
    net.timer(0, EngineTimer::ViewChange);
    net.timer(2, EngineTimer::ViewChange);
    net.run();
    for i in [0, 2] {
        assert_eq!(net.engines[i].view(), 2, "replica {i}");
        assert!(net.engines[i].active(), "replica {i}");
    }
    assert_eq!(net.values(2), vec![Some(5)], "the proposal replica 0 signed survives");
}

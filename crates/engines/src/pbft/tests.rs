//! Machine-level tests of the engine: four engines (f = 1) over an
//! in-memory network that delivers what the test lets through; each test
//! feeds inputs and asserts the actions.

use super::messages::bytes;
use super::*;
use crate::kit::testnet::{r, TestNet, V};
use quorate_core::crypto::{Ed25519Crypto, Signature};
use quorate_core::membership::FaultModel;

/// Every replica's keys (to forge MACs), kept by the shared test network.
struct Keys {
    keys: Vec<Arc<Ed25519Crypto>>,
}

type Net = TestNet<Engine<V>, Keys>;

const N: usize = 4;

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
    fn new() -> Net {
        Self::with(cfg())
    }

    fn with(cfg: EngineConfig) -> Net {
        let m = Membership::new(N, 1, FaultModel::Byzantine, N).unwrap();
        let nodes: Vec<NodeId> = (0..N as u32).map(|i| NodeId::Replica(r(i))).collect();
        let keys: Vec<Arc<Ed25519Crypto>> = Ed25519Crypto::deterministic(3, &nodes).into_iter().map(Arc::new).collect();
        let period = cfg.checkpoint_period;
        let engines =
            (0..N).map(|i| Engine::new(r(i as u32), m.clone(), keys[i].clone(), cfg.clone())).collect::<Vec<_>>();
        TestNet::over(engines, period, Keys { keys })
    }

    fn digest(&self, v: u64) -> Digest {
        V(v).digest(self.keys[0].as_ref())
    }

    /// A MACed message from `from` to `to`, as `from` would make it.
    fn auth(&self, from: usize, to: usize, b: &[u8]) -> Auth {
        Auth(vec![self.keys[from].mac(NodeId::Replica(r(to as u32)), b)])
    }
}

#[test]
fn fault_free_decides_in_order_everywhere() {
    let mut net = Net::new();
    for v in 1..=6 {
        net.propose(0, v);
    }
    net.run();
    for i in 0..N {
        assert_eq!(net.values(i), (1..=6).map(Some).collect::<Vec<_>>(), "replica {i}");
        let seqs: Vec<u64> = net.decided[i].iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
        assert!(net.rejected[i].is_empty(), "replica {i}: {:?}", net.rejected[i]);
    }
    // Each decision was durable before it was reported.
    for i in 0..N {
        assert!(net.persisted[i].iter().any(|r| matches!(r, Record::Decided { seq: 6, .. })));
    }
}

#[test]
fn quorums_prepare_at_2f_and_decide_at_2f_plus_1() {
    let mut net = Net::new();
    // Replica 1 alone: the primary's PRE-PREPARE, then PREPAREs one by one.
    net.drop = Box::new(|_, _, _| true);
    net.propose(0, 9);
    let pp = net.queue.iter().find(|(_, to, _)| *to == r(1)).map(|(_, _, m)| m.clone()).unwrap();
    net.queue.clear();
    net.input(1, r(0), pp);
    let d = net.digest(9);
    let prepare = |net: &Net, from: usize| PbftMsg::Prepare {
        view: 0,
        seq: 1,
        digest: d,
        auth: net.auth(from, 1, &bytes::prepare(7, 0, 1, &d)),
    };
    let commits = |net: &Net| net.queue.iter().filter(|(f, _, m)| *f == r(1) && m.kind() == "COMMIT").count();
    // Its own PREPARE counts: one more backup makes 2f.
    assert_eq!(commits(&net), 0);
    // A PREPARE from the primary does not count (and is refused).
    let from_primary =
        PbftMsg::Prepare { view: 0, seq: 1, digest: d, auth: net.auth(0, 1, &bytes::prepare(7, 0, 1, &d)) };
    net.input(1, r(0), from_primary);
    assert_eq!(net.rejections(1, "PREPARE from the primary"), 1);
    assert_eq!(commits(&net), 0);
    let p2 = prepare(&net, 2);
    net.input(1, r(2), p2.clone());
    assert_eq!(commits(&net), 3, "prepared with 2f PREPAREs: COMMIT to the three others");
    // A repeated PREPARE is harmless.
    net.input(1, r(2), p2);
    assert_eq!(commits(&net), 3);
    // COMMITs: its own + one is not 2f+1; + two is.
    let commit = |net: &Net, from: usize| PbftMsg::Commit {
        view: 0,
        seq: 1,
        digest: d,
        auth: net.auth(from, 1, &bytes::commit(7, 0, 1, &d)),
    };
    let c2 = commit(&net, 2);
    net.input(1, r(2), c2.clone());
    net.input(1, r(2), c2); // the same voter twice counts once
    assert!(net.decided[1].is_empty());
    let c3 = commit(&net, 3);
    net.input(1, r(3), c3);
    assert_eq!(net.values(1), vec![Some(9)]);
    // A conflicting COMMIT from a replica that voted already is refused.
    let other = net.digest(10);
    let bad = PbftMsg::Commit { view: 0, seq: 2, digest: other, auth: net.auth(3, 1, &bytes::commit(7, 0, 2, &other)) };
    net.input(1, r(3), bad.clone());
    let bad2 = PbftMsg::Commit { view: 0, seq: 2, digest: d, auth: net.auth(3, 1, &bytes::commit(7, 0, 2, &d)) };
    net.input(1, r(3), bad2);
    assert_eq!(net.rejections(1, "conflicting COMMIT"), 1);
}

#[test]
fn equivocation_is_refused_and_nothing_conflicting_commits() {
    let mut net = Net::new();
    // The primary sends 1 to replica 1 and 2 to replica 2 for the same (view, seq).
    let pp = |net: &Net, v: u64, to: usize| {
        let d = net.digest(v);
        PbftMsg::PrePrepare { view: 0, seq: 1, value: V(v), auth: net.auth(0, to, &bytes::pre_prepare(7, 0, 1, &d)) }
    };
    let (a, b) = (pp(&net, 1, 1), pp(&net, 2, 1));
    net.input(1, r(0), a);
    net.input(1, r(0), b);
    assert_eq!(net.rejections(1, "conflicting PRE-PREPARE"), 1, "a second PRE-PREPARE for (0, 1) is refused");
    let prepares_from_1 = net.queue.iter().filter(|(f, _, m)| *f == r(1) && m.kind() == "PREPARE").count();
    assert_eq!(prepares_from_1, 3, "one PREPARE (to each other replica), for the first value only");
    let (c, d) = (pp(&net, 2, 2), pp(&net, 3, 3));
    net.input(2, r(0), c);
    net.input(3, r(0), d);
    net.run();
    for i in 0..N {
        assert!(net.decided[i].is_empty(), "replica {i} decided with three different PRE-PREPAREs");
    }
}

#[test]
fn forged_macs_and_malformed_input_are_refused_without_panic() {
    let mut net = Net::new();
    let d = net.digest(5);
    // A PREPARE MACed by replica 3 but claiming to come from replica 2.
    let forged = PbftMsg::Prepare { view: 0, seq: 1, digest: d, auth: net.auth(3, 1, &bytes::prepare(7, 0, 1, &d)) };
    net.input(1, r(2), forged);
    // A MAC over other fields (seq 2 instead of 1), and another instance's MAC.
    let moved = PbftMsg::Prepare { view: 0, seq: 1, digest: d, auth: net.auth(2, 1, &bytes::prepare(7, 0, 2, &d)) };
    net.input(1, r(2), moved);
    let other_instance =
        PbftMsg::Prepare { view: 0, seq: 1, digest: d, auth: net.auth(2, 1, &bytes::prepare(8, 0, 1, &d)) };
    net.input(1, r(2), other_instance);
    // An authenticator of the wrong length, and an empty one.
    let bad_len =
        PbftMsg::Commit { view: 0, seq: 1, digest: d, auth: Auth(vec![quorate_core::crypto::Mac([0; 32]); 3]) };
    net.input(1, r(2), bad_len);
    net.input(1, r(2), PbftMsg::Checkpoint { seq: 4, digest: d, auth: Auth(Vec::new()) });
    assert_eq!(net.rejections(1, "bad MAC"), 5);
    // A PRE-PREPARE from a backup, at seq 0, and a CHECKPOINT off the period.
    let pp =
        PbftMsg::PrePrepare { view: 0, seq: 1, value: V(5), auth: net.auth(2, 1, &bytes::pre_prepare(7, 0, 1, &d)) };
    net.input(1, r(2), pp);
    assert_eq!(net.rejections(1, "PRE-PREPARE from a non-primary"), 1);
    let zero =
        PbftMsg::PrePrepare { view: 0, seq: 0, value: V(5), auth: net.auth(0, 1, &bytes::pre_prepare(7, 0, 0, &d)) };
    net.input(1, r(0), zero);
    assert_eq!(net.rejections(1, "PRE-PREPARE at sequence number 0"), 1);
    let cp = PbftMsg::Checkpoint { seq: 3, digest: d, auth: net.auth(2, 1, &bytes::checkpoint(7, 3, &d)) };
    net.input(1, r(2), cp);
    assert_eq!(net.rejections(1, "CHECKPOINT off the checkpoint period"), 1);
    // A message from itself or a non-member.
    net.input(1, r(1), PbftMsg::Fetch { seq: 1, digest: d });
    net.input(1, r(9), PbftMsg::Fetch { seq: 1, digest: d });
    assert_eq!(net.rejections(1, "not a peer"), 2);
    // A VALUE that does not match the digest asked for is refused.
    net.engines[1].k.wanted.insert(1, d);
    net.input(1, r(2), PbftMsg::Value { seq: 1, value: V(6) });
    assert_eq!(net.rejections(1, "VALUE does not match its digest"), 1);
    // Nothing was accepted.
    assert!(net.engines[1].slots.values().all(|s| s.prepares.voters().all(|k| k == r(1))));
    assert!(net.queue.is_empty(), "nothing is answered to refused input");
}

#[test]
fn malformed_view_changes_and_new_views_are_refused() {
    let mut net = Net::new();
    let sign = |net: &Net, i: usize, body: ViewChange| {
        let sig = net.keys[i].sign(&bytes::view_change(7, &body));
        PbftMsg::ViewChange(Box::new(Signed { body, sig }))
    };
    let base = ViewChange {
        view: 1,
        replica: r(2),
        stable: 0,
        checkpoints: Vec::new(),
        prepared: Vec::new(),
        pre_prepared: Vec::new(),
    };
    let d = net.digest(1);
    let cases: Vec<(ViewChange, &str)> = vec![
        (
            ViewChange {
                prepared: vec![
                    PrepareClaim { seq: 2, digest: d, view: 0 },
                    PrepareClaim { seq: 1, digest: d, view: 0 },
                ],
                ..base.clone()
            },
            "VIEW-CHANGE prepared entries out of order or range",
        ),
        (
            ViewChange { prepared: vec![PrepareClaim { seq: 1, digest: d, view: 1 }], ..base.clone() },
            "VIEW-CHANGE prepared entries out of order or range",
        ),
        (
            ViewChange { prepared: vec![PrepareClaim { seq: 99, digest: d, view: 0 }], ..base.clone() },
            "VIEW-CHANGE prepared entries out of order or range",
        ),
        (
            ViewChange {
                pre_prepared: (0..9u8).map(|k| PrePrepareClaim { seq: 1, digest: Digest([k; 32]), view: 0 }).collect(),
                view: 1,
                ..base.clone()
            },
            "VIEW-CHANGE with too many pre-prepared entries for one sequence number",
        ),
        (ViewChange { stable: 3, ..base.clone() }, "VIEW-CHANGE stable checkpoint off the checkpoint period"),
        (ViewChange { view: 0, ..base.clone() }, "VIEW-CHANGE to view 0"),
    ];
    for (vc, why) in cases {
        let before = net.rejections(1, why);
        let m = sign(&net, 2, vc);
        net.input(1, r(2), m);
        assert_eq!(net.rejections(1, why), before + 1, "{why}");
    }
    // Another replica's VIEW-CHANGE relayed, and a bad signature.
    let m = sign(&net, 3, ViewChange { replica: r(3), ..base.clone() });
    net.input(1, r(2), m);
    assert_eq!(net.rejections(1, "VIEW-CHANGE of another replica"), 1);
    net.input(1, r(2), PbftMsg::ViewChange(Box::new(Signed { body: base.clone(), sig: Signature(vec![1; 64]) })));
    assert_eq!(net.rejections(1, "bad VIEW-CHANGE signature"), 1);
    assert!(net.engines[1].active() && net.engines[1].view() == 0, "nothing moved replica 1");

    // A NEW-VIEW whose choice does not follow from its VIEW-CHANGEs.
    let mut net = Net::new();
    net.drop = Box::new(|_, _, m| m.kind() == "NEW-VIEW");
    net.propose(0, 1);
    net.run();
    for i in 0..N {
        net.view_change(i);
    }
    net.run();
    let nv = net.engines[1].new_view.clone().expect("replica 1 made the NEW-VIEW");
    let mut tampered = nv.body.clone();
    tampered.chosen = vec![(1, NULL_DIGEST)];
    tampered.view_changes.truncate(tampered.view_changes.len());
    let sig = net.keys[1].sign(&bytes::new_view(7, &tampered));
    net.input(2, r(1), PbftMsg::NewView(Box::new(Signed { body: tampered, sig })));
    assert_eq!(net.rejections(2, "NEW-VIEW does not follow from its VIEW-CHANGEs"), 1);
    let mut short = nv.body.clone();
    short.view_changes.truncate(2);
    let sig = net.keys[1].sign(&bytes::new_view(7, &short));
    net.input(2, r(1), PbftMsg::NewView(Box::new(Signed { body: short, sig })));
    assert_eq!(net.rejections(2, "NEW-VIEW does not follow from its VIEW-CHANGEs"), 2);
    // Signed by a replica that is not the view's primary.
    let sig = net.keys[3].sign(&bytes::new_view(7, &nv.body));
    net.input(2, r(3), PbftMsg::NewView(Box::new(Signed { body: nv.body.clone(), sig })));
    assert_eq!(net.rejections(2, "bad NEW-VIEW signature"), 1);
    assert!(!net.engines[2].active(), "replica 2 still waits for a valid NEW-VIEW");
    // The genuine one is accepted.
    net.input(2, r(1), PbftMsg::NewView(Box::new(nv)));
    assert!(net.engines[2].active() && net.engines[2].view() == 1);
}

#[test]
fn watermarks_bound_the_log_and_checkpoints_move_them() {
    let mut net = Net::new();
    // Window 8: the primary cannot go past the high watermark before a stable checkpoint.
    net.drop = Box::new(|_, _, m| m.kind() == "CHECKPOINT");
    for v in 1..=8 {
        net.propose(0, v);
    }
    assert!(!net.engines[0].can_propose(), "seq 9 is past the high watermark 0 + 8");
    net.run();
    assert_eq!(net.values(1).len(), 8);
    assert!(!net.engines[0].can_propose(), "decided, but no stable checkpoint: the window has not moved");
    // A PRE-PREPARE past the window is ignored (no PREPARE), even from the primary.
    let d = net.digest(50);
    let far =
        PbftMsg::PrePrepare { view: 0, seq: 9, value: V(50), auth: net.auth(0, 1, &bytes::pre_prepare(7, 0, 9, &d)) };
    net.input(1, r(0), far);
    assert!(net.queue.is_empty() && !net.engines[1].slots.contains_key(&9));
    // CHECKPOINTs flow again: replicas repeat theirs when stuck; 2f+1 make 4 and 8 stable.
    net.drop = Box::new(|_, _, _| false);
    net.tick_all();
    net.tick_all();
    for i in 0..N {
        assert_eq!(net.engines[i].stable_checkpoint().0, 8, "replica {i}");
        assert!(net.stable[i].contains(&8));
        assert!(net.engines[i].slots.keys().all(|s| *s > 8), "the log below the stable checkpoint is gone");
    }
    assert!(net.engines[0].can_propose());
    assert_eq!(net.engines[0].k.high_watermark(), 16);
    // Below the low watermark: ignored.
    let old = net.digest(1);
    let stale = PbftMsg::Prepare { view: 0, seq: 3, digest: old, auth: net.auth(2, 1, &bytes::prepare(7, 0, 3, &old)) };
    net.input(1, r(2), stale);
    assert!(!net.engines[1].slots.contains_key(&3));
}

#[test]
fn stable_checkpoints_need_2f_plus_1_matching_votes_including_ours() {
    let mut net = Net::new();
    net.drop = Box::new(|_, _, m| m.kind() == "CHECKPOINT");
    for v in 1..=4 {
        net.propose(0, v);
    }
    net.run();
    assert!(net.stable[1].is_empty());
    let mine = net.engines[1].own_checkpoints[&4];
    let other = Digest([9; 32]);
    let vote = |net: &Net, from: usize, d: Digest| PbftMsg::Checkpoint {
        seq: 4,
        digest: d,
        auth: net.auth(from, 1, &bytes::checkpoint(7, 4, &d)),
    };
    let (a, b) = (vote(&net, 2, mine), vote(&net, 3, other));
    net.input(1, r(2), a);
    net.input(1, r(3), b);
    assert!(net.stable[1].is_empty(), "ours and one matching vote are 2, not 2f+1");
    let c = vote(&net, 0, mine);
    net.input(1, r(0), c);
    assert_eq!(net.stable[1], vec![4]);
}

/// Replicas 1 and 2 prepare value 5 at seq 1 in view 0, but COMMITs are
/// lost: nobody decides. The view change must carry the prepared value
/// into view 1, where it is decided at seq 1.
#[test]
fn view_change_carries_prepared_certificates_into_the_new_view() {
    let mut net = Net::new();
    // Replica 3 never gets the PRE-PREPARE; no COMMIT gets through.
    net.drop = Box::new(|_, to, m| m.kind() == "COMMIT" || (m.kind() == "PRE-PREPARE" && to == r(3)));
    net.propose(0, 5);
    net.run();
    assert!(net.decided.iter().all(|d| d.is_empty()));
    for i in [1, 2] {
        assert_eq!(net.engines[i].slots[&1].prepared, Some((0, net.digest(5))), "replica {i} prepared");
    }
    assert_eq!(net.engines[3].slots.get(&1).and_then(|s| s.prepared), None);
    // The primary (replica 0) is suspected and crashes; the others change view.
    net.down[0] = true;
    net.drop = Box::new(|_, _, _| false);
    for i in 1..N {
        net.view_change(i);
    }
    net.run();
    for i in 1..N {
        assert_eq!(net.engines[i].view(), 1);
        assert!(net.engines[i].active(), "replica {i} installed view 1");
        assert_eq!(net.values(i), vec![Some(5)], "replica {i} decided the prepared value in view 1");
    }
    let nv = net.engines[2].new_view.clone().unwrap();
    assert_eq!(nv.body.chosen, vec![(1, net.digest(5))]);
    assert_eq!(nv.body.view_changes.len(), 3);
    // The new primary (replica 1) goes on at seq 2.
    assert_eq!(net.propose(1, 6), 2);
    net.run();
    for i in 1..N {
        assert_eq!(net.values(i), vec![Some(5), Some(6)]);
    }
}

/// A value prepared by only one replica (the others never saw the
/// PRE-PREPARE) may or may not survive; a value nobody prepared is replaced
/// by a null request, and a gap the primary left too.
#[test]
fn gaps_become_null_requests() {
    let mut net = Net::new();
    // The primary skips seq 1; seq 2 prepares but no COMMIT gets through.
    net.engines[0].skip_sequence_number();
    net.drop = Box::new(|_, _, m| m.kind() == "COMMIT");
    assert_eq!(net.propose(0, 7), 2);
    net.run();
    net.drop = Box::new(|_, _, _| false);
    for i in 0..N {
        net.view_change(i);
    }
    net.run();
    for i in 0..N {
        assert_eq!(net.values(i), vec![None, Some(7)], "replica {i}: seq 1 null, seq 2 the prepared value");
    }
    let nv = net.engines[3].new_view.clone().unwrap();
    assert_eq!(nv.body.chosen, vec![(1, NULL_DIGEST), (2, net.digest(7))]);
}

#[test]
fn view_change_timer_starts_at_2f_plus_1_and_doubles() {
    let mut net = Net::new();
    // The primary of view 1 (replica 1) is down: no NEW-VIEW comes.
    net.down[1] = true;
    net.view_change(0);
    net.run();
    assert!(!net.timers[0].contains_key(&EngineTimer::ViewChange), "one VIEW-CHANGE: no timer yet");
    net.view_change(2);
    net.run();
    // Replica 3 joins on seeing f+1 = 2 VIEW-CHANGEs for view 1.
    assert_eq!(net.engines[3].view(), 1);
    assert!(!net.engines[3].active());
    for i in [0, 2, 3] {
        assert_eq!(net.timers[i].get(&EngineTimer::ViewChange), Some(&Duration::from_secs(1)), "replica {i}");
    }
    for i in [0, 2, 3] {
        net.timer(i, EngineTimer::ViewChange);
    }
    net.run();
    // View 2 (primary replica 2) completes; the timer had doubled meanwhile.
    for i in [0, 2, 3] {
        assert_eq!(net.engines[i].view(), 2, "replica {i}");
        assert!(net.engines[i].active(), "replica {i}");
        assert_eq!(net.engines[i].backoff(), 2);
        assert!(!net.timers[i].contains_key(&EngineTimer::ViewChange));
    }
    // A decision in view 2 resets the back-off.
    net.propose(2, 1);
    net.run();
    assert_eq!(net.values(0), vec![Some(1)]);
    assert_eq!(net.engines[0].backoff(), 1);
}

#[test]
fn a_single_view_change_does_not_move_the_others() {
    let mut net = Net::new();
    net.view_change(3);
    net.run();
    for i in 0..3 {
        assert_eq!(net.engines[i].view(), 0);
        assert!(net.engines[i].active());
    }
    // The others go on without replica 3.
    net.propose(0, 1);
    net.run();
    for i in 0..3 {
        assert_eq!(net.values(i), vec![Some(1)]);
    }
    assert!(net.values(3).is_empty());
}

#[test]
fn a_replica_that_missed_decisions_gets_them_from_f_plus_1_peers() {
    let mut net = Net::new();
    net.drop = Box::new(|_, to, _| to == r(3));
    for v in 1..=3 {
        net.propose(0, v);
    }
    net.run();
    assert!(net.values(3).is_empty());
    // Replica 3 hears of seq 4 (the primary goes on), notices it is stuck, and asks.
    net.drop = Box::new(|_, _, _| false);
    net.propose(0, 4);
    net.run();
    net.tick_all(); // replica 3: a gap and no progress → STATUS → DECIDED
    assert_eq!(net.values(3), vec![Some(1), Some(2), Some(3), Some(4)]);
    assert!(net.sent("DECIDED") >= 2, "DECIDED from at least f+1 peers");
}

#[test]
fn f_matching_decided_reports_are_not_enough() {
    let mut net = Net::new();
    let entries = vec![DecidedEntry { seq: 1, value: Some(V(66)) }];
    let d = net.digest(66);
    let auth = net.auth(2, 3, &bytes::decided(7, &[(1, d)]));
    net.input(3, r(2), PbftMsg::Decided { entries: entries.clone(), auth });
    assert!(net.values(3).is_empty(), "one report (f) decides nothing");
    let auth = net.auth(2, 3, &bytes::decided(7, &[(1, d)]));
    net.input(3, r(2), PbftMsg::Decided { entries: entries.clone(), auth });
    assert!(net.values(3).is_empty(), "the same reporter twice counts once");
    let auth = net.auth(1, 3, &bytes::decided(7, &[(1, d)]));
    net.input(3, r(1), PbftMsg::Decided { entries, auth });
    assert_eq!(net.values(3), vec![Some(66)]);
}

#[test]
fn a_replica_behind_a_vouched_checkpoint_asks_for_its_state() {
    let mut net = Net::new();
    net.drop = Box::new(|_, to, _| to == r(3));
    for v in 1..=8 {
        net.propose(0, v);
    }
    net.run();
    net.tick_all();
    net.tick_all();
    assert_eq!(net.engines[0].stable_checkpoint().0, 8);
    // Replica 3 comes back; the others dropped the log up to 8 (4 is no longer decided anywhere).
    net.drop = Box::new(|_, _, _| false);
    net.propose(0, 9);
    net.run();
    for _ in 0..3 {
        net.tick_all();
    }
    let (seq, digest) = *net.need_state[3].last().expect("replica 3 asks for state");
    assert_eq!((seq, digest), net.engines[0].stable_checkpoint());
    assert!(net.engines[3].wants_state(seq, digest));
    assert!(!net.engines[3].wants_state(seq, Digest([1; 32])), "only the vouched digest");
    // The embedder installs it; the instance goes on from there.
    let mut a = Actions::new();
    net.engines[3].state_installed(seq, digest, &mut a);
    net.apply(3, a);
    net.tick_all();
    assert_eq!(net.engines[3].last_decided(), 9);
    assert_eq!(net.decided[3].last().map(|(s, v)| (*s, v.clone())), Some((9, Some(V(9)))));
}

#[test]
fn recovery_replays_decisions_and_never_reuses_a_sequence_number() {
    let mut net = Net::new();
    net.propose(0, 1);
    net.propose(0, 2);
    net.run();
    // The primary proposes seq 3, which nobody receives, then crashes.
    net.drop = Box::new(|_, _, _| true);
    net.propose(0, 3);
    net.queue.clear();
    let records = net.persisted[0].clone();
    let m = Membership::new(N, 1, FaultModel::Byzantine, N).unwrap();
    let mut fresh: Engine<V> = Engine::new(r(0), m, net.keys[0].clone(), cfg());
    let mut a = Actions::new();
    fresh.recover(records, &mut a);
    let decided: Vec<(u64, Option<V>)> = a
        .as_slice()
        .iter()
        .filter_map(|x| match x {
            Action::Decided { seq, value } => Some((*seq, value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(decided, vec![(1, Some(V(1))), (2, Some(V(2)))], "decisions are reported again, in order");
    assert!(a.as_slice().iter().all(|x| !matches!(x, Action::Persist(_))), "replaying writes nothing");
    assert!(a.as_slice().iter().any(|x| matches!(x, Action::SetTimer { timer: EngineTimer::Tick, .. })));
    // Seq 3 was pre-prepared before the crash: the next proposal takes seq 4.
    let mut b = Actions::new();
    assert_eq!(fresh.propose(V(4), &mut b), Ok(4));
    // And it still claims what it pre-prepared at seq 3 in a VIEW-CHANGE.
    let vc = fresh.build_view_change(1);
    assert!(vc.pre_prepared.iter().any(|q| q.seq == 3 && q.digest == net.digest(3)));
}

#[test]
fn a_replica_that_prepared_keeps_claiming_it_after_recovery() {
    let mut net = Net::new();
    net.drop = Box::new(|_, _, m| m.kind() == "COMMIT");
    net.propose(0, 5);
    net.run();
    let m = Membership::new(N, 1, FaultModel::Byzantine, N).unwrap();
    let mut fresh: Engine<V> = Engine::new(r(2), m, net.keys[2].clone(), cfg());
    let mut a = Actions::new();
    fresh.recover(net.persisted[2].clone(), &mut a);
    let vc = fresh.build_view_change(1);
    assert_eq!(vc.prepared, vec![PrepareClaim { seq: 1, digest: net.digest(5), view: 0 }]);
    // A conflicting PRE-PREPARE for (0, 1) is still refused after the restart.
    let d = net.digest(6);
    let pp =
        PbftMsg::PrePrepare { view: 0, seq: 1, value: V(6), auth: net.auth(0, 2, &bytes::pre_prepare(7, 0, 1, &d)) };
    let mut b = Actions::new();
    fresh.on_message(r(0), pp, &AnyValue, &mut b);
    assert!(b.as_slice().iter().any(|x| matches!(x, Action::Rejected { reason: "conflicting PRE-PREPARE", .. })));
}

#[test]
fn a_replica_that_missed_the_new_view_gets_it_when_it_retransmits() {
    let mut net = Net::new();
    net.drop = Box::new(|_, to, m| m.kind() == "NEW-VIEW" && to == r(3));
    for i in 0..N {
        net.view_change(i);
    }
    net.run();
    assert!(!net.engines[3].active());
    net.drop = Box::new(|_, _, _| false);
    net.tick_all(); // replica 3 repeats its VIEW-CHANGE; replica 1 answers with the NEW-VIEW
    assert!(net.engines[3].active() && net.engines[3].view() == 1);
}

#[test]
fn the_validity_hook_is_consulted_before_preparing() {
    struct Odd;
    impl Validity<V> for Odd {
        fn check(&self, _seq: u64, v: &V) -> Result<(), &'static str> {
            if v.0 % 2 == 1 {
                Ok(())
            } else {
                Err("even value")
            }
        }
    }
    let mut net = Net::new();
    let d = net.digest(4);
    let pp =
        PbftMsg::PrePrepare { view: 0, seq: 1, value: V(4), auth: net.auth(0, 1, &bytes::pre_prepare(7, 0, 1, &d)) };
    let mut a = Actions::new();
    net.engines[1].on_message(r(0), pp, &Odd, &mut a);
    assert!(a.as_slice().iter().any(|x| matches!(x, Action::Rejected { reason: "even value", .. })));
    assert!(
        !a.as_slice().iter().any(|x| matches!(
            x,
            Action::Broadcast { msg: PbftMsg::Prepare { .. } } | Action::Send { msg: PbftMsg::Prepare { .. }, .. }
        )),
        "no PREPARE"
    );
}

#[test]
fn a_replica_left_in_an_old_view_learns_the_new_one() {
    let mut net = Net::new();
    // Replica 0 (the primary of view 0) is cut off while the others change view.
    net.drop = Box::new(|from, to, _| from == r(0) || to == r(0));
    for i in 1..N {
        net.view_change(i);
    }
    net.run();
    for i in 1..N {
        assert!(net.engines[i].active() && net.engines[i].view() == 1, "replica {i}");
    }
    // Back on the network, it gets messages of view 1 only: it holds them.
    net.drop = Box::new(|_, _, _| false);
    net.propose(1, 5);
    net.run();
    assert_eq!(net.engines[0].view(), 0);
    assert!(net.values(0).is_empty());
    // Its tick notices a later view; the NEW-VIEW it is sent proves it.
    net.tick_all();
    assert!(net.engines[0].active() && net.engines[0].view() == 1);
    assert_eq!(net.values(0), vec![Some(5)], "the held messages of view 1 were replayed");
}

/// Random, mostly malformed messages from one replica: no panic, nothing
/// decided, and the replicas still work afterwards.
#[test]
fn random_garbage_neither_panics_nor_breaks_anything() {
    let mut net = Net::new();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let pick = |r: u64| match r % 6 {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - 3,
        3 => r % 4,
        4 => r % 20,
        _ => r,
    };
    for _ in 0..5000 {
        let (a, b, c) = (rand(), rand(), rand());
        let (view, seq) = (pick(a), pick(b));
        let digest = Digest([(c & 0xff) as u8; 32]);
        let to = 1 + (c % 3) as usize;
        let auth = match c % 3 {
            0 => net.auth(0, to, &bytes::prepare(7, view, seq, &digest)),
            1 => Auth(vec![quorate_core::crypto::Mac([1; 32]); (c % 7) as usize]),
            _ => net.engines[0].auth_all(&bytes::commit(7, view, seq, &digest)),
        };
        let msg = match a % 10 {
            0 => PbftMsg::PrePrepare { view, seq, value: V(c), auth },
            1 => PbftMsg::Prepare { view, seq, digest, auth },
            2 => PbftMsg::Commit { view, seq, digest, auth },
            3 => PbftMsg::Checkpoint { seq, digest, auth },
            4 => PbftMsg::Status { view, active: c % 2 == 0, stable: pick(c), decided: pick(c >> 8), auth },
            5 => PbftMsg::Decided { entries: vec![DecidedEntry { seq, value: Some(V(c)) }], auth },
            6 => PbftMsg::Fetch { seq, digest },
            7 => PbftMsg::Value { seq, value: V(c) },
            8 => {
                let body = ViewChange {
                    view,
                    replica: r(0),
                    stable: pick(c) / 4 * 4,
                    checkpoints: vec![(pick(c >> 3), digest)],
                    prepared: vec![PrepareClaim { seq, digest, view: pick(c >> 5) }],
                    pre_prepared: vec![PrePrepareClaim { seq, digest, view: pick(c >> 7) }],
                };
                let sig = net.keys[0].sign(&bytes::view_change(7, &body));
                PbftMsg::ViewChange(Box::new(Signed { body, sig }))
            }
            _ => {
                let body =
                    NewView { view, view_changes: Vec::new(), checkpoint: (seq, digest), chosen: vec![(seq, digest)] };
                let sig = net.keys[view as usize % N].sign(&bytes::new_view(7, &body));
                PbftMsg::NewView(Box::new(Signed { body, sig }))
            }
        };
        net.input(to, r(0), msg);
        net.queue.retain(|(from, _, _)| *from != r(0));
    }
    net.run();
    for i in 1..N {
        assert!(net.decided[i].is_empty(), "replica {i} decided garbage");
    }
    // One faulty replica cannot have moved the others to another view, and they still order.
    net.drop = Box::new(|from, to, _| from == r(0) || to == r(0));
    let primary = net.engines[1].primary().index();
    if net.engines[1].active() && primary != 0 {
        net.propose(primary, 42);
    } else {
        for i in 1..N {
            net.view_change(i);
        }
        net.run();
        let p = net.engines[1].primary().index();
        net.propose(p, 42);
    }
    net.run();
    for _ in 0..3 {
        net.tick_all();
    }
    for i in 1..N {
        assert_eq!(net.values(i), vec![Some(42)], "replica {i}");
    }
}

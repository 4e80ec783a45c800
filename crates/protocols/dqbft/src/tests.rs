//! DQPBFT and Destiny in the simulator: agreement, linearizability and
//! liveness, fault free, with a crashed replica (its D-instance and, for
//! replica 0, the O-instance change views), with each Byzantine strategy,
//! and with crash and recovery.

use crate::{Destiny, Dqbft};
use quorate_core::machine::Protocol;
use quorate_sim::{run, Fault, Report, Scenario};
use std::time::Duration;

fn scenario(seed: u64, clients: usize, secs: u64) -> Scenario<Dqbft> {
    scenario_of::<Dqbft>(seed, clients, secs)
}

fn scenario_of<P: Protocol>(seed: u64, clients: usize, secs: u64) -> Scenario<P> {
    let mut sc = Scenario::<P>::new(1).with_seed(seed).with_clients(clients).with_duration(Duration::from_secs(secs));
    sc.workload =
        std::sync::Arc::new(quorate_sim::workload::Kv { payload: 16, contention: 0.2, read_only_gets: false });
    sc
}

/// Every check judged and passed, and the clients got work done.
#[track_caller]
fn assert_ok(r: &Report) {
    r.assert_ok();
    assert!(r.completed > 100, "only {} operations completed", r.completed);
}

fn sent(r: &Report, kind: &str) -> u64 {
    r.messages_by_kind.get(kind).map_or(0, |k| k.count)
}

#[test]
fn fault_free() {
    for seed in 1..=2 {
        let r = run(scenario(seed, 8, 5).judged()).expect("valid scenario");
        assert_ok(&r);
        assert_eq!(sent(&r, "D-VIEWCHANGE") + sent(&r, "O-VIEWCHANGE"), 0, "no view change without faults");
        assert!(sent(&r, "O-PREPREPARE") > 0 && sent(&r, "D-PREPREPARE") > 0);
    }
}

#[test]
fn a_crashed_coordinator_and_o_primary_are_replaced() {
    for replica in [0, 2] {
        let mut sc = scenario(3, 8, 14);
        sc.faults.push(Fault::Crash { replica, at: Duration::from_secs(2) });
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
        assert!(sent(&r, "D-NEWVIEW") > 0, "r{replica}: its D-instance kept its crashed coordinator");
        if replica == 0 {
            assert!(r.max_view >= 1, "the crashed O-primary was not replaced");
        }
    }
}

fn with_byzantine(strategy: &str, replica: u32, seed: u64) -> Report {
    with_byzantine_of::<Dqbft>(strategy, replica, seed)
}

fn with_byzantine_of<P: Protocol>(strategy: &str, replica: u32, seed: u64) -> Report {
    let mut sc = scenario_of::<P>(seed, 8, 14);
    sc.faults.push(Fault::Byzantine { replica, strategy: strategy.to_string() });
    run(sc.judged()).expect("valid scenario")
}

#[test]
fn a_silent_coordinator_stalls_only_its_instance_until_its_view_change() {
    let r = with_byzantine("silent-coordinator", 1, 1);
    assert_ok(&r);
    assert!(sent(&r, "D-NEWVIEW") > 0, "the silent coordinator was not replaced");
    // (The faulty replica itself suspects the O-primary, alone: its own
    // proposals, which nobody got, are never ordered.)
    assert_eq!(r.max_view, 0, "the O-instance had no reason to change views");
}

#[test]
fn a_silent_o_primary_is_replaced() {
    let r = with_byzantine("silent-o-primary", 0, 2);
    assert_ok(&r);
    assert!(r.max_view >= 1, "the silent O-primary was not replaced");
}

#[test]
fn silent_and_non_flooding_replicas_change_nothing_for_the_others() {
    for (strategy, replica) in [("silent", 3), ("no-flood", 1)] {
        let r = with_byzantine(strategy, replica, 4);
        assert_ok(&r);
    }
}

#[test]
fn a_replica_killed_and_restarted_catches_up() {
    let mut sc = scenario(5, 8, 16);
    sc.faults.push(Fault::Crash { replica: 2, at: Duration::from_secs(2) });
    sc.faults.push(Fault::Recover { replica: 2, at: Duration::from_secs(6) });
    let r = run(sc.judged()).expect("valid scenario");
    assert_ok(&r);
}

#[test]
fn equivocating_coordinators_and_o_primaries_change_nothing_for_the_others() {
    for (strategy, replica) in [("equivocate-coordinator", 1), ("equivocate-o-primary", 0)] {
        let r = with_byzantine(strategy, replica, 2);
        assert_ok(&r);
    }
}

#[test]
fn an_o_primary_ordering_undisseminated_slots_gains_nothing() {
    // The slot's coordinator sees the reference (in the O-PrePrepare that
    // every backup holds back for want of the slot) and fills it with a
    // no-op at once: the O-batch goes through and execution keeps going.
    let clean = run(scenario_of::<Dqbft>(2, 8, 14).judged()).expect("valid scenario");
    for partial_in_flight in [1, 4] {
        let mut sc = scenario_of::<Dqbft>(2, 8, 14);
        sc.config.partial_in_flight = partial_in_flight;
        sc.faults.push(Fault::Byzantine { replica: 0, strategy: "order-undisseminated".into() });
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
        assert!(
            r.completed * 2 > clean.completed,
            "partial_in_flight {partial_in_flight}: {} operations against {} without the attack",
            r.completed,
            clean.completed
        );
    }
}

#[test]
fn a_client_assigned_elsewhere_that_sends_everywhere_gains_nothing() {
    let mut sc = scenario(3, 8, 8);
    sc.faults.push(Fault::FaultyClient { strategy: "duplicate-requests".to_string() });
    let r = run(sc.judged()).expect("valid scenario");
    assert_ok(&r);
    assert!(sent(&r, "ASSIGNED") >= 2, "the ASSIGN was not executed by f+1 replicas");
    assert!(sent(&r, "FORWARD") > 0, "replicas relay the duplicates to the client's coordinator");
}

/// The core's generic faulty clients (bad signatures, reused sequence
/// numbers, one sequence number split over two operations) hurt nobody else.
#[test]
fn generic_faulty_clients_do_not_break_correct_ones() {
    for strategy in ["bad-signature", "reuse-seq", "split-requests"] {
        let mut sc = scenario(3, 4, 8);
        sc.faults.push(Fault::FaultyClient { strategy: strategy.to_string() });
        let r = run(sc.judged()).expect("valid scenario");
        assert_eq!(r.faulty_clients, 1, "{strategy}");
        assert_ok(&r);
    }
}

/// The runtime test `kill_and_restart_each_replica_under_load` in the
/// simulator: each replica in turn crashes under load (the O-primary and
/// every instance's coordinator of the time) and recovers from its log
/// 2.3 s later, and the next one crashes right after. With the last one
/// down, every instance needs each recovered replica. Seeds and gaps that
/// found two bugs: a recovered replica asked its state of the replica that
/// crashed next, over and over (the O-instance and a D-instance took turns
/// restarting the transfer); a state transfer took no D-checkpoints, so a
/// D-instance stayed behind its window. The liveness bound is the command
/// line's (8 s): the scenario's default (30 s) outlasts the run.
#[test]
fn each_replica_crashed_and_recovered_in_turn_under_load() {
    for (seed, gap) in [(1, 200), (1, 100)] {
        let mut sc = scenario(seed, 4, 22);
        sc.liveness_bound = Some(Duration::from_secs(8));
        let mut t = 2000;
        for replica in 0..4 {
            sc.faults.push(Fault::Crash { replica, at: Duration::from_millis(t) });
            t += 2300;
            if replica < 3 {
                sc.faults.push(Fault::Recover { replica, at: Duration::from_millis(t) });
                t += gap;
            }
        }
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
    }
}

/// A replica restarted from its log must not propose before every one of
/// its instances has replayed its records (PBFT §4.2: the primary assigns a
/// sequence number to one value per view, and that holds across a restart).
/// The O-primary, crashed before its first checkpoint and back 100 ms
/// later (no view change yet), used to replay its D-instances first; their decisions were queued for ordering
/// and the still empty O-instance proposed them at O-slot 1, contradicting
/// the PRE-PREPARE its log held there (found by the runtime test
/// `kill_and_restart_each_replica_under_load`).
#[test]
fn a_primary_restarted_before_its_view_change_proposes_nothing_before_its_log_is_replayed() {
    for seed in 1..=2 {
        let mut sc = scenario(seed, 4, 6);
        // Before the first checkpoint: the O-log from slot 1 is replayed.
        sc.faults.push(Fault::Crash { replica: 0, at: Duration::from_millis(15) });
        sc.faults.push(Fault::Recover { replica: 0, at: Duration::from_millis(115) });
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
    }
}

/// The same restart in Destiny (Linear Hybster instances, trusted counters
/// restored from the durable log): nothing is proposed before the log is
/// replayed.
#[test]
fn destiny_a_primary_restarted_before_its_view_change_proposes_nothing_before_its_log_is_replayed() {
    for seed in 1..=2 {
        let mut sc = scenario_of::<Destiny>(seed, 6, 6);
        sc.faults.push(Fault::Crash { replica: 0, at: Duration::from_millis(15) });
        sc.faults.push(Fault::Recover { replica: 0, at: Duration::from_millis(115) });
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
    }
}

// Destiny: 2f+1 = 3 replicas, Linear Hybster in every instance, one
// threshold-signed answer per D-slot.

#[test]
fn destiny_fault_free() {
    for seed in 1..=2 {
        let r = run(scenario_of::<Destiny>(seed, 8, 5).judged()).expect("valid scenario");
        assert_ok(&r);
        assert_eq!(r.n, 3);
        assert_eq!(sent(&r, "D-VIEWCHANGE") + sent(&r, "O-VIEWCHANGE"), 0, "no view change without faults");
        // Linear: shares go to the collector, one certificate comes back
        // (all-to-all votes would be n-1 times as many as proposals).
        assert!(sent(&r, "D-COMMITSIG") <= sent(&r, "D-PREPARE") && sent(&r, "D-COMMIT") <= sent(&r, "D-PREPARE"));
        assert!(sent(&r, "EXECPROOF") > 0 && sent(&r, "REPLY") == 0, "answers are threshold-signed");
    }
}

#[test]
fn destiny_a_crashed_coordinator_and_o_primary_are_replaced() {
    for replica in [0, 2] {
        let mut sc = scenario_of::<Destiny>(3, 8, 14);
        sc.faults.push(Fault::Crash { replica, at: Duration::from_secs(2) });
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
        assert!(sent(&r, "D-NEWVIEW") > 0, "r{replica}: its D-instance kept its crashed coordinator");
        if replica == 0 {
            assert!(r.max_view >= 1, "the crashed O-primary was not replaced");
        }
    }
}

#[test]
fn destiny_equivocation_is_refused_by_the_trusted_counter() {
    // The trusted subsystem signs one value per counter value: the second
    // PREPARE carries a share on another statement, which its receivers
    // refuse (and take as proof that its sender is faulty); the second
    // value gathers no certificate, and the first one is ordered by the
    // primary and the replicas that got it.
    for (strategy, replica) in [("equivocate-coordinator", 1), ("equivocate-o-primary", 0)] {
        let r = with_byzantine_of::<Destiny>(strategy, replica, 2);
        assert_ok(&r);
        assert!(
            r.rejected.get("PREPARE share on another statement").is_some_and(|c| *c > 0),
            "{strategy}: {:?}",
            r.rejected
        );
    }
}

#[test]
fn destiny_forged_shares_change_nothing() {
    let r = with_byzantine_of::<Destiny>("forge-votes", 1, 4);
    assert_ok(&r);
}

#[test]
fn destiny_a_silent_coordinator_stalls_only_its_instance() {
    let r = with_byzantine_of::<Destiny>("silent-coordinator", 1, 1);
    assert_ok(&r);
    assert!(sent(&r, "D-NEWVIEW") > 0, "the silent coordinator was not replaced");
    assert_eq!(r.max_view, 0, "the O-instance had no reason to change views");
}

#[test]
fn destiny_an_o_primary_ordering_undisseminated_slots_is_replaced() {
    let r = with_byzantine_of::<Destiny>("order-undisseminated", 0, 2);
    assert_ok(&r);
    assert!(r.max_view >= 1, "the O-primary kept stalling execution");
}

#[test]
fn destiny_a_replica_killed_and_restarted_catches_up() {
    let mut sc = scenario_of::<Destiny>(5, 8, 16);
    sc.faults.push(Fault::Crash { replica: 2, at: Duration::from_secs(2) });
    sc.faults.push(Fault::Recover { replica: 2, at: Duration::from_secs(6) });
    let r = run(sc.judged()).expect("valid scenario");
    assert_ok(&r);
}

/// Destiny's machines with dealt BLS keys (as the runtime gives them), no
/// simulator: three replicas and a client whose scheme is BLS over the
/// group's public material, messages carried in order and timers fired
/// when nothing else is pending. The client completes only if the answers'
/// threshold signatures are real BLS (a modelled share does not verify).
#[test]
fn destiny_with_dealt_bls_keys_answers_a_client() {
    use crate::flavor::DestinyKeys;
    use quorate_apps::{KvOp, KvReply, KvStore};
    use quorate_core::crypto::Ed25519Crypto;
    use quorate_core::ids::{ClientId, NodeId, ReplicaId};
    use quorate_core::machine::{ClientContext, Effect, Input, Outbox, ReplicaContext, ReplicaMachine};
    use quorate_core::membership::FaultModel;
    use quorate_core::time::Time;
    use quorate_threshsign::{destiny, keygen_seeded};
    use std::collections::{HashMap, VecDeque};
    use std::sync::Arc;

    type M = <Destiny as Protocol>::Message;
    type T = <Destiny as Protocol>::Timer;
    let n = 3;
    let m = quorate_core::membership_for::<Destiny>(n, 1, FaultModel::Byzantine).unwrap();
    let client_id = ClientId(1);
    let mut nodes: Vec<NodeId> = (0..n as u32).map(|r| ReplicaId(r).into()).collect();
    nodes.push(NodeId::Client(client_id));
    let cryptos = Ed25519Crypto::deterministic(3, &nodes);
    let deal = keygen_seeded(&destiny::group(n as u32, 1), 9).unwrap();
    let public = Arc::new(deal.public.to_bytes());
    let cfg = crate::Config::default();
    let mut replicas: Vec<Box<dyn ReplicaMachine<Destiny>>> = deal
        .replicas
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let (t, u) = k.into_parts();
            let ctx = ReplicaContext {
                id: ReplicaId(i as u32),
                membership: m.clone(),
                crypto: Arc::new(cryptos[i].clone()),
                service: Box::new(KvStore::new()),
                keys: DestinyKeys::Dealt {
                    trusted: t.to_secret_bytes(),
                    untrusted: u.to_secret_bytes(),
                    public: Arc::clone(&public),
                },
            };
            Destiny::replica(ctx, &cfg)
        })
        .collect();
    let ctx = ClientContext {
        id: client_id,
        first_seq: 0,
        nearest: m.round_from(ReplicaId(1)),
        membership: m.clone(),
        crypto: Arc::new(cryptos[n].clone()),
        public_keys: Some(Arc::clone(&public)),
    };
    let mut client = Destiny::client(ctx, &cfg);

    // Node index: replicas 0..n, the client n.
    let mut queue: VecDeque<(NodeId, usize, M)> = VecDeque::new();
    let mut timers: HashMap<(usize, T), Time> = HashMap::new();
    let mut now = Time(0);
    let route = |from: usize,
                 e: Effect<Destiny>,
                 queue: &mut VecDeque<(NodeId, usize, M)>,
                 timers: &mut HashMap<(usize, T), Time>,
                 now: Time|
     -> Option<bytes::Bytes> {
        let me = nodes[from];
        match e {
            Effect::Send { to: NodeId::Replica(r), msg } => queue.push_back((me, r.index(), msg)),
            Effect::Send { to: NodeId::Client(_), msg } => queue.push_back((me, n, msg)),
            Effect::Broadcast { msg } => {
                (0..n).filter(|&r| r != from).for_each(|r| queue.push_back((me, r, msg.clone())));
            }
            Effect::Multicast { to, msg } => to.iter().for_each(|r| queue.push_back((me, r.index(), msg.clone()))),
            Effect::SetTimer { timer, after } => {
                timers.insert((from, timer), Time(now.0 + after.as_nanos() as u64));
            }
            Effect::CancelTimer { timer } => {
                timers.remove(&(from, timer));
            }
            Effect::Complete { result } => return Some(result),
            Effect::Persist(_) | Effect::PersistCheckpoint(_) | Effect::Event(_) => {}
        }
        None
    };
    for (i, r) in replicas.iter_mut().enumerate() {
        let mut out = Outbox::new();
        r.handle(now, Input::Start, &mut out);
        for e in out.drain() {
            route(i, e, &mut queue, &mut timers, now);
        }
    }
    let ops = [
        KvOp::Put { key: "k".into(), value: "v1".into() },
        KvOp::Put { key: "k".into(), value: "v2".into() },
        KvOp::Get { key: "k".into() },
    ];
    let mut replies = Vec::new();
    for op in ops {
        let mut out = Outbox::new();
        client.invoke(now, op.encode(), false, &mut out);
        let mut result = None;
        for e in out.drain() {
            result = result.or(route(n, e, &mut queue, &mut timers, now));
        }
        let mut steps = 0;
        while result.is_none() {
            steps += 1;
            assert!(steps < 100_000, "no answer to {op:?}");
            let (from, to, input) = match queue.pop_front() {
                Some((from, to, msg)) => (from, to, Input::Message { from, msg }),
                None => {
                    let (&(node, ref timer), &at) = timers.iter().min_by_key(|(_, at)| **at).expect("a timer");
                    let (timer, from) = (timer.clone(), nodes[node]);
                    timers.remove(&(node, timer.clone()));
                    now = now.max(at);
                    (from, node, Input::Timer(timer))
                }
            };
            let _ = from;
            let mut out = Outbox::new();
            if to == n {
                client.handle(now, input, &mut out);
            } else {
                replicas[to].handle(now, input, &mut out);
            }
            for e in out.drain() {
                result = result.or(route(to, e, &mut queue, &mut timers, now));
            }
        }
        replies.push(KvReply::decode(&result.unwrap()).unwrap());
    }
    assert_eq!(replies[1], KvReply::Value(Some("v1".into())), "{replies:?}");
    assert_eq!(replies[2], KvReply::Value(Some("v2".into())), "{replies:?}");
    assert!(replicas.iter().filter(|r| r.executed() == 3).count() >= 2, "f+1 replicas executed the three operations");
}

/// The liveness checker must be seen to fire: a test double of DQPBFT whose
/// replicas never suspect anyone (request, payload and view-change timeouts
/// of an hour, so no D-instance view change, §3.2.4), with replica 3's
/// coordinator silent for good. Its clients' requests can only be proposed
/// in its own D-instance (§3.2.5), so they never complete: the run is judged
/// against the bound of the default settings and fails liveness, and only
/// liveness.
#[test]
fn liveness_fails_when_a_silent_coordinator_is_never_replaced() {
    let mut sc = scenario(13, 8, 5);
    let hour = Duration::from_secs(3600);
    sc.config = crate::Config {
        request_timeout: hour,
        payload_timeout: hour,
        view_change_timeout: hour,
        ..crate::Config::default()
    };
    sc.liveness_bound = Some(Dqbft::liveness_bound(&crate::Config::default(), 1));
    sc.faults.push(Fault::Byzantine { replica: 3, strategy: "silent".into() });
    let r = run(sc.judged()).expect("valid scenario");
    assert!(r.liveness_judged && !r.liveness_ok, "{}", r.summary());
    assert!(!r.ok());
    assert_eq!(r.safety_violations, 0, "{}", r.summary());
    assert!(r.linearizable, "{}", r.summary());
}

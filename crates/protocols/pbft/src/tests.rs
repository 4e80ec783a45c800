//! PBFT in the simulator: agreement, linearizability and liveness, fault
//! free, with a crashed primary, with each Byzantine strategy, with crash
//! and recovery, and with a partitioned replica catching up.

use crate::Pbft;
use quorate_sim::{run, Fault, Report, Scenario};
use std::time::Duration;

fn scenario(seed: u64, clients: usize, secs: u64) -> Scenario<Pbft> {
    let mut sc =
        Scenario::<Pbft>::new(1).with_seed(seed).with_clients(clients).with_duration(Duration::from_secs(secs));
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
        assert_eq!(sent(&r, "VIEW-CHANGE"), 0, "no view change without faults");
    }
}

#[test]
fn a_crashed_primary_is_replaced() {
    let mut sc = scenario(3, 8, 12);
    sc.faults.push(Fault::Crash { replica: 0, at: Duration::from_secs(2) });
    let r = run(sc.judged()).expect("valid scenario");
    assert_ok(&r);
    assert!(r.max_view >= 1, "no view change after the primary crashed");
    assert!(sent(&r, "NEW-VIEW") > 0);
}

fn with_byzantine(strategy: &str, replica: u32, seed: u64) -> Report {
    let mut sc = scenario(seed, 8, 12);
    sc.faults.push(Fault::Byzantine { replica, strategy: strategy.to_string() });
    run(sc.judged()).expect("valid scenario")
}

#[test]
fn a_silent_or_non_proposing_primary_is_replaced() {
    for strategy in ["silent", "silent-primary"] {
        let r = with_byzantine(strategy, 0, 1);
        assert_ok(&r);
        assert!(r.max_view >= 1, "{strategy}: the primary was not replaced");
        assert!(sent(&r, "FORWARD") > 0, "{strategy}: backups relay the clients' retransmissions");
    }
}

#[test]
fn an_equivocating_primary_is_replaced() {
    for seed in 1..=2 {
        let r = with_byzantine("equivocate", 0, seed);
        assert_ok(&r);
        assert!(r.max_view >= 1, "equivocation went unpunished");
    }
}

#[test]
fn a_primary_that_skips_sequence_numbers_is_replaced_and_the_gaps_filled() {
    let r = with_byzantine("skip-seq", 0, 2);
    assert_ok(&r);
    assert!(r.max_view >= 1, "the gap was never filled by a view change");
}

#[test]
fn conflicting_and_garbage_votes_change_nothing() {
    for replica in [0, 2] {
        let r = with_byzantine("bad-votes", replica, 1);
        assert_ok(&r);
        assert_eq!(r.max_view, 0, "bad votes of one replica forced a view change");
    }
}

#[test]
fn a_crashed_replica_recovers_from_its_log() {
    for (seed, replica) in [(1, 1), (2, 0)] {
        let mut sc = scenario(seed, 8, 12);
        sc.config.checkpoint_period = 16;
        sc.faults.push(Fault::Crash { replica, at: Duration::from_secs(3) });
        sc.faults.push(Fault::Recover { replica, at: Duration::from_secs(5) });
        let r = run(sc.judged()).expect("valid scenario");
        assert_ok(&r);
        assert!(sent(&r, "CHECKPOINT") > 0);
    }
}

#[test]
fn a_partitioned_replica_catches_up_by_state_transfer() {
    let mut sc = scenario(4, 8, 12);
    sc.config.checkpoint_period = 16;
    sc.faults.push(Fault::Partition {
        groups: vec![vec![0, 1, 2], vec![3]],
        from: Duration::from_secs(1),
        until: Some(Duration::from_secs(4)),
    });
    let r = run(sc.judged()).expect("valid scenario");
    assert_ok(&r);
    assert!(sent(&r, "STATE-REPLY") > 0, "replica 3 caught up without a state transfer");
}

#[test]
fn a_lossy_network_before_stabilisation_delays_but_does_not_stop() {
    let mut sc = scenario(5, 8, 12);
    sc.net.gst_ns = 4_000_000_000;
    sc.net.pre_gst_loss = 0.05;
    let r = run(sc.judged()).expect("valid scenario");
    assert_ok(&r);
    assert!(sent(&r, "STATUS") > 0, "lost messages were never retransmitted");
}

#[test]
fn runs_are_deterministic() {
    let mut sc = scenario(9, 4, 3);
    sc.faults.push(Fault::Crash { replica: 0, at: Duration::from_secs(1) });
    let a = run(sc.clone().judged()).expect("valid scenario");
    let b = run(sc.judged()).expect("valid scenario");
    assert_eq!(a.trace_digest, b.trace_digest);
}

#[test]
fn faulty_clients_do_not_break_correct_ones() {
    for strategy in ["bad-signature", "reuse-seq", "split-requests"] {
        let mut sc = scenario(3, 4, 8);
        sc.workload =
            std::sync::Arc::new(quorate_sim::workload::Kv { payload: 16, contention: 0.5, read_only_gets: false });
        sc.faults.push(Fault::FaultyClient { strategy: strategy.to_string() });
        let r = run(sc.judged()).expect("valid scenario");
        assert_eq!(r.faulty_clients, 1);
        assert_ok(&r);
    }
}

/// The liveness checker must be seen to fire: with 2 of 4 replicas crashed
/// for good no 2f+1 quorum is left (§4.2), so nothing completes after the
/// crash; the run is judged and fails liveness, and only liveness.
#[test]
fn liveness_fails_with_two_of_four_replicas_crashed() {
    let mut sc = scenario(11, 4, 5);
    sc.faults.push(Fault::Crash { replica: 2, at: Duration::from_secs(1) });
    sc.faults.push(Fault::Crash { replica: 3, at: Duration::from_secs(1) });
    let r = run(sc.judged()).expect("valid scenario");
    assert!(r.liveness_judged && !r.liveness_ok, "{}", r.summary());
    assert!(!r.ok());
    assert_eq!(r.safety_violations, 0, "{}", r.summary());
    assert!(r.linearizable, "{}", r.summary());
}

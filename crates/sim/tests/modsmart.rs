//! Mod-SMaRt in the simulator: fault-free, each adversary strategy, crashes
//! and recovery, partitions, state transfer, many seeds. Every run goes
//! through all checkers (agreement, at-most-once, digests, linearizability,
//! liveness).

use quorate_core::membership::FaultModel;
use quorate_modsmart::{Config, ModSmart};
use quorate_sim::{run, Fault, Report, Scenario};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn scenario(seed: u64) -> Scenario<ModSmart> {
    let mut sc = Scenario::<ModSmart>::new(1).with_seed(seed).with_duration(secs(12)).with_clients(6);
    // Request timeout 2 s: a regency change (two expiries, STOP, STOPDATA, SYNC) fits well inside 8 s.
    sc.liveness_bound = Some(secs(8));
    sc
}

fn check(report: &Report) {
    assert!(report.ok(), "{}", report.summary());
    assert!(report.completed > 0, "{}", report.summary());
}

#[test]
fn fault_free_bft() {
    let r = run(scenario(1)).unwrap();
    check(&r);
    assert_eq!(r.view_changes, 0);
}

#[test]
fn fault_free_cft() {
    let mut sc = scenario(2);
    sc.model = FaultModel::Crash;
    let r = run(sc).unwrap();
    check(&r);
    assert_eq!(r.n, 3);
}

#[test]
fn contention_on_one_key() {
    let mut sc = scenario(3);
    sc.workload = std::sync::Arc::new(quorate_sim::workload::Kv { contention: 1.0, payload: 64, read_only_gets: true });
    check(&run(sc).unwrap());
}

#[test]
fn same_seed_same_trace() {
    let a = run(scenario(4).with_fault(Fault::Crash { replica: 0, at: secs(2) })).unwrap();
    let b = run(scenario(4).with_fault(Fault::Crash { replica: 0, at: secs(2) })).unwrap();
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(a.events, b.events);
    let c = run(scenario(5).with_fault(Fault::Crash { replica: 0, at: secs(2) })).unwrap();
    assert_ne!(a.trace_digest, c.trace_digest);
}

#[test]
fn leader_crash_changes_regency_and_clients_continue() {
    for model in [FaultModel::Byzantine, FaultModel::Crash] {
        let mut sc = scenario(6).with_duration(secs(20)).with_fault(Fault::Crash { replica: 0, at: secs(2) });
        sc.model = model;
        let r = run(sc).unwrap();
        check(&r);
        assert!(r.view_changes > 0, "{}", r.summary());
        assert!(r.liveness_judged, "{}", r.summary());
    }
}

fn byzantine(strategy: &str, replica: u32, seed: u64) -> Report {
    let sc =
        scenario(seed).with_duration(secs(25)).with_fault(Fault::Byzantine { replica, strategy: strategy.to_string() });
    run(sc).unwrap()
}

#[test]
fn silent_leader() {
    let r = byzantine("silent", 0, 7);
    check(&r);
    assert!(r.view_changes > 0);
}

#[test]
fn equivocating_leader() {
    let r = byzantine("equivocate", 0, 8);
    check(&r);
    assert!(r.view_changes > 0, "{}", r.summary());
}

#[test]
fn invalid_batches_from_the_leader() {
    let r = byzantine("invalid-batch", 0, 9);
    check(&r);
    assert!(r.view_changes > 0);
}

#[test]
fn slow_leader_stays_under_the_timeout() {
    let r = byzantine("slow-leader", 0, 10);
    check(&r);
}

#[test]
fn forged_stopdata_and_proofs() {
    // Replica 1 forges STOPDATA; the leader crashes so a regency change happens (to 1, then 2).
    let sc = scenario(11)
        .with_duration(secs(30))
        .with_fault(Fault::Byzantine { replica: 1, strategy: "forge-stopdata".into() })
        .with_fault(Fault::Byzantine { replica: 0, strategy: "silent".into() });
    let mut sc = sc;
    // Two faulty replicas need f = 2. Two faulty leaders in a row, with the timeout doubling
    // after each unproductive regency, take about 2×2 s + 2×4 s before regency 2 decides.
    sc.f = 2;
    sc.duration = secs(40);
    sc.liveness_bound = Some(secs(20));
    let r = run(sc).unwrap();
    check(&r);
}

#[test]
fn replayed_messages() {
    check(&byzantine("replay", 2, 12));
    check(&byzantine("replay", 0, 13));
}

#[test]
fn faulty_clients() {
    for strategy in ["bad-signature", "reuse-seq", "split-requests"] {
        let sc = scenario(14).with_fault(Fault::FaultyClient { strategy: strategy.into() });
        check(&run(sc).unwrap());
    }
}

#[test]
fn crash_and_recover_from_durable_state() {
    let sc = scenario(15)
        .with_duration(secs(20))
        .with_fault(Fault::Crash { replica: 2, at: secs(2) })
        .with_fault(Fault::Recover { replica: 2, at: secs(6) });
    let r = run(sc).unwrap();
    check(&r);
}

#[test]
fn partitioned_replica_catches_up_by_state_transfer() {
    let mut sc = scenario(16).with_duration(secs(20)).with_fault(Fault::Partition {
        groups: vec![vec![0, 1, 2], vec![3]],
        from: secs(1),
        until: Some(secs(8)),
    });
    sc.config = Config { checkpoint_period: 16, ..Config::default() };
    let r = run(sc).unwrap();
    check(&r);
    // Replica 3 missed more than a checkpoint period and is level with the others at the end.
    assert!(r.checkpoints > 0, "{}", r.summary());
    let executed: Vec<u64> = r.executed.iter().map(|e| e.unwrap_or(0)).collect();
    assert!(r.states_installed > 0, "no state transfer: {}", r.summary());
    // Everybody executed the same number of operations, and (checked by every run) equal
    // counts mean equal state digests.
    assert!(executed.iter().all(|e| *e == executed[0] && *e > 0), "{executed:?}");
}

#[test]
fn lossy_network() {
    let mut sc = scenario(17).with_duration(secs(20));
    sc.net.loss = 0.02;
    check(&run(sc).unwrap());
}

#[test]
fn short_campaign() {
    // The long campaign (300 seeds) is `quorate sim --campaign --seeds 300`; CI runs this short one.
    for seed in 100..112 {
        let sc = quorate_sim::campaign_scenario(&scenario(seed), seed);
        let r = run(sc).unwrap();
        assert!(r.ok(), "seed {seed}: {}", r.summary());
    }
}

/// `--weights` builds a weighted membership; unit weights change nothing, and
/// a protocol whose rules count replicas refuses others (WHEAT, issue 20).
#[test]
fn unit_vote_weights_change_nothing_and_others_are_refused() {
    let plain = run(scenario(40)).unwrap();
    let mut sc = scenario(40);
    sc.vote_weights = vec![1; 4];
    let weighted = run(sc).unwrap();
    check(&weighted);
    assert_eq!(plain.trace_digest, weighted.trace_digest);
    let mut sc = scenario(40);
    sc.vote_weights = vec![2, 1, 1, 1];
    let e = run(sc).unwrap_err().to_string();
    assert!(e.contains("mod-smart") && e.contains("every weight must be 1"), "{e}");
    let mut sc = scenario(40);
    sc.vote_weights = vec![1, 1, 1];
    let e = run(sc).unwrap_err().to_string();
    assert!(e.contains("3 weights but there are 4 replicas"), "{e}");
}

//! Mod-SMaRt in the simulator, beyond the conformance suite
//! (`conformance.rs`): a faulty leader causes a regency change, forged STOPDATA changes nothing, a replica
//! partitioned for longer than a checkpoint period catches up by state
//! transfer, steady loss. Every run goes through all checkers (agreement,
//! at-most-once, digests, linearizability, liveness).

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
fn contention_on_one_key() {
    let mut sc = scenario(3);
    sc.workload = std::sync::Arc::new(quorate_sim::workload::Kv { contention: 1.0, payload: 64, read_only_gets: true });
    check(&run(sc).unwrap());
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

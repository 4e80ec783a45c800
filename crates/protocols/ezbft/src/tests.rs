//! EZBFT in the simulator: agreement on interfering commands, equal final
//! state, linearizable KV histories and liveness, from no contention to full.

use crate::Ezbft;
use quorate_sim::{run, Report, Scenario, WorkloadSpec};
use std::time::Duration;

fn kv(contention: f64, seed: u64, clients: usize) -> Report {
    let mut sc = Scenario::<Ezbft>::new(1).with_seed(seed).with_clients(clients).with_duration(Duration::from_secs(5));
    sc.workload = WorkloadSpec::Kv { payload: 16, contention, read_only_gets: false };
    run(sc).expect("valid scenario")
}

fn assert_ok(r: &Report) {
    assert_eq!(r.safety_violations, 0, "violations: {:?}", r.violations);
    assert!(r.linearizable, "not linearizable: {:?}", r.linearizability_detail);
    assert!(r.liveness_ok, "liveness: {:?}", r.liveness_detail);
    assert!(r.completed > 100, "only {} operations completed", r.completed);
}

#[test]
fn no_contention_takes_the_fast_path() {
    let r = kv(0.0, 1, 8);
    assert_ok(&r);
    // Fast path only: no COMMIT, no COMMITREPLY.
    assert!(r.messages_by_kind.get("COMMITFAST").is_some_and(|k| k.count > 0));
    assert!(!r.messages_by_kind.contains_key("COMMIT"), "{:?}", r.messages_by_kind.keys());
}

#[test]
fn full_contention_is_safe_and_live() {
    for seed in 1..=3 {
        let r = kv(1.0, seed, 8);
        assert_ok(&r);
        assert!(r.messages_by_kind.get("COMMIT").is_some_and(|k| k.count > 0), "contention takes the slow path");
    }
}

#[test]
fn partial_contention_is_safe_and_live() {
    for seed in 1..=3 {
        assert_ok(&kv(0.5, seed, 12));
    }
}

//! PBFT in the simulator: agreement, linearizability and liveness, fault
//! free, with a crashed primary, with each Byzantine strategy, with crash
//! and recovery, and with a partitioned replica catching up.

use crate::Pbft;
use quorate_sim::{run, Report, Scenario, WorkloadSpec};
use std::time::Duration;

fn scenario(seed: u64, clients: usize, secs: u64) -> Scenario<Pbft> {
    let mut sc =
        Scenario::<Pbft>::new(1).with_seed(seed).with_clients(clients).with_duration(Duration::from_secs(secs));
    sc.workload = WorkloadSpec::Kv { payload: 16, contention: 0.2, read_only_gets: false };
    sc
}

fn assert_ok(r: &Report) {
    assert_eq!(r.safety_violations, 0, "violations: {:?}", r.violations);
    assert!(r.linearizable, "not linearizable: {:?}", r.linearizability_detail);
    assert!(r.liveness_ok, "liveness: {:?}", r.liveness_detail);
    assert!(r.completed > 100, "only {} operations completed", r.completed);
}

fn sent(r: &Report, kind: &str) -> u64 {
    r.messages_by_kind.get(kind).map_or(0, |k| k.count)
}

#[test]
fn fault_free() {
    for seed in 1..=2 {
        let r = run(scenario(seed, 8, 5)).expect("valid scenario");
        assert_ok(&r);
        assert_eq!(sent(&r, "VIEW-CHANGE"), 0, "no view change without faults");
    }
}

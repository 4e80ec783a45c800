//! The checkers must be seen to fire: Mod-SMaRt is safe with at most f
//! faulty replicas (Sousa, thesis §3.5: any two WRITE or ACCEPT quorums of
//! ⌈(n+f+1)/2⌉ intersect in a correct replica), and two colluding replicas
//! of four (beyond f = 1) make the correct ones decide differently, which
//! the simulator's agreement checker must report.

use crate::ModSmart;
use quorate_sim::conformance::Suite;
use quorate_sim::Report;

fn collusion(colluders: &[u32], seed: u64) -> Report {
    Suite::<ModSmart>::new().with_scenario(|sc| sc.clients = 16).collusion(colluders, seed, 4)
}

#[test]
fn two_colluders_of_four_split_the_correct_replicas_and_agreement_fails() {
    let r = collusion(&[0, 1], 1);
    assert!(r.safety_violations > 0, "two colluding replicas beyond f went unnoticed: {}", r.summary());
    assert!(r.violations.iter().any(|v| v.contains("agreement")), "{:?}", r.violations);
    assert!(!r.ok());
    assert!(r.warnings.iter().any(|w| w.contains("exceed f = 1")), "the run is flagged as beyond f: {:?}", r.warnings);
}

#[test]
fn one_colluder_alone_is_within_f_and_harmless() {
    for leader_or_backup in [0, 1] {
        let r = collusion(&[leader_or_backup], 2);
        assert_eq!(r.safety_violations, 0, "replica {leader_or_backup}: {:?}", r.violations);
        assert!(r.linearizable, "{:?}", r.linearizability_detail);
        assert!(r.completed > 100, "only {} completed", r.completed);
    }
}

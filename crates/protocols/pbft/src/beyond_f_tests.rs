//! The checkers must be seen to fire: PBFT is safe with at most f faulty
//! replicas (Castro and Liskov, §4: any two quorums of 2f+1 intersect in a
//! correct replica), and two colluding replicas of four (beyond f = 1)
//! make the correct ones decide differently, which the simulator's
//! agreement checker must report.

use crate::Pbft;
use quorate_sim::conformance::Suite;
use quorate_sim::Report;

fn collusion(colluders: &[u32], seed: u64) -> Report {
    Suite::<Pbft>::new().with_scenario(|sc| sc.clients = 16).collusion(colluders, seed, 4)
}

#[test]
fn two_colluders_of_four_split_the_correct_replicas_and_agreement_fails() {
    let r = collusion(&[0, 1], 1);
    assert!(r.safety_violations > 0, "two colluding replicas beyond f went unnoticed: {}", r.summary());
    assert!(!r.ok());
    assert!(r.warnings.iter().any(|w| w.contains("exceed f = 1")), "the run is flagged as beyond f: {:?}", r.warnings);
}

#[test]
fn one_colluder_alone_is_within_f_and_harmless() {
    for primary_or_backup in [0, 1] {
        let r = collusion(&[primary_or_backup], 2);
        assert_eq!(r.safety_violations, 0, "replica {primary_or_backup}: {:?}", r.violations);
        assert!(r.linearizable, "{:?}", r.linearizability_detail);
        assert!(r.completed > 100, "only {} completed", r.completed);
    }
}

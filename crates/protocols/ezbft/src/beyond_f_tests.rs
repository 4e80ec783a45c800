//! The checkers must be seen to fire: EZBFT is safe with at most f faulty
//! replicas of 3f+1 (§IV-F), and two colluding replicas of four (beyond
//! f = 1) make correct replicas settle a space differently, which the
//! simulator's agreement checker must report.

use crate::Ezbft;
use quorate_sim::conformance::Suite;
use quorate_sim::Report;
use std::time::Duration;

fn collusion(colluders: &[u32], seed: u64) -> Report {
    Suite::<Ezbft>::new()
        .with_scenario(|sc| sc.liveness_bound = Some(Duration::from_secs(10)))
        .collusion(colluders, seed, 20)
}

#[test]
fn two_colluders_of_four_settle_a_space_differently_and_agreement_fails() {
    let r = collusion(&[0, 1], 1);
    assert!(r.safety_violations > 0, "two colluding replicas beyond f went unnoticed: {}", r.summary());
    assert!(!r.linearizable, "the colluders' CACHEDREPLYs give results no correct replica computed");
    assert!(!r.ok());
    assert!(r.warnings.iter().any(|w| w.contains("exceed f = 1")), "the run is flagged as beyond f: {:?}", r.warnings);
}

#[test]
fn one_colluder_alone_is_within_f_and_harmless() {
    for colluder in [0, 1] {
        let r = collusion(&[colluder], 2);
        assert_eq!(r.safety_violations, 0, "replica {colluder}: {:?}", r.violations);
        assert!(r.linearizable, "{:?}", r.linearizability_detail);
        assert!(r.liveness_judged && r.liveness_ok, "replica {colluder}: {:?}", r.liveness_detail);
        assert!(r.completed > 100, "only {} completed", r.completed);
    }
}

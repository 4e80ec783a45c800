//! The conformance suite must be seen to fail: on the toy fixed-sequencer
//! protocol, which tolerates no fault of its sequencer, and on a toy replica
//! that executes a different operation, the checks that must fire do, with
//! the check's name and the run's verdicts in the message; the correct toy
//! passes what it can.

mod toy;

use quorate_sim::conformance::Suite;
use toy::{Toy, ToyConfig};

#[test]
fn the_correct_toy_passes_fault_free_and_is_deterministic() {
    let suite = Suite::<Toy>::new();
    suite.fault_free().unwrap_or_else(|e| panic!("{e}"));
    suite.deterministic().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_replica_that_executes_differently_fails_fault_free_on_agreement() {
    let suite = Suite::<Toy>::new().with_config(ToyConfig { corrupt_replica: Some(1), ..ToyConfig::default() });
    let e = suite.fault_free().expect_err("a corrupt replica passed fault_free");
    assert_eq!(e.check, "fault_free");
    assert!(e.detail.contains("first violation"), "{e}");
}

#[test]
fn a_sequencer_that_cannot_be_replaced_fails_crash_for_good_on_liveness() {
    let e = Suite::<Toy>::new().crash_for_good().expect_err("the toy survived its sequencer's crash");
    assert_eq!(e.check, "crash_for_good");
    assert!(e.detail.contains("liveness FAILED"), "{e}");
}

#[test]
fn a_run_that_completes_too_little_fails() {
    let e = Suite::<Toy>::new().with_min_completed(u64::MAX).fault_free().expect_err("no run completes u64::MAX");
    assert!(e.detail.contains("operations completed"), "{e}");
}

#[test]
fn a_protocol_that_stays_live_beyond_f_fails_beyond_f_stalls() {
    // The toy's clients need f+1 = 2 matching replies: with replicas 2 and 3
    // crashed, the sequencer and replica 1 still answer, so the check, which
    // expects quorums of n-f, must refuse the run.
    let e = Suite::<Toy>::new().beyond_f_stalls().expect_err("the toy stalled with its sequencer up");
    assert_eq!(e.check, "beyond_f_stalls");
}

#[test]
fn a_protocol_claim_that_does_not_hold_fails_its_check() {
    let suite = Suite::<Toy>::new().expect("fault_free", "the toy sends no ORDER", |r| r.sent("ORDER") == 0);
    let e = suite.fault_free().expect_err("a false claim held");
    assert!(e.detail.contains("the toy sends no ORDER does not hold"), "{e}");
    // Claims about other checks are not judged there.
    suite.deterministic().unwrap_or_else(|e| panic!("{e}"));
}

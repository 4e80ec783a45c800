//! The checkers must be seen to fire beyond f, in both flavors.
//!
//! DQPBFT (n = 3f+1 = 4): the O-instance is PBFT, safe with at most f
//! faulty replicas (any two quorums of 2f+1 intersect in a correct one);
//! two colluders, the O-primary among them, order different O-batches at
//! the two correct replicas, which execute different requests at the same
//! position: the agreement checker must report it.
//!
//! Destiny (n = 2f+1 = 3): trusted counters keep the colluders from
//! telling the one correct replica two stories, and a correct replica
//! cannot disagree with itself; but f+1 = 2 π shares prove an answer to a
//! client (§4.3.2), and π is not trusted: two colluders certify answers
//! that no execution gave, which the linearizability checker must report.

use crate::{Destiny, Dqbft};
use quorate_core::machine::Protocol;
use quorate_sim::conformance::Suite;
use quorate_sim::Report;

fn collusion<P: Protocol>(colluders: &[u32], seed: u64) -> Report {
    Suite::<P>::new().with_scenario(|sc| sc.clients = 16).collusion(colluders, seed, 4)
}

fn assert_harmless(r: &Report, who: u32) {
    assert_eq!(r.safety_violations, 0, "replica {who}: {:?}", r.violations);
    assert!(r.linearizable, "replica {who}: {:?}", r.linearizability_detail);
    assert!(r.completed > 100, "replica {who}: only {} completed", r.completed);
}

#[test]
fn dqpbft_two_colluders_of_four_order_differently_at_the_correct_replicas_and_agreement_fails() {
    let r = collusion::<Dqbft>(&[0, 1], 1);
    assert!(r.safety_violations > 0, "two colluding replicas beyond f went unnoticed: {}", r.summary());
    assert!(r.violations.iter().any(|v| v.contains("agreement")), "{:?}", r.violations);
    assert!(!r.ok());
    assert!(r.warnings.iter().any(|w| w.contains("exceed f = 1")), "the run is flagged as beyond f: {:?}", r.warnings);
}

#[test]
fn dqpbft_one_colluder_alone_is_within_f_and_harmless() {
    for o_primary_or_backup in [0, 1] {
        assert_harmless(&collusion::<Dqbft>(&[o_primary_or_backup], 2), o_primary_or_backup);
    }
}

#[test]
fn destiny_two_colluders_of_three_certify_stale_answers_and_linearizability_fails() {
    let r = collusion::<Destiny>(&[0, 1], 1);
    assert_eq!(r.linearizability, "not_linearizable", "two colluders beyond f went unnoticed: {}", r.summary());
    assert!(!r.ok());
    assert!(r.warnings.iter().any(|w| w.contains("exceed f = 1")), "the run is flagged as beyond f: {:?}", r.warnings);
}

#[test]
fn destiny_one_colluder_alone_is_within_f_and_harmless() {
    for collector in [0, 1] {
        assert_harmless(&collusion::<Destiny>(&[collector], 2), collector);
    }
}

//! PBFT in the simulator, what its source states beyond the conformance
//! suite (`tests/conformance.rs`): a faulty primary is replaced by a view
//! change, gaps are filled, bad votes are harmless.

use crate::{Config, Pbft};
use quorate_sim::conformance::Suite;
use quorate_sim::{Fault, Report, Scenario};
use std::time::Duration;

fn suite() -> Suite<Pbft> {
    Suite::new().with_config(Config { checkpoint_period: 16, ..Config::default() })
}

fn scenario(seed: u64, secs: u64) -> Scenario<Pbft> {
    suite().scenario(seed, secs)
}

/// Every check judged and passed, and the clients got work done.
#[track_caller]
fn judged(sc: Scenario<Pbft>) -> Report {
    suite().judge("pbft", sc).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_crashed_primary_is_replaced() {
    let mut sc = scenario(3, 12);
    sc.faults.push(Fault::Crash { replica: 0, at: Duration::from_secs(2) });
    let r = judged(sc);
    assert!(r.max_view >= 1, "no view change after the primary crashed");
    assert!(r.sent("NEW-VIEW") > 0);
}

fn with_byzantine(strategy: &str, replica: u32, seed: u64) -> Report {
    let mut sc = scenario(seed, 12);
    sc.faults.push(Fault::Byzantine { replica, strategy: strategy.to_string() });
    judged(sc)
}

#[test]
fn a_silent_or_non_proposing_primary_is_replaced() {
    for strategy in ["silent", "silent-primary"] {
        let r = with_byzantine(strategy, 0, 1);
        assert!(r.max_view >= 1, "{strategy}: the primary was not replaced");
        assert!(r.sent("FORWARD") > 0, "{strategy}: backups relay the clients' retransmissions");
    }
}

#[test]
fn an_equivocating_primary_is_replaced() {
    for seed in 1..=2 {
        let r = with_byzantine("equivocate", 0, seed);
        assert!(r.max_view >= 1, "equivocation went unpunished");
    }
}

#[test]
fn a_primary_that_skips_sequence_numbers_is_replaced_and_the_gaps_filled() {
    let r = with_byzantine("skip-seq", 0, 2);
    assert!(r.max_view >= 1, "the gap was never filled by a view change");
}

#[test]
fn conflicting_and_garbage_votes_change_nothing() {
    for replica in [0, 2] {
        let r = with_byzantine("bad-votes", replica, 1);
        assert_eq!(r.max_view, 0, "bad votes of one replica forced a view change");
    }
}

#[test]
fn a_partitioned_replica_catches_up_by_state_transfer() {
    let mut sc = scenario(4, 12);
    sc.faults.push(Fault::Partition {
        groups: vec![vec![0, 1, 2], vec![3]],
        from: Duration::from_secs(1),
        until: Some(Duration::from_secs(4)),
    });
    let r = judged(sc);
    assert!(r.sent("STATE-REPLY") > 0, "replica 3 caught up without a state transfer");
}

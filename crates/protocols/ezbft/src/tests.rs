//! EZBFT in the simulator: agreement on interfering commands, equal final
//! state, linearizable KV histories and liveness, from no contention to full.

use crate::Ezbft;
use quorate_sim::conformance::Suite;
use quorate_sim::{Report, Scenario};
use std::time::Duration;

/// The suite's scenario with `clients` on a KV store with `contention`.
fn scenario(seed: u64, clients: usize, secs: u64, contention: f64) -> Scenario<Ezbft> {
    let workload = std::sync::Arc::new(quorate_sim::workload::Kv { payload: 16, contention, read_only_gets: false });
    Suite::<Ezbft>::new()
        .with_scenario(|sc| {
            sc.clients = clients;
            sc.workload = workload;
        })
        .scenario(seed, secs)
}

fn kv(contention: f64, seed: u64, clients: usize) -> Report {
    judged(scenario(seed, clients, 5, contention))
}

/// Every check judged and passed, and the clients got work done.
#[track_caller]
fn judged(sc: Scenario<Ezbft>) -> Report {
    Suite::<Ezbft>::new().judge("ezbft", sc).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn no_contention_takes_the_fast_path() {
    let r = kv(0.0, 1, 8);
    // Clients take the fast path, except the few commands ordered concurrently
    // with a checkpoint barrier (which interferes with everything): those
    // replicas that saw the barrier first add it to their dependencies.
    let (fast, slow) = (r.sent("COMMITFAST"), r.sent("COMMITREPLY"));
    assert!(fast > 0 && slow * 100 < fast, "{fast} fast-path messages, {slow} slow-path replies");
}

#[test]
fn full_contention_is_safe_and_live() {
    for seed in 1..=3 {
        let r = kv(1.0, seed, 8);
        assert!(r.messages_by_kind.get("COMMIT").is_some_and(|k| k.count > 0), "contention takes the slow path");
    }
}

#[test]
fn partial_contention_is_safe_and_live() {
    for seed in 1..=3 {
        kv(0.5, seed, 12);
    }
}

fn with_byzantine(strategy: &str, seed: u64) -> Report {
    let mut sc = scenario(seed, 8, 20, 0.02);
    sc.faults.push(quorate_sim::Fault::Byzantine { replica: 0, strategy: strategy.to_string() });
    judged(sc)
}

#[test]
fn a_silent_leader_is_replaced_and_its_clients_move_on() {
    for strategy in ["silent-leader", "silent"] {
        for seed in 1..=2 {
            let r = with_byzantine(strategy, seed);
            // Its clients rebroadcast, the others suspect it, and the owner change completes.
            assert!(r.sent("REQUEST-ALL") > 0 && r.sent("STARTOWNERCHANGE") > 0, "{strategy}");
            assert!(r.sent("NEWOWNER") > 0, "{strategy}: no owner change completed");
        }
    }
}

#[test]
fn lying_or_absent_participants_push_commands_to_the_slow_path() {
    for strategy in ["lie-result", "drop-specorders"] {
        let r = with_byzantine(strategy, 1);
        assert!(r.sent("COMMIT") > 0, "{strategy}: the fast path cannot complete with a faulty participant");
        assert_eq!(r.sent("NEWOWNER"), 0, "{strategy}: participants are not owners: no owner change");
    }
}

fn kv_scenario(seed: u64, clients: usize, secs: u64, checkpoint_interval: u64) -> Scenario<Ezbft> {
    let mut sc = scenario(seed, clients, secs, 0.02);
    sc.config = crate::Config { checkpoint_interval, ..crate::Config::default() };
    sc
}

#[test]
fn checkpoints_keep_owner_change_views_small() {
    // The leader turns silent after 10 s of load: without checkpoints its
    // space's whole history (megabytes) travelled in every view.
    let mut sc = kv_scenario(1, 8, 20, 256);
    sc.faults.push(quorate_sim::Fault::Byzantine { replica: 0, strategy: "late-silent-leader".to_string() });
    let r = judged(sc);
    assert!(r.sent("CHECKPOINT") > 0, "no checkpoint was taken");
    let new_owner = r.messages_by_kind.get("NEWOWNER").expect("the owner change completed");
    let per_message = new_owner.bytes / new_owner.count;
    assert!(per_message < 1 << 20, "NEWOWNER carries {per_message} bytes: histories are not collected");
}

#[test]
fn a_partitioned_replica_catches_up_by_state_transfer() {
    let mut sc = kv_scenario(4, 8, 16, 64);
    sc.faults.push(quorate_sim::Fault::Partition {
        groups: vec![vec![0, 1, 2], vec![3]],
        from: Duration::from_secs(1),
        until: Some(Duration::from_secs(6)),
    });
    let r = judged(sc);
    assert!(r.sent("STATE") > 0, "replica 3 caught up without a state transfer");
}

#[test]
fn a_replica_cut_off_long_enough_to_lose_its_space_reopens_it() {
    // Replica 1 is cut off: its clients move on and the others settle and
    // freeze its space. After the partition heals, its clients come back and
    // it reopens its space in a new epoch (owner number 1 + 4).
    let mut sc = kv_scenario(2, 8, 24, 128);
    sc.config.return_home_after = Duration::from_secs(8);
    sc.faults.push(quorate_sim::Fault::Partition {
        groups: vec![vec![0, 2, 3], vec![1]],
        from: Duration::from_secs(1),
        until: Some(Duration::from_secs(6)),
    });
    let r = judged(sc);
    assert!(r.sent("NEWOWNER") > 0, "replica 1's space was not settled");
    assert!(r.max_view >= 5, "replica 1 did not reopen its space (highest owner number {})", r.max_view);
}

/// The liveness checker must be seen to fire: a test double of EZBFT whose
/// replicas never replace an owner (commit, new-owner and resend timeouts of
/// an hour, so the owner change of §IV-D never starts), with replica 0
/// ordering each of its requests in a second slot for half of the replicas.
/// With every command interfering, the others' commands depend on slots that
/// only an owner change could settle: the run is judged against the bound
/// of the default settings and fails liveness, and only liveness.
#[test]
fn liveness_fails_when_an_equivocating_owner_is_never_replaced() {
    let mut sc = scenario(12, 8, 5, 1.0);
    let hour = Duration::from_secs(3600);
    sc.config = crate::Config {
        commit_timeout: hour,
        new_owner_timeout: hour,
        resend_timeout: hour,
        ..crate::Config::default()
    };
    sc.liveness_bound = Some(<Ezbft as quorate_core::Protocol>::liveness_bound(&crate::Config::default(), 1));
    sc.faults.push(quorate_sim::Fault::Byzantine { replica: 0, strategy: "equivocate".into() });
    let r = quorate_sim::run(sc.judged()).expect("valid scenario");
    assert!(r.liveness_judged && !r.liveness_ok, "{}", r.summary());
    assert!(!r.ok());
    assert_eq!(r.safety_violations, 0, "{}", r.summary());
    assert!(r.linearizable, "{}", r.summary());
}

/// Open bug (found by the conformance suite once EZBFT got the core's
/// generic faulty clients): a faulty client that sends each operation again
/// under its previous sequence number makes the correct clients' history on
/// the shared key non-linearizable, with no agreement violation (with a
/// checkpoint every 128 commands; the default interval passes). Run with
/// `--ignored` until it is fixed.
#[test]
#[ignore = "open bug: a reuse-seq client breaks linearizability of correct clients"]
fn a_client_reusing_sequence_numbers_leaves_correct_clients_linearizable() {
    let mut sc = scenario(3, 4, 8, 0.5);
    sc.config = crate::Config { checkpoint_interval: 128, ..crate::Config::default() };
    sc.faults.push(quorate_sim::Fault::FaultyClient { strategy: "reuse-seq".into() });
    judged(sc);
}

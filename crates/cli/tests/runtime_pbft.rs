//! PBFT on real processes, under crash faults: the primary killed with
//! SIGKILL under load (the others change view and the clients follow), each
//! replica killed and restarted from its log in turn, and a replica whose
//! disk is wiped rejoining by state transfer. Every history (with final
//! ordered reads) must be linearizable.

mod common;

use common::{finish, runtime, serial, wait_caught_up, wait_until, Cluster, History, Load, DEADLINE, LOAD_CLIENTS};
use quorate_pbft::Pbft;
use std::time::Instant;

/// Final reads by client 5, probes 6 and up.
const READER: u64 = 5;

/// The primary is killed under load: the others change view and the clients follow.
#[test]
fn a_primary_killed_under_load_is_replaced() {
    common::leader_killed_under_load::<Pbft>("pbft-kill", "pbft", READER);
}

/// Each replica in turn is killed with SIGKILL under load, restarted from
/// its log, and must catch up before the next one goes down.
#[test]
fn kill_and_restart_each_replica_under_load() {
    common::kill_and_restart_each::<Pbft>("pbft-restart-each", "pbft", 6, READER);
}

/// A replica whose disk is wiped rejoins by state transfer: the others have
/// truncated their logs at stable checkpoints, so decided values alone
/// cannot bring it back.
#[test]
fn wiped_replica_rejoins_by_state_transfer() {
    let _serial = serial();
    let mut cluster = Cluster::new("pbft-wiped-disk", "pbft", 4, 12, 4, |t| {
        assert!(t.contains("checkpoint_period = 128"), "keygen writes checkpoint_period = 128");
        t.replace("checkpoint_period = 128", "checkpoint_period = 16")
    });
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Pbft>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    wait_until("two checkpoints on replica 0", DEADLINE, || cluster.metric_now(0, "quorate_checkpoints_total") >= 2.0);
    // Not the primary: its loss would add a view change to the scenario.
    let victim = (0..4).rev().find(|&i| i != cluster.leader()).expect("a backup");
    cluster.kill(victim);
    cluster.wipe(victim);
    let cps = cluster.metric_now(0, "quorate_checkpoints_total");
    wait_until("a checkpoint with the victim down", DEADLINE, || {
        cluster.metric_now(0, "quorate_checkpoints_total") > cps + 1.0
    });
    cluster.start(victim);
    wait_until("a state transfer on the wiped replica", DEADLINE, || {
        cluster.assert_running(victim);
        cluster.metric_now(victim, "quorate_state_transfers_total") >= 1.0
    });
    let mut probes = History::new();
    wait_caught_up::<Pbft>(&rt, &mut cluster, victim, 6, start, &mut probes);
    wait_until("the wiped replica executes requests after the transfer", DEADLINE, || {
        cluster.metric_now(victim, "quorate_executed_requests_total") >= 1.0
    });
    load.wait_more(20, "after the wiped replica rejoined");
    finish::<Pbft>(&rt, &mut cluster, load, &[0, 1, 2, 3], probes, READER, start);
}

//! The runtime under crash faults: real `quorate replica` processes killed
//! with SIGKILL while closed-loop clients run, every client-observed history
//! checked for linearizability (with a final ordered read of every key, so a
//! lost acknowledged write fails the check).

mod common;

use common::{finish, runtime, serial, wait_until, Cluster, History, Load, DEADLINE, LOAD_CLIENTS};
use quorate_modsmart::ModSmart;
use std::time::Instant;

/// The final reads use client 5, probes 6 and up.
const READER: u64 = 5;

fn view_changes(cluster: &Cluster, i: usize) -> f64 {
    cluster.metric_now(i, "quorate_view_changes_total")
}

/// The leader (replica 0, the initial one) is killed under load: the others
/// change regency and keep serving, and the whole history is linearizable.
#[test]
fn leader_crash_under_load() {
    let _serial = serial();
    let mut cluster = Cluster::new("leader-crash", "mod-smart", 4, 8, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<ModSmart>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    load.wait_more(100, "before the crash");
    // Replica 0 leads at first (unless a loaded machine already caused a regency change).
    let leader = cluster.leader();
    let before: Vec<f64> = (0..4).map(|i| view_changes(&cluster, i)).collect();
    cluster.kill(leader);
    load.wait_more(100, "after the leader crashed");
    let survivors: Vec<usize> = (0..4).filter(|&i| i != leader).collect();
    wait_until("a regency change on a surviving replica", DEADLINE, || {
        survivors.iter().any(|&i| view_changes(&cluster, i) > before[i])
    });
    assert_ne!(cluster.leader(), leader, "a surviving replica leads");
    finish::<ModSmart>(&rt, &mut cluster, load, &survivors, History::new(), READER, start);
}

/// Each replica in turn is killed with SIGKILL under load, restarted from its
/// log, and must catch up before the next one goes down.
#[test]
fn kill_and_restart_each_replica_under_load() {
    common::kill_and_restart_each::<ModSmart>("restart-each", "mod-smart", 6, READER);
}

/// A replica whose disk is wiped rejoins by state transfer (the others have
/// truncated their logs at checkpoints, so decisions alone cannot bring it
/// back) and catches up under load.
#[test]
fn wiped_replica_rejoins_by_state_transfer() {
    let checkpoints = ("checkpoint_period = 256", "checkpoint_period = 16");
    common::wiped_replica_rejoins::<ModSmart>("wiped-disk", "mod-smart", 8, checkpoints, 6, READER);
}

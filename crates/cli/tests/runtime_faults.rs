//! The runtime under crash faults: real `quorate replica` processes killed
//! with SIGKILL while closed-loop clients run, every client-observed history
//! checked for linearizability (with a final ordered read of every key, so a
//! lost acknowledged write fails the check).

mod common;

use common::{final_reads, runtime, serial, wait_caught_up, wait_until, Cluster, History, Load, DEADLINE};
use quorate_modsmart::ModSmart;
use std::time::Instant;

/// Load clients 1..=4 (one key: sessions over shared connections); the final
/// reads use client 5, probes 6 and up.
const LOAD_CLIENTS: &[u64] = &[1, 2, 3, 4];
const READER: u64 = 5;

fn view_changes(cluster: &Cluster, i: usize) -> f64 {
    cluster.metric_now(i, "quorate_view_changes_total")
}

/// Stop the load; the replicas in `running` must still be up; the whole
/// history (load, `probes`, a final ordered read of every key) must be linearizable.
fn finish(
    rt: &tokio::runtime::Runtime,
    cluster: &mut Cluster,
    load: Load,
    running: &[usize],
    probes: History,
    start: Instant,
) {
    for &i in running {
        cluster.assert_running(i);
    }
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(rt);
    history.extend(probes);
    final_reads::<ModSmart>(rt, &cluster.cfg, READER, start, &mut history);
    eprintln!("{done} operations completed, {failed} timed out");
    common::assert_linearizable(&history);
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
    finish(&rt, &mut cluster, load, &survivors, History::new(), start);
}

/// Each replica in turn is killed with SIGKILL under load, restarted from its
/// log, and must catch up before the next one goes down (with the next one
/// down, the cluster needs it to make progress).
#[test]
fn kill_and_restart_each_replica_under_load() {
    let _serial = serial();
    let mut cluster = Cluster::new("restart-each", "mod-smart", 4, 16, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<ModSmart>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    let mut probes = History::new();
    load.wait_more(50, "before the first crash");
    for i in 0..4 {
        cluster.kill(i);
        load.wait_more(30, &format!("with replica {i} down"));
        cluster.start(i);
        wait_caught_up::<ModSmart>(&rt, &mut cluster, i, 6 + i as u64, start, &mut probes);
        load.wait_more(20, &format!("after replica {i} restarted"));
    }
    finish(&rt, &mut cluster, load, &[0, 1, 2, 3], probes, start);
}

/// A replica whose disk is wiped rejoins by state transfer (the others have
/// truncated their logs at checkpoints, so decisions alone cannot bring it
/// back) and catches up under load.
#[test]
fn wiped_replica_rejoins_by_state_transfer() {
    let _serial = serial();
    let mut cluster = Cluster::new("wiped-disk", "mod-smart", 4, 8, 4, |t| {
        assert!(t.contains("checkpoint_period = 256"), "keygen writes the checkpoint period");
        t.replace("checkpoint_period = 256", "checkpoint_period = 16")
    });
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<ModSmart>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    wait_until("two checkpoints on replica 0", DEADLINE, || cluster.metric_now(0, "quorate_checkpoints_total") >= 2.0);
    cluster.kill(3);
    cluster.wipe(3);
    // Let the others move on by at least one more checkpoint.
    let cps = cluster.metric_now(0, "quorate_checkpoints_total");
    wait_until("a checkpoint with replica 3 down", DEADLINE, || {
        cluster.metric_now(0, "quorate_checkpoints_total") > cps
    });
    cluster.start(3);
    wait_until("a state transfer on replica 3", DEADLINE, || {
        cluster.assert_running(3);
        cluster.metric_now(3, "quorate_state_transfers_total") >= 1.0
    });
    let mut probes = History::new();
    wait_caught_up::<ModSmart>(&rt, &mut cluster, 3, 6, start, &mut probes);
    wait_until("replica 3 executes requests after the transfer", DEADLINE, || {
        cluster.metric_now(3, "quorate_executed_requests_total") >= 1.0
    });
    load.wait_more(20, "after replica 3 rejoined");
    finish(&rt, &mut cluster, load, &[0, 1, 2, 3], probes, start);
}

//! DQPBFT on real processes, under crash faults: the O-primary (also the
//! coordinator of D-instance 0) killed with SIGKILL under load (the
//! O-instance and its D-instance change views, the clients follow), and
//! each replica killed and restarted from its log in turn. Every history
//! (with final ordered reads) must be linearizable.

mod common;

use common::{final_reads, runtime, serial, wait_until, Cluster, Load, DEADLINE, LOAD_CLIENTS};
use quorate_dqbft::Dqbft;
use std::time::Instant;

/// Final reads by client 5, probes 6 and up.
const READER: u64 = 5;

fn view_changes(cluster: &Cluster, i: usize) -> f64 {
    cluster.metric_now(i, "quorate_view_changes_total")
}

#[test]
fn the_o_primary_killed_under_load_is_replaced() {
    let _serial = serial();
    let mut cluster = Cluster::new("dqbft-kill", "dqbft", 4, 8, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Dqbft>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    load.wait_more(100, "before the crash");
    let primary = cluster.leader();
    let before: Vec<f64> = (0..4).map(|i| view_changes(&cluster, i)).collect();
    let killed_at = common::nanos(start);
    cluster.kill(primary);
    let survivors: Vec<usize> = (0..4).filter(|&i| i != primary).collect();
    wait_until("the survivors install a new O-view", DEADLINE, || {
        survivors.iter().all(|&i| view_changes(&cluster, i) > before[i])
    });
    assert_ne!(cluster.leader(), primary, "a surviving replica is the O-primary");
    load.wait_more(100, "after the view change");
    for &i in &survivors {
        cluster.assert_running(i);
    }
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(&rt);
    let after = history.iter().filter(|o| o.call > killed_at && o.ret.is_some()).count();
    assert!(after > 0, "nothing completed after the O-primary was killed");
    final_reads::<Dqbft>(&rt, &cluster.cfg, READER, start, &mut history);
    eprintln!("{done} operations completed ({after} after the kill), {failed} timed out");
    common::assert_linearizable(&history);
}

/// Each replica in turn is killed with SIGKILL under load, restarted from
/// its log, and must catch up before the next one goes down.
///
/// Ignored: it fails about half the time. After three replicas have been
/// killed and restarted, progress with the fourth down stops while the
/// O-instance changes views every few seconds (the open bug is in the
/// issue's notes; `cargo test -- --ignored` runs it).
#[test]
#[ignore = "flaky: no progress with the last replica down after three restarts (open DQPBFT bug)"]
fn kill_and_restart_each_replica_under_load() {
    common::kill_and_restart_each::<Dqbft>("dqbft-restart-each", "dqbft", 6, READER);
}

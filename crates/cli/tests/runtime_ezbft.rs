//! EZBFT on real processes, under crash faults: a replica killed with SIGKILL
//! under load (the others replace the owner of its space and its client moves
//! on), each replica killed and restarted from its log in turn, and a replica
//! whose disk is wiped rejoining by state transfer. Every history (with final
//! ordered reads) must be linearizable.

mod common;

use common::{final_reads, runtime, serial, wait_until, Cluster, Load, DEADLINE, LOAD_CLIENTS};
use quorate_ezbft::Ezbft;
use std::time::Instant;

/// In the runtime a client's home replica is its id mod n: load client 1
/// uses replica 1. Final reads by client 6 (home: replica 2), probes 8 and up.
const READER: u64 = 6;

#[test]
fn a_replica_killed_under_load_is_replaced_and_its_client_moves_on() {
    let _serial = serial();
    let mut cluster = Cluster::new("ezbft-kill", "ezbft", 4, 8, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Ezbft>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    load.wait_more(100, "before the crash");
    let killed_at = common::nanos(start);
    cluster.kill(1);
    wait_until("the survivors replace the owner of replica 1's space", DEADLINE, || {
        [0, 2, 3].iter().all(|&i| cluster.metric_now(i, "quorate_view_changes_total") >= 1.0)
    });
    load.wait_more(100, "after the owner change");
    for i in [0, 2, 3] {
        cluster.assert_running(i);
    }
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(&rt);
    let moved_on = history.iter().filter(|o| o.client == 1 && o.call > killed_at && o.ret.is_some()).count();
    assert!(moved_on > 0, "client 1 completed nothing after its replica was killed");
    final_reads::<Ezbft>(&rt, &cluster.cfg, READER, start, &mut history);
    eprintln!("{done} operations completed ({moved_on} by client 1 after the kill), {failed} timed out");
    common::assert_linearizable(&history);
}

/// Each replica in turn is killed under load, restarted from its log, and
/// must catch up (a probe that cannot reach a third replica needs it) before
/// the next one goes down.
#[test]
fn kill_and_restart_each_replica_under_load() {
    common::kill_and_restart_each::<Ezbft>("ezbft-restart-each", "ezbft", 8, READER);
}

/// A replica whose disk is wiped rejoins by state transfer: the others have
/// collected their logs at stable checkpoints, so orders and commits alone
/// cannot bring it back.
#[test]
fn wiped_replica_rejoins_by_state_transfer() {
    let checkpoints = ("checkpoint_interval = 1024", "checkpoint_interval = 16");
    common::wiped_replica_rejoins::<Ezbft>("ezbft-wiped-disk", "ezbft", 12, checkpoints, 8, READER);
}

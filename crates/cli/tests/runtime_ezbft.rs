//! EZBFT on real processes, under crash faults: a replica killed with SIGKILL
//! under load (the others replace the owner of its space and its client moves
//! on), each replica killed and restarted from its log in turn, and a replica
//! whose disk is wiped rejoining by state transfer. Every history (with final
//! ordered reads) must be linearizable.

mod common;

use common::{final_reads, runtime, serial, wait_caught_up, wait_until, Cluster, History, Load, DEADLINE};
use quorate_ezbft::Ezbft;
use std::time::Instant;

/// Load clients 1..=4 (one key: sessions over shared connections). In the
/// runtime a client's home replica is its id mod n: client 1 uses replica 1.
const LOAD_CLIENTS: &[u64] = &[1, 2, 3, 4];
/// Final reads (home: replica 2).
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

/// Stop the load; every replica must be up; the whole history (load,
/// `probes`, final ordered reads) must be linearizable.
fn finish(rt: &tokio::runtime::Runtime, cluster: &mut Cluster, load: Load, probes: History, start: Instant) {
    for i in 0..4 {
        cluster.assert_running(i);
    }
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(rt);
    history.extend(probes);
    final_reads::<Ezbft>(rt, &cluster.cfg, READER, start, &mut history);
    eprintln!("{done} operations completed, {failed} timed out");
    common::assert_linearizable(&history);
}

/// Each replica in turn is killed under load, restarted from its log, and
/// must catch up (a probe that cannot reach a third replica needs it) before
/// the next one goes down. A space an owner change froze while its replica
/// was down is reopened by it.
#[test]
fn kill_and_restart_each_replica_under_load() {
    let _serial = serial();
    let mut cluster = Cluster::new("ezbft-restart-each", "ezbft", 4, 16, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Ezbft>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    let mut probes = History::new();
    load.wait_more(50, "before the first crash");
    for i in 0..4 {
        cluster.kill(i);
        load.wait_more(30, &format!("with replica {i} down"));
        cluster.start(i);
        wait_caught_up::<Ezbft>(&rt, &mut cluster, i, 8 + i as u64, start, &mut probes);
        load.wait_more(20, &format!("after replica {i} restarted"));
    }
    finish(&rt, &mut cluster, load, probes, start);
}

/// A replica whose disk is wiped rejoins by state transfer: the others have
/// collected their logs at stable checkpoints, so orders and commits alone
/// cannot bring it back.
#[test]
fn wiped_replica_rejoins_by_state_transfer() {
    let _serial = serial();
    let mut cluster = Cluster::new("ezbft-wiped-disk", "ezbft", 4, 12, 4, |t| {
        assert!(t.contains("checkpoint_interval = 1024"), "keygen writes the checkpoint interval");
        t.replace("checkpoint_interval = 1024", "checkpoint_interval = 16")
    });
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Ezbft>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    wait_until("two checkpoints on replica 0", DEADLINE, || cluster.metric_now(0, "quorate_checkpoints_total") >= 2.0);
    cluster.kill(3);
    cluster.wipe(3);
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
    wait_caught_up::<Ezbft>(&rt, &mut cluster, 3, 8, start, &mut probes);
    load.wait_more(20, "after replica 3 rejoined");
    finish(&rt, &mut cluster, load, probes, start);
}

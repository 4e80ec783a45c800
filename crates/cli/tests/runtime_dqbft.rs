//! DQPBFT on real processes, under crash faults: the O-primary (also the
//! coordinator of D-instance 0) killed with SIGKILL under load (the
//! O-instance and its D-instance change views, the clients follow), and
//! each replica killed and restarted from its log in turn. Every history
//! (with final ordered reads) must be linearizable.

mod common;

use quorate_dqbft::Dqbft;

/// Final reads by client 5, probes 6 and up.
const READER: u64 = 5;

/// The O-primary (also the coordinator of D-instance 0) is killed under
/// load: the O-instance and its D-instance change views, the clients follow.
#[test]
fn the_o_primary_killed_under_load_is_replaced() {
    common::leader_killed_under_load::<Dqbft>("dqbft-kill", "dqbft", READER);
}

/// Each replica in turn is killed with SIGKILL under load, restarted from
/// its log, and must catch up before the next one goes down. (A restarted
/// replica may still be fetching state when the next one goes down, which
/// is the replica it asks first: the simulator test
/// `each_replica_crashed_and_recovered_in_turn_under_load` covers that.)
#[test]
fn kill_and_restart_each_replica_under_load() {
    common::kill_and_restart_each::<Dqbft>("dqbft-restart-each", "dqbft", 6, READER);
}

/// §3.2.5 reinstatement on real processes: replica 2 (coordinator of
/// D-instance 2, not the O-primary) is killed under load; its instance is
/// taken over and its clients move; restarted from its log, it catches up,
/// asks for its instance back, passes the others' health check and is
/// reinstated (every running replica's log says so); its clients' load
/// (client 2's home is instance 2) continues, and the history is
/// linearizable.
#[test]
fn a_killed_and_restarted_replica_gets_its_instance_back() {
    let _serial = common::serial();
    let mut cluster = common::Cluster::new("dqbft-reinstate", "dqbft", 4, 8, 4, |t| t);
    cluster.start_all();
    let rt = common::runtime();
    let start = std::time::Instant::now();
    let load = common::Load::start::<Dqbft>(&rt, &cluster.cfg, common::LOAD_CLIENTS, start);
    load.wait_more(50, "before the crash");
    cluster.kill(2);
    let taken_over = |cluster: &common::Cluster| {
        [0, 1, 3]
            .iter()
            .all(|&i| std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default().contains("D2: taken over"))
    };
    common::wait_until("instance 2 is taken over", common::DEADLINE, || taken_over(&cluster));
    load.wait_more(30, "with replica 2 down");
    cluster.start(2);
    let mut probes = common::History::new();
    common::wait_caught_up::<Dqbft>(&rt, &mut cluster, 2, 6, start, &mut probes);
    let reinstated = |cluster: &common::Cluster| {
        (0..4).all(|i| std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default().contains("D2: reinstated"))
    };
    common::wait_until("replica 2 is reinstated", common::DEADLINE, || reinstated(&cluster));
    load.wait_more(50, "after the reinstatement");
    common::finish::<Dqbft>(&rt, &mut cluster, load, &[0, 1, 2, 3], probes, READER, start);
}

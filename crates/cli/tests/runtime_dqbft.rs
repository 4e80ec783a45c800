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

//! EZBFT on real processes: a replica killed with SIGKILL under load. The
//! other replicas replace the owner of its space, the client that used it
//! moves to another replica and keeps completing operations, and the whole
//! history (with final ordered reads) is linearizable.

mod common;

use common::{final_reads, runtime, serial, wait_until, Cluster, Load, DEADLINE};
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

//! The conformance suite (`quorate_sim::conformance`), within f = 1, with a
//! checkpoint every 16 requests so that recovery and catching up go through
//! checkpoints and state transfer, and PBFT's own claims about its runs.

use quorate_pbft::{Config, Pbft};
use quorate_sim::conformance::Suite;

fn suite() -> Suite<Pbft> {
    Suite::new()
        .with_config(Config { checkpoint_period: 16, ..Config::default() })
        .expect("fault_free", "no view change without faults", |r| r.sent("VIEW-CHANGE") == 0)
        .expect("crash_and_recover", "checkpoints are taken", |r| r.sent("CHECKPOINT") > 0)
        .expect("loss_before_stabilisation", "lost messages are retransmitted (STATUS)", |r| r.sent("STATUS") > 0)
}

quorate_sim::conformance!(suite());

//! The conformance suite (`quorate_sim::conformance`) in both of
//! Mod-SMaRt's modes, within f = 1, checkpoints every 16 batches: BFT
//! (n = 3f+1) and CFT (n = 2f+1, crash model, so the Byzantine strategies
//! are skipped). A fault-free run changes no regency.

use quorate_modsmart::{Config, ModSmart};
use quorate_sim::conformance::Suite;

fn suite() -> Suite<ModSmart> {
    Suite::new().with_config(Config { checkpoint_period: 16, ..Config::default() }).expect(
        "fault_free",
        "no regency change without faults",
        |r| r.max_view == 0,
    )
}

mod bft {
    quorate_sim::conformance!(super::suite());
}

mod cft {
    quorate_sim::conformance!(super::suite().crash_model());
}

//! The conformance suite (`quorate_sim::conformance`) in both flavors,
//! within f = 1, with each flavor's own claims about its runs: DQPBFT
//! (n = 3f+1, PBFT in every instance) and Destiny (n = 2f+1, Linear Hybster
//! in every instance, threshold-signed answers).

use quorate_dqbft::{Destiny, Dqbft};
use quorate_sim::conformance::Suite;
use quorate_sim::Report;

fn no_view_change(r: &Report) -> bool {
    r.sent("D-VIEWCHANGE") + r.sent("O-VIEWCHANGE") == 0
}

mod dqpbft {
    use super::*;

    fn suite() -> Suite<Dqbft> {
        Suite::new().expect("fault_free", "no view change without faults; both instance kinds propose", |r| {
            no_view_change(r) && r.sent("O-PREPREPARE") > 0 && r.sent("D-PREPREPARE") > 0
        })
    }

    quorate_sim::conformance!(suite());
}

mod destiny {
    use super::*;

    /// Linear: shares go to the collector and one certificate comes back
    /// (all-to-all votes would be n-1 times as many as proposals); answers
    /// are threshold-signed (§4.3.2), never plain REPLYs.
    fn suite() -> Suite<Destiny> {
        Suite::new().expect("fault_free", "3 replicas, no view change, linear votes, threshold-signed answers", |r| {
            r.n == 3
                && no_view_change(r)
                && r.sent("D-COMMITSIG") <= r.sent("D-PREPARE")
                && r.sent("D-COMMIT") <= r.sent("D-PREPARE")
                && r.sent("EXECPROOF") > 0
                && r.sent("REPLY") == 0
        })
    }

    quorate_sim::conformance!(suite());
}

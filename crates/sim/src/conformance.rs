//! The conformance suite: what every protocol must show in the simulator,
//! written once. A protocol crate runs it with one line,
//!
//! ```ignore
//! quorate_sim::conformance!(quorate_sim::conformance::Suite::<MyProtocol>::new());
//! ```
//!
//! which expands to one `#[test]` per check (`conformance_fault_free`, ...),
//! so the checks run in parallel and fail by name. Every run is judged
//! ([`Scenario::judged`]) and must pass every checker ([`Report::ok`]): a
//! check that could not judge fails. The checks, all within f:
//!
//! - fault free, two seeds;
//! - a replica crashed for good (replica 0, the first leader if any);
//! - a replica crashed and recovered from its durable state;
//! - a replica partitioned away and healed (it must catch up);
//! - loss before stabilisation (GST);
//! - every Byzantine replica strategy ([`faulty_client::strategies`]: the generic ones and the protocol's own), at replica 0 and at
//!   the last, except the colluding ones meant for runs beyond f
//!   (`collude-*`, decision 0014);
//! - every faulty-client strategy ([`faulty_client::strategies`]: the generic ones and the protocol's own);
//! - determinism (one seed, one trace; another seed, another);
//! - a short random campaign ([`crate::campaign`]), six seeds;
//! - unit vote weights change nothing, others are refused unless the
//!   protocol counts by weight;
//! - and one run beyond f that must fail liveness and only liveness (f+1
//!   replicas crashed for good), so the suite is seen to be able to fail.
//!
//! Protocol crates keep their own tests for what their source states (a
//! view change happens, a fast path is taken, ...), built on
//! [`Suite::scenario`] and [`Suite::collusion`].

use crate::{run, Fault, Report, Scenario};
use quorate_core::faulty_client;
use quorate_core::machine::Protocol;
use quorate_core::FaultModel;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A failed conformance check: which one, and the report(s) of the run that
/// failed it.
#[derive(Debug)]
pub struct Failure {
    /// The check ("crash_and_recover", ...).
    pub check: &'static str,
    /// What failed, with the run's summary.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance check {} failed: {}", self.check, self.detail)
    }
}

impl std::error::Error for Failure {}

/// Outcome of one check.
pub type Outcome = Result<(), Failure>;

/// The suite for protocol `P`: a base scenario and the few facts about the
/// protocol the checks need. Build with [`Suite::new`], adjust with the
/// `with_*` methods.
pub struct Suite<P: Protocol> {
    base: Scenario<P>,
    secs: u64,
    min_completed: u64,
    expectations: Vec<Expectation>,
    skipped_clients: Vec<(&'static str, &'static str)>,
}

/// A protocol's own claim about the runs of one check (what its source
/// says happens there), judged beside the checkers.
struct Expectation {
    check: &'static str,
    claim: &'static str,
    holds: fn(&Report) -> bool,
}

impl<P: Protocol> Default for Suite<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Protocol> Suite<P> {
    /// f = 1, Byzantine model, 4 clients on the KV store with 20 % of the
    /// operations on one shared key, 12 s runs (longer when judging needs
    /// it), at least 100 operations completed per run.
    pub fn new() -> Self {
        let mut base = Scenario::<P>::new(1).with_clients(4);
        base.workload = Arc::new(crate::workload::Kv { payload: 16, contention: 0.2, read_only_gets: false });
        Suite { base, secs: 12, min_completed: 100, expectations: Vec::new(), skipped_clients: Vec::new() }
    }

    /// Runs in the crash fault model (Byzantine strategies are then skipped:
    /// a Byzantine replica is outside the model).
    pub fn crash_model(mut self) -> Self {
        self.base.model = FaultModel::Crash;
        self
    }

    /// The protocol's settings for every run (for example a short checkpoint
    /// period, so that recovery and catching up go through state transfer).
    pub fn with_config(mut self, config: P::Config) -> Self {
        self.base.config = config;
        self
    }

    /// Length of the runs with faults, before [`Scenario::judged`] extends them.
    pub fn with_secs(mut self, secs: u64) -> Self {
        self.secs = secs;
        self
    }

    /// Operations every run must complete at least.
    pub fn with_min_completed(mut self, min: u64) -> Self {
        self.min_completed = min;
        self
    }

    /// Every run of `check` must also satisfy `holds`, the protocol's own
    /// `claim` about it (say, no view change in a fault-free run).
    pub fn expect(mut self, check: &'static str, claim: &'static str, holds: fn(&Report) -> bool) -> Self {
        self.expectations.push(Expectation { check, claim, holds });
        self
    }

    /// Leaves client strategy `name` out of [`Suite::client_strategies`],
    /// for `why` (a known open bug, with the test that reproduces it). The
    /// reason is printed whenever the check runs.
    pub fn without_client_strategy(mut self, name: &'static str, why: &'static str) -> Self {
        self.skipped_clients.push((name, why));
        self
    }

    /// Any other change to the base scenario (workload, clients, network).
    pub fn with_scenario(mut self, change: impl FnOnce(&mut Scenario<P>)) -> Self {
        change(&mut self.base);
        self
    }

    /// The base scenario with `seed`, lasting `secs` (not yet judged).
    pub fn scenario(&self, seed: u64, secs: u64) -> Scenario<P> {
        self.base.clone().with_seed(seed).with_duration(Duration::from_secs(secs))
    }

    /// Replicas of the base scenario.
    pub fn n(&self) -> u32 {
        u32::try_from(self.base.n()).unwrap_or(u32::MAX)
    }

    /// `colluders` running `collude-split` (decision 0014) for `secs`, not
    /// judged for liveness: the beyond-f tests' run. The caller says which
    /// checker must fire.
    pub fn collusion(&self, colluders: &[u32], seed: u64, secs: u64) -> Report {
        let mut sc = self.scenario(seed, secs);
        for r in colluders {
            sc.faults.push(Fault::Byzantine { replica: *r, strategy: "collude-split".into() });
        }
        run(sc).unwrap_or_else(|e| panic!("invalid collusion scenario: {e}"))
    }

    /// Run `sc` judged and require it to pass every checker and complete
    /// enough operations.
    pub fn judge(&self, check: &'static str, sc: Scenario<P>) -> Result<Report, Failure> {
        self.judge_at_least(check, sc, self.min_completed)
    }

    /// [`Suite::judge`] with another minimum of completed operations.
    fn judge_at_least(&self, check: &'static str, sc: Scenario<P>, min: u64) -> Result<Report, Failure> {
        let r = run(sc.judged()).map_err(|e| Failure { check, detail: format!("invalid scenario: {e}") })?;
        if !r.ok() {
            return Err(Failure { check, detail: format!("the run did not pass:\n{}", r.summary()) });
        }
        if r.completed < min {
            return Err(Failure {
                check,
                detail: format!("only {} operations completed (< {min}):\n{}", r.completed, r.summary()),
            });
        }
        if let Some(e) = self.expectations.iter().find(|e| e.check == check && !(e.holds)(&r)) {
            return Err(Failure { check, detail: format!("{} does not hold:\n{}", e.claim, r.summary()) });
        }
        Ok(r)
    }

    /// Fault free, two seeds.
    pub fn fault_free(&self) -> Outcome {
        for seed in 1..=2 {
            self.judge("fault_free", self.scenario(seed, 5))?;
        }
        Ok(())
    }

    /// Replica 0 (the first leader, where there is one) crashes at 2 s and
    /// stays down.
    pub fn crash_for_good(&self) -> Outcome {
        let sc = self.scenario(3, self.secs).with_fault(Fault::Crash { replica: 0, at: Duration::from_secs(2) });
        self.judge("crash_for_good", sc).map(|_| ())
    }

    /// Replica 0 and then the last replica crash at 3 s and recover at 5 s
    /// from their durable state, and must take part again.
    pub fn crash_and_recover(&self) -> Outcome {
        for (seed, replica) in [(1, 0), (2, self.n() - 1)] {
            let sc = self
                .scenario(seed, self.secs)
                .with_fault(Fault::Crash { replica, at: Duration::from_secs(3) })
                .with_fault(Fault::Recover { replica, at: Duration::from_secs(5) });
            self.judge("crash_and_recover", sc)?;
        }
        Ok(())
    }

    /// The last replica, then replica 0, cut off from 1 s to 4 s; after the
    /// heal the cluster must be live again (the one cut off catching up).
    pub fn partition_and_heal(&self) -> Outcome {
        let n = self.n();
        for (seed, alone) in [(4, n - 1), (5, 0)] {
            let rest: Vec<u32> = (0..n).filter(|r| *r != alone).collect();
            let sc = self.scenario(seed, self.secs).with_fault(Fault::Partition {
                groups: vec![rest, vec![alone]],
                from: Duration::from_secs(1),
                until: Some(Duration::from_secs(4)),
            });
            self.judge("partition_and_heal", sc)?;
        }
        Ok(())
    }

    /// 5 % of the messages lost until GST at 4 s.
    pub fn loss_before_stabilisation(&self) -> Outcome {
        let mut sc = self.scenario(5, self.secs);
        sc.net.gst_ns = 4_000_000_000;
        sc.net.pre_gst_loss = 0.05;
        self.judge("loss_before_stabilisation", sc).map(|_| ())
    }

    /// Each Byzantine strategy of the protocol meant for runs within f, at
    /// replica 0 and at the last replica. Nothing in the crash model. A
    /// Byzantine replica may slow the others down as far as the protocol
    /// lets it (a leader that proposes just before the timeout): the runs
    /// must be live and complete something, not the suite's minimum.
    pub fn replica_strategies(&self) -> Outcome {
        if self.base.model == FaultModel::Crash {
            return Ok(());
        }
        for (name, _) in P::STRATEGIES.iter().filter(|(name, _)| !name.starts_with("collude")) {
            for replica in [0, self.n() - 1] {
                let sc =
                    self.scenario(1, self.secs).with_fault(Fault::Byzantine { replica, strategy: (*name).to_string() });
                self.judge_at_least("replica_strategies", sc, 1).map_err(|e| Failure {
                    check: e.check,
                    detail: format!("strategy {name} at replica {replica}: {}", e.detail),
                })?;
            }
        }
        Ok(())
    }

    /// Each faulty-client strategy ([`faulty_client::strategies`]: the
    /// generic ones and the protocol's own) beside the correct clients, on a KV store
    /// with half of the operations on the shared key.
    pub fn client_strategies(&self) -> Outcome {
        for (name, _) in faulty_client::strategies::<P>() {
            if let Some((_, why)) = self.skipped_clients.iter().find(|(s, _)| *s == name) {
                eprintln!("conformance: client strategy {name} left out: {why}");
                continue;
            }
            let mut sc = self.scenario(3, 8).with_fault(Fault::FaultyClient { strategy: name.to_string() });
            sc.workload = Arc::new(crate::workload::Kv { payload: 16, contention: 0.5, read_only_gets: false });
            self.judge("client_strategies", sc)
                .map_err(|e| Failure { check: e.check, detail: format!("client strategy {name}: {}", e.detail) })?;
        }
        Ok(())
    }

    /// One seed, one trace: the same run twice gives the same trace digest,
    /// and another seed another trace.
    pub fn deterministic(&self) -> Outcome {
        let check = "deterministic";
        let sc = |seed| self.scenario(seed, 3).with_fault(Fault::Crash { replica: 0, at: Duration::from_secs(1) });
        let go = |sc| run(sc).map_err(|e| Failure { check, detail: e.to_string() });
        let (a, b, c) = (go(sc(9))?, go(sc(9))?, go(sc(10))?);
        if a.trace_digest != b.trace_digest || a.events != b.events {
            let detail = format!("two runs of one seed differ: {} and {}", a.trace_digest, b.trace_digest);
            return Err(Failure { check, detail });
        }
        if a.trace_digest == c.trace_digest {
            return Err(Failure { check, detail: "seeds 9 and 10 gave one trace: the seed is not used".into() });
        }
        Ok(())
    }

    /// Six seeds of the simulator's random campaign ([`crate::campaign`]):
    /// crashes, recoveries, partitions, Byzantine replicas and faulty
    /// clients within f, loss before GST, each run long enough to be judged.
    /// The long campaign is `quorate sim --campaign`.
    pub fn short_campaign(&self) -> Outcome {
        let mut base = self.scenario(0, self.secs);
        let bound = base.liveness_bound.unwrap_or_else(|| P::liveness_bound(&base.config, base.f));
        base.duration = base.duration.max((base.settle + bound).mul_f64(1.0 / 0.6));
        for seed in 100..106 {
            let sc = crate::campaign_scenario(&base, seed);
            let faults: Vec<String> = sc.faults.iter().map(Fault::to_flag).collect();
            self.judge("short_campaign", sc).map_err(|e| Failure {
                check: e.check,
                detail: format!("campaign seed {seed} ({}): {}", faults.join(" "), e.detail),
            })?;
        }
        Ok(())
    }

    /// Unit vote weights (`--weights 1,1,...`) change nothing, and other
    /// weights are refused unless every rule of the protocol counts by
    /// weight ([`Protocol::WEIGHTED_VOTES`]).
    pub fn unit_weights(&self) -> Outcome {
        let check = "unit_weights";
        let plain = run(self.scenario(40, 3)).map_err(|e| Failure { check, detail: e.to_string() })?;
        let mut sc = self.scenario(40, 3);
        sc.vote_weights = vec![1; sc.n()];
        let weighted = run(sc).map_err(|e| Failure { check, detail: e.to_string() })?;
        if plain.trace_digest != weighted.trace_digest {
            return Err(Failure { check, detail: "unit weights changed the run".into() });
        }
        if !P::WEIGHTED_VOTES {
            let mut sc = self.scenario(40, 3);
            sc.vote_weights = vec![1; sc.n()];
            sc.vote_weights[0] = 2;
            if run(sc).is_ok() {
                return Err(Failure {
                    check,
                    detail: "a protocol that counts replicas ran with weights 2,1,...".into(),
                });
            }
        }
        Ok(())
    }

    /// f+1 replicas crashed for good at 1 s leave no quorum: the run is
    /// judged and must fail liveness, and nothing else. Shows, for this
    /// protocol, that the suite's liveness verdicts can fail.
    pub fn beyond_f_stalls(&self) -> Outcome {
        let n = self.n();
        let f = u32::try_from(self.base.f).unwrap_or(u32::MAX);
        let mut sc = self.scenario(11, 5);
        for replica in n.saturating_sub(f + 1)..n {
            sc.faults.push(Fault::Crash { replica, at: Duration::from_secs(1) });
        }
        let r = run(sc.judged()).map_err(|e| Failure { check: "beyond_f_stalls", detail: e.to_string() })?;
        let ok = r.liveness_judged && !r.liveness_ok && r.safety_violations == 0 && r.linearizable;
        if !ok {
            return Err(Failure {
                check: "beyond_f_stalls",
                detail: format!("f+1 crashed replicas must fail liveness and only liveness:\n{}", r.summary()),
            });
        }
        Ok(())
    }
}

/// One `#[test]` per check of [`Suite`], for the suite the expression
/// builds (evaluated anew in each test).
#[macro_export]
macro_rules! conformance {
    ($suite:expr) => {
        $crate::conformance!(@tests $suite;
            conformance_fault_free => fault_free,
            conformance_crash_for_good => crash_for_good,
            conformance_crash_and_recover => crash_and_recover,
            conformance_partition_and_heal => partition_and_heal,
            conformance_loss_before_stabilisation => loss_before_stabilisation,
            conformance_replica_strategies => replica_strategies,
            conformance_client_strategies => client_strategies,
            conformance_deterministic => deterministic,
            conformance_short_campaign => short_campaign,
            conformance_unit_weights => unit_weights,
            conformance_beyond_f_stalls => beyond_f_stalls,
        );
    };
    (@tests $suite:expr; $($test:ident => $check:ident,)*) => {
        $(
            #[test]
            fn $test() {
                if let Err(e) = $suite.$check() {
                    panic!("{e}");
                }
            }
        )*
    };
}

impl Report {
    /// Messages of `kind` sent in the run (0 if none).
    pub fn sent(&self, kind: &str) -> u64 {
        self.messages_by_kind.get(kind).map_or(0, |k| k.count)
    }
}

//! Engine tests with the toy fixed-sequencer protocol: determinism, faults,
//! checkers catching a buggy replica, campaigns.

mod toy;

use quorate_core::FaultModel;
use quorate_sim::cpu::CostModel;
use quorate_sim::{campaign_scenario, run, run_campaign, Fault, Scenario, Simulation};
use std::sync::Arc;
use std::time::Duration;
use toy::{Toy, ToyConfig};

fn base(seed: u64) -> Scenario<Toy> {
    let mut sc = Scenario::<Toy>::new(1).with_seed(seed).with_duration(Duration::from_secs(3)).with_clients(4);
    sc.liveness_bound = Some(Duration::from_secs(1));
    sc.settle = Duration::from_millis(500);
    sc
}

#[test]
fn fault_free_run_passes_all_checks() {
    let r = run(base(1)).unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.n, 4);
    assert!(r.completed > 1000, "{}", r.summary());
    assert_eq!(r.linearizability, "linearizable");
    assert!(r.liveness_judged);
    assert!(r.messages_by_kind.contains_key("ORDER"));
    assert!(r.checkpoints > 0);
    assert!(r.latency_ms.p50 > 0.2 && r.latency_ms.p50 < 5.0, "{:?}", r.latency_ms);
    // Every correct replica executes; the executed counts are close.
    let executed: Vec<u64> = r.executed.iter().map(|e| e.unwrap()).collect();
    assert!(executed.iter().all(|e| *e + 50 >= executed[0]), "{executed:?}");
}

#[test]
fn same_seed_same_trace() {
    let mut sc = base(42);
    sc.net.loss = 0.01;
    sc.net.duplicate = 0.01;
    sc.net.reorder = 0.1;
    sc.net.reorder_max_ns = 2_000_000;
    sc.faults.push(Fault::parse_crash("2@1s").unwrap());
    sc.faults.push(Fault::parse_recover("2@1500ms").unwrap());
    let a = run(sc.clone()).unwrap();
    let b = run(sc.clone()).unwrap();
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(a.events, b.events);
    assert_eq!(a.completed, b.completed);
    assert_eq!(a.latency_ms, b.latency_ms);
    let c = run(sc.with_seed(43)).unwrap();
    assert_ne!(a.trace_digest, c.trace_digest);
}

#[test]
fn counter_workload_and_cft_mode() {
    let mut sc = base(3);
    sc.model = FaultModel::Crash;
    sc.workload = std::sync::Arc::new(quorate_sim::workload::Counter { read_only_gets: false });
    let r = run(sc).unwrap();
    assert_eq!(r.n, 3);
    assert_eq!(r.mode, "cft");
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.linearizability, "linearizable");
    assert!(r.linearizability_ops > 100);
}

#[test]
fn crash_and_recover_catches_up() {
    let mut sc = base(5);
    sc.faults.push(Fault::parse_crash("3@500ms").unwrap());
    sc.faults.push(Fault::parse_recover("3@1s").unwrap());
    let r = run(sc).unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.faults.len(), 2, "{:?}", r.faults);
    let e: Vec<u64> = r.executed.iter().map(|e| e.unwrap()).collect();
    assert!(e[3] + 50 >= e[0], "{e:?}");
    assert!(r.dropped.partition + r.dropped.crashed > 0);
}

#[test]
fn crashed_replica_stays_down() {
    let mut sc = base(6);
    sc.faults.push(Fault::parse_crash("1@500ms").unwrap());
    let r = run(sc).unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert_eq!(r.executed[1], None);
}

#[test]
fn partition_and_loss_heal() {
    let mut sc = base(7);
    sc.faults.push(Fault::parse_partition("0,1,2|3@500ms..1s").unwrap());
    sc.net.loss = 0.02;
    let r = run(sc).unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert!(r.dropped.partition > 0 && r.dropped.loss > 0);
}

#[test]
fn gst_delays_then_stabilises() {
    let mut sc = base(8);
    sc.net.gst_ns = 1_000_000_000;
    sc.net.pre_gst_loss = 0.05;
    sc.net.pre_gst_extra_delay_ns = 20_000_000;
    let r = run(sc).unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert!(r.dropped.pre_gst > 0);
    assert!((r.stabilisation_s - 1.0).abs() < 1e-9);
}

#[test]
fn liveness_is_judged_from_the_end_of_the_warmup() {
    let mut sc = base(8);
    sc.warmup = Duration::from_millis(1500);
    assert_eq!(sc.stabilisation(), sc.warmup);
    // A later GST still wins.
    sc.net.gst_ns = 2_000_000_000;
    assert_eq!(sc.stabilisation(), Duration::from_secs(2));
    sc.net.gst_ns = 0;
    let r = run(sc).unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert!((r.stabilisation_s - 1.5).abs() < 1e-9);
}

#[test]
fn byzantine_replica_and_faulty_clients_are_tolerated() {
    for strategy in ["silent", "wrong-reply"] {
        let mut sc = base(9);
        sc.faults.push(Fault::Byzantine { replica: 2, strategy: strategy.into() });
        sc.faults.push(Fault::FaultyClient { strategy: "toy-bad-signature".into() });
        sc.faults.push(Fault::FaultyClient { strategy: "toy-reuse-seq".into() });
        let r = run(sc).unwrap();
        assert!(r.ok(), "{strategy}: {}", r.summary());
        assert_eq!(r.faulty_clients, 2);
        assert!(r.rejected.get("bad request signature").copied().unwrap_or(0) > 0, "{:?}", r.rejected);
    }
}

#[test]
fn buggy_replica_breaks_agreement_and_state() {
    let mut sc = base(10);
    sc.config = ToyConfig { corrupt_replica: Some(2), ..ToyConfig::default() };
    let r = run(sc).unwrap();
    assert!(!r.ok());
    assert!(r.safety_violations >= 1, "{}", r.summary());
    let first = r.first_violation.clone().unwrap();
    assert!(first.contains("slot 5"), "{first}");
    // The same bug in a Byzantine replica is not a violation.
    let mut sc = base(10);
    sc.config = ToyConfig { corrupt_replica: Some(2), ..ToyConfig::default() };
    sc.faults.push(Fault::Byzantine { replica: 2, strategy: "wrong-reply".into() });
    let r = run(sc).unwrap();
    assert_eq!(r.safety_violations, 0, "{}", r.summary());
}

#[test]
fn leader_crash_fails_liveness() {
    let mut sc = base(11);
    sc.faults.push(Fault::parse_crash("0@1s").unwrap());
    let r = run(sc).unwrap();
    assert!(!r.liveness_ok);
    assert_eq!(r.safety_violations, 0);
    assert!(r.liveness_detail.unwrap().contains("never completed"));
}

#[test]
fn cpu_model_slows_a_busy_leader() {
    let slow = CostModel { verify_ns: 1_000_000, ..CostModel::default() };
    let mut sc = base(12);
    sc.cost_model = Arc::new(slow);
    let r = run(sc).unwrap();
    // Each request costs the leader 1 ms of verification: ≤ 1000 ops/s.
    assert!(r.throughput_ops <= 1000.0 && r.throughput_ops > 700.0, "{}", r.summary());
    let mut sc = base(12);
    sc.cost_model = Arc::new(CostModel::zero());
    let fast = run(sc).unwrap();
    assert!(fast.throughput_ops > 2.0 * r.throughput_ops);
}

#[test]
fn cores_share_a_busy_leaders_work() {
    // The same 1 ms per request: with 4 cores the leader checks four
    // requests at once, so the run is no longer held at 1000 ops/s.
    let slow = Arc::new(CostModel { verify_ns: 1_000_000, ..CostModel::default() });
    let mut sc = base(12).with_clients(16);
    sc.cost_model = Arc::clone(&slow);
    let one = run(sc.clone()).unwrap();
    sc.replica_cores = 4;
    let four = run(sc.clone()).unwrap();
    assert!(four.ok(), "{}", four.summary());
    assert!(one.throughput_ops <= 1000.0, "{}", one.summary());
    assert!(four.throughput_ops > 2.5 * one.throughput_ops, "{} vs {}", four.throughput_ops, one.throughput_ops);
    // One core is the model as it was: the same run, event for event.
    sc.replica_cores = 1;
    assert_eq!(run(sc.clone()).unwrap().trace_digest, one.trace_digest);
    sc.replica_cores = 0;
    assert!(run(sc).is_err(), "zero cores is refused");
}

#[test]
fn regions_give_wan_latency() {
    let mut sc = base(13);
    sc.regions = ["us-east-1", "us-east-1", "eu-west-1", "ap-south-1"].iter().map(|s| s.to_string()).collect();
    sc.liveness_bound = Some(Duration::from_secs(2));
    let r = run(sc).unwrap();
    assert!(r.ok(), "{}", r.summary());
    // f+1 = 2 matching replies: clients near us-east-1 need the leader and one more.
    assert!(r.latency_ms.p50 > 1.0, "{:?}", r.latency_ms);
}

#[test]
fn latency_by_client_region_with_warmup() {
    // The toy's sequencer is replica 0 and clients need f+1 = 2 replies: a
    // client in us-east-1 waits for Tokyo's reply (RTT 160 ms); clients in
    // Mumbai and Sydney wait for more than that.
    let mut sc = base(15);
    sc.regions =
        ["us-east-1", "ap-south-1", "ap-southeast-2", "ap-northeast-1"].iter().map(|s| s.to_string()).collect();
    sc.clients = 8;
    sc.duration = Duration::from_secs(6);
    sc.liveness_bound = Some(Duration::from_secs(3));
    let all = run(sc.clone()).unwrap();
    assert!(all.ok(), "{}", all.summary());
    assert_eq!(all.latency_by_region.keys().cloned().collect::<Vec<_>>(), sorted(&sc.regions));
    // Every measured operation is in exactly one region.
    let total: u64 = all.latency_by_region.values().map(|l| l.count).sum();
    assert_eq!(total, all.latency_ms.count);
    assert_eq!(all.latency_ms.count, all.completed);
    let p50 = |r: &quorate_sim::Report, region: &str| r.latency_by_region[region].p50;
    for far in ["ap-south-1", "ap-southeast-2"] {
        assert!(p50(&all, "us-east-1") < p50(&all, far), "{:?}", all.latency_by_region);
    }
    // A warm-up leaves out the first operations from the statistics, not from the checks.
    sc.warmup = Duration::from_secs(2);
    let warm = run(sc.clone()).unwrap();
    assert_eq!(warm.trace_digest, all.trace_digest);
    assert_eq!(warm.completed, all.completed);
    assert!(warm.latency_ms.count < all.latency_ms.count && warm.latency_ms.count > 0);
    assert_eq!(warm.warmup_s, 2.0);
    // A warm-up as long as the run is an error; a LAN run has no regions.
    sc.warmup = sc.duration;
    assert!(run(sc).unwrap_err().to_string().contains("warm-up"));
    assert!(run(base(15)).unwrap().latency_by_region.is_empty());
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[test]
fn invalid_scenarios_are_errors_not_panics() {
    let mut sc = base(1);
    sc.faults.push(Fault::parse_crash("9@1s").unwrap());
    assert!(run(sc).unwrap_err().to_string().contains("replica 9"));
    let mut sc = base(1);
    sc.faults.push(Fault::Byzantine { replica: 1, strategy: "nope".into() });
    assert!(run(sc).unwrap_err().to_string().contains("silent"));
    let mut sc = base(1);
    sc.regions = vec!["mars-1".into(); 4];
    assert!(run(sc).is_err());
    let mut sc = base(1);
    sc.regions = vec!["us-east-1".into(); 3];
    assert!(run(sc).is_err());
    let mut sc = base(1);
    sc.n = Some(3);
    assert!(run(sc).is_err());
    // More faults than f is a warning.
    let mut sc = base(1);
    sc.faults.push(Fault::parse_crash("1@1s").unwrap());
    sc.faults.push(Fault::parse_crash("2@1s").unwrap());
    let r = run(sc).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("exceed f")), "{:?}", r.warnings);
}

#[test]
fn step_by_step_and_injection() {
    let mut sim = Simulation::new(base(14)).unwrap();
    sim.run_until(quorate_core::Time(500_000_000));
    let done_half = sim.ops().iter().filter(|o| o.ret.is_some()).count();
    assert!(done_half > 0);
    sim.inject(Fault::Crash { replica: 3, at: Duration::from_millis(600) }).unwrap();
    assert!(sim.inject(Fault::Crash { replica: 7, at: Duration::from_millis(600) }).is_err());
    sim.run_until(quorate_core::Time(700_000_000));
    assert!(sim.replica(3).is_none());
    assert!(sim.replica(0).is_some());
    while sim.step() {}
    let r = sim.report();
    assert!(r.ok(), "{}", r.summary());
}

#[test]
fn campaign_runs_and_replays() {
    let mut b = base(0);
    b.duration = Duration::from_secs(6);
    b.liveness_bound = Some(Duration::from_secs(1));
    let mut reports = Vec::new();
    let total = run_campaign(&b, 100..108, |(sc, r)| {
        reports.push((sc.seed, r.as_ref().map(|r| r.trace_digest.clone()).unwrap_or_default()))
    });
    assert_eq!(total.runs, 8);
    // The toy has no leader fail-over, so some seeds crash replica 0: those fail liveness only.
    assert_eq!(total.safety_violations, 0, "{total:?}");
    // Replaying a seed gives the same trace.
    let (seed, digest) = &reports[3];
    let again = run(campaign_scenario(&b, *seed)).unwrap();
    assert_eq!(&again.trace_digest, digest);
}

/// A search that gives up is its own verdict, `unknown`, and fails the run
/// and the campaign: a tiny budget cannot decide a contended history.
#[test]
fn undecided_linearizability_fails_the_run_and_the_campaign() {
    let mut sc = base(11);
    sc.workload =
        std::sync::Arc::new(quorate_sim::workload::Kv { payload: 16, contention: 1.0, read_only_gets: false });
    sc.clients = 16;
    sc.net.loss = 0.05;
    sc.linearizability_budget = 0;
    let r = run(sc.clone()).unwrap();
    assert_eq!(r.linearizability, "unknown", "{}", r.summary());
    assert_eq!(r.safety_violations, 0, "{}", r.summary());
    assert!(!r.ok(), "an undecided run must fail: {}", r.summary());
    assert!(r.linearizability_detail.as_deref().unwrap_or("").contains("budget"), "{}", r.summary());
    // The same history with an ample budget is decided and passes.
    sc.linearizability_budget = 10_000_000;
    let r = run(sc.clone()).unwrap();
    assert_eq!(r.linearizability, "linearizable", "{}", r.summary());

    sc.linearizability_budget = 0;
    let total = run_campaign(&sc, 0..3, |_| {});
    assert_eq!(total.linearizability_unknown, 3, "{total:?}");
    assert_eq!(total.failing_seeds, vec![0, 1, 2], "{total:?}");
}

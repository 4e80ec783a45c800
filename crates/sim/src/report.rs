//! The outcome of one simulation run (and of a campaign), serialisable as
//! the JSON that `quorate sim --json` prints.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Latency percentiles of completed operations of correct clients, in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Operations measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Maximum.
    pub max: f64,
}

impl Latency {
    /// Percentiles of `ns` (sorted in place); all zero when empty.
    pub fn from_ns(ns: &mut [u64]) -> Latency {
        if ns.is_empty() {
            return Latency::default();
        }
        ns.sort_unstable();
        let at = |q: f64| {
            let i = ((ns.len() as f64 * q).ceil() as usize).clamp(1, ns.len()) - 1;
            ns[i] as f64 / 1e6
        };
        let mean = ns.iter().map(|&x| x as f64).sum::<f64>() / ns.len() as f64 / 1e6;
        Latency {
            count: ns.len() as u64,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            mean,
            max: ns[ns.len() - 1] as f64 / 1e6,
        }
    }
}

/// One completed operation, for latency over time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpPoint {
    /// Client index.
    pub client: u64,
    /// The client's region (none on a LAN).
    pub region: Option<String>,
    /// When it was invoked, s of virtual time.
    pub invoke_s: f64,
    /// How long it took, ms.
    pub latency_ms: f64,
}

/// How many view installations a report keeps (a run at n = 301 with many
/// view changes would otherwise carry n entries per change).
pub const VIEW_INSTALLS_KEPT: usize = 10_000;

/// A correct replica installed a view (a regency, an owner number).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewInstall {
    /// Virtual time, s.
    pub at_s: f64,
    /// The replica.
    pub replica: u32,
    /// The view.
    pub view: u64,
    /// Its leader.
    pub leader: u32,
}

/// Messages and bytes of one message kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    /// Messages sent (one per destination).
    pub count: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// Messages that never reached a machine, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Random loss.
    pub loss: u64,
    /// Extra loss before GST.
    pub pre_gst: u64,
    /// Partitions and isolated (crashed) nodes at send time.
    pub partition: u64,
    /// Arrived at a node that was down.
    pub crashed: u64,
    /// Addressed to a node that does not exist.
    pub invalid: u64,
}

/// Everything one run measured and checked. `ok()` says whether it passed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Protocol name.
    pub protocol: String,
    /// "bft" or "cft".
    pub mode: String,
    /// Replicas.
    pub n: usize,
    /// Faults tolerated.
    pub f: usize,
    /// Run seed.
    pub seed: u64,
    /// Correct clients.
    pub clients: usize,
    /// Faulty clients.
    pub faulty_clients: usize,
    /// "kv" or "counter".
    pub workload: String,
    /// Region of each replica (empty: all on one LAN).
    pub regions: Vec<String>,
    /// Virtual duration of the run, s.
    pub duration_s: f64,
    /// Operations of correct clients completed.
    pub completed: u64,
    /// Operations of correct clients completed per virtual second of the
    /// measured window (after the warm-up), whenever they were invoked.
    pub throughput_ops: f64,
    /// Warm-up, s: operations invoked before it are left out of the latency
    /// statistics and the throughput (never out of the checks).
    pub warmup_s: f64,
    /// Latency of completed operations of correct clients (after the warm-up).
    pub latency_ms: Latency,
    /// The same, by the region of the client (empty when all nodes are on one LAN).
    pub latency_by_region: BTreeMap<String, Latency>,
    /// Every completed operation of a correct client, when the scenario asks
    /// for it (`Scenario::timeline`, `quorate sim --timeline`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<OpPoint>,
    /// Safety violations (agreement, at-most-once, checkpoint and final
    /// state digests). Linearizability is reported separately.
    pub safety_violations: u64,
    /// The first safety violation.
    pub first_violation: Option<String>,
    /// Up to 20 safety violations.
    pub violations: Vec<String>,
    /// Whether the clients' history is linearizable (false also when undecided).
    pub linearizable: bool,
    /// "linearizable", "not_linearizable" or "unknown".
    pub linearizability: String,
    /// Explanation of a violation, or why the checker could not decide.
    pub linearizability_detail: Option<String>,
    /// Operations given to the linearizability checker.
    pub linearizability_ops: usize,
    /// Liveness verdict.
    pub liveness_ok: bool,
    /// Whether the run lasted beyond stabilisation + bound.
    pub liveness_judged: bool,
    /// The offending operation, if liveness failed.
    pub liveness_detail: Option<String>,
    /// Stabilisation time used for liveness, s.
    pub stabilisation_s: f64,
    /// Liveness bound, s.
    pub liveness_bound_s: f64,
    /// Why the scenario does not ask for liveness to be judged (its stated
    /// opt-out, [`crate::Scenario::liveness_not_judged_because`]).
    pub liveness_not_judged_because: Option<String>,
    /// Messages sent (one per destination, dropped ones included).
    pub messages: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Messages by kind.
    pub messages_by_kind: BTreeMap<String, KindStats>,
    /// Messages dropped, by reason.
    pub dropped: Dropped,
    /// Messages the network duplicated.
    pub duplicated: u64,
    /// SHA-256 over the processed-event trace, hex.
    pub trace_digest: String,
    /// Processed events (machine inputs and faults).
    pub events: u64,
    /// Wall-clock time of the run, ms.
    pub wall_ms: u64,
    /// Processed events per wall-clock second.
    pub events_per_sec: f64,
    /// Faults applied, in order, with their virtual times.
    pub faults: Vec<String>,
    /// Distinct views installed, as reported by correct replicas.
    pub view_changes: u64,
    /// Highest view seen.
    pub max_view: u64,
    /// Every view installed by a correct replica, in time order (the first
    /// [`VIEW_INSTALLS_KEPT`] of them): when recovery took how long.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub view_installs: Vec<ViewInstall>,
    /// Most consensus instances decided by one correct replica.
    pub decided: u64,
    /// Final executions reported by correct replicas (all of them).
    pub executions: u64,
    /// Checkpoint and state-installed events of correct replicas.
    pub checkpoints: u64,
    /// States installed by state transfer or recovery.
    pub states_installed: u64,
    /// Operations executed by each replica at the end (`null` when down).
    pub executed: Vec<Option<u64>>,
    /// Speculative executions that survived and differ from the final order.
    pub speculative_divergences: u64,
    /// Rejected inputs by reason (all nodes).
    pub rejected: BTreeMap<String, u64>,
    /// Warnings about the scenario (e.g. more faulty replicas than f).
    pub warnings: Vec<String>,
}

impl Report {
    /// Whether the run passed: no safety violation, linearizability decided
    /// and linearizable (a check that gave up, `unknown`, fails), and live;
    /// liveness must have been judged unless the scenario stated why not (a
    /// check that could not judge is no pass).
    pub fn ok(&self) -> bool {
        self.safety_violations == 0
            && self.linearizability == "linearizable"
            && self.liveness_ok
            && (self.liveness_judged || self.liveness_not_judged_because.is_some())
    }

    /// Panic, naming every check that failed or could not judge, unless the
    /// run passed ([`Report::ok`]): the one assertion of the protocols'
    /// simulator tests.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.ok(), "the run did not pass:\n{}", self.summary());
    }

    /// The liveness verdict in words: "ok", "FAILED" or "not judged".
    pub fn liveness_verdict(&self) -> &'static str {
        match (self.liveness_ok, self.liveness_judged) {
            (false, _) => "FAILED",
            (true, true) => "ok",
            (true, false) => "not judged",
        }
    }

    /// Human-readable summary (several lines).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} ({}) n={} f={} seed={} clients={}{} workload={} duration={:.3}s",
            self.protocol,
            self.mode,
            self.n,
            self.f,
            self.seed,
            self.clients,
            if self.faulty_clients > 0 { format!("+{} faulty", self.faulty_clients) } else { String::new() },
            self.workload,
            self.duration_s
        );
        if !self.regions.is_empty() {
            let _ = writeln!(s, "regions: {}", self.regions.join(","));
        }
        for fault in &self.faults {
            let _ = writeln!(s, "fault: {fault}");
        }
        let _ = writeln!(
            s,
            "completed {} ops, {:.1} ops/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2}{}",
            self.completed,
            self.throughput_ops,
            self.latency_ms.p50,
            self.latency_ms.p90,
            self.latency_ms.p99,
            if self.warmup_s > 0.0 { format!(" (after {:.3}s of warm-up)", self.warmup_s) } else { String::new() }
        );
        for (region, l) in &self.latency_by_region {
            let _ = writeln!(
                s,
                "  clients in {region}: {} ops, latency ms p50 {:.2} p90 {:.2} p99 {:.2}",
                l.count, l.p50, l.p90, l.p99
            );
        }
        let _ = writeln!(
            s,
            "messages {} ({} bytes), dropped {}, views {} (max {}), decided {}",
            self.messages,
            self.bytes,
            self.dropped.loss
                + self.dropped.pre_gst
                + self.dropped.partition
                + self.dropped.crashed
                + self.dropped.invalid,
            self.view_changes,
            self.max_view,
            self.decided
        );
        let _ = writeln!(
            s,
            "safety violations {}; linearizability {} ({} ops); liveness {}{}",
            self.safety_violations,
            self.linearizability,
            self.linearizability_ops,
            self.liveness_verdict(),
            match (self.liveness_judged, &self.liveness_not_judged_because) {
                (true, _) =>
                    format!(" (stabilisation {:.1}s, bound {:.1}s)", self.stabilisation_s, self.liveness_bound_s),
                (false, Some(why)) => format!(" (liveness not judged: {why})"),
                (false, None) => format!(
                    " (the run ends at {:.1}s, before stabilisation {:.1}s + bound {:.1}s)",
                    self.duration_s, self.stabilisation_s, self.liveness_bound_s
                ),
            }
        );
        if let Some(v) = &self.first_violation {
            let _ = writeln!(s, "first violation: {v}");
        }
        if let Some(d) = &self.linearizability_detail {
            let _ = writeln!(s, "linearizability: {d}");
        }
        if let Some(d) = &self.liveness_detail {
            let _ = writeln!(s, "liveness: {d}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(
            s,
            "events {} in {} ms ({:.0} events/s); trace {}",
            self.events, self.wall_ms, self.events_per_sec, self.trace_digest
        );
        s
    }
}

/// Totals of a campaign.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CampaignReport {
    /// Protocol name.
    pub protocol: String,
    /// Runs made.
    pub runs: u64,
    /// Runs with at least one safety violation or a non-linearizable history.
    pub safety_violations: u64,
    /// Runs that failed liveness.
    pub liveness_failures: u64,
    /// Seeds of failing runs.
    pub failing_seeds: Vec<u64>,
    /// Runs whose linearizability check could not decide (failures).
    pub linearizability_unknown: u64,
    /// Runs that ended before their liveness could be judged (failures,
    /// unless the scenario states why).
    pub liveness_not_judged: u64,
    /// Events over all runs.
    pub events: u64,
    /// Wall-clock time of the whole campaign, ms.
    pub wall_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1_000_000).collect();
        let l = Latency::from_ns(&mut v);
        assert_eq!((l.count, l.p50, l.p90, l.p99, l.max), (100, 50.0, 90.0, 99.0, 100.0));
        assert_eq!(Latency::from_ns(&mut []), Latency::default());
    }
}

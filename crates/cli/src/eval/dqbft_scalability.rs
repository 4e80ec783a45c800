//! `dqbft-scalability`: DQBFT §5.3.2 (Fig. 8) and §5.3.3 (Fig. 9).
//!
//! N = 19, 49, 97, 193 and 301 replicas (f = 6, 16, 32, 64, 100) spread
//! evenly over the ten Azure regions of the source's deployment (replica i in
//! the (i mod 10)-th, replica 0 in eastus: the single-primary protocols'
//! primary and DQPBFT's first O-primary), closed-loop clients spread evenly
//! over the replicas, the KV store with puts only, batches of 200 commands of
//! about 512 bytes, 1 Gb/s per node. For every protocol series and N, the
//! throughput and median latency, without faults and with f replicas crashed
//! from the start. Beside them: the source's analytic throughput bounds (its
//! Fig. 2 at its Fig. 3 parameters), and the source's claims about Figs. 8
//! and 9 with what our runs say about each (the figures' values are not in
//! the source's text). Why it is set up this way:
//! docs/decisions/0005-experiments.md.

use super::svg::{BarChart, Bars, Markers};
use super::{checks_section, columns, Csv, Experiment, Judged, Options, Outcome};
use crate::protocols::max_faults_of;
use crate::protocols::{with_protocol, WithProtocol};
use crate::sim::{parse_sim_args, scenario, CliProtocol};
use quorate_sim::{run as simulate, Report};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

pub const EXPERIMENT: Experiment = Experiment {
    name: "dqbft-scalability",
    description: "throughput and median latency at N = 19 to 301 replicas over 10 Azure regions, single-primary \
                  vs multi-primary, fault-free and with f replicas crashed (batch 200, ~512-byte commands)",
    source: "DQBFT (Arun, Ravindran, PVLDB 15), §5.3.2 Fig. 8 and §5.3.3 Fig. 9; bounds of §2.2 Figs. 2-3",
    run,
};

/// The source's ten Azure regions, eastus first (replica 0: the primary).
pub(crate) const REGIONS: [&str; 10] = [
    "eastus",
    "southcentralus",
    "westus",
    "westus2",
    "canadacentral",
    "canadaeast",
    "northeurope",
    "westeurope",
    "uksouth",
    "southeastasia",
];
/// The source's system sizes (f = (N-1)/3).
const SIZES: [usize; 5] = [19, 49, 97, 193, 301];
/// Commands per batch (the source: 200, proposals of about 106 kB).
pub(crate) const BATCH: usize = 200;
/// Value bytes of a put: with the key and framing a command is about 512
/// bytes, the source's command size.
pub(crate) const VALUE_BYTES: usize = 500;
/// Egress bandwidth per node, Mb/s: the simulator's default, and the B of
/// the source's Fig. 3.
pub(crate) const BANDWIDTH_MBPS: u64 = 1000;
/// The protocols' request timeout: latencies reach seconds at N ≥ 193, and
/// the default 2 s made backups suspect a working primary (PBFT at N = 193
/// with f crashed spent its run in view-change attempts and catch-up traffic).
pub(crate) const REQUEST_TIMEOUT: &str = "10s";
/// How long a client waits before it retransmits (to every replica): half
/// the request timeout, so that the replicas hold the request in time to
/// suspect. The protocols' default, 1 s, is below the latency at large N:
/// every client re-sent every request to every replica, and the answers
/// that came back multiplied (Destiny at N = 19: 1.37 s median with it,
/// 0.80 s without).
pub(crate) const CLIENT_RETRANSMIT: &str = "5s";
/// Cores per replica: the source's servers are 8-vCPU VMs (Azure
/// Standard_DC8_v2). Destiny is CPU-bound on its BLS checks (the source
/// reports 95% CPU at N = 97), which a replica spreads over its cores.
pub(crate) const CORES: usize = 8;

/// Closed-loop clients of a series at N replicas. Single-primary: about
/// what saturates the primary (its link and its 4-batch pipeline: some 6000
/// ops/s at N = 19 down to 800 at N = 301) at one to two seconds of latency,
/// so that the median is measured within the run. Multi-primary: 4000 up to
/// N = 97 (40 to 200 per coordinator), 20 per replica beyond. Not enough to
/// saturate DQPBFT, at a cost in simulation time that grows with N³
/// (docs/decisions/0005-experiments.md).
pub(crate) fn clients(kind: Kind, n: usize) -> usize {
    match kind {
        Kind::SinglePrimary => match n {
            0..=49 => 4000,
            50..=97 => 2500,
            98..=193 => 1500,
            _ => 1200,
        },
        Kind::MultiPrimary => (20 * n).max(4000),
    }
}

/// Run lengths (virtual): (duration, warm-up). The warm-up covers the
/// clients' ASSIGNs (DQPBFT), the pipelines filling, and at N = 301 the first
/// batches' 250 ms on the primary's link.
const FULL: (&str, &str) = ("12s", "4s");
const QUICK: (&str, &str) = ("6s", "2s");

/// Whether a protocol orders through one primary or through many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    SinglePrimary,
    MultiPrimary,
}

/// The series of the experiment, by `quorate sim --protocol` name, with the
/// sizes each runs at: a series runs when the protocol is registered
/// (`crate::protocols`), and is listed as not run until then. This is the
/// one place to add a protocol.
pub(crate) const SERIES: &[(&str, Kind, &[usize])] = &[
    ("pbft", Kind::SinglePrimary, &SIZES),
    ("mod-smart", Kind::SinglePrimary, &SIZES),
    ("dqbft", Kind::MultiPrimary, &DQPBFT_SIZES),
    ("destiny", Kind::MultiPrimary, &SIZES),
];
/// DQPBFT's sizes: a round of N instances is 2N³ votes, 55 million messages
/// at N = 301, which the simulator cannot run in minutes (see
/// docs/decisions/0005-experiments.md). `--quick` stops at [`QUICK_MAX_N`].
const DQPBFT_SIZES: [usize; 3] = [19, 49, 97];
/// Largest DQPBFT size of `--quick`: a point at N = 97 is some 200 million
/// deliveries, ten minutes of CPU.
const QUICK_MAX_N: usize = 49;
/// Why a series skips the other sizes.
fn size_note(quick: bool) -> String {
    format!(
        "dqbft at N = {} and 301 (a round is 2N^3 messages, 55 million at N = 301: hours of simulation per point)",
        if quick { "97, 193" } else { "193" }
    )
}
/// Why a series of [`SERIES`] is missing, if the build lacks it.
const NOT_BUILT: &str = "not run (not built yet)";
/// The source's other series.
const SOURCE_ONLY: &str = "the source's SBFT, Hybster, Linear Hybster, Chained HotStuff, RCC, MirBFT, Dispel, \
                           DQSBFT and DQHybster are not in quorate";

/// How one point is run.
#[derive(Clone, Debug)]
pub(crate) struct PointPlan {
    pub protocol: String,
    pub n: usize,
    pub clients: usize,
    /// Replicas that crash at 0 (none: fault-free).
    pub crashed: Vec<usize>,
    /// `--client-weight` values (REGION=W or A..B=W).
    pub weights: Vec<String>,
    pub duration: String,
    pub warmup: String,
    pub seed: u64,
    /// DQBFT only: `--round-robin` (the RCC/MirBFT delivery order).
    pub round_robin: bool,
}

impl PointPlan {
    /// The `quorate sim` flags of the point. The workload is the source's
    /// (100 % puts, each client on its own keys), so contention is 0 and the
    /// linearizability check sees no two clients meet: safety here rests on
    /// the agreement check and the final state digests, which a split brain
    /// fails. A hot key shared by thousands of clients would change the
    /// source's workload and cost the checker more than the run.
    pub(crate) fn sim_argv(&self) -> Vec<String> {
        let f = faults(&self.protocol, self.n);
        let mut a: Vec<String> = [
            "--protocol",
            &self.protocol,
            "--f",
            &f.to_string(),
            "--spread-regions",
            &REGIONS.join(","),
            "--clients",
            &self.clients.to_string(),
            "--workload",
            "kv-puts",
            "--payload",
            &VALUE_BYTES.to_string(),
            "--keys-per-client",
            "1",
            "--batch",
            &BATCH.to_string(),
            "--bandwidth-mbps",
            &BANDWIDTH_MBPS.to_string(),
            "--timeout",
            REQUEST_TIMEOUT,
            "--client-retransmit",
            CLIENT_RETRANSMIT,
            "--cores",
            &CORES.to_string(),
            "--duration",
            &self.duration,
            "--warmup",
            &self.warmup,
            "--liveness-bound",
            &super::steady_state_bound(&self.duration, &self.warmup),
            "--seed",
            &self.seed.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for r in &self.crashed {
            a.push("--crash".into());
            a.push(format!("{r}@0s"));
        }
        for w in &self.weights {
            a.push("--client-weight".into());
            a.push(w.clone());
        }
        if self.round_robin {
            a.push("--round-robin".into());
        }
        a
    }

    pub(crate) fn replay(&self) -> String {
        format!("quorate sim {}", self.sim_argv().join(" "))
    }
}

/// One measured point.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Point {
    pub protocol: String,
    pub n: usize,
    pub f: usize,
    /// Replicas crashed from the start.
    pub crashed: usize,
    pub clients: usize,
    /// Operations completed per virtual second after the warm-up.
    pub throughput_ops: f64,
    /// Median, p99 latency (ms) of the operations invoked after the warm-up
    /// (0 when none of them completed within the run).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// How many operations the latency rests on.
    pub latency_ops: u64,
    /// Operations completed in the whole run.
    pub completed: u64,
    pub view_changes: u64,
    /// Bytes per message of the batch-carrying kind (PRE-PREPARE, PROPOSE, D-PRE-PREPARE), if any.
    pub batch_message_bytes: Option<f64>,
    /// Simulated events and the wall time they took.
    pub events: u64,
    pub wall_s: f64,
    /// "passed", or what failed or was not judged.
    pub checks: String,
    /// What each checker judged.
    pub judged: Judged,
    pub replay: String,
}

/// Mean size of the messages that carry batches (the largest kind by bytes per message).
fn batch_message_bytes(r: &Report) -> Option<f64> {
    r.messages_by_kind
        .values()
        .filter(|k| k.count > 0)
        .map(|k| k.bytes as f64 / k.count as f64)
        .filter(|b| *b > 10_000.0)
        .reduce(f64::max)
}

/// Run one point with the protocol of its plan; `Ok(None)` if this build has no such protocol.
pub(crate) fn run_point(plan: &PointPlan) -> Result<Option<Point>, String> {
    struct Run<'a>(&'a PointPlan);
    impl WithProtocol for Run<'_> {
        type Output = Result<Point, String>;
        fn run<P: CliProtocol>(self) -> Self::Output {
            let plan = self.0;
            let argv = plan.sim_argv();
            let sc = scenario::<P>(&parse_sim_args(&argv)?)?;
            let f = sc.f;
            let r = simulate(sc).map_err(|e| format!("{} at N = {}: {e}", plan.protocol, plan.n))?;
            let judged = Judged::of(&r);
            Ok(Point {
                protocol: plan.protocol.clone(),
                n: plan.n,
                f,
                crashed: plan.crashed.len(),
                clients: plan.clients,
                throughput_ops: r.throughput_ops,
                p50_ms: r.latency_ms.p50,
                p99_ms: r.latency_ms.p99,
                latency_ops: r.latency_ms.count,
                completed: r.completed,
                view_changes: r.view_changes,
                batch_message_bytes: batch_message_bytes(&r),
                events: r.events,
                wall_s: r.wall_ms as f64 / 1000.0,
                checks: judged.summary(),
                judged,
                replay: plan.replay(),
            })
        }
    }
    match with_protocol(&plan.protocol, Run(plan)) {
        Ok(point) => point.map(Some),
        Err(e) if e.starts_with("unknown protocol") => Ok(None),
        Err(e) => Err(e),
    }
}

/// A protocol of the source's Fig. 2 throughput formulas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    Pbft,
    Dqpbft,
    Destiny,
}

impl Bound {
    /// The formula of a series, if the source gives one.
    fn of(protocol: &str) -> Option<Bound> {
        match protocol {
            "pbft" => Some(Bound::Pbft),
            "dqbft" => Some(Bound::Dqpbft),
            "destiny" => Some(Bound::Destiny),
            _ => None,
        }
    }
}

/// The source's Fig. 2 throughput bounds at its Fig. 3 parameters (B = 1
/// Gb/s, pm = 100 KiB, sm = 250 B, NF = N - f with the BFT f, or the hybrid
/// f for Destiny), in proposals per second.
pub(crate) fn source_bound(bound: Bound, n: usize) -> f64 {
    let (b, pm, sm) = (1e9 / 8.0, 100.0 * 1024.0, 250.0);
    let f = if bound == Bound::Destiny { (n - 1) / 2 } else { (n - 1) / 3 } as f64;
    let n = n as f64;
    let nf = n - f;
    match bound {
        Bound::Pbft => b / ((n - 1.0) * (pm + 3.0 * sm)),
        Bound::Dqpbft => {
            nf * b / ((n - 1.0) * (pm + 3.0 * sm) + (nf - 1.0) * (pm + 4.0 * (n - 1.0) * sm) + (n - 1.0) * 4.0 * sm)
        }
        Bound::Destiny => nf * b / ((n - 1.0) * (pm + 3.0 * sm) + (nf - 1.0) * (pm + 3.0 * sm) + (n - 1.0) * 4.0 * sm),
    }
}

/// A series' bound in operations per second (`BATCH` commands a proposal), as a table cell.
fn bound_cell(protocol: &str, n: usize) -> String {
    Bound::of(protocol).map_or_else(String::new, |b| format!("{:.0}", source_bound(b, n) * BATCH as f64))
}

/// A claim of the source and what our runs say about it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Claim {
    pub at: &'static str,
    pub claim: &'static str,
    /// "holds", "does not hold", "see numbers" or "not checked".
    pub verdict: &'static str,
    pub ours: String,
}

/// Throughputs closer than this (relative) count as equal: seeds move a
/// point by a few per cent.
const EQUAL_WITHIN: f64 = 0.05;

struct Results<'a>(&'a [Point]);

impl Results<'_> {
    fn get(&self, protocol: &str, n: usize, crashed: bool) -> Option<&Point> {
        self.0.iter().find(|p| p.protocol == protocol && p.n == n && (p.crashed > 0) == crashed)
    }
    fn thr(&self, protocol: &str, n: usize, crashed: bool) -> Option<f64> {
        self.get(protocol, n, crashed).map(|p| p.throughput_ops)
    }
}

fn series_ran(res: &Results, kind: Kind) -> Vec<&'static str> {
    SERIES.iter().filter(|(p, k, _)| *k == kind && res.0.iter().any(|x| x.protocol == *p)).map(|(p, _, _)| *p).collect()
}

fn claims(res: &Results) -> Vec<Claim> {
    let mut out = Vec::new();
    let single = series_ran(res, Kind::SinglePrimary);
    let multi = series_ran(res, Kind::MultiPrimary);

    // 1. Single-primary throughput falls as N grows.
    let mut c = Claim {
        at: "§5.3.2, Fig. 8",
        claim: "the single-primary protocols' throughput decreases as N grows (the primary sends each ~100 kB \
                proposal to every replica)",
        verdict: "not checked",
        ours: "no single-primary series ran".into(),
    };
    if !single.is_empty() {
        let mut holds = true;
        let mut lines = Vec::new();
        for p in &single {
            let thr: Vec<(usize, f64)> = SIZES.iter().filter_map(|n| Some((*n, res.thr(p, *n, false)?))).collect();
            holds &= thr.windows(2).all(|w| w[1].1 < w[0].1 * (1.0 + EQUAL_WITHIN));
            let first_last = match (thr.first(), thr.last()) {
                (Some(a), Some(b)) if a.1 > 0.0 => format!(" ({:.2}x from N = {} to {})", b.1 / a.1, a.0, b.0),
                _ => String::new(),
            };
            let list: Vec<String> = thr.iter().map(|(n, t)| format!("{n}: {t:.0}")).collect();
            lines.push(format!("{p} ops/s by N: {}{first_last}", list.join(", ")));
        }
        c.verdict = if holds { "holds" } else { "does not hold" };
        c.ours = lines.join("; ");
    }
    out.push(c);

    // 2. Multi-primary above single-primary, and by how much.
    let mut c = Claim {
        at: "§5.3.2, Fig. 8; §1",
        claim: "multi-primary protocols reach a higher throughput than single-primary ones, \
                up to 10x for the DQBFT variants (§1)",
        verdict: "not checked",
        ours: "needs a single-primary and a multi-primary series".into(),
    };
    if !single.is_empty() && !multi.is_empty() {
        let mut holds = true;
        let mut lines = Vec::new();
        for m in &multi {
            for s in &single {
                let ratios: Vec<String> = SIZES
                    .iter()
                    .filter_map(|n| {
                        let (a, b) = (res.thr(m, *n, false)?, res.thr(s, *n, false)?);
                        holds &= a > b * (1.0 + EQUAL_WITHIN);
                        Some(format!("{n}: {:.1}x", a / b.max(1e-9)))
                    })
                    .collect();
                lines.push(format!("{m} / {s} throughput by N: {}", ratios.join(", ")));
            }
        }
        c.verdict = if holds { "holds" } else { "does not hold" };
        c.ours = lines.join("; ");
    }
    out.push(c);

    // 3. The source's bound's shape: DQPBFT keeps more of its throughput as N grows.
    let mut c = Claim {
        at: "§2.2, Figs. 2-3",
        claim: "as N grows, DQPBFT keeps more of its throughput than PBFT (the bounds at 100 KiB proposals: \
                PBFT falls 17x from N = 19 to 301, DQPBFT 2.2x; from 19 to 97, 5.3x and 1.4x)",
        verdict: "not checked",
        ours: "needs the pbft and dqbft series".into(),
    };
    let common: Vec<usize> = SIZES
        .iter()
        .copied()
        .filter(|n| res.thr("pbft", *n, false).is_some() && res.thr("dqbft", *n, false).is_some())
        .collect();
    let (first, last) = (common.first().copied().unwrap_or(0), common.last().copied().unwrap_or(0));
    if let (true, Some(p0), Some(p1), Some(d0), Some(d1)) = (
        last > first,
        res.thr("pbft", first, false),
        res.thr("pbft", last, false),
        res.thr("dqbft", first, false),
        res.thr("dqbft", last, false),
    ) {
        let (kp, kd) = (p1 / p0.max(1e-9), d1 / d0.max(1e-9));
        c.verdict = if kd > kp * (1.0 + EQUAL_WITHIN) { "holds" } else { "does not hold" };
        c.ours = format!(
            "throughput at N = {last} / at N = {first}: pbft {kp:.2}, dqbft {kd:.2} (bounds: pbft {:.2}, dqbft {:.2})",
            source_bound(Bound::Pbft, last) / source_bound(Bound::Pbft, first),
            source_bound(Bound::Dqpbft, last) / source_bound(Bound::Dqpbft, first)
        );
    }
    out.push(c);

    // 4. f failures: what f crashed replicas cost DQPBFT and Destiny.
    let mut c = Claim {
        at: "§5.3.3, Fig. 9",
        claim: "with f failed replicas DQPBFT is affected less than SBFT, DQSBFT and Destiny (which lose their \
                fast path or must wait for every region)",
        verdict: "not checked",
        ours: "needs the dqbft and destiny series".into(),
    };
    let kept = |p: &str, n: usize| -> Option<(f64, f64)> {
        let (a, b) = (res.get(p, n, true)?, res.get(p, n, false)?);
        let lat = if a.latency_ops > 0 && b.latency_ops > 0 { a.p50_ms / b.p50_ms } else { f64::NAN };
        Some((a.throughput_ops / b.throughput_ops.max(1e-9), lat))
    };
    let mut lines = Vec::new();
    let mut judged = Vec::new();
    for n in SIZES {
        let (dq, de) = (kept("dqbft", n), kept("destiny", n));
        let fmt =
            |name: &str, k: Option<(f64, f64)>| k.map(|(t, l)| format!("{name} throughput {t:.2}x, median {l:.2}x"));
        let parts: Vec<String> = [fmt("dqbft", dq), fmt("destiny", de)].into_iter().flatten().collect();
        if !parts.is_empty() {
            lines.push(format!("{n}: {}", parts.join(", ")));
        }
        if let (Some(a), Some(b)) = (dq, de) {
            judged.push(a.0 > b.0 * (1.0 - EQUAL_WITHIN));
        }
    }
    if !lines.is_empty() {
        c.ours = format!("with f crashed / fault-free (SBFT, DQSBFT are not in quorate): {}", lines.join("; "));
        c.verdict = match judged.as_slice() {
            [] => "see numbers",
            j if j.iter().all(|w| *w) => "holds",
            _ => "does not hold",
        };
    }
    out.push(c);

    // 5. Destiny's headline numbers, against the best other series at each N.
    out.push(destiny_claim(
        res,
        false,
        "§5.3.2, Fig. 8; S9 #4",
        "at N = 301 Destiny has 40% more throughput and 70% lower latency than DQSBFT, the next best (DQSBFT is not \
         in quorate: ours is the best other series that ran at each N)",
    ));
    out.push(destiny_claim(
        res,
        true,
        "§5.3.3, Fig. 9; S9 #10",
        "with f failed replicas Destiny beats every multi-primary protocol at N = 193 and 301 (ours: every other \
         series that ran there)",
    ));
    out
}

/// Destiny against the best other series (by throughput) at each N where
/// both ran; "holds" when Destiny has the highest throughput and a lower
/// median than that series at the largest such N (fault-free: at N = 301;
/// with f crashed: at N = 193 and 301).
fn destiny_claim(res: &Results, crashed: bool, at: &'static str, claim: &'static str) -> Claim {
    let mut c = Claim { at, claim, verdict: "not checked", ours: "the destiny series did not run".into() };
    let mut lines = Vec::new();
    let mut judged = Vec::new();
    for n in SIZES {
        let Some(d) = res.get("destiny", n, crashed) else { continue };
        let best = res
            .0
            .iter()
            .filter(|p| p.protocol != "destiny" && p.n == n && (p.crashed > 0) == crashed)
            .max_by(|a, b| a.throughput_ops.total_cmp(&b.throughput_ops));
        let Some(b) = best else {
            lines.push(format!("{n}: destiny alone ({:.0} ops/s, p50 {:.0} ms)", d.throughput_ops, d.p50_ms));
            continue;
        };
        let thr = d.throughput_ops / b.throughput_ops.max(1e-9) - 1.0;
        let lat = if d.latency_ops > 0 && b.latency_ops > 0 {
            format!("{:+.0}% latency", (d.p50_ms / b.p50_ms - 1.0) * 100.0)
        } else {
            "latency n/a".into()
        };
        lines.push(format!("{n}: {:+.0}% throughput, {lat} vs {}", thr * 100.0, b.protocol));
        let wins = thr > -EQUAL_WITHIN && d.latency_ops > 0 && (b.latency_ops == 0 || d.p50_ms < b.p50_ms);
        judged.push((n, wins));
    }
    if lines.is_empty() {
        return c;
    }
    let needed: &[usize] = if crashed { &[193, 301] } else { &[301] };
    let at_needed: Vec<bool> =
        needed.iter().filter_map(|n| judged.iter().find(|(m, _)| m == n).map(|(_, w)| *w)).collect();
    c.verdict = if at_needed.len() < needed.len() {
        "see numbers"
    } else if at_needed.iter().all(|w| *w) {
        "holds"
    } else {
        "does not hold"
    };
    c.ours = lines.join("; ");
    c
}

/// Faults tolerated by `protocol` at `n` replicas, as the protocol says
/// ([`max_faults_of`]): (N−1)/2 for Destiny (hybrid, 2f+1), (N−1)/3 for the
/// others (the source's Destiny f = 9 at N = 19).
fn faults(protocol: &str, n: usize) -> usize {
    max_faults_of(protocol, n, quorate_core::FaultModel::Byzantine).expect("a protocol of the series")
}

fn run(opts: &Options) -> Result<Outcome, String> {
    let (duration, warmup) = if opts.quick { QUICK } else { FULL };
    let mut points = Vec::new();
    let mut not_run: Vec<&str> = Vec::new();
    for (protocol, kind, sizes) in SERIES {
        let mut built = true;
        for &n in sizes.iter().filter(|n| !opts.quick || *kind == Kind::SinglePrimary || **n <= QUICK_MAX_N) {
            for crash in [false, true] {
                let f = faults(protocol, n);
                // The last f replicas: ids cycle through the regions, so they spread
                // over all ten, and replica 0 (every primary) stays up. No client sits
                // at a crashed replica (the source's clients use live replicas).
                let crashed: Vec<usize> = if crash { (n - f..n).collect() } else { Vec::new() };
                let weights = if crash { vec![format!("{}..{n}=0", n - f)] } else { Vec::new() };
                let plan = PointPlan {
                    protocol: protocol.to_string(),
                    n,
                    clients: clients(*kind, n),
                    crashed,
                    weights,
                    duration: duration.into(),
                    warmup: warmup.into(),
                    seed: opts.seed,
                    round_robin: false,
                };
                match run_point(&plan)? {
                    Some(p) => {
                        eprintln!(
                            "{}: {protocol} n={n}{}: {:.0} ops/s, p50 {:.0} ms ({} events, {:.0} s)",
                            EXPERIMENT.name,
                            if crash { " f crashed" } else { "" },
                            p.throughput_ops,
                            p.p50_ms,
                            p.events,
                            p.wall_s
                        );
                        points.push(p)
                    }
                    None => {
                        built = false;
                        break;
                    }
                }
            }
            if !built {
                break;
            }
        }
        if !built {
            not_run.push(protocol);
        }
    }
    let res = Results(&points);
    let claims = claims(&res);
    let failures: Vec<String> = points
        .iter()
        .filter(|p| !p.judged.passed())
        .map(|p| format!("{} at N = {} ({} crashed): {}; replay: {}", p.protocol, p.n, p.crashed, p.checks, p.replay))
        .collect();
    Ok(Outcome {
        text: text(duration, warmup, opts, &points, &not_run, &claims),
        json: json_body(duration, warmup, opts, &points, &not_run, &claims),
        csv: csv(&points),
        chart: chart(opts.quick, &points),
        failures,
    })
}

fn setup_line(duration: &str, warmup: &str, seed: u64) -> String {
    format!(
        "N in {SIZES:?} (f = (N-1)/3; Destiny, hybrid: (N-1)/2), replica i in the (i mod 10)-th of {} (replica 0 in eastus is the primary and \
         the first O-primary); clients: single-primary 4000/4000/2500/1500/1200, multi-primary max(4000, 20 N), closed \
         loop, spread evenly over the live replicas; KV puts \
         of {VALUE_BYTES}-byte values (~512-byte commands), one key per client; batch {BATCH}; {BANDWIDTH_MBPS} Mb/s \
         per node; {CORES} cores per replica; request timeouts {REQUEST_TIMEOUT}, client retransmission {CLIENT_RETRANSMIT}; {duration} virtual per point, the first {warmup} left out; seed {seed}",
        REGIONS.join(", ")
    )
}

fn not_run_line(not_run: &[&str], quick: bool) -> String {
    let mut parts: Vec<String> = not_run.iter().map(|p| format!("{p} ({NOT_BUILT})")).collect();
    if !not_run.contains(&"dqbft") {
        parts.push(size_note(quick));
    }
    parts.push(SOURCE_ONLY.to_string());
    parts.join("; ")
}

fn text(duration: &str, warmup: &str, opts: &Options, points: &[Point], not_run: &[&str], claims: &[Claim]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}", EXPERIMENT.name, EXPERIMENT.description);
    let _ = writeln!(s, "source: {}", EXPERIMENT.source);
    let _ =
        writeln!(s, "setup: {}{}", setup_line(duration, warmup, opts.seed), if opts.quick { " (--quick)" } else { "" });
    let ran: Vec<&str> = SERIES.iter().map(|(p, _, _)| *p).filter(|p| !not_run.contains(p)).collect();
    let _ = writeln!(s, "series run: {}", if ran.is_empty() { "none".into() } else { ran.join(", ") });
    let _ = writeln!(s, "not run: {}", not_run_line(not_run, opts.quick));
    let _ = writeln!(s);
    let mut header = vec!["N".to_string(), "f".into(), "series".into()];
    header.extend([
        "OURS ops/s".into(),
        "OURS p50 ms".into(),
        "OURS ops/s f crashed".into(),
        "OURS p50 ms f crashed".into(),
        "SOURCE bound ops/s".into(),
    ]);
    let mut rows = vec![header];
    let res = Results(points);
    for n in SIZES {
        let mut first = true;
        for (protocol, _, _) in SERIES.iter().filter(|(p, _, _)| !not_run.contains(p)) {
            let cell = |crash: bool, f: fn(&Point) -> f64, prec: usize| match res.get(protocol, n, crash) {
                Some(p) if f(p) > 0.0 || p.latency_ops > 0 => format!("{:.prec$}", f(p)),
                Some(_) => "n/a".to_string(),
                None => "-".to_string(),
            };
            let bound = match bound_cell(protocol, n) {
                b if b.is_empty() => "-".into(),
                b => b,
            };
            rows.push(vec![
                if first { n.to_string() } else { String::new() },
                faults(protocol, n).to_string(),
                protocol.to_string(),
                cell(false, |p| p.throughput_ops, 0),
                cell(false, |p| p.p50_ms, 0),
                cell(true, |p| p.throughput_ops, 0),
                cell(true, |p| p.p50_ms, 0),
                bound,
            ]);
            first = false;
        }
    }
    s.push_str(&columns(&rows, 3));
    let _ = writeln!(s);
    let _ = writeln!(s, "OURS ops/s, p50 ms: our throughput (operations completed per virtual second after the warm-up) and median latency (simulator)");
    let _ = writeln!(
        s,
        "n/a: no operation invoked after the warm-up completed within the run (latency above the measured window)"
    );
    let _ = writeln!(s, "OURS ... f crashed: the same with replicas N-f..N-1 crashed from the start (spread over all ten regions; no clients at them)");
    let _ = writeln!(
        s,
        "SOURCE bound: the source's analytic throughput (Fig. 2 at Fig. 3's B = 1 Gb/s, 100 KiB proposals, 250-byte \
         messages) x {BATCH} commands: PBFT B/((N-1)(pm+3sm)), DQPBFT NF B/[(N-1)(pm+3sm) + (NF-1)(pm+4(N-1)sm) + \
         4(N-1)sm], Destiny NF B/[(N-1)(pm+3sm) + (NF-1)(pm+3sm) + 4(N-1)sm] (NF = N - f); they count bytes only, \
         not CPU; Figs. 8 and 9's measured values are not in the source's text"
    );
    if let Some(b) = points.iter().filter(|p| p.protocol == "pbft").filter_map(|p| p.batch_message_bytes).next() {
        let _ = writeln!(s, "our PBFT PRE-PREPARE of {BATCH} commands: {:.0} bytes (the source: about 106 kB)", b);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "The source's claims and our runs:");
    for c in claims {
        let _ = writeln!(s, "- [{}] {} ({})", c.verdict, c.claim, c.at);
        let _ = writeln!(s, "    ours: {}", c.ours);
    }
    let _ = writeln!(s);
    let runs: Vec<(String, &Judged)> =
        points.iter().map(|p| (format!("{} N = {} ({} crashed)", p.protocol, p.n, p.crashed), &p.judged)).collect();
    s.push_str(&checks_section(&runs));
    let wall: f64 = points.iter().map(|p| p.wall_s).sum();
    let events: u64 = points.iter().map(|p| p.events).sum();
    let _ = writeln!(s, "simulated {events} events in {wall:.0} s of wall time");
    if let Some(p) = points.iter().find(|p| p.crashed > 0) {
        let _ = writeln!(s, "rerun a point: {}", p.replay);
    }
    s
}

fn json_body(
    duration: &str,
    warmup: &str,
    opts: &Options,
    points: &[Point],
    not_run: &[&str],
    claims: &[Claim],
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "setup".into(),
        json!({
            "sizes": SIZES,
            "regions": REGIONS,
            "clients_single_primary": SIZES.iter().map(|n| clients(Kind::SinglePrimary, *n)).collect::<Vec<_>>(),
            "clients_multi_primary": SIZES.iter().map(|n| clients(Kind::MultiPrimary, *n)).collect::<Vec<_>>(),
            "workload": "kv-puts",
            "value_bytes": VALUE_BYTES,
            "batch": BATCH,
            "bandwidth_mbps": BANDWIDTH_MBPS,
            "cores": CORES,
            "client_retransmit": CLIENT_RETRANSMIT,
            "duration": duration,
            "warmup": warmup,
            "seed": opts.seed,
            "crashed": "replicas N-f..N-1 from t = 0, no clients at them",
        }),
    );
    let ran: Vec<&str> = SERIES.iter().map(|(p, _, _)| *p).filter(|p| !not_run.contains(p)).collect();
    m.insert("series_run".into(), json!(ran));
    m.insert(
        "sizes_by_series".into(),
        json!(SERIES.iter().map(|(p, _, sizes)| (p.to_string(), json!(sizes))).collect::<Map<_, _>>()),
    );
    m.insert(
        "series_not_run".into(),
        json!(not_run.iter().map(|p| json!({"protocol": p, "why": NOT_BUILT})).collect::<Vec<_>>()),
    );
    m.insert("source_series_not_in_quorate".into(), json!(SOURCE_ONLY));
    m.insert("results".into(), json!(points));
    let bounds: Vec<Value> = SIZES
        .iter()
        .map(|n| {
            json!({
                "n": n,
                "pbft_ops": source_bound(Bound::Pbft, *n) * BATCH as f64,
                "dqpbft_ops": source_bound(Bound::Dqpbft, *n) * BATCH as f64,
                "destiny_ops": source_bound(Bound::Destiny, *n) * BATCH as f64,
            })
        })
        .collect();
    m.insert("reference".into(), json!({"source": EXPERIMENT.source, "bounds": bounds, "claims": claims}));
    m
}

fn csv(points: &[Point]) -> Csv {
    let header = [
        "series",
        "n",
        "f",
        "crashed",
        "clients",
        "throughput_ops",
        "p50_ms",
        "p99_ms",
        "completed",
        "view_changes",
        "checks",
        "source_bound_ops",
    ];
    let rows = points
        .iter()
        .map(|p| {
            let bound = bound_cell(&p.protocol, p.n);
            vec![
                p.protocol.clone(),
                p.n.to_string(),
                p.f.to_string(),
                p.crashed.to_string(),
                p.clients.to_string(),
                format!("{:.1}", p.throughput_ops),
                format!("{:.3}", p.p50_ms),
                format!("{:.3}", p.p99_ms),
                p.completed.to_string(),
                p.view_changes.to_string(),
                p.checks.clone(),
                bound,
            ]
        })
        .collect();
    Csv { header: header.iter().map(|h| h.to_string()).collect(), rows }
}

fn chart(quick: bool, points: &[Point]) -> BarChart {
    let mut bars = Vec::new();
    for (protocol, _, _) in SERIES {
        for crash in [false, true] {
            let values: Vec<Option<f64>> = SIZES
                .iter()
                .map(|n| {
                    points
                        .iter()
                        .find(|p| p.protocol == *protocol && p.n == *n && (p.crashed > 0) == crash)
                        .map(|p| p.throughput_ops)
                })
                .collect();
            if values.iter().any(Option::is_some) {
                bars.push(Bars {
                    label: format!("ours: {protocol}{}", if crash { ", f crashed" } else { "" }),
                    whiskers: vec![None; values.len()],
                    values,
                });
            }
        }
    }
    let markers = vec![
        Markers {
            label: "source bound: PBFT (Fig. 2/3)".into(),
            values: SIZES.iter().map(|n| Some(source_bound(Bound::Pbft, *n) * BATCH as f64)).collect(),
        },
        Markers {
            label: "source bound: DQPBFT (Fig. 2/3)".into(),
            values: SIZES.iter().map(|n| Some(source_bound(Bound::Dqpbft, *n) * BATCH as f64)).collect(),
        },
        Markers {
            label: "source bound: Destiny (Fig. 2/3)".into(),
            values: SIZES.iter().map(|n| Some(source_bound(Bound::Destiny, *n) * BATCH as f64)).collect(),
        },
    ];
    BarChart {
        title: format!("{}: throughput by system size", EXPERIMENT.name),
        subtitle: format!(
            "DQBFT §5.3.2-5.3.3. Bars: ours (simulator{}). Lines: the source's analytic bounds.",
            if quick { ", --quick" } else { "" }
        ),
        y_label: "throughput (ops/s)".into(),
        groups: SIZES.iter().map(|n| format!("N = {n}\n(f = {})", (n - 1) / 3)).collect(),
        bars,
        markers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(protocol: &str, n: usize, crashed: bool, thr: f64) -> Point {
        Point {
            protocol: protocol.into(),
            n,
            f: (n - 1) / 3,
            crashed: if crashed { (n - 1) / 3 } else { 0 },
            clients: clients(Kind::MultiPrimary, n),
            throughput_ops: thr,
            p50_ms: 500.0,
            p99_ms: 900.0,
            latency_ops: 50,
            completed: 100,
            view_changes: 0,
            batch_message_bytes: None,
            events: 10,
            wall_s: 1.0,
            checks: "passed".into(),
            judged: Judged {
                safety: "ok".into(),
                linearizability: "linearizable".into(),
                liveness: "ok".into(),
                linearizability_ops: 1,
                detail: None,
            },
            replay: String::new(),
        }
    }

    #[test]
    fn source_bounds_match_the_digest() {
        // docs: shared/specs/dqbft-destiny.md S2, proposals/s at 100 KiB.
        let r = |k, n| source_bound(k, n).round();
        assert_eq!((r(Bound::Pbft, 19), r(Bound::Pbft, 97), r(Bound::Pbft, 301)), (67.0, 13.0, 4.0));
        assert_eq!((r(Bound::Dqpbft, 19), r(Bound::Dqpbft, 97), r(Bound::Dqpbft, 301)), (490.0, 358.0, 225.0));
        assert_eq!((r(Bound::Destiny, 19), r(Bound::Destiny, 97), r(Bound::Destiny, 301)), (446.0, 410.0, 404.0));
    }

    #[test]
    fn point_argv_is_what_sim_parses() {
        let plan = PointPlan {
            protocol: "dqbft".into(),
            n: 19,
            clients: 40,
            crashed: vec![13, 14, 15, 16, 17, 18],
            weights: vec!["13..19=0".into()],
            duration: "2s".into(),
            warmup: "1s".into(),
            seed: 3,
            round_robin: false,
        };
        let a = parse_sim_args(&plan.sim_argv()).unwrap();
        assert_eq!((a.f, a.clients, a.payload, a.batch, a.seed), (6, 40, VALUE_BYTES, Some(BATCH), 3));
        assert_eq!(a.crash.len(), 6);
        let sc = scenario::<quorate_dqbft::Dqbft>(&a).unwrap();
        assert_eq!(sc.regions.len(), 19);
        assert_eq!(sc.regions[10], "eastus");
        assert_eq!(sc.client_weights[12..], [1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn claims_follow_the_numbers() {
        let mut pts = Vec::new();
        for (i, n) in SIZES.iter().enumerate() {
            pts.push(point("pbft", *n, false, 10_000.0 / (i + 1) as f64));
            pts.push(point("dqbft", *n, false, 50_000.0 - 5_000.0 * i as f64));
            pts.push(point("dqbft", *n, true, 40_000.0));
        }
        let c = claims(&Results(&pts));
        assert_eq!(c[0].verdict, "holds", "{:?}", c[0]);
        assert_eq!(c[1].verdict, "holds", "{:?}", c[1]);
        assert_eq!(c[2].verdict, "holds", "{:?}", c[2]);
        assert!(c[3].ours.contains("19: dqbft throughput 0.80x"), "{}", c[3].ours);
        assert_eq!(c[3].verdict, "see numbers", "no destiny series: {:?}", c[3]);
        assert_eq!((c[4].verdict, c[5].verdict), ("not checked", "not checked"));
        // Destiny ahead of the best other series at N = 301, with a lower median.
        let mut with_destiny = pts.clone();
        with_destiny.push(Point { p50_ms: 200.0, ..point("destiny", 301, false, 40_000.0) });
        with_destiny.push(point("destiny", 19, true, 20_000.0));
        let c = claims(&Results(&with_destiny));
        assert_eq!(c[4].verdict, "holds", "{:?}", c[4]);
        assert!(c[4].ours.contains("301: +33% throughput, -60% latency vs dqbft"), "{}", c[4].ours);
        assert_eq!(c[3].verdict, "see numbers", "destiny has no fault-free point at 19: {:?}", c[3]);
        with_destiny.push(point("destiny", 19, false, 40_000.0));
        let c = claims(&Results(&with_destiny));
        assert_eq!(c[3].verdict, "holds", "dqbft keeps 0.80, destiny 0.50: {:?}", c[3]);
        // Slower than the best other series at N = 301: the claim fails.
        with_destiny.push(Point { p50_ms: 900.0, ..point("destiny", 301, false, 29_000.0) });
        with_destiny.retain(|p| !(p.protocol == "destiny" && p.n == 301 && p.throughput_ops > 30_000.0));
        assert_eq!(claims(&Results(&with_destiny))[4].verdict, "does not hold");
        // A single-primary series that gains with N breaks claim 1.
        pts.push(point("mod-smart", 19, false, 100.0));
        pts.push(point("mod-smart", 301, false, 200.0));
        assert_eq!(claims(&Results(&pts))[0].verdict, "does not hold");
    }

    #[test]
    fn destiny_is_listed_until_built() {
        assert!(SERIES.iter().any(|(p, _, _)| *p == "destiny"));
        let plan = PointPlan {
            protocol: "destiny".into(),
            n: 4,
            clients: 1,
            crashed: Vec::new(),
            weights: Vec::new(),
            duration: "1s".into(),
            warmup: "0s".into(),
            seed: 1,
            round_robin: false,
        };
        if !crate::protocols::PROTOCOLS.contains(&"destiny") {
            assert!(run_point(&plan).unwrap().is_none());
            assert!(not_run_line(&["destiny"], true).contains("destiny (not run (not built yet))"));
        }
    }

    /// CI-sized: every series at N = 7, fault-free and with f = 2 crashed,
    /// runs through the experiment's own point plan and passes its checks.
    #[test]
    fn smoke_tiny_points_pass() {
        for (protocol, _, _) in SERIES {
            for crash in [false, true] {
                let plan = PointPlan {
                    protocol: protocol.to_string(),
                    n: 7,
                    clients: 30,
                    crashed: if crash { vec![5, 6] } else { Vec::new() },
                    weights: if crash { vec!["5..7=0".into()] } else { Vec::new() },
                    duration: "3s".into(),
                    warmup: "1s".into(),
                    seed: 1,
                    round_robin: false,
                };
                let Some(p) = run_point(&plan).unwrap() else {
                    assert_eq!(*protocol, "destiny", "{protocol} is registered");
                    continue;
                };
                assert_eq!(p.checks, "passed", "{protocol} crash={crash}: {}", p.replay);
                assert!(p.throughput_ops > 0.0 && p.p50_ms > 0.0, "{protocol} crash={crash}: {p:?}");
                assert_eq!(p.view_changes, 0, "{protocol} crash={crash}: the primaries stay up");
            }
        }
    }

    #[test]
    fn outputs_have_one_row_per_point() {
        let pts = vec![point("pbft", 19, false, 1000.0), point("pbft", 19, true, 900.0)];
        let c = csv(&pts);
        assert_eq!(c.rows.len(), 2);
        assert!(c.rows.iter().all(|r| r.len() == c.header.len()));
        let opts = Options { quick: true, seed: 1 };
        let t = text("6s", "3s", &opts, &pts, &["mod-smart", "dqbft", "destiny"], &claims(&Results(&pts)));
        assert!(t.contains("OURS ops/s") && t.contains("SOURCE bound ops/s"), "{t}");
        assert!(t.contains("destiny (not run (not built yet))"), "{t}");
        assert!(t.contains("13465"), "PBFT bound at N = 19: {t}");
    }
}

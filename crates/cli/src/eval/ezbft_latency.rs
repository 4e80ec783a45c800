//! `ezbft-latency`: EZBFT §V-A, Experiment 1 (Fig. 4), with Table I.
//!
//! Four replicas (f = 1), one per AWS region, one closed-loop client per
//! region, the KV store with 16-byte values, contention 0, 2, 50 and 100 %.
//! For every protocol series and contention level: the median and 99th
//! percentile latency of the clients of each region. Beside them: the
//! source's Zyzzyva latencies (Table I; Fig. 4's values are not in the text),
//! the source's claims about Fig. 4 with what our runs say about each, and
//! what EZBFT's fast path should approach: three one-way steps over our RTT
//! matrix.

use super::svg::{BarChart, Bars, Markers};
use super::{checks_section, columns, Csv, Experiment, Judged, Options, Outcome};
use crate::sim::{parse_sim_args, scenario, CliProtocol};
use quorate_sim::net::RttMatrix;
use quorate_sim::report::Latency;
use quorate_sim::{run as simulate, Report};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const EXPERIMENT: Experiment = Experiment {
    name: "ezbft-latency",
    description: "client latency per region, leader-based vs leaderless, at 0/2/50/100 % contention \
                  (4 replicas in 4 AWS regions, f = 1, one closed-loop client per region)",
    source: "EZBFT (Arun, Peluso, Ravindran), §V-A Experiment 1: Fig. 4, with Table I (§I)",
    run,
};

/// Replica i sits in `REGIONS[i]`, client i in the region of replica i mod 4.
/// Replica 0 (us-east-1) is Mod-SMaRt's first leader: the source's primaries
/// are in US-East-1 too.
const REGIONS: [&str; 4] = ["us-east-1", "ap-south-1", "ap-southeast-2", "ap-northeast-1"];
/// What the source calls them.
const PLACES: [&str; 4] = ["Virginia", "India", "Australia", "Japan"];
/// Contention levels of Fig. 4, in % of operations on the one shared key.
const CONTENTION_PCT: [u32; 4] = [0, 2, 50, 100];
/// Value size (the source: 16-byte values).
const PAYLOAD: usize = 16;
/// Table I (Zyzzyva, average client latency in ms), its diagonal: the
/// primary in the client's region. In `REGIONS` order.
const TABLE1_PRIMARY_LOCAL_MS: [f64; 4] = [198.0, 229.0, 229.0, 167.0];
/// Table I, column Virginia: the primary in us-east-1, the placement of
/// Experiment 1. In `REGIONS` order.
const TABLE1_PRIMARY_US_EAST_MS: [f64; 4] = [198.0, 304.0, 303.0, 236.0];
/// Medians closer than this (relative) we call equal: the network's jitter
/// alone is up to 5 % per message. The source's smallest gap between a
/// client at the primary and one elsewhere is 19 % (Table I).
const EQUAL_WITHIN: f64 = 0.05;

/// Run lengths: virtual time is cheap (a point of the full run takes well
/// under a second of wall time), and the p99 of a region needs several
/// hundred operations of its one client.
const FULL: (&str, &str) = ("300s", "5s");
const QUICK: (&str, &str) = ("10s", "2s");

/// A protocol series of the experiment.
struct Series {
    /// A fixed leader's replica index (`None`: leaderless, clients use
    /// their nearest replica).
    leader: Option<usize>,
    /// Runs every contention level: [`latency_series`] of the protocol.
    run: fn(&Plan, Option<usize>) -> Result<SeriesResult, String>,
}

/// The series this build runs.
fn series() -> Vec<Series> {
    vec![
        Series { leader: None, run: latency_series::<quorate_ezbft::Ezbft> },
        Series { leader: Some(0), run: latency_series::<quorate_modsmart::ModSmart> },
        Series { leader: Some(0), run: latency_series::<quorate_pbft::Pbft> },
    ]
}

/// Series the source has that a build may lack, and why. An entry is shown
/// only while no series of that name is registered.
const PLANNED: &[(&str, &str)] = &[];
/// The source's other series.
const SOURCE_ONLY: &str = "the source's FaB and Zyzzyva are not implemented in quorate (yet); \
                           Zyzzyva is shown by the source's Table I numbers";

/// Run length and seed of every point.
struct Plan {
    duration: &'static str,
    warmup: &'static str,
    seed: u64,
}

impl Plan {
    /// The `quorate sim` flags of one point.
    fn sim_argv(&self, protocol: &str, contention_pct: u32) -> Vec<String> {
        [
            "--protocol",
            protocol,
            "--regions",
            &REGIONS.join(","),
            "--clients",
            &REGIONS.len().to_string(),
            "--workload",
            "kv",
            "--payload",
            &PAYLOAD.to_string(),
            "--contention",
            &(f64::from(contention_pct) / 100.0).to_string(),
            "--duration",
            self.duration,
            "--warmup",
            self.warmup,
            "--liveness-bound",
            &super::steady_state_bound(self.duration, self.warmup),
            "--seed",
            &self.seed.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// One measured point: a series at one contention level.
#[derive(Clone, Debug, Serialize)]
struct Point {
    contention_pct: u32,
    /// Latency of the clients of each region, ms (after the warm-up).
    regions: BTreeMap<String, Latency>,
    /// Operations per virtual second after the warm-up.
    throughput_ops: f64,
    /// Operations completed in the whole run.
    completed: u64,
    /// Consensus instances decided by the most advanced correct replica.
    decided: u64,
    /// Leader (view) changes: none expected in a fault-free run.
    view_changes: u64,
    /// "passed", or what failed or was not judged.
    checks: String,
    /// What each checker judged.
    judged: Judged,
    /// The `quorate sim` command that reruns the point.
    replay: String,
}

#[derive(Clone, Debug, Serialize)]
struct SeriesResult {
    /// The protocol's name in `quorate sim --protocol`.
    protocol: String,
    /// The fixed leader (`null`: leaderless).
    leader_replica: Option<usize>,
    /// Its region.
    leader_region: Option<String>,
    points: Vec<Point>,
}

/// Every point of one protocol: the same scenario at each contention level.
fn latency_series<P: CliProtocol>(plan: &Plan, leader: Option<usize>) -> Result<SeriesResult, String> {
    let mut points = Vec::with_capacity(CONTENTION_PCT.len());
    for pct in CONTENTION_PCT {
        let argv = plan.sim_argv(P::NAME, pct);
        let sc = scenario::<P>(&parse_sim_args(&argv)?)?;
        let report = simulate(sc).map_err(|e| format!("{} at {pct} % contention: {e}", P::NAME))?;
        points.push(point(pct, &report, format!("quorate sim {}", argv.join(" "))));
    }
    let leader_region = match leader {
        Some(l) => Some(REGIONS.get(l).ok_or(format!("{}: leader {l} is not a replica", P::NAME))?.to_string()),
        None => None,
    };
    Ok(SeriesResult { protocol: P::NAME.to_string(), leader_replica: leader, leader_region, points })
}

fn point(contention_pct: u32, r: &Report, replay: String) -> Point {
    let judged = Judged::of(r);
    Point {
        contention_pct,
        regions: r.latency_by_region.clone(),
        throughput_ops: r.throughput_ops,
        completed: r.completed,
        decided: r.decided,
        view_changes: r.view_changes,
        checks: judged.summary(),
        judged,
        replay,
    }
}

/// The latency of EZBFT's fast path for a client: to its nearest replica,
/// from there to every replica, from each back to the client; the client
/// needs all 3f+1 replies, so the slowest path counts. One-way = RTT/2.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct ThreeSteps {
    ms: f64,
    /// The replica the client sends to.
    local: String,
    /// The replica on the slowest path.
    farthest: String,
}

fn three_one_way_steps(m: &RttMatrix, replicas: &[&str], client: &str) -> Result<ThreeSteps, String> {
    let rtt = |a: &str, b: &str| m.rtt_ms_by_name(a, b).map_err(|e| e.to_string());
    let mut local = 0;
    for (i, r) in replicas.iter().enumerate() {
        if rtt(client, r)? < rtt(client, replicas[local])? {
            local = i;
        }
    }
    let mut best: Option<(f64, usize)> = None;
    for (i, r) in replicas.iter().enumerate() {
        // The local replica's own reply does not cross the network between replicas.
        let between = if i == local { 0.0 } else { rtt(replicas[local], r)? / 2.0 };
        let path = rtt(client, replicas[local])? / 2.0 + between + rtt(r, client)? / 2.0;
        if best.is_none_or(|(ms, _)| path > ms) {
            best = Some((path, i));
        }
    }
    let (ms, far) = best.ok_or("no replicas")?;
    Ok(ThreeSteps { ms, local: replicas[local].to_string(), farthest: replicas[far].to_string() })
}

/// Our results, looked up by protocol, contention and region.
struct Results<'a>(&'a [SeriesResult]);

impl Results<'_> {
    fn get(&self, protocol: &str) -> Option<&SeriesResult> {
        self.0.iter().find(|s| s.protocol == protocol)
    }
    fn p50(&self, protocol: &str, pct: u32, region: &str) -> Option<f64> {
        let p = self.get(protocol)?.points.iter().find(|p| p.contention_pct == pct)?;
        p.regions.get(region).filter(|l| l.count > 0).map(|l| l.p50)
    }
}

/// A claim of the source and what our runs say about it.
#[derive(Clone, Debug, Serialize)]
struct Claim {
    /// Where the source makes it.
    at: &'static str,
    claim: &'static str,
    /// "holds", "does not hold", "not checked" or "see numbers" (the
    /// source gives no tolerance to judge by).
    verdict: &'static str,
    /// Our numbers, or why the claim was not checked.
    ours: String,
}

fn not_run(protocol: &str) -> String {
    format!("the {protocol} series did not run")
}

/// How much contention moves a series: over the regions, the largest
/// (highest median / lowest median - 1) across the contention levels.
fn contention_spread(res: &Results, protocol: &str) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for r in REGIONS {
        let medians: Vec<f64> = CONTENTION_PCT.iter().filter_map(|p| res.p50(protocol, *p, r)).collect();
        let (lo, hi) = medians.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        if medians.len() > 1 && lo > 0.0 {
            worst = Some(worst.unwrap_or(0.0).max(hi / lo - 1.0));
        }
    }
    worst
}

fn claims(res: &Results) -> Vec<Claim> {
    let mut out = Vec::new();
    let leader_based: Vec<&SeriesResult> = res.0.iter().filter(|s| s.leader_region.is_some()).collect();

    // 1. Contention matters to EZBFT only.
    let mut c = Claim {
        at: "§V",
        claim: "among the protocols evaluated, only EZBFT is affected by contention",
        verdict: "not checked",
        ours: "no series ran".into(),
    };
    let mut holds = true;
    let mut lines = Vec::new();
    for s in res.0 {
        let Some(spread) = contention_spread(res, &s.protocol) else { continue };
        // Leader-based series order every operation alike; EZBFT should show the difference.
        holds &= if s.leader_region.is_some() { spread <= EQUAL_WITHIN } else { spread > EQUAL_WITHIN };
        lines.push(format!(
            "{}: a region's median moves by at most {:.1} % between 0 and 100 % contention",
            s.protocol,
            spread * 100.0
        ));
    }
    if !lines.is_empty() {
        if res.get("ezbft").is_none() {
            lines.push(format!("EZBFT's half of the claim is not checked: {}", not_run("ezbft")));
        }
        c.verdict = if holds { "holds" } else { "does not hold" };
        c.ours = lines.join("; ");
    }
    out.push(c);

    // 2. Leader-based protocols: slower away from the leader.
    let mut c = Claim {
        at: "§V-A, Fig. 4; Table I",
        claim: "with the primary in us-east-1, clients in the other regions see higher latency \
                (Table I: 198 ms in Virginia, 236-304 ms elsewhere)",
        verdict: "not checked",
        ours: "no leader-based series ran".into(),
    };
    if !leader_based.is_empty() {
        let mut holds = true;
        let mut lines = Vec::new();
        for s in &leader_based {
            let leader = s.leader_region.as_deref().unwrap_or_default();
            for p in &s.points {
                let Some(at_leader) = res.p50(&s.protocol, p.contention_pct, leader) else { continue };
                let mut least = f64::INFINITY;
                for r in REGIONS.iter().filter(|r| **r != leader) {
                    if let Some(v) = res.p50(&s.protocol, p.contention_pct, r) {
                        least = least.min(v / at_leader - 1.0);
                    }
                }
                holds &= least > EQUAL_WITHIN;
                if p.contention_pct == CONTENTION_PCT[0] {
                    let medians: Vec<String> = REGIONS
                        .iter()
                        .filter_map(|r| res.p50(&s.protocol, p.contention_pct, r).map(|v| format!("{r} {v:.1}")))
                        .collect();
                    let per_instance = if p.decided > 0 {
                        format!("; {:.1} operations per decided instance", p.completed as f64 / p.decided as f64)
                    } else {
                        String::new()
                    };
                    lines.push(format!(
                        "{} medians at {} % contention: {} ms; the closest other region is {:+.1} % from the \
                         leader's ({}){per_instance}",
                        s.protocol,
                        p.contention_pct,
                        medians.join(", "),
                        least * 100.0,
                        leader
                    ));
                }
            }
        }
        c.verdict = if holds { "holds" } else { "does not hold" };
        lines.push(format!(
            "judged at every contention level; medians within {:.0} % count as equal",
            EQUAL_WITHIN * 100.0
        ));
        c.ours = lines.join("; ");
    }
    out.push(c);

    // 3. EZBFT against the source's Zyzzyva, up to 50 % contention.
    let mut c = Claim {
        at: "§V-A, Fig. 4",
        claim: "EZBFT is as good as or better than Zyzzyva (primary in us-east-1) up to 50 % contention: \
                about equal in us-east-1, better elsewhere",
        verdict: "not checked",
        ours: not_run("ezbft"),
    };
    if res.get("ezbft").is_some() {
        let mut holds = true;
        let mut worst = Vec::new();
        for pct in CONTENTION_PCT.iter().copied().filter(|p| *p <= 50) {
            let mut ratios = Vec::new();
            for (i, r) in REGIONS.iter().enumerate() {
                if let Some(v) = res.p50("ezbft", pct, r) {
                    let ratio = v / TABLE1_PRIMARY_US_EAST_MS[i];
                    holds &= ratio <= 1.0 + EQUAL_WITHIN;
                    ratios.push(format!("{r} {:.2}", ratio));
                }
            }
            worst.push(format!("{pct} %: {}", ratios.join(", ")));
        }
        c.verdict = if holds { "holds" } else { "does not hold" };
        c.ours = format!(
            "our EZBFT median / the source's Zyzzyva average (Table I, primary in Virginia): {} (different networks: \
             compare the 3-step expectation with Table I's diagonal to see how close ours is)",
            worst.join("; ")
        );
    }
    out.push(c);

    // 4. EZBFT at 100 % contention, against the leader-based series.
    let mut c = Claim {
        at: "§V-A, Fig. 4",
        claim: "at 100 % contention EZBFT's five steps make its latency close to PBFT's",
        verdict: "not checked",
        ours: not_run("ezbft"),
    };
    // The source's PBFT; another leader-based series only when PBFT did not run.
    match (res.get("ezbft"), res.get("pbft").or(leader_based.first().copied())) {
        (Some(_), Some(base)) => {
            let ratios: Vec<String> = REGIONS
                .iter()
                .filter_map(|r| {
                    Some(format!("{r} {:.2}", res.p50("ezbft", 100, r)? / res.p50(&base.protocol, 100, r)?))
                })
                .collect();
            c.verdict = "see numbers";
            c.ours = format!("EZBFT median / {} median at 100 %: {}", base.protocol, ratios.join(", "));
        }
        (Some(_), None) => c.ours = "no leader-based series ran".into(),
        _ => {}
    }
    out.push(c);

    // 5. PBFT is the slowest of the source's protocols: slower than EZBFT
    // where EZBFT takes its fast path (up to 50 % contention; at 100 % the
    // source itself puts them close, claim 4) and than Zyzzyva (Table I).
    // Mod-SMaRt is not one of the source's protocols, so it is not judged.
    let mut c = Claim {
        at: "§V-A, Fig. 4",
        claim:
            "PBFT, with 5 communication steps, is the slowest (of PBFT, FaB, Zyzzyva and EZBFT up to 50 % contention)",
        verdict: "not checked",
        ours: not_run("pbft"),
    };
    if res.get("pbft").is_some() {
        let mut holds = true;
        let mut lines = Vec::new();
        // (lowest PBFT / other ratio, contention, region) against EZBFT and Zyzzyva.
        let mut least_ez: Option<(f64, u32, &str)> = None;
        let mut least_zyz: Option<(f64, &str)> = None;
        for pct in CONTENTION_PCT.iter().copied().filter(|p| *p <= 50) {
            for (i, r) in REGIONS.iter().enumerate() {
                let Some(pb) = res.p50("pbft", pct, r) else { continue };
                if let Some(ez) = res.p50("ezbft", pct, r) {
                    if least_ez.is_none_or(|(x, _, _)| pb / ez < x) {
                        least_ez = Some((pb / ez, pct, r));
                    }
                }
                let zyz = pb / TABLE1_PRIMARY_US_EAST_MS[i];
                if least_zyz.is_none_or(|(x, _)| zyz < x) {
                    least_zyz = Some((zyz, r));
                }
            }
        }
        match least_ez {
            Some((ratio, pct, r)) => {
                holds &= ratio >= 1.0 - EQUAL_WITHIN;
                lines.push(format!(
                    "PBFT median / EZBFT median is at least {ratio:.2} (lowest: {r} at {pct} % contention)"
                ));
            }
            None => lines.push(format!("against EZBFT not checked: {}", not_run("ezbft"))),
        }
        if let Some((ratio, r)) = least_zyz {
            holds &= ratio >= 1.0 - EQUAL_WITHIN;
            lines.push(format!(
                "PBFT median / the source's Zyzzyva (Table I, primary in Virginia) is at least {ratio:.2} (lowest: {r}; \
                 different networks)"
            ));
        }
        if !lines.is_empty() && least_ez.is_some() {
            c.verdict = if holds { "holds" } else { "does not hold" };
        }
        lines.push(format!(
            "ratios within {:.0} % of 1 count as equal; FaB is not in quorate; Mod-SMaRt is not one of the source's \
             protocols",
            EQUAL_WITHIN * 100.0
        ));
        c.ours = lines.join("; ");
    }
    out.push(c);
    out
}

fn run(opts: &Options) -> Result<Outcome, String> {
    let (duration, warmup) = if opts.quick { QUICK } else { FULL };
    let plan = Plan { duration, warmup, seed: opts.seed };
    let mut results = Vec::new();
    for s in series() {
        results.push((s.run)(&plan, s.leader)?);
    }
    let not_registered: Vec<(&str, &str)> =
        PLANNED.iter().copied().filter(|(p, _)| !results.iter().any(|s| s.protocol == *p)).collect();

    let matrix = RttMatrix::aws();
    let mut expected = Vec::with_capacity(REGIONS.len());
    for r in REGIONS {
        expected.push(three_one_way_steps(&matrix, &REGIONS, r)?);
    }
    let res = Results(&results);
    let claims = claims(&res);
    let failures: Vec<String> = results
        .iter()
        .flat_map(|s| s.points.iter().map(move |p| (s, p)))
        .filter(|(_, p)| !p.judged.passed())
        .map(|(s, p)| {
            format!("{} at {} % contention: {}; replay: {}", s.protocol, p.contention_pct, p.checks, p.replay)
        })
        .collect();

    Ok(Outcome {
        text: text(&plan, opts.quick, &results, &not_registered, &expected, &claims),
        json: json_body(&plan, &results, &not_registered, &expected, &claims),
        csv: csv(&results, &expected),
        chart: chart(opts.quick, &results, &expected),
        failures,
    })
}

fn setup_line(plan: &Plan) -> String {
    format!(
        "replica i in {} (n = 4, f = 1); one closed-loop client per region; KV store, {PAYLOAD}-byte values; \
         {} virtual per point, the first {} left out; seed {} for every point",
        REGIONS.join(", "),
        plan.duration,
        plan.warmup,
        plan.seed
    )
}

fn series_line(results: &[SeriesResult]) -> String {
    if results.is_empty() {
        return "none".into();
    }
    results
        .iter()
        .map(|s| match (s.leader_replica, &s.leader_region) {
            (Some(l), Some(r)) => format!("{} (leader: replica {l}, {r})", s.protocol),
            _ => format!("{} (leaderless: clients use their nearest replica)", s.protocol),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_run_line(not_registered: &[(&str, &str)]) -> String {
    let mut parts: Vec<String> = not_registered.iter().map(|(p, why)| format!("{p} ({why})")).collect();
    parts.push(SOURCE_ONLY.to_string());
    parts.join("; ")
}

fn text(
    plan: &Plan,
    quick: bool,
    results: &[SeriesResult],
    not_registered: &[(&str, &str)],
    expected: &[ThreeSteps],
    claims: &[Claim],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}", EXPERIMENT.name, EXPERIMENT.description);
    let _ = writeln!(s, "source: {}", EXPERIMENT.source);
    let _ = writeln!(s, "setup: {}{}", setup_line(plan), if quick { " (--quick)" } else { "" });
    let _ = writeln!(s, "series run: {}", series_line(results));
    let _ = writeln!(s, "not run: {}", not_run_line(not_registered));
    let _ = writeln!(s);

    let mut header = vec!["region".to_string(), "series".to_string()];
    header.extend(CONTENTION_PCT.iter().map(|p| format!("OURS {p} %")));
    header.extend(["SOURCE local".into(), "SOURCE us-east-1".into(), "EXPECTED 3 steps".into()]);
    let mut rows = vec![header];
    for (i, region) in REGIONS.iter().enumerate() {
        let references =
            // The source's numbers are whole milliseconds.
            [format!("{:.0}", TABLE1_PRIMARY_LOCAL_MS[i]), format!("{:.0}", TABLE1_PRIMARY_US_EAST_MS[i]), {
                let e = &expected[i];
                format!("{:.1} (via {})", e.ms, e.farthest)
            }];
        let mut first = true;
        for sr in results.iter().map(Some).chain(results.is_empty().then_some(None)) {
            let mut row = vec![if first { format!("{region} ({})", PLACES[i]) } else { String::new() }];
            row.push(sr.map_or("-".into(), |s| s.protocol.clone()));
            for pct in CONTENTION_PCT {
                let l = sr
                    .and_then(|s| s.points.iter().find(|p| p.contention_pct == pct))
                    .and_then(|p| p.regions.get(*region));
                row.push(l.map_or("-".into(), |l| format!("{:.1} / {:.1}", l.p50, l.p99)));
            }
            if first {
                row.extend(references.iter().cloned());
            }
            rows.push(row);
            first = false;
        }
    }
    s.push_str(&columns(&rows, 2));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "OURS N %: our median / p99 client latency (ms, simulator), clients of that region, at N % contention"
    );
    let _ = writeln!(
        s,
        "SOURCE local: Zyzzyva's average client latency with the primary in the client's region (source, Table I diagonal)"
    );
    let _ = writeln!(
        s,
        "SOURCE us-east-1: the same with the primary in us-east-1, as in Experiment 1 (source, Table I, Virginia column)"
    );
    let _ = writeln!(
        s,
        "EXPECTED 3 steps: client -> local replica -> farthest replica -> client, one-way = RTT/2 of our AWS matrix: \
         what EZBFT's fast path should approach (and Zyzzyva's with a local primary, cf. SOURCE local)"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "The source's claims (Fig. 4's values are not in its text) and our runs:");
    for c in claims {
        let _ = writeln!(s, "- [{}] {} ({})", c.verdict, c.claim, c.at);
        let _ = writeln!(s, "    ours: {}", c.ours);
    }
    let _ = writeln!(s);
    let changes: u64 = results.iter().flat_map(|r| &r.points).map(|p| p.view_changes).sum();
    let runs: Vec<(String, &Judged)> = results
        .iter()
        .flat_map(|r| r.points.iter().map(move |p| (format!("{} {} %", r.protocol, p.contention_pct), &p.judged)))
        .collect();
    s.push_str(&checks_section(&runs));
    if changes > 0 {
        let _ = writeln!(s, "note: {changes} leader changes happened: the leader did not stay in us-east-1 throughout");
    }
    if let Some(p) = results.first().and_then(|r| r.points.first()) {
        let _ = writeln!(s, "rerun a point: {}", p.replay);
    }
    s
}

fn json_body(
    plan: &Plan,
    results: &[SeriesResult],
    not_registered: &[(&str, &str)],
    expected: &[ThreeSteps],
    claims: &[Claim],
) -> Map<String, Value> {
    let by_region = |values: &[f64]| -> Value {
        Value::Object(REGIONS.iter().zip(values).map(|(r, v)| (r.to_string(), json!(v))).collect())
    };
    let mut m = Map::new();
    m.insert(
        "setup".into(),
        json!({
            "regions": REGIONS,
            "n": REGIONS.len(),
            "f": 1,
            "clients_per_region": 1,
            "payload_bytes": PAYLOAD,
            "contention_pct": CONTENTION_PCT,
            "duration": plan.duration,
            "warmup": plan.warmup,
            "seed": plan.seed,
        }),
    );
    m.insert("series_run".into(), json!(results.iter().map(|s| &s.protocol).collect::<Vec<_>>()));
    m.insert(
        "series_not_run".into(),
        json!(not_registered.iter().map(|(p, why)| json!({"protocol": p, "why": why})).collect::<Vec<_>>()),
    );
    m.insert("source_series_not_in_quorate".into(), json!(SOURCE_ONLY));
    m.insert("results".into(), json!(results));
    m.insert(
        "reference".into(),
        json!({
            "source": EXPERIMENT.source,
            "zyzzyva_avg_ms_primary_local": by_region(&TABLE1_PRIMARY_LOCAL_MS),
            "zyzzyva_avg_ms_primary_us_east_1": by_region(&TABLE1_PRIMARY_US_EAST_MS),
            "claims": claims,
        }),
    );
    m.insert(
        "expected".into(),
        json!({
            "three_one_way_steps": REGIONS.iter().zip(expected).map(|(r, e)| (r.to_string(), json!(e))).collect::<Map<_, _>>(),
        }),
    );
    m
}

fn csv(results: &[SeriesResult], expected: &[ThreeSteps]) -> Csv {
    let header = [
        "series",
        "contention_pct",
        "region",
        "ops",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
        "max_ms",
        "source_zyzzyva_avg_ms_primary_local",
        "source_zyzzyva_avg_ms_primary_us_east_1",
        "expected_three_one_way_steps_ms",
    ];
    let mut rows = Vec::new();
    for s in results {
        for p in &s.points {
            for (i, region) in REGIONS.iter().enumerate() {
                let Some(l) = p.regions.get(*region) else { continue };
                rows.push(vec![
                    s.protocol.clone(),
                    p.contention_pct.to_string(),
                    region.to_string(),
                    l.count.to_string(),
                    format!("{:.3}", l.p50),
                    format!("{:.3}", l.p90),
                    format!("{:.3}", l.p99),
                    format!("{:.3}", l.mean),
                    format!("{:.3}", l.max),
                    format!("{:.0}", TABLE1_PRIMARY_LOCAL_MS[i]),
                    format!("{:.0}", TABLE1_PRIMARY_US_EAST_MS[i]),
                    format!("{:.3}", expected[i].ms),
                ]);
            }
        }
    }
    Csv { header: header.iter().map(|h| h.to_string()).collect(), rows }
}

fn chart(quick: bool, results: &[SeriesResult], expected: &[ThreeSteps]) -> BarChart {
    let mut bars = Vec::new();
    for s in results {
        for p in &s.points {
            let get = |f: fn(&Latency) -> f64| REGIONS.iter().map(|r| p.regions.get(*r).map(f)).collect();
            bars.push(Bars {
                label: format!("ours: {}, {} % contention", s.protocol, p.contention_pct),
                values: get(|l| l.p50),
                whiskers: get(|l| l.p99),
            });
        }
    }
    let markers = vec![
        Markers {
            label: "source: Zyzzyva avg, primary in the client's region (Table I)".into(),
            values: TABLE1_PRIMARY_LOCAL_MS.iter().map(|v| Some(*v)).collect(),
        },
        Markers {
            label: "source: Zyzzyva avg, primary in us-east-1 (Table I)".into(),
            values: TABLE1_PRIMARY_US_EAST_MS.iter().map(|v| Some(*v)).collect(),
        },
        Markers {
            label: "expected: 3 one-way steps (EZBFT fast path, our RTT matrix)".into(),
            values: expected.iter().map(|e| Some(e.ms)).collect(),
        },
    ];
    let run: Vec<&str> = results.iter().map(|s| s.protocol.as_str()).collect();
    BarChart {
        title: format!("{}: median client latency by region (whiskers: p99)", EXPERIMENT.name),
        subtitle: format!(
            "EZBFT §V-A Exp. 1. Bars: ours (simulator{}), series run: {}. Lines: the source's numbers and the expectation.",
            if quick { ", --quick" } else { "" },
            if run.is_empty() { "none".to_string() } else { run.join(", ") }
        ),
        y_label: "latency (ms)".into(),
        groups: REGIONS.iter().zip(PLACES).map(|(r, p)| format!("{r}\n({p})")).collect(),
        bars,
        markers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: f64) -> Latency {
        Latency { count: 10, p50, p90: p50, p99: p50 + 10.0, mean: p50, max: p50 + 10.0 }
    }

    fn series_of(protocol: &str, leader: Option<&str>, p50: [f64; 4]) -> SeriesResult {
        let points = CONTENTION_PCT
            .iter()
            .map(|&pct| Point {
                contention_pct: pct,
                regions: REGIONS.iter().zip(p50).map(|(r, v)| (r.to_string(), lat(v))).collect(),
                throughput_ops: 1.0,
                completed: 20,
                decided: 10,
                view_changes: 0,
                checks: "passed".into(),
                judged: Judged {
                    safety: "ok".into(),
                    linearizability: "linearizable".into(),
                    liveness: "ok".into(),
                    linearizability_ops: 20,
                    detail: None,
                },
                replay: String::new(),
            })
            .collect();
        SeriesResult {
            protocol: protocol.into(),
            leader_replica: leader.map(|_| 0),
            leader_region: leader.map(String::from),
            points,
        }
    }

    #[test]
    fn three_steps_from_the_matrix() {
        let m = RttMatrix::aws();
        let e = three_one_way_steps(&m, &REGIONS, "us-east-1").unwrap();
        // 0.5 ms to the local replica, then the slowest round trip from it (Sydney, 196.9 ms).
        assert_eq!(e.local, "us-east-1");
        assert_eq!(e.farthest, "ap-southeast-2");
        assert!((e.ms - (0.5 + 196.9)).abs() < 1e-9, "{e:?}");
        // Every region's expectation is one of its replicas' round trips plus the local half-millisecond.
        for r in REGIONS {
            let e = three_one_way_steps(&m, &REGIONS, r).unwrap();
            assert_eq!(e.local, r);
            let worst = REGIONS.iter().map(|o| m.rtt_ms_by_name(r, o).unwrap()).fold(0.0, f64::max);
            assert!((e.ms - (0.5 + worst)).abs() < 1e-9, "{r}: {e:?}");
        }
        assert!(three_one_way_steps(&m, &REGIONS, "mars-1").is_err());
    }

    #[test]
    fn leader_claim_is_judged_from_the_medians() {
        let slower_away = [series_of("mod-smart", Some("us-east-1"), [200.0, 300.0, 290.0, 240.0])];
        let c = claims(&Results(&slower_away));
        assert_eq!(c[1].verdict, "holds", "{:?}", c[1]);
        assert!(c[1].ours.contains("+20.0 %"), "{}", c[1].ours);
        assert_eq!(c[2].verdict, "not checked");
        assert!(c[2].ours.contains("ezbft series did not run"));
        // A 2 % difference is within the jitter: equal, so the claim does not hold.
        let lockstep = [series_of("mod-smart", Some("us-east-1"), [470.0, 480.0, 479.0, 475.0])];
        assert_eq!(claims(&Results(&lockstep))[1].verdict, "does not hold");
    }

    #[test]
    fn pbft_slowest_claim() {
        let ez = series_of("ezbft", None, [200.0, 210.0, 220.0, 230.0]);
        let slow = series_of("pbft", Some("us-east-1"), [300.0, 400.0, 400.0, 350.0]);
        let c = claims(&Results(&[ez.clone(), slow]));
        assert_eq!(c[4].verdict, "holds", "{:?}", c[4]);
        assert!(c[4].ours.contains("PBFT median / EZBFT median is at least 1.50"), "{}", c[4].ours);
        // Faster than EZBFT in one region: the claim fails.
        let fast = series_of("pbft", Some("us-east-1"), [150.0, 400.0, 400.0, 350.0]);
        let c = claims(&Results(&[ez.clone(), fast.clone()]));
        assert_eq!(c[4].verdict, "does not hold", "{:?}", c[4]);
        assert!(c[4].ours.contains("lowest: us-east-1"), "{}", c[4].ours);
        // Without EZBFT there is nothing to judge it by but another network's numbers.
        assert_eq!(claims(&Results(&[fast]))[4].verdict, "not checked");
        assert_eq!(claims(&Results(&[ez]))[4].verdict, "not checked");
    }

    #[test]
    fn contention_claim() {
        let mut s = series_of("mod-smart", Some("us-east-1"), [200.0, 300.0, 290.0, 240.0]);
        let c = claims(&Results(std::slice::from_ref(&s)));
        assert_eq!(c[0].verdict, "holds", "{:?}", c[0]);
        assert!(c[0].ours.contains("at most 0.0 %") && c[0].ours.contains("ezbft series did not run"));
        // 100 % contention slows one region by 10 %: a leader-based series should not show that.
        s.points[3].regions.get_mut("ap-south-1").unwrap().p50 = 330.0;
        let c = claims(&Results(std::slice::from_ref(&s)));
        assert_eq!(c[0].verdict, "does not hold");
        assert!(c[0].ours.contains("at most 10.0 %"), "{}", c[0].ours);
        assert_eq!(claims(&Results(&[]))[0].verdict, "not checked");
    }

    #[test]
    fn ezbft_claims_once_it_runs() {
        let both = [
            series_of("mod-smart", Some("us-east-1"), [400.0, 500.0, 500.0, 450.0]),
            series_of("ezbft", None, [200.0, 250.0, 240.0, 236.0]),
        ];
        let c = claims(&Results(&both));
        assert_eq!(c[2].verdict, "holds", "{:?}", c[2]);
        assert_eq!(c[3].verdict, "see numbers");
        assert!(c[3].ours.contains("us-east-1 0.50"), "{}", c[3].ours);
        // The test data have no contention effect: right for Mod-SMaRt, wrong for EZBFT.
        assert_eq!(c[0].verdict, "does not hold", "{:?}", c[0]);
        let slow = [series_of("ezbft", None, [250.0, 250.0, 240.0, 236.0])];
        let c = claims(&Results(&slow));
        assert_eq!(c[2].verdict, "does not hold", "250 ms in us-east-1 against the source's 198");
        assert_eq!(c[1].verdict, "not checked");
        assert_eq!(c[3].ours, "no leader-based series ran");
    }

    #[test]
    fn point_argv_is_what_sim_parses() {
        let plan = Plan { duration: "10s", warmup: "2s", seed: 7 };
        let args = parse_sim_args(&plan.sim_argv("mod-smart", 2)).unwrap();
        assert_eq!(args.regions, REGIONS);
        assert_eq!((args.clients, args.payload, args.seed), (4, 16, 7));
        assert_eq!(args.contention, 0.02);
        assert_eq!(args.warmup, std::time::Duration::from_secs(2));
    }

    #[test]
    fn outputs_have_one_row_per_point() {
        let plan = Plan { duration: "10s", warmup: "2s", seed: 1 };
        let results = [series_of("mod-smart", Some("us-east-1"), [200.0, 300.0, 290.0, 240.0])];
        let expected: Vec<ThreeSteps> =
            REGIONS.iter().map(|r| three_one_way_steps(&RttMatrix::aws(), &REGIONS, r).unwrap()).collect();
        let c = csv(&results, &expected);
        assert_eq!(c.rows.len(), CONTENTION_PCT.len() * REGIONS.len());
        assert!(c.rows.iter().all(|r| r.len() == c.header.len()));
        let t = text(&plan, true, &results, PLANNED, &expected, &claims(&Results(&results)));
        assert!(t.contains("not run: the source's FaB and Zyzzyva"), "{t}");
        assert!(t.contains("OURS 0 %") && t.contains("SOURCE local") && t.contains("EXPECTED 3 steps"), "{t}");
        assert!(t.contains("200.0 / 210.0"), "{t}");
    }
}

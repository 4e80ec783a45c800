//! `dqbft-imbalance`: DQBFT §5.3.4 (Fig. 10), the imbalanced load.
//!
//! The source spreads clients evenly over the ten Azure regions, doubles
//! them "in all regions except South East Asia", and reports that once the
//! replicas absorb the surge DQPBFT's throughput is 25 % higher, while RCC's
//! and MirBFT's stay flat: their round-robin delivery moves at the pace of
//! the replica whose load did not grow. We run both sides of that contrast
//! on the same ground: DQPBFT, and DQPBFT's instances with the round-robin
//! delivery of RCC and MirBFT (`--round-robin`: every client stays on its
//! replica's instance, slots execute in a fixed order), each at four loads
//! of the same length: balanced (C clients per replica), skewed (2C at
//! every replica outside southeastasia, C in it), and balanced at 2C and 3C,
//! which show that the skewed load is a saturated one (throughput no longer
//! grows with the clients), so that a gain under the skew is the protocol's
//! and not a closed loop's (more clients, more operations). The verdicts
//! compare DQPBFT's gain with the baseline's. The source's transient (the
//! dip at t = 60 s) and its replica kill at t = 140 s are not part of it.
//! Why: docs/decisions/0005-experiments.md.

use super::dqbft_scalability::{run_point, Point, PointPlan, REGIONS};
use super::svg::{BarChart, Bars, Markers};
use super::{checks_section, columns, Csv, Experiment, Judged, Options, Outcome};
use serde_json::{json, Map};
use std::fmt::Write as _;

pub const EXPERIMENT: Experiment = Experiment {
    name: "dqbft-imbalance",
    description: "DQPBFT against a round-robin (RCC/MirBFT) delivery order, with clients spread evenly and doubled \
                  at every replica outside South-East Asia, at saturation (10 Azure regions)",
    source: "DQBFT (Arun, Ravindran, PVLDB 15), §5.3.4, Fig. 10 (imbalanced request rates: DQPBFT +25 %, \
             RCC and MirBFT flat)",
    run,
};

/// System sizes: the source's is 97, where a DQPBFT point at saturation is
/// hours of simulation (a round is 2N³ messages); docs/decisions/0005.
const N: usize = 19;
const QUICK_N: usize = 10;
/// Clients per replica of the balanced point: twice this (the skewed load
/// outside southeastasia) is where DQPBFT's balanced throughput stops
/// growing at both sizes, as the x2 and x3 points show in every run
/// (docs/decisions/0005-experiments.md). It is also a D-instance's pipeline:
/// `max_in_flight` (4) batches of 200.
const C: usize = 800;
/// The region whose clients are not doubled.
const SPARED: &str = "southeastasia";
/// The source's gain after the surge, and the "at least 20 %" its text gives.
const SOURCE_GAIN: f64 = 0.25;
const GAIN_HOLDS: f64 = 0.20;
/// A throughput within this of another is "flat" (the baseline's claim, and
/// saturation: 3C gives no more than this over 2C).
const FLAT_WITHIN: f64 = 0.10;
const FULL: (&str, &str) = ("9s", "4s");
const QUICK: (&str, &str) = ("4s", "2s");

/// The two series: label, `--round-robin`.
const SERIES: [(&str, bool); 2] = [("dqbft", false), ("round robin", true)];

/// The loads, in run order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Balanced,
    Skewed,
    /// Every replica's clients times this (2 or 3).
    Times(usize),
}

const LOADS: [Load; 4] = [Load::Balanced, Load::Skewed, Load::Times(2), Load::Times(3)];

impl Load {
    fn name(self) -> String {
        match self {
            Load::Balanced => "balanced".into(),
            Load::Skewed => "skewed".into(),
            Load::Times(k) => format!("balanced x{k}"),
        }
    }

    fn clients(self, n: usize) -> usize {
        match self {
            Load::Balanced => C * n,
            Load::Skewed => C * (n + doubled_replicas(n)),
            Load::Times(k) => k * C * n,
        }
    }
}

/// Replicas outside [`SPARED`] among `n`.
fn doubled_replicas(n: usize) -> usize {
    (0..n).filter(|i| REGIONS[i % REGIONS.len()] != SPARED).count()
}

/// N, and each point's length and warm-up.
fn size(opts: &Options) -> (usize, (&'static str, &'static str)) {
    if opts.quick {
        (QUICK_N, QUICK)
    } else {
        (N, FULL)
    }
}

fn plan(opts: &Options, round_robin: bool, load: Load) -> PointPlan {
    let (n, (duration, warmup)) = size(opts);
    let mut weights = Vec::new();
    if load == Load::Skewed {
        weights = REGIONS.iter().filter(|r| **r != SPARED).map(|r| format!("{r}=2")).collect();
        weights.push(format!("{SPARED}=1"));
    }
    PointPlan {
        protocol: "dqbft".into(),
        n,
        clients: load.clients(n),
        crashed: Vec::new(),
        weights,
        duration: duration.into(),
        warmup: warmup.into(),
        seed: opts.seed,
        round_robin,
    }
}

/// One series' four points, in [`LOADS`] order.
struct Series {
    label: &'static str,
    round_robin: bool,
    points: Vec<Point>,
}

impl Series {
    fn at(&self, load: Load) -> &Point {
        &self.points[LOADS.iter().position(|l| *l == load).expect("a load of LOADS")]
    }

    fn throughput(&self, load: Load) -> f64 {
        self.at(load).throughput_ops
    }

    /// Throughput under the skew over the balanced point's, minus one.
    fn gain(&self) -> f64 {
        ratio(self.throughput(Load::Skewed), self.throughput(Load::Balanced)) - 1.0
    }

    /// What 3C gives over 2C, minus one: at most [`FLAT_WITHIN`] when the
    /// series is saturated at the skewed load's level.
    fn growth_past_2c(&self) -> f64 {
        ratio(self.throughput(Load::Times(3)), self.throughput(Load::Times(2))) - 1.0
    }

    /// The skewed point's throughput as a share of the saturated level.
    fn share_of_capacity(&self) -> f64 {
        ratio(self.throughput(Load::Skewed), self.throughput(Load::Times(2)).max(self.throughput(Load::Times(3))))
    }

    fn saturated(&self) -> bool {
        self.growth_past_2c() <= FLAT_WITHIN
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(1e-9)
}

/// One of the source's claims, judged on our runs.
#[derive(Debug, PartialEq)]
struct Claim {
    claim: String,
    /// "holds", "see numbers", "does not hold" or "not checked".
    verdict: &'static str,
    /// Our number, as a fraction (the gain, or the difference of gains).
    ours: f64,
    /// What `ours` × 100 is in: "%" or "points".
    unit: &'static str,
}

/// The source's claims, judged on our two series: DQPBFT gains at least
/// 20 % under the skew; the round robin stays flat; DQPBFT gains at least
/// 20 points more than the round robin.
#[derive(Debug, PartialEq)]
struct Claims {
    /// Why nothing was judged, if so.
    not_checked: Option<String>,
    list: [Claim; 3],
}

fn judge(dq: &Series, rr: &Series) -> Claims {
    let unmeasured: Vec<String> = [dq, rr]
        .iter()
        .flat_map(|s| s.points.iter().zip(LOADS).filter(|(p, _)| p.latency_ops == 0).map(|(_, l)| (s.label, l)))
        .map(|(label, l)| format!("{label} {}", l.name()))
        .collect();
    let unsaturated: Vec<String> = [dq, rr]
        .iter()
        .filter(|s| !s.saturated())
        .map(|s| format!("{} (+{:.0} % from 2C to 3C clients per replica)", s.label, s.growth_past_2c() * 100.0))
        .collect();
    let not_checked = if !unmeasured.is_empty() {
        // Nothing invoked after the warm-up completed: a start-up transient
        // (clients moving to their replica's D-instance by ASSIGN), not a level.
        Some(format!(
            "no operation invoked after the warm-up completed at {}: still starting up; run longer",
            unmeasured.join(", ")
        ))
    } else if !unsaturated.is_empty() {
        Some(format!(
            "not saturated: {}; the skewed load would measure a closed loop's growth, not the protocol's",
            unsaturated.join(", ")
        ))
    } else {
        None
    };
    let checked = not_checked.is_none();
    let level = |gain: f64| {
        if !checked {
            "not checked"
        } else if gain >= GAIN_HOLDS {
            "holds"
        } else if gain > 0.05 {
            "see numbers"
        } else {
            "does not hold"
        }
    };
    let flat = if !checked {
        "not checked"
    } else if rr.gain().abs() <= FLAT_WITHIN {
        "holds"
    } else {
        "does not hold"
    };
    let (held, gap) = (GAIN_HOLDS * 100.0, dq.gain() - rr.gain());
    Claims {
        not_checked,
        list: [
            Claim {
                claim: format!(
                    "with the clients doubled outside South-East Asia, DQPBFT's throughput rises by {:.0} % \
                     (at least {held:.0} %)",
                    SOURCE_GAIN * 100.0
                ),
                verdict: level(dq.gain()),
                ours: dq.gain(),
                unit: "%",
            },
            Claim {
                claim: format!("RCC's and MirBFT's stay flat (round robin within {:.0} %)", FLAT_WITHIN * 100.0),
                verdict: flat,
                ours: rr.gain(),
                unit: "%",
            },
            Claim {
                claim: format!("under the same skew DQPBFT gains at least {held:.0} points more than the round robin"),
                verdict: level(gap),
                ours: gap,
                unit: "points",
            },
        ],
    }
}

fn run(opts: &Options) -> Result<Outcome, String> {
    let mut series = Vec::new();
    for (label, round_robin) in SERIES {
        let mut points = Vec::new();
        for load in LOADS {
            match run_point(&plan(opts, round_robin, load))? {
                Some(p) => points.push(p),
                None => return Err("dqbft is not in this build".into()),
            }
        }
        series.push(Series { label, round_robin, points });
    }
    let (dq, rr) = (&series[0], &series[1]);
    let claims = judge(dq, rr);
    let mut failures = Vec::new();
    let mut runs: Vec<(String, &Judged)> = Vec::new();
    for s in &series {
        for (p, load) in s.points.iter().zip(LOADS) {
            let what = format!("{} {}", s.label, load.name());
            if !p.judged.passed() {
                failures.push(format!("{what}: {}; replay: {}", p.checks, p.replay));
            }
            runs.push((what, &p.judged));
        }
    }

    let (n, (duration, warmup)) = size(opts);
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}", EXPERIMENT.name, EXPERIMENT.description);
    let _ = writeln!(s, "source: {}", EXPERIMENT.source);
    let _ = writeln!(
        s,
        "setup: N = {n} (f = {}), replica i in the (i mod 10)-th of {}; C = {C} clients per replica; balanced: C \
         everywhere; skewed: 2C at the {} replicas outside {SPARED}, C in it; balanced x2, x3: 2C, 3C everywhere \
         (saturation); KV puts, batch 200, 1 Gb/s, 8 cores; {duration} virtual per point, the first {warmup} left \
         out; seed {}{}",
        (n - 1) / 3,
        REGIONS.join(", "),
        doubled_replicas(n),
        opts.seed,
        if opts.quick {
            format!(" (--quick: N = {QUICK_N}; the full run's is {N}, the source's 97)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "series run: dqbft (DQPBFT), round robin (dqbft --round-robin: the same instances, each client on its \
         replica's, slots executed in a fixed round-robin order as RCC and MirBFT do)"
    );
    let _ = writeln!(s, "not run: the source's RCC and MirBFT themselves (not in quorate; the round robin stands in)");
    let _ = writeln!(s);
    let mut rows = vec![vec!["load".to_string(), "clients".into()]];
    for (label, _) in SERIES {
        rows[0].extend([format!("{label} ops/s"), "p50 ms".into(), "p99 ms".into()]);
    }
    rows[0].push("SOURCE".into());
    for load in LOADS {
        let mut row = vec![load.name(), load.clients(n).to_string()];
        for sr in &series {
            let p = sr.at(load);
            row.extend([format!("{:.0}", p.throughput_ops), format!("{:.0}", p.p50_ms), format!("{:.0}", p.p99_ms)]);
        }
        row.push(
            match load {
                Load::Balanced => "RCC = DQPBFT = MirBFT",
                Load::Skewed => "DQPBFT +25 %, RCC and MirBFT +0 %",
                Load::Times(_) => "",
            }
            .into(),
        );
        rows.push(row);
    }
    s.push_str(&columns(&rows, 1));
    let _ = writeln!(s);
    let _ = writeln!(s, "ops/s: throughput after the warm-up; p50, p99: latency (simulator)");
    let _ = writeln!(s, "SOURCE: Fig. 10 before and after the surge (values in the figure only; the text gives +25 %)");
    let _ = writeln!(s);
    for sr in &series {
        let _ = writeln!(
            s,
            "{}: skewed {:+.1} % over balanced; 3C {:+.1} % over 2C ({}); the skewed load reaches {:.0} % of the \
             saturated level",
            sr.label,
            sr.gain() * 100.0,
            sr.growth_past_2c() * 100.0,
            if sr.saturated() { "saturated" } else { "NOT saturated" },
            sr.share_of_capacity() * 100.0
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "The source's claims and our runs:");
    for c in &claims.list {
        let _ = writeln!(s, "- [{}] {}", c.verdict, c.claim);
        let _ = writeln!(s, "    ours: {:+.1} {}", c.ours * 100.0, c.unit);
    }
    if let Some(why) = &claims.not_checked {
        let _ = writeln!(s, "    not checked: {why} (docs/decisions/0005-experiments.md)");
    }
    let _ = writeln!(s);
    s.push_str(&checks_section(&runs));
    let _ = writeln!(s, "rerun a point: {}", dq.at(Load::Skewed).replay);

    let mut j = Map::new();
    j.insert(
        "setup".into(),
        json!({"n": n, "regions": REGIONS, "clients_per_replica": C, "spared_region": SPARED,
               "loads": LOADS.iter().map(|l| json!({"load": l.name(), "clients": l.clients(n)})).collect::<Vec<_>>(),
               "duration": duration, "warmup": warmup, "seed": opts.seed}),
    );
    j.insert("series_run".into(), json!(["dqbft", "dqbft --round-robin"]));
    j.insert("source_series_not_in_quorate".into(), json!(["RCC", "MirBFT"]));
    let results: Vec<_> = series
        .iter()
        .map(|sr| {
            json!({"series": sr.label, "round_robin": sr.round_robin,
                   "points": sr.points.iter().zip(LOADS).map(|(p, l)| json!({"load": l.name(), "point": p})).collect::<Vec<_>>(),
                   "gain": sr.gain(), "growth_past_2c": sr.growth_past_2c(), "saturated": sr.saturated(),
                   "share_of_capacity": sr.share_of_capacity()})
        })
        .collect();
    j.insert("results".into(), json!(results));
    j.insert(
        "reference".into(),
        json!({"source": EXPERIMENT.source, "dqpbft_gain": SOURCE_GAIN, "rcc_mirbft_gain": 0.0,
               "claims": claims.list.iter().map(|c| json!({"claim": c.claim, "verdict": c.verdict, "ours": c.ours}))
                   .collect::<Vec<_>>(),
               "not_checked": claims.not_checked}),
    );
    Ok(Outcome { text: s, json: j, csv: csv(&series), chart: chart(opts.quick, &series), failures })
}

fn csv(series: &[Series]) -> Csv {
    let header = ["series", "load", "clients", "throughput_ops", "p50_ms", "p99_ms", "completed", "checks"];
    let rows = series
        .iter()
        .flat_map(|sr| {
            sr.points.iter().zip(LOADS).map(move |(p, load)| {
                vec![
                    sr.label.to_string(),
                    load.name(),
                    p.clients.to_string(),
                    format!("{:.1}", p.throughput_ops),
                    format!("{:.3}", p.p50_ms),
                    format!("{:.3}", p.p99_ms),
                    p.completed.to_string(),
                    p.checks.clone(),
                ]
            })
        })
        .collect();
    Csv { header: header.iter().map(|h| h.to_string()).collect(), rows }
}

fn chart(quick: bool, series: &[Series]) -> BarChart {
    let source = |sr: &Series, gain: f64| {
        let base = sr.throughput(Load::Balanced);
        LOADS
            .iter()
            .map(|l| match l {
                Load::Balanced => Some(base),
                Load::Skewed => Some(base * (1.0 + gain)),
                Load::Times(_) => None,
            })
            .collect()
    };
    BarChart {
        title: format!("{}: DQPBFT and a round-robin order, balanced and skewed load", EXPERIMENT.name),
        subtitle: format!(
            "DQBFT §5.3.4. Bars: ours (simulator{}). Lines: the source's +25 % (DQPBFT) and flat (RCC, MirBFT) \
             over our balanced points.",
            if quick { ", --quick" } else { "" }
        ),
        y_label: "throughput (ops/s)".into(),
        groups: vec![
            "balanced".into(),
            "clients doubled\noutside SE Asia".into(),
            "balanced x2\n(saturation)".into(),
            "balanced x3\n(saturation)".into(),
        ],
        bars: series
            .iter()
            .map(|sr| Bars {
                label: format!("ours: {}", sr.label),
                values: sr.points.iter().map(|p| Some(p.throughput_ops)).collect(),
                whiskers: vec![None; sr.points.len()],
            })
            .collect(),
        markers: vec![
            Markers { label: "source: DQPBFT +25 % (Fig. 10)".into(), values: source(&series[0], SOURCE_GAIN) },
            Markers { label: "source: RCC, MirBFT flat (Fig. 10)".into(), values: source(&series[1], 0.0) },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{parse_sim_args, scenario};

    #[test]
    fn skewed_point_doubles_the_clients_outside_southeast_asia() {
        let full = Options { quick: false, seed: 1 };
        assert_eq!(doubled_replicas(19), 18);
        assert_eq!(doubled_replicas(10), 9);
        assert_eq!(plan(&Options { quick: true, seed: 1 }, false, Load::Balanced).n, QUICK_N);
        let (b, s) = (plan(&full, false, Load::Balanced), plan(&full, false, Load::Skewed));
        assert_eq!((b.clients, s.clients), (800 * 19, 800 * 37));
        assert_eq!(plan(&full, true, Load::Times(3)).clients, 3 * 800 * 19);
        assert!(plan(&full, true, Load::Skewed).sim_argv().contains(&"--round-robin".to_string()));
        assert!(!s.sim_argv().contains(&"--round-robin".to_string()));
        let sc = scenario::<quorate_dqbft::Dqbft>(&parse_sim_args(&s.sim_argv()).unwrap()).unwrap();
        let homes = quorate_sim::engine::client_homes(N, &sc.client_weights);
        assert_eq!(homes.len(), 37);
        let per = |r: usize| (0..s.clients).filter(|c| homes[c % homes.len()] == r).count();
        // Replica 0 (eastus) has twice the clients of replica 9 (southeastasia).
        assert_eq!((per(0), per(9)), (1600, 800));
        assert!(parse_sim_args(&b.sim_argv()).unwrap().client_weight.is_empty());
    }

    fn series(label: &'static str, throughputs: [f64; 4]) -> Series {
        let points =
            throughputs.iter().map(|t| Point { throughput_ops: *t, latency_ops: 1, ..Point::default() }).collect();
        Series { label, round_robin: label != "dqbft", points }
    }

    fn verdicts(c: &Claims) -> [&'static str; 3] {
        c.list.each_ref().map(|c| c.verdict)
    }

    #[test]
    fn verdicts_compare_like_with_like() {
        // The source's shape: DQPBFT gains under the skew, the round robin
        // stays flat, both saturated at 2C.
        let dq = series("dqbft", [28_000.0, 40_000.0, 42_000.0, 41_000.0]);
        let rr = series("round robin", [18_000.0, 18_500.0, 26_000.0, 25_000.0]);
        assert_eq!(verdicts(&judge(&dq, &rr)), ["holds", "holds", "holds"]);
        // Both gain alike: the gain is the load's, and the comparison fails.
        let rr_up = series("round robin", [18_000.0, 25_000.0, 26_000.0, 25_000.0]);
        assert_eq!(verdicts(&judge(&dq, &rr_up)), ["holds", "does not hold", "does not hold"]);
        // No gain at all.
        let dq_flat = series("dqbft", [40_000.0, 40_500.0, 42_000.0, 41_000.0]);
        assert_eq!(verdicts(&judge(&dq_flat, &rr))[0], "does not hold");
    }

    #[test]
    fn unsaturated_or_unmeasured_runs_are_not_checked() {
        // A closed loop below saturation: +90 % for 1.9x the clients, and
        // still growing from 2C to 3C.
        let dq = series("dqbft", [5_000.0, 9_500.0, 10_000.0, 15_000.0]);
        let rr = series("round robin", [1_000.0, 1_050.0, 1_100.0, 1_100.0]);
        let c = judge(&dq, &rr);
        assert_eq!(verdicts(&c), ["not checked"; 3]);
        assert!(c.not_checked.unwrap().contains("not saturated: dqbft"));
        let mut dq = series("dqbft", [28_000.0, 40_000.0, 42_000.0, 41_000.0]);
        dq.points[1].latency_ops = 0;
        assert!(judge(&dq, &rr).not_checked.unwrap().contains("dqbft skewed"));
    }
}

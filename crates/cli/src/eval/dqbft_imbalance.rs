//! `dqbft-imbalance`: DQBFT §5.3.4 (Fig. 10), the imbalanced load.
//!
//! N = 97 replicas over the ten Azure regions, DQPBFT. The source starts
//! with clients spread evenly and at t = 50 s doubles the clients "in all
//! regions except South East Asia"; once the replicas absorb the surge,
//! DQPBFT's throughput is 25 % higher, while RCC's and MirBFT's stay flat
//! (their round-robin delivery runs at the slowest replica's pace). We run
//! the two steady states as two points of the same length: clients spread
//! evenly, and the same clients plus as many again at every replica outside
//! southeastasia (`--client-weight southeastasia=1` with weight 2 elsewhere).
//! The source's transient (the dip at t = 60 s) and its replica kill at
//! t = 140 s are not part of it. Why: docs/decisions/0005-experiments.md.

use super::dqbft_scalability::{run_point, Point, PointPlan, REGIONS};
use super::svg::{BarChart, Bars, Markers};
use super::{checks_section, columns, Csv, Experiment, Judged, Options, Outcome};
use serde_json::{json, Map};
use std::fmt::Write as _;

pub const EXPERIMENT: Experiment = Experiment {
    name: "dqbft-imbalance",
    description: "DQPBFT's throughput with clients spread evenly and with the clients doubled at every replica \
                  outside South-East Asia (N = 97, 10 Azure regions)",
    source: "DQBFT (Arun, Ravindran, PVLDB 15), §5.3.4, Fig. 10 (imbalanced request rates: DQPBFT +25 %)",
    run,
};

/// The source's N; `--quick` runs [`QUICK_N`] (a DQPBFT point at 97 is ten
/// minutes of CPU: docs/decisions/0005-experiments.md).
const N: usize = 97;
const QUICK_N: usize = 49;
/// Clients per replica in the balanced point (the skewed point has twice
/// as many at the 88 replicas outside southeastasia).
const CLIENTS_PER_REPLICA: usize = 30;
/// The region whose clients are not doubled.
const SPARED: &str = "southeastasia";
/// The source's gain after the surge.
const SOURCE_GAIN: f64 = 0.25;
const FULL: (&str, &str) = ("12s", "4s");
const QUICK: (&str, &str) = ("4s", "2s");
/// Series of the source that quorate lacks.
const SOURCE_ONLY: &str = "the source's RCC and MirBFT (which stay flat) are not in quorate";

/// Replicas outside [`SPARED`] among `n`.
fn doubled_replicas(n: usize) -> usize {
    (0..n).filter(|i| REGIONS[i % REGIONS.len()] != SPARED).count()
}

fn size(opts: &Options) -> usize {
    if opts.quick {
        QUICK_N
    } else {
        N
    }
}

fn plans(opts: &Options) -> [PointPlan; 2] {
    let (duration, warmup) = if opts.quick { QUICK } else { FULL };
    let n = size(opts);
    let base = PointPlan {
        protocol: "dqbft".into(),
        n,
        clients: CLIENTS_PER_REPLICA * n,
        crashed: Vec::new(),
        weights: Vec::new(),
        duration: duration.into(),
        warmup: warmup.into(),
        seed: opts.seed,
        round_robin: false,
    };
    let mut weights: Vec<String> = REGIONS.iter().filter(|r| **r != SPARED).map(|r| format!("{r}=2")).collect();
    weights.push(format!("{SPARED}=1"));
    let skewed = PointPlan { clients: CLIENTS_PER_REPLICA * (n + doubled_replicas(n)), weights, ..base.clone() };
    [base, skewed]
}

fn run(opts: &Options) -> Result<Outcome, String> {
    let [balanced, skewed] = plans(opts);
    let mut points = Vec::new();
    for plan in [&balanced, &skewed] {
        match run_point(plan)? {
            Some(p) => points.push(p),
            None => return Err("dqbft is not in this build".into()),
        }
    }
    let gain = points[1].throughput_ops / points[0].throughput_ops.max(1e-9) - 1.0;
    let verdict = if points.iter().any(|p| p.latency_ops == 0) {
        // Nothing invoked after the warm-up completed: a start-up transient
        // (clients moving to their replica's D-instance by ASSIGN), not a level.
        "not checked"
    } else if gain >= SOURCE_GAIN * 0.8 {
        "holds"
    } else if gain > 0.05 {
        "see numbers"
    } else {
        "does not hold"
    };
    let failures: Vec<String> = points
        .iter()
        .zip(["balanced", "skewed"])
        .filter(|(p, _)| !p.judged.passed())
        .map(|(p, what)| format!("{what}: {}; replay: {}", p.checks, p.replay))
        .collect();

    let (duration, warmup) = (&balanced.duration, &balanced.warmup);
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}", EXPERIMENT.name, EXPERIMENT.description);
    let _ = writeln!(s, "source: {}", EXPERIMENT.source);
    let _ = writeln!(
        s,
        "setup: N = {} (f = {}), replica i in the (i mod 10)-th of {}; balanced: {} clients ({CLIENTS_PER_REPLICA} per \
         replica); skewed: {} ({} per replica outside {SPARED}, {CLIENTS_PER_REPLICA} in it); KV puts, batch 200, 1 Gb/s; \
         {duration} virtual per point, the first {warmup} left out; seed {}{}",
        balanced.n,
        (balanced.n - 1) / 3,
        REGIONS.join(", "),
        balanced.clients,
        skewed.clients,
        2 * CLIENTS_PER_REPLICA,
        opts.seed,
        if opts.quick { " (--quick: N = 49, the source's is 97)" } else { "" }
    );
    let _ = writeln!(s, "series run: dqbft");
    let _ = writeln!(s, "not run: {SOURCE_ONLY}");
    let _ = writeln!(s);
    let mut rows = vec![vec![
        "load".to_string(),
        "clients".into(),
        "OURS ops/s".into(),
        "OURS p50 ms".into(),
        "OURS p99 ms".into(),
        "SOURCE".into(),
    ]];
    for (p, what, source) in [
        (&points[0], "balanced", "RCC = DQPBFT = MirBFT".to_string()),
        (&points[1], "skewed", format!("DQPBFT +{:.0} %, RCC and MirBFT +0 %", SOURCE_GAIN * 100.0)),
    ] {
        rows.push(vec![
            what.into(),
            p.clients.to_string(),
            format!("{:.0}", p.throughput_ops),
            format!("{:.0}", p.p50_ms),
            format!("{:.0}", p.p99_ms),
            source,
        ]);
    }
    s.push_str(&columns(&rows, 1));
    let _ = writeln!(s);
    let _ = writeln!(s, "OURS: DQPBFT's throughput after the warm-up and its latency (simulator)");
    let _ = writeln!(
        s,
        "SOURCE: Fig. 10 before and after the surge (its values are in the figure only; the text gives the +25 %)"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "The source's claim and our runs:");
    let _ = writeln!(
        s,
        "- [{verdict}] with the clients doubled outside South-East Asia, DQPBFT's throughput rises by 25 % (§5.3.4)"
    );
    let _ = writeln!(
        s,
        "    ours: {:+.1} % ({:.0} -> {:.0} ops/s)",
        gain * 100.0,
        points[0].throughput_ops,
        points[1].throughput_ops
    );
    if verdict == "not checked" {
        let _ = writeln!(
            s,
            "    a point completed nothing invoked after its warm-up: its clients were still moving to their \
             replicas' D-instances (ASSIGN, at most `max_assigns` an O-batch); run longer \
             (docs/decisions/0005-experiments.md)"
        );
    }
    let _ = writeln!(s);
    let runs: Vec<(String, &Judged)> =
        points.iter().zip(["balanced", "skewed"]).map(|(p, what)| (what.to_string(), &p.judged)).collect();
    s.push_str(&checks_section(&runs));
    let _ = writeln!(s, "rerun a point: {}", points[1].replay);

    let mut j = Map::new();
    j.insert(
        "setup".into(),
        json!({"n": balanced.n, "regions": REGIONS, "clients_per_replica": CLIENTS_PER_REPLICA, "spared_region": SPARED,
               "duration": duration, "warmup": warmup, "seed": opts.seed}),
    );
    j.insert("series_run".into(), json!(["dqbft"]));
    j.insert("source_series_not_in_quorate".into(), json!(SOURCE_ONLY));
    j.insert("results".into(), json!({"balanced": points[0], "skewed": points[1], "gain": gain}));
    j.insert(
        "reference".into(),
        json!({"source": EXPERIMENT.source, "dqpbft_gain": SOURCE_GAIN, "rcc_mirbft_gain": 0.0,
               "claim": {"verdict": verdict, "ours_gain": gain}}),
    );
    Ok(Outcome { text: s, json: j, csv: csv(&points), chart: chart(opts.quick, &points), failures })
}

fn csv(points: &[Point]) -> Csv {
    let header = ["load", "clients", "throughput_ops", "p50_ms", "p99_ms", "completed", "checks", "source_gain"];
    let rows = points
        .iter()
        .zip(["balanced", "skewed"])
        .map(|(p, what)| {
            vec![
                what.to_string(),
                p.clients.to_string(),
                format!("{:.1}", p.throughput_ops),
                format!("{:.3}", p.p50_ms),
                format!("{:.3}", p.p99_ms),
                p.completed.to_string(),
                p.checks.clone(),
                format!("{SOURCE_GAIN}"),
            ]
        })
        .collect();
    Csv { header: header.iter().map(|h| h.to_string()).collect(), rows }
}

fn chart(quick: bool, points: &[Point]) -> BarChart {
    let base = points.first().map_or(0.0, |p| p.throughput_ops);
    BarChart {
        title: format!("{}: DQPBFT throughput, balanced and skewed load", EXPERIMENT.name),
        subtitle: format!(
            "DQBFT §5.3.4. Bars: ours (simulator{}). Line: the source's +25 % over our balanced point.",
            if quick { ", --quick" } else { "" }
        ),
        y_label: "throughput (ops/s)".into(),
        groups: vec!["balanced".into(), "clients doubled\noutside SE Asia".into()],
        bars: vec![Bars {
            label: "ours: dqbft".into(),
            values: points.iter().map(|p| Some(p.throughput_ops)).collect(),
            whiskers: vec![None; points.len()],
        }],
        markers: vec![Markers {
            label: "source: balanced, and +25 % (Fig. 10)".into(),
            values: vec![Some(base), Some(base * (1.0 + SOURCE_GAIN))],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{parse_sim_args, scenario};

    #[test]
    fn skewed_point_doubles_the_clients_outside_southeast_asia() {
        let [b, s] = plans(&Options { quick: false, seed: 1 });
        assert_eq!(doubled_replicas(97), 88);
        assert_eq!(doubled_replicas(49), 45);
        assert_eq!(plans(&Options { quick: true, seed: 1 })[0].n, QUICK_N);
        assert_eq!((b.clients, s.clients), (30 * 97, 30 * 185));
        let sc = scenario::<quorate_dqbft::Dqbft>(&parse_sim_args(&s.sim_argv()).unwrap()).unwrap();
        let homes = quorate_sim::engine::client_homes(N, &sc.client_weights);
        assert_eq!(homes.len(), 185);
        let per = |r: usize| (0..s.clients).filter(|c| homes[c % homes.len()] == r).count();
        // Replica 0 (eastus) has twice the clients of replica 9 (southeastasia).
        assert_eq!((per(0), per(9)), (60, 30));
        assert!(parse_sim_args(&b.sim_argv()).unwrap().client_weight.is_empty());
    }
}

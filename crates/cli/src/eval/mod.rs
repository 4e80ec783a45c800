//! `quorate eval`: named experiments that rerun a source's evaluation in the
//! simulator and show our numbers beside the ones the source reports.
//!
//! An [`Experiment`] is a fixed plan of simulator runs (regions, clients,
//! workload, protocol series, run length, warm-up) with the source's numbers
//! and claims to compare against. Running one gives an [`Outcome`]: a text
//! table, one JSON object, CSV rows (one per measured point) and a plot.
//! This module holds the flags, the registry and the files; each experiment
//! is a module of its own. Why it is built this way:
//! `docs/decisions/0005-experiments.md`.

mod dqbft_imbalance;
mod dqbft_scalability;
mod ezbft_latency;
mod ezbft_owner_change;
mod svg;

use clap::Args;
use quorate_sim::Report;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Every experiment, in the order `--list` prints them. Adding one: a module
/// with an `EXPERIMENT` constant, and its line here.
const EXPERIMENTS: &[Experiment] = &[
    ezbft_latency::EXPERIMENT,
    ezbft_owner_change::EXPERIMENT,
    dqbft_scalability::EXPERIMENT,
    dqbft_imbalance::EXPERIMENT,
];

/// Flags of `quorate eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Experiment to run (see --list).
    pub name: Option<String>,
    /// List the experiments with their sources, then exit.
    #[arg(long)]
    pub list: bool,
    /// Directory for NAME.csv and NAME.svg (created if missing).
    #[arg(long, default_value = "eval-results")]
    pub out: PathBuf,
    /// Print one JSON object with all results and the reference numbers instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Short runs (for CI): the same points and the same output, fewer samples.
    #[arg(long)]
    pub quick: bool,
    /// Seed of every run of the experiment.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A named, runnable experiment.
pub struct Experiment {
    /// Name on the command line.
    pub name: &'static str,
    /// One line: what it measures.
    pub description: &'static str,
    /// Where it comes from: paper and section.
    pub source: &'static str,
    /// Runs it.
    pub run: fn(&Options) -> Result<Outcome, String>,
}

/// How to run an experiment.
pub struct Options {
    /// Short runs.
    pub quick: bool,
    /// Seed of every run.
    pub seed: u64,
}

/// What an experiment produced.
pub struct Outcome {
    /// The human-readable tables and notes.
    pub text: String,
    /// Everything, for `--json` (merged into the object with the experiment's name and files).
    pub json: Map<String, Value>,
    /// One row per measured point.
    pub csv: Csv,
    /// The plot.
    pub chart: svg::BarChart,
    /// Runs whose checks failed, one line each (empty: all passed).
    pub failures: Vec<String>,
}

/// A CSV table: a header and rows of the same length.
#[derive(Debug, Default)]
pub struct Csv {
    /// Column names.
    pub header: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// The table as RFC 4180 text (fields with commas, quotes or line breaks quoted).
    pub fn render(&self) -> String {
        let line = |fields: &[String]| fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",") + "\n";
        std::iter::once(&self.header).chain(&self.rows).map(|r| line(r)).collect()
    }
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Rows of cells as aligned text columns: the first `left` columns aligned
/// left, the others right, two spaces apart.
pub fn columns(rows: &[Vec<String>], left: usize) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| if c < left { format!("{s:<w$}", w = widths[c]) } else { format!("{s:>w$}", w = widths[c]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What a run's checkers judged, each in one word, so that an experiment
/// shows per run what was checked and never calls a run passed whose
/// liveness was not judged or whose history was not decided.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Judged {
    /// Agreement, at-most-once and state digests: "ok" or "FAILED".
    pub safety: String,
    /// "linearizable", "not_linearizable" or "unknown" (the checker gave up).
    pub linearizability: String,
    /// "ok", "FAILED" or "not judged" (the run ended before stabilisation
    /// plus the bound).
    pub liveness: String,
    /// Operations the linearizability checker was given.
    pub linearizability_ops: usize,
    /// The first failure's explanation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Judged {
    /// The verdicts of one simulator run.
    pub fn of(r: &Report) -> Judged {
        let liveness = match (r.liveness_judged, r.liveness_ok) {
            (false, _) => "not judged",
            (true, true) => "ok",
            (true, false) => "FAILED",
        };
        let mut j = Judged {
            safety: if r.safety_violations == 0 { "ok" } else { "FAILED" }.into(),
            linearizability: r.linearizability.clone(),
            liveness: liveness.into(),
            linearizability_ops: r.linearizability_ops,
            detail: None,
        };
        if !j.passed() {
            j.detail = Some(
                [&r.first_violation, &r.linearizability_detail, &r.liveness_detail]
                    .into_iter()
                    .flatten()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| format!("liveness {}", j.liveness)),
            );
        }
        j
    }

    /// Every check judged and passed (and the simulator's own verdict agrees).
    pub fn passed(&self) -> bool {
        self.safety == "ok" && self.linearizability == "linearizable" && self.liveness == "ok"
    }

    /// "passed", or "FAILED: " and what failed first.
    pub fn summary(&self) -> String {
        if self.passed() {
            "passed".into()
        } else {
            format!(
                "FAILED ({}): {}",
                self.words(),
                self.detail.as_deref().unwrap_or("a check was not judged or failed")
            )
        }
    }

    fn words(&self) -> String {
        format!(
            "safety {}, linearizability {} ({} ops), liveness {}",
            self.safety, self.linearizability, self.linearizability_ops, self.liveness
        )
    }
}

/// The per-run checks section of an experiment's text: one line per run
/// with what each checker judged, then the total.
/// The `--liveness-bound` of a steady-state point (no fault after its
/// start-up): three quarters of the measured window, so that an operation
/// pending that long is a stall and the run judges liveness (it lasts past
/// stabilisation + bound). The protocols' own bounds, made for recovery
/// from faults with timeouts of seconds, outlast such short points
/// (decision 0012).
pub fn steady_state_bound(duration: &str, warmup: &str) -> String {
    let d = quorate_sim::parse_duration(duration).unwrap_or_default();
    let w = quorate_sim::parse_duration(warmup).unwrap_or_default();
    format!("{}ms", (d.saturating_sub(w).as_millis() * 3 / 4).max(1))
}

pub fn checks_section(runs: &[(String, &Judged)]) -> String {
    let mut rows = vec![vec![
        "run".to_string(),
        "safety".into(),
        "linearizability".into(),
        "ops checked".into(),
        "liveness".into(),
    ]];
    for (label, j) in runs {
        rows.push(vec![
            label.clone(),
            j.safety.clone(),
            j.linearizability.clone(),
            j.linearizability_ops.to_string(),
            j.liveness.clone(),
        ]);
    }
    let failed = runs.iter().filter(|(_, j)| !j.passed()).count();
    let mut s = String::from(
        "checks per run (safety: agreement, at-most-once, state digests; linearizability of the clients' history; \
         liveness after stabilisation):\n",
    );
    s.push_str(&columns(&rows, 1));
    if failed == 0 {
        s.push_str(&format!("checks: all {} runs judged and passed\n", runs.len()));
    } else {
        s.push_str(&format!("checks: {failed} of {} runs FAILED or not judged:\n", runs.len()));
        for (label, j) in runs.iter().filter(|(_, j)| !j.passed()) {
            s.push_str(&format!("  {label}: {}\n", j.summary()));
        }
    }
    s
}

fn known() -> String {
    EXPERIMENTS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

fn find(name: &str) -> Result<&'static Experiment, String> {
    EXPERIMENTS
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| format!("unknown experiment '{name}' (known: {})", known()))
}

/// Entry point of `quorate eval`.
pub fn main(args: &EvalArgs) -> Result<ExitCode, String> {
    if args.list {
        if args.json {
            let list: Vec<Value> = EXPERIMENTS
                .iter()
                .map(|e| json!({"name": e.name, "description": e.description, "source": e.source}))
                .collect();
            println!("{}", Value::Array(list));
        } else {
            let width = EXPERIMENTS.iter().map(|e| e.name.len()).max().unwrap_or(0);
            for e in EXPERIMENTS {
                println!("{:<width$}  {}", e.name, e.description);
                println!("{:<width$}  source: {}", "", e.source);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(name) = &args.name else {
        return Err(format!("name an experiment, or --list (known: {})", known()));
    };
    let experiment = find(name)?;
    let outcome = (experiment.run)(&Options { quick: args.quick, seed: args.seed })?;

    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let csv_path = args.out.join(format!("{}.csv", experiment.name));
    let svg_path = args.out.join(format!("{}.svg", experiment.name));
    write(&csv_path, &outcome.csv.render())?;
    write(&svg_path, &outcome.chart.to_svg())?;

    if args.json {
        let mut obj = Map::new();
        obj.insert("experiment".into(), json!(experiment.name));
        obj.insert("description".into(), json!(experiment.description));
        obj.insert("source".into(), json!(experiment.source));
        obj.insert("quick".into(), json!(args.quick));
        obj.insert("seed".into(), json!(args.seed));
        obj.insert("ok".into(), json!(outcome.failures.is_empty()));
        obj.insert("failures".into(), json!(outcome.failures));
        obj.insert(
            "files".into(),
            json!({"csv": csv_path.display().to_string(), "svg": svg_path.display().to_string()}),
        );
        obj.extend(outcome.json);
        println!("{}", Value::Object(obj));
    } else {
        print!("{}", outcome.text);
        println!("\nwrote {} and {}", csv_path.display(), svg_path.display());
    }
    if outcome.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &outcome.failures {
            eprintln!("FAILED: {f}");
        }
        Ok(ExitCode::from(1))
    }
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for e in EXPERIMENTS {
            assert_eq!(EXPERIMENTS.iter().filter(|x| x.name == e.name).count(), 1);
            assert!(find(e.name).is_ok());
        }
        let err = find("nope").err().unwrap();
        assert!(err.contains("unknown experiment 'nope'") && err.contains("ezbft-latency"), "{err}");
    }

    fn judged(safety: &str, lin: &str, live: &str) -> Judged {
        Judged {
            safety: safety.into(),
            linearizability: lin.into(),
            liveness: live.into(),
            linearizability_ops: 7,
            detail: None,
        }
    }

    #[test]
    fn a_run_passes_only_when_every_check_was_judged_and_passed() {
        assert!(judged("ok", "linearizable", "ok").passed());
        for j in [
            judged("ok", "linearizable", "not judged"),
            judged("ok", "unknown", "ok"),
            judged("ok", "not_linearizable", "ok"),
            judged("FAILED", "linearizable", "ok"),
            judged("ok", "linearizable", "FAILED"),
        ] {
            assert!(!j.passed(), "{j:?}");
            assert!(j.summary().starts_with("FAILED ("), "{}", j.summary());
        }
        let (good, short) = (judged("ok", "linearizable", "ok"), judged("ok", "linearizable", "not judged"));
        let s = checks_section(&[("a".into(), &good), ("b".into(), &short)]);
        assert!(s.contains("checks: 1 of 2 runs FAILED or not judged"), "{s}");
        assert!(
            s.contains("  b: FAILED (safety ok, linearizability linearizable (7 ops), liveness not judged)"),
            "{s}"
        );
        assert!(!s.contains("passed\n"), "{s}");
        let s = checks_section(&[("a".into(), &good)]);
        assert!(s.contains("checks: all 1 runs judged and passed"), "{s}");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let c = Csv {
            header: vec!["a".into(), "b".into()],
            rows: vec![vec!["1,5".into(), "say \"hi\"".into()], vec!["x".into(), "".into()]],
        };
        assert_eq!(c.render(), "a,b\n\"1,5\",\"say \"\"hi\"\"\"\nx,\n");
    }

    #[test]
    fn columns_align() {
        let rows = vec![vec!["region".into(), "ms".into()], vec!["us-east-1".into(), "9.5".into()]];
        assert_eq!(columns(&rows, 1), "region      ms\nus-east-1  9.5\n");
    }
}

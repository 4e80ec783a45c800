//! Fault campaigns: many seeds, each with random faults within f, each checked.
//!
//! [`plan`] draws one seed's faults from that seed's own fault stream (so a
//! seed always gets the same faults, and `quorate sim --seed S
//! --campaign-faults` replays campaign run S exactly):
//!
//! - up to f faulty replicas (distinct, uniformly chosen), each either
//!   Byzantine with a random strategy from `P::STRATEGIES` (Byzantine model
//!   only) or crashed at a random time, half of the crashed ones recovering
//!   later (a crashed-and-recovered replica still counts toward f);
//! - with probability 0.3, a partition isolating 1..=f random replicas that heals;
//! - with probability 0.3, a GST with 1–5% extra loss before it;
//! - with probability 0.3, one faulty client with a random strategy from
//!   `faulty_client::strategies::<P>()` (the generic ones and the protocol's own).
//!
//! Every fault starts between 10% and 40% of the fault window and ends
//! (recovery, heal, GST) by 60% of it. The window ([`fault_window`]) is the
//! run, shortened so that stabilisation (the last change + settle) plus the
//! liveness bound for f faulty replicas ends by 90% of the run: every
//! campaign run judges liveness (decision 0012).

use crate::engine::{run, stream_seed, Scenario, SimError};
use crate::faults::Fault;
use crate::report::{CampaignReport, Report};
use quorate_core::{FaultModel, Protocol};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

/// The random faults of one campaign run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CampaignPlan {
    /// Faults to add to the scenario.
    pub faults: Vec<Fault>,
    /// Global stabilisation time, if the plan has a lossy period before it.
    pub gst: Option<Duration>,
    /// Extra loss probability before GST.
    pub pre_gst_loss: f64,
}

/// A uniformly random time in `[lo, hi]` fractions of `d`, rounded to ms.
fn time_in(rng: &mut ChaCha8Rng, d: Duration, lo: f64, hi: f64) -> Duration {
    let ms = d.as_secs_f64() * 1e3;
    let (a, b) = ((ms * lo).round() as u64, (ms * hi).round() as u64);
    Duration::from_millis(if b > a { rng.gen_range(a..=b) } else { a })
}

/// Draw the faults of campaign run `seed` for `n` replicas tolerating `f`
/// faults in `model`, over a run of `duration`.
pub fn plan(
    seed: u64,
    n: usize,
    f: usize,
    model: FaultModel,
    duration: Duration,
    strategies: &[(&str, &str)],
    client_strategies: &[(&str, &str)],
) -> CampaignPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, "campaign-faults", 0));
    let mut out = CampaignPlan::default();
    let budget = f.min(n);
    let k = if budget == 0 { 0 } else { rng.gen_range(0..=budget) };
    let mut replicas: Vec<u32> = (0..n as u32).collect();
    replicas.shuffle(&mut rng);
    for &r in &replicas[..k] {
        let byzantine = model == FaultModel::Byzantine && !strategies.is_empty() && rng.gen_bool(0.5);
        if byzantine {
            let (s, _) = strategies[rng.gen_range(0..strategies.len())];
            out.faults.push(Fault::Byzantine { replica: r, strategy: s.to_string() });
        } else {
            let at = time_in(&mut rng, duration, 0.1, 0.4);
            out.faults.push(Fault::Crash { replica: r, at });
            if rng.gen_bool(0.5) {
                let back = at + time_in(&mut rng, duration, 0.05, 0.2);
                out.faults.push(Fault::Recover { replica: r, at: back });
            }
        }
    }
    if budget > 0 && n > 1 && rng.gen_bool(0.3) {
        let size = rng.gen_range(1..=budget.min(n - 1));
        replicas.shuffle(&mut rng);
        let mut isolated: Vec<u32> = replicas[..size].to_vec();
        let mut rest: Vec<u32> = replicas[size..].to_vec();
        isolated.sort_unstable();
        rest.sort_unstable();
        let from = time_in(&mut rng, duration, 0.1, 0.4);
        let until = from + time_in(&mut rng, duration, 0.05, 0.2);
        out.faults.push(Fault::Partition { groups: vec![isolated, rest], from, until: Some(until) });
    }
    if rng.gen_bool(0.3) {
        out.gst = Some(time_in(&mut rng, duration, 0.1, 0.4));
        out.pre_gst_loss = (rng.gen_range(1..=5) as f64) / 100.0;
    }
    if !client_strategies.is_empty() && rng.gen_bool(0.3) {
        let (s, _) = client_strategies[rng.gen_range(0..client_strategies.len())];
        out.faults.push(Fault::FaultyClient { strategy: s.to_string() });
    }
    out
}

/// The span whose first 60% campaign faults may fill in runs of `sc`, so
/// that each run judges liveness: stabilisation (the last fault + settle)
/// plus the liveness bound for f faulty replicas must end by 90% of the run.
/// An error says how long the runs must be instead.
pub fn fault_window<P: Protocol>(sc: &Scenario<P>) -> Result<Duration, String> {
    let bound = sc.liveness_bound.unwrap_or_else(|| P::liveness_bound(&sc.config, sc.f));
    let judged_by = sc.duration.mul_f64(0.9);
    let room = judged_by.checked_sub(sc.settle + bound).filter(|r| *r >= sc.duration / 10).ok_or_else(|| {
        let need = (sc.settle + bound).mul_f64(1.0 / 0.8);
        format!(
            "campaign runs of {:.1}s cannot judge liveness: faults, settling ({:.1}s) and the liveness bound \
             for f = {} faulty replicas ({:.1}s) need runs of at least {:.0}s (--duration), or a shorter \
             --liveness-bound",
            sc.duration.as_secs_f64(),
            sc.settle.as_secs_f64(),
            sc.f,
            bound.as_secs_f64(),
            need.as_secs_f64().ceil()
        )
    })?;
    Ok(sc.duration.min(room.mul_f64(1.0 / 0.6)))
}

/// `base` with seed `seed` and that seed's campaign faults added (drawn in
/// the [`fault_window`]; the whole run if the window is an error, and then
/// the run reports liveness not judged).
pub fn campaign_scenario<P: Protocol>(base: &Scenario<P>, seed: u64) -> Scenario<P> {
    let mut sc = base.clone();
    sc.seed = seed;
    let window = fault_window(&sc).unwrap_or(sc.duration);
    let clients = quorate_core::faulty_client::strategies::<P>();
    let p = plan(seed, sc.n(), sc.f, sc.model, window, P::STRATEGIES, &clients);
    sc.faults.extend(p.faults);
    if let Some(gst) = p.gst {
        sc.net.gst_ns = sc.net.gst_ns.max(u64::try_from(gst.as_nanos()).unwrap_or(u64::MAX));
        sc.net.pre_gst_loss = sc.net.pre_gst_loss.max(p.pre_gst_loss);
    }
    sc
}

/// The outcome of one campaign run: its scenario and report (or why it could not run).
pub type RunOutcome<'a, P> = (&'a Scenario<P>, &'a Result<Report, SimError>);

/// Run `base` with campaign faults for each seed in `seeds`, calling
/// `on_run` after each run, and total the results. A run fails when it has a
/// safety violation or a non-linearizable history (counted in
/// `safety_violations`), fails liveness (`liveness_failures`), leaves a
/// check undecided (`linearizability_unknown`, `liveness_not_judged`:
/// [`Report::ok`]), or cannot be built; its seed goes to `failing_seeds`.
pub fn run_campaign<P: Protocol>(
    base: &Scenario<P>,
    seeds: impl IntoIterator<Item = u64>,
    mut on_run: impl FnMut(RunOutcome<'_, P>),
) -> CampaignReport {
    let started = Instant::now();
    let mut total = CampaignReport { protocol: P::NAME.to_string(), ..CampaignReport::default() };
    for seed in seeds {
        let sc = campaign_scenario(base, seed);
        let result = run(sc.clone());
        total.runs += 1;
        let failed = match &result {
            Ok(r) => {
                total.events += r.events;
                let unsafe_run = r.safety_violations > 0 || r.linearizability == "not_linearizable";
                if unsafe_run {
                    total.safety_violations += 1;
                }
                if !r.liveness_ok {
                    total.liveness_failures += 1;
                }
                if r.linearizability == "unknown" {
                    total.linearizability_unknown += 1;
                }
                if !r.liveness_judged {
                    total.liveness_not_judged += 1;
                }
                !r.ok()
            }
            Err(_) => true,
        };
        if failed {
            total.failing_seeds.push(seed);
        }
        on_run((&sc, &result));
    }
    total.wall_ms = started.elapsed().as_millis() as u64;
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRATS: &[(&str, &str)] = &[("silent", ""), ("equivocate", "")];
    const CSTRATS: &[(&str, &str)] = &[("bad-signature", "")];

    #[test]
    fn plans_are_deterministic_and_within_f() {
        let d = Duration::from_secs(20);
        for seed in 0..200 {
            let p = plan(seed, 7, 2, FaultModel::Byzantine, d, STRATS, CSTRATS);
            assert_eq!(p, plan(seed, 7, 2, FaultModel::Byzantine, d, STRATS, CSTRATS));
            let faulty: std::collections::BTreeSet<u32> = p.faults.iter().filter_map(Fault::faulty_replica).collect();
            assert!(faulty.len() <= 2);
            for f in &p.faults {
                if let Some(t) = f.last_change() {
                    assert!(t <= Duration::from_secs(12), "{f}");
                }
                if let Fault::Partition { groups, .. } = f {
                    assert!(!groups[0].is_empty() && groups[0].len() <= 2);
                    assert_eq!(groups[0].len() + groups[1].len(), 7);
                }
            }
            if let Some(g) = p.gst {
                assert!(g <= Duration::from_secs(8));
                assert!((0.01..=0.05).contains(&p.pre_gst_loss));
            }
            let cft = plan(seed, 5, 2, FaultModel::Crash, d, STRATS, CSTRATS);
            assert!(cft.faults.iter().all(|f| !matches!(f, Fault::Byzantine { .. })));
        }
        let kinds: Vec<bool> = (0..50)
            .map(|s| {
                plan(s, 4, 1, FaultModel::Byzantine, d, STRATS, &[])
                    .faults
                    .iter()
                    .any(|f| matches!(f, Fault::Byzantine { .. }))
            })
            .collect();
        assert!(kinds.iter().any(|b| *b) && kinds.iter().any(|b| !*b));
        assert!(plan(1, 4, 0, FaultModel::Byzantine, d, STRATS, &[]).faults.is_empty());
    }
}

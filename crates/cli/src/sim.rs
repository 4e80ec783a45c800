//! `quorate sim`: flags, the protocol registry, single runs and campaigns.

use crate::protocols::{with_protocol, WithProtocol};
use clap::{Args, ValueEnum};
use quorate_core::settings::GenericSettings;
use quorate_core::{FaultModel, Protocol};
use quorate_sim::cpu::CostModel;
use quorate_sim::net::Placement;
use quorate_sim::{campaign_scenario, fault_window, parse_duration, run, run_campaign, workload, Fault, Scenario};
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Run the protocol named by `--protocol`.
fn dispatch(args: &SimArgs) -> Result<ExitCode, String> {
    struct Sim<'a>(&'a SimArgs);
    impl WithProtocol for Sim<'_> {
        type Output = Result<ExitCode, String>;
        fn run<P: CliProtocol>(self) -> Self::Output {
            run_protocol::<P>(self.0)
        }
    }
    with_protocol(&args.protocol, Sim(args))?
}

/// A protocol the CLI can run: any [`Protocol`] (each maps the generic
/// flags onto its own settings, [`Protocol::apply_settings`]).
pub trait CliProtocol: Protocol {}

impl<P: Protocol> CliProtocol for P {}

/// The generic protocol flags, checked once for every protocol.
impl SimArgs {
    /// `--timeout`, if given (positive).
    pub fn timeout(&self) -> Result<Option<Duration>, String> {
        match self.timeout {
            Some(t) if t.is_zero() => Err("--timeout must be positive".into()),
            t => Ok(t),
        }
    }

    /// `--client-retransmit`, if given (positive).
    pub fn client_retransmit(&self) -> Result<Option<Duration>, String> {
        match self.client_retransmit {
            Some(t) if t.is_zero() => Err("--client-retransmit must be positive".into()),
            t => Ok(t),
        }
    }

    /// `--batch`, if given (at least 1).
    pub fn batch(&self) -> Result<Option<usize>, String> {
        match self.batch {
            Some(0) => Err("--batch must be at least 1".into()),
            b => Ok(b),
        }
    }

    /// `--checkpoint-period`, if given (at least 1).
    pub fn checkpoint_period(&self) -> Result<Option<u64>, String> {
        match self.checkpoint_period {
            Some(0) => Err("--checkpoint-period must be at least 1".into()),
            p => Ok(p),
        }
    }

    /// The generic protocol flags, checked, for [`Protocol::apply_settings`].
    pub fn generic_settings(&self) -> Result<GenericSettings, String> {
        let settings = GenericSettings {
            timeout: self.timeout()?,
            client_retransmit: self.client_retransmit()?,
            max_batch: self.batch()?,
            checkpoint_period: self.checkpoint_period()?,
            round_robin: self.round_robin,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// Fault model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Byzantine faults (n = 3f+1 for Mod-SMaRt).
    Bft,
    /// Crash faults (n = 2f+1 for Mod-SMaRt).
    Cft,
}

/// Workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Key-value store: puts, gets, deletes, compare-and-swap.
    Kv,
    /// Key-value store, puts only (each client on its own keys; --keys-per-client).
    KvPuts,
    /// A shared counter: add(1) and get.
    Counter,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not in [0, 1]"))
    }
}

fn weight_arg(s: &str) -> Result<(String, u32), String> {
    let (region, w) = s.split_once('=').ok_or_else(|| format!("'{s}' is not REGION=W"))?;
    let w: u32 = w.trim().parse().map_err(|_| format!("'{w}' is not a whole number"))?;
    if w > 1000 {
        return Err(format!("weight {w} is above 1000"));
    }
    Ok((region.trim().to_string(), w))
}

/// Replicas `a..b` named by a `--client-weight` key, if it is a range.
fn replica_range(key: &str) -> Option<(usize, usize)> {
    let (a, b) = key.split_once("..")?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// One weight per replica from `--client-weight` (regions or replica ranges).
fn client_weights(given: &[(String, u32)], regions: &[String], n: usize) -> Result<Vec<u32>, String> {
    let mut w = vec![1; n];
    for (key, weight) in given {
        if let Some((a, b)) = replica_range(key) {
            if a >= b || b > n {
                return Err(format!("--client-weight {key}=...: not a range of replicas within 0..{n}"));
            }
            w[a..b].iter_mut().for_each(|x| *x = *weight);
        } else {
            if !regions.contains(key) {
                return Err(format!("--client-weight {key}=...: no replica is in region {key}"));
            }
            for (x, r) in w.iter_mut().zip(regions) {
                if r == key {
                    *x = *weight;
                }
            }
        }
    }
    Ok(w)
}

fn crash_arg(s: &str) -> Result<Fault, String> {
    Fault::parse_crash(s).map_err(|e| e.to_string())
}
fn recover_arg(s: &str) -> Result<Fault, String> {
    Fault::parse_recover(s).map_err(|e| e.to_string())
}
fn byzantine_arg(s: &str) -> Result<Fault, String> {
    Fault::parse_byzantine(s).map_err(|e| e.to_string())
}
fn partition_arg(s: &str) -> Result<Fault, String> {
    Fault::parse_partition(s).map_err(|e| e.to_string())
}

/// Flags of `quorate sim`.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Protocol to run.
    #[arg(long, default_value = "mod-smart")]
    pub protocol: String,
    /// Fault model.
    #[arg(long, value_enum, default_value = "bft")]
    pub mode: Mode,
    /// Faults tolerated.
    #[arg(long, default_value_t = 1)]
    pub f: usize,
    /// Replicas (default: what the protocol needs for f).
    #[arg(long)]
    pub n: Option<usize>,
    /// Correct clients (closed loop, no think time).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Virtual duration of the run (e.g. 10s, 500ms, 2m).
    #[arg(long, default_value = "20s", value_parser = duration_arg)]
    pub duration: Duration,
    /// Leave operations invoked before this out of the latency and
    /// throughput figures (e.g. 5s); the safety checks still cover them, and
    /// liveness is judged from its end.
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    pub warmup: Duration,
    /// With --json: list every completed operation (client, region, time, latency).
    #[arg(long)]
    pub timeline: bool,
    /// Run seed (first seed of a campaign).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Region of each replica, comma-separated, from the AWS or Azure WAN
    /// matrix (e.g. us-east-1,eu-west-1,ap-south-1,sa-east-1). Clients are
    /// placed round-robin in the same regions. Default: one LAN.
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Spread the replicas over these regions: replica i in the (i mod k)-th
    /// (instead of --regions, which names one region per replica).
    #[arg(long, value_delimiter = ',', conflicts_with = "regions")]
    pub spread_regions: Vec<String>,
    /// Relative number of clients at the replicas of a region, or at replicas
    /// A to B-1: REGION=W or A..B=W (repeatable, later ones win; default 1).
    /// With southeastasia=1 and every other region 2, replicas outside
    /// southeastasia get twice the clients; 90..97=0 puts none at replicas 90-96.
    #[arg(long, value_name = "REGION=W", value_parser = weight_arg)]
    pub client_weight: Vec<(String, u32)>,
    /// Vote weight of each replica, comma-separated (WHEAT; e.g. 2,2,1,1,1).
    /// Quorums then count votes: ⌈(N_v+F_v+1)/2⌉ Byzantine, ⌈(N_v+1)/2⌉
    /// crash, F_v = f·V_max. Default: one vote each.
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<u32>,
    /// Workload.
    #[arg(long, value_enum, default_value = "kv")]
    pub workload: Workload,
    /// Value size in bytes for KV writes.
    #[arg(long, default_value_t = 16)]
    pub payload: usize,
    /// Keys of each client (kv-puts workload).
    #[arg(long, default_value_t = 8)]
    pub keys_per_client: usize,
    /// Share of KV operations on the one shared hot key (0..1). Above 0 so
    /// that clients meet on a key and the linearizability check can see a
    /// split brain; 0 gives each key one client.
    #[arg(long, default_value_t = quorate_sim::DEFAULT_CONTENTION, value_parser = probability)]
    pub contention: f64,
    /// Send gets as read-only operations.
    #[arg(long)]
    pub read_only_gets: bool,
    /// Crash replica R at virtual time T: R@T, e.g. 0@2s (repeatable).
    #[arg(long, value_name = "R@T", value_parser = crash_arg)]
    pub crash: Vec<Fault>,
    /// Restart replica R from its durable state at T: R@T (repeatable).
    #[arg(long, value_name = "R@T", value_parser = recover_arg)]
    pub recover: Vec<Fault>,
    /// Make replica R Byzantine with STRATEGY: R:STRATEGY (repeatable; see --list-faults).
    #[arg(long, value_name = "R:STRATEGY", value_parser = byzantine_arg)]
    pub byzantine: Vec<Fault>,
    /// Add a faulty client running STRATEGY (repeatable; see --list-faults).
    #[arg(long, value_name = "STRATEGY")]
    pub faulty_client: Vec<String>,
    /// Partition replicas into groups from T1 until T2: 0,1|2,3@T1..T2 (repeatable).
    #[arg(long, value_name = "GROUPS@T1..T2", value_parser = partition_arg)]
    pub partition: Vec<Fault>,
    /// Probability that any message is lost.
    #[arg(long, default_value = "0", value_parser = probability)]
    pub loss: f64,
    /// Probability that a message is delivered twice.
    #[arg(long, default_value = "0", value_parser = probability)]
    pub duplicate: f64,
    /// Probability that a message is delayed by up to 10 ms extra (reordering).
    #[arg(long, default_value = "0", value_parser = probability)]
    pub reorder: f64,
    /// Global stabilisation time: before it, --pre-gst-loss and --pre-gst-delay apply.
    #[arg(long, value_parser = duration_arg)]
    pub gst: Option<Duration>,
    /// Extra loss probability before GST.
    #[arg(long, default_value = "0", value_parser = probability)]
    pub pre_gst_loss: f64,
    /// Extra delay, uniform up to this, before GST.
    #[arg(long, default_value = "0", value_parser = duration_arg)]
    pub pre_gst_delay: Duration,
    /// Egress bandwidth per node in Mbit/s (0: unlimited).
    #[arg(long, default_value_t = 1000)]
    pub bandwidth_mbps: u64,
    /// One-way latency between nodes on the LAN.
    #[arg(long, default_value = "100us", value_parser = duration_arg)]
    pub lan_latency: Duration,
    /// Do not model CPU time (crypto, decoding and execution are free).
    #[arg(long)]
    pub no_cpu: bool,
    /// Cores of each replica: its inputs' work overlaps on them (clients have one).
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// Protocol request timeout (Mod-SMaRt and PBFT: request_timeout).
    #[arg(long, value_parser = duration_arg)]
    pub timeout: Option<Duration>,
    /// How long a client waits for an answer before it retransmits (every
    /// protocol's client_retransmit; each has its own default).
    #[arg(long, value_parser = duration_arg)]
    pub client_retransmit: Option<Duration>,
    /// Largest batch (Mod-SMaRt and PBFT: max_batch).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Checkpoint period: instances (Mod-SMaRt: checkpoint_period), sequence
    /// numbers (PBFT: checkpoint_period), or commands each replica orders
    /// between barriers (EZBFT: checkpoint_interval).
    #[arg(long)]
    pub checkpoint_period: Option<u64>,
    /// DQPBFT and Destiny: execute D-slots in a fixed round-robin order
    /// (slot s of instance 0, 1, ..., then s+1), as RCC and MirBFT do,
    /// instead of the O-primary's order (`round_robin`).
    #[arg(long)]
    pub round_robin: bool,
    /// Liveness bound: after stabilisation every operation must complete within
    /// this. Default: the protocol's own, from its timeouts and the replicas
    /// the run leaves faulty (the report prints it; decision 0012).
    #[arg(long, value_parser = duration_arg)]
    pub liveness_bound: Option<Duration>,
    /// Stabilisation is this long after the last crash, recovery or heal.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub settle: Duration,
    /// Search budget of the linearizability checker, per key: how many dead
    /// ends (backtracks) it explores before it gives up (unknown fails the run).
    #[arg(long, default_value_t = 1_000_000)]
    pub lin_budget: u64,
    /// Run a campaign: --seeds runs, each with random faults within f.
    #[arg(long)]
    pub campaign: bool,
    /// Number of campaign runs (seeds --seed, --seed+1, ...).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// Add the random faults that a campaign draws for --seed (replays one campaign run).
    #[arg(long)]
    pub campaign_faults: bool,
    /// List the protocol's Byzantine strategies and the fault flags, then exit.
    #[arg(long)]
    pub list_faults: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Entry point of `quorate sim`.
pub fn main(args: &SimArgs) -> Result<ExitCode, String> {
    dispatch(args)
}

/// Flags of `quorate sim` parsed from `argv` (without the program and
/// subcommand names), defaults for the rest: how `quorate eval` builds its
/// runs, so that each is exactly what `quorate sim` with the same flags runs.
pub fn parse_sim_args(argv: &[String]) -> Result<SimArgs, String> {
    #[derive(clap::Parser)]
    struct Sim {
        #[command(flatten)]
        args: SimArgs,
    }
    let argv = std::iter::once("quorate-sim").chain(argv.iter().map(String::as_str));
    <Sim as clap::Parser>::try_parse_from(argv).map(|s| s.args).map_err(|e| e.to_string())
}

/// The scenario the flags describe, checked.
pub fn scenario<P: CliProtocol>(args: &SimArgs) -> Result<Scenario<P>, String> {
    let model = match args.mode {
        Mode::Bft => FaultModel::Byzantine,
        Mode::Cft => FaultModel::Crash,
    };
    let mut sc = Scenario::<P>::new(args.f);
    sc.config = P::apply_settings(&args.generic_settings()?)?;
    sc.model = model;
    sc.n = args.n;
    sc.clients = args.clients;
    sc.duration = args.duration;
    sc.warmup = args.warmup;
    sc.timeline = args.timeline;
    sc.seed = args.seed;
    sc.replica_cores = args.cores;
    sc.vote_weights = args.weights.clone();
    for r in &args.regions {
        Placement::region(r).map_err(|e| format!("--regions: {e}"))?;
    }
    for r in &args.spread_regions {
        Placement::region(r).map_err(|e| format!("--spread-regions: {e}"))?;
    }
    sc.regions = if args.spread_regions.is_empty() {
        args.regions.clone()
    } else {
        let k = args.spread_regions.len();
        (0..sc.n()).map(|i| args.spread_regions[i % k].clone()).collect()
    };
    if !args.client_weight.is_empty() {
        sc.client_weights = client_weights(&args.client_weight, &sc.regions, sc.n())?;
    }
    sc.workload = match args.workload {
        Workload::Kv => std::sync::Arc::new(workload::Kv {
            payload: args.payload,
            contention: args.contention,
            read_only_gets: args.read_only_gets,
        }),
        Workload::KvPuts => {
            std::sync::Arc::new(workload::KvPuts { payload: args.payload, keys_per_client: args.keys_per_client })
        }
        Workload::Counter => std::sync::Arc::new(workload::Counter { read_only_gets: args.read_only_gets }),
    };
    sc.faults.extend(args.byzantine.iter().cloned());
    sc.faults.extend(args.crash.iter().cloned());
    sc.faults.extend(args.recover.iter().cloned());
    sc.faults.extend(args.partition.iter().cloned());
    sc.faults.extend(args.faulty_client.iter().map(|s| Fault::FaultyClient { strategy: s.clone() }));
    sc.net.loss = args.loss;
    sc.net.duplicate = args.duplicate;
    sc.net.reorder = args.reorder;
    sc.net.reorder_max_ns = 10_000_000;
    sc.net.bandwidth_bps =
        if args.bandwidth_mbps == 0 { None } else { Some(args.bandwidth_mbps.saturating_mul(1_000_000)) };
    sc.net.lan_one_way_ns = u64::try_from(args.lan_latency.as_nanos()).map_err(|_| "--lan-latency is too large")?;
    if let Some(gst) = args.gst {
        sc.net.gst_ns = u64::try_from(gst.as_nanos()).map_err(|_| "--gst is too large")?;
        sc.net.pre_gst_loss = args.pre_gst_loss;
        sc.net.pre_gst_extra_delay_ns =
            u64::try_from(args.pre_gst_delay.as_nanos()).map_err(|_| "--pre-gst-delay is too large")?;
    } else if args.pre_gst_loss > 0.0 || !args.pre_gst_delay.is_zero() {
        return Err("--pre-gst-loss and --pre-gst-delay need --gst".into());
    }
    if args.no_cpu {
        sc.cost_model = Arc::new(CostModel::zero());
    }
    sc.liveness_bound = args.liveness_bound;
    sc.settle = args.settle;
    sc.linearizability_budget = args.lin_budget;
    // Strategy names and replica ids are checked here for a clear message
    // (errors), and the f budget (a warning).
    sc.validate().map_err(|e| e.to_string())?;
    Ok(sc)
}

fn run_protocol<P: CliProtocol>(args: &SimArgs) -> Result<ExitCode, String> {
    if args.list_faults {
        print!("{}", list_faults::<P>());
        return Ok(ExitCode::SUCCESS);
    }
    if args.campaign && args.campaign_faults {
        return Err(
            "--campaign and --campaign-faults exclude each other (--campaign-faults replays one campaign run)".into()
        );
    }
    let base = scenario::<P>(args)?;
    if args.campaign {
        fault_window(&base)?;
        return Ok(campaign(args, &base));
    }
    let sc = if args.campaign_faults { campaign_scenario(&base, args.seed) } else { base };
    let report = run(sc).map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", report.summary());
        if !report.liveness_judged {
            eprintln!("{}", liveness_note(report.stabilisation_s, report.liveness_bound_s, report.duration_s));
        }
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        let cmd = replay_command(args.seed, args.campaign_faults);
        if args.json {
            eprintln!("FAILED: seed {}; replay: {cmd}", args.seed);
        } else {
            println!("FAILED: seed {}; replay: {cmd}", args.seed);
        }
        Ok(ExitCode::from(1))
    }
}

/// The campaign's JSON object.
#[derive(Serialize)]
struct CampaignJson {
    protocol: String,
    n: usize,
    f: usize,
    first_seed: u64,
    runs: u64,
    safety_violations: u64,
    liveness_failures: u64,
    failing_seeds: Vec<u64>,
    linearizability_unknown: u64,
    liveness_not_judged: u64,
    replay: Vec<String>,
    events: u64,
    wall_ms: u64,
}

fn campaign<P: CliProtocol>(args: &SimArgs, base: &Scenario<P>) -> ExitCode {
    let first = args.seed;
    let last = first.saturating_add(args.seeds);
    let json = args.json;
    let total = run_campaign(base, first..last, |(sc, result)| {
        if json {
            return;
        }
        match result {
            Ok(r) => {
                let faults: Vec<String> = sc.faults.iter().map(|f| f.to_string()).collect();
                let gst = if sc.net.gst_ns > 0 {
                    format!("; gst {:.3}s loss {:.0}%", sc.net.gst_ns as f64 / 1e9, sc.net.pre_gst_loss * 100.0)
                } else {
                    String::new()
                };
                println!(
                    "seed {}: {} completed {} safety {} lin {} liveness {} | {}{gst}",
                    sc.seed,
                    if r.ok() { "ok  " } else { "FAIL" },
                    r.completed,
                    r.safety_violations,
                    r.linearizability,
                    r.liveness_verdict(),
                    if faults.is_empty() { "no faults".to_string() } else { faults.join(", ") }
                );
                if !r.ok() {
                    for d in [&r.first_violation, &r.linearizability_detail, &r.liveness_detail].into_iter().flatten() {
                        println!("    {d}");
                    }
                }
            }
            Err(e) => println!("seed {}: ERROR {e}", sc.seed),
        }
    });
    let replay: Vec<String> = total.failing_seeds.iter().map(|s| replay_command(*s, true)).collect();
    if json {
        let out = CampaignJson {
            protocol: total.protocol.clone(),
            n: base.n(),
            f: base.f,
            first_seed: first,
            runs: total.runs,
            safety_violations: total.safety_violations,
            liveness_failures: total.liveness_failures,
            failing_seeds: total.failing_seeds.clone(),
            linearizability_unknown: total.linearizability_unknown,
            liveness_not_judged: total.liveness_not_judged,
            replay: replay.clone(),
            events: total.events,
            wall_ms: total.wall_ms,
        };
        match serde_json::to_string(&out) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        println!(
            "campaign: runs {} safety_violations {} liveness_failures {} liveness_not_judged {} \
             linearizability_unknown {} (undecided counts as failed) failing_seeds {:?} ({} events in {} ms)",
            total.runs,
            total.safety_violations,
            total.liveness_failures,
            total.liveness_not_judged,
            total.linearizability_unknown,
            total.failing_seeds,
            total.events,
            total.wall_ms
        );
        for cmd in &replay {
            println!("replay: {cmd}");
        }
    }
    if total.failing_seeds.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn liveness_note(stable_s: f64, bound_s: f64, duration_s: f64) -> String {
    format!(
        "liveness not judged: the run ({duration_s:.1}s) ends before stabilisation ({stable_s:.1}s) + liveness \
         bound ({bound_s:.1}s), and that fails the run; use a longer --duration (or a shorter --liveness-bound)"
    )
}

/// The command line that replays one run: this invocation's flags without
/// the campaign and output flags, with `--seed S` (and `--campaign-faults`
/// for a campaign run).
fn replay_command(seed: u64, campaign_faults: bool) -> String {
    let argv: Vec<String> = std::env::args().collect();
    replay_from_argv(&argv, seed, campaign_faults)
}

fn replay_from_argv(argv: &[String], seed: u64, campaign_faults: bool) -> String {
    const DROP_WITH_VALUE: &[&str] = &["--seed", "--seeds"];
    const DROP: &[&str] = &["--campaign", "--campaign-faults", "--json"];
    let mut out = vec!["quorate".to_string()];
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        let name = a.split('=').next().unwrap_or(a);
        if DROP_WITH_VALUE.contains(&name) {
            i += if a.contains('=') { 1 } else { 2 };
            continue;
        }
        if DROP.contains(&a.as_str()) {
            i += 1;
            continue;
        }
        out.push(shell_quote(a));
        i += 1;
    }
    out.push(format!("--seed {seed}"));
    if campaign_faults {
        out.push("--campaign-faults".into());
    }
    out.join(" ")
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@,=+%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn list_faults<P: Protocol>() -> String {
    let mut s = format!("Byzantine replica strategies of {} (--byzantine R:STRATEGY):\n", P::NAME);
    if P::STRATEGIES.is_empty() {
        s.push_str("  (none)\n");
    }
    for (name, what) in P::STRATEGIES {
        s.push_str(&format!("  {name:<24} {what}\n"));
    }
    s.push_str(&format!("Faulty client strategies of {} (--faulty-client STRATEGY):\n", P::NAME));
    // Never empty: the generic strategies are every protocol's.
    for (name, what) in quorate_core::faulty_client::strategies::<P>() {
        s.push_str(&format!("  {name:<24} {what}\n"));
    }
    s.push_str(
        "Generic faults:\n  \
         --crash R@T                  replica R crashes at virtual time T (e.g. 0@2s)\n  \
         --recover R@T                replica R restarts from its durable state at T\n  \
         --partition 0,1|2,3@T1..T2   replicas in different groups cannot talk from T1 until T2\n  \
         --loss P                     every message is lost with probability P\n  \
         --duplicate P                every message is delivered twice with probability P\n  \
         --reorder P                  every message is delayed up to 10 ms extra with probability P\n  \
         --gst T --pre-gst-loss P --pre-gst-delay D   an unstable network until T\n  \
         --campaign --seeds N         N runs with random faults within f, each checked\n  \
         --campaign-faults            with --seed S: replay campaign run S\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn replay_drops_campaign_flags_and_sets_seed() {
        let a =
            argv("quorate sim --f 1 --campaign --seeds 20 --seed=3 --json --partition 0,1|2,3@1s..2s --duration 5s");
        assert_eq!(
            replay_from_argv(&a, 7, true),
            "quorate sim --f 1 --partition '0,1|2,3@1s..2s' --duration 5s --seed 7 --campaign-faults"
        );
        let a = argv("quorate sim --seed 9 --crash 0@2s");
        assert_eq!(replay_from_argv(&a, 9, false), "quorate sim --crash 0@2s --seed 9");
    }

    #[test]
    fn client_weights_by_region_and_range() {
        let regions: Vec<String> = ["a", "b", "a", "c"].iter().map(|s| s.to_string()).collect();
        let w = |given: &[(&str, u32)]| {
            let g: Vec<(String, u32)> = given.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            client_weights(&g, &regions, 4)
        };
        assert_eq!(w(&[("a", 2)]).unwrap(), [2, 1, 2, 1]);
        assert_eq!(w(&[("a", 2), ("2..4", 0)]).unwrap(), [2, 1, 0, 0]);
        assert!(w(&[("z", 2)]).is_err());
        assert!(w(&[("3..9", 2)]).is_err());
        assert!(w(&[("2..2", 2)]).is_err());
    }

    #[test]
    fn spread_regions_fill_every_replica() {
        let a =
            parse_sim_args(&argv("--f 2 --spread-regions eastus,westus,uksouth --client-weight uksouth=0")).unwrap();
        let sc = scenario::<quorate_pbft::Pbft>(&a).unwrap();
        assert_eq!(sc.regions.len(), 7);
        assert_eq!(sc.regions[3], "eastus");
        assert_eq!(sc.regions[5], "uksouth");
        assert_eq!(sc.client_weights, [1, 1, 0, 1, 1, 0, 1]);
        assert!(parse_sim_args(&argv("--regions eastus --spread-regions westus")).is_err());
    }

    #[test]
    fn flags_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: SimArgs,
        }
        let t = T::try_parse_from([
            "t",
            "--crash",
            "0@2s",
            "--crash",
            "1@3s",
            "--byzantine",
            "2:silent",
            "--partition",
            "0,1|2,3@1s..2s",
            "--regions",
            "us-east-1,eu-west-1",
            "--duration",
            "500ms",
        ])
        .unwrap();
        assert_eq!(t.a.crash.len(), 2);
        assert_eq!(t.a.duration, Duration::from_millis(500));
        assert_eq!(t.a.regions, vec!["us-east-1", "eu-west-1"]);
        for bad in [
            vec!["t", "--crash", "x"],
            vec!["t", "--duration", "10"],
            vec!["t", "--loss", "2"],
            vec!["t", "--byzantine", "1"],
            vec!["t", "--mode", "xft"],
        ] {
            assert!(T::try_parse_from(bad).is_err());
        }
    }
}

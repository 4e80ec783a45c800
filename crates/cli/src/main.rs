//! The `quorate` command-line tool.
//!
//! `quorate keygen | replica | client | cluster | bench` run the real runtime
//! (see `runtime` and `bench`). `quorate sim` runs one deterministic simulation (or a campaign of many
//! seeds with random faults) of a protocol, checks it, and prints a summary or
//! one JSON object. The exit code is 0 when every run passed (no safety
//! violation, a linearizable or undecided history, liveness held), 1 when a
//! run failed, and 2 for bad flags. `quorate eval` runs a named experiment
//! (a source's evaluation, in the simulator) and shows our numbers beside the
//! source's (see `eval`), with the same exit codes.

mod bench;
mod eval;
mod protocols;
mod runtime;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// quorate: Byzantine fault-tolerant state machine replication.
#[derive(Parser, Debug)]
#[command(name = "quorate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a protocol in the deterministic simulator and check the run.
    Sim(Box<sim::SimArgs>),
    /// Run a named experiment from a source's evaluation and compare with its numbers (--list: all of them).
    Eval(eval::EvalArgs),
    /// Generate keys and a cluster file for replicas on 127.0.0.1.
    Keygen(runtime::KeygenArgs),
    /// Run one replica of a cluster.
    Replica(runtime::ReplicaArgs),
    /// Run one key-value operation against a cluster and print the result.
    Client(runtime::ClientArgs),
    /// Start a local cluster of replica processes (keys generated in a working directory).
    Cluster(runtime::ClusterArgs),
    /// Start a local cluster and measure throughput and latency with closed-loop clients.
    Bench(bench::BenchArgs),
}

fn report(r: Result<ExitCode, String>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => report(sim::main(&args)),
        Command::Eval(args) => report(eval::main(&args)),
        Command::Keygen(args) => report(runtime::keygen_main(&args)),
        Command::Replica(args) => report(runtime::replica_main(&args)),
        Command::Client(args) => report(runtime::client_main(&args)),
        Command::Cluster(args) => report(runtime::cluster_main(&args)),
        Command::Bench(args) => report(bench::bench_main(&args)),
    }
}

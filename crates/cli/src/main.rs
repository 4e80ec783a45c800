//! The `quorate` command-line tool.
//!
//! `quorate sim` runs one deterministic simulation (or a campaign of many
//! seeds with random faults) of a protocol, checks it, and prints a summary or
//! one JSON object. The exit code is 0 when every run passed (no safety
//! violation, a linearizable or undecided history, liveness held), 1 when a
//! run failed, and 2 for bad flags.

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => match sim::main(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

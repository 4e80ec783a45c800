//! Measures the engine's speed (simulated events per wall-clock second) with
//! the toy fixed-sequencer protocol of the tests.
//!
//! `cargo run --release -p quorate-sim --example toy_bench -- [f] [clients] [seconds]`

#[path = "../tests/toy/mod.rs"]
mod toy;

use quorate_sim::{run, Scenario};
use std::time::Duration;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let f = args.first().copied().unwrap_or(1) as usize;
    let clients = args.get(1).copied().unwrap_or(16) as usize;
    let secs = args.get(2).copied().unwrap_or(5);
    let sc = Scenario::<toy::Toy>::new(f).with_clients(clients).with_duration(Duration::from_secs(secs));
    match run(sc) {
        Ok(r) => print!("{}", r.summary()),
        Err(e) => eprintln!("error: {e}"),
    }
}

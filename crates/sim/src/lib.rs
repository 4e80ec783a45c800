//! quorate's deterministic simulator.
//!
//! Runs any [`quorate_core::Protocol`] over virtual time, seeded and
//! single-threaded, with a WAN/LAN network model ([`net`]), a CPU cost model
//! ([`cpu`]), crashes, recoveries, partitions, Byzantine replicas and faulty
//! clients ([`faults`]), a closed-loop client workload ([`workload`]), and
//! checkers on every run ([`check`], [`linearizability`]): agreement,
//! at-most-once execution, checkpoint and final state digests,
//! linearizability of the clients' history, and liveness after stabilisation.
//!
//! ```ignore
//! use quorate_sim::{Scenario, Fault, run};
//! let mut sc = Scenario::<MyProtocol>::new(1).with_seed(7).with_clients(8);
//! sc.faults.push(Fault::parse_crash("3@2s")?);
//! let report = run(sc)?;
//! assert!(report.ok(), "{}", report.summary());
//! ```
//!
//! [`campaign`] runs many seeds with random faults within f; [`testnet`] is
//! the protocol crates' machine-level test network (no virtual network, no
//! checkers: a queue the test delivers).

pub mod campaign;
pub mod check;
pub mod conformance;
pub mod cpu;
pub mod engine;
pub mod faults;
pub mod linearizability;
pub mod messages_table;
pub mod net;
mod queue;
pub mod report;
pub mod testnet;
pub mod workload;

pub use campaign::{campaign_scenario, fault_window, run_campaign, CampaignPlan};
pub use engine::{run, stream_seed, Scenario, SimError, Simulation};
pub use faults::{format_duration, parse_duration, Fault};
pub use report::{CampaignReport, Report};
pub use workload::{Workload, DEFAULT_CONTENTION};

//! DQPBFT: the DQBFT paradigm (Arun and Ravindran, *Scalable Byzantine
//! Fault Tolerance via Partial Decentralization*, VLDB 2022) over PBFT, as
//! sans-IO machines.
//!
//! Every replica runs N + 1 PBFT instances ([`quorate_pbft::engine`]) over one
//! network: N *D-instances*, one coordinated by each replica, that
//! disseminate batches of its clients' requests, and one *O-instance* whose
//! primary orders references to D-instance slots (never payloads). A command
//! executes when its D-slot is decided in its D-instance and the slot's
//! reference is decided in the O-instance, strictly in the O-instance's order.
//!
//! - [`replica`]: the replica (requests, dissemination, ordering, execution,
//!   checkpoints and state transfer, recovery).
//! - [`client`]: the client (f+1 matching replies).
//! - [`messages`]: the messages.
//! - [`byzantine`]: adversary strategies for the simulator.
//!
//! Decisions taken where the paper leaves room are in
//! `docs/decisions/0009-dqbft.md`.

#![warn(missing_docs)]

pub mod byzantine;
pub mod client;
pub mod config;
pub mod messages;
pub mod replica;

pub use config::Config;
pub use messages::Msg;

use quorate_core::machine::{ClientContext, ClientMachine, Protocol, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::membership::FaultModel;
use quorate_pbft::engine::EngineTimer;
use serde::{Deserialize, Serialize};

/// Timers of DQPBFT machines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Replica: a timer of D-instance `0`.
    D(u32, EngineTimer),
    /// Replica: a timer of the O-instance.
    O(EngineTimer),
    /// Replica: periodic check of request and payload timers.
    RequestTick,
    /// Replica: ask another replica for the state.
    StateTransfer,
    /// Client: send the outstanding request to every replica.
    ClientRetransmit,
    /// Adversary strategies' own timers.
    Adversary(u64),
}

/// The DQPBFT protocol.
pub struct Dqbft;

impl Protocol for Dqbft {
    const NAME: &'static str = "dqbft";
    type Message = Msg;
    type Timer = Timer;
    type Config = Config;

    /// 3f+1 in either model: every instance is PBFT.
    fn replicas_for(f: usize, _model: FaultModel) -> usize {
        3 * f + 1
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        config.validate()
    }

    fn replica(ctx: ReplicaContext, config: &Config) -> Box<dyn ReplicaMachine<Self>> {
        Box::new(replica::Replica::new(ctx, config.clone()))
    }

    fn client(ctx: ClientContext, config: &Config) -> Box<dyn ClientMachine<Self>> {
        Box::new(client::Client::new(ctx, config.clone()))
    }

    fn strategies() -> &'static [(&'static str, &'static str)] {
        byzantine::STRATEGIES
    }

    fn byzantine(
        strategy: &str,
        ctx: ReplicaContext,
        config: &Config,
    ) -> Result<Box<dyn ReplicaMachine<Self>>, UnknownStrategy> {
        byzantine::replica(strategy, ctx, config)
    }

    fn client_strategies() -> &'static [(&'static str, &'static str)] {
        byzantine::CLIENT_STRATEGIES
    }

    fn byzantine_client(
        strategy: &str,
        ctx: ClientContext,
        config: &Config,
    ) -> Result<Box<dyn ClientMachine<Self>>, UnknownStrategy> {
        byzantine::client(strategy, ctx, config)
    }
}

#[cfg(test)]
mod tests;

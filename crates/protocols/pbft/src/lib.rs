//! PBFT (M. Castro and B. Liskov, *Practical Byzantine Fault Tolerance*,
//! OSDI'99, and *Practical Byzantine Fault Tolerance and Proactive
//! Recovery*, TOCS 2002) in its MAC form, as sans-IO machines.
//!
//! - The consensus instance itself (PRE-PREPARE / PREPARE / COMMIT with
//!   2f+1 quorums, watermarks, MAC authenticators, checkpoints, view change,
//!   retransmission, catching up) is [`quorate_engines::pbft`], shared with
//!   DQPBFT (decision 0017); this crate runs one of it.
//! - [`replica`]: the standalone protocol's replica: one engine ordering
//!   batches of signed client requests, the executor, the request table.
//! - [`client`]: its client.
//! - [`messages`]: the standalone protocol's messages.
//! - [`byzantine`]: adversary strategies for the simulator.
//!
//! Decisions taken where the papers leave room are in
//! `docs/decisions/0007-pbft.md`.
//!
//! # MESSAGES
//!
//! Every message kind a PBFT machine reports ([`Msg`]; the consensus
//! instance's kinds are those of [`quorate_engines::pbft::PbftMsg`], handled
//! by the engine: files outside this crate are given relative to it). PBFT's
//! papers are not among the project's seed sources: sections are those of
//! Castro and Liskov's OSDI'99 paper (TOCS 2002 where OSDI'99 has no MAC
//! form), and messages neither paper names cite decision 0007.
//!
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `REQUEST` | client → primary (→ all when it retransmits) | `on_request` | `src/replica/requests.rs` | OSDI'99 §4.1 (the client) |
//! | `REPLY` | replica → client | `on_reply` | `src/client.rs` | OSDI'99 §4.1 (f+1 matching replies) |
//! | `FORWARD` | backup → primary | `on_forward` | `src/replica/requests.rs` | OSDI'99 §4.1 (a backup relays a retransmitted request to the primary); decision 0007 (Timers and the client) |
//! | `PRE-PREPARE` | primary → backups | `on_pre_prepare` | `../../engines/src/pbft/normal.rs` | OSDI'99 §4.2 (pre-prepare phase) |
//! | `PREPARE` | backup → all | `on_prepare` | `../../engines/src/pbft/normal.rs` | OSDI'99 §4.2 (prepare phase) |
//! | `COMMIT` | any → all | `on_commit` | `../../engines/src/pbft/normal.rs` | OSDI'99 §4.2 (commit phase) |
//! | `CHECKPOINT` | any → all | `on_checkpoint` | `../../engines/src/pbft/checkpoint.rs` | OSDI'99 §4.3 (garbage collection) |
//! | `VIEW-CHANGE` | any → all | `on_view_change` | `../../engines/src/pbft/view_change.rs` | OSDI'99 §4.4; claims: TOCS 2002 (decision 0007, View change) |
//! | `NEW-VIEW` | new primary → all (any → one that missed it) | `on_new_view` | `../../engines/src/pbft/view_change.rs` | OSDI'99 §4.4; decision procedure: TOCS 2002 (decision 0007) |
//! | `STATUS` | any → all, when stalled | `on_status` | `../../engines/src/pbft/checkpoint.rs` | not in OSDI'99: TOCS 2002 status messages (decision 0007, Retransmission) |
//! | `DECIDED` | any → a replica that decided less | `on_decided` | `../../engines/src/pbft/checkpoint.rs` | neither paper: decision 0007 (Answering STATUS, Trusting DECIDED) |
//! | `FETCH` | any → one holder | `on_fetch` | `../../engines/src/pbft/normal.rs` | neither paper (replaces TOCS's A3): decision 0007 (View change) |
//! | `VALUE` | holder → asker | `on_value` | `../../engines/src/pbft/normal.rs` | neither paper: decision 0007 (View change) |
//! | `STATE-REQUEST` | replica behind → one replica at a time | `on_state_request` | `src/replica/execute.rs` | state transfer: TOCS 2002; how: decision 0007 (Fetching it) |
//! | `STATE-REPLY` | replica → asker | `on_state_reply` | `src/replica/execute.rs` | TOCS 2002 state transfer; decision 0007 (Fetching it) |

#![warn(missing_docs)]

pub mod byzantine;
pub mod client;
pub mod config;
pub mod messages;
pub mod replica;

pub use config::Config;
pub use messages::Msg;

use quorate_engines::pbft as engine;

use quorate_core::machine::{ClientContext, ClientMachine, Protocol, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::membership::FaultModel;
use quorate_core::quorum::{ConfigError, QuorumSystem, Role};
use quorate_core::settings::{set, GenericSettings};
use serde::{Deserialize, Serialize};

/// Timers of PBFT machines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Replica: a timer of the consensus instance.
    Engine(engine::EngineTimer),
    /// Replica: periodic check of the request timers.
    RequestTick,
    /// Replica: ask another replica for the state.
    StateTransfer,
    /// Client: send the outstanding request to every replica.
    ClientRetransmit,
    /// Adversary strategies' own timers.
    Adversary(u64),
}

/// The PBFT protocol.
pub struct Pbft;

impl Protocol for Pbft {
    const NAME: &'static str = "pbft";
    type Keys = ();
    type Message = Msg;
    type Timer = Timer;
    type Config = Config;

    /// 3f+1 in either model: PBFT is a Byzantine protocol (its quorums are
    /// computed for Byzantine faults whatever the model says).
    fn replicas_for(f: usize, _model: FaultModel) -> usize {
        3 * f + 1
    }

    /// The engine's quorums ([`quorate_engines::pbft::quorum_system`]); clients take f+1 matching replies.
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        Ok(engine::quorum_system(Self::NAME, n, f, model)?.with("reply", f + 1, Role::Witness))
    }

    /// A pending request waits for the client to send it to everyone
    /// (`client_retransmit`), then for a backup's request timer and a view
    /// change (`request_timeout` + `view_change_timeout`): one such round
    /// per faulty replica that becomes primary, and one more for a view
    /// change already under way at stabilisation (decision 0012).
    fn liveness_bound(config: &Config, faulty: usize) -> std::time::Duration {
        use quorate_core::machine::recovery_rounds as rounds;
        let round = config.request_timeout.saturating_add(config.view_change_timeout);
        config.client_retransmit.saturating_add(round.saturating_mul(rounds(faulty)))
    }

    /// The timeout is the backups' request timer: how long a request may
    /// wait before they suspect the primary. No round robin.
    fn apply_settings(s: &GenericSettings) -> Result<Config, String> {
        if s.round_robin {
            return Err("--round-robin is a DQBFT option (dqbft, destiny)".into());
        }
        let mut c = Config::default();
        set(&mut c.request_timeout, s.timeout);
        set(&mut c.client_retransmit, s.client_retransmit);
        set(&mut c.max_batch, s.max_batch);
        set(&mut c.checkpoint_period, s.checkpoint_period);
        Ok(c)
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

    const STRATEGIES: &'static [(&'static str, &'static str)] = byzantine::STRATEGIES;

    fn byzantine(
        strategy: &str,
        ctx: ReplicaContext,
        config: &Config,
    ) -> Result<Box<dyn ReplicaMachine<Self>>, UnknownStrategy> {
        byzantine::replica(strategy, ctx, config)
    }
}

#[cfg(test)]
mod beyond_f_tests;
#[cfg(test)]
mod tests;

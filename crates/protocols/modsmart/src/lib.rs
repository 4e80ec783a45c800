//! Mod-SMaRt, the ordering protocol of BFT-SMaRt (J. Sousa, *Byzantine State
//! Machine Replication for the Masses*, chapters 3–4 and appendix B), as a
//! sans-IO replica machine and client machine, in Byzantine (n ≥ 3f+1) and
//! crash (n ≥ 2f+1) modes.
//!
//! - [`messages`]: every message and what it carries.
//! - [`replica`]: the replica; one file per phase (see its module comment).
//! - [`client`]: the client.
//! - [`safe_value`]: the leader-change value choice (Cachin's predicates).
//! - [`byzantine`]: adversary strategies for the simulator.
//!
//! Decisions taken where the source is silent are in
//! `docs/decisions/0002-modsmart-open-points.md`.
//!
//! # MESSAGES
//!
//! Every message kind a Mod-SMaRt machine reports ([`Msg`]), who sends it,
//! the fn that handles it and where the source (Sousa's thesis, seed 001,
//! digest `specs/bftsmart-modsmart-wheat.md`) describes it; messages it does
//! not name cite decision 0002.
//!
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `REQUEST` | client → replicas | `on_request` | `src/replica/requests.rs` | Alg. 1 l.9, Alg. 2 l.1 and l.21 (§3.5.2–§3.5.3) |
//! | `REPLY` | replica → client | `on_reply` | `src/client.rs` | Alg. 2 l.17 and l.28, Alg. 1 l.10–16 (§3.5.2) |
//! | `PROPOSE` | leader → all | `on_propose` | `src/replica/normal.rs` | Alg. 5 l.22, Alg. 6 l.25 (App. B.1); §4.2.3.1 |
//! | `WRITE` | all → all | `on_write` | `src/replica/normal.rs` | Alg. 6 l.28–29 (App. B.1); §4.2.3.1 |
//! | `ACCEPT` | all → all | `on_accept` | `src/replica/normal.rs` | Alg. 6 l.32–36 (App. B.1); §4.2.3.1 |
//! | `FORWARDED` | replica → all | `on_forwarded` | `src/replica/requests.rs` | Alg. 3 l.3, Alg. 2 l.18 (§3.5.4) |
//! | `STOP` | replica → all | `on_stop` | `src/replica/regency.rs` | Alg. 3 l.9–10 (§3.5.4) |
//! | `STOPDATA` | replica → new leader | `on_stopdata` | `src/replica/regency.rs` | Alg. 3 l.25, Alg. 4 l.26 (§3.5.4); consensus state: §3.6.3 |
//! | `SYNC` | new leader → all | `on_sync` | `src/replica/regency.rs` | Alg. 4 l.31–32 (§3.5.4); safe value: §3.6.3 |
//! | `DECISION_REQUEST` | replica behind → all | `on_decision_request` | `src/replica/catchup.rs` | not in the thesis (§3.5.1's "participate in i−1" generalized): decision 0002 (Lagging replicas) |
//! | `DECISION` | replica → one behind | `on_decision` | `src/replica/catchup.rs` | decision 0002 (Lagging replicas); proof Γ: §3.4 |
//! | `DECISION_UNAVAILABLE` | replica → one behind | `on_decision_unavailable` | `src/replica/catchup.rs` | not in the thesis: decision 0002 (Lagging replicas) |
//! | `STATE_REQUEST` | replica behind → all | `on_state_request` | `src/replica/catchup.rs` | §4.2.3.2 (STATE_REQUEST); §3.6.2 |
//! | `STATE_REPLY` | replica → asker | `on_state_reply` | `src/replica/catchup.rs` | §4.2.3.2 (STATE_REPLY, collaborative); §3.6.2 |

pub mod byzantine;
pub mod client;
pub mod config;
pub mod messages;
pub mod replica;
pub mod safe_value;

pub use config::Config;
pub use messages::Msg;

use quorate_core::machine::{ClientContext, ClientMachine, Protocol, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::membership::FaultModel;
use quorate_core::quorum::{ConfigError, QuorumSystem, Role};
use quorate_core::settings::{set, GenericSettings};
use serde::{Deserialize, Serialize};

/// Timers of Mod-SMaRt machines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Replica: periodic check of the request timers.
    RequestTick,
    /// Replica: retry a state transfer.
    StateTransfer,
    /// Client: retransmit the outstanding request.
    ClientRetransmit,
    /// Adversary strategies' own timers.
    Adversary(u64),
}

/// The Mod-SMaRt protocol.
pub struct ModSmart;

impl Protocol for ModSmart {
    const NAME: &'static str = "mod-smart";
    type Keys = ();
    type Message = Msg;
    type Timer = Timer;
    type Config = Config;

    fn replicas_for(f: usize, model: FaultModel) -> usize {
        match model {
            FaultModel::Byzantine => 3 * f + 1,
            FaultModel::Crash => 2 * f + 1,
        }
    }

    /// BFT n >= 3f+1, CFT n >= 2f+1. WRITE and ACCEPT quorums and a client's
    /// matching replies: ⌈(n+f+1)/2⌉ (BFT) or ⌈(n+1)/2⌉ (CFT); the leader's
    /// synchronization waits for n−f STOPDATAs, which two share n−2f (f+1 /
    /// one replica at the minimum); f+1 STOPs to join a regency change, 2f+1
    /// to install it (CFT: 1 and f+1; Alg. 4–6).
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        let min = Self::replicas_for(f, model);
        let agreement = ["write", "accept", "reply"];
        let system =
            match model {
                FaultModel::Byzantine if n >= min => QuorumSystem::byzantine(n, f, model, &agreement, &["stop-join"])
                    .with("stop-install", 2 * f + 1, Role::Witness),
                FaultModel::Crash if n >= min => {
                    QuorumSystem::crash(n, f, &agreement, &["stop-join"]).with("stop-install", f + 1, Role::Witness)
                }
                FaultModel::Byzantine => return Err(ConfigError::rule(Self::NAME, "n >= 3f+1 (bft)", n, f)),
                FaultModel::Crash => return Err(ConfigError::rule(Self::NAME, "n >= 2f+1 (cft)", n, f)),
            };
        Ok(system.with("stopdata", n - f, Role::Agreement))
    }

    /// A pending request waits for the client to send it to everyone
    /// (`client_retransmit`), then for the request timer twice (forward,
    /// then STOP): one such round per faulty replica that becomes leader,
    /// and one more for a regency change already under way at stabilisation
    /// (decision 0012).
    fn liveness_bound(config: &Config, faulty: usize) -> std::time::Duration {
        use quorate_core::machine::recovery_rounds as rounds;
        config.client_retransmit.saturating_add(config.request_timeout.saturating_mul(2).saturating_mul(rounds(faulty)))
    }

    /// The request timeout, client retransmission, batch and checkpoint
    /// period; no round robin.
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

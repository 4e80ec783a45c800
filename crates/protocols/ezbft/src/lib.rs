//! EZBFT (B. Arun, S. Peluso, B. Ravindran, *EZBFT: Decentralizing Byzantine
//! Fault-Tolerant State Machine Replication*, ICDCS 2019) as sans-IO replica
//! and client machines.
//!
//! Leaderless: every replica orders the commands its own clients send, in
//! its own instance space, with the dependencies (interfering commands) and a
//! sequence number; replicas execute speculatively and reply to the client
//! directly. The client finishes the fast path with 3f+1 matching replies
//! (3 one-way steps) or drives the slow path with 2f+1 (2 more steps).
//!
//! - [`messages`]: every message and what it carries.
//! - [`replica`]: the replica (ordering, commits, execution).
//! - [`client`]: the client (reply matching, fast and slow paths).
//!
//! Decisions taken where the paper is silent or ambiguous are in
//! `docs/decisions/0006-ezbft-open-points.md`.

pub mod byzantine;
pub mod client;
pub mod config;
pub mod messages;
pub mod replica;

pub use config::Config;
pub use messages::Msg;

use quorate_core::ids::{ClientId, ReplicaId};
use quorate_core::machine::{
    ClientContext, ClientMachine, OrderGuarantee, Protocol, ReplicaContext, ReplicaMachine, UnknownStrategy,
};
use quorate_core::membership::FaultModel;
use quorate_core::quorum::{ConfigError, QuorumSystem, Role};
use quorate_core::settings::{set, GenericSettings};
use serde::{Deserialize, Serialize};

/// Timers of EZBFT machines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Client: stop waiting for the remaining SPECREPLYs and take the slow path.
    SlowPath,
    /// Client: send the outstanding request or commit again.
    Retransmit,
    /// Client: too few replies; suspect the command-leader (§IV-D 4.3).
    Suspect,
    /// Replica: a RESENDREQ to `space`'s owner went unanswered for the request (client, t).
    ResendReq {
        /// The space asked.
        space: ReplicaId,
        /// The client.
        client: ClientId,
        /// Its timestamp.
        t: u64,
    },
    /// Replica: our barrier's slow path (its replies are in) or retransmission.
    Barrier {
        /// The barrier.
        inst: messages::InstanceId,
    },
    /// Replica: 2f+1 replicas have a checkpoint we have not reached: fetch its state.
    StateTransfer {
        /// The checkpoint's barrier.
        barrier: messages::InstanceId,
    },
    /// Replica: a command others wait for is still not committed here.
    Uncommitted {
        /// The command.
        inst: messages::InstanceId,
    },
    /// Replica: no valid NEWOWNER for `space` with owner number `owner` yet.
    NewOwner {
        /// The space.
        space: ReplicaId,
        /// The owner number awaited.
        owner: u64,
    },
}

/// The EZBFT protocol.
pub struct Ezbft;

impl Protocol for Ezbft {
    const NAME: &'static str = "ezbft";
    type Keys = ();
    const ORDER: OrderGuarantee = OrderGuarantee::Interfering;
    type Message = Msg;
    type Timer = Timer;
    type Config = Config;

    /// 3f+1 in either model: the fast path needs all replicas and the paper
    /// defines no crash-only variant.
    fn replicas_for(f: usize, _model: FaultModel) -> usize {
        3 * f + 1
    }

    /// n = 3f+1 exactly, in either model (Byzantine quorums whatever the
    /// model says). The fast path takes all n matching SPECREPLYs; the slow
    /// path's COMMIT replies, the owner change's NEWOWNER views and the
    /// checkpoint take 2f+1; settlement believes f+1 matching reports. The
    /// paper states and argues these for n = 3f+1 only (decision 0011).
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        if n != 3 * f + 1 {
            return Err(ConfigError::rule(Self::NAME, "n = 3f+1", n, f));
        }
        let agreement = ["slow", "owner-change", "checkpoint"];
        Ok(QuorumSystem::byzantine(n, f, model, &agreement, &["settle-match", "space-frozen"]).with(
            "fast",
            n,
            Role::Fast,
        ))
    }

    /// A pending request waits for the client's retransmission and its move
    /// to another replica (`client_retransmit` + 2 × `suspect_timeout`), and
    /// for an owner change of each faulty replica's space (a commit asked
    /// for, then the owner replaced: 2 × `commit_timeout` +
    /// `new_owner_timeout`), plus one more for an owner change already under
    /// way at stabilisation (decision 0012).
    fn liveness_bound(config: &Config, faulty: usize) -> std::time::Duration {
        use quorate_core::machine::recovery_rounds as rounds;
        let round = config.commit_timeout.saturating_mul(2).saturating_add(config.new_owner_timeout);
        let client = config.client_retransmit.saturating_add(config.suspect_timeout.saturating_mul(2));
        client.saturating_add(round.saturating_mul(rounds(faulty)))
    }

    /// The timeout is the paper's: how long a client waits before
    /// suspecting its command-leader. No batching, no round robin.
    fn apply_settings(s: &GenericSettings) -> Result<Config, String> {
        if s.max_batch.is_some() {
            return Err("ezbft has no batching: drop --batch".into());
        }
        if s.round_robin {
            return Err("--round-robin is a DQBFT option (dqbft, destiny)".into());
        }
        let mut c = Config::default();
        set(&mut c.suspect_timeout, s.timeout);
        set(&mut c.client_retransmit, s.client_retransmit);
        set(&mut c.checkpoint_interval, s.checkpoint_period);
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

    const CLIENT_STRATEGIES: &'static [(&'static str, &'static str)] = byzantine::CLIENT_STRATEGIES;

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

#[cfg(test)]
mod byzantine_tests;

#[cfg(test)]
mod beyond_f_tests;

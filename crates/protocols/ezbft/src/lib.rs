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
//!
//! # MESSAGES
//!
//! Every message kind an EZBFT machine reports ([`Msg`]), who sends it, the
//! fn that handles it and where the paper (seed 000's ICDCS'19 text, digest
//! `specs/ezbft.md` §3) describes it; messages the paper does not name (the
//! commit agreement, queries, checkpoints) cite decision 0006. A kind two
//! kinds of machine receive has a row for each.
//!
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `REQUEST` | client → its command-leader | `on_request` | `src/replica/order.rs` | §IV-A step 1 |
//! | `SPECORDER` | command-leader → replicas | `on_spec_order` | `src/replica/order.rs` | §IV-A step 2 |
//! | `SPECREPLY` | replica → client | `on_spec_reply` | `src/client.rs` | §IV-A steps 3–4 |
//! | `SPECREPLY` | replica → a barrier's owner | `on_barrier_reply` | `src/replica/checkpoint.rs` | not in the paper (barriers): decision 0006 (Checkpoints, Committing a barrier) |
//! | `COMMITFAST` | client (a barrier's owner) → replicas | `on_commit_fast` | `src/replica/commit.rs` | §IV-A step 4.1 |
//! | `COMMIT` | client (a barrier's owner) → replicas | `on_commit` | `src/replica/commit.rs` | §IV-C step 4.2 |
//! | `ACCEPT` | replica → replicas | `on_vote` | `src/replica/agree.rs` | not in the paper: decision 0006 (Commit agreement) |
//! | `CONFIRM` | replica → replicas | `on_vote` | `src/replica/agree.rs` | not in the paper: decision 0006 (Commit agreement) |
//! | `COMMITREPLY` | replica → client | `on_commit_reply` | `src/client.rs` | §IV-C step 5.2 |
//! | `REQUEST-ALL` | client → all replicas | `on_request_all` | `src/replica/owner.rs` | §IV-D 4.3 (the REQUEST carrying R_i) |
//! | `RESENDREQ` | replica → command-leader | `on_resend_req` | `src/replica/owner.rs` | §IV-D 4.3 |
//! | `CACHEDREPLY` | replica → client | `on_cached_reply` | `src/client.rs` | §IV-D 4.3 (the cached response); decision 0006 (Client, Results from elsewhere) |
//! | `POM` | client → replicas | `on_pom` | `src/replica/owner.rs` | §IV-D 4.4 |
//! | `STARTOWNERCHANGE` | replica → replicas | `on_start_owner_change` | `src/replica/owner.rs` | §IV-E OC1–OC2 |
//! | `OWNERCHANGE` | replica → new owner | `on_owner_change` | `src/replica/owner.rs` | §IV-E OC3–OC4 |
//! | `NEWOWNER` | new owner → replicas (relayed by any that installed it) | `on_new_owner` | `src/replica/owner.rs` | §IV-E OC5–OC6 |
//! | `NEWOWNER-VOTE` | replica → replicas | `on_new_owner_vote` | `src/replica/owner.rs` | not in the paper: decision 0006 (Agreement on NEWOWNER) |
//! | `NEWOWNER-AGREED` | replica → one that missed it | `on_new_owner_agreed` | `src/replica/owner.rs` | not in the paper: decision 0006 (A missed NEWOWNER) |
//! | `COMMITQUERY` | replica → replicas | `on_commit_query` | `src/replica/commit.rs` | not in the paper: decision 0006 (Liveness holes; Commit agreement, Proof) |
//! | `ORDERQUERY` | replica → replicas | `on_order_query` | `src/replica/order.rs` | not in the paper (h is silent): decision 0006 (Ordering, Slots and h) |
//! | `COMMITTED` | replica → asker | `on_committed` | `src/replica/commit.rs` | not in the paper: decision 0006 (Commit agreement, Proof) |
//! | `SPACEFROZEN` | replica → client | `on_space_frozen` | `src/client.rs` | §IV-E OC7 (a frozen space); §V note (next-closest replica) |
//! | `CHECKPOINT` | replica → replicas | `on_checkpoint` | `src/replica/checkpoint.rs` | not in the paper ("the last checkpoint" only): decision 0006 (Checkpoints) |
//! | `STATEQUERY` | replica behind → one voter | `on_state_query` | `src/replica/checkpoint.rs` | not in the paper: decision 0006 (Checkpoints, State transfer) |
//! | `STATE` | voter → asker | `on_state` | `src/replica/checkpoint.rs` | not in the paper: decision 0006 (Checkpoints, State transfer) |

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

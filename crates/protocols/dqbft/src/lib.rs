//! The DQBFT paradigm (Arun and Ravindran, *Scalable Byzantine Fault
//! Tolerance via Partial Decentralization*, VLDB 2022) as sans-IO machines,
//! in two flavors ([`Flavor`]): DQPBFT ([`Dqbft`], §3: PBFT in every
//! instance, 3f+1 replicas) and Destiny ([`Destiny`], §4: Linear Hybster in
//! every instance over the ThreshSign trusted subsystem, 2f+1 replicas,
//! one threshold-signed answer per request).
//!
//! Every replica runs N + 1 instances over one
//! network: N *D-instances*, one coordinated by each replica, that
//! disseminate batches of its clients' requests, and one *O-instance* whose
//! primary orders references to D-instance slots (never payloads). A command
//! executes when its D-slot is decided in its D-instance and the slot's
//! reference is decided in the O-instance, strictly in the O-instance's order.
//!
//! - [`replica`]: the replica (requests, dissemination, ordering, execution,
//!   checkpoints and state transfer, recovery).
//! - [`client`]: the client (f+1 matching replies, or one aggregated answer).
//! - [`flavor`]: the two flavors.
//! - [`messages`]: the messages.
//! - [`byzantine`]: adversary strategies for the simulator.
//!
//! Decisions taken where the paper leaves room are in
//! `docs/decisions/0009-dqbft.md` and `0010-destiny.md`.
//!
//! # MESSAGES
//!
//! Every message kind a DQBFT machine reports ([`Msg`]), who sends it, the fn
//! that handles it and where the paper (seed 002, PVLDB 15, digest
//! `specs/dqbft-destiny.md`) describes it; messages it does not name cite
//! decisions 0009 and 0010. An instance's message is a D- or O- kind (the
//! engine's kind under the paper's names): the replica routes it to that
//! instance's engine, whose handler per kind is in the MESSAGES tables of
//! `quorate_engines::pbft` (DQPBFT) and `quorate_engines::hybster` (Destiny).
//! A kind only one flavor sends says so.
//!
//! | message | from → to | handler | file | source section |
//! |---|---|---|---|---|
//! | `REQUEST` | client → its coordinator (→ all when it retransmits) | `on_request` | `src/replica/requests.rs` | §3.2.1 (ClientCmd), §3.2.5 Case 1, §3.2.6 |
//! | `REPLY` | replica → client (DQPBFT) | `on_reply` | `src/client.rs` | §2.1 ④ (f+1 identical replies), §3.2.6 |
//! | `EXECSIG` | replica → execution collector (Destiny) | `on_exec_sig` | `src/replica/answers.rs` | §4.3.1 Fig. 6b step 6 (ExecSig); decision 0010 (Answers) |
//! | `EXECPROOF` | execution collector → client (Destiny) | `on_exec_proof` | `src/client.rs` | §4.3.1 Fig. 6b step 7, §4.3.2 (ExecProof); decision 0010 (Who gets the ExecProof) |
//! | `ASSIGN` | client → all replicas (relayed to the O-primary) | `on_assign` | `src/replica/requests.rs` | §3.2.6 (ASSIGN, contents silent); decision 0009 (ASSIGN) |
//! | `ASSIGNED` | replica → client | `on_assigned` | `src/client.rs` | not in the paper: decision 0009 (ASSIGN) |
//! | `FORWARD` | replica → an instance's coordinator | `on_forward` | `src/replica/requests.rs` | §3.2.5 Case 1 (forwards the command to the coordinator) |
//! | `D-PREPREPARE` | coordinator → all (DQPBFT) | `on_d_message` | `src/replica/order.rs` | §3.2.1 Fig. 5 (D-PrePrepare) |
//! | `D-PREPARE` | backup → all (DQPBFT); coordinator → all (Destiny) | `on_d_message` | `src/replica/order.rs` | §3.2.1 Fig. 5 (D-Prepare); Destiny: §4.3.1 Fig. 6b step 1 |
//! | `D-COMMITSIG` | replica → D-collector (Destiny) | `on_d_message` | `src/replica/order.rs` | §4.3.1 Fig. 6b step 3 (D-CommitSig) |
//! | `D-COMMIT` | any → all (DQPBFT); D-collector → all (Destiny) | `on_d_message` | `src/replica/order.rs` | §3.2.1 Fig. 5 (D-Commit); Destiny: §4.3.1 Fig. 6b step 4 |
//! | `D-CHECKPOINTSIG` | replica → D-collector (Destiny) | `on_d_message` | `src/replica/order.rs` | §3.2.3 (left to the instance protocol); decision 0010 (Checkpoints) |
//! | `D-CHECKPOINT` | any → all | `on_d_message` | `src/replica/order.rs` | §3.2.3 (left to the instance protocol); decisions 0007, 0010 |
//! | `D-VIEWCHANGE` | any → all | `on_d_message` | `src/replica/order.rs` | §3.2.5 Case 1 and reinstatement (the instance's view change, unmodified) |
//! | `D-NEWVIEW` | new coordinator → all | `on_d_message` | `src/replica/order.rs` | §3.2.5 (the instance's view change, unmodified) |
//! | `D-STATUS` | any → all, when stalled | `on_d_message` | `src/replica/order.rs` | not in the paper: the engines' retransmission (decisions 0007, 0010) |
//! | `D-DECIDED` | any → a replica that decided less | `on_d_message` | `src/replica/order.rs` | not in the paper: decisions 0007, 0010 |
//! | `D-FETCH` | any → one holder | `on_d_message` | `src/replica/order.rs` | not in the paper: decision 0007 (FETCH); §3.2.3's Example 3.1 (missing D-payloads) |
//! | `D-VALUE` | holder → asker | `on_d_message` | `src/replica/order.rs` | not in the paper: decision 0007 (FETCH) |
//! | `O-PREPREPARE` | O-primary → all (DQPBFT) | `on_o_message` | `src/replica/order.rs` | §3.2.1 Fig. 5 (O-PrePrepare) |
//! | `O-PREPARE` | backup → all (DQPBFT); O-primary → all (Destiny) | `on_o_message` | `src/replica/order.rs` | §3.2.1 Fig. 5 (O-Prepare); Destiny: §4.3.1 Fig. 6b step 2 |
//! | `O-COMMITSIG` | replica → O-collector (Destiny) | `on_o_message` | `src/replica/order.rs` | §4.3.1 Fig. 6b step 3′ (O-CommitSig) |
//! | `O-COMMIT` | any → all (DQPBFT); O-collector → all (Destiny) | `on_o_message` | `src/replica/order.rs` | §3.2.1 Fig. 5 (O-Commit); Destiny: §4.3.1 Fig. 6b step 4′ |
//! | `O-CHECKPOINTSIG` | replica → O-collector (Destiny) | `on_o_message` | `src/replica/order.rs` | §3.2.3; decision 0010 (Checkpoints) |
//! | `O-CHECKPOINT` | any → all | `on_o_message` | `src/replica/order.rs` | §3.2.3 (checkpoint and state transfer) |
//! | `O-VIEWCHANGE` | any → all | `on_o_message` | `src/replica/order.rs` | §3.2.5 Case 2 |
//! | `O-NEWVIEW` | new O-primary → all | `on_o_message` | `src/replica/order.rs` | §3.2.5 Case 2 |
//! | `O-STATUS` | any → all, when stalled | `on_o_message` | `src/replica/order.rs` | not in the paper: decisions 0007, 0010 |
//! | `O-DECIDED` | any → a replica that decided less | `on_o_message` | `src/replica/order.rs` | not in the paper: decisions 0007, 0010; §3.2.3's Example 3.1 (missing O-decisions) |
//! | `O-FETCH` | any → one holder | `on_o_message` | `src/replica/order.rs` | not in the paper: decision 0007 (FETCH) |
//! | `O-VALUE` | holder → asker | `on_o_message` | `src/replica/order.rs` | not in the paper: decision 0007 (FETCH) |
//! | `FLOOD` | replica that accepted a D-proposal → others | `on_flood` | `src/replica/order.rs` | §3.2.4 (flooding); decision 0009 (Flooding) |
//! | `STATE-REQUEST` | replica behind → one replica | `on_state_request` | `src/replica/execute.rs` | §3.2.3 (state transfer) |
//! | `STATE-REPLY` | replica → asker | `on_state_reply` | `src/replica/execute.rs` | §3.2.3 (state transfer) |
//! | `VIEW-NOTICE` | replica → all (the O-primary orders a handover) | `on_view_notice` | `src/replica/reinstate.rs` | not in the paper (§3.2.5 leaves where clients go): decision 0009 (Own instance, handovers) |
//! | `REINSTATE` | recovered replica → all | `on_reinstate` | `src/replica/reinstate.rs` | §3.2.5 (reinstatement); decision 0009 (Reinstatement request) |

#![warn(missing_docs)]

pub mod byzantine;
pub mod client;
pub mod config;
pub mod flavor;
pub mod messages;
pub mod replica;

pub use config::Config;
pub use messages::Msg;

use messages::{DBatch, OBatch};
use quorate_core::ids::ReplicaId;
use quorate_core::keys::KeyMaterial;
use quorate_core::machine::{ClientContext, ClientMachine, Protocol, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::membership::FaultModel;
use quorate_core::quorum::{ConfigError, QuorumSystem};
use quorate_core::settings::{set, GenericSettings};
use quorate_engines::instance::{EngineTimer, Instance};
use quorate_engines::pbft::collusion::Collusion;
use quorate_threshsign::{PlainSign, Scheme};
use replica::Replica;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use std::sync::Arc;

/// Timers of DQBFT machines.
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

/// One way of running the DQBFT paradigm: which instance engine the D- and
/// O-instances run, with which keys, and how clients learn results.
pub trait Flavor: Sized + Send + Sync + 'static {
    /// Name on the command line.
    const NAME: &'static str;
    /// Key material beyond the signing keys ([`Protocol::Keys`]).
    type Material: KeyMaterial;
    /// A D-instance's engine.
    type D: Instance<DBatch>;
    /// The O-instance's engine.
    type O: Instance<OBatch>;
    /// What a replica holds beyond its crypto provider.
    type Keys: Send;
    /// Replicas needed for f faults.
    fn replicas_for(f: usize) -> usize;
    /// The quorums of every instance (D and O) with `n` replicas and f faults.
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError>;
    /// A replica's keys (from [`ReplicaContext::keys`], its key material).
    fn keys(ctx: &ReplicaContext<Self::Material>) -> Self::Keys;
    /// D-instance `i`.
    fn d_engine(ctx: &ReplicaContext<Self::Material>, keys: &Self::Keys, cfg: &Config, i: u32) -> Self::D;
    /// The O-instance.
    fn o_engine(ctx: &ReplicaContext<Self::Material>, keys: &Self::Keys, cfg: &Config) -> Self::O;
    /// How replicas answer clients: None for MAC'd replies (f+1 matching),
    /// or the untrusted signer and scheme of aggregated answers.
    fn answers(keys: &Self::Keys) -> Option<(&dyn PlainSign, &Arc<dyn Scheme>)>;
    /// A client's scheme for aggregated answers (None: MAC'd replies).
    fn client_scheme(ctx: &ClientContext<Self::Material>) -> Option<Arc<dyn Scheme>>;
    /// Adversaries: `original`, a proposal of D-instance `i`, made for `to`
    /// with `value` instead, as well as the replica's own keys allow.
    fn forge_d(r: &Replica<Self>, i: u32, original: &DMsg<Self>, to: ReplicaId, value: DBatch) -> Option<DMsg<Self>>;
    /// Adversaries: as [`Flavor::forge_d`] for an O-instance proposal.
    fn forge_o(r: &Replica<Self>, original: &OMsg<Self>, to: ReplicaId, value: OBatch) -> Option<OMsg<Self>>;
    /// Adversaries (collude-split): `msg`, an O-instance message for `to`,
    /// as the colluders' story for `to` (see [`byzantine`]).
    fn collude_o(r: &Replica<Self>, c: &mut Collusion<OBatch>, to: ReplicaId, msg: OMsg<Self>) -> OMsg<Self>;
    /// Adversaries: spoil a vote's authenticator (MAC or share); whether it was a vote.
    fn spoil_d(msg: &mut DMsg<Self>) -> bool;
    /// Adversaries: as [`Flavor::spoil_d`] for the O-instance.
    fn spoil_o(msg: &mut OMsg<Self>) -> bool;
}

/// A D-instance message of flavor `F`.
pub type DMsg<F> = <<F as Flavor>::D as Instance<DBatch>>::Msg;
/// An O-instance message of flavor `F`.
pub type OMsg<F> = <<F as Flavor>::O as Instance<OBatch>>::Msg;
/// The messages of flavor `F`.
pub type FMsg<F> = Msg<DMsg<F>, OMsg<F>>;

/// The DQBFT paradigm with flavor `F`.
pub struct Dq<F>(PhantomData<F>);

/// DQPBFT: PBFT in every instance.
pub type Dqbft = Dq<flavor::Pbft>;
/// Destiny: Linear Hybster in every instance, threshold-signed answers.
pub type Destiny = Dq<flavor::Hybster>;

impl<F: Flavor> Protocol for Dq<F> {
    const NAME: &'static str = F::NAME;
    type Keys = F::Material;
    type Message = FMsg<F>;
    type Timer = Timer;
    type Config = Config;

    fn replicas_for(f: usize, _model: FaultModel) -> usize {
        F::replicas_for(f)
    }

    /// Every instance runs the flavor's engine on the same membership;
    /// clients take f+1 matching answers (or f+1 shares combined).
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        Ok(F::quorum_system(n, f, model)?.with("answer", f + 1, quorate_core::quorum::Role::Witness))
    }

    /// A pending request waits for the client to send it to everyone
    /// (`client_retransmit`), then for a request timer, a payload timer and
    /// a view change of the instance of each faulty coordinator
    /// (`request_timeout` + `payload_timeout` + `view_change_timeout`), plus
    /// one more round for a view change already under way at stabilisation
    /// (decision 0012).
    fn liveness_bound(config: &Config, faulty: usize) -> std::time::Duration {
        use quorate_core::machine::recovery_rounds as rounds;
        let round =
            config.request_timeout.saturating_add(config.payload_timeout).saturating_add(config.view_change_timeout);
        config.client_retransmit.saturating_add(round.saturating_mul(rounds(faulty)))
    }

    /// The timeout is how long a request may wait before replicas suspect
    /// its coordinator (or the O-primary); round robin orders the
    /// D-instances without the O-instance.
    fn apply_settings(s: &GenericSettings) -> Result<Config, String> {
        let mut c = Config::default();
        set(&mut c.request_timeout, s.timeout);
        set(&mut c.client_retransmit, s.client_retransmit);
        set(&mut c.max_batch, s.max_batch);
        set(&mut c.checkpoint_period, s.checkpoint_period);
        c.round_robin = s.round_robin;
        Ok(c)
    }

    fn validate_config(config: &Config) -> Result<(), String> {
        config.validate()
    }

    fn replica(ctx: ReplicaContext<F::Material>, config: &Config) -> Box<dyn ReplicaMachine<Self>> {
        Box::new(replica::Replica::<F>::new(ctx, config.clone()))
    }

    fn client(ctx: ClientContext<F::Material>, config: &Config) -> Box<dyn ClientMachine<Self>> {
        Box::new(client::Client::<F>::new(ctx, config.clone()))
    }

    const STRATEGIES: &'static [(&'static str, &'static str)] = byzantine::STRATEGIES;

    fn byzantine(
        strategy: &str,
        ctx: ReplicaContext<F::Material>,
        config: &Config,
    ) -> Result<Box<dyn ReplicaMachine<Self>>, UnknownStrategy> {
        byzantine::replica::<F>(strategy, ctx, config)
    }

    const CLIENT_STRATEGIES: &'static [(&'static str, &'static str)] = byzantine::CLIENT_STRATEGIES;

    fn byzantine_client(
        strategy: &str,
        ctx: ClientContext<F::Material>,
        config: &Config,
    ) -> Result<Box<dyn ClientMachine<Self>>, UnknownStrategy> {
        byzantine::client::<F>(strategy, ctx, config)
    }
}

#[cfg(test)]
mod beyond_f_tests;
#[cfg(test)]
mod reinstatement_tests;
#[cfg(test)]
mod round_robin_tests;
#[cfg(test)]
mod tests;

//! quorate core: what every protocol, the simulator and the runtime share.
//!
//! Everything in this crate is pure and deterministic: no threads, sockets,
//! clocks or unseeded randomness. Protocols are sans-IO state machines
//! ([`machine::ReplicaMachine`], [`machine::ClientMachine`]) that a host
//! (the simulator or the runtime) drives with [`machine::Input`]s and whose
//! [`machine::Effect`]s it carries out.

pub mod admission;
pub mod crypto;
pub mod executor;
pub mod faulty_client;
pub mod ids;
pub mod invariant;
pub mod keys;
pub mod machine;
pub mod membership;
pub mod quorum;
pub mod request;
pub mod service;
pub mod settings;
pub mod tally;
#[cfg(test)]
mod testing;
pub mod time;
pub mod wire;

pub use bytes::Bytes;
pub use crypto::{Crypto, Digest, ModelledOp, Signature};
pub use ids::{ClientId, NodeId, ReplicaId};
pub use machine::{
    membership_for, weighted_membership_for, ClientMachine, Effect, Event, Input, OrderGuarantee, Outbox, Protocol,
    ReplicaMachine,
};
pub use membership::{FaultModel, Membership, Threshold};
pub use quorum::{ConfigError, QuorumSystem};
pub use service::{ExecCtx, Service};
pub use tally::{Ballot, Outcome, VoterSet};
pub use time::Time;

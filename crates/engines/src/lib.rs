//! Consensus-instance engines that several protocols embed, out of the
//! protocol crates (decision 0017):
//!
//! - [`instance`]: the contract between an engine and the replica that
//!   embeds it ([`instance::Instance`]), so an embedder is written once for
//!   every engine.
//! - [`pbft`]: one PBFT instance (MAC authenticators, 3f+1, 2f+1 quorums);
//!   the PBFT protocol runs one, DQPBFT one per D-instance and one O-instance.
//! - [`hybster`]: one Linear Hybster instance (ThreshSign counters, 2f+1,
//!   f+1 threshold shares); Destiny runs it the way DQPBFT runs PBFT's.
//! - [`kit`]: what both engines share: the slot log with values by digest,
//!   in-order decision reporting, the retransmission tick, the future-message
//!   hold, the replay guard, the f+1 view-join rule, the vote tally, proposal
//!   admission, and one test network for the engines' unit tests.

#![warn(missing_docs)]

pub mod hybster;
pub mod instance;
pub mod kit;
pub mod pbft;

//! Replicated services for quorate, and the workloads that drive them.
//!
//! - [`kv`]: a key-value store ([`kv::KvStore`]) with get, put, delete and
//!   compare-and-swap, whose operations on different keys commute.
//! - [`counter`]: a single 64-bit counter ([`counter::Counter`]).
//! - [`workload`]: deterministic, seeded generators of encoded operations for
//!   the simulator and the benchmark tool.
//!
//! Every service is deterministic and total: any byte string given to
//! `execute`, `query` or `restore` yields a reply or an error, never a panic,
//! and the same operations in the same order give byte-identical replies and
//! snapshots on every replica.

#![warn(missing_docs)]

pub mod counter;
pub mod kv;
pub mod workload;

pub use counter::{Counter, CounterOp, CounterReply};
pub use kv::{KvError, KvOp, KvReply, KvStore};
pub use workload::{faulty_key_prefix, CounterWorkload, KvWorkload};

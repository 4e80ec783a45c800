//! quorate's runtime: the same protocol machines that run in the simulator,
//! on real processes and sockets.
//!
//! - [`config`]: the cluster file (membership, keys, settings) and its checks.
//! - [`keys`]: key files and `keygen`.
//! - [`replica`]: the replica host (network → protocol thread → durable log → network).
//! - [`client`]: the client library.
//! - [`crypto`]: the runtime crypto provider (pair MAC keys, cache of verified signatures).
//! - [`metrics`]: Prometheus metrics and their HTTP endpoint.
//! - [`session`]: frames on client connections (many clients per connection).
//! - `net`: the replica's connections.
//!
//! Everything is generic over [`quorate_core::Protocol`]: a new protocol runs
//! here with no change to the host.

pub mod client;
pub mod config;
pub mod crypto;
pub mod keys;
pub mod metrics;
mod net;
pub mod replica;
pub mod session;

pub use client::{Client, ClientError, ClientHost, ClientOptions};
pub use config::{ClusterConfig, ConfigError};
pub use net::{dial, DialError};
pub use replica::{start, NodeError, ReplicaHandle};

//! The replicated service API.

use crate::crypto::Digest;
use crate::ids::ClientId;
use bytes::Bytes;
use thiserror::Error;

/// What a service may know about an operation it executes. Everything here
/// is agreed by the replicas: never local time or local randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecCtx {
    /// Position of this operation in the execution order (0-based).
    pub slot: u64,
    /// Consensus instance (or equivalent) that ordered it.
    pub instance: u64,
    /// Agreed timestamp (nanoseconds), chosen by the ordering protocol.
    pub timestamp: u64,
    /// Client that issued it.
    pub client: ClientId,
    /// The client's sequence number.
    pub seq: u64,
}

/// A snapshot the service could not restore.
#[derive(Debug, Error)]
#[error("cannot restore snapshot: {0}")]
pub struct RestoreError(pub String);

/// A deterministic service. Correct replicas that execute the same operations
/// in the same order must return the same replies and produce byte-identical
/// snapshots.
pub trait Service: Send {
    /// Execute an ordered operation.
    fn execute(&mut self, op: &[u8], ctx: &ExecCtx) -> Bytes;
    /// Answer a read-only operation without changing state.
    fn query(&self, op: &[u8]) -> Bytes;
    /// The whole state, deterministically encoded.
    fn snapshot(&self) -> Bytes;
    /// Replace the state with a snapshot.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError>;
    /// Whether two operations interfere (leaderless protocols order only
    /// interfering operations). Default: everything interferes.
    fn conflicts(&self, _a: &[u8], _b: &[u8]) -> bool {
        true
    }
    /// The key that indexes an operation's interference: operations with
    /// different keys never interfere (`conflicts` is false for them); `None`
    /// means the operation may interfere with anything. Leaderless protocols
    /// look up interfering commands by it. Default: `None`.
    fn conflict_key(&self, _op: &[u8]) -> Option<Bytes> {
        None
    }
    /// Whether an operation is well-formed for this service (the source's
    /// `validCmd`). Default: any operation.
    fn validate(&self, _op: &[u8]) -> bool {
        true
    }
    /// Digest of the state. Default: digest of the snapshot.
    fn digest(&self) -> Digest {
        Digest::of(&self.snapshot())
    }
}

/// Builds fresh service instances (one per replica).
pub type ServiceFactory = std::sync::Arc<dyn Fn() -> Box<dyn Service> + Send + Sync>;

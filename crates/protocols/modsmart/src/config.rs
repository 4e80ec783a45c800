//! Mod-SMaRt settings and their defaults (each default is explained in
//! docs/decisions/0002-modsmart-open-points.md).

use std::time::Duration;

/// Mod-SMaRt settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Request timer: a request pending this long is forwarded; pending twice
    /// as long it triggers a regency change. Doubles with every regency change
    /// that decides nothing, back to this value after a decision.
    pub request_timeout: Duration,
    /// Largest batch, in requests (BFT-SMaRt's default: 400).
    pub max_batch: usize,
    /// A checkpoint every this many decided instances; the log is truncated to it.
    pub checkpoint_period: u64,
    /// Client: retransmit an unanswered request after this long (doubling, up to 8×).
    pub client_retransmit: Duration,
    /// State transfer: retry with another designated replica after this long.
    pub state_transfer_timeout: Duration,
    /// Most requests a replica keeps pending (ToOrder); more are shed.
    pub max_pending: usize,
    /// Most messages buffered for future instances.
    pub max_future: usize,
    /// Clients sign requests (BFT mode only; crash mode never signs).
    pub sign_requests: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(2),
            max_batch: 400,
            checkpoint_period: 256,
            client_retransmit: Duration::from_secs(1),
            state_transfer_timeout: Duration::from_secs(2),
            max_pending: 100_000,
            max_future: 20_000,
            sign_requests: true,
        }
    }
}

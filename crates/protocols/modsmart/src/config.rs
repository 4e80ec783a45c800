//! Mod-SMaRt settings and their defaults (each default is explained in
//! docs/decisions/0002-modsmart-open-points.md).

use quorate_core::time::human;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Mod-SMaRt settings (the `[settings]` table of a cluster file; durations
/// are written like "2s" or "500ms").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Request timer: a request pending this long is forwarded; pending twice
    /// as long it triggers a regency change. Doubles with every regency change
    /// that decides nothing, back to this value after a decision.
    #[serde(with = "human")]
    pub request_timeout: Duration,
    /// Largest batch, in requests (BFT-SMaRt's default: 400).
    pub max_batch: usize,
    /// A checkpoint every this many decided instances; the log is truncated to it.
    pub checkpoint_period: u64,
    /// Client: retransmit an unanswered request after this long (doubling, up to 8×).
    #[serde(with = "human")]
    pub client_retransmit: Duration,
    /// State transfer: retry with another designated replica after this long.
    #[serde(with = "human")]
    pub state_transfer_timeout: Duration,
    /// Most requests a replica keeps pending (ToOrder); more are shed.
    pub max_pending: usize,
    /// Most messages buffered for future instances.
    pub max_future: usize,
    /// Clients sign requests (BFT mode only; crash mode never signs).
    pub sign_requests: bool,
}

impl Config {
    /// Check the settings; the error names the wrong field.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_timeout.is_zero() {
            return Err("request_timeout must be positive".into());
        }
        if self.max_batch == 0 {
            return Err("max_batch must be at least 1".into());
        }
        if self.checkpoint_period == 0 {
            return Err("checkpoint_period must be at least 1".into());
        }
        if self.client_retransmit.is_zero() || self.state_transfer_timeout.is_zero() {
            return Err("client_retransmit and state_transfer_timeout must be positive".into());
        }
        if self.max_pending == 0 || self.max_future == 0 {
            return Err("max_pending and max_future must be at least 1".into());
        }
        Ok(())
    }
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

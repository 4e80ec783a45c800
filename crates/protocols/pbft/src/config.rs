//! PBFT settings and their defaults (each explained in
//! docs/decisions/0007-pbft.md).

use quorate_core::time::human;
use quorate_engines::pbft::EngineConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// PBFT settings (the `[settings]` table of a cluster file; durations are
/// written like "2s" or "500ms").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A backup holding a client's request this long without executing it
    /// suspects the primary and starts a view change (scaled by the view
    /// changes in a row that decided nothing: ×2 each, up to ×64).
    #[serde(with = "human")]
    pub request_timeout: Duration,
    /// After 2f+1 VIEW-CHANGEs, wait this long for the NEW-VIEW before moving
    /// to the next view (doubling likewise).
    #[serde(with = "human")]
    pub view_change_timeout: Duration,
    /// Largest batch the primary proposes, in requests.
    pub max_batch: usize,
    /// Batches the primary keeps undecided at most (a new batch takes all
    /// requests that arrived while these were under way).
    pub max_in_flight: u64,
    /// A checkpoint every this many sequence numbers (batches); the log
    /// window (high watermark − low watermark) is twice this.
    pub checkpoint_period: u64,
    /// With nothing decided for this long while something is under way, a
    /// replica repeats its messages and tells the others where it is.
    #[serde(with = "human")]
    pub status_interval: Duration,
    /// Client: send the request to every replica after this long without
    /// f+1 matching replies (then again, at twice this interval).
    #[serde(with = "human")]
    pub client_retransmit: Duration,
    /// State transfer: ask another replica after this long without the state.
    #[serde(with = "human")]
    pub state_transfer_timeout: Duration,
    /// Most requests a replica keeps pending; more are shed.
    pub max_pending: usize,
    /// Clients sign requests (they travel in PRE-PREPAREs, so a backup must
    /// be able to check them); `false` leaves it to the channels.
    pub sign_requests: bool,
}

impl Config {
    /// Check the settings; the error names the wrong field.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_timeout.is_zero()
            || self.client_retransmit.is_zero()
            || self.state_transfer_timeout.is_zero()
            || self.view_change_timeout.is_zero()
            || self.status_interval.is_zero()
        {
            return Err("timeouts must be positive".into());
        }
        if self.max_batch == 0 {
            return Err("max_batch must be at least 1".into());
        }
        if self.max_pending == 0 {
            return Err("max_pending must be at least 1".into());
        }
        self.engine().validate()
    }

    /// The settings of the replica's consensus instance.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            instance: 0,
            checkpoint_period: self.checkpoint_period,
            window: self.checkpoint_period.saturating_mul(2),
            max_in_flight: self.max_in_flight,
            view_change_timeout: self.view_change_timeout,
            status_interval: self.status_interval,
            ..EngineConfig::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(2),
            view_change_timeout: Duration::from_secs(2),
            max_batch: 200,
            max_in_flight: 4,
            checkpoint_period: 128,
            status_interval: Duration::from_millis(250),
            client_retransmit: Duration::from_secs(1),
            state_transfer_timeout: Duration::from_secs(2),
            max_pending: 100_000,
            sign_requests: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        let zero = Config { request_timeout: Duration::ZERO, ..Config::default() };
        assert!(zero.validate().unwrap_err().contains("timeouts"));
        let batch = Config { max_batch: 0, ..Config::default() };
        assert!(batch.validate().unwrap_err().contains("max_batch"));
        let period = Config { checkpoint_period: 0, ..Config::default() };
        assert!(period.validate().unwrap_err().contains("checkpoint_period"));
        let flight = Config { max_in_flight: 0, ..Config::default() };
        assert!(flight.validate().unwrap_err().contains("max_in_flight"));
        let c: Config = toml::from_str("request_timeout = \"3s\"\ncheckpoint_period = 16").unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(3));
        assert_eq!(c.engine().window, 32);
        assert!(toml::from_str::<Config>("no_such_setting = 1").is_err());
    }
}

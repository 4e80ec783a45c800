//! EZBFT settings and their defaults (each explained in
//! docs/decisions/0006-ezbft-open-points.md).

use quorate_core::time::human;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// EZBFT settings (the `[settings]` table of a cluster file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Client: once 2f+1 SPECREPLYs are in, wait this many percent of the time
    /// they took for the remaining ones before taking the slow path.
    pub slow_path_wait_percent: u32,
    /// Client: the shortest such wait.
    #[serde(with = "human")]
    pub slow_path_min_wait: Duration,
    /// Client: send the request or commit again after this long without an answer.
    #[serde(with = "human")]
    pub client_retransmit: Duration,
    /// Client: with fewer than 2f+1 replies after this long, send the request to
    /// every replica; after twice this long, move to the next-nearest replica.
    #[serde(with = "human")]
    pub suspect_timeout: Duration,
    /// Client: after moving to another replica, go back to the nearest one
    /// for the first operation this long after (it may have recovered).
    #[serde(with = "human")]
    pub return_home_after: Duration,
    /// Replica: suspect a command-leader that has not ordered a request this
    /// long after a RESENDREQ.
    #[serde(with = "human")]
    pub resend_timeout: Duration,
    /// Replica: suspect the new owner if no valid NEWOWNER arrives this long
    /// after committing to an owner change.
    #[serde(with = "human")]
    pub new_owner_timeout: Duration,
    /// Replica: when a command others wait for stays uncommitted this long, ask
    /// the other replicas for its commit; after twice this long, have its
    /// space's owner replaced (which settles it).
    #[serde(with = "human")]
    pub commit_timeout: Duration,
    /// Replica: most SPECORDERs buffered per space ahead of a missing slot.
    pub max_future: usize,
    /// Replica: order a checkpoint barrier after this many commands in its space.
    pub checkpoint_interval: u64,
    /// Replica: once 2f+1 replies to its barrier are in, wait this long for
    /// the rest before committing it on the slow path.
    #[serde(with = "human")]
    pub barrier_wait: Duration,
}

impl Config {
    /// Check the settings; the error names the wrong field.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_retransmit.is_zero()
            || self.suspect_timeout.is_zero()
            || self.resend_timeout.is_zero()
            || self.new_owner_timeout.is_zero()
            || self.commit_timeout.is_zero()
            || self.return_home_after.is_zero()
        {
            return Err("timeouts must be positive".into());
        }
        if self.slow_path_wait_percent > 10_000 {
            return Err("slow_path_wait_percent must be at most 10000 (100 times the time the replies took)".into());
        }
        if self.max_future == 0 {
            return Err("max_future must be at least 1".into());
        }
        if self.checkpoint_interval == 0 {
            return Err("checkpoint_interval must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            slow_path_wait_percent: 50,
            slow_path_min_wait: Duration::from_millis(2),
            client_retransmit: Duration::from_secs(1),
            suspect_timeout: Duration::from_secs(2),
            return_home_after: Duration::from_secs(30),
            resend_timeout: Duration::from_millis(500),
            new_owner_timeout: Duration::from_secs(2),
            commit_timeout: Duration::from_secs(1),
            max_future: 4096,
            checkpoint_interval: 1024,
            barrier_wait: Duration::from_millis(50),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        let zero = Config { suspect_timeout: Duration::ZERO, ..Config::default() };
        assert!(zero.validate().unwrap_err().contains("timeouts"));
        let wait = Config { slow_path_wait_percent: 20_000, ..Config::default() };
        assert!(wait.validate().unwrap_err().contains("slow_path_wait_percent"));
        let future = Config { max_future: 0, ..Config::default() };
        assert!(future.validate().unwrap_err().contains("max_future"));
        // Settings files: durations in words, unknown fields refused.
        let c: Config = toml::from_str("suspect_timeout = \"3s\"").unwrap();
        assert_eq!(c.suspect_timeout, Duration::from_secs(3));
        assert!(toml::from_str::<Config>("no_such_setting = 1").is_err());
    }
}

//! DQPBFT settings and their defaults (each explained in
//! docs/decisions/0009-dqbft.md).

use quorate_core::time::human;
use quorate_engines::hybster::EngineConfig as HybsterConfig;
use quorate_engines::pbft::EngineConfig;
use quorate_threshsign::destiny;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a replica floods the D-PrePrepares it accepts (§3.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flood {
    /// Nowhere.
    Off,
    /// To every replica.
    All,
    /// To this many replicas drawn at random ("a random subset of few
    /// replicas was equally effective").
    Few(usize),
}

/// DQPBFT settings (the `[settings]` table of a cluster file; durations are
/// written like "2s" or "500ms").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A replica holding a client's request this long without executing it
    /// suspects the request's D-instance coordinator (or, when the request
    /// is disseminated, the O-primary) and starts that instance's view change.
    #[serde(with = "human")]
    pub request_timeout: Duration,
    /// A slot the O-instance ordered waits this long for its payload before
    /// the replica suspects the slot's coordinator (whose successor fills it
    /// with a no-op if nobody holds it).
    #[serde(with = "human")]
    pub payload_timeout: Duration,
    /// After 2f+1 VIEW-CHANGEs, wait this long for the NEW-VIEW.
    #[serde(with = "human")]
    pub view_change_timeout: Duration,
    /// Largest D-batch, in requests.
    pub max_batch: usize,
    /// Largest O-batch, in D-slot references.
    pub max_refs: usize,
    /// Most ASSIGNs in one O-batch (besides its references): an ASSIGN is
    /// about 100 bytes, and clients that start at another replica than
    /// their instance's (crashed replicas, skewed load) all send one at once.
    pub max_assigns: usize,
    /// Undecided proposals per instance at most.
    pub max_in_flight: u64,
    /// A coordinator proposes a D-batch smaller than `max_batch` only while
    /// fewer than this many of its D-slots are undecided. A slot costs every
    /// replica the same work whatever it carries (Destiny: some 3 ms of BLS
    /// checks and signing), so under load requests wait for the slot ahead
    /// and fill the next batch instead of spreading over many small ones.
    pub partial_in_flight: u64,
    /// An O-instance checkpoint every this many O-slots (window: twice this).
    pub checkpoint_period: u64,
    /// A D-instance checkpoint every this many D-slots (window: four times
    /// this: D-checkpoints follow stable O-checkpoints).
    pub d_checkpoint_period: u64,
    /// Retransmission period of every instance.
    #[serde(with = "human")]
    pub status_interval: Duration,
    /// Client: send the request to every replica after this long without
    /// f+1 matching replies.
    #[serde(with = "human")]
    pub client_retransmit: Duration,
    /// State transfer: ask another replica after this long.
    #[serde(with = "human")]
    pub state_transfer_timeout: Duration,
    /// Flooding of accepted D-PrePrepares.
    pub flood: Flood,
    /// Probation after a D-instance's k-th view change lasts
    /// `probation_base · 2^(k-1)` of its sequence numbers (capped at 2^16 ×).
    pub probation_base: u64,
    /// An instance taken over for the k-th time (k ≥ 2) goes back to its
    /// owner no sooner than `reinstate_backoff · 2^(k-2)` after the
    /// takeover (capped at 2^16 ×); the first time at once. Zero: no wait.
    #[serde(with = "human")]
    pub reinstate_backoff: Duration,
    /// Most requests a replica keeps pending; more are shed.
    pub max_pending: usize,
    /// Clients sign requests (backups check them in D-PrePrepares).
    pub sign_requests: bool,
    /// The RCC/MirBFT baseline of `dqbft-imbalance`: D-slots execute in a
    /// fixed round-robin order (slot s of instance 0, 1, ..., N-1, then
    /// s+1), not in the order the O-primary picks; a coordinator behind the
    /// round proposes an empty batch when it has nothing. Off: DQBFT.
    pub round_robin: bool,
}

impl Config {
    /// Check the settings; the error names the wrong field.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_timeout.is_zero()
            || self.payload_timeout.is_zero()
            || self.client_retransmit.is_zero()
            || self.state_transfer_timeout.is_zero()
            || self.view_change_timeout.is_zero()
            || self.status_interval.is_zero()
        {
            return Err("timeouts must be positive".into());
        }
        if self.max_batch == 0 || self.max_refs == 0 || self.max_assigns == 0 {
            return Err("max_batch, max_refs and max_assigns must be at least 1".into());
        }
        if self.partial_in_flight == 0 {
            return Err("partial_in_flight must be at least 1".into());
        }
        if self.max_pending == 0 {
            return Err("max_pending must be at least 1".into());
        }
        if self.probation_base == 0 {
            return Err("probation_base must be at least 1".into());
        }
        if let Flood::Few(0) = self.flood {
            return Err("flood = { few = 0 }: use \"off\"".into());
        }
        self.o_engine().validate()?;
        self.d_engine(0).validate()
    }

    /// The O-instance's settings (instance number u64::MAX: distinct from every D-instance).
    pub fn o_engine(&self) -> EngineConfig {
        EngineConfig {
            instance: u64::MAX,
            checkpoint_period: self.checkpoint_period,
            window: self.checkpoint_period.saturating_mul(2),
            max_in_flight: self.max_in_flight,
            view_change_timeout: self.view_change_timeout,
            status_interval: self.status_interval,
            ..EngineConfig::default()
        }
    }

    /// D-instance `i`'s settings: its view 0 is coordinated by replica `i`.
    pub fn d_engine(&self, i: u32) -> EngineConfig {
        EngineConfig {
            instance: u64::from(i),
            checkpoint_period: self.d_checkpoint_period,
            window: self.d_checkpoint_period.saturating_mul(4),
            max_in_flight: self.max_in_flight,
            view_change_timeout: self.view_change_timeout,
            status_interval: self.status_interval,
            primary_offset: u64::from(i),
            ..EngineConfig::default()
        }
    }
}

impl Config {
    /// The O-instance's settings for Linear Hybster (Destiny): τ's counters.
    pub fn o_hybster(&self) -> HybsterConfig {
        let c = self.o_engine();
        HybsterConfig { ts_instance: destiny::TAU, ..hybster_of(&c) }
    }

    /// D-instance `i`'s settings for Linear Hybster (Destiny): σ_i's counters.
    pub fn d_hybster(&self, i: u32) -> HybsterConfig {
        let c = self.d_engine(i);
        HybsterConfig { ts_instance: destiny::sigma(quorate_core::ids::ReplicaId(i)), ..hybster_of(&c) }
    }
}

/// The same settings for a Linear Hybster engine.
fn hybster_of(c: &EngineConfig) -> HybsterConfig {
    HybsterConfig {
        instance: c.instance,
        ts_instance: destiny::TAU,
        checkpoint_period: c.checkpoint_period,
        window: c.window,
        max_in_flight: c.max_in_flight,
        view_change_timeout: c.view_change_timeout,
        status_interval: c.status_interval,
        max_value_bytes: c.max_value_bytes,
        max_reply_bytes: c.max_reply_bytes,
        max_held: c.max_held,
        primary_offset: c.primary_offset,
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_timeout: Duration::from_secs(2),
            payload_timeout: Duration::from_secs(1),
            view_change_timeout: Duration::from_secs(2),
            max_batch: 200,
            max_refs: 64,
            max_assigns: 512,
            max_in_flight: 4,
            partial_in_flight: 1,
            checkpoint_period: 128,
            d_checkpoint_period: 64,
            status_interval: Duration::from_millis(250),
            client_retransmit: Duration::from_secs(1),
            state_transfer_timeout: Duration::from_secs(2),
            flood: Flood::Few(2),
            probation_base: 16,
            reinstate_backoff: Duration::from_secs(2),
            max_pending: 100_000,
            sign_requests: true,
            round_robin: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert_eq!(Config::default().validate(), Ok(()));
        let zero = Config { payload_timeout: Duration::ZERO, ..Config::default() };
        assert!(zero.validate().unwrap_err().contains("timeouts"));
        let refs = Config { max_refs: 0, ..Config::default() };
        assert!(refs.validate().unwrap_err().contains("max_refs"));
        let flood = Config { flood: Flood::Few(0), ..Config::default() };
        assert!(flood.validate().unwrap_err().contains("flood"));
        let c: Config = toml::from_str("flood = \"all\"\nd_checkpoint_period = 8").unwrap();
        assert_eq!(c.flood, Flood::All);
        assert_eq!(c.d_engine(3).window, 32);
        assert_eq!(c.d_engine(3).primary_offset, 3);
        let c: Config = toml::from_str("flood = { few = 3 }").unwrap();
        assert_eq!(c.flood, Flood::Few(3));
        let c: Config = toml::from_str("reinstate_backoff = \"500ms\"").unwrap();
        assert_eq!(c.reinstate_backoff, Duration::from_millis(500));
        assert!(toml::from_str::<Config>("no_such_setting = 1").is_err());
        assert!(!Config::default().round_robin);
        assert!(toml::from_str::<Config>("round_robin = true").unwrap().round_robin);
    }
}

//! Settings every protocol understands in its own way ([`GenericSettings`]):
//! the simulator's and the benchmark's generic flags. Each protocol maps
//! them onto its own config ([`Protocol::apply_settings`]), so a host or a
//! command line never maps them by hand.
//!
//! [`Protocol::apply_settings`]: crate::machine::Protocol::apply_settings

use std::time::Duration;

/// Generic settings; `None` (or false): the protocol's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenericSettings {
    /// How long a request may wait before the replicas (or the client)
    /// suspect whoever should order it: the protocol's main timeout.
    pub timeout: Option<Duration>,
    /// How long a client waits before sending its request again.
    pub client_retransmit: Option<Duration>,
    /// Most requests in one batch.
    pub max_batch: Option<usize>,
    /// Decisions (or instances) between checkpoints.
    pub checkpoint_period: Option<u64>,
    /// Order the dissemination instances round-robin instead of by an
    /// ordering instance (only protocols with such instances accept it).
    pub round_robin: bool,
}

impl GenericSettings {
    /// Check the values every protocol needs to hold; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err("--timeout must be positive".into());
        }
        if self.client_retransmit.is_some_and(|t| t.is_zero()) {
            return Err("--client-retransmit must be positive".into());
        }
        if self.max_batch == Some(0) {
            return Err("--batch must be at least 1".into());
        }
        if self.checkpoint_period == Some(0) {
            return Err("--checkpoint-period must be at least 1".into());
        }
        Ok(())
    }

    /// Whether nothing is set (every protocol's defaults).
    pub fn is_default(&self) -> bool {
        *self == GenericSettings::default()
    }
}

/// Overwrite a setting with a generic value, if it is set.
pub fn set<T>(setting: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *setting = v;
    }
}

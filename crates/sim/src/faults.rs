//! Faults a simulation injects, and the command-line syntax for them.
//!
//! A [`Fault`] is one scheduled or standing deviation from a healthy run:
//! a replica that crashes (and maybe recovers), a network partition that
//! heals, a Byzantine replica, a faulty client. Network-wide settings (loss,
//! global stabilisation time) live in [`crate::net::NetConfig`] instead.
//!
//! The parsers here ([`parse_duration`], [`Fault::parse_crash`], ...) accept
//! the syntax of the `quorate sim` flags and return errors that say what is
//! wrong, never panic.

use std::fmt;
use std::time::Duration;

/// A malformed fault or duration specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// One fault of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Replica `replica` crashes at `at`: its machine, timers and queued
    /// inputs are dropped and the network isolates it. Its durable records stay.
    Crash {
        /// The replica.
        replica: u32,
        /// Virtual time of the crash.
        at: Duration,
    },
    /// Replica `replica` restarts at `at` from its durable records
    /// (`Input::Recover`). Ignored if it is not crashed then.
    Recover {
        /// The replica.
        replica: u32,
        /// Virtual time of the restart.
        at: Duration,
    },
    /// From `from` until `until` (forever if `None`), replicas in different
    /// groups cannot talk. Replicas in no group, and all clients, reach everybody.
    Partition {
        /// Groups of replicas.
        groups: Vec<Vec<u32>>,
        /// Start.
        from: Duration,
        /// Heal time.
        until: Option<Duration>,
    },
    /// Replica `replica` runs the protocol's Byzantine `strategy` for the whole run.
    Byzantine {
        /// The replica.
        replica: u32,
        /// Strategy name from `Protocol::STRATEGIES`.
        strategy: String,
    },
    /// One extra client runs the protocol's faulty-client `strategy`. It uses
    /// the workload's faulty key namespace; its operations are not checked for
    /// linearizability or liveness.
    FaultyClient {
        /// Strategy name from `faulty_client::strategies::<P>()`.
        strategy: String,
    },
}

impl Fault {
    /// Parse `R@T` (e.g. `0@2s`) as a crash.
    pub fn parse_crash(s: &str) -> Result<Fault, ParseError> {
        let (replica, at) = parse_replica_at(s, "--crash")?;
        Ok(Fault::Crash { replica, at })
    }

    /// Parse `R@T` (e.g. `0@5s`) as a recovery.
    pub fn parse_recover(s: &str) -> Result<Fault, ParseError> {
        let (replica, at) = parse_replica_at(s, "--recover")?;
        Ok(Fault::Recover { replica, at })
    }

    /// Parse `R:STRATEGY` (e.g. `1:silent`) as a Byzantine replica. The
    /// strategy name is checked later, against the protocol.
    pub fn parse_byzantine(s: &str) -> Result<Fault, ParseError> {
        let (r, strategy) = s
            .split_once(':')
            .ok_or_else(|| ParseError(format!("--byzantine '{s}': expected REPLICA:STRATEGY, e.g. 1:silent")))?;
        let replica = parse_replica(r, "--byzantine", s)?;
        let strategy = strategy.trim();
        if strategy.is_empty() {
            return Err(ParseError(format!("--byzantine '{s}': empty strategy name")));
        }
        Ok(Fault::Byzantine { replica, strategy: strategy.to_string() })
    }

    /// Parse `G1|G2|...@T1..T2` where each group is a comma-separated list of
    /// replicas (e.g. `0,1|2,3@1s..4s`); `@T1` alone never heals.
    pub fn parse_partition(s: &str) -> Result<Fault, ParseError> {
        let err = |m: &str| ParseError(format!("--partition '{s}': {m} (expected e.g. 0,1|2,3@1s..4s)"));
        let (groups_s, times) = s.split_once('@').ok_or_else(|| err("missing '@TIME'"))?;
        let mut groups = Vec::new();
        for g in groups_s.split('|') {
            let mut group = Vec::new();
            for r in g.split(',') {
                group.push(parse_replica(r, "--partition", s)?);
            }
            groups.push(group);
        }
        if groups.len() < 2 {
            return Err(err("needs at least two groups separated by '|'"));
        }
        let (from, until) = match times.split_once("..") {
            Some((a, b)) => (parse_duration(a)?, Some(parse_duration(b)?)),
            None => (parse_duration(times)?, None),
        };
        if let Some(u) = until {
            if u <= from {
                return Err(err("the heal time must be after the start"));
            }
        }
        Ok(Fault::Partition { groups, from, until })
    }

    /// The replicas this fault makes faulty (for the f budget): crashed and
    /// Byzantine replicas; partitions and clients count for none.
    pub fn faulty_replica(&self) -> Option<u32> {
        match self {
            Fault::Crash { replica, .. } | Fault::Byzantine { replica, .. } => Some(*replica),
            _ => None,
        }
    }

    /// The latest virtual time at which this fault changes anything
    /// (crash, recovery, partition start or heal).
    pub fn last_change(&self) -> Option<Duration> {
        match self {
            Fault::Crash { at, .. } | Fault::Recover { at, .. } => Some(*at),
            Fault::Partition { from, until, .. } => Some(until.unwrap_or(*from)),
            Fault::Byzantine { .. } | Fault::FaultyClient { .. } => None,
        }
    }

    /// The fault as `quorate sim` flags (one flag and its value).
    pub fn to_flag(&self) -> String {
        match self {
            Fault::Crash { replica, at } => format!("--crash {replica}@{}", format_duration(*at)),
            Fault::Recover { replica, at } => format!("--recover {replica}@{}", format_duration(*at)),
            Fault::Partition { groups, from, until } => {
                let g: Vec<String> =
                    groups.iter().map(|g| g.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",")).collect();
                match until {
                    Some(u) => {
                        format!("--partition {}@{}..{}", g.join("|"), format_duration(*from), format_duration(*u))
                    }
                    None => format!("--partition {}@{}", g.join("|"), format_duration(*from)),
                }
            }
            Fault::Byzantine { replica, strategy } => format!("--byzantine {replica}:{strategy}"),
            Fault::FaultyClient { strategy } => format!("--faulty-client {strategy}"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { replica, at } => write!(f, "crash r{replica} at {}", format_duration(*at)),
            Fault::Recover { replica, at } => write!(f, "recover r{replica} at {}", format_duration(*at)),
            Fault::Partition { groups, from, until } => {
                write!(f, "partition {groups:?} from {}", format_duration(*from))?;
                match until {
                    Some(u) => write!(f, " until {}", format_duration(*u)),
                    None => write!(f, " (never heals)"),
                }
            }
            Fault::Byzantine { replica, strategy } => write!(f, "byzantine r{replica} '{strategy}'"),
            Fault::FaultyClient { strategy } => write!(f, "faulty client '{strategy}'"),
        }
    }
}

fn parse_replica(s: &str, flag: &str, whole: &str) -> Result<u32, ParseError> {
    let t = s.trim();
    t.parse::<u32>().map_err(|_| ParseError(format!("{flag} '{whole}': '{t}' is not a replica number")))
}

fn parse_replica_at(s: &str, flag: &str) -> Result<(u32, Duration), ParseError> {
    let (r, t) =
        s.split_once('@').ok_or_else(|| ParseError(format!("{flag} '{s}': expected REPLICA@TIME, e.g. 0@2s")))?;
    let replica = parse_replica(r, flag, s)?;
    let at = parse_duration(t).map_err(|e| ParseError(format!("{flag} '{s}': {e}")))?;
    Ok((replica, at))
}

/// Parse a duration with a unit: `10s`, `500ms`, `2m`, `1.5s`, `250us`,
/// `100ns`, `1h`; a bare `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(ParseError(format!("duration '{t}': expected a number with a unit, e.g. 10s, 500ms, 2m")));
    }
    let value: f64 = num.parse().map_err(|_| ParseError(format!("duration '{t}': '{num}' is not a number")))?;
    let ns_per_unit: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "" => return Err(ParseError(format!("duration '{t}': missing unit (ns, us, ms, s, m, h)"))),
        other => return Err(ParseError(format!("duration '{t}': unknown unit '{other}' (ns, us, ms, s, m, h)"))),
    };
    let ns = value * ns_per_unit;
    if !ns.is_finite() || ns < 0.0 || ns > u64::MAX as f64 {
        return Err(ParseError(format!("duration '{t}' is out of range")));
    }
    Ok(Duration::from_nanos(ns.round() as u64))
}

/// Render a duration in the syntax [`parse_duration`] reads back exactly.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let units = [(1_000_000_000u128, "s"), (1_000_000, "ms"), (1_000, "us")];
    if ns == 0 {
        return "0".to_string();
    }
    for (per, unit) in units {
        let (whole, rest) = (ns / per, ns % per);
        if rest == 0 {
            return format!("{whole}{unit}");
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "10", "10x", "-1s", "1..2s", "1e999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in [Duration::from_secs(3), Duration::from_millis(1500), Duration::from_nanos(7), Duration::ZERO] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn fault_flags_round_trip() {
        let c = Fault::parse_crash("0@2s").unwrap();
        assert_eq!(c, Fault::Crash { replica: 0, at: Duration::from_secs(2) });
        assert_eq!(
            Fault::parse_recover("3@1500ms").unwrap(),
            Fault::Recover { replica: 3, at: Duration::from_millis(1500) }
        );
        let p = Fault::parse_partition("0,1|2,3@1s..4s").unwrap();
        assert_eq!(
            p,
            Fault::Partition {
                groups: vec![vec![0, 1], vec![2, 3]],
                from: Duration::from_secs(1),
                until: Some(Duration::from_secs(4))
            }
        );
        assert_eq!(
            Fault::parse_byzantine("2:silent").unwrap(),
            Fault::Byzantine { replica: 2, strategy: "silent".into() }
        );
        for f in [c, p, Fault::parse_partition("0|1,2@3s").unwrap()] {
            let flag = f.to_flag();
            let value = flag.split_once(' ').unwrap().1;
            let back = match &f {
                Fault::Crash { .. } => Fault::parse_crash(value),
                Fault::Partition { .. } => Fault::parse_partition(value),
                _ => unreachable!(),
            };
            assert_eq!(back.unwrap(), f);
        }
        for bad in ["0", "x@1s", "0@", "0@1"] {
            assert!(Fault::parse_crash(bad).is_err(), "{bad}");
        }
        for bad in ["0,1@1s", "0,1|2@", "0,1|2@2s..1s", "0,a|2@1s", "0|1"] {
            assert!(Fault::parse_partition(bad).is_err(), "{bad}");
        }
        for bad in ["1", "x:silent", "1:"] {
            assert!(Fault::parse_byzantine(bad).is_err(), "{bad}");
        }
    }
}

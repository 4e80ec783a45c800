//! `quorate sim` end to end: flags, errors, JSON, exit codes, campaigns.

use std::process::{Command, Output};

fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate")).args(args).output().expect("run quorate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn list_faults() {
    let o = quorate(&["sim", "--list-faults"]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    assert!(s.contains("--crash R@T") && s.contains("Byzantine replica strategies of mod-smart"), "{s}");
}

#[test]
fn bad_flags_are_clear_errors() {
    for (args, want) in [
        (vec!["sim", "--crash", "9@1s"], "replica 9"),
        (vec!["sim", "--byzantine", "1:no-such-strategy"], "no replica strategy 'no-such-strategy'"),
        (vec!["sim", "--faulty-client", "nope"], "no client strategy 'nope'"),
        (vec!["sim", "--regions", "us-east-1,mars-1,eu-west-1,ap-south-1"], "mars-1"),
        (vec!["sim", "--regions", "us-east-1"], "one per replica"),
        (vec!["sim", "--protocol", "paxos"], "unknown protocol 'paxos'"),
        (vec!["sim", "--duration", "10"], "missing unit"),
        (vec!["sim", "--loss", "1.5"], "not in [0, 1]"),
        (vec!["sim", "--n", "3"], "cannot tolerate"),
        (vec!["sim", "--timeout", "0"], "--timeout must be positive"),
    ] {
        let o = quorate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = text(&o.stderr);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn json_single_run() {
    let o = quorate(&["sim", "--duration", "2s", "--clients", "3", "--seed", "5", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for key in [
        "protocol",
        "n",
        "f",
        "seed",
        "completed",
        "throughput_ops",
        "latency_ms",
        "safety_violations",
        "linearizable",
        "liveness_ok",
        "messages",
        "bytes",
        "trace_digest",
        "events",
        "wall_ms",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for p in ["p50", "p90", "p99"] {
        assert!(v["latency_ms"][p].is_number());
    }
    assert_eq!(v["protocol"], "mod-smart");
    assert_eq!(v["n"], 4);
    assert_eq!(v["seed"], 5);
    assert_eq!(v["safety_violations"], 0);
    assert_eq!(v["linearizable"], true);
    assert!(v["completed"].as_u64().unwrap() > 100);
    // A LAN run has no per-region latency, and no warm-up unless asked for.
    assert_eq!(v["latency_by_region"], serde_json::json!({}));
    assert_eq!(v["warmup_s"], 0.0);
    // The same seed gives the same trace.
    let again = quorate(&["sim", "--duration", "2s", "--clients", "3", "--seed", "5", "--json"]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["trace_digest"], w["trace_digest"]);
}

#[test]
fn failing_run_exits_1_with_replay_command() {
    // Two of four replicas crash for good: beyond f, no progress, liveness fails.
    let o = quorate(&[
        "sim",
        "--duration",
        "5s",
        "--crash",
        "1@500ms",
        "--crash",
        "2@500ms",
        "--liveness-bound",
        "2s",
        "--seed",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let s = text(&o.stdout);
    assert!(s.contains("liveness FAILED"), "{s}");
    assert!(
        s.contains("replay: quorate sim --duration 5s --crash 1@500ms --crash 2@500ms --liveness-bound 2s --seed 3"),
        "{s}"
    );
    assert!(s.contains("warning: 2 faulty replicas"), "{s}");
}

#[test]
fn campaign_json() {
    let o = quorate(&["sim", "--campaign", "--seeds", "2", "--duration", "3s", "--liveness-bound", "2s", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["runs"], 2);
    for key in ["safety_violations", "liveness_failures", "failing_seeds"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let failing = v["failing_seeds"].as_array().unwrap().len();
    assert_eq!(o.status.code(), Some(if failing == 0 { 0 } else { 1 }));
}

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
    // Every protocol has the core's generic faulty clients, then its own.
    for (protocol, own) in [("dqbft", "duplicate-requests"), ("ezbft", "never-commit"), ("pbft", "bad-signature")] {
        let o = quorate(&["sim", "--protocol", protocol, "--list-faults"]);
        assert!(o.status.success());
        let s = text(&o.stdout);
        let clients = s.split("Faulty client strategies").nth(1).unwrap_or_default();
        for name in ["bad-signature", "reuse-seq", "split-requests", own] {
            assert!(clients.contains(name), "{protocol}: {name} missing: {s}");
        }
    }
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
        (vec!["sim", "--n", "3"], "mod-smart needs n >= 3f+1 (bft); got n = 3, f = 1"),
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
    let o = quorate(&["sim", "--duration", "2s", "--liveness-bound", "1s", "--clients", "3", "--seed", "5", "--json"]);
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
    let again =
        quorate(&["sim", "--duration", "2s", "--liveness-bound", "1s", "--clients", "3", "--seed", "5", "--json"]);
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

/// A linearizability check that gives up fails the run: exit status 1.
#[test]
fn undecided_linearizability_exits_1() {
    let args = [
        "sim",
        "--duration",
        "2s",
        "--contention",
        "1.0",
        "--lin-budget",
        "1",
        "--liveness-bound",
        "1s",
        "--seed",
        "4",
    ];
    let o = quorate(&args);
    let s = text(&o.stdout);
    assert!(s.contains("linearizability unknown"), "{s}");
    assert_eq!(o.status.code(), Some(1), "{s}");
    let o = quorate(&[&args[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["linearizability"], "unknown");
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn campaign_json() {
    let o = quorate(&["sim", "--campaign", "--seeds", "2", "--duration", "5s", "--liveness-bound", "2s", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["runs"], 2);
    for key in ["safety_violations", "liveness_failures", "failing_seeds"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let failing = v["failing_seeds"].as_array().unwrap().len();
    assert_eq!(o.status.code(), Some(if failing == 0 { 0 } else { 1 }));
}

/// Issue 17: Destiny's f+1 quorums split 4 replicas into two halves that
/// decide alone; the simulator refuses n = 4, f = 1 before the run starts.
#[test]
fn destiny_with_four_replicas_is_refused_before_the_run() {
    let o = quorate(&[
        "sim",
        "--protocol",
        "destiny",
        "--n",
        "4",
        "--f",
        "1",
        "--partition",
        "0,1|2,3@1s..6s",
        "--duration",
        "10s",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "no report: {}", text(&o.stdout));
    let e = text(&o.stderr);
    assert!(e.contains("destiny needs n = 2f+1; got n = 4, f = 1"), "{e}");
    // EZBFT likewise beyond 3f+1.
    let o = quorate(&["sim", "--protocol", "ezbft", "--n", "5", "--duration", "2s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("ezbft needs n = 3f+1; got n = 5, f = 1"), "{}", text(&o.stderr));
}

/// `quorate keygen` refuses a pair the protocol does not accept, and
/// without --f picks the f the protocol accepts for that n (or refuses).
#[test]
fn keygen_refuses_what_the_protocol_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k");
    let out = out.to_str().unwrap();
    for (args, want) in [
        (vec!["--protocol", "destiny", "--replicas", "4", "--f", "1"], "destiny needs n = 2f+1; got n = 4, f = 1"),
        (
            vec!["--protocol", "destiny", "--replicas", "4"],
            "destiny accepts no f for 4 replicas: destiny needs n = 2f+1",
        ),
        (vec!["--protocol", "ezbft", "--replicas", "5"], "ezbft accepts no f for 5 replicas: ezbft needs n = 3f+1"),
        (vec!["--protocol", "pbft", "--replicas", "4", "--f", "2"], "pbft needs n >= 3f+1; got n = 4, f = 2"),
    ] {
        let o = quorate(&[&["keygen", "--out", out, "--clients", "1"][..], &args].concat());
        assert!(!o.status.success(), "{args:?}");
        let e = text(&o.stderr);
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(!std::path::Path::new(out).join("cluster.toml").exists(), "{args:?} wrote a cluster file");
    }
    // Accepted sizes: the most faults the protocol allows.
    for (protocol, n, f) in [("destiny", "5", 2), ("pbft", "6", 1), ("mod-smart", "5", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("k");
        let o = quorate(&[
            "keygen",
            "--protocol",
            protocol,
            "--replicas",
            n,
            "--clients",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{protocol}: {}", text(&o.stderr));
        let t = std::fs::read_to_string(out.join("cluster.toml")).unwrap();
        assert!(t.contains(&format!("f = {f}")), "{protocol} n = {n}: {t}");
    }
}

/// A cluster file whose (n, f) the protocol does not accept is refused by
/// `quorate replica` before it starts, and `quorate cluster` refuses such a
/// size before it spawns anything.
#[test]
fn replica_and_cluster_refuse_what_the_protocol_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k");
    let o =
        quorate(&["keygen", "--protocol", "pbft", "--replicas", "4", "--clients", "1", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let path = out.join("cluster.toml");
    let t = std::fs::read_to_string(&path).unwrap();
    assert!(t.contains("\nf = 1\n"), "{t}");
    std::fs::write(&path, t.replace("\nf = 1\n", "\nf = 2\n")).unwrap();
    let o = quorate(&["replica", "--config", path.to_str().unwrap(), "--id", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("pbft needs n >= 3f+1; got n = 4, f = 2"), "{e}");

    let work = dir.path().join("c");
    let o = quorate(&["cluster", "--protocol", "destiny", "--replicas", "4", "--dir", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("destiny accepts no f for 4 replicas: destiny needs n = 2f+1; got n = 4, f = 1"), "{e}");
    assert!(!work.join("logs").exists(), "nothing started");
}

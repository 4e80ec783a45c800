//! Destiny on real processes with dealt threshold BLS keys (`quorate
//! keygen` deals them; every replica loads its own, clients the group's
//! public file): 2f+1 = 3 replicas serve a workload, the O-primary (also
//! the coordinator of D-instance 0) is killed under load and the other two
//! (f+1) carry on, a restarted backup (its trusted counters back at 0) and
//! the leader carry on without the third, and a replica with missing,
//! garbled or another replica's threshold key files refuses to start.
//! Every history (with final ordered reads) must be linearizable.

mod common;

use common::{final_reads, finish, runtime, serial, wait_until, Cluster, History, Load, DEADLINE, LOAD_CLIENTS};
use quorate_dqbft::Destiny;
use std::process::Command;
use std::time::{Duration, Instant};

/// Final reads by client 5.
const READER: u64 = 5;

/// Three replicas serve closed-loop clients: answers are threshold-signed
/// with the dealt keys (a client checks them with the group's public file),
/// every replica executes, no share, certificate or signature is rejected,
/// and the history is linearizable.
#[test]
fn three_replicas_serve_a_workload() {
    let _serial = serial();
    let mut cluster = Cluster::new("destiny-load", "destiny", 3, 8, 4, |t| t);
    for i in 0..3 {
        for file in [format!("replica-{i}.threshold-trusted.key"), format!("replica-{i}.threshold-untrusted.key")] {
            let path = cluster.dir().join("keys").join(file);
            let mode =
                std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).expect("key file").permissions());
            assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
        }
    }
    assert!(cluster.dir().join("keys/threshold-group.pub").exists());
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Destiny>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    load.wait_more(200, "fault free");
    wait_until("every replica executes requests", DEADLINE, || {
        (0..3).all(|i| cluster.metric_now(i, "quorate_executed_requests_total") >= 100.0)
    });
    let (done, failed) = (load.completed(), load.failed());
    let mut history = load.stop(&rt);
    for i in 0..3 {
        cluster.assert_running(i);
        let text = cluster.scrape(i).expect("metrics");
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("quorate_rejected_total{"))
            .filter(|l| ["bad ", "share", "certificate", "signature"].iter().any(|w| l.contains(w)))
            .collect();
        assert!(bad.is_empty(), "replica {i} rejected authenticators: {bad:?}");
    }
    final_reads::<Destiny>(&rt, &cluster.cfg, READER, start, &mut history);
    eprintln!("{done} operations completed, {failed} timed out");
    common::assert_linearizable(&history);
}

/// The O-primary (also the coordinator of D-instance 0) is killed under
/// load: the two others (f+1 of 2f+1) change views and keep serving.
#[test]
fn the_o_primary_killed_under_load_is_replaced() {
    common::leader_killed_under_load_of::<Destiny>("destiny-kill", "destiny", 3, READER);
}

/// A backup is killed under load and restarted: it reloads its key files,
/// so its trusted subsystem's counters start at 0 again (decision 0008: not
/// persisted) and its durable log alone keeps it from signing anything
/// differently. Then the other backup is killed: the leader and the
/// restarted replica (f+1) must carry on together.
#[test]
fn a_restarted_backup_carries_on_with_the_leader() {
    let _serial = serial();
    let mut cluster = Cluster::new("destiny-restart", "destiny", 3, 8, 4, |t| t);
    cluster.start_all();
    let rt = runtime();
    let start = Instant::now();
    let load = Load::start::<Destiny>(&rt, &cluster.cfg, LOAD_CLIENTS, start);
    load.wait_more(100, "before the first crash");
    let leader = cluster.leader();
    let backups: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (victim, other) = (backups[1], backups[0]);
    cluster.kill(victim);
    load.wait_more(50, "with one backup down");
    cluster.start(victim);
    load.wait_more(50, "after the backup restarted");
    cluster.kill(other);
    load.wait_more(50, "with the restarted backup needed");
    finish::<Destiny>(&rt, &mut cluster, load, &[leader, victim], History::new(), READER, start);
}

/// `quorate replica` with `file` replaced by `content` (None: removed):
/// it must exit at once with an error naming the problem.
fn refuses(cluster: &Cluster, file: &str, content: Option<&[u8]>, expected: &str) {
    let path = cluster.dir().join("keys").join(file);
    let saved = std::fs::read(&path).expect("key file");
    match content {
        Some(c) => std::fs::write(&path, c).expect("write key file"),
        None => std::fs::remove_file(&path).expect("remove key file"),
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["replica", "--config"])
        .arg(&cluster.config_path)
        .args(["--id", "0", "--log-level", "warn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a replica");
    let t = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("replica 0 started with {file} {content:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("replica output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "replica 0 exited successfully with a bad {file}");
    assert!(stderr.contains(expected), "{file}: expected '{expected}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    std::fs::write(&path, saved).expect("restore key file");
}

/// Hex text without its last four bytes (still hex, no longer a key).
fn truncated(hex_text: &[u8]) -> Vec<u8> {
    let t = String::from_utf8_lossy(hex_text).trim().to_string();
    t.as_bytes()[..t.len() - 8].to_vec()
}

/// Missing, garbled, truncated, swapped and foreign threshold key files:
/// the replica refuses to start with a clear error (never a panic, never
/// the simulator's modelled keys).
#[test]
fn a_replica_with_bad_threshold_keys_refuses_to_start() {
    let cluster = Cluster::new("destiny-bad-keys", "destiny", 3, 1, 1, |t| t);
    let keys = cluster.dir().join("keys");
    let read = |f: &str| std::fs::read(keys.join(f)).expect("key file");
    let write = |f: &str, c: &[u8]| std::fs::write(keys.join(f), c).expect("write key file");
    let (trusted, untrusted, public) =
        ("replica-0.threshold-trusted.key", "replica-0.threshold-untrusted.key", "threshold-group.pub");
    refuses(&cluster, trusted, None, "replica-0.threshold-trusted.key: No such file");
    refuses(&cluster, untrusted, None, "replica-0.threshold-untrusted.key: No such file");
    refuses(&cluster, public, None, "threshold-group.pub: No such file");
    refuses(&cluster, trusted, Some(b"not hex\n"), "not hex");
    refuses(&cluster, trusted, Some(&truncated(&read(trusted))), "trusted key file");
    refuses(&cluster, untrusted, Some(&truncated(&read(untrusted))), "untrusted key file");
    refuses(&cluster, public, Some(&truncated(&read(public))), "group public file");
    // Replica 1's untrusted keys beside replica 0's trusted ones, then both of replica 1's.
    let u1 = read("replica-1.threshold-untrusted.key");
    refuses(&cluster, untrusted, Some(&u1), "trusted keys are ReplicaId(0)'s, untrusted keys ReplicaId(1)'s");
    let u0 = read(untrusted);
    write(untrusted, &u1);
    let t1 = read("replica-1.threshold-trusted.key");
    refuses(&cluster, trusted, Some(&t1), "are ReplicaId(1)'s, expected ReplicaId(0)'s");
    // Replica 0's keys of another deal for the same cluster shape.
    let other = Cluster::new("destiny-other-deal", "destiny", 3, 1, 1, |t| t);
    let other_key = |f: &str| std::fs::read(other.dir().join("keys").join(f)).expect("key file");
    write(untrusted, &other_key(untrusted));
    refuses(&cluster, trusted, Some(&other_key(trusted)), "key does not match the group's public key");
    write(untrusted, &u0);
    // The public file of a group dealt for 5 replicas.
    let five = Cluster::new("destiny-five", "destiny", 5, 1, 1, |t| t);
    let five_public = std::fs::read(five.dir().join("keys").join(public)).expect("key file");
    refuses(&cluster, public, Some(&five_public), "expected n = 3");
    // The files as dealt: the checks pass (the replica gets as far as running).
    let mut child = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(["replica", "--config"])
        .arg(&cluster.config_path)
        .args(["--id", "0", "--log-level", "warn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a replica");
    wait_until("replica 0 serves metrics", DEADLINE, || {
        assert!(child.try_wait().expect("try_wait").is_none(), "replica 0 exited with its own keys");
        cluster.scrape(0).is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
}

//! The holes decision 0006 recorded, each exercised by a faulty replica in
//! the simulator (n = 4, f = 1), at contention 0.2 with gets: no safety
//! violation, linearizable histories, and clients keep completing
//! operations after the fault.

use crate::messages::{InstanceId, Msg};
use crate::{Config, Ezbft};
use quorate_apps::kv::{KvOp, KvStore};
use quorate_core::crypto::Ed25519Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{Effect, Input, Outbox, ReplicaContext, ReplicaMachine};
use quorate_core::membership::{FaultModel, Membership};
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use quorate_sim::{run, Fault, Report, Scenario};
use std::sync::Arc;
use std::time::Duration;

/// How the owner change of space 0 (whose new owner is replica 1) is brought about.
#[derive(Clone, Copy)]
enum Trigger {
    /// A client of replica 0 never commits: commands that depend on its ones
    /// wait, and the replicas suspect space 0 (again after each reopening).
    NeverCommittingClient,
    /// Replica 0 is cut off from 2 s to 6 s: its clients and the others suspect it.
    Partition,
    /// Nothing but the faulty replica itself.
    None,
}

/// Run length and liveness bound (every operation invoked before length − bound is judged).
const SECS: u64 = 20;
const BOUND: u64 = 8;
/// Faults start by 2 s; operations invoked after this must complete.
const AFTER_FAULT_S: f64 = 8.0;

fn run_with(strategy: &str, replica: u32, trigger: Trigger, seed: u64) -> Report {
    run_for(strategy, replica, trigger, seed, SECS, BOUND)
}

fn run_for(strategy: &str, replica: u32, trigger: Trigger, seed: u64, secs: u64, bound: u64) -> Report {
    // 8 correct clients sit round-robin at the replicas: the faulty one (the 9th) at replica 0.
    let mut sc = Scenario::<Ezbft>::new(1).with_seed(seed).with_clients(8).with_duration(Duration::from_secs(secs));
    sc.workload =
        std::sync::Arc::new(quorate_sim::workload::Kv { payload: 16, contention: 0.2, read_only_gets: false });
    sc.liveness_bound = Some(Duration::from_secs(bound));
    sc.timeline = true;
    sc.faults.push(Fault::Byzantine { replica, strategy: strategy.to_string() });
    match trigger {
        Trigger::NeverCommittingClient => sc.faults.push(Fault::FaultyClient { strategy: "never-commit".into() }),
        Trigger::Partition => sc.faults.push(Fault::Partition {
            groups: vec![vec![0], vec![1, 2, 3]],
            from: Duration::from_secs(2),
            until: Some(Duration::from_secs(6)),
        }),
        Trigger::None => {}
    }
    run(sc).expect("valid scenario")
}

fn sent(r: &Report, kind: &str) -> u64 {
    r.messages_by_kind.get(kind).map_or(0, |k| k.count)
}

/// Safe, linearizable, live, and progressing after the fault.
fn assert_safe_and_live(r: &Report, what: &str) {
    assert_eq!(r.safety_violations, 0, "{what}: violations: {:?}", r.violations);
    assert!(r.linearizable, "{what}: not linearizable: {:?}", r.linearizability_detail);
    assert!(r.liveness_judged && r.liveness_ok, "{what}: liveness: {:?}", r.liveness_detail);
    let after = r.timeline.iter().filter(|p| p.invoke_s > AFTER_FAULT_S).count();
    assert!(after > 100, "{what}: only {after} operations completed after {AFTER_FAULT_S} s");
}

/// §IV-E (owner change): "the new owner ... sends NEWOWNER" with the 2f+1
/// views, and every replica computes G from them. A faulty new owner picks
/// two sets of views whose G differ and sends one to each half; replicas
/// agree on one NEWOWNER before installing it (decision 0006), so the two
/// halves cannot settle the space differently.
#[test]
fn a_new_owner_sending_different_valid_newowners_cannot_split_the_settled_history() {
    for (trigger, seed) in
        [(Trigger::NeverCommittingClient, 1), (Trigger::NeverCommittingClient, 2), (Trigger::Partition, 3)]
    {
        let r = run_with("split-newowner", 1, trigger, seed);
        assert!(sent(&r, "NEWOWNER") > 0, "seed {seed}: no owner change of space 0 happened");
        assert_safe_and_live(&r, &format!("split-newowner, seed {seed}"));
    }
}

/// §IV-E, settlement rule (3) of decision 0006: f+1 identical SPECREPLY
/// bodies settle a slot. A faulty new owner copies one correct replica's
/// bodies into its own view (f faulty + 1 correct meet the rule), a
/// different correct replica's for each half of the replicas.
#[test]
fn f_faulty_replicas_copying_one_correct_reply_cannot_settle_a_slot_differently() {
    for (trigger, seed) in
        [(Trigger::NeverCommittingClient, 1), (Trigger::NeverCommittingClient, 4), (Trigger::Partition, 5)]
    {
        let r = run_with("settle-rule3", 1, trigger, seed);
        assert!(sent(&r, "NEWOWNER") > 0, "seed {seed}: no owner change of space 0 happened");
        assert_safe_and_live(&r, &format!("settle-rule3, seed {seed}"));
    }
}

/// §IV-A/§IV-B: D is "the set of interfering commands", and the paper's
/// argument covers omitted ones only. A faulty replica adds dependencies
/// on commands that do not interfere, as command-leader (in its
/// SPECORDERs) and as participant (in its SPECREPLYs). Safe: every replica
/// commits the same D (commit agreement), and more edges cannot separate
/// interfering commands.
#[test]
fn spurious_dependencies_in_specorders_and_specreplies_are_harmless() {
    for (replica, seed) in [(0, 1), (2, 2)] {
        let r = run_with("spurious-deps", replica, Trigger::None, seed);
        assert!(sent(&r, "COMMIT") > 0, "the faulty replies cannot match: the slow path runs");
        assert_safe_and_live(&r, &format!("spurious-deps at {replica}, seed {seed}"));
    }
}

/// Spurious dependencies on slots nobody has ordered yet (the next two of
/// every space). Committed, they chained every command to the next ones of
/// every space and final execution stalled while the spaces were busy.
/// Final execution now follows a dependency only between interfering
/// commands (or a client's earlier request), and never to a later slot of
/// the command's own space (decision 0006): safe, and live.
#[test]
fn spurious_dependencies_on_slots_not_yet_ordered_are_safe_and_live() {
    for (replica, seed) in [(0, 1), (0, 2), (2, 1), (2, 2)] {
        let r = run_with("spurious-future-deps", replica, Trigger::None, seed);
        let what = format!("spurious-future-deps at {replica}, seed {seed}");
        assert!(sent(&r, "COMMIT") > 0, "{what}: the faulty replies cannot match: the slow path runs");
        assert_safe_and_live(&r, &what);
    }
}

/// The strategy the test above runs does fire: as command-leader of the
/// first request anyone orders, the faulty replica's SPECORDER and SPECREPLY
/// name slots that nobody has ordered (the first two of every other space,
/// and the two after its own), where a correct replica names none.
#[test]
fn the_spurious_future_deps_strategy_names_slots_nobody_ordered() {
    let m = Membership::new(4, 1, FaultModel::Byzantine, 4).unwrap();
    let mut nodes: Vec<NodeId> = (0..4).map(|i| ReplicaId(i).into()).collect();
    nodes.push(NodeId::Client(ClientId(1)));
    let keys: Vec<Arc<Ed25519Crypto>> = Ed25519Crypto::deterministic(3, &nodes).into_iter().map(Arc::new).collect();
    let op = KvOp::Put { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"v") };
    let req = Request { client: ClientId(1), seq: 1, op: op.encode(), read_only: false };
    let req = SignedRequest::sign(req, keys[4].as_ref());
    let mut named = Vec::new();
    for strategy in [None, Some("spurious-future-deps")] {
        let ctx = ReplicaContext {
            id: ReplicaId(0),
            membership: m.clone(),
            crypto: keys[0].clone(),
            service: Box::new(KvStore::new()),
            keys: (),
        };
        let mut r: Box<dyn ReplicaMachine<Ezbft>> = match strategy {
            None => Box::new(crate::replica::Replica::new(ctx, Config::default())),
            Some(s) => crate::byzantine::replica(s, ctx, &Config::default()).unwrap(),
        };
        let mut out: Outbox<Ezbft> = Outbox::new();
        let from = NodeId::Client(ClientId(1));
        r.handle(Time(1), Input::Message { from, msg: Msg::Request(req.clone()) }, &mut out);
        let mut deps = Vec::new();
        for e in out.drain() {
            match e {
                Effect::Broadcast { msg: Msg::SpecOrder { order, .. } } => deps.push(order.body.deps.clone()),
                Effect::Send { msg: Msg::SpecReply(r), .. } => deps.push(r.reply.body.deps.clone()),
                _ => {}
            }
        }
        assert_eq!(deps.len(), 2, "{strategy:?}: one SPECORDER and one SPECREPLY");
        named.push(deps);
    }
    let me = InstanceId { space: ReplicaId(0), slot: 0 };
    let unordered: Vec<InstanceId> = (0..4u32)
        .flat_map(|s| (0..3).map(move |slot| InstanceId { space: ReplicaId(s), slot }))
        .filter(|i| *i != me && (i.space != me.space || i.slot <= 2) && (i.space == me.space || i.slot < 2))
        .collect();
    assert!(named[0].iter().all(|d| d.is_empty()), "a correct leader names nothing: {:?}", named[0]);
    for d in &named[1] {
        assert_eq!(d, &unordered, "the faulty leader names every slot not ordered yet");
    }
}

/// §IV-A: S is "the maximum sequence number of D" plus one. A faulty
/// replica claims an S near the largest u64 in its SPECORDERs and
/// SPECREPLYs; the slow path takes the maximum, so later commands' S
/// saturate.
#[test]
fn an_inflated_sequence_number_is_harmless() {
    for (replica, seed) in [(0, 1), (2, 2)] {
        let r = run_with("inflated-seq", replica, Trigger::None, seed);
        assert!(sent(&r, "COMMIT") > 0, "the faulty replies cannot match: the slow path runs");
        assert_safe_and_live(&r, &format!("inflated-seq at {replica}, seed {seed}"));
    }
}

//! Differential test of our linearizability checker against an independent
//! one: stateright's `LinearizabilityTester` (decision 0013).
//!
//! A seeded generator simulates small linearizable executions of a KV map
//! and of a counter (2-4 clients, 1-3 keys, 4-12 operations, some left
//! pending), then mutates about half of them in ways that usually break
//! linearizability: a stale read, a lost write, a read of a value never
//! written, an operation taking effect outside its interval (real-time order
//! inverted). The label of each history is not the mutation but the verdict
//! of the two checkers, which must agree on every history; our checker must
//! also decide every one (Unknown is a failure).
//!
//! The stateright side gets its own sequential specifications written here
//! from the models' documentation, not our `Model` code, so a bug in our
//! models is caught too.

use std::collections::BTreeMap;
use std::fmt::Debug;

use quorate_apps::counter::CounterOp;
use quorate_sim::linearizability::{check, check_kv, KvMap, KvOp, KvRegister, KvRet, Model, Operation, Outcome};
use quorate_sim::workload::CounterModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// Search budget of our checker; the histories are tiny, so it is never reached.
const BUDGET: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Independent sequential specifications (stateright side)
// ---------------------------------------------------------------------------

/// A key-value map: get returns the value, put and delete the previous one,
/// cas whether it swapped.
#[derive(Clone, Debug, Default)]
struct SpecKv(BTreeMap<Vec<u8>, Vec<u8>>);

impl SequentialSpec for SpecKv {
    type Op = KvOp;
    type Ret = KvRet;
    fn invoke(&mut self, op: &KvOp) -> KvRet {
        match op {
            KvOp::Get(k) => KvRet::Value(self.0.get(k).cloned()),
            KvOp::Put(k, v) => KvRet::Value(self.0.insert(k.clone(), v.clone())),
            KvOp::Delete(k) => KvRet::Value(self.0.remove(k)),
            KvOp::Cas { key, expected, new } => {
                if self.0.get(key) == expected.as_ref() {
                    self.0.insert(key.clone(), new.clone());
                    KvRet::Cas(true)
                } else {
                    KvRet::Cas(false)
                }
            }
        }
    }
}

/// A counter: add returns the new value, get the current one.
#[derive(Clone, Debug, Default)]
struct SpecCounter(i64);

impl SequentialSpec for SpecCounter {
    type Op = CounterOp;
    type Ret = i64;
    fn invoke(&mut self, op: &CounterOp) -> i64 {
        if let CounterOp::Add(d) = op {
            self.0 = self.0.wrapping_add(*d);
        }
        self.0
    }
}

/// Stateright's verdict. Real time becomes the order of on_invoke/on_return
/// calls: events sorted by time, a return before a call at the same instant
/// (our checker's rule for operations of non-zero duration, the only kind
/// generated). A pending operation is invoked and never returned, which
/// stateright, like ours, lets take effect after its call or not at all.
fn stateright_linearizable<S>(init: S, h: &[Operation<S::Op, S::Ret>]) -> bool
where
    S: SequentialSpec + Clone,
    S::Op: Clone + Debug,
    S::Ret: Clone + Debug + PartialEq,
{
    // (time, 0 = return / 1 = call, operation)
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, o) in h.iter().enumerate() {
        events.push((o.call, 1, i));
        if let Some((r, _)) = &o.ret {
            assert!(*r > o.call, "generator made a zero-duration operation");
            events.push((*r, 0, i));
        }
    }
    events.sort_unstable();
    let mut tester = LinearizabilityTester::new(init);
    for (_, kind, i) in events {
        let o = &h[i];
        let fed = match (kind, &o.ret) {
            (1, _) => tester.on_invoke(o.client, o.op.clone()).map(|_| ()),
            (_, Some((_, r))) => tester.on_return(o.client, r.clone()).map(|_| ()),
            (_, None) => unreachable!("returns are only pushed for completed operations"),
        };
        if let Err(e) = fed {
            panic!("generator made a history stateright rejects as malformed: {e}");
        }
    }
    tester.is_consistent()
}

/// The adapter gives stateright the semantics our checker documents, on
/// hand-made histories whose verdicts are known.
#[test]
fn stateright_adapter_on_known_histories() {
    let put = |v: &str| KvOp::Put(b"x".to_vec(), v.as_bytes().to_vec());
    let get = || KvOp::Get(b"x".to_vec());
    let val = |v: Option<&str>| KvRet::Value(v.map(|v| v.as_bytes().to_vec()));
    let sr = |h: &[Operation<KvOp, KvRet>]| stateright_linearizable(SpecKv::default(), h);
    // Stale read after a completed write.
    let h = [
        Operation::completed(1, 0, 10, put("1"), val(None)),
        Operation::completed(1, 20, 30, put("2"), val(Some("1"))),
        Operation::completed(2, 40, 50, get(), val(Some("1"))),
    ];
    assert!(!sr(&h));
    // The same read concurrent with the second write may see either value.
    let h = [
        Operation::completed(1, 0, 10, put("1"), val(None)),
        Operation::completed(1, 20, 30, put("2"), val(Some("1"))),
        Operation::completed(2, 25, 50, get(), val(Some("1"))),
    ];
    assert!(sr(&h));
    // A return at t precedes a call at t.
    let h = [Operation::completed(1, 0, 10, put("1"), val(None)), Operation::completed(2, 10, 20, get(), val(None))];
    assert!(!sr(&h));
    // A pending write may take effect, or not, but only after its call.
    for seen in [None, Some("1")] {
        let h = [Operation::pending(1, 0, put("1")), Operation::completed(2, 10, 20, get(), val(seen))];
        assert!(sr(&h));
    }
    let h = [Operation::completed(2, 10, 20, get(), val(Some("1"))), Operation::pending(1, 30, put("1"))];
    assert!(!sr(&h));
    // Once seen it cannot be undone.
    let h = [
        Operation::pending(1, 0, put("1")),
        Operation::completed(2, 10, 20, get(), val(Some("1"))),
        Operation::completed(2, 30, 40, get(), val(None)),
    ];
    assert!(!sr(&h));
    // Ours agrees on all of these (checked by the differential runs too).
    assert!(check_kv(&h, BUDGET).is_violation());
}

// ---------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------

/// What kind of history to generate: the operations, and the spec that
/// simulates the execution (it computes every observed result).
trait Family {
    type Spec: SequentialSpec<Op = Self::Op, Ret = Self::Ret> + Clone + Default + Debug;
    type Op: Clone + Debug;
    type Ret: Clone + Debug + PartialEq;
    /// Chance that a history is mutated, tuned so that about a third of
    /// the histories end up non-linearizable.
    const MUTATE: f64;
    fn random_op(rng: &mut ChaCha8Rng, keys: usize) -> Self::Op;
    /// Whether the op only observes (a candidate for a corrupted read).
    fn is_read(op: &Self::Op) -> bool;
    /// A result for a read that no execution of generated ops produces.
    fn never_written(op: &Self::Op) -> Self::Ret;
}

struct KvFamily;

fn kv_key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

/// Few values, so writes collide and reads are ambiguous: where shortcuts in
/// a checker are most likely to be wrong.
fn kv_value(rng: &mut ChaCha8Rng) -> Vec<u8> {
    format!("v{}", rng.gen_range(0..3)).into_bytes()
}

impl Family for KvFamily {
    type Spec = SpecKv;
    type Op = KvOp;
    type Ret = KvRet;
    const MUTATE: f64 = 0.5;
    fn random_op(rng: &mut ChaCha8Rng, keys: usize) -> KvOp {
        let key = kv_key(rng.gen_range(0..keys));
        match rng.gen_range(0..20) {
            0..=7 => KvOp::Get(key),
            8..=14 => KvOp::Put(key, kv_value(rng)),
            15..=16 => KvOp::Delete(key),
            _ => KvOp::Cas {
                key,
                expected: if rng.gen_bool(0.25) { None } else { Some(kv_value(rng)) },
                new: kv_value(rng),
            },
        }
    }
    fn is_read(op: &KvOp) -> bool {
        matches!(op, KvOp::Get(_))
    }
    fn never_written(_: &KvOp) -> KvRet {
        KvRet::Value(Some(b"never-written".to_vec()))
    }
}

struct CounterFamily;

impl Family for CounterFamily {
    type Spec = SpecCounter;
    type Op = CounterOp;
    type Ret = i64;
    // Counter mutations break linearizability more often: nearly every
    // value is observed by a later add.
    const MUTATE: f64 = 0.42;
    fn random_op(rng: &mut ChaCha8Rng, _keys: usize) -> CounterOp {
        match rng.gen_range(0..10) {
            0..=3 => CounterOp::Get,
            // Add(0) changes nothing (our model's read-only hint) and
            // negative adds make equal values reachable in several ways.
            4 => CounterOp::Add(0),
            5 => CounterOp::Add(-1),
            _ => CounterOp::Add(rng.gen_range(1..=2)),
        }
    }
    fn is_read(op: &CounterOp) -> bool {
        matches!(op, CounterOp::Get)
    }
    fn never_written(_: &CounterOp) -> i64 {
        // 12 adds of at most 2 stay far below.
        1_000_003
    }
}

/// How a generated history was tampered with (informational: the checkers
/// decide whether it is linearizable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mutation {
    None,
    /// A completed read returns the value of an older state.
    StaleRead,
    /// A completed write returns as if applied but leaves the state unchanged.
    LostWrite,
    /// A completed read returns a value nobody wrote.
    NeverWritten,
    /// An op takes effect before an op that returned before its call, or
    /// after one that was called after it returned.
    RealTimeInverted,
}

/// An operation of the simulated execution.
struct Planned<Op> {
    client: u64,
    call: u64,
    ret: Option<u64>,
    op: Op,
    /// When it takes effect (`None`: a pending op that never did).
    point: Option<u64>,
}

/// Interval ends are multiples of this, so that every interval has room for
/// a linearization point strictly inside it.
const TICK: u64 = 10;

/// A generated history and how it was made.
struct Generated<F: Family> {
    history: Vec<Operation<F::Op, F::Ret>>,
    mutation: Mutation,
}

/// Size of the generated histories.
#[derive(Clone, Copy)]
struct Shape {
    max_clients: u64,
    min_ops: usize,
    max_ops: usize,
}

/// The normal run's histories: 2-4 clients, 4-12 operations.
const SMALL: Shape = Shape { max_clients: 4, min_ops: 4, max_ops: 12 };
/// Larger ones for the long run (stateright's search, unmemoized, slows down fast beyond).
const LARGER: Shape = Shape { max_clients: 5, min_ops: 8, max_ops: 16 };

/// One history: simulate a linearizable execution, then maybe mutate it.
fn generate<F: Family>(rng: &mut ChaCha8Rng, shape: Shape) -> Generated<F> {
    let clients = rng.gen_range(2..=shape.max_clients);
    let keys = rng.gen_range(1..=3);
    let n = rng.gen_range(shape.min_ops..=shape.max_ops);
    let mut clock: Vec<u64> = (0..clients).map(|_| rng.gen_range(0..4) * TICK).collect();
    // Longest duration relative to the gaps: from mostly sequential to
    // everything overlapping.
    let longest = [2, 8, 20][rng.gen_range(0..3)];
    let mut plan: Vec<Planned<F::Op>> = Vec::with_capacity(n);
    for _ in 0..n {
        let client = rng.gen_range(0..clients);
        let call = clock[client as usize] + rng.gen_range(0..4) * TICK;
        let ret = call + rng.gen_range(1..=longest) * TICK;
        clock[client as usize] = ret;
        let point = rng.gen_range(call + 1..ret);
        plan.push(Planned { client, call, ret: Some(ret), op: F::random_op(rng, keys), point: Some(point) });
    }
    // Some clients crash in their last operation: it may or may not take
    // effect, at any time after its call.
    for c in 0..clients {
        if let Some(last) = plan.iter_mut().rfind(|p| p.client == c) {
            if rng.gen_bool(0.2) {
                last.ret = None;
                last.point = if rng.gen_bool(0.5) { Some(last.call + 1 + rng.gen_range(0..20 * TICK)) } else { None };
            }
        }
    }

    let mut mutation = Mutation::None;
    let mut lost = None;
    let mut corrupt_read = None;
    if rng.gen_bool(F::MUTATE) {
        let completed_reads: Vec<usize> =
            (0..plan.len()).filter(|&i| plan[i].ret.is_some() && F::is_read(&plan[i].op)).collect();
        let completed_writes: Vec<usize> =
            (0..plan.len()).filter(|&i| plan[i].ret.is_some() && !F::is_read(&plan[i].op)).collect();
        match rng.gen_range(0..4) {
            0 | 1 if !completed_reads.is_empty() => {
                let r = completed_reads[rng.gen_range(0..completed_reads.len())];
                mutation = if rng.gen_bool(0.5) { Mutation::StaleRead } else { Mutation::NeverWritten };
                corrupt_read = Some(r);
            }
            2 if !completed_writes.is_empty() => {
                lost = Some(completed_writes[rng.gen_range(0..completed_writes.len())]);
                mutation = Mutation::LostWrite;
            }
            _ => {
                // Move B's point just before A's (A returned before B's call)
                // or just after A's (A called after B returned).
                let mut pairs = Vec::new();
                for (b, pb) in plan.iter().enumerate() {
                    for (a, pa) in plan.iter().enumerate() {
                        if pa.client == pb.client || pa.point.is_none() || pb.point.is_none() {
                            continue;
                        }
                        if pa.ret.is_some_and(|r| r <= pb.call) {
                            pairs.push((b, a, false));
                        }
                        if pb.ret.is_some_and(|r| r <= pa.call) {
                            pairs.push((b, a, true));
                        }
                    }
                }
                if !pairs.is_empty() {
                    let (b, a, after) = pairs[rng.gen_range(0..pairs.len())];
                    let pa = plan[a].point.unwrap_or_default();
                    plan[b].point = Some(if after { pa + 1 } else { pa - 1 });
                    mutation = Mutation::RealTimeInverted;
                }
            }
        }
    }

    // Execute in linearization order (ties: by index).
    let mut order: Vec<(u64, usize)> = plan.iter().enumerate().filter_map(|(i, p)| p.point.map(|t| (t, i))).collect();
    order.sort_unstable();
    let mut results: Vec<Option<F::Ret>> = vec![None; plan.len()];
    let mut state = F::Spec::default();
    let mut earlier: Vec<F::Spec> = Vec::new();
    for (_, i) in order {
        let mut next = state.clone();
        let mut ret = next.invoke(&plan[i].op);
        if corrupt_read == Some(i) {
            ret = if mutation == Mutation::StaleRead {
                // What the read would have returned in some older state.
                let older: Vec<F::Ret> =
                    earlier.iter().map(|s| s.clone().invoke(&plan[i].op)).filter(|r| *r != ret).collect();
                if older.is_empty() {
                    mutation = Mutation::NeverWritten;
                    F::never_written(&plan[i].op)
                } else {
                    older[rng.gen_range(0..older.len())].clone()
                }
            } else {
                F::never_written(&plan[i].op)
            };
        }
        earlier.push(state.clone());
        if lost != Some(i) {
            state = next;
        }
        results[i] = Some(ret);
    }

    let history = plan
        .into_iter()
        .zip(results)
        .map(|(p, r)| match (p.ret, r) {
            (Some(t), Some(r)) => Operation::completed(p.client, p.call, t, p.op, r),
            (Some(_), None) => unreachable!("a completed operation always has a point"),
            (None, _) => Operation::pending(p.client, p.call, p.op),
        })
        .collect();
    Generated { history, mutation }
}

// ---------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------

type History<F> = Vec<Operation<<F as Family>::Op, <F as Family>::Ret>>;

/// Our checker's verdicts, by name (every one is compared).
type Ours<F> = fn(&History<F>) -> Vec<(&'static str, Outcome)>;

fn ours_kv(h: &History<KvFamily>) -> Vec<(&'static str, Outcome)> {
    vec![("check_kv (per key)", check_kv(h, BUDGET)), ("check(KvMap) (whole map)", check(&KvMap, h, BUDGET))]
}

fn ours_counter(h: &History<CounterFamily>) -> Vec<(&'static str, Outcome)> {
    vec![("check(CounterModel)", check(&CounterModel, h, BUDGET))]
}

/// Counts and disagreements of one run.
#[derive(Default)]
struct Tally {
    histories: usize,
    non_linearizable: usize,
    pending_ops: usize,
    /// Per mutation: (histories, non-linearizable ones).
    by_mutation: BTreeMap<Mutation, (usize, usize)>,
    disagreements: Vec<String>,
}

impl Tally {
    fn summary(&self) -> String {
        format!(
            "{} histories, {} non-linearizable ({:.1}%), {} pending ops, by mutation {:?}, {} disagreements",
            self.histories,
            self.non_linearizable,
            100.0 * self.non_linearizable as f64 / self.histories.max(1) as f64,
            self.pending_ops,
            self.by_mutation,
            self.disagreements.len()
        )
    }

    fn fraction_non_linearizable(&self) -> f64 {
        self.non_linearizable as f64 / self.histories.max(1) as f64
    }
}

fn render<Op: Debug, Ret: Debug>(h: &[Operation<Op, Ret>]) -> String {
    let mut out = String::new();
    for (i, o) in h.iter().enumerate() {
        match &o.ret {
            Some((t, r)) => {
                out.push_str(&format!("  #{i} client {} [{}, {}] {:?} -> {:?}\n", o.client, o.call, t, o.op, r))
            }
            None => out.push_str(&format!("  #{i} client {} [{}, pending] {:?}\n", o.client, o.call, o.op)),
        }
    }
    out
}

/// Generate `count` histories from `seed` and compare `ours` with stateright on each.
fn differential<F: Family>(seed: u64, count: usize, shape: Shape, ours: Ours<F>) -> Tally {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for index in 0..count {
        let g = generate::<F>(&mut rng, shape);
        let reference = stateright_linearizable(F::Spec::default(), &g.history);
        tally.histories += 1;
        tally.pending_ops += g.history.iter().filter(|o| !o.is_completed()).count();
        let entry = tally.by_mutation.entry(g.mutation).or_default();
        entry.0 += 1;
        if !reference {
            tally.non_linearizable += 1;
            entry.1 += 1;
        }
        for (name, out) in ours(&g.history) {
            let agrees = match &out {
                Outcome::Linearizable => reference,
                Outcome::NotLinearizable { .. } => !reference,
                Outcome::Unknown { .. } => false,
            };
            if !agrees {
                tally.disagreements.push(format!(
                    "seed {seed} history {index} ({:?}): stateright says {}, {name} says {out}\n{}",
                    g.mutation,
                    if reference { "linearizable" } else { "NOT linearizable" },
                    render(&g.history)
                ));
            }
        }
    }
    tally
}

/// The assertions of a differential run.
fn assert_agreement(what: &str, tally: &Tally, min_histories: usize) {
    println!("{what}: {}", tally.summary());
    for d in tally.disagreements.iter().take(5) {
        println!("{d}");
    }
    assert!(
        tally.disagreements.is_empty(),
        "{what}: {} disagreements, first:\n{}",
        tally.disagreements.len(),
        tally.disagreements[0]
    );
    assert!(tally.histories >= min_histories, "{what}: {}", tally.summary());
    // Neither side may be trivially right: a fair share of both verdicts.
    let f = tally.fraction_non_linearizable();
    assert!((0.25..=0.45).contains(&f), "{what}: non-linearizable fraction out of range: {}", tally.summary());
    // Every mutation kind and pending operations actually occur.
    for m in
        [Mutation::None, Mutation::StaleRead, Mutation::LostWrite, Mutation::NeverWritten, Mutation::RealTimeInverted]
    {
        assert!(tally.by_mutation.get(&m).is_some_and(|&(n, _)| n > 0), "{what}: no {m:?}: {}", tally.summary());
    }
    assert!(tally.pending_ops > tally.histories / 10, "{what}: {}", tally.summary());
}

/// 8,000 KV and 4,000 counter histories: 12,000 in all, in the normal run.
#[test]
fn agrees_with_stateright_on_kv_histories() {
    let tally = differential::<KvFamily>(0xd1ff, 8_000, SMALL, ours_kv);
    assert_agreement("kv", &tally, 8_000);
}

#[test]
fn agrees_with_stateright_on_counter_histories() {
    let tally = differential::<CounterFamily>(0xc0de, 4_000, SMALL, ours_counter);
    assert_agreement("counter", &tally, 4_000);
}

/// The long variant, other seeds: 100,000 small histories of each family,
/// and 20,000 larger ones (2-5 clients, 8-16 operations).
#[test]
#[ignore = "long: cargo test --release -p quorate-sim --test linearizability_differential -- --ignored"]
fn agrees_with_stateright_on_many_more_histories() {
    let tally = differential::<KvFamily>(0x10_d1ff, 100_000, SMALL, ours_kv);
    assert_agreement("kv", &tally, 100_000);
    let tally = differential::<CounterFamily>(0x10_c0de, 100_000, SMALL, ours_counter);
    assert_agreement("counter", &tally, 100_000);
    let tally = differential::<KvFamily>(0x20_d1ff, 20_000, LARGER, ours_kv);
    assert_agreement("kv, larger", &tally, 20_000);
    let tally = differential::<CounterFamily>(0x20_c0de, 20_000, LARGER, ours_counter);
    assert_agreement("counter, larger", &tally, 20_000);
}

// ---------------------------------------------------------------------------
// The comparison fires: wrong oracles disagree
// ---------------------------------------------------------------------------

/// Our checker with real time erased: every operation concurrent with every other.
fn blind_to_real_time(h: &History<KvFamily>) -> Vec<(&'static str, Outcome)> {
    let erased: History<KvFamily> = h
        .iter()
        .map(|o| Operation { client: o.client, call: 0, ret: o.ret.clone().map(|(_, r)| (1, r)), op: o.op.clone() })
        .collect();
    vec![("check_kv without real time", check_kv(&erased, BUDGET))]
}

fn always_linearizable(_: &History<KvFamily>) -> Vec<(&'static str, Outcome)> {
    vec![("always linearizable", Outcome::Linearizable)]
}

/// [`KvRegister`] with a fault in its pruning hint: it forgets that a delete
/// writes "absent", so "absent" looks unrecoverable once overwritten (the
/// kind of slip [`Model::writes`] warns makes the checker unsound).
struct ForgetsDeletes;

impl Model for ForgetsDeletes {
    type State = Option<Vec<u8>>;
    type Op = KvOp;
    type Ret = KvRet;
    fn init(&self) -> Self::State {
        KvRegister.init()
    }
    fn step(&self, state: &Self::State, op: &KvOp) -> (Self::State, KvRet) {
        KvRegister.step(state, op)
    }
    fn is_read_only(&self, op: &KvOp, ret: &KvRet) -> bool {
        KvRegister.is_read_only(op, ret)
    }
    fn needs(&self, op: &KvOp, ret: &KvRet) -> Option<Self::State> {
        KvRegister.needs(op, ret)
    }
    fn writes(&self, op: &KvOp, ret: Option<&KvRet>) -> Option<Self::State> {
        match op {
            KvOp::Delete(_) => None,
            _ => KvRegister.writes(op, ret),
        }
    }
}

/// Per-key check with the faulty register model.
fn forgets_deletes(h: &History<KvFamily>) -> Vec<(&'static str, Outcome)> {
    let mut by_key: BTreeMap<Vec<u8>, History<KvFamily>> = BTreeMap::new();
    for o in h {
        by_key.entry(o.op.key().to_vec()).or_default().push(o.clone());
    }
    let mut out = Outcome::Linearizable;
    for sub in by_key.values() {
        let o = check(&ForgetsDeletes, sub, BUDGET);
        if !o.is_linearizable() {
            out = o;
            break;
        }
    }
    vec![("per-key check with a register that forgets deletes", out)]
}

#[test]
fn wrong_oracles_disagree() {
    for (name, oracle) in [
        ("blind to real time", blind_to_real_time as Ours<KvFamily>),
        ("always linearizable", always_linearizable),
        ("forgets deletes", forgets_deletes),
    ] {
        let tally = differential::<KvFamily>(0xbad, 2_000, SMALL, oracle);
        println!("{name}: {}", tally.summary());
        assert!(!tally.disagreements.is_empty(), "the {name} oracle was not caught");
    }
    // Erasing real time misses exactly the histories whose only fault is
    // timing: it must be caught on some of the real-time mutations.
    let tally = differential::<KvFamily>(0xbad, 2_000, SMALL, blind_to_real_time);
    assert!(tally.disagreements.iter().any(|d| d.contains("(RealTimeInverted)")), "{}", tally.summary());
}

//! Workloads the simulated clients run, and the linearizability check of
//! what they observed.
//!
//! A [`Workload`] names the replicated service, how clients draw operations
//! from it and how their history is judged; [`Kv`], [`KvPuts`] and
//! [`Counter`] run the KV store and the counter of `quorate_apps` (with
//! `quorate_apps::workload`). Every client draws from its own seeded random
//! stream, so the operations of one client do not depend on anything else in
//! the run. Faulty clients of the KV workload use the faulty key namespace,
//! which no correct client touches.
//!
//! Their [`Workload::check`] maps the recorded client history (encoded operations and
//! replies with their invoke and return times) to the linearizability
//! checker's types and runs it: per key for the KV store, with a counter
//! [`Model`] for the counter.

use crate::linearizability::{self as lin, Model, Operation, Outcome};
use bytes::Bytes;
use quorate_apps::counter::{Counter as CounterService, CounterOp, CounterReply};
use quorate_apps::kv::{KvOp, KvReply, KvStore};
use quorate_apps::workload::{is_faulty_key, CounterWorkload, KvWorkload};
use quorate_core::service::{Service, ServiceFactory};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Which service the replicas run, which operations the clients send, and
/// how the history the clients observed is judged. The simulator knows no
/// service: a new one (a pub/sub, ...) implements this trait outside it.
pub trait Workload: Send + Sync + std::fmt::Debug + 'static {
    /// Short name, in reports ("kv", "counter", ...).
    fn name(&self) -> &str;
    /// Builds fresh instances of the service (one per replica, and one per
    /// recovery).
    fn service_factory(&self) -> ServiceFactory;
    /// The operation stream of client `client`. Faulty clients should keep
    /// to operations the check can tell apart (the KV store: the faulty key
    /// namespace).
    fn client(&self, client: u64, faulty: bool) -> Box<dyn ClientOps>;
    /// Judge the correct clients' operations in `ops` (linearizability within
    /// `budget` dead ends). `faulty_clients` says whether faulty clients ran.
    fn check(&self, ops: &[OpRecord], faulty_clients: bool, budget: u64) -> HistoryCheck;
}

/// One client's operation stream.
pub trait ClientOps: Send {
    /// The next operation of client `client`, drawn from its own seeded
    /// stream: encoding and read-only flag.
    fn next_op(&mut self, rng: &mut ChaCha8Rng, client: u64) -> (Bytes, bool);
}

impl ClientOps for KvWorkload {
    fn next_op(&mut self, rng: &mut ChaCha8Rng, client: u64) -> (Bytes, bool) {
        KvWorkload::next_op(self, rng, client)
    }
}

impl ClientOps for CounterWorkload {
    fn next_op(&mut self, rng: &mut ChaCha8Rng, client: u64) -> (Bytes, bool) {
        CounterWorkload::next_op(self, rng, client)
    }
}

/// The key-value store (the default workload).
#[derive(Clone, Debug, PartialEq)]
pub struct Kv {
    /// Size in bytes of written values.
    pub payload: usize,
    /// Share of operations on the one shared hot key; the rest go to each
    /// client's own keys.
    pub contention: f64,
    /// Whether gets are sent as read-only operations.
    pub read_only_gets: bool,
}

/// The key-value store with puts only (the DQBFT evaluation's workload:
/// "100% put operations"), each client on its own keys.
#[derive(Clone, Debug, PartialEq)]
pub struct KvPuts {
    /// Size in bytes of written values.
    pub payload: usize,
    /// Keys of each client (its puts go to them uniformly).
    pub keys_per_client: usize,
}

/// The counter: 70% add(1), 30% get.
#[derive(Clone, Debug, PartialEq)]
pub struct Counter {
    /// Whether gets are sent as read-only operations.
    pub read_only_gets: bool,
}

/// Share of operations on the shared hot key in the default workload. At 0
/// every key has one client and a split brain can look linearizable
/// (issue 17); 0.2 keeps most operations on private keys.
pub const DEFAULT_CONTENTION: f64 = 0.2;

impl Default for Kv {
    /// 16-byte values, contention 0.2 (so the linearizability checker sees
    /// clients meet on a key), gets ordered.
    fn default() -> Self {
        Kv { payload: 16, contention: DEFAULT_CONTENTION, read_only_gets: false }
    }
}

fn kv_store() -> ServiceFactory {
    Arc::new(|| Box::new(KvStore::new()) as Box<dyn Service>)
}

impl Workload for Kv {
    fn name(&self) -> &str {
        "kv"
    }
    fn service_factory(&self) -> ServiceFactory {
        kv_store()
    }
    fn client(&self, _client: u64, faulty: bool) -> Box<dyn ClientOps> {
        let w = KvWorkload { read_only_gets: self.read_only_gets, ..KvWorkload::new(self.contention, self.payload) };
        Box::new(if faulty { w.faulty() } else { w })
    }
    fn check(&self, ops: &[OpRecord], _faulty_clients: bool, budget: u64) -> HistoryCheck {
        check_kv_history(ops, budget)
    }
}

impl Workload for KvPuts {
    fn name(&self) -> &str {
        "kv-puts"
    }
    fn service_factory(&self) -> ServiceFactory {
        kv_store()
    }
    fn client(&self, _client: u64, faulty: bool) -> Box<dyn ClientOps> {
        let w =
            KvWorkload { puts_only: true, keys_per_client: self.keys_per_client, ..KvWorkload::new(0.0, self.payload) };
        Box::new(if faulty { w.faulty() } else { w })
    }
    fn check(&self, ops: &[OpRecord], _faulty_clients: bool, budget: u64) -> HistoryCheck {
        check_kv_history(ops, budget)
    }
}

impl Workload for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn service_factory(&self) -> ServiceFactory {
        Arc::new(|| Box::new(CounterService::new()) as Box<dyn Service>)
    }
    fn client(&self, _client: u64, _faulty: bool) -> Box<dyn ClientOps> {
        Box::new(CounterWorkload { read_only_gets: self.read_only_gets })
    }
    /// Faulty clients share the counter, so a history with them cannot be judged.
    fn check(&self, ops: &[OpRecord], faulty_clients: bool, budget: u64) -> HistoryCheck {
        if faulty_clients {
            return HistoryCheck {
                outcome: Outcome::Unknown {
                    reason: "faulty clients write the shared counter with operations nobody observed".into(),
                },
                operations: 0,
                notes: Vec::new(),
            };
        }
        check_counter_history(ops, budget)
    }
}

/// One client's seeded operation stream.
pub(crate) struct OpGenerator {
    ops: Box<dyn ClientOps>,
    rng: ChaCha8Rng,
    client: u64,
}

impl OpGenerator {
    /// Client `client`'s stream of `workload`, drawing from `rng`.
    pub(crate) fn new(workload: &dyn Workload, client: u64, rng: ChaCha8Rng, faulty: bool) -> Self {
        OpGenerator { ops: workload.client(client, faulty), rng, client }
    }

    /// The next operation: encoding and read-only flag.
    pub(crate) fn next_op(&mut self) -> (Bytes, bool) {
        self.ops.next_op(&mut self.rng, self.client)
    }
}

/// One operation as a client saw it.
#[derive(Clone, Debug)]
pub struct OpRecord {
    /// Client index (`ClientId`).
    pub client: u64,
    /// Whether the client is correct (only correct clients' operations are checked).
    pub correct: bool,
    /// Virtual time (ns) of the invocation.
    pub invoke: u64,
    /// Virtual time (ns) of the completion, if it completed.
    pub ret: Option<u64>,
    /// The encoded operation.
    pub op: Bytes,
    /// Sent as read-only.
    pub read_only: bool,
    /// The encoded reply, if it completed.
    pub reply: Option<Bytes>,
}

/// The counter's sequential specification for the linearizability checker.
#[derive(Clone, Copy, Debug, Default)]
pub struct CounterModel;

impl Model for CounterModel {
    type State = i64;
    type Op = CounterOp;
    type Ret = i64;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, op: &CounterOp) -> (i64, i64) {
        match op {
            CounterOp::Add(d) => {
                let v = state.wrapping_add(*d);
                (v, v)
            }
            CounterOp::Get => (*state, *state),
        }
    }

    fn is_read_only(&self, op: &CounterOp, _ret: &i64) -> bool {
        matches!(op, CounterOp::Get) || matches!(op, CounterOp::Add(0))
    }
}

/// Result of checking a history: the verdict and notes (e.g. replies the
/// service refused, treated as operations that may not have taken effect).
#[derive(Clone, Debug)]
pub struct HistoryCheck {
    /// The verdict.
    pub outcome: Outcome,
    /// Operations checked.
    pub operations: usize,
    /// Remarks about the mapping.
    pub notes: Vec<String>,
}

fn check_kv_history(ops: &[OpRecord], budget: u64) -> HistoryCheck {
    let mut history = Vec::with_capacity(ops.len());
    let mut notes = Vec::new();
    let mut refused = 0usize;
    for (i, r) in ops.iter().enumerate().filter(|(_, r)| r.correct) {
        let op = match KvOp::decode(&r.op) {
            Ok(op) => op,
            Err(e) => {
                notes.push(format!("op {i} of client {} is not a KV operation ({e}); skipped", r.client));
                continue;
            }
        };
        if is_faulty_key(op.key()) {
            continue;
        }
        let lop = match op {
            KvOp::Get { key } => lin::KvOp::Get(key.to_vec()),
            KvOp::Put { key, value } => lin::KvOp::Put(key.to_vec(), value.to_vec()),
            KvOp::Delete { key } => lin::KvOp::Delete(key.to_vec()),
            KvOp::Cas { key, expected, new } => {
                lin::KvOp::Cas { key: key.to_vec(), expected: expected.map(|e| e.to_vec()), new: new.to_vec() }
            }
        };
        let ret = match (&r.ret, &r.reply) {
            (Some(t), Some(reply)) => match KvReply::decode(reply) {
                Ok(KvReply::Value(v)) => Some((*t, lin::KvRet::Value(v.map(|b| b.to_vec())))),
                Ok(KvReply::Cas(b)) => Some((*t, lin::KvRet::Cas(b))),
                Ok(KvReply::Error(text)) => {
                    // The store changed nothing: a pending operation allows that.
                    refused += 1;
                    if refused <= 3 {
                        notes.push(format!("op {i} of client {} was refused by the store: {text}", r.client));
                    }
                    None
                }
                Err(e) => {
                    return HistoryCheck {
                        outcome: Outcome::NotLinearizable {
                            explanation: format!(
                                "client {} completed op {i} ({op:?}) with an undecodable reply ({e})",
                                r.client,
                                op = lop
                            ),
                        },
                        operations: history.len(),
                        notes,
                    }
                }
            },
            _ => None,
        };
        history.push(Operation { client: r.client, call: r.invoke, ret, op: lop });
    }
    if refused > 3 {
        notes.push(format!("{refused} operations refused by the store in all"));
    }
    let outcome = lin::check_kv(&history, budget);
    HistoryCheck { outcome, operations: history.len(), notes }
}

fn check_counter_history(ops: &[OpRecord], budget: u64) -> HistoryCheck {
    let mut history = Vec::with_capacity(ops.len());
    let mut notes = Vec::new();
    for (i, r) in ops.iter().enumerate().filter(|(_, r)| r.correct) {
        let op = match CounterOp::decode(&r.op) {
            Ok(op) => op,
            Err(e) => {
                notes.push(format!("op {i} of client {} is not a counter operation ({e}); skipped", r.client));
                continue;
            }
        };
        let ret = match (&r.ret, &r.reply) {
            (Some(t), Some(reply)) => match CounterReply::decode(reply) {
                Ok(CounterReply::Value(v)) => Some((*t, v)),
                Ok(CounterReply::Error(text)) => {
                    notes.push(format!("op {i} of client {} was refused by the counter: {text}", r.client));
                    None
                }
                Err(e) => {
                    return HistoryCheck {
                        outcome: Outcome::NotLinearizable {
                            explanation: format!(
                                "client {} completed op {i} with an undecodable reply ({e})",
                                r.client
                            ),
                        },
                        operations: history.len(),
                        notes,
                    }
                }
            },
            _ => None,
        };
        history.push(Operation { client: r.client, call: r.invoke, ret, op });
    }
    let outcome = lin::check(&CounterModel, &history, budget);
    HistoryCheck { outcome, operations: history.len(), notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(client: u64, invoke: u64, ret: Option<u64>, op: Bytes, reply: Option<Bytes>) -> OpRecord {
        OpRecord { client, correct: true, invoke, ret, op, read_only: false, reply }
    }

    #[test]
    fn counter_history() {
        let add = CounterOp::Add(1).encode();
        let get = CounterOp::Get.encode();
        let v = |x| Some(CounterReply::Value(x).encode());
        let ok = vec![
            rec(0, 0, Some(10), add.clone(), v(1)),
            rec(1, 5, Some(20), add.clone(), v(2)),
            rec(0, 11, Some(30), get.clone(), v(2)),
            rec(1, 21, None, add.clone(), None),
        ];
        let spec = Counter { read_only_gets: false };
        assert_eq!(spec.check(&ok, false, 100_000).outcome, Outcome::Linearizable);
        let bad = vec![rec(0, 0, Some(10), add.clone(), v(1)), rec(1, 11, Some(20), get, v(0))];
        assert!(spec.check(&bad, false, 100_000).outcome.is_violation());
        assert!(spec.check(&bad, true, 100_000).outcome.is_unknown());
    }

    #[test]
    fn kv_history_ignores_faulty_keys_and_flags_garbage() {
        let k = Bytes::from_static(b"c0/k0");
        let put = KvOp::Put { key: k.clone(), value: Bytes::from_static(b"x") }.encode();
        let get = KvOp::Get { key: k }.encode();
        let fput = KvOp::Put { key: Bytes::from_static(b"faulty/c0/k0"), value: Bytes::from_static(b"y") }.encode();
        let val = |v: Option<&'static [u8]>| Some(KvReply::Value(v.map(Bytes::from_static)).encode());
        let spec = Kv::default();
        let h = vec![
            rec(0, 0, Some(10), put, val(None)),
            rec(1, 1, Some(2), fput, val(Some(b"zzz"))),
            rec(0, 11, Some(20), get.clone(), val(Some(b"x"))),
        ];
        let c = spec.check(&h, true, 100_000);
        assert_eq!(c.outcome, Outcome::Linearizable);
        assert_eq!(c.operations, 2);
        let garbage = vec![rec(0, 0, Some(1), get, Some(Bytes::from_static(b"\xff\xff\xff")))];
        assert!(spec.check(&garbage, false, 100).outcome.is_violation());
    }
}

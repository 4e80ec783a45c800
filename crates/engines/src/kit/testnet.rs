//! One in-memory test network for the engines' unit tests: n engines of any
//! kind ([`Instance`]) over a queue that delivers what the test lets
//! through, recording every action. Each engine's tests keep what only
//! they need (keys to forge MACs, trusted subsystems) in its `extra`, which
//! the net dereferences to (`net.keys` is `net.extra.keys`).

use crate::instance::{Action, Actions, AnyValue, EngineTimer, Instance, InstanceMsg, Value};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::ReplicaId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The value the tests order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct V(pub u64);

impl Value for V {
    fn digest(&self, crypto: &dyn Crypto) -> Digest {
        crate::instance::digest_encoded(b"test-value", self, crypto)
    }
}

/// Replica `i`.
pub(crate) fn r(i: u32) -> ReplicaId {
    ReplicaId(i)
}

/// Which messages the network drops: (from, to, message).
pub(crate) type Filter<M> = Box<dyn Fn(ReplicaId, ReplicaId, &M) -> bool>;

/// n engines and what they did, with the tests' own `extra`.
pub(crate) struct TestNet<E: Instance<V>, X = ()> {
    pub n: usize,
    pub engines: Vec<E>,
    pub queue: VecDeque<(ReplicaId, ReplicaId, E::Msg)>,
    /// Messages matching this are dropped.
    pub drop: Filter<E::Msg>,
    pub decided: Vec<Vec<(u64, Option<V>)>>,
    pub rejected: Vec<Vec<&'static str>>,
    pub timers: Vec<BTreeMap<EngineTimer, Duration>>,
    pub persisted: Vec<Vec<E::Record>>,
    pub stable: Vec<Vec<u64>>,
    pub need_state: Vec<Vec<(u64, Digest)>>,
    pub views: Vec<Vec<u64>>,
    /// Every message sent: (from, to, kind).
    pub log: Vec<(ReplicaId, ReplicaId, &'static str)>,
    /// Replicas whose inputs are ignored (crashed).
    pub down: Vec<bool>,
    /// Whether a down replica's queued messages and view changes are
    /// dropped too (the Hybster tests' crash), or only its inputs.
    pub mute_down: bool,
    /// The embedder takes a checkpoint every this many decisions.
    pub checkpoint_period: u64,
    /// More deliveries than this in one `run` fail the test.
    pub storm: usize,
    /// What the engine's tests need besides (reached through `Deref`).
    pub extra: X,
}

impl<E: Instance<V>, X> std::ops::Deref for TestNet<E, X> {
    type Target = X;
    fn deref(&self) -> &X {
        &self.extra
    }
}

impl<E: Instance<V>, X> std::ops::DerefMut for TestNet<E, X> {
    fn deref_mut(&mut self) -> &mut X {
        &mut self.extra
    }
}

impl<E: Instance<V>, X> TestNet<E, X> {
    /// The network over `engines`, each started, with the tests' `extra`.
    pub fn over(engines: Vec<E>, checkpoint_period: u64, extra: X) -> Self {
        let n = engines.len();
        let mut net = TestNet {
            n,
            engines,
            queue: VecDeque::new(),
            drop: Box::new(|_, _, _| false),
            decided: vec![Vec::new(); n],
            rejected: vec![Vec::new(); n],
            timers: vec![BTreeMap::new(); n],
            persisted: vec![Vec::new(); n],
            stable: vec![Vec::new(); n],
            need_state: vec![Vec::new(); n],
            views: vec![Vec::new(); n],
            log: Vec::new(),
            down: vec![false; n],
            mute_down: false,
            checkpoint_period,
            storm: 200_000,
            extra,
        };
        for i in 0..n {
            let mut a = Actions::new();
            net.engines[i].start(&mut a);
            net.apply(i, a);
        }
        net
    }

    /// Carry out replica `i`'s actions; a decision at the end of a period
    /// takes a checkpoint whose digest is that of the decided prefix.
    pub fn apply(&mut self, i: usize, actions: Actions<V, E::Msg, E::Record>) {
        let me = r(i as u32);
        let mut queue: VecDeque<Action<V, E::Msg, E::Record>> = actions.into_vec().into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Send { to, msg } => self.queue.push_back((me, to, msg)),
                Action::Broadcast { msg } => {
                    for j in (0..self.n as u32).filter(|j| *j != me.0) {
                        self.queue.push_back((me, r(j), msg.clone()));
                    }
                }
                Action::SetTimer { timer, after } => {
                    self.timers[i].insert(timer, after);
                }
                Action::CancelTimer { timer } => {
                    self.timers[i].remove(&timer);
                }
                Action::Persist(rec) => self.persisted[i].push(rec),
                Action::Decided { seq, value } => {
                    self.decided[i].push((seq, value));
                    if seq % self.checkpoint_period == 0 {
                        let d = Digest::of(format!("{:?}", self.decided[i]).as_bytes());
                        let mut more = Actions::new();
                        self.engines[i].checkpoint_taken(seq, d, &mut more);
                        queue.extend(more.into_vec());
                    }
                }
                Action::Stable { seq, .. } => self.stable[i].push(seq),
                Action::NeedState { seq, digest } => self.need_state[i].push((seq, digest)),
                Action::ViewChanged { view, .. } => self.views[i].push(view),
                Action::Rejected { reason, .. } => self.rejected[i].push(reason),
                Action::Note(_) => {}
            }
        }
    }

    /// Deliver `msg` from `from` to replica `i` now.
    pub fn input(&mut self, i: usize, from: ReplicaId, msg: E::Msg) {
        if self.down[i] {
            return;
        }
        let mut a = Actions::new();
        self.engines[i].on_message(from, msg, &AnyValue, &mut a);
        self.apply(i, a);
    }

    /// Deliver queued messages until none is left.
    pub fn run(&mut self) {
        let mut steps = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < self.storm, "message storm");
            self.log.push((from, to, msg.kind()));
            if (self.mute_down && self.down[from.index()]) || (self.drop)(from, to, &msg) {
                continue;
            }
            self.input(to.index(), from, msg);
        }
    }

    /// Replica `i` proposes `v`; its sequence number.
    pub fn propose(&mut self, i: usize, v: u64) -> u64 {
        let mut a = Actions::new();
        let seq = self.engines[i].propose(V(v), &mut a).expect("can propose");
        self.apply(i, a);
        seq
    }

    /// Fire replica `i`'s timer `t`.
    pub fn timer(&mut self, i: usize, t: EngineTimer) {
        if self.down[i] {
            return;
        }
        let mut a = Actions::new();
        self.engines[i].on_timer(t, &mut a);
        self.apply(i, a);
    }

    /// Every replica's retransmission tick, then deliver.
    pub fn tick_all(&mut self) {
        for i in 0..self.n {
            self.timer(i, EngineTimer::Tick);
        }
        self.run();
    }

    /// Replica `i` suspects the primary.
    pub fn view_change(&mut self, i: usize) {
        if self.mute_down && self.down[i] {
            return;
        }
        let mut a = Actions::new();
        self.engines[i].start_view_change(&mut a);
        self.apply(i, a);
    }

    /// The values replica `i` decided, in order.
    pub fn values(&self, i: usize) -> Vec<Option<u64>> {
        self.decided[i].iter().map(|(_, v)| v.as_ref().map(|x| x.0)).collect()
    }

    /// How often replica `i` refused an input for `reason`.
    pub fn rejections(&self, i: usize, reason: &str) -> usize {
        self.rejected[i].iter().filter(|x| **x == reason).count()
    }

    /// Messages of `kind` sent so far.
    pub fn sent(&self, kind: &str) -> usize {
        self.log.iter().filter(|(_, _, k)| *k == kind).count()
    }
}

//! Linearizability checking of client-observed histories.
//!
//! The checker is the Wing–Gong search with Lowe's memoization (the
//! algorithm behind Knossos' "linear" and Porcupine checkers): operations
//! are laid out as a time-ordered list of call and return events; the search
//! repeatedly picks an operation whose call precedes every pending return,
//! applies it to a sequential [`Model`], and checks that the model's result
//! equals what the client observed. Dead ends backtrack through an explicit
//! stack (no recursion, so histories of many thousands of operations do not
//! overflow the thread stack), and every (set of linearized operations, model
//! state) pair that has been explored is remembered so it is never explored
//! twice.
//!
//! Real-time order: operation A must be linearized before operation B when A
//! returned before B was invoked. An operation that returns at time `t`
//! precedes one invoked at the same time `t` (so a client's back-to-back
//! operations stay ordered), except that two zero-duration operations at the
//! same instant are concurrent with each other.
//!
//! Operations that never returned (`ret: None`) may take effect at any point
//! after their call, or not at all; their (unobserved) results are not
//! checked.
//!
//! [`check_kv`] checks key-value histories one key at a time: linearizability
//! is a local (compositional) property, so a history is linearizable if and
//! only if each per-key sub-history is, and the per-key searches are far
//! smaller than one search over the whole map.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The model's state; must be cheap-ish to clone and hash (it is memoized).
    type State: Clone + Eq + std::hash::Hash + std::fmt::Debug;
    /// An operation a client can invoke.
    type Op: Clone + std::fmt::Debug;
    /// What an operation returns to its client.
    type Ret: Clone + PartialEq + std::fmt::Debug;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// Apply op to state; returns the new state and the value the op returns.
    fn step(&self, state: &Self::State, op: &Self::Op) -> (Self::State, Self::Ret);
    /// Human-readable rendering of a state, used in explanations.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
    /// Optional hint that makes the search far faster on histories with many
    /// concurrent reads: return true only if `op`, whenever it returns `ret`,
    /// leaves *every* state unchanged (a read; a compare-and-swap that
    /// failed). A wrong `true` makes the checker unsound; the default,
    /// `false`, is always safe.
    fn is_read_only(&self, op: &Self::Op, ret: &Self::Ret) -> bool {
        let _ = (op, ret);
        false
    }
    /// Optional pruning hint: the one state `op` must be applied to for it
    /// to return `ret`, if there is exactly one (a register's read of `v`,
    /// a put that returned the previous value `v`). Together with
    /// [`Model::writes`] it lets the search abandon a branch as soon as an
    /// operation needs a state that was overwritten and has no writer left.
    /// The default, `None`, disables the pruning.
    fn needs(&self, op: &Self::Op, ret: &Self::Ret) -> Option<Self::State> {
        let _ = (op, ret);
        None
    }
    /// The state `op` leaves when applied, if it may differ from the state
    /// it was applied to (`ret`: its observed result, `None` if it never
    /// returned). Used only by models that implement [`Model::needs`], and
    /// must then name every state an operation can create: a missing one
    /// makes the checker unsound.
    fn writes(&self, op: &Self::Op, ret: Option<&Self::Ret>) -> Option<Self::State> {
        let _ = (op, ret);
        None
    }
}

/// One client operation as observed by the client: invocation time and, if it completed, return time and value.
/// Times are u64 (nanoseconds of virtual time). An operation with `ret: None` never returned (client crashed or
/// gave up): it may or may not have taken effect, at any point after its call.
#[derive(Clone, Debug)]
pub struct Operation<Op, Ret> {
    /// The client that issued the operation (informational).
    pub client: u64,
    /// Invocation time.
    pub call: u64,
    /// Return time and returned value, if the operation completed.
    pub ret: Option<(u64, Ret)>,
    /// The operation.
    pub op: Op,
}

impl<Op, Ret> Operation<Op, Ret> {
    /// An operation that was invoked at `call` and returned `value` at `ret`.
    pub fn completed(client: u64, call: u64, ret: u64, op: Op, value: Ret) -> Self {
        Operation { client, call, ret: Some((ret, value)), op }
    }

    /// An operation that was invoked at `call` and never returned.
    pub fn pending(client: u64, call: u64, op: Op) -> Self {
        Operation { client, call, ret: None, op }
    }

    /// True if the operation returned (its result was observed).
    pub fn is_completed(&self) -> bool {
        self.ret.is_some()
    }
}

/// The verdict of a linearizability check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Some linearization of the history is consistent with the model.
    Linearizable,
    /// No linearization exists; `explanation` describes the furthest point the search reached.
    NotLinearizable {
        /// Human-readable description of the violation.
        explanation: String,
    },
    /// The checker could not decide (search budget exhausted, malformed history).
    Unknown {
        /// Why no verdict was reached.
        reason: String,
    },
}

impl Outcome {
    /// True for [`Outcome::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Outcome::Linearizable)
    }

    /// True for [`Outcome::NotLinearizable`].
    pub fn is_violation(&self) -> bool {
        matches!(self, Outcome::NotLinearizable { .. })
    }

    /// True for [`Outcome::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Linearizable => write!(f, "linearizable"),
            Outcome::NotLinearizable { explanation } => {
                write!(f, "NOT linearizable: {explanation}")
            }
            Outcome::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// Check one history against a model, giving up (Unknown) after `budget` dead ends.
///
/// A dead end is one backtrack: undoing a linearized operation. A history
/// that needs no wrong guess costs none, however long it is; the work per
/// node is bounded by the number of operations concurrent with it, so time
/// and memory (the memoization cache) grow with the history's length plus
/// the dead ends explored.
/// Explanations number operations by their index in `history`.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Op, M::Ret>], budget: u64) -> Outcome {
    let labels: Vec<usize> = (0..history.len()).collect();
    check_labelled(model, history, &labels, budget)
}

/// Maximum number of prefix operations printed in an explanation.
const EXPLAIN_PREFIX: usize = 8;
/// Maximum number of candidate operations printed in an explanation.
const EXPLAIN_CANDIDATES: usize = 8;

/// Sentinel "no entry" link in the event list.
const NIL: usize = usize::MAX;
/// Index of the list's head sentinel.
const HEAD: usize = 0;

/// Sort rank of events sharing a timestamp: returns of ordinary operations,
/// then calls of zero-duration operations, then their returns, then calls of
/// ordinary (and pending) operations.
fn event_rank(is_call: bool, zero_duration: bool) -> u8 {
    match (is_call, zero_duration) {
        (false, false) => 0,
        (true, true) => 1,
        (false, true) => 2,
        (true, false) => 3,
    }
}

/// Doubly linked list of call/return events with O(1) removal and LIFO re-insertion.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Operation each entry belongs to (entry 0 is the head sentinel).
    op_of: Vec<usize>,
    /// Whether each entry is a call event.
    is_call: Vec<bool>,
    /// Call entry of each operation.
    call_entry: Vec<usize>,
    /// Return entry of each operation (None for pending operations).
    ret_entry: Vec<Option<usize>>,
}

impl EventList {
    fn new<Op, Ret>(history: &[Operation<Op, Ret>]) -> Self {
        // (time, rank, op, is_call)
        let mut events: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(history.len() * 2);
        for (i, o) in history.iter().enumerate() {
            match &o.ret {
                Some((r, _)) => {
                    let zero = *r == o.call;
                    events.push((o.call, event_rank(true, zero), i, true));
                    events.push((*r, event_rank(false, zero), i, false));
                }
                None => events.push((o.call, event_rank(true, false), i, true)),
            }
        }
        events.sort_unstable();
        let m = events.len();
        let mut list = EventList {
            next: Vec::with_capacity(m + 1),
            prev: Vec::with_capacity(m + 1),
            op_of: Vec::with_capacity(m + 1),
            is_call: Vec::with_capacity(m + 1),
            call_entry: vec![NIL; history.len()],
            ret_entry: vec![None; history.len()],
        };
        // Head sentinel.
        list.next.push(if m == 0 { NIL } else { 1 });
        list.prev.push(NIL);
        list.op_of.push(NIL);
        list.is_call.push(false);
        for (k, &(_, _, op, is_call)) in events.iter().enumerate() {
            let id = k + 1;
            list.next.push(if id == m { NIL } else { id + 1 });
            list.prev.push(id - 1);
            list.op_of.push(op);
            list.is_call.push(is_call);
            if is_call {
                list.call_entry[op] = id;
            } else {
                list.ret_entry[op] = Some(id);
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    /// Remove an operation's call entry and its return entry, if any.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        if let Some(r) = self.ret_entry[self.op_of[call]] {
            self.unlink(r);
        }
    }

    /// Undo the most recent [`EventList::lift`] of `call`.
    fn unlift(&mut self, call: usize) {
        if let Some(r) = self.ret_entry[self.op_of[call]] {
            self.relink(r);
        }
        self.relink(call);
    }
}

/// The set of linearized operations, indexed by call order, with the compact
/// memo key of [`Linearized::key`].
///
/// A plain bitset per memo entry costs n/8 bytes, which for a hot key with
/// 700 000 operations is 87 KB per entry and tens of GB per search. But the
/// set always has a simple shape: every completed operation before a
/// frontier is in it, and beyond the frontier only operations called before
/// the frontier operation's return (at most the concurrency of the key) can
/// be. So the key is the frontier, the members beyond it, and the pending
/// (never returned) operations before it that are not members: its size is
/// bounded by the concurrency, not the history.
struct Linearized {
    bits: Vec<u64>,
    /// Position (call order) of each operation.
    pos: Vec<usize>,
    /// Per position: whether the operation never returned.
    pending: Vec<bool>,
    /// Positions of pending operations, ascending.
    pending_pos: Vec<usize>,
    /// Per position: how many operations are called before its return event;
    /// while it is not linearized, no operation at or beyond that is.
    call_limit: Vec<usize>,
    /// First position of a completed operation that is not linearized
    /// (`n` when there is none).
    frontier: usize,
}

impl Linearized {
    fn new<Op, Ret>(history: &[Operation<Op, Ret>], list: &EventList) -> Self {
        let n = history.len();
        let mut pos = vec![0; n];
        let mut pending = vec![false; n];
        let mut call_limit = vec![n; n];
        let mut calls = 0;
        let mut e = list.first();
        while e != NIL {
            let op = list.op_of[e];
            if list.is_call[e] {
                pos[op] = calls;
                pending[calls] = !history[op].is_completed();
                calls += 1;
            } else {
                call_limit[pos[op]] = calls;
            }
            e = list.next[e];
        }
        let pending_pos = (0..n).filter(|&p| pending[p]).collect();
        let mut set = Linearized { bits: vec![0; n.div_ceil(64)], pos, pending, pending_pos, call_limit, frontier: 0 };
        set.advance();
        set
    }

    fn has(&self, p: usize) -> bool {
        self.bits[p / 64] & (1u64 << (p % 64)) != 0
    }

    fn advance(&mut self) {
        let n = self.pending.len();
        while self.frontier < n && (self.pending[self.frontier] || self.has(self.frontier)) {
            self.frontier += 1;
        }
    }

    fn insert(&mut self, op: usize) {
        let p = self.pos[op];
        self.bits[p / 64] |= 1u64 << (p % 64);
        if p == self.frontier {
            self.advance();
        }
    }

    fn remove(&mut self, op: usize) {
        let p = self.pos[op];
        self.bits[p / 64] &= !(1u64 << (p % 64));
        if !self.pending[p] && p < self.frontier {
            self.frontier = p;
        }
    }

    /// Identifies the set exactly (see the type's documentation).
    fn key(&self) -> Box<[u32]> {
        let n = self.pending.len();
        let mut key = vec![self.frontier as u32];
        let limit = if self.frontier < n { self.call_limit[self.frontier] } else { n };
        for p in self.frontier..limit {
            if self.has(p) {
                key.push(p as u32);
            }
        }
        debug_assert!((limit..n).all(|p| !self.has(p)), "linearized beyond the frontier's return");
        key.push(u32::MAX);
        for &p in self.pending_pos.iter().take_while(|&&p| p < self.frontier) {
            if !self.has(p) {
                key.push(p as u32);
            }
        }
        key.into_boxed_slice()
    }
}

/// Pruning by states that can never come back (see [`Model::needs`]).
///
/// A state with exactly one writer in the whole history (the initial state
/// counts as the writer of itself) is *gone* once that writer is linearized
/// and the current state differs from it: nothing can recreate it. A branch
/// where a completed, not yet linearized operation needs a gone state is a
/// dead end, however the search would continue, so it is cut at once instead
/// of after exploring every order of the operations around it.
struct Prune<S> {
    /// Unique-writer states, by id.
    states: Vec<S>,
    ids: HashMap<S, usize>,
    /// Per state id: its writer (`None`: the initial state).
    writer: Vec<Option<usize>>,
    /// Per state id: whether its writer is linearized.
    written: Vec<bool>,
    /// Per state id: unlinearized completed operations that need it.
    waiting: Vec<u32>,
    gone: Vec<bool>,
    /// Per operation: the id of the state it needs, if tracked.
    need: Vec<Option<usize>>,
    /// Per operation: the id of the state it writes, if tracked.
    writes: Vec<Option<usize>>,
    /// Waiting operations whose state is gone: the branch is dead while > 0.
    dead: u64,
}

impl<S: Clone + Eq + Hash> Prune<S> {
    fn new<M: Model<State = S>>(model: &M, history: &[Operation<M::Op, M::Ret>]) -> Self {
        let needs: Vec<Option<S>> =
            history.iter().map(|o| o.ret.as_ref().and_then(|(_, r)| model.needs(&o.op, r))).collect();
        let mut p = Prune {
            states: Vec::new(),
            ids: HashMap::new(),
            writer: Vec::new(),
            written: Vec::new(),
            waiting: Vec::new(),
            gone: Vec::new(),
            need: vec![None; history.len()],
            writes: vec![None; history.len()],
            dead: 0,
        };
        if needs.iter().all(Option::is_none) {
            return p;
        }
        // Writers of each state, the initial one included.
        let mut writers: HashMap<S, (u32, Option<usize>)> = HashMap::new();
        writers.insert(model.init(), (1, None));
        for (i, o) in history.iter().enumerate() {
            if let Some(w) = model.writes(&o.op, o.ret.as_ref().map(|(_, r)| r)) {
                let e = writers.entry(w).or_insert((0, Some(i)));
                e.0 += 1;
            }
        }
        for (st, (count, w)) in writers {
            if count == 1 {
                let id = p.states.len();
                p.ids.insert(st.clone(), id);
                p.states.push(st);
                p.writer.push(w);
                p.written.push(w.is_none());
                p.waiting.push(0);
                p.gone.push(false);
                if let Some(w) = w {
                    p.writes[w] = Some(id);
                }
            }
        }
        for (i, n) in needs.into_iter().enumerate() {
            if let Some(id) = n.and_then(|st| p.ids.get(&st).copied()) {
                p.need[i] = Some(id);
                p.waiting[id] += 1;
            }
        }
        p
    }

    fn refresh(&mut self, id: usize, state: &S) {
        let gone = self.written[id] && self.states[id] != *state;
        if gone != self.gone[id] {
            self.gone[id] = gone;
            let w = u64::from(self.waiting[id]);
            if gone {
                self.dead += w;
            } else {
                self.dead -= w;
            }
        }
    }

    /// A completed operation, not in `used`, that needs a gone state.
    fn stranded(&self, used: &[bool]) -> Option<usize> {
        if self.dead == 0 {
            return None;
        }
        (0..self.need.len()).find(|&i| !used[i] && self.need[i].is_some_and(|id| self.gone[id]))
    }

    /// Operation `op` was linearized (`done`) or un-linearized, taking the
    /// state from `from` to `to`.
    fn apply(&mut self, op: usize, done: bool, from: &S, to: &S) {
        if self.states.is_empty() {
            return;
        }
        if let Some(id) = self.need[op] {
            if done {
                self.waiting[id] -= 1;
                if self.gone[id] {
                    self.dead -= 1;
                }
            } else {
                self.waiting[id] += 1;
                if self.gone[id] {
                    self.dead += 1;
                }
            }
        }
        if let Some(id) = self.writes[op] {
            self.written[id] = done;
            self.refresh(id, to);
        }
        for st in [from, to] {
            if let Some(&id) = self.ids.get(st) {
                self.refresh(id, to);
            }
        }
    }
}

/// Like [`check`], but explanations name operation `i` as `labels[i]`.
fn check_labelled<M: Model>(model: &M, history: &[Operation<M::Op, M::Ret>], labels: &[usize], budget: u64) -> Outcome {
    for (i, o) in history.iter().enumerate() {
        if let Some((r, _)) = &o.ret {
            if *r < o.call {
                return Outcome::Unknown {
                    reason: format!(
                        "malformed history: operation #{} returns at {} before its call at {}",
                        label(labels, i),
                        r,
                        o.call
                    ),
                };
            }
        }
    }
    let n = history.len();
    let n_completed = history.iter().filter(|o| o.is_completed()).count();
    if n_completed == 0 {
        return Outcome::Linearizable;
    }

    let list = EventList::new(history);
    let mut search = Search {
        prune: Prune::new(model, history),
        linearized: Linearized::new(history, &list),
        list,
        cache: HashSet::new(),
        stack: Vec::new(),
        state: model.init(),
        done_completed: 0,
        best: Vec::new(),
        low: 0,
    };
    let mut dead_ends = 0u64;
    let mut phase = Phase::Node;

    loop {
        if search.done_completed == n_completed {
            return Outcome::Linearizable;
        }
        match phase {
            Phase::Node => {
                // Look for a completed read-only candidate (see
                // `Model::is_read_only`) that returns what was observed.
                // Any linearization of the rest can be rearranged to put it
                // first: nothing left must precede it in real time, and
                // wherever it sits it changes no state, so removing it from
                // there changes nothing for the others. So it is taken
                // without trying alternatives: if it fails, this node fails.
                phase = Phase::Scan(search.list.first());
                let mut e = search.list.first();
                while e != NIL && search.list.is_call[e] {
                    let o = &history[search.list.op_of[e]];
                    let Some((_, want)) = &o.ret else {
                        e = search.list.next[e];
                        continue;
                    };
                    if !model.is_read_only(&o.op, want) {
                        e = search.list.next[e];
                        continue;
                    }
                    let (new_state, got) = model.step(&search.state, &o.op);
                    if new_state == search.state && *want == got {
                        phase = if search.try_push(e, new_state, o.is_completed(), true) {
                            Phase::Node
                        } else {
                            Phase::Backtrack
                        };
                        break;
                    }
                    e = search.list.next[e];
                }
            }
            Phase::Scan(e) => {
                if e == NIL || !search.list.is_call[e] {
                    // The earliest remaining return cannot be passed.
                    phase = Phase::Backtrack;
                    continue;
                }
                let o = &history[search.list.op_of[e]];
                let (new_state, got) = model.step(&search.state, &o.op);
                phase = if returns(o, &got) && search.try_push(e, new_state, o.is_completed(), false) {
                    Phase::Node
                } else {
                    Phase::Scan(search.list.next[e])
                };
            }
            Phase::Backtrack => {
                if dead_ends >= budget {
                    return search.exhausted(budget, n);
                }
                dead_ends += 1;
                let Some(frame) = search.stack.pop() else {
                    return Outcome::NotLinearizable {
                        explanation: explain(model, history, labels, &search.list, &search.best),
                    };
                };
                search.low = search.low.min(search.stack.len());
                let op = search.list.op_of[frame.call];
                if history[op].is_completed() {
                    search.done_completed -= 1;
                }
                search.linearized.remove(op);
                search.prune.apply(op, false, &search.state, &frame.prev_state);
                search.state = frame.prev_state;
                search.list.unlift(frame.call);
                if !frame.forced {
                    phase = Phase::Scan(search.list.next[frame.call]);
                }
            }
        }
    }
}

/// Whether the model's result `got` is consistent with what the client observed.
fn returns<Op, Ret: PartialEq>(o: &Operation<Op, Ret>, got: &Ret) -> bool {
    match &o.ret {
        Some((_, want)) => want == got,
        None => true,
    }
}

/// Where the search loop is.
#[derive(Clone, Copy)]
enum Phase {
    /// Just arrived at a new node: look for a forced move.
    Node,
    /// Trying the candidate at this event entry (or backtracking if it is a return).
    Scan(usize),
    /// The current node failed: undo the last linearized operation.
    Backtrack,
}

/// One linearized operation on the search stack.
struct Frame<S> {
    /// Call entry of the operation.
    call: usize,
    /// Model state before the operation.
    prev_state: S,
    /// Taken as a forced move: failing after it fails the node below too.
    forced: bool,
}

/// Mutable state of one search.
struct Search<S> {
    prune: Prune<S>,
    list: EventList,
    linearized: Linearized,
    /// Lowe's memo: (linearized set, state) pairs already reached, the set
    /// as [`Linearized::key`].
    cache: HashSet<(Box<[u32]>, S)>,
    stack: Vec<Frame<S>>,
    state: S,
    done_completed: usize,
    /// Deepest linearized prefix seen (op indices), maintained incrementally:
    /// `best[..low]` always equals the bottom of the current stack.
    best: Vec<usize>,
    low: usize,
}

impl<S: Clone + Eq + Hash> Search<S> {
    /// Linearize the operation at `call` into `new_state`, unless that
    /// (set, state) pair was already explored. Returns whether it did.
    fn try_push(&mut self, call: usize, new_state: S, completed: bool, forced: bool) -> bool {
        let op = self.list.op_of[call];
        self.prune.apply(op, true, &self.state, &new_state);
        if self.prune.dead > 0 {
            self.prune.apply(op, false, &new_state, &self.state);
            return false;
        }
        self.linearized.insert(op);
        if !self.cache.insert((self.linearized.key(), new_state.clone())) {
            self.linearized.remove(op);
            self.prune.apply(op, false, &new_state, &self.state);
            return false;
        }
        let prev_state = std::mem::replace(&mut self.state, new_state);
        self.stack.push(Frame { call, prev_state, forced });
        if completed {
            self.done_completed += 1;
        }
        self.list.lift(call);
        if self.stack.len() > self.best.len() {
            self.best.truncate(self.low);
            let list = &self.list;
            self.best.extend(self.stack[self.low..].iter().map(|f| list.op_of[f.call]));
            self.low = self.stack.len();
        }
        true
    }

    fn exhausted(&self, budget: u64, n: usize) -> Outcome {
        Outcome::Unknown {
            reason: format!(
                "search budget of {budget} dead ends exhausted ({} of {n} operations linearized \
                 at the deepest point, {} states memoized)",
                self.best.len(),
                self.cache.len()
            ),
        }
    }
}

fn label(labels: &[usize], i: usize) -> usize {
    labels.get(i).copied().unwrap_or(i)
}

fn describe_op<Op: fmt::Debug, Ret: fmt::Debug>(labels: &[usize], i: usize, o: &Operation<Op, Ret>) -> String {
    match &o.ret {
        Some((r, v)) => format!("#{} client {} [{}, {}] {:?} -> {:?}", label(labels, i), o.client, o.call, r, o.op, v),
        None => format!("#{} client {} [{}, never returned] {:?}", label(labels, i), o.client, o.call, o.op),
    }
}

/// Describe why the search failed, from the deepest linearized prefix.
fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Op, M::Ret>],
    labels: &[usize],
    list: &EventList,
    best: &[usize],
) -> String {
    use std::fmt::Write;
    let n = history.len();
    let mut out = String::new();
    let mut state = model.init();
    let mut used = vec![false; n];
    let mut prune = Prune::new(model, history);
    for &i in best {
        let next = model.step(&state, &history[i].op).0;
        prune.apply(i, true, &state, &next);
        state = next;
        used[i] = true;
    }
    let _ = write!(
        out,
        "no linearization of {n} operations exists; the longest consistent prefix linearizes {}",
        best.len()
    );
    if best.is_empty() {
        out.push_str(" (none can go first)");
    } else {
        out.push(':');
        let skip = best.len().saturating_sub(EXPLAIN_PREFIX);
        if skip > 0 {
            let _ = write!(out, "\n  ... {skip} earlier operations");
        }
        for &i in &best[skip..] {
            let _ = write!(out, "\n  {}", describe_op(labels, i, &history[i]));
        }
    }
    let _ = write!(out, "\nmodel state after the prefix: {}", model.describe_state(&state));

    // Operations that could be linearized next: call entry before every
    // remaining return entry.
    let min_ret = (0..n).filter(|&i| !used[i]).filter_map(|i| list.ret_entry[i]).min().unwrap_or(NIL);
    let candidates: Vec<usize> = (0..n).filter(|&i| !used[i] && list.call_entry[i] < min_ret).collect();
    out.push_str("\nnone of the operations that could come next fits:");
    for &i in candidates.iter().take(EXPLAIN_CANDIDATES) {
        let o = &history[i];
        let got = model.step(&state, &o.op).1;
        let _ = write!(out, "\n  {}", describe_op(labels, i, o));
        match &o.ret {
            Some((_, want)) if *want != got => {
                let _ = write!(out, " (model returns {got:?})");
            }
            Some(_) => {
                let next = model.step(&state, &o.op).0;
                prune.apply(i, true, &state, &next);
                used[i] = true;
                let stranded = prune.stranded(&used);
                used[i] = false;
                match stranded {
                    Some(j) => {
                        let _ = write!(
                            out,
                            " (fits here, but then #{} can never return what it did: the state it needs \
                             would be overwritten for good)",
                            label(labels, j)
                        );
                    }
                    None => out.push_str(" (fits here, but leads to a dead end)"),
                }
                prune.apply(i, false, &next, &state);
            }
            None => out.push_str(" (pending; leads to a dead end)"),
        }
    }
    if candidates.len() > EXPLAIN_CANDIDATES {
        let _ = write!(out, "\n  ... and {} more", candidates.len() - EXPLAIN_CANDIDATES);
    }
    out
}

// ---------------------------------------------------------------------------
// Key-value model
// ---------------------------------------------------------------------------

/// A key-value store operation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Read a key; returns [`KvRet::Value`] with the current value.
    Get(Vec<u8>),
    /// Write a key; returns [`KvRet::Value`] with the previous value.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key; returns [`KvRet::Value`] with the previous value.
    Delete(Vec<u8>),
    /// Set `key` to `new` iff its current value equals `expected` (`None`: absent); returns [`KvRet::Cas`].
    Cas {
        /// The key.
        key: Vec<u8>,
        /// Required current value (`None` means the key must be absent).
        expected: Option<Vec<u8>>,
        /// Value written on success.
        new: Vec<u8>,
    },
}

impl KvOp {
    /// The key the operation acts on.
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Get(k) | KvOp::Put(k, _) | KvOp::Delete(k) => k,
            KvOp::Cas { key, .. } => key,
        }
    }
}

/// What a key-value store operation returns.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KvRet {
    /// Get: current value; put/delete: previous value.
    Value(Option<Vec<u8>>),
    /// Cas: whether the swap happened.
    Cas(bool),
}

/// Debug rendering of bytes as an escaped byte string literal.
struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Debug rendering of an optional byte string.
struct OptBytes<'a>(Option<&'a [u8]>);

impl fmt::Debug for OptBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "Some({:?})", Bytes(v)),
            None => write!(f, "None"),
        }
    }
}

impl fmt::Debug for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOp::Get(k) => write!(f, "Get({:?})", Bytes(k)),
            KvOp::Put(k, v) => write!(f, "Put({:?}, {:?})", Bytes(k), Bytes(v)),
            KvOp::Delete(k) => write!(f, "Delete({:?})", Bytes(k)),
            KvOp::Cas { key, expected, new } => {
                write!(f, "Cas({:?}, expected {:?}, new {:?})", Bytes(key), OptBytes(expected.as_deref()), Bytes(new))
            }
        }
    }
}

impl fmt::Debug for KvRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvRet::Value(v) => write!(f, "Value({:?})", OptBytes(v.as_deref())),
            KvRet::Cas(b) => write!(f, "Cas({b})"),
        }
    }
}

/// Apply a KV operation to the value of its key.
fn kv_apply(current: &Option<Vec<u8>>, op: &KvOp) -> (Option<Vec<u8>>, KvRet) {
    match op {
        KvOp::Get(_) => (current.clone(), KvRet::Value(current.clone())),
        KvOp::Put(_, v) => (Some(v.clone()), KvRet::Value(current.clone())),
        KvOp::Delete(_) => (None, KvRet::Value(current.clone())),
        KvOp::Cas { expected, new, .. } => {
            if current == expected {
                (Some(new.clone()), KvRet::Cas(true))
            } else {
                (current.clone(), KvRet::Cas(false))
            }
        }
    }
}

/// Whether a KV operation that returned `ret` changed nothing, in any state.
fn kv_read_only(op: &KvOp, ret: &KvRet) -> bool {
    match (op, ret) {
        (KvOp::Get(_), _) => true,
        // Returned the value it wrote: it overwrote that same value.
        (KvOp::Put(_, v), KvRet::Value(Some(prev))) => v == prev,
        // Deleted an absent key.
        (KvOp::Delete(_), KvRet::Value(None)) => true,
        (KvOp::Cas { .. }, KvRet::Cas(false)) => true,
        _ => false,
    }
}

/// Single-key register model: the state is the key's value (`None`: absent).
/// Operations' keys are ignored, so feed it one key's sub-history.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvRegister;

impl Model for KvRegister {
    type State = Option<Vec<u8>>;
    type Op = KvOp;
    type Ret = KvRet;

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, state: &Self::State, op: &KvOp) -> (Self::State, KvRet) {
        kv_apply(state, op)
    }

    fn describe_state(&self, state: &Self::State) -> String {
        format!("{:?}", OptBytes(state.as_deref()))
    }

    fn is_read_only(&self, op: &KvOp, ret: &KvRet) -> bool {
        kv_read_only(op, ret)
    }

    fn needs(&self, op: &KvOp, ret: &KvRet) -> Option<Self::State> {
        match (op, ret) {
            (KvOp::Get(_) | KvOp::Put(..) | KvOp::Delete(_), KvRet::Value(v)) => Some(v.clone()),
            (KvOp::Cas { expected, .. }, KvRet::Cas(true)) => Some(expected.clone()),
            _ => None,
        }
    }

    fn writes(&self, op: &KvOp, ret: Option<&KvRet>) -> Option<Self::State> {
        match (op, ret) {
            (KvOp::Get(_), _) | (KvOp::Cas { .. }, Some(KvRet::Cas(false))) => None,
            (KvOp::Put(_, v), _) | (KvOp::Cas { new: v, .. }, _) => Some(Some(v.clone())),
            (KvOp::Delete(_), _) => Some(None),
        }
    }
}

/// Whole-map KV model (state: every key's value). Prefer [`check_kv`], which
/// checks per key and is much faster; this exists for small histories and
/// cross-checking.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvMap;

impl Model for KvMap {
    type State = BTreeMap<Vec<u8>, Vec<u8>>;
    type Op = KvOp;
    type Ret = KvRet;

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn step(&self, state: &Self::State, op: &KvOp) -> (Self::State, KvRet) {
        let key = op.key();
        let current = state.get(key).cloned();
        let (value, ret) = kv_apply(&current, op);
        if value == current {
            return (state.clone(), ret);
        }
        let mut next = state.clone();
        match value {
            Some(v) => next.insert(key.to_vec(), v),
            None => next.remove(key),
        };
        (next, ret)
    }

    fn describe_state(&self, state: &Self::State) -> String {
        let entries = state.iter().map(|(k, v)| format!("{:?}: {:?}", Bytes(k), Bytes(v)));
        format!("{{{}}}", entries.collect::<Vec<_>>().join(", "))
    }

    fn is_read_only(&self, op: &KvOp, ret: &KvRet) -> bool {
        kv_read_only(op, ret)
    }
}

/// Check a key-value history one key at a time with [`KvRegister`], each key
/// with a search budget of `budget_per_key` dead ends (see [`check`]).
///
/// Any non-linearizable key makes the history non-linearizable (the
/// explanation names the key and numbers operations by their index in
/// `history`); otherwise any undecided key makes it Unknown.
pub fn check_kv(history: &[Operation<KvOp, KvRet>], budget_per_key: u64) -> Outcome {
    let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, o) in history.iter().enumerate() {
        by_key.entry(o.op.key()).or_default().push(i);
    }
    let mut unknown: Vec<String> = Vec::new();
    for (key, indices) in &by_key {
        let sub: Vec<Operation<KvOp, KvRet>> = indices.iter().map(|&i| history[i].clone()).collect();
        match check_labelled(&KvRegister, &sub, indices, budget_per_key) {
            Outcome::Linearizable => {}
            Outcome::NotLinearizable { explanation } => {
                return Outcome::NotLinearizable { explanation: format!("key {:?}: {explanation}", Bytes(key)) };
            }
            Outcome::Unknown { reason } => unknown.push(format!("key {:?}: {reason}", Bytes(key))),
        }
    }
    match unknown.len() {
        0 => Outcome::Linearizable,
        1 => Outcome::Unknown { reason: unknown.swap_remove(0) },
        k => Outcome::Unknown { reason: format!("{k} keys undecided; first: {}", unknown.swap_remove(0)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const BUDGET: u64 = 1_000_000;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }
    fn get(k: &str) -> KvOp {
        KvOp::Get(b(k))
    }
    fn put(k: &str, v: &str) -> KvOp {
        KvOp::Put(b(k), b(v))
    }
    fn del(k: &str) -> KvOp {
        KvOp::Delete(b(k))
    }
    fn cas(k: &str, expected: Option<&str>, new: &str) -> KvOp {
        KvOp::Cas { key: b(k), expected: expected.map(b), new: b(new) }
    }
    fn val(v: Option<&str>) -> KvRet {
        KvRet::Value(v.map(b))
    }
    type KvOperation = Operation<KvOp, KvRet>;
    fn op(client: u64, call: u64, ret: u64, o: KvOp, r: KvRet) -> KvOperation {
        Operation::completed(client, call, ret, o, r)
    }

    /// Checks with both the per-key checker and the whole-map model.
    fn both(h: &[KvOperation]) -> (Outcome, Outcome) {
        (check_kv(h, BUDGET), check(&KvMap, h, BUDGET))
    }

    fn assert_linearizable(h: &[KvOperation]) {
        let (a, b) = both(h);
        assert_eq!(a, Outcome::Linearizable, "per-key: {a}");
        assert_eq!(b, Outcome::Linearizable, "whole map: {b}");
    }

    fn assert_violation(h: &[KvOperation]) -> String {
        let (a, b) = both(h);
        assert!(b.is_violation(), "whole map: {b}");
        match a {
            Outcome::NotLinearizable { explanation } => explanation,
            other => panic!("expected violation, got {other}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_linearizable(&[]);
        assert_eq!(check(&KvRegister, &[], 0), Outcome::Linearizable);
    }

    #[test]
    fn sequential_history() {
        let h = vec![
            op(1, 0, 10, put("x", "1"), val(None)),
            op(1, 20, 30, get("x"), val(Some("1"))),
            op(2, 40, 50, put("x", "2"), val(Some("1"))),
            op(1, 60, 70, del("x"), val(Some("2"))),
            op(2, 80, 90, get("x"), val(None)),
            op(3, 100, 110, put("y", "a"), val(None)),
            op(3, 120, 130, get("y"), val(Some("a"))),
        ];
        assert_linearizable(&h);
    }

    #[test]
    fn back_to_back_operations_at_same_instant_are_ordered() {
        // Put returns at 10, get invoked at 10: the get must see the put.
        let h = vec![op(1, 0, 10, put("x", "1"), val(None)), op(1, 10, 20, get("x"), val(None))];
        assert_violation(&h);
        // Zero-duration operations at the same instant are concurrent.
        let h = vec![op(1, 5, 5, get("x"), val(Some("1"))), op(2, 5, 5, put("x", "1"), val(None))];
        assert_linearizable(&h);
    }

    #[test]
    fn concurrent_overlapping_writes_and_reads() {
        // Two overlapping puts; readers see them in an order consistent with
        // "2 then 1": put 2 linearized first, then put 1.
        let h = vec![
            op(1, 0, 100, put("x", "1"), val(Some("2"))),
            op(2, 10, 90, put("x", "2"), val(None)),
            op(3, 20, 40, get("x"), val(Some("2"))),
            op(4, 50, 120, get("x"), val(Some("1"))),
            op(5, 130, 140, get("x"), val(Some("1"))),
        ];
        assert_linearizable(&h);
        // A read concurrent with a write may see either value.
        for seen in [None, Some("1")] {
            let h = vec![op(1, 0, 100, put("x", "1"), val(None)), op(2, 10, 20, get("x"), val(seen))];
            assert_linearizable(&h);
        }
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let h = vec![
            op(1, 0, 10, put("x", "1"), val(None)),
            op(1, 20, 30, put("x", "2"), val(Some("1"))),
            op(2, 40, 50, get("x"), val(Some("1"))),
        ];
        let explanation = assert_violation(&h);
        assert!(explanation.contains("key b\"x\""), "{explanation}");
        assert!(explanation.contains("#2"), "{explanation}");
    }

    #[test]
    fn pending_put_may_or_may_not_take_effect() {
        for seen in [None, Some("1")] {
            let h = vec![
                Operation::pending(1, 0, put("x", "1")),
                op(2, 10, 20, get("x"), val(seen)),
                op(2, 30, 40, get("x"), val(seen)),
            ];
            assert_linearizable(&h);
        }
        // But once observed, it cannot be un-done.
        let h = vec![
            Operation::pending(1, 0, put("x", "1")),
            op(2, 10, 20, get("x"), val(Some("1"))),
            op(2, 30, 40, get("x"), val(None)),
        ];
        assert_violation(&h);
        // A pending op cannot take effect before its call.
        let h = vec![op(2, 10, 20, get("x"), val(Some("1"))), Operation::pending(1, 30, put("x", "1"))];
        assert_violation(&h);
    }

    #[test]
    fn cas_success_and_failure() {
        let h = vec![
            op(1, 0, 10, cas("x", None, "a"), KvRet::Cas(true)),
            op(1, 20, 30, cas("x", None, "b"), KvRet::Cas(false)),
            op(1, 40, 50, cas("x", Some("a"), "c"), KvRet::Cas(true)),
            op(1, 60, 70, get("x"), val(Some("c"))),
            op(1, 80, 90, cas("x", Some("a"), "d"), KvRet::Cas(false)),
        ];
        assert_linearizable(&h);
        // Two concurrent CAS from the same expected value cannot both win.
        let h = vec![
            op(1, 0, 10, put("x", "0"), val(None)),
            op(1, 20, 40, cas("x", Some("0"), "a"), KvRet::Cas(true)),
            op(2, 25, 45, cas("x", Some("0"), "b"), KvRet::Cas(true)),
        ];
        assert_violation(&h);
        // ... but one wins and one loses, in either order.
        let h = vec![
            op(1, 0, 10, put("x", "0"), val(None)),
            op(1, 20, 40, cas("x", Some("0"), "a"), KvRet::Cas(false)),
            op(2, 25, 45, cas("x", Some("0"), "b"), KvRet::Cas(true)),
            op(3, 50, 60, get("x"), val(Some("b"))),
        ];
        assert_linearizable(&h);
        // A CAS that claims failure although the value matched.
        let h =
            vec![op(1, 0, 10, put("x", "0"), val(None)), op(1, 20, 30, cas("x", Some("0"), "a"), KvRet::Cas(false))];
        assert_violation(&h);
    }

    #[test]
    fn reads_that_disagree_impossibly() {
        // Two concurrent puts of 1 and 2; one reader sees 1 then 2, another
        // (after the first reader's reads) sees 2 then 1: no single order.
        // The puts' own results are unobserved (pending), so only the reads
        // constrain the order.
        let mut h = vec![
            Operation::pending(1, 0, put("x", "1")),
            Operation::pending(2, 0, put("x", "2")),
            op(3, 10, 20, get("x"), val(Some("1"))),
            op(3, 30, 40, get("x"), val(Some("2"))),
            op(4, 50, 60, get("x"), val(Some("2"))),
            op(4, 70, 80, get("x"), val(Some("1"))),
        ];
        assert_violation(&h);
        // Reader 4 seeing only 2 is fine.
        h.pop();
        assert_linearizable(&h);
        let h = vec![
            op(1, 0, 100, put("x", "1"), val(None)),
            op(3, 10, 20, get("x"), val(Some("1"))),
            op(4, 30, 40, get("x"), val(None)),
        ];
        assert_violation(&h);
    }

    #[test]
    fn value_never_written_is_reported() {
        let h = vec![
            op(1, 0, 10, put("k", "1"), val(None)),
            op(2, 20, 30, get("k"), val(Some("zz"))),
            op(3, 0, 10, put("other", "1"), val(None)),
        ];
        let e = assert_violation(&h);
        assert!(e.contains("key b\"k\""), "{e}");
        assert!(e.contains("model returns Value(Some(b\"1\"))"), "{e}");
    }

    #[test]
    fn malformed_history_is_unknown() {
        let h = vec![op(1, 10, 5, get("x"), val(None))];
        assert!(check_kv(&h, BUDGET).is_unknown());
    }

    #[test]
    fn budget_exhaustion_returns_unknown() {
        // 24 fully concurrent puts followed by a read of a value nobody
        // wrote: refuting it needs to explore ~2^24 subsets.
        let mut h: Vec<KvOperation> = (0..24).map(|i| Operation::pending(i, 0, put("x", &i.to_string()))).collect();
        h.push(op(99, 10, 20, get("x"), val(Some("nobody"))));
        let out = check_kv(&h, 10_000);
        assert!(out.is_unknown(), "{out}");
        let out = check(&KvRegister, &h, 0);
        assert!(out.is_unknown(), "{out}");
    }

    #[test]
    fn deep_sequential_history_does_not_overflow() {
        let mut h = Vec::new();
        let mut prev: Option<&str> = None;
        for i in 0..20_000u64 {
            let v = if i % 2 == 0 { "a" } else { "b" };
            h.push(op(1, 10 * i, 10 * i + 5, put("x", v), val(prev)));
            prev = Some(v);
        }
        assert_eq!(check_kv(&h, BUDGET), Outcome::Linearizable);
        // Corrupt the last result: detected after a deep search.
        if let Some(last) = h.last_mut() {
            last.ret = Some((10 * 20_000, val(Some("zz"))));
        }
        assert!(check_kv(&h, BUDGET).is_violation());
    }

    /// Random history from a true register-per-key execution: each op gets a
    /// linearization point strictly inside its interval (pending ops: after
    /// their call, or never), results come from applying ops in that order.
    fn random_history(
        rng: &mut ChaCha8Rng,
        clients: u64,
        ops_per_client: usize,
        keys: usize,
        values: usize,
        pending_permille: u32,
    ) -> Vec<KvOperation> {
        let key = |i: usize| format!("k{i}").into_bytes();
        let value = |i: usize| format!("v{i}").into_bytes();
        // (linearization point or None if never applied, index)
        let mut points: Vec<(u64, usize)> = Vec::new();
        let mut h: Vec<KvOperation> = Vec::new();
        for c in 0..clients {
            let mut t = rng.gen_range(0..50u64);
            for _ in 0..ops_per_client {
                let k = key(rng.gen_range(0..keys));
                let o = match rng.gen_range(0..10) {
                    0..=3 => KvOp::Get(k),
                    4..=6 => KvOp::Put(k, value(rng.gen_range(0..values))),
                    7 => KvOp::Delete(k),
                    _ => KvOp::Cas {
                        key: k,
                        expected: if rng.gen_bool(0.2) { None } else { Some(value(rng.gen_range(0..values))) },
                        new: value(rng.gen_range(0..values)),
                    },
                };
                let call = t;
                let dur = rng.gen_range(2..200u64);
                let idx = h.len();
                if rng.gen_range(0..1000) < pending_permille {
                    if rng.gen_bool(0.5) {
                        points.push((call + rng.gen_range(1..1000), idx));
                    }
                    h.push(Operation::pending(c, call, o));
                    break; // the client crashed
                }
                points.push((rng.gen_range(call + 1..call + dur), idx));
                h.push(Operation::completed(c, call, call + dur, o, KvRet::Cas(false)));
                t = call + dur + rng.gen_range(0..30);
            }
        }
        points.sort_unstable();
        let mut state = KvMap.init();
        for (_, idx) in points {
            let (next, ret) = KvMap.step(&state, &h[idx].op);
            state = next;
            if let Some((_, r)) = &mut h[idx].ret {
                *r = ret;
            }
        }
        h
    }

    #[test]
    fn large_random_linearizable_history() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x11ea);
        // 50 clients x 40 ops = 2000 ops on 20 keys, a few pending.
        let h = random_history(&mut rng, 50, 40, 20, 4, 5);
        assert!(h.len() > 1500, "{}", h.len());
        assert!(h.iter().any(|o| !o.is_completed()));
        let start = std::time::Instant::now();
        let out = check_kv(&h, BUDGET);
        assert_eq!(out, Outcome::Linearizable, "{out}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "{:?}", start.elapsed());

        // Corrupting one read makes it non-linearizable.
        let mut bad = h.clone();
        let Some(victim) = bad.iter().rposition(|o| matches!(o.op, KvOp::Get(_)) && o.is_completed()) else {
            panic!("no completed get");
        };
        if let Some((_, r)) = &mut bad[victim].ret {
            *r = val(Some("never-written"));
        }
        let out = check_kv(&bad, BUDGET);
        match out {
            Outcome::NotLinearizable { explanation } => {
                assert!(explanation.contains(&format!("#{victim} ")), "{explanation}")
            }
            other => panic!("expected violation, got {other}"),
        }
    }

    #[test]
    fn single_hot_key_many_concurrent_clients() {
        for (seed, values, pending_permille) in [(7, 3, 0), (8, 3, 3), (9, 10, 3), (10, 1, 5)] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let h = random_history(&mut rng, 30, 60, 1, values, pending_permille);
            let out = check_kv(&h, BUDGET);
            assert_eq!(out, Outcome::Linearizable, "seed {seed}: {out}");
        }
    }

    /// [`KvMap`] without the read-only hint: exercises the plain search.
    struct Unhinted;

    impl Model for Unhinted {
        type State = BTreeMap<Vec<u8>, Vec<u8>>;
        type Op = KvOp;
        type Ret = KvRet;
        fn init(&self) -> Self::State {
            KvMap.init()
        }
        fn step(&self, state: &Self::State, op: &KvOp) -> (Self::State, KvRet) {
            KvMap.step(state, op)
        }
    }

    #[test]
    fn many_small_random_linearizable_histories() {
        // Few values and many pending operations: the cases where shortcuts
        // in the search are most likely to be unsound.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for round in 0..300 {
            let clients = rng.gen_range(2..8);
            let keys = rng.gen_range(1..3);
            let values = rng.gen_range(1..4);
            let h = random_history(&mut rng, clients, 12, keys, values, 60);
            let out = check_kv(&h, BUDGET);
            assert_eq!(out, Outcome::Linearizable, "round {round}: {out}\n{h:?}");
            let out = check(&Unhinted, &h, BUDGET);
            assert!(!out.is_violation(), "round {round}: {out}\n{h:?}");
        }
    }

    /// Reference checker: tries every order allowed by real time.
    fn brute_force<M: Model>(model: &M, h: &[Operation<M::Op, M::Ret>]) -> bool {
        fn precedes<O, R>(a: &Operation<O, R>, b: &Operation<O, R>) -> bool {
            match &a.ret {
                None => false,
                Some((ra, _)) => {
                    let a_zero = *ra == a.call;
                    let b_zero = b.ret.as_ref().is_some_and(|(rb, _)| *rb == b.call);
                    *ra < b.call || (*ra == b.call && !(a_zero && b_zero))
                }
            }
        }
        fn go<M: Model>(model: &M, h: &[Operation<M::Op, M::Ret>], used: &mut Vec<bool>, state: &M::State) -> bool {
            if (0..h.len()).all(|i| used[i] || !h[i].is_completed()) {
                return true;
            }
            for x in 0..h.len() {
                if used[x] || (0..h.len()).any(|y| y != x && !used[y] && precedes(&h[y], &h[x])) {
                    continue;
                }
                let (next, got) = model.step(state, &h[x].op);
                if h[x].ret.as_ref().is_some_and(|(_, want)| *want != got) {
                    continue;
                }
                used[x] = true;
                let ok = go(model, h, used, &next);
                used[x] = false;
                if ok {
                    return true;
                }
            }
            false
        }
        go(model, h, &mut vec![false; h.len()], &model.init())
    }

    #[test]
    fn agrees_with_brute_force_and_whole_map_model() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..1000 {
            let clients = rng.gen_range(2..=4);
            let mut h = random_history(&mut rng, clients, 2, 2, 2, 250);
            // Scramble some results and times so that many are not linearizable.
            for o in h.iter_mut() {
                if rng.gen_bool(0.2) {
                    o.call = rng.gen_range(0..100);
                }
                let call = o.call;
                if let Some((t, r)) = &mut o.ret {
                    if rng.gen_bool(0.2) {
                        *t = call + rng.gen_range(0..3);
                    }
                    *t = (*t).max(call);
                    if rng.gen_bool(0.25) {
                        *r = match rng.gen_range(0..3) {
                            0 => KvRet::Value(None),
                            1 => KvRet::Value(Some(b"v0".to_vec())),
                            _ => KvRet::Cas(rng.gen_bool(0.5)),
                        };
                    }
                }
            }
            let expected = brute_force(&KvMap, &h);
            let (per_key, whole) = both(&h);
            let unhinted = check(&Unhinted, &h, BUDGET);
            for out in [&per_key, &whole, &unhinted] {
                assert_eq!(out.is_linearizable(), expected, "{h:?}: {out}");
                assert!(!out.is_unknown(), "{h:?}: {out}");
            }
            if expected {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 50 && no > 50, "yes {yes} no {no}");
    }
}

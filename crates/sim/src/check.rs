//! Safety and liveness checkers that run on every simulation.
//!
//! [`SafetyChecker`] watches the [`Event`]s of correct replicas as they
//! happen (Byzantine replicas are never fed to it; crashed-and-recovered
//! replicas are, before and after the crash):
//!
//! - **agreement**: the first final (non-speculative) execution reported at a
//!   slot by any correct replica becomes that slot's canonical entry
//!   (client, seq, op digest); every later final execution at that slot, by
//!   any correct replica (including the same one after recovery), must equal
//!   it. Memory is O(slots), not O(replicas × slots), so large replica counts
//!   stay cheap.
//! - **at-most-once**: a request (client, seq) finally executed at two
//!   different slots is a violation.
//! - **checkpoints**: `Checkpoint` and `StateInstalled` events at the same
//!   slot must carry the same digest.
//! - For protocols that order only interfering operations
//!   ([`OrderGuarantee::Interfering`]), agreement and at-most-once are per
//!   conflict key instead of per slot: the k-th final execution of an
//!   operation with key K must be the same at every correct replica, and a
//!   replica must not execute a request twice. Operations without a key
//!   (which interfere with everything) form one sequence of their own; their
//!   order relative to keyed operations is not checked. Checkpoints are
//!   compared by the number of operations they cover; a replica that installs
//!   a checkpoint's state continues from where the replica that took it was.
//!   Slot-based speculation comparisons do not apply there. Each replica's set of
//!   final executions is summarised (count, order-independent digest) so that
//!   replicas which executed the same set can be checked for equal state.
//! - **speculation**: speculative executions are kept per replica until a
//!   `RolledBack { slot }` discards those at or after `slot`; at the end, the
//!   survivors are compared with the canonical entries. Because the contract
//!   has no "speculation committed" event, a mismatch there is reported as a
//!   speculative divergence, not a safety violation.
//!
//! [`check_liveness`] judges the clients' history after the stabilisation time.

use crate::workload::OpRecord;
use quorate_core::{Bytes, Digest, Event, OrderGuarantee};
use std::collections::{BTreeMap, HashMap};

/// Most violation descriptions kept (the count is exact).
const MAX_KEPT: usize = 20;

/// What was executed at one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Exec {
    client: u64,
    seq: u64,
    op: Digest,
}

/// Per-key agreement state (for [`OrderGuarantee::Interfering`]).
#[derive(Debug, Default)]
struct PerKey {
    /// Conflict key of each operation the clients issued, by operation digest.
    keys: HashMap<Digest, Option<Bytes>>,
    /// Canonical final executions of each key, in order.
    canon: HashMap<Option<Bytes>, Vec<(Exec, u32)>>,
    /// Each replica's place.
    places: HashMap<u32, Place>,
    /// A place at each recent checkpoint, by (operations executed, digest):
    /// where a replica that installs that state continues from.
    at_checkpoint: BTreeMap<(u64, Digest), Place>,
}

/// How far one replica is.
#[derive(Clone, Debug, Default)]
struct Place {
    /// In each key's sequence.
    position: HashMap<Option<Bytes>, usize>,
    /// Per client, the last request executed finally (a client's requests
    /// execute in the order it issued them, each at most once).
    last: HashMap<u64, u64>,
    /// Final executions and the XOR of their digests.
    set: (u64, [u8; 32]),
}

/// Checkpoints whose places are kept (a recovering replica may install an old one).
const PLACES_KEPT: usize = 64;

/// The online safety checker (agreement, at-most-once, checkpoint digests).
#[derive(Debug, Default)]
pub struct SafetyChecker {
    /// `Some` when the protocol orders only interfering operations.
    per_key: Option<PerKey>,
    canon: HashMap<u64, (Exec, u32)>,
    request_slot: HashMap<(u64, u64), u64>,
    checkpoints: HashMap<u64, (Digest, u32)>,
    speculative: HashMap<u32, BTreeMap<u64, Exec>>,
    violations: u64,
    kept: Vec<String>,
    /// Final executions observed.
    pub executions: u64,
    /// Checkpoint and state-installed events observed.
    pub checkpoints_seen: u64,
    /// `StateInstalled` events seen (state transfers and recoveries).
    pub states_installed: u64,
}

impl SafetyChecker {
    /// A checker with nothing observed, for a protocol with `order`.
    pub fn new(order: OrderGuarantee) -> Self {
        let per_key = (order == OrderGuarantee::Interfering).then(PerKey::default);
        SafetyChecker { per_key, ..Self::default() }
    }

    /// Note an operation a client issued and its conflict key (needed to check
    /// per-key agreement; ignored under a total order).
    pub fn register_op(&mut self, op: Digest, key: Option<Bytes>) {
        if let Some(k) = &mut self.per_key {
            k.keys.insert(op, key);
        }
    }

    /// Replica `replica` restarted: under [`OrderGuarantee::Interfering`] it
    /// starts its per-key sequences over, or from the checkpoint it installs
    /// (what it executes again must again agree with the canonical order).
    /// Under a total order slots say where a re-execution belongs.
    pub fn restarted(&mut self, replica: u32) {
        // What it ran speculatively before the crash died with it: a later
        // `Committed` must not make those runs final.
        self.speculative.remove(&replica);
        if let Some(k) = &mut self.per_key {
            k.places.remove(&replica);
        }
    }

    /// Under [`OrderGuarantee::Interfering`]: replica `r`'s final executions
    /// so far, as (count, order-independent digest of the set).
    pub fn executed_set(&self, replica: u32) -> Option<(u64, [u8; 32])> {
        self.per_key.as_ref().map(|k| k.places.get(&replica).map_or((0, [0; 32]), |p| p.set))
    }

    /// Record a violation.
    pub fn violation(&mut self, text: String) {
        self.violations += 1;
        if self.kept.len() < MAX_KEPT {
            self.kept.push(text);
        }
    }

    /// Safety violations so far.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// The first violations (at most 20), in order.
    pub fn descriptions(&self) -> &[String] {
        &self.kept
    }

    /// Feed an event of correct replica `replica` at virtual time `now` (ns).
    pub fn observe(&mut self, replica: u32, now: u64, event: &Event) {
        match event {
            Event::Executed { slot, client, seq, op, speculative } => {
                let e = Exec { client: client.0, seq: *seq, op: *op };
                if *speculative {
                    self.speculative.entry(replica).or_default().insert(*slot, e);
                } else {
                    self.final_execution(replica, now, *slot, e);
                }
            }
            Event::Committed { slot } => {
                // Speculative executions below `slot` are final now: check them as such.
                if let Some(m) = self.speculative.get_mut(&replica) {
                    let rest = m.split_off(slot);
                    let done = std::mem::replace(m, rest);
                    for (s, e) in done {
                        self.final_execution(replica, now, s, e);
                    }
                }
            }
            Event::RolledBack { slot } => {
                if let Some(m) = self.speculative.get_mut(&replica) {
                    m.split_off(slot);
                }
            }
            Event::Checkpoint { slot, digest } | Event::StateInstalled { slot, digest } => {
                if let Some(k) = &mut self.per_key {
                    let at = (*slot, *digest);
                    if matches!(event, Event::Checkpoint { .. }) {
                        let place = k.places.get(&replica).cloned().unwrap_or_default();
                        k.at_checkpoint.entry(at).or_insert(place);
                        while k.at_checkpoint.len() > PLACES_KEPT {
                            k.at_checkpoint.pop_first();
                        }
                    } else if let Some(place) = k.at_checkpoint.get(&at) {
                        k.places.insert(replica, place.clone());
                    } else {
                        let text = format!(
                            "r{replica} installed a state (slot {slot}, {digest:?}) no correct replica checkpointed (t={})",
                            fmt_ns(now)
                        );
                        self.violation(text);
                    }
                }
                self.checkpoints_seen += 1;
                match self.checkpoints.get(slot) {
                    None => {
                        self.checkpoints.insert(*slot, (*digest, replica));
                    }
                    Some((d, first)) if d != digest => {
                        let text = format!(
                            "checkpoint digests differ at slot {slot}: r{first} has {d:?}, r{replica} has {digest:?} (t={})",
                            fmt_ns(now)
                        );
                        self.violation(text);
                    }
                    Some(_) => {}
                }
                // A state installed at `slot` replaces any speculation below it.
                if matches!(event, Event::StateInstalled { .. }) {
                    self.states_installed += 1;
                    self.speculative.remove(&replica);
                }
            }
            _ => {}
        }
    }

    fn final_execution(&mut self, replica: u32, now: u64, slot: u64, e: Exec) {
        if self.per_key.is_some() {
            return self.final_execution_per_key(replica, now, e);
        }
        self.executions += 1;
        if let Some(m) = self.speculative.get_mut(&replica) {
            // A final execution at `slot` supersedes speculation there.
            m.remove(&slot);
        }
        match self.canon.get(&slot) {
            None => {
                self.canon.insert(slot, (e, replica));
            }
            Some((c, first)) if *c != e => {
                let text = format!(
                    "agreement: at slot {slot} r{first} executed c{}#{} (op {:?}) but r{replica} executed c{}#{} (op {:?}) (t={})",
                    c.client,
                    c.seq,
                    c.op,
                    e.client,
                    e.seq,
                    e.op,
                    fmt_ns(now)
                );
                self.violation(text);
                return;
            }
            Some(_) => {}
        }
        match self.request_slot.get(&(e.client, e.seq)) {
            None => {
                self.request_slot.insert((e.client, e.seq), slot);
            }
            Some(s) if *s != slot => {
                let text = format!(
                    "at-most-once: request c{}#{} executed at slot {s} and again at slot {slot} (r{replica}, t={})",
                    e.client,
                    e.seq,
                    fmt_ns(now)
                );
                self.violation(text);
            }
            Some(_) => {}
        }
    }

    fn final_execution_per_key(&mut self, replica: u32, now: u64, e: Exec) {
        self.executions += 1;
        let Some(k) = &mut self.per_key else { return };
        let place = k.places.entry(replica).or_default();
        if let Some(last) = place.last.insert(e.client, e.seq).filter(|last| *last >= e.seq) {
            place.last.insert(e.client, last);
            let text = format!(
                "at-most-once: r{replica} executed request c{}#{} after c{}#{last} (t={})",
                e.client,
                e.seq,
                e.client,
                fmt_ns(now)
            );
            return self.violation(text);
        }
        let set = &mut place.set;
        set.0 += 1;
        let d = Digest::of_parts(&[&e.client.to_le_bytes(), &e.seq.to_le_bytes(), &e.op.0]);
        for (a, b) in set.1.iter_mut().zip(d.0) {
            *a ^= b;
        }
        let key = k.keys.get(&e.op).cloned().flatten();
        let pos = place.position.entry(key.clone()).or_insert(0);
        let seq = k.canon.entry(key.clone()).or_default();
        let i = *pos;
        *pos += 1;
        match seq.get(i) {
            None => seq.push((e, replica)),
            Some((c, _)) if *c == e => {}
            Some((c, first)) => {
                let text = format!(
                    "agreement on key {:?}: operation {i} is c{}#{} at r{first} but c{}#{} at r{replica} (t={})",
                    key.as_deref().map(String::from_utf8_lossy),
                    c.client,
                    c.seq,
                    e.client,
                    e.seq,
                    fmt_ns(now)
                );
                self.violation(text);
            }
        }
    }

    /// Speculative executions that survived to the end and differ from the
    /// canonical (final) entry at their slot.
    pub fn speculative_divergences(&self) -> u64 {
        if self.per_key.is_some() {
            return 0;
        }
        let mut n = 0;
        for m in self.speculative.values() {
            for (slot, e) in m {
                if let Some((c, _)) = self.canon.get(slot) {
                    if c != e {
                        n += 1;
                    }
                }
            }
        }
        n
    }
}

/// The liveness verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// No violation found.
    pub ok: bool,
    /// Whether the run lasted past stabilisation + bound, so that the
    /// "something completes after stabilisation" rule was judged.
    pub judged: bool,
    /// Operations of correct clients that completed after stabilisation.
    pub completed_after: u64,
    /// What went wrong (first offending operation).
    pub detail: Option<String>,
}

/// Judge liveness: every operation of a correct client pending at some time
/// t ≥ `stable` (ns) must complete by t + `bound` unless the run (`end`) is
/// over by then; that is, an operation invoked at `i` must complete by
/// `max(i, stable) + bound`. And if `end > stable + bound`, at least one
/// operation must complete after `stable`.
pub fn check_liveness(ops: &[OpRecord], stable: u64, bound: u64, end: u64) -> Liveness {
    let mut completed_after = 0;
    let mut first: Option<(u64, String)> = None;
    for (i, r) in ops.iter().enumerate().filter(|(_, r)| r.correct) {
        if let Some(t) = r.ret {
            if t <= stable {
                continue;
            }
            completed_after += 1;
        }
        let deadline = r.invoke.max(stable).saturating_add(bound);
        if deadline > end {
            continue;
        }
        let late = match r.ret {
            None => true,
            Some(t) => t > deadline,
        };
        if late && first.as_ref().is_none_or(|(d, _)| deadline < *d) {
            let what = match r.ret {
                None => "never completed".to_string(),
                Some(t) => format!("completed only at {}", fmt_ns(t)),
            };
            first = Some((
                deadline,
                format!(
                    "client c{} op #{i} invoked at {} {what}; deadline {} (stabilisation {} + bound {})",
                    r.client,
                    fmt_ns(r.invoke),
                    fmt_ns(deadline),
                    fmt_ns(stable),
                    fmt_ns(bound)
                ),
            ));
        }
    }
    let judged = end > stable.saturating_add(bound);
    if first.is_none() && judged && completed_after == 0 {
        first = Some((
            0,
            format!(
                "no operation completed after stabilisation at {} although the run lasted until {}",
                fmt_ns(stable),
                fmt_ns(end)
            ),
        ));
    }
    Liveness { ok: first.is_none(), judged, completed_after, detail: first.map(|(_, d)| d) }
}

/// Render virtual nanoseconds as seconds with millisecond precision.
pub fn fmt_ns(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use quorate_core::ClientId;

    fn exec(slot: u64, client: u64, seq: u64, op: u8, speculative: bool) -> Event {
        Event::Executed { slot, client: ClientId(client), seq, op: Digest([op; 32]), speculative }
    }

    #[test]
    fn agreement_and_at_most_once() {
        let mut c = SafetyChecker::new(quorate_core::OrderGuarantee::Total);
        c.observe(0, 0, &exec(0, 1, 1, 1, false));
        c.observe(1, 0, &exec(0, 1, 1, 1, false));
        assert_eq!(c.violations(), 0);
        c.observe(2, 0, &exec(0, 2, 1, 2, false));
        assert_eq!(c.violations(), 1);
        assert!(c.descriptions()[0].contains("slot 0"));
        c.observe(0, 0, &exec(1, 1, 1, 1, false));
        assert_eq!(c.violations(), 2);
        assert!(c.descriptions()[1].contains("at-most-once"));
    }

    #[test]
    fn speculation_rolls_back() {
        let mut c = SafetyChecker::new(quorate_core::OrderGuarantee::Total);
        c.observe(0, 0, &exec(0, 1, 1, 1, false));
        c.observe(1, 0, &exec(0, 2, 1, 2, true));
        assert_eq!(c.speculative_divergences(), 1);
        c.observe(1, 0, &Event::RolledBack { slot: 0 });
        assert_eq!(c.speculative_divergences(), 0);
        assert_eq!(c.violations(), 0);
    }

    #[test]
    fn committed_speculation_is_checked_as_final() {
        let mut c = SafetyChecker::new(quorate_core::OrderGuarantee::Total);
        c.observe(0, 0, &exec(0, 1, 1, 1, false));
        c.observe(1, 0, &exec(0, 2, 1, 2, true));
        c.observe(1, 0, &exec(1, 2, 2, 3, true));
        assert_eq!(c.violations(), 0);
        // Committing slot 0 of replica 1 makes its disagreement a violation; slot 1 stays speculative.
        c.observe(1, 0, &Event::Committed { slot: 1 });
        assert_eq!(c.violations(), 1);
        assert!(c.descriptions()[0].contains("agreement"));
    }

    #[test]
    fn speculation_dies_with_a_crash() {
        let mut c = SafetyChecker::new(quorate_core::OrderGuarantee::Total);
        c.observe(0, 0, &exec(0, 1, 1, 1, false));
        // Replica 1 runs a different command at slot 0 speculatively, then crashes.
        c.observe(1, 0, &exec(0, 2, 1, 2, true));
        c.restarted(1);
        // After the restart it runs the agreed command finally: the dead speculation is not made final.
        c.observe(1, 0, &exec(0, 1, 1, 1, false));
        c.observe(1, 0, &Event::Committed { slot: 1 });
        assert_eq!(c.violations(), 0);
        // Without the restart the same events are a violation.
        let mut d = SafetyChecker::new(quorate_core::OrderGuarantee::Total);
        d.observe(0, 0, &exec(0, 1, 1, 1, false));
        d.observe(1, 0, &exec(0, 2, 1, 2, true));
        d.observe(1, 0, &Event::Committed { slot: 1 });
        assert_eq!(d.violations(), 1);
    }

    #[test]
    fn checkpoint_digests() {
        let mut c = SafetyChecker::new(quorate_core::OrderGuarantee::Total);
        c.observe(0, 0, &Event::Checkpoint { slot: 10, digest: Digest([1; 32]) });
        c.observe(1, 0, &Event::StateInstalled { slot: 10, digest: Digest([1; 32]) });
        assert_eq!(c.violations(), 0);
        c.observe(2, 0, &Event::Checkpoint { slot: 10, digest: Digest([2; 32]) });
        assert_eq!(c.violations(), 1);
    }

    fn op(invoke: u64, ret: Option<u64>) -> OpRecord {
        OpRecord { client: 0, correct: true, invoke, ret, op: Bytes::new(), read_only: false, reply: None }
    }

    #[test]
    fn liveness_rules() {
        // Completed in time after stabilisation.
        let l = check_liveness(&[op(0, Some(5)), op(5, Some(150))], 100, 100, 1000);
        assert!(l.ok && l.judged);
        // Pending at stabilisation, too late.
        let l = check_liveness(&[op(50, Some(250))], 100, 100, 1000);
        assert!(!l.ok, "{l:?}");
        // Never completes, but the run ends before the deadline.
        let l = check_liveness(&[op(950, None), op(0, Some(120))], 100, 100, 1000);
        assert!(l.ok, "{l:?}");
        // Never completes, deadline inside the run.
        let l = check_liveness(&[op(300, None), op(0, Some(120))], 100, 100, 1000);
        assert!(!l.ok);
        // Nothing at all completes after stabilisation.
        let l = check_liveness(&[op(0, Some(10))], 100, 100, 1000);
        assert!(!l.ok);
        assert!(l.detail.unwrap().contains("no operation"));
        // Not judged when the run is too short.
        let l = check_liveness(&[op(0, Some(10))], 100, 1000, 1000);
        assert!(l.ok && !l.judged);
        // Faulty clients are not judged.
        let mut f = op(300, None);
        f.correct = false;
        assert!(check_liveness(&[f, op(0, Some(150))], 100, 100, 1000).ok);
    }
}

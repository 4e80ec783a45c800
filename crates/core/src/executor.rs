//! The executor: runs a [`Service`] in the agreed order, once per request,
//! with speculative execution and rollback, state digests and checkpoints.
//! Protocols execute only through it, so no protocol writes its own.

use crate::crypto::Digest;
use crate::invariant::InOrder;
use crate::machine::{Event, Outbox, Protocol};
use crate::request::{Freshness, Request, RequestTable};
use crate::service::{ExecCtx, RestoreError, Service};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The replicated state after `slot` operations: service snapshot and
/// request table, encoded, with its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Operations executed.
    pub slot: u64,
    /// Encoded (service snapshot, request table).
    pub state: Bytes,
    /// Digest of `state` and `slot`.
    pub digest: Digest,
}

impl Checkpoint {
    fn build(slot: u64, snapshot: Bytes, table: &RequestTable) -> Checkpoint {
        let mut encoded = crate::wire::encode(&(snapshot, table));
        // Kept until the checkpoint is stable, by every replica: not the
        // encoder's spare capacity too (up to as much again).
        encoded.shrink_to_fit();
        let state = Bytes::from(encoded);
        let digest = Checkpoint::digest_of(slot, &state);
        Checkpoint { slot, state, digest }
    }
    /// The digest a checkpoint of `state` at `slot` must carry.
    pub fn digest_of(slot: u64, state: &[u8]) -> Digest {
        Digest::of_parts(&[b"quorate-checkpoint", &slot.to_le_bytes(), state])
    }
    /// Whether the digest matches the contents (received checkpoints).
    pub fn is_consistent(&self) -> bool {
        Checkpoint::digest_of(self.slot, &self.state) == self.digest
    }
}

/// What executing a request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Executed now; the reply.
    Executed(Bytes),
    /// Executed before (the client's last request): the cached reply.
    Repeat(Bytes),
    /// Older than the client's last executed request: nothing to do.
    Stale,
}

#[derive(Clone, Debug)]
struct Exec {
    req: Request,
    instance: u64,
    timestamp: u64,
}

/// State saved at the start of a run of speculative executions.
struct SpecBase {
    snapshot: Bytes,
    table: RequestTable,
    slot: u64,
    /// Executions after the base that became final.
    committed: Vec<Exec>,
    /// Executions after those that are still speculative.
    pending: Vec<Exec>,
}

/// Ordered, speculative and read-only execution over one service.
pub struct Executor {
    service: Box<dyn Service>,
    table: RequestTable,
    slot: u64,
    spec: Option<SpecBase>,
    /// The next slot to become final: each slot becomes final once, in order.
    finals: InOrder,
}

impl Executor {
    /// An executor over a fresh service.
    pub fn new(service: Box<dyn Service>) -> Self {
        Executor { service, table: RequestTable::default(), slot: 0, spec: None, finals: InOrder::default() }
    }

    /// The next execution slot (= operations executed).
    pub fn slot(&self) -> u64 {
        self.slot
    }
    /// The request table.
    pub fn table(&self) -> &RequestTable {
        &self.table
    }
    /// The service (for `validate` and `conflicts`).
    pub fn service(&self) -> &dyn Service {
        self.service.as_ref()
    }
    /// Whether speculative executions are outstanding.
    pub fn speculating(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| !s.pending.is_empty())
    }

    /// Execute a request in its final position.
    pub fn execute<P: Protocol>(
        &mut self,
        req: &Request,
        instance: u64,
        timestamp: u64,
        out: &mut Outbox<P>,
    ) -> Outcome {
        // Execution follows the agreed order: a final execution comes after
        // every speculative one became final or was undone (EZBFT §IV-B, Zyzzyva).
        crate::invariant!(!self.speculating(), "executor: final execution while speculative executions are pending");
        let outcome = self.run(req, instance, timestamp, false, out);
        if matches!(outcome, Outcome::Executed(_)) {
            // Slots become final once each, in order (the safety property of SMR:
            // every correct replica executes the same sequence, each request once).
            self.finals.report(self.slot - 1, "executor: final slot");
        }
        if let Some(spec) = &mut self.spec {
            if matches!(outcome, Outcome::Executed(_)) {
                spec.committed.push(Exec { req: req.clone(), instance, timestamp });
            }
        }
        outcome
    }

    /// Execute a request speculatively: it may be undone by [`Executor::rollback`].
    pub fn execute_speculative<P: Protocol>(
        &mut self,
        req: &Request,
        instance: u64,
        timestamp: u64,
        out: &mut Outbox<P>,
    ) -> Outcome {
        if self.spec.is_none() {
            self.spec = Some(SpecBase {
                snapshot: self.service.snapshot(),
                table: self.table.clone(),
                slot: self.slot,
                committed: Vec::new(),
                pending: Vec::new(),
            });
        }
        let outcome = self.run(req, instance, timestamp, true, out);
        if matches!(outcome, Outcome::Executed(_)) {
            if let Some(spec) = &mut self.spec {
                spec.pending.push(Exec { req: req.clone(), instance, timestamp });
            }
        }
        outcome
    }

    /// Make the oldest `count` speculative executions final.
    pub fn commit_speculative<P: Protocol>(&mut self, count: usize, out: &mut Outbox<P>) {
        let Some(spec) = &mut self.spec else { return };
        let n = count.min(spec.pending.len());
        if n == 0 {
            return;
        }
        let done: Vec<Exec> = spec.pending.drain(..n).collect();
        for k in 0..n as u64 {
            self.finals
                .report(spec.slot + spec.committed.len() as u64 + k, "executor: final slot (speculative commit)");
        }
        spec.committed.extend(done);
        if spec.pending.is_empty() {
            // Everything is final: the saved base is no longer needed.
            self.spec = None;
        }
        out.event(Event::Committed { slot: self.final_slot() });
    }

    /// Operations executed finally (the speculative ones not counted).
    pub fn final_slot(&self) -> u64 {
        match &self.spec {
            Some(spec) => spec.slot + spec.committed.len() as u64,
            None => self.slot,
        }
    }

    /// Undo every speculative execution; returns the undone requests in
    /// execution order so the protocol can re-execute them in their final order.
    pub fn rollback<P: Protocol>(&mut self, out: &mut Outbox<P>) -> Result<Vec<Request>, RestoreError> {
        let Some(spec) = self.spec.take() else { return Ok(Vec::new()) };
        if spec.pending.is_empty() {
            return Ok(Vec::new());
        }
        self.service.restore(&spec.snapshot)?;
        self.table = spec.table;
        self.slot = spec.slot;
        let mut silent = Outbox::<P>::new();
        for e in &spec.committed {
            self.run(&e.req, e.instance, e.timestamp, false, &mut silent);
        }
        out.event(Event::RolledBack { slot: self.slot });
        Ok(spec.pending.into_iter().map(|e| e.req).collect())
    }

    fn run<P: Protocol>(
        &mut self,
        req: &Request,
        instance: u64,
        timestamp: u64,
        speculative: bool,
        out: &mut Outbox<P>,
    ) -> Outcome {
        match self.table.freshness(req.client, req.seq) {
            Freshness::Repeat(r) => Outcome::Repeat(r),
            Freshness::Stale => Outcome::Stale,
            Freshness::New => {
                let ctx = ExecCtx { slot: self.slot, instance, timestamp, client: req.client, seq: req.seq };
                let reply = self.service.execute(&req.op, &ctx);
                let op = Digest::of(&req.op);
                self.table.record(req.client, req.seq, op, reply.clone());
                out.event(Event::Executed { slot: self.slot, client: req.client, seq: req.seq, op, speculative });
                self.slot += 1;
                Outcome::Executed(reply)
            }
        }
    }

    /// Answer a read-only operation from the current state.
    pub fn query(&self, op: &[u8]) -> Bytes {
        self.service.query(op)
    }

    /// A checkpoint of final state only: while speculative executions are
    /// pending, the state saved when speculation began (at its slot).
    pub fn checkpoint(&self) -> Checkpoint {
        match &self.spec {
            Some(spec) if !spec.pending.is_empty() => Checkpoint::build(spec.slot, spec.snapshot.clone(), &spec.table),
            _ => Checkpoint::build(self.slot, self.service.snapshot(), &self.table),
        }
    }

    /// The slot a checkpoint taken now would carry (see [`Executor::checkpoint`]).
    pub fn checkpoint_slot(&self) -> u64 {
        match &self.spec {
            Some(spec) if !spec.pending.is_empty() => spec.slot,
            _ => self.slot,
        }
    }

    /// Digest of the current state (as a checkpoint now would carry).
    pub fn state_digest(&self) -> Digest {
        self.checkpoint().digest
    }

    /// Replace the state with a checkpoint (state transfer, recovery).
    pub fn install<P: Protocol>(&mut self, cp: &Checkpoint, out: &mut Outbox<P>) -> Result<(), RestoreError> {
        if !cp.is_consistent() {
            return Err(RestoreError("checkpoint digest does not match its contents".into()));
        }
        let (snapshot, table): (Bytes, RequestTable) =
            crate::wire::decode(&cp.state, usize::MAX).map_err(|e| RestoreError(e.to_string()))?;
        // State transfer moves forward: slots already final are never undone
        // (or executed again after the install).
        self.finals.skip_to(cp.slot, "executor: installed state");
        self.service.restore(&snapshot)?;
        self.table = table;
        self.slot = cp.slot;
        self.spec = None;
        out.event(Event::StateInstalled { slot: cp.slot, digest: cp.digest });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClientId;
    use crate::machine::*;

    /// A log of operations: state = concatenation, reply = length.
    #[derive(Default)]
    struct Log(Vec<u8>);
    impl Service for Log {
        fn execute(&mut self, op: &[u8], _ctx: &ExecCtx) -> Bytes {
            self.0.extend_from_slice(op);
            Bytes::from(self.0.len().to_le_bytes().to_vec())
        }
        fn query(&self, _op: &[u8]) -> Bytes {
            Bytes::from(self.0.clone())
        }
        fn snapshot(&self) -> Bytes {
            Bytes::from(self.0.clone())
        }
        fn restore(&mut self, s: &[u8]) -> Result<(), RestoreError> {
            self.0 = s.to_vec();
            Ok(())
        }
    }

    use crate::testing::T;

    fn req(c: u64, seq: u64, op: &[u8]) -> Request {
        Request { client: ClientId(c), seq, op: Bytes::copy_from_slice(op), read_only: false }
    }

    #[test]
    fn at_most_once() {
        let mut ex = Executor::new(Box::new(Log::default()));
        let mut out = Outbox::<T>::new();
        assert!(matches!(ex.execute(&req(1, 1, b"a"), 0, 0, &mut out), Outcome::Executed(_)));
        assert!(matches!(ex.execute(&req(1, 1, b"a"), 0, 0, &mut out), Outcome::Repeat(_)));
        assert!(matches!(ex.execute(&req(1, 2, b"b"), 0, 0, &mut out), Outcome::Executed(_)));
        assert_eq!(ex.execute(&req(1, 1, b"a"), 0, 0, &mut out), Outcome::Stale);
        assert_eq!(ex.slot(), 2);
        assert_eq!(ex.query(b""), Bytes::from_static(b"ab"));
    }

    #[test]
    fn speculation_rolls_back_and_commits() {
        let mut ex = Executor::new(Box::new(Log::default()));
        let mut out = Outbox::<T>::new();
        ex.execute(&req(1, 1, b"a"), 0, 0, &mut out);
        ex.execute_speculative(&req(2, 1, b"b"), 1, 0, &mut out);
        ex.execute_speculative(&req(3, 1, b"c"), 1, 0, &mut out);
        ex.commit_speculative(1, &mut out);
        assert_eq!(ex.final_slot(), 2);
        assert!(ex.speculating());
        let undone = ex.rollback(&mut out).unwrap();
        assert_eq!(undone, vec![req(3, 1, b"c")]);
        assert_eq!(ex.query(b""), Bytes::from_static(b"ab"));
        assert_eq!(ex.slot(), 2);
        // The undone request is new again.
        assert!(matches!(ex.execute(&req(3, 1, b"d"), 2, 0, &mut out), Outcome::Executed(_)));
        assert_eq!(ex.query(b""), Bytes::from_static(b"abd"));
        // Committing everything drops the base.
        ex.execute_speculative(&req(4, 1, b"e"), 3, 0, &mut out);
        ex.commit_speculative(5, &mut out);
        assert_eq!(ex.final_slot(), 4);
        assert!(!ex.speculating());
        assert!(ex.rollback(&mut out).unwrap().is_empty());
        assert_eq!(ex.query(b""), Bytes::from_static(b"abde"));
    }

    #[test]
    fn checkpoints_roundtrip_and_detect_tampering() {
        let mut ex = Executor::new(Box::new(Log::default()));
        let mut out = Outbox::<T>::new();
        ex.execute(&req(1, 1, b"xyz"), 0, 0, &mut out);
        let cp = ex.checkpoint();
        let mut other = Executor::new(Box::new(Log::default()));
        other.install(&cp, &mut out).unwrap();
        assert_eq!(other.state_digest(), ex.state_digest());
        assert_eq!(other.slot(), 1);
        assert!(matches!(other.execute(&req(1, 1, b"xyz"), 0, 0, &mut out), Outcome::Repeat(_)));
        let mut bad = cp.clone();
        bad.slot = 5;
        assert!(other.install(&bad, &mut out).is_err());
    }

    #[test]
    #[should_panic(expected = "invariant violated: executor: installed state: moved back from 2 to 1")]
    fn installing_older_state_would_execute_slots_twice() {
        let mut ex = Executor::new(Box::new(Log::default()));
        let mut out = Outbox::<T>::new();
        ex.execute(&req(1, 1, b"a"), 0, 0, &mut out);
        let old = ex.checkpoint();
        ex.execute(&req(1, 2, b"b"), 0, 0, &mut out);
        ex.install(&old, &mut out).unwrap();
    }

    #[test]
    #[should_panic(expected = "invariant violated: executor: final execution while speculative")]
    fn final_execution_during_speculation_fires() {
        let mut ex = Executor::new(Box::new(Log::default()));
        let mut out = Outbox::<T>::new();
        ex.execute_speculative(&req(1, 1, b"a"), 0, 0, &mut out);
        ex.execute(&req(2, 1, b"b"), 0, 0, &mut out);
    }

    #[test]
    fn installing_newer_state_and_rollbacks_keep_final_slots_in_order() {
        let mut ex = Executor::new(Box::new(Log::default()));
        let mut other = Executor::new(Box::new(Log::default()));
        let mut out = Outbox::<T>::new();
        for s in 1..=3 {
            other.execute(&req(1, s, b"x"), 0, 0, &mut out);
        }
        ex.execute(&req(1, 1, b"x"), 0, 0, &mut out);
        ex.install(&other.checkpoint(), &mut out).unwrap();
        ex.execute_speculative(&req(2, 1, b"y"), 1, 0, &mut out);
        ex.execute_speculative(&req(3, 1, b"z"), 1, 0, &mut out);
        ex.commit_speculative(1, &mut out);
        ex.rollback(&mut out).unwrap();
        ex.execute(&req(3, 1, b"z"), 2, 0, &mut out);
        assert_eq!(ex.final_slot(), 5);
    }
}

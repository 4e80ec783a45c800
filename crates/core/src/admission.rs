//! Client REQUEST admission, shared by the protocols that keep a pool of
//! pending requests until they are executed (PBFT, Mod-SMaRt, DQBFT):
//! what a REQUEST from a client means against the request table, which
//! requests join the pool (at most one per client, its latest), their
//! timers, arrival order for oldest-first batching, and pruning once
//! executed. Decision 0019 records the rule for a request that meets a
//! pending one of its client.

use crate::crypto::Digest;
use crate::ids::ClientId;
use crate::request::{Freshness, RequestCheck, RequestTable, SignedRequest};
use crate::time::Time;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;

/// A request waiting to be executed.
#[derive(Clone, Debug)]
pub struct Pending<X> {
    /// The request.
    pub req: SignedRequest,
    /// When its timer (re)started.
    pub since: Time,
    /// Arrival order (batches take the oldest first).
    pub order: u64,
    /// What the protocol keeps with it (its D-instance, its expiries, ...).
    pub tag: X,
}

/// What a REQUEST straight from a client means before admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Not executed: go on to [`RequestPool::admit`].
    New,
    /// A retransmission of the client's last executed request: resend this reply.
    Executed(Bytes),
    /// Refused, for this reason (to count against the client).
    Refused(&'static str),
}

/// What [`RequestPool::admit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Now pending (new, or it replaced an older request of its client).
    Added,
    /// Pending already, identical.
    Known,
    /// Not kept, nothing wrong with the sender: executed already, or its
    /// client has a pending request at this or a later sequence number.
    Ignored,
    /// Not kept: invalid, or the pool is full (the reason, to count against the sender).
    Refused(&'static str),
}

impl Admitted {
    /// Whether the request is pending now.
    pub fn pending(&self) -> bool {
        matches!(self, Admitted::Added | Admitted::Known)
    }
}

/// Pending requests, at most one per client (its latest).
#[derive(Clone, Debug)]
pub struct RequestPool<X> {
    pending: HashMap<ClientId, Pending<X>>,
    arrivals: u64,
    /// Most clients with a pending request (bounds memory against floods of clients).
    capacity: usize,
}

impl<X> RequestPool<X> {
    /// An empty pool holding requests of at most `capacity` clients.
    pub fn new(capacity: usize) -> Self {
        RequestPool { pending: HashMap::new(), arrivals: 0, capacity }
    }

    /// Classify a REQUEST that client `from` sent itself: it must name its
    /// sender; an executed one is answered again (if it is the same
    /// operation); an older one, or a sequence number reused for another
    /// operation (executed or pending), is refused.
    pub fn arrival(&self, table: &RequestTable, from: ClientId, req: &SignedRequest) -> Arrival {
        let c = req.req.client;
        if c != from {
            return Arrival::Refused("request names another client");
        }
        match table.freshness(c, req.req.seq) {
            Freshness::Repeat(reply) => {
                if table.last_op(c) != Some(Digest::of(&req.req.op)) {
                    Arrival::Refused("sequence number reused for another operation")
                } else {
                    Arrival::Executed(reply)
                }
            }
            Freshness::Stale => Arrival::Refused("stale sequence number"),
            Freshness::New => {
                if self.pending.get(&c).is_some_and(|p| p.req.req.seq == req.req.seq && p.req.req.op != req.req.op) {
                    Arrival::Refused("sequence number reused for another operation")
                } else {
                    Arrival::New
                }
            }
        }
    }

    /// Keep `req` (from a client, a forward, a STOP, ...) if it is new and
    /// fit for ordering. A pending request of the same client at the same
    /// or a later sequence number keeps its place (decision 0019): an
    /// identical one is `Known`, anything else `Ignored`. A later sequence
    /// number replaces the client's pending request (the client moved on).
    pub fn admit(&mut self, now: Time, req: SignedRequest, check: &RequestCheck<'_>, tag: X) -> Admitted {
        let c = req.req.client;
        if let Some(p) = self.pending.get(&c) {
            if p.req == req {
                return Admitted::Known;
            }
            if p.req.req.seq >= req.req.seq {
                return Admitted::Ignored;
            }
        }
        if !matches!(check.exec.table().freshness(c, req.req.seq), Freshness::New) {
            return Admitted::Ignored;
        }
        if let Err(why) = check.request(&req) {
            return Admitted::Refused(why);
        }
        if !self.pending.contains_key(&c) && self.pending.len() >= self.capacity {
            return Admitted::Refused("too many pending requests");
        }
        self.arrivals += 1;
        self.pending.insert(c, Pending { req, since: now, order: self.arrivals, tag });
        Admitted::Added
    }

    /// Drop the requests the table shows executed.
    pub fn prune(&mut self, table: &RequestTable) {
        self.pending.retain(|c, p| p.req.req.seq > table.last_seq(*c));
    }

    /// Drop `client`'s pending request if its sequence number is at most `seq`.
    pub fn remove_up_to(&mut self, client: ClientId, seq: u64) {
        if self.pending.get(&client).is_some_and(|p| p.req.req.seq <= seq) {
            self.pending.remove(&client);
        }
    }

    /// Restart every request's timer.
    pub fn restart_timers(&mut self, now: Time) {
        for p in self.pending.values_mut() {
            p.since = now;
        }
    }

    /// Whether some request has waited `timeout` since its timer started.
    pub fn any_expired(&self, now: Time, timeout: Duration) -> bool {
        self.pending.values().any(|p| now.since(p.since) >= timeout)
    }

    /// Every pending request, oldest arrival first.
    pub fn oldest_first(&self) -> impl Iterator<Item = &Pending<X>> {
        let mut v: Vec<&Pending<X>> = self.pending.values().collect();
        v.sort_by_key(|p| p.order);
        v.into_iter()
    }

    /// Up to `max` pending requests, oldest arrival first.
    pub fn oldest(&self, max: usize) -> Vec<SignedRequest> {
        self.oldest_first().take(max).map(|p| p.req.clone()).collect()
    }

    /// Whether exactly `req` is pending (it was checked on arrival).
    pub fn holds(&self, req: &SignedRequest) -> bool {
        self.pending.get(&req.req.client).is_some_and(|p| p.req == *req)
    }

    /// `client`'s pending request.
    pub fn get(&self, client: &ClientId) -> Option<&Pending<X>> {
        self.pending.get(client)
    }

    /// `client`'s pending request, to change its timer or tag.
    pub fn get_mut(&mut self, client: &ClientId) -> Option<&mut Pending<X>> {
        self.pending.get_mut(client)
    }

    /// Every pending request, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Pending<X>> {
        self.pending.values()
    }

    /// Every pending request, in no particular order, to change timers or tags.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Pending<X>> {
        self.pending.values_mut()
    }

    /// The clients with a pending request.
    pub fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.pending.keys().copied()
    }

    /// Number of pending requests.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Ed25519Crypto;
    use crate::executor::Executor;
    use crate::ids::NodeId;
    use crate::machine::Outbox;
    use crate::request::Request;
    use crate::service::{ExecCtx, RestoreError, Service};
    use crate::testing::T;

    /// Replies with the operation; refuses the operation `bad`.
    struct Echo;
    impl Service for Echo {
        fn execute(&mut self, op: &[u8], _ctx: &ExecCtx) -> Bytes {
            Bytes::copy_from_slice(op)
        }
        fn query(&self, _op: &[u8]) -> Bytes {
            Bytes::new()
        }
        fn snapshot(&self) -> Bytes {
            Bytes::new()
        }
        fn restore(&mut self, _s: &[u8]) -> Result<(), RestoreError> {
            Ok(())
        }
        fn validate(&self, op: &[u8]) -> bool {
            op != b"bad"
        }
    }

    fn req(c: u64, seq: u64, op: &str) -> SignedRequest {
        SignedRequest::unsigned(Request {
            client: ClientId(c),
            seq,
            op: Bytes::copy_from_slice(op.as_bytes()),
            read_only: false,
        })
    }

    struct Fixture {
        exec: Executor,
        crypto: Ed25519Crypto,
    }

    impl Fixture {
        fn new() -> Self {
            let crypto = Ed25519Crypto::deterministic(1, &[NodeId::Client(ClientId(1))]).remove(0);
            Fixture { exec: Executor::new(Box::new(Echo)), crypto }
        }
        fn check(&self) -> RequestCheck<'_> {
            RequestCheck::new(&self.exec, &self.crypto, false, 10)
        }
        fn execute(&mut self, r: &SignedRequest) {
            let mut out = Outbox::<T>::new();
            self.exec.execute(&r.req, 0, 0, &mut out);
        }
    }

    fn at(ms: u64) -> Time {
        Time::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn admits_new_requests_in_arrival_order() {
        let fx = Fixture::new();
        let mut pool = RequestPool::new(10);
        for (i, c) in [3, 1, 2].into_iter().enumerate() {
            assert_eq!(pool.admit(at(i as u64), req(c, 1, "x"), &fx.check(), ()), Admitted::Added);
        }
        let order: Vec<u64> = pool.oldest_first().map(|p| p.req.req.client.0).collect();
        assert_eq!(order, vec![3, 1, 2]);
        let two: Vec<u64> = pool.oldest(2).iter().map(|r| r.req.client.0).collect();
        assert_eq!(two, vec![3, 1]);
        // A later request of client 3 replaces its pending one and goes to the back.
        assert_eq!(pool.admit(at(5), req(3, 2, "y"), &fx.check(), ()), Admitted::Added);
        let order: Vec<u64> = pool.oldest_first().map(|p| p.req.req.client.0).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.get(&ClientId(3)).map(|p| p.req.req.seq), Some(2));
    }

    #[test]
    fn a_pending_request_keeps_its_place() {
        let fx = Fixture::new();
        let mut pool = RequestPool::new(10);
        assert_eq!(pool.admit(at(0), req(1, 2, "a"), &fx.check(), 7u32), Admitted::Added);
        // Identical: known. Same sequence number, other operation: ignored, not replaced.
        assert_eq!(pool.admit(at(1), req(1, 2, "a"), &fx.check(), 0), Admitted::Known);
        assert_eq!(pool.admit(at(1), req(1, 2, "b"), &fx.check(), 0), Admitted::Ignored);
        // An older one: ignored.
        assert_eq!(pool.admit(at(1), req(1, 1, "c"), &fx.check(), 0), Admitted::Ignored);
        let p = pool.get(&ClientId(1)).unwrap();
        assert_eq!((p.req.req.op.as_ref(), p.since, p.tag), (&b"a"[..], at(0), 7));
        assert!(pool.holds(&req(1, 2, "a")));
        assert!(!pool.holds(&req(1, 2, "b")));
        // A client's own REQUEST reusing the pending sequence number is refused.
        assert_eq!(
            pool.arrival(fx.exec.table(), ClientId(1), &req(1, 2, "b")),
            Arrival::Refused("sequence number reused for another operation")
        );
        assert_eq!(pool.arrival(fx.exec.table(), ClientId(1), &req(1, 2, "a")), Arrival::New);
    }

    #[test]
    fn executed_requests_are_answered_again_and_not_admitted() {
        let mut fx = Fixture::new();
        let mut pool: RequestPool<()> = RequestPool::new(10);
        fx.execute(&req(1, 2, "a"));
        let table = fx.exec.table();
        assert_eq!(pool.arrival(table, ClientId(1), &req(1, 2, "a")), Arrival::Executed(Bytes::from_static(b"a")));
        assert_eq!(
            pool.arrival(table, ClientId(1), &req(1, 2, "b")),
            Arrival::Refused("sequence number reused for another operation")
        );
        assert_eq!(pool.arrival(table, ClientId(1), &req(1, 1, "a")), Arrival::Refused("stale sequence number"));
        assert_eq!(pool.arrival(table, ClientId(2), &req(1, 3, "a")), Arrival::Refused("request names another client"));
        assert_eq!(pool.arrival(table, ClientId(1), &req(1, 3, "a")), Arrival::New);
        // Forwarded copies of executed requests are ignored, not refused.
        assert_eq!(pool.admit(at(0), req(1, 2, "a"), &fx.check(), ()), Admitted::Ignored);
        assert_eq!(pool.admit(at(0), req(1, 1, "a"), &fx.check(), ()), Admitted::Ignored);
        assert!(pool.is_empty());
    }

    #[test]
    fn invalid_requests_and_overflow_are_refused() {
        let fx = Fixture::new();
        let mut pool = RequestPool::new(1);
        assert_eq!(pool.admit(at(0), req(1, 1, "bad"), &fx.check(), ()), Admitted::Refused("invalid request"));
        let mut ro = req(1, 1, "a");
        ro.req.read_only = true;
        assert!(matches!(pool.admit(at(0), ro, &fx.check(), ()), Admitted::Refused(_)));
        assert_eq!(pool.admit(at(0), req(1, 1, "a"), &fx.check(), ()), Admitted::Added);
        assert_eq!(pool.admit(at(0), req(2, 1, "a"), &fx.check(), ()), Admitted::Refused("too many pending requests"));
        // A client already pending may still move on.
        assert_eq!(pool.admit(at(0), req(1, 2, "a"), &fx.check(), ()), Admitted::Added);
        let signed = RequestCheck::new(&fx.exec, &fx.crypto, true, 10);
        assert_eq!(pool.admit(at(0), req(1, 3, "a"), &signed, ()), Admitted::Refused("bad request signature"));
    }

    #[test]
    fn prune_and_remove_drop_executed_requests() {
        let mut fx = Fixture::new();
        let mut pool = RequestPool::new(10);
        for c in 1..=3 {
            pool.admit(at(0), req(c, 2, "a"), &fx.check(), ());
        }
        fx.execute(&req(1, 2, "a"));
        fx.execute(&req(2, 1, "a"));
        pool.prune(fx.exec.table());
        let mut left: Vec<u64> = pool.clients().map(|c| c.0).collect();
        left.sort_unstable();
        assert_eq!(left, vec![2, 3], "client 2 executed an older request only");
        pool.remove_up_to(ClientId(2), 1);
        assert_eq!(pool.len(), 2);
        pool.remove_up_to(ClientId(2), 2);
        assert_eq!(pool.clients().collect::<Vec<_>>(), vec![ClientId(3)]);
    }

    #[test]
    fn timers_expire_and_restart() {
        let fx = Fixture::new();
        let mut pool = RequestPool::new(10);
        pool.admit(at(0), req(1, 1, "a"), &fx.check(), ());
        pool.admit(at(50), req(2, 1, "a"), &fx.check(), ());
        let timeout = Duration::from_millis(100);
        assert!(!pool.any_expired(at(99), timeout));
        assert!(pool.any_expired(at(100), timeout));
        pool.restart_timers(at(100));
        assert!(!pool.any_expired(at(150), timeout));
        assert!(pool.values().all(|p| p.since == at(100)));
    }
}

//! Generic faulty clients: strategies that only tamper with the client
//! REQUESTs a correct client sends ([`Message::request_mut`]), written once
//! for every protocol.
//!
//! Hosts list [`strategies`] (the generic [`STRATEGIES`], then the
//! protocol's own [`Protocol::CLIENT_STRATEGIES`]) and build faulty clients
//! with [`build`]: a generic strategy wraps the protocol's correct client,
//! any other goes to [`Protocol::byzantine_client`].

use crate::crypto::{Crypto, Signature};
use crate::ids::{NodeId, ReplicaId};
use crate::machine::{ClientContext, ClientMachine, Effect, Input, Message, Outbox, Protocol, UnknownStrategy};
use crate::request::SignedRequest;
use crate::time::Time;
use bytes::Bytes;
use std::sync::Arc;

/// The generic client strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("bad-signature", "signs its requests wrongly"),
    ("reuse-seq", "sends the previous sequence number again with each new operation"),
    ("split-requests", "sends different operations under one sequence number to different replicas"),
];

/// Length of the all-zero signature `bad-signature` puts on a request (at
/// least; a longer real signature keeps its length).
pub const BAD_SIGNATURE_LEN: usize = 64;

/// Which generic strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bad-signature`: every request goes out with a zero signature.
    BadSignature,
    /// `reuse-seq`: before each request, the same operation under the
    /// previous request's sequence number (signed), to the same destination.
    ReuseSeq,
    /// `split-requests`: each request to every replica, odd replicas getting
    /// the operation with their index appended (each variant signed).
    SplitRequests,
}

impl Kind {
    /// The strategy named `name`, if it is a generic one.
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "bad-signature" => Some(Kind::BadSignature),
            "reuse-seq" => Some(Kind::ReuseSeq),
            "split-requests" => Some(Kind::SplitRequests),
            _ => None,
        }
    }
}

/// Wraps a correct client and tampers with the REQUESTs it sends.
pub struct FaultyClient<P: Protocol> {
    inner: Box<dyn ClientMachine<P>>,
    kind: Kind,
    n: u32,
    crypto: Arc<dyn Crypto>,
    last: Option<SignedRequest>,
}

/// Every client strategy of `P`: the generic ones, then its own.
pub fn strategies<P: Protocol>() -> Vec<(&'static str, &'static str)> {
    STRATEGIES.iter().chain(P::CLIENT_STRATEGIES).copied().collect()
}

/// A faulty client of `P` following `strategy`: a generic one wraps `P`'s
/// correct client (a generic name wins over a protocol's own of the same
/// name); any other is `P`'s to build.
pub fn build<P: Protocol>(
    strategy: &str,
    ctx: ClientContext<P::Keys>,
    config: &P::Config,
) -> Result<Box<dyn ClientMachine<P>>, UnknownStrategy> {
    match Kind::from_name(strategy) {
        Some(kind) => {
            let (n, crypto) = (ctx.membership.n(), ctx.crypto.clone());
            Ok(Box::new(FaultyClient::new(kind, P::client(ctx, config), n, crypto)))
        }
        None => P::byzantine_client(strategy, ctx, config),
    }
}

impl<P: Protocol> FaultyClient<P> {
    /// Wrap `inner` following `kind`.
    pub fn new(kind: Kind, inner: Box<dyn ClientMachine<P>>, n: usize, crypto: Arc<dyn Crypto>) -> Self {
        FaultyClient { inner, kind, n: n as u32, crypto, last: None }
    }

    fn rewrite(&mut self, inner_out: &mut Outbox<P>, out: &mut Outbox<P>) {
        for e in inner_out.drain() {
            let (to, mut msg) = match e {
                Effect::Send { to, msg } => (Some(to), msg),
                Effect::Broadcast { msg } => (None, msg),
                e => {
                    out.push(e);
                    continue;
                }
            };
            let Some(req) = msg.request_mut().cloned() else {
                out.push(match to {
                    Some(to) => Effect::Send { to, msg },
                    None => Effect::Broadcast { msg },
                });
                continue;
            };
            let send = |out: &mut Outbox<P>, m: P::Message| match to {
                Some(to) => out.send(to, m),
                None => out.broadcast(m),
            };
            match self.kind {
                Kind::BadSignature => {
                    let r = msg.request_mut().expect("checked above");
                    r.sig = Signature(vec![0; r.sig.0.len().max(BAD_SIGNATURE_LEN)]);
                    send(out, msg);
                }
                Kind::ReuseSeq => {
                    if let Some(prev) = &self.last {
                        let mut again = req.req.clone();
                        again.seq = prev.req.seq;
                        let mut m = msg.clone();
                        *m.request_mut().expect("checked above") = SignedRequest::sign(again, self.crypto.as_ref());
                        send(out, m);
                    }
                    self.last = Some(req);
                    send(out, msg);
                }
                Kind::SplitRequests => {
                    for r in 0..self.n {
                        let mut variant = req.req.clone();
                        if r % 2 == 1 {
                            let mut op = variant.op.to_vec();
                            op.push(r as u8);
                            variant.op = Bytes::from(op);
                        }
                        let mut m = msg.clone();
                        *m.request_mut().expect("checked above") = SignedRequest::sign(variant, self.crypto.as_ref());
                        out.send(NodeId::Replica(ReplicaId(r)), m);
                    }
                }
            }
        }
    }
}

impl<P: Protocol> ClientMachine<P> for FaultyClient<P> {
    fn invoke(&mut self, now: Time, op: Bytes, read_only: bool, out: &mut Outbox<P>) {
        let mut inner_out = Outbox::new();
        self.inner.invoke(now, op, read_only, &mut inner_out);
        self.rewrite(&mut inner_out, out);
    }

    fn handle(&mut self, now: Time, input: Input<P>, out: &mut Outbox<P>) {
        let mut inner_out = Outbox::new();
        self.inner.handle(now, input, &mut inner_out);
        self.rewrite(&mut inner_out, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Ed25519Crypto;
    use crate::ids::ClientId;
    use crate::request::Request;

    use crate::testing::{M, T};

    /// Sends each operation (seq 1, 2, ...) to replica 0 and a ping to all.
    struct Correct {
        seq: u64,
        crypto: Arc<dyn Crypto>,
    }
    impl ClientMachine<T> for Correct {
        fn invoke(&mut self, _: Time, op: Bytes, read_only: bool, out: &mut Outbox<T>) {
            self.seq += 1;
            let req = Request { client: ClientId(7), seq: self.seq, op, read_only };
            out.send(ReplicaId(0), M::Req(SignedRequest::sign(req, self.crypto.as_ref())));
            out.broadcast(M::Ping);
        }
        fn handle(&mut self, _: Time, _: Input<T>, _: &mut Outbox<T>) {}
    }

    /// Requests sent (to one replica, or broadcast when None).
    type Sent = Vec<(Option<NodeId>, SignedRequest)>;

    fn run(strategy: &str) -> (Sent, usize, Arc<dyn Crypto>) {
        let nodes: Vec<NodeId> =
            (0..4).map(|r| NodeId::Replica(ReplicaId(r))).chain([NodeId::Client(ClientId(7))]).collect();
        let keys = Ed25519Crypto::deterministic(3, &nodes);
        let client: Arc<dyn Crypto> = Arc::new(keys[4].clone());
        let replica: Arc<dyn Crypto> = Arc::new(keys[0].clone());
        let inner = Box::new(Correct { seq: 0, crypto: client.clone() });
        let kind = Kind::from_name(strategy).expect("a generic strategy");
        let mut c = FaultyClient::<T>::new(kind, inner, 4, client);
        let mut out = Outbox::new();
        c.invoke(Time::ZERO, Bytes::from_static(b"a"), false, &mut out);
        c.invoke(Time::ZERO, Bytes::from_static(b"b"), false, &mut out);
        let (mut reqs, mut pings) = (Vec::new(), 0);
        for e in out.drain() {
            match e {
                Effect::Send { to, msg: M::Req(r) } => reqs.push((Some(to), r)),
                Effect::Broadcast { msg: M::Req(r) } => reqs.push((None, r)),
                Effect::Broadcast { msg: M::Ping } => pings += 1,
                _ => panic!("unexpected effect"),
            }
        }
        (reqs, pings, replica)
    }

    #[test]
    fn strategies_are_named_and_others_refused() {
        for (name, _) in STRATEGIES {
            assert!(Kind::from_name(name).is_some(), "{name}");
        }
        assert!(Kind::from_name("duplicate-requests").is_none());
        // The core's test protocol has no client strategies of its own.
        assert_eq!(strategies::<T>(), STRATEGIES.to_vec());
    }

    #[test]
    fn bad_signature_spoils_every_request_and_nothing_else() {
        let (reqs, pings, replica) = run("bad-signature");
        assert_eq!(pings, 2);
        assert_eq!(reqs.len(), 2);
        for (i, (to, r)) in reqs.iter().enumerate() {
            assert_eq!(*to, Some(NodeId::Replica(ReplicaId(0))));
            assert_eq!(r.req.seq, i as u64 + 1);
            assert_eq!(r.sig.0, vec![0; BAD_SIGNATURE_LEN]);
            assert!(!r.verify(replica.as_ref()));
        }
    }

    #[test]
    fn reuse_seq_sends_the_previous_number_with_the_new_operation() {
        let (reqs, pings, replica) = run("reuse-seq");
        assert_eq!(pings, 2);
        let got: Vec<_> = reqs.iter().map(|(to, r)| (*to, r.req.seq, r.req.op.clone())).collect();
        let r0 = Some(NodeId::Replica(ReplicaId(0)));
        assert_eq!(
            got,
            vec![
                (r0, 1, Bytes::from_static(b"a")),
                (r0, 1, Bytes::from_static(b"b")),
                (r0, 2, Bytes::from_static(b"b"))
            ]
        );
        assert!(reqs.iter().all(|(_, r)| r.verify(replica.as_ref())));
    }

    #[test]
    fn split_requests_sends_odd_replicas_another_operation() {
        let (reqs, pings, replica) = run("split-requests");
        assert_eq!(pings, 2);
        assert_eq!(reqs.len(), 8);
        for (i, (to, r)) in reqs.iter().enumerate() {
            let replica_idx = (i % 4) as u32;
            assert_eq!(*to, Some(NodeId::Replica(ReplicaId(replica_idx))));
            assert_eq!(r.req.seq, i as u64 / 4 + 1);
            let base: &[u8] = if i < 4 { b"a" } else { b"b" };
            let mut op = base.to_vec();
            if replica_idx % 2 == 1 {
                op.push(replica_idx as u8);
            }
            assert_eq!(r.req.op.as_ref(), op.as_slice());
            assert!(r.verify(replica.as_ref()));
        }
    }
}

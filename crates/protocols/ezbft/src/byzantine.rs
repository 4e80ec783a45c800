//! Adversary strategies for EZBFT, for the simulator. Each wraps a correct
//! replica and rewrites what it receives or sends; a faulty replica signs
//! only with its own key.

use crate::config::Config;
use crate::messages::{InstanceId, Msg, Signed, SpecOrder, SpecReply};
use crate::replica::Replica;
use crate::Ezbft;
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::ReplicaId;
use quorate_core::machine::{Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::sync::Arc;

type Out = Outbox<Ezbft>;

/// Replica strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("silent", "sends nothing at all"),
    ("silent-leader", "never orders its clients' requests (a command-leader that stays silent); otherwise correct"),
    ("late-silent-leader", "correct for 10 s of virtual time, then a silent leader (to watch its clients recover)"),
    ("equivocate", "as command-leader, orders each request in a second slot too, for half of the replicas"),
    ("lie-result", "answers clients with wrong results (validly signed)"),
    ("drop-specorders", "ignores the SPECORDERs of other command-leaders"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    SilentLeader,
    LateSilentLeader,
    Equivocate,
    LieResult,
    DropSpecOrders,
}

/// Build a Byzantine replica.
pub fn replica(
    strategy: &str,
    ctx: ReplicaContext,
    cfg: &Config,
) -> Result<Box<dyn ReplicaMachine<Ezbft>>, UnknownStrategy> {
    let kind = match strategy {
        "silent" => Kind::Silent,
        "silent-leader" => Kind::SilentLeader,
        "late-silent-leader" => Kind::LateSilentLeader,
        "equivocate" => Kind::Equivocate,
        "lie-result" => Kind::LieResult,
        "drop-specorders" => Kind::DropSpecOrders,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let (id, n, crypto) = (ctx.id, ctx.membership.n() as u32, ctx.crypto.clone());
    Ok(Box::new(Adversary { inner: Replica::new(ctx, cfg.clone()), kind, id, n, crypto }))
}

struct Adversary {
    inner: Replica,
    kind: Kind,
    id: ReplicaId,
    n: u32,
    crypto: Arc<dyn Crypto>,
}

impl Adversary {
    /// Whether the input is dropped before the correct replica sees it.
    fn drops(&self, now: Time, input: &Input<Ezbft>) -> bool {
        let silent_leader = match self.kind {
            Kind::SilentLeader => true,
            Kind::LateSilentLeader => now.0 >= LATE.as_nanos() as u64,
            _ => false,
        };
        match (self.kind, input) {
            (_, Input::Message { msg, .. }) if silent_leader => {
                matches!(msg, Msg::Request(_) | Msg::RequestAll { .. } | Msg::ResendReq { .. })
            }
            (Kind::DropSpecOrders, Input::Message { msg, .. }) => matches!(msg, Msg::SpecOrder { .. }),
            _ => false,
        }
    }

    /// Rewrite what the correct replica sent.
    fn rewrite(&self, out: &mut Out) {
        let effects = std::mem::take(out.effects_mut());
        for e in effects {
            match (self.kind, e) {
                (Kind::Silent, Effect::Send { .. } | Effect::Broadcast { .. } | Effect::Multicast { .. }) => {}
                (Kind::LieResult, Effect::Send { to, msg: Msg::SpecReply(r) }) => {
                    out.push(Effect::Send { to, msg: Msg::SpecReply(Box::new(self.lie(*r))) });
                }
                (Kind::LieResult, Effect::Send { to, msg: Msg::CommitReply { inst, t, .. } }) => {
                    out.push(Effect::Send { to, msg: Msg::CommitReply { inst, t, result: wrong() } });
                }
                (Kind::Equivocate, Effect::Broadcast { msg: Msg::SpecOrder { order, request } })
                    if order.body.inst.space == self.id =>
                {
                    out.push(Effect::Broadcast {
                        msg: Msg::SpecOrder { order: order.clone(), request: request.clone() },
                    });
                    // The same request again in the next slot, for the replicas at an odd distance.
                    let o = &order.body;
                    let slot = o.inst.slot + 1;
                    let history = Replica::next_history(&o.history, slot, &o.request);
                    let body = SpecOrder { inst: InstanceId { space: self.id, slot }, history, ..o.clone() };
                    let twin = Signed::sign(body, self.crypto.as_ref());
                    let odd: Vec<ReplicaId> =
                        (1..self.n).step_by(2).map(|k| ReplicaId((self.id.0 + k) % self.n)).collect();
                    out.push(Effect::Multicast { to: odd, msg: Msg::SpecOrder { order: twin, request } });
                }
                (_, e) => out.push(e),
            }
        }
    }

    /// The reply with a wrong result, signed by us (so only its content is false).
    fn lie(&self, mut r: SpecReply) -> SpecReply {
        r.result = wrong();
        let mut body = r.reply.body.clone();
        body.result = Digest::of(&r.result);
        r.reply = Signed::sign(body, self.crypto.as_ref());
        r
    }
}

/// When `late-silent-leader` turns silent.
const LATE: std::time::Duration = std::time::Duration::from_secs(10);

fn wrong() -> Bytes {
    Bytes::from_static(b"\x01a lie")
}

impl ReplicaMachine<Ezbft> for Adversary {
    fn handle(&mut self, now: Time, input: Input<Ezbft>, out: &mut Out) {
        if self.drops(now, &input) {
            return;
        }
        self.inner.handle(now, input, out);
        self.rewrite(out);
    }

    fn state_digest(&self) -> Digest {
        self.inner.state_digest()
    }

    fn executed(&self) -> u64 {
        self.inner.executed()
    }
}

/// Client strategies: (name, description).
pub const CLIENT_STRATEGIES: &[(&str, &str)] = &[
    ("never-commit", "never sends COMMITFAST or COMMIT (delivers fast-path results, leaves its commands uncommitted)"),
    ("conflicting-commits", "on the slow path, sends COMMITs built from different quorums to different replicas"),
    ("reuse-timestamps", "also sends each request's timestamp again with another operation"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientKind {
    NeverCommit,
    ConflictingCommits,
    ReuseTimestamps,
}

/// Build a faulty client.
pub fn client(
    strategy: &str,
    ctx: quorate_core::machine::ClientContext,
    cfg: &Config,
) -> Result<Box<dyn quorate_core::machine::ClientMachine<Ezbft>>, UnknownStrategy> {
    let kind = match strategy {
        "never-commit" => ClientKind::NeverCommit,
        "conflicting-commits" => ClientKind::ConflictingCommits,
        "reuse-timestamps" => ClientKind::ReuseTimestamps,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let (n, f, crypto) = (ctx.membership.n(), ctx.membership.f(), ctx.crypto.clone());
    let id = ctx.id;
    Ok(Box::new(FaultyClient {
        inner: crate::client::Client::new(ctx, cfg.clone()),
        kind,
        id,
        n,
        f,
        crypto,
        replies: Vec::new(),
    }))
}

struct FaultyClient {
    inner: crate::client::Client,
    kind: ClientKind,
    id: quorate_core::ids::ClientId,
    n: usize,
    f: usize,
    crypto: Arc<dyn Crypto>,
    /// SPECREPLYs of the current request (for a second, different commit).
    replies: Vec<SpecReply>,
}

impl FaultyClient {
    fn rewrite(&mut self, out: &mut Out) {
        let effects = std::mem::take(out.effects_mut());
        for e in effects {
            match (self.kind, e) {
                (ClientKind::NeverCommit, Effect::Broadcast { msg: Msg::CommitFast { .. } | Msg::Commit { .. } }) => {}
                (ClientKind::ConflictingCommits, Effect::Broadcast { msg: Msg::Commit { commit, request, cert } }) => {
                    // A second certificate from another 2f+1 replies, if we have one.
                    let q = 2 * self.f + 1;
                    let chosen: Vec<ReplicaId> = cert.iter().map(|r| r.reply.body.replica).collect();
                    let mut other: Vec<SpecReply> =
                        self.replies.iter().filter(|r| !chosen.contains(&r.reply.body.replica)).cloned().collect();
                    other.extend(cert.iter().take(q.saturating_sub(other.len())).cloned());
                    let all: Vec<ReplicaId> = (0..self.n as u32).map(ReplicaId).collect();
                    let (a, b) = all.split_at(self.n / 2);
                    out.push(Effect::Multicast {
                        to: a.to_vec(),
                        msg: Msg::Commit { commit: commit.clone(), request: request.clone(), cert },
                    });
                    if other.len() == q && other.iter().all(|r| r.order == other[0].order) {
                        let deps: std::collections::BTreeSet<InstanceId> =
                            other.iter().flat_map(|r| r.reply.body.deps.iter().copied()).collect();
                        let seq = other.iter().map(|r| r.reply.body.seq).max().unwrap_or(0);
                        let body = crate::messages::CommitBody {
                            client: self.id,
                            inst: commit.body.inst,
                            deps: crate::messages::canonical_deps(deps),
                            seq,
                        };
                        let twin = Signed::sign(body, self.crypto.as_ref());
                        out.push(Effect::Multicast {
                            to: b.to_vec(),
                            msg: Msg::Commit { commit: twin, request, cert: other },
                        });
                    }
                }
                (ClientKind::ReuseTimestamps, Effect::Send { to, msg: Msg::Request(r) }) => {
                    out.push(Effect::Send { to, msg: Msg::Request(r.clone()) });
                    // The same timestamp again, with another operation.
                    let mut req = r.req.clone();
                    let mut op = req.op.to_vec();
                    op.push(0);
                    req.op = Bytes::from(op);
                    let twin = quorate_core::request::SignedRequest::sign(req, self.crypto.as_ref());
                    out.push(Effect::Send { to, msg: Msg::Request(twin) });
                }
                (_, e) => out.push(e),
            }
        }
    }
}

impl quorate_core::machine::ClientMachine<Ezbft> for FaultyClient {
    fn invoke(&mut self, now: Time, op: Bytes, read_only: bool, out: &mut Out) {
        self.replies.clear();
        self.inner.invoke(now, op, read_only, out);
        self.rewrite(out);
    }

    fn handle(&mut self, now: Time, input: Input<Ezbft>, out: &mut Out) {
        if let Input::Message { msg: Msg::SpecReply(r), .. } = &input {
            if !self.replies.iter().any(|x| x.reply.body.replica == r.reply.body.replica) {
                self.replies.push((**r).clone());
            }
        }
        self.inner.handle(now, input, out);
        self.rewrite(out);
    }
}

//! The EZBFT client (§IV-A step 4, §IV-C): send the request to the nearest
//! replica; with 3f+1 matching SPECREPLYs deliver at once and send
//! COMMITFAST; otherwise, once 2f+1 replies are in and a short wait for the
//! rest has passed, combine them into a COMMIT and deliver on 2f+1 matching
//! COMMITREPLYs.

use crate::config::Config;
use crate::messages::{combine, request_digest, CommitBody, Msg, Signed, SpecReply};
use crate::{Ezbft, Timer};
use quorate_core::crypto::Crypto;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{ClientContext, ClientMachine, Effect, Input, Outbox};
use quorate_core::membership::Membership;
use quorate_core::request::{Request, SignedRequest};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

type Out = Outbox<Ezbft>;

enum Phase {
    /// Collecting SPECREPLYs.
    Speculative { slow_armed: bool },
    /// COMMIT sent; collecting COMMITREPLYs.
    Committing { commit: Box<Msg> },
}

struct Outstanding {
    request: SignedRequest,
    started: Time,
    /// Valid SPECREPLYs by sender.
    replies: BTreeMap<ReplicaId, SpecReply>,
    /// Final results of an already executed request (CACHEDREPLY), by sender.
    cached: BTreeMap<ReplicaId, Bytes>,
    /// Final results in COMMITREPLYs, by sender.
    finals: BTreeMap<ReplicaId, Bytes>,
    /// Suspicion timeouts so far.
    suspicions: u32,
    /// A proof of misbehaviour was sent for this request.
    accused: bool,
    /// Replicas that said our command-leader's space is frozen.
    frozen_reports: BTreeSet<ReplicaId>,
    phase: Phase,
}

/// An EZBFT client: one operation at a time.
pub struct Client {
    id: ClientId,
    m: Membership,
    crypto: Arc<dyn Crypto>,
    cfg: Config,
    nearest: Vec<ReplicaId>,
    /// Index in `nearest` of the replica used as command-leader.
    leader: usize,
    t: u64,
    current: Option<Outstanding>,
    /// When the client last moved away from a replica, and the latest time seen.
    moved_at: Option<Time>,
    now: Time,
}

impl Client {
    /// A client.
    pub fn new(ctx: ClientContext, cfg: Config) -> Self {
        let nearest = if ctx.nearest.is_empty() { ctx.membership.replicas().collect() } else { ctx.nearest };
        Client {
            id: ctx.id,
            m: ctx.membership,
            crypto: ctx.crypto,
            cfg,
            nearest,
            leader: 0,
            t: ctx.first_seq,
            current: None,
            moved_at: None,
            now: Time(0),
        }
    }

    /// The command-leader this client uses.
    fn leader(&self) -> ReplicaId {
        self.nearest[self.leader % self.nearest.len()]
    }

    fn on_spec_reply(&mut self, now: Time, from: ReplicaId, reply: SpecReply, out: &mut Out) {
        let Some(cur) = &mut self.current else { return };
        let b = &reply.reply.body;
        if !matches!(cur.phase, Phase::Speculative { .. })
            || b.replica != from
            || b.client != self.id
            || b.t != cur.request.req.seq
            || b.request != request_digest(&cur.request)
            || !reply.verify(&self.m, self.crypto.as_ref())
        {
            return;
        }
        // All replies must be about one order: the first valid one sets the instance.
        if let Some(other) = cur.replies.values().next() {
            if other.order != reply.order {
                let (a, b) = (&other.order.body, &reply.order.body);
                if a.inst.space == b.inst.space && a.owner == b.owner && a.inst != b.inst && !cur.accused {
                    // The owner ordered our request in two slots: proof of misbehaviour (§IV-D 4.4).
                    cur.accused = true;
                    out.broadcast(Msg::Pom { a: Box::new(other.clone()), b: Box::new(reply) });
                }
                return;
            }
        }
        cur.replies.insert(from, reply);
        let n = self.m.n();
        let first = cur.replies.values().next().map(|r| (r.reply.body.clone(), r.result.clone()));
        if let Some((body, result)) = first {
            let matching = cur.replies.values().filter(|r| r.reply.body.matches(&body) && r.result == result).count();
            if matching == n {
                // Fast path: deliver now, commit in the background.
                let cert: Vec<SpecReply> = cur.replies.values().cloned().collect();
                out.broadcast(Msg::CommitFast { request: cur.request.clone(), cert });
                self.finish(result, out);
                return;
            }
        }
        if cur.replies.len() == n {
            // Everybody answered and they differ: waiting longer cannot help.
            return self.slow_path(out);
        }
        if cur.replies.len() >= self.m.quorum() {
            if let Phase::Speculative { slow_armed: armed @ false } = &mut cur.phase {
                *armed = true;
                let took = Duration::from_nanos(now.0.saturating_sub(cur.started.0));
                let wait = took.checked_mul(self.cfg.slow_path_wait_percent).map_or(Duration::MAX, |d| d / 100);
                let wait = wait.max(self.cfg.slow_path_min_wait);
                out.set_timer(Timer::SlowPath, wait);
            }
        }
    }

    /// Combine 2f+1 replies into a COMMIT (see [`combine`]).
    fn slow_path(&mut self, out: &mut Out) {
        let Some(cur) = &mut self.current else { return };
        let Some((inst, deps, seq, cert)) = combine(&cur.replies, &self.m) else { return };
        let body = CommitBody { client: self.id, inst, deps, seq };
        let commit =
            Msg::Commit { commit: Signed::sign(body, self.crypto.as_ref()), request: cur.request.clone(), cert };
        out.broadcast(commit.clone());
        out.cancel_timer(Timer::SlowPath);
        out.set_timer(Timer::Retransmit, self.cfg.client_retransmit);
        cur.phase = Phase::Committing { commit: Box::new(commit) };
    }

    /// COMMITREPLY: a final result. Taken in any phase: an owner change may
    /// have committed the request (then replicas send it unasked), or it may
    /// be in two spaces after the client moved; a request's final result is
    /// the same wherever it ran.
    fn on_commit_reply(&mut self, from: ReplicaId, t: u64, result: Bytes, out: &mut Out) {
        let q = self.m.quorum();
        let Some(cur) = &mut self.current else { return };
        if t != cur.request.req.seq || !self.m.contains(from) {
            return;
        }
        cur.finals.insert(from, result.clone());
        if cur.finals.values().filter(|r| **r == result).count() >= q {
            self.finish(result, out);
        }
    }

    /// CACHEDREPLY: the request was executed already; f+1 equal results include a correct replica's.
    fn on_cached_reply(&mut self, from: ReplicaId, t: u64, result: Bytes, out: &mut Out) {
        let f = self.m.f();
        let Some(cur) = &mut self.current else { return };
        if t != cur.request.req.seq || !self.m.contains(from) {
            return;
        }
        cur.cached.insert(from, result.clone());
        if cur.cached.values().filter(|r| **r == result).count() > f {
            self.finish(result, out);
        }
    }

    /// Too few replies (or no answer to our COMMIT) in time: first ask every
    /// replica (they push the leader or replace it); then move to the
    /// next-nearest replica.
    fn on_suspect(&mut self, out: &mut Out) {
        let q = self.m.quorum();
        let leader = self.leader();
        let Some(cur) = &mut self.current else { return };
        // With a quorum of replies the slow path decides; a COMMIT that goes
        // unanswered (its slot dropped by an owner change) is suspected too.
        if matches!(cur.phase, Phase::Speculative { .. }) && cur.replies.len() >= q {
            out.set_timer(Timer::Suspect, self.cfg.suspect_timeout);
            return;
        }
        cur.suspicions += 1;
        out.set_timer(Timer::Suspect, self.cfg.suspect_timeout);
        if cur.suspicions == 1 {
            out.broadcast(Msg::RequestAll { request: cur.request.clone(), leader });
            return;
        }
        self.move_on(out);
    }

    /// SPACEFROZEN: our command-leader's space was settled by an owner change.
    /// Believed from the leader itself or from f+1 replicas (a faulty one
    /// alone cannot send us away).
    fn on_space_frozen(&mut self, from: ReplicaId, space: ReplicaId, out: &mut Out) {
        let f = self.m.f();
        let leader = self.leader();
        let Some(cur) = &mut self.current else { return };
        if space != leader || !self.m.contains(from) {
            return;
        }
        cur.frozen_reports.insert(from);
        if from == leader || cur.frozen_reports.len() > f {
            cur.frozen_reports.clear();
            self.move_on(out);
        }
    }

    /// Use the next-nearest replica as command-leader, for this request too.
    fn move_on(&mut self, out: &mut Out) {
        self.leader += 1;
        self.moved_at = Some(self.now);
        let next = self.leader();
        let Some(cur) = &mut self.current else { return };
        cur.replies.clear();
        cur.accused = false;
        // The slow-path wait is a share of what this leader's replies took, not of our time so far.
        cur.started = self.now;
        cur.phase = Phase::Speculative { slow_armed: false };
        out.send(next, Msg::Request(cur.request.clone()));
    }

    fn finish(&mut self, result: Bytes, out: &mut Out) {
        self.current = None;
        out.cancel_timer(Timer::SlowPath);
        out.cancel_timer(Timer::Retransmit);
        out.cancel_timer(Timer::Suspect);
        out.push(Effect::Complete { result });
    }

    fn on_retransmit(&mut self, out: &mut Out) {
        let leader = self.leader();
        let Some(cur) = &self.current else { return };
        match &cur.phase {
            Phase::Speculative { .. } => out.send(leader, Msg::Request(cur.request.clone())),
            Phase::Committing { commit, .. } => out.broadcast((**commit).clone()),
        }
        out.set_timer(Timer::Retransmit, self.cfg.client_retransmit);
    }
}

impl ClientMachine<Ezbft> for Client {
    fn invoke(&mut self, now: Time, op: Bytes, _read_only: bool, out: &mut Out) {
        // EZBFT has no read-only path: reads are ordered like writes.
        self.t += 1;
        self.now = now;
        if self.moved_at.is_some_and(|at| now.0.saturating_sub(at.0) >= self.cfg.return_home_after.as_nanos() as u64) {
            // The nearest replica may be back (recovered, or its space reopened): try it again.
            self.leader = 0;
            self.moved_at = None;
        }
        let req = Request { client: self.id, seq: self.t, op, read_only: false };
        let request = SignedRequest::sign(req, self.crypto.as_ref());
        out.send(self.leader(), Msg::Request(request.clone()));
        out.set_timer(Timer::Retransmit, self.cfg.client_retransmit);
        out.set_timer(Timer::Suspect, self.cfg.suspect_timeout);
        self.current = Some(Outstanding {
            request,
            started: now,
            replies: BTreeMap::new(),
            cached: BTreeMap::new(),
            finals: BTreeMap::new(),
            suspicions: 0,
            accused: false,
            frozen_reports: BTreeSet::new(),
            phase: Phase::Speculative { slow_armed: false },
        });
    }

    fn handle(&mut self, now: Time, input: Input<Ezbft>, out: &mut Out) {
        self.now = now;
        match input {
            Input::Message { from: NodeId::Replica(r), msg } => match msg {
                Msg::SpecReply(reply) => self.on_spec_reply(now, r, *reply, out),
                Msg::CommitReply { t, result, .. } => self.on_commit_reply(r, t, result, out),
                Msg::CachedReply { t, result } => self.on_cached_reply(r, t, result, out),
                Msg::SpaceFrozen { space } => self.on_space_frozen(r, space, out),
                _ => {}
            },
            Input::Timer(Timer::SlowPath)
                if self.current.as_ref().is_some_and(|c| matches!(c.phase, Phase::Speculative { .. })) =>
            {
                self.slow_path(out)
            }
            Input::Timer(Timer::Retransmit) => self.on_retransmit(out),
            Input::Timer(Timer::Suspect) => self.on_suspect(out),
            _ => {}
        }
    }
}

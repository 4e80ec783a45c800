//! Adversary strategies for EZBFT, for the simulator. Each wraps a correct
//! replica and rewrites what it receives or sends; a faulty replica signs
//! only with its own key.

use crate::config::Config;
use crate::messages::{
    canonical_deps, commit_digest, new_owner_digest, InstanceId, Msg, NewOwnerBody, NewOwnerVoteBody, OwnerChangeBody,
    Phase, Signed, SlotReport, SpecOrder, SpecReply, SpecReplyBody,
};
use crate::replica::Replica;
use crate::Ezbft;
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::{Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::membership::Membership;
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::{BTreeMap, BTreeSet};
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
    (
        "split-newowner",
        "as a new owner, sends different valid NEWOWNERs (different subsets of the views, its own view honest or \
         empty) to different halves of the replicas, the two whose settled histories differ most",
    ),
    (
        "settle-rule3",
        "as a new owner, forges its own view to copy one correct replica's SPECREPLY bodies (meeting settlement \
         rule 3 with it), a different replica's for each half of the replicas",
    ),
    (
        "spurious-deps",
        "adds spurious dependencies (existing and not yet ordered slots) to its SPECORDERs and SPECREPLYs",
    ),
    (
        "spurious-future-deps",
        "also adds dependencies on the next two slots of every space, not ordered yet (live at low contention \
         only: decision 0006)",
    ),
    ("inflated-seq", "puts an inflated sequence number S (near the largest u64) in its SPECORDERs and SPECREPLYs"),
    (
        "collude-split",
        "for runs beyond f: replicas 0 and 1 together (give both this strategy) hide space 0's orders from the \
         correct replicas, then replica 1, new owner of space 0, settles them for half of the replicas and \
         drops them for the other half, both colluders voting for both NEWOWNERs",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    SilentLeader,
    LateSilentLeader,
    Equivocate,
    LieResult,
    DropSpecOrders,
    SplitNewOwner,
    SettleRule3,
    SpuriousDeps,
    SpuriousFutureDeps,
    InflatedSeq,
    ColludeSplit,
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
        "split-newowner" => Kind::SplitNewOwner,
        "settle-rule3" => Kind::SettleRule3,
        "spurious-deps" => Kind::SpuriousDeps,
        "spurious-future-deps" => Kind::SpuriousFutureDeps,
        "inflated-seq" => Kind::InflatedSeq,
        "collude-split" => Kind::ColludeSplit,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let (id, n, crypto, m) = (ctx.id, ctx.membership.n() as u32, ctx.crypto.clone(), ctx.membership.clone());
    Ok(Box::new(Adversary {
        inner: Replica::new(ctx, cfg.clone()),
        kind,
        id,
        n,
        crypto,
        m,
        views: BTreeMap::new(),
        held: None,
        hidden: 0,
        split: BTreeSet::new(),
        shown: BTreeMap::new(),
    }))
}

struct Adversary {
    inner: Replica,
    kind: Kind,
    id: ReplicaId,
    n: u32,
    crypto: Arc<dyn Crypto>,
    m: Membership,
    /// As a new owner: the views received, by (space, owner number).
    views: BTreeMap<(ReplicaId, u64), BTreeMap<ReplicaId, Signed<OwnerChangeBody>>>,
    /// collude-split at replica 1: our NEWOWNER, held until replica 0's view is in.
    held: Option<Signed<NewOwnerBody>>,
    /// collude-split: hidden slots of space 0 answered since we last asked for its owner change.
    hidden: u64,
    /// The owner changes (space, owner number) we split: our correct self's votes there are dropped.
    split: BTreeSet<(ReplicaId, u64)>,
    /// collude-split at replica 0: the NEWOWNERs our partner showed us, by (space, owner number).
    shown: BTreeMap<(ReplicaId, u64), Vec<Signed<NewOwnerBody>>>,
}

/// collude-split: the colluders (replica 0 hides its space, replica 1 is its new owner).
const COLLUDERS: [ReplicaId; 2] = [ReplicaId(0), ReplicaId(1)];

/// collude-split: hidden slots answered before the colluders ask for space 0's owner change.
const HIDDEN_BEFORE_CHANGE: u64 = 20;

/// inflated-seq: the S it claims (one below the largest, so that S + 1 still fits).
const INFLATED: u64 = u64::MAX - 1;

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
    fn rewrite(&mut self, out: &mut Out) {
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
                (Kind::ColludeSplit, Effect::Send { to, msg: Msg::SpecReply(r) })
                    if COLLUDERS.contains(&self.id) && r.reply.body.inst.space == COLLUDERS[0] =>
                {
                    // Both colluders "have executed it": f+1 equal CACHEDREPLYs complete
                    // the client, which never sends the request elsewhere.
                    let (t, result) = (r.reply.body.t, r.result.clone());
                    out.push(Effect::Send { to, msg: Msg::SpecReply(r) });
                    out.push(Effect::Send { to, msg: Msg::CachedReply { t, result } });
                    self.hidden += 1;
                    if self.hidden >= HIDDEN_BEFORE_CHANGE {
                        self.hidden = 0;
                        let (space, owner) = (COLLUDERS[0], self.inner.spaces[COLLUDERS[0].index()].owner);
                        out.push(Effect::Broadcast { msg: Msg::StartOwnerChange { space, owner } });
                    }
                }
                (Kind::ColludeSplit, e) if self.id == COLLUDERS[0] && self.hides(&e) => {
                    if let Effect::Send { msg, .. } | Effect::Broadcast { msg } | Effect::Multicast { msg, .. } = e {
                        out.push(Effect::Send { to: NodeId::Replica(COLLUDERS[1]), msg });
                    }
                }
                (
                    Kind::SplitNewOwner | Kind::SettleRule3 | Kind::ColludeSplit,
                    Effect::Broadcast { msg: Msg::NewOwner(x) },
                ) => self.equivocate(*x, out),
                (
                    Kind::SplitNewOwner | Kind::SettleRule3 | Kind::ColludeSplit,
                    Effect::Broadcast { msg: Msg::NewOwnerVote(v) },
                ) if self.split.contains(&(v.body.space, v.body.owner))
                    || (self.kind == Kind::ColludeSplit && self.id == COLLUDERS[0] && v.body.space == COLLUDERS[0]) => {
                }
                (
                    Kind::SpuriousDeps | Kind::SpuriousFutureDeps | Kind::InflatedSeq,
                    Effect::Send { to, msg: Msg::SpecReply(r) },
                ) => {
                    out.push(Effect::Send { to, msg: Msg::SpecReply(Box::new(self.skew_reply(*r))) });
                }
                (
                    Kind::SpuriousDeps | Kind::SpuriousFutureDeps | Kind::InflatedSeq,
                    Effect::Broadcast { msg: Msg::SpecOrder { order, request } },
                ) if order.body.inst.space == self.id => {
                    let mut body = order.body.clone();
                    self.skew(body.inst, &mut body.deps, &mut body.seq);
                    let order = Signed::sign(body, self.crypto.as_ref());
                    out.push(Effect::Broadcast { msg: Msg::SpecOrder { order, request } });
                }
                (_, e) => out.push(e),
            }
        }
    }

    /// collude-split at replica 0: an order of our space, which only our partner sees.
    fn hides(&self, e: &Effect<Ezbft>) -> bool {
        let (Effect::Send { msg, .. } | Effect::Broadcast { msg } | Effect::Multicast { msg, .. }) = e else {
            return false;
        };
        matches!(msg, Msg::SpecOrder { order, .. } if order.body.inst.space == self.id)
    }

    /// spurious-deps: add every space's latest slot we hold;
    /// spurious-future-deps: also the next two (not ordered yet);
    /// inflated-seq: claim an S near the largest u64.
    fn skew(&self, me: InstanceId, deps: &mut Vec<InstanceId>, seq: &mut u64) {
        match self.kind {
            Kind::SpuriousDeps | Kind::SpuriousFutureDeps => {
                let ahead = if self.kind == Kind::SpuriousFutureDeps { 2 } else { 0 };
                let mut set: BTreeSet<InstanceId> = deps.iter().copied().collect();
                for (i, s) in self.inner.spaces.iter().enumerate() {
                    let space = ReplicaId(i as u32);
                    for slot in s.next.saturating_sub(1)..s.next + ahead {
                        set.insert(InstanceId { space, slot });
                    }
                }
                set.remove(&me);
                *deps = canonical_deps(set);
            }
            Kind::InflatedSeq => *seq = INFLATED,
            _ => {}
        }
    }

    /// Our SPECREPLY with skewed metadata, signed by us.
    fn skew_reply(&self, mut r: SpecReply) -> SpecReply {
        let mut body = r.reply.body.clone();
        self.skew(body.inst, &mut body.deps, &mut body.seq);
        r.reply = Signed::sign(body, self.crypto.as_ref());
        r
    }

    /// Our own view of `space` for owner number `owner`, with `history`.
    fn own_view(&self, like: &OwnerChangeBody, history: Vec<SlotReport>) -> Signed<OwnerChangeBody> {
        let body = OwnerChangeBody { replica: self.id, history, ..like.clone() };
        Signed::sign(body, self.crypto.as_ref())
    }

    /// A view of ours copying `of`'s SPECREPLY bodies (re-signed by us): with
    /// `of`'s own, each slot it replied to has f+1 identical bodies (rule 3).
    fn copy_view(&self, of: &Signed<OwnerChangeBody>) -> Signed<OwnerChangeBody> {
        let history = of
            .body
            .history
            .iter()
            .map(|r| {
                let reply = r.reply.as_ref().map(|x| {
                    let body = SpecReplyBody { replica: self.id, ..x.reply.body.clone() };
                    SpecReply { reply: Signed::sign(body, self.crypto.as_ref()), ..x.clone() }
                });
                SlotReport { reply, accepted: None, cert: None, ..r.clone() }
            })
            .collect();
        self.own_view(&of.body, history)
    }

    /// As the new owner, instead of the NEWOWNER `x` of the correct replica:
    /// two valid NEWOWNERs, from different views, whose settled histories
    /// differ in the most slots, one to each half of the correct replicas
    /// (a colluder gets both).
    fn equivocate(&mut self, x: Signed<NewOwnerBody>, out: &mut Out) {
        let (space, owner) = (x.body.space, x.body.owner);
        let partner_in = |v: &Self| {
            v.views.get(&(space, owner)).is_some_and(|m| m.contains_key(&COLLUDERS[0]))
                || x.body.proofs.iter().any(|p| p.body.replica == COLLUDERS[0])
        };
        // Our correct self sends NEWOWNER again with each further view: split once.
        if !self.split.insert((space, owner)) {
            return;
        }
        if self.kind == Kind::ColludeSplit && space == COLLUDERS[0] && !partner_in(self) {
            self.held = Some(x);
            return;
        }
        let mut views = self.views.remove(&(space, owner)).unwrap_or_default();
        for v in &x.body.proofs {
            views.insert(v.body.replica, v.clone());
        }
        let honest = views.remove(&self.id);
        let others: Vec<Signed<OwnerChangeBody>> = views.into_values().collect();
        let Some(like) = honest.as_ref().map(|v| v.body.clone()).or_else(|| others.first().map(|v| v.body.clone()))
        else {
            return;
        };
        let mut own = Vec::new();
        if matches!(self.kind, Kind::SplitNewOwner | Kind::ColludeSplit) {
            own.extend(honest.clone());
            own.push(self.own_view(&OwnerChangeBody { stable: None, ..like.clone() }, Vec::new()));
        }
        if matches!(self.kind, Kind::SettleRule3 | Kind::ColludeSplit) {
            own.extend(others.iter().map(|o| self.copy_view(o)));
        }
        let q = self.m.quorum();
        let mut candidates: Vec<(Vec<Signed<OwnerChangeBody>>, Summary)> = Vec::new();
        for v in &own {
            for subset in subsets(others.len(), q - 1).into_iter().take(MAX_SUBSETS) {
                let mut proofs: Vec<Signed<OwnerChangeBody>> = subset.iter().map(|i| others[*i].clone()).collect();
                proofs.push(v.clone());
                proofs.sort_by_key(|p| p.body.replica);
                let (_, g, _) = crate::replica::settle(&self.m, self.crypto.as_ref(), space, &proofs, |_| None);
                let summary =
                    g.iter().map(|s| (s.order.body.inst.slot, commit_digest(&s.order, &s.deps, s.seq))).collect();
                candidates.push((proofs, summary));
            }
        }
        let differ = |a: &Summary, b: &Summary| a.keys().chain(b.keys()).filter(|k| a.get(k) != b.get(k)).count();
        let mut best = (0, 0, 0);
        for i in 0..candidates.len() {
            for j in i + 1..candidates.len() {
                let d = differ(&candidates[i].1, &candidates[j].1);
                if d > best.0 {
                    best = (d, i, j);
                }
            }
        }
        let Some((a, _)) = candidates.get(best.1) else { return out.broadcast(Msg::NewOwner(Box::new(x))) };
        let b = candidates.get(best.2).map_or(a, |(b, _)| b);
        let sign = |proofs: &Vec<Signed<OwnerChangeBody>>| {
            Signed::sign(NewOwnerBody { space, owner, proofs: proofs.clone() }, self.crypto.as_ref())
        };
        let (mut a, mut b) = (sign(a), sign(b));
        // The one with the smaller digest goes to the first half (so that our partner knows which is which).
        if new_owner_digest(&b) < new_owner_digest(&a) {
            std::mem::swap(&mut a, &mut b);
        }
        self.split.insert((space, owner));
        self.vote_split(&a, &b, out);
        let (to_a, to_b) = self.halves();
        let partner = |r: &ReplicaId| self.kind == Kind::ColludeSplit && COLLUDERS.contains(r);
        let colluders: Vec<ReplicaId> = COLLUDERS.iter().copied().filter(|r| *r != self.id && partner(r)).collect();
        for (to, no) in [(&to_a, &a), (&to_b, &b)] {
            let to: Vec<ReplicaId> = to.iter().chain(&colluders).copied().collect();
            out.push(Effect::Multicast { to, msg: Msg::NewOwner(Box::new(no.clone())) });
        }
        out.event(quorate_core::machine::Event::Note(format!(
            "{:?}: split NEWOWNER for space {} owner {owner}: settled histories differ in {} slots",
            self.kind, space.0, best.0
        )));
    }

    /// The correct replicas an equivocating new owner shows its first and its second NEWOWNER.
    fn halves(&self) -> (Vec<ReplicaId>, Vec<ReplicaId>) {
        let (me, collude) = (self.id, self.kind == Kind::ColludeSplit);
        let from = if collude { COLLUDERS[1] } else { me };
        let correct: Vec<ReplicaId> =
            self.m.round_from(from).into_iter().filter(|r| *r != me && !(collude && COLLUDERS.contains(r))).collect();
        let (a, b) = correct.split_at(correct.len().div_ceil(2));
        (a.to_vec(), b.to_vec())
    }

    /// ACCEPT and CONFIRM `a` toward the first half and `b` toward the second, at once.
    fn vote_split(&self, a: &Signed<NewOwnerBody>, b: &Signed<NewOwnerBody>, out: &mut Out) {
        let (to_a, to_b) = self.halves();
        for (to, x) in [(to_a, a), (to_b, b)] {
            for phase in [Phase::Accept, Phase::Confirm] {
                let body = NewOwnerVoteBody {
                    replica: self.id,
                    space: x.body.space,
                    owner: x.body.owner,
                    phase,
                    digest: new_owner_digest(x),
                };
                let vote = Signed::sign(body, self.crypto.as_ref());
                out.push(Effect::Multicast { to: to.clone(), msg: Msg::NewOwnerVote(Box::new(vote)) });
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

/// A settled history as slot → digest of (order, D, S).
type Summary = BTreeMap<u64, Digest>;

/// At most this many view subsets per own view are tried (n = 3f+1 gives C(3f, 2f) of them).
const MAX_SUBSETS: usize = 16;

/// The k-element subsets of 0..n, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if n < k {
        return Vec::new();
    }
    let mut out = subsets(n - 1, k);
    for mut s in subsets(n - 1, k - 1) {
        s.push(n - 1);
        out.push(s);
    }
    out
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
        if let (Kind::ColludeSplit, Input::Message { from, msg: Msg::NewOwner(x) }) = (self.kind, &input) {
            if self.id == COLLUDERS[0] && *from == NodeId::Replica(COLLUDERS[1]) {
                let key = (x.body.space, x.body.owner);
                let seen = self.shown.entry(key).or_default();
                if !seen.contains(&**x) {
                    seen.push((**x).clone());
                }
                if seen.len() == 2 {
                    let mut two = seen.clone();
                    two.sort_by_key(new_owner_digest);
                    self.vote_split(&two[0], &two[1], out);
                }
            }
        }
        if let Input::Message { msg: Msg::OwnerChange(v), .. } = &input {
            let b = &v.body;
            self.views.entry((b.space, b.owner)).or_default().insert(b.replica, (**v).clone());
            let held = self.held.as_ref().is_some_and(|x| x.body.space == b.space && x.body.owner == b.owner);
            if held && b.replica == COLLUDERS[0] {
                if let Some(x) = self.held.take() {
                    self.split.remove(&(x.body.space, x.body.owner));
                    self.equivocate(x, out);
                }
            }
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

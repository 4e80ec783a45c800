//! Adversary strategies for the simulator, for both flavors. Each wraps a
//! correct replica and rewrites what it sends; a faulty replica MACs and
//! signs only with its own keys (Destiny: through its own trusted
//! subsystem, which refuses a second message at one counter value).

use crate::client::Client;
use crate::config::Config;
use crate::messages::{answer_digest, answers_statement, AnswerProof, DRef, Msg, OBatch};
use crate::replica::Replica;
use crate::{DMsg, Dq, FMsg, Flavor, OMsg};
use quorate_core::crypto::Digest;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::{
    ClientContext, ClientMachine, Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy,
};
use quorate_core::time::Time;
use quorate_core::Bytes;
use quorate_engines::instance::{Instance, InstanceMsg};
use quorate_engines::pbft::collusion::Collusion;
use std::collections::{BTreeSet, HashMap};

type Out<F> = Outbox<Dq<F>>;

/// Replica strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("silent", "sends nothing at all"),
    (
        "silent-coordinator",
        "never proposes in the D-instances it coordinates (its clients stall until a view change); otherwise correct",
    ),
    ("silent-o-primary", "as O-primary, never orders anything; otherwise correct"),
    ("no-flood", "never floods the D-PrePrepares it accepts; otherwise correct"),
    (
        "equivocate-coordinator",
        "as a D-instance coordinator, sends one D-PrePrepare to half of the replicas and another one to the others",
    ),
    (
        "equivocate-o-primary",
        "as O-primary, sends one O-PrePrepare to half of the replicas and another one (the references reversed, or \
         none) to the others",
    ),
    (
        "order-undisseminated",
        "as O-primary, now and then adds to an O-batch a reference to a slot that no coordinator has proposed yet",
    ),
    (
        "forge-votes",
        "every vote it sends carries a forged authenticator (DQPBFT: MACs; Destiny: its commit and checkpoint \
         shares); otherwise correct",
    ),
    (
        "collude-split",
        "for runs beyond f: replicas 0 and 1 together (give both this strategy). DQPBFT: as O-primary and \
         accomplice, show odd correct replicas each O-batch with its references reversed and vote for it toward \
         them. Destiny: certify to odd clients, with both their answer shares, the answer their previous request \
         had instead of the true one",
    ),
];

/// Client strategies: (name, description).
pub const CLIENT_STRATEGIES: &[(&str, &str)] = &[(
    "duplicate-requests",
    "assigns itself (ASSIGN) to the next replica's D-instance, then sends every request to every replica, hoping \
     several coordinators disseminate it",
)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    SilentCoordinator,
    SilentOPrimary,
    NoFlood,
    EquivocateCoordinator,
    EquivocateOPrimary,
    OrderUndisseminated,
    ForgeVotes,
    ColludeSplit,
}

/// Build a Byzantine replica.
pub fn replica<F: Flavor>(
    strategy: &str,
    ctx: ReplicaContext<F::Material>,
    cfg: &Config,
) -> Result<Box<dyn ReplicaMachine<Dq<F>>>, UnknownStrategy> {
    let kind = match strategy {
        "silent" => Kind::Silent,
        "silent-coordinator" => Kind::SilentCoordinator,
        "silent-o-primary" => Kind::SilentOPrimary,
        "no-flood" => Kind::NoFlood,
        "equivocate-coordinator" => Kind::EquivocateCoordinator,
        "equivocate-o-primary" => Kind::EquivocateOPrimary,
        "order-undisseminated" => Kind::OrderUndisseminated,
        "forge-votes" => Kind::ForgeVotes,
        "collude-split" => Kind::ColludeSplit,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let (id, n) = (ctx.id, ctx.membership.n() as u32);
    let colluder = Collusion::new(|b: &OBatch| {
        let mut second = b.clone();
        second.refs.reverse();
        (b.refs.len() >= 2).then_some(second)
    });
    let mut inner = Replica::<F>::new(ctx, cfg.clone());
    if kind == Kind::ColludeSplit && F::answers(&inner.keys).is_some() {
        inner.answer_tap = Some(Vec::new());
    }
    Ok(Box::new(Adversary {
        inner,
        kind,
        id,
        n,
        batches: 0,
        colluder,
        last_answer: HashMap::new(),
        forged_answers: BTreeSet::new(),
    }))
}

/// Build a Byzantine client.
pub fn client<F: Flavor>(
    strategy: &str,
    mut ctx: ClientContext<F::Material>,
    cfg: &Config,
) -> Result<Box<dyn ClientMachine<Dq<F>>>, UnknownStrategy> {
    if strategy != "duplicate-requests" {
        return Err(UnknownStrategy(strategy.to_string()));
    }
    let n = ctx.membership.n() as u64;
    let next = ReplicaId(((ctx.id.0 + 1) % n) as u32);
    ctx.nearest.retain(|r| *r != next);
    ctx.nearest.insert(0, next);
    Ok(Box::new(DuplicatingClient { inner: Client::<F>::new(ctx, cfg.clone()) }))
}

/// Sends each request to every replica.
struct DuplicatingClient<F> {
    inner: Client<F>,
}

impl<F: Flavor> DuplicatingClient<F> {
    fn rewrite(effects: Vec<Effect<Dq<F>>>, out: &mut Out<F>) {
        for e in effects {
            match e {
                Effect::Send { msg: Msg::Request(r), .. } => out.broadcast(Msg::Request(r)),
                other => out.push(other),
            }
        }
    }
}

impl<F: Flavor> ClientMachine<Dq<F>> for DuplicatingClient<F> {
    fn invoke(&mut self, now: Time, op: quorate_core::Bytes, read_only: bool, out: &mut Out<F>) {
        let mut inner = Outbox::new();
        self.inner.invoke(now, op, read_only, &mut inner);
        Self::rewrite(inner.drain().collect(), out);
    }

    fn handle(&mut self, now: Time, input: Input<Dq<F>>, out: &mut Out<F>) {
        let mut inner = Outbox::new();
        self.inner.handle(now, input, &mut inner);
        Self::rewrite(inner.drain().collect(), out);
    }
}

struct Adversary<F: Flavor> {
    inner: Replica<F>,
    kind: Kind,
    id: ReplicaId,
    n: u32,
    /// O-batches proposed so far (order-undisseminated).
    batches: u64,
    /// collude-split: the O-instance story.
    colluder: Collusion<OBatch>,
    /// collude-split (Destiny): each client's latest true answer, and the
    /// requests answered with a forged one (their true answers withheld).
    last_answer: HashMap<ClientId, Bytes>,
    forged_answers: BTreeSet<(ClientId, u64)>,
}

/// collude-split (Destiny): the clients shown forged answers.
fn shown_forged_answers(c: ClientId) -> bool {
    c.0 % 2 == 1
}

impl<F: Flavor> Adversary<F> {
    /// Whether a message the inner replica sends is dropped.
    fn drops(&self, msg: &FMsg<F>) -> bool {
        match (self.kind, msg) {
            (Kind::Silent, _) | (Kind::NoFlood, Msg::Flood { .. }) => true,
            (Kind::SilentCoordinator, Msg::D { msg, .. }) => msg.proposal().is_some(),
            (Kind::SilentOPrimary, Msg::O(msg)) => msg.proposal().is_some(),
            _ => false,
        }
    }

    fn others(&self) -> Vec<ReplicaId> {
        (0..self.n).map(ReplicaId).filter(|r| *r != self.id).collect()
    }

    /// Each half of the others gets its own D-proposal: one with the
    /// timestamp moved, one with the requests reversed as well.
    fn equivocate_d(&self, i: u32, original: DMsg<F>, out: &mut Out<F>) {
        let Some((_, _, value)) = original.proposal() else { return };
        let others = self.others();
        let half = others.len().div_ceil(2);
        let mut first = value.clone();
        first.timestamp = first.timestamp.wrapping_add(1);
        let mut second = value.clone();
        second.timestamp = second.timestamp.wrapping_add(2);
        second.requests = second.requests.iter().rev().cloned().collect();
        for (k, r) in others.into_iter().enumerate() {
            let v = if k < half { first.clone() } else { second.clone() };
            if let Some(msg) = F::forge_d(&self.inner, i, &original, r, v) {
                out.send(r, Msg::D { instance: i, msg });
            }
        }
    }

    /// The first half of the others gets the O-batch, the second half the
    /// references reversed (or nothing, for a single reference).
    fn equivocate_o(&self, original: OMsg<F>, out: &mut Out<F>) {
        let Some((_, _, value)) = original.proposal() else { return };
        let value: OBatch = value.clone();
        let others = self.others();
        let half = others.len().div_ceil(2);
        let mut second = value.clone();
        second.refs.reverse();
        for (k, r) in others.into_iter().enumerate() {
            if k >= half && value.refs.len() < 2 {
                continue;
            }
            let msg =
                if k < half { Some(original.clone()) } else { F::forge_o(&self.inner, &original, r, second.clone()) };
            if let Some(msg) = msg {
                out.send(r, Msg::O(msg));
            }
        }
    }

    /// Every eighth O-batch also names the slot after the next one of
    /// another instance (not proposed yet).
    fn order_undisseminated(&mut self, original: OMsg<F>, out: &mut Out<F>) {
        let Some((_, _, value)) = original.proposal() else { return };
        let mut value: OBatch = value.clone();
        self.batches += 1;
        if !self.batches.is_multiple_of(8) {
            return out.broadcast(Msg::O(original));
        }
        let i = (self.id.0 + 1 + (self.batches / 8 % u64::from(self.n.max(2) - 1)) as u32) % self.n;
        let next = self.inner.d_instance(i).last_decided() + 3;
        let r = DRef { instance: i, seq: next };
        if !value.refs.contains(&r) {
            value.refs.push(r);
        }
        for to in self.others() {
            if let Some(msg) = F::forge_o(&self.inner, &original, to, value.clone()) {
                out.send(to, Msg::O(msg));
            }
        }
    }

    /// collude-split (Destiny): answer each request of a client shown
    /// forged answers, as soon as it executed here, with the answer its
    /// client's previous request had, signed with π on a list of one. Both
    /// colluders execute the same order and so sign the same statement:
    /// f+1 shares, which the client combines.
    fn forge_answers(&mut self, out: &mut Out<F>) {
        let Some(answered) = self.inner.answer_tap.as_mut().map(std::mem::take) else { return };
        let Some((plain, _)) = F::answers(&self.inner.keys) else { return };
        for (c, seq, result) in answered {
            let previous = self.last_answer.insert(c, result.clone());
            let Some(stale) = previous.filter(|p| *p != result && shown_forged_answers(c)) else { continue };
            let answers = vec![answer_digest(c, seq, &stale)];
            let st = answers_statement(None, 0, &answers);
            let Ok(share) = plain.sign(st.instance, st.counter, st.value, &st.msg_hash) else { continue };
            self.forged_answers.insert((c, seq));
            if self.forged_answers.len() > 100_000 {
                self.forged_answers.pop_first();
            }
            let proof = AnswerProof::Share(share);
            out.send(c, Msg::ExecProof { slot: None, order: 0, answers, seq, result: stale, proof });
        }
    }

    fn collude_o(&mut self, to: ReplicaId, msg: OMsg<F>, out: &mut Out<F>) {
        let story = F::collude_o(&self.inner, &mut self.colluder, to, msg);
        out.send(to, Msg::O(story));
    }

    fn rewrite(&mut self, e: Effect<Dq<F>>, out: &mut Out<F>) {
        let msg = match &e {
            Effect::Send { msg, .. } | Effect::Broadcast { msg } | Effect::Multicast { msg, .. } => msg,
            _ => return out.push(e),
        };
        if self.drops(msg) {
            return;
        }
        match (self.kind, e) {
            (Kind::EquivocateCoordinator, Effect::Broadcast { msg: Msg::D { instance, msg } })
                if msg.proposal().is_some() =>
            {
                self.equivocate_d(instance, msg, out)
            }
            (Kind::EquivocateOPrimary, Effect::Broadcast { msg: Msg::O(msg) }) if msg.proposal().is_some() => {
                self.equivocate_o(msg, out)
            }
            (Kind::OrderUndisseminated, Effect::Broadcast { msg: Msg::O(msg) }) if msg.proposal().is_some() => {
                self.order_undisseminated(msg, out)
            }
            (Kind::ColludeSplit, Effect::Send { to: NodeId::Client(c), msg: Msg::ExecProof { seq, .. } })
                if self.forged_answers.contains(&(c, seq)) => {}
            (Kind::ColludeSplit, Effect::Broadcast { msg: Msg::O(msg) }) => {
                for r in self.others() {
                    self.collude_o(r, msg.clone(), out);
                }
            }
            (Kind::ColludeSplit, Effect::Multicast { to, msg: Msg::O(msg) }) => {
                for r in to {
                    self.collude_o(r, msg.clone(), out);
                }
            }
            (Kind::ColludeSplit, Effect::Send { to: NodeId::Replica(r), msg: Msg::O(msg) }) => {
                self.collude_o(r, msg, out)
            }
            (Kind::ForgeVotes, mut e) => {
                if let Effect::Send { msg, .. } | Effect::Broadcast { msg } | Effect::Multicast { msg, .. } = &mut e {
                    match msg {
                        Msg::D { msg, .. } => {
                            F::spoil_d(msg);
                        }
                        Msg::O(msg) => {
                            F::spoil_o(msg);
                        }
                        _ => {}
                    }
                }
                out.push(e)
            }
            (_, e) => out.push(e),
        }
    }
}

impl<F: Flavor> ReplicaMachine<Dq<F>> for Adversary<F> {
    fn handle(&mut self, now: Time, input: Input<Dq<F>>, out: &mut Out<F>) {
        if let (Kind::ColludeSplit, Input::Message { msg: Msg::O(m), .. }) = (self.kind, &input) {
            if let Some((_, _, value)) = m.proposal() {
                self.colluder.learn(value, self.inner.crypto());
            }
        }
        let mut inner = Outbox::new();
        self.inner.handle(now, input, &mut inner);
        let effects: Vec<Effect<Dq<F>>> = inner.drain().collect();
        self.forge_answers(out);
        for e in effects {
            self.rewrite(e, out);
        }
    }

    fn state_digest(&self) -> Digest {
        self.inner.state_digest()
    }

    fn executed(&self) -> u64 {
        self.inner.executed()
    }
}

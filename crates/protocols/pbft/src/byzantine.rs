//! Adversary strategies for PBFT, for the simulator. Each wraps a correct
//! replica and rewrites what it receives or sends; a faulty replica MACs
//! and signs only with its own keys.

use crate::config::Config;
use crate::messages::{Batch, Msg};
use crate::replica::Replica;
use crate::Pbft;
use quorate_core::crypto::{Crypto, Digest, Mac};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::{Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::time::Time;
use quorate_engines::instance::Instance;
use quorate_engines::pbft::collusion::Collusion;
use quorate_engines::pbft::messages::bytes;
use quorate_engines::pbft::{Auth, PbftMsg, Value};
use std::sync::Arc;

type Out = Outbox<Pbft>;

/// Replica strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("silent", "sends nothing at all (a silent primary while it is the primary)"),
    ("silent-primary", "as primary, never proposes (ignores requests and forwards); otherwise correct"),
    ("equivocate", "as primary, sends one PRE-PREPARE to half of the backups and another one to the others"),
    (
        "bad-votes",
        "sends conflicting PREPAREs and COMMITs to different replicas, and garbage ones (other views, sequence \
         numbers outside the window, bad MACs)",
    ),
    ("skip-seq", "as primary, now and then leaves a sequence number unused (a gap before later proposals)"),
    (
        "collude-split",
        "for runs beyond f: replicas 0 and 1 together (give both this strategy) show odd correct replicas a \
         second batch (the requests reversed) at each sequence number and vote for it toward them, and the \
         true batch to the others",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    SilentPrimary,
    Equivocate,
    BadVotes,
    SkipSeq,
    ColludeSplit,
}

/// Build a Byzantine replica.
pub fn replica(
    strategy: &str,
    ctx: ReplicaContext,
    cfg: &Config,
) -> Result<Box<dyn ReplicaMachine<Pbft>>, UnknownStrategy> {
    let kind = match strategy {
        "silent" => Kind::Silent,
        "silent-primary" => Kind::SilentPrimary,
        "equivocate" => Kind::Equivocate,
        "bad-votes" => Kind::BadVotes,
        "skip-seq" => Kind::SkipSeq,
        "collude-split" => Kind::ColludeSplit,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let (id, n, crypto) = (ctx.id, ctx.membership.n() as u32, ctx.crypto.clone());
    let rng = 0x9e37_79b9_7f4a_7c15 ^ (id.0 as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    Ok(Box::new(Adversary {
        inner: Replica::new(ctx, cfg.clone()),
        kind,
        id,
        n,
        crypto,
        rng,
        colluder: Collusion::new(|b: &Batch| {
            let mut second = b.clone();
            second.requests.reverse();
            (b.requests.len() >= 2).then_some(second)
        }),
    }))
}

struct Adversary {
    inner: Replica,
    kind: Kind,
    id: ReplicaId,
    n: u32,
    crypto: Arc<dyn Crypto>,
    rng: u64,
    colluder: Collusion<Batch>,
}

impl Adversary {
    /// collude-split: send `msg` (of the inner replica, to `r`) as the
    /// colluders' story for `r`.
    fn collude(&mut self, r: ReplicaId, msg: PbftMsg<Batch>, out: &mut Out) {
        let inst = self.instance();
        let story = self.colluder.story(inst, r, msg, self.crypto.as_ref());
        out.send(r, Msg::Pbft(story));
    }

    fn rand(&mut self) -> u64 {
        // xorshift: deterministic per replica.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn others(&self) -> Vec<ReplicaId> {
        (0..self.n).map(ReplicaId).filter(|r| *r != self.id).collect()
    }

    fn instance(&self) -> u64 {
        self.inner.engine().config().instance
    }

    fn mac_for(&self, to: ReplicaId, bytes: &[u8]) -> Auth {
        Auth(vec![self.crypto.mac(NodeId::Replica(to), bytes)])
    }

    /// Whether the correct replica inside should not see this input.
    fn drops(&self, input: &Input<Pbft>) -> bool {
        match (self.kind, input) {
            (Kind::SilentPrimary, Input::Message { msg: Msg::Request(_) | Msg::Forward(_), .. }) => {
                self.inner.engine().is_primary()
            }
            _ => false,
        }
    }

    fn rewrite(&mut self, effects: Vec<Effect<Pbft>>, out: &mut Out) {
        for e in effects {
            match e {
                Effect::Send { .. } | Effect::Broadcast { .. } | Effect::Multicast { .. } => self.rewrite_send(e, out),
                other => out.push(other),
            }
        }
    }

    fn rewrite_send(&mut self, e: Effect<Pbft>, out: &mut Out) {
        match self.kind {
            Kind::Silent => {}
            Kind::SilentPrimary | Kind::SkipSeq => out.push(e),
            Kind::ColludeSplit => match e {
                Effect::Broadcast { msg: Msg::Pbft(m) } => {
                    for r in self.others() {
                        self.collude(r, m.clone(), out);
                    }
                }
                Effect::Multicast { to, msg: Msg::Pbft(m) } => {
                    for r in to {
                        self.collude(r, m.clone(), out);
                    }
                }
                Effect::Send { to: NodeId::Replica(r), msg: Msg::Pbft(m) } => self.collude(r, m, out),
                other => out.push(other),
            },
            Kind::Equivocate => match e {
                Effect::Broadcast { msg: Msg::Pbft(PbftMsg::PrePrepare { view, seq, value, .. }) } => {
                    self.equivocate(view, seq, value, out)
                }
                other => out.push(other),
            },
            // Votes go to each replica as its own copy (point-to-point MACs).
            Kind::BadVotes => match e {
                Effect::Send { to: NodeId::Replica(r), msg: Msg::Pbft(PbftMsg::Prepare { view, seq, digest, .. }) } => {
                    self.bad_vote(r, false, view, seq, digest, out)
                }
                Effect::Send { to: NodeId::Replica(r), msg: Msg::Pbft(PbftMsg::Commit { view, seq, digest, .. }) } => {
                    self.bad_vote(r, true, view, seq, digest, out)
                }
                other => out.push(other),
            },
        }
    }

    /// The first half of the backups get one valid value, the others
    /// another (the same ones on retransmission), and the primary itself
    /// holds a third: with n = 3f+1 the first half prepares its value (2f
    /// PREPAREs) but no value gathers 2f+1 COMMITs, so a view change must
    /// carry the prepared value into the next view.
    fn equivocate(&mut self, view: u64, seq: u64, value: Batch, out: &mut Out) {
        let others = self.others();
        let half = others.len().div_ceil(2);
        let mut first = value.clone();
        first.timestamp = first.timestamp.wrapping_add(1);
        let mut second = value;
        second.timestamp = second.timestamp.wrapping_add(2);
        second.requests.reverse();
        for (k, r) in others.into_iter().enumerate() {
            let v = if k < half { first.clone() } else { second.clone() };
            let d = v.digest(self.crypto.as_ref());
            let auth = self.mac_for(r, &bytes::pre_prepare(self.instance(), view, seq, &d));
            out.send(r, Msg::Pbft(PbftMsg::PrePrepare { view, seq, value: v, auth }));
        }
    }

    /// Each receiver gets, at random: the true vote, a vote for another
    /// digest, the true vote with a bad MAC, or a vote for another view and
    /// a sequence number outside any window.
    fn bad_vote(&mut self, r: ReplicaId, commit: bool, view: u64, seq: u64, digest: Digest, out: &mut Out) {
        let inst = self.instance();
        {
            let choice = self.rand() % 4;
            let (v, s, d) = match choice {
                0 | 2 => (view, seq, digest),
                1 => (view, seq, Digest([(self.rand() & 0xff) as u8; 32])),
                _ => (view + 1 + self.rand() % 3, seq + 1_000_000, digest),
            };
            let b = if commit { bytes::commit(inst, v, s, &d) } else { bytes::prepare(inst, v, s, &d) };
            let auth = if choice == 2 { Auth(vec![Mac([7; 32])]) } else { self.mac_for(r, &b) };
            let msg = if commit {
                PbftMsg::Commit { view: v, seq: s, digest: d, auth }
            } else {
                PbftMsg::Prepare { view: v, seq: s, digest: d, auth }
            };
            out.send(r, Msg::Pbft(msg));
        }
    }
}

impl ReplicaMachine<Pbft> for Adversary {
    fn handle(&mut self, now: Time, input: Input<Pbft>, out: &mut Out) {
        if self.drops(&input) {
            return;
        }
        if let (Kind::ColludeSplit, Input::Message { msg: Msg::Pbft(PbftMsg::PrePrepare { value, .. }), .. }) =
            (self.kind, &input)
        {
            self.colluder.learn(value, self.crypto.as_ref());
        }
        if self.kind == Kind::SkipSeq && self.inner.engine().is_primary() && self.rand().is_multiple_of(16) {
            self.inner.engine_mut().skip_sequence_number();
        }
        let mut inner_out = Out::new();
        self.inner.handle(now, input, &mut inner_out);
        let effects: Vec<Effect<Pbft>> = inner_out.drain().collect();
        self.rewrite(effects, out);
    }

    fn state_digest(&self) -> Digest {
        self.inner.state_digest()
    }

    fn executed(&self) -> u64 {
        self.inner.executed()
    }
}

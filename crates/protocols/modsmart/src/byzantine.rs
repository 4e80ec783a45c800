//! Adversary strategies for Mod-SMaRt, for the simulator. Each wraps a
//! correct replica and rewrites what it sends; a faulty node signs
//! only with its own keys.

use crate::config::Config;
use crate::messages::{accept_bytes, Batch, Decision, InstanceState, Msg, SignedStopData};
use crate::replica::Replica;
use crate::{ModSmart, Timer};
use quorate_core::crypto::{Crypto, Digest, Signature};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::{Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy};
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

type Out = Outbox<ModSmart>;

/// Replica strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("silent", "sends nothing at all (a silent leader when it leads)"),
    ("equivocate", "as leader, proposes a different batch to every replica and writes each to its receiver"),
    ("invalid-batch", "as leader, proposes empty batches or batches with forged requests"),
    ("slow-leader", "as leader, delays every proposal to just under the request timeout"),
    ("forge-stopdata", "sends STOPDATA with bogus proofs, forged states and stale regencies; forges SYNC as leader"),
    ("replay", "re-sends old messages of its own and old client requests at random"),
    (
        "collude-split",
        "for runs beyond f: replicas 0 and 1 together (give both this strategy) show odd correct replicas a \
         second batch (the requests reversed) in each instance, the leader proposing it and both WRITEing and \
         ACCEPTing it toward them, and the true batch to the others",
    ),
];

/// Build a Byzantine replica.
pub fn replica(
    strategy: &str,
    ctx: ReplicaContext,
    cfg: &Config,
) -> Result<Box<dyn ReplicaMachine<ModSmart>>, UnknownStrategy> {
    let kind = match strategy {
        "silent" => Kind::Silent,
        "equivocate" => Kind::Equivocate,
        "invalid-batch" => Kind::InvalidBatch,
        "slow-leader" => Kind::SlowLeader,
        "forge-stopdata" => Kind::ForgeStopData,
        "replay" => Kind::Replay,
        "collude-split" => Kind::ColludeSplit,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    let id = ctx.id;
    let n = ctx.membership.n();
    let crypto = ctx.crypto.clone();
    Ok(Box::new(Adversary {
        inner: Replica::new(ctx, cfg.clone()),
        kind,
        id,
        n,
        crypto,
        delay: cfg.request_timeout.mul_f64(0.8),
        held: VecDeque::new(),
        timer_seq: 0,
        sent: VecDeque::new(),
        rng: 0x9e37_79b9_7f4a_7c15 ^ id.0 as u64,
        count: 0,
        forged: BTreeMap::new(),
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    Equivocate,
    InvalidBatch,
    SlowLeader,
    ForgeStopData,
    Replay,
    ColludeSplit,
}

struct Adversary {
    inner: Replica,
    kind: Kind,
    id: ReplicaId,
    n: usize,
    crypto: Arc<dyn Crypto>,
    delay: Duration,
    held: VecDeque<(u64, Vec<Effect<ModSmart>>)>,
    timer_seq: u64,
    sent: VecDeque<Msg>,
    rng: u64,
    count: u64,
    /// collude-split: the second batch for each true batch's digest.
    forged: BTreeMap<Digest, (Batch, Digest)>,
}

/// collude-split: the replicas shown the second batch. Replicas 0 and 1
/// are the colluders and see the truth; of the others, the odd ones are
/// shown the second batch.
fn shown_forgery(r: ReplicaId) -> bool {
    r.0 >= 2 && r.0 % 2 == 1
}

impl Adversary {
    fn rand(&mut self) -> u64 {
        // xorshift: deterministic per replica.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn others(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        (0..self.n as u32).map(ReplicaId).filter(move |r| *r != self.id)
    }

    /// collude-split: remember the second batch for `batch` (the same one
    /// at both colluders: the true batch's requests reversed). A batch of
    /// one request has no second batch.
    fn learn(&mut self, batch: &Batch) {
        if batch.requests.len() < 2 {
            return;
        }
        let d = batch.digest(self.crypto.as_ref());
        if self.forged.contains_key(&d) {
            return;
        }
        let mut second = batch.clone();
        second.requests.reverse();
        let d2 = second.digest(self.crypto.as_ref());
        self.forged.insert(d, (second, d2));
        if self.forged.len() > 100_000 {
            self.forged.pop_first();
        }
    }

    /// collude-split: send `msg` (of the inner replica, to `r`) as the
    /// colluders' story for `r`: the second batch, and WRITEs and (signed)
    /// ACCEPTs for it, to the replicas shown the forgery.
    fn collude(&mut self, r: ReplicaId, msg: Msg, out: &mut Out) {
        let story = match msg {
            Msg::Propose { regency, instance, batch } => {
                self.learn(&batch);
                let d = batch.digest(self.crypto.as_ref());
                match self.forged.get(&d).filter(|_| shown_forgery(r)) {
                    Some((second, _)) => Msg::Propose { regency, instance, batch: second.clone() },
                    None => Msg::Propose { regency, instance, batch },
                }
            }
            Msg::Write { regency, instance, value } => match self.forged.get(&value).filter(|_| shown_forgery(r)) {
                Some((_, d2)) => Msg::Write { regency, instance, value: *d2 },
                None => Msg::Write { regency, instance, value },
            },
            Msg::Accept { regency, instance, value, sig } => {
                match self.forged.get(&value).filter(|_| shown_forgery(r)) {
                    Some((_, d2)) => {
                        let sig = self.crypto.sign(&accept_bytes(instance, regency + 1, d2));
                        Msg::Accept { regency, instance, value: *d2, sig }
                    }
                    None => Msg::Accept { regency, instance, value, sig },
                }
            }
            other => other,
        };
        out.send(r, story);
    }

    fn rewrite(&mut self, effects: Vec<Effect<ModSmart>>, out: &mut Out) {
        for e in effects {
            match e {
                Effect::Send { .. } | Effect::Broadcast { .. } => self.rewrite_send(e, out),
                other => out.push(other),
            }
        }
    }

    fn rewrite_send(&mut self, e: Effect<ModSmart>, out: &mut Out) {
        let msg = match &e {
            Effect::Send { msg, .. } | Effect::Broadcast { msg } => msg.clone(),
            _ => return,
        };
        match self.kind {
            Kind::Silent => {}
            Kind::ColludeSplit => match e {
                Effect::Broadcast { msg } => {
                    let ids: Vec<ReplicaId> = self.others().collect();
                    for r in ids {
                        self.collude(r, msg.clone(), out);
                    }
                }
                Effect::Send { to: NodeId::Replica(r), msg } => self.collude(r, msg, out),
                other => out.push(other),
            },
            Kind::Equivocate => match msg {
                Msg::Propose { regency, instance, batch } => {
                    // A different (valid) batch for every replica, and a WRITE for it to
                    // that replica only: no value can gather a quorum of WRITEs.
                    let ids: Vec<ReplicaId> = self.others().collect();
                    for (k, r) in ids.into_iter().enumerate() {
                        let mut b = batch.clone();
                        b.timestamp += k as u64;
                        if k % 2 == 1 {
                            b.requests.reverse();
                        }
                        let v = b.digest(self.crypto.as_ref());
                        out.send(r, Msg::Propose { regency, instance, batch: b });
                        out.send(r, Msg::Write { regency, instance, value: v });
                    }
                }
                Msg::Write { .. } => {} // Sent with the proposals above.
                _ => out.push(e),
            },
            Kind::InvalidBatch => match msg {
                Msg::Propose { regency, instance, batch } => {
                    let bad = if self.rand().is_multiple_of(2) {
                        Batch { timestamp: batch.timestamp, requests: Vec::new() }
                    } else {
                        let mut b = batch.clone();
                        for r in &mut b.requests {
                            let mut op = r.req.op.to_vec();
                            op.push(0xff);
                            r.req.op = Bytes::from(op);
                        }
                        b
                    };
                    out.broadcast(Msg::Propose { regency, instance, batch: bad });
                }
                Msg::Write { .. } | Msg::Accept { .. } => {}
                _ => out.push(e),
            },
            Kind::SlowLeader => match msg {
                Msg::Propose { .. } => {
                    self.timer_seq += 1;
                    self.held.push_back((self.timer_seq, vec![e]));
                    out.set_timer(Timer::Adversary(self.timer_seq), self.delay);
                }
                Msg::Write { .. } if !self.held.is_empty() => {
                    if let Some((_, v)) = self.held.back_mut() {
                        v.push(e);
                    }
                }
                _ => out.push(e),
            },
            Kind::ForgeStopData => match msg {
                Msg::StopData(sd) => {
                    for forged in self.forge_stopdata(&sd) {
                        match &e {
                            Effect::Send { to, .. } => out.send(*to, Msg::StopData(forged)),
                            _ => out.broadcast(Msg::StopData(forged)),
                        }
                    }
                }
                Msg::Sync { regency, stopdata, proposal } => {
                    // Drop one STOPDATA and tamper with another: below n−f or badly signed.
                    let mut sds = stopdata.clone();
                    sds.pop();
                    if let Some(first) = sds.first_mut() {
                        first.data.state.valts = regency;
                        first.data.state.val = Some(Digest([7; 32]));
                    }
                    out.broadcast(Msg::Sync { regency, stopdata: sds, proposal });
                }
                Msg::Decision(mut d) => {
                    d.batch.timestamp += 1; // Proof no longer matches.
                    if let Effect::Send { to, .. } = e {
                        out.send(to, Msg::Decision(d));
                    }
                }
                _ => out.push(e),
            },
            Kind::Replay => {
                if matches!(
                    msg,
                    Msg::Propose { .. } | Msg::Write { .. } | Msg::Accept { .. } | Msg::Stop { .. } | Msg::StopData(_)
                ) {
                    if self.sent.len() >= 256 {
                        self.sent.pop_front();
                    }
                    self.sent.push_back(msg);
                }
                out.push(e);
            }
        }
    }

    fn forge_stopdata(&mut self, sd: &SignedStopData) -> Vec<SignedStopData> {
        let mut v = Vec::new();
        let sign = |c: &dyn Crypto, data: crate::messages::StopData| {
            let sig = c.sign(&data.signing_bytes());
            SignedStopData { data, sig }
        };
        // 1. A state claiming a value accepted in this regency's epoch, certified by nobody.
        let mut d = sd.data.clone();
        let fake = Digest([(self.rand() & 0xff) as u8; 32]);
        d.state = InstanceState {
            instance: d.state.instance,
            valts: d.regency,
            val: Some(fake),
            val_batch: None,
            writeset: vec![(d.regency.max(1), fake)],
        };
        // 2. A bogus decision proof for a later instance.
        if let Some(mut dec) = d.last_decided.clone() {
            dec.instance += 1;
            dec.proof = vec![(self.id, Signature(vec![0; 32]))];
            d.last_decided = Some(dec);
            d.state.instance += 1;
        } else {
            d.last_decided = Some(Decision {
                instance: 0,
                epoch: 1,
                batch: Batch { timestamp: 0, requests: Vec::new() },
                proof: vec![(self.id, Signature(vec![1; 32]))],
            });
            d.state.instance = 1;
        }
        let choice = self.rand() % 3;
        match choice {
            0 => v.push(sign(self.crypto.as_ref(), d)),
            1 => {
                // 3. A stale regency.
                let mut s = sd.data.clone();
                s.regency = s.regency.saturating_sub(1);
                v.push(sign(self.crypto.as_ref(), s));
            }
            _ => {
                // 4. A bad signature on genuine contents.
                v.push(SignedStopData { data: sd.data.clone(), sig: Signature(vec![9; 32]) });
            }
        }
        v
    }

    fn replay_some(&mut self, out: &mut Out) {
        self.count += 1;
        if !self.count.is_multiple_of(5) || self.sent.is_empty() {
            return;
        }
        let k = (self.rand() % self.sent.len() as u64) as usize;
        if let Some(m) = self.sent.get(k).cloned() {
            out.broadcast(m);
        }
    }
}

impl ReplicaMachine<ModSmart> for Adversary {
    fn handle(&mut self, now: Time, input: Input<ModSmart>, out: &mut Out) {
        if let Input::Timer(Timer::Adversary(k)) = input {
            while self.held.front().is_some_and(|(seq, _)| *seq <= k) {
                let Some((_, effects)) = self.held.pop_front() else { break };
                for e in effects {
                    out.push(e);
                }
            }
            return;
        }
        if let (Kind::ColludeSplit, Input::Message { msg: Msg::Propose { batch, .. }, .. }) = (self.kind, &input) {
            self.learn(batch);
        }
        if self.kind == Kind::Replay {
            if let Input::Message { msg: Msg::Request(r), .. } = &input {
                // Old client requests: re-sent to everybody later as FORWARDED.
                if self.sent.len() < 256 {
                    self.sent.push_back(Msg::Forwarded { requests: vec![r.clone()] });
                }
            }
        }
        let mut inner_out = Out::new();
        self.inner.handle(now, input, &mut inner_out);
        let effects: Vec<Effect<ModSmart>> = inner_out.drain().collect();
        self.rewrite(effects, out);
        if self.kind == Kind::Replay {
            self.replay_some(out);
        }
    }

    fn state_digest(&self) -> Digest {
        self.inner.state_digest()
    }

    fn executed(&self) -> u64 {
        self.inner.executed()
    }
}

//! Answers to clients. DQPBFT: every replica sends a MAC'd reply and the
//! client takes f+1 matching ones. Destiny (§4.3.2): after executing a
//! D-slot every replica signs the list of its answers with π (one share
//! per slot, "the resulting state" at its global position) and sends the
//! share (ExecSig) to the execution collector, the current coordinator of
//! the slot's D-instance (whose clients sent the requests); the collector
//! combines f+1 into one threshold signature and sends each client its
//! result, the list and the signature (ExecProof). A replica a client came
//! to itself (a retransmission, or a client that spreads its requests after
//! a late answer) sends that client its own share too, and f+1 of those
//! are as good: a faulty collector delays answers, it cannot withhold them.

use super::{Out, Replica};
use crate::messages::{answer_digest, answers_statement, AnswerProof, DRef, Msg, Reply};
use crate::Flavor;
use quorate_core::crypto::Digest;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::Bytes;
use quorate_engines::instance::Instance;
use quorate_threshsign::{destiny, Share};
use std::collections::BTreeMap;

/// Most D-slots a collector keeps answers or shares of while it waits for f+1.
const MAX_COLLECTING: usize = 4096;

/// A D-slot's answers at its collector, until f+1 shares prove them.
pub(crate) struct Collecting {
    /// The O-slot it executed at (None until the collector executed it).
    pub order: Option<u64>,
    /// Its answers, as executed here.
    pub answered: Vec<(ClientId, u64, Bytes)>,
    /// Shares received, per signer.
    pub shares: BTreeMap<ReplicaId, Share>,
    /// Proved and sent: later shares are ignored.
    pub done: bool,
}

impl<F: Flavor> Replica<F> {
    /// Answer the requests D-slot `slot` executed at O-slot `order`.
    pub(crate) fn answer(&mut self, slot: DRef, order: u64, answered: Vec<(ClientId, u64, Bytes)>, out: &mut Out<F>) {
        if let Some(tap) = &mut self.answer_tap {
            tap.extend(answered.iter().cloned());
        }
        let Some((plain, _)) = F::answers(&self.keys) else {
            for (c, seq, result) in answered {
                self.mac_reply(c, seq, result, out);
            }
            return;
        };
        if answered.is_empty() {
            return;
        }
        let list: Vec<Digest> = answered.iter().map(|(c, s, r)| answer_digest(*c, *s, r)).collect();
        let st = answers_statement(Some(slot), order, &list);
        let Ok(share) = plain.sign(st.instance, st.counter, st.value, &st.msg_hash) else { return };
        for (c, seq, result) in &answered {
            if self.direct.remove(&(*c, *seq)) {
                let proof = AnswerProof::Share(share.clone());
                let (answers, result) = (list.clone(), result.clone());
                out.send(*c, Msg::ExecProof { slot: Some(slot), order, answers, seq: *seq, result, proof });
            }
        }
        let collector = self.d[slot.instance as usize].primary();
        if collector != self.id {
            out.send(collector, Msg::ExecSig { slot, order, share });
            return;
        }
        if !self.collecting.contains_key(&slot) && self.collecting.len() >= MAX_COLLECTING {
            return;
        }
        let entry = self.collecting.entry(slot).or_insert_with(|| Collecting {
            order: None,
            answered: Vec::new(),
            shares: BTreeMap::new(),
            done: false,
        });
        entry.order = Some(order);
        entry.answered = answered;
        entry.shares.insert(self.id, share);
        self.try_prove(slot, out);
    }

    /// Answer a retransmitted request executed before: MAC'd reply, or a π
    /// share on a list of one for the client to combine.
    pub(crate) fn answer_again(&mut self, c: ClientId, seq: u64, result: Bytes, out: &mut Out<F>) {
        let Some((plain, _)) = F::answers(&self.keys) else {
            return self.mac_reply(c, seq, result, out);
        };
        let answers = vec![answer_digest(c, seq, &result)];
        let st = answers_statement(None, 0, &answers);
        let Ok(share) = plain.sign(st.instance, st.counter, st.value, &st.msg_hash) else { return };
        let proof = AnswerProof::Share(share);
        out.send(c, Msg::ExecProof { slot: None, order: 0, answers, seq, result, proof });
    }

    fn mac_reply(&self, c: ClientId, seq: u64, result: Bytes, out: &mut Out<F>) {
        let mac = self.crypto.mac(NodeId::Client(c), &Reply::mac_bytes(c, seq, &result));
        out.send(c, Msg::Reply(Reply { seq, result, mac }));
    }

    /// ExecSig from replica `from`: kept by the collector of the slot's instance.
    pub(crate) fn on_exec_sig(&mut self, from: ReplicaId, slot: DRef, order: u64, share: Share, out: &mut Out<F>) {
        if F::answers(&self.keys).is_none() {
            out.reject(NodeId::Replica(from), "EXECSIG in a protocol without aggregated answers");
            return;
        }
        let st = &share.statement;
        if share.signer != from || st.instance != destiny::PI || st.value != order || order == 0 {
            out.reject(NodeId::Replica(from), "EXECSIG share on another statement");
            return;
        }
        let Some(d) = self.d.get(slot.instance as usize) else { return };
        if !d.is_primary() || order <= self.executed_o.saturating_sub(MAX_COLLECTING as u64) {
            return; // not ours to collect, or long answered
        }
        if !self.collecting.contains_key(&slot) && self.collecting.len() >= MAX_COLLECTING {
            return;
        }
        let entry = self.collecting.entry(slot).or_insert_with(|| Collecting {
            order: None,
            answered: Vec::new(),
            shares: BTreeMap::new(),
            done: false,
        });
        if !entry.done {
            entry.shares.insert(from, share);
        }
        self.try_prove(slot, out);
    }

    /// f+1 shares on our own list of a slot's answers: combine them and
    /// send each client its proof.
    fn try_prove(&mut self, slot: DRef, out: &mut Out<F>) {
        let Some((_, scheme)) = F::answers(&self.keys) else { return };
        let scheme = scheme.clone();
        let Some(entry) = self.collecting.get(&slot).filter(|e| !e.done) else { return };
        let Some(order) = entry.order else { return };
        let list: Vec<Digest> = entry.answered.iter().map(|(c, s, r)| answer_digest(*c, *s, r)).collect();
        let st = answers_statement(Some(slot), order, &list);
        let matching: Vec<Share> = entry.shares.values().filter(|s| s.statement == st).cloned().collect();
        if matching.len() < scheme.threshold() {
            return;
        }
        match scheme.combine_reporting(&st, &matching) {
            Ok((sig, bad)) => {
                let Some(entry) = self.collecting.get_mut(&slot) else { return };
                entry.done = true;
                entry.shares.clear();
                for (c, seq, result) in std::mem::take(&mut entry.answered) {
                    let proof = AnswerProof::Threshold(sig.clone());
                    out.send(c, Msg::ExecProof { slot: Some(slot), order, answers: list.clone(), seq, result, proof });
                }
                for r in bad {
                    out.reject(NodeId::Replica(r), "EXECSIG share does not combine");
                }
            }
            Err(_) => {
                if let Some(e) = self.collecting.get_mut(&slot) {
                    e.shares.retain(|_, s| s.statement != st || scheme.verify_share(s, &st).is_ok());
                }
            }
        }
    }
}

//! Answers to clients. DQPBFT: every replica sends a MAC'd reply and the
//! client takes f+1 matching ones. Destiny (§4.3.2): every replica signs
//! the answer with π and sends the share (ExecSig) to the execution
//! collector, the current coordinator of the client's D-instance, which
//! combines f+1 into one proof (ExecProof) for the client. A replica the
//! client came to itself (a retransmission, or a client that spreads its
//! requests after a late answer) also sends its share to the client, which
//! can combine f+1 itself: a faulty collector delays answers, it cannot
//! withhold them.

use super::{Out, Replica};
use crate::messages::{answer_statement, Msg, Reply};
use crate::Flavor;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::instance::Instance;
use quorate_core::Bytes;
use quorate_threshsign::Share;
use std::collections::BTreeMap;

/// Most answer entries a collector keeps (one per client).
const MAX_ANSWERS: usize = 1 << 16;

impl<F: Flavor> Replica<F> {
    /// Answer client `c`'s request `seq` with `result`. `again`: the client
    /// asked for an answer it should have had (a retransmission).
    pub(crate) fn reply(&mut self, c: ClientId, seq: u64, result: Bytes, again: bool, out: &mut Out<F>) {
        let Some((plain, _)) = F::answers(&self.keys) else {
            let mac = self.crypto.mac(NodeId::Client(c), &Reply::mac_bytes(c, seq, &result));
            out.send(c, Msg::Reply(Reply { seq, result, mac }));
            return;
        };
        let st = answer_statement(c, seq, &result);
        let Ok(share) = plain.sign(st.instance, st.counter, st.value, &st.msg_hash) else { return };
        if again || self.direct.remove(&(c, seq)) {
            out.send(c, Msg::ExecSig { client: c, seq, result: result.clone(), share: share.clone() });
        }
        if again {
            return;
        }
        let collector = self.d[self.instance_of(c) as usize].primary();
        if collector == self.id {
            self.collect_answer(self.id, c, seq, result, share, out);
        } else {
            out.send(collector, Msg::ExecSig { client: c, seq, result, share });
        }
    }

    /// ExecSig from replica `from`: as the collector of the client's
    /// instance, keep the share.
    pub(crate) fn on_exec_sig(
        &mut self,
        from: ReplicaId,
        c: ClientId,
        seq: u64,
        result: Bytes,
        share: Share,
        out: &mut Out<F>,
    ) {
        if F::answers(&self.keys).is_none() {
            out.reject(NodeId::Replica(from), "EXECSIG in a protocol without aggregated answers");
            return;
        }
        if share.signer != from || share.statement != answer_statement(c, seq, &result) {
            out.reject(NodeId::Replica(from), "EXECSIG share on another statement");
            return;
        }
        if seq < self.exec.table().last_seq(c) || !self.d[self.instance_of(c) as usize].is_primary() {
            return; // answered long ago, or not ours to collect
        }
        self.collect_answer(from, c, seq, result, share, out);
    }

    /// Keep a share; with f+1 on one result, combine them and send the proof.
    fn collect_answer(
        &mut self,
        from: ReplicaId,
        c: ClientId,
        seq: u64,
        result: Bytes,
        share: Share,
        out: &mut Out<F>,
    ) {
        let Some((_, scheme)) = F::answers(&self.keys) else { return };
        let scheme = scheme.clone();
        if !self.answers.contains_key(&c) && self.answers.len() >= MAX_ANSWERS {
            return;
        }
        let entry = self.answers.entry(c).or_insert_with(|| (seq, BTreeMap::new()));
        if entry.0 > seq {
            return;
        }
        if entry.0 < seq {
            *entry = (seq, BTreeMap::new());
        }
        entry.1.insert(from, (result.clone(), share));
        let matching: Vec<Share> = entry.1.values().filter(|(r, _)| *r == result).map(|(_, s)| s.clone()).collect();
        if matching.len() < scheme.threshold() {
            return;
        }
        let st = answer_statement(c, seq, &result);
        match scheme.combine_reporting(&st, &matching) {
            Ok((sig, bad)) => {
                out.send(c, Msg::ExecProof { seq, result, sig });
                // Answered: later shares for it are ignored (the entry moves on).
                if let Some(e) = self.answers.get_mut(&c) {
                    e.0 = seq + 1;
                    e.1.clear();
                }
                for r in bad {
                    out.reject(NodeId::Replica(r), "EXECSIG share does not combine");
                }
            }
            Err(_) => {
                if let Some(e) = self.answers.get_mut(&c) {
                    e.1.retain(|_, (r, s)| *r != result || scheme.verify_share(s, &st).is_ok());
                }
            }
        }
    }
}

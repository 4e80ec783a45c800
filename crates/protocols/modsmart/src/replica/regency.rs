//! The synchronization phase: STOP, STOPDATA, SYNC (thesis Alg. 3–4, with the
//! consensus state piggybacked on STOPDATA as in §3.6.3).

use super::{Out, Replica, SyncOutcome};
use crate::messages::{Batch, Decision, InstanceState, Msg, SignedStopData, StopData};
use crate::safe_value::{self, SafeValue};
use quorate_core::crypto::Digest;
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::machine::Event;
use quorate_core::request::SignedRequest;
use quorate_core::time::Time;
use std::collections::BTreeSet;

/// What a valid set of STOPDATA says.
pub(crate) struct SyncPlan {
    /// The most advanced decision among them.
    pub highest: Option<Decision>,
    /// The instance after it.
    pub instance: u64,
    /// The safe value for that instance.
    pub safe: SafeValue,
    /// The batch of a bound value.
    pub bound_batch: Option<Batch>,
}

impl Replica {
    /// StartRegChange (Alg. 3 l.5–9).
    pub(crate) fn start_regency_change(&mut self, now: Time, requests: Vec<SignedRequest>, out: &mut Out) {
        if self.nreg != self.creg {
            return;
        }
        self.nreg = self.creg + 1;
        self.stop_regs.insert(self.id, self.nreg);
        out.broadcast(Msg::Stop { regency: self.nreg, requests });
        self.check_stops(now, out);
    }

    /// STOP from a replica (Alg. 3 l.10–25).
    pub(crate) fn on_stop(
        &mut self,
        now: Time,
        r: ReplicaId,
        regency: u64,
        requests: Vec<SignedRequest>,
        out: &mut Out,
    ) {
        if regency <= self.creg {
            // The sender is behind: it may need our SYNC.
            self.help_with_sync(r, out);
            return;
        }
        if requests.len() > self.cfg.max_batch.max(64) {
            out.reject(NodeId::Replica(r), "oversized STOP");
            return;
        }
        let prev = self.stop_regs.get(&r).copied().unwrap_or(0);
        if regency > prev {
            self.stop_regs.insert(r, regency);
        }
        for req in requests {
            if self.stop_requests.len() < self.cfg.max_batch * 4 {
                self.stop_requests.push(req);
            }
        }
        self.check_stops(now, out);
    }

    /// Replicas whose latest STOP asks for at least `regency`.
    fn stops_at_least(&self, regency: u64) -> usize {
        self.stop_regs.values().filter(|g| **g >= regency).count()
    }

    fn check_stops(&mut self, now: Time, out: &mut Out) {
        // Join: more than f replicas (crash mode: one) want regency g > nreg.
        let mut regs: Vec<u64> = self.stop_regs.iter().filter(|(r, _)| **r != self.id).map(|(_, g)| *g).collect();
        regs.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&g) = regs.get(self.join_threshold() - 1) {
            if g > self.nreg && g > self.creg {
                self.nreg = g;
                self.stop_regs.insert(self.id, g);
                // Requests from STOPs join ToOrder (Alg. 3 l.15–17).
                let from_stops = std::mem::take(&mut self.stop_requests);
                for req in from_stops {
                    self.request_received(now, req, NodeId::Replica(self.id), out);
                }
                let requests = self.pending.oldest(64);
                out.broadcast(Msg::Stop { regency: g, requests });
            }
        }
        if self.nreg > self.creg && self.stops_at_least(self.nreg) >= self.install_threshold() {
            self.install(now, self.nreg, out);
        }
    }

    /// Install a regency (Alg. 3 l.19–25): VP-Timeout on the running instance,
    /// timers restarted, signed STOPDATA to the new leader.
    pub(crate) fn install(&mut self, now: Time, regency: u64, out: &mut Out) {
        // App. A Lemma A1: regencies are installed in increasing order.
        quorate_core::invariant!(regency > self.creg, "mod-smart: installs regency {regency} in {}", self.creg);
        self.creg = regency;
        self.nreg = regency;
        self.stopped = true;
        self.sync_sent = false;
        self.stopdata.clear();
        self.sync_outcome = None;
        self.failed_regencies = self.failed_regencies.saturating_add(1);
        self.stop_regs.retain(|_, g| *g > regency);
        self.stop_requests.clear();
        self.inst.enter_epoch(regency + 1);
        self.pending.restart_timers(now);
        self.persist(&super::Record::Regency(regency), out);
        out.event(Event::ViewChanged { view: regency, leader: self.leader_of(regency) });
        let data = StopData {
            regency,
            replica: self.id,
            last_decided: self.last_decided().cloned(),
            state: self.inst.state(),
        };
        let sig = if self.bft() {
            self.crypto.sign(&data.signing_bytes())
        } else {
            quorate_core::crypto::Signature(Vec::new())
        };
        let sd = SignedStopData { data, sig };
        self.my_stopdata = Some(sd.clone());
        let leader = self.leader_of(regency);
        if leader == self.id {
            self.stopdata.insert(self.id, sd);
            let early = std::mem::take(&mut self.early_stopdata);
            for (r, sd) in early {
                self.on_stopdata(now, r, sd, out);
            }
            self.try_sync(now, out);
        } else {
            out.send(leader, Msg::StopData(sd));
        }
    }

    /// Whether a STOPDATA is well-formed and authentic for `regency`.
    pub(crate) fn valid_stopdata(&self, sd: &SignedStopData, regency: u64) -> Result<(), &'static str> {
        let d = &sd.data;
        if d.regency != regency {
            return Err("STOPDATA for another regency");
        }
        if !self.m.contains(d.replica) {
            return Err("STOPDATA from a non-member");
        }
        if self.bft() && !self.crypto.verify(NodeId::Replica(d.replica), &d.signing_bytes(), &sd.sig) {
            return Err("bad STOPDATA signature");
        }
        if let Some(dec) = &d.last_decided {
            if !self.valid_decision(dec) {
                return Err("bad decision proof in STOPDATA");
            }
        }
        let s = &d.state;
        let expected_instance = d.last_decided.as_ref().map(|x| x.instance + 1);
        if let Some(e) = expected_instance {
            if s.instance != e {
                return Err("STOPDATA state for the wrong instance");
            }
        }
        if s.valts > regency || s.writeset.iter().any(|(t, _)| *t > regency || *t == 0) || s.writeset.len() > 64 {
            return Err("STOPDATA state from the future");
        }
        if (s.valts == 0) != s.val.is_none() {
            return Err("inconsistent STOPDATA state");
        }
        if let (Some(v), Some(b)) = (&s.val, &s.val_batch) {
            if b.digest(self.crypto.as_ref()) != *v {
                return Err("STOPDATA batch does not match its digest");
            }
        }
        Ok(())
    }

    /// STOPDATA at the new leader (Alg. 4 l.26–31).
    pub(crate) fn on_stopdata(&mut self, now: Time, r: ReplicaId, sd: SignedStopData, out: &mut Out) {
        let from = NodeId::Replica(r);
        if sd.data.replica != r {
            out.reject(from, "STOPDATA names another sender");
            return;
        }
        if sd.data.regency > self.creg {
            // We may install this regency soon: keep one per sender.
            if self.leader_of(sd.data.regency) == self.id && self.early_stopdata.len() < self.m.n() * 2 {
                self.early_stopdata.retain(|(x, _)| *x != r);
                self.early_stopdata.push((r, sd));
            }
            return;
        }
        if sd.data.regency < self.creg || self.leader_of(self.creg) != self.id {
            out.reject(from, "stale or misdirected STOPDATA");
            return;
        }
        if self.sync_sent || self.stopdata.contains_key(&r) {
            return;
        }
        if let Err(why) = self.valid_stopdata(&sd, self.creg) {
            out.reject(from, why);
            return;
        }
        self.stopdata.insert(r, sd);
        self.try_sync(now, out);
    }

    /// Evaluate a set of STOPDATA.
    pub(crate) fn plan(&self, set: &[&SignedStopData]) -> SyncPlan {
        let highest = set.iter().filter_map(|sd| sd.data.last_decided.as_ref()).max_by_key(|d| d.instance).cloned();
        let instance = highest.as_ref().map(|d| d.instance + 1).unwrap_or(0);
        // States about another instance say nothing about this one: treat them as empty.
        let empty = InstanceState { instance, ..Default::default() };
        let states: Vec<&InstanceState> =
            set.iter().map(|sd| if sd.data.state.instance == instance { &sd.data.state } else { &empty }).collect();
        let safe = if self.bft() {
            safe_value::byzantine(&states, self.m.quorum(), self.m.f())
        } else {
            safe_value::crash(&states)
        };
        let bound_batch = match &safe {
            SafeValue::Bound(v) => states.iter().find(|s| s.val == Some(*v)).and_then(|s| s.val_batch.clone()),
            _ => None,
        };
        SyncPlan { highest, instance, safe, bound_batch }
    }

    /// Leader: once n−f STOPDATA give a sound picture, send SYNC (Alg. 4 l.30–31).
    fn try_sync(&mut self, now: Time, out: &mut Out) {
        if self.sync_sent || self.stopdata.len() < self.m.n_minus_f() {
            return;
        }
        let set: Vec<&SignedStopData> = self.stopdata.values().collect();
        let plan = self.plan(&set);
        let proposal = match plan.safe {
            SafeValue::Unsound => return, // Wait for more STOPDATA.
            SafeValue::Bound(_) if plan.bound_batch.is_none() => return,
            SafeValue::Bound(_) => None,
            SafeValue::Free => {
                let requests = self.pending.oldest(self.cfg.max_batch);
                let fresh: Vec<SignedRequest> =
                    requests.into_iter().filter(|r| self.exec.table().last_seq(r.req.client) < r.req.seq).collect();
                (!fresh.is_empty() && self.next() == plan.instance)
                    .then(|| Batch { timestamp: now.as_nanos().max(self.last_timestamp), requests: fresh })
            }
        };
        let stopdata: Vec<SignedStopData> = self.stopdata.values().cloned().collect();
        self.sync_sent = true;
        let msg = Msg::Sync { regency: self.creg, stopdata, proposal };
        out.broadcast(msg.clone());
        if let Msg::Sync { regency, stopdata, proposal } = msg {
            self.on_sync(now, self.id, regency, stopdata, proposal, out);
        }
    }

    /// SYNC from the leader (Alg. 4 l.32–45). A valid SYNC for a later
    /// regency also brings a replica that missed the STOPs into that regency.
    pub(crate) fn on_sync(
        &mut self,
        now: Time,
        r: ReplicaId,
        regency: u64,
        stopdata: Vec<SignedStopData>,
        proposal: Option<Batch>,
        out: &mut Out,
    ) {
        let from = NodeId::Replica(r);
        if regency < self.creg || (regency == self.creg && !self.stopped) {
            return; // Old or already synchronized.
        }
        if r != self.leader_of(regency) {
            out.reject(from, "SYNC from a non-leader");
            return;
        }
        let mut senders = BTreeSet::new();
        for sd in &stopdata {
            if !senders.insert(sd.data.replica) {
                out.reject(from, "duplicate STOPDATA in SYNC");
                return;
            }
            if r != self.id {
                if let Err(why) = self.valid_stopdata(sd, regency) {
                    out.reject(from, why);
                    return;
                }
            }
        }
        if senders.len() < self.m.n_minus_f() {
            out.reject(from, "SYNC with too few STOPDATA");
            return;
        }
        let set: Vec<&SignedStopData> = stopdata.iter().collect();
        let plan = self.plan(&set);
        let value: Option<(Digest, Batch)> = match plan.safe {
            SafeValue::Unsound => {
                out.reject(from, "SYNC is not sound");
                return;
            }
            SafeValue::Bound(v) => match plan.bound_batch.clone() {
                Some(b) => Some((v, b)),
                None => {
                    out.reject(from, "SYNC binds a value without its batch");
                    return;
                }
            },
            SafeValue::Free => match proposal {
                Some(b) => {
                    if r != self.id && self.next() == plan.instance && self.check_batch(&b).is_err() {
                        out.reject(from, "invalid SYNC proposal");
                        None
                    } else {
                        Some((b.digest(self.crypto.as_ref()), b))
                    }
                }
                None => None,
            },
        };
        // Jump to the regency if we missed its STOPs: n−f signed STOPDATA prove it.
        if regency > self.creg {
            self.install_silently(now, regency, out);
        }
        self.stopped = false;
        self.last_sync = Some(Msg::Sync { regency, stopdata: stopdata.clone(), proposal: None });
        out.event(Event::Note(format!("synchronized regency {regency} at instance {}", plan.instance)));
        // Catch up to the most advanced decision (Alg. 4 l.38–45).
        self.sync_outcome = Some(SyncOutcome { instance: plan.instance, epoch: regency + 1, value });
        if let Some(d) = plan.highest {
            if d.instance >= self.next() {
                self.decided.entry(d.instance).or_insert(d);
            }
        }
        self.execute_decided(now, out);
        self.apply_sync_outcome(now, out);
        self.pending.restart_timers(now);
        let held = std::mem::take(&mut self.held);
        for (from, msg) in held {
            self.on_replica_message(now, from, msg, out);
        }
        self.maybe_propose(now, out);
    }

    /// Enter a regency proven by a SYNC without having seen its STOPs.
    fn install_silently(&mut self, now: Time, regency: u64, out: &mut Out) {
        // App. A Lemma A1: regencies are installed in increasing order.
        quorate_core::invariant!(regency > self.creg, "mod-smart: installs regency {regency} in {}", self.creg);
        self.creg = regency;
        self.nreg = regency;
        self.stop_regs.retain(|_, g| *g > regency);
        self.inst.enter_epoch(regency + 1);
        self.pending.restart_timers(now);
        self.persist(&super::Record::Regency(regency), out);
        out.event(Event::ViewChanged { view: regency, leader: self.leader_of(regency) });
    }

    /// A replica in an older regency: send it the SYNC of ours (once per regency).
    pub(crate) fn help_with_sync(&mut self, r: ReplicaId, out: &mut Out) {
        if let Some(sync) = &self.last_sync {
            if self.helped_sync.insert((r, self.creg)) {
                out.send(r, sync.clone());
            }
        }
    }
}

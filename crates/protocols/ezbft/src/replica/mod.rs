//! The EZBFT replica. One file per part:
//!
//! - `order.rs`: REQUEST (becoming command-leader) and SPECORDER (§IV-A).
//! - `commit.rs`: COMMITFAST (§IV-A step 5.1) and COMMIT (§IV-C) as
//!   proposals, COMMITQUERY / COMMITTED, and committing.
//! - `agree.rs`: ACCEPT and CONFIRM, the agreement on one proposal per slot.
//! - `execute.rs`: speculative and final execution (§IV-B).
//! - `owner.rs`: suspicion (REQUEST to all, RESENDREQ, POM) and the owner
//!   change that settles and freezes a faulty leader's space (§IV-D, §IV-E).
//! - `checkpoint.rs`: barriers, CHECKPOINT votes, garbage collection and
//!   state transfer (the paper names checkpoints only).

mod agree;
mod checkpoint;
mod commit;
mod durable;
mod execute;
mod order;
mod owner;

#[cfg(test)]
mod invariant_tests;

pub(crate) use owner::settle;

use crate::config::Config;
use crate::messages::{
    barrier_space, CheckpointState, CommitProof, InstanceId, Msg, NewOwnerBody, NewOwnerCert, NewOwnerVoteBody,
    OwnerChangeBody, Phase, Signed, SpecOrder, SpecReply, SpecReplyBody,
};
use crate::{Ezbft, Timer};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::executor::Executor;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::invariant::OwnVotes;
use quorate_core::machine::{Input, Outbox, ReplicaContext, ReplicaMachine};
use quorate_core::membership::Membership;
use quorate_core::request::SignedRequest;
use quorate_core::time::Time;
use quorate_core::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

pub(crate) type Out = Outbox<Ezbft>;

/// A command in this replica's log.
pub(crate) struct Entry {
    pub req: SignedRequest,
    /// The command-leader's signed order.
    pub order: Signed<SpecOrder>,
    /// Dependencies: this replica's view (D') until committed, then the committed ones.
    pub deps: Vec<InstanceId>,
    /// Sequence number, likewise.
    pub seq: u64,
    pub committed: bool,
    pub executed: bool,
    /// Result of the latest speculative execution.
    pub spec_result: Option<Bytes>,
    /// This replica's SPECREPLY (sent again on retransmissions).
    pub reply: Option<SpecReply>,
    /// Committed on the slow path: the client waits for a COMMITREPLY.
    pub reply_when_final: bool,
    /// The final result, once executed.
    pub final_result: Option<Bytes>,
    /// How the replicas agreed on its commit (none: settled by an owner change).
    pub proof: Option<CommitProof>,
    /// Dropped by an owner change: committed as doing nothing.
    pub noop: bool,
    /// Interferes with every command: its dependencies are prefixes of the
    /// spaces (all slots up to the one named), not single commands.
    pub keyless: bool,
    /// The command's conflict key (none: keyless); final execution follows
    /// a dependency only between interfering commands.
    pub key: Option<Bytes>,
    /// A checkpoint barrier (no operation; the checkpoint is taken when it executes finally).
    pub barrier: bool,
}

/// The agreement on the NEWOWNER of one space and owner number: ACCEPT the
/// first valid one, CONFIRM with 2f+1 ACCEPTs, install with 2f+1 CONFIRMs.
#[derive(Default)]
pub(crate) struct NewOwnerRound {
    /// The valid NEWOWNERs seen, by digest.
    pub candidates: BTreeMap<Digest, Signed<NewOwnerBody>>,
    /// The one we accepted.
    pub accepted: Option<Digest>,
    /// The one we confirmed, with its 2f+1 ACCEPTs.
    pub prepared: Option<NewOwnerCert>,
    /// The first ACCEPT and the first CONFIRM of each replica.
    pub accepts: BTreeMap<ReplicaId, Signed<NewOwnerVoteBody>>,
    pub confirms: BTreeMap<ReplicaId, Signed<NewOwnerVoteBody>>,
}

/// One replica's instance space as this replica knows it.
pub(crate) struct Space {
    /// Owner number (the owner is `owner mod n`).
    pub owner: u64,
    /// The next slot expected (maxI + 1).
    pub next: u64,
    /// Every slot below this one is executed (or collected).
    pub executed_below: u64,
    /// Slots in the log not executed yet (for keyless commands' prefix dependencies).
    pub unexecuted: BTreeSet<u64>,
    /// Digest of the history up to `next - 1` (h).
    pub history: Digest,
    /// SPECORDERs that arrived ahead of a missing slot.
    pub future: BTreeMap<u64, (Signed<SpecOrder>, SignedRequest)>,
    /// After an owner change: the space holds this many slots and takes no more.
    pub frozen: Option<u64>,
    /// Slots dropped by earlier owner changes, before the epoch that reopened the space.
    pub void: Vec<(u64, u64)>,
    /// The NEWOWNER that froze it (owner number and views), for replicas that missed it.
    pub installed: Vec<NewOwnerCert>,
    /// The agreement on one NEWOWNER, per owner number not installed yet.
    pub rounds: BTreeMap<u64, NewOwnerRound>,
    /// Committed to an owner change towards this owner number: the space takes
    /// no orders or commits until NEWOWNER.
    pub changing: Option<u64>,
    /// Clients that asked us to push the owner (REQUEST to all): told when the space freezes.
    pub waiting_clients: BTreeSet<ClientId>,
    /// The missing slot last asked for (ORDERQUERY).
    pub asked: Option<u64>,
    /// Our owner number when we last asked for the NEWOWNERs after it: a
    /// reopened space's every order would otherwise ask again, and each
    /// answer carries whole settled histories.
    pub asked_new_owner: Option<u64>,
    /// Per replica that showed it missed NEWOWNERs: the owner number it
    /// showed and when we last answered it (see `show_new_owners`).
    pub shown: BTreeMap<ReplicaId, (u64, Time)>,
    /// STARTOWNERCHANGE senders, by the owner number they want replaced.
    pub suspects: BTreeMap<u64, BTreeSet<ReplicaId>>,
    /// As the new owner: OWNERCHANGE reports received, for owner number `changing`.
    pub reports: BTreeMap<ReplicaId, Signed<OwnerChangeBody>>,
}

impl Space {
    /// Whether the space takes new orders and commits.
    pub fn open(&self) -> bool {
        self.frozen.is_none() && self.changing.is_none()
    }

    /// Whether an owner change dropped `slot` (it holds no command for good).
    /// A frozen space's slots past its end are dropped up to the next epoch
    /// only: the space's replica may have reopened it without our knowing
    /// (its orders came while we were under the change, or down), and a
    /// command that depends on the new epoch must wait for it, not skip it.
    pub fn void(&self, slot: u64) -> bool {
        self.frozen.is_some_and(|len| slot >= len && slot < crate::messages::next_epoch_base(len))
            || self.void.iter().any(|(from, to)| (*from..*to).contains(&slot))
    }

    /// Move `executed_below` over executed and dropped slots.
    pub fn advance(&mut self, executed: impl Fn(u64) -> bool) {
        loop {
            let slot = self.executed_below;
            if let Some((_, to)) = self.void.iter().find(|(from, to)| (*from..*to).contains(&slot)) {
                self.executed_below = *to;
            } else if executed(slot) && self.frozen.is_none_or(|len| slot < len) {
                self.executed_below += 1;
            } else {
                return;
            }
        }
    }
}

/// Where to find the commands that interfere with a new one: the latest
/// command per space for each conflict key, for keyless commands (which
/// interfere with everything), and for any command at all. Dependencies are
/// transitive (each command depends on the earlier interfering ones), so the
/// latest per space is enough, as in EPaxos.
#[derive(Default)]
pub(crate) struct Interference {
    by_key: HashMap<Bytes, BTreeMap<ReplicaId, u64>>,
    keyless: BTreeMap<ReplicaId, u64>,
    any: BTreeMap<ReplicaId, u64>,
    /// Each client's latest request (highest timestamp) and every instance
    /// holding it (a request retried at another replica is in two spaces): a
    /// client's commands are ordered among themselves, so that the per-client
    /// request table sees them in order.
    by_client: HashMap<ClientId, (u64, Vec<InstanceId>)>,
    /// The latest stable checkpoint's barrier: every command depends on it.
    floor: Option<InstanceId>,
}

impl Interference {
    /// Instances a command with `key` from `client` depends on (itself excluded).
    pub fn deps(&self, key: Option<&Bytes>, client: ClientId, me: InstanceId) -> BTreeSet<InstanceId> {
        let mut deps = BTreeSet::new();
        let mut add = |m: &BTreeMap<ReplicaId, u64>| {
            deps.extend(m.iter().map(|(space, slot)| InstanceId { space: *space, slot: *slot }));
        };
        match key {
            Some(k) => {
                if let Some(m) = self.by_key.get(k) {
                    add(m);
                }
                add(&self.keyless);
            }
            None => add(&self.any),
        }
        if let Some((_, copies)) = self.by_client.get(&client) {
            deps.extend(copies.iter().copied());
        }
        deps.extend(self.floor);
        deps.remove(&me);
        deps
    }

    /// Forget the commands a stable checkpoint covers below its frontier; new
    /// commands depend on its barrier (`floor`) instead, so that a replica
    /// that has not executed them yet still runs them first.
    pub fn forget(&mut self, frontier: &crate::messages::Frontier, floor: Option<InstanceId>) {
        let live = |space: &ReplicaId, slot: &mut u64| *slot >= frontier.below(*space);
        self.by_key.retain(|_, m| {
            m.retain(|space, slot| live(space, slot));
            !m.is_empty()
        });
        self.by_client.retain(|_, (_, copies)| {
            copies.retain(|i| i.slot >= frontier.below(i.space));
            !copies.is_empty()
        });
        self.floor = floor;
    }

    /// Record a command of the log: client `client`'s request with timestamp `t`.
    pub fn add(&mut self, key: Option<Bytes>, client: ClientId, t: u64, inst: InstanceId) {
        let newer = |m: &mut BTreeMap<ReplicaId, u64>| {
            let s = m.entry(inst.space).or_insert(inst.slot);
            *s = (*s).max(inst.slot);
        };
        match key {
            Some(k) => newer(self.by_key.entry(k).or_default()),
            None => newer(&mut self.keyless),
        }
        newer(&mut self.any);
        let (latest, copies) = self.by_client.entry(client).or_insert((t, Vec::new()));
        if t > *latest {
            *latest = t;
            copies.clear();
        }
        if t == *latest && !copies.contains(&inst) {
            copies.push(inst);
        }
    }
}

/// An EZBFT replica.
pub struct Replica {
    pub(crate) id: ReplicaId,
    pub(crate) m: Membership,
    pub(crate) crypto: Arc<dyn Crypto>,
    pub(crate) cfg: Config,
    pub(crate) exec: Executor,
    pub(crate) spaces: Vec<Space>,
    pub(crate) log: HashMap<InstanceId, Entry>,
    pub(crate) interference: Interference,
    /// Committed commands not executed yet.
    pub(crate) waiting: BTreeSet<InstanceId>,
    /// Waiting commands by the (unknown or uncommitted) command they wait for.
    pub(crate) blocked: HashMap<InstanceId, Vec<InstanceId>>,
    /// The other way round: each waiting command's blocker, so that a command
    /// that reaches a waiting one stops there instead of walking its graph again.
    pub(crate) parked: HashMap<InstanceId, InstanceId>,
    /// Slots with proposals or votes and no commit yet.
    pub(crate) agreements: HashMap<InstanceId, agree::Agreement>,
    /// Commands others wait for that are not committed here: commit timeouts so far.
    pub(crate) uncommitted: HashMap<InstanceId, u32>,
    /// Commands executed speculatively and not final yet, in execution order
    /// (the executor's speculative tail), with the request that ran (an owner
    /// change can put another request in the slot).
    pub(crate) speculated: VecDeque<(InstanceId, (ClientId, u64))>,
    /// Per client: the highest timestamp this replica led, and its instance (t_c).
    pub(crate) led: HashMap<ClientId, (u64, InstanceId)>,
    /// Where each request (client, timestamp) is in the log.
    pub(crate) by_request: HashMap<(ClientId, u64), InstanceId>,
    /// Each client's latest finally executed request and its result (the
    /// executor's table also counts speculative runs, which may be undone).
    pub(crate) finals: HashMap<ClientId, (u64, Bytes)>,
    /// Commands ordered in our space since our last barrier.
    pub(crate) since_barrier: u64,
    /// Our barrier being committed (we drive its commit as clients drive theirs).
    pub(crate) barrier: Option<checkpoint::BarrierRound>,
    /// CHECKPOINT votes by barrier, with our own checkpoint once we take it.
    pub(crate) votes: BTreeMap<InstanceId, checkpoint::Votes>,
    /// The latest stable checkpoint: what it covers is collected from the log.
    pub(crate) stable: Option<CheckpointState>,
    /// State transfers asked for (to ask another replica each time).
    pub(crate) state_asks: u64,
    /// Replaying the durable log: write nothing to it.
    pub(crate) replaying: bool,
    /// Committing an owner change's settled history: final execution waits
    /// until all of it is committed (see `install_new_owner`).
    pub(crate) defer_execution: bool,
    /// Committing a commit proof we asked for: we are behind.
    pub(crate) catching_up: bool,
    /// Per space, the slots our latest COMMITQUERY there asked for.
    pub(crate) fetching: HashMap<ReplicaId, std::ops::Range<u64>>,
    /// The time of the input being handled (to pace answers, never to decide).
    pub(crate) now: Time,
    /// Invariants (decision 0016): the latest slot we ordered in our own space.
    pub(crate) last_ordered: Option<u64>,
    /// Our SPECREPLY per slot, per space (kept only while invariants are on).
    pub(crate) own_replies: Vec<OwnVotes<u64, SpecReplyBody>>,
    /// Our ACCEPT and CONFIRM per slot, per space (likewise).
    pub(crate) own_votes: Vec<OwnVotes<(u64, Phase), Digest>>,
    /// Our NEWOWNER ACCEPT and CONFIRM per (space, owner number) (likewise).
    pub(crate) own_new_owner_votes: OwnVotes<(ReplicaId, u64, Phase), Digest>,
}

impl Replica {
    /// A replica with empty state.
    pub fn new(ctx: ReplicaContext, cfg: Config) -> Self {
        let n = ctx.membership.n();
        let spaces = (0..n as u32)
            .map(|i| Space {
                owner: u64::from(i),
                next: 0,
                executed_below: 0,
                unexecuted: BTreeSet::new(),
                history: Self::initial_history(ReplicaId(i)),
                future: BTreeMap::new(),
                frozen: None,
                void: Vec::new(),
                installed: Vec::new(),
                rounds: BTreeMap::new(),
                changing: None,
                asked: None,
                asked_new_owner: None,
                waiting_clients: BTreeSet::new(),
                shown: BTreeMap::new(),
                suspects: BTreeMap::new(),
                reports: BTreeMap::new(),
            })
            .collect();
        Replica {
            id: ctx.id,
            m: ctx.membership,
            crypto: ctx.crypto,
            cfg,
            exec: Executor::new(ctx.service),
            spaces,
            log: HashMap::new(),
            interference: Interference::default(),
            waiting: BTreeSet::new(),
            blocked: HashMap::new(),
            parked: HashMap::new(),
            agreements: HashMap::new(),
            uncommitted: HashMap::new(),
            speculated: VecDeque::new(),
            led: HashMap::new(),
            by_request: HashMap::new(),
            finals: HashMap::new(),
            since_barrier: 0,
            barrier: None,
            votes: BTreeMap::new(),
            stable: None,
            state_asks: 0,
            replaying: false,
            defer_execution: false,
            catching_up: false,
            fetching: HashMap::new(),
            now: Time(0),
            last_ordered: None,
            own_replies: (0..n).map(|_| OwnVotes::default()).collect(),
            own_votes: (0..n).map(|_| OwnVotes::default()).collect(),
            own_new_owner_votes: OwnVotes::default(),
        }
    }

    /// The history digest after appending `request` at `slot` to a space whose history was `prev`.
    pub(crate) fn next_history(prev: &Digest, slot: u64, request: &Digest) -> Digest {
        Digest::of_parts(&[b"ezbft-history", &prev.0, &slot.to_le_bytes(), &request.0])
    }

    /// The conflict key of a command (barriers have none: they interfere with all).
    pub(crate) fn key_of(&self, req: &quorate_core::request::Request) -> Option<Bytes> {
        match barrier_space(req.client, &self.m) {
            Some(_) => None,
            None => self.exec.service().conflict_key(&req.op),
        }
    }

    /// Add a command to the log and the interference index.
    pub(crate) fn insert(&mut self, req: SignedRequest, order: Signed<SpecOrder>, deps: Vec<InstanceId>, seq: u64) {
        let inst = order.body.inst;
        let barrier = barrier_space(req.req.client, &self.m).is_some();
        let key = self.key_of(&req.req);
        let keyless = key.is_none();
        self.interference.add(key.clone(), req.req.client, req.req.seq, inst);
        self.by_request.insert((req.req.client, req.req.seq), inst);
        // Covered by the stable checkpoint (state transfer): executed already.
        let done = self.covered(inst);
        let entry = Entry {
            req,
            order,
            deps,
            seq,
            committed: done,
            executed: done,
            spec_result: None,
            reply: None,
            reply_when_final: false,
            final_result: None,
            proof: None,
            noop: false,
            keyless,
            key,
            barrier,
        };
        if !done {
            if let Some(s) = self.spaces.get_mut(inst.space.index()) {
                s.unexecuted.insert(inst.slot);
            }
        }
        self.log.insert(inst, entry);
    }
}

impl ReplicaMachine<Ezbft> for Replica {
    /// The replica's decisions need no clock (its timing is in timers); the
    /// time only paces repeated answers.
    fn handle(&mut self, now: Time, input: Input<Ezbft>, out: &mut Out) {
        self.now = now;
        match input {
            Input::Start => {}
            Input::Recover { checkpoint, records } => self.recover(checkpoint, records, out),
            Input::Message { from, msg } => self.on_message(from, msg, out),
            Input::Timer(Timer::ResendReq { space, client, t }) => self.on_resend_timeout(space, client, t, out),
            Input::Timer(Timer::NewOwner { space, owner }) => self.on_new_owner_timeout(space, owner, out),
            Input::Timer(Timer::Uncommitted { inst }) => self.on_uncommitted_timeout(inst, out),
            Input::Timer(Timer::Barrier { inst }) => self.on_barrier_timeout(inst, out),
            Input::Timer(Timer::StateTransfer { barrier }) => self.on_state_transfer_timeout(barrier, out),
            Input::Timer(Timer::SlowPath | Timer::Retransmit | Timer::Suspect) => {}
        }
    }

    fn state_digest(&self) -> Digest {
        // Final state only: speculative executions differ between replicas by design.
        self.exec.checkpoint().digest
    }

    /// The final executions `state_digest` reflects (while speculating, those
    /// before the speculation began).
    fn executed(&self) -> u64 {
        self.exec.checkpoint_slot()
    }

    /// For tests that look at the agreements and the log.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl Replica {
    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out) {
        match (from, msg) {
            (NodeId::Client(c), Msg::Request(r)) => self.on_request(c, r, out),
            (NodeId::Replica(r), Msg::SpecOrder { order, request }) => self.on_spec_order(r, order, request, out),
            (from, Msg::CommitFast { request, cert }) => self.on_commit_fast(from, request, cert, out),
            (from, Msg::Commit { commit, request, cert }) => self.on_commit(from, commit, request, cert, out),
            (NodeId::Replica(r), Msg::Accept(vote)) => self.on_vote(r, *vote, crate::messages::Phase::Accept, out),
            (NodeId::Replica(r), Msg::Confirm(vote)) => self.on_vote(r, *vote, crate::messages::Phase::Confirm, out),
            (NodeId::Replica(r), Msg::SpecReply(reply)) => self.on_barrier_reply(r, *reply, out),
            (NodeId::Replica(r), Msg::Checkpoint(vote)) => self.on_checkpoint(r, *vote, out),
            (NodeId::Replica(r), Msg::StateQuery { barrier }) => self.on_state_query(r, barrier, out),
            (NodeId::Replica(r), Msg::State(state)) => self.on_state(r, *state, out),
            (NodeId::Client(c), Msg::RequestAll { request, leader }) => self.on_request_all(c, request, leader, out),
            (NodeId::Replica(r), Msg::ResendReq { request }) => self.on_resend_req(r, request, out),
            (NodeId::Client(c), Msg::Pom { a, b }) => self.on_pom(c, *a, *b, out),
            (NodeId::Replica(r), Msg::StartOwnerChange { space, owner }) => {
                self.on_start_owner_change(r, space, owner, out)
            }
            (NodeId::Replica(r), Msg::OwnerChange(oc)) => self.on_owner_change(r, *oc, out),
            (NodeId::Replica(r), Msg::CommitQuery { inst }) => self.on_commit_query(r, inst, out),
            (NodeId::Replica(r), Msg::OrderQuery { inst }) => self.on_order_query(r, inst, out),
            (NodeId::Replica(r), Msg::Committed { request, proof }) => self.on_committed(r, request, *proof, out),
            (NodeId::Replica(r), Msg::NewOwner(new_owner)) => self.on_new_owner(r, *new_owner, out),
            (NodeId::Replica(r), Msg::NewOwnerVote(vote)) => self.on_new_owner_vote(r, *vote, out),
            (NodeId::Replica(r), Msg::NewOwnerAgreed(cert)) => self.on_new_owner_agreed(r, *cert, out),
            (from, _) => out.reject(from, "message not expected from this sender"),
        }
    }
}

#[cfg(test)]
mod tests;

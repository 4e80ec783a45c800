//! The EZBFT replica. One file per part:
//!
//! - `order.rs`: REQUEST (becoming command-leader) and SPECORDER (§IV-A).
//! - `commit.rs`: COMMITFAST (§IV-A step 5.1) and COMMIT (§IV-C).
//! - `execute.rs`: speculative and final execution (§IV-B).
//! - `owner.rs`: suspicion (REQUEST to all, RESENDREQ, POM) and the owner
//!   change that settles and freezes a faulty leader's space (§IV-D, §IV-E).

mod commit;
mod execute;
mod order;
mod owner;

use crate::config::Config;
use crate::messages::{CommitProof, InstanceId, Msg, OwnerChangeBody, Signed, SpecOrder, SpecReply};
use crate::{Ezbft, Timer};
use quorate_core::crypto::{Crypto, Digest};
use quorate_core::executor::Executor;
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
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
    /// The certificate it was committed with (none: settled by an owner change).
    pub proof: Option<CommitProof>,
    /// Dropped by an owner change: committed as doing nothing.
    pub noop: bool,
}

/// One replica's instance space as this replica knows it.
pub(crate) struct Space {
    /// Owner number (the owner is `owner mod n`).
    pub owner: u64,
    /// The next slot expected (maxI + 1).
    pub next: u64,
    /// Digest of the history up to `next - 1` (h).
    pub history: Digest,
    /// SPECORDERs that arrived ahead of a missing slot.
    pub future: BTreeMap<u64, (Signed<SpecOrder>, SignedRequest)>,
    /// After an owner change: the space holds this many slots and takes no more.
    pub frozen: Option<u64>,
    /// The NEWOWNER that froze it (owner number and views), for replicas that missed it.
    pub installed: Option<(u64, Vec<Signed<OwnerChangeBody>>)>,
    /// Committed to an owner change towards this owner number: the space takes
    /// no orders or commits until NEWOWNER.
    pub changing: Option<u64>,
    /// Clients that asked us to push the owner (REQUEST to all): told when the space freezes.
    pub waiting_clients: BTreeSet<ClientId>,
    /// The missing slot last asked for (ORDERQUERY).
    pub asked: Option<u64>,
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
        deps.remove(&me);
        deps
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
}

impl Replica {
    /// A replica with empty state.
    pub fn new(ctx: ReplicaContext, cfg: Config) -> Self {
        let n = ctx.membership.n();
        let spaces = (0..n as u32)
            .map(|i| Space {
                owner: u64::from(i),
                next: 0,
                history: Digest::of_parts(&[b"ezbft-space", &i.to_le_bytes()]),
                future: BTreeMap::new(),
                frozen: None,
                installed: None,
                changing: None,
                asked: None,
                waiting_clients: BTreeSet::new(),
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
            uncommitted: HashMap::new(),
            speculated: VecDeque::new(),
            led: HashMap::new(),
            by_request: HashMap::new(),
            finals: HashMap::new(),
        }
    }

    /// The history digest after appending `request` at `slot` to a space whose history was `prev`.
    pub(crate) fn next_history(prev: &Digest, slot: u64, request: &Digest) -> Digest {
        Digest::of_parts(&[b"ezbft-history", &prev.0, &slot.to_le_bytes(), &request.0])
    }

    /// Add a command to the log and the interference index.
    pub(crate) fn insert(&mut self, req: SignedRequest, order: Signed<SpecOrder>, deps: Vec<InstanceId>, seq: u64) {
        let inst = order.body.inst;
        let key = self.exec.service().conflict_key(&req.req.op);
        self.interference.add(key, req.req.client, req.req.seq, inst);
        self.by_request.insert((req.req.client, req.req.seq), inst);
        let entry = Entry {
            req,
            order,
            deps,
            seq,
            committed: false,
            executed: false,
            spec_result: None,
            reply: None,
            reply_when_final: false,
            final_result: None,
            proof: None,
            noop: false,
        };
        self.log.insert(inst, entry);
    }
}

impl ReplicaMachine<Ezbft> for Replica {
    /// The replica needs no clock: all its timing is in timers.
    fn handle(&mut self, _now: Time, input: Input<Ezbft>, out: &mut Out) {
        match input {
            // No durable state yet: a recovering replica starts empty and relearns from COMMITs.
            Input::Start | Input::Recover { .. } => {}
            Input::Message { from, msg } => self.on_message(from, msg, out),
            Input::Timer(Timer::ResendReq { space, client, t }) => self.on_resend_timeout(space, client, t, out),
            Input::Timer(Timer::NewOwner { space, owner }) => self.on_new_owner_timeout(space, owner, out),
            Input::Timer(Timer::Uncommitted { inst }) => self.on_uncommitted_timeout(inst, out),
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
}

impl Replica {
    fn on_message(&mut self, from: NodeId, msg: Msg, out: &mut Out) {
        match (from, msg) {
            (NodeId::Client(c), Msg::Request(r)) => self.on_request(c, r, out),
            (NodeId::Replica(r), Msg::SpecOrder { order, request }) => self.on_spec_order(r, order, request, out),
            (NodeId::Client(c), Msg::CommitFast { request, cert }) => self.on_commit_fast(c, request, cert, out),
            (NodeId::Client(c), Msg::Commit { commit, request, cert }) => self.on_commit(c, commit, request, cert, out),
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
            (NodeId::Replica(r), Msg::NewOwner { space, owner, proofs }) => {
                self.on_new_owner(r, space, owner, proofs, out)
            }
            (from, _) => out.reject(from, "message not expected from this sender"),
        }
    }
}

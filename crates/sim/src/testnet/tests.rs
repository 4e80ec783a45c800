//! The test network's own tests, over a toy protocol: a replica executes
//! each signed request it gets from its client (persisting it, with a
//! checkpoint record every third), echoes its sequence number to the
//! others and replies; PING is echoed back forever (a storm); ARM and
//! DISARM set and cancel a timer; FAN multicasts and sends out of range.

use super::*;
use quorate_core::keys::KeyError;
use quorate_core::machine::{ClientMachine, UnknownStrategy};
use quorate_core::{Crypto, Digest, Signature};
use serde::{Deserialize, Serialize};
use std::path::Path;

struct Toy;

#[derive(Clone, Debug, Serialize, Deserialize)]
enum M {
    Req(SignedRequest),
    Echo(u64),
    Ping(u64),
    Reply { seq: u64, result: Bytes },
    Arm,
    Disarm,
    Fan,
}

impl Message for M {
    fn request_mut(&mut self) -> Option<&mut SignedRequest> {
        match self {
            M::Req(r) => Some(r),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            M::Req(_) => "REQUEST",
            M::Echo(_) => "ECHO",
            M::Ping(_) => "PING",
            M::Reply { .. } => "REPLY",
            M::Arm => "ARM",
            M::Disarm => "DISARM",
            M::Fan => "FAN",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum T {
    Tick,
    Once,
}

/// Ticks every `tick_ms` (0: never).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cfg {
    tick_ms: u64,
}

/// Key material: a number per replica; the public part is a number too.
#[derive(Debug, PartialEq, Eq)]
struct ToyKeys(u32);

impl KeyMaterial for ToyKeys {
    type Public = u32;
    fn deal_into<R: rand::RngCore + rand::CryptoRng>(_: &Path, _: usize, _: usize, _: &mut R) -> Result<(), KeyError> {
        Ok(())
    }
    fn load(_: &Path, id: ReplicaId, _: usize, _: usize) -> Result<Self, KeyError> {
        Ok(ToyKeys(id.0))
    }
    fn load_public(_: &Path, n: usize, _: usize) -> Result<u32, KeyError> {
        Ok(n as u32)
    }
    fn modelled(id: ReplicaId, _: usize, _: usize) -> Self {
        ToyKeys(id.0)
    }
    fn modelled_public(n: usize, _: usize) -> u32 {
        n as u32
    }
}

impl Protocol for Toy {
    const NAME: &'static str = "toy";
    type Keys = ToyKeys;
    type Message = M;
    type Timer = T;
    type Config = Cfg;
    fn replicas_for(f: usize, _: FaultModel) -> usize {
        3 * f + 1
    }
    fn liveness_bound(_: &Cfg, _: usize) -> Duration {
        Duration::from_secs(1)
    }
    fn replica(ctx: ReplicaContext<ToyKeys>, cfg: &Cfg) -> Box<dyn ReplicaMachine<Toy>> {
        Box::new(ToyReplica::new(ctx, cfg, None))
    }
    fn client(_: ClientContext<ToyKeys>, _: &Cfg) -> Box<dyn ClientMachine<Toy>> {
        panic!("the toy has no clients")
    }
    fn byzantine(
        strategy: &str,
        ctx: ReplicaContext<ToyKeys>,
        cfg: &Cfg,
    ) -> Result<Box<dyn ReplicaMachine<Toy>>, UnknownStrategy> {
        match strategy {
            "silent" => Ok(Box::new(ToyReplica::new(ctx, cfg, Some(strategy.to_string())))),
            other => Err(UnknownStrategy(other.to_string())),
        }
    }
}

struct ToyReplica {
    id: ReplicaId,
    crypto: Arc<dyn Crypto>,
    keys: ToyKeys,
    strategy: Option<String>,
    tick: Duration,
    executed: u64,
    echoes: Vec<(NodeId, u64)>,
    ticks: u64,
    once: u64,
    started: bool,
    recovered: Option<(Option<Bytes>, Vec<Bytes>)>,
}

impl ToyReplica {
    fn new(ctx: ReplicaContext<ToyKeys>, cfg: &Cfg, strategy: Option<String>) -> Self {
        ToyReplica {
            id: ctx.id,
            crypto: ctx.crypto,
            keys: ctx.keys,
            strategy,
            tick: Duration::from_millis(cfg.tick_ms),
            executed: 0,
            echoes: Vec::new(),
            ticks: 0,
            once: 0,
            started: false,
            recovered: None,
        }
    }

    fn arm_tick(&self, out: &mut Outbox<Toy>) {
        if !self.tick.is_zero() {
            out.set_timer(T::Tick, self.tick);
        }
    }
}

impl ReplicaMachine<Toy> for ToyReplica {
    fn handle(&mut self, _now: Time, input: Input<Toy>, out: &mut Outbox<Toy>) {
        match input {
            Input::Start => {
                self.started = true;
                self.arm_tick(out);
            }
            Input::Recover { checkpoint, records } => {
                self.recovered = Some((checkpoint, records));
                self.arm_tick(out);
            }
            Input::Message { from: NodeId::Client(c), msg: M::Req(req) } => {
                if req.req.client != c {
                    return out.reject(c.into(), "request names another client");
                }
                if !req.verify(self.crypto.as_ref()) {
                    return out.reject(c.into(), "bad request signature");
                }
                self.executed += 1;
                out.push(Effect::Persist(req.req.op.clone()));
                if self.executed.is_multiple_of(3) {
                    out.push(Effect::PersistCheckpoint(Bytes::from(self.executed.to_le_bytes().to_vec())));
                }
                out.event(Event::Decided { instance: self.executed, requests: 1 });
                if self.strategy.is_none() {
                    out.broadcast(M::Echo(req.req.seq));
                    out.send(c, M::Reply { seq: req.req.seq, result: req.req.op });
                }
            }
            Input::Message { from, msg: M::Echo(k) } => self.echoes.push((from, k)),
            Input::Message { msg: M::Ping(k), .. } => out.broadcast(M::Ping(k + 1)),
            Input::Message { msg: M::Arm, .. } => out.set_timer(T::Once, Duration::from_millis(50)),
            Input::Message { msg: M::Disarm, .. } => out.cancel_timer(T::Once),
            Input::Message { msg: M::Fan, .. } => {
                out.multicast([0, self.id.0, 2, 9].map(ReplicaId).to_vec(), M::Echo(7));
                out.send(ReplicaId(9), M::Echo(8));
            }
            Input::Message { from, .. } => out.reject(from, "unexpected message"),
            Input::Timer(T::Tick) => {
                self.ticks += 1;
                self.arm_tick(out);
            }
            Input::Timer(T::Once) => self.once += 1,
        }
    }
    fn state_digest(&self) -> Digest {
        Digest::of(&self.executed.to_le_bytes())
    }
    fn executed(&self) -> u64 {
        self.executed
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

fn builder() -> Builder<Toy> {
    TestNet::<Toy>::builder(1).requests(M::Req).replies(|m| match m {
        M::Reply { seq, result } => Some((*seq, result.clone())),
        _ => None,
    })
}

fn toy(net: &TestNet<Toy>, i: u32) -> &ToyReplica {
    net.machine::<ToyReplica>(ReplicaId(i))
}

const C1: ClientId = ClientId(1);

fn op(i: u64) -> Bytes {
    Bytes::from(format!("op{i}"))
}

fn echoes(net: &TestNet<Toy>, i: u32) -> usize {
    toy(net, i).echoes.len()
}

#[test]
fn submitted_requests_are_executed_echoed_and_replied() {
    // 4 requests and 12 echoes: exactly the storm limit.
    let mut net = builder().storm(16).build();
    assert!((0..4).all(|i| toy(&net, i).started), "every replica was started");
    let req = net.request(C1, 1, op(1));
    net.submit_all(req);
    let replies = net.replies(C1, 1);
    assert_eq!(replies.len(), 4);
    assert!(replies.iter().all(|(_, r)| *r == op(1)));
    assert!(net.replies(C1, 2).is_empty());
    assert_eq!(net.to_client(C1).count(), 4);
    assert!((0..4).all(|i| net.decided(ReplicaId(i)) == 1 && echoes(&net, i) == 3));
    assert_eq!((net.sent("ECHO"), net.sent("REPLY")), (12, 4));
    assert_eq!(net.log().len(), 16);
    let d: Vec<_> = net.replicas().map(|r| (r.executed(), r.state_digest())).collect();
    assert!(d.len() == 4 && d.iter().all(|x| *x == d[0]));
}

#[test]
fn rejections_are_counted_by_reason_and_replica() {
    let mut net = builder().build();
    let mut req = net.request(C1, 1, op(1));
    req.sig = Signature(vec![0; 64]);
    net.submit_all(req.clone());
    assert!(net.replies(C1, 1).is_empty());
    assert_eq!(net.rejected("bad request signature"), 4);
    assert_eq!(net.rejections(ReplicaId(2), "bad request signature"), 1);
    let req = net.request(C1, 2, op(2));
    net.message(ReplicaId(1), ClientId(2), M::Req(req));
    assert_eq!(net.rejected("request names another client"), 1);
    assert_eq!(net.rejections(ReplicaId(0), "request names another client"), 0);
}

#[test]
#[should_panic(expected = "message storm: more than 1000 deliveries")]
fn a_message_storm_panics() {
    let mut net = builder().storm(1000).build();
    net.message(ReplicaId(0), ReplicaId(1), M::Ping(0));
    net.deliver_all();
}

#[test]
fn delivering_to_a_crashed_replica_does_nothing_and_a_restart_recovers_its_records() {
    let mut net = builder().build();
    for seq in 1..=4 {
        let req = net.request(C1, seq, op(seq));
        net.submit_all(req);
    }
    // A checkpoint record after the third, then the fourth request.
    let checkpoint = Bytes::from(3u64.to_le_bytes().to_vec());
    assert_eq!(net.durable(ReplicaId(2)), (Some(&checkpoint), &[op(4)][..]));
    net.crash(ReplicaId(2));
    assert!(net.replica(ReplicaId(2)).is_none() && net.executed(ReplicaId(2)).is_none());
    assert_eq!(net.replicas().count(), 3);
    let events = net.events().len();
    net.enqueue(ReplicaId(0), ReplicaId(2), M::Echo(9));
    net.input(ReplicaId(2), Input::Start);
    net.deliver_all();
    assert_eq!(net.dropped_for(Dropped::Crashed), 1);
    assert_eq!(net.events().len(), events, "nothing happened at the crashed replica");
    let req = net.request(C1, 5, op(5));
    net.submit_all(req);
    assert_eq!(net.replies(C1, 5).len(), 3);
    // The request and the three echoes.
    assert_eq!(net.dropped_for(Dropped::Crashed), 5);
    // Its durable records survive the crash and come back with the restart.
    net.restart(ReplicaId(2));
    let r2 = toy(&net, 2);
    assert_eq!(r2.recovered, Some((Some(checkpoint), vec![op(4)])));
    assert!(!r2.started && r2.executed == 0, "a fresh machine");
}

#[test]
#[should_panic(expected = "not crashed")]
fn restarting_a_running_replica_panics() {
    builder().build().restart(ReplicaId(1));
}

#[test]
fn a_drop_rule_drops_what_it_picks_and_only_that() {
    let mut net = builder().build();
    net.drop_when(|e| e.to == ReplicaId(1) && matches!(e.msg, M::Echo(_)));
    let req = net.request(C1, 1, op(1));
    net.submit_all(req);
    assert_eq!((echoes(&net, 1), echoes(&net, 0)), (0, 3));
    assert_eq!(net.replies(C1, 1).len(), 4, "the requests passed");
    assert_eq!(net.dropped_for(Dropped::Rule), 3);
    assert!(net.dropped().iter().all(|(_, e)| e.to == ReplicaId(1)));
    net.clear_drop_rule();
    let req = net.request(C1, 2, op(2));
    net.submit_all(req);
    assert_eq!(echoes(&net, 1), 3);
}

#[test]
fn messages_are_delivered_one_at_a_time_in_the_order_chosen() {
    let mut net = builder().build();
    let req = net.request(C1, 1, op(1));
    net.message(ReplicaId(0), C1, M::Req(req));
    assert_eq!(net.queued().iter().map(|e| e.to.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(net.deliver_where(|e| e.to == ReplicaId(3)));
    assert!(!net.deliver_where(|e| e.to == ReplicaId(0)));
    assert_eq!(toy(&net, 3).echoes, [(ReplicaId(0).into(), 1)]);
    assert!(net.deliver_one());
    assert_eq!((echoes(&net, 1), echoes(&net, 2)), (1, 0));
    assert_eq!(net.discard(|_| true), 1);
    assert!(!net.deliver_one());
    assert_eq!(echoes(&net, 2), 0);
}

#[test]
fn multicasts_skip_the_sender_and_sends_to_no_replica_are_dropped() {
    let mut net = builder().build();
    net.message(ReplicaId(1), C1, M::Fan);
    net.deliver_all();
    assert_eq!((echoes(&net, 0), echoes(&net, 1), echoes(&net, 2), echoes(&net, 3)), (1, 0, 1, 0));
    assert_eq!(net.dropped_for(Dropped::NoSuchReplica), 1);
    assert_eq!(net.sent("ECHO"), 3);
}

#[test]
fn due_timers_fire_in_order_and_cancelled_ones_do_not() {
    let mut net = builder().config(Cfg { tick_ms: 100 }).build();
    let start = net.now();
    assert_eq!(net.timers(ReplicaId(0)), [(T::Tick, start + Duration::from_millis(100))]);
    net.run_for(Duration::from_millis(250));
    assert_eq!(net.now(), start + Duration::from_millis(250));
    assert!((0..4).all(|i| toy(&net, i).ticks == 2));
    // ARM sets a timer 50 ms ahead; DISARM cancels it.
    for (to, msg) in [(0, M::Arm), (1, M::Arm), (1, M::Disarm)] {
        net.message(ReplicaId(to), C1, msg);
    }
    assert_eq!(net.timers(ReplicaId(1)), [(T::Tick, start + Duration::from_millis(300))]);
    net.run_for(Duration::from_millis(49));
    assert_eq!(toy(&net, 0).once, 0, "not due yet");
    net.run_for(Duration::from_millis(1));
    assert_eq!((toy(&net, 0).once, toy(&net, 1).once), (1, 0));
    assert_eq!(toy(&net, 0).ticks, 3);
    // A timer injected by hand.
    net.fire(ReplicaId(1), T::Once);
    assert_eq!(toy(&net, 1).once, 1);
    // Moving the clock fires nothing until asked.
    net.advance(Duration::from_millis(200));
    assert_eq!(toy(&net, 0).ticks, 3);
    assert_eq!(net.fire_due(), 4, "one tick each: fired late, at 500 ms, a tick re-arms for 600 ms");
    assert!((0..4).all(|i| toy(&net, i).ticks == 4));
}

#[test]
fn a_crashed_replica_loses_its_timers_and_a_disconnected_ones_wait() {
    let mut net = builder().config(Cfg { tick_ms: 100 }).build();
    net.crash(ReplicaId(0));
    net.disconnect(ReplicaId(1));
    net.run_for(Duration::from_millis(350));
    assert_eq!((toy(&net, 1).ticks, toy(&net, 2).ticks), (0, 3));
    assert!(net.timers(ReplicaId(0)).is_empty());
    net.reconnect(ReplicaId(1));
    net.run_for(Duration::ZERO);
    assert_eq!(toy(&net, 1).ticks, 1, "the overdue tick fires on reconnection");
    net.restart(ReplicaId(0));
    net.run_for(Duration::from_millis(100));
    assert_eq!(toy(&net, 0).ticks, 1, "armed again by the recovery");
}

#[test]
fn a_disconnected_replica_keeps_its_state_and_hears_nothing() {
    let mut net = builder().build();
    let req = net.request(C1, 1, op(1));
    net.submit_all(req);
    net.disconnect(ReplicaId(3));
    // Queued messages from it are lost too.
    net.enqueue(ReplicaId(3), ReplicaId(0), M::Echo(5));
    let req = net.request(C1, 2, op(2));
    net.submit_all(req);
    let req = net.request(C1, 3, op(3));
    net.message(ReplicaId(3), C1, M::Req(req.clone()));
    assert_eq!(net.executed(ReplicaId(3)), Some(1), "state kept, nothing new");
    assert_eq!(net.replies(C1, 2).len(), 3);
    // Its request and echo, and the three echoes to it.
    assert_eq!(net.dropped_for(Dropped::Disconnected), 5);
    net.reconnect(ReplicaId(3));
    net.submit_all(req);
    assert_eq!(net.executed(ReplicaId(3)), Some(2));
}

#[test]
fn a_partition_drops_between_groups_only() {
    let mut net = builder().build();
    net.partition(&[&[0, 1], &[2, 3]]);
    let req = net.request(C1, 1, op(1));
    net.submit(req, [ReplicaId(0)]);
    assert_eq!((echoes(&net, 1), echoes(&net, 2), echoes(&net, 3)), (1, 0, 0));
    assert_eq!(net.replies(C1, 1).len(), 1, "clients reach everybody");
    assert_eq!(net.dropped_for(Dropped::Partition), 2);
    net.heal();
    let req = net.request(C1, 2, op(2));
    net.submit(req, [ReplicaId(2)]);
    assert_eq!((echoes(&net, 0), echoes(&net, 1), echoes(&net, 3)), (1, 2, 1));
}

#[test]
fn the_test_speaks_for_a_byzantine_replica() {
    let mut net = builder().byzantine(ReplicaId(3)).build();
    assert!(net.replica(ReplicaId(3)).is_none());
    let req = net.request(C1, 1, op(1));
    net.submit_all(req);
    assert_eq!(net.replies(C1, 1).len(), 3);
    let captured: Vec<_> = net.captured().iter().map(|e| (e.from, e.msg.kind())).collect();
    let mut expected = vec![(C1.into(), "REQUEST")];
    expected.extend((0..3).map(|i| (ReplicaId(i).into(), "ECHO")));
    assert_eq!(captured, expected);
    // It speaks with its own key.
    net.message(ReplicaId(0), ReplicaId(3), M::Echo(42));
    assert!(toy(&net, 0).echoes.contains(&(ReplicaId(3).into(), 42)));
    let sig = net.key(ReplicaId(3)).sign(b"x");
    assert!(net.key(ReplicaId(0)).verify(ReplicaId(3).into(), b"x", &sig));
}

#[test]
fn strategies_and_key_material_reach_every_machine_built() {
    let mut net = builder().strategy(ReplicaId(1), "silent").keys(|id, _, _| ToyKeys(id.0 + 10), 99).build();
    assert_eq!(toy(&net, 1).strategy.as_deref(), Some("silent"));
    assert_eq!(toy(&net, 2).keys, ToyKeys(12));
    assert_eq!((*net.public_keys(), net.client_context(C1).public_keys), (99, 99));
    let req = net.request(C1, 1, op(1));
    net.submit_all(req);
    assert_eq!(net.replies(C1, 1).len(), 3);
    net.crash(ReplicaId(1));
    net.restart(ReplicaId(1));
    assert_eq!((toy(&net, 1).strategy.as_deref(), &toy(&net, 1).keys), (Some("silent"), &ToyKeys(11)));
    // By default the simulator's model of the keys.
    let net = builder().build();
    assert_eq!((&toy(&net, 3).keys, *net.public_keys()), (&ToyKeys(3), 4));
}

#[test]
#[should_panic(expected = "unknown strategy 'loud'")]
fn an_unknown_strategy_panics() {
    builder().strategy(ReplicaId(0), "loud").build();
}

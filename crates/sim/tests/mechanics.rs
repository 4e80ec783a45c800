//! Engine mechanics with a probe protocol that logs what its machines see:
//! timer generations (cancel, re-arm), the one-core CPU queue, crash and
//! recovery with durable records.

use bytes::Bytes;
use quorate_core::machine::{ClientContext, Message, ReplicaContext};
use quorate_core::quorum::{ConfigError, Intersection, QuorumSystem};
use quorate_core::{
    ClientMachine, Digest, Effect, FaultModel, Input, Outbox, Protocol, ReplicaId, ReplicaMachine, Time,
};
use quorate_sim::cpu::CostModel;
use quorate_sim::{Fault, Scenario, Simulation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping(u32);

impl Message for Ping {
    fn request_mut(&mut self) -> Option<&mut quorate_core::request::SignedRequest> {
        None
    }
    fn kind(&self) -> &'static str {
        "PING"
    }
}

type Log = Arc<Mutex<Vec<(u32, u64, String)>>>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ProbeConfig {
    #[serde(skip)]
    log: Log,
}

struct Probe;

impl Protocol for Probe {
    const NAME: &'static str = "probe";
    type Keys = ();
    type Message = Ping;
    type Timer = char;
    type Config = ProbeConfig;

    fn replicas_for(f: usize, _: FaultModel) -> usize {
        f + 1
    }
    // The probe never recovers from anything: its runs state their bound.
    fn liveness_bound(_: &ProbeConfig, _: usize) -> Duration {
        Duration::from_secs(1)
    }
    // The probe counts no votes, so it has no quorums to check.
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        Ok(QuorumSystem::new(n, f, model, Intersection::Crash))
    }
    fn replica(ctx: ReplicaContext, config: &ProbeConfig) -> Box<dyn ReplicaMachine<Self>> {
        Box::new(ProbeReplica { id: ctx.id, log: config.log.clone() })
    }
    fn client(_: ClientContext, _: &ProbeConfig) -> Box<dyn ClientMachine<Self>> {
        Box::new(NoClient)
    }
}

struct ProbeReplica {
    id: ReplicaId,
    log: Log,
}

impl ProbeReplica {
    fn note(&self, now: Time, what: String) {
        self.log.lock().unwrap().push((self.id.0, now.0, what));
    }
}

impl ReplicaMachine<Probe> for ProbeReplica {
    fn handle(&mut self, now: Time, input: Input<Probe>, out: &mut Outbox<Probe>) {
        match input {
            Input::Start if self.id.0 == 0 => {
                out.set_timer('a', Duration::from_millis(10));
                out.set_timer('b', Duration::from_millis(20));
                out.cancel_timer('a');
                out.set_timer('c', Duration::from_millis(10));
                out.set_timer('c', Duration::from_millis(30));
                out.push(Effect::Persist(Bytes::from_static(b"one")));
                out.push(Effect::PersistCheckpoint(Bytes::from_static(b"cp")));
                out.push(Effect::Persist(Bytes::from_static(b"two")));
                for i in 0..3 {
                    out.send(ReplicaId(1), Ping(i));
                }
            }
            Input::Start => {}
            Input::Recover { checkpoint, records } => self.note(now, format!("recover {checkpoint:?} {records:?}")),
            Input::Message { msg, .. } => self.note(now, format!("ping {}", msg.0)),
            Input::Timer(t) => self.note(now, format!("timer {t}")),
        }
    }
    fn state_digest(&self) -> Digest {
        Digest::default()
    }
    fn executed(&self) -> u64 {
        0
    }
}

struct NoClient;

impl ClientMachine<Probe> for NoClient {
    fn invoke(&mut self, _: Time, _: Bytes, _: bool, _: &mut Outbox<Probe>) {}
    fn handle(&mut self, _: Time, _: Input<Probe>, _: &mut Outbox<Probe>) {}
}

const MS: u64 = 1_000_000;

fn scenario(log: &Log) -> Scenario<Probe> {
    let mut sc = Scenario::<Probe>::new(1).with_clients(0).with_duration(Duration::from_millis(100));
    sc.config = ProbeConfig { log: log.clone() };
    sc.net.jitter = 0.0;
    sc.net.bandwidth_bps = None;
    sc.cost_model = Arc::new(CostModel { message_base_ns: MS, ..CostModel::zero() });
    sc
}

#[test]
fn timers_cpu_queue_and_recovery() {
    let log: Log = Arc::default();
    let r = Simulation::new(scenario(&log)).unwrap().run();
    assert_eq!(r.safety_violations, 0);
    let got = log.lock().unwrap().clone();
    let lan = 100_000;
    assert_eq!(
        got,
        vec![
            // Three pings arrive together; one core handles them 1 ms apart.
            (1, lan, "ping 0".to_string()),
            (1, lan + MS, "ping 1".to_string()),
            (1, lan + 2 * MS, "ping 2".to_string()),
            // 'a' was cancelled; 'c' was re-armed and fires once, at its new time.
            (0, 20 * MS, "timer b".to_string()),
            (0, 30 * MS, "timer c".to_string()),
        ]
    );
    assert_eq!(r.messages_by_kind["PING"].count, 3);

    // Crash at 15 ms: no more timers. Recover at 40 ms with the durable
    // records: the checkpoint replaced "one".
    let log: Log = Arc::default();
    let mut sc = scenario(&log);
    sc.faults.push(Fault::Crash { replica: 0, at: Duration::from_millis(15) });
    sc.faults.push(Fault::Recover { replica: 0, at: Duration::from_millis(40) });
    let r = Simulation::new(sc).unwrap().run();
    let got: Vec<_> = log.lock().unwrap().iter().filter(|e| e.0 == 0).cloned().collect();
    assert_eq!(got, vec![(0, 40 * MS, r#"recover Some(b"cp") [b"two"]"#.to_string())]);
    assert_eq!(r.faults.len(), 2);
}

#[test]
fn messages_to_a_crashed_node_are_dropped() {
    let log: Log = Arc::default();
    let mut sc = scenario(&log);
    // Replica 1 is down when the pings arrive (they are sent at 0, arrive at 0.1 ms).
    sc.faults.push(Fault::Crash { replica: 1, at: Duration::from_nanos(50_000) });
    let r = Simulation::new(sc).unwrap().run();
    assert!(log.lock().unwrap().iter().all(|e| e.0 != 1));
    assert_eq!(r.dropped.crashed, 3);
}

//! Machine-level tests: feed inputs, assert effects; over the shared
//! in-memory test network (`quorate_sim::testnet`), which delivers every
//! message instantly, for end-to-end checks without the simulator.

use crate::messages::*;
use crate::{Config, ModSmart};
use quorate_apps::kv::{KvOp, KvReply};
use quorate_core::crypto::{Crypto, Signature};
use quorate_core::ids::{ClientId, NodeId, ReplicaId};
use quorate_core::machine::*;
use quorate_core::membership::FaultModel;
use quorate_core::Bytes;
use quorate_sim::testnet::TestNet;
use std::time::Duration;

type Net = TestNet<ModSmart>;

/// `f` faults in `model`, the replicas `ModSmart::replicas_for` needs, started.
fn net(model: FaultModel, f: usize, cfg: Config) -> Net {
    TestNet::builder(f)
        .model(model)
        .config(cfg)
        .requests(Msg::Request)
        .replies(|m| match m {
            Msg::Reply(rep) => Some((rep.seq, rep.result.clone())),
            _ => None,
        })
        .build()
}

/// One request tick (`request_timeout / 4`) of every replica, and what follows.
fn tick(net: &mut Net) {
    let d = net.config().request_timeout / 4;
    net.run_for(d);
}

const C1: ClientId = ClientId(1);
const C2: ClientId = ClientId(2);

fn r(i: u32) -> ReplicaId {
    ReplicaId(i)
}

fn put(k: &str, v: &str) -> Bytes {
    KvOp::Put { key: Bytes::copy_from_slice(k.as_bytes()), value: Bytes::copy_from_slice(v.as_bytes()) }.encode()
}

#[test]
fn fault_free_bft_orders_and_replies() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    for seq in 1..=5 {
        let req = net.request(C1, seq, put("a", &format!("v{seq}")));
        net.submit_all(req);
        let reps = net.replies(C1, seq);
        assert_eq!(reps.len(), 4, "every replica replies to seq {seq}");
        assert!(reps.iter().all(|(_, r)| *r == reps[0].1));
    }
    let last = KvReply::decode(&net.replies(C1, 5)[0].1).unwrap();
    assert_eq!(last, KvReply::Value(Some(Bytes::from_static(b"v4"))));
    let d: Vec<_> = net.replicas().map(|r| r.state_digest()).collect();
    assert!(d.iter().all(|x| *x == d[0]));
}

#[test]
fn fault_free_cft() {
    let mut net = net(FaultModel::Crash, 1, Config::default());
    let req = net.request(C1, 1, put("a", "x"));
    net.submit_all(req);
    assert_eq!(net.replies(C1, 1).len(), 3);
}

#[test]
fn silent_leader_causes_regency_change() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    net.crash(r(0));
    let req = net.request(C1, 1, put("a", "x"));
    net.submit_all(req);
    assert!(net.replies(C1, 1).is_empty());
    // First expiry forwards, second starts the regency change.
    for _ in 0..12 {
        net.run_for(Duration::from_millis(600));
    }
    assert_eq!(net.replies(C1, 1).len(), 3, "decided in regency 1 by the three others");
    assert!(net.events().iter().any(|(_, e)| matches!(e, Event::ViewChanged { view: 1, .. })));
    // And the next request goes through the new leader.
    let req = net.request(C1, 2, put("a", "y"));
    net.submit_all(req);
    assert_eq!(net.replies(C1, 2).len(), 3);
    // A message of the old regency is refused.
    let value = quorate_core::crypto::Digest([3; 32]);
    net.input(
        ReplicaId(2),
        Input::Message { from: ReplicaId(3).into(), msg: Msg::Write { regency: 0, instance: 2, value } },
    );
    assert_eq!(net.rejected("stale regency"), 1);
    // So is a STOPDATA sent to a replica that does not lead that regency.
    let data = StopData { regency: 1, replica: ReplicaId(3), last_decided: None, state: InstanceState::default() };
    let sig = net.key(r(3)).sign(&data.signing_bytes());
    net.input(
        ReplicaId(2),
        Input::Message { from: ReplicaId(3).into(), msg: Msg::StopData(SignedStopData { data, sig }) },
    );
    assert_eq!(net.rejected("stale or misdirected STOPDATA"), 1);
}

#[test]
fn bad_request_signature_is_rejected() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    let mut req = net.request(C1, 1, put("a", "x"));
    req.sig = Signature(vec![0; 64]);
    net.submit_all(req);
    assert!(net.replies(C1, 1).is_empty());
    assert_eq!(net.rejected("bad request signature"), 4);
}

#[test]
fn request_from_another_client_is_rejected() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    let req = net.request(C1, 1, put("a", "x"));
    net.input(ReplicaId(1), Input::Message { from: NodeId::Client(ClientId(2)), msg: Msg::Request(req) });
    assert_eq!(net.rejected("request names another client"), 1);
}

#[test]
fn propose_validation() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    let req = net.request(C1, 1, put("a", "x"));
    let leader = NodeId::Replica(ReplicaId(0));
    let batch = Batch { timestamp: 5, requests: vec![req.clone()] };
    // Not from the leader.
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Propose { regency: 0, instance: 0, batch: batch.clone() },
        },
    );
    assert_eq!(net.rejected("PROPOSE from a non-leader"), 1);
    // Wrong (stale) regency does not count; future instance is buffered, not acted on.
    net.input(
        ReplicaId(2),
        Input::Message { from: leader, msg: Msg::Propose { regency: 0, instance: 3, batch: batch.clone() } },
    );
    assert!(net.queued().iter().all(|e| !matches!(e.msg, Msg::Write { .. })));
    // Empty batch.
    net.input(
        ReplicaId(2),
        Input::Message {
            from: leader,
            msg: Msg::Propose { regency: 0, instance: 0, batch: Batch { timestamp: 5, requests: vec![] } },
        },
    );
    assert_eq!(net.rejected("empty batch"), 1);
    // Forged request inside the batch.
    let mut forged = req.clone();
    forged.req.op = put("a", "evil");
    net.input(
        ReplicaId(2),
        Input::Message {
            from: leader,
            msg: Msg::Propose { regency: 0, instance: 0, batch: Batch { timestamp: 5, requests: vec![forged] } },
        },
    );
    assert_eq!(net.rejected("bad request signature"), 1);
    // Unfair: the same client twice.
    let req2 = net.request(C1, 2, put("b", "y"));
    net.input(
        ReplicaId(2),
        Input::Message {
            from: leader,
            msg: Msg::Propose {
                regency: 0,
                instance: 0,
                batch: Batch { timestamp: 5, requests: vec![req.clone(), req2] },
            },
        },
    );
    assert_eq!(net.rejected("unfair batch"), 1);
    // A valid one is written; a second one for the same instance is a duplicate.
    net.input(ReplicaId(2), Input::Message { from: leader, msg: Msg::Propose { regency: 0, instance: 0, batch } });
    assert!(net.queued().iter().any(|e| matches!(e.msg, Msg::Write { .. })));
    let other = Batch { timestamp: 6, requests: vec![req] };
    net.input(
        ReplicaId(2),
        Input::Message { from: leader, msg: Msg::Propose { regency: 0, instance: 0, batch: other } },
    );
    assert_eq!(net.rejected("conflicting PROPOSE"), 1);
}

#[test]
fn accept_validation() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    let v = quorate_core::crypto::Digest([1; 32]);
    // Bad signature.
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Accept { regency: 0, instance: 0, value: v, sig: Signature(vec![0; 64]) },
        },
    );
    assert_eq!(net.rejected("bad ACCEPT signature"), 1);
    // Signed by the sender: counted once; the duplicate is rejected.
    let sig = net.key(r(1)).sign(&accept_bytes(0, 1, &v));
    for _ in 0..2 {
        net.input(
            ReplicaId(2),
            Input::Message {
                from: ReplicaId(1).into(),
                msg: Msg::Accept { regency: 0, instance: 0, value: v, sig: sig.clone() },
            },
        );
    }
    assert_eq!(net.rejected("conflicting ACCEPT"), 0, "an exact repeat is ignored silently");
    let sig_other = net.key(r(1)).sign(&accept_bytes(0, 1, &quorate_core::crypto::Digest([2; 32])));
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Accept { regency: 0, instance: 0, value: quorate_core::crypto::Digest([2; 32]), sig: sig_other },
        },
    );
    assert_eq!(net.rejected("conflicting ACCEPT"), 1);
    // Signed by another replica than the sender: rejected.
    let sig3 = net.key(r(3)).sign(&accept_bytes(0, 1, &v));
    net.input(
        ReplicaId(2),
        Input::Message { from: ReplicaId(0).into(), msg: Msg::Accept { regency: 0, instance: 0, value: v, sig: sig3 } },
    );
    assert_eq!(net.rejected("bad ACCEPT signature"), 2);
}

#[test]
fn stopdata_and_sync_validation() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    // STOPDATA to a replica that is not the leader of that regency (regency 1's leader is 1).
    let data = StopData { regency: 1, replica: ReplicaId(2), last_decided: None, state: InstanceState::default() };
    let sig = net.key(r(2)).sign(&data.signing_bytes());
    let sd = SignedStopData { data: data.clone(), sig };
    // Sender mismatch.
    net.input(ReplicaId(1), Input::Message { from: ReplicaId(3).into(), msg: Msg::StopData(sd.clone()) });
    assert_eq!(net.rejected("STOPDATA names another sender"), 1);
    // SYNC from a non-leader of the regency.
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(3).into(),
            msg: Msg::Sync { regency: 1, stopdata: vec![sd.clone()], proposal: None },
        },
    );
    assert_eq!(net.rejected("SYNC from a non-leader"), 1);
    // SYNC with too few STOPDATA.
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Sync { regency: 1, stopdata: vec![sd.clone()], proposal: None },
        },
    );
    assert_eq!(net.rejected("SYNC with too few STOPDATA"), 1);
    // SYNC with a forged STOPDATA signature.
    let mut bad = sd.clone();
    bad.sig = Signature(vec![1; 64]);
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Sync { regency: 1, stopdata: vec![bad], proposal: None },
        },
    );
    assert_eq!(net.rejected("bad STOPDATA signature"), 1);
    // SYNC with the same STOPDATA twice.
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Sync { regency: 1, stopdata: vec![sd.clone(), sd.clone(), sd], proposal: None },
        },
    );
    assert_eq!(net.rejected("duplicate STOPDATA in SYNC"), 1);
    // A bogus decision proof.
    let mut d2 = data;
    d2.replica = ReplicaId(3);
    d2.last_decided = Some(Decision {
        instance: 0,
        epoch: 1,
        batch: Batch { timestamp: 0, requests: vec![net.request(C1, 1, put("a", "b"))] },
        proof: vec![
            (ReplicaId(0), Signature(vec![0; 64])),
            (ReplicaId(1), Signature(vec![0; 64])),
            (ReplicaId(3), Signature(vec![0; 64])),
        ],
    });
    d2.state.instance = 1;
    let sig = net.key(r(3)).sign(&d2.signing_bytes());
    net.input(
        ReplicaId(2),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Sync { regency: 1, stopdata: vec![SignedStopData { data: d2, sig }], proposal: None },
        },
    );
    assert_eq!(net.rejected("bad decision proof in STOPDATA"), 1);
}

#[test]
fn retransmitted_request_gets_cached_reply_and_replays_are_not_reexecuted() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    let req = net.request(C1, 1, put("a", "x"));
    net.submit_all(req.clone());
    let slots: Vec<u64> = net.replicas().map(|r| r.executed()).collect();
    net.submit_all(req);
    assert_eq!(net.replies(C1, 1).len(), 8, "the cached reply is sent again");
    let slots2: Vec<u64> = net.replicas().map(|r| r.executed()).collect();
    assert_eq!(slots, slots2, "nothing executed twice");
}

#[test]
fn lagging_replica_catches_up_by_state_transfer() {
    let cfg = Config { checkpoint_period: 4, ..Config::default() };
    let mut net = net(FaultModel::Byzantine, 1, cfg);
    net.disconnect(r(3));
    for seq in 1..=10 {
        let req = net.request(C1, seq, put("k", &format!("{seq}")));
        net.submit_all(req);
    }
    assert_eq!(net.executed(r(3)), Some(0));
    net.reconnect(r(3));
    // It hears of a later instance, asks for the decision, learns it was truncated, transfers state.
    let req = net.request(C2, 1, put("z", "1"));
    net.submit_all(req);
    tick(&mut net);
    let d: Vec<_> = net.replicas().map(|r| (r.executed(), r.state_digest())).collect();
    assert!(d.iter().all(|x| *x == d[0]), "{d:?}");
    assert!(net.events().iter().any(|(r, e)| r.0 == 3 && matches!(e, Event::StateInstalled { .. })));
}

#[test]
fn decision_forwarded_stop_and_state_reply_validation() {
    let mut net = net(FaultModel::Byzantine, 1, Config::default());
    let req = net.request(C1, 1, put("a", "x"));
    // A decision whose proof does not match its batch.
    let batch = Batch { timestamp: 1, requests: vec![req.clone()] };
    let v = batch.digest(net.key(r(0)));
    let proof: Vec<_> = (0..3).map(|i| (ReplicaId(i), net.key(r(i)).sign(&accept_bytes(0, 1, &v)))).collect();
    let mut tampered = Decision { instance: 0, epoch: 1, batch: batch.clone(), proof: proof.clone() };
    tampered.batch.timestamp = 2;
    net.input(ReplicaId(3), Input::Message { from: ReplicaId(1).into(), msg: Msg::Decision(tampered) });
    assert_eq!(net.rejected("bad decision proof"), 1);
    // Too few signers.
    let short = Decision { instance: 0, epoch: 1, batch: batch.clone(), proof: proof[..2].to_vec() };
    net.input(ReplicaId(3), Input::Message { from: ReplicaId(1).into(), msg: Msg::Decision(short) });
    assert_eq!(net.rejected("bad decision proof"), 2);
    // The same signer twice.
    let twice = Decision {
        instance: 0,
        epoch: 1,
        batch: batch.clone(),
        proof: vec![proof[0].clone(), proof[0].clone(), proof[1].clone()],
    };
    net.input(ReplicaId(3), Input::Message { from: ReplicaId(1).into(), msg: Msg::Decision(twice) });
    assert_eq!(net.rejected("bad decision proof"), 3);
    // A valid one, from anybody, is executed.
    let good = Decision { instance: 0, epoch: 1, batch, proof };
    net.input(ReplicaId(3), Input::Message { from: ReplicaId(2).into(), msg: Msg::Decision(good) });
    assert_eq!(net.executed(r(3)), Some(1));
    // FORWARDED with a forged request.
    let mut forged = net.request(C2, 1, put("b", "y"));
    forged.req.op = put("b", "evil");
    net.input(
        ReplicaId(3),
        Input::Message { from: ReplicaId(1).into(), msg: Msg::Forwarded { requests: vec![forged] } },
    );
    assert_eq!(net.rejected("bad request signature"), 1);
    // An oversized STOP.
    let many = vec![req; 1000];
    net.input(
        ReplicaId(3),
        Input::Message { from: ReplicaId(1).into(), msg: Msg::Stop { regency: 1, requests: many } },
    );
    assert_eq!(net.rejected("oversized STOP"), 1);
    // A client may not send replica messages, nor a replica client ones.
    net.input(
        ReplicaId(3),
        Input::Message { from: NodeId::Client(ClientId(1)), msg: Msg::DecisionRequest { instance: 0, regency: 0 } },
    );
    assert_eq!(net.rejected("client sent a replica message"), 1);
    net.input(
        ReplicaId(3),
        Input::Message {
            from: ReplicaId(1).into(),
            msg: Msg::Reply(Reply { seq: 1, read_only: false, result: Bytes::new() }),
        },
    );
    assert_eq!(net.rejected("replica sent a client message"), 1);
    // Not a member.
    net.input(ReplicaId(3), Input::Message { from: ReplicaId(9).into(), msg: Msg::Forwarded { requests: vec![] } });
    assert_eq!(net.rejected("not a member"), 1);
}

#[test]
fn state_reply_with_inconsistent_checkpoint_is_rejected() {
    let cfg = Config { checkpoint_period: 2, ..Config::default() };
    let mut net = net(FaultModel::Byzantine, 1, cfg);
    net.disconnect(r(3));
    for seq in 1..=3 {
        let req = net.request(C1, seq, put("k", "v"));
        net.submit(req, [0, 1, 2].map(r));
    }
    net.reconnect(r(3));
    // Replica 3 starts a state transfer (as if told its log was truncated).
    net.input(
        ReplicaId(3),
        Input::Message { from: ReplicaId(0).into(), msg: Msg::DecisionUnavailable { checkpoint_instance: 1 } },
    );
    let attempt = 0;
    let mut cp = quorate_core::executor::Checkpoint {
        slot: 2,
        state: Bytes::from_static(b"garbage"),
        digest: quorate_core::crypto::Digest([0; 32]),
    };
    cp.digest = quorate_core::executor::Checkpoint::digest_of(3, &cp.state); // Digest of another slot.
    let rep = StateReply {
        attempt,
        checkpoint_instance: Some(1),
        checkpoint_digest: cp.digest,
        checkpoint: Some(cp),
        checkpoint_timestamp: 0,
        log: vec![],
    };
    net.input(ReplicaId(3), Input::Message { from: ReplicaId(1).into(), msg: Msg::StateReply(Box::new(rep)) });
    assert_eq!(net.rejected("inconsistent checkpoint"), 1);
    // The genuine transfer still completes.
    net.deliver_all();
    let d: Vec<_> = net.replicas().map(|r| (r.executed(), r.state_digest())).collect();
    assert_eq!(d[3], d[0]);
}

/// Crash mode: leader 0 proposes and ACCEPTs a batch (durably) for instance 0,
/// then crashes before its PROPOSE and ACCEPT leave, and recovers. The digest
/// of its durable ACCEPT; its PROPOSE and ACCEPT are gone.
fn cft_leader_recovered_with_an_unsent_accept() -> (Net, quorate_core::crypto::Digest) {
    let mut net = net(FaultModel::Crash, 1, Config::default());
    let req = net.request(C1, 1, put("a", "x"));
    net.enqueue(C1, r(0), Msg::Request(req.clone()));
    net.deliver_one();
    let batch = net
        .queued()
        .iter()
        .find_map(|e| match &e.msg {
            Msg::Propose { batch, .. } => Some(batch.clone()),
            _ => None,
        })
        .expect("leader 0 proposed");
    let value = batch.digest(net.key(r(0)));
    assert_eq!(net.discard(|e| e.from == NodeId::Replica(r(0))), 4, "PROPOSE and ACCEPT to 1 and 2");
    net.crash(r(0));
    net.restart(r(0));
    net.deliver_all();
    // The client retransmits to every replica: their request timers run.
    net.submit(req, [r(1), r(2)]);
    (net, value)
}

/// The batch replica `at` decided in instance 0, by digest.
fn decided_value(net: &Net, at: ReplicaId) -> Option<quorate_core::crypto::Digest> {
    let rep = net.machine::<crate::replica::Replica>(at);
    rep.log.get(&0).map(|d| d.batch.digest(net.key(at)))
}

#[test]
fn recovered_cft_leader_hands_the_batch_it_accepted_to_the_next_leader() {
    let (mut net, value) = cft_leader_recovered_with_an_unsent_accept();
    // Recovered leader 0 must not finish by itself here, and leader 1 must build its
    // SYNC on 0's STOPDATA (its own and 0's are the n−f it waits for): the value 0
    // accepted is bound, and only 0 holds its batch.
    net.drop_when(|e| {
        matches!(e.msg, Msg::Propose { .. }) && e.from == NodeId::Replica(r(0))
            || matches!(e.msg, Msg::StopData(_)) && e.from == NodeId::Replica(r(2))
    });
    for _ in 0..40 {
        tick(&mut net);
    }
    assert!(net.events().iter().any(|(_, e)| matches!(e, Event::ViewChanged { view: 1, .. })));
    assert_eq!(net.replies(C1, 1).len(), 3, "decided after the regency change");
    for i in 0..3 {
        assert_eq!(decided_value(&net, r(i)), Some(value), "replica {i} decided the value 0 accepted");
    }
}

#[test]
fn recovered_cft_leader_repeats_the_proposal_it_accepted() {
    let (mut net, value) = cft_leader_recovered_with_an_unsent_accept();
    // Within one request timeout (no regency change yet), the stuck leader repeats its PROPOSE.
    for _ in 0..3 {
        tick(&mut net);
    }
    assert!(!net.events().iter().any(|(_, e)| matches!(e, Event::ViewChanged { .. })));
    assert_eq!(net.replies(C1, 1).len(), 3, "decided in regency 0");
    for i in 0..3 {
        assert_eq!(decided_value(&net, r(i)), Some(value), "replica {i} decided the value 0 accepted");
    }
}

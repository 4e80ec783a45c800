//! Adversary strategies for DQPBFT, for the simulator. Each wraps a correct
//! replica and rewrites what it receives or sends; a faulty replica MACs
//! and signs only with its own keys.

use crate::client::Client;
use crate::config::Config;
use crate::messages::Msg;
use crate::replica::Replica;
use crate::Dqbft;
use quorate_core::machine::{
    ClientContext, ClientMachine, Effect, Input, Outbox, ReplicaContext, ReplicaMachine, UnknownStrategy,
};
use quorate_core::time::Time;
use quorate_pbft::engine::PbftMsg;

type Out = Outbox<Dqbft>;

/// Replica strategies: (name, description).
pub const STRATEGIES: &[(&str, &str)] = &[
    ("silent", "sends nothing at all"),
    (
        "silent-coordinator",
        "never proposes in the D-instances it coordinates (its clients stall until a view change); otherwise correct",
    ),
    ("silent-o-primary", "as O-primary, never orders anything; otherwise correct"),
    ("no-flood", "never floods the D-PrePrepares it accepts; otherwise correct"),
];

/// Client strategies: (name, description).
pub const CLIENT_STRATEGIES: &[(&str, &str)] = &[];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Silent,
    SilentCoordinator,
    SilentOPrimary,
    NoFlood,
}

/// Build a Byzantine replica.
pub fn replica(
    strategy: &str,
    ctx: ReplicaContext,
    cfg: &Config,
) -> Result<Box<dyn ReplicaMachine<Dqbft>>, UnknownStrategy> {
    let kind = match strategy {
        "silent" => Kind::Silent,
        "silent-coordinator" => Kind::SilentCoordinator,
        "silent-o-primary" => Kind::SilentOPrimary,
        "no-flood" => Kind::NoFlood,
        _ => return Err(UnknownStrategy(strategy.to_string())),
    };
    Ok(Box::new(Adversary { inner: Replica::new(ctx, cfg.clone()), kind }))
}

/// Build a Byzantine client.
pub fn client(
    strategy: &str,
    _ctx: ClientContext,
    _cfg: &Config,
) -> Result<Box<dyn ClientMachine<Dqbft>>, UnknownStrategy> {
    let _ = Client::new;
    Err(UnknownStrategy(strategy.to_string()))
}

struct Adversary {
    inner: Replica,
    kind: Kind,
}

impl Adversary {
    /// Whether a message the inner replica sends is dropped.
    fn drops(&self, msg: &Msg) -> bool {
        matches!(
            (self.kind, msg),
            (Kind::Silent, _)
                | (Kind::SilentCoordinator, Msg::D { msg: PbftMsg::PrePrepare { .. }, .. })
                | (Kind::SilentOPrimary, Msg::O(PbftMsg::PrePrepare { .. }))
                | (Kind::NoFlood, Msg::Flood { .. })
        )
    }
}

impl ReplicaMachine<Dqbft> for Adversary {
    fn handle(&mut self, now: Time, input: Input<Dqbft>, out: &mut Out) {
        let mut inner = Outbox::new();
        self.inner.handle(now, input, &mut inner);
        for e in inner.drain() {
            let dropped = match &e {
                Effect::Send { msg, .. } | Effect::Broadcast { msg } | Effect::Multicast { msg, .. } => self.drops(msg),
                _ => false,
            };
            if !dropped {
                out.push(e);
            }
        }
    }

    fn state_digest(&self) -> quorate_core::crypto::Digest {
        self.inner.state_digest()
    }

    fn executed(&self) -> u64 {
        self.inner.executed()
    }
}

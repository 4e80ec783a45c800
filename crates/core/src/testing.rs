//! The core's own test protocol (tests only): messages are bare client
//! requests or pings; the tests drive executors and client wrappers
//! directly, so it builds no machines.

use crate::machine::{ClientContext, ClientMachine, Message, Protocol, ReplicaContext, ReplicaMachine};
use crate::request::SignedRequest;

/// The test protocol.
pub(crate) struct T;

/// Its messages.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum M {
    Req(SignedRequest),
    Ping,
}

impl Message for M {
    fn kind(&self) -> &'static str {
        "M"
    }
    fn request_mut(&mut self) -> Option<&mut SignedRequest> {
        match self {
            M::Req(r) => Some(r),
            M::Ping => None,
        }
    }
}

impl Protocol for T {
    const NAME: &'static str = "t";
    type Keys = ();
    type Message = M;
    type Timer = ();
    type Config = ();
    fn replicas_for(f: usize, _: crate::FaultModel) -> usize {
        3 * f + 1
    }
    fn liveness_bound(_: &(), _: usize) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn replica(_: ReplicaContext, _: &()) -> Box<dyn ReplicaMachine<T>> {
        panic!("the core's test protocol builds no replicas")
    }
    fn client(_: ClientContext, _: &()) -> Box<dyn ClientMachine<T>> {
        panic!("the core's test protocol builds no clients")
    }
}

//! Client requests and the per-client request table (at-most-once execution).

use crate::crypto::{Crypto, Digest, Signature};
use crate::executor::Executor;
use crate::ids::{ClientId, NodeId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One operation a client asks the service to perform.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    /// Who asks.
    pub client: ClientId,
    /// The client's sequence number; with `client` it names the request.
    pub seq: u64,
    /// The operation, opaque to protocols.
    pub op: Bytes,
    /// A read-only operation that may skip ordering.
    pub read_only: bool,
}

impl Request {
    /// The bytes a client signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.op.len() + 32);
        b.extend_from_slice(b"quorate-request");
        b.extend_from_slice(&self.client.0.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.push(self.read_only as u8);
        b.extend_from_slice(&self.op);
        b
    }
    /// Digest of the request (of its signing bytes).
    pub fn digest(&self, crypto: &dyn Crypto) -> Digest {
        crypto.digest(&self.signing_bytes())
    }
}

/// A request with its client's signature (empty where the deployment does
/// not sign requests, e.g. crash-fault mode).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The request.
    pub req: Request,
    /// The client's signature of [`Request::signing_bytes`].
    pub sig: Signature,
}

impl SignedRequest {
    /// Sign `req` with the client's provider.
    pub fn sign(req: Request, crypto: &dyn Crypto) -> Self {
        let sig = crypto.sign(&req.signing_bytes());
        SignedRequest { req, sig }
    }
    /// An unsigned request (crash-fault mode).
    pub fn unsigned(req: Request) -> Self {
        SignedRequest { req, sig: Signature(Vec::new()) }
    }
    /// Whether the signature is the client's.
    pub fn verify(&self, crypto: &dyn Crypto) -> bool {
        crypto.verify(NodeId::Client(self.req.client), &self.req.signing_bytes(), &self.sig)
    }
}

/// What the request table says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Not executed yet.
    New,
    /// The client's last executed request: here is its reply again.
    Repeat(Bytes),
    /// Older than the client's last executed request: ignore.
    Stale,
}

/// Per client: the last executed sequence number and its reply. Part of the
/// replicated state (it is in every checkpoint), so that at-most-once
/// execution survives state transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTable {
    clients: BTreeMap<ClientId, Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    seq: u64,
    op: Digest,
    reply: Bytes,
}

impl RequestTable {
    /// Classify a request.
    pub fn freshness(&self, client: ClientId, seq: u64) -> Freshness {
        match self.clients.get(&client) {
            None => Freshness::New,
            Some(e) if seq > e.seq => Freshness::New,
            Some(e) if seq == e.seq => Freshness::Repeat(e.reply.clone()),
            Some(_) => Freshness::Stale,
        }
    }
    /// The last executed sequence number of `client` (0 if none).
    pub fn last_seq(&self, client: ClientId) -> u64 {
        self.clients.get(&client).map(|e| e.seq).unwrap_or(0)
    }
    /// Digest of the operation of `client`'s last executed request (to tell a
    /// retransmission from a sequence number reused for another operation).
    pub fn last_op(&self, client: ClientId) -> Option<Digest> {
        self.clients.get(&client).map(|e| e.op)
    }
    /// Record the execution of (`client`, `seq`), whose operation has digest `op`, with its reply.
    pub fn record(&mut self, client: ClientId, seq: u64, op: Digest, reply: Bytes) {
        self.clients.insert(client, Entry { seq, op, reply });
    }
    /// Every client's last executed sequence number and its reply.
    pub fn last_replies(&self) -> impl Iterator<Item = (ClientId, u64, &Bytes)> {
        self.clients.iter().map(|(c, e)| (*c, e.seq, &e.reply))
    }
    /// Number of clients known.
    pub fn len(&self) -> usize {
        self.clients.len()
    }
    /// Whether no client is known.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// What makes client requests fit for ordering (not their freshness: a
/// request executed meanwhile is skipped at execution, and replicas that
/// executed different prefixes would otherwise judge one proposal
/// differently). Shared by the protocols that order batches of signed
/// requests (PBFT, DQPBFT, Mod-SMaRt) and by [`crate::admission`].
pub struct RequestCheck<'a> {
    /// The executor (its service validates operations).
    pub exec: &'a Executor,
    /// To check clients' signatures.
    pub crypto: &'a dyn Crypto,
    /// Whether clients sign in this deployment.
    pub check_signatures: bool,
    /// Most requests in one proposal.
    pub max_batch: usize,
}

impl<'a> RequestCheck<'a> {
    /// The check of a replica with this executor and provider; `signs`:
    /// whether clients sign in this deployment.
    pub fn new(exec: &'a Executor, crypto: &'a dyn Crypto, signs: bool, max_batch: usize) -> Self {
        RequestCheck { exec, crypto, check_signatures: signs, max_batch }
    }

    /// One request: ordered (not read-only), well-formed for the service,
    /// signed by its client.
    pub fn request(&self, r: &SignedRequest) -> Result<(), &'static str> {
        if r.req.read_only {
            return Err("read-only request (every request is ordered)");
        }
        if !self.exec.service().validate(&r.req.op) {
            return Err("invalid request");
        }
        if self.check_signatures && !r.verify(self.crypto) {
            return Err("bad request signature");
        }
        Ok(())
    }

    /// A proposal's requests: not too many, one per client, each valid.
    pub fn batch(&self, requests: &[SignedRequest]) -> Result<(), &'static str> {
        if requests.len() > self.max_batch {
            return Err("batch too large");
        }
        let mut clients = HashSet::with_capacity(requests.len());
        for r in requests {
            if !clients.insert(r.req.client) {
                return Err("two requests of one client in a batch");
            }
            self.request(r)?;
        }
        Ok(())
    }
}

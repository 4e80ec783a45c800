//! The two flavors of the paradigm: [`Pbft`] (DQPBFT, §3) and [`Hybster`]
//! (Destiny, §4).

use crate::config::Config;
use crate::messages::{DBatch, OBatch};
use crate::replica::Replica;
use crate::Flavor;
use quorate_core::crypto::{Digest, Mac};
use quorate_core::ids::{NodeId, ReplicaId};
use quorate_core::keys::{self, KeyError, KeyFiles, KeyMaterial};
use quorate_core::machine::{ClientContext, ReplicaContext};
use quorate_core::membership::FaultModel;
use quorate_core::quorum::{ConfigError, QuorumSystem};
use quorate_engines::hybster::{self as hyb, HybMsg, Trusted};
use quorate_engines::instance::{InstanceMsg, Value};
use quorate_engines::pbft::collusion::Collusion;
use quorate_engines::pbft::messages::bytes;
use quorate_engines::pbft::{self as pbft, Auth, PbftMsg};
use quorate_threshsign::{
    destiny, BlsScheme, GroupSpec, ModelledScheme, PlainSign, Provision, ProvisionError, Scheme, Share,
};
use rand::{CryptoRng, RngCore};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// DQPBFT: PBFT (MAC authenticators) in every instance, 3f+1 replicas, MAC'd
/// replies of which the client takes f+1 matching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pbft;

impl Flavor for Pbft {
    const NAME: &'static str = "dqbft";
    type Material = ();
    type D = pbft::Engine<DBatch>;
    type O = pbft::Engine<OBatch>;
    type Keys = ();

    fn replicas_for(f: usize) -> usize {
        3 * f + 1
    }

    /// PBFT's: n >= 3f+1.
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        pbft::quorum_system(Self::NAME, n, f, model)
    }

    fn keys(_ctx: &ReplicaContext) {}

    fn d_engine(ctx: &ReplicaContext, _keys: &(), cfg: &Config, i: u32) -> Self::D {
        pbft::Engine::new(ctx.id, ctx.membership.clone(), ctx.crypto.clone(), cfg.d_engine(i))
    }

    fn o_engine(ctx: &ReplicaContext, _keys: &(), cfg: &Config) -> Self::O {
        pbft::Engine::new(ctx.id, ctx.membership.clone(), ctx.crypto.clone(), cfg.o_engine())
    }

    fn answers(_keys: &()) -> Option<(&dyn PlainSign, &Arc<dyn Scheme>)> {
        None
    }

    fn client_scheme(_ctx: &ClientContext) -> Option<Arc<dyn Scheme>> {
        None
    }

    fn forge_d(
        r: &Replica<Self>,
        i: u32,
        original: &PbftMsg<DBatch>,
        to: ReplicaId,
        value: DBatch,
    ) -> Option<PbftMsg<DBatch>> {
        let (view, seq, _) = original.proposal()?;
        let auth = pre_prepare_auth(r, u64::from(i), to, view, seq, &value.digest(r.crypto()));
        Some(PbftMsg::PrePrepare { view, seq, value, auth })
    }

    fn forge_o(r: &Replica<Self>, original: &PbftMsg<OBatch>, to: ReplicaId, value: OBatch) -> Option<PbftMsg<OBatch>> {
        let (view, seq, _) = original.proposal()?;
        let auth = pre_prepare_auth(r, r.config().o_engine().instance, to, view, seq, &value.digest(r.crypto()));
        Some(PbftMsg::PrePrepare { view, seq, value, auth })
    }

    /// Two colluders, the O-primary among them, tell odd correct replicas
    /// that the O-batch with its references reversed was proposed and
    /// voted for (PBFT's collude-split on the O-instance).
    fn collude_o(r: &Replica<Self>, c: &mut Collusion<OBatch>, to: ReplicaId, msg: PbftMsg<OBatch>) -> PbftMsg<OBatch> {
        c.story(r.config().o_engine().instance, to, msg, r.crypto())
    }

    fn spoil_d(msg: &mut PbftMsg<DBatch>) -> bool {
        spoil_pbft(msg)
    }

    fn spoil_o(msg: &mut PbftMsg<OBatch>) -> bool {
        spoil_pbft(msg)
    }
}

/// A PRE-PREPARE's MAC for one receiver, with the adversary's own keys.
fn pre_prepare_auth<F: Flavor>(r: &Replica<F>, instance: u64, to: ReplicaId, view: u64, seq: u64, d: &Digest) -> Auth {
    Auth(vec![r.crypto().mac(NodeId::Replica(to), &bytes::pre_prepare(instance, view, seq, d))])
}

fn spoil_pbft<V>(msg: &mut PbftMsg<V>) -> bool {
    match msg {
        PbftMsg::Prepare { auth, .. } | PbftMsg::Commit { auth, .. } | PbftMsg::Checkpoint { auth, .. } => {
            for m in auth.0.iter_mut() {
                *m = Mac([m.0[0] ^ 1; 32]);
            }
            true
        }
        _ => false,
    }
}

/// Destiny: Linear Hybster in every instance over each replica's ThreshSign
/// subsystem (σ_i for D-instance i, τ for the O-instance), 2f+1 replicas;
/// answers signed with π, f+1 shares combined by the execution collector
/// into one proof for the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hybster;

/// A Destiny replica's keys: its trusted subsystem (shared by all its
/// instances), its untrusted π signer, and the group's scheme.
pub struct HybsterKeys {
    /// The trusted subsystem.
    pub trusted: Trusted,
    /// π.
    pub plain: Box<dyn PlainSign + Send>,
    /// Checks and combination.
    pub scheme: Arc<dyn Scheme>,
}

/// A Destiny replica's ThreshSign key material, as its key files hold it:
/// opaque bytes in `quorate-threshsign`'s formats
/// (`TrustedKeys::to_secret_bytes`, `UntrustedKeys::to_secret_bytes` and
/// `GroupPublic::to_bytes`), dealt by a trusted dealer
/// ([`quorate_threshsign::keygen`]) for the group [`destiny::group`]`(n, f)`.
/// In the key directory: per replica its trusted subsystem's secret keys
/// (`replica-<i>.threshold-trusted.key`) and its untrusted (π) secret keys
/// (`replica-<i>.threshold-untrusted.key`), both readable only by the owner,
/// and the group's public material (`threshold-group.pub`) for replicas and
/// clients. The secret parts are secrets like a signing key: `Debug` prints
/// their lengths only, and there is no `Clone`.
pub enum DestinyKeys {
    /// Dealt keys, checked by the host against the cluster.
    Dealt {
        /// The secret keys of the replica's trusted subsystem.
        trusted: Vec<u8>,
        /// The replica's untrusted secret keys.
        untrusted: Vec<u8>,
        /// The group's public material (the same for every replica and client).
        public: Arc<Vec<u8>>,
    },
    /// The simulator's modelled ThreshSign (decision 0008: a public key).
    Modelled,
}

impl std::fmt::Debug for DestinyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestinyKeys::Dealt { trusted, untrusted, public } => f
                .debug_struct("Dealt")
                .field("trusted", &format_args!("{} secret bytes", trusted.len()))
                .field("untrusted", &format_args!("{} secret bytes", untrusted.len()))
                .field("public", &format_args!("{} bytes", public.len()))
                .finish(),
            DestinyKeys::Modelled => f.write_str("Modelled"),
        }
    }
}

/// File names of replica `r`'s threshold secret keys: (trusted, untrusted).
pub fn threshold_file_names(r: ReplicaId) -> (String, String) {
    (format!("replica-{}.threshold-trusted.key", r.0), format!("replica-{}.threshold-untrusted.key", r.0))
}

/// File name of the group's public threshold material.
pub const THRESHOLD_PUBLIC_FILE: &str = "threshold-group.pub";

const KIND: &str = "threshold keys";

impl KeyMaterial for DestinyKeys {
    /// The group's public material (None: the modelled scheme).
    type Public = Option<Arc<Vec<u8>>>;
    const FILES: Option<KeyFiles> = Some(KeyFiles {
        kind: KIND,
        per_replica: "replica-<i>.threshold-{trusted,untrusted}.key",
        shared: THRESHOLD_PUBLIC_FILE,
    });

    /// A trusted dealer ([`quorate_threshsign::keygen`]) for
    /// [`destiny::group`]`(n, f)`.
    fn deal_into<R: RngCore + CryptoRng>(dir: &Path, n: usize, f: usize, rng: &mut R) -> Result<(), KeyError> {
        let deal = quorate_threshsign::keygen(&group(n, f), rng).map_err(|e| KeyError::Protocol {
            kind: KIND,
            files: dir.display().to_string(),
            msg: format!("the dealer refused the group: {e}"),
        })?;
        keys::write_public(&dir.join(THRESHOLD_PUBLIC_FILE), &deal.public.to_bytes())?;
        for k in deal.replicas {
            let (trusted_file, untrusted_file) = threshold_file_names(k.replica());
            let (trusted, untrusted) = k.into_parts();
            keys::write_secret(&dir.join(trusted_file), &trusted.to_secret_bytes())?;
            keys::write_secret(&dir.join(untrusted_file), &untrusted.to_secret_bytes())?;
        }
        Ok(())
    }

    /// The files are hex, decode, belong together and to `id`, and their
    /// group is this cluster's ([`KeyMaterial::load_public`] first).
    fn load(dir: &Path, id: ReplicaId, n: usize, f: usize) -> Result<Self, KeyError> {
        let public = Self::load_public(dir, n, f)?.expect("loaded, not modelled");
        let (trusted_file, untrusted_file) = threshold_file_names(id);
        let (trusted_path, untrusted_path) = (dir.join(trusted_file), dir.join(untrusted_file));
        let trusted = keys::read_hex(&trusted_path)?;
        let untrusted = keys::read_hex(&untrusted_path)?;
        Provision::from_bytes_for(id, &group(n, f), &trusted, &untrusted, &public).map_err(|e| {
            let files = [&trusted_path, &untrusted_path, &dir.join(THRESHOLD_PUBLIC_FILE)]
                .map(|p| p.display().to_string())
                .join(", ");
            KeyError::Protocol { kind: KIND, files, msg: e.to_string() }
        })?;
        Ok(DestinyKeys::Dealt { trusted, untrusted, public })
    }

    /// Hex, decodes, is of a deal for this cluster's group, and its public
    /// key shares match its commitment (O(n·t) group operations:
    /// milliseconds at small n, seconds at n = 301).
    fn load_public(dir: &Path, n: usize, f: usize) -> Result<Self::Public, KeyError> {
        let path = dir.join(THRESHOLD_PUBLIC_FILE);
        let bytes = keys::read_hex(&path)?;
        let bad = |e: ProvisionError| KeyError::Protocol {
            kind: KIND,
            files: path.display().to_string(),
            msg: e.to_string(),
        };
        let public = Provision::public_for(&group(n, f), &bytes).map_err(bad)?;
        if !public.check_key_shares() {
            return Err(bad(ProvisionError::BadKeyShares));
        }
        Ok(Some(Arc::new(bytes)))
    }

    fn modelled(_id: ReplicaId, _n: usize, _f: usize) -> Self {
        DestinyKeys::Modelled
    }

    fn modelled_public(_n: usize, _f: usize) -> Self::Public {
        None
    }
}

/// Destiny's dealer table for `n` replicas: f+1 of 2f+1.
fn group(n: usize, f: usize) -> GroupSpec {
    destiny::group(n as u32, f as u32)
}

impl Flavor for Hybster {
    const NAME: &'static str = "destiny";
    type Material = DestinyKeys;
    type D = hyb::Engine<DBatch>;
    type O = hyb::Engine<OBatch>;
    type Keys = HybsterKeys;

    fn replicas_for(f: usize) -> usize {
        2 * f + 1
    }

    /// Linear Hybster's: n = 2f+1 exactly, matching the dealt f+1-of-2f+1
    /// threshold groups ([`group`]).
    fn quorum_system(n: usize, f: usize, model: FaultModel) -> Result<QuorumSystem, ConfigError> {
        hyb::quorum_system(Self::NAME, n, f, model)
    }

    /// Real BLS from the replica's dealt keys when the host gives them (the
    /// runtime always does, having checked them with the same
    /// [`Provision::from_bytes_for`]); the simulator's modelled ThreshSign
    /// (decision 0008, a public key) only when it gives none.
    ///
    /// Panics on keys that are not this replica's for this group: a host
    /// must check them before building a replica (`quorate_node` does, and
    /// refuses to start).
    fn keys(ctx: &ReplicaContext<DestinyKeys>) -> HybsterKeys {
        let spec = group(ctx.membership.n(), ctx.membership.f());
        let p = match &ctx.keys {
            DestinyKeys::Dealt { trusted, untrusted, public } => {
                Provision::from_bytes_for(ctx.id, &spec, trusted, untrusted, public)
                    .unwrap_or_else(|e| panic!("{:?}'s threshold keys, unchecked by the host: {e}", ctx.id))
            }
            // The membership holds n >= 2f+1 >= 1 replicas, so the table is valid.
            DestinyKeys::Modelled => {
                Provision::modelled(ctx.id, &spec, ctx.crypto.clone()).expect("a valid Destiny group")
            }
        };
        HybsterKeys { trusted: Arc::new(Mutex::new(p.trusted)), plain: p.plain, scheme: p.scheme }
    }

    fn d_engine(ctx: &ReplicaContext<DestinyKeys>, keys: &HybsterKeys, cfg: &Config, i: u32) -> Self::D {
        let (m, c) = (ctx.membership.clone(), ctx.crypto.clone());
        hyb::Engine::new(ctx.id, m, c, keys.trusted.clone(), keys.scheme.clone(), cfg.d_hybster(i))
    }

    fn o_engine(ctx: &ReplicaContext<DestinyKeys>, keys: &HybsterKeys, cfg: &Config) -> Self::O {
        let (m, c) = (ctx.membership.clone(), ctx.crypto.clone());
        hyb::Engine::new(ctx.id, m, c, keys.trusted.clone(), keys.scheme.clone(), cfg.o_hybster())
    }

    fn answers(keys: &HybsterKeys) -> Option<(&dyn PlainSign, &Arc<dyn Scheme>)> {
        Some((keys.plain.as_ref(), &keys.scheme))
    }

    /// BLS over the group's public material when the host gives it (the
    /// runtime, checked with the same [`Provision::public_for`]); the
    /// modelled scheme only when it gives none (the simulator). Panics on
    /// material that is not of this group's deal (hosts check it first).
    fn client_scheme(ctx: &ClientContext<DestinyKeys>) -> Option<Arc<dyn Scheme>> {
        let spec = group(ctx.membership.n(), ctx.membership.f());
        Some(match &ctx.public_keys {
            Some(bytes) => {
                let public = Provision::public_for(&spec, bytes)
                    .unwrap_or_else(|e| panic!("the group's public threshold material, unchecked by the host: {e}"));
                Arc::new(BlsScheme::new(public))
            }
            None => Arc::new(ModelledScheme::new(&spec, ctx.crypto.clone()).expect("a valid Destiny group")),
        })
    }

    /// The trusted subsystem refuses a second value at the proposal's
    /// counter value, so the forged proposal carries the first one's share,
    /// which receivers find on another statement.
    fn forge_d(
        r: &Replica<Self>,
        i: u32,
        original: &HybMsg<DBatch>,
        _to: ReplicaId,
        value: DBatch,
    ) -> Option<HybMsg<DBatch>> {
        let HybMsg::Prepare { view, seq, share, .. } = original else { return None };
        let share = hybster_share(r, destiny::sigma(ReplicaId(i)), share, &value.digest(r.crypto()));
        Some(HybMsg::Prepare { view: *view, seq: *seq, value, share })
    }

    fn forge_o(r: &Replica<Self>, original: &HybMsg<OBatch>, _to: ReplicaId, value: OBatch) -> Option<HybMsg<OBatch>> {
        let HybMsg::Prepare { view, seq, share, .. } = original else { return None };
        let share = hybster_share(r, destiny::TAU, share, &value.digest(r.crypto()));
        Some(HybMsg::Prepare { view: *view, seq: *seq, value, share })
    }

    /// Unchanged: each colluder's trusted subsystem binds one value to
    /// each counter value, so there is no second story to tell (Destiny's
    /// collude-split certifies forged answers instead, [`crate::byzantine`]).
    fn collude_o(
        _r: &Replica<Self>,
        _c: &mut Collusion<OBatch>,
        _to: ReplicaId,
        msg: HybMsg<OBatch>,
    ) -> HybMsg<OBatch> {
        msg
    }

    fn spoil_d(msg: &mut HybMsg<DBatch>) -> bool {
        spoil_hybster(msg)
    }

    fn spoil_o(msg: &mut HybMsg<OBatch>) -> bool {
        spoil_hybster(msg)
    }
}

/// A share on `digest` at the original's counter value if the trusted
/// subsystem gives one (it does not: the value is used), else the original.
fn hybster_share(
    r: &Replica<Hybster>,
    inst: quorate_threshsign::InstanceId,
    original: &Share,
    digest: &Digest,
) -> Share {
    let st = &original.statement;
    let mut t = r.keys().trusted.lock().unwrap_or_else(|e| e.into_inner());
    t.independent_share(inst, st.counter, st.value, digest).unwrap_or_else(|_| original.clone())
}

fn spoil_hybster<V>(msg: &mut HybMsg<V>) -> bool {
    match msg {
        HybMsg::CommitShare { share, .. } | HybMsg::CheckpointShare { share, .. } => {
            let mut sig = share.sig_bytes();
            sig[7] ^= 0x5a;
            *share = Share::from_parts(share.statement, share.signer, &sig);
            true
        }
        _ => false,
    }
}

//! Network model of the discrete-event simulator.
//!
//! The model is pure and deterministic: it reads no clock and owns no random
//! number generator. Time is virtual (`u64` nanoseconds) and every random
//! choice is drawn from the [`ChaCha8Rng`] the caller passes in, so the same
//! seed and the same sequence of calls always give the same deliveries.
//!
//! Nodes (replicas and clients alike) are dense indices `0..n`. Each node has a
//! [`Placement`]: either "on the LAN" or in a region of an [`RttMatrix`] (the
//! embedded AWS and Azure inter-region round-trip-time matrices, or one parsed
//! from CSV). The one-way base latency between two nodes is half the RTT
//! between their regions when both have a region, and
//! [`NetConfig::lan_one_way_ns`] otherwise.
//!
//! [`Network::transmit`] models, for one message:
//!
//! 1. serialisation on the sender's egress link (per-node bandwidth, so a
//!    leader sending large proposals to many replicas queues them);
//! 2. partitions and isolated nodes (the message is dropped);
//! 3. random loss, plus extra loss before the global stabilisation time (GST);
//! 4. propagation: base one-way latency plus uniform jitter, an optional
//!    reordering delay and, before GST, an optional extra delay;
//! 5. random duplication (the copy gets an independent propagation delay).
//!
//! Per-pair FIFO order is not guaranteed when jitter or reordering is on.
//! The receiver's ingress link is not modelled.

use std::sync::{Arc, OnceLock};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The embedded AWS inter-region RTT matrix (ms), see `data/README` in the WAN dataset.
const AWS_CSV: &str = include_str!("../data/aws-rtt-ms.csv");
/// The embedded Azure inter-region RTT matrix (ms).
const AZURE_CSV: &str = include_str!("../data/azure-rtt-ms.csv");

/// Nanoseconds per millisecond.
const NS_PER_MS: f64 = 1_000_000.0;
/// Nanoseconds per second.
const NS_PER_S: u128 = 1_000_000_000;

/// Errors of the network model: bad RTT CSV, unknown regions, bad configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetError {
    /// The RTT matrix CSV is malformed; `line` is 1-based.
    #[error("RTT matrix CSV, line {line}: {message}")]
    Csv {
        /// 1-based line number of the offending line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A region name is in none of the matrices searched.
    #[error("unknown region `{name}` (known regions: {known})")]
    UnknownRegion {
        /// The name that was looked up.
        name: String,
        /// Comma-separated list of the regions that were searched.
        known: String,
    },
    /// A [`NetConfig`] field is out of range.
    #[error("invalid network config: {0}")]
    InvalidConfig(String),
    /// A node's [`Placement`] is unusable.
    #[error("invalid placement of node {node}: {message}")]
    InvalidPlacement {
        /// Index of the node.
        node: usize,
        /// What is wrong with its placement.
        message: String,
    },
}

// ---------------------------------------------------------------------------
// RTT matrix
// ---------------------------------------------------------------------------

/// A square, symmetric matrix of round-trip times in milliseconds between named regions.
#[derive(Debug, Clone, PartialEq)]
pub struct RttMatrix {
    regions: Vec<String>,
    rtt_ms: Vec<Vec<f64>>,
}

/// Cached parse of the embedded AWS matrix.
fn aws_shared() -> &'static Arc<RttMatrix> {
    static AWS: OnceLock<Arc<RttMatrix>> = OnceLock::new();
    AWS.get_or_init(|| Arc::new(RttMatrix::parse(AWS_CSV).expect("embedded AWS matrix is valid")))
}

/// Cached parse of the embedded Azure matrix.
fn azure_shared() -> &'static Arc<RttMatrix> {
    static AZURE: OnceLock<Arc<RttMatrix>> = OnceLock::new();
    AZURE.get_or_init(|| Arc::new(RttMatrix::parse(AZURE_CSV).expect("embedded Azure matrix is valid")))
}

impl RttMatrix {
    /// Parses a matrix from CSV: a header `region,<code1>,<code2>,...`, then one
    /// row `<code>,<rtt1>,<rtt2>,...` per region in the header's order. Values
    /// are RTTs in ms (finite, non-negative); the matrix must be symmetric.
    /// Blank lines are ignored and `\r\n` line ends are accepted.
    pub fn parse(csv: &str) -> Result<Self, NetError> {
        let err = |line: usize, message: String| NetError::Csv { line, message };
        let mut lines = csv.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());

        let (header_line, header) =
            lines.next().ok_or_else(|| err(1, "empty input: expected header `region,<code>,...`".into()))?;
        let mut cells = header.split(',').map(str::trim);
        let first = cells.next().unwrap_or("");
        if !first.eq_ignore_ascii_case("region") {
            return Err(err(header_line, format!("header must start with `region`, found `{first}`")));
        }
        let regions: Vec<String> = cells.map(str::to_owned).collect();
        if regions.is_empty() {
            return Err(err(header_line, "header names no region".into()));
        }
        for (i, r) in regions.iter().enumerate() {
            if r.is_empty() {
                return Err(err(header_line, format!("header column {} has an empty region name", i + 2)));
            }
            if regions[..i].contains(r) {
                return Err(err(header_line, format!("region `{r}` appears twice in header")));
            }
        }

        let n = regions.len();
        let mut rtt_ms: Vec<Vec<f64>> = Vec::with_capacity(n);
        let mut row_lines: Vec<usize> = Vec::with_capacity(n);
        let mut last_line = header_line;
        for (line, text) in lines {
            last_line = line;
            let row = rtt_ms.len();
            let cells: Vec<&str> = text.split(',').map(str::trim).collect();
            let name = cells[0];
            if row >= n {
                return Err(err(line, format!("extra row `{name}`: header has only {n} regions")));
            }
            if cells.len() != n + 1 {
                return Err(err(
                    line,
                    format!("row `{name}` has {} cells, expected {} (region name + {n} values)", cells.len(), n + 1),
                ));
            }
            if name != regions[row] {
                return Err(err(
                    line,
                    format!(
                        "row {} is `{name}` but header column {} is `{}` (rows must follow header order)",
                        row + 1,
                        row + 1,
                        regions[row]
                    ),
                ));
            }
            let mut values = Vec::with_capacity(n);
            for (col, cell) in cells[1..].iter().enumerate() {
                let v: f64 = cell.parse().map_err(|_| {
                    err(line, format!("region `{name}`, column `{}`: `{cell}` is not a number", regions[col]))
                })?;
                if !v.is_finite() || v < 0.0 {
                    return Err(err(
                        line,
                        format!("region `{name}`, column `{}`: RTT {v} must be finite and non-negative", regions[col]),
                    ));
                }
                values.push(v);
            }
            rtt_ms.push(values);
            row_lines.push(line);
        }
        if rtt_ms.len() < n {
            return Err(err(
                last_line + 1,
                format!("unexpected end of input: missing row for region `{}`", regions[rtt_ms.len()]),
            ));
        }
        for a in 0..n {
            for b in 0..a {
                let (ab, ba) = (rtt_ms[a][b], rtt_ms[b][a]);
                if (ab - ba).abs() > 1e-9 {
                    return Err(err(
                        row_lines[a],
                        format!(
                            "matrix is not symmetric: `{}`->`{}` is {ab} but `{}`->`{}` is {ba}",
                            regions[a], regions[b], regions[b], regions[a]
                        ),
                    ));
                }
            }
        }
        Ok(Self { regions, rtt_ms })
    }

    /// The embedded AWS matrix (14 regions, e.g. `us-east-1`, `ap-south-1`).
    pub fn aws() -> RttMatrix {
        aws_shared().as_ref().clone()
    }

    /// The embedded Azure matrix (10 regions, e.g. `eastus`, `westeurope`).
    pub fn azure() -> RttMatrix {
        azure_shared().as_ref().clone()
    }

    /// Finds `name` in the AWS matrix, then in the Azure one, and returns the
    /// matrix together with the region's index in it.
    pub fn lookup(name: &str) -> Result<(RttMatrix, usize), NetError> {
        let (m, i) = lookup_shared(name)?;
        Ok((m.as_ref().clone(), i))
    }

    /// Index of region `name` in this matrix.
    pub fn region_index(&self, name: &str) -> Result<usize, NetError> {
        self.regions
            .iter()
            .position(|r| r == name)
            .ok_or_else(|| NetError::UnknownRegion { name: name.to_owned(), known: self.regions.join(", ") })
    }

    /// RTT in ms between regions `a` and `b` (indices), or `None` if either is out of range.
    pub fn rtt_ms(&self, a: usize, b: usize) -> Option<f64> {
        self.rtt_ms.get(a).and_then(|row| row.get(b)).copied()
    }

    /// RTT in ms between two regions given by name.
    pub fn rtt_ms_by_name(&self, a: &str, b: &str) -> Result<f64, NetError> {
        let (a, b) = (self.region_index(a)?, self.region_index(b)?);
        Ok(self.rtt_ms[a][b])
    }

    /// Region names, in matrix order.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether the matrix has no region (never true for a parsed matrix).
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

/// Looks `name` up in the shared embedded matrices (AWS first).
fn lookup_shared(name: &str) -> Result<(&'static Arc<RttMatrix>, usize), NetError> {
    let (aws, azure) = (aws_shared(), azure_shared());
    if let Ok(i) = aws.region_index(name) {
        return Ok((aws, i));
    }
    if let Ok(i) = azure.region_index(name) {
        return Ok((azure, i));
    }
    Err(NetError::UnknownRegion {
        name: name.to_owned(),
        known: format!("AWS: {}; Azure: {}", aws.regions.join(", "), azure.regions.join(", ")),
    })
}

// ---------------------------------------------------------------------------
// Configuration and placement
// ---------------------------------------------------------------------------

/// Parameters of the network model. Probabilities are in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// One-way latency (ns) between nodes not both placed in a region. Default 100 µs.
    pub lan_one_way_ns: u64,
    /// Jitter as a fraction of the base one-way delay: each delivery gets an
    /// extra delay uniform in `[0, jitter * base]`. Default 0.05.
    pub jitter: f64,
    /// Per-node egress link bandwidth in bits/s; `None` = infinite. Default 1 Gb/s.
    pub bandwidth_bps: Option<u64>,
    /// Probability that a message is lost (at any time). Default 0.
    pub loss: f64,
    /// Probability that a delivered message is delivered a second time. Default 0.
    pub duplicate: f64,
    /// Probability that a delivery gets an extra delay uniform in `[0, reorder_max_ns]`. Default 0.
    pub reorder: f64,
    /// Upper bound (ns) of the reordering delay. Default 0.
    pub reorder_max_ns: u64,
    /// Global stabilisation time (ns). Messages sent strictly before it suffer the
    /// `pre_gst_*` behaviour in addition to the rest. Default 0 (synchronous from the start).
    pub gst_ns: u64,
    /// Before GST, each delivery gets an extra delay uniform in `[0, pre_gst_extra_delay_ns]`.
    pub pre_gst_extra_delay_ns: u64,
    /// Before GST, extra probability that a message is lost (drawn independently of `loss`).
    pub pre_gst_loss: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            lan_one_way_ns: 100_000,
            jitter: 0.05,
            bandwidth_bps: Some(1_000_000_000),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_max_ns: 0,
            gst_ns: 0,
            pre_gst_extra_delay_ns: 0,
            pre_gst_loss: 0.0,
        }
    }
}

impl NetConfig {
    /// Checks that probabilities are in `[0, 1]`, jitter is finite and
    /// non-negative, and bandwidth (if any) is non-zero.
    pub fn validate(&self) -> Result<(), NetError> {
        let probs = [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("pre_gst_loss", self.pre_gst_loss),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return Err(NetError::InvalidConfig(format!("{name} = {p} is not a probability in [0, 1]")));
            }
        }
        if !self.jitter.is_finite() || self.jitter < 0.0 {
            return Err(NetError::InvalidConfig(format!("jitter = {} must be finite and non-negative", self.jitter)));
        }
        if self.bandwidth_bps == Some(0) {
            return Err(NetError::InvalidConfig("bandwidth_bps = Some(0); use None for infinite bandwidth".into()));
        }
        Ok(())
    }
}

/// Where a node is: on the LAN, or in a region of an RTT matrix.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// No region: talks to everybody with [`NetConfig::lan_one_way_ns`] latency.
    Lan,
    /// Region `region` (index) of `matrix`. All region placements of one
    /// [`Network`] must use the same matrix (same `Arc` or equal contents).
    Region {
        /// The RTT matrix.
        matrix: Arc<RttMatrix>,
        /// Index of the region in `matrix`.
        region: usize,
    },
}

impl Placement {
    /// Region `name` of `matrix`.
    pub fn in_matrix(matrix: &Arc<RttMatrix>, name: &str) -> Result<Self, NetError> {
        Ok(Placement::Region { region: matrix.region_index(name)?, matrix: Arc::clone(matrix) })
    }

    /// Region `name` of the embedded AWS matrix, or else of the Azure one. The
    /// matrices are shared, so this is cheap to call once per node.
    pub fn region(name: &str) -> Result<Self, NetError> {
        let (matrix, region) = lookup_shared(name)?;
        Ok(Placement::Region { matrix: Arc::clone(matrix), region })
    }
}

// ---------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------

/// Outcome of one [`Network::transmit`]: virtual times (ns) at which the
/// receiver gets the message. Both `None` means the message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Delivery time of the message, or `None` if it was dropped.
    pub first: Option<u64>,
    /// Delivery time of a duplicate copy, if the network duplicated it.
    pub duplicate: Option<u64>,
}

impl Delivery {
    /// A dropped message.
    pub const DROPPED: Delivery = Delivery { first: None, duplicate: None };

    /// Whether the message was dropped.
    pub fn is_dropped(&self) -> bool {
        self.first.is_none()
    }

    /// All delivery times (zero, one or two).
    pub fn times(&self) -> impl Iterator<Item = u64> {
        self.first.into_iter().chain(self.duplicate)
    }
}

/// Counters of a [`Network`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Calls to [`Network::transmit`] (self-sends and dropped messages included).
    pub messages_sent: u64,
    /// Sum of `bytes` over those calls.
    pub bytes_sent: u64,
    /// Messages dropped by random loss (`loss`).
    pub dropped_loss: u64,
    /// Messages dropped by the pre-GST loss (`pre_gst_loss`).
    pub dropped_pre_gst: u64,
    /// Messages dropped because of a partition or an isolated node.
    pub dropped_partition: u64,
    /// Messages dropped because `from` or `to` is not a node of the network.
    pub dropped_invalid: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
}

impl NetStats {
    /// Total dropped messages, all reasons.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_pre_gst + self.dropped_partition + self.dropped_invalid
    }
}

/// Precomputed latency of one ordered pair of sites.
#[derive(Debug, Clone, Copy)]
struct PairDelay {
    /// Base one-way delay (ns).
    base: u64,
    /// Largest jitter (ns): `jitter * base`.
    jitter_max: u64,
}

/// The simulated network: latency, bandwidth, loss, duplication, reordering,
/// partitions and GST. Every operation on a message is O(1) and allocation-free.
#[derive(Debug, Clone)]
pub struct Network {
    config: NetConfig,
    /// Site of each node: 0 = LAN, `r + 1` = region `r`.
    site: Vec<u32>,
    /// Number of sites (`regions + 1`).
    sites: usize,
    /// `delay[s_from * sites + s_to]`.
    delay: Vec<PairDelay>,
    /// Time (ns) at which each node's egress link becomes free.
    link_free_at: Vec<u64>,
    /// Partition group of each node: 0 = not listed (reaches everybody), `g + 1` = group `g`.
    group: Vec<u32>,
    /// Isolated nodes send and receive nothing (except to themselves).
    isolated: Vec<bool>,
    stats: NetStats,
}

impl Network {
    /// Builds a network of `placement.len()` nodes. Fails if the config is out of
    /// range, a region index is out of its matrix, or region placements use
    /// different matrices.
    pub fn new(config: NetConfig, placement: Vec<Placement>) -> Result<Self, NetError> {
        config.validate()?;
        let mut matrix: Option<&Arc<RttMatrix>> = None;
        let mut site = Vec::with_capacity(placement.len());
        for (node, p) in placement.iter().enumerate() {
            match p {
                Placement::Lan => site.push(0u32),
                Placement::Region { matrix: m, region } => {
                    if *region >= m.len() {
                        return Err(NetError::InvalidPlacement {
                            node,
                            message: format!("region index {region} out of range (matrix has {} regions)", m.len()),
                        });
                    }
                    match matrix {
                        None => matrix = Some(m),
                        Some(first) if Arc::ptr_eq(first, m) || **first == **m => {}
                        Some(first) => {
                            return Err(NetError::InvalidPlacement {
                                node,
                                message: format!(
                                    "region `{}` is in a different RTT matrix than earlier nodes' (e.g. `{}`); all nodes must use one matrix",
                                    m.regions[*region], first.regions[0]
                                ),
                            })
                        }
                    }
                    site.push(*region as u32 + 1);
                }
            }
        }

        let regions = matrix.map_or(0, |m| m.len());
        let sites = regions + 1;
        let mut delay = Vec::with_capacity(sites * sites);
        for a in 0..sites {
            for b in 0..sites {
                let base = match (a, b, matrix) {
                    (1.., 1.., Some(m)) => (m.rtt_ms[a - 1][b - 1] * NS_PER_MS / 2.0).round() as u64,
                    _ => config.lan_one_way_ns,
                };
                let jitter_max = (base as f64 * config.jitter).round() as u64;
                delay.push(PairDelay { base, jitter_max });
            }
        }

        let n = placement.len();
        Ok(Self {
            config,
            site,
            sites,
            delay,
            link_free_at: vec![0; n],
            group: vec![0; n],
            isolated: vec![false; n],
            stats: NetStats::default(),
        })
    }

    /// A network of `n` nodes all on the LAN.
    pub fn lan(config: NetConfig, n: usize) -> Result<Self, NetError> {
        Self::new(config, vec![Placement::Lan; n])
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.site.len()
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// Base one-way latency (ns, without jitter or serialisation) from `a` to `b`;
    /// 0 for `a == b`, `None` if either is not a node.
    pub fn one_way_ns(&self, a: usize, b: usize) -> Option<u64> {
        if a >= self.node_count() || b >= self.node_count() {
            return None;
        }
        if a == b {
            return Some(0);
        }
        Some(self.pair(a, b).base)
    }

    /// Time (ns) at which `node`'s egress link is free, or `None` if not a node.
    pub fn link_free_at(&self, node: usize) -> Option<u64> {
        self.link_free_at.get(node).copied()
    }

    /// Serialisation time (ns) of `bytes` on one egress link.
    pub fn serialization_ns(&self, bytes: usize) -> u64 {
        match self.config.bandwidth_bps {
            None => 0,
            Some(bps) => {
                let bits = bytes as u128 * 8 * NS_PER_S;
                let bps = bps as u128;
                u64::try_from(bits.div_ceil(bps)).unwrap_or(u64::MAX)
            }
        }
    }

    fn pair(&self, a: usize, b: usize) -> PairDelay {
        self.delay[self.site[a] as usize * self.sites + self.site[b] as usize]
    }

    /// Whether a message from `from` to `to` would pass the current partition and
    /// isolation (false if either is not a node).
    pub fn can_reach(&self, from: usize, to: usize) -> bool {
        if from >= self.node_count() || to >= self.node_count() {
            return false;
        }
        if from == to {
            return true;
        }
        if self.isolated[from] || self.isolated[to] {
            return false;
        }
        let (gf, gt) = (self.group[from], self.group[to]);
        gf == 0 || gt == 0 || gf == gt
    }

    /// Sends `bytes` bytes from `from` to `to` at virtual time `now` (ns) and
    /// returns when it arrives (if ever).
    ///
    /// A message to oneself is delivered at `now`, with no link cost, loss or
    /// partition. Otherwise it starts serialising at `max(now, link_free_at[from])`
    /// and holds the sender's link for `bytes * 8 / bandwidth`; it then may be
    /// dropped (partition, loss, pre-GST loss), and arrives after the base
    /// one-way delay plus jitter, reorder delay and pre-GST delay. A message
    /// dropped on the way still used the sender's link. Messages whose `from` or
    /// `to` is not a node are dropped and counted in [`NetStats::dropped_invalid`].
    /// "Before GST" means `now < gst_ns`.
    pub fn transmit(&mut self, rng: &mut ChaCha8Rng, now: u64, from: usize, to: usize, bytes: usize) -> Delivery {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(bytes as u64);
        let n = self.node_count();
        if from >= n || to >= n {
            self.stats.dropped_invalid += 1;
            return Delivery::DROPPED;
        }
        if from == to {
            return Delivery { first: Some(now), duplicate: None };
        }

        // Serialisation on the sender's egress link.
        let start = now.max(self.link_free_at[from]);
        let departed = start.saturating_add(self.serialization_ns(bytes));
        self.link_free_at[from] = departed;

        if !self.can_reach(from, to) {
            self.stats.dropped_partition += 1;
            return Delivery::DROPPED;
        }
        let pre_gst = now < self.config.gst_ns;
        if bernoulli(rng, self.config.loss) {
            self.stats.dropped_loss += 1;
            return Delivery::DROPPED;
        }
        if pre_gst && bernoulli(rng, self.config.pre_gst_loss) {
            self.stats.dropped_pre_gst += 1;
            return Delivery::DROPPED;
        }

        let pair = self.pair(from, to);
        let first = departed.saturating_add(self.propagation(rng, pair, pre_gst));
        let duplicate = if bernoulli(rng, self.config.duplicate) {
            self.stats.duplicated += 1;
            Some(departed.saturating_add(self.propagation(rng, pair, pre_gst)))
        } else {
            None
        };
        Delivery { first: Some(first), duplicate }
    }

    /// One propagation-delay sample: base + jitter + reorder + pre-GST extra.
    fn propagation(&self, rng: &mut ChaCha8Rng, pair: PairDelay, pre_gst: bool) -> u64 {
        let mut d = pair.base.saturating_add(uniform(rng, pair.jitter_max));
        if bernoulli(rng, self.config.reorder) {
            d = d.saturating_add(uniform(rng, self.config.reorder_max_ns));
        }
        if pre_gst {
            d = d.saturating_add(uniform(rng, self.config.pre_gst_extra_delay_ns));
        }
        d
    }

    /// Partitions the nodes: a message is dropped when its sender and receiver
    /// are both listed and in different groups. Nodes listed in no group (e.g.
    /// clients) reach everybody. A node listed in several groups belongs to the
    /// last one; indices that are not nodes are ignored. Replaces any earlier
    /// partition; isolation ([`Network::isolate`]) is kept.
    pub fn set_partition(&mut self, groups: Vec<Vec<usize>>) {
        self.group.iter_mut().for_each(|g| *g = 0);
        for (g, members) in groups.iter().enumerate() {
            for &node in members {
                if let Some(slot) = self.group.get_mut(node) {
                    *slot = g as u32 + 1;
                }
            }
        }
    }

    /// Removes the partition set by [`Network::set_partition`]. Isolated nodes stay isolated.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    /// Cuts `node` off: it neither sends nor receives (except to itself) until
    /// [`Network::reconnect`]. Ignored if `node` is not a node.
    pub fn isolate(&mut self, node: usize) {
        if let Some(i) = self.isolated.get_mut(node) {
            *i = true;
        }
    }

    /// Undoes [`Network::isolate`]. Ignored if `node` is not a node.
    pub fn reconnect(&mut self, node: usize) {
        if let Some(i) = self.isolated.get_mut(node) {
            *i = false;
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }
}

/// True with probability `p`; draws nothing when `p <= 0`.
fn bernoulli(rng: &mut ChaCha8Rng, p: f64) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.gen::<f64>() < p
    }
}

/// Uniform in `[0, max]`; draws nothing when `max == 0`.
fn uniform(rng: &mut ChaCha8Rng, max: u64) -> u64 {
    if max == 0 {
        0
    } else {
        rng.gen_range(0..=max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const MS: u64 = 1_000_000;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn quiet() -> NetConfig {
        NetConfig { jitter: 0.0, bandwidth_bps: None, ..NetConfig::default() }
    }

    #[test]
    fn embedded_matrices_parse() {
        let aws = RttMatrix::aws();
        assert_eq!(aws.len(), 14);
        assert_eq!(aws.regions()[0], "us-east-1");
        let azure = RttMatrix::azure();
        assert_eq!(azure.len(), 10);
        assert!(azure.regions().iter().any(|r| r == "westeurope"));
        for m in [&aws, &azure] {
            for i in 0..m.len() {
                assert_eq!(m.rtt_ms(i, i), Some(1.0));
            }
        }
    }

    #[test]
    fn parse_small_matrix() {
        let m = RttMatrix::parse("region,a,b\r\na,1.0,10.5\r\n\r\nb,10.5,1.0\r\n").unwrap();
        assert_eq!(m.regions(), ["a", "b"]);
        assert_eq!(m.rtt_ms(0, 1), Some(10.5));
        assert_eq!(m.rtt_ms(2, 0), None);
        assert_eq!(m.rtt_ms_by_name("b", "a").unwrap(), 10.5);
    }

    #[test]
    fn symmetric_lookups() {
        let aws = RttMatrix::aws();
        for a in 0..aws.len() {
            for b in 0..aws.len() {
                assert_eq!(aws.rtt_ms(a, b), aws.rtt_ms(b, a));
            }
        }
        let e = aws.region_index("us-east-1").unwrap();
        let m = aws.region_index("ap-south-1").unwrap();
        assert_eq!(aws.rtt_ms(e, m), Some(182.0));
        assert_eq!(aws.rtt_ms_by_name("ap-south-1", "us-east-1").unwrap(), 182.0);
    }

    #[test]
    fn lookup_finds_either_matrix() {
        let (m, i) = RttMatrix::lookup("ap-south-1").unwrap();
        assert_eq!(m, RttMatrix::aws());
        assert_eq!(m.regions()[i], "ap-south-1");
        let (m, i) = RttMatrix::lookup("eastus").unwrap();
        assert_eq!(m, RttMatrix::azure());
        assert_eq!(m.regions()[i], "eastus");
    }

    #[test]
    fn unknown_region_is_an_error_naming_it() {
        let e = RttMatrix::lookup("mars-north-1").unwrap_err();
        assert!(matches!(&e, NetError::UnknownRegion { name, .. } if name == "mars-north-1"));
        assert!(e.to_string().contains("mars-north-1"));
        assert!(RttMatrix::aws().region_index("eastus").is_err());
        assert!(Placement::region("nowhere").is_err());
    }

    #[test]
    fn bad_csv_names_the_line() {
        let cases = [
            ("", 1),
            ("regions,a\na,1.0\n", 1),
            ("region,a,a\na,1\na,1\n", 1),
            ("region,a,b\na,1.0,2.0\nb,2.0\n", 3),
            ("region,a,b\na,1.0,x\nb,2.0,1.0\n", 2),
            ("region,a,b\na,1.0,-2\nb,-2,1.0\n", 2),
            ("region,a,b\nb,1.0,2.0\na,2.0,1.0\n", 2),
            ("region,a,b\na,1.0,2.0\n", 3),
            ("region,a,b\na,1.0,2.0\nb,3.0,1.0\n", 3),
            ("region,a\na,1.0\nb,1.0\n", 3),
            ("region,a,b\na,1.0,NaN\nb,NaN,1.0\n", 2),
        ];
        for (csv, want) in cases {
            match RttMatrix::parse(csv) {
                Err(e @ NetError::Csv { line, .. }) => {
                    assert_eq!(line, want, "{csv:?}: {e}");
                    assert!(e.to_string().contains(&format!("line {want}")));
                }
                other => panic!("{csv:?}: expected CSV error, got {other:?}"),
            }
        }
        let e = RttMatrix::parse("region,a,b\na,1.0,x\nb,2.0,1.0\n").unwrap_err();
        assert!(e.to_string().contains("`a`") && e.to_string().contains("`x`"), "{e}");
    }

    #[test]
    fn us_east_to_mumbai_one_way_is_91_ms() {
        let p = vec![
            Placement::region("us-east-1").unwrap(),
            Placement::region("ap-south-1").unwrap(),
            Placement::region("us-east-1").unwrap(),
        ];
        let mut net = Network::new(quiet(), p).unwrap();
        assert_eq!(net.one_way_ns(0, 1), Some(91 * MS));
        assert_eq!(net.one_way_ns(1, 0), Some(91 * MS));
        assert_eq!(net.one_way_ns(0, 2), Some(MS / 2));
        let d = net.transmit(&mut rng(1), 5, 0, 1, 100);
        assert_eq!(d.first, Some(5 + 91 * MS));
        assert_eq!(d.duplicate, None);

        // With default jitter, the delay lies in [91 ms, 91 ms * 1.05].
        let mut net = Network::new(
            NetConfig { bandwidth_bps: None, ..NetConfig::default() },
            vec![Placement::region("ap-south-1").unwrap(), Placement::region("us-east-1").unwrap()],
        )
        .unwrap();
        let mut r = rng(2);
        for _ in 0..100 {
            let t = net.transmit(&mut r, 0, 1, 0, 10).first.unwrap();
            assert!((91 * MS..=91 * MS + 91 * MS / 20).contains(&t), "{t}");
        }
    }

    #[test]
    fn lan_default_and_mixed_placements() {
        let mut net = Network::lan(quiet(), 3).unwrap();
        assert_eq!(net.one_way_ns(0, 1), Some(100_000));
        assert_eq!(net.transmit(&mut rng(0), 7, 0, 2, 1).first, Some(100_007));
        // Self-send: immediate, no link cost.
        let mut net = Network::lan(NetConfig::default(), 2).unwrap();
        let d = net.transmit(&mut rng(0), 42, 1, 1, 10_000_000);
        assert_eq!(d.first, Some(42));
        assert_eq!(net.link_free_at(1), Some(0));
        // LAN node to region node uses the LAN latency.
        let net = Network::new(quiet(), vec![Placement::Lan, Placement::region("eu-west-1").unwrap()]).unwrap();
        assert_eq!(net.one_way_ns(0, 1), Some(100_000));
    }

    #[test]
    fn invalid_config_and_placement_are_errors() {
        for cfg in [
            NetConfig { loss: 1.5, ..NetConfig::default() },
            NetConfig { jitter: f64::NAN, ..NetConfig::default() },
            NetConfig { bandwidth_bps: Some(0), ..NetConfig::default() },
        ] {
            assert!(matches!(Network::lan(cfg, 2), Err(NetError::InvalidConfig(_))));
        }
        let mixed = vec![Placement::region("us-east-1").unwrap(), Placement::region("eastus").unwrap()];
        assert!(matches!(Network::new(quiet(), mixed), Err(NetError::InvalidPlacement { node: 1, .. })));
        let bad = vec![Placement::Region { matrix: Arc::new(RttMatrix::aws()), region: 99 }];
        assert!(matches!(Network::new(quiet(), bad), Err(NetError::InvalidPlacement { node: 0, .. })));
        // Equal matrices in different Arcs are accepted.
        let ok = vec![
            Placement::Region { matrix: Arc::new(RttMatrix::aws()), region: 0 },
            Placement::Region { matrix: Arc::new(RttMatrix::aws()), region: 1 },
        ];
        assert!(Network::new(quiet(), ok).is_ok());
    }

    #[test]
    fn bandwidth_queues_on_sender_link() {
        let cfg = NetConfig { jitter: 0.0, ..NetConfig::default() };
        let mut net = Network::lan(cfg, 11).unwrap();
        let mut r = rng(3);
        let mut last = 0;
        for to in 1..=10 {
            last = net.transmit(&mut r, 0, 0, to, 1_000_000).first.unwrap();
        }
        // 10 × 8 ms serialisation + 0.1 ms propagation.
        assert_eq!(last, 80 * MS + 100_000);
        assert_eq!(net.link_free_at(0), Some(80 * MS));
        // Another sender's link is independent.
        let d = net.transmit(&mut r, 0, 5, 6, 1_000_000);
        assert_eq!(d.first, Some(8 * MS + 100_000));
        // An idle link starts at `now`.
        let d = net.transmit(&mut r, 200 * MS, 0, 1, 125);
        assert_eq!(d.first, Some(200 * MS + 1_000 + 100_000));
    }

    #[test]
    fn partition_drops_and_heal_restores() {
        let mut net = Network::lan(quiet(), 5).unwrap();
        let mut r = rng(4);
        net.set_partition(vec![vec![0, 1], vec![2, 3]]);
        assert!(net.transmit(&mut r, 0, 0, 2, 10).is_dropped());
        assert!(net.transmit(&mut r, 0, 3, 1, 10).is_dropped());
        assert!(!net.transmit(&mut r, 0, 0, 1, 10).is_dropped());
        assert!(!net.transmit(&mut r, 0, 2, 3, 10).is_dropped());
        // Node 4 (e.g. a client) is unlisted and reaches everybody.
        assert!(!net.transmit(&mut r, 0, 4, 0, 10).is_dropped());
        assert!(!net.transmit(&mut r, 0, 2, 4, 10).is_dropped());
        assert_eq!(net.stats().dropped_partition, 2);
        net.heal();
        assert!(!net.transmit(&mut r, 0, 0, 2, 10).is_dropped());
        assert!(!net.transmit(&mut r, 0, 3, 1, 10).is_dropped());

        net.isolate(1);
        assert!(net.transmit(&mut r, 0, 1, 0, 10).is_dropped());
        assert!(net.transmit(&mut r, 0, 4, 1, 10).is_dropped());
        assert_eq!(net.transmit(&mut r, 9, 1, 1, 10).first, Some(9));
        net.heal();
        assert!(!net.can_reach(0, 1));
        net.reconnect(1);
        assert!(!net.transmit(&mut r, 0, 1, 0, 10).is_dropped());
        assert_eq!(net.stats().dropped_partition, 4);
        // Out-of-range indices are ignored / dropped, never a panic.
        net.set_partition(vec![vec![0, 99]]);
        net.isolate(99);
        assert!(net.transmit(&mut r, 0, 0, 99, 10).is_dropped());
        assert_eq!(net.stats().dropped_invalid, 1);
        assert_eq!(net.one_way_ns(0, 99), None);
    }

    #[test]
    fn loss_probability_is_respected() {
        let cfg = NetConfig { loss: 0.1, ..quiet() };
        let mut net = Network::lan(cfg, 2).unwrap();
        let mut r = rng(5);
        let lost = (0..10_000).filter(|_| net.transmit(&mut r, 0, 0, 1, 100).is_dropped()).count();
        // Mean 1000, sd 30.
        assert!((880..=1120).contains(&lost), "{lost}");
        let s = net.stats();
        assert_eq!(s.dropped_loss, lost as u64);
        assert_eq!(s.messages_sent, 10_000);
        assert_eq!(s.bytes_sent, 1_000_000);
        assert_eq!(s.dropped(), lost as u64);
    }

    #[test]
    fn duplication_and_reorder() {
        let cfg = NetConfig { duplicate: 1.0, reorder: 0.5, reorder_max_ns: 10 * MS, ..NetConfig::default() };
        let mut net = Network::lan(cfg, 2).unwrap();
        let mut r = rng(6);
        let mut reordered = 0;
        for i in 0..1000 {
            let now = i * 20 * MS;
            let d = net.transmit(&mut r, now, 0, 1, 100);
            assert_eq!(d.times().count(), 2);
            for t in d.times() {
                let lat = t - now;
                assert!((100_000..=100_000 + 5_000 + 800 + 10 * MS).contains(&lat), "{lat}");
                if lat > 200_000 {
                    reordered += 1;
                }
            }
        }
        assert_eq!(net.stats().duplicated, 1000);
        assert!((800..=1200).contains(&reordered), "{reordered}");
    }

    #[test]
    fn pre_gst_delay_and_loss_stop_at_gst() {
        let cfg = NetConfig { gst_ns: 1_000 * MS, pre_gst_extra_delay_ns: 500 * MS, pre_gst_loss: 0.5, ..quiet() };
        let mut net = Network::lan(cfg, 2).unwrap();
        let mut r = rng(7);
        let mut delayed = 0;
        for i in 0..1000 {
            let now = i * MS / 2;
            if let Some(t) = net.transmit(&mut r, now, 0, 1, 0).first {
                assert!(t - now <= 100_000 + 500 * MS);
                if t - now > 100_000 {
                    delayed += 1;
                }
            }
        }
        let pre = net.stats().dropped_pre_gst;
        assert!((400..=600).contains(&pre), "{pre}");
        assert!(delayed > 400, "{delayed}");
        for i in 0..1000 {
            let now = 1_000 * MS + i;
            assert_eq!(net.transmit(&mut r, now, 0, 1, 0).first, Some(now + 100_000));
        }
        assert_eq!(net.stats().dropped_pre_gst, pre);
    }

    #[test]
    fn same_seed_same_deliveries() {
        let run = |seed: u64| {
            let cfg = NetConfig {
                loss: 0.05,
                duplicate: 0.05,
                reorder: 0.1,
                reorder_max_ns: 3 * MS,
                gst_ns: 50 * MS,
                pre_gst_extra_delay_ns: 20 * MS,
                pre_gst_loss: 0.1,
                ..NetConfig::default()
            };
            let p: Vec<_> = ["us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"]
                .iter()
                .map(|r| Placement::region(r).unwrap())
                .collect();
            let mut net = Network::new(cfg, p).unwrap();
            let mut r = rng(seed);
            let out: Vec<Delivery> = (0..2000u64)
                .map(|i| {
                    let (f, t) = ((i % 4) as usize, ((i / 4 + 1) % 4) as usize);
                    net.transmit(&mut r, i * 50_000, f, t, 1 + (i as usize * 37) % 5000)
                })
                .collect();
            (out, net.stats())
        };
        let (a, sa) = run(11);
        let (b, sb) = run(11);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, _) = run(12);
        assert_ne!(a, c);
    }
}

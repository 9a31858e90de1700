//! `xdpipe gen` (module `generator`; `gen` is a reserved word): a traffic generator.
//! The AF_XDP engine is a [`Source`] on the pipeline's transmit workers. Builds UDP frames
//! (IPv4 or IPv6, untagged, 802.1Q or QinQ) from per-(flow, size) templates, stamps each with flow id, sequence number and monotonic TX time, paces them
//! evenly at a target rate (or as fast as the TX ring drains), for a count or a duration.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    thread,
    time::Duration,
};

use serde::Serialize;

mod offload;
pub mod rss;
pub use offload::{OffloadPlan, TxOffload, TxOffloadReport};

use crate::{
    config::{BatchSize, BindMode, CoreList, QueueList},
    pipeline::{Pipeline, Source, SourceStep, TxBatch},
    stats::{WorkerCounters, bump},
    sys::{self, XdpStatistics},
    wire::{
        stamp::Stamp,
        udpgen::{FCS_LEN, FrameTemplate, MIN_FRAME_LEN, UdpFlow, VlanTags},
    },
    xsk::{TxRequest, XskConfig, XskError},
};

/// Frame sizes, including the 4-byte FCS as in RFC 2544 (64 B = 60 bytes handed over).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeSpec {
    /// Every frame this size, bytes with FCS.
    Fixed(usize),
    /// 7:4:1 of 64, 570 and 1518 bytes.
    Imix,
}

/// IMIX order over 12 frames: seven 64 B, four 570 B, one 1518 B, interleaved.
const IMIX_SIZES: [usize; 3] = [64, 570, 1518];
const IMIX_PATTERN: [usize; 12] = [0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 2];

impl SizeSpec {
    /// Distinct sizes (with FCS) and the per-packet pattern of indexes into them.
    fn plan(&self) -> (Vec<usize>, Vec<usize>) {
        match self {
            SizeSpec::Fixed(n) => (vec![*n], vec![0]),
            SizeSpec::Imix => (IMIX_SIZES.to_vec(), IMIX_PATTERN.to_vec()),
        }
    }

    /// Mean frame size with FCS.
    pub fn mean(&self) -> f64 {
        let (sizes, pattern) = self.plan();
        pattern.iter().map(|&i| sizes[i] as f64).sum::<f64>() / pattern.len() as f64
    }
}

impl std::str::FromStr for SizeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(SizeSpec::Imix);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("packet size {s:?}: a number of bytes (64 to the MTU + 18, at most 9018) or imix"))?;
        if n < MIN_FRAME_LEN + FCS_LEN {
            return Err(format!(
                "packet size {n}: at least {} bytes (headers plus the 16-byte stamp, with FCS)",
                MIN_FRAME_LEN + FCS_LEN
            ));
        }
        Ok(SizeSpec::Fixed(n))
    }
}

/// Target rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rate {
    /// No pacing: as fast as the engine sends.
    Max,
    /// Frames per second.
    Pps(f64),
    /// Bits per second of Ethernet frames including FCS (not preamble or gap).
    Bps(f64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    /// `max`, `500000` / `500kpps` / `2.5mpps` (packets per second), `1gbit` / `200mbit`.
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        if l == "max" {
            return Ok(Rate::Max);
        }
        let bad =
            || format!("rate {s:?}: use max, a packet rate (500000, 300kpps, 1.5mpps) or a bit rate (200mbit, 1gbit)");
        let (num, unit) = l.split_at(l.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(l.len()));
        let v: f64 = num.parse().map_err(|_| bad())?;
        if !(v > 0.0 && v.is_finite()) {
            return Err(bad());
        }
        Ok(match unit {
            "" | "pps" => Rate::Pps(v),
            "kpps" => Rate::Pps(v * 1e3),
            "mpps" => Rate::Pps(v * 1e6),
            "kbit" => Rate::Bps(v * 1e3),
            "mbit" => Rate::Bps(v * 1e6),
            "gbit" => Rate::Bps(v * 1e9),
            _ => return Err(bad()),
        })
    }
}

impl Rate {
    /// Packets per second for frames of mean size `mean_len` (with FCS); None for max.
    pub fn pps(&self, mean_len: f64) -> Option<f64> {
        match *self {
            Rate::Max => None,
            Rate::Pps(p) => Some(p),
            Rate::Bps(b) => Some(b / (mean_len * 8.0)),
        }
    }
}

/// What `xdpipe gen` sends, where and how fast. The CLI checks the flags against each
/// other; [`generate`] checks what needs the device (root, interface, MTU, MAC).
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Interface to transmit on.
    pub iface: String,
    /// TX queues, one sending worker each (xsk: an AF_XDP socket bound to the queue;
    /// xdp-live: a thread with its own instance of the program, whose frames leave on the
    /// queue the driver picks for the thread's CPU). The flows are split across them
    /// ([`plan_flows`]).
    pub queues: QueueList,
    /// Cores to pin the workers to, one per queue in queue order (None: unpinned, the
    /// scheduler's choice).
    pub cores: Option<CoreList>,
    /// Frame sizes to send, bytes with FCS.
    pub sizes: SizeSpec,
    /// Number of flows, 1 to 65535; each has its own ports and sequence numbers.
    pub flows: u16,
    /// Target rate, in total: each queue sends its share (rate / queues).
    pub rate: Rate,
    /// Stop after this many frames in total, split evenly over the queues (None: no
    /// limit).
    pub count: Option<u64>,
    /// Stop after this long (None: no limit).
    pub duration: Option<Duration>,
    /// Source MAC (None: the interface's own).
    pub src_mac: Option<[u8; 6]>,
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address, the same for every flow; IPv4 or IPv6, the family of `dst_ip`.
    pub src_ip: IpAddr,
    /// Destination address, the same for every flow.
    pub dst_ip: IpAddr,
    /// VLAN tags on every frame (none: untagged).
    pub vlan: VlanTags,
    /// UDP source port of flow 0; flow i sends from `src_port + i` (wrapping), or, with
    /// `rss_of`, from the port [`rss::spread`] picks.
    pub src_port: u16,
    /// UDP destination port of flow 0; flow i sends to `dst_port + i % 256` (wrapping), so
    /// the flows stay in a steered range of 256 ports.
    pub dst_port: u16,
    /// xsk: descriptors per TX ring operation; xdp-live: frames per kernel batch of each
    /// BPF_PROG_RUN call (at most 256).
    pub batch: usize,
    /// The AF_XDP socket's sizes and flags (xsk engine).
    pub xsk: XskConfig,
    /// Which engine transmits.
    pub engine: Engine,
    /// Send even on an interface that looks like the machine's uplink.
    pub allow_uplink: bool,
    /// Which AF_XDP TX metadata requests the frames carry (xsk engine).
    pub tx_offload: TxOffload,
    /// The receiving interface, on this machine, whose RSS key and table pick the source
    /// ports: flow i reaches its i-th RX queue, round robin (xsk engine; None: `src_port +
    /// i`, and the receiver's hash decides).
    pub rss_of: Option<String>,
}

/// The default source address of IPv4 frames. The defaults come from the ranges set
/// aside for benchmarking, so they never collide with a real network: RFC 2544 (appendix
/// C.2.2, 198.18.0.0/15) puts the tester's sending side in 198.18.0.0/16 and its
/// receiving side in 198.19.0.0/16; RFC 5180 gives IPv6 2001:2::/48, split here into
/// one /64 per side the same way.
pub const DEFAULT_SRC_IPV4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The default destination address of IPv4 frames (see [`DEFAULT_SRC_IPV4`]).
pub const DEFAULT_DST_IPV4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The default source address of IPv6 frames, 2001:2:0:1::1 (see [`DEFAULT_SRC_IPV4`]).
pub const DEFAULT_SRC_IPV6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1);
/// The default destination address of IPv6 frames, 2001:2:0:2::1.
pub const DEFAULT_DST_IPV6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 1);

/// How frames are transmitted (a plain config enum, in `config`).
pub use crate::config::Engine;

/// Why `xdpipe gen` could not run or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// IMIX asked of the xdp-live engine, which sends one frame size per run.
    #[error("the xdp-live engine sends one frame size per run; use --engine xsk for imix")]
    LiveImix,
    /// A target rate asked of the xdp-live engine, which sends at full speed only.
    #[error(
        "the xdp-live engine sends at full speed only (--rate max): the kernel transmits each \
         BPF_PROG_RUN call's frames back to back, and each call costs about 25 ms of setup, so \
         it cannot pace evenly; use --engine xsk for a target rate"
    )]
    LivePaced,
    /// IPv6 or VLAN tags asked of the xdp-live engine, whose program stamps untagged
    /// IPv4 frames at fixed offsets.
    #[error(
        "the xdp-live engine sends untagged IPv4 frames only (its in-kernel program stamps at fixed IPv4 \
         offsets); use --engine xsk for IPv6 or VLAN tags"
    )]
    LiveHeaders,
    /// A frame size below the smallest frame the headers and the stamp need.
    #[error(
        "packet size {size} B is too small for these headers: {what} with the 16-byte stamp need at least {min} B with FCS; raise --size"
    )]
    TooSmall {
        /// The frame size asked for, bytes with FCS.
        size: usize,
        /// The headers, e.g. "Ethernet, 2 VLAN tags, IPv6, UDP".
        what: String,
        /// The smallest size that fits, bytes with FCS.
        min: usize,
    },
    /// Source and destination addresses of different families.
    #[error(
        "--src-ip {src} and --dst-ip {dst}: give both addresses of one family (both IPv4, or both IPv6 with --ipv6)"
    )]
    MixedFamilies {
        /// The source address.
        src: IpAddr,
        /// The destination address.
        dst: IpAddr,
    },
    /// Loading or running the in-kernel generator program (xdp-live) failed.
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
    /// A preflight check refused the interface (it looks like the uplink) or could not run.
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    /// Not running as root.
    #[error("xdpipe gen must run as root (CAP_NET_RAW, CAP_NET_ADMIN, CAP_IPC_LOCK); try sudo")]
    NotRoot,
    /// No interface of this name (the payload) in this network namespace.
    #[error("no interface named {0:?} in this network namespace; list them with `ip link`")]
    NoSuchInterface(String),
    /// A frame size does not fit the UMEM frames one frame may use (one for the
    /// in-kernel engine, up to `xsk::MAX_SEGS` multi-buffer for the AF_XDP engine).
    #[error(
        "packet size {size} B needs {need} bytes of UMEM, more than the {have} one frame may use with {frame} B UMEM frames; lower --size or raise --frame-size"
    )]
    TooBig {
        /// The frame size asked for, bytes with FCS.
        size: usize,
        /// Bytes it needs in UMEM frames.
        need: usize,
        /// Bytes the UMEM frames one frame may span hold, after 256 bytes of headroom
        /// each.
        have: usize,
        /// UMEM frame size, bytes.
        frame: u32,
    },
    /// A frame size exceeds the interface's MTU (from /sys/class/net/IFACE/mtu).
    #[error(
        "packet size {size} B exceeds the MTU of {iface} ({mtu} B, so at most {max} B per frame with FCS); lower --size or raise the MTU (`ip link set dev {iface} mtu N`, up to 9000 for --size 9018)"
    )]
    AboveMtu {
        /// The frame size asked for, bytes with FCS.
        size: usize,
        /// The interface.
        iface: String,
        /// Its MTU, bytes.
        mtu: usize,
        /// The largest frame it carries, bytes with FCS (MTU + 18).
        max: usize,
    },
    /// `flows` was 0.
    #[error("--flows must be 1 to 65535")]
    Flows,
    /// `--rss-of` names a receiver whose RSS cannot be planned for.
    #[error("--rss-of {iface}: {why}")]
    Rss {
        /// The receiving interface.
        iface: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// `--rss-of` with the xdp-live engine, whose program derives the ports itself.
    #[error("--rss-of works with --engine xsk only: the xdp-live program sends flow i from --src-port + i")]
    LiveRss,
    /// Fewer flows than queues: each queue sends flows of its own.
    #[error(
        "--flows {flows} with {queues} queues: each queue sends its own flows, so give at least \
         --flows {queues} (or fewer --queues)"
    )]
    FewFlows {
        /// Flows asked for.
        flows: u16,
        /// Queues asked for.
        queues: usize,
    },
    /// Cores given, but not one per queue.
    #[error(
        "--cores lists {cores} core(s) for {queues} queue(s): give one core per queue, in queue order \
         (e.g. --queues 0,1 --cores 0,1), or leave --cores out"
    )]
    CoreCount {
        /// Queues asked for.
        queues: usize,
        /// Cores given.
        cores: usize,
    },
    /// Reading the interface's MAC failed.
    #[error("reading {iface}: {source}")]
    Sys {
        /// The interface.
        iface: String,
        /// The failed call.
        #[source]
        source: sys::SysError,
    },
    /// An AF_XDP socket error.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// The transmit pipeline failed to start or run.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// The queue, core or batch size is not a valid pipeline setting.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `--tx-offload` asked for what neither the device nor the kernel honours here; why.
    #[error("{0}")]
    TxOffload(String),
    /// The transmit worker panicked; its panic message.
    #[error("{0}")]
    Worker(String),
}

/// One queue's share of the flows: which flows, their ports, its core and its targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueuePlan {
    /// The TX queue (xsk: the socket's; xdp-live: the worker's index, its frames leave on
    /// the queue the driver picks for its CPU).
    pub queue: u32,
    /// The core its worker is pinned to (None: unpinned).
    pub core: Option<u32>,
    /// Its first flow: it sends flows `flow_base .. flow_base + flows`.
    pub flow_base: u16,
    /// How many flows it sends.
    pub flows: u16,
    /// UDP source ports of its flows, first and last (`src_port + flow`, wrapping; with
    /// `--rss-of`, those of its first and last flow).
    pub src_ports: (u16, u16),
    /// UDP destination ports of its flows, first and last (`dst_port + flow % 256`,
    /// wrapping; all 256 of the range once it has 256 flows or more).
    pub dst_ports: (u16, u16),
    /// Frames it sends with `--count` (None: until the duration or a stop).
    pub count: Option<u64>,
    /// Its target rate, packets per second (None: as fast as it goes).
    pub target_pps: Option<f64>,
    /// With `--rss-of`: each of its flows' source port (empty without).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rss_src_ports: Vec<u16>,
    /// With `--rss-of`: each of its flows' RX queue at the receiver (empty without).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rss_rx_queues: Vec<u32>,
}

/// Splits `flows` flows over `queues` (one worker each, pinned to `cores[i]` if given):
/// queue i gets a contiguous block of `flows / queues` flows, the first `flows % queues`
/// queues one more, so a flow's frames all leave on one queue and its sequence numbers
/// come from one worker. `count` (frames) and `target_pps` are totals, split the same way.
///
/// Which RX queue a flow reaches is the receiver's choice: a NIC's RSS hashes the
/// 4-tuple with a key this plan does not know, and the flows' ports differ so that the
/// hash spreads them; on veth, frames an AF_XDP socket sends on TX queue i arrive on the
/// peer's RX queue i (veth_xmit keeps the skb's queue mapping), and the in-kernel
/// engine's on RX queue `cpu % queues` (veth_xdp_xmit picks the queue by CPU).
pub fn plan_flows(
    queues: &[u32],
    cores: Option<&[u32]>,
    flows: u16,
    (src_port, dst_port): (u16, u16),
    count: Option<u64>,
    target_pps: Option<f64>,
) -> Result<Vec<QueuePlan>, GenError> {
    let n = queues.len();
    if flows == 0 {
        return Err(GenError::Flows);
    }
    if (flows as usize) < n {
        return Err(GenError::FewFlows { flows, queues: n });
    }
    if let Some(c) = cores
        && c.len() != n
    {
        return Err(GenError::CoreCount { queues: n, cores: c.len() });
    }
    let (per, extra) = (flows as usize / n.max(1), flows as usize % n.max(1));
    let mut base = 0u16;
    let mut plan = Vec::with_capacity(n);
    for (i, &queue) in queues.iter().enumerate() {
        let k = (per + usize::from(i < extra)) as u16;
        let last = base + (k - 1);
        let dst_ports = if k >= 256 {
            (dst_port, dst_port.wrapping_add(255))
        } else {
            (dst_port.wrapping_add(base % 256), dst_port.wrapping_add(last % 256))
        };
        plan.push(QueuePlan {
            queue,
            core: cores.map(|c| c[i]),
            flow_base: base,
            flows: k,
            src_ports: (src_port.wrapping_add(base), src_port.wrapping_add(last)),
            dst_ports,
            count: count.map(|c| c / n as u64 + u64::from((i as u64) < c % n as u64)),
            target_pps: target_pps.map(|p| p / n as f64),
            rss_src_ports: Vec::new(),
            rss_rx_queues: Vec::new(),
        });
        base = base.wrapping_add(k);
    }
    Ok(plan)
}

/// Puts the ports and RX queues of `rss` into each queue's share of `plan`.
fn apply_rss(plan: &mut [QueuePlan], rss: &rss::RssPlan) {
    for q in plan {
        let flows = usize::from(q.flow_base)..usize::from(q.flow_base) + usize::from(q.flows);
        q.rss_src_ports = rss.src_ports[flows.clone()].to_vec();
        q.rss_rx_queues = rss.rx_queues[flows].to_vec();
        if let (Some(&first), Some(&last)) = (q.rss_src_ports.first(), q.rss_src_ports.last()) {
            q.src_ports = (first, last);
        }
    }
}

/// At most 8 items of a list, comma-separated, with a count of the rest.
fn some_of<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(8).map(T::to_string).collect();
    match items.len() {
        n if n > 8 => format!("{} and {} more", shown.join(","), n - 8),
        _ => shown.join(","),
    }
}

/// The plan as text, a line per queue, for the log (stderr).
pub fn describe_plan(plan: &[QueuePlan], engine: Engine) -> String {
    let mut out = String::new();
    for q in plan {
        let core = q.core.map_or("unpinned".to_owned(), |c| format!("core {c}"));
        let flows = if q.flows == 1 {
            format!("flow {}", q.flow_base)
        } else {
            format!("flows {}-{}", q.flow_base, q.flow_base + (q.flows - 1))
        };
        let rate = q.target_pps.map_or("max".to_owned(), crate::stats::fmt_pps);
        let name = match engine {
            Engine::Xsk => format!("TX queue {}", q.queue),
            Engine::XdpLive => format!("worker {}", q.queue),
        };
        let src = if q.rss_src_ports.is_empty() {
            format!("src ports {}-{}", q.src_ports.0, q.src_ports.1)
        } else {
            format!("src ports {} to RX queues {}", some_of(&q.rss_src_ports), some_of(&q.rss_rx_queues))
        };
        out.push_str(&format!(
            "\n  {name} ({core}): {flows}, {src}, dst ports {}-{}, rate {rate}",
            q.dst_ports.0, q.dst_ports.1
        ));
    }
    if plan.iter().any(|q| !q.rss_src_ports.is_empty()) {
        out.push_str("\n  the source ports are chosen from the receiver's RSS key and table (--rss-of): flow i reaches its i-th RX queue, round robin");
        return out;
    }
    out.push_str(match engine {
        Engine::Xsk => {
            "\n  the receiver decides each flow's RX queue: a NIC by its RSS hash of the ports (its key unknown here: --rss-of IFACE reads a local receiver's), a veth peer by the TX queue (i -> i)"
        }
        Engine::XdpLive => {
            "\n  the driver picks each worker's TX queue by its CPU (a veth peer receives on RX queue cpu % queues); the receiver's RSS decides on a NIC"
        }
    });
    out
}

/// What one queue's worker sent.
#[derive(Clone, Debug, Serialize)]
pub struct GenQueueSummary {
    /// Its share of the flows, ports, core and targets.
    #[serde(flatten)]
    pub plan: QueuePlan,
    /// Frames it put on its TX ring (xdp-live: that its program instance stamped).
    pub sent: u64,
    /// Frames the kernel reported transmitted (xdp-live: as `sent`).
    pub completed: u64,
    /// Bytes of its frames, without FCS.
    pub bytes: u64,
    /// Its frames per second over the run's `duration_s`.
    pub pps: f64,
    /// Its megabits per second over the run's `duration_s`, frames with FCS.
    pub mbps: f64,
}

/// The results of one `xdpipe gen` run.
#[derive(Clone, Debug, Serialize)]
pub struct GenSummary {
    /// Interface transmitted on.
    pub iface: String,
    /// The first queue (with one queue: the queue); `per_queue` has them all.
    pub queue: u32,
    /// The engine that transmitted.
    pub engine: Engine,
    /// Frame sizes sent, bytes with FCS.
    pub sizes: SizeSpec,
    /// Number of flows.
    pub flows: u16,
    /// Target packets per second (null: as fast as possible).
    pub target_pps: Option<f64>,
    /// Frames put on the TX rings, all queues.
    pub sent: u64,
    /// Frames the kernel reported transmitted (completion ring; with xdp-live, frames the
    /// program returned XDP_TX for, as the kernel gives no per-frame completion).
    pub completed: u64,
    /// Bytes of the frames sent, without FCS.
    pub bytes: u64,
    /// Seconds from the start of sending to its end.
    pub duration_s: f64,
    /// Frames sent per second over `duration_s`, all queues.
    pub pps: f64,
    /// Megabits sent per second over `duration_s`, frames with FCS.
    pub mbps: f64,
    /// xsk: syscalls made to wake the kernel (TX kicks); xdp-live: BPF_PROG_RUN calls.
    pub wakeups: u64,
    /// CPU time of the sending threads, ns.
    pub cpu_ns: u64,
    /// TX batches by size bucket ([`crate::stats::batch_bucket`]); all zero with
    /// xdp-live.
    pub batch_hist: [u64; crate::stats::BATCH_BUCKETS],
    /// The socket's XDP_STATISTICS at the end (all zero with xdp-live).
    pub xdp_statistics: XdpStatistics,
    /// Per flow: frames sent (its sequence numbers are 0..sent).
    pub sent_per_flow: Vec<u64>,
    /// Per queue, in queue order: its flows, what it sent and its rates.
    pub per_queue: Vec<GenQueueSummary>,
    /// Who computed the checksums and whether the device timestamped the frames.
    pub tx_offload: TxOffloadReport,
}

impl GenSummary {
    /// The fields every engine fills the same way, from `cfg` and its totals (`sent`,
    /// `completed`, `bytes` without FCS, over `secs`): rates computed, queue 0, and the
    /// per-engine parts (wakeups, CPU, batches, statistics, per flow, per queue) empty for
    /// the caller to set.
    pub(crate) fn totals(
        cfg: &GenConfig,
        engine: Engine,
        (sent, completed, bytes): (u64, u64, u64),
        secs: f64,
        tx_offload: TxOffloadReport,
    ) -> Self {
        let (pps, mbps) = crate::stats::rates(sent, bytes + sent * FCS_LEN as u64, secs);
        Self {
            iface: cfg.iface.clone(),
            queue: 0,
            engine,
            sizes: cfg.sizes.clone(),
            flows: cfg.flows,
            target_pps: cfg.rate.pps(cfg.sizes.mean()),
            sent,
            completed,
            bytes,
            duration_s: secs,
            pps,
            mbps,
            wakeups: 0,
            cpu_ns: 0,
            batch_hist: [0; crate::stats::BATCH_BUCKETS],
            xdp_statistics: XdpStatistics::default(),
            sent_per_flow: Vec::new(),
            per_queue: Vec::new(),
            tx_offload,
        }
    }
}

fn iface_mtu(iface: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu")).ok()?.trim().parse().ok()
}

/// Runs the generator: one worker per queue of `cfg.queues` (the xsk engine on the
/// pipeline's transmit workers, `xdpipe-tx{queue}`; the xdp-live engine on threads of its
/// own), each pinned to its core of `cfg.cores` if given, each sending its share of the
/// flows ([`plan_flows`], logged before the start).
pub fn generate(cfg: &GenConfig, stop: Arc<AtomicBool>, counters: &WorkerCounters) -> Result<GenSummary, GenError> {
    let (templates, pattern, nsizes, rss) = prepare(cfg)?;
    let mut plan = plan_flows(
        cfg.queues.ids(),
        cfg.cores.as_ref().map(|c| c.ids()),
        cfg.flows,
        (cfg.src_port, cfg.dst_port),
        cfg.count,
        cfg.rate.pps(cfg.sizes.mean()),
    )?;
    if let Some(r) = &rss {
        apply_rss(&mut plan, r);
    }
    log::info!("flow plan on {}:{}", cfg.iface, describe_plan(&plan, cfg.engine));
    match cfg.engine {
        Engine::Xsk => generate_xsk(cfg, &plan, &templates, &pattern, nsizes, stop, counters),
        Engine::XdpLive => generate_live(cfg, &plan, &templates, stop),
    }
}

/// Per-queue summaries from the plan and each queue's (sent, completed, bytes).
fn per_queue(plan: &[QueuePlan], sent: &[(u64, u64, u64)], secs: f64) -> Vec<GenQueueSummary> {
    plan.iter()
        .zip(sent)
        .map(|(p, &(sent, completed, bytes))| {
            let (pps, mbps) = crate::stats::rates(sent, bytes + sent * FCS_LEN as u64, secs);
            GenQueueSummary { plan: p.clone(), sent, completed, bytes, pps, mbps }
        })
        .collect()
}

/// Validates the config, plans the ports for the receiver's RSS (`--rss-of`) and builds
/// the frame templates: `templates[flow * nsizes + i]`.
#[allow(clippy::type_complexity)]
fn prepare(cfg: &GenConfig) -> Result<(Vec<FrameTemplate>, Vec<usize>, usize, Option<rss::RssPlan>), GenError> {
    if !sys::is_root() {
        return Err(GenError::NotRoot);
    }
    if sys::ifindex(&cfg.iface).is_none() {
        return Err(GenError::NoSuchInterface(cfg.iface.clone()));
    }
    if cfg.flows == 0 {
        return Err(GenError::Flows);
    }
    // Before any program is attached: a queue the device lacks fails only at bind.
    if cfg.engine == Engine::Xsk
        && let Ok(n) = sys::xsk_queue_limit(&cfg.iface)
    {
        cfg.queues.check_against(&cfg.iface, n)?;
    }
    if !cfg.allow_uplink
        && let Some(why) = crate::preflight::uplink_reason(&cfg.iface)?
    {
        return Err(crate::preflight::PreflightError::Uplink { iface: cfg.iface.clone(), why }.into());
    }
    if cfg.engine == Engine::XdpLive && (cfg.src_ip.is_ipv6() || !cfg.vlan.ids().is_empty()) {
        return Err(GenError::LiveHeaders);
    }
    if cfg.src_ip.is_ipv6() != cfg.dst_ip.is_ipv6() {
        return Err(GenError::MixedFamilies { src: cfg.src_ip, dst: cfg.dst_ip });
    }
    let rss = match &cfg.rss_of {
        Some(_) if cfg.engine == Engine::XdpLive => return Err(GenError::LiveRss),
        Some(rx) => {
            let table = rss::read(rx, cfg.dst_ip.is_ipv6())?;
            Some(rss::spread(rx, &table, (cfg.src_ip, cfg.dst_ip), (cfg.src_port, cfg.dst_port), cfg.flows)?)
        }
        None => None,
    };
    let (sizes, pattern) = cfg.sizes.plan();
    let frame = cfg.xsk.frame_size.get();
    let shape = UdpFlow {
        src_mac: [0; 6],
        dst_mac: cfg.dst_mac,
        src_ip: cfg.src_ip,
        dst_ip: cfg.dst_ip,
        src_port: 0,
        dst_port: 0,
        vlan: cfg.vlan,
    };
    let have = frame as usize - 256;
    // The AF_XDP engine sends frames past one UMEM frame's room as chains of descriptors
    // (multi-buffer); the in-kernel engine's frames fit one.
    let max_segs = if cfg.engine == Engine::Xsk { crate::xsk::MAX_SEGS } else { 1 };
    for &size in &sizes {
        let need = size - FCS_LEN;
        if need < shape.min_frame_len() {
            return Err(GenError::TooSmall { size, what: headers_name(&shape), min: shape.min_frame_len() + FCS_LEN });
        }
        if need > have * max_segs {
            return Err(GenError::TooBig { size, need, have: have * max_segs, frame });
        }
        // The kernel forwards frames of the MTU plus the Ethernet header, and 4 bytes more
        // for a VLAN tag (is_skb_forwardable).
        let vlan_allowance = if cfg.vlan.ids().is_empty() { 0 } else { 4 };
        if let Some(mtu) = iface_mtu(&cfg.iface)
            && need > mtu + 14 + vlan_allowance
        {
            return Err(GenError::AboveMtu { size, iface: cfg.iface.clone(), mtu, max: mtu + 18 });
        }
        if need > have && cfg.xsk.bind == BindMode::ZeroCopy {
            crate::preflight::check_multi_buffer(
                &cfg.iface,
                need as u32,
                need.div_ceil(have) as u32,
                have as u32,
                false,
                true,
            )?;
        }
    }
    let src_mac = match cfg.src_mac {
        Some(m) => m,
        None => sys::iface_mac(&cfg.iface).map_err(|source| GenError::Sys { iface: cfg.iface.clone(), source })?,
    };
    // templates[flow * sizes + size]
    let mut templates = Vec::with_capacity(cfg.flows as usize * sizes.len());
    for f in 0..cfg.flows {
        let flow = UdpFlow {
            src_mac,
            // Ports vary per flow so RSS spreads flows over queues; the destination stays
            // in the steered range (256 ports).
            src_port: rss.as_ref().map_or(cfg.src_port.wrapping_add(f), |r| r.src_ports[usize::from(f)]),
            dst_port: cfg.dst_port.wrapping_add(f % 256),
            ..shape
        };
        for &size in &sizes {
            templates.push(FrameTemplate::new(&flow, size - FCS_LEN).map_err(|_| GenError::TooBig {
                size,
                need: size,
                have,
                frame,
            })?);
        }
    }
    if cfg.engine == Engine::XdpLive && sizes.len() > 1 {
        return Err(GenError::LiveImix);
    }
    if cfg.engine == Engine::XdpLive && cfg.rate != Rate::Max {
        return Err(GenError::LivePaced);
    }
    Ok((templates, pattern, sizes.len(), rss))
}

/// The headers of `flow`'s frames, for messages: "Ethernet, 1 VLAN tag, IPv6, UDP".
fn headers_name(flow: &UdpFlow) -> String {
    let tags = match flow.vlan.ids().len() {
        0 => String::new(),
        1 => " with a VLAN tag".into(),
        n => format!(" with {n} VLAN tags"),
    };
    format!("Ethernet{tags}, {}, UDP headers", if flow.src_ip.is_ipv6() { "IPv6" } else { "IPv4" })
}

fn pin(core: Option<u32>) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core_affinity::CoreId { id: core as usize })
    {
        log::warn!("could not pin the generator to core {core}");
    }
}

/// Target length of one BPF_PROG_RUN call. Each call has a fixed cost (about 25 ms on this
/// kernel: setting up and tearing down its page pool), so calls are sized from the rate
/// the previous one reached to last about this long.
const LIVE_CALL_SECS: f64 = 0.25;

/// The in-kernel engine: one thread per queue of the plan, each with its own instance
/// of `xdpipe_gen` set to its flows (so each flow's sequence numbers come from one
/// instance's counter, see the program's `XDPIPE_GEN_COUNT`), pinned to its core if
/// given. The kernel transmits the thread's first flow's template, stamped and given its
/// flow's ports per packet by the program, in calls sized to about `LIVE_CALL_SECS`.
fn generate_live(
    cfg: &GenConfig,
    plan: &[QueuePlan],
    templates: &[FrameTemplate],
    stop: Arc<AtomicBool>,
) -> Result<GenSummary, GenError> {
    let ifindex = sys::ifindex(&cfg.iface).ok_or_else(|| GenError::NoSuchInterface(cfg.iface.clone()))?;
    let frame_len = templates[0].bytes().len();
    let target_pps = cfg.rate.pps(cfg.sizes.mean());
    log::info!(
        "ready: generating on {} with the in-kernel engine (BPF_PROG_RUN live frames), {} worker(s), {} flow(s), {} B, rate {}",
        cfg.iface,
        plan.len(),
        cfg.flows,
        frame_len + FCS_LEN,
        target_pps.map_or("max".to_owned(), |p| format!("{p:.0} pps"))
    );
    let start_ns = sys::monotonic_ns();
    let deadline_ns = cfg.duration.map(|d| start_ns + d.as_nanos() as u64);
    let results: Vec<Result<LiveWorker, GenError>> = thread::scope(|scope| {
        let handles: Vec<_> = plan
            .iter()
            .map(|q| {
                let frame = templates[q.flow_base as usize].bytes();
                let stop = &stop;
                scope.spawn(move || live_worker(cfg, q, frame, ifindex, deadline_ns, stop))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| Err(GenError::Worker(crate::pipeline::panic_message(&p)))))
            .collect()
    });
    let secs = (sys::monotonic_ns() - start_ns) as f64 / 1e9;
    let mut workers = Vec::with_capacity(results.len());
    for r in results {
        workers.push(r?);
    }
    let sent: u64 = workers.iter().map(|w| w.sent).sum();
    let bytes = sent * frame_len as u64;
    let mut sent_per_flow = vec![0u64; cfg.flows as usize];
    for (q, w) in plan.iter().zip(&workers) {
        // Instance packet k is flow `flow_base + k % flows`: the first `sent % flows` of
        // its flows sent one more.
        let n = q.flows as u64;
        for f in 0..n {
            sent_per_flow[(q.flow_base as u64 + f) as usize] = w.sent / n + u64::from(f < w.sent % n);
        }
    }
    let per: Vec<(u64, u64, u64)> = workers.iter().map(|w| (w.sent, w.sent, w.sent * frame_len as u64)).collect();
    let tx_offload = TxOffloadReport::after(
        cfg.tx_offload,
        Engine::XdpLive,
        &cfg.iface,
        OffloadPlan::default(),
        BindMode::Copy,
        Default::default(),
    );
    Ok(GenSummary {
        queue: plan.first().map_or(0, |q| q.queue),
        wakeups: workers.iter().map(|w| w.calls).sum(),
        cpu_ns: workers.iter().map(|w| w.cpu_ns).sum(),
        sent_per_flow,
        per_queue: per_queue(plan, &per, secs),
        ..GenSummary::totals(cfg, Engine::XdpLive, (sent, sent, bytes), secs, tx_offload)
    })
}

/// What one in-kernel engine thread did.
struct LiveWorker {
    sent: u64,
    calls: u64,
    cpu_ns: u64,
}

/// One in-kernel engine thread: loads its instance of the program for queue `q`'s flows
/// and runs it until its count, the deadline or a stop.
fn live_worker(
    cfg: &GenConfig,
    q: &QueuePlan,
    frame: &[u8],
    ifindex: u32,
    deadline_ns: Option<u64>,
    stop: &AtomicBool,
) -> Result<LiveWorker, GenError> {
    use crate::loader::LiveGen;
    let mut live = LiveGen::load(xdp_common::GenConfig {
        flows: q.flows as u32,
        src_port: cfg.src_port,
        dst_port: cfg.dst_port,
        flow_base: q.flow_base as u32,
    })?;
    pin(q.core);
    let limit = q.count.unwrap_or(u64::MAX);
    let cpu0 = sys::thread_cpu_ns();
    let base = live.count()?;
    let (mut sent, mut calls, mut chunk) = (0u64, 0u64, 65536u64);
    while sent < limit && !stop.load(Relaxed) {
        let now = sys::monotonic_ns();
        if deadline_ns.is_some_and(|d| now >= d) {
            break;
        }
        let repeat = chunk.min(limit - sent).min(u32::MAX as u64) as u32;
        live.run(frame, ifindex, repeat, cfg.batch as u32)?;
        calls += 1;
        let now2 = sys::monotonic_ns();
        let got = live.count()? - base - sent;
        sent += got;
        // Size the next call from this one's rate, and never past the deadline.
        let rate = got as f64 * 1e9 / (now2 - now).max(1) as f64;
        let mut next = rate * LIVE_CALL_SECS;
        if let Some(d) = deadline_ns {
            next = next.min(rate * d.saturating_sub(now2) as f64 / 1e9);
        }
        chunk = (next as u64).clamp(1024, 1 << 26);
    }
    Ok(LiveWorker { sent, calls, cpu_ns: sys::thread_cpu_ns() - cpu0 })
}

/// The AF_XDP engine's frames for one queue: a [`Source`] on the pipeline's transmit
/// worker. It sends flows `flow_base ..` (its `templates` and `seqs` are indexed from
/// there).
struct XskGen {
    flow_base: u16,
    templates: Vec<FrameTemplate>,
    /// Per template: what its frames ask of the kernel or the device (TX metadata).
    requests: Vec<TxRequest>,
    pattern: Vec<usize>,
    nsizes: usize,
    seqs: Vec<u32>,
    sent_per_flow: Vec<u64>,
    limit: u64,
    sent: u64,
    target_pps: Option<f64>,
    start_ns: Option<u64>,
}

impl Source for XskGen {
    /// Its first flow and the frames sent per flow from there.
    type Summary = (u16, Vec<u64>);

    #[inline]
    fn on_tx(&mut self, batch: &mut TxBatch<'_>, now_ns: u64) -> SourceStep {
        let start_ns = *self.start_ns.get_or_insert(now_ns);
        let mut want = batch.remaining().min((self.limit - self.sent).min(usize::MAX as u64) as usize);
        if let Some(pps) = self.target_pps {
            let due = ((now_ns - start_ns) as f64 * pps / 1e9) as u64 + 1;
            let allowed = due.saturating_sub(self.sent) as usize;
            if allowed == 0 {
                return SourceStep::WaitUntil(start_ns + ((self.sent as f64 + 1.0) * 1e9 / pps) as u64);
            }
            want = want.min(allowed);
        }
        let nflows = self.seqs.len() as u64;
        let tx_ns = sys::monotonic_ns();
        for i in 0..want as u64 {
            let pkt = self.sent + i;
            let flow = (pkt % nflows) as usize;
            let size_idx = self.pattern[(pkt % self.pattern.len() as u64) as usize];
            let t = &self.templates[flow * self.nsizes + size_idx];
            let stamp = Stamp { flow: self.flow_base.wrapping_add(flow as u16), seq: self.seqs[flow], tx_ns };
            self.seqs[flow] = self.seqs[flow].wrapping_add(1);
            self.sent_per_flow[flow] += 1;
            // A frame past one UMEM frame's room goes out as a chain: the headers and the
            // stamp in its first segment, the rest of the template after.
            let req = &self.requests[flow * self.nsizes + size_idx];
            if !batch.push_frame_with(t.len(), req, |off, buf| {
                if off == 0 {
                    t.write_head(buf, &stamp);
                } else {
                    t.write_tail(off, buf);
                }
            }) {
                // Too few free descriptors left for this frame in this call: the next
                // call sends it (its sequence number is not spent).
                self.seqs[flow] = self.seqs[flow].wrapping_sub(1);
                self.sent_per_flow[flow] -= 1;
                self.sent += i;
                return SourceStep::Continue;
            }
        }
        self.sent += want as u64;
        if self.sent >= self.limit { SourceStep::Done } else { SourceStep::Continue }
    }

    fn finish(self) -> (u16, Vec<u64>) {
        (self.flow_base, self.sent_per_flow)
    }
}

/// The AF_XDP engine: one transmit worker per queue of the plan on the pipeline.
fn generate_xsk(
    cfg: &GenConfig,
    plan: &[QueuePlan],
    templates: &[FrameTemplate],
    pattern: &[usize],
    nsizes: usize,
    stop: Arc<AtomicBool>,
    counters: &WorkerCounters,
) -> Result<GenSummary, GenError> {
    let target_pps = cfg.rate.pps(cfg.sizes.mean());
    log::info!(
        "generating on {} queue(s) {:?}, {} -> {}{}, {} flow(s), sizes {:?}, rate {}",
        cfg.iface,
        cfg.queues.ids(),
        cfg.src_ip,
        cfg.dst_ip,
        if cfg.vlan.ids().is_empty() { String::new() } else { format!(" VLAN {}", cfg.vlan) },
        cfg.flows,
        cfg.sizes,
        target_pps.map_or("max".to_owned(), |p| format!("{p:.0} pps"))
    );
    let mut p = Pipeline::on(cfg.iface.clone())
        .queues(cfg.queues.clone())
        .batch(BatchSize::new(cfg.batch as u32)?)
        .allow_uplink(cfg.allow_uplink);
    if let Some(cores) = &cfg.cores {
        p = p.cores(cores.clone());
    }
    let mut pc = p.config().clone();
    pc.xsk = cfg.xsk;
    // Frames past one UMEM frame's room go out as chains of descriptors.
    let room = cfg.xsk.frame_size.get() as usize - 256;
    pc.xsk.sg = templates.iter().any(|t| t.len() > room);
    let features = sys::ifindex(&cfg.iface).and_then(|i| crate::netdev::xdp_features(i).ok());
    let offload = offload::plan(cfg.tx_offload, Engine::Xsk, features.as_ref(), cfg.xsk.bind)?;
    pc.xsk.tx_metadata = offload.any();
    let mut templates = templates.to_vec();
    let requests: Vec<TxRequest> = templates
        .iter_mut()
        .map(|t| TxRequest { checksum: offload.checksum.then(|| t.offload_checksum()), timestamp: offload.timestamp })
        .collect();
    let (templates, requests, pattern) = (Arc::new(templates), Arc::new(requests), pattern.to_vec());
    let plan_for_workers = plan.to_vec();
    let source = move |queue: u32| {
        // The pipeline asks for the queues of `cfg.queues`, each of which has a plan.
        let q = plan_for_workers.iter().find(|q| q.queue == queue).unwrap_or(&plan_for_workers[0]);
        let (lo, n) = (q.flow_base as usize * nsizes, q.flows as usize);
        XskGen {
            flow_base: q.flow_base,
            templates: templates[lo..lo + n * nsizes].to_vec(),
            requests: requests[lo..lo + n * nsizes].to_vec(),
            pattern: pattern.clone(),
            nsizes,
            seqs: vec![0; n],
            sent_per_flow: vec![0; n],
            limit: q.count.unwrap_or(u64::MAX),
            sent: 0,
            target_pps: q.target_pps,
            start_ns: None,
        }
    };
    let s = Pipeline::with_config(pc).source(source).run(&stop, cfg.duration)?;
    if let Some(why) = s.failed {
        return Err(GenError::Worker(why));
    }
    let t = s.totals();
    let mut snap = crate::stats::CounterSnapshot::default();
    let mut xdp_statistics = XdpStatistics::default();
    let mut per = Vec::with_capacity(plan.len());
    for p in plan {
        match s.queues.iter().find(|q| q.queue == p.queue) {
            Some(q) => {
                snap.add(&q.counters);
                xdp_statistics.add(&q.xdp_statistics);
                per.push((q.sent, q.completed, q.bytes));
            }
            None => per.push((0, 0, 0)),
        }
    }
    bump(&counters.tx_packets, snap.tx_packets);
    bump(&counters.tx_completed, snap.tx_completed);
    let mut sent_per_flow = vec![0u64; cfg.flows as usize];
    for (base, counts) in s.stages {
        for (i, n) in counts.into_iter().enumerate() {
            sent_per_flow[base as usize + i] = n;
        }
    }
    let tx_offload = TxOffloadReport::after(cfg.tx_offload, Engine::Xsk, &cfg.iface, offload, s.bind, t.stamps);
    Ok(GenSummary {
        queue: plan.first().map_or(0, |q| q.queue),
        wakeups: snap.wakeups,
        cpu_ns: snap.cpu_ns,
        batch_hist: snap.batch_hist,
        xdp_statistics,
        sent_per_flow,
        per_queue: per_queue(plan, &per, s.duration_s),
        ..GenSummary::totals(cfg, Engine::Xsk, (t.sent, t.completed, t.bytes), s.duration_s, tx_offload)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("1000".parse::<Rate>().unwrap(), Rate::Pps(1000.0));
        assert_eq!("1.5mpps".parse::<Rate>().unwrap(), Rate::Pps(1.5e6));
        assert_eq!("2gbit".parse::<Rate>().unwrap(), Rate::Bps(2e9));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert!("3furlongs".parse::<Rate>().is_err());
        assert_eq!(Rate::Bps(512e6).pps(64.0), Some(1e6));
    }

    #[test]
    fn sizes_parse_and_imix_mean() {
        assert_eq!("64".parse::<SizeSpec>().unwrap(), SizeSpec::Fixed(64));
        assert_eq!("IMIX".parse::<SizeSpec>().unwrap(), SizeSpec::Imix);
        assert!("61".parse::<SizeSpec>().unwrap_err().contains("at least 62"));
        assert!("x".parse::<SizeSpec>().is_err());
        let mean = SizeSpec::Imix.mean();
        assert!((mean - (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0).abs() < 1e-9);
        let (sizes, pattern) = SizeSpec::Imix.plan();
        let count = |i| pattern.iter().filter(|&&p| p == i).count();
        assert_eq!((count(0), count(1), count(2)), (7, 4, 1));
        assert_eq!(sizes, vec![64, 570, 1518]);
    }

    #[test]
    fn flows_split_into_contiguous_blocks_per_queue() {
        let plan = plan_flows(&[0, 1, 2], Some(&[4, 5, 6]), 8, (10000, 18000), Some(10), Some(3e5)).unwrap();
        let blocks: Vec<_> = plan.iter().map(|q| (q.queue, q.core, q.flow_base, q.flows)).collect();
        // 8 = 3 + 3 + 2: every flow on exactly one queue, in order.
        assert_eq!(blocks, vec![(0, Some(4), 0, 3), (1, Some(5), 3, 3), (2, Some(6), 6, 2)]);
        assert_eq!(plan[1].src_ports, (10003, 10005));
        assert_eq!(plan[2].dst_ports, (18006, 18007));
        // Counts and rates are totals, split evenly (the remainder to the first queues).
        assert_eq!(plan.iter().map(|q| q.count.unwrap()).collect::<Vec<_>>(), vec![4, 3, 3]);
        assert!(plan.iter().all(|q| q.target_pps == Some(1e5)));
        // One queue: the whole plan is the old single-queue generator.
        let one = plan_flows(&[3], None, 5, (1, 2), None, None).unwrap();
        assert_eq!((one[0].queue, one[0].core, one[0].flow_base, one[0].flows, one[0].count), (3, None, 0, 5, None));
    }

    #[test]
    fn destination_ports_wrap_within_the_steered_range() {
        // Flows 256.. reuse destination ports 18000..: a queue with flows 250-299 spans
        // the whole 256-port range only once it has 256 flows; 50 flows wrap at 18255.
        let plan = plan_flows(&[0, 1], None, 600, (10000, 18000), None, None).unwrap();
        assert_eq!((plan[0].flow_base, plan[0].flows, plan[0].dst_ports), (0, 300, (18000, 18255)));
        let plan = plan_flows(&[0, 1, 2, 3, 4, 5], None, 300, (10000, 18000), None, None).unwrap();
        assert_eq!((plan[5].flow_base, plan[5].dst_ports), (250, (18250, 18043)));
    }

    #[test]
    fn plans_that_cannot_work_are_refused() {
        let e = plan_flows(&[0, 1], None, 1, (1, 2), None, None).unwrap_err();
        assert!(matches!(e, GenError::FewFlows { flows: 1, queues: 2 }), "{e}");
        assert!(e.to_string().contains("--flows 2"), "{e}");
        let e = plan_flows(&[0, 1], Some(&[0]), 4, (1, 2), None, None).unwrap_err();
        assert!(e.to_string().contains("one core per queue"), "{e}");
        assert!(matches!(plan_flows(&[0], None, 0, (1, 2), None, None), Err(GenError::Flows)));
    }
}

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
    time::Duration,
};

use serde::Serialize;

use crate::{
    config::{BatchSize, CoreList, QueueList},
    pipeline::{Pipeline, Source, SourceStep, TxBatch},
    stats::{WorkerCounters, bump},
    sys::{self, XdpStatistics},
    wire::{
        stamp::Stamp,
        udpgen::{FCS_LEN, FrameTemplate, MIN_FRAME_LEN, UdpFlow, VlanTags},
    },
    xsk::{XskConfig, XskError},
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
        let n: usize =
            s.parse().map_err(|_| format!("packet size {s:?}: a number of bytes (64 to the MTU + 18) or imix"))?;
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
    /// TX queue the AF_XDP socket binds to (xsk engine; xdp-live uses none).
    pub queue: u32,
    /// Core to pin the sending thread to (None: xsk takes the first usable core, xdp-live
    /// stays unpinned).
    pub core: Option<u32>,
    /// Frame sizes to send, bytes with FCS.
    pub sizes: SizeSpec,
    /// Number of flows, 1 to 65535; each has its own ports and sequence numbers.
    pub flows: u16,
    /// Target rate.
    pub rate: Rate,
    /// Stop after this many frames (None: no limit).
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
    /// UDP source port of flow 0; flow i sends from `src_port + i` (wrapping).
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
    /// A frame size does not fit a UMEM frame.
    #[error(
        "packet size {size} B needs {need} bytes in a UMEM frame, more than the {have} a {frame} B frame holds; lower --size or raise --frame-size"
    )]
    TooBig {
        /// The frame size asked for, bytes with FCS.
        size: usize,
        /// Bytes it needs in a UMEM frame.
        need: usize,
        /// Bytes a UMEM frame holds after its 256 bytes of headroom.
        have: usize,
        /// UMEM frame size, bytes.
        frame: u32,
    },
    /// A frame size exceeds the interface's MTU (from /sys/class/net/IFACE/mtu).
    #[error("packet size {size} B exceeds the MTU of {iface} ({mtu} B, so at most {max} B per frame with FCS)")]
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
    /// The transmit worker panicked; its panic message.
    #[error("{0}")]
    Worker(String),
}

/// The results of one `xdpipe gen` run.
#[derive(Clone, Debug, Serialize)]
pub struct GenSummary {
    /// Interface transmitted on.
    pub iface: String,
    /// TX queue bound (0 with xdp-live, which binds none).
    pub queue: u32,
    /// The engine that transmitted.
    pub engine: Engine,
    /// Frame sizes sent, bytes with FCS.
    pub sizes: SizeSpec,
    /// Number of flows.
    pub flows: u16,
    /// Target packets per second (null: as fast as possible).
    pub target_pps: Option<f64>,
    /// Frames put on the TX ring.
    pub sent: u64,
    /// Frames the kernel reported transmitted (completion ring; with xdp-live, frames the
    /// program returned XDP_TX for, as the kernel gives no per-frame completion).
    pub completed: u64,
    /// Bytes of the frames sent, without FCS.
    pub bytes: u64,
    /// Seconds from the start of sending to its end.
    pub duration_s: f64,
    /// Frames sent per second over `duration_s`.
    pub pps: f64,
    /// Megabits sent per second over `duration_s`, frames with FCS.
    pub mbps: f64,
    /// xsk: syscalls made to wake the kernel (TX kicks); xdp-live: BPF_PROG_RUN calls.
    pub wakeups: u64,
    /// CPU time of the sending thread, ns.
    pub cpu_ns: u64,
    /// TX batches by size bucket ([`crate::stats::batch_bucket`]); all zero with
    /// xdp-live.
    pub batch_hist: [u64; crate::stats::BATCH_BUCKETS],
    /// The socket's XDP_STATISTICS at the end (all zero with xdp-live).
    pub xdp_statistics: XdpStatistics,
    /// Per flow: frames sent (its sequence numbers are 0..sent).
    pub sent_per_flow: Vec<u64>,
}

fn iface_mtu(iface: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu")).ok()?.trim().parse().ok()
}

/// Runs the generator: the xdp-live engine on the calling thread, the xsk engine on the
/// pipeline's transmit worker (`xdpipe-tx{queue}`); pinned to `cfg.core` if given.
pub fn generate(cfg: &GenConfig, stop: Arc<AtomicBool>, counters: &WorkerCounters) -> Result<GenSummary, GenError> {
    let (templates, pattern, nsizes) = prepare(cfg)?;
    match cfg.engine {
        Engine::Xsk => generate_xsk(cfg, &templates, &pattern, nsizes, stop, counters),
        Engine::XdpLive => generate_live(cfg, &templates, stop),
    }
}

/// Validates the config and builds the frame templates: `templates[flow * nsizes + i]`.
fn prepare(cfg: &GenConfig) -> Result<(Vec<FrameTemplate>, Vec<usize>, usize), GenError> {
    if !sys::is_root() {
        return Err(GenError::NotRoot);
    }
    if sys::ifindex(&cfg.iface).is_none() {
        return Err(GenError::NoSuchInterface(cfg.iface.clone()));
    }
    if cfg.flows == 0 {
        return Err(GenError::Flows);
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
    for &size in &sizes {
        let need = size - FCS_LEN;
        if need < shape.min_frame_len() {
            return Err(GenError::TooSmall { size, what: headers_name(&shape), min: shape.min_frame_len() + FCS_LEN });
        }
        if need > have {
            return Err(GenError::TooBig { size, need, have, frame });
        }
        // The kernel forwards frames of the MTU plus the Ethernet header, and 4 bytes more
        // for a VLAN tag (is_skb_forwardable).
        let vlan_allowance = if cfg.vlan.ids().is_empty() { 0 } else { 4 };
        if let Some(mtu) = iface_mtu(&cfg.iface)
            && need > mtu + 14 + vlan_allowance
        {
            return Err(GenError::AboveMtu { size, iface: cfg.iface.clone(), mtu, max: mtu + 18 });
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
            src_port: cfg.src_port.wrapping_add(f),
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
    Ok((templates, pattern, sizes.len()))
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

/// The in-kernel engine: the kernel transmits flow 0's template, stamped per packet by
/// `xdpipe_gen`, in runs of `repeat` frames; pacing sleeps between runs.
fn generate_live(cfg: &GenConfig, templates: &[FrameTemplate], stop: Arc<AtomicBool>) -> Result<GenSummary, GenError> {
    use crate::loader::LiveGen;
    let ifindex = sys::ifindex(&cfg.iface).ok_or_else(|| GenError::NoSuchInterface(cfg.iface.clone()))?;
    let mut live = LiveGen::load(xdp_common::GenConfig {
        flows: cfg.flows as u32,
        src_port: cfg.src_port,
        dst_port: cfg.dst_port,
    })?;
    pin(cfg.core);
    let frame = templates[0].bytes().to_vec();
    let target_pps = cfg.rate.pps(cfg.sizes.mean());
    log::info!(
        "ready: generating on {} with the in-kernel engine (BPF_PROG_RUN live frames), {} flow(s), {} B, rate {}",
        cfg.iface,
        cfg.flows,
        frame.len() + FCS_LEN,
        target_pps.map_or("max".to_owned(), |p| format!("{p:.0} pps"))
    );
    let limit = cfg.count.unwrap_or(u64::MAX);
    let start_ns = sys::monotonic_ns();
    let cpu0 = sys::thread_cpu_ns();
    let deadline_ns = cfg.duration.map(|d| start_ns + d.as_nanos() as u64);
    let base = live.count()?;
    let (mut sent, mut calls, mut chunk) = (0u64, 0u64, 65536u64);
    while sent < limit && !stop.load(Relaxed) {
        let now = sys::monotonic_ns();
        if deadline_ns.is_some_and(|d| now >= d) {
            break;
        }
        let repeat = chunk.min(limit - sent).min(u32::MAX as u64) as u32;
        live.run(&frame, ifindex, repeat, cfg.batch as u32)?;
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
    let secs = (sys::monotonic_ns() - start_ns) as f64 / 1e9;
    let bytes = sent * frame.len() as u64;
    let (pps, mbps) = crate::stats::rates(sent, bytes + sent * FCS_LEN as u64, secs);
    let flows = cfg.flows as u64;
    Ok(GenSummary {
        iface: cfg.iface.clone(),
        queue: 0,
        engine: Engine::XdpLive,
        sizes: cfg.sizes.clone(),
        flows: cfg.flows,
        target_pps,
        sent,
        completed: sent,
        bytes,
        duration_s: secs,
        pps,
        mbps,
        wakeups: calls,
        cpu_ns: sys::thread_cpu_ns() - cpu0,
        batch_hist: [0; crate::stats::BATCH_BUCKETS],
        xdp_statistics: XdpStatistics::default(),
        sent_per_flow: (0..flows).map(|f| sent / flows + u64::from(f < sent % flows)).collect(),
    })
}

/// The AF_XDP engine's frames: a [`Source`] on the pipeline's transmit worker.
struct XskGen {
    templates: Vec<FrameTemplate>,
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
    type Summary = Vec<u64>;

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
            let stamp = Stamp { flow: flow as u16, seq: self.seqs[flow], tx_ns };
            self.seqs[flow] = self.seqs[flow].wrapping_add(1);
            self.sent_per_flow[flow] += 1;
            batch.push(t.len(), |buf| {
                t.write(buf, &stamp);
            });
        }
        self.sent += want as u64;
        if self.sent >= self.limit { SourceStep::Done } else { SourceStep::Continue }
    }

    fn finish(self) -> Vec<u64> {
        self.sent_per_flow
    }
}

/// The AF_XDP engine: one transmit worker on the pipeline.
fn generate_xsk(
    cfg: &GenConfig,
    templates: &[FrameTemplate],
    pattern: &[usize],
    nsizes: usize,
    stop: Arc<AtomicBool>,
    counters: &WorkerCounters,
) -> Result<GenSummary, GenError> {
    let target_pps = cfg.rate.pps(cfg.sizes.mean());
    log::info!(
        "generating on {} queue {}, {} -> {}{}, {} flow(s), sizes {:?}, rate {}",
        cfg.iface,
        cfg.queue,
        cfg.src_ip,
        cfg.dst_ip,
        if cfg.vlan.ids().is_empty() { String::new() } else { format!(" VLAN {}", cfg.vlan) },
        cfg.flows,
        cfg.sizes,
        target_pps.map_or("max".to_owned(), |p| format!("{p:.0} pps"))
    );
    let mut p = Pipeline::on(cfg.iface.clone())
        .queues(QueueList::from_ids([cfg.queue])?)
        .batch(BatchSize::new(cfg.batch as u32)?)
        .allow_uplink(cfg.allow_uplink);
    if let Some(core) = cfg.core {
        p = p.cores(CoreList::from_ids([core])?);
    }
    let mut pc = p.config().clone();
    pc.xsk = cfg.xsk;
    let (templates, pattern) = (templates.to_vec(), pattern.to_vec());
    let (flows, limit) = (cfg.flows as usize, cfg.count.unwrap_or(u64::MAX));
    let source = move |_queue| XskGen {
        templates: templates.clone(),
        pattern: pattern.clone(),
        nsizes,
        seqs: vec![0; flows],
        sent_per_flow: vec![0; flows],
        limit,
        sent: 0,
        target_pps,
        start_ns: None,
    };
    let s = Pipeline::with_config(pc).source(source).run(&stop, cfg.duration)?;
    if let Some(why) = s.failed {
        return Err(GenError::Worker(why));
    }
    let t = s.totals();
    let q = s.queues.first().cloned();
    let snap = q.as_ref().map(|q| q.counters).unwrap_or_default();
    bump(&counters.tx_packets, snap.tx_packets);
    bump(&counters.tx_completed, snap.tx_completed);
    let (pps, mbps) = crate::stats::rates(t.sent, t.bytes + t.sent * FCS_LEN as u64, s.duration_s);
    Ok(GenSummary {
        iface: cfg.iface.clone(),
        queue: cfg.queue,
        engine: Engine::Xsk,
        sizes: cfg.sizes.clone(),
        flows: cfg.flows,
        target_pps,
        sent: t.sent,
        completed: t.completed,
        bytes: t.bytes,
        duration_s: s.duration_s,
        pps,
        mbps,
        wakeups: snap.wakeups,
        cpu_ns: snap.cpu_ns,
        batch_hist: snap.batch_hist,
        xdp_statistics: q.map(|q| q.xdp_statistics).unwrap_or_default(),
        sent_per_flow: s.stages.into_iter().next().unwrap_or_default(),
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
}

//! `xdpipe gen`: flags, their validation into a `GenConfig`, the summary line.
use std::{net::IpAddr, process::ExitCode, time::Duration};

use clap::Args;
use xdpipe::{
    config::{BatchSize, CoreList, Engine, FrameSize, QueueList, RingSize},
    generator::{
        DEFAULT_DST_IPV4, DEFAULT_DST_IPV6, DEFAULT_SRC_IPV4, DEFAULT_SRC_IPV6, GenConfig, Rate, SizeSpec, TxOffload,
        generate,
    },
    stats::fmt_pps,
    wire::{
        stamp::STAMP_LEN,
        udpgen::{FCS_LEN, VlanTags, headers_len},
    },
    xsk::XskConfig,
};

use super::{
    CliError, print_json, refuse,
    values::{BindArg, EngineArg, OnOff},
};

/// Bytes of a UMEM frame the generator keeps for headroom: a frame of `frame_size` holds
/// at most `frame_size - GEN_HEADROOM` bytes of packet (without FCS).
pub const GEN_HEADROOM: u32 = 256;

/// The largest frame (with FCS) a UMEM frame of `frame` bytes holds.
pub fn max_frame_len(frame: FrameSize) -> usize {
    (frame.get() - GEN_HEADROOM) as usize + FCS_LEN
}

/// The largest frame (with FCS) the AF_XDP engine sends: a 9000 B MTU jumbo frame plus
/// the Ethernet header and FCS. Frames past one UMEM frame's room go out as multi-buffer
/// frames (several descriptors, XDP_USE_SG); the interface's MTU still bounds them.
pub const MAX_GEN_SIZE: usize = 9018;

#[derive(Args, Clone, Debug)]
pub struct GenArgs {
    /// Interface to transmit on.
    #[arg(long, short = 'i')]
    pub iface: String,
    /// TX queues, one worker each (0, 0-3, 0,2): the flows are split across them and the
    /// plan (flow -> queue, ports) is logged at the start.
    #[arg(long = "queues", visible_alias = "queue", short = 'q', default_value = "0")]
    pub queues: QueueList,
    /// Cores to pin the workers to, one per queue in queue order (default: unpinned).
    #[arg(long = "cores", visible_alias = "core", short = 'c')]
    pub cores: Option<CoreList>,
    /// Frame size in bytes including the 4-byte FCS (64 to MTU + 18), or imix (7:4:1 of
    /// 64/570/1518). Default: 64, or the smallest frame the headers allow if larger (82
    /// with --ipv6, 86 with --ipv6 and two VLAN tags).
    #[arg(long, short = 's')]
    pub size: Option<SizeSpec>,
    /// Number of flows (source and destination ports vary per flow).
    #[arg(long, default_value_t = 1)]
    pub flows: u16,
    /// Target rate, in total over the queues (each sends rate / queues): max, packets
    /// (500000, 300kpps, 1.5mpps) or bits (200mbit, 1gbit) per second.
    #[arg(long, short = 'r', default_value = "max")]
    pub rate: Rate,
    /// Stop after this many frames in total (split evenly over the queues).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop after this many seconds (default 10 when no --count is given).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Destination MAC (the receiver's; default broadcast).
    #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
    pub dst_mac: String,
    /// Source MAC (default: the interface's).
    #[arg(long)]
    pub src_mac: Option<String>,
    /// Source IP address (default 198.18.0.1, or 2001:2:0:1::1 with --ipv6: the
    /// benchmarking ranges of RFC 2544 and RFC 5180).
    #[arg(long)]
    pub src_ip: Option<IpAddr>,
    /// Destination IP address (default 198.19.0.1, or 2001:2:0:2::1 with --ipv6).
    #[arg(long)]
    pub dst_ip: Option<IpAddr>,
    /// Send IPv6/UDP frames (IPv6 --src-ip/--dst-ip imply it).
    #[arg(long)]
    pub ipv6: bool,
    /// Tag every frame: one 802.1Q tag (ID), or QinQ (OUTER,INNER: an 802.1ad tag, TPID
    /// 0x88a8, outside an 802.1Q one). IDs 1 to 4094.
    #[arg(long, value_name = "ID[,ID]")]
    pub vlan: Option<VlanTags>,
    /// First source port (flow i uses this + i).
    #[arg(long, default_value_t = 10000)]
    pub src_port: u16,
    /// The receiver, when it is on this machine (a cabled port pair, a guest): read its RSS
    /// key and indirection table and pick each flow's source port (the first of
    /// --src-port + i + k * flows) so that flow i reaches its i-th RX queue, round robin.
    /// Needs a Toeplitz hash over addresses and ports (`ethtool -N IFACE rx-flow-hash udp4
    /// sdfn`). Without it the ports are sequential and the receiver's hash spreads them as
    /// it happens to.
    #[arg(long, value_name = "IFACE")]
    pub rss_of: Option<String>,
    /// First destination port (flow i uses this + i mod 256); the default is the start of
    /// the range xdpipe run steers.
    #[arg(long, default_value_t = xdp_common::BENCH_UDP_PORT_LO)]
    pub dst_port: u16,
    /// TX engine: xsk (AF_XDP TX ring) or xdp-live (the kernel transmits from an XDP
    /// program run with BPF_PROG_RUN live frames; the receiving veth needs an XDP program
    /// or GRO on).
    #[arg(long, value_enum, default_value_t = EngineArg::Xsk)]
    pub engine: EngineArg,
    /// Descriptors per ring operation.
    #[arg(long, default_value = "64")]
    pub batch: BatchSize,
    /// UMEM frame size in bytes (2048 or 4096).
    #[arg(long, default_value = "4096")]
    pub frame_size: FrameSize,
    /// TX ring size (a power of two, 64 to 32768).
    #[arg(long, default_value = "2048")]
    pub tx_ring: RingSize,
    /// Copy mode: TX frames one kick sends (32 to the TX ring size; 0 keeps the kernel's
    /// 32). Needs Linux 6.17 (XDP_MAX_TX_SKB_BUDGET); older kernels keep 32.
    #[arg(long, default_value_t = 256)]
    pub tx_budget: u32,
    /// Completion ring size (a power of two, 64 to 32768).
    #[arg(long, default_value = "2048")]
    pub comp_ring: RingSize,
    /// How the socket binds (zero-copy needs driver support; veth is copy only).
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    pub bind: BindArg,
    /// Use the need_wakeup protocol (on) or wake the kernel unconditionally (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub need_wakeup: OnOff,
    /// AF_XDP TX metadata: auto (ask the device for what its xsk-features list), software
    /// (no metadata: xdpipe computes checksums, no TX timestamps), or checksum and/or
    /// timestamp (checksum,timestamp): ask for them, from the driver in zero-copy mode or
    /// from the kernel's copy path; refused where neither honours them.
    #[arg(long, default_value = "auto", value_name = "auto|software|checksum|timestamp|checksum,timestamp")]
    pub tx_offload: TxOffload,
    /// Send even though the interface carries the default route or this SSH session.
    #[arg(long = "i-know-this-is-my-uplink")]
    pub allow_uplink: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A validated `xdpipe gen`.
#[derive(Debug)]
pub struct GenCommand {
    pub config: GenConfig,
    pub json: bool,
}

fn parse_mac(flag: &str, s: &str) -> Result<[u8; 6], CliError> {
    xdpipe::testbed::parse_mac(s)
        .ok_or_else(|| CliError(format!("{flag} {s:?}: write a MAC as six hex bytes, e.g. 02:00:00:00:00:01")))
}

/// The frame size: `size` if given, else 64 B or the smallest frame of these headers.
/// A given size must hold the headers and the stamp.
pub(crate) fn frame_size(size: Option<&SizeSpec>, ipv6: bool, vlan: VlanTags) -> Result<SizeSpec, CliError> {
    let min = headers_len(ipv6, vlan) + STAMP_LEN + FCS_LEN;
    let what = || {
        let tags = match vlan.ids().len() {
            0 => String::new(),
            1 => " with a VLAN tag".to_owned(),
            _ => " with two VLAN tags".to_owned(),
        };
        format!("{}/UDP{tags}", if ipv6 { "IPv6" } else { "IPv4" })
    };
    match size {
        None => Ok(SizeSpec::Fixed(min.max(64))),
        Some(SizeSpec::Fixed(n)) if *n < min => {
            refuse!(
                "--size {n}: frames of {} need at least {min} B with FCS (headers and the 16-byte stamp); give --size {min} or more",
                what()
            )
        }
        Some(SizeSpec::Imix) if min > 64 => refuse!(
            "--size imix: its 64 B frames cannot hold the headers of {} and the stamp ({min} B with FCS); give a fixed --size of {min} or more",
            what()
        ),
        Some(s) => Ok(s.clone()),
    }
}

/// The generator's source and destination addresses: the given ones, else the
/// benchmarking defaults of the family (IPv6 if --ipv6 or either address is IPv6).
pub(crate) fn addresses(src: Option<IpAddr>, dst: Option<IpAddr>, ipv6: bool) -> Result<(IpAddr, IpAddr), CliError> {
    let v6 = ipv6 || src.is_some_and(|a| a.is_ipv6()) || dst.is_some_and(|a| a.is_ipv6());
    let (dsrc, ddst): (IpAddr, IpAddr) = if v6 {
        (DEFAULT_SRC_IPV6.into(), DEFAULT_DST_IPV6.into())
    } else {
        (DEFAULT_SRC_IPV4.into(), DEFAULT_DST_IPV4.into())
    };
    let (s, d) = (src.unwrap_or(dsrc), dst.unwrap_or(ddst));
    for (flag, a) in [("--src-ip", s), ("--dst-ip", d)] {
        if a.is_ipv6() != v6 {
            refuse!(
                "{flag} {a}: an IPv4 address for IPv6 frames (--ipv6, or the other address is IPv6); give both addresses of one family"
            );
        }
    }
    Ok((s, d))
}

/// The generator's checks between size, frame size, engine, rate and headers (shared
/// with `xdpipe veth`, which hands the same flags to its generator).
pub(crate) fn check_gen(
    size: &SizeSpec,
    frame: FrameSize,
    engine: Engine,
    rate: Rate,
    ipv6: bool,
    vlan: VlanTags,
) -> Result<(), CliError> {
    if engine == Engine::XdpLive && (ipv6 || !vlan.ids().is_empty()) {
        let flag = if ipv6 { "--ipv6".to_owned() } else { format!("--vlan {vlan}") };
        refuse!(
            "{flag} with --engine xdp-live: its in-kernel program stamps untagged IPv4 frames at fixed offsets; use --engine xsk (the default) for IPv6 or VLAN-tagged frames"
        );
    }
    let max = max_frame_len(frame);
    let largest = match size {
        SizeSpec::Fixed(n) => *n,
        SizeSpec::Imix => 1518,
    };
    if engine == Engine::XdpLive && largest > max {
        refuse!(
            "--size {largest} with --engine xdp-live: its frames must fit one {} B UMEM frame (--frame-size), up to {max} B with FCS; lower --size, raise --frame-size, or use --engine xsk (multi-buffer up to {MAX_GEN_SIZE} B)",
            frame.get()
        );
    }
    if largest > MAX_GEN_SIZE {
        refuse!(
            "--size {largest}: the generator sends frames up to {MAX_GEN_SIZE} B with FCS (a 9000 B MTU jumbo frame); lower --size"
        );
    }
    if engine == Engine::XdpLive && *size == SizeSpec::Imix {
        refuse!(
            "--size imix: the xdp-live engine sends one frame size per run; give one size, or use --engine xsk for imix"
        );
    }
    if engine == Engine::XdpLive && rate != Rate::Max {
        refuse!(
            "--rate with --engine xdp-live: that engine sends at full speed only (the kernel transmits each \
             BPF_PROG_RUN call's frames back to back, about 25 ms of setup per call, so it cannot pace); \
             use --rate max, or --engine xsk for a target rate"
        );
    }
    Ok(())
}

impl GenArgs {
    /// Every check between flags; what needs the device (MTU, MAC, whether it exists) is
    /// left to `xdpipe::generator::generate`.
    pub fn validate(&self) -> Result<GenCommand, CliError> {
        let duration = match (self.duration, self.count) {
            (Some(d), _) => Some(super::duration("--duration", d)?),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        if self.flows == 0 {
            refuse!("--flows 0: give 1 to 65535 flows");
        }
        if self.count == Some(0) {
            refuse!("--count 0: give at least one frame, or leave --count out to run for --duration");
        }
        let engine = Engine::from(self.engine);
        let (src_ip, dst_ip) = addresses(self.src_ip, self.dst_ip, self.ipv6)?;
        let vlan = self.vlan.unwrap_or_default();
        let size = frame_size(self.size.as_ref(), src_ip.is_ipv6(), vlan)?;
        check_gen(&size, self.frame_size, engine, self.rate, src_ip.is_ipv6(), vlan)?;
        let nq = self.queues.ids().len();
        if (self.flows as usize) < nq {
            refuse!(
                "--flows {} with --queues {} ({nq} queues): each queue sends flows of its own; give --flows {nq} or more, or fewer queues",
                self.flows,
                list(self.queues.ids())
            );
        }
        if let Some(c) = &self.cores
            && c.ids().len() != nq
        {
            refuse!(
                "--cores {} lists {} core(s) for {nq} queue(s) (--queues {}): give one core per queue, in queue order, or leave --cores out",
                list(c.ids()),
                c.ids().len(),
                list(self.queues.ids())
            );
        }
        let config = GenConfig {
            iface: self.iface.clone(),
            queues: self.queues.clone(),
            cores: self.cores.clone(),
            sizes: size,
            flows: self.flows,
            rate: self.rate,
            count: self.count,
            duration,
            src_mac: self.src_mac.as_deref().map(|m| parse_mac("--src-mac", m)).transpose()?,
            dst_mac: parse_mac("--dst-mac", &self.dst_mac)?,
            src_ip,
            dst_ip,
            vlan,
            src_port: self.src_port,
            dst_port: self.dst_port,
            batch: self.batch.get(),
            xsk: XskConfig {
                frame_size: self.frame_size,
                frames: self.tx_ring.get() + self.comp_ring.get(),
                fill_size: RingSize::new(64)?,
                comp_size: self.comp_ring,
                rx_size: None,
                tx_size: Some(self.tx_ring),
                bind: self.bind.into(),
                need_wakeup: self.need_wakeup.on(),
                tx_budget: super::run::tx_budget(self.tx_budget, self.tx_ring)?,
                sg: false,
                tx_metadata: false,
            },
            engine,
            allow_uplink: self.allow_uplink,
            tx_offload: self.tx_offload,
            rss_of: self.rss_of.clone(),
        };
        Ok(GenCommand { config, json: self.json })
    }
}

/// Ids as a flag value: `0,1,3`.
fn list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

pub fn cmd_gen(c: GenCommand) -> anyhow::Result<ExitCode> {
    let stop = super::stop_on_signals()?;
    let counters = xdpipe::stats::WorkerCounters::default();
    let s = generate(&c.config, stop, &counters)?;
    if c.json {
        print_json(&s)?;
    } else {
        let queues: Vec<u32> = s.per_queue.iter().map(|q| q.plan.queue).collect();
        println!(
            "gen on {} queue(s) {}: sent {} completed {} in {:.2} s = {} ({:.1} Mbit/s), {} wakeups",
            s.iface,
            list(&queues),
            s.sent,
            s.completed,
            s.duration_s,
            fmt_pps(s.pps),
            s.mbps,
            s.wakeups
        );
        if s.per_queue.len() > 1 {
            for q in &s.per_queue {
                println!(
                    "  queue {}: flows {}-{}, sent {} = {} ({:.1} Mbit/s)",
                    q.plan.queue,
                    q.plan.flow_base,
                    q.plan.flow_base + (q.plan.flows - 1),
                    q.sent,
                    fmt_pps(q.pps),
                    q.mbps
                );
            }
        }
        println!("  {}", describe_tx_offload(&s.tx_offload));
    }
    Ok(ExitCode::SUCCESS)
}

/// `TX checksums: ...; TX completion timestamps: ... (why)`, with the timestamps' counts
/// and submit-to-completion times where some were taken.
pub fn describe_tx_offload(t: &xdpipe::generator::TxOffloadReport) -> String {
    let st = &t.stamps;
    let stamps = if st.requested == 0 {
        String::new()
    } else {
        let lat = st.latency_mean_ns().map_or(String::new(), |m| {
            format!(
                ", submit to completion mean {:.1} us, min {:.1}, max {:.1}",
                m / 1e3,
                st.latency_min_ns as f64 / 1e3,
                st.latency_max_ns as f64 / 1e3
            )
        });
        format!(" ({} of {} completed frames stamped{lat})", st.stamped, st.requested)
    };
    format!("TX checksums: {}; TX completion timestamps: {}{stamps} ({})", t.checksum, t.tx_timestamps, t.why)
}

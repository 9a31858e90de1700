//! `xdpipe veth`: flags, their validation into a `VethConfig` (the receiver's and the
//! generator's typed configs, made by the same flag parser as `xdpipe run` and `gen`, so
//! their defaults and checks are those commands' own), the report.
use std::process::ExitCode;

use clap::Args;
use xdpipe::{
    config::{BatchSize, CoreList, Engine, FrameSize, ModeKind, PollWait, XdpMode},
    generator::GenConfig,
    generator::{Rate, SizeSpec},
    run::RunConfig,
    stats::fmt_pps,
    testbed::{RX_IFACE, RX_IP, RX_IP6, TX_IFACE, TX_IP, TX_IP6},
    veth::{VethConfig, run_veth},
    wire::udpgen::VlanTags,
};

use super::{
    CliError, print_json, refuse,
    values::{EngineArg, ModeArg, OnOff, XdpModeArg},
};

#[derive(Args, Clone, Debug)]
pub struct VethArgs {
    /// Receiver mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Rxdrop)]
    pub mode: ModeArg,
    /// XDP mode of the receiver.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Native)]
    pub xdp_mode: XdpModeArg,
    /// Frame size with FCS, or imix (default: 64, or the smallest frame the headers allow
    /// if larger, as with `xdpipe gen`).
    #[arg(long, short = 's')]
    pub size: Option<SizeSpec>,
    /// MTU of both veth ends, 68 to 9000 (default: 1500, or 9000 when --size is past
    /// 1518, a jumbo testbed). Frames past one 4096 B UMEM frame travel as multi-buffer
    /// frames (XDP_USE_SG, an `xdp.frags` program).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// The generator sends IPv6/UDP (between the testbed's 2001:2:0:77::2 and ::1).
    #[arg(long)]
    pub ipv6: bool,
    /// The generator tags every frame: one 802.1Q tag (ID) or QinQ (OUTER,INNER), IDs 1
    /// to 4094. The receiver's XDP program sees the tags in both XDP modes (veth does no
    /// VLAN offload on receive).
    #[arg(long, value_name = "ID[,ID]")]
    pub vlan: Option<VlanTags>,
    /// Generator rate (max, 500kpps, 1gbit...).
    #[arg(long, short = 'r', default_value = "max")]
    pub rate: Rate,
    /// Seconds the generator sends for.
    #[arg(long, short = 'd', default_value_t = 5.0)]
    pub duration: f64,
    /// Send this many frames instead of running for --duration.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Number of flows (default: one per queue).
    #[arg(long)]
    pub flows: Option<u16>,
    /// Queues on each veth end: N generator workers (TX queues 0..N, the flows split
    /// across them) and N receiver workers (RX queues 0..N). TX queue i arrives on RX
    /// queue i.
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Cores for the generator's workers, one per queue (default: 0 with one queue, else
    /// 0..N, shared with the receiver's workers).
    #[arg(long = "gen-cores", visible_alias = "gen-core")]
    pub gen_cores: Option<CoreList>,
    /// Cores for the receiver's workers, one per queue (default: 1 with one queue, else
    /// 0..N, shared with the generator's workers).
    #[arg(long = "rx-cores", visible_alias = "rx-core")]
    pub rx_cores: Option<CoreList>,
    /// The receiver's worker sleeps until frames arrive instead of busy-polling; with MS,
    /// for at most MS milliseconds. 0: busy-poll.
    #[arg(long, value_name = "MS", num_args = 0..=1, default_missing_value = "forever", default_value = "0")]
    pub poll: PollWait,
    /// The receiver uses the need_wakeup protocol (on) or wakes the kernel unconditionally (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub need_wakeup: OnOff,
    /// Descriptors per ring operation, for both sides.
    #[arg(long, default_value = "64")]
    pub batch: BatchSize,
    /// Run the receiving veth's NAPI in its own kernel thread (/sys/class/net/xp-rx/threaded)
    /// instead of the sender's softirq; needs --xdp-mode native (a veth has a NAPI only
    /// with XDP or GRO).
    #[arg(long)]
    pub threaded_napi: bool,
    /// With --threaded-napi: pin the NAPI thread to this core (default: the scheduler's
    /// choice). Do not busy-poll a worker on the same core: use --poll there.
    #[arg(long, requires = "threaded_napi")]
    pub napi_core: Option<u32>,
    /// Generator engine: xsk (AF_XDP TX) or xdp-live (in-kernel, BPF_PROG_RUN live frames).
    #[arg(long, value_enum, default_value_t = EngineArg::Xsk)]
    pub engine: EngineArg,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// The receiving device: veth (the pair itself), bridge (through a Linux bridge, to
    /// the veth behind it), macvlan (bridge mode, on the veth), vxlan (a tunnel over the
    /// veth), tap (written through /dev/net/tun as QEMU does).
    #[arg(long, default_value = "veth")]
    pub device: DeviceArg,
    /// Who receives: xsk (AF_XDP behind xdpipe's XDP program) or kernel-udp (no XDP
    /// program: a kernel UDP socket read with recvmmsg by one thread on the first
    /// --rx-cores core; one flow).
    #[arg(long, default_value = "xsk", value_parser = ["xsk", "kernel-udp"])]
    pub receiver: String,
    /// With --receiver kernel-udp: the path's offloads (GRO, GSO/TSO, scatter-gather,
    /// checksum) as the devices have them (on) or turned off for the run (off; restored
    /// after, and the kernel then verifies every UDP checksum).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub offloads: OnOff,
    /// The receiver asks the driver for each frame's XDP RX metadata (as `xdpipe run
    /// --rx-metadata`): the report then counts RX hashes and timestamps.
    #[arg(long)]
    pub rx_metadata: bool,
}

/// A validated `xdpipe veth`: the library's config and what the report line names.
#[derive(Debug)]
pub struct VethCommand {
    pub config: VethConfig,
    pub mode: ModeKind,
    pub xdp_mode: XdpMode,
    pub json: bool,
    /// `--receiver kernel-udp`: (its core, offloads off).
    pub kernel_udp: Option<(u32, bool)>,
}

impl VethArgs {
    pub fn validate(&self) -> Result<VethCommand, CliError> {
        let (mode, xdp_mode, engine) =
            (ModeKind::from(self.mode), XdpMode::from(self.xdp_mode), Engine::from(self.engine));
        super::duration("--duration", self.duration)?;
        if !(1..=64).contains(&self.queues) {
            refuse!("--queues {}: a veth testbed has 1 to 64 queues", self.queues);
        }
        let nq = self.queues;
        let flows = self.flows.unwrap_or(nq.min(u16::MAX as u32) as u16);
        if flows == 0 {
            refuse!("--flows 0: give 1 to 65535 flows");
        }
        if (flows as u32) < nq {
            refuse!(
                "--flows {flows} with --queues {nq}: each generator queue sends flows of its own; give --flows {nq} or more"
            );
        }
        // With several queues both sides default to cores 0..N: on a small machine the
        // generator's and the receiver's workers then share cores (each pipeline pins one
        // worker per core; the two pipelines may overlap).
        let default_cores = |single: u32| -> Result<CoreList, CliError> {
            let ids: Vec<u32> = if nq == 1 { vec![single] } else { (0..nq).collect() };
            Ok(CoreList::from_ids(ids)?)
        };
        let gen_cores = match &self.gen_cores {
            Some(c) => c.clone(),
            None => default_cores(0)?,
        };
        let rx_cores = match &self.rx_cores {
            Some(c) => c.clone(),
            None => default_cores(1)?,
        };
        for (flag, c) in [("--gen-cores", &gen_cores), ("--rx-cores", &rx_cores)] {
            if c.ids().len() != nq as usize {
                refuse!(
                    "{flag} {} lists {} core(s) for --queues {nq}: give one core per queue, e.g. {flag} {}",
                    join(c.ids()),
                    c.ids().len(),
                    join(&(0..nq).collect::<Vec<_>>())
                );
            }
        }
        if self.count == Some(0) {
            refuse!("--count 0: give at least one frame, or leave --count out to run for --duration");
        }
        if self.threaded_napi && xdp_mode != XdpMode::Native {
            refuse!(
                "--threaded-napi with --xdp-mode {xdp_mode}: the receiving veth has a NAPI to move only with a native XDP program; use --xdp-mode native"
            );
        }
        // The generator runs with its default 4096 B UMEM frames.
        let vlan = self.vlan.unwrap_or_default();
        let size = super::generator::frame_size(self.size.as_ref(), self.ipv6, vlan)?;
        super::generator::check_gen(&size, FrameSize::new(4096)?, engine, self.rate, self.ipv6, vlan)?;
        let largest = match size {
            SizeSpec::Fixed(n) => n,
            SizeSpec::Imix => 1518,
        };
        let mtu = veth_mtu(self.mtu, largest, vlan)?;
        let one_frame = super::generator::max_frame_len(FrameSize::new(4096)?);
        if mode == ModeKind::Fwd && largest > one_frame {
            refuse!(
                "--mode fwd with --size {largest}: frames past {one_frame} B arrive as multi-buffer frames, which fwd cannot pass to another port yet (they are counted unsendable); use --mode l2fwd (sends them back out of xp-rx) or --size {one_frame} or less"
            );
        }
        let size = match size {
            SizeSpec::Fixed(n) => n.to_string(),
            SizeSpec::Imix => "imix".into(),
        };
        let rate = match self.rate {
            Rate::Max => "max".to_owned(),
            Rate::Pps(p) => format!("{p}"),
            Rate::Bps(b) => format!("{}kbit", b / 1e3),
        };
        let mut gen_args: Vec<String> = vec![
            "--size".into(),
            size,
            "--rate".into(),
            rate,
            "--flows".into(),
            flows.to_string(),
            "--queues".into(),
            format!("0-{}", nq - 1),
            "--cores".into(),
            join(gen_cores.ids()),
            "--batch".into(),
            self.batch.get().to_string(),
            "--engine".into(),
            engine.to_string(),
        ];
        if self.ipv6 {
            gen_args.push("--ipv6".into());
        }
        if !vlan.ids().is_empty() {
            gen_args.extend(["--vlan".into(), vlan.to_string()]);
        }
        match self.count {
            Some(n) => gen_args.extend(["--count".into(), n.to_string()]),
            None => gen_args.extend(["--duration".into(), self.duration.to_string()]),
        }
        let mut run_args: Vec<String> = vec![
            "--mode".into(),
            mode.to_string(),
            "--xdp-mode".into(),
            xdp_mode.to_string(),
            "--queues".into(),
            format!("0-{}", nq - 1),
            "--cores".into(),
            join(rx_cores.ids()),
            "--poll".into(),
            self.poll.to_string(),
            "--need-wakeup".into(),
            if self.need_wakeup.on() { "on" } else { "off" }.into(),
            "--batch".into(),
            self.batch.get().to_string(),
        ];
        if self.rx_metadata {
            run_args.push("--rx-metadata".into());
        }
        let (rx, gen_cfg) = side_configs(&run_args, &gen_args)?;
        let config = VethConfig {
            rx,
            gen_cfg,
            queues: nq,
            fwd: mode == ModeKind::Fwd,
            threaded_napi: self.threaded_napi,
            napi_core: self.napi_core,
            ports: None,
            mtu,
            device: self.device.0,
            // Frames injected by XDP_TX into a veth vanish unless its peer runs XDP in native
            // mode or has GRO on (skb mode receivers get GRO).
            gro: engine == Engine::XdpLive && xdp_mode == XdpMode::Skb,
        };
        let kernel_udp = self.receiver == "kernel-udp";
        if kernel_udp && flows != 1 {
            refuse!(
                "--receiver kernel-udp with --flows {flows}: the kernel socket listens on one port; give --flows 1"
            );
        }
        if !kernel_udp && !self.offloads.on() {
            refuse!("--offloads off: only with --receiver kernel-udp (AF_XDP runs before the stack's offloads)");
        }
        let kernel_udp = kernel_udp.then(|| (rx_cores.ids()[0], !self.offloads.on()));
        Ok(VethCommand { config, mode, xdp_mode, json: self.json, kernel_udp })
    }
}

/// The testbed's MTU for `--mtu` and frames of up to `largest` B with FCS: None keeps
/// the veth default (1500); past 1518 B without `--mtu`, 9000.
pub(crate) fn veth_mtu(mtu: Option<u32>, largest: usize, vlan: VlanTags) -> Result<Option<u32>, CliError> {
    // The kernel forwards the MTU plus the Ethernet header, and 4 bytes more for a tag.
    let allowance = 18 + if vlan.ids().is_empty() { 0 } else { 4 };
    match mtu {
        Some(m) if !(68..=9000).contains(&m) => {
            refuse!("--mtu {m}: a veth testbed's MTU is 68 (the IPv4 minimum) to 9000 (jumbo frames)")
        }
        Some(m) if largest > m as usize + allowance => refuse!(
            "--size {largest} with --mtu {m}: frames with FCS are at most the MTU + {allowance} B ({} B); raise --mtu to {} or lower --size",
            m as usize + allowance,
            largest - allowance
        ),
        Some(m) => Ok(Some(m)),
        None if largest > 1500 + allowance => Ok(Some(9000)),
        None => Ok(None),
    }
}

/// Ids as a flag value: `0,1,3`.
fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The receiver's and the generator's configs from `xdpipe run` / `xdpipe gen` flags
/// (without the interfaces, addresses and MAC, which the testbed sets), through those
/// commands' own parser and validation.
pub fn side_configs(run_args: &[String], gen_args: &[String]) -> Result<(RunConfig, GenConfig), CliError> {
    use clap::Parser as _;
    let parse = |argv: Vec<String>| {
        super::Cli::try_parse_from(argv).map(|c| c.cmd).map_err(|e| CliError(format!("{}", e.render())))
    };
    let mut r: Vec<String> = ["xdpipe", "run", "-i", RX_IFACE].map(String::from).to_vec();
    r.extend(run_args.iter().cloned());
    if run_args.windows(2).any(|w| w[0] == "--mode" && w[1] == "fwd") {
        r.extend(["--out-iface".into(), xdpipe::testbed::FWD_IFACE.into()]);
    }
    let (src, dst) = if gen_args.iter().any(|a| a == "--ipv6") { (TX_IP6, RX_IP6) } else { (TX_IP, RX_IP) };
    let mut g: Vec<String> =
        ["xdpipe", "gen", "-i", TX_IFACE, "--dst-mac", "02:00:00:00:00:00", "--src-ip", src, "--dst-ip", dst]
            .map(String::from)
            .to_vec();
    g.extend(gen_args.iter().cloned());
    let (super::Cmd::Run(r), super::Cmd::Gen(g)) = (parse(r)?, parse(g)?) else {
        unreachable!("parsed as run and gen");
    };
    Ok((r.validate()?.config, g.validate()?.config))
}

pub fn cmd_veth(c: VethCommand) -> anyhow::Result<ExitCode> {
    let stop = super::stop_on_signals()?;
    if let Some((core, off)) = c.kernel_udp {
        let d = c.config.device;
        let t = xdpipe::kbase::udp_trial(d, &c.config.gen_cfg, Some(core), off, stop)?;
        if c.json {
            print_json(&t)?;
        } else {
            println!(
                "{} testbed, kernel UDP socket (offloads {}): sent {} received {} lost {}; generator {}   receiver {}",
                d.name(),
                if off { "off" } else { "on" },
                t.sent,
                t.received,
                t.sent as i64 - t.received as i64,
                fmt_pps(t.tx_pps),
                fmt_pps(t.rx_pps)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = run_veth(&c.config, stop)?;
    if c.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} testbed ({} XDP, mode {:?}{}): sent {} received {} lost {} ({:.4}%)",
        c.config.device.name(),
        c.xdp_mode,
        c.mode,
        if c.config.threaded_napi { ", threaded NAPI" } else { "" },
        r.sent,
        r.received,
        r.lost,
        r.loss_ratio * 100.0
    );
    println!("  generator {}   receiver {}", fmt_pps(r.tx_pps), fmt_pps(r.rx_pps));
    if r.generator.per_queue.len() > 1 || r.receiver.queues.len() > 1 {
        for g in &r.generator.per_queue {
            let rx = r.receiver.queues.iter().find(|q| q.queue == g.plan.queue);
            println!(
                "  queue {}: sent {} ({}, flows {}-{})   received {} ({})",
                g.plan.queue,
                g.sent,
                fmt_pps(g.pps),
                g.plan.flow_base,
                g.plan.flow_base + (g.plan.flows - 1),
                rx.map_or(0, |q| q.counters.rx_packets),
                fmt_pps(rx.map_or(0.0, |q| q.rx_pps)),
            );
        }
    }
    if let Some(l) = r.loss.as_ref().filter(|_| r.lost != 0) {
        println!(
            "  lost: {} dropped by {TX} at transmit (its peer's receive ring full: the receive softirq, on the sender's core, fell behind), {} at the receiver's sockets (RX ring full or no fill frame: the worker fell behind), {} otherwise (the program passed {} frames of any sender, ARP and ND included, to the kernel)",
            l.tx_dropped,
            l.socket_dropped,
            r.lost - (l.tx_dropped + l.socket_dropped) as i64,
            l.passed_to_kernel,
            TX = xdpipe::testbed::TX_IFACE,
        );
    }
    if let (Some(sink), Some(fwd)) = (&r.sink, &r.receiver.fwd) {
        println!(
            "  fwd: {} UMEM, forwarded out of {} at {}, sink received {}",
            fwd.umem,
            fwd.out_iface,
            fmt_pps(r.fwd_tx_pps.unwrap_or(0.0)),
            fmt_pps(sink.active_rx_pps)
        );
    }
    if let Some(l) = &r.latency_ns {
        let us = |ns: f64| ns / 1e3;
        println!(
            "  one-way latency (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            us(l.p50 as f64),
            us(l.p90 as f64),
            us(l.p99 as f64),
            us(l.p999 as f64),
            us(l.max as f64)
        );
        println!("    clock: {}", xdpipe::accounting::LATENCY_CLOCK);
    }
    if let Some(m) = r.receiver.accounting.as_ref().and_then(|a| a.rx_metadata.as_ref()) {
        println!(
            "  XDP RX metadata: {} frames, {} with an RX hash ({} changed within a flow, {} of a flow's hash on another queue), {} with a device RX timestamp ({} not on CLOCK_MONOTONIC, {} answered 0: none), {} with a VLAN tag",
            m.frames,
            m.hashes,
            m.hash_changed_in_flow,
            m.hash_on_other_queue,
            m.timestamps,
            m.timestamps_other_clock,
            m.timestamps_zero,
            m.vlan_tags
        );
        match &m.device_latency_ns {
            Some(l) => println!(
                "  device latency (us, sender to device RX): p50 {:.1}  p99 {:.1}  max {:.1}\n    clock: {}",
                l.p50 as f64 / 1e3,
                l.p99 as f64 / 1e3,
                l.max as f64 / 1e3,
                m.device_latency_clock
            ),
            None => println!("  device latency: none (no device RX timestamp on CLOCK_MONOTONIC)"),
        }
    }
    let t = &r.generator.tx_offload;
    println!("  {}", super::generator::describe_tx_offload(t));
    Ok(ExitCode::SUCCESS)
}

/// `--device`: a host device of [`xdpipe::topology`].
#[derive(Clone, Copy, Debug)]
pub struct DeviceArg(pub xdpipe::topology::Device);

impl std::str::FromStr for DeviceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        xdpipe::topology::Device::from_name(s).map(DeviceArg).ok_or_else(|| {
            format!("device {s:?}: use veth, bridge, macvlan, vxlan, tap, ipvlan-l2, ipvlan-l3, geneve, netkit, ovs, kubevirt-ovs, kubevirt-veth, kubevirt-bridge or kubevirt-tap")
        })
    }
}

//! The `xdpipe` command line: parses flags, validates them into configs, runs, prints.
//! Nothing below this file prints to stdout.
#![deny(unsafe_code)]

mod bench_cmd;

use std::{
    io::Write as _,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use xdpipe::{
    config::{BatchSize, BindMode, CoreList, FrameSize, PollWait, QueueList, RingSize, SteerFilter, XdpMode},
    generator::Engine,
    modes::ModeKind,
    run::{DEFAULT_IDLE_BACKOFF_NS, EndReason, RunConfig, RunSummary, Tick},
    stats::{fmt_pps, rates},
    xsk::XskConfig,
};

#[derive(Parser)]
#[command(name = "xdpipe", version, about = "AF_XDP packet pipeline and benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Steer traffic of an interface's RX queues into AF_XDP sockets and process it.
    Run(RunArgs),
    /// Transmit stamped UDP/IPv4 frames from an AF_XDP socket.
    Gen(GenArgs),
    /// Build a veth testbed, run gen in one namespace and run in the other, report
    /// sent / received / lost / latency, remove the testbed.
    Veth(VethArgs),
    /// Benchmark a scenario matrix (max rate, RFC 2544 zero-loss rate, latency) and store
    /// the run under bench/runs/.
    Bench(bench_cmd::BenchArgs),
    /// Compare stored runs in one HTML page and a markdown summary.
    Report(bench_cmd::ReportArgs),
    /// Create or destroy a veth testbed (two namespaces joined by a veth pair).
    Testbed {
        #[command(subcommand)]
        action: TestbedAction,
    },
    /// Remove what an earlier xdpipe left behind (after SIGKILL): testbed namespaces whose
    /// owner process is gone (--all: every xdpipe testbed, kept ones included).
    Cleanup {
        #[arg(long)]
        all: bool,
    },
    /// Print a device's XDP feature flags as its driver declares them (netlink netdev
    /// family): native XDP, redirect target, AF_XDP zero-copy, multi-buffer.
    Features {
        #[arg(long, short = 'i')]
        iface: String,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TestbedAction {
    /// Create namespaces xdpipe-NAME-rx (xp-rx, 10.77.0.1) and xdpipe-NAME-tx (xp-tx, 10.77.0.2).
    Create {
        #[arg(long, default_value = "demo")]
        name: String,
        /// RX/TX queues on each veth end.
        #[arg(long, default_value_t = 1)]
        queues: u32,
    },
    /// Remove the testbed's namespaces (and the veth pair with them).
    Destroy {
        #[arg(long, default_value = "demo")]
        name: String,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Interface to attach to.
    #[arg(long, short = 'i')]
    iface: String,
    /// RX queues, one worker each: 0, 0-3, 0,2.
    #[arg(long, short = 'q', default_value = "0")]
    queues: QueueList,
    /// Cores to pin the workers to, one per queue in queue order (default: queue i on the
    /// i-th usable core).
    #[arg(long, short = 'c')]
    cores: Option<CoreList>,
    /// Where the XDP program runs.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,
    /// How the sockets bind (zero-copy needs driver support; veth is copy only).
    #[arg(long, value_enum, default_value_t = BindMode::Auto)]
    bind: BindMode,
    /// Use the need_wakeup protocol (on) or wake the kernel unconditionally (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    need_wakeup: OnOff,
    /// Instead of busy-polling an empty RX ring, sleep until frames arrive (epoll); with
    /// MS, wake up after at most MS milliseconds as well. 0: busy-poll.
    #[arg(long, value_name = "MS", num_args = 0..=1, default_missing_value = "forever", default_value = "0")]
    poll: PollWait,
    /// Busy-polling: after finding the RX ring empty, wait NS nanoseconds before looking
    /// again (spinning, no syscall), so frames gather into batches and the ring's
    /// producer index is not pulled from the kernel's core on every frame. 0: look again
    /// at once.
    #[arg(long, value_name = "NS", default_value_t = DEFAULT_IDLE_BACKOFF_NS, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    idle_backoff: u64,
    /// UMEM frame size in bytes (2048 or 4096).
    #[arg(long, default_value = "4096")]
    frame_size: FrameSize,
    /// Frames in each queue's UMEM (default: the fill ring's size for rxdrop and parse,
    /// enough to fill every ring for the modes that transmit).
    #[arg(long)]
    frames: Option<u32>,
    #[arg(long, default_value = "2048")]
    rx_ring: RingSize,
    #[arg(long, default_value = "2048")]
    tx_ring: RingSize,
    /// Copy mode: TX frames one kick sends (32 to the TX ring size; 0 keeps the kernel's
    /// 32). Needs Linux 6.17 (XDP_MAX_TX_SKB_BUDGET); older kernels keep 32.
    #[arg(long, default_value_t = 256)]
    tx_budget: u32,
    #[arg(long, default_value = "4096")]
    fill_ring: RingSize,
    #[arg(long, default_value = "2048")]
    comp_ring: RingSize,
    /// Descriptors per ring operation.
    #[arg(long, default_value = "64")]
    batch: BatchSize,
    /// Stop after this many seconds (default: run until Ctrl-C / SIGTERM).
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// What the workers do with frames.
    #[arg(long, value_enum, default_value_t = ModeKind::Rxdrop)]
    mode: ModeKind,
    /// Frames to steer to userspace: bench (UDP to xdpipe's ports, the default), all,
    /// udp, tcp, ip-proto:N, ethertype:0xNNNN, udp-dport:LO-HI.
    #[arg(long, default_value = "bench")]
    filter: SteerFilter,
    /// Mode fwd: the interface frames leave by.
    #[arg(long)]
    out_iface: Option<String>,
    /// Detach another XDP program found on the interface (netlink-attached) instead of
    /// refusing to run.
    #[arg(long)]
    force: bool,
    /// Run even though the interface carries the default route or this SSH session.
    #[arg(long = "i-know-this-is-my-uplink")]
    allow_uplink: bool,
    /// Read xdpipe gen's stamps: loss, reordering, one-way latency (costs a parse per
    /// frame; off by default for rxdrop, which then never reads frame data).
    #[arg(long)]
    stamps: bool,
    /// Print per-queue rates every second.
    #[arg(long)]
    per_queue: bool,
    /// Print the summary as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenArgs {
    /// Interface to transmit on.
    #[arg(long, short = 'i')]
    iface: String,
    /// TX queue.
    #[arg(long, short = 'q', default_value_t = 0)]
    queue: u32,
    /// Core to pin the generator to.
    #[arg(long, short = 'c')]
    core: Option<u32>,
    /// Frame size in bytes including the 4-byte FCS (64 to MTU + 18), or imix (7:4:1 of
    /// 64/570/1518).
    #[arg(long, short = 's', default_value = "64")]
    size: xdpipe::generator::SizeSpec,
    /// Number of flows (source and destination ports vary per flow).
    #[arg(long, default_value_t = 1)]
    flows: u16,
    /// Target rate: max, packets (500000, 300kpps, 1.5mpps) or bits (200mbit, 1gbit) per second.
    #[arg(long, short = 'r', default_value = "max")]
    rate: xdpipe::generator::Rate,
    /// Stop after this many frames.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Stop after this many seconds (default 10 when no --count is given).
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Destination MAC (the receiver's; default broadcast).
    #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
    dst_mac: String,
    /// Source MAC (default: the interface's).
    #[arg(long)]
    src_mac: Option<String>,
    #[arg(long)]
    src_ip: std::net::Ipv4Addr,
    #[arg(long)]
    dst_ip: std::net::Ipv4Addr,
    /// First source port (flow i uses this + i).
    #[arg(long, default_value_t = 10000)]
    src_port: u16,
    /// First destination port (flow i uses this + i mod 256); the default is the start of
    /// the range xdpipe run steers.
    #[arg(long, default_value_t = xdp_common::BENCH_UDP_PORT_LO)]
    dst_port: u16,
    /// TX engine: xsk (AF_XDP TX ring) or xdp-live (the kernel transmits from an XDP
    /// program run with BPF_PROG_RUN live frames; the receiving veth needs an XDP program
    /// or GRO on).
    #[arg(long, value_enum, default_value_t = Engine::Xsk)]
    engine: Engine,
    #[arg(long, default_value = "64")]
    batch: BatchSize,
    #[arg(long, default_value = "4096")]
    frame_size: FrameSize,
    #[arg(long, default_value = "2048")]
    tx_ring: RingSize,
    /// Copy mode: TX frames one kick sends (32 to the TX ring size; 0 keeps the kernel's
    /// 32). Needs Linux 6.17 (XDP_MAX_TX_SKB_BUDGET); older kernels keep 32.
    #[arg(long, default_value_t = 256)]
    tx_budget: u32,
    #[arg(long, default_value = "2048")]
    comp_ring: RingSize,
    #[arg(long, value_enum, default_value_t = BindMode::Auto)]
    bind: BindMode,
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    need_wakeup: OnOff,
    /// Send even though the interface carries the default route or this SSH session.
    #[arg(long = "i-know-this-is-my-uplink")]
    allow_uplink: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VethArgs {
    /// Receiver mode.
    #[arg(long, value_enum, default_value_t = ModeKind::Rxdrop)]
    mode: ModeKind,
    /// XDP mode of the receiver.
    #[arg(long, value_enum, default_value_t = XdpMode::Native)]
    xdp_mode: XdpMode,
    /// Frame size with FCS, or imix.
    #[arg(long, short = 's', default_value = "64")]
    size: String,
    /// Generator rate (max, 500kpps, 1gbit...).
    #[arg(long, short = 'r', default_value = "max")]
    rate: String,
    #[arg(long, short = 'd', default_value_t = 5.0)]
    duration: f64,
    /// Send this many frames instead of running for --duration.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    #[arg(long, default_value_t = 1)]
    flows: u16,
    /// Core for the generator.
    #[arg(long, default_value_t = 0)]
    gen_core: u32,
    /// Core for the receiver's worker.
    #[arg(long, default_value_t = 1)]
    rx_core: u32,
    /// The receiver's worker sleeps until frames arrive instead of busy-polling; with MS,
    /// for at most MS milliseconds. 0: busy-poll.
    #[arg(long, value_name = "MS", num_args = 0..=1, default_missing_value = "forever", default_value = "0")]
    poll: PollWait,
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    need_wakeup: OnOff,
    #[arg(long, default_value = "64")]
    batch: BatchSize,
    /// Run the receiving veth's NAPI in its own kernel thread (/sys/class/net/xp-rx/threaded)
    /// instead of the sender's softirq; needs --xdp-mode native (a veth has a NAPI only
    /// with XDP or GRO).
    #[arg(long)]
    threaded_napi: bool,
    /// With --threaded-napi: pin the NAPI thread to this core (default: the scheduler's
    /// choice). Do not busy-poll a worker on the same core: use --poll there.
    #[arg(long, requires = "threaded_napi")]
    napi_core: Option<u32>,
    /// Generator engine: xsk (AF_XDP TX) or xdp-live (in-kernel, BPF_PROG_RUN live frames).
    #[arg(long, value_enum, default_value_t = Engine::Xsk)]
    engine: Engine,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

impl RunArgs {
    fn to_config(&self) -> anyhow::Result<RunConfig> {
        let frames = match self.frames {
            Some(0) => anyhow::bail!("--frames 0: a UMEM needs at least one frame"),
            Some(n) => n,
            // Receive-only modes keep exactly the fill ring's worth of frames in
            // circulation: frames then come back to the slot they left (see
            // `Xsk::fill_produce`) and the fill ring can never overflow. Modes that
            // transmit hold frames on the TX and completion rings too.
            None => match self.mode {
                ModeKind::Rxdrop | ModeKind::Parse => self.fill_ring.get(),
                ModeKind::L2fwd | ModeKind::Fwd => {
                    self.fill_ring.get() + self.rx_ring.get() + self.tx_ring.get() + self.comp_ring.get()
                }
            },
        };
        let duration = match self.duration {
            Some(d) if !(d > 0.0 && d < 1e7) => {
                anyhow::bail!("--duration {d}: must be a positive number of seconds")
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
            None => None,
        };
        Ok(RunConfig {
            iface: self.iface.clone(),
            queues: self.queues.clone(),
            cores: self.cores.clone(),
            xdp_mode: self.xdp_mode,
            xsk: XskConfig {
                frame_size: self.frame_size,
                frames,
                fill_size: self.fill_ring,
                comp_size: self.comp_ring,
                rx_size: Some(self.rx_ring),
                // rxdrop and parse never transmit: no TX ring (in copy mode a wakeup of a
                // socket with one runs a TX pass in the kernel).
                tx_size: match self.mode {
                    ModeKind::Rxdrop | ModeKind::Parse => None,
                    ModeKind::L2fwd | ModeKind::Fwd => Some(self.tx_ring),
                },
                bind: self.bind,
                need_wakeup: self.need_wakeup == OnOff::On,
                tx_budget: check_tx_budget(self.tx_budget, self.tx_ring)?,
            },
            batch: self.batch,
            poll: self.poll,
            idle_backoff_ns: self.idle_backoff,
            duration,
            mode: self.mode,
            filter: self.filter,
            stamps: self.stamps,
            out_iface: self.out_iface.clone(),
            force: self.force,
            allow_uplink: self.allow_uplink,
        })
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp(None).init();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => cmd_run(&args),
        Cmd::Gen(args) => cmd_gen(&args),
        Cmd::Veth(args) => cmd_veth(&args),
        Cmd::Bench(args) => stop_on_signals().and_then(|stop| bench_cmd::cmd_bench(&args, stop)),
        Cmd::Report(args) => bench_cmd::cmd_report(&args),
        Cmd::Testbed { action } => cmd_testbed(action),
        Cmd::Cleanup { all } => cmd_cleanup(all),
        Cmd::Features { iface, json } => cmd_features(&iface, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdpipe: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn cmd_features(iface: &str, json: bool) -> anyhow::Result<ExitCode> {
    let ifindex = xdpipe::sys::ifindex(iface).ok_or_else(|| {
        anyhow::anyhow!("no interface named {iface:?} in this network namespace; list them with `ip link`")
    })?;
    let f = xdpipe::netdev::xdp_features(ifindex).with_context(|| format!("reading the XDP features of {iface}"))?;
    if json {
        println!("{}", serde_json::to_string(&f)?);
    } else {
        println!("{iface}: {}", f.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--tx-budget`: 0 (the kernel's default) or 32 ..= the TX ring size, the range the
/// kernel accepts.
fn check_tx_budget(budget: u32, tx_ring: RingSize) -> anyhow::Result<u32> {
    if budget != 0 && !(32..=tx_ring.get()).contains(&budget) {
        anyhow::bail!(
            "--tx-budget {budget}: out of range; use 32 to {} (the TX ring size, --tx-ring) or 0 for the kernel's default of 32",
            tx_ring.get()
        );
    }
    Ok(budget)
}

/// SIGINT and SIGTERM set the returned flag; a second one exits at once (the kernel still
/// detaches our link when the process ends).
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    Ok(stop)
}

fn cmd_run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.to_config()?;
    let stop = stop_on_signals()?;
    let per_queue = args.per_queue;
    let mut on_tick = |t: &Tick| print_tick(t, per_queue);
    let summary = xdpipe::run::run(&cfg, stop, &mut on_tick)?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        print_summary(&summary);
    }
    Ok(match summary.end {
        EndReason::WorkerFailed(ref why) => {
            eprintln!("xdpipe: error: {why}");
            ExitCode::from(3)
        }
        EndReason::InterfaceGone(ref why) => {
            eprintln!("xdpipe: error: {why}; the run ended early (summary above)");
            ExitCode::from(4)
        }
        _ => ExitCode::SUCCESS,
    })
}

fn parse_mac(what: &str, s: &str) -> anyhow::Result<[u8; 6]> {
    xdpipe::testbed::parse_mac(s)
        .ok_or_else(|| anyhow::anyhow!("{what} {s:?}: write a MAC as six hex bytes, e.g. 02:00:00:00:00:01"))
}

fn cmd_gen(a: &GenArgs) -> anyhow::Result<ExitCode> {
    use xdpipe::generator::{GenConfig, generate};
    let duration = match (a.duration, a.count) {
        (Some(d), _) if !(d > 0.0 && d < 1e7) => anyhow::bail!("--duration {d}: must be a positive number of seconds"),
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let cfg = GenConfig {
        iface: a.iface.clone(),
        queue: a.queue,
        core: a.core,
        sizes: a.size.clone(),
        flows: a.flows,
        rate: a.rate,
        count: a.count,
        duration,
        src_mac: a.src_mac.as_deref().map(|m| parse_mac("--src-mac", m)).transpose()?,
        dst_mac: parse_mac("--dst-mac", &a.dst_mac)?,
        src_ip: a.src_ip.octets(),
        dst_ip: a.dst_ip.octets(),
        src_port: a.src_port,
        dst_port: a.dst_port,
        batch: a.batch.get(),
        xsk: XskConfig {
            frame_size: a.frame_size,
            frames: a.tx_ring.get() + a.comp_ring.get(),
            fill_size: RingSize::new(64)?,
            comp_size: a.comp_ring,
            rx_size: None,
            tx_size: Some(a.tx_ring),
            bind: a.bind,
            need_wakeup: a.need_wakeup == OnOff::On,
            tx_budget: check_tx_budget(a.tx_budget, a.tx_ring)?,
        },
        engine: a.engine,
        allow_uplink: a.allow_uplink,
    };
    let stop = stop_on_signals()?;
    let counters = xdpipe::stats::WorkerCounters::default();
    let s = generate(&cfg, stop, &counters)?;
    if a.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &s)?;
        writeln!(out)?;
    } else {
        println!(
            "gen on {} queue {}: sent {} completed {} in {:.2} s = {} ({:.1} Mbit/s), {} wakeups",
            s.iface,
            s.queue,
            s.sent,
            s.completed,
            s.duration_s,
            fmt_pps(s.pps),
            s.mbps,
            s.wakeups
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_veth(a: &VethArgs) -> anyhow::Result<ExitCode> {
    use xdpipe::veth::{VethConfig, run_veth};
    let mode = serde_json::to_string(&a.mode)?.trim_matches('"').to_owned();
    let xdp_mode = match a.xdp_mode {
        XdpMode::Skb => "skb",
        XdpMode::Native => "native",
        XdpMode::Auto => "auto",
    };
    let mut gen_args: Vec<String> = vec![
        "--size".into(),
        a.size.clone(),
        "--rate".into(),
        a.rate.clone(),
        "--flows".into(),
        a.flows.to_string(),
        "--core".into(),
        a.gen_core.to_string(),
        "--batch".into(),
        a.batch.get().to_string(),
        "--engine".into(),
        if a.engine == Engine::XdpLive { "xdp-live".into() } else { "xsk".into() },
    ];
    match a.count {
        Some(n) => gen_args.extend(["--count".into(), n.to_string()]),
        None => gen_args.extend(["--duration".into(), a.duration.to_string()]),
    }
    let wake = if a.need_wakeup == OnOff::On { "on" } else { "off" };
    let run_args: Vec<String> = vec![
        "--mode".into(),
        mode,
        "--xdp-mode".into(),
        xdp_mode.into(),
        "--cores".into(),
        a.rx_core.to_string(),
        "--poll".into(),
        a.poll.to_string(),
        "--need-wakeup".into(),
        wake.into(),
        "--batch".into(),
        a.batch.get().to_string(),
    ];
    let cfg = VethConfig {
        run_args,
        gen_args,
        queues: 1,
        fwd: a.mode == ModeKind::Fwd,
        threaded_napi: a.threaded_napi,
        napi_core: a.napi_core,
        ports: None,
        quiet: false,
        // Frames injected by XDP_TX into a veth vanish unless its peer runs XDP in native
        // mode or has GRO on (skb mode receivers get GRO).
        gro: a.engine == Engine::XdpLive && a.xdp_mode == XdpMode::Skb,
    };
    let stop = stop_on_signals()?;
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    let r = run_veth(&cfg, &exe, stop)?;
    if a.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
    } else {
        println!(
            "veth testbed ({} XDP, mode {:?}{}): sent {} received {} lost {} ({:.4}%)",
            xdp_mode,
            a.mode,
            if a.threaded_napi { ", threaded NAPI" } else { "" },
            r.sent,
            r.received,
            r.lost,
            r.loss_ratio * 100.0
        );
        println!("  generator {}   receiver {}", fmt_pps(r.tx_pps), fmt_pps(r.rx_pps));
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
        if let Some(sink) = &r.sink {
            println!(
                "  fwd: {} UMEM, forwarded out of {} at {}, sink received {}",
                r.receiver["fwd"]["umem"].as_str().unwrap_or("?"),
                r.receiver["fwd"]["out_iface"].as_str().unwrap_or("?"),
                fmt_pps(r.fwd_tx_pps.unwrap_or(0.0)),
                fmt_pps(sink["active_rx_pps"].as_f64().unwrap_or(0.0))
            );
        }
        let l = &r.latency_ns;
        if l.is_object() {
            let us = |k: &str| l[k].as_f64().unwrap_or(0.0) / 1e3;
            println!(
                "  one-way latency (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                us("p50"),
                us("p90"),
                us("p99"),
                us("p999"),
                us("max")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_testbed(action: TestbedAction) -> anyhow::Result<ExitCode> {
    use xdpipe::testbed::{RX_IFACE, RX_IP, TX_IFACE, TX_IP, Testbed, delete_namespace, fmt_mac};
    match action {
        TestbedAction::Create { name, queues } => {
            let tb = Testbed::create(&name, queues)?;
            println!(
                "testbed {name}: {} {RX_IFACE} {RX_IP} {} <-> {} {TX_IFACE} {TX_IP} {}, {queues} queue(s)",
                tb.rx_ns,
                fmt_mac(&tb.rx_mac),
                tb.tx_ns,
                fmt_mac(&tb.tx_mac)
            );
            tb.keep();
        }
        TestbedAction::Destroy { name } => {
            xdpipe::testbed::forget_owner(&name);
            let mut found = false;
            for ns in [format!("xdpipe-{name}-rx"), format!("xdpipe-{name}-tx")] {
                if std::path::Path::new("/run/netns").join(&ns).exists() {
                    delete_namespace(&ns)?;
                    found = true;
                }
            }
            if !found {
                anyhow::bail!(
                    "no testbed named {name:?} (no namespace xdpipe-{name}-rx or -tx); `ip netns` lists them"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_cleanup(all: bool) -> anyhow::Result<ExitCode> {
    use xdpipe::testbed::{delete_namespace, forget_owner, is_orphan, testbed_of, xdpipe_namespaces};
    let mut removed = 0;
    for ns in xdpipe_namespaces() {
        if ns.starts_with("xdpipe-vm-") {
            removed += cleanup_guest(&ns, all)?;
            continue;
        }
        let name = testbed_of(&ns).unwrap_or(&ns).to_owned();
        if !all && !is_orphan(&name) {
            eprintln!(
                "cleanup: keeping {ns} (its owner is running, or it was created with `xdpipe testbed create`; --all removes it)"
            );
            continue;
        }
        delete_namespace(&ns)?;
        forget_owner(&name);
        eprintln!("cleanup: removed namespace {ns}");
        removed += 1;
    }
    if removed == 0 {
        eprintln!(
            "cleanup: no leftovers removed. XDP programs need no cleanup: xdpipe attaches them through \
             BPF links, which the kernel detaches when the owning process ends, even by SIGKILL"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A QEMU guest of scripts/vm/guest.sh: its namespace holds QEMU and the taps. Orphaned
/// when the process that started it (recorded in /run/xdpipe/vms/NS) is gone: QEMU is
/// killed and the namespace removed. Returns 1 if it removed it.
fn cleanup_guest(ns: &str, all: bool) -> anyhow::Result<usize> {
    let record = format!("/run/xdpipe/vms/{ns}");
    let owner = std::fs::read_to_string(&record).ok();
    let owner_alive = owner
        .as_deref()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    if owner_alive && !all {
        eprintln!("cleanup: keeping guest namespace {ns} (the process that started it is running; --all removes it)");
        return Ok(0);
    }
    for pid in xdpipe::net::ns::pids(ns)? {
        xdpipe::sys::send_signal(pid, libc::SIGKILL);
        eprintln!("cleanup: killed QEMU (pid {pid}) of guest namespace {ns}");
    }
    xdpipe::testbed::delete_namespace(ns)?;
    let _ = std::fs::remove_file(&record);
    eprintln!("cleanup: removed guest namespace {ns}");
    Ok(1)
}

fn print_tick(t: &Tick, per_queue: bool) {
    let secs = t.interval.as_secs_f64();
    let (p, b, tx) = t.per_queue.iter().fold((0, 0, 0), |a, q| (a.0 + q.1, a.1 + q.2, a.2 + q.3));
    let (pps, mbps) = rates(p, b, secs);
    let mut line = format!("{:>6.1}s  rx {:>12}  {:>9.1} Mbit/s", t.elapsed.as_secs_f64(), fmt_pps(pps), mbps);
    if tx > 0 {
        line += &format!("  tx {:>12}", fmt_pps(tx as f64 / secs));
    }
    eprintln!("{line}");
    if per_queue {
        for &(q, p, b, _) in &t.per_queue {
            let (pps, mbps) = rates(p, b, secs);
            eprintln!("         q{q:<3} rx {:>12}  {:>9.1} Mbit/s", fmt_pps(pps), mbps);
        }
    }
}

fn print_summary(s: &RunSummary) {
    println!(
        "{} on {} ({:?} XDP, {:?} bind, filter {}): {} packets, {} bytes in {:.2} s = {} ({:.1} Mbit/s)",
        serde_json::to_string(&s.mode).unwrap_or_default().trim_matches('"'),
        s.iface,
        s.xdp_mode,
        s.bind,
        s.filter,
        s.rx_packets,
        s.rx_bytes,
        s.duration_s,
        fmt_pps(s.rx_pps),
        s.rx_mbps
    );
    for q in &s.queues {
        let st = &q.xdp_statistics;
        println!(
            "  queue {} (core {}): rx {} ({}), program seen {} redirected {} passed {}, \
             ring full {}, fill empty {}, dropped {}, wakeups {}",
            q.queue,
            q.core,
            q.counters.rx_packets,
            fmt_pps(q.rx_pps),
            q.program.seen,
            q.program.redirected,
            q.program.passed,
            st.rx_ring_full,
            st.rx_fill_ring_empty_descs,
            st.rx_dropped,
            q.counters.wakeups
        );
    }
}

//! `xdpipe run`: flags, their validation into a `RunConfig`, the progress lines and the
//! summary.
use std::process::ExitCode;

use clap::Args;
use xdpipe::{
    config::{
        BatchSize, BusyPollKnobs, BusyPollSettings, Coalesce, CoreList, FrameSize, ModeKind, PollWait, QueueList,
        RingSize, SteerFilter,
    },
    run::{DEFAULT_IDLE_BACKOFF_NS, EndReason, RunConfig, RunSummary, Tick},
    stats::{fmt_pps, rates},
    xsk::XskConfig,
};

use super::{
    CliError, print_json, refuse,
    values::{BindArg, ModeArg, OnOff, XdpModeArg},
};

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Interface to attach to.
    #[arg(long, short = 'i')]
    pub iface: String,
    /// RX queues, one worker each: 0, 0-3, 0,2.
    #[arg(long, short = 'q', default_value = "0")]
    pub queues: QueueList,
    /// Cores to pin the workers to, one per queue in queue order (default: queue i on the
    /// i-th usable core).
    #[arg(long, short = 'c')]
    pub cores: Option<CoreList>,
    /// Where the XDP program runs.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// How the sockets bind (zero-copy needs driver support; veth is copy only).
    #[arg(long, value_enum, default_value_t = BindArg::Auto)]
    pub bind: BindArg,
    /// Use the need_wakeup protocol (on) or wake the kernel unconditionally (off).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub need_wakeup: OnOff,
    /// Instead of busy-polling an empty RX ring, sleep until frames arrive (epoll); with
    /// MS, wake up after at most MS milliseconds as well. 0: busy-poll.
    /// `busy-poll`: kernel busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL and
    /// SO_BUSY_POLL_BUDGET on the sockets; napi_defer_hard_irqs and gro_flush_timeout on the
    /// device's NAPIs, restored at the end); the worker runs NAPI with a recvfrom per batch.
    #[arg(long, value_name = "MS", num_args = 0..=1, default_missing_value = "forever", default_value = "0")]
    pub poll: PollWait,
    /// --poll busy-poll: SO_BUSY_POLL, us one recvfrom polls NAPI (default 20).
    #[arg(long, value_name = "US")]
    pub busy_poll_usecs: Option<u32>,
    /// --poll busy-poll: SO_BUSY_POLL_BUDGET, frames per busy poll (default: --batch).
    #[arg(long, value_name = "FRAMES")]
    pub busy_poll_budget: Option<u32>,
    /// --poll busy-poll: napi_defer_hard_irqs set on the device's NAPIs (default 2).
    #[arg(long, value_name = "N")]
    pub defer_hard_irqs: Option<u32>,
    /// --poll busy-poll: gro_flush_timeout set on the device's NAPIs, ns (default 200000).
    #[arg(long, value_name = "NS")]
    pub gro_flush_timeout: Option<u64>,
    /// --poll busy-poll: how those two are set: auto (per NAPI over netdev napi-set where
    /// the kernel has it, Linux 6.13+, else sysfs), napi (napi-set only) or sysfs (the
    /// device's /sys/class/net/DEV files).
    #[arg(long, value_name = "auto|napi|sysfs")]
    pub busy_poll_knobs: Option<BusyPollKnobs>,
    /// --poll busy-poll: run NAPI from epoll_wait (EPIOCSPARAMS) instead of recvfrom, and
    /// keep the device's IRQ suspended for up to US microseconds while the worker finds
    /// work (irq-suspend-timeout on each NAPI over napi-set, Linux 6.13+; restored at the
    /// end). Refused with --busy-poll-knobs sysfs, which has no such knob.
    #[arg(long, value_name = "US")]
    pub irq_suspend_us: Option<u32>,
    /// Sleeping wait (--poll): after a wakeup, let frames gather for up to US
    /// microseconds (one timed sleep per batch while frames keep coming, so the CPU a
    /// wakeup costs is paid once per batch) before taking them (default with
    /// --coalesce-frames: 50).
    #[arg(long, value_name = "US")]
    pub coalesce_us: Option<u32>,
    /// Sleeping wait (--poll): after a wakeup, wait for this many frames (or
    /// --coalesce-us) before taking them (default with --coalesce-us: --batch).
    #[arg(long, value_name = "FRAMES")]
    pub coalesce_frames: Option<u32>,
    /// Busy-polling: after finding the RX ring empty, wait NS nanoseconds before looking
    /// again (spinning, no syscall), so frames gather into batches and the ring's
    /// producer index is not pulled from the kernel's core on every frame. 0: look again
    /// at once.
    #[arg(long, value_name = "NS", default_value_t = DEFAULT_IDLE_BACKOFF_NS, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub idle_backoff: u64,
    /// UMEM frame size in bytes (2048 or 4096).
    #[arg(long, default_value = "4096")]
    pub frame_size: FrameSize,
    /// Frames in each queue's UMEM (default: the fill ring's size for rxdrop and parse,
    /// enough to fill every ring for the modes that transmit).
    #[arg(long)]
    pub frames: Option<u32>,
    /// RX ring size (a power of two, 64 to 32768).
    #[arg(long, default_value = "2048")]
    pub rx_ring: RingSize,
    /// TX ring size (l2fwd and fwd; a power of two, 64 to 32768).
    #[arg(long, default_value = "2048")]
    pub tx_ring: RingSize,
    /// Copy mode: TX frames one kick sends (32 to the TX ring size; 0 keeps the kernel's
    /// 32). Needs Linux 6.17 (XDP_MAX_TX_SKB_BUDGET); older kernels keep 32.
    #[arg(long, default_value_t = 256)]
    pub tx_budget: u32,
    /// Fill ring size (a power of two, 64 to 32768).
    #[arg(long, default_value = "4096")]
    pub fill_ring: RingSize,
    /// Completion ring size (a power of two, 64 to 32768).
    #[arg(long, default_value = "2048")]
    pub comp_ring: RingSize,
    /// Descriptors per ring operation.
    #[arg(long, default_value = "64")]
    pub batch: BatchSize,
    /// Stop after this many seconds (default: run until Ctrl-C / SIGTERM).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// What the workers do with frames.
    #[arg(long, value_enum, default_value_t = ModeArg::Rxdrop)]
    pub mode: ModeArg,
    /// Frames to steer to userspace: bench (UDP to xdpipe's ports, the default), all,
    /// udp, tcp, ip-proto:N, ethertype:0xNNNN, udp-dport:LO-HI.
    #[arg(long, default_value = "bench")]
    pub filter: SteerFilter,
    /// Mode fwd: the interface frames leave by.
    #[arg(long)]
    pub out_iface: Option<String>,
    /// Detach another XDP program found on the interface (netlink-attached) instead of
    /// refusing to run.
    #[arg(long)]
    pub force: bool,
    /// Run even though the interface carries the default route or this SSH session.
    #[arg(long = "i-know-this-is-my-uplink")]
    pub allow_uplink: bool,
    /// Read xdpipe gen's stamps: loss, reordering, one-way latency (costs a parse per
    /// frame; off by default for rxdrop, which then never reads frame data).
    #[arg(long)]
    pub stamps: bool,
    /// Ask the driver for each frame's XDP RX metadata (RX timestamp, hash, VLAN tag) in
    /// native mode, where it lists xdp-rx-metadata-features; with --stamps the summary
    /// counts them and gives a device latency. Costs the steering program three kfunc
    /// calls per frame, so it is off by default.
    #[arg(long)]
    pub rx_metadata: bool,
    /// Print per-queue rates every second.
    #[arg(long)]
    pub per_queue: bool,
    /// Print the summary as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// A validated `xdpipe run`: the library's config and how to print.
#[derive(Debug)]
pub struct RunCommand {
    pub config: RunConfig,
    pub per_queue: bool,
    pub json: bool,
}

/// `--tx-budget`: 0 (the kernel's default) or 32 ..= the TX ring size, the range the
/// kernel accepts.
pub(crate) fn tx_budget(budget: u32, tx_ring: RingSize) -> Result<u32, CliError> {
    if budget != 0 && !(32..=tx_ring.get()).contains(&budget) {
        refuse!(
            "--tx-budget {budget}: out of range; use 32 to {} (the TX ring size, --tx-ring) or 0 for the kernel's default of 32",
            tx_ring.get()
        );
    }
    Ok(budget)
}

impl RunArgs {
    /// Every check between flags; what needs the device (queue count, whether the
    /// interfaces exist, MTU) is left to `xdpipe::run::run`.
    pub fn validate(&self) -> Result<RunCommand, CliError> {
        let mode = ModeKind::from(self.mode);
        let frames = match self.frames {
            Some(0) => refuse!("--frames 0: a UMEM needs at least one frame; give 1 or more, or leave it out"),
            Some(n) => n,
            // Receive-only modes keep exactly the fill ring's worth of frames in
            // circulation: frames then come back to the slot they left (see
            // `Xsk::fill_produce`) and the fill ring can never overflow. Modes that
            // transmit hold frames on the TX and completion rings too.
            None if mode.transmits() => {
                self.fill_ring.get() + self.rx_ring.get() + self.tx_ring.get() + self.comp_ring.get()
            }
            None => self.fill_ring.get(),
        };
        let duration = self.duration.map(|d| super::duration("--duration", d)).transpose()?;
        let nq = self.queues.ids().len();
        if let Some(c) = &self.cores
            && c.ids().len() != nq
        {
            let given = c.ids().iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            refuse!(
                "--cores {given} gives {} core(s) for {nq} queue(s) (--queues): give one core per queue, in queue order",
                c.ids().len()
            );
        }
        match (mode, &self.out_iface) {
            (ModeKind::Fwd, None) => {
                refuse!("--mode fwd needs --out-iface IFACE, the interface frames leave by")
            }
            (ModeKind::Fwd, Some(o)) if *o == self.iface => refuse!(
                "--out-iface {o} is the interface frames come in on (--iface); fwd needs a second interface (use --mode l2fwd to send back out of the same one)"
            ),
            (ModeKind::Fwd, Some(_)) | (_, None) => {}
            (m, Some(o)) => {
                refuse!("--out-iface {o} is for --mode fwd, but the mode is {m}; drop --out-iface or use --mode fwd")
            }
        }
        let (busy_poll, coalesce) = wait_settings(
            self.poll,
            self.batch,
            [self.busy_poll_usecs, self.busy_poll_budget, self.defer_hard_irqs, self.irq_suspend_us],
            self.gro_flush_timeout,
            self.busy_poll_knobs,
            self.coalesce_us,
            self.coalesce_frames,
        )?;
        let config = RunConfig {
            iface: self.iface.clone(),
            queues: self.queues.clone(),
            cores: self.cores.clone(),
            xdp_mode: self.xdp_mode.into(),
            xsk: XskConfig {
                frame_size: self.frame_size,
                frames,
                fill_size: self.fill_ring,
                comp_size: self.comp_ring,
                rx_size: Some(self.rx_ring),
                // rxdrop and parse never transmit: no TX ring (in copy mode a wakeup of a
                // socket with one runs a TX pass in the kernel).
                tx_size: mode.transmits().then_some(self.tx_ring),
                bind: self.bind.into(),
                need_wakeup: self.need_wakeup.on(),
                tx_budget: tx_budget(self.tx_budget, self.tx_ring)?,
                sg: false,
                tx_metadata: false,
            },
            batch: self.batch,
            poll: self.poll,
            idle_backoff_ns: self.idle_backoff,
            busy_poll,
            coalesce,
            duration,
            mode,
            filter: self.filter,
            stamps: self.stamps,
            rx_metadata: self.rx_metadata,
            out_iface: self.out_iface.clone(),
            force: self.force,
            allow_uplink: self.allow_uplink,
        };
        Ok(RunCommand { config, per_queue: self.per_queue, json: self.json })
    }
}

/// The busy-poll settings and the coalescing of a wait policy, from their flags: each
/// checked, and refused where the policy does not use it. `busy` is
/// `[--busy-poll-usecs, --busy-poll-budget, --defer-hard-irqs, --irq-suspend-us]`.
pub(crate) fn wait_settings(
    poll: PollWait,
    batch: BatchSize,
    busy: [Option<u32>; 4],
    gro_flush_timeout: Option<u64>,
    knobs: Option<BusyPollKnobs>,
    coalesce_us: Option<u32>,
    coalesce_frames: Option<u32>,
) -> Result<(BusyPollSettings, Option<Coalesce>), CliError> {
    let names = ["--busy-poll-usecs", "--busy-poll-budget", "--defer-hard-irqs", "--irq-suspend-us"];
    if poll != PollWait::BusyPoll {
        let given = names.iter().zip(busy).find(|(_, v)| v.is_some()).map(|(n, _)| *n);
        let given = given.or(gro_flush_timeout.map(|_| "--gro-flush-timeout")).or(knobs.map(|_| "--busy-poll-knobs"));
        if let Some(flag) = given {
            refuse!(
                "{flag} is a setting of --poll busy-poll, but the wait is --poll {poll}; add --poll busy-poll or drop {flag}"
            );
        }
    }
    if poll.timeout_arg().is_none()
        && let Some(flag) = coalesce_us.map(|_| "--coalesce-us").or(coalesce_frames.map(|_| "--coalesce-frames"))
    {
        refuse!(
            "{flag} moderates a sleeping wait, but the wait is --poll {poll}, which never sleeps; add --poll (or --poll MS) or drop {flag}"
        );
    }
    let d = BusyPollSettings::DEFAULT;
    let busy_poll = BusyPollSettings::new(
        busy[0].unwrap_or(d.usecs),
        busy[1].unwrap_or(batch.get() as u32),
        busy[2].unwrap_or(d.defer_hard_irqs),
        gro_flush_timeout.unwrap_or(d.gro_flush_timeout_ns),
    )
    .map_err(|e| CliError(e.to_string()))?;
    let busy_poll = BusyPollSettings { knobs: knobs.unwrap_or_default(), ..busy_poll };
    let busy_poll = match busy[3] {
        Some(_) if busy_poll.knobs == BusyPollKnobs::Sysfs => refuse!(
            "--irq-suspend-us needs the per-NAPI irq-suspend-timeout (netdev napi-set), and --busy-poll-knobs sysfs has no such knob; use --busy-poll-knobs napi or auto, or drop --irq-suspend-us"
        ),
        Some(us) => busy_poll.with_irq_suspend_us(us).map_err(|e| CliError(e.to_string()))?,
        None => busy_poll,
    };
    let coalesce =
        Coalesce::new(coalesce_us, coalesce_frames, batch.get() as u32).map_err(|e| CliError(e.to_string()))?;
    Ok((busy_poll, coalesce))
}

pub fn cmd_run(c: RunCommand) -> anyhow::Result<ExitCode> {
    let stop = super::stop_on_signals_without_capabilities()?;
    let per_queue = c.per_queue;
    let mut on_tick = |t: &Tick| print_tick(t, per_queue);
    let summary = xdpipe::run::run(&c.config, stop, &mut on_tick)?;
    if c.json {
        print_json(&summary)?;
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
        s.mode,
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
    if let Some(b) = &s.busy_poll {
        println!(
            "  busy-poll: {} us, budget {}; defer_hard_irqs {}, gro_flush_timeout {} ns by {} (napi {:?}), restored to {:?}",
            b.settings.usecs,
            b.settings.budget,
            b.settings.defer_hard_irqs,
            b.settings.gro_flush_timeout_ns,
            b.mechanism,
            b.napi_ids,
            b.previous
        );
        println!("  irq suspension: {}", b.irq_suspend);
    }
    if let Some(c) = &s.coalesce {
        println!("  coalescing: up to {} us or {} frames after each wakeup", c.us, c.frames);
    }
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

//! `xdpipe run`: one of the built-in stages (rxdrop, parse, l2fwd, fwd) on the public
//! [`crate::pipeline`], with the summary the CLI prints. Nothing here touches a ring:
//! the pipeline does, around the stage.
use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use serde::Serialize;
use xdp_common::QueueCounters;

pub use crate::pipeline::{DEFAULT_IDLE_BACKOFF_NS, EndReason, OutPortInfo, QueueSummary, Tick};
use crate::{
    accounting::AccountingSummary,
    config::{BatchSize, BindMode, CoreList, QueueList, SteerFilter, XdpMode},
    modes::ModeKind,
    pipeline::{Pipeline, PipelineConfig, PipelineError, Stage},
    stages::{Fwd, L2Fwd, Parse, ParseSummary, RxDrop},
    xsk::XskConfig,
};

/// A validated `xdpipe run` configuration.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The interface frames arrive on.
    pub iface: String,
    /// The RX queues, one worker each.
    pub queues: QueueList,
    /// One core per queue, in queue order; `None` pins queue i to the i-th usable core.
    pub cores: Option<CoreList>,
    /// Where the steering program runs (`Auto`: native, falling back to skb).
    pub xdp_mode: XdpMode,
    /// Socket settings: UMEM frame size and count, ring sizes, bind mode, need_wakeup.
    pub xsk: XskConfig,
    /// Frames taken from the RX ring at most per batch.
    pub batch: BatchSize,
    /// How workers wait on an empty RX ring.
    pub poll: crate::config::PollWait,
    /// Busy-polling: ns to wait after finding the RX ring empty.
    pub idle_backoff_ns: u64,
    /// `--poll busy-poll`'s socket options and device knobs.
    pub busy_poll: crate::config::BusyPollSettings,
    /// A sleeping wait's interrupt moderation (`--coalesce-us`, `--coalesce-frames`).
    pub coalesce: Option<crate::config::Coalesce>,
    /// How long to run; None: until `stop` is set (a signal).
    pub duration: Option<Duration>,
    /// The built-in stage to run.
    pub mode: ModeKind,
    /// Which frames the XDP program steers to the sockets.
    pub filter: SteerFilter,
    /// Read the generator's stamps: loss, reordering and latency.
    pub stamps: bool,
    /// Ask for each frame's XDP RX metadata (`--rx-metadata`).
    pub rx_metadata: bool,
    /// Mode fwd: the interface frames leave by (same queue ids as `queues`).
    pub out_iface: Option<String>,
    /// Detach another XDP program found on the interface instead of refusing.
    pub force: bool,
    /// Run even on an interface that looks like the machine's uplink.
    pub allow_uplink: bool,
}

/// Why `xdpipe run` could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Mode fwd without an out interface.
    #[error("mode fwd needs --out-iface (the interface frames leave by)")]
    NoOutIface,
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// The whole run's results.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The receiving interface.
    pub iface: String,
    /// The stage that ran.
    pub mode: ModeKind,
    /// The XDP mode the program ran in (skb or native).
    pub xdp_mode: XdpMode,
    /// True if the program ran bound to the device, with the driver's XDP RX metadata.
    pub xdp_rx_metadata: bool,
    /// The bind mode the kernel chose (copy or zero-copy).
    pub bind: BindMode,
    /// Whether the sockets were bound with need_wakeup.
    pub need_wakeup: bool,
    /// The wait policy (`--poll`): `0` (spin), `forever`, a timeout in ms, or `busy-poll`.
    pub wait: String,
    /// With `--poll busy-poll`: the settings applied, and the mechanism that set the
    /// device's knobs (`napi-set` or `sysfs`), with the values restored at the end.
    pub busy_poll: Option<crate::pipeline::BusyPollInfo>,
    /// The sleeping wait's interrupt moderation, when set.
    pub coalesce: Option<crate::config::Coalesce>,
    /// The steering filter, as displayed.
    pub filter: String,
    /// Seconds from the workers' start to the stop.
    pub duration_s: f64,
    /// Frames received, all queues.
    pub rx_packets: u64,
    /// Bytes received, all queues.
    pub rx_bytes: u64,
    /// Frames received per second over `duration_s`.
    pub rx_pps: f64,
    /// Megabits received per second over `duration_s`.
    pub rx_mbps: f64,
    /// Seconds from the first to the last change of the packet counters (sampled every
    /// 10 ms): the period traffic flowed, which a run started before its traffic needs.
    pub active_s: f64,
    /// rx / tx packets over the active period.
    pub active_rx_pps: f64,
    /// Frames sent per second over the active period.
    pub active_tx_pps: f64,
    /// Frames put on TX rings (own queue and out port).
    pub tx_packets: u64,
    /// Frames the kernel reported sent (completion ring).
    pub tx_completed: u64,
    /// Syscalls made to wake the kernel or to sleep.
    pub wakeups: u64,
    /// Per queue, in queue order.
    pub queues: Vec<QueueSummary>,
    /// The program's counters summed over queues.
    pub program: QueueCounters,
    /// Loss, reordering and latency from the stamps (with `--stamps`).
    pub accounting: Option<AccountingSummary>,
    /// Header parsing figures (mode parse).
    pub parse: Option<ParseSummary>,
    /// Frames too short for an Ethernet header (mode l2fwd), recycled instead of sent.
    pub runts: u64,
    /// Mode fwd: where frames left and how: "shared" UMEM (no copy) or "copy".
    pub fwd: Option<OutPortInfo>,
    /// What happened to the interface during the run ("2.0 s: xp-rx down", ...).
    pub events: Vec<String>,
    /// Why the run ended.
    pub end: EndReason,
}

impl RunConfig {
    /// The pipeline this configuration describes (without its stage).
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::with_config(PipelineConfig {
            iface: self.iface.clone(),
            netns: None,
            queues: self.queues.clone(),
            cores: self.cores.clone(),
            xdp_mode: self.xdp_mode,
            xsk: self.xsk,
            batch: self.batch,
            wait: self.poll,
            idle_backoff_ns: self.idle_backoff_ns,
            busy_poll: self.busy_poll,
            coalesce: self.coalesce,
            filter: self.filter,
            stamps: self.stamps,
            rx_metadata: self.rx_metadata,
            out_iface: if self.mode == ModeKind::Fwd { self.out_iface.clone() } else { None },
            force: self.force,
            allow_uplink: self.allow_uplink,
        })
    }
}

/// Runs the mode's stage. `on_tick` is called about once a second with the last second's
/// counts; `stop` ends the run early (signals set it).
pub fn run(cfg: &RunConfig, stop: Arc<AtomicBool>, on_tick: &mut dyn FnMut(&Tick)) -> Result<RunSummary, RunError> {
    run_in(cfg.pipeline(), cfg, &stop, on_tick, &mut || {})
}

/// As [`run`], on a pipeline the caller set up (a namespace, say); `on_ready` is called
/// once the workers run.
pub fn run_in(
    p: Pipeline,
    cfg: &RunConfig,
    stop: &AtomicBool,
    on_tick: &mut dyn FnMut(&Tick),
    on_ready: &mut dyn FnMut(),
) -> Result<RunSummary, RunError> {
    fn go<S: Stage>(
        p: Pipeline,
        cfg: &RunConfig,
        stop: &AtomicBool,
        on_tick: &mut dyn FnMut(&Tick),
        on_ready: &mut dyn FnMut(),
        stage: impl Fn(u32) -> S + Send + Sync + 'static,
    ) -> Result<crate::pipeline::RunSummary<S::Summary>, RunError> {
        let running = p.stage(stage).start()?;
        on_ready();
        Ok(running.wait(stop, cfg.duration, on_tick)?)
    }
    Ok(match cfg.mode {
        ModeKind::Rxdrop => summary(cfg.mode, go(p, cfg, stop, on_tick, on_ready, |_| RxDrop)?, None, 0),
        ModeKind::Parse => {
            let s = go(p, cfg, stop, on_tick, on_ready, |_| Parse::default())?;
            let parse = s.stages.iter().copied().reduce(|mut a, b| {
                Parse::add(&mut a, &b);
                a
            });
            summary(cfg.mode, s, parse, 0)
        }
        ModeKind::L2fwd => {
            let s = go(p, cfg, stop, on_tick, on_ready, |_| L2Fwd::default())?;
            let runts = s.stages.iter().map(|q| q.runts).sum();
            summary(cfg.mode, s, None, runts)
        }
        ModeKind::Fwd => {
            if cfg.out_iface.is_none() {
                return Err(RunError::NoOutIface);
            }
            summary(cfg.mode, go(p, cfg, stop, on_tick, on_ready, |_| Fwd)?, None, 0)
        }
    })
}

fn summary<T>(
    mode: ModeKind,
    s: crate::pipeline::RunSummary<T>,
    parse: Option<ParseSummary>,
    runts: u64,
) -> RunSummary {
    RunSummary {
        iface: s.iface,
        mode,
        xdp_mode: s.xdp_mode,
        xdp_rx_metadata: s.xdp_rx_metadata,
        bind: s.bind,
        need_wakeup: s.need_wakeup,
        wait: s.wait,
        busy_poll: s.busy_poll,
        coalesce: s.coalesce,
        filter: s.filter,
        duration_s: s.duration_s,
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        rx_pps: s.rx_pps,
        rx_mbps: s.rx_mbps,
        active_s: s.active_s,
        active_rx_pps: s.active_rx_pps,
        active_tx_pps: s.active_tx_pps,
        tx_packets: s.tx_packets,
        tx_completed: s.tx_completed,
        wakeups: s.wakeups,
        queues: s.queues,
        program: s.program,
        accounting: s.accounting,
        parse,
        runts,
        fwd: s.fwd,
        events: s.events,
        end: s.end,
    }
}

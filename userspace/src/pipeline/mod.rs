//! The public pipeline: a [`Pipeline`] builder, the [`Stage`] and [`Source`] hooks a user
//! writes, and the typed summaries a run returns.
//!
//! ```no_run
//! use std::time::Duration;
//! use xdpipe::pipeline::{Batch, Pipeline, Stage, Verdict};
//!
//! /// Sends every frame back out of the queue it came in on, counting them.
//! struct Echo(u64);
//!
//! impl Stage for Echo {
//!     type Summary = u64;
//!     fn on_batch(&mut self, batch: &mut Batch<'_>) {
//!         self.0 += batch.len() as u64;
//!         batch.set_all(Verdict::Tx);
//!     }
//!     fn finish(self) -> u64 {
//!         self.0
//!     }
//! }
//!
//! let summary = Pipeline::on("ens1f0").stage(|_queue| Echo(0)).run_for(Duration::from_secs(10))?;
//! println!("{} frames, per queue {:?}", summary.rx_packets, summary.stages);
//! # Ok::<(), xdpipe::pipeline::PipelineError>(())
//! ```
//!
//! A run attaches the steering program, opens one AF_XDP socket per queue, runs a pinned
//! worker per queue until its duration ends or its stop flag is set, then detaches and
//! returns the summary. Every exit path (end, stop, worker error or panic, setup error)
//! drops the sockets and the program's link before returning.
mod busy;
mod driver;
mod run;
mod stage;
mod transmit;
mod txstamps;

use std::time::Duration;

use serde::Serialize;
use xdp_common::QueueCounters;

pub(crate) use self::run::panic_message;
pub use self::{
    busy::BusyPollInfo,
    run::{ReadyRun, Tick},
    stage::{Source, SourceStep, Stage},
    transmit::{SourcePipeline, TxQueueSummary, TxSummary},
    txstamps::TxStamps,
};
pub use crate::xsk::{Batch, Frame, FrameLenError, Frames, OutPort, TxBatch, TxRequest, Verdict};
use crate::{
    config::{
        BatchSize, BindMode, BusyPollSettings, Coalesce, CoreList, FrameSize, PollWait, QueueList, RingSize,
        SteerFilter, XdpMode,
    },
    stats::CounterSnapshot,
    sys::{self, XdpStatistics},
    xsk::XskConfig,
};

/// `Pipeline::idle_backoff`'s default. On this project's VM (veth, native XDP, AF_XDP
/// generator on the other core, 5 alternating trials) it raised rxdrop's receive rate
/// from a median of 1.95 (1.85-1.99) to 2.18 (2.06-2.18) Mpps; under the in-kernel
/// generator 8.49-8.57 against 8.52-8.68 Mpps (3 trials); at 200 kpps the median latency
/// stayed 0.8 us (the backoff only runs above one frame per half of it).
pub const DEFAULT_IDLE_BACKOFF_NS: u64 = 2000;

/// Everything that can stop a pipeline from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Not root.
    #[error("xdpipe must run as root (it needs CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW and CAP_IPC_LOCK); try sudo")]
    NotRoot,
    /// No such interface in the calling thread's network namespace.
    #[error("no interface named {0:?} in this network namespace; list them with `ip link`")]
    NoSuchInterface(String),
    /// The device's queue count could not be read.
    #[error("reading the RX queue count of {iface}: {source}")]
    QueueCount {
        /// The interface.
        iface: String,
        /// The failed call.
        #[source]
        source: sys::SysError,
    },
    /// The sleeping wait could not be set up.
    #[error("setting up the workers' sleep on an empty RX ring (--poll): {0}")]
    Wait(#[source] sys::SysError),
    /// The sockets' busy-poll options were refused.
    #[error("--poll busy-poll: setting the socket's busy-poll options: {0}")]
    BusyPollSocket(#[source] sys::SysError),
    /// The device's busy-poll knobs could not be read or set (nothing was left changed).
    #[error("--poll busy-poll: setting napi_defer_hard_irqs / gro_flush_timeout of {iface}: {source}")]
    BusyPollDevice {
        /// The interface.
        iface: String,
        /// Why.
        #[source]
        source: crate::net::NetError,
    },
    /// The link-state watch could not be opened.
    #[error("opening a socket to watch the link state of {iface}: {source}")]
    LinkWatch {
        /// The interface.
        iface: String,
        /// The failed call.
        #[source]
        source: sys::SysError,
    },
    /// A configuration value out of range for this device or machine.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Cores given, but not one per queue.
    #[error("{queues} queue(s) but {cores} core(s) given: --cores needs one core per queue")]
    CoreCount {
        /// Queues asked for.
        queues: usize,
        /// Cores given.
        cores: usize,
    },
    /// A check before attaching failed (uplink guard, MTU, foreign program).
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    /// A worker thread could not drop its privileges (uid, groups, capabilities), so the
    /// run did not start.
    #[error(
        "the worker for queue {queue} could not drop its privileges: {source}. xdpipe needs \
         CAP_SETUID, CAP_SETGID and CAP_SETPCAP at setup (run it as root, outside a container \
         that withholds them)"
    )]
    Confine {
        /// The queue.
        queue: u32,
        /// The call that failed.
        #[source]
        source: sys::SysError,
    },
    /// The steering program could not be loaded or attached.
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
    /// A socket could not be opened or bound.
    #[error(transparent)]
    Xsk(#[from] crate::xsk::XskError),
    /// The out port is the interface frames come in on.
    #[error(
        "--out-iface {0} is the interface frames come in on; fwd needs a second interface (use l2fwd to send back out of the same one)"
    )]
    SameOutIface(String),
    /// The pipeline's network namespace could not be entered (or left).
    #[error("network namespace {ns}: {source}")]
    Namespace {
        /// The namespace (`/run/netns/NAME`).
        ns: String,
        /// Why.
        #[source]
        source: Box<crate::net::NetError>,
    },
    /// A worker thread could not be started.
    #[error("starting the worker thread for queue {queue}: {source}")]
    Spawn {
        /// The queue.
        queue: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One queue's results.
#[derive(Clone, Debug, Serialize)]
pub struct QueueSummary {
    /// The RX queue.
    pub queue: u32,
    /// The core its worker ran on.
    pub core: u32,
    /// The worker's counters.
    #[serde(flatten)]
    pub counters: CounterSnapshot,
    /// Frames received per second over the run.
    pub rx_pps: f64,
    /// The socket's XDP_STATISTICS.
    pub xdp_statistics: XdpStatistics,
    /// The steering program's counters for this queue.
    pub program: QueueCounters,
}

/// Why the run ended.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum EndReason {
    /// The duration passed.
    Duration,
    /// The stop flag was set.
    Stopped,
    /// A worker ended or panicked.
    WorkerFailed(String),
    /// The interface disappeared (unregistered, its namespace or peer deleted).
    InterfaceGone(String),
}

/// Where frames redirected to the out port left, and how.
#[derive(Clone, Debug, Serialize)]
pub struct OutPortInfo {
    /// The out interface.
    pub out_iface: String,
    /// "shared" UMEM (no copy) or "copy".
    pub umem: &'static str,
    /// Why the UMEM is not shared, when it is not.
    pub shared_umem_error: Option<String>,
    /// Each out socket's XDP_STATISTICS.
    pub out_xdp_statistics: Vec<XdpStatistics>,
}

/// A whole run's results; `T` is the stage's summary type.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary<T> {
    /// The receiving interface.
    pub iface: String,
    /// The XDP mode the program ran in (skb or native).
    pub xdp_mode: XdpMode,
    /// True if the program ran bound to the device, so the driver's XDP RX metadata
    /// kfuncs filled each frame's metadata area (false: skb mode, or a device that lists
    /// no xdp-rx-metadata-features).
    pub xdp_rx_metadata: bool,
    /// The bind mode the kernel chose (copy or zero-copy).
    pub bind: BindMode,
    /// Whether the sockets were bound with need_wakeup.
    pub need_wakeup: bool,
    /// The wait policy (`--poll`): `0` (spin), `forever`, a timeout in ms, or `busy-poll`.
    pub wait: String,
    /// With busy-poll: the settings and how the device's knobs were set (and restored).
    pub busy_poll: Option<BusyPollInfo>,
    /// The sleeping wait's interrupt moderation, when set.
    pub coalesce: Option<Coalesce>,
    /// The steering filter.
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
    /// Frames received per second over the active period.
    pub active_rx_pps: f64,
    /// Frames sent per second over the active period.
    pub active_tx_pps: f64,
    /// Frames put on TX rings (own queue and out port).
    pub tx_packets: u64,
    /// Frames the kernel reported sent.
    pub tx_completed: u64,
    /// Syscalls made to wake the kernel or to sleep.
    pub wakeups: u64,
    /// Per queue.
    pub queues: Vec<QueueSummary>,
    /// The program's counters summed over queues.
    pub program: QueueCounters,
    /// Loss, reordering and latency from the generator's stamps (with stamps on).
    pub accounting: Option<crate::accounting::AccountingSummary>,
    /// The out port, when the pipeline has one.
    pub fwd: Option<OutPortInfo>,
    /// What happened to the interface during the run ("2.0 s: xp-rx down", ...).
    pub events: Vec<String>,
    /// Why the run ended.
    pub end: EndReason,
    /// Each queue's stage summary, in queue order (a worker that panicked has none).
    pub stages: Vec<T>,
}

/// The validated settings of a pipeline (see the [`Pipeline`] methods for each).
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Interface frames arrive on.
    pub iface: String,
    /// Network namespace (`/run/netns/NAME`) the pipeline's threads enter first.
    pub netns: Option<String>,
    /// RX queues, one worker each.
    pub queues: QueueList,
    /// One core per queue, in queue order; None pins queue i to the i-th usable core.
    pub cores: Option<CoreList>,
    /// Where the steering program runs.
    pub xdp_mode: XdpMode,
    /// Socket sizes and flags. `frames` 0 picks a count that fits the rings in use, and
    /// `tx_size` applies only to stages that transmit.
    pub xsk: XskConfig,
    /// Frames taken from the RX ring at most per batch.
    pub batch: BatchSize,
    /// How workers wait on an empty RX ring.
    pub wait: PollWait,
    /// Busy waiting: ns to wait after finding the RX ring empty.
    pub idle_backoff_ns: u64,
    /// [`PollWait::BusyPoll`]'s settings (ignored by the other waits).
    pub busy_poll: BusyPollSettings,
    /// A sleeping wait's interrupt moderation (ignored by the other waits).
    pub coalesce: Option<Coalesce>,
    /// Which frames the program steers to the sockets.
    pub filter: SteerFilter,
    /// Read the generator's stamps: loss, reordering and latency.
    pub stamps: bool,
    /// Ask the driver for each frame's XDP RX metadata (timestamp, hash, VLAN tag):
    /// [`Frame::metadata`], and with `stamps` the accounting's `rx_metadata` and device
    /// latency. Off (the default), the steering program does no metadata work.
    pub rx_metadata: bool,
    /// Port 0 of `Verdict::Redirect` (same queue ids as `queues`).
    pub out_iface: Option<String>,
    /// Detach another XDP program found on the interface instead of refusing.
    pub force: bool,
    /// Run even on an interface that looks like the machine's uplink.
    pub allow_uplink: bool,
}

/// Builds and runs a pipeline: see the module docs for an example.
#[derive(Clone, Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
}

impl Pipeline {
    /// A pipeline on `iface` with the defaults of `xdpipe run`: queue 0, native XDP with
    /// a fallback to skb, copy or zero-copy as the kernel chooses, 2048-entry rings of
    /// 4096-byte frames, batches of 64, busy waiting, the default steering filter.
    pub fn on(iface: impl Into<String>) -> Self {
        let ring = RingSize::new(2048).expect("2048 is a valid ring size");
        Self {
            cfg: PipelineConfig {
                iface: iface.into(),
                netns: None,
                queues: QueueList::from_ids([0]).expect("queue 0 is valid"),
                cores: None,
                xdp_mode: XdpMode::Auto,
                xsk: XskConfig {
                    frame_size: FrameSize::new(4096).expect("4096 is a valid frame size"),
                    frames: 0,
                    fill_size: ring,
                    comp_size: ring,
                    rx_size: Some(ring),
                    tx_size: Some(ring),
                    bind: BindMode::Auto,
                    need_wakeup: true,
                    tx_budget: 0,
                    sg: false,
                    tx_metadata: false,
                },
                batch: BatchSize::new(64).expect("64 is a valid batch size"),
                wait: PollWait::Busy,
                idle_backoff_ns: DEFAULT_IDLE_BACKOFF_NS,
                busy_poll: BusyPollSettings::DEFAULT,
                coalesce: None,
                filter: SteerFilter::default(),
                stamps: false,
                rx_metadata: false,
                out_iface: None,
                force: false,
                allow_uplink: false,
            },
        }
    }

    /// A pipeline from a whole validated configuration.
    pub fn with_config(cfg: PipelineConfig) -> Self {
        Self { cfg }
    }

    /// The configuration so far.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    /// Runs the pipeline in network namespace `name` (`/run/netns/NAME`): its setup and its
    /// workers run there; the calling thread returns to its own namespace once the
    /// workers have started.
    pub fn netns(mut self, name: impl Into<String>) -> Self {
        self.cfg.netns = Some(name.into());
        self
    }

    /// RX queues, one worker each.
    pub fn queues(mut self, queues: QueueList) -> Self {
        self.cfg.queues = queues;
        self
    }

    /// One core per queue, in queue order.
    pub fn cores(mut self, cores: CoreList) -> Self {
        self.cfg.cores = Some(cores);
        self
    }

    /// Where the steering program runs.
    pub fn xdp_mode(mut self, mode: XdpMode) -> Self {
        self.cfg.xdp_mode = mode;
        self
    }

    /// How the sockets bind (copy, zero-copy, or as the kernel chooses).
    pub fn bind(mut self, bind: BindMode) -> Self {
        self.cfg.xsk.bind = bind;
        self
    }

    /// UMEM frame (chunk) size.
    pub fn frame_size(mut self, size: FrameSize) -> Self {
        self.cfg.xsk.frame_size = size;
        self
    }

    /// Ring sizes: RX, fill, TX, completion.
    pub fn rings(mut self, rx: RingSize, fill: RingSize, tx: RingSize, comp: RingSize) -> Self {
        self.cfg.xsk.rx_size = Some(rx);
        self.cfg.xsk.fill_size = fill;
        self.cfg.xsk.tx_size = Some(tx);
        self.cfg.xsk.comp_size = comp;
        self
    }

    /// Frames taken from the RX ring at most per batch.
    pub fn batch(mut self, batch: BatchSize) -> Self {
        self.cfg.batch = batch;
        self
    }

    /// How workers wait on an empty RX ring: busy, or asleep in epoll.
    pub fn wait(mut self, wait: PollWait) -> Self {
        self.cfg.wait = wait;
        self
    }

    /// Busy waiting: how long to wait after finding the RX ring empty while frames come
    /// fast (0: look again at once).
    pub fn idle_backoff(mut self, backoff: Duration) -> Self {
        self.cfg.idle_backoff_ns = backoff.as_nanos().min(u64::MAX as u128) as u64;
        self
    }

    /// [`PollWait::BusyPoll`]'s socket options and device knobs.
    pub fn busy_poll(mut self, settings: BusyPollSettings) -> Self {
        self.cfg.busy_poll = settings;
        self
    }

    /// A sleeping wait's interrupt moderation: after a wakeup, poll the RX ring without
    /// sleeping until `c.frames` are there or `c.us` passed (None: take what is there).
    pub fn coalesce(mut self, c: Option<Coalesce>) -> Self {
        self.cfg.coalesce = c;
        self
    }

    /// Which frames the steering program sends to the sockets; the rest go to the kernel.
    pub fn steer(mut self, filter: SteerFilter) -> Self {
        self.cfg.filter = filter;
        self
    }

    /// Reads xdpipe generator stamps: loss, reordering and one-way latency.
    pub fn stamps(mut self, on: bool) -> Self {
        self.cfg.stamps = on;
        self
    }

    /// Asks for the XDP RX metadata (see [`PipelineConfig::rx_metadata`]).
    pub fn rx_metadata(mut self, on: bool) -> Self {
        self.cfg.rx_metadata = on;
        self
    }

    /// Port 0 of `Verdict::Redirect`: frames leave by `iface`, on the same queue id.
    pub fn out_port(mut self, iface: impl Into<String>) -> Self {
        self.cfg.out_iface = Some(iface.into());
        self
    }

    /// Replaces another XDP program found on the interface instead of refusing.
    pub fn force(mut self, on: bool) -> Self {
        self.cfg.force = on;
        self
    }

    /// Runs even on an interface that looks like the machine's uplink.
    pub fn allow_uplink(mut self, on: bool) -> Self {
        self.cfg.allow_uplink = on;
        self
    }

    /// Gives each queue worker a stage made by `factory(queue)` on the worker's thread.
    pub fn stage<S, F>(self, factory: F) -> StagePipeline<F>
    where
        S: Stage,
        F: Fn(u32) -> S + Send + Sync + 'static,
    {
        StagePipeline { cfg: self.cfg, factory }
    }

    /// Gives each queue a transmit worker whose frames `factory(queue)` makes.
    pub fn source<S, F>(self, factory: F) -> SourcePipeline<F>
    where
        S: Source,
        F: Fn(u32) -> S + Send + Sync + 'static,
    {
        SourcePipeline::new(self.cfg, factory)
    }
}

/// A pipeline with its stage: ready to run.
pub struct StagePipeline<F> {
    cfg: PipelineConfig,
    factory: F,
}

impl<S, F> StagePipeline<F>
where
    S: Stage,
    F: Fn(u32) -> S + Send + Sync + 'static,
{
    /// Runs for `duration`.
    pub fn run_for(self, duration: Duration) -> Result<RunSummary<S::Summary>, PipelineError> {
        let stop = std::sync::atomic::AtomicBool::new(false);
        self.run(&stop, Some(duration), &mut |_| {})
    }

    /// Runs until `stop` is set.
    pub fn run_until(self, stop: &std::sync::atomic::AtomicBool) -> Result<RunSummary<S::Summary>, PipelineError> {
        self.run(stop, None, &mut |_| {})
    }

    /// Runs until `stop` is set or `duration` passes; `on_tick` gets the last second's
    /// counts about once a second.
    pub fn run(
        self,
        stop: &std::sync::atomic::AtomicBool,
        duration: Option<Duration>,
        on_tick: &mut dyn FnMut(&Tick),
    ) -> Result<RunSummary<S::Summary>, PipelineError> {
        self.start()?.wait(stop, duration, on_tick)
    }

    /// Sets everything up and starts the workers: when this returns, frames steered to
    /// the queues are being processed. The caller's thread then runs the rest with
    /// [`ReadyRun::wait`]; dropping the [`ReadyRun`] instead stops the run.
    pub fn start(self) -> Result<ReadyRun<S::Summary>, PipelineError> {
        run::start(self.cfg, self.factory)
    }
}

//! `xdpipe run`: attach the steering program, open one AF_XDP socket per queue, run a
//! pinned worker per queue until the duration ends or `stop` is set, then detach and
//! return the summary. Every exit path (end, signal, worker error or panic, setup error)
//! drops the sockets and the program's link before returning.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;
use xdp_common::QueueCounters;

use crate::{
    accounting::{Accounting, AccountingSummary},
    config::{BatchSize, BindMode, CoreList, QueueList, SteerFilter, XdpMode},
    loader::{LoaderError, Steering},
    modes::{L2Fwd, ModeKind, Parse, ParseSummary, RxDrop},
    stats::{CounterSnapshot, SharedCounters, WorkerCounters, rates},
    sys::{self, XdpStatistics},
    worker::{WaitPolicy, fwd_loop, rx_loop},
    xsk::{Xsk, XskConfig, XskError},
};

/// `--idle-backoff`'s default. On this project's VM (veth, native XDP, AF_XDP generator
/// on the other core, 5 alternating trials) it raised rxdrop's receive rate from a median
/// of 1.95 (1.85-1.99) to 2.18 (2.06-2.18) Mpps; under the in-kernel generator 8.49-8.57
/// against 8.52-8.68 Mpps (3 trials); at 200 kpps the median latency stayed 0.8 us (the
/// backoff only runs above one frame per half of it). README has the commands.
pub const DEFAULT_IDLE_BACKOFF_NS: u64 = 2000;

/// A validated `xdpipe run` configuration.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub iface: String,
    pub queues: QueueList,
    /// One core per queue, in queue order; `None` pins queue i to the i-th usable core.
    pub cores: Option<CoreList>,
    pub xdp_mode: XdpMode,
    pub xsk: XskConfig,
    pub batch: BatchSize,
    /// How workers wait on an empty RX ring.
    pub poll: crate::config::PollWait,
    /// Busy-polling: ns to wait after finding the RX ring empty (worker::WaitPolicy).
    pub idle_backoff_ns: u64,
    pub duration: Option<Duration>,
    pub mode: ModeKind,
    pub filter: SteerFilter,
    /// Read the generator's stamps: loss, reordering and latency.
    pub stamps: bool,
    /// Mode fwd: the interface frames leave by (same queue ids as `queues`).
    pub out_iface: Option<String>,
    /// Detach another XDP program found on the interface instead of refusing.
    pub force: bool,
    /// Run even on an interface that looks like the machine's uplink.
    pub allow_uplink: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("xdpipe must run as root (it needs CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW and CAP_IPC_LOCK); try sudo")]
    NotRoot,
    #[error("no interface named {0:?} in this network namespace; list them with `ip link`")]
    NoSuchInterface(String),
    #[error("reading the RX queue count of {iface}: {source}")]
    QueueCount {
        iface: String,
        #[source]
        source: sys::SysError,
    },
    #[error("setting up the workers' sleep on an empty RX ring (--poll): {0}")]
    Wait(#[source] sys::SysError),
    #[error("opening a socket to watch the link state of {iface}: {source}")]
    LinkWatch {
        iface: String,
        #[source]
        source: sys::SysError,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{queues} queue(s) but {cores} core(s) given: --cores needs one core per queue")]
    CoreCount { queues: usize, cores: usize },
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error("dropping capabilities after setup: {0}")]
    Capabilities(#[source] sys::SysError),
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("mode fwd needs --out-iface (the interface frames leave by)")]
    NoOutIface,
    #[error(
        "--out-iface {0} is the interface frames come in on; fwd needs a second interface (use l2fwd to send back out of the same one)"
    )]
    SameOutIface(String),
    #[error("starting the worker thread for queue {queue}: {source}")]
    Spawn {
        queue: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Rates over the last second, for the progress line.
#[derive(Clone, Debug)]
pub struct Tick {
    pub elapsed: Duration,
    /// (queue, rx packets, rx bytes, tx packets) during the last interval.
    pub per_queue: Vec<(u32, u64, u64, u64)>,
    pub interval: Duration,
}

/// One queue's results.
#[derive(Clone, Debug, Serialize)]
pub struct QueueSummary {
    pub queue: u32,
    pub core: u32,
    #[serde(flatten)]
    pub counters: CounterSnapshot,
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
    Duration,
    Stopped,
    WorkerFailed(String),
    /// The interface disappeared (unregistered, its namespace or peer deleted).
    InterfaceGone(String),
}

/// The whole run's results.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub iface: String,
    pub mode: ModeKind,
    /// The XDP mode the program ran in (skb or native).
    pub xdp_mode: XdpMode,
    /// The bind mode the kernel chose (copy or zero-copy).
    pub bind: BindMode,
    pub need_wakeup: bool,
    pub filter: String,
    pub duration_s: f64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_pps: f64,
    pub rx_mbps: f64,
    /// Seconds from the first to the last change of the packet counters (sampled every
    /// 10 ms): the period traffic flowed, which a run started before its traffic needs.
    pub active_s: f64,
    /// rx / tx packets over the active period.
    pub active_rx_pps: f64,
    pub active_tx_pps: f64,
    pub tx_packets: u64,
    pub tx_completed: u64,
    pub wakeups: u64,
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
    pub fwd: Option<FwdInfo>,
    /// What happened to the interface during the run ("2.0 s: xp-rx down", ...).
    pub events: Vec<String>,
    pub end: EndReason,
}

#[derive(Clone, Debug, Serialize)]
pub struct FwdInfo {
    pub out_iface: String,
    pub umem: &'static str,
    /// Why the UMEM is not shared, when it is not.
    pub shared_umem_error: Option<String>,
    pub out_xdp_statistics: Vec<XdpStatistics>,
}

/// What a worker hands back when it ends.
struct WorkerResult {
    xsk: Xsk,
    out: Option<Xsk>,
    acct: Option<Accounting>,
    parse: Option<ParseSummary>,
    runts: u64,
}

struct Worker {
    queue: u32,
    core: u32,
    counters: Arc<SharedCounters>,
    handle: thread::JoinHandle<WorkerResult>,
}

/// Runs the pipeline. `on_tick` is called about once a second with the last second's
/// counts; `stop` ends the run early (signals set it).
pub fn run(cfg: &RunConfig, stop: Arc<AtomicBool>, on_tick: &mut dyn FnMut(&Tick)) -> Result<RunSummary, RunError> {
    if !sys::is_root() {
        return Err(RunError::NotRoot);
    }
    if sys::ifindex(&cfg.iface).is_none() {
        return Err(RunError::NoSuchInterface(cfg.iface.clone()));
    }
    let nq =
        sys::rx_queue_count(&cfg.iface).map_err(|source| RunError::QueueCount { iface: cfg.iface.clone(), source })?;
    cfg.queues.check_against(&cfg.iface, nq)?;
    let cores = pick_cores(cfg)?;

    let out_iface = match (cfg.mode, &cfg.out_iface) {
        (ModeKind::Fwd, None) => return Err(RunError::NoOutIface),
        (ModeKind::Fwd, Some(o)) if *o == cfg.iface => return Err(RunError::SameOutIface(o.clone())),
        (ModeKind::Fwd, Some(o)) => {
            if sys::ifindex(o).is_none() {
                return Err(RunError::NoSuchInterface(o.clone()));
            }
            let n = sys::rx_queue_count(o).map_err(|source| RunError::QueueCount { iface: o.clone(), source })?;
            cfg.queues.check_against(o, n)?;
            Some(o.clone())
        }
        _ => None,
    };

    for ifc in std::iter::once(&cfg.iface).chain(out_iface.as_ref()) {
        if !cfg.allow_uplink {
            if let Some(why) = crate::preflight::uplink_reason(ifc)? {
                return Err(crate::preflight::PreflightError::Uplink { iface: ifc.clone(), why }.into());
            }
        }
        crate::preflight::check_mtu(ifc, cfg.xsk.frame_size.get())?;
    }
    crate::preflight::check_no_foreign_program(&cfg.iface, cfg.force)?;

    let mut steering = Steering::attach(&cfg.iface, cfg.xdp_mode, cfg.filter)?;
    // From here on, `steering` detaches on every return path (drop).
    // fwd's out sockets only transmit, but on a zero-copy bind some drivers (igb) send
    // nothing without a program on the port. A physical driver resets the device to
    // attach one, so where zero-copy may be chosen (asked for, or auto on a driver that
    // declares it) it goes on before any socket binds
    // (after, igb under QEMU lost frames sent once carrier was back); it is taken off
    // again below if the sockets bound in copy mode.
    let early_out_program = match (&out_iface, cfg.xsk.bind) {
        (Some(o), bind) if crate::loader::may_bind_zero_copy(o, bind) => crate::loader::zero_copy_tx_program(o),
        _ => None,
    };
    // fwd's out sockets only transmit: no RX ring, so none of their frames wait on a
    // fill ring. (With a zero-copy bind the driver still takes that queue's ingress
    // from the out socket's empty fill ring: traffic arriving on the out port's queue is
    // dropped while fwd runs, as with any transmit-only zero-copy socket.)
    let out_xsk = XskConfig { rx_size: None, ..cfg.xsk };
    let mut sockets = Vec::with_capacity(cfg.queues.ids().len());
    let mut shared_umem_error = None;
    for &q in cfg.queues.ids() {
        let xsk = Xsk::open(&cfg.iface, q, &cfg.xsk)?;
        let out = match &out_iface {
            None => None,
            Some(o) => Some(match xsk.open_shared(o, q, &out_xsk) {
                Ok(out) => (out, true),
                Err(e) => {
                    log::warn!("{o} queue {q}: no shared UMEM ({e}); forwarding with a copy");
                    shared_umem_error = Some(e.to_string());
                    (Xsk::open(o, q, &out_xsk)?, false)
                }
            }),
        };
        // `Xsk::open` put frames on the fill ring before binding, so frames steered to
        // the socket from here on find it filled even if the worker starts late.
        steering.bind_socket(q, xsk.fd())?;
        sockets.push((q, xsk, out));
    }
    let fwd_shared = sockets.iter().all(|(_, _, o)| o.as_ref().is_none_or(|(_, s)| *s));
    let out_zerocopy = sockets.iter().any(|(_, _, x)| x.as_ref().is_some_and(|(x, _)| x.is_zerocopy()));
    let _out_program =
        out_iface.as_ref().and_then(|o| crate::loader::keep_zero_copy_tx_program(o, early_out_program, out_zerocopy));
    let zerocopy = sockets.iter().all(|(_, x, _)| x.is_zerocopy());

    // Setup is done: from here on only reading the program's counters needs a capability
    // (CAP_BPF). The workers start after this, so they inherit the reduced set.
    sys::drop_capabilities_except(&[sys::CAP_BPF]).map_err(RunError::Capabilities)?;

    // Opened before any worker starts, so failing here leaves nothing running.
    let link =
        sys::LinkWatch::new(&cfg.iface).map_err(|e| RunError::LinkWatch { iface: cfg.iface.clone(), source: e })?;
    let halt = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(sockets.len());
    // Each worker's wait policy, made before any worker starts (failing leaves none running).
    let mut waits = Vec::with_capacity(sockets.len());
    for (_, xsk, _) in &sockets {
        let sleep = match cfg.poll.timeout_arg() {
            Some(t) => Some((sys::ReadableWaiter::new(xsk.fd()).map_err(RunError::Wait)?, t)),
            None => None,
        };
        waits.push(WaitPolicy { need_wakeup: cfg.xsk.need_wakeup, sleep, idle_backoff_ns: cfg.idle_backoff_ns });
    }
    if cfg.poll.timeout_arg().is_some() {
        sys::install_wake_signal().map_err(RunError::Wait)?;
    }
    for (((q, mut xsk, mut out), core), wait) in sockets.into_iter().zip(cores).zip(waits) {
        let counters = Arc::new(SharedCounters::new(WorkerCounters::default()));
        let (c2, halt2, batch, mode) = (counters.clone(), halt.clone(), cfg.batch.get(), cfg.mode);
        // Allocated here, before the worker starts: the loop itself never allocates.
        let mut acct = cfg.stamps.then(Accounting::new);
        let spawned = thread::Builder::new().name(format!("xdpipe-q{q}")).spawn(move || {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core as usize }) {
                log::warn!("could not pin the queue {q} worker to core {core}");
            }
            let (mut parse, mut runts) = (None, 0);
            match mode {
                ModeKind::Rxdrop => rx_loop(&mut xsk, &mut RxDrop, acct.as_mut(), batch, &wait, &c2, &halt2),
                ModeKind::Parse => {
                    let mut p = Parse::default();
                    rx_loop(&mut xsk, &mut p, acct.as_mut(), batch, &wait, &c2, &halt2);
                    parse = Some(p.finish());
                }
                ModeKind::L2fwd => {
                    let mut m = L2Fwd::default();
                    rx_loop(&mut xsk, &mut m, acct.as_mut(), batch, &wait, &c2, &halt2);
                    runts = m.runts;
                }
                ModeKind::Fwd => {
                    if let Some((o, shared)) = out.as_mut() {
                        fwd_loop(&mut xsk, o, *shared, acct.as_mut(), batch, &wait, &c2, &halt2);
                    }
                }
            }
            c2.cpu_ns.store(sys::thread_cpu_ns(), Ordering::Relaxed);
            WorkerResult { xsk, out: out.map(|(o, _)| o), acct, parse, runts }
        });
        match spawned {
            Ok(handle) => workers.push(Worker { queue: q, core, counters, handle }),
            Err(source) => {
                halt.store(true, Ordering::Relaxed);
                wake_sleepers(&workers, cfg.poll);
                for w in workers {
                    let _ = w.handle.join();
                }
                return Err(RunError::Spawn { queue: q, source });
            }
        }
    }

    log::info!(
        "ready: {} worker(s) on {} queue(s) {:?}, {:?} XDP, {} bind",
        workers.len(),
        cfg.iface,
        cfg.queues.ids(),
        steering.mode(),
        if zerocopy { "zero-copy" } else { "copy" }
    );
    let start = Instant::now();
    let mut last = start;
    let mut last_snaps: Vec<CounterSnapshot> = workers.iter().map(|w| w.counters.snapshot()).collect();
    let mut active = ActivePeriod::default();
    let mut events = Vec::new();
    let mut link_state = link.state();
    let end = loop {
        thread::sleep(Duration::from_millis(10));
        let now = Instant::now();
        let (rx_now, tx_now) = workers.iter().fold((0, 0), |a, w| {
            let c = &w.counters;
            (a.0 + c.rx_packets.load(Ordering::Relaxed), a.1 + c.tx_packets.load(Ordering::Relaxed))
        });
        active.observe(now, rx_now + tx_now);
        if let Some(w) = workers.iter().find(|w| w.handle.is_finished()) {
            break EndReason::WorkerFailed(format!("the worker for queue {} stopped unexpectedly", w.queue));
        }
        if stop.load(Ordering::Relaxed) {
            break EndReason::Stopped;
        }
        if cfg.duration.is_some_and(|d| now - start >= d) {
            break EndReason::Duration;
        }
        // Faults: the interface going down / up, or away altogether.
        let state = link.state();
        if state != link_state {
            let t = (now - start).as_secs_f64();
            let what = match state {
                None => "gone".to_owned(),
                Some((up, running)) => {
                    format!("{}{}", if up { "up" } else { "down" }, if up && !running { " (no carrier)" } else { "" })
                }
            };
            log::warn!("{}: {} is {what}", format_args!("{t:.1} s"), cfg.iface);
            events.push(format!("{t:.1} s: {} {what}", cfg.iface));
            link_state = state;
            if state.is_none() {
                break EndReason::InterfaceGone(format!("{} disappeared {t:.1} s into the run", cfg.iface));
            }
        }
        if now - last >= Duration::from_secs(1) {
            let mut per_queue = Vec::with_capacity(workers.len());
            for (w, prev) in workers.iter().zip(last_snaps.iter_mut()) {
                let s = w.counters.snapshot();
                let d = s.since(prev);
                per_queue.push((w.queue, d.rx_packets, d.rx_bytes, d.tx_packets));
                *prev = s;
            }
            on_tick(&Tick { elapsed: now - start, per_queue, interval: now - last });
            last = now;
        }
    };
    let elapsed = start.elapsed();
    halt.store(true, Ordering::Relaxed);
    wake_sleepers(&workers, cfg.poll);

    let mut end = end;
    let mut queues = Vec::with_capacity(workers.len());
    let mut open_sockets = Vec::with_capacity(workers.len());
    let mut acct: Option<Accounting> = None;
    let mut parse: Option<ParseSummary> = None;
    let mut runts = 0;
    let mut out_stats = Vec::new();
    for w in workers {
        let joined = w.handle.join();
        // After the join: the worker's last counter updates (and its CPU time) are in.
        let counters = w.counters.snapshot();
        let (xdp_statistics, program) = match joined {
            Ok(r) => {
                let st = r.xsk.statistics().unwrap_or_default();
                open_sockets.push(r.xsk);
                if let Some(o) = r.out {
                    out_stats.push(o.statistics().unwrap_or_default());
                    open_sockets.push(o);
                }
                match (&mut acct, r.acct) {
                    (Some(a), Some(b)) => a.merge(&b),
                    (a @ None, b) => *a = b,
                    _ => {}
                }
                match (&mut parse, r.parse) {
                    (Some(a), Some(b)) => Parse::add(a, &b),
                    (a @ None, b) => *a = b,
                    _ => {}
                }
                runts += r.runts;
                (st, steering.counters(w.queue).unwrap_or_default())
            }
            Err(panic) => {
                let msg = panic_message(&panic);
                end = EndReason::WorkerFailed(format!("the worker for queue {} panicked: {msg}", w.queue));
                (XdpStatistics::default(), steering.counters(w.queue).unwrap_or_default())
            }
        };
        let (rx_pps, _) = rates(counters.rx_packets, counters.rx_bytes, elapsed.as_secs_f64());
        queues.push(QueueSummary { queue: w.queue, core: w.core, counters, rx_pps, xdp_statistics, program });
    }
    drop(open_sockets);
    steering.detach();

    let mut total = CounterSnapshot::default();
    let mut program = QueueCounters::default();
    for q in &queues {
        total.add(&q.counters);
        program.add(&q.program);
    }
    let secs = elapsed.as_secs_f64();
    let (rx_pps, rx_mbps) = rates(total.rx_packets, total.rx_bytes, secs);
    let active_s = active.seconds();
    let (base_rx, base_tx) = (active.base_fraction(total.rx_packets), active.base_fraction(total.tx_packets));
    Ok(RunSummary {
        iface: cfg.iface.clone(),
        mode: cfg.mode,
        xdp_mode: steering.mode(),
        bind: if zerocopy { BindMode::ZeroCopy } else { BindMode::Copy },
        need_wakeup: cfg.xsk.need_wakeup,
        filter: cfg.filter.to_string(),
        duration_s: secs,
        rx_packets: total.rx_packets,
        rx_bytes: total.rx_bytes,
        rx_pps,
        rx_mbps,
        active_s,
        active_rx_pps: if active_s > 0.0 { (total.rx_packets - base_rx) as f64 / active_s } else { 0.0 },
        active_tx_pps: if active_s > 0.0 { (total.tx_packets - base_tx) as f64 / active_s } else { 0.0 },
        tx_packets: total.tx_packets,
        tx_completed: total.tx_completed,
        wakeups: total.wakeups,
        queues,
        program,
        accounting: acct.map(|a| a.summary()),
        parse,
        runts,
        fwd: out_iface.map(|o| FwdInfo {
            out_iface: o,
            umem: if fwd_shared { "shared" } else { "copy" },
            shared_umem_error,
            out_xdp_statistics: out_stats,
        }),
        events,
        end,
    })
}

/// Workers sleeping in epoll_wait see the halt flag only when woken: signal each until
/// it has returned (a signal sent just before a worker starts its wait is lost, hence
/// the repeats). A worker that never returns is left to the join, as before.
fn wake_sleepers(workers: &[Worker], poll: crate::config::PollWait) {
    use std::os::unix::thread::JoinHandleExt;
    if poll.timeout_arg().is_none() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let mut asleep = false;
        for w in workers.iter().filter(|w| !w.handle.is_finished()) {
            sys::wake_thread(w.handle.as_pthread_t());
            asleep = true;
        }
        if !asleep {
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Tracks when packet counters first moved and when they last changed.
#[derive(Default)]
struct ActivePeriod {
    /// (time, total count) at the first sample with packets.
    first: Option<(Instant, u64)>,
    last_change: Option<Instant>,
    last_total: u64,
}

impl ActivePeriod {
    fn observe(&mut self, now: Instant, total: u64) {
        if total != self.last_total {
            if self.first.is_none() {
                self.first = Some((now, total));
            }
            self.last_change = Some(now);
            self.last_total = total;
        }
    }

    fn seconds(&self) -> f64 {
        match (self.first, self.last_change) {
            (Some((t0, _)), Some(t1)) => (t1 - t0).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// The part of `final_count` already counted at the first sample (scaled from the
    /// combined total to this counter), excluded from the active rate.
    fn base_fraction(&self, final_count: u64) -> u64 {
        match self.first {
            Some((_, base)) if self.last_total > 0 => {
                (final_count as u128 * base as u128 / self.last_total as u128) as u64
            }
            _ => 0,
        }
    }
}

fn pick_cores(cfg: &RunConfig) -> Result<Vec<u32>, RunError> {
    let online: Vec<u32> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id as u32).collect();
    let nq = cfg.queues.ids().len();
    match &cfg.cores {
        Some(c) => {
            c.check_against(&online)?;
            if c.ids().len() != nq {
                return Err(RunError::CoreCount { queues: nq, cores: c.ids().len() });
            }
            Ok(c.ids().to_vec())
        }
        None => Ok((0..nq).map(|i| online.get(i % online.len().max(1)).copied().unwrap_or(0)).collect()),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

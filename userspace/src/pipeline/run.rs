//! Starting a receive pipeline and watching it: checks, the steering program, one socket
//! per queue (and per out port), the pinned workers, the once-a-second ticks, the stop,
//! and the summary. Setup failures leave nothing attached or running.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use xdp_common::QueueCounters;

use super::{
    EndReason, OutPortInfo, PipelineConfig, PipelineError, QueueSummary, RunSummary,
    busy::BusyPollDevice,
    driver::{KernelBusyPoll, OutSocket, WaitPolicy, rx_loop},
    stage::Stage,
};
use crate::{
    accounting::Accounting,
    config::{BindMode, PollWait, XdpMode},
    loader::Steering,
    stats::{CounterSnapshot, SharedCounters, WorkerCounters, rates},
    sys::{self, XdpStatistics},
    xsk::{Xsk, XskConfig},
};

/// Rates over the last second, for a progress line.
#[derive(Clone, Debug)]
pub struct Tick {
    /// Time since the workers started.
    pub elapsed: Duration,
    /// (queue, rx packets, rx bytes, tx packets) during the last interval.
    pub per_queue: Vec<(u32, u64, u64, u64)>,
    /// The interval's length.
    pub interval: Duration,
}

/// What a worker hands back when it ends.
struct WorkerResult<T> {
    xsk: Xsk,
    out: Option<Xsk>,
    acct: Option<Accounting>,
    stage: T,
}

struct Worker<T> {
    queue: u32,
    core: u32,
    counters: Arc<SharedCounters>,
    handle: thread::JoinHandle<WorkerResult<T>>,
}

/// A pipeline whose workers run: [`ReadyRun::wait`] watches it to the end. Dropped
/// without a wait (an error or a panic between `start` and `wait`), it takes the queues
/// out of the XSKMAP, stops and joins its workers, and detaches.
pub struct ReadyRun<T> {
    inner: Option<Running<T>>,
}

/// What a started run owns.
struct Running<T> {
    cfg: PipelineConfig,
    steering: Steering,
    workers: Vec<Worker<T>>,
    halt: Arc<AtomicBool>,
    stop_event: Arc<sys::StopEvent>,
    link: sys::LinkWatch,
    zerocopy: bool,
    fwd: Option<(String, bool, Option<String>)>,
    /// Busy-poll's device knobs, restored before the program detaches.
    busy: Option<BusyPollDevice>,
    // Keeps the zero-copy TX program on the out port while the run lasts.
    _out_program: Option<Steering>,
}

/// Frames the UMEM holds when the configuration leaves it to xdpipe: receive-only stages
/// keep exactly the fill ring's worth in circulation (frames then come back to the slot
/// they left, see `Xsk::fill_produce`, and the fill ring can never overflow); stages that
/// transmit hold frames on the TX and completion rings too.
fn frames_for(xsk: &XskConfig) -> u32 {
    if xsk.frames > 0 {
        return xsk.frames;
    }
    let rx = xsk.rx_size.map_or(0, |r| r.get());
    match xsk.tx_size {
        None => xsk.fill_size.get(),
        Some(tx) => xsk.fill_size.get() + rx + tx.get() + xsk.comp_size.get(),
    }
}

pub(super) fn start<S, F>(cfg: PipelineConfig, factory: F) -> Result<ReadyRun<S::Summary>, PipelineError>
where
    S: Stage,
    F: Fn(u32) -> S + Send + Sync + 'static,
{
    if !sys::is_root() {
        return Err(PipelineError::NotRoot);
    }
    in_netns(cfg.netns.clone(), || start_here(cfg, factory))
}

/// Runs `f` with the calling thread in namespace `ns` (if any) and back in its own after:
/// the threads `f` starts stay in `ns`, the sockets and links it makes belong to `ns`.
pub(super) fn in_netns<R>(
    ns: Option<String>,
    f: impl FnOnce() -> Result<R, PipelineError>,
) -> Result<R, PipelineError> {
    match ns {
        None => f(),
        Some(ns) => crate::net::ns::with_netns(&ns, || Ok(f()))
            .map_err(|source| PipelineError::Namespace { ns: ns.clone(), source: Box::new(source) })?,
    }
}

fn start_here<S, F>(mut cfg: PipelineConfig, factory: F) -> Result<ReadyRun<S::Summary>, PipelineError>
where
    S: Stage,
    F: Fn(u32) -> S + Send + Sync + 'static,
{
    // Stages that never transmit get no TX ring (in copy mode a wakeup of a socket with
    // one runs a TX pass in the kernel).
    if !S::TRANSMITS && cfg.out_iface.is_none() {
        cfg.xsk.tx_size = None;
    }
    // A stage that transmits needs a TX ring: without one its first Tx verdict would wait
    // for room forever.
    if S::TRANSMITS && cfg.xsk.tx_size.is_none() {
        cfg.xsk.tx_size = Some(cfg.xsk.fill_size);
    }
    cfg.xsk.frames = frames_for(&cfg.xsk);
    if sys::ifindex(&cfg.iface).is_none() {
        return Err(PipelineError::NoSuchInterface(cfg.iface.clone()));
    }
    let nq = sys::rx_queue_count(&cfg.iface)
        .map_err(|source| PipelineError::QueueCount { iface: cfg.iface.clone(), source })?;
    cfg.queues.check_against(&cfg.iface, nq)?;
    let cores = pick_cores(&cfg)?;
    if let Some(o) = &cfg.out_iface {
        if *o == cfg.iface {
            return Err(PipelineError::SameOutIface(o.clone()));
        }
        if sys::ifindex(o).is_none() {
            return Err(PipelineError::NoSuchInterface(o.clone()));
        }
        let n = sys::rx_queue_count(o).map_err(|source| PipelineError::QueueCount { iface: o.clone(), source })?;
        cfg.queues.check_against(o, n)?;
    }
    for ifc in std::iter::once(&cfg.iface).chain(cfg.out_iface.as_ref()) {
        if !cfg.allow_uplink
            && let Some(why) = crate::preflight::uplink_reason(ifc)?
        {
            return Err(crate::preflight::PreflightError::Uplink { iface: ifc.clone(), why }.into());
        }
        crate::preflight::check_mtu(ifc, cfg.xsk.frame_size.get())?;
    }
    // Frames the MTU allows that span several UMEM frames arrive as chains (XDP_USE_SG).
    let (frame_len, segs) = crate::preflight::check_mtu(&cfg.iface, cfg.xsk.frame_size.get())?;
    cfg.xsk.sg = segs > 1;
    if let Some(o) = &cfg.out_iface
        && segs > 1
    {
        log::warn!(
            "{}: frames past {} B arrive as multi-buffer frames, which are not forwarded to {o} (counted unsendable)",
            cfg.iface,
            cfg.xsk.frame_size.get() - 256
        );
    }
    crate::preflight::check_no_foreign_program(&cfg.iface, cfg.force)?;

    // Checked before attaching: a driver without rx-sg refuses a native program at this
    // MTU in its own words (igb: "The RX buffer size is too small for the frame size") or
    // takes it and drops the chains. Auto then goes straight to skb mode.
    let room = cfg.xsk.frame_size.get() - 256;
    let xdp_mode = match cfg.xdp_mode {
        XdpMode::Skb => XdpMode::Skb,
        m => match (m, crate::preflight::check_multi_buffer(&cfg.iface, frame_len, segs, room, true, false)) {
            (_, Ok(())) => m,
            (XdpMode::Auto, Err(e)) => {
                log::info!("{e}: auto mode attaches in skb mode");
                XdpMode::Skb
            }
            (_, Err(e)) => return Err(e.into()),
        },
    };
    crate::preflight::check_multi_buffer(&cfg.iface, frame_len, segs, room, false, cfg.xsk.bind == BindMode::ZeroCopy)?;
    let mut steering = Steering::attach(&cfg.iface, xdp_mode, cfg.filter, cfg.rx_metadata)?;
    // From here on, `steering` detaches on every return path (drop).
    // Out sockets only transmit, but on a zero-copy bind some drivers (igb) send nothing
    // without a program on the port. A physical driver resets the device to attach one,
    // so where zero-copy may be chosen (asked for, or auto on a driver that declares it)
    // it goes on before any socket binds (after, igb under QEMU lost frames sent once
    // carrier was back); it is taken off again below if the sockets bound in copy mode.
    let early_out_program = match &cfg.out_iface {
        Some(o) if crate::loader::may_bind_zero_copy(o, cfg.xsk.bind, cfg.xsk.sg) => {
            crate::loader::zero_copy_tx_program(o)
        }
        _ => None,
    };
    // Out sockets only transmit: no RX ring, so none of their frames wait on a fill ring.
    // (With a zero-copy bind the driver still takes that queue's ingress from the out
    // socket's empty fill ring: traffic arriving on the out port's queue is dropped while
    // the run lasts, as with any transmit-only zero-copy socket.)
    let out_xsk = XskConfig { rx_size: None, tx_size: cfg.xsk.tx_size.or(Some(cfg.xsk.fill_size)), ..cfg.xsk };
    let mut sockets = Vec::with_capacity(cfg.queues.ids().len());
    let mut shared_umem_error = None;
    for &q in cfg.queues.ids() {
        let xsk = Xsk::open(&cfg.iface, q, &cfg.xsk)?;
        let out = match &cfg.out_iface {
            None => None,
            Some(o) => Some(match xsk.open_shared(o, q, &out_xsk) {
                Ok(out) => OutSocket { xsk: out, shared: true },
                Err(e) => {
                    log::warn!("{o} queue {q}: no shared UMEM ({e}); forwarding with a copy");
                    shared_umem_error = Some(e.to_string());
                    OutSocket { xsk: Xsk::open(o, q, &out_xsk)?, shared: false }
                }
            }),
        };
        // `Xsk::open` put frames on the fill ring before binding, so frames steered to
        // the socket from here on find it filled even if the worker starts late.
        steering.bind_socket(q, xsk.fd())?;
        sockets.push((q, xsk, out));
    }
    let fwd_shared = sockets.iter().all(|(_, _, o)| o.as_ref().is_none_or(|o| o.shared));
    let out_zerocopy = sockets.iter().any(|(_, _, o)| o.as_ref().is_some_and(|o| o.xsk.is_zerocopy()));
    let out_program = cfg
        .out_iface
        .as_ref()
        .and_then(|o| crate::loader::keep_zero_copy_tx_program(o, early_out_program, out_zerocopy));
    let zerocopy = sockets.iter().all(|(_, x, _)| x.is_zerocopy());

    // Busy polling: the sockets' options, then the device's NAPI knobs (after the attach:
    // a veth has NAPIs only with a native program). Dropped on an error below, the
    // device's values are restored.
    let busy = if cfg.wait == PollWait::BusyPoll {
        for (_, xsk, _) in &sockets {
            sys::set_busy_poll(xsk.fd(), cfg.busy_poll.usecs, cfg.busy_poll.budget)
                .map_err(PipelineError::BusyPollSocket)?;
        }
        let ifindex = sys::ifindex(&cfg.iface).ok_or_else(|| PipelineError::NoSuchInterface(cfg.iface.clone()))?;
        let mut d = super::busy::apply(&cfg.iface, ifindex, &cfg.busy_poll)
            .map_err(|source| PipelineError::BusyPollDevice { iface: cfg.iface.clone(), source })?;
        let ids = sockets.iter().map(|(_, x, _)| sys::incoming_napi_id(x.fd()).unwrap_or(0)).collect();
        d.info.set_socket_napi_ids(ids);
        log::info!(
            "busy-poll on {}: {} (napi {:?}), defer_hard_irqs {}, gro_flush_timeout {} ns, SO_BUSY_POLL {} us, budget {}",
            cfg.iface,
            d.info.mechanism,
            d.info.napi_ids,
            cfg.busy_poll.defer_hard_irqs,
            cfg.busy_poll.gro_flush_timeout_ns,
            cfg.busy_poll.usecs,
            cfg.busy_poll.budget
        );
        Some(d)
    } else {
        None
    };

    // Opened before any worker starts, so failing here leaves nothing running.
    let link = sys::LinkWatch::new(&cfg.iface)
        .map_err(|e| PipelineError::LinkWatch { iface: cfg.iface.clone(), source: e })?;
    let halt = Arc::new(AtomicBool::new(false));
    let stop_event = Arc::new(sys::StopEvent::new().map_err(PipelineError::Wait)?);
    // Each worker's wait policy, made before any worker starts (failing leaves none running).
    let mut waits = Vec::with_capacity(sockets.len());
    for (_, xsk, _) in &sockets {
        let sleep = match cfg.wait.timeout_arg() {
            Some(t) => {
                let w = sys::ReadableWaiter::new(xsk.fd(), &stop_event).map_err(PipelineError::Wait)?;
                // Only a zero-copy driver sets the fill ring's need_wakeup behind the
                // worker's back: a copy bind has no timer.
                let w = if super::driver::kernel_may_ask(cfg.xsk.need_wakeup, xsk) {
                    w.with_recheck(super::driver::NEED_WAKEUP_RECHECK_MS as u32).map_err(PipelineError::Wait)?
                } else {
                    w
                };
                Some((w, t))
            }
            None => None,
        };
        let busy_poll = match (cfg.wait, cfg.busy_poll.irq_suspend_ns) {
            (PollWait::BusyPoll, None) => Some(KernelBusyPoll::Recvfrom),
            (PollWait::BusyPoll, Some(_)) => {
                let params = sys::EpollParams::preferred(cfg.busy_poll.usecs, cfg.busy_poll.budget);
                let w =
                    sys::ReadableWaiter::busy_polling(xsk.fd(), &stop_event, params).map_err(PipelineError::Wait)?;
                Some(KernelBusyPoll::Epoll(w, -1))
            }
            _ => None,
        };
        let coalesce = if sleep.is_some() { cfg.coalesce } else { None };
        waits.push(WaitPolicy {
            need_wakeup: cfg.xsk.need_wakeup,
            sleep,
            idle_backoff_ns: if busy_poll.is_some() { 0 } else { cfg.idle_backoff_ns },
            busy_poll,
            coalesce,
        });
    }
    let factory = Arc::new(factory);
    let mut workers = Vec::with_capacity(sockets.len());
    let (confined_tx, confined) = std::sync::mpsc::channel();
    for (((q, mut xsk, mut out), core), wait) in sockets.into_iter().zip(cores).zip(waits) {
        let counters = Arc::new(SharedCounters::new(WorkerCounters::default()));
        let (c2, halt2, batch, factory) = (counters.clone(), halt.clone(), cfg.batch.get(), factory.clone());
        // Allocated here, before the worker starts: the loop itself never allocates.
        let mut acct = cfg.stamps.then(|| Accounting::for_queue(q).reading_rx_metadata(cfg.rx_metadata));
        let confined_tx = confined_tx.clone();
        let spawned = thread::Builder::new().name(format!("xdpipe-q{q}")).spawn(move || {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core as usize }) {
                log::warn!("could not pin the queue {q} worker to core {core}");
            }
            // The loop touches only its mapped rings and makes sendto/recvfrom/epoll calls
            // on fds it holds: it needs no capability and no root uid.
            let confined = sys::confine_worker_thread(&[]);
            // Coalescing sleeps tens of microseconds per wakeup: end them on time.
            if wait.coalesce.is_some()
                && let Err(e) = sys::set_timer_slack_ns(1_000)
            {
                log::warn!("queue {q}: {e}; coalescing sleeps may end up to 50 us late");
            }
            let ok = confined.is_ok();
            let _ = confined_tx.send((q, confined));
            let mut stage = factory(q);
            if ok {
                rx_loop(&mut xsk, out.as_mut(), &mut stage, acct.as_mut(), batch, &wait, &c2, &halt2);
            }
            c2.cpu_ns.store(sys::thread_cpu_ns(), Ordering::Relaxed);
            WorkerResult { xsk, out: out.map(|o| o.xsk), acct, stage: stage.finish() }
        });
        match spawned {
            Ok(handle) => workers.push(Worker { queue: q, core, counters, handle }),
            Err(source) => {
                halt.store(true, Ordering::Relaxed);
                stop_event.set();
                for w in workers {
                    let _ = w.handle.join();
                }
                return Err(PipelineError::Spawn { queue: q, source });
            }
        }
    }
    drop(confined_tx);
    let mut failed = None;
    for _ in 0..workers.len() {
        match confined.recv() {
            Ok((_, Ok(()))) => {}
            Ok((queue, Err(source))) => {
                failed = Some(PipelineError::Confine { queue, source });
                break;
            }
            // A worker ended before it said: its join below reports the panic.
            Err(_) => break,
        }
    }
    // The thread that started the run keeps its own privileges: it leaves the namespace
    // (setns) and detaches at the end, and for a library user it is their thread.
    if let Some(e) = failed {
        halt.store(true, Ordering::Relaxed);
        stop_event.set();
        for w in workers {
            let _ = w.handle.join();
        }
        return Err(e);
    }
    log::info!(
        "ready: {} worker(s) on {} queue(s) {:?}, {:?} XDP, {} bind",
        workers.len(),
        cfg.iface,
        cfg.queues.ids(),
        steering.mode(),
        if zerocopy { "zero-copy" } else { "copy" }
    );
    let fwd = cfg.out_iface.clone().map(|o| (o, fwd_shared, shared_umem_error));
    Ok(ReadyRun {
        inner: Some(Running {
            cfg,
            steering,
            workers,
            halt,
            stop_event,
            link,
            zerocopy,
            fwd,
            busy,
            _out_program: out_program,
        }),
    })
}

impl<T> ReadyRun<T> {
    /// Watches the run until `stop` is set, `duration` passes, a worker fails or the
    /// interface goes; then stops the workers, detaches and returns the summary.
    /// `on_tick` gets the last second's counts about once a second.
    pub fn wait(
        mut self,
        stop: &AtomicBool,
        duration: Option<Duration>,
        on_tick: &mut dyn FnMut(&super::Tick),
    ) -> Result<RunSummary<T>, PipelineError> {
        // The run stays in `self` while it is watched: if `on_tick` panics, the drop of
        // `self` stops and joins the workers and detaches (taken out before the watch,
        // the workers would go on spinning in a library user's process).
        let Some(Running { cfg, workers, link, .. }) = self.inner.as_ref() else {
            unreachable!("a ReadyRun is waited on once (wait takes it by value)");
        };
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
            if duration.is_some_and(|d| now - start >= d) {
                break EndReason::Duration;
            }
            // Faults: the interface going down / up, or away altogether.
            let state = link.state();
            if state != link_state {
                let t = (now - start).as_secs_f64();
                let what = match state {
                    None => "gone".to_owned(),
                    Some((up, running)) => format!(
                        "{}{}",
                        if up { "up" } else { "down" },
                        if up && !running { " (no carrier)" } else { "" }
                    ),
                };
                log::warn!("{t:.1} s: {} is {what}", cfg.iface);
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
                on_tick(&super::Tick { elapsed: now - start, per_queue, interval: now - last });
                last = now;
            }
        };
        let elapsed = start.elapsed();
        let Some(Running { cfg, mut steering, workers, halt, stop_event, link: _, zerocopy, fwd, busy, _out_program }) =
            self.inner.take()
        else {
            unreachable!("taken only here");
        };
        // Take the queues out of the XSKMAP first: from here on the program passes what
        // it would have redirected, so what the sockets hold no longer grows while the
        // workers drain their RX rings (unbind_all returns once the program runs that
        // still redirected have flushed their frames to the rings). Then drain (halt),
        // then, after the joins, read the sockets' and the program's counters: so
        // `redirected = received + the sockets' drops` holds even under traffic.
        steering.unbind_all();
        halt.store(true, Ordering::Relaxed);
        stop_event.set();

        let mut end = end;
        let mut queues = Vec::with_capacity(workers.len());
        let mut open_sockets = Vec::with_capacity(workers.len());
        let mut acct: Option<Accounting> = None;
        let mut stages = Vec::with_capacity(workers.len());
        let mut out_stats = Vec::new();
        for w in workers {
            let joined = w.handle.join();
            // After the join: the worker's last counter updates (and its CPU time) are in.
            let counters = w.counters.snapshot();
            let xdp_statistics = match joined {
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
                    stages.push(r.stage);
                    st
                }
                Err(panic) => {
                    let msg = panic_message(&panic);
                    end = EndReason::WorkerFailed(format!("the worker for queue {} panicked: {msg}", w.queue));
                    XdpStatistics::default()
                }
            };
            let program = steering.counters(w.queue).unwrap_or_default();
            let (rx_pps, _) = rates(counters.rx_packets, counters.rx_bytes, elapsed.as_secs_f64());
            queues.push(QueueSummary { queue: w.queue, core: w.core, counters, rx_pps, xdp_statistics, program });
        }
        drop(open_sockets);
        // Before the detach: a veth's NAPIs (and their settings) go with the program.
        let busy_poll = busy.map(|b| {
            let info = b.info.clone();
            b.restore();
            info
        });
        let xdp_mode = steering.mode();
        let xdp_rx_metadata = steering.rx_metadata();
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
        let per_active = |n: u64| if active_s > 0.0 { n as f64 / active_s } else { 0.0 };
        Ok(RunSummary {
            iface: cfg.iface.clone(),
            xdp_mode,
            xdp_rx_metadata,
            bind: if zerocopy { BindMode::ZeroCopy } else { BindMode::Copy },
            need_wakeup: cfg.xsk.need_wakeup,
            wait: cfg.wait.to_string(),
            busy_poll,
            coalesce: if cfg.wait.timeout_arg().is_some() { cfg.coalesce } else { None },
            filter: cfg.filter.to_string(),
            duration_s: secs,
            rx_packets: total.rx_packets,
            rx_bytes: total.rx_bytes,
            rx_pps,
            rx_mbps,
            active_s,
            active_rx_pps: per_active(total.rx_packets - base_rx),
            active_tx_pps: per_active(total.tx_packets - base_tx),
            tx_packets: total.tx_packets,
            tx_completed: total.tx_completed,
            wakeups: total.wakeups,
            queues,
            program,
            accounting: acct.map(|a| a.summary()),
            fwd: fwd.map(|(out_iface, shared, shared_umem_error)| OutPortInfo {
                out_iface,
                umem: if shared { "shared" } else { "copy" },
                shared_umem_error,
                out_xdp_statistics: out_stats,
            }),
            events,
            end,
            stages,
        })
    }
}

impl<T> Drop for ReadyRun<T> {
    fn drop(&mut self) {
        if let Some(mut r) = self.inner.take() {
            r.steering.unbind_all();
            r.halt.store(true, Ordering::Relaxed);
            r.stop_event.set();
            for w in r.workers.drain(..) {
                let _ = w.handle.join();
            }
            if let Some(b) = r.busy.take() {
                b.restore();
            }
            // The sockets went with the workers' results; the program detaches on drop.
        }
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

/// One core per queue: the ones given (checked), or the usable cores in turn.
pub(super) fn pick_cores(cfg: &PipelineConfig) -> Result<Vec<u32>, PipelineError> {
    let online: Vec<u32> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id as u32).collect();
    let nq = cfg.queues.ids().len();
    match &cfg.cores {
        Some(c) => {
            c.check_against(&online)?;
            if c.ids().len() != nq {
                return Err(PipelineError::CoreCount { queues: nq, cores: c.ids().len() });
            }
            Ok(c.ids().to_vec())
        }
        None => Ok((0..nq).map(|i| online.get(i % online.len().max(1)).copied().unwrap_or(0)).collect()),
    }
}

/// A panic payload as text (its `&str` or `String`, else "unknown panic").
pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

//! Transmit pipelines: one pinned worker per queue whose [`Source`] fills the frames,
//! driven by `driver::tx_loop`. No steering program is needed, except the one some
//! zero-copy drivers (igb) want on a port before they send anything.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use serde::Serialize;

use super::{
    PipelineConfig, PipelineError,
    driver::{TxTotals, WaitPolicy, tx_loop},
    run::{panic_message, pick_cores},
    stage::Source,
    txstamps::TxStamps,
};
use crate::{
    config::BindMode,
    stats::{CounterSnapshot, SharedCounters, WorkerCounters},
    sys::{self, XdpStatistics},
    xsk::{Xsk, XskConfig},
};

/// One transmit queue's results.
#[derive(Clone, Debug, Serialize)]
pub struct TxQueueSummary {
    /// The TX queue.
    pub queue: u32,
    /// The core its worker was pinned to (None: not pinned, the scheduler's choice).
    pub core: Option<u32>,
    /// Frames put on the TX ring.
    pub sent: u64,
    /// Frames the kernel reported sent.
    pub completed: u64,
    /// Bytes of the frames sent (without FCS).
    pub bytes: u64,
    /// TX completion timestamps read back (AF_XDP TX metadata; all zero without).
    pub tx_stamps: TxStamps,
    /// The worker's counters.
    pub counters: CounterSnapshot,
    /// The socket's XDP_STATISTICS.
    pub xdp_statistics: XdpStatistics,
}

/// A whole transmit run's results; `T` is the source's summary type.
#[derive(Clone, Debug, Serialize)]
pub struct TxSummary<T> {
    /// The interface.
    pub iface: String,
    /// The bind mode the kernel chose.
    pub bind: BindMode,
    /// Seconds from the workers' start to the last one's end.
    pub duration_s: f64,
    /// Per queue.
    pub queues: Vec<TxQueueSummary>,
    /// A worker that panicked, if any.
    pub failed: Option<String>,
    /// Each queue's source summary, in queue order.
    pub stages: Vec<T>,
}

impl<T> TxSummary<T> {
    /// Totals over the queues.
    pub fn totals(&self) -> TxTotals {
        self.queues.iter().fold(TxTotals::default(), |mut a, q| {
            a.sent += q.sent;
            a.completed += q.completed;
            a.bytes += q.bytes;
            a.stamps.add(&q.tx_stamps);
            a
        })
    }
}

/// A pipeline with its source: ready to run (see [`super::Pipeline::source`]).
pub struct SourcePipeline<F> {
    cfg: PipelineConfig,
    factory: F,
}

impl<S, F> SourcePipeline<F>
where
    S: Source,
    F: Fn(u32) -> S + Send + Sync + 'static,
{
    pub(super) fn new(cfg: PipelineConfig, factory: F) -> Self {
        Self { cfg, factory }
    }

    /// Sends until every source is done, `stop` is set or `duration` passes.
    pub fn run(self, stop: &AtomicBool, duration: Option<Duration>) -> Result<TxSummary<S::Summary>, PipelineError> {
        let Self { cfg, factory } = self;
        if !sys::is_root() {
            return Err(PipelineError::NotRoot);
        }
        super::run::in_netns(cfg.netns.clone(), || run_here(cfg, factory, stop, duration))
    }
}

fn run_here<S, F>(
    cfg: PipelineConfig,
    factory: F,
    stop: &AtomicBool,
    duration: Option<Duration>,
) -> Result<TxSummary<S::Summary>, PipelineError>
where
    S: Source,
    F: Fn(u32) -> S + Send + Sync + 'static,
{
    if sys::ifindex(&cfg.iface).is_none() {
        return Err(PipelineError::NoSuchInterface(cfg.iface.clone()));
    }
    if !cfg.allow_uplink
        && let Some(why) = crate::preflight::uplink_reason(&cfg.iface)?
    {
        return Err(crate::preflight::PreflightError::Uplink { iface: cfg.iface.clone(), why }.into());
    }
    // Transmit workers are pinned only to cores asked for: a generator left to the
    // scheduler must not land on the core a receiver's default pinning takes.
    let cores: Vec<Option<u32>> = match cfg.cores {
        Some(_) => pick_cores(&cfg)?.into_iter().map(Some).collect(),
        None => vec![None; cfg.queues.ids().len()],
    };
    let tx_size = cfg.xsk.tx_size.unwrap_or(cfg.xsk.comp_size);
    let frames = if cfg.xsk.frames > 0 { cfg.xsk.frames } else { tx_size.get() + cfg.xsk.comp_size.get() };
    let xsk_cfg = XskConfig { rx_size: None, tx_size: Some(tx_size), frames, ..cfg.xsk };
    // A physical driver resets the device to attach a program. Where the bind may come
    // out zero-copy (asked for, or auto on a driver that has it), the program goes on
    // before the sockets bind, so the reset cannot catch a bound socket (igb under
    // QEMU then lost part of what it sent after carrier came back).
    let early = if crate::loader::may_bind_zero_copy(&cfg.iface, xsk_cfg.bind, xsk_cfg.sg) {
        crate::loader::zero_copy_tx_program(&cfg.iface)
    } else {
        None
    };
    let mut sockets = Vec::with_capacity(cfg.queues.ids().len());
    for &q in cfg.queues.ids() {
        sockets.push((q, Xsk::open(&cfg.iface, q, &xsk_cfg)?));
    }
    let zerocopy = sockets.iter().all(|(_, x)| x.is_zerocopy());
    let _zc_program = crate::loader::keep_zero_copy_tx_program(&cfg.iface, early, zerocopy);
    let halt = Arc::new(AtomicBool::new(false));
    let deadline_ns = duration.map(|d| sys::monotonic_ns() + d.as_nanos() as u64);
    let factory = Arc::new(factory);
    let start = std::time::Instant::now();
    let mut workers = Vec::with_capacity(sockets.len());
    let (confined_tx, confined) = std::sync::mpsc::channel();
    for ((q, mut xsk), core) in sockets.into_iter().zip(cores) {
        let confined_tx = confined_tx.clone();
        let counters = Arc::new(SharedCounters::new(WorkerCounters::default()));
        let (c2, halt2, batch, factory) = (counters.clone(), halt.clone(), cfg.batch.get(), factory.clone());
        let wait = WaitPolicy {
            need_wakeup: cfg.xsk.need_wakeup,
            sleep: None,
            idle_backoff_ns: 0,
            busy_poll: None,
            coalesce: None,
        };
        let spawned = thread::Builder::new().name(format!("xdpipe-tx{q}")).spawn(move || {
            if let Some(core) = core
                && !core_affinity::set_for_current(core_affinity::CoreId { id: core as usize })
            {
                log::warn!("could not pin the queue {q} transmit worker to core {core}");
            }
            // The loop touches only its mapped rings and kicks with sendto on the fd it
            // holds: no capability, no root uid.
            let confined = sys::confine_worker_thread(&[]);
            let ok = confined.is_ok();
            let _ = confined_tx.send((q, confined));
            let mut source = factory(q);
            let totals = if ok {
                tx_loop(&mut xsk, &mut source, batch, &wait, &c2, &halt2, deadline_ns)
            } else {
                Default::default()
            };
            c2.cpu_ns.store(sys::thread_cpu_ns(), Ordering::Relaxed);
            (xsk, totals, source.finish())
        });
        match spawned {
            Ok(h) => workers.push((q, core, counters, h)),
            Err(source) => {
                halt.store(true, Ordering::Relaxed);
                for (_, _, _, h) in workers {
                    let _ = h.join();
                }
                return Err(PipelineError::Spawn { queue: q, source });
            }
        }
    }
    drop(confined_tx);
    for _ in 0..workers.len() {
        match confined.recv() {
            Ok((_, Ok(()))) => {}
            Ok((queue, Err(source))) => {
                halt.store(true, Ordering::Relaxed);
                for (_, _, _, h) in workers {
                    let _ = h.join();
                }
                return Err(PipelineError::Confine { queue, source });
            }
            // A worker ended before it said: its join below reports the panic.
            Err(_) => break,
        }
    }
    log::info!(
        "ready: {} transmit worker(s) on {} queue(s) {:?}, {} bind",
        workers.len(),
        cfg.iface,
        cfg.queues.ids(),
        if zerocopy { "zero-copy" } else { "copy" }
    );
    // The workers end by themselves (source done, deadline); a stop reaches them here.
    while !workers.iter().all(|w| w.3.is_finished()) {
        if stop.load(Ordering::Relaxed) {
            halt.store(true, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(5));
    }
    let mut queues = Vec::with_capacity(workers.len());
    let mut stages = Vec::with_capacity(workers.len());
    let mut failed = None;
    for (queue, core, counters, h) in workers {
        match h.join() {
            Ok((xsk, t, summary)) => {
                queues.push(TxQueueSummary {
                    queue,
                    core,
                    sent: t.sent,
                    completed: t.completed,
                    bytes: t.bytes,
                    tx_stamps: t.stamps,
                    counters: counters.snapshot(),
                    xdp_statistics: xsk.statistics().unwrap_or_default(),
                });
                stages.push(summary);
            }
            Err(p) => failed = Some(format!("the transmit worker for queue {queue} panicked: {}", panic_message(&p))),
        }
    }
    Ok(TxSummary {
        iface: cfg.iface.clone(),
        bind: if zerocopy { BindMode::ZeroCopy } else { BindMode::Copy },
        duration_s: start.elapsed().as_secs_f64(),
        queues,
        failed,
        stages,
    })
}

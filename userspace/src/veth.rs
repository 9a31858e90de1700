//! `xdpipe veth`: one command from traffic to numbers on this host. Builds a veth testbed,
//! runs the receiver (a pipeline) in a thread inside the receiver namespace and the
//! generator in a thread inside the generator namespace, each pinned to its own core, and
//! folds their typed summaries into one report: sent, received, lost, latency. One
//! process: nothing is re-executed and nothing is read back as text. The testbed is
//! removed on every exit path.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use serde::Serialize;

use crate::{
    accounting::LatencySummary,
    config::{ModeKind, PollWait},
    generator::{GenConfig, GenError, GenSummary, generate},
    pipeline::panic_message,
    run::{RunConfig, RunError, RunSummary, run_in},
    stats::WorkerCounters,
    sys::{self, XdpStatistics},
    testbed::{FWD_IFACE, RX_IFACE, RX_IP, SINK_IFACE, TX_IFACE, TX_IP, Testbed, TestbedError, unique_name},
};

/// A validated `xdpipe veth` job.
#[derive(Clone, Debug)]
pub struct VethConfig {
    /// The receiver. Its interface, its stamps (on) and, for fwd, its out port are set
    /// here from the testbed.
    pub rx: RunConfig,
    /// The generator. Its interface, destination MAC and addresses are set here.
    pub gen_cfg: GenConfig,
    /// Queues on each veth end.
    pub queues: u32,
    /// Mode fwd: add the forwarding pair, forward xp-rx -> xp-fwd, and count at xp-sink
    /// with a second receiver (rxdrop) in the generator namespace.
    pub fwd: bool,
    /// Turn GRO on at the receiving veth (needed for XDP-injected frames without a
    /// native XDP program there).
    pub gro: bool,
    /// Set /sys/class/net/xp-rx/threaded to 1 once the receiver is ready (its receive
    /// NAPI then runs in a kernel thread instead of the sender's softirq).
    pub threaded_napi: bool,
    /// With `threaded_napi`: the core the NAPI thread is pinned to (None: the scheduler's
    /// choice).
    pub napi_core: Option<u32>,
    /// Two ports of this host cabled to each other (a lab NIC's two ports, or the QEMU
    /// guest's igb0/igb1) instead of a veth testbed: the generator sends on `tx`, the
    /// receiver runs on `rx`, both in this namespace.
    pub ports: Option<Ports>,
    /// MTU of every veth end of the testbed (None: the default 1500). Not applied to
    /// `ports`.
    pub mtu: Option<u32>,
    /// The receiving device built on the testbed ([`crate::topology`]): the veth itself,
    /// or a bridge, macvlan, VXLAN or tap in front of the receiver.
    pub device: crate::topology::Device,
}

/// Two cabled ports of this host.
#[derive(Clone, Debug)]
pub struct Ports {
    /// The port the receiver runs on.
    pub rx: String,
    /// The port the generator sends on.
    pub tx: String,
}

/// Why `xdpipe veth` could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum VethError {
    /// The testbed could not be built.
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    /// A thread could not be started.
    #[error("starting the {what} thread: {source}")]
    Spawn {
        /// Which side.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The receiver (or the fwd sink) failed.
    #[error("the {what}: {source}")]
    Receiver {
        /// Which receiver.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<RunError>,
    },
    /// The generator failed.
    #[error("the generator: {0}")]
    Generator(#[source] Box<GenError>),
    /// A side panicked.
    #[error("the {what} thread panicked: {detail}")]
    Panicked {
        /// Which side.
        what: &'static str,
        /// The panic message.
        detail: String,
    },
    /// The receiver did not start in time.
    #[error("the {0} did not become ready within 60 s")]
    NotReady(&'static str),
    /// Threaded NAPI could not be configured.
    #[error("configuring {iface} (threaded NAPI / GRO): {source}")]
    Threaded {
        /// The interface.
        iface: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The device target cannot run this job.
    #[error("{0}")]
    Device(String),
    /// Threaded NAPI is not possible here.
    #[error("threaded NAPI on {iface}: {detail}")]
    ThreadedNapi {
        /// The interface.
        iface: &'static str,
        /// What went wrong.
        detail: String,
    },
}

/// What `xdpipe veth` reports.
#[derive(Debug, Serialize)]
pub struct VethReport {
    /// The testbed's name (or "tx -> rx" for cabled ports).
    pub testbed: String,
    /// Whether the receive NAPI ran in a kernel thread.
    pub threaded_napi: bool,
    /// The receive NAPI threads with threaded NAPI: "name (pid P) on core C" or "unpinned".
    pub napi_threads: Vec<String>,
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames the receiver (with fwd: the sink) received.
    pub received: u64,
    /// sent - received (frames dropped anywhere between the generator's TX ring and the
    /// receiver's worker; the receiver's program counters and XDP_STATISTICS say where).
    pub lost: i64,
    /// lost / sent.
    pub loss_ratio: f64,
    /// The generator's rate.
    pub tx_pps: f64,
    /// Receive rate over the period traffic flowed (at the sink with fwd).
    pub rx_pps: f64,
    /// Mode fwd: the forwarder's send rate over the period traffic flowed.
    pub fwd_tx_pps: Option<f64>,
    /// Where the lost frames went, from the counters that saw them (not with fwd).
    pub loss: Option<LossBreakdown>,
    /// One-way latency from the stamps (at the sink with fwd).
    pub latency_ns: Option<LatencySummary>,
    /// The receiver's summary.
    pub receiver: RunSummary,
    /// The generator's summary.
    pub generator: GenSummary,
    /// Mode fwd: the receiver at the end of the forwarding pair.
    pub sink: Option<RunSummary>,
}

/// Where frames sent but not received went. On veth the receive softirq runs on the
/// sender's core, so the sender can outrun it; a worker stalled for longer than its rings
/// last loses frames at its socket.
#[derive(Debug, Serialize, Default, PartialEq)]
pub struct LossBreakdown {
    /// Dropped by the sending interface at transmit (its `tx_dropped`): on veth, the
    /// peer's receive ring was full, the receive softirq behind the sender.
    pub tx_dropped: u64,
    /// Dropped at the receiver's sockets: RX ring full (`rx_ring_full`: the worker behind)
    /// or no frame on the fill ring (`rx_dropped`).
    pub socket_dropped: u64,
    /// Handed to the kernel by the steering program (not matched, or no socket).
    pub passed_to_kernel: u64,
    /// What the counters above do not cover (negative: they saw frames of other senders).
    pub unaccounted: i64,
}

impl LossBreakdown {
    /// From the receiver's summary and the sender's transmit drops.
    pub fn of(lost: i64, tx_dropped: u64, receiver: &RunSummary) -> LossBreakdown {
        let stats: Vec<_> = receiver.queues.iter().map(|q| q.xdp_statistics).collect();
        // `passed` already holds the matched frames that found no socket (`no_socket`).
        Self::from_counters(lost, tx_dropped, &stats, receiver.program.passed)
    }

    /// From the receiving sockets' XDP_STATISTICS, the frames the program passed to the
    /// kernel and the sender's transmit drops.
    pub fn from_counters(lost: i64, tx_dropped: u64, sockets: &[XdpStatistics], passed: u64) -> LossBreakdown {
        let socket_dropped: u64 = sockets.iter().map(|s| s.rx_ring_full + s.rx_dropped).sum();
        let passed_to_kernel = passed;
        let counted = (tx_dropped + socket_dropped + passed_to_kernel) as i64;
        LossBreakdown { tx_dropped, socket_dropped, passed_to_kernel, unaccounted: lost - counted }
    }
}

/// `tx_dropped` of `iface` (in namespace `ns`), read once before and once after a run.
fn tx_dropped(ns: Option<&str>, iface: &str) -> Option<u64> {
    let get = || crate::net::link::get(iface).map(|l| l.tx_dropped);
    match ns {
        Some(ns) => crate::net::ns::with_netns(ns, get).ok(),
        None => get().ok(),
    }
}

/// A receiver running in its own thread: its stop, and its result to come.
pub struct Receiver {
    what: &'static str,
    stop: Arc<AtomicBool>,
    /// None once joined.
    handle: Option<thread::JoinHandle<Result<RunSummary, RunError>>>,
}

impl Drop for Receiver {
    /// A receiver dropped without [`Receiver::finish`] (an error later in the job) is
    /// stopped and joined, so no worker outlives the job.
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
    }
}

impl Receiver {
    /// Starts `cfg` in a thread inside namespace `ns` (None: this one) and returns once
    /// its workers run, or with the error that kept it from starting.
    pub fn start(what: &'static str, ns: Option<&str>, cfg: RunConfig) -> Result<Self, VethError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let (stop2, ns) = (stop.clone(), ns.map(str::to_owned));
        let handle = thread::Builder::new()
            .name(format!("xdpipe-{what}"))
            .spawn(move || {
                let mut p = cfg.pipeline();
                if let Some(ns) = ns {
                    p = p.netns(ns);
                }
                run_in(p, &cfg, &stop2, &mut |_| {}, &mut || {
                    let _ = ready_tx.send(());
                })
            })
            .map_err(|source| VethError::Spawn { what, source })?;
        let r = Self { what, stop, handle: Some(handle) };
        match ready.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => Ok(r),
            // The thread ended before it was ready: its error says why.
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(match r.finish() {
                Err(e) => e,
                Ok(_) => VethError::NotReady(what),
            }),
            // Dropping `r` stops and joins it.
            Err(mpsc::RecvTimeoutError::Timeout) => Err(VethError::NotReady(what)),
        }
    }

    /// Stops the receiver and waits for its summary.
    pub fn finish(mut self) -> Result<RunSummary, VethError> {
        self.stop.store(true, Ordering::Relaxed);
        let what = self.what;
        let Some(handle) = self.handle.take() else {
            unreachable!("finish takes the receiver by value, so it is joined once");
        };
        match handle.join() {
            Ok(r) => r.map_err(|source| VethError::Receiver { what, source: Box::new(source) }),
            Err(p) => Err(VethError::Panicked { what, detail: panic_message(&p) }),
        }
    }
}

/// Runs the generator in a thread inside namespace `ns` (None: this one).
pub fn start_generator(
    ns: Option<&str>,
    cfg: GenConfig,
    stop: Arc<AtomicBool>,
) -> Result<thread::JoinHandle<Result<GenSummary, VethError>>, VethError> {
    let ns = ns.map(str::to_owned);
    thread::Builder::new()
        .name("xdpipe-gen".into())
        .spawn(move || {
            if let Some(ns) = &ns {
                sys::enter_netns(ns).map_err(|e| {
                    VethError::Generator(Box::new(GenError::NoSuchInterface(format!(
                        "{} (namespace {ns}: {e})",
                        cfg.iface
                    ))))
                })?;
            }
            generate(&cfg, stop, &WorkerCounters::default()).map_err(|e| VethError::Generator(Box::new(e)))
        })
        .map_err(|source| VethError::Spawn { what: "generator", source })
}

/// Runs the testbed job. `stop` (Ctrl-C) ends the generator early; the report still comes.
pub fn run_veth(cfg: &VethConfig, stop: Arc<AtomicBool>) -> Result<VethReport, VethError> {
    if let Some(p) = &cfg.ports {
        return run_ports(cfg, p, stop);
    }
    if cfg.device != crate::topology::Device::Veth && (cfg.gen_cfg.src_ip.is_ipv6() || cfg.queues > 1) {
        return Err(VethError::Device(format!(
            "the {} target runs IPv4 on one queue; drop --ipv6 and --queues, or use the veth target",
            cfg.device.name()
        )));
    }
    crate::topology::check_available(cfg.device)?;
    let mut tb = Testbed::create(&unique_name("v"), cfg.queues)?;
    if cfg.fwd {
        if cfg.device != crate::topology::Device::Veth {
            return Err(VethError::Device(format!(
                "mode fwd runs on the veth target only, not {}; use --mode rxdrop",
                cfg.device.name()
            )));
        }
        tb.add_fwd_pair()?;
    }
    if cfg.gro {
        tb.rx_gro_on()?;
    }
    if let Some(mtu) = cfg.mtu {
        tb.set_mtu(mtu)?;
    }
    let topo = crate::topology::build(&tb, cfg.device)?;
    let mut rx = RunConfig { iface: topo.rx_iface.into(), stamps: true, ..cfg.rx.clone() };
    if cfg.fwd {
        rx.out_iface = Some(FWD_IFACE.into());
    }
    let sink = if cfg.fwd {
        // Counts what fwd sent: same XDP mode as the forwarder, on the scheduler's first
        // core, sleeping between frames so it does not starve the generator.
        let mut s = sink_config(&cfg.rx);
        s.iface = SINK_IFACE.into();
        Some(Receiver::start("sink", Some(&tb.tx_ns), s)?)
    } else {
        None
    };
    let receiver = Receiver::start("receiver", Some(&tb.rx_ns), rx)?;
    let napi_threads = if cfg.threaded_napi { threaded_napi(&tb.rx_ns, cfg.napi_core)? } else { Vec::new() };
    // IPv6 runs on the plain veth pair only (the other topologies address IPv4).
    let (src_ip, dst_ip) =
        if cfg.gen_cfg.src_ip.is_ipv6() { testbed_ips(true) } else { (topo.tx_ip.into(), topo.rx_ip.into()) };
    let gen_cfg = GenConfig {
        iface: topo.tx_iface.unwrap_or(topo.rx_iface).into(),
        dst_mac: topo.rx_mac,
        src_ip,
        dst_ip,
        ..cfg.gen_cfg.clone()
    };
    let (generator, sender, dropped0) = match (&topo.tap, topo.tx_iface) {
        (Some(fd), _) => {
            let fd = fd.try_clone().map_err(|source| VethError::Spawn { what: "tap writer", source })?;
            (start_tap_writer(fd, gen_cfg, topo.tx_mac, stop.clone())?, (None, TX_IFACE), None)
        }
        (None, tx_iface) => {
            let sender = (Some(tb.tx_ns.as_str()), tx_iface.unwrap_or(TX_IFACE));
            let dropped0 = tx_dropped(sender.0, sender.1);
            (start_generator(Some(&tb.tx_ns), gen_cfg, stop.clone())?, sender, dropped0)
        }
    };
    let mut report = finish(&tb.name, cfg, receiver, generator, sink, sender, dropped0)?;
    report.napi_threads = napi_threads;
    drop(topo);
    Ok(report)
}

/// Runs the tap writer ([`crate::tapgen`]) in a thread of its own.
fn start_tap_writer(
    fd: std::os::fd::OwnedFd,
    cfg: GenConfig,
    src_mac: [u8; 6],
    stop: Arc<AtomicBool>,
) -> Result<thread::JoinHandle<Result<GenSummary, VethError>>, VethError> {
    thread::Builder::new()
        .name("xdpipe-tapgen".into())
        .spawn(move || {
            crate::tapgen::write_tap(&fd, &cfg, src_mac, stop).map_err(|e| VethError::Generator(Box::new(e)))
        })
        .map_err(|source| VethError::Spawn { what: "tap writer", source })
}

/// The fwd sink's receiver: rxdrop with stamps, asleep between frames, default cores.
fn sink_config(rx: &RunConfig) -> RunConfig {
    let mut s = rx.clone();
    s.mode = ModeKind::Rxdrop;
    s.poll = PollWait::Sleep { timeout_ms: None };
    s.cores = None;
    s.stamps = true;
    s.out_iface = None;
    s.xsk.tx_size = None;
    s.xsk.frames = s.xsk.fill_size.get();
    s
}

/// An IPv4 address (the testbed's constants; unparsable: 0.0.0.0).
pub(crate) fn ip4(s: &str) -> std::net::IpAddr {
    s.parse::<std::net::Ipv4Addr>().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).into()
}

/// The testbed's generator and receiver addresses of one family: (source, destination).
pub(crate) fn testbed_ips(ipv6: bool) -> (std::net::IpAddr, std::net::IpAddr) {
    if ipv6 {
        let ip6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap_or(std::net::Ipv6Addr::UNSPECIFIED).into();
        (ip6(crate::testbed::TX_IP6), ip6(crate::testbed::RX_IP6))
    } else {
        (ip4(TX_IP), ip4(RX_IP))
    }
}

/// Moves xp-rx's receive NAPI into kernel threads (/sys/class/net/xp-rx/threaded) and,
/// with `core`, pins them there. Done once the receiver is ready: a veth has a NAPI only
/// while an XDP program (native) or GRO is on, and before that the write fails (EIO).
/// The threads are found by name (`napi/xp-rx-<napi id>`) as the ones that appeared with
/// the write. Returns them as "name (pid P) on core C" / "... unpinned".
fn threaded_napi(rx_ns: &str, core: Option<u32>) -> Result<Vec<String>, VethError> {
    let prefix = format!("napi/{RX_IFACE}-");
    let before = napi_threads(&prefix);
    let err = |detail: String| VethError::ThreadedNapi { iface: RX_IFACE, detail };
    if let Err(e) = crate::net::sysfs::write_net(Some(rx_ns), &format!("{RX_IFACE}/threaded"), "1") {
        return Err(err(format!(
            "{e}: if that is EIO, the veth has no NAPI to move; it has one with a native XDP program (--xdp-mode native) or GRO on"
        )));
    }
    let mut new = Vec::new();
    for _ in 0..50 {
        new = napi_threads(&prefix).into_iter().filter(|t| !before.contains(t)).collect();
        if !new.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    if new.is_empty() {
        return Err(err(format!("no {prefix}* kernel thread appeared after enabling threaded NAPI")));
    }
    let mut out = Vec::with_capacity(new.len());
    for (pid, name) in new {
        match core {
            Some(c) => {
                sys::pin_task(pid, c).map_err(|e| err(format!("pinning {name} (pid {pid}) to core {c}: {e}")))?;
                out.push(format!("{name} (pid {pid}) on core {c}"));
            }
            None => out.push(format!("{name} (pid {pid}) unpinned")),
        }
    }
    Ok(out)
}

/// (pid, name) of the kernel threads whose name starts with `prefix`.
fn napi_threads(prefix: &str) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let name = name.trim_end();
            name.starts_with(prefix).then(|| (pid, name.to_owned()))
        })
        .collect()
}

/// Two cabled ports of this host: no testbed, no namespaces.
fn run_ports(cfg: &VethConfig, p: &Ports, stop: Arc<AtomicBool>) -> Result<VethReport, VethError> {
    let mac = sys::iface_mac(&p.rx).map_err(|e| VethError::Receiver {
        what: "receiver",
        source: Box::new(RunError::Pipeline(crate::pipeline::PipelineError::NoSuchInterface(format!("{}: {e}", p.rx)))),
    })?;
    let rx = RunConfig { iface: p.rx.clone(), stamps: true, ..cfg.rx.clone() };
    let receiver = Receiver::start("receiver", None, rx)?;
    let (src_ip, dst_ip) = testbed_ips(cfg.gen_cfg.src_ip.is_ipv6());
    let gen_cfg = GenConfig { iface: p.tx.clone(), dst_mac: mac, src_ip, dst_ip, ..cfg.gen_cfg.clone() };
    let dropped0 = tx_dropped(None, &p.tx);
    let generator = start_generator(None, gen_cfg, stop)?;
    finish(&format!("{} -> {}", p.tx, p.rx), cfg, receiver, generator, None, (None, &p.tx), dropped0)
}

/// Waits for the generator, stops the receiver (and sink), folds the summaries.
/// `sender`: the generator's (namespace, interface), whose `tx_dropped` was `dropped0`
/// before the generator started.
fn finish(
    testbed: &str,
    cfg: &VethConfig,
    rx: Receiver,
    generator: thread::JoinHandle<Result<GenSummary, VethError>>,
    sink: Option<Receiver>,
    sender: (Option<&str>, &str),
    dropped0: Option<u64>,
) -> Result<VethReport, VethError> {
    let gen_summary =
        generator.join().map_err(|p| VethError::Panicked { what: "generator", detail: panic_message(&p) });
    // Let the last frames land, then stop the receiver (and the sink after it).
    thread::sleep(Duration::from_millis(300));
    let rx_summary = rx.finish();
    let sink_summary = sink.map(|s| {
        thread::sleep(Duration::from_millis(200));
        s.finish()
    });
    let gen_summary = gen_summary??;
    let rx_summary = rx_summary?;
    let sink_summary = sink_summary.transpose()?;
    let dropped = dropped0.zip(tx_dropped(sender.0, sender.1)).map(|(a, b)| b.saturating_sub(a));

    let sent = gen_summary.sent;
    // With fwd, "received" is what came out of the forwarder at the sink.
    let end = sink_summary.as_ref().unwrap_or(&rx_summary);
    let received = end.rx_packets;
    let lost = sent as i64 - received as i64;
    Ok(VethReport {
        testbed: testbed.to_owned(),
        threaded_napi: cfg.threaded_napi,
        napi_threads: Vec::new(),
        sent,
        received,
        lost,
        loss_ratio: if sent > 0 { lost as f64 / sent as f64 } else { 0.0 },
        // With fwd, frames can also go at the forwarder's transmit; its summary has those.
        loss: match (&sink_summary, dropped) {
            (None, Some(d)) => Some(LossBreakdown::of(lost, d, &rx_summary)),
            _ => None,
        },
        tx_pps: gen_summary.pps,
        latency_ns: end.accounting.as_ref().and_then(|a| a.latency_ns),
        rx_pps: end.active_rx_pps,
        fwd_tx_pps: sink_summary.as_ref().map(|_| rx_summary.active_tx_pps),
        receiver: rx_summary,
        generator: gen_summary,
        sink: sink_summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_frames_are_split_by_the_counters_that_saw_them() {
        let q0 = XdpStatistics { rx_ring_full: 100, rx_dropped: 7, rx_fill_ring_empty_descs: 7, ..Default::default() };
        let q1 = XdpStatistics { rx_dropped: 1, ..Default::default() };
        // The fill-ring-empty count is the same event as rx_dropped, and no_socket frames
        // are among the passed ones (5): each counted once.
        let l = LossBreakdown::from_counters(1000, 880, &[q0, q1], 5);
        assert_eq!(l, LossBreakdown { tx_dropped: 880, socket_dropped: 108, passed_to_kernel: 5, unaccounted: 7 });
        // Counters that saw more than was lost (other traffic) show as negative.
        assert_eq!(LossBreakdown::from_counters(0, 0, &[q0, q1], 5).unaccounted, -113);
        // No counters: all of it unaccounted.
        assert_eq!(LossBreakdown::from_counters(9, 0, &[], 0).unaccounted, 9);
    }
}

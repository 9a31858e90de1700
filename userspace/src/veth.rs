//! `xdpipe veth`: one command from traffic to numbers on this host. Builds a veth testbed,
//! runs `xdpipe run` in the receiver namespace and `xdpipe gen` in the generator namespace
//! (child processes of this binary, pinned to separate cores), and folds their JSON
//! summaries into one report: sent, received, lost, latency. The testbed is removed on
//! every exit path; the children die with this process.
use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;

use crate::{
    sys,
    testbed::{FWD_IFACE, RX_IFACE, RX_IP, SINK_IFACE, TX_IFACE, TX_IP, Testbed, TestbedError, fmt_mac, unique_name},
};

#[derive(Clone, Debug)]
pub struct VethConfig {
    /// Arguments for the receiver after `run -i xp-rx` (mode, xdp mode, queues, cores...).
    pub run_args: Vec<String>,
    /// Arguments for the generator after `gen -i xp-tx --dst-mac .. --src-ip .. --dst-ip ..`.
    pub gen_args: Vec<String>,
    pub queues: u32,
    /// Mode fwd: add the forwarding pair, forward xp-rx -> xp-fwd, and count at xp-sink
    /// with a second receiver (rxdrop) in the generator namespace.
    pub fwd: bool,
    /// Turn GRO on at the receiving veth (needed for XDP-injected frames without a
    /// native XDP program there).
    pub gro: bool,
    /// Do not forward the children's progress lines to stderr.
    pub quiet: bool,
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
}

#[derive(Clone, Debug)]
pub struct Ports {
    pub rx: String,
    pub tx: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VethError {
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    #[error("starting {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} failed (exit {code:?}): {stderr}")]
    Child { what: &'static str, code: Option<i32>, stderr: String },
    #[error("the {what} printed no summary: {detail}")]
    Summary { what: &'static str, detail: String },
    #[error("the receiver did not become ready within 30 s: {0}")]
    NotReady(String),
    #[error("configuring {iface} (threaded NAPI / GRO): {source}")]
    Threaded {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("threaded NAPI on {iface}: {detail}")]
    ThreadedNapi { iface: &'static str, detail: String },
}

#[derive(Debug, Serialize)]
pub struct VethReport {
    pub testbed: String,
    pub threaded_napi: bool,
    /// The receive NAPI threads with threaded NAPI: "name (pid P) on core C" or "unpinned".
    pub napi_threads: Vec<String>,
    pub sent: u64,
    pub received: u64,
    /// sent - received (frames dropped anywhere between the generator's TX ring and the
    /// receiver's worker; the receiver's program counters and XDP_STATISTICS say where).
    pub lost: i64,
    pub loss_ratio: f64,
    pub tx_pps: f64,
    /// Receive rate over the period traffic flowed (at the sink with fwd).
    pub rx_pps: f64,
    /// Mode fwd: the forwarder's send rate over the period traffic flowed.
    pub fwd_tx_pps: Option<f64>,
    /// Where the lost frames went, from the counters that saw them (not with fwd).
    pub loss: Option<LossBreakdown>,
    pub latency_ns: Value,
    pub receiver: Value,
    pub generator: Value,
    /// Mode fwd: the receiver at the end of the forwarding pair.
    pub sink: Option<Value>,
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
    /// From the receiver's summary (`xdpipe run --json`) and the sender's transmit drops.
    pub fn of(lost: i64, tx_dropped: u64, receiver: &Value) -> LossBreakdown {
        let queues = receiver["queues"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let stat = |k: &str| queues.iter().map(|q| q["xdp_statistics"][k].as_u64().unwrap_or(0)).sum::<u64>();
        let socket_dropped = stat("rx_ring_full") + stat("rx_dropped");
        let prog = |k: &str| receiver["program"][k].as_u64().unwrap_or(0);
        // `passed` already holds the matched frames that found no socket (`no_socket`).
        let passed_to_kernel = prog("passed");
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

struct ChildProc {
    what: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl ChildProc {
    /// Starts `exe args` in namespace `ns` (None: this one).
    fn spawn(
        what: &'static str,
        ns: Option<&str>,
        exe: &Path,
        args: &[String],
        quiet: bool,
    ) -> Result<Self, VethError> {
        let mut cmd = sys::command_in(ns, exe);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| VethError::Spawn { what, source })?;
        let err = child.stderr.take().ok_or_else(|| VethError::Summary { what, detail: "no stderr".into() })?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                // Progress goes on to our stderr as it comes.
                if !quiet {
                    eprintln!("  [{what}] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { what, child, lines, log: Vec::new() })
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), VethError> {
        let deadline = Instant::now() + timeout;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let ready = line.contains("ready:");
            self.log.push(line);
            if ready {
                return Ok(());
            }
        }
        Err(VethError::NotReady(self.log.join("\n")))
    }

    fn signal(&self, sig: i32) {
        sys::send_signal(self.child.id() as i32, sig);
    }

    fn summary(mut self) -> Result<Value, VethError> {
        let out = self.child.wait_with_output().map_err(|source| VethError::Spawn { what: self.what, source })?;
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.log.push(l);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(VethError::Child { what: self.what, code: out.status.code(), stderr: self.log.join("\n") });
        }
        serde_json::from_str(stdout.trim())
            .map_err(|e| VethError::Summary { what: self.what, detail: format!("{e}: {stdout}") })
    }
}

/// Runs the testbed job. `stop` (Ctrl-C) ends the generator early; the report still comes.
pub fn run_veth(cfg: &VethConfig, exe: &Path, stop: Arc<AtomicBool>) -> Result<VethReport, VethError> {
    if let Some(p) = &cfg.ports {
        return run_ports(cfg, p, exe, stop);
    }
    let mut tb = Testbed::create(&unique_name("v"), cfg.queues)?;
    if cfg.fwd {
        tb.add_fwd_pair()?;
    }
    if cfg.gro {
        tb.rx_gro_on()?;
    }
    let mut rx_args: Vec<String> = ["run", "-i", RX_IFACE, "--json", "--stamps"].map(String::from).to_vec();
    rx_args.extend(cfg.run_args.iter().cloned());
    if cfg.fwd {
        rx_args.extend(["--out-iface".into(), FWD_IFACE.into()]);
    }
    let mut sink = None;
    if cfg.fwd {
        // Counts what fwd sent: same XDP mode as the forwarder, on the generator's core's
        // neighbour, in poll mode so it does not starve the generator.
        let mut a: Vec<String> =
            ["run", "-i", SINK_IFACE, "--json", "--stamps", "--mode", "rxdrop", "--poll", "forever"]
                .map(String::from)
                .to_vec();
        if let Some(i) = cfg.run_args.iter().position(|x| x == "--xdp-mode") {
            a.extend(cfg.run_args[i..(i + 2).min(cfg.run_args.len())].iter().cloned());
        }
        let mut s = ChildProc::spawn("sink", Some(&tb.tx_ns), exe, &a, cfg.quiet)?;
        s.wait_ready(Duration::from_secs(30))?;
        sink = Some(s);
    }
    let mut rx = ChildProc::spawn("receiver", Some(&tb.rx_ns), exe, &rx_args, cfg.quiet)?;
    rx.wait_ready(Duration::from_secs(30))?;
    let napi_threads = if cfg.threaded_napi { threaded_napi(&tb.rx_ns, cfg.napi_core)? } else { Vec::new() };

    let mut gen_args: Vec<String> =
        ["gen", "-i", TX_IFACE, "--json", "--dst-mac", &fmt_mac(&tb.rx_mac), "--src-ip", TX_IP, "--dst-ip", RX_IP]
            .map(String::from)
            .to_vec();
    gen_args.extend(cfg.gen_args.iter().cloned());
    let sender = (Some(tb.tx_ns.as_str()), TX_IFACE);
    let dropped0 = tx_dropped(sender.0, sender.1);
    let generator = ChildProc::spawn("generator", Some(&tb.tx_ns), exe, &gen_args, cfg.quiet)?;
    let mut report = finish(&tb.name, cfg, rx, generator, sink, &stop, sender, dropped0)?;
    report.napi_threads = napi_threads;
    Ok(report)
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
fn run_ports(cfg: &VethConfig, p: &Ports, exe: &Path, stop: Arc<AtomicBool>) -> Result<VethReport, VethError> {
    let mac = sys::iface_mac(&p.rx)
        .map_err(|e| VethError::Summary { what: "receiver port", detail: format!("{}: {e}", p.rx) })?;
    let mut rx_args: Vec<String> = ["run", "-i", &p.rx, "--json", "--stamps"].map(String::from).to_vec();
    rx_args.extend(cfg.run_args.iter().cloned());
    let mut rx = ChildProc::spawn("receiver", None, exe, &rx_args, cfg.quiet)?;
    rx.wait_ready(Duration::from_secs(60))?;
    let mut gen_args: Vec<String> =
        ["gen", "-i", &p.tx, "--json", "--dst-mac", &fmt_mac(&mac), "--src-ip", TX_IP, "--dst-ip", RX_IP]
            .map(String::from)
            .to_vec();
    gen_args.extend(cfg.gen_args.iter().cloned());
    let dropped0 = tx_dropped(None, &p.tx);
    let generator = ChildProc::spawn("generator", None, exe, &gen_args, cfg.quiet)?;
    finish(&format!("{} -> {}", p.tx, p.rx), cfg, rx, generator, None, &stop, (None, &p.tx), dropped0)
}

/// Waits for the generator, stops the receiver (and sink), folds the summaries.
/// `sender`: the generator's (namespace, interface), whose `tx_dropped` was `dropped0`
/// before the generator started.
#[allow(clippy::too_many_arguments)]
fn finish(
    testbed: &str,
    cfg: &VethConfig,
    rx: ChildProc,
    generator: ChildProc,
    sink: Option<ChildProc>,
    stop: &AtomicBool,
    sender: (Option<&str>, &str),
    dropped0: Option<u64>,
) -> Result<VethReport, VethError> {
    // Ctrl-C reaches both children (same process group); they stop and print summaries.
    let gen_summary = generator.summary();
    // Let the last frames land, then stop the receiver.
    thread::sleep(Duration::from_millis(300));
    if !stop.load(Ordering::Relaxed) {
        rx.signal(libc::SIGINT);
    }
    let rx_summary = rx.summary()?;
    let sink_summary = match sink {
        Some(s) => {
            thread::sleep(Duration::from_millis(200));
            if !stop.load(Ordering::Relaxed) {
                s.signal(libc::SIGINT);
            }
            Some(s.summary()?)
        }
        None => None,
    };
    let gen_summary = gen_summary?;
    let dropped = dropped0.zip(tx_dropped(sender.0, sender.1)).map(|(a, b)| b.saturating_sub(a));

    let sent = gen_summary["sent"].as_u64().unwrap_or(0);
    // With fwd, "received" is what came out of the forwarder at the sink.
    let end = sink_summary.as_ref().unwrap_or(&rx_summary);
    let received = end["rx_packets"].as_u64().unwrap_or(0);
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
        tx_pps: gen_summary["pps"].as_f64().unwrap_or(0.0),
        latency_ns: end["accounting"]["latency_ns"].clone(),
        rx_pps: end["active_rx_pps"].as_f64().unwrap_or(0.0),
        fwd_tx_pps: sink_summary.as_ref().map(|_| rx_summary["active_tx_pps"].as_f64().unwrap_or(0.0)),
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
        let rx = serde_json::json!({
            "program": {"passed": 5, "no_socket": 2},
            "queues": [
                {"xdp_statistics": {"rx_ring_full": 100, "rx_dropped": 7, "rx_fill_ring_empty_descs": 7}},
                {"xdp_statistics": {"rx_ring_full": 0, "rx_dropped": 1}},
            ],
        });
        // The fill-ring-empty count is the same event as rx_dropped, and no_socket frames
        // are among the passed ones: each counted once.
        let l = LossBreakdown::of(1000, 880, &rx);
        assert_eq!(l, LossBreakdown { tx_dropped: 880, socket_dropped: 108, passed_to_kernel: 5, unaccounted: 7 });
        // Counters that saw more than was lost (other traffic) show as negative.
        assert_eq!(LossBreakdown::of(0, 0, &rx).unaccounted, -113);
        // A summary without these fields: all of it unaccounted.
        assert_eq!(LossBreakdown::of(9, 0, &serde_json::json!({})).unaccounted, 9);
    }
}

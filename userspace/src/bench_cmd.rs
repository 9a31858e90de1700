//! `xdpipe bench` and `xdpipe report`: the CLI side of the benchmark. Trials run on veth
//! testbeds through `xdpipe::veth`; the scenario logic, search, storage and report are in
//! the `xdpipe-bench` crate.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Command, ExitCode},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::Context as _;
use clap::Args;
use xdpipe::{
    anchors::{self, Goal, Metric, Tools, plan},
    guest::Guest,
    stats::fmt_pps,
    veth::{Ports, VethConfig, run_veth},
};
use xdpipe_bench::{
    Latency, Rate, Runner, Scenario, Trial,
    procedure::{Procedure, TrialEvent, run_scenario},
    report::{NamedRun, html, markdown},
    scenario::{Matrix, RFC2544_SIZES},
    search::SearchConfig,
    stats::spread,
    store::{Anchor, RunDir, RunInfo, RunSummary, load},
};

#[derive(Args)]
pub struct BenchArgs {
    /// Where to run: veth (a testbed xdpipe builds and removes per trial); nic:IFACE (a
    /// NIC port, with --gen-iface the port cabled to it); vm:igb or vm:virtio (the QEMU
    /// guest of scripts/vm, emulated NICs, results labelled emulated).
    #[arg(long, default_value = "veth")]
    target: String,
    /// With --target nic:IFACE: the port of this host cabled back to back to IFACE, which
    /// the generator sends from.
    #[arg(long)]
    gen_iface: Option<String>,
    /// Queue counts (RSS; nic and vm targets): 1,4 runs every point on 1 and on 4 queues.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    queues: Vec<u32>,
    /// Socket binds (nic and vm targets): copy, zero-copy.
    #[arg(long, value_delimiter = ',', default_value = "copy")]
    binds: Vec<String>,
    /// Receive-port offloads (nic and vm targets): default, off (every offload ethtool -K
    /// can turn off), or both.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    offloads: Vec<String>,
    /// Label the run as emulated hardware (set by --target vm:* inside the guest).
    #[arg(long, hide = true)]
    emulated_as: Option<String>,
    /// Frame sizes with FCS (default: the RFC 2544 set plus imix).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<String>>,
    #[arg(long, value_delimiter = ',', default_value = "skb,native")]
    xdp_modes: Vec<String>,
    /// Receiver modes: rxdrop, parse, l2fwd, fwd.
    #[arg(long, value_delimiter = ',', default_value = "rxdrop")]
    modes: Vec<String>,
    /// Generator engines: xsk, xdp-live.
    #[arg(long, value_delimiter = ',', default_value = "xsk")]
    engines: Vec<String>,
    /// Receiver wait policy: busy (need_wakeup, busy polling) and/or poll (sleep until frames arrive, `run --poll`).
    #[arg(long, value_delimiter = ',', default_value = "busy")]
    waits: Vec<String>,
    /// Threaded NAPI on the receiving veth: off, on, or both (labelled in the results);
    /// native XDP mode only (a veth in skb mode has no NAPI to move).
    #[arg(long, default_value = "off")]
    threaded_napi: String,
    /// Threaded-NAPI scenarios: pin the receive NAPI thread to this core (default: the
    /// scheduler's choice).
    #[arg(long)]
    napi_core: Option<u32>,
    /// Trials per point (median and spread over them).
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// Seconds per max-rate, confirming and latency trial.
    #[arg(long, default_value_t = 5.0)]
    trial_secs: f64,
    /// Seconds per zero-loss search trial.
    #[arg(long, default_value_t = 1.0)]
    search_secs: f64,
    /// Skip the RFC 2544 zero-loss search.
    #[arg(long)]
    no_search: bool,
    /// Latency trials at this fraction of the zero-loss rate (0: none).
    #[arg(long, default_value_t = 0.5)]
    latency_fraction: f64,
    /// Directory the run directory goes under.
    #[arg(long, default_value = "bench/runs")]
    out: PathBuf,
    /// Anchors measured beside xdpipe (xdpsock, xdp-bench, xdp-trafficgen, where found):
    /// auto runs what is found, off runs none.
    #[arg(long, default_value = "auto")]
    anchors: String,
    /// Directories to look for the anchor tools in before PATH.
    #[arg(long)]
    anchor_dir: Vec<PathBuf>,
    /// Trials per side of each anchor comparison (default: --trials).
    #[arg(long)]
    anchor_trials: Option<usize>,
    /// Offered rate of the CPU-per-frame comparison (below saturation).
    #[arg(long, default_value = "200kpps")]
    anchor_cpu_rate: String,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run directories (bench/runs/...) to compare.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where report.md and report.html go.
    #[arg(long, default_value = "bench/report")]
    out: PathBuf,
}

struct VethRunner {
    exe: PathBuf,
    stop: Arc<AtomicBool>,
    /// nic target: the receive and generator ports.
    ports: Option<Ports>,
    /// Threaded-NAPI scenarios: the core the receive NAPI thread is pinned to.
    napi_core: Option<u32>,
}

/// Offloads turned off for `offloads: off` scenarios, by kernel feature name (`ethtool -K`
/// calls them rx, gro, lro, rx-gro-hw, rxvlan, rxhash).
const OFFLOADS: [&str; 6] = ["rx-checksum", "rx-gro", "rx-lro", "rx-gro-hw", "rx-vlan-hw-parse", "rx-hashing"];

/// Turns each of `which` off (or back on) over ethtool netlink; returns those that changed.
fn set_offloads(iface: &str, on: bool, which: &[&str]) -> Vec<String> {
    if which.is_empty() {
        return Vec::new();
    }
    xdpipe::net::ethtool::set_features(iface, which, on).unwrap_or_else(|e| {
        eprintln!("bench: {e}");
        Vec::new()
    })
}

impl Runner for VethRunner {
    fn trial(&mut self, sc: &Scenario, rate: Rate, secs: f64) -> Result<Trial, String> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let rate_arg = match rate {
            Rate::Max => "max".to_owned(),
            Rate::Pps(p) => format!("{:.0}", p.max(1.0)),
        };
        let gen_args: Vec<String> = vec![
            "--size".into(),
            sc.size.clone(),
            "--rate".into(),
            rate_arg,
            "--duration".into(),
            secs.to_string(),
            "--core".into(),
            "0".into(),
            "--engine".into(),
            sc.engine.clone(),
        ];
        let poll = if sc.wait == "poll" { "forever" } else { "0" };
        let mut run_args: Vec<String> = vec![
            "--mode".into(),
            sc.mode.clone(),
            "--xdp-mode".into(),
            sc.xdp_mode.clone(),
            "--bind".into(),
            sc.bind.clone(),
            "--poll".into(),
            poll.into(),
        ];
        let mut gen_args = gen_args;
        if self.ports.is_some() {
            // Queues 0..q, workers on cores 1.. (wrapping, core 0 left to the generator
            // where there are enough), 64 flows for the NIC's RSS to spread.
            let ncpu = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
            if sc.queues > ncpu {
                return Err(format!("{} queues but {ncpu} CPUs: one worker per queue needs a core each", sc.queues));
            }
            let first = if sc.queues < ncpu { 1 } else { 0 };
            let cores: Vec<String> = (first..first + sc.queues).map(|c| c.to_string()).collect();
            run_args.extend([
                "--queues".into(),
                format!("0-{}", sc.queues.saturating_sub(1)),
                "--cores".into(),
                cores.join(","),
            ]);
            gen_args.extend(["--flows".into(), "64".into()]);
        } else {
            run_args.extend(["--cores".into(), "1".into()]);
        }
        let cfg = VethConfig {
            run_args,
            gen_args,
            queues: sc.queues,
            fwd: sc.mode == "fwd",
            gro: sc.engine == "xdp-live" && sc.xdp_mode == "skb",
            quiet: true,
            threaded_napi: sc.threaded_napi,
            napi_core: self.napi_core,
            ports: self.ports.clone(),
        };
        let turned_off = match (&self.ports, sc.offloads.as_str()) {
            (Some(p), "off") => set_offloads(&p.rx, false, &OFFLOADS),
            _ => Vec::new(),
        };
        let r = run_veth(&cfg, &self.exe, self.stop.clone()).map_err(|e| format!("{e:#}"));
        if let Some(p) = &self.ports {
            let back: Vec<&str> = turned_off.iter().map(String::as_str).collect();
            set_offloads(&p.rx, true, &back);
        }
        let r = r?;
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let l = &r.latency_ns;
        let latency = l.is_object().then(|| Latency {
            p50: l["p50"].as_f64().unwrap_or(0.0),
            p90: l["p90"].as_f64().unwrap_or(0.0),
            p99: l["p99"].as_f64().unwrap_or(0.0),
            p999: l["p999"].as_f64().unwrap_or(0.0),
            max: l["max"].as_f64().unwrap_or(0.0),
        });
        let rx_pkts = r.receiver["rx_packets"].as_u64().unwrap_or(0);
        let cpu: u64 =
            r.receiver["queues"].as_array().map_or(0, |q| q.iter().map(|q| q["cpu_ns"].as_u64().unwrap_or(0)).sum());
        Ok(Trial {
            sent: r.sent,
            received: r.received,
            tx_pps: r.tx_pps,
            rx_pps: r.rx_pps,
            duration_s: secs,
            latency,
            rx_cpu_ns_per_pkt: (rx_pkts > 0).then(|| cpu as f64 / rx_pkts as f64),
        })
    }
}

/// A file's content, trimmed ("" if unreadable).
fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// A program's first line of output ("" if it cannot run).
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

/// The UTC time now as (YYYYMMDD-HHMMSS, YYYY-MM-DDTHH:MM:SSZ).
fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    (format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"), format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"))
}

/// Link speed of `iface` in bit/s, from ethtool netlink.
fn link_bps(iface: &str) -> Option<f64> {
    xdpipe::net::ethtool::link_speed(iface).ok()?.0.map(|m| m as f64 * 1e6)
}

/// `ethtool -i` in one line: driver, version, firmware, bus.
fn driver_line(iface: &str) -> String {
    match xdpipe::net::ethtool::driver_info(iface) {
        Ok(d) => {
            format!("driver: {} version: {} firmware-version: {} bus-info: {}", d.driver, d.version, d.firmware, d.bus)
        }
        Err(e) => format!("not read: {e}"),
    }
}

/// `ethtool -l` in one line.
fn channels_line(iface: &str) -> String {
    let o = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| v.to_string());
    match xdpipe::net::ethtool::channels(iface) {
        Ok(c) => format!(
            "max: rx {} tx {} other {} combined {}; current: rx {} tx {} other {} combined {}",
            o(c.rx_max),
            o(c.tx_max),
            o(c.other_max),
            o(c.combined_max),
            o(c.rx),
            o(c.tx),
            o(c.other),
            o(c.combined)
        ),
        Err(e) => format!("not read: {e}"),
    }
}

/// `ethtool -g` in one line.
fn rings_line(iface: &str) -> String {
    let o = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| v.to_string());
    match xdpipe::net::ethtool::rings(iface) {
        Ok(r) => format!("max: rx {} tx {}; current: rx {} tx {}", o(r.rx_max), o(r.tx_max), o(r.rx), o(r.tx)),
        Err(e) => format!("not read: {e}"),
    }
}

/// The active features (kernel names), space separated.
fn features_on(iface: &str) -> String {
    match xdpipe::net::ethtool::features(iface) {
        Ok(f) => f.active.join(" "),
        Err(e) => format!("not read: {e}"),
    }
}

/// `IRQ:affinity-list` for each /proc/interrupts line naming `iface`.
fn irq_affinity(iface: &str) -> String {
    read_trim("/proc/interrupts")
        .lines()
        .filter(|l| l.contains(iface))
        .filter_map(|l| l.split(':').next()?.trim().parse::<u32>().ok())
        .map(|q| format!("{q}:{}", read_trim(&format!("/proc/irq/{q}/smp_affinity_list"))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The netlink XDP feature flags of `iface` (this namespace), or why they are missing.
fn xdp_features_of(iface: &str) -> String {
    match xdpipe::sys::ifindex(iface) {
        None => format!("no interface {iface}"),
        Some(i) => match xdpipe::netdev::xdp_features(i) {
            Ok(f) => f.describe(),
            Err(e) => format!("not read: {e}"),
        },
    }
}

/// What a reader needs to reproduce or judge the run.
fn capture_env(target: &str, ports: Option<&Ports>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        env.insert(k.to_owned(), if v.is_empty() { "n/a".to_owned() } else { v });
    };
    put("kernel", read_trim("/proc/sys/kernel/osrelease"));
    let cpuinfo = read_trim("/proc/cpuinfo");
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':'));
    put("cpu model", model.map(|m| m.1.trim().to_owned()).unwrap_or_default());
    put("cpus online", std::thread::available_parallelism().map(|n| n.to_string()).unwrap_or_default());
    put("cpu governor", read_trim("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"));
    put(
        "busy_poll / busy_read",
        format!("{} / {}", read_trim("/proc/sys/net/core/busy_poll"), read_trim("/proc/sys/net/core/busy_read")),
    );
    put(
        "xdpipe version",
        format!("{} ({})", env!("CARGO_PKG_VERSION"), first_line("git", &["rev-parse", "--short", "HEAD"])),
    );
    put("rustc", first_line("rustc", &["--version"]));
    put("target", target.to_owned());
    if let Some(p) = ports {
        let i = &p.rx;
        put("driver and firmware", driver_line(i));
        let tx_driver = xdpipe::net::ethtool::driver_info(&p.tx).map(|d| d.driver).unwrap_or_default();
        put("generator port", format!("{} (driver: {tx_driver})", p.tx));
        let (speed, duplex) = xdpipe::net::ethtool::link_speed(i).unwrap_or((None, "unknown"));
        let detected = xdpipe::net::ethtool::link_detected(i).map_or("unknown", |d| if d { "yes" } else { "no" });
        let speed = speed.map_or("Unknown!".to_owned(), |s| format!("{s}Mb/s"));
        put("link", format!("Speed: {speed} Duplex: {duplex} Link detected: {detected}"));
        put("channels", channels_line(i));
        put("ring sizes", rings_line(i));
        put("offload features (on)", features_on(i));
        put(
            "offloads the off scenarios turn off (those ethtool can change)",
            match xdpipe::net::ethtool::features(i) {
                Ok(f) => OFFLOADS
                    .iter()
                    .filter(|n| f.changeable.iter().any(|c| c == *n) && !f.fixed.iter().any(|c| c == *n))
                    .map(|n| format!("{n}: {}", if f.is_active(n) { "on" } else { "off" }))
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(e) => format!("not read: {e}"),
            },
        );
        put(
            "RSS hash for udp4",
            match xdpipe::net::ethtool::udp4_flow_hash(i) {
                Ok(h) => h.join(", "),
                Err(e) => format!("not read: {e}"),
            },
        );
        put("IRQ affinity", irq_affinity(i));
        put("XDP features (netlink)", xdp_features_of(i));
        put("XDP features of the generator port (netlink)", xdp_features_of(&p.tx));
        return env;
    }
    // A throwaway testbed to read the veth driver's view.
    if let Ok(tb) = xdpipe::testbed::Testbed::create(&xdpipe::testbed::unique_name("e"), 1) {
        let ex = |f: fn(&str) -> String| {
            xdpipe::net::ns::with_netns(&tb.rx_ns, || Ok(f("xp-rx"))).unwrap_or_else(|e| format!("not read: {e}"))
        };
        put("driver", ex(driver_line));
        put("channels", ex(channels_line));
        put("ring sizes", ex(rings_line));
        put("offload features (on)", ex(features_on));
        put("XDP features (netlink)", ex(xdp_features_of));
        put("IRQ affinity", "n/a: veth has no IRQs; its receive work runs in the sender's softirq (or a NAPI thread with threaded NAPI)".into());
    }
    env
}

pub fn cmd_bench(a: &BenchArgs, stop: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    let ports = match a.target.split_once(':') {
        None if a.target == "veth" => None,
        Some(("nic", iface)) => {
            let Some(g) = &a.gen_iface else {
                anyhow::bail!(
                    "--target {}: give --gen-iface PORT, the port of this host cabled to {iface} that the generator sends \
                     from; with the generator on a second host, run `xdpipe run` here and `xdpipe gen` there (README, \"On a lab NIC\")",
                    a.target
                );
            };
            for i in [iface, g.as_str()] {
                if xdpipe::sys::ifindex(i).is_none() {
                    anyhow::bail!("--target {}: no interface {i:?} here (see `ip link`)", a.target);
                }
            }
            Some(Ports { rx: iface.to_owned(), tx: g.clone() })
        }
        Some(("vm", kind)) => return bench_in_guest(a, kind, &stop),
        _ => anyhow::bail!("--target {:?}: veth, nic:IFACE, vm:igb or vm:virtio", a.target),
    };
    if ports.is_none() && (a.queues != [1] || a.binds != ["copy"] || a.offloads != ["default"]) {
        anyhow::bail!(
            "--queues, --binds and --offloads are axes of the nic and vm targets: veth has one queue per pair here, \
             binds copy only, and its offloads act on skbs after XDP"
        );
    }
    for b in &a.binds {
        if !["copy", "zero-copy"].contains(&b.as_str()) {
            anyhow::bail!("--binds {b:?}: copy or zero-copy");
        }
    }
    for o in &a.offloads {
        if !["default", "off"].contains(&o.as_str()) {
            anyhow::bail!("--offloads {o:?}: default or off");
        }
    }
    if let Some(q) = a.queues.iter().find(|&&q| !(1..=64).contains(&q)) {
        anyhow::bail!("--queues {q}: 1 to 64");
    }
    if ports.is_some() && a.modes.iter().any(|m| m == "fwd") {
        anyhow::bail!(
            "--modes fwd needs the veth testbed's second pair; on a NIC, run `xdpipe run --mode fwd --out-iface` by hand"
        );
    }
    if a.trials == 0 || !(a.trial_secs > 0.0) || !(a.search_secs > 0.0) {
        anyhow::bail!("--trials, --trial-secs and --search-secs must be positive");
    }
    if !(0.0..=1.0).contains(&a.latency_fraction) {
        anyhow::bail!("--latency-fraction {}: a fraction of the zero-loss rate, 0 to 1", a.latency_fraction);
    }
    let threaded = match a.threaded_napi.as_str() {
        "off" => vec![false],
        "on" => vec![true],
        "both" => vec![false, true],
        o => anyhow::bail!("--threaded-napi {o:?}: off, on or both"),
    };
    let label = a.emulated_as.clone().unwrap_or_else(|| a.target.clone());
    let matrix = Matrix {
        target: label.clone(),
        sizes: a
            .sizes
            .clone()
            .unwrap_or_else(|| RFC2544_SIZES.iter().map(|s| s.to_string()).chain(["imix".into()]).collect()),
        xdp_modes: a.xdp_modes.clone(),
        binds: a.binds.clone(),
        modes: a.modes.clone(),
        engines: a.engines.clone(),
        queues: a.queues.clone(),
        waits: a.waits.clone(),
        threaded_napi: threaded,
        offloads: a.offloads.clone(),
    };
    let scenarios = matrix.scenarios();
    let host = read_trim("/proc/sys/kernel/hostname");
    let (stamp, started) = utc_now();
    let mut dir = RunDir::create(&a.out, &format!("{stamp}-{host}-{}", label.replace(':', "-")))?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut summary = RunSummary {
        run: RunInfo {
            command,
            started,
            host,
            target: label.clone(),
            virtual_target: ports.is_none() || a.emulated_as.is_some(),
            link_bps: ports.as_ref().and_then(|p| link_bps(&p.rx)),
            env: capture_env(&label, ports.as_ref()),
            complete: false,
            trials_per_point: a.trials,
            notes: match (&ports, &a.emulated_as) {
                (None, _) => vec![
                    "veth: the receive-side copy into the UMEM runs on the generator's core (softirq), so a receive rate also measures the generator's core; runs with threaded NAPI are labelled.".into(),
                ],
                (Some(_), Some(_)) => vec![
                    "EMULATED: QEMU's NIC models under software emulation (TCG). The real Linux drivers run (native XDP, zero-copy, RSS, ethtool), but the rates say nothing about hardware speed.".into(),
                ],
                (Some(p), None) => vec![format!("NIC: generator on {} cabled to {}", p.tx, p.rx)],
            },
        },
        ..Default::default()
    };
    dir.write_readme(&summary)?;
    dir.write_summary(&summary)?;
    eprintln!("bench: {} scenario(s), results in {}", scenarios.len(), dir.path.display());
    let procedure = Procedure {
        trials: a.trials,
        trial_secs: a.trial_secs,
        search: SearchConfig { search_secs: a.search_secs, confirm_secs: a.trial_secs, ..Default::default() },
        zero_loss: !a.no_search,
        latency_fraction: a.latency_fraction,
    };
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    let mut runner = VethRunner { exe, stop: stop.clone(), ports: ports.clone(), napi_core: a.napi_core };
    let started = Instant::now();
    let mut interrupted = None;
    for (i, sc) in scenarios.iter().enumerate() {
        let left = if i == 0 {
            String::new()
        } else {
            let per = started.elapsed().as_secs_f64() / i as f64;
            format!(", about {:.0} s left", per * (scenarios.len() - i) as f64)
        };
        eprintln!("bench: scenario {}/{}: {}{left}", i + 1, scenarios.len(), sc.label());
        let mut record_err = None;
        let mut on_trial = |e: &TrialEvent| {
            let t = e.trial;
            eprintln!(
                "bench:   {} {} at {}: sent {} received {} ({:.3}% lost), rx {}",
                e.kind,
                e.index + 1,
                e.offered_pps.map_or("max".to_owned(), fmt_pps),
                t.sent,
                t.received,
                t.loss_ratio() * 100.0,
                fmt_pps(t.rx_pps)
            );
            if let Err(err) = dir.record(sc, e.kind, e.index, e.offered_pps, t) {
                record_err = Some(err);
            }
        };
        let result = run_scenario(&mut runner, sc, &procedure, &mut on_trial);
        if let Some(e) = record_err {
            return Err(e.into());
        }
        match result {
            Ok(s) => summary.scenarios.push(s),
            Err((e, partial)) => {
                summary.scenarios.extend(partial);
                interrupted = Some(e);
            }
        }
        dir.write_summary(&summary)?;
        if interrupted.is_some() {
            break;
        }
    }
    if interrupted.is_none()
        && ports.is_none()
        && let Err(e) = run_anchors(a, &mut dir, &mut summary, &stop)
    {
        interrupted = Some(e);
    }
    summary.run.complete = interrupted.is_none();
    dir.write_summary(&summary)?;
    dir.write_readme(&summary)?;
    println!("{}", dir.path.display());
    match interrupted {
        None => {
            eprintln!("bench: done; compare runs with `xdpipe report {}`", dir.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(e) if stop.load(Ordering::Relaxed) => {
            eprintln!("bench: interrupted ({e}); the finished trials are in {}", dir.path.display());
            Ok(ExitCode::from(130))
        }
        Some(e) => Err(anyhow::anyhow!("a trial failed: {e}; the finished trials are in {}", dir.path.display())),
    }
}

pub fn cmd_report(a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    for p in &a.runs {
        let summary = load(p)?;
        let name = p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
        runs.push(NamedRun { name, summary });
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let md_path = a.out.join("report.md");
    let html_path = a.out.join("report.html");
    std::fs::write(&md_path, markdown(&runs)).with_context(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&html_path, html(&runs)).with_context(|| format!("writing {}", html_path.display()))?;
    println!("{}\n{}", md_path.display(), html_path.display());
    Ok(ExitCode::SUCCESS)
}

/// The anchor phase: each comparison the found tools allow, ours and theirs alternately.
fn run_anchors(
    a: &BenchArgs,
    dir: &mut RunDir,
    summary: &mut RunSummary,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let tools = match a.anchors.as_str() {
        "off" => return Ok(()),
        "auto" => Tools::find(&a.anchor_dir),
        o => return Err(format!("--anchors {o:?}: auto or off")),
    };
    let cpu_pps = match a.anchor_cpu_rate.parse::<xdpipe::generator::Rate>() {
        Ok(xdpipe::generator::Rate::Pps(p)) => p,
        _ => return Err(format!("--anchor-cpu-rate {:?}: a packet rate such as 200kpps", a.anchor_cpu_rate)),
    };
    let missing = tools.missing();
    if !missing.is_empty() {
        let m = format!(
            "anchors not found (looked in --anchor-dir and PATH): {}; their comparisons were not run",
            missing.join(", ")
        );
        eprintln!("bench: {m}");
        summary.run.notes.push(m);
    }
    let pairings = plan(&tools, &a.xdp_modes, &a.engines, cpu_pps);
    let trials = a.anchor_trials.unwrap_or(a.trials).max(1);
    let exe = std::env::current_exe().map_err(|e| format!("finding the xdpipe binary: {e}"))?;
    for (k, p) in pairings.iter().enumerate() {
        eprintln!(
            "bench: anchor {}/{}: {} [{}], {trials} trial(s) per side",
            k + 1,
            pairings.len(),
            p.name,
            p.xdp_mode
        );
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut ours_cmd, mut theirs_cmd) = (String::new(), String::new());
        for i in 0..trials {
            for (side, name, vals, cmd) in
                [(&p.ours, "xdpipe", &mut ours, &mut ours_cmd), (&p.theirs, "anchor", &mut theirs, &mut theirs_cmd)]
            {
                let m = anchors::measure(&tools, &exe, p, side, a.trial_secs, stop)
                    .map_err(|e| format!("anchor {}: {e}", p.name))?;
                let shown =
                    if p.metric == Metric::CpuNsPerPkt { format!("{:.0} ns/frame", m.value) } else { fmt_pps(m.value) };
                eprintln!("bench:   {name} {}: {shown}", i + 1);
                dir.record_anchor(&p.name, &p.xdp_mode, name, i, m.value, p.metric.unit(), &m.command)
                    .map_err(|e| e.to_string())?;
                vals.push(m.value);
                *cmd = m.command;
            }
        }
        let (o, t) = (spread(&ours), spread(&theirs));
        let ratio = if t.median > 0.0 { o.median / t.median } else { 0.0 };
        let (goal, met) = match p.goal {
            Goal::AtLeast(x) => (format!("at least {x}"), Some(ratio >= x)),
            Goal::AtMost(x) => (format!("at most {x}"), Some(ratio <= x)),
            Goal::Share => (String::new(), None),
        };
        eprintln!(
            "bench:   ratio {ratio:.2}{}",
            if goal.is_empty() {
                String::new()
            } else {
                format!(" (goal {goal}: {})", if met == Some(true) { "met" } else { "not met" })
            }
        );
        summary.anchors.push(Anchor {
            name: p.name.clone(),
            xdp_mode: p.xdp_mode.clone(),
            unit: p.metric.unit().into(),
            ours_command: ours_cmd,
            theirs_command: theirs_cmd,
            ours: o,
            theirs: t,
            ratio,
            goal,
            met,
        });
        dir.write_summary(summary).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `scripts/vm/guest.sh`, found from the binary's place in the tree (target/*/xdpipe) or
/// the working directory.
fn guest_script() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    let candidates =
        [exe.ancestors().nth(3).map(|r| r.join("scripts/vm/guest.sh")), Some(PathBuf::from("scripts/vm/guest.sh"))];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("--target vm:*: scripts/vm/guest.sh not found; run from the xdpipe source tree"))
}

/// `--target vm:igb|vm:virtio`: boots the QEMU guest, runs the same matrix there with
/// `--target nic:` on the guest's cabled pair (labelled emulated), copies the run back.
fn bench_in_guest(a: &BenchArgs, kind: &str, stop: &Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    let (rx, tx) = match kind {
        "igb" => ("igb1", "igb0"),
        "virtio" => ("vio1", "vio0"),
        k => anyhow::bail!("--target vm:{k}: vm:igb or vm:virtio"),
    };
    let exe = std::env::current_exe().context("finding the xdpipe binary")?;
    let state = std::env::temp_dir().join(format!("xdpipe-vm-bench-{}", std::process::id()));
    // Stopped on every way out (drop).
    let guest = Guest::start(&guest_script()?, state, &exe, false).map_err(anyhow::Error::msg)?;
    let list = |v: &[String]| v.join(",");
    let mut args: Vec<String> = vec![
        "bench".into(),
        "--target".into(),
        format!("nic:{rx}"),
        "--gen-iface".into(),
        tx.into(),
        "--emulated-as".into(),
        format!("vm:{kind}"),
        "--out".into(),
        "/host/runs".into(),
        "--anchors".into(),
        "off".into(),
        "--xdp-modes".into(),
        list(&a.xdp_modes),
        "--modes".into(),
        list(&a.modes),
        "--engines".into(),
        list(&a.engines),
        "--waits".into(),
        list(&a.waits),
        "--binds".into(),
        list(&a.binds),
        "--offloads".into(),
        list(&a.offloads),
        "--queues".into(),
        a.queues.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        "--trials".into(),
        a.trials.to_string(),
        "--trial-secs".into(),
        a.trial_secs.to_string(),
        "--search-secs".into(),
        a.search_secs.to_string(),
        "--latency-fraction".into(),
        a.latency_fraction.to_string(),
    ];
    if let Some(s) = &a.sizes {
        args.extend(["--sizes".into(), list(s)]);
    }
    if a.no_search {
        args.push("--no-search".into());
    }
    // igb hashes UDP on addresses only by default: add the ports so flows spread.
    let job = format!(
        "ethtool -N {rx} rx-flow-hash udp4 sdfn 2>/dev/null; xdpipe {}",
        args.iter().map(|x| shell_quote(x)).collect::<Vec<_>>().join(" ")
    );
    eprintln!("bench: running in the guest: {job}");
    let st = guest.exec_shown(&job, 86400).context("running guest.sh exec")?;
    let runs = guest.share().join("runs");
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut copied = Vec::new();
    for e in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        let to = a.out.join(e.file_name());
        copy_recursive(&e.path(), &to)
            .with_context(|| format!("copying {} to {}", e.path().display(), to.display()))?;
        copied.push(to);
    }
    drop(guest);
    for c in &copied {
        println!("{}", c.display());
    }
    if stop.load(Ordering::Relaxed) {
        eprintln!("bench: interrupted; what the guest finished is in {:?}", copied);
        return Ok(ExitCode::from(130));
    }
    anyhow::ensure!(
        st.success() && !copied.is_empty(),
        "the bench in the guest failed (exit {:?}); its output is above",
        st.code()
    );
    eprintln!("bench: done; compare with a veth run: `xdpipe report {} bench/runs/<veth run>`", copied[0].display());
    Ok(ExitCode::SUCCESS)
}

/// Quotes `s` for the guest's shell: one single-quoted word (a `'` becomes `'\''`).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Copies a file or a directory tree (`cp -r FROM TO`).
fn copy_recursive(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(from)?.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_recursive(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

#[cfg(test)]
mod net_tests {
    use super::*;

    #[test]
    fn guest_words_are_quoted_and_trees_copied() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let (stamp, iso) = utc_now();
        assert_eq!((stamp.len(), iso.len()), (15, 20));
        let d = std::env::temp_dir().join(format!("xdpipe-copy-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), "x").unwrap();
        copy_recursive(&d.join("a"), &d.join("c")).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("c/b/f")).unwrap(), "x");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

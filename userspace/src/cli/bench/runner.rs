//! The trial runner of `xdpipe bench` (each trial a `xdpipe::veth` run, on a veth
//! testbed or two cabled ports) and the environment a run records.
use std::{
    collections::BTreeMap,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use xdpipe::veth::{Ports, VethConfig, run_veth};
use xdpipe_bench::{
    Latency, Rate, Runner, Scenario, Trial,
    noise::Noise,
    scenario::{Engine, Mode, Offloads, Size, Wait, XdpMode},
};

pub struct VethRunner {
    pub stop: Arc<AtomicBool>,
    /// nic target: the receive and generator ports.
    pub ports: Option<Ports>,
    /// Threaded-NAPI scenarios: the core the receive NAPI thread is pinned to.
    pub napi_core: Option<u32>,
    /// `poll` scenarios: `--coalesce-us`, `--coalesce-frames`.
    pub coalesce: (Option<u32>, Option<u32>),
    /// nic target with `--remote-gen`: the generator on the traffic host (`ports.tx`
    /// unused).
    pub remote: Option<crate::cli::agent::RemoteRun>,
    /// The receiving device of a testbed target (veth, bridge, macvlan, vxlan, tap).
    pub device: xdpipe::topology::Device,
    /// nic target on this machine whose RSS settings gen can read: the receiver, for
    /// `gen --rss-of` in scenarios with several queues.
    pub rss_of: Option<String>,
}

/// Offloads turned off for `offloads: off` scenarios, by kernel feature name (`ethtool -K`
/// calls them rx, gro, lro, rx-gro-hw, rxvlan, rxhash).
const OFFLOADS: [&str; 6] = ["rx-checksum", "rx-gro", "rx-lro", "rx-gro-hw", "rx-vlan-hw-parse", "rx-hashing"];

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
            sc.size.to_string(),
            "--rate".into(),
            rate_arg,
            "--duration".into(),
            secs.to_string(),
            "--engine".into(),
            sc.engine.to_string(),
        ];
        let poll = match sc.wait {
            Wait::Poll => "forever",
            Wait::Busy => "0",
            Wait::BusyPoll => "busy-poll",
        };
        let mut run_args: Vec<String> = vec![
            "--mode".into(),
            sc.mode.to_string(),
            "--xdp-mode".into(),
            sc.xdp_mode.to_string(),
            "--bind".into(),
            sc.bind.to_string(),
            "--poll".into(),
            poll.into(),
        ];
        if sc.wait == Wait::Poll {
            let (us, frames) = self.coalesce;
            run_args.extend(us.into_iter().flat_map(|v| ["--coalesce-us".to_owned(), v.to_string()]));
            run_args.extend(frames.into_iter().flat_map(|v| ["--coalesce-frames".to_owned(), v.to_string()]));
        }
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
            if sc.queues > 1 {
                // As many generator workers as the target has queues (TX queues 0..q, 64
                // flows split over them), unpinned: the cores are the receiver's.
                gen_args.extend(["--queues".into(), format!("0-{}", sc.queues - 1)]);
                // Ports that reach each of the receiver's queues, where its RSS settings
                // could be read; otherwise its hash spreads sequential ports.
                if let Some(rx) = &self.rss_of {
                    gen_args.extend(["--rss-of".into(), rx.clone()]);
                }
            } else {
                gen_args.extend(["--core".into(), "0".into()]);
            }
        } else {
            run_args.extend(["--cores".into(), "1".into()]);
            gen_args.extend(["--core".into(), "0".into()]);
        }
        let (rx, gen_cfg) = crate::cli::veth::side_configs(&run_args, &gen_args).map_err(|e| e.0)?;
        let cfg = VethConfig {
            rx,
            gen_cfg,
            queues: sc.queues,
            fwd: sc.mode == Mode::Fwd,
            gro: sc.engine == Engine::XdpLive && sc.xdp_mode == XdpMode::Skb,
            threaded_napi: sc.threaded_napi,
            napi_core: self.napi_core,
            ports: self.ports.clone(),
            // A jumbo size gets a jumbo testbed (both veth ends at MTU 9000).
            mtu: (sc.size.max_bytes() > 1518).then_some(9000),
            device: self.device,
        };
        // Read first, only what is on goes off; dropped at the end of the trial (or on
        // a second signal), it restores exactly what changed.
        let _offloads = match (&self.ports, sc.offloads) {
            (Some(p), Offloads::Off) => Some(
                xdpipe::net::ethtool::OffloadGuard::off(&p.rx, &OFFLOADS)
                    .map_err(|e| format!("turning the offloads of {} off: {e}", p.rx))?,
            ),
            _ => None,
        };
        let probe = xdpipe::noise::NoiseProbe::start().map_err(|e| format!("starting the noise probe: {e}"))?;
        if let (Some(remote), Some(p)) = (&mut self.remote, &self.ports) {
            use xdpipe::agent::{FrameSpec, GenEngine, TrialRate};
            let size = match sc.size {
                Size::Bytes(n) => FrameSpec::Bytes(n),
                Size::Imix => FrameSpec::Imix,
            };
            let engine = match sc.engine {
                Engine::Xsk => GenEngine::Xsk,
                Engine::XdpLive => GenEngine::XdpLive,
            };
            let rate = match rate {
                Rate::Max => TrialRate::Max,
                Rate::Pps(p) => TrialRate::Pps(p),
            };
            let t = crate::cli::agent::remote_trial(remote, &p.rx, cfg.rx, (size, engine, 64), rate, secs, &self.stop);
            let n = probe.finish();
            let mut t = t?;
            if self.stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            t.noise = Some(noise_of(&n));
            return Ok(t);
        }
        let r = run_veth(&cfg, self.stop.clone());
        let n = probe.finish();
        let r = r.map_err(|e| format!("{e:#}"))?;
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let latency = r.latency_ns.map(|l| Latency {
            p50: l.p50 as f64,
            p90: l.p90 as f64,
            p99: l.p99 as f64,
            p999: l.p999 as f64,
            max: l.max as f64,
        });
        let rx_pkts = r.receiver.rx_packets;
        let cpu: u64 = r.receiver.queues.iter().map(|q| q.counters.cpu_ns).sum();
        Ok(Trial {
            sent: r.sent,
            received: r.received,
            tx_pps: r.tx_pps,
            rx_pps: r.rx_pps,
            duration_s: secs,
            latency,
            rx_cpu_ns_per_pkt: (rx_pkts > 0).then(|| cpu as f64 / rx_pkts as f64),
            noise: Some(noise_of(&n)),
            // Counted where the frames end: the sink with fwd, else the receiver.
            duplicates: r.sink.as_ref().unwrap_or(&r.receiver).accounting.as_ref().map(|a| a.duplicates),
        })
    }
}

/// What the probe saw over a trial, as the run stores it.
fn noise_of(n: &xdpipe::noise::NoiseReading) -> Noise {
    Noise { stalls: n.stalls, longest_stall_us: n.longest_stall.as_secs_f64() * 1e6, steal: n.steal, iowait: n.iowait }
}

/// A file's content, trimmed ("" if unreadable).
pub fn read_trim(path: &str) -> String {
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
pub fn utc_now() -> (String, String) {
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
pub fn link_bps(iface: &str) -> Option<f64> {
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
pub fn capture_env(target: &str, ports: Option<&Ports>) -> BTreeMap<String, String> {
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
        // The commit the binary was built from (build.rs), not the one checked out here.
        format!("{} ({})", env!("CARGO_PKG_VERSION"), env!("XDPIPE_GIT_COMMIT")),
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

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
    scenario::{Engine, Mode, Offloads, Wait, XdpMode},
};

pub struct VethRunner {
    pub stop: Arc<AtomicBool>,
    /// nic target: the receive and generator ports.
    pub ports: Option<Ports>,
    /// Threaded-NAPI scenarios: the core the receive NAPI thread is pinned to.
    pub napi_core: Option<u32>,
}

/// Offloads `ethtool -K` is asked to turn off for `offloads: off` scenarios.
const OFFLOADS: [&str; 6] = ["rx", "gro", "lro", "rx-gro-hw", "rxvlan", "rxhash"];

/// Turns each of [`OFFLOADS`] that is on off (or back on); returns those that changed.
fn set_offloads(iface: &str, on: bool, which: &[&str]) -> Vec<String> {
    let mut changed = Vec::new();
    for f in which {
        let ok = Command::new("ethtool")
            .args(["-K", iface, f, if on { "on" } else { "off" }])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            changed.push((*f).to_owned());
        }
    }
    changed
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
            sc.size.to_string(),
            "--rate".into(),
            rate_arg,
            "--duration".into(),
            secs.to_string(),
            "--core".into(),
            "0".into(),
            "--engine".into(),
            sc.engine.to_string(),
        ];
        let poll = match sc.wait {
            Wait::Poll => "forever",
            Wait::Busy => "0",
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
        };
        let turned_off = match (&self.ports, sc.offloads) {
            (Some(p), Offloads::Off) => set_offloads(&p.rx, false, &OFFLOADS),
            _ => Vec::new(),
        };
        let r = run_veth(&cfg, self.stop.clone()).map_err(|e| format!("{e:#}"));
        if let Some(p) = &self.ports {
            let back: Vec<&str> = turned_off.iter().map(String::as_str).collect();
            set_offloads(&p.rx, true, &back);
        }
        let r = r?;
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
        })
    }
}

pub fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Link speed of `iface` in bit/s, from ethtool.
pub fn link_bps(iface: &str) -> Option<f64> {
    let out = sh(&format!("ethtool {iface} 2>/dev/null | sed -n 's/.*Speed: *\\([0-9]*\\)Mb\\/s.*/\\1/p'"));
    out.parse::<f64>().ok().filter(|&m| m > 0.0).map(|m| m * 1e6)
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
    put("kernel", sh("uname -r"));
    put("cpu model", sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"));
    put("cpus online", sh("nproc"));
    put("cpu governor", sh("cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null"));
    put("busy_poll / busy_read", sh("echo $(cat /proc/sys/net/core/busy_poll) / $(cat /proc/sys/net/core/busy_read)"));
    put("xdpipe version", format!("{} ({})", env!("CARGO_PKG_VERSION"), sh("git rev-parse --short HEAD 2>/dev/null")));
    put("rustc", sh("rustc --version 2>/dev/null"));
    put("target", target.to_owned());
    if let Some(p) = ports {
        let i = &p.rx;
        put("driver and firmware", sh(&format!("ethtool -i {i} | head -3 | tr '\\n' ' '")));
        put("generator port", format!("{} ({})", p.tx, sh(&format!("ethtool -i {} | head -1", p.tx))));
        put(
            "link",
            sh(&format!("ethtool {i} | grep -E 'Speed|Duplex|Link detected' | tr -s ' \\t' ' ' | tr '\\n' ' '")),
        );
        put("channels", sh(&format!("ethtool -l {i} | tr -s ' \\t' ' ' | tr '\\n' ' '")));
        put("ring sizes", sh(&format!("ethtool -g {i} | tr -s ' \\t' ' ' | tr '\\n' ' '")));
        put("offload features (on)", sh(&format!("ethtool -k {i} | grep ': on' | cut -d: -f1 | tr '\\n' ' '")));
        put(
            "offloads the off scenarios turn off (those ethtool can change)",
            sh(&format!(
                "ethtool -k {i} | grep -v fixed | grep -E '^(rx-checksumming|generic-receive-offload|large-receive-offload|rx-gro-hw|rx-vlan-offload|receive-hashing):' | tr -s ' \\t' ' ' | tr '\\n' ' '"
            )),
        );
        put("RSS hash for udp4", sh(&format!("ethtool -n {i} rx-flow-hash udp4 2>&1 | tr '\\n' ' '")));
        put(
            "IRQ affinity",
            sh(&format!(
                "for q in $(grep -E '{i}' /proc/interrupts | cut -d: -f1); do printf '%s:%s ' $q $(cat /proc/irq/$q/smp_affinity_list); done"
            )),
        );
        put("XDP features (netlink)", xdp_features_of(i));
        put("XDP features of the generator port (netlink)", xdp_features_of(&p.tx));
        return env;
    }
    // A throwaway testbed to read the veth driver's view.
    if let Ok(tb) = xdpipe::testbed::Testbed::create(&xdpipe::testbed::unique_name("e"), 1) {
        let ex = |c: &str| sh(&format!("ip netns exec {} {c} 2>&1", tb.rx_ns));
        put("driver", ex("ethtool -i xp-rx | head -3 | tr '\\n' ' '"));
        put("channels", ex("ethtool -l xp-rx | tr -s ' \\t' ' ' | tr '\\n' ' '"));
        put("ring sizes", ex("ethtool -g xp-rx | tr -s ' \\t' ' ' | tr '\\n' ' '"));
        put("offload features (on)", ex("ethtool -k xp-rx | grep ': on' | cut -d: -f1 | tr '\\n' ' '"));
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "xdpipe".into());
        put("XDP features (netlink)", ex(&format!("{exe} features -i xp-rx")).trim_start_matches("xp-rx: ").to_owned());
        put("IRQ affinity", "n/a: veth has no IRQs; its receive work runs in the sender's softirq (or a NAPI thread with threaded NAPI)".into());
    }
    env
}

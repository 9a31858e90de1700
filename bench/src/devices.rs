//! The host-device targets in a report: what each receiving device offers, the
//! kernel-stack baselines measured on it, "AF_XDP / kernel UDP" per device with its
//! bootstrap interval, and a waterfall from plain veth through each virtual hop.
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{
    report::NamedRun,
    stats::{DEFAULT_CONFIDENCE, Interval, Spread, ratio_interval},
    store::ScenarioSummary,
};

/// What the receiving device of a testbed target offers, read on a throwaway copy of the
/// topology at the start of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The target: veth, bridge, macvlan, vxlan, tap.
    pub device: String,
    /// The interface the receiver runs on.
    pub rx_iface: String,
    /// How the frames get there (the topology, in one line).
    pub path: String,
    /// The netlink XDP feature flags (`none`: no native XDP, generic only).
    pub xdp_features: String,
    /// Whether it offers AF_XDP zero-copy (from the feature flags).
    pub zero_copy: bool,
    /// Its channel counts (`ethtool -l`) or why they are missing.
    pub queues: String,
    /// The offload features on, by kernel name.
    pub offloads_on: String,
}

impl DeviceInfo {
    /// "native and generic" when the device has native XDP (`basic` and `redirect`
    /// flags), else "generic only".
    pub fn xdp_available(&self) -> &'static str {
        let f = self.xdp_features.split(';').next().unwrap_or("");
        let has = |n: &str| f.split_whitespace().any(|w| w == n);
        if has("basic") && has("redirect") { "native and generic" } else { "generic only" }
    }
}

/// One kernel-stack baseline: its trials on the run's device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelBaseline {
    /// `udp` (kernel socket, recvmmsg, one pinned thread) or `tcp` (kernel stream).
    pub kind: String,
    /// `on` (as the devices had them) or `off` (GRO, GSO/TSO, checksum offloads off).
    pub offloads: String,
    /// `pps` (udp) or `Gbit/s` (tcp).
    pub unit: String,
    /// The trials' values.
    pub values: Spread,
    /// UDP: frames sent and received over the trials.
    pub sent: u64,
    /// UDP: frames the socket received.
    pub received: u64,
    /// UDP: the receiving thread's CPU per datagram, ns.
    #[serde(default)]
    pub cpu_ns_per_pkt: Option<Spread>,
    /// Why it was not measured, when it was not (then `values` is empty).
    #[serde(default)]
    pub not_measured: Option<String>,
    /// The exact command-line equivalent.
    pub command: String,
}

/// The targets that run only in the QEMU guest (its kernel has kinds this host lacks).
pub const GUEST_TARGETS: [&str; 6] = ["vm:ipvlan-l2", "vm:ipvlan-l3", "vm:geneve", "vm:netkit", "vm:ovs", "vm:virtio"];

/// What of the guest's devices this report lacks: the guest targets and path:kubevirt
/// when no run measured them.
fn guest_line(runs: &[NamedRun]) -> String {
    let have: Vec<String> =
        runs.iter().flat_map(|r| r.summary.scenarios.iter().map(|s| s.scenario.target.to_string())).collect();
    let missing: Vec<&str> = GUEST_TARGETS.into_iter().filter(|t| !have.iter().any(|h| h == t)).collect();
    let mut l = String::new();
    if !missing.is_empty() {
        l = format!(
            "{}: not in this report (they run in the QEMU guest: `xdpipe bench --target vm:...`); ",
            missing.join(", ")
        );
    }
    if !runs.iter().any(|r| r.summary.hop.is_some()) {
        l += "path:kubevirt: not in this report (`xdpipe bench --target path:kubevirt` measures it in the guest, hop by hop)";
    }
    l.trim_end_matches("; ").to_owned()
}

/// A run in the QEMU guest's kernel (vm:DEVICE, a path:kubevirt stage).
fn in_guest(r: &NamedRun, s: &ScenarioSummary) -> bool {
    r.summary.hop.is_some() || s.scenario.target.is_vm()
}

fn device_runs(runs: &[NamedRun]) -> Vec<(&NamedRun, &ScenarioSummary)> {
    runs.iter()
        .filter(|r| r.summary.device.is_some())
        .filter_map(|r| r.summary.scenarios.first().map(|s| (r, s)))
        .collect()
}

fn baseline<'a>(r: &'a NamedRun, kind: &str, off: &str) -> Option<&'a KernelBaseline> {
    r.summary.kernel.iter().find(|k| k.kind == kind && k.offloads == off)
}

fn cell(b: Option<&KernelBaseline>, scale: f64, digits: usize) -> String {
    match b {
        None => "not run".into(),
        Some(k) if k.not_measured.is_some() => "not measured".into(),
        Some(k) => format!(
            "{:.*} [{:.*}–{:.*}]",
            digits,
            k.values.median / scale,
            digits,
            k.values.min / scale,
            digits,
            k.values.max / scale
        ),
    }
}

fn ci(i: Option<Interval>) -> String {
    i.map_or("no interval (fewer than two trials a side)".into(), |i| {
        format!("{:.2} [{:.2}, {:.2}]", i.estimate, i.lo, i.hi)
    })
}

/// The markdown section (empty when no run has a device).
pub fn markdown(runs: &[NamedRun]) -> String {
    let dev = device_runs(runs);
    if dev.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n## Host devices\n\n");
    md += "Each device run's first scenario (AF_XDP, max-rate trials: median [min–max]) beside the kernel-stack baselines on the same device in the same run. Kernel UDP: xdpipe's generator, one kernel socket read with recvmmsg by one pinned thread, no XDP program. Kernel TCP: the kernel's own sender and receiver. CPU ns/frame of kernel UDP is the receiving thread's only (the softirq work runs on the sender's core).\n\n";
    md += "| run | device | receives on | XDP mode available | XDP mode used | zero-copy | queues | offloads on | AF_XDP Mpps | kernel UDP Mpps (offloads on) | kernel UDP Mpps (off) | kernel TCP Gbit/s (on) | kernel TCP Gbit/s (off) | CPU ns/frame AF_XDP | CPU ns/frame kernel UDP |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (r, s) in &dev {
        let d = r.summary.device.clone().unwrap_or_default();
        let udp = baseline(r, "udp", "on");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.3} [{:.3}–{:.3}] | {} | {} | {} | {} | {} | {} |",
            r.name,
            d.device,
            d.rx_iface,
            d.xdp_available(),
            s.scenario.xdp_mode,
            if d.zero_copy { "yes" } else { "no" },
            d.queues,
            if d.offloads_on.is_empty() { "none".to_owned() } else { d.offloads_on.clone() },
            s.mrr_pps.median / 1e6,
            s.mrr_pps.min / 1e6,
            s.mrr_pps.max / 1e6,
            cell(udp, 1e6, 3),
            cell(baseline(r, "udp", "off"), 1e6, 3),
            cell(baseline(r, "tcp", "on"), 1.0, 2),
            cell(baseline(r, "tcp", "off"), 1.0, 2),
            s.latency
                .as_ref()
                .map_or("n/a (no latency trials)".into(), |l| format!("{:.0}", l.rx_cpu_ns_per_pkt.median)),
            udp.and_then(|u| u.cpu_ns_per_pkt.as_ref()).map_or("n/a".into(), |c| format!("{:.0}", c.median)),
        );
    }
    md += "\n**AF_XDP / kernel UDP** (median ratio of the max-rate trials, offloads on, with its bootstrap interval):\n\n";
    for (r, s) in &dev {
        let d = r.summary.device.as_ref().map_or("?", |d| d.device.as_str());
        let v = baseline(r, "udp", "on").map(|u| u.values.values.as_slice()).unwrap_or(&[]);
        let _ = writeln!(md, "- {d} ({}): {}", r.name, ci(ratio_interval(&s.mrr_pps.values, v, DEFAULT_CONFIDENCE)));
    }
    md += "\n**Waterfall** (AF_XDP max receive rate of each hop relative to plain veth, same size and XDP mode):\n\n";
    match waterfall(runs) {
        None => md += "- no veth run in this report: no waterfall (add a `--target veth` run).\n",
        Some(steps) => {
            for (i, st) in steps.iter().enumerate() {
                let f = if i == 0 { "1 (the reference)".to_owned() } else { ci(st.factor) };
                let _ = writeln!(md, "- {}: {:.3} Mpps, factor {f}", st.name, st.mpps);
            }
        }
    }
    md += "- This waterfall starts at plain veth: no physical NIC run is in it. path:kubevirt's waterfall (below, when its runs are given) starts at the guest's emulated igb.\n";
    for (r, _) in &dev {
        for k in r.summary.kernel.iter().filter(|k| k.not_measured.is_some()) {
            let _ = writeln!(
                md,
                "- {}: kernel {} (offloads {}) not measured: {}",
                r.name,
                k.kind,
                k.offloads,
                k.not_measured.as_deref().unwrap_or("")
            );
        }
        if r.summary.kernel.is_empty() {
            let _ = writeln!(md, "- {}: kernel baselines not run (add --kernel-baselines)", r.name);
        }
    }
    if dev.iter().any(|(r, sc)| in_guest(r, sc)) {
        md += "- vm:DEVICE and path:kubevirt runs (emulated, in the guest's kernel under QEMU) are left out of this waterfall: it needs a veth reference from the same kernel; path:kubevirt's own waterfall has one.\n";
    }
    let line = guest_line(runs);
    if !line.is_empty() {
        let _ = writeln!(md, "- {line}.");
    }
    md += "\nTopologies:\n\n";
    for (r, _) in &dev {
        if let Some(d) = &r.summary.device {
            let _ = writeln!(md, "- {}: {}", d.device, d.path);
        }
    }
    md += "\nBaseline commands:\n\n";
    let mut seen = std::collections::BTreeSet::new();
    for (r, _) in &dev {
        for k in &r.summary.kernel {
            if seen.insert(k.command.clone()) {
                let _ = writeln!(md, "- `{}`", k.command);
            }
        }
    }
    md
}

/// One step of the waterfall.
pub struct Step {
    /// The device.
    pub name: String,
    /// Its AF_XDP max receive rate, median, Mpps.
    pub mpps: f64,
    /// Its rate / veth's rate with the interval (None for veth itself or too few trials).
    pub factor: Option<Interval>,
}

/// veth first, then each device run with veth's size and XDP mode, in the order given.
pub fn waterfall(runs: &[NamedRun]) -> Option<Vec<Step>> {
    let dev = device_runs(runs);
    let (_, v) =
        dev.iter().find(|(r, s)| !in_guest(r, s) && r.summary.device.as_ref().is_some_and(|d| d.device == "veth"))?;
    let mut steps = vec![Step { name: "veth".into(), mpps: v.mrr_pps.median / 1e6, factor: None }];
    for (r, s) in &dev {
        let d = r.summary.device.as_ref().map_or("?", |d| d.device.as_str());
        if d == "veth"
            || in_guest(r, s)
            || s.scenario.size != v.scenario.size
            || s.scenario.xdp_mode != v.scenario.xdp_mode
        {
            continue;
        }
        steps.push(Step {
            name: d.to_owned(),
            mpps: s.mrr_pps.median / 1e6,
            factor: ratio_interval(&s.mrr_pps.values, &v.mrr_pps.values, DEFAULT_CONFIDENCE),
        });
    }
    Some(steps)
}

/// One bar of a factor chart.
pub struct Bar {
    /// The label under the bar.
    pub label: String,
    /// The bar's height (a factor; the reference is 1.0).
    pub value: f64,
    /// The interval drawn as a whisker.
    pub whisker: Option<(f64, f64)>,
    /// The reference bar (grey).
    pub reference: bool,
}

/// The waterfall as an SVG bar chart: each hop's factor relative to veth (1.0) with its
/// interval as a whisker; empty when there is no veth run.
pub fn waterfall_svg(runs: &[NamedRun]) -> String {
    let Some(steps) = waterfall(runs) else { return String::new() };
    let bars: Vec<Bar> = steps
        .iter()
        .map(|st| Bar {
            label: match st.factor {
                None => format!("{} {:.3} Mpps", st.name, st.mpps),
                Some(iv) => format!("{} ×{:.2} [{:.2}, {:.2}]", st.name, iv.estimate, iv.lo, iv.hi),
            },
            value: st.factor.map_or(1.0, |f| f.estimate),
            whisker: st.factor.map(|f| (f.lo, f.hi)),
            reference: st.factor.is_none(),
        })
        .collect();
    factor_svg("AF_XDP rate of each hop relative to plain veth (factor, bootstrap interval)", &bars)
}

/// A bar chart of factors against a dashed 1.0 line, whiskers for the intervals.
pub fn factor_svg(title: &str, bars: &[Bar]) -> String {
    if bars.is_empty() {
        return String::new();
    }
    let (w, l, t, ph) = (760.0, 70.0, 40.0, 220.0);
    let pw = w - l - 20.0;
    let top = bars.iter().map(|b| b.whisker.map_or(b.value, |(_, hi)| hi.max(b.value))).fold(1.0, f64::max) * 1.1;
    let y = |v: f64| t + ph - ph * v / top;
    // Label lines under the plot: the longest label's, twice over when they alternate.
    let most = bars.iter().map(|b| b.label.lines().count()).max().unwrap_or(1) as f64;
    let lines_below = if bars.len() > 5 { 2.0 * most } else { most };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"{cx}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n",
        h = t + ph + 36.0 + 14.0 * lines_below,
        cx = w / 2.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{l}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">1.0</text>",
        y(1.0),
        l + pw,
        y(1.0),
        l - 6.0,
        y(1.0) + 4.0
    );
    let bw = pw / bars.len() as f64;
    for (i, b) in bars.iter().enumerate() {
        let x = l + bw * i as f64 + bw * 0.2;
        let _ = writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
            y(b.value),
            bw * 0.6,
            ph - (y(b.value) - t),
            if b.reference { "#888" } else { "#3b6ea5" }
        );
        if let Some((lo, hi)) = b.whisker {
            let cx = x + bw * 0.3;
            let _ = writeln!(
                s,
                "<line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>",
                y(lo),
                y(hi)
            );
        }
        // One line per '\n' of the label; with many bars every other label goes lower.
        let cx = x + bw * 0.3;
        let lines: Vec<&str> = b.label.split('\n').collect();
        let y0 = t + ph + 18.0 + if bars.len() > 5 { 14.0 * lines.len() as f64 * (i % 2) as f64 } else { 0.0 };
        let spans: String = lines
            .iter()
            .enumerate()
            .map(|(k, l)| format!("<tspan x=\"{cx:.1}\" dy=\"{}\">{l}</tspan>", if k == 0 { 0 } else { 14 }))
            .collect();
        let _ = writeln!(s, "<text x=\"{cx:.1}\" y=\"{y0:.1}\" text-anchor=\"middle\">{spans}</text>");
    }
    s + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        scenario::{HostDevice, Scenario, Target},
        stats::spread,
        store::RunSummary,
    };

    fn run(name: &str, target: Target, mrr: &[f64], udp: Option<&[f64]>) -> NamedRun {
        let scenario = Scenario { target: target.clone(), ..Scenario::example() };
        let s = ScenarioSummary::of_trials(scenario, mrr);
        let kernel = udp
            .map(|v| KernelBaseline {
                kind: "udp".into(),
                offloads: "on".into(),
                unit: "pps".into(),
                values: spread(v),
                sent: 0,
                received: 0,
                cpu_ns_per_pkt: None,
                not_measured: None,
                command: "c".into(),
            })
            .into_iter()
            .collect();
        let device = Some(DeviceInfo { device: target.to_string(), ..Default::default() });
        NamedRun { name: name.into(), summary: RunSummary { scenarios: vec![s], device, kernel, ..Default::default() } }
    }

    #[test]
    fn ratios_and_the_waterfall_come_from_the_trials() {
        let runs = [
            run("a", Target::Veth, &[1.0e6, 1.0e6, 1.0e6], None),
            run("b", Target::Dev(HostDevice::Bridge), &[0.5e6, 0.5e6, 0.5e6], Some(&[0.25e6, 0.25e6, 0.25e6])),
        ];
        let w = waterfall(&runs).unwrap();
        assert_eq!(w.len(), 2);
        assert!((w[1].factor.unwrap().estimate - 0.5).abs() < 1e-9);
        let md = markdown(&runs);
        assert!(md.contains("- bridge (b): 2.00 [2.00, 2.00]"), "{md}");
        assert!(md.contains("- bridge: 0.500 Mpps, factor 0.50 [0.50, 0.50]"), "{md}");
        assert!(md.contains("a: kernel baselines not run"), "{md}");
        assert!(
            md.contains("vm:ipvlan-l2, vm:ipvlan-l3, vm:geneve, vm:netkit, vm:ovs, vm:virtio: not in this report"),
            "{md}"
        );
        assert!(md.contains("path:kubevirt: not in this report"), "{md}");
        // A guest device run is in the table but not in the host's waterfall.
        let runs3 = [
            run("a", Target::Veth, &[1.0e6, 1.0e6, 1.0e6], None),
            run("b", Target::Dev(HostDevice::Bridge), &[0.5e6, 0.5e6, 0.5e6], None),
            run("c", Target::VmDev(HostDevice::Geneve), &[0.2e6, 0.2e6, 0.2e6], None),
        ];
        assert_eq!(waterfall(&runs3).unwrap().len(), 2);
        let md = markdown(&runs3);
        assert!(md.contains("left out of this waterfall") && !md.contains("vm:geneve,"), "{md}");
        assert!(waterfall_svg(&runs).contains("bridge ×0.50"));
        // Without a veth run there is no waterfall, and the report says so.
        assert!(waterfall(&runs[1..]).is_none());
        assert!(markdown(&runs[1..]).contains("no veth run in this report"));
    }

    #[test]
    fn native_xdp_is_read_from_the_feature_flags() {
        let d = |f: &str| DeviceInfo { xdp_features: f.into(), ..Default::default() };
        assert_eq!(d("basic redirect ndo-xmit; xsk: tx-checksum").xdp_available(), "native and generic");
        assert_eq!(d("none").xdp_available(), "generic only");
        assert_eq!(d("basic").xdp_available(), "generic only");
    }
}

//! `path:kubevirt` in a report: its hops in the order they are added (each stage a run of
//! its own in the QEMU guest, tagged with its [`PathHop`]), and the waterfall from the
//! guest's emulated igb through each hop, with each step's factor (rate after the hop /
//! rate before it) and its bootstrap interval.
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{
    devices::{Bar, factor_svg},
    report::NamedRun,
    stats::{DEFAULT_CONFIDENCE, Interval, ratio_interval},
    store::ScenarioSummary,
};

/// One stage of a composite path: what the run in the guest targets and what it adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HopSpec {
    /// Its short name in the waterfall.
    pub name: &'static str,
    /// The `--target` it runs with in the guest.
    pub target: &'static str,
    /// What the stage adds to the one before it.
    pub adds: &'static str,
}

/// path:kubevirt's stages, the emulated NIC first. The hops past the underlay sit on the
/// sending side; the receiver is at the far end (igb1, xp-rx, then the receiving node's
/// Geneve device). xdpipe::topology::kubevirt builds them.
pub const KUBEVIRT: [HopSpec; 7] = [
    HopSpec {
        name: "igb",
        target: "nic:igb1",
        adds: "the guest's emulated Intel 82576 pair (igb0 -> igb1, QEMU's model, EMULATED): the start, in place of a physical NIC",
    },
    HopSpec {
        name: "veth underlay",
        target: "veth",
        adds: "a veth pair in place of the NIC and the wire between the two nodes (tx ns -> rx ns)",
    },
    HopSpec {
        name: "+geneve",
        target: "geneve",
        adds: "a Geneve tunnel over it (VNI 77): encapsulation on the sending node, decapsulation on the receiving one, received there",
    },
    HopSpec {
        name: "+ovs",
        target: "kubevirt-ovs",
        adds: "an Open vSwitch kernel datapath in front of the tunnel (one flow from its internal port to the Geneve device, a netdev vport)",
    },
    HopSpec {
        name: "+veth",
        target: "kubevirt-veth",
        adds: "a veth pair into OVS (the pod's veth; its peer is a vport)",
    },
    HopSpec {
        name: "+bridge",
        target: "kubevirt-bridge",
        adds: "a Linux bridge in front of the veth (the virt-launcher pod's bridge)",
    },
    HopSpec {
        name: "+tap",
        target: "kubevirt-tap",
        adds: "a tap on that bridge, written through /dev/net/tun as QEMU writes a VM's transmit ring",
    },
];

/// What the chain cannot show here, for the report.
pub const KUBEVIRT_LIMITS: &str = "path:kubevirt runs in the QEMU guest under TCG (software emulation): the rates show that each hop works and how the hops compare in one emulated kernel, not what they cost on hardware. Every stage receives in generic XDP (skb), the one mode all its receiving devices have. virtio-net, the VM's own NIC, is not nested inside the guest (`--target vm:virtio` measures it alone); the NIC and wire between the nodes are a veth pair; OVS's Geneve port is a Linux geneve device added as a netdev vport, where Kube-OVN's OVS uses a geneve vport with per-flow tunnel keys (both encapsulate in the kernel's geneve code)";

/// The stage of a composite path a run measured, stored in its summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathHop {
    /// The path: `kubevirt`.
    pub path: String,
    /// The stage's place in [`KUBEVIRT`] (0: the emulated NIC).
    pub index: usize,
    /// Its short name.
    pub name: String,
    /// What it adds to the stage before it.
    pub adds: String,
}

impl PathHop {
    /// Stage `index` of path:kubevirt (None past its end).
    pub fn kubevirt(index: usize) -> Option<PathHop> {
        KUBEVIRT.get(index).map(|h| PathHop {
            path: "kubevirt".into(),
            index,
            name: h.name.into(),
            adds: h.adds.into(),
        })
    }
}

/// One step of the chain's waterfall.
pub struct ChainStep {
    /// The stage.
    pub hop: PathHop,
    /// Its run's name.
    pub run: String,
    /// AF_XDP max receive rate, median, Mpps.
    pub mpps: f64,
    /// Rate after this hop / rate before it (None for the start or too few trials).
    pub step: Option<Interval>,
    /// Rate after this hop / the start's rate.
    pub cumulative: Option<Interval>,
}

/// The kubevirt stages among `runs`, in hop order (one per stage: the latest run given),
/// each its first scenario with the start's size and XDP mode.
pub fn kubevirt_steps(runs: &[NamedRun]) -> Vec<ChainStep> {
    let mut by_hop: Vec<(&PathHop, &NamedRun)> =
        runs.iter().filter_map(|r| r.summary.hop.as_ref().filter(|h| h.path == "kubevirt").map(|h| (h, r))).collect();
    by_hop.sort_by_key(|(h, _)| h.index);
    by_hop.dedup_by(|later, earlier| {
        let same = later.0.index == earlier.0.index;
        if same {
            *earlier = *later;
        }
        same
    });
    let Some(first) = by_hop.first().and_then(|(_, r)| r.summary.scenarios.first()) else { return Vec::new() };
    let comparable =
        |s: &&ScenarioSummary| s.scenario.size == first.scenario.size && s.scenario.xdp_mode == first.scenario.xdp_mode;
    let mut steps: Vec<ChainStep> = Vec::new();
    let mut prev: Option<&ScenarioSummary> = None;
    for (h, r) in by_hop {
        let Some(s) = r.summary.scenarios.iter().find(comparable) else { continue };
        let ratio = |den: &ScenarioSummary| ratio_interval(&s.mrr_pps.values, &den.mrr_pps.values, DEFAULT_CONFIDENCE);
        steps.push(ChainStep {
            hop: h.clone(),
            run: r.name.clone(),
            mpps: s.mrr_pps.median / 1e6,
            step: prev.and_then(ratio),
            cumulative: if steps.is_empty() { None } else { ratio(first) },
        });
        prev = Some(s);
    }
    steps
}

fn interval(i: Option<Interval>) -> String {
    i.map_or("no interval (fewer than two trials a side)".into(), |i| {
        format!("×{:.2} [{:.2}, {:.2}]", i.estimate, i.lo, i.hi)
    })
}

/// The report's path:kubevirt section (empty without kubevirt runs).
pub fn markdown(runs: &[NamedRun]) -> String {
    let steps = kubevirt_steps(runs);
    if steps.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n## path:kubevirt, hop by hop (EMULATED)\n\n");
    let _ = writeln!(md, "{KUBEVIRT_LIMITS}.\n");
    md += "Each stage is a run of its own (AF_XDP rxdrop, max-rate trials, median). Step: the rate with the hop / the rate of the stage before, with its bootstrap interval; from start: the rate / the emulated igb's.\n\n";
    md += "| # | stage | adds | run | AF_XDP Mpps | step factor | from start |\n|---|---|---|---|---|---|---|\n";
    for st in &steps {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3} | {} | {} |",
            st.hop.index,
            st.hop.name,
            st.hop.adds,
            st.run,
            st.mpps,
            if st.hop.index == steps[0].hop.index { "the start".into() } else { interval(st.step) },
            if st.hop.index == steps[0].hop.index { "1".into() } else { interval(st.cumulative) },
        );
    }
    let missing: Vec<&str> = KUBEVIRT
        .iter()
        .enumerate()
        .filter(|(i, _)| !steps.iter().any(|s| s.hop.index == *i))
        .map(|(_, h)| h.name)
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(md, "\nStages not in this report: {}.", missing.join(", "));
    }
    md
}

/// The chain's waterfall as SVG: each stage's rate relative to the emulated igb, the
/// whisker its interval, the label the step factor.
pub fn svg(runs: &[NamedRun]) -> String {
    let steps = kubevirt_steps(runs);
    let bars: Vec<Bar> = steps
        .iter()
        .enumerate()
        .map(|(i, st)| Bar {
            label: if i == 0 {
                format!("{} {:.3} Mpps", st.hop.name, st.mpps)
            } else {
                match st.step {
                    None => format!("{} ×?", st.hop.name),
                    Some(f) => format!("{} ×{:.2}\n[{:.2}, {:.2}]", st.hop.name, f.estimate, f.lo, f.hi),
                }
            },
            value: if i == 0 { 1.0 } else { st.cumulative.map_or(0.0, |f| f.estimate) },
            whisker: st.cumulative.map(|f| (f.lo, f.hi)),
            reference: i == 0,
        })
        .collect();
    factor_svg("path:kubevirt, EMULATED: rate vs the guest's igb; labels: each hop's step factor", &bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        scenario::{PathKind, Scenario, Target},
        store::RunSummary,
    };

    fn stage(i: usize, mrr: &[f64]) -> NamedRun {
        let scenario = Scenario { target: Target::Path(PathKind::Kubevirt), ..Scenario::example() };
        let s = ScenarioSummary::of_trials(scenario, mrr);
        NamedRun {
            name: format!("r{i}"),
            summary: RunSummary { scenarios: vec![s], hop: PathHop::kubevirt(i), ..Default::default() },
        }
    }

    #[test]
    fn the_chain_steps_from_the_emulated_nic_in_hop_order() {
        // Given out of order; stage 4 missing.
        let runs = [stage(2, &[0.5e6; 3]), stage(0, &[2.0e6; 3]), stage(1, &[1.0e6; 3]), stage(3, &[0.25e6; 3])];
        let st = kubevirt_steps(&runs);
        assert_eq!(st.iter().map(|s| s.hop.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(st[0].step.is_none() && st[0].cumulative.is_none());
        assert!((st[1].step.unwrap().estimate - 0.5).abs() < 1e-9);
        assert!((st[3].step.unwrap().estimate - 0.5).abs() < 1e-9);
        assert!((st[3].cumulative.unwrap().estimate - 0.125).abs() < 1e-9);
        let md = markdown(&runs);
        assert!(md.contains("| 0 | igb |") && md.contains("the start"), "{md}");
        assert!(md.contains("| 3 | +ovs |") && md.contains("×0.50 [0.50, 0.50] | ×0.12"), "{md}");
        assert!(md.contains("Stages not in this report: +veth, +bridge, +tap."), "{md}");
        assert!(md.contains("TCG"), "{md}");
        let svg = svg(&runs);
        assert!(svg.contains("igb 2.000 Mpps") && svg.contains("+geneve ×0.50</tspan><tspan x"), "{svg}");
        // No kubevirt run: no section.
        assert!(markdown(&[]).is_empty() && svg_is_empty(&[]));
        assert!(PathHop::kubevirt(KUBEVIRT.len()).is_none());
    }

    fn svg_is_empty(runs: &[NamedRun]) -> bool {
        svg(runs).is_empty()
    }
}

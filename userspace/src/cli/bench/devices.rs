//! The host-device targets in `xdpipe bench`: the flags they refuse, what the receiving
//! device offers (read once per run) and the kernel-stack baseline phase
//! ([`xdpipe::kbase`]), stored beside the scenarios.
use std::sync::{Arc, atomic::AtomicBool};

use xdpipe::topology::{Device, Topology};
use xdpipe_bench::{
    config::BenchConfig,
    devices::{DeviceInfo, KernelBaseline},
    scenario::{Engine, Size, Target},
    stats::spread,
    store::{RunDir, RunSummary},
};

use super::args::BenchArgs;
use crate::cli::{CliError, refuse};

/// What the host-device targets cannot do, refused before anything is made.
pub fn check_args(a: &BenchArgs) -> Result<(), CliError> {
    let (d, in_guest) = match &a.target {
        Target::Dev(d) => (d, false),
        Target::VmDev(d) => (d, true),
        _ => return Ok(()),
    };
    let name = d.name();
    let kubevirt = name.starts_with("kubevirt-");
    if a.engines.contains(&Engine::XdpLive) && (kubevirt || matches!(name, "vxlan" | "tap" | "geneve" | "netkit")) {
        refuse!(
            "--engines xdp-live with --target {name}: the in-kernel engine transmits through a driver's XDP transmit, which {} has not; use --engines xsk",
            match name {
                "tap" => "the tap writer (a /dev/net/tun fd)",
                "vxlan" => "a VXLAN device",
                "geneve" => "a Geneve device",
                _ if kubevirt =>
                    "the device the kubevirt hop sends from (an OVS internal port, a bridge, a veth into OVS or a tap writer)",
                _ => "a netkit device",
            }
        );
    }
    if matches!(name, "tap" | "kubevirt-tap") && a.sizes.as_ref().is_none_or(|s| s.contains(&Size::Imix)) {
        refuse!("--target {name}: the tap writer sends one frame size; give --sizes without imix, e.g. --sizes 64");
    }
    // In the guest the anchors are off: the guest has no xdpsock or xdp-bench.
    if !in_guest && a.anchors != crate::cli::values::AnchorsArg::Off {
        refuse!(
            "--target {name}: the anchors (xdpsock, xdp-bench) run on the plain veth testbed only; add --anchors off"
        );
    }
    Ok(())
}

fn describe_path(d: Device) -> &'static str {
    match d {
        Device::Veth => "xp-tx (tx ns) -> veth -> xp-rx (rx ns); receiver on xp-rx",
        Device::Bridge => {
            "xp-tx -> veth -> xp-rx, a port of bridge xp-br -> xp-brp (second port) -> veth -> xp-rcv; receiver on xp-rcv (the hop: bridge forwarding plus one more veth crossing)"
        }
        Device::Macvlan => "xp-tx -> veth -> xp-rx, lower device of macvlan xp-mv (bridge mode); receiver on xp-mv",
        Device::Vxlan => {
            "xp-vx (tx ns, VNI 77) encapsulates -> xp-tx -> veth -> xp-rx -> decapsulates on xp-vx (rx ns); generator sends inner frames on the tx-side xp-vx; receiver on the rx-side xp-vx"
        }
        Device::IpvlanL2 => "xp-tx -> veth -> xp-rx, lower device of ipvlan xp-ipv (mode l2); receiver on xp-ipv",
        Device::IpvlanL3 => "xp-tx -> veth -> xp-rx, lower device of ipvlan xp-ipv (mode l3); receiver on xp-ipv",
        Device::Geneve => {
            "xp-gnv (tx ns, VNI 77, UDP 6081) encapsulates -> xp-tx -> veth -> xp-rx -> decapsulates on xp-gnv (rx ns); generator sends inner frames on the tx-side xp-gnv; receiver on the rx-side xp-gnv"
        }
        Device::Ovs => {
            "xp-tx -> veth -> xp-rx, vport 1 of OVS datapath xp-ovs (flow in_port=1,eth_type=0x0800 actions=output:2) -> xp-brp (vport 2) -> veth -> xp-rcv; receiver on xp-rcv"
        }
        Device::Netkit => {
            "xp-nk (tx ns) -> netkit pair (L2 mode, policy pass, no BPF program) -> xp-nkp (rx ns); generator on xp-nk, receiver on xp-nkp"
        }
        Device::KubevirtOvs => {
            "xp-ovs (tx ns, internal port of OVS datapath xp-ovs; flow in_port=0 actions=output:1) -> xp-gnv (vport 1) encapsulates -> xp-tx -> veth -> xp-rx -> decapsulates on xp-gnv (rx ns); generator on xp-ovs, receiver on the rx-side xp-gnv"
        }
        Device::KubevirtVeth => {
            "xp-pod (tx ns) -> veth -> xp-ovp (vport 2 of OVS datapath xp-ovs; flow in_port=2 actions=output:1) -> xp-gnv (vport 1) encapsulates -> xp-tx -> veth -> xp-rx -> decapsulates on xp-gnv (rx ns); generator on xp-pod, receiver on the rx-side xp-gnv"
        }
        Device::KubevirtBridge => {
            "bridge xp-br (tx ns) -> its port xp-pod -> veth -> xp-ovp (OVS vport 2) -> xp-gnv (vport 1) encapsulates -> xp-tx -> veth -> xp-rx -> decapsulates on xp-gnv (rx ns); generator on xp-br, receiver on the rx-side xp-gnv"
        }
        Device::KubevirtTap => {
            "a writer thread writes each frame to tap xp-tap's /dev/net/tun fd (as QEMU) -> xp-tap, a port of bridge xp-br (tx ns) -> xp-pod -> veth -> xp-ovp (OVS vport 2) -> xp-gnv (vport 1) encapsulates -> xp-tx -> veth -> xp-rx -> decapsulates on xp-gnv (rx ns); receiver on the rx-side xp-gnv"
        }
        Device::Tap => {
            "a writer thread writes each frame to the tap's /dev/net/tun fd (one write(2) per frame, as QEMU without vhost-net) -> xp-tap (rx ns); receiver on xp-tap"
        }
    }
}

/// Reads the receiving device's XDP features, channels and offloads on a throwaway
/// topology.
pub fn device_info(d: Device) -> DeviceInfo {
    let mut info = DeviceInfo { device: d.name().into(), path: describe_path(d).into(), ..Default::default() };
    let built = xdpipe::testbed::Testbed::create(&xdpipe::testbed::unique_name("d"), 1)
        .map_err(|e| e.to_string())
        .and_then(|tb| xdpipe::topology::build(&tb, d).map(|t| (tb, t)).map_err(|e| e.to_string()));
    let (tb, t): (_, Topology) = match built {
        Ok(x) => x,
        Err(e) => {
            info.xdp_features = format!("not read: {e}");
            return info;
        }
    };
    info.rx_iface = t.rx_iface.into();
    let read = xdpipe::net::ns::with_netns(&tb.rx_ns, || {
        let idx = xdpipe::net::link::index(t.rx_iface)?;
        let f = xdpipe::netdev::xdp_features(idx);
        let ch = xdpipe::net::ethtool::channels(t.rx_iface);
        let feats = xdpipe::net::ethtool::features(t.rx_iface);
        Ok((f, ch, feats))
    });
    match read {
        Err(e) => info.xdp_features = format!("not read: {e}"),
        Ok((f, ch, feats)) => {
            match f {
                Ok(f) => {
                    info.zero_copy = f.xdp.iter().any(|x| x.contains("zerocopy"));
                    info.xdp_features = f.describe();
                }
                Err(e) => info.xdp_features = format!("not read: {e}"),
            }
            info.queues = match ch {
                Ok(c) => format!(
                    "rx {} tx {} combined {} (built with 1)",
                    c.rx.map_or("n/a".into(), |v| v.to_string()),
                    c.tx.map_or("n/a".into(), |v| v.to_string()),
                    c.combined.map_or("n/a".into(), |v| v.to_string())
                ),
                Err(_) => "1 (no ethtool channels: single queue)".into(),
            };
            info.offloads_on = match feats {
                Ok(f) => xdpipe::kbase::OFFLOADS_OFF
                    .iter()
                    .filter(|n| f.is_active(n))
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                Err(e) => format!("not read: {e}"),
            };
        }
    }
    info
}

/// The baseline phase: kernel UDP (max rate) and kernel TCP, offloads on then off,
/// --trials trials of --trial-secs each; stored in summary.json.
pub fn run_baselines(
    cfg: &BenchConfig,
    device: Device,
    dir: &mut RunDir,
    summary: &mut RunSummary,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let secs = cfg.procedure.trial_secs;
    let trials = cfg.procedure.trials;
    let size = match cfg.matrix.sizes.iter().find(|s| matches!(s, Size::Bytes(_))) {
        Some(Size::Bytes(n)) => *n,
        _ => 64,
    };
    for off in [false, true] {
        let o = if off { "off" } else { "on" };
        let g: Vec<String> =
            ["--size", &size.to_string(), "--rate", "max", "--duration", &secs.to_string(), "--core", "0"]
                .map(String::from)
                .to_vec();
        let (_, gen_cfg) = crate::cli::veth::side_configs(&[], &g).map_err(|e| e.0)?;
        let (mut v, mut cpu, mut sent, mut received) = (Vec::new(), Vec::new(), 0, 0);
        let udp_trials = if device == Device::Netkit { 0 } else { trials };
        for i in 0..udp_trials {
            let t = xdpipe::kbase::udp_trial(device, &gen_cfg, Some(1), off, stop.clone())
                .map_err(|e| format!("kernel UDP baseline on {}: {e}", device.name()))?;
            eprintln!(
                "bench:   kernel udp (offloads {o}) {}: sent {} received {}, rx {:.3} Mpps",
                i + 1,
                t.sent,
                t.received,
                t.rx_pps / 1e6
            );
            v.push(t.rx_pps);
            cpu.extend(t.cpu_ns_per_pkt);
            sent += t.sent;
            received += t.received;
        }
        summary.kernel.push(KernelBaseline {
            kind: "udp".into(),
            offloads: o.into(),
            unit: "pps".into(),
            values: spread(&v),
            sent,
            received,
            cpu_ns_per_pkt: Some(spread(&cpu)),
            not_measured: (device == Device::Netkit).then(|| xdpipe::kbase::NETKIT_NO_UDP.to_owned()),
            command: format!(
                "xdpipe gen -i <tx device> --size {size} --rate max --duration {secs} --core 0 -> kernel UDP socket on the receiving device, recvmmsg x64, one thread on core 1 (offloads {o})"
            ),
        });
        let mut tcp = KernelBaseline {
            kind: "tcp".into(),
            offloads: o.into(),
            unit: "Gbit/s".into(),
            values: spread(&[]),
            sent: 0,
            received: 0,
            cpu_ns_per_pkt: None,
            not_measured: None,
            command: format!(
                "kernel TCP stream, 1 MiB writes for {secs} s, sender on core 0 (tx ns), receiver on core 1 (rx ns) (offloads {o})"
            ),
        };
        if device == Device::Tap {
            tcp.not_measured =
                Some("a tap's far side is a file descriptor: no kernel stack to send a TCP stream from".into());
        } else {
            let mut g = Vec::new();
            for i in 0..trials {
                let t = xdpipe::kbase::tcp_trial(device, secs, (Some(0), Some(1)), off, stop.clone())
                    .map_err(|e| format!("kernel TCP baseline on {}: {e}", device.name()))?;
                eprintln!("bench:   kernel tcp (offloads {o}) {}: {:.2} Gbit/s", i + 1, t.gbps);
                g.push(t.gbps);
            }
            tcp.values = spread(&g);
        }
        summary.kernel.push(tcp);
        dir.write_summary(summary).map_err(|e| e.to_string())?;
    }
    Ok(())
}

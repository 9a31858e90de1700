//! `path:kubevirt`: the hops a frame leaving a KubeVirt VM on a Kube-OVN node crosses
//! (virtio-net in the guest, then tap, Linux bridge, veth pair, OVS bridge, Geneve tunnel,
//! NIC), built inside a veth testbed one hop at a time, so that each hop can be measured
//! by what it adds to the chain before it.
//!
//! The tx namespace plays the sending node, the rx namespace the receiving one; the
//! testbed's veth pair stands in for the NIC and the wire between them. Every hop sits on
//! the sending side, the receiver always runs on the receiving node's Geneve device
//! (xp-gnv, rx ns, decapsulated frames, generic XDP), and each hop puts the frames'
//! source one device further back:
//!
//! - [`Hop::Ovs`]: generator on xp-ovs, the datapath's internal port (port 0), one flow
//!   `in_port=0,eth_type=0x0800 actions=output:1` to xp-gnv (tx ns, netdev vport 1),
//!   which encapsulates towards the receiving node.
//! - [`Hop::Veth`]: generator on xp-pod, whose veth peer xp-ovp is vport 2 (flow
//!   `in_port=2 actions=output:1`), as the pod's veth into OVS.
//! - [`Hop::Bridge`]: generator on bridge xp-br (tx ns), whose port is xp-pod, as the
//!   virt-launcher pod's bridge.
//! - [`Hop::Tap`]: tap xp-tap, another port of xp-br, written through /dev/net/tun as
//!   QEMU writes a guest's transmit ring ([`crate::tapgen`]).
//!
//! Differences from a real node, said in the report: the Geneve hop is a Linux geneve
//! device added to the datapath as a netdev vport (Kube-OVN's OVS uses its own geneve
//! vport with per-flow tunnel keys; both encapsulate in the kernel's geneve code), the
//! "NIC" is a veth pair, and virtio-net is not nested (`vm:virtio` measures it alone).
//! Everything lives in the testbed's namespaces and goes with them.
use std::os::fd::AsFd as _;

use super::{BRIDGE_IFACE, GENEVE_IFACE, OVS_DP, Topology, mac_of};
use crate::{
    net::{self, devices, ns::with_netns},
    testbed::{Testbed, TestbedError},
};

/// The pod's end of the veth pair into OVS (tx ns).
pub const POD_IFACE: &str = "xp-pod";
/// OVS's end of that pair (tx ns, vport 2).
pub const OVS_PORT_IFACE: &str = "xp-ovp";
/// The VM's tap (tx ns, a port of [`BRIDGE_IFACE`]).
pub const TAP_IFACE: &str = "xp-tap";
/// The datapath's internal port number (OVSP_LOCAL).
const LOCAL_PORT: u32 = 0;
/// xp-gnv's vport number.
const GENEVE_PORT_NO: u32 = 1;
/// xp-ovp's vport number.
const VETH_PORT_NO: u32 = 2;

/// How far back from the NIC the chain reaches, in the order hops are added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hop {
    /// OVS datapath in front of the Geneve tunnel.
    Ovs,
    /// A veth pair in front of OVS.
    Veth,
    /// A Linux bridge in front of the veth pair.
    Bridge,
    /// A tap (written as QEMU does) in front of the bridge.
    Tap,
}

/// Adds the hops up to `upto` on the sending side of `t`, which has the Geneve tunnel
/// (the geneve topology), and points the generator (or the tap writer) at the first one.
pub fn build(tb: &Testbed, t: &mut Topology, upto: Hop) -> Result<(), TestbedError> {
    let tx_ns = tb.tx_ns.as_str();
    with_netns(tx_ns, || {
        net::ovs::add_datapath(OVS_DP)?;
        net::ovs::add_netdev_port(OVS_DP, GENEVE_IFACE, GENEVE_PORT_NO)?;
        net::link::set_up(OVS_DP, true)
    })?;
    t.offload_devices.push((tx_ns.to_owned(), OVS_DP));
    if upto == Hop::Ovs {
        with_netns(tx_ns, || net::ovs::add_output_flow(OVS_DP, LOCAL_PORT, GENEVE_PORT_NO))?;
        return send_from(t, tx_ns, OVS_DP);
    }
    let tx_fd = net::ns::open(tx_ns)?;
    net::link::add_veth(&net::link::VethPair {
        end: net::link::VethEnd { name: POD_IFACE, netns: Some(tx_fd.as_fd()) },
        peer: net::link::VethEnd { name: OVS_PORT_IFACE, netns: Some(tx_fd.as_fd()) },
        queues: tb.queues,
    })?;
    with_netns(tx_ns, || {
        net::ovs::add_netdev_port(OVS_DP, OVS_PORT_IFACE, VETH_PORT_NO)?;
        net::ovs::add_output_flow(OVS_DP, VETH_PORT_NO, GENEVE_PORT_NO)?;
        net::link::set_up(OVS_PORT_IFACE, true)?;
        net::link::set_up(POD_IFACE, true)
    })?;
    t.offload_devices.extend([(tx_ns.to_owned(), POD_IFACE), (tx_ns.to_owned(), OVS_PORT_IFACE)]);
    if upto == Hop::Veth {
        return send_from(t, tx_ns, POD_IFACE);
    }
    with_netns(tx_ns, || {
        devices::add_bridge(BRIDGE_IFACE)?;
        devices::set_master(POD_IFACE, BRIDGE_IFACE)?;
        net::link::set_up(BRIDGE_IFACE, true)
    })?;
    t.offload_devices.push((tx_ns.to_owned(), BRIDGE_IFACE));
    if upto == Hop::Bridge {
        return send_from(t, tx_ns, BRIDGE_IFACE);
    }
    let fd = with_netns(tx_ns, || {
        let fd = devices::open_tap(TAP_IFACE)?;
        devices::set_master(TAP_IFACE, BRIDGE_IFACE)?;
        net::link::set_up(TAP_IFACE, true)?;
        Ok(fd)
    })?;
    t.tap = Some(fd);
    // The frames keep the tx-side Geneve device's MAC as their source (as a VM's frames
    // carry the VM's own MAC): no device of the bridge has it.
    t.tx_iface = None;
    t.offload_devices.push((tx_ns.to_owned(), TAP_IFACE));
    Ok(())
}

/// The generator sends on `iface` (tx ns) with its MAC as the source.
fn send_from(t: &mut Topology, tx_ns: &str, iface: &'static str) -> Result<(), TestbedError> {
    t.tx_mac = mac_of(tx_ns, iface)?;
    t.tx_iface = Some(iface);
    Ok(())
}

//! The receiving device of each host-device target, built inside a veth testbed's two
//! namespaces ([`crate::testbed`]): every device lives in `xdpipe-N-rx` / `xdpipe-N-tx`,
//! so the testbed's owner record covers it, its names are unique with the namespaces, and
//! removing the namespaces (normal end, error, signal, or `xdpipe cleanup` after a
//! SIGKILL) removes it with them. The tap exists only while its fd is open, so it also
//! goes when the process dies.
//!
//! Topologies (the receiver, AF_XDP or the kernel baselines, always runs on `rx_iface`):
//! - `veth`: xp-tx (tx ns) -> xp-rx (rx ns, 10.77.0.1). Receiver on xp-rx.
//! - `bridge`: xp-tx -> xp-rx, a port of bridge xp-br (rx ns) -> xp-brp, another port of
//!   xp-br and one end of a second veth pair -> xp-rcv (rx ns, 10.77.0.1). Receiver on
//!   xp-rcv, the device the frames arrive on after the bridge hop: the hop costs the
//!   bridge's forwarding plus one more veth crossing. The bridge has no FDB entry for
//!   xp-rcv until xp-rcv sends, so frames may be flooded; with one other port flooding
//!   hands the frame on without a clone.
//! - `macvlan`: xp-tx -> xp-rx, lower device of macvlan xp-mv (bridge mode, rx ns,
//!   10.77.0.1; xp-rx has no address). Receiver on xp-mv (generic XDP: macvlan has no
//!   native XDP).
//! - `vxlan`: xp-vx (tx ns, 10.78.0.2) encapsulates into UDP over xp-tx (10.77.0.2) ->
//!   xp-rx (10.77.0.1) -> xp-vx (rx ns, 10.78.0.1, VNI 77, port 4789). The generator sends
//!   inner frames on the tx-side xp-vx (AF_XDP copy mode: the kernel's generic transmit
//!   hands each frame to the VXLAN driver); the receiver runs on the rx-side xp-vx
//!   (generic XDP). MTU 1450.
//! - `tap`: tap xp-tap in the rx ns (10.77.0.1), opened non-blocking through
//!   /dev/net/tun; a writer thread writes the generator's frames to its fd as QEMU does
//!   for a guest's transmit ring (one write(2) per frame: tun takes no batch from
//!   userspace, only from vhost-net inside the kernel). Receiver on xp-tap (the tun
//!   driver has native XDP for written frames). No kernel sender sits on the far side of
//!   a tap (it is a file descriptor), so the TCP baseline is not measured there.
//! - `ipvlan-l2`, `ipvlan-l3`: xp-tx -> xp-rx, lower device of ipvlan xp-ipv (mode l2 or
//!   l3, rx ns, 10.77.0.1; xp-rx has no address; the ipvlan shares xp-rx's MAC). Receiver
//!   on xp-ipv (generic XDP: ipvlan has no native XDP; the skb reaches the slave through
//!   the lower device's rx_handler, and generic XDP runs on each device of that loop).
//! - `geneve`: like vxlan: xp-gnv (tx ns, 10.81.0.2) encapsulates into UDP port 6081 over
//!   xp-tx -> xp-rx -> xp-gnv (rx ns, 10.81.0.1, VNI 77). Geneve takes no underlay device
//!   or local address: the outer packet is routed (10.77.0.0/24 is on the veth pair).
//!   Generator on the tx-side xp-gnv (AF_XDP copy mode), receiver on the rx-side xp-gnv
//!   (generic XDP). MTU 1450.
//! - `netkit`: a netkit pair (L2 mode, policy pass, no BPF program) beside the veth pair:
//!   xp-nk (tx ns, 10.82.0.2) -> xp-nkp (rx ns, 10.82.0.1). Generator on xp-nk (AF_XDP
//!   copy mode: the kernel's generic transmit hands each frame to netkit_xmit, which
//!   passes it to the peer's receive path), receiver on xp-nkp. netkit implements no
//!   ndo_bpf (no native XDP, no XDP transmit), so the receiver runs generic XDP. The
//!   veth pair stays, unused by the frames, so the testbed is the same as for the
//!   other targets.
//!
//! - `ovs`: like bridge, with an Open vSwitch kernel datapath xp-ovs (rx ns) in the
//!   bridge's place: xp-tx -> xp-rx (vport 1) -> one flow `in_port=1,eth_type=0x0800
//!   actions=output:2` -> xp-brp (vport 2) -> veth -> xp-rcv (10.77.0.1). Receiver on
//!   xp-rcv. Made over generic netlink ([`net::ovs`]), with no ovs-vswitchd: a frame no
//!   flow matches (ARP, IPv6) is an upcall to no listener and is dropped.
//!
//! - `kubevirt-ovs`, `kubevirt-veth`, `kubevirt-bridge`, `kubevirt-tap`: the hops of
//!   `path:kubevirt` past the Geneve tunnel, added one at a time on the sending side
//!   ([`kubevirt`]).
//!
//! ipvlan, geneve, netkit, ovs and the kubevirt hops are refused before anything is built
//! on a kernel that lacks them ([`check_available`]); the QEMU guest's kernel has them
//! (`--target vm:DEVICE`).
pub mod kubevirt;

use std::{net::Ipv4Addr, os::fd::OwnedFd};

use crate::{
    net::{self, devices, ns::with_netns},
    testbed::{RX_IFACE, RX_IP, TX_IFACE, TX_IP, Testbed, TestbedError},
};

/// A host device a bench target receives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The plain veth pair.
    #[default]
    Veth,
    /// Through a Linux bridge, received on the veth behind it.
    Bridge,
    /// A macvlan (bridge mode) on the veth.
    Macvlan,
    /// A VXLAN tunnel over the veth.
    Vxlan,
    /// A tap device written through /dev/net/tun.
    Tap,
    /// An ipvlan in l2 mode on the veth.
    IpvlanL2,
    /// An ipvlan in l3 mode on the veth.
    IpvlanL3,
    /// A Geneve tunnel over the veth.
    Geneve,
    /// A netkit pair (L2 mode) instead of the veth pair.
    Netkit,
    /// Through an Open vSwitch kernel datapath (one flow), received on the veth behind it.
    Ovs,
    /// path:kubevirt up to OVS: OVS datapath -> Geneve -> veth underlay.
    KubevirtOvs,
    /// path:kubevirt up to the veth into OVS: veth -> OVS -> Geneve -> underlay.
    KubevirtVeth,
    /// path:kubevirt up to the Linux bridge: bridge -> veth -> OVS -> Geneve -> underlay.
    KubevirtBridge,
    /// The whole path:kubevirt chain: tap -> bridge -> veth -> OVS -> Geneve -> underlay.
    KubevirtTap,
}

impl Device {
    /// Every host device, in the waterfall's order.
    pub const ALL: [Device; 14] = [
        Device::Veth,
        Device::Bridge,
        Device::Macvlan,
        Device::Vxlan,
        Device::Tap,
        Device::IpvlanL2,
        Device::IpvlanL3,
        Device::Geneve,
        Device::Netkit,
        Device::Ovs,
        Device::KubevirtOvs,
        Device::KubevirtVeth,
        Device::KubevirtBridge,
        Device::KubevirtTap,
    ];

    /// Its name as a target: `veth`, `bridge`, `macvlan`, `vxlan`, `tap`, `ipvlan-l2`,
    /// `ipvlan-l3`, `geneve`, `netkit`, `ovs`, `kubevirt-ovs`, ...
    pub fn name(self) -> &'static str {
        match self {
            Device::Veth => "veth",
            Device::Bridge => "bridge",
            Device::Macvlan => "macvlan",
            Device::Vxlan => "vxlan",
            Device::Tap => "tap",
            Device::IpvlanL2 => "ipvlan-l2",
            Device::IpvlanL3 => "ipvlan-l3",
            Device::Geneve => "geneve",
            Device::Netkit => "netkit",
            Device::Ovs => "ovs",
            Device::KubevirtOvs => "kubevirt-ovs",
            Device::KubevirtVeth => "kubevirt-veth",
            Device::KubevirtBridge => "kubevirt-bridge",
            Device::KubevirtTap => "kubevirt-tap",
        }
    }

    /// The IFLA_INFO_KIND this topology needs that a kernel may lack (built as a module
    /// or not at all): `ipvlan`, `geneve`, `netkit`, `openvswitch` (the kubevirt hops need
    /// geneve too, checked by [`check_available`]); None for the others, which every
    /// kernel xdpipe supports has.
    pub fn optional_kind(self) -> Option<&'static str> {
        match self {
            Device::IpvlanL2 | Device::IpvlanL3 => Some("ipvlan"),
            Device::Geneve => Some("geneve"),
            Device::Netkit => Some("netkit"),
            Device::Ovs | Device::KubevirtOvs | Device::KubevirtVeth | Device::KubevirtBridge | Device::KubevirtTap => {
                Some("openvswitch")
            }
            _ => None,
        }
    }

    /// The device of a target name, None for another name.
    pub fn from_name(s: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.name() == s)
    }

    /// The receiving device's MTU as this topology sets it.
    pub fn mtu(self) -> u32 {
        if matches!(self, Device::Vxlan | Device::Geneve) || self.kubevirt_hop().is_some() { VXLAN_MTU } else { 1500 }
    }

    /// The kubevirt hop this target ends at (None: not a kubevirt hop).
    pub fn kubevirt_hop(self) -> Option<kubevirt::Hop> {
        match self {
            Device::KubevirtOvs => Some(kubevirt::Hop::Ovs),
            Device::KubevirtVeth => Some(kubevirt::Hop::Veth),
            Device::KubevirtBridge => Some(kubevirt::Hop::Bridge),
            Device::KubevirtTap => Some(kubevirt::Hop::Tap),
            _ => None,
        }
    }
}

/// Refuses `device` when this kernel lacks its link kind ([`Device::optional_kind`]),
/// probed without making a device ([`devices::kind_available`]); run before the testbed
/// is built.
pub fn check_available(device: Device) -> Result<(), TestbedError> {
    let Some(kind) = device.optional_kind() else { return Ok(()) };
    if kind == "openvswitch" {
        // The datapath is driven over generic netlink; resolving its family loads the
        // module when it is one.
        match net::genl::Family::resolve("ovs_datapath", "openvswitch", "the ovs target") {
            Ok(_) => {}
            Err(net::NetError::NoFamily { .. }) => return Err(TestbedError::MissingOvs { device: device.name() }),
            Err(e) => return Err(e.into()),
        }
        if device == Device::Ovs {
            return Ok(());
        }
    }
    let kind = if kind == "openvswitch" { "geneve" } else { kind };
    if devices::kind_available(kind)? { Ok(()) } else { Err(TestbedError::MissingKind { kind, device: device.name() }) }
}

/// The bridge of the `bridge` target (rx ns).
pub const BRIDGE_IFACE: &str = "xp-br";
/// The bridge's second port (rx ns), peer of [`BRIDGE_RX_IFACE`].
pub const BRIDGE_PORT_IFACE: &str = "xp-brp";
/// The receiving veth behind the bridge (rx ns).
pub const BRIDGE_RX_IFACE: &str = "xp-rcv";
/// The macvlan of the `macvlan` target (rx ns).
pub const MACVLAN_IFACE: &str = "xp-mv";
/// The VXLAN device of the `vxlan` target (both namespaces).
pub const VXLAN_IFACE: &str = "xp-vx";
/// The tap of the `tap` target (rx ns).
pub const TAP_IFACE: &str = "xp-tap";
/// The VXLAN's inner address on the receiving side.
pub const VXLAN_RX_IP: &str = "10.78.0.1";
/// The VXLAN's inner address on the sending side.
pub const VXLAN_TX_IP: &str = "10.78.0.2";
/// The VNI of the tunnel.
pub const VXLAN_VNI: u32 = 77;
/// IANA's VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// 1500 less the 50 bytes of outer Ethernet, IPv4, UDP and VXLAN headers.
pub const VXLAN_MTU: u32 = 1450;

/// The OVS datapath of the `ovs` target (rx ns) and of the kubevirt hops (tx ns); also
/// its internal device's name.
pub const OVS_DP: &str = "xp-ovs";

/// The ipvlan of the `ipvlan-l2` / `ipvlan-l3` targets (rx ns).
pub const IPVLAN_IFACE: &str = "xp-ipv";
/// The Geneve device of the `geneve` target (both namespaces).
pub const GENEVE_IFACE: &str = "xp-gnv";
/// The Geneve tunnel's inner address on the receiving side.
pub const GENEVE_RX_IP: &str = "10.81.0.1";
/// The Geneve tunnel's inner address on the sending side.
pub const GENEVE_TX_IP: &str = "10.81.0.2";
/// IANA's Geneve port.
pub const GENEVE_PORT: u16 = 6081;
/// The netkit end the generator sends on (tx ns, primary).
pub const NETKIT_TX_IFACE: &str = "xp-nk";
/// The netkit end the receiver runs on (rx ns, peer).
pub const NETKIT_RX_IFACE: &str = "xp-nkp";
/// The receiving netkit end's address.
pub const NETKIT_RX_IP: &str = "10.82.0.1";
/// The sending netkit end's address.
pub const NETKIT_TX_IP: &str = "10.82.0.2";

/// A built topology: where the receiver runs and where frames come from.
#[derive(Debug)]
pub struct Topology {
    /// Which device.
    pub device: Device,
    /// The receiving device (rx ns).
    pub rx_iface: &'static str,
    /// Its address.
    pub rx_ip: Ipv4Addr,
    /// Its MAC: the generator's destination.
    pub rx_mac: [u8; 6],
    /// The device the generator sends on (tx ns); None for tap (the writer writes to
    /// [`Topology::tap`]).
    pub tx_iface: Option<&'static str>,
    /// The sender's address.
    pub tx_ip: Ipv4Addr,
    /// The sender's MAC (the frames' source).
    pub tx_mac: [u8; 6],
    /// Devices whose offloads the baselines turn off: (namespace, interface).
    pub offload_devices: Vec<(String, &'static str)>,
    /// The tap's fd (tap only): the device lives as long as it is open.
    pub tap: Option<OwnedFd>,
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn mac_of(ns: &str, iface: &str) -> Result<[u8; 6], TestbedError> {
    let l = with_netns(ns, || net::link::get(iface))?;
    l.mac.ok_or_else(|| {
        TestbedError::Net(net::NetError::Decode {
            op: "reading the MAC of",
            what: format!("{iface} (netns {ns})"),
            detail: "no address".into(),
        })
    })
}

/// Builds `device` on the testbed `tb` (whose veth pair stays the underlay). On error the
/// caller drops the testbed, which removes whatever was made.
pub fn build(tb: &Testbed, device: Device) -> Result<Topology, TestbedError> {
    let (rx_ns, tx_ns) = (tb.rx_ns.as_str(), tb.tx_ns.as_str());
    let mut t = Topology {
        device,
        rx_iface: RX_IFACE,
        rx_ip: ip(RX_IP),
        rx_mac: tb.rx_mac,
        tx_iface: Some(TX_IFACE),
        tx_ip: ip(TX_IP),
        tx_mac: tb.tx_mac,
        offload_devices: vec![(rx_ns.to_owned(), RX_IFACE), (tx_ns.to_owned(), TX_IFACE)],
        tap: None,
    };
    // Moves the receiver's address from xp-rx to `to` (rx ns) and points both sides'
    // neighbour entries at it.
    let move_rx_ip = |to: &'static str| -> Result<[u8; 6], TestbedError> {
        with_netns(rx_ns, || {
            net::link::del_ipv4(RX_IFACE, ip(RX_IP), 24)?;
            net::link::set_up(to, true)?;
            net::link::add_ipv4(to, ip(RX_IP), 24)?;
            net::link::add_permanent_neighbour(to, ip(TX_IP), tb.tx_mac)
        })?;
        let mac = mac_of(rx_ns, to)?;
        with_netns(tx_ns, || net::link::add_permanent_neighbour(TX_IFACE, ip(RX_IP), mac))?;
        Ok(mac)
    };
    match device {
        Device::Veth => {}
        Device::Bridge => {
            second_pair(tb)?;
            with_netns(rx_ns, || {
                devices::add_bridge(BRIDGE_IFACE)?;
                devices::set_master(RX_IFACE, BRIDGE_IFACE)?;
                devices::set_master(BRIDGE_PORT_IFACE, BRIDGE_IFACE)?;
                net::link::set_up(BRIDGE_PORT_IFACE, true)?;
                net::link::set_up(BRIDGE_IFACE, true)
            })?;
            t.rx_mac = move_rx_ip(BRIDGE_RX_IFACE)?;
            t.rx_iface = BRIDGE_RX_IFACE;
            t.offload_devices
                .splice(0..0, [(rx_ns.to_owned(), BRIDGE_RX_IFACE), (rx_ns.to_owned(), BRIDGE_PORT_IFACE)]);
        }
        Device::Macvlan => {
            with_netns(rx_ns, || devices::add_macvlan_bridge(MACVLAN_IFACE, RX_IFACE))?;
            t.rx_mac = move_rx_ip(MACVLAN_IFACE)?;
            t.rx_iface = MACVLAN_IFACE;
            t.offload_devices.insert(0, (rx_ns.to_owned(), MACVLAN_IFACE));
        }
        Device::Vxlan => {
            for (ns, lower, local, remote, inner) in
                [(rx_ns, RX_IFACE, RX_IP, TX_IP, VXLAN_RX_IP), (tx_ns, TX_IFACE, TX_IP, RX_IP, VXLAN_TX_IP)]
            {
                with_netns(ns, || {
                    devices::add_vxlan(&devices::Vxlan {
                        name: VXLAN_IFACE,
                        vni: VXLAN_VNI,
                        local: ip(local),
                        remote: ip(remote),
                        port: VXLAN_PORT,
                        lower,
                    })?;
                    net::link::add_ipv4(VXLAN_IFACE, ip(inner), 24)?;
                    net::link::set_up(VXLAN_IFACE, true)
                })?;
            }
            tunnel_ends(tb, &mut t, VXLAN_IFACE, (VXLAN_RX_IP, VXLAN_TX_IP))?;
        }
        Device::Ovs => {
            second_pair(tb)?;
            with_netns(rx_ns, || {
                net::ovs::add_datapath(OVS_DP)?;
                net::ovs::add_netdev_port(OVS_DP, RX_IFACE, 1)?;
                net::ovs::add_netdev_port(OVS_DP, BRIDGE_PORT_IFACE, 2)?;
                net::ovs::add_output_flow(OVS_DP, 1, 2)?;
                net::link::set_up(BRIDGE_PORT_IFACE, true)
            })?;
            t.rx_mac = move_rx_ip(BRIDGE_RX_IFACE)?;
            t.rx_iface = BRIDGE_RX_IFACE;
            t.offload_devices
                .splice(0..0, [(rx_ns.to_owned(), BRIDGE_RX_IFACE), (rx_ns.to_owned(), BRIDGE_PORT_IFACE)]);
        }
        Device::IpvlanL2 | Device::IpvlanL3 => {
            let mode = if device == Device::IpvlanL2 { devices::IpvlanMode::L2 } else { devices::IpvlanMode::L3 };
            with_netns(rx_ns, || {
                devices::add_ipvlan(IPVLAN_IFACE, RX_IFACE, mode)?;
                net::link::del_ipv4(RX_IFACE, ip(RX_IP), 24)?;
                net::link::set_up(IPVLAN_IFACE, true)?;
                net::link::add_ipv4(IPVLAN_IFACE, ip(RX_IP), 24)?;
                // l2 resolves its next hop on the slave; l3 (IFF_NOARP) sends through the
                // lower device, whose permanent entry the testbed made.
                if mode == devices::IpvlanMode::L2 {
                    net::link::add_permanent_neighbour(IPVLAN_IFACE, ip(TX_IP), tb.tx_mac)?;
                }
                Ok(())
            })?;
            // The slave has the lower device's MAC, which the tx side already points at.
            t.rx_mac = mac_of(rx_ns, IPVLAN_IFACE)?;
            t.rx_iface = IPVLAN_IFACE;
            t.offload_devices.insert(0, (rx_ns.to_owned(), IPVLAN_IFACE));
        }
        Device::Geneve => geneve(tb, &mut t)?,
        Device::KubevirtOvs | Device::KubevirtVeth | Device::KubevirtBridge | Device::KubevirtTap => {
            geneve(tb, &mut t)?;
            if let Some(hop) = device.kubevirt_hop() {
                kubevirt::build(tb, &mut t, hop)?;
            }
        }
        Device::Netkit => {
            let rx_fd = net::ns::open(rx_ns)?;
            use std::os::fd::AsFd as _;
            with_netns(tx_ns, || devices::add_netkit_pair(NETKIT_TX_IFACE, NETKIT_RX_IFACE, rx_fd.as_fd()))?;
            for (ns, iface, addr) in [(rx_ns, NETKIT_RX_IFACE, NETKIT_RX_IP), (tx_ns, NETKIT_TX_IFACE, NETKIT_TX_IP)] {
                with_netns(ns, || {
                    net::link::add_ipv4(iface, ip(addr), 24)?;
                    net::link::set_up(iface, true)
                })?;
            }
            let (rx_mac, tx_mac) = (mac_of(rx_ns, NETKIT_RX_IFACE)?, mac_of(tx_ns, NETKIT_TX_IFACE)?);
            with_netns(rx_ns, || net::link::add_permanent_neighbour(NETKIT_RX_IFACE, ip(NETKIT_TX_IP), tx_mac))?;
            with_netns(tx_ns, || net::link::add_permanent_neighbour(NETKIT_TX_IFACE, ip(NETKIT_RX_IP), rx_mac))?;
            t.rx_iface = NETKIT_RX_IFACE;
            t.rx_ip = ip(NETKIT_RX_IP);
            t.rx_mac = rx_mac;
            t.tx_iface = Some(NETKIT_TX_IFACE);
            t.tx_ip = ip(NETKIT_TX_IP);
            t.tx_mac = tx_mac;
            t.offload_devices = vec![(rx_ns.to_owned(), NETKIT_RX_IFACE), (tx_ns.to_owned(), NETKIT_TX_IFACE)];
        }
        Device::Tap => {
            let fd = with_netns(rx_ns, || devices::open_tap(TAP_IFACE))?;
            t.tap = Some(fd);
            t.rx_mac = move_rx_ip(TAP_IFACE)?;
            t.rx_iface = TAP_IFACE;
            t.tx_iface = None;
            t.offload_devices = vec![(rx_ns.to_owned(), TAP_IFACE)];
        }
    }
    Ok(t)
}

/// The second veth pair of the bridge and ovs targets (both ends in the rx ns): xp-brp,
/// the switch's second port, and xp-rcv behind it.
fn second_pair(tb: &Testbed) -> Result<(), TestbedError> {
    use std::os::fd::AsFd as _;
    let rx_fd = net::ns::open(&tb.rx_ns)?;
    net::link::add_veth(&net::link::VethPair {
        end: net::link::VethEnd { name: BRIDGE_PORT_IFACE, netns: Some(rx_fd.as_fd()) },
        peer: net::link::VethEnd { name: BRIDGE_RX_IFACE, netns: Some(rx_fd.as_fd()) },
        queues: tb.queues,
    })?;
    Ok(())
}

/// A Geneve tunnel over the veth pair (the `geneve` target and the kubevirt hops' base):
/// xp-gnv in each namespace, the receiver and generator on them.
fn geneve(tb: &Testbed, t: &mut Topology) -> Result<(), TestbedError> {
    let (rx_ns, tx_ns) = (tb.rx_ns.as_str(), tb.tx_ns.as_str());
    for (ns, remote, inner) in [(rx_ns, TX_IP, GENEVE_RX_IP), (tx_ns, RX_IP, GENEVE_TX_IP)] {
        with_netns(ns, || {
            devices::add_geneve(&devices::Geneve {
                name: GENEVE_IFACE,
                vni: VXLAN_VNI,
                remote: ip(remote),
                port: GENEVE_PORT,
                mtu: VXLAN_MTU,
            })?;
            net::link::add_ipv4(GENEVE_IFACE, ip(inner), 24)?;
            net::link::set_up(GENEVE_IFACE, true)
        })?;
    }
    tunnel_ends(tb, t, GENEVE_IFACE, (GENEVE_RX_IP, GENEVE_TX_IP))
}

/// The two ends of tunnel `iface` (one per namespace, inner addresses `(rx, tx)`): each
/// side's neighbour entry for the other, the receiver and generator on them, and their
/// offloads beside the veth pair's.
fn tunnel_ends(
    tb: &Testbed,
    t: &mut Topology,
    iface: &'static str,
    (rx, tx): (&str, &str),
) -> Result<(), TestbedError> {
    let (rx_ns, tx_ns) = (tb.rx_ns.as_str(), tb.tx_ns.as_str());
    let (rx_mac, tx_mac) = (mac_of(rx_ns, iface)?, mac_of(tx_ns, iface)?);
    with_netns(rx_ns, || net::link::add_permanent_neighbour(iface, ip(tx), tx_mac))?;
    with_netns(tx_ns, || net::link::add_permanent_neighbour(iface, ip(rx), rx_mac))?;
    t.rx_iface = iface;
    t.rx_ip = ip(rx);
    t.rx_mac = rx_mac;
    t.tx_iface = Some(iface);
    t.tx_ip = ip(tx);
    t.tx_mac = tx_mac;
    t.offload_devices.insert(0, (rx_ns.to_owned(), iface));
    t.offload_devices.push((tx_ns.to_owned(), iface));
    Ok(())
}

//! The virtual devices of the host-device bench targets, over rtnetlink: a Linux bridge
//! and its ports, a macvlan in bridge mode, an ipvlan (l2 or l3), a VXLAN or Geneve
//! tunnel, a netkit pair, an IPv4 address removed, a probe for whether the kernel knows a
//! link kind, and a tap device made through /dev/net/tun (an ioctl, as QEMU makes its
//! taps). All act in the calling thread's network namespace.
use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    RouteNetlinkMessage as Rt,
    link::{
        InfoData, InfoGeneve, InfoIpVlan, InfoKind, InfoMacVlan, InfoNetkit, InfoVxlan, IpVlanMode, LinkAttribute,
        LinkInfo, LinkMessage, MacVlanMode, NetkitMode, NetkitPolicy,
    },
};

use super::{
    NetError,
    link::index,
    socket::{NETLINK_ROUTE, Netlink},
};

fn new_link(name: &str, info: Vec<LinkInfo>, extra: Vec<LinkAttribute>, what: &'static str) -> Result<(), NetError> {
    super::check_ifname(name)?;
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    m.attributes.extend(extra);
    m.attributes.push(LinkAttribute::LinkInfo(info));
    Netlink::open(NETLINK_ROUTE)?.request(Rt::NewLink(m), NLM_F_CREATE | NLM_F_EXCL, what, name)?;
    Ok(())
}

/// Creates a Linux bridge `name` (`ip link add NAME type bridge`; STP off, the kernel's
/// default, so its ports forward at once).
pub fn add_bridge(name: &str) -> Result<(), NetError> {
    new_link(name, vec![LinkInfo::Kind(InfoKind::Bridge)], Vec::new(), "creating bridge")
}

/// Makes `port` a port of bridge `bridge` (`ip link set PORT master BRIDGE`).
pub fn set_master(port: &str, bridge: &str) -> Result<(), NetError> {
    let mut m = LinkMessage::default();
    m.header.index = index(port)?;
    m.attributes.push(LinkAttribute::Controller(index(bridge)?));
    Netlink::open(NETLINK_ROUTE)?.request(
        Rt::SetLink(m),
        0,
        "enslaving to a bridge",
        &format!("{port} -> {bridge}"),
    )?;
    Ok(())
}

/// Creates macvlan `name` on `lower` in bridge mode (`ip link add NAME link LOWER type
/// macvlan mode bridge`).
pub fn add_macvlan_bridge(name: &str, lower: &str) -> Result<(), NetError> {
    new_link(
        name,
        vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
        ],
        vec![LinkAttribute::Link(index(lower)?)],
        "creating macvlan",
    )
}

/// A point-to-point VXLAN tunnel to create.
pub struct Vxlan<'a> {
    /// The device name.
    pub name: &'a str,
    /// The VNI.
    pub vni: u32,
    /// The underlay address of this end.
    pub local: Ipv4Addr,
    /// The underlay address of the other end (the default FDB entry's destination).
    pub remote: Ipv4Addr,
    /// The UDP destination port (4789 is IANA's).
    pub port: u16,
    /// The underlay device.
    pub lower: &'a str,
}

/// Creates a VXLAN device (`ip link add NAME type vxlan id VNI local L remote R dstport P
/// dev LOWER`).
pub fn add_vxlan(v: &Vxlan<'_>) -> Result<(), NetError> {
    new_link(
        v.name,
        vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(v.vni),
                InfoVxlan::Local(v.local),
                InfoVxlan::Group(v.remote),
                InfoVxlan::Port(v.port),
                InfoVxlan::Link(index(v.lower)?),
            ])),
        ],
        Vec::new(),
        "creating vxlan",
    )
}

/// The mode of an ipvlan device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpvlanMode {
    /// `mode l2`: the slave switches frames by MAC and IP on the lower device's L2.
    L2,
    /// `mode l3`: the lower device routes to the slave by destination IP; no ARP on the
    /// slave (IFF_NOARP).
    L3,
}

/// Creates ipvlan `name` on `lower` (`ip link add NAME link LOWER type ipvlan mode
/// l2|l3`, bridge flags, the default). It shares `lower`'s MAC.
pub fn add_ipvlan(name: &str, lower: &str, mode: IpvlanMode) -> Result<(), NetError> {
    let mode = match mode {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
    };
    new_link(
        name,
        vec![LinkInfo::Kind(InfoKind::IpVlan), LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)]))],
        vec![LinkAttribute::Link(index(lower)?)],
        "creating ipvlan",
    )
}

/// A point-to-point Geneve tunnel to create. Geneve has no underlay-device or local
/// address attribute: the kernel routes the outer packet to `remote`.
pub struct Geneve<'a> {
    /// The device name.
    pub name: &'a str,
    /// The VNI.
    pub vni: u32,
    /// The underlay address of the other end.
    pub remote: Ipv4Addr,
    /// The UDP destination port (6081 is IANA's).
    pub port: u16,
    /// The device's MTU (1450 leaves room for the 50 outer bytes on a 1500 B underlay).
    pub mtu: u32,
}

/// Creates a Geneve device (`ip link add NAME mtu M type geneve id VNI remote R dstport
/// P`).
pub fn add_geneve(g: &Geneve<'_>) -> Result<(), NetError> {
    new_link(
        g.name,
        vec![
            LinkInfo::Kind(InfoKind::Geneve),
            LinkInfo::Data(InfoData::Geneve(vec![
                InfoGeneve::Id(g.vni),
                InfoGeneve::Remote(g.remote),
                InfoGeneve::Port(g.port),
            ])),
        ],
        vec![LinkAttribute::Mtu(g.mtu)],
        "creating geneve",
    )
}

/// Creates a netkit pair in L2 mode, both ends' policy pass (`ip link add PRIMARY type
/// netkit mode l2 forward peer forward name PEER netns NS`): `primary` here, `peer` in the
/// namespace `peer_ns`. Without a BPF program attached a netkit end hands what it
/// transmits to its peer's receive path, like a veth.
pub fn add_netkit_pair(primary: &str, peer: &str, peer_ns: BorrowedFd<'_>) -> Result<(), NetError> {
    super::check_ifname(peer)?;
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_owned()));
    p.attributes.push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
    new_link(
        primary,
        vec![
            LinkInfo::Kind(InfoKind::Netkit),
            LinkInfo::Data(InfoData::Netkit(vec![
                InfoNetkit::Mode(NetkitMode::L2),
                InfoNetkit::Policy(NetkitPolicy::Pass),
                InfoNetkit::PeerPolicy(NetkitPolicy::Pass),
                InfoNetkit::Peer(p),
            ])),
        ],
        Vec::new(),
        "creating netkit pair",
    )
}

/// A link kind [`kind_available`] can probe, with an attribute type of its
/// IFLA_INFO_DATA whose policy is a u16 or u32 (IFLA_IPVLAN_MODE, IFLA_GENEVE_ID,
/// IFLA_NETKIT_POLICY, IFLA_VXLAN_ID).
fn probe_attr(kind: &str) -> Option<(InfoKind, u16)> {
    match kind {
        "ipvlan" => Some((InfoKind::IpVlan, 1)),
        "geneve" => Some((InfoKind::Geneve, 1)),
        "netkit" => Some((InfoKind::Netkit, 3)),
        "vxlan" => Some((InfoKind::Vxlan, 1)),
        _ => None,
    }
}

/// Whether this kernel knows the link kind `kind` (`ipvlan`, `geneve`, `netkit`, `vxlan`), found
/// without making a device: an RTM_NEWLINK of that kind whose IFLA_INFO_DATA holds a
/// one-byte attribute where the kind's policy wants a u16 or u32. A kernel without the
/// kind (after trying to load its module, as `ip link add` would) answers EOPNOTSUPP;
/// one with it rejects the attribute (ERANGE/EINVAL) and makes nothing. Should a kernel
/// accept it anyway, the device (named `xpk<pid>`) is deleted at once.
pub fn kind_available(kind: &str) -> Result<bool, NetError> {
    let Some((kind_of, attr)) = probe_attr(kind) else {
        return Err(NetError::Decode {
            op: "probing link kind",
            what: kind.to_owned(),
            detail: "no probe for this kind".into(),
        });
    };
    // One netlink attribute: len 5 (4 header + 1 value), type, the byte, 3 bytes pad
    // (the attribute is 5 long; the payload buffer is padded to 8).
    let mut data = Vec::with_capacity(8);
    data.extend_from_slice(&5u16.to_ne_bytes());
    data.extend_from_slice(&attr.to_ne_bytes());
    data.extend_from_slice(&[0, 0, 0, 0]);
    let name = format!("xpk{}", std::process::id() % 10_000_000);
    match new_link(
        &name,
        vec![LinkInfo::Kind(kind_of), LinkInfo::Data(InfoData::Other(data))],
        Vec::new(),
        "probing link kind",
    ) {
        Err(NetError::Kernel { errno, .. }) if errno == libc::EOPNOTSUPP => Ok(false),
        Err(NetError::Kernel { .. }) => Ok(true),
        Err(e) => Err(e),
        Ok(()) => {
            let _ = super::link::delete(&name);
            Ok(true)
        }
    }
}

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// _IOW('T', 202, int)
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Opens /dev/net/tun and makes tap device `name` on it (IFF_TAP | IFF_NO_PI, not
/// persistent: the device exists while the returned fd is open, so a killed process
/// leaves none). The fd is non-blocking: the tun driver then builds the skb around the
/// written frame and runs a native XDP program on it (`tun_build_skb`), as it does for
/// frames vhost-net hands it.
pub fn open_tap(name: &str) -> Result<OwnedFd, NetError> {
    super::check_ifname(name)?;
    let io = |op, source| NetError::Io { op, what: name.to_owned(), source, hint: "" };
    // SAFETY: a NUL-terminated constant path; open has no other preconditions.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io("opening /dev/net/tun for", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: 16 bytes of name, then the flags (a short) in a 24-byte union.
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq (40 bytes on Linux), which `req`
    // is, and lives for the call.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), TUNSETIFF, req.as_mut_ptr()) };
    if r < 0 {
        return Err(io("creating tap device (TUNSETIFF)", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

/// The RX queue count of `name` from rtnetlink (IFLA_NUM_RX_QUEUES): for devices without
/// ethtool channels (macvlan, vxlan, bridge) in a namespace whose sysfs is not mounted
/// here.
pub fn num_rx_queues(name: &str) -> Result<u32, NetError> {
    super::check_ifname(name)?;
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    let r = Netlink::open(NETLINK_ROUTE)?.request(Rt::GetLink(m), 0, "reading link", name)?;
    r.into_iter()
        .filter_map(|m| if let Rt::NewLink(m) = m { Some(m) } else { None })
        .flat_map(|m| m.attributes)
        .find_map(|a| if let LinkAttribute::NumRxQueues(n) = a { Some(n) } else { None })
        .ok_or_else(|| NetError::Decode {
            op: "reading link",
            what: name.into(),
            detail: "no IFLA_NUM_RX_QUEUES".into(),
        })
}

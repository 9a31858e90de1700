//! Links over rtnetlink (`netlink-packet-route`): look one up by name (index, MAC, MTU,
//! state, stats64, XDP attach state), create a veth pair with each end in a namespace of
//! its choosing and N queues, set a link up, delete it, detach XDP, add an IPv4 address
//! and a permanent neighbour. All act in the calling thread's network namespace (the
//! namespace fds of [`VethPair`] excepted).
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, BorrowedFd},
};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage as Rt,
    address::{AddressAttribute, AddressFlags, AddressMessage},
    link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp, XdpAttached},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};

use super::{
    NetError,
    socket::{NETLINK_ROUTE, Netlink},
};

/// How an XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (XDP_FLAGS_DRV_MODE).
    Native,
    /// On the generic skb path (XDP_FLAGS_SKB_MODE).
    Generic,
    /// On the NIC (XDP_FLAGS_HW_MODE).
    Offload,
}

impl XdpMode {
    /// Every mode: generic, native, offload (`--force` detaches in each, in this order).
    pub const ALL: [XdpMode; 3] = [XdpMode::Generic, XdpMode::Native, XdpMode::Offload];

    /// The mode's name in messages and reports: `native`, `generic` or `offload`.
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Offload => "offload",
        }
    }

    /// The XDP_FLAGS_*_MODE bit.
    pub fn flag(self) -> u32 {
        match self {
            XdpMode::Generic => 1 << 1,
            XdpMode::Native => 1 << 2,
            XdpMode::Offload => 1 << 3,
        }
    }
}

/// The XDP program of a link, from IFLA_XDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpAttachment {
    /// The attached program's BPF id (IFLA_XDP_PROG_ID).
    pub prog_id: u32,
    /// None: programs in more than one mode (XDP_ATTACHED_MULTI); `prog_id` is then the
    /// first of native, generic, offload that has one.
    pub mode: Option<XdpMode>,
}

/// What rtnetlink says about a link.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// The ifindex.
    pub index: u32,
    /// The interface name (IFLA_IFNAME).
    pub name: String,
    /// The hardware address (IFLA_ADDRESS), if the link has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// The MTU, bytes (IFLA_MTU).
    pub mtu: u32,
    /// IFF_UP: administratively up.
    pub up: bool,
    /// Operational state as iproute2 prints it (UP, DOWN, LOWERLAYERDOWN, UNKNOWN, ...).
    pub operstate: String,
    /// Frames received, from IFLA_STATS64 (0 if absent).
    pub rx_packets: u64,
    /// Frames sent, from IFLA_STATS64 (0 if absent).
    pub tx_packets: u64,
    /// Received frames the kernel or driver dropped, from IFLA_STATS64 (0 if absent).
    pub rx_dropped: u64,
    /// Frames dropped on transmit, from IFLA_STATS64 (0 if absent).
    pub tx_dropped: u64,
    /// The attached XDP program (IFLA_XDP), None if there is none.
    pub xdp: Option<XdpAttachment>,
    /// The bridge or bond this link is a port of (IFLA_MASTER), if any.
    pub master: Option<u32>,
    /// The link this one sits on in this namespace (IFLA_LINK without IFLA_LINK_NETNSID):
    /// a VLAN's or macvlan's lower device; for a veth, its peer.
    pub link: Option<u32>,
    /// IFLA_INFO_KIND: `veth`, `bridge`, `bond`, `vlan`, ...; None for a plain device.
    pub kind: Option<String>,
}

fn route_socket() -> Result<Netlink, NetError> {
    Netlink::open(NETLINK_ROUTE)
}

/// Parses a link message (also used on hand-made messages in tests).
pub fn parse_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
        operstate: "UNKNOWN".into(),
        ..Link::default()
    };
    let mut single = None;
    let mut other_ns = false;
    let (mut drv, mut skb, mut hw, mut prog) = (0, 0, 0, 0);
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(a) => l.mac = a.as_slice().try_into().ok(),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::OperState(s) => l.operstate = format!("{s:?}").to_uppercase(),
            LinkAttribute::Stats64(s) => {
                l.rx_packets = s.rx_packets;
                l.tx_packets = s.tx_packets;
                l.rx_dropped = s.rx_dropped;
                l.tx_dropped = s.tx_dropped;
            }
            LinkAttribute::Controller(i) if *i != 0 => l.master = Some(*i),
            LinkAttribute::Link(i) if *i != 0 && l.link.is_none() => l.link = Some(*i),
            LinkAttribute::LinkNetNsId(_) => other_ns = true,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            LinkAttribute::Xdp(x) => {
                for x in x {
                    match x {
                        LinkXdp::Attached(a) => {
                            single = match a {
                                XdpAttached::None => None,
                                XdpAttached::Driver => Some(Some(XdpMode::Native)),
                                XdpAttached::SocketBuffer => Some(Some(XdpMode::Generic)),
                                XdpAttached::Hardware => Some(Some(XdpMode::Offload)),
                                _ => Some(None),
                            }
                        }
                        LinkXdp::ProgId(v) => prog = *v,
                        LinkXdp::DrvProgId(v) => drv = *v,
                        LinkXdp::SkbProgId(v) => skb = *v,
                        LinkXdp::HwProgId(v) => hw = *v,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if other_ns {
        // IFLA_LINK names an ifindex of another namespace.
        l.link = None;
    }
    if let Some(mode) = single {
        let prog_id = match mode {
            Some(_) => prog,
            None => [drv, skb, hw].into_iter().find(|&p| p != 0).unwrap_or(prog),
        };
        l.xdp = Some(XdpAttachment { prog_id, mode });
    }
    l
}

/// The link named `name`, or [`NetError::NoSuchLink`].
pub fn get(name: &str) -> Result<Link, NetError> {
    super::check_ifname(name)?;
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    let r = route_socket()?.request(Rt::GetLink(m), 0, "reading link", name);
    match r {
        Err(e) if matches!(e.errno(), Some(libc::ENODEV)) => {
            Err(NetError::NoSuchLink { iface: name.to_owned(), ns: "in this namespace".into() })
        }
        Err(e) => Err(e),
        Ok(v) => {
            v.into_iter().find_map(|m| if let Rt::NewLink(m) = m { Some(parse_link(&m)) } else { None }).ok_or_else(
                || NetError::Decode { op: "reading link", what: name.into(), detail: "no link in reply".into() },
            )
        }
    }
}

/// Every link of this namespace (`ip link show`).
pub fn list() -> Result<Vec<Link>, NetError> {
    let r = route_socket()?.request(Rt::GetLink(LinkMessage::default()), NLM_F_DUMP, "listing links", "")?;
    Ok(r.into_iter().filter_map(|m| if let Rt::NewLink(m) = m { Some(parse_link(&m)) } else { None }).collect())
}

/// The index of `name`, or [`NetError::NoSuchLink`].
pub fn index(name: &str) -> Result<u32, NetError> {
    get(name).map(|l| l.index)
}

/// One end of a veth pair to create.
pub struct VethEnd<'a> {
    /// The interface name.
    pub name: &'a str,
    /// The namespace to create it in (IFLA_NET_NS_FD); None: the caller's.
    pub netns: Option<BorrowedFd<'a>>,
}

/// A veth pair to create with `queues` RX and TX queues on each end.
pub struct VethPair<'a> {
    /// The end the RTM_NEWLINK message creates.
    pub end: VethEnd<'a>,
    /// The peer (VETH_INFO_PEER).
    pub peer: VethEnd<'a>,
    /// RX and TX queues of each end (IFLA_NUM_RX_QUEUES, IFLA_NUM_TX_QUEUES).
    pub queues: u32,
}

fn end_attrs(end: &VethEnd<'_>, queues: u32) -> Vec<LinkAttribute> {
    let mut a = vec![LinkAttribute::IfName(end.name.to_owned())];
    if let Some(fd) = end.netns {
        a.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
    }
    a.push(LinkAttribute::NumRxQueues(queues));
    a.push(LinkAttribute::NumTxQueues(queues));
    a
}

/// The RTM_NEWLINK message for a veth pair (public for tests).
pub fn veth_message(p: &VethPair<'_>) -> LinkMessage {
    let mut peer = LinkMessage::default();
    peer.attributes = end_attrs(&p.peer, p.queues);
    let mut m = LinkMessage::default();
    m.attributes = end_attrs(&p.end, p.queues);
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    m
}

/// Creates a veth pair (like `ip link add A netns X numrxqueues N numtxqueues N type veth
/// peer name B netns Y numrxqueues N numtxqueues N`).
pub fn add_veth(p: &VethPair<'_>) -> Result<(), NetError> {
    super::check_ifname(p.end.name)?;
    super::check_ifname(p.peer.name)?;
    let what = format!("{} <-> {}", p.end.name, p.peer.name);
    route_socket()?.request(Rt::NewLink(veth_message(p)), NLM_F_CREATE | NLM_F_EXCL, "creating veth pair", &what)?;
    Ok(())
}

/// Sets `name` administratively up (or down).
pub fn set_up(name: &str, up: bool) -> Result<(), NetError> {
    let index = index(name)?;
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = if up { LinkFlags::Up } else { LinkFlags::empty() };
    m.header.change_mask = LinkFlags::Up;
    let op = if up { "setting link up" } else { "setting link down" };
    route_socket()?.request(Rt::SetLink(m), 0, op, name)?;
    Ok(())
}

/// Sets the MTU of `name` (`ip link set dev NAME mtu MTU`).
pub fn set_mtu(name: &str, mtu: u32) -> Result<(), NetError> {
    let mut m = LinkMessage::default();
    m.header.index = index(name)?;
    m.attributes.push(LinkAttribute::Mtu(mtu));
    route_socket()?.request(Rt::SetLink(m), 0, "setting the MTU of", &format!("{name} (to {mtu})"))?;
    Ok(())
}

/// Deletes the link `name` (a veth takes its peer with it).
pub fn delete(name: &str) -> Result<(), NetError> {
    let mut m = LinkMessage::default();
    m.header.index = index(name)?;
    route_socket()?.request(Rt::DelLink(m), 0, "deleting link", name)?;
    Ok(())
}

/// Detaches the XDP program attached to `name` in `mode` (IFLA_XDP: fd -1 and the mode
/// flag; `ip link set dev X xdpgeneric|xdpdrv|xdpoffload off`). A program held by a BPF
/// link cannot be detached this way (EBUSY).
pub fn detach_xdp(name: &str, mode: XdpMode) -> Result<(), NetError> {
    let mut m = LinkMessage::default();
    m.header.index = index(name)?;
    m.attributes.push(LinkAttribute::Xdp(vec![LinkXdp::Fd(-1), LinkXdp::Flags(mode.flag())]));
    route_socket()?.request(Rt::SetLink(m), 0, "detaching XDP from", &format!("{name} ({} mode)", mode.name()))?;
    Ok(())
}

/// The message naming IPv4 address `addr/prefix` on `name`, for adding or removing it.
fn ipv4_message(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<AddressMessage, NetError> {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = prefix;
    m.header.index = index(name)?;
    m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
    m.attributes.push(AddressAttribute::Address(IpAddr::V4(addr)));
    Ok(m)
}

/// Adds `addr/prefix` to `name` (`ip addr add`).
pub fn add_ipv4(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
    let m = ipv4_message(name, addr, prefix)?;
    let what = format!("{addr}/{prefix} on {name}");
    route_socket()?.request(Rt::NewAddress(m), NLM_F_CREATE | NLM_F_EXCL, "adding address", &what)?;
    Ok(())
}

/// Removes `addr/prefix` from `name` (`ip addr del`).
pub fn del_ipv4(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
    let m = ipv4_message(name, addr, prefix)?;
    let what = format!("{addr}/{prefix} on {name}");
    route_socket()?.request(Rt::DelAddress(m), 0, "removing address", &what)?;
    Ok(())
}

/// Adds `addr/prefix` to `name` (`ip -6 addr add ADDR/PREFIX dev NAME nodad`): no
/// duplicate address detection, so the address is usable at once (a testbed's link has
/// nothing else on it).
pub fn add_ipv6(name: &str, addr: Ipv6Addr, prefix: u8) -> Result<(), NetError> {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.prefix_len = prefix;
    m.header.index = index(name)?;
    m.attributes.push(AddressAttribute::Address(IpAddr::V6(addr)));
    m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    let what = format!("{addr}/{prefix} on {name}");
    route_socket()?.request(Rt::NewAddress(m), NLM_F_CREATE | NLM_F_EXCL, "adding address", &what)?;
    Ok(())
}

/// Addresses on the link with `index` (both families).
pub fn addresses(index: u32) -> Result<Vec<IpAddr>, NetError> {
    let m = AddressMessage::default();
    let all = route_socket()?.request(Rt::GetAddress(m), netlink_packet_core::NLM_F_DUMP, "listing addresses", "")?;
    Ok(all
        .into_iter()
        .filter_map(|m| if let Rt::NewAddress(m) = m { Some(m) } else { None })
        .filter(|m| m.header.index == index)
        .flat_map(|m| m.attributes)
        .filter_map(|a| match a {
            AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(ip),
            _ => None,
        })
        .collect())
}

/// Adds (or replaces) a permanent neighbour entry `ip lladdr mac dev name nud permanent`
/// (ARP for IPv4, NDP for IPv6).
pub fn add_permanent_neighbour(name: &str, ip: impl Into<IpAddr>, mac: [u8; 6]) -> Result<(), NetError> {
    let ip = ip.into();
    let mut m = NeighbourMessage::default();
    let (family, dest) = match ip {
        IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
    };
    m.header.family = family;
    m.header.ifindex = index(name)?;
    m.header.state = NeighbourState::Permanent;
    m.attributes.push(NeighbourAttribute::Destination(dest));
    m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    let what = format!("{ip} on {name}");
    route_socket()?.request(Rt::NewNeighbour(m), NLM_F_CREATE | NLM_F_REPLACE, "adding neighbour", &what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable as _, ParseableParametrized as _};
    use netlink_packet_route::link::{State, Stats64};

    use super::*;

    #[test]
    fn a_veth_request_carries_both_names_namespaces_and_queues() {
        let f = std::fs::File::open("/proc/self/ns/net").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&f);
        let p = VethPair {
            end: VethEnd { name: "xp-a", netns: Some(fd) },
            peer: VethEnd { name: "xp-b", netns: None },
            queues: 4,
        };
        let m = Rt::NewLink(veth_message(&p));
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        let back = Rt::parse_with_param(&buf, libc::RTM_NEWLINK).unwrap();
        let Rt::NewLink(back) = back else { panic!() };
        assert!(back.attributes.contains(&LinkAttribute::NumRxQueues(4)));
        assert!(back.attributes.contains(&LinkAttribute::NetNsFd(f.as_raw_fd())));
        let info = back.attributes.iter().find_map(|a| if let LinkAttribute::LinkInfo(i) = a { Some(i) } else { None });
        let peer = info.unwrap().iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p),
            _ => None,
        });
        let peer = peer.unwrap();
        assert!(peer.attributes.contains(&LinkAttribute::IfName("xp-b".into())));
        assert!(peer.attributes.contains(&LinkAttribute::NumTxQueues(4)));
    }

    #[test]
    fn link_replies_parse_into_state_stats_and_xdp() {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.header.flags = LinkFlags::Up;
        let mut s = Stats64::default();
        s.tx_dropped = 42;
        m.attributes = vec![
            LinkAttribute::IfName("xp-rx".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Mtu(1500),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::Stats64(s),
            LinkAttribute::Xdp(vec![LinkXdp::Attached(XdpAttached::SocketBuffer), LinkXdp::ProgId(99)]),
        ];
        let l = parse_link(&m);
        assert_eq!((l.index, l.name.as_str(), l.mtu, l.up, l.tx_dropped), (7, "xp-rx", 1500, true, 42));
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(l.operstate, "UP");
        assert_eq!(l.xdp, Some(XdpAttachment { prog_id: 99, mode: Some(XdpMode::Generic) }));
        m.attributes = vec![LinkAttribute::Xdp(vec![
            LinkXdp::Attached(XdpAttached::Multiple),
            LinkXdp::SkbProgId(5),
            LinkXdp::DrvProgId(0),
        ])];
        assert_eq!(parse_link(&m).xdp, Some(XdpAttachment { prog_id: 5, mode: None }));
        m.attributes = vec![LinkAttribute::Xdp(vec![LinkXdp::Attached(XdpAttached::None)])];
        assert_eq!(parse_link(&m).xdp, None);
    }

    #[test]
    fn a_veth_pair_is_made_across_namespaces_with_its_queues() {
        if !crate::net::tests::root_or_skip() {
            return;
        }
        use crate::net::ns;
        let (a, b) = (format!("xdpipe-lt{}a", std::process::id()), format!("xdpipe-lt{}b", std::process::id()));
        ns::create(&a).unwrap();
        ns::create(&b).unwrap();
        let run = || -> Result<(), NetError> {
            let (fa, fb) = (ns::open(&a)?, ns::open(&b)?);
            add_veth(&VethPair {
                end: VethEnd { name: "lt-a", netns: Some(std::os::fd::AsFd::as_fd(&fa)) },
                peer: VethEnd { name: "lt-b", netns: Some(std::os::fd::AsFd::as_fd(&fb)) },
                queues: 3,
            })?;
            assert!(matches!(get("lt-a"), Err(NetError::NoSuchLink { .. })), "not in this namespace");
            ns::with_netns(&a, || {
                set_up("lt-a", true)?;
                add_ipv4("lt-a", Ipv4Addr::new(10, 78, 0, 1), 24)?;
                add_permanent_neighbour("lt-a", Ipv4Addr::new(10, 78, 0, 2), [2, 0, 0, 0, 0, 2])?;
                let l = get("lt-a")?;
                assert!(l.up && l.mac.is_some() && l.xdp.is_none());
                assert!(addresses(l.index)?.contains(&IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1))));
                assert!(matches!(
                    add_ipv4("lt-a", Ipv4Addr::new(10, 78, 0, 1), 24),
                    Err(NetError::Kernel { errno: libc::EEXIST, .. })
                ));
                Ok(())
            })?;
            let out = ns::command(Some(&b), "ls").arg("/sys/class/net/lt-b/queues").output().unwrap();
            let queues = String::from_utf8_lossy(&out.stdout);
            assert_eq!(queues.split_whitespace().filter(|q| q.starts_with("rx-")).count(), 3, "{queues}");
            ns::with_netns(&b, || delete("lt-b"))?;
            assert!(matches!(ns::with_netns(&a, || get("lt-a")), Err(NetError::NoSuchLink { .. })));
            Ok(())
        };
        let r = run();
        ns::delete(&a).unwrap();
        ns::delete(&b).unwrap();
        r.unwrap();
    }

    #[test]
    fn loopback_is_found_and_nonsense_is_not() {
        let lo = get("lo").unwrap();
        assert!(lo.index > 0 && lo.up && lo.xdp.is_none());
        assert!(matches!(get("no-such-if0"), Err(NetError::NoSuchLink { .. })));
        assert!(matches!(get("bad name"), Err(NetError::BadName { .. })));
    }
}

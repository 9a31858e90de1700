//! Routes over rtnetlink: the output interfaces of the default routes (IPv4 and IPv6,
//! multipath next hops and nexthop objects included) and the interface a route lookup for one address picks
//! (`ip route get`). Both in the calling thread's network namespace.
use std::net::IpAddr;

use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage as Rt,
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType},
};

use super::{
    NetError,
    socket::{NETLINK_ROUTE, Netlink},
};

/// A default route's family and the interface indexes it sends through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    /// An IPv6 default route (`::/0`); false: IPv4 (`0.0.0.0/0`).
    pub ipv6: bool,
    /// The ifindexes it sends through (see [`oifs`]), and those of the nexthop object it
    /// names, if it names one ([`super::nexthop::devices`]); never 0.
    pub oifs: Vec<u32>,
    /// The nexthop object it names (RTA_NH_ID, `ip route add default nhid N`), if any.
    pub nhid: Option<u32>,
}

/// The output interfaces of a route: RTA_OIF, or each RTA_MULTIPATH next hop's.
pub fn oifs(m: &RouteMessage) -> Vec<u32> {
    let mut v = Vec::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::Oif(i) => v.push(*i),
            RouteAttribute::MultiPath(hops) => v.extend(hops.iter().map(|h| h.interface_index)),
            _ => {}
        }
    }
    v.retain(|&i| i != 0);
    v.dedup();
    v
}

/// True for a default route (prefix length 0, unicast, main or any table).
pub fn is_default(m: &RouteMessage) -> bool {
    m.header.destination_prefix_length == 0 && m.header.kind == RouteType::Unicast
}

/// The nexthop object a route names (RTA_NH_ID), if it names one.
pub fn nhid(m: &RouteMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| if let RouteAttribute::NhId(id) = a { Some(*id) } else { None })
}

/// The default routes of both families (`ip -4/-6 route show default`). A route naming a
/// nexthop object gets that object's devices (a group's: each member's) from the nexthop
/// table: the kernel lists them in the route itself only in its compat mode
/// (`net.ipv4.nexthop_compat_mode`, on by default).
pub fn default_routes() -> Result<Vec<DefaultRoute>, NetError> {
    let mut out = Vec::new();
    let mut nl = Netlink::open(NETLINK_ROUTE)?;
    let mut nexthops: Option<Vec<super::nexthop::Nexthop>> = None;
    for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut m = RouteMessage::default();
        m.header.address_family = fam;
        m.header.table = RouteHeader::RT_TABLE_UNSPEC;
        for r in nl.request(Rt::GetRoute(m), NLM_F_DUMP, "listing routes", "")? {
            if let Rt::NewRoute(r) = r
                && is_default(&r)
            {
                let mut oifs = oifs(&r);
                let nhid = nhid(&r);
                if let Some(id) = nhid {
                    let table = match &nexthops {
                        Some(t) => t,
                        None => nexthops.insert(super::nexthop::list()?),
                    };
                    for i in super::nexthop::devices(id, table) {
                        if !oifs.contains(&i) {
                            oifs.push(i);
                        }
                    }
                }
                out.push(DefaultRoute { ipv6: fam == AddressFamily::Inet6, oifs, nhid });
            }
        }
    }
    Ok(out)
}

/// The interface index a packet to `to` leaves through (`ip route get TO`).
pub fn route_to(to: IpAddr) -> Result<Option<u32>, NetError> {
    let mut m = RouteMessage::default();
    let (fam, len, addr) = match to {
        IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
    };
    m.header.address_family = fam;
    m.header.destination_prefix_length = len;
    m.attributes.push(RouteAttribute::Destination(addr));
    let r = Netlink::open(NETLINK_ROUTE)?.request(Rt::GetRoute(m), 0, "looking up the route to", &to.to_string())?;
    Ok(r.into_iter().find_map(|r| if let Rt::NewRoute(r) = r { oifs(&r).first().copied() } else { None }))
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::route::RouteNextHop;

    use super::*;

    #[test]
    fn multipath_next_hops_are_output_interfaces() {
        let mut m = RouteMessage::default();
        m.header.kind = RouteType::Unicast;
        let mut a = RouteNextHop::default();
        a.interface_index = 3;
        let mut b = RouteNextHop::default();
        b.interface_index = 5;
        m.attributes.push(RouteAttribute::MultiPath(vec![a, b]));
        assert!(is_default(&m));
        assert_eq!(oifs(&m), [3, 5]);
        m.header.destination_prefix_length = 24;
        assert!(!is_default(&m));
    }

    #[test]
    fn loopback_route_lookup_leaves_through_lo() {
        let lo = super::super::link::index("lo").unwrap();
        assert_eq!(route_to("127.0.0.1".parse().unwrap()).unwrap(), Some(lo));
        let _ = default_routes().unwrap();
    }
}

//! Nexthop objects (`ip nexthop`, RTM_GETNEXTHOP): a route may name one by id
//! (RTA_NH_ID, `ip route add default nhid N`) instead of carrying its device. Only what
//! the uplink guard needs is read: each object's id, device (NHA_OIF) and, for a group,
//! its members' ids (NHA_GROUP). In the calling thread's network namespace.
//!
//! Hand-written: netlink-packet-route 0.34 has no nexthop messages (it parses RTA_NH_ID
//! in routes only). The layout is the kernel's `include/uapi/linux/nexthop.h`: a struct
//! nhmsg (family, scope, protocol, reserved: one byte each; flags: u32) and attributes.
use netlink_packet_core::{
    DecodeError, NLM_F_DUMP, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NlaBuffer, NlasIterator,
};

use super::{
    NetError,
    socket::{NETLINK_ROUTE, Netlink},
};

const RTM_NEWNEXTHOP: u16 = 104;
const RTM_GETNEXTHOP: u16 = 106;
/// sizeof(struct nhmsg).
const NHMSG_LEN: usize = 8;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_OIF: u16 = 5;
/// sizeof(struct nexthop_grp): id u32, weight u8, weight_high u8, reserved u16.
const NEXTHOP_GRP_LEN: usize = 8;

/// One nexthop object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nexthop {
    /// Its id (`ip nexthop add id N`).
    pub id: u32,
    /// Its device (NHA_OIF), if it has one (a group or a blackhole has none).
    pub oif: Option<u32>,
    /// For a group, its members' ids (NHA_GROUP).
    pub group: Vec<u32>,
}

/// An RTM_GETNEXTHOP dump request (family AF_UNSPEC, no filter), or a reply.
#[derive(Debug)]
enum NexthopMessage {
    /// The dump request.
    Get,
    /// One object of the dump.
    New(Nexthop),
    /// Any other message type.
    Other(u16),
}

impl NetlinkSerializable for NexthopMessage {
    fn message_type(&self) -> u16 {
        match self {
            Self::Get => RTM_GETNEXTHOP,
            Self::New(_) => RTM_NEWNEXTHOP,
            Self::Other(t) => *t,
        }
    }

    fn buffer_len(&self) -> usize {
        NHMSG_LEN
    }

    fn serialize(&self, buffer: &mut [u8]) {
        // Only requests are sent: an all-zero nhmsg (the kernel refuses a dump request
        // with any header field but the family set).
        buffer[..NHMSG_LEN].fill(0);
    }
}

impl NetlinkDeserializable for NexthopMessage {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        if header.message_type != RTM_NEWNEXTHOP {
            return Ok(Self::Other(header.message_type));
        }
        parse(payload).map(Self::New)
    }
}

/// An RTM_NEWNEXTHOP payload: the nhmsg, then attributes.
fn parse(payload: &[u8]) -> Result<Nexthop, DecodeError> {
    let attrs = payload.get(NHMSG_LEN..).ok_or_else(|| {
        DecodeError::from(format!("a nexthop message of {} bytes, shorter than its header", payload.len()))
    })?;
    let u32_of = |v: &[u8], what: &str| -> Result<u32, DecodeError> {
        v.get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .ok_or_else(|| DecodeError::from(format!("{what} of {} bytes, not 4", v.len())))
    };
    let mut nh = Nexthop::default();
    for a in NlasIterator::new(attrs) {
        let a: NlaBuffer<&[u8]> = a?;
        let v = a.value();
        match a.kind() {
            NHA_ID => nh.id = u32_of(v, "NHA_ID")?,
            NHA_OIF => nh.oif = Some(u32_of(v, "NHA_OIF")?).filter(|&i| i != 0),
            NHA_GROUP => {
                if !v.len().is_multiple_of(NEXTHOP_GRP_LEN) {
                    return Err(format!("NHA_GROUP of {} bytes, not a multiple of {NEXTHOP_GRP_LEN}", v.len()).into());
                }
                for m in v.chunks_exact(NEXTHOP_GRP_LEN) {
                    nh.group.push(u32_of(m, "a NHA_GROUP member")?);
                }
            }
            _ => {}
        }
    }
    Ok(nh)
}

/// Every nexthop object (`ip nexthop show`). A kernel without nexthop objects (before
/// 5.3) has none: an empty list, not an error.
pub fn list() -> Result<Vec<Nexthop>, NetError> {
    let mut nl = Netlink::open(NETLINK_ROUTE)?;
    match nl.request(NexthopMessage::Get, NLM_F_DUMP, "listing nexthop objects", "") {
        Ok(replies) => Ok(replies
            .into_iter()
            .filter_map(|m| if let NexthopMessage::New(n) = m { Some(n) } else { None })
            .collect()),
        Err(NetError::Kernel { errno, .. }) if errno == libc::EOPNOTSUPP || errno == libc::EINVAL => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The devices nexthop object `id` sends through, in `table`: its own device, or each of
/// its group's members' (a group's members are plain nexthops: the kernel refuses nested
/// groups). An id not in `table` has none.
pub fn devices(id: u32, table: &[Nexthop]) -> Vec<u32> {
    let find = |id: u32| table.iter().find(|n| n.id == id);
    let mut out = Vec::new();
    if let Some(n) = find(id) {
        out.extend(n.oif);
        for &m in &n.group {
            if let Some(member) = find(m) {
                out.extend(member.oif);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    #[test]
    fn objects_and_groups_parse_and_resolve_to_their_devices() {
        let mut one = vec![0u8; NHMSG_LEN];
        one.extend(attr(NHA_ID, &10u32.to_ne_bytes()));
        one.extend(attr(NHA_OIF, &3u32.to_ne_bytes()));
        let a = parse(&one).unwrap();
        assert_eq!(a, Nexthop { id: 10, oif: Some(3), group: vec![] });
        let mut grp = vec![0u8; NHMSG_LEN];
        grp.extend(attr(NHA_ID, &30u32.to_ne_bytes()));
        let mut members = Vec::new();
        for id in [10u32, 20] {
            members.extend_from_slice(&id.to_ne_bytes());
            members.extend_from_slice(&[1, 0, 0, 0]);
        }
        grp.extend(attr(NHA_GROUP, &members));
        let g = parse(&grp).unwrap();
        assert_eq!(g, Nexthop { id: 30, oif: None, group: vec![10, 20] });
        let table = [a, Nexthop { id: 20, oif: Some(5), group: vec![] }, g];
        assert_eq!(devices(10, &table), [3]);
        assert_eq!(devices(30, &table), [3, 5]);
        assert_eq!(devices(99, &table), Vec::<u32>::new());
        // Malformed: a short header, a short NHA_OIF, a ragged group.
        assert!(parse(&[0; 4]).is_err());
        let mut bad = vec![0u8; NHMSG_LEN];
        bad.extend(attr(NHA_OIF, &[1, 2]));
        assert!(parse(&bad).unwrap_err().to_string().contains("NHA_OIF of 2 bytes"));
        let mut bad = vec![0u8; NHMSG_LEN];
        bad.extend(attr(NHA_GROUP, &[0; 12]));
        assert!(parse(&bad).is_err());
    }
}

//! Generic netlink on `netlink-packet-generic`: resolving a family's id through the CTRL
//! family, and [`GenlRaw`], a family payload whose attributes are bytes built with
//! [`Attrs`] (for families no crate describes: netdev, ethtool). Framing, the generic
//! header and attribute iteration are the crates'; only attribute numbers are ours.
use netlink_packet_core::{
    DecodeError, Emitable, NLA_F_NESTED, NlaBuffer, NlasIterator, ParseableParametrized, emit_u16, emit_u32,
};
use netlink_packet_generic::{
    GenlFamily, GenlHeader, GenlMessage,
    ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs},
};

use super::{
    NetError,
    socket::{NETLINK_GENERIC, Netlink},
};

/// A generic netlink message of a family resolved at run time: command, version and the
/// attributes as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenlRaw {
    /// The family's id, as resolved by [`Family::resolve`] (0 in a parsed reply: the id
    /// is in the netlink header, not the payload).
    pub family_id: u16,
    /// The family's command (genlmsghdr `cmd`).
    pub cmd: u8,
    /// The family's version (genlmsghdr `version`).
    pub version: u8,
    /// The attributes after the generic header, as on the wire.
    pub attrs: Vec<u8>,
}

impl GenlFamily for GenlRaw {
    fn family_name() -> &'static str {
        "(resolved at run time)"
    }
    fn family_id(&self) -> u16 {
        self.family_id
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        self.version
    }
}

impl Emitable for GenlRaw {
    fn buffer_len(&self) -> usize {
        self.attrs.len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        buffer[..self.attrs.len()].copy_from_slice(&self.attrs)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for GenlRaw {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(GenlRaw { family_id: 0, cmd: header.cmd, version: header.version, attrs: buf.to_vec() })
    }
}

/// A builder of netlink attributes (4-byte aligned, host byte order).
#[derive(Default)]
pub struct Attrs(pub Vec<u8>);

impl Attrs {
    /// Appends attribute `kind` with payload `v`, padded to 4 bytes.
    pub fn bytes(mut self, kind: u16, v: &[u8]) -> Self {
        let mut hdr = [0u8; 4];
        emit_u16(&mut hdr[0..2], (4 + v.len()) as u16).expect("4 bytes");
        emit_u16(&mut hdr[2..4], kind).expect("4 bytes");
        self.0.extend_from_slice(&hdr);
        self.0.extend_from_slice(v);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }
    /// Appends a u32 attribute.
    pub fn u32(self, kind: u16, v: u32) -> Self {
        let mut b = [0u8; 4];
        emit_u32(&mut b, v).expect("4 bytes");
        self.bytes(kind, &b)
    }
    /// Appends a NUL-terminated string attribute.
    pub fn string(self, kind: u16, s: &str) -> Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.bytes(kind, &b)
    }
    /// Appends a flag attribute (no payload: present means set).
    pub fn flag(self, kind: u16) -> Self {
        self.bytes(kind, &[])
    }
    /// Appends `inner` as the payload of attribute `kind`, with NLA_F_NESTED set.
    pub fn nested(self, kind: u16, inner: Attrs) -> Self {
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }
}

/// (type without flags, payload) of each attribute in `b`; stops at malformed data.
pub fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    NlasIterator::new(b).map_while(Result::ok).map(|n: NlaBuffer<&[u8]>| {
        let (kind, len) = (n.kind(), n.length() as usize);
        let b = n.into_inner();
        (kind, b.get(4..len).unwrap_or(&[]))
    })
}

/// A u32 (or a u8/u16/u64 the kernel may use for the same field) from an attribute.
pub fn uint(p: &[u8]) -> Option<u64> {
    Some(match p.len() {
        1 => p[0] as u64,
        2 => u16::from_ne_bytes(p.try_into().ok()?) as u64,
        4 => u32::from_ne_bytes(p.try_into().ok()?) as u64,
        8 => u64::from_ne_bytes(p.try_into().ok()?),
        _ => return None,
    })
}

/// A NUL-terminated string attribute.
pub fn string(p: &[u8]) -> String {
    String::from_utf8_lossy(p.split(|&b| b == 0).next().unwrap_or(p)).into_owned()
}

/// A generic netlink socket bound to one family.
pub struct Family {
    nl: Netlink,
    /// The family's id, from CTRL_ATTR_FAMILY_ID.
    pub id: u16,
    /// The family's name, e.g. `netdev`, `ethtool`.
    pub name: &'static str,
}

impl Family {
    /// Resolves `name` (CTRL_CMD_GETFAMILY) in the calling thread's namespace; an absent
    /// family is [`NetError::NoFamily`] with `need` and `what` in its message.
    pub fn resolve(name: &'static str, need: &'static str, what: &'static str) -> Result<Self, NetError> {
        let mut nl = Netlink::open(NETLINK_GENERIC)?;
        let req = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_owned())],
        });
        let replies = match nl.request(req, 0, "resolving generic netlink family", name) {
            Err(e) if e.errno() == Some(libc::ENOENT) => return Err(NetError::NoFamily { family: name, need, what }),
            r => r?,
        };
        let id = replies
            .iter()
            .flat_map(|m| &m.payload.nlas)
            .find_map(|a| if let GenlCtrlAttrs::FamilyId(id) = a { Some(*id) } else { None })
            .ok_or_else(|| NetError::Decode {
                op: "resolving generic netlink family",
                what: name.into(),
                detail: "no family id".into(),
            })?;
        Ok(Family { nl, id, name })
    }

    /// Sends `cmd` with `attrs` and returns each reply's attribute bytes.
    pub fn request(
        &mut self,
        cmd: u8,
        version: u8,
        attrs: Attrs,
        flags: u16,
        op: &'static str,
        what: &str,
    ) -> Result<Vec<Vec<u8>>, NetError> {
        let mut m = GenlMessage::from_payload(GenlRaw { family_id: self.id, cmd, version, attrs: attrs.0 });
        m.set_resolved_family_id(self.id);
        Ok(self.nl.request(m, flags, op, what)?.into_iter().map(|m| m.payload.attrs).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_garbage_stops_iteration() {
        let a = Attrs::default().u32(1, 7).string(2, "xp-rx").flag(3).nested(4, Attrs::default().u32(1, 9));
        let v: Vec<_> = attrs(&a.0).collect();
        assert_eq!(v.len(), 4);
        assert_eq!(uint(v[0].1), Some(7));
        assert_eq!(string(v[1].1), "xp-rx");
        assert!(v[2].1.is_empty());
        assert_eq!(v[3].0, 4);
        assert_eq!(attrs(v[3].1).next().map(|(k, p)| (k, uint(p))), Some((1, Some(9))));
        for cut in 0..a.0.len() {
            let _ = attrs(&a.0[..cut]).count();
        }
        assert_eq!(attrs(&[0xff; 3]).count(), 0);
    }

    #[test]
    fn the_control_family_resolves_nlctrl() {
        let f = Family::resolve("nlctrl", "always there", "nothing").unwrap();
        assert_eq!(f.id, 0x10);
        assert!(matches!(
            Family::resolve("no-such-family", "x", "y"),
            Err(NetError::NoFamily { family: "no-such-family", .. })
        ));
    }
}

//! Zero-copy header views: Ethernet (with up to two VLAN tags), IPv4, IPv6, UDP, TCP, and
//! [`parse_frame`], which walks a frame to its 5-tuple. Untrusted bytes go through
//! `new_checked`; after it no accessor panics.
use super::Malformed;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Ethernet header length without VLAN tags, bytes.
pub const ETH_HLEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 hop-by-hop options header.
pub const IPV6_HOP_BY_HOP: u8 = 0;
/// IPv6 routing header.
pub const IPV6_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const IPV6_FRAGMENT: u8 = 44;
/// Authentication header (IPsec AH): its length counts 4-octet units, less 2.
pub const IPV6_AH: u8 = 51;
/// IPv6 destination options header.
pub const IPV6_DEST_OPTS: u8 = 60;
/// How many IPv6 extension headers [`parse_frame`] walks before it calls a frame
/// malformed (RFC 8200 expects at most one of each, and six kinds exist); the steering
/// program walks as many.
pub const MAX_IPV6_EXT_HEADERS: usize = xdp_common::IPV6_EXT_HEADERS_MAX;

/// An Ethernet II frame.
pub struct EthernetFrame<T: AsRef<[u8]>>(T);

mod eth {
    use std::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buf` if it holds at least the 14-byte header.
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        if buf.as_ref().len() < ETH_HLEN {
            return Err(Malformed::Truncated);
        }
        Ok(Self(buf))
    }
    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        self.0.as_ref()[eth::DST].try_into().unwrap_or_default()
    }
    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        self.0.as_ref()[eth::SRC].try_into().unwrap_or_default()
    }
    /// The EtherType field (a VLAN tag's type if the frame is tagged).
    pub fn ethertype(&self) -> u16 {
        be16(self.0.as_ref(), eth::ETHERTYPE)
    }
    /// Everything after the 14-byte header (VLAN tags first, if any).
    pub fn payload(&self) -> &[u8] {
        &self.0.as_ref()[ETH_HLEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.0.as_mut()[eth::DST].copy_from_slice(&mac);
    }
    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.0.as_mut()[eth::SRC].copy_from_slice(&mac);
    }
    /// Sets the EtherType field.
    pub fn set_ethertype(&mut self, t: u16) {
        self.0.as_mut()[eth::ETHERTYPE..eth::ETHERTYPE + 2].copy_from_slice(&t.to_be_bytes());
    }
    /// Swaps source and destination MAC in place (l2fwd).
    pub fn swap_macs(&mut self) {
        let b = self.0.as_mut();
        for i in 0..6 {
            b.swap(i, 6 + i);
        }
    }
}

/// An IPv4 packet whose header and total length fit the buffer.
pub struct Ipv4Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buf` if it holds a version 4 header of at least 20 bytes and the whole total
    /// length, which covers the header.
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let avail = buf.as_ref().len();
        Self::new_checked_within(buf, avail)
    }

    /// As [`Ipv4Packet::new_checked`], for a packet of which `buf` holds the start (the
    /// whole header) and `avail` bytes exist in all (a multi-buffer frame's later
    /// segments hold the rest): the total length is checked against `avail`.
    pub fn new_checked_within(buf: T, avail: usize) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        let avail = avail.max(b.len());
        if b.len() < 20 {
            return Err(Malformed::Truncated);
        }
        let ihl = ((b[0] & 0x0f) as usize) * 4;
        let total = be16(b, 2) as usize;
        if b[0] >> 4 != 4 || ihl < 20 || total < ihl {
            return Err(Malformed::BadField);
        }
        if total > avail || ihl > b.len() {
            return Err(Malformed::Truncated);
        }
        Ok(Self(buf))
    }
    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        ((self.0.as_ref()[0] & 0x0f) as usize) * 4
    }
    /// The total length field: header and payload, bytes.
    pub fn total_len(&self) -> usize {
        be16(self.0.as_ref(), 2) as usize
    }
    /// The protocol field (`IPPROTO_UDP`, `IPPROTO_TCP`, ...).
    pub fn protocol(&self) -> u8 {
        self.0.as_ref()[9]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        self.0.as_ref()[12..16].try_into().unwrap_or_default()
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        self.0.as_ref()[16..20].try_into().unwrap_or_default()
    }
    /// Fragment offset in 8-byte units; non-zero means no L4 header in this packet.
    pub fn frag_offset(&self) -> u16 {
        be16(self.0.as_ref(), 6) & 0x1fff
    }
    /// True if the header checksum is correct.
    pub fn checksum_ok(&self) -> bool {
        super::fold_checksum(super::ones_sum(&self.0.as_ref()[..self.header_len()], 0)) == 0
    }
    /// The bytes after the header up to the total length (Ethernet padding left out), as
    /// far as the buffer holds them.
    pub fn payload(&self) -> &[u8] {
        let b = self.0.as_ref();
        &b[self.header_len()..self.total_len().min(b.len())]
    }
}

/// An IPv6 packet's fixed header (extension headers: [`Ipv6ExtHeader`]).
pub struct Ipv6Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buf` if it holds a version 6 fixed header (40 bytes) and the payload length
    /// it gives.
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let avail = buf.as_ref().len();
        Self::new_checked_within(buf, avail)
    }

    /// As [`Ipv6Packet::new_checked`], for a packet of which `buf` holds the start (the
    /// fixed header) and `avail` bytes exist in all: the payload length is checked
    /// against `avail`.
    pub fn new_checked_within(buf: T, avail: usize) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        let avail = avail.max(b.len());
        if b.len() < 40 {
            return Err(Malformed::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Malformed::BadField);
        }
        if 40 + be16(b, 4) as usize > avail {
            return Err(Malformed::Truncated);
        }
        Ok(Self(buf))
    }
    /// The fixed header's next header field: the L4 protocol, or an extension header.
    pub fn next_header(&self) -> u8 {
        self.0.as_ref()[6]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        self.0.as_ref()[8..24].try_into().unwrap_or_default()
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        self.0.as_ref()[24..40].try_into().unwrap_or_default()
    }
    /// The payload-length bytes after the fixed header (extension headers included).
    pub fn payload(&self) -> &[u8] {
        let b = self.0.as_ref();
        &b[40..(40 + be16(b, 4) as usize).min(b.len())]
    }
}

/// One IPv6 extension header of a kind that chains on to a next header: hop-by-hop,
/// routing, fragment, destination options (length in 8-octet units past the first 8)
/// and AH (in 4-octet units past the first 8).
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buf: T,
    kind: u8,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// True for the header kinds this view walks.
    pub fn is_ext_header(kind: u8) -> bool {
        matches!(kind, IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AH | IPV6_DEST_OPTS)
    }

    /// Wraps `buf`, which starts with an extension header of `kind`, if that kind is one
    /// [`Self::is_ext_header`] names and the whole header fits.
    pub fn new_checked(buf: T, kind: u8) -> Result<Self, Malformed> {
        if !Self::is_ext_header(kind) {
            return Err(Malformed::BadField);
        }
        let b = buf.as_ref();
        if b.len() < 8 {
            return Err(Malformed::Truncated);
        }
        let h = Self { buf, kind };
        if h.header_len() > h.buf.as_ref().len() {
            return Err(Malformed::Truncated);
        }
        Ok(h)
    }
    /// The next header field: the protocol or extension header that follows.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    /// This header's length in bytes.
    pub fn header_len(&self) -> usize {
        let n = self.buf.as_ref()[1] as usize;
        match self.kind {
            IPV6_FRAGMENT => 8,
            IPV6_AH => (n + 2) * 4,
            _ => (n + 1) * 8,
        }
    }
    /// For a fragment header, the fragment offset in 8-byte units (non-zero: no transport
    /// header in this packet); 0 for other kinds.
    pub fn frag_offset(&self) -> u16 {
        if self.kind == IPV6_FRAGMENT { be16(self.buf.as_ref(), 2) >> 3 } else { 0 }
    }
}

/// Walks the extension headers at the start of an IPv6 payload whose first header is
/// `next` (the fixed header's next header). Returns the transport protocol and its offset
/// into `payload`, or `None` for a non-first fragment (no transport header). More than
/// [`MAX_IPV6_EXT_HEADERS`] extension headers are `Malformed::BadField`.
pub fn ipv6_transport(payload: &[u8], mut next: u8) -> Result<Option<(u8, usize)>, Malformed> {
    let mut off = 0;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if !Ipv6ExtHeader::<&[u8]>::is_ext_header(next) {
            return Ok(Some((next, off)));
        }
        let h = Ipv6ExtHeader::new_checked(&payload[off..], next)?;
        if h.frag_offset() != 0 {
            return Ok(None);
        }
        next = h.next_header();
        off += h.header_len();
    }
    if Ipv6ExtHeader::<&[u8]>::is_ext_header(next) { Err(Malformed::BadField) } else { Ok(Some((next, off))) }
}

/// A UDP datagram whose length field fits the buffer.
pub struct UdpPacket<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buf` if it holds the 8-byte header and a length field of 8 up to the buffer's.
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let avail = buf.as_ref().len();
        Self::new_checked_within(buf, avail)
    }

    /// As [`UdpPacket::new_checked`], for a datagram of which `buf` holds the start (the
    /// header) and `avail` bytes exist in all: its length is checked against `avail`.
    pub fn new_checked_within(buf: T, avail: usize) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        let avail = avail.max(b.len());
        if b.len() < 8 {
            return Err(Malformed::Truncated);
        }
        let len = be16(b, 4) as usize;
        if len < 8 {
            return Err(Malformed::BadField);
        }
        if len > avail {
            return Err(Malformed::Truncated);
        }
        Ok(Self(buf))
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.0.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.0.as_ref(), 2)
    }
    /// The length field: header and payload, bytes.
    pub fn len(&self) -> usize {
        be16(self.0.as_ref(), 4) as usize
    }
    /// True if the datagram carries no payload (length 8).
    pub fn is_empty(&self) -> bool {
        self.len() == 8
    }
    /// The checksum field (0: none was computed, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        be16(self.0.as_ref(), 6)
    }
    /// The bytes after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        let b = self.0.as_ref();
        &b[8..self.len().min(b.len())]
    }
}

/// A TCP segment whose header fits the buffer.
pub struct TcpPacket<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buf` if its data offset gives a header of at least 20 bytes that fits the
    /// buffer.
    pub fn new_checked(buf: T) -> Result<Self, Malformed> {
        let b = buf.as_ref();
        if b.len() < 20 {
            return Err(Malformed::Truncated);
        }
        let off = ((b[12] >> 4) as usize) * 4;
        if off < 20 {
            return Err(Malformed::BadField);
        }
        if off > b.len() {
            return Err(Malformed::Truncated);
        }
        Ok(Self(buf))
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.0.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.0.as_ref(), 2)
    }
}

/// The 5-tuple of a frame. An IPv4 address sits in the last 4 of its 16 bytes, the rest
/// zero (build one with [`FlowKey::new`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address (IPv4: in the last 4 bytes).
    pub src: [u8; 16],
    /// Destination address (IPv4: in the last 4 bytes).
    pub dst: [u8; 16],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol: `IPPROTO_UDP` or `IPPROTO_TCP`.
    pub proto: u8,
}

impl FlowKey {
    /// The key [`parse_frame`] gives a frame of this flow.
    pub fn new(proto: u8, src: std::net::IpAddr, sport: u16, dst: std::net::IpAddr, dport: u16) -> Self {
        let bytes = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(v4) => {
                let mut k = [0u8; 16];
                k[12..].copy_from_slice(&v4.octets());
                k
            }
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        Self { src: bytes(src), dst: bytes(dst), sport, dport, proto }
    }

    /// A fast, well-mixed 64-bit hash (FNV-1a over the fields then a final avalanche).
    pub fn hash64(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        self.src.iter().chain(self.dst.iter()).for_each(|&b| eat(b));
        self.sport.to_be_bytes().into_iter().chain(self.dport.to_be_bytes()).for_each(&mut eat);
        eat(self.proto);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// What [`parse_frame`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// VLAN tags walked past (0 to 2).
    pub vlan_tags: u8,
    /// EtherType after VLAN tags.
    pub ethertype: u16,
    /// Set for IPv4/IPv6 frames with a UDP or TCP header.
    pub flow: Option<FlowKey>,
    /// Offset and length of the UDP payload, for reading the stamp.
    pub udp_payload: Option<(usize, usize)>,
}

/// Walks Ethernet → up to two VLAN tags → IPv4/IPv6 (and up to
/// [`MAX_IPV6_EXT_HEADERS`] IPv6 extension headers) → UDP/TCP. Frames of other
/// EtherTypes or protocols parse fine with no flow; truncated or contradictory headers
/// of the kinds it knows are `Malformed`.
pub fn parse_frame(frame: &[u8]) -> Result<FrameInfo, Malformed> {
    parse_frame_within(frame, frame.len())
}

/// As [`parse_frame`], for a frame of `frame_len` bytes of which `head` is the start (a
/// multi-buffer frame's first segment): every header must lie in `head`, and the lengths
/// the headers claim are checked against `frame_len`. `udp_payload` may then reach past
/// `head`.
pub fn parse_frame_within(head: &[u8], frame_len: usize) -> Result<FrameInfo, Malformed> {
    let frame = head;
    // What the later segments add beyond `head`.
    let beyond = frame_len.saturating_sub(head.len());
    let eth = EthernetFrame::new_checked(frame)?;
    let mut info = FrameInfo { ethertype: eth.ethertype(), ..Default::default() };
    let mut off = ETH_HLEN;
    while info.ethertype == ETHERTYPE_VLAN || info.ethertype == ETHERTYPE_QINQ {
        if info.vlan_tags == 2 {
            return Err(Malformed::BadField);
        }
        if frame.len() < off + 4 {
            return Err(Malformed::Truncated);
        }
        info.ethertype = be16(frame, off + 2);
        info.vlan_tags += 1;
        off += 4;
    }
    let l3 = &frame[off..];
    let (src, dst, proto, l4, l4_len, l4_off) = match info.ethertype {
        ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked_within(l3, l3.len() + beyond)?;
            if ip.frag_offset() != 0 {
                return Ok(info);
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s[12..].copy_from_slice(&ip.src());
            d[12..].copy_from_slice(&ip.dst());
            let (hl, total) = (ip.header_len(), ip.total_len());
            (s, d, ip.protocol(), &l3[hl..total.min(l3.len())], total - hl, off + hl)
        }
        ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked_within(l3, l3.len() + beyond)?;
            let plen = be16(l3, 4) as usize;
            let payload = &l3[40..(40 + plen).min(l3.len())];
            let Some((proto, at)) = ipv6_transport(payload, ip.next_header())? else {
                return Ok(info);
            };
            let l4_len = plen - at;
            (ip.src(), ip.dst(), proto, &payload[at..], l4_len, off + 40 + at)
        }
        _ => return Ok(info),
    };
    let (sport, dport) = match proto {
        IPPROTO_UDP => {
            let udp = UdpPacket::new_checked_within(l4, l4_len)?;
            info.udp_payload = Some((l4_off + 8, udp.len() - 8));
            (udp.src_port(), udp.dst_port())
        }
        IPPROTO_TCP => {
            let tcp = TcpPacket::new_checked(l4)?;
            (tcp.src_port(), tcp.dst_port())
        }
        _ => return Ok(info),
    };
    info.flow = Some(FlowKey { src, dst, sport, dport, proto });
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A captured 60-byte IPv4/UDP frame: 10.0.0.1:1234 -> 10.0.0.2:18000, 18-byte payload.
    const UDP4: [u8; 60] = [
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, // ethernet
        0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0x26, 0xbd, 10, 0, 0, 1, 10, 0, 0, 2, // ipv4
        0x04, 0xd2, 0x46, 0x50, 0, 26, 0, 0, // udp
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
    ];

    #[test]
    fn deconstruct_ipv4_udp_fixture() {
        let eth = EthernetFrame::new_checked(&UDP4[..]).unwrap();
        assert_eq!(eth.dst(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(eth.ethertype(), ETHERTYPE_IPV4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.src(), [10, 0, 0, 1]);
        assert_eq!(ip.protocol(), IPPROTO_UDP);
        assert!(ip.checksum_ok());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len()), (1234, 18000, 26));
        assert_eq!(udp.payload().len(), 18);
        let info = parse_frame(&UDP4).unwrap();
        let f = info.flow.unwrap();
        assert_eq!((f.sport, f.dport, f.proto), (1234, 18000, 17));
        assert_eq!(info.udp_payload, Some((42, 18)));
    }

    /// IPv6/UDP 2001:2::2:1234 -> 2001:2::1:18000 behind four extension headers:
    /// hop-by-hop (8 B) → fragment (8 B, offset 0, more fragments) → AH (12 B, length
    /// field 1) → destination options (16 B, length field 1) → UDP with a 4-byte payload.
    const UDP6_EXT: [u8; 110] = [
        0x02,
        0,
        0,
        0,
        0,
        2,
        0x02,
        0,
        0,
        0,
        0,
        1,
        0x86,
        0xdd, // ethernet
        0x60,
        0,
        0,
        0,
        0,
        56,
        IPV6_HOP_BY_HOP,
        64, // ipv6: payload 56, next hop-by-hop
        0x20,
        0x01,
        0,
        0x02,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0x02, // src 2001:2::2
        0x20,
        0x01,
        0,
        0x02,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0x01, // dst 2001:2::1
        IPV6_FRAGMENT,
        0,
        1,
        4,
        0,
        0,
        0,
        0, // hop-by-hop: PadN of 4
        IPV6_AH,
        0,
        0,
        1,
        0,
        0,
        0,
        7, // fragment: offset 0, M set, id 7
        IPV6_DEST_OPTS,
        1,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        1, // AH: (1 + 2) * 4 = 12 B
        IPPROTO_UDP,
        1,
        1,
        12,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0, // dest opts: 16 B
        0x04,
        0xd2,
        0x46,
        0x50,
        0,
        12,
        0,
        0, // udp
        0xde,
        0xad,
        0xbe,
        0xef,
    ];

    #[test]
    fn ipv6_extension_headers_are_walked_to_udp() {
        let eth = EthernetFrame::new_checked(&UDP6_EXT[..]).unwrap();
        assert_eq!(eth.ethertype(), ETHERTYPE_IPV6);
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.next_header(), IPV6_HOP_BY_HOP);
        let hbh = Ipv6ExtHeader::new_checked(ip.payload(), IPV6_HOP_BY_HOP).unwrap();
        assert_eq!((hbh.next_header(), hbh.header_len()), (IPV6_FRAGMENT, 8));
        let ah = Ipv6ExtHeader::new_checked(&ip.payload()[16..], IPV6_AH).unwrap();
        assert_eq!((ah.next_header(), ah.header_len()), (IPV6_DEST_OPTS, 12));
        assert_eq!(ipv6_transport(ip.payload(), ip.next_header()), Ok(Some((IPPROTO_UDP, 44))));
        let info = parse_frame(&UDP6_EXT).unwrap();
        let f = info.flow.unwrap();
        assert_eq!((f.sport, f.dport, f.proto), (1234, 18000, IPPROTO_UDP));
        assert_eq!(f.src[15], 2);
        assert_eq!(info.udp_payload, Some((106, 4)));
        assert_eq!(&UDP6_EXT[106..], &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn ipv6_later_fragments_too_many_headers_and_truncations() {
        // A non-first fragment (offset 1) carries no UDP header.
        let mut later = UDP6_EXT;
        later[14 + 40 + 8 + 3] = 1 << 3;
        let info = parse_frame(&later).unwrap();
        assert_eq!((info.ethertype, info.flow), (ETHERTYPE_IPV6, None));
        // A chain of n destination options headers (8 B each) before an empty UDP
        // datagram: MAX_IPV6_EXT_HEADERS are walked, one more is malformed.
        let chain = |n: usize| {
            let mut f = UDP6_EXT[..54].to_vec();
            f[14 + 4..14 + 6].copy_from_slice(&((n * 8 + 8) as u16).to_be_bytes());
            f[14 + 6] = IPV6_DEST_OPTS;
            for i in 0..n {
                f.extend_from_slice(&[if i + 1 == n { IPPROTO_UDP } else { IPV6_DEST_OPTS }, 0, 1, 4, 0, 0, 0, 0]);
            }
            f.extend_from_slice(&[0, 1, 0x46, 0x50, 0, 8, 0, 0]);
            f
        };
        let walked = parse_frame(&chain(MAX_IPV6_EXT_HEADERS)).unwrap();
        assert_eq!(walked.udp_payload, Some((54 + 8 * MAX_IPV6_EXT_HEADERS + 8, 0)));
        assert_eq!(parse_frame(&chain(MAX_IPV6_EXT_HEADERS + 1)), Err(Malformed::BadField));
        // An extension header running past the payload length, and every cut of the frame.
        let mut long = UDP6_EXT;
        long[14 + 40 + 8 + 8 + 12 + 1] = 9; // destination options: 80 B
        assert_eq!(parse_frame(&long), Err(Malformed::Truncated));
        for n in 0..UDP6_EXT.len() {
            assert!(parse_frame(&UDP6_EXT[..n]).is_err(), "a cut at {n} is malformed");
        }
        // ESP (50): the transport is encrypted, so no flow.
        let mut esp = UDP6_EXT;
        esp[14 + 6] = 50;
        assert_eq!(parse_frame(&esp).unwrap().flow, None);
    }

    #[test]
    fn ipv6_behind_two_vlan_tags() {
        let mut f = UDP6_EXT[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 200]);
        f.extend_from_slice(&UDP6_EXT[12..]);
        let info = parse_frame(&f).unwrap();
        assert_eq!((info.vlan_tags, info.ethertype), (2, ETHERTYPE_IPV6));
        assert_eq!(info.udp_payload, Some((114, 4)));
    }

    #[test]
    fn vlan_tags_are_walked_and_a_third_is_refused() {
        let mut f = Vec::new();
        f.extend_from_slice(&UDP4[..12]);
        f.extend_from_slice(&[0x88, 0xa8, 0, 5, 0x81, 0x00, 0, 6]);
        f.extend_from_slice(&UDP4[12..]);
        let info = parse_frame(&f).unwrap();
        assert_eq!(info.vlan_tags, 2);
        assert!(info.flow.is_some());
        assert_eq!(info.udp_payload, Some((50, 18)));
        let mut f3 = UDP4[..12].to_vec();
        f3.extend_from_slice(&[0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3]);
        f3.extend_from_slice(&UDP4[12..]);
        assert_eq!(parse_frame(&f3), Err(Malformed::BadField));
    }

    #[test]
    fn truncations_are_malformed_not_panics() {
        for n in 0..UDP4.len() {
            let r = parse_frame(&UDP4[..n]);
            if n < 14 || (14..42).contains(&n) {
                assert!(r.is_err(), "length {n} should be malformed");
            }
        }
        // Wrong lengths: IPv4 total length beyond the buffer, UDP length below 8.
        let mut bad = UDP4;
        bad[17] = 200;
        assert_eq!(parse_frame(&bad), Err(Malformed::Truncated));
        let mut bad = UDP4;
        bad[39] = 4;
        assert_eq!(parse_frame(&bad), Err(Malformed::BadField));
    }

    #[test]
    fn non_ip_frames_have_no_flow() {
        let mut arp = [0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        let info = parse_frame(&arp).unwrap();
        assert_eq!(info.ethertype, 0x0806);
        assert!(info.flow.is_none());
    }

    #[test]
    fn swap_macs_in_place() {
        let mut f = UDP4;
        EthernetFrame::new_checked(&mut f[..]).unwrap().swap_macs();
        assert_eq!(&f[..6], &UDP4[6..12]);
        assert_eq!(&f[6..12], &UDP4[..6]);
    }

    #[test]
    fn flow_hash_separates_ports() {
        let a = FlowKey { sport: 1, ..Default::default() };
        let b = FlowKey { sport: 2, ..Default::default() };
        assert_ne!(a.hash64(), b.hash64());
        assert_eq!(a.hash64(), a.hash64());
    }
}

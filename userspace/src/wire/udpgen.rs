//! Building the generator's UDP frames (IPv4 or IPv6, untagged, 802.1Q or QinQ): a
//! template per (flow, size) built once, then per packet a copy, a stamp and the UDP
//! checksum from the template's precomputed sum plus the stamp's words. IPv4 and UDP
//! checksums are valid (over IPv6 the UDP checksum is mandatory, RFC 8200 8.1), so
//! tshark and the kernel's UDP socket accept the frames.
use std::net::IpAddr;

use super::{
    Malformed, fold_checksum,
    headers::{ETH_HLEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, IPPROTO_UDP},
    ones_sum,
    stamp::{STAMP_LEN, Stamp},
};

/// Ethernet + IPv4 + UDP headers (untagged).
pub const HEADERS_LEN: usize = ETH_HLEN + 20 + 8;
/// Smallest untagged IPv4 frame the generator builds (headers + stamp), without FCS.
pub const MIN_FRAME_LEN: usize = HEADERS_LEN + STAMP_LEN;
/// Offset of the stamp (start of the UDP payload) in an untagged IPv4 frame.
pub const STAMP_OFFSET: usize = HEADERS_LEN;
/// The 4-byte Ethernet FCS the NIC appends: frame sizes on the CLI include it (RFC 2544).
pub const FCS_LEN: usize = 4;
/// Bytes of one VLAN tag (TPID and TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// Up to two VLAN IDs (1 to 4094): none, one 802.1Q tag (TPID 0x8100), or QinQ (an
/// 802.1ad service tag, TPID 0x88a8, outside an 802.1Q customer tag). Parses from
/// `ID` or `OUTER,INNER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanTags {
    ids: [u16; 2],
    len: u8,
}

impl VlanTags {
    /// No tags.
    pub const NONE: VlanTags = VlanTags { ids: [0; 2], len: 0 };

    /// Tags with these IDs, outermost first; at most two, each 1 to 4094 (0 means "no
    /// VLAN" in a priority tag and 4095 is reserved, IEEE 802.1Q 9.6).
    pub fn new(ids: &[u16]) -> Result<Self, String> {
        if ids.len() > 2 {
            return Err(format!("{} VLAN IDs: give at most two (one 802.1Q tag, or QinQ outer,inner)", ids.len()));
        }
        let mut t = Self::NONE;
        for &id in ids {
            if !(1..=4094).contains(&id) {
                return Err(format!("VLAN ID {id}: give 1 to 4094"));
            }
            t.ids[t.len as usize] = id;
            t.len += 1;
        }
        Ok(t)
    }

    /// The IDs, outermost first.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..self.len as usize]
    }

    /// Bytes the tags add to a frame.
    pub fn wire_len(&self) -> usize {
        self.len as usize * VLAN_TAG_LEN
    }
}

impl std::str::FromStr for VlanTags {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ids = s
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("VLAN ID {p:?}: a number from 1 to 4094 (e.g. 100 or 100,200)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(&ids)
    }
}

impl std::fmt::Display for VlanTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.ids().iter().map(|i| i.to_string()).collect();
        f.write_str(&ids.join(","))
    }
}

/// Addresses, ports and tags of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFlow {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source address; IPv4 or IPv6, the same family as `dst_ip`.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// VLAN tags (none for an untagged frame).
    pub vlan: VlanTags,
}

/// Ethernet (with `vlan`'s tags), IPv4 or IPv6, and UDP header bytes: where the stamp
/// starts.
pub fn headers_len(ipv6: bool, vlan: VlanTags) -> usize {
    ETH_HLEN + vlan.wire_len() + if ipv6 { 40 } else { 20 } + 8
}

impl UdpFlow {
    /// Header bytes of this flow's frames ([`headers_len`]): where the stamp starts.
    pub fn headers_len(&self) -> usize {
        headers_len(self.src_ip.is_ipv6(), self.vlan)
    }

    /// The smallest frame of this flow, without FCS: headers and stamp.
    pub fn min_frame_len(&self) -> usize {
        self.headers_len() + STAMP_LEN
    }
}

/// A ready-made frame for one flow and length, stamp zeroed.
#[derive(Clone, Debug)]
pub struct FrameTemplate {
    bytes: Vec<u8>,
    /// Where the stamp starts: right after the UDP header, whose checksum is the two
    /// bytes before it.
    stamp_offset: usize,
    /// One's complement sum of the UDP pseudo-header, header (checksum 0) and payload
    /// with a zero stamp: adding the stamp's sum gives the final checksum.
    udp_base_sum: u32,
    /// The UDP pseudo-header's sum, folded (not complemented): what the checksum field
    /// holds when the kernel or the device fills the checksum in.
    pseudo_seed: u16,
    /// True once [`FrameTemplate::offload_checksum`]: the UDP checksum field holds
    /// `pseudo_seed` in every frame, whatever the stamp.
    offloaded: bool,
}

impl FrameTemplate {
    /// A template of `len` bytes (without FCS). `len` must be at least
    /// [`UdpFlow::min_frame_len`] and leave the IP packet at most 65535 bytes; both
    /// addresses must be of one family.
    pub fn new(flow: &UdpFlow, len: usize) -> Result<Self, Malformed> {
        let l3 = ETH_HLEN + flow.vlan.wire_len();
        if len < flow.min_frame_len() || len - l3 > u16::MAX as usize {
            return Err(Malformed::BadField);
        }
        let mut b = vec![0u8; len];
        b[0..6].copy_from_slice(&flow.dst_mac);
        b[6..12].copy_from_slice(&flow.src_mac);
        let tpids: &[u16] =
            if flow.vlan.ids().len() == 2 { &[ETHERTYPE_QINQ, ETHERTYPE_VLAN] } else { &[ETHERTYPE_VLAN] };
        for (i, (&tpid, &id)) in tpids.iter().zip(flow.vlan.ids()).enumerate() {
            let at = 12 + i * VLAN_TAG_LEN;
            b[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
            b[at + 2..at + 4].copy_from_slice(&id.to_be_bytes()); // PCP 0, DEI 0
        }
        let ip_len = len - l3;
        // Pseudo-header (RFC 768 / RFC 8200 8.1) and the IP header.
        let mut pseudo = [0u8; 40];
        let (ethertype, ip_hlen, pseudo_len) = match (flow.src_ip, flow.dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let ip = &mut b[l3..l3 + 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = 64;
                ip[9] = IPPROTO_UDP;
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(&dst.octets());
                let ip_sum = fold_checksum(ones_sum(ip, 0));
                ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
                pseudo[0..4].copy_from_slice(&src.octets());
                pseudo[4..8].copy_from_slice(&dst.octets());
                pseudo[9] = IPPROTO_UDP;
                pseudo[10..12].copy_from_slice(&((ip_len - 20) as u16).to_be_bytes());
                (ETHERTYPE_IPV4, 20, 12)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = &mut b[l3..l3 + 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
                ip[6] = IPPROTO_UDP;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(&dst.octets());
                pseudo[0..16].copy_from_slice(&src.octets());
                pseudo[16..32].copy_from_slice(&dst.octets());
                pseudo[32..36].copy_from_slice(&((ip_len - 40) as u32).to_be_bytes());
                pseudo[39] = IPPROTO_UDP;
                (ETHERTYPE_IPV6, 40, 40)
            }
            _ => return Err(Malformed::BadField),
        };
        b[l3 - 2..l3].copy_from_slice(&ethertype.to_be_bytes());
        let u = l3 + ip_hlen;
        let udp_len = (ip_len - ip_hlen) as u16;
        b[u..u + 2].copy_from_slice(&flow.src_port.to_be_bytes());
        b[u + 2..u + 4].copy_from_slice(&flow.dst_port.to_be_bytes());
        b[u + 4..u + 6].copy_from_slice(&udp_len.to_be_bytes());
        let stamp_offset = u + 8;
        for (i, x) in b[stamp_offset + STAMP_LEN..].iter_mut().enumerate() {
            *x = i as u8;
        }
        let pseudo_sum = ones_sum(&pseudo[..pseudo_len], 0);
        let udp_base_sum = ones_sum(&b[u..], pseudo_sum);
        let pseudo_seed = !fold_checksum(pseudo_sum);
        let mut t = Self { bytes: b, stamp_offset, udp_base_sum, pseudo_seed, offloaded: false };
        // Leave a valid frame in the template itself (stamp all zero).
        let sum = t.checksum_for(&[0; STAMP_LEN]);
        t.bytes[u + 6..u + 8].copy_from_slice(&sum.to_be_bytes());
        Ok(t)
    }

    /// Hands the UDP checksum to the kernel or the device (AF_XDP TX metadata's
    /// XDP_TXMD_FLAGS_CHECKSUM): from now on every frame's checksum field holds the
    /// pseudo-header sum, as the one filling it in expects (the kernel's selftests seed it
    /// with `~csum_tcpudp_magic(..)` / `~csum_ipv6_magic(..)`, the same value), and the
    /// stamp no longer changes it. Returns the request's (`csum_start`, `csum_offset`):
    /// the UDP header's offset in the frame and the checksum's in the header.
    pub fn offload_checksum(&mut self) -> (u16, u16) {
        self.offloaded = true;
        let u = self.udp_offset();
        self.bytes[u + 6..u + 8].copy_from_slice(&self.pseudo_seed.to_be_bytes());
        (u as u16, 6)
    }

    /// Offset of the UDP header in this template's frames.
    pub fn udp_offset(&self) -> usize {
        self.stamp_offset - 8
    }

    /// Offset of the stamp (the UDP payload) in this template's frames.
    pub fn stamp_offset(&self) -> usize {
        self.stamp_offset
    }

    /// Frame length in bytes, without FCS.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True if the frame has no bytes (never, for a template [`FrameTemplate::new`] built).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The template frame itself: stamp all zero, checksums valid for it.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    #[inline]
    fn checksum_for(&self, stamp: &[u8; STAMP_LEN]) -> u16 {
        if self.offloaded {
            return self.pseudo_seed;
        }
        // The stamp starts 8 bytes into the UDP header: 16-bit aligned, so its words add
        // straight onto the base sum.
        match fold_checksum(ones_sum(stamp, self.udp_base_sum)) {
            // 0 means "no checksum" over IPv4 and is invalid over IPv6; 0xffff is the same
            // sum in one's complement (RFC 768, RFC 8200 8.1).
            0 => 0xffff,
            s => s,
        }
    }

    /// Writes the first `out.len()` bytes of the frame with `stamp` (the first segment of
    /// a multi-buffer frame; it must hold the headers and the stamp, else nothing is
    /// written). Returns the length written.
    #[inline]
    pub fn write_head(&self, out: &mut [u8], stamp: &Stamp) -> usize {
        if out.len() >= self.bytes.len() {
            return self.write(out, stamp);
        }
        let n = out.len();
        let at = self.stamp_offset;
        if n < at + STAMP_LEN {
            return 0;
        }
        out.copy_from_slice(&self.bytes[..n]);
        let mut s = [0u8; STAMP_LEN];
        stamp.emit(&mut s);
        out[at..at + STAMP_LEN].copy_from_slice(&s);
        let sum = self.checksum_for(&s);
        out[at - 2..at].copy_from_slice(&sum.to_be_bytes());
        n
    }

    /// Writes the frame's bytes from `offset` into `out` (a later segment of a
    /// multi-buffer frame: payload only, the stamp is in the first), as many as fit.
    /// Returns the length written.
    #[inline]
    pub fn write_tail(&self, offset: usize, out: &mut [u8]) -> usize {
        let src = self.bytes.get(offset..).unwrap_or(&[]);
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
        n
    }

    /// Writes the frame with `stamp` into `out[..self.len()]`; `out` must be at least that
    /// long. Returns the length written.
    #[inline]
    pub fn write(&self, out: &mut [u8], stamp: &Stamp) -> usize {
        let n = self.bytes.len();
        let Some(dst) = out.get_mut(..n) else { return 0 };
        dst.copy_from_slice(&self.bytes);
        let mut s = [0u8; STAMP_LEN];
        stamp.emit(&mut s);
        let at = self.stamp_offset;
        dst[at..at + STAMP_LEN].copy_from_slice(&s);
        let sum = self.checksum_for(&s);
        dst[at - 2..at].copy_from_slice(&sum.to_be_bytes());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::headers::{Ipv4Packet, Ipv6Packet, UdpPacket, parse_frame};

    fn flow() -> UdpFlow {
        UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 77, 0, 2].into(),
            dst_ip: [10, 77, 0, 1].into(),
            src_port: 10000,
            dst_port: 18000,
            vlan: VlanTags::NONE,
        }
    }

    fn flow6(vlan: &[u16]) -> UdpFlow {
        UdpFlow {
            src_ip: "2001:2:0:1::1".parse().unwrap(),
            dst_ip: "2001:2:0:2::1".parse().unwrap(),
            vlan: VlanTags::new(vlan).unwrap(),
            ..flow()
        }
    }

    /// Full UDP checksum from scratch (IPv4 or IPv6 pseudo-header, after any VLAN
    /// tags), to check the template's precomputed one against.
    fn udp_checksum_ok(frame: &[u8]) -> bool {
        let info = parse_frame(frame).unwrap();
        let l3 = ETH_HLEN + 4 * info.vlan_tags as usize;
        let (pseudo, udp) = if info.ethertype == ETHERTYPE_IPV6 {
            let ip = Ipv6Packet::new_checked(&frame[l3..]).unwrap();
            let udp = &frame[l3 + 40..l3 + 40 + ip.payload().len()];
            let mut p = Vec::new();
            p.extend_from_slice(&ip.src());
            p.extend_from_slice(&ip.dst());
            p.extend_from_slice(&(udp.len() as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
            (p, udp)
        } else {
            let ip = Ipv4Packet::new_checked(&frame[l3..]).unwrap();
            let udp = &frame[l3 + ip.header_len()..l3 + ip.total_len()];
            let mut p = Vec::new();
            p.extend_from_slice(&ip.src());
            p.extend_from_slice(&ip.dst());
            p.extend_from_slice(&[0, IPPROTO_UDP]);
            p.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            (p, udp)
        };
        UdpPacket::new_checked(udp).unwrap().checksum() != 0 && fold_checksum(ones_sum(udp, ones_sum(&pseudo, 0))) == 0
    }

    #[test]
    fn frames_of_every_size_have_valid_checksums_and_stamps() {
        let flows =
            [flow(), flow6(&[]), UdpFlow { vlan: VlanTags::new(&[100]).unwrap(), ..flow() }, flow6(&[100, 200])];
        for spec in flows {
            for len in [spec.min_frame_len(), 60, 61, 124, 566, 1514] {
                let Ok(t) = FrameTemplate::new(&spec, len) else {
                    assert!(len < spec.min_frame_len(), "{spec:?} len {len}");
                    continue;
                };
                let mut buf = vec![0u8; 2048];
                for seq in [0u32, 1, 0xffff_ffff, 12345, 0x5850_5850] {
                    let st = Stamp { flow: 7, seq, tx_ns: 0xdead_beef_0000 + seq as u64 };
                    assert_eq!(t.write(&mut buf, &st), len);
                    let f = &buf[..len];
                    let info = parse_frame(f).unwrap();
                    assert_eq!(info.vlan_tags as usize, spec.vlan.ids().len());
                    if spec.src_ip.is_ipv4() {
                        let ip = Ipv4Packet::new_checked(&f[ETH_HLEN + spec.vlan.wire_len()..]).unwrap();
                        assert!(ip.checksum_ok(), "IPv4 checksum, len {len}");
                    }
                    assert!(udp_checksum_ok(f), "UDP checksum, {spec:?} len {len} seq {seq}");
                    let (off, plen) = info.udp_payload.unwrap();
                    assert_eq!((off, plen), (spec.headers_len(), len - spec.headers_len()));
                    assert_eq!(off, t.stamp_offset());
                    assert_eq!(Stamp::parse(&f[off..off + plen]), Some(st));
                    assert_eq!(info.flow.unwrap().dport, 18000);
                }
            }
        }
    }

    /// The first 70 bytes of an 86-byte QinQ IPv6/UDP template: tags 0x88a8 (100) then
    /// 0x8100 (200), IPv6 payload 24, next header UDP, hop limit 64, UDP length 24. The
    /// checksum bytes (68, 69) are checked from scratch instead.
    const QINQ_UDP6_HEADERS: [u8; 68] = [
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, // macs
        0x88, 0xa8, 0, 100, 0x81, 0x00, 0, 200, 0x86, 0xdd, // tags, ethertype
        0x60, 0, 0, 0, 0, 24, 17, 64, // ipv6
        0x20, 0x01, 0, 0x02, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:2:0:1::1
        0x20, 0x01, 0, 0x02, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x01, // 2001:2:0:2::1
        0x27, 0x10, 0x46, 0x50, 0, 24, // udp ports, length
    ];

    #[test]
    fn construct_qinq_ipv6_fixture() {
        let t = FrameTemplate::new(&flow6(&[100, 200]), 86).unwrap();
        assert_eq!(&t.bytes()[..68], &QINQ_UDP6_HEADERS);
        assert_eq!(t.stamp_offset(), 70);
        assert!(udp_checksum_ok(t.bytes()));
        let one = FrameTemplate::new(&UdpFlow { vlan: VlanTags::new(&[7]).unwrap(), ..flow() }, 64).unwrap();
        assert_eq!(&one.bytes()[12..18], &[0x81, 0x00, 0, 7, 0x08, 0x00]);
    }

    #[test]
    fn vlan_ids_are_validated() {
        assert_eq!("100".parse::<VlanTags>().unwrap().ids(), &[100]);
        assert_eq!("100,200".parse::<VlanTags>().unwrap().ids(), &[100, 200]);
        assert_eq!(" 1 , 4094".parse::<VlanTags>().unwrap().to_string(), "1,4094");
        for bad in ["0", "4095", "1,2,3", "x", "", "100,"] {
            assert!(bad.parse::<VlanTags>().is_err(), "{bad:?} should be refused");
        }
        assert!("4095".parse::<VlanTags>().unwrap_err().contains("1 to 4094"));
        assert!("1,2,3".parse::<VlanTags>().unwrap_err().contains("at most two"));
    }

    #[test]
    fn sizes_out_of_range_and_mixed_families_are_refused() {
        assert!(FrameTemplate::new(&flow(), MIN_FRAME_LEN - 1).is_err());
        assert!(FrameTemplate::new(&flow(), 70000).is_err());
        assert_eq!(flow6(&[100, 200]).min_frame_len(), 86);
        assert!(FrameTemplate::new(&flow6(&[100, 200]), 85).is_err());
        let mixed = UdpFlow { dst_ip: "2001:2::1".parse().unwrap(), ..flow() };
        assert!(FrameTemplate::new(&mixed, 100).is_err());
        let t = FrameTemplate::new(&flow(), 100).unwrap();
        let st = Stamp { flow: 0, seq: 0, tx_ns: 0 };
        assert_eq!(t.write(&mut [0u8; 50], &st), 0, "short buffers are not written");
    }

    #[test]
    fn a_jumbo_frame_written_in_segments_is_the_whole_frame_and_parses_from_its_head() {
        use crate::wire::{Malformed, headers::parse_frame_within};
        for f in [flow(), flow6(&[]), flow6(&[100, 200])] {
            let t = FrameTemplate::new(&f, 9014).unwrap();
            let stamp = Stamp { flow: 3, seq: 99, tx_ns: 12345 };
            let mut whole = vec![0u8; 9014];
            t.write(&mut whole, &stamp);
            // As the generator fills a chain: 3840 B (headers and stamp), 3840, 1334.
            let mut parts = vec![0u8; 9014];
            let (head, rest) = parts.split_at_mut(3840);
            assert_eq!(t.write_head(head, &stamp), 3840);
            let (mid, tail) = rest.split_at_mut(3840);
            assert_eq!(t.write_tail(3840, mid), 3840);
            assert_eq!(t.write_tail(7680, tail), 1334);
            assert_eq!(parts, whole, "the segments make the frame, checksum included");
            assert_eq!(t.write_head(&mut [0u8; 20], &stamp), 0, "a head without room for the stamp");
            // The head alone: truncated as a frame, whole as the start of a 9014 B one.
            assert_eq!(parse_frame(&whole[..3840]).unwrap_err(), Malformed::Truncated);
            let info = parse_frame_within(&whole[..3840], 9014).unwrap();
            let (off, len) = info.udp_payload.unwrap();
            assert_eq!((off, off + len), (t.stamp_offset(), 9014), "the payload runs to the frame's end");
            assert_eq!(Stamp::parse(&whole[off..3840]), Some(stamp));
            assert_eq!(parse_frame_within(&whole[..3840], 9013).unwrap_err(), Malformed::Truncated, "a byte short");
            assert_eq!(parse_frame_within(&whole[..30], 9014).unwrap_err(), Malformed::Truncated, "headers cut");
            assert_eq!(parse_frame_within(&whole, 9014).unwrap().udp_payload, info.udp_payload);
        }
    }

    /// What a device (or the kernel's skb_checksum_help) does with a checksum request:
    /// the one's complement sum from `csum_start` to the end, the field included, folded,
    /// complemented, stored at `csum_start + csum_offset`.
    fn complete_checksum(frame: &mut [u8], (start, off): (u16, u16)) {
        let (start, at) = (start as usize, start as usize + off as usize);
        let sum = fold_checksum(ones_sum(&frame[start..], 0));
        frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn an_offloaded_checksum_is_seeded_with_the_pseudo_header_sum_and_completes_valid() {
        // IPv4 untagged: the seed is ~csum_tcpudp_magic(saddr, daddr, len, UDP, 0), the
        // folded sum of 10.77.0.2, 10.77.0.1, protocol 17 and the UDP length.
        let mut t = FrameTemplate::new(&flow(), 100).unwrap();
        let udp_len: u32 = 100 - 14 - 20;
        let sum = 0x0a4d + 0x0002 + 0x0a4d + 0x0001 + 17 + udp_len;
        let req = t.offload_checksum();
        assert_eq!(req, (34, 6), "csum_start is the UDP header's offset, csum_offset the field's");
        let mut f = vec![0u8; 100];
        for seq in [0u32, 1, 77, u32::MAX] {
            t.write(&mut f, &Stamp { flow: 3, seq, tx_ns: 0x1234_5678_9abc_def0 ^ seq as u64 });
            assert_eq!(u16::from_be_bytes([f[40], f[41]]), sum as u16, "the field holds the seed, whatever the stamp");
            assert!(!udp_checksum_ok(&f), "a seeded frame is not yet valid");
            complete_checksum(&mut f, req);
            assert!(udp_checksum_ok(&f), "completed over the seed it is, seq {seq}");
        }
        // IPv6 in QinQ: the UDP header 14 + 8 + 40 bytes in; multi-buffer heads too.
        let mut t = FrameTemplate::new(&flow6(&[100, 200]), 3000).unwrap();
        let req = t.offload_checksum();
        assert_eq!(req, (62, 6));
        let mut head = vec![0u8; 1000];
        t.write_head(&mut head, &Stamp { flow: 0, seq: 9, tx_ns: 5 });
        let mut whole = head.clone();
        let mut tail = vec![0u8; 2000];
        t.write_tail(1000, &mut tail);
        whole.extend_from_slice(&tail);
        complete_checksum(&mut whole, req);
        assert!(udp_checksum_ok(&whole));
    }
}

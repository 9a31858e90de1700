//! Building the generator's UDP/IPv4 frames: a template per (flow, size) built once, then
//! per packet a copy, a stamp and an incremental UDP checksum. IPv4 and UDP checksums are
//! valid, so tshark and the kernel's UDP socket accept the frames.
use super::{
    Malformed, fold_checksum,
    headers::{ETH_HLEN, ETHERTYPE_IPV4, IPPROTO_UDP},
    ones_sum,
    stamp::{STAMP_LEN, Stamp},
};

/// Ethernet + IPv4 + UDP headers.
pub const HEADERS_LEN: usize = ETH_HLEN + 20 + 8;
/// Smallest frame the generator builds (headers + stamp), without FCS.
pub const MIN_FRAME_LEN: usize = HEADERS_LEN + STAMP_LEN;
/// Offset of the stamp (start of the UDP payload).
pub const STAMP_OFFSET: usize = HEADERS_LEN;
/// The 4-byte Ethernet FCS the NIC appends: frame sizes on the CLI include it (RFC 2544).
pub const FCS_LEN: usize = 4;

/// Addresses and ports of one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFlow {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address.
    pub src_ip: [u8; 4],
    /// Destination IPv4 address.
    pub dst_ip: [u8; 4],
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// A ready-made frame for one flow and length, stamp zeroed.
#[derive(Clone, Debug)]
pub struct FrameTemplate {
    bytes: Vec<u8>,
    /// One's complement sum of the UDP pseudo-header, header (checksum 0) and payload
    /// with a zero stamp: adding the stamp's sum gives the final checksum.
    udp_base_sum: u32,
}

impl FrameTemplate {
    /// A template of `len` bytes (without FCS). `len` must be at least [`MIN_FRAME_LEN`]
    /// and at most 65535 - 20 + 14.
    pub fn new(flow: &UdpFlow, len: usize) -> Result<Self, Malformed> {
        if len < MIN_FRAME_LEN || len - ETH_HLEN > u16::MAX as usize {
            return Err(Malformed::BadField);
        }
        let mut b = vec![0u8; len];
        b[0..6].copy_from_slice(&flow.dst_mac);
        b[6..12].copy_from_slice(&flow.src_mac);
        b[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip_len = (len - ETH_HLEN) as u16;
        let ip = &mut b[ETH_HLEN..ETH_HLEN + 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = IPPROTO_UDP;
        ip[12..16].copy_from_slice(&flow.src_ip);
        ip[16..20].copy_from_slice(&flow.dst_ip);
        let ip_sum = fold_checksum(ones_sum(ip, 0));
        ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
        let udp_len = ip_len - 20;
        let u = ETH_HLEN + 20;
        b[u..u + 2].copy_from_slice(&flow.src_port.to_be_bytes());
        b[u + 2..u + 4].copy_from_slice(&flow.dst_port.to_be_bytes());
        b[u + 4..u + 6].copy_from_slice(&udp_len.to_be_bytes());
        for (i, x) in b[STAMP_OFFSET + STAMP_LEN..].iter_mut().enumerate() {
            *x = i as u8;
        }
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&flow.src_ip);
        pseudo[4..8].copy_from_slice(&flow.dst_ip);
        pseudo[9] = IPPROTO_UDP;
        pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
        let udp_base_sum = ones_sum(&b[u..], ones_sum(&pseudo, 0));
        let mut t = Self { bytes: b, udp_base_sum };
        // Leave a valid frame in the template itself (stamp all zero).
        let sum = t.checksum_for(&[0; STAMP_LEN]);
        t.bytes[u + 6..u + 8].copy_from_slice(&sum.to_be_bytes());
        Ok(t)
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
        // The stamp starts 8 bytes into the UDP header: 16-bit aligned, so its words add
        // straight onto the base sum.
        match fold_checksum(ones_sum(stamp, self.udp_base_sum)) {
            0 => 0xffff, // 0 means "no checksum" in UDP over IPv4
            s => s,
        }
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
        dst[STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN].copy_from_slice(&s);
        let sum = self.checksum_for(&s);
        dst[HEADERS_LEN - 2..HEADERS_LEN].copy_from_slice(&sum.to_be_bytes());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::headers::{Ipv4Packet, UdpPacket, parse_frame};

    fn flow() -> UdpFlow {
        UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 77, 0, 2],
            dst_ip: [10, 77, 0, 1],
            src_port: 10000,
            dst_port: 18000,
        }
    }

    /// Full UDP checksum from scratch, to check the incremental one against.
    fn udp_checksum_ok(frame: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(&frame[ETH_HLEN..]).unwrap();
        let udp = ip.payload();
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&ip.src());
        pseudo[4..8].copy_from_slice(&ip.dst());
        pseudo[9] = IPPROTO_UDP;
        pseudo[10..12].copy_from_slice(&(udp.len() as u16).to_be_bytes());
        fold_checksum(ones_sum(udp, ones_sum(&pseudo, 0))) == 0
    }

    #[test]
    fn frames_of_every_size_have_valid_checksums_and_stamps() {
        for len in [MIN_FRAME_LEN, 60, 61, 124, 566, 1514] {
            let t = FrameTemplate::new(&flow(), len).unwrap();
            let mut buf = vec![0u8; 2048];
            for seq in [0u32, 1, 0xffff_ffff, 12345] {
                let st = Stamp { flow: 7, seq, tx_ns: 0xdead_beef_0000 + seq as u64 };
                assert_eq!(t.write(&mut buf, &st), len);
                let f = &buf[..len];
                let ip = Ipv4Packet::new_checked(&f[ETH_HLEN..]).unwrap();
                assert!(ip.checksum_ok(), "IPv4 checksum, len {len}");
                assert!(udp_checksum_ok(f), "UDP checksum, len {len} seq {seq}");
                let info = parse_frame(f).unwrap();
                let (off, plen) = info.udp_payload.unwrap();
                assert_eq!(plen, len - HEADERS_LEN);
                assert_eq!(Stamp::parse(&f[off..off + plen]), Some(st));
                let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                assert_eq!(udp.dst_port(), 18000);
            }
        }
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        assert!(FrameTemplate::new(&flow(), MIN_FRAME_LEN - 1).is_err());
        assert!(FrameTemplate::new(&flow(), 70000).is_err());
        let t = FrameTemplate::new(&flow(), 100).unwrap();
        let st = Stamp { flow: 0, seq: 0, tx_ns: 0 };
        assert_eq!(t.write(&mut [0u8; 50], &st), 0, "short buffers are not written");
    }
}

//! Property tests ("fuzzing" with proptest) for every parser in `wire`: no input bytes
//! make them panic, and well-formed generated frames always parse back to what was built.
use proptest::prelude::*;

use super::{
    headers::{
        EthernetFrame, IPV6_AH, IPV6_DEST_OPTS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_ROUTING, Ipv4Packet,
        Ipv6ExtHeader, Ipv6Packet, TcpPacket, UdpPacket, ipv6_transport, parse_frame,
    },
    stamp::Stamp,
    udpgen::{FrameTemplate, UdpFlow, VlanTags},
};
use crate::accounting::Accounting;

/// Frames built from plausible headers with random corruption: reaches deeper parser
/// states than uniform random bytes.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x1234]),
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec((0usize..220, any::<u8>()), 0..6),
        0usize..240,
    )
        .prop_map(|(ethertype, tail, flips, cut)| {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
            f.extend_from_slice(&ethertype.to_be_bytes());
            let mut body = tail;
            if let Some(b) = body.first_mut() {
                *b = match ethertype {
                    0x0800 => 0x45,
                    0x86dd => 0x60,
                    _ => *b,
                };
            }
            f.extend(body);
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut.max(1));
            f
        })
}

/// IPv6 frames (maybe VLAN-tagged) whose payload is a chain of extension headers of
/// random kinds and lengths, then a UDP header, with random corruption and cuts: the
/// extension header walk's states.
fn ipv6_ext_chain() -> impl Strategy<Value = Vec<u8>> {
    let kinds =
        prop::sample::select(vec![IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_AH, IPV6_DEST_OPTS, 17, 6, 59]);
    (
        0usize..3,
        prop::collection::vec((kinds, 0u8..4, any::<u16>()), 0..11),
        prop::collection::vec((0usize..260, any::<u8>()), 0..4),
        0usize..300,
    )
        .prop_map(|(tags, chain, flips, cut)| {
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
            for t in 0..tags {
                f.extend_from_slice(&[
                    if t + 1 < tags { 0x88 } else { 0x81 },
                    if t + 1 < tags { 0xa8 } else { 0 },
                    0,
                    5,
                ]);
            }
            f.extend_from_slice(&[0x86, 0xdd]);
            let ip = f.len();
            f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, chain.first().map_or(17, |c| c.0), 64]);
            f.extend_from_slice(&[0; 32]);
            for (i, &(kind, len, frag)) in chain.iter().enumerate() {
                let next = chain.get(i + 1).map_or(17, |c| c.0);
                let n = match kind {
                    IPV6_FRAGMENT => 8,
                    IPV6_AH => (len as usize + 2) * 4,
                    17 | 6 | 59 => 0,
                    _ => (len as usize + 1) * 8,
                };
                if n == 0 {
                    break;
                }
                let mut h = vec![0u8; n];
                h[0] = next;
                h[1] = len;
                h[2..4].copy_from_slice(&frag.to_be_bytes());
                f.extend(h);
            }
            f.extend_from_slice(&[0x27, 0x10, 0x46, 0x50, 0, 24, 0, 0]);
            f.extend_from_slice(&[0x58, 0x50, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]);
            let plen = (f.len() - ip - 40) as u16;
            f[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            f.truncate(cut.max(1));
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        let _ = parse_frame(&bytes);
        let _ = Stamp::parse(&bytes);
        if let Ok(e) = EthernetFrame::new_checked(&bytes[..]) { let _ = (e.dst(), e.src(), e.ethertype(), e.payload().len()); }
        if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) { let _ = (p.src(), p.dst(), p.protocol(), p.checksum_ok(), p.payload().len()); }
        if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) { let _ = (p.src(), p.dst(), p.next_header(), p.payload().len()); }
        if let Some(&kind) = bytes.first()
            && let Ok(h) = Ipv6ExtHeader::new_checked(&bytes[1..], kind) {
                prop_assert!(h.header_len() < bytes.len());
                let _ = (h.next_header(), h.frag_offset());
            }
        if let Some(&next) = bytes.first()
            && let Ok(Some((_, off))) = ipv6_transport(&bytes[1..], next) {
                prop_assert!(off < bytes.len());
            }
        if let Ok(p) = UdpPacket::new_checked(&bytes[..]) { let _ = (p.src_port(), p.dst_port(), p.checksum(), p.payload().len()); }
        if let Ok(p) = TcpPacket::new_checked(&bytes[..]) { let _ = (p.src_port(), p.dst_port()); }
        let mut a = Accounting::new();
        a.observe(&bytes, 0);
    }

    #[test]
    fn parsers_never_panic_on_mutated_frames(f in mutated_frame()) {
        if let Ok(info) = parse_frame(&f)
            && let Some((off, len)) = info.udp_payload {
                prop_assert!(off + len <= f.len());
            }
        let mut a = Accounting::new();
        a.observe(&f, 0);
    }

    #[test]
    fn ipv6_extension_chains_never_panic_and_stay_in_bounds(f in ipv6_ext_chain()) {
        if let Ok(info) = parse_frame(&f)
            && let Some((off, len)) = info.udp_payload {
                prop_assert!(off + len <= f.len());
            }
        let mut a = Accounting::new();
        a.observe(&f, 0);
    }

    #[test]
    fn generated_frames_parse_back(
        extra in 0usize..1450, ipv6: bool, tags in 0usize..3, sport: u16, dport: u16, flow: u16, seq: u32, ts: u64,
    ) {
        let (src_ip, dst_ip) = if ipv6 {
            ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap())
        } else {
            ([10, 1, 2, 3].into(), [10, 3, 2, 1].into())
        };
        let spec = UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip, dst_ip, src_port: sport, dst_port: dport, vlan: VlanTags::new(&[100, 200][..tags]).unwrap(),
        };
        let len = spec.min_frame_len() + extra;
        let t = FrameTemplate::new(&spec, len).unwrap();
        let mut buf = vec![0u8; len];
        let stamp = Stamp { flow, seq, tx_ns: ts };
        prop_assert_eq!(t.write(&mut buf, &stamp), len);
        let info = parse_frame(&buf).unwrap();
        let key = info.flow.unwrap();
        prop_assert_eq!((key.sport, key.dport, key.proto), (sport, dport, 17));
        let (off, plen) = info.udp_payload.unwrap();
        prop_assert_eq!(Stamp::parse(&buf[off..off + plen]), Some(stamp));
        prop_assert_eq!(info.vlan_tags as usize, tags);
        if !ipv6 {
            prop_assert!(Ipv4Packet::new_checked(&buf[14 + 4 * tags..]).unwrap().checksum_ok());
        }
    }
}

//! Property tests ("fuzzing" with proptest) for every parser in `wire`: no input bytes
//! make them panic, and well-formed generated frames always parse back to what was built.
use proptest::prelude::*;

use super::{
    headers::{EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, parse_frame},
    stamp::Stamp,
    udpgen::{FrameTemplate, MIN_FRAME_LEN, UdpFlow},
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        let _ = parse_frame(&bytes);
        let _ = Stamp::parse(&bytes);
        if let Ok(e) = EthernetFrame::new_checked(&bytes[..]) { let _ = (e.dst(), e.src(), e.ethertype(), e.payload().len()); }
        if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) { let _ = (p.src(), p.dst(), p.protocol(), p.checksum_ok(), p.payload().len()); }
        if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) { let _ = (p.src(), p.dst(), p.next_header(), p.payload().len()); }
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
    fn generated_frames_parse_back(len in MIN_FRAME_LEN..1515usize, sport: u16, dport: u16, flow: u16, seq: u32, ts: u64) {
        let spec = UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 1, 2, 3], dst_ip: [10, 3, 2, 1], src_port: sport, dst_port: dport,
        };
        let t = FrameTemplate::new(&spec, len).unwrap();
        let mut buf = vec![0u8; len];
        let stamp = Stamp { flow, seq, tx_ns: ts };
        prop_assert_eq!(t.write(&mut buf, &stamp), len);
        let info = parse_frame(&buf).unwrap();
        let key = info.flow.unwrap();
        prop_assert_eq!((key.sport, key.dport, key.proto), (sport, dport, 17));
        let (off, plen) = info.udp_payload.unwrap();
        prop_assert_eq!(Stamp::parse(&buf[off..off + plen]), Some(stamp));
        prop_assert!(Ipv4Packet::new_checked(&buf[14..]).unwrap().checksum_ok());
    }
}

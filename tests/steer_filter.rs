//! The steering program's filter, run in the kernel on crafted frames (BPF_PROG_RUN, no
//! interface, no traffic): which frames each filter kind steers, through both the
//! one-check fast path (untagged IPv4/UDP) and the general parser (VLAN tags, IPv4
//! options, fragments, IPv6), and that short or odd frames are passed, never misread.
mod common;

use xdp_common::{BENCH_UDP_PORT_HI, BENCH_UDP_PORT_LO};
use xdpipe::{config::SteerFilter, loader::SteerProbe};

const UDP: u8 = 17;
const TCP: u8 = 6;

/// Ethernet header with `tags` (TPID, VLAN id) pushed before `ethertype`, then `l3`.
fn eth(tags: &[(u16, u16)], ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for &(tpid, vid) in tags {
        f.extend(tpid.to_be_bytes());
        f.extend(vid.to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    f.extend(l3);
    f
}

/// IPv4 header of `ihl` 32-bit words (options zero), flags / fragment field `frag`.
fn ipv4(ihl: u8, frag: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let hlen = ihl as usize * 4;
    let mut h = vec![0u8; hlen];
    h[0] = 0x40 | ihl;
    h[2..4].copy_from_slice(&((hlen + l4.len()) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&[10, 0, 0, 2]);
    h[16..20].copy_from_slice(&[10, 0, 0, 1]);
    h.extend(l4);
    h
}

fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h.extend(l4);
    h
}

/// IPv6 whose payload is the extension headers `ext` (kind, length in bytes; each
/// chains to the next, the last to `proto`), then `l4`. A fragment header's offset
/// field is `frag`.
fn ipv6_ext(ext: &[(u8, usize)], frag: u16, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, &(kind, len)) in ext.iter().enumerate() {
        let mut h = vec![0u8; len];
        h[0] = ext.get(i + 1).map_or(proto, |e| e.0);
        h[1] = match kind {
            AH => (len / 4 - 2) as u8,
            FRAGMENT => 0,
            _ => (len / 8 - 1) as u8,
        };
        if kind == FRAGMENT {
            h[2..4].copy_from_slice(&frag.to_be_bytes());
        }
        payload.extend(h);
    }
    payload.extend(l4);
    let mut p = ipv6(ext.first().map_or(proto, |e| e.0), &payload);
    p.truncate(40 + payload.len());
    p
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AH: u8 = 51;
const DEST_OPTS: u8 = 60;

/// A UDP (or TCP: the port sits at the same offset) header to `dport`, 18 bytes payload.
fn l4(dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 8 + 18];
    u[0..2].copy_from_slice(&10000u16.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&26u16.to_be_bytes());
    u
}

fn udp4(dport: u16) -> Vec<u8> {
    eth(&[], 0x0800, &ipv4(5, 0, UDP, &l4(dport)))
}

const DOT1Q: u16 = 0x8100;
const DOT1AD: u16 = 0x88a8;
/// IPv4 "more fragments" flag, and a fragment offset of 185 units (1480 bytes).
const MF: u16 = 0x2000;
const LATER_FRAGMENT: u16 = 185;

fn check(filter: &str, cases: &[(&str, Vec<u8>, bool)]) {
    let f: SteerFilter = filter.parse().unwrap();
    let mut probe = SteerProbe::load(f).unwrap_or_else(|e| panic!("loading the steering program: {e:?}"));
    let mut wrong = Vec::new();
    for (what, frame, want) in cases {
        let got = probe.matches(frame).unwrap_or_else(|e| panic!("{filter}, {what}: {e}"));
        if got != *want {
            wrong.push(format!("{what}: steered {got}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "filter {filter}:\n  {}", wrong.join("\n  "));
}

#[test]
fn the_default_filter_steers_the_bench_ports_only() {
    if !common::privileged() {
        return;
    }
    let (lo, hi) = (BENCH_UDP_PORT_LO, BENCH_UDP_PORT_HI);
    let mid = lo + 100;
    let mut short = udp4(lo);
    short.truncate(14 + 20 + 3); // UDP header cut before the port's second byte
    check(
        "bench",
        &[
            ("UDP to the first bench port", udp4(lo), true),
            ("UDP to the last bench port", udp4(hi), true),
            ("UDP below the range", udp4(lo - 1), false),
            ("UDP above the range", udp4(hi + 1), false),
            ("UDP to port 53", udp4(53), false),
            ("802.1Q-tagged UDP", eth(&[(DOT1Q, 7)], 0x0800, &ipv4(5, 0, UDP, &l4(mid))), true),
            ("802.1Q-tagged UDP off the range", eth(&[(DOT1Q, 7)], 0x0800, &ipv4(5, 0, UDP, &l4(53))), false),
            ("QinQ-tagged UDP", eth(&[(DOT1AD, 1), (DOT1Q, 7)], 0x0800, &ipv4(5, 0, UDP, &l4(mid))), true),
            ("IPv4 with options (IHL 6)", eth(&[], 0x0800, &ipv4(6, 0, UDP, &l4(mid))), true),
            ("IPv4 with options, off the range", eth(&[], 0x0800, &ipv4(6, 0, UDP, &l4(53))), false),
            ("first fragment (MF, offset 0)", eth(&[], 0x0800, &ipv4(5, MF, UDP, &l4(mid))), true),
            ("later fragment (offset 1480)", eth(&[], 0x0800, &ipv4(5, LATER_FRAGMENT, UDP, &l4(mid))), false),
            (
                "later fragment (offset 32768: the field's high byte)",
                eth(&[], 0x0800, &ipv4(5, 0x1000, UDP, &l4(mid))),
                false,
            ),
            ("later fragment, MF too", eth(&[], 0x0800, &ipv4(5, MF | LATER_FRAGMENT, UDP, &l4(mid))), false),
            ("TCP to a bench port", eth(&[], 0x0800, &ipv4(5, 0, TCP, &l4(mid))), false),
            ("IPv6 UDP to a bench port", eth(&[], 0x86dd, &ipv6(UDP, &l4(mid))), true),
            ("IPv6 UDP off the range", eth(&[], 0x86dd, &ipv6(UDP, &l4(53))), false),
            ("IPv6 TCP to a bench port", eth(&[], 0x86dd, &ipv6(TCP, &l4(mid))), false),
            ("802.1Q-tagged IPv6 UDP", eth(&[(DOT1Q, 100)], 0x86dd, &ipv6(UDP, &l4(mid))), true),
            ("QinQ-tagged IPv6 UDP", eth(&[(DOT1AD, 100), (DOT1Q, 200)], 0x86dd, &ipv6(UDP, &l4(mid))), true),
            ("QinQ-tagged IPv6 UDP off the range", eth(&[(DOT1AD, 1), (DOT1Q, 2)], 0x86dd, &ipv6(UDP, &l4(53))), false),
            (
                "IPv6 UDP behind hop-by-hop, routing, fragment (first), AH, destination options",
                eth(
                    &[],
                    0x86dd,
                    &ipv6_ext(
                        &[(HOP_BY_HOP, 8), (ROUTING, 24), (FRAGMENT, 8), (AH, 24), (DEST_OPTS, 16)],
                        1,
                        UDP,
                        &l4(mid),
                    ),
                ),
                true,
            ),
            (
                "the same, off the range",
                eth(&[], 0x86dd, &ipv6_ext(&[(HOP_BY_HOP, 8), (AH, 12), (DEST_OPTS, 16)], 0, UDP, &l4(53))),
                false,
            ),
            (
                "IPv6 later fragment (offset 1480)",
                eth(&[], 0x86dd, &ipv6_ext(&[(FRAGMENT, 8)], 185 << 3, UDP, &l4(mid))),
                false,
            ),
            (
                "8 destination options headers, then UDP",
                eth(&[], 0x86dd, &ipv6_ext(&[(DEST_OPTS, 8); 8], 0, UDP, &l4(mid))),
                true,
            ),
            (
                "9 extension headers: past the bound",
                eth(&[], 0x86dd, &ipv6_ext(&[(DEST_OPTS, 8); 9], 0, UDP, &l4(mid))),
                false,
            ),
            ("IPv6 TCP behind hop-by-hop", eth(&[], 0x86dd, &ipv6_ext(&[(HOP_BY_HOP, 8)], 0, TCP, &l4(mid))), false),
            (
                "IPv6 extension header cut short",
                eth(&[], 0x86dd, &ipv6_ext(&[(HOP_BY_HOP, 8)], 0, UDP, &[])[..42]),
                false,
            ),
            ("EtherType IPv4, version 6 header", eth(&[], 0x0800, &ipv6(UDP, &l4(mid))), false),
            ("ARP", eth(&[], 0x0806, &[0u8; 28]), false),
            ("Ethernet header only", eth(&[], 0x0800, &[]), false),
            ("UDP header cut short", short, false),
        ],
    );
}

#[test]
fn the_other_filter_kinds_steer_what_they_name() {
    if !common::privileged() {
        return;
    }
    let arp = eth(&[], 0x0806, &[0u8; 28]);
    check(
        "all",
        &[("ARP", arp.clone(), true), ("UDP", udp4(53), true), ("Ethernet header only", eth(&[], 0x88b5, &[]), true)],
    );
    check(
        "ethertype:0x88b5",
        &[
            ("local experimental EtherType", eth(&[], 0x88b5, &[0u8; 46]), true),
            ("the same, 802.1Q-tagged", eth(&[(DOT1Q, 3)], 0x88b5, &[0u8; 46]), true),
            ("IPv4", udp4(BENCH_UDP_PORT_LO), false),
            ("ARP", arp, false),
        ],
    );
    check(
        "tcp",
        &[
            ("IPv4 TCP", eth(&[], 0x0800, &ipv4(5, 0, TCP, &l4(80))), true),
            ("IPv6 TCP", eth(&[], 0x86dd, &ipv6(TCP, &l4(80))), true),
            ("IPv6 TCP behind a routing header", eth(&[], 0x86dd, &ipv6_ext(&[(ROUTING, 24)], 0, TCP, &l4(80))), true),
            ("IPv6 UDP behind a routing header", eth(&[], 0x86dd, &ipv6_ext(&[(ROUTING, 24)], 0, UDP, &l4(80))), false),
            ("IPv4 UDP", udp4(80), false),
        ],
    );
    check(
        "udp-dport:53",
        &[
            ("UDP to 53", udp4(53), true),
            ("UDP to 54", udp4(54), false),
            ("tagged UDP to 53", eth(&[(DOT1Q, 9)], 0x0800, &ipv4(5, 0, UDP, &l4(53))), true),
        ],
    );
}

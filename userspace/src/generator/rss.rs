//! Source ports chosen for the receiver's RSS (`gen --rss-of IFACE`).
//!
//! A NIC picks a frame's RX queue by the Toeplitz hash of its addresses and ports under a
//! key of its own: entry `hash % table size` of its indirection table. Sequential source
//! ports differ in their low bits only, and the hash is linear in its input bits, so under
//! a random key (igb, ixgbe, i40e and ice draw one per boot) a few percent of keys put
//! every one of 16 such flows on one queue. Where the receiver is on this machine, its key
//! and table can be read: flow i then gets the first source port of `src_port + i +
//! k * flows` (k = 0, 1, ...) whose hash lands on the receiver's i-th queue (round robin
//! over the queues its table names), and the plan says which queue each flow reaches.
use std::net::IpAddr;

use super::GenError;
use crate::net::ethtool::{self, ETH_RSS_HASH_TOP, RXH_ADDRS_AND_PORTS, RssConfig};

/// The Toeplitz hash of `input` under `key`: for each set input bit i (most significant
/// first), the 32 key bits from bit i on, XORed together. Key bits past its end are 0.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let byte = |i: usize| key.get(i).copied().unwrap_or(0);
    let mut window = u32::from_be_bytes([byte(0), byte(1), byte(2), byte(3)]);
    let mut hash = 0;
    for (i, b) in input.iter().enumerate() {
        let next = byte(i + 4);
        for bit in 0..8 {
            if b & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The hash input of a UDP flow hashed on its addresses and ports: source address,
/// destination address, source port, destination port, in network byte order.
fn tuple(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(36);
    for a in [src, dst] {
        match a {
            IpAddr::V4(a) => v.extend(a.octets()),
            IpAddr::V6(a) => v.extend(a.octets()),
        }
    }
    v.extend(sport.to_be_bytes());
    v.extend(dport.to_be_bytes());
    v
}

/// Where each flow goes: its source port and the RX queue the receiver's RSS gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssPlan {
    /// The RX queues the receiver's indirection table names, ascending.
    pub queues: Vec<u32>,
    /// Each flow's source port.
    pub src_ports: Vec<u16>,
    /// Each flow's RX queue.
    pub rx_queues: Vec<u32>,
}

/// Reads `iface`'s RSS settings and checks that they are a Toeplitz hash of the addresses
/// and both ports of UDP over IPv4 (or IPv6), which is what [`spread`] computes.
pub fn read(iface: &str, ipv6: bool) -> Result<RssConfig, GenError> {
    let why = |why: String| GenError::Rss { iface: iface.into(), why };
    let cfg = ethtool::rss_config(iface).map_err(|e| {
        why(format!("its RSS settings cannot be read ({e}); a device without RSS (veth, a one-queue NIC) has none, so leave --rss-of out"))
    })?;
    if cfg.hfunc != ETH_RSS_HASH_TOP {
        return Err(why(format!(
            "its RSS hash function is not Toeplitz (ETH_RSS_HASH bits {:#x}); set it with `ethtool -X {iface} hfunc toeplitz`, or leave --rss-of out",
            cfg.hfunc
        )));
    }
    if cfg.input_xfrm != 0 {
        return Err(why(format!(
            "it hashes a symmetric transform of addresses and ports (input_xfrm {:#x}); turn it off with `ethtool -X {iface} xfrm none`, or leave --rss-of out",
            cfg.input_xfrm
        )));
    }
    if cfg.key.is_empty() {
        return Err(why("it reports no RSS key, so there is no hash to plan for; leave --rss-of out".into()));
    }
    let family = if ipv6 { "udp6" } else { "udp4" };
    let fields = ethtool::udp_flow_hash(iface, ipv6)
        .map_err(|e| why(format!("its {family} hash fields cannot be read ({e})")))?;
    if fields != RXH_ADDRS_AND_PORTS {
        return Err(why(format!(
            "it hashes {family} on {}, not on the addresses and both ports; set `ethtool -N {iface} rx-flow-hash {family} sdfn`",
            match ethtool::flow_hash_names(fields).join(", ") {
                n if n.is_empty() => "nothing".to_owned(),
                n => n,
            }
        )));
    }
    Ok(cfg)
}

/// Source ports for `flows` flows from `src` to `dst` (destination port `dst_port + i %
/// 256`, as the generator sends them) that put flow i on the i-th queue, round robin, of
/// those `cfg`'s table names: the first of `src_port + i + k * flows`, k = 0, 1, ...
/// (distinct for distinct flows while `k * flows` stays below 65536).
pub fn spread(
    iface: &str,
    cfg: &RssConfig,
    (src, dst): (IpAddr, IpAddr),
    (src_port, dst_port): (u16, u16),
    flows: u16,
) -> Result<RssPlan, GenError> {
    if !cfg.indir.len().is_power_of_two() {
        return Err(GenError::Rss {
            iface: iface.into(),
            why: format!(
                "its indirection table has {} entries, not a power of two, so xdpipe cannot tell which entry a hash picks; leave --rss-of out",
                cfg.indir.len()
            ),
        });
    }
    let mut queues = cfg.indir.clone();
    queues.sort_unstable();
    queues.dedup();
    let tries = 65536 / u32::from(flows.max(1));
    let mut plan =
        RssPlan { queues, src_ports: Vec::with_capacity(flows.into()), rx_queues: Vec::with_capacity(flows.into()) };
    for f in 0..flows {
        let want = plan.queues[usize::from(f) % plan.queues.len()];
        let dport = dst_port.wrapping_add(f % 256);
        let port = (0..tries)
            .map(|k| src_port.wrapping_add(f).wrapping_add((k * u32::from(flows)) as u16))
            .find(|&p| {
                let h = toeplitz(&cfg.key, &tuple(src, dst, p, dport));
                cfg.indir[h as usize % cfg.indir.len()] == want
            })
            .ok_or_else(|| GenError::Rss {
                iface: iface.into(),
                why: format!(
                    "no source port of the {tries} that flow {f} may use puts it on RX queue {want}; give fewer --flows"
                ),
            })?;
        plan.src_ports.push(port);
        plan.rx_queues.push(want);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of Microsoft's RSS verification suite, which NIC datasheets reuse.
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca,
        0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b,
        0xbe, 0xac, 0x01, 0xfa,
    ];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn toeplitz_matches_the_verification_suite() {
        // (source, destination, source port, destination port, hash with ports, without)
        let cases = [
            ("66.9.149.187", "161.142.100.80", 2794, 1766, 0x51cc_c178, 0x323e_8fc2),
            ("199.92.111.2", "65.69.140.83", 14230, 4739, 0xc626_b0ea, 0xd718_262a),
            ("24.19.198.95", "12.22.207.184", 12898, 38024, 0x5c2b_394a, 0xd2d0_a5de),
            ("3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x4020_7d3d, 0x2cc1_8cd5),
        ];
        for (s, d, sp, dp, with, without) in cases {
            let t = tuple(ip(s), ip(d), sp, dp);
            assert_eq!(toeplitz(&MS_KEY, &t), with, "{s}:{sp} -> {d}:{dp}");
            assert_eq!(toeplitz(&MS_KEY, &t[..t.len() - 4]), without, "{s} -> {d}");
        }
    }

    fn cfg(indir: Vec<u32>) -> RssConfig {
        RssConfig { hfunc: ETH_RSS_HASH_TOP, input_xfrm: 0, key: MS_KEY.to_vec(), indir }
    }

    #[test]
    fn each_flow_lands_on_its_queue_round_robin() {
        // igb's layout: entry j on queue j * 4 / 128.
        let c = cfg((0..128).map(|j| j * 4 / 128).collect());
        let ends = (ip("10.78.0.1"), ip("10.78.0.2"));
        let p = spread("igb1", &c, ends, (10000, 18000), 16).unwrap();
        assert_eq!(p.queues, [0, 1, 2, 3]);
        assert_eq!(p.rx_queues, (0..16).map(|f| f % 4).collect::<Vec<u32>>());
        for (f, (&sp, &q)) in p.src_ports.iter().zip(&p.rx_queues).enumerate() {
            let h = toeplitz(&MS_KEY, &tuple(ends.0, ends.1, sp, 18000 + f as u16));
            assert_eq!(c.indir[h as usize % 128], q, "flow {f}, port {sp}");
            assert_eq!((sp - 10000) % 16, f as u16, "flow {f} searches its own ports: {sp}");
        }
        let mut ports = p.src_ports.clone();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 16, "{:?}", p.src_ports);
    }

    #[test]
    fn a_queue_no_port_reaches_is_an_error_naming_the_flow() {
        // Queue 7 holds one entry of 2^16, and each of 60000 flows has one port to try.
        let mut indir = vec![0; 1 << 16];
        indir[12345] = 7;
        let e = spread("nic0", &cfg(indir), (ip("10.0.0.1"), ip("10.0.0.2")), (1, 2), 60000).unwrap_err();
        assert!(e.to_string().contains("flow 1 ") && e.to_string().contains("RX queue 7"), "{e}");
    }
}

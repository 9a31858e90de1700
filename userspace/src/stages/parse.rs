//! `parse`: walk every frame's headers with the zero-copy views, count it per flow
//! (5-tuple hash) and count malformed frames, then drop it. A fixed open-addressing
//! table, allocated once (on the worker's thread), holds the flows; flows beyond its
//! capacity are counted as overflow.
use serde::Serialize;

use crate::{
    pipeline::{Batch, Stage},
    wire::headers::{IPPROTO_TCP, IPPROTO_UDP, parse_frame_within},
};

const TABLE_SLOTS: usize = 1 << 16;
const PROBES: usize = 8;

/// The `parse` stage (see the module docs).
pub struct Parse {
    /// (hash, packets); hash 0 marks an empty slot.
    table: Vec<(u64, u64)>,
    summary: ParseSummary,
}

/// What `parse` saw on one queue (or, folded with [`Parse::add`], on all).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ParseSummary {
    /// Frames looked at.
    pub frames: u64,
    /// Frames whose headers are cut short or inconsistent.
    pub malformed: u64,
    /// UDP frames.
    pub udp: u64,
    /// TCP frames.
    pub tcp: u64,
    /// Well-formed frames without a UDP/TCP 5-tuple (ARP, ICMP, fragments, ...).
    pub other: u64,
    /// Frames with at least one 802.1Q / 802.1ad tag.
    pub vlan_tagged: u64,
    /// Distinct 5-tuples seen.
    pub flows: u64,
    /// Frames of flows that found no free slot in the flow table.
    pub flow_table_overflow: u64,
    /// Packets of the busiest flow.
    pub top_flow_packets: u64,
}

impl Default for Parse {
    fn default() -> Self {
        Self { table: vec![(0, 0); TABLE_SLOTS], summary: ParseSummary::default() }
    }
}

impl Parse {
    #[inline]
    fn count_flow(&mut self, hash: u64) {
        let h = hash | 1;
        let start = (h as usize) & (TABLE_SLOTS - 1);
        for i in 0..PROBES {
            let slot = &mut self.table[(start + i) & (TABLE_SLOTS - 1)];
            if slot.0 == h {
                slot.1 += 1;
                return;
            }
            if slot.0 == 0 {
                *slot = (h, 1);
                self.summary.flows += 1;
                return;
            }
        }
        self.summary.flow_table_overflow += 1;
    }

    /// The figures so far (fills in the busiest flow).
    pub fn summary(&mut self) -> ParseSummary {
        self.summary.top_flow_packets = self.table.iter().map(|s| s.1).max().unwrap_or(0);
        self.summary
    }

    /// Folds another worker's figures in (flows may be counted once per worker).
    pub fn add(a: &mut ParseSummary, b: &ParseSummary) {
        a.frames += b.frames;
        a.malformed += b.malformed;
        a.udp += b.udp;
        a.tcp += b.tcp;
        a.other += b.other;
        a.vlan_tagged += b.vlan_tagged;
        a.flows += b.flows;
        a.flow_table_overflow += b.flow_table_overflow;
        a.top_flow_packets = a.top_flow_packets.max(b.top_flow_packets);
    }
}

impl Stage for Parse {
    type Summary = ParseSummary;
    const TRANSMITS: bool = false;

    #[inline]
    fn on_batch(&mut self, batch: &mut Batch<'_>) {
        for frame in batch.frames() {
            self.observe_within(frame.bytes(), frame.len());
        }
    }

    fn finish(mut self) -> ParseSummary {
        self.summary()
    }
}

impl Parse {
    /// Counts one frame.
    #[inline]
    pub fn observe(&mut self, frame: &[u8]) {
        self.observe_within(frame, frame.len());
    }

    /// Counts one frame of `frame_len` bytes of which `head` is the first segment (a
    /// multi-buffer frame; its headers must lie in `head`).
    #[inline]
    pub fn observe_within(&mut self, head: &[u8], frame_len: usize) {
        self.summary.frames += 1;
        match parse_frame_within(head, frame_len) {
            Err(_) => self.summary.malformed += 1,
            Ok(info) => {
                if info.vlan_tags > 0 {
                    self.summary.vlan_tagged += 1;
                }
                match info.flow {
                    Some(f) => {
                        match f.proto {
                            IPPROTO_UDP => self.summary.udp += 1,
                            IPPROTO_TCP => self.summary.tcp += 1,
                            _ => {}
                        }
                        self.count_flow(f.hash64());
                    }
                    None => self.summary.other += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        stamp::Stamp,
        udpgen::{FrameTemplate, UdpFlow, VlanTags},
    };

    fn frame(sport: u16) -> Vec<u8> {
        let flow = UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 0, 0, 1].into(),
            dst_ip: [10, 0, 0, 2].into(),
            src_port: sport,
            dst_port: 18000,
            vlan: VlanTags::NONE,
        };
        let t = FrameTemplate::new(&flow, 60).unwrap();
        let mut b = vec![0u8; 60];
        t.write(&mut b, &Stamp { flow: 0, seq: 0, tx_ns: 0 });
        b
    }

    #[test]
    fn counts_flows_and_malformed() {
        let mut p = Parse::default();
        for sport in [1, 2, 3, 1, 1] {
            p.observe(&frame(sport));
        }
        let mut runt = vec![0u8; 20];
        runt[12] = 0x08;
        p.observe(&runt);
        let mut truncated = frame(9);
        truncated.truncate(40);
        p.observe(&truncated);
        let s = p.summary();
        assert_eq!((s.frames, s.udp, s.flows, s.malformed, s.top_flow_packets), (7, 5, 3, 2, 3));
    }

    #[test]
    fn counts_ipv6_and_tagged_frames_as_udp_flows() {
        let mut p = Parse::default();
        for (vlan, ip6) in [(&[][..], false), (&[100][..], true), (&[100, 200][..], true), (&[7, 8][..], false)] {
            let (src_ip, dst_ip) = if ip6 {
                ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap())
            } else {
                ([10, 0, 0, 1].into(), [10, 0, 0, 2].into())
            };
            let flow = UdpFlow {
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 0, 2],
                src_ip,
                dst_ip,
                src_port: 1,
                dst_port: 18000,
                vlan: VlanTags::new(vlan).unwrap(),
            };
            let t = FrameTemplate::new(&flow, 128).unwrap();
            p.observe(t.bytes());
        }
        let s = p.summary();
        // IPv4 with and without tags is one 5-tuple; IPv6 another.
        assert_eq!((s.frames, s.udp, s.vlan_tagged, s.malformed, s.other, s.flows), (4, 4, 3, 0, 0, 2));
    }
}

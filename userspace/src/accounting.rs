//! Receive-side accounting from the generator's stamps: per-flow loss and reordering from
//! sequence numbers, one-way latency into an HDR histogram (sender and receiver share
//! CLOCK_MONOTONIC when both run on one host). All memory is allocated up front; `observe`
//! does no allocation, syscall or logging.
//!
//! With the XDP RX metadata the steering program writes in front of each frame
//! ([`xdp_common::RxMeta`]), also: latency from the device's own receive timestamp, and
//! the receive hash checked per flow: one flow keeps one hash, and one (flow, hash) stays
//! on one queue. That second check is what RSS promises on a NIC (the queue is a
//! function of the hash, whatever the indirection table); on veth, where the queue is the
//! sender's TX queue and not chosen by hash, it checks that each flow came in on one
//! queue. Mismatches are counted, never fatal.
use hdrhistogram::Histogram;
use serde::Serialize;
use xdp_common::{RX_META_TIMESTAMP, RxMeta};

use crate::wire::{headers::parse_frame_within, stamp::Stamp};

/// Flow ids are u16: one slot each, allocated once.
const FLOW_SLOTS: usize = 1 << 16;

/// How far below a flow's highest sequence number a duplicate is still recognised.
pub const DUPLICATE_WINDOW: u64 = 64;

#[derive(Clone, Copy, Default)]
struct FlowSeq {
    /// Highest sequence seen + 1, extended past the stamp's 32 bits (each wrap adds 2^32),
    /// so loss is still counted after a flow's sequence wrapped.
    next: u64,
    /// Distinct frames received.
    received: u64,
    reordered: u64,
    /// Frames whose sequence number had already arrived (not in `received`).
    duplicates: u64,
    /// Bit i: sequence `next - 1 - i` arrived.
    window: u64,
    seen: bool,
    /// The flow's first RX hash, and the queue it came in on.
    hash: u32,
    hash_queue: u32,
    hashed: bool,
}

impl FlowSeq {
    /// The 64-bit sequence number a 32-bit `seq` stands for: the one nearest the highest
    /// seen (serial-number arithmetic; right while a flow never jumps 2^31 at once).
    #[inline]
    fn extend(&self, seq: u32) -> u64 {
        let top = self.next.wrapping_sub(1);
        let delta = seq.wrapping_sub(top as u32) as i32 as i64;
        (top as i64).wrapping_add(delta).max(0) as u64
    }

    /// Counts sequence `seq` (extended).
    #[inline]
    fn arrive(&mut self, seq: u64) {
        if !self.seen || seq >= self.next {
            let shift = if self.seen { seq + 1 - self.next } else { DUPLICATE_WINDOW };
            self.window = if shift >= DUPLICATE_WINDOW { 0 } else { self.window << shift } | 1;
            self.next = seq + 1;
            self.seen = true;
            self.received += 1;
            return;
        }
        let below = self.next - 1 - seq;
        if below < DUPLICATE_WINDOW {
            if self.window & (1 << below) != 0 {
                self.duplicates += 1;
                return;
            }
            self.window |= 1 << below;
        }
        self.received += 1;
        self.reordered += 1;
    }
}

/// One receiver's view of the generator's stamps: per-flow sequence state and a latency
/// histogram. Workers each keep one and [`Accounting::merge`] them.
pub struct Accounting {
    flows: Vec<FlowSeq>,
    latency: Histogram<u64>,
    device_latency: Histogram<u64>,
    stamped: u64,
    unstamped: u64,
    /// The RX queue this worker receives on (for the hash check).
    queue: u32,
    /// Whether the receive loop reads each frame's metadata area (asked for).
    reads_meta: bool,
    meta: RxMetaSummary,
}

/// What the clock of [`AccountingSummary::latency_ns`] is.
pub const LATENCY_CLOCK: &str =
    "CLOCK_MONOTONIC: the worker's clock read for each RX batch minus the sender's CLOCK_MONOTONIC stamp";

/// What the clock of [`RxMetaSummary::device_latency_ns`] is.
pub const DEVICE_LATENCY_CLOCK: &str = "the device's RX timestamp (XDP RX metadata) minus the sender's \
     CLOCK_MONOTONIC stamp; only timestamps that fall between the send and the worker's read on CLOCK_MONOTONIC \
     are used (others are counted in timestamps_other_clock)";

/// A device RX timestamp further than this before the worker's read is taken for
/// another clock (a NIC's PHC, say), not CLOCK_MONOTONIC.
pub const DEVICE_CLOCK_WINDOW_NS: u64 = 10_000_000_000;

/// The XDP RX metadata of the frames received (with stamps or not).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RxMetaSummary {
    /// Frames that carried the steering program's metadata area.
    pub frames: u64,
    /// Of those, frames with a device RX timestamp (non-zero).
    pub timestamps: u64,
    /// Timestamps not on CLOCK_MONOTONIC (after the worker's read, or more than
    /// [`DEVICE_CLOCK_WINDOW_NS`] before it): not used for latency.
    pub timestamps_other_clock: u64,
    /// Frames whose driver answered the timestamp kfunc with 0: no timestamp (veth
    /// returns the skb's hardware timestamp, which nothing sets on a veth).
    pub timestamps_zero: u64,
    /// Frames with an RX hash.
    pub hashes: u64,
    /// Frames with a stripped VLAN tag.
    pub vlan_tags: u64,
    /// Stamped frames whose hash differed from their flow's first hash.
    pub hash_changed_in_flow: u64,
    /// Stamped frames with their flow's hash that came in on another queue than the
    /// flow's first frame (RSS would have put them on the same queue).
    pub hash_on_other_queue: u64,
    /// Sender to device receive, ns, from timed frames with a CLOCK_MONOTONIC timestamp.
    pub device_latency_ns: Option<LatencySummary>,
    /// [`DEVICE_LATENCY_CLOCK`].
    pub device_latency_clock: &'static str,
}

/// Loss, order and latency over a run.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct AccountingSummary {
    /// Frames that carried an xdpipe stamp.
    pub stamped: u64,
    /// Frames without one (not from xdpipe gen).
    pub unstamped: u64,
    /// Flows with at least one stamped frame received.
    pub flows: u64,
    /// Sequence numbers never seen below each flow's highest (a lower bound on loss:
    /// frames lost after a flow's last received one are only visible to the sender).
    pub lost_in_sequence: u64,
    /// Frames that arrived after a higher sequence number of their flow.
    pub reordered: u64,
    /// Frames whose flow and sequence number had already arrived (within
    /// [`DUPLICATE_WINDOW`] of the flow's highest), counted apart: not in `stamped`'s
    /// distinct frames, not in `reordered`, and not offsetting loss.
    pub duplicates: u64,
    /// One-way latency, receive time minus the stamp's `tx_ns`, ns; None if no timed frame
    /// arrived.
    pub latency_ns: Option<LatencySummary>,
    /// [`LATENCY_CLOCK`]: which clocks `latency_ns` subtracts.
    pub latency_clock: &'static str,
    /// The frames' XDP RX metadata; None if no frame carried any (skb mode, or a program
    /// not bound to the device still writes the area, with no values).
    pub rx_metadata: Option<RxMetaSummary>,
}

/// A latency distribution in nanoseconds (HDR histogram, 3 significant digits).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Lowest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Highest.
    pub max: u64,
    /// Frames timed: a non-zero `tx_ns` no later than the receive time.
    pub samples: u64,
}

impl Default for Accounting {
    fn default() -> Self {
        Self::new()
    }
}

impl Accounting {
    /// Empty accounting, all memory allocated now: a slot for each of the 65536 flow ids and
    /// histograms of 1 ns to 100 s.
    pub fn new() -> Self {
        Self::for_queue(0)
    }

    /// As [`Accounting::new`], for a worker receiving on RX queue `queue`.
    pub fn for_queue(queue: u32) -> Self {
        // 1 ns to 100 s at 3 significant digits.
        let histogram = || Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("static histogram bounds");
        Self {
            flows: vec![FlowSeq::default(); FLOW_SLOTS],
            latency: histogram(),
            device_latency: histogram(),
            stamped: 0,
            unstamped: 0,
            queue,
            reads_meta: false,
            meta: RxMetaSummary::default(),
        }
    }

    /// Whether the receive loop hands each frame's XDP RX metadata area to
    /// [`Accounting::observe_rx`] (when the pipeline asked the program to write one):
    /// reading it touches a cache line in front of the frame.
    pub fn reading_rx_metadata(mut self, on: bool) -> Self {
        self.reads_meta = on;
        self
    }

    /// See [`Accounting::reading_rx_metadata`].
    #[inline]
    pub fn reads_rx_metadata(&self) -> bool {
        self.reads_meta
    }

    /// Looks for a stamp in `frame`; `now_ns` is the batch's receive time.
    #[inline]
    pub fn observe(&mut self, frame: &[u8], now_ns: u64) {
        self.observe_rx(frame, frame.len(), None, now_ns)
    }

    /// As [`Accounting::observe`], for a frame of `frame_len` bytes of which `head` is the
    /// first segment (a multi-buffer frame): the headers and the stamp must lie in `head`.
    #[inline]
    pub fn observe_within(&mut self, head: &[u8], frame_len: usize, now_ns: u64) {
        self.observe_rx(head, frame_len, None, now_ns)
    }

    /// As [`Accounting::observe_within`], with the frame's XDP RX metadata, if it had any.
    #[inline]
    pub fn observe_rx(&mut self, head: &[u8], frame_len: usize, meta: Option<RxMeta>, now_ns: u64) {
        let stamp = parse_frame_within(head, frame_len)
            .ok()
            .and_then(|i| i.udp_payload)
            .and_then(|(off, len)| head.get(off..(off + len).min(head.len())))
            .and_then(Stamp::parse);
        if let Some(m) = &meta {
            self.meta.frames += 1;
            self.meta.hashes += m.hash().is_some() as u64;
            self.meta.vlan_tags += m.vlan().is_some() as u64;
            self.meta.timestamps_zero += (m.flags & RX_META_TIMESTAMP != 0 && m.rx_timestamp == 0) as u64;
        }
        match stamp {
            Some(s) => {
                self.record(&s, now_ns);
                if let Some(m) = &meta {
                    self.record_meta(&s, m, now_ns);
                }
            }
            None => {
                self.unstamped += 1;
                if let Some(ts) = meta.as_ref().and_then(RxMeta::timestamp) {
                    self.meta.timestamps += 1;
                    self.meta.timestamps_other_clock += !on_monotonic(ts, now_ns) as u64;
                }
            }
        }
    }

    /// The metadata part of a stamped frame: its device latency and its hash check.
    #[inline]
    fn record_meta(&mut self, s: &Stamp, m: &RxMeta, now_ns: u64) {
        if let Some(ts) = m.timestamp() {
            self.meta.timestamps += 1;
            if !on_monotonic(ts, now_ns) {
                self.meta.timestamps_other_clock += 1;
            } else if s.tx_ns != 0 && ts >= s.tx_ns {
                self.device_latency.saturating_record(ts - s.tx_ns);
            }
        }
        if let Some((hash, _)) = m.hash() {
            let f = &mut self.flows[s.flow as usize];
            if !f.hashed {
                (f.hash, f.hash_queue, f.hashed) = (hash, self.queue, true);
            } else if f.hash != hash {
                self.meta.hash_changed_in_flow += 1;
            } else if f.hash_queue != self.queue {
                self.meta.hash_on_other_queue += 1;
            }
        }
    }

    /// Counts a received stamp `s` against its flow; `now_ns` (CLOCK_MONOTONIC) is its receive
    /// time, for the latency of a timed frame.
    #[inline]
    pub fn record(&mut self, s: &Stamp, now_ns: u64) {
        self.stamped += 1;
        let f = &mut self.flows[s.flow as usize];
        let seq = if f.seen { f.extend(s.seq) } else { s.seq as u64 };
        f.arrive(seq);
        // A send time of 0: the frame was not timed (the in-kernel generator times one
        // frame in xdp_common::GEN_TIME_EVERY).
        if s.tx_ns != 0 && now_ns >= s.tx_ns {
            self.latency.saturating_record(now_ns - s.tx_ns);
        }
    }

    /// Folds another worker's accounting into this one.
    pub fn merge(&mut self, other: &Accounting) {
        self.stamped += other.stamped;
        self.unstamped += other.unstamped;
        let m = &mut self.meta;
        let o = &other.meta;
        m.frames += o.frames;
        m.timestamps += o.timestamps;
        m.timestamps_other_clock += o.timestamps_other_clock;
        m.timestamps_zero += o.timestamps_zero;
        m.hashes += o.hashes;
        m.vlan_tags += o.vlan_tags;
        m.hash_changed_in_flow += o.hash_changed_in_flow;
        m.hash_on_other_queue += o.hash_on_other_queue;
        for (a, b) in self.flows.iter_mut().zip(&other.flows) {
            if b.hashed {
                if !a.hashed {
                    (a.hash, a.hash_queue, a.hashed) = (b.hash, b.hash_queue, true);
                } else if a.hash != b.hash {
                    m.hash_changed_in_flow += 1;
                } else if a.hash_queue != b.hash_queue {
                    m.hash_on_other_queue += 1;
                }
            }
            if !b.seen {
                continue;
            }
            // Windows aligned on the higher `next`. A frame both workers received (one
            // flow on two queues) is a duplicate: recognised where both windows hold it,
            // and beyond them as distinct frames past the highest sequence.
            let (aw, bw) = if !a.seen {
                (0, b.window)
            } else if b.next > a.next {
                let shift = b.next - a.next;
                (if shift >= DUPLICATE_WINDOW { 0 } else { a.window << shift }, b.window)
            } else {
                let shift = a.next - b.next;
                (a.window, if shift >= DUPLICATE_WINDOW { 0 } else { b.window << shift })
            };
            let both = (aw & bw).count_ones() as u64;
            a.window = aw | bw;
            a.next = a.next.max(b.next);
            a.seen = true;
            a.received += b.received - both.min(b.received);
            a.reordered += b.reordered;
            a.duplicates += b.duplicates + both;
            let beyond = a.received.saturating_sub(a.next);
            a.received -= beyond;
            a.duplicates += beyond;
        }
        let _ = self.latency.add(&other.latency);
        let _ = self.device_latency.add(&other.device_latency);
    }

    /// Loss, order and latency over everything recorded or merged so far.
    pub fn summary(&self) -> AccountingSummary {
        let mut s = AccountingSummary {
            stamped: self.stamped,
            unstamped: self.unstamped,
            latency_clock: LATENCY_CLOCK,
            ..Default::default()
        };
        for f in self.flows.iter().filter(|f| f.seen) {
            s.flows += 1;
            s.lost_in_sequence += f.next.saturating_sub(f.received);
            s.reordered += f.reordered;
            s.duplicates += f.duplicates;
        }
        s.latency_ns = latency_summary(&self.latency);
        if self.meta.frames > 0 {
            s.rx_metadata = Some(RxMetaSummary {
                device_latency_ns: latency_summary(&self.device_latency),
                device_latency_clock: DEVICE_LATENCY_CLOCK,
                ..self.meta.clone()
            });
        }
        s
    }
}

/// True if a device timestamp `ts` reads as CLOCK_MONOTONIC: not after the worker's read
/// `now_ns`, and at most [`DEVICE_CLOCK_WINDOW_NS`] before it.
#[inline]
fn on_monotonic(ts: u64, now_ns: u64) -> bool {
    ts <= now_ns && now_ns - ts <= DEVICE_CLOCK_WINDOW_NS
}

fn latency_summary(h: &Histogram<u64>) -> Option<LatencySummary> {
    (!h.is_empty()).then(|| LatencySummary {
        min: h.min(),
        mean: h.mean(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        samples: h.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(flow: u16, seq: u32, tx_ns: u64) -> Stamp {
        Stamp { flow, seq, tx_ns }
    }

    #[test]
    fn in_order_flows_lose_nothing() {
        let mut a = Accounting::new();
        for seq in 0..100 {
            a.record(&st(0, seq, 1000), 1500);
            a.record(&st(1, seq, 1000), 3000);
        }
        let s = a.summary();
        assert_eq!((s.stamped, s.flows, s.lost_in_sequence, s.reordered), (200, 2, 0, 0));
        let l = s.latency_ns.unwrap();
        assert_eq!(l.samples, 200);
        assert!(l.min >= 499 && l.min <= 501 && l.max >= 1999 && l.max <= 2001, "{l:?}");
    }

    #[test]
    fn gaps_count_as_loss_and_late_frames_as_reordered() {
        let mut a = Accounting::new();
        for seq in [0, 1, 2, 5, 6, 3, 9] {
            a.record(&st(4, seq, 0), 10);
        }
        let s = a.summary();
        // Highest 9 -> 10 expected, 7 received.
        assert_eq!(s.lost_in_sequence, 3);
        assert_eq!(s.reordered, 1);
    }

    #[test]
    fn sequence_wraps() {
        let mut a = Accounting::new();
        for seq in [u32::MAX - 1, u32::MAX, 0, 1] {
            a.record(&st(0, seq, 0), 1);
        }
        assert_eq!(a.summary().reordered, 0);
    }

    #[test]
    fn loss_after_a_wrap_is_still_counted() {
        let mut a = Accounting::new();
        // 2^32 - 2 frames "before" (seq starts at u32::MAX - 1: that many counted lost),
        // then seq 1 missing after the wrap.
        for seq in [u32::MAX - 1, u32::MAX, 0, 2, 3] {
            a.record(&st(0, seq, 0), 1);
        }
        let s = a.summary();
        assert_eq!((s.reordered, s.duplicates), (0, 0));
        assert_eq!(s.lost_in_sequence, (u32::MAX as u64 - 1) + 1, "the frames before the first and seq 1");
        // A flow that starts at 0 and runs past 2^32 loses nothing when nothing is lost.
        let mut f = FlowSeq::default();
        for seq in (0..8u64).map(|i| (1u64 << 32) - 4 + i) {
            let ext = if f.seen { f.extend(seq as u32) } else { seq };
            f.arrive(ext);
        }
        assert_eq!((f.next, f.received, f.reordered), ((1u64 << 32) + 4, 8, 0));
    }

    #[test]
    fn duplicates_are_counted_apart() {
        let mut a = Accounting::new();
        for seq in [0, 1, 1, 2, 0, 5, 3, 3, 5] {
            a.record(&st(7, seq, 0), 1);
        }
        let s = a.summary();
        // Distinct: 0 1 2 5 3; duplicates: 1, 0, 3, 5; late: 3; lost: 4.
        assert_eq!((s.stamped, s.duplicates, s.reordered, s.lost_in_sequence), (9, 4, 1, 1));
        // A duplicate across a wrap too.
        let mut a = Accounting::new();
        for seq in [u32::MAX, 0, u32::MAX] {
            a.record(&st(0, seq, 0), 1);
        }
        assert_eq!(a.summary().duplicates, 1);
    }

    #[test]
    fn merge_adds_workers() {
        let mut a = Accounting::new();
        let mut b = Accounting::new();
        a.record(&st(0, 0, 0), 5);
        b.record(&st(0, 1, 0), 7);
        b.record(&st(2, 0, 0), 7);
        a.merge(&b);
        let s = a.summary();
        assert_eq!((s.stamped, s.flows, s.lost_in_sequence), (3, 2, 0));
    }

    #[test]
    fn merge_finds_a_frame_two_workers_both_received() {
        // One flow on two queues: both saw 0..10 (in the windows), and one also 10..100.
        let (mut a, mut b) = (Accounting::new(), Accounting::new());
        for seq in 0..10 {
            a.record(&st(3, seq, 0), 1);
            b.record(&st(3, seq, 0), 1);
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!((s.duplicates, s.lost_in_sequence), (10, 0), "{s:?}");
        // Beyond the window: b's 0..10 lie 90 behind a's highest; 10 distinct frames too
        // many for sequence 0..100.
        let (mut a, mut b) = (Accounting::new(), Accounting::new());
        for seq in 0..100 {
            a.record(&st(3, seq, 0), 1);
        }
        for seq in 0..10 {
            b.record(&st(3, seq, 0), 1);
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!((s.duplicates, s.lost_in_sequence), (10, 0), "{s:?}");
        // Disjoint halves of one flow: no duplicate, no loss; b merged in first works too.
        let (mut a, mut b, mut m) = (Accounting::new(), Accounting::new(), Accounting::new());
        for seq in 0..50 {
            a.record(&st(3, seq * 2, 0), 1);
            b.record(&st(3, seq * 2 + 1, 0), 1);
        }
        m.merge(&b);
        m.merge(&a);
        let s = m.summary();
        assert_eq!((s.duplicates, s.lost_in_sequence, s.flows), (0, 0, 1), "{s:?}");
    }

    #[test]
    fn untimed_frames_count_for_loss_but_not_latency() {
        let mut a = Accounting::new();
        for seq in 0..64 {
            a.record(&st(0, seq, if seq == 0 { 100 } else { 0 }), 400);
        }
        let s = a.summary();
        assert_eq!((s.stamped, s.lost_in_sequence), (64, 0));
        let l = s.latency_ns.unwrap();
        assert_eq!(l.samples, 1, "{l:?}");
        assert!(l.max >= 299 && l.max <= 301, "{l:?}");
    }

    fn meta(ts: u64, hash: Option<u32>) -> RxMeta {
        let mut flags = xdp_common::RX_META_TIMESTAMP;
        if hash.is_some() {
            flags |= xdp_common::RX_META_HASH;
        }
        RxMeta {
            rx_timestamp: ts,
            rx_hash: hash.unwrap_or(0),
            flags,
            magic: xdp_common::RX_META_MAGIC,
            ..RxMeta::default()
        }
    }

    #[test]
    fn device_timestamps_on_monotonic_give_device_latency_others_are_counted() {
        let mut a = Accounting::new();
        let now = 50_000_000_000;
        // Sent at now - 3000, received by the device at now - 1000: 2000 ns.
        a.record(&st(0, 0, now - 3000), now);
        a.record_meta(&st(0, 0, now - 3000), &meta(now - 1000, None), now);
        // A PHC-like clock (after the worker's read) and one far in the past.
        a.record_meta(&st(0, 1, now - 3000), &meta(now + 5, None), now);
        a.record_meta(&st(0, 2, now - 3000), &meta(now - DEVICE_CLOCK_WINDOW_NS - 1, None), now);
        a.meta.frames += 3;
        let m = a.summary().rx_metadata.unwrap();
        assert_eq!((m.timestamps, m.timestamps_other_clock), (3, 2));
        let l = m.device_latency_ns.unwrap();
        assert_eq!(l.samples, 1);
        assert!((1999..=2001).contains(&l.max), "{l:?}");
        assert_eq!(m.device_latency_clock, DEVICE_LATENCY_CLOCK);
        assert_eq!(a.summary().latency_clock, LATENCY_CLOCK);
    }

    #[test]
    fn a_zero_timestamp_is_none_and_no_metadata_means_no_section() {
        let mut a = Accounting::new();
        a.observe_rx(&[0u8; 10], 10, Some(meta(0, Some(9))), 100);
        let m = a.summary().rx_metadata.unwrap();
        assert_eq!((m.frames, m.timestamps, m.timestamps_zero, m.hashes), (1, 0, 1, 1));
        let mut b = Accounting::new();
        b.observe_rx(&[0u8; 10], 10, None, 100);
        assert_eq!(b.summary().rx_metadata, None);
    }

    #[test]
    fn rx_hash_is_checked_per_flow_and_queue_across_workers() {
        let mut q0 = Accounting::for_queue(0);
        let mut q1 = Accounting::for_queue(1);
        for seq in 0..4 {
            q0.record_meta(&st(1, seq, 0), &meta(0, Some(0xaaaa)), 1);
        }
        // Flow 1 changes hash once on queue 0.
        q0.record_meta(&st(1, 4, 0), &meta(0, Some(0xbbbb)), 1);
        // Flow 2 on queue 1, its own hash: fine. Flow 1 with its hash on queue 1: RSS
        // would not have done that.
        q1.record_meta(&st(2, 0, 0), &meta(0, Some(0xcccc)), 1);
        q1.record_meta(&st(2, 1, 0), &meta(0, Some(0xcccc)), 1);
        let mut other = Accounting::for_queue(1);
        other.record_meta(&st(1, 9, 0), &meta(0, Some(0xaaaa)), 1);
        q0.meta.frames += 1;
        q0.merge(&q1);
        q0.merge(&other);
        let m = q0.summary().rx_metadata.unwrap();
        assert_eq!((m.hash_changed_in_flow, m.hash_on_other_queue), (1, 1));
    }

    #[test]
    fn garbage_frames_are_unstamped() {
        let mut a = Accounting::new();
        a.observe(&[0u8; 3], 0);
        a.observe(&[0xffu8; 200], 0);
        assert_eq!(a.summary().unstamped, 2);
    }
}

//! Receive-side accounting from the generator's stamps: per-flow loss and reordering from
//! sequence numbers, one-way latency into an HDR histogram (sender and receiver share
//! CLOCK_MONOTONIC when both run on one host). All memory is allocated up front; `observe`
//! does no allocation, syscall or logging.
use hdrhistogram::Histogram;
use serde::Serialize;

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
    stamped: u64,
    unstamped: u64,
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
    /// a histogram of 1 ns to 100 s.
    pub fn new() -> Self {
        Self {
            flows: vec![FlowSeq::default(); FLOW_SLOTS],
            // 1 ns to 100 s at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("static histogram bounds"),
            stamped: 0,
            unstamped: 0,
        }
    }

    /// Looks for a stamp in `frame`; `now_ns` is the batch's receive time.
    #[inline]
    pub fn observe(&mut self, frame: &[u8], now_ns: u64) {
        self.observe_within(frame, frame.len(), now_ns);
    }

    /// As [`Accounting::observe`], for a frame of `frame_len` bytes of which `head` is the
    /// first segment (a multi-buffer frame): the headers and the stamp must lie in `head`.
    #[inline]
    pub fn observe_within(&mut self, head: &[u8], frame_len: usize, now_ns: u64) {
        let stamp = parse_frame_within(head, frame_len)
            .ok()
            .and_then(|i| i.udp_payload)
            .and_then(|(off, len)| head.get(off..(off + len).min(head.len())))
            .and_then(Stamp::parse);
        match stamp {
            Some(s) => self.record(&s, now_ns),
            None => self.unstamped += 1,
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
        for (a, b) in self.flows.iter_mut().zip(&other.flows) {
            if !b.seen {
                continue;
            }
            // Windows aligned on the higher `next`; a duplicate across workers (one flow
            // on two queues) is not recognised.
            if !a.seen {
                a.window = b.window;
                a.next = b.next;
            } else if b.next > a.next {
                let shift = b.next - a.next;
                a.window = b.window | if shift >= DUPLICATE_WINDOW { 0 } else { a.window << shift };
                a.next = b.next;
            } else {
                let shift = a.next - b.next;
                a.window |= if shift >= DUPLICATE_WINDOW { 0 } else { b.window << shift };
            }
            a.seen = true;
            a.received += b.received;
            a.reordered += b.reordered;
            a.duplicates += b.duplicates;
        }
        let _ = self.latency.add(&other.latency);
    }

    /// Loss, order and latency over everything recorded or merged so far.
    pub fn summary(&self) -> AccountingSummary {
        let mut s = AccountingSummary { stamped: self.stamped, unstamped: self.unstamped, ..Default::default() };
        for f in self.flows.iter().filter(|f| f.seen) {
            s.flows += 1;
            s.lost_in_sequence += f.next.saturating_sub(f.received);
            s.reordered += f.reordered;
            s.duplicates += f.duplicates;
        }
        let h = &self.latency;
        if !h.is_empty() {
            s.latency_ns = Some(LatencySummary {
                min: h.min(),
                mean: h.mean(),
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
                samples: h.len(),
            });
        }
        s
    }
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

    #[test]
    fn garbage_frames_are_unstamped() {
        let mut a = Accounting::new();
        a.observe(&[0u8; 3], 0);
        a.observe(&[0xffu8; 200], 0);
        assert_eq!(a.summary().unstamped, 2);
    }
}

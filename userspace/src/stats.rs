//! Per-worker counters and the summary.
//!
//! Each worker owns one [`WorkerCounters`] on its own cache lines and is its only writer:
//! it bumps with a relaxed load + store (no locked instruction). The stats thread reads
//! them next to a timestamp and computes rates as change over the measured period.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;
use serde::Serialize;

/// Buckets of the batch-size histogram: batch sizes 1, 2-3, 4-7, ... 256+.
pub const BATCH_BUCKETS: usize = 10;

/// One worker's running counters; the worker is their only writer (see the module docs).
#[derive(Default)]
pub struct WorkerCounters {
    /// Frames consumed from the RX ring.
    pub rx_packets: AtomicU64,
    /// Bytes of those frames (descriptor lengths, without FCS).
    pub rx_bytes: AtomicU64,
    /// Frames put on the TX ring.
    pub tx_packets: AtomicU64,
    /// Bytes of those frames (descriptor lengths, without FCS).
    pub tx_bytes: AtomicU64,
    /// Frames completed by the kernel after TX.
    pub tx_completed: AtomicU64,
    /// Syscalls made to wake the kernel (need_wakeup or poll).
    pub wakeups: AtomicU64,
    /// Non-empty RX batches, by size bucket.
    pub batch_hist: [AtomicU64; BATCH_BUCKETS],
    /// Thread CPU time of the worker, nanoseconds (updated once a second).
    pub cpu_ns: AtomicU64,
    /// Frames a stage sent where the worker cannot send them (a `Tx` verdict from a stage
    /// without a TX ring, a redirect to a port the pipeline has not got): recycled.
    pub unsendable: AtomicU64,
    /// Frames still waiting for room on a TX ring when the worker stopped: never sent.
    pub tx_unsent: AtomicU64,
    /// Descriptors from the kernel outside one UMEM chunk, and completion addresses
    /// outside the UMEM: counted, never used.
    pub bad_descs: AtomicU64,
}

/// A worker's counters, padded to their own cache lines.
pub type SharedCounters = CachePadded<WorkerCounters>;

/// Adds `n` to a counter this thread alone writes.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// The histogram bucket of a batch of `n` descriptors: floor(log2 n) (0 for 0), capped
/// at the last bucket.
#[inline(always)]
pub fn batch_bucket(n: usize) -> usize {
    (usize::BITS - 1 - n.max(1).leading_zeros()).min(BATCH_BUCKETS as u32 - 1) as usize
}

/// A point-in-time copy of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Frames consumed from the RX ring.
    pub rx_packets: u64,
    /// Bytes of received frames (descriptor lengths, without FCS).
    pub rx_bytes: u64,
    /// Frames put on the TX ring.
    pub tx_packets: u64,
    /// Bytes of those frames (descriptor lengths, without FCS).
    pub tx_bytes: u64,
    /// Frames the kernel reported sent (completion ring).
    pub tx_completed: u64,
    /// Syscalls made to wake the kernel (need_wakeup or poll).
    pub wakeups: u64,
    /// Non-empty batches by size bucket ([`batch_bucket`]): RX batches, and TX batches on a
    /// transmit worker.
    pub batch_hist: [u64; BATCH_BUCKETS],
    /// Thread CPU time of the worker, ns (as last updated).
    pub cpu_ns: u64,
    /// Frames a stage sent where the worker cannot send them: recycled.
    pub unsendable: u64,
    /// Frames still waiting for room on a TX ring when the worker stopped: never sent.
    pub tx_unsent: u64,
    /// Descriptors from the kernel outside one UMEM chunk, and completion addresses outside
    /// the UMEM: counted, never used.
    pub bad_descs: u64,
}

impl WorkerCounters {
    /// Copies the counters (each a relaxed load of its own).
    pub fn snapshot(&self) -> CounterSnapshot {
        let mut batch_hist = [0; BATCH_BUCKETS];
        for (d, s) in batch_hist.iter_mut().zip(&self.batch_hist) {
            *d = s.load(Relaxed);
        }
        CounterSnapshot {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            tx_completed: self.tx_completed.load(Relaxed),
            wakeups: self.wakeups.load(Relaxed),
            batch_hist,
            cpu_ns: self.cpu_ns.load(Relaxed),
            unsendable: self.unsendable.load(Relaxed),
            tx_unsent: self.tx_unsent.load(Relaxed),
            bad_descs: self.bad_descs.load(Relaxed),
        }
    }
}

impl CounterSnapshot {
    /// Adds `o`'s counters to these (to total several workers).
    pub fn add(&mut self, o: &CounterSnapshot) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_completed += o.tx_completed;
        self.wakeups += o.wakeups;
        for (a, b) in self.batch_hist.iter_mut().zip(&o.batch_hist) {
            *a += b;
        }
        self.cpu_ns += o.cpu_ns;
        self.unsendable += o.unsendable;
        self.tx_unsent += o.tx_unsent;
        self.bad_descs += o.bad_descs;
    }

    /// Counter changes from `earlier` to `self`.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        let mut batch_hist = [0; BATCH_BUCKETS];
        for (i, d) in batch_hist.iter_mut().enumerate() {
            *d = self.batch_hist[i].saturating_sub(earlier.batch_hist[i]);
        }
        CounterSnapshot {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_completed: self.tx_completed.saturating_sub(earlier.tx_completed),
            wakeups: self.wakeups.saturating_sub(earlier.wakeups),
            batch_hist,
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            unsendable: self.unsendable.saturating_sub(earlier.unsendable),
            tx_unsent: self.tx_unsent.saturating_sub(earlier.tx_unsent),
            bad_descs: self.bad_descs.saturating_sub(earlier.bad_descs),
        }
    }
}

/// Packets per second and megabits per second over `secs`.
pub fn rates(packets: u64, bytes: u64, secs: f64) -> (f64, f64) {
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    (packets as f64 / secs, bytes as f64 * 8.0 / secs / 1e6)
}

/// Human-readable packet rate: "3.91 Mpps".
pub fn fmt_pps(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2} Mpps", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1} kpps", pps / 1e3)
    } else {
        format!("{pps:.0} pps")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_buckets_are_log2() {
        assert_eq!(batch_bucket(0), 0);
        assert_eq!(batch_bucket(1), 0);
        assert_eq!(batch_bucket(2), 1);
        assert_eq!(batch_bucket(3), 1);
        assert_eq!(batch_bucket(64), 6);
        assert_eq!(batch_bucket(255), 7);
        assert_eq!(batch_bucket(256), 8);
        assert_eq!(batch_bucket(100_000), BATCH_BUCKETS - 1);
    }

    #[test]
    fn snapshots_subtract_and_add() {
        let c = WorkerCounters::default();
        bump(&c.rx_packets, 5);
        bump(&c.batch_hist[2], 1);
        let a = c.snapshot();
        bump(&c.rx_packets, 7);
        let b = c.snapshot();
        let d = b.since(&a);
        assert_eq!(d.rx_packets, 7);
        assert_eq!(d.batch_hist[2], 0);
        let mut s = a;
        s.add(&d);
        assert_eq!(s.rx_packets, 12);
    }

    #[test]
    fn rate_math() {
        assert_eq!(rates(1000, 64_000, 2.0), (500.0, 0.256));
        assert_eq!(rates(1, 1, 0.0), (0.0, 0.0));
        assert_eq!(fmt_pps(3_910_000.0), "3.91 Mpps");
        assert_eq!(fmt_pps(1500.0), "1.5 kpps");
    }
}

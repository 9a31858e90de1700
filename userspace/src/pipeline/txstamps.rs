//! TX completion timestamps (AF_XDP TX metadata): what a transmit worker reads back from
//! the metadata area of each completed frame that asked for one, and, where the kernel
//! took it (copy mode: CLOCK_TAI when the skb is freed), how long after the frame went on
//! the TX ring. A zero-copy driver writes its device's clock (a PHC), which xdpipe does not
//! relate to the host's, so there only the count and the range are kept.
use serde::Serialize;

use crate::{
    sys,
    xsk::{Desc, XDP_TX_METADATA, Xsk},
};

/// TX completion timestamps one transmit worker (or, summed, a run) read back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TxStamps {
    /// Completed frames that had asked for a timestamp.
    pub requested: u64,
    /// Of those, how many came back with one (non-zero).
    pub stamped: u64,
    /// The earliest and the latest timestamp, ns in the writer's clock (0: none).
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
    /// Frames with a submit-to-completion time (copy mode only: CLOCK_TAI against the
    /// CLOCK_MONOTONIC time the frame went on the TX ring).
    pub latency_frames: u64,
    /// Shortest submit-to-completion time, ns.
    pub latency_min_ns: u64,
    /// Longest, ns.
    pub latency_max_ns: u64,
    /// Sum over `latency_frames`, ns (the mean is this over that).
    pub latency_sum_ns: u64,
}

impl TxStamps {
    /// Adds another worker's.
    pub fn add(&mut self, o: &TxStamps) {
        let min_nonzero = |a: u64, b: u64| {
            if a == 0 {
                b
            } else if b == 0 {
                a
            } else {
                a.min(b)
            }
        };
        self.requested += o.requested;
        self.stamped += o.stamped;
        self.first_ns = min_nonzero(self.first_ns, o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
        self.latency_min_ns = if self.latency_frames == 0 {
            o.latency_min_ns
        } else if o.latency_frames == 0 {
            self.latency_min_ns
        } else {
            self.latency_min_ns.min(o.latency_min_ns)
        };
        self.latency_frames += o.latency_frames;
        self.latency_max_ns = self.latency_max_ns.max(o.latency_max_ns);
        self.latency_sum_ns += o.latency_sum_ns;
    }

    /// Mean submit-to-completion time, ns (None: no frame had one).
    pub fn latency_mean_ns(&self) -> Option<f64> {
        (self.latency_frames > 0).then(|| self.latency_sum_ns as f64 / self.latency_frames as f64)
    }

    fn record(&mut self, ts: u64, latency_ns: Option<u64>) {
        self.requested += 1;
        if ts == 0 {
            return;
        }
        self.stamped += 1;
        self.first_ns = if self.first_ns == 0 { ts } else { self.first_ns.min(ts) };
        self.last_ns = self.last_ns.max(ts);
        if let Some(l) = latency_ns {
            self.latency_min_ns = if self.latency_frames == 0 { l } else { self.latency_min_ns.min(l) };
            self.latency_max_ns = self.latency_max_ns.max(l);
            self.latency_sum_ns += l;
            self.latency_frames += 1;
        }
    }
}

/// A transmit worker's bookkeeping for timestamps: when each chunk went on the TX ring
/// (one slot per UMEM chunk, made once), and CLOCK_TAI - CLOCK_MONOTONIC.
pub(super) struct StampBook {
    submitted_ns: Vec<u64>,
    tai_minus_mono: Option<u64>,
    pub(super) stamps: TxStamps,
}

impl StampBook {
    /// For `xsk`; None if its UMEM has no TX metadata area (then nothing is recorded).
    pub(super) fn new(xsk: &Xsk) -> Option<Self> {
        if !xsk.has_tx_metadata() {
            return None;
        }
        // Both clocks through the vDSO, once: the kernel's copy-mode timestamps are TAI.
        let tai_minus_mono = (!xsk.is_zerocopy()).then(|| sys::tai_ns().wrapping_sub(sys::monotonic_ns()));
        Some(Self { submitted_ns: vec![0; xsk.umem_chunks()], tai_minus_mono, stamps: TxStamps::default() })
    }

    /// Frames `sent` just went on the TX ring at `now_ns` (CLOCK_MONOTONIC).
    #[inline]
    pub(super) fn submitted(&mut self, xsk: &Xsk, sent: &[Desc], now_ns: u64) {
        for d in sent.iter().filter(|d| d.options & XDP_TX_METADATA != 0) {
            if let Some(slot) = self.submitted_ns.get_mut(xsk.chunk_of(d.addr)) {
                *slot = now_ns;
            }
        }
    }

    /// The frame at `addr` came back on the completion ring with the timestamp `ts`
    /// (0: asked for, not given).
    #[inline]
    pub(super) fn completed(&mut self, xsk: &Xsk, addr: u64, ts: u64) {
        let latency = match (self.tai_minus_mono, self.submitted_ns.get(xsk.chunk_of(addr))) {
            (Some(off), Some(&sub)) if sub > 0 && ts > 0 => Some(ts.wrapping_sub(off).saturating_sub(sub)),
            _ => None,
        };
        self.stamps.record(ts, latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_add_up_and_keep_their_extremes() {
        let mut a = TxStamps::default();
        a.record(0, None);
        a.record(500, Some(20));
        a.record(300, Some(10));
        assert_eq!((a.requested, a.stamped, a.first_ns, a.last_ns), (3, 2, 300, 500));
        assert_eq!(
            (a.latency_frames, a.latency_min_ns, a.latency_max_ns, a.latency_mean_ns()),
            (2, 10, 20, Some(15.0))
        );
        let mut b = TxStamps::default();
        b.record(100, None);
        let mut t = TxStamps::default();
        t.add(&b);
        t.add(&a);
        assert_eq!((t.requested, t.stamped, t.first_ns, t.last_ns), (4, 3, 100, 500));
        assert_eq!((t.latency_frames, t.latency_min_ns, t.latency_max_ns), (2, 10, 20));
    }
}

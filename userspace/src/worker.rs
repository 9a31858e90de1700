//! Per-queue workers: a pinned thread per RX queue that drives its socket's rings in
//! batches and hands frames to a mode. Run to completion: no locks, allocations, logs or
//! syscalls per packet; the only syscalls are wakeups the kernel asks for (need_wakeup)
//! or, with `--poll`, a sleep in epoll_wait when the RX ring is empty.
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::{
    accounting::Accounting,
    stats::{WorkerCounters, batch_bucket, bump},
    sys,
    xsk::{Desc, FrameAddr, Xsk},
};

/// What a mode wants done with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Give the frame back to the fill ring.
    Recycle,
    /// Send the (possibly rewritten) frame out of this socket's TX ring.
    Transmit,
}

/// A receive-side mode: safe logic over one frame at a time.
pub trait RxMode: Send {
    /// False for modes that never read frame bytes (rxdrop): the worker then skips
    /// building frame slices altogether.
    const TOUCHES_DATA: bool;
    fn on_frame(&mut self, frame: &mut [u8]) -> Verdict;
}

/// How a worker waits when its RX ring is empty.
pub struct WaitPolicy {
    /// Honour the kernel's need_wakeup flags (the socket was bound with it).
    pub need_wakeup: bool,
    /// Sleep until the socket is readable, for at most the given milliseconds (-1: no
    /// limit; the run's stop interrupts the sleep with a signal). None: busy-poll.
    pub sleep: Option<(sys::ReadableWaiter, i32)>,
    /// Busy-polling: after finding the RX ring empty, wait this long (ns, spinning on
    /// the CPU's pause hint, reading only the clock) before looking again. 0: look again
    /// at once.
    pub idle_backoff_ns: u64,
}

/// Receive loop for one socket. Returns when `stop` is set. With `acct`, every frame's
/// stamp is read (one receive timestamp per batch).
pub fn rx_loop<M: RxMode>(
    xsk: &mut Xsk,
    mode: &mut M,
    mut acct: Option<&mut Accounting>,
    batch: usize,
    wait: &WaitPolicy,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) {
    let mut rx = vec![Desc::default(); batch];
    let mut comp = vec![0u64; batch];
    // Frames a mode chose to transmit that did not fit in the TX ring yet.
    let mut tx_backlog: Vec<Desc> = Vec::with_capacity(batch * 2);
    let mut recycle: Vec<Desc> = Vec::with_capacity(batch);
    let mut tx_outstanding = 0usize;
    let mut pace = Pace::default();

    while !stop.load(Relaxed) {
        // Frames the kernel sent: back to the fill ring.
        if tx_outstanding > 0 {
            let n = xsk.comp_consume(&mut comp);
            if n > 0 {
                tx_outstanding -= n;
                bump(&counters.tx_completed, n as u64);
                recycle_frames(xsk, &comp[..n]);
            } else {
                kick(xsk, wait, counters);
            }
        }
        // A full TX ring holds frames back: send them before taking more.
        if !tx_backlog.is_empty() {
            flush_tx(xsk, &mut tx_backlog, &mut tx_outstanding, wait, counters);
            if !tx_backlog.is_empty() {
                continue;
            }
        }
        // The free list is topped onto the fill ring by recycle_frames, after a batch came
        // back: not here, where an idle loop would read the ring's consumer index (a line
        // the kernel writes) on every turn.
        let n = xsk.rx_consume(&mut rx);
        if n == 0 {
            idle(xsk, wait, &mut pace, counters);
            continue;
        }
        pace.batch(n);
        account_rx(xsk, &rx[..n], acct.as_deref_mut(), counters);
        if !M::TOUCHES_DATA {
            recycle_frames(xsk, &rx[..n]);
            continue;
        }
        let first_tx = tx_backlog.len();
        for d in rx[..n].iter_mut() {
            match mode.on_frame(xsk.frame_mut(d)) {
                Verdict::Recycle => recycle.push(*d),
                Verdict::Transmit => tx_backlog.push(*d),
            }
        }
        if !recycle.is_empty() {
            recycle_frames(xsk, &recycle);
            recycle.clear();
        }
        if tx_backlog.len() > first_tx {
            flush_tx(xsk, &mut tx_backlog, &mut tx_outstanding, wait, counters);
        }
    }
    drain_rx(xsk, &mut rx, acct, counters);
}

/// At stop: count (and read the stamps of) what is still on the RX ring, so frames the
/// kernel delivered are never missing from the summary. They are not processed further.
fn drain_rx(xsk: &mut Xsk, rx: &mut [Desc], mut acct: Option<&mut Accounting>, counters: &WorkerCounters) {
    loop {
        let n = xsk.rx_consume(rx);
        if n == 0 {
            return;
        }
        account_rx(xsk, &rx[..n], acct.as_deref_mut(), counters);
        recycle_frames(xsk, &rx[..n]);
    }
}

/// The RX ring is empty: wake the kernel if it asked (need_wakeup), or sleep until it is
/// readable if the policy says so; otherwise return at once (busy polling).
#[inline]
fn idle(xsk: &Xsk, wait: &WaitPolicy, pace: &mut Pace, counters: &WorkerCounters) {
    if wait.need_wakeup && xsk.fill_needs_wakeup() {
        sys::wakeup_rx(xsk.fd());
        bump(&counters.wakeups, 1);
    } else if let Some((waiter, timeout_ms)) = &wait.sleep {
        waiter.wait(*timeout_ms);
        bump(&counters.wakeups, 1);
    } else if let Some(until) = pace.backoff_until(wait.idle_backoff_ns) {
        // Every look at the ring reads its producer index, a cache line the kernel's
        // receive path (on veth: the sender's core) writes per frame: looked at
        // constantly, the line moves between the cores on every frame and the producer
        // pays for it. Waiting lets frames gather into batches instead.
        while sys::monotonic_ns() < until {
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
    }
}

/// Whether frames arrive fast enough for `WaitPolicy::idle_backoff_ns` to pay: more than
/// one per half the backoff since the ring was last found empty. At lower rates a frame
/// would wait for the backoff alone (at 200 kpps on veth the median latency went from 0.8
/// to 1.8 us with an unconditional 2 us), and the ring's line moves between the cores
/// rarely anyway. The clock is read only when the ring turns out empty, never per batch
/// (a read per batch cost 3% of the receive rate under the in-kernel generator).
#[derive(Default)]
struct Pace {
    frames: u64,
    last_empty_ns: u64,
    fast: bool,
}

impl Pace {
    #[inline]
    fn batch(&mut self, n: usize) {
        self.frames += n as u64;
    }

    /// The ring was found empty: until when the worker should wait before looking again
    /// (None: look again at once). The clock is read once, and not at all on further
    /// empty looks of a worker that is not backing off.
    #[inline]
    fn backoff_until(&mut self, backoff_ns: u64) -> Option<u64> {
        if backoff_ns == 0 {
            return None;
        }
        if self.frames == 0 && self.last_empty_ns != 0 {
            // Still empty since the last look: the verdict stands.
            return self.fast.then(|| sys::monotonic_ns() + backoff_ns);
        }
        let now = sys::monotonic_ns();
        // The first empty look only sets the reference the first rate is measured from.
        if self.last_empty_ns != 0 {
            self.fast = now.saturating_sub(self.last_empty_ns) < backoff_ns / 2 * self.frames;
        }
        self.last_empty_ns = now;
        self.frames = 0;
        self.fast.then_some(now + backoff_ns)
    }
}

/// Counts a received batch and, with accounting on, reads its stamps (one receive
/// timestamp per batch).
#[inline]
fn account_rx(xsk: &Xsk, rx: &[Desc], acct: Option<&mut Accounting>, counters: &WorkerCounters) {
    let bytes: u64 = rx.iter().map(|d| d.len as u64).sum();
    bump(&counters.rx_packets, rx.len() as u64);
    bump(&counters.rx_bytes, bytes);
    bump(&counters.batch_hist[batch_bucket(rx.len())], 1);
    if let Some(a) = acct {
        let now = sys::monotonic_ns();
        for d in rx {
            a.observe(xsk.frame(d), now);
        }
    }
}

/// Frames userspace is done with go back to the fill ring; what does not fit waits on
/// the free list (filled again next round).
#[inline]
fn recycle_frames<A: FrameAddr>(xsk: &mut Xsk, descs: &[A]) {
    let n = xsk.fill_produce(descs);
    if n < descs.len() {
        xsk.give_free(&descs[n..]);
    }
    if n > 0 && xsk.free_frames() > 0 {
        xsk.fill_from_free(descs.len());
    }
}

/// Puts as much of `backlog` on the TX ring as fits, counts it, and kicks the kernel;
/// what does not fit stays in `backlog`.
#[inline]
fn flush_tx(
    xsk: &mut Xsk,
    backlog: &mut Vec<Desc>,
    outstanding: &mut usize,
    wait: &WaitPolicy,
    counters: &WorkerCounters,
) {
    let n = xsk.tx_produce(backlog);
    if n == 0 {
        return;
    }
    *outstanding += n;
    let bytes: u64 = backlog[..n].iter().map(|d| d.len as u64).sum();
    bump(&counters.tx_packets, n as u64);
    bump(&counters.tx_bytes, bytes);
    backlog.drain(..n);
    kick(xsk, wait, counters);
}

/// Copy mode transmits only when kicked; with need_wakeup, only when the kernel asks.
#[inline]
fn kick(xsk: &Xsk, wait: &WaitPolicy, counters: &WorkerCounters) {
    if !wait.need_wakeup || xsk.tx_needs_wakeup() {
        sys::kick_tx(xsk.fd());
        bump(&counters.wakeups, 1);
    }
}

/// `fwd`: receive on `inp`, send on `out`. With `shared` the two sockets share one UMEM
/// and frames move between their rings untouched; otherwise each frame is copied into a
/// free frame of `out`'s own UMEM. Returns when `stop` is set.
#[allow(clippy::too_many_arguments)]
pub fn fwd_loop(
    inp: &mut Xsk,
    out: &mut Xsk,
    shared: bool,
    mut acct: Option<&mut Accounting>,
    batch: usize,
    wait: &WaitPolicy,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) {
    let mut rx = vec![Desc::default(); batch];
    let mut comp = vec![0u64; batch];
    let mut copies: Vec<Desc> = Vec::with_capacity(batch);
    // Frames (of the UMEM `out` transmits from) waiting for room on out's TX ring.
    let mut backlog: Vec<Desc> = Vec::with_capacity(batch * 2);
    let mut outstanding = 0usize;
    let mut pace = Pace::default();

    while !stop.load(Relaxed) {
        if outstanding > 0 {
            let n = out.comp_consume(&mut comp);
            if n > 0 {
                outstanding -= n;
                bump(&counters.tx_completed, n as u64);
                if shared {
                    recycle_frames(inp, &comp[..n]);
                } else {
                    out.give_free(&comp[..n]);
                }
            } else {
                kick(out, wait, counters);
            }
        }
        if !backlog.is_empty() {
            flush_tx(out, &mut backlog, &mut outstanding, wait, counters);
            if !backlog.is_empty() {
                continue;
            }
        }
        // Without a shared UMEM, only take what can be copied into out's free frames.
        let room = if shared { batch } else { batch.min(out.free_frames()) };
        if room == 0 {
            continue;
        }
        let n = inp.rx_consume(&mut rx[..room]);
        if n == 0 {
            idle(inp, wait, &mut pace, counters);
            continue;
        }
        pace.batch(n);
        account_rx(inp, &rx[..n], acct.as_deref_mut(), counters);
        if shared {
            backlog.extend_from_slice(&rx[..n]);
        } else {
            copies.clear();
            out.take_free(&mut copies, n);
            for (src, dst) in rx[..n].iter().zip(copies.iter_mut()) {
                out.write_frame(dst, inp.frame(src));
            }
            recycle_frames(inp, &rx[..n]);
            backlog.extend_from_slice(&copies);
        }
        flush_tx(out, &mut backlog, &mut outstanding, wait, counters);
    }
    drain_rx(inp, &mut rx, acct, counters);
}

#[cfg(test)]
mod tests {
    use super::Pace;

    #[test]
    fn the_backoff_runs_only_while_frames_come_fast() {
        let mut p = Pace::default();
        assert!(p.backoff_until(0).is_none(), "no backoff configured");
        // First empty look: nothing received yet, no rate known.
        assert!(p.backoff_until(2000).is_none());
        // A thousand frames since: the clock has moved far less than 1000 x 1 us.
        p.batch(1000);
        assert!(p.backoff_until(2000).is_some());
        // Further empty looks keep the verdict.
        assert!(p.backoff_until(2000).is_some());
        // One frame after a 5 ms gap: slow (200 frames a second), look again at once.
        std::thread::sleep(std::time::Duration::from_millis(5));
        p.batch(1);
        assert!(p.backoff_until(2000).is_none());
    }
}

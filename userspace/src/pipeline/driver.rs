//! The one worker loop every stage and every source runs in: a pinned thread per queue
//! that drives its socket's rings in batches around the user's hook. Run to completion:
//! no locks, allocations, logs or syscalls per frame; the only syscalls are wakeups the
//! kernel asks for (need_wakeup), kicks of copy-mode TX, and, in a sleeping wait, one
//! epoll wait when the RX ring is empty. They all go through `sys::hot_call`, which the
//! unit tests below replace.
//!
//! Unsafe code is allowed here, beside `xsk` and `sys`, for one reason: this loop is
//! what knows when a descriptor is userspace's (between its consume and its produce), so
//! it is the caller of `Xsk`'s frame accessors, each call with its ownership argument.
#![allow(unsafe_code)]
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use super::stage::{Source, SourceStep, Stage};
use crate::{
    accounting::Accounting,
    config::Coalesce,
    stats::{WorkerCounters, batch_bucket, bump},
    sys,
    xsk::{Desc, FrameAddr, MAX_SEGS, Verdict, XDP_PKT_CONTD, Xsk},
};

/// How a worker waits when its RX ring is empty.
pub struct WaitPolicy {
    /// Honour the kernel's need_wakeup flags (the socket was bound with it).
    pub need_wakeup: bool,
    /// Sleep until the socket is readable or the run stops, for at most the given
    /// milliseconds (-1: no limit). None: busy-poll.
    pub sleep: Option<(sys::ReadableWaiter, i32)>,
    /// Busy-polling: after finding the RX ring empty, wait this long (ns, spinning on
    /// the CPU's pause hint, reading only the clock) before looking again. 0: look again
    /// at once.
    pub idle_backoff_ns: u64,
    /// Kernel busy polling: the worker runs the device's NAPI itself, and TX is kicked
    /// whatever need_wakeup says. No backoff.
    pub busy_poll: Option<KernelBusyPoll>,
    /// Sleeping wait only: after a wakeup, let frames gather before taking them.
    pub coalesce: Option<Coalesce>,
}

/// How a kernel busy-polling worker runs its NAPI.
pub enum KernelBusyPoll {
    /// One recvfrom per turn of the loop (per batch, or per empty look) on a socket with
    /// SO_PREFER_BUSY_POLL. Never sleeps.
    Recvfrom,
    /// One epoll_wait per empty look, on a set with EPIOCSPARAMS (prefer busy polling):
    /// it polls the NAPI, returns as soon as frames arrive, and only sleeps (for at most
    /// the given ms, -1: no limit) once a poll found none. With the NAPI's
    /// irq-suspend-timeout set, the device's IRQ stays suspended while these waits keep
    /// finding frames, and resumes when one finds none.
    Epoll(sys::ReadableWaiter, i32),
}

/// A second socket frames can leave by (`Verdict::Redirect(OutPort(0))`).
pub struct OutSocket {
    /// The transmit-only socket.
    pub xsk: Xsk,
    /// True if it shares the receiving socket's UMEM: frames move between the rings
    /// untouched. Otherwise each is copied into one of `xsk`'s own free frames.
    pub shared: bool,
}

/// Frames a stage sent where this worker cannot send (counted, then recycled).
const fn unsendable(v: Verdict, transmits: bool, has_out: bool) -> bool {
    match v {
        Verdict::Drop => false,
        Verdict::Tx => !transmits,
        Verdict::Redirect(p) => !has_out || p.0 != 0,
    }
}

/// Descriptors in the chain `descs[0]` starts (1 for a single-buffer frame): up to and
/// including the first without XDP_PKT_CONTD, never past the slice.
#[inline(always)]
fn chain_len(descs: &[Desc]) -> usize {
    match descs.first() {
        Some(d) if d.options & XDP_PKT_CONTD == 0 => 1,
        Some(_) => descs.iter().position(|d| d.options & XDP_PKT_CONTD == 0).map_or(descs.len(), |i| i + 1),
        None => 0,
    }
}

/// Packets in `descs`: descriptors that end one (no XDP_PKT_CONTD).
#[inline]
fn packets(descs: &[Desc]) -> usize {
    descs.iter().filter(|d| d.options & XDP_PKT_CONTD == 0).count()
}

/// The receive loop: consume a batch, run the stage, then recycle, transmit or redirect
/// each frame by its verdict. Returns when `stop` is set, after counting (and reading the
/// stamps of) what is still on the RX ring.
///
/// Multi-buffer frames (a socket bound with XDP_USE_SG): `Xsk::rx_consume` hands over
/// whole chains; a chain whose end is not on the ring yet waits at the front of the
/// descriptor array for the next consume. A chain is recycled or sent whole (its
/// descriptors keep their XDP_PKT_CONTD flags on the TX ring, and only whole chains go
/// there). Redirecting one to another port is counted `unsendable`: the out socket is not
/// bound for multi-buffer frames. `tx_completed` counts completed descriptors.
#[allow(clippy::too_many_arguments)]
pub fn rx_loop<S: Stage>(
    xsk: &mut Xsk,
    mut out: Option<&mut OutSocket>,
    stage: &mut S,
    mut acct: Option<&mut Accounting>,
    batch: usize,
    wait: &WaitPolicy,
    counters: &WorkerCounters,
    stop: &AtomicBool,
) {
    // A batch, after the start of an unfinished chain (`pending` descriptors).
    let mut rx = vec![Desc::default(); batch + MAX_SEGS];
    let mut verdicts = vec![Verdict::Drop; batch + MAX_SEGS];
    let mut pending = 0usize;
    let mut comp = vec![0u64; batch];
    // Frames waiting for room on this socket's / the out socket's TX ring.
    let mut tx_backlog: Vec<Desc> = Vec::with_capacity(batch * 2 + MAX_SEGS);
    let mut out_backlog: Vec<Desc> = Vec::with_capacity(batch * 2 + MAX_SEGS);
    let mut recycle: Vec<Desc> = Vec::with_capacity(batch + MAX_SEGS);
    let (mut tx_outstanding, mut out_outstanding) = (0usize, 0usize);
    let mut pace = Pace::default();
    let has_out = out.is_some();

    while !stop.load(Relaxed) {
        if let Some(KernelBusyPoll::Recvfrom) = wait.busy_poll {
            // Runs the NAPI of the queue (SO_PREFER_BUSY_POLL): once per batch or empty
            // look, never per frame.
            sys::wakeup_rx(xsk.fd());
            bump(&counters.wakeups, 1);
        }
        // Frames the kernel sent: back to the fill ring.
        if tx_outstanding > 0 {
            let bad = xsk.bad_descs();
            let n = xsk.comp_consume(&mut comp);
            // A bad completion address still completes a frame we sent.
            let done = n + (xsk.bad_descs() - bad) as usize;
            if done > 0 {
                tx_outstanding = tx_outstanding.saturating_sub(done);
                bump(&counters.tx_completed, n as u64);
                recycle_frames(xsk, &comp[..n]);
            } else {
                kick(xsk, wait, counters);
            }
        }
        if let Some(o) = out.as_deref_mut()
            && out_outstanding > 0
        {
            let bad = o.xsk.bad_descs();
            let n = o.xsk.comp_consume(&mut comp);
            let done = n + (o.xsk.bad_descs() - bad) as usize;
            if done > 0 {
                out_outstanding = out_outstanding.saturating_sub(done);
                bump(&counters.tx_completed, n as u64);
                if o.shared {
                    recycle_frames(xsk, &comp[..n]);
                } else {
                    o.xsk.give_free(&comp[..n]);
                }
            } else {
                kick(&o.xsk, wait, counters);
            }
        }
        // A full TX ring holds frames back: send them before taking more.
        if !tx_backlog.is_empty() {
            flush_tx(xsk, &mut tx_backlog, &mut tx_outstanding, wait, counters);
            if !tx_backlog.is_empty() {
                continue;
            }
        }
        if let Some(o) = out.as_deref_mut()
            && !out_backlog.is_empty()
        {
            flush_tx(&mut o.xsk, &mut out_backlog, &mut out_outstanding, wait, counters);
            if !out_backlog.is_empty() {
                continue;
            }
        }
        // Without a shared UMEM, take only what can be copied into out's free frames.
        let room = match out.as_deref() {
            Some(o) if !o.shared => batch.min(o.xsk.free_frames()),
            _ => batch,
        };
        if room == 0 {
            continue;
        }
        // The free list is topped onto the fill ring by recycle_frames, after a batch came
        // back: not here, where an idle loop would read the ring's consumer index (a line
        // the kernel writes) on every turn.
        let taken = xsk.rx_consume(&mut rx[..pending + room], pending);
        let (n, frames) = (taken.complete, taken.frames);
        if n == 0 {
            if taken.end == pending {
                idle(xsk, wait, &mut pace, counters, stop);
            }
            // Only the start of a chain so far: it waits at the front for its end.
            pending = taken.end;
            continue;
        }
        pace.batch(frames);
        account_rx(xsk, &rx[..n], frames, acct.as_deref_mut(), counters);
        verdicts[..n].fill(Verdict::Drop);
        let keeps_any = {
            // SAFETY: rx[..n] were just consumed from this socket's RX ring (whole
            // frames, `frames` of them) and go to no ring before the batch is dropped at
            // the end of this block.
            let mut b = unsafe { xsk.batch(&mut rx[..n], &mut verdicts[..n], frames) };
            stage.on_batch(&mut b);
            b.keeps_any()
        };
        if !keeps_any {
            recycle_frames(xsk, &rx[..n]);
            rx.copy_within(n..taken.end, 0);
            pending = taken.end - n;
            continue;
        }
        let mut i = 0;
        while i < n {
            let k = chain_len(&rx[i..n]);
            let (chain, v) = (&rx[i..i + k], verdicts[i]);
            i += k;
            if unsendable(v, S::TRANSMITS, has_out) || (k > 1 && matches!(v, Verdict::Redirect(_))) {
                bump(&counters.unsendable, 1);
                recycle.extend_from_slice(chain);
                continue;
            }
            let d = &chain[0];
            match (v, out.as_deref_mut()) {
                (Verdict::Drop, _) => recycle.extend_from_slice(chain),
                (Verdict::Tx, _) => tx_backlog.extend_from_slice(chain),
                (Verdict::Redirect(_), Some(o)) if o.shared => out_backlog.push(*d),
                (Verdict::Redirect(_), Some(o)) => {
                    // `room` above kept a free frame of out's for every frame taken.
                    if let Some(mut copy) = o.xsk.take_free_one() {
                        // SAFETY: `d` was consumed from the RX ring above and is not on
                        // any ring; `copy` was just taken from out's free list. They are
                        // chunks of different UMEMs.
                        unsafe { o.xsk.copy_frame(&mut copy, xsk, d) };
                        out_backlog.push(copy);
                    }
                    recycle.push(*d);
                }
                (Verdict::Redirect(_), None) => recycle.push(*d),
            }
        }
        rx.copy_within(n..taken.end, 0);
        pending = taken.end - n;
        if !recycle.is_empty() {
            recycle_frames(xsk, &recycle);
            recycle.clear();
        }
        if !tx_backlog.is_empty() {
            flush_tx(xsk, &mut tx_backlog, &mut tx_outstanding, wait, counters);
        }
        if let Some(o) = out.as_deref_mut()
            && !out_backlog.is_empty()
        {
            flush_tx(&mut o.xsk, &mut out_backlog, &mut out_outstanding, wait, counters);
        }
    }
    drain_rx(xsk, &mut rx, pending, acct, counters);
    // Frames a full TX ring still held back at the stop were never sent: count them.
    bump(&counters.tx_unsent, (packets(&tx_backlog) + packets(&out_backlog)) as u64);
    bump(&counters.bad_descs, xsk.bad_descs() + out.map_or(0, |o| o.xsk.bad_descs()));
}

/// At stop: count (and read the stamps of) what is still on the RX ring, so frames the
/// kernel delivered are never missing from the summary. They are not processed further.
/// `rx[..pending]` is the start of a chain still waiting for its end.
fn drain_rx(
    xsk: &mut Xsk,
    rx: &mut [Desc],
    mut pending: usize,
    mut acct: Option<&mut Accounting>,
    counters: &WorkerCounters,
) {
    loop {
        let t = xsk.rx_consume(rx, pending);
        if t.end == pending && t.complete == 0 {
            // A chain that never ended goes back unused.
            recycle_frames(xsk, &rx[..pending]);
            return;
        }
        account_rx(xsk, &rx[..t.complete], t.frames, acct.as_deref_mut(), counters);
        recycle_frames(xsk, &rx[..t.complete]);
        rx.copy_within(t.complete..t.end, 0);
        pending = t.end - t.complete;
    }
}

/// The RX ring is empty: wake the kernel if it asked (need_wakeup), or sleep until it is
/// readable if the policy says so; otherwise return at once (busy polling).
#[inline]
fn idle(xsk: &mut Xsk, wait: &WaitPolicy, pace: &mut Pace, counters: &WorkerCounters, stop: &AtomicBool) {
    if let Some(b) = &wait.busy_poll {
        // Recvfrom: the loop's recvfrom did the work (and is the wakeup need_wakeup asks
        // for). Epoll: the wait polls the NAPI (that is the wakeup), and sleeps only once
        // a poll found nothing; bounded like a sleep, for the need_wakeup flag's sake.
        if let KernelBusyPoll::Epoll(waiter, timeout_ms) = b {
            waiter.wait(sleep_timeout(*timeout_ms, kernel_may_ask(wait.need_wakeup, xsk) && !waiter.rechecks()));
            bump(&counters.wakeups, 1);
        }
    } else if wait.need_wakeup && xsk.fill_needs_wakeup() {
        sys::wakeup_rx(xsk.fd());
        bump(&counters.wakeups, 1);
    } else if let Some((waiter, timeout_ms)) = &wait.sleep {
        // A zero-copy driver may set need_wakeup between the look above and the sleep, and
        // it does so without making the socket readable (it asks precisely because it
        // stopped delivering): an unbounded sleep would never see the flag. There the
        // sleep is bounded (the waiter's recheck timer, else the timeout), so the flag is
        // looked at again soon.
        //
        // Coalescing, when the last gathering found frames (traffic flows): the next ones
        // gather in a timed sleep too, without the wakeup in between (one sleep per batch,
        // not two). Once a gathering finds none, the worker sleeps until the socket is
        // readable again.
        if !(wait.coalesce.is_some() && pace.flowing) {
            waiter.wait(sleep_timeout(*timeout_ms, kernel_may_ask(wait.need_wakeup, xsk) && !waiter.rechecks()));
            bump(&counters.wakeups, 1);
        }
        if let Some(c) = wait.coalesce {
            // Interrupt moderation: a wakeup for a frame or two would be followed by
            // another sleep and wakeup; sleeping a while first lets a batch gather.
            pace.flowing =
                gather(c, &mut pace.ns_per_frame, || xsk.rx_ready(), sys::monotonic_ns, sys::sleep_ns, stop) > 0;
        }
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

/// Sleeps (`sleep`, ns) until `ready` (the RX ring's fill level) reaches `c.frames`,
/// `c.us` have passed on `now` (ns), or the run stops. Returns the last fill level seen.
/// Sleeping, not spinning: the CPU a wakeup costs is paid once per batch, as with a NIC's
/// interrupt moderation (a spin here cost more per frame than the wakeups it saved). Each
/// sleep lasts as long as the count should take at the rate the last gathering saw
/// (`ns_per_frame`, updated here; 0 before the first), 10 us at least, never past the
/// deadline: at a steady rate, one sleep per batch (a sleep arms a timer, and on the
/// project's VM a quarter-period slice cost more than the wakeups it saved). Without a
/// rate yet, slices of a quarter of `c.us`. The clock is read only here, not per frame.
#[inline]
fn gather(
    c: Coalesce,
    ns_per_frame: &mut u64,
    mut ready: impl FnMut() -> u32,
    mut now: impl FnMut() -> u64,
    mut sleep: impl FnMut(u64),
    stop: &AtomicBool,
) -> u32 {
    let total = c.us as u64 * 1000;
    let start = now();
    let until = start + total;
    loop {
        let r = ready();
        let t = now();
        if r >= c.frames || stop.load(Relaxed) || t >= until {
            if r > 0 {
                *ns_per_frame = (t - start) / r as u64;
            }
            return r;
        }
        let slice = match *ns_per_frame {
            0 => total / 4,
            per => per.saturating_mul((c.frames - r) as u64),
        };
        sleep(slice.max(10_000).min(until - t));
    }
}

/// Whether the kernel may set the fill ring's need_wakeup while the worker sleeps, without
/// making the socket readable: with need_wakeup on a zero-copy socket only. The flag is set
/// by the drivers' zero-copy receive paths alone (xsk_set_rx_need_wakeup); a copy-mode bind
/// never has it set, so its sleeps need no bound and no recheck timer (on the project's VM
/// the 1 ms timer cost 120 ns per frame at 200 kpps: 720 against 600 ns).
#[inline]
pub(super) fn kernel_may_ask(need_wakeup: bool, xsk: &Xsk) -> bool {
    need_wakeup && xsk.is_zerocopy()
}

/// The longest sleep while need_wakeup is on: how late a worker at most notices a
/// wakeup request the kernel made while it went to sleep.
pub const NEED_WAKEUP_RECHECK_MS: i32 = 1;

/// The sleep's timeout: `timeout_ms` (-1: no limit), bounded by
/// [`NEED_WAKEUP_RECHECK_MS`] when the kernel may ask for a wakeup.
#[inline]
fn sleep_timeout(timeout_ms: i32, need_wakeup: bool) -> i32 {
    if need_wakeup && !(0..=NEED_WAKEUP_RECHECK_MS).contains(&timeout_ms) { NEED_WAKEUP_RECHECK_MS } else { timeout_ms }
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
    /// Coalescing: whether the last gathering found frames (traffic flows), and the
    /// time per frame it saw.
    flowing: bool,
    ns_per_frame: u64,
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

/// Counts a received batch of `frames` whole frames (every segment's bytes) and, with
/// accounting on, reads their stamps from their first segments (one receive timestamp
/// per batch).
#[inline]
fn account_rx(xsk: &Xsk, rx: &[Desc], frames: usize, acct: Option<&mut Accounting>, counters: &WorkerCounters) {
    let bytes: u64 = rx.iter().map(|d| d.len as u64).sum();
    bump(&counters.rx_packets, frames as u64);
    bump(&counters.rx_bytes, bytes);
    bump(&counters.batch_hist[batch_bucket(frames)], 1);
    if let Some(a) = acct {
        let now = sys::monotonic_ns();
        let meta = a.reads_rx_metadata();
        if frames == rx.len() {
            for d in rx {
                // SAFETY: `rx` was just consumed from the RX ring; the frames go back to
                // the fill ring only after this returns.
                let frame = unsafe { xsk.frame(d) };
                // SAFETY: as above; the metadata lies in the same chunk, before the frame.
                let meta = if meta { unsafe { xsk.frame_meta(d) } } else { None };
                a.observe_rx(frame, frame.len(), meta, now);
            }
        } else {
            let mut i = 0;
            while i < rx.len() {
                let k = chain_len(&rx[i..]);
                let len: usize = rx[i..i + k].iter().map(|d| d.len as usize).sum();
                // SAFETY: as above; a chain's metadata lies before its first segment.
                let head = unsafe { xsk.frame(&rx[i]) };
                // SAFETY: as above.
                let meta = if meta { unsafe { xsk.frame_meta(&rx[i]) } } else { None };
                a.observe_rx(head, len, meta, now);
                i += k;
            }
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
/// what does not fit stays in `backlog`. Only whole chains of a multi-buffer frame go on
/// the ring.
#[inline]
fn flush_tx(xsk: &mut Xsk, backlog: &mut Vec<Desc>, outstanding: &mut usize, wait: &WaitPolicy, c: &WorkerCounters) {
    let mut take = xsk.tx_room(backlog.len());
    while take > 0 && backlog[take - 1].options & XDP_PKT_CONTD != 0 {
        take -= 1;
    }
    let n = xsk.tx_produce(&backlog[..take]);
    if n == 0 {
        return;
    }
    *outstanding += n;
    let bytes: u64 = backlog[..n].iter().map(|d| d.len as u64).sum();
    bump(&c.tx_packets, packets(&backlog[..n]) as u64);
    bump(&c.tx_bytes, bytes);
    backlog.drain(..n);
    kick(xsk, wait, c);
}

/// Copy mode transmits only when kicked; with need_wakeup, only when the kernel asks.
#[inline]
fn kick(xsk: &Xsk, wait: &WaitPolicy, counters: &WorkerCounters) {
    if wait.busy_poll.is_some() || !wait.need_wakeup || xsk.tx_needs_wakeup() {
        sys::kick_tx(xsk.fd());
        bump(&counters.wakeups, 1);
    }
}

/// Copy mode: kicks the kernel, and kicks again while it takes frames but leaves some (a
/// kick sends at most the TX budget, and less when the completion ring is short of
/// room). A backlog left on the ring would stay for good: every later kick sends a
/// budget's worth from behind it, so each frame waits a ring's depth between being
/// written and being copied into its skb, and the copy then misses the cache. On veth
/// that was the generator's slow state (2.45 against 2.7 Mpps, `tx_ring_empty_descs` no
/// longer counting one per kick), entered in some runs and kept to their end.
fn kick_until_taken(xsk: &mut Xsk, counters: &WorkerCounters) {
    let mut queued = xsk.tx_queued();
    while queued > 0 {
        sys::kick_tx(xsk.fd());
        bump(&counters.wakeups, 1);
        let left = xsk.tx_queued();
        // All taken, or nothing taken (the device stalls): the main loop kicks again.
        if left == 0 || left >= queued {
            break;
        }
        queued = left;
    }
}

/// Notes which chunks of `sent` hold a frame's last segment (see `tx_loop`); the first
/// call sizes `ends` to the UMEM (once per run).
#[cold]
fn mark_frame_ends(xsk: &Xsk, ends: &mut Vec<bool>, sent: &[Desc]) {
    if ends.is_empty() {
        ends.resize(xsk.umem_chunks(), false);
    }
    for d in sent {
        if let Some(e) = ends.get_mut(xsk.chunk_of(d.addr)) {
            *e = d.options & XDP_PKT_CONTD == 0;
        }
    }
}

/// What a transmit worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxTotals {
    /// Frames put on the TX ring (a multi-buffer frame counts once).
    pub sent: u64,
    /// Frames the kernel reported sent (completion ring: a multi-buffer frame counts
    /// once, when the completion of its last descriptor's chunk comes back).
    pub completed: u64,
    /// Bytes of the frames sent.
    pub bytes: u64,
    /// TX completion timestamps read back (all zero without AF_XDP TX metadata).
    pub stamps: super::txstamps::TxStamps,
}

/// The transmit loop: take free frames, let the source fill them, send them, recycle what
/// comes back on the completion ring. Ends when the source is done, `stop` is set or
/// `deadline_ns` (CLOCK_MONOTONIC) passes, after waiting up to a second for the kernel
/// to finish what is on the TX ring.
pub fn tx_loop<S: Source>(
    xsk: &mut Xsk,
    source: &mut S,
    batch: usize,
    wait: &WaitPolicy,
    counters: &WorkerCounters,
    stop: &AtomicBool,
    deadline_ns: Option<u64>,
) -> TxTotals {
    let mut descs: Vec<Desc> = Vec::with_capacity(batch);
    let mut comp = vec![0u64; batch.max(64) * 4];
    let mut t = TxTotals::default();
    let mut source_done = false;
    let mut drain_until: Option<u64> = None;
    // Frames produced since the last kick. Where the copy-mode TX budget was raised, a
    // kick sends up to the budget, so full batches are kicked once per budget's worth;
    // otherwise every batch is kicked. A short batch (pacing, a full ring) is kicked at once.
    let kick_every = xsk.tx_budget().map_or(batch, |b| (b as usize).max(batch));
    let mut unkicked = 0usize;
    // Descriptors sent and completed; with multi-buffer frames more than the frames.
    let (mut sent_descs, mut completed_descs) = (0u64, 0u64);
    // Once a multi-buffer frame was sent: which chunks hold the last segment of a frame
    // in flight (a completion of one of those completes a frame). Made once, then.
    let mut ends: Vec<bool> = Vec::new();
    // With a TX metadata area: the timestamps frames asked for, read at completion.
    let mut book = super::txstamps::StampBook::new(xsk);

    loop {
        let n = xsk.comp_consume(&mut comp);
        if n > 0 {
            if let Some(b) = &mut book {
                for &a in &comp[..n] {
                    // SAFETY: just consumed from the completion ring; the frames go back
                    // to the free list only below.
                    if let Some(ts) = unsafe { xsk.tx_timestamp(a) } {
                        b.completed(xsk, a, ts);
                    }
                }
            }
            completed_descs += n as u64;
            let done = if ends.is_empty() {
                n
            } else {
                comp[..n].iter().filter(|&&a| ends.get(xsk.chunk_of(a)).copied().unwrap_or(false)).count()
            };
            t.completed += done as u64;
            bump(&counters.tx_completed, done as u64);
            xsk.give_free(&comp[..n]);
        }
        let now = sys::monotonic_ns();
        if source_done || deadline_ns.is_some_and(|d| now >= d) || stop.load(Relaxed) {
            // Wait (briefly) for the kernel to finish what is on the TX ring.
            let until = *drain_until.get_or_insert(now + 1_000_000_000);
            if completed_descs >= sent_descs || now >= until {
                break;
            }
            sys::kick_tx(xsk.fd());
            bump(&counters.wakeups, 1);
            continue;
        }
        let want = xsk.tx_room(batch.min(xsk.free_frames()));
        if want == 0 {
            if !wait.need_wakeup || xsk.tx_needs_wakeup() {
                sys::kick_tx(xsk.fd());
                bump(&counters.wakeups, 1);
            }
            unkicked = 0;
            continue;
        }
        descs.clear();
        xsk.take_free(&mut descs, want);
        let (step, filled) = {
            // SAFETY: `descs` were just taken from this socket's free list and go to the
            // TX ring only after the batch is dropped at the end of this block.
            let mut b = unsafe { xsk.tx_batch(&mut descs) };
            let step = source.on_tx(&mut b, now);
            (step, b.filled())
        };
        if filled < descs.len() {
            xsk.give_free(&descs[filled..]);
        }
        if filled > 0 {
            let produced = xsk.tx_produce(&descs[..filled]);
            debug_assert_eq!(produced, filled, "tx_room reserved the space");
            if let Some(b) = &mut book {
                b.submitted(xsk, &descs[..produced], now);
            }
            let bytes: u64 = descs[..produced].iter().map(|d| d.len as u64).sum();
            let frames = packets(&descs[..produced]);
            if frames < produced || !ends.is_empty() {
                mark_frame_ends(xsk, &mut ends, &descs[..produced]);
            }
            sent_descs += produced as u64;
            t.sent += frames as u64;
            t.bytes += bytes;
            bump(&counters.tx_packets, frames as u64);
            bump(&counters.tx_bytes, bytes);
            bump(&counters.batch_hist[batch_bucket(frames)], 1);
            unkicked += produced;
            if (unkicked >= kick_every || produced < batch) && (!wait.need_wakeup || xsk.tx_needs_wakeup()) {
                if xsk.is_zerocopy() {
                    sys::kick_tx(xsk.fd());
                    bump(&counters.wakeups, 1);
                } else {
                    kick_until_taken(xsk, counters);
                }
                unkicked = 0;
            }
        }
        match step {
            SourceStep::Continue => {}
            SourceStep::Done => source_done = true,
            SourceStep::WaitUntil(next_ns) => {
                // Even pacing: sleep when the next frame is far off, spin when near; never
                // more than 10 ms at a time, so the stop and the deadline are seen.
                let wait_ns = next_ns.saturating_sub(sys::monotonic_ns());
                if wait_ns > 200_000 {
                    std::thread::sleep(std::time::Duration::from_nanos((wait_ns - 100_000).min(10_000_000)));
                }
            }
        }
    }
    if let Some(b) = book {
        t.stamps = b.stamps;
    }
    t
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use super::*;
    use crate::{
        sys::{HotCall, testing::override_hot_calls},
        xsk::{Batch, OutPort, TxBatch, TxRequest, fake},
    };

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

    /// Drops frames whose first byte is odd, sends the rest back with the first byte
    /// doubled, and stops the run after `batches` batches.
    struct OddDrop<'s> {
        stop: &'s AtomicBool,
        batches: u32,
        seen: Vec<usize>,
    }

    impl Stage for OddDrop<'_> {
        type Summary = ();
        fn on_batch(&mut self, batch: &mut Batch<'_>) {
            self.seen.push(batch.len());
            for mut f in batch.frames() {
                if f.bytes()[0] % 2 == 1 {
                    continue;
                }
                f.bytes_mut()[0] *= 2;
                f.set_len(f.len() - 1).expect("shorter always fits");
                assert!(f.set_len(f.room() + 1).is_err(), "past the chunk");
                assert!(f.set_len(0).is_err(), "a zero-length frame would never complete");
                f.set_verdict(Verdict::Tx);
            }
            self.batches -= 1;
            if self.batches == 0 {
                self.stop.store(true, Relaxed);
            }
        }
        fn finish(self) {}
    }

    fn busy() -> WaitPolicy {
        WaitPolicy { need_wakeup: false, sleep: None, idle_backoff_ns: 0, busy_poll: None, coalesce: None }
    }

    fn record_calls() -> (Rc<RefCell<Vec<HotCall>>>, sys::testing::Guard) {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let c2 = calls.clone();
        let guard = override_hot_calls(move |c| c2.borrow_mut().push(c));
        (calls, guard)
    }

    #[test]
    fn verdicts_recycle_or_transmit_each_frame_and_lengths_stick() {
        let (mut xsk, k) = fake::socket(16, 4096, 16, true, true);
        let fd = xsk.fd();
        // The fake kernel sends what is on the TX ring at each kick, and logs it.
        let k = Rc::new(k);
        let (k2, sent) = (k.clone(), Rc::new(RefCell::new(Vec::new())));
        let sent2 = sent.clone();
        let _guard = override_hot_calls(move |c| {
            assert_eq!(c, HotCall::KickTx { fd }, "only copy-mode TX kicks in a busy wait");
            let d = k2.take_tx();
            k2.complete(&d.iter().map(|x| x.addr).collect::<Vec<_>>());
            sent2.borrow_mut().extend(d.iter().map(|x| (x.addr, x.len, k2.read(x.addr, 1)[0])));
        });
        let fill = k.take_fill();
        assert_eq!(fill.len(), 16);
        // Five frames: first bytes 1, 2, 3, 4, 5, each 60 bytes long, at the headroom.
        let descs: Vec<Desc> = (0..5)
            .map(|i| {
                let addr = fill[i] + 256;
                k.write(addr, &[i as u8 + 1; 60]);
                Desc { addr, len: 60, options: 0 }
            })
            .collect();
        assert_eq!(k.receive(&descs), 5);
        let stop = AtomicBool::new(false);
        let mut stage = OddDrop { stop: &stop, batches: 2, seen: Vec::new() };
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut stage, None, 4, &busy(), &counters, &stop);
        assert_eq!(stage.seen, vec![4, 1], "batches of at most 4");
        assert_eq!(
            *sent.borrow(),
            vec![(descs[1].addr, 59, 4), (descs[3].addr, 59, 8)],
            "shortened, rewritten in place"
        );
        assert_eq!(
            k.take_fill(),
            vec![fill[0], fill[2], fill[1], fill[3], fill[4]],
            "dropped frames, then sent ones once completed, go back by their chunk's base"
        );
        let s = counters.snapshot();
        assert_eq!((s.rx_packets, s.tx_packets, s.tx_completed, s.rx_bytes, s.tx_bytes), (5, 2, 2, 300, 118));
    }

    /// Sends everything to port 0 (fwd), or to port 1 (which no pipeline here has).
    struct Redirect(u8, &'static AtomicBool);

    impl Stage for Redirect {
        type Summary = ();
        const TRANSMITS: bool = false;
        fn on_batch(&mut self, batch: &mut Batch<'_>) {
            batch.set_all(Verdict::Redirect(OutPort(self.0)));
            self.1.store(true, Relaxed);
        }
        fn finish(self) {}
    }

    #[test]
    fn redirects_copy_into_the_out_socket_and_unknown_ports_are_counted() {
        static STOP: AtomicBool = AtomicBool::new(false);
        let (_calls, _guard) = record_calls();
        let (mut xsk, k) = fake::socket(8, 4096, 8, true, false);
        let (oxsk, ok) = fake::socket(8, 4096, 8, false, true);
        let mut out = OutSocket { xsk: oxsk, shared: false };
        let fill = k.take_fill();
        k.write(fill[0] + 256, b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab");
        assert_eq!(k.receive(&[Desc { addr: fill[0] + 256, len: 60, options: 0 }]), 1);
        let counters = WorkerCounters::default();
        STOP.store(false, Relaxed);
        rx_loop(&mut xsk, Some(&mut out), &mut Redirect(0, &STOP), None, 64, &busy(), &counters, &STOP);
        let sent = ok.take_tx();
        assert_eq!(sent.len(), 1);
        assert_eq!(ok.read(sent[0].addr, 60), k.read(fill[0] + 256, 60), "copied byte for byte");
        assert_eq!(k.take_fill(), vec![fill[0]], "the original goes back to the fill ring");
        // Port 1 does not exist: counted, recycled, nothing sent.
        assert_eq!(k.receive(&[Desc { addr: fill[1] + 256, len: 60, options: 0 }]), 1);
        STOP.store(false, Relaxed);
        rx_loop(&mut xsk, Some(&mut out), &mut Redirect(1, &STOP), None, 64, &busy(), &counters, &STOP);
        assert!(ok.take_tx().is_empty());
        assert_eq!(counters.snapshot().unsendable, 1);
        assert_eq!(k.take_fill(), vec![fill[1]]);
    }

    #[test]
    fn an_empty_ring_sleeps_in_the_waiter_or_wakes_the_kernel_when_asked() {
        let (calls, _guard) = record_calls();
        let (mut xsk, k) = fake::socket(8, 4096, 8, true, false);
        let stop_event = sys::StopEvent::new().unwrap();
        let waiter = sys::ReadableWaiter::new(xsk.fd(), &stop_event).unwrap();
        let wait = WaitPolicy {
            need_wakeup: true,
            sleep: Some((waiter, 5)),
            idle_backoff_ns: 0,
            busy_poll: None,
            coalesce: None,
        };
        let counters = WorkerCounters::default();
        let stop = AtomicBool::new(false);
        struct Count;
        impl Stage for Count {
            type Summary = ();
            fn on_batch(&mut self, _: &mut Batch<'_>) {}
            fn finish(self) {}
        }
        // The loop runs for 20 ms.
        let run_20ms = |xsk: &mut Xsk| {
            stop.store(false, Relaxed);
            std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    stop.store(true, Relaxed);
                });
                rx_loop(xsk, None, &mut Count, None, 64, &wait, &counters, &stop);
            });
        };
        // need_wakeup on the fill ring: the worker wakes the kernel instead of sleeping.
        k.fill_needs_wakeup(true);
        run_20ms(&mut xsk);
        assert!(calls.borrow().iter().all(|c| matches!(c, HotCall::WakeupRx { .. })));
        assert!(!calls.borrow().is_empty());
        calls.borrow_mut().clear();
        k.fill_needs_wakeup(false);
        run_20ms(&mut xsk);
        // A copy bind: nothing can set need_wakeup behind the worker's back, and the
        // policy's timeout stands.
        assert!(calls.borrow().iter().all(|c| matches!(c, HotCall::Wait { timeout_ms: 5, .. })));
        assert!(!calls.borrow().is_empty());
        // Zero-copy: the driver may, and the sleep is bounded.
        fake::zero_copy(&mut xsk);
        calls.borrow_mut().clear();
        run_20ms(&mut xsk);
        assert!(calls.borrow().iter().all(|c| matches!(c, HotCall::Wait { timeout_ms: NEED_WAKEUP_RECHECK_MS, .. })));
    }

    #[test]
    fn a_wakeup_request_made_while_the_worker_sleeps_is_seen_without_readiness() {
        // The kernel sets need_wakeup on the fill ring while the worker sleeps, and the
        // socket never becomes readable. Each sleep below lasts its whole timeout (nothing
        // wakes it); an unbounded one would last forever and ends the test as a failure.
        let (mut xsk, k) = fake::socket(8, 4096, 8, true, false);
        fake::zero_copy(&mut xsk);
        let k = Rc::new(k);
        let stop_event = sys::StopEvent::new().unwrap();
        let waiter = sys::ReadableWaiter::new(xsk.fd(), &stop_event).unwrap();
        let wait = WaitPolicy {
            need_wakeup: true,
            sleep: Some((waiter, -1)),
            idle_backoff_ns: 0,
            busy_poll: None,
            coalesce: None,
        };
        let counters = WorkerCounters::default();
        static STOP: AtomicBool = AtomicBool::new(false);
        let calls = Rc::new(RefCell::new(Vec::new()));
        let (c2, k2) = (calls.clone(), k.clone());
        let _guard = override_hot_calls(move |c| {
            c2.borrow_mut().push(c);
            match c {
                HotCall::Wait { timeout_ms: -1, .. } => STOP.store(true, Relaxed),
                HotCall::Wait { timeout_ms, .. } => {
                    k2.fill_needs_wakeup(true);
                    std::thread::sleep(std::time::Duration::from_millis(timeout_ms as u64));
                }
                HotCall::WakeupRx { .. } => STOP.store(true, Relaxed),
                HotCall::KickTx { .. } => {}
            }
        });
        struct Nothing;
        impl Stage for Nothing {
            type Summary = ();
            fn on_batch(&mut self, _: &mut Batch<'_>) {}
            fn finish(self) {}
        }
        rx_loop(&mut xsk, None, &mut Nothing, None, 64, &wait, &counters, &STOP);
        let calls = calls.borrow();
        assert!(
            matches!(calls[..], [HotCall::Wait { timeout_ms: NEED_WAKEUP_RECHECK_MS, .. }, HotCall::WakeupRx { .. }]),
            "slept once, bounded, then woke the kernel: {calls:?}"
        );
        // Without need_wakeup nothing can ask, and the policy's timeout stands.
        assert_eq!(sleep_timeout(-1, false), -1);
        assert_eq!(sleep_timeout(500, true), NEED_WAKEUP_RECHECK_MS);
        assert_eq!(sleep_timeout(0, true), 0);
    }

    #[test]
    fn frames_a_full_tx_ring_still_holds_back_at_the_stop_are_counted_unsent() {
        // The fake kernel never sends: the TX ring (8) fills with the first batch and the
        // second batch stays in the backlog until the stop.
        let (mut xsk, k) = fake::socket(16, 4096, 8, true, true);
        let k = Rc::new(k);
        let fill = k.take_fill();
        assert_eq!(fill.len(), 8);
        let others: Vec<u64> = (0..16u64).map(|i| i * 4096).filter(|a| !fill.contains(a)).collect();
        let desc = |a: u64| Desc { addr: a + 256, len: 60, options: 0 };
        assert_eq!(k.receive(&fill.iter().map(|&a| desc(a)).collect::<Vec<_>>()), 8);
        let (k2, second) = (k.clone(), std::cell::Cell::new(false));
        let _guard = override_hot_calls(move |c| {
            if let HotCall::KickTx { .. } = c
                && !second.replace(true)
            {
                assert_eq!(k2.receive(&others.iter().map(|&a| desc(a)).collect::<Vec<_>>()), 8);
            }
        });
        static STOP: AtomicBool = AtomicBool::new(false);
        struct TxAll(u32);
        impl Stage for TxAll {
            type Summary = ();
            const TRANSMITS: bool = true;
            fn on_batch(&mut self, b: &mut Batch<'_>) {
                for mut f in b.frames() {
                    f.set_verdict(Verdict::Tx);
                }
                self.0 += 1;
                if self.0 == 2 {
                    STOP.store(true, Relaxed);
                }
            }
            fn finish(self) {}
        }
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut TxAll(0), None, 64, &busy(), &counters, &STOP);
        let c = counters.snapshot();
        assert_eq!((c.rx_packets, c.tx_packets, c.tx_unsent), (16, 8, 8), "{c:?}");
        assert_eq!(k.take_tx().len(), 8, "the first batch is on the TX ring");
    }

    /// Counts the batches it sees, and stops the run after `stop_after` of them.
    struct Batches {
        sizes: Vec<usize>,
        stop_after: usize,
        stop: &'static AtomicBool,
    }

    impl Stage for Batches {
        type Summary = ();
        fn on_batch(&mut self, b: &mut Batch<'_>) {
            self.sizes.push(b.len());
            if self.sizes.len() == self.stop_after {
                self.stop.store(true, Relaxed);
            }
        }
        fn finish(self) {}
    }

    /// Puts `n` 60-byte frames on the fake RX ring, taking their chunks from the fill
    /// ring (topping `pool` up from it first).
    fn deliver(k: &fake::Kernel, pool: &mut Vec<u64>, n: usize) -> usize {
        pool.extend(k.take_fill());
        let d: Vec<Desc> =
            pool.drain(..n.min(pool.len())).map(|a| Desc { addr: a + 256, len: 60, options: 0 }).collect();
        k.receive(&d)
    }

    /// The fake kernel, handed to a thread standing in for the NIC.
    struct NicThread(fake::Kernel);
    // SAFETY: the fake kernel's ring accesses are the atomics of the AF_XDP protocol (a
    // real kernel writes the same rings from another core); the test's Xsk, which owns
    // the memory, outlives the scope the thread runs in, and one thread at a time holds
    // the kernel (a mutex).
    unsafe impl Send for NicThread {}

    #[test]
    fn busy_poll_drives_napi_with_one_recvfrom_per_turn_and_never_sleeps() {
        static STOP: AtomicBool = AtomicBool::new(false);
        let (mut xsk, k) = fake::socket(64, 4096, 64, true, false);
        let k = Rc::new(k);
        let fd = xsk.fd();
        // Each recvfrom (a busy poll) makes the fake NAPI deliver 8 frames.
        let (calls, k2) = (Rc::new(RefCell::new(Vec::new())), k.clone());
        let c2 = calls.clone();
        let mut pool = Vec::new();
        let _guard = override_hot_calls(move |c| {
            c2.borrow_mut().push(c);
            if c == (HotCall::WakeupRx { fd }) {
                deliver(&k2, &mut pool, 8);
            }
        });
        let wait = WaitPolicy {
            need_wakeup: true,
            sleep: None,
            idle_backoff_ns: 0,
            busy_poll: Some(KernelBusyPoll::Recvfrom),
            coalesce: None,
        };
        let mut stage = Batches { sizes: Vec::new(), stop_after: 5, stop: &STOP };
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut stage, None, 64, &wait, &counters, &STOP);
        let calls = calls.borrow();
        assert!(calls.iter().all(|c| *c == HotCall::WakeupRx { fd }), "only recvfrom: {calls:?}");
        assert_eq!(stage.sizes, vec![8; 5], "each busy poll's frames are the next batch");
        assert_eq!(calls.len(), 5, "one recvfrom per batch");
    }

    #[test]
    fn epoll_busy_poll_makes_one_epoll_wait_per_empty_look_and_no_recvfrom() {
        static STOP: AtomicBool = AtomicBool::new(false);
        let (mut xsk, k) = fake::socket(64, 4096, 64, true, false);
        fake::zero_copy(&mut xsk);
        let k = Rc::new(k);
        // An eventfd stands in for the socket: the waits below never reach the kernel.
        // SAFETY: plain eventfd call; the fd is closed at the end of the test.
        let ev = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        let stop_event = sys::StopEvent::new().unwrap();
        let waiter = sys::ReadableWaiter::new(ev, &stop_event).unwrap();
        // Each epoll_wait (a busy poll of the NAPI) makes the fake NAPI deliver 8 frames.
        let (calls, k2) = (Rc::new(RefCell::new(Vec::new())), k.clone());
        let c2 = calls.clone();
        let mut pool = Vec::new();
        let _guard = override_hot_calls(move |c| {
            c2.borrow_mut().push(c);
            if matches!(c, HotCall::Wait { .. }) {
                deliver(&k2, &mut pool, 8);
            }
        });
        let wait = WaitPolicy {
            need_wakeup: true,
            sleep: None,
            idle_backoff_ns: 0,
            busy_poll: Some(KernelBusyPoll::Epoll(waiter, -1)),
            coalesce: None,
        };
        let mut stage = Batches { sizes: Vec::new(), stop_after: 5, stop: &STOP };
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut stage, None, 64, &wait, &counters, &STOP);
        let calls = calls.borrow();
        assert!(
            calls.iter().all(|c| matches!(c, HotCall::Wait { timeout_ms: NEED_WAKEUP_RECHECK_MS, .. })),
            "only epoll_wait, bounded for need_wakeup: {calls:?}"
        );
        assert_eq!(stage.sizes, vec![8; 5], "each poll's frames are the next batch");
        assert_eq!(calls.len(), 5, "one epoll_wait per empty look, none while frames are on the ring");
        assert_eq!(counters.snapshot().wakeups, 5);
        drop(wait);
        // SAFETY: `ev` is ours and no longer watched.
        unsafe { libc::close(ev) };
    }

    #[test]
    fn gather_sleeps_until_the_count_or_the_deadline_on_a_fake_clock() {
        let stop = AtomicBool::new(false);
        let c = Coalesce { us: 100, frames: 32 };
        // A fake clock that only sleeping moves; the sleeps are recorded.
        let clock = std::cell::Cell::new(0u64);
        let sleeps = std::cell::RefCell::new(Vec::new());
        let now = || clock.get();
        let sleep = |ns: u64| {
            sleeps.borrow_mut().push(ns);
            clock.set(clock.get() + ns);
        };
        let restart = || {
            clock.set(0);
            sleeps.borrow_mut().clear();
        };
        // No rate seen yet: quarter slices. Frames arrive at one per us: 32 are there
        // after the second 25 us slice, and the rate seen is 1 us per frame.
        let mut per = 0;
        let got = gather(c, &mut per, || (clock.get() / 1000) as u32, now, sleep, &stop);
        assert_eq!((got, clock.get()), (50, 50_000), "returned at the count, after two slices");
        assert_eq!(*sleeps.borrow(), [25_000, 25_000]);
        assert_eq!(per, 1_000);
        // With that rate, one sleep as long as the count takes.
        restart();
        assert_eq!(gather(c, &mut per, || (clock.get() / 1000) as u32, now, sleep, &stop), 32);
        assert_eq!(*sleeps.borrow(), [32_000]);
        // One frame per 10 us: the deadline comes first, with 10 there, after four slices;
        // the rate seen then makes the next gathering one sleep to the deadline.
        restart();
        let mut per = 0;
        let got = gather(c, &mut per, || (clock.get() / 10_000) as u32, now, sleep, &stop);
        assert_eq!((got, clock.get()), (10, 100_000));
        assert_eq!(sleeps.borrow().len(), 4);
        assert_eq!(per, 10_000);
        restart();
        gather(c, &mut per, || (clock.get() / 10_000) as u32, now, sleep, &stop);
        assert_eq!(*sleeps.borrow(), [100_000]);
        // A short time sleeps 10 us slices, never past the deadline.
        restart();
        let mut per = 0;
        gather(Coalesce { us: 15, frames: 32 }, &mut per, || 0, now, sleep, &stop);
        assert_eq!(*sleeps.borrow(), [10_000, 5_000]);
        assert_eq!(per, 0, "no frame, no rate");
        // Enough already: no sleep at all.
        restart();
        assert_eq!(gather(c, &mut per, || 40, now, sleep, &stop), 40);
        assert!(sleeps.borrow().is_empty());
        // The stop ends it.
        stop.store(true, Relaxed);
        assert_eq!(gather(c, &mut per, || 0, now, sleep, &stop), 0);
        assert!(sleeps.borrow().is_empty());
    }

    #[test]
    fn after_a_wakeup_frames_gather_into_one_batch_when_coalescing() {
        // Frames that arrive while the worker polls the ring can only come from another
        // thread: 4 at the wakeup (from the hot-call seam), then 4 every 200 us from a
        // thread standing in for the NIC, 16 in all.
        fn run(coalesce: Option<Coalesce>) -> Vec<usize> {
            static STOP: AtomicBool = AtomicBool::new(false);
            STOP.store(false, Relaxed);
            let (mut xsk, k) = fake::socket(64, 4096, 64, true, false);
            let k = std::sync::Arc::new(std::sync::Mutex::new((NicThread(k), Vec::new())));
            let stop_event = sys::StopEvent::new().unwrap();
            let waiter = sys::ReadableWaiter::new(xsk.fd(), &stop_event).unwrap();
            let wait = WaitPolicy {
                need_wakeup: false,
                sleep: Some((waiter, 1)),
                idle_backoff_ns: 0,
                busy_poll: None,
                coalesce,
            };
            let (k2, woke) = (k.clone(), std::sync::Arc::new(AtomicBool::new(false)));
            let woke2 = woke.clone();
            let _guard = override_hot_calls(move |c| {
                if let HotCall::Wait { .. } = c
                    && !woke2.swap(true, Relaxed)
                {
                    let (k, pool) = &mut *k2.lock().unwrap();
                    deliver(&k.0, pool, 4);
                }
            });
            let mut stage = Batches { sizes: Vec::new(), stop_after: usize::MAX, stop: &STOP };
            let counters = WorkerCounters::default();
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !woke.load(Relaxed) {
                        std::thread::yield_now();
                    }
                    for _ in 0..3 {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        let (k, pool) = &mut *k.lock().unwrap();
                        deliver(&k.0, pool, 4);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    STOP.store(true, Relaxed);
                });
                rx_loop(&mut xsk, None, &mut stage, None, 64, &wait, &counters, &STOP);
            });
            stage.sizes
        }
        assert_eq!(run(Some(Coalesce { us: 20_000, frames: 16 })), vec![16], "one batch of all 16");
        let plain = run(None);
        assert_eq!(plain.iter().sum::<usize>(), 16);
        assert!(plain.len() > 1, "without coalescing the first frames go alone: {plain:?}");
    }

    /// Sends `left` frames of 64 bytes numbered from 0, `per_call` at most per call.
    struct Numbered {
        left: u32,
        next: u8,
        per_call: usize,
    }

    impl Source for Numbered {
        type Summary = ();
        fn on_tx(&mut self, b: &mut TxBatch<'_>, _now: u64) -> SourceStep {
            for _ in 0..self.per_call {
                if self.left == 0 {
                    return SourceStep::Done;
                }
                let n = self.next;
                if !b.push(64, |buf| buf.fill(n)) {
                    break;
                }
                self.next += 1;
                self.left -= 1;
            }
            if self.left == 0 { SourceStep::Done } else { SourceStep::Continue }
        }
        fn finish(self) {}
    }

    #[test]
    fn a_source_sends_exactly_what_it_pushed_and_unused_frames_stay_free() {
        // The fake kernel completes every kick's frames at once.
        let (xsk, k) = fake::socket(8, 4096, 8, false, true);
        let k = Rc::new(k);
        let k2 = k.clone();
        let sent_log = Rc::new(RefCell::new(Vec::new()));
        let log2 = sent_log.clone();
        let _guard = override_hot_calls(move |c| {
            if let HotCall::KickTx { .. } = c {
                let d = k2.take_tx();
                for x in &d {
                    log2.borrow_mut().push(k2.read(x.addr, x.len as usize));
                }
                k2.complete(&d.iter().map(|x| x.addr).collect::<Vec<_>>());
            }
        });
        let mut xsk = xsk;
        let counters = WorkerCounters::default();
        let stop = AtomicBool::new(false);
        let mut src = Numbered { left: 20, next: 0, per_call: 3 };
        let t = tx_loop(&mut xsk, &mut src, 4, &busy(), &counters, &stop, None);
        assert_eq!((t.sent, t.completed, t.bytes), (20, 20, 20 * 64));
        let log = sent_log.borrow();
        assert_eq!(log.len(), 20);
        assert!(log.iter().enumerate().all(|(i, f)| f.len() == 64 && f.iter().all(|&b| b == i as u8)));
        assert_eq!(xsk.free_frames(), 8, "every frame came back");
    }

    /// Sends three 64-byte frames: checksum and timestamp asked, nothing, timestamp.
    struct Requests(usize);

    impl Source for Requests {
        type Summary = ();
        fn on_tx(&mut self, b: &mut TxBatch<'_>, _now: u64) -> SourceStep {
            const REQ: [TxRequest; 3] = [
                TxRequest { checksum: Some((34, 6)), timestamp: true },
                TxRequest::NONE,
                TxRequest { checksum: None, timestamp: true },
            ];
            while self.0 < 3 && b.push_frame_with(64, &REQ[self.0], |_, buf| buf.fill(7)) {
                self.0 += 1;
            }
            if self.0 == 3 { SourceStep::Done } else { SourceStep::Continue }
        }
        fn finish(self) {}
    }

    #[test]
    fn tx_metadata_requests_reach_the_descriptors_and_timestamps_are_read_at_completion() {
        use crate::xsk::{TX_METADATA_LEN, XDP_TX_METADATA};
        let (mut xsk, k) = fake::socket_with_tx_metadata(8, 4096, 8);
        let k = Rc::new(k);
        let k2 = k.clone();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let seen2 = seen.clone();
        let _guard = override_hot_calls(move |c| {
            if let HotCall::KickTx { .. } = c {
                let d = k2.take_tx();
                for x in &d {
                    let area = k2.read(x.addr - TX_METADATA_LEN as u64, TX_METADATA_LEN as usize);
                    // The kernel's completion: a CLOCK_TAI timestamp over the request.
                    if area[0] & 1 != 0 {
                        k2.write(x.addr - 16, &crate::sys::tai_ns().to_ne_bytes());
                    }
                    seen2.borrow_mut().push((x.options, area));
                }
                k2.complete(&d.iter().map(|x| x.addr).collect::<Vec<_>>());
            }
        });
        let (counters, stop) = (WorkerCounters::default(), AtomicBool::new(false));
        let t = tx_loop(&mut xsk, &mut Requests(0), 4, &busy(), &counters, &stop, None);
        assert_eq!((t.sent, t.completed), (3, 3));
        let seen = seen.borrow();
        let options: Vec<u32> = seen.iter().map(|s| s.0).collect();
        assert_eq!(options, vec![XDP_TX_METADATA, 0, XDP_TX_METADATA], "only frames that ask are flagged");
        let mut want = [0u8; 24];
        want[0] = 3; // XDP_TXMD_FLAGS_TIMESTAMP | XDP_TXMD_FLAGS_CHECKSUM
        want[8..10].copy_from_slice(&34u16.to_ne_bytes());
        want[10..12].copy_from_slice(&6u16.to_ne_bytes());
        assert_eq!(seen[0].1, want);
        assert_eq!(seen[1].1, [0u8; 24], "a frame asking nothing has its area cleared");
        assert_eq!(seen[2].1[0], 1);
        let st = t.stamps;
        assert_eq!((st.requested, st.stamped, st.latency_frames), (2, 2, 2), "{st:?}");
        assert!(st.first_ns > 0 && st.first_ns <= st.last_ns && st.latency_max_ns < 1_000_000_000, "{st:?}");
    }

    /// A 9014 B frame (a 9000 B MTU's largest without FCS) from the generator's
    /// template, stamped, as the kernel would split it over UMEM chunks at their headroom:
    /// 3840, 3840 and 1334 bytes.
    fn jumbo_chain(k: &fake::Kernel, chunks: &[u64], seq: u32) -> Vec<Desc> {
        use crate::wire::{
            stamp::Stamp,
            udpgen::{FrameTemplate, UdpFlow},
        };
        let flow = UdpFlow {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "10.0.0.2".parse().unwrap(),
            src_port: 10000,
            dst_port: 18000,
            vlan: Default::default(),
        };
        let t = FrameTemplate::new(&flow, 9014).unwrap();
        let mut frame = vec![0u8; 9014];
        t.write(&mut frame, &Stamp { flow: 0, seq, tx_ns: 1 });
        let mut descs = Vec::new();
        for (i, seg) in frame.chunks(4096 - 256).enumerate() {
            let addr = chunks[i] + 256;
            k.write(addr, seg);
            descs.push(Desc { addr, len: seg.len() as u32, options: XDP_PKT_CONTD });
        }
        descs.last_mut().unwrap().options = 0;
        descs
    }

    /// Records each frame's (length, segment lengths, first byte of each segment), sends
    /// multi-buffer frames back out (Tx) and stops the run after `frames` frames.
    struct Segs<'s> {
        stop: &'s AtomicBool,
        frames: usize,
        seen: Vec<(usize, Vec<usize>, Vec<u8>)>,
        batches: Vec<usize>,
    }

    impl Stage for Segs<'_> {
        type Summary = ();
        const TRANSMITS: bool = true;
        fn on_batch(&mut self, batch: &mut Batch<'_>) {
            self.batches.push(batch.len());
            assert_eq!(batch.frames().len(), batch.len());
            for mut f in batch.frames() {
                let lens: Vec<usize> = f.segments().map(<[u8]>::len).collect();
                assert_eq!(lens.len(), f.segment_count());
                assert_eq!(lens[0], f.bytes().len(), "bytes() is the first segment");
                self.seen.push((f.len(), lens, f.segments().map(|s| s[0]).collect()));
                if f.segment_count() > 1 {
                    assert!(f.set_len(f.len() - 1).is_err(), "a multi-buffer frame keeps its length");
                    assert!(f.set_len(f.len()).is_ok());
                    assert_eq!(f.room(), f.len());
                    f.set_verdict(Verdict::Tx);
                }
            }
            if self.seen.len() >= self.frames {
                self.stop.store(true, Relaxed);
            }
        }
        fn finish(self) {}
    }

    #[test]
    fn a_chain_is_one_frame_across_batches_and_is_sent_and_recycled_whole() {
        let (mut xsk, k) = fake::socket(16, 4096, 16, true, true);
        let fd = xsk.fd();
        let k = Rc::new(k);
        let fill = k.take_fill();
        let (k2, sent) = (k.clone(), Rc::new(RefCell::new(Vec::new())));
        let sent2 = sent.clone();
        let _guard = override_hot_calls(move |c| {
            assert_eq!(c, HotCall::KickTx { fd });
            let d = k2.take_tx();
            k2.complete(&d.iter().map(|x| x.addr).collect::<Vec<_>>());
            sent2.borrow_mut().extend(d);
        });
        let chain = jumbo_chain(&k, &fill[..3], 7);
        let single = Desc { addr: fill[3] + 256, len: 60, options: 0 };
        k.write(single.addr, &[9; 60]);
        let mut ring: Vec<Desc> = chain.clone();
        ring.push(single);
        assert_eq!(k.receive(&ring), 4);
        let stop = AtomicBool::new(false);
        let mut stage = Segs { stop: &stop, frames: 2, seen: Vec::new(), batches: Vec::new() };
        let counters = WorkerCounters::default();
        // Batches of 2 descriptors: the first consume takes the chain's first two
        // segments only, which wait for the third.
        rx_loop(&mut xsk, None, &mut stage, None, 2, &busy(), &counters, &stop);
        assert_eq!(stage.batches, vec![2], "one batch: the chain and the single frame");
        assert_eq!(stage.seen[0].0, 9014);
        assert_eq!(stage.seen[0].1, vec![3840, 3840, 1334]);
        assert_eq!(stage.seen[0].2[0], 2, "the Ethernet header (destination MAC) leads");
        assert_eq!(stage.seen[1], (60, vec![60], vec![9]));
        assert_eq!(*sent.borrow(), chain, "the chain went out whole, XDP_PKT_CONTD on all but its last");
        assert_eq!(k.take_fill(), vec![fill[3]], "the single frame went back to the fill ring");
        let mut done = [0u64; 8];
        assert_eq!(xsk.comp_consume(&mut done), 3, "the chain's three chunks complete one by one");
        let s = counters.snapshot();
        assert_eq!((s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes), (2, 9014 + 60, 1, 9014));
        assert_eq!((s.tx_completed, s.bad_descs), (0, 0), "the completions were still on their ring at the stop");
    }

    /// Counts frames and their segment lengths; stops after one batch.
    struct SeeAll<'s>(&'s AtomicBool, Vec<Vec<usize>>);

    impl Stage for SeeAll<'_> {
        type Summary = ();
        fn on_batch(&mut self, batch: &mut Batch<'_>) {
            for f in batch.frames() {
                self.1.push(f.segments().map(<[u8]>::len).collect());
            }
            self.0.store(true, Relaxed);
        }
        fn finish(self) {}
    }

    #[test]
    fn hostile_chains_are_dropped_whole_counted_and_their_chunks_recycled() {
        let (mut xsk, k) = fake::socket(64, 4096, 64, true, false);
        let fill = k.take_fill();
        assert_eq!(fill.len(), 64);
        let d = |i: usize, len: u32, contd: bool| Desc {
            addr: fill[i] + 256,
            len,
            options: if contd { XDP_PKT_CONTD } else { 0 },
        };
        let mut ring = Vec::new();
        // 1. A continuation outside the UMEM: the whole chain (3) goes.
        ring.extend([d(0, 3840, true), Desc { addr: 1 << 40, len: 100, options: XDP_PKT_CONTD }, d(1, 10, false)]);
        // 2. A chain that does not end within MAX_SEGS: dropped at its 18th descriptor,
        //    and what follows of it up to its end (20 in all).
        ring.extend((2..21).map(|i| d(i, 100, true)));
        ring.push(d(21, 100, false));
        // 3. A chain of exactly MAX_SEGS descriptors: a frame.
        ring.extend((22..39).map(|i| d(i, 100, true)));
        ring.push(d(39, 100, false));
        // 4. A segment that runs past its chunk ends its chain's use (2).
        ring.extend([d(40, 100, true), Desc { addr: fill[41] + 4000, len: 200, options: 0 }]);
        // 5. A good single frame, with an option bit that means nothing on RX.
        ring.push(Desc { options: 0x80, ..d(42, 60, false) });
        assert_eq!(ring.len(), 44);
        assert_eq!(k.receive(&ring), 44);
        let stop = AtomicBool::new(false);
        let mut stage = SeeAll(&stop, Vec::new());
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut stage, None, 64, &busy(), &counters, &stop);
        assert_eq!(stage.1, vec![vec![100; MAX_SEGS], vec![60]], "only the good frames reach the stage");
        let s = counters.snapshot();
        assert_eq!((s.rx_packets, s.rx_bytes), (2, 100 * MAX_SEGS as u64 + 60));
        assert_eq!(s.bad_descs, 3 + 20 + 2, "every descriptor of a dropped chain is counted");
        // Every chunk of ours the kernel handed over (43: all but the address outside the
        // UMEM) is back on the fill ring or on the free list (topped onto the fill ring
        // after the next batch), once.
        let mut back = k.take_fill();
        back.sort();
        back.dedup();
        assert!(back.iter().all(|a| fill[..43].contains(a)));
        assert_eq!(back.len() + xsk.free_frames(), 43, "no chunk lost, none twice");
    }

    #[test]
    fn a_chain_cut_off_at_the_stop_goes_back_unused() {
        let (mut xsk, k) = fake::socket(8, 4096, 8, true, false);
        let fill = k.take_fill();
        // Never ends: two segments with XDP_PKT_CONTD, then nothing.
        let ring = [
            Desc { addr: fill[0] + 256, len: 3840, options: XDP_PKT_CONTD },
            Desc { addr: fill[1] + 256, len: 3840, options: XDP_PKT_CONTD },
        ];
        assert_eq!(k.receive(&ring), 2);
        static STOP: AtomicBool = AtomicBool::new(false);
        let (_calls, _guard) = record_calls();
        let mut stage = SeeAll(&STOP, Vec::new());
        let counters = WorkerCounters::default();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                STOP.store(true, Relaxed);
            });
            rx_loop(&mut xsk, None, &mut stage, None, 64, &busy(), &counters, &STOP);
        });
        assert!(stage.1.is_empty(), "no frame reached the stage");
        assert_eq!(counters.snapshot().rx_packets, 0);
        let mut back = k.take_fill();
        back.sort();
        let mut want = vec![fill[0], fill[1]];
        want.sort();
        assert_eq!(back, want, "the chunks went back to the fill ring");
    }

    /// Parses (and stops the run after) every batch.
    struct ParseOnce<'s>(&'s AtomicBool, crate::stages::Parse);

    impl Stage for ParseOnce<'_> {
        type Summary = ();
        fn on_batch(&mut self, batch: &mut Batch<'_>) {
            self.1.on_batch(batch);
            self.0.store(true, Relaxed);
        }
        fn finish(self) {}
    }

    #[test]
    fn parse_and_the_stamp_reader_see_a_multi_buffer_frame_whole() {
        let (mut xsk, k) = fake::socket(8, 4096, 8, true, false);
        let fill = k.take_fill();
        assert_eq!(k.receive(&jumbo_chain(&k, &fill[..3], 41)), 3);
        let stop = AtomicBool::new(false);
        let mut stage = ParseOnce(&stop, crate::stages::Parse::default());
        let mut acct = Accounting::new();
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut stage, Some(&mut acct), 64, &busy(), &counters, &stop);
        let p = stage.1.summary();
        assert_eq!((p.frames, p.udp, p.malformed, p.flows), (1, 1, 0, 1), "{p:?}");
        let a = acct.summary();
        assert_eq!((a.stamped, a.unstamped), (1, 0), "the stamp is read from the first segment");
    }

    /// Sends `left` frames of `len` bytes (each byte its offset mod 251), as many per
    /// call as fit.
    struct Jumbo {
        left: u32,
        len: usize,
        refused: u32,
    }

    impl Source for Jumbo {
        type Summary = ();
        fn on_tx(&mut self, b: &mut TxBatch<'_>, _now: u64) -> SourceStep {
            while self.left > 0 {
                let ok = b.push_frame(self.len, |off, buf| {
                    for (i, x) in buf.iter_mut().enumerate() {
                        *x = ((off + i) % 251) as u8;
                    }
                });
                if !ok {
                    self.refused += 1;
                    break;
                }
                self.left -= 1;
            }
            if self.left == 0 { SourceStep::Done } else { SourceStep::Continue }
        }
        fn finish(self) {}
    }

    #[test]
    fn a_source_sends_multi_buffer_frames_as_whole_chains_counted_once() {
        let (xsk, k) = fake::socket(8, 4096, 8, false, true);
        let k = Rc::new(k);
        let k2 = k.clone();
        let frames = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
        let (f2, open) = (frames.clone(), Rc::new(RefCell::new(Vec::new())));
        let _guard = override_hot_calls(move |c| {
            if let HotCall::KickTx { .. } = c {
                let d = k2.take_tx();
                for x in &d {
                    open.borrow_mut().extend(k2.read(x.addr, x.len as usize));
                    if x.options & XDP_PKT_CONTD == 0 {
                        f2.borrow_mut().push(std::mem::take(&mut *open.borrow_mut()));
                    }
                }
                k2.complete(&d.iter().map(|x| x.addr).collect::<Vec<_>>());
            }
        });
        let mut xsk = xsk;
        let counters = WorkerCounters::default();
        let stop = AtomicBool::new(false);
        // 8 chunks, batches of 4 descriptors: one 3-segment frame per call fits, a second
        // does not.
        let mut src = Jumbo { left: 5, len: 9014, refused: 0 };
        let t = tx_loop(&mut xsk, &mut src, 4, &busy(), &counters, &stop, None);
        assert_eq!((t.sent, t.completed, t.bytes), (5, 5, 5 * 9014));
        assert!(src.refused > 0, "a frame that does not fit the batch's descriptors waits");
        let frames = frames.borrow();
        assert_eq!(frames.len(), 5);
        assert!(frames.iter().all(|f| f.len() == 9014 && f.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8)));
        let s = counters.snapshot();
        assert_eq!((s.tx_packets, s.tx_completed, s.tx_bytes), (5, 5, 5 * 9014));
        assert_eq!(xsk.free_frames(), 8, "every chunk came back");
    }

    #[test]
    fn only_whole_chains_go_on_the_tx_ring() {
        // A 4-entry TX ring the fake kernel never empties: the first chain (3) fits, the
        // second finds 1 slot and must wait whole rather than go out cut.
        let (mut xsk, k) = fake::socket(16, 4096, 4, true, true);
        let k = Rc::new(k);
        let fill = k.take_fill();
        assert_eq!(fill.len(), 4);
        let others: Vec<u64> = (0..16u64).map(|i| i * 4096).filter(|a| !fill.contains(a)).collect();
        let chain = |c: &[u64]| -> Vec<Desc> {
            c.iter()
                .enumerate()
                .map(|(i, &a)| Desc { addr: a + 256, len: 100, options: if i < 2 { XDP_PKT_CONTD } else { 0 } })
                .collect()
        };
        let (a, b) = (chain(&fill[..3]), chain(&others[..3]));
        assert_eq!(k.receive(&a), 3);
        let (k2, second, b2) = (k.clone(), std::cell::Cell::new(false), b.clone());
        let _guard = override_hot_calls(move |c| {
            if let HotCall::KickTx { .. } = c
                && !second.replace(true)
            {
                assert_eq!(k2.receive(&b2), 3);
            }
        });
        static STOP: AtomicBool = AtomicBool::new(false);
        struct TxAll(u32);
        impl Stage for TxAll {
            type Summary = ();
            const TRANSMITS: bool = true;
            fn on_batch(&mut self, b: &mut Batch<'_>) {
                b.set_all(Verdict::Tx);
                self.0 += 1;
                if self.0 == 2 {
                    STOP.store(true, Relaxed);
                }
            }
            fn finish(self) {}
        }
        let counters = WorkerCounters::default();
        rx_loop(&mut xsk, None, &mut TxAll(0), None, 64, &busy(), &counters, &STOP);
        assert_eq!(k.take_tx(), a, "the first chain alone is on the ring");
        let c = counters.snapshot();
        assert_eq!((c.rx_packets, c.tx_packets, c.tx_unsent), (2, 1, 1), "{c:?}");
    }
}

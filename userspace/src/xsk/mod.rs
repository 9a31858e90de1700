//! One AF_XDP socket with its UMEM and rings (fill and completion always; RX and TX as
//! configured), on xdpipe's own ring layer (`ring`). This is, with `sys`, the only module
//! that touches frames and rings.
//!
//! Frame ownership: a frame (a chunk of this socket's UMEM) is either owned by userspace
//! or by the kernel (on the fill or TX ring, until it comes back on RX or completion). A
//! slice over frame data may only exist while userspace owns the frame: after RX consume
//! / completion consume / taking it from the free list, before it is produced to the fill
//! or TX ring. Workers keep this by construction: they only get slices for descriptors
//! they just consumed and hand descriptors back afterwards.
//!
//! Why not xsk-rs (measured, see the README): it always creates a TX ring, and in copy
//! mode every wakeup of a sleeping socket with a TX ring runs a TX pass (a mutex) in the
//! kernel; rxdrop and parse need no TX ring. Its ring calls are out-of-line C, and it
//! writes every fill-ring slot; `ring` is inline Rust and leaves unchanged slots alone.
#![allow(unsafe_code)]

mod ring;

use std::{
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    sync::Arc,
};

use ring::{ConsRing, ProdRing};

use crate::{
    config::{BindMode, FrameSize, RingSize},
    sys::{self, Mapping, RingKind, SysError},
};

/// Bytes the kernel reserves at the start of every UMEM frame (XDP_PACKET_HEADROOM).
const XDP_PACKET_HEADROOM: u32 = 256;

/// A frame descriptor as the RX and TX rings carry it (`struct xdp_desc`): where the
/// frame's bytes start in the UMEM, how many there are, and option bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

const _: () = assert!(std::mem::size_of::<Desc>() == std::mem::size_of::<libc::xdp_desc>());

/// Anything that names a UMEM frame: a descriptor or a bare address.
pub trait FrameAddr: Copy {
    fn addr(&self) -> u64;
}

impl FrameAddr for Desc {
    #[inline]
    fn addr(&self) -> u64 {
        self.addr
    }
}

impl FrameAddr for u64 {
    #[inline]
    fn addr(&self) -> u64 {
        *self
    }
}

/// Sizes and flags of one socket.
#[derive(Clone, Copy, Debug)]
pub struct XskConfig {
    pub frame_size: FrameSize,
    /// Frames in the UMEM.
    pub frames: u32,
    pub fill_size: RingSize,
    pub comp_size: RingSize,
    /// None: no RX ring (a socket that only sends).
    pub rx_size: Option<RingSize>,
    /// None: no TX ring (a socket that only receives; in copy mode, a wakeup then runs no
    /// TX pass in the kernel).
    pub tx_size: Option<RingSize>,
    pub bind: BindMode,
    pub need_wakeup: bool,
    /// Copy mode: TX descriptors one kick sends (XDP_MAX_TX_SKB_BUDGET, Linux 6.17+);
    /// 0 keeps the kernel's 32.
    pub tx_budget: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("creating a UMEM of {frames} x {frame_size} B frames: {source}")]
    Umem {
        frames: u32,
        frame_size: u32,
        #[source]
        source: SysError,
    },
    #[error("invalid UMEM configuration: {0}")]
    UmemConfig(String),
    #[error("interface {iface:?} does not exist in this network namespace (see `ip link`)")]
    NoSuchInterface { iface: String },
    #[error(
        "{iface} queue {queue}: zero-copy bind refused (errno {errno}): the driver has no AF_XDP \
         zero-copy support for this queue; use --bind copy or --bind auto"
    )]
    ZeroCopyUnsupported { iface: String, queue: u32, errno: i32 },
    #[error(
        "{iface} queue {queue}: the queue is already in use by another AF_XDP socket (EBUSY); is another xdpipe or xdpsock running?"
    )]
    QueueBusy { iface: String, queue: u32 },
    #[error("{iface} queue {queue}: the device has no such queue (EINVAL on bind); see `ethtool -l {iface}`")]
    NoSuchQueue { iface: String, queue: u32 },
    #[error("{iface} queue {queue}: creating the AF_XDP socket failed: {source}")]
    Socket {
        iface: String,
        queue: u32,
        #[source]
        source: SysError,
    },
    #[error(
        "{iface} queue {queue}: --tx-budget {budget} refused: {detail} (it must be 32 to the TX ring size, or 0 for the kernel's default)"
    )]
    TxBudget { iface: String, queue: u32, budget: u32, detail: String },
}

/// The UMEM: one anonymous mapping cut into equal frames, registered with the socket that
/// created it and shared (XDP_SHARED_UMEM) by any further socket.
struct Umem {
    area: Mapping,
    frame_size: u32,
}

impl Umem {
    /// A pointer to `len` bytes at `addr`, or None if that range is not inside the UMEM
    /// (descriptors come from the kernel and from our own rings; neither is trusted to
    /// index memory unchecked).
    #[inline]
    fn range(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let end = (addr as usize).checked_add(len)?;
        // SAFETY: `addr` is within the mapping (end <= len), so the pointer stays inside it.
        (end <= self.area.len()).then(|| unsafe { self.area.as_ptr().add(addr as usize) })
    }
}

/// An AF_XDP socket bound to one (interface, queue), with its UMEM and rings.
pub struct Xsk {
    // Field order is drop order: rings are unmapped before the socket closes, and the
    // UMEM (shared with sockets opened by `open_shared`) goes last.
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: Option<ConsRing<Desc>>,
    tx: Option<ProdRing<Desc>>,
    fd: OwnedFd,
    umem: Arc<Umem>,
    /// Frames userspace owns and has no use for yet (stack of frame base addresses).
    free: Vec<u64>,
    /// Clears the offset within a frame: `addr & frame_mask` is the frame's base.
    frame_mask: u64,
    zerocopy: bool,
    /// Copy-mode TX descriptors one kick sends, where xdpipe raised it (see set_tx_budget).
    tx_budget: Option<u32>,
}

/// Copy mode sends at most 32 TX descriptors per kick unless the socket asks for more;
/// one kick per batch then saves syscalls (measured in the README). Kernels before 6.17
/// lack the option and keep 32, with a warning once. Returns the budget now in effect
/// (None: the kernel's own, or zero-copy, where the driver pulls descriptors itself).
fn set_tx_budget(fd: RawFd, cfg: &XskConfig, zerocopy: bool, iface: &str, queue: u32) -> Result<Option<u32>, XskError> {
    if cfg.tx_budget == 0 || zerocopy || cfg.tx_size.is_none() {
        return Ok(None);
    }
    match sys::set_tx_budget(fd, cfg.tx_budget) {
        Ok(()) => Ok(Some(cfg.tx_budget)),
        Err(e) if e.errno() == Some(libc::ENOPROTOOPT) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                log::warn!(
                    "this kernel has no XDP_MAX_TX_SKB_BUDGET (Linux 6.17+): copy-mode TX sends 32 frames per kick"
                )
            });
            Ok(None)
        }
        Err(e) => Err(XskError::TxBudget { iface: iface.into(), queue, budget: cfg.tx_budget, detail: e.to_string() }),
    }
}

/// Creates the ring of `kind` on `fd` and maps it.
fn make_ring(fd: RawFd, kind: RingKind, size: RingSize) -> Result<(Mapping, sys::RingOffsets), SysError> {
    sys::set_ring_size(fd, kind, size.get())?;
    let off = sys::ring_offsets(fd, kind)?;
    let map = sys::map_ring(fd, kind, &off, size.get())?;
    Ok((map, off))
}

/// The rings of a socket, made before bind: fill and completion on every socket (each
/// (device, queue) needs its own), RX and TX as configured.
struct Rings {
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: Option<ConsRing<Desc>>,
    tx: Option<ProdRing<Desc>>,
}

fn make_rings(fd: RawFd, cfg: &XskConfig) -> Result<Rings, SysError> {
    let (fmap, foff) = make_ring(fd, RingKind::Fill, cfg.fill_size)?;
    let (cmap, coff) = make_ring(fd, RingKind::Completion, cfg.comp_size)?;
    // SAFETY (all four): each mapping is the kernel's ring of that kind, `size` entries of
    // the type the kernel uses for it (u64 on fill/completion, xdp_desc on RX/TX, which
    // `Desc` mirrors), laid out as XDP_MMAP_OFFSETS said.
    let fill = unsafe { ProdRing::new(fmap, &foff, cfg.fill_size.get()) };
    // SAFETY: as above.
    let comp = unsafe { ConsRing::new(cmap, &coff, cfg.comp_size.get()) };
    let rx = match cfg.rx_size {
        Some(s) => {
            let (m, o) = make_ring(fd, RingKind::Rx, s)?;
            // SAFETY: as above.
            Some(unsafe { ConsRing::new(m, &o, s.get()) })
        }
        None => None,
    };
    let tx = match cfg.tx_size {
        Some(s) => {
            let (m, o) = make_ring(fd, RingKind::Tx, s)?;
            // SAFETY: as above.
            Some(unsafe { ProdRing::new(m, &o, s.get()) })
        }
        None => None,
    };
    Ok(Rings { fill, comp, rx, tx })
}

impl Xsk {
    pub fn open(iface: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        let fs = cfg.frame_size.get();
        if cfg.frames == 0 {
            return Err(XskError::UmemConfig("zero frames".into()));
        }
        if cfg.rx_size.is_none() && cfg.tx_size.is_none() {
            return Err(XskError::UmemConfig("a socket needs an RX or a TX ring".into()));
        }
        let ifindex = sys::ifindex(iface).ok_or_else(|| XskError::NoSuchInterface { iface: iface.into() })?;
        let len = cfg.frames as usize * fs as usize;
        let umem_err = |source| XskError::Umem { frames: cfg.frames, frame_size: fs, source };
        let area = sys::map_anonymous(len).map_err(umem_err)?;
        let sock_err = |source| XskError::Socket { iface: iface.into(), queue, source };
        let fd = sys::xdp_socket().map_err(sock_err)?;
        sys::register_umem(fd.as_raw_fd(), &area, fs).map_err(umem_err)?;
        let mut rings = make_rings(fd.as_raw_fd(), cfg).map_err(sock_err)?;
        // Frames go on the fill ring before bind: a zero-copy driver fills its hardware
        // ring from it while binding, and one that finds it empty may wait for a wakeup
        // (virtio-net's only schedules its TX side) before it ever receives.
        let mut free: Vec<u64> = (0..cfg.frames as u64).rev().map(|i| i * fs as u64).collect();
        if cfg.rx_size.is_some() {
            fill_from(&mut rings.fill, &mut free, usize::MAX);
        }
        let mut flags = match cfg.bind {
            BindMode::Copy => libc::XDP_COPY,
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
            BindMode::Auto => 0,
        };
        if cfg.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        sys::bind_xdp(&fd, ifindex, queue, flags, None).map_err(|e| bind_error(e, iface, queue, cfg.bind))?;
        let umem = Arc::new(Umem { area, frame_size: fs });
        Self::finish(fd, rings, umem, free, iface, queue, cfg)
    }

    /// Opens a second socket on (`iface`, `queue`) that shares this socket's UMEM
    /// (XDP_SHARED_UMEM, with its own fill and completion rings). Frames of either socket
    /// can then go to the other's rings without a copy. It starts with no free frames: the
    /// frame pool stays with `self`.
    pub fn open_shared(&self, iface: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        let ifindex = sys::ifindex(iface).ok_or_else(|| XskError::NoSuchInterface { iface: iface.into() })?;
        let sock_err = |source| XskError::Socket { iface: iface.into(), queue, source };
        let fd = sys::xdp_socket().map_err(sock_err)?;
        let rings = make_rings(fd.as_raw_fd(), cfg).map_err(sock_err)?;
        sys::bind_xdp(&fd, ifindex, queue, 0, Some(self.fd.as_raw_fd()))
            .map_err(|e| bind_error(e, iface, queue, cfg.bind))?;
        Self::finish(fd, rings, self.umem.clone(), Vec::new(), iface, queue, cfg)
    }

    fn finish(
        fd: OwnedFd,
        rings: Rings,
        umem: Arc<Umem>,
        free: Vec<u64>,
        iface: &str,
        queue: u32,
        cfg: &XskConfig,
    ) -> Result<Self, XskError> {
        let zerocopy = sys::xdp_is_zerocopy(fd.as_raw_fd()).unwrap_or(false);
        let tx_budget = set_tx_budget(fd.as_raw_fd(), cfg, zerocopy, iface, queue)?;
        let frame_mask = !(umem.frame_size as u64 - 1);
        let Rings { fill, comp, rx, tx } = rings;
        Ok(Self { fill, comp, rx, tx, fd, umem, free, frame_mask, zerocopy, tx_budget })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The copy-mode TX budget in effect, if xdpipe raised it (None: the kernel's 32, or
    /// zero-copy).
    pub fn tx_budget(&self) -> Option<u32> {
        self.tx_budget
    }

    /// True if the kernel bound this socket in zero-copy mode.
    pub fn is_zerocopy(&self) -> bool {
        self.zerocopy
    }

    /// Largest frame a TX descriptor can carry (frame size minus the XDP headroom).
    pub fn max_frame_len(&self) -> usize {
        (self.umem.frame_size - XDP_PACKET_HEADROOM) as usize
    }

    /// Frames userspace holds and has not put on any ring.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Takes up to `n` free frames as empty TX descriptors (data after the headroom), for
    /// the generator to fill and send.
    pub fn take_free(&mut self, out: &mut Vec<Desc>, n: usize) {
        let k = n.min(self.free.len());
        let from = self.free.len() - k;
        out.extend(self.free.drain(from..).map(|base| Desc {
            addr: base + XDP_PACKET_HEADROOM as u64,
            len: 0,
            options: 0,
        }));
    }

    /// Returns frames to the free list.
    pub fn give_free<A: FrameAddr>(&mut self, frames: &[A]) {
        let mask = self.frame_mask;
        self.free.extend(frames.iter().map(|f| f.addr() & mask));
    }

    /// Moves free frames onto the fill ring, up to `max`, as many as fit. Returns how many.
    pub fn fill_from_free(&mut self, max: usize) -> usize {
        fill_from(&mut self.fill, &mut self.free, max)
    }

    /// Consumes up to `out.len()` received frames. Userspace owns them afterwards. A
    /// socket without an RX ring receives nothing.
    #[inline]
    pub fn rx_consume(&mut self, out: &mut [Desc]) -> usize {
        match &mut self.rx {
            Some(rx) => rx.consume(out),
            None => 0,
        }
    }

    /// Puts frames on the fill ring, as many as fit (the caller keeps the rest). Returns
    /// how many were produced. Frames go back by their base address, and a slot already
    /// holding it is not rewritten (see `ProdRing::produce_keeping_same`).
    #[inline]
    pub fn fill_produce<A: FrameAddr>(&mut self, frames: &[A]) -> usize {
        let mask = self.frame_mask;
        self.fill.produce_keeping_same(frames, |f| f.addr() & mask)
    }

    /// Puts frames on the TX ring, as many as fit. Returns how many were produced (0 on a
    /// socket without a TX ring).
    #[inline]
    pub fn tx_produce(&mut self, descs: &[Desc]) -> usize {
        match &mut self.tx {
            Some(tx) => tx.produce(descs),
            None => 0,
        }
    }

    /// Free slots on the TX ring, up to `want`.
    #[inline]
    pub fn tx_room(&mut self, want: usize) -> usize {
        match &mut self.tx {
            Some(tx) => tx.free(want.min(u32::MAX as usize) as u32) as usize,
            None => 0,
        }
    }

    /// Descriptors on the TX ring the kernel has not taken yet (0 without a TX ring).
    #[inline]
    pub fn tx_queued(&mut self) -> usize {
        self.tx.as_mut().map_or(0, |tx| tx.queued() as usize)
    }

    /// Consumes up to `out.len()` addresses of frames the kernel finished sending.
    #[inline]
    pub fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        self.comp.consume(out)
    }

    #[inline]
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    #[inline]
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.needs_wakeup())
    }

    /// The received bytes of a frame userspace owns (empty if the descriptor does not
    /// lie inside the UMEM).
    ///
    /// The accessors below check only that a descriptor lies inside the UMEM; that the
    /// frame is userspace's (see the module docs) is the caller's part: `Desc` is a plain
    /// copyable value, and a copy kept after the frame went back to a ring names memory
    /// the kernel may be writing. Writable access takes `&mut self`, so two writable
    /// slices of this socket's frames cannot coexist.
    #[inline]
    pub fn frame(&self, desc: &Desc) -> &[u8] {
        match self.umem.range(desc.addr, desc.len as usize) {
            // SAFETY: inside the UMEM, and userspace owns the frame (see the module docs),
            // so the kernel does not write it while the slice lives; no `&mut` slice of
            // this socket's frames exists while `&self` is borrowed here.
            Some(p) => unsafe { std::slice::from_raw_parts(p, desc.len as usize) },
            None => &[],
        }
    }

    /// The received bytes of a frame userspace owns, writable in place.
    #[inline]
    pub fn frame_mut(&mut self, desc: &Desc) -> &mut [u8] {
        match self.umem.range(desc.addr, desc.len as usize) {
            // SAFETY: as `frame`; `&mut self` keeps any other slice of this socket's
            // frames from existing while this one lives.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p, desc.len as usize) },
            None => &mut [],
        }
    }

    /// Writes `bytes` as the frame's content and sets its length (for TX); bytes past
    /// the frame's room (`max_frame_len`) are cut off.
    #[inline]
    pub fn write_frame(&mut self, desc: &mut Desc, bytes: &[u8]) {
        let buf = self.frame_with_len(desc, bytes.len());
        let n = buf.len();
        buf.copy_from_slice(&bytes[..n]);
    }

    /// Sets a frame's length to `len` (at most the room left in its frame) and returns
    /// its bytes, writable. A descriptor outside the UMEM gets length 0.
    #[inline]
    pub fn frame_with_len(&mut self, desc: &mut Desc, len: usize) -> &mut [u8] {
        let fs = self.umem.frame_size as u64;
        let room = if self.umem.range(desc.addr & self.frame_mask, fs as usize).is_some() {
            (desc.addr & self.frame_mask) + fs - desc.addr
        } else {
            0
        };
        desc.len = len.min(room as usize) as u32;
        self.frame_mut(desc)
    }

    pub fn statistics(&self) -> Result<sys::XdpStatistics, SysError> {
        sys::xdp_statistics(self.fd.as_raw_fd())
    }
}

/// Moves up to `max` frames from the top of the `free` stack onto the fill ring, exactly
/// as many as fit, so what was produced is what leaves the free list. Returns how many.
fn fill_from(fill: &mut ProdRing<u64>, free: &mut Vec<u64>, max: usize) -> usize {
    let want = max.min(free.len()).min(u32::MAX as usize) as u32;
    let n = fill.free(want) as usize;
    let start = free.len() - n;
    let done = fill.produce_keeping_same(&free[start..], |&a| a);
    debug_assert_eq!(done, n, "free() reserved the room");
    free.truncate(start);
    done
}

/// Names the common bind failures (busy queue, no such queue, no zero-copy).
fn bind_error(e: SysError, iface: &str, queue: u32, bind: BindMode) -> XskError {
    match e.errno() {
        Some(errno @ (libc::EOPNOTSUPP | libc::EPROTONOSUPPORT)) if bind == BindMode::ZeroCopy => {
            XskError::ZeroCopyUnsupported { iface: iface.into(), queue, errno }
        }
        Some(libc::EBUSY) => XskError::QueueBusy { iface: iface.into(), queue },
        Some(libc::EINVAL) if sys::rx_queue_count(iface).is_ok_and(|n| queue >= n) => {
            XskError::NoSuchQueue { iface: iface.into(), queue }
        }
        _ => XskError::Socket { iface: iface.into(), queue, source: e },
    }
}

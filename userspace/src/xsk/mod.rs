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

mod frames;
mod ring;
mod txmeta;

pub use frames::{Batch, Frame, FrameLenError, Frames, OutPort, Segments, TxBatch, Verdict};
pub use txmeta::{TX_METADATA_LEN, TxRequest, XDP_TX_METADATA, XDP_TXMD_FLAGS_CHECKSUM, XDP_TXMD_FLAGS_TIMESTAMP};

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
    /// Byte offset of the frame's first byte in the UMEM (inside its chunk).
    pub addr: u64,
    /// Frame length, bytes.
    pub len: u32,
    /// Option bits (`XDP_PKT_CONTD`, ...).
    pub options: u32,
}

const _: () = assert!(std::mem::size_of::<Desc>() == std::mem::size_of::<libc::xdp_desc>());

/// `Desc::options` bit: more descriptors of the same packet follow (multi-buffer frames,
/// XDP_USE_SG). Set on every descriptor of a packet but its last.
pub const XDP_PKT_CONTD: u32 = libc::XDP_PKT_CONTD;

/// The most descriptors one received or sent frame may span. Copy mode builds an skb of
/// at most MAX_SKB_FRAGS (17) fragments and its linear part; a longer RX chain is not
/// one the kernel makes, so it is dropped (counted in `Xsk::bad_descs`) and recycled.
pub const MAX_SEGS: usize = 18;

/// What `Xsk::rx_consume` left in its `out` array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxTaken {
    /// `out[..complete]` holds whole frames: single descriptors, and chains whose
    /// descriptors carry [`XDP_PKT_CONTD`] but the last.
    pub complete: usize,
    /// Frames in `out[..complete]`.
    pub frames: usize,
    /// `out[complete..end]` starts a chain whose end is still on the RX ring: the caller
    /// passes it back at the front of `out` (`pending`) with the next consume.
    pub end: usize,
}

/// Anything that names a UMEM frame: a descriptor or a bare address.
pub trait FrameAddr: Copy {
    /// Byte offset in the UMEM of the frame or of a byte inside it (masking off the offset
    /// within the chunk gives the frame's base).
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
    /// Bytes per UMEM frame (chunk).
    pub frame_size: FrameSize,
    /// Frames in the UMEM.
    pub frames: u32,
    /// Fill ring entries.
    pub fill_size: RingSize,
    /// Completion ring entries.
    pub comp_size: RingSize,
    /// None: no RX ring (a socket that only sends).
    pub rx_size: Option<RingSize>,
    /// None: no TX ring (a socket that only receives; in copy mode, a wakeup then runs no
    /// TX pass in the kernel).
    pub tx_size: Option<RingSize>,
    /// Copy, zero-copy, or auto (the kernel's choice).
    pub bind: BindMode,
    /// Bind with XDP_USE_NEED_WAKEUP: the kernel flags the fill and TX rings when it needs a
    /// syscall before it looks at them again.
    pub need_wakeup: bool,
    /// Copy mode: TX descriptors one kick sends (XDP_MAX_TX_SKB_BUDGET, Linux 6.17+);
    /// 0 keeps the kernel's 32.
    pub tx_budget: u32,
    /// Bind with XDP_USE_SG: frames longer than a chunk's room arrive and leave as chains
    /// of descriptors (multi-buffer, Linux 6.6+). Sockets sharing a UMEM (XDP_SHARED_UMEM)
    /// take no bind flags of their own.
    pub sg: bool,
    /// Register the UMEM with room for AF_XDP TX metadata before every TX frame
    /// (XDP_UMEM_TX_METADATA_LEN, Linux 6.8+), so frames can carry a [`TxRequest`].
    pub tx_metadata: bool,
}

/// Why an AF_XDP socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// Mapping or registering the UMEM failed.
    #[error("creating a UMEM of {frames} x {frame_size} B frames: {source}")]
    Umem {
        /// Frames asked for.
        frames: u32,
        /// Bytes per frame.
        frame_size: u32,
        /// The failed call.
        #[source]
        source: SysError,
    },
    /// The configuration cannot make a socket (no frames, or neither RX nor TX ring); why.
    #[error("invalid UMEM configuration: {0}")]
    UmemConfig(String),
    /// No interface of this name in this network namespace.
    #[error("interface {iface:?} does not exist in this network namespace (see `ip link`)")]
    NoSuchInterface {
        /// The name asked for.
        iface: String,
    },
    /// Zero-copy was asked for and the driver refused it (EOPNOTSUPP or EPROTONOSUPPORT on
    /// bind).
    #[error(
        "{iface} queue {queue}: zero-copy bind refused (errno {errno}): the driver has no AF_XDP \
         zero-copy support for this queue; use --bind copy or --bind auto"
    )]
    ZeroCopyUnsupported {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The errno bind returned.
        errno: i32,
    },
    /// Another AF_XDP socket has the queue (EBUSY on bind).
    #[error(
        "{iface} queue {queue}: the queue is already in use by another AF_XDP socket (EBUSY); is another xdpipe or xdpsock running?"
    )]
    QueueBusy {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },
    /// The queue id is not below the device's RX queue count (EINVAL on bind).
    #[error("{iface} queue {queue}: the device has no such queue (EINVAL on bind); see `ethtool -l {iface}`")]
    NoSuchQueue {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },
    /// Creating, setting up or binding the socket failed otherwise.
    #[error("{iface} queue {queue}: creating the AF_XDP socket failed: {source}")]
    Socket {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The failed call.
        #[source]
        source: SysError,
    },
    /// A bind with XDP_USE_SG (multi-buffer frames) was refused with EINVAL.
    #[error(
        "{iface} queue {queue}: the bind for multi-buffer frames (XDP_USE_SG) was refused (EINVAL): this kernel has no multi-buffer AF_XDP (Linux 6.6+); lower the MTU or --size to fit one UMEM frame (--frame-size less 256 B)"
    )]
    NoMultiBuffer {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },
    /// The kernel refused a UMEM with a TX metadata area (EINVAL: before Linux 6.8).
    #[error(
        "creating a UMEM with AF_XDP TX metadata (XDP_UMEM_TX_METADATA_LEN) was refused: {source}; this needs Linux 6.8+, or use --tx-offload software"
    )]
    NoTxMetadata {
        /// The failed call.
        #[source]
        source: SysError,
    },
    /// The kernel refused the copy-mode TX budget (XDP_MAX_TX_SKB_BUDGET).
    #[error(
        "{iface} queue {queue}: --tx-budget {budget} refused: {detail} (it must be 32 to the TX ring size, or 0 for the kernel's default)"
    )]
    TxBudget {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The budget asked for: TX descriptors per kick.
        budget: u32,
        /// The kernel's error.
        detail: String,
    },
}

/// The UMEM: one anonymous mapping cut into equal frames, registered with the socket that
/// created it and shared (XDP_SHARED_UMEM) by any further socket.
struct Umem {
    area: Mapping,
    frame_size: u32,
    /// Bytes of AF_XDP TX metadata before every TX frame (0: none registered).
    tx_metadata_len: u32,
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
///
/// Crate-private: its methods move frames between userspace and the kernel without
/// ownership checks (give_free, fill_produce, tx_produce, take_free), which only the
/// pipeline's driver loop may call; users see frames as `Batch` / `TxBatch` tokens.
pub(crate) struct Xsk {
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
    /// See [`Xsk::bad_descs`].
    bad_descs: u64,
    /// Receiving: the rest of a dropped chain is dropped too, up to its last descriptor.
    rx_skip: bool,
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
    // SAFETY: (and for the three below) each mapping is the kernel's ring of that kind,
    // `size` entries of the type the kernel uses for it (u64 on fill/completion, xdp_desc
    // on RX/TX, which `Desc` mirrors), laid out as XDP_MMAP_OFFSETS said.
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
    /// Opens a socket on (`iface`, `queue`) with a UMEM of its own (`cfg.frames` frames),
    /// makes its rings and binds it. With an RX ring, as many frames as fit go on the fill
    /// ring first; the rest stay on the free list.
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
        let tx_metadata_len = if cfg.tx_metadata { TX_METADATA_LEN } else { 0 };
        sys::register_umem(fd.as_raw_fd(), &area, fs, tx_metadata_len).map_err(|source| {
            if tx_metadata_len > 0 && source.errno() == Some(libc::EINVAL) {
                XskError::NoTxMetadata { source }
            } else {
                umem_err(source)
            }
        })?;
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
        if cfg.sg {
            flags |= libc::XDP_USE_SG;
        }
        sys::bind_xdp(&fd, ifindex, queue, flags, None).map_err(|e| match bind_error(e, iface, queue, cfg.bind) {
            // Kernels before 6.6 know no XDP_USE_SG; a zero-copy driver without
            // multi-buffer support refuses it (EOPNOTSUPP, taken as ZeroCopyUnsupported).
            XskError::Socket { source, .. } if cfg.sg && source.errno() == Some(libc::EINVAL) => {
                XskError::NoMultiBuffer { iface: iface.into(), queue }
            }
            other => other,
        })?;
        let umem = Arc::new(Umem { area, frame_size: fs, tx_metadata_len });
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
        Ok(Self { fill, comp, rx, tx, fd, umem, free, frame_mask, zerocopy, tx_budget, bad_descs: 0, rx_skip: false })
    }

    /// The socket's file descriptor (for wakeups and waits).
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

    /// Chunks in the UMEM.
    pub fn umem_chunks(&self) -> usize {
        self.umem.area.len() / self.umem.frame_size as usize
    }

    /// The index of the chunk `addr` lies in (below [`Xsk::umem_chunks`] for an address
    /// inside the UMEM).
    #[inline]
    pub fn chunk_of(&self, addr: u64) -> usize {
        (addr / self.umem.frame_size as u64) as usize
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

    /// Takes one free frame as an empty TX descriptor (data after the headroom).
    #[inline]
    pub fn take_free_one(&mut self) -> Option<Desc> {
        self.free.pop().map(|base| Desc { addr: base + XDP_PACKET_HEADROOM as u64, len: 0, options: 0 })
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

    /// Frames waiting on the RX ring (the kernel's producer index read afresh); 0 without
    /// an RX ring.
    #[inline]
    pub fn rx_ready(&mut self) -> u32 {
        self.rx.as_mut().map_or(0, |rx| rx.ready())
    }

    /// Consumes received descriptors into `out[pending..]`; userspace owns them
    /// afterwards. `out[..pending]` is the unfinished chain the previous call returned
    /// (`RxTaken::complete..end`, moved to the front), or nothing.
    ///
    /// Nothing from the kernel is trusted: a descriptor that does not lie inside one UMEM
    /// chunk is counted ([`Xsk::bad_descs`]) and its chunk kept if it is one of ours; a
    /// chain with such a descriptor, or longer than [`MAX_SEGS`], is dropped whole (its
    /// descriptors counted, their chunks kept, the rest of it dropped as it arrives).
    /// Single-descriptor frames without option bits, the common case, take one check per
    /// descriptor. A socket without an RX ring receives nothing.
    #[inline]
    pub fn rx_consume(&mut self, out: &mut [Desc], pending: usize) -> RxTaken {
        let n = match &mut self.rx {
            Some(rx) => rx.consume(&mut out[pending..]),
            None => 0,
        };
        if n == 0 {
            return RxTaken { complete: 0, frames: 0, end: pending };
        }
        let (umem_len, fs) = (self.umem.area.len() as u64, self.umem.frame_size as u64);
        if pending == 0
            && !self.rx_skip
            && out[..n].iter().all(|d| d.options == 0 && desc_in_one_chunk(d, umem_len, fs))
        {
            return RxTaken { complete: n, frames: n, end: n };
        }
        self.sort_chains(out, pending, n)
    }

    /// The cold half of `rx_consume`: checks chains and drops bad descriptors and chains,
    /// compacting what is kept to the front.
    #[cold]
    fn sort_chains(&mut self, out: &mut [Desc], pending: usize, n: usize) -> RxTaken {
        let (umem_len, fs) = (self.umem.area.len() as u64, self.umem.frame_size as u64);
        let (mut w, mut chain_start, mut frames) = (pending, 0, 0);
        for i in pending..pending + n {
            let mut d = out[i];
            let contd = d.options & XDP_PKT_CONTD != 0;
            let good = desc_in_one_chunk(&d, umem_len, fs);
            let ours = d.addr < umem_len;
            if self.rx_skip || !good || (contd && w - chain_start + 1 >= MAX_SEGS) {
                // Drop this descriptor and the chain it belongs to (what of it is kept
                // so far, and, while it goes on, what follows).
                let mask = self.frame_mask;
                self.free.extend(out[chain_start..w].iter().map(|k| k.addr & mask));
                self.bad_descs += (w - chain_start) as u64 + 1;
                w = chain_start;
                if ours {
                    self.free.push(d.addr & self.frame_mask);
                }
                self.rx_skip = contd;
                continue;
            }
            // Only XDP_PKT_CONTD means anything on an RX descriptor.
            d.options &= XDP_PKT_CONTD;
            out[w] = d;
            w += 1;
            if !contd {
                frames += 1;
                chain_start = w;
            }
        }
        RxTaken { complete: chain_start, frames, end: w }
    }

    /// Descriptors from the kernel that did not lie inside one UMEM chunk, the
    /// descriptors of RX chains dropped for such a descriptor or for their length, and
    /// completion addresses outside the UMEM; none of them was used.
    pub fn bad_descs(&self) -> u64 {
        self.bad_descs
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
    /// An address outside the UMEM is taken out of `out` and counted, never reused.
    #[inline]
    pub fn comp_consume(&mut self, out: &mut [u64]) -> usize {
        let n = self.comp.consume(out);
        let umem_len = self.umem.area.len() as u64;
        if out[..n].iter().all(|&a| a < umem_len) {
            return n;
        }
        let mut good = 0;
        for i in 0..n {
            if out[i] < umem_len {
                out[good] = out[i];
                good += 1;
            } else {
                self.bad_descs += 1;
            }
        }
        good
    }

    /// True if the kernel set XDP_RING_NEED_WAKEUP on the fill ring: it processes the fill
    /// and RX rings again only when woken ([`sys::wakeup_rx`]).
    #[inline]
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// True if the kernel set XDP_RING_NEED_WAKEUP on the TX ring: it sends only when
    /// kicked ([`sys::kick_tx`]). False without a TX ring.
    #[inline]
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.needs_wakeup())
    }

    /// The bytes of a frame, or an empty slice if the descriptor does not lie inside the
    /// UMEM.
    ///
    /// # Safety
    /// Userspace must own the frame for as long as the slice lives: consumed from the RX
    /// or completion ring or taken from the free list, and not produced to the fill or TX
    /// ring since (see the module docs). `Desc` is a plain copyable value: a copy kept
    /// after the frame went back to a ring names memory the kernel may be writing.
    #[inline]
    pub unsafe fn frame(&self, desc: &Desc) -> &[u8] {
        match self.umem.range(desc.addr, desc.len as usize) {
            // SAFETY: inside the UMEM; the caller guarantees userspace owns the frame, so
            // the kernel does not write it while the slice lives.
            Some(p) => unsafe { std::slice::from_raw_parts(p, desc.len as usize) },
            None => &[],
        }
    }

    /// The XDP metadata the steering program wrote in front of `desc`'s frame (see
    /// [`xdp_common::RxMeta`]), if it is there: read from the bytes between the start of
    /// the frame's chunk and its data.
    ///
    /// # Safety
    /// As [`Xsk::frame`].
    #[inline]
    pub unsafe fn frame_meta(&self, desc: &Desc) -> Option<xdp_common::RxMeta> {
        let fs = self.umem.frame_size as u64;
        let head = desc.addr & (fs - 1);
        let len = (head as usize).min(xdp_common::RxMeta::LEN);
        let p = self.umem.range(desc.addr - len as u64, len)?;
        // SAFETY: `len` bytes before the frame, inside its chunk and the UMEM (range);
        // userspace owns the chunk (the caller's guarantee).
        let bytes = unsafe { std::slice::from_raw_parts(p, len) };
        xdp_common::RxMeta::read(bytes, desc.len as usize)
    }

    /// Copies `src`'s frame (of socket `from`, which may share this socket's UMEM) into
    /// the free frame `dst` of this socket and sets `dst`'s length; bytes past the
    /// chunk's room are cut off.
    ///
    /// # Safety
    /// Userspace owns both frames (see [`Xsk::frame`]), and they are different chunks.
    #[inline]
    pub unsafe fn copy_frame(&mut self, dst: &mut Desc, from: &Xsk, src: &Desc) {
        // SAFETY: forwarded from the caller.
        let bytes = unsafe { from.frame(src) };
        let room = self.room(dst);
        dst.len = bytes.len().min(room) as u32;
        if let Some(p) = self.umem.range(dst.addr, dst.len as usize) {
            // SAFETY: inside the UMEM, userspace owns `dst`'s chunk (the caller), and it
            // is not `src`'s chunk, so the two ranges do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, dst.len as usize) };
        }
    }

    /// Bytes from a descriptor's address to the end of its chunk (0 outside the UMEM).
    #[inline]
    fn room(&self, desc: &Desc) -> usize {
        let fs = self.umem.frame_size as u64;
        let base = desc.addr & self.frame_mask;
        if self.umem.range(base, fs as usize).is_some() { (base + fs - desc.addr) as usize } else { 0 }
    }

    /// The received frames `descs` (just consumed by [`Xsk::rx_consume`]) as a batch a
    /// stage can read and write.
    ///
    /// # Safety
    /// Every descriptor came from this socket's (or a socket sharing its UMEM)
    /// `rx_consume` and none has been produced to any ring since, nor will be while the
    /// batch lives. `verdicts` is as long as `descs` and all `Drop`.
    /// `frames` is the count `rx_consume` gave for them (`descs` is its
    /// `out[..complete]`).
    #[inline]
    pub unsafe fn batch<'a>(&'a self, descs: &'a mut [Desc], verdicts: &'a mut [Verdict], frames: usize) -> Batch<'a> {
        // SAFETY: rx_consume checked each descriptor lies inside one chunk and each chain
        // ends inside `descs`; the kernel hands out each chunk put on the fill ring once;
        // ownership is the caller's.
        unsafe { Batch::new(self.umem.area.as_ptr(), descs, verdicts, self.umem.frame_size, frames) }
    }

    /// Free frames `descs` (from [`Xsk::take_free`]) as a batch a source fills.
    ///
    /// # Safety
    /// Every descriptor came from this socket's `take_free` and none has been produced to
    /// any ring since, nor will be while the batch lives.
    #[inline]
    pub unsafe fn tx_batch<'a>(&'a self, descs: &'a mut [Desc]) -> TxBatch<'a> {
        // SAFETY: take_free makes descriptors at a chunk's headroom, inside the UMEM;
        // ownership is the caller's.
        unsafe { TxBatch::new(self.umem.area.as_ptr(), descs, self.umem.frame_size, self.umem.tx_metadata_len) }
    }

    /// True if the UMEM has a TX metadata area before every TX frame
    /// ([`XskConfig::tx_metadata`]).
    #[inline]
    pub fn has_tx_metadata(&self) -> bool {
        self.umem.tx_metadata_len > 0
    }

    /// The TX completion timestamp the kernel or the device wrote before the completed
    /// frame at `addr` (an address [`Xsk::comp_consume`] just returned), if the frame
    /// asked for one; None without a TX metadata area.
    ///
    /// # Safety
    /// Userspace owns the frame (just consumed from the completion ring, not yet on any
    /// ring again).
    #[inline]
    pub unsafe fn tx_timestamp(&self, addr: u64) -> Option<u64> {
        let len = self.umem.tx_metadata_len as u64;
        if len == 0 || addr & !self.frame_mask < len {
            return None;
        }
        let p = self.umem.range(addr - len, len as usize)?;
        // SAFETY: the area lies in the frame's chunk, before its data, inside the UMEM
        // (range); userspace owns the chunk (the caller's guarantee).
        unsafe { txmeta::read_timestamp(p) }
    }

    /// Reads the socket's XDP_STATISTICS counters from the kernel.
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

/// True if `len` bytes at `addr` lie inside one `frame_size` chunk of a UMEM of
/// `umem_len` bytes (a zero-length frame: `addr` inside the UMEM).
#[inline(always)]
fn desc_in_one_chunk(d: &Desc, umem_len: u64, frame_size: u64) -> bool {
    let last = d.addr.wrapping_add((d.len as u64).saturating_sub(1));
    // A power-of-two frame size: the same chunk iff the two addresses differ only below it.
    d.addr < umem_len && last >= d.addr && last < umem_len && (d.addr ^ last) < frame_size
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

/// Test support: a socket whose rings and UMEM are plain memory, and the kernel's side of
/// them, so the worker loop runs in a unit test without a socket or root.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::sys::RingOffsets;

    const OFF: RingOffsets = RingOffsets { producer: 0, consumer: 64, flags: 128, desc: 192 };

    /// One ring's shared memory as the kernel sees it.
    struct KRing {
        base: *mut u8,
        size: u32,
    }

    impl KRing {
        fn index(&self, at: u64) -> &AtomicU32 {
            // SAFETY: inside the ring's mapping, which the Xsk keeps alive (see Kernel).
            unsafe { &*self.base.add(at as usize).cast::<AtomicU32>() }
        }
        fn entry<T>(&self, idx: u32) -> *mut T {
            // SAFETY: masked into the entry array of the mapping.
            unsafe { self.base.add(OFF.desc as usize).cast::<T>().add((idx & (self.size - 1)) as usize) }
        }
        /// Kernel as consumer: takes everything published.
        fn take<T: Copy>(&self) -> Vec<T> {
            let (p, c) =
                (self.index(OFF.producer).load(Ordering::Acquire), self.index(OFF.consumer).load(Ordering::Relaxed));
            // SAFETY: entries between consumer and producer are published.
            let v = (c..p).map(|i| unsafe { self.entry::<T>(i).read() }).collect();
            self.index(OFF.consumer).store(p, Ordering::Release);
            v
        }
        /// Kernel as producer: publishes as many of `items` as fit; returns how many.
        fn put<T: Copy>(&self, items: &[T]) -> usize {
            let (p, c) =
                (self.index(OFF.producer).load(Ordering::Relaxed), self.index(OFF.consumer).load(Ordering::Acquire));
            let n = items.len().min((self.size - p.wrapping_sub(c)) as usize);
            for (i, it) in items[..n].iter().enumerate() {
                // SAFETY: a free slot of the ring.
                unsafe { self.entry::<T>(p.wrapping_add(i as u32)).write(*it) };
            }
            self.index(OFF.producer).store(p.wrapping_add(n as u32), Ordering::Release);
            n
        }
    }

    /// The kernel's side of a fake socket's four rings. It points into memory the `Xsk`
    /// owns: use it only while that `Xsk` lives (each test keeps both in one scope).
    pub struct Kernel {
        fill: KRing,
        comp: KRing,
        rx: KRing,
        tx: KRing,
        /// The UMEM's start, to write frame bytes as a NIC would.
        pub umem: *mut u8,
    }

    impl Kernel {
        /// Frames userspace put on the fill ring (as addresses).
        pub fn take_fill(&self) -> Vec<u64> {
            self.fill.take()
        }
        /// Frames userspace queued for transmission.
        pub fn take_tx(&self) -> Vec<Desc> {
            self.tx.take()
        }
        /// Delivers received frames; returns how many fit on the RX ring.
        pub fn receive(&self, descs: &[Desc]) -> usize {
            self.rx.put(descs)
        }
        /// Reports frames transmitted.
        pub fn complete(&self, addrs: &[u64]) -> usize {
            self.comp.put(addrs)
        }
        /// Sets or clears need_wakeup on the fill ring.
        pub fn fill_needs_wakeup(&self, on: bool) {
            self.fill.index(OFF.flags).store(if on { libc::XDP_RING_NEED_WAKEUP } else { 0 }, Ordering::Relaxed);
        }
        /// Writes bytes into the UMEM at `addr`, as a NIC receiving a frame would.
        pub fn write(&self, addr: u64, bytes: &[u8]) {
            // SAFETY: tests pass addresses of chunks inside the UMEM they made.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.umem.add(addr as usize), bytes.len()) };
        }
        /// Reads bytes of the UMEM.
        pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
            // SAFETY: as `write`.
            unsafe { std::slice::from_raw_parts(self.umem.add(addr as usize), len).to_vec() }
        }
    }

    fn ring(size: u32, entry: usize) -> (Mapping, KRing) {
        let map = crate::sys::map_anonymous(OFF.desc as usize + size as usize * entry).expect("anonymous memory");
        let k = KRing { base: map.as_ptr(), size };
        (map, k)
    }

    /// A socket with `frames` chunks of `frame_size` and rings of `ring` entries, its fill
    /// ring filled as `Xsk::open` fills it, and the kernel's side of it. Its fd is an
    /// eventfd: the hot calls must be overridden (`sys::testing`).
    pub fn socket(frames: u32, frame_size: u32, ring: u32, with_rx: bool, with_tx: bool) -> (Xsk, Kernel) {
        socket_with(frames, frame_size, ring, with_rx, with_tx, 0)
    }

    /// Makes a fake socket say it is bound zero-copy (the binds whose driver may set the
    /// fill ring's need_wakeup).
    pub fn zero_copy(xsk: &mut Xsk) {
        xsk.zerocopy = true;
    }

    /// A TX-only [`socket`] whose UMEM has a TX metadata area of [`TX_METADATA_LEN`]
    /// before every frame.
    pub fn socket_with_tx_metadata(frames: u32, frame_size: u32, ring: u32) -> (Xsk, Kernel) {
        socket_with(frames, frame_size, ring, false, true, TX_METADATA_LEN)
    }

    fn socket_with(
        frames: u32,
        frame_size: u32,
        ring: u32,
        with_rx: bool,
        with_tx: bool,
        tx_metadata_len: u32,
    ) -> (Xsk, Kernel) {
        use std::os::fd::FromRawFd;
        let area = crate::sys::map_anonymous(frames as usize * frame_size as usize).expect("umem");
        let umem_ptr = area.as_ptr();
        let (fm, fk) = self::ring(ring, 8);
        let (cm, ck) = self::ring(ring, 8);
        let (rm, rk) = self::ring(ring, 16);
        let (tm, tk) = self::ring(ring, 16);
        // SAFETY: each mapping is laid out as OFF says with `ring` entries of its type.
        let mut fill = unsafe { ProdRing::new(fm, &OFF, ring) };
        // SAFETY: as above.
        let comp = unsafe { ConsRing::new(cm, &OFF, ring) };
        // SAFETY: as above.
        let rx = with_rx.then(|| unsafe { ConsRing::new(rm, &OFF, ring) });
        // SAFETY: as above.
        let tx = with_tx.then(|| unsafe { ProdRing::new(tm, &OFF, ring) });
        let mut free: Vec<u64> = (0..frames as u64).rev().map(|i| i * frame_size as u64).collect();
        if with_rx {
            fill_from(&mut fill, &mut free, usize::MAX);
        }
        // SAFETY: plain eventfd call; the fd is owned by the OwnedFd from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) };
        let umem = Arc::new(Umem { area, frame_size, tx_metadata_len });
        let xsk = Xsk {
            fill,
            comp,
            rx,
            tx,
            fd,
            umem,
            free,
            frame_mask: !(frame_size as u64 - 1),
            zerocopy: false,
            tx_budget: None,
            bad_descs: 0,
            rx_skip: false,
        };
        (xsk, Kernel { fill: fk, comp: ck, rx: rk, tx: tk, umem: umem_ptr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_must_lie_inside_one_chunk() {
        let (umem, fs) = (4 * 4096u64, 4096u64);
        let ok = |addr, len| desc_in_one_chunk(&Desc { addr, len, options: 0 }, umem, fs);
        assert!(ok(256, 64));
        assert!(ok(4096 + 256, 4096 - 256), "up to the chunk's end");
        assert!(!ok(4096 + 256, 4096 - 255), "one byte into the next chunk");
        assert!(!ok(3 * 4096 + 256, 8192), "past the UMEM");
        assert!(!ok(umem, 0), "a zero-length frame outside the UMEM");
        assert!(ok(umem - 1, 0));
        assert!(!ok(u64::MAX - 10, 64), "wrapping");
    }

    #[test]
    fn bad_rx_descriptors_are_dropped_and_counted_and_their_chunks_kept() {
        let (mut xsk, k) = fake::socket(8, 4096, 8, true, false);
        let fill = k.take_fill();
        assert_eq!(fill.len(), 8, "open() puts every frame on the fill ring");
        let good = Desc { addr: fill[0] + 256, len: 60, options: 0 };
        let spans = Desc { addr: fill[1] + 4000, len: 200, options: 0 };
        let outside = Desc { addr: 1 << 40, len: 60, options: 0 };
        assert_eq!(k.receive(&[spans, good, outside]), 3);
        let mut out = [Desc::default(); 8];
        assert_eq!(xsk.rx_consume(&mut out, 0), RxTaken { complete: 1, frames: 1, end: 1 });
        assert_eq!(out[0], good);
        assert_eq!(xsk.bad_descs(), 2);
        assert_eq!(xsk.free_frames(), 1, "the spanning descriptor's chunk is ours: kept");
    }

    #[test]
    fn completion_addresses_outside_the_umem_are_never_reused() {
        let (mut xsk, k) = fake::socket(4, 4096, 8, false, true);
        assert_eq!(k.complete(&[256, 4 * 4096 + 256, 4096 + 256]), 3);
        let mut out = [0u64; 8];
        assert_eq!(xsk.comp_consume(&mut out), 2);
        assert_eq!(&out[..2], &[256, 4096 + 256]);
        assert_eq!(xsk.bad_descs(), 1);
    }
}

//! One AF_XDP socket with its own UMEM and the four rings (fill, RX, TX, completion),
//! built on xsk-rs. This is, with `sys`, the only module that touches frames and rings.
//!
//! Frame ownership: a frame (a `FrameDesc` from this socket's UMEM) is either owned by
//! userspace or by the kernel (on the fill or TX ring, until it comes back on RX or
//! completion). A slice over frame data may only exist while userspace owns the frame:
//! after RX consume / completion consume / taking it from the free list, before it is
//! produced to the fill or TX ring. Workers keep this by construction: they only get
//! slices for descriptors they just consumed and hand descriptors back afterwards.
#![allow(unsafe_code)]

use std::{io::Write as _, num::NonZeroU32, os::fd::{AsRawFd as _, RawFd}};

use xsk_rs::{
    CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem,
    config::{BindFlags, FrameSize as XskFrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig},
};

use crate::config::{BindMode, FrameSize, RingSize};

/// Bytes the kernel reserves at the start of every UMEM frame (XDP_PACKET_HEADROOM).
const XDP_PACKET_HEADROOM: u32 = 256;

/// Sizes and flags of one socket.
#[derive(Clone, Copy, Debug)]
pub struct XskConfig {
    pub frame_size: FrameSize,
    /// Frames in the UMEM.
    pub frames: u32,
    pub fill_size: RingSize,
    pub comp_size: RingSize,
    pub rx_size: RingSize,
    pub tx_size: RingSize,
    pub bind: BindMode,
    pub need_wakeup: bool,
    /// Copy mode: TX descriptors one kick sends (XDP_MAX_TX_SKB_BUDGET, Linux 6.17+);
    /// 0 keeps the kernel's 32.
    pub tx_budget: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("creating a UMEM of {frames} x {frame_size} B frames: {source}")]
    Umem { frames: u32, frame_size: u32, #[source] source: xsk_rs::umem::UmemCreateError },
    #[error("invalid UMEM configuration: {0}")]
    UmemConfig(String),
    #[error(
        "{iface} queue {queue}: zero-copy bind refused (errno {errno}): the driver has no AF_XDP \
         zero-copy support for this queue; use --bind copy or --bind auto"
    )]
    ZeroCopyUnsupported { iface: String, queue: u32, errno: i32 },
    #[error("{iface} queue {queue}: the queue is already in use by another AF_XDP socket (EBUSY); is another xdpipe or xdpsock running?")]
    QueueBusy { iface: String, queue: u32 },
    #[error("{iface} queue {queue}: creating the AF_XDP socket failed: {source}")]
    Socket { iface: String, queue: u32, #[source] source: xsk_rs::socket::SocketCreateError },
    #[error("{iface} queue {queue}: --tx-budget {budget} refused: {detail} (it must be 32 to the TX ring size, or 0 for the kernel's default)")]
    TxBudget { iface: String, queue: u32, budget: u32, detail: String },
    #[error("{iface} queue {queue}: xsk-rs returned no fill/completion rings for a new UMEM")]
    NoFillRing { iface: String, queue: u32 },
}

/// Ring sizes and bind flags of a socket; our own program (loader.rs) steers into the
/// XSKMAP, so libxdp must not load its default one.
fn socket_config(cfg: &XskConfig) -> Result<SocketConfig, XskError> {
    let qs = |r: RingSize| QueueSize::new(r.get()).map_err(|e| XskError::UmemConfig(e.to_string()));
    let mut bind = match cfg.bind {
        BindMode::Copy => BindFlags::XDP_COPY,
        BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
        BindMode::Auto => BindFlags::empty(),
    };
    if cfg.need_wakeup {
        bind |= BindFlags::XDP_USE_NEED_WAKEUP;
    }
    Ok(SocketConfig::builder()
        .rx_queue_size(qs(cfg.rx_size)?)
        .tx_queue_size(qs(cfg.tx_size)?)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind)
        .build())
}

/// Copy mode sends at most 32 TX descriptors per kick unless the socket asks for more;
/// one kick per batch then saves syscalls (measured in the README). Kernels before 6.17
/// lack the option and keep 32, with a warning once. Returns the budget now in effect
/// (None: the kernel's own, or zero-copy, where the driver pulls descriptors itself).
fn set_tx_budget(fd: RawFd, cfg: &XskConfig, zerocopy: bool, iface: &str, queue: u32) -> Result<Option<u32>, XskError> {
    if cfg.tx_budget == 0 || zerocopy {
        return Ok(None);
    }
    match crate::sys::set_tx_budget(fd, cfg.tx_budget) {
        Ok(()) => Ok(Some(cfg.tx_budget)),
        Err(e) if e.errno() == Some(libc::ENOPROTOOPT) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| log::warn!("this kernel has no XDP_MAX_TX_SKB_BUDGET (Linux 6.17+): copy-mode TX sends 32 frames per kick"));
            Ok(None)
        }
        Err(e) => Err(XskError::TxBudget { iface: iface.into(), queue, budget: cfg.tx_budget, detail: e.to_string() }),
    }
}

/// An AF_XDP socket bound to one (interface, queue), with its UMEM and rings.
pub struct Xsk {
    umem: Umem,
    fill: FillQueue,
    comp: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    fd: RawFd,
    /// Frames userspace owns and has no use for yet (stack).
    free: Vec<FrameDesc>,
    frame_size: u32,
    zerocopy: bool,
    /// Copy-mode TX descriptors one kick sends, where xdpipe raised it (see set_tx_budget).
    tx_budget: Option<u32>,
}

impl Xsk {
    pub fn open(iface: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        let fs = cfg.frame_size.get();
        let qs = |r: RingSize| QueueSize::new(r.get()).map_err(|e| XskError::UmemConfig(e.to_string()));
        let ucfg = UmemConfig::builder()
            .frame_size(XskFrameSize::new(fs).map_err(|e| XskError::UmemConfig(e.to_string()))?)
            .fill_queue_size(qs(cfg.fill_size)?)
            .comp_queue_size(qs(cfg.comp_size)?)
            .build()
            .map_err(|e| XskError::UmemConfig(e.to_string()))?;
        let frames = NonZeroU32::new(cfg.frames).ok_or_else(|| XskError::UmemConfig("zero frames".into()))?;
        let (umem, descs) = Umem::new(ucfg, frames, false)
            .map_err(|source| XskError::Umem { frames: cfg.frames, frame_size: fs, source })?;

        let scfg = socket_config(cfg)?;
        let ifname: Interface = iface.parse().map_err(|_| XskError::UmemConfig(format!("bad interface name {iface:?}")))?;
        // SAFETY: a fresh UMEM that no other socket uses; INHIBIT_PROG_LOAD is set.
        let (tx, rx, rings) = unsafe { Socket::new(scfg, &umem, &ifname, queue) }.map_err(|source| {
            let errno = std::error::Error::source(&source)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(|e| e.raw_os_error());
            match errno {
                Some(e @ (libc::EOPNOTSUPP | libc::EPROTONOSUPPORT)) if cfg.bind == BindMode::ZeroCopy => {
                    XskError::ZeroCopyUnsupported { iface: iface.into(), queue, errno: e }
                }
                Some(libc::EBUSY) => XskError::QueueBusy { iface: iface.into(), queue },
                _ => XskError::Socket { iface: iface.into(), queue, source },
            }
        })?;
        let (fill, comp) = rings.ok_or_else(|| XskError::NoFillRing { iface: iface.into(), queue })?;
        let fd = rx.fd().as_raw_fd();
        let zerocopy = crate::sys::xdp_is_zerocopy(fd).unwrap_or(false);
        let tx_budget = set_tx_budget(fd, cfg, zerocopy, iface, queue)?;
        Ok(Self { umem, fill, comp, rx, tx, fd, free: descs, frame_size: fs, zerocopy, tx_budget })
    }

    /// Opens a second socket on (`iface`, `queue`) that shares this socket's UMEM
    /// (XDP_SHARED_UMEM, with its own fill and completion rings). Frames of either socket
    /// can then go to the other's rings without a copy. It starts with no free frames: the
    /// frame pool stays with `self`.
    pub fn open_shared(&self, iface: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XskError> {
        let scfg = socket_config(cfg)?;
        let ifname: Interface = iface.parse().map_err(|_| XskError::UmemConfig(format!("bad interface name {iface:?}")))?;
        // SAFETY: (iface, queue) differs from every socket on this UMEM (the caller opens
        // one shared socket per out-queue) and INHIBIT_PROG_LOAD is set.
        let (tx, rx, rings) = unsafe { Socket::new(scfg, &self.umem, &ifname, queue) }
            .map_err(|source| XskError::Socket { iface: iface.into(), queue, source })?;
        let (fill, comp) = rings.ok_or_else(|| XskError::NoFillRing { iface: iface.into(), queue })?;
        let fd = rx.fd().as_raw_fd();
        let zerocopy = crate::sys::xdp_is_zerocopy(fd).unwrap_or(false);
        let tx_budget = set_tx_budget(fd, cfg, zerocopy, iface, queue)?;
        Ok(Self { umem: self.umem.clone(), fill, comp, rx, tx, fd, free: Vec::new(), frame_size: self.frame_size, zerocopy, tx_budget })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
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
        (self.frame_size - XDP_PACKET_HEADROOM) as usize
    }

    /// Frames userspace holds and has not put on any ring.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Takes up to `n` free frames (for the generator to fill and send).
    pub fn take_free(&mut self, out: &mut Vec<FrameDesc>, n: usize) {
        let k = n.min(self.free.len());
        out.extend(self.free.drain(self.free.len() - k..));
    }

    /// Returns frames to the free list.
    pub fn give_free(&mut self, descs: &[FrameDesc]) {
        self.free.extend_from_slice(descs);
    }

    /// Moves free frames onto the fill ring, up to `max`, as many as fit. Returns how many.
    pub fn fill_from_free(&mut self, max: usize) -> usize {
        let want = max.min(self.free.len());
        let n = (self.fill.nb_free(want as u32) as usize).min(want);
        if n == 0 {
            return 0;
        }
        let start = self.free.len() - n;
        // SAFETY: the frames come from this socket's UMEM and userspace owns them (free list).
        let done = unsafe { self.fill.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - done);
        done
    }

    /// Consumes up to `out.len()` received frames. Userspace owns them afterwards.
    #[inline]
    pub fn rx_consume(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: `out` is only written; the descriptors the kernel returns are of this UMEM.
        unsafe { self.rx.consume(out) }
    }

    /// Puts frames on the fill ring, as many as fit (the caller keeps the rest). Returns
    /// how many were produced.
    #[inline]
    pub fn fill_produce(&mut self, descs: &[FrameDesc]) -> usize {
        let n = (self.fill.nb_free(descs.len() as u32) as usize).min(descs.len());
        if n == 0 {
            return 0;
        }
        // SAFETY: callers pass frames of this UMEM that they own (just consumed); n fits.
        unsafe { self.fill.produce(&descs[..n]) }
    }

    /// Puts frames on the TX ring, as many as fit. Returns how many were produced.
    #[inline]
    pub fn tx_produce(&mut self, descs: &[FrameDesc]) -> usize {
        let n = (self.tx.nb_free(descs.len() as u32) as usize).min(descs.len());
        if n == 0 {
            return 0;
        }
        // SAFETY: callers pass frames of this UMEM that they own; n fits in the ring.
        unsafe { self.tx.produce(&descs[..n]) }
    }

    /// Free slots on the TX ring, up to `want`.
    #[inline]
    pub fn tx_room(&mut self, want: usize) -> usize {
        (self.tx.nb_free(want as u32) as usize).min(want)
    }

    /// Consumes up to `out.len()` frames the kernel finished sending.
    #[inline]
    pub fn comp_consume(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: `out` is only written; the descriptors are of this UMEM.
        unsafe { self.comp.consume(out) }
    }

    #[inline]
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    #[inline]
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// The received bytes of a frame userspace owns.
    #[inline]
    pub fn frame(&self, desc: &FrameDesc) -> &[u8] {
        // SAFETY: the descriptor is of this UMEM and userspace owns the frame (see the
        // module docs), so the kernel does not write it while the slice lives.
        unsafe { self.umem.data(desc) }.contents()
    }

    /// The received bytes of a frame userspace owns, writable in place.
    #[inline]
    pub fn frame_mut<'a>(&'a self, desc: &'a mut FrameDesc) -> &'a mut [u8] {
        // SAFETY: as `frame`; `desc` is borrowed mutably so no other slice of it exists.
        let mut d = unsafe { self.umem.data_mut(desc) };
        let len = d.contents().len();
        let contents: &mut [u8] = d.contents_mut();
        // SAFETY: re-borrow the same memory for the lifetime of `desc`; `d` only wrapped it.
        unsafe { std::slice::from_raw_parts_mut(contents.as_mut_ptr(), len) }
    }

    /// Writes `bytes` as the frame's content and sets its length (for TX).
    #[inline]
    pub fn write_frame(&self, desc: &mut FrameDesc, bytes: &[u8]) {
        // SAFETY: as `frame_mut`.
        let mut d = unsafe { self.umem.data_mut(desc) };
        let mut c = d.cursor();
        c.set_pos(0);
        // The buffer is frame_size - headroom long; callers check `max_frame_len`.
        let _ = c.write_all(bytes);
    }

    /// Sets a frame's length to `len` (bytes already in place) and returns it writable.
    #[inline]
    pub fn frame_with_len<'a>(&'a self, desc: &'a mut FrameDesc, len: usize) -> &'a mut [u8] {
        {
            // SAFETY: as `frame_mut`.
            let mut d = unsafe { self.umem.data_mut(desc) };
            d.cursor().set_pos(len);
        }
        self.frame_mut(desc)
    }

    pub fn statistics(&self) -> Result<crate::sys::XdpStatistics, crate::sys::SysError> {
        crate::sys::xdp_statistics(self.fd)
    }
}

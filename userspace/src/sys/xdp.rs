//! AF_XDP system calls: the socket, UMEM registration, ring sizes and their mappings,
//! bind, socket options (statistics, zero-copy, TX budget) and the wakeups. `xsk` builds
//! its rings on these; nothing else calls them.
#![allow(unsafe_code)]

use std::{
    io, mem,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    ptr::NonNull,
};

use super::SysError;

/// A memory mapping, unmapped on drop: a ring shared with the kernel, or the UMEM.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain memory; who may touch which bytes is settled by the AF_XDP
// ring protocol that its users (xsk) follow, not by the thread holding it.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared references only hand out raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The mapping's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the mapping is zero bytes long.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are what mmap returned (or, for the UMEM, the part of it kept
        // after trimming), and nothing maps them again.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn mmap(len: usize, prot: i32, flags: i32, fd: RawFd, offset: libc::off_t, what: &str) -> Result<Mapping, SysError> {
    // SAFETY: a fresh mapping at an address of the kernel's choosing; no existing memory
    // is affected.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
    if p == libc::MAP_FAILED {
        return Err(SysError::last("mmap", what));
    }
    let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| SysError::last("mmap", what))?;
    Ok(Mapping { ptr, len })
}

/// Transparent huge page size on x86-64 and arm64 (4K base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Zeroed anonymous memory of `len` bytes, populated up front (the UMEM). It starts on a
/// 2 MiB boundary and asks for transparent huge pages (MADV_HUGEPAGE), so a UMEM of 4 KiB
/// frames is a few TLB entries instead of one per frame: the generator writing each
/// frame's stamp, and l2fwd its MACs, took a TLB miss per frame otherwise. Where THP is
/// off (`never`) or no huge page is free, the kernel uses base pages and nothing changes.
pub fn map_anonymous(len: usize) -> Result<Mapping, SysError> {
    const PAGE: usize = 4096;
    let what = format!("{len} B of UMEM");
    let too_big = || SysError::from_errno("mmap", what.clone(), libc::ENOMEM);
    // What stays mapped, and what is reserved to place a 2 MiB-aligned start inside it;
    // both in whole pages, as mmap and munmap count them. Then both ends are trimmed.
    let kept = len.checked_next_multiple_of(PAGE).ok_or_else(too_big)?;
    let span = kept.checked_add(HUGE_PAGE).ok_or_else(too_big)?;
    let whole = mmap(span, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0, &what)?;
    let base = whole.as_ptr() as usize;
    let start = (base + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    // base is page-aligned, so head is whole pages and below HUGE_PAGE: head + kept <= span.
    let head = start - base;
    let tail = span - head - kept;
    std::mem::forget(whole);
    // SAFETY: both ranges lie inside the mapping just made, which nothing else uses; what
    // remains, [start, start + len), is owned by the returned Mapping.
    unsafe {
        if head > 0 {
            libc::munmap(base as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((start + kept) as *mut libc::c_void, tail);
        }
    }
    let ptr = NonNull::new(start as *mut u8).ok_or_else(too_big)?;
    let m = Mapping { ptr, len };
    // SAFETY: advice and population on memory this process owns; neither changes its
    // contents (anonymous memory reads as zero either way). MADV_HUGEPAGE can fail
    // (THP compiled out): then base pages, as before.
    unsafe {
        libc::madvise(m.as_ptr().cast(), len, libc::MADV_HUGEPAGE);
        if libc::madvise(m.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                // Out of memory, say: an error now, not a SIGBUS or OOM kill later.
                return Err(SysError { call: "madvise(MADV_POPULATE_WRITE)", what, source: e });
            }
            // Before Linux 5.14 (no MADV_POPULATE_WRITE): touch every page instead.
            for off in (0..len).step_by(PAGE) {
                m.as_ptr().add(off).write_volatile(0);
            }
        }
    }
    Ok(m)
}

/// A new AF_XDP socket.
pub fn xdp_socket() -> Result<OwnedFd, SysError> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(SysError::last("socket(AF_XDP)", "AF_XDP socket"));
    }
    // SAFETY: we just created `fd` and own it from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_opt<T>(fd: RawFd, opt: libc::c_int, val: &T, call: &'static str) -> Result<(), SysError> {
    // SAFETY: the buffer and its length describe `val`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_XDP, opt, (val as *const T).cast(), mem::size_of::<T>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(SysError::last(call, format!("AF_XDP socket fd {fd}")));
    }
    Ok(())
}

// asm-generic/socket.h (x86-64 and arm64).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Kernel busy polling on an AF_XDP socket: SO_PREFER_BUSY_POLL 1, SO_BUSY_POLL `usecs`,
/// SO_BUSY_POLL_BUDGET `budget` (the last two above the sysctls need CAP_NET_ADMIN).
/// They belong to the socket and go with it: nothing to restore.
pub fn set_busy_poll(fd: RawFd, usecs: u32, budget: u16) -> Result<(), SysError> {
    for (opt, val, call) in [
        (SO_PREFER_BUSY_POLL, 1, "setsockopt(SO_PREFER_BUSY_POLL)"),
        (SO_BUSY_POLL, usecs as libc::c_int, "setsockopt(SO_BUSY_POLL)"),
        (SO_BUSY_POLL_BUDGET, budget as libc::c_int, "setsockopt(SO_BUSY_POLL_BUDGET)"),
    ] {
        // SAFETY: the buffer and its length describe `val`, which outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(SysError::last(call, format!("AF_XDP socket fd {fd}")));
        }
    }
    Ok(())
}

/// SO_INCOMING_NAPI_ID (asm-generic/socket.h).
const SO_INCOMING_NAPI_ID: libc::c_int = 56;

/// The NAPI the kernel's busy polling runs for this socket (SO_INCOMING_NAPI_ID); 0 when
/// the socket has none, and then a busy poll (recvfrom or epoll) runs nothing. Since
/// Linux 6.13 an AF_XDP socket gets it at bind, from its queue's NAPI where the driver
/// names one (veth does not); before, from its first frame.
pub fn incoming_napi_id(fd: RawFd) -> Result<u32, SysError> {
    let mut val: u32 = 0;
    let mut len = mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: the buffer and its length describe `val`, which outlives the call.
    let rc =
        unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_INCOMING_NAPI_ID, (&mut val as *mut u32).cast(), &mut len) };
    if rc != 0 {
        return Err(SysError::last("getsockopt(SO_INCOMING_NAPI_ID)", format!("AF_XDP socket fd {fd}")));
    }
    Ok(val)
}

fn get_opt<T: Default>(fd: RawFd, opt: libc::c_int, call: &'static str) -> Result<T, SysError> {
    let mut val = T::default();
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the buffer and its length describe `val`, which outlives the call.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (&mut val as *mut T).cast(), &mut len) };
    if rc != 0 {
        return Err(SysError::last(call, format!("AF_XDP socket fd {fd}")));
    }
    Ok(val)
}

/// Registers `area` as the socket's UMEM, cut into `chunk_size` frames (aligned mode, no
/// extra headroom beyond the kernel's XDP_PACKET_HEADROOM). A `tx_metadata_len` above 0
/// (a multiple of 8, below 256) reserves that many bytes before every TX frame for AF_XDP
/// TX metadata (XDP_UMEM_TX_METADATA_LEN, Linux 6.8+).
pub fn register_umem(fd: RawFd, area: &Mapping, chunk_size: u32, tx_metadata_len: u32) -> Result<(), SysError> {
    let reg = libc::xdp_umem_reg {
        addr: area.as_ptr() as u64,
        len: area.len() as u64,
        chunk_size,
        headroom: 0,
        flags: if tx_metadata_len > 0 { libc::XDP_UMEM_TX_METADATA_LEN } else { 0 },
        tx_metadata_len,
    };
    set_opt(fd, libc::XDP_UMEM_REG, &reg, "setsockopt(XDP_UMEM_REG)")
}

/// The four rings of an AF_XDP socket and its UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// Frames the kernel received: descriptors, kernel to userspace.
    Rx,
    /// Frames to send: descriptors, userspace to kernel.
    Tx,
    /// Free frames for the kernel to receive into: addresses, userspace to kernel.
    Fill,
    /// Frames the kernel has sent: addresses, kernel to userspace.
    Completion,
}

impl RingKind {
    fn sockopt(self) -> libc::c_int {
        match self {
            RingKind::Rx => libc::XDP_RX_RING,
            RingKind::Tx => libc::XDP_TX_RING,
            RingKind::Fill => libc::XDP_UMEM_FILL_RING,
            RingKind::Completion => libc::XDP_UMEM_COMPLETION_RING,
        }
    }

    fn page_offset(self) -> libc::off_t {
        match self {
            RingKind::Rx => libc::XDP_PGOFF_RX_RING,
            RingKind::Tx => libc::XDP_PGOFF_TX_RING,
            RingKind::Fill => libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            RingKind::Completion => libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
        }
    }

    /// Bytes per entry: a `struct xdp_desc` on RX/TX, a u64 address on fill/completion.
    pub fn entry_size(self) -> usize {
        match self {
            RingKind::Rx | RingKind::Tx => mem::size_of::<libc::xdp_desc>(),
            RingKind::Fill | RingKind::Completion => mem::size_of::<u64>(),
        }
    }
}

/// Creates the socket's ring of `kind` with `entries` slots (a power of two).
pub fn set_ring_size(fd: RawFd, kind: RingKind, entries: u32) -> Result<(), SysError> {
    let call = match kind {
        RingKind::Rx => "setsockopt(XDP_RX_RING)",
        RingKind::Tx => "setsockopt(XDP_TX_RING)",
        RingKind::Fill => "setsockopt(XDP_UMEM_FILL_RING)",
        RingKind::Completion => "setsockopt(XDP_UMEM_COMPLETION_RING)",
    };
    set_opt(fd, kind.sockopt(), &entries, call)
}

/// Byte offsets of a ring's producer index, consumer index, first entry and flags word
/// inside its mapping.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingOffsets {
    /// The producer index (u32).
    pub producer: u64,
    /// The consumer index (u32).
    pub consumer: u64,
    /// The first entry.
    pub desc: u64,
    /// The flags word (XDP_RING_NEED_WAKEUP).
    pub flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct MmapOffsetsRaw {
    rx: [u64; 4],
    tx: [u64; 4],
    fr: [u64; 4],
    cr: [u64; 4],
}

/// Where the fields of the ring of `kind` lie in its mapping (XDP_MMAP_OFFSETS).
pub fn ring_offsets(fd: RawFd, kind: RingKind) -> Result<RingOffsets, SysError> {
    const _: () = assert!(mem::size_of::<MmapOffsetsRaw>() == mem::size_of::<libc::xdp_mmap_offsets>());
    let raw: MmapOffsetsRaw = get_opt(fd, libc::XDP_MMAP_OFFSETS, "getsockopt(XDP_MMAP_OFFSETS)")?;
    let o = match kind {
        RingKind::Rx => raw.rx,
        RingKind::Tx => raw.tx,
        RingKind::Fill => raw.fr,
        RingKind::Completion => raw.cr,
    };
    Ok(RingOffsets { producer: o[0], consumer: o[1], desc: o[2], flags: o[3] })
}

/// Maps the ring of `kind` (`entries` slots) shared with the kernel.
pub fn map_ring(fd: RawFd, kind: RingKind, offsets: &RingOffsets, entries: u32) -> Result<Mapping, SysError> {
    let len = offsets.desc as usize + entries as usize * kind.entry_size();
    mmap(
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED | libc::MAP_POPULATE,
        fd,
        kind.page_offset(),
        &format!("{kind:?} ring of AF_XDP socket fd {fd}"),
    )
}

/// Binds the socket to (ifindex, queue). With `shared_umem`, it uses that socket's UMEM
/// (XDP_SHARED_UMEM; the kernel then takes the bind mode from the UMEM's first socket and
/// refuses any other flag).
pub fn bind_xdp(
    fd: &OwnedFd,
    ifindex: u32,
    queue: u32,
    flags: u16,
    shared_umem: Option<RawFd>,
) -> Result<(), SysError> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: if shared_umem.is_some() { libc::XDP_SHARED_UMEM } else { flags },
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared_umem.unwrap_or(0) as u32,
    };
    // SAFETY: `sa` is a complete sockaddr_xdp and the length matches it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_xdp).cast(),
            mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(SysError::last("bind(AF_XDP)", format!("ifindex {ifindex} queue {queue}")));
    }
    Ok(())
}

/// The kernel's `struct xdp_statistics` for one AF_XDP socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than a full RX ring or an empty fill ring.
    pub rx_dropped: u64,
    /// Invalid descriptors userspace put on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors userspace put on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when it was kicked.
    pub tx_ring_empty_descs: u64,
}

impl XdpStatistics {
    /// Field-wise sum, to fold several sockets together.
    pub fn add(&mut self, o: &XdpStatistics) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}

/// Reads XDP_STATISTICS from an AF_XDP socket.
pub fn xdp_statistics(fd: RawFd) -> Result<XdpStatistics, SysError> {
    const _: () = assert!(mem::size_of::<XdpStatistics>() == mem::size_of::<libc::xdp_statistics>());
    get_opt(fd, libc::XDP_STATISTICS, "getsockopt(XDP_STATISTICS)")
}

/// XDP_MAX_TX_SKB_BUDGET (Linux 6.17+): descriptors one send call handles in copy mode.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Raises how many TX descriptors one kick (sendto / poll) sends in copy mode, from the
/// kernel's fixed 32 to `budget` (32 ..= the TX ring size). Kernels before 6.17 lack the
/// option (ENOPROTOOPT): they keep 32.
pub fn set_tx_budget(fd: RawFd, budget: u32) -> Result<(), SysError> {
    set_opt(fd, XDP_MAX_TX_SKB_BUDGET, &budget, "setsockopt(XDP_MAX_TX_SKB_BUDGET)")
        .map_err(|e| SysError { what: format!("{}, budget {budget}", e.what), ..e })
}

/// True if the AF_XDP socket is bound in zero-copy mode.
pub fn xdp_is_zerocopy(fd: RawFd) -> Result<bool, SysError> {
    let opts: u32 = get_opt(fd, libc::XDP_OPTIONS, "getsockopt(XDP_OPTIONS)")?;
    Ok(opts & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Asks the kernel to process the fill and RX rings (need_wakeup set on the fill ring).
/// Non-blocking; "try again" answers are expected and ignored.
#[inline]
pub fn wakeup_rx(fd: RawFd) {
    super::hot_call(super::HotCall::WakeupRx { fd });
}

/// Asks the kernel to transmit what is on the TX ring (copy mode sends only when kicked).
/// ENOBUFS / EAGAIN / EBUSY / ENETDOWN mean "later" and are ignored like xdpsock does.
#[inline]
pub fn kick_tx(fd: RawFd) {
    super::hot_call(super::HotCall::KickTx { fd });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_umem_area_is_zeroed_writable_and_starts_on_a_huge_page_boundary() {
        // 4224: not whole pages (the ring tests map that much).
        for len in [4096, 4224, 3 * 4096, 16 << 20] {
            let m = map_anonymous(len).unwrap();
            assert_eq!(m.len(), len);
            assert_eq!(m.as_ptr() as usize % HUGE_PAGE, 0, "len {len}");
            // SAFETY: the mapping is `len` bytes, owned by `m`, alive for the block.
            let bytes = unsafe { std::slice::from_raw_parts_mut(m.as_ptr(), len) };
            assert!(bytes.iter().all(|&b| b == 0));
            bytes[len - 1] = 7;
            assert_eq!(bytes[len - 1], 7);
        }
    }
}

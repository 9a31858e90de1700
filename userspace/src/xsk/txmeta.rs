//! AF_XDP TX metadata (`union xsk_tx_metadata`, include/uapi/linux/if_xdp.h): a UMEM
//! registered with XDP_UMEM_TX_METADATA_LEN has [`TX_METADATA_LEN`] bytes right before
//! every TX frame's data, and a descriptor with [`XDP_TX_METADATA`] in its options asks the
//! kernel to read them: a checksum to fill in (`csum_start`, `csum_offset`, with the
//! checksum field seeded with the pseudo-header sum) and a completion timestamp, which the
//! kernel writes into the same bytes before the frame's address comes back on the
//! completion ring.
//!
//! Who honours it (net/xdp/xsk.c, Linux 6.18): in zero-copy mode the driver, where its
//! `xsk-features` list tx-checksum / tx-timestamp; in copy mode `xsk_skb_metadata`, for
//! any device: the checksum request becomes a CHECKSUM_PARTIAL skb (the device's checksum
//! offload completes it, or the kernel's `skb_checksum_help` when the device has none),
//! and the timestamp request a software CLOCK_TAI timestamp taken when the skb is freed
//! (`xsk_destruct_skb`).

/// `XDP_TX_METADATA`: the descriptor's option bit saying the metadata area is filled in.
pub const XDP_TX_METADATA: u32 = libc::XDP_TX_METADATA;
/// `XDP_TXMD_FLAGS_TIMESTAMP`: ask for a TX completion timestamp.
pub const XDP_TXMD_FLAGS_TIMESTAMP: u64 = libc::XDP_TXMD_FLAGS_TIMESTAMP as u64;
/// `XDP_TXMD_FLAGS_CHECKSUM`: ask for the L4 checksum to be filled in.
pub const XDP_TXMD_FLAGS_CHECKSUM: u64 = libc::XDP_TXMD_FLAGS_CHECKSUM as u64;

/// The kernel's `union xsk_tx_metadata` (Linux 6.15+, with `launch_time`): `flags`, then
/// the request (`csum_start`, `csum_offset`, `launch_time`) or, once completed, the
/// completion (`tx_timestamp`) over the same bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct XskTxMetadata {
    flags: u64,
    csum_start: u16,
    csum_offset: u16,
    _pad: u32,
    launch_time: u64,
}

/// Bytes reserved before each TX frame: `sizeof(union xsk_tx_metadata)`.
pub const TX_METADATA_LEN: u32 = std::mem::size_of::<XskTxMetadata>() as u32;

/// Offset of the completion's `tx_timestamp` in the area (it overlays the request).
const TX_TIMESTAMP_OFFSET: usize = 8;

// The layout against the uapi as libc has it (libc's request lacks launch_time, 6.15).
const _: () = {
    assert!(TX_METADATA_LEN == 24 && TX_METADATA_LEN.is_multiple_of(8));
    assert!(std::mem::offset_of!(XskTxMetadata, flags) == std::mem::offset_of!(libc::xsk_tx_metadata, flags));
    assert!(std::mem::offset_of!(XskTxMetadata, csum_start) == TX_TIMESTAMP_OFFSET);
    assert!(std::mem::offset_of!(libc::xsk_tx_metadata, xsk_tx_metadata_union) == TX_TIMESTAMP_OFFSET);
    assert!(std::mem::offset_of!(XskTxMetadata, csum_offset) == 10);
    assert!(std::mem::offset_of!(XskTxMetadata, launch_time) == 16);
};

/// What one frame asks of the kernel or the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Fill in an L4 checksum: (`csum_start`, `csum_offset`), the checksum's coverage
    /// starting `csum_start` bytes into the frame and the checksum field `csum_offset`
    /// bytes after that (UDP: 6). The field must hold the pseudo-header sum.
    pub checksum: Option<(u16, u16)>,
    /// Write a TX completion timestamp.
    pub timestamp: bool,
}

impl TxRequest {
    /// Nothing asked: the descriptor goes out without XDP_TX_METADATA.
    pub const NONE: TxRequest = TxRequest { checksum: None, timestamp: false };

    /// True if nothing is asked.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.checksum.is_none() && !self.timestamp
    }

    /// The area's bytes for this request.
    #[inline]
    fn area(&self) -> XskTxMetadata {
        let (csum_start, csum_offset) = self.checksum.unwrap_or((0, 0));
        let mut flags = 0;
        if self.checksum.is_some() {
            flags |= XDP_TXMD_FLAGS_CHECKSUM;
        }
        if self.timestamp {
            flags |= XDP_TXMD_FLAGS_TIMESTAMP;
        }
        XskTxMetadata { flags, csum_start, csum_offset, _pad: 0, launch_time: 0 }
    }
}

/// Writes `req` into the metadata area before a frame (all zero for an empty request, so
/// a later completion of this chunk reads no stale timestamp request).
///
/// # Safety
/// `area` points at [`TX_METADATA_LEN`] writable bytes that userspace owns (the headroom
/// of a chunk taken from the free list, before it goes to the TX ring).
#[inline]
pub(super) unsafe fn write_request(area: *mut u8, req: &TxRequest) {
    // SAFETY: the caller's guarantee; unaligned, as the area need not be 8-byte aligned
    // in userspace's view (it is, at 256 - 24 into a chunk, but nothing relies on it).
    unsafe { area.cast::<XskTxMetadata>().write_unaligned(req.area()) };
}

/// The TX completion timestamp in the area before a completed frame, if its request
/// asked for one (the flags survive completion; the timestamp overlays the request).
///
/// # Safety
/// `area` points at [`TX_METADATA_LEN`] readable bytes that userspace owns (the frame
/// was just consumed from the completion ring).
#[inline]
pub(super) unsafe fn read_timestamp(area: *const u8) -> Option<u64> {
    // SAFETY: the caller's guarantee.
    let flags = unsafe { area.cast::<u64>().read_unaligned() };
    if flags & XDP_TXMD_FLAGS_TIMESTAMP == 0 {
        return None;
    }
    // SAFETY: as above; 8 bytes at offset 8 of the 24.
    Some(unsafe { area.add(TX_TIMESTAMP_OFFSET).cast::<u64>().read_unaligned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_area_is_the_uapi_layout_with_the_kernels_flag_values() {
        // include/uapi/linux/if_xdp.h: XDP_TX_METADATA (1 << 1) in xdp_desc.options;
        // XDP_TXMD_FLAGS_TIMESTAMP (1 << 0), _CHECKSUM (1 << 1); XDP_UMEM_TX_METADATA_LEN
        // (1 << 2) in xdp_umem_reg.flags.
        assert_eq!(XDP_TX_METADATA, 2);
        assert_eq!((XDP_TXMD_FLAGS_TIMESTAMP, XDP_TXMD_FLAGS_CHECKSUM), (1, 2));
        assert_eq!(libc::XDP_UMEM_TX_METADATA_LEN, 4);
        let mut area = [0xaau8; 24];
        let req = TxRequest { checksum: Some((34, 6)), timestamp: true };
        // SAFETY: 24 bytes this test owns.
        unsafe { write_request(area.as_mut_ptr(), &req) };
        let mut want = [0u8; 24];
        want[0..8].copy_from_slice(&3u64.to_ne_bytes());
        want[8..10].copy_from_slice(&34u16.to_ne_bytes());
        want[10..12].copy_from_slice(&6u16.to_ne_bytes());
        assert_eq!(area, want, "flags, csum_start, csum_offset, then zeros (no launch time)");
        // The kernel's completion overwrites the request with the timestamp.
        area[8..16].copy_from_slice(&123_456_789u64.to_ne_bytes());
        // SAFETY: as above.
        assert_eq!(unsafe { read_timestamp(area.as_ptr()) }, Some(123_456_789));
        // SAFETY: as above.
        unsafe { write_request(area.as_mut_ptr(), &TxRequest { checksum: Some((34, 6)), timestamp: false }) };
        // SAFETY: as above.
        assert_eq!(unsafe { read_timestamp(area.as_ptr()) }, None, "no timestamp asked: none read");
        // SAFETY: as above.
        unsafe { write_request(area.as_mut_ptr(), &TxRequest::NONE) };
        assert_eq!(area, [0u8; 24], "an empty request clears the area");
    }
}

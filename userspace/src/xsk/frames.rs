//! Frame tokens: what a stage or a source may touch, and for how long.
//!
//! A [`Batch`] is the frames one RX ring consume handed to userspace. It borrows the
//! driver's descriptor and verdict arrays, and every [`Frame`] it yields borrows the
//! batch, so no frame outlives the batch: once the hook returns, the driver recycles or
//! transmits each frame by its verdict, and nothing in safe code still names its bytes.
//! A [`TxBatch`] is the same for free frames a source fills for transmission.
//!
//! Both are built only by `Xsk` (`unsafe fn`s whose contract is the ownership window in
//! `xsk`'s module docs); the descriptors they hold were checked to lie inside one chunk.
//!
//! Multi-buffer frames (XDP_USE_SG): a frame longer than a chunk's room spans a chain of
//! descriptors, each in its own chunk, all but the last flagged [`XDP_PKT_CONTD`]. A
//! [`Frame`] is the whole chain: [`Frame::len`] counts every segment, [`Frame::bytes`]
//! is the first (where the headers are), [`Frame::segments`] walks them all. A chain
//! keeps one verdict and goes back to a ring whole.
use std::{cell::Cell, marker::PhantomData};

use super::{
    Desc, MAX_SEGS, XDP_PKT_CONTD,
    txmeta::{self, TxRequest, XDP_TX_METADATA},
};

/// Another socket a frame can leave by, as the pipeline numbers them (the first
/// `out_port` given to the pipeline is port 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct OutPort(pub u8);

/// What happens to a received frame after the stage's hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Its chunk goes back to the fill ring (the default for every frame).
    #[default]
    Drop,
    /// Sent back out of the queue it came in on; the frame stays in the UMEM.
    Tx,
    /// Sent out of another port (without a copy where the UMEM is shared).
    Redirect(OutPort),
}

/// A frame length that is zero or does not fit its chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "frame length {len} B: this frame can be 1 to {room} B long (a single-buffer frame up to the end of its UMEM chunk; a multi-buffer frame keeps its length)"
)]
pub struct FrameLenError {
    /// The length asked for.
    pub len: usize,
    /// The longest the frame can be: bytes from its start to the end of its chunk (a
    /// multi-buffer frame: its length).
    pub room: usize,
}

/// Descriptors in the chain `descs[0]` starts: up to and including the first without
/// [`XDP_PKT_CONTD`], never past the slice (whose chains `Xsk::rx_consume` checked end).
#[inline]
fn chain_len(descs: &[Desc]) -> usize {
    match descs.first() {
        Some(d) if d.options & XDP_PKT_CONTD == 0 => 1,
        Some(_) => descs.iter().position(|d| d.options & XDP_PKT_CONTD == 0).map_or(descs.len(), |i| i + 1),
        None => 0,
    }
}

/// The frames of one RX batch, each with its verdict.
pub struct Batch<'a> {
    base: *mut u8,
    descs: &'a mut [Desc],
    /// One per descriptor; a frame's verdict is its first descriptor's.
    verdicts: &'a mut [Verdict],
    /// Frames (chains) in `descs`.
    frames: usize,
    frame_size: u64,
    frame_mask: u64,
    /// Frames whose verdict is not `Drop`: 0 lets the driver recycle the batch in one go.
    kept: Cell<u32>,
}

impl<'a> Batch<'a> {
    /// # Safety
    /// `base` is the start of a UMEM of which every descriptor in `descs` names a frame
    /// that (1) lies inside one `frame_size` chunk of it, (2) userspace owns (consumed
    /// from the RX ring and not yet produced to any ring) for all of `'a`, and (3) is in a
    /// chunk no other descriptor of `descs` names. `verdicts` is as long as `descs` and
    /// all `Drop`. `descs` holds `frames` whole frames (a chain's descriptors carry
    /// XDP_PKT_CONTD but its last, and the last descriptor of `descs` has none).
    pub(super) unsafe fn new(
        base: *mut u8,
        descs: &'a mut [Desc],
        verdicts: &'a mut [Verdict],
        frame_size: u32,
        frames: usize,
    ) -> Self {
        debug_assert_eq!(descs.len(), verdicts.len());
        let frame_size = frame_size as u64;
        Self { base, descs, verdicts, frames, frame_size, frame_mask: !(frame_size - 1), kept: Cell::new(0) }
    }

    /// Frames in the batch (a multi-buffer frame counts once).
    #[inline]
    pub fn len(&self) -> usize {
        self.frames
    }

    /// True if the batch holds no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The frames, in ring order, each writable until the hook returns.
    #[inline]
    pub fn frames(&mut self) -> Frames<'_> {
        Frames {
            base: self.base,
            descs: &mut self.descs[..],
            verdicts: &mut self.verdicts[..],
            left: self.frames,
            frame_size: self.frame_size,
            frame_mask: self.frame_mask,
            kept: &self.kept,
        }
    }

    /// Gives every frame the same verdict.
    pub fn set_all(&mut self, verdict: Verdict) {
        self.verdicts.fill(verdict);
        self.kept.set(if verdict == Verdict::Drop { 0 } else { self.frames as u32 });
    }

    /// True if some frame's verdict is not `Drop`.
    #[inline]
    pub(crate) fn keeps_any(&self) -> bool {
        self.kept.get() > 0
    }
}

/// Iterator over a batch's frames (see [`Batch::frames`]).
pub struct Frames<'b> {
    base: *mut u8,
    descs: &'b mut [Desc],
    verdicts: &'b mut [Verdict],
    left: usize,
    frame_size: u64,
    frame_mask: u64,
    kept: &'b Cell<u32>,
}

impl<'b> Iterator for Frames<'b> {
    type Item = Frame<'b>;

    #[inline]
    fn next(&mut self) -> Option<Frame<'b>> {
        let k = chain_len(self.descs);
        if k == 0 || self.verdicts.len() < k {
            return None;
        }
        let (chain, descs) = std::mem::take(&mut self.descs).split_at_mut(k);
        self.descs = descs;
        let (verdict, verdicts) = std::mem::take(&mut self.verdicts).split_at_mut(k);
        self.verdicts = verdicts;
        self.left = self.left.saturating_sub(1);
        let (desc, rest) = chain.split_first_mut()?;
        let room = ((desc.addr & self.frame_mask) + self.frame_size - desc.addr) as u32;
        let head = (desc.addr & !self.frame_mask) as u32;
        // SAFETY: the descriptor lies inside the UMEM (Batch::new's contract), so the
        // offset stays inside the mapping.
        let data = unsafe { self.base.add(desc.addr as usize) };
        Some(Frame {
            data,
            len: &mut desc.len,
            room,
            head,
            rest,
            base: self.base,
            verdict: &mut verdict[0],
            kept: self.kept,
            _bytes: PhantomData,
        })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Frames<'_> {}

/// One received frame: its bytes, its length and its verdict, for the current batch only.
pub struct Frame<'b> {
    data: *mut u8,
    len: &'b mut u32,
    room: u32,
    /// A multi-buffer frame's further segments (empty for a single-buffer frame).
    rest: &'b [Desc],
    base: *mut u8,
    /// Bytes of the chunk before `data` (where the XDP metadata lands).
    head: u32,
    verdict: &'b mut Verdict,
    kept: &'b Cell<u32>,
    _bytes: PhantomData<&'b mut [u8]>,
}

impl Frame<'_> {
    /// The frame's bytes (Ethernet header first); of a multi-buffer frame, its first
    /// segment (the headers; see [`Frame::segments`] for the rest).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes from `data` lie inside the frame's chunk (checked when the
        // descriptor was consumed, and `set_len` keeps len <= room); userspace owns the
        // chunk for the batch's lifetime and no other Frame names it (Batch::new).
        unsafe { std::slice::from_raw_parts(self.data, *self.len as usize) }
    }

    /// The XDP RX metadata the steering program put in front of the frame (device RX
    /// timestamp, hash, VLAN tag, each with a flag saying whether the driver gave it), or
    /// None if the bytes there are not such an area (any bytes are checked, never
    /// trusted). Valid until the frame's length changes: the area records the length.
    #[inline]
    pub fn metadata(&self) -> Option<xdp_common::RxMeta> {
        let len = (self.head as usize).min(xdp_common::RxMeta::LEN);
        // SAFETY: the `len` <= `head` bytes before `data` are in the same chunk, which
        // userspace owns for the batch's lifetime (Batch::new); `&self` excludes a
        // mutable view of the frame (and the area is outside it anyway).
        let area = unsafe { std::slice::from_raw_parts(self.data.sub(len), len) };
        xdp_common::RxMeta::read(area, *self.len as usize)
    }

    /// The frame's bytes (of a multi-buffer frame, its first segment), writable in place.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`; `&mut self` makes this the only slice of the chunk.
        unsafe { std::slice::from_raw_parts_mut(self.data, *self.len as usize) }
    }

    /// The frame's length in bytes, every segment counted.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        if self.rest.is_empty() { *self.len as usize } else { self.multi_len() }
    }

    #[cold]
    fn multi_len(&self) -> usize {
        *self.len as usize + self.rest.iter().map(|d| d.len as usize).sum::<usize>()
    }

    /// Descriptors (UMEM chunks) the frame spans: 1, or more for a multi-buffer frame.
    #[inline]
    pub fn segment_count(&self) -> usize {
        1 + self.rest.len()
    }

    /// The frame's segments in order, the first being [`Frame::bytes`].
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        Segments { first: Some(self.bytes()), rest: self.rest.iter(), base: self.base, _bytes: PhantomData }
    }

    /// The most the frame can grow to: bytes from its start to the end of its chunk (a
    /// multi-buffer frame: its length, which [`Frame::set_len`] does not change).
    #[inline]
    pub fn room(&self) -> usize {
        if self.rest.is_empty() { self.room as usize } else { self.len() }
    }

    /// Changes the frame's length (what is transmitted). Bytes past the old length are
    /// whatever the chunk held. Zero is refused: the kernel drops a zero-length TX
    /// descriptor without completing it, so its chunk would never come back.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), FrameLenError> {
        if !self.rest.is_empty() {
            let now = self.len();
            return if len == now { Ok(()) } else { Err(FrameLenError { len, room: now }) };
        }
        if len == 0 || len > self.room as usize {
            return Err(FrameLenError { len, room: self.room as usize });
        }
        *self.len = len as u32;
        Ok(())
    }

    /// The frame's verdict so far (`Drop` until set).
    #[inline]
    pub fn verdict(&self) -> Verdict {
        *self.verdict
    }

    /// Sets what happens to the frame after the hook.
    #[inline]
    pub fn set_verdict(&mut self, verdict: Verdict) {
        let was_kept = *self.verdict != Verdict::Drop;
        let keeps = verdict != Verdict::Drop;
        if was_kept != keeps {
            self.kept.set(if keeps { self.kept.get() + 1 } else { self.kept.get() - 1 });
        }
        *self.verdict = verdict;
    }
}

/// The segments of a [`Frame`] (see [`Frame::segments`]).
pub struct Segments<'f> {
    first: Option<&'f [u8]>,
    rest: std::slice::Iter<'f, Desc>,
    base: *mut u8,
    _bytes: PhantomData<&'f [u8]>,
}

impl<'f> Iterator for Segments<'f> {
    type Item = &'f [u8];

    #[inline]
    fn next(&mut self) -> Option<&'f [u8]> {
        if let Some(f) = self.first.take() {
            return Some(f);
        }
        let d = self.rest.next()?;
        // SAFETY: each descriptor of the chain lies inside one chunk of the UMEM, which
        // userspace owns for the batch's lifetime, and no other Frame names it
        // (Batch::new); the Frame is borrowed shared while this slice lives.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(d.addr as usize), d.len as usize) })
    }
}

/// Free frames a source fills for transmission, for one call of its hook.
pub struct TxBatch<'a> {
    base: *mut u8,
    descs: &'a mut [Desc],
    filled: usize,
    frame_size: u64,
    frame_mask: u64,
    /// Bytes of TX metadata before each frame (0: the UMEM has none).
    meta_len: u64,
}

impl<'a> TxBatch<'a> {
    /// # Safety
    /// As [`Batch::new`], with "owned" meaning taken from the socket's free list and not
    /// yet produced to any ring. `meta_len` is the UMEM's TX metadata length.
    pub(super) unsafe fn new(base: *mut u8, descs: &'a mut [Desc], frame_size: u32, meta_len: u32) -> Self {
        let frame_size = frame_size as u64;
        Self { base, descs, filled: 0, frame_size, frame_mask: !(frame_size - 1), meta_len: meta_len as u64 }
    }

    /// True if frames can carry a [`TxRequest`] (the UMEM has a TX metadata area).
    #[inline]
    pub fn has_tx_metadata(&self) -> bool {
        self.meta_len > 0
    }

    /// Writes the metadata area of the frame starting at descriptor `i` (just pushed) and
    /// flags it XDP_TX_METADATA if `req` asks anything. Without an area, nothing.
    #[inline]
    fn request(&mut self, i: usize, req: &TxRequest) {
        if self.meta_len == 0 {
            return;
        }
        let d = &mut self.descs[i];
        if d.addr & !self.frame_mask < self.meta_len {
            // No room before this frame's data in its chunk (never for frames from
            // take_free, which start after the headroom): it goes out without a request.
            return;
        }
        if !req.is_empty() {
            d.options |= XDP_TX_METADATA;
        }
        // SAFETY: the `meta_len` bytes before the frame's data lie in its chunk (checked
        // above), which userspace owns until the batch's descriptors go to the TX ring
        // (TxBatch::new's contract).
        unsafe { txmeta::write_request(self.base.add((d.addr - self.meta_len) as usize), req) };
    }

    /// Single-buffer frames that can still be pushed in this call (free descriptors; a
    /// multi-buffer frame takes one per segment).
    #[inline]
    pub fn remaining(&self) -> usize {
        self.descs.len() - self.filled
    }

    /// Descriptors filled so far (one per frame, or per segment of a multi-buffer frame).
    #[inline]
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Room of the next frame: the longest frame `push` can write.
    #[inline]
    pub fn frame_room(&self) -> usize {
        self.descs.get(self.filled).map_or(0, |d| ((d.addr & self.frame_mask) + self.frame_size - d.addr) as usize)
    }

    /// Writes the next frame: `write` gets its first `len` bytes (cut to the chunk's
    /// room) to fill. Returns false, without calling `write`, when the batch is full or
    /// `len` is 0 (the kernel would drop a zero-length frame without completing it).
    #[inline]
    pub fn push(&mut self, len: usize, write: impl FnOnce(&mut [u8])) -> bool {
        self.push_one(len, &TxRequest::NONE, write)
    }

    /// [`TxBatch::push`] with a request for the frame.
    #[inline]
    fn push_one(&mut self, len: usize, req: &TxRequest, write: impl FnOnce(&mut [u8])) -> bool {
        if len == 0 {
            return false;
        }
        let room = self.frame_room();
        let Some(desc) = self.descs.get_mut(self.filled) else {
            return false;
        };
        desc.len = len.min(room) as u32;
        desc.options = 0;
        // SAFETY: the descriptor lies inside one chunk of the UMEM and userspace owns it
        // (TxBatch::new's contract); `len` is cut to its room; `&mut self` makes this the
        // only slice of it.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.base.add(desc.addr as usize), desc.len as usize) };
        write(buf);
        self.request(self.filled, req);
        self.filled += 1;
        true
    }

    /// Writes the next frame, of `len` bytes, over as many free descriptors as it needs
    /// (a multi-buffer frame, for a socket bound with XDP_USE_SG, when `len` is more than
    /// [`TxBatch::frame_room`]): `write(offset, segment)` is called for each segment in
    /// order with the segment's offset in the frame. The first segment is as long as its
    /// chunk's room allows (headers and stamp go there). Returns false, without calling
    /// `write`, when `len` is 0, too few descriptors are left, or the frame would span
    /// more than [`MAX_SEGS`].
    #[inline]
    pub fn push_frame(&mut self, len: usize, write: impl FnMut(usize, &mut [u8])) -> bool {
        self.push_frame_with(len, &TxRequest::NONE, write)
    }

    /// As [`TxBatch::push_frame`], and the frame asks `req` of the kernel or the device
    /// (AF_XDP TX metadata in front of its first segment; ignored without a metadata area,
    /// see [`TxBatch::has_tx_metadata`]). A checksum request's coverage must lie in the
    /// first segment.
    #[inline]
    pub fn push_frame_with(&mut self, len: usize, req: &TxRequest, mut write: impl FnMut(usize, &mut [u8])) -> bool {
        let room = self.frame_room();
        if len <= room {
            return self.push_one(len, req, |b| write(0, b));
        }
        self.push_chain(len, req, &mut write)
    }

    #[cold]
    fn push_chain(&mut self, len: usize, req: &TxRequest, write: &mut dyn FnMut(usize, &mut [u8])) -> bool {
        let free = &self.descs[self.filled..];
        // The segments' rooms, in order, until they hold `len`.
        let (mut covered, mut k) = (0usize, 0usize);
        while covered < len {
            let Some(d) = free.get(k) else { return false };
            let room = ((d.addr & self.frame_mask) + self.frame_size - d.addr) as usize;
            if room == 0 {
                return false;
            }
            covered += room;
            k += 1;
        }
        if len == 0 || k > MAX_SEGS {
            return false;
        }
        let mut off = 0;
        for i in 0..k {
            let d = &mut self.descs[self.filled + i];
            let room = ((d.addr & self.frame_mask) + self.frame_size - d.addr) as usize;
            let seg = room.min(len - off);
            d.len = seg as u32;
            d.options = if i + 1 < k { XDP_PKT_CONTD } else { 0 };
            // SAFETY: as `push`: the descriptor lies inside one chunk of the UMEM that
            // userspace owns (TxBatch::new's contract); `seg` is cut to its room, and
            // `&mut self` makes this the only slice of it.
            let buf = unsafe { std::slice::from_raw_parts_mut(self.base.add(d.addr as usize), seg) };
            write(off, buf);
            // The kernel reads a frame's metadata before its first segment only; the
            // others' areas are cleared so their completions read no stale request.
            self.request(self.filled + i, if i == 0 { req } else { &TxRequest::NONE });
            off += seg;
        }
        self.filled += k;
        true
    }
}

#[cfg(test)]
mod tests {
    use xdp_common::{RX_META_HASH, RX_META_MAGIC, RxMeta};

    use super::*;

    /// A UMEM of two 2048-byte chunks: chunk 0 has a metadata area before its frame at
    /// 256, chunk 1's frame starts 8 bytes into it (no room for an area).
    #[test]
    fn frame_metadata_reads_the_area_before_the_data_and_never_outside_the_chunk() {
        let mut umem = vec![0u8; 4096];
        let len = 60u32;
        let area = 256 - RxMeta::LEN;
        umem[area + 8..area + 12].copy_from_slice(&0x1234_5678u32.to_ne_bytes());
        umem[area + 20..area + 22].copy_from_slice(&(len as u16).to_ne_bytes());
        umem[area + 22] = RX_META_HASH;
        umem[area + 23] = RX_META_MAGIC;
        // The 24 bytes before chunk 1's frame end like an area, but 16 of them are chunk
        // 0's: a read that ignored the chunk boundary would take them.
        umem[2048 + 4..2048 + 6].copy_from_slice(&(len as u16).to_ne_bytes());
        umem[2048 + 6] = RX_META_HASH;
        umem[2048 + 7] = RX_META_MAGIC;
        let mut descs = [Desc { addr: 256, len, options: 0 }, Desc { addr: 2048 + 8, len, options: 0 }];
        let mut verdicts = [Verdict::Drop; 2];
        // SAFETY: both descriptors lie inside their own chunk of `umem`, which this test
        // owns for the batch's lifetime; verdicts are all Drop.
        let mut batch = unsafe { Batch::new(umem.as_mut_ptr(), &mut descs, &mut verdicts, 2048, 2) };
        let mut frames = batch.frames();
        let mut f0 = frames.next().unwrap();
        let m = f0.metadata().expect("chunk 0's area");
        assert_eq!(m.hash(), Some((0x1234_5678, 0)));
        assert_eq!(m.timestamp(), None);
        // The area records the length: after a change it no longer describes the frame.
        f0.set_len(61).unwrap();
        assert_eq!(f0.metadata(), None);
        let f1 = frames.next().unwrap();
        assert_eq!(f1.metadata(), None, "8 bytes of headroom hold no area");
    }
}

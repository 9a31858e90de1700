//! The single-producer / single-consumer rings an AF_XDP socket shares with the kernel,
//! as the kernel lays them out (`XDP_MMAP_OFFSETS`): a producer index, a consumer index,
//! a flags word (need_wakeup) and a power-of-two array of entries, all in one mapping.
//!
//! Indices run freely (u32, wrapping) and are masked into the array. Each side keeps a
//! cached copy of the other side's index and reads the shared one only when the cached
//! copy says the ring is full (producer) or empty (consumer), so a batch costs one shared
//! read at most and one shared write (submit / release). Entries are plain memory: the
//! acquire / release on the indices order them, pairing with the kernel's
//! `smp_load_acquire` / `smp_store_release` in net/xdp/xsk_queue.h.
#![allow(unsafe_code)]

use std::{
    marker::PhantomData,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::sys::{Mapping, RingOffsets};

/// The shared part of either kind of ring: the mapping and pointers into it.
struct Shared<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    /// Keeps the memory the pointers above point into mapped.
    _map: Mapping,
    _entry: PhantomData<T>,
}

// SAFETY: the pointers point into `_map`, which moves with the ring; a ring has one
// owner (one side of the SPSC protocol), so moving it to another thread is fine.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    /// # Safety
    /// `map` must be the mapping of a ring with `size` entries of type `T`, laid out as
    /// `off` says (the kernel's XDP_MMAP_OFFSETS for that ring).
    unsafe fn new(map: Mapping, off: &RingOffsets, size: u32) -> Self {
        debug_assert!(size.is_power_of_two());
        debug_assert!(off.desc as usize + size as usize * std::mem::size_of::<T>() <= map.len());
        let base = map.as_ptr();
        // SAFETY: the offsets lie inside the mapping (the kernel gave them for its size),
        // and the kernel aligns the indices to 4 bytes and the entries to 8.
        unsafe {
            Self {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                entries: base.add(off.desc as usize).cast(),
                mask: size - 1,
                _map: map,
                _entry: PhantomData,
            }
        }
    }

    #[inline]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `new`); the kernel accesses it atomically too.
        unsafe { &*self.producer }
    }

    #[inline]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as `producer`.
        unsafe { &*self.consumer }
    }

    /// The kernel sets XDP_RING_NEED_WAKEUP when it will not look at the ring until
    /// woken (sendto / recvfrom / poll).
    #[inline]
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as `producer`. Relaxed: a stale answer only costs or saves one syscall,
        // as with libxdp's plain read.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    #[inline]
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: masked, so inside the entry array.
        unsafe { self.entries.add((idx & self.mask) as usize) }
    }
}

/// A ring userspace produces into: fill (frame addresses) and TX (descriptors).
pub struct ProdRing<T> {
    ring: Shared<T>,
    size: u32,
    /// Our producer index (published by `submit`).
    prod: u32,
    /// The kernel's consumer index plus `size`, as last read: `limit - prod` slots are
    /// known to be free.
    limit: u32,
}

impl<T: Copy + PartialEq> ProdRing<T> {
    /// # Safety
    /// As [`Shared::new`]; the ring must be one userspace produces into.
    pub unsafe fn new(map: Mapping, off: &RingOffsets, size: u32) -> Self {
        // SAFETY: forwarded from the caller.
        let ring = unsafe { Shared::<T>::new(map, off, size) };
        let prod = ring.producer().load(Ordering::Relaxed);
        let limit = ring.consumer().load(Ordering::Acquire).wrapping_add(size);
        Self { ring, size, prod, limit }
    }

    /// Free slots, up to `want`; reads the kernel's consumer index only if the cached one
    /// shows fewer than `want`.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let mut free = self.limit.wrapping_sub(self.prod);
        if free < want {
            // Acquire pairs with the kernel's release of the consumer index: it has read
            // the entries before the slots it frees.
            self.limit = self.ring.consumer().load(Ordering::Acquire).wrapping_add(self.size);
            free = self.limit.wrapping_sub(self.prod);
        }
        free.min(want)
    }

    /// Entries published but not yet taken by the kernel; reads its consumer index.
    #[inline]
    pub fn queued(&mut self) -> u32 {
        self.limit = self.ring.consumer().load(Ordering::Acquire).wrapping_add(self.size);
        self.size - self.limit.wrapping_sub(self.prod)
    }

    /// Writes as many of `items` as there are free slots and publishes them together.
    /// Returns how many were produced.
    #[inline]
    pub fn produce(&mut self, items: &[T]) -> usize {
        self.produce_impl::<false, T>(items, |x| *x)
    }

    /// As `produce`, with each entry made from an item by `f`, and a slot that already
    /// holds its entry left unwritten. Frames that come back in the order they went out
    /// (a fill ring with as many frames as slots) then leave the ring's cache lines
    /// shared with the kernel's core instead of moving them over and back each lap.
    #[inline]
    pub fn produce_keeping_same<I>(&mut self, items: &[I], f: impl Fn(&I) -> T) -> usize {
        self.produce_impl::<true, I>(items, f)
    }

    #[inline]
    fn produce_impl<const SKIP_SAME: bool, I>(&mut self, items: &[I], f: impl Fn(&I) -> T) -> usize {
        let n = self.free(items.len().min(u32::MAX as usize) as u32);
        for (i, item) in items[..n as usize].iter().enumerate() {
            let slot = self.ring.slot(self.prod.wrapping_add(i as u32));
            let entry = f(item);
            // SAFETY: the slot is free (between our producer and the kernel's consumer +
            // size), so the kernel neither reads nor writes it until we publish it.
            unsafe {
                if !SKIP_SAME || slot.read() != entry {
                    slot.write(entry);
                }
            }
        }
        self.submit(n);
        n as usize
    }

    #[inline]
    fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.prod = self.prod.wrapping_add(n);
        // Release pairs with the kernel's acquire of the producer index: the entries are
        // written before it can see them.
        self.ring.producer().store(self.prod, Ordering::Release);
    }

    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }
}

/// A ring userspace consumes from: RX (descriptors) and completion (frame addresses).
pub struct ConsRing<T> {
    ring: Shared<T>,
    /// Our consumer index (published by `consume`).
    cons: u32,
    /// The kernel's producer index as last read: `avail - cons` entries are ready.
    avail: u32,
}

impl<T: Copy> ConsRing<T> {
    /// # Safety
    /// As [`Shared::new`]; the ring must be one userspace consumes from.
    pub unsafe fn new(map: Mapping, off: &RingOffsets, size: u32) -> Self {
        // SAFETY: forwarded from the caller.
        let ring = unsafe { Shared::<T>::new(map, off, size) };
        let cons = ring.consumer().load(Ordering::Relaxed);
        let avail = ring.producer().load(Ordering::Acquire);
        Self { ring, cons, avail }
    }

    /// How many entries are ready, reading the kernel's producer index afresh.
    #[inline]
    pub fn ready(&mut self) -> u32 {
        // Acquire pairs with the kernel's release of the producer index.
        self.avail = self.ring.producer().load(Ordering::Acquire);
        self.avail.wrapping_sub(self.cons)
    }

    /// Copies up to `out.len()` ready entries into `out` and hands their slots back to the
    /// kernel in one release. Reads the kernel's producer index only when the cached one
    /// shows nothing ready.
    #[inline]
    pub fn consume(&mut self, out: &mut [T]) -> usize {
        let mut ready = self.avail.wrapping_sub(self.cons);
        if ready == 0 {
            // Acquire pairs with the kernel's release of the producer index: its entries
            // are written before we read them.
            self.avail = self.ring.producer().load(Ordering::Acquire);
            ready = self.avail.wrapping_sub(self.cons);
            if ready == 0 {
                return 0;
            }
        }
        let n = (ready as usize).min(out.len());
        for (i, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: the entry is between our consumer and the kernel's producer index:
            // written and published, and not reused until we release it below.
            *o = unsafe { self.ring.slot(self.cons.wrapping_add(i as u32)).read() };
        }
        self.cons = self.cons.wrapping_add(n as u32);
        // Release pairs with the kernel's acquire of the consumer index: our reads are
        // done before it overwrites the slots.
        self.ring.consumer().store(self.cons, Ordering::Release);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring laid out like the kernel's, in anonymous memory, to drive both sides by hand.
    fn fake(size: u32) -> (Mapping, RingOffsets) {
        let off = RingOffsets { producer: 0, consumer: 64, flags: 128, desc: 192 };
        let map = crate::sys::map_anonymous(4096 + size as usize * 16).expect("anonymous memory");
        (map, off)
    }

    fn index(map_base: *mut u8, at: u64) -> &'static AtomicU32 {
        // SAFETY: test-only; the mapping outlives the ring that owns it in each test.
        unsafe { &*map_base.add(at as usize).cast::<AtomicU32>() }
    }

    #[test]
    fn produce_stops_at_the_consumer_and_wraps() {
        let (map, off) = fake(8);
        let base = map.as_ptr();
        // SAFETY: a mapping laid out as `off` says, with room for 8 u64 entries.
        let mut ring = unsafe { ProdRing::<u64>::new(map, &off, 8) };
        assert_eq!(ring.produce(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 8, "only 8 slots");
        assert_eq!(index(base, off.producer).load(Ordering::Relaxed), 8);
        assert_eq!(ring.queued(), 8);
        assert_eq!(ring.produce(&[11]), 0, "full until the kernel consumes");
        index(base, off.consumer).store(3, Ordering::Relaxed);
        assert_eq!(ring.queued(), 5, "the kernel took 3");
        assert_eq!(ring.produce(&[11, 12, 13, 14]), 3);
        // SAFETY: reading back entries 0..3 of the array, which wrapped around.
        let e: Vec<u64> = (0..3).map(|i| unsafe { base.add(192 + i * 8).cast::<u64>().read() }).collect();
        assert_eq!(e, vec![11, 12, 13]);
        // Another lap: slots holding the same address stay, the others change.
        index(base, off.consumer).store(11, Ordering::Relaxed);
        assert_eq!(ring.produce_keeping_same(&[4u64, 99, 6], |&a| a), 3);
        // SAFETY: entries 3..6 of the array.
        let e: Vec<u64> = (3..6).map(|i| unsafe { base.add(192 + i * 8).cast::<u64>().read() }).collect();
        assert_eq!(e, vec![4, 99, 6]);
        assert_eq!(index(base, off.producer).load(Ordering::Relaxed), 14);
        assert_eq!(ring.queued(), 3);
        index(base, off.consumer).store(14, Ordering::Relaxed);
        assert_eq!(ring.queued(), 0);
    }

    #[test]
    fn consume_takes_what_the_kernel_published() {
        let (map, off) = fake(4);
        let base = map.as_ptr();
        // SAFETY: as above.
        let mut ring = unsafe { ConsRing::<u64>::new(map, &off, 4) };
        let mut out = [0u64; 8];
        assert_eq!(ring.consume(&mut out), 0);
        for i in 0..3u64 {
            // SAFETY: entry i of the 4-entry array.
            unsafe { base.add(192 + i as usize * 8).cast::<u64>().write(100 + i) };
        }
        index(base, off.producer).store(3, Ordering::Release);
        assert_eq!(ring.consume(&mut out[..2]), 2);
        assert_eq!(&out[..2], &[100, 101]);
        assert_eq!(index(base, off.consumer).load(Ordering::Relaxed), 2);
        assert_eq!(ring.consume(&mut out), 1);
        assert_eq!(out[0], 102);
        assert_eq!(ring.consume(&mut out), 0);
    }

    #[test]
    fn need_wakeup_flag_is_read() {
        let (map, off) = fake(4);
        let base = map.as_ptr();
        // SAFETY: as above.
        let ring = unsafe { ProdRing::<u64>::new(map, &off, 4) };
        assert!(!ring.needs_wakeup());
        index(base, off.flags).store(libc::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(ring.needs_wakeup());
    }
}

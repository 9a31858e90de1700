//! xdpipe's XDP steering program.
//!
//! For every frame: count it against its RX queue, decide from the steering config
//! (`XDPIPE_STEER`, a read-only global set by the loader) whether it is benchmark traffic,
//! and if so redirect it to the AF_XDP socket bound to that RX queue in `XDPIPE_XSKS`.
//! Everything else, including matched frames of queues with no socket, goes to the kernel
//! with `XDP_PASS`: the program never drops, so the host stays reachable.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::{
        bindings::{xdp_action, xdp_md},
        macros::{map, xdp},
        maps::{Array, PerCpuArray, XskMap},
        programs::XdpContext,
    };
    use xdp_common::{
        GenConfig, IPV6_EXT_HEADERS_MAX, MATCH_ALL, MATCH_ETHERTYPE, MATCH_IP_PROTO, MATCH_UDP_DPORT, MAX_QUEUES,
        ProgCounters, RX_META_HASH, RX_META_MAGIC, RX_META_TIMESTAMP, RX_META_VLAN, RxMeta, STEER_RX_METADATA,
        SteerConfig,
    };

    #[map(name = "XDPIPE_XSKS")]
    static XDPIPE_XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

    #[map(name = "XDPIPE_COUNTERS")]
    static XDPIPE_COUNTERS: PerCpuArray<ProgCounters> = PerCpuArray::with_max_entries(MAX_QUEUES, 0);

    /// Written by the loader before the program is loaded (`EbpfLoader::set_global`).
    #[unsafe(no_mangle)]
    static XDPIPE_STEER: SteerConfig = SteerConfig::DEFAULT;

    const ETH_HLEN: usize = 14;
    const VLAN_HLEN: usize = 4;
    const ETH_P_8021Q: u16 = 0x8100;
    const ETH_P_8021AD: u16 = 0x88a8;
    const ETH_P_IP: u16 = 0x0800;
    const ETH_P_IPV6: u16 = 0x86dd;
    const IPPROTO_UDP: u8 = 17;
    const IPV6_HLEN: usize = 40;
    const IPV6_HOP_BY_HOP: u8 = 0;
    const IPV6_ROUTING: u8 = 43;
    const IPV6_FRAGMENT: u8 = 44;
    const IPV6_AH: u8 = 51;
    const IPV6_DEST_OPTS: u8 = 60;

    /// Loaded with BPF_F_XDP_HAS_FRAGS (section `xdp.frags`): it may see multi-buffer
    /// frames (an MTU past one page on veth, or anything that needs XDP_USE_SG sockets),
    /// and such a program attaches to single-buffer setups as well. It reads headers only
    /// from the linear part (`data..data_end`), which holds the first fragment: a frame
    /// whose headers do not fit there fails the bounds checks and is passed, never
    /// misread (xdpipe's generator and the kernel's skb paths put the headers first).
    #[xdp(frags)]
    pub fn xdpipe_steer(ctx: XdpContext) -> u32 {
        let queue = ctx.rx_queue_index();
        let counters = XDPIPE_COUNTERS.get_ptr_mut(queue);
        let action = match steer(&ctx, queue) {
            Ok(action) => action,
            // A frame too short for the header the rule needs cannot match: pass it.
            Err(()) => Verdict::Pass,
        };
        if let Some(c) = counters {
            // SAFETY: per-CPU map value: this CPU is its only writer while the program runs.
            let c = unsafe { &mut *c };
            match action {
                Verdict::Redirected => c.redirected += 1,
                Verdict::NoSocket => c.no_socket += 1,
                Verdict::Pass => c.unmatched += 1,
            }
        }
        // SAFETY: a read-only global, set before load; the verifier sees a constant and
        // drops the branch the config does not take.
        let meta = unsafe { core::ptr::read_volatile(&raw const XDPIPE_STEER.flags) } & STEER_RX_METADATA != 0;
        if meta && let Verdict::Redirected = action {
            // The redirect happens after the program returns, so the area written now
            // travels with the frame to the socket.
            write_rx_meta(&ctx);
        }
        match action {
            Verdict::Redirected => xdp_action::XDP_REDIRECT,
            Verdict::NoSocket | Verdict::Pass => xdp_action::XDP_PASS,
        }
    }

    // The XDP RX metadata kfuncs (net/core/xdp.c). The kernel resolves each call to the
    // driver's implementation when the program was loaded bound to the device
    // (BPF_F_XDP_DEV_BOUND_ONLY); otherwise, or when the driver has none, the call
    // returns -EOPNOTSUPP (or -ENODATA for a frame without the value). The loader turns
    // each call into a kfunc call (src_reg BPF_PSEUDO_KFUNC_CALL, imm the kernel's BTF id)
    // before aya sees the object, or into `r0 = -EOPNOTSUPP` where the kernel lacks it.
    unsafe extern "C" {
        fn bpf_xdp_metadata_rx_timestamp(ctx: *const xdp_md, timestamp: *mut u64) -> i32;
        fn bpf_xdp_metadata_rx_hash(ctx: *const xdp_md, hash: *mut u32, rss_type: *mut u32) -> i32;
        fn bpf_xdp_metadata_rx_vlan_tag(ctx: *const xdp_md, vlan_proto: *mut u16, vlan_tci: *mut u16) -> i32;
    }

    const RX_META_LEN: usize = core::mem::size_of::<RxMeta>();

    /// Asks the driver for the frame's RX timestamp, hash and VLAN tag and writes them,
    /// with flags saying which it had, into the metadata area in front of the frame. A
    /// failing kfunc means "no value", never a drop; a driver without metadata support
    /// (adjust_meta fails) leaves the frame as it is.
    #[inline(always)]
    fn write_rx_meta(ctx: &XdpContext) {
        let md = ctx.ctx as *const xdp_md;
        let mut flags: u8 = 0;
        let mut ts: u64 = 0;
        let mut hash: u32 = 0;
        let mut rss_type: u32 = 0;
        let mut proto: u16 = 0;
        let mut tci: u16 = 0;
        // SAFETY: the kfuncs read the context and write the pointed-to stack values,
        // whose sizes match the kernel's prototypes (u64; u32 and a 4-byte enum; two u16).
        unsafe {
            if bpf_xdp_metadata_rx_timestamp(md, &mut ts) == 0 {
                flags |= RX_META_TIMESTAMP;
            } else {
                ts = 0;
            }
            if bpf_xdp_metadata_rx_hash(md, &mut hash, &mut rss_type) == 0 {
                flags |= RX_META_HASH;
            } else {
                hash = 0;
                rss_type = 0;
            }
            if bpf_xdp_metadata_rx_vlan_tag(md, &mut proto, &mut tci) == 0 {
                flags |= RX_META_VLAN;
                // The kfunc returns the protocol in network order, the TCI in host order.
                proto = u16::from_be(proto);
            } else {
                proto = 0;
                tci = 0;
            }
        }
        let frame_len = (ctx.data_end() - ctx.data()) as u16;
        // SAFETY: the helper only moves data_meta; the context is the program's own.
        if unsafe { aya_ebpf::helpers::bpf_xdp_adjust_meta(ctx.ctx, -(RX_META_LEN as i32)) } != 0 {
            return;
        }
        let start = ctx.metadata();
        if start + RX_META_LEN > ctx.metadata_end() {
            return;
        }
        let p = start as *mut u8;
        // SAFETY: [start, start + RX_META_LEN) lies inside the metadata area, checked
        // against its end (data) above; the offsets are RxMeta's repr(C) field offsets
        // (asserted below), written field by field so no memcpy is emitted.
        unsafe {
            core::ptr::write_unaligned(p.add(core::mem::offset_of!(RxMeta, rx_timestamp)) as *mut u64, ts);
            core::ptr::write_unaligned(p.add(core::mem::offset_of!(RxMeta, rx_hash)) as *mut u32, hash);
            core::ptr::write_unaligned(p.add(core::mem::offset_of!(RxMeta, rss_type)) as *mut u32, rss_type);
            core::ptr::write_unaligned(p.add(core::mem::offset_of!(RxMeta, vlan_proto)) as *mut u16, proto);
            core::ptr::write_unaligned(p.add(core::mem::offset_of!(RxMeta, vlan_tci)) as *mut u16, tci);
            core::ptr::write_unaligned(p.add(core::mem::offset_of!(RxMeta, frame_len)) as *mut u16, frame_len);
            *p.add(core::mem::offset_of!(RxMeta, flags)) = flags;
            *p.add(core::mem::offset_of!(RxMeta, magic)) = RX_META_MAGIC;
        }
    }

    // The metadata area must be a multiple of 4 bytes and at most 32 (xdp_metalen_invalid).
    const _: () = assert!(RX_META_LEN % 4 == 0 && RX_META_LEN <= 32);

    enum Verdict {
        Redirected,
        NoSocket,
        Pass,
    }

    #[inline(always)]
    fn steer(ctx: &XdpContext, queue: u32) -> Result<Verdict, ()> {
        // SAFETY: the loader may rewrite the global before load; read it volatile so the
        // compiler does not fold in the default value. Only the match kind is read here:
        // the fast paths need no other field (reading the whole struct cost a load and a
        // stack spill per field on every frame).
        let kind = unsafe { core::ptr::read_volatile(&raw const XDPIPE_STEER.kind) };
        if kind != MATCH_ALL && !matches(ctx, kind)? {
            return Ok(Verdict::Pass);
        }
        // A lookup miss (no socket bound to this queue) returns the low bits of flags.
        match XDPIPE_XSKS.redirect(queue, xdp_action::XDP_PASS as u64) {
            Ok(_) => Ok(Verdict::Redirected),
            Err(_) => Ok(Verdict::NoSocket),
        }
    }

    #[inline(always)]
    fn matches(ctx: &XdpContext, kind: u32) -> Result<bool, ()> {
        if kind == MATCH_UDP_DPORT {
            if let Some(dport) = plain_udp4_dport(ctx) {
                // SAFETY: as in `steer`.
                let (lo, hi) = unsafe {
                    (
                        core::ptr::read_volatile(&raw const XDPIPE_STEER.port_lo),
                        core::ptr::read_volatile(&raw const XDPIPE_STEER.port_hi),
                    )
                };
                return Ok(dport >= lo && dport <= hi);
            }
        }
        // SAFETY: as in `steer`; the general parser may need any field.
        let cfg: SteerConfig = unsafe { core::ptr::read_volatile(&XDPIPE_STEER) };
        let mut off = ETH_HLEN - 2;
        let mut ethertype = u16::from_be(load::<u16>(ctx, off)?);
        off += 2;
        // Up to two VLAN tags (QinQ).
        for _ in 0..2 {
            if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
                ethertype = u16::from_be(load::<u16>(ctx, off + 2)?);
                off += VLAN_HLEN;
            }
        }
        if cfg.kind == MATCH_ETHERTYPE {
            return Ok(ethertype == cfg.ethertype);
        }
        let (proto, l4) = match ethertype {
            ETH_P_IP => {
                let vihl: u8 = load(ctx, off)?;
                if vihl >> 4 != 4 {
                    return Ok(false);
                }
                let ihl = ((vihl & 0x0f) as usize) * 4;
                if ihl < 20 {
                    return Ok(false);
                }
                // Fragment offset != 0: no L4 header in this fragment.
                let frag = u16::from_be(load::<u16>(ctx, off + 6)?);
                if frag & 0x1fff != 0 {
                    return Ok(false);
                }
                (load::<u8>(ctx, off + 9)?, off + ihl)
            }
            ETH_P_IPV6 => match ipv6_transport(ctx, off)? {
                Some(t) => t,
                None => return Ok(false),
            },
            _ => return Ok(false),
        };
        if cfg.kind == MATCH_IP_PROTO {
            return Ok(proto == cfg.ip_proto);
        }
        if cfg.kind == MATCH_UDP_DPORT && proto == IPPROTO_UDP {
            let dport = u16::from_be(load::<u16>(ctx, l4 + 2)?);
            return Ok(dport >= cfg.port_lo && dport <= cfg.port_hi);
        }
        Ok(false)
    }

    /// The transport protocol of the IPv6 packet at `ip` and its offset, past up to
    /// `IPV6_EXT_HEADERS_MAX` extension headers; None for a later fragment (no transport
    /// header) or a longer chain. Each step's offset is bounded by `load`'s check.
    #[inline(always)]
    fn ipv6_transport(ctx: &XdpContext, ip: usize) -> Result<Option<(u8, usize)>, ()> {
        let mut next: u8 = load(ctx, ip + 6)?;
        let mut off = ip + IPV6_HLEN;
        for _ in 0..IPV6_EXT_HEADERS_MAX {
            if !matches!(next, IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AH | IPV6_DEST_OPTS) {
                return Ok(Some((next, off)));
            }
            // Every extension header is at least 8 bytes and starts with next header and
            // a length byte (a fragment header: reserved, then the offset): one load and
            // one bounds check read what is needed. (A separate load per field let LLVM
            // fold the second check into a form the verifier does not track.)
            let w: [u8; 4] = load(ctx, off)?;
            let len = match next {
                IPV6_FRAGMENT => {
                    // The 13 offset bits must be 0: only a first fragment has the header.
                    if u16::from_be_bytes([w[2], w[3]]) & 0xfff8 != 0 {
                        return Ok(None);
                    }
                    8
                }
                IPV6_AH => (w[1] as usize + 2) * 4,
                _ => (w[1] as usize + 1) * 8,
            };
            next = w[0];
            off += len;
        }
        Ok(match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AH | IPV6_DEST_OPTS => None,
            _ => Some((next, off)),
        })
    }

    /// The common case in one bounds check: an untagged IPv4 frame with a 20-byte header,
    /// not a fragment, carrying UDP. Returns its destination port (host order), or None
    /// for anything else (the general parser then decides). With it the program's run
    /// time (bpf_stats, this VM) went from 37.3 to 36.1 ns a frame.
    ///
    /// Three loads: the ethertype with the version / header-length byte (bytes 12..16),
    /// the fragment field with the protocol (20..24), the port (36..38). The program is
    /// built with `allows-misaligned-mem-access` (xdp-ebpf/build.rs), so each
    /// unaligned read is one BPF load, not a load per byte.
    #[inline(always)]
    fn plain_udp4_dport(ctx: &XdpContext) -> Option<u16> {
        const UDP4_END: usize = ETH_HLEN + 20 + 8;
        // Little-endian words as they sit in the frame.
        // Bytes 12..15: ethertype 08 00, version 4 / IHL 5 (0x45); byte 15 (TOS) is free.
        const W12_MASK: u32 = 0x00ff_ffff;
        const W12_WANT: u32 = u32::from_le_bytes([0x08, 0x00, 0x45, 0]);
        // Bytes 20..23: flags and fragment offset (the 13 offset bits must be 0; MF may
        // be set, a first fragment still carries the UDP header), TTL free, protocol UDP.
        const W20_MASK: u32 = u32::from_le_bytes([0x1f, 0xff, 0, 0xff]);
        const W20_WANT: u32 = u32::from_le_bytes([0, 0, 0, IPPROTO_UDP]);
        let start = ctx.data();
        if start + UDP4_END > ctx.data_end() {
            return None;
        }
        let p = start as *const u8;
        // SAFETY: every read ends within the first UDP4_END bytes, which were checked
        // against data_end above; read_unaligned tolerates any alignment.
        unsafe {
            let w12 = core::ptr::read_unaligned(p.add(12) as *const u32);
            let w20 = core::ptr::read_unaligned(p.add(ETH_HLEN + 6) as *const u32);
            if w12 & W12_MASK != W12_WANT || w20 & W20_MASK != W20_WANT {
                return None;
            }
            Some(u16::from_be(core::ptr::read_unaligned(p.add(ETH_HLEN + 20 + 2) as *const u16)))
        }
    }

    /// Bounds-checked unaligned load of a `T` at `off` bytes into the frame.
    #[inline(always)]
    fn load<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, ()> {
        let start = ctx.data();
        let end = ctx.data_end();
        // Keep the offset visibly bounded for the verifier.
        if off > 512 {
            return Err(());
        }
        if start + off + core::mem::size_of::<T>() > end {
            return Err(());
        }
        // SAFETY: the range [start+off, start+off+size_of::<T>()) was checked against
        // data_end above; read_unaligned tolerates any alignment.
        Ok(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
    }

    // ---- in-kernel generator (BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES) ----

    /// Frames this program instance has stamped. Not per CPU: userspace loads one
    /// instance of this program per sending thread, each with its own disjoint range of
    /// flows (`GenConfig::flow_base`, `flows`) and so its own counter, and BPF_PROG_RUN
    /// runs an instance only on the thread that called it, one frame after the other.
    /// So the counter has a single writer at a time (a plain increment, no atomic), and
    /// flow `flow_base + k % flows`'s sequence `k / flows` is unique per flow even when
    /// the thread migrates between CPUs or N threads send at once. (A per-CPU counter
    /// restarted on every CPU: two threads, or one that moved, sent the same flow's
    /// sequence numbers twice. A per-flow counter advanced with an atomic fetch-add
    /// would also be correct, but costs a locked add per frame.)
    #[map(name = "XDPIPE_GEN_COUNT")]
    static XDPIPE_GEN_COUNT: Array<u64> = Array::with_max_entries(1, 0);

    /// Written by the loader before the program is loaded.
    #[unsafe(no_mangle)]
    static XDPIPE_GEN: GenConfig = GenConfig::DEFAULT;

    const UDP_OFF: usize = 34;
    const STAMP_OFF: usize = 42;
    const STAMP_MAGIC: u16 = 0x5850;
    /// One frame in this many carries a send time (xdp_common::GEN_TIME_EVERY).
    const TIME_EVERY: u64 = xdp_common::GEN_TIME_EVERY as u64;

    /// Stamps the frame, sets its flow's ports, and transmits it (XDP_TX). Frames too
    /// short for the stamp abort, which the caller sees as a program error.
    #[xdp]
    pub fn xdpipe_gen(ctx: XdpContext) -> u32 {
        match stamp_frame(&ctx) {
            Ok(()) => xdp_action::XDP_TX,
            Err(()) => xdp_action::XDP_ABORTED,
        }
    }

    #[inline(always)]
    fn stamp_frame(ctx: &XdpContext) -> Result<(), ()> {
        let start = ctx.data();
        if start + STAMP_OFF + 16 > ctx.data_end() {
            return Err(());
        }
        let count = XDPIPE_GEN_COUNT.get_ptr_mut(0).ok_or(())?;
        // SAFETY: this instance's only writer is the thread running it (see the map).
        let k = unsafe {
            let k = *count;
            *count = k + 1;
            k
        };
        // SAFETY: read volatile so the loader's value is used, not the default.
        let cfg = unsafe { core::ptr::read_volatile(&XDPIPE_GEN) };
        let flows = if cfg.flows == 0 { 1 } else { cfg.flows as u64 };
        let flow = cfg.flow_base.wrapping_add((k % flows) as u32) as u16;
        let seq = (k / flows) as u32;
        // Every frame carries flow and sequence (loss and reordering); one in TIME_EVERY
        // also carries its send time. Reading the clock costs about a fifth of this
        // program's frame rate in a VM (read_tsc), and a latency histogram at millions of
        // frames a second needs no more samples than that. 0 means "not timed".
        let now = if k % TIME_EVERY == 0 {
            // SAFETY: bpf_ktime_get_ns has no preconditions; it is CLOCK_MONOTONIC.
            unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
        } else {
            0
        };
        let sport = cfg.src_port.wrapping_add(flow);
        let dport = cfg.dst_port.wrapping_add(flow % 256);
        // New 16-bit words (host order), at word offsets from the UDP header:
        // 0 sport, 1 dport, [3 checksum], 4.. stamp.
        let new: [u16; 10] = [
            sport,
            dport,
            STAMP_MAGIC,
            flow,
            (seq >> 16) as u16,
            seq as u16,
            (now >> 48) as u16,
            (now >> 32) as u16,
            (now >> 16) as u16,
            now as u16,
        ];
        let base = (start + UDP_OFF) as *mut u8;
        // SAFETY: all offsets below are < 58 and data_end was checked above.
        unsafe {
            let csum_p = base.add(6) as *mut [u8; 2];
            let mut sum = (!u16::from_be_bytes(*csum_p)) as u32;
            let mut i = 0;
            while i < 10 {
                let off = if i < 2 { i * 2 } else { 8 + (i - 2) * 2 };
                let p = base.add(off) as *mut [u8; 2];
                let old = u16::from_be_bytes(*p);
                // RFC 1624: HC' = ~(~HC + ~m + m')
                sum += (!old) as u32 + new[i] as u32;
                *p = new[i].to_be_bytes();
                i += 1;
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            let mut c = !(sum as u16);
            if c == 0 {
                c = 0xffff;
            }
            *csum_p = c.to_be_bytes();
        }
        Ok(())
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

/// Host builds (`cargo check --workspace`) compile this stub; the program is BPF only.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

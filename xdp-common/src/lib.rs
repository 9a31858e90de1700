//! Types shared by the XDP steering program (`xdp-ebpf`) and userspace (`xdpipe`).
//!
//! Everything here is `#[repr(C)]` plain data: the layout is the contract between the
//! BPF object and the loader. With the `user` feature the types implement `aya::Pod`
//! so the loader can write the steering config as a global and read the counters map.
#![no_std]

/// Entries in the XSKMAP and the per-queue counters map. A frame whose RX queue index is
/// at or above this is passed to the kernel uncounted (no NIC we target has more queues).
pub const MAX_QUEUES: u32 = 256;

/// Name of the program in the object (the `#[xdp]` function) and of its maps and global.
pub const PROGRAM_NAME: &str = "xdpipe_steer";
pub const XSK_MAP_NAME: &str = "XDPIPE_XSKS";
pub const COUNTERS_MAP_NAME: &str = "XDPIPE_COUNTERS";
pub const STEER_GLOBAL_NAME: &str = "XDPIPE_STEER";

/// xdpipe's benchmark UDP destination ports: the generator sends to these, and the
/// default filter steers only them. Below the kernel's ephemeral range (32768+) so replies
/// to the host's own connections never match.
pub const BENCH_UDP_PORT_LO: u16 = 18000;
pub const BENCH_UDP_PORT_HI: u16 = 18255;

/// What the steering program redirects. `kind` selects one of the `MATCH_*` rules; the
/// other fields are the rule's parameters. Set once by userspace before the program is
/// loaded (a read-only global), so the verifier sees it as a constant.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteerConfig {
    pub kind: u32,
    /// EtherType for `MATCH_ETHERTYPE`, host byte order (looked up after VLAN tags).
    pub ethertype: u16,
    /// IP protocol (IPv6: the transport after extension headers) for `MATCH_IP_PROTO`.
    pub ip_proto: u8,
    /// `STEER_*` option bits.
    pub flags: u8,
    /// Inclusive UDP destination port range for `MATCH_UDP_DPORT`, host byte order.
    pub port_lo: u16,
    pub port_hi: u16,
}

/// `SteerConfig::flags`: ask the driver for each redirected frame's XDP RX metadata
/// (timestamp, hash, VLAN tag) and write it in front of the frame ([`RxMeta`]). Off, the
/// program neither calls the kfuncs nor moves `data_meta`: the work is paid for only
/// when something reads it.
pub const STEER_RX_METADATA: u8 = 1;

/// IPv6 extension headers (hop-by-hop, routing, fragment, destination options, AH) the
/// steering program and userspace's parser walk to reach the transport header; a frame
/// with more is not matched (RFC 8200 expects at most one of each, and there are six).
pub const IPV6_EXT_HEADERS_MAX: usize = 8;

/// Redirect every frame.
pub const MATCH_ALL: u32 = 0;
/// Redirect frames whose (inner, after up to two VLAN tags) EtherType equals `ethertype`.
pub const MATCH_ETHERTYPE: u32 = 1;
/// Redirect IPv4 / IPv6 frames whose protocol (IPv6: after extension headers) equals
/// `ip_proto`.
pub const MATCH_IP_PROTO: u32 = 2;
/// Redirect IPv4 / IPv6 UDP frames (untagged, 802.1Q or QinQ; IPv6 after extension
/// headers) whose destination port is in `port_lo..=port_hi`.
pub const MATCH_UDP_DPORT: u32 = 3;

impl SteerConfig {
    /// The default: UDP to xdpipe's benchmark ports only, so ARP, ICMP, SSH and the rest
    /// reach the kernel.
    pub const DEFAULT: SteerConfig = SteerConfig {
        kind: MATCH_UDP_DPORT,
        ethertype: 0,
        ip_proto: 0,
        flags: 0,
        port_lo: BENCH_UDP_PORT_LO,
        port_hi: BENCH_UDP_PORT_HI,
    };
}

impl Default for SteerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Per-CPU, per-RX-queue counters as the steering program keeps them: each frame adds one
/// to exactly one field, so the hot path (a redirect) is a single increment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgCounters {
    /// Matched and redirected to the queue's socket.
    pub redirected: u64,
    /// Matched, but no socket is bound to the queue: passed to the kernel.
    pub no_socket: u64,
    /// Not matched: passed to the kernel.
    pub unmatched: u64,
}

/// The steering program's counters for a queue, as userspace reports them.
///
/// Every frame the program sees ends in exactly one of `redirected` or `passed`
/// (`seen = redirected + passed`). `matched` frames that found no socket bound to their
/// queue are passed and also counted in `no_socket`. A redirect can still fail after the
/// program returns (the socket's RX ring is full): the socket's XDP_STATISTICS count that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct QueueCounters {
    pub seen: u64,
    pub matched: u64,
    pub redirected: u64,
    pub passed: u64,
    pub no_socket: u64,
}

impl QueueCounters {
    /// Field-wise sum, used to fold queues together.
    pub fn add(&mut self, other: &QueueCounters) {
        self.seen += other.seen;
        self.matched += other.matched;
        self.redirected += other.redirected;
        self.passed += other.passed;
        self.no_socket += other.no_socket;
    }

    /// Adds one CPU's program counters.
    pub fn add_prog(&mut self, c: &ProgCounters) {
        self.add(&QueueCounters {
            seen: c.redirected + c.no_socket + c.unmatched,
            matched: c.redirected + c.no_socket,
            redirected: c.redirected,
            passed: c.no_socket + c.unmatched,
            no_socket: c.no_socket,
        });
    }
}

/// What the steering program writes in front of every frame it redirects (the XDP
/// metadata area, `bpf_xdp_adjust_meta`): the values the driver's XDP RX metadata kfuncs
/// returned. For AF_XDP the area lands in the UMEM chunk right before the frame's data,
/// `size_of::<RxMeta>()` bytes ending at the descriptor's address.
///
/// `magic` and `flags` come last, next to the frame: a reader checks `magic` first, and
/// trusts a value only if its `RX_META_*` bit is set in `flags`. A kfunc the driver does
/// not implement (or a program not bound to the device) returns an error: its bit stays
/// clear and its field 0. `frame_len` is the frame's length as the program saw it; a
/// reader compares it with the descriptor's length, which rejects most stale bytes left
/// in a chunk by an earlier frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// `bpf_xdp_metadata_rx_timestamp`: the device's receive time in ns (valid with
    /// `RX_META_TIMESTAMP`; which clock depends on the driver).
    pub rx_timestamp: u64,
    /// `bpf_xdp_metadata_rx_hash`: the receive hash (valid with `RX_META_HASH`).
    pub rx_hash: u32,
    /// `bpf_xdp_metadata_rx_hash`: the kernel's `enum xdp_rss_hash_type` for `rx_hash`.
    pub rss_type: u32,
    /// `bpf_xdp_metadata_rx_vlan_tag`: the stripped tag's protocol, host order (valid
    /// with `RX_META_VLAN`).
    pub vlan_proto: u16,
    /// `bpf_xdp_metadata_rx_vlan_tag`: the stripped tag's TCI, host order.
    pub vlan_tci: u16,
    /// The frame's length (data to data_end) when the program wrote this, truncated to 16 bits.
    pub frame_len: u16,
    /// `RX_META_*` bits: which values above are valid.
    pub flags: u8,
    /// `RX_META_MAGIC`: the program wrote this area.
    pub magic: u8,
}

impl RxMeta {
    /// Bytes of the area in front of the frame.
    pub const LEN: usize = core::mem::size_of::<RxMeta>();

    /// Decodes the area in front of a frame of `frame_len` bytes; `head` is what lies
    /// between the start of the frame's buffer and its first byte (the area is its last
    /// [`RxMeta::LEN`] bytes). None unless the magic, the flags and the length all say the
    /// steering program wrote it for this frame: any bytes are safe to pass.
    pub fn read(head: &[u8], frame_len: usize) -> Option<RxMeta> {
        let at = head.len().checked_sub(Self::LEN)?;
        let b = head.get(at..)?;
        let u16_at = |o: usize| u16::from_ne_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let meta = RxMeta {
            rx_timestamp: u32_at(0) as u64 | (u32_at(4) as u64) << 32,
            rx_hash: u32_at(8),
            rss_type: u32_at(12),
            vlan_proto: u16_at(16),
            vlan_tci: u16_at(18),
            frame_len: u16_at(20),
            flags: b[22],
            magic: b[23],
        };
        let ok = meta.magic == RX_META_MAGIC && meta.flags & !RX_META_ALL == 0 && meta.frame_len == frame_len as u16;
        ok.then_some(meta)
    }

    /// The device's receive timestamp, if it gave one (a driver that returns 0, such as
    /// veth for an skb without a hardware timestamp, gave none).
    pub fn timestamp(&self) -> Option<u64> {
        (self.flags & RX_META_TIMESTAMP != 0 && self.rx_timestamp != 0).then_some(self.rx_timestamp)
    }

    /// The receive hash and its `xdp_rss_hash_type`, if the device gave one.
    pub fn hash(&self) -> Option<(u32, u32)> {
        (self.flags & RX_META_HASH != 0).then_some((self.rx_hash, self.rss_type))
    }

    /// The stripped VLAN tag (protocol, TCI), if the device stripped one.
    pub fn vlan(&self) -> Option<(u16, u16)> {
        (self.flags & RX_META_VLAN != 0).then_some((self.vlan_proto, self.vlan_tci))
    }
}

/// `RxMeta::magic` of an area the steering program wrote (format version 1).
pub const RX_META_MAGIC: u8 = 0xa1;
/// `RxMeta::rx_timestamp` is valid.
pub const RX_META_TIMESTAMP: u8 = 1;
/// `RxMeta::rx_hash` and `rss_type` are valid.
pub const RX_META_HASH: u8 = 2;
/// `RxMeta::vlan_proto` and `vlan_tci` are valid.
pub const RX_META_VLAN: u8 = 4;
/// Every `RX_META_*` bit a version-1 writer may set.
pub const RX_META_ALL: u8 = RX_META_TIMESTAMP | RX_META_HASH | RX_META_VLAN;

/// Name of the in-kernel generator program (run with BPF_PROG_RUN, live frames), its
/// packet counter map (one instance's count, not per CPU) and its config global.
pub const GEN_PROGRAM_NAME: &str = "xdpipe_gen";
pub const GEN_COUNTER_MAP_NAME: &str = "XDPIPE_GEN_COUNT";
pub const GEN_GLOBAL_NAME: &str = "XDPIPE_GEN";

/// The in-kernel generator writes its send time into one frame in this many (the others
/// carry 0: no time, sequence only).
pub const GEN_TIME_EVERY: u32 = 64;

/// Config of the in-kernel generator. The frame it is run on is an untagged IPv4/UDP
/// frame with the 16-byte stamp at offset 42 (as `xdpipe gen` builds it); per packet the
/// program writes flow id, sequence number and (one frame in `GEN_TIME_EVERY`)
/// `bpf_ktime_get_ns()` into the stamp, sets
/// the ports of the flow and fixes the UDP checksum incrementally (RFC 1624).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Flows of this instance: its packet k belongs to flow `flow_base + k % flows` and
    /// is that flow's (k / flows)-th packet.
    pub flows: u32,
    /// UDP source port of flow 0; flow f sends from `src_port + f`.
    pub src_port: u16,
    /// UDP destination port of flow 0; flow f sends to `dst_port + f % 256`.
    pub dst_port: u16,
    /// First flow of this instance. Userspace loads one instance per sending thread, each
    /// with its own range of flows, so no two threads send a flow's sequence numbers.
    pub flow_base: u32,
}

impl GenConfig {
    pub const DEFAULT: GenConfig = GenConfig { flows: 1, src_port: 10000, dst_port: BENCH_UDP_PORT_LO, flow_base: 0 };
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: both are repr(C) structs of integers with explicit padding fields, valid for
    // any bit pattern.
    unsafe impl aya::Pod for super::SteerConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProgCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::GenConfig {}
    // SAFETY: as above (no padding: 8 + 4 + 4 + 2 + 2 + 2 + 1 + 1 = 24 bytes).
    unsafe impl aya::Pod for super::RxMeta {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_counters_fold_into_the_reported_view() {
        let mut q = QueueCounters::default();
        q.add_prog(&ProgCounters { redirected: 7, no_socket: 2, unmatched: 3 });
        q.add_prog(&ProgCounters { redirected: 1, no_socket: 0, unmatched: 1 });
        assert_eq!(q, QueueCounters { seen: 14, matched: 10, redirected: 8, passed: 6, no_socket: 2 });
        assert_eq!(q.seen, q.redirected + q.passed);
    }

    fn area(m: &RxMeta) -> [u8; RxMeta::LEN] {
        let mut b = [0u8; RxMeta::LEN];
        b[0..8].copy_from_slice(&m.rx_timestamp.to_ne_bytes());
        b[8..12].copy_from_slice(&m.rx_hash.to_ne_bytes());
        b[12..16].copy_from_slice(&m.rss_type.to_ne_bytes());
        b[16..18].copy_from_slice(&m.vlan_proto.to_ne_bytes());
        b[18..20].copy_from_slice(&m.vlan_tci.to_ne_bytes());
        b[20..22].copy_from_slice(&m.frame_len.to_ne_bytes());
        b[22] = m.flags;
        b[23] = m.magic;
        b
    }

    #[test]
    fn rx_meta_layout_is_the_programs() {
        assert_eq!(RxMeta::LEN, 24);
        assert_eq!(core::mem::offset_of!(RxMeta, frame_len), 20);
        assert_eq!(core::mem::offset_of!(RxMeta, flags), 22);
        assert_eq!(core::mem::offset_of!(RxMeta, magic), 23);
    }

    #[test]
    fn rx_meta_reads_only_what_the_program_wrote() {
        let m = RxMeta {
            rx_timestamp: 0x1122_3344_5566_7788,
            rx_hash: 0xdead_beef,
            rss_type: 3,
            vlan_proto: 0x8100,
            vlan_tci: 5,
            frame_len: 60,
            flags: RX_META_TIMESTAMP | RX_META_HASH,
            magic: RX_META_MAGIC,
        };
        // The area ends where the frame starts; more headroom before it is ignored.
        let mut head = [0xffu8; 40];
        head[16..].copy_from_slice(&area(&m));
        let got = RxMeta::read(&head, 60).unwrap();
        assert_eq!(got, m);
        assert_eq!(got.timestamp(), Some(0x1122_3344_5566_7788));
        assert_eq!(got.hash(), Some((0xdead_beef, 3)));
        assert_eq!(got.vlan(), None, "the VLAN flag is clear");
        // Another frame's length (stale bytes), unknown flags, a wrong magic, short head.
        assert_eq!(RxMeta::read(&head, 61), None);
        assert_eq!(RxMeta::read(&area(&RxMeta { flags: 0x80, ..m }), 60), None);
        assert_eq!(RxMeta::read(&area(&RxMeta { magic: 0, ..m }), 60), None);
        assert_eq!(RxMeta::read(&head[17..], 60), None);
        assert_eq!(RxMeta::read(&[], 60), None);
        // A zero timestamp is no timestamp, even with its flag.
        assert_eq!(RxMeta { rx_timestamp: 0, ..m }.timestamp(), None);
    }
}

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
    pub _pad: u8,
    /// Inclusive UDP destination port range for `MATCH_UDP_DPORT`, host byte order.
    pub port_lo: u16,
    pub port_hi: u16,
}

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
        _pad: 0,
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
}

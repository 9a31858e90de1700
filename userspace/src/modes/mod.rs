//! The modes of `xdpipe run --mode`. Each is a stage in [`crate::stages`].

/// The worker modes `xdpipe run --mode` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeKind {
    /// Consume and recycle; frame data untouched.
    Rxdrop,
    /// Parse Ethernet/VLAN/IPv4/IPv6/UDP/TCP, count flows and malformed frames.
    Parse,
    /// Swap MACs and send each frame back out of the same queue (no copy).
    L2fwd,
    /// Receive on --iface, send unchanged on --out-iface (shared UMEM where the kernel
    /// allows it, else a copy).
    Fwd,
}

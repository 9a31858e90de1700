//! Validated configuration values.
//!
//! The CLI parses raw flags, then turns them into these newtypes; everything below the CLI
//! takes only validated values. Each parser's error names the value, says what is wrong
//! and what range or form is accepted.
use std::{fmt, str::FromStr};

use xdp_common::{
    BENCH_UDP_PORT_HI, BENCH_UDP_PORT_LO, MATCH_ALL, MATCH_ETHERTYPE, MATCH_IP_PROTO, MATCH_UDP_DPORT, MAX_QUEUES,
    SteerConfig,
};

/// A configuration value that failed validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} {value:?}: {why}")]
pub struct ConfigError {
    /// What the value is, e.g. `ring size`, `queue list`.
    pub what: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong, and the range or form accepted.
    pub why: String,
}

fn err(what: &'static str, value: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError { what, value: value.into(), why: why.into() }
}

/// Number of descriptors in an AF_XDP ring: a power of two in 64..=32768.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSize(u32);

impl RingSize {
    /// Smallest ring accepted, descriptors.
    pub const MIN: u32 = 64;
    /// Largest ring accepted, descriptors.
    pub const MAX: u32 = 32768;

    /// `n` descriptors, if a power of two in [`Self::MIN`]..=[`Self::MAX`].
    pub fn new(n: u32) -> Result<Self, ConfigError> {
        if !(Self::MIN..=Self::MAX).contains(&n) || !n.is_power_of_two() {
            return Err(err(
                "ring size",
                n.to_string(),
                format!("must be a power of two from {} to {}, e.g. 2048", Self::MIN, Self::MAX),
            ));
        }
        Ok(Self(n))
    }

    /// The number of descriptors.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for RingSize {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.parse().map_err(|_| err("ring size", s, "not a number"))?;
        Self::new(n)
    }
}

/// Size of one UMEM frame (chunk): 2048 or 4096 bytes, the sizes AF_XDP accepts in
/// aligned mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSize(u32);

impl FrameSize {
    /// `n` bytes, if 2048 or 4096.
    pub fn new(n: u32) -> Result<Self, ConfigError> {
        if n != 2048 && n != 4096 {
            return Err(err(
                "frame size",
                n.to_string(),
                "must be 2048 or 4096 (aligned UMEM chunks are a power of two, 2048 to page size)",
            ));
        }
        Ok(Self(n))
    }

    /// The frame size, bytes.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for FrameSize {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.parse().map_err(|_| err("frame size", s, "not a number"))?;
        Self::new(n)
    }
}

/// Descriptors moved per ring operation: 1..=4096.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSize(u32);

impl BatchSize {
    /// Largest batch accepted, descriptors.
    pub const MAX: u32 = 4096;

    /// `n` descriptors, if 1 to [`Self::MAX`].
    pub fn new(n: u32) -> Result<Self, ConfigError> {
        if n == 0 || n > Self::MAX {
            return Err(err("batch size", n.to_string(), format!("must be 1 to {}", Self::MAX)));
        }
        Ok(Self(n))
    }

    /// The batch size, descriptors.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl FromStr for BatchSize {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.parse().map_err(|_| err("batch size", s, "not a number"))?;
        Self::new(n)
    }
}

/// How a worker waits when its RX ring is empty (`--poll`): spin (busy-poll), or sleep
/// until the kernel signals frames, with or without a timeout, or drive the device's NAPI
/// from the worker (kernel busy polling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollWait {
    /// Spin on the ring (`--poll 0`, and the default without `--poll`).
    Busy,
    /// Kernel busy polling (`--poll busy-poll`): the sockets get SO_PREFER_BUSY_POLL,
    /// SO_BUSY_POLL and SO_BUSY_POLL_BUDGET, the device's NAPIs napi_defer_hard_irqs and
    /// gro_flush_timeout, and the worker runs NAPI itself with a recvfrom per batch.
    BusyPoll,
    /// Sleep in epoll_wait until the kernel signals frames.
    Sleep {
        /// Wake up after at most this many ms, frames or not (up to [`PollWait::MAX_MS`]);
        /// None: wait forever.
        timeout_ms: Option<u32>,
    },
}

impl PollWait {
    /// Longest timeout accepted: an hour.
    pub const MAX_MS: u32 = 3_600_000;

    /// The epoll_wait timeout (-1: none), or None for busy-polling.
    pub fn timeout_arg(self) -> Option<i32> {
        match self {
            Self::Busy | Self::BusyPoll => None,
            Self::Sleep { timeout_ms } => Some(timeout_ms.map_or(-1, |t| t as i32)),
        }
    }
}

impl FromStr for PollWait {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let why = || {
            format!(
                "write forever (or leave the value out), a timeout in milliseconds up to {}, 0 to spin, \
                 or busy-poll for kernel busy polling",
                Self::MAX_MS
            )
        };
        match s.trim() {
            "forever" => Ok(Self::Sleep { timeout_ms: None }),
            "busy-poll" => Ok(Self::BusyPoll),
            t => match t.parse::<u32>() {
                Ok(0) => Ok(Self::Busy),
                Ok(n) if n <= Self::MAX_MS => Ok(Self::Sleep { timeout_ms: Some(n) }),
                _ => Err(err("poll timeout", s, why())),
            },
        }
    }
}

impl fmt::Display for PollWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => f.write_str("0"),
            Self::BusyPoll => f.write_str("busy-poll"),
            Self::Sleep { timeout_ms: None } => f.write_str("forever"),
            Self::Sleep { timeout_ms: Some(t) } => write!(f, "{t}"),
        }
    }
}

/// The kernel busy-polling settings of [`PollWait::BusyPoll`] (the AF_XDP recipe:
/// Documentation/networking/af_xdp.rst and xdpsock's `-B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BusyPollSettings {
    /// SO_BUSY_POLL: how long one recvfrom may poll the NAPI, us (1 to 1000).
    pub usecs: u32,
    /// SO_BUSY_POLL_BUDGET: frames one busy poll may process (1 to 65535; the kernel's
    /// default is 8, xdpsock uses the batch size).
    pub budget: u16,
    /// napi_defer_hard_irqs of each of the device's NAPIs: how many empty polls the device's
    /// interrupt stays off for (0 to 2^31 - 1).
    pub defer_hard_irqs: u32,
    /// gro_flush_timeout of each NAPI, ns: the timer that runs NAPI while its interrupt is
    /// deferred (a safety net when the worker stops polling).
    pub gro_flush_timeout_ns: u64,
    /// How the device knobs are set (`--busy-poll-knobs`).
    pub knobs: BusyPollKnobs,
    /// `--irq-suspend-us`: drive NAPI from epoll_wait (EPIOCSPARAMS) instead of recvfrom,
    /// with this irq-suspend-timeout (ns) on each NAPI (napi-set, Linux 6.13+). None: the
    /// recvfrom busy poll.
    pub irq_suspend_ns: Option<u64>,
}

/// How busy polling sets napi_defer_hard_irqs and gro_flush_timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusyPollKnobs {
    /// Per NAPI over netdev's napi-set where the kernel has it (Linux 6.13+), else sysfs.
    #[default]
    Auto,
    /// Per NAPI over napi-set only; refused where it is missing.
    Napi,
    /// The device's sysfs files (/sys/class/net/DEV/napi_defer_hard_irqs and
    /// gro_flush_timeout), even where napi-set exists.
    Sysfs,
}

impl std::str::FromStr for BusyPollKnobs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "napi" => Ok(Self::Napi),
            "sysfs" => Ok(Self::Sysfs),
            _ => Err(format!("--busy-poll-knobs {s:?}: use auto, napi (netdev napi-set) or sysfs")),
        }
    }
}

impl BusyPollSettings {
    /// The recipe's values: 20 us, 64 frames, 2 deferrals, 200 us.
    pub const DEFAULT: Self = Self {
        usecs: 20,
        budget: 64,
        defer_hard_irqs: 2,
        gro_flush_timeout_ns: 200_000,
        knobs: BusyPollKnobs::Auto,
        irq_suspend_ns: None,
    };

    /// Checks each value's range; the error names the flag.
    pub fn new(usecs: u32, budget: u32, defer_hard_irqs: u32, gro_flush_timeout_ns: u64) -> Result<Self, ConfigError> {
        if !(1..=1000).contains(&usecs) {
            return Err(err("--busy-poll-usecs", usecs.to_string(), "must be 1 to 1000 (us a recvfrom polls NAPI)"));
        }
        let budget = u16::try_from(budget)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| err("--busy-poll-budget", budget.to_string(), "must be 1 to 65535 frames per busy poll"))?;
        if defer_hard_irqs > i32::MAX as u32 {
            return Err(err("--defer-hard-irqs", defer_hard_irqs.to_string(), "must be 0 to 2147483647"));
        }
        if gro_flush_timeout_ns > 1_000_000_000 {
            return Err(err(
                "--gro-flush-timeout",
                gro_flush_timeout_ns.to_string(),
                "must be 0 to 1000000000 ns (a second); the recipe uses 200000",
            ));
        }
        Ok(Self {
            usecs,
            budget,
            defer_hard_irqs,
            gro_flush_timeout_ns,
            knobs: BusyPollKnobs::Auto,
            irq_suspend_ns: None,
        })
    }

    /// Longest `--irq-suspend-us`: a second (the kernel's own safety net for a worker
    /// that stops polling; napi.rst suggests a few times the work of one batch).
    pub const MAX_IRQ_SUSPEND_US: u32 = 1_000_000;

    /// With epoll busy polling and IRQ suspension for `us` microseconds (`--irq-suspend-us`).
    pub fn with_irq_suspend_us(self, us: u32) -> Result<Self, ConfigError> {
        if !(1..=Self::MAX_IRQ_SUSPEND_US).contains(&us) {
            return Err(err(
                "--irq-suspend-us",
                us.to_string(),
                "must be 1 to 1000000 us (how long the device's IRQ may stay suspended while the worker finds work)",
            ));
        }
        Ok(Self { irq_suspend_ns: Some(u64::from(us) * 1000), ..self })
    }
}

impl Default for BusyPollSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Interrupt moderation for a sleeping wait (`--coalesce-us`, `--coalesce-frames`): after
/// a wakeup, the worker lets frames gather on the RX ring, sleeping in slices of `us`/4, until
/// `frames` are there or `us` has passed, then takes the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Coalesce {
    /// Longest wait for the count after a wakeup, us (1 to 10000).
    pub us: u32,
    /// Frames to wait for (1 to 65536; more than the batch still takes batches).
    pub frames: u32,
}

impl Coalesce {
    /// Both settings, checked; `None` for both unset. One without the other takes the
    /// other's default (50 us, or the batch size in frames).
    pub fn new(us: Option<u32>, frames: Option<u32>, batch: u32) -> Result<Option<Self>, ConfigError> {
        if us.is_none() && frames.is_none() {
            return Ok(None);
        }
        let us = us.unwrap_or(50);
        let frames = frames.unwrap_or(batch);
        if !(1..=10_000).contains(&us) {
            return Err(err(
                "--coalesce-us",
                us.to_string(),
                "must be 1 to 10000 (us to let frames gather after a wakeup); leave both coalesce flags out for none",
            ));
        }
        if !(1..=65_536).contains(&frames) {
            return Err(err(
                "--coalesce-frames",
                frames.to_string(),
                "must be 1 to 65536 frames to gather after a wakeup",
            ));
        }
        Ok(Some(Self { us, frames }))
    }
}

/// A duplicate-free list of small integers written as `0`, `0-3` or `0,2,5-6`, in the
/// order written: queue i of a `--queues` list pairs with core i of `--cores`.
fn parse_id_list(what: &'static str, s: &str, max_exclusive: u32) -> Result<Vec<u32>, ConfigError> {
    let mut ids = Vec::new();
    if s.trim().is_empty() {
        return Err(err(what, s, "empty list; write e.g. 0, 0-3 or 0,2"));
    }
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |x: &str| {
            x.parse::<u32>().map_err(|_| err(what, s, format!("{x:?} is not a number; write e.g. 0, 0-3 or 0,2")))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi {
            return Err(err(what, s, format!("range {lo}-{hi} runs backwards")));
        }
        if hi >= max_exclusive {
            return Err(err(what, s, format!("{hi} is out of range (0 to {})", max_exclusive - 1)));
        }
        for id in lo..=hi {
            if ids.contains(&id) {
                return Err(err(what, s, format!("{id} is listed twice")));
            }
            ids.push(id);
        }
    }
    Ok(ids)
}

/// RX queue ids, one worker each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueList(Vec<u32>);

impl QueueList {
    /// A queue list from ids (in that order, duplicates refused).
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Result<Self, ConfigError> {
        let s: Vec<String> = ids.into_iter().map(|q| q.to_string()).collect();
        s.join(",").parse()
    }

    /// The queue ids, in the order given, each once.
    pub fn ids(&self) -> &[u32] {
        &self.0
    }

    /// Checks every queue against the device's RX queue count.
    pub fn check_against(&self, iface: &str, available: u32) -> Result<(), ConfigError> {
        if let Some(&q) = self.0.iter().find(|&&q| q >= available) {
            return Err(err(
                "queue",
                q.to_string(),
                format!(
                    "{iface} has {available} queue(s) (0 to {}); pick queues in range or raise \
                     the channel count with `ethtool -L {iface} combined N`",
                    available.saturating_sub(1)
                ),
            ));
        }
        Ok(())
    }
}

impl FromStr for QueueList {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_id_list("queue list", s, MAX_QUEUES).map(Self)
    }
}

/// CPU cores for the workers, in queue order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreList(Vec<u32>);

impl CoreList {
    /// A core list from ids (in that order, duplicates refused).
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Result<Self, ConfigError> {
        let s: Vec<String> = ids.into_iter().map(|c| c.to_string()).collect();
        s.join(",").parse()
    }

    /// The core ids, in the order given (one per queue, in queue order), each once.
    pub fn ids(&self) -> &[u32] {
        &self.0
    }

    /// Checks every core against the cores this process may run on.
    pub fn check_against(&self, online: &[u32]) -> Result<(), ConfigError> {
        if let Some(&c) = self.0.iter().find(|c| !online.contains(c)) {
            return Err(err("core", c.to_string(), format!("not a core this process may use; available: {online:?}")));
        }
        Ok(())
    }
}

impl FromStr for CoreList {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_id_list("core list", s, 4096).map(Self)
    }
}

/// A plain enum whose values have one name each: `FromStr` and `Display` use it, and the
/// error for an unknown name lists the known ones. (The CLI's value enums map onto these;
/// no library type derives clap.)
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, $case:literal { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = $case)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every value, in the order help lists them.
            pub const ALL: &'static [Self] = &[$(Self::$v),+];
            /// The value's name, as flags and JSON write it.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = ConfigError;
            fn from_str(s: &str) -> Result<Self, ConfigError> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    err($what, s, format!("use {}", names.join(", ")))
                })
            }
        }
    };
}

named_enum!(
    /// Where the XDP program runs.
    XdpMode, "XDP mode", "lowercase" {
        /// Generic XDP, in the kernel stack after the skb is built (any device).
        Skb = "skb",
        /// Native XDP, in the driver before any skb.
        Native = "native",
        /// Native if the driver supports it, else skb.
        Auto = "auto",
    }
);

named_enum!(
    /// How the AF_XDP socket binds to its queue.
    BindMode, "bind mode", "kebab-case" {
        /// XDP_COPY: the kernel copies each frame into the UMEM.
        Copy = "copy",
        /// XDP_ZEROCOPY: the NIC DMAs straight into the UMEM (driver must support it).
        ZeroCopy = "zero-copy",
        /// Let the kernel choose (zero-copy where the driver has it).
        Auto = "auto",
    }
);

named_enum!(
    /// The worker modes `xdpipe run --mode` accepts.
    ModeKind, "mode", "lowercase" {
        /// Consume and recycle; frame data untouched.
        Rxdrop = "rxdrop",
        /// Parse Ethernet/VLAN/IPv4/IPv6/UDP/TCP, count flows and malformed frames.
        Parse = "parse",
        /// Swap MACs and send each frame back out of the same queue (no copy).
        L2fwd = "l2fwd",
        /// Receive on --iface, send unchanged on --out-iface (shared UMEM where the kernel
        /// allows it, else a copy).
        Fwd = "fwd",
    }
);

impl ModeKind {
    /// Whether the mode transmits (and so needs a TX ring and frames for it).
    pub fn transmits(self) -> bool {
        matches!(self, Self::L2fwd | Self::Fwd)
    }
}

named_enum!(
    /// How the generator transmits frames.
    Engine, "engine", "kebab-case" {
        /// AF_XDP TX ring (the path under test).
        Xsk = "xsk",
        /// The kernel transmits from an XDP program run with BPF_PROG_RUN and live frames
        /// (as xdp-trafficgen does): the fastest way to load a receiver.
        XdpLive = "xdp-live",
    }
);

/// Which frames the XDP program steers to the sockets; everything else goes to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteerFilter(SteerConfig);

impl SteerFilter {
    /// The filter as the XDP program's read-only global takes it.
    pub fn config(self) -> SteerConfig {
        self.0
    }
}

impl Default for SteerFilter {
    fn default() -> Self {
        Self(SteerConfig::DEFAULT)
    }
}

impl fmt::Display for SteerFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        match c.kind {
            MATCH_ALL => write!(f, "all"),
            MATCH_ETHERTYPE => write!(f, "ethertype:0x{:04x}", c.ethertype),
            MATCH_IP_PROTO => write!(f, "ip-proto:{}", c.ip_proto),
            _ => write!(f, "udp-dport:{}-{}", c.port_lo, c.port_hi),
        }
    }
}

impl FromStr for SteerFilter {
    type Err = ConfigError;
    /// `all`, `ethertype:0x88b5`, `ip-proto:17` (or `udp`, `tcp`), `udp-dport:9000-9099`,
    /// `udp-dport:9000`, or `bench` (the default: xdpipe's benchmark ports).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORMS: &str = "use all, bench, ethertype:0xNNNN, ip-proto:N, udp, tcp, \
                             udp-dport:PORT or udp-dport:LO-HI";
        let mut c = SteerConfig::DEFAULT;
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match (kind, arg) {
            ("all", "") => c.kind = MATCH_ALL,
            ("bench", "") => {}
            ("udp", "") => (c.kind, c.ip_proto) = (MATCH_IP_PROTO, 17),
            ("tcp", "") => (c.kind, c.ip_proto) = (MATCH_IP_PROTO, 6),
            ("ethertype", a) => {
                let hex = a.trim_start_matches("0x");
                c.kind = MATCH_ETHERTYPE;
                c.ethertype = u16::from_str_radix(hex, 16)
                    .map_err(|_| err("steering filter", s, "EtherType must be hex, e.g. 0x88b5"))?;
            }
            ("ip-proto", a) => {
                c.kind = MATCH_IP_PROTO;
                c.ip_proto = a.parse().map_err(|_| err("steering filter", s, "IP protocol must be 0 to 255"))?;
            }
            ("udp-dport", a) => {
                let (lo, hi) = a.split_once('-').unwrap_or((a, a));
                let port = |p: &str| p.parse::<u16>().map_err(|_| err("steering filter", s, "port must be 0 to 65535"));
                c.kind = MATCH_UDP_DPORT;
                (c.port_lo, c.port_hi) = (port(lo)?, port(hi)?);
                if c.port_lo > c.port_hi {
                    return Err(err("steering filter", s, "port range runs backwards"));
                }
            }
            _ => return Err(err("steering filter", s, FORMS)),
        }
        Ok(Self(c))
    }
}

/// Default UDP destination port of generated traffic: the start of the steered range.
pub const BENCH_PORT_RANGE: (u16, u16) = (BENCH_UDP_PORT_LO, BENCH_UDP_PORT_HI);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_must_be_power_of_two_in_range() {
        assert_eq!(RingSize::new(2048).unwrap().get(), 2048);
        assert!(RingSize::new(3000).unwrap_err().why.contains("power of two"));
        assert!(RingSize::new(32).is_err());
        assert!(RingSize::new(65536).is_err());
        assert!("x".parse::<RingSize>().is_err());
    }

    #[test]
    fn frame_size_accepts_aligned_chunks_only() {
        assert!(FrameSize::new(2048).is_ok());
        assert!(FrameSize::new(4096).is_ok());
        assert!(FrameSize::new(3000).is_err());
        assert!(FrameSize::new(1024).is_err());
    }

    #[test]
    fn busy_poll_and_coalesce_settings_are_range_checked_by_flag() {
        assert_eq!(BusyPollSettings::new(20, 64, 2, 200_000).unwrap(), BusyPollSettings::DEFAULT);
        assert_eq!(BusyPollSettings::new(0, 64, 2, 0).unwrap_err().what, "--busy-poll-usecs");
        assert_eq!(BusyPollSettings::new(20, 70_000, 2, 0).unwrap_err().what, "--busy-poll-budget");
        assert_eq!(BusyPollSettings::new(20, 0, 2, 0).unwrap_err().what, "--busy-poll-budget");
        assert_eq!(BusyPollSettings::new(20, 8, 1 << 31, 0).unwrap_err().what, "--defer-hard-irqs");
        assert_eq!(BusyPollSettings::new(20, 8, 2, 2_000_000_000).unwrap_err().what, "--gro-flush-timeout");
        let d = BusyPollSettings::DEFAULT;
        assert_eq!(d.with_irq_suspend_us(20_000).unwrap().irq_suspend_ns, Some(20_000_000));
        assert_eq!(d.with_irq_suspend_us(0).unwrap_err().what, "--irq-suspend-us");
        assert_eq!(d.with_irq_suspend_us(1_000_001).unwrap_err().what, "--irq-suspend-us");
        assert_eq!(Coalesce::new(None, None, 64), Ok(None));
        assert_eq!(Coalesce::new(Some(30), None, 64), Ok(Some(Coalesce { us: 30, frames: 64 })));
        assert_eq!(Coalesce::new(None, Some(8), 64), Ok(Some(Coalesce { us: 50, frames: 8 })));
        assert_eq!(Coalesce::new(Some(0), None, 64).unwrap_err().what, "--coalesce-us");
        assert_eq!(Coalesce::new(Some(5), Some(0), 64).unwrap_err().what, "--coalesce-frames");
    }

    #[test]
    fn batch_size_range() {
        assert!(BatchSize::new(0).is_err());
        assert_eq!(BatchSize::new(64).unwrap().get(), 64);
        assert!(BatchSize::new(4097).is_err());
    }

    #[test]
    fn poll_wait_forms_round_trip_and_bad_ones_are_named() {
        for (text, want, arg) in [
            ("0", PollWait::Busy, None),
            ("forever", PollWait::Sleep { timeout_ms: None }, Some(-1)),
            ("250", PollWait::Sleep { timeout_ms: Some(250) }, Some(250)),
            ("busy-poll", PollWait::BusyPoll, None),
        ] {
            let p: PollWait = text.parse().unwrap();
            assert_eq!(p, want);
            assert_eq!(p.timeout_arg(), arg);
            assert_eq!(p.to_string(), text);
        }
        for bad in ["-1", "soon", "3600001"] {
            let e = bad.parse::<PollWait>().unwrap_err();
            assert_eq!(e.what, "poll timeout");
            assert!(e.why.contains("forever"), "{e}");
        }
    }

    #[test]
    fn id_lists_parse_ranges_and_reject_nonsense() {
        assert_eq!("0".parse::<QueueList>().unwrap().ids(), &[0]);
        assert_eq!("0-3".parse::<QueueList>().unwrap().ids(), &[0, 1, 2, 3]);
        assert_eq!("5,0,2-3".parse::<QueueList>().unwrap().ids(), &[5, 0, 2, 3], "in the order written");
        // Queue i pairs with core i: `--queues 0,1 --cores 3,1` puts queue 0 on core 3.
        assert_eq!("3,1".parse::<CoreList>().unwrap().ids(), &[3, 1]);
        assert!("3-1".parse::<QueueList>().unwrap_err().why.contains("backwards"));
        assert!("1,1".parse::<CoreList>().unwrap_err().why.contains("twice"));
        assert!("a".parse::<QueueList>().is_err());
        assert!("".parse::<QueueList>().is_err());
        assert!("999".parse::<QueueList>().unwrap_err().why.contains("out of range"));
    }

    #[test]
    fn queue_check_names_device_and_fix() {
        let q: QueueList = "0-2".parse().unwrap();
        let e = q.check_against("veth0", 2).unwrap_err();
        assert_eq!(e.value, "2");
        assert!(e.why.contains("veth0 has 2 queue(s)"));
        assert!(e.why.contains("ethtool -L"));
        assert!(q.check_against("veth0", 3).is_ok());
    }

    #[test]
    fn core_check() {
        let c: CoreList = "0,1".parse().unwrap();
        assert!(c.check_against(&[0, 1]).is_ok());
        assert!(c.check_against(&[0]).unwrap_err().why.contains("available"));
    }

    #[test]
    fn named_enums_round_trip_and_match_their_json() {
        for m in ModeKind::ALL {
            assert_eq!(m.to_string().parse::<ModeKind>().unwrap(), *m);
            assert_eq!(serde_json::to_string(m).unwrap(), format!("\"{m}\""));
        }
        assert_eq!(serde_json::to_string(&Engine::XdpLive).unwrap(), "\"xdp-live\"");
        assert_eq!(serde_json::to_string(&BindMode::ZeroCopy).unwrap(), "\"zero-copy\"");
        assert_eq!("native".parse::<XdpMode>().unwrap(), XdpMode::Native);
        assert_eq!("nope".parse::<ModeKind>().unwrap_err().why, "use rxdrop, parse, l2fwd, fwd");
    }

    #[test]
    fn steer_filters_round_trip() {
        for s in ["all", "ethertype:0x88b5", "ip-proto:17", "udp-dport:9000-9099"] {
            assert_eq!(s.parse::<SteerFilter>().unwrap().to_string(), s);
        }
        let d = SteerFilter::default().to_string();
        assert_eq!(d, format!("udp-dport:{}-{}", BENCH_UDP_PORT_LO, BENCH_UDP_PORT_HI));
        assert_eq!("bench".parse::<SteerFilter>().unwrap(), SteerFilter::default());
        assert_eq!("udp".parse::<SteerFilter>().unwrap().to_string(), "ip-proto:17");
        assert_eq!("udp-dport:53".parse::<SteerFilter>().unwrap().to_string(), "udp-dport:53-53");
        assert!("udp-dport:9-1".parse::<SteerFilter>().is_err());
        assert!("ethertype:zz".parse::<SteerFilter>().is_err());
        assert!("nope".parse::<SteerFilter>().unwrap_err().why.contains("udp-dport"));
    }
}

//! The clap side of the library's plain enums: value enums that carry each value's help
//! text and map onto the library type, and a parser that lists a bench axis's values.
use clap::builder::{PossibleValuesParser, TypedValueParser};
use xdpipe::config::{BindMode, Engine, ModeKind, XdpMode};
use xdpipe_bench::axes::Axis;

/// A clap value enum mirroring a library enum variant for variant (same names), with
/// `From` both ways.
macro_rules! value_enum {
    ($(#[$m:meta])* $name:ident => $lib:ident { $($(#[$vm:meta])* $v:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl From<$name> for $lib {
            fn from(v: $name) -> Self {
                match v { $($name::$v => $lib::$v),+ }
            }
        }
        impl From<$lib> for $name {
            fn from(v: $lib) -> Self {
                match v { $($lib::$v => $name::$v),+ }
            }
        }
    };
}

value_enum!(
    /// Where the XDP program runs.
    XdpModeArg => XdpMode {
        /// Generic XDP, in the kernel stack after the skb is built (any device).
        Skb,
        /// Native XDP, in the driver before any skb.
        Native,
        /// Native if the driver supports it, else skb.
        Auto,
    }
);

value_enum!(
    /// How the AF_XDP socket binds to its queue.
    BindArg => BindMode {
        /// XDP_COPY: the kernel copies each frame into the UMEM.
        Copy,
        /// XDP_ZEROCOPY: the NIC DMAs straight into the UMEM (driver must support it).
        ZeroCopy,
        /// Let the kernel choose (zero-copy where the driver has it).
        Auto,
    }
);

value_enum!(
    /// The worker modes.
    ModeArg => ModeKind {
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
);

value_enum!(
    /// How the generator transmits.
    EngineArg => Engine {
        /// AF_XDP TX ring (the path under test).
        Xsk,
        /// The kernel transmits from an XDP program run with BPF_PROG_RUN and live frames
        /// (as xdp-trafficgen does): the fastest way to load a receiver.
        XdpLive,
    }
);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn on(self) -> bool {
        self == OnOff::On
    }
}

/// `bench --threaded-napi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOffBoth {
    Off,
    On,
    /// Every scenario with and without (labelled in the results).
    Both,
}

impl OnOffBoth {
    pub fn values(self) -> Vec<bool> {
        match self {
            OnOffBoth::Off => vec![false],
            OnOffBoth::On => vec![true],
            OnOffBoth::Both => vec![false, true],
        }
    }
}

/// `bench --anchors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AnchorsArg {
    /// Run the anchors that are found.
    Auto,
    /// Run none.
    Off,
}

/// A bench axis's values as clap's possible values (listed in --help, unknown ones
/// refused with the list).
pub fn axis<T: Axis + Clone + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| v.as_str()))
        .map(|s| T::ALL.iter().copied().find(|v| v.as_str() == s).expect("clap accepted a listed value"))
}

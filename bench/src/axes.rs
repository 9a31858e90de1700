//! The axes of the scenario matrix as enums. Each is stored (summary.json, raw.csv) and
//! labelled by the string [`Axis::as_str`] / `Display` gives, the same strings runs were
//! stored with before these were enums, so old runs still load.
use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value of an axis that did not parse: names the axis, the value and the accepted ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{axis} {value:?}: {why}")]
pub struct AxisError {
    pub axis: &'static str,
    pub value: String,
    pub why: String,
}

/// An axis with a fixed set of values.
pub trait Axis: Copy + Sized + 'static {
    /// What the value is, for errors ("XDP mode").
    const WHAT: &'static str;
    /// Every value, in the order help lists them.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

fn parse_axis<T: Axis>(s: &str) -> Result<T, AxisError> {
    T::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| AxisError {
        axis: T::WHAT,
        value: s.to_owned(),
        why: format!("use {}", T::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")),
    })
}

/// Serde as the value's string (serde's derive would store `Bytes(64)` as an object).
macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! axis {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl Axis for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &[$(Self::$v),+];
            fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $name {
            type Err = AxisError;
            fn from_str(s: &str) -> Result<Self, AxisError> {
                parse_axis(s)
            }
        }
        string_serde!($name);
    };
}

axis!(
    /// Where the receiver's XDP program runs.
    XdpMode, "XDP mode" { Skb = "skb", Native = "native" }
);
axis!(
    /// How the receiver's sockets bind.
    Bind, "bind" { Copy = "copy", ZeroCopy = "zero-copy" }
);
axis!(
    /// The receiver's worker mode.
    Mode, "mode" { Rxdrop = "rxdrop", Parse = "parse", L2fwd = "l2fwd", Fwd = "fwd" }
);
axis!(
    /// The generator's engine.
    Engine, "engine" { Xsk = "xsk", XdpLive = "xdp-live" }
);
axis!(
    /// The receiver's wait policy: need_wakeup with busy polling (spinning on the ring),
    /// sleeping in poll(), or kernel busy polling (`run --poll busy-poll`).
    Wait, "wait policy" { Busy = "busy", Poll = "poll", BusyPoll = "busy-poll" }
);
axis!(
    /// Receive-port offloads: as the driver set them, or every one `ethtool -K` could
    /// turn off.
    Offloads, "offloads" { Default = "default", Off = "off" }
);
axis!(
    /// The emulated NIC of the QEMU guest (scripts/vm).
    VmKind, "VM NIC" { Igb = "igb", Virtio = "virtio" }
);

/// Frame size with FCS, or IMIX (7:4:1 of 64/570/1518).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    Bytes(u32),
    Imix,
}

impl Size {
    /// IMIX's largest frame.
    pub const IMIX_MAX: u32 = 1518;
    /// `jumbo`: a 9000 B MTU's largest frame with FCS (9000 + 14 + 4).
    pub const JUMBO: u32 = 9018;

    /// The largest frame this size sends.
    pub fn max_bytes(self) -> u32 {
        match self {
            Size::Bytes(n) => n,
            Size::Imix => Self::IMIX_MAX,
        }
    }

    /// Mean frame size with FCS.
    pub fn mean(self) -> f64 {
        match self {
            Size::Bytes(n) => n as f64,
            Size::Imix => (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(n) => write!(f, "{n}"),
            Size::Imix => f.write_str("imix"),
        }
    }
}

impl FromStr for Size {
    type Err = AxisError;
    fn from_str(s: &str) -> Result<Self, AxisError> {
        if s == "imix" {
            return Ok(Size::Imix);
        }
        if s == "jumbo" {
            return Ok(Size::Bytes(Size::JUMBO));
        }
        s.parse().map(Size::Bytes).map_err(|_| AxisError {
            axis: "frame size",
            value: s.to_owned(),
            why: "write a number of bytes with FCS (e.g. 64), jumbo (9018) or imix".into(),
        })
    }
}
string_serde!(Size);

/// Where a run ran: the veth testbed, a NIC port (`nic:IFACE`), the QEMU guest's
/// emulated NIC (`vm:igb`, `vm:virtio`) or a device topology in the guest's kernel
/// (`vm:ipvlan-l2`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Veth,
    /// A host device in front of the receiver, built on a veth testbed: `bridge`,
    /// `macvlan`, `vxlan` or `tap` (see `xdpipe::topology`).
    Dev(HostDevice),
    Nic(String),
    Vm(VmKind),
    /// A device topology built on a veth testbed inside the QEMU guest, whose kernel has
    /// kinds this host may lack (ipvlan, geneve, netkit): `vm:ipvlan-l2`, ...
    VmDev(HostDevice),
    /// A composite path measured hop by hop in the QEMU guest: `path:kubevirt`.
    Path(PathKind),
}

/// The composite paths of `--target path:NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// virtio-net -> tap -> Linux bridge -> veth -> OVS -> Geneve -> NIC, as on a KubeVirt
    /// + Kube-OVN node (see `crate::chain`).
    Kubevirt,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Veth => f.write_str("veth"),
            Target::Dev(d) => f.write_str(d.name()),
            Target::Nic(i) => write!(f, "nic:{i}"),
            Target::Vm(k) => write!(f, "vm:{k}"),
            Target::VmDev(d) => write!(f, "vm:{}", d.name()),
            Target::Path(PathKind::Kubevirt) => f.write_str("path:kubevirt"),
        }
    }
}

impl FromStr for Target {
    type Err = AxisError;
    fn from_str(s: &str) -> Result<Self, AxisError> {
        let bad = |why: &str| AxisError { axis: "target", value: s.to_owned(), why: why.to_owned() };
        if let Some(d) = HostDevice::from_name(s) {
            return Ok(Target::Dev(d));
        }
        match s.split_once(':') {
            None if s == "veth" => Ok(Target::Veth),
            Some(("nic", "")) => Err(bad("name the port: nic:IFACE, e.g. nic:eth1")),
            Some(("nic", i)) => Ok(Target::Nic(i.to_owned())),
            Some(("path", "kubevirt")) => Ok(Target::Path(PathKind::Kubevirt)),
            Some(("path", _)) => Err(bad("the one composite path is path:kubevirt")),
            Some(("vm", k)) => match HostDevice::from_name(k) {
                Some(d) => Ok(Target::VmDev(d)),
                None => k.parse().map(Target::Vm).map_err(|_| {
                    bad("use vm:igb, vm:virtio or vm:DEVICE (DEVICE one of bridge, macvlan, vxlan, tap, ipvlan-l2, ipvlan-l3, geneve, netkit, ovs, kubevirt-ovs, kubevirt-veth, kubevirt-bridge, kubevirt-tap)")
                }),
            },
            _ => Err(bad(
                "use veth, bridge, macvlan, vxlan, tap, ipvlan-l2, ipvlan-l3, geneve, netkit, ovs, nic:IFACE, vm:igb, vm:virtio, vm:DEVICE or path:kubevirt",
            )),
        }
    }
}
string_serde!(Target);

/// The host devices a testbed target can put in front of the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostDevice {
    /// Through a Linux bridge, received on the veth behind it.
    Bridge,
    /// A macvlan in bridge mode on the veth.
    Macvlan,
    /// A VXLAN tunnel over the veth.
    Vxlan,
    /// A tap written through /dev/net/tun.
    Tap,
    /// An ipvlan in l2 mode on the veth.
    IpvlanL2,
    /// An ipvlan in l3 mode on the veth.
    IpvlanL3,
    /// A Geneve tunnel over the veth.
    Geneve,
    /// A netkit pair in L2 mode.
    Netkit,
    /// Through an Open vSwitch kernel datapath (one flow).
    Ovs,
    /// path:kubevirt's hops up to OVS (OVS -> Geneve -> veth underlay).
    KubevirtOvs,
    /// path:kubevirt's hops up to the veth pair into OVS.
    KubevirtVeth,
    /// path:kubevirt's hops up to the Linux bridge.
    KubevirtBridge,
    /// path:kubevirt's whole chain, from the tap.
    KubevirtTap,
}

impl HostDevice {
    /// Every host device, in the waterfall's order.
    pub const ALL: [HostDevice; 13] = [
        HostDevice::Bridge,
        HostDevice::Macvlan,
        HostDevice::Vxlan,
        HostDevice::Tap,
        HostDevice::IpvlanL2,
        HostDevice::IpvlanL3,
        HostDevice::Geneve,
        HostDevice::Netkit,
        HostDevice::Ovs,
        HostDevice::KubevirtOvs,
        HostDevice::KubevirtVeth,
        HostDevice::KubevirtBridge,
        HostDevice::KubevirtTap,
    ];

    /// Its target name.
    pub fn name(self) -> &'static str {
        match self {
            HostDevice::Bridge => "bridge",
            HostDevice::Macvlan => "macvlan",
            HostDevice::Vxlan => "vxlan",
            HostDevice::Tap => "tap",
            HostDevice::IpvlanL2 => "ipvlan-l2",
            HostDevice::IpvlanL3 => "ipvlan-l3",
            HostDevice::Geneve => "geneve",
            HostDevice::Netkit => "netkit",
            HostDevice::Ovs => "ovs",
            HostDevice::KubevirtOvs => "kubevirt-ovs",
            HostDevice::KubevirtVeth => "kubevirt-veth",
            HostDevice::KubevirtBridge => "kubevirt-bridge",
            HostDevice::KubevirtTap => "kubevirt-tap",
        }
    }

    /// The device of a target name.
    pub fn from_name(s: &str) -> Option<HostDevice> {
        HostDevice::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl Target {
    /// True for the targets xdpipe builds per trial on a veth testbed (veth and the host
    /// devices).
    pub fn is_testbed(&self) -> bool {
        matches!(self, Target::Veth | Target::Dev(_))
    }

    /// True for the targets that run in the QEMU guest (`vm:*`, `path:kubevirt`).
    pub fn is_vm(&self) -> bool {
        matches!(self, Target::Vm(_) | Target::VmDev(_) | Target::Path(_))
    }

    /// The device topology of a testbed target, here or in the guest (`bridge` for
    /// `bridge` and for `vm:bridge`); None for veth, nic and vm NIC targets.
    pub fn host_device(&self) -> Option<HostDevice> {
        match self {
            Target::Dev(d) | Target::VmDev(d) => Some(*d),
            _ => None,
        }
    }

    /// The testbed device name (`veth`, `bridge`, ...), None for nic and vm targets.
    pub fn device_name(&self) -> Option<&'static str> {
        match self {
            Target::Veth => Some("veth"),
            Target::Dev(d) => Some(d.name()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_trip_through_their_stored_strings() {
        for s in ["skb", "native"] {
            assert_eq!(s.parse::<XdpMode>().unwrap().to_string(), s);
        }
        for s in [
            "veth",
            "bridge",
            "macvlan",
            "vxlan",
            "tap",
            "ipvlan-l2",
            "ipvlan-l3",
            "geneve",
            "netkit",
            "nic:igb1",
            "vm:igb",
            "vm:virtio",
            "vm:ipvlan-l2",
            "vm:ipvlan-l3",
            "vm:geneve",
            "vm:netkit",
            "vm:ovs",
            "ovs",
            "vm:kubevirt-tap",
            "kubevirt-ovs",
            "path:kubevirt",
            "vm:bridge",
        ] {
            let t: Target = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(serde_json::from_str::<Engine>("\"xdp-live\"").unwrap(), Engine::XdpLive);
        assert_eq!(serde_json::from_str::<Size>("\"1518\"").unwrap(), Size::Bytes(1518));
        let e = "auto".parse::<XdpMode>().unwrap_err();
        assert_eq!(e.to_string(), "XDP mode \"auto\": use skb, native");
        assert!("vm:e1000".parse::<Target>().unwrap_err().why.contains("vm:igb"));
        assert!("ten".parse::<Size>().is_err());
        // jumbo: a 9000 B MTU's largest frame with FCS; stored as its number.
        assert_eq!("jumbo".parse::<Size>().unwrap(), Size::Bytes(9018));
        assert_eq!(Size::Bytes(Size::JUMBO).to_string(), "9018");
        assert!("ten".parse::<Size>().unwrap_err().why.contains("jumbo"));
    }
}

//! The `ethtool` generic netlink family (Linux 5.6+) for what xdpipe reads and sets:
//! features (get, set by kernel feature name: `rx-gro`, `rx-checksum`, ...), channels,
//! rings, link speed/duplex and link state; plus the two ioctls that have no netlink
//! message (driver info, the RSS flow hash of a flow type). Attribute numbers are from
//! include/uapi/linux/ethtool_netlink_generated.h; framing is `netlink-packet-generic`'s.
use std::collections::BTreeMap;

use super::{
    NetError,
    genl::{Attrs, Family, attrs, string, uint},
};

const VERSION: u8 = 1;
const MSG_LINKMODES_GET: u8 = 4;
const MSG_LINKSTATE_GET: u8 = 6;
const MSG_FEATURES_GET: u8 = 11;
const MSG_FEATURES_SET: u8 = 12;
const MSG_RINGS_GET: u8 = 15;
const MSG_CHANNELS_GET: u8 = 17;
/// Every request's first attribute: ETHTOOL_A_*_HEADER, nested.
const A_HEADER: u16 = 1;
const A_HEADER_DEV_NAME: u16 = 2;
const A_FEATURES_HW: u16 = 2;
const A_FEATURES_WANTED: u16 = 3;
const A_FEATURES_ACTIVE: u16 = 4;
const A_FEATURES_NOCHANGE: u16 = 5;
const A_BITSET_BITS: u16 = 3;
const A_BITSET_BIT: u16 = 1;
const A_BIT_NAME: u16 = 2;
const A_BIT_VALUE: u16 = 3;
const A_LINKMODES_SPEED: u16 = 5;
const A_LINKMODES_DUPLEX: u16 = 6;
const A_LINKSTATE_LINK: u16 = 2;

fn family() -> Result<Family, NetError> {
    Family::resolve("ethtool", "Linux 5.6+", "features, channels and rings")
}

fn header(iface: &str) -> Attrs {
    Attrs::default().nested(A_HEADER, Attrs::default().string(A_HEADER_DEV_NAME, iface))
}

fn get(iface: &str, cmd: u8, op: &'static str) -> Result<Vec<u8>, NetError> {
    super::check_ifname(iface)?;
    let r = family()?.request(cmd, VERSION, header(iface), 0, op, iface)?;
    r.into_iter().next().ok_or_else(|| NetError::Decode { op, what: iface.into(), detail: "no reply".into() })
}

/// The names of the bits listed in a verbose bitset (ETHTOOL_A_BITSET_BITS); for the
/// no-mask bitsets of a FEATURES_GET reply, the bits that are set.
pub fn bitset_names(bitset: &[u8]) -> Vec<String> {
    attrs(bitset)
        .filter(|(k, _)| *k == A_BITSET_BITS)
        .flat_map(|(_, bits)| attrs(bits))
        .filter(|(k, _)| *k == A_BITSET_BIT)
        .filter_map(|(_, bit)| attrs(bit).find(|(k, _)| *k == A_BIT_NAME).map(|(_, n)| string(n)))
        .collect()
}

/// A device's features by kernel name (`ethtool -k` shows the same with older names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Features the device can toggle (hw).
    pub changeable: Vec<String>,
    /// Features requested (wanted), whether or not the driver put them in effect.
    pub wanted: Vec<String>,
    /// Features in effect.
    pub active: Vec<String>,
    /// Features that can never change (nochange: "\[fixed\]").
    pub fixed: Vec<String>,
}

impl Features {
    /// Whether the feature of kernel name `name` (`rx-gro`, ...) is in effect.
    pub fn is_active(&self, name: &str) -> bool {
        self.active.iter().any(|a| a == name)
    }
}

/// Parses a FEATURES_GET reply's attributes.
pub fn parse_features(reply: &[u8]) -> Features {
    let mut f = Features::default();
    for (k, p) in attrs(reply) {
        let slot = match k {
            A_FEATURES_HW => &mut f.changeable,
            A_FEATURES_WANTED => &mut f.wanted,
            A_FEATURES_ACTIVE => &mut f.active,
            A_FEATURES_NOCHANGE => &mut f.fixed,
            _ => continue,
        };
        *slot = bitset_names(p);
    }
    f
}

/// The features of `iface` (ETHTOOL_MSG_FEATURES_GET).
pub fn features(iface: &str) -> Result<Features, NetError> {
    get(iface, MSG_FEATURES_GET, "reading ethtool features of").map(|r| parse_features(&r))
}

/// The FEATURES_SET attributes asking for each of `names` to be `on` (a verbose bitset
/// with a mask: only the listed bits change).
pub fn features_set_attrs(iface: &str, names: &[&str], on: bool) -> Attrs {
    let mut bits = Attrs::default();
    for n in names {
        let mut bit = Attrs::default().string(A_BIT_NAME, n);
        if on {
            bit = bit.flag(A_BIT_VALUE);
        }
        bits = bits.nested(A_BITSET_BIT, bit);
    }
    let mut a = header(iface);
    a = a.nested(A_FEATURES_WANTED, Attrs::default().nested(A_BITSET_BITS, bits));
    a
}

/// Turns the features `names` (kernel names) of `iface` on or off, like `ethtool -K`, and
/// returns those whose active state changed: a fixed feature, or one a driver refuses,
/// is asked for but stays as it was.
pub fn set_features(iface: &str, names: &[&str], on: bool) -> Result<Vec<String>, NetError> {
    let before = features(iface)?;
    let what = format!("{iface} ({} {})", names.join(","), if on { "on" } else { "off" });
    family()?.request(
        MSG_FEATURES_SET,
        VERSION,
        features_set_attrs(iface, names, on),
        0,
        "setting ethtool features of",
        &what,
    )?;
    let after = features(iface)?;
    Ok(names.iter().filter(|n| before.is_active(n) != after.is_active(n)).map(|n| (*n).to_owned()).collect())
}

/// The features of `wanted_off` to turn off on a device whose features are `before`:
/// those in effect, changeable and not fixed. A feature already off is left alone.
pub fn offload_plan(before: &Features, wanted_off: &[&str]) -> Vec<String> {
    wanted_off
        .iter()
        .filter(|n| before.is_active(n))
        .filter(|n| before.changeable.iter().any(|c| c == *n) && !before.fixed.iter().any(|c| c == *n))
        .map(|n| (*n).to_owned())
        .collect()
}

/// What undoes a change that took a device's features from `before` to `after`: turn
/// back on what went off, turn back off what went on (a feature the kernel switched as a
/// consequence). Only features whose state changed are named; nothing that was off
/// before is ever turned on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restore {
    /// Features to turn back on (they were in effect before).
    pub on: Vec<String>,
    /// Features to turn back off (they were not in effect before).
    pub off: Vec<String>,
}

/// The [`Restore`] of a change from `before` to `after`.
pub fn restore_plan(before: &Features, after: &Features) -> Restore {
    Restore {
        on: before.active.iter().filter(|n| !after.is_active(n)).cloned().collect(),
        off: after.active.iter().filter(|n| !before.is_active(n)).cloned().collect(),
    }
}

/// Offloads turned off for the life of the value: dropping it (or a second signal,
/// through [`crate::teardown`]) restores exactly the features that changed.
#[derive(Debug)]
pub struct OffloadGuard {
    /// What the drop restores (empty if nothing changed).
    pub restore: Restore,
    undo: Option<crate::teardown::Undo>,
}

fn apply_restore(iface: &str, r: &Restore) -> Result<(), NetError> {
    fn names(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    if !r.on.is_empty() {
        set_features(iface, &names(&r.on), true)?;
    }
    if !r.off.is_empty() {
        set_features(iface, &names(&r.off), false)?;
    }
    Ok(())
}

impl OffloadGuard {
    /// Reads the features of `iface`, turns off those of `names` that are on and
    /// changeable ([`offload_plan`]), and reads them again. If setting fails, what did
    /// change is restored before the error returns.
    pub fn off(iface: &str, names: &[&str]) -> Result<OffloadGuard, NetError> {
        let before = features(iface)?;
        let plan = offload_plan(&before, names);
        if plan.is_empty() {
            return Ok(OffloadGuard { restore: Restore::default(), undo: None });
        }
        let plan: Vec<&str> = plan.iter().map(String::as_str).collect();
        // Recorded first, so `xdpipe cleanup` turns them back on after a SIGKILL.
        let record = crate::knobs::record(
            &format!("offloads of {iface}"),
            vec![crate::knobs::Restore::Features {
                iface: iface.to_owned(),
                on: plan.iter().map(|n| (*n).to_owned()).collect(),
                off: Vec::new(),
            }],
        )
        .map_err(|e| NetError::io("writing the knob record for", format!("the offloads of {iface}"), e))?;
        let set = set_features(iface, &plan, false);
        // Unreadable afterwards: restore what was meant to go off (all of it was on).
        let restore = features(iface)
            .map(|after| restore_plan(&before, &after))
            .unwrap_or_else(|_| Restore { on: plan.iter().map(|n| (*n).to_owned()).collect(), off: Vec::new() });
        let (i, r) = (iface.to_owned(), restore.clone());
        let undo = crate::teardown::register(format!("offloads of {iface}"), move || {
            if let Err(e) = apply_restore(&i, &r) {
                log::warn!("restoring the offloads of {i}: {e}");
            }
            drop(record);
        });
        let guard = OffloadGuard { restore, undo: Some(undo) };
        set.map(|_| guard)
    }
}

impl Drop for OffloadGuard {
    fn drop(&mut self) {
        if let Some(u) = self.undo.take() {
            u.run();
        }
    }
}

/// u32 attributes of a reply by number.
fn numbers(reply: &[u8]) -> BTreeMap<u16, u64> {
    attrs(reply).filter(|(k, _)| *k != A_HEADER).filter_map(|(k, p)| Some((k, uint(p)?))).collect()
}

/// Channel counts and maxima (`ethtool -l`), each None where the driver has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channels {
    /// Most RX-only channels (ETHTOOL_A_CHANNELS_RX_MAX).
    pub rx_max: Option<u64>,
    /// Most TX-only channels (ETHTOOL_A_CHANNELS_TX_MAX).
    pub tx_max: Option<u64>,
    /// Most other channels, e.g. link interrupts (ETHTOOL_A_CHANNELS_OTHER_MAX).
    pub other_max: Option<u64>,
    /// Most combined RX/TX channels (ETHTOOL_A_CHANNELS_COMBINED_MAX).
    pub combined_max: Option<u64>,
    /// RX-only channels in use (ETHTOOL_A_CHANNELS_RX_COUNT).
    pub rx: Option<u64>,
    /// TX-only channels in use (ETHTOOL_A_CHANNELS_TX_COUNT).
    pub tx: Option<u64>,
    /// Other channels in use (ETHTOOL_A_CHANNELS_OTHER_COUNT).
    pub other: Option<u64>,
    /// Combined channels in use (ETHTOOL_A_CHANNELS_COMBINED_COUNT).
    pub combined: Option<u64>,
}

/// Parses a CHANNELS_GET reply's attributes.
pub fn parse_channels(reply: &[u8]) -> Channels {
    let n = numbers(reply);
    let g = |k| n.get(&k).copied();
    Channels {
        rx_max: g(2),
        tx_max: g(3),
        other_max: g(4),
        combined_max: g(5),
        rx: g(6),
        tx: g(7),
        other: g(8),
        combined: g(9),
    }
}

/// `iface`'s channels (ETHTOOL_MSG_CHANNELS_GET).
pub fn channels(iface: &str) -> Result<Channels, NetError> {
    get(iface, MSG_CHANNELS_GET, "reading ethtool channels of").map(|r| parse_channels(&r))
}

/// Ring sizes and maxima (`ethtool -g`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rings {
    /// Largest RX ring, descriptors (ETHTOOL_A_RINGS_RX_MAX).
    pub rx_max: Option<u64>,
    /// Largest TX ring, descriptors (ETHTOOL_A_RINGS_TX_MAX).
    pub tx_max: Option<u64>,
    /// RX ring size in use, descriptors (ETHTOOL_A_RINGS_RX).
    pub rx: Option<u64>,
    /// TX ring size in use, descriptors (ETHTOOL_A_RINGS_TX).
    pub tx: Option<u64>,
}

/// `iface`'s rings (ETHTOOL_MSG_RINGS_GET).
pub fn rings(iface: &str) -> Result<Rings, NetError> {
    let n = numbers(&get(iface, MSG_RINGS_GET, "reading ethtool rings of")?);
    let g = |k| n.get(&k).copied();
    Ok(Rings { rx_max: g(2), tx_max: g(5), rx: g(6), tx: g(9) })
}

/// Speed in Mbit/s (None: unknown) and duplex (`ethtool IFACE`'s Speed and Duplex).
pub fn link_speed(iface: &str) -> Result<(Option<u32>, &'static str), NetError> {
    let n = numbers(&get(iface, MSG_LINKMODES_GET, "reading ethtool link modes of")?);
    let speed = n.get(&A_LINKMODES_SPEED).map(|&s| s as u32).filter(|&s| s != 0 && s != u32::MAX);
    let duplex = match n.get(&A_LINKMODES_DUPLEX) {
        Some(0) => "half",
        Some(1) => "full",
        _ => "unknown",
    };
    Ok((speed, duplex))
}

/// Link detected (`ethtool IFACE`'s "Link detected").
pub fn link_detected(iface: &str) -> Result<bool, NetError> {
    let n = numbers(&get(iface, MSG_LINKSTATE_GET, "reading ethtool link state of")?);
    Ok(n.get(&A_LINKSTATE_LINK).copied().unwrap_or(0) != 0)
}

/// Driver name, version, firmware and bus (`ethtool -i`: ETHTOOL_GDRVINFO, an ioctl only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverInfo {
    /// Driver name, e.g. `veth`, `ixgbe` (`driver`).
    pub driver: String,
    /// Driver version (`version`).
    pub version: String,
    /// Firmware version (`fw_version`; empty if none).
    pub firmware: String,
    /// Bus address, e.g. a PCI `0000:01:00.0` (`bus_info`; empty if none).
    pub bus: String,
}

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    counts: [u32; 5],
}

/// `struct ethtool_rxnfc` up to its `data` field: all ETHTOOL_GRXFH uses.
#[repr(C)]
struct EthtoolRxfh {
    cmd: u32,
    flow_type: u32,
    data: u64,
    rest: [u8; 256],
}

fn ethtool_ioctl<T: ?Sized>(iface: &str, data: &mut T, op: &'static str) -> Result<(), NetError> {
    super::check_ifname(iface)?;
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetError::last("opening an ioctl socket for", iface));
    }
    // SAFETY: a new descriptor nothing else owns.
    let _sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (data as *mut T).cast();
    // SAFETY: `req` points at a live struct of the layout the command expects.
    if unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req) } != 0 {
        return Err(NetError::last(op, iface));
    }
    Ok(())
}

fn cstr(b: &[u8]) -> String {
    string(b)
}

/// `iface`'s driver info (ETHTOOL_GDRVINFO).
pub fn driver_info(iface: &str) -> Result<DriverInfo, NetError> {
    let mut d = EthtoolDrvinfo {
        cmd: 0x3,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        counts: [0; 5],
    };
    ethtool_ioctl(iface, &mut d, "reading the driver info (ETHTOOL_GDRVINFO) of")?;
    Ok(DriverInfo {
        driver: cstr(&d.driver),
        version: cstr(&d.version),
        firmware: cstr(&d.fw_version),
        bus: cstr(&d.bus_info),
    })
}

/// RSS hash fields for UDP over IPv4 as `ethtool -n IFACE rx-flow-hash udp4` names them.
pub fn udp4_flow_hash(iface: &str) -> Result<Vec<&'static str>, NetError> {
    udp_flow_hash(iface, false).map(flow_hash_names)
}

/// The RXH_* bits of `iface`'s RSS hash for UDP over IPv4 (or IPv6): ETHTOOL_GRXFH.
pub fn udp_flow_hash(iface: &str, ipv6: bool) -> Result<u64, NetError> {
    const ETHTOOL_GRXFH: u32 = 0x29;
    let flow_type = if ipv6 { 0x06 } else { 0x02 }; // UDP_V6_FLOW, UDP_V4_FLOW
    let mut r = EthtoolRxfh { cmd: ETHTOOL_GRXFH, flow_type, data: 0, rest: [0; 256] };
    ethtool_ioctl(iface, &mut r, "reading the RSS flow hash (ETHTOOL_GRXFH) of")?;
    Ok(r.data)
}

/// The RXH_* bits of a hash over the IP addresses and both UDP/TCP ports (`sdfn`).
pub const RXH_ADDRS_AND_PORTS: u64 = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);

/// The ETH_RSS_HASH_* bit of the Toeplitz hash function.
pub const ETH_RSS_HASH_TOP: u8 = 1 << 0;

/// A device's RSS settings for its default context, as `ethtool -x IFACE` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// The hash function, an ETH_RSS_HASH_* bit ([`ETH_RSS_HASH_TOP`]: Toeplitz); 0 if the
    /// driver does not say.
    pub hfunc: u8,
    /// The input transform, RXH_XFRM_* bits (0: none; 1 or 2: symmetric).
    pub input_xfrm: u8,
    /// The hash key.
    pub key: Vec<u8>,
    /// The indirection table: the RX queue of each entry.
    pub indir: Vec<u32>,
}

/// `iface`'s RSS key, indirection table and hash function (ETHTOOL_GRSSH, asked twice:
/// first for the sizes, then for the contents).
pub fn rss_config(iface: &str) -> Result<RssConfig, NetError> {
    const ETHTOOL_GRSSH: u32 = 0x46;
    const OP: &str = "reading the RSS settings (ETHTOOL_GRSSH) of";
    // struct ethtool_rxfh in u32 words: cmd, rss_context, indir_size, key_size,
    // (hfunc, input_xfrm, rsvd8[2]), rsvd32, then rss_config[]: the table, then the key.
    const HEAD: usize = 6;
    let mut head = [0u32; HEAD];
    head[0] = ETHTOOL_GRSSH;
    ethtool_ioctl(iface, &mut head, OP)?;
    let (indir_size, key_size) = (head[2] as usize, head[3] as usize);
    if indir_size > 1 << 16 || key_size > 1 << 10 {
        return Err(NetError::Decode {
            op: OP,
            what: iface.into(),
            detail: format!("an indirection table of {indir_size} entries and a key of {key_size} B"),
        });
    }
    let mut buf = vec![0u32; HEAD + indir_size + key_size.div_ceil(4)];
    buf[0] = ETHTOOL_GRSSH;
    buf[2] = indir_size as u32;
    buf[3] = key_size as u32;
    ethtool_ioctl(iface, buf.as_mut_slice(), OP)?;
    let [hfunc, input_xfrm, ..] = buf[4].to_ne_bytes();
    let key = buf[HEAD + indir_size..].iter().flat_map(|w| w.to_ne_bytes()).take(key_size).collect();
    Ok(RssConfig { hfunc, input_xfrm, key, indir: buf[HEAD..HEAD + indir_size].to_vec() })
}

/// The RXH_* bits of a flow hash, by name.
pub fn flow_hash_names(bits: u64) -> Vec<&'static str> {
    [
        (1 << 1, "L2DA"),
        (1 << 2, "VLAN tag"),
        (1 << 3, "L3 proto"),
        (1 << 4, "IP SA"),
        (1 << 5, "IP DA"),
        (1 << 6, "L4 bytes 0 & 1 [TCP/UDP src port]"),
        (1 << 7, "L4 bytes 2 & 3 [TCP/UDP dst port]"),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitset(names: &[&str]) -> Attrs {
        let mut bits = Attrs::default();
        for (i, n) in names.iter().enumerate() {
            bits = bits.nested(A_BITSET_BIT, Attrs::default().u32(1, i as u32).string(A_BIT_NAME, n).flag(A_BIT_VALUE));
        }
        Attrs::default().flag(1).u32(2, 64).nested(A_BITSET_BITS, bits)
    }

    #[test]
    fn a_features_reply_parses() {
        let r = header("xp-rx")
            .nested(A_FEATURES_HW, bitset(&["rx-gro", "rx-checksum"]))
            .nested(A_FEATURES_ACTIVE, bitset(&["rx-gro"]))
            .nested(A_FEATURES_NOCHANGE, bitset(&["rx-lro"]));
        let f = parse_features(&r.0);
        assert_eq!(f.changeable, ["rx-gro", "rx-checksum"]);
        assert!(f.is_active("rx-gro") && !f.is_active("rx-checksum"));
        assert_eq!(f.fixed, ["rx-lro"]);
        for cut in 0..r.0.len() {
            let _ = parse_features(&r.0[..cut]);
        }
    }

    #[test]
    fn a_features_set_request_lists_each_bit_with_its_value() {
        let a = features_set_attrs("eth9", &["rx-gro", "rx-hashing"], true);
        let (_, wanted) = attrs(&a.0).find(|(k, _)| *k == A_FEATURES_WANTED).unwrap();
        assert_eq!(bitset_names(wanted), ["rx-gro", "rx-hashing"]);
        // No NOMASK flag: only the listed bits change.
        assert!(attrs(wanted).all(|(k, _)| k == A_BITSET_BITS));
        let bits: Vec<_> = attrs(wanted).flat_map(|(_, b)| attrs(b)).collect();
        assert!(bits.iter().all(|(_, bit)| attrs(bit).any(|(k, _)| k == A_BIT_VALUE)));
        let off = features_set_attrs("eth9", &["rx-gro"], false);
        let (_, w) = attrs(&off.0).find(|(k, _)| *k == A_FEATURES_WANTED).unwrap();
        assert!(attrs(w).flat_map(|(_, b)| attrs(b)).all(|(_, bit)| attrs(bit).all(|(k, _)| k != A_BIT_VALUE)));
    }

    #[test]
    fn channel_replies_and_flow_hashes_parse() {
        let r = header("x").u32(5, 8).u32(9, 2);
        let c = parse_channels(&r.0);
        assert_eq!((c.combined_max, c.combined, c.rx), (Some(8), Some(2), None));
        assert_eq!(flow_hash_names((1 << 4) | (1 << 5)), ["IP SA", "IP DA"]);
    }

    #[test]
    fn loopback_features_and_driver_are_read() {
        let f = features("lo").unwrap();
        assert!(!f.active.is_empty());
        assert!(driver_info("no-such-if0").is_err());
        assert!(matches!(features("no-such-if0"), Err(NetError::Kernel { errno: libc::ENODEV, .. })));
    }

    fn feats(active: &[&str], changeable: &[&str], fixed: &[&str]) -> Features {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Features { changeable: v(changeable), wanted: v(active), active: v(active), fixed: v(fixed) }
    }

    #[test]
    fn offloads_off_then_exactly_the_changes_restored() {
        let all = ["rx-checksum", "rx-gro", "rx-lro", "rx-gro-hw", "rx-hashing"];
        // rx-lro is off, rx-hashing fixed, rx-gro-hw not changeable: only two go off.
        let before = feats(
            &["rx-checksum", "rx-gro", "rx-hashing", "rx-gro-hw", "tx-checksum"],
            &["rx-checksum", "rx-gro", "rx-lro", "rx-hashing"],
            &["rx-hashing"],
        );
        assert_eq!(offload_plan(&before, &all), vec!["rx-checksum", "rx-gro"]);
        // The kernel also dropped rx-gro-hw (a dependency) and switched tx-nocache-copy on.
        let after = feats(&["rx-hashing", "tx-checksum", "tx-nocache-copy"], &[], &[]);
        let r = restore_plan(&before, &after);
        assert_eq!(r.on, vec!["rx-checksum", "rx-gro", "rx-gro-hw"]);
        assert_eq!(r.off, vec!["tx-nocache-copy"]);
        // Never on what was off before: rx-lro stays off whatever happened.
        assert!(!r.on.iter().any(|n| n == "rx-lro"));
        for n in &r.on {
            assert!(before.is_active(n), "{n} was off and would be turned on");
        }
        // Nothing changed: nothing to restore.
        assert_eq!(restore_plan(&before, &before), Restore::default());
        assert!(offload_plan(&feats(&[], &all, &[]), &all).is_empty());
    }
}
